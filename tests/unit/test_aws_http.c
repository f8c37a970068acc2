/* Unit tests for src/aws/http.c: the libev-driven libcurl client against
 * tests/unit/aws_fake_server.py (scripted throttling, 5xx, auth and
 * permanent errors, IMDS credentials, HTTPS with the dev PKI), plus the
 * error classification on its own. */
#include <ev.h>

#include <cjson/cJSON.h>

#include "aws_test_util.h"
#include "brokerside/aws_http.h"
#include "brokerside/metrics.h"
#include "test.h"

static fake_server srv;
static char tmp_dir[256];

typedef struct result {
    bool done;
    bs_aws_outcome outcome;
    long status;
    unsigned attempts;
    char code[128], message[256], body[512], transport[256], request_id[64], ctype[64];
} result;

static void on_done(const bs_aws_http_response *r, void *arg)
{
    result *res = arg;
    res->done = true;
    res->outcome = r->outcome;
    res->status = r->status;
    res->attempts = r->attempts;
    snprintf(res->code, sizeof res->code, "%s", r->error_code);
    snprintf(res->message, sizeof res->message, "%s", r->error_message);
    snprintf(res->body, sizeof res->body, "%.*s", (int)(r->body_len < 511 ? r->body_len : 511),
             (const char *)r->body);
    snprintf(res->transport, sizeof res->transport, "%s", r->transport_error);
    snprintf(res->request_id, sizeof res->request_id, "%s", r->request_id);
    size_t n = 0;
    const char *ct = bs_aws_http_response_header(r, "content-type", &n);
    snprintf(res->ctype, sizeof res->ctype, "%.*s", ct ? (int)n : 0, ct ? ct : "");
}

static bool hang_guard_fired;
static void hang_guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    hang_guard_fired = true;
    ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until *done; a generous guard only prevents hangs. */
static void run_until_done(struct ev_loop *loop, const bool *done)
{
    ev_timer guard;
    hang_guard_fired = false;
    ev_timer_init(&guard, hang_guard_cb, 60., 0.);
    ev_timer_start(loop, &guard);
    while (!*done && !hang_guard_fired)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
    CHECK(*done);
}

/* Run the loop until `res` is done. */
static void run_until(struct ev_loop *loop, result *res)
{
    run_until_done(loop, &res->done);
}

