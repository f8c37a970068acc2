/* http.c - libcurl multi on libev, SigV4 per attempt, retries (see aws_http.h). */
#include "brokerside/aws_http.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ev.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "brokerside/buf.h"
#include "brokerside/cursor.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/version.h"

#define MOD "aws-http"
#define MAX_RESPONSE_HEADER_BYTES (64 * 1024)
#define MAX_REQUEST_HEADERS 64

/* A socket libcurl asked us to watch. */
typedef struct sock_watch {
    ev_io io;
    struct bs_aws_http *client;
    curl_socket_t fd;
    struct sock_watch *next, *prev;
} sock_watch;

/* One request, alive from send until its callback returned. */
typedef struct call {
    struct bs_aws_http *client;
    struct call *next, *prev;
    char *method, *url, *service, *region;
    char *host;               /* Host header value, as signed */
    char *path;               /* request-line path (encoded), for signing */
    char *query;              /* request-line query, for signing; NULL if none */
    bs_sigv4_header *headers; /* deep copies */
    size_t n_headers;
    uint8_t *body;
    size_t body_len;
    bool unsigned_payload;
    bool sensitive; /* wipe bodies before their memory is freed, grown or reused */
    bs_aws_http_cb cb;
    void *arg;

    CURL *easy; /* non-NULL while an attempt is in the multi handle */
    struct curl_slist *hl;
    char errbuf[CURL_ERROR_SIZE];
    bs_wbuf resp_body;
    bs_wbuf resp_headers; /* raw header lines of the last response */
    bool body_over_limit;
    unsigned attempts;
    bool auth_retried;
    ev_timer timer;               /* backoff delay, or deferral of an early failure */
    ev_timer slow;                /* fires when an attempt runs past slow_attempt_ms */
    double attempt_start;         /* ev_now() when the current attempt started */
    bool slow_noted;              /* the current attempt was reported as slow */
    bs_aws_outcome early_outcome; /* set when the timer must finish, not retry */
    bool finish_on_timer;
} call;

struct bs_aws_http {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer curl_timer;
    bs_aws_credentials_provider *creds;
    char *ca_file, *user_agent;
    long connect_timeout_ms, timeout_ms, backoff_base_ms, backoff_max_ms, slow_attempt_ms;
    unsigned max_attempts;
    struct bs_aws_http *reg_next, *reg_prev; /* every live client (bs_aws_http_status_json) */
    size_t max_response_bytes;
    call *calls;
    sock_watch *socks;
    bs_sigv4_key_cache key_cache;
    bs_aws_http_stats stats;
};

/* ---- error classification ---------------------------------------------- */

/* True if `code` is one of the n strings of `list`. */
static bool code_in(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0) return true;
    return false;
}

/* Error code first, then HTTP status (see aws_http.h for the policy). */
bs_aws_outcome bs_aws_classify(long http_status, const char *error_code)
{
    static const char *const throttling[] = {"Throttling",
                                             "ThrottlingException",
                                             "ThrottledException",
                                             "RequestThrottledException",
                                             "TooManyRequestsException",
                                             "ProvisionedThroughputExceededException",
                                             "TransactionInProgressException",
                                             "RequestLimitExceeded",
                                             "BandwidthLimitExceeded",
                                             "LimitExceededException",
                                             "RequestThrottled",
                                             "SlowDown",
                                             "PriorRequestNotComplete",
                                             "EC2ThrottledException"};
    static const char *const transient[] = {"RequestTimeout",
                                            "RequestTimeoutException",
                                            "InternalError",
                                            "InternalFailure",
                                            "InternalServerError",
                                            "InternalServiceError",
                                            "InternalServiceException",
                                            "ServiceUnavailable",
                                            "ServiceUnavailableException",
                                            "KMSInternalException",
                                            "KMSInvalidStateException_Transient",
                                            "IDPCommunicationError"};
    static const char *const auth[] = {"ExpiredToken",
                                       "ExpiredTokenException",
                                       "InvalidSignatureException",
                                       "SignatureDoesNotMatch",
                                       "UnrecognizedClientException",
                                       "InvalidClientTokenId",
                                       "RequestExpired",
                                       "AuthFailure",
                                       "InvalidAccessKeyId",
                                       "IncompleteSignature",
                                       "IncompleteSignatureException",
                                       "MissingAuthenticationToken",
                                       "MissingAuthenticationTokenException",
                                       "InvalidToken",
                                       "TokenRefreshRequired",
                                       "RequestTimeTooSkewed",
                                       "RequestInTheFuture",
                                       "InvalidSecurity",
                                       "NotAuthorized"};
    const char *code = error_code ? error_code : "";
    if (*code) {
        if (code_in(code, throttling, BS_ARRAY_LEN(throttling))) return BS_AWS_THROTTLED;
        if (code_in(code, auth, BS_ARRAY_LEN(auth))) return BS_AWS_AUTH;
        if (code_in(code, transient, BS_ARRAY_LEN(transient))) return BS_AWS_SERVER_ERROR;
    }
    if (http_status >= 200 && http_status < 300 && !*code) return BS_AWS_OK;
    if (http_status == 429) return BS_AWS_THROTTLED;
    if (http_status >= 500) return BS_AWS_SERVER_ERROR;
    /* 401 without a code means the credentials were not accepted; a 403 may
     * just as well be a policy denial, which a refresh would not fix. */
    if (http_status == 401) return BS_AWS_AUTH;
    return BS_AWS_CLIENT_ERROR;
}

