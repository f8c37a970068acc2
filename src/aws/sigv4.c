/* sigv4.c - AWS Signature Version 4 (see sigv4.h). */
#include "brokerside/sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "brokerside/buf.h"
#include "brokerside/text.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* One canonical header line in the making. */
typedef struct canon_header {
    char *name;   /* lower-case, malloc'd */
    char *value;  /* trimmed, whitespace runs collapsed, malloc'd */
    size_t order; /* position in the input: duplicates keep their order */
} canon_header;

/* One query parameter, both parts already in canonical (strict) encoding. */
typedef struct canon_param {
    char *key;
    char *value;
} canon_param;

static const char HEX_LOWER[] = "0123456789abcdef";

/* Percent-decode `len` bytes into `w`. A '%' not followed by two hex digits
 * is malformed (we would otherwise sign something the server reads differently). */
static bs_status uri_decode(bs_wbuf *w, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            bs_wbuf_put_u8(w, (uint8_t)s[i]);
            continue;
        }
        if (len - i < 3) return BS_E_MALFORMED;
        int hi = bs_hex_value((unsigned char)s[i + 1]), lo = bs_hex_value((unsigned char)s[i + 2]);
        if (hi < 0 || lo < 0) return BS_E_MALFORMED;
        bs_wbuf_put_u8(w, (uint8_t)(hi << 4 | lo));
        i += 2;
    }
    return BS_OK;
}

/* malloc'd NUL-terminated copy of a wbuf's bytes; NULL on failure. */
static char *wbuf_strdup(const bs_wbuf *w)
{
    if (bs_wbuf_status(w) != BS_OK) return NULL;
    char *s = malloc(w->len + 1);
    if (!s) return NULL;
    if (w->len) memcpy(s, w->data, w->len);
    s[w->len] = '\0';
    return s;
}

/* Hex SHA-256; BS_E_CRYPTO if the digest fails (see sigv4.h). */
bs_status bs_sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    if (!EVP_Digest(data ? data : "", len, md, NULL, EVP_sha256(), NULL)) return BS_E_CRYPTO;
    for (size_t i = 0; i < sizeof md; i++) {
        out[2 * i] = HEX_LOWER[md[i] >> 4];
        out[2 * i + 1] = HEX_LOWER[md[i] & 15];
    }
    out[64] = '\0';
    return BS_OK;
}

/* HMAC-SHA256(key, msg) into out[32]. */
static bs_status hmac256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                         uint8_t out[32])
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &n) || n != 32)
        return BS_E_CRYPTO;
    return BS_OK;
}

/* Per-service defaults: S3 keeps its path as-is (see sigv4.h). */
void bs_sigv4_options_init(bs_sigv4_options *o, const char *region, const char *service, time_t t)
{
    memset(o, 0, sizeof *o);
    o->region = region;
    o->service = service;
    o->time = t;
    bool s3 = service && strcmp(service, "s3") == 0;
    o->normalize_path = !s3;
    o->double_encode_path = !s3;
    o->add_content_sha256 = s3;
}

/* Free the result strings and zero `r`; safe on a zeroed or partial result. */
void bs_sigv4_result_free(bs_sigv4_result *r)
{
    free(r->canonical_request);
    free(r->string_to_sign);
    free(r->signed_headers);
    free(r->authorization);
    free(r->presigned_query);
    memset(r, 0, sizeof *r);
}

/* Wipe the derived key (a secret) and the counters. */
void bs_sigv4_key_cache_clear(bs_sigv4_key_cache *c)
{
    OPENSSL_cleanse(c, sizeof *c);
    c->valid = false;
}

