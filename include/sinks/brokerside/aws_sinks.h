/*
 * aws_sinks.h - the AWS sinks (docs/sinks.md): CloudWatch Logs, CloudWatch
 * metrics, S3, Firehose and CloudTrail Lake, as implementations of bs_sink_ops (sink.h).
 *
 * Each constructor returns a static ops table and an implementation the
 * caller hands to bs_sink_create (which then owns it; before that the caller
 * frees it with ops->destroy). Each implementation owns its own bs_aws_http
 * client on `loop` (SigV4, retries with backoff for throttling/5xx/transport
 * errors, credential refresh after auth errors, see aws_http.h); requests
 * that still fail are reported per entry: RETRYABLE (the framework resends
 * after its own backoff, forever by default, so an outage loses nothing) or
 * PERMANENT with the AWS error code as reason (dead-lettered, counted).
 *
 * Name templates (log group/stream, S3 key): `{hostname}`, `{broker_id}`,
 * `{stream}` (audit|metrics|logs); S3 keys also take strftime(3) fields
 * (UTC). Everything here runs on the control thread's loop.
 */
#ifndef BROKERSIDE_AWS_SINKS_H
#define BROKERSIDE_AWS_SINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/aws_credentials.h"
#include "brokerside/aws_http.h"
#include "brokerside/sink.h"
#include "brokerside/spool.h"
#include "brokerside/status.h"

struct ev_loop;

/* Options every AWS sink takes. Strings are copied by the constructors. */
typedef struct bs_aws_sink_common {
    struct ev_loop *loop;               /* required: the control loop */
    bs_aws_credentials_provider *creds; /* required, borrowed: must outlive the sink */
    const char *sink_name;   /* required: the same name as in bs_sink_options (metric labels) */
    const char *region;      /* required, e.g. "eu-west-1" */
    const char *endpoint;    /* NULL = the AWS endpoint of the service in `region`; else an
                                override such as "http://127.0.0.1:5000" (S3: path-style) */
    const char *hostname;    /* {hostname}; NULL = gethostname() */
    const char *broker_id;   /* {broker_id}; NULL = "0" */
    bs_aws_http_config http; /* zero fields take the aws_http.h defaults */
} bs_aws_sink_common;

/* --- CloudWatch Logs (PutLogEvents) --------------------------------------- */
typedef struct bs_cwlogs_sink_options {
    bs_aws_sink_common c;
    const char *log_group;  /* required template, e.g. "/kafka/{broker_id}" */
    const char *log_stream; /* template; NULL = "{hostname}-{stream}" */
    bool auto_create;       /* CreateLogGroup/CreateLogStream when missing (default false) */
} bs_cwlogs_sink_options;

bs_status bs_cwlogs_sink_new(const bs_cwlogs_sink_options *o, const bs_sink_ops **ops,
                             void **impl) BS_WUR;
/* PutLogEvents limits: 10,000 events, 1,048,576 bytes counting 26 per event,
 * events up to 262,118 bytes (256 KiB per event including the 26: larger ones
 * are dead-lettered unsent), 1 s age. */
void bs_cwlogs_sink_limits(bs_sink_limits *l);

/* --- CloudWatch metrics (PutMetricData from EMF events) ------------------- */
typedef struct bs_cwmetrics_sink_options {
    bs_aws_sink_common c;
    bool query_protocol; /* false (default): JSON 1.0; true: form-encoded query API */
} bs_cwmetrics_sink_options;

bs_status bs_cwmetrics_sink_new(const bs_cwmetrics_sink_options *o, const bs_sink_ops **ops,
                                void **impl) BS_WUR;
/* 1000 events, 4 MiB, 1 s (requests are split further by the sink). */
void bs_cwmetrics_sink_limits(bs_sink_limits *l);

/* --- S3 (NDJSON objects) --------------------------------------------------- */
typedef struct bs_s3_sink_options {
    bs_aws_sink_common c;
    const char *bucket;         /* required */
    const char *key_prefix;     /* template with strftime fields; default
                                   "brokerside/{stream}/%Y/%m/%d/{hostname}-{broker_id}-" */
    bool no_gzip;               /* default false: objects are gzip-compressed (.ndjson.gz) */
    size_t multipart_threshold; /* object bytes (after gzip) from which multipart upload is
                                   used; default 8 MiB, at least 5 MiB */
    size_t part_bytes;          /* multipart part size; default 8 MiB, at least 5 MiB */
} bs_s3_sink_options;

