/* dek_manager.c - per-worker encryption DEKs and the decrypted-DEK cache (see dek_manager.h). */
#include "brokerside/dek_manager.h"

#include <ev.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/log.h"
#include "brokerside/sidecar_action.h"
#include "brokerside/metrics.h"

#define MOD "dek"
#define DIGEST_LEN 32
/* A request unanswered this long (an answer lost to OOM) fails its waiters;
 * far above the HTTP client's worst case of attempts, timeouts and backoff. */
#define PENDING_GIVE_UP_MS (10u * 60u * 1000u)
/* Worker cache hits are published in batches of this many (and by every sweep). */
#define HITS_FLUSH_EVERY 256

enum { KIND_ENC = 1, KIND_DEC = 2 };

/* A message between the threads, in either direction, in one allocation:
 * the struct, then keyref, topic (both NUL-terminated) and the EDEK. */
typedef struct dek_msg {
    struct dek_msg *next;
    int kind;
    uint64_t worker_id;
    bs_status st;
    bool has_key;
    uint8_t key[BS_DEK_KEY_LEN];
    uint64_t expires_ms; /* decrypted keys: when the caches must drop it */
    char *keyref;
    size_t keyref_len;
    char *topic;
    size_t topic_len;
    uint8_t *edek;
    size_t edek_len;
    size_t alloc_len;
} dek_msg;

typedef struct msg_queue {
    dek_msg *head, *tail;
} msg_queue;

/* ---- control side ---- */

typedef struct waiting_worker {
    struct waiting_worker *next;
    uint64_t id;
} waiting_worker;

/* One entry of the control cache, keyed by SHA-256(keyref, topic, EDEK). */
typedef struct cent {
    struct cent *hnext;
    struct cent *lru_prev, *lru_next; /* READY entries only */
    uint8_t digest[DIGEST_LEN];
    bool ready;
    uint8_t key[BS_DEK_KEY_LEN];
    uint64_t expires_ms;
    waiting_worker *waiting; /* pending: who gets the answer */
    dek_msg *req;            /* pending: the request (keyref, topic, EDEK) */
} cent;

/* A keyring call in flight; detached (m == NULL) when the manager is freed. */
typedef struct kop {
    struct bs_dek_manager *m;
    struct kop *prev, *next;
    int kind;
    dek_msg *req; /* owned: keyref/topic/worker of the call */
    cent *entry;  /* decrypt: the pending cache entry */
} kop;

struct bs_dek_manager {
    bs_keyring *keyring;
    struct ev_loop *loop;
    bs_dek_policy policy;
    unsigned refresh_pct;
    size_t cache_max, max_pending;
    uint64_t ttl_ms, backoff_ms;
    bs_dek_clock_fn clock;
    void *clock_arg;
    double sweep_iv; /* read by workers too: set once before any exists */

    ev_async async; /* workers -> control */
    ev_timer sweep;

    pthread_mutex_t mu; /* guards requests, workers and every worker inbox */
    msg_queue requests;
    struct bs_dek_worker *workers;
    uint64_t next_worker_id;

    /* Control thread only. */
    cent **buckets;
    size_t nbuckets, nready, npending_dec;
    cent *lru_head, *lru_tail;
    kop *ops;
    size_t nops;

    bs_metric *hits, *misses, *rot_records, *rot_age;
    /* keyring calls are failing: KmsUnavailable recorded, no KmsRecovered
     * since (the thread that runs the keyring callbacks only) */
    bool kms_failing;
};

/* ---- worker side ---- */

typedef struct waiter_list {
    bs_dek_waiter *head, *tail;
} waiter_list;

/* A worker's entry: an encryption slot (keyref, topic) or a decrypted key
 * (keyref, topic, EDEK). Key strings live in the same allocation. */
typedef struct wentry {
    struct wentry *hnext;
    struct wentry *lru_prev, *lru_next; /* decrypt entries */
    uint64_t hash;
    char *keyref;
    size_t keyref_len;
    char *topic;
    size_t topic_len;
    uint8_t *edek;
    size_t edek_len;
    bool pending;
    uint64_t pending_since_ms;
    bs_status fail_st;
    uint64_t fail_until_ms;
    waiter_list waiters;
    bs_dek *cur;     /* encrypt: in use; decrypt: the key */
    uint64_t cur_ms; /* encrypt: creation time; decrypt: expiry */
    bs_dek *next;    /* encrypt: fetched ahead */
    uint64_t next_ms;
} wentry;

typedef struct wtable {
    wentry **buckets;
    size_t nbuckets, n;
} wtable;

struct bs_dek_worker {
    bs_dek_manager *m;
    struct bs_dek_worker *next; /* registry, under m->mu */
    uint64_t id;
    struct ev_loop *loop;
    ev_async async;
    ev_timer sweep;
    msg_queue inbox; /* under m->mu */
    uint64_t seed;
    wtable enc, dec;
    wentry *lru_head, *lru_tail; /* decrypt entries, most recent first */
    /* Cache hits not yet added to the shared counter: one atomic add per record
     * from every worker would bounce its cache line between cores. */
    uint64_t hits_unflushed;
};

/* ---------------------------------------------------------------- helpers */

/* CLOCK_MONOTONIC in milliseconds: the default clock. */
static uint64_t mono_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_ms(const bs_dek_manager *m)
{
    return m->clock(m->clock_arg);
}

/* Allocate a message carrying copies of keyref, topic and EDEK; NULL on OOM. */
static dek_msg *msg_new(int kind, uint64_t worker_id, const char *keyref, size_t klen,
                        const char *topic, size_t tlen, const uint8_t *edek, size_t elen)
{
    size_t total = sizeof(dek_msg) + klen + 1 + tlen + 1 + elen;
    dek_msg *g = calloc(1, total);
    if (!g) return NULL;
    g->alloc_len = total;
    g->kind = kind;
    g->worker_id = worker_id;
    g->keyref = (char *)(g + 1);
    memcpy(g->keyref, keyref, klen);
    g->keyref_len = klen;
    g->topic = g->keyref + klen + 1;
    memcpy(g->topic, topic, tlen);
    g->topic_len = tlen;
    g->edek = (uint8_t *)g->topic + tlen + 1;
    if (elen) memcpy(g->edek, edek, elen);
    g->edek_len = elen;
    return g;
}

