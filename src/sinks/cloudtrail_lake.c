/*
 * cloudtrail_lake.c - the CloudTrail Lake sink: audit events to a channel with
 * PutAuditEvents (restJson1, SigV4 service "cloudtrail-data"), each event
 * mapped to the integration event schema (docs/sinks.md), with per-event
 * partial failure handling.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/sha.h>

#include "aws_sink_internal.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/text.h"

#define MOD "cloudtrail_lake_sink"
#define CTL_MAX_EVENTS 100
/* "up to 1 MB per PutAuditEvents request": the request body, counted in the
 * stricter decimal reading */
#define CTL_MAX_CALL_BYTES 1000000u
#define CTL_BODY_PREFIX "{\"auditEvents\":["
#define CTL_BODY_SUFFIX "]}"
/* integration event schema limits (bytes) */
#define CTL_MAX_ADDITIONAL (28u * 1024)
#define CTL_MAX_PARAMS (100u * 1024)
#define CTL_MAX_STRING 1024u
#define CTL_MAX_TYPE 128u
#define CTL_MAX_ERROR 256u
#define CTL_MAX_ID 128u

typedef struct ctl_sink {
    bs_aws_sink_base base;
    char account[16]; /* the channel owner: recipientAccountId */
    char *url;        /* .../PutAuditEvents?channelArn=...[&externalId=...] */
} ctl_sink;

typedef struct ctl_item {
    size_t entry;            /* index in the batch */
    char id[CTL_MAX_ID + 1]; /* auditEvents[].id */
    char *frag;              /* the auditEvents[] member, JSON text */
    size_t frag_len;
} ctl_item;

typedef struct ctl_job {
    ctl_sink *cs;
    bs_sink_batch *b;
    ctl_item *items;
    size_t n_items;
    size_t start, end; /* the call in flight covers items [start, end) */
} ctl_job;

static void ctl_next(ctl_job *j);

/* See aws_sinks.h. */
void bs_ctlake_sink_limits(bs_sink_limits *l)
{
    memset(l, 0, sizeof *l);
    l->max_events = CTL_MAX_EVENTS;
    /* eventData carries the record twice (mapped fields and the verbatim
     * line), escaped: the sink splits calls further by their real size */
    l->max_bytes = CTL_MAX_CALL_BYTES;
    l->max_event_bytes = CTL_MAX_ADDITIONAL;
    l->max_age_ms = 1000;
}

/* Length of the longest prefix of s (NUL-terminated) of at most max bytes
 * that does not cut a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

/* Add string member `name` = s cut to max bytes (at a character boundary). */
static bool add_cut(cJSON *o, const char *name, const char *s, size_t max)
{
    size_t n = utf8_prefix(s, max);
    char *c = strndup(s, n);
    bool ok = c && cJSON_AddStringToObject(o, name, c);
    free(c);
    return ok;
}

/* A string member of o, or NULL. */
static const char *str_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Bytes of v printed unformatted (0 if it cannot be printed). */
static size_t printed_len(const cJSON *v)
{
    char *t = cJSON_PrintUnformatted(v);
    size_t n = t ? strlen(t) : 0;
    free(t);
    return n;
}

/* True if s is a valid auditEvents[].id: 1..128 of [-_A-Za-z0-9]. */
static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > CTL_MAX_ID) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_') return false;
    return true;
}

/* Move member `name` of `from` (a copy) into `to` when it is an object that
 * fits `max` printed bytes; false only when it is too big. */
static bool copy_object(cJSON *to, const cJSON *from, const char *name, size_t max, char *why,
                        size_t whycap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, name);
    if (!cJSON_IsObject(v)) return true;
    size_t n = printed_len(v);
    if (n > max) {
        snprintf(why, whycap, "%s is %zu bytes, above CloudTrail Lake's %zu", name, n, max);
        return false;
    }
    cJSON_AddItemToObject(to, name, cJSON_Duplicate(v, true));
    return true;
}

/* The member at dotted `path` of o ("metadata.uid"), or NULL. */
static const cJSON *at(const cJSON *o, const char *path)
{
    char key[64];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key) return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        o = cJSON_GetObjectItemCaseSensitive(o, key);
        path += n + (dot ? 1 : 0);
    }
    return o;
}

/* The string at the first of the dotted paths (NULL-terminated list) that
 * holds a non-empty string, or NULL. */
