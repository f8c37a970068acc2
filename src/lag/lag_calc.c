/*
 * lag_calc.c - the pure parts of the consumer-lag monitor (see lag.h): the
 * log-end offset history behind EstimatedTimeLag, the label rules, the
 * snapshot and its Prometheus and EMF renderings. No I/O, no threads.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/lag.h"

/* ---------------------------------------------------------------- history */

/* See lag.h. */
void bs_lag_history_add(bs_lag_history *h, int64_t t_ms, int64_t offset)
{
    if (h->n > 0) {
        const bs_lag_point *last = &h->p[h->n - 1];
        if (offset == last->offset) return;
        if (offset < last->offset || t_ms < last->t_ms) h->n = 0; /* truncated or clock step */
    }
    if (h->n == BS_LAG_HISTORY_MAX) {
        /* merge away the interior point closest in time to its predecessor */
        size_t best = 1;
        int64_t best_gap = INT64_MAX;
        for (size_t i = 1; i + 1 < h->n; i++) {
            int64_t gap = h->p[i].t_ms - h->p[i - 1].t_ms;
            if (gap < best_gap) {
                best_gap = gap;
                best = i;
            }
        }
        memmove(&h->p[best], &h->p[best + 1], (size_t)(h->n - best - 1) * sizeof h->p[0]);
        h->n--;
    }
    h->p[h->n].t_ms = t_ms;
    h->p[h->n].offset = offset;
    h->n++;
}

/* See lag.h. */
double bs_lag_history_time_lag_s(const bs_lag_history *h, int64_t committed, int64_t now_ms)
{
    if (h->n == 0 || committed >= h->p[h->n - 1].offset) return 0.0;
    /* The record at `committed` made the log-end offset committed + 1: find
     * the first sample that had it. */
    int64_t want = committed + 1;
    size_t k = 0;
    while (k < h->n && h->p[k].offset < want)
        k++;
    double appended_ms;
    if (k == 0) {
        appended_ms = (double)h->p[0].t_ms; /* older than the history: a lower bound */
    } else {
        const bs_lag_point *a = &h->p[k - 1], *b = &h->p[k];
        double frac = (double)(want - a->offset) / (double)(b->offset - a->offset);
        appended_ms = (double)a->t_ms + frac * (double)(b->t_ms - a->t_ms);
    }
    double lag = ((double)now_ms - appended_ms) / 1000.0;
    return lag > 0 ? lag : 0.0;
}

/* ---------------------------------------------------------------- names */

static const char *const skip_names[BS_LAG_SKIP_N] = {"unlabelable", "state", "cap",
                                                      "offsets_error"};

/* See lag.h. */
const char *bs_lag_skip_name(bs_lag_skip r)
{
    return (unsigned)r < BS_LAG_SKIP_N ? skip_names[r] : "?";
}

/* See lag.h. */
bool bs_lag_name_usable(const char *name)
{
    if (!name) return false;
    size_t n = strlen(name);
    if (n == 0 || n > 255) return false;
    bool non_space = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c > 0x7e) return false;
        if (c != ' ') non_space = true;
    }
    return non_space;
}

/* See lag.h. */
bool bs_lag_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    if (!s) return false;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5) return false;
    unsigned long p = 0;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9') return false;
        p = p * 10 + (unsigned long)(*d - '0');
    }
    if (p < 1 || p > 65535) return false;
    const char *h = s;
    size_t n = (size_t)(colon - s);
    if (h[0] == '[') {
        if (n < 3 || h[n - 1] != ']') return false;
        h++;
        n -= 2;
    } else if (memchr(h, ':', n)) {
        return false; /* an IPv6 address needs brackets */
    }
    if (n == 0 || n >= hostlen) return false;
    memcpy(host, h, n);
    host[n] = 0;
    *port = (uint16_t)p;
    return true;
}

/* ---------------------------------------------------------------- snapshot */

struct bs_lag_snapshot {
    int64_t taken_ms;
    bs_lag_row *rows;
    size_t n_rows;
    bs_lag_agg *aggs;
    size_t n_aggs;
    char **strings; /* every group and topic name, owned */
    size_t n_strings;
};

struct bs_lag_builder {
    bs_lag_snapshot *s;
    size_t max_rows;
    size_t cap_rows, cap_aggs, cap_strings;
    size_t dropped_rows, dropped_aggs;
    /* the (group, topic) of the last aggregate, for the common case of rows
     * arriving group by group, topic by topic */
    bs_lag_agg *last;
};

/* Grow *v (elements of `size`) to hold one more than *n. */
static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return true;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*v, ncap * size);
    if (!p) return false;
    *v = p;
    *cap = ncap;
    return true;
}