/* Wipe (the key may be in it) and free a message; NULL is fine. */
static void msg_free(dek_msg *g)
{
    if (!g) return;
    OPENSSL_cleanse(g, g->alloc_len);
    free(g);
}

static void queue_push(msg_queue *q, dek_msg *g)
{
    g->next = NULL;
    if (q->tail)
        q->tail->next = g;
    else
        q->head = g;
    q->tail = g;
}

/* Take the whole queue (caller holds the lock) and leave it empty. */
static dek_msg *queue_take(msg_queue *q)
{
    dek_msg *h = q->head;
    q->head = q->tail = NULL;
    return h;
}

static void queue_free_list(dek_msg *g)
{
    while (g) {
        dek_msg *n = g->next;
        msg_free(g);
        g = n;
    }
}

/* SHA-256 over length-prefixed keyref, topic and EDEK: the control cache key. */
static bool digest_of(const dek_msg *g, uint8_t out[DIGEST_LEN])
{
    uint8_t len[6] = {(uint8_t)(g->keyref_len >> 8), (uint8_t)g->keyref_len,
                      (uint8_t)(g->topic_len >> 8),  (uint8_t)g->topic_len,
                      (uint8_t)(g->edek_len >> 8),   (uint8_t)g->edek_len};
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned n = 0;
    bool ok =
        c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(c, len, 2) == 1 &&
        EVP_DigestUpdate(c, g->keyref, g->keyref_len) == 1 &&
        EVP_DigestUpdate(c, len + 2, 2) == 1 && EVP_DigestUpdate(c, g->topic, g->topic_len) == 1 &&
        EVP_DigestUpdate(c, len + 4, 2) == 1 && EVP_DigestUpdate(c, g->edek, g->edek_len) == 1 &&
        EVP_DigestFinal_ex(c, out, &n) == 1;
    EVP_MD_CTX_free(c);
    return ok && n == DIGEST_LEN;
}

/* True when a keyring call's failure says the KMS cannot serve us
 * (unreachable, throttling, refusing our credentials, key disabled or
 * missing), not that one EDEK is bad (BS_E_CRYPTO, BS_E_MALFORMED) or
 * that we ran short locally. */
static bool kms_outage(bs_status st)
{
    return st == BS_E_IO || st == BS_E_AGAIN || st == BS_E_CONFIG || st == BS_E_STATE ||
           st == BS_E_NOT_FOUND || st == BS_E_TOO_LARGE;
}

/* The KmsUnavailable / KmsRecovered sidecar actions on the edges of
 * keyring outages (sidecar_action.h): one record when calls start failing,
 * one when a call succeeds again, never one per call. */
static void note_kms(bs_dek_manager *m, int kind, bs_status st, const char *keyref)
{
    bool failing = kms_outage(st);
    if (st != BS_OK && !failing) return; /* a bad EDEK says nothing about the KMS */
    if (failing == m->kms_failing) return;
    m->kms_failing = failing;
    bs_action_detail d[] = {{"operation", kind == KIND_ENC ? "GenerateDataKey" : "Decrypt"},
                            {"keyId", keyref ? keyref : ""},
                            {"status", st == BS_OK ? "ok" : bs_status_name(st)}};
    bs_sidecar_action a = {
        .kind = failing ? BS_ACTION_KMS_FAILED : BS_ACTION_KMS_RECOVERED,
        .failed = failing,
        .subject_type = "keyring",
        .subject = keyref,
        .message = failing ? "keyring (KMS) calls fail: data keys cannot be made or unwrapped; "
                             "Produce and Fetch of encrypted topics get retriable errors"
                           : "keyring (KMS) calls succeed again",
        .details = d,
        .n_details = BS_ARRAY_LEN(d)};
    bs_sidecar_action_emit(&a);
}

/* Count one keyring call in brokerside_kms_calls_total{op,result}. */
static void count_call(int kind, bs_status st)
{
    bs_metric_add(bs_metrics_counter_kv("brokerside_kms_calls_total",
                                        "Keyring (KMS) calls by operation and result", "op",
                                        kind == KIND_ENC ? "generate_data_key" : "decrypt",
                                        "result", st == BS_OK ? "ok" : bs_status_name(st), NULL),
                  1);
}

/* Printable ASCII, as envelope key references must be. */
static bool keyref_ok(const uint8_t *p, size_t n)
{
    if (n == 0 || n > BS_ENVELOPE_MAX_KEYREF) return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e) return false;
    return true;
}

/* Kafka topic names never hold NUL; the context needs a C string. */
static bool topic_ok(const char *t, size_t n)
{
    return t && n > 0 && n <= 65535 && !memchr(t, 0, n);
}

/* ------------------------------------------------------- control: cache */

static size_t cent_bucket(const bs_dek_manager *m, const uint8_t *digest)
{
    uint64_t h;
    memcpy(&h, digest, sizeof h); /* a SHA-256 prefix is already uniform */
    return (size_t)(h & (m->nbuckets - 1));
}

static cent *cent_find(bs_dek_manager *m, const uint8_t *digest)
{
    for (cent *e = m->buckets[cent_bucket(m, digest)]; e; e = e->hnext)
        if (memcmp(e->digest, digest, DIGEST_LEN) == 0) return e;
    return NULL;
}

