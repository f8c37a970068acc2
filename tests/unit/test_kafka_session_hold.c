/* Unit tests for the HOLD and ANSWER hook verdicts of src/proxy/kafka_session.c
 * (the seam the record crypto hook relies on): a held request keeps every
 * later frame of the connection behind it until the hook lets it go after a
 * wake-up; a held response likewise; an answered request goes back to the
 * client only after every earlier response; an empty answer drops an acks=0
 * request; per-connection hook state is opened and closed once. */
#include <stdlib.h>

#include "brokerside/kafka_session.h"
#include "brokerside/metrics.h"
#include "test.h"

#define BUFCAP 4096

typedef struct fake {
    int opens, closes, wakes;
    int32_t hold_corr;   /* request to HOLD while !release */
    int32_t answer_corr; /* request to ANSWER */
    bool release;
    bool hold_fetch_resp; /* HOLD Fetch responses while !release */
    bs_kafka_hook_conn hc;
} fake;

static int32_t frame_corr(const uint8_t *f, bool is_req)
{
    const uint8_t *p = f + (is_req ? 8 : 4);
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
}

static bs_status f_open(void *arg, const bs_kafka_hook_conn *hc, void **conn)
{
    fake *f = arg;
    f->opens++;
    f->hc = *hc;
    *conn = f;
    return BS_OK;
}

static void f_close(void *conn)
{
    ((fake *)conn)->closes++;
}

static bool f_wants_req(void *arg, int16_t api, int16_t ver)
{
    (void)arg;
    (void)ver;
    return api == BS_KAFKA_PRODUCE;
}

static bool f_wants_resp(void *arg, int16_t api, int16_t ver)
{
    (void)arg;
    (void)ver;
    return api == BS_KAFKA_FETCH;
}

static bs_status f_req(void *arg, const bs_kafka_request_header *h, const uint8_t *frame,
                       size_t len, bs_wbuf *repl, bs_kafka_hook_verdict *v)
{
    (void)frame;
    (void)len;
    fake *f = arg;
    *v = BS_KAFKA_HOOK_PASS;
    if (h->correlation_id == f->hold_corr && !f->release) *v = BS_KAFKA_HOOK_HOLD;
    if (h->correlation_id == f->answer_corr) {
        *v = BS_KAFKA_HOOK_ANSWER;
        if (h->correlation_id >= 0) {
            /* a Produce v3 response with no topics */
            bs_wbuf_put_be32(repl, 12);
            bs_wbuf_put_be32(repl, (uint32_t)h->correlation_id);
            bs_wbuf_put_be32(repl, 0);
            bs_wbuf_put_be32(repl, 0);
        }
    }
    return BS_OK;
}

static bs_status f_resp(void *arg, const bs_kafka_inflight *req, const uint8_t *frame, size_t len,
                        bs_wbuf *repl, bs_kafka_hook_verdict *v)
{
    (void)req;
    (void)frame;
    (void)len;
    (void)repl;
    fake *f = arg;
    *v = f->hold_fetch_resp && !f->release ? BS_KAFKA_HOOK_HOLD : BS_KAFKA_HOOK_PASS;
    return BS_OK;
}

static void on_wake(void *arg)
{
    ((fake *)arg)->wakes++;
}

typedef struct h {
    const bs_session_ops *ops;
    void *st;
    bs_listener_config lc;
    bs_kafka_config kc;
    bs_kafka_hook hook;
    bs_kafka_session_factory fac;
    bs_buf cin, cfwd, cback, uin, ufwd, uback;
} h;

static void h_open(h *x, fake *f)
{
    memset(x, 0, sizeof *x);
    x->ops = bs_kafka_session_ops();
    x->lc.name = "t";
    x->kc.max_frame_bytes = 1 << 20;
    x->hook = (bs_kafka_hook){.name = "fake",
                              .wants_request = f_wants_req,
                              .on_request = f_req,
                              .wants_response = f_wants_resp,
                              .on_response = f_resp,
                              .arg = f,
                              .conn_open = f_open,
                              .conn_close = f_close};
    x->fac = (bs_kafka_session_factory){.hooks = &x->hook, .n_hooks = 1};
    bs_session_info info = {
        .listener = &x->lc, .kafka = &x->kc, .peer = "p", .wake = on_wake, .wake_arg = f};
    CHECK_EQ(x->ops->open(&x->fac, &info, &x->st), BS_OK);
    bs_buf *bs[] = {&x->cin, &x->cfwd, &x->cback, &x->uin, &x->ufwd, &x->uback};
    for (size_t i = 0; i < BS_ARRAY_LEN(bs); i++)
        CHECK_EQ(bs_buf_init(bs[i], BUFCAP), BS_OK);
}

