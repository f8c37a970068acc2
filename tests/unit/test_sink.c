/* Unit tests for src/sinks/sink.c with a fault-injecting in-test sink over a real spool. */
#include "brokerside/sink.h"

#include <ev.h>
#include <inttypes.h>

#include "brokerside/metrics.h"
#include "spool_testutil.h"
#include "test.h"

#define MAXSEQ 4096

/* The fault injector: decides each entry's result from its payload and the attempt. */
typedef struct faulty {
    struct ev_loop *loop;
    int delivered[MAXSEQ];        /* times each seq was reported delivered */
    int seen[MAXSEQ];             /* times each seq was offered */
    unsigned fail_first_attempts; /* every entry RETRYABLE while attempt < this */
    bool retry_every_third;       /* on attempt 0, every third entry RETRYABLE */
    bool async;                   /* complete from a timer, not inside deliver */
    bool hold;                    /* never complete (simulates a crash mid-delivery) */
    size_t max_batch_n, max_batch_bytes, max_cost, batches;
    double attempt_time[16];
    struct async_done {
        ev_timer t;
        struct faulty *f;
        bs_sink_batch *b;
    } later[BS_STREAM_COUNT]; /* one batch in flight per stream */
    bs_sink_batch *pending;   /* held batch */
    bool destroyed;
} faulty;

/* Apply the fault script to the batch and complete it. */
static void faulty_complete(faulty *f, bs_sink_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        bs_sink_entry *e = &b->entries[i];
        if (e->result != BS_SINK_PENDING) continue;
        if (e->seq < MAXSEQ) f->seen[e->seq]++;
        if (e->len >= 3 && memcmp(e->payload, "bad", 3) == 0) {
            e->result = BS_SINK_PERMANENT;
            snprintf(e->reason, sizeof e->reason, "rejected: payload starts with bad");
        } else if (b->attempt < f->fail_first_attempts ||
                   (f->retry_every_third && b->attempt == 0 && e->seq % 3 == 0)) {
            e->result = BS_SINK_RETRYABLE;
            snprintf(e->reason, sizeof e->reason, "injected throttling");
        } else {
            e->result = BS_SINK_DELIVERED;
            if (e->seq < MAXSEQ) f->delivered[e->seq]++;
        }
    }
    bs_sink_batch_done(b);
}

static void faulty_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct async_done *a = bs_container_of(w, struct async_done, t);
    bs_sink_batch *b = a->b;
    a->b = NULL;
    faulty_complete(a->f, b);
}

static void faulty_deliver(void *impl, bs_sink_batch *b)
{
    faulty *f = impl;
    f->batches++;
    if (b->n > f->max_batch_n) f->max_batch_n = b->n;
    if (b->bytes > f->max_batch_bytes) f->max_batch_bytes = b->bytes;
    size_t cost = 0; /* what the sink is asked to carry, with a 26-byte overhead each */
    for (size_t i = 0; i < b->n; i++)
        if (b->entries[i].result == BS_SINK_PENDING) cost += b->entries[i].len + 26;
    if (cost > f->max_cost) f->max_cost = cost;
    /* the loop's time, not the wall clock: the sink arms its age and backoff
     * timers from it, so gaps between attempts are at least the configured
     * delay however late this thread runs (ev_time() here could lag the time
     * the previous timer was armed from by any preemption) */
    if (b->attempt < 16) f->attempt_time[b->attempt] = ev_now(f->loop);
    if (f->hold) {
        f->pending = b;
        return;
    }
    if (f->async) {
        struct async_done *a = &f->later[b->stream];
        a->f = f;
        a->b = b;
        ev_timer_init(&a->t, faulty_timer_cb, 0.001, 0);
        ev_timer_start(f->loop, &a->t);
        return;
    }
    faulty_complete(f, b);
}

static void faulty_destroy(void *impl)
{
    faulty *f = impl;
    for (int i = 0; i < BS_STREAM_COUNT; i++)
        if (f->later[i].f) ev_timer_stop(f->loop, &f->later[i].t);
    f->destroyed = true;
}

