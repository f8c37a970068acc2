/* Unit tests for src/core/config.c: every error path, defaults, comments,
 * relative paths, advertise lookup, the reload rule and the shipped example. */
#include "brokerside/config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "brokerside/tls.h"
#include "test.h"

static char g_dir[PATH_MAX]; /* scratch directory of this run */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* The scratch layout: g_dir/{server.crt,server.key,ca.crt,crl.pem,client.crt,client.key} and
 * g_dir/sub/ (a second place for config files), g_dir/adir (a directory). */
static void setup_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/bs-config-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        exit(2);
    }
    const char *names[] = {"server.crt", "server.key", "ca.crt",
                           "crl.pem",    "client.crt", "client.key"};
    char p[PATH_MAX + 64];
    for (size_t i = 0; i < BS_ARRAY_LEN(names); i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
        write_file(p, "-----BEGIN PLACEHOLDER-----\n");
        if (strstr(names[i], ".key")) chmod(p, 0600);
    }
    snprintf(p, sizeof p, "%s/sub", g_dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/adir", g_dir);
    mkdir(p, 0700);
}

/* A malloc'd printf. */
__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) exit(2);
    va_end(ap);
    return s;
}

/* Write `json` to g_dir/<name> and load it. */
static bs_status load_named(const char *name, const char *json, bs_config **cfg,
                            bs_config_errors *errs)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    write_file(p, json);
    memset(errs, 0, sizeof *errs);
    return bs_config_load(p, cfg, errs);
}

static bs_status load(const char *json, bs_config **cfg, bs_config_errors *errs)
{
    return load_named("bs.json", json, cfg, errs);
}

static void dump_errs(const bs_config_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "    | %s\n", e->msgs[i]);
}

/* True if some message contains `needle`. */
static bool has_err(const bs_config_errors *e, const char *needle)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->msgs[i], needle)) return true;
    return false;
}

/* Load `json`, expect BS_E_CONFIG, no config, and a message containing
 * `needle` that starts with the file name; returns the number of messages. */
#define EXPECT_ERR(json, needle) expect_err_at(__LINE__, json, needle)
static size_t expect_err_at(int line, const char *json, const char *needle)
{
    bs_config *cfg = (bs_config *)1;
    bs_config_errors e;
    bs_status st = load(json, &cfg, &e);
    char prefix[PATH_MAX + 64];
    snprintf(prefix, sizeof prefix, "%s/bs.json:", g_dir);
    bool ok = st == BS_E_CONFIG && cfg == NULL && has_err(&e, needle);
    for (size_t i = 0; i < e.n; i++)
        if (strncmp(e.msgs[i], prefix, strlen(prefix)) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "  FAIL line %d: status %d, wanted an error containing [%s]; got:\n", line,
                st, needle);
        dump_errs(&e);
        test_failures_in_current++;
    }
    size_t n = e.n;
    bs_config_errors_free(&e);
    if (st == BS_OK) bs_config_free(cfg);
    return n;
}

/* Load `json` and expect success; the caller frees the config. */
#define EXPECT_OK(json) expect_ok_at(__LINE__, json)
static bs_config *expect_ok_at(int line, const char *json)
{
    bs_config *cfg = NULL;
    bs_config_errors e;
    bs_status st = load(json, &cfg, &e);
    if (st != BS_OK || !cfg || e.n) {
        fprintf(stderr, "  FAIL line %d: status %d, expected success; errors:\n", line, st);
        dump_errs(&e);
        test_failures_in_current++;
    }
    bs_config_errors_free(&e);
    return cfg;
}

/* A valid config with one plaintext listener, with `extra` spliced into the
 * listener object and `top` into the top-level object. */
static char *with(const char *listener_extra, const char *top)
{
    return fmt("{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\"%s%s}]"
               "%s%s}",
               listener_extra[0] ? ", " : "", listener_extra, top[0] ? ", " : "", top);
}

#define EXPECT_ERR_L(extra, needle)                                                                \
    do {                                                                                           \
        char *j_ = with(extra, "");                                                                \
        EXPECT_ERR(j_, needle);                                                                    \
        free(j_);                                                                                  \
    } while (0)
#define EXPECT_ERR_T(top, needle)                                                                  \
    do {                                                                                           \
        char *j_ = with("", top);                                                                  \
        EXPECT_ERR(j_, needle);                                                                    \
        free(j_);                                                                                  \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Valid configurations                                                      */
/* ------------------------------------------------------------------------ */

static void test_minimal_gets_defaults(void)
{
    char *j = with("", "");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (!cfg) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ(cfg->workers, cores < 1 ? 1 : cores);
    CHECK_EQ(cfg->log_level, BS_LOG_INFO);
    CHECK_EQ(cfg->n_listeners, 1);
    const bs_listener_config *l = &cfg->listeners[0];
    CHECK_STR(l->name, "listener0");
    CHECK_EQ(l->protocol, BS_PROTOCOL_KAFKA);
    CHECK_EQ(l->broker_id, -1);
    CHECK(l->tls == NULL);
    CHECK(l->upstream_tls == NULL);
    CHECK_STR(l->bind.text, "127.0.0.1:0");
    CHECK_STR(l->bind.host, "127.0.0.1");
    CHECK_EQ(l->bind.port, 0);
    CHECK_EQ(l->bind.addr.ss_family, AF_INET);
    CHECK_EQ(l->bind.addrlen, sizeof(struct sockaddr_in));
    CHECK_EQ(l->upstream.port, 9092);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&l->upstream.addr)->sin_port), 9092);
    CHECK_EQ(cfg->limits.max_connections, 10000);
    CHECK_EQ(cfg->limits.buffer_bytes, 65536);
    CHECK(cfg->limits.handshake_timeout_s == 10);
    CHECK(cfg->limits.idle_timeout_s == 600);
    CHECK(cfg->limits.connect_timeout_s == 5);
    CHECK(cfg->limits.shutdown_grace_s == 30);
    CHECK_EQ(cfg->kafka.max_frame_bytes, 104857600);
    CHECK_EQ(cfg->kafka.n_advertise, 0);
    CHECK(cfg->kafka.advertise_template == NULL);
    CHECK(cfg->admin.enabled);
    CHECK_STR(cfg->admin.bind.text, "127.0.0.1:9644");
    CHECK_EQ(cfg->admin.bind.port, 9644);
    CHECK(cfg->admin.probe_interval_s == 5);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/bs.json", g_dir);
    CHECK_STR(cfg->path, want);
    bs_config_free(cfg);
}

