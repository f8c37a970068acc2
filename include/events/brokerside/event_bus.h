/*
 * event_bus.h - hands events from any thread to the spool on the control
 * thread.
 *
 * Producers (worker threads, the audit log's emit callback, the control
 * thread itself) call bs_event_bus_submit(): the payload is copied into a
 * bounded, mutex-protected queue; the submit that makes the queue non-empty
 * wakes the control thread (ev_async; later submits ride along), which
 * appends the queued events to the spool in submission order
 * (bs_spool_append: written to the spool file, so they survive a crash of
 * the process). Producers never block on I/O: submit only takes the queue's
 * mutex.
 *
 * Audit durability (fdatasync, so they survive a power loss too):
 *  - audit_sync_ms == 0: the audit records of each drain are made durable
 *    with one BS_SPOOL_FSYNC before the drain returns;
 *  - audit_sync_ms > 0 (group commit): the first drain that appends audit
 *    records arms a one-shot timer; when it fires one fdatasync covers every
 *    audit record appended meanwhile. One audit fsync per window however
 *    many requests are audited; sinks see the records (readers see only
 *    synced records) at most audit_sync_ms later. bs_event_bus_free syncs a
 *    pending window.
 *
 * When the spool refuses an event (BS_E_FULL: spool limit or full disk):
 *  - metrics: dropped, counted in brokerside_events_dropped_total{stream="metrics"};
 *  - audit (and logs, which normally reach the spool through the tailer):
 *    kept at the head of the queue and retried every retry_ms; nothing
 *    behind it overtakes it.
 * The queue itself is bounded (max_queued_bytes). A submit beyond it is
 * refused with BS_E_FULL and counted in brokerside_events_dropped_total
 * {stream}; an audit event refused this way is logged as an ERROR (the audit
 * log then does not advance its chain, see audit.h). An event larger than
 * the spool's record limit is dropped when drained (logged, counted).
 */
#ifndef BROKERSIDE_EVENT_BUS_H
#define BROKERSIDE_EVENT_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/spool.h"
#include "brokerside/status.h"

struct ev_loop;

typedef struct bs_event_bus_options {
    size_t max_queued_bytes; /* payload bytes waiting for the spool; default 64 MiB */
    uint32_t retry_ms;       /* retry period while the spool refuses; default 1000 */
    uint32_t audit_sync_ms;  /* group-commit window for audit fsyncs; 0 (default) = per drain */
} bs_event_bus_options;

typedef struct bs_event_bus bs_event_bus;

/* Create a bus that feeds `sp` from the control loop `loop` (both borrowed;
 * they must outlive the bus). Zero option fields (or o == NULL) take the
 * defaults. Control thread. Free with bs_event_bus_free. */
bs_status bs_event_bus_new(struct ev_loop *loop, bs_spool *sp, const bs_event_bus_options *o,
                           bs_event_bus **out) BS_WUR;

/* Queue a copy of payload[0..len) for `stream`. Any thread. BS_E_FULL when
 * the queue is at its bound (counted; loud for audit) or BS_E_NOMEM. Never blocks on I/O. */
bs_status bs_event_bus_submit(bs_event_bus *b, bs_stream stream, const void *payload,
                              size_t len) BS_WUR;

/* Append everything the spool accepts now (control thread). Also run by the
 * ev_async and the retry timer. Returns the number of events still queued. */
size_t bs_event_bus_drain(bs_event_bus *b);

/* True while audit events cannot be stored: the spool refused the last
 * drain's audit event (full spool or disk), or the queue holds more than
 * half of max_queued_bytes. Cleared by the drain that stores everything again
 * (and brings the queue under half). Any thread, lock-free. Gauge
 * brokerside_audit_blocked; changes are logged. */
bool bs_event_bus_audit_blocked(bs_event_bus *b);

typedef struct bs_event_bus_stats {
    uint64_t submitted[BS_STREAM_COUNT];
    uint64_t spooled[BS_STREAM_COUNT];
    uint64_t dropped[BS_STREAM_COUNT]; /* refused at submit or dropped when drained */
    uint64_t spool_refusals;           /* drains that stopped on a full spool */
    size_t queued_events, queued_bytes;
} bs_event_bus_stats;

/* A consistent snapshot of the counters. Any thread. */
void bs_event_bus_get_stats(bs_event_bus *b, bs_event_bus_stats *st);

/* Drain one last time, then free. Events that still cannot be spooled are
 * lost: each audit event among them is counted and the total is logged as an
 * ERROR. Control thread; every producer must have stopped. NULL is a no-op. */
void bs_event_bus_free(bs_event_bus *b);

#endif
