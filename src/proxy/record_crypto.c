/*
 * record_crypto.c - the record encryption hook (see record_crypto.h).
 *
 * Both directions decode the body with the schema codec into a per-connection
 * arena, rewrite the Records slices of the partitions concerned into one
 * per-connection buffer (offsets first, pointers patched at the end since the
 * buffer may move while growing), and re-encode. A missing key aborts the
 * whole frame with HOLD; the session reruns it from scratch on wake-up, so no
 * partial state survives between runs.
 */
#include "brokerside/record_crypto.h"

#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/envelope.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_answer.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/record_batch.h"

#define MOD "record_crypto"
#define DEFAULT_MAX_RECORDS_BYTES (64u << 20)
/* Bounds the decoded tree of one frame (its nodes, not the records). */
#define ARENA_LIMIT (64u << 20)

struct bs_record_crypto {
    const bs_encryption_config *enc;
    size_t max_records_bytes;
    /* resolved once in bs_record_crypto_new: the data path takes no registry lock */
    bs_metric *m_encrypted, *m_decrypted;
};

static _Thread_local bs_dek_worker *t_worker;

/* Per connection (bs_kafka_hook.conn_open). */
typedef struct rc_conn {
    bs_record_crypto *rc;
    bs_dek_worker *dw;
    bs_dek_waiter wreq, wresp; /* one frame per direction can wait at a time */
    void (*wake)(void *);
    void *wake_arg;
    char listener[64], peer[64];
    bs_kafka_arena arena;
    bs_wbuf recs; /* rewritten Records of the current frame */
} rc_conn;

/* See record_crypto.h. */
void bs_record_crypto_bind_worker(bs_dek_worker *w)
{
    t_worker = w;
}

/* ---------------------------------------------------------------- metrics, logs */

/* Count `n` records in counter `m` (resolved at start: no lookup, no lock). */
static void count_records(bs_metric *m, int64_t n)
{
    if (n > 0) bs_metric_add(m, n);
}

/* One refusal or failure of `reason` (looked up by name: refusals are rare,
 * and their reasons are many). */
static void count_failure(const char *reason)
{
    bs_metric_add(bs_metrics_counter_kv("brokerside_record_crypto_failures_total",
                                        "Record encryption/decryption refusals and failures",
                                        "reason", reason, NULL),
                  1);
}

/* True at most once per second process-wide: keeps a KMS outage or a hostile
 * client from flooding the log (the metrics count every case). */
static bool log_allowed(void)
{
    static _Atomic int64_t last;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = ts.tv_sec, prev = atomic_load(&last);
    return now != prev && atomic_compare_exchange_strong(&last, &prev, now);
}

/* ---------------------------------------------------------------- tree helpers */

/* The value of field `name` in `o` (the schema is generated: a missing name is
 * a programming error, answered with NULL and caught by the callers). */
static bs_kafka_val *fld(const bs_kafka_obj *o, const char *name)
{
    int i = bs_kafka_struct_field(o->schema, name);
    return i < 0 ? NULL : &o->vals[i];
}

/* ---------------------------------------------------------------- produce */

typedef struct enc_ctx {
    rc_conn *c;
    const char *keyref;
    const char *topic;
    size_t topic_len;
    bs_dek *dek;
    uint64_t budget;
    int64_t count;
    bool envelope_seen;
    bool key_failed;
    bs_status key_st;
} enc_ctx;

/* bs_record_value_fn: replace a value by its envelope. */
static bs_status enc_value(void *arg, const bs_record_batch *batch, const bs_record *rec,
                           bs_wbuf *new_value, bool *replace)
{
    (void)batch;
    enc_ctx *x = arg;
    *replace = false;
    if (!rec->value) return BS_OK; /* a tombstone stays a tombstone */
    if (bs_envelope_is_envelope(rec->value, (size_t)rec->value_len)) {
        /* Wrapping it would let a client plant an envelope that decrypts
         * under another key on the way out: refused. */
        x->envelope_seen = true;
        return BS_E_MALFORMED;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (x->budget == 0) {
            bs_status st = bs_dek_worker_encrypt_dek(x->c->dw, x->keyref, x->topic, x->topic_len,
                                                     &x->c->wreq, &x->dek, &x->budget);
            if (st == BS_E_AGAIN) return st;
            if (st != BS_OK) {
                x->key_failed = true;
                x->key_st = st;
                return st;
            }
        }
        bs_status st = bs_envelope_encrypt(x->dek, x->topic, x->topic_len, rec->value,
                                           (size_t)rec->value_len, new_value);
        if (st == BS_E_STATE) {
            x->budget = 0; /* the DEK reached its hard cap: ask for the next one */
            continue;
        }
        BS_GUARD(st);
        x->budget--;
        x->count++;
        *replace = true;
        return BS_OK;
    }
    return BS_E_STATE;
}

