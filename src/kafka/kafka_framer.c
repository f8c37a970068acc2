/* kafka_framer.c - frame lengths, correlation table, Produce acks (see kafka_framer.h). */
#include "brokerside/kafka_framer.h"

#include <stdlib.h>

#include "brokerside/cursor.h"
#include "brokerside/kafka.h"

/* See kafka_framer.h. */
bs_status bs_kafka_frame_length(const uint8_t *p, size_t avail, size_t max_frame_bytes,
                                size_t *frame_len)
{
    bs_cursor c;
    int32_t size;
    bs_cursor_init(&c, p, avail);
    BS_GUARD(bs_read_i32(&c, &size));
    BS_ENSURE(size >= BS_KAFKA_MIN_FRAME_PAYLOAD, BS_E_MALFORMED);
    BS_ENSURE((uint64_t)size <= max_frame_bytes, BS_E_TOO_LARGE);
    *frame_len = 4 + (size_t)size;
    return BS_OK;
}

/* See kafka_framer.h. A TLS record starts with content type 0x14-0x17 and
 * version 3.x; as a Kafka size that would be > 335 MB, never a real frame. */
bool bs_kafka_looks_like_tls(const uint8_t *p, size_t avail)
{
    return avail >= 3 && p[0] >= 0x14 && p[0] <= 0x17 && p[1] == 0x03 && p[2] <= 0x04;
}

/* See kafka_framer.h. */
bs_status bs_kafka_corr_init(bs_kafka_corr_table *t, uint32_t cap)
{
    t->head = t->count = 0;
    t->cap = 0;
    BS_ENSURE(cap >= 1, BS_E_CONFIG);
    t->ring = calloc(cap, sizeof *t->ring);
    BS_ENSURE(t->ring, BS_E_NOMEM);
    t->cap = cap;
    return BS_OK;
}

/* See kafka_framer.h. */
void bs_kafka_corr_free(bs_kafka_corr_table *t)
{
    free(t->ring);
    t->ring = NULL;
    t->cap = t->head = t->count = 0;
}

/* See kafka_framer.h. */
bs_status bs_kafka_corr_push(bs_kafka_corr_table *t, const bs_kafka_inflight *e)
{
    if (!e->expects_response) return BS_OK;
    BS_ENSURE(t->count < t->cap, BS_E_FULL);
    t->ring[(t->head + t->count) % t->cap] = *e;
    t->count++;
    return BS_OK;
}

/* See kafka_framer.h. */
bs_status bs_kafka_corr_pop(bs_kafka_corr_table *t, int32_t correlation_id, bs_kafka_inflight *out)
{
    BS_ENSURE(t->count > 0, BS_E_NOT_FOUND);
    const bs_kafka_inflight *e = &t->ring[t->head];
    BS_ENSURE(e->correlation_id == correlation_id, BS_E_MALFORMED);
    *out = *e;
    t->head = (t->head + 1) % t->cap;
    t->count--;
    return BS_OK;
}

/* See kafka_framer.h. */
bs_status bs_kafka_produce_acks(const uint8_t *req_body, size_t len, int16_t version, int16_t *acks)
{
    const bs_kafka_api_info *a = bs_kafka_api(BS_KAFKA_PRODUCE);
    bs_cursor c;
    /* v0-2 are below Kafka 4's range but older brokers still take them, and
     * their layout (acks first) is fixed: an acks=0 request must never wait
     * for an answer, whatever broker sits behind the sidecar. */
    BS_ENSURE(a && version >= 0 && version <= a->max_version, BS_E_UNSUPPORTED);
    bs_cursor_init(&c, req_body, len);
    if (version >= 3) {
        bs_kafka_slice txn;
        bs_status st = bs_kafka_read_string(&c, version >= a->req_flex_min, true, &txn);
        BS_ENSURE(st == BS_OK, BS_E_MALFORMED);
    }
    BS_ENSURE(bs_read_i16(&c, acks) == BS_OK, BS_E_MALFORMED);
    return BS_OK;
}
