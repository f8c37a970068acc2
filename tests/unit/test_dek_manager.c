/* Unit tests for src/crypto/dek_manager.c: encryption DEK rotation by records
 * and by age (fake clock), fetching ahead, fail-closed waiters and recovery,
 * the decrypted-key cache (coalescing, LRU bound, TTL, negative results),
 * waiter cancellation, teardown with requests in flight, and two worker
 * threads against a control thread running the real local keyring. */
#include <ev.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "brokerside/dek_manager.h"
#include "brokerside/metrics.h"
#include "test.h"

/* ------------------------------------------------------------ fake clock */

static _Atomic uint64_t fake_now = 1000000;
static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&fake_now);
}

/* --------------------------------------------- fake asynchronous keyring */

/* A keyring whose operations stay pending until the test completes them, so
 * that coalescing, ordering and failures can be driven step by step. EDEKs
 * are random 16-byte handles remembered with their key and topic. */
typedef struct fop {
    bool gen;
    char topic[64];
    uint8_t edek[BS_ENVELOPE_MAX_EDEK];
    size_t edek_len;
    bs_keyring_dek_cb dcb;
    bs_keyring_key_cb kcb;
    void *arg;
} fop;

typedef struct fkey {
    uint8_t edek[16], key[32];
    char topic[64];
} fkey;

typedef struct fake_kr {
    bs_keyring base;
    fop ops[64];
    size_t nops;
    unsigned gen_calls, dec_calls;
    fkey keys[64];
    size_t nkeys;
} fake_kr;

static const char *ctx_topic(const bs_enc_context *ctx)
{
    for (size_t i = 0; ctx && i < ctx->n; i++)
        if (strcmp(ctx->pairs[i].key, "topic") == 0) return ctx->pairs[i].value;
    return "";
}

static bs_status fk_gen(bs_keyring *kr, const char *keyref, const bs_enc_context *ctx,
                        bs_keyring_dek_cb cb, void *arg)
{
    (void)keyref;
    fake_kr *f = bs_container_of(kr, fake_kr, base);
    if (f->nops == BS_ARRAY_LEN(f->ops)) return BS_E_FULL;
    fop *o = &f->ops[f->nops++];
    memset(o, 0, sizeof *o);
    o->gen = true;
    snprintf(o->topic, sizeof o->topic, "%s", ctx_topic(ctx));
    o->dcb = cb;
    o->arg = arg;
    f->gen_calls++;
    return BS_OK;
}

static bs_status fk_dec(bs_keyring *kr, const char *keyref, const uint8_t *edek, size_t edek_len,
                        const bs_enc_context *ctx, bs_keyring_key_cb cb, void *arg)
{
    (void)keyref;
    fake_kr *f = bs_container_of(kr, fake_kr, base);
    if (f->nops == BS_ARRAY_LEN(f->ops)) return BS_E_FULL;
    fop *o = &f->ops[f->nops++];
    memset(o, 0, sizeof *o);
    snprintf(o->topic, sizeof o->topic, "%s", ctx_topic(ctx));
    memcpy(o->edek, edek, edek_len);
    o->edek_len = edek_len;
    o->kcb = cb;
    o->arg = arg;
    f->dec_calls++;
    return BS_OK;
}

static void fk_destroy(bs_keyring *kr)
{
    (void)kr;
}

static const bs_keyring_ops fake_ops = {"fake", fk_gen, fk_dec, fk_destroy};

/* Make a key for `topic` directly (as an earlier process would have). */
static fkey *fk_make(fake_kr *f, const char *topic)
{
    fkey *k = &f->keys[f->nkeys++];
    CHECK(RAND_bytes(k->edek, sizeof k->edek) == 1 && RAND_bytes(k->key, sizeof k->key) == 1);
    snprintf(k->topic, sizeof k->topic, "%s", topic);
    return k;
}

/* Complete the oldest pending operation with `st` (a decrypt succeeds only for
 * a known EDEK presented with its own topic, like KMS's context check). */
