/*
 * proxy_protocol.c - the PROXY protocol header parser (v1 text, v2 binary)
 * and the source-network lists (see proxy_protocol.h).
 *
 * The format is HAProxy's "PROXY protocol" specification. Every byte is read
 * through the bounds-checked cursor; a prefix that can still become a valid
 * header is BS_E_SHORT, anything else is refused as soon as it is seen.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/crc32c.h"
#include "brokerside/cursor.h"
#include "brokerside/proxy_protocol.h"

static const uint8_t V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char V1_SIG[] = "PROXY ";
#define V1_SIG_LEN 6

/* v2 TLV types the parser looks at (the rest are skipped). */
#define PP2_TYPE_CRC32C 0x03

/* Record an error: the reason label and a formatted description. Returns `st`. */
__attribute__((format(printf, 6, 7))) static bs_status fail(bs_status st, const char **reason,
                                                            const char *label, char *why,
                                                            size_t whylen, const char *fmt, ...)
{
    *reason = label;
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---------------------------------------------------------------- v1 */

/* Read one v1 field: the bytes up to (not including) `term`, which is
 * consumed. 1..maxlen bytes, copied NUL-terminated into out. BS_E_MALFORMED
 * for an empty or too long field. */
static bs_status v1_field(bs_cursor *c, char term, char *out, size_t maxlen)
{
    size_t n = 0;
    for (;;) {
        uint8_t b;
        BS_GUARD(bs_read_u8(c, &b));
        if (b == (uint8_t)term) break;
        if (b == ' ' || b == '\r' || n >= maxlen) return BS_E_MALFORMED;
        out[n++] = (char)b;
    }
    out[n] = 0;
    return n ? BS_OK : BS_E_MALFORMED;
}

/* A v1 port: 1..5 decimal digits, no leading zero (except "0"), <= 65535. */
static bool v1_port(const char *s, uint16_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535) return false;
    *out = (uint16_t)v;
    return true;
}

/* Fill a sockaddr of `family` from text address and port; false if the
 * text is not an address of that family. */
static bool v1_addr(int family, const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        return inet_pton(AF_INET, ip, &a->sin_addr) == 1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    return inet_pton(AF_INET6, ip, &a->sin6_addr) == 1;
}

