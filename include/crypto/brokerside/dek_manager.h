/*
 * dek_manager.h - data keys for the record path: per-worker encryption DEKs
 * with rotation, and a bounded cache of decrypted DEKs, fed by a keyring on
 * the control thread.
 *
 * Threads. The manager lives on the control thread (its loop runs the keyring,
 * e.g. the KMS HTTP client). Each worker thread owns one bs_dek_worker, bound
 * to the worker's libev loop. Workers never block: a lookup that hits the
 * worker's own tables returns at once without any lock; a miss queues a
 * request to the control thread (mutex-protected queue + ev_async), returns
 * BS_E_AGAIN and parks the caller's bs_dek_waiter; the answer comes back the
 * same way (ev_async to the worker's loop), where the waiter's callback runs.
 *
 * Encryption. One DEK per (key reference, topic, worker): the topic is in the
 * KMS EncryptionContext bound to the EDEK, so one EDEK can only serve one
 * topic. A DEK encrypts at most policy.max_records records and is used for at
 * most policy.max_age_s seconds. When either reaches `refresh_fraction` (90%)
 * the next DEK is requested ahead, so traffic rarely waits. Each worker builds
 * its own bs_dek objects from key bytes handed over once (then wiped): no DEK
 * object is ever shared between threads.
 *
 * Decryption. Decrypted keys are cached on the control thread, keyed by
 * SHA-256(key reference, topic, EDEK), bounded (LRU) and expiring after
 * cache_ttl_s; concurrent misses for the same EDEK, from any workers, make one
 * keyring call. Each worker keeps its own bounded bs_dek objects for the keys
 * it used, with the same expiry. A key generated for encryption is put in the
 * cache too (reading back what was just written costs no KMS call).
 *
 * Fail closed. A keyring failure is reported to every waiter with the
 * keyring's status and remembered for failure_backoff_ms, during which the
 * same lookup fails at once with that status (no KMS call storm); the caller
 * turns it into a per-partition error. Nothing ever falls back to plaintext.
 *
 * Plaintext keys are wiped (OPENSSL_cleanse) on rotation, eviction, expiry
 * (periodic sweep), when messages are consumed, and on free.
 *
 * Metrics: brokerside_kms_calls_total{op="generate_data_key"|"decrypt",
 * result="ok"|<bs_status_name>}, brokerside_dek_cache_hits_total (lookups
 * answered without a keyring call: worker or control cache; a worker publishes
 * its hits every 256, at each sweep and when freed),
 * brokerside_dek_cache_misses_total (lookups that needed one; coalesced ones
 * included), brokerside_dek_rotations_total{reason="records"|"age"}.
 */
#ifndef BROKERSIDE_DEK_MANAGER_H
#define BROKERSIDE_DEK_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/envelope.h"
#include "brokerside/keyring.h"
#include "brokerside/status.h"

struct ev_loop;

typedef struct bs_dek_manager bs_dek_manager;
typedef struct bs_dek_worker bs_dek_worker;
typedef struct bs_dek_waiter bs_dek_waiter;

/* Monotonic milliseconds; must be callable from any thread. */
typedef uint64_t (*bs_dek_clock_fn)(void *arg);

typedef struct bs_dek_manager_config {
    bs_keyring *keyring;      /* borrowed; used only on the control thread; outlives the manager */
    struct ev_loop *loop;     /* the control thread's loop */
    bs_dek_policy policy;     /* validated by bs_dek_policy_check */
    unsigned refresh_pct;     /* request the next DEK at this % of either limit; 0 = 90; 50..99 */
    size_t cache_max_entries; /* decrypted keys kept (control and per worker); 0 = 1024 */
    uint64_t cache_ttl_s;     /* lifetime of a decrypted key in the caches; 0 = 3600 */
    uint64_t failure_backoff_ms; /* a failure answers the same lookup for this long; 0 = 1000 */
    size_t max_pending;          /* keyring calls in flight at most; 0 = 256 (then BS_E_FULL) */
    double sweep_interval_s;     /* expiry sweep period (real time); 0 = 1.0 */
    bs_dek_clock_fn clock;       /* NULL = CLOCK_MONOTONIC; tests inject a fake clock */
    void *clock_arg;
} bs_dek_manager_config;

/* Create the manager on the control thread (call it there, or before that
 * loop runs). Starts an ev_async and a sweep timer on cfg->loop (both
 * unreferenced: they do not keep ev_run alive). BS_E_CONFIG for a bad policy
 * or settings, BS_E_NOMEM. Free with bs_dek_manager_free. */
