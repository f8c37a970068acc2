/*
 * test_proxy_protocol.c - the PROXY protocol parser (src/net/proxy_protocol.c):
 * every v1 and v2 field, each truncation point, oversized, bad signatures,
 * versions, commands, families and lengths, TLVs (skipped, overrunning,
 * CRC32C checked), LOCAL; and the CIDR source lists.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "brokerside/crc32c.h"
#include "brokerside/proxy_protocol.h"
#include "test.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Parse a NUL-terminated string; returns the status, reason into *reason. */
static bs_status parse_str(const char *s, bs_proxy_header *h, const char **reason)
{
    char why[200];
    return bs_proxy_parse((const uint8_t *)s, strlen(s), h, reason, why, sizeof why);
}

/* "ip:port" of a parsed address. */
static const char *addr_text(const struct sockaddr_storage *ss)
{
    static char out[2][80];
    static int k;
    char ip[INET6_ADDRSTRLEN] = "?";
    char *o = out[k++ & 1];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(o, 80, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(o, 80, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        snprintf(o, 80, "none");
    }
    return o;
}

/* Build a v2 header into out: ver_cmd, fam, then body[0..blen); returns its length. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t blen)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    if (blen) memcpy(out + 16, body, blen);
    return 16 + blen;
}

/* IPv4 address block: 192.0.2.7:51234 -> 10.1.2.3:9094. */
static const uint8_t IP4[12] = {192, 0, 2, 7, 10, 1, 2, 3, 0xC8, 0x22, 0x23, 0x86};

static void test_v1_tcp4(void)
{
    bs_proxy_header h;
    const char *r;
    const char *line = "PROXY TCP4 192.0.2.7 10.1.2.3 51234 9094\r\n";
    char buf[200];
    snprintf(buf, sizeof buf, "%s%s", line, "\x16\x03\x01 rest of the stream");
    CHECK_EQ(parse_str(buf, &h, &r), BS_OK);
    CHECK_EQ(h.version, 1);
    CHECK(h.has_addr);
    CHECK(!h.local);
    CHECK_EQ(h.len, strlen(line)); /* the stream after it is not the header's */
    CHECK_STR(addr_text(&h.src), "192.0.2.7:51234");
    CHECK_STR(addr_text(&h.dst), "10.1.2.3:9094");
    /* every shorter prefix asks for more */
    for (size_t n = 1; n < strlen(line); n++)
        CHECK_EQ(bs_proxy_parse((const uint8_t *)line, n, &h, &r, NULL, 0), BS_E_SHORT);
    /* ports 0 and 65535 */
    CHECK_EQ(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n", &h, &r), BS_OK);
    CHECK_STR(addr_text(&h.src), "1.2.3.4:0");
    CHECK_STR(addr_text(&h.dst), "5.6.7.8:65535");
}

static void test_v1_tcp6_and_unknown(void)
{
    bs_proxy_header h;
    const char *r;
    CHECK_EQ(parse_str("PROXY TCP6 2001:db8::1 ::1 443 9094\r\n", &h, &r), BS_OK);
    CHECK(h.has_addr);
    CHECK_STR(addr_text(&h.src), "[2001:db8::1]:443");
    CHECK_STR(addr_text(&h.dst), "[::1]:9094");
    /* the longest TCP6 line (104 bytes, the spec's figure) */
    const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    CHECK_EQ(strlen(longest), 104);
    CHECK_EQ(parse_str(longest, &h, &r), BS_OK);
    CHECK_EQ(h.len, 104);
    /* an UNKNOWN line may use the whole BS_PROXY_V1_MAX (107) bytes */
    char unk[BS_PROXY_V1_MAX + 1];
    memset(unk, 'x', sizeof unk);
    memcpy(unk, "PROXY UNKNOWN ", 14);
    memcpy(unk + BS_PROXY_V1_MAX - 2, "\r\n", 3);
    CHECK_EQ(parse_str(unk, &h, &r), BS_OK);
    CHECK_EQ(h.len, BS_PROXY_V1_MAX);
    /* UNKNOWN: whatever follows up to CRLF is ignored, no address */
    CHECK_EQ(parse_str("PROXY UNKNOWN\r\n", &h, &r), BS_OK);
    CHECK(!h.has_addr);
    CHECK_EQ(h.len, 15);
    CHECK_EQ(parse_str("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nxyz", &h, &r), BS_OK);
    CHECK(!h.has_addr);
    CHECK_EQ(h.len, 35);
}

static void test_v1_malformed(void)
{
    static const char *const bad[] = {
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",          /* protocol */
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",          /* case */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",            /* missing port */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",        /* extra field */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",         /* double space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",         /* trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",      /* port range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",         /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",         /* sign */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n",         /* digits */
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",            /* address */
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",        /* octet */
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",              /* family mismatch */
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",              /* family mismatch */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",            /* LF without CR */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",           /* CR without LF */
        "PROXY \r\n",                                  /* nothing */
        "PROXY TCP4\r\n",                              /* no addresses */
        "PROXY UNKNOWNX\r\n",                          /* not UNKNOWN */
        "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",         /* control byte */
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++) {
        bs_proxy_header h;
        const char *r = NULL;
        char why[200] = "";
        bs_status st = bs_proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &h, &r, why,
                                      sizeof why);
        if (st != BS_E_MALFORMED) fprintf(stderr, "  case %zu: %s\n", i, bs_status_name(st));
        CHECK_EQ(st, BS_E_MALFORMED);
        CHECK_STR(r, BS_PROXY_REASON_V1);
        CHECK(why[0] != 0);
    }
    /* a byte >= 0x80 is refused before the line ends */
    bs_proxy_header h;
    const char *r = NULL;
    CHECK_EQ(bs_proxy_parse((const uint8_t *)"PROXY TCP4 \xff", 12, &h, &r, NULL, 0),
             BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_V1);
}

static void test_v1_oversized(void)
{
    char buf[300];
    memset(buf, 'A', sizeof buf);
    memcpy(buf, "PROXY UNKNOWN ", 14);
    bs_proxy_header h;
    const char *r = NULL;
    /* up to the bound without CRLF: still possible */
    CHECK_EQ(bs_proxy_parse((const uint8_t *)buf, BS_PROXY_V1_MAX - 1, &h, &r, NULL, 0),
             BS_E_SHORT);
    CHECK_EQ(bs_proxy_parse((const uint8_t *)buf, BS_PROXY_V1_MAX, &h, &r, NULL, 0),
             BS_E_TOO_LARGE);
    CHECK_STR(r, BS_PROXY_REASON_OVERSIZED);
    CHECK_EQ(bs_proxy_parse((const uint8_t *)buf, sizeof buf, &h, &r, NULL, 0), BS_E_TOO_LARGE);
    /* a CRLF just past the bound does not count */
    buf[BS_PROXY_V1_MAX] = '\r';
    buf[BS_PROXY_V1_MAX + 1] = '\n';
    CHECK_EQ(bs_proxy_parse((const uint8_t *)buf, BS_PROXY_V1_MAX + 2, &h, &r, NULL, 0),
             BS_E_TOO_LARGE);
}

static void test_missing_header(void)
{
    bs_proxy_header h;
    const char *r = NULL;
    /* a TLS ClientHello, a Kafka request, HTTP: refused on their first byte */
    static const uint8_t tls[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    CHECK_EQ(bs_proxy_parse(tls, 1, &h, &r, NULL, 0), BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_MISSING);
    static const uint8_t kafka[] = {0x00, 0x00, 0x00, 0x20, 0x00, 0x12};
    CHECK_EQ(bs_proxy_parse(kafka, sizeof kafka, &h, &r, NULL, 0), BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_MISSING);
    CHECK_EQ(parse_str("GET / HTTP/1.1\r\n", &h, &r), BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_MISSING);
    /* a wrong byte inside either signature */
    CHECK_EQ(parse_str("PROXZ TCP4", &h, &r), BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_MISSING);
    CHECK_EQ(parse_str("PROXYTCP4", &h, &r), BS_E_MALFORMED);
    uint8_t sig[16];
    memcpy(sig, SIG, 12);
    for (size_t i = 0; i < 12; i++) {
        memcpy(sig, SIG, 12);
        sig[i] ^= 0x20;
        CHECK_EQ(bs_proxy_parse(sig, 12, &h, &r, NULL, 0), BS_E_MALFORMED);
        CHECK_STR(r, BS_PROXY_REASON_MISSING);
    }
    /* every prefix of a signature asks for more */
    CHECK_EQ(bs_proxy_parse(SIG, 0, &h, &r, NULL, 0), BS_E_SHORT);
    for (size_t n = 1; n <= 12; n++) CHECK_EQ(bs_proxy_parse(SIG, n, &h, &r, NULL, 0), BS_E_SHORT);
    CHECK_EQ(parse_str("PROX", &h, &r), BS_E_SHORT);
}

static void test_v2_inet(void)
{
    uint8_t buf[128];
    size_t n = v2(buf, 0x21, 0x11, IP4, sizeof IP4);
    memcpy(buf + n, "\x16\x03\x01", 3); /* the stream that follows */
    bs_proxy_header h;
    const char *r;
    CHECK_EQ(bs_proxy_parse(buf, n + 3, &h, &r, NULL, 0), BS_OK);
    CHECK_EQ(h.version, 2);
    CHECK(h.has_addr);
    CHECK(!h.local);
    CHECK_EQ(h.len, 28);
    CHECK_STR(addr_text(&h.src), "192.0.2.7:51234");
    CHECK_STR(addr_text(&h.dst), "10.1.2.3:9094");
    CHECK_EQ(h.n_tlvs, 0);
    /* every truncation point is BS_E_SHORT */
    for (size_t k = 0; k < n; k++) CHECK_EQ(bs_proxy_parse(buf, k, &h, &r, NULL, 0), BS_E_SHORT);
}

static void test_v2_inet6(void)
{
    uint8_t body[36] = {0};
    inet_pton(AF_INET6, "2001:db8::42", body);
    inet_pton(AF_INET6, "fd00::1", body + 16);
    body[32] = 0x01;
    body[33] = 0xBB; /* 443 */
    body[34] = 0x23;
    body[35] = 0x86; /* 9094 */
    uint8_t buf[128];
    size_t n = v2(buf, 0x21, 0x21, body, sizeof body);
    bs_proxy_header h;
    const char *r;
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    CHECK(h.has_addr);
    CHECK_EQ(h.len, 52);
    CHECK_STR(addr_text(&h.src), "[2001:db8::42]:443");
    CHECK_STR(addr_text(&h.dst), "[fd00::1]:9094");
    /* AF_INET6 with an AF_INET-sized block */
    n = v2(buf, 0x21, 0x21, body, 12);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_V2);
}

static void test_v2_local_unspec_unix(void)
{
    uint8_t buf[512];
    bs_proxy_header h;
    const char *r;
    /* LOCAL: accepted, no address, the family byte and the block ignored */
    size_t n = v2(buf, 0x20, 0x00, NULL, 0);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    CHECK(h.local);
    CHECK(!h.has_addr);
    CHECK_EQ(h.len, 16);
    n = v2(buf, 0x20, 0x11, IP4, sizeof IP4);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    CHECK(h.local);
    CHECK(!h.has_addr);
    CHECK_EQ(h.len, 28);
    n = v2(buf, 0x20, 0xff, NULL, 0); /* LOCAL ignores even an undefined family byte */
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    /* PROXY + AF_UNSPEC: accepted without an address, block ignored */
    n = v2(buf, 0x21, 0x00, (const uint8_t *)"\xff\xff\xff", 3);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    CHECK(!h.has_addr);
    CHECK(!h.local);
    CHECK_EQ(h.len, 19);
    /* AF_UNIX stream: 216 bytes of paths, no IP address */
    uint8_t paths[216] = {0};
    memcpy(paths, "/run/client.sock", 16);
    n = v2(buf, 0x21, 0x31, paths, sizeof paths);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    CHECK(!h.has_addr);
    n = v2(buf, 0x21, 0x31, paths, 100);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_V2);
}

