/*
 * jwt_test_util.h - make JWKS documents and signed tokens for tests with
 * freshly generated keys (OpenSSL), so no key material lives in the tree.
 */
#ifndef BS_JWT_TEST_UTIL_H
#define BS_JWT_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

/* base64url without padding of p[0..n) into out (NUL-terminated). */
static void tu_b64url(const unsigned char *p, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = t[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = t[v & 63];
    }
    out[o] = 0;
}

/* A BIGNUM parameter of `k` as base64url, left-padded to `pad` bytes (0: none). */
static void tu_bn_param(EVP_PKEY *k, const char *name, size_t pad, char *out)
{
    BIGNUM *bn = NULL;
    EVP_PKEY_get_bn_param(k, name, &bn);
    unsigned char buf[600];
    int n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    tu_b64url(buf, (size_t)n, out);
    BN_free(bn);
}

/* The JWK of `k` (RSA or EC P-256) with `kid` into out[outlen]. */
static void tu_jwk(EVP_PKEY *k, const char *kid, char *out, size_t outlen)
{
    char a[1024], b[1024];
    int n;
    if (EVP_PKEY_is_a(k, "RSA")) {
        tu_bn_param(k, OSSL_PKEY_PARAM_RSA_N, 0, a);
        tu_bn_param(k, OSSL_PKEY_PARAM_RSA_E, 0, b);
        n = snprintf(out, outlen, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}",
                 kid, a, b);
    } else {
        tu_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, 32, a);
        tu_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b);
        n = snprintf(out, outlen,
                 "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", kid,
                 a, b);
    }
    if (n < 0 || (size_t)n >= outlen) abort(); /* a test key that does not fit is a test bug */
}

/* A compact JWS of header/payload JSON signed with `k` (RS256 or ES256 by key
 * type) into out[outlen]; `k` NULL leaves the signature empty. */
static void tu_jwt(EVP_PKEY *k, const char *header, const char *payload, char *out, size_t outlen)
{
    char h[2048], p[4096], sig[1024] = "";
    tu_b64url((const unsigned char *)header, strlen(header), h);
    tu_b64url((const unsigned char *)payload, strlen(payload), p);
    char input[6200];
    snprintf(input, sizeof input, "%s.%s", h, p);
    if (k) {
        unsigned char s[1024];
        size_t sl = sizeof s;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, k, NULL);
        EVP_DigestSign(ctx, s, &sl, (const unsigned char *)input, strlen(input));
        EVP_MD_CTX_free(ctx);
        if (EVP_PKEY_is_a(k, "EC")) {
            const unsigned char *q = s;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sl);
            unsigned char rs[64];
            BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
            ECDSA_SIG_free(es);
            tu_b64url(rs, 64, sig);
        } else {
            tu_b64url(s, sl, sig);
        }
    }
    snprintf(out, outlen, "%s.%s", input, sig);
}

#endif