static void clear_aws_env(void)
{
    static const char *const vars[] = {"AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",
                                       "AWS_PROFILE",
                                       "AWS_SHARED_CREDENTIALS_FILE",
                                       "AWS_CONFIG_FILE",
                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                       "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"};
    for (size_t i = 0; i < BS_ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
    setenv("HOME", tmp_dir, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

/* A client with static credentials and fast retries. */
static bs_aws_http *new_client(struct ev_loop *loop, bs_aws_credentials_provider **pp,
                               bs_aws_http_config *cfg_override)
{
    bs_aws_credentials_config cc = {.access_key_id = "AKIATEST",
                                    .secret_access_key = "test-secret"};
    CHECK_EQ(bs_aws_credentials_provider_new(&cc, pp), BS_OK);
    bs_aws_http_config cfg = {.max_attempts = 4, .backoff_base_ms = 1, .backoff_max_ms = 20};
    if (cfg_override) cfg = *cfg_override;
    bs_aws_http *c = NULL;
    CHECK_EQ(bs_aws_http_new(loop, &cfg, *pp, &c), BS_OK);
    return c;
}

static void url_for(char *out, size_t cap, const char *path)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", srv.port, path);
}

/* The recorded requests of /seq/<name>/... as parsed JSON (caller deletes). */
static cJSON *server_log(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/log/%s", name);
    char *text = test_http("GET", srv.port, path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

static void test_classification(void)
{
    char code[64], msg[64];
    const char *j1 =
        "{\"__type\":\"com.amazonaws.kms#ThrottlingException\",\"message\":\"Rate exceeded\"}";
    bs_aws_error_code((const uint8_t *)j1, strlen(j1), NULL, code, sizeof code, msg, sizeof msg);
    CHECK_STR(code, "ThrottlingException");
    CHECK_STR(msg, "Rate exceeded");
    CHECK_EQ(bs_aws_classify(400, code), BS_AWS_THROTTLED);
    const char *x1 =
        "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce</Message></Error>";
    bs_aws_error_code((const uint8_t *)x1, strlen(x1), NULL, code, sizeof code, msg, sizeof msg);
    CHECK_STR(code, "SlowDown");
    CHECK_STR(msg, "Reduce");
    CHECK_EQ(bs_aws_classify(503, code), BS_AWS_THROTTLED);
    bs_aws_error_code((const uint8_t *)"", 0, "ExpiredTokenException:http://internal.amazon.com/",
                      code, sizeof code, msg, sizeof msg);
    CHECK_STR(code, "ExpiredTokenException");
    CHECK_EQ(bs_aws_classify(400, code), BS_AWS_AUTH);
    CHECK_EQ(bs_aws_classify(403, "InvalidSignatureException"), BS_AWS_AUTH);
    CHECK_EQ(bs_aws_classify(403, "UnrecognizedClientException"), BS_AWS_AUTH);
    CHECK_EQ(bs_aws_classify(403, "SignatureDoesNotMatch"), BS_AWS_AUTH);
    CHECK_EQ(bs_aws_classify(400, "ProvisionedThroughputExceededException"), BS_AWS_THROTTLED);
    CHECK_EQ(bs_aws_classify(400, "RequestLimitExceeded"), BS_AWS_THROTTLED);
    CHECK_EQ(bs_aws_classify(429, ""), BS_AWS_THROTTLED);
    CHECK_EQ(bs_aws_classify(500, NULL), BS_AWS_SERVER_ERROR);
    CHECK_EQ(bs_aws_classify(400, "KMSInternalException"), BS_AWS_SERVER_ERROR);
    CHECK_EQ(bs_aws_classify(400, "ValidationException"), BS_AWS_CLIENT_ERROR);
    CHECK_EQ(bs_aws_classify(403, "AccessDeniedException"), BS_AWS_CLIENT_ERROR);
    CHECK_EQ(bs_aws_classify(401, ""), BS_AWS_AUTH);
    CHECK_EQ(bs_aws_classify(200, ""), BS_AWS_OK);
    CHECK_EQ(bs_aws_classify(0, "ServiceUnavailableException"), BS_AWS_SERVER_ERROR);
    /* Garbage and truncated bodies give no code, never a crash or overread. */
    const char *bad[] = {"{\"__type\":", "<Error><Code>NoEnd", "\x01\x02\xff", "   "};
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++) {
        bs_aws_error_code((const uint8_t *)bad[i], strlen(bad[i]), NULL, code, sizeof code, msg,
                          sizeof msg);
        CHECK_STR(code, "");
    }
    /* Long codes are truncated to the capacity, still terminated. */
    char tiny[8];
    bs_aws_error_code((const uint8_t *)j1, strlen(j1), NULL, tiny, sizeof tiny, msg, sizeof msg);
    CHECK_EQ(strlen(tiny), 7);
    CHECK(bs_aws_outcome_retryable(BS_AWS_TRANSPORT) && !bs_aws_outcome_retryable(BS_AWS_AUTH));
    CHECK_STR(bs_aws_outcome_name(BS_AWS_CLIENT_ERROR), "client_error");
}

static void test_xml_reader(void)
{
    static const char doc[] = "<R><Upload><Key>a&amp;b&lt;&gt;&quot;&apos;&x;</Key></Upload>"
                              "<Upload><Key>second</Key></Upload><Key>unclosed";
    bs_cursor c, v;
    bs_cursor_init(&c, doc, sizeof doc - 1);
    char out[64];
    CHECK(bs_aws_xml_element(&c, "Upload", &v));
    bs_cursor inner = v, key;
    CHECK(bs_aws_xml_element(&inner, "Key", &key));
    bs_aws_xml_text(&key, out, sizeof out);
    CHECK_STR(out, "a&b<>\"'&x;"); /* unknown entities stay as written */
    /* truncated to the capacity, still terminated */
    bs_aws_xml_text(&key, out, 3);
    CHECK_STR(out, "a&");
    bs_aws_xml_text(&key, out, 1);
    CHECK_STR(out, "");
    CHECK(bs_aws_xml_element(&c, "Upload", &v));
    CHECK(bs_aws_xml_element(&v, "Key", &key));
    bs_aws_xml_text(&key, out, sizeof out);
    CHECK_STR(out, "second");
    size_t at = c.pos;
    CHECK(!bs_aws_xml_element(&c, "Upload", &v)); /* no more */
    CHECK(!bs_aws_xml_element(&c, "Key", &v));    /* opened, never closed */
    CHECK_EQ(c.pos, at);
    char longtag[80];
    memset(longtag, 'T', sizeof longtag - 1);
    longtag[sizeof longtag - 1] = 0;
    bs_cursor_init(&c, doc, sizeof doc - 1);
    CHECK(!bs_aws_xml_element(&c, longtag, &v));
    bs_cursor_init(&c, NULL, 0);
    CHECK(!bs_aws_xml_element(&c, "Key", &v));
    /* an XML error body's code and message */
    static const char err[] = "  \n<Error><Code>SlowDown</Code><Message>x &amp; y</Message></Error>";
    char code[32], msg[32];
    bs_aws_error_code((const uint8_t *)err, sizeof err - 1, NULL, code, sizeof code, msg,
                      sizeof msg);
    CHECK_STR(code, "SlowDown");
    CHECK_STR(msg, "x &amp; y"); /* error messages are shown as sent */
}

static void test_json_call_signed(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_provider *p = NULL;
    bs_aws_http *c = new_client(loop, &p, NULL);
    char url[128];
    url_for(url, sizeof url, "/seq/json1/ok");
    result r = {0};
    CHECK_EQ(bs_aws_json_call(c, "kms", "eu-west-1", url, "TrentService.GenerateDataKey",
                              "{\"KeyId\":\"alias/x\"}", on_done, &r),
             BS_OK);
    CHECK(!r.done); /* never called back from inside send */
    run_until(loop, &r);
    CHECK_EQ(r.outcome, BS_AWS_OK);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.attempts, 1);
    CHECK(strstr(r.body, "alias/x") != NULL);
    CHECK(strncmp(r.request_id, "req-", 4) == 0);
    CHECK_STR(r.ctype, "application/x-amz-json-1.1");
    cJSON *log = server_log("json1");
    cJSON *e = cJSON_GetArrayItem(log, 0);
    const char *auth = cJSON_GetStringValue(cJSON_GetObjectItem(e, "authorization"));
    CHECK(auth && strstr(auth, "AWS4-HMAC-SHA256 Credential=AKIATEST/") == auth);
    CHECK(auth && strstr(auth, "/eu-west-1/kms/aws4_request, SignedHeaders="
                               "content-type;host;x-amz-date;x-amz-target, Signature="));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(e, "x-amz-target")),
              "TrentService.GenerateDataKey");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(e, "content-type")),
              "application/x-amz-json-1.1");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(e, "x-amz-security-token")));
    cJSON_Delete(log);

    /* CloudWatch uses JSON 1.0 and the query-compatibility header. */
    url_for(url, sizeof url, "/seq/json2/ok");
    result r2 = {0};
    CHECK_EQ(bs_aws_json_call(c, "monitoring", "eu-west-1", url,
                              "GraniteServiceVersion20100801.PutMetricData", "{}", on_done, &r2),
             BS_OK);
    run_until(loop, &r2);
    CHECK_EQ(r2.outcome, BS_AWS_OK);
    log = server_log("json2");
    e = cJSON_GetArrayItem(log, 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(e, "content-type")),
              "application/x-amz-json-1.0");
    auth = cJSON_GetStringValue(cJSON_GetObjectItem(e, "authorization"));
    CHECK(auth && strstr(auth, "x-amz-target;x-amzn-query-mode"));
    cJSON_Delete(log);
    /* A raw signed PUT (S3): body as given, no content type invented by curl,
     * the payload hash header signed. */
    url_for(url, sizeof url, "/seq/raw1/ok");
    result r3 = {0};
    bs_aws_http_request put = {.method = "PUT",
                               .url = url,
                               .body = (const uint8_t *)"abc\0def",
                               .body_len = 7,
                               .service = "s3",
                               .region = "us-east-1"};
    CHECK_EQ(bs_aws_http_send(c, &put, on_done, &r3), BS_OK);
    run_until(loop, &r3);
    CHECK_EQ(r3.outcome, BS_AWS_OK);
    log = server_log("raw1");
    e = cJSON_GetArrayItem(log, 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(e, "method")), "PUT");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(e, "content-type")));
    const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
    CHECK(b && memcmp(b, "abc\0def", 8) == 0);
    auth = cJSON_GetStringValue(cJSON_GetObjectItem(e, "authorization"));
    CHECK(auth && strstr(auth, "/us-east-1/s3/aws4_request, SignedHeaders=host;"
                               "x-amz-content-sha256;x-amz-date, Signature="));
    cJSON_Delete(log);
    bs_aws_http_stats st;
    bs_aws_http_get_stats(c, &st);
    CHECK_EQ(st.requests, 3);
    CHECK_EQ(st.succeeded, 3);
    CHECK_EQ(st.in_flight, 0);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);
    ev_loop_destroy(loop);
}