static void test_full_config(void)
{
    const char *j =
        "{\n"
        "  \"workers\": 3, \"log_level\": \"debug\",\n"
        "  \"listeners\": [\n"
        "    {\"name\": \"clients\", \"bind\": \"[::1]:0\", \"upstream\": \"localhost:9092\",\n"
        "     \"protocol\": \"tcp\", \"broker_id\": 7,\n"
        "     \"tls\": {\"cert\": \"server.crt\", \"key\": \"server.key\", \"client_ca\": "
        "\"ca.crt\",\n"
        "             \"crl\": \"crl.pem\", \"client_auth\": \"required\", \"min_version\": "
        "\"TLSv1.3\",\n"
        "             \"ciphers\": \"ECDHE+AESGCM:!aNULL\", \"ciphersuites\": "
        "\"TLS_AES_256_GCM_SHA384\"},\n"
        "     \"upstream_tls\": {\"ca\": \"ca.crt\", \"cert\": \"client.crt\", \"key\": "
        "\"client.key\",\n"
        "                      \"verify\": false, \"server_name\": \"broker-7.internal\"}},\n"
        "    {\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9093\",\n"
        "     \"tls\": {\"cert\": \"server.crt\", \"key\": \"server.key\", \"client_auth\": "
        "\"none\"},\n"
        "     \"upstream_tls\": {}}\n"
        "  ],\n"
        "  \"limits\": {\"max_connections\": 50, \"buffer_bytes\": 4096, \"handshake_timeout_s\": "
        "2.5,\n"
        "             \"idle_timeout_s\": 60, \"connect_timeout_s\": 1, \"shutdown_grace_s\": 3},\n"
        "  \"kafka\": {\"advertise\": {\"nodes\": {\"7\": \"b7.example.com:9094\"},\n"
        "                           \"template\": \"b{id}.example.com:9094\"},\n"
        "            \"max_frame_bytes\": 1024},\n"
        "  \"admin\": {\"bind\": \"127.0.0.1:0\", \"probe_interval_s\": 0.5}\n"
        "}\n";
    bs_config *cfg = EXPECT_OK(j);
    if (!cfg) return;
    CHECK_EQ(cfg->workers, 3);
    CHECK_EQ(cfg->log_level, BS_LOG_DEBUG);
    CHECK_EQ(cfg->n_listeners, 2);
    const bs_listener_config *l = &cfg->listeners[0];
    CHECK_STR(l->name, "clients");
    CHECK_STR(l->bind.host, "::1");
    CHECK_EQ(l->bind.addr.ss_family, AF_INET6);
    CHECK_STR(l->upstream.host, "localhost");
    CHECK_EQ(l->protocol, BS_PROTOCOL_TCP);
    CHECK_EQ(l->broker_id, 7);
    char want[PATH_MAX + 64];
    CHECK(l->tls != NULL);
    if (l->tls) {
        snprintf(want, sizeof want, "%s/server.crt", g_dir);
        CHECK_STR(l->tls->cert_file, want);
        snprintf(want, sizeof want, "%s/crl.pem", g_dir);
        CHECK_STR(l->tls->crl_file, want);
        CHECK_EQ(l->tls->client_auth, BS_CLIENT_AUTH_REQUIRED);
        CHECK_EQ(l->tls->min_version, TLS1_3_VERSION);
        CHECK_STR(l->tls->ciphers, "ECDHE+AESGCM:!aNULL");
        CHECK_STR(l->tls->ciphersuites, "TLS_AES_256_GCM_SHA384");
    }
    CHECK(l->upstream_tls != NULL);
    if (l->upstream_tls) {
        CHECK(!l->upstream_tls->verify);
        CHECK_STR(l->upstream_tls->server_name, "broker-7.internal");
        snprintf(want, sizeof want, "%s/client.key", g_dir);
        CHECK_STR(l->upstream_tls->key_file, want);
        CHECK_EQ(l->upstream_tls->min_version, TLS1_2_VERSION);
    }
    const bs_listener_config *m = &cfg->listeners[1];
    CHECK_STR(m->name, "listener1");
    CHECK(m->tls && m->tls->client_auth == BS_CLIENT_AUTH_NONE && m->tls->client_ca_file == NULL);
    CHECK(m->tls && m->tls->min_version == TLS1_2_VERSION);
    CHECK(m->tls && strcmp(m->tls->ciphers, BS_TLS_DEFAULT_CIPHERS) == 0);
    CHECK(m->tls && strcmp(m->tls->ciphersuites, BS_TLS_DEFAULT_CIPHERSUITES) == 0);
    /* An empty upstream_tls object: verification on, server name = upstream host, no CA
     * file (the system store). */
    CHECK(m->upstream_tls && m->upstream_tls->verify);
    CHECK(m->upstream_tls && strcmp(m->upstream_tls->server_name, "127.0.0.1") == 0);
    CHECK(m->upstream_tls && m->upstream_tls->ca_file == NULL);
    CHECK_EQ(cfg->limits.max_connections, 50);
    CHECK_EQ(cfg->limits.buffer_bytes, 4096);
    CHECK(cfg->limits.handshake_timeout_s == 2.5);
    CHECK(cfg->limits.shutdown_grace_s == 3);
    CHECK_EQ(cfg->kafka.n_advertise, 1);
    CHECK_STR(cfg->kafka.advertise_template, "b{id}.example.com:9094");
    CHECK_EQ(cfg->kafka.max_frame_bytes, 1024);
    CHECK(cfg->admin.probe_interval_s == 0.5);
    bs_config_free(cfg);
}

static void test_null_means_default_and_admin_null_disables(void)
{
    char *j = with("\"tls\": null, \"upstream_tls\": null, \"name\": null, \"broker_id\": null",
                   "\"limits\": null, \"kafka\": null, \"workers\": null, \"admin\": null");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (!cfg) return;
    CHECK(cfg->listeners[0].tls == NULL);
    CHECK_STR(cfg->listeners[0].name, "listener0");
    CHECK_EQ(cfg->limits.buffer_bytes, 65536);
    CHECK(!cfg->admin.enabled);
    bs_config_free(cfg);
}

/* Run a load of `json` with stderr captured; returns what was logged (caller frees). */
static char *load_capturing_log(const char *json, bs_status *st)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/log.txt", g_dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    bs_config *cfg = NULL;
    bs_config_errors e;
    *st = load(json, &cfg, &e);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    bs_config_free(cfg);
    bs_config_errors_free(&e);
    FILE *f = fopen(p, "r");
    char *buf = calloc(1, 8192);
    if (f && buf) {
        size_t n = fread(buf, 1, 8191, f);
        buf[n] = '\0';
    }
    if (f) fclose(f);
    return buf;
}

static void test_warnings_are_logged(void)
{
    bs_status st;
    char *j = with("", "\"admin\": {\"bind\": \"0.0.0.0:0\"}");
    char *log = load_capturing_log(j, &st);
    CHECK_EQ(st, BS_OK);
    CHECK(log && strstr(log, "WARN") &&
          strstr(log, "admin.bind 0.0.0.0:0 is not a loopback address"));
    free(log);
    free(j);
    j = with("", "");
    log = load_capturing_log(j, &st);
    CHECK_EQ(st, BS_OK);
    CHECK(log && log[0] == '\0'); /* loopback admin, no TLS: nothing to say */
    free(log);
    free(j);
    char *key = fmt("%s/open.key", g_dir);
    write_file(key, "k\n");
    chmod(key, 0644);
    j = with("\"tls\": {\"cert\": \"server.crt\", \"key\": \"open.key\"}", "");
    log = load_capturing_log(j, &st);
    CHECK_EQ(st, BS_OK);
    CHECK(log && strstr(log, "listeners[0].tls.key: \"open.key\"") &&
          strstr(log, "is readable by every user"));
    free(log);
    free(j);
    remove(key);
    free(key);
}

