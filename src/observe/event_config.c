/*
 * event_config.c - the `audit`, `metrics` and `logs` sections: the event
 * streams brokerside produces (each off when absent or null) and the sinks
 * each one is routed to.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/observe_config.h"

/* The `sinks` row every stream has (names resolved by the daemon's rules). */
#define SINK_REFS_ROW(T)                                                                        \
    {                                                                                              \
        .name = "sinks", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART,                     \
        BS_CONF_AT(T, sinks),                          \
        .parse = bs_conf_parse_sink_refs, .free = bs_conf_free_sink_refs,                          \
        .diff = bs_conf_diff_sink_refs, .def = "[\"default\"]", .doc = "array of strings"          \
    }

/* ---- audit --------------------------------------------------------------- */

/* The algorithm must fit the key file (only its kind is checked here; the
 * audit key loader parses the contents at start). */
static void check_audit(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    const bs_audit_config *a = base;
    (void)path;
    if (!obj) return;
    if (bs_conf_member(obj, "signing_algorithm") && !bs_conf_member(obj, "signing_key_file"))
        bs_conf_err(c, "audit.signing_algorithm", "needs signing_key_file");
    if (a->signing_key_file && a->signing_algorithm != BS_SIGNING_DETECT) {
        char head[11] = "";
        FILE *f = fopen(a->signing_key_file, "re");
        if (f) {
            size_t got = fread(head, 1, sizeof head - 1, f);
            head[got] = '\0';
            fclose(f);
        }
        bool pem = strncmp(head, "-----BEGIN", 10) == 0;
        if (pem != (a->signing_algorithm == BS_SIGNING_ED25519))
            bs_conf_err(c, "audit.signing_algorithm", "is %s but signing_key_file %s",
                        a->signing_algorithm == BS_SIGNING_ED25519 ? "\"ed25519\""
                                                                   : "\"hmac-sha256\"",
                        pem ? "is a PEM file (an Ed25519 key?)" : "is not a PEM Ed25519 key");
    }
}

static const char *const data_event_names[] = {"aggregate", "each", "off", NULL};
static const char *const audit_format_names[] = {"cloudtrail", "ocsf", NULL};
static const char *const algorithm_names[] = {"detect", "hmac-sha256", "ed25519", NULL};
#define AUDIT_KEY_LABEL "audit (signing key, aggregate_max_keys)"

static const bs_conf_opt audit_rows[] = {
    {.name = "data_events", .type = BS_CONF_ENUM, BS_CONF_AT(bs_audit_config, data_events),
     .choices = data_event_names, .def = "aggregate"},
    {.name = "format", .type = BS_CONF_ENUM, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_audit_config, format), .choices = audit_format_names, .def = "cloudtrail"},
    {.name = "aggregate_interval_s", .type = BS_CONF_INT,
     BS_CONF_AT(bs_audit_config, aggregate_interval_s), .min = 1, .max = 86400, .def = "60"},
    {.name = "digest_interval_s", .type = BS_CONF_INT,
     BS_CONF_AT(bs_audit_config, digest_interval_s), .min = 1, .max = 86400, .def = "300"},
    {.name = "digest_every_events", .type = BS_CONF_INT,
     BS_CONF_AT(bs_audit_config, digest_every_events), .min = 0, .max = 10000000, .def = "1000"},
    {.name = "aggregate_max_keys", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_audit_config, aggregate_max_keys), .min = 1, .max = 10000000, .def = "10000",
     .restart_label = AUDIT_KEY_LABEL},
    {.name = "signing_key_file", .type = BS_CONF_SECRET_FILE, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_audit_config, signing_key_file), .restart_label = AUDIT_KEY_LABEL},
    {.name = "signing_algorithm", .type = BS_CONF_ENUM, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_audit_config, signing_algorithm), .choices = algorithm_names,
     .def = "detect", .restart_label = AUDIT_KEY_LABEL},
    SINK_REFS_ROW(bs_audit_config),
};

const bs_conf_section bs_audit_conf = BS_CONF_SECTION("audit", audit_rows, check_audit);

/* ---- metrics ------------------------------------------------------------- */

/* CloudWatch: 1..255 characters, no leading ':' and no "AWS/" prefix. */
static const char *check_namespace(const char *ns)
{
    bool bad = strlen(ns) > 255 || ns[0] == ':' || strncmp(ns, "AWS/", 4) == 0;
    for (const char *s = ns; *s && !bad; s++)
        bad = !isalnum((unsigned char)*s) && !strchr(".-_/#:", *s);
    return bad ? " is not a CloudWatch namespace: 1 to 255 of A-Z a-z 0-9 . - _ / # :, not "
                 "starting with ':' or \"AWS/\""
               : NULL;
}

/* Indexed by bs_metrics_level (metrics.h). */
static const char *const level_names[] = {"default", "per_broker", "per_topic_per_broker",
                                          "per_topic_per_partition", NULL};

