/* Unit tests for src/core/metrics.c: exposition text, JSON, histogram
 * bucket math, label escaping, type clashes, NULL-safety and concurrency. */
#include <math.h>
#include <pthread.h>

#include "brokerside/metrics.h"
#include "test.h"

/* Render the registry into a NUL-terminated heap string (caller frees). */
static char *render_prom(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_status st = bs_metrics_render_prometheus(&w);
    CHECK_EQ(st, BS_OK);
    bs_wbuf_put_u8(&w, 0);
    return (char *)w.data; /* ownership moves to the caller */
}

static char *render_json(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_status st = bs_metrics_render_json(&w);
    CHECK_EQ(st, BS_OK);
    bs_wbuf_put_u8(&w, 0);
    return (char *)w.data;
}

static void test_empty_registry(void)
{
    char *s = render_prom();
    CHECK_STR(s, "");
    free(s);
    s = render_json();
    CHECK_STR(s, "{}");
    free(s);
}

static void test_exact_exposition(void)
{
    /* Registered out of order on purpose: output must be sorted. */
    bs_metric *g =
        bs_metrics_gauge("brokerside_connections", "Open client connections.", "listener=\"b\"");
    bs_metric *ga =
        bs_metrics_gauge("brokerside_connections", "ignored second help", "listener=\"a\"");
    bs_metric *c = bs_metrics_counter("brokerside_bytes_total", "Bytes relayed.\nTwo\\lines", NULL);
    const double b[] = {0.1, 0.5, 2};
    bs_histogram *h =
        bs_metrics_histogram("brokerside_latency_seconds", "Latency.", "api=\"Produce\"", b, 3);
    CHECK(g && ga && c && h);
    bs_metric_set(g, 7);
    bs_metric_add(ga, 3);
    bs_metric_add(ga, -1);
    bs_metric_add(c, 1234567890123LL);
    bs_histogram_observe(h, 0.1); /* boundary value goes into le=0.1 */
    bs_histogram_observe(h, 0.05);
    bs_histogram_observe(h, 1.0);
    bs_histogram_observe(h, 100); /* only in +Inf */
    bs_histogram_observe(h, NAN); /* ignored */
    char *s = render_prom();
    CHECK_STR(s, "# HELP brokerside_bytes_total Bytes relayed.\\nTwo\\\\lines\n"
                 "# TYPE brokerside_bytes_total counter\n"
                 "brokerside_bytes_total 1234567890123\n"
                 "# HELP brokerside_connections Open client connections.\n"
                 "# TYPE brokerside_connections gauge\n"
                 "brokerside_connections{listener=\"a\"} 2\n"
                 "brokerside_connections{listener=\"b\"} 7\n"
                 "# HELP brokerside_latency_seconds Latency.\n"
                 "# TYPE brokerside_latency_seconds histogram\n"
                 "brokerside_latency_seconds_bucket{api=\"Produce\",le=\"0.1\"} 2\n"
                 "brokerside_latency_seconds_bucket{api=\"Produce\",le=\"0.5\"} 2\n"
                 "brokerside_latency_seconds_bucket{api=\"Produce\",le=\"2\"} 3\n"
                 "brokerside_latency_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 4\n"
                 "brokerside_latency_seconds_sum{api=\"Produce\"} 101.15\n"
                 "brokerside_latency_seconds_count{api=\"Produce\"} 4\n");
    free(s);
    s = render_json();
    CHECK_STR(s,
              "{\"brokerside_bytes_total\":1234567890123,"
              "\"brokerside_connections{listener=\\\"a\\\"}\":2,"
              "\"brokerside_connections{listener=\\\"b\\\"}\":7,"
              "\"brokerside_latency_seconds{api=\\\"Produce\\\"}\":{\"count\":4,\"sum\":101.15}}");
    free(s);
    CHECK_EQ(bs_histogram_count(h), 4);
    bs_metrics_shutdown();
}