static void h_close(h *x)
{
    x->ops->close(x->st);
    bs_buf *bs[] = {&x->cin, &x->cfwd, &x->cback, &x->uin, &x->ufwd, &x->uback};
    for (size_t i = 0; i < BS_ARRAY_LEN(bs); i++)
        bs_buf_free(bs[i]);
}

/* A Produce v3 request with no topics. */
static void produce(bs_wbuf *w, int32_t corr, int16_t acks)
{
    size_t start = w->len;
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be16(w, BS_KAFKA_PRODUCE);
    bs_wbuf_put_be16(w, 3);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_wbuf_put_be16(w, 1);
    bs_wbuf_put_u8(w, 'c');
    bs_wbuf_put_be16(w, 0xffff); /* null transactional id */
    bs_wbuf_put_be16(w, (uint16_t)acks);
    bs_wbuf_put_be32(w, 1000);
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_patch_be32(w, start, (uint32_t)(w->len - start - 4));
}

/* A Fetch v4 request (no topics) and its response (no topics). */
static void fetch_req(bs_wbuf *w, int32_t corr)
{
    size_t start = w->len;
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be16(w, BS_KAFKA_FETCH);
    bs_wbuf_put_be16(w, 4);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_wbuf_put_be16(w, 1);
    bs_wbuf_put_u8(w, 'c');
    bs_wbuf_put_be32(w, (uint32_t)-1);
    bs_wbuf_put_be32(w, 100);
    bs_wbuf_put_be32(w, 1);
    bs_wbuf_put_be32(w, 1 << 20);
    bs_wbuf_put_u8(w, 0);
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_patch_be32(w, start, (uint32_t)(w->len - start - 4));
}

static void plain_resp(bs_wbuf *w, int32_t corr)
{
    bs_wbuf_put_be32(w, 12);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be32(w, 0);
}

/* Append bytes to `in` and run the filter of that side once. */
static bs_status feed(h *x, bool client, const void *p, size_t n)
{
    bs_buf *in = client ? &x->cin : &x->uin;
    if (n) CHECK_EQ(bs_buf_append(in, p, n), BS_OK);
    return client ? x->ops->on_client_bytes(x->st, in, &x->cfwd, &x->cback)
                  : x->ops->on_upstream_bytes(x->st, in, &x->ufwd, &x->uback);
}

/* Correlation ids of the frames in `b` (consumed), into ids[]; returns the count. */
static size_t drain_ids(bs_buf *b, bool is_req, int32_t *ids, size_t max)
{
    size_t n = 0;
    while (bs_buf_readable(b) >= 8 && n < max) {
        const uint8_t *p = bs_buf_read_ptr(b);
        uint32_t len = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        CHECK(bs_buf_readable(b) >= len + 4u);
        ids[n++] = frame_corr(p, is_req);
        bs_buf_consume(b, len + 4);
    }
    return n;
}

/* A held request keeps the next ones (also unhooked APIs) behind it. */
static void test_hold_request_keeps_order(void)
{
    fake f = {.hold_corr = 1, .answer_corr = -100};
    h x;
    h_open(&x, &f);
    CHECK_EQ(f.opens, 1);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    produce(&w, 1, -1);
    fetch_req(&w, 2);
    produce(&w, 3, -1);
    CHECK_EQ(feed(&x, true, w.data, w.len), BS_OK);
    CHECK_EQ(bs_buf_readable(&x.cfwd), 0u);
    CHECK(!x.ops->is_quiescent(x.st));
    /* a wake-up while what the hook waits for is still missing: parked again */
    f.hc.wake(f.hc.wake_arg);
    CHECK_EQ(feed(&x, true, NULL, 0), BS_OK);
    CHECK_EQ(bs_buf_readable(&x.cfwd), 0u);
    f.release = true;
    f.hc.wake(f.hc.wake_arg); /* what the DEK waiter does */
    CHECK_EQ(f.wakes, 2);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(feed(&x, true, NULL, 0), BS_OK);
    int32_t ids[8];
    CHECK_EQ(drain_ids(&x.cfwd, true, ids, 8), 3u);
    CHECK_EQ(ids[0], 1);
    CHECK_EQ(ids[1], 2);
    CHECK_EQ(ids[2], 3);
    bs_wbuf_free(&w);
    h_close(&x);
    CHECK_EQ(f.closes, 1);
}

/* An answered request reaches the client only after the earlier response,
 * and is never forwarded; an acks=0 one is dropped without an answer. */
