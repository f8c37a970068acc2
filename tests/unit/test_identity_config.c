/* test_identity_config.c - the `identity` option tables
 * (src/identity/identity_config.c): a full section loads the struct the
 * hand-written parser filled, the walker's messages (unknown keys with
 * their hint, wrong types, bounds) and the callbacks' (rule syntax,
 * required keys, the JWKS file). */
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "brokerside/config.h"
#include "brokerside/identity.h"
#include "conf_report_test_util.h"
#include "test.h"
/* only tu_jwk is used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "jwt_test_util.h"
#pragma GCC diagnostic pop

static char g_dir[] = "/tmp/bs-idconf-XXXXXX";

static bs_status parse(const char *json, bs_identity_config **c)
{
    cJSON *j = cJSON_Parse(json);
    tu_reports_reset();
    bs_status st = bs_identity_config_parse(j, g_dir, tu_report, NULL, c);
    cJSON_Delete(j);
    return st;
}

/* Every key: the struct is what the hand-written parser filled (rules
 * compiled in order, jwks_file resolved against the base directory and
 * loaded, the oauthbearer fields in the same struct). */
static void test_full_section_loads_the_same_struct(void)
{
    bs_identity_config *c = NULL;
    CHECK_EQ(parse("{\"principal_mapping_rules\": [\"RULE:^CN=([^,]*),.*$/$1/L\", \"DEFAULT\"],"
                   " \"oauthbearer\": {\"jwks_file\": \"jwks.json\", \"issuer\": \"https://idp\","
                   " \"audience\": \"kafka\", \"principal_claim\": \"preferred_username\","
                   " \"clock_skew_s\": 0}, \"metrics_max_principals\": 7}",
                   &c),
             BS_OK);
    CHECK_EQ(g_n, 0);
    if (!c) return;
    CHECK_EQ(c->n_rules, 2);
    CHECK(!c->rules[0].is_default && c->rules[0].case_fold == 'L');
    CHECK_STR(c->rules[0].replacement, "$1");
    CHECK(c->rules[1].is_default);
    char want[128];
    snprintf(want, sizeof want, "%s/jwks.json", g_dir);
    CHECK_STR(c->jwks_file, want);
    CHECK(c->jwks != NULL);
    CHECK_STR(c->issuer, "https://idp");
    CHECK_STR(c->audience, "kafka");
    CHECK_STR(c->principal_claim, "preferred_username");
    CHECK_EQ(c->clock_skew_s, 0);
    CHECK_EQ(c->metrics_max_principals, 7);
    char out[BS_PRINCIPAL_MAX];
    CHECK_EQ(bs_identity_map_cert(c, "CN=Alice,O=x", out, sizeof out), BS_OK);
    CHECK_STR(out, "User:alice");
    bs_identity_config_free(c);
    /* absent, empty and null: the defaults */
    const char *empty[] = {"null", "{}", "{\"oauthbearer\": null}"};
    for (size_t i = 0; i < BS_ARRAY_LEN(empty); i++) {
        CHECK_EQ(parse(empty[i], &c), BS_OK);
        if (!c) continue;
        CHECK(c->n_rules == 0 && c->jwks_file == NULL && c->jwks == NULL && c->issuer == NULL &&
              c->audience == NULL);
        CHECK_STR(c->principal_claim, "sub");
        CHECK_EQ(c->clock_skew_s, 30);
        CHECK_EQ(c->metrics_max_principals, 100);
        bs_identity_config_free(c);
    }
    cJSON *none = NULL;
    CHECK_EQ(bs_identity_config_parse(none, NULL, NULL, NULL, &c), BS_OK);
    CHECK(c && c->metrics_max_principals == 100);
    bs_identity_config_free(c);
}

/* The walker's messages. */
static void test_generic_messages(void)
{
    bs_identity_config *c = NULL;
    CHECK_EQ(parse("{\"principal_mapping_rule\": [], \"oauthbearer\": {\"jwks_file\": "
                   "\"jwks.json\", \"isuer\": \"x\"}}",
                   &c),
             BS_E_CONFIG);
    CHECK(c == NULL);
    CHECK(reported("identity.principal_mapping_rule: unknown key \"principal_mapping_rule\" (did "
                   "you mean \"principal_mapping_rules\"?)"));
    CHECK(reported("identity.oauthbearer.isuer: unknown key \"isuer\" (did you mean "
                   "\"issuer\"?)"));
    CHECK(reported("identity.oauthbearer.issuer: required with jwks_file (tokens of any issuer "
                   "would be accepted)"));
    CHECK_EQ(g_n, 3);
    CHECK_EQ(parse("{\"metrics_max_principals\": \"x\", \"oauthbearer\": 5}", &c), BS_E_CONFIG);
    CHECK(reported("identity.metrics_max_principals: expected an integer, got a string"));
    CHECK(reported("identity.oauthbearer: expected an object, got a number"));
    CHECK_EQ(g_n, 2);
    CHECK_EQ(parse("{\"metrics_max_principals\": 0, \"oauthbearer\": {\"jwks_file\": 5, "
                   "\"issuer\": \"\", \"clock_skew_s\": 3601}}",
                   &c),
             BS_E_CONFIG);
    CHECK(reported("identity.metrics_max_principals: 0 is out of range: must be between 1 and "
                   "100000"));
    CHECK(reported("identity.oauthbearer.jwks_file: expected a string, got a number"));
    CHECK(reported("identity.oauthbearer.issuer: must not be empty"));
    CHECK(reported("identity.oauthbearer.clock_skew_s: 3601 is out of range: must be between 0 "
                   "and 3600"));
    CHECK_EQ(g_n, 4);
    CHECK_EQ(parse("[]", &c), BS_E_CONFIG);
    CHECK(reported("identity: expected an object, got an array"));
}

