/*
 * config.c - the daemon's configuration: the root table of top-level keys,
 * the rules across sections, load and free (see config.h and
 * docs/configuration.md).
 *
 * Pipeline: read the file -> blank out comments (same offsets, so cJSON's
 * error position maps back to line:column of the original) -> cJSON parse ->
 * the generic walker (confmap.c) over the root table, whose rows point at the
 * sections each module declares (config_tables.h) -> the rules that span
 * sections (the implicit default sink, sink references, bind overlaps). The
 * walker never stops at the first problem so that --check-config can list
 * everything at once. The config is only handed out when no problem was
 * found.
 */
#include "brokerside/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "brokerside/config_tables.h"

#define CFG_MAX_FILE_BYTES (16u * 1024u * 1024u)
#define CFG_MAX_WORKERS 256

/* ------------------------------------------------------------------------ */
/* Comments                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Copy `in` into a new NUL-terminated buffer with every comment byte replaced
 * by a space, except newlines, so offsets (and so line:column) are unchanged.
 * Comment markers inside JSON strings are data and are kept. A UTF-8 BOM is
 * blanked too. On a problem (unterminated block comment, NUL byte) returns
 * BS_E_CONFIG with *err_off and *why set. The caller frees *out.
 */
static bs_status strip_comments(const char *in, size_t len, char **out, size_t *err_off,
                                const char **why)
{
    char *o = malloc(len + 1);
    if (!o) return BS_E_NOMEM;
    memcpy(o, in, len);
    o[len] = '\0';
    bs_status st = BS_OK;
    size_t i = 0;
    if (len >= 3 && memcmp(o, "\xef\xbb\xbf", 3) == 0) {
        memset(o, ' ', 3);
        i = 3;
    }
    while (i < len) {
        char ch = o[i];
        if (ch == '\0') {
            *err_off = i;
            *why = "NUL byte in the file";
            st = BS_E_CONFIG;
            goto out;
        }
        if (ch == '"') {
            /* Skip the string. A raw newline ends it early: JSON forbids raw
             * newlines in strings, so the parser will report that line, and
             * comments after it are still stripped. */
            i++;
            while (i < len && o[i] != '"' && o[i] != '\n' && o[i] != '\0') {
                if (o[i] == '\\' && i + 1 < len && o[i + 1] != '\n') i++;
                i++;
            }
            if (i < len && o[i] == '"') i++;
            continue;
        }
        if (ch == '/' && i + 1 < len && o[i + 1] == '/') {
            while (i < len && o[i] != '\n')
                o[i++] = ' ';
            continue;
        }
        if (ch == '/' && i + 1 < len && o[i + 1] == '*') {
            size_t start = i;
            o[i++] = ' ';
            o[i++] = ' ';
            for (;;) {
                if (i >= len) {
                    *err_off = start;
                    *why = "unterminated /* comment";
                    st = BS_E_CONFIG;
                    goto out;
                }
                if (o[i] == '*' && i + 1 < len && o[i + 1] == '/') {
                    o[i++] = ' ';
                    o[i++] = ' ';
                    break;
                }
                if (o[i] != '\n') o[i] = ' ';
                i++;
            }
            continue;
        }
        i++;
    }
out:
    if (st != BS_OK) {
        free(o);
        return st;
    }
    *out = o;
    return BS_OK;
}

/*
 * Find the first trailing comma (",", whitespace, then "}" or "]") outside
 * strings in comment-free text. cJSON rejects them but reports the position
 * of the end of the document for objects, which would be a useless hint.
 * Returns true and the comma's offset if one exists.
 */
static bool find_trailing_comma(const char *t, size_t len, size_t *off)
{
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '"') {
            i++;
            while (i < len && t[i] != '"' && t[i] != '\n') {
                if (t[i] == '\\' && i + 1 < len) i++;
                i++;
            }
            continue;
        }
        if (t[i] != ',') continue;
        size_t j = i + 1;
        while (j < len && isspace((unsigned char)t[j]))
            j++;
        if (j < len && (t[j] == '}' || t[j] == ']')) {
            *off = i;
            return true;
        }
    }
    return false;
}

/* Absolute directory of the config file, without resolving symlinks (so a
 * config reached through a symlinked directory keeps resolving through it).
 * Caller frees. */
