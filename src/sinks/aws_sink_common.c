/* aws_sink_common.c - templates, event times and failure mapping shared by the AWS sinks. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "aws_sink_internal.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"

#define MOD "aws_sink"

/* strdup that maps NULL to NULL; *ok is cleared on allocation failure. */
static char *dup_opt(const char *s, bool *ok)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *ok = false;
    return d;
}

/* See aws_sink_internal.h. */
bs_status bs_aws_sink_base_init(bs_aws_sink_base *b, const bs_aws_sink_common *c)
{
    memset(b, 0, sizeof *b);
    BS_ENSURE(c && c->loop && c->creds && c->sink_name && *c->sink_name && c->region && *c->region,
              BS_E_CONFIG);
    char host[256] = "localhost";
    if (!c->hostname && gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    bool ok = true;
    b->loop = c->loop;
    b->sink_name = dup_opt(c->sink_name, &ok);
    b->region = dup_opt(c->region, &ok);
    /* a trailing slash would double up when paths are appended */
    b->endpoint = dup_opt(c->endpoint && *c->endpoint ? c->endpoint : NULL, &ok);
    if (b->endpoint) {
        size_t n = strlen(b->endpoint);
        while (n > 0 && b->endpoint[n - 1] == '/')
            b->endpoint[--n] = '\0';
    }
    b->hostname = dup_opt(c->hostname ? c->hostname : host, &ok);
    b->broker_id = dup_opt(c->broker_id ? c->broker_id : "0", &ok);
    bs_status st = ok ? BS_OK : BS_E_NOMEM;
    if (st == BS_OK) st = bs_aws_http_new(c->loop, &c->http, c->creds, &b->http);
    if (st != BS_OK) bs_aws_sink_base_free(b);
    return st;
}

/* See aws_sink_internal.h. */
void bs_aws_sink_base_free(bs_aws_sink_base *b)
{
    b->destroying = true;
    bs_aws_http_free(b->http);
    free(b->sink_name);
    free(b->region);
    free(b->endpoint);
    free(b->hostname);
    free(b->broker_id);
    memset(b, 0, sizeof *b);
}

/* See aws_sink_internal.h. */
void bs_aws_sink_set(bs_sink_batch *b, size_t i, bs_sink_result r, const char *fmt, ...)
{
    bs_sink_entry *e = &b->entries[i];
    e->result = r;
    e->reason[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->reason, sizeof e->reason, fmt, ap);
        va_end(ap);
    }
}

/* Error codes that mean "the destination is not usable yet" rather than "this
 * request is wrong": the operator creates the resource or fixes the
 * permissions and delivery resumes with nothing lost. */
static bool operator_fixable(const char *code)
{
    static const char *const codes[] = {"ResourceNotFoundException",
                                        "NoSuchBucket",
                                        "AccessDenied",
                                        "AccessDeniedException",
                                        "UnrecognizedClientException",
                                        "InvalidClientTokenId",
                                        "InvalidAccessKeyId",
                                        "SignatureDoesNotMatch",
                                        "IncompleteSignature",
                                        "ExpiredToken",
                                        "ExpiredTokenException",
                                        "ResourceInUseException",
                                        "InvalidSignatureException",
                                        "AuthFailure",
                                        "MissingAuthenticationToken",
                                        "AuthorizationHeaderMalformed",
                                        "PermanentRedirect",
                                        "KMSAccessDeniedException",
                                        "KMSDisabledException",
                                        "KMSNotFoundException",
                                        "KMSInvalidStateException",
                                        "ServiceUnavailableException",
                                        "InvalidSecurity",
                                        "OptInRequired",
                                        "ChannelInsufficientPermission"};
    if (!code || !*code) return false;
    for (size_t i = 0; i < BS_ARRAY_LEN(codes); i++)
        if (strcmp(code, codes[i]) == 0) return true;
    return false;
}

/* See aws_sink_internal.h. */
bs_sink_result bs_aws_sink_failure(const bs_aws_sink_base *b, const char *api,
                                   const bs_aws_http_response *r, char *reason, size_t reason_cap)
{
    const char *code =
        r->error_code && *r->error_code ? r->error_code : bs_aws_outcome_name(r->outcome);
    bs_sink_result res = BS_SINK_PERMANENT;
    if (bs_aws_outcome_retryable(r->outcome) || r->outcome == BS_AWS_AUTH ||
        r->outcome == BS_AWS_NO_CREDENTIALS || operator_fixable(r->error_code))
        res = BS_SINK_RETRYABLE;
    /* 403/404 without a parsable code (HEAD-like S3 answers) are also about the destination */
    if (res == BS_SINK_PERMANENT && !*r->error_code && (r->status == 403 || r->status == 404))
        res = BS_SINK_RETRYABLE;
    snprintf(reason, reason_cap, "%s %s: %s (HTTP %ld) %s%s", api,
             res == BS_SINK_RETRYABLE ? "failed, will retry" : "rejected", code, r->status,
             r->transport_error && *r->transport_error ? r->transport_error : "",
             r->error_message ? r->error_message : "");
    char esc[128];
    bs_metrics_label_escape(code, esc, sizeof esc);
    bs_metric_add(bs_metrics_counter_kv("brokerside_sink_api_errors_total",
                                        "AWS API calls of a sink that failed after the HTTP "
                                        "client's retries, by API and error code",
                                        "sink", b->sink_name, "api", api, "code", code, NULL),
                  1);
    if (r->outcome == BS_AWS_AUTH || r->outcome == BS_AWS_NO_CREDENTIALS ||
        operator_fixable(r->error_code) || res == BS_SINK_PERMANENT)
        BS_LOG_ERRORF(MOD, "sink %s: %s (request id %s)", b->sink_name, reason,
                      r->request_id ? r->request_id : "");
    else
        BS_LOG_WARNF(MOD, "sink %s: %s", b->sink_name, reason);
    return res;
}

