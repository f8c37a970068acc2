/*
 * bs_bench_authz - CPU cost of the authorization policy in the Kafka session,
 * without TLS, sockets or a broker: the session (bs_kafka_session_ops) with
 * the policy enforcer hook is fed Produce requests (8 partitions x 64 KiB of
 * records, flexible v9) and the broker's answers, once with no policy and
 * once with a 1,000-rule policy, alternating in rounds on one thread; the
 * thread CPU time per MB of each is reported and the median of the
 * per-round ratios. What this measures is the whole extra work of a policy
 * (holding, scanning, judging, caching) against the session alone: an upper
 * bound of its share of the daemon's CPU, which also pays for TLS and
 * socket I/O (authz_bench.py measures that end to end).
 *
 *   bs_bench_authz [--rounds R] [--mb MB] [--rules K]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "brokerside/authz.h"
#include "brokerside/buf.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_session.h"
#include "brokerside/metrics.h"
#include "brokerside/policy.h"

#define BUFCAP 65536
#define PARTS 8
#define PART_BYTES 65536

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A Produce v9 request (flexible) for topic `topic` with PARTS partitions. */
static void produce_frame(bs_wbuf *w, int32_t corr, const char *topic)
{
    bs_wbuf_reset(w);
    bs_wbuf_put_be32(w, 0);
    if (bs_kafka_put_request_header(w, 0, 9, corr, (const uint8_t *)"bench", 5) != BS_OK) exit(2);
    bs_kafka_put_string(w, true, NULL, -1); /* transactional id */
    bs_wbuf_put_be16(w, 1);                 /* acks */
    bs_wbuf_put_be32(w, 30000);
    bs_kafka_put_array_len(w, true, 1);
    bs_kafka_put_string(w, true, (const uint8_t *)topic, (int32_t)strlen(topic));
    bs_kafka_put_array_len(w, true, PARTS);
    static uint8_t records[PART_BYTES];
    for (int p = 0; p < PARTS; p++) {
        bs_wbuf_put_be32(w, (uint32_t)p);
        /* one record batch header shape is not needed for the codec: bytes are opaque */
        bs_kafka_put_bytes(w, true, records, PART_BYTES);
        bs_wbuf_put_u8(w, 0);
    }
    bs_wbuf_put_u8(w, 0);
    bs_wbuf_put_u8(w, 0);
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
}

/* The broker's answer (Produce v9 response, flexible header v1). */
static void produce_answer(bs_wbuf *w, int32_t corr, const char *topic)
{
    bs_wbuf_reset(w);
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_wbuf_put_u8(w, 0);
    bs_kafka_put_array_len(w, true, 1);
    bs_kafka_put_string(w, true, (const uint8_t *)topic, (int32_t)strlen(topic));
    bs_kafka_put_array_len(w, true, PARTS);
    for (int p = 0; p < PARTS; p++) {
        bs_wbuf_put_be32(w, (uint32_t)p);
        bs_wbuf_put_be16(w, 0);
        bs_wbuf_put_be64(w, 0);
        bs_wbuf_put_be64(w, (uint64_t)-1);
        bs_wbuf_put_be64(w, 0);
        bs_kafka_put_array_len(w, true, 0);
        bs_kafka_put_string(w, true, NULL, -1);
        bs_wbuf_put_u8(w, 0);
    }
    bs_wbuf_put_u8(w, 0);
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_u8(w, 0);
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
}

typedef struct sess {
    const bs_session_ops *ops;
    void *st;
    bs_buf in, fwd, back;
} sess;

