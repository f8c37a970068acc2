/* sink.c - batching, delivery, retries and dead letters for every sink (see sink.h). */
#include "brokerside/sink.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/buf.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/sidecar_action.h"

#define MOD "sink"

enum lane_state { L_FILLING, L_INFLIGHT, L_BACKOFF };

/* One stream of one sink: a reader, the batch being built or delivered. */
typedef struct lane {
    bs_sink *s;
    bs_stream stream;
    bs_spool_reader *r;
    bs_sink_batch b;
    size_t cap;     /* entries allocated */
    uint8_t *fresh; /* per entry: was PENDING when this attempt was sent */
    size_t cost;    /* bytes + overhead of the entries, for max_bytes */
    enum lane_state state;
    bs_spool_pos last_end;
    ev_tstamp opened;
    ev_timer timer; /* batch age while filling, backoff while retrying */
    bool active;    /* lane subscribed */
    bool running, rerun, in_deliver, done_sync;
} lane;

struct bs_sink {
    struct ev_loop *loop;
    bs_spool *sp;
    char name[65];
    const bs_sink_ops *ops;
    void *impl;
    bs_sink_limits lim;
    uint32_t backoff_initial_ms, backoff_max_ms;
    unsigned max_attempts;
    char *dlq_path;
    bool flushing, destroying;
    lane lanes[BS_STREAM_COUNT];
    bs_sink_stats st;
    bs_metric *m_delivered, *m_retried, *m_dead, *m_lag;
    unsigned rng;
    /* SinkEventsDeadLettered audit records: at most one per DL_NOTE_S */
    uint64_t dl_unnoted;
    ev_tstamp dl_noted_at;
    bool dl_noted;
};

/* At most one SinkEventsDeadLettered audit record per sink this often: an
 * audit sink that rejects everything must not feed on its own records. */
#define DL_NOTE_S 60.0

/* Forward: drive a lane (defined below). */
static void run(lane *l);

/* Seconds since the epoch as ISO 8601 UTC with milliseconds into out[32]. */
static void now_iso(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%.20s.%03dZ", base, (int)(ts.tv_nsec / 1000000) % 1000);
}

/* Append the PERMANENT entries of the batch to the dead-letter file (one
 * write, then fsync). BS_E_IO if they are not durably there. */
static bs_status dead_letter(bs_sink *s, lane *l, size_t count)
{
    bs_wbuf w;
    char ts[64];
    bs_status st;
    int fd = -1;
    bs_wbuf_init(&w, 0);
    now_iso(ts, sizeof ts);
    for (size_t i = 0; i < l->b.n; i++) {
        bs_sink_entry *e = &l->b.entries[i];
        if (e->result != BS_SINK_PERMANENT) continue;
        bs_wbuf_printf(&w, "{\"time\":\"%s\",\"sink\":", ts);
        bs_wbuf_put_json_string(&w, s->name, strlen(s->name));
        bs_wbuf_printf(
            &w, ",\"stream\":\"%s\",\"id\":\"%s\",\"seq\":%" PRIu64 ",\"attempts\":%u,\"reason\":",
            bs_stream_name(l->stream), e->id, e->seq, l->b.attempt + 1);
        bs_wbuf_put_json_string(&w, e->reason, strnlen(e->reason, sizeof e->reason));
        bs_wbuf_put_str(&w, ",\"event\":");
        /* the payload may not be valid JSON: carry it as a string */
        bs_wbuf_put_json_string(&w, (const char *)e->payload, e->len);
        bs_wbuf_put_str(&w, "}\n");
    }
    BS_GUARD_GOTO(st, bs_wbuf_status(&w), out);
    fd = open(s->dlq_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        st = BS_E_IO;
        goto out;
    }
    size_t done = 0;
    while (done < w.len) {
        ssize_t n = write(fd, w.data + done, w.len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            st = BS_E_IO;
            goto out;
        }
        done += (size_t)n;
    }
    st = fsync(fd) == 0 ? BS_OK : BS_E_IO;
    if (st == BS_OK)
        BS_LOG_WARNF(MOD, "sink %s: %zu %s event(s) dead-lettered to %s", s->name, count,
                     bs_stream_name(l->stream), s->dlq_path);
out:
    if (st != BS_OK)
        BS_LOG_ERRORF(MOD, "sink %s: cannot write dead-letter file %s: %s (will retry)", s->name,
                      s->dlq_path, strerror(errno));
    if (fd >= 0) close(fd);
    bs_wbuf_free(&w);
    return st;
}