/* Kafka error for a Produce partition to an encrypted topic whose batches do
 * not all parse as complete v2 batches, or 0 when they do. */
static int16_t produce_batches_check(const uint8_t *p, size_t n)
{
    bs_batch_iter it;
    bs_batch_iter_init(&it, p, n);
    for (;;) {
        bs_batch_kind kind;
        bs_record_batch b;
        bs_status st = bs_batch_iter_next(&it, &kind, &b);
        if (st == BS_E_UNSUPPORTED) return BS_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
        if (st != BS_OK || kind == BS_BATCH_PARTIAL) return BS_KERR_CORRUPT_MESSAGE;
        if (kind == BS_BATCH_END) return 0;
    }
}

/* bs_kafka_hook.on_request: encrypt a Produce request (see record_crypto.h). */
static bs_status rc_on_request(void *arg, const bs_kafka_request_header *h, const uint8_t *frame,
                               size_t len, bs_wbuf *replacement, bs_kafka_hook_verdict *verdict)
{
    rc_conn *c = arg;
    /* one rule set per request, even if a reload swaps it meanwhile */
    const bs_encryption_config *enc = __atomic_load_n(&c->rc->enc, __ATOMIC_ACQUIRE);
    *verdict = BS_KAFKA_HOOK_PASS;
    if (h->api_key != BS_KAFKA_PRODUCE) return BS_OK;
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_PRODUCE, true);
    BS_ENSURE(m, BS_E_UNSUPPORTED);
    BS_ENSURE(len >= 4 + h->header_len, BS_E_MALFORMED);
    const uint8_t *body = frame + 4 + h->header_len;
    size_t blen = len - 4 - h->header_len;
    bs_kafka_arena_reset(&c->arena);
    bs_wbuf_reset(&c->recs);
    bs_kafka_obj *req;
    bs_status st = bs_kafka_decode(m, h->api_version, body, blen, &c->arena, &req);
    if (st != BS_OK) {
        /* Fail closed: a request we cannot read may carry plaintext for an
         * encrypted topic; the connection is closed (the session logs it). */
        count_failure("undecodable_produce");
        return st;
    }
    bs_kafka_val *td = fld(req, "TopicData"), *acks = fld(req, "Acks");
    BS_ENSURE(td && acks, BS_E_STATE);
    size_t nparts = 0;
    for (int32_t t = 0; t < td->count; t++) {
        const bs_kafka_val *pd = fld(&td->items[t], "PartitionData");
        BS_ENSURE(pd, BS_E_STATE);
        nparts += pd->count > 0 ? (size_t)pd->count : 0;
    }
    int16_t *perr = NULL;
    size_t *offs = NULL;
    if (nparts > 0) {
        BS_GUARD(bs_kafka_arena_alloc(&c->arena, nparts * sizeof *perr, (void **)&perr));
        BS_GUARD(bs_kafka_arena_alloc(&c->arena, nparts * 2 * sizeof *offs, (void **)&offs));
    }
    bool refused = false, changed = false;
    const char *reason = NULL;
    bs_status key_st = BS_OK;
    int64_t encrypted = 0;
    size_t k = 0;
    /* One decompression budget for the whole request (all partitions and
     * batches): at most BS_RECORD_CRYPTO_MAX_RATIO times the request's own
     * size (at least BS_RECORD_CRYPTO_RATIO_FLOOR), never more than the frame
     * limit. A 245 KB bomb can no longer unpack to hundreds of MiB. */
    size_t budget = len > c->rc->max_records_bytes / BS_RECORD_CRYPTO_MAX_RATIO
                        ? c->rc->max_records_bytes
                        : len * BS_RECORD_CRYPTO_MAX_RATIO;
    if (budget < BS_RECORD_CRYPTO_RATIO_FLOOR) budget = BS_RECORD_CRYPTO_RATIO_FLOOR;
    if (budget > c->rc->max_records_bytes) budget = c->rc->max_records_bytes;
    for (int32_t t = 0; t < td->count; t++) {
        bs_kafka_obj *to = &td->items[t];
        const bs_kafka_val *name = fld(to, "Name"), *tid = fld(to, "TopicId");
        bs_kafka_val *pd = fld(to, "PartitionData");
        BS_ENSURE(name && pd, BS_E_STATE);
        char topic[256];
        size_t topic_len = 0;
        /* Produce v13+ (KIP-516) names the topic by id only; capped away in
         * ApiVersions, but a client may send it anyway: the rules select by
         * name, so an id this process cannot name is refused, never passed. */
        bool by_id = !name->present && tid && tid->present;
        bool name_ok;
        if (by_id) {
            name_ok = bs_kafka_topic_id_lookup(tid->p, topic, sizeof topic);
            topic_len = name_ok ? strlen(topic) : 0;
        } else {
            name_ok = !name->null && name->n > 0 && name->n < sizeof topic;
            if (name_ok) {
                memcpy(topic, name->p, name->n);
                topic[name->n] = 0;
                topic_len = name->n;
            }
        }
        const bs_topic_rule *rule =
            by_id && !name_ok ? NULL
            : by_id           ? bs_config_topic_rule(enc, topic, topic_len)
                              : bs_config_topic_rule(enc, (const char *)name->p, name->n);
        for (int32_t i = 0; i < pd->count; i++, k++) {
            bs_kafka_val *rv = fld(&pd->items[i], "Records");
            BS_ENSURE(rv, BS_E_STATE);
            offs[2 * k] = SIZE_MAX;
            if (rv->null || rv->n == 0) continue;
            if (by_id && !name_ok) {
                perr[k] = BS_KERR_UNKNOWN_TOPIC_ID;
                refused = true;
                reason = "unknown_topic_id";
                continue;
            }
            if (!rule) {
                if (enc->reject_unmatched) {
                    perr[k] = BS_KERR_POLICY_VIOLATION;
                    refused = true;
                    reason = "unmatched_topic";
                }
                continue;
            }
            if (!name_ok) {
                perr[k] = BS_KERR_POLICY_VIOLATION;
                refused = true;
                reason = "bad_topic_name";
                continue;
            }
            int16_t bad = produce_batches_check(rv->p, rv->n);
            if (bad) {
                perr[k] = bad;
                refused = true;
                reason = bad == BS_KERR_CORRUPT_MESSAGE ? "corrupt_batch" : "message_format";
                continue;
            }
            enc_ctx x = {.c = c, .keyref = rule->key, .topic = topic, .topic_len = topic_len};
            size_t start = c->recs.len;
            size_t used = 0;
            st = bs_records_blob_transform(rv->p, rv->n, budget, enc_value, &x, &c->recs, &used);
            budget = used < budget ? budget - used : 0;
            if (st == BS_E_AGAIN) {
                bs_metric_add(bs_metrics_counter_kv("brokerside_record_crypto_held_total",
                                                    "Frames held until a data key arrived",
                                                    "direction", "produce", NULL),
                              1);
                *verdict = BS_KAFKA_HOOK_HOLD;
                return BS_OK;
            }
            if (st == BS_E_NOMEM) return st;
            if (st != BS_OK) {
                refused = true;
                if (x.envelope_seen) {
                    perr[k] = BS_KERR_INVALID_RECORD;
                    reason = "envelope_in_produce";
                } else if (x.key_failed) {
                    perr[k] = BS_KERR_KAFKA_STORAGE_ERROR;
                    reason = "key_unavailable";
                    key_st = x.key_st;
                } else if (st == BS_E_TOO_LARGE) {
                    perr[k] = BS_KERR_MESSAGE_TOO_LARGE;
                    reason = "decompression_limit";
                    budget = 0; /* nothing more of this request is unpacked */
                } else {
                    perr[k] = BS_KERR_CORRUPT_MESSAGE;
                    reason = "corrupt_batch";
                }
                continue;
            }
            offs[2 * k] = start;
            offs[2 * k + 1] = c->recs.len - start;
            encrypted += x.count;
            changed = true;
        }
    }
    if (refused) {
        count_failure(reason);
        if (log_allowed())
            BS_LOG_WARNF(MOD,
                         "listener %s: Produce v%d from %s refused (%s%s%s), nothing forwarded%s",
                         c->listener, h->api_version, c->peer, reason, key_st != BS_OK ? ": " : "",
                         key_st != BS_OK ? bs_status_name(key_st) : "",
                         acks->i == 0 ? "; acks=0: dropped without an answer" : "");
        *verdict = BS_KAFKA_HOOK_ANSWER;
        if (acks->i == 0) {
            count_failure("acks0_dropped");
            return BS_OK;
        }
        return bs_kafka_produce_answer(req, h->api_version, h->correlation_id, perr,
                                       BS_KERR_KAFKA_STORAGE_ERROR, &c->arena, replacement);
    }
    if (!changed) return BS_OK;
    BS_GUARD(bs_wbuf_status(&c->recs));
    k = 0;
    for (int32_t t = 0; t < td->count; t++) {
        bs_kafka_val *pd = fld(&td->items[t], "PartitionData");
        for (int32_t i = 0; i < pd->count; i++, k++) {
            if (offs[2 * k] == SIZE_MAX) continue;
            bs_kafka_val *rv = fld(&pd->items[i], "Records");
            rv->p = c->recs.data + offs[2 * k];
            rv->n = offs[2 * k + 1];
        }
    }
    BS_GUARD(bs_kafka_put_frame(replacement, frame + 4, h->header_len, m, h->api_version, req));
    if (replacement->len > c->rc->max_records_bytes + 4) {
        /* The rewritten frame obeys kafka.max_frame_bytes like any other: the
         * request is refused rather than sent to the broker oversized. */
        count_failure("rewritten_too_large");
        if (log_allowed())
            BS_LOG_WARNF(MOD,
                         "listener %s: Produce v%d from %s refused: encrypted it would be %zu "
                         "bytes, above kafka.max_frame_bytes",
                         c->listener, h->api_version, c->peer, replacement->len);
        bs_wbuf_reset(replacement);
        *verdict = BS_KAFKA_HOOK_ANSWER;
        if (acks->i == 0) return BS_OK;
        return bs_kafka_produce_answer(req, h->api_version, h->correlation_id, NULL,
                                       BS_KERR_MESSAGE_TOO_LARGE, &c->arena, replacement);
    }
    count_records(c->rc->m_encrypted, encrypted);
    *verdict = BS_KAFKA_HOOK_REPLACE;
    return BS_OK;
}