/* Append the canonical URI of `path` (see sigv4.h for the two modes). */
static bs_status canonical_path(bs_wbuf *w, const char *path, const bs_sigv4_options *o)
{
    if (!path || !*path) {
        bs_wbuf_put_u8(w, '/');
        return BS_OK;
    }
    if (path[0] != '/') return BS_E_MALFORMED;
    if (!o->double_encode_path) {
        /* Signed as-is, so it must already be a valid encoded request target:
         * a raw space or control byte would be signed as something else than sent. */
        for (const char *p = path; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return BS_E_MALFORMED;
    }
    if (!o->normalize_path) {
        if (o->double_encode_path)
            bs_wbuf_put_percent(w, path, strlen(path), true);
        else
            bs_wbuf_put_str(w, path);
        return BS_OK;
    }
    /* Normalise into a segment stack: empty and "." segments vanish, ".."
     * pops (never above the root), as RFC 3986 remove_dot_segments does. */
    size_t plen = strlen(path);
    size_t nseg = 0, cap = 8;
    const char **seg = malloc(cap * sizeof *seg);
    size_t *seglen = malloc(cap * sizeof *seglen);
    bs_status st = BS_OK;
    if (!seg || !seglen) {
        st = BS_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < plen;) {
        while (i < plen && path[i] == '/')
            i++;
        size_t start = i;
        while (i < plen && path[i] != '/')
            i++;
        size_t n = i - start;
        if (n == 0 || (n == 1 && path[start] == '.')) continue;
        if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
            if (nseg) nseg--;
            continue;
        }
        if (nseg == cap) {
            cap *= 2;
            const char **ns = realloc(seg, cap * sizeof *seg);
            if (ns) seg = ns;
            size_t *nl = realloc(seglen, cap * sizeof *seglen);
            if (nl) seglen = nl;
            if (!ns || !nl) {
                st = BS_E_NOMEM;
                goto out;
            }
        }
        seg[nseg] = path + start;
        seglen[nseg++] = n;
    }
    bs_wbuf_put_u8(w, '/');
    for (size_t k = 0; k < nseg; k++) {
        if (k) bs_wbuf_put_u8(w, '/');
        if (o->double_encode_path)
            bs_wbuf_put_percent(w, seg[k], seglen[k], false);
        else
            bs_wbuf_put(w, seg[k], seglen[k]);
    }
    /* A trailing slash is part of the resource name ("/dir/" != "/dir"). */
    if (nseg && path[plen - 1] == '/') bs_wbuf_put_u8(w, '/');
out:
    free(seg);
    free(seglen);
    return st;
}

/* Strictly encode a raw (not yet encoded) string into a malloc'd string. */
static bs_status reencode_raw(const char *s, char **out)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_percent(&w, s, strlen(s), false);
    *out = wbuf_strdup(&w);
    bs_wbuf_free(&w);
    return *out ? BS_OK : BS_E_NOMEM;
}

/* True if the query already names an X-Amz-* presigning parameter. */
static bool query_has_signing_params(const char *q)
{
    static const char *const names[] = {
        "X-Amz-Algorithm", "X-Amz-Credential",    "X-Amz-Date",          "X-Amz-Expires",
        "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Security-Token"};
    for (const char *p = q ? q : ""; *p;) {
        for (size_t i = 0; i < BS_ARRAY_LEN(names); i++) {
            size_t n = strlen(names[i]);
            if (strncasecmp(p, names[i], n) == 0 && (p[n] == '=' || p[n] == '&' || !p[n]))
                return true;
        }
        const char *amp = strchr(p, '&');
        if (!amp) break;
        p = amp + 1;
    }
    return false;
}

/* qsort order of query parameters: by encoded key, then encoded value. */
static int param_cmp(const void *a, const void *b)
{
    const canon_param *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* Decode then strictly re-encode `len` bytes into a malloc'd string. */
static bs_status reencode(const char *s, size_t len, char **out)
{
    bs_wbuf dec, enc;
    bs_wbuf_init(&dec, 0);
    bs_wbuf_init(&enc, 0);
    bs_status st = uri_decode(&dec, s, len);
    if (st == BS_OK) {
        bs_wbuf_put_percent(&enc, dec.len ? (const char *)dec.data : "", dec.len, false);
        *out = wbuf_strdup(&enc);
        if (!*out) st = BS_E_NOMEM;
    }
    bs_wbuf_free(&dec);
    bs_wbuf_free(&enc);
    return st;
}

/* Parse `query` (plus `extra`, extra_n already-canonical params) into sorted
 * canonical "k=v&k=v" form, malloc'd into *out. */
static bs_status canonical_query(const char *query, const canon_param *extra, size_t extra_n,
                                 char **out)
{
    size_t cap = extra_n + 1, n = 0;
    const char *q = query ? query : "";
    for (const char *p = q; *p; p++)
        if (*p == '&') cap++;
    canon_param *ps = calloc(cap + 1, sizeof *ps);
    bs_status st = BS_OK;
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    if (!ps) {
        st = BS_E_NOMEM;
        goto out;
    }
    for (const char *p = q; *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            BS_GUARD_GOTO(st, reencode(p, klen, &ps[n].key), out);
            if (eq)
                st = reencode(eq + 1, len - klen - 1, &ps[n].value);
            else
                st = (ps[n].value = strdup("")) ? BS_OK : BS_E_NOMEM;
            n++;
            if (st != BS_OK) goto out;
        }
        p += len;
        if (*p == '&') p++;
    }
    for (size_t i = 0; i < extra_n; i++) {
        ps[n].key = strdup(extra[i].key);
        ps[n].value = strdup(extra[i].value);
        n++;
        if (!ps[n - 1].key || !ps[n - 1].value) {
            st = BS_E_NOMEM;
            goto out;
        }
    }
    qsort(ps, n, sizeof *ps, param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i) bs_wbuf_put_u8(&w, '&');
        bs_wbuf_printf(&w, "%s=%s", ps[i].key, ps[i].value);
    }
    *out = wbuf_strdup(&w);
    if (!*out) st = BS_E_NOMEM;