/* Record that `count` events of `stream` were dead-lettered as a sidecar
 * action (sidecar_action.h), rate-limited to one record per DL_NOTE_S per
 * sink; a record counts every dead letter since the previous one. The
 * reason is the first entry's (a sink's error text, never a payload). */
static void note_dead_letter(bs_sink *s, lane *l, size_t count)
{
    s->dl_unnoted += count;
    ev_tstamp now = ev_now(s->loop);
    if (s->dl_noted && now - s->dl_noted_at < DL_NOTE_S) return;
    const char *reason = "";
    for (size_t i = 0; i < l->b.n && !reason[0]; i++)
        if (l->b.entries[i].result == BS_SINK_PERMANENT) reason = l->b.entries[i].reason;
    char n[24], total[24];
    snprintf(n, sizeof n, "%" PRIu64, s->dl_unnoted);
    snprintf(total, sizeof total, "%" PRIu64, s->st.dead_lettered);
    bs_action_detail d[] = {{"stream", bs_stream_name(l->stream)},
                            {"events", n},
                            {"deadLetteredTotal", total},
                            {"file", s->dlq_path},
                            {"reason", reason}};
    bs_sidecar_action a = {.kind = BS_ACTION_SINK_DEAD_LETTERED,
                           .failed = true,
                           .subject_type = "sink",
                           .subject = s->name,
                           .message = "events the sink's service refused for good were written "
                                      "to the dead-letter file",
                           .details = d,
                           .n_details = BS_ARRAY_LEN(d)};
    bs_sidecar_action_emit(&a);
    s->dl_unnoted = 0;
    s->dl_noted = true;
    s->dl_noted_at = now;
}

/* Free the batch entries' payloads and reset the batch to empty. */
static void batch_clear(lane *l)
{
    for (size_t i = 0; i < l->b.n; i++)
        free(l->b.entries[i].payload);
    l->b.n = 0;
    l->b.bytes = 0;
    l->b.attempt = 0;
    l->cost = 0;
}

/* The furthest-behind lane's lag in bytes. */
static uint64_t max_lag(const bs_sink *s)
{
    uint64_t max = 0;
    for (int i = 0; i < BS_STREAM_COUNT; i++)
        if (s->lanes[i].active) {
            uint64_t v = bs_spool_reader_lag_bytes(s->lanes[i].r);
            if (v > max) max = v;
        }
    return max;
}