/* ---------------------------------------------------------------- fetch */

typedef struct dec_ctx {
    rc_conn *c;
    const char *topic;
    size_t topic_len;
    int64_t count;
    int16_t err; /* Kafka error for the partition once something failed */
    const char *reason;
} dec_ctx;

/* bs_record_value_fn: replace an envelope by its plaintext. */
static bs_status dec_value(void *arg, const bs_record_batch *batch, const bs_record *rec,
                           bs_wbuf *new_value, bool *replace)
{
    (void)batch;
    dec_ctx *x = arg;
    *replace = false;
    if (!rec->value || !bs_envelope_is_envelope(rec->value, (size_t)rec->value_len)) return BS_OK;
    bs_envelope env;
    bs_status st = bs_envelope_parse(rec->value, (size_t)rec->value_len, &env);
    if (st != BS_OK) {
        x->err = BS_KERR_CORRUPT_MESSAGE;
        x->reason = "bad_envelope";
        return st;
    }
    if (!x->topic) {
        x->err = BS_KERR_UNKNOWN_TOPIC_ID;
        x->reason = "unknown_topic_id";
        return BS_E_NOT_FOUND;
    }
    bs_dek *dek;
    st = bs_dek_worker_decrypt_dek(x->c->dw, env.keyref, env.keyref_len, env.edek, env.edek_len,
                                   x->topic, x->topic_len, &x->c->wresp, &dek);
    if (st == BS_E_AGAIN) return st;
    if (st != BS_OK) {
        /* A key that cannot be unwrapped (wrong topic, tampered EDEK, unknown
         * key) is permanent; anything else (KMS unreachable) may pass. */
        bool permanent =
            st == BS_E_CRYPTO || st == BS_E_MALFORMED || st == BS_E_NOT_FOUND || st == BS_E_CONFIG;
        x->err = permanent ? BS_KERR_CORRUPT_MESSAGE : BS_KERR_KAFKA_STORAGE_ERROR;
        x->reason = permanent ? "key_unwrap" : "key_unavailable";
        return st;
    }
    st = bs_envelope_decrypt(dek, x->topic, x->topic_len, rec->value, (size_t)rec->value_len,
                             new_value);
    if (st != BS_OK) {
        x->err = st == BS_E_NOMEM ? 0 : BS_KERR_CORRUPT_MESSAGE;
        x->reason = "authentication";
        return st;
    }
    x->count++;
    *replace = true;
    return BS_OK;
}