out:
    if (ps)
        for (size_t i = 0; i < cap + 1; i++) {
            free(ps[i].key);
            free(ps[i].value);
        }
    free(ps);
    bs_wbuf_free(&w);
    return st;
}

/* qsort order of headers: by name, duplicates in input order. */
static int header_cmp(const void *a, const void *b)
{
    const canon_header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* RFC 7230 token characters: what a header name may contain. */
static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Fill h with the canonical form of one header: lower-case name, value
 * trimmed with every run of whitespace (line folds included) made one space. */
static bs_status canon_header_set(canon_header *h, const char *name, const char *value,
                                  size_t order)
{
    size_t nlen = strlen(name);
    if (nlen == 0) return BS_E_MALFORMED;
    h->name = malloc(nlen + 1);
    h->value = malloc(strlen(value ? value : "") + 1);
    h->order = order;
    if (!h->name || !h->value) return BS_E_NOMEM;
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_tchar(c)) return BS_E_MALFORMED;
        h->name[i] = (char)tolower(c);
    }
    h->name[nlen] = '\0';
    size_t o = 0;
    bool pending_space = false;
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            pending_space = o > 0;
            continue;
        }
        if (pending_space) h->value[o++] = ' ';
        pending_space = false;
        h->value[o++] = *p;
    }
    h->value[o] = '\0';
    return BS_OK;
}

/* True if the caller already supplies header `lname` (any case). */
static bool has_header(const bs_sigv4_request *req, const char *lname)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, lname) == 0) return true;
    return false;
}

/* Derive (or take from the cache) the signing key for date/region/service. */
static bs_status signing_key(const bs_sigv4_credentials *creds, const char *date,
                             const bs_sigv4_options *o, uint8_t key[32])
{
    bs_status st = BS_OK;
    size_t slen = strlen(creds->secret_access_key);
    uint8_t digest[32];
    uint8_t k1[32], k2[32], k3[32];
    char *ksecret = NULL;
    bs_sigv4_key_cache *c = o->cache;
    if (c) {
        if (!EVP_Digest(creds->secret_access_key, slen, digest, NULL, EVP_sha256(), NULL)) {
            st = BS_E_CRYPTO;
            goto out;
        }
        if (c->valid && strcmp(c->date, date) == 0 && strcmp(c->region, o->region) == 0 &&
            strcmp(c->service, o->service) == 0 &&
            CRYPTO_memcmp(c->secret_digest, digest, sizeof digest) == 0) {
            memcpy(key, c->key, 32);
            c->hits++;
            goto out;
        }
    }
    ksecret = malloc(slen + 5);
    if (!ksecret) {
        st = BS_E_NOMEM;
        goto out;
    }
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, creds->secret_access_key, slen);
    BS_GUARD_GOTO(st, hmac256(ksecret, slen + 4, date, strlen(date), k1), out);
    BS_GUARD_GOTO(st, hmac256(k1, 32, o->region, strlen(o->region), k2), out);
    BS_GUARD_GOTO(st, hmac256(k2, 32, o->service, strlen(o->service), k3), out);
    BS_GUARD_GOTO(st, hmac256(k3, 32, "aws4_request", 12, key), out);
    if (c && strlen(o->region) < sizeof c->region && strlen(o->service) < sizeof c->service) {
        uint64_t hits = c->hits, misses = c->misses;
        bs_sigv4_key_cache_clear(c);
        c->hits = hits;
        c->misses = misses + 1;
        memcpy(c->date, date, 9);
        strcpy(c->region, o->region);
        strcpy(c->service, o->service);
        memcpy(c->secret_digest, digest, sizeof digest);
        memcpy(c->key, key, 32);
        c->valid = true;
    }
out:
    if (ksecret) {
        OPENSSL_cleanse(ksecret, slen + 5);
        free(ksecret);
    }
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    OPENSSL_cleanse(k3, sizeof k3);
    return st;
}