/* Static lower-case name of an outcome, for logs, metrics and tools. */
const char *bs_aws_outcome_name(bs_aws_outcome o)
{
    switch (o) {
    case BS_AWS_OK:
        return "ok";
    case BS_AWS_THROTTLED:
        return "throttled";
    case BS_AWS_SERVER_ERROR:
        return "server_error";
    case BS_AWS_TRANSPORT:
        return "transport";
    case BS_AWS_AUTH:
        return "auth";
    case BS_AWS_CLIENT_ERROR:
        return "client_error";
    case BS_AWS_TOO_LARGE:
        return "too_large";
    case BS_AWS_NO_CREDENTIALS:
        return "no_credentials";
    case BS_AWS_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

/* Throttling, 5xx and transport errors are retried with backoff. */
bool bs_aws_outcome_retryable(bs_aws_outcome o)
{
    return o == BS_AWS_THROTTLED || o == BS_AWS_SERVER_ERROR || o == BS_AWS_TRANSPORT;
}

/* Copy at most cap-1 bytes of [s, s+n) into out, NUL-terminated. */
static void copy_span(char *out, size_t cap, const uint8_t *s, size_t n)
{
    if (cap == 0) return;
    if (n > cap - 1) n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Reduce "aws.protocoltests#FooError:http://..." to "FooError" in place. */
static void normalise_code(char *code)
{
    char *hash = strrchr(code, '#');
    if (hash) memmove(code, hash + 1, strlen(hash + 1) + 1);
    char *colon = strchr(code, ':');
    if (colon) *colon = '\0';
    size_t n = strlen(code);
    while (n && isspace((unsigned char)code[n - 1]))
        code[--n] = '\0';
}

/* See aws_http.h. */
bool bs_aws_xml_element(bs_cursor *c, const char *tag, bs_cursor *value)
{
    char open[64], close[64];
    int on = snprintf(open, sizeof open, "<%s>", tag);
    int cn = snprintf(close, sizeof close, "</%s>", tag);
    if (on < 0 || cn < 0 || (size_t)cn >= sizeof close) return false;
    bs_cursor probe = *c;
    const uint8_t *before, *text;
    size_t n, text_len;
    if (bs_cursor_take_until_lit(&probe, open, (size_t)on, &before, &n) != BS_OK ||
        bs_cursor_take_until_lit(&probe, close, (size_t)cn, &text, &text_len) != BS_OK)
        return false;
    bs_cursor_init(value, text, text_len);
    *c = probe;
    return true;
}

/* See aws_http.h. */
void bs_aws_xml_text(const bs_cursor *value, char *out, size_t cap)
{
    static const struct {
        const char *entity;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    if (cap == 0) return;
    bs_cursor c = *value;
    size_t o = 0;
    while (o + 1 < cap && bs_cursor_remaining(&c)) {
        bool decoded = false;
        for (size_t k = 0; k < BS_ARRAY_LEN(ents) && bs_cursor_at(&c, '&') && !decoded; k++)
            if (bs_cursor_accept(&c, ents[k].entity, strlen(ents[k].entity))) {
                out[o++] = ents[k].c;
                decoded = true;
            }
        uint8_t b;
        if (!decoded && bs_read_u8(&c, &b) == BS_OK) out[o++] = (char)b;
    }
    out[o] = '\0';
}

/* Parse an untrusted error body of explicit length (never NUL-terminated) into
 * bounded, terminated outputs (see aws_http.h). */
void bs_aws_error_code(const uint8_t *body, size_t len, const char *x_amzn_error_type, char *code,
                       size_t code_cap, char *message, size_t message_cap)
{
    if (code_cap) code[0] = '\0';
    if (message_cap) message[0] = '\0';
    bs_cursor lead;
    bs_cursor_init(&lead, body, len);
    const uint8_t *space;
    (void)bs_cursor_take_while(&lead, bs_byte_is_space, &space);
    if (bs_cursor_at(&lead, '{')) {
        cJSON *j = cJSON_ParseWithLength((const char *)body, len);
        if (j) {
            const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "__type"));
            if (!t) t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "code"));
            if (!t) t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Code"));
            const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "message"));
            if (!m) m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Message"));
            if (t) copy_span(code, code_cap, (const uint8_t *)t, strlen(t));
            if (m) copy_span(message, message_cap, (const uint8_t *)m, strlen(m));
            cJSON_Delete(j);
        }
    } else if (bs_cursor_at(&lead, '<')) {
        bs_cursor doc, v;
        bs_cursor_init(&doc, body, len);
        if (bs_aws_xml_element(&doc, "Code", &v))
            copy_span(code, code_cap, bs_cursor_ptr(&v), bs_cursor_remaining(&v));
        bs_cursor_init(&doc, body, len);
        if (bs_aws_xml_element(&doc, "Message", &v))
            copy_span(message, message_cap, bs_cursor_ptr(&v), bs_cursor_remaining(&v));
    }
    /* The header is authoritative for JSON protocols (restJson bodies may lack __type). */
    if (x_amzn_error_type && *x_amzn_error_type)
        copy_span(code, code_cap, (const uint8_t *)x_amzn_error_type, strlen(x_amzn_error_type));
    if (code_cap) normalise_code(code);
}