/* True when some record value of the records blob is an envelope, or when a
 * v2 batch cannot be read (then the transform fails and the partition gets an
 * error rather than unread bytes reaching the client). */
static bool has_envelope(const uint8_t *p, size_t n, size_t limit)
{
    bs_batch_iter it;
    bs_batch_iter_init(&it, p, n);
    for (;;) {
        bs_batch_kind kind;
        bs_record_batch b;
        bs_status st = bs_batch_iter_next(&it, &kind, &b);
        /* A corrupt batch may hide envelopes: the transform then reports the
         * partition. Magic 0/1 message sets never carry ours (refused on
         * Produce) and stop the walk. */
        if (st != BS_OK) return st != BS_E_UNSUPPORTED;
        if (kind != BS_BATCH_FULL) return false;
        if (bs_record_batch_is_control(&b)) continue;
        bs_records r;
        bool found = false;
        if (bs_records_open(&b, limit, &r) == BS_OK) {
            for (;;) {
                bs_record rec;
                bool done;
                if (bs_records_next(&r, &rec, &done) != BS_OK || done) break;
                if (rec.value && bs_envelope_is_envelope(rec.value, (size_t)rec.value_len)) {
                    found = true;
                    break;
                }
            }
        } else {
            /* Cannot decompress: treat as holding envelopes so the transform
             * reports the partition rather than passing unknown bytes on. */
            found = true;
        }
        bs_records_free(&r);
        if (found) return true;
    }
}

