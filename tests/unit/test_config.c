/* Unit tests for src/daemon/config.c: every error path, defaults, comments,
 * relative paths, advertise lookup, the reload rule and the shipped example. */
#include "brokerside/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "brokerside/keyring.h"
#include "brokerside/tls.h"
#include "spool_testutil.h"
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

/* Load `json`; returns its warnings (cfg->warnings), one per line (caller
 * frees). The loader itself must log nothing: checked with stderr captured. */
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
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && sb.st_size == 0);
    char *buf = calloc(1, 16384);
    size_t used = 0;
    for (size_t i = 0; buf && cfg && cfg->warnings && i < cfg->warnings->n; i++)
        used += (size_t)snprintf(buf + used, used < 16384 ? 16384 - used : 0, "%s\n",
                                 cfg->warnings->msgs[i]);
    bs_config_free(cfg);
    bs_config_errors_free(&e);
    return buf;
}

static void test_warnings_are_logged(void)
{
    bs_status st;
    char *j = with("", "\"admin\": {\"bind\": \"0.0.0.0:0\"}");
    char *log = load_capturing_log(j, &st);
    CHECK_EQ(st, BS_OK);
    CHECK(log && strstr(log, "admin.bind 0.0.0.0:0 is not a loopback address"));
    free(log);
    free(j);
    j = with("", "");
    log = load_capturing_log(j, &st);
    CHECK_EQ(st, BS_OK);
    CHECK(log && !strstr(log, "admin.bind")); /* loopback admin: nothing to say about it */
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
    /* A key with control characters stays one line: '?' in the path, \xNN quoted. */
    EXPECT_ERR_T("\"a\\nb\\u0001\": 2", "bs.json: a?b?: unknown key \"a\\x0ab\\x01\"");
}

