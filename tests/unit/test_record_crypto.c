/* Unit tests for src/proxy/record_crypto.c: Produce requests and Fetch
 * responses built with the record batch builder for each codec and several
 * versions go through the hook against a real DEK manager and local keyring:
 * encrypt -> decrypt round trip record by record (keys, headers, timestamps,
 * offsets, attributes), tombstones, control batches, HOLD until the key
 * arrives and the wake-up, envelope injection, unmatched-topic policies,
 * magic 1 message sets, acks=0, keyring failure and recovery, tampered
 * ciphertext, partial trailing batch. */
#include <ev.h>
#include <stdlib.h>
#include <unistd.h>

#include "brokerside/envelope.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_session.h"
#include "brokerside/keyring.h"
#include "brokerside/metrics.h"
#include "brokerside/record_batch.h"
#include "brokerside/record_crypto.h"
#include "test.h"

/* ------------------------------------------------ a keyring that can fail */

typedef struct gate_kr {
    bs_keyring base;
    bs_keyring *inner;
    bool fail;
} gate_kr;

static bs_status gk_gen(bs_keyring *kr, const char *keyref, const bs_enc_context *ctx,
                        bs_keyring_dek_cb cb, void *arg)
{
    gate_kr *g = bs_container_of(kr, gate_kr, base);
    if (g->fail) {
        cb(arg, BS_E_IO, NULL, 0, NULL, 0);
        return BS_OK;
    }
    return bs_keyring_generate_dek(g->inner, keyref, ctx, cb, arg);
}

static bs_status gk_dec(bs_keyring *kr, const char *keyref, const uint8_t *edek, size_t edek_len,
                        const bs_enc_context *ctx, bs_keyring_key_cb cb, void *arg)
{
    gate_kr *g = bs_container_of(kr, gate_kr, base);
    if (g->fail) {
        cb(arg, BS_E_IO, NULL, 0);
        return BS_OK;
    }
    return bs_keyring_decrypt_edek(g->inner, keyref, edek, edek_len, ctx, cb, arg);
}

static void gk_destroy(bs_keyring *kr)
{
    (void)kr;
}

static const bs_keyring_ops gate_ops = {"gate", gk_gen, gk_dec, gk_destroy};

/* ------------------------------------------------------------ fixture */

typedef struct fx {
    char dir[64], path[128];
    bs_keyring *local;
    gate_kr gate;
    struct ev_loop *cl, *wl;
    bs_dek_manager *m;
    bs_dek_worker *w;
    bs_topic_rule rules[1];
    bs_encryption_config enc;
    bs_record_crypto *rc;
    bs_kafka_hook hook;
    void *conn;
    int wakes;
} fx;

static void on_wake(void *arg)
{
    ((fx *)arg)->wakes++;
}

static bool fx_init(fx *f, bool reject_unmatched)
{
    memset(f, 0, sizeof *f);
    char err[256];
    snprintf(f->dir, sizeof f->dir, "/tmp/bs-rc-XXXXXX");
    if (!mkdtemp(f->dir)) return false;
    snprintf(f->path, sizeof f->path, "%s/master.key", f->dir);
    if (bs_keyring_local_keygen(f->path, err, sizeof err) != BS_OK) return false;
    if (bs_keyring_local_open(f->path, &f->local, err, sizeof err) != BS_OK) return false;
    f->gate.base.ops = &gate_ops;
    f->gate.inner = f->local;
    f->cl = ev_loop_new(EVFLAG_AUTO);
    f->wl = ev_loop_new(EVFLAG_AUTO);
    bs_dek_manager_config cfg = {.keyring = &f->gate.base,
                                 .loop = f->cl,
                                 .policy = {1000, 3600},
                                 /* long enough that a rerun right after the
                                  * failure's wake-up always sees it */
                                 .failure_backoff_ms = 500};
    if (bs_dek_manager_new(&cfg, &f->m) != BS_OK) return false;
    if (bs_dek_worker_new(f->m, f->wl, &f->w) != BS_OK) return false;
    f->rules[0] = (bs_topic_rule){.match = "enc-*", .key = "orders-key"};
    f->enc = (bs_encryption_config){.enabled = true,
                                    .topics = f->rules,
                                    .n_topics = 1,
                                    .reject_unmatched = reject_unmatched};
    if (bs_record_crypto_new(&f->enc, 0, &f->rc) != BS_OK) return false;
    bs_record_crypto_bind_worker(f->w);
    f->hook = bs_record_crypto_hook(f->rc);
    bs_kafka_hook_conn hc = {.wake = on_wake, .wake_arg = f, .listener = "t", .peer = "p"};
    return f->hook.conn_open(f->hook.arg, &hc, &f->conn) == BS_OK;
}

static void fx_free(fx *f)
{
    if (f->hook.conn_close) f->hook.conn_close(f->conn);
    bs_record_crypto_free(f->rc);
    bs_record_crypto_bind_worker(NULL);
    bs_dek_worker_free(f->w);
    bs_dek_manager_free(f->m);
    if (f->cl) ev_loop_destroy(f->cl);
    if (f->wl) ev_loop_destroy(f->wl);
    bs_keyring_free(f->local);
    unlink(f->path);
    rmdir(f->dir);
}

/* Run both loops until a wake-up came (bounded: never hangs). */
static bool fx_wait_wake(fx *f)
{
    int before = f->wakes;
    for (int i = 0; i < 5000 && f->wakes == before; i++) {
        ev_run(f->cl, EVRUN_NOWAIT);
        ev_run(f->wl, EVRUN_NOWAIT);
        if (f->wakes == before) usleep(1000);
    }
    return f->wakes > before;
}

/* ------------------------------------------------------------ builders */

typedef struct rec_in {
    const char *key; /* NULL = null key */
    const char *value; /* NULL = tombstone */
    int nheaders;
} rec_in;

/* Append a v2 batch of `n` records with codec `codec` (and extra attributes). */
static void build_batch(bs_wbuf *out, int codec, int16_t extra_attr, int64_t base_offset,
                        const rec_in *recs, size_t n)
{
    bs_record_spec specs[16];
    bs_wbuf hdrs[16];
    for (size_t i = 0; i < n; i++) {
        bs_wbuf_init(&hdrs[i], 0);
        for (int h = 0; h < recs[i].nheaders; h++) {
            char hk[16], hv[48]; /* room for any size_t and int gcc can see */
            snprintf(hk, sizeof hk, "h%d", h);
            snprintf(hv, sizeof hv, "hv%zu-%d", i, h);
            bs_wbuf_put_varint(&hdrs[i], (int32_t)strlen(hk));
            bs_wbuf_put_str(&hdrs[i], hk);
            bs_wbuf_put_varint(&hdrs[i], (int32_t)strlen(hv));
            bs_wbuf_put_str(&hdrs[i], hv);
        }
        specs[i] = (bs_record_spec){
            .timestamp_delta = (int64_t)i * 7,
            .offset_delta = (int32_t)i,
            .key = (const uint8_t *)recs[i].key,
            .key_len = recs[i].key ? (int32_t)strlen(recs[i].key) : -1,
            .value = (const uint8_t *)recs[i].value,
            .value_len = recs[i].value ? (int32_t)strlen(recs[i].value) : -1,
            .headers = hdrs[i].data,
            .headers_len = hdrs[i].len,
            .header_count = (uint32_t)recs[i].nheaders,
        };
    }
    bs_record_batch hdr = {.base_offset = base_offset,
                           .partition_leader_epoch = 3,
                           .attributes = (int16_t)(codec | extra_attr),
                           .last_offset_delta = (int32_t)n - 1,
                           .base_timestamp = 1700000000000,
                           .max_timestamp = 1700000000000 + (int64_t)(n - 1) * 7,
                           .producer_id = 4242,
                           .producer_epoch = 1,
                           .base_sequence = 10};
    CHECK_EQ(bs_record_batch_build(&hdr, specs, n, out), BS_OK);
    for (size_t i = 0; i < n; i++)
        bs_wbuf_free(&hdrs[i]);
}

