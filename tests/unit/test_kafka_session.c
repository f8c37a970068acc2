/*
 * test_kafka_session.c - the Kafka session driven directly through its
 * bs_session_ops with byte streams: pipelining, every split point, acks=0,
 * correlation mismatch, oversize frames, unmapped nodes, Metadata rewriting
 * (checked by decoding), streaming of frames larger than the buffers,
 * hooks, metrics and quiescence.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "brokerside/buf.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_session.h"
#include "brokerside/metrics.h"
#include "test.h"

#define BUFCAP 256 /* small connection buffers: most test frames do not fit */

typedef struct harness {
    const bs_session_ops *ops;
    void *st;
    bs_listener_config lc;
    bs_kafka_config kc;
    bs_advertise_entry adv[3];
    bs_buf cin, cfwd, cback, uin, ufwd, uback;
} harness;

/* Open a session for listener "t" with nodes 1..3 advertised as sc<id>.side:<9090+id>. */
static void h_open(harness *h, uint32_t max_frame, const bs_kafka_session_factory *fac)
{
    memset(h, 0, sizeof *h);
    h->ops = bs_kafka_session_ops();
    h->lc.name = "t";
    static char hosts[3][32];
    for (int i = 0; i < 3; i++) {
        snprintf(hosts[i], sizeof hosts[i], "sc%d.side", i + 1);
        h->adv[i] = (bs_advertise_entry){.node_id = i + 1, .host = hosts[i], .port = (uint16_t)(9091 + i)};
    }
    h->kc.advertise = h->adv;
    h->kc.n_advertise = 3;
    h->kc.max_frame_bytes = max_frame;
    bs_session_info info = {.listener = &h->lc, .kafka = &h->kc, .peer = "10.0.0.1:5555"};
    CHECK_EQ(h->ops->open((void *)fac, &info, &h->st), BS_OK);
    bs_buf *bs[] = {&h->cin, &h->cfwd, &h->cback, &h->uin, &h->ufwd, &h->uback};
    for (size_t i = 0; i < BS_ARRAY_LEN(bs); i++)
        CHECK_EQ(bs_buf_init(bs[i], BUFCAP), BS_OK);
}

static void h_close(harness *h)
{
    h->ops->close(h->st);
    bs_buf *bs[] = {&h->cin, &h->cfwd, &h->cback, &h->uin, &h->ufwd, &h->uback};
    for (size_t i = 0; i < BS_ARRAY_LEN(bs); i++)
        bs_buf_free(bs[i]);
}

/* Feed `len` bytes from one side in chunks of at most `chunk`, like net/
 * does: append what fits into `in`, call the filter, "write" everything the
 * filter put into `fwd` to `out`; keep calling while it makes progress.
 * Returns the first non-OK status of the filter. */
static bs_status h_feed_n(harness *h, bool from_client, const uint8_t *p, size_t len,
                          size_t chunk, bs_wbuf *out, size_t *fed)
{
    bs_buf *in = from_client ? &h->cin : &h->uin, *fwd = from_client ? &h->cfwd : &h->ufwd,
           *back = from_client ? &h->cback : &h->uback;
    size_t off = 0;
    for (int idle = 0; idle < 3;) {
        size_t room = bs_buf_free_space(in), n = len - off;
        if (n > chunk) n = chunk;
        if (n > room) n = room;
        if (n) {
            bs_buf_compact(in);
            CHECK_EQ(bs_buf_append(in, p + off, n), BS_OK);
            off += n;
        }
        size_t before_in = bs_buf_readable(in);
        bs_status st = from_client ? h->ops->on_client_bytes(h->st, in, fwd, back)
                                   : h->ops->on_upstream_bytes(h->st, in, fwd, back);
        if (st != BS_OK) return st;
        size_t got = bs_buf_readable(fwd);
        if (got) bs_wbuf_put(out, bs_buf_read_ptr(fwd), got);
        bs_buf_consume(fwd, got);
        /* like net/: report what was written to the upstream */
        if (from_client && got && h->ops->on_upstream_written)
            h->ops->on_upstream_written(h->st, got);
        if (n == 0 && got == 0 && bs_buf_readable(in) == before_in)
            idle++;
        else
            idle = 0;
    }
    if (fed)
        *fed = off;
    else
        CHECK_EQ(off, len);
    return BS_OK;
}

/* h_feed_n that expects every byte to be taken. */
static bs_status h_feed(harness *h, bool from_client, const uint8_t *p, size_t len, size_t chunk,
                        bs_wbuf *out)
{
    return h_feed_n(h, from_client, p, len, chunk, out, NULL);
}

/* ---- frame builders ---- */

static void frame_begin(bs_wbuf *w, size_t *start)
{
    *start = w->len;
    bs_wbuf_put_be32(w, 0);
}

static void frame_end(bs_wbuf *w, size_t start)
{
    bs_wbuf_patch_be32(w, start, (uint32_t)(w->len - start - 4));
}

/* A request header v1 (non-flexible APIs/versions). */
static void req_header(bs_wbuf *w, int16_t api, int16_t ver, int32_t corr)
{
    bs_wbuf_put_be16(w, (uint16_t)api);
    bs_wbuf_put_be16(w, (uint16_t)ver);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_kafka_put_string(w, false, (const uint8_t *)"cli", 3);
}

/* Heartbeat v0 request (group "g", generation 1, member "m"). */
static void heartbeat_req(bs_wbuf *w, int32_t corr)
{
    size_t s;
    frame_begin(w, &s);
    req_header(w, 12, 0, corr);
    bs_kafka_put_string(w, false, (const uint8_t *)"g", 1);
    bs_wbuf_put_be32(w, 1);
    bs_kafka_put_string(w, false, (const uint8_t *)"m", 1);
    frame_end(w, s);
}

/* Heartbeat v0 response with `err`. */
static void heartbeat_resp(bs_wbuf *w, int32_t corr, int16_t err)
{
    size_t s;
    frame_begin(w, &s);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_wbuf_put_be16(w, (uint16_t)err);
    frame_end(w, s);
}

/* Metadata v1 request for all topics. */
static void metadata_req(bs_wbuf *w, int32_t corr)
{
    size_t s;
    frame_begin(w, &s);
    req_header(w, BS_KAFKA_METADATA, 1, corr);
    bs_wbuf_put_be32(w, 0xffffffffu); /* topics: null = all */
    frame_end(w, s);
}

/* Metadata v1 response: brokers 1..nbrokers (node ids from `ids`), real
 * hosts "broker-N.real":1900N, one topic "tp" with error code `terr`. */
static void metadata_resp(bs_wbuf *w, int32_t corr, const int32_t *ids, int nbrokers, int16_t terr)
{
    size_t s;
    frame_begin(w, &s);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_wbuf_put_be32(w, (uint32_t)nbrokers);
    for (int i = 0; i < nbrokers; i++) {
        char host[32];
        int n = snprintf(host, sizeof host, "broker-%d.real", ids[i]);
        bs_wbuf_put_be32(w, (uint32_t)ids[i]);
        bs_kafka_put_string(w, false, (const uint8_t *)host, n);
        bs_wbuf_put_be32(w, (uint32_t)(19000 + ids[i]));
        bs_kafka_put_string(w, false, NULL, -1); /* rack */
    }
    bs_wbuf_put_be32(w, (uint32_t)ids[0]); /* controller */
    bs_wbuf_put_be32(w, 1);                /* topics */
    bs_wbuf_put_be16(w, (uint16_t)terr);
    bs_kafka_put_string(w, false, (const uint8_t *)"tp", 2);
    bs_wbuf_put_u8(w, 0);  /* is_internal */
    bs_wbuf_put_be32(w, 0); /* partitions */
    frame_end(w, s);
}