static void test_top_level_sections_are_known(void)
{
    /* Every documented section is accepted; a misspelt one gets a suggestion. */
    EXPECT_ERR_T("\"encrpytion\": {}", "encrpytion: unknown key \"encrpytion\" (did you mean "
                                       "\"encryption\"?)");
    EXPECT_ERR_T("\"sink\": {}", "sink: unknown key \"sink\" (did you mean \"sinks\"?)");
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

/* Zero-config mapping: one route per kafka listener, what it announces,
 * and how an advertised broker address finds its route. */
static void test_zero_config_routes(void)
{
    char *j = fmt(
        "{\"listeners\": ["
        "{\"name\": \"lo\", \"bind\": \"127.0.0.1:19094\", \"upstream\": \"localhost:9092\"},"
        "{\"name\": \"pub\", \"bind\": \"0.0.0.0:19095\", \"upstream\": \"127.0.0.1:9092\","
        " \"advertised\": \"broker1.example.com:9095\"},"
        "{\"name\": \"wild\", \"bind\": \"0.0.0.0:19096\", \"upstream\": \"127.0.0.1:9093\"},"
        "{\"name\": \"eph\", \"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9094\"},"
        "{\"name\": \"raw\", \"bind\": \"127.0.0.1:19097\", \"upstream\": \"127.0.0.1:9095\","
        " \"protocol\": \"tcp\"},"
        "{\"name\": \"v6\", \"bind\": \"[::1]:19098\", \"upstream\": \"[::1]:9096\"}]}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (!cfg) return;
    const bs_kafka_config *k = &cfg->kafka;
    CHECK_EQ(k->n_routes, 5); /* the tcp listener has none */
    CHECK_STR(k->routes[0].host, "127.0.0.1");
    CHECK_EQ(k->routes[0].port, 19094);
    CHECK_STR(k->routes[1].host, "broker1.example.com");
    CHECK_EQ(k->routes[1].port, 9095);
    CHECK(k->routes[2].host == NULL); /* wildcard bind, no `advertised` */
    CHECK(k->routes[3].host == NULL); /* port 0: not known until bound */
    CHECK_STR(k->routes[4].host, "::1");
#define ROUTE(h, p, via) bs_config_route_for(k, 1, h, strlen(h), p, false, via)
    /* by text, any case: the listener fronting localhost:9092 */
    const bs_kafka_route *r = ROUTE("LOCALHOST", 9092, NULL);
    CHECK(r && strcmp(r->listener, "lo") == 0);
    /* by IP literal: "lo"'s upstream resolved to 127.0.0.1, "pub"'s is written so: the first
     * wins, unless the client came through the other one */
    r = ROUTE("127.0.0.1", 9092, NULL);
    CHECK(r && strcmp(r->listener, "lo") == 0);
    r = ROUTE("127.0.0.1", 9092, "pub");
    CHECK(r && strcmp(r->listener, "pub") == 0);
    r = ROUTE("127.0.0.1", 9092, "nosuch");
    CHECK(r && strcmp(r->listener, "lo") == 0);
    /* fronted, but nothing to announce: no route (the node stays unmapped) */
    CHECK(ROUTE("127.0.0.1", 9093, NULL) == NULL);
    CHECK(ROUTE("127.0.0.1", 9094, NULL) == NULL);
    /* a tcp listener's upstream is not a route */
    CHECK(ROUTE("127.0.0.1", 9095, NULL) == NULL);
    /* other brokers of the fleet: another host or another port */
    CHECK(ROUTE("127.0.0.2", 9092, NULL) == NULL);
    CHECK(ROUTE("broker2.example.com", 9092, NULL) == NULL);
    CHECK(ROUTE("127.0.0.1", 9999, NULL) == NULL);
    CHECK(ROUTE("", 9092, NULL) == NULL);
    CHECK(bs_config_route_for(k, 1, "127.0.0.1xyz", 9, 9092, false, NULL) != NULL); /* length counts */
    CHECK(ROUTE("127.0.0.1xyz", 9092, NULL) == NULL);
    /* IPv6 literal equal to the resolved upstream */
    r = ROUTE("0:0:0:0:0:0:0:1", 9096, NULL);
    CHECK(r && strcmp(r->listener, "v6") == 0);
    /* without broker_id: an address several nodes advertise identifies none of them */
    CHECK(bs_config_route_for(k, 1, "127.0.0.1", 9, 9092, true, NULL) == NULL);
    CHECK(bs_config_route_for(k, -1, "127.0.0.1", 9, 9092, false, NULL) == NULL);
#undef ROUTE
    bs_config_free(cfg);

    /* with broker_id: only that node, shared address or not */
    j = fmt("{\"listeners\": [{\"name\": \"b2\", \"bind\": \"127.0.0.1:19094\", "
            "\"upstream\": \"127.0.0.1:9092\", \"broker_id\": 2}]}");
    cfg = EXPECT_OK(j);
    free(j);
    if (!cfg) return;
    k = &cfg->kafka;
    CHECK_EQ(k->routes[0].node_id, 2);
    r = bs_config_route_for(k, 2, "127.0.0.1", 9, 9092, true, NULL);
    CHECK(r && strcmp(r->listener, "b2") == 0);
    CHECK(bs_config_route_for(k, 1, "127.0.0.1", 9, 9092, false, NULL) == NULL);
    CHECK(bs_config_route_for(k, 3, "127.0.0.1", 9, 9092, true, NULL) == NULL);
    bs_config_free(cfg);

    EXPECT_ERR_L("\"advertised\": \"nohostport\"", "listeners[0].advertised: \"nohostport\"");
    EXPECT_ERR_L("\"advertised\": \"h:0\"", "listeners[0].advertised: \"h:0\": port must be");
    EXPECT_ERR_L("\"advertised\": 9094", "listeners[0].advertised: expected a string");
    EXPECT_ERR_L("\"protocol\": \"tcp\", \"advertised\": \"h:1\"",
                 "listeners[0].advertised: only a \"kafka\" listener announces broker addresses");
}

/* The count of warnings of `json` containing `needle` (-1 if it does not load). */
static int count_warnings(const char *json, const char *needle)
{
    bs_config *cfg = NULL;
    bs_config_errors e;
    if (load(json, &cfg, &e) != BS_OK) {
        dump_errs(&e);
        bs_config_errors_free(&e);
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < cfg->warnings->n; i++) {
        if (strstr(cfg->warnings->msgs[i], needle)) n++;
        if (!needle[0]) fprintf(stderr, "    warning: %s\n", cfg->warnings->msgs[i]);
    }
    bs_config_free(cfg);
    bs_config_errors_free(&e);
    return n;
}

/* bs_config_warnings: a careful config has none; each regret is named. */
static void test_operator_warnings(void)
{
    char *key = fmt("%s/warn-master.key", g_dir), why[256] = "";
    remove(key);
    CHECK_EQ(bs_keyring_local_keygen(key, why, sizeof why), BS_OK);
    const char *careful_top =
        "\"limits\": {\"max_connections\": 100},"
        "\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"warn-master.key\"},"
        " \"topics\": [{\"match\": \"*\", \"key\": \"k1\"}]}";
    const char *careful_l = "\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:9092\"";
#define CFG(l, top) fmt("{\"listeners\": [{%s}], %s}", l, top)
    char *j = CFG(careful_l, careful_top);
    CHECK_EQ(count_warnings(j, ""), 0);
    free(j);
    struct {
        const char *listener, *top, *needle;
    } cases[] = {
        /* a kafka listener with nothing to announce */
        {"\"bind\": \"0.0.0.0:19094\", \"upstream\": \"127.0.0.1:9092\", \"tls\": {\"cert\": "
         "\"server.crt\", \"key\": \"server.key\"}",
         careful_top, "listeners[0] (listener0): no address to announce for the broker behind it"},
        {"\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\"", careful_top,
         "its bind 127.0.0.1:0 is port 0"},
        /* plaintext beyond loopback, both ways; unchecked broker certificate */
        {"\"bind\": \"0.0.0.0:19094\", \"upstream\": \"127.0.0.1:9092\", \"advertised\": "
         "\"b1:19094\"",
         careful_top, "bind 0.0.0.0:19094 is not a loopback address and tls is off"},
        {"\"bind\": \"127.0.0.1:19094\", \"upstream\": \"192.0.2.1:9092\"", careful_top,
         "upstream 192.0.2.1:9092 is not a loopback address and upstream_tls is off"},
        {"\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:9092\", \"upstream_tls\": "
         "{\"verify\": false}",
         careful_top, "listeners[0].upstream_tls.verify is false"},
        /* encryption off, audit unsigned, admin on the network, secrets, unused sink, fds */
        {careful_l, "\"limits\": {\"max_connections\": 100}", "encryption at rest is OFF"},
        {careful_l, "\"limits\": {\"max_connections\": 100}, \"audit\": {}, \"spool\": {\"dir\": \"sub\"}",
         "audit.signing_key_file is not set"},
        {careful_l, "\"limits\": {\"max_connections\": 100}, \"admin\": {\"bind\": \"0.0.0.0:19644\"}",
         "admin.bind 0.0.0.0:19644 is not a loopback address"},
        {"\"bind\": \"127.0.0.1:443\", \"upstream\": \"127.0.0.1:9092\"", careful_top,
         "bind port 443 is below 1024: binding it needs CAP_NET_BIND_SERVICE"},
        {careful_l, "\"limits\": {\"max_connections\": 1000000}", "limits.max_connections 1000000 needs about 2000100 open files"},
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(cases); i++) {
        j = CFG(cases[i].listener, cases[i].top);
        int n = count_warnings(j, cases[i].needle);
        if (n != 1) {
            fprintf(stderr, "  case %zu: %d warnings with \"%s\"; all:\n", i, n, cases[i].needle);
            count_warnings(j, "");
        }
        CHECK_EQ(n, 1);
        free(j);
    }
    /* covered by kafka.advertise: a template, or the map entry of its broker_id */
    j = CFG("\"bind\": \"0.0.0.0:19094\", \"upstream\": \"127.0.0.1:9092\", \"broker_id\": 3, "
            "\"tls\": {\"cert\": \"server.crt\", \"key\": \"server.key\"}",
            "\"kafka\": {\"advertise\": {\"3\": \"b3:19094\"}}");
    CHECK_EQ(count_warnings(j, "no address to announce"), 0);
    free(j);
    j = CFG("\"bind\": \"0.0.0.0:19094\", \"upstream\": \"127.0.0.1:9092\", \"broker_id\": 4, "
            "\"tls\": {\"cert\": \"server.crt\", \"key\": \"server.key\"}",
            "\"kafka\": {\"advertise\": {\"3\": \"b3:19094\"}}");
    CHECK_EQ(count_warnings(j, "no address to announce"), 1);
    free(j);
    j = CFG("\"bind\": \"0.0.0.0:19094\", \"upstream\": \"127.0.0.1:9092\", "
            "\"tls\": {\"cert\": \"server.crt\", \"key\": \"server.key\"}",
            "\"kafka\": {\"advertise\": \"b{id}:19094\"}");
    CHECK_EQ(count_warnings(j, "no address to announce"), 0);
    free(j);
    /* a fleet member without broker_id: its own node may not be derivable */
    j = CFG("\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:9092\"",
            "\"kafka\": {\"advertise\": {\"3\": \"b3:19094\"}}");
    CHECK_EQ(count_warnings(j, "kafka.advertise maps other nodes but broker_id is not set"), 1);
    free(j);
    j = CFG("\"bind\": \"127.0.0.1:19094\", \"upstream\": \"127.0.0.1:9092\", \"broker_id\": 2",
            "\"kafka\": {\"advertise\": {\"3\": \"b3:19094\"}}");
    CHECK_EQ(count_warnings(j, "broker_id is not set"), 0);
    free(j);
    /* a tcp listener announces nothing and is not warned about it */
    j = CFG("\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\", \"protocol\": \"tcp\"",
            "\"limits\": {\"max_connections\": 100}");
    CHECK_EQ(count_warnings(j, "no address to announce"), 0);
    free(j);
#undef CFG
    remove(key);
    free(key);
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
    const char *want[] = {"workers: expected an integer",
                          "listeners[0].colour: unknown key",
                          "listeners[0].bind: \"127.0.0.1:70000\"",
                          "listeners[0].upstream: \"x\": expected HOST:PORT",
                          "listeners[0].tls.cert: \"nope.crt\"",
                          "listeners[0].tls.min_version: \"TLSv1.1\" is not allowed",
                          "listeners[1].upstream: \"127.0.0.1:0\": port must be",
                          "limits.buffer_bytes: 1 is out of range",
                          "spool.dir: is required when audit, metrics or logs are on"};
    CHECK_EQ(e.n, BS_ARRAY_LEN(want));
    for (size_t i = 0; i < BS_ARRAY_LEN(want); i++) {
        if (!has_err(&e, want[i])) {
            fprintf(stderr, "  FAIL: missing [%s]\n", want[i]);
            test_failures_in_current++;
        }
    }
    /* Errors come in document order within a section. */
    if (e.n == BS_ARRAY_LEN(want)) CHECK(strstr(e.msgs[1], "colour") && strstr(e.msgs[2], "bind"));
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

/* `proxy_protocol` and its source list: valid lists load, every problem is
 * named with its JSON path, and a changed list needs a restart. */
static void test_proxy_protocol(void)
{
    char *j = with("\"proxy_protocol\": true, \"proxy_protocol_sources\": [\"10.0.0.0/8\", "
                   "\"::1/128\", \"127.0.0.2\", \"fd00::/8\"]",
                   "");
    bs_config *a = EXPECT_OK(j);
    free(j);
    if (a) {
        const bs_listener_config *l = &a->listeners[0];
        CHECK(l->proxy_protocol);
        CHECK_EQ(l->n_proxy_sources, 4);
        CHECK_EQ(l->proxy_sources[0].family, AF_INET);
        CHECK_EQ(l->proxy_sources[0].prefix, 8);
        CHECK_EQ(l->proxy_sources[1].family, AF_INET6);
        CHECK_EQ(l->proxy_sources[2].prefix, 32);
        j = with("\"proxy_protocol\": true, \"proxy_protocol_sources\": [\"10.0.0.0/16\"]", "");
        bs_config *b = EXPECT_OK(j);
        free(j);
        char what[256] = "";
        if (b) {
            CHECK(bs_config_needs_restart(a, b, what, sizeof what));
            CHECK(strstr(what, "proxy_protocol_sources") != NULL);
            bs_config_free(b);
        }
        bs_config_free(a);
    }
    /* the default is off, with no list */
    j = with("", "");
    a = EXPECT_OK(j);
    free(j);
    if (a) {
        CHECK(!a->listeners[0].proxy_protocol);
        CHECK_EQ(a->listeners[0].n_proxy_sources, 0);
        bs_config_free(a);
    }
    EXPECT_ERR_L("\"proxy_protocol\": true",
                 "listeners[0].proxy_protocol_sources: is required with \"proxy_protocol\": true");
    EXPECT_ERR_L("\"proxy_protocol\": true, \"proxy_protocol_sources\": null",
                 "listeners[0].proxy_protocol_sources: is required");
    EXPECT_ERR_L("\"proxy_protocol_sources\": [\"10.0.0.0/8\"]",
                 "listeners[0].proxy_protocol_sources: has no effect without");
    EXPECT_ERR_L("\"proxy_protocol\": \"yes\", \"proxy_protocol_sources\": [\"10.0.0.0/8\"]",
                 "listeners[0].proxy_protocol: expected");
    EXPECT_ERR_L("\"proxy_protocol\": true, \"proxy_protocol_sources\": []",
                 "listeners[0].proxy_protocol_sources: must list 1 to 256 networks");
    EXPECT_ERR_L("\"proxy_protocol\": true, \"proxy_protocol_sources\": \"10.0.0.0/8\"",
                 "listeners[0].proxy_protocol_sources: expected an array of CIDR strings");
    EXPECT_ERR_L("\"proxy_protocol\": true, \"proxy_protocol_sources\": [\"10.0.0.0/8\", 10]",
                 "listeners[0].proxy_protocol_sources[1]: expected a CIDR string");
    EXPECT_ERR_L("\"proxy_protocol\": true, \"proxy_protocol_sources\": [\"10.0.0.0/33\"]",
                 "listeners[0].proxy_protocol_sources[0]: \"10.0.0.0/33\": prefix must be 0..32");
    EXPECT_ERR_L("\"proxy_protocol\": true, \"proxy_protocol_sources\": [\"::1/129\"]",
                 "prefix must be 0..128");
    EXPECT_ERR_L("\"proxy_protocol\": true, \"proxy_protocol_sources\": [\"lb.example.com\"]",
                 "\"lb.example.com\": not an IPv4 or IPv6 address");
    /* every bad entry is reported, not only the first */
    size_t n = EXPECT_ERR(
        "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\", "
        "\"proxy_protocol\": true, \"proxy_protocol_sources\": [\"10.0.0.1/8\", \"x\"]}]}",
        "listeners[0].proxy_protocol_sources[0]: \"10.0.0.1/8\": host bits set after the prefix: "
        "did you mean \"10.0.0.0/8\"?");
    CHECK_EQ(n, 2);
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
    char key[PATH_MAX + 16], why[256] = "";
    if (access(ca, F_OK) != 0) {
        /* Made in a private directory and renamed into place, so a concurrent
         * reader (test_events_cli, another build's run of this test) sees
         * certs/dev either absent or complete, never half-written. */
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s/certs/.dev-XXXXXX", src);
        CHECK(mkdtemp(tmp) != NULL && chmod(tmp, 0755) == 0); /* as mkdir would make it */
        snprintf(cmd, sizeof cmd, "'%s/certs/make-dev-certs.sh' '%s' >/dev/null", src, tmp);
        int rc = system(cmd);
        CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
        /* The example's master key; what `brokerside keygen` writes (mode 0600). */
        snprintf(key, sizeof key, "%s/master.key", tmp);
        CHECK_EQ(bs_keyring_local_keygen(key, why, sizeof why), BS_OK);
        if (why[0]) fprintf(stderr, "  keygen: %s\n", why);
        /* Losing the race to another run is fine: its certs/dev is complete. */
        if (rename(tmp, certs) != 0) {
            CHECK(errno == EEXIST || errno == ENOTEMPTY);
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
            CHECK_EQ(system(cmd), 0);
        }
    }
    snprintf(key, sizeof key, "%s/master.key", certs);
    if (access(key, F_OK) != 0) {
        CHECK_EQ(bs_keyring_local_keygen(key, why, sizeof why), BS_OK);
        if (why[0]) fprintf(stderr, "  keygen: %s\n", why);
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
    if (cfg) {
        /* The shipped example encrypts every topic with the local keyring,
         * sends every stream into one file sink, spools under var/. */
        CHECK(cfg->encryption.enabled);
        CHECK(cfg->encryption.kms_type == BS_KMS_LOCAL);
        CHECK(cfg->encryption.n_topics == 1 && strcmp(cfg->encryption.topics[0].match, "*") == 0);
        CHECK(cfg->audit.enabled && cfg->metrics.enabled && cfg->logs.enabled);
        const bs_sink_config *s = bs_config_sink(cfg, "local-files");
        CHECK(s && s->kind == BS_SINK_FILE && s->streams == 7u);
        char want[PATH_MAX + 64];
        snprintf(want, sizeof want, "%s/conf/../var/spool", src);
        CHECK_STR(cfg->spool.dir, want);
    }
    bs_config_free(cfg);
    bs_config_errors_free(&e);
}

/* ------------------------------------------------------------------------ */
/* aws, encryption, audit, metrics, logs, sinks, spool                       */
/* ------------------------------------------------------------------------ */

/* Top-level pieces shared by the tests below. g_dir/master.key is a 0600
 * key file, g_dir/open-master.key a 0644 one; spool dir g_dir/spool does not
 * exist yet (its parent does, so the daemon could create it). */
#define ENC_LOCAL                                                                                  \
    "\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "              \
    "\"topics\": [{\"match\": \"*\", \"key\": \"k1\"}]}"
#define SPOOL "\"spool\": {\"dir\": \"spool\"}"

static void setup_event_files(void)
{
    char *p = fmt("%s/master.key", g_dir);
    write_file(p, "0123456789abcdef0123456789abcdef\n");
    chmod(p, 0600);
    free(p);
    p = fmt("%s/audit.key", g_dir);
    write_file(p, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
    chmod(p, 0600);
    free(p);
    p = fmt("%s/open-master.key", g_dir);
    write_file(p, "0123456789abcdef0123456789abcdef\n");
    chmod(p, 0644);
    free(p);
    p = fmt("%s/ed.pem", g_dir);
    write_file(p, "-----BEGIN PRIVATE KEY-----\nplaceholder\n-----END PRIVATE KEY-----\n");
    chmod(p, 0600);
    free(p);
    p = fmt("%s/afile", g_dir);
    write_file(p, "x\n");
    free(p);
}

static void test_event_sections_default_off(void)
{
    char *j = with("", "");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (!cfg) return;
    /* No encryption section: loads, but the flag makes the daemon warn. */
    CHECK(!cfg->encryption.enabled);
    CHECK_EQ(cfg->encryption.dek_max_records, 1000000);
    CHECK_EQ(cfg->encryption.dek_max_age_s, 3600);
    CHECK(!cfg->audit.enabled && !cfg->metrics.enabled && !cfg->logs.enabled);
    CHECK_EQ(cfg->n_sinks, 0);
    CHECK(cfg->spool.dir == NULL);
    CHECK_EQ(cfg->spool.max_bytes, 1073741824ull);
    CHECK_EQ(cfg->spool.segment_bytes, 64ull << 20);
    CHECK_EQ(cfg->spool.fsync_interval_ms, 100);
    CHECK_EQ(cfg->spool.audit_sync_ms, 100);
    CHECK(cfg->aws.region == NULL && !cfg->aws.region_from_env);
    char msg[256];
    snprintf(msg, sizeof msg, BS_CONFIG_ENCRYPTION_OFF_FMT, cfg->path);
    CHECK(strstr(msg, "encryption at rest is OFF") && strstr(msg, cfg->path));
    CHECK_EQ(cfg->aws.max_attempts, 4);
    CHECK(cfg->aws.connect_timeout_s == 3 && cfg->aws.request_timeout_s == 30);
    CHECK_STR(cfg->metrics.ns, "Kafka/Brokerside");
    bs_config_free(cfg);
    /* null is the same as absent. */
    j = with("", "\"encryption\": null, \"audit\": null, \"metrics\": null, \"logs\": null, "
                 "\"sinks\": null, \"spool\": null, \"aws\": null");
    cfg = EXPECT_OK(j);
    free(j);
    if (cfg) CHECK(!cfg->encryption.enabled && !cfg->audit.enabled && cfg->n_sinks == 0);
    bs_config_free(cfg);
}

static void test_encryption_local_and_rules(void)
{
    char *j = with("", "\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": "
                       "\"master.key\"},"
                       " \"topics\": [{\"match\": \"payments.*\", \"key\": \"pay\"},"
                       "              {\"match\": \"payments.eu\", \"key\": \"never\"},"
                       "              {\"match\": \"[a-c]x\", \"key\": \"abc\"}],"
                       " \"unmatched_topics\": \"reject\","
                       " \"dek\": {\"max_records\": 268435456, \"max_age_s\": 60},"
                       " \"decrypt_cache\": {\"max_entries\": 5, \"ttl_s\": 7}}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (!cfg) return;
    const bs_encryption_config *e = &cfg->encryption;
    CHECK(e->enabled);
    CHECK_EQ(e->kms_type, BS_KMS_LOCAL);
    char *want = fmt("%s/master.key", g_dir);
    CHECK_STR(e->key_file, want);
    free(want);
    CHECK(e->reject_unmatched);
    CHECK_EQ(e->n_topics, 3);
    CHECK_EQ(e->dek_max_records, 268435456ull);
    CHECK_EQ(e->dek_max_age_s, 60);
    CHECK_EQ(e->decrypt_cache_max_entries, 5);
    CHECK_EQ(e->decrypt_cache_ttl_s, 7);
    /* First match wins; the length bounds the name (not NUL-terminated). */
    const bs_topic_rule *r = bs_config_topic_rule(e, "payments.eu", 11);
    CHECK(r && strcmp(r->key, "pay") == 0);
    r = bs_config_topic_rule(e, "bx-trailing", 2);
    CHECK(r && strcmp(r->key, "abc") == 0);
    CHECK(bs_config_topic_rule(e, "dx", 2) == NULL);
    CHECK(bs_config_topic_rule(e, "payments", 8) == NULL);
    bs_config_free(cfg);
}

static void test_encryption_errors(void)
{
    EXPECT_ERR_T("\"encryption\": []", "encryption: expected an object");
    EXPECT_ERR_T("\"encryption\": {\"topics\": [{\"match\": \"*\", \"key\": \"k\"}]}",
                 "encryption.kms: is required");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"key_file\": \"master.key\"}, \"topics\": "
                 "[{\"match\": \"*\", \"key\": \"k\"}]}",
                 "encryption.kms.type: is required");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"vault\"}, \"topics\": []}",
                 "encryption.kms.type: \"vault\" is not valid: expected \"local\" or \"aws\"");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\"}, \"topics\": [{\"match\": "
                 "\"*\", \"key\": \"k\"}]}",
                 "encryption.kms.key_file: is required");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"nope.key\"}, "
                 "\"topics\": [{\"match\": \"*\", \"key\": \"k\"}]}",
                 "encryption.kms.key_file: \"nope.key\" (resolved to");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": "
                 "\"open-master.key\"}, \"topics\": [{\"match\": \"*\", \"key\": \"k\"}]}",
                 "is accessible by group or others (mode 0644): chmod 600 it");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\", "
                 "\"region\": \"us-east-1\"}, \"topics\": [{\"match\": \"*\", \"key\": \"k\"}]}",
                 "encryption.kms.region: unknown key");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}}",
                 "encryption.topics: is required");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": []}",
                 "encryption.topics: must contain at least one rule");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": {\"*\": \"k\"}}",
                 "encryption.topics: expected an array");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [\"*\"]}",
                 "encryption.topics[0]: expected an object");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"key\": \"k\"}]}",
                 "encryption.topics[0].match: is required");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"a\"}]}",
                 "encryption.topics[0].key: is required");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"a\", \"key\": \"\"}]}",
                 "encryption.topics[0].key: must not be empty");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"pay[ments\", \"key\": \"k\"}]}",
                 "encryption.topics[0].match: \"pay[ments\" has a '[' without its closing ']'");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"a\\\\\", \"key\": \"k\"}]}",
                 "ends with a lone backslash");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"pay ments\", \"key\": \"k\"}]}",
                 "contains a character that no Kafka topic name has");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"a\", \"key\": \"my key\"}]}",
                 "encryption.topics[0].key: \"my key\" must be printable ASCII without spaces");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"a\", \"key\": \"k\"}, {\"match\": \"a\", \"key\": "
                 "\"j\"}]}",
                 "encryption.topics[1].match: \"a\" repeats an earlier rule");
    EXPECT_ERR_T(ENC_LOCAL ", \"x\": 1", "x: unknown key");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"*\", \"key\": \"k\"}, {\"match\": \"pay.*\", \"key\": "
                 "\"j\"}]}",
                 "encryption.topics[1].match: never applies: an earlier rule matches \"*\"");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"a]\", \"key\": \"k\"}]}",
                 "contains a character that no Kafka topic name has");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"*\", \"key\": \"k\"}], \"unmatched_topics\": "
                 "\"drop\"}",
                 "encryption.unmatched_topics: \"drop\" is not valid: expected \"plaintext\" or "
                 "\"reject\"");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"*\", \"key\": \"k\"}], \"dek\": {\"max_records\": "
                 "268435457}}",
                 "encryption.dek.max_records: 268435457 is out of range: must be between 1 and "
                 "268435456");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"*\", \"key\": \"k\"}], \"dek\": {\"max_age_s\": 0}}",
                 "encryption.dek.max_age_s: 0 is out of range");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"*\", \"key\": \"k\"}], \"dek\": {\"records\": 1}}",
                 "encryption.dek.records: unknown key");
    EXPECT_ERR_T("\"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, "
                 "\"topics\": [{\"match\": \"*\", \"key\": \"k\"}], \"decrypt_cache\": 5}",
                 "encryption.decrypt_cache: expected an object, got a number");
}