static char *config_dir(const char *file)
{
    char *copy = strdup(file);
    if (!copy) return NULL;
    char *slash = strrchr(copy, '/');
    const char *dir;
    if (!slash) {
        dir = ".";
    } else if (slash == copy) {
        dir = "/";
    } else {
        *slash = '\0';
        dir = copy;
    }
    char *res = NULL;
    if (dir[0] == '/') {
        res = strdup(dir);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd)) {
            if (strcmp(dir, ".") == 0) {
                res = strdup(cwd);
            } else if (asprintf(&res, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, dir) < 0) {
                res = NULL;
            }
        }
    }
    free(copy);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Rules across sections                                                     */
/* ------------------------------------------------------------------------ */

/* Index of the sink `name` in cfg, or -1. */
static long sink_index(const bs_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (cfg->sinks[i].name && strcmp(cfg->sinks[i].name, name) == 0) return (long)i;
    return -1;
}

/* The path `in` as the kernel will resolve it, into out[outlen]: realpath()
 * of its longest existing prefix (symlinks, "." and ".." resolved), then the
 * part that does not exist yet with "." and ".." applied lexically. Used to
 * tell whether two configured directories are the same. */
static void canon_path(const char *in, char *out, size_t outlen)
{
    char head[PATH_MAX], real[PATH_MAX];
    snprintf(out, outlen, "%s", in);
    if (strlen(in) >= sizeof head) return;
    strcpy(head, in);
    size_t cut = strlen(head);
    for (;;) {
        if (realpath(head, real)) break;
        char *slash = strrchr(head, '/');
        if (!slash) return; /* nothing of it exists, even relative: compare as given */
        cut = (size_t)(slash - head);
        if (cut == 0) {
            strcpy(real, "/");
            break;
        }
        *slash = '\0';
    }
    /* append the components after the existing prefix, applying "." and ".." */
    char res[PATH_MAX];
    snprintf(res, sizeof res, "%s", real);
    const char *rest = in + cut;
    while (*rest) {
        while (*rest == '/')
            rest++;
        size_t n = strcspn(rest, "/");
        if (n == 0) break;
        if (n == 1 && rest[0] == '.') {
            /* nothing */
        } else if (n == 2 && rest[0] == '.' && rest[1] == '.') {
            char *slash = strrchr(res, '/');
            if (slash && slash != res)
                *slash = '\0';
            else
                strcpy(res, "/");
        } else {
            size_t l = strlen(res);
            if (l + 1 + n < sizeof res) {
                if (l > 1 || res[0] != '/') res[l++] = '/';
                memcpy(res + l, rest, n);
                res[l + n] = '\0';
            }
        }
        rest += n;
    }
    snprintf(out, outlen, "%s", res);
}

/*
 * Cross-section rules once everything is read: the implicit "default" file
 * sink, every reference resolved (and routed), the stream/sink type fit, a
 * spool dir when events are on, the logtail state file default, and
 * warnings for sinks nobody uses.
 */