static void test_answer_after_earlier_responses(void)
{
    fake f = {.hold_corr = -100, .answer_corr = 11};
    h x;
    h_open(&x, &f);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    produce(&w, 10, -1);
    produce(&w, 11, -1);
    produce(&w, 12, -1);
    CHECK_EQ(feed(&x, true, w.data, w.len), BS_OK);
    int32_t ids[8];
    CHECK_EQ(drain_ids(&x.cfwd, true, ids, 8), 1u); /* 10 only: 12 waits behind the answer */
    CHECK_EQ(ids[0], 10);
    CHECK_EQ(bs_buf_readable(&x.cback), 0u);
    bs_wbuf_reset(&w);
    plain_resp(&w, 10);
    CHECK_EQ(feed(&x, false, w.data, w.len), BS_OK);
    CHECK_EQ(drain_ids(&x.ufwd, false, ids, 8), 1u);
    CHECK_EQ(ids[0], 10);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(feed(&x, true, NULL, 0), BS_OK);
    CHECK_EQ(drain_ids(&x.cback, false, ids, 8), 1u);
    CHECK_EQ(ids[0], 11);
    CHECK_EQ(drain_ids(&x.cfwd, true, ids, 8), 1u);
    CHECK_EQ(ids[0], 12);
    bs_wbuf_reset(&w);
    plain_resp(&w, 12);
    CHECK_EQ(feed(&x, false, w.data, w.len), BS_OK);
    CHECK_EQ(drain_ids(&x.ufwd, false, ids, 8), 1u);
    CHECK(x.ops->is_quiescent(x.st));
    /* a response frame as the answer to an acks=0 request is a hook bug: close */
    f.answer_corr = 20;
    bs_wbuf_reset(&w);
    produce(&w, 20, 0);
    CHECK_EQ(feed(&x, true, w.data, w.len), BS_E_MALFORMED);
    bs_wbuf_free(&w);
    h_close(&x);
}

/* The empty answer (drop) for acks=0. */
static bs_status f_req_drop(void *arg, const bs_kafka_request_header *h, const uint8_t *frame,
                            size_t len, bs_wbuf *repl, bs_kafka_hook_verdict *v)
{
    (void)arg;
    (void)h;
    (void)frame;
    (void)len;
    (void)repl;
    *v = BS_KAFKA_HOOK_ANSWER;
    return BS_OK;
}

static void test_drop_acks0(void)
{
    fake f = {.hold_corr = -100, .answer_corr = -100};
    h x;
    h_open(&x, &f);
    x.hook.on_request = f_req_drop;
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    produce(&w, 30, 0);
    CHECK_EQ(feed(&x, true, w.data, w.len), BS_OK);
    CHECK_EQ(feed(&x, true, NULL, 0), BS_OK);
    CHECK_EQ(bs_buf_readable(&x.cfwd), 0u);
    CHECK_EQ(bs_buf_readable(&x.cback), 0u);
    CHECK(x.ops->is_quiescent(x.st));
    /* an empty answer to a request that expects one is a hook bug: close */
    bs_wbuf_reset(&w);
    produce(&w, 31, -1);
    CHECK_EQ(feed(&x, true, w.data, w.len), BS_E_MALFORMED);
    bs_wbuf_free(&w);
    h_close(&x);
}

/* A held Fetch response keeps the next response behind it. */
static void test_hold_response_keeps_order(void)
{
    fake f = {.hold_corr = -100, .answer_corr = -100, .hold_fetch_resp = true};
    h x;
    h_open(&x, &f);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    fetch_req(&w, 1);
    produce(&w, 2, -1);
    CHECK_EQ(feed(&x, true, w.data, w.len), BS_OK);
    int32_t ids[8];
    CHECK_EQ(drain_ids(&x.cfwd, true, ids, 8), 2u);
    bs_wbuf_reset(&w);
    /* Fetch v4 response with no topics: throttle + empty array */
    bs_wbuf_put_be32(&w, 12);
    bs_wbuf_put_be32(&w, 1);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_be32(&w, 0);
    plain_resp(&w, 2);
    CHECK_EQ(feed(&x, false, w.data, w.len), BS_OK);
    CHECK_EQ(bs_buf_readable(&x.ufwd), 0u);
    f.release = true;
    /* without the wake-up the held response is not rerun */
    CHECK_EQ(feed(&x, false, NULL, 0), BS_OK);
    CHECK_EQ(bs_buf_readable(&x.ufwd), 0u);
    f.hc.wake(f.hc.wake_arg);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(feed(&x, false, NULL, 0), BS_OK);
    CHECK_EQ(drain_ids(&x.ufwd, false, ids, 8), 2u);
    CHECK_EQ(ids[0], 1);
    CHECK_EQ(ids[1], 2);
    bs_wbuf_free(&w);
    h_close(&x);
}

int main(void)
{
    RUN(test_hold_request_keeps_order);
    RUN(test_answer_after_earlier_responses);
    RUN(test_drop_acks0);
    RUN(test_hold_response_keeps_order);
    bs_metrics_shutdown();
    bs_kafka_session_reset_globals();
    return test_report();
}