/* Sensitive call: the fake server echoes the request body, so a 20 KiB body
 * comes back in a response that grows the buffer several times through the
 * wipe-on-grow path: every byte must arrive intact, in order, once. (That the
 * old buffers are zeroed is not observable without reading freed memory;
 * ASan/valgrind runs of this test check the path for misuse.) */
typedef struct big_result {
    bool done;
    bs_aws_outcome outcome;
    size_t body_len;
    bool echo_intact;
} big_result;

static void on_big_done(const bs_aws_http_response *r, void *arg)
{
    big_result *res = arg;
    res->done = true;
    res->outcome = r->outcome;
    res->body_len = r->body_len;
    cJSON *j = cJSON_ParseWithLength((const char *)r->body, r->body_len);
    const char *echo = cJSON_GetStringValue(cJSON_GetObjectItem(j, "echo"));
    res->echo_intact = echo && strlen(echo) == 20000 + 11 && strncmp(echo, "{\"k\":\"", 6) == 0 &&
                       strspn(echo + 6, "s") == 20000 && strcmp(echo + 20006, "end\"}") == 0;
    cJSON_Delete(j);
}

static void test_sensitive_call_large_response(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_provider *p = NULL;
    bs_aws_http *c = new_client(loop, &p, NULL);
    char url[128];
    url_for(url, sizeof url, "/seq/sens1/ok");
    char *body = malloc(20000 + 12);
    CHECK(body != NULL);
    if (!body) return;
    memcpy(body, "{\"k\":\"", 6);
    memset(body + 6, 's', 20000);
    memcpy(body + 20006, "end\"}", 6);
    big_result r = {0};
    CHECK_EQ(bs_aws_json_call_sensitive(c, "kms", "eu-west-1", url, "TrentService.Decrypt", body,
                                        on_big_done, &r),
             BS_OK);
    free(body); /* the client keeps its own (wiped) copy */
    run_until_done(loop, &r.done);
    CHECK_EQ(r.outcome, BS_AWS_OK);
    CHECK(r.body_len > 20000);
    CHECK(r.echo_intact);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);
    ev_loop_destroy(loop);
}

