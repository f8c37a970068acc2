/*
 * logtail.h - follow the broker's log4j files into the spool (stream "logs").
 *
 * Files are given as paths or glob patterns and are re-globbed at every poll,
 * so files that appear later are picked up. A file is identified by
 * (device, inode), not by name:
 *  - rename-and-create rotation: the renamed file is still followed by inode
 *    (drained to EOF first if it no longer matches a pattern), the new file
 *    at the path starts at offset 0;
 *  - copytruncate: a file whose size drops below our offset, or whose first
 *    bytes change, restarts at offset 0.
 * Files of format "plain" (options.plain): every line is one event, its
 * text the message. Multi-line events (log4j, the default): a line that starts with `[yyyy-MM-dd HH:mm:ss,SSS] LEVEL`
 * starts an event; every other line (stack frames, `Caused by:`) joins the
 * current one. An event is emitted when the next one starts, after
 * `flush_ms` without new data in that file, or at `max_event_bytes`.
 * Fields: time (ISO 8601 UTC; log4j writes no zone, so the timestamps are
 * read as local time `tz_offset_min` minutes east of UTC, default 0 = UTC),
 * level, logger (Kafka's layout `[ts] LEVEL message (logger)`), message,
 * and the source: file, dev, inode, offset, end (byte range in the file).
 *
 * Checkpoints: after events are appended, the spool is synced and only then
 * are the per-file offsets (dev, inode, offset, hash of the first bytes)
 * written to `state_path` atomically. On start the checkpoint is loaded and
 * the logs records the spool received after it are scanned, so events that
 * reached the spool just before a crash are not read twice. Nothing is lost
 * because offsets never move past an event that is not in the spool.
 * When the spool refuses an event (full) the tailer stops reading and
 * retries at the next poll (brokerside_logtail_blocked_total counts it).
 *
 * The tailer must be the only writer of the spool's logs stream. Polling
 * (every poll_ms) rather than inotify: rotation and truncation are detected
 * the same way on every file system. Control thread only.
 */
#ifndef BROKERSIDE_LOGTAIL_H
#define BROKERSIDE_LOGTAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/spool.h"
#include "brokerside/status.h"

struct ev_loop;

typedef struct bs_logtail_options {
    const char *const *files; /* paths or glob(3) patterns */
    /* per entry of `files`: format "plain", every line one event with only
     * `message` (and the source fields); NULL or false: the log4j rules */
    const bool *plain;
    size_t n_files;
    const char *state_path; /* checkpoint file (required) */
    uint32_t poll_ms;       /* default 250 */
    uint32_t flush_ms;      /* quiet time before an event is complete; default 1000 */
    int tz_offset_min;      /* zone of log4j timestamps, minutes east of UTC; default 0 */
    size_t max_event_bytes; /* longer events are split; default 256 KiB */
    bool start_at_end; /* files without a checkpoint: skip existing content (default: read it) */
} bs_logtail_options;

typedef struct bs_logtail bs_logtail;

/* Load the checkpoint, reconcile it with the spool, glob the files and (when
 * loop is not NULL) start the poll timer. BS_E_CONFIG for bad options,
 * BS_E_MALFORMED for an unreadable checkpoint, BS_E_IO for a checkpoint that
 * cannot be read, BS_E_BUSY when another process holds the checkpoint's
 * lock (<state_path>.lock, flock; held until bs_logtail_free) - checked
 * before the checkpoint is read. Free with bs_logtail_free (before closing the spool). */
bs_status bs_logtail_new(struct ev_loop *loop, bs_spool *sp, const bs_logtail_options *o,
                         bs_logtail **out) BS_WUR;

/* Stop and free. Events not yet emitted stay in the files: they are read
 * again after a restart, from the last checkpoint. NULL is a no-op. */
void bs_logtail_free(bs_logtail *t);

/* One pass: re-glob, read new data from every file, emit finished events,
 * sync the spool, checkpoint. The timer calls it; tools and tests may too.
 * BS_E_FULL if the spool refused (the rest waits for the next poll). */
bs_status bs_logtail_poll(bs_logtail *t) BS_WUR;

typedef struct bs_logtail_stats {
    uint64_t lines, events, bytes, files, rotations, truncations, blocked, checkpoints;
} bs_logtail_stats;
void bs_logtail_get_stats(const bs_logtail *t, bs_logtail_stats *st);

/* Parse one log4j start line `[yyyy-MM-dd HH:mm:ss,SSS] LEVEL rest`. On
 * success *epoch_ms (UTC, using tz_offset_min), the level and the rest (ptr +
 * length into `line`) are set. BS_E_MALFORMED if the line does not start an
 * event. Exposed for tests and the fuzz target. */
bs_status bs_logtail_parse_start(const char *line, size_t len, int tz_offset_min, int64_t *epoch_ms,
                                 const char **level, size_t *level_len, const char **rest,
                                 size_t *rest_len) BS_WUR;

/* One entry of a checkpoint file, as bs_logtail_parse_checkpoint reads it;
 * `path` points into the parsed text (path_len bytes, no NUL inside). */
typedef struct bs_logtail_ckpt_entry {
    uint64_t dev, ino, off, head_hash;
    uint32_t head_len;
    const char *path;
    size_t path_len;
} bs_logtail_ckpt_entry;
typedef bs_status (*bs_logtail_ckpt_fn)(const bs_logtail_ckpt_entry *e, void *arg);

/* Parse checkpoint text: a `bslt1 SPOOL_SEQ` line, then one line per file
 * `DEV INO OFFSET HEAD_LEN HEAD_HASH PATH`, each line ending in a newline
 * (decimal numbers without sign, OFFSET and SPOOL_SEQ at most INT64_MAX,
 * HEAD_LEN at most 64, HEAD_HASH 1..16 hex digits, single spaces). Calls
 * `fn` per entry (its non-OK status stops and is returned). BS_E_MALFORMED
 * on any deviation. Exposed for tests and the fuzz target. */
bs_status bs_logtail_parse_checkpoint(const void *text, size_t len, uint64_t *spool_seq,
                                      bs_logtail_ckpt_fn fn, void *arg) BS_WUR;

#endif