static void test_get_or_create_returns_same_pointer(void)
{
    bs_metric *a = bs_metrics_counter("brokerside_x_total", "x", "k=\"v\"");
    bs_metric *b = bs_metrics_counter("brokerside_x_total", "x", "k=\"v\"");
    bs_metric *c = bs_metrics_counter("brokerside_x_total", "x", "k=\"w\"");
    CHECK(a && a == b);
    CHECK(c && c != a);
    bs_metric *n1 = bs_metrics_counter("brokerside_y_total", "y", NULL);
    bs_metric *n2 = bs_metrics_counter("brokerside_y_total", "y", "");
    CHECK(n1 && n1 == n2);
    /* Many registrations grow the arrays: earlier pointers must stay valid. */
    for (int i = 0; i < 200; i++) {
        char name[64];
        snprintf(name, sizeof name, "brokerside_grow_%03d_total", i);
        bs_metric *m = bs_metrics_counter(name, "g", "k=\"v\"");
        CHECK(m != NULL);
        bs_metric_add(m, i);
    }
    bs_metric_add(a, 5);
    CHECK_EQ(bs_metric_value(bs_metrics_counter("brokerside_x_total", "x", "k=\"v\"")), 5);
    CHECK_EQ(bs_metric_value(bs_metrics_counter("brokerside_grow_150_total", "g", "k=\"v\"")), 150);
    bs_metrics_shutdown();
}

/* Every get-or-create counts as a lookup (the registry mutex); updates do not. */
static void test_lookups_counted(void)
{
    uint64_t before = bs_metrics_lookups();
    bs_metric *m = bs_metrics_counter("lookups_probe_total", "probe", NULL);
    CHECK_EQ(bs_metrics_lookups(), before + 1);
    bs_metric_add(m, 5);
    CHECK_EQ(bs_metrics_lookups(), before + 1);
    CHECK(bs_metrics_counter_kv("lookups_probe_total", "probe", NULL) == m);
    CHECK(bs_metrics_counter("bad name", "probe", NULL) == NULL); /* refused before the lock */
    CHECK_EQ(bs_metrics_lookups(), before + 2);
}

static void test_type_clash_and_invalid(void)
{
    const double b1[] = {1, 2}, b2[] = {1, 3}, bad[] = {2, 1}, inf[] = {1, INFINITY};
    CHECK(bs_metrics_counter("brokerside_clash", "c", NULL) != NULL);
    CHECK(bs_metrics_gauge("brokerside_clash", "c", NULL) == NULL);
    CHECK(bs_metrics_gauge("brokerside_clash", "c", "other=\"label\"") == NULL);
    CHECK(bs_metrics_histogram("brokerside_clash", "c", NULL, b1, 2) == NULL);
    CHECK(bs_metrics_histogram("brokerside_h", "h", NULL, b1, 2) != NULL);
    CHECK(bs_metrics_histogram("brokerside_h", "h", "a=\"1\"", b2, 2) == NULL); /* other bounds */
    CHECK(bs_metrics_histogram("brokerside_h", "h", "a=\"1\"", b1, 1) == NULL);
    CHECK(bs_metrics_histogram("brokerside_h", "h", "a=\"1\"", b1, 2) != NULL);
    CHECK(bs_metrics_histogram("brokerside_h2", "h", NULL, bad, 2) == NULL);
    CHECK(bs_metrics_histogram("brokerside_h2", "h", NULL, inf, 2) == NULL);
    CHECK(bs_metrics_histogram("brokerside_h2", "h", NULL, NULL, 0) == NULL);
    CHECK(bs_metrics_counter("9starts_with_digit", "x", NULL) == NULL);
    CHECK(bs_metrics_counter("has-dash", "x", NULL) == NULL);
    CHECK(bs_metrics_counter("", "x", NULL) == NULL);
    CHECK(bs_metrics_counter(NULL, "x", NULL) == NULL);
    CHECK(bs_metrics_counter("ns:ok_total", NULL, NULL) != NULL); /* colon allowed, help optional */
    /* Label sets that would corrupt the exposition are refused. */
    static const char *bad_labels[] = {
        "a",        "a=",        "a=\"x",      "a=\"x\"b=\"y\"", "a=\"x\",",  "=\"x\"",
        "1a=\"x\"", "a-b=\"x\"", "a=\"x\ny\"", "a=\"x\\q\"",     "a=\"x\\\"", " a=\"x\"",
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(bad_labels); i++) {
        if (bs_metrics_counter("brokerside_lbl_total", "l", bad_labels[i]) != NULL)
            fprintf(stderr, "  accepted bad labels [%zu] %s\n", i, bad_labels[i]);
        CHECK(bs_metrics_counter("brokerside_lbl_total", "l", bad_labels[i]) == NULL);
    }
    CHECK(bs_metrics_counter("brokerside_lbl_total", "l", "a=\"\",_b2=\"x\\\\\\\"\\n\"") != NULL);
    CHECK(bs_metrics_histogram("brokerside_h3", "h", "le=\"1\"", b1, 2) == NULL);
    CHECK(bs_metrics_counter("brokerside_le_total", "l", "le=\"1\"") != NULL); /* only histograms */
    /* Nothing about the rejected registrations leaks into the output. */
    char *s = render_prom();
    CHECK(strstr(s, "# TYPE brokerside_clash counter\nbrokerside_clash 0\n") != NULL);
    CHECK(strstr(s, "brokerside_h2") == NULL);
    CHECK(strstr(s, "brokerside_h3") == NULL);
    CHECK(strstr(s, "brokerside_lbl_total{a=\"\",_b2=\"x\\\\\\\"\\n\"} 0\n") != NULL);
    CHECK(strstr(s, "9starts") == NULL);
    CHECK(strstr(s, "# HELP ns:ok_total \n# TYPE ns:ok_total counter\nns:ok_total 0\n") != NULL);
    free(s);
    bs_metrics_shutdown();
}

