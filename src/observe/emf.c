/*
 * emf.c - metric snapshots in CloudWatch Embedded Metric Format (see emf.h).
 *
 * A snapshot copies every series out of the registry (one short lock in
 * bs_metrics_foreach), joins the copies with the previous snapshot's
 * baselines (both arrays are in the registry's (name, labels) order, so a
 * linear merge suffices), groups series by label set and renders documents.
 * The new baselines replace the old ones only when every document was
 * emitted.
 */
#include "brokerside/emf.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/buf.h"
#include "brokerside/metrics.h"


/* One series copied out of the registry, with its baseline and output. */
typedef struct sample {
    char *name;
    char *labels;
    bs_metric_kind kind;
    int64_t value;
    size_t n_bounds;
    double *bounds;    /* n_bounds */
    uint64_t *buckets; /* n_bounds + 1, not cumulative */
    double sum;
    uint64_t count;
} sample;

typedef struct sample_vec {
    sample *v;
    size_t n, cap;
    bool failed; /* an allocation failed during collection */
} sample_vec;

struct bs_emf {
    char *ns;
    bs_emf_dimension *fixed; /* owned copies */
    size_t n_fixed;
    size_t max_metrics;
    sample_vec prev; /* baselines, (name, labels) order */
};

/* Release a sample's allocations. */
static void sample_free(sample *s)
{
    free(s->name);
    free(s->labels);
    free(s->bounds);
    free(s->buckets);
}

/* Release every sample and the array. */
static void vec_free(sample_vec *v)
{
    for (size_t i = 0; i < v->n; i++)
        sample_free(&v->v[i]);
    free(v->v);
    memset(v, 0, sizeof *v);
}

/* bs_metrics_foreach callback: deep-copy one series. Stops on NOMEM. */
static int collect(const bs_metric_sample *m, void *arg)
{
    sample_vec *v = arg;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        sample *p = realloc(v->v, cap * sizeof *p);
        if (!p) goto fail;
        v->v = p;
        v->cap = cap;
    }
    sample s = {.kind = m->kind,
                .value = m->value,
                .n_bounds = m->n_bounds,
                .sum = m->sum,
                .count = m->count};
    s.name = strdup(m->name);
    s.labels = strdup(m->labels);
    if (m->kind == BS_METRIC_HISTOGRAM) {
        s.bounds = malloc(m->n_bounds * sizeof(double));
        s.buckets = malloc((m->n_bounds + 1) * sizeof(uint64_t));
        if (s.bounds) memcpy(s.bounds, m->bounds, m->n_bounds * sizeof(double));
        if (s.buckets) memcpy(s.buckets, m->buckets, (m->n_bounds + 1) * sizeof(uint64_t));
    }
    if (!s.name || !s.labels || (m->kind == BS_METRIC_HISTOGRAM && (!s.bounds || !s.buckets))) {
        sample_free(&s);
        goto fail;
    }
    v->v[v->n++] = s;
    return 0;
fail:
    v->failed = true;
    return 1;
}

/* True for [a-zA-Z_][a-zA-Z0-9_]* of 1..255 chars (what dimension names we
 * accept for the fixed dimensions; labels already satisfy it). */
static bool valid_dim_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* See emf.h. */
void bs_emf_options_default(bs_emf_options *o)
{
    memset(o, 0, sizeof *o);
    o->namespace_name = "Brokerside";
    o->max_metrics = BS_EMF_MAX_METRICS;
}

/* See emf.h. */
void bs_emf_free(bs_emf *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n_fixed; i++) {
        free((char *)e->fixed[i].name);
        free((char *)e->fixed[i].value);
    }
    free(e->fixed);
    free(e->ns);
    vec_free(&e->prev);
    free(e);
}