/* ---- response header lookup --------------------------------------------- */

/* Linear scan of the last attempt's raw header block; the result points into
 * it and is not NUL-terminated (use *len). */
const char *bs_aws_http_response_header(const bs_aws_http_response *resp, const char *name,
                                        size_t *len)
{
    const call *k = resp->internal_;
    if (!k || !k->resp_headers.data) return NULL;
    size_t nlen = strlen(name);
    bs_cursor c;
    bs_cursor_init(&c, k->resp_headers.data, k->resp_headers.len);
    while (bs_cursor_remaining(&c)) {
        const uint8_t *line;
        size_t n;
        if (bs_cursor_take_until(&c, '\n', &line, &n) != BS_OK) {
            /* the last line without its LF */
            n = bs_cursor_remaining(&c);
            if (bs_read_bytes(&c, n, &line) != BS_OK) break;
        }
        bs_cursor l;
        bs_cursor_init(&l, line, n);
        if (n <= nlen || line[nlen] != ':' || strncasecmp((const char *)line, name, nlen) != 0)
            continue;
        if (bs_cursor_skip(&l, nlen + 1) != BS_OK) continue;
        const uint8_t *blank, *v;
        (void)bs_cursor_take_while(&l, bs_byte_is_blank, &blank);
        size_t vn = bs_cursor_remaining(&l);
        v = bs_cursor_ptr(&l);
        while (vn && (v[vn - 1] == '\r' || bs_byte_is_blank(v[vn - 1])))
            vn--;
        if (len) *len = vn;
        return (const char *)v;
    }
    return NULL;
}

/* Copy a header value into a NUL-terminated buffer ("" if absent). */
static void header_copy(const bs_aws_http_response *r, const char *name, char *out, size_t cap)
{
    size_t n = 0;
    const char *v = bs_aws_http_response_header(r, name, &n);
    copy_span(out, cap, (const uint8_t *)(v ? v : ""), v ? n : 0);
}

/* ---- call lifecycle ----------------------------------------------------- */

/* Free a call and everything it owns; its easy handle must be gone already. */
static void call_free(call *k)
{
    free(k->method);
    free(k->url);
    free(k->service);
    free(k->region);
    free(k->host);
    free(k->path);
    free(k->query);
    for (size_t i = 0; i < k->n_headers; i++) {
        free((char *)k->headers[i].name);
        free((char *)k->headers[i].value);
    }
    free(k->headers);
    if (k->sensitive) {
        if (k->body) OPENSSL_cleanse(k->body, k->body_len);
        if (k->resp_body.data) OPENSSL_cleanse(k->resp_body.data, k->resp_body.cap);
    }
    free(k->body);
    bs_wbuf_free(&k->resp_body);
    bs_wbuf_free(&k->resp_headers);
    free(k);
}

/* Remove `k` from its client's list of live calls. */
static void call_unlink(call *k)
{
    bs_aws_http *c = k->client;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next) k->next->prev = k->prev;
    k->next = k->prev = NULL;
}

/* Attempts of `k`'s service in progress past slow_attempt_ms (gauge). */
static bs_metric *slow_gauge(const call *k)
{
    return bs_metrics_gauge_kv("brokerside_aws_attempts_slow",
                               "AWS requests whose current attempt has run longer than the slow "
                               "threshold (5 s by default), by service",
                               "service", k->service ? k->service : "-", NULL);
}

/* The slow watchdog of an attempt: still no answer after slow_attempt_ms.
 * Logged (once per attempt), counted, listed in /status until it ends. */
static void call_slow_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    call *k = w->data;
    bs_aws_http *c = k->client;
    if (!k->easy || k->slow_noted) return;
    k->slow_noted = true;
    c->stats.slow_attempts++;
    c->stats.slow_in_progress++;
    bs_metric_add(slow_gauge(k), 1);
    bs_metric_add(bs_metrics_counter_kv("brokerside_aws_slow_attempts_total",
                                        "AWS request attempts that ran past the slow threshold, by "
                                        "service",
                                        "service", k->service ? k->service : "-", NULL),
                  1);
    BS_LOG_WARNF(MOD,
                 "%s %s (%s): attempt %u of %u has had no answer for %.1f s (the attempt times out "
                 "after %.1f s)",
                 k->method, k->host ? k->host : k->url, k->service ? k->service : "-",
                 k->attempts, c->max_attempts, ev_now(loop) - k->attempt_start,
                 c->timeout_ms / 1000.0);
}

/* Remove the attempt's easy handle from the multi handle and free it. */
static void call_drop_easy(call *k)
{
    ev_timer_stop(k->client->loop, &k->slow);
    if (k->slow_noted) {
        k->slow_noted = false;
        k->client->stats.slow_in_progress--;
        bs_metric_add(slow_gauge(k), -1);
    }
    if (k->easy) {
        curl_multi_remove_handle(k->client->multi, k->easy);
        curl_easy_cleanup(k->easy);
        k->easy = NULL;
    }
    curl_slist_free_all(k->hl);
    k->hl = NULL;
}

