/*
 * metrics.h - the process-wide metrics registry.
 *
 * Metrics are registered once (get-or-create by name + label set) and the
 * returned pointers stay valid until bs_metrics_shutdown(); updates are
 * lock-free atomic adds, safe from any thread. `labels` is the inside of a
 * Prometheus label set, already escaped, e.g. `reason="unknown_ca"` or NULL.
 * Use bs_metrics_label_escape() for values that come from outside.
 * Names follow Prometheus conventions: counters end in `_total`, every
 * name starts with `brokerside_`, durations are histograms in seconds with a
 * `_seconds` suffix (see bs_metrics_latency_bounds_s), sizes in bytes with a
 * `_bytes` suffix. docs/admin.md lists the conventions.
 *
 * A name is one family: registering it again with another type (or, for a
 * histogram, other bounds) is a programming error, logged, and returns
 * NULL. The HELP text of the first registration wins. Series within a family
 * are keyed by the exact `labels` string, so always write label pairs in the
 * same order (bs_metrics_labels() does that for you).
 */
#ifndef BROKERSIDE_METRICS_H
#define BROKERSIDE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/status.h"

typedef struct bs_metric bs_metric;
typedef struct bs_histogram bs_histogram;

/* Get or create. Returns NULL on allocation failure, on an invalid name
 * (not [a-zA-Z_:][a-zA-Z0-9_:]*), on a malformed label set (not
 * `k="v",...` with only \\ \" \n escapes; `le` is reserved for
 * histograms) and on a type clash (all logged); callers
 * may pass NULL to the update functions, which then do nothing. Thread-safe. */
bs_metric *bs_metrics_counter(const char *name, const char *help, const char *labels);
bs_metric *bs_metrics_gauge(const char *name, const char *help, const char *labels);
/* `bounds` are the upper bounds of the buckets, strictly ascending and
 * finite, 1..64 of them; +Inf is implied. They are copied. NULL if invalid. */
bs_histogram *bs_metrics_histogram(const char *name, const char *help, const char *labels,
                                   const double *bounds, size_t n_bounds);

/* Updates are relaxed atomics: safe from any thread, no lock. NULL: no-op.
 * bs_metric_set on a counter is a programming error and is ignored (a
 * counter only goes up; add a negative delta to a gauge to decrease it). */
void bs_metric_add(bs_metric *m, int64_t delta);
void bs_metric_set(bs_metric *m, int64_t value);
/* Current value; 0 for NULL. */
int64_t bs_metric_value(const bs_metric *m);
/* Count `value` in the first bucket whose bound is >= value, add it to the
 * sum. NaN is ignored. NULL: no-op. */
void bs_histogram_observe(bs_histogram *h, double value);
/* Snapshot of a histogram for tests and JSON: total count and sum; 0 for NULL. */
uint64_t bs_histogram_count(const bs_histogram *h);
double bs_histogram_sum(const bs_histogram *h);

/* Default latency buckets in SECONDS (Prometheus convention), 0.0005 .. 10;
 * *n receives the number of bounds. The array is static; do not free. */
const double *bs_metrics_latency_bounds_s(size_t *n);

/* Build an escaped label set from NULL-terminated name/value pairs, e.g.
 * bs_metrics_labels(buf, sizeof buf, "listener", name, "api", "Produce", NULL)
 * gives `listener="...",api="Produce"`. Values are escaped; names must be
 * [a-zA-Z_][a-zA-Z0-9_]* (BS_E_MALFORMED otherwise). BS_E_TOO_LARGE if the
 * result does not fit out[outlen]. out is always NUL-terminated (outlen > 0). */
bs_status bs_metrics_labels(char *out, size_t outlen, ...) BS_WUR __attribute__((sentinel));
/* Get-or-create with labels built as by bs_metrics_labels from the trailing
 * NULL-terminated name/value pairs (at most 1 KiB of labels). NULL on any
 * error (logged). */
bs_metric *bs_metrics_counter_kv(const char *name, const char *help, ...) __attribute__((sentinel));
bs_metric *bs_metrics_gauge_kv(const char *name, const char *help, ...) __attribute__((sentinel));
bs_histogram *bs_metrics_histogram_kv(const char *name, const char *help, const double *bounds,
                                      size_t n_bounds, ...) __attribute__((sentinel));

/* Render every metric in the Prometheus text exposition format 0.0.4:
 * families sorted by name, one # HELP and # TYPE each, series sorted by
 * their label string. Appends to out; BS_E_NOMEM/TOO_LARGE from the wbuf. */