static void test_v2_malformed(void)
{
    uint8_t buf[128];
    bs_proxy_header h;
    const char *r;
    struct {
        uint8_t ver_cmd, fam;
        size_t blen;
    } bad[] = {
        {0x11, 0x11, 12}, /* version 1 in a v2 block */
        {0x31, 0x11, 12}, /* version 3 */
        {0x01, 0x11, 12}, /* version 0 */
        {0x22, 0x11, 12}, /* command 2 */
        {0x2f, 0x11, 12}, /* command 15 */
        {0x21, 0x41, 12}, /* family 4 */
        {0x21, 0x10, 12}, /* AF_INET over UNSPEC transport */
        {0x21, 0x13, 12}, /* transport 3 */
        {0x21, 0x01, 12}, /* UNSPEC family with a transport */
        {0x21, 0x12, 12}, /* datagram on a TCP listener */
        {0x21, 0x22, 36}, /* datagram, IPv6 */
        {0x21, 0x11, 11}, /* AF_INET block too short */
        {0x21, 0x11, 0},  /* AF_INET without addresses */
    };
    uint8_t body[64] = {0};
    memcpy(body, IP4, sizeof IP4);
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++) {
        size_t n = v2(buf, bad[i].ver_cmd, bad[i].fam, body, bad[i].blen);
        r = NULL;
        char why[200] = "";
        bs_status st = bs_proxy_parse(buf, n, &h, &r, why, sizeof why);
        if (st != BS_E_MALFORMED) fprintf(stderr, "  case %zu: %s\n", i, bs_status_name(st));
        CHECK_EQ(st, BS_E_MALFORMED);
        CHECK_STR(r, BS_PROXY_REASON_V2);
        CHECK(why[0] != 0);
    }
    /* a bad version is refused from the 13th byte on, without the rest */
    v2(buf, 0x11, 0x11, body, 12);
    CHECK_EQ(bs_proxy_parse(buf, 13, &h, &r, NULL, 0), BS_E_MALFORMED);
}

