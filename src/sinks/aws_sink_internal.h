/*
 * aws_sink_internal.h - plumbing shared by the AWS sinks (src/sinks only):
 * the common options copied into a base, the per-sink HTTP client, result
 * marking and the mapping of AWS failures to per-entry results.
 */
#ifndef BROKERSIDE_AWS_SINK_INTERNAL_H
#define BROKERSIDE_AWS_SINK_INTERNAL_H

#include "brokerside/aws_sinks.h"
#include "brokerside/buf.h"

typedef struct bs_aws_sink_base {
    struct ev_loop *loop;
    bs_aws_http *http; /* owned */
    char *sink_name, *region, *endpoint /* NULL = AWS */, *hostname, *broker_id;
    bool destroying; /* set while the client is freed: callbacks only release their job */
} bs_aws_sink_base;

/* Copy the common options into `b` and create its HTTP client. BS_E_CONFIG
 * for a missing loop, credential provider, sink name or region. On failure
 * `b` is released again (nothing to free). */
bs_status bs_aws_sink_base_init(bs_aws_sink_base *b, const bs_aws_sink_common *c) BS_WUR;

/* Free the HTTP client first (pending callbacks run with BS_AWS_CANCELLED while
 * b->destroying is true: they must free their job and not touch the batch),
 * then the strings. Safe on a zeroed base. */
void bs_aws_sink_base_free(bs_aws_sink_base *b);

/* Set entry i's result and reason (printf-style; truncated to fit). */
void bs_aws_sink_set(bs_sink_batch *b, size_t i, bs_sink_result r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Decide what a failed response means for the entries it carried:
 * RETRYABLE for retryable outcomes, auth/credential errors and "operator must
 * fix" codes (missing group/stream/bucket/delivery stream, access denied) so
 * that nothing is lost while it is being fixed; PERMANENT for the rest (the
 * request itself is invalid). Logs the failure and counts it in
 * brokerside_sink_api_errors_total{sink,api,code}. Writes the reason into
 * reason[reason_cap]. */
bs_sink_result bs_aws_sink_failure(const bs_aws_sink_base *b, const char *api,
                                   const bs_aws_http_response *r, char *reason, size_t reason_cap);

/* The endpoint URL for `service` (no trailing slash): the override or
 * https://<service>.<region>.amazonaws.com. */
bs_status bs_aws_sink_endpoint(const bs_aws_sink_base *b, const char *service, char *out,
                               size_t outlen) BS_WUR;

/* Standard base64 of data into a wbuf. */
void bs_aws_sink_put_base64(bs_wbuf *w, const uint8_t *data, size_t len);


#endif