static const char *first_str(const cJSON *o, ...)
{
    va_list ap;
    const char *res = NULL;
    va_start(ap, o);
    for (const char *p = va_arg(ap, const char *); p && !res; p = va_arg(ap, const char *)) {
        const cJSON *v = at(o, p);
        if (cJSON_IsString(v) && v->valuestring[0]) res = v->valuestring;
    }
    va_end(ap);
    return res;
}

/* eventTime into t[21] as yyyy-MM-ddTHH:mm:ssZ (the schema has no
 * fractions): from an ISO 8601 UTC string, or from epoch milliseconds
 * (OCSF `time`). */
static bool event_time(const cJSON *iso, const cJSON *ms, char t[21])
{
    if (cJSON_IsString(iso)) {
        const char *e = iso->valuestring;
        bool ok = strlen(e) >= 19;
        for (size_t i = 0; i < 19 && ok; i++)
            ok = (i == 4 || i == 7)     ? e[i] == '-'
                 : i == 10              ? e[i] == 'T'
                 : (i == 13 || i == 16) ? e[i] == ':'
                                        : isdigit((unsigned char)e[i]) != 0;
        if (!ok) return false;
        memcpy(t, e, 19);
        memcpy(t + 19, "Z", 2);
        return true;
    }
    if (!cJSON_IsNumber(ms) || ms->valuedouble < 0 || ms->valuedouble > 253402300799999.0)
        return false;
    time_t secs = (time_t)(ms->valuedouble / 1000);
    struct tm tm;
    return gmtime_r(&secs, &tm) && strftime(t, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 20;
}

/* See aws_sinks.h. */
bs_status bs_ctlake_event_data(const uint8_t *rec, size_t len, const char *account_id,
                               bs_wbuf *out, char *id, size_t idcap, char *why, size_t whycap)
{
    why[0] = '\0';
    if (len > 0 && rec[len - 1] == '\n') len--;
    char *line = malloc(len + 1);
    BS_ENSURE(line, BS_E_NOMEM);
    memcpy(line, rec, len);
    line[len] = '\0';
    bs_status st = BS_E_MALFORMED;
    cJSON *r = NULL, *d = NULL;
    char t[21];
    if (len == 0 || memchr(line, '\n', len) || !bs_utf8_valid(rec, len)) {
        snprintf(why, whycap, "not one UTF-8 JSON line");
        goto out;
    }
    r = cJSON_ParseWithLength(line, len);
    /* Both audit formats (audit.format): the CloudTrail-like record, or an
     * OCSF event whose CloudTrail-only members sit in `unmapped`. */
    const bool ocsf = cJSON_IsObject(r) && cJSON_IsNumber(at(r, "class_uid"));
    const cJSON *um = ocsf ? at(r, "unmapped") : r; /* where the record's own names live */
    const char *event_id = first_str(r, "eventID", "metadata.uid", NULL),
               *source = first_str(r, "eventSource", "metadata.log_name", NULL),
               *name = first_str(um, "eventName", NULL);
    if (!cJSON_IsObject(r) || !event_id || !source || !name) {
        snprintf(why, whycap,
                 "not an audit event (a JSON object with eventID, eventSource, eventName, "
                 "eventTime, or an OCSF event of brokerside)");
        goto out;
    }
    if (!id_ok(event_id) || strlen(event_id) >= idcap) {
        snprintf(why, whycap, "eventID is not 1 to 128 of A-Z a-z 0-9 - _");
        goto out;
    }
    if (!event_time(at(r, "eventTime"), at(r, "time"), t)) {
        snprintf(why, whycap, "eventTime is not an ISO 8601 UTC time");
        goto out;
    }

    st = BS_E_NOMEM;
    d = cJSON_CreateObject();
    if (!d) goto out;
    const char *version = first_str(r, "eventVersion", "metadata.version", NULL);
    add_cut(d, "version", version ? version : "1.0", 256);
    /* who: the record's userIdentity (also in OCSF's unmapped), else OCSF's actor.user */
    const cJSON *ui = at(um, "userIdentity");
    cJSON *u = cJSON_AddObjectToObject(d, "userIdentity");
    if (!u) goto out;
    const char *utype = cJSON_IsObject(ui) ? first_str(ui, "type", NULL)
                                           : first_str(r, "actor.user.type", NULL);
    const char *principal = cJSON_IsObject(ui) ? first_str(ui, "principal", NULL)
                                               : first_str(r, "actor.user.name", NULL);
    add_cut(u, "type", utype ? utype : "Unknown", CTL_MAX_TYPE);
    add_cut(u, "principalId", principal ? principal : "ANONYMOUS", CTL_MAX_STRING);
    const cJSON *details = cJSON_IsObject(ui) ? ui : at(r, "actor.user");
    if (cJSON_IsObject(details))
        cJSON_AddItemToObject(u, "details", cJSON_Duplicate(details, true));
    const char *agent = first_str(um, "userAgent", NULL);
    if (!agent && ocsf) agent = first_str(r, "actor.app_name", NULL);
    if (agent) add_cut(d, "userAgent", agent, CTL_MAX_STRING);
    add_cut(d, "eventSource", source, CTL_MAX_STRING);
    add_cut(d, "eventName", name, CTL_MAX_STRING);
    cJSON_AddStringToObject(d, "eventTime", t);
    const char *request_id = first_str(um, "requestID", NULL);
    add_cut(d, "UID", request_id ? request_id : event_id, CTL_MAX_STRING);
    st = BS_E_TOO_LARGE;
    if (!ocsf && (!copy_object(d, r, "requestParameters", CTL_MAX_PARAMS, why, whycap) ||
                  !copy_object(d, r, "responseElements", CTL_MAX_PARAMS, why, whycap)))
        goto out;
    if (ocsf) {
        /* the request: OCSF's api and resources; the response: api.response */
        cJSON *req = cJSON_CreateObject();
        if (req && cJSON_IsObject(at(r, "api")))
            cJSON_AddItemToObject(req, "api", cJSON_Duplicate(at(r, "api"), true));
        if (req && cJSON_IsArray(at(r, "resources")))
            cJSON_AddItemToObject(req, "resources", cJSON_Duplicate(at(r, "resources"), true));
        if (req && req->child) cJSON_AddItemToObject(d, "requestParameters", req);
        else cJSON_Delete(req);
        if (!copy_object(d, at(r, "api"), "response", CTL_MAX_PARAMS, why, whycap)) goto out;
        cJSON *resp = cJSON_DetachItemFromObjectCaseSensitive(d, "response");
        if (resp) cJSON_AddItemToObject(d, "responseElements", resp);
        if (printed_len(at(d, "requestParameters")) > CTL_MAX_PARAMS) {
            snprintf(why, whycap, "requestParameters is above CloudTrail Lake's %u bytes",
                     CTL_MAX_PARAMS);
            goto out;
        }
    }
    /* errorCode/errorMessage: what failed, in CloudTrail's sense */
    const cJSON *ec = at(r, "errorCode");
    const char *ename = first_str(r, "errorName", NULL), *reason = first_str(r, "reason", NULL),
               *decision = first_str(r, "decision", NULL);
    char code[64], msg[CTL_MAX_ERROR];
    code[0] = msg[0] = '\0';
    if (ocsf) {
        const cJSON *sid = at(r, "status_id");
        const char *sc = first_str(r, "api.response.error", "status_code", NULL),
                   *sd = first_str(r, "status_detail", "message", NULL);
        if (cJSON_IsNumber(sid) && sid->valueint == 2) {
            snprintf(code, sizeof code, "%.60s", sc ? sc : "Failure");
            snprintf(msg, sizeof msg, "%.250s", sd ? sd : "failed");
        }
    } else if (cJSON_IsNumber(ec) && ec->valueint != 0) {
        if (ename)
            snprintf(code, sizeof code, "%s", ename);
        else
            snprintf(code, sizeof code, "%d", ec->valueint);
        snprintf(msg, sizeof msg, "Kafka error code %d", ec->valueint);
    } else if (decision && strcmp(decision, "DENY") == 0) {
        snprintf(code, sizeof code, "AccessDenied");
        snprintf(msg, sizeof msg, "denied by the authorization policy");
    } else if (reason) {
        snprintf(code, sizeof code, "%.60s", reason);
        snprintf(msg, sizeof msg, "%s: %.200s", name, reason);
    }
    st = BS_E_NOMEM;
    if (code[0]) {
        add_cut(d, "errorCode", code, CTL_MAX_ERROR);
        add_cut(d, "errorMessage", msg, CTL_MAX_ERROR);
    }
    const char *ip = first_str(r, "sourceIPAddress", "src_endpoint.ip", NULL);
    if (ip) add_cut(d, "sourceIPAddress", ip, CTL_MAX_STRING);
    cJSON_AddStringToObject(d, "recipientAccountId", account_id);
    /* additionalEventData: what CloudTrail's fields have no room for, the
     * chain fields for queries, and the line itself so that a trail read back
     * can be verified byte for byte (`brokerside audit verify`) */
    cJSON *a = cJSON_AddObjectToObject(d, "additionalEventData");
    if (!a) goto out;
    cJSON_AddStringToObject(a, "eventID", event_id);
    static const char *const keep[] = {"eventType", "eventCategory", "readOnly",
                                       "chainId",   "sequence",      "previousHash"};
    for (size_t i = 0; i < BS_ARRAY_LEN(keep); i++) {
        const cJSON *v = at(um, keep[i]);
        if (v) cJSON_AddItemToObject(a, keep[i], cJSON_Duplicate(v, true));
    }
    if (ocsf) {
        cJSON_AddStringToObject(a, "format", "ocsf");
        cJSON_AddItemToObject(a, "class_uid", cJSON_Duplicate(at(r, "class_uid"), true));
    }
    if (!cJSON_AddStringToObject(a, "auditRecord", line)) goto out;
    size_t an = printed_len(a);
    if (an > CTL_MAX_ADDITIONAL) {
        snprintf(why, whycap,
                 "the record does not fit additionalEventData (%zu bytes, CloudTrail Lake takes "
                 "%u)",
                 an, CTL_MAX_ADDITIONAL);
        st = BS_E_TOO_LARGE;
        goto out;
    }
    char *text = cJSON_PrintUnformatted(d);
    if (!text) goto out;
    bs_wbuf_put_str(out, text);
    free(text);
    st = bs_wbuf_status(out);
    if (st == BS_OK) snprintf(id, idcap, "%s", event_id);
out:
    if (st == BS_E_NOMEM && !why[0]) snprintf(why, whycap, "out of memory");
    cJSON_Delete(d);
    cJSON_Delete(r);
    free(line);
    return st;
}

/* See aws_sinks.h. */
void bs_ctlake_checksum(const uint8_t *data, size_t len, char out[45])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    bs_wbuf w;
    bs_wbuf_init(&w, 48);
    bs_aws_sink_put_base64(&w, md, sizeof md);
    size_t n = bs_wbuf_status(&w) == BS_OK && w.len == 44 ? 44 : 0;
    memcpy(out, w.data, n);
    out[n] = '\0';
    bs_wbuf_free(&w);
}

