/* test_sasl.c - the client-side SASL parsers (src/identity/sasl.c). */
#include <string.h>

#include "brokerside/sasl.h"
#include "test.h"

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

static void test_mech_names(void)
{
    CHECK_EQ(bs_sasl_mech_parse(B("PLAIN")), BS_SASL_PLAIN);
    CHECK_EQ(bs_sasl_mech_parse(B("SCRAM-SHA-512")), BS_SASL_SCRAM_SHA_512);
    CHECK_EQ(bs_sasl_mech_parse(B("SCRAM-SHA-256")), BS_SASL_SCRAM_SHA_256);
    CHECK_EQ(bs_sasl_mech_parse(B("OAUTHBEARER")), BS_SASL_OAUTHBEARER);
    CHECK_EQ(bs_sasl_mech_parse(B("GSSAPI")), BS_SASL_OTHER);
    CHECK_EQ(bs_sasl_mech_parse(B("plain")), BS_SASL_OTHER);
    CHECK_EQ(bs_sasl_mech_parse(NULL, 0), BS_SASL_NONE);
    CHECK_STR(bs_sasl_mech_name(BS_SASL_SCRAM_SHA_512), "SCRAM-SHA-512");
}

static void test_plain(void)
{
    char u[BS_SASL_NAME_MAX + 1], z[BS_SASL_NAME_MAX + 1];
    CHECK_EQ(bs_sasl_plain_parse(B("\0alice\0secret"), u, z), BS_OK);
    CHECK_STR(u, "alice");
    CHECK_STR(z, "");
    CHECK_EQ(bs_sasl_plain_parse(B("admin\0alice\0secret"), u, z), BS_OK);
    CHECK_STR(u, "alice");
    CHECK_STR(z, "admin");
    /* an empty password is still a PLAIN message */
    CHECK_EQ(bs_sasl_plain_parse(B("\0bob\0"), u, z), BS_OK);
    CHECK_STR(u, "bob");
    CHECK_EQ(bs_sasl_plain_parse(B("\0\0secret"), u, z), BS_E_MALFORMED);   /* no user */
    CHECK_EQ(bs_sasl_plain_parse(B("alice\0secret"), u, z), BS_E_MALFORMED); /* one NUL */
    CHECK_EQ(bs_sasl_plain_parse(B("\0a\0b\0c"), u, z), BS_E_MALFORMED);     /* three */
    CHECK_EQ(bs_sasl_plain_parse(B("\0al\nice\0pw"), u, z), BS_E_MALFORMED); /* control byte */
    CHECK_EQ(bs_sasl_plain_parse(B("\0\xff\xfe\0pw"), u, z), BS_E_MALFORMED); /* not UTF-8 */
    /* overlong forms and surrogates are not UTF-8 either (core/text.c's validator) */
    CHECK_EQ(bs_sasl_plain_parse(B("\0\xe0\x80\xaf\0pw"), u, z), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_plain_parse(B("\0\xf0\x80\x80\xaf\0pw"), u, z), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_plain_parse(B("\0\xed\xa0\x80\0pw"), u, z), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_plain_parse(B("\0\xf4\x90\x80\x80\0pw"), u, z), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_plain_parse(NULL, 0, u, z), BS_E_MALFORMED);
    uint8_t big[600];
    memset(big, 'a', sizeof big);
    big[0] = 0;
    big[400] = 0;
    CHECK_EQ(bs_sasl_plain_parse(big, sizeof big, u, z), BS_E_MALFORMED); /* name > 255 */
    CHECK_EQ(bs_sasl_plain_parse(B("\0j\xc3\xa9r\xc3\xb4me\0pw"), u, z), BS_OK);
    CHECK_STR(u, "j\xc3\xa9r\xc3\xb4me");
}

static void test_scram(void)
{
    char u[BS_SASL_NAME_MAX + 1], z[BS_SASL_NAME_MAX + 1];
    bool tok;
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"), u, z, &tok),
             BS_OK);
    CHECK_STR(u, "alice");
    CHECK_STR(z, "");
    CHECK(!tok);
    /* saslname escapes */
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,n=a=2Cb=3Dc,r=abc"), u, z, &tok), BS_OK);
    CHECK_STR(u, "a,b=c");
    CHECK_EQ(bs_sasl_scram_client_first(B("y,a=bob,n=bob,r=x"), u, z, &tok), BS_OK);
    CHECK_STR(u, "bob");
    CHECK_STR(z, "bob");
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,n=tok1,r=abc,tokenauth=true"), u, z, &tok), BS_OK);
    CHECK(tok);
    CHECK_STR(u, "tok1");
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,n=a=2Xb,r=abc"), u, z, &tok), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,n=a=,r=abc"), u, z, &tok), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_scram_client_first(B("p=tls-unique,,n=a,r=b"), u, z, &tok), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,r=abc"), u, z, &tok), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,n=alice"), u, z, &tok), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,n=,r=x"), u, z, &tok), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_scram_client_first(B("n,,m=ext,n=a,r=x"), u, z, &tok), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_scram_client_first(B("n"), u, z, &tok), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_scram_client_first(B(""), u, z, &tok), BS_E_MALFORMED);
    /* a client-final message is not a client-first */
    CHECK_EQ(bs_sasl_scram_client_first(B("c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
                                        u, z, &tok),
             BS_E_MALFORMED);
}

static void test_oauthbearer(void)
{
    char z[BS_SASL_NAME_MAX + 1];
    const uint8_t *t;
    size_t tl;
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("n,,\x01" "auth=Bearer abc.def.ghi\x01\x01"), &t, &tl, z),
             BS_OK);
    CHECK_EQ(tl, 11);
    CHECK(memcmp(t, "abc.def.ghi", 11) == 0);
    CHECK_EQ(bs_sasl_oauthbearer_parse(
                 B("n,a=alice,\x01host=h\x01" "auth=bearer  tok\x01" "ext=1\x01\x01"), &t, &tl, z),
             BS_OK);
    CHECK_STR(z, "alice");
    CHECK_EQ(tl, 3);
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("\x01"), &t, &tl, z), BS_E_NOT_FOUND);
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("n,,\x01" "auth=Bearer x\x01"), &t, &tl, z),
             BS_E_MALFORMED); /* not terminated */
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("n,,\x01host=h\x01\x01"), &t, &tl, z), BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("n,,\x01" "auth=Basic x\x01\x01"), &t, &tl, z),
             BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("n,,\x01" "auth=Bearer \x01\x01"), &t, &tl, z),
             BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("n,,\x01" "auth=Bearer a\x01" "auth=Bearer b\x01\x01"), &t,
                                       &tl, z),
             BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("n,,\x01" "auth=Bearer a\x01\x01junk"), &t, &tl, z),
             BS_E_MALFORMED);
    CHECK_EQ(bs_sasl_oauthbearer_parse(B("n,,x"), &t, &tl, z), BS_E_MALFORMED);
}

int main(void)
{
    RUN(test_mech_names);
    RUN(test_plain);
    RUN(test_scram);
    RUN(test_oauthbearer);
    return test_report();
}
