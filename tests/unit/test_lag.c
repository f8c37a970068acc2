/* Unit tests for src/lag/lag_calc.c (the pure parts of the consumer-lag
 * monitor): the log-end offset history and EstimatedTimeLag against known
 * append times, history thinning and truncation, the label rules, the
 * snapshot builder (lags, MSK aggregates, caps), the Prometheus families by
 * metrics level (read back with escapes) and the EMF documents with MSK's
 * names; plus the metrics registry's levels and extension hook. The monitor
 * thread itself is tested against a real broker
 * (tests/integration/test_consumer_lag.py). */
#include <math.h>

#include <cjson/cJSON.h>

#include "brokerside/lag.h"
#include "brokerside/metrics.h"
#include "test.h"

#define EPS 1e-9

static void test_history_interpolation(void)
{
    bs_lag_history h = {0};
    /* no history: nothing known, 0 */
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 5, 100000)) < EPS);
    /* offsets 0 at t=10 s, 100 at t=20 s: 10 records per second appended in between */
    bs_lag_history_add(&h, 10000, 0);
    bs_lag_history_add(&h, 20000, 100);
    CHECK_EQ(h.n, 2);
    /* the record at offset 49 made the log end 50: appended at t=15 s; now 25 s -> 10 s */
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 49, 25000) - 10.0) < EPS);
    /* offset 99 (the last record) appended at 20 s */
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 99, 25000) - 5.0) < EPS);
    /* caught up (or past the end after a truncation): 0 */
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 100, 25000)) < EPS);
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 150, 25000)) < EPS);
    /* the consumer stays put: the estimate grows with the clock, by exactly the elapsed time */
    double a = bs_lag_history_time_lag_s(&h, 49, 30000), b = bs_lag_history_time_lag_s(&h, 49, 31500);
    CHECK(fabs((b - a) - 1.5) < EPS);
    /* an unchanged log-end offset adds no point (the time it was first seen stays) */
    bs_lag_history_add(&h, 40000, 100);
    CHECK_EQ(h.n, 2);
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 99, 45000) - 25.0) < EPS);
    /* a record older than the history: the oldest sample's age, a lower bound */
    bs_lag_history g = {0};
    bs_lag_history_add(&g, 50000, 1000);
    bs_lag_history_add(&g, 60000, 1010);
    CHECK(fabs(bs_lag_history_time_lag_s(&g, 3, 70000) - 20.0) < EPS);
    /* never negative (a clock behind the samples) */
    CHECK(fabs(bs_lag_history_time_lag_s(&g, 1005, 1000)) < EPS);
}

static void test_history_bounded_and_truncation(void)
{
    bs_lag_history h = {0};
    /* 1000 samples one second apart, 5 records each: at most BS_LAG_HISTORY_MAX points,
     * the first and the newest kept, offsets and times still ascending */
    for (int i = 0; i <= 1000; i++)
        bs_lag_history_add(&h, 1000000 + i * 1000, i * 5);
    CHECK_EQ(h.n, BS_LAG_HISTORY_MAX);
    CHECK_EQ(h.p[0].t_ms, 1000000);
    CHECK_EQ(h.p[h.n - 1].offset, 5000);
    for (size_t i = 1; i < h.n; i++) {
        CHECK(h.p[i].t_ms > h.p[i - 1].t_ms);
        CHECK(h.p[i].offset > h.p[i - 1].offset);
    }
    /* a steady rate is still estimated exactly: offset 2499 appended at t = 1000 + 500 s */
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 2499, 2000000) - 500.0) < 1e-6);
    /* and the newest record: appended one second before the last sample */
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 4994, 2000000) - 1.0) < 1e-6);
    /* the log end went backwards (topic re-created, truncation): the history restarts */
    bs_lag_history_add(&h, 3000000, 7);
    CHECK_EQ(h.n, 1);
    CHECK_EQ(h.p[0].offset, 7);
    CHECK(fabs(bs_lag_history_time_lag_s(&h, 2, 3004000) - 4.0) < EPS);
}