static void test_v2_oversized(void)
{
    static uint8_t buf[BS_PROXY_V2_MAX + 64];
    static uint8_t body[BS_PROXY_V2_MAX];
    bs_proxy_header h;
    const char *r;
    /* the largest accepted: addresses + one NOOP TLV filling the bound */
    memset(body, 0, sizeof body);
    memcpy(body, IP4, 12);
    size_t tlv = BS_PROXY_V2_MAX - 16 - 12 - 3;
    body[12] = 0x04; /* PP2_TYPE_NOOP */
    body[13] = (uint8_t)(tlv >> 8);
    body[14] = (uint8_t)tlv;
    size_t n = v2(buf, 0x21, 0x11, body, BS_PROXY_V2_MAX - 16);
    CHECK_EQ(n, BS_PROXY_V2_MAX);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    CHECK_EQ(h.n_tlvs, 1);
    /* one byte more is refused as soon as the length is known (16 bytes) */
    v2(buf, 0x21, 0x11, body, BS_PROXY_V2_MAX - 15);
    CHECK_EQ(bs_proxy_parse(buf, 16, &h, &r, NULL, 0), BS_E_TOO_LARGE);
    CHECK_STR(r, BS_PROXY_REASON_OVERSIZED);
    buf[14] = 0xff;
    buf[15] = 0xff;
    CHECK_EQ(bs_proxy_parse(buf, 16, &h, &r, NULL, 0), BS_E_TOO_LARGE);
}