/* See emf.h. */
bs_status bs_emf_new(const bs_emf_options *o, bs_emf **out)
{
    BS_ENSURE(o && out, BS_E_STATE);
    BS_ENSURE(o->namespace_name && o->namespace_name[0] && strlen(o->namespace_name) <= 255,
              BS_E_CONFIG);
    BS_ENSURE(o->max_metrics >= 1 && o->max_metrics <= BS_EMF_MAX_METRICS, BS_E_CONFIG);
    BS_ENSURE(o->n_fixed <= BS_EMF_MAX_DIMENSIONS && (o->fixed || o->n_fixed == 0), BS_E_CONFIG);
    for (size_t i = 0; i < o->n_fixed; i++) {
        BS_ENSURE(o->fixed[i].name && o->fixed[i].value && valid_dim_name(o->fixed[i].name) &&
                      strcmp(o->fixed[i].name, "_aws") != 0,
                  BS_E_CONFIG);
        for (size_t j = 0; j < i; j++)
            BS_ENSURE(strcmp(o->fixed[i].name, o->fixed[j].name) != 0, BS_E_CONFIG);
    }
    bs_emf *e = calloc(1, sizeof *e);
    if (!e) return BS_E_NOMEM;
    e->max_metrics = o->max_metrics;
    e->ns = strdup(o->namespace_name);
    if (o->n_fixed) e->fixed = calloc(o->n_fixed, sizeof *e->fixed);
    if (!e->ns || (o->n_fixed && !e->fixed)) goto nomem;
    for (size_t i = 0; i < o->n_fixed; i++) {
        e->fixed[i].name = strdup(o->fixed[i].name);
        e->fixed[i].value = strdup(o->fixed[i].value);
        e->n_fixed++;
        if (!e->fixed[i].name || !e->fixed[i].value) goto nomem;
    }
    *out = e;
    return BS_OK;
nomem:
    bs_emf_free(e);
    return BS_E_NOMEM;
}

/* ---------------------------------------------------------------- labels */

#define MAX_LABELS 64

/* A parsed label set: names and unescaped values, pointing into `store`. */
typedef struct label_set {
    size_t n;
    const char *name[MAX_LABELS];
    const char *value[MAX_LABELS];
    char *store;
} label_set;

/* Parse `k="v",...` (Prometheus escapes \\ \" \n) into ls. BS_E_MALFORMED
 * for anything else, BS_E_TOO_LARGE for more than MAX_LABELS labels. The
 * caller frees ls->store. */
static bs_status parse_labels(const char *labels, label_set *ls)
{
    ls->n = 0;
    ls->store = malloc(strlen(labels) + 1);
    if (!ls->store) return BS_E_NOMEM;
    char *w = ls->store;
    const char *p = labels;
    while (*p) {
        BS_ENSURE(ls->n < MAX_LABELS, BS_E_TOO_LARGE);
        ls->name[ls->n] = w;
        while (*p && *p != '=')
            *w++ = *p++;
        *w++ = 0;
        BS_ENSURE(p[0] == '=' && p[1] == '"', BS_E_MALFORMED);
        p += 2;
        ls->value[ls->n] = w;
        while (*p && *p != '"') {
            if (*p == '\\') {
                p++;
                BS_ENSURE(*p == '\\' || *p == '"' || *p == 'n', BS_E_MALFORMED);
                *w++ = *p == 'n' ? '\n' : *p;
                p++;
            } else {
                *w++ = *p++;
            }
        }
        BS_ENSURE(*p == '"', BS_E_MALFORMED);
        *w++ = 0;
        p++;
        ls->n++;
        if (*p == ',') p++;
    }
    return BS_OK;
}

/* ---------------------------------------------------------------- values */

/* The EMF unit for a Prometheus-style metric name. */
static const char *unit_for(const char *name)
{
    size_t n = strlen(name);
#define ENDS(s) (n >= sizeof(s) - 1 && strcmp(name + n - (sizeof(s) - 1), s) == 0)
    if (ENDS("_seconds")) return "Seconds";
    if (ENDS("_bytes") || ENDS("_bytes_total")) return "Bytes";
    if (ENDS("_total")) return "Count";
    return "None";
#undef ENDS
}