static void fk_complete(fake_kr *f, bs_status st)
{
    CHECK(f->nops > 0);
    if (f->nops == 0) return;
    fop o = f->ops[0];
    memmove(f->ops, f->ops + 1, (f->nops - 1) * sizeof *f->ops);
    f->nops--;
    if (o.gen) {
        if (st != BS_OK) {
            o.dcb(o.arg, st, NULL, 0, NULL, 0);
            return;
        }
        fkey *k = fk_make(f, o.topic);
        o.dcb(o.arg, BS_OK, k->key, 32, k->edek, sizeof k->edek);
        return;
    }
    if (st == BS_OK) {
        st = BS_E_CRYPTO;
        for (size_t i = 0; i < f->nkeys; i++)
            if (o.edek_len == 16 && memcmp(f->keys[i].edek, o.edek, 16) == 0 &&
                strcmp(f->keys[i].topic, o.topic) == 0) {
                o.kcb(o.arg, BS_OK, f->keys[i].key, 32);
                return;
            }
    }
    o.kcb(o.arg, st, NULL, 0);
}

/* ------------------------------------------------------------- scaffolding */

typedef struct twait {
    bs_dek_waiter w;
    int calls;
    bs_status st;
} twait;

static void on_wake(bs_dek_waiter *w, bs_status st)
{
    twait *t = w->arg;
    t->calls++;
    t->st = st;
}

static void twait_init(twait *t)
{
    memset(t, 0, sizeof *t);
    bs_dek_waiter_init(&t->w, on_wake, t);
}

typedef struct rig {
    struct ev_loop *cl, *wl[2];
    fake_kr kr;
    bs_dek_manager *m;
    bs_dek_worker *w[2];
} rig;

static bool rig_init(rig *r, uint64_t max_records, uint64_t max_age_s, size_t cache_max,
                     uint64_t ttl_s)
{
    memset(r, 0, sizeof *r);
    r->kr.base.ops = &fake_ops;
    r->cl = ev_loop_new(EVFLAG_AUTO);
    r->wl[0] = ev_loop_new(EVFLAG_AUTO);
    r->wl[1] = ev_loop_new(EVFLAG_AUTO);
    bs_dek_manager_config cfg = {.keyring = &r->kr.base,
                                 .loop = r->cl,
                                 .policy = {max_records, max_age_s},
                                 .cache_max_entries = cache_max,
                                 .cache_ttl_s = ttl_s,
                                 .failure_backoff_ms = 2000,
                                 .sweep_interval_s = 3600, /* tests sweep by hand */
                                 .clock = fake_clock};
    bool ok = bs_dek_manager_new(&cfg, &r->m) == BS_OK &&
              bs_dek_worker_new(r->m, r->wl[0], &r->w[0]) == BS_OK &&
              bs_dek_worker_new(r->m, r->wl[1], &r->w[1]) == BS_OK;
    CHECK(ok);
    return ok;
}

static void rig_free(rig *r)
{
    bs_dek_worker_free(r->w[0]);
    bs_dek_worker_free(r->w[1]);
    bs_dek_manager_free(r->m);
    /* Detached operations still complete (their callbacks only clean up). */
    while (r->kr.nops)
        fk_complete(&r->kr, BS_E_IO);
    ev_loop_destroy(r->cl);
    ev_loop_destroy(r->wl[0]);
    ev_loop_destroy(r->wl[1]);
}

/* Let the three loops exchange their messages (ev_async within one thread). */
static void pump(rig *r)
{
    for (int i = 0; i < 4; i++) {
        ev_run(r->wl[0], EVRUN_NOWAIT);
        ev_run(r->wl[1], EVRUN_NOWAIT);
        ev_run(r->cl, EVRUN_NOWAIT);
    }
    ev_run(r->wl[0], EVRUN_NOWAIT);
    ev_run(r->wl[1], EVRUN_NOWAIT);
}

static int64_t counter(const char *name, const char *labels)
{
    return bs_metric_value(bs_metrics_counter(name, "", labels));
}

static int64_t kms_calls(const char *op, const char *result)
{
    char labels[128];
    snprintf(labels, sizeof labels, "op=\"%s\",result=\"%s\"", op, result);
    return counter("brokerside_kms_calls_total", labels);
}

/* Encrypt one record with `d` for `topic`; true on success. */
static bool encrypt_one(bs_dek *d, const char *topic, bs_wbuf *out)
{
    static const uint8_t pt[] = "a record value";
    return bs_envelope_encrypt(d, topic, strlen(topic), pt, sizeof pt - 1, out) == BS_OK;
}

/* ------------------------------------------------------------------ tests */

