/* test_identity.c - the identity section, certificate mapping and the SASL
 * tracker (src/identity/identity.c). */
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "brokerside/buf.h"
#include "brokerside/identity.h"
#include "brokerside/kafka.h"
#include "test.h"

static int g_reports;
static char g_last[512];
static void rep(void *ctx, const char *path, const char *msg)
{
    (void)ctx;
    g_reports++;
    snprintf(g_last, sizeof g_last, "%s: %s", path, msg);
}

static bs_identity_config *parse(const char *json, bs_status *st)
{
    cJSON *j = cJSON_Parse(json);
    bs_identity_config *c = NULL;
    g_reports = 0;
    *st = bs_identity_config_parse(j, NULL, rep, NULL, &c);
    cJSON_Delete(j);
    return c;
}

static void test_config(void)
{
    bs_status st;
    bs_identity_config *c = parse("{}", &st);
    CHECK_EQ(st, BS_OK);
    CHECK_STR(c->principal_claim, "sub");
    CHECK_EQ(c->metrics_max_principals, 100);
    bs_identity_config_free(c);
    c = parse("{\"principal_mapping_rules\":[\"RULE:x\",\"nope\",\"RULE:(/$1/Q\"],\"bogus\":1,"
              "\"metrics_max_principals\":0}",
              &st);
    CHECK_EQ(st, BS_E_CONFIG);
    CHECK(c == NULL);
    CHECK_EQ(g_reports, 5);
    c = parse("{\"oauthbearer\":{\"issuer\":\"x\"}}", &st);
    CHECK_EQ(st, BS_E_CONFIG); /* jwks_file required */
    c = parse("{\"oauthbearer\":{\"jwks_file\":\"/nonexistent.json\",\"issuer\":\"x\"}}", &st);
    CHECK_EQ(st, BS_E_CONFIG);
    CHECK(strstr(g_last, "cannot open") != NULL);
    /* A base directory longer than 1024 bytes is resolved whole (it used to
     * be cut silently, so the file was never found): the file at the end of
     * the long path is opened, and its content ("no keys") is the problem. */
    char tmpl[] = "/tmp/bs-identity-XXXXXX";
    CHECK(mkdtemp(tmpl) != NULL);
    char dir[1400];
    snprintf(dir, sizeof dir, "%s", tmpl);
    char seg[201];
    memset(seg, 'd', 200);
    seg[200] = '\0';
    for (int k = 0; k < 6; k++) {
        size_t n = strlen(dir);
        snprintf(dir + n, sizeof dir - n, "/%s", seg);
        CHECK(mkdir(dir, 0700) == 0);
    }
    CHECK(strlen(dir) > 1100);
    char file[1500];
    snprintf(file, sizeof file, "%s/jwks.json", dir);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("{}", f);
        fclose(f);
    }
    cJSON *j = cJSON_Parse("{\"oauthbearer\":{\"jwks_file\":\"jwks.json\",\"issuer\":\"x\"}}");
    g_reports = 0;
    CHECK_EQ(bs_identity_config_parse(j, dir, rep, NULL, &c), BS_E_CONFIG);
    cJSON_Delete(j);
    CHECK(c == NULL);
    CHECK_EQ(g_reports, 1);
    CHECK(strstr(g_last, "no \"keys\" array") != NULL);
    unlink(file);
    for (int k = 0; k < 6; k++) {
        rmdir(dir);
        *strrchr(dir, '/') = '\0';
    }
    rmdir(tmpl);
}

