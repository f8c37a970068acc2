/*
 * spool.h - the durable, append-only event queue on disk (docs/spool.md).
 *
 * Every event (audit, metrics, logs) is appended to the spool before any
 * sink sees it. The spool is a directory of segment files
 * `<base seq, 20 digits>.seg`, each a sequence of checksummed records.
 * Each sink reads every stream it ships through its own reader, whose
 * acknowledgement cursor is persisted atomically; a segment is deleted once
 * every registered reader has acknowledged all of it.
 *
 * Threading: a spool and its readers belong to ONE thread (the control
 * thread); nothing here locks. Workers hand events to that thread.
 *
 * Durability: bs_spool_append() writes the record with write(2) (it is in the
 * page cache when the call returns, so it survives a crash of this process).
 * It is made durable against power loss by bs_spool_sync(), which runs every
 * `fsync_interval_ms` from a libev timer (bs_spool_attach_loop), at close,
 * and immediately for appends with BS_SPOOL_FSYNC (audit fsync-before-ack).
 * Readers only ever see synced records, so a sink can never acknowledge an
 * event whose sequence number a crash could hand out again.
 *
 * Full spool (`max_bytes`) and full disk: see bs_spool_append().
 */
#ifndef BROKERSIDE_SPOOL_H
#define BROKERSIDE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/status.h"

struct ev_loop;

typedef enum bs_stream {
    BS_STREAM_AUDIT = 0,
    BS_STREAM_METRICS = 1,
    BS_STREAM_LOGS = 2,
} bs_stream;
#define BS_STREAM_COUNT 3
#define BS_STREAM_MASK(s) (1u << (unsigned)(s))
#define BS_STREAM_ALL 7u

/* "audit" | "metrics" | "logs"; "unknown" otherwise. Static string. */
const char *bs_stream_name(bs_stream s);

typedef struct bs_spool_options {
    const char *dir;              /* required; created with mode 0700 if missing */
    uint64_t segment_bytes;       /* roll to a new segment beyond this; default 64 MiB */
    uint64_t max_bytes;           /* admission limit for metrics; default 1 GiB */
    unsigned logs_limit_pct;      /* logs admitted up to this % of max_bytes; default 80 */
    uint64_t audit_reserve_bytes; /* audit admitted up to max_bytes + this; default max_bytes/16 */
    uint32_t fsync_interval_ms;   /* timer period for bs_spool_sync; default 100 */
    uint32_t max_record_bytes;    /* largest payload; default 8 MiB (hard cap 256 MiB) */
} bs_spool_options;

/* Fill `o` with the defaults above (dir = NULL). */
void bs_spool_options_default(bs_spool_options *o);

typedef struct bs_spool bs_spool;
typedef struct bs_spool_reader bs_spool_reader;

/* A position in the spool: just past a record (segment base, byte offset,
 * sequence number of the next record). Plain value, copyable. */
typedef struct bs_spool_pos {
    uint64_t seg;
    uint64_t off;
    uint64_t next_seq;
} bs_spool_pos;

typedef struct bs_spool_record {
    uint64_t seq; /* unique within this spool, increasing */
    bs_stream stream;
    const uint8_t *payload; /* owned by the reader; valid until its next read/close */
    size_t len;
    bs_spool_pos end; /* pass to bs_spool_ack() to acknowledge up to this record */
} bs_spool_record;

/* Open (creating if needed) the spool in o->dir and recover it: the last
 * segment is scanned, a torn or corrupt tail is truncated (counted in
 * brokerside_spool_truncated_bytes_total and logged, not fatal); a corrupt
 * record followed by valid ones is left for readers to skip (counted in
 * brokerside_spool_corrupt_records_total). Zero option fields take their
 * defaults. The spool is locked first (flock on <dir>/spool.lock, held until
 * bs_spool_close): BS_E_BUSY, with nothing in the directory touched, when
 * another process (or another open in this one) holds it. BS_E_CONFIG for bad
 * options, BS_E_IO if the directory or a segment cannot be used. On success *out must be closed with bs_spool_close. */
bs_status bs_spool_open(const bs_spool_options *o, bs_spool **out) BS_WUR;

/* Sync what is pending, stop the fsync timer and free the spool. Every reader
 * (and every sink, which owns readers) must be closed first. NULL is a no-op. */
void bs_spool_close(bs_spool *sp);

/* Start the fsync timer on `loop` (the control thread's loop). The spool
 * never runs the loop itself. Call at most once; stopped by bs_spool_close. */
void bs_spool_attach_loop(bs_spool *sp, struct ev_loop *loop);

#define BS_SPOOL_FSYNC 1u /* make the record durable before returning */

