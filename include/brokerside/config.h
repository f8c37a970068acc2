/*
 * config.h - the configuration model and its loader.
 *
 * The file is JSON with // and / * * / comments. Unknown keys are errors.
 * Every error names the file, the JSON path (e.g. `listeners[0].tls.cert`)
 * and the problem; loading collects all errors instead of stopping at the
 * first. Defaults are applied by the loader, so consumers never see an
 * unset field. All strings are owned by the bs_config and freed with it.
 * See docs/configuration.md for every key.
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

typedef struct bs_kafka_config {
    bs_advertise_entry *advertise; /* explicit node-id map */
    size_t n_advertise;
    char *advertise_template; /* "kafka-{id}.example.com:9094" or NULL */
    uint32_t max_frame_bytes; /* default 104857600 */
} bs_kafka_config;

typedef struct bs_admin_config {
    bool enabled;            /* false when "admin": null */
    bs_endpoint bind;        /* default 127.0.0.1:9644 */
    double probe_interval_s; /* readiness probe of upstreams; default 5 */
} bs_admin_config;

typedef struct bs_config {
    char *path;       /* file it was loaded from */
    uint32_t workers; /* resolved: 0 in the file means one per online core */
    bs_log_level log_level;
    bs_listener_config *listeners;
    size_t n_listeners;
    bs_limits_config limits;
    bs_kafka_config kafka;
    bs_admin_config admin;
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
/* Find the advertised address for `node_id` (explicit map first, then the
 * template, every "{id}" replaced by the decimal id). Writes a NUL-terminated
 * host (IPv6 without brackets) into host[hostlen]. BS_E_NOT_FOUND if the node
 * is unmapped (or negative), BS_E_TOO_LARGE if hostlen is too small,
 * BS_E_MALFORMED if the template yields no valid port for this id (e.g.
 * "h:909{id}" with id 10). Thread-safe: reads `k` only. */
bs_status bs_config_advertised(const bs_kafka_config *k, int32_t node_id, char *host,
                               size_t hostlen, uint16_t *port) BS_WUR;
/*
 * SIGHUP rule: true when `new_cfg` differs from `old_cfg` in a setting that
 * only a restart can apply (workers, the number of listeners, a listener's
 * name/bind/upstream/protocol/broker_id, turning tls or upstream_tls on or
 * off, admin enabled/bind). Everything else (TLS files and settings, limits,
 * log_level, kafka.advertise, kafka.max_frame_bytes, admin.probe_interval_s)
 * may be applied live. Writes a comma-separated list of the offending keys
 * into what[whatlen] (truncated if needed; may be NULL when whatlen is 0).
 */
bool bs_config_needs_restart(const bs_config *old_cfg, const bs_config *new_cfg, char *what,
                             size_t whatlen);

#endif