static void test_null_safe_updates(void)
{
    bs_metric_add(NULL, 1);
    bs_metric_set(NULL, 1);
    bs_histogram_observe(NULL, 1.0);
    CHECK_EQ(bs_metric_value(NULL), 0);
    CHECK_EQ(bs_histogram_count(NULL), 0);
    CHECK(bs_histogram_sum(NULL) == 0.0);
    /* set on a counter is refused: counters only go up. */
    bs_metric *c = bs_metrics_counter("brokerside_c_total", "c", NULL);
    bs_metric_add(c, 3);
    bs_metric_set(c, 1);
    CHECK_EQ(bs_metric_value(c), 3);
    bs_metrics_shutdown();
}

static void test_histogram_buckets(void)
{
    size_t n = 0;
    const double *lb = bs_metrics_latency_bounds_s(&n);
    CHECK_EQ(n, 14);
    CHECK(lb[0] == 0.0005 && lb[n - 1] == 10.0);
    bs_histogram *h = bs_metrics_histogram("brokerside_t_seconds", "t", NULL, lb, n);
    CHECK(h != NULL);
    /* One observation exactly on each bound, one just above, one below all. */
    for (size_t i = 0; i < n; i++) {
        bs_histogram_observe(h, lb[i]);
        bs_histogram_observe(h, nextafter(lb[i], INFINITY));
    }
    bs_histogram_observe(h, -1);
    bs_histogram_observe(h, INFINITY);
    char *s = render_prom();
    /* le=0.0005: -1 and 0.0005 itself. le=0.001: + just-above-0.0005 + 0.001. */
    CHECK(strstr(s, "brokerside_t_seconds_bucket{le=\"0.0005\"} 2\n") != NULL);
    CHECK(strstr(s, "brokerside_t_seconds_bucket{le=\"0.001\"} 4\n") != NULL);
    CHECK(strstr(s, "brokerside_t_seconds_bucket{le=\"10\"} 28\n") != NULL);
    CHECK(strstr(s, "brokerside_t_seconds_bucket{le=\"+Inf\"} 30\n") != NULL);
    CHECK(strstr(s, "brokerside_t_seconds_sum{} ") == NULL); /* no empty braces */
    CHECK(strstr(s, "brokerside_t_seconds_sum +Inf\n") != NULL);
    CHECK(strstr(s, "brokerside_t_seconds_count 30\n") != NULL);
    free(s);
    s = render_json();
    CHECK_STR(s, "{\"brokerside_t_seconds\":{\"count\":30,\"sum\":null}}"); /* JSON has no Inf */
    free(s);
    bs_metrics_shutdown();
}