static void test_mapping(void)
{
    bs_status st;
    bs_identity_config *c = parse(
        "{\"principal_mapping_rules\":[\"RULE:^CN=([a-zA-Z0-9.-]*),OU=ServiceUsers,.*$/$1/L\","
        "\"RULE:^CN=([^,]*),O=(.*)$/$1@$2/\",\"DEFAULT\"]}",
        &st);
    CHECK_EQ(st, BS_OK);
    char out[BS_PRINCIPAL_MAX];
    CHECK_EQ(bs_identity_map_cert(c, "CN=Alice,OU=ServiceUsers,O=x;SAN=DNS:a", out, sizeof out), BS_OK);
    CHECK_STR(out, "User:alice");
    CHECK_EQ(bs_identity_map_cert(c, "CN=bob,O=acme", out, sizeof out), BS_OK);
    CHECK_STR(out, "User:bob@acme");
    CHECK_EQ(bs_identity_map_cert(c, "OU=x", out, sizeof out), BS_OK);
    CHECK_STR(out, "User:OU=x");
    bs_identity_config_free(c);
    c = parse("{\"principal_mapping_rules\":[\"RULE:^CN=(.*)$/$1/U\"]}", &st);
    CHECK_EQ(bs_identity_map_cert(c, "CN=dev", out, sizeof out), BS_OK);
    CHECK_STR(out, "User:DEV");
    CHECK_EQ(bs_identity_map_cert(c, "O=only", out, sizeof out), BS_E_NOT_FOUND);
    CHECK_EQ(bs_identity_map_cert(NULL, "CN=a;SAN=DNS:x", out, sizeof out), BS_OK);
    CHECK_STR(out, "User:CN=a");
    bs_identity_config_free(c);
}

/* Request bodies. */
static size_t handshake(uint8_t *buf, const char *mech)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_kafka_put_string(&w, false, (const uint8_t *)mech, (int32_t)strlen(mech));
    memcpy(buf, w.data, w.len);
    size_t n = w.len;
    bs_wbuf_free(&w);
    return n;
}
static size_t authenticate(uint8_t *buf, const void *p, size_t n)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_kafka_put_bytes(&w, true, p, (int32_t)n);
    bs_wbuf_put_u8(&w, 0);
    memcpy(buf, w.data, w.len);
    size_t len = w.len;
    bs_wbuf_free(&w);
    return len;
}
static size_t auth_response(uint8_t *buf, int16_t err, const char *server)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_be16(&w, (uint16_t)err);
    bs_kafka_put_string(&w, true, NULL, -1);
    bs_kafka_put_bytes(&w, true, (const uint8_t *)server, (int32_t)strlen(server));
    bs_wbuf_put_be64(&w, 0);
    bs_wbuf_put_u8(&w, 0);
    memcpy(buf, w.data, w.len);
    size_t n = w.len;
    bs_wbuf_free(&w);
    return n;
}

static const uint8_t hs_ok[] = {0, 0, 0, 0, 0, 1, 0, 5, 'P', 'L', 'A', 'I', 'N'};

/* Run a whole SCRAM exchange for `user` through `id`; returns the final verdict. */
static bs_sasl_verdict scram(bs_conn_identity *id, const char *user, int16_t final_err)
{
    uint8_t b[512];
    const char *why, *cw;
    size_t n = handshake(b, "SCRAM-SHA-512");
    if (bs_sasl_track_request(id, 17, 1, b, n, &why) != BS_SASL_FORWARD) return BS_SASL_CLOSE;
    (void)bs_sasl_track_response(id, 17, 1, hs_ok, sizeof hs_ok, &cw);
    char first[128];
    snprintf(first, sizeof first, "n,,n=%s,r=clientnonce", user);
    n = authenticate(b, first, strlen(first));
    if (bs_sasl_track_request(id, 36, 2, b, n, &why) != BS_SASL_FORWARD) return BS_SASL_CLOSE;
    n = auth_response(b, 0, "r=clientnonceserver,s=c2FsdA==,i=4096");
    (void)bs_sasl_track_response(id, 36, 2, b, n, &cw);
    CHECK_STR(id->sasl_principal[0] ? id->sasl_principal : "", id->sasl_principal); /* unchanged */
    const char *fin = "c=biws,r=clientnonceserver,p=cHJvb2Y=";
    n = authenticate(b, fin, strlen(fin));
    if (bs_sasl_track_request(id, 36, 2, b, n, &why) != BS_SASL_FORWARD) return BS_SASL_CLOSE;
    n = auth_response(b, final_err, final_err ? "" : "v=c2lnbmF0dXJl");
    (void)bs_sasl_track_response(id, 36, 2, b, n, &cw);
    return cw ? BS_SASL_CLOSE : BS_SASL_FORWARD;
}