/* Deliver the final outcome to the owner and free the call. */
static void call_finish(call *k, bs_aws_outcome outcome, long status)
{
    bs_aws_http *c = k->client;
    ev_timer_stop(c->loop, &k->timer);
    call_drop_easy(k);
    call_unlink(k);
    char code[128], msg[512], reqid[128];
    bs_aws_http_response r = {
        .outcome = outcome, .status = status, .attempts = k->attempts, .internal_ = k};
    bs_wbuf_put_u8(&k->resp_body, 0); /* NUL-terminate for callers that print it */
    /* A body cut at the limit is never handed out as if it were the response. */
    bool body_ok = bs_wbuf_status(&k->resp_body) == BS_OK && k->resp_body.len > 0 &&
                   outcome != BS_AWS_TOO_LARGE;
    r.body = body_ok ? k->resp_body.data : (const uint8_t *)"";
    r.body_len = body_ok ? k->resp_body.len - 1 : 0;
    char xtype[128];
    header_copy(&r, "x-amzn-ErrorType", xtype, sizeof xtype);
    if (outcome != BS_AWS_OK && status != 0)
        bs_aws_error_code(r.body, r.body_len, xtype, code, sizeof code, msg, sizeof msg);
    else
        code[0] = msg[0] = '\0';
    header_copy(&r, "x-amzn-RequestId", reqid, sizeof reqid);
    if (!reqid[0]) header_copy(&r, "x-amz-request-id", reqid, sizeof reqid);
    r.error_code = code;
    r.error_message = msg;
    r.request_id = reqid;
    r.transport_error = outcome == BS_AWS_TRANSPORT ? k->errbuf : "";
    if (outcome == BS_AWS_OK)
        c->stats.succeeded++;
    else
        c->stats.failed++;
    c->stats.in_flight--;
    if (outcome != BS_AWS_OK && outcome != BS_AWS_CANCELLED)
        BS_LOG_WARNF(MOD, "%s %s: %s after %u attempt(s) (HTTP %ld%s%s%s%s)", k->method,
                     k->service ? k->service : "-", bs_aws_outcome_name(outcome), k->attempts,
                     status, code[0] ? ", " : "", code, k->errbuf[0] ? ": " : "", k->errbuf);
    k->cb(&r, k->arg);
    call_free(k);
}

static void start_attempt(call *k);

/* Backoff delay before attempt number `attempt` (>= 2): full jitter. */
static double backoff_seconds(const bs_aws_http *c, unsigned attempt)
{
    long cap = c->backoff_base_ms;
    for (unsigned i = 2; i < attempt && cap < c->backoff_max_ms; i++)
        cap *= 2;
    if (cap > c->backoff_max_ms) cap = c->backoff_max_ms;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1) r = (uint32_t)rand();
    return (double)(r % (uint32_t)(cap + 1)) / 1000.0;
}

/* The per-call timer: start the next attempt, or deliver a deferred failure. */
static void call_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    call *k = bs_container_of(w, call, timer);
    if (k->finish_on_timer) {
        call_finish(k, k->early_outcome, 0);
        return;
    }
    start_attempt(k);
}

/* Finish from the loop rather than from the current stack (send, or a
 * libcurl callback), so owners never see a callback inside their own call. */
static void call_finish_deferred(call *k, bs_aws_outcome outcome)
{
    k->finish_on_timer = true;
    k->early_outcome = outcome;
    ev_timer_stop(k->client->loop, &k->timer);
    ev_timer_set(&k->timer, 0., 0.);
    ev_timer_start(k->client->loop, &k->timer);
}

/* Grow `w` to hold `need` bytes without realloc: a new buffer, the bytes
 * copied, the old one zeroed and freed (sensitive calls). false: no memory. */
static bool wipe_grow(bs_wbuf *w, size_t need)
{
    if (w->cap >= need) return true;
    size_t cap = w->cap * 2 > need ? w->cap * 2 : need;
    if (cap < 4096) cap = 4096;
    uint8_t *p = malloc(cap);
    if (!p) return false;
    if (w->len) memcpy(p, w->data, w->len);
    if (w->data) OPENSSL_cleanse(w->data, w->cap);
    free(w->data);
    w->data = p;
    w->cap = cap;
    return true;
}

/* libcurl body callback: collect up to max_response_bytes, abort beyond. */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    call *k = ud;
    size_t n = size * nmemb;
    /* The buffer's limit keeps one byte for the terminating NUL: enforce the
     * configured maximum here, exactly. */
    if (n > k->client->max_response_bytes - k->resp_body.len) {
        k->body_over_limit = true;
        return 0; /* abort the transfer */
    }
    /* room for the data and the NUL added at the end, grown without realloc
     * leaving a copy of a secret behind */
    if (k->sensitive && !wipe_grow(&k->resp_body, k->resp_body.len + n + 1)) return 0;
    bs_wbuf_put(&k->resp_body, ptr, n);
    return k->resp_body.failed ? 0 : n;
}

/* libcurl header callback: keep the raw header block of the final response. */
static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    call *k = ud;
    size_t n = size * nmemb;
    /* A new status line (after 100 Continue, say) starts a new header block. */
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) bs_wbuf_reset(&k->resp_headers);
    bs_wbuf_put(&k->resp_headers, ptr, n);
    return k->resp_headers.failed ? 0 : n;
}

/* Append "Name: value" to the slist; false on allocation failure. */
static bool slist_add(struct curl_slist **l, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line) return false;
    /* "Name;" is curl's way to send a header with an empty value. */
    if (*value)
        snprintf(line, n, "%s: %s", name, value);
    else
        snprintf(line, n, "%s;", name);
    struct curl_slist *t = curl_slist_append(*l, line);
    free(line);
    if (!t) return false;
    *l = t;
    return true;
}

