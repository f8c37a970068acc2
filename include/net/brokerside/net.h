/*
 * net.h - the proxy server: listeners, worker threads, connection pairs,
 * readiness probes and live reload.
 *
 * Threads: the caller's loop is the control loop (normally libev's default
 * loop in main.c, which also owns signals and the admin endpoint). Every
 * function below runs on the control thread unless it says otherwise.
 * bs_server_start creates `cfg->workers` worker threads; each runs its own
 * libev loop with its own SO_REUSEPORT listening socket per listener, so the
 * kernel spreads connections. A connection lives on one worker for its whole
 * life; the data path takes no locks. The control thread talks to workers
 * through a mutex-protected message queue plus ev_async.
 *
 * Lifecycle: new -> (set_session) -> start -> [reload ...] -> shutdown ->
 * (on_done callback) -> free. The server never installs signal handlers and
 * never calls exit().
 */
#ifndef BROKERSIDE_NET_H
#define BROKERSIDE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/net_config.h"
#include "brokerside/session.h"
#include "brokerside/status.h"

struct ev_loop;

typedef struct bs_server bs_server;

/*
 * Build a server for `cfg` on the control loop `control`: builds every TLS
 * context, registers the metrics of every listener, and binds one listening
 * socket per (listener, worker) so a bind failure is reported before any
 * thread starts. `cfg` (net_config.h: what the server reads of a loaded
 * configuration, normally bs_config.net) is borrowed and must outlive the
 * server (reload hands in newer ones, which must also outlive it). On failure returns BS_E_IO /
 * BS_E_CONFIG / BS_E_CRYPTO / BS_E_NOMEM and writes one line per problem to
 * the log plus the first problem into err[errlen]; nothing stays bound.
 */
bs_status bs_server_new(struct ev_loop *control, const bs_net_config *cfg, bs_server **out,
                        char *err, size_t errlen) BS_WUR;

/* Install the session filter of listener `name` (before start). `ops` and
 * `factory_ctx` are borrowed for the server's life. BS_E_NOT_FOUND if no
 * listener has that name, BS_E_STATE after start. */
bs_status bs_server_set_session(bs_server *s, const char *name, const bs_session_ops *ops,
                                void *factory_ctx) BS_WUR;

/* Per-worker set-up of other modules (e.g. a DEK worker bound to the worker's
 * loop). init runs on each worker thread before its loop runs (the state it
 * stores in *state is that worker's); fini runs on the same thread after its
 * last connection closed. A failing init is logged and the worker serves
 * anyway: the module must then refuse what it cannot serve (fail closed). */
typedef struct bs_worker_hooks {
    bs_status (*init)(void *arg, struct ev_loop *loop, void **state);
    void (*fini)(void *arg, void *state);
    void *arg;
} bs_worker_hooks;

/* Install worker hooks (before start; copied, `arg` borrowed for the
 * server's life). BS_E_STATE after start. */
bs_status bs_server_set_worker_hooks(bs_server *s, const bs_worker_hooks *hooks) BS_WUR;

/* Start the worker threads and the readiness probes. `on_done` is called on
 * the control thread once every worker has finished after bs_server_shutdown
 * (typically: ev_break). BS_E_IO if a thread cannot be created (the threads
 * already started are stopped again). */
bs_status bs_server_start(bs_server *s, void (*on_done)(void *arg), void *arg) BS_WUR;

/*
 * Stop the server. The first call with graceful=true closes every listening
 * socket at once, then lets each connection finish what is in flight: a
 * connection closes when it is quiescent (no buffered bytes either way and
 * its session, if any, quiescent), and whatever is left is closed after
 * `limits.shutdown_grace_s`. graceful=false (or a second call) closes every
 * connection now. Either way on_done fires when all workers have exited.
 */
void bs_server_shutdown(bs_server *s, bool graceful);

