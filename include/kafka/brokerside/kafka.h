/*
 * kafka.h - Kafka wire primitives, the API table and request/response headers.
 *
 * Pure functions over bytes: no sockets, no allocation. Every reader takes a
 * bs_cursor over untrusted bytes and checks each declared length or element
 * count against the bytes that remain BEFORE using it. Slices returned by
 * readers point into the caller's input and live as long as it does.
 *
 * Error convention for readers: a fixed-width read past the end is BS_E_SHORT
 * (the cursor does not move); a length or count that is negative (other than
 * the -1 null marker where nullable), larger than the remaining bytes could
 * hold, or a varint that is too long, is BS_E_MALFORMED.
 */
#ifndef BROKERSIDE_KAFKA_H
#define BROKERSIDE_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/cursor.h"
#include "brokerside/status.h"

/* Well-known API keys (the full table comes from the schemas, see bs_kafka_api()). */
enum {
    BS_KAFKA_PRODUCE = 0,
    BS_KAFKA_FETCH = 1,
    BS_KAFKA_METADATA = 3,
    BS_KAFKA_CONTROLLED_SHUTDOWN = 7,
    BS_KAFKA_FIND_COORDINATOR = 10,
    BS_KAFKA_SASL_HANDSHAKE = 17,
    BS_KAFKA_API_VERSIONS = 18,
    BS_KAFKA_DESCRIBE_QUORUM = 55,
    BS_KAFKA_DESCRIBE_CLUSTER = 60,
    BS_KAFKA_SHARE_FETCH = 78,
    BS_KAFKA_SHARE_ACKNOWLEDGE = 79,
};

/* Kafka's longest legal string (int16 length). */
#define BS_KAFKA_MAX_STRING 32767

/* A string or byte field: `p` points into the input; len == -1 means null. */
typedef struct bs_kafka_slice {
    const uint8_t *p;
    int32_t len;
} bs_kafka_slice;

/* One tagged field as found on the wire: `p`/`n` are its value bytes (in the input). */
typedef struct bs_kafka_tag {
    uint32_t tag;
    const uint8_t *p;
    size_t n;
} bs_kafka_tag;

/* STRING / NULLABLE_STRING (int16 length) or COMPACT_(NULLABLE_)STRING (uvarint
 * length+1). A null is accepted only when `nullable`; out->len == -1 then.
 * Lengths above BS_KAFKA_MAX_STRING or beyond the remaining bytes: BS_E_MALFORMED. */
bs_status bs_kafka_read_string(bs_cursor *c, bool compact, bool nullable,
                               bs_kafka_slice *out) BS_WUR;
/* BYTES / NULLABLE_BYTES (int32 length) or their compact forms; as above, the
 * length must fit the remaining bytes. */
bs_status bs_kafka_read_bytes(bs_cursor *c, bool compact, bool nullable,
                              bs_kafka_slice *out) BS_WUR;
/* An ARRAY (int32 count) or COMPACT_ARRAY (uvarint count+1) length. `*count`
 * is -1 for null (only if `nullable`). Every element takes at least
 * `min_elem_size` (>= 1) bytes, so a count the remaining bytes cannot hold is
 * BS_E_MALFORMED here, before anyone allocates for it. */
bs_status bs_kafka_read_array_len(bs_cursor *c, bool compact, bool nullable, size_t min_elem_size,
                                  int32_t *count) BS_WUR;
/* A 16-byte UUID; `*out` points into the input. */
bs_status bs_kafka_read_uuid(bs_cursor *c, const uint8_t **out) BS_WUR;
/* The header of a tagged-field section: the number of tags. A count larger than
 * the remaining bytes (each tag needs >= 2) is BS_E_MALFORMED. */
bs_status bs_kafka_read_tag_count(bs_cursor *c, uint32_t *count) BS_WUR;
/* One tagged field: tag number and its value bytes (length checked). */
bs_status bs_kafka_read_tag(bs_cursor *c, bs_kafka_tag *out) BS_WUR;
/* A whole tagged-field section, validated (tags strictly ascending, sizes in
 * bounds) and returned as one raw slice so it can be re-emitted verbatim.
 * `*ntags` (optional) receives the number of tags. */
bs_status bs_kafka_read_tag_section(bs_cursor *c, bs_kafka_slice *raw, uint32_t *ntags) BS_WUR;

/* Writers (errors are sticky in the bs_wbuf, see buf.h). len == -1 writes null. */
void bs_kafka_put_string(bs_wbuf *w, bool compact, const uint8_t *p, int32_t len);
void bs_kafka_put_bytes(bs_wbuf *w, bool compact, const uint8_t *p, int32_t len);
void bs_kafka_put_array_len(bs_wbuf *w, bool compact, int32_t count);

/* ---- API table (generated from the schemas) ---- */