static void test_rotation_by_records(void)
{
    rig r;
    if (!rig_init(&r, 10, 3600, 0, 0)) return;
    int64_t rot0 = counter("brokerside_dek_rotations_total", "reason=\"records\"");
    twait t;
    twait_init(&t);
    bs_dek *d = NULL;
    uint64_t budget = 0;
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget),
             BS_E_AGAIN);
    CHECK(bs_dek_waiter_parked(&t.w));
    /* A second ask while the first is pending makes no second keyring call. */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, NULL, &d, &budget),
             BS_E_AGAIN);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 1);
    CHECK_STR(r.kr.ops[0].topic, "orders"); /* the topic is the encryption context */
    fk_complete(&r.kr, BS_OK);
    CHECK_EQ(t.calls, 0); /* answers arrive through the worker's loop, not inline */
    pump(&r);
    CHECK_EQ(t.calls, 1);
    CHECK_EQ(t.st, BS_OK);
    CHECK(!bs_dek_waiter_parked(&t.w));
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget), BS_OK);
    CHECK_EQ(budget, 10);
    bs_dek *first = d;
    size_t e1len = 0;
    const uint8_t *e1 = bs_dek_edek(first, &e1len);
    uint8_t edek1[16];
    memcpy(edek1, e1, sizeof edek1);
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    for (int i = 0; i < 8; i++)
        CHECK(encrypt_one(d, "orders", &out));
    /* 8 of 10 used: below 90%, nothing requested yet. */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget), BS_OK);
    CHECK_EQ(budget, 2);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 1);
    CHECK(encrypt_one(d, "orders", &out));
    /* 9 of 10: the next DEK is requested ahead while this one stays in use. */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget), BS_OK);
    CHECK(d == first);
    CHECK_EQ(budget, 1);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 2);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK(encrypt_one(d, "orders", &out));
    /* 10 of 10: the prefetched DEK takes over without waiting. */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget), BS_OK);
    CHECK_EQ(budget, 10);
    size_t e2len = 0;
    const uint8_t *e2 = bs_dek_edek(d, &e2len);
    CHECK(e2len == 16 && memcmp(e2, edek1, 16) != 0);
    CHECK_EQ(bs_dek_uses(d), 0);
    CHECK_EQ(counter("brokerside_dek_rotations_total", "reason=\"records\"") - rot0, 1);
    /* Another topic under the same key has its own DEK (context binds the topic). */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "payments", 8, &t.w, &d, &budget),
             BS_E_AGAIN);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 3);
    CHECK_STR(r.kr.ops[0].topic, "payments");
    bs_wbuf_free(&out);
    rig_free(&r);
}

/* Reload: a new, lower records limit applies to the DEK in use from its next
 * use (budget shrinks, then rotation); an invalid policy is refused and
 * changes nothing. */
static void test_set_policy_applies_to_the_dek_in_use(void)
{
    rig r;
    if (!rig_init(&r, 100, 3600, 0, 0)) return;
    twait t;
    twait_init(&t);
    bs_dek *d = NULL;
    uint64_t budget = 0;
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget),
             BS_E_AGAIN);
    pump(&r);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget), BS_OK);
    CHECK_EQ(budget, 100);
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    for (int i = 0; i < 5; i++)
        CHECK(encrypt_one(d, "orders", &out));
    bs_dek_policy bad = {0, 3600};
    CHECK_EQ(bs_dek_manager_set_policy(r.m, &bad), BS_E_CONFIG);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget), BS_OK);
    CHECK_EQ(budget, 95);
    bs_dek_policy lower = {6, 3600};
    CHECK_EQ(bs_dek_manager_set_policy(r.m, &lower), BS_OK);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget), BS_OK);
    CHECK_EQ(budget, 1);
    CHECK(encrypt_one(d, "orders", &out));
    /* 6 of the new 6 used: this DEK is retired; the next one is fetched. */
    int64_t gen0 = r.kr.gen_calls;
    bs_status st = bs_dek_worker_encrypt_dek(r.w[0], "alias/a", "orders", 6, &t.w, &d, &budget);
    pump(&r);
    CHECK(r.kr.gen_calls > gen0 || st == BS_OK);
    if (st == BS_OK) CHECK_EQ(bs_dek_uses(d), 0);
    bs_wbuf_free(&out);
    rig_free(&r);
}