/*
 * Apply a newly loaded config (SIGHUP). TLS contexts of every listener are
 * rebuilt from disk first; if any fails, nothing changes and BS_E_CONFIG /
 * BS_E_CRYPTO is returned (each problem logged). Otherwise the contexts are
 * swapped (new connections use them, open ones keep theirs), limits,
 * log_level, kafka settings and the probe interval are applied, and every
 * setting that needs a restart (workers, listener set, bind, upstream,
 * protocol, tls/upstream_tls on/off, admin) is ignored: the caller (the
 * daemon) reports those with bs_config_needs_restart, which only the
 * composition root may call. `cfg` is borrowed and must outlive the
 * server (the caller keeps every config it hands in until after free).
 */
bs_status bs_server_reload(bs_server *s, const bs_net_config *cfg) BS_WUR;

/* The config currently applied (the one from new or the last successful reload). */
const bs_net_config *bs_server_config(const bs_server *s);

/* Readiness: every listener bound and every upstream's last probe OK. If
 * not ready, writes the reason (naming the failing listener) into why[whylen]. */
bool bs_server_ready(const bs_server *s, char *why, size_t whylen);

/* Append `,"listeners":[...],"workers":N,"uptime_s":N,"reloads":N,...` for
 * /status (see admin.h, status_json hook). */
void bs_server_status_json(const bs_server *s, bs_wbuf *out);

/* Number of client connections open right now, all listeners (any thread). */
unsigned bs_server_connections_open(const bs_server *s);

/* Stop and join the workers if still running (closing every connection),
 * stop the probes, close the sockets and free. NULL is a no-op. */
void bs_server_free(bs_server *s);

/* ---- connection observer (audit of connection events) ------------------ */

typedef enum bs_conn_event_kind {
    BS_CONN_EV_ACCEPTED = 0,      /* client side ready: TCP accepted (plaintext listener) or
                                     TLS handshake completed (TLS listener) */
    BS_CONN_EV_TLS_FAILED = 1,    /* client TLS handshake failed (reason set) */
    BS_CONN_EV_CERT_REJECTED = 2, /* handshake failed on the client's certificate (reason set) */
    BS_CONN_EV_CLOSED = 3,        /* a connection that had ACCEPTED ended */
    /* proxy_protocol listener: the connection was refused for its PROXY
     * header before it became a client connection (no ACCEPTED before, no
     * CLOSED after): an unlisted source (at accept, before a byte is read),
     * a missing, malformed or oversized header, silence past the handshake
     * deadline, or a close inside the header. reason is the
     * brokerside_proxy_protocol_rejected_total label (BS_PROXY_REASON_*),
     * detail one line of the sidecar's own words; the peer is the socket's
     * (the load balancer, or the unlisted host), never a header's. */
    BS_CONN_EV_PROXY_REJECTED = 4,
} bs_conn_event_kind;

/* What the observer is told. Every pointer is borrowed for the duration of
 * the callback only. */
typedef struct bs_conn_event {
    bs_conn_event_kind kind;
    uint64_t conn_id;      /* process-unique, increasing from 1 */
    const char *listener;  /* listener name */
    int32_t broker_id;     /* the listener's broker_id, -1 if unknown */
    const char *peer_ip;   /* client address without port ("?" if unknown) */
    uint16_t peer_port;    /* 0 if unknown */
    const char *principal; /* mTLS subject once known, else NULL */
    const char *reason;    /* TLS_FAILED / CERT_REJECTED: a bs_tls_failure_reason() text;
                              PROXY_REJECTED: a BS_PROXY_REASON_* label */
    const char *detail;    /* PROXY_REJECTED: what was wrong, one line (< 200 bytes) that
                              quotes at most a few printable bytes of the header; else NULL */
    int64_t duration_ms;   /* CLOSED: since accept */
    uint64_t bytes_in;     /* CLOSED: bytes read from the client */
    uint64_t bytes_out;    /* CLOSED: bytes written to the client */
} bs_conn_event;

/* Called on the WORKER thread that owns the connection, synchronously at the
 * points above; it must not block (hand work to another thread) and must not
 * call back into the server. */
typedef void (*bs_conn_observer_fn)(void *ctx, const bs_conn_event *ev);

/* Install the connection observer (before start; one per server; NULL fn
 * removes it). `ctx` is borrowed for the server's life. BS_E_STATE after start. */
bs_status bs_server_set_observer(bs_server *s, bs_conn_observer_fn fn, void *ctx) BS_WUR;

#endif
