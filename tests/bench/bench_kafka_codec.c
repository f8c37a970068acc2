/* bench_kafka_codec - cost of the Kafka codec on the proxy's hot path: rewrite
 * of a large Metadata v12 response, a Fetch v16 response with NodeEndpoints,
 * and the no-endpoint check of a Fetch v15 response. Prints ns per message and
 * MB/s; asserts nothing about speed (machines differ).
 * Usage: bench_kafka_codec [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/kafka_rewrite.h"
#include "brokerside/kafka_summary.h"

/* Maps every node id to a sidecar name. */
static bs_status map(void *arg, int32_t node, const bs_kafka_addr *was,
                   char *host, size_t hostlen, int32_t *port)
{
    (void)was;
    (void)arg;
    snprintf(host, hostlen, "kafka-%d.sidecar.example.com", (int)node);
    *port = 9094;
    return BS_OK;
}

/* Monotonic nanoseconds. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Metadata v12: 3 brokers, `topics` topics x 10 partitions x 3 replicas. */
static void build_metadata(bs_wbuf *w, int topics)
{
    bs_wbuf_put_be32(w, 0);
    bs_kafka_put_array_len(w, true, 3);
    for (int b = 1; b <= 3; b++) {
        char host[32];
        int n = snprintf(host, sizeof host, "ip-10-0-0-%d.internal", b);
        bs_wbuf_put_be32(w, (uint32_t)b);
        bs_kafka_put_string(w, true, (const uint8_t *)host, n);
        bs_wbuf_put_be32(w, 9092);
        bs_kafka_put_string(w, true, (const uint8_t *)"use1-az1", 8);
        bs_wbuf_put_uvarint(w, 0);
    }
    bs_kafka_put_string(w, true, (const uint8_t *)"cluster", 7);
    bs_wbuf_put_be32(w, 1);
    bs_kafka_put_array_len(w, true, topics);
    for (int t = 0; t < topics; t++) {
        char name[32];
        int n = snprintf(name, sizeof name, "topic-%d", t);
        bs_wbuf_put_be16(w, 0);
        bs_kafka_put_string(w, true, (const uint8_t *)name, n);
        for (int i = 0; i < 16; i++)
            bs_wbuf_put_u8(w, (uint8_t)(t + i));
        bs_wbuf_put_u8(w, 0);
        bs_kafka_put_array_len(w, true, 10);
        for (int p = 0; p < 10; p++) {
            bs_wbuf_put_be16(w, 0);
            bs_wbuf_put_be32(w, (uint32_t)p);
            bs_wbuf_put_be32(w, (uint32_t)(1 + p % 3));
            bs_wbuf_put_be32(w, 5);
            for (int list = 0; list < 2; list++) {
                bs_kafka_put_array_len(w, true, 3);
                for (int r = 1; r <= 3; r++)
                    bs_wbuf_put_be32(w, (uint32_t)r);
            }
            bs_kafka_put_array_len(w, true, 0);
            bs_wbuf_put_uvarint(w, 0);
        }
        bs_wbuf_put_be32(w, 0);
        bs_wbuf_put_uvarint(w, 0);
    }
    bs_wbuf_put_uvarint(w, 0);
}

/* Fetch v15+: 10 topics x 10 partitions x `rec` record bytes, with or without NodeEndpoints. */
static void build_fetch(bs_wbuf *w, bool endpoints, size_t rec)
{
    uint8_t *records = calloc(1, rec);
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be16(w, 0);
    bs_wbuf_put_be32(w, 1);
    bs_kafka_put_array_len(w, true, 10);
    for (int t = 0; t < 10; t++) {
        for (int i = 0; i < 16; i++)
            bs_wbuf_put_u8(w, (uint8_t)(t * 16 + i));
        bs_kafka_put_array_len(w, true, 10);
        for (int p = 0; p < 10; p++) {
            bs_wbuf_put_be32(w, (uint32_t)p);
            bs_wbuf_put_be16(w, 0);
            bs_wbuf_put_be64(w, 100);
            bs_wbuf_put_be64(w, 100);
            bs_wbuf_put_be64(w, 0);
            bs_kafka_put_array_len(w, true, -1);
            bs_wbuf_put_be32(w, (uint32_t)-1);
            bs_kafka_put_bytes(w, true, records, (int32_t)rec);
            bs_wbuf_put_uvarint(w, 0);
        }
        bs_wbuf_put_uvarint(w, 0);
    }
    if (endpoints) {
        bs_wbuf tag;
        bs_wbuf_init(&tag, 0);
        bs_kafka_put_array_len(&tag, true, 3);
        for (int b = 1; b <= 3; b++) {
            bs_wbuf_put_be32(&tag, (uint32_t)b);
            bs_kafka_put_string(&tag, true, (const uint8_t *)"ip-10-0-0-1.internal", 20);
            bs_wbuf_put_be32(&tag, 9092);
            bs_kafka_put_string(&tag, true, NULL, -1);
            bs_wbuf_put_uvarint(&tag, 0);
        }
        bs_wbuf_put_uvarint(w, 1);
        bs_wbuf_put_uvarint(w, 0);
        bs_wbuf_put_uvarint(w, (uint32_t)tag.len);
        bs_wbuf_put(w, tag.data, tag.len);
        bs_wbuf_free(&tag);
    } else {
        bs_wbuf_put_uvarint(w, 0);
    }
    free(records);
}

/* Times `iters` rewrites of one body; exits non-zero if a rewrite fails. */
static int run(const char *label, int16_t api, int16_t v, const bs_wbuf *in, int iters)
{
    bs_kafka_arena arena;
    bs_wbuf out;
    bs_kafka_arena_init(&arena, 0);
    bs_wbuf_init(&out, 0);
    bool changed = false;
    int32_t bad;
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        bs_wbuf_reset(&out);
        if (bs_kafka_rewrite_response(api, v, in->data, in->len, map, NULL, &arena, &out, &changed,
                                      &bad) != BS_OK) {
            fprintf(stderr, "%s: rewrite failed\n", label);
            return 1;
        }
    }
    double ns = (now_ns() - t0) / iters;
    printf("%-34s %8zu bytes  %10.0f ns/msg  %8.1f MB/s  changed=%d\n", label, in->len, ns,
           (double)in->len / ns * 1e3, changed);
    bs_kafka_arena_free(&arena);
    bs_wbuf_free(&out);
    return 0;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 200;
    if (iters < 1) iters = 1;
    bs_wbuf md, f16, f16n, f15;
    bs_wbuf_init(&md, 0);
    bs_wbuf_init(&f16, 0);
    bs_wbuf_init(&f16n, 0);
    bs_wbuf_init(&f15, 0);
    build_metadata(&md, 500);
    build_fetch(&f16, true, 16384);
    build_fetch(&f16n, false, 16384);
    build_fetch(&f15, false, 16384);
    int rc = run("Metadata v12 (500 topics) rewrite", BS_KAFKA_METADATA, 12, &md, iters);
    rc |= run("Fetch v16 (1.6 MB) NodeEndpoints", BS_KAFKA_FETCH, 16, &f16, iters);
    rc |= run("Fetch v16 (1.6 MB) no NodeEndpoints", BS_KAFKA_FETCH, 16, &f16n, iters);
    rc |= run("Fetch v15 (no endpoints possible)", BS_KAFKA_FETCH, 15, &f15, iters);
    bs_wbuf_free(&md);
    bs_wbuf_free(&f16);
    bs_wbuf_free(&f16n);
    bs_wbuf_free(&f15);
    return rc;
}