static void test_comments(void)
{
    const char *j = "// leading line comment\n"
                    "{ /* block */ \"listeners\": [ /* multi\n line\n block */ {\n"
                    "  \"bind\": \"127.0.0.1:0\", // trailing\n"
                    "  \"upstream\": \"127.0.0.1:9092\",\n"
                    "  \"upstream_tls\": {\"server_name\": \"a//b/*c*/\\\"//d\"} // \"quote\n"
                    "}]}\n/* final */";
    bs_config *cfg = EXPECT_OK(j);
    if (!cfg) return;
    CHECK(cfg->listeners[0].upstream_tls != NULL);
    if (cfg->listeners[0].upstream_tls)
        CHECK_STR(cfg->listeners[0].upstream_tls->server_name, "a//b/*c*/\"//d");
    bs_config_free(cfg);
    /* A string ending in an escaped backslash ends there: the // after it is a comment. */
    EXPECT_ERR("{\"log_level\": \"x\\\\\" // \"not a string\n}",
               "log_level: \"x\\\\\" is not valid");
    /* Comment markers inside a string are kept even right before a real comment;
     * quotes inside a comment are not strings (the first star-slash ends it). */
    EXPECT_ERR("{\"log_level\": \"/*\" /* \"x */}", "log_level: \"/*\" is not valid");
    /* A UTF-8 byte-order mark is tolerated. */
    char *b = with("", "");
    char *bom = fmt("\xef\xbb\xbf%s", b);
    cfg = EXPECT_OK(bom);
    bs_config_free(cfg);
    free(b);
    free(bom);
}

static void test_parse_from_memory(void)
{
    const char *j = "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:1\"}]}";
    bs_config *cfg = NULL;
    bs_config_errors e = {0};
    /* Not NUL-terminated on purpose: the length is what counts. */
    char *copy = malloc(strlen(j));
    memcpy(copy, j, strlen(j));
    CHECK_EQ(bs_config_parse("mem.json", copy, strlen(j), &cfg, &e), BS_OK);
    CHECK_EQ(e.n, 0);
    bs_config_free(cfg);
    free(copy);
    CHECK_EQ(bs_config_parse("mem.json", "{\"workers\": \"x\"}", 16, &cfg, &e), BS_E_CONFIG);
    CHECK(cfg == NULL);
    CHECK(e.n >= 2);
    if (e.n >= 1) CHECK_STR(e.msgs[0], "mem.json: workers: expected an integer, got a string");
    bs_config_errors_free(&e);
    CHECK_EQ(e.n, 0);
}

/* ------------------------------------------------------------------------ */
/* Document-level errors                                                     */
/* ------------------------------------------------------------------------ */

static void test_missing_file(void)
{
    bs_config *cfg = NULL;
    bs_config_errors e = {0};
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/nope.json", g_dir);
    CHECK_EQ(bs_config_load(p, &cfg, &e), BS_E_IO);
    CHECK(cfg == NULL);
    CHECK(e.n == 1 && strstr(e.msgs[0], "No such file"));
    bs_config_errors_free(&e);
    snprintf(p, sizeof p, "%s/adir", g_dir);
    CHECK_EQ(bs_config_load(p, &cfg, &e), BS_E_IO);
    CHECK(e.n == 1 && strstr(e.msgs[0], "not a regular file"));
    bs_config_errors_free(&e);
}

static void test_empty_and_non_object(void)
{
    EXPECT_ERR("", "bs.json: (top level): the file is empty");
    EXPECT_ERR("  \n\t\n", "the file is empty");
    EXPECT_ERR("// nothing but a comment\n/* and another */", "the file is empty");
    EXPECT_ERR("[1, 2]", "(top level): expected a JSON object at the top level, got an array");
    EXPECT_ERR("\"listeners\"", "got a string");
    EXPECT_ERR("42", "got a number");
    EXPECT_ERR("null", "got null");
}

static void test_syntax_errors_have_line_and_column(void)
{
    /* Line 3, column 14 is the bare word. */
    EXPECT_ERR("{\n  \"workers\": 1,\n  \"log_level\": info\n}",
               "bs.json:3:16: JSON syntax error near 'i'");
    EXPECT_ERR("{\n  \"workers\": 1,\n}", "bs.json:2:15: JSON syntax error: trailing comma");
    EXPECT_ERR("{\"a\": [1, 2, ]}", "bs.json:1:12: JSON syntax error: trailing comma");
    EXPECT_ERR("{\n /* never closed\n \"workers\": 1}", "bs.json:2:2: unterminated /* comment");
    EXPECT_ERR("{\"workers\": 1} extra", "bs.json:1:16: JSON syntax error near 'e'");
    EXPECT_ERR("{\"workers\": 1", "bs.json:1:13: JSON syntax error");
    EXPECT_ERR("{\"workers\": 1 \"log_level\": \"info\"}",
               "bs.json:1:15: JSON syntax error near '\"'");
    /* Comment-like text in a string does not hide the rest of the line from the parser. */
    EXPECT_ERR("{\"log_level\": \"// x\" oops}", "bs.json:1:22: JSON syntax error near 'o'");
    /* A comment before the error keeps the column right (comments become spaces). */
    EXPECT_ERR("{ /* c */ \"workers\": ?}", "bs.json:1:22: JSON syntax error near '?'");
    /* Columns count characters: the two-byte 'é' in the comment is one column. */
    EXPECT_ERR("{ /* é */ \"workers\": ?}", "bs.json:1:22: JSON syntax error near '?'");
    /* Control characters in a key never break the one-problem-one-line rule. */
    EXPECT_ERR("{\"a\\nb\": 1}", "bs.json: a?b: unknown key \"a\\x0ab\"");
    const char nul[] = "{\"workers\": 1}\0{}";
    bs_config *cfg = NULL;
    bs_config_errors e = {0};
    CHECK_EQ(bs_config_parse("nul.json", nul, sizeof nul - 1, &cfg, &e), BS_E_CONFIG);
    CHECK(e.n == 1 && strstr(e.msgs[0], "nul.json:1:15: NUL byte"));
    bs_config_errors_free(&e);
}

/* ------------------------------------------------------------------------ */
/* Keys and types                                                            */
/* ------------------------------------------------------------------------ */

static void test_unknown_keys_at_every_level(void)
{
    EXPECT_ERR_T("\"wrokers\": 2",
                 "bs.json: wrokers: unknown key \"wrokers\" (did you mean \"workers\"?)");
    EXPECT_ERR_T("\"zzzzzzzz\": 2", "zzzzzzzz: unknown key \"zzzzzzzz\"");
    EXPECT_ERR_L("\"upstreams\": \"x\"", "listeners[0].upstreams: unknown key \"upstreams\"");
    EXPECT_ERR_L("\"tls\": {\"cert\": \"server.crt\", \"key\": \"server.key\", \"verify\": true}",
                 "listeners[0].tls.verify: unknown key");
    EXPECT_ERR_L("\"upstream_tls\": {\"client_auth\": \"none\"}",
                 "listeners[0].upstream_tls.client_auth: unknown key");
    EXPECT_ERR_T("\"limits\": {\"max_conns\": 5}", "limits.max_conns: unknown key");
    EXPECT_ERR_T("\"kafka\": {\"advertised\": \"x{id}:1\"}",
                 "kafka.advertised: unknown key \"advertised\" (did you mean \"advertise\"?)");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"template\": \"b{id}:1\", \"1\": \"a:1\"}}",
                 "kafka.advertise.1: unknown key");
    EXPECT_ERR_T("\"admin\": {\"port\": 9644}", "admin.port: unknown key");
    /* Keys are case-sensitive. */
    EXPECT_ERR_T("\"Workers\": 2", "Workers: unknown key");
}