/* The shared core of header and query signing. `presign_expires` 0 = header signing. */
static bs_status sign_common(const bs_sigv4_request *req, const bs_sigv4_credentials *creds,
                             const bs_sigv4_options *o, unsigned presign_expires,
                             bs_sigv4_result *out)
{
    memset(out, 0, sizeof *out);
    if (!creds || !creds->access_key_id || !*creds->access_key_id || !creds->secret_access_key ||
        !*creds->secret_access_key || !o || !o->region || !*o->region || !o->service ||
        !*o->service)
        return BS_E_CONFIG;
    if (!req || !req->method || !*req->method || (req->n_headers && !req->headers))
        return BS_E_MALFORMED;
    for (const char *m = req->method; *m; m++)
        if (!is_tchar((unsigned char)*m)) return BS_E_MALFORMED;

    bs_status st = BS_OK;
    bool presign = presign_expires != 0;
    const char *token = creds->session_token && *creds->session_token ? creds->session_token : NULL;
    bool sign_token = token && !o->omit_session_token_from_signature;
    size_t nh = req->n_headers + 3;
    canon_header *hs = calloc(nh, sizeof *hs);
    char *cquery = NULL;
    char scope[160];
    char date[9];
    uint8_t key[32], sig[32];
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    if (!hs) {
        st = BS_E_NOMEM;
        goto out;
    }

    struct tm tm;
    if (!gmtime_r(&o->time, &tm) ||
        strftime(out->amz_date, sizeof out->amz_date, "%Y%m%dT%H%M%SZ", &tm) != 16) {
        st = BS_E_CONFIG;
        goto out;
    }
    memcpy(date, out->amz_date, 8);
    date[8] = '\0';
    if ((size_t)snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, o->region,
                         o->service) >= sizeof scope) {
        st = BS_E_CONFIG;
        goto out;
    }

    if (req->payload_hash) {
        size_t plen = strlen(req->payload_hash);
        if (plen >= sizeof out->payload_hash) {
            st = BS_E_MALFORMED;
            goto out;
        }
        memcpy(out->payload_hash, req->payload_hash, plen + 1);
    } else {
        BS_GUARD_GOTO(st, bs_sigv4_sha256_hex(req->body, req->body_len, out->payload_hash), out);
    }

    /* Headers: the caller's, then the ones the signer owns. */
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name;
        if (!name || strcasecmp(name, "authorization") == 0 ||
            strcasecmp(name, "x-amz-date") == 0) {
            st = BS_E_MALFORMED;
            goto out;
        }
        BS_GUARD_GOTO(st, canon_header_set(&hs[n], name, req->headers[i].value, n), out);
        n++;
    }
    if (!presign) {
        BS_GUARD_GOTO(st, canon_header_set(&hs[n], "x-amz-date", out->amz_date, n), out);
        n++;
        if (sign_token && !has_header(req, "x-amz-security-token")) {
            BS_GUARD_GOTO(st, canon_header_set(&hs[n], "x-amz-security-token", token, n), out);
            n++;
        }
        if (o->add_content_sha256 && !has_header(req, "x-amz-content-sha256")) {
            BS_GUARD_GOTO(
                st, canon_header_set(&hs[n], "x-amz-content-sha256", out->payload_hash, n), out);
            n++;
        }
    }
    qsort(hs, n, sizeof *hs, header_cmp);

    /* Signed headers list (duplicates appear once). */
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(hs[i].name, hs[i - 1].name) == 0) continue;
        if (w.len) bs_wbuf_put_u8(&w, ';');
        bs_wbuf_put_str(&w, hs[i].name);
    }
    out->signed_headers = wbuf_strdup(&w);
    if (!out->signed_headers) {
        st = BS_E_NOMEM;
        goto out;
    }
    bs_wbuf_reset(&w);

    /* Query, with the presigning parameters when presigning. */
    canon_param extra[6];
    size_t nextra = 0;
    char expires[16], *cred_enc = NULL, *sh_enc = NULL, *tok_enc = NULL;
    if (presign) {
        if (query_has_signing_params(req->query)) {
            st = BS_E_MALFORMED;
            goto out;
        }
        bs_wbuf t;
        bs_wbuf_init(&t, 0);
        bs_wbuf_printf(&t, "%s/%s", creds->access_key_id, scope);
        char *cred = wbuf_strdup(&t);
        bs_wbuf_free(&t);
        st = cred ? reencode_raw(cred, &cred_enc) : BS_E_NOMEM;
        free(cred);
        if (st == BS_OK) st = reencode_raw(out->signed_headers, &sh_enc);
        if (st == BS_OK && sign_token) st = reencode_raw(token, &tok_enc);
        if (st != BS_OK) goto presign_out;
        snprintf(expires, sizeof expires, "%u", presign_expires);
        extra[nextra++] = (canon_param){"X-Amz-Algorithm", ALGORITHM};
        extra[nextra++] = (canon_param){"X-Amz-Credential", cred_enc};
        extra[nextra++] = (canon_param){"X-Amz-Date", out->amz_date};
        extra[nextra++] = (canon_param){"X-Amz-Expires", expires};
        if (sign_token) extra[nextra++] = (canon_param){"X-Amz-Security-Token", tok_enc};
        extra[nextra++] = (canon_param){"X-Amz-SignedHeaders", sh_enc};
    }
    st = canonical_query(req->query, extra, nextra, &cquery);
