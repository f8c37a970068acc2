/* firehose.c - the Firehose sink: PutRecordBatch with per-record partial failure handling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "aws_sink_internal.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"

#define MOD "firehose_sink"
#define FH_MAX_RECORDS 500
#define FH_MAX_CALL_BYTES (4u * 1024 * 1024)
#define FH_MAX_RECORD_BYTES (1000u * 1024)

typedef struct fh_sink {
    bs_aws_sink_base base;
    char stream_name[BS_STREAM_COUNT][256]; /* expanded delivery stream per spool stream */
    char url[512];
} fh_sink;

typedef struct fh_job {
    fh_sink *fs;
    bs_sink_batch *b;
    size_t n;    /* records sent */
    size_t *idx; /* record i of the request is entry idx[i] of the batch */
} fh_job;

/* See aws_sinks.h. */
void bs_firehose_sink_limits(bs_sink_limits *l)
{
    memset(l, 0, sizeof *l);
    l->max_events = FH_MAX_RECORDS;
    l->max_bytes = FH_MAX_CALL_BYTES;
    l->event_overhead = 1; /* the newline that terminates each NDJSON record */
    l->max_event_bytes = FH_MAX_RECORD_BYTES - 1;
    l->max_age_ms = 1000;
}

/* Count a record Firehose refused, by error code. */
static void fh_count_failed(const fh_sink *fs, const char *code)
{
    bs_metric_add(bs_metrics_counter_kv("brokerside_sink_failed_records_total",
                                        "Records a batch API refused individually, by error code",
                                        "sink", fs->base.sink_name, "code", code, NULL),
                  1);
}

/* Apply a 2xx PutRecordBatch answer: per record DELIVERED, or RETRYABLE /
 * PERMANENT by its ErrorCode. A response we cannot match to the request makes
 * every record RETRYABLE (resending is safe: ids let readers drop duplicates). */
static void fh_apply(fh_job *j, const bs_aws_http_response *r)
{
    bs_sink_batch *b = j->b;
    cJSON *root = cJSON_ParseWithLength((const char *)r->body, r->body_len);
    const cJSON *resps = cJSON_GetObjectItemCaseSensitive(root, "RequestResponses");
    if (!cJSON_IsArray(resps) || (size_t)cJSON_GetArraySize(resps) != j->n) {
        BS_LOG_ERRORF(MOD, "sink %s: PutRecordBatch answer does not list %zu records; resending",
                      j->fs->base.sink_name, j->n);
        for (size_t i = 0; i < j->n; i++)
            bs_aws_sink_set(b, j->idx[i], BS_SINK_RETRYABLE,
                            "PutRecordBatch: unexpected response (no RequestResponses per record)");
        cJSON_Delete(root);
        return;
    }
    size_t i = 0, failed = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, resps)
    {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(it, "ErrorCode");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(it, "ErrorMessage");
        if (cJSON_IsString(code) && *code->valuestring) {
            bs_aws_outcome oc = bs_aws_classify(0, code->valuestring);
            bool retry = bs_aws_outcome_retryable(oc) ||
                         strcmp(code->valuestring, "ServiceUnavailableException") == 0 ||
                         strcmp(code->valuestring, "InternalFailure") == 0;
            bs_aws_sink_set(b, j->idx[i], retry ? BS_SINK_RETRYABLE : BS_SINK_PERMANENT,
                            "PutRecordBatch record %s: %s", code->valuestring,
                            cJSON_IsString(msg) ? msg->valuestring : "");
            fh_count_failed(j->fs, code->valuestring);
            failed++;
        } else {
            bs_aws_sink_set(b, j->idx[i], BS_SINK_DELIVERED, NULL);
        }
        i++;
    }
    if (failed)
        BS_LOG_WARNF(MOD, "sink %s: %zu of %zu records failed in PutRecordBatch",
                     j->fs->base.sink_name, failed, j->n);
    cJSON_Delete(root);
}

/* PutRecordBatch completion. */
static void fh_done(const bs_aws_http_response *r, void *arg)
{
    fh_job *j = arg;
    if (j->fs->base.destroying) goto out; /* abandoned: the batch is redelivered next run */
    if (r->outcome == BS_AWS_OK) {
        fh_apply(j, r);
    } else {
        char reason[160];
        bs_sink_result res =
            bs_aws_sink_failure(&j->fs->base, "PutRecordBatch", r, reason, sizeof reason);
        for (size_t i = 0; i < j->n; i++)
            bs_aws_sink_set(j->b, j->idx[i], res, "%s", reason);
    }
    bs_sink_batch_done(j->b);
out:
    free(j->idx);
    free(j);
}

/* ops->deliver: one PutRecordBatch with the pending entries (the framework's
 * limits keep it within 500 records / 4 MiB). */
