/* cloudwatch_metrics.c - the CloudWatch metrics sink: EMF events to PutMetricData (JSON 1.0, or
 * the query protocol for older endpoints). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "aws_sink_internal.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/text.h"

#define MOD "cwmetrics_sink"
#define CWM_MAX_DATUMS 1000
#define CWM_MAX_DIMS 30
#define CWM_MAX_DISTINCT 150
/* PutMetricData accepts 1 MB of request; stay well below it when packing a call */
#define CWM_MAX_CALL_BYTES (900u * 1024)

typedef struct cwm_sink {
    bs_aws_sink_base base;
    bool query;
    char url[512];
} cwm_sink;

typedef struct cwm_datum {
    size_t entry;
    const char *ns, *name, *unit; /* point into the job's parsed events */
    const char *dim_name[CWM_MAX_DIMS], *dim_value[CWM_MAX_DIMS];
    size_t n_dims;
    int storage_resolution; /* 0 = not given */
    int64_t ts_s;           /* 0 = not given */
    bool single;
    double value;
    double *values, *counts; /* malloc'd, n_values each, when !single */
    size_t n_values;
} cwm_datum;

typedef struct cwm_job {
    cwm_sink *ms;
    bs_sink_batch *b;
    size_t n_entries; /* b->n, kept: the batch is gone once it is done */
    cJSON **parsed;   /* per entry, NULL if not parsed */
    cwm_datum *d;
    size_t n_d, cap_d;
    size_t start, end;   /* current call covers datums [start, end) */
    bs_sink_result *res; /* per entry: result so far (DELIVERED unless a call failed) */
    char (*reason)[160];
} cwm_job;

static void cwm_next(cwm_job *j);

/* See aws_sinks.h. */
void bs_cwmetrics_sink_limits(bs_sink_limits *l)
{
    memset(l, 0, sizeof *l);
    l->max_events = 1000;
    l->max_bytes = 4u * 1024 * 1024;
    l->max_age_ms = 1000;
}

/* Count a value that could not be sent, by reason. */
static void cwm_skip(const cwm_sink *ms, const char *reason)
{
    bs_metric_add(bs_metrics_counter_kv("brokerside_sink_skipped_values_total",
                                        "EMF metric values not sent to CloudWatch, by reason",
                                        "sink", ms->base.sink_name, "reason", reason, NULL),
                  1);
}

/* Free the job and everything it parsed. */
static void cwm_free(cwm_job *j)
{
    for (size_t i = 0; i < j->n_d; i++) {
        free(j->d[i].values);
        free(j->d[i].counts);
    }
    free(j->d);
    if (j->parsed)
        for (size_t i = 0; i < j->n_entries; i++)
            cJSON_Delete(j->parsed[i]);
    free(j->parsed);
    free(j->res);
    free(j->reason);
    free(j);
}

/* Room for one more datum; false on allocation failure. */
static bool cwm_grow(cwm_job *j)
{
    if (j->n_d < j->cap_d) return true;
    size_t cap = j->cap_d ? j->cap_d * 2 : 64;
    cwm_datum *nd = realloc(j->d, cap * sizeof *nd);
    if (!nd) return false;
    j->d = nd;
    j->cap_d = cap;
    return true;
}

/* qsort order for (value, count) pairs by value. */
static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Add the datum(s) for one metric of one dimension set. The value is a
 * number or an array of numbers; arrays become Values/Counts with at most
 * 150 distinct values per datum (more distinct values: several datums).
 * Non-finite and non-numeric values are skipped and counted. Returns false
 * on allocation failure only. */