static void test_names(void)
{
    CHECK(bs_lag_name_usable("orders-consumer"));
    CHECK(bs_lag_name_usable("q\"u\\o'te {x}"));
    CHECK(bs_lag_name_usable(" a "));
    CHECK(!bs_lag_name_usable(""));
    CHECK(!bs_lag_name_usable("   "));
    CHECK(!bs_lag_name_usable(NULL));
    CHECK(!bs_lag_name_usable("gr\xc3\xbcppe"));
    CHECK(!bs_lag_name_usable("tab\there"));
    CHECK(!bs_lag_name_usable("nl\n"));
    char big[300];
    memset(big, 'x', sizeof big);
    big[255] = 0;
    CHECK(bs_lag_name_usable(big));
    big[255] = 'x';
    big[256] = 0;
    CHECK(!bs_lag_name_usable(big));
    CHECK_STR(bs_lag_skip_name(BS_LAG_SKIP_UNLABELABLE), "unlabelable");
    CHECK_STR(bs_lag_skip_name(BS_LAG_SKIP_STATE), "state");
    CHECK_STR(bs_lag_skip_name(BS_LAG_SKIP_CAP), "cap");
    CHECK_STR(bs_lag_skip_name(BS_LAG_SKIP_OFFSETS), "offsets_error");
    CHECK_STR(bs_lag_skip_name(BS_LAG_SKIP_N), "?");
}

/* A snapshot of two groups over two topics (rows added out of order). */
static bs_lag_snapshot *sample_snapshot(size_t cap)
{
    bs_lag_builder *b = NULL;
    bs_lag_snapshot *s = NULL;
    CHECK_EQ(bs_lag_builder_new(1764000000000, cap, &b), BS_OK);
    CHECK_EQ(bs_lag_builder_add(b, "gB", "orders", 1, 100, 40, 12.5), BS_OK);
    CHECK_EQ(bs_lag_builder_add(b, "gB", "orders", 0, 50, 47, 2.0), BS_OK);
    CHECK_EQ(bs_lag_builder_add(b, "gB", "audit", 0, 10, 10, 9.0), BS_OK); /* lag 0: time 0 */
    CHECK_EQ(bs_lag_builder_add(b, "gB", "orders", 2, 5, 9, 1.0), BS_OK);  /* truncated: 0 */
    CHECK_EQ(bs_lag_builder_add(b, "gA\"x", "orders", 0, 50, 20, 30.25), BS_OK);
    CHECK_EQ(bs_lag_builder_finish(b, &s), BS_OK);
    return s;
}

static void test_snapshot_rows_and_aggregates(void)
{
    bs_lag_snapshot *s = sample_snapshot(100);
    size_t nr, na;
    const bs_lag_row *r = bs_lag_snapshot_rows(s, &nr);
    const bs_lag_agg *a = bs_lag_snapshot_aggs(s, &na);
    CHECK_EQ(nr, 5);
    CHECK_EQ(na, 3);
    /* sorted by (group, topic, partition) */
    CHECK_STR(r[0].group, "gA\"x");
    CHECK_STR(r[1].topic, "audit");
    CHECK_EQ(r[1].lag, 0);
    CHECK(fabs(r[1].time_lag_s) < EPS);
    CHECK_EQ(r[2].partition, 0);
    CHECK_EQ(r[2].lag, 3);
    CHECK_EQ(r[3].partition, 1);
    CHECK_EQ(r[3].lag, 60);
    CHECK_EQ(r[4].partition, 2);
    CHECK_EQ(r[4].lag, 0);
    /* MSK aggregates per (group, topic) */
    CHECK_STR(a[0].group, "gA\"x");
    CHECK_EQ(a[0].sum, 30);
    CHECK_STR(a[1].topic, "audit");
    CHECK_EQ(a[1].sum, 0);
    CHECK_STR(a[2].topic, "orders");
    CHECK_EQ(a[2].sum, 63);
    CHECK_EQ(a[2].max, 60);
    CHECK(fabs(a[2].max_time_s - 12.5) < EPS);
    CHECK_EQ(bs_lag_snapshot_taken_ms(s), 1764000000000);
    bs_lag_snapshot_free(s);
    /* empty and NULL snapshots */
    CHECK(bs_lag_snapshot_rows(NULL, &nr) == NULL && nr == 0);
    bs_lag_snapshot_free(NULL);
}