static void test_future_sections_are_unsupported(void)
{
    const char *sections[] = {"encryption", "aws", "audit", "metrics", "logs", "sinks", "spool"};
    for (size_t i = 0; i < BS_ARRAY_LEN(sections); i++) {
        char *top = fmt("\"%s\": {}", sections[i]);
        char *want = fmt("%s: the \"%s\" section is not supported by this version", sections[i],
                         sections[i]);
        EXPECT_ERR_T(top, want);
        free(top);
        free(want);
    }
}

static void test_duplicate_keys(void)
{
    EXPECT_ERR_T("\"workers\": 1, \"workers\": 2", "workers: duplicate key \"workers\"");
    EXPECT_ERR_L("\"bind\": \"127.0.0.1:0\"", "listeners[0].bind: duplicate key");
    EXPECT_ERR_T("\"limits\": {\"buffer_bytes\": 8192, \"buffer_bytes\": 8192}",
                 "limits.buffer_bytes: duplicate key");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"1\": \"a:1\", \"1\": \"b:1\"}}",
                 "kafka.advertise[\"1\"]: duplicate node id");
}

static void test_wrong_types(void)
{
    EXPECT_ERR_T("\"workers\": \"4\"", "workers: expected an integer, got a string");
    EXPECT_ERR_T("\"workers\": 1.5", "workers: expected an integer, got 1.5");
    EXPECT_ERR_T("\"log_level\": 3", "log_level: expected a string, got a number");
    EXPECT_ERR("{\"listeners\": {\"bind\": \"127.0.0.1:0\"}}",
               "listeners: expected an array of listener objects, got an object");
    EXPECT_ERR("{\"listeners\": [\"127.0.0.1:0\"]}",
               "listeners[0]: expected an object, got a string");
    EXPECT_ERR("{\"listeners\": [{\"bind\": 9094, \"upstream\": \"127.0.0.1:1\"}]}",
               "listeners[0].bind: expected a string, got a number");
    EXPECT_ERR_L("\"broker_id\": \"1\"",
                 "listeners[0].broker_id: expected an integer, got a string");
    EXPECT_ERR_L("\"tls\": true", "listeners[0].tls: expected an object or null, got a boolean");
    EXPECT_ERR_L("\"tls\": {\"cert\": 1, \"key\": \"server.key\"}",
                 "listeners[0].tls.cert: expected a string, got a number");
    EXPECT_ERR_L("\"upstream_tls\": {\"verify\": \"no\"}",
                 "listeners[0].upstream_tls.verify: expected true or false, got a string");
    EXPECT_ERR_L("\"upstream_tls\": []",
                 "listeners[0].upstream_tls: expected an object or null, got an array");
    EXPECT_ERR_T("\"limits\": [1]", "limits: expected an object, got an array");
    EXPECT_ERR_T("\"limits\": {\"idle_timeout_s\": \"10\"}",
                 "limits.idle_timeout_s: expected a number of seconds, got a string");
    EXPECT_ERR_T("\"kafka\": 1", "kafka: expected an object, got a number");
    EXPECT_ERR_T("\"admin\": \"127.0.0.1:9644\"", "admin: expected an object, or null to disable");
    EXPECT_ERR_L("\"name\": \"\"", "listeners[0].name: must not be empty");
}

static void test_enums_and_ranges(void)
{
    EXPECT_ERR_T(
        "\"log_level\": \"trace\"",
        "log_level: \"trace\" is not valid: expected \"debug\", \"info\", \"warn\" or \"error\"");
    EXPECT_ERR_L("\"protocol\": \"http\"",
                 "listeners[0].protocol: \"http\" is not valid: expected \"kafka\" or \"tcp\"");
    EXPECT_ERR_T("\"workers\": 257", "workers: 257 is out of range: must be between 0 and 256");
    EXPECT_ERR_T("\"workers\": -1", "workers: -1 is out of range");
    EXPECT_ERR_L("\"broker_id\": -2", "listeners[0].broker_id: -2 is out of range");
    EXPECT_ERR_L("\"broker_id\": 2147483648", "listeners[0].broker_id: 2147483648 is out of range");
    EXPECT_ERR_T("\"limits\": {\"max_connections\": 0}",
                 "limits.max_connections: 0 is out of range");
    EXPECT_ERR_T("\"limits\": {\"buffer_bytes\": 4095}",
                 "limits.buffer_bytes: 4095 is out of range: must be between 4096 and 16777216");
    EXPECT_ERR_T("\"limits\": {\"buffer_bytes\": 16777217}",
                 "limits.buffer_bytes: 16777217 is out of range");
    EXPECT_ERR_T("\"limits\": {\"handshake_timeout_s\": 0}",
                 "limits.handshake_timeout_s: 0 is out of range");
    EXPECT_ERR_T("\"limits\": {\"idle_timeout_s\": -5}",
                 "limits.idle_timeout_s: -5 is out of range");
    EXPECT_ERR_T("\"limits\": {\"connect_timeout_s\": 3601}",
                 "limits.connect_timeout_s: 3601 is out of range");
    EXPECT_ERR_T("\"limits\": {\"shutdown_grace_s\": 1e400}",
                 "limits.shutdown_grace_s: inf is out of range");
    EXPECT_ERR_T("\"kafka\": {\"max_frame_bytes\": 1023}",
                 "kafka.max_frame_bytes: 1023 is out of range");
    EXPECT_ERR_T("\"kafka\": {\"max_frame_bytes\": 1073741825}",
                 "kafka.max_frame_bytes: 1073741825 is out of range");
    EXPECT_ERR_T("\"admin\": {\"probe_interval_s\": 0}",
                 "admin.probe_interval_s: 0 is out of range");
    EXPECT_ERR_L("\"name\": \"has space\"",
                 "listeners[0].name: \"has space\": use 1 to 64 characters");
}

static void test_missing_required(void)
{
    EXPECT_ERR("{}", "bs.json: listeners: is required");
    EXPECT_ERR("{\"listeners\": null}", "listeners: is required");
    EXPECT_ERR("{\"listeners\": []}", "listeners: must contain at least one listener");
    EXPECT_ERR("{\"listeners\": [{\"upstream\": \"127.0.0.1:9092\"}]}",
               "listeners[0].bind: is required (HOST:PORT)");
    EXPECT_ERR("{\"listeners\": [{\"bind\": \"127.0.0.1:0\"}]}",
               "listeners[0].upstream: is required (HOST:PORT)");
    EXPECT_ERR_L("\"tls\": {\"key\": \"server.key\"}", "listeners[0].tls.cert: is required");
    EXPECT_ERR_L("\"tls\": {\"cert\": \"server.crt\"}", "listeners[0].tls.key: is required");
    EXPECT_ERR_L("\"tls\": {}", "listeners[0].tls.key: is required");
}

/* ------------------------------------------------------------------------ */
/* Addresses                                                                 */
/* ------------------------------------------------------------------------ */