static void test_label_escape(void)
{
    static const double b1k[] = {1};
    char out[64];
    bs_metrics_label_escape("a\"b\\c\nd", out, sizeof out);
    CHECK_STR(out, "a\\\"b\\\\c\\nd");
    bs_metrics_label_escape(NULL, out, sizeof out);
    CHECK_STR(out, "");
    /* Truncation never splits an escape sequence and always terminates. */
    bs_metrics_label_escape("ab\"", out, 4);
    CHECK_STR(out, "ab");
    bs_metrics_label_escape("abc", out, 1);
    CHECK_STR(out, "");

    CHECK_EQ(bs_metrics_labels(out, sizeof out, "listener", "pl\"ain", "api", "Produce", NULL),
             BS_OK);
    CHECK_STR(out, "listener=\"pl\\\"ain\",api=\"Produce\"");
    CHECK_EQ(bs_metrics_labels(out, sizeof out, NULL), BS_OK);
    CHECK_STR(out, "");
    CHECK_EQ(bs_metrics_labels(out, sizeof out, "bad-name", "x", NULL), BS_E_MALFORMED);
    CHECK_STR(out, "");
    CHECK_EQ(bs_metrics_labels(out, sizeof out, "k", (const char *)NULL, NULL), BS_E_MALFORMED);
    CHECK_EQ(bs_metrics_labels(out, 12, "key", "valuevalue", NULL), BS_E_TOO_LARGE);
    CHECK_STR(out, "");

    bs_metric *m =
        bs_metrics_counter_kv("brokerside_req_total", "r", "listener", "a\\b", "code", "200", NULL);
    CHECK(m != NULL);
    CHECK(m == bs_metrics_counter("brokerside_req_total", "r", "listener=\"a\\\\b\",code=\"200\""));
    CHECK(bs_metrics_counter_kv("brokerside_req_total", "r", "0bad", "x", NULL) == NULL);
    bs_histogram *hk =
        bs_metrics_histogram_kv("brokerside_hk_seconds", "h", b1k, 1, "api", "Fetch", NULL);
    CHECK(hk != NULL &&
          hk == bs_metrics_histogram("brokerside_hk_seconds", "h", "api=\"Fetch\"", b1k, 1));
    CHECK(bs_metrics_histogram_kv("brokerside_hk_seconds", "h", b1k, 1, "le", "1", NULL) == NULL);
    bs_metric *g = bs_metrics_gauge_kv("brokerside_g", "g", "x", "\n", NULL);
    bs_metric_set(g, -5);
    char *s = render_prom();
    CHECK(strstr(s, "brokerside_g{x=\"\\n\"} -5\n") != NULL);
    CHECK(strstr(s, "brokerside_req_total{listener=\"a\\\\b\",code=\"200\"} 0\n") != NULL);
    free(s);
    bs_metrics_shutdown();
}

#define THREADS 6
#define ITERS 100000

static void *adder(void *arg)
{
    (void)arg;
    /* Each thread registers too, so get-or-create races with updates. */
    bs_metric *c = bs_metrics_counter("brokerside_race_total", "r", NULL);
    bs_metric *g = bs_metrics_gauge("brokerside_race_gauge", "r", NULL);
    const double b[] = {1, 2};
    bs_histogram *h = bs_metrics_histogram("brokerside_race_hist", "r", NULL, b, 2);
    for (int i = 0; i < ITERS; i++) {
        bs_metric_add(c, 1);
        bs_metric_add(g, (i & 1) ? 3 : -1);
        bs_histogram_observe(h, (double)(i % 3)); /* 0,1,2: sums of small ints stay exact */
    }
    return NULL;
}

static void test_concurrent_adds_are_exact(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, adder, NULL), 0);
    /* Scrape while they run: must not crash or deadlock. */
    for (int i = 0; i < 20; i++) {
        char *s = render_prom();
        free(s);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(bs_metric_value(bs_metrics_counter("brokerside_race_total", "r", NULL)),
             (long long)THREADS * ITERS);
    CHECK_EQ(bs_metric_value(bs_metrics_gauge("brokerside_race_gauge", "r", NULL)),
             (long long)THREADS * ITERS);
    const double b[] = {1, 2};
    bs_histogram *h = bs_metrics_histogram("brokerside_race_hist", "r", NULL, b, 2);
    CHECK_EQ(bs_histogram_count(h), (long long)THREADS * ITERS);
    /* Per thread: i%3 over 100000 values = 33333*(0+1+2) + 0 (i=99999 -> 0). */
    CHECK(bs_histogram_sum(h) == (double)THREADS * 99999.0);
    char *s = render_prom();
    char want[128];
    snprintf(want, sizeof want, "brokerside_race_hist_bucket{le=\"+Inf\"} %d\n", THREADS * ITERS);
    CHECK(strstr(s, want) != NULL);
    free(s);
    bs_metrics_shutdown();
}

int main(void)
{
    RUN(test_empty_registry);
    RUN(test_exact_exposition);
    RUN(test_get_or_create_returns_same_pointer);
    RUN(test_lookups_counted);
    RUN(test_type_clash_and_invalid);
    RUN(test_null_safe_updates);
    RUN(test_histogram_buckets);
    RUN(test_label_escape);
    RUN(test_concurrent_adds_are_exact);
    return test_report();
}