static void test_caps_are_counted(void)
{
    bs_lag_builder *b = NULL;
    bs_lag_snapshot *s = NULL;
    CHECK_EQ(bs_lag_builder_new(1, 2, &b), BS_OK);
    CHECK_EQ(bs_lag_builder_add(b, "g", "t", 0, 10, 0, 1), BS_OK);
    CHECK_EQ(bs_lag_builder_add(b, "g", "t", 1, 10, 5, 1), BS_OK);
    /* third row of (g, t): not kept, still in the aggregate */
    CHECK_EQ(bs_lag_builder_add(b, "g", "t", 2, 10, 9, 1), BS_OK);
    CHECK_EQ(bs_lag_builder_add(b, "g", "u", 0, 10, 9, 1), BS_OK); /* second aggregate */
    CHECK_EQ(bs_lag_builder_add(b, "h", "t", 0, 10, 9, 1), BS_OK); /* third: dropped */
    CHECK_EQ(bs_lag_builder_dropped_rows(b), 3);
    CHECK_EQ(bs_lag_builder_dropped_aggs(b), 1);
    CHECK_EQ(bs_lag_builder_finish(b, &s), BS_OK);
    size_t nr, na;
    bs_lag_snapshot_rows(s, &nr);
    const bs_lag_agg *a = bs_lag_snapshot_aggs(s, &na);
    CHECK_EQ(nr, 2);
    CHECK_EQ(na, 2);
    CHECK_EQ(a[0].sum, 16);
    bs_lag_snapshot_free(s);
}

static void test_prometheus_by_level(void)
{
    bs_lag_snapshot *s = sample_snapshot(100);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_lag_snapshot_render_prometheus(s, BS_METRICS_LEVEL_DEFAULT, &w), BS_OK);
    bs_wbuf_put_u8(&w, 0);
    const char *t = (const char *)w.data;
    CHECK(strstr(t, "# TYPE brokerside_consumer_lag_sum_offsets gauge\n") != NULL);
    CHECK(strstr(t, "brokerside_consumer_lag_sum_offsets{group=\"gB\",topic=\"orders\"} 63\n"));
    CHECK(strstr(t, "brokerside_consumer_lag_max_offsets{group=\"gB\",topic=\"orders\"} 60\n"));
    CHECK(strstr(t, "brokerside_consumer_lag_estimated_max_time_seconds{group=\"gB\",topic=\"orders\"} 12.500\n"));
    /* label values are escaped */
    CHECK(strstr(t, "{group=\"gA\\\"x\",topic=\"orders\"} 30\n"));
    CHECK(strstr(t, "brokerside_consumer_lag_offsets") == NULL);
    CHECK(strstr(t, "estimated_time_seconds") == NULL);
    /* per_topic_per_broker: still no per-partition families */
    bs_wbuf_reset(&w);
    CHECK_EQ(bs_lag_snapshot_render_prometheus(s, BS_METRICS_LEVEL_PER_TOPIC_PER_BROKER, &w), BS_OK);
    bs_wbuf_put_u8(&w, 0);
    CHECK(strstr((const char *)w.data, "brokerside_consumer_lag_offsets{") == NULL);
    bs_wbuf_reset(&w);
    CHECK_EQ(bs_lag_snapshot_render_prometheus(s, BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION, &w), BS_OK);
    bs_wbuf_put_u8(&w, 0);
    t = (const char *)w.data;
    CHECK(strstr(t, "brokerside_consumer_lag_offsets{group=\"gB\",topic=\"orders\",partition=\"1\"} 60\n"));
    CHECK(strstr(t, "brokerside_consumer_lag_estimated_time_seconds{group=\"gA\\\"x\",topic=\"orders\",partition=\"0\"} 30.250\n"));
    /* one HELP and TYPE per family */
    size_t n_type = 0;
    for (const char *p = t; (p = strstr(p, "# TYPE ")); p++)
        n_type++;
    CHECK_EQ(n_type, 5);
    /* NULL snapshot: nothing */
    bs_wbuf_reset(&w);
    CHECK_EQ(bs_lag_snapshot_render_prometheus(NULL, BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION, &w), BS_OK);
    CHECK_EQ(w.len, 0);
    bs_wbuf_free(&w);
    bs_lag_snapshot_free(s);
}