static void link_events(bs_conf *c, const cJSON *root, bs_config *cfg)
{
    struct {
        const char *section;
        bool enabled;
        bs_sink_refs *refs;
        unsigned stream;
    } secs[] = {
        {"audit", cfg->audit.enabled, &cfg->audit.sinks, 0 /* BS_STREAM_AUDIT */},
        {"metrics", cfg->metrics.enabled, &cfg->metrics.sinks, 1 /* BS_STREAM_METRICS */},
        {"logs", cfg->logs.enabled, &cfg->logs.sinks, 2 /* BS_STREAM_LOGS */},
    };
    char p[BS_CONF_PATH_MAX], q[160];
    bool any = false, wants_default = false;
    for (size_t i = 0; i < BS_ARRAY_LEN(secs); i++) {
        any = any || secs[i].enabled;
        for (size_t j = 0; secs[i].enabled && j < secs[i].refs->n; j++)
            wants_default = wants_default || strcmp(secs[i].refs->names[j], "default") == 0;
    }
    if (!any) return;
    if (!cfg->spool.dir) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(root, "spool");
        bool given = sp && cJSON_IsObject(sp) && bs_conf_member(sp, "dir");
        if (!given)
            bs_conf_err(c, "spool.dir",
                    "is required when audit, metrics or logs are on: every event is spooled to "
                    "disk before a sink takes it");
    }
    if (wants_default && sink_index(cfg, "default") < 0 && cfg->spool.dir) {
        if (!cfg->sinks && !(cfg->sinks = calloc(1, sizeof *cfg->sinks))) {
            c->nomem = true;
            return;
        }
        /* Beside the spool: its parent is known to be writable. */
        bs_sink_config *s = &cfg->sinks[cfg->n_sinks++];
        bs_sink_conf_defaults(s, BS_SINK_FILE);
        char *parent = bs_conf_strdup(c, cfg->spool.dir);
        char *slash = parent ? strrchr(parent, '/') : NULL;
        if (slash && slash != parent)
            *slash = '\0';
        else if (slash)
            slash[1] = '\0';
        s->name = bs_conf_strdup(c, "default");
        s->kind = BS_SINK_FILE;
        s->implicit = true;
        if (parent &&
            asprintf(&s->dir, "%s%sevents", parent, strcmp(parent, "/") == 0 ? "" : "/") < 0) {
            s->dir = NULL;
            c->nomem = true;
        }
        free(parent);
    }
    for (size_t i = 0; i < BS_ARRAY_LEN(secs); i++) {
        if (!secs[i].enabled) continue;
        for (size_t j = 0; j < secs[i].refs->n; j++) {
            const char *name = secs[i].refs->names[j];
            snprintf(p, sizeof p, "%s.sinks[%zu]", secs[i].section, j);
            if (!bs_conf_member(cJSON_GetObjectItemCaseSensitive(root, secs[i].section), "sinks"))
                snprintf(p, sizeof p, "%s.sinks", secs[i].section);
            long k = sink_index(cfg, name);
            if (k < 0) {
                /* The default cannot be made without a spool dir: already reported. */
                if (strcmp(name, "default") != 0 || cfg->spool.dir)
                    bs_conf_err(c, p, "sink %s is not defined in sinks", bs_conf_quote(q, sizeof q, name));
                continue;
            }
            bs_sink_config *s = &cfg->sinks[k];
            /* PutMetricData takes metric data points, which only metric events carry. */
            if (s->kind == BS_SINK_CLOUDWATCH_METRICS && secs[i].stream != 1) {
                bs_conf_err(c, p,
                        "sink %s is a cloudwatch_metrics sink: it can only carry metrics (use "
                        "cloudwatch_logs, s3, firehose or file for %s)",
                        bs_conf_quote(q, sizeof q, name), secs[i].section);
                continue;
            }
            /* PutAuditEvents takes audit records (docs/sinks.md) */
            if (s->kind == BS_SINK_CLOUDTRAIL_LAKE && secs[i].stream != 0) {
                bs_conf_err(c, p,
                        "sink %s is a cloudtrail_lake sink: it can only carry audit events (use "
                        "cloudwatch_logs, s3, firehose or file for %s)",
                        bs_conf_quote(q, sizeof q, name), secs[i].section);
                continue;
            }
            s->streams |= 1u << secs[i].stream;
        }
    }
    /* Two writers in one directory would interleave or rotate each other's
     * files. Compared as real paths: "<spool>/.", "<spool>/../spool" or a
     * symlink to the spool are the spool too. */
    char spool_real[PATH_MAX] = "";
    if (cfg->spool.dir) canon_path(cfg->spool.dir, spool_real, sizeof spool_real);
    for (size_t k = 0; k < cfg->n_sinks; k++) {
        const bs_sink_config *s = &cfg->sinks[k];
        if (s->kind != BS_SINK_FILE || !s->dir) continue;
        snprintf(p, sizeof p, s->implicit ? "sinks" : "sinks.%s.dir", s->name);
        char real[PATH_MAX], other[PATH_MAX];
        canon_path(s->dir, real, sizeof real);
        if (cfg->spool.dir && strcmp(real, spool_real) == 0)
            bs_conf_err(c, p, "%s%s is the spool directory: give the sink its own directory",
                    s->implicit ? "the default sink's dir " : "", bs_conf_quote(q, sizeof q, s->dir));
        for (size_t j = 0; j < k; j++)
            if (cfg->sinks[j].kind == BS_SINK_FILE && cfg->sinks[j].dir &&
                (canon_path(cfg->sinks[j].dir, other, sizeof other), strcmp(other, real) == 0))
                bs_conf_err(c, p,
                        "%s%s is also the dir of sinks.%s: each file sink needs its own "
                        "directory",
                        s->implicit ? "the default sink's dir " : "", bs_conf_quote(q, sizeof q, s->dir),
                        cfg->sinks[j].name);
    }
    if (cfg->logs.enabled && !cfg->logs.state_file && cfg->spool.dir &&
        asprintf(&cfg->logs.state_file, "%s/logtail.state", cfg->spool.dir) < 0) {
        cfg->logs.state_file = NULL;
        c->nomem = true;
    }
}