/* Parse a v1 line; p[0..n) starts with "PROXY " (or a prefix of it). */
static bs_status parse_v1(const uint8_t *p, size_t n, bs_proxy_header *out, const char **reason,
                          char *why, size_t whylen)
{
    /* Find the CRLF within the bound; refuse bytes no v1 line contains. */
    size_t lim = n < BS_PROXY_V1_MAX ? n : BS_PROXY_V1_MAX, end = 0;
    for (size_t i = 0; i < lim; i++) {
        uint8_t b = p[i];
        if (b == '\r') {
            if (i + 1 == n) return BS_E_SHORT;
            if (i + 1 >= BS_PROXY_V1_MAX || p[i + 1] != '\n')
                return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V1, why, whylen,
                            "v1: CR not followed by LF at byte %zu", i);
            end = i + 2;
            break;
        }
        if (b < 0x20 || b > 0x7e)
            return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V1, why, whylen,
                        "v1: byte 0x%02x at offset %zu is not printable ASCII", b, i);
    }
    if (!end) {
        if (n >= BS_PROXY_V1_MAX)
            return fail(BS_E_TOO_LARGE, reason, BS_PROXY_REASON_OVERSIZED, why, whylen,
                        "v1: no CRLF within %d bytes", BS_PROXY_V1_MAX);
        return BS_E_SHORT;
    }

    /* The whole line is here: parse it on a cursor over the line without CRLF,
     * terminated by a virtual space so every field ends with its separator. */
    char line[BS_PROXY_V1_MAX + 1];
    memcpy(line, p, end - 2);
    line[end - 2] = ' ';
    bs_cursor c;
    bs_cursor_init(&c, line, end - 1);
    const uint8_t *sig;
    char proto[8], src[40], dst[40], sport[6], dport[6];
    if (bs_read_bytes(&c, V1_SIG_LEN, &sig) != BS_OK || memcmp(sig, V1_SIG, V1_SIG_LEN) != 0 ||
        v1_field(&c, ' ', proto, sizeof proto - 1) != BS_OK)
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V1, why, whylen,
                    "v1: expected \"PROXY TCP4|TCP6|UNKNOWN\"");
    memset(out, 0, sizeof *out);
    out->version = 1;
    out->len = end;
    if (strcmp(proto, "UNKNOWN") == 0) return BS_OK; /* the rest of the line is ignored */
    int family = strcmp(proto, "TCP4") == 0 ? AF_INET : strcmp(proto, "TCP6") == 0 ? AF_INET6 : 0;
    if (!family)
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V1, why, whylen,
                    "v1: unknown protocol \"%s\" (TCP4, TCP6 or UNKNOWN)", proto);
    if (v1_field(&c, ' ', src, sizeof src - 1) != BS_OK ||
        v1_field(&c, ' ', dst, sizeof dst - 1) != BS_OK ||
        v1_field(&c, ' ', sport, sizeof sport - 1) != BS_OK ||
        v1_field(&c, ' ', dport, sizeof dport - 1) != BS_OK || bs_cursor_remaining(&c) != 0)
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V1, why, whylen,
                    "v1: expected \"%s SRC DST SPORT DPORT\" separated by single spaces", proto);
    uint16_t sp, dp;
    if (!v1_port(sport, &sp) || !v1_port(dport, &dp))
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V1, why, whylen,
                    "v1: ports must be 0..65535 without leading zeros");
    if (!v1_addr(family, src, sp, &out->src) || !v1_addr(family, dst, dp, &out->dst))
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V1, why, whylen,
                    "v1: addresses are not %s addresses", proto);
    out->has_addr = true;
    return BS_OK;
}

/* ---------------------------------------------------------------- v2 */

/* Skip (and count) the TLVs of c; verify a CRC32C TLV over the whole
 * header h[0..hlen). BS_E_MALFORMED with why set on a TLV that overruns. */
static bs_status v2_tlvs(bs_cursor *c, const uint8_t *h, size_t hlen, bs_proxy_header *out,
                         char *why, size_t whylen)
{
    while (bs_cursor_remaining(c) > 0) {
        uint8_t type;
        uint16_t len;
        const uint8_t *val;
        size_t at = c->pos;
        if (bs_read_u8(c, &type) != BS_OK || bs_read_be16(c, &len) != BS_OK ||
            bs_read_bytes(c, len, &val) != BS_OK) {
            if (why && whylen) snprintf(why, whylen, "v2: TLV at offset %zu overruns the header", at);
            return BS_E_MALFORMED;
        }
        out->n_tlvs++;
        if (type == PP2_TYPE_CRC32C) {
            if (len != 4) {
                if (why && whylen) snprintf(why, whylen, "v2: CRC32C TLV of %u bytes (4 expected)", len);
                return BS_E_MALFORMED;
            }
            /* The checksum covers the whole header with its own value zeroed. */
            size_t off = (size_t)(val - h);
            uint32_t want = (uint32_t)val[0] << 24 | (uint32_t)val[1] << 16 |
                            (uint32_t)val[2] << 8 | val[3];
            static const uint8_t zero[4];
            uint32_t crc = bs_crc32c(0, h, off);
            crc = bs_crc32c(crc, zero, 4);
            crc = bs_crc32c(crc, h + off + 4, hlen - off - 4);
            if (crc != want) {
                if (why && whylen) snprintf(why, whylen, "v2: CRC32C TLV does not match the header");
                return BS_E_MALFORMED;
            }
        }
    }
    return BS_OK;
}