static void test_track_scram(void)
{
    bs_conn_identity id;
    bs_conn_identity_init(&id, NULL);
    CHECK_STR(bs_conn_identity_principal(&id), "User:ANONYMOUS");
    uint8_t b[512];
    const char *why, *cw;
    size_t n = handshake(b, "SCRAM-SHA-512");
    CHECK_EQ(bs_sasl_track_request(&id, 17, 1, b, n, &why), BS_SASL_FORWARD);
    (void)bs_sasl_track_response(&id, 17, 1, hs_ok, sizeof hs_ok, &cw);
    n = authenticate(b, "n,,n=alice,r=abc", 16);
    CHECK_EQ(bs_sasl_track_request(&id, 36, 2, b, n, &why), BS_SASL_FORWARD);
    CHECK_STR(id.attempt_principal, "User:alice");
    /* server-first is not success yet */
    n = auth_response(b, 0, "r=abcdef,s=c2FsdA==,i=4096");
    (void)bs_sasl_track_response(&id, 36, 2, b, n, &cw);
    CHECK_STR(bs_conn_identity_principal(&id), "User:ANONYMOUS");
    n = authenticate(b, "c=biws,r=abcdef,p=eA==", 22);
    CHECK_EQ(bs_sasl_track_request(&id, 36, 2, b, n, &why), BS_SASL_FORWARD);
    n = auth_response(b, 0, "v=eA==");
    CHECK(bs_sasl_track_response(&id, 36, 2, b, n, &cw));
    CHECK(cw == NULL);
    CHECK_STR(bs_conn_identity_principal(&id), "User:alice");
    CHECK_EQ(id.mech, BS_SASL_SCRAM_SHA_512);
    uint32_t gen = id.generation;
    /* KIP-368: re-authenticating as the same principal is fine */
    CHECK_EQ(scram(&id, "alice", 0), BS_SASL_FORWARD);
    CHECK_EQ(id.generation, gen);
    /* ...as another is refused at the first message */
    n = handshake(b, "SCRAM-SHA-512");
    CHECK_EQ(bs_sasl_track_request(&id, 17, 1, b, n, &why), BS_SASL_FORWARD);
    (void)bs_sasl_track_response(&id, 17, 1, hs_ok, sizeof hs_ok, &cw);
    n = authenticate(b, "n,,n=bob,r=abc", 14);
    CHECK_EQ(bs_sasl_track_request(&id, 36, 2, b, n, &why), BS_SASL_CLOSE);
    CHECK_STR(why, "re-authentication names another principal");
    /* another mechanism on re-authentication */
    n = handshake(b, "PLAIN");
    CHECK_EQ(bs_sasl_track_request(&id, 17, 1, b, n, &why), BS_SASL_CLOSE);
}

static void test_track_failures(void)
{
    bs_conn_identity id;
    bs_conn_identity_init(&id, "CN=client;SAN=DNS:x");
    CHECK_STR(bs_conn_identity_principal(&id), "User:CN=client");
    uint8_t b[512];
    const char *why, *cw;
    /* SaslAuthenticate without a handshake */
    size_t n = authenticate(b, "\0alice\0pw", 9);
    CHECK_EQ(bs_sasl_track_request(&id, 36, 2, b, n, &why), BS_SASL_CLOSE);
    /* legacy v0 handshake: only for mechanisms whose bare tokens can be followed */
    n = handshake(b, "GSSAPI");
    CHECK_EQ(bs_sasl_track_request(&id, 17, 0, b, n, &why), BS_SASL_CLOSE);
    n = handshake(b, "PLAIN");
    /* malformed handshake and malformed PLAIN bytes */
    CHECK_EQ(bs_sasl_track_request(&id, 17, 1, b, 3, &why), BS_SASL_CLOSE);
    CHECK_EQ(bs_sasl_track_request(&id, 17, 1, b, n, &why), BS_SASL_FORWARD);
    (void)bs_sasl_track_response(&id, 17, 1, hs_ok, sizeof hs_ok, &cw);
    n = authenticate(b, "alice", 5);
    CHECK_EQ(bs_sasl_track_request(&id, 36, 2, b, n, &why), BS_SASL_CLOSE);
    /* a failed attempt keeps the attempted name and blocks later requests */
    n = authenticate(b, "\0mallory\0wrong", 14);
    CHECK_EQ(bs_sasl_track_request(&id, 36, 2, b, n, &why), BS_SASL_FORWARD);
    n = auth_response(b, 58, "");
    CHECK(bs_sasl_track_response(&id, 36, 2, b, n, &cw));
    CHECK_EQ(id.last_result, BS_SASL_RESULT_FAILED);
    CHECK_STR(id.attempt_principal, "User:mallory");
    CHECK_STR(bs_conn_identity_principal(&id), "User:CN=client");
    CHECK_EQ(bs_sasl_track_request(&id, 3, 12, NULL, 0, &why), BS_SASL_CLOSE);
    CHECK_EQ(bs_sasl_track_request(&id, 18, 3, NULL, 0, &why), BS_SASL_FORWARD);
    /* the tracker never keeps the password */
    CHECK(memmem(&id, sizeof id, "wrong", 5) == NULL);
}