/* Fill cfg->kafka.routes: one per kafka listener, announcing its
 * `advertised` address, else its bind address unless that is a wildcard or
 * port 0 (then host stays NULL: nothing derivable). */
static void derive_kafka_routes(bs_conf *c, bs_config *cfg)
{
    bs_kafka_config *k = &cfg->kafka;
    if (cfg->n_listeners == 0) return;
    k->routes = calloc(cfg->n_listeners, sizeof *k->routes);
    if (!k->routes) {
        c->nomem = true;
        return;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const bs_listener_config *l = &cfg->listeners[i];
        if (l->protocol != BS_PROTOCOL_KAFKA || !l->upstream.text) continue;
        bs_kafka_route *r = &k->routes[k->n_routes++];
        r->listener = l->name;
        r->upstream = &l->upstream;
        r->node_id = l->broker_id;
        if (l->advertised_host) {
            r->host = l->advertised_host;
            r->port = l->advertised_port;
        } else if (l->bind.text && l->bind.port != 0 && !bs_endpoint_is_wildcard(&l->bind)) {
            r->host = l->bind.host;
            r->port = l->bind.port;
        }
    }
}

/* `lag.listener` must name a kafka listener; without it, one kafka listener
 * must exist (its upstream is the broker the monitor asks). */
static void check_lag_listener(bs_conf *c, const bs_config *cfg)
{
    const bs_lag_config *l = &cfg->lag;
    if (!l->enabled) return;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const bs_listener_config *li = &cfg->listeners[i];
        if (l->listener && (!li->name || strcmp(li->name, l->listener) != 0)) continue;
        if (li->protocol != BS_PROTOCOL_KAFKA) {
            if (l->listener)
                bs_conf_err(c, "lag.listener", "\"%s\" is not a kafka listener (protocol tcp)",
                            l->listener);
            else
                continue;
        }
        return;
    }
    if (l->listener)
        bs_conf_err(c, "lag.listener", "\"%s\" names no listener", l->listener);
    else if (cfg->n_listeners)
        bs_conf_err(c, "lag", "needs a kafka listener (its upstream is the broker the monitor asks)");
}

/* The rules of the whole document, once every section is read: workers 0
 * resolved, admin.bind apart from the listeners, the event routing. */
static void check_root(bs_conf *c, const cJSON *root, const char *path, void *base)
{
    bs_config *cfg = base;
    (void)path;
    if (cfg->workers == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = (uint32_t)(cores < 1 ? 1 : (cores > CFG_MAX_WORKERS ? CFG_MAX_WORKERS : cores));
    }
    if (cfg->admin.enabled && cfg->admin.bind.text) {
        for (size_t i = 0; i < cfg->n_listeners; i++) {
            if (cfg->listeners[i].bind.text &&
                bs_conf_binds_overlap(&cfg->admin.bind, &cfg->listeners[i].bind))
                bs_conf_err(c, "admin.bind", "%s overlaps listeners[%zu].bind (%s)",
                            cfg->admin.bind.text, i, cfg->listeners[i].bind.text);
        }
    }
    derive_kafka_routes(c, cfg);
    check_lag_listener(c, cfg);
    link_events(c, root, cfg);
}

static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const style_names[] = {"text", "json", NULL}; /* bs_log_style order */

/* The `listeners` and `sinks` rows: the array and its count live in
 * bs_config, the modules (net_config.h, sinks_config.h) read, free and
 * compare them. */
static void listeners_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                            void *base)
{
    bs_config *cfg = base;
    bs_listeners_conf_parse(c, o, obj, path, &cfg->listeners, &cfg->n_listeners);
}

static void listeners_free(const bs_conf_opt *o, void *base)
{
    bs_config *cfg = base;
    (void)o;
    bs_listeners_conf_free(&cfg->listeners, &cfg->n_listeners);
}

