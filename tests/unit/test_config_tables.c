/* Unit tests for the option tables (core/confmap.c and every module's
 * *_config.c): one loop over every key of every section for the generic
 * cases (wrong type, out of range, unknown key with its hint, defaults), and
 * docs/configuration.md checked against the tables so the two cannot drift.
 * The rules that need code are tested in test_config.c (and, for identity
 * and authorization, in test_identity.c and test_policy.c). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brokerside/config.h"
#include "brokerside/config_tables.h"
#include "spool_testutil.h"
#include "test.h"
/* only tu_jwk is used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "jwt_test_util.h"
#pragma GCC diagnostic pop

static char g_dir[PATH_MAX]; /* scratch directory: cert/key files, dirs */

/* ------------------------------------------------------------------------ */
/* Every section, by name                                                    */
/* ------------------------------------------------------------------------ */

#define MAX_SECTIONS 64
static const bs_conf_section *g_secs[MAX_SECTIONS];
static size_t g_n_secs;

/* Add `s` and every section its rows point at (once each). */
static void collect(const bs_conf_section *s)
{
    for (size_t i = 0; i < g_n_secs; i++)
        if (g_secs[i] == s) return;
    if (g_n_secs == MAX_SECTIONS) {
        fprintf(stderr, "more than %d sections\n", MAX_SECTIONS);
        exit(2);
    }
    g_secs[g_n_secs++] = s;
    for (size_t i = 0; i < s->n_opts; i++)
        if (s->opts[i].sub) collect(s->opts[i].sub);
}