static const bs_conf_opt metrics_rows[] = {
    {.name = "interval_s", .type = BS_CONF_INT, BS_CONF_AT(bs_metrics_config, interval_s),
     .min = 1, .max = 86400, .def = "60"},
    {.name = "namespace", .type = BS_CONF_STRING, BS_CONF_AT(bs_metrics_config, ns),
     .check_str = check_namespace, .def = "Kafka/Brokerside"},
    {.name = "level", .type = BS_CONF_ENUM, BS_CONF_AT(bs_metrics_config, level),
     .choices = level_names, .def = "per_topic_per_broker"},
    SINK_REFS_ROW(bs_metrics_config),
};

const bs_conf_section bs_metrics_conf = BS_CONF_SECTION("metrics", metrics_rows, NULL);

/* ---- logs ---------------------------------------------------------------- */

#define CFG_MAX_LOG_FILES 256
#define LOGS_TAIL_LABEL "logs (tz_offset_min, start_at_end, state_file)"

static const char *const format_names[] = {"log4j", "plain", NULL};

static const bs_conf_opt file_rows[] = {
    {.name = "format", .type = BS_CONF_ENUM, BS_CONF_AT(bs_log_file_config, format),
     .choices = format_names, .def = "log4j"},
    {.name = "path", .type = BS_CONF_PATH, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_log_file_config, path),
     .required = "is required (a file path or a glob such as \"/var/log/kafka/*.log\")"},
};
static const bs_conf_section file_conf = BS_CONF_SECTION("logs.files[i]", file_rows, NULL);

/* CUSTOM `files` (required): 1..256 {path, format}. */
static void parse_files(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                        void *base)
{
    bs_logs_config *l = base;
    char p[BS_CONF_PATH_MAX];
    (void)o;
    (void)path;
    if (!obj) return;
    const cJSON *f = bs_conf_member(obj, "files");
    if (!f) {
        bs_conf_err(c, "logs.files", "is required: the broker log files to ship (paths or globs)");
        return;
    }
    if (!cJSON_IsArray(f)) {
        bs_conf_err(c, "logs.files", "expected an array of {path, format}, got %s",
                    bs_conf_type_name(f));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(f);
    if (n == 0 || n > CFG_MAX_LOG_FILES) {
        bs_conf_err(c, "logs.files", "must list 1 to %d files", CFG_MAX_LOG_FILES);
        return;
    }
    if (!(l->files = calloc(n, sizeof *l->files))) {
        c->nomem = true;
        return;
    }
    size_t i = 0;
    for (const cJSON *it = f->child; it; it = it->next, i++) {
        bs_conf_path_index(p, sizeof p, "logs.files", i);
        if (!cJSON_IsObject(it)) {
            bs_conf_err(c, p, "expected an object {path, format}, got %s", bs_conf_type_name(it));
            continue;
        }
        bs_log_file_config *lf = &l->files[l->n_files];
        bs_conf_walk1(c, it, p, &file_conf, lf);
        if (lf->path) l->n_files++;
    }
}

/* Free the files. */
static void free_files(const bs_conf_opt *o, void *base)
{
    bs_logs_config *l = base;
    (void)o;
    for (size_t i = 0; i < l->n_files; i++)
        bs_conf_free_section(&file_conf, &l->files[i]);
    free(l->files);
    l->files = NULL;
    l->n_files = 0;
}

/* SIGHUP: the tailer is built once with its file list. */
static bool diff_files(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                       char *what, size_t whatlen)
{
    const bs_logs_config *x = a, *y = b;
    (void)o;
    bool same = x->n_files == y->n_files;
    for (size_t i = 0; same && i < x->n_files; i++)
        same = !bs_conf_restart_diff(&file_conf, &x->files[i], &y->files[i], NULL, NULL, 0);
    if (!same) bs_conf_list_add(what, whatlen, label);
    return !same;
}

static const bs_conf_opt logs_rows[] = {
    {.name = "tz_offset_min", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_logs_config, tz_offset_min), .min = -720, .max = 840, .def = "0",
     .restart_label = LOGS_TAIL_LABEL},
    {.name = "start_at_end", .type = BS_CONF_BOOL, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_logs_config, start_at_end), .def = "false", .restart_label = LOGS_TAIL_LABEL},
    /* Default <spool.dir>/logtail.state: filled in by the daemon's rules. */
    {.name = "state_file", .type = BS_CONF_PATH, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_logs_config, state_file), .restart_label = LOGS_TAIL_LABEL},
    SINK_REFS_ROW(bs_logs_config),
    {.name = "files", .type = BS_CONF_CUSTOM, .flags = BS_CONF_REQUIRED | BS_CONF_RESTART, .parse = parse_files,
     .free = free_files, .diff = diff_files, .sub = &file_conf, .doc = "array"},
};

const bs_conf_section bs_logs_conf = BS_CONF_SECTION("logs", logs_rows, NULL);