static void test_v2_tlvs(void)
{
    uint8_t body[128], buf[200];
    bs_proxy_header h;
    const char *r;
    memcpy(body, IP4, 12);
    /* AWS VPC endpoint TLV (0xEA, subtype 1) and an ALPN TLV: skipped */
    size_t k = 12;
    const char vpce[] = "\x01vpce-0123456789abcdef";
    body[k++] = 0xEA;
    body[k++] = 0;
    body[k++] = (uint8_t)(sizeof vpce - 1);
    memcpy(body + k, vpce, sizeof vpce - 1);
    k += sizeof vpce - 1;
    body[k++] = 0x01;
    body[k++] = 0;
    body[k++] = 2;
    body[k++] = 'h';
    body[k++] = '2';
    /* an empty TLV */
    body[k++] = 0x04;
    body[k++] = 0;
    body[k++] = 0;
    size_t n = v2(buf, 0x21, 0x11, body, k);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    CHECK_EQ(h.n_tlvs, 3);
    CHECK_EQ(h.len, 16 + k);
    CHECK_STR(addr_text(&h.src), "192.0.2.7:51234");
    /* a TLV whose value overruns the block */
    body[k - 1] = 1;
    n = v2(buf, 0x21, 0x11, body, k);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_V2);
    /* a TLV header cut in the middle (type and one length byte) */
    n = v2(buf, 0x21, 0x11, body, k - 1);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_E_MALFORMED);
    n = v2(buf, 0x21, 0x11, body, 13);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_E_MALFORMED);
}