typedef struct docs {
    cJSON *v[64];
    size_t n;
    int fail_at; /* fail the emit of this document number (1-based), 0 never */
} docs;

/* Emit callback: parse and keep each document. */
static bs_status keep_doc(const char *json, size_t len, void *arg)
{
    docs *d = arg;
    if (d->fail_at && (int)d->n + 1 == d->fail_at) return BS_E_FULL;
    if (d->n >= BS_ARRAY_LEN(d->v)) return BS_E_FULL;
    d->v[d->n++] = cJSON_ParseWithLength(json, len);
    return BS_OK;
}

static void docs_free(docs *d)
{
    for (size_t i = 0; i < d->n; i++)
        cJSON_Delete(d->v[i]);
    d->n = 0;
}

static void test_emf_msk_names(void)
{
    bs_lag_snapshot *s = sample_snapshot(100);
    bs_emf_dimension fixed = {.name = "BrokerId", .value = "3"};
    docs d = {0};
    CHECK_EQ(bs_lag_snapshot_emf(s, BS_METRICS_LEVEL_DEFAULT, "Kafka/Test", &fixed, 1, 42, keep_doc, &d),
             BS_OK);
    CHECK_EQ(d.n, 3); /* one per (group, topic) */
    const cJSON *doc = d.v[2];
    CHECK(doc != NULL);
    CHECK_STR(cJSON_GetObjectItem(doc, "Consumer Group")->valuestring, "gB");
    CHECK_STR(cJSON_GetObjectItem(doc, "Topic")->valuestring, "orders");
    CHECK_STR(cJSON_GetObjectItem(doc, "BrokerId")->valuestring, "3");
    CHECK_EQ(cJSON_GetObjectItem(doc, "SumOffsetLag")->valueint, 63);
    CHECK_EQ(cJSON_GetObjectItem(doc, "MaxOffsetLag")->valueint, 60);
    CHECK(fabs(cJSON_GetObjectItem(doc, "EstimatedMaxTimeLag")->valuedouble - 12.5) < EPS);
    const cJSON *aws = cJSON_GetObjectItem(doc, "_aws");
    CHECK_EQ(cJSON_GetObjectItem(aws, "Timestamp")->valueint, 42);
    const cJSON *dir = cJSON_GetArrayItem(cJSON_GetObjectItem(aws, "CloudWatchMetrics"), 0);
    CHECK_STR(cJSON_GetObjectItem(dir, "Namespace")->valuestring, "Kafka/Test");
    const cJSON *dims = cJSON_GetArrayItem(cJSON_GetObjectItem(dir, "Dimensions"), 0);
    CHECK_EQ(cJSON_GetArraySize(dims), 3);
    CHECK_STR(cJSON_GetArrayItem(dims, 0)->valuestring, "BrokerId");
    CHECK_STR(cJSON_GetArrayItem(dims, 1)->valuestring, "Consumer Group");
    CHECK_STR(cJSON_GetArrayItem(dims, 2)->valuestring, "Topic");
    const cJSON *mets = cJSON_GetObjectItem(dir, "Metrics");
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(mets, 2), "Name")->valuestring, "EstimatedMaxTimeLag");
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(mets, 2), "Unit")->valuestring, "Seconds");
    /* the quote in a group name stays JSON */
    CHECK_STR(cJSON_GetObjectItem(d.v[0], "Consumer Group")->valuestring, "gA\"x");
    docs_free(&d);
    /* finest level: + one document per partition row */
    CHECK_EQ(bs_lag_snapshot_emf(s, BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION, "Kafka/Test", NULL, 0,
                                 42, keep_doc, &d),
             BS_OK);
    CHECK_EQ(d.n, 3 + 5);
    doc = d.v[3 + 3]; /* gB orders partition 1 */
    CHECK_STR(cJSON_GetObjectItem(doc, "Partition")->valuestring, "1");
    CHECK_EQ(cJSON_GetObjectItem(doc, "OffsetLag")->valueint, 60);
    CHECK(fabs(cJSON_GetObjectItem(doc, "EstimatedTimeLag")->valuedouble - 12.5) < EPS);
    dims = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "_aws"),
                                                                   "CloudWatchMetrics"),
                                               0),
                            "Dimensions"),
        0);
    CHECK_EQ(cJSON_GetArraySize(dims), 3);
    CHECK_STR(cJSON_GetArrayItem(dims, 2)->valuestring, "Partition");
    docs_free(&d);
    /* a refused document stops the snapshot and is reported */
    d.fail_at = 2;
    CHECK_EQ(bs_lag_snapshot_emf(s, BS_METRICS_LEVEL_DEFAULT, "N", NULL, 0, 1, keep_doc, &d),
             BS_E_FULL);
    CHECK_EQ(d.n, 1);
    docs_free(&d);
    bs_lag_snapshot_free(s);
}