/* Produce v3 request to topic `topic`, one partition holding one v2 batch of
 * `records` records and `pad` bytes of record data; acks as given. */
static void produce_req(bs_wbuf *w, int32_t corr, int16_t acks, const char *topic, int32_t records,
                        size_t pad)
{
    size_t s;
    frame_begin(w, &s);
    req_header(w, BS_KAFKA_PRODUCE, 3, corr);
    bs_kafka_put_string(w, false, NULL, -1); /* transactional id */
    bs_wbuf_put_be16(w, (uint16_t)acks);
    bs_wbuf_put_be32(w, 30000);
    bs_wbuf_put_be32(w, 1);
    bs_kafka_put_string(w, false, (const uint8_t *)topic, (int32_t)strlen(topic));
    bs_wbuf_put_be32(w, 1);
    bs_wbuf_put_be32(w, 0);                     /* partition */
    size_t batch_len = 61 + pad;                /* whole batch */
    bs_wbuf_put_be32(w, (uint32_t)batch_len);   /* records bytes */
    bs_wbuf_put_be64(w, 0);                     /* base offset */
    bs_wbuf_put_be32(w, (uint32_t)(batch_len - 12));
    bs_wbuf_put_be32(w, 0);                     /* leader epoch */
    bs_wbuf_put_u8(w, 2);                       /* magic */
    for (int i = 0; i < 57 - 17; i++)           /* crc .. base sequence */
        bs_wbuf_put_u8(w, 0);
    bs_wbuf_put_be32(w, (uint32_t)records);
    for (size_t i = 0; i < pad; i++)
        bs_wbuf_put_u8(w, (uint8_t)i);
    frame_end(w, s);
}

/* Produce v3 response: topic `topic`, partition 0 with error `err`. */
static void produce_resp(bs_wbuf *w, int32_t corr, const char *topic, int16_t err)
{
    size_t s;
    frame_begin(w, &s);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_wbuf_put_be32(w, 1);
    bs_kafka_put_string(w, false, (const uint8_t *)topic, (int32_t)strlen(topic));
    bs_wbuf_put_be32(w, 1);
    bs_wbuf_put_be32(w, 0);             /* partition */
    bs_wbuf_put_be16(w, (uint16_t)err); /* error */
    bs_wbuf_put_be64(w, 0);             /* base offset */
    bs_wbuf_put_be64(w, (uint64_t)-1);  /* log append time */
    bs_wbuf_put_be32(w, 0);             /* throttle */
    frame_end(w, s);
}

static int64_t topic_msgs(const char *topic)
{
    return bs_metric_value(
        bs_metrics_counter_kv("brokerside_topic_messages_in_total", "x", "topic", topic, NULL));
}

/* One acks=-1 Produce of one record to `topic` and the broker's answer `err`. */
static void produce_exchange(harness *h, int32_t corr, const char *topic, int16_t err)
{
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    produce_req(&w, corr, -1, topic, 1, 0);
    CHECK_EQ(h_feed(h, true, w.data, w.len, 1000, &out), BS_OK);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    produce_resp(&w, corr, topic, err);
    CHECK_EQ(h_feed(h, false, w.data, w.len, 1000, &out), BS_OK);
    CHECK_EQ(out.len, w.len);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

/* A frame of an API this build does not know (key 9999), `n` payload bytes. */
static void unknown_frame(bs_wbuf *w, int32_t corr, size_t n, bool request)
{
    size_t s;
    frame_begin(w, &s);
    if (request) {
        bs_wbuf_put_be16(w, 9999);
        bs_wbuf_put_be16(w, 0);
    }
    bs_wbuf_put_be32(w, (uint32_t)corr);
    for (size_t i = request ? 8 : 4; i < n; i++)
        bs_wbuf_put_u8(w, (uint8_t)(i * 7));
    frame_end(w, s);
}

static int64_t counter(const char *name, const char *k1, const char *v1, const char *k2,
                       const char *v2, const char *k3, const char *v3)
{
    return bs_metric_value(bs_metrics_counter_kv(name, "x", "listener", "t", k1, v1, k2, v2, k3,
                                                 v3, NULL));
}

/* Decode a rewritten Metadata v1 response frame and check every broker is
 * the sidecar address of its node. */
static void check_metadata_rewritten(const uint8_t *frame, size_t len, int nbrokers)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_METADATA, false);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    bs_kafka_obj *root = NULL;
    CHECK(len > 8);
    CHECK_EQ(bs_kafka_decode(m, 1, frame + 8, len - 8, &a, &root), BS_OK);
    if (root) {
        int fb = bs_kafka_struct_field(m->body, "Brokers");
        const bs_kafka_struct *bsx = m->body->fields[fb].sub;
        int fid = bs_kafka_struct_field(bsx, "NodeId"), fh = bs_kafka_struct_field(bsx, "Host"),
            fp = bs_kafka_struct_field(bsx, "Port");
        CHECK_EQ(root->vals[fb].count, nbrokers);
        for (int32_t i = 0; i < root->vals[fb].count; i++) {
            bs_kafka_val *v = root->vals[fb].items[i].vals;
            char want[32];
            snprintf(want, sizeof want, "sc%d.side", (int)v[fid].i);
            CHECK_EQ(v[fh].n, strlen(want));
            CHECK(memcmp(v[fh].p, want, v[fh].n) == 0);
            CHECK_EQ(v[fp].i, 9090 + v[fid].i);
        }
    }
    bs_kafka_arena_free(&a);
    CHECK(!memmem(frame, len, "real", 4));
}

/* ---- tests ---- */

/* Pipelined requests of several kinds pass byte for byte; responses come
 * back in order; the Metadata one is rewritten; the session is quiescent
 * only once every response went through. */