/* Shortest round-tripping decimal for a finite double. */
static void put_double(bs_wbuf *w, double d)
{
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d) snprintf(tmp, sizeof tmp, "%.17g", d);
    bs_wbuf_put_str(w, tmp);
}

/* One metric value ready to render. */
typedef struct outval {
    const sample *s;
    int64_t scalar;
    /* histogram delta */
    size_t n;
    double values[65];
    uint64_t counts[65];
    uint64_t count;
    double sum;
} outval;

/* Compute the output value of `s` against baseline `p` (NULL if new).
 * Returns false when the metric is to be left out (no new observations) or
 * skipped (*nonfinite set). */
static bool compute(const sample *s, const sample *p, outval *o, bool *nonfinite)
{
    memset(o, 0, sizeof *o);
    o->s = s;
    *nonfinite = false;
    if (s->kind == BS_METRIC_GAUGE) {
        o->scalar = s->value;
        return true;
    }
    if (s->kind == BS_METRIC_COUNTER) {
        int64_t base = p && p->kind == BS_METRIC_COUNTER ? p->value : 0;
        o->scalar = s->value >= base ? s->value - base : s->value;
        return true;
    }
    bool same =
        p && p->kind == BS_METRIC_HISTOGRAM && p->n_bounds == s->n_bounds && p->count <= s->count;
    for (size_t b = 0; b <= s->n_bounds; b++)
        if (same && p->buckets[b] > s->buckets[b]) same = false; /* reset: report afresh */
    double sum = same ? s->sum - p->sum : s->sum;
    for (size_t b = 0; b <= s->n_bounds; b++) {
        uint64_t c = s->buckets[b] - (same ? p->buckets[b] : 0);
        if (c == 0) continue;
        /* The +Inf bucket is reported at the last finite bound. */
        double v = s->n_bounds == 0 ? 0.0 : s->bounds[b < s->n_bounds ? b : s->n_bounds - 1];
        if (o->n > 0 && o->values[o->n - 1] == v) {
            o->counts[o->n - 1] += c;
        } else {
            o->values[o->n] = v;
            o->counts[o->n] = c;
            o->n++;
        }
        o->count += c;
    }
    if (o->count == 0) return false;
    o->sum = sum;
    for (size_t i = 0; i < o->n; i++)
        if (!isfinite(o->values[i])) *nonfinite = true;
    if (!isfinite(sum)) *nonfinite = true;
    return !*nonfinite;
}

/* Render a value as the document member. */
static void put_value(bs_wbuf *w, const outval *o)
{
    if (o->s->kind != BS_METRIC_HISTOGRAM) {
        bs_wbuf_printf(w, "%" PRId64, o->scalar);
        return;
    }
    bs_wbuf_put_str(w, "{\"Values\":[");
    for (size_t i = 0; i < o->n; i++) {
        if (i) bs_wbuf_put_u8(w, ',');
        put_double(w, o->values[i]);
    }
    bs_wbuf_put_str(w, "],\"Counts\":[");
    for (size_t i = 0; i < o->n; i++)
        bs_wbuf_printf(w, "%s%" PRIu64, i ? "," : "", o->counts[i]);
    bs_wbuf_printf(w, "],\"Count\":%" PRIu64 ",\"Sum\":", o->count);
    put_double(w, o->sum);
    bs_wbuf_put_str(w, ",\"Min\":");
    put_double(w, o->values[0]);
    bs_wbuf_put_str(w, ",\"Max\":");
    put_double(w, o->values[o->n - 1]);
    bs_wbuf_put_u8(w, '}');
}

