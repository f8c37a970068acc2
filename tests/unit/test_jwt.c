/* test_jwt.c - OAUTHBEARER token verification against a JWKS (src/identity/jwt.c). */
#include <time.h>

#include "brokerside/jwt.h"
#include "jwt_test_util.h"
#include "test.h"

static EVP_PKEY *g_rsa, *g_ec, *g_other;
static bs_jwks *g_keys;

static void setup(void)
{
    g_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    g_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    g_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    char a[2048], b[1024], doc[4096], err[256];
    tu_jwk(g_rsa, "r1", a, sizeof a);
    tu_jwk(g_ec, "e1", b, sizeof b);
    snprintf(doc, sizeof doc, "{\"keys\":[%s,%s,{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", a, b);
    if (bs_jwks_parse(doc, strlen(doc), &g_keys, err, sizeof err) != BS_OK)
        fprintf(stderr, "jwks: %s\n", err);
}

/* Verify `tok` with the standard expectations; principal into p. */
static bs_status verify(const char *tok, char *p, const char **why)
{
    bs_jwt_expect x = {.issuer = "https://idp.example",
                       .audience = "kafka",
                       .claim = "sub",
                       .now_s = (int64_t)time(NULL),
                       .leeway_s = 30};
    return bs_jwt_verify(g_keys, (const uint8_t *)tok, strlen(tok), &x, p, 256, why);
}

static void claims(char *out, size_t n, const char *sub, long exp_delta, const char *iss,
                   const char *aud)
{
    snprintf(out, n, "{\"sub\":\"%s\",\"exp\":%ld,\"iss\":\"%s\",\"aud\":%s}", sub,
             (long)time(NULL) + exp_delta, iss, aud);
}

static void test_jwks_parse(void)
{
    CHECK(g_keys != NULL);
    CHECK_EQ(bs_jwks_count(g_keys), 2);
    bs_jwks *k = NULL;
    char err[256];
    CHECK_EQ(bs_jwks_parse("{}", 2, &k, err, sizeof err), BS_E_CONFIG);
    CHECK_EQ(bs_jwks_parse("{\"keys\":[]}", 11, &k, err, sizeof err), BS_E_CONFIG);
    const char *bad = "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}";
    CHECK_EQ(bs_jwks_parse(bad, strlen(bad), &k, err, sizeof err), BS_E_CONFIG); /* < 2048 bits */
    const char *badec = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}";
    CHECK_EQ(bs_jwks_parse(badec, strlen(badec), &k, err, sizeof err), BS_E_CONFIG); /* off curve */
    CHECK_EQ(bs_jwks_parse("not json", 8, &k, err, sizeof err), BS_E_CONFIG);
    CHECK(k == NULL);
}

