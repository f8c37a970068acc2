/*
 * config.h - the configuration model and its loader.
 *
 * The file is JSON with // and / * * / comments. Unknown keys are errors.
 * Every error names the file, the JSON path (e.g. `listeners[0].tls.cert`)
 * and the problem; loading collects all errors instead of stopping at the
 * first. Defaults are applied by the loader, so consumers never see an
 * unset field. All strings are owned by the bs_config and freed with it.
 * See docs/configuration.md for every key.
 *
 * Ownership: the structs are the data model every module reads (core); the
 * keys are declared by each module's option table (config_tables.h); the
 * loader, the rules across sections and the SIGHUP rule
 * (bs_config_load/parse/free, bs_config_needs_restart) are the daemon's
 * (daemon/config.c) and only the composition root calls them.
 * bs_config_advertised is proxy/advertise.c, bs_config_topic_rule is
 * crypto/encryption_config.c.
 */
#ifndef BROKERSIDE_CONFIG_H
#define BROKERSIDE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "brokerside/log.h"
#include "brokerside/status.h"

typedef enum bs_protocol {
    BS_PROTOCOL_KAFKA = 0, /* Kafka-aware session (framing, rewriting, metrics) */
    BS_PROTOCOL_TCP = 1,   /* opaque bytes */
} bs_protocol;

typedef enum bs_client_auth {
    BS_CLIENT_AUTH_NONE = 0,
    BS_CLIENT_AUTH_OPTIONAL = 1,
    BS_CLIENT_AUTH_REQUIRED = 2,
} bs_client_auth;

/* A resolved socket address plus the text it came from ("host:port"). */
typedef struct bs_endpoint {
    char *text; /* as written in the config */
    char *host; /* host part, brackets stripped for IPv6 */
    uint16_t port;
    struct sockaddr_storage addr; /* resolved at load time */
    socklen_t addrlen;
} bs_endpoint;

/* TLS termination on a listener (`listeners[i].tls`). */
typedef struct bs_tls_server_config {
    char *cert_file;      /* PEM chain, required */
    char *key_file;       /* PEM private key, required */
    char *client_ca_file; /* required unless client_auth is none */
    char *crl_file;       /* optional CRL (PEM) checked against client certificates */
    bs_client_auth client_auth;
    int min_version;    /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    char *ciphers;      /* TLS 1.2 cipher list (OpenSSL syntax); loader fills the default */
    char *ciphersuites; /* TLS 1.3 suites; loader fills the default */
} bs_tls_server_config;

/* TLS origination towards the upstream (`listeners[i].upstream_tls`). */
typedef struct bs_tls_client_config {
    char *ca_file;     /* trust anchors; NULL = system default store */
    char *cert_file;   /* optional client certificate (PEM) */
    char *key_file;    /* required with cert_file */
    char *server_name; /* SNI and name to verify; default: upstream host */
    bool verify;       /* default true; false only with an explicit "verify": false */
    int min_version;
    char *ciphers;
    char *ciphersuites;
} bs_tls_client_config;

typedef struct bs_listener_config {
    char *name;                         /* unique; default "listener<i>" */
    bs_endpoint bind;                   /* where clients connect */
    bs_endpoint upstream;               /* the broker */
    bs_protocol protocol;               /* default kafka */
    bs_tls_server_config *tls;          /* NULL = plaintext listener */
    bs_tls_client_config *upstream_tls; /* NULL = plaintext to the upstream */
    int32_t broker_id;                  /* the upstream's node id, -1 if unknown */
    char *advertised_host; /* `advertised` "host:port" (kafka only), NULL if unset */
    uint16_t advertised_port;
} bs_listener_config;

typedef struct bs_limits_config {
    uint32_t max_connections;   /* per process, client connections; default 10000 */
    uint32_t buffer_bytes;      /* per direction per connection; default 65536 */
    double handshake_timeout_s; /* default 10 */
    double idle_timeout_s;      /* default 600 (Kafka clients idle ~9 min) */
    double connect_timeout_s;   /* upstream connect; default 5 */
    double shutdown_grace_s;    /* SIGTERM drain deadline; default 30 */
} bs_limits_config;

typedef struct bs_advertise_entry {
    int32_t node_id;
    char *host;
    uint16_t port;
} bs_advertise_entry;

/* Zero-config mapping, one per kafka listener (derived by the loader): a
 * broker that advertises `upstream` is announced as host:port. Pointers
 * into the same bs_config's listeners. */