/* Send one signed POST to /seq/<path> and wait for it. */
static void one_call(struct ev_loop *loop, bs_aws_http *c, const char *path, result *r)
{
    char url[256];
    url_for(url, sizeof url, path);
    memset(r, 0, sizeof *r);
    CHECK_EQ(bs_aws_json_call(c, "kms", "us-east-1", url, "TrentService.Decrypt", "{}", on_done, r),
             BS_OK);
    run_until(loop, r);
}

static void test_retries_and_permanent_errors(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_provider *p = NULL;
    bs_aws_http *c = new_client(loop, &p, NULL);
    result r;

    /* Throttling (JSON, 429, S3-style XML) is retried until it succeeds. */
    one_call(loop, c, "/seq/thr/throttle,429,503xml,ok", &r);
    CHECK_EQ(r.outcome, BS_AWS_OK);
    CHECK_EQ(r.attempts, 4);
    cJSON *log = server_log("thr");
    CHECK_EQ(cJSON_GetArraySize(log), 4);
    cJSON_Delete(log);

    /* The error type may come only in the X-Amzn-ErrorType header. */
    one_call(loop, c, "/seq/hdr/hdrtype,ok", &r);
    CHECK_EQ(r.outcome, BS_AWS_OK);
    CHECK_EQ(r.attempts, 2);

    /* 5xx until the attempts run out: the last error is reported. */
    one_call(loop, c, "/seq/five/500", &r);
    CHECK_EQ(r.outcome, BS_AWS_SERVER_ERROR);
    CHECK_EQ(r.status, 500);
    CHECK_EQ(r.attempts, 4);
    CHECK_STR(r.body, "internal error");

    one_call(loop, c, "/seq/thr2/throttle", &r);
    CHECK_EQ(r.outcome, BS_AWS_THROTTLED);
    CHECK_STR(r.code, "ThrottlingException");
    CHECK_STR(r.message, "Rate exceeded");
    CHECK_EQ(r.attempts, 4);

    /* A validation error is permanent: one attempt, code and message reported. */
    one_call(loop, c, "/seq/val/validation,ok", &r);
    CHECK_EQ(r.outcome, BS_AWS_CLIENT_ERROR);
    CHECK_EQ(r.status, 400);
    CHECK_EQ(r.attempts, 1);
    CHECK_STR(r.code, "ValidationException");
    CHECK_STR(r.message, "1 validation error");

    /* A response above max_response_bytes is refused, not truncated. */
    bs_aws_http_stats st;
    bs_aws_http_get_stats(c, &st);
    CHECK_EQ(st.failed, 3);
    CHECK_EQ(st.retries, 3 + 1 + 3 + 3);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);

    bs_aws_http_config small = {.max_attempts = 4, .max_response_bytes = 1 << 20};
    c = new_client(loop, &p, &small);
    one_call(loop, c, "/seq/big/big", &r);
    CHECK_EQ(r.outcome, BS_AWS_TOO_LARGE);
    CHECK_EQ(r.attempts, 1);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);
    /* Exactly at the limit (the fake's body is 2 MiB) is fine; one byte less is not. */
    size_t limits[] = {2u << 20, (2u << 20) - 1};
    for (int i = 0; i < 2; i++) {
        bs_aws_http_config exact = {.max_attempts = 1, .max_response_bytes = limits[i]};
        c = new_client(loop, &p, &exact);
        one_call(loop, c, "/seq/big2/big", &r);
        CHECK_EQ(r.outcome, i == 0 ? BS_AWS_OK : BS_AWS_TOO_LARGE);
        CHECK_EQ(strlen(r.body), i == 0 ? 511 : 0);
        bs_aws_http_free(c);
        bs_aws_credentials_provider_free(p);
    }
    ev_loop_destroy(loop);
}