/* Append one event. On BS_OK *seq_out (may be NULL) receives its sequence
 * number. Admission by stream, with `used` = bytes on disk + this record:
 *   logs:    used <= max_bytes * logs_limit_pct / 100
 *   metrics: used <= max_bytes
 *   audit:   used <= max_bytes + audit_reserve_bytes
 * A refused record returns BS_E_FULL and counts
 * brokerside_spool_rejected_total{stream}; for audit it is also logged as an
 * error (never silent). ENOSPC / EFBIG / EDQUOT from the disk are handled the
 * same way (the partial record is cut off again). BS_E_TOO_LARGE if len >
 * max_record_bytes, BS_E_IO on other write or fsync errors. */
bs_status bs_spool_append(bs_spool *sp, bs_stream stream, const void *payload, size_t len,
                          unsigned flags, uint64_t *seq_out) BS_WUR;

/* fdatasync the active segment if anything was appended since the last sync,
 * then let readers see the new records (their notify callbacks run). */
bs_status bs_spool_sync(bs_spool *sp) BS_WUR;

/* Bytes on disk in segments (brokerside_spool_bytes). */
uint64_t bs_spool_bytes(const bs_spool *sp);
/* Sequence number the next append will get. */
uint64_t bs_spool_next_seq(const bs_spool *sp);
/* This spool's identity: 32 hex characters created with the directory. Event
 * ids are "<spool id>-<seq>" (bs_spool_event_id). Owned by the spool. */
const char *bs_spool_id(const bs_spool *sp);
/* Write "<spool id>-<seq>" into out (at least 54 bytes). */
void bs_spool_event_id(const bs_spool *sp, uint64_t seq, char *out, size_t outlen);
/* The directory (owned by the spool). */
const char *bs_spool_dir(const bs_spool *sp);

typedef struct bs_spool_stats {
    uint64_t appended;
    uint64_t rejected[BS_STREAM_COUNT];
    uint64_t truncated_bytes; /* cut from torn tails at open */
    uint64_t corrupt_records; /* corrupt regions skipped (open + readers) */
    uint64_t segments;
} bs_spool_stats;
void bs_spool_get_stats(const bs_spool *sp, bs_spool_stats *st);

/* Open the registered reader `name` ([A-Za-z0-9_.-]{1,64}) for `stream`. Its
 * cursor lives in <dir>/cursors/<name>.<stream>.cur; a reader without one
 * starts at the oldest record. Registered readers hold segments: a segment is
 * deleted only when every registered reader has acknowledged past it (with no
 * registered reader nothing is deleted). At most one reader per name+stream.
 * Close with bs_spool_reader_close before bs_spool_close. */
bs_status bs_spool_reader_open(bs_spool *sp, const char *name, bs_stream stream,
                               bs_spool_reader **out) BS_WUR;
/* An unregistered, unpersisted reader of `stream` starting at the first record
 * with seq >= from_seq (for recovery scans). bs_spool_ack is BS_E_STATE. */
bs_status bs_spool_reader_open_at(bs_spool *sp, bs_stream stream, uint64_t from_seq,
                                  bs_spool_reader **out) BS_WUR;
void bs_spool_reader_close(bs_spool_reader *r);

/* Next synced record of the reader's stream after its read position.
 * BS_E_AGAIN when there is none yet. Corrupt regions are skipped (counted). */
bs_status bs_spool_read(bs_spool_reader *r, bs_spool_record *rec) BS_WUR;
/* Step back over the record returned by the last bs_spool_read (once). */
void bs_spool_unread(bs_spool_reader *r);
/* Move the read position back to the acknowledged cursor. */
void bs_spool_reader_rewind(bs_spool_reader *r);
/* Acknowledge every record up to `end` (a record's .end); persist the cursor
 * (temp file + fsync + rename + directory fsync) and delete segments nobody
 * needs any more. BS_E_IO if the cursor could not be written (the in-memory
 * cursor still moves; a restart re-reads, which is at-least-once). */
bs_status bs_spool_ack(bs_spool_reader *r, bs_spool_pos end) BS_WUR;
/* The read position (after the last record read or skipped) and the
 * acknowledged cursor. Acknowledging the read position when nothing of the
 * reader's stream is pending moves it past other streams' records. */
bs_spool_pos bs_spool_reader_pos(const bs_spool_reader *r);
bs_spool_pos bs_spool_reader_cursor(const bs_spool_reader *r);
/* Bytes in the spool after this reader's acknowledged cursor. */
uint64_t bs_spool_reader_lag_bytes(const bs_spool_reader *r);
/* Called (from bs_spool_sync) when new records may be readable. Note that
 * bs_spool_sync also runs inside bs_spool_append (BS_SPOOL_FSYNC, segment
 * roll), so the callback may run there: it must not close readers or append. */
void bs_spool_reader_set_notify(bs_spool_reader *r, void (*fn)(void *arg), void *arg);

#endif