static void test_rotation_by_age(void)
{
    rig r;
    if (!rig_init(&r, 1000000, 100, 0, 0)) return;
    int64_t rot0 = counter("brokerside_dek_rotations_total", "reason=\"age\"");
    twait t;
    twait_init(&t);
    bs_dek *d = NULL, *first;
    uint64_t budget;
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &d, &budget), BS_E_AGAIN);
    pump(&r);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &first, &budget), BS_OK);
    atomic_fetch_add(&fake_now, 89 * 1000); /* 89 s of 100: not yet */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &d, &budget), BS_OK);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 1);
    atomic_fetch_add(&fake_now, 1000); /* 90 s: fetch ahead */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &d, &budget), BS_OK);
    CHECK(d == first);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 2);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &d, &budget), BS_OK);
    CHECK(d == first);                      /* still within its age */
    atomic_fetch_add(&fake_now, 10 * 1000); /* 100 s: retired, the next one is ready */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &d, &budget), BS_OK);
    CHECK(d != first);
    CHECK_EQ(counter("brokerside_dek_rotations_total", "reason=\"age\"") - rot0, 1);
    /* Idle past the whole age limit with nothing fetched ahead: never used again. */
    atomic_fetch_add(&fake_now, 1000 * 1000);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &d, &budget), BS_E_AGAIN);
    CHECK_EQ(counter("brokerside_dek_rotations_total", "reason=\"age\"") - rot0, 2);
    pump(&r);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(t.calls, 2);
    CHECK_EQ(t.st, BS_OK);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &d, &budget), BS_OK);
    /* A clock that went backwards retires the key too. */
    atomic_fetch_sub(&fake_now, 5000);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[1], "k", "t", 1, &t.w, &d, &budget), BS_E_AGAIN);
    rig_free(&r);
}

static void test_fail_closed_and_recovery(void)
{
    rig r;
    if (!rig_init(&r, 100, 3600, 0, 0)) return;
    int64_t io0 = kms_calls("generate_data_key", "io");
    twait a, b;
    twait_init(&a);
    twait_init(&b);
    bs_dek *d = NULL;
    uint64_t budget;
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &a.w, &d, &budget), BS_E_AGAIN);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &b.w, &d, &budget), BS_E_AGAIN);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 1);
    fk_complete(&r.kr, BS_E_IO); /* the KMS is down */
    pump(&r);
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(a.st, BS_E_IO);
    CHECK_EQ(b.calls, 1);
    CHECK_EQ(b.st, BS_E_IO);
    CHECK_EQ(kms_calls("generate_data_key", "io") - io0, 1);
    /* Within the backoff the failure answers at once, without a keyring call. */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &a.w, &d, &budget), BS_E_IO);
    CHECK(!bs_dek_waiter_parked(&a.w));
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 1);
    /* After it, a new attempt; the KMS is back: keys arrive and traffic resumes. */
    atomic_fetch_add(&fake_now, 2000);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &a.w, &d, &budget), BS_E_AGAIN);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 2);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(a.calls, 2);
    CHECK_EQ(a.st, BS_OK);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &a.w, &d, &budget), BS_OK);
    /* A failed fetch-ahead leaves the current key usable until its limit, then fails closed. */
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    for (int i = 0; i < 90; i++)
        CHECK(encrypt_one(d, "t", &out));
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &a.w, &d, &budget), BS_OK);
    pump(&r);
    CHECK_EQ(r.kr.gen_calls, 3);
    fk_complete(&r.kr, BS_E_STATE); /* e.g. DisabledException */
    pump(&r);
    CHECK_EQ(a.calls, 2); /* nobody was waiting */
    for (int i = 0; i < 10; i++)
        CHECK(encrypt_one(d, "t", &out));
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &a.w, &d, &budget), BS_E_STATE);
    bs_wbuf_free(&out);
    rig_free(&r);
}