/* Remember why an entry failed (for /status). */
static void note_error(bs_sink *s, const char *reason)
{
    if (!reason[0]) return;
    snprintf(s->st.last_error, sizeof s->st.last_error, "%s", reason);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->st.last_error_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Update the lag gauge: the furthest-behind lane of this sink. */
static void update_lag(bs_sink *s)
{
    uint64_t max = 0;
    for (int i = 0; i < BS_STREAM_COUNT; i++)
        if (s->lanes[i].active) {
            uint64_t v = bs_spool_reader_lag_bytes(s->lanes[i].r);
            if (v > max) max = v;
        }
    bs_metric_set(s->m_lag, (int64_t)max);
}

/* Backoff before attempt `attempt` (>= 1), jittered into [d/2, d]. */
static double backoff_s(bs_sink *s, unsigned attempt)
{
    double d = s->backoff_initial_ms;
    for (unsigned i = 1; i < attempt && d < s->backoff_max_ms; i++)
        d *= 2;
    if (d > s->backoff_max_ms) d = s->backoff_max_ms;
    double j = 0.5 + 0.5 * ((double)rand_r(&s->rng) / (double)RAND_MAX);
    return d * j / 1000.0;
}

/* Settle the results of the attempt that just completed: count, dead-letter,
 * schedule a retry of the failed entries or acknowledge the whole batch. */
static void finish(lane *l)
{
    bs_sink *s = l->s;
    size_t retry = 0, perm = 0, delivered = 0;
    for (size_t i = 0; i < l->b.n; i++) {
        bs_sink_entry *e = &l->b.entries[i];
        if (!l->fresh[i]) continue;
        if (e->result == BS_SINK_PENDING) {
            e->result = BS_SINK_RETRYABLE;
            snprintf(e->reason, sizeof e->reason, "sink left the event undecided");
        }
        if (e->result == BS_SINK_RETRYABLE && s->max_attempts &&
            l->b.attempt + 1 >= s->max_attempts) {
            char why[sizeof e->reason];
            memcpy(why, e->reason, sizeof why);
            why[sizeof why - 1] = 0;
            snprintf(e->reason, sizeof e->reason, "gave up after %u attempts: %.120s",
                     l->b.attempt + 1, why);
            e->result = BS_SINK_PERMANENT;
        }
        if (e->result == BS_SINK_PERMANENT || e->result == BS_SINK_RETRYABLE)
            note_error(s, e->reason);
        if (e->result == BS_SINK_PERMANENT)
            perm++;
        else if (e->result == BS_SINK_RETRYABLE)
            retry++;
        else
            delivered++;
    }
    if (perm) {
        if (dead_letter(s, l, perm) == BS_OK) {
            s->st.dead_lettered += perm;
            bs_metric_add(s->m_dead, (int64_t)perm);
            note_dead_letter(s, l, perm);
            /* DELIVERED from here on means "final": the dead-letter file has it */
            for (size_t i = 0; i < l->b.n; i++)
                if (l->fresh[i] && l->b.entries[i].result == BS_SINK_PERMANENT)
                    l->b.entries[i].result = BS_SINK_DELIVERED;
        } else {
            for (size_t i = 0; i < l->b.n; i++)
                if (l->fresh[i] && l->b.entries[i].result == BS_SINK_PERMANENT) {
                    l->b.entries[i].result = BS_SINK_RETRYABLE;
                    l->b.entries[i].reason[0] = 0;
                    retry++;
                }
        }
    }
    s->st.delivered += delivered;
    bs_metric_add(s->m_delivered, (int64_t)delivered);
    if (retry) {
        for (size_t i = 0; i < l->b.n; i++) {
            l->fresh[i] = l->b.entries[i].result == BS_SINK_RETRYABLE;
            if (l->fresh[i]) l->b.entries[i].result = BS_SINK_PENDING;
        }
        l->b.attempt++;
        s->st.retried += retry;
        bs_metric_add(s->m_retried, (int64_t)retry);
        l->state = L_BACKOFF;
        double d = backoff_s(s, l->b.attempt);
        BS_LOG_WARNF(MOD, "sink %s: %zu %s event(s) failed (%s), retry %u in %.3fs", s->name, retry,
                     bs_stream_name(l->stream),
                     l->b.entries[0].reason[0] ? "see reasons" : "retryable", l->b.attempt, d);
        ev_timer_stop(s->loop, &l->timer);
        ev_timer_set(&l->timer, d, 0);
        ev_timer_start(s->loop, &l->timer);
        return;
    }
    if (bs_spool_ack(l->r, l->last_end) != BS_OK)
        BS_LOG_ERRORF(MOD, "sink %s: cursor not persisted; a restart will redeliver", s->name);
    batch_clear(l);
    l->state = L_FILLING;
    update_lag(s);
}

/* Hand the batch (its PENDING entries) to the sink. */
static void send_batch(lane *l)
{
    bs_sink *s = l->s;
    ev_timer_stop(s->loop, &l->timer);
    l->state = L_INFLIGHT;
    bool any = false;
    for (size_t i = 0; i < l->b.n; i++) {
        /* first attempt: everything (incl. oversized entries failed up front);
         * retries: only the entries that failed retryably */
        l->fresh[i] = l->b.attempt == 0 || l->b.entries[i].result == BS_SINK_PENDING;
        if (l->b.entries[i].result == BS_SINK_PENDING) any = true;
    }
    if (l->b.attempt == 0) s->st.batches++;
    if (!any) {
        /* nothing for the sink (only oversized events): settle directly */
        finish(l);
        l->rerun = true;
        return;
    }
    l->in_deliver = true;
    l->done_sync = false;
    s->ops->deliver(s->impl, &l->b);
    l->in_deliver = false;
    if (l->done_sync) {
        finish(l);
        l->rerun = true;
    }
}

/* Append a copy of `rec` to the batch. */
static bs_status batch_add(lane *l, const bs_spool_record *rec)
{
    bs_sink *s = l->s;
    if (l->b.n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        bs_sink_entry *ne = realloc(l->b.entries, nc * sizeof *ne);
        if (!ne) return BS_E_NOMEM;
        l->b.entries = ne;
        uint8_t *nf = realloc(l->fresh, nc);
        if (!nf) return BS_E_NOMEM;
        l->fresh = nf;
        l->cap = nc;
    }
    bs_sink_entry *e = &l->b.entries[l->b.n];
    memset(e, 0, sizeof *e);
    e->payload = malloc(rec->len ? rec->len : 1);
    if (!e->payload) return BS_E_NOMEM;
    memcpy(e->payload, rec->payload, rec->len);
    e->len = rec->len;
    e->seq = rec->seq;
    bs_spool_event_id(s->sp, rec->seq, e->id, sizeof e->id);
    if (rec->len > s->lim.max_event_bytes) {
        e->result = BS_SINK_PERMANENT;
        snprintf(e->reason, sizeof e->reason, "event of %zu bytes exceeds the sink's limit of %zu",
                 rec->len, s->lim.max_event_bytes);
    } else {
        l->cost += rec->len + s->lim.event_overhead;
    }
    l->b.bytes += rec->len;
    l->b.n++;
    l->last_end = rec->end;
    return BS_OK;
}

/* One pass: fill the batch from the spool, send it when full or old enough. */
static void step(lane *l)
{
    bs_sink *s = l->s;
    if (l->state != L_FILLING) return;
    /* the loop's cached time may be stale after a long callback */
    ev_now_update(s->loop);
    bool full = false;
    while (l->b.n < s->lim.max_events) {
        bs_spool_record rec;
        bs_status st = bs_spool_read(l->r, &rec);
        if (st == BS_E_AGAIN) break;
        if (st != BS_OK) {
            BS_LOG_ERRORF(MOD, "sink %s: reading the spool failed: %s", s->name,
                          bs_status_name(st));
            break;
        }
        size_t c = rec.len > s->lim.max_event_bytes ? 0 : rec.len + s->lim.event_overhead;
        if (l->b.n > 0 && l->cost + c > s->lim.max_bytes) {
            bs_spool_unread(l->r);
            full = true;
            break;
        }
        if (batch_add(l, &rec) != BS_OK) {
            /* out of memory: leave the record for the next attempt */
            bs_spool_unread(l->r);
            BS_LOG_ERRORF(MOD, "sink %s: out of memory building a batch", s->name);
            full = l->b.n > 0;
            break;
        }
        if (l->b.n == 1) l->opened = ev_now(s->loop);
    }
    if (l->b.n == 0) {
        /* only other streams' records passed by: move the cursor over them so
         * this lane neither holds segments nor shows lag for them */
        bs_spool_pos p = bs_spool_reader_pos(l->r);
        bs_spool_pos c = bs_spool_reader_cursor(l->r);
        if (p.seg != c.seg || p.off != c.off) {
            if (bs_spool_ack(l->r, p) != BS_OK)
                BS_LOG_ERRORF(MOD, "sink %s: cursor not persisted", s->name);
            update_lag(s);
        }
        return;
    }
    if (l->b.n >= s->lim.max_events) full = true;
    double age = ev_now(s->loop) - l->opened, max_age = s->lim.max_age_ms / 1000.0;
    if (full || s->flushing || age >= max_age) {
        send_batch(l);
        return;
    }
    if (!ev_is_active(&l->timer)) {
        ev_timer_set(&l->timer, max_age - age, 0);
        ev_timer_start(s->loop, &l->timer);
    }
}

/* Drive a lane until it has nothing more to do right now (no recursion:
 * synchronous completions loop here). */
static void run(lane *l)
{
    if (l->s->destroying) return;
    if (l->running) {
        l->rerun = true;
        return;
    }
    l->running = true;
    do {
        l->rerun = false;
        step(l);
    } while (l->rerun);
    l->running = false;
}

/* Age or backoff timer fired. */
static void lane_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    lane *l = bs_container_of(w, lane, timer);
    if (l->state == L_BACKOFF) {
        l->running = true;
        send_batch(l);
        l->running = false;
        if (l->rerun) run(l);
        return;
    }
    /* an age timer: the batch is due */
    if (l->state == L_FILLING && l->b.n > 0) {
        l->running = true;
        send_batch(l);
        l->running = false;
    }
    run(l);
}