static void test_valid_tokens(void)
{
    char c[512], tok[8192], p[256];
    const char *why;
    claims(c, sizeof c, "alice", 300, "https://idp.example", "\"kafka\"");
    tu_jwt(g_rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_OK);
    CHECK_STR(p, "alice");
    claims(c, sizeof c, "bob", 300, "https://idp.example", "[\"x\",\"kafka\"]");
    tu_jwt(g_ec, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_OK);
    CHECK_STR(p, "bob");
    /* no kid: every key of the algorithm's type is tried */
    tu_jwt(g_ec, "{\"alg\":\"ES256\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_OK);
}

static void test_rejected_tokens(void)
{
    char c[512], tok[8192], p[256];
    const char *why;
    claims(c, sizeof c, "alice", 300, "https://idp.example", "\"kafka\"");
    /* signed by a key not in the JWKS */
    tu_jwt(g_other, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_CRYPTO);
    CHECK_STR(p, "");
    /* alg none, empty signature */
    tu_jwt(NULL, "{\"alg\":\"none\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_UNSUPPORTED);
    CHECK_STR(why, "unsigned token (alg none)");
    tu_jwt(NULL, "{\"alg\":\"HS256\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_UNSUPPORTED);
    tu_jwt(g_rsa, "{\"alg\":\"RS256\",\"crit\":[\"x\"]}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_UNSUPPORTED);
    /* unknown kid */
    tu_jwt(g_rsa, "{\"alg\":\"RS256\",\"kid\":\"zz\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_NOT_FOUND);
    /* an RSA signature presented as ES256 */
    tu_jwt(g_rsa, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_CRYPTO);
    /* expired (beyond the leeway), wrong issuer, wrong audience, no exp */
    claims(c, sizeof c, "alice", -120, "https://idp.example", "\"kafka\"");
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_STATE);
    CHECK_STR(why, "token expired");
    claims(c, sizeof c, "alice", 300, "https://evil.example", "\"kafka\"");
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_STATE);
    claims(c, sizeof c, "alice", 300, "https://idp.example", "\"other\"");
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_STATE);
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"iss\":\"https://idp.example\",\"aud\":\"kafka\"}",
           tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_STATE);
    /* a tampered payload */
    claims(c, sizeof c, "alice", 300, "https://idp.example", "\"kafka\"");
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}", c, tok, sizeof tok);
    char *dot = strchr(tok, '.');
    dot[3] ^= 1;
    CHECK(verify(tok, p, &why) != BS_OK);
    /* base64url must be canonical: flipping the unused low bits of the last
     * signature character spells the same bytes another way */
    claims(c, sizeof c, "alice", 300, "https://idp.example", "\"kafka\"");
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}", c, tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_OK);
    size_t tl = strlen(tok);
    CHECK(tl % 4 != 0); /* 256-byte RSA signature: 342 characters, 4 bits unused */
    char *last = &tok[tl - 1];
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    *last = b64[(strchr(b64, *last) - b64) | 1];
    CHECK_EQ(verify(tok, p, &why), BS_E_MALFORMED);
    /* absurd numeric claims are clamped, not undefined: far-future exp is
     * accepted, a far-future nbf refused, a far-past exp refused */
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}",
           "{\"sub\":\"a\",\"iss\":\"https://idp.example\",\"aud\":\"kafka\",\"exp\":1e300}",
           tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_OK);
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}",
           "{\"sub\":\"a\",\"iss\":\"https://idp.example\",\"aud\":\"kafka\",\"exp\":1e300,"
           "\"nbf\":9.3e18}",
           tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_STATE);
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}",
           "{\"sub\":\"a\",\"iss\":\"https://idp.example\",\"aud\":\"kafka\",\"exp\":-1e300}",
           tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_STATE);
    /* a principal claim that is not UTF-8 (an overlong '/') is refused like a SASL name */
    tu_jwt(g_rsa, "{\"alg\":\"RS256\"}",
           "{\"sub\":\"a\xc0\xaf" "b\",\"iss\":\"https://idp.example\",\"aud\":\"kafka\",\"exp\":1e300}",
           tok, sizeof tok);
    CHECK_EQ(verify(tok, p, &why), BS_E_STATE);
    CHECK_STR(why, "principal claim is not valid UTF-8");
    /* structure */
    CHECK_EQ(verify("abc", p, &why), BS_E_MALFORMED);
    CHECK_EQ(verify("a.b.c.d", p, &why), BS_E_MALFORMED);
    CHECK_EQ(verify("!!.e30.", p, &why), BS_E_MALFORMED);
    CHECK_EQ(verify("e30.e30.", p, &why), BS_E_MALFORMED); /* no alg */
}

int main(void)
{
    setup();
    RUN(test_jwks_parse);
    RUN(test_valid_tokens);
    RUN(test_rejected_tokens);
    bs_jwks_free(g_keys);
    EVP_PKEY_free(g_rsa);
    EVP_PKEY_free(g_ec);
    EVP_PKEY_free(g_other);
    return test_report();
}