static void test_decrypt_coalescing_and_cache(void)
{
    rig r;
    if (!rig_init(&r, 100, 3600, 0, 0)) return;
    fkey *k = fk_make(&r.kr, "orders");
    int64_t hits0 = counter("brokerside_dek_cache_hits_total", NULL);
    int64_t miss0 = counter("brokerside_dek_cache_misses_total", NULL);
    int64_t ok0 = kms_calls("decrypt", "ok");
    twait a, b;
    twait_init(&a);
    twait_init(&b);
    bs_dek *da = NULL, *db = NULL;
    const uint8_t *kref = (const uint8_t *)"alias/a";
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[0], kref, 7, k->edek, 16, "orders", 6, &a.w, &da),
             BS_E_AGAIN);
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[1], kref, 7, k->edek, 16, "orders", 6, &b.w, &db),
             BS_E_AGAIN);
    pump(&r);
    CHECK_EQ(r.kr.dec_calls, 1); /* two workers, one KMS Decrypt */
    CHECK_EQ(counter("brokerside_dek_cache_misses_total", NULL) - miss0, 2);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(a.st, BS_OK);
    CHECK_EQ(b.calls, 1);
    CHECK_EQ(kms_calls("decrypt", "ok") - ok0, 1);
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[0], kref, 7, k->edek, 16, "orders", 6, &a.w, &da),
             BS_OK);
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[1], kref, 7, k->edek, 16, "orders", 6, &b.w, &db),
             BS_OK);
    CHECK(da && db && da != db); /* each worker owns its own DEK object */
    /* An envelope made under that key decrypts with both. */
    bs_dek *enc = NULL;
    CHECK(bs_dek_new(k->key, "alias/a", k->edek, 16, 0, &enc) == BS_OK);
    bs_wbuf env, pt;
    bs_wbuf_init(&env, 0);
    bs_wbuf_init(&pt, 0);
    CHECK(encrypt_one(enc, "orders", &env));
    CHECK(bs_envelope_decrypt(da, "orders", 6, env.data, env.len, &pt) == BS_OK);
    CHECK(bs_envelope_decrypt(db, "orders", 6, env.data, env.len, &pt) == BS_OK);
    CHECK_EQ(pt.len, 28);
    bs_dek_free(enc);
    bs_wbuf_free(&env);
    bs_wbuf_free(&pt);
    size_t cached = 0, pending = 9;
    bs_dek_manager_stats(r.m, &cached, &pending);
    CHECK_EQ(cached, 1);
    CHECK_EQ(pending, 0);

    /* The same EDEK presented for another topic is another lookup, refused by the
     * keyring (context mismatch), and the refusal is remembered for the backoff. */
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[0], kref, 7, k->edek, 16, "other", 5, &a.w, &da),
             BS_E_AGAIN);
    pump(&r);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(a.calls, 2);
    CHECK_EQ(a.st, BS_E_CRYPTO);
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[0], kref, 7, k->edek, 16, "other", 5, &a.w, &da),
             BS_E_CRYPTO);
    pump(&r);
    CHECK_EQ(r.kr.dec_calls, 2);
    /* Bad inputs. */
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[0], kref, 0, k->edek, 16, "orders", 6, NULL, &da),
             BS_E_MALFORMED);
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[0], (const uint8_t *)"a b", 3, k->edek, 16, "o", 1, NULL,
                                       &da),
             BS_E_MALFORMED);
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[0], kref, 7, k->edek, 0, "orders", 6, NULL, &da),
             BS_E_MALFORMED);
    CHECK_EQ(bs_dek_worker_decrypt_dek(r.w[0], kref, 7, k->edek, 16, "", 0, NULL, &da),
             BS_E_CONFIG);
    /* Worker hits are published in batches; freeing the workers flushes them. */
    rig_free(&r);
    CHECK_EQ(counter("brokerside_dek_cache_hits_total", NULL) - hits0, 2);
}

static void test_generated_keys_are_cached_for_decryption(void)
{
    rig r;
    if (!rig_init(&r, 100, 3600, 0, 0)) return;
    twait t;
    twait_init(&t);
    bs_dek *d = NULL, *dd = NULL;
    uint64_t budget;
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &t.w, &d, &budget), BS_E_AGAIN);
    pump(&r);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &t.w, &d, &budget), BS_OK);
    bs_wbuf env, pt;
    bs_wbuf_init(&env, 0);
    bs_wbuf_init(&pt, 0);
    CHECK(encrypt_one(d, "t", &env));
    size_t elen;
    const uint8_t *edek = bs_dek_edek(d, &elen);
    /* The other worker reads it back: served by the control cache, no Decrypt. */
    CHECK_EQ(
        bs_dek_worker_decrypt_dek(r.w[1], (const uint8_t *)"k", 1, edek, elen, "t", 1, &t.w, &dd),
        BS_E_AGAIN);
    pump(&r);
    CHECK_EQ(r.kr.dec_calls, 0);
    CHECK_EQ(t.calls, 2);
    CHECK_EQ(
        bs_dek_worker_decrypt_dek(r.w[1], (const uint8_t *)"k", 1, edek, elen, "t", 1, &t.w, &dd),
        BS_OK);
    CHECK(bs_envelope_decrypt(dd, "t", 1, env.data, env.len, &pt) == BS_OK);
    bs_wbuf_free(&env);
    bs_wbuf_free(&pt);
    rig_free(&r);
}

