/* Unit tests for src/aws/credentials.c: the provider chain against real
 * environment variables, real files in a temporary HOME, and IMDSv2 / ECS
 * served by tests/unit/aws_fake_server.py on an ephemeral port. */
#include <sys/stat.h>

#include "aws_test_util.h"
#include "brokerside/aws_credentials.h"
#include "test.h"

static char tmp_home[256];
static fake_server srv;

static void clear_aws_env(void)
{
    static const char *const vars[] = {"AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",
                                       "AWS_PROFILE",
                                       "AWS_SHARED_CREDENTIALS_FILE",
                                       "AWS_CONFIG_FILE",
                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                       "AWS_EC2_METADATA_DISABLED",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                       "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"};
    for (size_t i = 0; i < BS_ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
    setenv("HOME", tmp_home, 1);
    /* Never probe the real 169.254.169.254 from a test. */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* get() into `c` with a fresh provider built from cfg. */
static bs_status get_once(const bs_aws_credentials_config *cfg, bs_aws_credentials *c)
{
    bs_aws_credentials_provider *p = NULL;
    bs_status st = bs_aws_credentials_provider_new(cfg, &p);
    if (st != BS_OK) return st;
    st = bs_aws_credentials_get(p, c);
    bs_aws_credentials_provider_free(p);
    return st;
}

static void test_explicit_and_environment(void)
{
    clear_aws_env();
    bs_aws_credentials c = {0};
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
    setenv("AWS_SESSION_TOKEN", "env-token", 1);
    CHECK_EQ(get_once(NULL, &c), BS_OK);
    CHECK_STR(c.access_key_id, "AKIAENV");
    CHECK_STR(c.secret_access_key, "env-secret");
    CHECK_STR(c.session_token, "env-token");
    CHECK_STR(c.source, "environment");
    CHECK_EQ(c.expiration, 0);
    bs_aws_credentials_clear(&c);
    CHECK(c.access_key_id == NULL && c.secret_access_key == NULL);

    /* Explicit configuration comes first. */
    bs_aws_credentials_config cfg = {.access_key_id = "AKIACFG", .secret_access_key = "cfg-secret"};
    CHECK_EQ(get_once(&cfg, &c), BS_OK);
    CHECK_STR(c.access_key_id, "AKIACFG");
    CHECK(c.session_token == NULL);
    CHECK_STR(c.source, "explicit");
    bs_aws_credentials_clear(&c);

    /* Half an explicit key pair, or a token alone, is a configuration error. */
    bs_aws_credentials_provider *p = NULL;
    bs_aws_credentials_config half = {.access_key_id = "AKIACFG"};
    CHECK_EQ(bs_aws_credentials_provider_new(&half, &p), BS_E_CONFIG);
    bs_aws_credentials_config tok = {.session_token = "t"};
    CHECK_EQ(bs_aws_credentials_provider_new(&tok, &p), BS_E_CONFIG);

    /* An environment with only the key id is not credentials: nothing else configured. */
    unsetenv("AWS_SECRET_ACCESS_KEY");
    CHECK_EQ(get_once(NULL, &c), BS_E_NOT_FOUND);
    CHECK(c.access_key_id == NULL);
}

/* The INI parser on its own: CRLF files, a last line without newline,
 * sections of both file styles, and a key with a NUL byte (which the old
 * reader silently cut short at the NUL). */
static void test_parse_profile(void)
{
    bs_aws_credentials c = {0};
    static const char crlf[] = "[default]\r\naws_access_key_id = AKIA1 \r\n"
                               "aws_secret_access_key=s=with=equals\r\n"
                               "[other]\r\naws_access_key_id=AKIA2\r\naws_secret_access_key=o";
    CHECK_EQ(bs_aws_credentials_parse_profile(crlf, sizeof crlf - 1, "default", false, &c), BS_OK);
    CHECK_STR(c.access_key_id, "AKIA1");
    CHECK_STR(c.secret_access_key, "s=with=equals");
    CHECK(c.session_token == NULL);
    bs_aws_credentials_clear(&c);
    CHECK_EQ(bs_aws_credentials_parse_profile(crlf, sizeof crlf - 1, "other", false, &c), BS_OK);
    CHECK_STR(c.secret_access_key, "o"); /* last line without its newline */
    bs_aws_credentials_clear(&c);
    /* config style: [profile x] and [default]; [x] alone is no profile there */
    static const char conf[] = "[profile  x ]\naws_access_key_id=A\naws_secret_access_key=B\n"
                               "aws_session_token = T\n[y]\naws_access_key_id=C\n"
                               "aws_secret_access_key=D\n[profile]\naws_access_key_id=E\n"
                               "aws_secret_access_key=F\n";
    CHECK_EQ(bs_aws_credentials_parse_profile(conf, sizeof conf - 1, "x", true, &c), BS_OK);
    CHECK_STR(c.session_token, "T");
    bs_aws_credentials_clear(&c);
    CHECK_EQ(bs_aws_credentials_parse_profile(conf, sizeof conf - 1, "y", true, &c),
             BS_E_NOT_FOUND);
    CHECK_EQ(bs_aws_credentials_parse_profile(conf, sizeof conf - 1, "profile", true, &c),
             BS_E_NOT_FOUND);
    /* an unterminated section header closes the section */
    static const char open_hdr[] = "[x]\naws_access_key_id=A\n[y\naws_secret_access_key=B\n";
    CHECK_EQ(bs_aws_credentials_parse_profile(open_hdr, sizeof open_hdr - 1, "x", false, &c),
             BS_E_NOT_FOUND);
    static const char nul[] = "[x]\naws_access_key_id=A\naws_secret_access_key=sec\0ret\n";
    CHECK_EQ(bs_aws_credentials_parse_profile(nul, sizeof nul - 1, "x", false, &c),
             BS_E_MALFORMED);
    CHECK(c.access_key_id == NULL);
    CHECK_EQ(bs_aws_credentials_parse_profile("", 0, "x", false, &c), BS_E_NOT_FOUND);
    CHECK_EQ(bs_aws_credentials_parse_profile(NULL, 0, "x", false, &c), BS_E_NOT_FOUND);
}

static void test_shared_files_and_profiles(void)
{
    clear_aws_env();
    char dir[512], cred[600], conf[600], alt[600];
    snprintf(dir, sizeof dir, "%s/.aws", tmp_home);
    mkdir(dir, 0700);
    snprintf(cred, sizeof cred, "%s/credentials", dir);
    snprintf(conf, sizeof conf, "%s/config", dir);
    snprintf(alt, sizeof alt, "%s/alt-credentials", tmp_home);
    write_file(cred, "# comment\n[default]\naws_access_key_id = AKIADEFAULT\n"
                     "aws_secret_access_key=default-secret\n\n"
                     "[prod]\n  aws_access_key_id=AKIAPROD  \n; another comment\n"
                     "aws_secret_access_key = prod-secret\naws_session_token = prod-token\n"
                     "[broken]\naws_access_key_id = AKIABROKEN\n");
    write_file(conf, "[default]\nregion = us-east-1\n"
                     "[profile cfgonly]\naws_access_key_id = AKIACONFIG\n"
                     "aws_secret_access_key = config-secret\n"
                     "[prod]\naws_access_key_id = AKIAWRONGSECTIONSTYLE\n"
                     "aws_secret_access_key = x\n");
    write_file(alt, "[default]\naws_access_key_id = AKIAALT\naws_secret_access_key = alt-secret\n");

    bs_aws_credentials c = {0};
    CHECK_EQ(get_once(NULL, &c), BS_OK);
    CHECK_STR(c.access_key_id, "AKIADEFAULT");
    CHECK_STR(c.secret_access_key, "default-secret");
    CHECK(c.session_token == NULL);
    CHECK_STR(c.source, "shared-file");
    bs_aws_credentials_clear(&c);

    setenv("AWS_PROFILE", "prod", 1);
    CHECK_EQ(get_once(NULL, &c), BS_OK);
    CHECK_STR(c.access_key_id, "AKIAPROD");
    CHECK_STR(c.secret_access_key, "prod-secret");
    CHECK_STR(c.session_token, "prod-token");
    bs_aws_credentials_clear(&c);

    /* The configured profile beats AWS_PROFILE; config file uses [profile x]. */
    bs_aws_credentials_config cfg = {.profile = "cfgonly"};
    CHECK_EQ(get_once(&cfg, &c), BS_OK);
    CHECK_STR(c.access_key_id, "AKIACONFIG");
    bs_aws_credentials_clear(&c);

    /* A profile without a secret is incomplete: not credentials. */
    cfg.profile = "broken";
    CHECK_EQ(get_once(&cfg, &c), BS_E_NOT_FOUND);
    /* In the config file "[prod]" is not the prod profile (it needs "profile "). */
    write_file(cred, "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n");
    CHECK_EQ(get_once(NULL, &c), BS_E_NOT_FOUND); /* AWS_PROFILE is still prod */
    cfg.profile = "nosuch";
    CHECK_EQ(get_once(&cfg, &c), BS_E_NOT_FOUND);

    /* AWS_SHARED_CREDENTIALS_FILE replaces ~/.aws/credentials ("~/" is HOME). */
    unsetenv("AWS_PROFILE");
    setenv("AWS_SHARED_CREDENTIALS_FILE", alt, 1);
    CHECK_EQ(get_once(NULL, &c), BS_OK);
    CHECK_STR(c.access_key_id, "AKIAALT");
    bs_aws_credentials_clear(&c);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "~/alt-credentials", 1);
    CHECK_EQ(get_once(NULL, &c), BS_OK);
    CHECK_STR(c.access_key_id, "AKIAALT");
    bs_aws_credentials_clear(&c);
    /* AWS_CONFIG_FILE that does not exist: the profile is simply absent. */
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    cfg.profile = "cfgonly";
    CHECK_EQ(get_once(&cfg, &c), BS_E_NOT_FOUND);
    unlink(cred);
    unlink(conf);
    unlink(alt);
    rmdir(dir);
}

static void test_imds_v2_and_refresh(void)
{
    clear_aws_env();
    CHECK(srv.port > 0);
    if (srv.port <= 0) return;
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv.port);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, 1);

    bs_aws_credentials_provider *p = NULL;
    CHECK_EQ(bs_aws_credentials_provider_new(NULL, &p), BS_OK);
    if (!p) return;
    bs_aws_credentials c = {0};
    time_t now = time(NULL);
    CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
    CHECK_STR(c.access_key_id, "ASIAIMDS1");
    CHECK_STR(c.secret_access_key, "imds-secret-1");
    CHECK_STR(c.session_token, "imds-token-1");
    CHECK_STR(c.source, "imds");
    CHECK(c.expiration > now + 3000 && c.expiration < now + 4000);
    bs_aws_credentials_clear(&c);

    /* Cached: far from expiry, no new fetch. */
    CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
    CHECK_STR(c.access_key_id, "ASIAIMDS1");
    CHECK_EQ(bs_aws_credentials_resolutions(p), 1);
    bs_aws_credentials_clear(&c);

    /* After an auth error the caller invalidates: the next get fetches again. */
    bs_aws_credentials_invalidate(p);
    CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
    CHECK_STR(c.access_key_id, "ASIAIMDS2");
    bs_aws_credentials_clear(&c);

    /* Credentials that expire inside the 5-minute window are refreshed ahead. */
    free(test_http("POST", srv.port, "/control/imds-expiry/240"));
    bs_aws_credentials_invalidate(p);
    CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
    CHECK_STR(c.access_key_id, "ASIAIMDS3");
    bs_aws_credentials_clear(&c);
    CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
    CHECK_STR(c.access_key_id, "ASIAIMDS4");
    bs_aws_credentials_clear(&c);
    CHECK_EQ(bs_aws_credentials_resolutions(p), 4);

    /* The endpoint vanishes while the cached credentials are still valid:
     * they keep being served, and the failed refresh is not retried at once. */
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", dead_port());
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, 1);
    CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
    CHECK_STR(c.access_key_id, "ASIAIMDS4");
    bs_aws_credentials_clear(&c);
    CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
    CHECK_EQ(bs_aws_credentials_resolutions(p), 5);
    bs_aws_credentials_clear(&c);
    bs_aws_credentials_provider_free(p);

    /* Nothing cached and nothing reachable: a clear error. */
    CHECK_EQ(get_once(NULL, &c), BS_E_IO);
    char *counts = test_http("GET", srv.port, "/counts");
    CHECK(counts && strstr(counts, "\"imds_creds\": 4"));
    free(counts);
    free(test_http("POST", srv.port, "/control/imds-expiry/3600"));
}