static void expect_bad_upstream(int line, const char *value, const char *needle)
{
    char *extra = fmt("\"name\": \"x\"");
    char *j = fmt("{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"%s\"}]}", value);
    expect_err_at(line, j, needle);
    free(j);
    free(extra);
}

static void test_bad_addresses(void)
{
    expect_bad_upstream(
        __LINE__, "127.0.0.1:0",
        "listeners[0].upstream: \"127.0.0.1:0\": port must be a number between 1 and 65535");
    expect_bad_upstream(__LINE__, "127.0.0.1:65536", "port must be a number between 1 and 65535");
    expect_bad_upstream(__LINE__, "127.0.0.1:-1", "port must be a number");
    expect_bad_upstream(__LINE__, "127.0.0.1:http", "port must be a number");
    expect_bad_upstream(__LINE__, "127.0.0.1:", "the port is empty");
    expect_bad_upstream(__LINE__, "127.0.0.1", "expected HOST:PORT");
    expect_bad_upstream(__LINE__, ":9092", "the host is empty");
    expect_bad_upstream(__LINE__, "::1:9092", "an IPv6 address must be written in brackets");
    expect_bad_upstream(__LINE__, "[::1]9092", "expected ':PORT' after ']'");
    expect_bad_upstream(__LINE__, "[::1:9092", "missing ']'");
    expect_bad_upstream(__LINE__, "[not-v6]:9092", "cannot resolve the IPv6 address");
    expect_bad_upstream(__LINE__, "bad host:9092", "not valid in a host name");
    expect_bad_upstream(
        __LINE__, "no-such-host.invalid:9092",
        "listeners[0].upstream: \"no-such-host.invalid:9092\": cannot resolve the host");
    EXPECT_ERR("{\"listeners\": [{\"bind\": \"127.0.0.1:65536\", \"upstream\": \"127.0.0.1:1\"}]}",
               "listeners[0].bind: \"127.0.0.1:65536\": port must be a number between 0 and 65535");
    EXPECT_ERR("{\"listeners\": [{\"bind\": \"999.1.1.1:1\", \"upstream\": \"127.0.0.1:1\"}]}",
               "listeners[0].bind: \"999.1.1.1:1\": cannot resolve");
    EXPECT_ERR_T("\"admin\": {\"bind\": \"127.0.0.1\"}",
                 "admin.bind: \"127.0.0.1\": expected HOST:PORT");
    /* Host names resolve at load time, and IPv6 literals work in brackets. */
    char *j = fmt("{\"listeners\": [{\"bind\": \"localhost:0\", \"upstream\": \"[::1]:65535\"}]}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (cfg) {
        CHECK_EQ(cfg->listeners[0].upstream.addr.ss_family, AF_INET6);
        CHECK_STR(cfg->listeners[0].upstream.host, "::1");
        CHECK_EQ(cfg->listeners[0].upstream.port, 65535);
    }
    bs_config_free(cfg);
}

static void test_duplicate_names_and_binds(void)
{
    EXPECT_ERR("{\"listeners\": ["
               "{\"name\": \"a\", \"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:1\"},"
               "{\"name\": \"a\", \"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:2\"}]}",
               "listeners[1].name: \"a\" is already the name of listeners[0]");
    /* A default name can collide with an explicit one too. */
    EXPECT_ERR(
        "{\"listeners\": ["
        "{\"name\": \"listener1\", \"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:1\"},"
        "{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:2\"}]}",
        "listeners[1].name: \"listener1\" is already the name of listeners[0]");
    EXPECT_ERR(
        "{\"listeners\": ["
        "{\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:1\"},"
        "{\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:2\"}]}",
        "listeners[1].bind: \"127.0.0.1:19094\" overlaps listeners[0].bind (127.0.0.1:19094)");
    EXPECT_ERR("{\"listeners\": ["
               "{\"bind\": \"0.0.0.0:19094\", \"upstream\": \"127.0.0.1:1\"},"
               "{\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:2\"}]}",
               "listeners[1].bind: \"127.0.0.1:19094\" overlaps listeners[0].bind");
    EXPECT_ERR("{\"listeners\": ["
               "{\"bind\": \"[::]:19094\", \"upstream\": \"127.0.0.1:1\"},"
               "{\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:2\"}]}",
               "listeners[1].bind: \"127.0.0.1:19094\" overlaps listeners[0].bind");
    EXPECT_ERR("{\"listeners\": [{\"bind\": \"127.0.0.1:19644\", \"upstream\": \"127.0.0.1:1\"}],"
               " \"admin\": {\"bind\": \"127.0.0.1:19644\"}}",
               "admin.bind: 127.0.0.1:19644 overlaps listeners[0].bind");
    /* Port 0 (ephemeral) never collides; different addresses or ports do not either. */
    bs_config *cfg = EXPECT_OK("{\"listeners\": ["
                               "{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:1\"},"
                               "{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:2\"},"
                               "{\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:2\"},"
                               "{\"bind\": \"127.0.0.2:19094\", \"upstream\": \"127.0.0.1:2\"},"
                               "{\"bind\": \"127.0.0.1:19095\", \"upstream\": \"127.0.0.1:2\"}]}");
    if (cfg) CHECK_EQ(cfg->n_listeners, 5);
    bs_config_free(cfg);
}

/* ------------------------------------------------------------------------ */
/* TLS                                                                       */
/* ------------------------------------------------------------------------ */

#define TLS_OK "\"cert\": \"server.crt\", \"key\": \"server.key\""

static void test_tls_versions(void)
{
    EXPECT_ERR_L(
        "\"tls\": {" TLS_OK ", \"min_version\": \"TLSv1.1\"}",
        "listeners[0].tls.min_version: \"TLSv1.1\" is not allowed: the minimum is TLSv1.2");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"min_version\": \"TLSv1\"}", "\"TLSv1\" is not allowed");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"min_version\": \"TLSv1.0\"}",
                 "\"TLSv1.0\" is not allowed");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"min_version\": \"SSLv3\"}", "\"SSLv3\" is not allowed");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"min_version\": \"TLSv1.4\"}",
                 "\"TLSv1.4\" is not a TLS version: expected \"TLSv1.2\" or \"TLSv1.3\"");
    EXPECT_ERR_L("\"upstream_tls\": {\"min_version\": \"TLSv1.1\"}",
                 "listeners[0].upstream_tls.min_version: \"TLSv1.1\" is not allowed: the minimum "
                 "is TLSv1.2");
}