/* See aws_sinks.h. */
bs_status bs_ctlake_parse_channel_arn(const char *arn, char *region, size_t region_cap,
                                      char account[13])
{
    /* arn:<partition>:cloudtrail:<region>:<12 digits>:channel/<id> */
    BS_ENSURE(arn && strncmp(arn, "arn:", 4) == 0, BS_E_MALFORMED);
    const char *p = arn + 4, *f[5];
    size_t fl[5];
    for (int i = 0; i < 4; i++) {
        const char *c = strchr(p, ':');
        BS_ENSURE(c, BS_E_MALFORMED);
        f[i] = p;
        fl[i] = (size_t)(c - p);
        p = c + 1;
    }
    f[4] = p;
    fl[4] = strlen(p);
    /* f: partition, service, region, account, resource ("channel/<id>") */
    BS_ENSURE(fl[0] > 0 && fl[1] == 10 && strncmp(f[1], "cloudtrail", 10) == 0, BS_E_MALFORMED);
    BS_ENSURE(fl[2] > 0 && fl[2] < region_cap, BS_E_MALFORMED);
    BS_ENSURE(fl[3] == 12, BS_E_MALFORMED);
    for (size_t i = 0; i < 12; i++)
        BS_ENSURE(isdigit((unsigned char)f[3][i]), BS_E_MALFORMED);
    BS_ENSURE(fl[4] > 8 && strncmp(f[4], "channel/", 8) == 0, BS_E_MALFORMED);
    for (const char *c = f[4] + 8; *c; c++)
        BS_ENSURE(isalnum((unsigned char)*c) || *c == '-' || *c == '_', BS_E_MALFORMED);
    memcpy(region, f[2], fl[2]);
    region[fl[2]] = '\0';
    memcpy(account, f[3], 12);
    account[12] = '\0';
    return BS_OK;
}