/* See lag.h. */
bs_status bs_lag_builder_new(int64_t taken_ms, size_t max_rows, bs_lag_builder **out)
{
    bs_lag_builder *b = calloc(1, sizeof *b);
    if (!b) return BS_E_NOMEM;
    b->s = calloc(1, sizeof *b->s);
    if (!b->s) {
        free(b);
        return BS_E_NOMEM;
    }
    b->s->taken_ms = taken_ms;
    b->max_rows = max_rows;
    *out = b;
    return BS_OK;
}

/* Keep a copy of `str` in the snapshot, reusing the previous one when equal. */
static const char *intern(bs_lag_builder *b, const char *str)
{
    bs_lag_snapshot *s = b->s;
    for (size_t i = s->n_strings; i > 0 && i + 2 > s->n_strings; i--)
        if (strcmp(s->strings[i - 1], str) == 0) return s->strings[i - 1];
    if (!grow((void **)&s->strings, &b->cap_strings, s->n_strings, sizeof *s->strings))
        return NULL;
    char *c = strdup(str);
    if (!c) return NULL;
    s->strings[s->n_strings++] = c;
    return c;
}

/* See lag.h. */
bs_status bs_lag_builder_add(bs_lag_builder *b, const char *group, const char *topic,
                             int32_t partition, int64_t log_end, int64_t committed,
                             double time_lag_s)
{
    bs_lag_snapshot *s = b->s;
    int64_t lag = log_end > committed ? log_end - committed : 0;
    if (lag == 0) time_lag_s = 0.0;
    bs_lag_agg *a = b->last;
    if (!a || strcmp(a->group, group) != 0 || strcmp(a->topic, topic) != 0) {
        a = NULL;
        /* rows of one group may interleave topics: look back within the group */
        for (size_t i = s->n_aggs; i > 0; i--) {
            bs_lag_agg *x = &s->aggs[i - 1];
            if (strcmp(x->group, group) != 0) break;
            if (strcmp(x->topic, topic) == 0) {
                a = x;
                break;
            }
        }
        if (!a) {
            if (s->n_aggs >= b->max_rows) {
                b->dropped_aggs++;
                b->dropped_rows++;
                b->last = NULL;
                return BS_OK;
            }
            if (!grow((void **)&s->aggs, &b->cap_aggs, s->n_aggs, sizeof *s->aggs))
                return BS_E_NOMEM;
            const char *g = intern(b, group);
            const char *t = g ? intern(b, topic) : NULL;
            if (!t) return BS_E_NOMEM;
            a = &s->aggs[s->n_aggs++];
            *a = (bs_lag_agg){.group = g, .topic = t};
        }
        b->last = a;
    }
    a->sum += lag;
    if (lag > a->max) a->max = lag;
    if (time_lag_s > a->max_time_s) a->max_time_s = time_lag_s;
    if (s->n_rows >= b->max_rows) {
        b->dropped_rows++;
        return BS_OK;
    }
    if (!grow((void **)&s->rows, &b->cap_rows, s->n_rows, sizeof *s->rows)) return BS_E_NOMEM;
    s->rows[s->n_rows++] = (bs_lag_row){.group = a->group,
                                        .topic = a->topic,
                                        .partition = partition,
                                        .lag = lag,
                                        .time_lag_s = time_lag_s};
    return BS_OK;
}

/* See lag.h. */
size_t bs_lag_builder_dropped_rows(const bs_lag_builder *b)
{
    return b->dropped_rows;
}

/* See lag.h. */
size_t bs_lag_builder_dropped_aggs(const bs_lag_builder *b)
{
    return b->dropped_aggs;
}

/* qsort comparator: rows by (group, topic, partition). */
static int cmp_row(const void *x, const void *y)
{
    const bs_lag_row *a = x, *b = y;
    int c = strcmp(a->group, b->group);
    if (!c) c = strcmp(a->topic, b->topic);
    if (!c) c = (a->partition > b->partition) - (a->partition < b->partition);
    return c;
}

/* qsort comparator: aggregates by (group, topic). */
static int cmp_agg(const void *x, const void *y)
{
    const bs_lag_agg *a = x, *b = y;
    int c = strcmp(a->group, b->group);
    return c ? c : strcmp(a->topic, b->topic);
}

/* See lag.h. */
bs_status bs_lag_builder_finish(bs_lag_builder *b, bs_lag_snapshot **out)
{
    bs_lag_snapshot *s = b->s;
    b->s = NULL;
    bs_lag_builder_free(b);
    if (s->n_rows) qsort(s->rows, s->n_rows, sizeof *s->rows, cmp_row);
    if (s->n_aggs) qsort(s->aggs, s->n_aggs, sizeof *s->aggs, cmp_agg);
    *out = s;
    return BS_OK;
}

/* See lag.h. */
void bs_lag_builder_free(bs_lag_builder *b)
{
    if (!b) return;
    bs_lag_snapshot_free(b->s);
    free(b);
}

