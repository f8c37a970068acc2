/*
 * jwt.c - JWS verification against a JWKS (see jwt.h). JSON through cJSON,
 * keys and signatures through OpenSSL 3 (EVP_PKEY_fromdata, EVP_DigestVerify).
 */
#include "brokerside/jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/crypto.h>

#include "brokerside/cursor.h"
#include "brokerside/text.h"

#define JWKS_MAX_FILE (1u << 20)
#define JWKS_MAX_KEYS 64

typedef enum key_kind { KEY_RSA = 0, KEY_EC256, KEY_EC384 } key_kind;

typedef struct jwk {
    char kid[128];
    bool has_kid;
    char alg[16]; /* "" when the JWK names none */
    key_kind kind;
    EVP_PKEY *pkey;
} jwk;

struct bs_jwks {
    jwk keys[JWKS_MAX_KEYS];
    size_t n;
};

/* ---------------------------------------------------------------- base64url */

/* Value of a base64url character, -1 if not one. */
static int b64url_val(uint8_t ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '-') return 62;
    if (ch == '_') return 63;
    return -1;
}

/* Decode unpadded base64url p[0..len) into a fresh buffer (*out, *outlen;
 * NUL-terminated for JSON use). BS_E_MALFORMED on a bad character, a bad
 * length or a non-canonical last character (unused low bits set: RFC 4648
 * section 3.5), so one token has exactly one spelling. */
static bs_status b64url_decode(const uint8_t *p, size_t len, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    if (len % 4 == 1) return BS_E_MALFORMED;
    uint8_t *o = malloc(len / 4 * 3 + 4);
    if (!o) return BS_E_NOMEM;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    bs_cursor c;
    bs_cursor_init(&c, p, len);
    while (bs_cursor_remaining(&c) > 0) {
        uint8_t ch;
        if (bs_read_u8(&c, &ch) != BS_OK) break;
        int v = b64url_val(ch);
        if (v < 0) {
            free(o);
            return BS_E_MALFORMED;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        free(o);
        return BS_E_MALFORMED;
    }
    o[n] = 0;
    *out = o;
    *outlen = n;
    return BS_OK;
}

/* ---------------------------------------------------------------- JWKS */

/* Decode a base64url JSON string member into a BIGNUM (NULL if absent/bad). */
static BIGNUM *member_bn(const cJSON *o, const char *k, uint8_t **raw, size_t *rawlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v)) return NULL;
    uint8_t *b;
    size_t n;
    if (b64url_decode((const uint8_t *)v->valuestring, strlen(v->valuestring), &b, &n) != BS_OK ||
        n == 0) {
        free(b);
        return NULL;
    }
    BIGNUM *bn = BN_bin2bn(b, (int)n, NULL);
    if (raw) {
        *raw = b;
        *rawlen = n;
    } else {
        free(b);
    }
    return bn;
}

/* An RSA public key from n and e. */
static EVP_PKEY *rsa_key(const cJSON *o, const char **why)
{
    BIGNUM *n = member_bn(o, "n", NULL, NULL), *e = member_bn(o, "e", NULL, NULL);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    *why = "RSA key needs base64url n and e";
    if (!n || !e || !bld) goto out;
    *why = "RSA key smaller than 2048 bits";
    if (BN_num_bits(n) < 2048) goto out;
    *why = "RSA key does not load";
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

/* An EC public key (P-256 / P-384) from crv, x and y. */
static EVP_PKEY *ec_key(const cJSON *o, key_kind *kind, const char **why)
{
    const cJSON *crv = cJSON_GetObjectItemCaseSensitive(o, "crv");
    *why = "EC key needs crv P-256 or P-384";
    if (!cJSON_IsString(crv)) return NULL;
    const char *group;
    size_t clen;
    if (strcmp(crv->valuestring, "P-256") == 0) {
        group = "prime256v1";
        clen = 32;
        *kind = KEY_EC256;
    } else if (strcmp(crv->valuestring, "P-384") == 0) {
        group = "secp384r1";
        clen = 48;
        *kind = KEY_EC384;
    } else {
        return NULL;
    }
    uint8_t *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    BIGNUM *bx = member_bn(o, "x", &x, &xl), *by = member_bn(o, "y", &y, &yl);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t pub[1 + 2 * 48];
    *why = "EC key needs base64url x and y of the curve's size";
    if (!bx || !by || xl != clen || yl != clen) goto out;
    pub[0] = 0x04;
    memcpy(pub + 1, x, clen);
    memcpy(pub + 1 + clen, y, clen);
    *why = "EC key does not load (point not on the curve?)";
    if (!(bld = OSSL_PARAM_BLD_new()) ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * clen) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        pkey = NULL;
        goto out;
    }
    /* fromdata does not check the point: do it, or a bad key verifies nothing useful. */
    EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!chk || EVP_PKEY_public_check(chk) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(chk);
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bx);
    BN_free(by);
    free(x);
    free(y);
    return pkey;
}