/* Spool notification: new synced records. */
static void lane_notify(void *arg)
{
    run((lane *)arg);
}

/* See sink.h. */
void bs_sink_batch_done(bs_sink_batch *b)
{
    bs_sink *s = b->owner;
    lane *l = &s->lanes[b->stream];
    if (l->in_deliver) {
        l->done_sync = true;
        return;
    }
    if (s->destroying) return;
    finish(l);
    run(l);
}

/* Create the dead-letter directory and compute its path. */
static bs_status setup_dlq(bs_sink *s, const char *path)
{
    if (path) {
        s->dlq_path = strdup(path);
        return s->dlq_path ? BS_OK : BS_E_NOMEM;
    }
    char dir[4200];
    int n = snprintf(dir, sizeof dir, "%s/deadletter", bs_spool_dir(s->sp));
    BS_ENSURE(n > 0 && (size_t)n < sizeof dir, BS_E_TOO_LARGE);
    BS_ENSURE(mkdir(dir, 0700) == 0 || errno == EEXIST, BS_E_IO);
    size_t len = strlen(dir) + strlen(s->name) + 16;
    s->dlq_path = malloc(len);
    BS_ENSURE(s->dlq_path, BS_E_NOMEM);
    snprintf(s->dlq_path, len, "%s/%s.ndjson", dir, s->name);
    return BS_OK;
}