/* See lag.h. */
void bs_lag_snapshot_free(bs_lag_snapshot *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_strings; i++)
        free(s->strings[i]);
    free(s->strings);
    free(s->rows);
    free(s->aggs);
    free(s);
}

/* See lag.h. */
const bs_lag_row *bs_lag_snapshot_rows(const bs_lag_snapshot *s, size_t *n)
{
    *n = s ? s->n_rows : 0;
    return s ? s->rows : NULL;
}

/* See lag.h. */
const bs_lag_agg *bs_lag_snapshot_aggs(const bs_lag_snapshot *s, size_t *n)
{
    *n = s ? s->n_aggs : 0;
    return s ? s->aggs : NULL;
}

/* See lag.h. */
int64_t bs_lag_snapshot_taken_ms(const bs_lag_snapshot *s)
{
    return s ? s->taken_ms : 0;
}

/* ---------------------------------------------------------------- Prometheus */

/* A finite double with up to millisecond precision ("1.5", "0"). */
static void put_seconds(bs_wbuf *w, double v)
{
    if (!isfinite(v) || v < 0) v = 0;
    bs_wbuf_printf(w, "%.3f", v);
}

/* `name{group="..",topic=".."` (no closing brace). */
static void put_gt(bs_wbuf *w, const char *name, const char *group, const char *topic)
{
    char g[600], t[600];
    bs_metrics_label_escape(group, g, sizeof g);
    bs_metrics_label_escape(topic, t, sizeof t);
    bs_wbuf_printf(w, "%s{group=\"%s\",topic=\"%s\"", name, g, t);
}

