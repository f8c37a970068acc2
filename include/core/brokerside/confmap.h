/*
 * confmap.h - declarative configuration options and the one walker that
 * reads them (core/confmap.c).
 *
 * Each module declares the keys of its configuration sections as a table of
 * bs_conf_opt rows: name, type, where the value lands in the module's options
 * struct (offset and size), default, bounds or enum names, reload behaviour
 * and a one-line description. The walker checks the keys of a JSON object
 * against the table (unknown keys with a "did you mean" hint, duplicate
 * keys), reads each row with its type's checks, applies the defaults, and
 * records every problem as "FILE: JSON.PATH: message" without stopping, so
 * --check-config lists everything at once. Checks that need code are small
 * callbacks: a row's `check_str` (one string), its `parse` (a CUSTOM row) or
 * the section's `check` (rules across keys, run after the walk).
 *
 * The same tables free what the walker allocated (bs_conf_free_section),
 * decide the SIGHUP rule (bs_conf_restart_diff, from BS_CONF_RESTART) and
 * are the source that docs/configuration.md is checked against
 * (tests/unit/test_config_tables.c). Adding a key is one row plus its use;
 * see docs/architecture.md, "Adding a config key".
 */
#ifndef BROKERSIDE_CONFMAP_H
#define BROKERSIDE_CONFMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "brokerside/status.h"

typedef struct cJSON cJSON;

/* A resolved socket address plus the text it came from ("host:port"). */
typedef struct bs_endpoint {
    char *text; /* as written in the config */
    char *host; /* host part, brackets stripped for IPv6 */
    uint16_t port;
    struct sockaddr_storage addr; /* resolved at load time */
    socklen_t addrlen;
} bs_endpoint;

/* One problem found while loading, already formatted as
 * "FILE: PATH: message". */
typedef struct bs_config_errors {
    char **msgs;
    size_t n;
} bs_config_errors;

/* Free every message in errs and reset it to empty (n = 0), ready for reuse. */
void bs_config_errors_free(bs_config_errors *errs);

/* Append one printf-formatted message to `list` (control characters become
 * '?', so one message stays one line). BS_E_NOMEM if it could not grow. */
bs_status bs_config_errors_addf(bs_config_errors *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) BS_WUR;


/* True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
bool bs_endpoint_is_loopback(const bs_endpoint *e);
/* True for the wildcard addresses 0.0.0.0 and ::. */
bool bs_endpoint_is_wildcard(const bs_endpoint *e);



#define BS_CONF_PATH_MAX 512 /* longest JSON path in a message */

/* Where a module's own entry point (bs_policy_parse, bs_identity_config_parse:
 * a section read outside a config load) sends each problem: its JSON path and
 * the message apart, instead of a "FILE: PATH: message" line. */
typedef void (*bs_conf_report_fn)(void *ctx, const char *path, const char *msg);
#define BS_CONF_PUBLISHED_MAX 8 /* values sections publish per load (bs_conf_publish) */

/* State shared by the walkers of one load. Modules' callbacks receive it and
 * report through bs_conf_err(); they never format messages themselves. */
typedef struct bs_conf {
    const char *file;       /* as given by the caller, used in every message */
    char *dir;              /* absolute directory of `file`: base of relative paths */
    bs_config_errors *errs; /* where problems are appended (caller owns) */
    size_t n_problems;      /* problems found by this load (errs may hold older ones) */
    bool nomem;             /* an allocation failed somewhere: the result is unusable */
    bs_config_errors *warns; /* the config's warnings (bs_config.warnings; may be NULL) */
    /* Values a section publishes for sections read after it (bs_conf_publish),
     * e.g. aws.region, the fallback of every AWS client's region row. */
    struct {
        const char *name;  /* static, e.g. "aws.region" */
        const char *value; /* borrowed from the struct being filled */
    } published[BS_CONF_PUBLISHED_MAX];
    size_t n_published;
    /* When set, problems go to report(report_ctx, path, message) instead of
     * errs (file is then unused): how a module reads its section on its own.
     * With neither, problems are only counted. */
    bs_conf_report_fn report;
    void *report_ctx;
} bs_conf;