typedef struct part_in {
    const char *topic;
    const uint8_t *records;
    size_t len;
} part_in;

/* A Produce request frame (header v1, or v2 for flexible versions). */
/* Produce v13+ name topics by id: build_produce writes this one for every topic. */
static const uint8_t *g_produce_topic_id;

static void build_produce(bs_wbuf *w, int16_t ver, int16_t acks, int32_t corr,
                          const part_in *parts, size_t n)
{
    bool flex = ver >= 9;
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be16(w, BS_KAFKA_PRODUCE);
    bs_wbuf_put_be16(w, (uint16_t)ver);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    bs_kafka_put_string(w, false, (const uint8_t *)"test", 4);
    if (flex) bs_wbuf_put_uvarint(w, 0);
    if (ver >= 3) bs_kafka_put_string(w, flex, NULL, -1);
    bs_wbuf_put_be16(w, (uint16_t)acks);
    bs_wbuf_put_be32(w, 30000);
    bs_kafka_put_array_len(w, flex, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        if (ver >= 13)
            bs_wbuf_put(w, g_produce_topic_id, 16);
        else
            bs_kafka_put_string(w, flex, (const uint8_t *)parts[i].topic,
                                (int32_t)strlen(parts[i].topic));
        bs_kafka_put_array_len(w, flex, 1);
        bs_wbuf_put_be32(w, (uint32_t)i);
        bs_kafka_put_bytes(w, flex, parts[i].records, (int32_t)parts[i].len);
        if (flex) bs_wbuf_put_uvarint(w, 0);
        if (flex) bs_wbuf_put_uvarint(w, 0);
    }
    if (flex) bs_wbuf_put_uvarint(w, 0);
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
}

/* A Fetch response frame (v4 or v12) with one partition per entry. */
static void build_fetch(bs_wbuf *w, int16_t ver, int32_t corr, const part_in *parts, size_t n)
{
    bool flex = ver >= 12;
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    if (flex) bs_wbuf_put_uvarint(w, 0);
    bs_wbuf_put_be32(w, 0); /* throttle */
    if (ver >= 7) {
        bs_wbuf_put_be16(w, 0);
        bs_wbuf_put_be32(w, 0);
    }
    bs_kafka_put_array_len(w, flex, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        if (ver >= 13)
            bs_wbuf_put(w, g_produce_topic_id, 16);
        else
            bs_kafka_put_string(w, flex, (const uint8_t *)parts[i].topic,
                                (int32_t)strlen(parts[i].topic));
        bs_kafka_put_array_len(w, flex, 1);
        bs_wbuf_put_be32(w, (uint32_t)i);
        bs_wbuf_put_be16(w, 0);
        bs_wbuf_put_be64(w, 100);
        bs_wbuf_put_be64(w, 100);
        if (ver >= 5) bs_wbuf_put_be64(w, 0);
        bs_kafka_put_array_len(w, flex, -1);
        if (ver >= 11) bs_wbuf_put_be32(w, (uint32_t)-1);
        bs_kafka_put_bytes(w, flex, parts[i].records, (int32_t)parts[i].len);
        if (flex) bs_wbuf_put_uvarint(w, 0);
        if (flex) bs_wbuf_put_uvarint(w, 0);
    }
    if (flex) bs_wbuf_put_uvarint(w, 0);
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
}

/* ------------------------------------------------------------ running the hook */

/* Run the request hook until it decides (HOLD -> wait for the wake-up -> rerun). */
static bs_kafka_hook_verdict run_request(fx *f, const bs_wbuf *frame, bs_wbuf *out, int *holds)
{
    for (int round = 0; round < 5; round++) {
        bs_kafka_request_header h;
        CHECK_EQ(bs_kafka_parse_request_header(frame->data + 4, frame->len - 4, &h), BS_OK);
        bs_wbuf_reset(out);
        bs_kafka_hook_verdict v = BS_KAFKA_HOOK_PASS;
        CHECK(f->hook.wants_request(f->conn, h.api_key, h.api_version));
        CHECK_EQ(f->hook.on_request(f->conn, &h, frame->data, frame->len, out, &v), BS_OK);
        if (v != BS_KAFKA_HOOK_HOLD) return v;
        if (holds) (*holds)++;
        CHECK(fx_wait_wake(f));
    }
    return BS_KAFKA_HOOK_HOLD;
}

/* Same for a Fetch response answering a request of version `ver`. */
static bs_kafka_hook_verdict run_fetch(fx *f, int16_t ver, const bs_wbuf *frame, bs_wbuf *out)
{
    bs_kafka_inflight inf = {.correlation_id = 9, .api_key = BS_KAFKA_FETCH, .api_version = ver,
                             .expects_response = true};
    for (int round = 0; round < 5; round++) {
        bs_wbuf_reset(out);
        bs_kafka_hook_verdict v = BS_KAFKA_HOOK_PASS;
        CHECK(f->hook.wants_response(f->conn, BS_KAFKA_FETCH, ver));
        CHECK_EQ(f->hook.on_response(f->conn, &inf, frame->data, frame->len, out, &v), BS_OK);
        if (v != BS_KAFKA_HOOK_HOLD) return v;
        CHECK(fx_wait_wake(f));
    }
    return BS_KAFKA_HOOK_HOLD;
}

/* Per partition of a decoded Produce request (or Fetch response when
 * !is_req): its records and error code, in order. */
typedef struct part_out {
    const uint8_t *records;
    size_t len;
    bool null;
    int64_t error;
} part_out;