/* Count an event the service refused individually, by error code. */
static void ctl_count_failed(const ctl_sink *cs, const char *code)
{
    bs_metric_add(bs_metrics_counter_kv("brokerside_sink_failed_records_total",
                                        "Records a batch API refused individually, by error code",
                                        "sink", cs->base.sink_name, "code", code, NULL),
                  1);
}

/* Free the job. */
static void ctl_free(ctl_job *j)
{
    for (size_t i = 0; i < j->n_items; i++)
        free(j->items[i].frag);
    free(j->items);
    free(j);
}

/* Per-event error codes of PutAuditEvents that clear up by themselves or by
 * the operator (nothing is wrong with the event): resent. */
static bool ctl_entry_retryable(const char *code)
{
    return strcmp(code, "Throttling") == 0 || strcmp(code, "InternalFailure") == 0 ||
           strcmp(code, "AccountNotSubscribed") == 0 ||
           bs_aws_outcome_retryable(bs_aws_classify(0, code));
}

/* Apply a 2xx answer to the items of the call: `successful` ids DELIVERED,
 * `failed` ids by their error code, ids in neither RETRYABLE (resending is
 * safe: the id makes it idempotent). */
static void ctl_apply(ctl_job *j, const bs_aws_http_response *r)
{
    bs_sink_batch *b = j->b;
    cJSON *root = cJSON_ParseWithLength((const char *)r->body, r->body_len);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "successful");
    const cJSON *failed = cJSON_GetObjectItemCaseSensitive(root, "failed");
    if (!cJSON_IsArray(ok) || !cJSON_IsArray(failed))
        BS_LOG_ERRORF(MOD, "sink %s: PutAuditEvents answer has no successful/failed lists",
                      j->cs->base.sink_name);
    size_t n_failed = 0, n_missing = 0;
    for (size_t i = j->start; i < j->end; i++) {
        ctl_item *it = &j->items[i];
        const cJSON *e;
        bool done = false;
        cJSON_ArrayForEach(e, ok)
        {
            const char *id = str_of(e, "id");
            if (id && strcmp(id, it->id) == 0) {
                bs_aws_sink_set(b, it->entry, BS_SINK_DELIVERED, NULL);
                done = true;
                break;
            }
        }
        cJSON_ArrayForEach(e, failed)
        {
            if (done) break;
            const char *id = str_of(e, "id"), *code = str_of(e, "errorCode"),
                       *msg = str_of(e, "errorMessage");
            if (!id || strcmp(id, it->id) != 0) continue;
            if (!code || !*code) code = "Unknown";
            bool retry = ctl_entry_retryable(code);
            bs_aws_sink_set(b, it->entry, retry ? BS_SINK_RETRYABLE : BS_SINK_PERMANENT,
                            "PutAuditEvents event %s: %s %s", it->id, code, msg ? msg : "");
            ctl_count_failed(j->cs, code);
            n_failed++;
            done = true;
        }
        if (!done) {
            bs_aws_sink_set(b, it->entry, BS_SINK_RETRYABLE,
                            "PutAuditEvents: event %s neither successful nor failed in the answer",
                            it->id);
            n_missing++;
        }
    }
    if (n_failed || n_missing)
        BS_LOG_WARNF(MOD, "sink %s: PutAuditEvents: %zu of %zu event(s) failed, %zu unanswered",
                     j->cs->base.sink_name, n_failed, j->end - j->start, n_missing);
    cJSON_Delete(root);
}

