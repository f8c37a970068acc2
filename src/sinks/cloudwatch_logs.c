/* cloudwatch_logs.c - the CloudWatch Logs sink: PutLogEvents, time-sorted chunks under 24 h,
 * rejectedLogEventsInfo, optional creation of the group and stream. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "aws_sink_internal.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/text.h"

#define MOD "cwlogs_sink"
#define CWL_MAX_EVENTS 10000
#define CWL_MAX_BATCH_BYTES 1048576u
#define CWL_EVENT_OVERHEAD 26u
#define CWL_MAX_EVENT_BYTES (262144u - CWL_EVENT_OVERHEAD)
#define CWL_MAX_SPAN_MS (24LL * 3600 * 1000)
#define CWL_MAX_LONE_FAILURES 8 /* see cwl_done: when splitting stops finding single bad events */

typedef struct cwl_sink {
    bs_aws_sink_base base;
    char group[BS_STREAM_COUNT][512];
    char stream[BS_STREAM_COUNT][512];
    bool auto_create;
    char url[512];
} cwl_sink;

typedef struct cwl_ev {
    int64_t ts;
    size_t entry;
} cwl_ev;

typedef enum { CWL_PUT, CWL_CREATE_GROUP, CWL_CREATE_STREAM } cwl_phase;

typedef struct cwl_job {
    cwl_sink *cs;
    bs_sink_batch *b;
    cwl_ev *ev; /* pending events sorted by (time, spool order) */
    size_t n;
    size_t start, end; /* current chunk [start, end) */
    size_t cap;        /* most events in the next chunk: halved to isolate a bad event */
    unsigned lone_failures; /* single-event calls refused in a row (see cwl_done) */
    cwl_phase phase;
    bool created; /* group/stream creation already tried for this job */
} cwl_job;

static void cwl_next(cwl_job *j);

/* See aws_sinks.h. */
void bs_cwlogs_sink_limits(bs_sink_limits *l)
{
    memset(l, 0, sizeof *l);
    l->max_events = CWL_MAX_EVENTS;
    l->max_bytes = CWL_MAX_BATCH_BYTES;
    l->event_overhead = CWL_EVENT_OVERHEAD;
    l->max_event_bytes = CWL_MAX_EVENT_BYTES;
    l->max_age_ms = 1000;
}

