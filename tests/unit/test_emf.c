/* Unit tests for src/observe/emf.c (and bs_metrics_foreach in metrics.c):
 * golden EMF documents for a small registry, counter and histogram deltas
 * across snapshots, at-least-once on emit failure, EMF limits (metrics per
 * directive, dimensions), NaN/Inf skipping, name conflicts, options. */
#include <math.h>

#include <cjson/cJSON.h>

#include "brokerside/emf.h"
#include "brokerside/metrics.h"
#include "test.h"

typedef struct docs {
    char *v[64];
    size_t n;
    bool fail;
} docs;

/* Emit callback: keep a copy of each document, or fail when d->fail. */
static bs_status collect_doc(const char *json, size_t len, void *arg)
{
    docs *d = arg;
    if (d->fail) return BS_E_IO;
    if (d->n >= BS_ARRAY_LEN(d->v)) return BS_E_FULL;
    d->v[d->n++] = strndup(json, len);
    return BS_OK;
}

/* Free the captured documents. */
static void docs_free(docs *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i]);
    d->n = 0;
}

/* A snapshotter with default options (checked), an optional max_metrics and the BrokerId=1
 * dimension. */
static bs_emf *new_emf(size_t max_metrics, bool broker_dim)
{
    static const bs_emf_dimension fixed[] = {{"BrokerId", "1"}};
    bs_emf_options o;
    bs_emf_options_default(&o);
    CHECK_STR(o.namespace_name, "Brokerside");
    CHECK_EQ(o.max_metrics, 100);
    if (max_metrics) o.max_metrics = max_metrics;
    if (broker_dim) {
        o.fixed = fixed;
        o.n_fixed = 1;
    }
    bs_emf *e = NULL;
    CHECK_EQ(bs_emf_new(&o, &e), BS_OK);
    return e;
}

/* The golden registry: a counter and a histogram with two labels, a gauge, a counter with an
 * escaped label value. */
static void small_registry(void)
{
    static const double bounds[] = {0.25, 1.0, 4.0};
    bs_metric_add(bs_metrics_counter_kv("brokerside_requests_total", "Requests.", "api", "Produce",
                                        "listener", "clients", NULL),
                  12);
    bs_metric_set(bs_metrics_gauge("brokerside_connections_open", "Open connections.", NULL), 3);
    bs_histogram *h =
        bs_metrics_histogram_kv("brokerside_request_latency_seconds", "Latency.", bounds, 3, "api",
                                "Produce", "listener", "clients", NULL);
    bs_histogram_observe(h, 0.125);
    bs_histogram_observe(h, 0.25);
    bs_histogram_observe(h, 0.5);
    bs_histogram_observe(h, 8.0); /* above the last bound */
    bs_metric_add(bs_metrics_counter_kv("brokerside_received_bytes_total", "Bytes.", "listener",
                                        "a\"b\nc", NULL),
                  1000);
}