static void test_weak_or_invalid_ciphers(void)
{
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"ciphers\": \"HIGH\"}",
                 "listeners[0].tls.ciphers: \"HIGH\" allows");
    EXPECT_ERR_L(
        "\"tls\": {" TLS_OK ", \"ciphers\": \"AES128-GCM-SHA256\"}",
        "without ECDHE key exchange, server authentication or AEAD encryption (AES128-GCM-SHA256)");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"ciphers\": \"ECDHE-RSA-AES128-SHA\"}",
                 "(ECDHE-RSA-AES128-SHA)");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"ciphers\": \"aNULL\"}", "\"aNULL\" allows");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"ciphers\": \"RC4\"}",
                 "listeners[0].tls.ciphers: \"RC4\" is not a valid OpenSSL cipher list");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"ciphers\": \"bogus:ECDHE-RSA-AES128-GCM-SHA256\"}",
                 "listeners[0].tls.ciphers: unknown cipher \"bogus\"");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"ciphers\": \"\"}",
                 "listeners[0].tls.ciphers: must not be empty");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"ciphersuites\": \"TLS_AES_128_GCM_SHA256:TLS_FAKE\"}",
                 "listeners[0].tls.ciphersuites: unknown TLS 1.3 cipher suite \"TLS_FAKE\"");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"ciphersuites\": \":\"}", "names no TLS 1.3 cipher suite");
    EXPECT_ERR_L("\"upstream_tls\": {\"ciphers\": \"DEFAULT\"}",
                 "listeners[0].upstream_tls.ciphers: \"DEFAULT\" allows");
    /* Negations and strength sorting are fine as long as the result is ECDHE+AEAD. */
    char *j = with("\"tls\": {" TLS_OK
                   ", \"ciphers\": \"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:-kRSA:@STRENGTH\"}",
                   "");
    bs_config *cfg = EXPECT_OK(j);
    bs_config_free(cfg);
    free(j);
}

static void test_client_auth_and_crl(void)
{
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"client_auth\": \"required\"}",
                 "listeners[0].tls.client_auth: \"required\" needs client_ca");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"client_auth\": \"optional\"}",
                 "\"optional\" needs client_ca");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"client_auth\": \"always\"}",
                 "listeners[0].tls.client_auth: \"always\" is not valid: expected \"none\", "
                 "\"optional\" or \"required\"");
    EXPECT_ERR_L("\"tls\": {" TLS_OK ", \"client_ca\": \"ca.crt\", \"crl\": \"crl.pem\"}",
                 "listeners[0].tls.crl: a CRL is only used to check client certificates");
    /* A CA without client_auth is harmless (nothing is requested). */
    char *j = with("\"tls\": {" TLS_OK ", \"client_ca\": \"ca.crt\"}", "");
    bs_config *cfg = EXPECT_OK(j);
    bs_config_free(cfg);
    free(j);
}

static void test_file_checks(void)
{
    char *abs = fmt("%s/missing.crt", g_dir);
    char *want =
        fmt("listeners[0].tls.cert: \"missing.crt\" (resolved to \"%s\") does not exist", abs);
    EXPECT_ERR_L("\"tls\": {\"cert\": \"missing.crt\", \"key\": \"server.key\"}", want);
    free(want);
    want = fmt("listeners[0].tls.key: \"%s\" does not exist", abs);
    char *extra = fmt("\"tls\": {\"cert\": \"server.crt\", \"key\": \"%s\"}", abs);
    EXPECT_ERR_L(extra, want);
    free(extra);
    free(want);
    free(abs);
    EXPECT_ERR_L("\"tls\": {\"cert\": \"adir\", \"key\": \"server.key\"}",
                 "listeners[0].tls.cert: \"adir\" (resolved to");
    EXPECT_ERR_L("\"tls\": {\"cert\": \"adir\", \"key\": \"server.key\"}", "is not a regular file");
    EXPECT_ERR_L("\"tls\": {" TLS_OK
                 ", \"client_ca\": \"nope.pem\", \"client_auth\": \"required\"}",
                 "listeners[0].tls.client_ca: \"nope.pem\"");
    EXPECT_ERR_L(
        "\"tls\": {" TLS_OK
        ", \"client_ca\": \"ca.crt\", \"client_auth\": \"required\", \"crl\": \"nope.crl\"}",
        "listeners[0].tls.crl: \"nope.crl\"");
    EXPECT_ERR_L("\"upstream_tls\": {\"ca\": \"nope.pem\"}",
                 "listeners[0].upstream_tls.ca: \"nope.pem\"");
    EXPECT_ERR_L("\"tls\": {\"cert\": \"server.crt/x\", \"key\": \"server.key\"}",
                 "cannot be accessed: Not a directory");
    /* Unreadable files. Root reads everything, so as root the load runs in a
     * child that has dropped to an unprivileged user. */
    char *locked = fmt("%s/locked.key", g_dir);
    write_file(locked, "secret\n");
    chmod(locked, 0);
    if (geteuid() != 0) {
        EXPECT_ERR_L("\"tls\": {\"cert\": \"server.crt\", \"key\": \"locked.key\"}",
                     "listeners[0].tls.key: \"locked.key\" (resolved to");
        EXPECT_ERR_L("\"tls\": {\"cert\": \"server.crt\", \"key\": \"locked.key\"}",
                     "cannot be read: Permission denied");
    } else {
        chmod(g_dir, 0711); /* the child must be able to reach the file */
        char *dir = fmt("%s/x.json", g_dir);
        const char *j = "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": "
                        "\"127.0.0.1:1\", \"upstream_tls\": {\"ca\": \"locked.key\"}}]}";
        pid_t pid = fork();
        if (pid == 0) {
            bs_config *cfg = NULL;
            bs_config_errors e = {0};
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
            bs_status st = bs_config_parse(dir, j, strlen(j), &cfg, &e);
            bool ok = st == BS_E_CONFIG && e.n == 1 &&
                      strstr(e.msgs[0], "listeners[0].upstream_tls.ca: \"locked.key\"") &&
                      strstr(e.msgs[0], "cannot be read: Permission denied");
            if (!ok) dump_errs(&e);
            _exit(ok ? 0 : 1);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        chmod(g_dir, 0700);
        free(dir);
    }
    remove(locked);
    free(locked);
}

static void test_upstream_tls_pairs(void)
{
    EXPECT_ERR_L("\"upstream_tls\": {\"cert\": \"client.crt\"}",
                 "listeners[0].upstream_tls.key: is required because cert is set");
    EXPECT_ERR_L("\"upstream_tls\": {\"key\": \"client.key\"}",
                 "listeners[0].upstream_tls.cert: is required because key is set");
    EXPECT_ERR_L("\"upstream_tls\": {\"server_name\": \"\"}",
                 "listeners[0].upstream_tls.server_name: must not be empty");
}

/* ------------------------------------------------------------------------ */
/* Relative paths                                                            */
/* ------------------------------------------------------------------------ */

static void test_relative_paths(void)
{
    /* Relative to the config file's directory, not the working directory. */
    const char *j = "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:1\","
                    " \"tls\": {\"cert\": \"../server.crt\", \"key\": \"../server.key\"}}]}";
    bs_config *cfg = NULL;
    bs_config_errors e;
    CHECK_EQ(load_named("sub/bs.json", j, &cfg, &e), BS_OK);
    dump_errs(&e);
    bs_config_errors_free(&e);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/sub/../server.crt", g_dir);
    if (cfg && cfg->listeners[0].tls) CHECK_STR(cfg->listeners[0].tls->cert_file, want);
    bs_config_free(cfg);
    /* Loading by a relative config path from another working directory still
     * stores absolute paths. */
    char cwd[PATH_MAX];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_EQ(chdir(g_dir), 0);
    cfg = NULL;
    memset(&e, 0, sizeof e);
    CHECK_EQ(bs_config_load("sub/bs.json", &cfg, &e), BS_OK);
    if (cfg && cfg->listeners[0].tls) {
        CHECK_STR(cfg->listeners[0].tls->cert_file, want);
        CHECK_STR(cfg->path, "sub/bs.json");
    }
    bs_config_free(cfg);
    bs_config_errors_free(&e);
    /* From the config's own directory with a bare file name. */
    CHECK_EQ(chdir("sub"), 0);
    cfg = NULL;
    CHECK_EQ(bs_config_load("bs.json", &cfg, &e), BS_OK);
    if (cfg && cfg->listeners[0].tls)
        CHECK_STR(cfg->listeners[0].tls->key_file,
                  (snprintf(want, sizeof want, "%s/sub/../server.key", g_dir), want));
    bs_config_free(cfg);
    bs_config_errors_free(&e);
    /* A relative path that does not exist from the config dir fails even if it
     * would exist from the working directory. */
    CHECK_EQ(chdir(g_dir), 0);
    cfg = NULL;
    CHECK_EQ(
        load_named("sub/bs2.json",
                   "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:1\","
                   " \"tls\": {\"cert\": \"server.crt\", \"key\": \"server.key\"}}]}",
                   &cfg, &e),
        BS_E_CONFIG);
    CHECK(has_err(&e, "listeners[0].tls.cert: \"server.crt\" (resolved to"));
    bs_config_errors_free(&e);
    /* From memory: a config "in /" resolves against "/", a bare name against the cwd. */
    const char *mem = "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:1\","
                      " \"upstream_tls\": {\"ca\": \"etc/passwd\"}}]}";
    cfg = NULL;
    CHECK_EQ(bs_config_parse("/virtual.json", mem, strlen(mem), &cfg, &e), BS_OK);
    if (cfg) CHECK_STR(cfg->listeners[0].upstream_tls->ca_file, "/etc/passwd");
    bs_config_free(cfg);
    CHECK_EQ(chdir("/"), 0);
    cfg = NULL;
    CHECK_EQ(bs_config_parse("virtual.json", mem, strlen(mem), &cfg, &e), BS_OK);
    if (cfg) CHECK_STR(cfg->listeners[0].upstream_tls->ca_file, "/etc/passwd");
    bs_config_free(cfg);
    bs_config_errors_free(&e);
    CHECK_EQ(chdir(cwd), 0);
}

/* ------------------------------------------------------------------------ */
/* Advertise                                                                 */
/* ------------------------------------------------------------------------ */

static void test_bad_advertise(void)
{
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"one\": \"a:1\"}}",
                 "kafka.advertise[\"one\"]: \"one\" is not a node id");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"-1\": \"a:1\"}}", "\"-1\" is not a node id");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"01\": \"a:1\"}}", "\"01\" is not a node id");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"2147483648\": \"a:1\"}}",
                 "\"2147483648\" is not a node id");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"1\": \"a\"}}",
                 "kafka.advertise[\"1\"]: \"a\": expected HOST:PORT");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"1\": \"a:0\"}}",
                 "port must be a number between 1 and 65535");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"1\": \"[zz]:1\"}}", "not an IPv6 address");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"1\": 9094}}",
                 "kafka.advertise[\"1\"]: expected a \"host:port\" string, got a number");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": \"broker.example.com:9094\"}",
                 "kafka.advertise: \"broker.example.com:9094\": the template must contain {id}");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": \"b{ID}.example.com:9094\"}",
                 "kafka.advertise: \"b{ID}.example.com:9094\": the template must contain {id}");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": \"b{id}-{rack}.example.com:9094\"}",
                 "only the placeholder {id} is supported");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": \"b{id}.example.com\"}", "expected HOST:PORT");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": \"b{id} x:1\"}", "not valid in a host name");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": 5}",
                 "kafka.advertise: expected a template string, a node-id map");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"nodes\": [\"a:1\"]}}",
                 "kafka.advertise.nodes: expected an object mapping node ids");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"template\": 1}}",
                 "kafka.advertise.template: expected a string");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"template\": \"x:1\"}}",
                 "kafka.advertise.template: \"x:1\": the template must contain {id}");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {}}", "kafka.advertise: maps no node id");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"nodes\": {}, \"template\": \"b{id}:1\"}}",
                 "kafka.advertise.nodes: maps no node id");
    EXPECT_ERR_T("\"kafka\": {\"advertise\": {\"nodes\": {\"x\": \"a:1\"}}}",
                 "kafka.advertise.nodes[\"x\"]: \"x\" is not a node id");
}