static void test_kms_aws_and_endpoints(void)
{
    /* Region from aws.region; endpoint over plain http only for loopback. */
    char *j = with("", "\"aws\": {\"region\": \"eu-west-1\"}, \"encryption\": {\"kms\": "
                       "{\"type\": \"aws\", \"endpoint\": \"http://127.0.0.1:4566\"}, "
                       "\"topics\": ["
                       " {\"match\": \"b\", \"key\": \"1234abcd-12ab-34cd-56ef-1234567890ab\"},"
                       " {\"match\": \"c\", \"key\": "
                       "\"arn:aws:kms:eu-west-1:111122223333:key/mrk-1\"},"
                       " {\"match\": \"*\", \"key\": \"alias/kafka\"}]}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (cfg) {
        CHECK_EQ(cfg->encryption.kms_type, BS_KMS_AWS);
        CHECK_STR(cfg->encryption.kms_region, "eu-west-1");
        CHECK_STR(cfg->encryption.kms_endpoint, "http://127.0.0.1:4566");
        CHECK(cfg->encryption.key_file == NULL);
    }
    bs_config_free(cfg);
    j = with("", "\"encryption\": {\"kms\": {\"type\": \"aws\", \"region\": \"us-gov-west-1\", "
                 "\"endpoint\": \"http://kms.lan:80/\", \"allow_insecure_endpoint\": true}, "
                 "\"topics\": [{\"match\": \"*\", \"key\": \"alias/a\"}]}");
    cfg = EXPECT_OK(j);
    free(j);
    if (cfg) CHECK_STR(cfg->encryption.kms_region, "us-gov-west-1");
    bs_config_free(cfg);
#define KMS_AWS(kms)                                                                               \
    "\"encryption\": {\"kms\": {\"type\": \"aws\"" kms                                             \
    "}, \"topics\": [{\"match\": \"*\", \"key\": \"alias/a\"}]}"
    EXPECT_ERR_T(KMS_AWS(""), "encryption.kms.region: no region");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"US-EAST-1\""),
                 "encryption.kms.region: \"US-EAST-1\" is not an AWS region name");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"useast1\""), "is not an AWS region name");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"us-east-1\", \"endpoint\": \"http://kms.example.com\""),
                 "encryption.kms.endpoint: \"http://kms.example.com\" uses plain http to a host "
                 "that is not loopback");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"us-east-1\", \"endpoint\": \"ftp://x\""),
                 "must be an http:// or https:// URL");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"us-east-1\", \"endpoint\": \"https://x/?a=b\""),
                 "must not contain a query or fragment");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"us-east-1\", \"endpoint\": \"https://u:p@x\""),
                 "must not contain user information");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"us-east-1\", \"endpoint\": \"https://x:99999\""),
                 "port must be a number between 1 and 65535");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"us-east-1\", \"endpoint\": \"https://\""),
                 "has no valid host");
    EXPECT_ERR_T(KMS_AWS(", \"region\": \"us-east-1\", \"key_file\": \"master.key\""),
                 "encryption.kms.key_file: unknown key");
    EXPECT_ERR_T("\"aws\": {\"region\": \"us-east-1\"}, \"encryption\": {\"kms\": {\"type\": "
                 "\"aws\"}, \"topics\": [{\"match\": \"*\", \"key\": \"payments\"}]}",
                 "encryption.topics[0].key: \"payments\" is not a KMS key");