static void test_golden_documents(void)
{
    bs_metrics_shutdown();
    small_registry();
    bs_emf *e = new_emf(0, true);
    docs d = {0};
    bs_emf_stats st;
    CHECK_EQ(bs_emf_snapshot(e, 1764000000000LL, collect_doc, &d, &st), BS_OK);
    CHECK_EQ(d.n, 3);
    CHECK_EQ(st.documents, 3);
    CHECK_EQ(st.metrics, 4);
    CHECK_EQ(st.skipped_nonfinite + st.skipped_dimensions + st.skipped_conflicts, 0);
    if (d.n == 3) {
        CHECK_STR(d.v[0],
                  "{\"_aws\":{\"Timestamp\":1764000000000,\"CloudWatchMetrics\":[{\"Namespace\":"
                  "\"Brokerside\",\"Dimensions\":[[\"BrokerId\"]],\"Metrics\":[{\"Name\":"
                  "\"brokerside_connections_open\",\"Unit\":\"None\"}]}]},\"BrokerId\":\"1\","
                  "\"brokerside_connections_open\":3}");
        CHECK_STR(
            d.v[1],
            "{\"_aws\":{\"Timestamp\":1764000000000,\"CloudWatchMetrics\":[{\"Namespace\":"
            "\"Brokerside\",\"Dimensions\":[[\"BrokerId\",\"api\",\"listener\"]],\"Metrics\":"
            "[{\"Name\":\"brokerside_request_latency_seconds\",\"Unit\":\"Seconds\"},{\"Name\":"
            "\"brokerside_requests_total\",\"Unit\":\"Count\"}]}]},\"BrokerId\":\"1\",\"api\":"
            "\"Produce\",\"listener\":\"clients\",\"brokerside_request_latency_seconds\":{"
            "\"Values\":[0.25,1,4],\"Counts\":[2,1,1],\"Count\":4,\"Sum\":8.875,\"Min\":0.25,"
            "\"Max\":4},\"brokerside_requests_total\":12}");
        CHECK_STR(d.v[2],
                  "{\"_aws\":{\"Timestamp\":1764000000000,\"CloudWatchMetrics\":[{\"Namespace\":"
                  "\"Brokerside\",\"Dimensions\":[[\"BrokerId\",\"listener\"]],\"Metrics\":[{"
                  "\"Name\":\"brokerside_received_bytes_total\",\"Unit\":\"Bytes\"}]}]},"
                  "\"BrokerId\":\"1\",\"listener\":\"a\\\"b\\nc\","
                  "\"brokerside_received_bytes_total\":1000}");
        /* Every document is valid JSON and the dimension value round-trips. */
        cJSON *j = cJSON_Parse(d.v[2]);
        CHECK(j != NULL);
        CHECK_STR(cJSON_GetObjectItem(j, "listener")->valuestring, "a\"b\nc");
        cJSON_Delete(j);
    }
    docs_free(&d);
    bs_emf_free(e);
    bs_metrics_shutdown();
}

/* Value of metric `name` in the document whose dimension `dim` is `val`
 * (or the dimension-less one when dim is NULL); -1 if absent. */
static double find_value(const docs *d, const char *dim, const char *val, const char *name,
                         cJSON **hist)
{
    for (size_t i = 0; i < d->n; i++) {
        cJSON *j = cJSON_Parse(d->v[i]);
        const cJSON *dv = dim ? cJSON_GetObjectItem(j, dim) : NULL;
        bool match = dim ? (cJSON_IsString(dv) && strcmp(dv->valuestring, val) == 0)
                         : cJSON_GetObjectItem(j, "api") == NULL &&
                               cJSON_GetObjectItem(j, "listener") == NULL;
        const cJSON *m = cJSON_GetObjectItem(j, name);
        if (match && m) {
            double r = cJSON_IsNumber(m) ? m->valuedouble : 0;
            if (hist) *hist = cJSON_Duplicate(m, 1);
            cJSON_Delete(j);
            return r;
        }
        cJSON_Delete(j);
    }
    return -1;
}

