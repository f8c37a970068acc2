/* fuzz_kafka_response.c - libFuzzer target for the schema codec and rewriter.
 * Input: byte 0 selects a generated message (index mod count), byte 1 the
 * version (min + value mod range), the rest is the body. Decode, re-encode,
 * decode the re-encoding again (must succeed and re-encode identically),
 * rewrite endpoints, scan, summarise: none may crash, leak or read out of bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/kafka_rewrite.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_summary.h"

/* Maps nodes 0..9 to sidecar names; others are unmapped so that error path is fuzzed too. */
static bs_status map(void *arg, int32_t node, const bs_kafka_addr *was,
                   char *host, size_t hostlen, int32_t *port)
{
    (void)was;
    (void)arg;
    if (node < 0 || node > 9) return BS_E_NOT_FOUND;
    snprintf(host, hostlen, "sidecar-%d.example.com", (int)node);
    *port = 9094;
    return BS_OK;
}

/* Touches the first and last byte of every slice value (ASan checks the bounds). */
static bs_status visit(void *arg, const bs_kafka_field *f, const bs_kafka_val *v, int event)
{
    (void)f;
    if (event == BS_KAFKA_VISIT_VALUE && v->p && v->n) (*(size_t *)arg) += v->p[0] + v->p[v->n - 1];
    return BS_OK;
}

/* Sums the figures so the summaries cannot be optimised away. */
static bs_status topic(void *arg, const bs_kafka_topic_summary *t)
{
    (*(uint64_t *)arg) += t->record_bytes + t->records;
    return BS_OK;
}

/* libFuzzer entry point: one input, never fails (a bug aborts or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    const bs_kafka_message *m = &bs_kafka_messages[data[0] % bs_kafka_messages_count];
    int16_t v = (int16_t)(m->min_version + data[1] % (m->max_version - m->min_version + 1));
    const uint8_t *body = data + 2;
    size_t len = size - 2;
    /* a private copy so ASan catches any read past the body */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return 0;
    memcpy(copy, body, len);

    bs_kafka_arena a, a2;
    bs_kafka_arena_init(&a, 64u << 20);
    bs_kafka_arena_init(&a2, 64u << 20);
    bs_wbuf w1, w2;
    bs_wbuf_init(&w1, 0);
    bs_wbuf_init(&w2, 0);
    bs_kafka_obj *o1, *o2;
    bs_status st = bs_kafka_decode(m, v, copy, len, &a, &o1);
    size_t sink = 0;
    bs_status sst = bs_kafka_scan(m, v, copy, len, visit, &sink);
    if ((st == BS_OK) != (sst == BS_OK) && st != BS_E_TOO_LARGE) abort(); /* both modes agree */
    if (st == BS_OK) {
        if (bs_kafka_encode(m, v, o1, &w1) != BS_OK) abort();
        /* non-canonical varints may change length, but the re-encoding is a fixed point */
        if (bs_kafka_decode(m, v, w1.data, w1.len, &a2, &o2) != BS_OK) abort();
        if (bs_kafka_encode(m, v, o2, &w2) != BS_OK) abort();
        if (w1.len != w2.len || (w1.len && memcmp(w1.data, w2.data, w1.len) != 0)) abort();
    }
    if (!m->is_request) {
        bool changed;
        int32_t bad;
        bs_wbuf out;
        bs_wbuf_init(&out, 0);
        bs_status rst = bs_kafka_rewrite_response(m->api_key, v, copy, len, map, NULL, NULL, &out,
                                                  &changed, &bad);
        if (rst == BS_OK && changed) {
            bs_kafka_arena_reset(&a2);
            if (bs_kafka_decode(m, v, out.data, out.len, &a2, &o2) != BS_OK) abort();
        }
        if (rst == BS_OK && !changed && out.len) abort();
        /* the same bytes as a whole frame payload (header + body) */
        bs_wbuf_reset(&out);
        rst = bs_kafka_rewrite_response_frame(m->api_key, v, copy, len, map, NULL, NULL, &out,
                                              &changed, &bad);
        if (rst == BS_OK && changed && out.len < 8) abort();
        if ((rst != BS_OK || !changed) && out.len != 0) abort();
        bs_wbuf_reset(&out);
        if (m->api_key == BS_KAFKA_API_VERSIONS &&
            bs_kafka_rewrite_api_versions(copy, len, v, &out, &changed) == BS_OK && changed &&
            out.len == 0)
            abort();
        bs_wbuf_free(&out);
    }
    uint64_t total = 0;
    if (m->api_key == BS_KAFKA_PRODUCE && m->is_request)
        (void)!bs_kafka_produce_summary(copy, len, v, topic, &total);
    if (m->api_key == BS_KAFKA_FETCH && !m->is_request)
        (void)!bs_kafka_fetch_summary(copy, len, v, topic, &total);
    if (m->api_key == BS_KAFKA_FETCH && m->is_request)
        (void)!bs_kafka_fetch_request_topics(copy, len, v, topic, &total);

    bs_wbuf_free(&w1);
    bs_wbuf_free(&w2);
    bs_kafka_arena_free(&a);
    bs_kafka_arena_free(&a2);
    free(copy);
    return 0;
}