/* PutAuditEvents completion: settle the call's items, then the next call. */
static void ctl_done(const bs_aws_http_response *r, void *arg)
{
    ctl_job *j = arg;
    if (j->cs->base.destroying) { /* abandoned: the batch is redelivered next run */
        ctl_free(j);
        return;
    }
    if (r->outcome == BS_AWS_OK) {
        ctl_apply(j, r);
    } else {
        char reason[160];
        bs_sink_result res =
            bs_aws_sink_failure(&j->cs->base, "PutAuditEvents", r, reason, sizeof reason);
        /* a retryable failure (endpoint down, throttled after the client's
         * retries) would fail the remaining calls too: they wait with it */
        size_t last = res == BS_SINK_RETRYABLE ? j->n_items : j->end;
        for (size_t i = j->start; i < last; i++)
            bs_aws_sink_set(j->b, j->items[i].entry, res, "%s", reason);
        if (res == BS_SINK_RETRYABLE) j->end = j->n_items;
    }
    j->start = j->end;
    ctl_next(j);
}

/* Send the next call (items from j->start within 100 events, the body limit
 * and distinct ids), or finish the batch when none is left. */
static void ctl_next(ctl_job *j)
{
    if (j->start >= j->n_items) {
        bs_sink_batch *b = j->b;
        ctl_free(j);
        bs_sink_batch_done(b);
        return;
    }
    size_t bytes = strlen(CTL_BODY_PREFIX) + strlen(CTL_BODY_SUFFIX), e = j->start;
    for (; e < j->n_items && e - j->start < CTL_MAX_EVENTS; e++) {
        size_t add = j->items[e].frag_len + (e > j->start ? 1 : 0);
        if (e > j->start && bytes + add > CTL_MAX_CALL_BYTES) break;
        bool dup = false; /* DuplicatedAuditEventId would refuse the whole call */
        for (size_t k = j->start; k < e && !dup; k++)
            dup = strcmp(j->items[k].id, j->items[e].id) == 0;
        if (dup) break;
        bytes += add;
    }
    j->end = e;
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_str(&w, CTL_BODY_PREFIX);
    for (size_t i = j->start; i < j->end; i++) {
        if (i > j->start) bs_wbuf_put_u8(&w, ',');
        bs_wbuf_put(&w, j->items[i].frag, j->items[i].frag_len);
    }
    bs_wbuf_put_str(&w, CTL_BODY_SUFFIX);
    static const bs_sigv4_header hdr[] = {{"Content-Type", "application/json"}};
    bs_aws_http_request req = {.method = "POST",
                               .url = j->cs->url,
                               .headers = hdr,
                               .n_headers = 1,
                               .body = w.data,
                               .body_len = w.len,
                               .service = "cloudtrail-data",
                               .region = j->cs->base.region};
    bs_status st = bs_wbuf_status(&w);
    if (st == BS_OK) st = bs_aws_http_send(j->cs->base.http, &req, ctl_done, j);
    bs_wbuf_free(&w);
    if (st == BS_OK) return;
    BS_LOG_ERRORF(MOD, "sink %s: cannot send PutAuditEvents: %s", j->cs->base.sink_name,
                  bs_status_name(st));
    for (size_t i = j->start; i < j->n_items; i++)
        bs_aws_sink_set(j->b, j->items[i].entry, BS_SINK_RETRYABLE, "cannot build request: %s",
                        bs_status_name(st));
    j->start = j->n_items;
    ctl_next(j);
}

