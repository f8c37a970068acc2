/* Unit tests for src/events/event_bus.c: order and completeness from several
 * threads into a real spool, the queue bound, and the full-spool policy per
 * stream (metrics dropped and counted, audit kept in order and retried), and
 * the audit group commit (audit_sync_ms). */
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerside/event_bus.h"
#include "brokerside/spool.h"
#include "spool_testutil.h"
#include "test.h"

#define THREADS 4
#define PER_THREAD 500

typedef struct producer {
    bs_event_bus *bus;
    int id;
    int refused;
} producer;

/* Submit PER_THREAD audit events "t<id>-<n>" as fast as possible. */
static void *produce(void *arg)
{
    producer *p = arg;
    for (int n = 0; n < PER_THREAD; n++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "t%d-%d", p->id, n);
        if (bs_event_bus_submit(p->bus, BS_STREAM_AUDIT, msg, (size_t)len) != BS_OK) p->refused++;
    }
    return NULL;
}

/* Drain until `want` events were spooled (ev_async wakes the loop). */
static void run_until_spooled(struct ev_loop *loop, bs_event_bus *bus, uint64_t want)
{
    bs_event_bus_stats st;
    for (int i = 0; i < 100000; i++) {
        bs_event_bus_get_stats(bus, &st);
        if (st.spooled[BS_STREAM_AUDIT] >= want) return;
        ev_run(loop, EVRUN_NOWAIT);
    }
}

static void test_threads_in_order_into_the_spool(void)
{
    char *dir = tu_mkdtemp("bus");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = dir;
    bs_spool *sp = NULL;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    bs_event_bus *bus = NULL;
    CHECK_EQ(bs_event_bus_new(loop, sp, NULL, &bus), BS_OK);
    pthread_t th[THREADS];
    producer pr[THREADS];
    for (int i = 0; i < THREADS; i++) {
        pr[i] = (producer){.bus = bus, .id = i};
        CHECK_EQ(pthread_create(&th[i], NULL, produce, &pr[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(pr[i].refused, 0);
    }
    run_until_spooled(loop, bus, THREADS * PER_THREAD);
    bs_event_bus_stats st;
    bs_event_bus_get_stats(bus, &st);
    CHECK_EQ(st.spooled[BS_STREAM_AUDIT], THREADS * PER_THREAD);
    CHECK_EQ(st.queued_events, 0);
    CHECK_EQ(st.queued_bytes, 0);
    /* Every event once, each thread's in its submission order. */
    bs_spool_reader *r = NULL;
    CHECK_EQ(bs_spool_reader_open_at(sp, BS_STREAM_AUDIT, 0, &r), BS_OK);
    int next[THREADS] = {0};
    int total = 0;
    bs_spool_record rec;
    while (r && bs_spool_read(r, &rec) == BS_OK) {
        int t = -1, n = -1;
        char buf[32] = {0};
        memcpy(buf, rec.payload, rec.len < 31 ? rec.len : 31);
        CHECK_EQ(sscanf(buf, "t%d-%d", &t, &n), 2);
        if (t >= 0 && t < THREADS) {
            CHECK_EQ(n, next[t]);
            next[t] = n + 1;
        }
        total++;
    }
    CHECK_EQ(total, THREADS * PER_THREAD);
    bs_spool_reader_close(r);
    bs_event_bus_free(bus);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

static void test_queue_bound_refuses_and_counts(void)
{
    char *dir = tu_mkdtemp("bus");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = dir;
    bs_spool *sp = NULL;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    bs_event_bus *bus = NULL;
    bs_event_bus_options bo = {.max_queued_bytes = 100};
    CHECK_EQ(bs_event_bus_new(loop, sp, &bo, &bus), BS_OK);
    char big[60];
    memset(big, 'a', sizeof big);
    CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_AUDIT, big, sizeof big), BS_OK);
    CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_AUDIT, big, sizeof big), BS_E_FULL);
    CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_METRICS, big, sizeof big), BS_E_FULL);
    bs_event_bus_stats st;
    bs_event_bus_get_stats(bus, &st);
    CHECK_EQ(st.dropped[BS_STREAM_AUDIT], 1);
    CHECK_EQ(st.dropped[BS_STREAM_METRICS], 1);
    CHECK_EQ(st.queued_events, 1);
    /* Draining makes room again. */
    CHECK_EQ(bs_event_bus_drain(bus), 0);
    CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_AUDIT, big, sizeof big), BS_OK);
    CHECK_EQ(bs_event_bus_drain(bus), 0);
    bs_event_bus_get_stats(bus, &st);
    CHECK_EQ(st.spooled[BS_STREAM_AUDIT], 2);
    bs_event_bus_free(bus);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

/* Run bs_event_bus_submit with stderr captured into out[outlen]. */
static bs_status submit_capturing_log(bs_event_bus *bus, const void *p, size_t len, char *out,
                                      size_t outlen)
{
    char path[] = "/tmp/bs-bus-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    bs_status st = bs_event_bus_submit(bus, BS_STREAM_AUDIT, p, len);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, outlen - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return st;
}

/* A queue past half full blocks audit, and the log names that reason (not
 * a spool refusal, which an operator would look for on the disk). */