static void test_counter_and_histogram_deltas(void)
{
    bs_metrics_shutdown();
    small_registry();
    bs_emf *e = new_emf(0, false);
    docs d = {0};
    CHECK_EQ(bs_emf_snapshot(e, 1, collect_doc, &d, NULL), BS_OK);
    CHECK_EQ(find_value(&d, "api", "Produce", "brokerside_requests_total", NULL), 12);
    docs_free(&d);
    /* Second snapshot: +3 requests, one new observation, gauge unchanged. */
    bs_metric_add(bs_metrics_counter_kv("brokerside_requests_total", "Requests.", "api", "Produce",
                                        "listener", "clients", NULL),
                  3);
    static const double bounds[] = {0.25, 1.0, 4.0};
    bs_histogram_observe(bs_metrics_histogram_kv("brokerside_request_latency_seconds", "Latency.",
                                                 bounds, 3, "api", "Produce", "listener", "clients",
                                                 NULL),
                         2.0);
    CHECK_EQ(bs_emf_snapshot(e, 2, collect_doc, &d, NULL), BS_OK);
    CHECK_EQ(find_value(&d, "api", "Produce", "brokerside_requests_total", NULL), 3);
    CHECK_EQ(find_value(&d, NULL, NULL, "brokerside_connections_open", NULL), 3);
    cJSON *h = NULL;
    find_value(&d, "api", "Produce", "brokerside_request_latency_seconds", &h);
    CHECK(h != NULL);
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(h, "Values")), 1);
    CHECK_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(h, "Values"), 0)->valuedouble, 4.0);
    CHECK_EQ(cJSON_GetObjectItem(h, "Count")->valuedouble, 1);
    CHECK_EQ(cJSON_GetObjectItem(h, "Sum")->valuedouble, 2.0);
    cJSON_Delete(h);
    CHECK_EQ(find_value(&d, "listener", "a\"b\nc", "brokerside_received_bytes_total", NULL), 0);
    docs_free(&d);
    /* Third: nothing new: counters 0, the histogram is left out. */
    CHECK_EQ(bs_emf_snapshot(e, 3, collect_doc, &d, NULL), BS_OK);
    CHECK_EQ(find_value(&d, "api", "Produce", "brokerside_requests_total", NULL), 0);
    CHECK_EQ(find_value(&d, "api", "Produce", "brokerside_request_latency_seconds", NULL), -1);
    docs_free(&d);
    /* Emit failure: baselines stay, so the next snapshot reports the delta again. */
    bs_metric_add(bs_metrics_counter_kv("brokerside_requests_total", "Requests.", "api", "Produce",
                                        "listener", "clients", NULL),
                  5);
    d.fail = true;
    CHECK_EQ(bs_emf_snapshot(e, 4, collect_doc, &d, NULL), BS_E_IO);
    d.fail = false;
    CHECK_EQ(bs_emf_snapshot(e, 5, collect_doc, &d, NULL), BS_OK);
    CHECK_EQ(find_value(&d, "api", "Produce", "brokerside_requests_total", NULL), 5);
    docs_free(&d);
    /* A reset registry: the counter restarts below its baseline -> its new value. */
    bs_metrics_shutdown();
    bs_metric_add(bs_metrics_counter_kv("brokerside_requests_total", "Requests.", "api", "Produce",
                                        "listener", "clients", NULL),
                  2);
    CHECK_EQ(bs_emf_snapshot(e, 6, collect_doc, &d, NULL), BS_OK);
    CHECK_EQ(find_value(&d, "api", "Produce", "brokerside_requests_total", NULL), 2);
    docs_free(&d);
    bs_emf_free(e);
    bs_metrics_shutdown();
}

static void test_metrics_per_document_limit(void)
{
    bs_metrics_shutdown();
    for (int i = 0; i < 250; i++) {
        char name[64];
        snprintf(name, sizeof name, "brokerside_c%03d_total", i);
        bs_metric_add(bs_metrics_counter(name, "c", "g=\"x\""), i);
    }
    bs_emf *e = new_emf(0, false);
    docs d = {0};
    bs_emf_stats st;
    CHECK_EQ(bs_emf_snapshot(e, 1, collect_doc, &d, &st), BS_OK);
    CHECK_EQ(d.n, 3);
    CHECK_EQ(st.metrics, 250);
    size_t want[] = {100, 100, 50};
    for (size_t i = 0; i < d.n && i < 3; i++) {
        cJSON *j = cJSON_Parse(d.v[i]);
        const cJSON *dir = cJSON_GetArrayItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "_aws"), "CloudWatchMetrics"), 0);
        CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(dir, "Metrics")), want[i]);
        CHECK_STR(cJSON_GetObjectItem(j, "g")->valuestring, "x");
        cJSON_Delete(j);
    }
    docs_free(&d);
    bs_emf_free(e);
    /* A smaller configured limit splits further. */
    e = new_emf(7, false);
    CHECK_EQ(bs_emf_snapshot(e, 1, collect_doc, &d, &st), BS_OK);
    CHECK_EQ(d.n, 36); /* ceil(250 / 7) */
    docs_free(&d);
    bs_emf_free(e);
    bs_metrics_shutdown();
}