typedef struct bs_kafka_route {
    const char *listener;        /* the listener's name */
    const bs_endpoint *upstream; /* the broker address it fronts */
    const char *host;            /* the listener's `advertised` host, else its bind host unless
                                    that is a wildcard (0.0.0.0, ::) or the port is 0;
                                    NULL = nothing derivable */
    uint16_t port;
    int32_t node_id; /* the listener's broker_id: only this node is derived; -1 = any node
                        whose address identifies it (no other node advertises the same) */
} bs_kafka_route;

typedef struct bs_kafka_config {
    bs_kafka_route *routes; /* one per kafka listener, in listener order */
    size_t n_routes;
    bs_advertise_entry *advertise; /* explicit node-id map */
    size_t n_advertise;
    char *advertise_template; /* "kafka-{id}.example.com:9094" or NULL */
    uint32_t max_frame_bytes; /* default 104857600 */
    /* Requests the sidecar must hold whole (validated, hooked, audited) are
     * bounded tighter than streamed frames (docs/kafka-protocol.md, "Memory
     * under hostile clients"). 0 in a config built by hand: no such bound. */
    uint32_t max_held_request_bytes; /* per request held whole; default 16 MiB */
    uint64_t held_bytes_budget;      /* all held requests of the process; default 256 MiB */
    double frame_timeout_s;          /* a started request must complete within; default 30 */
} bs_kafka_config;

typedef struct bs_admin_config {
    bool enabled;            /* false when "admin": null */
    bs_endpoint bind;        /* default 127.0.0.1:9644 */
    double probe_interval_s; /* readiness probe of upstreams; default 5 */
} bs_admin_config;

/* ---- AWS, encryption, events, sinks, spool (issues 4-6) ----------------- */

/* `aws`: settings shared by the KMS keyring and the AWS sinks. */
typedef struct bs_aws_config {
    char *region;             /* resolved: the file, else AWS_REGION, else AWS_DEFAULT_REGION
                                 at load time; NULL only if none was set and nothing needs it */
    bool region_from_env;     /* true when `region` came from the environment */
    char *profile;            /* shared-config profile; NULL = AWS_PROFILE / "default" */
    char *access_key_id;      /* explicit credentials (discouraged), all NULL by default */
    char *secret_access_key;  /* secret: wiped by bs_config_free, never printed */
    char *session_token;      /* secret: wiped by bs_config_free, never printed */
    uint32_t max_attempts;    /* HTTP attempts per call (1 = no retry); default 4 */
    double connect_timeout_s; /* default 3 */
    double request_timeout_s; /* whole attempt; default 30 */
    char *ca_file;            /* extra trust anchors (PEM) for endpoints; NULL = system store */
} bs_aws_config;

typedef enum bs_kms_type {
    BS_KMS_LOCAL = 0, /* master key file (bs_keyring_local_open) */
    BS_KMS_AWS = 1,   /* AWS KMS JSON API or a compatible endpoint */
} bs_kms_type;

/* One `encryption.topics[i]` rule. */
typedef struct bs_topic_rule {
    char *match; /* fnmatch(3) pattern (flags 0) over the topic name */
    char *key;   /* key reference: envelope keyref / KMS KeyId */
} bs_topic_rule;

/* What the daemon logs (WARN) at start when !cfg->encryption.enabled; one
 * %s: the config file path. Kept here so every entry point says the same. */
#define BS_CONFIG_ENCRYPTION_OFF_FMT                                                               \
    "encryption at rest is OFF: no \"encryption\" section in %s; records reach the broker in "     \
    "plaintext"

typedef struct bs_encryption_config {
    bool enabled; /* false when the section is absent or null: the daemon must log
                     "encryption at rest is OFF" at start (docs/configuration.md) */
    bs_kms_type kms_type;
    char *key_file;        /* local: master key file (exists, no group/other permission) */
    char *kms_region;      /* aws: resolved (kms.region, else aws.region) */
    char *kms_endpoint;    /* aws: URL override or NULL for https://kms.<region>.amazonaws.com */
    bs_topic_rule *topics; /* in file order: the first match wins */
    size_t n_topics;
    bool reject_unmatched;    /* unmatched_topics "reject" (true) or "plaintext" (false, default) */
    uint64_t dek_max_records; /* default 1000000, 1..2^28 (BS_DEK_HARD_MAX_RECORDS) */
    uint64_t dek_max_age_s;   /* default 3600, 1..86400 */
    uint32_t decrypt_cache_max_entries; /* default 10000 */
    uint64_t decrypt_cache_ttl_s;       /* default 3600 */
} bs_encryption_config;

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