bs_status bs_dek_manager_new(const bs_dek_manager_config *cfg, bs_dek_manager **out) BS_WUR;

/* On the control thread, after every bs_dek_worker was freed: stop watchers,
 * wipe and free every key. Keyring operations still pending are detached
 * (their callbacks, when they come, only wipe what they get). NULL is a no-op. */
void bs_dek_manager_free(bs_dek_manager *m);

/* Reload: new rotation limits (validated like the config's). DEKs in use are
 * judged by them from their next use on: one past a new, lower limit is
 * rotated then. Control thread; workers read the limits atomically.
 * BS_E_CONFIG for a bad policy (nothing changes). */
bs_status bs_dek_manager_set_policy(bs_dek_manager *m, const bs_dek_policy *policy) BS_WUR;

/* Drop expired decrypted keys from the control cache (wiping them). Called by
 * the sweep timer; exposed for tests with a fake clock. Control thread only. */
void bs_dek_manager_sweep(bs_dek_manager *m);

/* Snapshot of the control cache: ready keys and keyring calls in flight.
 * Control thread only. */
void bs_dek_manager_stats(bs_dek_manager *m, size_t *cached, size_t *pending);

/* ---- worker side: every call below on the worker's own thread ---- */

/* Called on the worker's loop when a key this waiter waited for arrived (st ==
 * BS_OK: look it up again) or could not be had (st = the failure). It may look
 * keys up, park and cancel waiters, but must not free the worker. */
typedef void (*bs_dek_wake_fn)(bs_dek_waiter *w, bs_status st);

/* Embedded by the caller (e.g. in a parked request). Initialise once with
 * bs_dek_waiter_init; it may wait for one key at a time. */
struct bs_dek_waiter {
    bs_dek_wake_fn fn;
    void *arg;
    bs_dek_waiter *prev_, *next_;
    void *list_; /* the list it is parked on, NULL if none */
};

/* Set the callback and argument; the waiter starts unparked. */
void bs_dek_waiter_init(bs_dek_waiter *w, bs_dek_wake_fn fn, void *arg);
/* Unpark (e.g. the connection closed); no-op if not parked. */
void bs_dek_waiter_cancel(bs_dek_waiter *w);
/* True while parked. */
bool bs_dek_waiter_parked(const bs_dek_waiter *w);

/* Register a worker on its own loop `loop` (call on that thread, or before
 * its loop runs). Starts an ev_async and a sweep timer there (unreferenced).
 * BS_E_NOMEM. Free with bs_dek_worker_free. The manager must outlive it. */
bs_status bs_dek_worker_new(bs_dek_manager *m, struct ev_loop *loop, bs_dek_worker **out) BS_WUR;

/* On the worker's thread: unregister (answers still in flight for it are
 * dropped and wiped), unpark every waiter without calling it, wipe and free
 * every DEK, stop the watchers. NULL is a no-op. */
void bs_dek_worker_free(bs_dek_worker *w);

/* The DEK to encrypt records of `topic` (topic_len 1..65535 bytes) under
 * `keyref`. BS_OK: *dek may encrypt up to *budget records (>= 1) before this
 * must be called again; it belongs to the worker and stays valid until control
 * returns to the worker's loop (use it, do not keep it). BS_E_AGAIN: no usable
 * DEK yet; a request is on its way and `waiter` (if non-NULL and not already
 * parked elsewhere) is parked until it is answered. Other statuses: the
 * keyring failure remembered for this slot (fail closed), BS_E_CONFIG for a
 * bad keyref/topic, BS_E_NOMEM. */
bs_status bs_dek_worker_encrypt_dek(bs_dek_worker *w, const char *keyref, const char *topic,
                                    size_t topic_len, bs_dek_waiter *waiter, bs_dek **dek,
                                    uint64_t *budget) BS_WUR;

/* The DEK to decrypt an envelope of `topic` with key reference `keyref`
 * (keyref_len bytes, as parsed from the envelope) and EDEK `edek`. Same
 * BS_OK / BS_E_AGAIN / failure contract as bs_dek_worker_encrypt_dek (no
 * budget); BS_E_MALFORMED for an empty or oversized keyref or EDEK. */
bs_status bs_dek_worker_decrypt_dek(bs_dek_worker *w, const uint8_t *keyref, size_t keyref_len,
                                    const uint8_t *edek, size_t edek_len, const char *topic,
                                    size_t topic_len, bs_dek_waiter *waiter, bs_dek **dek) BS_WUR;

/* Counts of this worker's own tables (encryption slots, decryption keys). */
void bs_dek_worker_stats(const bs_dek_worker *w, size_t *enc_slots, size_t *dec_keys);

#endif