#undef KMS_AWS
}

static void test_aws_section(void)
{
    char *j = with("", "\"aws\": {\"region\": \"ap-southeast-2\", \"profile\": \"prod\", "
                       "\"max_attempts\": 1, \"connect_timeout_s\": 0.5, \"request_timeout_s\": "
                       "9, \"ca_file\": \"ca.crt\"}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (cfg) {
        CHECK_STR(cfg->aws.region, "ap-southeast-2");
        CHECK(!cfg->aws.region_from_env);
        CHECK_STR(cfg->aws.profile, "prod");
        CHECK_EQ(cfg->aws.max_attempts, 1);
        CHECK(cfg->aws.connect_timeout_s == 0.5 && cfg->aws.request_timeout_s == 9);
        char *want = fmt("%s/ca.crt", g_dir);
        CHECK_STR(cfg->aws.ca_file, want);
        free(want);
    }
    bs_config_free(cfg);
    /* The environment fills a missing region: AWS_REGION before AWS_DEFAULT_REGION. */
    setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
    j = with("", "");
    cfg = EXPECT_OK(j);
    if (cfg) CHECK(cfg->aws.region_from_env && strcmp(cfg->aws.region, "eu-central-1") == 0);
    bs_config_free(cfg);
    setenv("AWS_REGION", "us-west-2", 1);
    cfg = EXPECT_OK(j);
    if (cfg) CHECK_STR(cfg->aws.region, "us-west-2");
    bs_config_free(cfg);
    setenv("AWS_REGION", "Mars", 1);
    EXPECT_ERR(j, "aws.region: not set, and AWS_REGION=\"Mars\" is not an AWS region name");
    free(j);
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    /* Credentials: a secret never appears in a message. */
    j = with("", "\"aws\": {\"credentials\": {\"secret_access_key\": \"TOPSECRETVALUE\"}}");
    bs_config *none = NULL;
    bs_config_errors e;
    CHECK_EQ(load(j, &none, &e), BS_E_CONFIG);
    CHECK(has_err(&e, "aws.credentials.access_key_id: is required because secret_access_key is "
                      "set"));
    CHECK(!has_err(&e, "TOPSECRET"));
    bs_config_errors_free(&e);
    free(j);
    j = with("", "\"aws\": {\"credentials\": {\"access_key_id\": \"AKIDEXAMPLE\", "
                 "\"secret_access_key\": \"s3cr3t\", \"session_token\": \"tok\"}}");
    bs_status st;
    char *log = load_capturing_log(j, &st);
    CHECK_EQ(st, BS_OK);
    CHECK(log && strstr(log, "aws.credentials holds a long-lived secret") &&
          !strstr(log, "s3cr3t"));
    free(log);
    free(j);
    EXPECT_ERR_T("\"aws\": {\"credentials\": {\"access_key_id\": \"AKID\"}}",
                 "aws.credentials.secret_access_key: is required because access_key_id is set");
    EXPECT_ERR_T("\"aws\": {\"credentials\": {\"session_token\": \"t\"}}",
                 "aws.credentials.session_token: needs access_key_id and secret_access_key");
    EXPECT_ERR_T("\"aws\": {\"credentials\": {}}", "aws.credentials: is empty");
    EXPECT_ERR_T("\"aws\": {\"credentials\": {\"access_key_id\": \"A\", \"secret_access_key\": "
                 "42}}",
                 "aws.credentials.secret_access_key: expected a string, got a number");
    EXPECT_ERR_T("\"aws\": {\"credentials\": {\"key\": \"A\"}}",
                 "aws.credentials.key: unknown key");
    EXPECT_ERR_T("\"aws\": {\"region\": \"moon-1\"}",
                 "aws.region: \"moon-1\" is not an AWS region");
    EXPECT_ERR_T("\"aws\": {\"max_attempts\": 0}", "aws.max_attempts: 0 is out of range");
    EXPECT_ERR_T("\"aws\": {\"request_timeout_s\": -1}",
                 "aws.request_timeout_s: -1 is out of range");
    EXPECT_ERR_T("\"aws\": {\"ca_file\": \"nope.pem\"}", "aws.ca_file: \"nope.pem\"");
    EXPECT_ERR_T("\"aws\": \"us-east-1\"", "aws: expected an object, got a string");
    EXPECT_ERR_T("\"aws\": {\"regoin\": \"us-east-1\"}",
                 "aws.regoin: unknown key \"regoin\" (did you mean \"region\"?)");
}