/* The root, what its rows reach, the KMS types and every sink type. */
static void collect_all(void)
{
    collect(&bs_root_conf);
    collect(&bs_kms_local_conf);
    collect(&bs_kms_aws_conf);
    for (int k = 0; bs_sink_kind_names[k]; k++) {
        size_t n;
        const bs_conf_section *const *ss = bs_sink_conf_sections((bs_sink_kind)k, &n);
        for (size_t i = 0; i < n; i++)
            collect(ss[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Scratch files                                                             */
/* ------------------------------------------------------------------------ */

static void write_file(const char *name, const char *text, mode_t mode)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", p, strerror(errno));
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    chmod(p, mode);
}

static void setup_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/bs-conftab-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        exit(2);
    }
    write_file("server.crt", "-----BEGIN PLACEHOLDER-----\n", 0644);
    write_file("server.key", "-----BEGIN PLACEHOLDER-----\n", 0600);
    write_file("master.key", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
               0600);
    /* identity.oauthbearer loads its JWKS at load time: a real (fresh) key */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char jwk[1024], jwks[1100];
    tu_jwk(k, "k1", jwk, sizeof jwk);
    EVP_PKEY_free(k);
    snprintf(jwks, sizeof jwks, "{\"keys\": [%s]}", jwk);
    write_file("jwks.json", jwks, 0644);
}

/* ------------------------------------------------------------------------ */
/* The generic cases, key by key                                             */
/* ------------------------------------------------------------------------ */

#define L0 "{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\"}"
#define LISTENERS "\"listeners\": [" L0 "]"
#define SPOOL "\"spool\": {\"dir\": \"spool\"}"
#define ENC_INNER                                                                                  \
    "\"kms\": {\"type\": \"local\", \"key_file\": \"master.key\"}, \"topics\": [{\"match\": "      \
    "\"*\", \"key\": \"k\"}]"

/* Where a section's object sits in a valid document: `outer` has one %s for
 * the object's members, `pairs` are the members it needs to be valid (the
 * one under test is left out), `kind` the sink type (-1: not a sink). */
typedef struct place {
    const char *section;
    int kind;
    const char *outer;
    const char *path;
    const char *pairs[4][2];
} place;

static const place places[] = {
    {"top level", -1, "{%s}", "", {{"listeners", "[" L0 "]"}}},
    {"listeners[i]", -1, "{\"listeners\": [{%s}]}", "listeners[0]",
     {{"bind", "\"127.0.0.1:0\""}, {"upstream", "\"127.0.0.1:9092\""}}},
    {"listeners[i].tls", -1,
     "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\", \"tls\": "
     "{%s}}]}",
     "listeners[0].tls",
     {{"cert", "\"server.crt\""}, {"key", "\"server.key\""}}},
    {"listeners[i].upstream_tls", -1,
     "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\", "
     "\"upstream_tls\": {%s}}]}",
     "listeners[0].upstream_tls",
     {{0}}},
    {"limits", -1, "{" LISTENERS ", \"limits\": {%s}}", "limits", {{0}}},
    {"kafka", -1, "{" LISTENERS ", \"kafka\": {%s}}", "kafka", {{0}}},
    {"admin", -1, "{" LISTENERS ", \"admin\": {%s}}", "admin", {{0}}},
    {"aws", -1, "{" LISTENERS ", \"aws\": {%s}}", "aws", {{0}}},
    {"aws.credentials", -1, "{" LISTENERS ", \"aws\": {\"credentials\": {%s}}}", "aws.credentials",
     {{"access_key_id", "\"AKIAEXAMPLE\""}, {"secret_access_key", "\"s\""}}},
    {"encryption", -1, "{" LISTENERS ", \"encryption\": {%s}}", "encryption",
     {{"kms", "{\"type\": \"local\", \"key_file\": \"master.key\"}"},
      {"topics", "[{\"match\": \"*\", \"key\": \"k\"}]"}}},
    {"encryption.kms (local)", -1,
     "{" LISTENERS ", \"encryption\": {\"topics\": [{\"match\": \"*\", \"key\": \"k\"}], "
     "\"kms\": {%s}}}",
     "encryption.kms",
     {{"type", "\"local\""}, {"key_file", "\"master.key\""}}},
    {"encryption.kms (aws)", -1,
     "{" LISTENERS ", \"encryption\": {\"topics\": [{\"match\": \"*\", \"key\": \"alias/k\"}], "
     "\"kms\": {%s}}}",
     "encryption.kms",
     {{"type", "\"aws\""}, {"region", "\"us-east-1\""}}},
    {"encryption.topics[i]", -1,
     "{" LISTENERS ", \"encryption\": {\"kms\": {\"type\": \"local\", \"key_file\": "
     "\"master.key\"}, \"topics\": [{%s}]}}",
     "encryption.topics[0]",
     {{"match", "\"*\""}, {"key", "\"k\""}}},
    {"encryption.dek", -1, "{" LISTENERS ", \"encryption\": {" ENC_INNER ", \"dek\": {%s}}}",
     "encryption.dek", {{0}}},
    {"encryption.decrypt_cache", -1,
     "{" LISTENERS ", \"encryption\": {" ENC_INNER ", \"decrypt_cache\": {%s}}}",
     "encryption.decrypt_cache", {{0}}},
    {"audit", -1, "{" LISTENERS ", " SPOOL ", \"audit\": {%s}}", "audit", {{0}}},
    {"metrics", -1, "{" LISTENERS ", " SPOOL ", \"metrics\": {%s}}", "metrics", {{0}}},
    {"lag", -1, "{" LISTENERS ", \"lag\": {%s}}", "lag", {{0}}},
    {"logs", -1, "{" LISTENERS ", " SPOOL ", \"logs\": {%s}}", "logs",
     {{"files", "[{\"path\": \"x.log\"}]"}}},
    {"logs.files[i]", -1, "{" LISTENERS ", " SPOOL ", \"logs\": {\"files\": [{%s}]}}",
     "logs.files[0]", {{"path", "\"x.log\""}}},
    {"spool", -1, "{" LISTENERS ", \"spool\": {%s}}", "spool", {{0}}},
    {"identity", -1, "{" LISTENERS ", \"identity\": {%s}}", "identity", {{0}}},
    {"identity.oauthbearer", -1, "{" LISTENERS ", \"identity\": {\"oauthbearer\": {%s}}}",
     "identity.oauthbearer",
     {{"jwks_file", "\"jwks.json\""}, {"issuer", "\"https://idp.example\""}}},
    {"authorization", -1, "{" LISTENERS ", \"authorization\": {%s}}", "authorization",
     {{"default", "\"deny\""}}},
    {"authorization.rules[i]", -1,
     "{" LISTENERS ", \"authorization\": {\"default\": \"deny\", \"rules\": [{%s}]}}",
     "authorization.rules[0]",
     {{"principal", "\"User:alice\""},
      {"operation", "\"Create\""},
      {"resource_type", "\"Cluster\""},
      {"permission", "\"ALLOW\""}}},
    /* Sinks: every section of each type, with what that type requires. */
    {NULL, BS_SINK_FILE, "{" LISTENERS ", " SPOOL ", \"sinks\": {\"s\": {%s}}}", "sinks.s",
     {{"type", "\"file\""}, {"dir", "\"fdir\""}}},
    {NULL, BS_SINK_CLOUDWATCH_LOGS, "{" LISTENERS ", " SPOOL ", \"sinks\": {\"s\": {%s}}}",
     "sinks.s",
     {{"type", "\"cloudwatch_logs\""}, {"log_group", "\"g\""}, {"region", "\"us-east-1\""}}},
    {NULL, BS_SINK_CLOUDWATCH_METRICS, "{" LISTENERS ", " SPOOL ", \"sinks\": {\"s\": {%s}}}",
     "sinks.s", {{"type", "\"cloudwatch_metrics\""}, {"region", "\"us-east-1\""}}},
    {NULL, BS_SINK_S3, "{" LISTENERS ", " SPOOL ", \"sinks\": {\"s\": {%s}}}", "sinks.s",
     {{"type", "\"s3\""}, {"bucket", "\"bkt\""}, {"region", "\"us-east-1\""}}},
    {NULL, BS_SINK_FIREHOSE, "{" LISTENERS ", " SPOOL ", \"sinks\": {\"s\": {%s}}}", "sinks.s",
     {{"type", "\"firehose\""}, {"delivery_stream", "\"d\""}, {"region", "\"us-east-1\""}}},
    {NULL, BS_SINK_CLOUDTRAIL_LAKE, "{" LISTENERS ", " SPOOL ", \"sinks\": {\"s\": {%s}}}",
     "sinks.s",
     {{"type", "\"cloudtrail_lake\""},
      {"channel_arn", "\"arn:aws:cloudtrail:us-east-1:123456789012:channel/c-1\""},
      {"region", "\"us-east-1\""}}},
};

/* Build the document of place `pl` with `key`: `value` (key NULL: none)
 * added and the pair of the same key left out. Caller frees. */
static char *doc_with(const place *pl, const char *key, const char *value)
{
    char members[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < 4 && pl->pairs[i][0]; i++) {
        if (key && strcmp(pl->pairs[i][0], key) == 0) continue;
        used += (size_t)snprintf(members + used, sizeof members - used, "%s\"%s\": %s",
                                 used ? ", " : "", pl->pairs[i][0], pl->pairs[i][1]);
    }
    if (key)
        snprintf(members + used, sizeof members - used, "%s\"%s\": %s", used ? ", " : "", key,
                 value);
    char *out = NULL;
    /* The format is one of the literals in places[]. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    if (asprintf(&out, pl->outer, members) < 0) exit(2);
#pragma GCC diagnostic pop
    return out;
}

/* Parse `json` as g_dir/t.json; the messages go to *errs. */
static bs_status parse(const char *json, bs_config **cfg, bs_config_errors *errs)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/t.json", g_dir);
    memset(errs, 0, sizeof *errs);
    return bs_config_parse(path, json, strlen(json), cfg, errs);
}

/* Expect `json` to fail with a message "PATH: WANT..." (WANT a prefix of the
 * problem). */
static void expect_problem(const char *json, const char *path, const char *want)
{
    bs_config *cfg = NULL;
    bs_config_errors e;
    bs_status st = parse(json, &cfg, &e);
    char needle[1200];
    snprintf(needle, sizeof needle, ": %s%s%s", path, path[0] ? ": " : "(top level): ", want);
    bool found = false;
    for (size_t i = 0; i < e.n && !found; i++)
        found = strstr(e.msgs[i], needle) != NULL;
    if (st != BS_E_CONFIG || cfg || !found) {
        fprintf(stderr, "  FAIL: %s\n    wanted [%s], status %d, got:\n", json, needle, st);
        for (size_t i = 0; i < e.n; i++)
            fprintf(stderr, "    | %s\n", e.msgs[i]);
        test_failures_in_current++;
    }
    bs_config_errors_free(&e);
    bs_config_free(cfg);
}

/* The wrong-type value and the message prefix for a row (NULL: no generic
 * type case, CUSTOM rows have their own messages). */
static const char *bad_type(const bs_conf_opt *o, const char **want)
{
    switch (o->type) {
    case BS_CONF_INT: *want = "expected an integer, got a string"; return "\"x\"";
    case BS_CONF_SECONDS: *want = "expected a number of seconds, got a string"; return "\"x\"";
    case BS_CONF_BOOL: *want = "expected true or false, got a number"; return "1";
    case BS_CONF_OBJECT: *want = "expected an object, got a number"; return "5";
    case BS_CONF_STRING:
    case BS_CONF_ENUM:
    case BS_CONF_FILE:
    case BS_CONF_SECRET_FILE:
    case BS_CONF_DIR:
    case BS_CONF_PATH:
    case BS_CONF_ENDPOINT: *want = "expected a string, got a number"; return "5";
    case BS_CONF_CUSTOM: return NULL;
    }
    return NULL;
}

/* Every generic case of every row of `sec` at place `pl`. */
static size_t check_rows(const bs_conf_section *sec, const place *pl)
{
    size_t cases = 0;
    char key_path[BS_CONF_PATH_MAX], val[64], want[256];
    for (size_t i = 0; i < sec->n_opts; i++) {
        const bs_conf_opt *o = &sec->opts[i];
        bs_conf_path_key(key_path, sizeof key_path, pl->path, o->name);
        const char *w, *bad = bad_type(o, &w);
        if (bad) {
            char *j = doc_with(pl, o->name, bad);
            expect_problem(j, key_path, w);
            free(j);
            cases++;
        }
        if (o->type == BS_CONF_INT) {
            /* Both bounds, just outside. */
            snprintf(want, sizeof want, "must be between %lld and %lld", o->min, o->max);
            long long outside[2] = {o->min - 1, o->max + 1};
            for (int b = 0; b < 2; b++) {
                snprintf(val, sizeof val, "%lld", outside[b]);
                snprintf(want, sizeof want, "%lld is out of range: must be between %lld and %lld",
                         outside[b], o->min, o->max);
                char *j = doc_with(pl, o->name, val);
                expect_problem(j, key_path, want);
                free(j);
                cases++;
            }
        }
        if (o->type == BS_CONF_SECONDS) {
            snprintf(val, sizeof val, "%lld", o->max + 1);
            snprintf(want, sizeof want, "%lld is out of range: must be greater than 0 and at most "
                     "%lld", o->max + 1, o->max);
            char *j = doc_with(pl, o->name, val);
            expect_problem(j, key_path, want);
            free(j);
            cases++;
        }
        if (o->type == BS_CONF_ENUM) {
            char *j = doc_with(pl, o->name, "\"no-such-choice\"");
            expect_problem(j, key_path, "\"no-such-choice\" is not valid: expected \"");
            free(j);
            cases++;
        }
        /* A misspelling one edit away gets the row's name as the hint. */
        char typo[80];
        snprintf(typo, sizeof typo, "%sx", o->name);
        bs_conf_path_key(key_path, sizeof key_path, pl->path, typo);
        snprintf(want, sizeof want, "unknown key \"%s\" (did you mean \"%s\"?)", typo, o->name);
        char *j = doc_with(pl, typo, "1");
        expect_problem(j, key_path, want);
        free(j);
        cases++;
    }
    return cases;
}

static void test_every_key_generic_cases(void)
{
    size_t cases = 0, covered = 0;
    for (size_t s = 0; s < g_n_secs; s++) {
        const bs_conf_section *sec = g_secs[s];
        bool done = false;
        for (size_t p = 0; p < BS_ARRAY_LEN(places); p++) {
            const place *pl = &places[p];
            if (pl->section && strcmp(pl->section, sec->name) == 0) {
                cases += check_rows(sec, pl);
                done = true;
            }
            if (!pl->section) {
                size_t n;
                const bs_conf_section *const *ss = bs_sink_conf_sections((bs_sink_kind)pl->kind, &n);
                for (size_t i = 0; i < n; i++) {
                    if (ss[i] != sec) continue;
                    cases += check_rows(sec, pl);
                    done = true;
                }
            }
        }
        if (!done) {
            fprintf(stderr, "  FAIL: section \"%s\" has no place in this test\n", sec->name);
            test_failures_in_current++;
        }
        covered += done;
    }
    CHECK_EQ(covered, g_n_secs);
    CHECK(cases > 300);
    /* Every place is valid as it stands (so each failure above came from the
     * one key under test). */
    for (size_t p = 0; p < BS_ARRAY_LEN(places); p++) {
        char *j = doc_with(&places[p], NULL, NULL);
        bs_config *cfg = NULL;
        bs_config_errors e;
        bs_status st = parse(j, &cfg, &e);
        if (st != BS_OK) {
            fprintf(stderr, "  FAIL: place %s is not valid: %s\n", places[p].path, j);
            for (size_t i = 0; i < e.n; i++)
                fprintf(stderr, "    | %s\n", e.msgs[i]);
            test_failures_in_current++;
        }
        bs_config_errors_free(&e);
        bs_config_free(cfg);
        free(j);
    }
}

/* Defaults land in the struct exactly as the table says (the INT and BOOL
 * rows of the top-level sections that are read when absent). */
static void test_defaults_come_from_the_tables(void)
{
    bs_config *cfg = NULL;
    bs_config_errors e;
    CHECK_EQ(parse("{" LISTENERS "}", &cfg, &e), BS_OK);
    bs_config_errors_free(&e);
    if (!cfg) return;
    const struct {
        const bs_conf_section *sec;
        const void *base;
    } secs[] = {{&bs_limits_conf, &cfg->limits},
                {&bs_kafka_conf, &cfg->kafka},
                {&bs_aws_conf, &cfg->aws},
                {&bs_spool_conf, &cfg->spool},
                {&bs_admin_conf, &cfg->admin},
                {&bs_identity_conf, cfg->identity},
                {&bs_identity_oauthbearer_conf, cfg->identity}};
    size_t checked = 0;
    for (size_t s = 0; s < BS_ARRAY_LEN(secs); s++) {
        for (size_t i = 0; i < secs[s].sec->n_opts; i++) {
            const bs_conf_opt *o = &secs[s].sec->opts[i];
            const char *f = (const char *)secs[s].base + o->offset;
            if (!o->def) continue;
            if (o->type == BS_CONF_INT) {
                long long want = strtoll(o->def, NULL, 10), got = 0;
                if (o->size == 4) got = *(const uint32_t *)f;
                if (o->size == 8) got = (long long)*(const uint64_t *)f;
                CHECK_EQ(got, want);
                checked++;
            } else if (o->type == BS_CONF_SECONDS) {
                CHECK(*(const double *)f == strtod(o->def, NULL));
                checked++;
            }
        }
    }
    CHECK(checked >= 12);
    bs_config_free(cfg);
}

/* ------------------------------------------------------------------------ */
/* docs/configuration.md against the tables                                  */
/* ------------------------------------------------------------------------ */

typedef struct doc_row {
    char keys[4][64]; /* the backticked names of the first cell */
    size_t n_keys;
    char type[256];
    char def[512]; /* "" when the table has no default column */
    char all[4096]; /* the whole line (truncated) */
} doc_row;

typedef struct doc_table {
    char names[4][96]; /* sections it documents */
    size_t n_names;
    doc_row rows[40];
    size_t n_rows;
    size_t line;
} doc_table;

static doc_table g_tables[48];
static size_t g_n_tables;

/* Split a table line into cells ('|' inside backticks is text). */
static size_t split_cells(const char *line, char cells[][4096], size_t max)
{
    size_t n = 0, o = 0;
    bool code = false;
    for (const char *s = line + 1; *s && n < max; s++) {
        if (*s == '`') code = !code;
        if (*s == '|' && !code) {
            cells[n][o] = '\0';
            n++;
            o = 0;
            continue;
        }
        if (o + 1 < 4096) cells[n][o++] = *s;
    }
    return n;
}

/* Trim and drop backticks (the type column says "object or `null`"). */
static void plain(char *dst, size_t n, const char *src)
{
    size_t o = 0;
    while (*src == ' ')
        src++;
    for (; *src && o + 1 < n; src++)
        if (*src != '`') dst[o++] = *src;
    while (o && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

/* Read every "<!-- conf: A + B (checked by ...) -->" marker and the table
 * after it. */
static void read_docs(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    static char line[8192], cells[8][4096];
    doc_table *t = NULL;
    bool in_table = false;
    int def_col = -1;
    size_t lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        const char *m = strstr(line, "<!-- conf: ");
        if (m) {
            if (g_n_tables == BS_ARRAY_LEN(g_tables)) break;
            t = &g_tables[g_n_tables++];
            memset(t, 0, sizeof *t);
            t->line = lineno;
            char names[512];
            snprintf(names, sizeof names, "%s", m + strlen("<!-- conf: "));
            char *end = strstr(names, " (checked by");
            if (end) *end = '\0';
            char *save = NULL;
            for (char *tok = strtok_r(names, "+", &save); tok && t->n_names < 4;
                 tok = strtok_r(NULL, "+", &save))
                plain(t->names[t->n_names++], sizeof t->names[0], tok);
            in_table = false;
            continue;
        }
        if (!t) continue;
        if (line[0] != '|') {
            if (in_table) t = NULL;
            continue;
        }
        size_t nc = split_cells(line, cells, 8);
        if (!in_table) { /* the header */
            in_table = true;
            def_col = -1;
            for (size_t i = 0; i < nc; i++) {
                char h[64];
                plain(h, sizeof h, cells[i]);
                if (strcmp(h, "default") == 0) def_col = (int)i;
            }
            continue;
        }
        if (strncmp(line, "|---", 4) == 0 || t->n_rows == BS_ARRAY_LEN(t->rows)) continue;
        doc_row *r = &t->rows[t->n_rows++];
        snprintf(r->all, sizeof r->all, "%.4000s", line);
        for (const char *s = cells[0]; (s = strchr(s, '`')) && r->n_keys < 4;) {
            const char *e = strchr(s + 1, '`');
            if (!e) break;
            snprintf(r->keys[r->n_keys++], sizeof r->keys[0], "%.*s", (int)(e - s - 1), s + 1);
            s = e + 1;
        }
        plain(r->type, sizeof r->type, nc > 1 ? cells[1] : "");
        if (def_col > 0 && (size_t)def_col < nc) snprintf(r->def, sizeof r->def, "%.*s", (int)sizeof r->def - 1, cells[def_col]);
    }
    fclose(f);
}

/* The type name the docs use for a row. */
static const char *doc_type(const bs_conf_opt *o)
{
    switch (o->type) {
    case BS_CONF_BOOL: return "boolean";
    case BS_CONF_INT: return "integer";
    case BS_CONF_SECONDS: return "number";
    case BS_CONF_STRING:
    case BS_CONF_ENUM:
    case BS_CONF_ENDPOINT: return "string";
    case BS_CONF_FILE:
    case BS_CONF_SECRET_FILE: return "file";
    case BS_CONF_DIR: return "directory";
    case BS_CONF_PATH: return "path";
    case BS_CONF_OBJECT: return "object";
    case BS_CONF_CUSTOM: return o->doc ? o->doc : "?";
    }
    return "?";
}

/* The doc row of `key` in a table documenting section `name`, or NULL. */
static const doc_row *find_doc_row(const char *name, const char *key, const doc_table **in)
{
    for (size_t t = 0; t < g_n_tables; t++)
        for (size_t n = 0; n < g_tables[t].n_names; n++) {
            if (strcmp(g_tables[t].names[n], name) != 0) continue;
            *in = &g_tables[t];
            for (size_t r = 0; r < g_tables[t].n_rows; r++)
                for (size_t k = 0; k < g_tables[t].rows[r].n_keys; k++)
                    if (strcmp(g_tables[t].rows[r].keys[k], key) == 0) return &g_tables[t].rows[r];
        }
    return NULL;
}

static void test_docs_match_the_tables(void)
{
    const char *src = getenv("BS_SOURCE_DIR");
    CHECK(src != NULL);
    if (!src) return;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/docs/configuration.md", src);
    read_docs(path);
    CHECK(g_n_tables >= 25);
    /* Every row is documented, with its type and default. */
    for (size_t s = 0; s < g_n_secs; s++) {
        const bs_conf_section *sec = g_secs[s];
        for (size_t i = 0; i < sec->n_opts; i++) {
            const bs_conf_opt *o = &sec->opts[i];
            if (o->flags & BS_CONF_NODOC) continue;
            const doc_table *t = NULL;
            const doc_row *r = find_doc_row(sec->name, o->name, &t);
            if (!r) {
                fprintf(stderr, "  FAIL: %s: key `%s` is not in %s\n", sec->name, o->name,
                        t ? "its table in docs/configuration.md"
                          : "docs/configuration.md (no <!-- conf: ... --> table names the section)");
                test_failures_in_current++;
                continue;
            }
            const char *ty = doc_type(o);
            if (strncmp(r->type, ty, strlen(ty)) != 0) {
                fprintf(stderr, "  FAIL: %s.%s: docs say type \"%s\", the table \"%s\"\n",
                        sec->name, o->name, r->type, ty);
                test_failures_in_current++;
            }
            if ((o->flags & BS_CONF_REQUIRED) && !strstr(r->all, "required")) {
                fprintf(stderr, "  FAIL: %s.%s is required but the docs do not say so\n",
                        sec->name, o->name);
                test_failures_in_current++;
            }
            if (!o->def || !r->def[0] || strstr(r->def, "per type") || strstr(r->def, "`BS_"))
                continue;
            char want[600];
            bool quoted = strcmp(ty, "string") == 0 && o->type != BS_CONF_INT;
            snprintf(want, sizeof want, quoted ? "`\"%s\"`" : "`%s`", o->def);
            if (!strstr(r->def, want)) {
                fprintf(stderr, "  FAIL: %s.%s: default is %s, docs say [%s]\n", sec->name,
                        o->name, want, r->def);
                test_failures_in_current++;
            }
        }
    }
    /* Every documented key is a row of a section its table names. */
    for (size_t t = 0; t < g_n_tables; t++) {
        const doc_table *dt = &g_tables[t];
        for (size_t n = 0; n < dt->n_names; n++) {
            bool known = false;
            for (size_t s = 0; s < g_n_secs; s++)
                known = known || strcmp(g_secs[s]->name, dt->names[n]) == 0;
            if (!known) {
                fprintf(stderr, "  FAIL: docs line %zu names section \"%s\": no such table\n",
                        dt->line, dt->names[n]);
                test_failures_in_current++;
            }
        }
        for (size_t r = 0; r < dt->n_rows; r++) {
            for (size_t k = 0; k < dt->rows[r].n_keys; k++) {
                bool found = false;
                for (size_t s = 0; s < g_n_secs && !found; s++) {
                    bool named = false;
                    for (size_t n = 0; n < dt->n_names; n++)
                        named = named || strcmp(g_secs[s]->name, dt->names[n]) == 0;
                    for (size_t i = 0; named && i < g_secs[s]->n_opts && !found; i++)
                        found = strcmp(g_secs[s]->opts[i].name, dt->rows[r].keys[k]) == 0;
                }
                if (!found) {
                    fprintf(stderr, "  FAIL: docs line %zu documents `%s`, which no table of "
                            "%s has\n", dt->line, dt->rows[r].keys[k], dt->names[0]);
                    test_failures_in_current++;
                }
            }
        }
    }
}

/* The SIGHUP rule is the tables' BS_CONF_RESTART flags: a change of every
 * restart-flagged INT row of spool and audit is reported, and of no other. */
static void test_restart_rule_follows_the_flags(void)
{
    const char *base = "{" LISTENERS ", " SPOOL ", \"audit\": {}}";
    bs_config *a = NULL;
    bs_config_errors e;
    CHECK_EQ(parse(base, &a, &e), BS_OK);
    bs_config_errors_free(&e);
    if (!a) return;
    const bs_conf_section *secs[] = {&bs_audit_conf, &bs_spool_conf};
    const char *names[] = {"audit", "spool"};
    size_t tried = 0;
    for (size_t s = 0; s < BS_ARRAY_LEN(secs); s++) {
        for (size_t i = 0; i < secs[s]->n_opts; i++) {
            const bs_conf_opt *o = &secs[s]->opts[i];
            if (o->type != BS_CONF_INT) continue;
            /* A valid value other than the default. */
            long long d = strtoll(o->def, NULL, 10), v = d < o->max ? d + 1 : d - 1;
            char *j = NULL;
            char member[128];
            snprintf(member, sizeof member, "\"%s\": %lld", o->name, v);
            if (s == 0 &&
                asprintf(&j, "{" LISTENERS ", " SPOOL ", \"audit\": {%s}}", member) < 0)
                exit(2);
            if (s == 1 &&
                asprintf(&j, "{" LISTENERS ", \"spool\": {\"dir\": \"spool\", %s}, \"audit\": {}}",
                         member) < 0)
                exit(2);
            bs_config *b = NULL;
            CHECK_EQ(parse(j, &b, &e), BS_OK);
            bs_config_errors_free(&e);
            free(j);
            if (!b) continue;
            char what[256];
            bool restart = bs_config_needs_restart(a, b, what, sizeof what);
            if (restart != ((o->flags & BS_CONF_RESTART) != 0)) {
                fprintf(stderr, "  FAIL: %s.%s: restart %d, flag says %d (%s)\n", names[s],
                        o->name, restart, (o->flags & BS_CONF_RESTART) != 0, what);
                test_failures_in_current++;
            }
            tried++;
            bs_config_free(b);
        }
    }
    CHECK(tried >= 8);
    bs_config_free(a);
}

int main(void)
{
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    setup_dir();
    collect_all();
    RUN(test_every_key_generic_cases);
    RUN(test_defaults_come_from_the_tables);
    RUN(test_docs_match_the_tables);
    RUN(test_restart_rule_follows_the_flags);
    tu_rmrf(g_dir);
    return test_report();
}
