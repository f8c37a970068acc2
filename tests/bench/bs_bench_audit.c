/*
 * bs_bench_audit - audit events rendered + chained (+ signed digests every
 * 1000 events) per second on one core, with a sink that only counts bytes.
 * Usage: bs_bench_audit [EVENTS]   (default 200000). Not a test: it prints
 * numbers for docs/benchmarks.md and `make bench`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/audit.h"

typedef struct counter {
    unsigned long long lines, bytes;
} counter;

/* Emit callback: count only (measures rendering and chaining, not I/O). */
static bs_status count_emit(const char *line, size_t len, void *arg)
{
    (void)line;
    counter *c = arg;
    c->lines++;
    c->bytes += len + 1;
    return BS_OK;
}

/* Monotonic time in seconds. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run n events through a log in `mode`; prints one result line. */
static int run(const char *label, bs_audit_data_mode mode, long n)
{
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.data_events = mode;
    o.broker_id = 1;
    counter c = {0};
    bs_audit_log *log = NULL;
    if (bs_audit_log_open(&o, NULL, NULL, count_emit, &c, &log) != BS_OK) return 1;
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        bs_audit_event_reset(&ev);
        ev.time_us = 1764000000000000LL + i;
        ev.conn_id = (uint64_t)(i % 64);
        ev.listener = "clients";
        ev.broker_id = 1;
        ev.principal = (i & 1) ? "CN=producer-1,O=Example" : "CN=producer-2,O=Example";
        ev.source_ip = "10.0.3.7";
        ev.source_port = 51234;
        ev.api_key = 0; /* Produce */
        ev.api_version = 9;
        ev.correlation_id = (int32_t)i;
        ev.latency_us = 900;
        size_t idx;
        static const char *topics[] = {"orders", "payments", "audit-events", "clicks"};
        const char *t = topics[i % 4];
        if (bs_audit_event_set_client_id(&ev, "bench-producer", 14) != BS_OK ||
            bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, t, strlen(t), &idx) != BS_OK ||
            bs_audit_event_add_partition(&ev, idx, (int32_t)(i % 12)) != BS_OK ||
            bs_audit_event_set_partition_error(&ev, idx, (int32_t)(i % 12), 0) != BS_OK ||
            bs_audit_event_set_volume(&ev, idx, 100, 10240) != BS_OK ||
            bs_audit_log_record(log, &ev) != BS_OK) {
            fprintf(stderr, "bench: record failed\n");
            return 1;
        }
    }
    if (bs_audit_log_close(log, 1764000001000000LL) != BS_OK) return 1;
    double dt = now_s() - t0;
    printf("%-10s %8ld events in %.3f s: %10.0f events/s, %6.1f MB/s of audit lines (%llu lines)\n",
           label, n, dt, n / dt, c.bytes / dt / 1e6, c.lines);
    bs_audit_event_free(&ev);
    return 0;
}

/* Run the three data modes with EVENTS events each. */
int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0) {
        fprintf(stderr, "usage: bs_bench_audit [EVENTS]\n");
        return 2;
    }
    int rc = run("each", BS_AUDIT_DATA_EACH, n);
    rc |= run("aggregate", BS_AUDIT_DATA_AGGREGATE, n);
    rc |= run("off", BS_AUDIT_DATA_OFF, n);
    return rc;
}
