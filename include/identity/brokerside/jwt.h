/*
 * jwt.h - verification of OAUTHBEARER tokens (compact JWS, RFC 7515/7519)
 * against a JWKS file (RFC 7517), so a principal taken from a bearer token is
 * trusted only when its signature checks out.
 *
 * Accepted algorithms: RS256/RS384/RS512 (RSA keys, PKCS#1 v1.5) and
 * ES256/ES384 (EC P-256/P-384 keys). "alg":"none", HMAC algorithms (a JWKS
 * holds public keys only) and tokens with a "crit" header are refused. The
 * token is read in place and never copied or logged.
 */
#ifndef BROKERSIDE_JWT_H
#define BROKERSIDE_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/status.h"

/* Largest token looked at (bytes of the compact form). */
#define BS_JWT_MAX_TOKEN 16384

typedef struct bs_jwks bs_jwks;

/* Parse a JWKS document ({"keys":[...]}): RSA (n, e) and EC (crv P-256/P-384,
 * x, y) keys with "use" absent or "sig". Keys of other types are skipped; a
 * document with no usable key, or a usable-looking key that does not decode,
 * is BS_E_CONFIG with a reason in err[errlen]. *out freed with bs_jwks_free. */
bs_status bs_jwks_parse(const char *json, size_t len, bs_jwks **out, char *err,
                        size_t errlen) BS_WUR;
/* Same, from a file (at most 1 MiB). BS_E_IO if it cannot be read. */
bs_status bs_jwks_load(const char *path, bs_jwks **out, char *err, size_t errlen) BS_WUR;
/* Number of usable keys. */
size_t bs_jwks_count(const bs_jwks *k);
void bs_jwks_free(bs_jwks *k);

/* What a token must satisfy. NULL issuer/audience: not checked. */
typedef struct bs_jwt_expect {
    const char *issuer;   /* "iss" must equal it */
    const char *audience; /* "aud" (string or array) must contain it */
    const char *claim;    /* the principal claim, e.g. "sub" */
    int64_t now_s;        /* current time, seconds since the epoch */
    int64_t leeway_s;     /* clock skew allowed on exp and nbf */
} bs_jwt_expect;

/* Verify `token` (compact JWS) with a key of `keys` (by "kid" when the token
 * names one) and check exp (required), nbf, iss, aud; then copy the string
 * claim x->claim into principal[plen]. Errors: BS_E_MALFORMED (not a JWS, bad
 * base64url or JSON), BS_E_UNSUPPORTED (alg none, HMAC, unknown alg, crit),
 * BS_E_NOT_FOUND (no key for it), BS_E_CRYPTO (bad signature), BS_E_STATE
 * (expired, not yet valid, wrong iss/aud, claim missing or too long). *why
 * gets a static reason for logs and audit (never token bytes). */
bs_status bs_jwt_verify(const bs_jwks *keys, const uint8_t *token, size_t len,
                        const bs_jwt_expect *x, char *principal, size_t plen,
                        const char **why) BS_WUR;

#endif