/* Sign the request for this attempt and build its header list. */
static bs_status build_headers(call *k, bs_aws_outcome *fail)
{
    bs_aws_http *c = k->client;
    bs_status st = BS_OK;
    bs_aws_credentials creds = {0};
    bs_sigv4_result sig = {0};
    bs_sigv4_header *all = NULL;
    struct curl_slist *tmp;
    *fail = BS_AWS_CLIENT_ERROR;
    bool ok = slist_add(&k->hl, "Host", k->host);
    for (size_t i = 0; ok && i < k->n_headers; i++)
        ok = slist_add(&k->hl, k->headers[i].name, k->headers[i].value);
    /* "Name:" removes a header curl would add: no 100-continue round trip,
     * no Accept that nobody signed. */
    if (ok)
        ok = (tmp = curl_slist_append(k->hl, "Expect:")) && (k->hl = tmp) &&
             (tmp = curl_slist_append(k->hl, "Accept:")) && (k->hl = tmp);
    /* Without a caller's Content-Type, curl would label a body as a form:
     * S3 would store that type with the object. */
    bool has_ctype = false;
    for (size_t i = 0; i < k->n_headers; i++)
        has_ctype = has_ctype || strcasecmp(k->headers[i].name, "content-type") == 0;
    if (ok && !has_ctype) ok = (tmp = curl_slist_append(k->hl, "Content-Type:")) && (k->hl = tmp);
    if (!ok) {
        st = BS_E_NOMEM;
        goto out;
    }
    if (!k->service) goto out;

    st = bs_aws_credentials_get(c->creds, &creds);
    if (st != BS_OK) {
        *fail = BS_AWS_NO_CREDENTIALS;
        goto out;
    }
    all = calloc(k->n_headers + 1, sizeof *all);
    if (!all) {
        st = BS_E_NOMEM;
        goto out;
    }
    all[0] = (bs_sigv4_header){"Host", k->host};
    memcpy(all + 1, k->headers, k->n_headers * sizeof *all);
    bs_sigv4_request sr = {.method = k->method,
                           .path = k->path,
                           .query = k->query,
                           .headers = all,
                           .n_headers = k->n_headers + 1,
                           .body = k->body,
                           .body_len = k->body_len,
                           .payload_hash = k->unsigned_payload ? BS_SIGV4_UNSIGNED_PAYLOAD : NULL};
    bs_sigv4_credentials sc = {creds.access_key_id, creds.secret_access_key, creds.session_token};
    bs_sigv4_options o;
    bs_sigv4_options_init(&o, k->region, k->service, time(NULL));
    o.cache = &c->key_cache;
    st = bs_sigv4_sign(&sr, &sc, &o, &sig);
    if (st != BS_OK) goto out;
    ok = slist_add(&k->hl, "X-Amz-Date", sig.amz_date) &&
         slist_add(&k->hl, "Authorization", sig.authorization);
    if (ok && creds.session_token)
        ok = slist_add(&k->hl, "X-Amz-Security-Token", creds.session_token);
    if (ok && o.add_content_sha256)
        ok = slist_add(&k->hl, "X-Amz-Content-SHA256", sig.payload_hash);
    if (!ok) st = BS_E_NOMEM;
out:
    free(all);
    bs_sigv4_result_free(&sig);
    bs_aws_credentials_clear(&creds);
    return st;
}

/* Start (or restart) the HTTP exchange of `k`. Failures before anything is
 * sent finish the call from the loop. */
static void start_attempt(call *k)
{
    bs_aws_http *c = k->client;
    k->finish_on_timer = false;
    k->attempts++;
    c->stats.attempts++;
    if (k->attempts > 1) c->stats.retries++;
    k->errbuf[0] = '\0';
    k->body_over_limit = false;
    if (k->sensitive && k->resp_body.data) OPENSSL_cleanse(k->resp_body.data, k->resp_body.len);
    bs_wbuf_reset(&k->resp_body);
    bs_wbuf_reset(&k->resp_headers);
    call_drop_easy(k);

    bs_aws_outcome fail = BS_AWS_CLIENT_ERROR;
    bs_status st = build_headers(k, &fail);
    if (st != BS_OK) {
        snprintf(k->errbuf, sizeof k->errbuf, "cannot prepare request: %s", bs_status_name(st));
        call_finish_deferred(k, fail);
        return;
    }
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(k->errbuf, sizeof k->errbuf, "curl_easy_init failed");
        call_finish_deferred(k, BS_AWS_CLIENT_ERROR);
        return;
    }
    k->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, k->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, k);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, k->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->hl);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, k);
    if (strcmp(k->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(k->method, "GET") == 0 && k->body_len == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, k->method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, k->body ? (const char *)k->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->body_len);
    }
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        snprintf(k->errbuf, sizeof k->errbuf, "curl_multi_add_handle failed");
        call_finish_deferred(k, BS_AWS_CLIENT_ERROR);
        return;
    }
    k->attempt_start = ev_now(c->loop);
    ev_timer_set(&k->slow, c->slow_attempt_ms / 1000.0, 0.);
    ev_timer_start(c->loop, &k->slow);
}