/* See sink.h. */
bs_status bs_sink_create(struct ev_loop *loop, bs_spool *sp, const bs_sink_options *o,
                         const bs_sink_ops *ops, void *impl, bs_sink **out)
{
    bs_status st = BS_OK;
    BS_ENSURE(loop && sp && o && o->name && ops && ops->deliver && ops->destroy && out,
              BS_E_CONFIG);
    size_t nl = strlen(o->name);
    BS_ENSURE(nl >= 1 && nl <= 64, BS_E_CONFIG);
    BS_ENSURE((o->streams & ~BS_STREAM_ALL) == 0, BS_E_CONFIG);
    bs_sink *s = calloc(1, sizeof *s);
    BS_ENSURE(s, BS_E_NOMEM);
    s->loop = loop;
    s->sp = sp;
    memcpy(s->name, o->name, nl + 1);
    s->ops = ops;
    s->lim = o->limits;
    if (!s->lim.max_events) s->lim.max_events = 1000;
    if (!s->lim.max_bytes) s->lim.max_bytes = 1u << 20;
    if (!s->lim.max_event_bytes) s->lim.max_event_bytes = s->lim.max_bytes;
    if (!s->lim.max_age_ms) s->lim.max_age_ms = 1000;
    s->backoff_initial_ms = o->backoff_initial_ms ? o->backoff_initial_ms : 200;
    s->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 30000;
    if (s->backoff_max_ms < s->backoff_initial_ms) s->backoff_max_ms = s->backoff_initial_ms;
    s->max_attempts = o->max_attempts;
    s->rng = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)s;
    s->m_delivered = bs_metrics_counter_kv("brokerside_sink_events_delivered_total",
                                           "Events a sink acknowledged", "sink", s->name, NULL);
    s->m_retried = bs_metrics_counter_kv("brokerside_sink_events_retried_total",
                                         "Event deliveries retried", "sink", s->name, NULL);
    s->m_dead =
        bs_metrics_counter_kv("brokerside_sink_events_dead_lettered_total",
                              "Events written to the dead-letter file", "sink", s->name, NULL);
    s->m_lag =
        bs_metrics_gauge_kv("brokerside_sink_lag_bytes",
                            "Spool bytes not yet acknowledged by a sink", "sink", s->name, NULL);
    BS_GUARD_GOTO(st, setup_dlq(s, o->dead_letter_path), fail);
    unsigned mask = o->streams ? o->streams : BS_STREAM_ALL;
    for (int i = 0; i < BS_STREAM_COUNT; i++) {
        lane *l = &s->lanes[i];
        l->s = s;
        l->stream = (bs_stream)i;
        l->b.stream = (bs_stream)i;
        l->b.owner = s;
        ev_timer_init(&l->timer, lane_timer_cb, 1, 0);
        if (!(mask & BS_STREAM_MASK(i))) continue;
        BS_GUARD_GOTO(st, bs_spool_reader_open(sp, s->name, (bs_stream)i, &l->r), fail);
        l->active = true;
        bs_spool_reader_set_notify(l->r, lane_notify, l);
    }
    s->impl = impl;
    *out = s;
    update_lag(s);
    for (int i = 0; i < BS_STREAM_COUNT; i++)
        if (s->lanes[i].active) run(&s->lanes[i]);
    return BS_OK;