typedef enum bs_conf_type {
    BS_CONF_BOOL,        /* bool */
    BS_CONF_INT,         /* integer in [min, max]; field of `size` 1, 2, 4 or 8 bytes,
                            signed when min < 0 */
    BS_CONF_SECONDS,     /* double in (0, max] */
    BS_CONF_STRING,      /* char *, owned; an empty string is an error */
    BS_CONF_ENUM,        /* one of `choices`; stores its index (or values[index]) in an
                            int-sized field, or a bool when size is 1 */
    BS_CONF_FILE,        /* char *, absolute path of a readable regular file */
    BS_CONF_SECRET_FILE, /* like FILE, and no permission for group or others (an error) */
    BS_CONF_DIR,         /* char *, writable directory, or missing with a writable parent */
    BS_CONF_PATH,        /* char *, absolute path, not checked (created later) */
    BS_CONF_ENDPOINT,    /* bs_endpoint, "HOST:PORT" resolved at load time */
    BS_CONF_OBJECT,      /* nested object read with `sub`; its fields live in the same
                            struct (offset 0) unless `offset` says otherwise */
    BS_CONF_CUSTOM,      /* `parse` reads it (arrays, maps, pointers to sections...); with
                            parse NULL the key is read by a sibling row's parse */
} bs_conf_type;

/* Row flags. */
enum {
    BS_CONF_REQUIRED = 1u << 0, /* absence is an error (`required` is the message) */
    BS_CONF_RESTART = 1u << 1,  /* SIGHUP cannot apply a change: the daemon keeps the old value */
    BS_CONF_SECRET = 1u << 2,   /* STRING: wiped when freed, never printed. FILE: a private
                                   key, warned about when every user may read it */
    BS_CONF_PASSIVE = 1u << 3,  /* ENDPOINT: a bind address (port 0 allowed) */
    BS_CONF_NODOC = 1u << 4,    /* not listed in docs/configuration.md's table of the section */
    BS_CONF_NOCASE = 1u << 5,   /* ENUM: a value matches a choice ignoring case and '_'
                                   (bs_conf_choice_index), as Kafka's ACL names do */
};

typedef struct bs_conf_opt bs_conf_opt;
typedef struct bs_conf_section bs_conf_section;

/* A CUSTOM row's reader: `obj` is the object holding the key (NULL when the
 * section is absent: apply defaults), `path` that object's JSON path, `base`
 * the struct the section fills (the row's field is at base + opt->offset).
 * Reports problems with bs_conf_err and stores results itself. */
typedef void (*bs_conf_parse_fn)(bs_conf *c, const bs_conf_opt *opt, const cJSON *obj,
                                 const char *path, void *base);
/* Free what a CUSTOM row's reader stored in `base` (NULL-safe on zeroed fields). */
typedef void (*bs_conf_free_fn)(const bs_conf_opt *opt, void *base);
/* The SIGHUP rule of a CUSTOM row: true when what it stored differs between
 * the structs `a` and `b` in a way only a restart can apply; then, unless
 * `what` is NULL, append the names of what changed (from `label`, the row's
 * restart label or JSON path) with bs_conf_list_add. */
typedef bool (*bs_conf_diff_fn)(const bs_conf_opt *opt, const void *a, const void *b,
                                const char *label, char *what, size_t whatlen);
/* A section's rules across keys, run after its rows were read. `obj` is the
 * object (NULL when the section was absent). */
typedef void (*bs_conf_check_fn)(bs_conf *c, const cJSON *obj, const char *path, void *base);

struct bs_conf_opt {
    const char *name; /* the JSON key */
    bs_conf_type type;
    unsigned flags;   /* BS_CONF_* */
    size_t offset;    /* where the value lands in the section's struct */
    size_t size;      /* sizeof that field (INT, ENUM) */
    long long min, max;          /* INT bounds; SECONDS: max only; ENDPOINT: min port */
    const char *const *choices;  /* ENUM names, NULL-terminated */
    const int *values;           /* ENUM: value stored for each choice; NULL = the index */
    const char *def;             /* default as written in the file ("10000", "info",
                                    "127.0.0.1:9644"); NULL = none */
    const char *required;        /* REQUIRED: the message, "is required" when NULL */
    const char *expect;          /* sections: the wrong-type message is "expected <expect> got
                                    <type>"; NULL = "an object," */
    const char *(*check_str)(const char *s); /* STRING: NULL when fine, else the reason,
                                    printed after the quoted value ("%s%s") */
    const bs_conf_section *sub;  /* OBJECT */
    bs_conf_parse_fn parse;      /* CUSTOM */
    bs_conf_free_fn free;        /* CUSTOM: frees what parse stored */
    bs_conf_diff_fn diff;        /* CUSTOM: the SIGHUP rule, asked when the row has
                                    BS_CONF_RESTART or its whole object is compared */
    const char *restart_label;   /* name in the SIGHUP restart list: NULL = "path.name",
                                    ".x" = "path.x", else verbatim */
    const char *doc;             /* type as docs/configuration.md shows it ("integer",
                                    "string", "file", "object", ...); NULL = from the type */
};