static bool listeners_diff(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                           char *what, size_t whatlen)
{
    const bs_config *x = a, *y = b;
    (void)o;
    (void)label;
    return bs_listeners_conf_diff(x->listeners, x->n_listeners, y->listeners, y->n_listeners,
                                  what, whatlen);
}

static void sinks_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                        void *base)
{
    bs_config *cfg = base;
    bs_sinks_conf_parse(c, o, obj, path, &cfg->sinks, &cfg->n_sinks);
}

static void sinks_free(const bs_conf_opt *o, void *base)
{
    bs_config *cfg = base;
    (void)o;
    bs_sinks_conf_free(&cfg->sinks, &cfg->n_sinks);
}

static bool sinks_diff(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                       char *what, size_t whatlen)
{
    const bs_config *x = a, *y = b;
    (void)o;
    return bs_sinks_conf_diff(x->sinks, x->n_sinks, y->sinks, y->n_sinks, label, what, whatlen);
}

/* The top-level keys in reading order (a section may read one above it, e.g.
 * encryption and sinks fall back to aws.region); the SIGHUP restart list
 * follows this order too. */
static const bs_conf_opt root_rows[] = {
    {.name = "workers", .type = BS_CONF_INT, .flags = BS_CONF_RESTART, BS_CONF_AT(bs_config, workers),
     .min = 0, .max = CFG_MAX_WORKERS, .def = "0"},
    {.name = "log_level", .type = BS_CONF_ENUM, BS_CONF_AT(bs_config, log_level),
     .choices = level_names, .def = "info"},
    {.name = "log_format", .type = BS_CONF_ENUM, BS_CONF_AT(bs_config, log_style),
     .choices = style_names, .def = "text"},
    {.name = "listeners", .type = BS_CONF_CUSTOM, .flags = BS_CONF_REQUIRED | BS_CONF_RESTART,
     .parse = listeners_parse, .free = listeners_free, .diff = listeners_diff,
     .sub = &bs_listener_conf, .doc = "array of objects"},
    {.name = "limits", .type = BS_CONF_OBJECT, BS_CONF_AT(bs_config, limits), .sub = &bs_limits_conf},
    {.name = "kafka", .type = BS_CONF_OBJECT, BS_CONF_AT(bs_config, kafka), .sub = &bs_kafka_conf},
    {.name = "admin", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART, BS_CONF_AT(bs_config, admin),
     .parse = bs_admin_conf_parse, .free = bs_conf_free_switch, .diff = bs_admin_conf_diff,
     .sub = &bs_admin_conf, .doc = "object or null"},
    {.name = "aws", .type = BS_CONF_OBJECT, BS_CONF_AT(bs_config, aws),
     .sub = &bs_aws_conf},
    {.name = "encryption", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_config, encryption), .parse = bs_conf_parse_switch,
     .free = bs_conf_free_switch, .diff = bs_conf_diff_switch, .sub = &bs_encryption_conf,
     .doc = "object"},
    {.name = "audit", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART, BS_CONF_AT(bs_config, audit),
     .parse = bs_conf_parse_switch, .free = bs_conf_free_switch, .diff = bs_conf_diff_switch,
     .sub = &bs_audit_conf, .expect = "an object, or null to turn it off;", .doc = "object"},
    {.name = "metrics", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_config, metrics), .parse = bs_conf_parse_switch, .free = bs_conf_free_switch,
     .diff = bs_conf_diff_switch, .sub = &bs_metrics_conf,
     .expect = "an object, or null to turn it off;", .doc = "object"},
    {.name = "lag", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART, BS_CONF_AT(bs_config, lag),
     .parse = bs_conf_parse_switch, .free = bs_conf_free_switch, .diff = bs_conf_diff_switch,
     .sub = &bs_lag_conf, .expect = "an object, or null to turn it off;", .doc = "object"},
    {.name = "logs", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART, BS_CONF_AT(bs_config, logs),
     .parse = bs_conf_parse_switch, .free = bs_conf_free_switch, .diff = bs_conf_diff_switch,
     .sub = &bs_logs_conf, .expect = "an object, or null to turn it off;", .doc = "object"},
    {.name = "sinks", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART, .parse = sinks_parse,
     .free = sinks_free, .diff = sinks_diff, .doc = "object"},
    {.name = "spool", .type = BS_CONF_OBJECT, BS_CONF_AT(bs_config, spool),
     .sub = &bs_spool_conf},
    /* identity/ and policy/ hold their sections as pointers (the identity
     * config, never NULL after a load; the built policy, NULL when absent or
     * null): both apply on SIGHUP, swapped atomically by the daemon */
    {.name = "identity", .type = BS_CONF_CUSTOM, BS_CONF_AT(bs_config, identity),
     .parse = bs_identity_conf_parse, .free = bs_identity_conf_free, .sub = &bs_identity_conf,
     .doc = "object"},
    {.name = "authorization", .type = BS_CONF_CUSTOM, BS_CONF_AT(bs_config, authorization),
     .parse = bs_policy_conf_parse, .free = bs_policy_conf_free, .sub = &bs_authorization_conf,
     .expect = "an object, or null for no policy;", .doc = "object"},
};

