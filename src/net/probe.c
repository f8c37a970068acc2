/*
 * probe.c - readiness probes of the upstreams, on the control thread.
 *
 * Every admin.probe_interval_s each listener's upstream is probed once:
 * TCP connect (bounded by limits.connect_timeout_s), then the TLS handshake
 * if the listener originates TLS, then for `kafka` listeners an ApiVersions
 * v0 request whose response must be a well-formed ApiVersions v0 response
 * with the same correlation id and error code 0. The outcome drives
 * brokerside_upstream_up{listener} and bs_server_ready().
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "brokerside/cursor.h"
#include "brokerside/kafka.h"
#include "brokerside/log.h"
#include "net_internal.h"

enum probe_step { P_IDLE = 0, P_CONNECTING, P_TLS, P_SEND, P_RECV };

#define PROBE_CLIENT_ID "brokerside-probe"

/* Socket ready for the probe: advance it. */
static void probe_io_cb(struct ev_loop *loop, ev_io *io, int revents);

/* Release the socket and SSL of the current attempt. */
static void probe_reset(bs_probe *p, struct ev_loop *loop)
{
    ev_io_stop(loop, &p->io);
    ev_timer_stop(loop, &p->timeout);
    if (p->ssl) SSL_free(p->ssl);
    p->ssl = NULL;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    p->step = P_IDLE;
}

/* Record the outcome of one attempt; log transitions only. */
static void probe_finish(bs_probe *p, struct ev_loop *loop, bool ok, const char *why)
{
    bs_listener *l = p->l;
    probe_reset(p, loop);
    bool was_up = p->up, first = !p->ran_once;
    p->ran_once = true;
    p->up = ok;
    snprintf(p->why, sizeof p->why, "%s", ok ? "" : why);
    bs_metric_set(l->m_up, ok ? 1 : 0);
    if (ok && (!was_up || first))
        BS_LOG_INFOF("net", "listener %s: upstream %s is up", l->cfg->name, l->cfg->upstream.text);
    else if (!ok && (was_up || first))
        BS_LOG_WARNF("net", "listener %s: upstream %s is down: %s", l->cfg->name,
                     l->cfg->upstream.text, why);
}

/* Wait for `events` on the probe socket. */
static void probe_wait(bs_probe *p, struct ev_loop *loop, int events)
{
    ev_io_stop(loop, &p->io);
    ev_io_set(&p->io, p->fd, events);
    ev_io_start(loop, &p->io);
}

/* Build the ApiVersions v0 request (kafka/: header v1 with our client id). */
static void probe_build_request(bs_probe *p)
{
    bs_wbuf w;
    bs_wbuf_init(&w, sizeof p->tx);
    /* Fixed, small request: it always fits `tx`. */
    if (bs_kafka_put_api_versions_probe(&w, p->correlation_id, PROBE_CLIENT_ID) == BS_OK) {
        memcpy(p->tx, w.data, w.len);
        p->tx_len = w.len;
    } else {
        p->tx_len = 0;
    }
    p->tx_off = 0;
    bs_wbuf_free(&w);
}

/* Validate a complete ApiVersions v0 response frame (after the size field). */
static bool probe_check_response(const bs_probe *p, char *why, size_t whylen)
{
    return bs_kafka_check_api_versions_probe(p->rx + 4, p->rx_need, p->correlation_id, why,
                                             whylen) == BS_OK;
}

