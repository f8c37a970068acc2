/* Unit tests for the AWS sinks' helpers and option validation (src/sinks/aws_sink_common.c and
 * the constructors). Delivery itself is tested end to end against moto and a fault-injecting
 * server in tests/integration/test_aws_sinks.py. */
#include <ev.h>
#include <string.h>

#include "../../src/sinks/aws_sink_internal.h"
#include "brokerside/text.h"
#include "brokerside/aws_sinks.h"
#include "brokerside/buf.h"
#include "test.h"

static void test_expand_templates(void)
{
    char out[256];
    CHECK_EQ(bs_aws_sink_expand("/kafka/{broker_id}/{hostname}-{stream}", "h1", "7",
                                BS_STREAM_AUDIT, 0, out, sizeof out),
             BS_OK);
    CHECK_STR(out, "/kafka/7/h1-audit");
    /* without a time strftime fields stay as they are (log group names may contain '%') */
    CHECK_EQ(bs_aws_sink_expand("a%Yb", "h", "0", BS_STREAM_LOGS, 0, out, sizeof out), BS_OK);
    CHECK_STR(out, "a%Yb");
    /* 2024-01-02T03:04:05Z */
    CHECK_EQ(bs_aws_sink_expand("p/{stream}/%Y/%m/%d/%H-{hostname}-", "hx", "0", BS_STREAM_METRICS,
                                1704164645, out, sizeof out),
             BS_OK);
    CHECK_STR(out, "p/metrics/2024/01/02/03-hx-");
    /* negative: unknown field, unterminated brace, too small */
    CHECK_EQ(bs_aws_sink_expand("{nope}", "h", "0", BS_STREAM_LOGS, 0, out, sizeof out),
             BS_E_MALFORMED);
    CHECK_EQ(bs_aws_sink_expand("x{hostname", "h", "0", BS_STREAM_LOGS, 0, out, sizeof out),
             BS_E_MALFORMED);
    CHECK_EQ(bs_aws_sink_expand("{hostname}", "hosthost", "0", BS_STREAM_LOGS, 0, out, 4),
             BS_E_TOO_LARGE);
    CHECK_EQ(bs_aws_sink_expand("%Y%Y%Y", "h", "0", BS_STREAM_LOGS, 1704164645, out, 5),
             BS_E_TOO_LARGE);
}

static bs_status etime(const char *s, int64_t *ms)
{
    return bs_aws_sink_event_time_ms((const uint8_t *)s, strlen(s), ms);
}

static void test_event_time(void)
{
    int64_t ms = 0;
    CHECK_EQ(etime("{\"timestamp\":1700000000123}", &ms), BS_OK);
    CHECK(ms == 1700000000123LL);
    CHECK_EQ(etime("{\"timestamp\":1700000000.5}", &ms), BS_OK); /* seconds */
    CHECK(ms == 1700000000500LL);
    CHECK_EQ(etime("{\"eventTime\":\"2024-01-02T03:04:05.678Z\"}", &ms), BS_OK);
    CHECK(ms == 1704164645678LL);
    CHECK_EQ(etime("{\"time\":\"2024-01-02T05:04:05+02:00\"}", &ms), BS_OK);
    CHECK(ms == 1704164645000LL);
    CHECK_EQ(etime("{\"_aws\":{\"Timestamp\":1704164645000}}", &ms), BS_OK);
    CHECK(ms == 1704164645000LL);
    /* the first field in priority order wins */
    CHECK_EQ(etime("{\"eventTime\":\"2024-01-02T03:04:05Z\",\"timestamp\":1000000000}", &ms),
             BS_OK);
    CHECK(ms == 1000000000000LL);
    /* negative: no time, not JSON, zone-less time, nonsense date, negative number */
    CHECK_EQ(etime("{\"x\":1}", &ms), BS_E_NOT_FOUND);
    CHECK_EQ(etime("plain text line", &ms), BS_E_NOT_FOUND);
    CHECK_EQ(etime("{\"timestamp\":", &ms), BS_E_NOT_FOUND);
    CHECK_EQ(etime("{\"eventTime\":\"2024-01-02T03:04:05\"}", &ms), BS_E_NOT_FOUND);
    CHECK_EQ(etime("{\"eventTime\":\"2024-13-02T03:04:05Z\"}", &ms), BS_E_NOT_FOUND);
    CHECK_EQ(etime("{\"timestamp\":-5}", &ms), BS_E_NOT_FOUND);
}