static void test_pipelined(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf reqs, resps, out_c, out_u;
    bs_wbuf_init(&reqs, 0);
    bs_wbuf_init(&resps, 0);
    bs_wbuf_init(&out_c, 0);
    bs_wbuf_init(&out_u, 0);
    heartbeat_req(&reqs, 1);
    metadata_req(&reqs, 2);
    unknown_frame(&reqs, 3, 40, true);
    heartbeat_req(&reqs, 4);
    CHECK(h.ops->is_quiescent(h.st));
    CHECK_EQ(h_feed(&h, true, reqs.data, reqs.len, reqs.len, &out_u), BS_OK);
    CHECK_EQ(out_u.len, reqs.len);
    CHECK(memcmp(out_u.data, reqs.data, reqs.len) == 0);
    CHECK(!h.ops->is_quiescent(h.st));
    int32_t ids[] = {1, 2, 3};
    heartbeat_resp(&resps, 1, 0);
    size_t md_start = resps.len;
    metadata_resp(&resps, 2, ids, 3, 3); /* topic error UNKNOWN_TOPIC_OR_PARTITION */
    size_t md_end = resps.len;
    unknown_frame(&resps, 3, 30, false);
    heartbeat_resp(&resps, 4, 27); /* not counted: no Heartbeat schema in this build */
    CHECK_EQ(h_feed(&h, false, resps.data, resps.len, resps.len, &out_c), BS_OK);
    CHECK(h.ops->is_quiescent(h.st));
    /* unchanged frames are identical, the Metadata one is rewritten */
    CHECK(out_c.len > md_start);
    CHECK(memcmp(out_c.data, resps.data, md_start) == 0);
    size_t md_new = 4 + (((size_t)out_c.data[md_start] << 24) | ((size_t)out_c.data[md_start + 1] << 16) |
                         ((size_t)out_c.data[md_start + 2] << 8) | out_c.data[md_start + 3]);
    check_metadata_rewritten(out_c.data + md_start, md_new, 3);
    CHECK_EQ(out_c.len - md_start - md_new, resps.len - md_end);
    CHECK(memcmp(out_c.data + md_start + md_new, resps.data + md_end, resps.len - md_end) == 0);
    CHECK_EQ(counter("brokerside_kafka_requests_total", "api", "Heartbeat", "version", "0", NULL,
                     NULL),
             2);
    CHECK_EQ(counter("brokerside_kafka_requests_total", "api", "unknown", "version", "unknown",
                     NULL, NULL),
             1);
    CHECK_EQ(counter("brokerside_kafka_errors_total", "api", "Metadata", "error", "3", NULL, NULL),
             1);
    CHECK_EQ(counter("brokerside_kafka_request_bytes_total", "api", "Metadata", "version", "1",
                     NULL, NULL),
             (long long)(reqs.len > 0 ? 4 + 8 + 5 + 4 : 0));
    bs_wbuf txt;
    bs_wbuf_init(&txt, 0);
    CHECK_EQ(bs_metrics_render_prometheus(&txt), BS_OK);
    bs_wbuf_put_u8(&txt, 0);
    CHECK(strstr((char *)txt.data, "brokerside_kafka_request_duration_seconds_count{listener=\"t\","
                                   "api=\"Heartbeat\",stage=\"total\"} 2") != NULL);
    CHECK(strstr((char *)txt.data, "brokerside_kafka_request_duration_seconds_count{listener=\"t\","
                                   "api=\"Heartbeat\",stage=\"broker\"} 2") != NULL);
    bs_wbuf_free(&txt);
    bs_wbuf_free(&reqs);
    bs_wbuf_free(&resps);
    bs_wbuf_free(&out_c);
    bs_wbuf_free(&out_u);
    h_close(&h);
}

/* The same conversation cut at every byte boundary (and fed one byte at a
 * time) gives the same output. */
static void test_every_split(void)
{
    bs_wbuf reqs, resps, ref_u, ref_c;
    bs_wbuf_init(&reqs, 0);
    bs_wbuf_init(&resps, 0);
    heartbeat_req(&reqs, 7);
    metadata_req(&reqs, 8);
    produce_req(&reqs, 9, 1, "splt", 3, 20);
    int32_t ids[] = {2, 1};
    heartbeat_resp(&resps, 7, 0);
    metadata_resp(&resps, 8, ids, 2, 0);
    heartbeat_resp(&resps, 9, 0); /* stands in for the Produce answer: only the id matters */
    /* reference run in one piece */
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf_init(&ref_u, 0);
    bs_wbuf_init(&ref_c, 0);
    CHECK_EQ(h_feed(&h, true, reqs.data, reqs.len, reqs.len, &ref_u), BS_OK);
    CHECK_EQ(h_feed(&h, false, resps.data, resps.len, resps.len, &ref_c), BS_OK);
    CHECK(h.ops->is_quiescent(h.st));
    h_close(&h);
    CHECK_EQ(ref_u.len, reqs.len);
    int bad = 0;
    for (size_t chunk = 1; chunk <= resps.len && chunk <= reqs.len; chunk++) {
        bs_wbuf ou, oc;
        bs_wbuf_init(&ou, 0);
        bs_wbuf_init(&oc, 0);
        h_open(&h, 1 << 20, NULL);
        if (h_feed(&h, true, reqs.data, reqs.len, chunk, &ou) != BS_OK) bad++;
        if (h_feed(&h, false, resps.data, resps.len, chunk, &oc) != BS_OK) bad++;
        if (ou.len != ref_u.len || memcmp(ou.data, ref_u.data, ou.len) != 0) bad++;
        if (oc.len != ref_c.len || memcmp(oc.data, ref_c.data, oc.len) != 0) bad++;
        if (!h.ops->is_quiescent(h.st)) bad++;
        h_close(&h);
        bs_wbuf_free(&ou);
        bs_wbuf_free(&oc);
    }
    CHECK_EQ(bad, 0);
    bs_wbuf_free(&reqs);
    bs_wbuf_free(&resps);
    bs_wbuf_free(&ref_u);
    bs_wbuf_free(&ref_c);
}

/* Produce with acks=0 expects no response: the next response answers the
 * request after it; per-topic figures are counted. */