/* Length of a response header (correlation id, plus the tag section for
 * flexible versions) at the start of `body` (`n` bytes). */
static bs_status response_header_len(const uint8_t *body, size_t n, bool flexible, size_t *out)
{
    bs_cursor cur;
    bs_cursor_init(&cur, body, n);
    BS_GUARD(bs_cursor_skip(&cur, 4));
    if (flexible) {
        bs_kafka_slice raw;
        uint32_t ntags;
        BS_GUARD(bs_kafka_read_tag_section(&cur, &raw, &ntags));
    }
    *out = cur.pos;
    return BS_OK;
}

/* bs_kafka_hook.on_response: decrypt a Fetch or ShareFetch response (see record_crypto.h). */
static bs_status rc_on_response(void *arg, const bs_kafka_inflight *req, const uint8_t *frame,
                                size_t len, bs_wbuf *replacement, bs_kafka_hook_verdict *verdict)
{
    rc_conn *c = arg;
    *verdict = BS_KAFKA_HOOK_PASS;
    /* ShareFetch (KIP-932) carries the same records and must not leak envelopes. */
    if (req->api_key != BS_KAFKA_FETCH && req->api_key != BS_KAFKA_SHARE_FETCH) return BS_OK;
    const bs_kafka_message *m = bs_kafka_message_find(req->api_key, false);
    BS_ENSURE(m && len >= 8, BS_E_MALFORMED);
    int16_t ver = req->api_version;
    size_t hlen;
    BS_GUARD(response_header_len(frame + 4, len - 4, ver >= m->flex_min, &hlen));
    bs_kafka_arena_reset(&c->arena);
    bs_wbuf_reset(&c->recs);
    bs_kafka_obj *resp;
    bs_status st = bs_kafka_decode(m, ver, frame + 4 + hlen, len - 4 - hlen, &c->arena, &resp);
    if (st != BS_OK) {
        /* It may hold ciphertext we cannot strip: never forward it. */
        count_failure("undecodable_fetch");
        return st;
    }
    bs_kafka_val *rs = fld(resp, "Responses");
    BS_ENSURE(rs, BS_E_STATE);
    bool changed = false;
    int64_t decrypted = 0;
    for (int32_t t = 0; t < rs->count; t++) {
        bs_kafka_obj *to = &rs->items[t];
        bs_kafka_val *tn = fld(to, "Topic"), *tid = fld(to, "TopicId"),
                     *parts = fld(to, "Partitions");
        BS_ENSURE(parts, BS_E_STATE);
        char topic[256];
        bool known = false;
        if (tn && tn->present && !tn->null && tn->n > 0 && tn->n < sizeof topic) {
            memcpy(topic, tn->p, tn->n);
            topic[tn->n] = 0;
            known = true;
        } else if (tid && tid->present) {
            known = bs_kafka_topic_id_lookup(tid->p, topic, sizeof topic);
        }
        for (int32_t i = 0; i < parts->count; i++) {
            bs_kafka_obj *po = &parts->items[i];
            bs_kafka_val *rv = fld(po, "Records"), *ec = fld(po, "ErrorCode");
            BS_ENSURE(rv && ec, BS_E_STATE);
            if (rv->null || rv->n == 0) continue;
            if (!has_envelope(rv->p, rv->n, c->rc->max_records_bytes)) continue;
            dec_ctx x = {
                .c = c, .topic = known ? topic : NULL, .topic_len = known ? strlen(topic) : 0};
            size_t start = c->recs.len;
            st = bs_records_blob_transform(rv->p, rv->n, c->rc->max_records_bytes, dec_value, &x,
                                           &c->recs, NULL);
            if (st == BS_E_AGAIN) {
                bs_metric_add(bs_metrics_counter_kv("brokerside_record_crypto_held_total",
                                                    "Frames held until a data key arrived",
                                                    "direction", "fetch", NULL),
                              1);
                *verdict = BS_KAFKA_HOOK_HOLD;
                return BS_OK;
            }
            if (st == BS_E_NOMEM) return st;
            changed = true;
            if (st != BS_OK) {
                const char *reason = x.reason ? x.reason : "corrupt_batch";
                count_failure(reason);
                if (log_allowed())
                    BS_LOG_WARNF(MOD,
                                 "listener %s: Fetch v%d to %s: partition %lld of %s not "
                                 "decryptable (%s: %s); its records were removed",
                                 c->listener, ver, c->peer, (long long)fld(po, "PartitionIndex")->i,
                                 known ? topic : "(unknown topic id)", reason, bs_status_name(st));
                ec->i = x.err ? x.err : BS_KERR_CORRUPT_MESSAGE;
                rv->n = 0; /* marks "empty" below: the offsets table is not needed */
                rv->p = (const uint8_t *)"";
                continue;
            }
            /* Stash the offset in the pointer slot until the buffer stops moving. */
            rv->p = NULL;
            rv->i = (int64_t)start;
            rv->n = c->recs.len - start;
            decrypted += x.count;
        }
    }
    if (!changed) return BS_OK;
    BS_GUARD(bs_wbuf_status(&c->recs));
    for (int32_t t = 0; t < rs->count; t++) {
        bs_kafka_val *parts = fld(&rs->items[t], "Partitions");
        for (int32_t i = 0; i < parts->count; i++) {
            bs_kafka_val *rv = fld(&parts->items[i], "Records");
            if (rv->p == NULL && !rv->null) rv->p = c->recs.data + rv->i;
        }
    }
    BS_GUARD(bs_kafka_put_frame(replacement, frame + 4, hlen, m, ver, resp));
    count_records(c->rc->m_decrypted, decrypted);
    *verdict = BS_KAFKA_HOOK_REPLACE;
    return BS_OK;
}