/* Parse a v2 block; p[0..n) starts with the v2 signature (or a prefix of it). */
static bs_status parse_v2(const uint8_t *p, size_t n, bs_proxy_header *out, const char **reason,
                          char *why, size_t whylen)
{
    bs_cursor c;
    bs_cursor_init(&c, p, n);
    const uint8_t *sig;
    uint8_t ver_cmd, fam;
    uint16_t len;
    if (bs_read_bytes(&c, sizeof V2_SIG, &sig) != BS_OK || bs_read_u8(&c, &ver_cmd) != BS_OK)
        return BS_E_SHORT;
    if ((ver_cmd >> 4) != 2)
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V2, why, whylen,
                    "v2: version %u (2 expected)", ver_cmd >> 4);
    unsigned cmd = ver_cmd & 0x0f;
    if (cmd > 1)
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V2, why, whylen,
                    "v2: command %u (LOCAL 0 or PROXY 1 expected)", cmd);
    if (bs_read_u8(&c, &fam) != BS_OK || bs_read_be16(&c, &len) != BS_OK) return BS_E_SHORT;
    if ((size_t)len + 16 > BS_PROXY_V2_MAX)
        return fail(BS_E_TOO_LARGE, reason, BS_PROXY_REASON_OVERSIZED, why, whylen,
                    "v2: %u bytes of addresses and TLVs (at most %d accepted)", len,
                    BS_PROXY_V2_MAX - 16);
    unsigned family = fam >> 4, transport = fam & 0x0f;
    /* The valid combinations: UNSPEC, and INET/INET6/UNIX over STREAM or
     * DGRAM. LOCAL ignores the byte (the spec: the receiver discards it). */
    if (cmd == 1 && fam != 0x00 && (family < 1 || family > 3 || transport < 1 || transport > 2))
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V2, why, whylen,
                    "v2: family/transport byte 0x%02x is not defined", fam);
    if (cmd == 1 && transport == 2)
        return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V2, why, whylen,
                    "v2: a datagram (DGRAM) client on a TCP listener");
    bs_cursor block;
    if (bs_cursor_sub(&c, len, &block) != BS_OK) return BS_E_SHORT;

    memset(out, 0, sizeof *out);
    out->version = 2;
    out->len = 16 + (size_t)len;
    if (cmd == 0) {
        out->local = true;
        return BS_OK;
    }
    const uint8_t *a;
    if (family == 1 || family == 2) {
        size_t alen = family == 1 ? 4 : 16;
        const uint8_t *s_ip, *d_ip;
        uint16_t sp, dp;
        if (bs_read_bytes(&block, alen, &s_ip) != BS_OK ||
            bs_read_bytes(&block, alen, &d_ip) != BS_OK || bs_read_be16(&block, &sp) != BS_OK ||
            bs_read_be16(&block, &dp) != BS_OK)
            return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V2, why, whylen,
                        "v2: length %u too short for %s addresses (%zu bytes)", len,
                        family == 1 ? "AF_INET" : "AF_INET6", 2 * alen + 4);
        if (family == 1) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&out->src,
                               *d4 = (struct sockaddr_in *)&out->dst;
            s4->sin_family = d4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, s_ip, 4);
            memcpy(&d4->sin_addr, d_ip, 4);
            s4->sin_port = htons(sp);
            d4->sin_port = htons(dp);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->src,
                                *d6 = (struct sockaddr_in6 *)&out->dst;
            s6->sin6_family = d6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, s_ip, 16);
            memcpy(&d6->sin6_addr, d_ip, 16);
            s6->sin6_port = htons(sp);
            d6->sin6_port = htons(dp);
        }
        out->has_addr = true;
    } else if (family == 3) {
        /* AF_UNIX: two 108-byte paths; no IP address to report. */
        if (bs_read_bytes(&block, 216, &a) != BS_OK)
            return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_V2, why, whylen,
                        "v2: length %u too short for AF_UNIX addresses (216 bytes)", len);
    }
    /* UNSPEC: the spec has the receiver ignore the block; otherwise the
     * bytes after the addresses are TLVs. */
    if (family != 0 && v2_tlvs(&block, p, out->len, out, why, whylen) != BS_OK) {
        *reason = BS_PROXY_REASON_V2;
        return BS_E_MALFORMED;
    }
    return BS_OK;
}