static void test_events_default_file_sink(void)
{
    /* Every stream on, no sinks: the implicit "default" file sink beside the spool. */
    char *j = with("", SPOOL ", \"audit\": {\"signing_key_file\": \"audit.key\"}, \"metrics\": "
                             "{}, \"logs\": {\"files\": [{\"path\": \"/var/log/kafka/*.log\"}, "
                             "{\"path\": \"server.log\", \"format\": \"plain\"}]}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (!cfg) return;
    char *spool = fmt("%s/spool", g_dir), *events = fmt("%s/events", g_dir);
    char *state = fmt("%s/spool/logtail.state", g_dir), *rel = fmt("%s/server.log", g_dir);
    CHECK_STR(cfg->spool.dir, spool);
    CHECK_EQ(cfg->n_sinks, 1);
    const bs_sink_config *s = bs_config_sink(cfg, "default");
    CHECK(s != NULL);
    if (s) {
        CHECK(s->implicit);
        CHECK_EQ(s->kind, BS_SINK_FILE);
        CHECK_STR(s->dir, events);
        CHECK_EQ(s->streams, 7u);
        CHECK_EQ(s->rotate_bytes, 100ull << 20);
        CHECK_EQ(s->rotate_age_s, 3600);
        CHECK(!s->gzip);
        CHECK_EQ(s->max_events, 1000);
    }
    CHECK(cfg->audit.enabled && cfg->metrics.enabled && cfg->logs.enabled);
    CHECK_EQ(cfg->audit.data_events, BS_DATA_EVENTS_AGGREGATE);
    CHECK_EQ(cfg->audit.aggregate_interval_s, 60);
    CHECK_EQ(cfg->audit.digest_interval_s, 300);
    CHECK_EQ(cfg->audit.digest_every_events, 1000);
    CHECK_EQ(cfg->audit.aggregate_max_keys, 10000);
    CHECK_EQ(cfg->audit.signing_algorithm, BS_SIGNING_DETECT);
    CHECK(cfg->audit.sinks.n == 1 && strcmp(cfg->audit.sinks.names[0], "default") == 0);
    CHECK_EQ(cfg->metrics.interval_s, 60);
    CHECK_EQ(cfg->logs.n_files, 2);
    if (cfg->logs.n_files == 2) {
        CHECK_STR(cfg->logs.files[0].path, "/var/log/kafka/*.log");
        CHECK_EQ(cfg->logs.files[0].format, BS_LOG_FORMAT_LOG4J);
        CHECK_STR(cfg->logs.files[1].path, rel);
        CHECK_EQ(cfg->logs.files[1].format, BS_LOG_FORMAT_PLAIN);
    }
    CHECK_STR(cfg->logs.state_file, state);
    CHECK_EQ(cfg->logs.tz_offset_min, 0);
    free(spool);
    free(events);
    free(state);
    free(rel);
    bs_config_free(cfg);
    /* A user-defined "default" replaces the implicit one. */
    j = with("", SPOOL ", \"metrics\": {}, \"sinks\": {\"default\": {\"type\": \"file\", "
                       "\"dir\": \"adir\", \"gzip\": true}}");
    cfg = EXPECT_OK(j);
    free(j);
    if (cfg) {
        CHECK_EQ(cfg->n_sinks, 1);
        CHECK(!cfg->sinks[0].implicit && cfg->sinks[0].gzip);
        CHECK_EQ(cfg->sinks[0].streams, 2u);
    }
    bs_config_free(cfg);
    /* Without a spool dir nothing can be shipped. */
    EXPECT_ERR_T("\"audit\": {}", "spool.dir: is required when audit, metrics or logs are on");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {}", "spool.dir: is required");
}

static void test_event_section_errors(void)
{
    EXPECT_ERR_T("\"spool\": {\"dir\": \"/tmp\", \"audit_sync_ms\": 1001}, \"audit\": {}",
                 "spool.audit_sync_ms: 1001 is out of range: must be between 0 and 1000");
    EXPECT_ERR_T(SPOOL ", \"audit\": true", "audit: expected an object, or null to turn it off");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"data_events\": \"some\"}",
                 "audit.data_events: \"some\" is not valid: expected \"aggregate\", \"each\" or "
                 "\"off\"");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"aggregate_interval_s\": 0}",
                 "audit.aggregate_interval_s: 0 is out of range");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"digest_every_events\": -1}",
                 "audit.digest_every_events: -1 is out of range: must be between 0 and 10000000");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"aggregate_max_keys\": 0}",
                 "audit.aggregate_max_keys: 0 is out of range");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"signing_key_file\": \"open-master.key\"}",
                 "audit.signing_key_file: \"");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"signing_key_file\": \"missing.key\"}",
                 "audit.signing_key_file: \"missing.key\" (resolved to");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"signing_algorithm\": \"ed25519\"}",
                 "audit.signing_algorithm: needs signing_key_file");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"signing_key_file\": \"audit.key\", \"signing_algorithm\": "
                       "\"rsa\"}",
                 "audit.signing_algorithm: \"rsa\" is not valid");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"signing_key_file\": \"audit.key\", \"signing_algorithm\": "
                       "\"ed25519\"}",
                 "audit.signing_algorithm: is \"ed25519\" but signing_key_file is not a PEM");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"signing_key_file\": \"ed.pem\", \"signing_algorithm\": "
                       "\"hmac-sha256\"}",
                 "audit.signing_algorithm: is \"hmac-sha256\" but signing_key_file is a PEM file");
    /* Matching kinds load (contents are parsed by the audit module at start). */
    char *j = with("", SPOOL ", \"audit\": {\"signing_key_file\": \"ed.pem\", "
                             "\"signing_algorithm\": \"ed25519\"}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    if (cfg) CHECK_EQ(cfg->audit.signing_algorithm, BS_SIGNING_ED25519);
    bs_config_free(cfg);
    j = with("", SPOOL ", \"audit\": {\"signing_key_file\": \"audit.key\", "
                       "\"signing_algorithm\": \"hmac-sha256\"}");
    cfg = EXPECT_OK(j);
    free(j);
    if (cfg) CHECK_EQ(cfg->audit.signing_algorithm, BS_SIGNING_HMAC_SHA256);
    bs_config_free(cfg);
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": \"default\"}",
                 "audit.sinks: expected an array of sink names");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": []}", "audit.sinks: is empty");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [1]}", "audit.sinks[0]: expected a sink name");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [\"x\", \"x\"]}",
                 "audit.sinks[1]: \"x\" is listed twice");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [\"nowhere\"]}",
                 "audit.sinks[0]: sink \"nowhere\" is not defined in sinks");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [\"cw\"]}, \"aws\": {\"region\": \"us-east-1\"},"
                       " \"sinks\": {\"cw\": {\"type\": \"cloudwatch_metrics\"}}",
                 "audit.sinks[0]: sink \"cw\" is a cloudwatch_metrics sink: it can only carry "
                 "metrics");
    /* cloudtrail_lake: audit only; its channel ARN, region and external id */
    EXPECT_ERR_T(SPOOL ", \"metrics\": {\"sinks\": [\"lake\"]}, \"aws\": {\"region\": "
                       "\"us-east-1\"}, \"sinks\": {\"lake\": {\"type\": \"cloudtrail_lake\", "
                       "\"channel_arn\": \"arn:aws:cloudtrail:us-east-1:123456789012:channel/c1\"}}",
                 "metrics.sinks[0]: sink \"lake\" is a cloudtrail_lake sink: it can only carry "
                 "audit events");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [\"lake\"]}, \"aws\": {\"region\": "
                       "\"us-east-1\"}, \"sinks\": {\"lake\": {\"type\": \"cloudtrail_lake\"}}",
                 "sinks.lake.channel_arn: is required: the ARN of the CloudTrail Lake channel");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [\"lake\"]}, \"aws\": {\"region\": "
                       "\"us-east-1\"}, \"sinks\": {\"lake\": {\"type\": \"cloudtrail_lake\", "
                       "\"channel_arn\": \"arn:aws:cloudtrail:us-east-1:123:channel/c1\"}}",
                 "sinks.lake.channel_arn: \"arn:aws:cloudtrail:us-east-1:123:channel/c1\" is not a "
                 "CloudTrail Lake channel ARN");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [\"lake\"]}, \"aws\": {\"region\": "
                       "\"us-east-1\"}, \"sinks\": {\"lake\": {\"type\": \"cloudtrail_lake\", "
                       "\"channel_arn\": \"arn:aws:cloudtrail:eu-west-1:123456789012:channel/c1\"}}",
                 "sinks.lake.channel_arn: names region eu-west-1 but the sink sends to us-east-1");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [\"lake\"]}, \"aws\": {\"region\": "
                       "\"us-east-1\"}, \"sinks\": {\"lake\": {\"type\": \"cloudtrail_lake\", "
                       "\"channel_arn\": \"arn:aws:cloudtrail:us-east-1:123456789012:channel/c1\", "
                       "\"external_id\": \"a b\"}}",
                 "sinks.lake.external_id: \"a b\" is not a valid externalId");
    EXPECT_ERR_T(SPOOL ", \"audit\": {\"sinks\": [\"lake\"]}, \"aws\": {\"region\": "
                       "\"us-east-1\"}, \"sinks\": {\"lake\": {\"type\": \"cloudtrail_lake\", "
                       "\"channel_arn\": \"arn:aws:cloudtrail:us-east-1:123456789012:channel/c1\", "
                       "\"max_events\": 101}}",
                 "sinks.lake.max_events: 101 is out of range: must be between 1 and 100");
    EXPECT_ERR_T(SPOOL ", \"metrics\": {\"interval_s\": 86401}",
                 "metrics.interval_s: 86401 is out");
    EXPECT_ERR_T(SPOOL ", \"metrics\": {\"namespace\": \"AWS/Kafka\"}",
                 "metrics.namespace: \"AWS/Kafka\" is not a CloudWatch namespace");
    EXPECT_ERR_T(SPOOL ", \"metrics\": {\"namespace\": \"a b\"}", "is not a CloudWatch namespace");
    EXPECT_ERR_T(SPOOL ", \"metrics\": {\"nmespace\": \"a\"}", "did you mean \"namespace\"?");
    EXPECT_ERR_T(SPOOL ", \"logs\": {}", "logs.files: is required");
    EXPECT_ERR_T(SPOOL ", \"logs\": {\"files\": []}", "logs.files: must list 1 to 256 files");
    EXPECT_ERR_T(SPOOL ", \"logs\": {\"files\": \"/var/log/x\"}", "logs.files: expected an array");
    EXPECT_ERR_T(SPOOL ", \"logs\": {\"files\": [\"/var/log/x\"]}",
                 "logs.files[0]: expected an object {path, format}");
    EXPECT_ERR_T(SPOOL ", \"logs\": {\"files\": [{\"format\": \"plain\"}]}",
                 "logs.files[0].path: is required");
    EXPECT_ERR_T(SPOOL ", \"logs\": {\"files\": [{\"path\": \"x\", \"format\": \"json\"}]}",
                 "logs.files[0].format: \"json\" is not valid: expected \"log4j\" or \"plain\"");
    EXPECT_ERR_T(SPOOL ", \"logs\": {\"files\": [{\"path\": \"x\"}], \"tz_offset_min\": 900}",
                 "logs.tz_offset_min: 900 is out of range: must be between -720 and 840");
    EXPECT_ERR_T(SPOOL ", \"logs\": {\"files\": [{\"path\": \"x\"}], \"start_at_end\": 1}",
                 "logs.start_at_end: expected true or false");
}