/* An attempt finished: classify it, then retry or finish. */
static void attempt_done(call *k, CURLcode rc)
{
    bs_aws_http *c = k->client;
    long status = 0;
    curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
    call_drop_easy(k);
    bs_aws_outcome o;
    if (rc == CURLE_WRITE_ERROR && k->body_over_limit) {
        o = BS_AWS_TOO_LARGE;
    } else if (rc != CURLE_OK) {
        o = BS_AWS_TRANSPORT;
        if (!k->errbuf[0]) snprintf(k->errbuf, sizeof k->errbuf, "%s", curl_easy_strerror(rc));
        status = 0;
    } else if (status >= 200 && status < 300) {
        o = BS_AWS_OK;
    } else {
        char code[128], msg[8], xtype[128];
        bs_aws_http_response tmp = {.internal_ = k};
        header_copy(&tmp, "x-amzn-ErrorType", xtype, sizeof xtype);
        bs_aws_error_code(k->resp_body.data ? k->resp_body.data : (const uint8_t *)"",
                          k->resp_body.len, xtype, code, sizeof code, msg, sizeof msg);
        o = bs_aws_classify(status, code);
    }
    if (o == BS_AWS_AUTH && k->service && !k->auth_retried) {
        /* The credentials were rejected: re-resolve them and try once more now. */
        k->auth_retried = true;
        c->stats.auth_refreshes++;
        bs_aws_credentials_invalidate(c->creds);
        BS_LOG_INFOF(MOD, "%s: credentials rejected (HTTP %ld); refreshing and retrying once",
                     k->service, status);
        ev_timer_set(&k->timer, 0., 0.);
        ev_timer_start(c->loop, &k->timer);
        return;
    }
    unsigned regular = k->attempts - (k->auth_retried ? 1 : 0);
    if (bs_aws_outcome_retryable(o) && regular < c->max_attempts) {
        double d = backoff_seconds(c, regular + 1);
        /* Every retry is visible as it happens, not only the final outcome. */
        BS_LOG_INFOF(MOD, "%s %s (%s): attempt %u of %u failed: %s (HTTP %ld%s%s); retrying in %.3f s",
                     k->method, k->host ? k->host : k->url, k->service ? k->service : "-", regular,
                     c->max_attempts, bs_aws_outcome_name(o), status, k->errbuf[0] ? ", " : "",
                     k->errbuf, d);
        bs_metric_add(bs_metrics_counter_kv("brokerside_aws_retries_total",
                                            "AWS request attempts retried, by service and outcome",
                                            "service", k->service ? k->service : "-", "outcome",
                                            bs_aws_outcome_name(o), NULL),
                      1);
        ev_timer_set(&k->timer, d, 0.);
        ev_timer_start(c->loop, &k->timer);
        return;
    }
    call_finish(k, o, status);
}

/* ---- libcurl <-> libev glue --------------------------------------------- */

/* Hand every finished transfer to attempt_done. */
static void check_multi_info(bs_aws_http *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        call *k = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&k);
        if (k) attempt_done(k, m->data.result);
    }
}

/* A watched socket is ready: let libcurl act on it. */
static void sock_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    sock_watch *s = bs_container_of(w, sock_watch, io);
    bs_aws_http *c = s->client;
    int flags =
        (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running = 0;
    /* `s` may be freed inside this call (CURL_POLL_REMOVE): do not touch it after. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_multi_info(c);
}

/* libcurl's timeout expired: let it run its timers. */
static void curl_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bs_aws_http *c = bs_container_of(w, bs_aws_http, curl_timer);
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(c);
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. */
static int multi_timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    bs_aws_http *c = userp;
    ev_timer_stop(c->loop, &c->curl_timer);
    if (timeout_ms >= 0) {
        /* 0 means "as soon as possible": still go through the loop, as libcurl asks. */
        ev_timer_set(&c->curl_timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(c->loop, &c->curl_timer);
    }
    return 0;
}

/* Stop, unlink and free one socket watcher. */
static void sock_watch_free(bs_aws_http *c, sock_watch *s)
{
    ev_io_stop(c->loop, &s->io);
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    free(s);
}

/* CURLMOPT_SOCKETFUNCTION: keep one ev_io per socket in step with libcurl's wishes. */
static int multi_socket_fn(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    bs_aws_http *c = userp;
    sock_watch *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_watch_free(c, s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1; /* libcurl fails the transfers on this socket */
        s->client = c;
        s->fd = fd;
        s->next = c->socks;
        if (c->socks) c->socks->prev = s;
        c->socks = s;
        ev_init(&s->io, sock_io_cb);
        curl_multi_assign(c->multi, fd, s);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(c->loop, &s->io);
    ev_io_set(&s->io, fd, events);
    ev_io_start(c->loop, &s->io);
    return 0;
}

/* ---- client -------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
/* Every live client, for /status (bs_aws_http_status_json). */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static bs_aws_http *reg_head;
/* Process-wide libcurl initialisation, done once. */
static void curl_global_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Apply defaults, create the multi handle and hook it to the loop (see aws_http.h). */
bs_status bs_aws_http_new(struct ev_loop *loop, const bs_aws_http_config *cfg,
                          bs_aws_credentials_provider *creds, bs_aws_http **out)
{
    static const bs_aws_http_config defaults = {0};
    if (!cfg) cfg = &defaults;
    if (!loop) return BS_E_CONFIG;
    pthread_once(&curl_once, curl_global_once);
    bs_aws_http *c = calloc(1, sizeof *c);
    if (!c) return BS_E_NOMEM;
    c->loop = loop;
    c->creds = creds;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 3000;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    c->max_attempts = cfg->max_attempts ? cfg->max_attempts : 4;
    c->backoff_base_ms = cfg->backoff_base_ms > 0 ? cfg->backoff_base_ms : 100;
    c->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 20000;
    /* An attempt with no answer after this long is reported (log, metric,
     * /status) while it still runs: a hung endpoint is otherwise invisible
     * for max_attempts x timeout_ms. */
    c->slow_attempt_ms = cfg->slow_attempt_ms > 0 ? cfg->slow_attempt_ms
                         : c->timeout_ms / 2 < 5000 ? c->timeout_ms / 2
                                                    : 5000;
    c->max_response_bytes = cfg->max_response_bytes ? cfg->max_response_bytes : 4u << 20;
    c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
    c->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "brokerside/" BS_VERSION);
    c->multi = curl_multi_init();
    if (!c->multi || !c->user_agent || (cfg->ca_file && !c->ca_file)) {
        if (c->multi) curl_multi_cleanup(c->multi);
        free(c->ca_file);
        free(c->user_agent);
        free(c);
        return BS_E_NOMEM;
    }
    ev_init(&c->curl_timer, curl_timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, multi_socket_fn);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, multi_timer_fn);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    pthread_mutex_lock(&reg_lock);
    c->reg_next = reg_head;
    if (reg_head) reg_head->reg_prev = c;
    reg_head = c;
    pthread_mutex_unlock(&reg_lock);
    *out = c;
    return BS_OK;
}

