/*
 * metrics.c - the process-wide metrics registry and its exposition
 * (see metrics.h).
 *
 * Layout: a sorted array of families (one per metric name), each holding a
 * sorted array of series (one per label string). Every series is its own
 * allocation so the pointers handed out never move when the arrays grow.
 * The mutex guards only the arrays (registration and rendering); values are
 * atomics updated with relaxed ordering, because a scrape needs each value
 * to be torn-free, not a consistent cut across series.
 */
#include "brokerside/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/log.h"

#define MOD "metrics"
#define MAX_BOUNDS 64
#define KV_LABELS_MAX 1024

typedef enum metric_type {
    TYPE_COUNTER = 0,
    TYPE_GAUGE = 1,
    TYPE_HISTOGRAM = 2,
} metric_type;

struct bs_metric {
    _Atomic int64_t value;
    metric_type type;
};

struct bs_histogram {
    size_t n_bounds;
    const double *bounds;      /* the family's copy; n_bounds entries */
    _Atomic uint64_t *buckets; /* n_bounds + 1 (last is +Inf), NOT cumulative */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_bits; /* a double, stored as bits so CAS can add to it */
};

typedef struct series {
    char *labels;  /* "" when the metric has no labels */
    uint8_t level; /* the least bs_metrics_level that exports it (series_level) */
    union {
        bs_metric metric;
        bs_histogram hist;
    } u;
} series;

typedef struct family {
    char *name;
    char *help;
    metric_type type;
    double *bounds; /* histograms only */
    size_t n_bounds;
    series **series; /* sorted by labels */
    size_t n_series, cap_series;
} family;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
/* get-or-create calls so far (each takes g_lock): bs_metrics_lookups */
static _Atomic uint64_t g_lookups;
/* metrics.level (bs_metrics_set_level); read by every exposition */
static _Atomic int g_level = BS_METRICS_LEVEL_PER_TOPIC_PER_BROKER;
/* the extra Prometheus renderer (bs_metrics_set_extension); under g_ext_lock */
static pthread_mutex_t g_ext_lock = PTHREAD_MUTEX_INITIALIZER;
static bs_metrics_render_fn g_ext_fn;
static void *g_ext_arg;
static family **g_families; /* sorted by name */
static size_t g_n_families, g_cap_families;

