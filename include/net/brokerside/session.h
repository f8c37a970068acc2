/*
 * session.h - the per-connection filter seam between net/ and proxy/.
 *
 * net/ owns sockets, TLS, buffers, backpressure and timeouts; a session owns
 * what the bytes mean. A listener may have a bs_session_ops table (installed
 * with bs_server_set_session before the server starts); each accepted
 * connection then gets its own session state and every byte read from either
 * side passes through it before it is written to the other side. Without a
 * session (protocol `tcp`, or `kafka` until proxy/ installs one) bytes go
 * straight from one socket into the one bounded buffer of their direction.
 *
 * Buffers: `in` holds bytes read from the side named by the callback and not
 * yet consumed; `fwd` is the bounded output buffer towards the other side;
 * `back` is the output buffer towards the side the bytes came from (for
 * injected answers, e.g. an error response to a refused request). The
 * callback consumes what it can from `in` (bs_buf_consume), appends to `fwd`
 * and/or `back` (bs_buf_append; BS_E_FULL means "no room now": leave the
 * bytes in `in` and return BS_OK, the connection calls again when the output
 * drained), and may leave an incomplete frame in `in` for later. net/ stops
 * reading a side while its `in` buffer is full, so a session that holds data
 * back applies backpressure automatically. All callbacks run on the
 * connection's worker thread; they must not block.
 *
 * When is the filter called? Whenever its `in` holds bytes, and also with
 * an empty `in` whenever is_quiescent() says false, so a session holding
 * output of its own (a rewritten frame larger than `fwd`) can emit it as
 * `fwd` drains. Each call may be a no-op.
 *
 * `in`, `fwd` and `back` each hold at most limits.buffer_bytes (64 KiB by
 * default). A session that needs a whole frame larger than that before it
 * can act (a Metadata response to rewrite) must consume the bytes into its
 * own storage (bounded by kafka.max_frame_bytes) rather than wait for `in`
 * to hold the frame: a full `in` that the session does not consume stalls
 * that direction for good. Pass-through bytes are best moved in large
 * chunks (one bs_buf_append per call), which is one memcpy per byte; or
 * without a copy: when `fwd` is empty and in->cap == fwd->cap, the session
 * may swap the two structs' contents (data, rd, wr): each buffer's storage
 * is its own allocation of `cap` bytes, owned by whichever bs_buf points at
 * it (the empty stand-in `in` of a busy session has cap 0: never swap it).
 *
 * Any status other than BS_OK closes the connection (both sides, no more
 * bytes delivered); the session should have logged why.
 */
#ifndef BROKERSIDE_SESSION_H
#define BROKERSIDE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/net_config.h"
#include "brokerside/status.h"

/* What a session learns about its connection when it opens. The strings
 * are valid only during open(): copy what you keep. */
typedef struct bs_session_info {
    const bs_listener_config *listener;
    /* Kafka settings (advertise map, max frame) current when the connection
     * opened. Unlike the strings below, this pointer stays valid for the
     * server's life (configs applied by reload are kept until exit), so a
     * session may keep it; a later reload applies to later connections. */
    const struct bs_kafka_config *kafka; /* proxy_config.h; opaque to net/ */
    const char *peer;      /* "ip:port" of the client */
    const char *principal; /* TLS client principal, NULL if none (no TLS or no cert) */
    /* wake(wake_arg) makes the connection call the session again soon (from
     * its loop, on its worker thread; never re-entrantly). A session that
     * parks work waiting for an event of that loop (e.g. a data key) calls it
     * when the event came. NULL when the embedder offers none. Valid until
     * close(). */
    void (*wake)(void *wake_arg);
    void *wake_arg;
    uint64_t conn_id;      /* the connection's id, as in its connection audit events (0 = unknown) */
    /* Who is on the connection (certificate and SASL principal), owned by
     * the Kafka session and valid until its close; net/ leaves it NULL, the
     * Kafka session sets it in the copy it hands to its observer. */
    const struct bs_conn_identity *identity;
} bs_session_info;

typedef struct bs_session_ops {
    /* Create the state of one connection, called once the client side is
     * ready (after the TLS handshake). *state is handed to the other
     * callbacks. A failure closes the connection. */
    bs_status (*open)(void *factory_ctx, const bs_session_info *info, void **state) BS_WUR;
    /* Bytes from the client: consume `in`, forward to the upstream via `fwd`,
     * answer the client directly via `back`. */
    bs_status (*on_client_bytes)(void *state, bs_buf *in, bs_buf *fwd, bs_buf *back) BS_WUR;
    /* Bytes from the upstream: consume `in`, forward to the client via `fwd`,
     * send to the upstream via `back`. */
    bs_status (*on_upstream_bytes)(void *state, bs_buf *in, bs_buf *fwd, bs_buf *back) BS_WUR;
    /* True when nothing is pending inside the session (no request awaiting
     * its response, no parked work): graceful shutdown may close now. */
    bool (*is_quiescent)(const void *state);
    /* Release the state; called exactly once, also after a failed open. NULL state is allowed. */
    void (*close)(void *state);
    /* Optional. Called once a side has ended (EOF) and the filter has taken
     * what it could: true when the session holds or awaits bytes of a
     * message from that side that can now never complete (from_client: the
     * client side; `in` is that side's input, possibly empty). net/ then
     * closes both sides at once, instead of keeping the other side and the
     * connection slot until the idle timeout. NULL: never. */
    bool (*input_truncated)(const void *state, bool from_client, const bs_buf *in);
    /* Optional. Seconds until the client's message now in progress must have
     * arrived whole (0: overdue, -1: none in progress). net/ arms the
     * connection's timer for it and closes the connection once overdue
     * (brokerside_connections_overdue_total): a slow client cannot keep a
     * half-sent message, and the memory holding it, until the idle timeout. */
    double (*input_deadline)(const void *state);
    /* Optional. Called after a write to the upstream socket took the next
     * `n` bytes (n > 0) of the upstream-bound stream: everything the filter
     * appended to the upstream output buffer, in order (TLS: accepted by
     * SSL_write). A session times requests from here (docs/observability.md,
     * "Request timing"); it must not block. */
    void (*on_upstream_written)(void *state, size_t n);
} bs_session_ops;

#endif