/* Advance the attempt as far as the socket allows. */
static void probe_step(bs_probe *p, struct ev_loop *loop)
{
    char why[160];
    for (;;) {
        switch (p->step) {
        case P_CONNECTING: {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
            if (err == EINPROGRESS || err == EALREADY) return probe_wait(p, loop, EV_WRITE);
            if (err) {
                snprintf(why, sizeof why, "connect: %s", strerror(err));
                return probe_finish(p, loop, false, why);
            }
            if (p->l->has_utls) {
                SSL_CTX *ctx = bs_tls_slot_acquire(&p->l->utls);
                p->ssl = ctx ? SSL_new(ctx) : NULL;
                SSL_CTX_free(ctx);
                if (!p->ssl || SSL_set_fd(p->ssl, p->fd) != 1 ||
                    bs_tls_client_prepare(p->ssl, p->l->cfg->upstream_tls,
                                          p->l->cfg->upstream.host) != BS_OK) {
                    ERR_clear_error();
                    return probe_finish(p, loop, false, "cannot set up TLS");
                }
                SSL_set_connect_state(p->ssl);
                p->step = P_TLS;
            } else {
                p->step = p->l->cfg->protocol == BS_PROTOCOL_KAFKA ? P_SEND : P_IDLE;
                if (p->step == P_IDLE) return probe_finish(p, loop, true, "");
            }
            break;
        }
        case P_TLS: {
            int r = SSL_do_handshake(p->ssl);
            if (r != 1) {
                int e = SSL_get_error(p->ssl, r);
                if (e == SSL_ERROR_WANT_READ) return probe_wait(p, loop, EV_READ);
                if (e == SSL_ERROR_WANT_WRITE) return probe_wait(p, loop, EV_WRITE);
                long vr = SSL_get_verify_result(p->ssl);
                unsigned long le = ERR_peek_last_error();
                snprintf(why, sizeof why, "TLS handshake: %s",
                         vr != X509_V_OK ? X509_verify_cert_error_string(vr)
                         : le            ? ERR_reason_error_string(le)
                                         : "connection closed");
                ERR_clear_error();
                return probe_finish(p, loop, false, why);
            }
            if (p->l->cfg->protocol != BS_PROTOCOL_KAFKA) return probe_finish(p, loop, true, "");
            p->step = P_SEND;
            break;
        }
        case P_SEND: {
            while (p->tx_off < p->tx_len) {
                size_t put = 0;
                if (p->ssl) {
                    int r = SSL_write_ex(p->ssl, p->tx + p->tx_off, p->tx_len - p->tx_off, &put);
                    if (r != 1) {
                        int e = SSL_get_error(p->ssl, r);
                        ERR_clear_error();
                        if (e == SSL_ERROR_WANT_READ) return probe_wait(p, loop, EV_READ);
                        if (e == SSL_ERROR_WANT_WRITE) return probe_wait(p, loop, EV_WRITE);
                        return probe_finish(p, loop, false, "write failed");
                    }
                } else {
                    ssize_t n = send(p->fd, p->tx + p->tx_off, p->tx_len - p->tx_off, MSG_NOSIGNAL);
                    if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return probe_wait(p, loop, EV_WRITE);
                    if (n < 0) {
                        snprintf(why, sizeof why, "send: %s", strerror(errno));
                        return probe_finish(p, loop, false, why);
                    }
                    put = (size_t)n;
                }
                p->tx_off += put;
            }
            p->step = P_RECV;
            p->rx_len = 0;
            p->rx_need = 0;
            break;
        }
        case P_RECV: {
            size_t want = p->rx_need ? 4 + (size_t)p->rx_need - p->rx_len : 4 - p->rx_len;
            size_t got = 0;
            if (p->ssl) {
                int r = SSL_read_ex(p->ssl, p->rx + p->rx_len, want, &got);
                if (r != 1) {
                    int e = SSL_get_error(p->ssl, r);
                    ERR_clear_error();
                    if (e == SSL_ERROR_WANT_READ) return probe_wait(p, loop, EV_READ);
                    if (e == SSL_ERROR_WANT_WRITE) return probe_wait(p, loop, EV_WRITE);
                    return probe_finish(p, loop, false,
                                        "connection closed before the ApiVersions response");
                }
            } else {
                ssize_t n = recv(p->fd, p->rx + p->rx_len, want, 0);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                    return probe_wait(p, loop, EV_READ);
                if (n <= 0) {
                    snprintf(why, sizeof why, "%s before the ApiVersions response",
                             n == 0 ? "connection closed" : strerror(errno));
                    return probe_finish(p, loop, false, why);
                }
                got = (size_t)n;
            }
            p->rx_len += got;
            if (!p->rx_need && p->rx_len == 4) {
                bs_cursor c;
                uint32_t size;
                bs_cursor_init(&c, p->rx, 4);
                if (bs_read_be32(&c, &size) != BS_OK || size < 10 || size > sizeof p->rx - 4) {
                    snprintf(why, sizeof why, "ApiVersions response size %u out of range", size);
                    return probe_finish(p, loop, false, why);
                }
                p->rx_need = size;
            }
            if (p->rx_need && p->rx_len == 4 + (size_t)p->rx_need) {
                bool ok = probe_check_response(p, why, sizeof why);
                return probe_finish(p, loop, ok, why);
            }
            break;
        }
        default:
            return;
        }
    }
}