/* Render and emit one document for outs[0..n) sharing label set ls. */
static bs_status emit_doc(bs_emf *e, int64_t ts, const label_set *ls, const outval *outs, size_t n,
                          bs_emf_emit_fn emit, void *arg, bs_emf_stats *st)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_printf(
        &w, "{\"_aws\":{\"Timestamp\":%" PRId64 ",\"CloudWatchMetrics\":[{\"Namespace\":", ts);
    bs_wbuf_put_json_string(&w, e->ns, strlen(e->ns));
    bs_wbuf_put_str(&w, ",\"Dimensions\":[[");
    size_t k = 0;
    for (size_t i = 0; i < e->n_fixed; i++, k++) {
        if (k) bs_wbuf_put_u8(&w, ',');
        bs_wbuf_put_json_string(&w, e->fixed[i].name, strlen(e->fixed[i].name));
    }
    for (size_t i = 0; i < ls->n; i++, k++) {
        if (k) bs_wbuf_put_u8(&w, ',');
        bs_wbuf_put_json_string(&w, ls->name[i], strlen(ls->name[i]));
    }
    bs_wbuf_put_str(&w, "]],\"Metrics\":[");
    for (size_t i = 0; i < n; i++) {
        bs_wbuf_put_str(&w, i ? ",{\"Name\":" : "{\"Name\":");
        bs_wbuf_put_json_string(&w, outs[i].s->name, strlen(outs[i].s->name));
        bs_wbuf_printf(&w, ",\"Unit\":\"%s\"}", unit_for(outs[i].s->name));
    }
    bs_wbuf_put_str(&w, "]}]}");
    for (size_t i = 0; i < e->n_fixed; i++) {
        bs_wbuf_put_u8(&w, ',');
        bs_wbuf_put_json_string(&w, e->fixed[i].name, strlen(e->fixed[i].name));
        bs_wbuf_put_u8(&w, ':');
        bs_wbuf_put_json_string(&w, e->fixed[i].value, strlen(e->fixed[i].value));
    }
    for (size_t i = 0; i < ls->n; i++) {
        bs_wbuf_put_u8(&w, ',');
        bs_wbuf_put_json_string(&w, ls->name[i], strlen(ls->name[i]));
        bs_wbuf_put_u8(&w, ':');
        /* Label values may carry client-supplied bytes (topic names from
         * requests): invalid UTF-8 becomes U+FFFD, so the document stays
         * valid UTF-8 JSON. */
        bs_wbuf_put_json_string(&w, ls->value[i], strlen(ls->value[i]));
    }
    for (size_t i = 0; i < n; i++) {
        bs_wbuf_put_u8(&w, ',');
        bs_wbuf_put_json_string(&w, outs[i].s->name, strlen(outs[i].s->name));
        bs_wbuf_put_u8(&w, ':');
        put_value(&w, &outs[i]);
    }
    bs_wbuf_put_u8(&w, '}');
    bs_status s = bs_wbuf_status(&w);
    if (s == BS_OK) s = emit((const char *)w.data, w.len, arg);
    if (s == BS_OK) {
        st->documents++;
        st->metrics += n;
    }
    bs_wbuf_free(&w);
    return s;
}

/* qsort_r comparator over indices into the sample array `ctx`: (labels, name). */
static int cmp_group(const void *a, const void *b, void *ctx)
{
    const sample *v = ctx;
    const sample *x = &v[*(const size_t *)a], *y = &v[*(const size_t *)b];
    int c = strcmp(x->labels, y->labels);
    return c ? c : strcmp(x->name, y->name);
}

/* Registry order: (name, labels). */
static int cmp_key(const sample *x, const sample *y)
{
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

/* True if a dimension of the document would collide with metric `name`. */
static bool conflicts(const bs_emf *e, const label_set *ls, const char *name)
{
    for (size_t i = 0; i < e->n_fixed; i++)
        if (strcmp(e->fixed[i].name, name) == 0) return true;
    for (size_t i = 0; i < ls->n; i++)
        if (strcmp(ls->name[i], name) == 0) return true;
    return strcmp(name, "_aws") == 0;
}

/* True if the label set can be dimensions next to the fixed ones. */
static bool labels_usable(const bs_emf *e, const label_set *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        if (strcmp(ls->name[i], "_aws") == 0) return false;
        for (size_t j = 0; j < e->n_fixed; j++)
            if (strcmp(ls->name[i], e->fixed[j].name) == 0) return false;
    }
    return true;
}