/* SaslHandshake v0: bare tokens, client and broker in turn. */
static void test_track_legacy(void)
{
    bs_conn_identity id;
    bs_conn_identity_init(&id, NULL);
    uint8_t b[512];
    const char *why, *cw;
    size_t n = handshake(b, "SCRAM-SHA-512");
    CHECK_EQ(bs_sasl_track_request(&id, 17, 0, b, n, &why), BS_SASL_FORWARD);
    CHECK(!id.legacy_active);
    (void)bs_sasl_track_response(&id, 17, 0, hs_ok, sizeof hs_ok, &cw);
    CHECK(id.legacy_active);
    CHECK(id.legacy_client_turn);
    const char *first = "n,,n=carol,r=nonce";
    CHECK_EQ(bs_sasl_track_legacy_client(&id, (const uint8_t *)first, strlen(first), &why),
             BS_SASL_FORWARD);
    CHECK(!id.legacy_client_turn);
    /* out of turn */
    bs_conn_identity id2 = id;
    CHECK_EQ(bs_sasl_track_legacy_client(&id2, (const uint8_t *)first, strlen(first), &why),
             BS_SASL_CLOSE);
    CHECK(!bs_sasl_track_legacy_server(&id, (const uint8_t *)"r=nonceS,s=c2E=,i=4096", 22, &cw));
    CHECK_STR(bs_conn_identity_principal(&id), "User:ANONYMOUS");
    CHECK_EQ(bs_sasl_track_legacy_client(&id, (const uint8_t *)"c=biws,r=nonceS,p=eA==", 22, &why),
             BS_SASL_FORWARD);
    CHECK(bs_sasl_track_legacy_server(&id, (const uint8_t *)"v=eA==", 6, &cw));
    CHECK(!id.legacy_active);
    CHECK_STR(bs_conn_identity_principal(&id), "User:carol");
}

static void test_track_plain_secrets(void)
{
    bs_conn_identity id;
    bs_conn_identity_init(&id, NULL);
    uint8_t b[512];
    const char *why, *cw;
    size_t n = handshake(b, "PLAIN");
    CHECK_EQ(bs_sasl_track_request(&id, 17, 1, b, n, &why), BS_SASL_FORWARD);
    (void)bs_sasl_track_response(&id, 17, 1, hs_ok, sizeof hs_ok, &cw);
    n = authenticate(b, "\0bob\0hunter2-secret", 19);
    CHECK_EQ(bs_sasl_track_request(&id, 36, 2, b, n, &why), BS_SASL_FORWARD);
    n = auth_response(b, 0, "");
    CHECK(bs_sasl_track_response(&id, 36, 2, b, n, &cw));
    CHECK_STR(bs_conn_identity_principal(&id), "User:bob");
    CHECK(memmem(&id, sizeof id, "hunter2", 7) == NULL);
}

int main(void)
{
    RUN(test_config);
    RUN(test_mapping);
    RUN(test_track_scram);
    RUN(test_track_failures);
    RUN(test_track_plain_secrets);
    RUN(test_track_legacy);
    return test_report();
}