static const bs_sink_ops faulty_ops = {"faulty", faulty_deliver, faulty_destroy};

/* Run the loop until the sink is idle or 20 s pass (hang guard only). */
static bool run_until_idle(struct ev_loop *loop, bs_spool *sp, bs_sink *s)
{
    /* idle is relative to synced records: make everything appended visible */
    if (bs_spool_sync(sp) != BS_OK) return false;
    ev_tstamp deadline = ev_time() + 20;
    while (ev_time() < deadline) {
        if (bs_sink_idle(s)) return true;
        ev_run(loop, EVRUN_ONCE);
    }
    return bs_sink_idle(s);
}

static bs_spool *open_spool(const char *dir, struct ev_loop *loop)
{
    bs_spool_options o;
    bs_spool_options_default(&o);
    o.dir = dir;
    o.segment_bytes = 16384;
    o.fsync_interval_ms = 5;
    bs_spool *sp = NULL;
    if (bs_spool_open(&o, &sp) != BS_OK) return NULL;
    bs_spool_attach_loop(sp, loop);
    return sp;
}

static void test_retry_and_dead_letter(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char *dir = tu_mkdtemp("sink");
    bs_spool *sp = open_spool(dir, loop);
    static faulty f;
    memset(&f, 0, sizeof f);
    f.loop = loop;
    f.retry_every_third = true;
    f.async = true;
    bs_sink_options o = {
        .name = "fi", .streams = BS_STREAM_MASK(BS_STREAM_LOGS) | BS_STREAM_MASK(BS_STREAM_AUDIT)};
    o.limits.max_events = 10;
    o.limits.max_age_ms = 20;
    o.backoff_initial_ms = 5;
    o.backoff_max_ms = 20;
    bs_sink *s;
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_OK);
    int nbad = 0;
    for (int i = 1; i <= 300; i++) {
        char ev[64];
        bool bad = i % 50 == 0;
        nbad += bad;
        int n = snprintf(ev, sizeof ev, "%s{\"n\":%d}", bad ? "bad" : "", i);
        CHECK_EQ(bs_spool_append(sp,
                                 i % 4 == 0 ? BS_STREAM_AUDIT
                                            : (i % 7 == 0 ? BS_STREAM_METRICS : BS_STREAM_LOGS),
                                 ev, (size_t)n, 0, NULL),
                 BS_OK);
    }
    CHECK(run_until_idle(loop, sp, s));
    int delivered = 0;
    for (int i = 1; i <= 300; i++) {
        bool metrics = i % 4 != 0 && i % 7 == 0;
        if (metrics) {
            CHECK_EQ(f.seen[i], 0); /* not subscribed */
            continue;
        }
        if (i % 50 == 0) {
            CHECK_EQ(f.delivered[i], 0);
            continue;
        }
        CHECK_EQ(f.delivered[i], 1);
        delivered++;
    }
    CHECK(f.max_batch_n <= 10);
    bs_sink_stats st;
    bs_sink_get_stats(s, &st);
    CHECK_EQ(st.delivered, (uint64_t)delivered);
    CHECK_EQ(st.dead_lettered, (uint64_t)nbad);
    CHECK(st.retried > 0);
    CHECK_EQ(bs_metric_value(bs_metrics_counter_kv("brokerside_sink_events_dead_lettered_total", "",
                                                   "sink", "fi", NULL)),
             nbad);
    CHECK_EQ(bs_metric_value(bs_metrics_counter_kv("brokerside_sink_events_retried_total", "",
                                                   "sink", "fi", NULL)),
             (int64_t)st.retried);
    CHECK_EQ(
        bs_metric_value(bs_metrics_gauge_kv("brokerside_sink_lag_bytes", "", "sink", "fi", NULL)),
        0);
    /* the dead-letter file holds each rejected event with its reason and id */
    char p[512];
    snprintf(p, sizeof p, "%s/deadletter/fi.ndjson", dir);
    char *dl = tu_slurp(p, NULL);
    CHECK(dl != NULL);
    if (dl) {
        int lines = 0;
        for (char *c = dl; *c; c++)
            lines += *c == '\n';
        CHECK_EQ(lines, nbad);
        CHECK(strstr(dl, "\"reason\":\"rejected: payload starts with bad\"") != NULL);
        CHECK(strstr(dl, "\"event\":\"bad{\\\"n\\\":50}\"") != NULL);
        CHECK(strstr(dl, bs_spool_id(sp)) != NULL);
        free(dl);
    }
    bs_sink_destroy(s);
    CHECK(f.destroyed);
    /* the cursor was persisted: a new sink with the same name has nothing to do */
    memset(&f, 0, sizeof f);
    f.loop = loop;
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_OK);
    CHECK(run_until_idle(loop, sp, s));
    CHECK_EQ(f.batches, 0);
    bs_sink_destroy(s);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

