/*
 * proxy_config.h - the configuration proxy/ owns: the `kafka` section
 * (advertised addresses, frame bounds), its option table and the
 * advertised-address lookups (proxy/advertise.c).
 */
#ifndef BROKERSIDE_PROXY_CONFIG_H
#define BROKERSIDE_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/confmap.h"

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

/* proxy/advertise.c: `kafka` (advertise map or template, max_frame_bytes). */
extern const bs_conf_section bs_kafka_conf;

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


#endif