static void lru_unlink_c(bs_dek_manager *m, cent *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        m->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        m->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_front_c(bs_dek_manager *m, cent *e)
{
    e->lru_prev = NULL;
    e->lru_next = m->lru_head;
    if (m->lru_head) m->lru_head->lru_prev = e;
    m->lru_head = e;
    if (!m->lru_tail) m->lru_tail = e;
}

/* Remove `e` from the table (and LRU if ready), wipe its key, free it. The
 * caller has dealt with its waiting workers. */
static void cent_remove(bs_dek_manager *m, cent *e)
{
    cent **pp = &m->buckets[cent_bucket(m, e->digest)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    if (e->ready) {
        lru_unlink_c(m, e);
        m->nready--;
    } else {
        m->npending_dec--;
    }
    while (e->waiting) {
        waiting_worker *w = e->waiting;
        e->waiting = w->next;
        free(w);
    }
    msg_free(e->req);
    OPENSSL_cleanse(e, sizeof *e);
    free(e);
}

/* New pending entry for `digest`, in the table; NULL on OOM. */
static cent *cent_add(bs_dek_manager *m, const uint8_t *digest)
{
    cent *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    memcpy(e->digest, digest, DIGEST_LEN);
    size_t b = cent_bucket(m, digest);
    e->hnext = m->buckets[b];
    m->buckets[b] = e;
    m->npending_dec++;
    return e;
}

/* Turn pending `e` into a ready key, evicting the least recently used ready
 * keys beyond the bound. */
static void cent_set_ready(bs_dek_manager *m, cent *e, const uint8_t *key, uint64_t expires_ms)
{
    memcpy(e->key, key, BS_DEK_KEY_LEN);
    e->expires_ms = expires_ms;
    e->ready = true;
    m->npending_dec--;
    m->nready++;
    lru_front_c(m, e);
    while (m->nready > m->cache_max && m->lru_tail && m->lru_tail != e)
        cent_remove(m, m->lru_tail);
}

/* ------------------------------------------------ control: answering workers */

/* Queue an answer for worker `id`; dropped (wiped) if it is gone. Consumes `g`. */
static void deliver(bs_dek_manager *m, dek_msg *g)
{
    bool sent = false;
    pthread_mutex_lock(&m->mu);
    for (struct bs_dek_worker *w = m->workers; w; w = w->next) {
        if (w->id != g->worker_id) continue;
        queue_push(&w->inbox, g);
        /* Under the lock: the worker cannot unregister and stop its watcher meanwhile. */
        ev_async_send(w->loop, &w->async);
        sent = true;
        break;
    }
    pthread_mutex_unlock(&m->mu);
    if (!sent) msg_free(g);
}

/* Answer `req`'s worker with `st` (and `key` when BS_OK); `edek` overrides the
 * request's (generate: the new EDEK). Logs when the answer is lost to OOM. */
static void answer(bs_dek_manager *m, const dek_msg *req, bs_status st, const uint8_t *key,
                   const uint8_t *edek, size_t edek_len, uint64_t expires_ms)
{
    dek_msg *g = msg_new(req->kind, req->worker_id, req->keyref, req->keyref_len, req->topic,
                         req->topic_len, edek ? edek : req->edek, edek ? edek_len : req->edek_len);
    if (!g) {
        /* The worker's entry stays pending until its sweep gives up on it
         * (PENDING_GIVE_UP_MS) and fails its waiters. */
        BS_LOG_ERRORF(MOD, "out of memory answering a key request for worker %llu",
                      (unsigned long long)req->worker_id);
        return;
    }
    g->st = st;
    g->expires_ms = expires_ms;
    if (st == BS_OK && key) {
        memcpy(g->key, key, BS_DEK_KEY_LEN);
        g->has_key = true;
    }
    deliver(m, g);
}

static void kop_link(bs_dek_manager *m, kop *o)
{
    o->m = m;
    o->prev = NULL;
    o->next = m->ops;
    if (m->ops) m->ops->prev = o;
    m->ops = o;
    m->nops++;
}

static void kop_unlink(kop *o)
{
    bs_dek_manager *m = o->m;
    if (!m) return;
    if (o->prev)
        o->prev->next = o->next;
    else
        m->ops = o->next;
    if (o->next) o->next->prev = o->prev;
    m->nops--;
}

/* keyring generate_dek callback: hand the key to the requesting worker and
 * cache it for decryption. */
static void on_generated(void *arg, bs_status st, const uint8_t *key, size_t key_len,
                         const uint8_t *edek, size_t edek_len)
{
    kop *o = arg;
    bs_dek_manager *m = o->m;
    if (!m) goto out; /* manager gone: nothing to keep */
    kop_unlink(o);
    if (st == BS_OK &&
        (key_len != BS_DEK_KEY_LEN || !edek || edek_len == 0 || edek_len > BS_ENVELOPE_MAX_EDEK))
        st = BS_E_MALFORMED;
    count_call(KIND_ENC, st);
    note_kms(m, KIND_ENC, st, o->req->keyref);
    if (st != BS_OK) {
        BS_LOG_WARNF(MOD, "no data key for key %s topic %s: %s", o->req->keyref, o->req->topic,
                     bs_status_name(st));
        answer(m, o->req, st, NULL, NULL, 0, 0);
        goto out;
    }
    {
        /* DataKeyCreated: which master key, which topic, and a fingerprint of
         * the wrapped key (SHA-256 of the EDEK: ciphertext, names it without
         * revealing anything) */
        uint8_t md[32];
        char fp[17] = "";
        if (EVP_Digest(edek, edek_len, md, NULL, EVP_sha256(), NULL) == 1)
            for (int i = 0; i < 8; i++)
                snprintf(fp + 2 * i, 3, "%02x", md[i]);
        bs_action_detail d[] = {{"keyId", o->req->keyref}, {"topic", o->req->topic},
                                {"edekSha256Prefix", fp}};
        bs_sidecar_action a = {.kind = BS_ACTION_DEK_CREATED,
                               .subject_type = "dataKey",
                               .subject = o->req->topic,
                               .message = "a new data key was generated and wrapped by the keyring",
                               .details = d,
                               .n_details = BS_ARRAY_LEN(d)};
        bs_sidecar_action_emit(&a);
    }
    uint64_t expires = now_ms(m) + m->ttl_ms;
    answer(m, o->req, BS_OK, key, edek, edek_len, expires);
    /* Reading back what this sidecar wrote should not cost a KMS Decrypt. */
    dek_msg *probe = msg_new(KIND_DEC, 0, o->req->keyref, o->req->keyref_len, o->req->topic,
                             o->req->topic_len, edek, edek_len);
    uint8_t digest[DIGEST_LEN];
    if (probe && digest_of(probe, digest) && !cent_find(m, digest)) {
        cent *e = cent_add(m, digest);
        if (e) cent_set_ready(m, e, key, expires);
    }
    msg_free(probe);
out:
    msg_free(o->req);
    free(o);
}

/* keyring decrypt_edek callback: answer every worker waiting for this EDEK. */
static void on_decrypted(void *arg, bs_status st, const uint8_t *key, size_t key_len)
{
    kop *o = arg;
    bs_dek_manager *m = o->m;
    if (!m) goto out;
    kop_unlink(o);
    cent *e = o->entry;
    if (st == BS_OK && key_len != BS_DEK_KEY_LEN) st = BS_E_MALFORMED;
    count_call(KIND_DEC, st);
    note_kms(m, KIND_DEC, st, e->req->keyref);
    uint64_t expires = now_ms(m) + m->ttl_ms;
    if (st != BS_OK)
        BS_LOG_WARNF(MOD, "cannot decrypt a data key of key %s topic %s: %s", e->req->keyref,
                     e->req->topic, bs_status_name(st));
    for (waiting_worker *w = e->waiting; w; w = w->next) {
        e->req->worker_id = w->id;
        answer(m, e->req, st, key, NULL, 0, expires);
    }
    if (st == BS_OK) {
        while (e->waiting) {
            waiting_worker *w = e->waiting;
            e->waiting = w->next;
            free(w);
        }
        msg_free(e->req);
        e->req = NULL;
        cent_set_ready(m, e, key, expires);
    } else {
        cent_remove(m, e); /* failures are remembered by the workers, with backoff */
    }
out:
    free(o);
}

/* Start a keyring call for `req` (ownership passes to the op). Synchronous
 * keyrings complete inside. On failure to start, the caller is answered. */
static void start_call(bs_dek_manager *m, dek_msg *req, cent *entry)
{
    bs_status st = BS_E_FULL;
    kop *o = NULL;
    if (m->nops >= m->max_pending) goto fail;
    st = BS_E_NOMEM;
    o = calloc(1, sizeof *o);
    if (!o) goto fail;
    o->kind = req->kind;
    o->req = entry ? NULL : req;
    o->entry = entry;
    kop_link(m, o);
    bs_kv pair = {"topic", req->topic};
    bs_enc_context ctx = {&pair, 1};
    if (req->kind == KIND_ENC)
        st = bs_keyring_generate_dek(m->keyring, req->keyref, &ctx, on_generated, o);
    else
        st = bs_keyring_decrypt_edek(m->keyring, req->keyref, req->edek, req->edek_len, &ctx,
                                     on_decrypted, o);
    if (st == BS_OK) return; /* `o` (and `req` for generate) now belong to the callback */
    kop_unlink(o);
    o->req = NULL;
    free(o);
    count_call(req->kind, st);
fail:
    BS_LOG_WARNF(MOD, "key request for key %s topic %s not started: %s", req->keyref, req->topic,
                 bs_status_name(st));
    if (entry) {
        for (waiting_worker *w = entry->waiting; w; w = w->next) {
            req->worker_id = w->id;
            answer(m, req, st, NULL, NULL, 0, 0);
        }
        cent_remove(m, entry); /* frees req with it */
    } else {
        answer(m, req, st, NULL, NULL, 0, 0);
        msg_free(req);
    }
}

/* Serve one decrypt request from the cache, join a pending call, or start one. */
static void handle_decrypt(bs_dek_manager *m, dek_msg *req)
{
    uint8_t digest[DIGEST_LEN];
    if (!digest_of(req, digest)) {
        answer(m, req, BS_E_CRYPTO, NULL, NULL, 0, 0);
        msg_free(req);
        return;
    }
    cent *e = cent_find(m, digest);
    if (e && e->ready && now_ms(m) >= e->expires_ms) {
        cent_remove(m, e);
        e = NULL;
    }
    if (e && e->ready) {
        bs_metric_add(m->hits, 1);
        lru_unlink_c(m, e);
        lru_front_c(m, e);
        answer(m, req, BS_OK, e->key, NULL, 0, e->expires_ms);
        msg_free(req);
        return;
    }
    bs_metric_add(m->misses, 1);
    waiting_worker *ww = calloc(1, sizeof *ww);
    if (!ww) {
        answer(m, req, BS_E_NOMEM, NULL, NULL, 0, 0);
        msg_free(req);
        return;
    }
    ww->id = req->worker_id;
    if (e) {
        /* Coalesce: one keyring call answers every worker waiting for this EDEK. */
        ww->next = e->waiting;
        e->waiting = ww;
        msg_free(req);
        return;
    }
    e = cent_add(m, digest);
    if (!e) {
        free(ww);
        answer(m, req, BS_E_NOMEM, NULL, NULL, 0, 0);
        msg_free(req);
        return;
    }
    e->waiting = ww;
    e->req = req;
    start_call(m, req, e);
}

/* ev_async on the control loop: drain the workers' requests. */
static void on_requests(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    bs_dek_manager *m = bs_container_of(a, bs_dek_manager, async);
    pthread_mutex_lock(&m->mu);
    dek_msg *list = queue_take(&m->requests);
    pthread_mutex_unlock(&m->mu);
    while (list) {
        dek_msg *g = list;
        list = g->next;
        g->next = NULL;
        if (g->kind == KIND_ENC)
            start_call(m, g, NULL);
        else
            handle_decrypt(m, g);
    }
}

/* Contract in dek_manager.h. */
void bs_dek_manager_sweep(bs_dek_manager *m)
{
    uint64_t now = now_ms(m);
    for (cent *e = m->lru_tail; e;) {
        cent *prev = e->lru_prev;
        if (now >= e->expires_ms) cent_remove(m, e);
        e = prev;
    }
}

static void on_control_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    bs_dek_manager_sweep(bs_container_of(t, bs_dek_manager, sweep));
}

/* Contract in dek_manager.h. */
void bs_dek_manager_stats(bs_dek_manager *m, size_t *cached, size_t *pending)
{
    if (cached) *cached = m->nready;
    if (pending) *pending = m->nops;
}

/* Contract in dek_manager.h. */
bs_status bs_dek_manager_new(const bs_dek_manager_config *cfg, bs_dek_manager **out)
{
    BS_ENSURE(cfg && out && cfg->keyring && cfg->loop, BS_E_CONFIG);
    BS_GUARD(bs_dek_policy_check(&cfg->policy));
    unsigned pct = cfg->refresh_pct ? cfg->refresh_pct : 90;
    BS_ENSURE(pct >= 50 && pct <= 99, BS_E_CONFIG);
    BS_ENSURE(cfg->sweep_interval_s >= 0 && cfg->policy.max_age_s <= UINT64_MAX / 1000 &&
                  cfg->cache_ttl_s <= UINT64_MAX / 4000,
              BS_E_CONFIG);
    bs_dek_manager *m = calloc(1, sizeof *m);
    BS_ENSURE(m, BS_E_NOMEM);
    m->keyring = cfg->keyring;
    m->loop = cfg->loop;
    m->policy = cfg->policy;
    m->refresh_pct = pct;
    m->cache_max = cfg->cache_max_entries ? cfg->cache_max_entries : 1024;
    m->max_pending = cfg->max_pending ? cfg->max_pending : 256;
    m->ttl_ms = (cfg->cache_ttl_s ? cfg->cache_ttl_s : 3600) * 1000;
    m->backoff_ms = cfg->failure_backoff_ms ? cfg->failure_backoff_ms : 1000;
    m->clock = cfg->clock ? cfg->clock : mono_ms;
    m->clock_arg = cfg->clock_arg;
    m->nbuckets = 64;
    while (m->nbuckets < m->cache_max + m->max_pending)
        m->nbuckets <<= 1;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets || pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m->buckets);
        free(m);
        return BS_E_NOMEM;
    }
    m->hits = bs_metrics_counter("brokerside_dek_cache_hits_total",
                                 "Data key lookups answered from a cache", NULL);
    m->misses = bs_metrics_counter("brokerside_dek_cache_misses_total",
                                   "Data key lookups that needed a keyring Decrypt", NULL);
    m->rot_records =
        bs_metrics_counter("brokerside_dek_rotations_total",
                           "Encryption data keys retired, by reason", "reason=\"records\"");
    m->rot_age = bs_metrics_counter("brokerside_dek_rotations_total",
                                    "Encryption data keys retired, by reason", "reason=\"age\"");
    ev_async_init(&m->async, on_requests);
    ev_async_start(m->loop, &m->async);
    ev_unref(m->loop); /* the manager alone should not keep the loop running */
    m->sweep_iv = cfg->sweep_interval_s > 0 ? cfg->sweep_interval_s : 1.0;
    ev_timer_init(&m->sweep, on_control_sweep, m->sweep_iv, m->sweep_iv);
    ev_timer_start(m->loop, &m->sweep);
    ev_unref(m->loop);
    *out = m;
    return BS_OK;
}

