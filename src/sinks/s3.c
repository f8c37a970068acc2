/* s3.c - the S3 sink: one NDJSON object (gzip by default) per batch, PutObject or multipart upload,
 * Content-MD5 on every body, stale multipart uploads of this spool aborted after a restart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "aws_sink_internal.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/text.h"

#define MOD "s3_sink"
#define S3_MIN_PART (5u * 1024 * 1024)
#define S3_DEFAULT_PART (8u * 1024 * 1024)
#define S3_MAX_STALE 64
#define S3_MAX_LIST_PAGES 100 /* ListMultipartUploads pages of 1000 looked at per sweep */

typedef struct s3_sink {
    bs_aws_sink_base base;
    char *bucket, *prefix;
    bool gzip;
    size_t threshold, part_bytes;
    char base_url[600]; /* up to and including the bucket, no trailing slash */
    bool swept;         /* stale uploads of this spool already looked for */
} s3_sink;

typedef enum {
    S3_LIST,
    S3_ABORT_STALE,
    S3_PUT,
    S3_CREATE,
    S3_PART,
    S3_COMPLETE,
    S3_ABORT
} s3_phase;

typedef struct s3_job {
    s3_sink *ss;
    bs_sink_batch *b;
    s3_phase phase;
    bs_wbuf body; /* the object */
    char key[1024];
    char upload_id[256];
    char (*etags)[80];
    size_t n_parts, part;
    char (*stale_key)[1024];
    char (*stale_id)[256];
    size_t n_stale, stale_i;
    char list_key_marker[1024], list_id_marker[256]; /* next page of the sweep's listing */
    bool list_more;
    unsigned list_pages;
    char spool_id[40];
    bs_sink_result fail_res; /* result to report after the abort of a failed upload */
    char fail_reason[160];
} s3_job;

static void s3_next(s3_job *j);

/* See aws_sinks.h. */
void bs_s3_sink_limits(bs_sink_limits *l, size_t object_bytes, uint32_t object_age_s)
{
    memset(l, 0, sizeof *l);
    l->max_events = 1000000;
    l->max_bytes = object_bytes ? object_bytes : 64u * 1024 * 1024;
    l->event_overhead = 1;
    l->max_age_ms = (object_age_s ? object_age_s : 60) * 1000u;
}

/* Free the job. */
static void s3_free(s3_job *j)
{
    bs_wbuf_free(&j->body);
    free(j->etags);
    free(j->stale_key);
    free(j->stale_id);
    free(j);
}

/* Complete the batch with one result for every pending entry (an object is all or nothing). */
static void s3_finish(s3_job *j, bs_sink_result r, const char *reason)
{
    for (size_t i = 0; i < j->b->n; i++)
        if (j->b->entries[i].result == BS_SINK_PENDING)
            bs_aws_sink_set(j->b, i, r, "%s", reason ? reason : "");
    bs_sink_batch_done(j->b);
    s3_free(j);
}

/* Copy the decoded text of the first <tag>...</tag> of `doc` into out (see
 * bs_aws_xml_text); false when there is none. `doc` is not moved. */
static bool xml_text(const bs_cursor *doc, const char *tag, char *out, size_t outlen)
{
    bs_cursor c = *doc, v;
    if (!bs_aws_xml_element(&c, tag, &v)) return false;
    bs_aws_xml_text(&v, out, outlen);
    return true;
}

/* xml_text over a whole answer body. */
static bool xml_text_of(const bs_aws_http_response *r, const char *tag, char *out, size_t outlen)
{
    bs_cursor doc;
    bs_cursor_init(&doc, r->body, r->body_len);
    return xml_text(&doc, tag, out, outlen);
}

/* True if the answer body holds an <Error> element. */
static bool xml_has_error(const bs_aws_http_response *r)
{
    bs_cursor c;
    bs_cursor_init(&c, r->body, r->body_len);
    const uint8_t *before;
    size_t n;
    return bs_cursor_take_until_lit(&c, "<Error>", 7, &before, &n) == BS_OK;
}

/* Build the request URL for the object key with `query` ("" or "?..."). */
static bs_status s3_url(const s3_job *j, const char *key, const char *query, bs_wbuf *url)
{
    bs_wbuf_put_str(url, j->ss->base_url);
    if (key) {
        bs_wbuf_put_u8(url, '/');
        bs_wbuf_put_percent(url, key, strlen(key), true);
    }
    bs_wbuf_put_str(url, query);
    bs_wbuf_put_u8(url, 0);
    return bs_wbuf_status(url);
}