/* Extension renderer for the registry test. */
static bs_status ext_render(bs_wbuf *out, void *arg)
{
    bs_wbuf_printf(out, "# TYPE ext_family gauge\next_family %d\n", *(int *)arg);
    return bs_wbuf_status(out);
}

static void test_registry_levels_and_extension(void)
{
    CHECK_EQ(bs_metrics_labels_level(NULL), BS_METRICS_LEVEL_DEFAULT);
    CHECK_EQ(bs_metrics_labels_level("listener=\"a\",api=\"Produce\""), BS_METRICS_LEVEL_DEFAULT);
    CHECK_EQ(bs_metrics_labels_level("principal=\"User:x\""), BS_METRICS_LEVEL_PER_BROKER);
    CHECK_EQ(bs_metrics_labels_level("topic=\"t\""), BS_METRICS_LEVEL_PER_TOPIC_PER_BROKER);
    CHECK_EQ(bs_metrics_labels_level("topic=\"t\",partition=\"0\""),
             BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION);
    /* a value that looks like a label is not one */
    CHECK_EQ(bs_metrics_labels_level("listener=\"topic=\\\"x\\\"\""), BS_METRICS_LEVEL_DEFAULT);
    CHECK_EQ(bs_metrics_labels_level("mytopic=\"x\""), BS_METRICS_LEVEL_DEFAULT);

    bs_metric_add(bs_metrics_counter("lvl_requests_total", "h", "api=\"Produce\""), 1);
    bs_metric_add(bs_metrics_counter("lvl_principal_total", "h", "principal=\"p\""), 1);
    bs_metric_add(bs_metrics_counter("lvl_topic_total", "h", "topic=\"t\""), 1);
    bs_metric_add(bs_metrics_counter("lvl_topic_total", "h", NULL), 1);
    CHECK_EQ(bs_metrics_get_level(), BS_METRICS_LEVEL_PER_TOPIC_PER_BROKER); /* the start value */
    const char *want[4][4] = {
        {"lvl_requests_total{", NULL, NULL, "lvl_principal_total"},
        {"lvl_requests_total{", "lvl_principal_total{", NULL, "lvl_topic_total{topic"},
        {"lvl_requests_total{", "lvl_principal_total{", "lvl_topic_total{topic", NULL},
        {"lvl_requests_total{", "lvl_principal_total{", "lvl_topic_total{topic", NULL},
    };
    for (int lvl = 0; lvl < 4; lvl++) {
        bs_metrics_set_level((bs_metrics_level)lvl);
        bs_wbuf w;
        bs_wbuf_init(&w, 0);
        CHECK_EQ(bs_metrics_render_prometheus(&w), BS_OK);
        bs_wbuf_put_u8(&w, 0);
        const char *t = (const char *)w.data;
        for (int k = 0; k < 3; k++)
            if (want[lvl][k]) CHECK(strstr(t, want[lvl][k]) != NULL);
        if (want[lvl][3]) CHECK(strstr(t, want[lvl][3]) == NULL);
        /* the label-less series of a per-topic family shows at every level, with its header */
        CHECK(strstr(t, "# TYPE lvl_topic_total counter\nlvl_topic_total 1\n") != NULL);
        bs_wbuf_free(&w);
    }
    bs_metrics_set_level((bs_metrics_level)7); /* out of range: ignored */
    CHECK_EQ(bs_metrics_get_level(), BS_METRICS_LEVEL_PER_TOPIC_PER_PARTITION);
    bs_metrics_set_level(BS_METRICS_LEVEL_DEFAULT);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_metrics_render_json(&w), BS_OK);
    bs_wbuf_put_u8(&w, 0);
    CHECK(strstr((const char *)w.data, "principal") == NULL);
    bs_wbuf_free(&w);

    /* the extension renders after the registry, and is removed by NULL */
    int v = 7;
    bs_metrics_set_extension(ext_render, &v);
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_metrics_render_prometheus(&w), BS_OK);
    bs_wbuf_put_u8(&w, 0);
    const char *t = (const char *)w.data;
    CHECK(strstr(t, "ext_family 7\n") != NULL);
    CHECK(strstr(t, "ext_family") > strstr(t, "lvl_requests_total"));
    bs_wbuf_free(&w);
    bs_metrics_set_extension(NULL, NULL);
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_metrics_render_prometheus(&w), BS_OK);
    bs_wbuf_put_u8(&w, 0);
    CHECK(strstr((const char *)w.data, "ext_family") == NULL);
    bs_wbuf_free(&w);
    bs_metrics_shutdown();
    CHECK_EQ(bs_metrics_get_level(), BS_METRICS_LEVEL_PER_TOPIC_PER_BROKER);
}