/* See proxy_protocol.h. */
bs_status bs_proxy_parse(const uint8_t *p, size_t n, bs_proxy_header *out, const char **reason,
                         char *why, size_t whylen)
{
    const char *dummy;
    if (!reason) reason = &dummy;
    *reason = NULL;
    if (why && whylen) why[0] = 0;
    if (n == 0) return BS_E_SHORT;
    size_t k1 = n < V1_SIG_LEN ? n : V1_SIG_LEN, k2 = n < sizeof V2_SIG ? n : sizeof V2_SIG;
    if (memcmp(p, V1_SIG, k1) == 0) {
        if (n < V1_SIG_LEN) return BS_E_SHORT;
        return parse_v1(p, n, out, reason, why, whylen);
    }
    if (memcmp(p, V2_SIG, k2) == 0) {
        if (n < sizeof V2_SIG) return BS_E_SHORT;
        return parse_v2(p, n, out, reason, why, whylen);
    }
    return fail(BS_E_MALFORMED, reason, BS_PROXY_REASON_MISSING, why, whylen,
                "no PROXY protocol header (first byte 0x%02x)", p[0]);
}

/* ---------------------------------------------------------------- CIDR */

const char bs_cidr_host_bits[] = "host bits set after the prefix";

/* See proxy_protocol.h. */
const char *bs_cidr_parse(const char *text, bs_cidr *out)
{
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t iplen = slash ? (size_t)(slash - text) : strlen(text);
    memset(out, 0, sizeof *out);
    if (iplen == 0 || iplen >= sizeof ip) return "not an IPv4 or IPv6 address";
    memcpy(ip, text, iplen);
    ip[iplen] = 0;
    unsigned max;
    if (inet_pton(AF_INET, ip, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, ip, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return "not an IPv4 or IPv6 address";
    }
    unsigned prefix = max;
    if (slash) {
        const char *d = slash + 1;
        size_t dl = strlen(d);
        if (dl == 0 || dl > 3 || (dl > 1 && d[0] == '0')) return max == 32 ? "prefix must be 0..32" : "prefix must be 0..128";
        prefix = 0;
        for (size_t i = 0; i < dl; i++) {
            if (d[i] < '0' || d[i] > '9') return max == 32 ? "prefix must be 0..32" : "prefix must be 0..128";
            prefix = prefix * 10 + (unsigned)(d[i] - '0');
        }
        if (prefix > max) return max == 32 ? "prefix must be 0..32" : "prefix must be 0..128";
    }
    out->prefix = (uint8_t)prefix;
    bool host_bits = false;
    for (unsigned bit = prefix; bit < max; bit++) {
        if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
            host_bits = true;
            out->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
        }
    }
    /* "::ffff:10.0.0.0/104" is the IPv4 network 10.0.0.0/8: stored as such,
     * since bs_cidr_match compares IPv4-mapped peers as IPv4. */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (out->family == AF_INET6 && prefix >= 96 && memcmp(out->addr, mapped, 12) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix = (uint8_t)(prefix - 96);
    }
    return host_bits ? bs_cidr_host_bits : NULL;
}

/* True when the first `prefix` bits of a and b agree. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, whole) != 0) return false;
    if (!rest) return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* See proxy_protocol.h. */
bool bs_cidr_match(const bs_cidr *list, size_t n, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int family;
    const uint8_t *addr;
    if (sa->sa_family == AF_INET) {
        family = AF_INET;
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        addr = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        family = AF_INET6;
        if (memcmp(addr, mapped, sizeof mapped) == 0) {
            family = AF_INET;
            addr += 12;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i].family == family && prefix_equal(list[i].addr, addr, list[i].prefix))
            return true;
    return false;
}

/* See proxy_protocol.h. */
void bs_cidr_format(const bs_cidr *c, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(c->family, c->addr, ip, sizeof ip);
    snprintf(out, outlen, "%s/%u", ip, c->prefix);
}