/* Base64 MD5 of data for Content-MD5. */
static bs_status s3_md5(const uint8_t *d, size_t len, char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    BS_ENSURE(EVP_Digest(d, len, md, &mdlen, EVP_md5(), NULL) == 1 && mdlen == 16, BS_E_CRYPTO);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_aws_sink_put_base64(&w, md, 16);
    bs_wbuf_put_u8(&w, 0);
    bs_status st = bs_wbuf_status(&w);
    if (st == BS_OK) memcpy(out, w.data, 25);
    bs_wbuf_free(&w);
    return st;
}

/* Handle the answer to ListMultipartUploads: remember our own stale uploads. */
static void s3_listed(s3_job *j, const bs_aws_http_response *r)
{
    bs_cursor doc, uploads, up;
    bs_cursor_init(&doc, r->body, r->body_len);
    uploads = doc;
    char key[1024], id[256];
    while (j->n_stale < S3_MAX_STALE && bs_aws_xml_element(&uploads, "Upload", &up)) {
        if (xml_text(&up, "Key", key, sizeof key) && xml_text(&up, "UploadId", id, sizeof id) &&
            strstr(key, j->spool_id) &&
            strncmp(key, j->ss->prefix, strcspn(j->ss->prefix, "{%")) == 0) {
            snprintf(j->stale_key[j->n_stale], sizeof j->stale_key[0], "%s", key);
            snprintf(j->stale_id[j->n_stale], sizeof j->stale_id[0], "%s", id);
            j->n_stale++;
        }
    }
    /* A truncated listing names where the next page starts. */
    char trunc[8];
    j->list_pages++;
    j->list_more = xml_text(&doc, "IsTruncated", trunc, sizeof trunc) &&
                   strcmp(trunc, "true") == 0 &&
                   xml_text(&doc, "NextKeyMarker", j->list_key_marker,
                            sizeof j->list_key_marker) &&
                   j->list_key_marker[0];
    if (j->list_more &&
        !xml_text(&doc, "NextUploadIdMarker", j->list_id_marker, sizeof j->list_id_marker))
        j->list_id_marker[0] = 0;
    if (j->list_more && (j->list_pages >= S3_MAX_LIST_PAGES || j->n_stale >= S3_MAX_STALE)) {
        BS_LOG_WARNF(MOD,
                     "sink %s: stale-upload sweep stopped after %u pages of "
                     "ListMultipartUploads (%zu uploads of this spool found); the rest is "
                     "looked at after the next restart",
                     j->ss->base.sink_name, j->list_pages, j->n_stale);
        j->list_more = false;
    }
}

