/*
 * admin.h - the HTTP admin endpoint (loopback by default).
 *
 * Serves, on the control thread's libev loop:
 *   GET /healthz  200 "ok" while the process runs its loops
 *   GET /readyz   200 when hooks->ready() says so, else 503 with the reason
 *   GET /metrics  Prometheus text format 0.0.4 (bs_metrics_render_prometheus)
 *   GET /status   JSON: version, uptime, hooks->status_json() fields, metrics
 * Anything else: 404; methods other than GET/HEAD: 405; malformed or
 * oversized requests: 400 and close. Connections are bounded in number and
 * time so a slow or hostile client cannot hold the control thread.
 */
#ifndef BROKERSIDE_ADMIN_H
#define BROKERSIDE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/admin_config.h"
#include "brokerside/status.h"

struct ev_loop;

/* Limits. A request head (request line + headers + blank line) longer than
 * BS_ADMIN_MAX_HEAD bytes gets 400; connections over BS_ADMIN_MAX_CONNS are
 * accepted and closed at once; a connection gets BS_ADMIN_REQUEST_TIMEOUT_S
 * seconds in total to send its request and read the response (408 if the
 * request is not complete by then). Every response carries
 * `Connection: close`: one request per connection. */
#define BS_ADMIN_MAX_HEAD 8192
#define BS_ADMIN_MAX_CONNS 64
#define BS_ADMIN_REQUEST_TIMEOUT_S 5.0

typedef struct bs_admin_hooks {
    void *ctx;
    /* Called on the control thread. Return true if ready; otherwise write a
     * short human-readable reason into why[whylen]. */
    bool (*ready)(void *ctx, char *why, size_t whylen);
    /* Append JSON object members (no surrounding braces, each preceded by a
     * comma), e.g. `,"listeners":[...]`. May be NULL. */
    void (*status_json)(void *ctx, bs_wbuf *out);
} bs_admin_hooks;

typedef struct bs_admin bs_admin;

/* Call on the loop's thread, or before the loop runs. Bind cfg->bind (IPv4 or IPv6, SO_REUSEADDR;
 * port 0 picks a free port) and start serving on `loop`. BS_E_IO with a reason in err[errlen] if
 * the address cannot be bound, BS_E_CONFIG if cfg is not enabled, BS_E_NOMEM. hooks may be NULL
 * (always ready, no extra status); they are copied, ctx must outlive the endpoint. On success *out
 * is freed by bs_admin_stop. */
bs_status bs_admin_start(struct ev_loop *loop, const bs_admin_config *cfg,
                         const bs_admin_hooks *hooks, bs_admin **out, char *err,
                         size_t errlen) BS_WUR;
/* The port actually bound (useful when the config asked for port 0). */
unsigned bs_admin_port(const bs_admin *admin);
/* TEST-ONLY: override the per-connection timeout (seconds, > 0) for
 * connections accepted from now on. Call on the loop's thread or while the
 * loop is not running. Production code keeps BS_ADMIN_REQUEST_TIMEOUT_S. */
void bs_admin_set_request_timeout(bs_admin *admin, double seconds);
/* A parsed request head; pointers point into the caller's buffer. */
typedef struct bs_admin_request {
    const uint8_t *method; /* a token, e.g. "GET"; method_len bytes */
    size_t method_len;
    const uint8_t *path; /* origin-form target up to (excluding) any '?' */
    size_t path_len;
    int minor_version; /* HTTP/1.<minor_version>: 0 or 1 */
    size_t head_len;   /* bytes up to and including the blank line */
} bs_admin_request;

/* The endpoint's request-head parser, exposed for tests and fuzzing. Parses
 * buf[len] (untrusted; never read past len). BS_OK with *out filled when a
 * complete, valid head is present; BS_E_SHORT if a valid head may still
 * follow (read more); BS_E_MALFORMED as soon as it cannot. Rules: see
 * docs/admin.md ("What counts as malformed"). */
bs_status bs_admin_parse_head(const void *buf, size_t len, bs_admin_request *out) BS_WUR;

/* Stop listening, close client connections and free. NULL is a no-op.
 * Call on the loop's thread (or with the loop stopped), before
 * bs_metrics_shutdown(): the endpoint keeps its own metrics
 * (brokerside_admin_*) registered while it runs. */
void bs_admin_stop(bs_admin *admin);

#endif