/* Build a label set of n pairs l0="v",l1="v",... */
static void many_labels(char *out, size_t outlen, int n)
{
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        char p[32];
        snprintf(p, sizeof p, "%sl%02d=\"v\"", i ? "," : "", i);
        strncat(out, p, outlen - strlen(out) - 1);
    }
}

static void test_dimension_limit_and_conflicts(void)
{
    bs_metrics_shutdown();
    char labels[2048];
    many_labels(labels, sizeof labels, 31);
    bs_metric_add(bs_metrics_counter("brokerside_a_total", "a", labels), 1);
    many_labels(labels, sizeof labels, 30);
    bs_metric_add(bs_metrics_counter("brokerside_b_total", "b", labels), 1);
    many_labels(labels, sizeof labels, 29);
    bs_metric_add(bs_metrics_counter("brokerside_c_total", "c", labels), 1);
    bs_metric_add(bs_metrics_counter("brokerside_d", "d", "brokerside_d=\"x\""), 1);
    bs_metric_add(bs_metrics_counter("brokerside_e", "e", "_aws=\"x\""), 1);
    bs_metric_add(bs_metrics_counter("brokerside_f", "f", "BrokerId=\"9\""), 1);
    bs_metric_add(bs_metrics_counter_kv("brokerside_g_total", "g", "topic", "bad\xff\xc3(", NULL),
                  4);
    bs_emf *e = new_emf(0, true); /* + BrokerId: 30 labels become 31 dimensions */
    docs d = {0};
    bs_emf_stats st;
    CHECK_EQ(bs_emf_snapshot(e, 1, collect_doc, &d, &st), BS_OK);
    CHECK_EQ(st.skipped_dimensions, 2);
    CHECK_EQ(st.skipped_conflicts, 3);
    CHECK_EQ(d.n, 2);
    /* Invalid UTF-8 in a label value is replaced, not passed through. */
    CHECK(find_value(&d, "topic", "bad\xef\xbf\xbd\xef\xbf\xbd(", "brokerside_g_total", NULL) == 4);
    if (d.n == 2) {
        cJSON *j = cJSON_Parse(d.v[0]);
        const cJSON *dir = cJSON_GetArrayItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "_aws"), "CloudWatchMetrics"), 0);
        CHECK_EQ(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(dir, "Dimensions"), 0)),
                 30);
        CHECK(cJSON_GetObjectItem(j, "brokerside_c_total") != NULL);
        cJSON_Delete(j);
    }
    docs_free(&d);
    bs_emf_free(e);
    bs_metrics_shutdown();
}

static void test_nonfinite_never_written(void)
{
    bs_metrics_shutdown();
    static const double bounds[] = {1.0};
    bs_histogram *h = bs_metrics_histogram("brokerside_x_seconds", "x", NULL, bounds, 1);
    bs_histogram_observe(h, INFINITY); /* the sum becomes +Inf */
    bs_histogram *ok = bs_metrics_histogram("brokerside_y_seconds", "y", NULL, bounds, 1);
    bs_histogram_observe(ok, 0.5);
    bs_emf *e = new_emf(0, false);
    docs d = {0};
    bs_emf_stats st;
    CHECK_EQ(bs_emf_snapshot(e, 1, collect_doc, &d, &st), BS_OK);
    CHECK_EQ(st.skipped_nonfinite, 1);
    CHECK_EQ(st.metrics, 1);
    for (size_t i = 0; i < d.n; i++) {
        CHECK(strstr(d.v[i], "inf") == NULL && strstr(d.v[i], "nan") == NULL);
        CHECK(strstr(d.v[i], "brokerside_x_seconds") == NULL);
        cJSON *j = cJSON_Parse(d.v[i]);
        CHECK(j != NULL);
        cJSON_Delete(j);
    }
    docs_free(&d);
    bs_emf_free(e);
    bs_metrics_shutdown();
}