static const double g_latency_bounds_s[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

/* The TYPE keyword of the exposition format for `t`. */
static const char *type_name(metric_type t)
{
    switch (t) {
    case TYPE_COUNTER:
        return "counter";
    case TYPE_GAUGE:
        return "gauge";
    case TYPE_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

/* True if `name` is a valid Prometheus metric name. Reads up to the NUL of a
 * caller-supplied C string (names are code constants, not wire data). */
static bool valid_metric_name(const char *name)
{
    if (!name || !*name) return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p != name && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

/* True if `name` is a valid Prometheus label name (no colon allowed). */
static bool valid_label_name(const char *name)
{
    if (!name || !*name) return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (p != name && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

/* True if `labels` is a well-formed label set body: `name="value"` pairs
 * separated by commas, values using only the \\ \" \n escapes and no raw
 * newline (duplicate names are not detected). A histogram may not use `le`,
 * which the exposition adds itself. */
static bool valid_labels(const char *labels, bool histogram)
{
    const char *p = labels;
    while (*p) {
        const char *name = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
               (p != name && *p >= '0' && *p <= '9'))
            p++;
        if (p == name || *p != '=' || p[1] != '"') return false;
        if (histogram && p - name == 2 && strncmp(name, "le", 2) == 0) return false;
        p += 2;
        for (;;) {
            if (*p == 0 || *p == '\n') return false;
            if (*p == '"') break;
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n') return false;
            }
            p++;
        }
        p++; /* closing quote */
        if (*p == ',') {
            p++;
            if (*p == 0) return false; /* no trailing comma */
        } else if (*p) {
            return false;
        }
    }
    return true;
}

/* Binary search of g_families for `name`. Returns the family or NULL and,
 * through *pos, the index where it is or would be inserted. Lock held. */
static family *find_family(const char *name, size_t *pos)
{
    size_t lo = 0, hi = g_n_families;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g_families[mid]->name, name);
        if (c == 0) {
            *pos = mid;
            return g_families[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return NULL;
}

/* Binary search of f->series for `labels`; like find_family. Lock held. */
static series *find_series(family *f, const char *labels, size_t *pos)
{
    size_t lo = 0, hi = f->n_series;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->series[mid]->labels, labels);
        if (c == 0) {
            *pos = mid;
            return f->series[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return NULL;
}

/* Free one series of family type `t`; NULL is a no-op. */
static void series_free(series *s, metric_type t)
{
    if (!s) return;
    if (t == TYPE_HISTOGRAM) free((void *)s->u.hist.buckets);
    free(s->labels);
    free(s);
}

/* Free a family and all its series; NULL is a no-op. */
static void family_free(family *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n_series; i++)
        series_free(f->series[i], f->type);
    free(f->series);
    free(f->bounds);
    free(f->help);
    free(f->name);
    free(f);
}

/* Create a family and insert it at `pos` of g_families. Returns NULL on
 * allocation failure (nothing inserted). Lock held. */
static family *family_insert(size_t pos, const char *name, const char *help, metric_type type,
                             const double *bounds, size_t n_bounds)
{
    family *f = NULL;
    if (g_n_families == g_cap_families) {
        size_t ncap = g_cap_families ? g_cap_families * 2 : 16;
        family **nf = realloc(g_families, ncap * sizeof *nf);
        if (!nf) goto fail;
        g_families = nf;
        g_cap_families = ncap;
    }
    f = calloc(1, sizeof *f);
    if (!f) goto fail;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help) goto fail;
    if (type == TYPE_HISTOGRAM) {
        f->bounds = malloc(n_bounds * sizeof *f->bounds);
        if (!f->bounds) goto fail;
        memcpy(f->bounds, bounds, n_bounds * sizeof *f->bounds);
        f->n_bounds = n_bounds;
    }
    memmove(g_families + pos + 1, g_families + pos, (g_n_families - pos) * sizeof *g_families);
    g_families[pos] = f;
    g_n_families++;
    return f;
fail:
    family_free(f);
    return NULL;
}

/* Create a series and insert it at `pos` of f->series. NULL on allocation
 * failure (nothing inserted). Lock held. */
/* True if the escaped label set `labels` has a label named `name`. */
static bool has_label(const char *labels, const char *name)
{
    size_t n = strlen(name);
    const char *p = labels;
    while (*p) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') return true;
        /* skip to the end of this pair's quoted value */
        p = strchr(p, '"');
        if (!p) return false;
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && p[1]) p++;
        if (*p) p++;
        if (*p == ',') p++;
    }
    return false;
}

/* See metrics.h. */
bs_metrics_level bs_metrics_labels_level(const char *labels)
{
    if (!labels) return BS_METRICS_LEVEL_DEFAULT;
    if (has_label(labels, "partition")) return BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION;
    if (has_label(labels, "topic")) return BS_METRICS_LEVEL_PER_TOPIC_PER_BROKER;
    if (has_label(labels, "principal")) return BS_METRICS_LEVEL_PER_BROKER;
    return BS_METRICS_LEVEL_DEFAULT;
}

/* See metrics.h. */
void bs_metrics_set_level(bs_metrics_level level)
{
    if (level > BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION) return;
    atomic_store_explicit(&g_level, (int)level, memory_order_relaxed);
}

/* See metrics.h. */
bs_metrics_level bs_metrics_get_level(void)
{
    return (bs_metrics_level)atomic_load_explicit(&g_level, memory_order_relaxed);
}

/* See metrics.h. */
void bs_metrics_set_extension(bs_metrics_render_fn fn, void *arg)
{
    pthread_mutex_lock(&g_ext_lock);
    g_ext_fn = fn;
    g_ext_arg = arg;
    pthread_mutex_unlock(&g_ext_lock);
}

/* True if series s is exported at the current level. */
static bool exported(const series *s)
{
    return s->level <= atomic_load_explicit(&g_level, memory_order_relaxed);
}

/* True if family f has a series exported at the current level. */
static bool family_exported(const family *f)
{
    for (size_t j = 0; j < f->n_series; j++)
        if (exported(f->series[j])) return true;
    return false;
}

static series *series_insert(family *f, size_t pos, const char *labels)
{
    series *s = NULL;
    if (f->n_series == f->cap_series) {
        size_t ncap = f->cap_series ? f->cap_series * 2 : 4;
        series **ns = realloc(f->series, ncap * sizeof *ns);
        if (!ns) goto fail;
        f->series = ns;
        f->cap_series = ncap;
    }
    s = calloc(1, sizeof *s);
    if (!s) goto fail;
    s->labels = strdup(labels);
    if (!s->labels) goto fail;
    s->level = (uint8_t)bs_metrics_labels_level(labels);
    if (f->type == TYPE_HISTOGRAM) {
        s->u.hist.n_bounds = f->n_bounds;
        s->u.hist.bounds = f->bounds;
        s->u.hist.buckets = calloc(f->n_bounds + 1, sizeof *s->u.hist.buckets);
        if (!s->u.hist.buckets) goto fail;
        for (size_t i = 0; i <= f->n_bounds; i++)
            atomic_init(&s->u.hist.buckets[i], 0);
        atomic_init(&s->u.hist.count, 0);
        atomic_init(&s->u.hist.sum_bits, 0); /* all-zero bits are +0.0 */
    } else {
        atomic_init(&s->u.metric.value, 0);
        s->u.metric.type = f->type;
    }
    memmove(f->series + pos + 1, f->series + pos, (f->n_series - pos) * sizeof *f->series);
    f->series[pos] = s;
    f->n_series++;
    return s;
fail:
    series_free(s, f->type);
    return NULL;
}

/* The common get-or-create. Returns the series or NULL (logged). */
static series *get_or_create(const char *name, const char *help, const char *labels,
                             metric_type type, const double *bounds, size_t n_bounds)
{
    if (!valid_metric_name(name)) {
        BS_LOG_ERRORF(MOD, "invalid metric name \"%s\"", name ? name : "(null)");
        return NULL;
    }
    if (!labels) labels = "";
    if (!valid_labels(labels, type == TYPE_HISTOGRAM)) {
        BS_LOG_ERRORF(MOD, "metric %s: malformed label set", name);
        return NULL;
    }
    series *s = NULL;
    atomic_fetch_add_explicit(&g_lookups, 1, memory_order_relaxed);
    pthread_mutex_lock(&g_lock);
    size_t pos;
    family *f = find_family(name, &pos);
    if (f && f->type != type) {
        BS_LOG_ERRORF(MOD, "metric %s registered as %s, requested as %s", name, type_name(f->type),
                      type_name(type));
        goto out;
    }
    if (f && type == TYPE_HISTOGRAM &&
        (f->n_bounds != n_bounds || memcmp(f->bounds, bounds, n_bounds * sizeof *bounds) != 0)) {
        BS_LOG_ERRORF(MOD, "histogram %s registered again with different bounds", name);
        goto out;
    }
    if (!f) {
        f = family_insert(pos, name, help, type, bounds, n_bounds);
        if (!f) {
            BS_LOG_ERRORF(MOD, "out of memory registering %s", name);
            goto out;
        }
    }
    s = find_series(f, labels, &pos);
    if (!s) {
        s = series_insert(f, pos, labels);
        if (!s) BS_LOG_ERRORF(MOD, "out of memory registering %s{%s}", name, labels);
    }
    /* An empty family left behind by a failed series insert is harmless: it
     * renders as HELP/TYPE only and is reused by the next registration. */
out:
    pthread_mutex_unlock(&g_lock);
    return s;
}

/* See metrics.h. */
uint64_t bs_metrics_lookups(void)
{
    return atomic_load_explicit(&g_lookups, memory_order_relaxed);
}

/* See metrics.h. */
bs_metric *bs_metrics_counter(const char *name, const char *help, const char *labels)
{
    series *s = get_or_create(name, help, labels, TYPE_COUNTER, NULL, 0);
    return s ? &s->u.metric : NULL;
}

/* See metrics.h. */
bs_metric *bs_metrics_gauge(const char *name, const char *help, const char *labels)
{
    series *s = get_or_create(name, help, labels, TYPE_GAUGE, NULL, 0);
    return s ? &s->u.metric : NULL;
}

/* See metrics.h. */
bs_histogram *bs_metrics_histogram(const char *name, const char *help, const char *labels,
                                   const double *bounds, size_t n_bounds)
{
    if (!bounds || n_bounds == 0 || n_bounds > MAX_BOUNDS) {
        BS_LOG_ERRORF(MOD, "histogram %s: need 1..%d bounds", name ? name : "(null)", MAX_BOUNDS);
        return NULL;
    }
    for (size_t i = 0; i < n_bounds; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
            BS_LOG_ERRORF(MOD, "histogram %s: bounds must be finite and strictly ascending",
                          name ? name : "(null)");
            return NULL;
        }
    }
    series *s = get_or_create(name, help, labels, TYPE_HISTOGRAM, bounds, n_bounds);
    return s ? &s->u.hist : NULL;
}

/* See metrics.h. */
void bs_metric_add(bs_metric *m, int64_t delta)
{
    if (!m) return;
    atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

/* See metrics.h. */
void bs_metric_set(bs_metric *m, int64_t value)
{
    if (!m || m->type != TYPE_GAUGE) return;
    atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

/* See metrics.h. */
int64_t bs_metric_value(const bs_metric *m)
{
    if (!m) return 0;
    return atomic_load_explicit(&((bs_metric *)m)->value, memory_order_relaxed);
}

/* The bits of `d` (memcpy is the aliasing-safe way to reinterpret). */
static uint64_t dbl_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* Inverse of dbl_bits. */
static double bits_dbl(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* See metrics.h. */
void bs_histogram_observe(bs_histogram *h, double value)
{
    if (!h || isnan(value)) return;
    /* Bounds are few (<= 64): a linear scan is as fast as bisection here. */
    size_t i = 0;
    while (i < h->n_bounds && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
                                                  dbl_bits(bits_dbl(old) + value),
                                                  memory_order_relaxed, memory_order_relaxed)) {
        /* `old` was reloaded by the failed CAS; retry with the fresh sum. */
    }
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* See metrics.h. */
uint64_t bs_histogram_count(const bs_histogram *h)
{
    if (!h) return 0;
    return atomic_load_explicit(&((bs_histogram *)h)->count, memory_order_relaxed);
}

/* See metrics.h. */
double bs_histogram_sum(const bs_histogram *h)
{
    if (!h) return 0;
    return bits_dbl(atomic_load_explicit(&((bs_histogram *)h)->sum_bits, memory_order_relaxed));
}

/* See metrics.h. */
const double *bs_metrics_latency_bounds_s(size_t *n)
{
    if (n) *n = BS_ARRAY_LEN(g_latency_bounds_s);
    return g_latency_bounds_s;
}

/* See metrics.h. */
void bs_metrics_label_escape(const char *in, char *out, size_t outlen)
{
    if (!out || outlen == 0) return;
    size_t o = 0;
    for (const char *p = in ? in : ""; *p; p++) {
        const char *rep = NULL;
        char one[2] = {*p, 0};
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '"')
            rep = "\\\"";
        else if (*p == '\n')
            rep = "\\n";
        else
            rep = one;
        size_t rl = strlen(rep);
        if (o + rl >= outlen) break; /* keep room for the NUL; never split an escape */
        memcpy(out + o, rep, rl);
        o += rl;
    }
    out[o] = 0;
}

/* bs_metrics_labels over a va_list of name/value pairs ending in NULL. */
static bs_status labels_v(char *out, size_t outlen, va_list ap)
{
    if (!out || outlen == 0) return BS_E_TOO_LARGE;
    out[0] = 0;
    size_t o = 0;
    bs_status st = BS_OK;
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        if (!valid_label_name(k) || !v) {
            st = BS_E_MALFORMED;
            break;
        }
        /* Escaping at most doubles the length: size the scratch for that. */
        size_t vl = strlen(v);
        size_t need = (o ? 1 : 0) + strlen(k) + 2 + vl * 2 + 1;
        if (o + need + 1 > outlen) {
            st = BS_E_TOO_LARGE;
            break;
        }
        char *p = out + o;
        p += sprintf(p, "%s%s=\"", o ? "," : "", k);
        bs_metrics_label_escape(v, p, vl * 2 + 1);
        p += strlen(p);
        *p++ = '"';
        *p = 0;
        o = (size_t)(p - out);
    }
    if (st != BS_OK) out[0] = 0;
    return st;
}

/* See metrics.h. */
bs_status bs_metrics_labels(char *out, size_t outlen, ...)
{
    va_list ap;
    va_start(ap, outlen);
    bs_status st = labels_v(out, outlen, ap);
    va_end(ap);
    return st;
}

/* The label pairs of a *_kv constructor into labels[KV_LABELS_MAX]; false
 * (logged against metric `name`) when they are bad. */
static bool kv_labels(char *labels, const char *name, va_list ap)
{
    bs_status st = labels_v(labels, KV_LABELS_MAX, ap);
    if (st != BS_OK)
        BS_LOG_ERRORF(MOD, "metric %s: bad labels (%s)", name ? name : "(null)",
                      bs_status_name(st));
    return st == BS_OK;
}

/* See metrics.h. */
bs_metric *bs_metrics_counter_kv(const char *name, const char *help, ...)
{
    char labels[KV_LABELS_MAX];
    va_list ap;
    va_start(ap, help);
    bool ok = kv_labels(labels, name, ap);
    va_end(ap);
    return ok ? bs_metrics_counter(name, help, labels) : NULL;
}

/* See metrics.h. */
bs_metric *bs_metrics_gauge_kv(const char *name, const char *help, ...)
{
    char labels[KV_LABELS_MAX];
    va_list ap;
    va_start(ap, help);
    bool ok = kv_labels(labels, name, ap);
    va_end(ap);
    return ok ? bs_metrics_gauge(name, help, labels) : NULL;
}

/* See metrics.h. */
bs_histogram *bs_metrics_histogram_kv(const char *name, const char *help, const double *bounds,
                                      size_t n_bounds, ...)
{
    char labels[KV_LABELS_MAX];
    va_list ap;
    va_start(ap, n_bounds);
    bool ok = kv_labels(labels, name, ap);
    va_end(ap);
    return ok ? bs_metrics_histogram(name, help, labels, bounds, n_bounds) : NULL;
}

/* Format a float the way Prometheus expects into tmp[40]: +Inf/-Inf/NaN,
 * otherwise the shortest of %.15g/%.17g that reads back exactly (so 0.1
 * stays "0.1"). Returns tmp. */
static const char *fmt_double(char tmp[40], double d)
{
    if (isnan(d)) return strcpy(tmp, "NaN");
    if (isinf(d)) return strcpy(tmp, d > 0 ? "+Inf" : "-Inf");
    snprintf(tmp, 40, "%.15g", d);
    if (strtod(tmp, NULL) != d) snprintf(tmp, 40, "%.17g", d);
    return tmp;
}

/* Append fmt_double(d). */
static void put_prom_double(bs_wbuf *w, double d)
{
    char tmp[40];
    bs_wbuf_put_str(w, fmt_double(tmp, d));
}

/* HELP text escaping per format 0.0.4: backslash and newline only. */
static void put_help(bs_wbuf *w, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            bs_wbuf_put_str(w, "\\\\");
        else if (*p == '\n')
            bs_wbuf_put_str(w, "\\n");
        else
            bs_wbuf_put_u8(w, (uint8_t)*p);
    }
}

/* `name{labels}` or `name{labels,extra}`; braces omitted when both empty. */
static void put_series_name(bs_wbuf *w, const char *name, const char *suffix, const char *labels,
                            const char *extra)
{
    bs_wbuf_put_str(w, name);
    bs_wbuf_put_str(w, suffix);
    bool hl = labels[0] != 0, he = extra && extra[0];
    if (!hl && !he) return;
    bs_wbuf_put_u8(w, '{');
    bs_wbuf_put_str(w, labels);
    if (hl && he) bs_wbuf_put_u8(w, ',');
    if (he) bs_wbuf_put_str(w, extra);
    bs_wbuf_put_u8(w, '}');
}

/* Render one histogram series: cumulative buckets, +Inf, _sum, _count. The
 * count line uses the bucket total, not h->count, so the exposition is
 * self-consistent even while observations race with the scrape. */
static void render_hist(bs_wbuf *w, const family *f, const series *s)
{
    const bs_histogram *h = &s->u.hist;
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cum += atomic_load_explicit(&((bs_histogram *)h)->buckets[i], memory_order_relaxed);
        char num[40];
        snprintf(le, sizeof le, "le=\"%s\"",
                 i < h->n_bounds ? fmt_double(num, h->bounds[i]) : "+Inf");
        put_series_name(w, f->name, "_bucket", s->labels, le);
        bs_wbuf_printf(w, " %llu\n", (unsigned long long)cum);
    }
    put_series_name(w, f->name, "_sum", s->labels, NULL);
    bs_wbuf_put_u8(w, ' ');
    put_prom_double(w, bs_histogram_sum(h));
    bs_wbuf_put_u8(w, '\n');
    put_series_name(w, f->name, "_count", s->labels, NULL);
    bs_wbuf_printf(w, " %llu\n", (unsigned long long)cum);
}