typedef struct bs_kafka_api_info {
    int16_t key;
    const char *name;    /* "Produce", "Metadata", ...: the `api` metric label */
    int16_t min_version; /* valid versions in the schemas */
    int16_t max_version;
    int16_t req_flex_min;  /* first flexible request version; 0x7fff = never */
    int16_t resp_flex_min; /* first flexible response version; 0x7fff = never */
} bs_kafka_api_info;

/* The table entry of `api_key`, or NULL for a key the schemas do not define. */
const bs_kafka_api_info *bs_kafka_api(int16_t api_key);
/* The API's name, or "unknown" for keys not in the table (never NULL). */
const char *bs_kafka_api_name(int16_t api_key);
/* Every entry of the table, in ascending key order (`*n` entries). */
const bs_kafka_api_info *bs_kafka_api_table(size_t *n);
/* Kafka error code name ("NONE", "UNKNOWN_TOPIC_OR_PARTITION", ...), or NULL
 * for a code this build does not know (src/kafka/kafka_errors.inc, the
 * protocol's error table: the message schemas carry codes, not names).
 * Static storage. */
const char *bs_kafka_error_name(int16_t code);

/* Kafka error codes the sidecar answers with itself (record encryption, the
 * audit gate); the protocol's numbers, named as in kafka_errors.inc. */
#define BS_KERR_CORRUPT_MESSAGE 2
#define BS_KERR_MESSAGE_TOO_LARGE 10
#define BS_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT 43
#define BS_KERR_POLICY_VIOLATION 44
#define BS_KERR_KAFKA_STORAGE_ERROR 56
#define BS_KERR_INVALID_RECORD 87
#define BS_KERR_UNKNOWN_TOPIC_ID 100

/* ---- the readiness probe ---- */

/* Append an ApiVersions v0 request frame (size, header v1 with `client_id`,
 * empty body) to w: the one request a plain TCP or TLS upstream must answer
 * for brokerside to call it ready. */
bs_status bs_kafka_put_api_versions_probe(bs_wbuf *w, int32_t correlation_id,
                                          const char *client_id) BS_WUR;
/* Check a complete ApiVersions v0 response (the frame after its 4-byte size):
 * the same correlation id, error code 0 and a well-formed version array.
 * BS_OK, or BS_E_MALFORMED with a one-line reason in why[whylen]. */
bs_status bs_kafka_check_api_versions_probe(const uint8_t *p, size_t len, int32_t correlation_id,
                                            char *why, size_t whylen) BS_WUR;

/* Request header version (0, 1 or 2) for a request of api_key/api_version:
 * 2 from the first flexible version on, else 1; ControlledShutdown v0 uses 0.
 * Unknown key, negative version, or a version above the table's maximum for an
 * API that has no flexible versions: BS_E_UNSUPPORTED. */
bs_status bs_kafka_request_header_version(int16_t api_key, int16_t api_version, int *hv) BS_WUR;
/* Response header version (0 or 1): 1 for flexible versions, except that
 * ApiVersions responses always use 0. Errors as above. */
bs_status bs_kafka_response_header_version(int16_t api_key, int16_t api_version, int *hv) BS_WUR;

/* ---- headers ---- */

typedef struct bs_kafka_request_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    int header_version;       /* 0, 1 or 2 */
    bs_kafka_slice client_id; /* len -1: null or absent (v0) */
    bs_kafka_slice tags;      /* raw tagged-field section (v2), len 0 otherwise */
    size_t header_len;        /* bytes the header took: the body starts here */
} bs_kafka_request_header;

/* Parse a request header at the start of a frame payload (after the 4-byte
 * size). On BS_E_UNSUPPORTED (API or version not in the table) api_key,
 * api_version and correlation_id are still filled in, so the caller can forward
 * the frame untouched; header_len is then unknown (0). Truncated or malformed:
 * BS_E_MALFORMED. */
bs_status bs_kafka_parse_request_header(const uint8_t *p, size_t len,
                                        bs_kafka_request_header *h) BS_WUR;

typedef struct bs_kafka_response_header {
    int32_t correlation_id;
    bs_kafka_slice tags; /* raw tagged-field section (v1), len 0 for v0 */
    size_t header_len;
} bs_kafka_response_header;

/* Parse a response header of version `hv` (0 or 1, from
 * bs_kafka_response_header_version of the matching request). */
bs_status bs_kafka_parse_response_header(const uint8_t *p, size_t len, int hv,
                                         bs_kafka_response_header *h) BS_WUR;
/* Write a request header (version from the table; client_id len -1 = null, and
 * an empty tagged section for v2). For tests and tools. */
bs_status bs_kafka_put_request_header(bs_wbuf *w, int16_t api_key, int16_t api_version,
                                      int32_t correlation_id, const uint8_t *client_id,
                                      int32_t client_id_len) BS_WUR;

#endif