/* Decrypt key `k` on worker `wi` to completion; the status of the final lookup. */
static bs_status fetch_dec(rig *r, int wi, fkey *k, bs_dek **d)
{
    twait t;
    twait_init(&t);
    bs_status st = bs_dek_worker_decrypt_dek(r->w[wi], (const uint8_t *)"k", 1, k->edek, 16,
                                             k->topic, strlen(k->topic), &t.w, d);
    if (st != BS_E_AGAIN) return st;
    pump(r);
    while (r->kr.nops)
        fk_complete(&r->kr, BS_OK);
    pump(r);
    bs_dek_waiter_cancel(&t.w);
    return bs_dek_worker_decrypt_dek(r->w[wi], (const uint8_t *)"k", 1, k->edek, 16, k->topic,
                                     strlen(k->topic), NULL, d);
}

static void test_cache_bound_and_ttl(void)
{
    rig r;
    if (!rig_init(&r, 100, 3600, 2, 10)) return;
    fkey *k1 = fk_make(&r.kr, "t"), *k2 = fk_make(&r.kr, "t"), *k3 = fk_make(&r.kr, "t");
    bs_dek *d;
    CHECK_EQ(fetch_dec(&r, 0, k1, &d), BS_OK);
    CHECK_EQ(fetch_dec(&r, 0, k2, &d), BS_OK);
    CHECK_EQ(fetch_dec(&r, 0, k1, &d), BS_OK); /* k1 most recently used */
    CHECK_EQ(r.kr.dec_calls, 2);
    /* k3 evicts the least recently used entry of each cache: k2 in the worker's
     * (it saw k1 again), k1 in the control cache (it only saw the misses). */
    CHECK_EQ(fetch_dec(&r, 0, k3, &d), BS_OK);
    CHECK_EQ(r.kr.dec_calls, 3);
    size_t cached, enc_slots, dec_keys;
    bs_dek_manager_stats(r.m, &cached, NULL);
    CHECK_EQ(cached, 2);
    bs_dek_worker_stats(r.w[0], &enc_slots, &dec_keys);
    CHECK_EQ(dec_keys, 2);
    CHECK_EQ(fetch_dec(&r, 0, k1, &d), BS_OK); /* worker hit */
    CHECK_EQ(r.kr.dec_calls, 3);
    CHECK_EQ(fetch_dec(&r, 0, k2, &d), BS_OK); /* worker miss, control hit */
    CHECK_EQ(r.kr.dec_calls, 3);
    CHECK_EQ(fetch_dec(&r, 1, k1, &d), BS_OK); /* both miss: a Decrypt */
    CHECK_EQ(r.kr.dec_calls, 4);
    bs_dek_manager_stats(r.m, &cached, NULL);
    CHECK_EQ(cached, 2);
    /* TTL: 10 s later every key must be fetched again; the sweep wipes them all. */
    atomic_fetch_add(&fake_now, 10 * 1000);
    bs_dek_manager_sweep(r.m);
    bs_dek_manager_stats(r.m, &cached, NULL);
    CHECK_EQ(cached, 0);
    CHECK_EQ(fetch_dec(&r, 0, k2, &d), BS_OK); /* the worker's copy expired too */
    CHECK_EQ(r.kr.dec_calls, 5);
    rig_free(&r);
}

/* A waiter whose callback looks up another EDEK, which evicts the entry that
 * is waking it (cache of one): the wake-up must not touch the freed entry. */
typedef struct chain {
    bs_dek_waiter w;
    rig *r;
    fkey *next;
    bs_status next_st;
    int calls;
} chain;

static void on_chain(bs_dek_waiter *w, bs_status st)
{
    chain *c = w->arg;
    c->calls++;
    CHECK_EQ(st, BS_OK);
    bs_dek *d;
    c->next_st = bs_dek_worker_decrypt_dek(c->r->w[0], (const uint8_t *)"k", 1, c->next->edek, 16,
                                           "t", 1, NULL, &d);
}

static void test_waiter_callback_evicting_its_entry(void)
{
    rig r;
    if (!rig_init(&r, 100, 3600, 1, 0)) return;
    fkey *a = fk_make(&r.kr, "t"), *b = fk_make(&r.kr, "t");
    chain c = {.r = &r, .next = b};
    bs_dek_waiter_init(&c.w, on_chain, &c);
    twait other;
    twait_init(&other);
    bs_dek *d;
    CHECK_EQ(
        bs_dek_worker_decrypt_dek(r.w[0], (const uint8_t *)"k", 1, a->edek, 16, "t", 1, &c.w, &d),
        BS_E_AGAIN);
    pump(&r);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(c.calls, 1);
    CHECK_EQ(c.next_st, BS_E_AGAIN); /* b replaced a in the one-entry cache */
    size_t dec_keys;
    bs_dek_worker_stats(r.w[0], NULL, &dec_keys);
    CHECK_EQ(dec_keys, 1);
    rig_free(&r);
}