/* ---------------------------------------------------------------- hook plumbing */

/* bs_kafka_hook.wants_request: Produce only. */
static bool rc_wants_request(void *arg, int16_t api_key, int16_t api_version)
{
    (void)arg;
    (void)api_version;
    return api_key == BS_KAFKA_PRODUCE;
}

/* bs_kafka_hook.wants_response: Fetch and ShareFetch. */
static bool rc_wants_response(void *arg, int16_t api_key, int16_t api_version)
{
    (void)arg;
    (void)api_version;
    return api_key == BS_KAFKA_FETCH || api_key == BS_KAFKA_SHARE_FETCH;
}

/* DEK waiter callback: the key came (or failed for good): rerun the frame. */
static void rc_waiter_wake(bs_dek_waiter *w, bs_status st)
{
    (void)st; /* the rerun sees the outcome through the manager (failures are remembered) */
    rc_conn *c = w->arg;
    if (c->wake) c->wake(c->wake_arg);
}

/* bs_kafka_hook.conn_close: cancel waits, release the state. */
static void rc_conn_close(void *conn)
{
    rc_conn *c = conn;
    if (!c) return;
    bs_dek_waiter_cancel(&c->wreq);
    bs_dek_waiter_cancel(&c->wresp);
    bs_kafka_arena_free(&c->arena);
    /* The records buffer held plaintext (fetch) or ciphertext: wipe it. */
    if (c->recs.data) OPENSSL_cleanse(c->recs.data, c->recs.cap);
    bs_wbuf_free(&c->recs);
    free(c);
}