presign_out:
    free(cred_enc);
    free(sh_enc);
    free(tok_enc);
    if (st != BS_OK) goto out;

    /* Canonical request. */
    bs_wbuf_put_str(&w, req->method);
    bs_wbuf_put_u8(&w, '\n');
    BS_GUARD_GOTO(st, canonical_path(&w, req->path, o), out);
    bs_wbuf_printf(&w, "\n%s\n", cquery);
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(hs[i].name, hs[i - 1].name) == 0) {
            bs_wbuf_printf(&w, ",%s", hs[i].value);
            continue;
        }
        if (i) bs_wbuf_put_u8(&w, '\n');
        bs_wbuf_printf(&w, "%s:%s", hs[i].name, hs[i].value);
    }
    bs_wbuf_printf(&w, "\n\n%s\n%s", out->signed_headers, out->payload_hash);
    out->canonical_request = wbuf_strdup(&w);
    if (!out->canonical_request) {
        st = BS_E_NOMEM;
        goto out;
    }
    bs_wbuf_reset(&w);

    /* String to sign. */
    char creq_hash[65];
    BS_GUARD_GOTO(
        st, bs_sigv4_sha256_hex(out->canonical_request, strlen(out->canonical_request), creq_hash),
        out);
    bs_wbuf_printf(&w, ALGORITHM "\n%s\n%s\n%s", out->amz_date, scope, creq_hash);
    out->string_to_sign = wbuf_strdup(&w);
    if (!out->string_to_sign) {
        st = BS_E_NOMEM;
        goto out;
    }
    bs_wbuf_reset(&w);

    BS_GUARD_GOTO(st, signing_key(creds, date, o, key), out);
    BS_GUARD_GOTO(st, hmac256(key, 32, out->string_to_sign, strlen(out->string_to_sign), sig), out);
    for (size_t i = 0; i < 32; i++) {
        out->signature[2 * i] = HEX_LOWER[sig[i] >> 4];
        out->signature[2 * i + 1] = HEX_LOWER[sig[i] & 15];
    }
    out->signature[64] = '\0';

    if (presign) {
        bs_wbuf_printf(&w, "%s&X-Amz-Signature=%s", cquery, out->signature);
        if (token && !sign_token) {
            /* Token added after signing (omit_session_token): encode it like any value. */
            char *te = NULL;
            BS_GUARD_GOTO(st, reencode_raw(token, &te), out);
            bs_wbuf_printf(&w, "&X-Amz-Security-Token=%s", te);
            free(te);
        }
        out->presigned_query = wbuf_strdup(&w);
        if (!out->presigned_query) st = BS_E_NOMEM;
    } else {
        bs_wbuf_printf(&w, ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                       creds->access_key_id, scope, out->signed_headers, out->signature);
        out->authorization = wbuf_strdup(&w);
        if (!out->authorization) st = BS_E_NOMEM;
    }
out:
    if (hs)
        for (size_t i = 0; i < nh; i++) {
            free(hs[i].name);
            free(hs[i].value);
        }
    free(hs);
    free(cquery);
    bs_wbuf_free(&w);
    OPENSSL_cleanse(key, sizeof key);
    return st;
}

/* Header signing (see sigv4.h). */
bs_status bs_sigv4_sign(const bs_sigv4_request *req, const bs_sigv4_credentials *creds,
                        const bs_sigv4_options *opts, bs_sigv4_result *out)
{
    return sign_common(req, creds, opts, 0, out);
}

/* Query signing; rejects expiries SigV4 does not allow (see sigv4.h). */
bs_status bs_sigv4_presign(const bs_sigv4_request *req, const bs_sigv4_credentials *creds,
                           const bs_sigv4_options *opts, unsigned expires_s, bs_sigv4_result *out)
{
    if (expires_s == 0 || expires_s > 604800) {
        memset(out, 0, sizeof *out);
        return BS_E_CONFIG;
    }
    return sign_common(req, creds, opts, expires_s, out);
}