/* See aws_sink_internal.h. */
bs_status bs_aws_sink_endpoint(const bs_aws_sink_base *b, const char *service, char *out,
                               size_t outlen)
{
    int n = b->endpoint ? snprintf(out, outlen, "%s", b->endpoint)
                        : snprintf(out, outlen, "https://%s.%s.amazonaws.com", service, b->region);
    return (n < 0 || (size_t)n >= outlen) ? BS_E_TOO_LARGE : BS_OK;
}

/* See aws_sink_internal.h. */
void bs_aws_sink_put_base64(bs_wbuf *w, const uint8_t *d, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!bs_wbuf_reserve(w, (len + 2) / 3 * 4)) return;
    char q[4];
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        q[0] = tab[v >> 18];
        q[1] = tab[(v >> 12) & 63];
        q[2] = tab[(v >> 6) & 63];
        q[3] = tab[v & 63];
        bs_wbuf_put(w, q, 4);
    }
    if (i < len) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0);
        q[0] = tab[v >> 18];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        q[3] = '=';
        bs_wbuf_put(w, q, 4);
    }
}

/* See aws_sinks.h. */
bs_status bs_aws_sink_expand(const char *tmpl, const char *hostname, const char *broker_id,
                             bs_stream stream, int64_t t, char *out, size_t outlen)
{
    BS_ENSURE(tmpl && outlen > 0, BS_E_CONFIG);
    char mid[1024];
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        const char *val = NULL;
        size_t skip = 0;
        if (*p == '{') {
            const char *end = strchr(p, '}');
            BS_ENSURE(end, BS_E_MALFORMED);
            size_t n = (size_t)(end - p - 1);
            if (n == 8 && strncmp(p + 1, "hostname", 8) == 0)
                val = hostname;
            else if (n == 9 && strncmp(p + 1, "broker_id", 9) == 0)
                val = broker_id;
            else if (n == 6 && strncmp(p + 1, "stream", 6) == 0)
                val = bs_stream_name(stream);
            else
                return BS_E_MALFORMED;
            skip = n + 2;
        }
        if (val) {
            size_t vl = strlen(val);
            BS_ENSURE(o + vl < sizeof mid, BS_E_TOO_LARGE);
            memcpy(mid + o, val, vl);
            o += vl;
            p += skip;
        } else {
            BS_ENSURE(o + 1 < sizeof mid, BS_E_TOO_LARGE);
            mid[o++] = *p++;
        }
    }
    mid[o] = '\0';
    if (t == 0) {
        BS_ENSURE(o < outlen, BS_E_TOO_LARGE);
        memcpy(out, mid, o + 1);
        return BS_OK;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    BS_ENSURE(gmtime_r(&tt, &tm), BS_E_MALFORMED);
    /* strftime returns 0 both for "too small" and for an empty result */
    if (o == 0) {
        out[0] = '\0';
        return BS_OK;
    }
    size_t n = strftime(out, outlen, mid, &tm);
    BS_ENSURE(n > 0, BS_E_TOO_LARGE);
    return BS_OK;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Parse "YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm]" into epoch ms. */
static bool parse_iso8601(const char *s, int64_t *ms)
{
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n == 0)
        return false;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return false;
    const char *p = s + n;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3) frac = frac * 10 + (*p - '0');
        if (digits == 0) return false;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2) return false;
        off = (int64_t)(oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
        p += 6;
    } else
        return false; /* a time without zone is ambiguous: not an event time */
    if (*p) return false;
    int64_t secs = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 + sec;
    *ms = (secs - off) * 1000 + frac;
    return true;
}

/* A time field value as epoch ms. */
static bool time_value_ms(const cJSON *v, int64_t *ms)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d < 0 || d > 1e15) return false;
        /* seconds (up to year 5138) vs. milliseconds */
        *ms = d < 1e11 ? (int64_t)(d * 1000.0) : (int64_t)d;
        return true;
    }
    if (cJSON_IsString(v)) return parse_iso8601(v->valuestring, ms);
    return false;
}

/* See aws_sinks.h. */
bs_status bs_aws_sink_event_time_ms(const uint8_t *payload, size_t len, int64_t *out_ms)
{
    static const char *const fields[] = {"timestamp", "eventTime", "time", "@timestamp"};
    /* cheap pre-check: only JSON objects carry a time */
    size_t i = 0;
    while (i < len && isspace(payload[i]))
        i++;
    BS_ENSURE(i < len && payload[i] == '{', BS_E_NOT_FOUND);
    cJSON *root = cJSON_ParseWithLength((const char *)payload, len);
    BS_ENSURE(root, BS_E_NOT_FOUND);
    bs_status st = BS_E_NOT_FOUND;
    for (size_t k = 0; k < BS_ARRAY_LEN(fields) && st != BS_OK; k++)
        if (time_value_ms(cJSON_GetObjectItemCaseSensitive(root, fields[k]), out_ms)) st = BS_OK;
    if (st != BS_OK) {
        const cJSON *aws = cJSON_GetObjectItemCaseSensitive(root, "_aws");
        if (time_value_ms(cJSON_GetObjectItemCaseSensitive(aws, "Timestamp"), out_ms)) st = BS_OK;
    }
    cJSON_Delete(root);
    return st;
}