/* Cancel every live call (callbacks run), then release curl and watchers. */
void bs_aws_http_free(bs_aws_http *c)
{
    if (!c) return;
    pthread_mutex_lock(&reg_lock);
    if (c->reg_prev)
        c->reg_prev->reg_next = c->reg_next;
    else if (reg_head == c)
        reg_head = c->reg_next;
    if (c->reg_next) c->reg_next->reg_prev = c->reg_prev;
    pthread_mutex_unlock(&reg_lock);
    while (c->calls) {
        call *k = c->calls;
        k->errbuf[0] = '\0';
        call_finish(k, BS_AWS_CANCELLED, 0);
    }
    curl_multi_cleanup(c->multi);
    while (c->socks)
        sock_watch_free(c, c->socks);
    ev_timer_stop(c->loop, &c->curl_timer);
    bs_sigv4_key_cache_clear(&c->key_cache);
    free(c->ca_file);
    free(c->user_agent);
    free(c);
}

/* See aws_http.h. */
void bs_aws_http_status_json(bs_wbuf *out)
{
    bs_wbuf_put_str(out, "[");
    bool first = true;
    pthread_mutex_lock(&reg_lock);
    for (bs_aws_http *c = reg_head; c; c = c->reg_next) {
        double now = ev_now(c->loop);
        for (call *k = c->calls; k; k = k->next) {
            if (!k->easy || !k->slow_noted) continue;
            bs_wbuf_put_str(out, first ? "{\"service\":" : ",{\"service\":");
            first = false;
            const char *svc = k->service ? k->service : "-";
            bs_wbuf_put_json_string(out, svc, strlen(svc));
            bs_wbuf_put_str(out, ",\"method\":");
            bs_wbuf_put_json_string(out, k->method, strlen(k->method));
            bs_wbuf_put_str(out, ",\"host\":");
            const char *h = k->host ? k->host : "";
            bs_wbuf_put_json_string(out, h, strlen(h));
            bs_wbuf_printf(out, ",\"attempt\":%u,\"max_attempts\":%u,\"running_s\":%.1f}",
                           k->attempts, c->max_attempts, now - k->attempt_start);
        }
    }
    pthread_mutex_unlock(&reg_lock);
    bs_wbuf_put_str(out, "]");
}

/* Copy the counters. */
void bs_aws_http_get_stats(const bs_aws_http *c, bs_aws_http_stats *out)
{
    *out = c->stats;
}

/* A header is safe to put on the wire if its name is a token and neither
 * part can smuggle a line break. */
static bool header_safe(const char *name, const char *value)
{
    if (!name || !*name || !value) return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p)) return false;
    return !strpbrk(value, "\r\n");
}

/* Split the URL into the Host header value, path and query used for signing. */
static bs_status parse_url(call *k)
{
    bs_status st = BS_E_CONFIG;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    if (!u) return BS_E_NOMEM;
    if (curl_url_set(u, CURLUPART_URL, k->url, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) goto out;
    bool https = strcasecmp(scheme, "https") == 0;
    if (!https && strcasecmp(scheme, "http") != 0) goto out;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) goto out;
    (void)curl_url_get(u, CURLUPART_PORT, &port, 0); /* absent unless explicit */
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) goto out;
    CURLUcode qrc = curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (qrc != CURLUE_OK && qrc != CURLUE_NO_QUERY) goto out;
    /* curl omits a default port from Host, so the signature must too. */
    bool default_port = port && strcmp(port, https ? "443" : "80") == 0;
    size_t n = strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
    st = BS_E_NOMEM;
    k->host = malloc(n);
    if (!k->host) goto out;
    if (port && !default_port)
        snprintf(k->host, n, "%s:%s", host, port);
    else
        snprintf(k->host, n, "%s", host);
    k->path = strdup(path && *path ? path : "/");
    k->query = query ? strdup(query) : NULL;
    if (!k->path || (query && !k->query)) goto out;
    st = BS_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return st;
}