static void test_cancel_and_teardown_with_pending(void)
{
    rig r;
    if (!rig_init(&r, 100, 3600, 0, 0)) return;
    fkey *k = fk_make(&r.kr, "t");
    twait a, b;
    twait_init(&a);
    twait_init(&b);
    bs_dek *d;
    uint64_t budget;
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t", 1, &a.w, &d, &budget), BS_E_AGAIN);
    bs_dek_waiter_cancel(&a.w); /* the connection went away */
    CHECK(!bs_dek_waiter_parked(&a.w));
    pump(&r);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(a.calls, 0);
    /* One waiter waits for one key at a time: a second park is refused quietly. */
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "u", 1, &a.w, &d, &budget), BS_E_AGAIN);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "v", 1, &a.w, &d, &budget), BS_E_AGAIN);
    pump(&r);
    fk_complete(&r.kr, BS_OK);
    pump(&r);
    CHECK_EQ(a.calls, 1);
    /* Requests in flight when the worker and then the manager go away. */
    CHECK_EQ(
        bs_dek_worker_decrypt_dek(r.w[1], (const uint8_t *)"k", 1, k->edek, 16, "t", 1, &b.w, &d),
        BS_E_AGAIN);
    pump(&r);
    CHECK(r.kr.nops >= 2);
    bs_dek_worker_free(r.w[1]);
    r.w[1] = NULL;
    CHECK(!bs_dek_waiter_parked(&b.w));
    fk_complete(&r.kr, BS_OK); /* answer for a gone worker: dropped */
    pump(&r);
    CHECK_EQ(b.calls, 0);
    /* Bad configuration and inputs. */
    bs_dek_manager *m2 = NULL;
    bs_dek_manager_config bad = {.keyring = &r.kr.base, .loop = r.cl, .policy = {0, 10}};
    CHECK_EQ(bs_dek_manager_new(&bad, &m2), BS_E_CONFIG);
    bad.policy = (bs_dek_policy){10, 10};
    bad.refresh_pct = 40;
    CHECK_EQ(bs_dek_manager_new(&bad, &m2), BS_E_CONFIG);
    bad.refresh_pct = 0;
    bad.keyring = NULL;
    CHECK_EQ(bs_dek_manager_new(&bad, &m2), BS_E_CONFIG);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "bad key", "t", 1, NULL, &d, &budget), BS_E_CONFIG);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "", "t", 1, NULL, &d, &budget), BS_E_CONFIG);
    CHECK_EQ(bs_dek_worker_encrypt_dek(r.w[0], "k", "t\0x", 3, NULL, &d, &budget), BS_E_CONFIG);
    rig_free(&r); /* frees the manager with a keyring call still pending */
}

/* ---------------------------------------------- threads + local keyring */

typedef struct wthread {
    bs_dek_manager *m;
    int idx;
    int ok_rounds;
    bs_status last_err;
} wthread;

typedef struct wwait {
    bs_dek_waiter w;
} wwait;

/* Keeps a worker loop referenced so EVRUN_ONCE sleeps until the answer. */
static void on_idle_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
}

/* Each worker: 300 rounds of (encrypt DEK, encrypt, decrypt DEK, decrypt),
 * waiting for keys on its own loop; the DEK rotates every 40 records. */