/* Contract in dek_manager.h. */
bs_status bs_dek_manager_set_policy(bs_dek_manager *m, const bs_dek_policy *policy)
{
    BS_GUARD(bs_dek_policy_check(policy));
    BS_ENSURE(policy->max_age_s <= UINT64_MAX / 1000, BS_E_CONFIG);
    __atomic_store_n(&m->policy.max_records, policy->max_records, __ATOMIC_RELAXED);
    __atomic_store_n(&m->policy.max_age_s, policy->max_age_s, __ATOMIC_RELAXED);
    return BS_OK;
}

/* See dek_manager.h. */
void bs_dek_manager_free(bs_dek_manager *m)
{
    if (!m) return;
    ev_ref(m->loop);
    ev_async_stop(m->loop, &m->async);
    ev_ref(m->loop);
    ev_timer_stop(m->loop, &m->sweep);
    while (m->ops) {
        kop *o = m->ops;
        kop_unlink(o);
        o->m = NULL; /* its callback will only free it */
        o->entry = NULL;
    }
    for (size_t b = 0; b < m->nbuckets; b++)
        while (m->buckets[b])
            cent_remove(m, m->buckets[b]);
    queue_free_list(queue_take(&m->requests));
    if (m->workers)
        BS_LOG_ERRORF(MOD, "manager freed with workers still registered (a bug in the caller)");
    pthread_mutex_destroy(&m->mu);
    free(m->buckets);
    free(m);
}