static void test_v2_crc32c(void)
{
    uint8_t body[32], buf[64];
    bs_proxy_header h;
    const char *r;
    memcpy(body, IP4, 12);
    body[12] = 0x03; /* PP2_TYPE_CRC32C */
    body[13] = 0;
    body[14] = 4;
    memset(body + 15, 0, 4);
    size_t n = v2(buf, 0x21, 0x11, body, 19);
    uint32_t crc = bs_crc32c(0, buf, n); /* over the header with the field zeroed */
    buf[n - 4] = (uint8_t)(crc >> 24);
    buf[n - 3] = (uint8_t)(crc >> 16);
    buf[n - 2] = (uint8_t)(crc >> 8);
    buf[n - 1] = (uint8_t)crc;
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_OK);
    CHECK_EQ(h.n_tlvs, 1);
    /* any flipped bit of the address block, or of the checksum, fails */
    buf[17] ^= 1;
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_E_MALFORMED);
    CHECK_STR(r, BS_PROXY_REASON_V2);
    buf[17] ^= 1;
    buf[n - 1] ^= 0x80;
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_E_MALFORMED);
    /* a CRC32C TLV of the wrong size */
    body[14] = 3;
    n = v2(buf, 0x21, 0x11, body, 18);
    CHECK_EQ(bs_proxy_parse(buf, n, &h, &r, NULL, 0), BS_E_MALFORMED);
}