/* bs_kafka_hook.conn_open: per-connection state bound to this thread's DEK worker. */
static bs_status rc_conn_open(void *arg, const bs_kafka_hook_conn *hc, void **conn)
{
    *conn = NULL;
    if (!t_worker) {
        BS_LOG_ERRORF(MOD, "no DEK worker on this thread: connection from %s refused",
                      hc->peer ? hc->peer : "?");
        return BS_E_STATE;
    }
    BS_ENSURE(hc->wake, BS_E_STATE);
    rc_conn *c = calloc(1, sizeof *c);
    BS_ENSURE(c, BS_E_NOMEM);
    c->rc = arg;
    c->dw = t_worker;
    c->wake = hc->wake;
    c->wake_arg = hc->wake_arg;
    snprintf(c->listener, sizeof c->listener, "%s", hc->listener ? hc->listener : "?");
    snprintf(c->peer, sizeof c->peer, "%s", hc->peer ? hc->peer : "?");
    bs_dek_waiter_init(&c->wreq, rc_waiter_wake, c);
    bs_dek_waiter_init(&c->wresp, rc_waiter_wake, c);
    bs_kafka_arena_init(&c->arena, ARENA_LIMIT);
    bs_wbuf_init(&c->recs, 0);
    *conn = c;
    return BS_OK;
}

/* See record_crypto.h. */
bs_kafka_hook bs_record_crypto_hook(bs_record_crypto *rc)
{
    return (bs_kafka_hook){.name = "record_crypto",
                           .wants_request = rc_wants_request,
                           .on_request = rc_on_request,
                           .wants_response = rc_wants_response,
                           .on_response = rc_on_response,
                           .arg = rc,
                           .conn_open = rc_conn_open,
                           .conn_close = rc_conn_close};
}

/* See record_crypto.h. */
bs_status bs_record_crypto_new(const bs_encryption_config *enc, size_t max_records_bytes,
                               bs_record_crypto **out)
{
    *out = NULL;
    BS_ENSURE(enc && enc->enabled, BS_E_CONFIG);
    bs_record_crypto *rc = calloc(1, sizeof *rc);
    BS_ENSURE(rc, BS_E_NOMEM);
    rc->enc = enc;
    rc->max_records_bytes = max_records_bytes ? max_records_bytes : DEFAULT_MAX_RECORDS_BYTES;
    rc->m_encrypted = bs_metrics_counter("brokerside_records_encrypted_total",
                                         "Record values encrypted on Produce", NULL);
    rc->m_decrypted = bs_metrics_counter("brokerside_records_decrypted_total",
                                         "Record values decrypted on Fetch", NULL);
    *out = rc;
    return BS_OK;
}

/* See record_crypto.h. */
void bs_record_crypto_set_config(bs_record_crypto *rc, const bs_encryption_config *enc)
{
    __atomic_store_n(&rc->enc, enc, __ATOMIC_RELEASE);
}

/* See record_crypto.h. */
void bs_record_crypto_free(bs_record_crypto *rc)
{
    free(rc);
}