/* See jwt.h. */
void bs_jwks_free(bs_jwks *k)
{
    if (!k) return;
    for (size_t i = 0; i < k->n; i++)
        EVP_PKEY_free(k->keys[i].pkey);
    free(k);
}

/* See jwt.h. */
size_t bs_jwks_count(const bs_jwks *k)
{
    return k ? k->n : 0;
}

/* See jwt.h. */
bs_status bs_jwks_parse(const char *json, size_t len, bs_jwks **out, char *err, size_t errlen)
{
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    bs_jwks *k = NULL;
    bs_status st = BS_E_CONFIG;
    if (!root) {
        snprintf(err, errlen, "not valid JSON");
        goto out;
    }
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    if (!cJSON_IsArray(keys)) {
        snprintf(err, errlen, "no \"keys\" array");
        goto out;
    }
    if (!(k = calloc(1, sizeof *k))) {
        st = BS_E_NOMEM;
        goto out;
    }
    int i = -1;
    const cJSON *o;
    cJSON_ArrayForEach(o, keys)
    {
        i++;
        const cJSON *kty = cJSON_GetObjectItemCaseSensitive(o, "kty");
        const cJSON *use = cJSON_GetObjectItemCaseSensitive(o, "use");
        const cJSON *kid = cJSON_GetObjectItemCaseSensitive(o, "kid");
        const cJSON *alg = cJSON_GetObjectItemCaseSensitive(o, "alg");
        if (!cJSON_IsObject(o) || !cJSON_IsString(kty)) {
            snprintf(err, errlen, "keys[%d]: not a JWK (no kty)", i);
            goto out;
        }
        if (use && !(cJSON_IsString(use) && strcmp(use->valuestring, "sig") == 0)) continue;
        bool rsa = strcmp(kty->valuestring, "RSA") == 0, ec = strcmp(kty->valuestring, "EC") == 0;
        if (!rsa && !ec) continue; /* oct, OKP: not for us */
        if (k->n == JWKS_MAX_KEYS) {
            snprintf(err, errlen, "more than %d signing keys", JWKS_MAX_KEYS);
            goto out;
        }
        jwk *j = &k->keys[k->n];
        const char *why = "";
        j->kind = KEY_RSA;
        j->pkey = rsa ? rsa_key(o, &why) : ec_key(o, &j->kind, &why);
        if (!j->pkey) {
            snprintf(err, errlen, "keys[%d]: %s", i, why);
            goto out;
        }
        k->n++;
        if (cJSON_IsString(kid)) {
            if (strlen(kid->valuestring) >= sizeof j->kid) {
                snprintf(err, errlen, "keys[%d]: kid too long", i);
                goto out;
            }
            snprintf(j->kid, sizeof j->kid, "%s", kid->valuestring);
            j->has_kid = true;
        }
        if (cJSON_IsString(alg) && strlen(alg->valuestring) < sizeof j->alg)
            snprintf(j->alg, sizeof j->alg, "%s", alg->valuestring);
    }
    if (k->n == 0) {
        snprintf(err, errlen, "no RSA or EC signing key");
        goto out;
    }
    *out = k;
    k = NULL;
    st = BS_OK;
out:
    bs_jwks_free(k);
    cJSON_Delete(root);
    return st;
}