static void test_backoff_and_give_up(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char *dir = tu_mkdtemp("sink");
    bs_spool *sp = open_spool(dir, loop);
    static faulty f;
    memset(&f, 0, sizeof f);
    f.loop = loop;
    f.fail_first_attempts = 100;
    bs_sink_options o = {.name = "giveup"};
    o.limits.max_age_ms = 1;
    o.backoff_initial_ms = 20;
    o.backoff_max_ms = 1000;
    o.max_attempts = 4;
    bs_sink *s;
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_OK);
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_LOGS, "{\"a\":1}", 7, BS_SPOOL_FSYNC, NULL), BS_OK);
    CHECK(run_until_idle(loop, sp, s));
    bs_sink_stats st;
    bs_sink_get_stats(s, &st);
    CHECK_EQ(st.delivered, 0);
    CHECK_EQ(st.retried, 3);
    CHECK_EQ(st.dead_lettered, 1);
    /* exponential backoff with jitter in [d/2, d]: gaps at least 10, 20, 40 ms */
    for (int a = 1; a < 4; a++) {
        double gap = f.attempt_time[a] - f.attempt_time[a - 1];
        CHECK(gap >= 0.010 * (1 << (a - 1)) * 0.8);
    }
    char p[512];
    snprintf(p, sizeof p, "%s/deadletter/giveup.ndjson", dir);
    char *dl = tu_slurp(p, NULL);
    CHECK(dl && strstr(dl, "gave up after 4 attempts: injected throttling"));
    free(dl);
    bs_sink_destroy(s);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

static void test_limits_and_age(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char *dir = tu_mkdtemp("sink");
    bs_spool *sp = open_spool(dir, loop);
    static faulty f;
    memset(&f, 0, sizeof f);
    f.loop = loop;
    bs_sink_options o = {.name = "lim"};
    o.limits.max_events = 1000;
    o.limits.max_bytes = 1000;
    o.limits.event_overhead = 26;
    o.limits.max_event_bytes = 500;
    o.limits.max_age_ms = 50;
    bs_sink *s;
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_OK);
    char ev[600];
    memset(ev, 'e', sizeof ev);
    for (int i = 0; i < 40; i++)
        CHECK_EQ(bs_spool_append(sp, BS_STREAM_METRICS, ev, 74, 0, NULL), BS_OK);
    /* too large for this sink: dead-lettered without being offered */
    uint64_t big;
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_METRICS, ev, 600, 0, &big), BS_OK);
    CHECK(run_until_idle(loop, sp, s));
    /* (74 + 26) * 10 = 1000: ten per batch */
    CHECK_EQ(f.max_cost, 1000);
    CHECK_EQ(f.seen[big], 0);
    bs_sink_stats st;
    bs_sink_get_stats(s, &st);
    CHECK_EQ(st.delivered, 40);
    CHECK_EQ(st.dead_lettered, 1);
    /* a lone event waits for max_age before it is sent */
    size_t before = f.batches;
    /* t0 before the append: the batch's age starts at or after it, so the
     * bound below holds however long this thread is preempted */
    double t0 = ev_time();
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_METRICS, ev, 10, BS_SPOOL_FSYNC, NULL), BS_OK);
    CHECK_EQ(f.batches, before);
    CHECK(run_until_idle(loop, sp, s));
    CHECK_EQ(f.batches, before + 1);
    /* delivered no earlier than max_age after the append; lower bound only
     * (libev may round its wake-up by a millisecond) */
    CHECK(f.attempt_time[0] - t0 >= 0.040);
    bs_sink_destroy(s);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

