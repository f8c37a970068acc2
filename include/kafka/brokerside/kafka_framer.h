/*
 * kafka_framer.h - cutting a Kafka byte stream into frames, the per-connection
 * correlation table, and the Produce acks peek.
 *
 * Frames are `int32 size` + `size` bytes. The framer only looks at the 4-byte
 * prefix and reports the frame's total length, so the caller can forward
 * frames it does not change straight out of its buffer without copying.
 */
#ifndef BROKERSIDE_KAFKA_FRAMER_H
#define BROKERSIDE_KAFKA_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/status.h"

/* The smallest legal payload: a response header v0 is a 4-byte correlation id. */
#define BS_KAFKA_MIN_FRAME_PAYLOAD 4

/* Given `avail` bytes accumulated for one direction at `p`, report the next
 * frame's total length (4 + size) in `*frame_len` once the size prefix is
 * there; the frame is complete when avail >= *frame_len. BS_E_SHORT: fewer
 * than 4 bytes. BS_E_MALFORMED: negative size or a payload shorter than
 * BS_KAFKA_MIN_FRAME_PAYLOAD. BS_E_TOO_LARGE: size > max_frame_bytes (the
 * connection must be closed: the stream cannot be resynchronised). */
bs_status bs_kafka_frame_length(const uint8_t *p, size_t avail, size_t max_frame_bytes,
                                size_t *frame_len) BS_WUR;

/* Does this look like a TLS record (ClientHello/alert) rather than a Kafka
 * frame? For the "TLS on a plaintext port" diagnostic; needs >= 3 bytes. */
bool bs_kafka_looks_like_tls(const uint8_t *p, size_t avail);

/* One request waiting for its response. */
typedef struct bs_kafka_inflight {
    int32_t correlation_id;
    int16_t api_key;
    int16_t api_version;
    uint64_t start_ns; /* caller's clock, e.g. when the request was forwarded */
    bool expects_response;
} bs_kafka_inflight;

/* A bounded FIFO: Kafka answers requests in order on each connection, so a
 * response must match the oldest entry. O(1) push and pop. */
typedef struct bs_kafka_corr_table {
    bs_kafka_inflight *ring;
    uint32_t cap;
    uint32_t head; /* index of the oldest entry */
    uint32_t count;
} bs_kafka_corr_table;

/* Allocate room for `cap` (>= 1) in-flight requests; free with bs_kafka_corr_free(). */
bs_status bs_kafka_corr_init(bs_kafka_corr_table *t, uint32_t cap) BS_WUR;
/* Release the storage; safe on a zeroed or freed table. */
void bs_kafka_corr_free(bs_kafka_corr_table *t);
/* Record a request that passed. Entries with expects_response == false (Produce
 * acks=0) get no response and are not stored (BS_OK). BS_E_FULL when `cap`
 * requests are already in flight (the caller stops reading from the client). */
bs_status bs_kafka_corr_push(bs_kafka_corr_table *t, const bs_kafka_inflight *e) BS_WUR;
/* Match a response's correlation id against the oldest entry and remove it
 * into `*out`. BS_E_NOT_FOUND: nothing in flight; BS_E_MALFORMED: the id is
 * not the oldest request's (protocol error: close the connection; the table
 * is left unchanged). */
bs_status bs_kafka_corr_pop(bs_kafka_corr_table *t, int32_t correlation_id,
                            bs_kafka_inflight *out) BS_WUR;
/* Number of requests in flight. */
static inline uint32_t bs_kafka_corr_count(const bs_kafka_corr_table *t)
{
    return t->count;
}

/* The acks of a Produce request body (after the request header) of `version`:
 * v0-2 start with acks; v3+ have transactional_id (compact in v9+) first.
 * acks == 0 means the broker sends no response. BS_E_MALFORMED if truncated,
 * BS_E_UNSUPPORTED for negative versions and versions above the schema's
 * maximum (v0-2, below Kafka 4's minimum, are still read: older brokers take them). */
bs_status bs_kafka_produce_acks(const uint8_t *req_body, size_t len, int16_t version,
                                int16_t *acks) BS_WUR;

#endif