const bs_conf_section bs_root_conf = BS_CONF_SECTION("top level", root_rows, check_root);

/* bs_config.net: what the server reads (net_config.h), pointing into cfg. */
static void fill_net_view(bs_config *cfg)
{
    cfg->net = (bs_net_config){
        .path = cfg->path,
        .workers = cfg->workers,
        .log_level = cfg->log_level,
        .listeners = cfg->listeners,
        .n_listeners = cfg->n_listeners,
        .limits = cfg->limits,
        .probe_interval_s = cfg->admin.probe_interval_s,
        .kafka = &cfg->kafka,
    };
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

/* Free cfg and everything it owns; NULL is a no-op. Works on partially
 * filled configs too, which is how failed loads clean up. */
void bs_config_free(bs_config *cfg)
{
    if (!cfg) return;
    free(cfg->path);
    bs_conf_free_section(&bs_root_conf, cfg);
    free(cfg->kafka.routes);
    bs_config_errors_free(cfg->warnings);
    free(cfg->warnings);
    cJSON_Delete(cfg->tree);
    free(cfg);
}

/* Find a \u0000 escape inside a JSON string of s[0..len) (comments already
 * blanked): cJSON would decode it to a NUL byte and every C string user would
 * silently see the value cut there. True with *off at the backslash. */
static bool find_nul_escape(const char *s, size_t len, size_t *off)
{
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) {
            if (s[i] == '"') in_str = true;
            continue;
        }
        if (s[i] == '"') {
            in_str = false;
        } else if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && i + 5 < len && strncmp(s + i + 2, "0000", 4) == 0) {
                *off = i;
                return true;
            }
            i++; /* skip the escaped character (\\ and \" included) */
        }
    }
    return false;
}

