/* kafka_summary.c - per-topic summaries and audit fields via the codec's scan mode (see
 * kafka_summary.h). */
#include "brokerside/kafka_summary.h"

#include <string.h>

#include "brokerside/kafka_schema.h"

/* See kafka_summary.h. Both formats keep the length at offset 8 and the magic at 16. */
bs_status bs_kafka_count_records(const uint8_t *records, size_t n, uint64_t *count)
{
    bs_cursor c;
    uint64_t total = 0;
    bs_cursor_init(&c, records, n);
    while (bs_cursor_remaining(&c) > 0) {
        bs_cursor batch;
        int64_t base_offset;
        int32_t length;
        BS_ENSURE(bs_read_i64(&c, &base_offset) == BS_OK, BS_E_MALFORMED);
        BS_ENSURE(bs_read_i32(&c, &length) == BS_OK, BS_E_MALFORMED);
        BS_ENSURE(length >= 0 && (size_t)length <= bs_cursor_remaining(&c), BS_E_MALFORMED);
        BS_GUARD(bs_cursor_sub(&c, (size_t)length, &batch));
        /* after offset+length: crc/leader epoch (4), then magic */
        uint8_t magic;
        BS_ENSURE(bs_cursor_skip(&batch, 4) == BS_OK && bs_read_u8(&batch, &magic) == BS_OK,
                  BS_E_MALFORMED);
        if (magic == 2) {
            int32_t records_in_batch;
            /* v2 header: ... attributes(2) lastOffsetDelta(4) baseTimestamp(8) maxTimestamp(8)
             * producerId(8) producerEpoch(2) baseSequence(4) recordsCount(4) at offset 57 */
            BS_ENSURE(bs_cursor_skip(&batch, 57 - 17) == BS_OK, BS_E_MALFORMED);
            BS_ENSURE(bs_read_i32(&batch, &records_in_batch) == BS_OK && records_in_batch >= 0,
                      BS_E_MALFORMED);
            total += (uint64_t)records_in_batch;
        } else {
            BS_ENSURE(magic <= 1, BS_E_MALFORMED);
            total += 1;
        }
    }
    *count = total;
    return BS_OK;
}

typedef struct topic_walk {
    const char *topics_field; /* the top-level array holding topics */
    int depth;                /* ENTER/LEAVE nesting below the body */
    bool count_records;
    bs_kafka_topic_summary cur;
    bs_kafka_topic_fn fn;
    void *arg;
} topic_walk;

/* Scan visitor shared by the summaries: a topic opens when an element of the
 * topics array is entered at body level and closes when it is left. */
static bs_status topic_visit(void *arg, const bs_kafka_field *f, const bs_kafka_val *v, int event)
{
    topic_walk *w = arg;
    if (event == BS_KAFKA_VISIT_ENTER) {
        if (w->depth == 0 && strcmp(f->name, w->topics_field) == 0) {
            memset(&w->cur, 0, sizeof w->cur);
            w->cur.name.len = -1;
        } else if (w->depth == 1 && f->type == BS_KT_ARRAY) {
            w->cur.partitions++;
        }
        w->depth++;
        return BS_OK;
    }
    if (event == BS_KAFKA_VISIT_LEAVE) {
        w->depth--;
        if (w->depth == 0 && strcmp(f->name, w->topics_field) == 0) return w->fn(w->arg, &w->cur);
        return BS_OK;
    }
    if (w->depth == 1 && (strcmp(f->name, "Name") == 0 || strcmp(f->name, "Topic") == 0)) {
        w->cur.name.p = v->p;
        w->cur.name.len = v->null ? -1 : (int32_t)v->n;
    } else if (w->depth == 1 && strcmp(f->name, "TopicId") == 0) {
        w->cur.topic_id = v->p;
    } else if (w->depth == 2 && f->type == BS_KT_RECORDS && !v->null) {
        w->cur.record_bytes += v->n;
        if (w->count_records) {
            uint64_t n;
            BS_GUARD(bs_kafka_count_records(v->p, v->n, &n));
            w->cur.records += n;
        }
    }
    return BS_OK;
}

/* Runs the topic walk over `body` of the given message. */
static bs_status summarise(int16_t api_key, bool is_request, const char *topics_field, bool count,
                           const uint8_t *body, size_t len, int16_t version, bs_kafka_topic_fn fn,
                           void *arg)
{
    const bs_kafka_message *m = bs_kafka_message_find(api_key, is_request);
    BS_ENSURE(m, BS_E_UNSUPPORTED);
    topic_walk w = {.topics_field = topics_field, .count_records = count, .fn = fn, .arg = arg};
    return bs_kafka_scan(m, version, body, len, topic_visit, &w);
}

/* See kafka_summary.h. */
bs_status bs_kafka_produce_summary(const uint8_t *body, size_t len, int16_t version,
                                   bs_kafka_topic_fn fn, void *arg)
{
    return summarise(BS_KAFKA_PRODUCE, true, "TopicData", true, body, len, version, fn, arg);
}

/* See kafka_summary.h. */
bs_status bs_kafka_fetch_summary(const uint8_t *body, size_t len, int16_t version,
                                 bs_kafka_topic_fn fn, void *arg)
{
    return summarise(BS_KAFKA_FETCH, false, "Responses", false, body, len, version, fn, arg);
}

/* See kafka_summary.h. */
bs_status bs_kafka_fetch_request_topics(const uint8_t *body, size_t len, int16_t version,
                                        bs_kafka_topic_fn fn, void *arg)
{
    return summarise(BS_KAFKA_FETCH, true, "Topics", false, body, len, version, fn, arg);
}

typedef struct client_sw {
    bs_kafka_slice *name, *version;
} client_sw;

/* Scan visitor picking the two client software strings. */
static bs_status client_visit(void *arg, const bs_kafka_field *f, const bs_kafka_val *v, int event)
{
    client_sw *c = arg;
    if (event != BS_KAFKA_VISIT_VALUE || f->type != BS_KT_STRING) return BS_OK;
    bs_kafka_slice *dst = strcmp(f->name, "ClientSoftwareName") == 0      ? c->name
                          : strcmp(f->name, "ClientSoftwareVersion") == 0 ? c->version
                                                                          : NULL;
    if (dst) {
        dst->p = v->p;
        dst->len = v->null ? -1 : (int32_t)v->n;
    }
    return BS_OK;
}

/* See kafka_summary.h. */
bs_status bs_kafka_api_versions_client(const uint8_t *body, size_t len, int16_t version,
                                       bs_kafka_slice *software_name,
                                       bs_kafka_slice *software_version)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_API_VERSIONS, true);
    client_sw c = {software_name, software_version};
    BS_ENSURE(m, BS_E_UNSUPPORTED);
    software_name->p = software_version->p = NULL;
    software_name->len = software_version->len = -1;
    return bs_kafka_scan(m, version, body, len, client_visit, &c);
}