static void test_transport_errors_and_timeouts(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_provider *p = NULL;
    bs_aws_http_config cfg = {
        .max_attempts = 3, .backoff_base_ms = 1, .backoff_max_ms = 10, .timeout_ms = 500};
    bs_aws_http *c = new_client(loop, &p, &cfg);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", dead_port());
    result r = {0};
    CHECK_EQ(
        bs_aws_json_call(c, "kms", "us-east-1", url, "TrentService.Decrypt", "{}", on_done, &r),
        BS_OK);
    run_until(loop, &r);
    CHECK_EQ(r.outcome, BS_AWS_TRANSPORT);
    CHECK_EQ(r.attempts, 3);
    CHECK_EQ(r.status, 0);
    CHECK(r.transport[0] != '\0');

    /* A server that does not answer within the attempt timeout. */
    one_call(loop, c, "/seq/slow/slow,slow,slow", &r);
    CHECK_EQ(r.outcome, BS_AWS_TRANSPORT);
    CHECK(strstr(r.transport, "imeout") || strstr(r.transport, "timed out"));

    /* Freeing the client cancels what is in flight, each callback once. */
    result a = {0}, b = {0};
    url_for(url, sizeof url, "/seq/slow2/slow");
    CHECK_EQ(bs_aws_json_call(c, "kms", "us-east-1", url, "T.X", "{}", on_done, &a), BS_OK);
    CHECK_EQ(bs_aws_json_call(c, "kms", "us-east-1", url, "T.X", "{}", on_done, &b), BS_OK);
    for (int i = 0; i < 5; i++)
        ev_run(loop, EVRUN_NOWAIT);
    bs_aws_http_free(c);
    CHECK(a.done && b.done);
    CHECK_EQ(a.outcome, BS_AWS_CANCELLED);
    CHECK_EQ(b.outcome, BS_AWS_CANCELLED);
    bs_aws_credentials_provider_free(p);
    ev_loop_destroy(loop);
}

