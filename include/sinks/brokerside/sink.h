/*
 * sink.h - the sink framework: batching, delivery, retries, dead letters.
 *
 * A sink type (file, S3, CloudWatch, ...) implements bs_sink_ops. The
 * framework owns one spool reader per (sink, stream) it subscribes to and
 * runs one "lane" per stream: it reads events from the lane's cursor, builds
 * a batch within the sink's limits (count, bytes, age), hands it to
 * ops->deliver, and acknowledges the spool cursor only after EVERY entry of
 * the batch is final (delivered or dead-lettered). That is at-least-once:
 * a crash before the ack redelivers the whole batch; each entry carries the
 * stable id "<spool id>-<seq>" so consumers can drop duplicates.
 *
 * Per-entry results: DELIVERED; RETRYABLE (resent after exponential backoff
 * with jitter, only the failed entries, until max_attempts if set);
 * PERMANENT (written with the reason to the dead-letter file, NDJSON, fsynced,
 * counted). Metrics (label sink="<name>"): brokerside_sink_events_delivered_total,
 * _retried_total, _dead_lettered_total, brokerside_sink_lag_bytes.
 *
 * Threading: everything runs on the control thread's libev loop.
 */
#ifndef BROKERSIDE_SINK_H
#define BROKERSIDE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/spool.h"
#include "brokerside/status.h"

struct ev_loop;

typedef enum bs_sink_result {
    BS_SINK_PENDING = 0, /* not decided: the sink must set one of the others */
    BS_SINK_DELIVERED,
    BS_SINK_RETRYABLE,
    BS_SINK_PERMANENT,
} bs_sink_result;

typedef struct bs_sink_entry {
    uint64_t seq;
    char id[56];      /* stable event id "<spool id>-<seq>" */
    uint8_t *payload; /* owned by the framework; the sink must not free it */
    size_t len;
    bs_sink_result result; /* the sink sets it for PENDING entries only */
    char reason[160];      /* for RETRYABLE / PERMANENT: why (NUL-terminated) */
} bs_sink_entry;

typedef struct bs_sink bs_sink;

typedef struct bs_sink_batch {
    bs_stream stream;
    bs_sink_entry *entries; /* in spool order */
    size_t n;
    size_t bytes;     /* payload bytes of all entries */
    unsigned attempt; /* 0 on first delivery, +1 per retry */
    bs_sink *owner;   /* framework private */
} bs_sink_batch;

typedef struct bs_sink_limits {
    size_t max_events;      /* per batch; default 1000 */
    size_t max_bytes;       /* per batch, counting payload + event_overhead each; default 1 MiB */
    size_t event_overhead;  /* bytes added per event by the sink's API (e.g. 26 for CW Logs) */
    size_t max_event_bytes; /* larger events are dead-lettered unsent; default = max_bytes */
    uint32_t max_age_ms;    /* a non-empty batch is sent after this long; default 1000 */
} bs_sink_limits;

typedef struct bs_sink_ops {
    const char *type;
    /* Deliver the PENDING entries of `b`. The sink sets each one's result
     * (and reason) and then calls bs_sink_batch_done(b) exactly once, either
     * before returning or later from the loop thread. `b` stays valid and
     * unchanged until then. */
    void (*deliver)(void *impl, bs_sink_batch *b);
    /* Free the implementation. A batch still in flight must be abandoned
     * WITHOUT calling bs_sink_batch_done (it will be redelivered next run). */
    void (*destroy)(void *impl);
} bs_sink_ops;

typedef struct bs_sink_options {
    const char *name;            /* [A-Za-z0-9_.-]{1,64}: metrics label and cursor name */
    unsigned streams;            /* BS_STREAM_MASK bits; 0 = all */
    bs_sink_limits limits;       /* zero fields take the defaults above */
    uint32_t backoff_initial_ms; /* first retry delay; default 200 */
    uint32_t
        backoff_max_ms; /* cap; default 30000. Delay = min(cap, initial*2^(attempt-1)) * U[0.5,1] */
    unsigned max_attempts; /* 0 = retry forever (default); else dead-letter after this many */
    const char *dead_letter_path; /* default <spool dir>/deadletter/<name>.ndjson */
} bs_sink_options;

/* Create a sink over `sp` on `loop` and start dispatching. On BS_OK the sink
 * owns `impl` (ops->destroy frees it in bs_sink_destroy); on failure the
 * caller still owns it. BS_E_CONFIG for bad options, BS_E_STATE if a sink of
 * that name already reads the spool. */
bs_status bs_sink_create(struct ev_loop *loop, bs_spool *sp, const bs_sink_options *o,
                         const bs_sink_ops *ops, void *impl, bs_sink **out) BS_WUR;

/* Stop and free: ops->destroy(impl) first, then timers, readers and batches.
 * Unacknowledged events stay in the spool. NULL is a no-op. Must be called
 * before bs_spool_close. */
void bs_sink_destroy(bs_sink *s);

/* Completion of ops->deliver (see there). */
void bs_sink_batch_done(bs_sink_batch *b);

/* Look for new events now (normally driven by spool sync notifications). */
void bs_sink_kick(bs_sink *s);

/* Send open batches now regardless of age (used at shutdown / in tests). */
void bs_sink_flush(bs_sink *s);

/* True when every subscribed stream is acknowledged up to the last synced
 * record and nothing is open or in flight. */
bool bs_sink_idle(bs_sink *s);

typedef struct bs_sink_stats {
    uint64_t delivered, retried, dead_lettered, batches;
    uint64_t lag_bytes;    /* spool bytes after the furthest-behind lane's cursor (now) */
    char last_error[160];  /* reason of the last retried or dead-lettered entry; "" if none */
    int64_t last_error_ms; /* when (ms since the epoch); 0 if none */
} bs_sink_stats;
/* Counters plus the current lag and the last failure reason. */
void bs_sink_get_stats(const bs_sink *s, bs_sink_stats *st);

/* The sink's name (owned by the sink). */
const char *bs_sink_name(const bs_sink *s);

#endif