static size_t decode_parts(const bs_wbuf *frame, bool is_req, int16_t ver, bs_kafka_arena *a,
                           part_out *out, size_t max)
{
    size_t hlen = 0;
    CHECK(frame->len >= 8);
    if (frame->len < 8) return 0; /* the hook did not produce a frame (already reported) */
    if (is_req) {
        bs_kafka_request_header h;
        CHECK_EQ(bs_kafka_parse_request_header(frame->data + 4, frame->len - 4, &h), BS_OK);
        hlen = h.header_len;
    } else {
        hlen = ver >= 12 ? 5 : 4;
    }
    const bs_kafka_message *m = bs_kafka_message_find(is_req ? BS_KAFKA_PRODUCE : BS_KAFKA_FETCH,
                                                      is_req);
    bs_kafka_obj *o = NULL;
    CHECK_EQ(bs_kafka_decode(m, ver, frame->data + 4 + hlen, frame->len - 4 - hlen, a, &o),
             BS_OK);
    if (!o) return 0;
    const bs_kafka_val *ts = &o->vals[bs_kafka_struct_field(o->schema, is_req ? "TopicData"
                                                                              : "Responses")];
    size_t k = 0;
    for (int32_t t = 0; t < ts->count; t++) {
        const bs_kafka_obj *to = &ts->items[t];
        const bs_kafka_val *ps =
            &to->vals[bs_kafka_struct_field(to->schema, is_req ? "PartitionData" : "Partitions")];
        for (int32_t i = 0; i < ps->count && k < max; i++, k++) {
            const bs_kafka_obj *po = &ps->items[i];
            const bs_kafka_val *rv = &po->vals[bs_kafka_struct_field(po->schema, "Records")];
            out[k] = (part_out){.records = rv->p, .len = rv->n, .null = rv->null};
            if (!is_req)
                out[k].error = po->vals[bs_kafka_struct_field(po->schema, "ErrorCode")].i;
        }
    }
    return k;
}

/* Error codes of a Produce response frame, in partition order. */
static size_t produce_errors(const bs_wbuf *frame, int16_t ver, int32_t corr, int64_t *errs,
                             size_t max)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_PRODUCE, false);
    size_t hlen = ver >= 9 ? 5 : 4;
    CHECK(frame->len > 8);
    int32_t got = (int32_t)(((uint32_t)frame->data[4] << 24) | ((uint32_t)frame->data[5] << 16) |
                            ((uint32_t)frame->data[6] << 8) | frame->data[7]);
    CHECK_EQ(got, corr);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    bs_kafka_obj *o = NULL;
    CHECK_EQ(bs_kafka_decode(m, ver, frame->data + 4 + hlen, frame->len - 4 - hlen, &a, &o), BS_OK);
    size_t k = 0;
    if (o) {
        const bs_kafka_val *rs = &o->vals[bs_kafka_struct_field(o->schema, "Responses")];
        for (int32_t t = 0; t < rs->count; t++) {
            const bs_kafka_obj *to = &rs->items[t];
            const bs_kafka_val *ps =
                &to->vals[bs_kafka_struct_field(to->schema, "PartitionResponses")];
            for (int32_t i = 0; i < ps->count && k < max; i++, k++) {
                const bs_kafka_obj *po = &ps->items[i];
                errs[k] = po->vals[bs_kafka_struct_field(po->schema, "ErrorCode")].i;
                CHECK_EQ(po->vals[bs_kafka_struct_field(po->schema, "BaseOffset")].i, -1);
            }
        }
    }
    bs_kafka_arena_free(&a);
    return k;
}

/* Compare two record blobs batch by batch and record by record. values:
 * 0 = equal, 1 = every non-null value of `b` is an envelope (not equal to
 * `a`'s). Returns the number of records compared. */
static int compare_blobs(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, int values)
{
    bs_batch_iter ia, ib;
    bs_batch_iter_init(&ia, a, alen);
    bs_batch_iter_init(&ib, b, blen);
    int n = 0;
    for (;;) {
        bs_batch_kind ka, kb;
        bs_record_batch ba, bb;
        CHECK_EQ(bs_batch_iter_next(&ia, &ka, &ba), BS_OK);
        CHECK_EQ(bs_batch_iter_next(&ib, &kb, &bb), BS_OK);
        CHECK_EQ(ka, kb);
        if (ka != kb || ka == BS_BATCH_END) return n;
        if (ka == BS_BATCH_PARTIAL) {
            CHECK_EQ(ba.raw_len, bb.raw_len);
            CHECK(ba.raw_len == bb.raw_len && memcmp(ba.raw, bb.raw, ba.raw_len) == 0);
            return n;
        }
        CHECK_EQ(ba.base_offset, bb.base_offset);
        CHECK_EQ(ba.attributes, bb.attributes);
        CHECK_EQ(ba.partition_leader_epoch, bb.partition_leader_epoch);
        CHECK_EQ(ba.last_offset_delta, bb.last_offset_delta);
        CHECK_EQ(ba.base_timestamp, bb.base_timestamp);
        CHECK_EQ(ba.max_timestamp, bb.max_timestamp);
        CHECK_EQ(ba.producer_id, bb.producer_id);
        CHECK_EQ(ba.producer_epoch, bb.producer_epoch);
        CHECK_EQ(ba.base_sequence, bb.base_sequence);
        CHECK_EQ(ba.record_count, bb.record_count);
        if (bs_record_batch_is_control(&ba)) {
            CHECK(ba.raw_len == bb.raw_len && memcmp(ba.raw, bb.raw, ba.raw_len) == 0);
            continue;
        }
        bs_records ra, rb;
        CHECK_EQ(bs_records_open(&ba, 1u << 26, &ra), BS_OK);
        CHECK_EQ(bs_records_open(&bb, 1u << 26, &rb), BS_OK);
        for (;;) {
            bs_record xa, xb;
            bool da = true, db = true;
            CHECK_EQ(bs_records_next(&ra, &xa, &da), BS_OK);
            CHECK_EQ(bs_records_next(&rb, &xb, &db), BS_OK);
            CHECK_EQ(da, db);
            if (da || db) break;
            n++;
            CHECK_EQ(xa.attributes, xb.attributes);
            CHECK_EQ(xa.timestamp_delta, xb.timestamp_delta);
            CHECK_EQ(xa.offset_delta, xb.offset_delta);
            CHECK_EQ(xa.key_len, xb.key_len);
            CHECK(xa.key_len <= 0 || memcmp(xa.key, xb.key, (size_t)xa.key_len) == 0);
            CHECK_EQ(xa.header_count, xb.header_count);
            CHECK_EQ(xa.headers_len, xb.headers_len);
            CHECK(xa.headers_len == xb.headers_len &&
                  memcmp(xa.headers, xb.headers, xa.headers_len) == 0);
            if (!xa.value) {
                CHECK(xb.value == NULL);
                CHECK_EQ(xb.value_len, -1);
            } else if (values == 0) {
                CHECK_EQ(xa.value_len, xb.value_len);
                CHECK(xa.value_len == xb.value_len &&
                      memcmp(xa.value, xb.value, (size_t)xa.value_len) == 0);
            } else {
                CHECK(xb.value && bs_envelope_is_envelope(xb.value, (size_t)xb.value_len));
                CHECK(xb.value_len > xa.value_len);
            }
        }
        bs_records_free(&ra);
        bs_records_free(&rb);
    }
}

static const rec_in k_recs[] = {
    {"key-0", "the first value, with some text to compress compress compress", 2},
    {NULL, "null key", 0},
    {"key-2", NULL, 1}, /* tombstone */
    {"key-3", "", 0},   /* empty value */
    {"key-4", "last value of the batch", 3},
};

/* ------------------------------------------------------------ tests */

/* Every codec, Produce v3/v9/v11, Fetch v4/v12: the first Produce waits for
 * its DEK (HOLD + wake-up), values become envelopes and everything else is
 * unchanged; the Fetch of those bytes gives back the original records. A
 * control batch and a plaintext topic pass untouched. */
