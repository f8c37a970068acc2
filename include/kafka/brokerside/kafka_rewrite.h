/*
 * kafka_rewrite.h - broker address rewriting and ApiVersions capping.
 *
 * Every broker endpoint a response carries is replaced with the sidecar
 * address of that node: Metadata brokers[], FindCoordinator host/port (v0-3)
 * and coordinators[] (v4+), DescribeCluster brokers[], the NodeEndpoints
 * tagged field of Produce (v10+), Fetch (v16+), ShareFetch and ShareAcknowledge
 * responses, and DescribeQuorum (v2+) nodes[].listeners[] (controller
 * addresses). Endpoints are found generically: any decoded struct with Host and
 * Port fields present at the message's version; its node is its own NodeId
 * (or BrokerId) field, else the nearest enclosing struct's. The body is decoded
 * with the schema codec and re-encoded, so lengths (compact or not) are
 * recomputed.
 */
#ifndef BROKERSIDE_KAFKA_REWRITE_H
#define BROKERSIDE_KAFKA_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/status.h"

/* Longest advertised host name accepted from a map function (DNS limit). */
#define BS_KAFKA_MAX_HOST 255

/* An endpoint as the broker wrote it in a response: the host bytes (not
 * NUL-terminated, may be empty) and the port. `shared` is true when another
 * node of the same response advertises the same host:port (hosts compared
 * case-insensitively), or when the response holds too many endpoints to tell
 * (BS_KAFKA_MAX_ENDPOINTS): the address then does not identify the node. */
typedef struct bs_kafka_addr {
    const char *host;
    size_t host_len;
    int32_t port;
    bool shared;
} bs_kafka_addr;

/* Endpoints per response compared for bs_kafka_addr.shared. */
#define BS_KAFKA_MAX_ENDPOINTS 1024

/* Maps a broker node id to the address clients must use. `was` is the
 * address the broker advertised for it in this response (a map function may
 * derive the answer from it, e.g. the sidecar fronting that very address).
 * Write a NUL-terminated host (at most hostlen-1 bytes) and the port; return
 * BS_OK, or BS_E_NOT_FOUND for a node that has no advertised address. */
typedef bs_status (*bs_kafka_map_fn)(void *arg, int32_t node_id, const bs_kafka_addr *was,
                                     char *host, size_t hostlen, int32_t *port);

/* Could a response of api_key/api_version carry broker endpoints? (Metadata,
 * FindCoordinator, DescribeCluster, ShareFetch, ShareAcknowledge: always;
 * Produce v10+, Fetch v16+, DescribeQuorum v2+.) The proxy decodes only these
 * responses. */
bool bs_kafka_response_has_endpoints(int16_t api_key, int16_t api_version);

/* The reference rule behind bs_kafka_response_has_endpoints, walking the
 * schema by field names (slow; the generated endpoint_versions masks cache it). */
bool bs_kafka_struct_has_endpoints(const bs_kafka_struct *s, int16_t v);

/* Rewrite the endpoints in a response body (after the response header).
 * `arena` may be NULL (a private one bounded to 1 MiB + 32 x len is used);
 * a caller-kept arena is reset on entry and holds the tree afterwards.
 * On BS_OK: if *changed, `out` (appended to) holds the new body; if not (no
 * endpoint in it, or an API without endpoints), `out` is untouched and the
 * original may be forwarded as is.
 * BS_E_NOT_FOUND: map_fn did not know node `*bad_node`; BS_E_MALFORMED /
 * BS_E_UNSUPPORTED: the body does not decode at that version. On any error the
 * original must NOT be forwarded (it would leak a real broker address); `out`
 * may hold partial bytes.
 * A FindCoordinator entry with a non-zero error code and node id -1 is not
 * mapped: its host/port pass through if the host is empty, else they are
 * blanked ("" / -1) so no address leaks. */
bs_status bs_kafka_rewrite_response(int16_t api_key, int16_t api_version, const uint8_t *body,
                                    size_t len, bs_kafka_map_fn map_fn, void *map_arg,
                                    bs_kafka_arena *arena, bs_wbuf *out, bool *changed,
                                    int32_t *bad_node) BS_WUR;

/* The highest version of `api_key` clients may use through the proxy, or -1
 * for API keys not in the generated table (or with no versions left). One
 * place: the table's max version for every API (newer versions have unknown
 * headers and could carry endpoints where older ones did not), lowered for
 * the decoded APIs (Produce, Fetch, Metadata, FindCoordinator, ApiVersions,
 * DescribeCluster, DescribeQuorum, ShareFetch, ShareAcknowledge) to the codec's
 * schemas and by a small policy table (Produce v13, topic ids only). */
int16_t bs_kafka_max_supported_version(int16_t api_key);

/* Cap the ApiVersions response body (of `version`) so each API's max version
 * is at most bs_kafka_max_supported_version(); min versions are kept (librdkafka
 * turns compression off if Produce v0-2 vanish). Entries the proxy cannot serve
 * at all (an unknown API key, or a broker min above the cap) are dropped, so a
 * client never uses an API or version the proxy neither parses nor capped. A
 * broker answering an unsupported request version with UNSUPPORTED_VERSION
 * (35) encodes the body as v0: that is handled. *changed and `out` as for
 * bs_kafka_rewrite_response. */
bs_status bs_kafka_rewrite_api_versions(const uint8_t *body, size_t len, int16_t version,
                                        bs_wbuf *out, bool *changed) BS_WUR;

/* The whole response path for one frame, for the proxy: `payload`/`len` is a
 * response frame after its 4-byte size, answering the request described by
 * (api_key, api_version). Parses the response header of the right version,
 * then caps ApiVersions or rewrites endpoints. If *changed, `out` (appended
 * to) holds the complete new frame: size, the original header bytes, the new
 * body. If not, `out` is untouched and the original frame may be forwarded.
 * Errors as bs_kafka_rewrite_response (BS_E_MALFORMED also for a bad header);
 * on any error the original must not be forwarded if
 * bs_kafka_response_has_endpoints() or it is ApiVersions. */
bs_status bs_kafka_rewrite_response_frame(int16_t api_key, int16_t api_version,
                                          const uint8_t *payload, size_t len,
                                          bs_kafka_map_fn map_fn, void *map_arg,
                                          bs_kafka_arena *arena, bs_wbuf *out, bool *changed,
                                          int32_t *bad_node) BS_WUR;

#endif