/* Completion of every S3 call of a job. */
static void s3_done(const bs_aws_http_response *r, void *arg)
{
    s3_job *j = arg;
    s3_sink *ss = j->ss;
    if (ss->base.destroying) {
        s3_free(j);
        return;
    }
    char reason[160];
    switch (j->phase) {
    case S3_LIST:
        /* the sweep is housekeeping: a failure is logged, delivery goes on */
        if (r->outcome == BS_AWS_OK) {
            s3_listed(j, r);
            if (j->list_more) break; /* next page */
        } else {
            (void)bs_aws_sink_failure(&ss->base, "ListMultipartUploads", r, reason, sizeof reason);
        }
        ss->swept = r->outcome == BS_AWS_OK;
        j->phase = S3_ABORT_STALE;
        break;
    case S3_ABORT_STALE:
        if (r->outcome == BS_AWS_OK || r->status == 404)
            BS_LOG_INFOF(MOD, "sink %s: aborted unfinished upload of %s from an earlier run",
                         ss->base.sink_name, j->stale_key[j->stale_i]);
        else
            (void)bs_aws_sink_failure(&ss->base, "AbortMultipartUpload", r, reason, sizeof reason);
        j->stale_i++;
        break;
    case S3_PUT:
    case S3_COMPLETE:
        if (r->outcome == BS_AWS_OK &&
            (j->phase == S3_PUT || !xml_has_error(r))) {
            bs_metric_add(bs_metrics_counter_kv("brokerside_sink_s3_objects_total",
                                                "Objects S3 confirmed, by upload method", "sink",
                                                ss->base.sink_name, "method",
                                                j->phase == S3_PUT ? "put" : "multipart", NULL),
                          1);
            BS_LOG_DEBUGF(MOD, "sink %s: stored s3://%s/%s (%zu bytes)", ss->base.sink_name,
                          ss->bucket, j->key, j->body.len);
            s3_finish(j, BS_SINK_DELIVERED, NULL);
            return;
        }
        if (r->outcome == BS_AWS_OK) {
            /* CompleteMultipartUpload can fail inside a 200 answer */
            snprintf(reason, sizeof reason, "CompleteMultipartUpload failed inside a 200 answer");
            BS_LOG_ERRORF(MOD, "sink %s: %s", ss->base.sink_name, reason);
            j->fail_res = BS_SINK_RETRYABLE;
        } else {
            j->fail_res = bs_aws_sink_failure(
                &ss->base, j->phase == S3_PUT ? "PutObject" : "CompleteMultipartUpload", r, reason,
                sizeof reason);
        }
        if (j->phase == S3_PUT) {
            s3_finish(j, j->fail_res, reason);
            return;
        }
        snprintf(j->fail_reason, sizeof j->fail_reason, "%s", reason);
        j->phase = S3_ABORT;
        break;
    case S3_CREATE:
        if (r->outcome == BS_AWS_OK && xml_text_of(r, "UploadId", j->upload_id, sizeof j->upload_id) &&
            j->upload_id[0]) {
            j->phase = S3_PART;
            j->part = 0;
            break;
        }
        if (r->outcome == BS_AWS_OK) {
            snprintf(reason, sizeof reason, "CreateMultipartUpload: no UploadId in the answer");
            BS_LOG_ERRORF(MOD, "sink %s: %s", ss->base.sink_name, reason);
            s3_finish(j, BS_SINK_RETRYABLE, reason);
            return;
        }
        s3_finish(j,
                  bs_aws_sink_failure(&ss->base, "CreateMultipartUpload", r, reason, sizeof reason),
                  reason);
        return;
    case S3_PART: {
        size_t len = 0;
        const char *etag =
            r->outcome == BS_AWS_OK ? bs_aws_http_response_header(r, "ETag", &len) : NULL;
        if (etag && len > 0 && len < sizeof j->etags[0]) {
            memcpy(j->etags[j->part], etag, len);
            j->etags[j->part][len] = '\0';
            if (++j->part == j->n_parts) j->phase = S3_COMPLETE;
            break;
        }
        if (r->outcome == BS_AWS_OK) {
            snprintf(reason, sizeof reason, "UploadPart: no ETag in the answer");
            j->fail_res = BS_SINK_RETRYABLE;
        } else {
            j->fail_res = bs_aws_sink_failure(&ss->base, "UploadPart", r, reason, sizeof reason);
        }
        snprintf(j->fail_reason, sizeof j->fail_reason, "%s", reason);
        j->phase = S3_ABORT;
        break;
    }
    case S3_ABORT:
        /* an upload we could not abort is found again by the sweep after a restart */
        if (r->outcome != BS_AWS_OK)
            (void)bs_aws_sink_failure(&ss->base, "AbortMultipartUpload", r, reason, sizeof reason);
        s3_finish(j, j->fail_res, j->fail_reason);
        return;
    }
    s3_next(j);
}

