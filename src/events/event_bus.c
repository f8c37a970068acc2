/*
 * event_bus.c - bounded queue from any thread to the spool on the control
 * thread (see event_bus.h).
 */
#include "brokerside/event_bus.h"

#include <ev.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/sidecar_action.h"

#define DEFAULT_MAX_QUEUED (64u * 1024 * 1024)
#define DEFAULT_RETRY_MS 1000u

typedef struct bus_node {
    struct bus_node *next;
    bs_stream stream;
    size_t len;
    uint8_t data[];
} bus_node;

struct bs_event_bus {
    struct ev_loop *loop;
    bs_spool *sp;
    bs_event_bus_options o;
    ev_async wake;
    ev_timer retry;
    ev_timer sync; /* group commit: one fdatasync per audit_sync_ms for audit appends */
    pthread_mutex_t lock; /* guards the queue and every counter below */
    bus_node *head, *tail;
    bs_event_bus_stats st;
    bs_metric *m_dropped[BS_STREAM_COUNT];
    bs_metric *m_queued_bytes, *m_blocked;
    /* audit events cannot be stored right now: the spool refused one, or
     * the queue is more than half full (bs_event_bus_audit_blocked) */
    atomic_bool audit_blocked;
    /* a SpoolFull audit record was made and no SpoolRecovered since
     * (control thread only: the drain) */
    bool spool_full_noted;
};

/* The SpoolFull / SpoolRecovered sidecar actions, on the edges of the
 * spool's refusals (not one per refused append). Called by the drain
 * without the bus lock: the recorder submits to this bus. */
static void note_spool_edge(bs_event_bus *b, bool refused)
{
    if (refused == b->spool_full_noted) return;
    b->spool_full_noted = refused;
    char bytes[24], queued[24];
    snprintf(bytes, sizeof bytes, "%" PRIu64, bs_spool_bytes(b->sp));
    pthread_mutex_lock(&b->lock);
    snprintf(queued, sizeof queued, "%zu", b->st.queued_events);
    pthread_mutex_unlock(&b->lock);
    bs_action_detail d[] = {{"spoolBytes", bytes}, {"queuedEvents", queued}};
    bs_sidecar_action a = {
        .kind = refused ? BS_ACTION_SPOOL_FULL : BS_ACTION_SPOOL_RECOVERED,
        .failed = refused,
        .subject_type = "spool",
        .subject = bs_spool_dir(b->sp),
        .message = refused ? "the spool refuses events (full or failing): requests that need an "
                             "audit event are refused until it takes them again"
                           : "the spool takes events again",
        .details = d,
        .n_details = BS_ARRAY_LEN(d)};
    bs_sidecar_action_emit(&a);
}

/* Recompute the audit-blocked flag (lock held). */
static void update_blocked(bs_event_bus *b, bool refused)
{
    bool now = refused || b->st.queued_bytes > b->o.max_queued_bytes / 2;
    if (atomic_exchange(&b->audit_blocked, now) != now) {
        bs_metric_set(b->m_blocked, now);
        if (now)
            BS_LOG_ERRORF("events",
                          "audit events cannot be stored (%s): requests that need an audit "
                          "event are refused and /readyz is false until they can",
                          refused ? "the spool refuses them" : "the queue is over half full");
        else
            BS_LOG_INFOF("events", "audit events are stored again: requests are accepted");
    }
}

/* Count one lost event of `stream` (lock held). */
static void count_drop(bs_event_bus *b, bs_stream stream)
{
    b->st.dropped[stream]++;
    bs_metric_add(b->m_dropped[stream], 1);
}

/* ev_async / retry timer: move queued events into the spool. */
static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    bs_event_bus_drain(w->data);
}

/* Sync timer: the group-commit window is over; make the audit records
 * appended during it durable with one fdatasync. */
static void on_sync(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    bs_event_bus *b = t->data;
    if (bs_spool_sync(b->sp) != BS_OK)
        BS_LOG_ERRORF("events", "spool sync failed after appending audit events");
}

/* Retry timer: the spool refused earlier; try again. */
static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    bs_event_bus_drain(t->data);
}

