/*
 * aws_http.h - asynchronous HTTP client for AWS APIs: libcurl multi driven
 * by a libev loop, SigV4 at send time, retries and error classification.
 *
 * One client belongs to one loop and one thread (the control thread); every
 * function here must be called on that thread. Requests are copied at send;
 * each one ends with exactly one callback, always from the loop (never from
 * inside bs_aws_http_send), also when it fails before any byte is sent.
 *
 * Each attempt is signed afresh (current time, current credentials). Retry
 * policy, per request:
 *   - throttling (HTTP 429 or a throttling error code), 5xx and transport
 *     errors (connect, TLS, reset, timeout) are retried up to max_attempts
 *     attempts in total, after a delay drawn uniformly from
 *     [0, min(backoff_max_ms, backoff_base_ms * 2^(attempt-1))] ("full jitter");
 *   - auth errors (expired token, bad signature, unknown key id, ...) make the
 *     credential provider re-resolve, then the request is retried once at
 *     once (this retry does not count against max_attempts);
 *   - everything else is permanent and reported as is.
 * TLS peer and host verification are always on.
 */
#ifndef BROKERSIDE_AWS_HTTP_H
#define BROKERSIDE_AWS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/aws_credentials.h"
#include "brokerside/buf.h"
#include "brokerside/cursor.h"
#include "brokerside/sigv4.h"
#include "brokerside/status.h"

struct ev_loop;

typedef enum bs_aws_outcome {
    BS_AWS_OK = 0,         /* HTTP 2xx */
    BS_AWS_THROTTLED,      /* retryable: HTTP 429 or a throttling error code */
    BS_AWS_SERVER_ERROR,   /* retryable: HTTP 5xx or a transient service error code */
    BS_AWS_TRANSPORT,      /* retryable: no HTTP response (connect, TLS, reset, timeout) */
    BS_AWS_AUTH,           /* credentials or signature rejected */
    BS_AWS_CLIENT_ERROR,   /* permanent: the request itself is wrong (4xx, access denied, ...) */
    BS_AWS_TOO_LARGE,      /* permanent: response body above max_response_bytes */
    BS_AWS_NO_CREDENTIALS, /* permanent for this call: no credentials could be resolved */
    BS_AWS_CANCELLED,      /* the client was freed first */
} bs_aws_outcome;

/* "ok", "throttled", "server_error", "transport", "auth", "client_error",
 * "too_large", "no_credentials", "cancelled". */
const char *bs_aws_outcome_name(bs_aws_outcome o);

/* True for the outcomes the client retries with backoff. */
bool bs_aws_outcome_retryable(bs_aws_outcome o);

/* Classify an AWS error code (already normalised by bs_aws_error_code, may be
 * "" or NULL) together with the HTTP status (0 = none). The error code wins
 * over the status: a 400 ThrottlingException is THROTTLED. Also usable for
 * per-entry error codes of batch APIs (Firehose, PutLogEvents) with status 0. */
bs_aws_outcome bs_aws_classify(long http_status, const char *error_code);

/* XML of AWS answers (S3 and the query protocols) is flat enough to read by
 * element: no attributes on the elements we read, no nesting of an element
 * in itself. Find the first `<tag>...</tag>` from the cursor on: *value is
 * a cursor over its text (still entity-encoded) and `c` moves past the
 * closing tag. False, with `c` unmoved, when there is none or `tag` is
 * longer than 60 bytes. */
bool bs_aws_xml_element(bs_cursor *c, const char *tag, bs_cursor *value);

/* Copy an element's text (bs_aws_xml_element) into out[cap], decoding the
 * five predefined entities (&amp; &lt; &gt; &quot; &apos;; others stay as
 * written), truncated to cap-1 bytes and NUL-terminated. A cap of 0 writes
 * nothing. */
void bs_aws_xml_text(const bs_cursor *value, char *out, size_t cap);

/* Extract the error code and message of an AWS error response: JSON
 * (`__type` or `code`, `message`/`Message`), XML (`<Code>`, `<Message>`) or
 * the X-Amzn-ErrorType header (may be NULL). Codes are normalised: a
 * "prefix#Name" keeps Name, a "Name:uri" keeps Name. Outputs are always
 * NUL-terminated (empty when absent) and truncated to their capacity. */
void bs_aws_error_code(const uint8_t *body, size_t len, const char *x_amzn_error_type, char *code,
                       size_t code_cap, char *message, size_t message_cap);

typedef struct bs_aws_http_config {
    const char *ca_file;       /* PEM bundle to trust; NULL = system store */
    long connect_timeout_ms;   /* 0 = 3000 */
    long timeout_ms;           /* whole attempt; 0 = 30000 */
    unsigned max_attempts;     /* attempts in total; 0 = 4; 1 = never retry */
    long backoff_base_ms;      /* 0 = 100 */
    long backoff_max_ms;       /* 0 = 20000 */
    size_t max_response_bytes; /* 0 = 4 MiB */
    long slow_attempt_ms;      /* report an attempt still running after this; 0 = min(5000, timeout/2) */
    const char *user_agent;    /* NULL = "brokerside/<version>" */
} bs_aws_http_config;

typedef struct bs_aws_http bs_aws_http;