/* Send the job's next call. */
static void s3_next(s3_job *j)
{
    s3_sink *ss = j->ss;
    bs_wbuf url, xml;
    bs_wbuf_init(&url, 0);
    bs_wbuf_init(&xml, 0);
    bs_sigv4_header hdr[3];
    size_t n_hdr = 0;
    char md5[32];
    bs_aws_http_request req = {.service = "s3", .region = ss->base.region};
    bs_status st = BS_OK;
    if (j->phase == S3_ABORT_STALE && j->stale_i >= j->n_stale)
        j->phase = j->body.len >= ss->threshold ? S3_CREATE : S3_PUT;
    switch (j->phase) {
    case S3_LIST:
        /* no prefix= in the query: a '/' there (the usual prefix) breaks signature checks of
         * some S3-compatible servers; our uploads are picked out by key below instead */
        if (!j->list_more) {
            st = s3_url(j, NULL, "?uploads=", &url);
        } else {
            /* query parameters in SigV4 canonical (sorted) order */
            bs_wbuf qq;
            bs_wbuf_init(&qq, 0);
            bs_wbuf_put_str(&qq, "?key-marker=");
            bs_wbuf_put_percent(&qq, j->list_key_marker, strlen(j->list_key_marker), false);
            if (j->list_id_marker[0]) {
                bs_wbuf_put_str(&qq, "&upload-id-marker=");
                bs_wbuf_put_percent(&qq, j->list_id_marker, strlen(j->list_id_marker), false);
            }
            bs_wbuf_put_str(&qq, "&uploads=");
            bs_wbuf_put_u8(&qq, 0);
            st = bs_wbuf_status(&qq);
            if (st == BS_OK) st = s3_url(j, NULL, (const char *)qq.data, &url);
            bs_wbuf_free(&qq);
        }
        req.method = "GET";
        break;
    case S3_ABORT_STALE:
    case S3_ABORT: {
        const char *key = j->phase == S3_ABORT ? j->key : j->stale_key[j->stale_i];
        bs_wbuf qq;
        bs_wbuf_init(&qq, 0);
        bs_wbuf_put_str(&qq, "?uploadId=");
        bs_wbuf_put_percent(&qq, j->phase == S3_ABORT ? j->upload_id : j->stale_id[j->stale_i], strlen(j->phase == S3_ABORT ? j->upload_id : j->stale_id[j->stale_i]), false);
        bs_wbuf_put_u8(&qq, 0);
        st = bs_wbuf_status(&qq);
        if (st == BS_OK) st = s3_url(j, key, (const char *)qq.data, &url);
        bs_wbuf_free(&qq);
        req.method = "DELETE";
        break;
    }
    case S3_PUT:
        st = s3_url(j, j->key, "", &url);
        if (st == BS_OK) st = s3_md5(j->body.data, j->body.len, md5);
        hdr[n_hdr++] = (bs_sigv4_header){"Content-MD5", md5};
        hdr[n_hdr++] = (bs_sigv4_header){"Content-Type",
                                         ss->gzip ? "application/gzip" : "application/x-ndjson"};
        req.method = "PUT";
        req.body = j->body.data;
        req.body_len = j->body.len;
        break;
    case S3_CREATE:
        st = s3_url(j, j->key, "?uploads=", &url);
        hdr[n_hdr++] = (bs_sigv4_header){"Content-Type",
                                         ss->gzip ? "application/gzip" : "application/x-ndjson"};
        req.method = "POST";
        break;
    case S3_PART: {
        size_t off = j->part * ss->part_bytes;
        size_t len = j->part + 1 == j->n_parts ? j->body.len - off : ss->part_bytes;
        bs_wbuf qq;
        bs_wbuf_init(&qq, 0);
        bs_wbuf_printf(&qq, "?partNumber=%zu&uploadId=", j->part + 1);
        bs_wbuf_put_percent(&qq, j->upload_id, strlen(j->upload_id), false);
        bs_wbuf_put_u8(&qq, 0);
        st = bs_wbuf_status(&qq);
        if (st == BS_OK) st = s3_url(j, j->key, (const char *)qq.data, &url);
        bs_wbuf_free(&qq);
        if (st == BS_OK) st = s3_md5(j->body.data + off, len, md5);
        hdr[n_hdr++] = (bs_sigv4_header){"Content-MD5", md5};
        req.method = "PUT";
        req.body = j->body.data + off;
        req.body_len = len;
        break;
    }
    case S3_COMPLETE: {
        bs_wbuf qq;
        bs_wbuf_init(&qq, 0);
        bs_wbuf_put_str(&qq, "?uploadId=");
        bs_wbuf_put_percent(&qq, j->upload_id, strlen(j->upload_id), false);
        bs_wbuf_put_u8(&qq, 0);
        st = bs_wbuf_status(&qq);
        if (st == BS_OK) st = s3_url(j, j->key, (const char *)qq.data, &url);
        bs_wbuf_free(&qq);
        bs_wbuf_put_str(
            &xml, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for (size_t i = 0; i < j->n_parts; i++)
            bs_wbuf_printf(&xml, "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
                           j->etags[i]);
        bs_wbuf_put_str(&xml, "</CompleteMultipartUpload>");
        if (st == BS_OK) st = bs_wbuf_status(&xml);
        if (st == BS_OK) st = s3_md5(xml.data, xml.len, md5);
        hdr[n_hdr++] = (bs_sigv4_header){"Content-MD5", md5};
        hdr[n_hdr++] = (bs_sigv4_header){"Content-Type", "application/xml"};
        req.method = "POST";
        req.body = xml.data;
        req.body_len = xml.len;
        break;
    }
    }
    if (st == BS_OK) {
        req.url = (const char *)url.data;
        req.headers = hdr;
        req.n_headers = n_hdr;
        st = bs_aws_http_send(ss->base.http, &req, s3_done, j);
    }
    bs_wbuf_free(&url);
    bs_wbuf_free(&xml);
    if (st == BS_OK) return;
    BS_LOG_ERRORF(MOD, "sink %s: cannot send S3 request: %s", ss->base.sink_name,
                  bs_status_name(st));
    s3_finish(j, BS_SINK_RETRYABLE, "cannot build S3 request");
}

/* Build the object: NDJSON of the pending entries, gzip-compressed unless disabled. */
static bs_status s3_build(s3_job *j)
{
    bs_sink_batch *b = j->b;
    bs_wbuf raw;
    bs_wbuf_init(&raw, 0);
    size_t lines = 0;
    for (size_t i = 0; i < b->n; i++) {
        bs_sink_entry *e = &b->entries[i];
        if (e->result != BS_SINK_PENDING) continue;
        size_t len = e->len;
        if (len > 0 && e->payload[len - 1] == '\n') len--;
        if (len == 0 || memchr(e->payload, '\n', len)) {
            /* one event must be exactly one NDJSON line */
            bs_aws_sink_set(b, i, BS_SINK_PERMANENT,
                            len ? "event contains a newline (not one NDJSON line)" : "empty event");
            continue;
        }
        bs_wbuf_put(&raw, e->payload, len);
        bs_wbuf_put_u8(&raw, '\n');
        lines++;
    }
    bs_status st = bs_wbuf_status(&raw);
    if (st == BS_OK && lines == 0) st = BS_E_NOT_FOUND;
    if (st == BS_OK && !j->ss->gzip) {
        j->body = raw; /* moved */
        bs_wbuf_init(&raw, 0);
    } else if (st == BS_OK) {
        z_stream z;
        memset(&z, 0, sizeof z);
        /* 15 + 16: gzip framing */
        if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            st = BS_E_NOMEM;
        size_t bound = st == BS_OK ? deflateBound(&z, raw.len) + 64 : 0;
        if (st == BS_OK && !bs_wbuf_reserve(&j->body, bound)) st = BS_E_NOMEM;
        if (st == BS_OK) {
            z.next_in = raw.data;
            z.avail_in = (uInt)raw.len;
            z.next_out = j->body.data;
            z.avail_out = (uInt)bound;
            if (deflate(&z, Z_FINISH) != Z_STREAM_END)
                st = BS_E_NOMEM;
            else
                j->body.len = bound - z.avail_out;
        }
        deflateEnd(&z);
    }
    bs_wbuf_free(&raw);
    return st;
}

/* ops->deliver: one object per batch. */
static void s3_deliver(void *impl, bs_sink_batch *b)
{
    s3_sink *ss = impl;
    s3_job *j = calloc(1, sizeof *j);
    if (!j) {
        for (size_t i = 0; i < b->n; i++)
            if (b->entries[i].result == BS_SINK_PENDING)
                bs_aws_sink_set(b, i, BS_SINK_RETRYABLE, "out of memory");
        bs_sink_batch_done(b);
        return;
    }
    j->ss = ss;
    j->b = b;
    bs_wbuf_init(&j->body, 0);
    bs_status st = s3_build(j);
    if (st == BS_E_NOT_FOUND) {
        s3_finish(j, BS_SINK_PERMANENT, "no event can be an NDJSON line");
        return;
    }
    size_t first = 0;
    while (first < b->n && b->entries[first].result != BS_SINK_PENDING)
        first++;
    /* key: template expanded at the first event's time + "<spool id>-<first seq>": a batch
     * redelivered after a crash overwrites its own object instead of adding one */
    int64_t ms = 0;
    if (first < b->n &&
        bs_aws_sink_event_time_ms(b->entries[first].payload, b->entries[first].len, &ms) != BS_OK)
        ms = (int64_t)time(NULL) * 1000;
    char pre[900];
    if (st == BS_OK)
        st = bs_aws_sink_expand(ss->prefix, ss->base.hostname, ss->base.broker_id, b->stream,
                                ms / 1000 > 0 ? ms / 1000 : 1, pre, sizeof pre);
    if (st == BS_OK && first < b->n) {
        int n = snprintf(j->key, sizeof j->key, "%s%s%s", pre, b->entries[first].id,
                         ss->gzip ? ".ndjson.gz" : ".ndjson");
        if (n < 0 || (size_t)n >= sizeof j->key) st = BS_E_TOO_LARGE;
        const char *dash = strchr(b->entries[first].id, '-');
        size_t idl = dash ? (size_t)(dash - b->entries[first].id) : 0;
        snprintf(j->spool_id, sizeof j->spool_id, "%.*s", (int)idl, b->entries[first].id);
    }
    if (st == BS_OK) {
        j->n_parts = (j->body.len + ss->part_bytes - 1) / ss->part_bytes;
        j->etags = calloc(j->n_parts ? j->n_parts : 1, sizeof *j->etags);
        j->stale_key = calloc(S3_MAX_STALE, sizeof *j->stale_key);
        j->stale_id = calloc(S3_MAX_STALE, sizeof *j->stale_id);
        if (!j->etags || !j->stale_key || !j->stale_id) st = BS_E_NOMEM;
    }
    if (st != BS_OK) {
        BS_LOG_ERRORF(MOD, "sink %s: cannot build the object: %s", ss->base.sink_name,
                      bs_status_name(st));
        s3_finish(j, BS_SINK_RETRYABLE, "cannot build the object");
        return;
    }
    j->phase = ss->swept || !j->spool_id[0] ? S3_ABORT_STALE : S3_LIST;
    s3_next(j);
}

/* ops->destroy. */
static void s3_destroy(void *impl)
{
    s3_sink *ss = impl;
    if (!ss) return;
    bs_aws_sink_base_free(&ss->base);
    free(ss->bucket);
    free(ss->prefix);
    free(ss);
}

static const bs_sink_ops s3_ops = {.type = "s3", .deliver = s3_deliver, .destroy = s3_destroy};

/* True for a bucket name S3 accepts (3-63 of [a-z0-9.-], starting and ending alnum). */
static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63) return false;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
              b[i] == '-'))
            return false;
    return b[0] != '-' && b[0] != '.' && b[n - 1] != '-' && b[n - 1] != '.';
}