static void test_unacked_redelivered_with_same_ids(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char *dir = tu_mkdtemp("sink");
    bs_spool *sp = open_spool(dir, loop);
    static faulty f;
    memset(&f, 0, sizeof f);
    f.loop = loop;
    f.hold = true;
    bs_sink_options o = {.name = "held"};
    o.limits.max_age_ms = 1;
    bs_sink *s;
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_OK);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(bs_spool_append(sp, BS_STREAM_AUDIT, "{}", 2, 0, NULL), BS_OK);
    CHECK_EQ(bs_spool_sync(sp), BS_OK);
    ev_tstamp deadline = ev_time() + 10;
    while (!f.pending && ev_time() < deadline)
        ev_run(loop, EVRUN_ONCE);
    CHECK(f.pending != NULL);
    char id0[56];
    snprintf(id0, sizeof id0, "%s", f.pending ? f.pending->entries[0].id : "");
    /* "crash": the sink goes away with the batch in flight, nothing acknowledged */
    bs_sink_destroy(s);
    memset(&f, 0, sizeof f);
    f.loop = loop;
    f.hold = true;
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_OK);
    deadline = ev_time() + 10;
    while (!f.pending && ev_time() < deadline)
        ev_run(loop, EVRUN_ONCE);
    CHECK(f.pending && f.pending->n == 5);
    if (f.pending) CHECK_STR(f.pending->entries[0].id, id0);
    bs_sink_destroy(s);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

static void test_other_streams_do_not_pin_segments(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char *dir = tu_mkdtemp("sink");
    bs_spool *sp = open_spool(dir, loop);
    static faulty f;
    memset(&f, 0, sizeof f);
    f.loop = loop;
    bs_sink_options o = {.name = "auditonly", .streams = BS_STREAM_MASK(BS_STREAM_AUDIT)};
    o.limits.max_age_ms = 1;
    bs_sink *s;
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_OK);
    char ev[200];
    memset(ev, 'l', sizeof ev);
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_AUDIT, "{}", 2, 0, NULL), BS_OK);
    for (int i = 0; i < 500; i++)
        CHECK_EQ(bs_spool_append(sp, BS_STREAM_LOGS, ev, sizeof ev, 0, NULL), BS_OK);
    CHECK(run_until_idle(loop, sp, s));
    /* 500 log records (~7 segments): the audit lane acknowledged past the
     * records it does not ship, so they were deleted as soon as written */
    CHECK_EQ(tu_count_suffix(dir, ".seg"), 1);
    CHECK_EQ(bs_metric_value(
                 bs_metrics_gauge_kv("brokerside_sink_lag_bytes", "", "sink", "auditonly", NULL)),
             0);
    bs_sink_stats st;
    bs_sink_get_stats(s, &st);
    CHECK_EQ(st.delivered, 1);
    bs_sink_destroy(s);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

static void test_bad_options(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char *dir = tu_mkdtemp("sink");
    bs_spool *sp = open_spool(dir, loop);
    static faulty f;
    memset(&f, 0, sizeof f);
    f.loop = loop;
    bs_sink *s, *s2;
    bs_sink_options o = {.name = ""};
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_E_CONFIG);
    o.name = "x";
    o.streams = 0x10;
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_E_CONFIG);
    o.streams = 0;
    o.name = "has/slash";
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_E_CONFIG);
    o.name = "x";
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s), BS_OK);
    CHECK_EQ(bs_sink_create(loop, sp, &o, &faulty_ops, &f, &s2), BS_E_STATE);
    bs_sink_destroy(s);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    RUN(test_retry_and_dead_letter);
    RUN(test_backoff_and_give_up);
    RUN(test_limits_and_age);
    RUN(test_unacked_redelivered_with_same_ids);
    RUN(test_other_streams_do_not_pin_segments);
    RUN(test_bad_options);
    return test_report();
}
