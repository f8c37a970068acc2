/* fuzz_sasl.c - libFuzzer target: the SASL client-message parsers, the JWT
 * verifier (structure, base64url, JSON) and the SASL tracker over arbitrary
 * SaslHandshake/SaslAuthenticate bodies. The first byte picks the parser. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/identity.h"
#include "brokerside/jwt.h"
#include "brokerside/sasl.h"

/* libFuzzer entry point: one input, never fails (a bug aborts or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    /* exact-size copy: ASan flags any read past the input */
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return 0;
    memcpy(p, data + 1, n);
    char u[BS_SASL_NAME_MAX + 1], z[BS_SASL_NAME_MAX + 1];
    bool tok;
    const uint8_t *t;
    size_t tl;
    switch (sel % 5) {
    case 0:
        if (bs_sasl_plain_parse(p, n, u, z) == BS_OK && strlen(u) > BS_SASL_NAME_MAX) abort();
        break;
    case 1:
        if (bs_sasl_scram_client_first(p, n, u, z, &tok) == BS_OK && u[0] == 0) abort();
        break;
    case 2:
        if (bs_sasl_oauthbearer_parse(p, n, &t, &tl, z) == BS_OK && (t < p || t + tl > p + n))
            abort();
        break;
    case 3: {
        static bs_jwks *keys;
        if (!keys) {
            static const char doc[] =
                "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
            char err[128];
            if (bs_jwks_parse(doc, sizeof doc - 1, &keys, err, sizeof err) != BS_OK) abort();
        }
        bs_jwt_expect x = {.issuer = "i", .claim = "sub", .now_s = 1700000000};
        char pr[256];
        const char *why;
        (void)!bs_jwt_verify(keys, p, n, &x, pr, sizeof pr, &why);
        break;
    }
    default: {
        bs_conn_identity id;
        bs_conn_identity_init(&id, NULL);
        const char *why;
        /* a handshake for the mechanism the second byte picks, then the body */
        static const char *const mechs[] = {"PLAIN", "SCRAM-SHA-256", "OAUTHBEARER", "GSSAPI"};
        const char *m = mechs[(n ? p[0] : 0) % 4];
        uint8_t hs[32];
        size_t ml = strlen(m);
        hs[0] = 0;
        hs[1] = (uint8_t)ml;
        memcpy(hs + 2, m, ml);
        (void)bs_sasl_track_request(&id, 17, 1, hs, ml + 2, &why);
        static const uint8_t ok[] = {0, 0, 0, 0, 0, 0};
        (void)bs_sasl_track_response(&id, 17, 1, ok, sizeof ok, &why);
        (void)bs_sasl_track_request(&id, 36, (int16_t)(sel >> 4) % 3, p, n, &why);
        (void)bs_sasl_track_response(&id, 36, (int16_t)(sel >> 4) % 3, p, n, &why);
        break;
    }
    }
    free(p);
    return 0;
}