bs_status bs_s3_sink_new(const bs_s3_sink_options *o, const bs_sink_ops **ops, void **impl) BS_WUR;
/* One framework batch is one object: closed at `object_bytes` (default 64 MiB)
 * of events or `object_age_s` (default 60) after its first event. */
void bs_s3_sink_limits(bs_sink_limits *l, size_t object_bytes, uint32_t object_age_s);

/* --- Firehose (PutRecordBatch) --------------------------------------------- */
typedef struct bs_firehose_sink_options {
    bs_aws_sink_common c;
    const char *delivery_stream; /* required template ({stream} etc.) */
} bs_firehose_sink_options;

bs_status bs_firehose_sink_new(const bs_firehose_sink_options *o, const bs_sink_ops **ops,
                               void **impl) BS_WUR;
/* 500 records, 4 MiB per call (payload + newline), 1,000 KiB per record, 1 s. */
void bs_firehose_sink_limits(bs_sink_limits *l);

/* --- CloudTrail Lake (PutAuditEvents) -------------------------------------- */
typedef struct bs_ctlake_sink_options {
    bs_aws_sink_common c;
    const char *channel_arn; /* required: arn:<partition>:cloudtrail:<region>:<account>:channel/<id> */
    const char *external_id; /* NULL = none; sent as externalId when the channel policy wants one */
} bs_ctlake_sink_options;

/* Audit events only (each must be an audit record: see bs_ctlake_event_data;
 * others are dead-lettered). BS_E_CONFIG for a channel ARN that is not one. */
bs_status bs_ctlake_sink_new(const bs_ctlake_sink_options *o, const bs_sink_ops **ops,
                             void **impl) BS_WUR;
/* 100 events, 1,000,000 bytes, 1 s; the sink splits calls further by the size
 * of the request body it really sends (eventData is larger than the record). */
void bs_ctlake_sink_limits(bs_sink_limits *l);

/* Map one audit record (one JSON line, a trailing newline allowed) to the
 * eventData of CloudTrail Lake's integration event schema, appended to `out`
 * as JSON text, with the record's eventID into id[idcap] (the auditEvents id).
 * The mapping is docs/sinks.md's table; additionalEventData.auditRecord holds
 * the line byte for byte so the trail can be verified after a read-back.
 * BS_E_MALFORMED for a record that is not an audit event (no eventID,
 * eventSource, eventName or eventTime; an id outside [-_A-Za-z0-9]{1,128}),
 * BS_E_TOO_LARGE when a part exceeds the schema's limits (requestParameters or
 * responseElements above 100 KiB, additionalEventData above 28 KiB), with the
 * reason in why[whycap]; BS_E_NOMEM. */
bs_status bs_ctlake_event_data(const uint8_t *rec, size_t len, const char *account_id,
                               bs_wbuf *out, char *id, size_t idcap, char *why,
                               size_t whycap) BS_WUR;

/* eventDataChecksum: base64 of SHA-256(data), as the service model defines it
 * (`openssl dgst -binary -sha256 | base64`), 44 characters plus a NUL. */
void bs_ctlake_checksum(const uint8_t *data, size_t len, char out[45]);

/* Split a channel ARN: its region into region[region_cap] and its 12-digit
 * account (the recipientAccountId every event must carry) into account.
 * BS_E_MALFORMED for anything but arn:<partition>:cloudtrail:<region>:
 * <12 digits>:channel/<[-_A-Za-z0-9]+>. */
bs_status bs_ctlake_parse_channel_arn(const char *arn, char *region, size_t region_cap,
                                      char account[13]) BS_WUR;

/* --- helpers shared by the sinks (exposed for tests) ---------------------- */

/* Expand `{hostname}`, `{broker_id}`, `{stream}` in `tmpl` into out[outlen];
 * with `t` != 0 also strftime fields (UTC) are expanded. BS_E_MALFORMED for
 * an unknown `{name}`, BS_E_TOO_LARGE if the result does not fit. */
bs_status bs_aws_sink_expand(const char *tmpl, const char *hostname, const char *broker_id,
                             bs_stream stream, int64_t t, char *out, size_t outlen) BS_WUR;

/* The event time of a JSON event in milliseconds since the epoch: the first
 * of the top-level fields "timestamp", "eventTime", "time", "@timestamp",
 * "_aws.Timestamp" that is a number (seconds if below 1e11, else ms) or an
 * RFC 3339 / ISO 8601 UTC string. BS_E_NOT_FOUND if there is none or the
 * payload is not a JSON object. */
bs_status bs_aws_sink_event_time_ms(const uint8_t *payload, size_t len, int64_t *out_ms) BS_WUR;

#endif