/* A hung endpoint is visible while it hangs: an attempt without an answer
 * past slow_attempt_ms is counted (in progress and in total) and listed by
 * bs_aws_http_status_json; when it ends it leaves the list. Retries are
 * counted as they happen. */
static void test_slow_attempt_visible(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_provider *p = NULL;
    bs_aws_http_config cfg = {.max_attempts = 2, .backoff_base_ms = 1, .backoff_max_ms = 10,
                              .timeout_ms = 20000, .slow_attempt_ms = 100};
    bs_aws_http *c = new_client(loop, &p, &cfg);
    char url[128];
    url_for(url, sizeof url, "/seq/hung/slow");
    result r = {0};
    CHECK_EQ(bs_aws_json_call(c, "logs", "us-east-1", url, "Logs.PutLogEvents", "{}", on_done, &r),
             BS_OK);
    bs_aws_http_stats st;
    for (int i = 0; i < 10000; i++) {
        bs_aws_http_get_stats(c, &st);
        if (st.slow_in_progress || r.done) break;
        ev_run(loop, EVRUN_ONCE);
    }
    bs_aws_http_get_stats(c, &st);
    CHECK_EQ(st.slow_in_progress, 1);
    CHECK_EQ(st.slow_attempts, 1);
    CHECK(!r.done);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_aws_http_status_json(&w);
    bs_wbuf_put_u8(&w, 0);
    CHECK(strstr((const char *)w.data, "\"service\":\"logs\"") != NULL);
    CHECK(strstr((const char *)w.data, "\"running_s\":") != NULL);
    run_until(loop, &r); /* the server answers after 5 s */
    CHECK_EQ(r.outcome, BS_AWS_OK);
    bs_aws_http_get_stats(c, &st);
    CHECK_EQ(st.slow_in_progress, 0);
    bs_wbuf_reset(&w);
    bs_aws_http_status_json(&w);
    CHECK_EQ(w.len, 2); /* [] */
    bs_wbuf_free(&w);
    /* a throttled first attempt: the retry is counted when it is scheduled */
    bs_metric *retries = bs_metrics_counter_kv("brokerside_aws_retries_total", "x", "service",
                                               "logs", "outcome", "throttled", NULL);
    int64_t before = bs_metric_value(retries);
    result r2 = {0};
    url_for(url, sizeof url, "/seq/throttle1/429,ok");
    CHECK_EQ(bs_aws_json_call(c, "logs", "us-east-1", url, "Logs.PutLogEvents", "{}", on_done, &r2),
             BS_OK);
    run_until(loop, &r2);
    CHECK_EQ(r2.outcome, BS_AWS_OK);
    CHECK_EQ(bs_metric_value(retries) - before, 1);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);
    ev_loop_destroy(loop);
}