typedef struct bs_aws_http_request {
    const char *method; /* "GET", "POST", "PUT", "DELETE", "HEAD" */
    const char *url;    /* absolute http:// or https:// URL, query included */
    /* Extra headers, all signed (Host, X-Amz-Date, Authorization and the
     * token are added by the client). Content-Type belongs here. */
    const bs_sigv4_header *headers;
    size_t n_headers;
    const uint8_t *body; /* copied */
    size_t body_len;
    const char *service;   /* SigV4 signing name ("kms", "s3", ...); NULL = unsigned */
    const char *region;    /* required when service is set */
    bool unsigned_payload; /* sign with UNSIGNED-PAYLOAD instead of the body hash */
    /* Secrets in the bodies (KMS plaintext keys): the client's copy of the
     * request body and every response buffer are zeroed (OPENSSL_cleanse)
     * before their memory is freed, grown or reused, so no copy of ours is
     * left in freed memory. libcurl's and OpenSSL's own transfer buffers are
     * out of reach. The callback must still wipe whatever it copies out. */
    bool sensitive;
} bs_aws_http_request;

typedef struct bs_aws_http_response {
    bs_aws_outcome outcome;
    long status;         /* HTTP status of the last attempt; 0 if none */
    const uint8_t *body; /* last attempt's body (NUL-terminated); valid during the callback */
    size_t body_len;
    const char *error_code;      /* normalised AWS error code, "" if none */
    const char *error_message;   /* "" if none */
    const char *transport_error; /* libcurl's message for TRANSPORT, "" otherwise */
    const char *request_id;      /* x-amzn-RequestId / x-amz-request-id, "" if none */
    unsigned attempts;           /* attempts made, auth retry included */
    const void *internal_;       /* for bs_aws_http_response_header */
} bs_aws_http_response;

/* Called once per request on the loop thread. `resp` and everything it points
 * to is valid only during the call. The callback may send new requests but
 * must not free the client. */
typedef void (*bs_aws_http_cb)(const bs_aws_http_response *resp, void *arg);

/* The value of response header `name` (case-insensitive) of the last attempt,
 * as a pointer into a buffer valid during the callback; NULL if absent. */
const char *bs_aws_http_response_header(const bs_aws_http_response *resp, const char *name,
                                        size_t *len);

typedef struct bs_aws_http_stats {
    uint64_t requests;       /* bs_aws_http_send calls accepted */
    uint64_t attempts;       /* HTTP exchanges started */
    uint64_t retries;        /* attempts after the first (auth retries included) */
    uint64_t auth_refreshes; /* credential invalidations after auth errors */
    uint64_t succeeded, failed, in_flight;
    uint64_t slow_attempts;    /* attempts that ran past slow_attempt_ms (WARN logged once each) */
    uint64_t slow_in_progress; /* of those, still running now */
} bs_aws_http_stats;

/* Create a client on `loop`. `creds` is borrowed (may be NULL if only
 * unsigned requests are sent) and must outlive the client; cfg strings are
 * copied. Calls curl_global_init once per process (not thread-safe against
 * other curl_global_init callers: create the first client before threads
 * start). Free with bs_aws_http_free. */
bs_status bs_aws_http_new(struct ev_loop *loop, const bs_aws_http_config *cfg,
                          bs_aws_credentials_provider *creds, bs_aws_http **out) BS_WUR;

/* Cancel every pending request (each callback runs with BS_AWS_CANCELLED,
 * before this returns), stop all watchers and free the client. NULL is fine.
 * Must not be called from inside a callback of this client. */
void bs_aws_http_free(bs_aws_http *c);

/* Queue a request. BS_E_CONFIG for a bad URL or scheme, a signed request
 * without region or credential provider; BS_E_MALFORMED for a header name or
 * value that is unsafe to send; BS_E_NOMEM. On BS_OK `cb` will run exactly once. */
bs_status bs_aws_http_send(bs_aws_http *c, const bs_aws_http_request *req, bs_aws_http_cb cb,
                           void *arg) BS_WUR;

/* An AWS JSON RPC call: POST `json_body` to `endpoint` (NULL =
 * https://<service>.<region>.amazonaws.com/) with X-Amz-Target `target`,
 * signed for `service`/`region`. Content type application/x-amz-json-1.1,
 * except for CloudWatch ("monitoring"), which gets JSON 1.0 and
 * x-amzn-query-mode: true. Same contract as bs_aws_http_send. */
bs_status bs_aws_json_call(bs_aws_http *c, const char *service, const char *region,
                           const char *endpoint, const char *target, const char *json_body,
                           bs_aws_http_cb cb, void *arg) BS_WUR;
/* bs_aws_json_call for bodies that carry secrets (bs_aws_http_request.sensitive). */
bs_status bs_aws_json_call_sensitive(bs_aws_http *c, const char *service, const char *region,
                                     const char *endpoint, const char *target,
                                     const char *json_body, bs_aws_http_cb cb, void *arg) BS_WUR;

/* Counters since creation. */
void bs_aws_http_get_stats(const bs_aws_http *c, bs_aws_http_stats *out);

/* Append a JSON array of the attempts of every live client that are running
 * past their slow threshold: [{"service","method","host","attempt",
 * "max_attempts","running_s"}] ([] when none). Call on the thread that runs
 * the clients' loop (the daemon: the control thread, where /status runs).
 * Retries are logged (INFO) and counted (brokerside_aws_retries_total) as
 * they happen; slow attempts are logged (WARN) and counted
 * (brokerside_aws_slow_attempts_total, gauge brokerside_aws_attempts_slow). */
void bs_aws_http_status_json(bs_wbuf *out);

#endif