/* The callbacks' and the required rows' messages, as before. */
static void test_module_messages(void)
{
    bs_identity_config *c = NULL;
    CHECK_EQ(parse("{\"principal_mapping_rules\": [\"RULE:x\", \"nope\", \"RULE:(/$1/Q\", 4, "
                   "\"RULE:(/x/\"]}",
                   &c),
             BS_E_CONFIG);
    CHECK(reported("identity.principal_mapping_rules[0]: a rule needs two '/' separators: "
                   "RULE:<regex>/<replacement>/[L|U]"));
    CHECK(reported("identity.principal_mapping_rules[1]: expected \"DEFAULT\" or "
                   "\"RULE:<regex>/<replacement>/[L|U]\""));
    CHECK(reported("identity.principal_mapping_rules[2]: only L or U may follow the last '/'"));
    CHECK(reported("identity.principal_mapping_rules[3]: expected a string"));
    CHECK(reported("identity.principal_mapping_rules[4]: the regex does not compile (POSIX "
                   "extended syntax)"));
    CHECK_EQ(g_n, 5);
    CHECK_EQ(parse("{\"principal_mapping_rules\": \"DEFAULT\"}", &c), BS_E_CONFIG);
    CHECK(reported("identity.principal_mapping_rules: expected an array of strings"));
    CHECK_EQ(parse("{\"oauthbearer\": {}}", &c), BS_E_CONFIG);
    CHECK(reported("identity.oauthbearer.jwks_file: required: tokens are trusted for identity only "
                   "when they verify against a JWKS"));
    /* the JWKS is loaded only when both are given, and its problem is named */
    CHECK_EQ(parse("{\"oauthbearer\": {\"jwks_file\": \"missing.json\", \"issuer\": \"x\"}}", &c),
             BS_E_CONFIG);
    CHECK_EQ(g_n, 1);
    CHECK(strstr(g_msgs[0], "identity.oauthbearer.jwks_file: cannot open") == g_msgs[0]);
}

/* Load a config with the listener and `extra` members (", ..." or "")
 * from g_dir/bs.json; *e receives the problems. */
static bs_status load(const char *extra, bs_config **cfg, bs_config_errors *e)
{
    char doc[512], path[64];
    snprintf(path, sizeof path, "%s/bs.json", g_dir);
    snprintf(doc, sizeof doc,
             "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\"}]%s}",
             extra);
    memset(e, 0, sizeof *e);
    return bs_config_parse(path, doc, strlen(doc), cfg, e);
}

/* Through the whole config: never NULL after a load, relative to the file. */
static void test_in_the_config(void)
{
    bs_config *cfg = NULL;
    bs_config_errors e;
    CHECK_EQ(load("", &cfg, &e), BS_OK);
    CHECK(cfg && cfg->identity && cfg->identity->metrics_max_principals == 100);
    bs_config_free(cfg);
    CHECK_EQ(load(", \"identity\": {\"oauthbearer\": {\"jwks_file\": \"jwks.json\", \"issuer\": "
                  "\"i\"}}",
                  &cfg, &e),
             BS_OK);
    CHECK(cfg && cfg->identity && cfg->identity->jwks);
    bs_config_free(cfg);
    CHECK_EQ(load(", \"identity\": {\"metrics_max_principal\": 5}", &cfg, &e), BS_E_CONFIG);
    char want[256];
    snprintf(want, sizeof want,
             "%s/bs.json: identity.metrics_max_principal: unknown key \"metrics_max_principal\" "
             "(did you mean \"metrics_max_principals\"?)",
             g_dir);
    CHECK(e.n == 1 && strcmp(e.msgs[0], want) == 0);
    bs_config_errors_free(&e);
}

int main(void)
{
    if (!mkdtemp(g_dir)) return 2;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char jwk[1024], file[64];
    tu_jwk(k, "k1", jwk, sizeof jwk);
    EVP_PKEY_free(k);
    snprintf(file, sizeof file, "%s/jwks.json", g_dir);
    FILE *f = fopen(file, "w");
    if (!f) return 2;
    fprintf(f, "{\"keys\": [%s]}", jwk);
    fclose(f);
    RUN(test_full_section_loads_the_same_struct);
    RUN(test_generic_messages);
    RUN(test_module_messages);
    RUN(test_in_the_config);
    unlink(file);
    rmdir(g_dir);
    return test_report();
}