static void fh_deliver(void *impl, bs_sink_batch *b)
{
    fh_sink *fs = impl;
    fh_job *j = calloc(1, sizeof *j);
    size_t *idx = calloc(b->n ? b->n : 1, sizeof *idx);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_status st = (j && idx) ? BS_OK : BS_E_NOMEM;
    if (st == BS_OK) {
        j->fs = fs;
        j->b = b;
        j->idx = idx;
        bs_wbuf_put_str(&w, "{\"DeliveryStreamName\":");
        bs_wbuf_put_json_string(&w, fs->stream_name[b->stream], strlen(fs->stream_name[b->stream]));
        bs_wbuf_put_str(&w, ",\"Records\":[");
        for (size_t i = 0; i < b->n; i++) {
            bs_sink_entry *e = &b->entries[i];
            if (e->result != BS_SINK_PENDING) continue;
            bool nl = e->len > 0 && e->payload[e->len - 1] == '\n';
            if (e->len + (nl ? 0 : 1) > FH_MAX_RECORD_BYTES) {
                bs_aws_sink_set(b, i, BS_SINK_PERMANENT,
                                "record of %zu bytes exceeds Firehose's "
                                "1,000 KiB limit",
                                e->len);
                continue;
            }
            bs_wbuf_put_str(&w, j->n ? ",{\"Data\":\"" : "{\"Data\":\"");
            /* base64 of payload+newline without copying: encode full triples of the
             * payload, then the tail together with the newline */
            size_t whole = nl ? e->len : e->len / 3 * 3;
            if (nl) {
                bs_aws_sink_put_base64(&w, e->payload, e->len);
            } else {
                uint8_t tail[3];
                size_t t = e->len - whole;
                memcpy(tail, e->payload + whole, t);
                tail[t] = '\n';
                bs_aws_sink_put_base64(&w, e->payload, whole);
                bs_aws_sink_put_base64(&w, tail, t + 1);
            }
            bs_wbuf_put_str(&w, "\"}");
            idx[j->n++] = i;
        }
        bs_wbuf_put_str(&w, "]}");
        bs_wbuf_put_u8(&w, 0);
        st = bs_wbuf_status(&w);
    }
    if (st == BS_OK && j->n == 0) {
        /* everything was refused locally: nothing to send */
        bs_sink_batch_done(b);
        goto out;
    }
    if (st == BS_OK)
        st = bs_aws_json_call(fs->base.http, "firehose", fs->base.region, fs->url,
                              "Firehose_20150804.PutRecordBatch", (const char *)w.data, fh_done, j);
    if (st == BS_OK) {
        j = NULL; /* owned by the callback now */
        idx = NULL;
        goto out;
    }
    BS_LOG_ERRORF(MOD, "sink %s: cannot send PutRecordBatch: %s", fs->base.sink_name,
                  bs_status_name(st));
    for (size_t i = 0; i < b->n; i++)
        if (b->entries[i].result == BS_SINK_PENDING)
            bs_aws_sink_set(b, i, BS_SINK_RETRYABLE, "cannot build request: %s",
                            bs_status_name(st));
    bs_sink_batch_done(b);
out:
    bs_wbuf_free(&w);
    free(idx);
    free(j);
}

/* ops->destroy: cancels requests in flight (their batches are abandoned). */
static void fh_destroy(void *impl)
{
    fh_sink *fs = impl;
    if (!fs) return;
    bs_aws_sink_base_free(&fs->base);
    free(fs);
}

static const bs_sink_ops fh_ops = {
    .type = "firehose", .deliver = fh_deliver, .destroy = fh_destroy};

/* See aws_sinks.h. */
bs_status bs_firehose_sink_new(const bs_firehose_sink_options *o, const bs_sink_ops **ops,
                               void **impl)
{
    BS_ENSURE(o && ops && impl && o->delivery_stream && *o->delivery_stream, BS_E_CONFIG);
    fh_sink *fs = calloc(1, sizeof *fs);
    BS_ENSURE(fs, BS_E_NOMEM);
    bs_status st = bs_aws_sink_base_init(&fs->base, &o->c);
    if (st != BS_OK) {
        free(fs);
        return st;
    }
    for (int s = 0; s < BS_STREAM_COUNT && st == BS_OK; s++)
        st = bs_aws_sink_expand(o->delivery_stream, fs->base.hostname, fs->base.broker_id,
                                (bs_stream)s, 0, fs->stream_name[s], sizeof fs->stream_name[s]);
    if (st == BS_OK) st = bs_aws_sink_endpoint(&fs->base, "firehose", fs->url, sizeof fs->url - 1);
    if (st == BS_OK) strcat(fs->url, "/");
    if (st != BS_OK) {
        BS_LOG_ERRORF(MOD, "firehose sink: bad delivery stream template or endpoint: %s",
                      bs_status_name(st));
        fh_destroy(fs);
        return st == BS_E_MALFORMED ? BS_E_CONFIG : st;
    }
    *ops = &fh_ops;
    *impl = fs;
    return BS_OK;
}