/* See jwt.h. */
bs_status bs_jwks_load(const char *path, bs_jwks **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s", path);
        return BS_E_IO;
    }
    char *buf = malloc(JWKS_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, JWKS_MAX_FILE + 1, f) : 0;
    bool rerr = ferror(f);
    fclose(f);
    if (!buf) return BS_E_NOMEM;
    bs_status st;
    if (rerr) {
        snprintf(err, errlen, "cannot read %s", path);
        st = BS_E_IO;
    } else if (n > JWKS_MAX_FILE) {
        snprintf(err, errlen, "%s is larger than 1 MiB", path);
        st = BS_E_CONFIG;
    } else {
        st = bs_jwks_parse(buf, n, out, err, errlen);
    }
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- verify */

typedef struct alg_info {
    const char *name;
    key_kind kind;
    const char *md; /* digest name */
} alg_info;

static const alg_info g_algs[] = {
    {"RS256", KEY_RSA, "SHA256"}, {"RS384", KEY_RSA, "SHA384"},   {"RS512", KEY_RSA, "SHA512"},
    {"ES256", KEY_EC256, "SHA256"}, {"ES384", KEY_EC384, "SHA384"},
};

/* Verify sig over msg with key `j` for algorithm `a`. */
static bool sig_ok(const jwk *j, const alg_info *a, const uint8_t *msg, size_t mlen,
                   const uint8_t *sig, size_t slen)
{
    uint8_t der[160];
    const uint8_t *s = sig;
    size_t sl = slen;
    if (a->kind != KEY_RSA) {
        /* JWS carries r||s; OpenSSL wants a DER ECDSA-Sig-Value. */
        size_t half = a->kind == KEY_EC256 ? 32 : 48;
        if (slen != 2 * half) return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *ss = BN_bin2bn(sig + half, (int)half, NULL);
        if (!es || !r || !ss || !ECDSA_SIG_set0(es, r, ss)) {
            BN_free(r);
            BN_free(ss);
            ECDSA_SIG_free(es);
            return false;
        }
        int dl = i2d_ECDSA_SIG(es, NULL);
        uint8_t *dp = der;
        if (dl <= 0 || (size_t)dl > sizeof der || i2d_ECDSA_SIG(es, &dp) != dl) {
            ECDSA_SIG_free(es);
            return false;
        }
        ECDSA_SIG_free(es);
        s = der;
        sl = (size_t)dl;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit_ex(ctx, NULL, a->md, NULL, NULL, j->pkey, NULL) == 1 &&
              EVP_DigestVerify(ctx, s, sl, msg, mlen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Seconds bound for numeric claims: far past any real date, far from
 * int64_t overflow when the leeway is added (1e300 would make the cast
 * undefined). */
#define CLAIM_SECONDS_MAX 4.0e18

/* A numeric claim as seconds (clamped to +-CLAIM_SECONDS_MAX); false if
 * absent or not a number. */
static bool num_claim(const cJSON *o, const char *k, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= -CLAIM_SECONDS_MAX)) d = -CLAIM_SECONDS_MAX; /* NaN too */
    if (d > CLAIM_SECONDS_MAX) d = CLAIM_SECONDS_MAX;
    *out = (int64_t)d;
    return true;
}

/* Check claims and copy the principal. */
static bs_status check_claims(const cJSON *pl, const bs_jwt_expect *x, char *principal,
                              size_t plen, const char **why)
{
    int64_t exp, nbf;
    if (!num_claim(pl, "exp", &exp)) {
        *why = "token has no exp";
        return BS_E_STATE;
    }
    if (x->now_s > exp + x->leeway_s) {
        *why = "token expired";
        return BS_E_STATE;
    }
    if (num_claim(pl, "nbf", &nbf) && x->now_s + x->leeway_s < nbf) {
        *why = "token not yet valid (nbf)";
        return BS_E_STATE;
    }
    if (x->issuer) {
        const cJSON *iss = cJSON_GetObjectItemCaseSensitive(pl, "iss");
        if (!cJSON_IsString(iss) || strcmp(iss->valuestring, x->issuer) != 0) {
            *why = "token issuer (iss) does not match";
            return BS_E_STATE;
        }
    }
    if (x->audience) {
        const cJSON *aud = cJSON_GetObjectItemCaseSensitive(pl, "aud");
        bool ok = cJSON_IsString(aud) && strcmp(aud->valuestring, x->audience) == 0;
        const cJSON *a;
        if (cJSON_IsArray(aud)) cJSON_ArrayForEach(a, aud)
            {
                if (cJSON_IsString(a) && strcmp(a->valuestring, x->audience) == 0) ok = true;
            }
        if (!ok) {
            *why = "token audience (aud) does not match";
            return BS_E_STATE;
        }
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(pl, x->claim ? x->claim : "sub");
    if (!cJSON_IsString(c) || c->valuestring[0] == 0 || strlen(c->valuestring) >= plen) {
        *why = "token lacks the principal claim (or it is too long)";
        return BS_E_STATE;
    }
    for (const char *p = c->valuestring; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *why = "principal claim has control characters";
            return BS_E_STATE;
        }
    /* the same rule as SASL names (sasl.h): it goes into logs, audit, labels */
    if (!bs_utf8_valid((const uint8_t *)c->valuestring, strlen(c->valuestring))) {
        *why = "principal claim is not valid UTF-8";
        return BS_E_STATE;
    }
    snprintf(principal, plen, "%s", c->valuestring);
    return BS_OK;
}

/* See jwt.h. */
bs_status bs_jwt_verify(const bs_jwks *keys, const uint8_t *token, size_t len,
                        const bs_jwt_expect *x, char *principal, size_t plen, const char **why)
{
    *why = "malformed token";
    if (plen) principal[0] = 0;
    if (!keys || len == 0 || len > BS_JWT_MAX_TOKEN) return BS_E_MALFORMED;
    const uint8_t *d1 = memchr(token, '.', len);
    if (!d1) return BS_E_MALFORMED;
    const uint8_t *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token))) return BS_E_MALFORMED;
    uint8_t *hdr = NULL, *pay = NULL, *sig = NULL;
    size_t hl, pl, sl;
    cJSON *h = NULL, *p = NULL;
    bs_status st = BS_E_MALFORMED;
    if (b64url_decode(token, (size_t)(d1 - token), &hdr, &hl) != BS_OK ||
        b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pay, &pl) != BS_OK ||
        b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), &sig, &sl) != BS_OK)
        goto out;
    if (!(h = cJSON_ParseWithLength((const char *)hdr, hl)) || !cJSON_IsObject(h) ||
        !(p = cJSON_ParseWithLength((const char *)pay, pl)) || !cJSON_IsObject(p))
        goto out;
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    if (!cJSON_IsString(alg)) goto out;
    st = BS_E_UNSUPPORTED;
    if (cJSON_GetObjectItemCaseSensitive(h, "crit")) {
        *why = "token has crit headers";
        goto out;
    }
    const alg_info *a = NULL;
    for (size_t i = 0; i < sizeof g_algs / sizeof g_algs[0]; i++)
        if (strcmp(g_algs[i].name, alg->valuestring) == 0) a = &g_algs[i];
    if (!a) {
        *why = strcasecmp(alg->valuestring, "none") == 0 ? "unsigned token (alg none)"
                                                          : "token algorithm not accepted";
        goto out;
    }
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(h, "kid");
    bool tried = false, verified = false;
    for (size_t i = 0; i < keys->n && !verified; i++) {
        const jwk *j = &keys->keys[i];
        if (j->kind != a->kind) continue;
        if (j->alg[0] && strcmp(j->alg, a->name) != 0) continue;
        if (cJSON_IsString(kid) && (!j->has_kid || strcmp(j->kid, kid->valuestring) != 0)) continue;
        tried = true;
        verified = sig_ok(j, a, token, (size_t)(d2 - token), sig, sl);
    }
    if (!tried) {
        *why = "no key in the JWKS for this token";
        st = BS_E_NOT_FOUND;
        goto out;
    }
    if (!verified) {
        *why = "token signature does not verify";
        st = BS_E_CRYPTO;
        goto out;
    }
    st = check_claims(p, x, principal, plen, why);
    if (st == BS_OK) *why = "verified";
out:
    cJSON_Delete(h);
    cJSON_Delete(p);
    if (pay) OPENSSL_cleanse(pay, pl);
    free(hdr);
    free(pay);
    free(sig);
    return st;
}