/* See metrics.h. */
bs_status bs_metrics_render_prometheus(bs_wbuf *out)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_n_families; i++) {
        const family *f = g_families[i];
        /* no series: left over from a failed registration; none exported: metrics.level */
        if (!family_exported(f)) continue;
        bs_wbuf_printf(out, "# HELP %s ", f->name);
        put_help(out, f->help);
        bs_wbuf_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        for (size_t j = 0; j < f->n_series; j++) {
            const series *s = f->series[j];
            if (!exported(s)) continue;
            if (f->type == TYPE_HISTOGRAM) {
                render_hist(out, f, s);
                continue;
            }
            put_series_name(out, f->name, "", s->labels, NULL);
            bs_wbuf_printf(out, " %lld\n", (long long)bs_metric_value(&s->u.metric));
        }
    }
    pthread_mutex_unlock(&g_lock);
    /* The extension renders outside the registry lock (it may register). */
    pthread_mutex_lock(&g_ext_lock);
    if (g_ext_fn && bs_wbuf_status(out) == BS_OK) {
        bs_status es = g_ext_fn(out, g_ext_arg);
        if (es != BS_OK) {
            pthread_mutex_unlock(&g_ext_lock);
            return es;
        }
    }
    pthread_mutex_unlock(&g_ext_lock);
    return bs_wbuf_status(out);
}