static void test_cidr(void)
{
    bs_cidr c[3];
    CHECK(bs_cidr_parse("10.0.0.0/8", &c[0]) == NULL);
    CHECK(bs_cidr_parse("fd00::/8", &c[1]) == NULL);
    CHECK(bs_cidr_parse("127.0.0.2", &c[2]) == NULL);
    CHECK_EQ(c[2].prefix, 32);
    char txt[64];
    bs_cidr_format(&c[1], txt, sizeof txt);
    CHECK_STR(txt, "fd00::/8");
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET, "10.200.3.4", &a4.sin_addr);
    CHECK(bs_cidr_match(c, 3, (struct sockaddr *)&a4));
    inet_pton(AF_INET, "11.0.0.1", &a4.sin_addr);
    CHECK(!bs_cidr_match(c, 3, (struct sockaddr *)&a4));
    inet_pton(AF_INET, "127.0.0.2", &a4.sin_addr);
    CHECK(bs_cidr_match(c, 3, (struct sockaddr *)&a4));
    inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
    CHECK(!bs_cidr_match(c, 3, (struct sockaddr *)&a4));
    inet_pton(AF_INET6, "fdab::1", &a6.sin6_addr);
    CHECK(bs_cidr_match(c, 3, (struct sockaddr *)&a6));
    inet_pton(AF_INET6, "fe80::1", &a6.sin6_addr);
    CHECK(!bs_cidr_match(c, 3, (struct sockaddr *)&a6));
    /* IPv4-mapped IPv6 (a dual-stack listener) matches the IPv4 network only */
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &a6.sin6_addr);
    CHECK(bs_cidr_match(c, 3, (struct sockaddr *)&a6));
    CHECK(!bs_cidr_match(c + 1, 1, (struct sockaddr *)&a6));
    /* an IPv4-mapped network is the IPv4 network */
    CHECK(bs_cidr_parse("::ffff:10.0.0.0/104", &c[0]) == NULL);
    CHECK_EQ(c[0].family, AF_INET);
    CHECK_EQ(c[0].prefix, 8);
    bs_cidr_format(&c[0], txt, sizeof txt);
    CHECK_STR(txt, "10.0.0.0/8");
    inet_pton(AF_INET, "10.9.9.9", &a4.sin_addr);
    CHECK(bs_cidr_match(c, 1, (struct sockaddr *)&a4));
    inet_pton(AF_INET6, "::ffff:10.9.9.9", &a6.sin6_addr);
    CHECK(bs_cidr_match(c, 1, (struct sockaddr *)&a6));
    /* odd prefixes */
    CHECK(bs_cidr_parse("192.168.4.0/22", &c[0]) == NULL);
    inet_pton(AF_INET, "192.168.7.255", &a4.sin_addr);
    CHECK(bs_cidr_match(c, 1, (struct sockaddr *)&a4));
    inet_pton(AF_INET, "192.168.8.0", &a4.sin_addr);
    CHECK(!bs_cidr_match(c, 1, (struct sockaddr *)&a4));
    CHECK(bs_cidr_parse("0.0.0.0/0", &c[0]) == NULL);
    CHECK(bs_cidr_match(c, 1, (struct sockaddr *)&a4));
    CHECK(bs_cidr_parse("::1/128", &c[0]) == NULL);
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    CHECK(bs_cidr_match(c, 1, (struct sockaddr *)&a6));
    /* errors */
    static const char *const bad[] = {"",          "10.0.0.0/",   "10.0.0.0/33", "10.0.0.0/08",
                                      "10.0.0/8",  "10.0.0.1/8",  "::1/129",     "fd00::1/8",
                                      "host/8",    "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0.0 /8",
                                      "/8"};
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++) {
        const char *why = bs_cidr_parse(bad[i], &c[0]);
        if (!why) fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        CHECK(why != NULL);
    }
    CHECK(bs_cidr_parse("10.1.2.3/12", &c[0]) == bs_cidr_host_bits);
    bs_cidr_format(&c[0], txt, sizeof txt);
    CHECK_STR(txt, "10.0.0.0/12");
    CHECK(bs_cidr_parse("fd00::1:2/100", &c[0]) == bs_cidr_host_bits);
    bs_cidr_format(&c[0], txt, sizeof txt);
    CHECK_STR(txt, "fd00::/100");
}

int main(void)
{
    RUN(test_v1_tcp4);
    RUN(test_v1_tcp6_and_unknown);
    RUN(test_v1_malformed);
    RUN(test_v1_oversized);
    RUN(test_missing_header);
    RUN(test_v2_inet);
    RUN(test_v2_inet6);
    RUN(test_v2_local_unspec_unix);
    RUN(test_v2_malformed);
    RUN(test_v2_oversized);
    RUN(test_v2_tlvs);
    RUN(test_v2_crc32c);
    RUN(test_cidr);
    return test_report();
}
