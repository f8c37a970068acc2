/*
 * kafka_gen.h - deterministic random Kafka messages built from the generated
 * schema tables, shared by the kafka unit tests and the fuzz corpus writer.
 *
 * Broker endpoints get recognisable values: node ids 1..3 (or -1 on demand),
 * host "broker-<id>.real", port 19000+id, so a rewrite can be checked and
 * reverted. Every other string uses only the letters a-h and digits, so the
 * text "real" can appear in a message only inside an endpoint host.
 */
#ifndef BROKERSIDE_TEST_KAFKA_GEN_H
#define BROKERSIDE_TEST_KAFKA_GEN_H

#include <stdio.h>
#include <string.h>

#include "brokerside/kafka_schema.h"

typedef struct kgen {
    uint64_t state;
    int endpoints; /* endpoint structs written */
} kgen;

static inline uint32_t kgen_next(kgen *g)
{
    /* xorshift64*: fixed seeds give the same messages on every machine */
    g->state ^= g->state >> 12;
    g->state ^= g->state << 25;
    g->state ^= g->state >> 27;
    return (uint32_t)((g->state * 0x2545F4914F6CDD1DULL) >> 32);
}

static inline uint32_t kgen_below(kgen *g, uint32_t n)
{
    return kgen_next(g) % n;
}

static void kgen_struct(kgen *g, const bs_kafka_struct *s, int16_t v, bool flex, bs_wbuf *w,
                        int depth, int32_t parent_node);

/* Host and Port: an endpoint (its node is its own NodeId/BrokerId or its parent's). */
static inline bool kgen_is_endpoint(const bs_kafka_struct *s)
{
    return bs_kafka_struct_field(s, "Host") >= 0 && bs_kafka_struct_field(s, "Port") >= 0;
}

static inline bool kgen_has_node(const bs_kafka_struct *s)
{
    return bs_kafka_struct_field(s, "NodeId") >= 0 || bs_kafka_struct_field(s, "BrokerId") >= 0;
}

static void kgen_value(kgen *g, const bs_kafka_struct *s, const bs_kafka_field *f, uint8_t type,
                       int16_t v, bool flex, bs_wbuf *w, int depth, int32_t node)
{
    bool nullable = bs_kafka_field_nullable(f, v);
    bool endpoint = kgen_is_endpoint(s);
    switch (type) {
    case BS_KT_BOOL:
        bs_wbuf_put_u8(w, (uint8_t)kgen_below(g, 2));
        break;
    case BS_KT_INT8:
        bs_wbuf_put_u8(w, (uint8_t)kgen_next(g));
        break;
    case BS_KT_INT16:
    case BS_KT_UINT16:
        /* error codes stay 0 so endpoint structs are mapped, not passed through */
        if (endpoint && strcmp(f->name, "Port") == 0)
            bs_wbuf_put_be16(w, (uint16_t)(19000 + node));
        else
            bs_wbuf_put_be16(w, strcmp(f->name, "ErrorCode") == 0 ? 0 : (uint16_t)kgen_next(g));
        break;
    case BS_KT_INT32:
    case BS_KT_UINT32:
        if (strcmp(f->name, "NodeId") == 0 || strcmp(f->name, "BrokerId") == 0)
            bs_wbuf_put_be32(w, (uint32_t)node);
        else if (endpoint && strcmp(f->name, "Port") == 0)
            bs_wbuf_put_be32(w, (uint32_t)(19000 + node));
        else
            bs_wbuf_put_be32(w, kgen_next(g));
        break;
    case BS_KT_INT64:
    case BS_KT_FLOAT64:
        bs_wbuf_put_be64(w, (uint64_t)kgen_next(g) << 32 | kgen_next(g));
        break;
    case BS_KT_UUID:
        for (int i = 0; i < 16; i++)
            bs_wbuf_put_u8(w, (uint8_t)kgen_next(g));
        break;
    case BS_KT_STRING:
    case BS_KT_BYTES:
    case BS_KT_RECORDS: {
        if (endpoint && strcmp(f->name, "Host") == 0) {
            char host[64];
            int n = snprintf(host, sizeof host, "broker-%d.real", (int)node);
            bs_kafka_put_string(w, flex, (const uint8_t *)host, n);
            break;
        }
        if (nullable && kgen_below(g, 4) == 0) {
            if (type == BS_KT_STRING)
                bs_kafka_put_string(w, flex, NULL, -1);
            else
                bs_kafka_put_bytes(w, flex, NULL, -1);
            break;
        }
        static const char alphabet[] = "abcdefgh0123456789";
        uint8_t buf[40];
        int32_t n = (int32_t)kgen_below(g, type == BS_KT_RECORDS ? 40 : 12);
        for (int32_t i = 0; i < n; i++)
            buf[i] = (uint8_t)alphabet[kgen_below(g, sizeof alphabet - 1)];
        if (type == BS_KT_STRING)
            bs_kafka_put_string(w, flex, buf, n);
        else
            bs_kafka_put_bytes(w, flex, buf, n);
        break;
    }
    case BS_KT_STRUCT:
        /* a nullable struct field (not an element of a nullable array): int8 marker,
         * -1 null or 1 followed by the struct */
        if (nullable && f->type == BS_KT_STRUCT) {
            if (kgen_below(g, 4) == 0) {
                bs_wbuf_put_u8(w, 0xff);
                break;
            }
            bs_wbuf_put_u8(w, 1);
        }
        kgen_struct(g, f->sub, v, flex, w, depth + 1, node);
        break;
    case BS_KT_ARRAY: {
        if (nullable && kgen_below(g, 5) == 0) {
            bs_kafka_put_array_len(w, flex, -1);
            break;
        }
        int32_t n = (int32_t)kgen_below(g, depth < 3 ? 4 : 2);
        bs_kafka_put_array_len(w, flex, n);
        for (int32_t i = 0; i < n; i++)
            kgen_value(g, s, f, f->elem, v, flex, w, depth, node);
        break;
    }
    }
}