static void test_half_full_queue_blocks_audit_with_its_reason(void)
{
    char *dir = tu_mkdtemp("bus");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = dir;
    bs_spool *sp = NULL;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    bs_event_bus *bus = NULL;
    bs_event_bus_options bo = {.max_queued_bytes = 100};
    CHECK_EQ(bs_event_bus_new(loop, sp, &bo, &bus), BS_OK);
    char ev[60], log[4096];
    memset(ev, 'a', sizeof ev);
    CHECK(!bs_event_bus_audit_blocked(bus));
    CHECK_EQ(submit_capturing_log(bus, ev, sizeof ev, log, sizeof log), BS_OK);
    CHECK(bs_event_bus_audit_blocked(bus));
    CHECK(strstr(log, "audit events cannot be stored (the queue is over half full)") != NULL);
    CHECK(strstr(log, "spool refuses") == NULL);
    /* the spool takes it: unblocked */
    CHECK_EQ(bs_event_bus_drain(bus), 0);
    CHECK(!bs_event_bus_audit_blocked(bus));
    bs_event_bus_free(bus);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

static void test_full_spool_drops_metrics_keeps_audit(void)
{
    char *dir = tu_mkdtemp("bus");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = dir;
    so.max_bytes = 8192;
    so.segment_bytes = 4096;
    so.audit_reserve_bytes = 1024;
    bs_spool *sp = NULL;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    bs_event_bus *bus = NULL;
    CHECK_EQ(bs_event_bus_new(loop, sp, NULL, &bus), BS_OK);
    char rec[500];
    memset(rec, 'm', sizeof rec);
    /* Metrics beyond max_bytes: refused by the spool, dropped and counted. */
    for (int i = 0; i < 30; i++)
        CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_METRICS, rec, sizeof rec), BS_OK);
    CHECK_EQ(bs_event_bus_drain(bus), 0);
    bs_event_bus_stats st;
    bs_event_bus_get_stats(bus, &st);
    CHECK(st.dropped[BS_STREAM_METRICS] > 0);
    CHECK(st.spooled[BS_STREAM_METRICS] > 0);
    CHECK_EQ(st.spooled[BS_STREAM_METRICS] + st.dropped[BS_STREAM_METRICS], 30);
    /* Audit uses the reserve, then is kept queued (in order) when that is gone too. */
    memset(rec, 'a', sizeof rec);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_AUDIT, rec, sizeof rec), BS_OK);
    size_t left = bs_event_bus_drain(bus);
    bs_event_bus_get_stats(bus, &st);
    CHECK(left > 0);
    CHECK(st.spooled[BS_STREAM_AUDIT] >= 1);
    CHECK_EQ(st.spooled[BS_STREAM_AUDIT] + left, 6);
    CHECK_EQ(st.dropped[BS_STREAM_AUDIT], 0);
    CHECK(st.spool_refusals >= 1);
    /* Another drain changes nothing while the spool stays full: still kept. */
    CHECK_EQ(bs_event_bus_drain(bus), left);
    /* Freeing with audit still queued counts each as lost (logged as an error). */
    bs_event_bus_free(bus);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

/* Records of `stream` a fresh reader sees now (readers see synced records only). */
static int visible_records(bs_spool *sp, bs_stream stream)
{
    bs_spool_reader *r = NULL;
    if (bs_spool_reader_open_at(sp, stream, 0, &r) != BS_OK || !r) return -1;
    int n = 0;
    bs_spool_record rec;
    while (bs_spool_read(r, &rec) == BS_OK)
        n++;
    bs_spool_reader_close(r);
    return n;
}

/* Group commit: audit records are appended at once but made durable (and so
 * visible to sinks) only when the window's timer fires; one window covers
 * every audit record appended meanwhile; freeing the bus syncs an open window. */
static void test_audit_group_commit(void)
{
    char *dir = tu_mkdtemp("bus-gc");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = dir;
    bs_spool *sp = NULL;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK); /* no loop attached: no periodic sync */
    bs_event_bus_options bo = {.audit_sync_ms = 50};
    bs_event_bus *bus = NULL;
    CHECK_EQ(bs_event_bus_new(loop, sp, &bo, &bus), BS_OK);

    CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_AUDIT, "a1", 2), BS_OK);
    run_until_spooled(loop, bus, 1);
    CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_AUDIT, "a2", 2), BS_OK);
    run_until_spooled(loop, bus, 2);
    bs_spool_stats ss;
    bs_spool_get_stats(sp, &ss);
    CHECK_EQ(ss.appended, 2);                     /* written to the spool file ... */
    CHECK_EQ(visible_records(sp, BS_STREAM_AUDIT), 0); /* ... not yet synced */
    /* the window's timer fires: one sync covers both */
    for (int i = 0; i < 1000 && visible_records(sp, BS_STREAM_AUDIT) < 2; i++)
        ev_run(loop, EVRUN_ONCE);
    CHECK_EQ(visible_records(sp, BS_STREAM_AUDIT), 2);

    /* an open window is synced when the bus is freed (shutdown) */
    CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_AUDIT, "a3", 2), BS_OK);
    run_until_spooled(loop, bus, 3);
    CHECK_EQ(visible_records(sp, BS_STREAM_AUDIT), 2);
    bs_event_bus_free(bus);
    CHECK_EQ(visible_records(sp, BS_STREAM_AUDIT), 3);
    bs_spool_close(sp);

    /* audit_sync_ms 0: durable when the drain returns */
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    CHECK_EQ(bs_event_bus_new(loop, sp, NULL, &bus), BS_OK);
    CHECK_EQ(bs_event_bus_submit(bus, BS_STREAM_AUDIT, "a4", 2), BS_OK);
    run_until_spooled(loop, bus, 1);
    CHECK_EQ(visible_records(sp, BS_STREAM_AUDIT), 4);
    bs_event_bus_free(bus);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    RUN(test_threads_in_order_into_the_spool);
    RUN(test_queue_bound_refuses_and_counts);
    RUN(test_half_full_queue_blocks_audit_with_its_reason);
    RUN(test_full_spool_drops_metrics_keeps_audit);
    RUN(test_audit_group_commit);
    return test_report();
}