static void test_round_trip_codecs_versions(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    int16_t pvers[] = {3, 9, 11}, fvers[] = {4, 12};
    int first_holds = 0;
    for (int codec = 0; codec <= 4; codec++) {
        for (size_t pv = 0; pv < BS_ARRAY_LEN(pvers); pv++) {
            bs_wbuf recs, plain, frame, out, fetch, fout;
            bs_wbuf_init(&recs, 0);
            bs_wbuf_init(&plain, 0);
            bs_wbuf_init(&frame, 0);
            bs_wbuf_init(&out, 0);
            bs_wbuf_init(&fetch, 0);
            bs_wbuf_init(&fout, 0);
            build_batch(&recs, codec, 0, 0, k_recs, BS_ARRAY_LEN(k_recs));
            rec_in ctrl[] = {{"\x00\x00\x00\x01", "\x00\x00\x00\x00\x00\x00", 0}};
            build_batch(&recs, 0, BS_BATCH_ATTR_CONTROL | BS_BATCH_ATTR_TRANSACTIONAL, 5, ctrl, 1);
            build_batch(&recs, codec, 0, 6, k_recs, 2);
            build_batch(&plain, codec, 0, 0, k_recs, BS_ARRAY_LEN(k_recs));
            part_in parts[] = {{"enc-orders", recs.data, recs.len},
                               {"plain-logs", plain.data, plain.len}};
            build_produce(&frame, pvers[pv], -1, 77, parts, 2);
            int holds = 0;
            CHECK_EQ(run_request(&f, &frame, &out, &holds), BS_KAFKA_HOOK_REPLACE);
            if (codec == 0 && pv == 0) first_holds = holds;
            bs_kafka_arena a;
            bs_kafka_arena_init(&a, 0);
            part_out po[4];
            CHECK_EQ(decode_parts(&out, true, pvers[pv], &a, po, 4), 2u);
            /* encrypted topic: same structure, values are envelopes */
            CHECK_EQ(compare_blobs(recs.data, recs.len, po[0].records, po[0].len, 1), 7);
            /* unmatched topic under "plaintext": byte for byte unchanged */
            CHECK(po[1].len == plain.len && memcmp(po[1].records, plain.data, plain.len) == 0);
            /* no plaintext value anywhere in the encrypted partition (uncompressed case) */
            if (codec == 0)
                CHECK(memmem(po[0].records, po[0].len, "last value", 10) == NULL);
            for (size_t fv = 0; fv < BS_ARRAY_LEN(fvers); fv++) {
                part_in fparts[] = {{"enc-orders", po[0].records, po[0].len},
                                    {"plain-logs", plain.data, plain.len}};
                bs_wbuf_reset(&fetch);
                build_fetch(&fetch, fvers[fv], 9, fparts, 2);
                CHECK_EQ(run_fetch(&f, fvers[fv], &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
                bs_kafka_arena b;
                bs_kafka_arena_init(&b, 0);
                part_out fo[4];
                CHECK_EQ(decode_parts(&fout, false, fvers[fv], &b, fo, 4), 2u);
                CHECK_EQ(fo[0].error, 0);
                CHECK_EQ(compare_blobs(recs.data, recs.len, fo[0].records, fo[0].len, 0), 7);
                if (codec == 0) CHECK(fo[0].len == recs.len && memcmp(fo[0].records, recs.data, recs.len) == 0);
                CHECK(fo[1].len == plain.len && memcmp(fo[1].records, plain.data, plain.len) == 0);
                bs_kafka_arena_free(&b);
            }
            bs_kafka_arena_free(&a);
            bs_wbuf_free(&recs);
            bs_wbuf_free(&plain);
            bs_wbuf_free(&frame);
            bs_wbuf_free(&out);
            bs_wbuf_free(&fetch);
            bs_wbuf_free(&fout);
        }
    }
    CHECK_EQ(first_holds, 1); /* the very first request waited for its key */
    fx_free(&f);
}

/* A Fetch with nothing encrypted passes as it is (no re-encode); a partial
 * trailing batch after encrypted ones is kept byte for byte. */
static void test_fetch_passthrough_and_partial(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    bs_wbuf recs, frame, out, fetch, fout, tail;
    bs_wbuf_init(&recs, 0);
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_init(&fetch, 0);
    bs_wbuf_init(&fout, 0);
    bs_wbuf_init(&tail, 0);
    build_batch(&recs, 3, 0, 0, k_recs, BS_ARRAY_LEN(k_recs));
    part_in parts[] = {{"enc-a", recs.data, recs.len}};
    build_produce(&frame, 7, 1, 1, parts, 1);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    part_out po[1];
    CHECK_EQ(decode_parts(&out, true, 7, &a, po, 1), 1u);
    /* plaintext fetch: PASS */
    part_in pf[] = {{"enc-a", recs.data, recs.len}};
    build_fetch(&fetch, 4, 9, pf, 1);
    CHECK_EQ(run_fetch(&f, 4, &fetch, &fout), BS_KAFKA_HOOK_PASS);
    /* encrypted + a cut batch */
    bs_wbuf_put(&tail, po[0].records, po[0].len);
    build_batch(&tail, 0, 0, 5, k_recs, 3);
    size_t cut = po[0].len + 40;
    part_in ef[] = {{"enc-a", tail.data, cut}};
    bs_wbuf_reset(&fetch);
    build_fetch(&fetch, 12, 9, ef, 1);
    CHECK_EQ(run_fetch(&f, 12, &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena b;
    bs_kafka_arena_init(&b, 0);
    part_out fo[1];
    CHECK_EQ(decode_parts(&fout, false, 12, &b, fo, 1), 1u);
    CHECK_EQ(fo[0].error, 0);
    CHECK(fo[0].len > 40 && memcmp(fo[0].records + fo[0].len - 40, tail.data + po[0].len, 40) == 0);
    CHECK_EQ(compare_blobs(recs.data, recs.len, fo[0].records, fo[0].len - 40, 0), 5);
    bs_kafka_arena_free(&a);
    bs_kafka_arena_free(&b);
    bs_wbuf_free(&recs);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    bs_wbuf_free(&fetch);
    bs_wbuf_free(&fout);
    bs_wbuf_free(&tail);
    fx_free(&f);
}

/* The value of an unlabelled counter (0 when absent). */
static int64_t counter_value(const char *name)
{
    return bs_metric_value(bs_metrics_counter(name, "", NULL));
}

/* An encrypted Produce and a decrypted Fetch, once the key is cached, count
 * their records without a metrics lookup: no process-wide registry lock on
 * the data path (docs/architecture.md, locks). */
static void test_hot_path_takes_no_metrics_lock(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    bs_wbuf recs, frame, out, fetch, fout;
    bs_wbuf_init(&recs, 0);
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_init(&fetch, 0);
    bs_wbuf_init(&fout, 0);
    build_batch(&recs, 0, 0, 0, k_recs, BS_ARRAY_LEN(k_recs));
    part_in parts[] = {{"enc-a", recs.data, recs.len}};
    build_produce(&frame, 9, 1, 1, parts, 1);
    /* the first request fetches the key (which may register DEK metrics) */
    int64_t enc_first = counter_value("brokerside_records_encrypted_total");
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    part_out po[1];
    CHECK_EQ(decode_parts(&out, true, 9, &a, po, 1), 1u);
    part_in ef[] = {{"enc-a", po[0].records, po[0].len}};
    build_fetch(&fetch, 12, 9, ef, 1);
    CHECK_EQ(run_fetch(&f, 12, &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
    int64_t enc0 = counter_value("brokerside_records_encrypted_total");
    int64_t per_request = enc0 - enc_first; /* values (records with a null value stay) */
    CHECK(per_request > 0);
    int64_t dec0 = counter_value("brokerside_records_decrypted_total");
    uint64_t lookups = bs_metrics_lookups();
    for (int i = 0; i < 3; i++) {
        bs_wbuf_reset(&out);
        bs_wbuf_reset(&fout);
        CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_REPLACE);
        CHECK_EQ(run_fetch(&f, 12, &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
    }
    CHECK_EQ(bs_metrics_lookups(), lookups);
    CHECK_EQ(counter_value("brokerside_records_encrypted_total") - enc0, 3 * per_request);
    CHECK_EQ(counter_value("brokerside_records_decrypted_total") - dec0, 3 * per_request);
    bs_kafka_arena_free(&a);
    bs_wbuf_free(&recs);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    bs_wbuf_free(&fetch);
    bs_wbuf_free(&fout);
    fx_free(&f);
}

/* bs_record_value_fn flipping one ciphertext byte (the batch CRC stays valid). */
static bs_status flip_fn(void *ctx, const bs_record_batch *batch, const bs_record *rec,
                         bs_wbuf *nv, bool *replace)
{
    (void)ctx;
    (void)batch;
    *replace = false;
    if (!rec->value || rec->value_len < 40) return BS_OK;
    bs_wbuf_put(nv, rec->value, (size_t)rec->value_len);
    nv->data[nv->len - 20] ^= 1;
    *replace = true;
    return BS_OK;
}

/* Tampered ciphertext or an envelope read under another topic: the partition
 * gets CORRUPT_MESSAGE and no records; the other partition is served. */
static void test_fetch_tampered(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    bs_wbuf recs, frame, out, bad, fetch, fout;
    bs_wbuf_init(&recs, 0);
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_init(&bad, 0);
    bs_wbuf_init(&fetch, 0);
    bs_wbuf_init(&fout, 0);
    build_batch(&recs, 1, 0, 0, k_recs, BS_ARRAY_LEN(k_recs));
    part_in parts[] = {{"enc-t", recs.data, recs.len}};
    build_produce(&frame, 8, -1, 1, parts, 1);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    part_out po[1];
    CHECK_EQ(decode_parts(&out, true, 8, &a, po, 1), 1u);
    CHECK_EQ(bs_records_blob_transform(po[0].records, po[0].len, 1u << 26, flip_fn, NULL, &bad, NULL),
             BS_OK);
    int64_t fail0 = 0;
    part_in ef[] = {{"enc-t", bad.data, bad.len},
                    {"enc-t", po[0].records, po[0].len},
                    {"enc-other", po[0].records, po[0].len}};
    build_fetch(&fetch, 4, 9, ef, 3);
    (void)fail0;
    CHECK_EQ(run_fetch(&f, 4, &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena b;
    bs_kafka_arena_init(&b, 0);
    part_out fo[3];
    CHECK_EQ(decode_parts(&fout, false, 4, &b, fo, 3), 3u);
    CHECK_EQ(fo[0].error, BS_KERR_CORRUPT_MESSAGE);
    CHECK_EQ(fo[0].len, 0u);
    CHECK_EQ(fo[1].error, 0);
    CHECK_EQ(compare_blobs(recs.data, recs.len, fo[1].records, fo[1].len, 0), 5);
    /* the topic is in the AAD (and the KMS context): another topic cannot read it */
    CHECK_EQ(fo[2].error, BS_KERR_CORRUPT_MESSAGE);
    CHECK_EQ(fo[2].len, 0u);
    bs_kafka_arena_free(&a);
    bs_kafka_arena_free(&b);
    bs_wbuf_free(&recs);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    bs_wbuf_free(&bad);
    bs_wbuf_free(&fetch);
    bs_wbuf_free(&fout);
    fx_free(&f);
}

/* Refusals: an envelope in a produced value (87), a magic 1 message set (43),
 * an unmatched topic under "reject" (44); the innocent partition of the same
 * request gets 56; acks=0 is dropped with no answer; v3 and v9 answers. */
static void test_produce_refusals(void)
{
    fx f;
    CHECK(fx_init(&f, true));
    bs_wbuf good, inj, v1, frame, out;
    bs_wbuf_init(&good, 0);
    bs_wbuf_init(&inj, 0);
    bs_wbuf_init(&v1, 0);
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    build_batch(&good, 0, 0, 0, k_recs, 2);
    char envelope_like[32];
    memcpy(envelope_like, bs_envelope_magic, BS_ENVELOPE_MAGIC_LEN);
    snprintf(envelope_like + 4, sizeof envelope_like - 4, "%s", "\x01\x01 forged");
    rec_in injected[] = {{"k", "fine", 0}, {"k", envelope_like, 0}};
    build_batch(&inj, 2, 0, 0, injected, 2);
    /* A magic 1 message: offset, size, crc, magic 1, attributes, timestamp, key, value. */
    bs_wbuf_put_be64(&v1, 0);
    bs_wbuf_put_be32(&v1, 4 + 1 + 1 + 8 + 4 + 4 + 3);
    bs_wbuf_put_be32(&v1, 0);
    bs_wbuf_put_u8(&v1, 1);
    bs_wbuf_put_u8(&v1, 0);
    bs_wbuf_put_be64(&v1, 0);
    bs_wbuf_put_be32(&v1, (uint32_t)-1);
    bs_wbuf_put_be32(&v1, 3);
    bs_wbuf_put(&v1, "old", 3);
    int16_t vers[] = {3, 9};
    for (size_t vi = 0; vi < 2; vi++) {
        part_in parts[] = {{"enc-x", good.data, good.len},
                           {"enc-y", inj.data, inj.len},
                           {"enc-z", v1.data, v1.len},
                           {"other", good.data, good.len}};
        bs_wbuf_reset(&frame);
        build_produce(&frame, vers[vi], -1, 1234, parts, 4);
        CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_ANSWER);
        int64_t errs[4] = {0};
        CHECK_EQ(produce_errors(&out, vers[vi], 1234, errs, 4), 4u);
        CHECK_EQ(errs[0], BS_KERR_KAFKA_STORAGE_ERROR);
        CHECK_EQ(errs[1], BS_KERR_INVALID_RECORD);
        CHECK_EQ(errs[2], BS_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT);
        CHECK_EQ(errs[3], BS_KERR_POLICY_VIOLATION);
    }
    /* acks=0: no answer at all */
    part_in one[] = {{"enc-y", inj.data, inj.len}};
    bs_wbuf_reset(&frame);
    build_produce(&frame, 5, 0, 1, one, 1);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_ANSWER);
    CHECK_EQ(out.len, 0u);
    /* an unmatched topic alone under "reject" */
    part_in other[] = {{"other", good.data, good.len}};
    bs_wbuf_reset(&frame);
    build_produce(&frame, 11, 1, 5, other, 1);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_ANSWER);
    int64_t e1[1];
    CHECK_EQ(produce_errors(&out, 11, 5, e1, 1), 1u);
    CHECK_EQ(e1[0], BS_KERR_POLICY_VIOLATION);
    bs_wbuf_free(&good);
    bs_wbuf_free(&inj);
    bs_wbuf_free(&v1);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    fx_free(&f);
}

/* A compression bomb to an encrypted topic: eight zstd batches of one 4 MiB
 * value each (a few hundred bytes on the wire) would unpack to 32 MiB and
 * come out of encryption that large. The request's decompression budget
 * (64 x its size, at least 1 MiB) stops it at the first batch: answered with
 * MESSAGE_TOO_LARGE, nothing forwarded, nothing big built. */
static void test_compression_bomb(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    size_t vlen = 4u << 20;
    char *big = malloc(vlen + 1);
    CHECK(big != NULL);
    if (!big) return;
    memset(big, 'a', vlen);
    big[vlen] = 0;
    rec_in r[] = {{"k", big, 0}};
    bs_wbuf bomb, frame, out;
    bs_wbuf_init(&bomb, 0);
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    build_batch(&bomb, 4 /* zstd */, 0, 0, r, 1);
    CHECK(bomb.len < 4096);
    part_in parts[8];
    for (int i = 0; i < 8; i++)
        parts[i] = (part_in){"enc-bomb", bomb.data, bomb.len};
    build_produce(&frame, 9, -1, 77, parts, 8);
    CHECK(frame.len < 64 * 1024);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_ANSWER);
    int64_t errs[8] = {0};
    CHECK_EQ(produce_errors(&out, 9, 77, errs, 8), 8u);
    CHECK_EQ(errs[0], BS_KERR_MESSAGE_TOO_LARGE);
    CHECK(out.len < 4096);
    /* a well-behaved request of the same topic still passes */
    rec_in small[] = {{"k", "hello", 0}};
    bs_wbuf ok;
    bs_wbuf_init(&ok, 0);
    build_batch(&ok, 4, 0, 0, small, 1);
    part_in p1[] = {{"enc-bomb", ok.data, ok.len}};
    bs_wbuf_reset(&frame);
    build_produce(&frame, 9, -1, 78, p1, 1);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_REPLACE);
    bs_wbuf_free(&ok);
    bs_wbuf_free(&bomb);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    free(big);
    fx_free(&f);
}

/* Keyring down: a Produce to a topic without a DEK waits, then is answered
 * with KAFKA_STORAGE_ERROR for every partition (nothing forwarded); a Fetch
 * needing an uncached key gets KAFKA_STORAGE_ERROR for that partition. Back
 * up: the same request is encrypted. */
static void test_keyring_failure_and_recovery(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    bs_wbuf recs, frame, out, fetch, fout;
    bs_wbuf_init(&recs, 0);
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_init(&fetch, 0);
    bs_wbuf_init(&fout, 0);
    build_batch(&recs, 4, 0, 0, k_recs, BS_ARRAY_LEN(k_recs));
    part_in parts[] = {{"enc-down", recs.data, recs.len}, {"plain", recs.data, recs.len}};
    build_produce(&frame, 9, -1, 31, parts, 2);
    f.gate.fail = true;
    int holds = 0;
    CHECK_EQ(run_request(&f, &frame, &out, &holds), BS_KAFKA_HOOK_ANSWER);
    CHECK_EQ(holds, 1);
    int64_t errs[2];
    CHECK_EQ(produce_errors(&out, 9, 31, errs, 2), 2u);
    CHECK_EQ(errs[0], BS_KERR_KAFKA_STORAGE_ERROR);
    CHECK_EQ(errs[1], BS_KERR_KAFKA_STORAGE_ERROR);
    /* a fetch of records written under a key this worker never saw */
    f.gate.fail = false;
    usleep(600 * 1000); /* past failure_backoff_ms */
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    part_out po[2];
    CHECK_EQ(decode_parts(&out, true, 9, &a, po, 2), 2u);
    fx g;
    CHECK(fx_init(&g, false));
    /* g has another master key file: its keyring cannot unwrap f's EDEKs. */
    part_in ef[] = {{"enc-down", po[0].records, po[0].len}};
    build_fetch(&fetch, 12, 9, ef, 1);
    g.gate.fail = true;
    CHECK_EQ(run_fetch(&g, 12, &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena b;
    bs_kafka_arena_init(&b, 0);
    part_out fo[1];
    CHECK_EQ(decode_parts(&fout, false, 12, &b, fo, 1), 1u);
    CHECK_EQ(fo[0].error, BS_KERR_KAFKA_STORAGE_ERROR);
    CHECK_EQ(fo[0].len, 0u);
    g.gate.fail = false;
    usleep(600 * 1000);
    CHECK_EQ(run_fetch(&g, 12, &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena_reset(&b);
    CHECK_EQ(decode_parts(&fout, false, 12, &b, fo, 1), 1u);
    CHECK_EQ(fo[0].error, BS_KERR_CORRUPT_MESSAGE); /* wrong master key: cannot unwrap */
    /* f itself reads it back */
    CHECK_EQ(run_fetch(&f, 12, &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena_reset(&b);
    CHECK_EQ(decode_parts(&fout, false, 12, &b, fo, 1), 1u);
    CHECK_EQ(fo[0].error, 0);
    CHECK_EQ(compare_blobs(recs.data, recs.len, fo[0].records, fo[0].len, 0), 5);
    bs_kafka_arena_free(&a);
    bs_kafka_arena_free(&b);
    fx_free(&g);
    bs_record_crypto_bind_worker(f.w); /* fx_free(&g) unbound the thread */
    bs_wbuf_free(&recs);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    bs_wbuf_free(&fetch);
    bs_wbuf_free(&fout);
    fx_free(&f);
}

/* Undecodable frames close the connection (non-OK) rather than pass; a
 * connection on a thread with no DEK worker is refused. */
static void test_fail_closed_edges(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    bs_wbuf frame, out;
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf recs;
    bs_wbuf_init(&recs, 0);
    build_batch(&recs, 0, 0, 0, k_recs, 1);
    part_in parts[] = {{"enc-a", recs.data, recs.len}};
    build_produce(&frame, 3, 1, 1, parts, 1);
    frame.len -= 3; /* truncated body */
    bs_wbuf_patch_be32(&frame, 0, (uint32_t)(frame.len - 4));
    bs_kafka_request_header h;
    CHECK_EQ(bs_kafka_parse_request_header(frame.data + 4, frame.len - 4, &h), BS_OK);
    bs_kafka_hook_verdict v = BS_KAFKA_HOOK_PASS;
    CHECK_EQ(f.hook.on_request(f.conn, &h, frame.data, frame.len, &out, &v), BS_E_MALFORMED);
    bs_record_crypto_bind_worker(NULL);
    void *c2 = NULL;
    bs_kafka_hook_conn hc = {.wake = on_wake, .wake_arg = &f, .listener = "t", .peer = "p"};
    CHECK_EQ(f.hook.conn_open(f.hook.arg, &hc, &c2), BS_E_STATE);
    CHECK(c2 == NULL);
    bs_record_crypto *rc = NULL;
    bs_encryption_config off = {.enabled = false};
    CHECK_EQ(bs_record_crypto_new(&off, 0, &rc), BS_E_CONFIG);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    bs_wbuf_free(&recs);
    fx_free(&f);
}

/* ------------------------------------------------ topics named by id */

/* Teach the process-wide topic-id map that `id` is `name`: a Metadata v12
 * exchange through a real Kafka session, as a client's would go. */
static void learn_topic_id(const uint8_t id[16], const char *name)
{
    const bs_session_ops *ops = bs_kafka_session_ops();
    bs_listener_config lc = {.name = "t"};
    bs_kafka_config kc = {.max_frame_bytes = 1 << 20};
    bs_session_info info = {.listener = &lc, .kafka = &kc, .peer = "p"};
    void *st = NULL;
    CHECK_EQ(ops->open(NULL, &info, &st), BS_OK);
    bs_buf in, fwd, back;
    CHECK_EQ(bs_buf_init(&in, 4096), BS_OK);
    CHECK_EQ(bs_buf_init(&fwd, 4096), BS_OK);
    CHECK_EQ(bs_buf_init(&back, 4096), BS_OK);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_be16(&w, BS_KAFKA_METADATA);
    bs_wbuf_put_be16(&w, 12);
    bs_wbuf_put_be32(&w, 5);
    bs_kafka_put_string(&w, false, (const uint8_t *)"c", 1);
    bs_wbuf_put_uvarint(&w, 0);
    bs_kafka_put_array_len(&w, true, -1); /* all topics */
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_uvarint(&w, 0);
    bs_wbuf_patch_be32(&w, 0, (uint32_t)(w.len - 4));
    CHECK_EQ(bs_buf_append(&in, w.data, w.len), BS_OK);
    CHECK_EQ(ops->on_client_bytes(st, &in, &fwd, &back), BS_OK);
    CHECK_EQ(bs_buf_readable(&fwd), w.len);
    bs_wbuf_reset(&w);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_be32(&w, 5);
    bs_wbuf_put_uvarint(&w, 0);       /* response header tags */
    bs_wbuf_put_be32(&w, 0);          /* throttle */
    bs_kafka_put_array_len(&w, true, 0); /* brokers */
    bs_kafka_put_string(&w, true, NULL, -1); /* cluster id */
    bs_wbuf_put_be32(&w, 1);          /* controller */
    bs_kafka_put_array_len(&w, true, 1);
    bs_wbuf_put_be16(&w, 0);
    bs_kafka_put_string(&w, true, (const uint8_t *)name, (int32_t)strlen(name));
    bs_wbuf_put(&w, id, 16);
    bs_wbuf_put_u8(&w, 0);
    bs_kafka_put_array_len(&w, true, 0); /* partitions */
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_uvarint(&w, 0);
    bs_wbuf_put_uvarint(&w, 0);
    bs_wbuf_patch_be32(&w, 0, (uint32_t)(w.len - 4));
    bs_buf_consume(&fwd, bs_buf_readable(&fwd));
    CHECK_EQ(bs_buf_append(&in, w.data, w.len), BS_OK);
    CHECK_EQ(ops->on_upstream_bytes(st, &in, &fwd, &back), BS_OK);
    CHECK(bs_buf_readable(&fwd) > 0);
    ops->close(st);
    bs_buf_free(&in);
    bs_buf_free(&fwd);
    bs_buf_free(&back);
    bs_wbuf_free(&w);
    char got[64];
    CHECK(bs_kafka_topic_id_lookup(id, got, sizeof got));
    CHECK_STR(got, name);
}

/* A Fetch v13 response (flexible, topics by id) with one partition per id. */
static void build_fetch_v13(bs_wbuf *w, const uint8_t ids[][16], const part_in *parts, size_t n)
{
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be32(w, 9);
    bs_wbuf_put_uvarint(w, 0);
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be16(w, 0);
    bs_wbuf_put_be32(w, 0);
    bs_kafka_put_array_len(w, true, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        bs_wbuf_put(w, ids[i], 16);
        bs_kafka_put_array_len(w, true, 1);
        bs_wbuf_put_be32(w, 0);
        bs_wbuf_put_be16(w, 0);
        bs_wbuf_put_be64(w, 100);
        bs_wbuf_put_be64(w, 100);
        bs_wbuf_put_be64(w, 0);
        bs_kafka_put_array_len(w, true, -1);
        bs_wbuf_put_be32(w, (uint32_t)-1);
        bs_kafka_put_bytes(w, true, parts[i].records, (int32_t)parts[i].len);
        bs_wbuf_put_uvarint(w, 0);
        bs_wbuf_put_uvarint(w, 0);
    }
    bs_wbuf_put_uvarint(w, 0);
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
}

/* A ShareFetch v0 response with one partition. */
static void build_share_fetch(bs_wbuf *w, const uint8_t id[16], const uint8_t *recs, size_t len)
{
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be32(w, 9);
    bs_wbuf_put_uvarint(w, 0);
    bs_wbuf_put_be32(w, 0);                  /* throttle */
    bs_wbuf_put_be16(w, 0);                  /* error */
    bs_kafka_put_string(w, true, NULL, -1);  /* error message */
    bs_wbuf_put_be32(w, 30000);              /* acquisition lock timeout (v1+) */
    bs_kafka_put_array_len(w, true, 1);
    bs_wbuf_put(w, id, 16);
    bs_kafka_put_array_len(w, true, 1);
    bs_wbuf_put_be32(w, 0);                  /* partition */
    bs_wbuf_put_be16(w, 0);
    bs_kafka_put_string(w, true, NULL, -1);
    bs_wbuf_put_be16(w, 0);
    bs_kafka_put_string(w, true, NULL, -1);
    bs_wbuf_put_be32(w, 1);                  /* current leader */
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_uvarint(w, 0);
    bs_kafka_put_bytes(w, true, recs, (int32_t)len);
    bs_kafka_put_array_len(w, true, 0);      /* acquired records */
    bs_wbuf_put_uvarint(w, 0);
    bs_wbuf_put_uvarint(w, 0);               /* topic tags */
    bs_kafka_put_array_len(w, true, 0);      /* node endpoints */
    bs_wbuf_put_uvarint(w, 0);
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
}

/* Records (Fetch v13 / ShareFetch v1) of the only partition, decoded. */
static void id_part(const bs_wbuf *frame, int16_t api, bs_kafka_arena *a, part_out *out)
{
    const bs_kafka_message *m = bs_kafka_message_find(api, false);
    bs_kafka_obj *o = NULL;
    memset(out, 0, sizeof *out);
    CHECK(frame->len > 9);
    if (frame->len <= 9) return;
    CHECK_EQ(bs_kafka_decode(m, api == BS_KAFKA_FETCH ? 13 : 1, frame->data + 9, frame->len - 9,
                             a, &o), BS_OK);
    if (!o) return;
    const bs_kafka_val *rs = &o->vals[bs_kafka_struct_field(o->schema, "Responses")];
    const bs_kafka_obj *to = &rs->items[0];
    const bs_kafka_val *ps = &to->vals[bs_kafka_struct_field(to->schema, "Partitions")];
    const bs_kafka_obj *po = &ps->items[0];
    const bs_kafka_val *rv = &po->vals[bs_kafka_struct_field(po->schema, "Records")];
    *out = (part_out){.records = rv->p, .len = rv->n, .null = rv->null,
                      .error = po->vals[bs_kafka_struct_field(po->schema, "ErrorCode")].i};
}

/* Produce v13 (KIP-516) names topics by id. It is capped away in ApiVersions,
 * but a client that sends it anyway must not get plaintext past the rules: a
 * known id is encrypted like its name, an unknown one is refused with
 * UNKNOWN_TOPIC_ID (found by Kafka 4.4.0's schemas: v13 has no topic name). */
static void test_produce_v13_topic_ids(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    static const uint8_t known[16] = {7, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t unknown[16] = {8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8};
    learn_topic_id(known, "enc-v13");
    bs_wbuf recs, frame, out;
    bs_wbuf_init(&recs, 0);
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    build_batch(&recs, 4, 0, 0, k_recs, BS_ARRAY_LEN(k_recs));
    part_in parts[] = {{"", recs.data, recs.len}};
    g_produce_topic_id = known;
    build_produce(&frame, 13, -1, 1, parts, 1);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    part_out po[1];
    CHECK_EQ(decode_parts(&out, true, 13, &a, po, 1), 1u);
    /* every value became an envelope: nothing of the plaintext batch is left */
    CHECK_EQ(compare_blobs(recs.data, recs.len, po[0].records, po[0].len, 1), 5);
    bs_wbuf_reset(&frame);
    g_produce_topic_id = unknown;
    build_produce(&frame, 13, -1, 2, parts, 1);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_ANSWER);
    int64_t errs[1] = {0};
    CHECK_EQ(produce_errors(&out, 13, 2, errs, 1), 1u);
    CHECK_EQ(errs[0], BS_KERR_UNKNOWN_TOPIC_ID);
    g_produce_topic_id = NULL;
    bs_kafka_arena_free(&a);
    bs_wbuf_free(&recs);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    fx_free(&f);
}

/* Fetch v13 and ShareFetch name topics by id: a known id (learned from a
 * Metadata response through a session) is decrypted, an unknown one gets
 * UNKNOWN_TOPIC_ID and no records. */
static void test_topics_by_id(void)
{
    fx f;
    CHECK(fx_init(&f, false));
    static const uint8_t known[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t unknown[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    learn_topic_id(known, "enc-byid");
    bs_wbuf recs, frame, out, fetch, fout;
    bs_wbuf_init(&recs, 0);
    bs_wbuf_init(&frame, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_init(&fetch, 0);
    bs_wbuf_init(&fout, 0);
    build_batch(&recs, 4, 0, 0, k_recs, BS_ARRAY_LEN(k_recs));
    part_in parts[] = {{"enc-byid", recs.data, recs.len}};
    build_produce(&frame, 11, -1, 1, parts, 1);
    CHECK_EQ(run_request(&f, &frame, &out, NULL), BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    part_out po[1];
    CHECK_EQ(decode_parts(&out, true, 11, &a, po, 1), 1u);
    const uint8_t ids[2][16] = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
                                {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}};
    (void)unknown;
    part_in fparts[] = {{"", po[0].records, po[0].len}, {"", po[0].records, po[0].len}};
    build_fetch_v13(&fetch, ids, fparts, 2);
    CHECK_EQ(run_fetch(&f, 13, &fetch, &fout), BS_KAFKA_HOOK_REPLACE);
    {
        const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_FETCH, false);
        bs_kafka_arena b;
        bs_kafka_arena_init(&b, 0);
        bs_kafka_obj *o = NULL;
        CHECK_EQ(bs_kafka_decode(m, 13, fout.data + 9, fout.len - 9, &b, &o), BS_OK);
        if (o) {
            const bs_kafka_val *rs = &o->vals[bs_kafka_struct_field(o->schema, "Responses")];
            for (int t = 0; t < 2; t++) {
                const bs_kafka_obj *to = &rs->items[t];
                const bs_kafka_obj *p0 =
                    &to->vals[bs_kafka_struct_field(to->schema, "Partitions")].items[0];
                const bs_kafka_val *rv = &p0->vals[bs_kafka_struct_field(p0->schema, "Records")];
                int64_t ec = p0->vals[bs_kafka_struct_field(p0->schema, "ErrorCode")].i;
                if (t == 0) {
                    CHECK_EQ(ec, 0);
                    CHECK_EQ(compare_blobs(recs.data, recs.len, rv->p, rv->n, 0), 5);
                } else {
                    CHECK_EQ(ec, BS_KERR_UNKNOWN_TOPIC_ID);
                    CHECK_EQ(rv->n, 0u);
                }
            }
        }
        bs_kafka_arena_free(&b);
    }
    /* ShareFetch v1 (Kafka 4.4.0's first) */
    bs_wbuf_reset(&fetch);
    build_share_fetch(&fetch, known, po[0].records, po[0].len);
    bs_kafka_inflight inf = {.correlation_id = 9, .api_key = BS_KAFKA_SHARE_FETCH,
                             .api_version = 1, .expects_response = true};
    bs_kafka_hook_verdict v = BS_KAFKA_HOOK_PASS;
    CHECK(f.hook.wants_response(f.conn, BS_KAFKA_SHARE_FETCH, 1));
    bs_wbuf_reset(&fout);
    CHECK_EQ(f.hook.on_response(f.conn, &inf, fetch.data, fetch.len, &fout, &v), BS_OK);
    CHECK_EQ(v, BS_KAFKA_HOOK_REPLACE);
    bs_kafka_arena c;
    bs_kafka_arena_init(&c, 0);
    part_out so;
    id_part(&fout, BS_KAFKA_SHARE_FETCH, &c, &so);
    CHECK_EQ(so.error, 0);
    CHECK_EQ(compare_blobs(recs.data, recs.len, so.records, so.len, 0), 5);
    bs_kafka_arena_free(&a);
    bs_kafka_arena_free(&c);
    bs_wbuf_free(&recs);
    bs_wbuf_free(&frame);
    bs_wbuf_free(&out);
    bs_wbuf_free(&fetch);
    bs_wbuf_free(&fout);
    fx_free(&f);
}

int main(void)
{
    RUN(test_round_trip_codecs_versions);
    RUN(test_fetch_passthrough_and_partial);
    RUN(test_hot_path_takes_no_metrics_lock);
    RUN(test_fetch_tampered);
    RUN(test_produce_refusals);
    RUN(test_compression_bomb);
    RUN(test_keyring_failure_and_recovery);
    RUN(test_fail_closed_edges);
    RUN(test_topics_by_id);
    RUN(test_produce_v13_topic_ids);
    bs_metrics_shutdown();
    bs_kafka_session_reset_globals();
    return test_report();
}
