/*
 * sasl.c - client-side SASL message parsers for pass-through inspection
 * (see sasl.h). Every read goes through the bounds-checked cursor; only
 * names are copied out.
 */
#include "brokerside/sasl.h"

#include <string.h>
#include <strings.h>

#include "brokerside/cursor.h"
#include "brokerside/text.h"

/* See sasl.h. */
bs_sasl_mech bs_sasl_mech_parse(const uint8_t *p, size_t len)
{
    static const struct {
        const char *name;
        bs_sasl_mech m;
    } tab[] = {{"PLAIN", BS_SASL_PLAIN},
               {"SCRAM-SHA-256", BS_SASL_SCRAM_SHA_256},
               {"SCRAM-SHA-512", BS_SASL_SCRAM_SHA_512},
               {"OAUTHBEARER", BS_SASL_OAUTHBEARER}};
    if (!p || len == 0) return BS_SASL_NONE;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].name) == len && memcmp(tab[i].name, p, len) == 0) return tab[i].m;
    return BS_SASL_OTHER;
}

/* See sasl.h. */
const char *bs_sasl_mech_name(bs_sasl_mech m)
{
    switch (m) {
    case BS_SASL_PLAIN: return "PLAIN";
    case BS_SASL_SCRAM_SHA_256: return "SCRAM-SHA-256";
    case BS_SASL_SCRAM_SHA_512: return "SCRAM-SHA-512";
    case BS_SASL_OAUTHBEARER: return "OAUTHBEARER";
    case BS_SASL_OTHER: return "OTHER";
    case BS_SASL_NONE: break;
    }
    return "NONE";
}

/* Is p[0..len) valid UTF-8 (core/text.c's rules: no overlong forms, no
 * surrogates) without C0/DEL control bytes? */
static bool name_text_ok(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] == 0x7f) return false;
    return bs_utf8_valid(p, len);
}

/* Copy a checked name into out[BS_SASL_NAME_MAX+1]. */
static bs_status copy_name(const uint8_t *p, size_t len, char *out)
{
    if (len > BS_SASL_NAME_MAX || !name_text_ok(p, len)) return BS_E_MALFORMED;
    memcpy(out, p, len);
    out[len] = 0;
    return BS_OK;
}

/* The next field of `c` up to (not including) byte `sep` or the end; the
 * separator is consumed. *found says whether it was there. */
static bs_status next_field(bs_cursor *c, uint8_t sep, const uint8_t **f, size_t *flen, bool *found)
{
    const uint8_t *start = bs_cursor_ptr(c);
    size_t rem = bs_cursor_remaining(c);
    const uint8_t *hit = rem ? memchr(start, sep, rem) : NULL;
    *f = start;
    *flen = hit ? (size_t)(hit - start) : rem;
    *found = hit != NULL;
    return bs_cursor_skip(c, *flen + (hit ? 1u : 0u));
}

/* See sasl.h. */
bs_status bs_sasl_plain_parse(const uint8_t *p, size_t len, char *user, char *authzid)
{
    if (!p) return BS_E_MALFORMED;
    bs_cursor c;
    bs_cursor_init(&c, p, len);
    const uint8_t *zid, *cid, *pw;
    size_t zlen, clen, plen;
    bool f1, f2, f3;
    BS_GUARD(next_field(&c, 0, &zid, &zlen, &f1));
    BS_GUARD(next_field(&c, 0, &cid, &clen, &f2));
    BS_GUARD(next_field(&c, 0, &pw, &plen, &f3));
    (void)pw;
    if (!f1 || !f2 || f3 || clen == 0) return BS_E_MALFORMED;
    BS_GUARD(copy_name(cid, clen, user));
    return copy_name(zid, zlen, authzid);
}

/* Unescape a SCRAM saslname (RFC 5802: "=2C" and "=3D") into out. */
static bs_status scram_unescape(const uint8_t *p, size_t len, char *out)
{
    uint8_t tmp[BS_SASL_NAME_MAX];
    size_t n = 0;
    bs_cursor c;
    bs_cursor_init(&c, p, len);
    while (bs_cursor_remaining(&c) > 0) {
        uint8_t b;
        BS_GUARD(bs_read_u8(&c, &b));
        if (b == '=') {
            const uint8_t *esc;
            if (bs_read_bytes(&c, 2, &esc) != BS_OK) return BS_E_MALFORMED;
            if (esc[0] == '2' && (esc[1] == 'C' || esc[1] == 'c'))
                b = ',';
            else if (esc[0] == '3' && (esc[1] == 'D' || esc[1] == 'd'))
                b = '=';
            else
                return BS_E_MALFORMED;
        } else if (b == ',') {
            return BS_E_MALFORMED;
        }
        if (n == sizeof tmp) return BS_E_MALFORMED;
        tmp[n++] = b;
    }
    return copy_name(tmp, n, out);
}

