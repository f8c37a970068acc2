/*
 * observe_config.h - the configuration observe/ owns: the `audit`,
 * `metrics` and `logs` sections (the event producers: audit trail, EMF
 * metric snapshots, broker log tailer) and their option tables
 * (observe/event_config.c). Each names the sinks its stream goes to; the
 * composition root links those names to the sinks section.
 */
#ifndef BROKERSIDE_OBSERVE_CONFIG_H
#define BROKERSIDE_OBSERVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/confmap.h"

/* Values match the order of bs_audit_data_mode in audit.h. */
typedef enum bs_data_events {
    BS_DATA_EVENTS_AGGREGATE = 0,
    BS_DATA_EVENTS_EACH = 1,
    BS_DATA_EVENTS_OFF = 2,
} bs_data_events;

typedef enum bs_signing_algorithm {
    BS_SIGNING_DETECT = 0, /* from the key file: PEM Ed25519 or raw/hex HMAC key */
    BS_SIGNING_HMAC_SHA256 = 1,
    BS_SIGNING_ED25519 = 2,
} bs_signing_algorithm;

typedef struct bs_audit_config {
    bool enabled;                           /* section present and not null */
    bs_data_events data_events;             /* default aggregate */
    int format;                             /* bs_audit_format: 0 cloudtrail (default), 1 ocsf */
    uint32_t aggregate_interval_s;          /* default 60 */
    char *signing_key_file;                 /* NULL = hash chain without signed digests (warned) */
    bs_signing_algorithm signing_algorithm; /* default detect */
    uint32_t digest_interval_s;             /* default 300 */
    uint32_t digest_every_events;           /* also seal after this many events; default 1000,
                                               0 = only by interval and at shutdown */
    uint32_t aggregate_max_keys;            /* aggregator bound; default 10000 */
    bs_sink_refs sinks;                     /* default ["default"] */
} bs_audit_config;

typedef struct bs_metrics_config {
    bool enabled;
    uint32_t interval_s; /* default 60 */
    char *ns;            /* CloudWatch namespace of the EMF events; default "Kafka/Brokerside" */
    int level;           /* bs_metrics_level (metrics.h); default per_topic_per_broker; live */
    bs_sink_refs sinks;
} bs_metrics_config;

typedef enum bs_log_format {
    BS_LOG_FORMAT_LOG4J = 0,
    BS_LOG_FORMAT_PLAIN = 1,
} bs_log_format;

typedef struct bs_log_file_config {
    char *path; /* absolute path or glob(3) pattern */
    bs_log_format format;
} bs_log_file_config;

typedef struct bs_logs_config {
    bool enabled;
    bs_log_file_config *files;
    size_t n_files;
    int32_t tz_offset_min; /* zone of log4j timestamps, minutes east of UTC; default 0 */
    bool start_at_end;     /* new files without a checkpoint: skip existing content */
    char *state_file;      /* checkpoint; default <spool.dir>/logtail.state */
    bs_sink_refs sinks;
} bs_logs_config;

/* observe/event_config.c: `audit`, `metrics`, `logs` (off when absent or null). */
extern const bs_conf_section bs_audit_conf;
extern const bs_conf_section bs_metrics_conf;
extern const bs_conf_section bs_logs_conf;

#endif