/* See aws_sinks.h. */
bs_status bs_s3_sink_new(const bs_s3_sink_options *o, const bs_sink_ops **ops, void **impl)
{
    BS_ENSURE(o && ops && impl && o->bucket && bucket_ok(o->bucket), BS_E_CONFIG);
    BS_ENSURE(!o->multipart_threshold || o->multipart_threshold >= S3_MIN_PART, BS_E_CONFIG);
    BS_ENSURE(!o->part_bytes || o->part_bytes >= S3_MIN_PART, BS_E_CONFIG);
    s3_sink *ss = calloc(1, sizeof *ss);
    BS_ENSURE(ss, BS_E_NOMEM);
    bs_status st = bs_aws_sink_base_init(&ss->base, &o->c);
    if (st != BS_OK) {
        free(ss);
        return st;
    }
    ss->bucket = strdup(o->bucket);
    ss->prefix = strdup(o->key_prefix ? o->key_prefix
                                      : "brokerside/{stream}/%Y/%m/%d/{hostname}-{broker_id}-");
    ss->gzip = !o->no_gzip;
    ss->threshold = o->multipart_threshold ? o->multipart_threshold : S3_DEFAULT_PART;
    ss->part_bytes = o->part_bytes ? o->part_bytes : S3_DEFAULT_PART;
    if (!ss->bucket || !ss->prefix) st = BS_E_NOMEM;
    /* validate the template once (every stream name has the same shape) */
    char tmp[900];
    if (st == BS_OK)
        st = bs_aws_sink_expand(ss->prefix, ss->base.hostname, ss->base.broker_id,
                                BS_STREAM_METRICS, 1, tmp, sizeof tmp);
    int n = 0;
    if (st == BS_OK && ss->base.endpoint)
        n = snprintf(ss->base_url, sizeof ss->base_url, "%s/%s", ss->base.endpoint, ss->bucket);
    else if (st == BS_OK)
        n = snprintf(ss->base_url, sizeof ss->base_url, "https://%s.s3.%s.amazonaws.com",
                     ss->bucket, ss->base.region);
    if (st == BS_OK && (n < 0 || (size_t)n >= sizeof ss->base_url)) st = BS_E_CONFIG;
    if (st != BS_OK) {
        BS_LOG_ERRORF(MOD, "s3 sink: bad bucket, key template or endpoint: %s", bs_status_name(st));
        s3_destroy(ss);
        return st == BS_E_MALFORMED || st == BS_E_TOO_LARGE ? BS_E_CONFIG : st;
    }
    *ops = &s3_ops;
    *impl = ss;
    return BS_OK;
}