/* See config.h. `text` need not be NUL-terminated; it is copied. */
bs_status bs_config_parse(const char *path, const char *text, size_t len, bs_config **out,
                          bs_config_errors *errs)
{
    bs_conf c = {.file = path, .errs = errs};
    char *clean = NULL;
    cJSON *root = NULL;
    bs_config *cfg = NULL;
    bs_status st = BS_OK;
    *out = NULL;
    size_t off = 0;
    const char *why = NULL;
    st = strip_comments(text, len, &clean, &off, &why);
    if (st == BS_E_CONFIG) bs_conf_err_at(&c, text, len, off, why);
    if (st != BS_OK) goto out;
    bool blank = true;
    for (size_t i = 0; i < len && blank; i++)
        blank = isspace((unsigned char)clean[i]);
    if (blank) {
        bs_conf_err(&c, "", "the file is empty (or only comments): expected a JSON object");
        st = BS_E_CONFIG;
        goto out;
    }
    if (find_trailing_comma(clean, len, &off)) {
        bs_conf_err_at(&c, text, len, off, "JSON syntax error: trailing comma before '}' or ']'");
        st = BS_E_CONFIG;
        goto out;
    }
    if (find_nul_escape(clean, len, &off)) {
        bs_conf_err_at(&c, text, len, off,
                       "\\u0000 inside a string: a NUL character is not allowed (the string "
                       "would be cut there)");
        st = BS_E_CONFIG;
        goto out;
    }
    const char *end = NULL;
    /* len + 1 includes the NUL, which is how cJSON detects trailing garbage. */
    root = cJSON_ParseWithLengthOpts(clean, len + 1, &end, true);
    if (!root) {
        off = end ? (size_t)(end - clean) : 0;
        /* Past the end means "ran out of input": point at the last real byte. */
        while (off > 0 && (off >= len || isspace((unsigned char)clean[off])))
            off--;
        char msg[128];
        if (off < len && isprint((unsigned char)text[off]))
            snprintf(msg, sizeof msg, "JSON syntax error near '%c'", text[off]);
        else
            snprintf(msg, sizeof msg, "JSON syntax error");
        bs_conf_err_at(&c, text, len, off, msg);
        st = BS_E_CONFIG;
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        bs_conf_err(&c, "", "expected a JSON object at the top level, got %s", bs_conf_type_name(root));
        st = BS_E_CONFIG;
        goto out;
    }
    c.dir = config_dir(path);
    cfg = calloc(1, sizeof *cfg);
    if (!c.dir || !cfg) {
        st = BS_E_NOMEM;
        goto out;
    }
    cfg->path = bs_conf_strdup(&c, path);
    cfg->warnings = calloc(1, sizeof *cfg->warnings);
    if (!cfg->warnings) {
        st = BS_E_NOMEM;
        goto out;
    }
    c.warns = cfg->warnings;
    bs_conf_walk1(&c, root, "", &bs_root_conf, cfg);
    if (c.nomem)
        st = BS_E_NOMEM;
    else if (c.n_problems)
        st = BS_E_CONFIG;
    if (st == BS_OK) fill_net_view(cfg);
    /* Warnings only for a file that loads: a broken one is not also noisy. */
    if (st == BS_OK && bs_config_warnings(cfg, cfg->warnings) != BS_OK) st = BS_E_NOMEM;
out:
    if (st == BS_E_NOMEM && !c.n_problems) {
        /* Best effort: the list may itself be what failed to grow. */
        bs_conf_err(&c, "", "out of memory while loading the configuration");
    }
    if (st == BS_OK) {
        cfg->tree = root; /* kept for the reload diff */
        root = NULL;
        *out = cfg;
        cfg = NULL;
    }
    bs_config_free(cfg);
    cJSON_Delete(root);
    free(clean);
    free(c.dir);
    return st;
}

/* See config.h: read the whole file, then bs_config_parse(). */
bs_status bs_config_load(const char *path, bs_config **out, bs_config_errors *errs)
{
    bs_conf c = {.file = path, .errs = errs};
    char *text = NULL;
    bs_status st = BS_OK;
    int fd = -1;
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer;
     * it is refused below as not a regular file. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        bs_conf_err(&c, "", "cannot open the configuration file: %s", strerror(errno));
        st = BS_E_IO;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        bs_conf_err(&c, "", "not a regular file");
        st = BS_E_IO;
        goto out;
    }
    if ((uint64_t)sb.st_size > CFG_MAX_FILE_BYTES) {
        bs_conf_err(&c, "", "the file is %lld bytes: at most %u are accepted", (long long)sb.st_size,
                CFG_MAX_FILE_BYTES);
        st = BS_E_CONFIG;
        goto out;
    }
    /* Read to EOF rather than trusting st_size: the file may change under us. */
    size_t cap = (size_t)sb.st_size + 1, len = 0;
    text = malloc(cap);
    if (!text) {
        st = BS_E_NOMEM;
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > CFG_MAX_FILE_BYTES) {
                bs_conf_err(&c, "", "the file is larger than %u bytes", CFG_MAX_FILE_BYTES);
                st = BS_E_CONFIG;
                goto out;
            }
            char *grown = realloc(text, cap * 2);
            if (!grown) {
                st = BS_E_NOMEM;
                goto out;
            }
            text = grown;
            cap *= 2;
        }
        ssize_t r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            bs_conf_err(&c, "", "cannot read the configuration file: %s", strerror(errno));
            st = BS_E_IO;
            goto out;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    st = bs_config_parse(path, text, len, out, errs);
out:
    if (fd >= 0) close(fd);
    free(text);
    return st;
}

/* See config.h. */
const bs_sink_config *bs_config_sink(const bs_config *cfg, const char *name)
{
    long i = sink_index(cfg, name);
    return i < 0 ? NULL : &cfg->sinks[i];
}

/* See config.h: the SIGHUP rule is the BS_CONF_RESTART rows of the tables. */
bool bs_config_needs_restart(const bs_config *old_cfg, const bs_config *new_cfg, char *what,
                             size_t whatlen)
{
    if (whatlen) what[0] = '\0';
    return bs_conf_restart_diff(&bs_root_conf, old_cfg, new_cfg, "", what, whatlen);
}