static void test_advertise_lookup(void)
{
    char *j = with(
        "", "\"kafka\": {\"advertise\": {\"nodes\": {\"1\": \"one.example.com:9001\","
            " \"2\": \"[2001:db8::2]:9002\"}, \"template\": \"k{id}-{id}.example.com:9094\"}}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (!cfg) return;
    char host[64];
    uint16_t port = 0;
    CHECK_EQ(bs_config_advertised(&cfg->kafka, 1, host, sizeof host, &port), BS_OK);
    CHECK_STR(host, "one.example.com");
    CHECK_EQ(port, 9001);
    CHECK_EQ(bs_config_advertised(&cfg->kafka, 2, host, sizeof host, &port), BS_OK);
    CHECK_STR(host, "2001:db8::2");
    CHECK_EQ(port, 9002);
    /* Not in the map: the template, every {id} replaced. */
    CHECK_EQ(bs_config_advertised(&cfg->kafka, 1234, host, sizeof host, &port), BS_OK);
    CHECK_STR(host, "k1234-1234.example.com");
    CHECK_EQ(port, 9094);
    CHECK_EQ(bs_config_advertised(&cfg->kafka, 0, host, sizeof host, &port), BS_OK);
    CHECK_STR(host, "k0-0.example.com");
    CHECK_EQ(bs_config_advertised(&cfg->kafka, -1, host, sizeof host, &port), BS_E_NOT_FOUND);
    CHECK_EQ(bs_config_advertised(&cfg->kafka, 1, host, 8, &port), BS_E_TOO_LARGE);
    CHECK_EQ(bs_config_advertised(&cfg->kafka, 77, host, 8, &port), BS_E_TOO_LARGE);
    bs_config_free(cfg);

    /* Map only: unmapped ids are not found. */
    j = with("", "\"kafka\": {\"advertise\": {\"3\": \"three:1\"}}");
    cfg = EXPECT_OK(j);
    free(j);
    if (cfg) {
        CHECK_EQ(cfg->kafka.n_advertise, 1);
        CHECK(cfg->kafka.advertise_template == NULL);
        CHECK_EQ(bs_config_advertised(&cfg->kafka, 3, host, sizeof host, &port), BS_OK);
        CHECK_STR(host, "three");
        CHECK_EQ(bs_config_advertised(&cfg->kafka, 4, host, sizeof host, &port), BS_E_NOT_FOUND);
    }
    bs_config_free(cfg);

    /* Template only, with {id} in the port: ids that overflow it are refused. */
    j = with("", "\"kafka\": {\"advertise\": \"localhost:909{id}\"}");
    cfg = EXPECT_OK(j);
    free(j);
    if (cfg) {
        CHECK_EQ(bs_config_advertised(&cfg->kafka, 3, host, sizeof host, &port), BS_OK);
        CHECK_STR(host, "localhost");
        CHECK_EQ(port, 9093);
        CHECK_EQ(bs_config_advertised(&cfg->kafka, 10, host, sizeof host, &port), BS_E_MALFORMED);
    }
    bs_config_free(cfg);

    /* No kafka section: nothing is mapped. */
    bs_kafka_config none = {0};
    CHECK_EQ(bs_config_advertised(&none, 1, host, sizeof host, &port), BS_E_NOT_FOUND);
}

/* ------------------------------------------------------------------------ */
/* Many errors, reload rule, shipped example                                 */
/* ------------------------------------------------------------------------ */

static void test_all_errors_are_reported(void)
{
    const char *j = "{\n"
                    "  \"workers\": \"many\",\n"
                    "  \"listeners\": [\n"
                    "    {\"bind\": \"127.0.0.1:70000\", \"upstream\": \"x\", \"colour\": 1,\n"
                    "     \"tls\": {\"cert\": \"nope.crt\", \"key\": \"server.key\", "
                    "\"min_version\": \"TLSv1.1\"}},\n"
                    "    {\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:0\"}\n"
                    "  ],\n"
                    "  \"limits\": {\"buffer_bytes\": 1},\n"
                    "  \"audit\": {}\n"
                    "}\n";
    bs_config *cfg = NULL;
    bs_config_errors e;
    CHECK_EQ(load(j, &cfg, &e), BS_E_CONFIG);
    CHECK(cfg == NULL);
    const char *want[] = {"audit: the \"audit\" section is not supported",
                          "workers: expected an integer",
                          "listeners[0].colour: unknown key",
                          "listeners[0].bind: \"127.0.0.1:70000\"",
                          "listeners[0].upstream: \"x\": expected HOST:PORT",
                          "listeners[0].tls.cert: \"nope.crt\"",
                          "listeners[0].tls.min_version: \"TLSv1.1\" is not allowed",
                          "listeners[1].upstream: \"127.0.0.1:0\": port must be",
                          "limits.buffer_bytes: 1 is out of range"};
    CHECK_EQ(e.n, BS_ARRAY_LEN(want));
    for (size_t i = 0; i < BS_ARRAY_LEN(want); i++) {
        if (!has_err(&e, want[i])) {
            fprintf(stderr, "  FAIL: missing [%s]\n", want[i]);
            test_failures_in_current++;
        }
    }
    /* Errors come in document order within a section. */
    if (e.n == BS_ARRAY_LEN(want)) CHECK(strstr(e.msgs[2], "colour") && strstr(e.msgs[3], "bind"));
    if (test_failures_in_current) dump_errs(&e);
    bs_config_errors_free(&e);
    /* errs accumulates: a second failed load appends after what is there. */
    bs_config_errors acc = {0};
    CHECK_EQ(bs_config_parse("a.json", "{}", 2, &cfg, &acc), BS_E_CONFIG);
    CHECK_EQ(bs_config_parse("b.json", "[]", 2, &cfg, &acc), BS_E_CONFIG);
    CHECK_EQ(acc.n, 2);
    if (acc.n == 2)
        CHECK(strncmp(acc.msgs[0], "a.json: ", 8) == 0 && strncmp(acc.msgs[1], "b.json: ", 8) == 0);
    bs_config_errors_free(&acc);
}

static void test_needs_restart(void)
{
    char *base = with("\"tls\": {" TLS_OK "}", "\"limits\": {\"buffer_bytes\": 8192}");
    bs_config *a = EXPECT_OK(base);
    char *live =
        with("\"tls\": {" TLS_OK ", \"min_version\": \"TLSv1.3\", \"client_ca\": \"ca.crt\"}",
             "\"limits\": {\"buffer_bytes\": 16384}, \"log_level\": \"debug\","
             " \"kafka\": {\"advertise\": \"b{id}:1\"}");
    bs_config *b = EXPECT_OK(live);
    char *restart =
        fmt("{\"workers\": %ld, \"listeners\": [{\"bind\": \"127.0.0.1:1\", "
            "\"upstream\": \"127.0.0.1:9093\", \"protocol\": \"tcp\"}], \"admin\": null}",
            sysconf(_SC_NPROCESSORS_ONLN) == 7 ? 8L : 7L);
    bs_config *c = EXPECT_OK(restart);
    char what[256];
    if (a && b && c) {
        CHECK(!bs_config_needs_restart(a, b, what, sizeof what));
        CHECK_STR(what, "");
        CHECK(bs_config_needs_restart(a, c, what, sizeof what));
        CHECK_STR(what, "workers, listeners[0].bind, listeners[0].upstream, listeners[0].protocol, "
                        "listeners[0].tls (on/off), admin (enabled or bind)");
        CHECK(bs_config_needs_restart(a, c, NULL, 0));
        CHECK(bs_config_needs_restart(a, c, what, 10));
        CHECK(strlen(what) < 10 && strncmp(what, "workers", 7) == 0); /* truncated, terminated */
    }
    bs_config_free(a);
    bs_config_free(b);
    bs_config_free(c);
    free(base);
    free(live);
    free(restart);
}

static void test_shipped_example_loads(void)
{
    const char *src = getenv("BS_SOURCE_DIR");
    CHECK(src != NULL);
    if (!src) return;
    char certs[PATH_MAX], ca[PATH_MAX + 16], cmd[3 * PATH_MAX];
    snprintf(certs, sizeof certs, "%s/certs/dev", src);
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    if (access(ca, F_OK) != 0) {
        snprintf(cmd, sizeof cmd, "'%s/certs/make-dev-certs.sh' '%s' >/dev/null", src, certs);
        int rc = system(cmd);
        CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/conf/brokerside.json", src);
    bs_config *cfg = NULL;
    bs_config_errors e = {0};
    CHECK_EQ(bs_config_load(path, &cfg, &e), BS_OK);
    dump_errs(&e);
    CHECK(cfg && cfg->n_listeners >= 1);
    if (cfg && cfg->listeners[0].tls) {
        char want[PATH_MAX + 64];
        snprintf(want, sizeof want, "%s/conf/../certs/dev/server.crt", src);
        CHECK_STR(cfg->listeners[0].tls->cert_file, want);
    }
    bs_config_free(cfg);
    bs_config_errors_free(&e);
}

int main(void)
{
    setup_dir();
    RUN(test_minimal_gets_defaults);
    RUN(test_full_config);
    RUN(test_null_means_default_and_admin_null_disables);
    RUN(test_warnings_are_logged);
    RUN(test_comments);
    RUN(test_parse_from_memory);
    RUN(test_missing_file);
    RUN(test_empty_and_non_object);
    RUN(test_syntax_errors_have_line_and_column);
    RUN(test_unknown_keys_at_every_level);
    RUN(test_future_sections_are_unsupported);
    RUN(test_duplicate_keys);
    RUN(test_wrong_types);
    RUN(test_enums_and_ranges);
    RUN(test_missing_required);
    RUN(test_bad_addresses);
    RUN(test_duplicate_names_and_binds);
    RUN(test_tls_versions);
    RUN(test_weak_or_invalid_ciphers);
    RUN(test_client_auth_and_crl);
    RUN(test_file_checks);
    RUN(test_upstream_tls_pairs);
    RUN(test_relative_paths);
    RUN(test_bad_advertise);
    RUN(test_advertise_lookup);
    RUN(test_all_errors_are_reported);
    RUN(test_needs_restart);
    RUN(test_shipped_example_loads);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_report();
}