static void test_options_validation(void)
{
    bs_emf_options o;
    bs_emf *e = NULL;
    bs_emf_options_default(&o);
    o.max_metrics = 0;
    CHECK_EQ(bs_emf_new(&o, &e), BS_E_CONFIG);
    o.max_metrics = 101;
    CHECK_EQ(bs_emf_new(&o, &e), BS_E_CONFIG);
    bs_emf_options_default(&o);
    o.namespace_name = "";
    CHECK_EQ(bs_emf_new(&o, &e), BS_E_CONFIG);
    bs_emf_options_default(&o);
    bs_emf_dimension dup[] = {{"A", "1"}, {"A", "2"}};
    o.fixed = dup;
    o.n_fixed = 2;
    CHECK_EQ(bs_emf_new(&o, &e), BS_E_CONFIG);
    bs_emf_dimension bad[] = {{"bad name", "1"}};
    o.fixed = bad;
    o.n_fixed = 1;
    CHECK_EQ(bs_emf_new(&o, &e), BS_E_CONFIG);
    bs_emf_dimension aws[] = {{"_aws", "1"}};
    o.fixed = aws;
    CHECK_EQ(bs_emf_new(&o, &e), BS_E_CONFIG);
    CHECK(e == NULL);
    /* An empty registry gives no documents. */
    bs_metrics_shutdown();
    e = new_emf(0, false);
    docs d = {0};
    CHECK_EQ(bs_emf_snapshot(e, 1, collect_doc, &d, NULL), BS_OK);
    CHECK_EQ(d.n, 0);
    bs_emf_free(e);
}

typedef struct visit {
    char seen[8][96];
    int n, stop_after;
} visit;

/* foreach visitor: record "name{labels}kind", check the histogram sample, stop after stop_after. */
static int visit_fn(const bs_metric_sample *s, void *arg)
{
    visit *v = arg;
    if (v->n < 8) snprintf(v->seen[v->n], 96, "%s{%s}%d", s->name, s->labels, (int)s->kind);
    v->n++;
    if (s->kind == BS_METRIC_HISTOGRAM) {
        CHECK_EQ(s->n_bounds, 2);
        CHECK_EQ(s->count, 3);
        CHECK_EQ(s->buckets[0], 1);
        CHECK_EQ(s->buckets[2], 2);
        CHECK(s->sum == 0.5 + 100 + 200);
    }
    return v->stop_after && v->n >= v->stop_after;
}

static void test_metrics_foreach(void)
{
    bs_metrics_shutdown();
    static const double b[] = {1, 2};
    bs_metric_add(bs_metrics_counter("brokerside_z_total", "z", "k=\"2\""), 1);
    bs_metric_add(bs_metrics_counter("brokerside_z_total", "z", "k=\"1\""), 1);
    bs_metric_set(bs_metrics_gauge("brokerside_a", "a", NULL), 5);
    bs_histogram *h = bs_metrics_histogram("brokerside_m_seconds", "m", NULL, b, 2);
    bs_histogram_observe(h, 0.5);
    bs_histogram_observe(h, 100);
    bs_histogram_observe(h, 200);
    visit v = {0};
    CHECK_EQ(bs_metrics_foreach(visit_fn, &v), BS_OK);
    CHECK_EQ(v.n, 4);
    CHECK_STR(v.seen[0], "brokerside_a{}1");
    CHECK_STR(v.seen[1], "brokerside_m_seconds{}2");
    CHECK_STR(v.seen[2], "brokerside_z_total{k=\"1\"}0");
    CHECK_STR(v.seen[3], "brokerside_z_total{k=\"2\"}0");
    visit s = {.stop_after = 2};
    CHECK_EQ(bs_metrics_foreach(visit_fn, &s), BS_E_STATE);
    CHECK_EQ(s.n, 2);
    bs_metrics_shutdown();
}

/* Run every test. */
int main(void)
{
    RUN(test_golden_documents);
    RUN(test_counter_and_histogram_deltas);
    RUN(test_metrics_per_document_limit);
    RUN(test_dimension_limit_and_conflicts);
    RUN(test_nonfinite_never_written);
    RUN(test_options_validation);
    RUN(test_metrics_foreach);
    return test_report();
}
