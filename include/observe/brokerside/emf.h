/*
 * emf.h - metric snapshots as CloudWatch Embedded Metric Format (EMF) JSON.
 *
 * Every metrics.interval_s the control thread calls bs_emf_snapshot(): the
 * registry (metrics.h) is read through bs_metrics_foreach and turned into
 * EMF documents, one JSON object per line, handed to an emit callback (the
 * spool; any log sink can carry them and CloudWatch Logs extracts them):
 *
 *   {"_aws":{"Timestamp":1764000000000,"CloudWatchMetrics":[{"Namespace":"Brokerside",
 *     "Dimensions":[["listener","api"]],"Metrics":[{"Name":"brokerside_requests_total",
 *     "Unit":"Count"}]}]},"listener":"clients","api":"Produce","brokerside_requests_total":12}
 *
 * Rules (docs/audit-events.md, "Metric snapshots"):
 * - Series with the same label set share documents; their labels become the
 *   dimensions (plus the fixed dimensions of the options), at most 30; a
 *   series with more is skipped and counted.
 * - Counters are deltas since the previous snapshot of this bs_emf (the first
 *   snapshot reports the whole count; a counter that went down, i.e. a reset,
 *   reports its new value). Gauges are values.
 * - Histograms are deltas in EMF's value/count form: {"Values":[upper bound
 *   of each bucket that gained observations],"Counts":[...],"Count":n,
 *   "Sum":s,"Min":v0,"Max":vn}; observations above the last bound are
 *   reported at the last bound. A histogram with no new observations is left
 *   out. A non-finite number (e.g. a sum that overflowed) is never written:
 *   that metric is skipped and counted.
 * - At most `max_metrics` (<= 100, EMF's limit per directive) metrics per
 *   document; more are split into further documents.
 * - Dimension values are JSON-escaped; bytes that are not valid UTF-8
 *   (label values can carry client-supplied names) become U+FFFD.
 * Units come from the name: _seconds -> Seconds, _bytes/_bytes_total ->
 * Bytes, other _total -> Count, else None.
 */
#ifndef BROKERSIDE_EMF_H
#define BROKERSIDE_EMF_H

#include <stddef.h>
#include <stdint.h>

#include "brokerside/status.h"

#define BS_EMF_MAX_DIMENSIONS 30
#define BS_EMF_MAX_METRICS 100

typedef struct bs_emf_dimension {
    const char *name;
    const char *value;
} bs_emf_dimension;

typedef struct bs_emf_options {
    const char *namespace_name;    /* default "Brokerside"; 1..255 chars */
    const bs_emf_dimension *fixed; /* added to every document, e.g. BrokerId; copied */
    size_t n_fixed;
    size_t max_metrics; /* per document, 1..100; default 100 */
} bs_emf_options;

typedef struct bs_emf_stats {
    uint64_t documents;
    uint64_t metrics;            /* metric values written */
    uint64_t skipped_nonfinite;  /* NaN/Inf never written */
    uint64_t skipped_dimensions; /* more than 30 dimensions */
    uint64_t skipped_conflicts;  /* a label named like a metric of its document, or "_aws" */
} bs_emf_stats;

typedef struct bs_emf bs_emf;

/* Fill the documented defaults. */
void bs_emf_options_default(bs_emf_options *o);
/* Create a snapshotter (it remembers counter values between snapshots).
 * BS_E_CONFIG for bad options (namespace length, max_metrics, more than 30
 * fixed dimensions, invalid names). Free with bs_emf_free. */
bs_status bs_emf_new(const bs_emf_options *o, bs_emf **out) BS_WUR;
void bs_emf_free(bs_emf *e);

/* Receives one EMF document (a JSON object, no newline). A non-OK return
 * stops the snapshot and is returned; counter baselines are then NOT
 * advanced, so the next snapshot reports the deltas again (at-least-once). */
typedef bs_status (*bs_emf_emit_fn)(const char *json, size_t len, void *arg);

/* Snapshot the registry at `timestamp_ms` (ms since the epoch). `stats`
 * (may be NULL) receives this snapshot's counts. Not thread-safe per bs_emf
 * (call from one thread); the registry may be updated concurrently. */
bs_status bs_emf_snapshot(bs_emf *e, int64_t timestamp_ms, bs_emf_emit_fn emit, void *arg,
                          bs_emf_stats *stats) BS_WUR;

#endif