/* See event_bus.h. */
bs_status bs_event_bus_new(struct ev_loop *loop, bs_spool *sp, const bs_event_bus_options *o,
                           bs_event_bus **out)
{
    BS_ENSURE(loop && sp && out, BS_E_STATE);
    bs_event_bus *b = calloc(1, sizeof *b);
    if (!b) return BS_E_NOMEM;
    if (o) b->o = *o;
    if (!b->o.max_queued_bytes) b->o.max_queued_bytes = DEFAULT_MAX_QUEUED;
    if (!b->o.retry_ms) b->o.retry_ms = DEFAULT_RETRY_MS;
    b->loop = loop;
    b->sp = sp;
    pthread_mutex_init(&b->lock, NULL);
    for (int s = 0; s < BS_STREAM_COUNT; s++) {
        char labels[64];
        if (bs_metrics_labels(labels, sizeof labels, "stream", bs_stream_name((bs_stream)s),
                              NULL) != BS_OK)
            labels[0] = 0;
        b->m_dropped[s] = bs_metrics_counter(
            "brokerside_events_dropped_total",
            "Events lost before reaching the spool (queue full, or a metric snapshot the full "
            "spool refused), by stream",
            labels);
    }
    b->m_queued_bytes =
        bs_metrics_gauge("brokerside_events_queued_bytes", "Event bytes waiting for the spool", "");
    b->m_blocked = bs_metrics_gauge(
        "brokerside_audit_blocked",
        "1 while audit events cannot be stored (spool refusing them or queue over half full)", "");
    ev_async_init(&b->wake, on_wake);
    b->wake.data = b;
    ev_async_start(loop, &b->wake);
    /* The control thread must not stay alive just for the bus. */
    ev_unref(loop);
    ev_init(&b->retry, on_retry);
    b->retry.data = b;
    ev_init(&b->sync, on_sync);
    b->sync.data = b;
    *out = b;
    return BS_OK;
}

/* See event_bus.h. */
bs_status bs_event_bus_submit(bs_event_bus *b, bs_stream stream, const void *payload, size_t len)
{
    BS_ENSURE((unsigned)stream < BS_STREAM_COUNT, BS_E_STATE);
    bus_node *n = malloc(sizeof *n + len);
    if (!n) return BS_E_NOMEM;
    n->next = NULL;
    n->stream = stream;
    n->len = len;
    if (len) memcpy(n->data, payload, len);
    pthread_mutex_lock(&b->lock);
    /* Only the submit that makes the queue non-empty wakes the control
     * thread: the drain takes everything queued, so later submits ride
     * along (one wake-up per drain, not per event). */
    bool was_empty = b->head == NULL;
    b->st.submitted[stream]++;
    if (b->st.queued_bytes + len > b->o.max_queued_bytes) {
        count_drop(b, stream);
        uint64_t dropped = b->st.dropped[stream];
        size_t queued = b->st.queued_bytes;
        pthread_mutex_unlock(&b->lock);
        free(n);
        /* Audit must never vanish quietly; metric snapshots come again. */
        if (stream == BS_STREAM_AUDIT)
            BS_LOG_ERRORF("events",
                          "audit event refused: %zu bytes already wait for the spool "
                          "(limit %zu); %llu audit events refused so far",
                          queued, b->o.max_queued_bytes, (unsigned long long)dropped);
        return BS_E_FULL;
    }
    if (b->tail)
        b->tail->next = n;
    else
        b->head = n;
    b->tail = n;
    b->st.queued_events++;
    b->st.queued_bytes += len;
    bs_metric_set(b->m_queued_bytes, (int64_t)b->st.queued_bytes);
    /* over half full: blocked, for that reason (not a spool refusal) */
    if (b->st.queued_bytes > b->o.max_queued_bytes / 2) update_blocked(b, false);
    pthread_mutex_unlock(&b->lock);
    if (was_empty) ev_async_send(b->loop, &b->wake);
    return BS_OK;
}

/* Put the unprocessed list [head..tail] back in front of whatever producers
 * queued meanwhile, so the original order is kept. Lock held. */
static void requeue_front(bs_event_bus *b, bus_node *head, bus_node *tail)
{
    if (!head) return;
    tail->next = b->head;
    b->head = head;
    if (!b->tail) b->tail = tail;
}

/* See event_bus.h. The queue is taken as a whole so producers are not held
 * up by spool writes. Audit appends are made durable once per drain (with
 * the last audit record: fsync covers everything written before it) or, with
 * audit_sync_ms, once per group-commit window by the sync timer. */