/* Build the auditEvents[] member of one entry into it->frag, or decide the
 * entry (PERMANENT for what CloudTrail Lake cannot take). */
static bs_status ctl_item_build(ctl_job *j, size_t i, ctl_item *it)
{
    bs_sink_entry *e = &j->b->entries[i];
    bs_wbuf data, frag;
    char why[160], sum[45];
    bs_wbuf_init(&data, 0);
    bs_wbuf_init(&frag, 0);
    bs_status st = bs_ctlake_event_data(e->payload, e->len, j->cs->account, &data, it->id,
                                        sizeof it->id, why, sizeof why);
    if (st == BS_OK) {
        bs_ctlake_checksum(data.data, data.len, sum);
        bs_wbuf_put_str(&frag, "{\"id\":\"");
        bs_wbuf_put_str(&frag, it->id);
        bs_wbuf_put_str(&frag, "\",\"eventData\":");
        bs_wbuf_put_json_string(&frag, (const char *)data.data, data.len);
        bs_wbuf_put_str(&frag, ",\"eventDataChecksum\":\"");
        bs_wbuf_put_str(&frag, sum);
        bs_wbuf_put_str(&frag, "\"}");
        st = bs_wbuf_status(&frag);
        if (st == BS_OK && frag.len + strlen(CTL_BODY_PREFIX CTL_BODY_SUFFIX) > CTL_MAX_CALL_BYTES) {
            snprintf(why, sizeof why, "event of %zu bytes exceeds PutAuditEvents' 1 MB", frag.len);
            st = BS_E_TOO_LARGE;
        }
    }
    if (st == BS_OK) {
        it->entry = i;
        it->frag = (char *)frag.data; /* ownership moves to the item */
        it->frag_len = frag.len;
        frag.data = NULL;
    } else if (st != BS_E_NOMEM) {
        bs_aws_sink_set(j->b, i, BS_SINK_PERMANENT, "%s", why);
        st = BS_OK;
        it->frag = NULL;
    }
    bs_wbuf_free(&data);
    bs_wbuf_free(&frag);
    return st;
}