/* Emit every document of group idx[0..n) (same labels). */
static bs_status emit_group(bs_emf *e, int64_t ts, const sample_vec *cur, const sample **base,
                            const size_t *idx, size_t n, bs_emf_emit_fn emit, void *arg,
                            bs_emf_stats *st, outval *outs)
{
    bs_status s = BS_OK;
    label_set ls = {0};
    bs_status ps = parse_labels(cur->v[idx[0]].labels, &ls);
    if (ps == BS_E_NOMEM) {
        s = ps;
        goto out;
    }
    if (ps != BS_OK || ls.n + e->n_fixed > BS_EMF_MAX_DIMENSIONS) {
        st->skipped_dimensions += n;
        goto out;
    }
    if (!labels_usable(e, &ls)) {
        st->skipped_conflicts += n;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const sample *smp = &cur->v[idx[i]];
        bool nonfinite;
        if (conflicts(e, &ls, smp->name)) {
            st->skipped_conflicts++;
            continue;
        }
        if (!compute(smp, base[idx[i]], &outs[k], &nonfinite)) {
            if (nonfinite) st->skipped_nonfinite++;
            continue;
        }
        if (++k == e->max_metrics) {
            BS_GUARD_GOTO(s, emit_doc(e, ts, &ls, outs, k, emit, arg, st), out);
            k = 0;
        }
    }
    if (k) s = emit_doc(e, ts, &ls, outs, k, emit, arg, st);
out:
    free(ls.store);
    return s;
}

/* See emf.h. */
bs_status bs_emf_snapshot(bs_emf *e, int64_t timestamp_ms, bs_emf_emit_fn emit, void *arg,
                          bs_emf_stats *stats)
{
    BS_ENSURE(e && emit, BS_E_STATE);
    bs_emf_stats local = {0};
    bs_status s = BS_OK;
    sample_vec cur = {0};
    const sample **base = NULL;
    size_t *idx = NULL;
    outval *outs = NULL;
    bs_status fs = bs_metrics_foreach(collect, &cur);
    if (cur.failed || (fs != BS_OK && fs != BS_E_STATE)) {
        s = cur.failed ? BS_E_NOMEM : fs;
        goto out;
    }
    if (cur.n == 0) goto done;
    base = calloc(cur.n, sizeof *base);
    idx = malloc(cur.n * sizeof *idx);
    outs = malloc(e->max_metrics * sizeof *outs);
    if (!base || !idx || !outs) {
        s = BS_E_NOMEM;
        goto out;
    }
    /* Merge-join with the baselines: both are in (name, labels) order. */
    for (size_t i = 0, j = 0; i < cur.n; i++) {
        while (j < e->prev.n && cmp_key(&e->prev.v[j], &cur.v[i]) < 0)
            j++;
        if (j < e->prev.n && cmp_key(&e->prev.v[j], &cur.v[i]) == 0) base[i] = &e->prev.v[j];
        idx[i] = i;
    }
    qsort_r(idx, cur.n, sizeof *idx, cmp_group, cur.v);
    for (size_t i = 0; i < cur.n;) {
        size_t j = i + 1;
        while (j < cur.n && strcmp(cur.v[idx[j]].labels, cur.v[idx[i]].labels) == 0)
            j++;
        BS_GUARD_GOTO(
            s, emit_group(e, timestamp_ms, &cur, base, idx + i, j - i, emit, arg, &local, outs),
            out);
        i = j;
    }
done:
    /* Everything was emitted: the current values become the baselines. */
    vec_free(&e->prev);
    e->prev = cur;
    memset(&cur, 0, sizeof cur);
out:
    if (stats) *stats = local;
    free(base);
    free(idx);
    free(outs);
    vec_free(&cur);
    return s;
}
