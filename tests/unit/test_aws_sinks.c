/* Unit tests for the AWS sinks' helpers and option validation (src/sinks/aws_sink_common.c and
 * the constructors). Delivery itself is tested end to end against moto and a fault-injecting
 * server in tests/integration/test_aws_sinks.py. */
#include <cjson/cJSON.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Map `rec` for account 123456789012; the eventData parsed (caller deletes) or NULL. */
static cJSON *lake_map(const char *rec, bs_status want, char *id, char *why)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_status st = bs_ctlake_event_data((const uint8_t *)rec, strlen(rec), "123456789012", &w, id,
                                        129, why, 160);
    CHECK_EQ(st, want);
    cJSON *d = st == BS_OK ? cJSON_ParseWithLength((const char *)w.data, w.len) : NULL;
    bs_wbuf_free(&w);
    return d;
}

static const char *jstr(const cJSON *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_cloudtrail_lake_mapping(void)
{
    char id[129], why[160];
    /* a KafkaApiCall with an error: every schema field, the line kept verbatim */
    const char *rec =
        "{\"eventVersion\":\"1.0\",\"eventTime\":\"2026-11-24T21:30:00.123Z\","
        "\"eventSource\":\"kafka.brokerside\",\"eventName\":\"CreateTopics\","
        "\"eventType\":\"KafkaApiCall\",\"eventID\":\"019ab697-e800-7d5a-ad91-c10e82bb2351\","
        "\"eventCategory\":\"Management\",\"readOnly\":false,"
        "\"userIdentity\":{\"type\":\"mTLS\",\"principal\":\"CN=dev-client\"},"
        "\"sourceIPAddress\":\"10.0.3.7\",\"userAgent\":\"apache-kafka-java/3.7.0 (client.id=a)\","
        "\"requestParameters\":{\"resources\":[{\"type\":\"topic\",\"name\":\"orders\"}]},"
        "\"responseElements\":null,\"errorCode\":36,\"errorName\":\"TOPIC_ALREADY_EXISTS\","
        "\"latencyMs\":2.500,\"requestID\":\"42-1001\",\"chainId\":\"edf37f92e5a382ed17a8f7b77ea5fd58\","
        "\"sequence\":1,\"previousHash\":\"226fdfe445688ce0748905f5c91d736ee0623b63d7739d8b86d8d88461f6e62c\"}\n";
    cJSON *d = lake_map(rec, BS_OK, id, why);
    CHECK(d != NULL);
    CHECK_STR(id, "019ab697-e800-7d5a-ad91-c10e82bb2351");
    CHECK_STR(jstr(d, "version"), "1.0");
    CHECK_STR(jstr(d, "userIdentity.type"), "mTLS");
    CHECK_STR(jstr(d, "userIdentity.principalId"), "CN=dev-client");
    CHECK_STR(jstr(d, "userIdentity.details.principal"), "CN=dev-client");
    CHECK_STR(jstr(d, "userAgent"), "apache-kafka-java/3.7.0 (client.id=a)");
    CHECK_STR(jstr(d, "eventSource"), "kafka.brokerside");
    CHECK_STR(jstr(d, "eventName"), "CreateTopics");
    CHECK_STR(jstr(d, "eventTime"), "2026-11-24T21:30:00Z");
    CHECK_STR(jstr(d, "UID"), "42-1001");
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(d, "requestParameters")));
    CHECK(cJSON_GetObjectItemCaseSensitive(d, "responseElements") == NULL); /* null: left out */
    CHECK_STR(jstr(d, "errorCode"), "TOPIC_ALREADY_EXISTS");
    CHECK_STR(jstr(d, "errorMessage"), "Kafka error code 36");
    CHECK_STR(jstr(d, "sourceIPAddress"), "10.0.3.7");
    CHECK_STR(jstr(d, "recipientAccountId"), "123456789012");
    CHECK_STR(jstr(d, "additionalEventData.chainId"), "edf37f92e5a382ed17a8f7b77ea5fd58");
    CHECK_STR(jstr(d, "additionalEventData.eventType"), "KafkaApiCall");
    const char *line = jstr(d, "additionalEventData.auditRecord");
    CHECK(line && strlen(line) == strlen(rec) - 1 && memcmp(line, rec, strlen(rec) - 1) == 0);
    /* nothing else at the top level: the schema's fields only */
    static const char *const allowed[] = {
        "version",          "userIdentity",      "userAgent",    "eventSource",
        "eventName",        "eventTime",         "UID",          "requestParameters",
        "responseElements", "errorCode",         "errorMessage", "sourceIPAddress",
        "recipientAccountId", "additionalEventData"};
    const cJSON *m;
    cJSON_ArrayForEach(m, d)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
            known = known || strcmp(m->string, allowed[i]) == 0;
        CHECK(known);
    }
    cJSON_Delete(d);

    /* a connection event: no request id (UID = eventID), anonymous, reason as errorCode */
    d = lake_map("{\"eventTime\":\"2026-11-24T21:30:00.123Z\",\"eventSource\":\"kafka.brokerside\","
                 "\"eventName\":\"TlsHandshakeFailed\",\"eventID\":\"e-1\","
                 "\"userIdentity\":{\"type\":\"Anonymous\",\"principal\":null},"
                 "\"reason\":\"protocol_version\"}",
                 BS_OK, id, why);
    CHECK_STR(jstr(d, "UID"), "e-1");
    CHECK_STR(jstr(d, "version"), "1.0");
    CHECK_STR(jstr(d, "userIdentity.principalId"), "ANONYMOUS");
    CHECK_STR(jstr(d, "errorCode"), "protocol_version");
    cJSON_Delete(d);
    /* a denial */
    d = lake_map("{\"eventTime\":\"2026-11-24T21:30:00Z\",\"eventSource\":\"s\",\"eventName\":\"Produce\","
                 "\"eventID\":\"e-2\",\"decision\":\"DENY\"}",
                 BS_OK, id, why);
    CHECK_STR(jstr(d, "errorCode"), "AccessDenied");
    CHECK_STR(jstr(d, "userIdentity.type"), "Unknown");
    cJSON_Delete(d);

    /* an OCSF event (audit.format "ocsf"): the same fields from OCSF's attributes and the
     * record's own names in `unmapped` */
    const char *ocsf =
        "{\"class_uid\":6003,\"class_name\":\"API Activity\",\"activity_id\":1,\"time\":1796497029370,"
        "\"status_id\":2,\"status\":\"Failure\",\"status_code\":\"36\","
        "\"status_detail\":\"TOPIC_ALREADY_EXISTS\",\"metadata\":{\"version\":\"1.8.0\","
        "\"uid\":\"019ab697-e800-7d5a-ad91-c10e82bb2352\",\"log_name\":\"kafka.brokerside\"},"
        "\"actor\":{\"user\":{\"name\":\"User:alice\",\"type\":\"SASL\"},\"app_name\":\"kcat\"},"
        "\"src_endpoint\":{\"ip\":\"10.0.3.8\",\"port\":1},\"api\":{\"operation\":\"CreateTopics\","
        "\"request\":{\"uid\":\"7\"},\"response\":{\"code\":36,\"error\":\"TOPIC_ALREADY_EXISTS\"}},"
        "\"resources\":[{\"type\":\"topic\",\"name\":\"orders\"}],"
        "\"unmapped\":{\"eventName\":\"CreateTopics\",\"eventType\":\"KafkaApiCall\","
        "\"requestID\":\"9-7\",\"chainId\":\"edf37f92e5a382ed17a8f7b77ea5fd58\",\"sequence\":4,"
        "\"previousHash\":\"226fdfe445688ce0748905f5c91d736ee0623b63d7739d8b86d8d88461f6e62c\"}}";
    d = lake_map(ocsf, BS_OK, id, why);
    CHECK(d != NULL);
    CHECK_STR(id, "019ab697-e800-7d5a-ad91-c10e82bb2352");
    CHECK_STR(jstr(d, "version"), "1.8.0");
    CHECK_STR(jstr(d, "eventSource"), "kafka.brokerside");
    CHECK_STR(jstr(d, "eventName"), "CreateTopics");
    CHECK_STR(jstr(d, "eventTime"), "2026-12-05T18:57:09Z");
    CHECK_STR(jstr(d, "userIdentity.type"), "SASL");
    CHECK_STR(jstr(d, "userIdentity.principalId"), "User:alice");
    CHECK_STR(jstr(d, "userAgent"), "kcat");
    CHECK_STR(jstr(d, "UID"), "9-7");
    CHECK_STR(jstr(d, "errorCode"), "TOPIC_ALREADY_EXISTS");
    CHECK_STR(jstr(d, "sourceIPAddress"), "10.0.3.8");
    CHECK_STR(jstr(d, "requestParameters.api.operation"), "CreateTopics");
    CHECK_STR(jstr(d, "responseElements.error"), "TOPIC_ALREADY_EXISTS");
    CHECK_STR(jstr(d, "additionalEventData.chainId"), "edf37f92e5a382ed17a8f7b77ea5fd58");
    CHECK_STR(jstr(d, "additionalEventData.format"), "ocsf");
    line = jstr(d, "additionalEventData.auditRecord");
    CHECK(line && strcmp(line, ocsf) == 0);
    cJSON_ArrayForEach(m, d)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
            known = known || strcmp(m->string, allowed[i]) == 0;
        CHECK(known);
    }
    cJSON_Delete(d);

    /* refused: not JSON, not an audit event, a bad id, a bad time, too big */
    lake_map("not json", BS_E_MALFORMED, id, why);
    lake_map("{\"eventName\":\"x\"}", BS_E_MALFORMED, id, why);
    CHECK(strstr(why, "not an audit event") != NULL);
    lake_map("{\"eventTime\":\"2026-11-24T21:30:00Z\",\"eventSource\":\"s\",\"eventName\":\"n\","
             "\"eventID\":\"a b\"}",
             BS_E_MALFORMED, id, why);
    lake_map("{\"eventTime\":\"yesterday\",\"eventSource\":\"s\",\"eventName\":\"n\","
             "\"eventID\":\"ab\"}",
             BS_E_MALFORMED, id, why);
    char *big = malloc(40000);
    int n = snprintf(big, 40000,
                     "{\"eventTime\":\"2026-11-24T21:30:00Z\",\"eventSource\":\"s\","
                     "\"eventName\":\"n\",\"eventID\":\"ab\",\"clientId\":\"");
    memset(big + n, 'x', 30000);
    strcpy(big + n + 30000, "\"}");
    lake_map(big, BS_E_TOO_LARGE, id, why);
    CHECK(strstr(why, "additionalEventData") != NULL);
    free(big);

    /* eventDataChecksum: base64(SHA-256), as `printf %s abc | openssl dgst -binary -sha256 | base64` */
    char sum[45];
    bs_ctlake_checksum((const uint8_t *)"abc", 3, sum);
    CHECK_STR(sum, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");

    /* channel ARNs */
    char region[64], account[13];
    CHECK_EQ(bs_ctlake_parse_channel_arn("arn:aws:cloudtrail:eu-west-1:123456789012:channel/ab-1_c",
                                         region, sizeof region, account),
             BS_OK);
    CHECK_STR(region, "eu-west-1");
    CHECK_STR(account, "123456789012");
    CHECK_EQ(bs_ctlake_parse_channel_arn("arn:aws-cn:cloudtrail:cn-north-1:123456789012:channel/x",
                                         region, sizeof region, account),
             BS_OK);
    static const char *const bad[] = {
        "", "arn:aws:cloudtrail:eu-west-1:12345678901:channel/x", /* 11 digits */
        "arn:aws:logs:eu-west-1:123456789012:channel/x",          /* service */
        "arn:aws:cloudtrail:eu-west-1:123456789012:trail/x",      /* not a channel */
        "arn:aws:cloudtrail:eu-west-1:123456789012:channel/",     /* no id */
        "arn:aws:cloudtrail:eu-west-1:123456789012:channel/a:b",  /* bad id */
        "arn:aws:cloudtrail::123456789012:channel/x",             /* no region */
        "0e2a7c4d"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_EQ(bs_ctlake_parse_channel_arn(bad[i], region, sizeof region, account),
                 BS_E_MALFORMED);
}

int main(void)
{
    RUN(test_expand_templates);
    RUN(test_event_time);
    RUN(test_utf8_and_base64);
    RUN(test_options_validated);
    RUN(test_cloudtrail_lake_mapping);
    return test_report();
}