static void test_auth_error_refreshes_credentials(void)
{
    clear_aws_env();
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv.port);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, 1);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_provider *p = NULL;
    CHECK_EQ(bs_aws_credentials_provider_new(NULL, &p), BS_OK);
    bs_aws_http_config cfg = {.max_attempts = 4, .backoff_base_ms = 1};
    bs_aws_http *c = NULL;
    CHECK_EQ(bs_aws_http_new(loop, &cfg, p, &c), BS_OK);
    result r;
    one_call(loop, c, "/seq/auth1/expired,ok", &r);
    CHECK_EQ(r.outcome, BS_AWS_OK);
    CHECK_EQ(r.attempts, 2);
    /* The retry was signed with the newly fetched key and token. */
    cJSON *log = server_log("auth1");
    CHECK_EQ(cJSON_GetArraySize(log), 2);
    const char *a0 =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 0), "authorization"));
    const char *a1 =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 1), "authorization"));
    const char *t0 = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(log, 0), "x-amz-security-token"));
    const char *t1 = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(log, 1), "x-amz-security-token"));
    CHECK(a0 && a1 && strstr(a0, "Credential=ASIAIMDS") && strstr(a1, "Credential=ASIAIMDS"));
    CHECK(a0 && a1 && strcmp(a0, a1) != 0);
    CHECK(t0 && t1 && strncmp(t0, "imds-token-", 11) == 0 && strcmp(t0, t1) != 0);
    CHECK(a1 && strstr(a1, "x-amz-security-token"));
    cJSON_Delete(log);

    /* Rejected again after the refresh: reported as auth, no endless loop. */
    one_call(loop, c, "/seq/auth2/xml403", &r);
    CHECK_EQ(r.outcome, BS_AWS_AUTH);
    CHECK_STR(r.code, "SignatureDoesNotMatch");
    CHECK_EQ(r.attempts, 2);
    bs_aws_http_stats st;
    bs_aws_http_get_stats(c, &st);
    CHECK_EQ(st.auth_refreshes, 2);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);

    /* No credentials anywhere: the call fails through its callback. */
    clear_aws_env();
    CHECK_EQ(bs_aws_credentials_provider_new(NULL, &p), BS_OK);
    CHECK_EQ(bs_aws_http_new(loop, &cfg, p, &c), BS_OK);
    one_call(loop, c, "/seq/nocreds/ok", &r);
    CHECK_EQ(r.outcome, BS_AWS_NO_CREDENTIALS);
    cJSON *l2 = server_log("nocreds");
    CHECK_EQ(cJSON_GetArraySize(l2), 0); /* nothing unsigned was sent */
    cJSON_Delete(l2);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);
    ev_loop_destroy(loop);
}

static void test_rejects_bad_requests(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_aws_credentials_provider *p = NULL;
    bs_aws_http *c = new_client(loop, &p, NULL);
    result r = {0};
    bs_aws_http_request req = {.method = "GET", .url = "ftp://127.0.0.1/x"};
    CHECK_EQ(bs_aws_http_send(c, &req, on_done, &r), BS_E_CONFIG);
    req.url = "not a url";
    CHECK_EQ(bs_aws_http_send(c, &req, on_done, &r), BS_E_CONFIG);
    req.url = "http://127.0.0.1/";
    req.service = "kms";
    CHECK_EQ(bs_aws_http_send(c, &req, on_done, &r), BS_E_CONFIG); /* no region */
    req.region = "us-east-1";
    bs_sigv4_header inject[] = {{"X-Test", "a\r\nX-Evil: 1"}};
    req.headers = inject;
    req.n_headers = 1;
    CHECK_EQ(bs_aws_http_send(c, &req, on_done, &r), BS_E_MALFORMED);
    bs_sigv4_header host[] = {{"Host", "elsewhere"}};
    req.headers = host;
    CHECK_EQ(bs_aws_http_send(c, &req, on_done, &r), BS_E_MALFORMED);
    bs_sigv4_header badname[] = {{"Bad Name", "x"}};
    req.headers = badname;
    CHECK_EQ(bs_aws_http_send(c, &req, on_done, &r), BS_E_MALFORMED);
    req.n_headers = 0;
    req.method = "get";
    CHECK_EQ(bs_aws_http_send(c, &req, on_done, &r), BS_E_MALFORMED);
    CHECK_EQ(bs_aws_json_call(c, "kms", "", NULL, "T.X", "{}", on_done, &r), BS_E_CONFIG);
    CHECK(!r.done);
    bs_aws_http_stats st;
    bs_aws_http_get_stats(c, &st);
    CHECK_EQ(st.requests, 0);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);
    ev_loop_destroy(loop);
}