static void test_split_hostport(void)
{
    char h[64];
    uint16_t port = 0;
    CHECK(bs_lag_split_hostport("kafka-1.internal:9093", h, sizeof h, &port));
    CHECK_STR(h, "kafka-1.internal");
    CHECK_EQ(port, 9093);
    CHECK(bs_lag_split_hostport("[::1]:65535", h, sizeof h, &port));
    CHECK_STR(h, "::1");
    CHECK_EQ(port, 65535);
    const char *bad[] = {"kafka", "kafka:", ":9092", "kafka:0", "kafka:65536", "kafka:9o92",
                         "::1:9092", "[]:9092", "[::1:9092", "kafka:123456", NULL};
    for (size_t i = 0; bad[i]; i++)
        CHECK(!bs_lag_split_hostport(bad[i], h, sizeof h, &port));
    CHECK(!bs_lag_split_hostport(NULL, h, sizeof h, &port));
    char tiny[4];
    CHECK(!bs_lag_split_hostport("longhost:1", tiny, sizeof tiny, &port));
}

static void test_monitor_refuses_bad_options(void)
{
    bs_lag_monitor *m = NULL;
    bs_lag_monitor_options o = {.interval_s = 1, .max_groups = 1, .max_partitions = 1, .timeout_s = 1};
    CHECK_EQ(bs_lag_monitor_start(&o, &m), BS_E_CONFIG); /* no listener */
    CHECK(m == NULL);
    CHECK_EQ(bs_lag_monitor_start(NULL, &m), BS_E_CONFIG);
    bs_listener_config li = {.name = "l", .broker_id = -1};
    li.upstream.text = "127.0.0.1:9092";
    o.listener = &li;
    o.bootstrap = "no-port";
    CHECK_EQ(bs_lag_monitor_start(&o, &m), BS_E_CONFIG);
    CHECK(m == NULL);
    bs_lag_monitor_stop(NULL);
    CHECK_EQ(bs_lag_emf(NULL, "N", NULL, 0, 1, keep_doc, NULL), BS_OK);
}

int main(void)
{
    RUN(test_history_interpolation);
    RUN(test_history_bounded_and_truncation);
    RUN(test_names);
    RUN(test_snapshot_rows_and_aggregates);
    RUN(test_caps_are_counted);
    RUN(test_prometheus_by_level);
    RUN(test_emf_msk_names);
    RUN(test_registry_levels_and_extension);
    RUN(test_split_hostport);
    RUN(test_monitor_refuses_bad_options);
    return test_report();
}