static void test_background_refresher(void)
{
    clear_aws_env();
    CHECK(srv.port > 0);
    if (srv.port <= 0) return;
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv.port);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, 1);
    /* Expiring in 362 s: get() would refresh at 300 s left, the refresher at
     * 360 s left, i.e. about 2 s after each fetch. */
    free(test_http("POST", srv.port, "/control/imds-expiry/362"));
    bs_aws_credentials_provider *p = NULL;
    CHECK_EQ(bs_aws_credentials_provider_new(NULL, &p), BS_OK);
    if (!p) return;
    CHECK_EQ(bs_aws_credentials_start_refresher(p), BS_OK);
    CHECK_EQ(bs_aws_credentials_start_refresher(p), BS_E_STATE);
    bs_aws_credentials c = {0};
    CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
    char first[64];
    snprintf(first, sizeof first, "%s", c.access_key_id ? c.access_key_id : "");
    bs_aws_credentials_clear(&c);
    CHECK_EQ(bs_aws_credentials_resolutions(p), 1);
    /* Wait (generously) for the refresher; get() is not called meanwhile. */
    for (int i = 0; i < 300 && bs_aws_credentials_resolutions(p) < 2; i++)
        usleep(100 * 1000);
    CHECK(bs_aws_credentials_resolutions(p) >= 2);
    free(test_http("POST", srv.port, "/control/imds-expiry/3600"));
    /* The count goes up when the refresher starts resolving, before it
     * installs the result: poll get() until the new key is served. get()
     * itself cannot refresh here (300 s window, 362 s expiry, at most ~60 s
     * spent in this test), so a new key can only come from the refresher. */
    bool changed = false;
    for (int i = 0; i < 300 && !changed; i++) {
        CHECK_EQ(bs_aws_credentials_get(p, &c), BS_OK);
        changed = c.access_key_id && strcmp(c.access_key_id, first) != 0;
        if (changed) CHECK(strncmp(c.access_key_id, "ASIAIMDS", 8) == 0);
        bs_aws_credentials_clear(&c);
        if (!changed) usleep(100 * 1000);
    }
    CHECK(changed);
    /* Freeing stops and joins the thread (ASan/TSan would flag a leak or race). */
    bs_aws_credentials_provider_free(p);
}