static void test_tls_verification(void)
{
    char cmd[1024], cert[512], key[512], ca[512], other[512];
    const char *src = getenv("BS_SOURCE_DIR");
    snprintf(cmd, sizeof cmd, "%s/certs/make-dev-certs.sh %s/pki >/dev/null", src ? src : "..",
             tmp_dir);
    CHECK_EQ(system(cmd), 0);
    snprintf(cert, sizeof cert, "%s/pki/server.crt", tmp_dir);
    snprintf(key, sizeof key, "%s/pki/server.key", tmp_dir);
    snprintf(ca, sizeof ca, "%s/pki/ca.crt", tmp_dir);
    snprintf(other, sizeof other, "%s/pki/other-ca.crt", tmp_dir);
    fake_server tls;
    CHECK(fake_server_start_args(&tls, cert, key, NULL));
    if (tls.pid <= 0) return;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[128];
    const char *cas[] = {ca, other, NULL};
    const bs_aws_outcome want[] = {BS_AWS_OK, BS_AWS_TRANSPORT, BS_AWS_TRANSPORT};
    for (int i = 0; i < 3; i++) {
        bs_aws_credentials_provider *p = NULL;
        bs_aws_http_config cfg = {.ca_file = cas[i], .max_attempts = 1};
        bs_aws_http *c = new_client(loop, &p, &cfg);
        /* "localhost" is in the certificate's SANs. */
        snprintf(url, sizeof url, "https://localhost:%d/seq/tls%d/ok", tls.port, i);
        result r = {0};
        CHECK_EQ(bs_aws_json_call(c, "kms", "us-east-1", url, "T.X", "{}", on_done, &r), BS_OK);
        run_until(loop, &r);
        CHECK_EQ(r.outcome, want[i]);
        if (r.outcome != want[i]) fprintf(stderr, "  tls case %d: %s\n", i, r.transport);
        bs_aws_http_free(c);
        bs_aws_credentials_provider_free(p);
    }
    /* Right CA, wrong name: a server on 127.0.0.2, which is not among the SANs. */
    fake_server tls2;
    CHECK(fake_server_start_args(&tls2, cert, key, "127.0.0.2"));
    bs_aws_credentials_provider *p = NULL;
    bs_aws_http_config cfg = {.ca_file = ca, .max_attempts = 1};
    bs_aws_http *c = new_client(loop, &p, &cfg);
    snprintf(url, sizeof url, "https://127.0.0.2:%d/seq/tlsname/ok", tls2.port);
    result r = {0};
    CHECK_EQ(bs_aws_json_call(c, "kms", "us-east-1", url, "T.X", "{}", on_done, &r), BS_OK);
    run_until(loop, &r);
    CHECK_EQ(r.outcome, BS_AWS_TRANSPORT);
    CHECK(strstr(r.transport, "127.0.0.2") != NULL); /* the name check, not a refused connection */
    CHECK(strstr(r.transport, "onnect") == NULL);
    fake_server_stop(&tls2);
    bs_aws_http_free(c);
    bs_aws_credentials_provider_free(p);
    ev_loop_destroy(loop);
    fake_server_stop(&tls);
    snprintf(cmd, sizeof cmd, "rm -rf %s/pki", tmp_dir);
    CHECK_EQ(system(cmd), 0);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/bs-aws-http-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    clear_aws_env();
    if (!fake_server_start(&srv)) fprintf(stderr, "could not start aws_fake_server.py\n");
    RUN(test_classification);
    RUN(test_xml_reader);
    if (srv.pid > 0) {
        RUN(test_json_call_signed);
        RUN(test_sensitive_call_large_response);
        RUN(test_retries_and_permanent_errors);
        RUN(test_transport_errors_and_timeouts);
        RUN(test_slow_attempt_visible);
    RUN(test_auth_error_refreshes_credentials);
        RUN(test_rejects_bad_requests);
        RUN(test_tls_verification);
    } else {
        test_failed++;
    }
    fake_server_stop(&srv);
    rmdir(tmp_dir);
    curl_global_cleanup();
    return test_report();
}
