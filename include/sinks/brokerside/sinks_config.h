/*
 * sinks_config.h - the configuration sinks/ owns: the `sinks` section
 * (named sinks, one descriptor of keys and API limits per type) and the
 * functions the composition root's `sinks` row calls (sinks/sink_config.c).
 */
#ifndef BROKERSIDE_SINKS_CONFIG_H
#define BROKERSIDE_SINKS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/confmap.h"

typedef enum bs_sink_kind {
    BS_SINK_FILE = 0,
    BS_SINK_CLOUDWATCH_LOGS = 1,
    BS_SINK_CLOUDWATCH_METRICS = 2,
    BS_SINK_S3 = 3,
    BS_SINK_FIREHOSE = 4,
    BS_SINK_CLOUDTRAIL_LAKE = 5,
} bs_sink_kind;

/* One `sinks.<name>`. Fields not used by `kind` are NULL/0. */
typedef struct bs_sink_config {
    char *name;
    bs_sink_kind kind;
    bool implicit;    /* the "default" file sink added by the loader */
    unsigned streams; /* BS_STREAM_MASK bits of the sections that reference it (0 = unused) */
    /* batching (framework bs_sink_limits): filled with the type's API maxima by default */
    uint32_t max_events;
    uint64_t max_bytes;
    uint32_t max_age_ms;         /* default 1000 */
    uint32_t max_attempts;       /* 0 = retry forever (default), else dead-letter after */
    uint32_t backoff_initial_ms; /* default 200 */
    uint32_t backoff_max_ms;     /* default 30000 */
    /* AWS sinks */
    char *region;   /* resolved: sink region, else aws.region */
    char *endpoint; /* URL override or NULL */
    /* file */
    char *dir;             /* absolute */
    uint64_t rotate_bytes; /* default 104857600 */
    uint32_t rotate_age_s; /* default 3600 */
    bool gzip;             /* file: gzip rotated files (default false); s3: default true */
    /* cloudwatch_logs */
    char *log_group;  /* template: {hostname} {broker_id} {stream} */
    char *log_stream; /* default "{hostname}-{stream}" */
    bool auto_create;
    /* cloudwatch_metrics */
    bool query_protocol; /* protocol "query" (true) or "json" (false, default) */
    /* s3 */
    char *bucket;
    char *prefix;                       /* NULL = the s3 sink's default key template */
    uint64_t object_max_bytes;          /* default 67108864 */
    uint32_t object_max_age_s;          /* default 60 */
    uint64_t multipart_threshold_bytes; /* default 8388608, at least 5 MiB */
    /* firehose */
    char *delivery_stream;
    /* cloudtrail_lake */
    char *channel_arn; /* arn:...:cloudtrail:<region>:<account>:channel/<id> */
    char *external_id; /* NULL = none */
} bs_sink_config;

/* sinks/sink_config.c: `sinks` (named sinks; each type is a descriptor).
 * Read the `sinks` object of `obj` (the document) into a new array *out of
 * *n sinks, with one spare slot after them for the implicit "default" sink
 * (the composition root adds it). Problems are recorded in c. */
void bs_sinks_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                         bs_sink_config **out, size_t *n);
/* Free what bs_sinks_conf_parse stored (and the default sink); *out NULL and
 * *n 0 after. */
void bs_sinks_conf_free(bs_sink_config **out, size_t *n);
/* The SIGHUP rule of the sinks: adding, removing or changing any sink needs
 * a restart; then `label` is appended to what[whatlen]. */
bool bs_sinks_conf_diff(const bs_sink_config *a, size_t na, const bs_sink_config *b, size_t nb,
                        const char *label, char *what, size_t whatlen);
/* Fill *s with the defaults of a sink of `kind` (the implicit "default" sink). */
void bs_sink_conf_defaults(bs_sink_config *s, bs_sink_kind kind);
/* The sections (rows) a sink of `kind` reads, for docs and tests: *n set. */
const bs_conf_section *const *bs_sink_conf_sections(bs_sink_kind kind, size_t *n);
/* The type names, indexed by bs_sink_kind; NULL-terminated. */
extern const char *const bs_sink_kind_names[];

#endif
