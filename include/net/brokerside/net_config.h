/*
 * net_config.h - the configuration net/ owns: listeners (with their TLS
 * termination and origination settings) and limits, the option tables that
 * read them (net/listener_config.c, net/tls_config.c), and bs_net_config,
 * what the server (net.h) reads of a loaded configuration.
 *
 * The daemon's bs_config (config.h) embeds these structs; docs/configuration.md
 * describes every key.
 */
#ifndef BROKERSIDE_NET_CONFIG_H
#define BROKERSIDE_NET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/confmap.h"
#include "brokerside/log.h"

typedef enum bs_protocol {
    BS_PROTOCOL_KAFKA = 0, /* Kafka-aware session (framing, rewriting, metrics) */
    BS_PROTOCOL_TCP = 1,   /* opaque bytes */
} bs_protocol;

typedef enum bs_client_auth {
    BS_CLIENT_AUTH_NONE = 0,
    BS_CLIENT_AUTH_OPTIONAL = 1,
    BS_CLIENT_AUTH_REQUIRED = 2,
} bs_client_auth;

/* TLS termination on a listener (`listeners[i].tls`). */
/* A network: `family` AF_INET or AF_INET6, `prefix` leading bits of `addr`
 * (network byte order; 4 bytes used for AF_INET). */
typedef struct bs_cidr {
    int family;
    uint8_t prefix;
    uint8_t addr[16];
} bs_cidr;

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
    /* PROXY protocol (net/proxy_protocol.h): every connection must start with
     * a v1 or v2 header and come from one of proxy_sources. */
    bool proxy_protocol;
    bs_cidr *proxy_sources; /* `proxy_protocol_sources`; required with proxy_protocol */
    size_t n_proxy_sources;
} bs_listener_config;

typedef struct bs_limits_config {
    uint32_t max_connections;   /* per process, client connections; default 10000 */
    uint32_t buffer_bytes;      /* per direction per connection; default 65536 */
    double handshake_timeout_s; /* default 10 */
    double idle_timeout_s;      /* default 600 (Kafka clients idle ~9 min) */
    double connect_timeout_s;   /* upstream connect; default 5 */
    double shutdown_grace_s;    /* SIGTERM drain deadline; default 30 */
} bs_limits_config;

/* What the server (bs_server_new / bs_server_reload) reads of a loaded
 * configuration: a view the loader fills (bs_config.net), pointing into the
 * same config, so it lives exactly as long as that config. */
typedef struct bs_net_config {
    const char *path;                     /* the config file, for messages */
    uint32_t workers;                     /* worker threads; 0 = 1 */
    bs_log_level log_level;               /* applied on reload */
    const bs_listener_config *listeners;  /* n_listeners, in file order */
    size_t n_listeners;
    bs_limits_config limits;
    double probe_interval_s;              /* readiness probe of upstreams (admin section) */
    /* The `kafka` section (proxy_config.h), opaque to net/: handed to every
     * session as bs_session_info.kafka. */
    const struct bs_kafka_config *kafka;
} bs_net_config;

/* net/tls_config.c: `listeners[i].tls`, `listeners[i].upstream_tls`. */
extern const bs_conf_section bs_tls_server_conf;
extern const bs_conf_section bs_tls_client_conf;

/* net/listener_config.c: `listeners` (one listener's rows; the array and the
 * cross-listener rules are bs_listeners_conf_*), `limits`. */
extern const bs_conf_section bs_listener_conf;
extern const bs_conf_section bs_limits_conf;
/* Read the `listeners` array of `obj` (the document) into a new array
 * *out of *n listeners (a CUSTOM row's reader, with the destination given
 * by the composition root): every listener with bs_listener_conf, names
 * unique, binds not overlapping. Problems are recorded in c. */
void bs_listeners_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                             const char *path, bs_listener_config **out, size_t *n);
/* Free what bs_listeners_conf_parse stored; *out NULL and *n 0 after. */
void bs_listeners_conf_free(bs_listener_config **out, size_t *n);
/* The SIGHUP rule of the listeners: true when the two arrays differ in what
 * only a restart applies (their number, or a listener row flagged
 * BS_CONF_RESTART: name, bind, upstream, protocol, broker_id, tls or
 * upstream_tls on/off); then "the number of listeners" or each
 * "listeners[i].key" is appended to what[whatlen] (bs_conf_list_add). */
bool bs_listeners_conf_diff(const bs_listener_config *a, size_t na, const bs_listener_config *b,
                            size_t nb, char *what, size_t whatlen);
/* True when two bind endpoints would compete for the same port. */
bool bs_conf_binds_overlap(const bs_endpoint *a, const bs_endpoint *b);

#endif