/* A JSON number for a double; JSON has no NaN/Inf, so those become null. */
static void put_json_double(bs_wbuf *w, double d)
{
    if (!isfinite(d)) {
        bs_wbuf_put_str(w, "null");
        return;
    }
    put_prom_double(w, d);
}

/* See metrics.h. */
bs_status bs_metrics_render_json(bs_wbuf *out)
{
    bs_wbuf key;
    bs_wbuf_init(&key, 0);
    bool first = true;
    bs_wbuf_put_u8(out, '{');
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_n_families; i++) {
        const family *f = g_families[i];
        for (size_t j = 0; j < f->n_series; j++) {
            const series *s = f->series[j];
            if (!exported(s)) continue;
            bs_wbuf_reset(&key);
            put_series_name(&key, f->name, "", s->labels, NULL);
            if (!first) bs_wbuf_put_u8(out, ',');
            first = false;
            if (key.failed)
                out->failed = true; /* report NOMEM through `out` */
            else
                bs_wbuf_put_json_string(out, (const char *)key.data, key.len);
            bs_wbuf_put_u8(out, ':');
            if (f->type == TYPE_HISTOGRAM) {
                bs_wbuf_printf(out, "{\"count\":%llu,\"sum\":",
                               (unsigned long long)bs_histogram_count(&s->u.hist));
                put_json_double(out, bs_histogram_sum(&s->u.hist));
                bs_wbuf_put_u8(out, '}');
            } else {
                bs_wbuf_printf(out, "%lld", (long long)bs_metric_value(&s->u.metric));
            }
        }
    }
    pthread_mutex_unlock(&g_lock);
    bs_wbuf_put_u8(out, '}');
    bs_wbuf_free(&key);
    return bs_wbuf_status(out);
}