static void kgen_struct(kgen *g, const bs_kafka_struct *s, int16_t v, bool flex, bs_wbuf *w,
                        int depth, int32_t parent_node)
{
    int32_t node = kgen_has_node(s) ? 1 + (int32_t)kgen_below(g, 3) : parent_node;
    bool endpoint = kgen_is_endpoint(s);
    int host = bs_kafka_struct_field(s, "Host");
    if (endpoint && bs_kafka_field_present(&s->fields[host], v)) g->endpoints++;
    for (size_t i = 0; i < s->nfields; i++) {
        const bs_kafka_field *f = &s->fields[i];
        if (!bs_kafka_field_present(f, v) || bs_kafka_field_tagged(f, v)) continue;
        kgen_value(g, s, f, f->type, v, flex, w, depth, node);
    }
    if (!flex) return;
    /* tagged fields: known ones (ascending tag) with probability 3/4, then sometimes an unknown tag
     */
    size_t order[32], n = 0;
    for (size_t i = 0; i < s->nfields; i++) {
        const bs_kafka_field *f = &s->fields[i];
        if (!bs_kafka_field_present(f, v) || !bs_kafka_field_tagged(f, v) || kgen_below(g, 4) == 0)
            continue;
        size_t j = n++;
        while (j > 0 && s->fields[order[j - 1]].tag > f->tag) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    bool unknown = kgen_below(g, 3) == 0;
    bs_wbuf_put_uvarint(w, (uint32_t)(n + unknown));
    for (size_t k = 0; k < n; k++) {
        const bs_kafka_field *f = &s->fields[order[k]];
        bs_wbuf tmp;
        bs_wbuf_init(&tmp, 0);
        int before = g->endpoints;
        kgen_value(g, s, f, f->type, v, flex, &tmp, depth, node);
        (void)before;
        bs_wbuf_put_uvarint(w, (uint32_t)f->tag);
        bs_wbuf_put_uvarint(w, (uint32_t)tmp.len);
        bs_wbuf_put(w, tmp.data, tmp.len);
        bs_wbuf_free(&tmp);
    }
    if (unknown) {
        /* above every tag the schemas use, so order stays ascending */
        uint8_t junk[3] = {1, 2, 3};
        bs_wbuf_put_uvarint(w, 1000 + kgen_below(g, 100));
        bs_wbuf_put_uvarint(w, 3);
        bs_wbuf_put(w, junk, 3);
    }
}

/* Append a random body of message `m` at version `v` to `w`. */
static inline void kgen_message(kgen *g, const bs_kafka_message *m, int16_t v, bs_wbuf *w)
{
    kgen_struct(g, m->body, v, v >= m->flex_min, w, 0, 1);
}

#endif