static bool cwm_add(cwm_job *j, const cwm_datum *tmpl, const cJSON *v)
{
    cwm_sink *ms = j->ms;
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble)) {
            cwm_skip(ms, "non_finite");
            return true;
        }
        if (!cwm_grow(j)) return false;
        cwm_datum *d = &j->d[j->n_d++];
        *d = *tmpl;
        d->single = true;
        d->value = v->valuedouble;
        return true;
    }
    if (!cJSON_IsArray(v)) {
        cwm_skip(ms, v ? "not_a_number" : "missing");
        return true;
    }
    size_t n = (size_t)cJSON_GetArraySize(v), k = 0;
    double *vals = malloc((n ? n : 1) * sizeof *vals);
    if (!vals) return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsNumber(it))
            cwm_skip(ms, "not_a_number");
        else if (!isfinite(it->valuedouble))
            cwm_skip(ms, "non_finite");
        else
            vals[k++] = it->valuedouble;
    }
    qsort(vals, k, sizeof *vals, dbl_cmp);
    bool ok = true;
    for (size_t i = 0; i < k && ok;) {
        /* one datum of up to 150 distinct values */
        if (!cwm_grow(j)) {
            ok = false;
            break;
        }
        cwm_datum *d = &j->d[j->n_d];
        *d = *tmpl;
        d->single = false;
        d->values = malloc(CWM_MAX_DISTINCT * sizeof(double));
        d->counts = malloc(CWM_MAX_DISTINCT * sizeof(double));
        if (!d->values || !d->counts) {
            free(d->values);
            free(d->counts);
            ok = false;
            break;
        }
        d->n_values = 0;
        while (i < k && d->n_values < CWM_MAX_DISTINCT) {
            size_t c = 1;
            while (i + c < k && vals[i + c] == vals[i])
                c++;
            d->values[d->n_values] = vals[i];
            d->counts[d->n_values] = (double)c;
            d->n_values++;
            i += c;
        }
        j->n_d++;
    }
    free(vals);
    return ok;
}

/* Turn one EMF event into datums. Returns the number of datums added through
 * *added; false on allocation failure. A non-EMF payload adds none. */
static bool cwm_parse_event(cwm_job *j, size_t entry, size_t *added)
{
    const bs_sink_entry *e = &j->b->entries[entry];
    size_t before = j->n_d;
    *added = 0;
    cJSON *root = cJSON_ParseWithLength((const char *)e->payload, e->len);
    j->parsed[entry] = root;
    const cJSON *aws = cJSON_GetObjectItemCaseSensitive(root, "_aws");
    const cJSON *dirs = cJSON_GetObjectItemCaseSensitive(aws, "CloudWatchMetrics");
    if (!cJSON_IsArray(dirs)) return true;
    cwm_datum t;
    memset(&t, 0, sizeof t);
    t.entry = entry;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(aws, "Timestamp");
    if (cJSON_IsNumber(ts) && isfinite(ts->valuedouble) && ts->valuedouble > 0)
        t.ts_s = (int64_t)(ts->valuedouble / 1000.0);
    const cJSON *dir;
    cJSON_ArrayForEach(dir, dirs)
    {
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(dir, "Namespace");
        const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(dir, "Metrics");
        const cJSON *dimsets = cJSON_GetObjectItemCaseSensitive(dir, "Dimensions");
        if (!cJSON_IsString(ns) || !*ns->valuestring || !cJSON_IsArray(metrics)) {
            cwm_skip(j->ms, "bad_directive");
            continue;
        }
        t.ns = ns->valuestring;
        /* no dimension sets: the metrics are sent once without dimensions */
        int n_sets = cJSON_IsArray(dimsets) ? cJSON_GetArraySize(dimsets) : 0;
        for (int si = 0; si < (n_sets ? n_sets : 1); si++) {
            const cJSON *set = n_sets ? cJSON_GetArrayItem(dimsets, si) : NULL;
            t.n_dims = 0;
            bool bad = false;
            if (set) {
                if (!cJSON_IsArray(set) || cJSON_GetArraySize(set) > CWM_MAX_DIMS) {
                    cwm_skip(j->ms, cJSON_IsArray(set) ? "too_many_dimensions" : "bad_dimensions");
                    continue;
                }
                const cJSON *dn;
                cJSON_ArrayForEach(dn, set)
                {
                    const cJSON *dv = cJSON_IsString(dn)
                                          ? cJSON_GetObjectItemCaseSensitive(root, dn->valuestring)
                                          : NULL;
                    if (!cJSON_IsString(dv) || !*dv->valuestring || !*dn->valuestring) {
                        bad = true;
                        break;
                    }
                    t.dim_name[t.n_dims] = dn->valuestring;
                    t.dim_value[t.n_dims] = dv->valuestring;
                    t.n_dims++;
                }
            }
            if (bad) {
                cwm_skip(j->ms, "bad_dimension_value");
                continue;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, metrics)
            {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "Name");
                const cJSON *unit = cJSON_GetObjectItemCaseSensitive(m, "Unit");
                const cJSON *res = cJSON_GetObjectItemCaseSensitive(m, "StorageResolution");
                if (!cJSON_IsString(name) || !*name->valuestring) {
                    cwm_skip(j->ms, "bad_metric");
                    continue;
                }
                t.name = name->valuestring;
                t.unit = cJSON_IsString(unit) && *unit->valuestring ? unit->valuestring : NULL;
                t.storage_resolution =
                    cJSON_IsNumber(res) && (res->valueint == 1 || res->valueint == 60)
                        ? res->valueint
                        : 0;
                if (!cwm_add(j, &t, cJSON_GetObjectItemCaseSensitive(root, name->valuestring)))
                    return false;
            }
        }
    }
    *added = j->n_d - before;
    return true;
}