/* --------------------------------------------------------------- waiters */

/* Contract in dek_manager.h. */
void bs_dek_waiter_init(bs_dek_waiter *w, bs_dek_wake_fn fn, void *arg)
{
    memset(w, 0, sizeof *w);
    w->fn = fn;
    w->arg = arg;
}

/* Contract in dek_manager.h. */
void bs_dek_waiter_cancel(bs_dek_waiter *w)
{
    waiter_list *l = w->list_;
    if (!l) return;
    if (w->prev_)
        w->prev_->next_ = w->next_;
    else
        l->head = w->next_;
    if (w->next_)
        w->next_->prev_ = w->prev_;
    else
        l->tail = w->prev_;
    w->prev_ = w->next_ = NULL;
    w->list_ = NULL;
}

/* Contract in dek_manager.h. */
bool bs_dek_waiter_parked(const bs_dek_waiter *w)
{
    return w->list_ != NULL;
}

/* Park `w` on `l` unless it is NULL or already parked (one wait at a time). */
static void waiter_park(waiter_list *l, bs_dek_waiter *w)
{
    if (!w || w->list_) return;
    w->next_ = NULL;
    w->prev_ = l->tail;
    if (l->tail)
        l->tail->next_ = w;
    else
        l->head = w;
    l->tail = w;
    w->list_ = l;
}

/* Call every waiter of `l` with `st`. The waiters move to a local list first:
 * a callback may look keys up again, which can evict (free) the entry that
 * owns `l`. Each is unparked before its callback, which may park it elsewhere
 * or cancel the others. */
static void waiters_wake(waiter_list *l, bs_status st)
{
    waiter_list local = *l;
    l->head = l->tail = NULL;
    for (bs_dek_waiter *w = local.head; w; w = w->next_)
        w->list_ = &local;
    while (local.head) {
        bs_dek_waiter *w = local.head;
        bs_dek_waiter_cancel(w);
        if (w->fn) w->fn(w, st);
    }
}

/* --------------------------------------------------------- worker tables */

/* Seeded FNV-1a over the entry key: bucket choice for the worker tables. The
 * seed keeps chains from being chosen from outside; tables are bounded anyway. */
static uint64_t wkey_hash(uint64_t seed, const uint8_t *k, size_t kl, const char *t, size_t tl,
                          const uint8_t *e, size_t el)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    const uint8_t *parts[3] = {k, (const uint8_t *)t, e};
    size_t lens[3] = {kl, tl, el};
    for (int p = 0; p < 3; p++) {
        for (size_t i = 0; i < lens[p]; i++)
            h = (h ^ parts[p][i]) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: ("ab","c") != ("a","bc") */
    }
    return h;
}

static wentry *wt_find(wtable *t, uint64_t h, const uint8_t *k, size_t kl, const char *tp,
                       size_t tl, const uint8_t *e, size_t el)
{
    if (!t->nbuckets) return NULL;
    for (wentry *x = t->buckets[h & (t->nbuckets - 1)]; x; x = x->hnext)
        if (x->hash == h && x->keyref_len == kl && x->topic_len == tl && x->edek_len == el &&
            memcmp(x->keyref, k, kl) == 0 && memcmp(x->topic, tp, tl) == 0 &&
            (el == 0 || memcmp(x->edek, e, el) == 0))
            return x;
    return NULL;
}