static void test_acks_zero(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf reqs, resps, out;
    bs_wbuf_init(&reqs, 0);
    bs_wbuf_init(&resps, 0);
    bs_wbuf_init(&out, 0);
    produce_exchange(&h, 100, "zero", 0); /* the broker confirms the topic */
    int64_t before = bs_metric_value(bs_metrics_counter_kv("brokerside_topic_messages_in_total",
                                                           "x", "topic", "zero", NULL));
    produce_req(&reqs, 1, 0, "zero", 4, 10);
    CHECK_EQ(h_feed(&h, true, reqs.data, reqs.len, 1000, &out), BS_OK);
    CHECK(h.ops->is_quiescent(h.st)); /* nothing awaits a response */
    heartbeat_req(&reqs, 2);
    heartbeat_resp(&resps, 2, 0);
    CHECK_EQ(h_feed(&h, true, reqs.data + out.len, reqs.len - out.len, 1000, &out), BS_OK);
    CHECK(!h.ops->is_quiescent(h.st));
    bs_wbuf_reset(&out);
    CHECK_EQ(h_feed(&h, false, resps.data, resps.len, 1000, &out), BS_OK);
    CHECK_EQ(out.len, resps.len);
    CHECK(h.ops->is_quiescent(h.st));
    CHECK_EQ(bs_metric_value(bs_metrics_counter_kv("brokerside_topic_messages_in_total", "x",
                                                   "topic", "zero", NULL)) -
                 before,
             4);
    CHECK_EQ(bs_metric_value(bs_metrics_counter_kv("brokerside_topic_bytes_in_total", "x", "topic",
                                                   "zero", NULL)),
             71);
    bs_wbuf_free(&reqs);
    bs_wbuf_free(&resps);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* A response whose correlation id is not the oldest request's, or one with
 * no request in flight, closes the connection and forwards nothing of it. */
static void test_correlation_mismatch(void)
{
    for (int variant = 0; variant < 2; variant++) {
        harness h;
        h_open(&h, 1 << 20, NULL);
        bs_wbuf reqs, resps, out;
        bs_wbuf_init(&reqs, 0);
        bs_wbuf_init(&resps, 0);
        bs_wbuf_init(&out, 0);
        int64_t before = counter("brokerside_kafka_protocol_errors_total", "direction", "response",
                                 "reason", "correlation", NULL, NULL);
        if (variant == 0) {
            heartbeat_req(&reqs, 1);
            heartbeat_req(&reqs, 2);
            CHECK_EQ(h_feed(&h, true, reqs.data, reqs.len, 1000, &out), BS_OK);
            bs_wbuf_reset(&out);
        }
        heartbeat_resp(&resps, 2, 0);
        CHECK_EQ(h_feed(&h, false, resps.data, resps.len, 1000, &out), BS_E_MALFORMED);
        CHECK_EQ(out.len, 0);
        CHECK_EQ(counter("brokerside_kafka_protocol_errors_total", "direction", "response",
                         "reason", "correlation", NULL, NULL) -
                     before,
                 1);
        bs_wbuf_free(&reqs);
        bs_wbuf_free(&resps);
        bs_wbuf_free(&out);
        h_close(&h);
    }
}

/* Frames above kafka.max_frame_bytes close the connection, either way;
 * a frame size below the minimum payload is malformed. */
static void test_oversize_and_malformed(void)
{
    harness h;
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    int64_t before = counter("brokerside_kafka_frame_too_large_total", "direction", "request", NULL,
                             NULL, NULL, NULL);
    h_open(&h, 1000, NULL);
    unknown_frame(&w, 1, 1001, true);
    CHECK_EQ(h_feed(&h, true, w.data, 8, 8, &out), BS_E_TOO_LARGE);
    CHECK_EQ(out.len, 0);
    CHECK_EQ(counter("brokerside_kafka_frame_too_large_total", "direction", "request", NULL, NULL,
                     NULL, NULL) -
                 before,
             1);
    h_close(&h);

    h_open(&h, 1000, NULL);
    heartbeat_req(&w, 1);
    bs_wbuf_reset(&out);
    CHECK_EQ(h_feed(&h, true, w.data + 1005, w.len - 1005, 1000, &out), BS_OK);
    bs_wbuf_reset(&w);
    unknown_frame(&w, 1, 2000, false);
    CHECK_EQ(h_feed(&h, false, w.data, w.len, 100, &out), BS_E_TOO_LARGE);
    CHECK_EQ(counter("brokerside_kafka_frame_too_large_total", "direction", "response", NULL, NULL,
                     NULL, NULL),
             1);
    h_close(&h);

    /* negative size; a request too short for its header */
    static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0};
    static const uint8_t tiny[] = {0, 0, 0, 5, 0, 12, 0, 0, 0};
    h_open(&h, 1000, NULL);
    CHECK_EQ(h_feed(&h, true, neg, sizeof neg, 100, &out), BS_E_MALFORMED);
    h_close(&h);
    h_open(&h, 1000, NULL);
    CHECK_EQ(h_feed(&h, true, tiny, sizeof tiny, 100, &out), BS_E_MALFORMED);
    h_close(&h);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

/* A Metadata response naming a node without an advertised address is not
 * forwarded at all (no real address may leak) and closes the connection. */
static void test_unmapped_node(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    metadata_req(&w, 5);
    CHECK_EQ(h_feed(&h, true, w.data, w.len, 1000, &out), BS_OK);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    int32_t ids[] = {1, 7};
    metadata_resp(&w, 5, ids, 2, 0);
    CHECK_EQ(h_feed(&h, false, w.data, w.len, 1000, &out), BS_E_NOT_FOUND);
    CHECK_EQ(out.len, 0);
    CHECK_EQ(counter("brokerside_kafka_unmapped_node_total", "node", "7", NULL, NULL, NULL, NULL),
             1);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* Frames much larger than the connection buffers: a request and a response
 * that pass through stream (never more than BUFCAP in the session's
 * buffers), a Produce is inspected while it streams, and a Metadata
 * response larger than the buffer is assembled, rewritten and emitted. */
static void test_streaming_large(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    produce_exchange(&h, 100, "big", 0); /* the broker confirms the topic */
    unknown_frame(&w, 1, 20000, true);
    produce_req(&w, 2, -1, "big", 9, 30000);
    metadata_req(&w, 3);
    CHECK_EQ(h_feed(&h, true, w.data, w.len, 700, &out), BS_OK);
    CHECK_EQ(out.len, w.len);
    CHECK(memcmp(out.data, w.data, w.len) == 0);
    CHECK_EQ(bs_metric_value(bs_metrics_counter_kv("brokerside_topic_messages_in_total", "x",
                                                   "topic", "big", NULL)),
             9);
    CHECK_EQ(bs_metric_value(bs_metrics_counter_kv("brokerside_topic_bytes_in_total", "x", "topic",
                                                   "big", NULL)),
             30061);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    unknown_frame(&w, 1, 50000, false);
    heartbeat_resp(&w, 2, 0);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = 1 + i % 3;
    size_t md = w.len;
    metadata_resp(&w, 3, ids, 40, 0);
    CHECK(w.len - md > BUFCAP);
    CHECK_EQ(h_feed(&h, false, w.data, w.len, 333, &out), BS_OK);
    CHECK(memcmp(out.data, w.data, md) == 0);
    CHECK(out.len > md);
    check_metadata_rewritten(out.data + md, out.len - md, 40);
    CHECK(h.ops->is_quiescent(h.st));
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* Quiescence: a partly received held frame or a half-forwarded one keeps the
 * session busy. */
static void test_quiescence(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    unknown_frame(&w, 1, 1000, true);
    /* only part of a frame larger than the buffer: it is half-forwarded */
    CHECK_EQ(h_feed(&h, true, w.data, 600, 600, &out), BS_OK);
    CHECK(!h.ops->is_quiescent(h.st));
    CHECK_EQ(h_feed(&h, true, w.data + 600, w.len - 600, 600, &out), BS_OK);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    unknown_frame(&w, 1, 20, false);
    CHECK_EQ(h_feed(&h, false, w.data, w.len, 100, &out), BS_OK);
    CHECK(h.ops->is_quiescent(h.st));
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* A hook that replaces Heartbeat requests with a copy whose generation is
 * 42, and one that fails on Metadata responses. */
static bool hb_wants(void *arg, int16_t api, int16_t ver)
{
    (void)arg;
    (void)ver;
    return api == 12;
}
static bs_status hb_replace(void *arg, const bs_kafka_request_header *h, const uint8_t *frame,
                            size_t len, bs_wbuf *rep, bs_kafka_hook_verdict *v)
{
    (*(int *)arg)++;
    bs_wbuf_put(rep, frame, len);
    bs_wbuf_patch_be32(rep, 4 + h->header_len + 3, 42); /* after group "g" (2+1 bytes) */
    *v = BS_KAFKA_HOOK_REPLACE;
    return BS_OK;
}
static bool md_wants(void *arg, int16_t api, int16_t ver)
{
    (void)arg;
    (void)ver;
    return api == BS_KAFKA_METADATA;
}
static bs_status md_fail(void *arg, const bs_kafka_inflight *req, const uint8_t *frame,
                         size_t len, bs_wbuf *rep, bs_kafka_hook_verdict *v)
{
    (void)arg, (void)req, (void)frame, (void)len, (void)rep, (void)v;
    return BS_E_CRYPTO;
}

static void test_hooks(void)
{
    int calls = 0;
    bs_kafka_hook hooks[] = {
        {.name = "hb", .wants_request = hb_wants, .on_request = hb_replace, .arg = &calls},
        {.name = "md", .wants_response = md_wants, .on_response = md_fail},
    };
    bs_kafka_session_factory fac = {.hooks = hooks, .n_hooks = 2};
    harness h;
    h_open(&h, 1 << 20, &fac);
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    heartbeat_req(&w, 1);
    metadata_req(&w, 2);
    CHECK_EQ(h_feed(&h, true, w.data, w.len, 5, &out), BS_OK);
    CHECK_EQ(calls, 1);
    CHECK_EQ(out.len, w.len);
    CHECK(memcmp(out.data, w.data, w.len) != 0); /* the heartbeat was replaced */
    /* the generation field (int32 after header and group) is now 42 */
    size_t gen = 4 + 2 + 2 + 4 + 2 + 3 + 2 + 1;
    CHECK_EQ(out.data[gen + 3], 42);
    CHECK(memcmp(out.data + 27, w.data + 27, w.len - 27) == 0);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    heartbeat_resp(&w, 1, 0);
    CHECK_EQ(h_feed(&h, false, w.data, w.len, 1000, &out), BS_OK);
    CHECK_EQ(out.len, w.len);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    int32_t ids[] = {1};
    metadata_resp(&w, 2, ids, 1, 0);
    CHECK_EQ(h_feed(&h, false, w.data, w.len, 1000, &out), BS_E_CRYPTO);
    CHECK_EQ(out.len, 0); /* nothing of a frame whose hook failed */
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* A topic gets its own series only once the broker confirmed it: junk names
 * in requests (refused by the broker) stay in "_other" and never take one of
 * the capped series. */
static void test_topic_needs_confirmation(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    int64_t other = topic_msgs("_other");
    for (int i = 0; i < 50; i++) {
        char t[32];
        snprintf(t, sizeof t, "junk-%d", i);
        produce_exchange(&h, i, t, 3); /* UNKNOWN_TOPIC_OR_PARTITION */
        CHECK_EQ(topic_msgs(t), 0);
    }
    CHECK_EQ(topic_msgs("_other") - other, 50);
    /* a real topic: its first request counts as "_other", the next ones as itself */
    produce_exchange(&h, 60, "real", 0);
    CHECK_EQ(topic_msgs("real"), 0);
    produce_exchange(&h, 61, "real", 0);
    CHECK_EQ(topic_msgs("real"), 1);
    h_close(&h);
}

/* A request the schema says is malformed is never forwarded: the
 * connection closes (counted), whether the frame came whole (the 26-byte
 * Metadata with a topic count of 0x7fffffff) or larger than the connection
 * buffer (held, checked once complete). A valid large request still passes. */
static void test_undecodable_request_not_forwarded(void)
{
    harness h;
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    int64_t before = counter("brokerside_kafka_protocol_errors_total", "direction", "request",
                             "reason", "undecodable", NULL, NULL);
    h_open(&h, 1 << 20, NULL);
    size_t s;
    frame_begin(&w, &s);
    req_header(&w, BS_KAFKA_METADATA, 1, 7);
    bs_wbuf_put_be32(&w, 0x7fffffffu); /* topics: 2^31-1, none follow */
    frame_end(&w, s);
    CHECK_EQ(h_feed(&h, true, w.data, w.len, 1000, &out), BS_E_MALFORMED);
    CHECK_EQ(out.len, 0);
    h_close(&h);

    /* larger than the connection buffer: 3000 topics announced, 2000 sent */
    h_open(&h, 1 << 20, NULL);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    frame_begin(&w, &s);
    req_header(&w, BS_KAFKA_METADATA, 1, 8);
    bs_wbuf_put_be32(&w, 3000);
    for (int i = 0; i < 2000; i++)
        bs_kafka_put_string(&w, false, (const uint8_t *)"topic", 5);
    frame_end(&w, s);
    CHECK(w.len > 4 * BUFCAP);
    CHECK_EQ(h_feed(&h, true, w.data, w.len, 100, &out), BS_E_MALFORMED);
    CHECK_EQ(out.len, 0);
    h_close(&h);
    CHECK_EQ(counter("brokerside_kafka_protocol_errors_total", "direction", "request",
                     "reason", "undecodable", NULL, NULL) -
                 before,
             2);

    /* the same, well-formed: passes unchanged */
    h_open(&h, 1 << 20, NULL);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    frame_begin(&w, &s);
    req_header(&w, BS_KAFKA_METADATA, 1, 9);
    bs_wbuf_put_be32(&w, 2000);
    for (int i = 0; i < 2000; i++)
        bs_kafka_put_string(&w, false, (const uint8_t *)"topic", 5);
    frame_end(&w, s);
    CHECK_EQ(h_feed(&h, true, w.data, w.len, 100, &out), BS_OK);
    CHECK_EQ(out.len, w.len);
    CHECK(out.len == w.len && memcmp(out.data, w.data, w.len) == 0);
    h_close(&h);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

/* A Metadata v1 request naming `n` topics "topic" (about 7 bytes each). */
static void metadata_many(bs_wbuf *w, int32_t corr, int n)
{
    size_t s;
    frame_begin(w, &s);
    req_header(w, BS_KAFKA_METADATA, 1, corr);
    bs_wbuf_put_be32(w, (uint32_t)n);
    for (int i = 0; i < n; i++)
        bs_kafka_put_string(w, false, (const uint8_t *)"topic", 5);
    frame_end(w, s);
}

/* Requests held whole are bounded: per request (max_held_request_bytes),
 * for all connections together (held_bytes_budget, released as frames
 * complete or connections close), and in time (frame_timeout_s: the
 * session reports the deadline of a started request, 0 once overdue). */
static void test_held_request_bounds(void)
{
    harness a, b;
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    metadata_many(&w, 1, 2000);
    CHECK(w.len > 10000);
    h_open(&a, 1 << 20, NULL);
    a.kc.max_held_request_bytes = 4096;
    CHECK_EQ(h_feed(&a, true, w.data, w.len, 100, &out), BS_E_TOO_LARGE);
    CHECK_EQ(out.len, 0);
    h_close(&a);

    uint64_t base = bs_kafka_session_held_bytes();
    h_open(&a, 1 << 20, NULL);
    h_open(&b, 1 << 20, NULL);
    a.kc.held_bytes_budget = b.kc.held_bytes_budget = base + w.len + 100;
    a.kc.frame_timeout_s = b.kc.frame_timeout_s = 30;
    CHECK_EQ(a.ops->input_deadline(a.st), -1);
    CHECK_EQ(h_feed(&a, true, w.data, w.len - 10, 100, &out), BS_OK);
    CHECK_EQ(out.len, 0);
    CHECK_EQ(bs_kafka_session_held_bytes(), base + w.len);
    double left = a.ops->input_deadline(a.st);
    CHECK(left > 0 && left <= 30);
    /* a second connection's held request does not fit the budget */
    CHECK_EQ(h_feed(&b, true, w.data, w.len - 10, 100, &out), BS_E_FULL);
    CHECK_EQ(out.len, 0);
    h_close(&b);
    /* the first one completes: forwarded, budget released */
    CHECK_EQ(h_feed(&a, true, w.data + w.len - 10, 10, 100, &out), BS_OK);
    CHECK_EQ(out.len, w.len);
    CHECK_EQ(bs_kafka_session_held_bytes(), base);
    CHECK_EQ(a.ops->input_deadline(a.st), -1);
    /* a started request past its deadline is overdue; closing releases its bytes */
    bs_wbuf_reset(&out);
    CHECK_EQ(h_feed(&a, true, w.data, w.len - 10, 100, &out), BS_OK);
    a.kc.frame_timeout_s = 1e-9;
    CHECK_EQ(a.ops->input_deadline(a.st), 0);
    h_close(&a);
    CHECK_EQ(bs_kafka_session_held_bytes(), base);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

/* Topic series are capped process-wide: beyond the cap, topic="_other". */
static void test_topic_cap(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    for (int i = 0; i < BS_KAFKA_TOPIC_SERIES_MAX + 5; i++) {
        char t[32];
        snprintf(t, sizeof t, "cap%d", i);
        produce_exchange(&h, i, t, 0); /* confirmed by the broker */
        bs_wbuf_reset(&w);
        produce_req(&w, i, 0, t, 1, 0);
        CHECK_EQ(h_feed(&h, true, w.data, w.len, 1000, &out), BS_OK);
    }
    CHECK_EQ(topic_msgs("cap0"), 1);
    CHECK(bs_metric_value(bs_metrics_counter_kv("brokerside_topic_messages_in_total", "x", "topic",
                                                "_other", NULL)) >= 5);
    CHECK(bs_metric_value(bs_metrics_counter("brokerside_topic_series_overflow_total", "x",
                                             NULL)) >= 5);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* A flexible request header (v2) with an opaque body of `n` bytes. */
static void flex_req(bs_wbuf *w, int16_t api, int16_t ver, int32_t corr, size_t n)
{
    size_t s;
    frame_begin(w, &s);
    req_header(w, api, ver, corr);
    bs_wbuf_put_u8(w, 0); /* no tags */
    for (size_t i = 0; i < n; i++)
        bs_wbuf_put_u8(w, 0);
    frame_end(w, s);
}

/* Fetch v13+ names topics by id: the id learnt from a Metadata v12 response
 * (on any connection) labels the Fetch bytes; Fetch partition error codes are
 * counted. */
static void test_topic_ids(void)
{
    static const uint8_t id[16] = {0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xbb};
    bs_kafka_session_reset_globals(); /* test_topic_cap used up the topic series */
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    flex_req(&w, BS_KAFKA_METADATA, 12, 1, 4); /* null topics, two false, no tags */
    {
        /* Fetch v13: replica, wait, min, max, isolation, session, epoch (zero),
         * then empty topics, forgotten topics and rack, no tags */
        static const uint8_t tail[] = {1, 1, 1, 0};
        size_t fs;
        frame_begin(&w, &fs);
        req_header(&w, BS_KAFKA_FETCH, 13, 2);
        bs_wbuf_put_u8(&w, 0);
        for (int i = 0; i < 25; i++)
            bs_wbuf_put_u8(&w, 0);
        bs_wbuf_put(&w, tail, sizeof tail);
        frame_end(&w, fs);
    }
    CHECK_EQ(h_feed(&h, true, w.data, w.len, 1000, &out), BS_OK);
    CHECK_EQ(out.len, w.len);
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    size_t s;
    /* Metadata v12 response */
    frame_begin(&w, &s);
    bs_wbuf_put_be32(&w, 1);
    bs_wbuf_put_u8(&w, 0);  /* header tags */
    bs_wbuf_put_be32(&w, 0); /* throttle */
    bs_wbuf_put_uvarint(&w, 2);
    bs_wbuf_put_be32(&w, 1);
    bs_kafka_put_string(&w, true, (const uint8_t *)"broker-1.real", 13);
    bs_wbuf_put_be32(&w, 19001);
    bs_kafka_put_string(&w, true, NULL, -1); /* rack */
    bs_wbuf_put_u8(&w, 0);                    /* broker tags */
    bs_kafka_put_string(&w, true, NULL, -1); /* cluster id */
    bs_wbuf_put_be32(&w, 1);                  /* controller */
    bs_wbuf_put_uvarint(&w, 2);               /* one topic */
    bs_wbuf_put_be16(&w, 0);
    bs_kafka_put_string(&w, true, (const uint8_t *)"idtopic", 7);
    bs_wbuf_put(&w, id, 16);
    bs_wbuf_put_u8(&w, 0);     /* internal */
    bs_wbuf_put_uvarint(&w, 1); /* no partitions */
    bs_wbuf_put_be32(&w, 0);    /* authorized operations */
    bs_wbuf_put_u8(&w, 0);      /* topic tags */
    bs_wbuf_put_u8(&w, 0);      /* tags */
    frame_end(&w, s);
    /* Fetch v13 response: one topic by id, one partition with error 6 and 100 record bytes */
    frame_begin(&w, &s);
    bs_wbuf_put_be32(&w, 2);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_be32(&w, 0);   /* throttle */
    bs_wbuf_put_be16(&w, 0);   /* error */
    bs_wbuf_put_be32(&w, 0);   /* session */
    bs_wbuf_put_uvarint(&w, 2); /* responses */
    bs_wbuf_put(&w, id, 16);
    bs_wbuf_put_uvarint(&w, 2); /* partitions */
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_be16(&w, 6);
    bs_wbuf_put_be64(&w, 10);
    bs_wbuf_put_be64(&w, 10);
    bs_wbuf_put_be64(&w, 0);
    bs_wbuf_put_uvarint(&w, 0); /* aborted: null */
    bs_wbuf_put_be32(&w, 0xffffffffu);
    bs_wbuf_put_uvarint(&w, 101); /* records: 100 bytes */
    for (int i = 0; i < 100; i++)
        bs_wbuf_put_u8(&w, 0x55);
    bs_wbuf_put_u8(&w, 0); /* partition tags */
    bs_wbuf_put_u8(&w, 0); /* topic tags */
    bs_wbuf_put_u8(&w, 0); /* tags */
    frame_end(&w, s);
    CHECK_EQ(h_feed(&h, false, w.data, w.len, 1000, &out), BS_OK);
    CHECK(!memmem(out.data, out.len, "real", 4));
    CHECK(memmem(out.data, out.len, "sc1.side", 8) != NULL);
    CHECK_EQ(bs_metric_value(bs_metrics_counter_kv("brokerside_topic_bytes_out_total", "x",
                                                   "topic", "idtopic", NULL)),
             100);
    CHECK_EQ(counter("brokerside_kafka_errors_total", "api", "Fetch", "error", "6", NULL, NULL), 1);
    CHECK_EQ(counter("brokerside_kafka_undecodable_total", "api", "Fetch", "direction", "response",
                     NULL, NULL),
             0);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* Client-chosen keys and versions outside the API table share one series. */
static void test_label_cardinality(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    int64_t before = counter("brokerside_kafka_requests_total", "api", "unknown", "version",
                             "unknown", NULL, NULL);
    for (int i = 0; i < 200; i++) {
        size_t s;
        frame_begin(&w, &s);
        bs_wbuf_put_be16(&w, (uint16_t)(i % 2 ? 5000 + i : 12)); /* unknown key, or Heartbeat */
        bs_wbuf_put_be16(&w, (uint16_t)(i % 2 ? 0 : 30000 + i));  /* ... at a version it lacks */
        bs_wbuf_put_be32(&w, (uint32_t)i);
        bs_kafka_put_string(&w, false, (const uint8_t *)"c", 1);
        bs_wbuf_put_u8(&w, 0); /* header v2 tags (a future Heartbeat version is flexible) */
        frame_end(&w, s);
    }
    CHECK_EQ(h_feed(&h, true, w.data, w.len, 1000, &out), BS_OK);
    CHECK_EQ(out.len, w.len);
    CHECK_EQ(counter("brokerside_kafka_requests_total", "api", "unknown", "version", "unknown",
                     NULL, NULL) -
                 before,
             100);
    CHECK_EQ(counter("brokerside_kafka_requests_total", "api", "Heartbeat", "version", "unknown",
                     NULL, NULL),
             100);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* More pipelined requests than the correlation table holds: it grows to its
 * maximum, then the client is simply not read (bytes stay in `in`) until
 * responses free entries; order and matching survive the growth. */
static void test_pipeline_backpressure(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    bs_wbuf reqs, resps, out_u, out_c;
    bs_wbuf_init(&reqs, 0);
    bs_wbuf_init(&resps, 0);
    bs_wbuf_init(&out_u, 0);
    bs_wbuf_init(&out_c, 0);
    const int n = 1500;
    for (int i = 0; i < n; i++) {
        heartbeat_req(&reqs, 1000 + i);
        heartbeat_resp(&resps, 1000 + i, 0);
    }
    size_t fed = 0, got = 0, rfed = 0;
    CHECK_EQ(h_feed_n(&h, true, reqs.data, reqs.len, 4096, &out_u, &fed), BS_OK);
    CHECK(fed < reqs.len);                    /* stopped reading the client ... */
    CHECK_EQ(out_u.len, 1024 * (size_t)27);   /* ... after 1024 requests in flight */
    int rounds = 0;
    while ((fed < reqs.len || bs_buf_readable(&h.cin) > 0 || rfed < resps.len) && rounds++ < 100) {
        size_t r;
        /* the broker answers what it got so far */
        size_t answerable = out_u.len / 27 * 10;
        CHECK_EQ(h_feed_n(&h, false, resps.data + rfed, answerable - rfed, 4096, &out_c, &r),
                 BS_OK);
        rfed += r;
        CHECK_EQ(h_feed_n(&h, true, reqs.data + fed, reqs.len - fed, 4096, &out_u, &got), BS_OK);
        fed += got;
    }
    CHECK_EQ(out_u.len, reqs.len);
    CHECK(memcmp(out_u.data, reqs.data, reqs.len) == 0);
    CHECK_EQ(out_c.len, resps.len);
    CHECK(memcmp(out_c.data, resps.data, resps.len) == 0);
    CHECK(h.ops->is_quiescent(h.st));
    bs_wbuf_free(&reqs);
    bs_wbuf_free(&resps);
    bs_wbuf_free(&out_u);
    bs_wbuf_free(&out_c);
    h_close(&h);
}

/* ApiVersions: an error answer that does not decode (librdkafka's mock
 * answers UNSUPPORTED_VERSION this way) is forwarded as it is; a success
 * answer that does not decode closes the connection and is not forwarded. */
static void test_api_versions_answers(void)
{
    static const uint8_t req[] = {0, 0, 0, 17, 0, 18, 0, 3, 0, 0, 0, 1, 0, 1, 'x', 0,
                                  2, 'a', 2, '1', 0};
    /* corr 1, error 35, a one-byte "array count", key 18 min 0 max 2, throttle 0 */
    static const uint8_t err_answer[] = {0, 0, 0, 17, 0, 0, 0, 1, 0, 35, 1, 0, 18,
                                         0, 0, 0, 2, 0, 0, 0, 0};
    static const uint8_t bad_ok[] = {0, 0, 0, 17, 0, 0, 0, 1, 0, 0, 1, 0, 18,
                                     0, 0, 0, 2, 0, 0, 0, 0};
    for (int variant = 0; variant < 2; variant++) {
        harness h;
        h_open(&h, 1 << 20, NULL);
        bs_wbuf out;
        bs_wbuf_init(&out, 0);
        CHECK_EQ(sizeof req, 4 + 17);
        CHECK_EQ(h_feed(&h, true, req, sizeof req, 100, &out), BS_OK);
        CHECK_EQ(out.len, sizeof req);
        bs_wbuf_reset(&out);
        if (variant == 0) {
            CHECK_EQ(h_feed(&h, false, err_answer, sizeof err_answer, 100, &out), BS_OK);
            CHECK_EQ(out.len, sizeof err_answer);
            CHECK(memcmp(out.data, err_answer, sizeof err_answer) == 0);
            CHECK(h.ops->is_quiescent(h.st));
        } else {
            CHECK(h_feed(&h, false, bad_ok, sizeof bad_ok, 100, &out) != BS_OK);
            CHECK_EQ(out.len, 0);
        }
        bs_wbuf_free(&out);
        h_close(&h);
    }
}

/* ---- request timing split ---- */

/* Sleep at least `ms` milliseconds (the split's tests only use lower bounds
 * of elapsed time, which a sleep guarantees on any machine). */
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Count and sum of one latency histogram of listener "t". */
static void lat_hist(const char *name, const char *api, const char *stage, uint64_t *count,
                     double *sum)
{
    size_t nb;
    const double *b = bs_metrics_latency_bounds_s(&nb);
    bs_histogram *hg = stage ? bs_metrics_histogram_kv(name, "x", b, nb, "listener", "t", "api",
                                                       api, "stage", stage, NULL)
                             : bs_metrics_histogram_kv(name, "x", b, nb, "listener", "t", "api",
                                                       api, NULL);
    CHECK(hg != NULL);
    *count = bs_histogram_count(hg);
    *sum = bs_histogram_sum(hg);
}

typedef struct split_snap {
    uint64_t n_broker, n_sidecar, n_total, n_stage_broker;
    double broker, sidecar, total, stage_broker;
} split_snap;

static void split_read(const char *api, split_snap *x)
{
    lat_hist("brokerside_kafka_broker_duration_seconds", api, NULL, &x->n_broker, &x->broker);
    lat_hist("brokerside_kafka_sidecar_duration_seconds", api, NULL, &x->n_sidecar, &x->sidecar);
    lat_hist("brokerside_kafka_request_duration_seconds", api, "total", &x->n_total, &x->total);
    lat_hist("brokerside_kafka_request_duration_seconds", api, "broker", &x->n_stage_broker,
             &x->stage_broker);
}

/* Time in the broker runs from the request's last byte written upstream
 * (on_upstream_written, not when it was handed to `fwd`) to the response's
 * first byte; everything else (a request arriving in pieces, waiting to be
 * written) is the sidecar's; broker + sidecar = total per request. */
static void test_timing_split(void)
{
    harness h;
    h_open(&h, 1 << 20, NULL);
    split_snap a, b;
    split_read("Heartbeat", &a);
    bs_wbuf req, resp, out;
    bs_wbuf_init(&req, 0);
    bs_wbuf_init(&resp, 0);
    bs_wbuf_init(&out, 0);
    heartbeat_req(&req, 5);
    heartbeat_resp(&resp, 5, 0);
    /* The first 3 bytes arrive, the rest 40 ms later: the request's time
     * starts at its first byte. */
    CHECK_EQ(bs_buf_append(&h.cin, req.data, 3), BS_OK);
    CHECK_EQ(h.ops->on_client_bytes(h.st, &h.cin, &h.cfwd, &h.cback), BS_OK);
    sleep_ms(40);
    CHECK_EQ(bs_buf_append(&h.cin, req.data + 3, req.len - 3), BS_OK);
    CHECK_EQ(h.ops->on_client_bytes(h.st, &h.cin, &h.cfwd, &h.cback), BS_OK);
    CHECK_EQ(bs_buf_readable(&h.cfwd), req.len);
    /* Forwarded into the buffer, written only 40 ms later, in two writes:
     * the broker's time starts when the last byte is written. */
    sleep_ms(40);
    h.ops->on_upstream_written(h.st, req.len - 1);
    sleep_ms(40);
    h.ops->on_upstream_written(h.st, 1);
    bs_buf_consume(&h.cfwd, req.len);
    /* the broker takes 60 ms */
    sleep_ms(60);
    CHECK_EQ(h_feed(&h, false, resp.data, resp.len, resp.len, &out), BS_OK);
    CHECK_EQ(out.len, resp.len);
    split_read("Heartbeat", &b);
    CHECK_EQ(b.n_broker - a.n_broker, 1);
    CHECK_EQ(b.n_sidecar - a.n_sidecar, 1);
    CHECK_EQ(b.n_total - a.n_total, 1);
    double broker = b.broker - a.broker, sidecar = b.sidecar - a.sidecar,
           total = b.total - a.total;
    CHECK(broker >= 0.060);
    CHECK(sidecar >= 0.120); /* 40 ms arriving + 40 + 40 ms waiting to be written */
    CHECK(fabs(broker + sidecar - total) < 1e-6);
    /* the stage="broker" series of the older family is the same measure */
    CHECK(fabs((b.stage_broker - a.stage_broker) - broker) < 1e-9);
    bs_wbuf_free(&req);
    bs_wbuf_free(&resp);
    bs_wbuf_free(&out);
    h_close(&h);
}

/* A hook parks the first response (as encryption does while a data key is
 * fetched); the second response arrived in the same read and waits behind
 * it. Its wait counts as the sidecar's: its broker time ends when its bytes
 * arrived, not when the session got to them. */
typedef struct parker {
    int released;
    void (*wake)(void *);
    void *wake_arg;
} parker;
static bs_status park_open(void *arg, const bs_kafka_hook_conn *hc, void **conn)
{
    parker *p = arg;
    p->wake = hc->wake;
    p->wake_arg = hc->wake_arg;
    *conn = p;
    return BS_OK;
}
static bool park_wants(void *arg, int16_t api, int16_t ver)
{
    (void)arg;
    (void)ver;
    return api == 12;
}
static bs_status park_first(void *arg, const bs_kafka_inflight *req, const uint8_t *frame,
                            size_t len, bs_wbuf *rep, bs_kafka_hook_verdict *v)
{
    (void)frame, (void)len, (void)rep;
    parker *p = arg;
    *v = req->correlation_id == 1 && !p->released ? BS_KAFKA_HOOK_HOLD : BS_KAFKA_HOOK_PASS;
    return BS_OK;
}

static void test_timing_split_queued_response(void)
{
    parker pk = {0};
    bs_kafka_hook hooks[] = {
        {.name = "park", .wants_response = park_wants, .on_response = park_first, .arg = &pk,
         .conn_open = park_open},
    };
    bs_kafka_session_factory fac = {.hooks = hooks, .n_hooks = 1};
    harness h;
    h_open(&h, 1 << 20, &fac);
    CHECK(pk.wake != NULL);
    split_snap a, b;
    split_read("Heartbeat", &a);
    bs_wbuf reqs, resps, out;
    bs_wbuf_init(&reqs, 0);
    bs_wbuf_init(&resps, 0);
    bs_wbuf_init(&out, 0);
    heartbeat_req(&reqs, 1);
    heartbeat_req(&reqs, 2);
    CHECK_EQ(h_feed(&h, true, reqs.data, reqs.len, reqs.len, &out), BS_OK);
    heartbeat_resp(&resps, 1, 0);
    heartbeat_resp(&resps, 2, 0);
    bs_wbuf_reset(&out);
    /* both responses arrive in one read */
    CHECK_EQ(h_feed(&h, false, resps.data, resps.len, resps.len, &out), BS_OK);
    CHECK_EQ(out.len, 0); /* the first is parked, the second waits behind it */
    sleep_ms(80);
    pk.released = 1;
    pk.wake(pk.wake_arg);
    CHECK_EQ(h_feed(&h, false, NULL, 0, 1, &out), BS_OK);
    CHECK_EQ(out.len, resps.len);
    split_read("Heartbeat", &b);
    CHECK_EQ(b.n_broker - a.n_broker, 2);
    CHECK_EQ(b.n_sidecar - a.n_sidecar, 2);
    /* each waited 80 ms in the sidecar: the second's wait behind the first
     * is not counted as the broker's */
    CHECK(b.sidecar - a.sidecar >= 0.160);
    CHECK(fabs((b.broker - a.broker) + (b.sidecar - a.sidecar) - (b.total - a.total)) < 1e-6);
    bs_wbuf_free(&reqs);
    bs_wbuf_free(&resps);
    bs_wbuf_free(&out);
    h_close(&h);
}

int main(void)
{
    RUN(test_pipelined);
    RUN(test_every_split);
    RUN(test_acks_zero);
    RUN(test_correlation_mismatch);
    RUN(test_oversize_and_malformed);
    RUN(test_unmapped_node);
    RUN(test_streaming_large);
    RUN(test_quiescence);
    RUN(test_hooks);
    RUN(test_undecodable_request_not_forwarded);
    RUN(test_held_request_bounds);
    RUN(test_topic_needs_confirmation);
    RUN(test_topic_cap);
    RUN(test_api_versions_answers);
    RUN(test_topic_ids);
    RUN(test_label_cardinality);
    RUN(test_pipeline_backpressure);
    RUN(test_timing_split);
    RUN(test_timing_split_queued_response);
    bs_kafka_session_reset_globals();
    bs_metrics_shutdown();
    return test_report();
}