size_t bs_event_bus_drain(bs_event_bus *b)
{
    pthread_mutex_lock(&b->lock);
    bus_node *n = b->head;
    b->head = b->tail = NULL;
    pthread_mutex_unlock(&b->lock);

    bus_node *last_audit = NULL;
    if (!b->o.audit_sync_ms)
        for (bus_node *p = n; p; p = p->next)
            if (p->stream == BS_STREAM_AUDIT) last_audit = p;

    size_t done_events = 0, done_bytes = 0;
    uint64_t spooled[BS_STREAM_COUNT] = {0}, dropped[BS_STREAM_COUNT] = {0};
    bool refused = false, need_sync = false;
    while (n) {
        unsigned flags = n == last_audit ? BS_SPOOL_FSYNC : 0;
        bs_status st = bs_spool_append(b->sp, n->stream, n->data, n->len, flags, NULL);
        if (st == BS_OK) {
            spooled[n->stream]++;
            if (n->stream == BS_STREAM_AUDIT && !flags) need_sync = true;
            if (flags) need_sync = false;
        } else if ((st == BS_E_FULL || st == BS_E_IO) && n->stream != BS_STREAM_METRICS) {
            /* Kept, in order: the spool logged the refusal; retry later. */
            refused = true;
            break;
        } else {
            if (st != BS_E_FULL)
                BS_LOG_ERRORF("events", "%s event of %zu bytes dropped: spool append: %s",
                              bs_stream_name(n->stream), n->len, bs_status_name(st));
            dropped[n->stream]++;
        }
        bus_node *next = n->next;
        done_events++;
        done_bytes += n->len;
        free(n);
        n = next;
    }
    /* An audit record appended before a refusal still wants its fsync. */
    if (need_sync && b->o.audit_sync_ms) {
        if (!ev_is_active(&b->sync)) {
            ev_timer_set(&b->sync, b->o.audit_sync_ms / 1000.0, 0.);
            ev_timer_start(b->loop, &b->sync);
        }
    } else if (need_sync && bs_spool_sync(b->sp) != BS_OK) {
        BS_LOG_ERRORF("events", "spool sync failed after appending audit events");
    }

    bus_node *tail = n;
    while (tail && tail->next)
        tail = tail->next;
    pthread_mutex_lock(&b->lock);
    requeue_front(b, n, tail);
    b->st.queued_events -= done_events;
    b->st.queued_bytes -= done_bytes;
    for (int s = 0; s < BS_STREAM_COUNT; s++) {
        b->st.spooled[s] += spooled[s];
        for (uint64_t i = 0; i < dropped[s]; i++)
            count_drop(b, (bs_stream)s);
    }
    if (refused) b->st.spool_refusals++;
    update_blocked(b, refused);
    size_t left = b->st.queued_events;
    bs_metric_set(b->m_queued_bytes, (int64_t)b->st.queued_bytes);
    pthread_mutex_unlock(&b->lock);

    note_spool_edge(b, refused);
    if (refused && !ev_is_active(&b->retry)) {
        ev_timer_set(&b->retry, b->o.retry_ms / 1000.0, 0.);
        ev_timer_start(b->loop, &b->retry);
    }
    return left;
}

/* See event_bus.h. */
bool bs_event_bus_audit_blocked(bs_event_bus *b)
{
    return b && atomic_load_explicit(&b->audit_blocked, memory_order_relaxed);
}

/* See event_bus.h. */
void bs_event_bus_get_stats(bs_event_bus *b, bs_event_bus_stats *st)
{
    pthread_mutex_lock(&b->lock);
    *st = b->st;
    pthread_mutex_unlock(&b->lock);
}

/* See event_bus.h. */
void bs_event_bus_free(bs_event_bus *b)
{
    if (!b) return;
    bs_event_bus_drain(b);
    uint64_t lost_audit = 0, lost = 0;
    for (bus_node *n = b->head; n;) {
        bus_node *next = n->next;
        if (n->stream == BS_STREAM_AUDIT) lost_audit++;
        count_drop(b, n->stream);
        lost++;
        free(n);
        n = next;
    }
    if (lost)
        BS_LOG_ERRORF("events",
                      "%llu events (%llu audit) could not be spooled before exit and are lost",
                      (unsigned long long)lost, (unsigned long long)lost_audit);
    ev_timer_stop(b->loop, &b->retry);
    if (ev_is_active(&b->sync)) {
        ev_timer_stop(b->loop, &b->sync);
        if (bs_spool_sync(b->sp) != BS_OK)
            BS_LOG_ERRORF("events", "spool sync failed for the last audit events");
    }
    ev_ref(b->loop);
    ev_async_stop(b->loop, &b->wake);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