/* Push `w` through one side of the session the way net/ does (64 KiB buffers). */
static void pump(sess *s, bool client, const bs_wbuf *w)
{
    size_t off = 0;
    for (int idle = 0; idle < 3;) {
        size_t n = w->len - off, room = bs_buf_free_space(&s->in);
        if (n > room) n = room;
        if (n) {
            bs_buf_compact(&s->in);
            if (bs_buf_append(&s->in, w->data + off, n) != BS_OK) exit(3);
            off += n;
        }
        size_t before = bs_buf_readable(&s->in);
        bs_status st = client ? s->ops->on_client_bytes(s->st, &s->in, &s->fwd, &s->back)
                              : s->ops->on_upstream_bytes(s->st, &s->in, &s->fwd, &s->back);
        if (st != BS_OK) {
            fprintf(stderr, "session refused the stream (%s)\n", bs_status_name(st));
            exit(4);
        }
        size_t got = bs_buf_readable(&s->fwd);
        bs_buf_consume(&s->fwd, got);
        idle = (n == 0 && got == 0 && bs_buf_readable(&s->in) == before) ? idle + 1 : 0;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int rounds = 9, mb = 64, nrules = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--mb") == 0) mb = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--rules") == 0) nrules = atoi(argv[i + 1]);
    }
    if (rounds < 1 || mb < 1 || nrules < 1) return 2;
    /* the policy: rules for other principals and topics, then dev-client's */
    cJSON *sec = cJSON_CreateObject(), *rules = cJSON_AddArrayToObject(sec, "rules");
    cJSON_AddStringToObject(sec, "default", "deny");
    static const char *const ops[] = {"Read", "Write", "Describe", "Create", "Delete", "Alter"};
    for (int i = 0; i < nrules - 1; i++) {
        cJSON *r = cJSON_CreateObject();
        char p[32], n[48];
        snprintf(p, sizeof p, "User:svc-%d", i % 97);
        cJSON_AddStringToObject(r, "principal", p);
        cJSON_AddStringToObject(r, "operation", ops[i % 6]);
        cJSON_AddStringToObject(r, "resource_type", i % 4 == 2 ? "Group" : "Topic");
        snprintf(n, sizeof n, i % 2 ? "team-%d-" : "team-%d-events", i);
        cJSON_AddStringToObject(r, "resource_name", n);
        if (i % 2) cJSON_AddStringToObject(r, "pattern_type", "PREFIXED");
        cJSON_AddStringToObject(r, "permission", i % 5 ? "ALLOW" : "DENY");
        cJSON_AddItemToArray(rules, r);
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "principal", "User:ANONYMOUS");
    cJSON_AddStringToObject(r, "operation", "Write");
    cJSON_AddStringToObject(r, "resource_type", "Topic");
    cJSON_AddStringToObject(r, "resource_name", "bench-");
    cJSON_AddStringToObject(r, "pattern_type", "PREFIXED");
    cJSON_AddStringToObject(r, "permission", "ALLOW");
    cJSON_AddItemToArray(rules, r);
    bs_policy *pol = NULL;
    if (bs_policy_parse(sec, NULL, NULL, &pol) != BS_OK) return 5;
    cJSON_Delete(sec);

    bs_authz *az = NULL;
    if (bs_authz_new(NULL, &az) != BS_OK) return 6;
    bs_kafka_session_factory fac = {.hooks = bs_authz_hook(az), .n_hooks = 1};
    bs_listener_config lc = {.name = "bench"};
    bs_kafka_config kc = {.max_frame_bytes = 100u << 20};
    bs_session_info info = {.listener = &lc, .kafka = &kc, .peer = "127.0.0.1:1"};
    sess s[2];
    for (int k = 0; k < 2; k++) {
        memset(&s[k], 0, sizeof s[k]);
        s[k].ops = bs_kafka_session_ops();
        if (s[k].ops->open(&fac, &info, &s[k].st) != BS_OK) return 7;
        if (bs_buf_init(&s[k].in, BUFCAP) || bs_buf_init(&s[k].fwd, BUFCAP) ||
            bs_buf_init(&s[k].back, BUFCAP))
            return 8;
    }
    bs_wbuf req, resp;
    bs_wbuf_init(&req, 0);
    bs_wbuf_init(&resp, 0);
    double frame_mb = (double)PARTS * PART_BYTES / 1e6;
    int frames = (int)(mb / frame_mb) + 1;
    double *ratio = calloc((size_t)rounds, sizeof *ratio), ms[2] = {0, 0};
    int32_t corr = 0;
    for (int rnd = 0; rnd < rounds; rnd++) {
        double t[2];
        for (int j = 0; j < 2; j++) {
            int k = rnd % 2 ? 1 - j : j; /* 0 = no policy, 1 = policy */
            bs_policy_set_current(k ? pol : NULL);
            double c0 = thread_cpu();
            for (int f = 0; f < frames; f++) {
                produce_frame(&req, ++corr, "bench-orders");
                pump(&s[k], true, &req);
                produce_answer(&resp, corr, "bench-orders");
                pump(&s[k], false, &resp);
            }
            t[k] = (thread_cpu() - c0) * 1000 / (frames * frame_mb);
        }
        ratio[rnd] = t[1] / t[0];
        ms[0] += t[0] / rounds;
        ms[1] += t[1] / rounds;
    }
    bs_policy_set_current(NULL);
    /* the policy sidecar really judged every request (and allowed it) */
    int64_t allowed = bs_metric_value(bs_metrics_counter(
        "brokerside_authz_decisions_total", "Authorization decisions of the sidecar's policy",
        "decision=\"allow\""));
    int64_t denied = bs_metric_value(bs_metrics_counter(
        "brokerside_authz_decisions_total", "Authorization decisions of the sidecar's policy",
        "decision=\"deny\""));
    printf("check: %lld allowed decisions for %d policy requests, %lld denied\n",
           (long long)allowed, frames * rounds, (long long)denied);
    if (allowed != (int64_t)frames * rounds || denied != 0) return 9;
    qsort(ratio, (size_t)rounds, sizeof *ratio, cmp_double);
    printf("bs_bench_authz: %d rounds x %d MB of Produce v9 (8 x 64 KiB partitions), %d rules, "
           "session only (no TLS, no sockets)\n",
           rounds, mb, nrules);
    printf("no policy: %.3f CPU ms/MB   policy: %.3f CPU ms/MB   extra: %.3f ms/MB\n", ms[0], ms[1],
           ms[1] - ms[0]);
    printf("median per-round ratio policy/none (session only): %.3f\n", ratio[rounds / 2]);
    for (int k = 0; k < 2; k++) {
        s[k].ops->close(s[k].st);
        bs_buf_free(&s[k].in);
        bs_buf_free(&s[k].fwd);
        bs_buf_free(&s[k].back);
    }
    bs_wbuf_free(&req);
    bs_wbuf_free(&resp);
    free(ratio);
    bs_authz_free(az);
    bs_policy_free(pol);
    bs_kafka_session_reset_globals();
    bs_metrics_shutdown();
    return 0;
}