static void test_utf8_and_base64(void)
{
    CHECK(bs_utf8_valid((const uint8_t *)"ascii", 5));
    CHECK(bs_utf8_valid((const uint8_t *)"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    CHECK(!bs_utf8_valid((const uint8_t *)"\xc3", 1));             /* truncated */
    CHECK(!bs_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
    CHECK(!bs_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!bs_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!bs_utf8_valid((const uint8_t *)"a\xffz", 3));
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        bs_wbuf w;
        bs_wbuf_init(&w, 0);
        bs_aws_sink_put_base64(&w, (const uint8_t *)in[i], strlen(in[i]));
        bs_wbuf_put_u8(&w, 0);
        CHECK_EQ(bs_wbuf_status(&w), BS_OK);
        CHECK_STR((const char *)w.data, want[i]);
        bs_wbuf_free(&w);
    }
}

static void test_options_validated(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_config cc = {
        .access_key_id = "AKID", .secret_access_key = "s", .disable_imds = true};
    bs_aws_credentials_provider *creds = NULL;
    CHECK_EQ(bs_aws_credentials_provider_new(&cc, &creds), BS_OK);
    bs_aws_sink_common c = {.loop = loop, .creds = creds, .sink_name = "t", .region = "eu-west-1"};
    const bs_sink_ops *ops = NULL;
    void *impl = NULL;

    bs_firehose_sink_options fo = {.c = c, .delivery_stream = "fh-{stream}"};
    CHECK_EQ(bs_firehose_sink_new(&fo, &ops, &impl), BS_OK);
    CHECK_STR(ops->type, "firehose");
    ops->destroy(impl);
    fo.delivery_stream = NULL;
    CHECK_EQ(bs_firehose_sink_new(&fo, &ops, &impl), BS_E_CONFIG);
    fo.delivery_stream = "{bad}";
    CHECK_EQ(bs_firehose_sink_new(&fo, &ops, &impl), BS_E_CONFIG);
    fo.delivery_stream = "x";
    fo.c.region = NULL;
    CHECK_EQ(bs_firehose_sink_new(&fo, &ops, &impl), BS_E_CONFIG);
    fo.c = c;
    fo.c.creds = NULL;
    CHECK_EQ(bs_firehose_sink_new(&fo, &ops, &impl), BS_E_CONFIG);

    bs_cwlogs_sink_options lo = {.c = c, .log_group = "/g/{broker_id}", .log_stream = "{hostname}"};
    CHECK_EQ(bs_cwlogs_sink_new(&lo, &ops, &impl), BS_OK);
    CHECK_STR(ops->type, "cloudwatch_logs");
    ops->destroy(impl);
    lo.log_stream = "a:b"; /* ':' is not allowed in stream names */
    CHECK_EQ(bs_cwlogs_sink_new(&lo, &ops, &impl), BS_E_CONFIG);
    lo.log_stream = ""; /* empty name */
    CHECK_EQ(bs_cwlogs_sink_new(&lo, &ops, &impl), BS_E_CONFIG);
    lo.log_stream = NULL; /* default "{hostname}-{stream}" */
    CHECK_EQ(bs_cwlogs_sink_new(&lo, &ops, &impl), BS_OK);
    ops->destroy(impl);
    lo.log_group = NULL;
    CHECK_EQ(bs_cwlogs_sink_new(&lo, &ops, &impl), BS_E_CONFIG);

    bs_cwmetrics_sink_options mo = {.c = c, .query_protocol = true};
    CHECK_EQ(bs_cwmetrics_sink_new(&mo, &ops, &impl), BS_OK);
    CHECK_STR(ops->type, "cloudwatch_metrics");
    ops->destroy(impl);
    mo.c.sink_name = NULL;
    CHECK_EQ(bs_cwmetrics_sink_new(&mo, &ops, &impl), BS_E_CONFIG);

    bs_s3_sink_options so = {.c = c, .bucket = "my-bucket"};
    CHECK_EQ(bs_s3_sink_new(&so, &ops, &impl), BS_OK);
    CHECK_STR(ops->type, "s3");
    ops->destroy(impl);
    so.bucket = "Bad_Bucket";
    CHECK_EQ(bs_s3_sink_new(&so, &ops, &impl), BS_E_CONFIG);
    so.bucket = "ok-bucket";
    so.part_bytes = 1024 * 1024; /* below S3's 5 MiB minimum part */
    CHECK_EQ(bs_s3_sink_new(&so, &ops, &impl), BS_E_CONFIG);
    so.part_bytes = 0;
    so.key_prefix = "{stream}/{oops}/";
    CHECK_EQ(bs_s3_sink_new(&so, &ops, &impl), BS_E_CONFIG);

    bs_sink_limits l;
    bs_cwlogs_sink_limits(&l);
    CHECK_EQ(l.max_events, 10000);
    CHECK_EQ(l.max_bytes, 1048576);
    CHECK_EQ(l.event_overhead, 26);
    bs_firehose_sink_limits(&l);
    CHECK_EQ(l.max_events, 500);
    CHECK_EQ(l.max_bytes, 4u * 1024 * 1024);
    CHECK_EQ(l.max_event_bytes + l.event_overhead, 1000u * 1024);
    bs_aws_credentials_provider_free(creds);
    ev_loop_destroy(loop);
}

int main(void)
{
    RUN(test_expand_templates);
    RUN(test_event_time);
    RUN(test_utf8_and_base64);
    RUN(test_options_validated);
    return test_report();
}