/* ops->deliver: map the pending entries, then PutAuditEvents calls one after
 * the other (each within 100 events and 1 MB). */
static void ctl_deliver(void *impl, bs_sink_batch *b)
{
    ctl_sink *cs = impl;
    ctl_job *j = calloc(1, sizeof *j);
    bs_status st = BS_E_NOMEM;
    if (j && (j->items = calloc(b->n ? b->n : 1, sizeof *j->items))) {
        j->cs = cs;
        j->b = b;
        st = BS_OK;
        for (size_t i = 0; i < b->n && st == BS_OK; i++) {
            if (b->entries[i].result != BS_SINK_PENDING) continue;
            st = ctl_item_build(j, i, &j->items[j->n_items]);
            if (st == BS_OK && j->items[j->n_items].frag) j->n_items++;
        }
    }
    if (st != BS_OK) {
        BS_LOG_ERRORF(MOD, "sink %s: cannot build PutAuditEvents: %s", cs->base.sink_name,
                      bs_status_name(st));
        for (size_t i = 0; i < b->n; i++)
            if (b->entries[i].result == BS_SINK_PENDING)
                bs_aws_sink_set(b, i, BS_SINK_RETRYABLE, "cannot build request: %s",
                                bs_status_name(st));
        if (j) ctl_free(j);
        bs_sink_batch_done(b);
        return;
    }
    ctl_next(j);
}

/* ops->destroy: cancels the call in flight (its batch is abandoned). */
static void ctl_destroy(void *impl)
{
    ctl_sink *cs = impl;
    if (!cs) return;
    bs_aws_sink_base_free(&cs->base);
    free(cs->url);
    free(cs);
}

static const bs_sink_ops ctl_ops = {
    .type = "cloudtrail_lake", .deliver = ctl_deliver, .destroy = ctl_destroy};

/* See aws_sinks.h. */
bs_status bs_ctlake_sink_new(const bs_ctlake_sink_options *o, const bs_sink_ops **ops, void **impl)
{
    char region[64];
    BS_ENSURE(o && ops && impl && o->channel_arn, BS_E_CONFIG);
    ctl_sink *cs = calloc(1, sizeof *cs);
    BS_ENSURE(cs, BS_E_NOMEM);
    bs_status st = bs_ctlake_parse_channel_arn(o->channel_arn, region, sizeof region, cs->account);
    if (st != BS_OK) {
        BS_LOG_ERRORF(MOD, "cloudtrail_lake sink: %s is not a channel ARN", o->channel_arn);
        free(cs);
        return BS_E_CONFIG;
    }
    st = bs_aws_sink_base_init(&cs->base, &o->c);
    if (st != BS_OK) {
        free(cs);
        return st;
    }
    char base[512];
    bs_wbuf url;
    bs_wbuf_init(&url, 0);
    st = bs_aws_sink_endpoint(&cs->base, "cloudtrail-data", base, sizeof base);
    if (st == BS_OK) {
        bs_wbuf_put_str(&url, base);
        bs_wbuf_put_str(&url, "/PutAuditEvents?channelArn=");
        bs_wbuf_put_percent(&url, o->channel_arn, strlen(o->channel_arn), false);
        if (o->external_id && *o->external_id) {
            bs_wbuf_put_str(&url, "&externalId=");
            bs_wbuf_put_percent(&url, o->external_id, strlen(o->external_id), false);
        }
        bs_wbuf_put_u8(&url, 0);
        st = bs_wbuf_status(&url);
    }
    if (st != BS_OK) {
        bs_wbuf_free(&url);
        ctl_destroy(cs);
        return st;
    }
    cs->url = (char *)url.data;
    *ops = &ctl_ops;
    *impl = cs;
    return BS_OK;
}