/* A sink definition with SPOOL and a metrics section that uses it. */
static char *with_sink(const char *sink)
{
    char *top = fmt("\"aws\": {\"region\": \"us-east-1\"}, " SPOOL
                    ", \"metrics\": {\"sinks\": [\"s\"]}, \"sinks\": {\"s\": %s}",
                    sink);
    char *j = with("", top);
    free(top);
    return j;
}
#define EXPECT_SINK_ERR(sink, needle)                                                              \
    do {                                                                                           \
        char *j_ = with_sink(sink);                                                                \
        EXPECT_ERR(j_, needle);                                                                    \
        free(j_);                                                                                  \
    } while (0)

static void test_sinks_valid(void)
{
    const char *j =
        "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\"}],\n"
        " \"aws\": {\"region\": \"us-east-1\"}, \"spool\": {\"dir\": \"spool\", \"max_bytes\": "
        "16777216, \"segment_bytes\": 4194304, \"fsync_interval_ms\": 5},\n"
        " \"audit\": {\"data_events\": \"each\", \"digest_every_events\": 0, "
        "\"aggregate_max_keys\": 5, \"sinks\": [\"files\", \"s3\", \"fh\", \"lake\"]},\n"
        " \"metrics\": {\"namespace\": \"Team/Kafka\", \"sinks\": [\"cwm\"]},\n"
        " \"logs\": {\"files\": [{\"path\": \"server.log\"}], \"tz_offset_min\": -300, "
        "\"state_file\": \"tail.state\", \"sinks\": [\"cwl\"]},\n"
        " \"sinks\": {\n"
        "  \"files\": {\"type\": \"file\", \"dir\": \"adir\", \"rotate_bytes\": 1048576, "
        "\"rotate_age_s\": 60, \"gzip\": true, \"max_attempts\": 3},\n"
        "  \"cwl\": {\"type\": \"cloudwatch_logs\", \"log_group\": \"/kafka/{broker_id}\", "
        "\"auto_create\": true, \"region\": \"eu-west-3\", \"max_events\": 10000, "
        "\"max_bytes\": 1048576, \"endpoint\": \"http://localhost:5000\"},\n"
        "  \"cwm\": {\"type\": \"cloudwatch_metrics\", \"protocol\": \"query\", "
        "\"endpoint\": \"https://[::1]:4566/\"},\n"
        "  \"s3\": {\"type\": \"s3\", \"bucket\": \"my-audit.bucket\", \"prefix\": "
        "\"audit/%Y/%m/{hostname}-\", \"compression\": \"none\", \"object_max_bytes\": 2097152, "
        "\"object_max_age_s\": 30, \"multipart_threshold_bytes\": 5242880},\n"
        "  \"fh\": {\"type\": \"firehose\", \"delivery_stream\": \"audit-{broker_id}\", "
        "\"max_events\": 500, \"backoff_initial_ms\": 10, \"backoff_max_ms\": 10},\n"
        "  \"lake\": {\"type\": \"cloudtrail_lake\", \"channel_arn\": "
        "\"arn:aws:cloudtrail:us-east-1:123456789012:channel/0e2a-b_c\", \"external_id\": "
        "\"acct:team@example.com\"},\n"
        "  \"spare\": {\"type\": \"file\", \"dir\": \"sub\"}\n"
        " }}\n";
    bs_status st;
    char *log = load_capturing_log(j, &st);
    CHECK_EQ(st, BS_OK);
    CHECK(log && strstr(log, "sinks.spare is not used by audit, metrics or logs"));
    CHECK(log && strstr(log, "audit.signing_key_file is not set"));
    free(log);
    bs_config *cfg = EXPECT_OK(j);
    if (!cfg) return;
    CHECK_EQ(cfg->n_sinks, 7);
    CHECK_EQ(cfg->spool.max_bytes, 16777216);
    CHECK_EQ(cfg->spool.segment_bytes, 4194304);
    CHECK_EQ(cfg->spool.fsync_interval_ms, 5);
    CHECK_EQ(cfg->audit.data_events, BS_DATA_EVENTS_EACH);
    CHECK_EQ(cfg->audit.digest_every_events, 0);
    CHECK_EQ(cfg->audit.aggregate_max_keys, 5);
    CHECK_STR(cfg->metrics.ns, "Team/Kafka");
    CHECK_EQ(cfg->logs.tz_offset_min, -300);
    char *st_want = fmt("%s/tail.state", g_dir);
    CHECK_STR(cfg->logs.state_file, st_want);
    free(st_want);
    const bs_sink_config *s = bs_config_sink(cfg, "files");
    CHECK(s && s->kind == BS_SINK_FILE && s->rotate_bytes == 1048576 && s->rotate_age_s == 60 &&
          s->gzip && s->max_attempts == 3 && s->streams == 1u && s->region == NULL);
    s = bs_config_sink(cfg, "cwl");
    CHECK(s && s->kind == BS_SINK_CLOUDWATCH_LOGS && s->auto_create && s->streams == 4u);
    if (s) {
        CHECK_STR(s->region, "eu-west-3");
        CHECK_STR(s->log_group, "/kafka/{broker_id}");
        CHECK_STR(s->log_stream, "{hostname}-{stream}");
        CHECK_STR(s->endpoint, "http://localhost:5000");
        CHECK_EQ(s->max_events, 10000);
        CHECK_EQ(s->max_age_ms, 1000);
        CHECK_EQ(s->backoff_initial_ms, 200);
        CHECK_EQ(s->backoff_max_ms, 30000);
    }
    s = bs_config_sink(cfg, "cwm");
    CHECK(s && s->kind == BS_SINK_CLOUDWATCH_METRICS && s->query_protocol && s->streams == 2u);
    if (s) {
        CHECK_STR(s->region, "us-east-1");
        CHECK_EQ(s->max_events, 1000);
    }
    s = bs_config_sink(cfg, "s3");
    CHECK(s && s->kind == BS_SINK_S3 && !s->gzip && s->object_max_bytes == 2097152 &&
          s->object_max_age_s == 30 && s->multipart_threshold_bytes == 5242880);
    if (s) CHECK_STR(s->bucket, "my-audit.bucket");
    s = bs_config_sink(cfg, "fh");
    CHECK(s && s->kind == BS_SINK_FIREHOSE && s->max_events == 500 && s->max_bytes == 4194304);
    if (s) CHECK_STR(s->delivery_stream, "audit-{broker_id}");
    s = bs_config_sink(cfg, "lake");
    CHECK(s && s->kind == BS_SINK_CLOUDTRAIL_LAKE && s->streams == 1u && s->max_events == 100 &&
          s->max_bytes == 1000000);
    if (s) {
        CHECK_STR(s->channel_arn, "arn:aws:cloudtrail:us-east-1:123456789012:channel/0e2a-b_c");
        CHECK_STR(s->external_id, "acct:team@example.com");
        CHECK_STR(s->region, "us-east-1");
    }
    s = bs_config_sink(cfg, "spare");
    CHECK(s && s->streams == 0);
    CHECK(bs_config_sink(cfg, "default") == NULL);
    bs_config_free(cfg);
    /* Defaults of an s3 sink: gzip, 64 MiB / 60 s objects, 8 MiB multipart. */
    char *js = with_sink("{\"type\": \"s3\", \"bucket\": \"bkt\"}");
    cfg = EXPECT_OK(js);
    free(js);
    s = cfg ? bs_config_sink(cfg, "s") : NULL;
    CHECK(s && s->gzip && s->object_max_bytes == 64ull << 20 && s->object_max_age_s == 60 &&
          s->multipart_threshold_bytes == 8ull << 20 && s->prefix == NULL);
    bs_config_free(cfg);
}