/* gs2-header "cbflag,[a=authzid]," (RFC 5802/5801). `escaped`: the authzid
 * uses SCRAM escaping (both SCRAM and OAUTHBEARER do: RFC 7628 reuses it). */
static bs_status gs2_header(bs_cursor *c, char *authzid)
{
    const uint8_t *f;
    size_t flen;
    bool found;
    BS_GUARD(next_field(c, ',', &f, &flen, &found));
    if (!found || flen == 0) return BS_E_MALFORMED;
    /* n: no channel binding; y: client supports it, server did not offer it.
     * p=...: channel binding, which Kafka never offers. */
    if (!(flen == 1 && (f[0] == 'n' || f[0] == 'y'))) return BS_E_MALFORMED;
    BS_GUARD(next_field(c, ',', &f, &flen, &found));
    if (!found) return BS_E_MALFORMED;
    authzid[0] = 0;
    if (flen == 0) return BS_OK;
    if (flen < 2 || f[0] != 'a' || f[1] != '=') return BS_E_MALFORMED;
    return scram_unescape(f + 2, flen - 2, authzid);
}

/* See sasl.h. */
bs_status bs_sasl_scram_client_first(const uint8_t *p, size_t len, char *user, char *authzid,
                                     bool *token_auth)
{
    if (!p) return BS_E_MALFORMED;
    bs_cursor c;
    bs_cursor_init(&c, p, len);
    *token_auth = false;
    user[0] = 0;
    BS_GUARD(gs2_header(&c, authzid));
    bool have_user = false, have_nonce = false;
    while (bs_cursor_remaining(&c) > 0) {
        const uint8_t *f;
        size_t flen;
        bool found;
        BS_GUARD(next_field(&c, ',', &f, &flen, &found));
        if (flen < 2 || !memchr(f, '=', flen)) return BS_E_MALFORMED;
        if ((!have_user || !have_nonce) && f[1] != '=') return BS_E_MALFORMED;
        if (!have_user) {
            /* RFC 5802: "m=" (reserved) must not appear; n= comes first. */
            if (f[0] != 'n') return BS_E_MALFORMED;
            BS_GUARD(scram_unescape(f + 2, flen - 2, user));
            if (user[0] == 0) return BS_E_MALFORMED;
            have_user = true;
        } else if (!have_nonce) {
            if (f[0] != 'r' || flen == 2) return BS_E_MALFORMED;
            have_nonce = true; /* the nonce itself is never copied */
        } else if (flen == strlen("tokenauth=true") && memcmp(f, "tokenauth=true", flen) == 0) {
            *token_auth = true;
        }
        if (!found) break;
    }
    if (!have_user || !have_nonce) return BS_E_MALFORMED;
    return BS_OK;
}

/* See sasl.h. */
bs_status bs_sasl_oauthbearer_parse(const uint8_t *p, size_t len, const uint8_t **token,
                                    size_t *token_len, char *authzid)
{
    *token = NULL;
    *token_len = 0;
    authzid[0] = 0;
    if (!p) return BS_E_MALFORMED;
    if (len == 1 && p[0] == 0x01) return BS_E_NOT_FOUND;
    bs_cursor c;
    bs_cursor_init(&c, p, len);
    BS_GUARD(gs2_header(&c, authzid));
    uint8_t sep;
    if (bs_read_u8(&c, &sep) != BS_OK || sep != 0x01) return BS_E_MALFORMED;
    bool terminated = false;
    while (bs_cursor_remaining(&c) > 0) {
        const uint8_t *f;
        size_t flen;
        bool found;
        BS_GUARD(next_field(&c, 0x01, &f, &flen, &found));
        if (!found) return BS_E_MALFORMED;
        if (flen == 0) {
            terminated = true;
            break;
        }
        const uint8_t *eq = memchr(f, '=', flen);
        if (!eq || eq == f) return BS_E_MALFORMED;
        size_t klen = (size_t)(eq - f);
        if (klen == 4 && memcmp(f, "auth", 4) == 0) {
            const uint8_t *v = eq + 1;
            size_t vlen = flen - klen - 1;
            /* "Bearer" is case-insensitive (RFC 6750), one or more spaces. */
            if (vlen < 8 || strncasecmp((const char *)v, "bearer ", 7) != 0) return BS_E_MALFORMED;
            size_t i = 7;
            while (i < vlen && v[i] == ' ')
                i++;
            if (i == vlen || *token) return BS_E_MALFORMED;
            *token = v + i;
            *token_len = vlen - i;
        }
    }
    if (!terminated || bs_cursor_remaining(&c) != 0 || !*token) return BS_E_MALFORMED;
    return BS_OK;
}
