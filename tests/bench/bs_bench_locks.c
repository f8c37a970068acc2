/*
 * bs_bench_locks - what the process-wide locks of the per-request path cost
 * when workers share them (docs/architecture.md, "Threads and locks").
 *
 * Each round runs T threads (1, then 2, 4, 8) that each handle N/T "Kafka
 * requests" the way a worker does with audit `aggregate` and metrics on:
 *   audit   - bs_audit_log_record of a Produce event into one shared log in
 *             aggregate mode (the log's mutex, held for the fold);
 *   metrics - bs_metric_add on shared counters and a histogram observation
 *             (atomics, no lock), as kafka_session does per request;
 *   lookup  - bs_metrics_counter_kv of an existing series (the registry's
 *             mutex: taken when a session meets a topic it has not cached).
 * It prints ns per request and the slowdown against one thread. The
 * machine's core count bounds what "8 workers" means here: with fewer cores
 * than threads the numbers include time slicing while a lock is held.
 * Usage: bs_bench_locks [REQUESTS]   (default 400000). Not a test.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/audit.h"
#include "brokerside/metrics.h"

typedef enum part { PART_AUDIT, PART_METRICS, PART_LOOKUP } part;

typedef struct job {
    part what;
    long n;
    int id;
    bs_audit_log *log;
    bs_metric *requests, *bytes;
    bs_histogram *latency;
    int failed;
} job;

/* Emit callback: count only. */
static bs_status null_emit(const char *line, size_t len, void *arg)
{
    (void)line;
    (void)len;
    (void)arg;
    return BS_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One worker's share of the requests. */
static void *worker(void *arg)
{
    job *j = arg;
    static const char *topics[] = {"orders", "payments", "audit-events", "clicks"};
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    for (long i = 0; i < j->n && !j->failed; i++) {
        const char *t = topics[i % 4];
        switch (j->what) {
        case PART_AUDIT: {
            size_t idx;
            bs_audit_event_reset(&ev);
            ev.time_us = 1764000000000000LL + i;
            ev.conn_id = (uint64_t)j->id;
            ev.listener = "clients";
            ev.broker_id = 1;
            ev.principal = (j->id & 1) ? "CN=producer-1,O=Example" : "CN=producer-2,O=Example";
            ev.source_ip = "10.0.3.7";
            ev.source_port = 51234;
            ev.api_key = 0; /* Produce */
            ev.api_version = 9;
            ev.correlation_id = (int32_t)i;
            ev.latency_us = 900;
            if (bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, t, strlen(t), &idx) !=
                    BS_OK ||
                bs_audit_event_add_partition(&ev, idx, (int32_t)(i % 12)) != BS_OK ||
                bs_audit_event_set_volume(&ev, idx, 100, 10240) != BS_OK ||
                bs_audit_log_record(j->log, &ev) != BS_OK)
                j->failed = 1;
            break;
        }
        case PART_METRICS:
            bs_metric_add(j->requests, 1);
            bs_metric_add(j->bytes, 10240);
            bs_histogram_observe(j->latency, 0.0009);
            break;
        case PART_LOOKUP:
            if (!bs_metrics_counter_kv("bench_locks_topic_bytes_total", "bench", "topic", t, NULL))
                j->failed = 1;
            break;
        }
    }
    bs_audit_event_free(&ev);
    return NULL;
}

/* Run `what` with `threads` threads over n requests; ns per request. */
static double round_ns(part what, int threads, long n, int *failed)
{
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.data_events = BS_AUDIT_DATA_AGGREGATE;
    o.broker_id = 1;
    bs_audit_log *log = NULL;
    if (what == PART_AUDIT && bs_audit_log_open(&o, NULL, NULL, null_emit, NULL, &log) != BS_OK) {
        *failed = 1;
        return 0;
    }
    static const double bounds[] = {0.001, 0.01, 0.1, 1};
    bs_metric *req = bs_metrics_counter("bench_locks_requests_total", "bench", NULL);
    bs_metric *bytes = bs_metrics_counter("bench_locks_bytes_total", "bench", NULL);
    bs_histogram *lat = bs_metrics_histogram("bench_locks_seconds", "bench", NULL, bounds, 4);
    job jobs[8];
    pthread_t tids[8];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){what, n / threads, i, log, req, bytes, lat, 0};
        pthread_create(&tids[i], NULL, worker, &jobs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        *failed |= jobs[i].failed;
    }
    double dt = now_s() - t0;
    if (log && bs_audit_log_close(log, 1764000001000000LL) != BS_OK) *failed = 1;
    return dt * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 400000;
    if (n <= 0) {
        fprintf(stderr, "usage: bs_bench_locks [REQUESTS]\n");
        return 2;
    }
    static const char *names[] = {"audit aggregate (log mutex)", "metrics add/observe (atomics)",
                                  "series lookup (registry mutex)"};
    static const int counts[] = {1, 2, 4, 8};
    int failed = 0;
    printf("online cores: %ld, %ld requests per round\n", sysconf(_SC_NPROCESSORS_ONLN), n);
    for (int p = 0; p < 3; p++) {
        double base = 0;
        for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
            double ns = round_ns((part)p, counts[k], n, &failed);
            if (k == 0) base = ns;
            printf("%-32s %d thread(s): %8.1f ns/request (wall, all threads)  x%.2f vs 1\n",
                   names[p], counts[k], ns, base > 0 ? ns / base : 0);
        }
    }
    if (failed) fprintf(stderr, "bench: a call failed\n");
    return failed;
}