static void test_ecs_container_credentials(void)
{
    clear_aws_env();
    CHECK(srv.port > 0);
    if (srv.port <= 0) return;
    char uri[128];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/ecs/creds", srv.port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth-token", 1);
    bs_aws_credentials c = {0};
    CHECK_EQ(get_once(NULL, &c), BS_OK);
    CHECK_STR(c.access_key_id, "ASIAECS1");
    CHECK_STR(c.session_token, "ecs-token-1");
    CHECK_STR(c.source, "ecs");
    CHECK(c.expiration > time(NULL));
    bs_aws_credentials_clear(&c);

    /* The token may come from a file (EKS pod identity style). */
    char tokfile[600];
    snprintf(tokfile, sizeof tokfile, "%s/ecs-token", tmp_home);
    write_file(tokfile, "ecs-auth-token\n");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokfile, 1);
    CHECK_EQ(get_once(NULL, &c), BS_OK);
    CHECK_STR(c.access_key_id, "ASIAECS2");
    bs_aws_credentials_clear(&c);

    /* A wrong token is refused (401) and the chain does not fall through to IMDS. */
    write_file(tokfile, "wrong");
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv.port);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, 1);
    CHECK_EQ(get_once(NULL, &c), BS_E_IO);
    CHECK(c.access_key_id == NULL);
    unlink(tokfile);

    /* Plain http to a non-local host is refused before any request. */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds", 1);
    CHECK_EQ(get_once(NULL, &c), BS_E_CONFIG);
}

int main(void)
{
    snprintf(tmp_home, sizeof tmp_home, "/tmp/bs-aws-creds-XXXXXX");
    if (!mkdtemp(tmp_home)) {
        perror("mkdtemp");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    bool started = fake_server_start(&srv);
    if (!started) fprintf(stderr, "could not start aws_fake_server.py\n");
    RUN(test_explicit_and_environment);
    RUN(test_parse_profile);
    RUN(test_shared_files_and_profiles);
    RUN(test_imds_v2_and_refresh);
    RUN(test_background_refresher);
    RUN(test_ecs_container_credentials);
    fake_server_stop(&srv);
    rmdir(tmp_home);
    curl_global_cleanup();
    return test_report();
}
