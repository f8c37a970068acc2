/*
 * metrics.h - the process-wide metrics registry.
 *
 * Metrics are registered once (get-or-create by name + label set) and the
 * returned pointers stay valid until bs_metrics_shutdown(); updates are
 * lock-free atomic adds, safe from any thread. `labels` is the inside of a
 * Prometheus label set, already escaped, e.g. `reason="unknown_ca"` or NULL.
 * Use bs_metrics_label_escape() for values that come from outside.
 * Names follow Prometheus conventions: counters end in `_total`.
 */
#ifndef BROKERSIDE_METRICS_H
#define BROKERSIDE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/status.h"

typedef struct bs_metric bs_metric;
typedef struct bs_histogram bs_histogram;

/* Get or create. Returns NULL only on allocation failure (callers may pass
 * NULL to the update functions, which then do nothing). */
bs_metric *bs_metrics_counter(const char *name, const char *help, const char *labels);
bs_metric *bs_metrics_gauge(const char *name, const char *help, const char *labels);
/* `bounds` are the upper bounds of the buckets, ascending; +Inf is implied. */
bs_histogram *bs_metrics_histogram(const char *name, const char *help, const char *labels,
                                   const double *bounds, size_t n_bounds);

void bs_metric_add(bs_metric *m, int64_t delta);
void bs_metric_set(bs_metric *m, int64_t value);
int64_t bs_metric_value(const bs_metric *m);
void bs_histogram_observe(bs_histogram *h, double value);

/* Render every metric in the Prometheus text exposition format 0.0.4. */
bs_status bs_metrics_render_prometheus(bs_wbuf *out) BS_WUR;
/* Render every metric as a JSON object {"name{labels}": value, ...}
 * (histograms as {"count":..,"sum":..}) for /status. */
bs_status bs_metrics_render_json(bs_wbuf *out) BS_WUR;
/* Escape a label value (backslash, quote, newline) into out[outlen]. */
void bs_metrics_label_escape(const char *in, char *out, size_t outlen);
/* Free everything; pointers handed out become invalid. For tests and exit. */
void bs_metrics_shutdown(void);

#endif