static void probe_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    probe_step(bs_container_of(io, bs_probe, io), loop);
}

/* The attempt took longer than limits.connect_timeout_s: the upstream is down. */
static void probe_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    bs_probe *p = bs_container_of(t, bs_probe, timeout);
    probe_finish(p, loop, false,
                 p->step == P_CONNECTING ? "connect timed out" : "no answer in time");
}

/* Start one attempt unless one is still running. */
static void probe_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    bs_probe *p = bs_container_of(t, bs_probe, tick);
    if (p->step != P_IDLE) return;
    const bs_endpoint *up = &p->l->cfg->upstream;
    char why[160];
    p->fd = socket(up->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        return probe_finish(p, loop, false, why);
    }
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(p->fd, (const struct sockaddr *)&up->addr, up->addrlen) != 0 &&
        errno != EINPROGRESS) {
        snprintf(why, sizeof why, "connect: %s", strerror(errno));
        return probe_finish(p, loop, false, why);
    }
    p->correlation_id = (p->correlation_id + 1) & 0x7fffffff;
    probe_build_request(p);
    p->step = P_CONNECTING;
    ev_io_set(&p->io, p->fd, EV_WRITE);
    ev_timer_set(&p->timeout, p->l->srv->cfg->limits.connect_timeout_s, 0.);
    ev_timer_start(loop, &p->timeout);
    ev_io_start(loop, &p->io);
}

/* Arm every listener's probe timer; the first attempt runs at once. */
void bs_net_probes_start(bs_server *s)
{
    double every = s->cfg->probe_interval_s > 0 ? s->cfg->probe_interval_s : 5.0;
    for (size_t i = 0; i < s->n_listeners; i++) {
        bs_probe *p = &s->listeners[i].probe;
        p->l = &s->listeners[i];
        p->fd = -1;
        p->step = P_IDLE;
        ev_init(&p->io, probe_io_cb);
        ev_init(&p->timeout, probe_timeout_cb);
        /* First probe right away so readiness settles quickly after start. */
        ev_timer_init(&p->tick, probe_tick_cb, 0., every);
        ev_timer_start(s->control, &p->tick);
    }
}

/* Stop the timers and abandon running attempts (shutdown, free). */
void bs_net_probes_stop(bs_server *s)
{
    for (size_t i = 0; i < s->n_listeners; i++) {
        bs_probe *p = &s->listeners[i].probe;
        if (!p->l) continue;
        ev_timer_stop(s->control, &p->tick);
        probe_reset(p, s->control);
    }
}

/* Reload: probe every `interval_s` from now on (ignored if not positive). */
void bs_net_probes_set_interval(bs_server *s, double interval_s)
{
    if (interval_s <= 0) return;
    for (size_t i = 0; i < s->n_listeners; i++) {
        bs_probe *p = &s->listeners[i].probe;
        if (!p->l || !ev_is_active(&p->tick)) continue;
        p->tick.repeat = interval_s;
        ev_timer_again(s->control, &p->tick);
    }
}