/* One family header. */
static void put_family(bs_wbuf *w, const char *name, const char *help)
{
    bs_wbuf_printf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* See lag.h. */
bs_status bs_lag_snapshot_render_prometheus(const bs_lag_snapshot *s, bs_metrics_level level,
                                            bs_wbuf *out)
{
    if (!s) return bs_wbuf_status(out);
    if (s->n_aggs) {
        put_family(out, "brokerside_consumer_lag_sum_offsets",
                   "Offset lag summed over the partitions this broker leads (MSK SumOffsetLag)");
        for (size_t i = 0; i < s->n_aggs; i++) {
            put_gt(out, "brokerside_consumer_lag_sum_offsets", s->aggs[i].group, s->aggs[i].topic);
            bs_wbuf_printf(out, "} %" PRId64 "\n", s->aggs[i].sum);
        }
        put_family(out, "brokerside_consumer_lag_max_offsets",
                   "Largest offset lag of a partition this broker leads (MSK MaxOffsetLag)");
        for (size_t i = 0; i < s->n_aggs; i++) {
            put_gt(out, "brokerside_consumer_lag_max_offsets", s->aggs[i].group, s->aggs[i].topic);
            bs_wbuf_printf(out, "} %" PRId64 "\n", s->aggs[i].max);
        }
        put_family(out, "brokerside_consumer_lag_estimated_max_time_seconds",
                   "Largest EstimatedTimeLag of a partition this broker leads (MSK "
                   "EstimatedMaxTimeLag)");
        for (size_t i = 0; i < s->n_aggs; i++) {
            put_gt(out, "brokerside_consumer_lag_estimated_max_time_seconds", s->aggs[i].group,
                   s->aggs[i].topic);
            bs_wbuf_put_str(out, "} ");
            put_seconds(out, s->aggs[i].max_time_s);
            bs_wbuf_put_u8(out, '\n');
        }
    }
    if (level >= BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION && s->n_rows) {
        put_family(out, "brokerside_consumer_lag_offsets",
                   "Log-end offset minus committed offset (MSK OffsetLag)");
        for (size_t i = 0; i < s->n_rows; i++) {
            put_gt(out, "brokerside_consumer_lag_offsets", s->rows[i].group, s->rows[i].topic);
            bs_wbuf_printf(out, ",partition=\"%" PRId32 "\"} %" PRId64 "\n", s->rows[i].partition,
                           s->rows[i].lag);
        }
        put_family(out, "brokerside_consumer_lag_estimated_time_seconds",
                   "Age of the first unconsumed record, estimated from the log-end offset "
                   "history (MSK EstimatedTimeLag)");
        for (size_t i = 0; i < s->n_rows; i++) {
            put_gt(out, "brokerside_consumer_lag_estimated_time_seconds", s->rows[i].group,
                   s->rows[i].topic);
            bs_wbuf_printf(out, ",partition=\"%" PRId32 "\"} ", s->rows[i].partition);
            put_seconds(out, s->rows[i].time_lag_s);
            bs_wbuf_put_u8(out, '\n');
        }
    }
    return bs_wbuf_status(out);
}

/* ---------------------------------------------------------------- EMF */

/* The head of one document up to and including the fixed dimensions'
 * values: `{"_aws":{...,"Dimensions":[[fixed..., extra...]],"Metrics":[...]}]}`. */
static void emf_head(bs_wbuf *w, const char *ns, const bs_emf_dimension *fixed, size_t n_fixed,
                     int64_t ts_ms, const char *const *extra, size_t n_extra,
                     const char *const *metrics, const char *const *units, size_t n_metrics)
{
    bs_wbuf_printf(w, "{\"_aws\":{\"Timestamp\":%" PRId64 ",\"CloudWatchMetrics\":[{\"Namespace\":",
                   ts_ms);
    bs_wbuf_put_json_string(w, ns, strlen(ns));
    bs_wbuf_put_str(w, ",\"Dimensions\":[[");
    for (size_t i = 0; i < n_fixed + n_extra; i++) {
        const char *d = i < n_fixed ? fixed[i].name : extra[i - n_fixed];
        if (i) bs_wbuf_put_u8(w, ',');
        bs_wbuf_put_json_string(w, d, strlen(d));
    }
    bs_wbuf_put_str(w, "]],\"Metrics\":[");
    for (size_t i = 0; i < n_metrics; i++)
        bs_wbuf_printf(w, "%s{\"Name\":\"%s\",\"Unit\":\"%s\"}", i ? "," : "", metrics[i],
                       units[i]);
    bs_wbuf_put_str(w, "]}]}");
    for (size_t i = 0; i < n_fixed; i++) {
        bs_wbuf_put_u8(w, ',');
        bs_wbuf_put_json_string(w, fixed[i].name, strlen(fixed[i].name));
        bs_wbuf_put_u8(w, ':');
        bs_wbuf_put_json_string(w, fixed[i].value, strlen(fixed[i].value));
    }
}

/* `,"key":"value"` */
static void emf_member(bs_wbuf *w, const char *key, const char *value)
{
    bs_wbuf_put_u8(w, ',');
    bs_wbuf_put_json_string(w, key, strlen(key));
    bs_wbuf_put_u8(w, ':');
    bs_wbuf_put_json_string(w, value, strlen(value));
}

/* See lag.h. */
bs_status bs_lag_snapshot_emf(const bs_lag_snapshot *s, bs_metrics_level level, const char *ns,
                              const bs_emf_dimension *fixed, size_t n_fixed, int64_t ts_ms,
                              bs_emf_emit_fn emit, void *arg)
{
    if (!s) return BS_OK;
    static const char *const gt_dims[] = {"Consumer Group", "Topic"};
    static const char *const gtp_dims[] = {"Consumer Group", "Topic", "Partition"};
    static const char *const agg_names[] = {"SumOffsetLag", "MaxOffsetLag", "EstimatedMaxTimeLag"};
    static const char *const agg_units[] = {"Count", "Count", "Seconds"};
    static const char *const row_names[] = {"OffsetLag", "EstimatedTimeLag"};
    static const char *const row_units[] = {"Count", "Seconds"};
    bs_status st = BS_OK;
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    for (size_t i = 0; i < s->n_aggs && st == BS_OK; i++) {
        const bs_lag_agg *a = &s->aggs[i];
        bs_wbuf_reset(&w);
        emf_head(&w, ns, fixed, n_fixed, ts_ms, gt_dims, 2, agg_names, agg_units, 3);
        emf_member(&w, "Consumer Group", a->group);
        emf_member(&w, "Topic", a->topic);
        bs_wbuf_printf(&w, ",\"SumOffsetLag\":%" PRId64 ",\"MaxOffsetLag\":%" PRId64
                           ",\"EstimatedMaxTimeLag\":",
                       a->sum, a->max);
        put_seconds(&w, a->max_time_s);
        bs_wbuf_put_u8(&w, '}');
        st = bs_wbuf_status(&w);
        if (st == BS_OK) st = emit((const char *)w.data, w.len, arg);
    }
    if (level >= BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION) {
        for (size_t i = 0; i < s->n_rows && st == BS_OK; i++) {
            const bs_lag_row *r = &s->rows[i];
            char part[16];
            snprintf(part, sizeof part, "%" PRId32, r->partition);
            bs_wbuf_reset(&w);
            emf_head(&w, ns, fixed, n_fixed, ts_ms, gtp_dims, 3, row_names, row_units, 2);
            emf_member(&w, "Consumer Group", r->group);
            emf_member(&w, "Topic", r->topic);
            emf_member(&w, "Partition", part);
            bs_wbuf_printf(&w, ",\"OffsetLag\":%" PRId64 ",\"EstimatedTimeLag\":", r->lag);
            put_seconds(&w, r->time_lag_s);
            bs_wbuf_put_u8(&w, '}');
            st = bs_wbuf_status(&w);
            if (st == BS_OK) st = emit((const char *)w.data, w.len, arg);
        }
    }
    bs_wbuf_free(&w);
    return st;
}