struct bs_conf_section {
    const char *name;         /* JSON path pattern, as docs headings show it */
    const bs_conf_opt *opts;  /* rows in reading order (messages follow it) */
    size_t n_opts;
    bs_conf_check_fn check;   /* may be NULL */
};

#define BS_CONF_SECTION(nm, rows, chk)                                                             \
    {                                                                                              \
        .name = (nm), .opts = (rows), .n_opts = sizeof(rows) / sizeof((rows)[0]), .check = (chk)   \
    }

/* `.offset` and `.size` of `field` in struct `type`. */
#define BS_CONF_AT(type, field) .offset = offsetof(type, field), .size = sizeof(((type *)0)->field)

/* ---- the walker --------------------------------------------------------- */

/*
 * Read the object `obj` at `path` ("" = the document) into `base` with the
 * rows of `secs` (n sections: a sink is common rows + its type's rows):
 * unknown and duplicate keys are reported first, then each row in order
 * (defaults applied where absent), then each section's check. `obj` NULL
 * applies the defaults only (an absent section).
 */
void bs_conf_walk(bs_conf *c, const cJSON *obj, const char *path,
                  const bs_conf_section *const *secs, size_t n, void *base);
/* bs_conf_walk with one section. */
void bs_conf_walk1(bs_conf *c, const cJSON *obj, const char *path, const bs_conf_section *sec,
                   void *base);
/* Free every string, endpoint and CUSTOM value that the rows of `sec`
 * stored in `base` (secrets wiped); base itself is not freed. */
void bs_conf_free_section(const bs_conf_section *sec, void *base);
/*
 * The SIGHUP rule of one section: for every BS_CONF_RESTART row whose value
 * differs between `a` and `b`, append its label (restart_label, else
 * "prefix.name") to what[whatlen], once per label. OBJECT rows without the
 * flag recurse; with it, any difference in the object counts. CUSTOM rows
 * ask their diff. With prefix NULL, every row counts and nothing is
 * appended. Returns true if anything differs.
 */
bool bs_conf_restart_diff(const bs_conf_section *sec, const void *a, const void *b,
                          const char *prefix, char *what, size_t whatlen);
/* Append "item" to the comma-separated list in buf (bounded, terminated). */
void bs_conf_list_add(char *buf, size_t len, const char *item);

/* ---- what callbacks use ------------------------------------------------- */

/* Record "FILE: PATH: message" (an empty path means the document). */
__attribute__((format(printf, 3, 4))) void bs_conf_err(bs_conf *c, const char *path,
                                                        const char *fmt, ...);
/* Record "FILE:LINE:COL: message" for byte offset `off` of `text`. */
void bs_conf_err_at(bs_conf *c, const char *text, size_t len, size_t off, const char *msg);
/* `s` as a double-quoted, escaped string of bounded length in dst[n]. */
const char *bs_conf_quote(char *dst, size_t n, const char *s);
/* "base.key" (or "key" at the top level) into dst. */
void bs_conf_path_key(char *dst, size_t n, const char *base, const char *key);
/* "base[i]" into dst. */
void bs_conf_path_index(char *dst, size_t n, const char *base, size_t i);
/* "a string", "an array", ... for messages. */
const char *bs_conf_type_name(const cJSON *v);
/* Publish `value` under the static `name` ("aws.region") for sections read
 * later in the same load, so a module's row can fall back to another
 * section's value without knowing the struct that holds it. `value` is
 * borrowed (it must live as long as the load); publishing a name again
 * replaces it; NULL withdraws it. At most BS_CONF_PUBLISHED_MAX names
 * (more is a programming error: c->nomem is raised). */
void bs_conf_publish(bs_conf *c, const char *name, const char *value);
/* The value published under `name` in this load, or NULL. */
const char *bs_conf_published(const bs_conf *c, const char *name);
/* strdup that raises c->nomem on failure; NULL in, NULL out. */
char *bs_conf_strdup(bs_conf *c, const char *s);
/* The member `key` of `obj`, or NULL when absent or JSON null. */
const cJSON *bs_conf_member(const cJSON *obj, const char *key);
/* Report unknown and duplicate keys of `obj` against the union of the rows
 * of `secs` (with a "did you mean" hint). */
void bs_conf_check_keys(bs_conf *c, const cJSON *obj, const char *path,
                        const bs_conf_section *const *secs, size_t n);
/* Typed readers of member `key` of `obj` at `path` (the object's path).
 * Absent leaves *out unchanged (get_string: NULL). Problems are recorded;
 * get_string returns false on one. */