static void test_sink_errors(void)
{
    EXPECT_ERR_T(SPOOL ", \"metrics\": {}, \"sinks\": []",
                 "sinks: expected an object of named sinks");
    EXPECT_ERR_T(SPOOL ", \"metrics\": {}, \"sinks\": {\"bad name\": {\"type\": \"file\", \"dir\": "
                       "\"adir\"}}",
                 "sinks.bad name: \"bad name\" is not a valid sink name");
    EXPECT_ERR_T(SPOOL ", \"metrics\": {}, \"sinks\": {\"a\": {\"type\": \"file\", \"dir\": "
                       "\"adir\"}, \"a\": {\"type\": \"file\", \"dir\": \"adir\"}}",
                 "sinks.a: duplicate sink name \"a\"");
    EXPECT_SINK_ERR("[]", "sinks.s: expected an object with a \"type\"");
    EXPECT_SINK_ERR("{}", "sinks.s.type: is required");
    EXPECT_SINK_ERR(
        "{\"type\": \"kinesis\"}",
        "sinks.s.type: \"kinesis\" is not valid: expected \"file\", \"cloudwatch_logs\", "
        "\"cloudwatch_metrics\", \"s3\", \"firehose\" or \"cloudtrail_lake\"");
    EXPECT_SINK_ERR("{\"type\": \"file\"}", "sinks.s.dir: is required");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"no/such/dir\"}", "sinks.s.dir: \"");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"afile\"}", "exists and is not a directory");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"spool\"}", "sinks.s.dir: \"");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"spool\"}", "is the spool directory");
    EXPECT_ERR_T(SPOOL
                 ", \"metrics\": {\"sinks\": [\"a\", \"b\"]}, \"sinks\": {\"a\": {\"type\": "
                 "\"file\", \"dir\": \"adir\"}, \"b\": {\"type\": \"file\", \"dir\": \"adir//\"}}",
                 "is also the dir of sinks.a");
    EXPECT_ERR_T(SPOOL
                 ", \"metrics\": {\"sinks\": [\"a\", \"b\"]}, \"sinks\": {\"a\": {\"type\": "
                 "\"file\", \"dir\": \"adir\"}, \"b\": {\"type\": \"file\", \"dir\": \"adir\"}}",
                 "sinks.b.dir: \"");
    EXPECT_ERR_T(SPOOL
                 ", \"metrics\": {\"sinks\": [\"a\", \"b\"]}, \"sinks\": {\"a\": {\"type\": "
                 "\"file\", \"dir\": \"adir\"}, \"b\": {\"type\": \"file\", \"dir\": \"adir\"}}",
                 "is also the dir of sinks.a: each file sink needs its own directory");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"adir\", \"region\": \"us-east-1\"}",
                    "sinks.s.region: unknown key");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"adir\", \"bucket\": \"b\"}",
                    "sinks.s.bucket: unknown key");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"adir\", \"rotate_bytes\": 10}",
                    "sinks.s.rotate_bytes: 10 is out of range");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"adir\", \"gzip\": \"yes\"}",
                    "sinks.s.gzip: expected true or false");
    EXPECT_SINK_ERR("{\"type\": \"file\", \"dir\": \"adir\", \"backoff_initial_ms\": 500, "
                    "\"backoff_max_ms\": 100}",
                    "sinks.s.backoff_max_ms: 100 is below backoff_initial_ms (500)");
    /* Batch limits above each API's hard limit. */
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_logs\", \"log_group\": \"g\", \"max_events\": 10001}",
                    "sinks.s.max_events: 10001 is out of range: must be between 1 and 10000");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_logs\", \"log_group\": \"g\", \"max_bytes\": "
                    "1048577}",
                    "sinks.s.max_bytes: 1048577 is out of range: must be between 1024 and 1048576");
    EXPECT_SINK_ERR("{\"type\": \"firehose\", \"delivery_stream\": \"d\", \"max_events\": 501}",
                    "sinks.s.max_events: 501 is out of range: must be between 1 and 500");
    EXPECT_SINK_ERR("{\"type\": \"firehose\", \"delivery_stream\": \"d\", \"max_bytes\": 4194305}",
                    "sinks.s.max_bytes: 4194305 is out of range");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_metrics\", \"max_events\": 1001}",
                    "sinks.s.max_events: 1001 is out of range");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_logs\", \"log_group\": \"g\", \"max_age_ms\": 0}",
                    "sinks.s.max_age_ms: 0 is out of range");
    EXPECT_SINK_ERR("{\"type\": \"s3\", \"bucket\": \"b1b\", \"max_bytes\": 1024}",
                    "sinks.s.max_bytes: unknown key");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_logs\"}", "sinks.s.log_group: is required");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_logs\", \"log_group\": \"/k/{node}\"}",
                    "sinks.s.log_group: \"/k/{node}\": unknown placeholder");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_logs\", \"log_group\": \"g\", \"log_stream\": "
                    "\"%Y\"}",
                    "sinks.s.log_stream: \"%Y\": strftime fields are only allowed in S3 prefixes");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_logs\", \"log_group\": \"g}\"}", "'}' without '{'");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_metrics\", \"protocol\": \"xml\"}",
                    "sinks.s.protocol: \"xml\" is not valid: expected \"json\" or \"query\"");
    EXPECT_SINK_ERR("{\"type\": \"cloudwatch_metrics\", \"namespace\": \"x\"}",
                    "sinks.s.namespace: unknown key");
    EXPECT_SINK_ERR("{\"type\": \"s3\"}", "sinks.s.bucket: is required");
    EXPECT_SINK_ERR("{\"type\": \"s3\", \"bucket\": \"My_Bucket\"}",
                    "sinks.s.bucket: \"My_Bucket\" is not a valid S3 bucket name");
    EXPECT_SINK_ERR("{\"type\": \"s3\", \"bucket\": \"bkt\", \"compression\": \"zstd\"}",
                    "sinks.s.compression: \"zstd\" is not valid: expected \"gzip\" or \"none\"");
    EXPECT_SINK_ERR("{\"type\": \"s3\", \"bucket\": \"bkt\", \"multipart_threshold_bytes\": "
                    "1048576}",
                    "sinks.s.multipart_threshold_bytes: 1048576 is out of range");
    EXPECT_SINK_ERR("{\"type\": \"s3\", \"bucket\": \"bkt\", \"prefix\": \"x/%\"}",
                    "sinks.s.prefix: \"x/%\" ends with a lone '%'");
    EXPECT_SINK_ERR("{\"type\": \"firehose\"}", "sinks.s.delivery_stream: is required");
    EXPECT_SINK_ERR("{\"type\": \"firehose\", \"delivery_stream\": \"d\", \"region\": \"xx\"}",
                    "sinks.s.region: \"xx\" is not an AWS region name");
    EXPECT_SINK_ERR("{\"type\": \"firehose\", \"delivery_stream\": \"d\", \"endpoint\": "
                    "\"http://10.0.0.1\"}",
                    "sinks.s.endpoint: \"http://10.0.0.1\" uses plain http");
    EXPECT_SINK_ERR(
        "{\"type\": \"firehose\", \"delivery_stream\": \"d\", \"endpoint\": "
        "\"firehose.example.com\"}",
        "sinks.s.endpoint: \"firehose.example.com\" must be an http:// or https:// URL");
    /* An AWS sink needs a region from somewhere. */
    EXPECT_ERR_T(SPOOL ", \"metrics\": {\"sinks\": [\"f\"]}, \"sinks\": {\"f\": {\"type\": "
                       "\"firehose\", \"delivery_stream\": \"d\"}}",
                 "sinks.f.region: no region: set it here, in aws.region or in AWS_REGION");
}