fail:
    for (int i = 0; i < BS_STREAM_COUNT; i++)
        bs_spool_reader_close(s->lanes[i].r);
    free(s->dlq_path);
    free(s);
    return st;
}

/* See sink.h. */
void bs_sink_destroy(bs_sink *s)
{
    if (!s) return;
    s->destroying = true;
    s->ops->destroy(s->impl);
    for (int i = 0; i < BS_STREAM_COUNT; i++) {
        lane *l = &s->lanes[i];
        ev_timer_stop(s->loop, &l->timer);
        batch_clear(l);
        free(l->b.entries);
        free(l->fresh);
        bs_spool_reader_close(l->r);
    }
    free(s->dlq_path);
    free(s);
}

/* See sink.h. */
void bs_sink_kick(bs_sink *s)
{
    for (int i = 0; i < BS_STREAM_COUNT; i++)
        if (s->lanes[i].active) run(&s->lanes[i]);
}

/* See sink.h. */
void bs_sink_flush(bs_sink *s)
{
    s->flushing = true;
    bs_sink_kick(s);
    s->flushing = false;
}

/* See sink.h. */
bool bs_sink_idle(bs_sink *s)
{
    for (int i = 0; i < BS_STREAM_COUNT; i++) {
        lane *l = &s->lanes[i];
        if (!l->active) continue;
        if (l->state != L_FILLING || l->b.n > 0) return false;
        bs_spool_record rec;
        if (bs_spool_read(l->r, &rec) == BS_OK) {
            bs_spool_unread(l->r);
            return false;
        }
    }
    return true;
}

/* See sink.h. */
void bs_sink_get_stats(const bs_sink *s, bs_sink_stats *st)
{
    *st = s->st;
    st->lag_bytes = max_lag(s);
}

const char *bs_sink_name(const bs_sink *s)
{
    return s->name;
}
