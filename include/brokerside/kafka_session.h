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
#include "brokerside/session.h"
#include "brokerside/status.h"

/* What a hook decided about a frame. */
typedef enum bs_kafka_hook_verdict {
    BS_KAFKA_HOOK_PASS = 0,    /* forward the frame as it is */
    BS_KAFKA_HOOK_REPLACE = 1, /* forward `replacement` (a complete frame, size prefix included) */
} bs_kafka_hook_verdict;

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
} bs_kafka_hook;

/* The factory context of the ops table: borrowed for the server's life.
 * Hooks run in array order, each on the output of the previous one; the
 * built-in endpoint rewriting runs after them on responses. */
typedef struct bs_kafka_session_factory {
    const bs_kafka_hook *hooks;
    size_t n_hooks;
} bs_kafka_session_factory;

/* The ops table to install with bs_server_set_session on every `kafka`
 * listener; factory_ctx is a bs_kafka_session_factory* or NULL (no hooks).
 * Static storage: never freed. */
const bs_session_ops *bs_kafka_session_ops(void);

/* Distinct topic label values used by the per-topic metrics
 * (brokerside_topic_*); beyond it new topics are counted as topic="_other". */
#define BS_KAFKA_TOPIC_SERIES_MAX 1000

/* Largest Produce request / Fetch response inspected for per-topic metrics
 * and error codes when it does not fit the connection buffer (copied aside
 * while it streams through). Larger ones pass uninspected and are counted in
 * brokerside_kafka_uninspected_frames_total. */
#define BS_KAFKA_INSPECT_MAX (8u << 20)

/* Forget the process-wide topic-series set and topic-id map (tests, after
 * bs_metrics_shutdown). Only when no session is running. */
void bs_kafka_session_reset_globals(void);

#endif