/* qsort order: time, then spool order (entries are in spool order). */
static int cwl_cmp(const void *a, const void *b)
{
    const cwl_ev *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/* Count events CloudWatch refused, by reason (too_old, too_new, expired). */
static void cwl_count_rejected(const cwl_sink *cs, const char *reason, int64_t n)
{
    bs_metric_add(
        bs_metrics_counter_kv("brokerside_sink_rejected_log_events_total",
                              "Log events CloudWatch Logs refused (rejectedLogEventsInfo); "
                              "they are dead-lettered",
                              "sink", cs->base.sink_name, "reason", reason, NULL),
        n);
}

/* Finish the job: every entry has its result. */
static void cwl_finish(cwl_job *j)
{
    bs_sink_batch_done(j->b);
    free(j->ev);
    free(j);
}

/* Mark chunk events [from, to) of the current job. */
static void cwl_mark(cwl_job *j, size_t from, size_t to, bs_sink_result r, const char *reason)
{
    for (size_t i = from; i < to; i++)
        bs_aws_sink_set(j->b, j->ev[i].entry, r, "%s", reason ? reason : "");
}

/* Apply rejectedLogEventsInfo of a successful PutLogEvents to the chunk. */
static void cwl_apply(cwl_job *j, const bs_aws_http_response *r)
{
    size_t n = j->end - j->start;
    cwl_mark(j, j->start, j->end, BS_SINK_DELIVERED, NULL);
    cJSON *root = cJSON_ParseWithLength((const char *)r->body, r->body_len);
    const cJSON *rej = cJSON_GetObjectItemCaseSensitive(root, "rejectedLogEventsInfo");
    if (cJSON_IsObject(rej)) {
        const cJSON *too_new = cJSON_GetObjectItemCaseSensitive(rej, "tooNewLogEventStartIndex");
        const cJSON *too_old = cJSON_GetObjectItemCaseSensitive(rej, "tooOldLogEventEndIndex");
        const cJSON *expired = cJSON_GetObjectItemCaseSensitive(rej, "expiredLogEventEndIndex");
        int64_t cnt_new = 0, cnt_old = 0, cnt_exp = 0;
        /* tooNew is inclusive from its index; tooOld and expired are exclusive end indices */
        for (size_t i = 0; i < n; i++) {
            const char *why = NULL;
            if (cJSON_IsNumber(too_new) && too_new->valuedouble >= 0 &&
                (double)i >= too_new->valuedouble)
                why = "too_new", cnt_new++;
            else if (cJSON_IsNumber(expired) && (double)i < expired->valuedouble)
                why = "expired", cnt_exp++;
            else if (cJSON_IsNumber(too_old) && (double)i < too_old->valuedouble)
                why = "too_old", cnt_old++;
            if (why)
                bs_aws_sink_set(j->b, j->ev[j->start + i].entry, BS_SINK_PERMANENT,
                                "PutLogEvents rejected the event: %s (timestamp %lld ms)", why,
                                (long long)j->ev[j->start + i].ts);
        }
        if (cnt_new) cwl_count_rejected(j->cs, "too_new", cnt_new);
        if (cnt_old) cwl_count_rejected(j->cs, "too_old", cnt_old);
        if (cnt_exp) cwl_count_rejected(j->cs, "expired", cnt_exp);
        if (cnt_new + cnt_old + cnt_exp)
            BS_LOG_WARNF(MOD,
                         "sink %s: CloudWatch Logs rejected %lld too old, %lld too new, %lld "
                         "expired events (dead-lettered)",
                         j->cs->base.sink_name, (long long)cnt_old, (long long)cnt_new,
                         (long long)cnt_exp);
    }
    cJSON_Delete(root);
}

/* Completion of any call of the job. */
static void cwl_done(const bs_aws_http_response *r, void *arg)
{
    cwl_job *j = arg;
    if (j->cs->base.destroying) {
        free(j->ev);
        free(j);
        return;
    }
    bs_stream s = j->b->stream;
    if (j->phase != CWL_PUT) {
        bool exists =
            r->outcome != BS_AWS_OK && strcmp(r->error_code, "ResourceAlreadyExistsException") == 0;
        if (r->outcome == BS_AWS_OK || exists) {
            if (j->phase == CWL_CREATE_GROUP) {
                BS_LOG_INFOF(MOD, "sink %s: log group %s %s", j->cs->base.sink_name,
                             j->cs->group[s], exists ? "exists" : "created");
                j->phase = CWL_CREATE_STREAM;
            } else {
                BS_LOG_INFOF(MOD, "sink %s: log stream %s %s", j->cs->base.sink_name,
                             j->cs->stream[s], exists ? "exists" : "created");
                j->phase = CWL_PUT;
            }
            cwl_next(j);
            return;
        }
        char reason[160];
        bs_sink_result res = bs_aws_sink_failure(
            &j->cs->base, j->phase == CWL_CREATE_GROUP ? "CreateLogGroup" : "CreateLogStream", r,
            reason, sizeof reason);
        /* the events never reached CloudWatch: whatever the creation error, keep them */
        (void)res;
        cwl_mark(j, j->start, j->n, BS_SINK_RETRYABLE, reason);
        cwl_finish(j);
        return;
    }
    if (r->outcome == BS_AWS_OK) {
        cwl_apply(j, r);
        j->lone_failures = 0;
        j->start = j->end;
        cwl_next(j);
        return;
    }
    if (r->outcome == BS_AWS_CLIENT_ERROR &&
        strcmp(r->error_code, "InvalidParameterException") == 0 && j->end - j->start > 1) {
        /* The whole call was refused for something in it (an event the
         * service will not take): send halves until the bad events are
         * alone, so only they are dead-lettered. Each bad event costs about
         * log2(chunk size) extra calls. */
        j->cap = (j->end - j->start + 1) / 2;
        BS_LOG_WARNF(MOD,
                     "sink %s: PutLogEvents refused a call of %zu events (%s: %s); resending "
                     "in halves to isolate the bad events",
                     j->cs->base.sink_name, j->end - j->start, r->error_code,
                     r->error_message ? r->error_message : "");
        cwl_next(j);
        return;
    }
    if (j->cs->auto_create && !j->created &&
        strcmp(r->error_code, "ResourceNotFoundException") == 0) {
        j->created = true;
        j->phase = CWL_CREATE_GROUP;
        cwl_next(j);
        return;
    }
    char reason[160];
    bs_sink_result res =
        bs_aws_sink_failure(&j->cs->base, "PutLogEvents", r, reason, sizeof reason);
    if (res == BS_SINK_RETRYABLE) {
        /* the destination is unavailable: later chunks would fail the same way */
        cwl_mark(j, j->start, j->n, res, reason);
        cwl_finish(j);
        return;
    }
    if (j->end - j->start == 1 && ++j->lone_failures >= CWL_MAX_LONE_FAILURES) {
        /* Event after event refused on its own: the call itself is wrong
         * (not one bad event), so stop splitting and dead-letter the rest
         * with the same reason instead of one call per event. */
        cwl_mark(j, j->start, j->n, res, reason);
        cwl_finish(j);
        return;
    }
    cwl_mark(j, j->start, j->end, res, reason);
    j->start = j->end;
    j->cap = SIZE_MAX; /* the bad event is out: the rest goes in full chunks again */
    cwl_next(j);
}

/* Send the next call of the job (creation step or next chunk), or finish. */
static void cwl_next(cwl_job *j)
{
    cwl_sink *cs = j->cs;
    bs_stream s = j->b->stream;
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    const char *target;
    if (j->phase == CWL_CREATE_GROUP || j->phase == CWL_CREATE_STREAM) {
        target = j->phase == CWL_CREATE_GROUP ? "Logs_20140328.CreateLogGroup"
                                              : "Logs_20140328.CreateLogStream";
        bs_wbuf_put_str(&w, "{\"logGroupName\":");
        bs_wbuf_put_json_string(&w, cs->group[s], strlen(cs->group[s]));
        if (j->phase == CWL_CREATE_STREAM) {
            bs_wbuf_put_str(&w, ",\"logStreamName\":");
            bs_wbuf_put_json_string(&w, cs->stream[s], strlen(cs->stream[s]));
        }
        bs_wbuf_put_str(&w, "}");
    } else {
        if (j->start >= j->n) {
            bs_wbuf_free(&w);
            cwl_finish(j);
            return;
        }
        /* a chunk spans less than 24 hours (the framework already bounds count and bytes) */
        j->end = j->start + 1;
        while (j->end < j->n && j->end - j->start < j->cap &&
               j->ev[j->end].ts - j->ev[j->start].ts < CWL_MAX_SPAN_MS)
            j->end++;
        target = "Logs_20140328.PutLogEvents";
        bs_wbuf_put_str(&w, "{\"logGroupName\":");
        bs_wbuf_put_json_string(&w, cs->group[s], strlen(cs->group[s]));
        bs_wbuf_put_str(&w, ",\"logStreamName\":");
        bs_wbuf_put_json_string(&w, cs->stream[s], strlen(cs->stream[s]));
        bs_wbuf_put_str(&w, ",\"logEvents\":[");
        for (size_t i = j->start; i < j->end; i++) {
            const bs_sink_entry *e = &j->b->entries[j->ev[i].entry];
            bs_wbuf_printf(&w, "%s{\"timestamp\":%lld,\"message\":", i > j->start ? "," : "",
                           (long long)j->ev[i].ts);
            bs_wbuf_put_json_string(&w, (const char *)e->payload, e->len);
            bs_wbuf_put_u8(&w, '}');
        }
        bs_wbuf_put_str(&w, "]}");
    }
    bs_wbuf_put_u8(&w, 0);
    bs_status st = bs_wbuf_status(&w);
    if (st == BS_OK)
        st = bs_aws_json_call(cs->base.http, "logs", cs->base.region, cs->url, target,
                              (const char *)w.data, cwl_done, j);
    bs_wbuf_free(&w);
    if (st == BS_OK) return;
    BS_LOG_ERRORF(MOD, "sink %s: cannot send %s: %s", cs->base.sink_name, target,
                  bs_status_name(st));
    cwl_mark(j, j->start, j->n, BS_SINK_RETRYABLE, "cannot build request");
    cwl_finish(j);
}

/* ops->deliver: sort the pending events by time and send them in chunks. */
static void cwl_deliver(void *impl, bs_sink_batch *b)
{
    cwl_sink *cs = impl;
    cwl_job *j = calloc(1, sizeof *j);
    cwl_ev *ev = calloc(b->n ? b->n : 1, sizeof *ev);
    if (!j || !ev) {
        free(j);
        free(ev);
        for (size_t i = 0; i < b->n; i++)
            if (b->entries[i].result == BS_SINK_PENDING)
                bs_aws_sink_set(b, i, BS_SINK_RETRYABLE, "out of memory");
        bs_sink_batch_done(b);
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        bs_sink_entry *e = &b->entries[i];
        if (e->result != BS_SINK_PENDING) continue;
        if (e->len == 0) {
            bs_aws_sink_set(b, i, BS_SINK_PERMANENT, "empty log event");
            continue;
        }
        if (!bs_utf8_valid(e->payload, e->len)) {
            bs_aws_sink_set(b, i, BS_SINK_PERMANENT, "log event is not valid UTF-8");
            continue;
        }
        int64_t ts;
        /* events carry their own time; one without it is stamped when it is shipped */
        if (bs_aws_sink_event_time_ms(e->payload, e->len, &ts) != BS_OK) ts = now_ms;
        ev[n].ts = ts;
        ev[n].entry = i;
        n++;
    }
    qsort(ev, n, sizeof *ev, cwl_cmp);
    j->cs = cs;
    j->b = b;
    j->ev = ev;
    j->n = n;
    j->cap = SIZE_MAX;
    j->phase = CWL_PUT;
    cwl_next(j);
}

/* ops->destroy. */
static void cwl_destroy(void *impl)
{
    cwl_sink *cs = impl;
    if (!cs) return;
    bs_aws_sink_base_free(&cs->base);
    free(cs);
}

static const bs_sink_ops cwl_ops = {
    .type = "cloudwatch_logs", .deliver = cwl_deliver, .destroy = cwl_destroy};

/* See aws_sinks.h. */
bs_status bs_cwlogs_sink_new(const bs_cwlogs_sink_options *o, const bs_sink_ops **ops, void **impl)
{
    BS_ENSURE(o && ops && impl && o->log_group && *o->log_group &&
                  (!o->log_stream || *o->log_stream),
              BS_E_CONFIG);
    const char *log_stream = o->log_stream ? o->log_stream : "{hostname}-{stream}";
    cwl_sink *cs = calloc(1, sizeof *cs);
    BS_ENSURE(cs, BS_E_NOMEM);
    bs_status st = bs_aws_sink_base_init(&cs->base, &o->c);
    if (st != BS_OK) {
        free(cs);
        return st;
    }
    cs->auto_create = o->auto_create;
    for (int s = 0; s < BS_STREAM_COUNT && st == BS_OK; s++) {
        st = bs_aws_sink_expand(o->log_group, cs->base.hostname, cs->base.broker_id, (bs_stream)s,
                                0, cs->group[s], sizeof cs->group[s]);
        if (st == BS_OK)
            st = bs_aws_sink_expand(log_stream, cs->base.hostname, cs->base.broker_id, (bs_stream)s,
                                    0, cs->stream[s], sizeof cs->stream[s]);
        /* CloudWatch: group 1-512 chars, stream 1-512 chars without ':' or '*' */
        if (st == BS_OK &&
            (!cs->group[s][0] || !cs->stream[s][0] || strpbrk(cs->stream[s], ":*") != NULL))
            st = BS_E_CONFIG;
    }
    if (st == BS_OK) st = bs_aws_sink_endpoint(&cs->base, "logs", cs->url, sizeof cs->url - 1);
    if (st == BS_OK) strcat(cs->url, "/");
    if (st != BS_OK) {
        BS_LOG_ERRORF(MOD, "cloudwatch_logs sink: bad log group/stream template or endpoint: %s",
                      bs_status_name(st));
        cwl_destroy(cs);
        return st == BS_E_MALFORMED || st == BS_E_TOO_LARGE ? BS_E_CONFIG : st;
    }
    *ops = &cwl_ops;
    *impl = cs;
    return BS_OK;
}
