/*
 * kafka_session.h - the Kafka-aware connection filter (a bs_session_ops
 * table for `protocol: kafka` listeners).
 *
 * Per connection it cuts both byte streams into frames, tracks in-flight
 * requests (correlation table), rewrites every broker endpoint in responses
 * to the advertised sidecar address (kafka.advertise) and caps ApiVersions,
 * and counts per-API and per-topic metrics. Frames it does not need whole
 * stream through without being buffered; frames it needs whole (a response
 * to rewrite, or a frame a hook asks for) are assembled in session-owned
 * memory bounded by kafka.max_frame_bytes. docs/kafka-protocol.md ("The
 * proxy session") has the details and the metric list.
 *
 * Hooks: later modules (encryption, issue 4) transform whole frames through
 * a small hook table handed in with the factory. A hook sees the complete
 * frame (4-byte size included) and either passes it or replaces it.
 */
#ifndef BROKERSIDE_KAFKA_SESSION_H
#define BROKERSIDE_KAFKA_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_framer.h"
#include "brokerside/kafka_summary.h"
#include "brokerside/proxy_config.h"
#include "brokerside/session.h"
#include "brokerside/status.h"

/* What a hook decided about a frame. */
typedef enum bs_kafka_hook_verdict {
    BS_KAFKA_HOOK_PASS = 0,    /* forward the frame as it is */
    BS_KAFKA_HOOK_REPLACE = 1, /* forward `replacement` (a complete frame, size prefix included) */
    /* Not now: the hook waits for something (a data key) and has arranged for
     * the connection's wake callback (bs_kafka_hook_conn) to be called. The
     * frame stays with the session, nothing behind it in that direction moves,
     * and on wake-up the whole hook chain runs again over the original frame
     * (hooks before this one must decide the same way twice). */
    BS_KAFKA_HOOK_HOLD = 2,
    /* Requests only: do not forward; answer the client with `replacement` (a
     * complete response frame) once every earlier response has been delivered,
     * so the connection's response order is kept. An empty `replacement`
     * drops a request that expects no response (Produce acks=0). */
    BS_KAFKA_HOOK_ANSWER = 3,
} bs_kafka_hook_verdict;

/* What a hook's per-connection state learns at open (see conn_open below).
 * `wake(wake_arg)` asks the connection to run again (on its worker thread,
 * from the worker's loop, e.g. in a DEK waiter callback); valid until
 * conn_close. The strings are valid only during conn_open. */
typedef struct bs_kafka_hook_conn {
    void (*wake)(void *wake_arg);
    void *wake_arg;
    const char *listener;
    const char *peer;
    /* The connection's identity (identity.h), kept current by the session
     * (SASL exchanges, re-authentication); valid until conn_close. */
    const struct bs_conn_identity *identity;
    uint64_t conn_id; /* as in the connection's audit events (0 = unknown) */
} bs_kafka_hook_conn;

/* One frame transformer. Every callback may be NULL. `wants_*` is asked
 * once per frame, as soon as its header is known, and decides whether the
 * frame is assembled whole (bounded by kafka.max_frame_bytes) before being
 * forwarded. on_request/on_response then get the whole frame
 * (`frame`/`len`, size prefix included; the bytes are the session's and
 * valid only during the call) and an empty `replacement` buffer (owned by
 * the session). A non-BS_OK return closes the connection; the hook logs why.
 * Hooks run on the connection's worker thread and must not block. */
typedef struct bs_kafka_hook {
    const char *name; /* for log lines */
    bool (*wants_request)(void *arg, int16_t api_key, int16_t api_version);
    bs_status (*on_request)(void *arg, const bs_kafka_request_header *h, const uint8_t *frame,
                            size_t len, bs_wbuf *replacement, bs_kafka_hook_verdict *verdict);
    bool (*wants_response)(void *arg, int16_t api_key, int16_t api_version);
    bs_status (*on_response)(void *arg, const bs_kafka_inflight *req, const uint8_t *frame,
                             size_t len, bs_wbuf *replacement, bs_kafka_hook_verdict *verdict);
    void *arg;
    /* Optional per-connection state. When conn_open is set, it is called once
     * per connection (with `arg`) and the state it returns in *conn replaces
     * `arg` in every other callback of this hook on that connection;
     * conn_close(conn) releases it when the connection ends (it must cancel
     * any pending wake-up). A failing conn_open refuses the connection. */
    bs_status (*conn_open)(void *arg, const bs_kafka_hook_conn *hc, void **conn);
    void (*conn_close)(void *conn);
} bs_kafka_hook;