/* Stable order by namespace so that each call (one Namespace) is a contiguous range. */
static int cwm_cmp(const void *a, const void *b)
{
    const cwm_datum *x = a, *y = b;
    int c = strcmp(x->ns, y->ns);
    if (c) return c;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/* Append datum i of the job as JSON 1.0 MetricDatum or query members (index k, 1-based). */
static void cwm_put_datum(cwm_job *j, bs_wbuf *w, const cwm_datum *d, size_t k)
{
    if (!j->ms->query) {
        bs_wbuf_put_str(w, k > 1 ? ",{\"MetricName\":" : "{\"MetricName\":");
        bs_wbuf_put_json_string(w, d->name, strlen(d->name));
        if (d->n_dims) {
            bs_wbuf_put_str(w, ",\"Dimensions\":[");
            for (size_t i = 0; i < d->n_dims; i++) {
                bs_wbuf_put_str(w, i ? ",{\"Name\":" : "{\"Name\":");
                bs_wbuf_put_json_string(w, d->dim_name[i], strlen(d->dim_name[i]));
                bs_wbuf_put_str(w, ",\"Value\":");
                bs_wbuf_put_json_string(w, d->dim_value[i], strlen(d->dim_value[i]));
                bs_wbuf_put_u8(w, '}');
            }
            bs_wbuf_put_u8(w, ']');
        }
        if (d->single) {
            bs_wbuf_printf(w, ",\"Value\":%.17g", d->value);
        } else {
            bs_wbuf_put_str(w, ",\"Values\":[");
            for (size_t i = 0; i < d->n_values; i++)
                bs_wbuf_printf(w, "%s%.17g", i ? "," : "", d->values[i]);
            bs_wbuf_put_str(w, "],\"Counts\":[");
            for (size_t i = 0; i < d->n_values; i++)
                bs_wbuf_printf(w, "%s%.17g", i ? "," : "", d->counts[i]);
            bs_wbuf_put_u8(w, ']');
        }
        if (d->unit) {
            bs_wbuf_put_str(w, ",\"Unit\":");
            bs_wbuf_put_json_string(w, d->unit, strlen(d->unit));
        }
        if (d->ts_s) bs_wbuf_printf(w, ",\"Timestamp\":%lld", (long long)d->ts_s);
        if (d->storage_resolution)
            bs_wbuf_printf(w, ",\"StorageResolution\":%d", d->storage_resolution);
        bs_wbuf_put_u8(w, '}');
        return;
    }
    bs_wbuf_printf(w, "&MetricData.member.%zu.MetricName=", k);
    bs_wbuf_put_percent(w, d->name, strlen(d->name), false);
    for (size_t i = 0; i < d->n_dims; i++) {
        bs_wbuf_printf(w, "&MetricData.member.%zu.Dimensions.member.%zu.Name=", k, i + 1);
        bs_wbuf_put_percent(w, d->dim_name[i], strlen(d->dim_name[i]), false);
        bs_wbuf_printf(w, "&MetricData.member.%zu.Dimensions.member.%zu.Value=", k, i + 1);
        bs_wbuf_put_percent(w, d->dim_value[i], strlen(d->dim_value[i]), false);
    }
    if (d->single) {
        bs_wbuf_printf(w, "&MetricData.member.%zu.Value=%.17g", k, d->value);
    } else {
        for (size_t i = 0; i < d->n_values; i++)
            bs_wbuf_printf(w, "&MetricData.member.%zu.Values.member.%zu=%.17g", k, i + 1,
                           d->values[i]);
        for (size_t i = 0; i < d->n_values; i++)
            bs_wbuf_printf(w, "&MetricData.member.%zu.Counts.member.%zu=%.17g", k, i + 1,
                           d->counts[i]);
    }
    if (d->unit) {
        bs_wbuf_printf(w, "&MetricData.member.%zu.Unit=", k);
        bs_wbuf_put_percent(w, d->unit, strlen(d->unit), false);
    }
    if (d->ts_s) {
        time_t t = (time_t)d->ts_s;
        struct tm tm;
        char iso[32];
        gmtime_r(&t, &tm);
        strftime(iso, sizeof iso, "%Y-%m-%dT%H%%3A%M%%3A%SZ", &tm);
        bs_wbuf_printf(w, "&MetricData.member.%zu.Timestamp=%s", k, iso);
    }
    if (d->storage_resolution)
        bs_wbuf_printf(w, "&MetricData.member.%zu.StorageResolution=%d", k, d->storage_resolution);
}

/* Set every entry's result and complete the batch. */
static void cwm_finish(cwm_job *j)
{
    for (size_t i = 0; i < j->b->n; i++)
        if (j->b->entries[i].result == BS_SINK_PENDING)
            bs_aws_sink_set(j->b, i, j->res[i], "%s", j->reason[i]);
    bs_sink_batch_done(j->b);
    cwm_free(j);
}

/* Record a call's failure for the entries whose datums it carried; a retryable
 * failure wins over a permanent one (the entry is resent whole). */
static void cwm_fail(cwm_job *j, size_t from, size_t to, bs_sink_result r, const char *reason)
{
    for (size_t i = from; i < to; i++) {
        size_t e = j->d[i].entry;
        if (j->res[e] == BS_SINK_RETRYABLE) continue;
        j->res[e] = r;
        snprintf(j->reason[e], sizeof j->reason[e], "%s", reason);
    }
}

/* PutMetricData completion. */
static void cwm_done(const bs_aws_http_response *r, void *arg)
{
    cwm_job *j = arg;
    if (j->ms->base.destroying) {
        cwm_free(j);
        return;
    }
    if (r->outcome != BS_AWS_OK) {
        char reason[160];
        bs_sink_result res =
            bs_aws_sink_failure(&j->ms->base, "PutMetricData", r, reason, sizeof reason);
        if (res == BS_SINK_RETRYABLE) {
            /* the endpoint is unavailable: the remaining calls would fail the same way */
            cwm_fail(j, j->start, j->n_d, res, reason);
            cwm_finish(j);
            return;
        }
        cwm_fail(j, j->start, j->end, res, reason);
    }
    j->start = j->end;
    cwm_next(j);
}

/* Send the next PutMetricData (one namespace, <= 1000 datums, < 900 KiB), or finish. */
static void cwm_next(cwm_job *j)
{
    cwm_sink *ms = j->ms;
    if (j->start >= j->n_d) {
        cwm_finish(j);
        return;
    }
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    const char *ns = j->d[j->start].ns;
    if (ms->query) {
        bs_wbuf_put_str(&w, "Action=PutMetricData&Version=2010-08-01&Namespace=");
        bs_wbuf_put_percent(&w, ns, strlen(ns), false);
    } else {
        bs_wbuf_put_str(&w, "{\"Namespace\":");
        bs_wbuf_put_json_string(&w, ns, strlen(ns));
        bs_wbuf_put_str(&w, ",\"MetricData\":[");
    }
    size_t k = 0;
    j->end = j->start;
    while (j->end < j->n_d && k < CWM_MAX_DATUMS && strcmp(j->d[j->end].ns, ns) == 0 &&
           (k == 0 || w.len < CWM_MAX_CALL_BYTES)) {
        cwm_put_datum(j, &w, &j->d[j->end], ++k);
        j->end++;
    }
    if (!ms->query) bs_wbuf_put_str(&w, "]}");
    bs_wbuf_put_u8(&w, 0);
    bs_status st = bs_wbuf_status(&w);
    if (st == BS_OK && !ms->query) {
        st = bs_aws_json_call(ms->base.http, "monitoring", ms->base.region, ms->url,
                              "GraniteServiceVersion20100801.PutMetricData", (const char *)w.data,
                              cwm_done, j);
    } else if (st == BS_OK) {
        static const bs_sigv4_header hdr[] = {
            {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
        bs_aws_http_request req = {.method = "POST",
                                   .url = ms->url,
                                   .headers = hdr,
                                   .n_headers = 1,
                                   .body = w.data,
                                   .body_len = w.len - 1,
                                   .service = "monitoring",
                                   .region = ms->base.region};
        st = bs_aws_http_send(ms->base.http, &req, cwm_done, j);
    }
    bs_wbuf_free(&w);
    if (st == BS_OK) return;
    BS_LOG_ERRORF(MOD, "sink %s: cannot send PutMetricData: %s", ms->base.sink_name,
                  bs_status_name(st));
    cwm_fail(j, j->start, j->n_d, BS_SINK_RETRYABLE, "cannot build request");
    cwm_finish(j);
}

/* ops->deliver: convert the pending EMF events and send them. */
static void cwm_deliver(void *impl, bs_sink_batch *b)
{
    cwm_sink *ms = impl;
    cwm_job *j = calloc(1, sizeof *j);
    bool ok = j != NULL;
    if (ok) {
        j->ms = ms;
        j->b = b;
        j->n_entries = b->n;
        j->parsed = calloc(b->n ? b->n : 1, sizeof *j->parsed);
        j->res = calloc(b->n ? b->n : 1, sizeof *j->res);
        j->reason = calloc(b->n ? b->n : 1, sizeof *j->reason);
        ok = j->parsed && j->res && j->reason;
    }
    for (size_t i = 0; ok && i < b->n; i++) {
        if (b->entries[i].result != BS_SINK_PENDING) continue;
        size_t added = 0;
        ok = cwm_parse_event(j, i, &added);
        if (!ok) break;
        j->res[i] = added ? BS_SINK_DELIVERED : BS_SINK_PERMANENT;
        if (!added) {
            snprintf(j->reason[i], sizeof j->reason[i], "%s",
                     j->parsed[i] ? "EMF event without any sendable metric value"
                                  : "not a JSON (EMF) event");
            cwm_skip(ms, "no_metrics");
        }
    }
    if (!ok) {
        for (size_t i = 0; i < b->n; i++)
            if (b->entries[i].result == BS_SINK_PENDING)
                bs_aws_sink_set(b, i, BS_SINK_RETRYABLE, "out of memory");
        bs_sink_batch_done(b);
        if (j) cwm_free(j);
        return;
    }
    /* stable: entries are already in order within each namespace after sorting by (ns, entry) */
    qsort(j->d, j->n_d, sizeof *j->d, cwm_cmp);
    cwm_next(j);
}

/* ops->destroy. */
static void cwm_destroy(void *impl)
{
    cwm_sink *ms = impl;
    if (!ms) return;
    bs_aws_sink_base_free(&ms->base);
    free(ms);
}

static const bs_sink_ops cwm_ops = {
    .type = "cloudwatch_metrics", .deliver = cwm_deliver, .destroy = cwm_destroy};

/* See aws_sinks.h. */
bs_status bs_cwmetrics_sink_new(const bs_cwmetrics_sink_options *o, const bs_sink_ops **ops,
                                void **impl)
{
    BS_ENSURE(o && ops && impl, BS_E_CONFIG);
    cwm_sink *ms = calloc(1, sizeof *ms);
    BS_ENSURE(ms, BS_E_NOMEM);
    bs_status st = bs_aws_sink_base_init(&ms->base, &o->c);
    if (st != BS_OK) {
        free(ms);
        return st;
    }
    ms->query = o->query_protocol;
    st = bs_aws_sink_endpoint(&ms->base, "monitoring", ms->url, sizeof ms->url - 1);
    if (st != BS_OK) {
        cwm_destroy(ms);
        return BS_E_CONFIG;
    }
    strcat(ms->url, "/");
    *ops = &cwm_ops;
    *impl = ms;
    return BS_OK;
}