static void test_spool_errors(void)
{
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": []", "spool: expected an object");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {\"dir\": \"spool\", \"max_bytes\": 16777215}",
                 "spool.max_bytes: 16777215 is out of range: must be between 16777216 and");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {\"dir\": \"spool\", \"segment_bytes\": 1000}",
                 "spool.segment_bytes: 1000 is out of range");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {\"dir\": \"spool\", \"max_bytes\": 16777216, "
                 "\"segment_bytes\": 8388608}",
                 "spool.segment_bytes: 8388608 is more than a quarter of max_bytes (16777216)");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {\"dir\": \"spool\", \"fsync_interval_ms\": 0}",
                 "spool.fsync_interval_ms: 0 is out of range");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {\"dir\": \"afile\"}", "spool.dir: \"");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {\"dir\": \"missing/spool\"}",
                 "does not exist and neither does its parent directory");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {\"dir\": 5}", "spool.dir: expected a string");
    EXPECT_ERR_T("\"metrics\": {}, \"spool\": {\"dir\": \"spool\", \"size\": 1}",
                 "spool.size: unknown key");
    /* An existing writable directory is fine as is. */
    char *j = with("", "\"metrics\": {}, \"spool\": {\"dir\": \"adir\"}");
    bs_config *cfg = EXPECT_OK(j);
    free(j);
    char *want = fmt("%s/adir", g_dir);
    if (cfg) CHECK_STR(cfg->spool.dir, want);
    free(want);
    bs_config_free(cfg);
}

static void test_needs_restart_events(void)
{
    char *base = with("", "\"aws\": {\"region\": \"us-east-1\"}, " ENC_LOCAL ", " SPOOL
                          ", \"audit\": {\"data_events\": \"off\"}, \"metrics\": {}");
    char *live = with("", "\"aws\": {\"region\": \"us-east-1\"}, \"encryption\": {\"kms\": "
                          "{\"type\": \"local\", \"key_file\": \"master.key\"}, \"topics\": "
                          "[{\"match\": \"a*\", \"key\": \"k2\"}], \"unmatched_topics\": "
                          "\"reject\", \"dek\": {\"max_records\": 10}}, " SPOOL
                          ", \"audit\": {\"data_events\": \"each\", \"digest_interval_s\": 5}, "
                          "\"metrics\": {\"interval_s\": 10, \"namespace\": \"N\"}");
    char *restart = with("", "\"aws\": {\"region\": \"us-east-2\"}, \"spool\": {\"dir\": "
                             "\"adir\"}, \"audit\": {\"sinks\": [\"f\"]}, \"sinks\": {\"f\": "
                             "{\"type\": \"file\", \"dir\": \"sub\"}}");
    bs_config *a = EXPECT_OK(base), *b = EXPECT_OK(live), *c = EXPECT_OK(restart);
    char what[512];
    if (a && b && c) {
        CHECK(!bs_config_needs_restart(a, b, what, sizeof what));
        CHECK_STR(what, "");
        CHECK(bs_config_needs_restart(a, c, what, sizeof what));
        CHECK_STR(what, "aws, encryption (on/off), audit.sinks, metrics (on/off), sinks, spool");
    }
    bs_config_free(a);
    bs_config_free(b);
    bs_config_free(c);
    free(base);
    free(live);
    free(restart);
}

int main(void)
{
    /* The region fallback reads these: start from a known environment. */
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    setup_dir();
    setup_event_files();
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
    RUN(test_top_level_sections_are_known);
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
    RUN(test_zero_config_routes);
    RUN(test_operator_warnings);
    RUN(test_all_errors_are_reported);
    RUN(test_needs_restart);
    RUN(test_proxy_protocol);
    RUN(test_event_sections_default_off);
    RUN(test_encryption_local_and_rules);
    RUN(test_encryption_errors);
    RUN(test_kms_aws_and_endpoints);
    RUN(test_aws_section);
    RUN(test_events_default_file_sink);
    RUN(test_event_section_errors);
    RUN(test_sinks_valid);
    RUN(test_sink_errors);
    RUN(test_spool_errors);
    RUN(test_needs_restart_events);
    RUN(test_shipped_example_loads);
    tu_rmrf(g_dir);
    return test_report();
}