/* A read-only observer of every request/response pair (the per-request
 * audit recorder). Unlike hooks it has per-connection state and never
 * changes bytes. Every callback may be NULL except on_request/on_response.
 *  - open: per connection, after the session's own state; *conn is passed
 *    to the others. A failure refuses the connection.
 *  - wants_request / wants_response: asked once per frame; true makes the
 *    session assemble that frame whole (bounded by kafka.max_frame_bytes)
 *    so the observer can decode it. Say true only for small frames
 *    (management APIs); data frames are shown whole when the session copies
 *    them for its own metrics anyway (Produce requests, Fetch responses up to
 *    BS_KAFKA_INSPECT_MAX) or when they happen to be in the buffer already.
 *  - on_request: once per request, before its response can be seen, with
 *    the frame as the client sent it (size prefix included). `len` is the
 *    number of bytes at `frame`; len < frame_len means only a prefix was
 *    available (the body cannot be decoded). `h` is always set (api key,
 *    version and correlation id at least); header_ok is false when the rest
 *    of the header could not be parsed (unknown API/version).
 *    expects_response is false for Produce acks=0.
 *  - on_response: once per response, same `len`/`frame_len` rule;
 *    latency_ns is the request's time in the broker: from its last byte
 *    written to the upstream socket to the arrival of the response's first
 *    byte (-1 if unknown; docs/observability.md, "Request timing").
 *  - on_topic (optional): the per-topic figures of a Produce request
 *    (is_request) or a Fetch response, as the session summarises them for its
 *    own metrics, one call per topic, just before on_request/on_response of
 *    that frame; so the observer need not scan those big frames again. Not
 *    called when the session could not summarise the frame (the observer
 *    then sees no topics and may scan what on_request/on_response shows).
 *    The summary's pointers are valid only during the call.
 *  - close: per connection, also with requests still unanswered.
 * All run on the connection's worker thread and must not block. */
typedef struct bs_kafka_observer {
    bs_status (*open)(void *arg, const bs_session_info *info, void **conn);
    bool (*wants_request)(void *arg, int16_t api_key, int16_t api_version);
    bool (*wants_response)(void *arg, int16_t api_key, int16_t api_version);
    void (*on_request)(void *conn, const bs_kafka_request_header *h, bool header_ok,
                       bool expects_response, const uint8_t *frame, size_t len, size_t frame_len);
    void (*on_response)(void *conn, const bs_kafka_inflight *req, int64_t latency_ns,
                        const uint8_t *frame, size_t len, size_t frame_len);
    void (*on_topic)(void *conn, bool is_request, const bs_kafka_topic_summary *t);
    void (*close)(void *conn);
    void *arg;
} bs_kafka_observer;

/* The factory context of the ops table: borrowed for the server's life.
 * Hooks run in array order, each on the output of the previous one; the
 * built-in endpoint rewriting runs after them on responses. `observer` may
 * be NULL. */
typedef struct bs_kafka_session_factory {
    const bs_kafka_hook *hooks;
    size_t n_hooks;
    const bs_kafka_observer *observer;
} bs_kafka_session_factory;

/* The ops table to install with bs_server_set_session on every `kafka`
 * listener; factory_ctx is a bs_kafka_session_factory* or NULL (no hooks).
 * Static storage: never freed. */
const bs_session_ops *bs_kafka_session_ops(void);

/* Bytes of request frames held (assembled in session memory) right now by
 * every connection of the process; bounded by kafka.held_bytes_budget. */
uint64_t bs_kafka_session_held_bytes(void);

/* Distinct topic label values used by the per-topic metrics
 * (brokerside_topic_*); beyond it new topics are counted as topic="_other". */
#define BS_KAFKA_TOPIC_SERIES_MAX 1000

/* Largest Produce request / Fetch response inspected for per-topic metrics
 * and error codes when it does not fit the connection buffer (copied aside
 * while it streams through). Larger ones pass uninspected and are counted in
 * brokerside_kafka_uninspected_frames_total. */
#define BS_KAFKA_INSPECT_MAX (8u << 20)

/* The name of topic id `id` (16 bytes) as learned from Metadata responses
 * passing through any session of this process, into out[outlen]
 * (NUL-terminated). False if unknown (or outlen too small). Thread-safe. */
bool bs_kafka_topic_id_lookup(const uint8_t id[16], char *out, size_t outlen);

/* May principal `name` have its own metric series (brokerside_principal_*,
 * brokerside_authz_denied_total)? True if it already has one or there is
 * room under identity.metrics_max_principals; false beyond (the caller then
 * uses "_other"). Thread-safe. */
bool bs_kafka_principal_admit(const char *name);

/* Forget the process-wide topic-series set and topic-id map (tests, after
 * bs_metrics_shutdown). Only when no session is running. */
void bs_kafka_session_reset_globals(void);

#endif