static void *worker_main(void *arg)
{
    wthread *wt = arg;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_dek_worker *w = NULL;
    char topic[16];
    snprintf(topic, sizeof topic, "topic-%d", wt->idx);
    if (bs_dek_worker_new(wt->m, loop, &w) != BS_OK) {
        wt->last_err = BS_E_NOMEM;
        ev_loop_destroy(loop);
        return NULL;
    }
    ev_timer keepalive;
    ev_timer_init(&keepalive, on_idle_timer, 3600., 3600.);
    ev_timer_start(loop, &keepalive);
    bs_wbuf env, pt;
    bs_wbuf_init(&env, 0);
    bs_wbuf_init(&pt, 0);
    for (int round = 0; round < 300; round++) {
        bs_dek *d = NULL, *dd = NULL;
        uint64_t budget;
        bs_status st;
        wwait ww;
        for (int tries = 0; tries < 1000; tries++) {
            memset(&ww, 0, sizeof ww);
            bs_dek_waiter_init(&ww.w, NULL, &ww);
            st = bs_dek_worker_encrypt_dek(w, "alias/mt", topic, strlen(topic), &ww.w, &d, &budget);
            if (st != BS_E_AGAIN) break;
            while (bs_dek_waiter_parked(&ww.w))
                ev_run(loop, EVRUN_ONCE);
        }
        if (st != BS_OK) {
            wt->last_err = st;
            break;
        }
        bs_wbuf_reset(&env);
        bs_wbuf_reset(&pt);
        if (!encrypt_one(d, topic, &env)) break;
        bs_envelope e;
        if (bs_envelope_parse(env.data, env.len, &e) != BS_OK) break;
        for (int tries = 0; tries < 1000; tries++) {
            memset(&ww, 0, sizeof ww);
            bs_dek_waiter_init(&ww.w, NULL, &ww);
            st = bs_dek_worker_decrypt_dek(w, e.keyref, e.keyref_len, e.edek, e.edek_len, topic,
                                           strlen(topic), &ww.w, &dd);
            if (st != BS_E_AGAIN) break;
            while (bs_dek_waiter_parked(&ww.w))
                ev_run(loop, EVRUN_ONCE);
        }
        if (st != BS_OK) {
            wt->last_err = st;
            break;
        }
        if (bs_envelope_decrypt(dd, topic, strlen(topic), env.data, env.len, &pt) != BS_OK ||
            pt.len != 14 || memcmp(pt.data, "a record value", 14) != 0)
            break;
        wt->ok_rounds++;
    }
    bs_wbuf_free(&env);
    bs_wbuf_free(&pt);
    bs_dek_worker_free(w);
    ev_timer_stop(loop, &keepalive);
    ev_loop_destroy(loop);
    return NULL;
}

typedef struct control {
    struct ev_loop *loop;
    ev_async stop;
} control;

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)a;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *control_main(void *arg)
{
    control *c = arg;
    ev_run(c->loop, 0);
    return NULL;
}

static void test_two_worker_threads_local_keyring(void)
{
    char dir[] = "/tmp/bs-dekmgr-XXXXXX", path[128], err[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/master.key", dir);
    bs_keyring *kr = NULL;
    CHECK(bs_keyring_local_keygen(path, err, sizeof err) == BS_OK);
    CHECK(bs_keyring_local_open(path, &kr, err, sizeof err) == BS_OK);
    if (!kr) return;
    control c;
    c.loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&c.stop, on_stop);
    ev_async_start(c.loop, &c.stop);
    bs_dek_manager *m = NULL;
    bs_dek_manager_config cfg = {
        .keyring = kr, .loop = c.loop, .policy = {40, 3600}, .cache_max_entries = 4};
    CHECK(bs_dek_manager_new(&cfg, &m) == BS_OK);
    int64_t rot0 = counter("brokerside_dek_rotations_total", "reason=\"records\"");
    pthread_t ct, wt[2];
    wthread ws[2] = {{m, 0, 0, BS_OK}, {m, 1, 0, BS_OK}};
    pthread_create(&ct, NULL, control_main, &c);
    pthread_create(&wt[0], NULL, worker_main, &ws[0]);
    pthread_create(&wt[1], NULL, worker_main, &ws[1]);
    pthread_join(wt[0], NULL);
    pthread_join(wt[1], NULL);
    ev_async_send(c.loop, &c.stop);
    pthread_join(ct, NULL);
    CHECK_EQ(ws[0].ok_rounds, 300);
    CHECK_EQ(ws[1].ok_rounds, 300);
    CHECK_EQ(ws[0].last_err, BS_OK);
    CHECK_EQ(ws[1].last_err, BS_OK);
    /* 300 records per worker at 40 per DEK: at least 7 rotations each. */
    CHECK(counter("brokerside_dek_rotations_total", "reason=\"records\"") - rot0 >= 14);
    bs_dek_manager_free(m);
    ev_async_stop(c.loop, &c.stop);
    ev_loop_destroy(c.loop);
    bs_keyring_free(kr);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    RUN(test_rotation_by_records);
    RUN(test_rotation_by_age);
    RUN(test_set_policy_applies_to_the_dek_in_use);
    RUN(test_fail_closed_and_recovery);
    RUN(test_decrypt_coalescing_and_cache);
    RUN(test_generated_keys_are_cached_for_decryption);
    RUN(test_cache_bound_and_ttl);
    RUN(test_waiter_callback_evicting_its_entry);
    RUN(test_cancel_and_teardown_with_pending);
    RUN(test_two_worker_threads_local_keyring);
    bs_metrics_shutdown();
    return test_report();
}