/* Insert `x`, doubling the buckets when the load passes 1. False on OOM. */
static bool wt_insert(wtable *t, wentry *x)
{
    if (t->n + 1 > t->nbuckets) {
        size_t nb = t->nbuckets ? t->nbuckets * 2 : 16;
        wentry **b = calloc(nb, sizeof *b);
        if (!b) return false;
        for (size_t i = 0; i < t->nbuckets; i++)
            for (wentry *y = t->buckets[i], *n; y; y = n) {
                n = y->hnext;
                y->hnext = b[y->hash & (nb - 1)];
                b[y->hash & (nb - 1)] = y;
            }
        free(t->buckets);
        t->buckets = b;
        t->nbuckets = nb;
    }
    size_t i = x->hash & (t->nbuckets - 1);
    x->hnext = t->buckets[i];
    t->buckets[i] = x;
    t->n++;
    return true;
}

static void wt_unlink(wtable *t, wentry *x)
{
    wentry **pp = &t->buckets[x->hash & (t->nbuckets - 1)];
    while (*pp && *pp != x)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = x->hnext;
        t->n--;
    }
}

/* A new entry with copies of its key; NULL on OOM. */
static wentry *wentry_new(uint64_t h, const uint8_t *k, size_t kl, const char *tp, size_t tl,
                          const uint8_t *e, size_t el)
{
    wentry *x = calloc(1, sizeof *x + kl + 1 + tl + 1 + el);
    if (!x) return NULL;
    x->hash = h;
    x->keyref = (char *)(x + 1);
    memcpy(x->keyref, k, kl);
    x->keyref_len = kl;
    x->topic = x->keyref + kl + 1;
    memcpy(x->topic, tp, tl);
    x->topic_len = tl;
    x->edek = (uint8_t *)x->topic + tl + 1;
    if (el) memcpy(x->edek, e, el);
    x->edek_len = el;
    return x;
}

/* Free an entry's DEKs (wiping them) and the entry; its waiters are unparked
 * without being called. */
static void wentry_free(wentry *x)
{
    while (x->waiters.head)
        bs_dek_waiter_cancel(x->waiters.head);
    bs_dek_free(x->cur);
    bs_dek_free(x->next);
    free(x);
}

static void lru_unlink_w(bs_dek_worker *w, wentry *x)
{
    if (x->lru_prev)
        x->lru_prev->lru_next = x->lru_next;
    else
        w->lru_head = x->lru_next;
    if (x->lru_next)
        x->lru_next->lru_prev = x->lru_prev;
    else
        w->lru_tail = x->lru_prev;
    x->lru_prev = x->lru_next = NULL;
}

static void lru_front_w(bs_dek_worker *w, wentry *x)
{
    x->lru_prev = NULL;
    x->lru_next = w->lru_head;
    if (w->lru_head) w->lru_head->lru_prev = x;
    w->lru_head = x;
    if (!w->lru_tail) w->lru_tail = x;
}

/* Send a request for entry `x` to the control thread and mark it pending. */
static bs_status request_key(bs_dek_worker *w, wentry *x, int kind)
{
    dek_msg *g = msg_new(kind, w->id, x->keyref, x->keyref_len, x->topic, x->topic_len, x->edek,
                         x->edek_len);
    BS_ENSURE(g, BS_E_NOMEM);
    bs_dek_manager *m = w->m;
    pthread_mutex_lock(&m->mu);
    queue_push(&m->requests, g);
    pthread_mutex_unlock(&m->mu);
    ev_async_send(m->loop, &m->async);
    x->pending = true;
    x->pending_since_ms = now_ms(m);
    return BS_OK;
}

/* ------------------------------------------------------- worker: encrypt */

/* The policy's limits as of now (bs_dek_manager_set_policy may change them
 * from the control thread while workers read them). */
static uint64_t policy_max_records(const bs_dek_manager *m)
{
    return __atomic_load_n(&m->policy.max_records, __ATOMIC_RELAXED);
}

static uint64_t policy_max_age_s(const bs_dek_manager *m)
{
    return __atomic_load_n(&m->policy.max_age_s, __ATOMIC_RELAXED);
}

/* The records a DEK may still encrypt under the policy (0 = must rotate). */
static uint64_t records_left(const bs_dek_manager *m, const bs_dek *d)
{
    uint64_t max = policy_max_records(m);
    uint64_t cap = max < BS_DEK_HARD_MAX_RECORDS ? max : BS_DEK_HARD_MAX_RECORDS;
    uint64_t used = bs_dek_uses(d);
    return used >= cap ? 0 : cap - used;
}

/* Why `d` (created at `created`) must be retired at `now`: "records", "age",
 * or NULL if it is still usable. A clock that went backwards counts as age. */
static const char *retire_reason(const bs_dek_manager *m, const bs_dek *d, uint64_t created,
                                 uint64_t now)
{
    if (records_left(m, d) == 0) return "records";
    if (now < created || now - created >= policy_max_age_s(m) * 1000) return "age";
    return NULL;
}

/* True once `d` used `refresh_pct` of either limit: time to fetch the next one. */
static bool near_rotation(const bs_dek_manager *m, const bs_dek *d, uint64_t created, uint64_t now)
{
    uint64_t cap = policy_max_records(m);
    uint64_t used = bs_dek_uses(d);
    if (used >= cap / 100 * m->refresh_pct + cap % 100 * m->refresh_pct / 100) return true;
    uint64_t age_ms = now >= created ? now - created : UINT64_MAX;
    return age_ms >= policy_max_age_s(m) * 10 * m->refresh_pct;
}

/* Count a retired data key and record it (DataKeyRotated: the worker's
 * key for this master key and topic reached its records or age limit).
 * Worker thread. */
static void count_retire(bs_dek_manager *m, const wentry *x, const char *reason)
{
    bs_metric_add(reason[0] == 'r' ? m->rot_records : m->rot_age, 1);
    bs_action_detail d[] = {{"keyId", x->keyref}, {"topic", x->topic}, {"reason", reason}};
    bs_sidecar_action a = {.kind = BS_ACTION_DEK_ROTATED,
                           .subject_type = "dataKey",
                           .subject = x->topic,
                           .message = "a data key reached its limit and was retired",
                           .details = d,
                           .n_details = BS_ARRAY_LEN(d)};
    bs_sidecar_action_emit(&a);
}