bs_status bs_metrics_render_prometheus(bs_wbuf *out) BS_WUR;
/* Render every metric as a JSON object {"name{labels}": value, ...}
 * (histograms as {"count":..,"sum":..}) for /status. */
bs_status bs_metrics_render_json(bs_wbuf *out) BS_WUR;
/* Escape a label value (backslash, quote, newline) into out[outlen]. The
 * output is always NUL-terminated when outlen > 0; an input that does not
 * fit is truncated at a character boundary (never half an escape). */
void bs_metrics_label_escape(const char *in, char *out, size_t outlen);
/* One series as seen by bs_metrics_foreach. All pointers are valid only
 * during the callback. Counters and gauges fill `value`; histograms fill
 * bounds/buckets (n_bounds + 1 entries, NOT cumulative, the last one is
 * +Inf), count (the bucket total, so it is self-consistent) and sum. */
typedef enum bs_metric_kind {
    BS_METRIC_COUNTER = 0,
    BS_METRIC_GAUGE = 1,
    BS_METRIC_HISTOGRAM = 2,
} bs_metric_kind;

typedef struct bs_metric_sample {
    const char *name;
    const char *help;
    const char *labels; /* escaped Prometheus label body; "" when none */
    bs_metric_kind kind;
    int64_t value;
    size_t n_bounds;
    const double *bounds;
    const uint64_t *buckets;
    uint64_t count;
    double sum;
} bs_metric_sample;

/* Return non-zero to stop the iteration early. */
typedef int (*bs_metrics_visit_fn)(const bs_metric_sample *s, void *arg);

/* Call `fn` for every series, families sorted by name, series by label
 * string (the Prometheus order). The registry lock is held during the whole
 * walk: `fn` must not register metrics (deadlock) and should be quick;
 * updates from other threads keep going. Returns BS_OK, or BS_E_STATE if
 * `fn` stopped the walk. */
bs_status bs_metrics_foreach(bs_metrics_visit_fn fn, void *arg) BS_WUR;

/* How many get-or-create lookups (each takes the registry's process-wide
 * mutex) were made since start (calls refused for an invalid name or label
 * set take no lock and do not count). Tests use it to show
 * that a hot path resolved its series beforehand and takes no lock. */
uint64_t bs_metrics_lookups(void);

/* metrics.level, MSK's levels (docs/observability.md, "Metric levels"): which
 * series the expositions (Prometheus, JSON, bs_metrics_foreach and so EMF)
 * show. Series are still created and updated at every level; a series is
 * shown when its level (bs_metrics_labels_level) is <= the current one. */
typedef enum bs_metrics_level {
    BS_METRICS_LEVEL_DEFAULT = 0,                 /* process, listener and API series */
    BS_METRICS_LEVEL_PER_BROKER = 1,              /* + per-principal series */
    BS_METRICS_LEVEL_PER_TOPIC_PER_BROKER = 2,    /* + per-topic series (the start value) */
    BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION = 3, /* + per-partition series */
} bs_metrics_level;

/* The level of a series from its escaped label set: a `partition` label ->
 * PER_TOPIC_PER_PARTITION, else a `topic` label -> PER_TOPIC_PER_BROKER, else
 * a `principal` label -> PER_BROKER, else DEFAULT (also for NULL). */
bs_metrics_level bs_metrics_labels_level(const char *labels);
/* Set / read the process-wide level (relaxed atomic; any thread). A value
 * past PER_TOPIC_PER_PARTITION is ignored. Starts at PER_TOPIC_PER_BROKER. */
void bs_metrics_set_level(bs_metrics_level level);
bs_metrics_level bs_metrics_get_level(void);

/* One extra renderer appended by bs_metrics_render_prometheus after the
 * registry's families, outside the registry lock (series kept outside the
 * registry, e.g. the consumer-lag monitor's, which come and go). It appends
 * whole families to `out` and returns the wbuf's status. NULL removes it;
 * bs_metrics_set_extension waits for a render in progress to finish. */
typedef bs_status (*bs_metrics_render_fn)(bs_wbuf *out, void *arg);
void bs_metrics_set_extension(bs_metrics_render_fn fn, void *arg);

/* Free everything; pointers handed out become invalid. For tests and exit:
 * only when no other thread uses the registry. The registry can be used
 * again afterwards (it starts empty). */
void bs_metrics_shutdown(void);

#endif