/* The streams of events and the sinks they go to. */
typedef struct bs_sink_refs {
    char **names; /* sink names, each defined in bs_config.sinks */
    size_t n;
} bs_sink_refs;

typedef struct bs_audit_config {
    bool enabled;                           /* section present and not null */
    bs_data_events data_events;             /* default aggregate */
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

/* `lag`: the consumer-lag monitor (lag.h); off when absent or null. */
typedef struct bs_lag_config {
    bool enabled;
    uint32_t interval_s;     /* default 30; live on SIGHUP */
    char *listener;          /* whose upstream, upstream_tls and broker_id; default: first kafka
                                listener */
    char *bootstrap;         /* "host:port" of a broker listener advertising reachable
                                addresses; NULL: the listener's upstream */
    int sasl_mechanism;      /* 0 none (default), 1 PLAIN, 2 SCRAM-SHA-256, 3 SCRAM-SHA-512 */
    char *sasl_username;     /* required with a mechanism */
    char *sasl_password_file; /* required with a mechanism; owner-only (SECRET_FILE) */
    uint32_t max_groups;     /* groups reported per poll; default 10000 */
    uint32_t max_partitions; /* per-partition lag rows per poll; default 100000 */
    uint32_t timeout_s;      /* per request to the cluster; default 10 */
} bs_lag_config;

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

typedef enum bs_sink_kind {
    BS_SINK_FILE = 0,
    BS_SINK_CLOUDWATCH_LOGS = 1,
    BS_SINK_CLOUDWATCH_METRICS = 2,
    BS_SINK_S3 = 3,
    BS_SINK_FIREHOSE = 4,
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
} bs_sink_config;

typedef struct bs_spool_config {
    char *dir;                  /* absolute; NULL when no stream is enabled */
    uint64_t max_bytes;         /* default 1 GiB, at least 16 MiB */
    uint64_t segment_bytes;     /* default 64 MiB, 1 MiB..max_bytes/4 */
    uint32_t fsync_interval_ms; /* default 100 */
    uint32_t audit_sync_ms;   /* group-commit window of audit fsyncs; default 100, 0..1000 */
} bs_spool_config;

typedef struct bs_config {
    char *path;       /* file it was loaded from */
    uint32_t workers; /* resolved: 0 in the file means one per online core */
    bs_log_level log_level;
    bs_log_style log_style; /* `log_format`: "text" (default) or "json" */
    bs_listener_config *listeners;
    size_t n_listeners;
    bs_limits_config limits;
    bs_kafka_config kafka;
    bs_admin_config admin;
    bs_aws_config aws;
    bs_encryption_config encryption;
    bs_audit_config audit;
    bs_metrics_config metrics;
    bs_lag_config lag;
    bs_logs_config logs;
    bs_sink_config *sinks; /* defined sinks in file order, then the implicit "default" */
    size_t n_sinks;
    bs_spool_config spool;
    /* `identity` (identity.h, parsed by its module): never NULL after a load */
    struct bs_identity_config *identity;
    /* `authorization` (policy.h, parsed by its module): NULL = no policy */
    struct bs_policy *authorization;
    /* What an operator would regret, found by the loader in a valid file
     * (bs_config_warnings): each "FILE: message". The daemon logs them at
     * start and on reload; --check-config prints them (--strict: errors). */
    struct bs_config_errors *warnings;
} bs_config;

/* One problem found while loading, already formatted as
 * "FILE: PATH: message". */
typedef struct bs_config_errors {
    char **msgs;
    size_t n;
} bs_config_errors;

/*
 * Load and validate `path`. On success *out owns a fully defaulted config.
 * On failure returns BS_E_CONFIG (or BS_E_IO if the file cannot be read,
 * BS_E_NOMEM) and appends every problem found to `errs` (caller frees with
 * bs_config_errors_free). Certificate and key files are checked to exist and
 * be readable here; whether they parse is checked when TLS contexts are built.
 */
bs_status bs_config_load(const char *path, bs_config **out, bs_config_errors *errs) BS_WUR;
/* Same as bs_config_load but from memory (`text` need not be NUL-terminated);
 * `path` is used in messages and its directory is the base of relative file
 * paths, as if the text had been read from it. */
bs_status bs_config_parse(const char *path, const char *text, size_t len, bs_config **out,
                          bs_config_errors *errs) BS_WUR;
/* Free a config and every string it owns; NULL is a no-op. */
void bs_config_free(bs_config *cfg);
/* Free every message in errs and reset it to empty (n = 0), ready for reuse. */
void bs_config_errors_free(bs_config_errors *errs);
/* Append one printf-formatted message to `list` (control characters become
 * '?', so one message stays one line). BS_E_NOMEM if it could not grow. */
bs_status bs_config_errors_addf(bs_config_errors *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) BS_WUR;

/*
 * The warnings of a valid config (config_warnings.c), appended to `out` as
 * "FILE: message": things that work but that an operator would regret, e.g.
 * a kafka listener with no address to announce for its broker, encryption at
 * rest off, audit digests unsigned, the admin endpoint or a plaintext
 * listener reachable from the network, the broker reached in plaintext over
 * the network or without certificate checks, AWS secrets in the file, an
 * unused sink, max_connections beyond this process's open-file limit.
 * bs_config_load runs it and keeps the result in cfg->warnings.
 */
bs_status bs_config_warnings(const bs_config *cfg, bs_config_errors *out) BS_WUR;

/* True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
bool bs_endpoint_is_loopback(const bs_endpoint *e);
/* True for the wildcard addresses 0.0.0.0 and ::. */
bool bs_endpoint_is_wildcard(const bs_endpoint *e);

/* Find the advertised address for `node_id` (explicit map first, then the
 * template, every "{id}" replaced by the decimal id). Writes a NUL-terminated
 * host (IPv6 without brackets) into host[hostlen]. BS_E_NOT_FOUND if the node
 * is unmapped (or negative), BS_E_TOO_LARGE if hostlen is too small,
 * BS_E_MALFORMED if the template yields no valid port for this id (e.g.
 * "h:909{id}" with id 10). Thread-safe: reads `k` only. */
bs_status bs_config_advertised(const bs_kafka_config *k, int32_t node_id, char *host,
                               size_t hostlen, uint16_t *port) BS_WUR;
/*
 * Zero-config mapping: the route of a kafka listener for node `node_id`,
 * which a broker advertised at host[hostlen] (not NUL-terminated):port. The
 * listener's upstream must be that address (hosts match case-insensitively
 * as text, or as IP literals equal to the upstream's resolved address:
 * "127.0.0.1" matches an upstream "localhost:9092" that resolved to it), it
 * must have an address to announce (route->host), and the node must be its
 * broker: its broker_id when set, else any node whose address is not
 * `shared` with another node of the same response (brokers that all
 * advertise 127.0.0.1:9092 cannot be told apart by address: set broker_id).
 * When several listeners qualify, the one named `via` (the listener the
 * client came through; may be NULL) wins, else the first. NULL when none
 * does: the node needs kafka.advertise. Callers try bs_config_advertised
 * first (an explicit entry always wins). Thread-safe: reads `k` only; no DNS.
 */
const bs_kafka_route *bs_config_route_for(const bs_kafka_config *k, int32_t node_id,
                                          const char *host, size_t hostlen, int32_t port,
                                          bool shared, const char *via);
/* The rule of `enc` for `topic` (len bytes, need not be NUL-terminated):
 * the first rule whose pattern matches, or NULL when none does (the caller
 * then applies reject_unmatched). Thread-safe: reads `enc` only. */
const bs_topic_rule *bs_config_topic_rule(const bs_encryption_config *enc, const char *topic,
                                          size_t len);
/* The sink named `name`, or NULL. */
const bs_sink_config *bs_config_sink(const bs_config *cfg, const char *name);

/*
 * SIGHUP rule: true when `new_cfg` differs from `old_cfg` in a setting that
 * only a restart can apply (workers, the number of listeners, a listener's
 * name/bind/upstream/protocol/broker_id, turning tls or upstream_tls on or
 * off, admin enabled/bind, the aws section, encryption on/off and its kms,
 * decrypt_cache, audit/metrics/logs on/off, their sinks lists, the audit
 * signing key, logs files/tz/state, every sink, spool). Everything else (TLS
 * files and settings, limits, log_level, kafka.advertise,
 * kafka.max_frame_bytes, admin.probe_interval_s, encryption.topics,
 * unmatched_topics, dek, audit data_events and intervals, metrics interval_s
 * and namespace) may be applied live. Writes a comma-separated list of the offending keys
 * into what[whatlen] (truncated if needed; may be NULL when whatlen is 0).
 */
bool bs_config_needs_restart(const bs_config *old_cfg, const bs_config *new_cfg, char *what,
                             size_t whatlen);

#endif