/* Drop the current DEK if it must be retired, promoting a usable `next`. */
static void enc_rotate(bs_dek_worker *w, wentry *x, uint64_t now)
{
    const char *why;
    if (x->cur && (why = retire_reason(w->m, x->cur, x->cur_ms, now))) {
        count_retire(w->m, x, why);
        bs_dek_free(x->cur);
        x->cur = x->next;
        x->cur_ms = x->next_ms;
        x->next = NULL;
    }
    if (x->cur && (why = retire_reason(w->m, x->cur, x->cur_ms, now))) {
        count_retire(w->m, x, why); /* a prefetched key that waited too long */
        bs_dek_free(x->cur);
        x->cur = NULL;
    }
}

/* Contract in dek_manager.h. */
bs_status bs_dek_worker_encrypt_dek(bs_dek_worker *w, const char *keyref, const char *topic,
                                    size_t topic_len, bs_dek_waiter *waiter, bs_dek **dek,
                                    uint64_t *budget)
{
    size_t kl = keyref ? strnlen(keyref, BS_ENVELOPE_MAX_KEYREF + 1) : 0;
    BS_ENSURE(keyref_ok((const uint8_t *)keyref, kl) && topic_ok(topic, topic_len), BS_E_CONFIG);
    bs_dek_manager *m = w->m;
    uint64_t now = now_ms(m);
    uint64_t h = wkey_hash(w->seed, (const uint8_t *)keyref, kl, topic, topic_len, NULL, 0);
    wentry *x = wt_find(&w->enc, h, (const uint8_t *)keyref, kl, topic, topic_len, NULL, 0);
    if (!x) {
        x = wentry_new(h, (const uint8_t *)keyref, kl, topic, topic_len, NULL, 0);
        BS_ENSURE(x, BS_E_NOMEM);
        if (!wt_insert(&w->enc, x)) {
            free(x);
            return BS_E_NOMEM;
        }
    }
    enc_rotate(w, x, now);
    bool failing = x->fail_st != BS_OK && now < x->fail_until_ms;
    if (x->cur) {
        if (!x->pending && !x->next && !failing && near_rotation(m, x->cur, x->cur_ms, now))
            (void)request_key(w, x, KIND_ENC); /* ahead of time; retried on the next call if OOM */
        *dek = x->cur;
        *budget = records_left(m, x->cur);
        return BS_OK;
    }
    if (failing) return x->fail_st;
    if (!x->pending) BS_GUARD(request_key(w, x, KIND_ENC));
    waiter_park(&x->waiters, waiter);
    return BS_E_AGAIN;
}

/* ------------------------------------------------------- worker: decrypt */

/* Add this worker's pending cache hits to brokerside_dek_cache_hits_total. */
static void flush_hits(bs_dek_worker *w)
{
    if (!w->hits_unflushed) return;
    bs_metric_add(w->m->hits, (int64_t)w->hits_unflushed);
    w->hits_unflushed = 0;
}

/* Make room for one more decrypt entry: evict the least recently used entry
 * that nobody waits for. False if every entry is busy. */
static bool dec_make_room(bs_dek_worker *w)
{
    if (w->dec.n < w->m->cache_max) return true;
    for (wentry *x = w->lru_tail; x; x = x->lru_prev) {
        if (x->pending || x->waiters.head) continue;
        lru_unlink_w(w, x);
        wt_unlink(&w->dec, x);
        wentry_free(x);
        return true;
    }
    return false;
}

/* Contract in dek_manager.h. */
bs_status bs_dek_worker_decrypt_dek(bs_dek_worker *w, const uint8_t *keyref, size_t keyref_len,
                                    const uint8_t *edek, size_t edek_len, const char *topic,
                                    size_t topic_len, bs_dek_waiter *waiter, bs_dek **dek)
{
    BS_ENSURE(keyref_ok(keyref, keyref_len), BS_E_MALFORMED);
    BS_ENSURE(edek && edek_len > 0 && edek_len <= BS_ENVELOPE_MAX_EDEK, BS_E_MALFORMED);
    BS_ENSURE(topic_ok(topic, topic_len), BS_E_CONFIG);
    bs_dek_manager *m = w->m;
    uint64_t h = wkey_hash(w->seed, keyref, keyref_len, topic, topic_len, edek, edek_len);
    wentry *x = wt_find(&w->dec, h, keyref, keyref_len, topic, topic_len, edek, edek_len);
    uint64_t now = now_ms(m);
    if (x) {
        lru_unlink_w(w, x);
        lru_front_w(w, x);
        if (x->cur && now < x->cur_ms) {
            if (++w->hits_unflushed >= HITS_FLUSH_EVERY) flush_hits(w);
            *dek = x->cur;
            return BS_OK;
        }
        if (x->cur) {
            bs_dek_free(x->cur); /* expired: ask again */
            x->cur = NULL;
        }
        if (!x->pending && x->fail_st != BS_OK && now < x->fail_until_ms) return x->fail_st;
    } else {
        BS_ENSURE(dec_make_room(w), BS_E_FULL);
        x = wentry_new(h, keyref, keyref_len, topic, topic_len, edek, edek_len);
        BS_ENSURE(x, BS_E_NOMEM);
        if (!wt_insert(&w->dec, x)) {
            free(x);
            return BS_E_NOMEM;
        }
        lru_front_w(w, x);
    }
    if (!x->pending) BS_GUARD(request_key(w, x, KIND_DEC));
    waiter_park(&x->waiters, waiter);
    return BS_E_AGAIN;
}

/* ------------------------------------------------------- worker: answers */