/* Validate and deep-copy the request, then start it from the loop (see aws_http.h). */
bs_status bs_aws_http_send(bs_aws_http *c, const bs_aws_http_request *req, bs_aws_http_cb cb,
                           void *arg)
{
    if (!c || !req || !cb || !req->method || !req->url) return BS_E_CONFIG;
    if (req->service && (!req->region || !*req->region || !c->creds)) return BS_E_CONFIG;
    if (req->n_headers > MAX_REQUEST_HEADERS || (req->n_headers && !req->headers))
        return BS_E_MALFORMED;
    for (const char *p = req->method; *p; p++)
        if (!isupper((unsigned char)*p)) return BS_E_MALFORMED;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *n = req->headers[i].name;
        if (!header_safe(n, req->headers[i].value) || strcasecmp(n, "host") == 0 ||
            strcasecmp(n, "authorization") == 0 || strcasecmp(n, "x-amz-date") == 0)
            return BS_E_MALFORMED;
    }
    bs_status st = BS_E_NOMEM;
    call *k = calloc(1, sizeof *k);
    if (!k) return BS_E_NOMEM;
    k->client = c;
    k->cb = cb;
    k->arg = arg;
    k->unsigned_payload = req->unsigned_payload;
    k->sensitive = req->sensitive;
    bs_wbuf_init(&k->resp_body, c->max_response_bytes + 1);
    bs_wbuf_init(&k->resp_headers, MAX_RESPONSE_HEADER_BYTES);
    ev_timer_init(&k->timer, call_timer_cb, 0., 0.);
    ev_timer_init(&k->slow, call_slow_cb, 0., 0.);
    k->slow.data = k;
    k->method = strdup(req->method);
    k->url = strdup(req->url);
    k->service = req->service ? strdup(req->service) : NULL;
    k->region = req->region ? strdup(req->region) : NULL;
    k->headers = calloc(req->n_headers + 1, sizeof *k->headers);
    if (!k->method || !k->url || (req->service && !k->service) || (req->region && !k->region) ||
        !k->headers)
        goto fail;
    for (size_t i = 0; i < req->n_headers; i++) {
        k->headers[i].name = strdup(req->headers[i].name);
        k->headers[i].value = strdup(req->headers[i].value);
        k->n_headers++;
        if (!k->headers[i].name || !k->headers[i].value) goto fail;
    }
    if (req->body_len) {
        k->body = malloc(req->body_len);
        if (!k->body) goto fail;
        memcpy(k->body, req->body, req->body_len);
        k->body_len = req->body_len;
    }
    st = parse_url(k);
    if (st != BS_OK) goto fail;
    k->next = c->calls;
    if (c->calls) c->calls->prev = k;
    c->calls = k;
    c->stats.requests++;
    c->stats.in_flight++;
    /* Even the first attempt starts from the loop: signing may block on a
     * credential refresh, and failures must not call back inside send. */
    ev_timer_start(c->loop, &k->timer);
    return BS_OK;
fail:
    call_free(k);
    return st;
}

/* AWS JSON RPC POST with the protocol headers; `sensitive` as in
 * bs_aws_http_request (see aws_http.h). */
static bs_status json_call(bs_aws_http *c, const char *service, const char *region,
                           const char *endpoint, const char *target, const char *json_body,
                           bool sensitive, bs_aws_http_cb cb, void *arg)
{
    if (!service || !*service || !region || !*region || !target || !*target || !json_body)
        return BS_E_CONFIG;
    char url[512];
    if (!endpoint || !*endpoint) {
        if ((size_t)snprintf(url, sizeof url, "https://%s.%s.amazonaws.com/", service, region) >=
            sizeof url)
            return BS_E_CONFIG;
        endpoint = url;
    }
    bool json10 = strcmp(service, "monitoring") == 0;
    bs_sigv4_header h[3] = {
        {"Content-Type", json10 ? "application/x-amz-json-1.0" : "application/x-amz-json-1.1"},
        {"X-Amz-Target", target},
        {"x-amzn-query-mode", "true"},
    };
    bs_aws_http_request req = {.method = "POST",
                               .url = endpoint,
                               .headers = h,
                               .n_headers = json10 ? 3 : 2,
                               .body = (const uint8_t *)json_body,
                               .body_len = strlen(json_body),
                               .service = service,
                               .region = region,
                               .sensitive = sensitive};
    return bs_aws_http_send(c, &req, cb, arg);
}

/* See aws_http.h. */
bs_status bs_aws_json_call(bs_aws_http *c, const char *service, const char *region,
                           const char *endpoint, const char *target, const char *json_body,
                           bs_aws_http_cb cb, void *arg)
{
    return json_call(c, service, region, endpoint, target, json_body, false, cb, arg);
}

/* See aws_http.h. */
bs_status bs_aws_json_call_sensitive(bs_aws_http *c, const char *service, const char *region,
                                     const char *endpoint, const char *target,
                                     const char *json_body, bs_aws_http_cb cb, void *arg)
{
    return json_call(c, service, region, endpoint, target, json_body, true, cb, arg);
}