bool bs_conf_get_string(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                        const char **out);
void bs_conf_get_int(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                     long long min, long long max, long long *out);
void bs_conf_get_bool(bs_conf *c, const cJSON *obj, const char *key, const char *path, bool *out);
void bs_conf_get_enum(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                      const char *const *names, int *out);
/* Index of `s` in the NULL-terminated `names`, or -1. With `nocase` (ENUM
 * rows flagged BS_CONF_NOCASE) case and every '_' of `s` are ignored, so
 * "TRANSACTIONAL_ID" and "transactionalid" both name "TransactionalId". */
int bs_conf_choice_index(const char *const *names, const char *s, bool nocase);
/* A number of seconds in (0, max]. */
void bs_conf_get_seconds(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                         double max, double *out);
/* Resolve `s` against the config directory (malloc'd; NULL + nomem on failure). */
char *bs_conf_resolve_path(bs_conf *c, const char *s);
/* A readable regular file (FILE rows); `secret` warns when every user may
 * read it. Returns the malloc'd absolute path; NULL when absent (*ok true)
 * or on a problem (*ok false). */
char *bs_conf_get_file(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                       bool required, bool secret, bool *ok);
/* A file with no permission for group or others (SECRET_FILE rows). */
char *bs_conf_get_secret_file(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                              bool required, bool *ok);
/* A writable directory, or missing with a writable parent (DIR rows). */
char *bs_conf_get_dir(bs_conf *c, const cJSON *obj, const char *key, const char *path);
/* "HOST:PORT" or "[v6]:PORT", resolved (ENDPOINT rows). `def` is used when
 * absent; without it absence is an error. True when *ep was filled. */
bool bs_conf_get_endpoint(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                          const char *def, long min_port, bool passive, bs_endpoint *ep);
/* Free the strings of *ep; safe on a zeroed endpoint. */
void bs_conf_endpoint_free(bs_endpoint *ep);

/* ---- shared CUSTOM rows ------------------------------------------------- */

/* A section that is off when absent or null (`sub` read into the struct at
 * base + offset, whose first member is `bool enabled`); the restart rule
 * names "label (on/off)" when it is turned on or off, else the sub rows. */
void bs_conf_parse_switch(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                          void *base);
void bs_conf_free_switch(const bs_conf_opt *o, void *base);
bool bs_conf_diff_switch(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                         char *what, size_t whatlen);
/* The `sinks` list of an event section (audit, metrics, logs): names of
 * sinks, each defined in the `sinks` section (the composition root links
 * them). */
typedef struct bs_sink_refs {
    char **names; /* sink names, each defined in bs_config.sinks */
    size_t n;
} bs_sink_refs;

/* The `sinks` list of an event section (a bs_sink_refs at base + offset):
 * absent = ["default"]; names are resolved later by the daemon's rules. */
void bs_conf_parse_sink_refs(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                             const char *path, void *base);
void bs_conf_free_sink_refs(const bs_conf_opt *o, void *base);
bool bs_conf_diff_sink_refs(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                            char *what, size_t whatlen);

/* CUSTOM free and diff of an owned string field at base + offset. */
void bs_conf_free_string(const bs_conf_opt *o, void *base);
bool bs_conf_diff_string(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                         char *what, size_t whatlen);

/* ---- address helpers shared by the modules' checks ---------------------- */

/* Split "host:port" / "[v6]:port" (host without brackets); NULL or a reason.
 * host and port need room for strlen(s)+1 bytes. */
const char *bs_conf_split_hostport(const char *s, char *host, char *port, bool *bracketed);
/* A decimal port of at most 5 digits. */
bool bs_conf_parse_port(const char *s, long *out);
/* Every character could be in a DNS name or an IP literal. */
bool bs_conf_host_chars_ok(const char *h, bool bracketed);
/* True for "localhost", 127.0.0.0/8 and ::1 written literally. */
bool bs_conf_host_is_loopback(const char *h);
/* 1..64 of [A-Za-z0-9_.-] (names that become log tags and metric labels). */
bool bs_conf_name_ok(const char *s);
#define BS_CONF_NAME_MAX 64

/* Check an advertised "host:port" (not resolved: it is what clients are
 * told). NULL if fine, else a static reason; on success host (room for
 * strlen(s)+1 bytes) and *port are filled. */
const char *bs_conf_check_hostport(const char *s, char *host, uint16_t *port);

/* Edit distance capped at small values (the "did you mean" hint). */
size_t bs_conf_edit_distance(const char *a, const char *b);

#endif