/* Install one answer from the control thread and wake the entry's waiters. */
static void worker_take_answer(bs_dek_worker *w, dek_msg *g)
{
    bs_dek_manager *m = w->m;
    bool enc = g->kind == KIND_ENC;
    uint64_t h = wkey_hash(w->seed, (const uint8_t *)g->keyref, g->keyref_len, g->topic,
                           g->topic_len, enc ? NULL : g->edek, enc ? 0 : g->edek_len);
    wentry *x = wt_find(enc ? &w->enc : &w->dec, h, (const uint8_t *)g->keyref, g->keyref_len,
                        g->topic, g->topic_len, enc ? NULL : g->edek, enc ? 0 : g->edek_len);
    if (!x) return; /* swept meanwhile: nobody waits */
    x->pending = false;
    uint64_t now = now_ms(m);
    bs_status st = g->st;
    bs_dek *d = NULL;
    if (st == BS_OK && g->has_key)
        st = bs_dek_new(g->key, g->keyref, g->edek, g->edek_len, now / 1000, &d);
    else if (st == BS_OK)
        st = BS_E_STATE;
    if (st != BS_OK) {
        x->fail_st = st;
        x->fail_until_ms = now + m->backoff_ms;
    } else if (enc) {
        x->fail_st = BS_OK;
        enc_rotate(w, x, now);
        if (!x->cur) {
            x->cur = d;
            x->cur_ms = now;
        } else {
            bs_dek_free(x->next);
            x->next = d;
            x->next_ms = now;
        }
    } else {
        x->fail_st = BS_OK;
        bs_dek_free(x->cur);
        x->cur = d;
        x->cur_ms = g->expires_ms;
    }
    waiters_wake(&x->waiters, st);
}

/* ev_async on a worker loop: take the inbox, install answers, wipe messages. */
static void on_answers(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    bs_dek_worker *w = bs_container_of(a, bs_dek_worker, async);
    pthread_mutex_lock(&w->m->mu);
    dek_msg *list = queue_take(&w->inbox);
    pthread_mutex_unlock(&w->m->mu);
    while (list) {
        dek_msg *g = list;
        list = g->next;
        worker_take_answer(w, g);
        msg_free(g);
    }
}

/* True for an entry whose answer never came (see PENDING_GIVE_UP_MS). */
static bool stuck(const wentry *x, uint64_t now)
{
    return x->pending && now >= x->pending_since_ms &&
           now - x->pending_since_ms >= PENDING_GIVE_UP_MS;
}

/* Fail the first stuck entry of either table; false if there is none. Waiter
 * callbacks may look keys up (and evict), so the caller rescans after each. */
static bool give_up_one(bs_dek_worker *w, uint64_t now)
{
    wtable *tables[2] = {&w->enc, &w->dec};
    for (int t = 0; t < 2; t++)
        for (size_t b = 0; b < tables[t]->nbuckets; b++)
            for (wentry *x = tables[t]->buckets[b]; x; x = x->hnext) {
                if (!stuck(x, now)) continue;
                x->pending = false;
                x->fail_st = BS_E_IO;
                x->fail_until_ms = now + w->m->backoff_ms;
                BS_LOG_ERRORF(MOD, "no answer for a key request of key %s topic %s: failing it",
                              x->keyref, x->topic);
                waiters_wake(&x->waiters, BS_E_IO);
                return true;
            }
    return false;
}

/* Worker sweep: give up on lost answers, wipe expired keys, retire aged
 * encryption DEKs, drop idle entries. */
static void worker_sweep(bs_dek_worker *w)
{
    uint64_t now = now_ms(w->m);
    flush_hits(w);
    while (give_up_one(w, now)) {
    }
    for (wentry *x = w->lru_tail; x;) {
        wentry *prev = x->lru_prev;
        if (x->cur && now >= x->cur_ms) {
            bs_dek_free(x->cur);
            x->cur = NULL;
        }
        if (!x->cur && !x->pending && !x->waiters.head && now >= x->fail_until_ms) {
            lru_unlink_w(w, x);
            wt_unlink(&w->dec, x);
            wentry_free(x);
        }
        x = prev;
    }
    for (size_t b = 0; b < w->enc.nbuckets; b++) {
        for (wentry *x = w->enc.buckets[b], *n; x; x = n) {
            n = x->hnext;
            enc_rotate(w, x, now);
            if (!x->cur && !x->next && !x->pending && !x->waiters.head && now >= x->fail_until_ms) {
                wt_unlink(&w->enc, x);
                wentry_free(x);
            }
        }
    }
}

static void on_worker_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    worker_sweep(bs_container_of(t, bs_dek_worker, sweep));
}

/* Contract in dek_manager.h. */
bs_status bs_dek_worker_new(bs_dek_manager *m, struct ev_loop *loop, bs_dek_worker **out)
{
    BS_ENSURE(m && loop && out, BS_E_CONFIG);
    bs_dek_worker *w = calloc(1, sizeof *w);
    BS_ENSURE(w, BS_E_NOMEM);
    if (RAND_bytes((unsigned char *)&w->seed, sizeof w->seed) != 1) {
        free(w);
        return BS_E_CRYPTO;
    }
    w->m = m;
    w->loop = loop;
    ev_async_init(&w->async, on_answers);
    ev_async_start(loop, &w->async);
    ev_unref(loop);
    ev_timer_init(&w->sweep, on_worker_sweep, m->sweep_iv, m->sweep_iv);
    ev_timer_start(loop, &w->sweep);
    ev_unref(loop);
    pthread_mutex_lock(&m->mu);
    w->id = ++m->next_worker_id;
    w->next = m->workers;
    m->workers = w;
    pthread_mutex_unlock(&m->mu);
    *out = w;
    return BS_OK;
}

/* Contract in dek_manager.h. */
void bs_dek_worker_free(bs_dek_worker *w)
{
    if (!w) return;
    bs_dek_manager *m = w->m;
    flush_hits(w);
    pthread_mutex_lock(&m->mu);
    for (bs_dek_worker **pp = &m->workers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    dek_msg *list = queue_take(&w->inbox);
    pthread_mutex_unlock(&m->mu);
    queue_free_list(list);
    ev_ref(w->loop);
    ev_async_stop(w->loop, &w->async);
    ev_ref(w->loop);
    ev_timer_stop(w->loop, &w->sweep);
    wtable *tables[2] = {&w->enc, &w->dec};
    for (int t = 0; t < 2; t++) {
        for (size_t b = 0; b < tables[t]->nbuckets; b++)
            for (wentry *x = tables[t]->buckets[b], *n; x; x = n) {
                n = x->hnext;
                wentry_free(x);
            }
        free(tables[t]->buckets);
    }
    free(w);
}

/* Contract in dek_manager.h. */
void bs_dek_worker_stats(const bs_dek_worker *w, size_t *enc_slots, size_t *dec_keys)
{
    if (enc_slots) *enc_slots = w->enc.n;
    if (dec_keys) *dec_keys = w->dec.n;
}
