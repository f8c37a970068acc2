/*
 * file_sink.h - the `file` sink: NDJSON files per stream under a directory.
 *
 * Events of stream S are appended, one per line, to <dir>/S.ndjson (audit,
 * metrics, logs), fdatasync'ed before the batch is acknowledged. Before a
 * write the file is rotated when it holds rotate_bytes or more, or is older
 * than rotate_age_s (age is checked when a batch arrives): renamed to
 * <dir>/S-YYYYMMDDTHHMMSSZ[-N].ndjson and, with `gzip`, compressed to
 * ...ndjson.gz (the plain file is removed once the .gz is durable).
 *
 * No duplicates after a crash: before each write the sink records an intent
 * (<dir>/.S.intent: inode, size before the write, first seq, file creation
 * time) atomically. A batch that is redelivered after a crash starts at the
 * same seq; if the intent matches, the file is cut back to the recorded size
 * before writing, so a batch written but not acknowledged appears once.
 *
 * An event containing a newline byte cannot be one NDJSON line: it is a
 * PERMANENT failure (dead-lettered by the framework).
 */
#ifndef BROKERSIDE_FILE_SINK_H
#define BROKERSIDE_FILE_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include "brokerside/sink.h"
#include "brokerside/status.h"

typedef struct bs_file_sink_options {
    const char *dir;       /* required; created with mode 0750 if missing */
    uint64_t rotate_bytes; /* default 100 MiB */
    uint32_t rotate_age_s; /* default 3600; UINT32_MAX = never by age */
    bool gzip;             /* compress rotated files (default false) */
} bs_file_sink_options;

/* Create a file sink implementation: *ops is static, *impl is owned by the
 * caller until bs_sink_create succeeds (then the sink frees it). The
 * directory is locked first (flock on <dir>/.lock, held until the sink is
 * destroyed): BS_E_BUSY, nothing opened, when another process holds it. */
bs_status bs_file_sink_new(const bs_file_sink_options *o, const bs_sink_ops **ops,
                           void **impl) BS_WUR;

/* Batching limits that suit files: 10,000 events, 4 MiB, 200 ms. */
void bs_file_sink_limits(bs_sink_limits *l);

#endif