/* See metrics.h. Buckets are copied to a local array so the callback sees
 * one plain snapshot per series instead of atomics. */
bs_status bs_metrics_foreach(bs_metrics_visit_fn fn, void *arg)
{
    bs_status st = BS_OK;
    uint64_t buckets[MAX_BOUNDS + 1];
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_n_families && st == BS_OK; i++) {
        const family *f = g_families[i];
        for (size_t j = 0; j < f->n_series; j++) {
            const series *s = f->series[j];
            if (!exported(s)) continue;
            bs_metric_sample smp = {.name = f->name, .help = f->help, .labels = s->labels};
            if (f->type == TYPE_HISTOGRAM) {
                const bs_histogram *h = &s->u.hist;
                smp.kind = BS_METRIC_HISTOGRAM;
                smp.n_bounds = h->n_bounds;
                smp.bounds = h->bounds;
                for (size_t b = 0; b <= h->n_bounds; b++) {
                    buckets[b] = atomic_load_explicit(&((bs_histogram *)h)->buckets[b],
                                                      memory_order_relaxed);
                    smp.count += buckets[b];
                }
                smp.buckets = buckets;
                smp.sum = bs_histogram_sum(h);
            } else {
                smp.kind = f->type == TYPE_COUNTER ? BS_METRIC_COUNTER : BS_METRIC_GAUGE;
                smp.value = bs_metric_value(&s->u.metric);
            }
            if (fn(&smp, arg) != 0) {
                st = BS_E_STATE;
                break;
            }
        }
    }
    pthread_mutex_unlock(&g_lock);
    return st;
}

/* See metrics.h. */
void bs_metrics_shutdown(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_n_families; i++)
        family_free(g_families[i]);
    free(g_families);
    g_families = NULL;
    g_n_families = g_cap_families = 0;
    pthread_mutex_unlock(&g_lock);
    atomic_store_explicit(&g_level, BS_METRICS_LEVEL_PER_TOPIC_PER_BROKER, memory_order_relaxed);
    bs_metrics_set_extension(NULL, NULL);
}
