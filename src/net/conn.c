/*
 * conn.c - connection pairs on a worker thread: accept, TLS termination,
 * upstream connect (and optional TLS origination), the data pump with
 * backpressure and half-close, timeouts, graceful drain.
 *
 * Design: every event on either socket of a pair runs conn_pump(), which
 * makes all the progress it can (handshakes, reads into the bounded buffer
 * of each direction, the session filter, writes, half-closes) and then
 * recomputes which events each socket must wait for. Recomputing from state
 * instead of reacting to individual events keeps TLS's cross-wants correct
 * (SSL_read may need the socket writable, SSL_write readable) and means a
 * watcher is only active when there is something to wait for: no busy loops.
 *
 * Memory: direction buffers come from a per-worker free list only while
 * bytes are in flight and go back as soon as they are empty, so an idle
 * connection holds the small bs_conn, two sockets and its SSL objects
 * (whose record buffers OpenSSL releases with SSL_MODE_RELEASE_BUFFERS).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "brokerside/log.h"
#include "brokerside/proxy_protocol.h"
#include "net_internal.h"

/* Accepts per readiness event: bounded so one busy listener cannot starve the loop. */
#define ACCEPT_BATCH 64
/* How long accepting pauses when the process is out of descriptors/memory. */
#define ACCEPT_PAUSE_S 0.1
/* Pump rounds per event before yielding to other connections. */
#define PUMP_ROUNDS 8
/* Idle buffers kept per worker; the rest go back to malloc. */
#define MAX_FREE_BUFS 256
/* Graceful shutdown closes a connection once nothing is in flight AND no
 * byte moved for this long: an opaque stream has no request boundaries, so
 * a short quiet period is what tells "between requests" from "a sender
 * pausing between two writes". */
#define DRAIN_SETTLE_S 1.0
/* Bytes peeked to tell TLS from plaintext on a TLS listener. */
#define PEEK_BYTES 16

/* What the last I/O attempt on a side is blocked on. */
enum { BLK_NONE = 0, BLK_READ = 1, BLK_WRITE = 2 };

/* The reason labels of brokerside_proxy_protocol_rejected_total (net_internal.h). */
const char *const bs_net_pp_reasons[BS_NET_PP_REASONS] = {
    BS_PROXY_REASON_UNTRUSTED, BS_PROXY_REASON_MISSING, BS_PROXY_REASON_V1,
    BS_PROXY_REASON_V2,        BS_PROXY_REASON_OVERSIZED, BS_PROXY_REASON_TIMEOUT,
    BS_PROXY_REASON_EOF};

/* PROXY protocol state of a connection on a proxy_protocol listener:
 * allocated at accept, the header buffer freed once the header is in. */
typedef struct bs_conn_pp {
    uint8_t *hdr; /* BS_PROXY_HEADER_MAX bytes while the header is incomplete */
    size_t have;  /* header bytes consumed from the socket so far */
    /* The client address: the peer accept() reported until a header carries
     * another (kept, so a peer that reset is still named in the log). */
    struct sockaddr_storage src;
} bs_conn_pp;

/* Field order packs the small members next to `fd` (no padding before `ssl`). */
typedef struct bs_side {
    ev_io io;
    int fd;
    uint8_t rd_blk;        /* read blocked on BLK_* */
    uint8_t wr_blk;        /* write blocked on BLK_* */
    uint8_t hs_blk;        /* handshake blocked on BLK_* */
    bool ready : 1;        /* connected and handshake (if any) complete */
    bool rd_eof : 1;       /* peer finished sending (FIN or close_notify) */
    bool wr_done : 1;      /* we finished sending to this side (close_notify + FIN) */
    bool shut_pending : 1; /* close_notify not yet fully written */
    SSL *ssl;
} bs_side;

struct bs_conn {
    bs_side c; /* client */
    bs_side u; /* upstream */
    ev_timer timer;
    bs_worker *w;
    bs_listener *l;
    bs_conn *prev, *next;
    bs_buf *c2u, *u2c; /* output buffer of each direction */
    bs_buf *cin, *uin; /* session input buffers (only with a session) */
    void *sess;
    char *principal;
    ev_tstamp t_start, t_active;
    bool peeked : 1;          /* TLS listener: first bytes classified */
    bool opened : 1;          /* both sides ready, data flowing */
    bool upstream_failed : 1; /* close cleanly once the client handshake ends */
    bool upstream_connecting : 1;
    bool announced : 1; /* the observer was told ACCEPTED: CLOSED follows */
    bool pp_pending : 1; /* proxy_protocol listener: the PROXY header is not in yet */
    /* seconds from t_start to the upstream dial (TLS: the client handshake;
     * the connect and origination timeouts run from the dial) */
    float dial_delay_s;
    uint64_t id;        /* process-unique connection id (observer events) */
    uint64_t bytes_in, bytes_out;
    /* proxy_protocol listeners: header state and the client address;
     * NULL on other listeners */
    bs_conn_pp *pp;
};

/* An idle connection must stay cheap (docs/operations.md, memory): keep the
 * struct within a few cache lines; per-connection extras belong in lazily
 * allocated state. */
_Static_assert(sizeof(bs_conn) <= 320, "bs_conn grew: idle memory per connection matters");

static void conn_pump(bs_conn *c);
static void conn_close(bs_conn *c, bool clean);
static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void conn_timer_at(bs_conn *c, ev_tstamp at);

/* ---------------------------------------------------------------- helpers */

/* Format `sa` as "ip:port" ("[v6]:port"); "?" if the family is unknown. */
void bs_net_format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, outlen, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, outlen, "[%s]:%u", ip, port);
    } else {
        snprintf(out, outlen, "?");
    }
}

/* The client's address of `c` into *ss: on a proxy_protocol listener the
 * one its accepted PROXY header carried, else the peer accept() reported;
 * elsewhere the socket's peer (looked up on demand so the connection struct
 * need not carry it). False if unknown. */
static bool conn_client_addr(const bs_conn *c, struct sockaddr_storage *ss)
{
    if (c->pp) {
        *ss = c->pp->src;
        return ss->ss_family == AF_INET || ss->ss_family == AF_INET6;
    }
    socklen_t len = sizeof *ss;
    return c->c.fd >= 0 && getpeername(c->c.fd, (struct sockaddr *)ss, &len) == 0;
}

/* The client's address of `c` as "ip:port" text ("?" if unknown). */
static void conn_peer(const bs_conn *c, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    if (!conn_client_addr(c, &ss)) {
        snprintf(out, outlen, "?");
        return;
    }
    bs_net_format_addr((struct sockaddr *)&ss, out, outlen);
}

/* Allow one log line per second per `last` across threads. */
bool bs_net_ratelimit(_Atomic int64_t *last)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec, prev = atomic_load_explicit(last, memory_order_relaxed);
    if (prev == now) return false;
    return atomic_compare_exchange_strong(last, &prev, now);
}

/* Get (creating on first use) the failure counter for `reason`. The cache
 * keeps the registry lookup off repeated failures; unknown reasons beyond the
 * cache size are still counted through the registry. */
bs_metric *bs_net_failure_metric(bs_listener *l, const char *reason)
{
    bs_metric *m = NULL;
    pthread_mutex_lock(&l->reason_lock);
    for (size_t i = 0; i < l->n_reasons; i++) {
        if (strcmp(l->reasons[i].reason, reason) == 0) {
            m = l->reasons[i].m;
            goto out;
        }
    }
    char esc[64], labels[sizeof l->labels + 96];
    bs_metrics_label_escape(reason, esc, sizeof esc);
    snprintf(labels, sizeof labels, "%s,reason=\"%s\"", l->labels, esc);
    m = bs_metrics_counter("brokerside_tls_handshake_failures_total",
                           "TLS handshakes with clients that failed, by reason", labels);
    if (l->n_reasons < BS_NET_MAX_REASONS && strlen(reason) < sizeof l->reasons[0].reason) {
        snprintf(l->reasons[l->n_reasons].reason, sizeof l->reasons[0].reason, "%s", reason);
        l->reasons[l->n_reasons].m = m;
        l->n_reasons++;
    }
out:
    pthread_mutex_unlock(&l->reason_lock);
    return m;
}

/* ---------------------------------------------------------------- buffers */

/* A direction buffer from the worker's free list (or malloc). NULL on OOM. */
static bs_buf *buf_get(bs_worker *w)
{
    bs_bufnode *n = w->free_bufs;
    if (n) {
        w->free_bufs = n->next;
        w->n_free_bufs--;
        return &n->b;
    }
    size_t cap = w->limits.buffer_bytes;
    /* Storage is a separate allocation so a session may swap the storage of
     * two buffers of equal capacity (session.h: zero-copy pass-through). */
    n = malloc(sizeof *n);
    uint8_t *data = n ? malloc(cap) : NULL;
    if (!data) {
        free(n);
        return NULL;
    }
    n->b.data = data;
    n->b.cap = cap;
    n->b.rd = n->b.wr = 0;
    n->next = NULL;
    return &n->b;
}

/* Return an empty buffer to the free list; buffers of an old size (after a
 * reload changed buffer_bytes) or beyond the pool size are freed. */
static void buf_put(bs_worker *w, bs_buf *b)
{
    bs_bufnode *n = bs_container_of(b, bs_bufnode, b);
    if (b->cap != w->limits.buffer_bytes || w->n_free_bufs >= MAX_FREE_BUFS) {
        free(b->data);
        free(n);
        return;
    }
    b->rd = b->wr = 0;
    n->next = w->free_bufs;
    w->free_bufs = n;
    w->n_free_bufs++;
}

/* Free every pooled buffer of `w`. */
void bs_net_worker_free_bufs(bs_worker *w)
{
    while (w->free_bufs) {
        bs_bufnode *n = w->free_bufs;
        w->free_bufs = n->next;
        free(n->b.data);
        free(n);
    }
    w->n_free_bufs = 0;
}

/* Give back the buffers of `c` that hold no bytes (after each pump). */
static void conn_release_empty(bs_conn *c)
{
    bs_buf **all[] = {&c->c2u, &c->u2c, &c->cin, &c->uin};
    for (size_t i = 0; i < BS_ARRAY_LEN(all); i++) {
        if (*all[i] && bs_buf_readable(*all[i]) == 0) {
            buf_put(c->w, *all[i]);
            *all[i] = NULL;
        }
    }
}

/* True for a missing (not allocated) or empty buffer. */
static bool buf_empty(const bs_buf *b)
{
    return !b || bs_buf_readable(b) == 0;
}

/* ---------------------------------------------------------------- watchers */

/* Make `s`'s watcher wait for exactly `events` (0 = stopped). */
static void side_watch(bs_conn *c, bs_side *s, int events)
{
    if (s->fd < 0) return;
    int cur = ev_is_active(&s->io) ? (s->io.events & (EV_READ | EV_WRITE)) : 0;
    if (cur == events) return;
    if (ev_is_active(&s->io)) ev_io_stop(c->w->loop, &s->io);
    if (events) {
        ev_io_set(&s->io, s->fd, events);
        ev_io_start(c->w->loop, &s->io);
    }
}

/* The libev event a BLK_* state waits for; `dflt` when not blocked. */
static int blk_event(uint8_t blk, int dflt)
{
    return blk == BLK_READ ? EV_READ : blk == BLK_WRITE ? EV_WRITE : dflt;
}

/* Room to read more into `target` (the session input, or the direction's
 * output buffer without a session); a missing buffer is allocated on read. */
static bool has_room(const bs_buf *target)
{
    return !target || bs_buf_free_space(target) > 0;
}

/* Recompute the events both sockets wait for from the connection's state. */
static void conn_update_watchers(bs_conn *c)
{
    int ce = 0, ue = 0;
    if (!c->peeked || !c->c.ready) {
        ce = c->peeked ? blk_event(c->c.hs_blk, EV_READ) : EV_READ;
    } else if (c->opened) {
        bool csess = c->l->session_ops != NULL;
        if (!c->c.rd_eof && has_room(csess ? c->cin : c->c2u))
            ce |= blk_event(c->c.rd_blk, EV_READ);
        if (!buf_empty(c->u2c) || c->c.shut_pending) ce |= blk_event(c->c.wr_blk, EV_WRITE);
    }
    if (c->upstream_connecting) {
        ue = EV_WRITE;
    } else if (c->u.fd >= 0 && !c->u.ready) {
        ue = blk_event(c->u.hs_blk, EV_READ);
    } else if (c->opened) {
        bool usess = c->l->session_ops != NULL;
        if (!c->u.rd_eof && has_room(usess ? c->uin : c->u2c))
            ue |= blk_event(c->u.rd_blk, EV_READ);
        if (!buf_empty(c->c2u) || c->u.shut_pending) ue |= blk_event(c->u.wr_blk, EV_WRITE);
    }
    side_watch(c, &c->c, ce);
    side_watch(c, &c->u, ue);
}

/* ---------------------------------------------------------------- I/O */

enum { IO_OK = 1, IO_BLOCK = 0, IO_EOF = -1, IO_ERR = -2 };

/* Map an SSL error of an I/O call to IO_* and the side's block state. */
static int ssl_io_result(SSL *ssl, int ret, uint8_t *blk)
{
    int e = SSL_get_error(ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *blk = BLK_READ;
        return IO_BLOCK;
    case SSL_ERROR_WANT_WRITE:
        *blk = BLK_WRITE;
        return IO_BLOCK;
    case SSL_ERROR_ZERO_RETURN:
        return IO_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        /* errno 0: TCP FIN without close_notify; Kafka clients do this, and
         * the framing above TLS detects truncation, so treat it as EOF. */
        return errno == 0 ? IO_EOF : IO_ERR;
    default: {
        unsigned long err = ERR_peek_last_error();
        ERR_clear_error();
        if (ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return IO_EOF;
        return IO_ERR;
    }
    }
}

/* Read from `s` into the tail of `b` (compacting first if needed). */
static int side_read(bs_side *s, bs_buf *b, size_t *got)
{
    if (bs_buf_tail_room(b) == 0) bs_buf_compact(b);
    size_t room = bs_buf_tail_room(b);
    *got = 0;
    s->rd_blk = BLK_NONE;
    if (s->ssl) {
        errno = 0;
        int r = SSL_read_ex(s->ssl, bs_buf_write_ptr(b), room, got);
        if (r == 1) {
            bs_buf_produce(b, *got);
            return IO_OK;
        }
        return ssl_io_result(s->ssl, r, &s->rd_blk);
    }
    ssize_t n = recv(s->fd, bs_buf_write_ptr(b), room, 0);
    if (n > 0) {
        bs_buf_produce(b, (size_t)n);
        *got = (size_t)n;
        return IO_OK;
    }
    if (n == 0) return IO_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        s->rd_blk = BLK_READ;
        return IO_BLOCK;
    }
    return IO_ERR;
}

/* Write the readable bytes of `b` to `s`; partial writes keep the rest. */
static int side_write(bs_side *s, bs_buf *b, size_t *put)
{
    *put = 0;
    s->wr_blk = BLK_NONE;
    size_t len = bs_buf_readable(b);
    if (s->ssl) {
        errno = 0;
        int r = SSL_write_ex(s->ssl, bs_buf_read_ptr(b), len, put);
        if (r == 1) {
            bs_buf_consume(b, *put);
            return IO_OK;
        }
        int res = ssl_io_result(s->ssl, r, &s->wr_blk);
        return res == IO_EOF ? IO_ERR : res;
    }
    ssize_t n = send(s->fd, bs_buf_read_ptr(b), len, MSG_NOSIGNAL);
    if (n >= 0) {
        bs_buf_consume(b, (size_t)n);
        *put = (size_t)n;
        return IO_OK;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        s->wr_blk = BLK_WRITE;
        return IO_BLOCK;
    }
    return IO_ERR;
}

/* Finish sending to `s`: close_notify (TLS) then FIN. IO_BLOCK while the
 * close_notify cannot be written yet. */
static int side_shutdown_write(bs_side *s)
{
    if (s->ssl) {
        s->wr_blk = BLK_NONE;
        errno = 0;
        int r = SSL_shutdown(s->ssl);
        if (r < 0) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                s->wr_blk = e == SSL_ERROR_WANT_WRITE ? BLK_WRITE : BLK_READ;
                s->shut_pending = true;
                return IO_BLOCK;
            }
            ERR_clear_error();
            /* The peer is gone; its FIN/RST will show up on the read side. */
        }
    }
    s->shut_pending = false;
    s->wr_done = true;
    shutdown(s->fd, SHUT_WR);
    return IO_OK;
}

/* ---------------------------------------------------------------- setup */

/* Count and log a failed upstream connect (rate-limited) and decide how the
 * client is told: a clean close, after its TLS handshake if one is running. */
static void conn_upstream_failed(bs_conn *c, const char *why)
{
    bs_listener *l = c->l;
    bs_metric_add(l->m_upstream_fail, 1);
    if (bs_net_ratelimit(&l->last_upstream_log)) {
        char peer[64];
        conn_peer(c, peer, sizeof peer);
        BS_LOG_WARNF("net", "listener %s: upstream %s unavailable (%s); closing client %s",
                     l->cfg->name, l->cfg->upstream.text, why, peer);
    }
    if (c->u.fd >= 0) {
        if (ev_is_active(&c->u.io)) ev_io_stop(c->w->loop, &c->u.io);
        ev_clear_pending(c->w->loop, &c->u.io);
        if (c->u.ssl) SSL_free(c->u.ssl);
        c->u.ssl = NULL;
        close(c->u.fd);
        c->u.fd = -1;
    }
    c->upstream_connecting = false;
    c->upstream_failed = true;
}

/* Start the non-blocking connect to the upstream. Returns the errno of a
 * failed socket() (the process is out of descriptors: the caller pauses
 * accepting), else 0; any failure is already handled on `c`. */
static int conn_connect_upstream(bs_conn *c)
{
    const bs_endpoint *up = &c->l->cfg->upstream;
    int fd = socket(up->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        conn_upstream_failed(c, strerror(err));
        return err;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->u.fd = fd;
    ev_io_init(&c->u.io, conn_io_cb, fd, EV_WRITE);
    c->u.io.data = c;
    if (connect(fd, (const struct sockaddr *)&up->addr, up->addrlen) == 0 || errno == EINPROGRESS) {
        c->upstream_connecting = true;
        return 0;
    }
    conn_upstream_failed(c, strerror(errno));
    return 0;
}

/* The connect finished (writable): check its result, start origination TLS. */
static void conn_upstream_connected(bs_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->u.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == EINPROGRESS || err == EALREADY) return;
    c->upstream_connecting = false;
    if (err != 0) {
        conn_upstream_failed(c, strerror(err));
        return;
    }
    if (!c->l->has_utls) {
        c->u.ready = true;
        return;
    }
    SSL_CTX *ctx = bs_tls_slot_acquire(&c->l->utls);
    c->u.ssl = ctx ? SSL_new(ctx) : NULL;
    SSL_CTX_free(ctx);
    if (!c->u.ssl || SSL_set_fd(c->u.ssl, c->u.fd) != 1 ||
        bs_tls_client_prepare(c->u.ssl, c->l->cfg->upstream_tls, c->l->cfg->upstream.host) !=
            BS_OK) {
        ERR_clear_error();
        conn_upstream_failed(c, "cannot set up TLS to the upstream");
        return;
    }
    SSL_set_mode(c->u.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
    SSL_set_connect_state(c->u.ssl);
}

/* Advance the origination handshake. false if it failed (connection handled). */
static void conn_upstream_handshake(bs_conn *c)
{
    errno = 0;
    int r = SSL_do_handshake(c->u.ssl);
    if (r == 1) {
        c->u.ready = true;
        c->u.hs_blk = BLK_NONE;
        return;
    }
    int e = SSL_get_error(c->u.ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->u.hs_blk = e == SSL_ERROR_WANT_READ ? BLK_READ : BLK_WRITE;
        return;
    }
    char why[200];
    unsigned long err = ERR_peek_last_error();
    long vr = SSL_get_verify_result(c->u.ssl);
    if (vr != X509_V_OK)
        snprintf(why, sizeof why, "TLS to upstream failed: %s", X509_verify_cert_error_string(vr));
    else if (err)
        snprintf(why, sizeof why, "TLS to upstream failed: %s", ERR_reason_error_string(err));
    else
        snprintf(why, sizeof why, "TLS to upstream failed: connection closed");
    ERR_clear_error();
    conn_upstream_failed(c, why);
}

/* Client certificate problems are reported as a rejection of the
 * certificate, every other failure as a failed handshake. */
static bool reason_is_cert(const char *reason)
{
    static const char *const cert[] = {"unknown_ca",           "bad_certificate",
                                       "certificate_required", "certificate_revoked",
                                       "certificate_expired",  "crl_error"};
    for (size_t i = 0; i < BS_ARRAY_LEN(cert); i++)
        if (strcmp(reason, cert[i]) == 0) return true;
    return false;
}

/* `ss` (AF_INET / AF_INET6) as the observer's address text and port; "?"
 * and 0 for anything else. */
static void observer_addr(const struct sockaddr_storage *ss, char ip[INET6_ADDRSTRLEN],
                          uint16_t *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, INET6_ADDRSTRLEN);
        *port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, INET6_ADDRSTRLEN);
        *port = ntohs(a->sin6_port);
    }
}

/* Tell the server's observer (if any) about `c`. The peer address is looked
 * up only when someone listens, so the plain path costs one branch. */
static void conn_notify(bs_conn *c, bs_conn_event_kind kind, const char *reason)
{
    bs_server *srv = c->w->srv;
    if (!srv->observer) return;
    char ip[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    struct sockaddr_storage ss;
    if (conn_client_addr(c, &ss)) observer_addr(&ss, ip, &port);
    bs_conn_event ev = {.kind = kind,
                        .conn_id = c->id,
                        .listener = c->l->cfg->name,
                        .broker_id = c->l->cfg->broker_id,
                        .peer_ip = ip,
                        .peer_port = port,
                        .principal = c->principal,
                        .reason = reason};
    if (kind == BS_CONN_EV_CLOSED) {
        double d = (ev_now(c->w->loop) - c->t_start) * 1000.0;
        ev.duration_ms = d > 0 ? (int64_t)d : 0;
        ev.bytes_in = c->bytes_in;
        ev.bytes_out = c->bytes_out;
    }
    if (kind == BS_CONN_EV_ACCEPTED) c->announced = true;
    srv->observer(srv->observer_ctx, &ev);
}

/* Tell the observer (if any) that listener `l` refused connection `id` from
 * `peer` (the socket's peer: a header, if any, was not accepted) for its
 * PROXY header: BS_CONN_EV_PROXY_REJECTED with `reason`, `detail`. Shared by
 * the refusal at accept (no bs_conn yet) and conn_pp_reject. */
static void pp_notify_rejected(bs_server *srv, const bs_listener *l, uint64_t id,
                               const struct sockaddr_storage *peer, const char *reason,
                               const char *detail)
{
    if (!srv->observer) return;
    char ip[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    observer_addr(peer, ip, &port);
    bs_conn_event ev = {.kind = BS_CONN_EV_PROXY_REJECTED,
                        .conn_id = id,
                        .listener = l->cfg->name,
                        .broker_id = l->cfg->broker_id,
                        .peer_ip = ip,
                        .peer_port = port,
                        .reason = reason,
                        .detail = detail};
    srv->observer(srv->observer_ctx, &ev);
}

/* Log and count a failed client handshake; the caller closes. */
static void conn_client_tls_failed(bs_conn *c, const char *reason)
{
    char peer[64];
    conn_peer(c, peer, sizeof peer);
    bs_metric_add(bs_net_failure_metric(c->l, reason), 1);
    conn_notify(c, reason_is_cert(reason) ? BS_CONN_EV_CERT_REJECTED : BS_CONN_EV_TLS_FAILED,
                reason);
    /* A peer that leaves without a word is usually a TCP health check or
     * port scan: counted, but not a warning. */
    bs_log(strcmp(reason, "eof") == 0 ? BS_LOG_INFO : BS_LOG_WARN, "net",
           "TLS handshake failed on listener %s from %s: %s", c->l->cfg->name, peer, reason);
}

/* Count, log and close a connection refused for its PROXY header (or its
 * silence): `reason` is one of bs_net_pp_reasons, `why` the detail for the
 * log. The address logged is the socket's peer (the header, if any, was not
 * accepted). */
static void conn_pp_reject(bs_conn *c, const char *reason, const char *why)
{
    bs_listener *l = c->l;
    for (size_t i = 0; i < BS_NET_PP_REASONS; i++)
        if (strcmp(bs_net_pp_reasons[i], reason) == 0) bs_metric_add(l->m_pp_rejected[i], 1);
    char peer[64];
    conn_peer(c, peer, sizeof peer);
    /* A peer that leaves without a byte is usually a TCP health check:
     * counted, but not a warning. */
    bool quiet = strcmp(reason, BS_PROXY_REASON_EOF) == 0 && c->pp && c->pp->have == 0;
    bs_log(quiet ? BS_LOG_INFO : BS_LOG_WARN, "net",
           "PROXY protocol: closing connection from %s on listener %s: %s (%s)", peer,
           l->cfg->name, reason, why);
    /* c->pp->src is still the socket's peer: the header was not accepted. */
    if (c->pp) pp_notify_rejected(c->w->srv, l, c->id, &c->pp->src, reason, why);
    conn_close(c, false);
}

/* proxy_protocol listener, client readable: take the PROXY header off the
 * socket. The bytes are peeked, parsed with what came before, and then
 * exactly the header's share is consumed, so what follows it (a TLS
 * ClientHello, the first Kafka request) stays in the socket for the next
 * stage. Bytes that cannot become a header close the connection at once;
 * an incomplete one waits (bounded by the handshake deadline, conn_timer_cb).
 * Returns false if the connection was closed. */
static bool conn_proxy_header(bs_conn *c)
{
    bs_conn_pp *pp = c->pp;
    ssize_t n = recv(c->c.fd, pp->hdr + pp->have, BS_PROXY_HEADER_MAX - pp->have, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n <= 0) {
        conn_pp_reject(c, BS_PROXY_REASON_EOF,
                       n == 0 ? (pp->have ? "closed inside the header" : "closed without a byte")
                              : strerror(errno));
        return false;
    }
    size_t total = pp->have + (size_t)n;
    bs_proxy_header h;
    const char *reason = NULL;
    char why[192];
    bs_status st = bs_proxy_parse(pp->hdr, total, &h, &reason, why, sizeof why);
    if (st == BS_E_SHORT && total >= BS_PROXY_HEADER_MAX) {
        st = BS_E_TOO_LARGE; /* cannot happen with a correct parser: never buffer more */
        reason = BS_PROXY_REASON_OVERSIZED;
        snprintf(why, sizeof why, "no complete header within %d bytes", BS_PROXY_HEADER_MAX);
    }
    if (st != BS_OK && st != BS_E_SHORT) {
        conn_pp_reject(c, reason ? reason : BS_PROXY_REASON_MISSING, why);
        return false;
    }
    /* All peeked bytes of an incomplete header belong to it. */
    size_t take = st == BS_OK ? h.len - pp->have : (size_t)n;
    ssize_t got = recv(c->c.fd, pp->hdr + pp->have, take, 0);
    if (got != (ssize_t)take) {
        conn_pp_reject(c, BS_PROXY_REASON_EOF, "the header's bytes vanished while consuming them");
        return false;
    }
    pp->have += take;
    if (st == BS_E_SHORT) return true;

    bs_listener *l = c->l;
    bs_metric_add(l->m_pp_accepted[h.version - 1], 1);
    c->pp_pending = false;
    free(pp->hdr);
    pp->hdr = NULL;
    if (bs_log_get_level() <= BS_LOG_DEBUG) {
        char real[64], client[64] = "(none: the connection's own)";
        bs_net_format_addr((struct sockaddr *)&pp->src, real, sizeof real);
        if (h.has_addr) bs_net_format_addr((struct sockaddr *)&h.src, client, sizeof client);
        BS_LOG_DEBUGF("net", "listener %s: PROXY v%d%s header from %s: client %s (%u TLVs)",
                      l->cfg->name, h.version, h.local ? " LOCAL" : "", real, client, h.n_tlvs);
    }
    if (h.has_addr)
        pp->src = h.src;
    else /* LOCAL, UNKNOWN, AF_UNSPEC, AF_UNIX: the connection speaks for itself. */
        bs_metric_add(l->m_pp_local, 1);
    if (!l->has_tls) {
        /* Plaintext: the client side is ready now; conn_pump dials the upstream. */
        c->peeked = true;
        c->c.ready = true;
        conn_notify(c, BS_CONN_EV_ACCEPTED, NULL);
    }
    return true;
}

/* TLS listener, client readable for the first time: refuse anything that is
 * not a TLS handshake record with a precise reason, else create the SSL.
 * Returns false if the connection was closed. */
static bool conn_peek_client(bs_conn *c)
{
    uint8_t first[PEEK_BYTES];
    ssize_t n = recv(c->c.fd, first, sizeof first, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n <= 0) {
        conn_client_tls_failed(c, "eof");
        conn_close(c, false);
        return false;
    }
    /* A TLS handshake record starts 0x16 0x03; anything else is refused with
     * the TLS module's classification (plaintext Kafka, HTTP, SSLv2, ...). */
    if (first[0] != 0x16 || (n >= 2 && first[1] != 0x03)) {
        const char *kind = bs_tls_failure_reason(NULL, SSL_ERROR_SSL, first, (size_t)n);
        char peer[64];
        conn_peer(c, peer, sizeof peer);
        const char *what =
            strcmp(kind, "plaintext_kafka") == 0    ? "plaintext Kafka client"
            : strcmp(kind, "http_request") == 0     ? "HTTP request"
            : strcmp(kind, "protocol_version") == 0 ? "SSLv2-style hello"
            : strcmp(kind, "proxy_protocol") != 0 ? "non-TLS bytes"
            /* After the balancer's header: the client wrote one of its own. */
            : c->l->cfg->proxy_protocol ? "second PROXY protocol header (sent by the client, "
                                          "behind the load balancer's)"
                                        : "PROXY protocol header (the listener has no "
                                          "proxy_protocol: enable it, or stop the load "
                                          "balancer sending one)";
        BS_LOG_WARNF("net", "%s on TLS listener %s from %s; closing (%s)", what, c->l->cfg->name,
                     peer, kind);
        bs_metric_add(bs_net_failure_metric(c->l, kind), 1);
        conn_notify(c, BS_CONN_EV_TLS_FAILED, kind);
        conn_close(c, false);
        return false;
    }
    SSL_CTX *ctx = bs_tls_slot_acquire(&c->l->tls);
    c->c.ssl = ctx ? SSL_new(ctx) : NULL;
    SSL_CTX_free(ctx);
    if (!c->c.ssl || SSL_set_fd(c->c.ssl, c->c.fd) != 1) {
        ERR_clear_error();
        BS_LOG_ERRORF("net", "listener %s: cannot create a TLS session (out of memory?)",
                      c->l->cfg->name);
        conn_close(c, false);
        return false;
    }
    SSL_set_mode(c->c.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
    SSL_set_accept_state(c->c.ssl);
    c->peeked = true;
    return true;
}

/* Advance the client handshake. Returns false if the connection was closed. */
static bool conn_client_handshake(bs_conn *c)
{
    errno = 0;
    ERR_clear_error();
    int r = SSL_do_handshake(c->c.ssl);
    if (r == 1) {
        c->c.ready = true;
        c->c.hs_blk = BLK_NONE;
        bs_metric_add(c->l->m_handshakes, 1);
        char principal[BS_TLS_PRINCIPAL_MAX];
        bs_status st = bs_tls_peer_principal(c->c.ssl, principal, sizeof principal);
        /* TOO_LARGE still yields a marked ("...") prefix worth keeping. */
        if (st == BS_OK || st == BS_E_TOO_LARGE) c->principal = strdup(principal);
        conn_notify(c, BS_CONN_EV_ACCEPTED, NULL);
        return true;
    }
    int e = SSL_get_error(c->c.ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->c.hs_blk = e == SSL_ERROR_WANT_READ ? BLK_READ : BLK_WRITE;
        return true;
    }
    conn_client_tls_failed(c, bs_tls_failure_reason(c->c.ssl, e, NULL, 0));
    conn_close(c, false);
    return false;
}

/* bs_session_info.wake: run the pump from the loop (a fed event, so never
 * re-entrantly; conn_close clears it if the connection ends first). */
static void conn_wake(void *arg)
{
    bs_conn *c = arg;
    ev_feed_event(c->w->loop, &c->c.io, EV_CUSTOM);
}

/* Both sides ready: open the session, switch the timer to idle tracking. */
static bool conn_open(bs_conn *c)
{
    c->opened = true;
    c->t_active = ev_now(c->w->loop);
    const bs_session_ops *ops = c->l->session_ops;
    if (ops) {
        char peer[64];
        conn_peer(c, peer, sizeof peer);
        bs_session_info info = {.listener = c->l->cfg,
                                .kafka = c->w->cfg->kafka,
                                .peer = peer,
                                .principal = c->principal,
                                .wake = conn_wake,
                                .wake_arg = c,
                                .conn_id = c->id};
        if (ops->open(c->l->session_ctx, &info, &c->sess) != BS_OK) {
            BS_LOG_WARNF("net", "listener %s: session refused connection from %s", c->l->cfg->name,
                         peer);
            conn_close(c, false);
            return false;
        }
    }
    if (bs_log_get_level() <= BS_LOG_DEBUG) {
        char peer[64];
        conn_peer(c, peer, sizeof peer);
        BS_LOG_DEBUGF("net", "listener %s: connection from %s open%s%s", c->l->cfg->name, peer,
                      c->principal ? ", principal " : "", c->principal ? c->principal : "");
    }
    return true;
}

/* ---------------------------------------------------------------- data pump */

/* Move bytes one way: read `src` into `in` (session) or `out`, run the
 * session filter, write `out` to `dst`, half-close `dst` once `src` ended and
 * everything was delivered. Sets *progress. Returns false on a fatal error
 * (the caller closes). */
static bool pump_direction(bs_conn *c, bs_side *src, bs_side *dst, bs_buf **in, bs_buf **out,
                           bs_buf **back, bool from_client, bool *progress)
{
    const bs_session_ops *ops = c->l->session_ops;
    bs_worker *w = c->w;

    /* read */
    bs_buf **target = ops ? in : out;
    /* A side blocked on its socket is not retried until an event says it can
     * progress: no wasted EAGAIN system calls on the other side's events. */
    while (!src->rd_eof && src->rd_blk == BLK_NONE &&
           (*target == NULL || bs_buf_free_space(*target) > 0)) {
        if (!*target && !(*target = buf_get(w))) return false;
        size_t got;
        int r = side_read(src, *target, &got);
        if (r == IO_OK) {
            if (src == &c->c) c->bytes_in += got;
            *progress = true;
            continue;
        }
        if (r == IO_EOF) {
            src->rd_eof = true;
            *progress = true;
            break;
        }
        if (r == IO_ERR) return false;
        break;
    }

    /* filter: with input, or with none while the session is busy (it may
     * hold output of its own that waits for room in `out`) */
    if (ops && (!buf_empty(*in) || (ops->is_quiescent && !ops->is_quiescent(c->sess)))) {
        if ((!*out && !(*out = buf_get(w))) || (!*back && !(*back = buf_get(w)))) return false;
        /* An empty stand-in with a real data pointer: pointer arithmetic on
         * it stays defined in the session. */
        uint8_t none[1];
        bs_buf no_input = {.data = none, .cap = 0, .rd = 0, .wr = 0};
        bs_buf *inb = *in ? *in : &no_input;
        size_t before_in = bs_buf_readable(inb), before_out = bs_buf_readable(*out),
               before_back = bs_buf_readable(*back);
        bs_status st = from_client ? ops->on_client_bytes(c->sess, inb, *out, *back)
                                   : ops->on_upstream_bytes(c->sess, inb, *out, *back);
        if (st != BS_OK) return false;
        if (bs_buf_readable(inb) != before_in || bs_buf_readable(*out) != before_out ||
            bs_buf_readable(*back) != before_back)
            *progress = true;
    }

    /* The side ended inside a message (a client that closed with half a
     * request sent): it can never complete, so nothing waits for the other
     * side any more; close both now rather than at the idle timeout. */
    if (ops && src->rd_eof && ops->input_truncated) {
        uint8_t none[1];
        bs_buf no_input = {.data = none, .cap = 0, .rd = 0, .wr = 0};
        if (ops->input_truncated(c->sess, from_client, *in ? *in : &no_input)) {
            if (bs_log_get_level() <= BS_LOG_DEBUG) {
                char peer[64];
                conn_peer(c, peer, sizeof peer);
                BS_LOG_DEBUGF("net", "listener %s: %s of %s ended inside a message; closing both",
                              c->l->cfg->name, from_client ? "client" : "upstream", peer);
            }
            bs_metric_add(from_client ? c->l->m_truncated_c : c->l->m_truncated_u, 1);
            return false;
        }
    }

    /* write */
    size_t up_written = 0;
    while (!buf_empty(*out) && !dst->wr_done && dst->wr_blk == BLK_NONE) {
        size_t put;
        int r = side_write(dst, *out, &put);
        if (r == IO_OK) {
            bs_metric_add(from_client ? c->l->m_bytes_c2u : c->l->m_bytes_u2c, (int64_t)put);
            if (dst == &c->c)
                c->bytes_out += put;
            else
                up_written += put;
            *progress = true;
            continue;
        }
        if (r == IO_ERR) return false;
        break;
    }
    /* Requests time their stay in the broker from here (session.h). */
    if (ops && ops->on_upstream_written && up_written > 0)
        ops->on_upstream_written(c->sess, up_written);
    if (!buf_empty(*out) && dst->wr_done) return false; /* cannot be delivered */

    /* half-close */
    if (src->rd_eof && buf_empty(*out) && buf_empty(ops ? *in : NULL) && !dst->wr_done) {
        if (side_shutdown_write(dst) == IO_OK) *progress = true;
    }
    return true;
}

/* Bytes of `s` still in the kernel or in OpenSSL: unread input (records
 * read ahead but not yet decrypted included), or output the peer has not
 * acknowledged yet. */
static bool side_has_bytes_in_flight(const bs_side *s)
{
    int n = 0;
    if (s->fd < 0) return false;
    if (ioctl(s->fd, FIONREAD, &n) == 0 && n > 0) return true;
    if (ioctl(s->fd, SIOCOUTQ, &n) == 0 && n > 0 && !s->wr_done) return true;
    return s->ssl && SSL_has_pending(s->ssl);
}

/* Nothing in flight (graceful shutdown may close now): no buffered bytes in
 * brokerside, none queued in either socket, not half-closed, and a quiescent
 * session. A half-closed pair is finishing an exchange (typically: the
 * client sent its last request and EOF and waits for the answer), so it is
 * left to end by itself within the grace period. For opaque `tcp` this is
 * all that can be known: a request the upstream has fully received but not
 * yet answered on a still-open pair is not visible. */
static bool conn_quiescent(const bs_conn *c)
{
    if (!buf_empty(c->c2u) || !buf_empty(c->u2c) || !buf_empty(c->cin) || !buf_empty(c->uin))
        return false;
    if (c->c.rd_eof != c->u.rd_eof) return false;
    if (c->sess && c->l->session_ops->is_quiescent && !c->l->session_ops->is_quiescent(c->sess))
        return false;
    return !side_has_bytes_in_flight(&c->c) && !side_has_bytes_in_flight(&c->u);
}

static void accept_pause(struct ev_loop *loop, bs_wlistener *wl, int err, bool upstream);

/* Make all possible progress on `c`, then re-arm its watchers. May free `c`. */
static void conn_pump(bs_conn *c)
{
    bool more = false;
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        bool progress = false;
        if (c->pp_pending) {
            if (!conn_proxy_header(c)) return;
            if (c->pp_pending) break;
        }
        if (c->l->has_tls && !c->peeked) {
            if (!conn_peek_client(c)) return;
            if (!c->peeked) break;
        }
        if (!c->c.ready) {
            if (!conn_client_handshake(c)) return;
        }
        /* The upstream is dialled only for a client that completed its TLS
         * handshake (and passed the client-certificate check): bare connects
         * and failed handshakes cost the broker nothing. The connect and the
         * origination handshake get their own timeouts from here. */
        if (c->c.ready && c->u.fd < 0 && !c->upstream_failed && !c->opened) {
            ev_tstamp dial = ev_now(c->w->loop);
            c->dial_delay_s = (float)(dial - c->t_start);
            int sock_err = conn_connect_upstream(c);
            if (sock_err == EMFILE || sock_err == ENFILE)
                /* as on a plaintext listener: more clients now would each
                 * finish their handshake only to be closed for want of an
                 * upstream socket */
                accept_pause(c->w->loop, &c->w->wl[c->l->index], sock_err, true);
            double first = c->w->limits.handshake_timeout_s;
            if (c->w->limits.connect_timeout_s < first) first = c->w->limits.connect_timeout_s;
            conn_timer_at(c, dial + first);
        }
        if (c->u.fd >= 0 && !c->upstream_connecting && !c->u.ready && c->u.ssl)
            conn_upstream_handshake(c);
        if (c->upstream_failed) {
            /* Let a running client handshake finish so the client sees a
             * clean close_notify instead of a torn handshake. */
            if (c->c.ready)
                conn_close(c, true);
            else
                conn_update_watchers(c);
            return;
        }
        if (!c->opened) {
            if (!(c->c.ready && c->u.ready)) break;
            if (!conn_open(c)) return;
        }
        if (!pump_direction(c, &c->c, &c->u, &c->cin, &c->c2u, &c->u2c, true, &progress) ||
            !pump_direction(c, &c->u, &c->c, &c->uin, &c->u2c, &c->c2u, false, &progress)) {
            if (bs_log_get_level() <= BS_LOG_DEBUG) {
                char peer[64];
                conn_peer(c, peer, sizeof peer);
                BS_LOG_DEBUGF("net", "listener %s: connection from %s closed on error (%s)",
                              c->l->cfg->name, peer, strerror(errno));
            }
            conn_close(c, false);
            return;
        }
        if (c->c.shut_pending && side_shutdown_write(&c->c) == IO_OK) progress = true;
        if (c->u.shut_pending && side_shutdown_write(&c->u) == IO_OK) progress = true;
        if (c->c.wr_done && c->u.wr_done) {
            conn_close(c, false);
            return;
        }
        if (progress) c->t_active = ev_now(c->w->loop);
        more = progress;
        if (!progress) break;
    }
    /* Draining: (re)check quiescence once the connection has been quiet for
     * DRAIN_SETTLE_S (conn_timer_cb closes it then). */
    if (c->w->draining && c->opened) conn_timer_at(c, c->t_active + DRAIN_SETTLE_S);
    /* A message from the client in progress has a deadline: make sure the
     * timer fires by then (it normally sleeps until the idle timeout). */
    const bs_session_ops *ops = c->l->session_ops;
    if (!c->w->draining && c->opened && ops && ops->input_deadline) {
        double left = ops->input_deadline(c->sess);
        if (left >= 0) {
            ev_tstamp now = ev_now(c->w->loop);
            if (!ev_is_active(&c->timer) ||
                left + 0.01 < ev_timer_remaining(c->w->loop, &c->timer))
                conn_timer_at(c, now + left);
        }
    }
    conn_release_empty(c);
    conn_update_watchers(c);
    /* Still progressing after PUMP_ROUNDS: continue on the next loop
     * iteration so other connections get their turn. */
    if (more) ev_feed_event(c->w->loop, &c->c.io, EV_CUSTOM);
}

/* ---------------------------------------------------------------- events */

/* A socket event: forget the blocks it resolves (so the pump retries only
 * the operations that can now progress), finish a pending connect, pump. */
static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    bs_conn *c = io->data;
    bs_side *s = io == &c->c.io ? &c->c : &c->u;
    uint8_t ready[2] = {(revents & EV_READ) ? BLK_READ : 0, (revents & EV_WRITE) ? BLK_WRITE : 0};
    for (size_t i = 0; i < 2; i++) {
        if (!ready[i]) continue;
        if (s->rd_blk == ready[i]) s->rd_blk = BLK_NONE;
        if (s->wr_blk == ready[i]) s->wr_blk = BLK_NONE;
    }
    if (io == &c->u.io && c->upstream_connecting && (revents & (EV_WRITE | EV_CUSTOM))) {
        if (revents & EV_WRITE) conn_upstream_connected(c);
    }
    conn_pump(c);
}

/* Re-arm the single timer of `c` to fire at absolute time `at`. */
static void conn_timer_at(bs_conn *c, ev_tstamp at)
{
    ev_tstamp now = ev_now(c->w->loop);
    ev_timer_stop(c->w->loop, &c->timer);
    ev_timer_set(&c->timer, at > now ? at - now : 0.001, 0.);
    ev_timer_start(c->w->loop, &c->timer);
}

/* The timer of a connection: connect / handshake deadline while setting up,
 * then idle detection from t_active (re-armed lazily, so the data path never
 * touches the timer). */
static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    bs_conn *c = bs_container_of(t, bs_conn, timer);
    ev_tstamp now = ev_now(loop);
    const bs_limits_config *lim = &c->w->limits;
    if (!c->opened) {
        /* until a TLS client's handshake completes the dial time is t_start */
        ev_tstamp dial = c->t_start + c->dial_delay_s;
        ev_tstamp connect_at = dial + lim->connect_timeout_s;
        ev_tstamp hs_at = dial + lim->handshake_timeout_s;
        if (c->upstream_connecting && now >= connect_at) {
            conn_upstream_failed(c, "connect timeout");
            conn_pump(c);
            return;
        }
        if (now >= hs_at) {
            if (c->pp_pending) {
                conn_pp_reject(c, BS_PROXY_REASON_TIMEOUT,
                               "no complete header within limits.handshake_timeout_s");
                return;
            }
            if (c->l->has_tls && !c->c.ready) {
                conn_client_tls_failed(c, BS_TLS_REASON_TIMEOUT);
            } else if (!c->u.ready) {
                bs_metric_add(c->l->m_upstream_fail, 1);
                if (bs_net_ratelimit(&c->l->last_upstream_log))
                    BS_LOG_WARNF("net", "listener %s: TLS handshake with upstream %s timed out",
                                 c->l->cfg->name, c->l->cfg->upstream.text);
            }
            conn_close(c, false);
            return;
        }
        conn_timer_at(c, c->upstream_connecting && connect_at < hs_at ? connect_at : hs_at);
        return;
    }
    if (c->w->draining) {
        ev_tstamp settle_at = c->t_active + DRAIN_SETTLE_S;
        if (now >= settle_at && conn_quiescent(c)) {
            conn_close(c, true);
            return;
        }
        /* Bytes are still queued somewhere: look again a little later (the
         * grace deadline on the control thread bounds the wait). */
        conn_timer_at(c, now >= settle_at ? now + DRAIN_SETTLE_S : settle_at);
        return;
    }
    const bs_session_ops *ops = c->l->session_ops;
    double left = ops && ops->input_deadline ? ops->input_deadline(c->sess) : -1;
    if (left == 0) {
        bs_metric_add(c->l->m_overdue, 1);
        char peer[64];
        conn_peer(c, peer, sizeof peer);
        BS_LOG_WARNF("net", "listener %s: client %s did not complete its message in time; closing",
                     c->l->cfg->name, peer);
        conn_close(c, false);
        return;
    }
    if (lim->idle_timeout_s <= 0) {
        if (left > 0) conn_timer_at(c, now + left);
        return;
    }
    ev_tstamp idle_at = c->t_active + lim->idle_timeout_s;
    if (left > 0 && now + left < idle_at) {
        conn_timer_at(c, now + left);
        return;
    }
    if (now >= idle_at) {
        bs_metric_add(c->l->m_idle, 1);
        if (bs_log_get_level() <= BS_LOG_DEBUG) {
            char peer[64];
            conn_peer(c, peer, sizeof peer);
            BS_LOG_DEBUGF("net", "listener %s: connection from %s idle for %.0fs; closing",
                          c->l->cfg->name, peer, lim->idle_timeout_s);
        }
        conn_close(c, true);
        return;
    }
    conn_timer_at(c, idle_at);
}

/* ---------------------------------------------------------------- lifecycle */

/* Close both sides and free `c`. clean: send close_notify (best effort, no
 * waiting) on TLS sides whose handshake completed and FIN. */
static void conn_close(bs_conn *c, bool clean)
{
    bs_worker *w = c->w;
    bs_side *sides[] = {&c->c, &c->u};
    if (c->announced) conn_notify(c, BS_CONN_EV_CLOSED, NULL);
    if (c->opened && bs_log_get_level() <= BS_LOG_DEBUG) {
        char peer[64];
        conn_peer(c, peer, sizeof peer);
        BS_LOG_DEBUGF("net", "listener %s: connection from %s closed", c->l->cfg->name, peer);
    }
    for (size_t i = 0; i < 2; i++) {
        bs_side *s = sides[i];
        if (ev_is_active(&s->io)) ev_io_stop(w->loop, &s->io);
        ev_clear_pending(w->loop, &s->io);
        if (s->ssl) {
            if (clean && s->ready && !s->wr_done && SSL_is_init_finished(s->ssl)) {
                if (SSL_shutdown(s->ssl) < 0) ERR_clear_error();
            }
            SSL_free(s->ssl);
        }
        if (s->fd >= 0) close(s->fd);
    }
    ev_timer_stop(w->loop, &c->timer);
    ev_clear_pending(w->loop, &c->timer);
    if (c->l->session_ops && (c->sess || c->opened)) c->l->session_ops->close(c->sess);
    bs_buf **all[] = {&c->c2u, &c->u2c, &c->cin, &c->uin};
    for (size_t i = 0; i < BS_ARRAY_LEN(all); i++)
        if (*all[i]) buf_put(w, *all[i]);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->n_conns--;
    atomic_fetch_sub(&w->srv->n_open, 1);
    bs_metric_add(c->l->m_open, -1);
    free(c->principal);
    if (c->pp) free(c->pp->hdr);
    free(c->pp);
    free(c);
    if (w->draining && w->n_conns == 0) ev_break(w->loop, EVBREAK_ALL);
}

/* Stop accepting on `wl` for ACCEPT_PAUSE_S after resource exhaustion
 * (`err`) at accept, or at the upstream socket when `upstream`, or restart
 * a running pause: counted each time (brokerside_accept_pauses_total, label
 * at="accept" or "upstream"), logged at most once per second. A no-op once
 * `wl` is closed (draining). */
static void accept_pause(struct ev_loop *loop, bs_wlistener *wl, int err, bool upstream)
{
    bs_listener *l = wl->l;
    if (wl->fd < 0) return;
    bs_metric_add(upstream ? l->m_pauses_upstream : l->m_pauses_accept, 1);
    if (bs_net_ratelimit(&l->last_limit_log))
        BS_LOG_ERRORF("net", "listener %s: %s; pausing accepts for %.0f ms", l->cfg->name,
                      strerror(err), ACCEPT_PAUSE_S * 1000);
    ev_io_stop(loop, &wl->io);
    ev_timer_stop(loop, &wl->pause); /* ev_timer_set needs an inactive watcher */
    ev_timer_set(&wl->pause, ACCEPT_PAUSE_S, 0.);
    ev_timer_start(loop, &wl->pause);
}

/* proxy_protocol listener: true when `peer`, the address accept() gave for
 * socket `fd` (valid even if the peer already reset the connection), lies in
 * the listener's proxy_protocol_sources. Otherwise the socket is closed
 * before a byte is read, counted and logged, and false returned: only the
 * load balancers may speak for clients. */
static bool accept_pp_source_ok(bs_server *srv, bs_listener *l, int fd,
                                const struct sockaddr_storage *peer_ss)
{
    if (bs_cidr_match(l->cfg->proxy_sources, l->cfg->n_proxy_sources,
                      (const struct sockaddr *)peer_ss))
        return true;
    char peer[64] = "?";
    bs_net_format_addr((const struct sockaddr *)peer_ss, peer, sizeof peer);
    bs_metric_add(l->m_pp_rejected[0], 1); /* BS_PROXY_REASON_UNTRUSTED */
    BS_LOG_WARNF("net",
                 "PROXY protocol: closing connection from %s on listener %s: %s (not in "
                 "proxy_protocol_sources)",
                 peer, l->cfg->name, BS_PROXY_REASON_UNTRUSTED);
    close(fd);
    /* No bs_conn is made, but the refusal gets an id of its own so that its
     * audit event names a connection like every other connection event. */
    if (srv->observer)
        pp_notify_rejected(srv, l, atomic_fetch_add(&srv->next_conn_id, 1) + 1, peer_ss,
                           BS_PROXY_REASON_UNTRUSTED, "not in proxy_protocol_sources");
    return false;
}

/* Accept a burst of clients on one listening socket (worker thread). Over
 * the process-wide limit a client is accepted and closed at once, counted
 * and logged at most once per second. */
void bs_net_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    bs_wlistener *wl = bs_container_of(io, bs_wlistener, io);
    bs_listener *l = wl->l;
    bs_worker *w = wl->w;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer_ss = {0};
        socklen_t peer_len = sizeof peer_ss;
        int fd = accept4(wl->fd, (struct sockaddr *)&peer_ss, &peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays queued and the socket stays
                 * readable: without a pause this would spin. */
                accept_pause(loop, wl, errno, false);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                BS_LOG_WARNF("net", "listener %s: accept: %s", l->cfg->name, strerror(errno));
            }
            return;
        }
        bool pp = l->cfg->proxy_protocol;
        if (pp && !accept_pp_source_ok(w->srv, l, fd, &peer_ss)) continue;
        unsigned open_now = atomic_fetch_add(&w->srv->n_open, 1) + 1;
        if (open_now > w->limits.max_connections) {
            atomic_fetch_sub(&w->srv->n_open, 1);
            bs_metric_add(l->m_rejected_limit, 1);
            if (bs_net_ratelimit(&l->last_limit_log)) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof ss;
                char peer[64] = "?";
                if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
                    bs_net_format_addr((struct sockaddr *)&ss, peer, sizeof peer);
                BS_LOG_WARNF("net", "listener %s: connection limit %u reached; refusing %s",
                             l->cfg->name, w->limits.max_connections, peer);
            }
            close(fd);
            continue;
        }
        bs_conn *c = calloc(1, sizeof *c);
        if (!c) {
            atomic_fetch_sub(&w->srv->n_open, 1);
            close(fd);
            BS_LOG_ERRORF("net", "listener %s: out of memory accepting a connection", l->cfg->name);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->w = w;
        c->l = l;
        c->c.fd = fd;
        c->u.fd = -1;
        /* TLS, or a PROXY header first: the client side is not ready yet. */
        c->peeked = !l->has_tls && !pp;
        c->c.ready = !l->has_tls && !pp;
        if (pp) {
            c->pp = calloc(1, sizeof *c->pp);
            if (c->pp) {
                c->pp->hdr = malloc(BS_PROXY_HEADER_MAX);
                c->pp->src = peer_ss;
            }
            if (!c->pp || !c->pp->hdr) {
                if (c->pp) free(c->pp);
                free(c);
                atomic_fetch_sub(&w->srv->n_open, 1);
                close(fd);
                BS_LOG_ERRORF("net", "listener %s: out of memory accepting a connection",
                              l->cfg->name);
                return;
            }
            c->pp_pending = true;
        }
        c->t_start = c->t_active = ev_now(loop);
        c->id = atomic_fetch_add(&w->srv->next_conn_id, 1) + 1;
        ev_io_init(&c->c.io, conn_io_cb, fd, EV_READ);
        c->c.io.data = c;
        ev_init(&c->timer, conn_timer_cb);
        c->next = w->conns;
        if (w->conns) w->conns->prev = c;
        w->conns = c;
        w->n_conns++;
        bs_metric_add(l->m_open, 1);
        bs_metric_add(l->m_total, 1);
        /* Plaintext: dial the upstream now. TLS: after the client's handshake;
         * PROXY protocol: after the header (and the handshake) (conn_pump).
         * Header and handshake share the handshake deadline from accept. */
        bool dial_now = !l->has_tls && !pp;
        int sock_err = dial_now ? conn_connect_upstream(c) : 0;
        double first = w->limits.handshake_timeout_s;
        if (dial_now && w->limits.connect_timeout_s < first) first = w->limits.connect_timeout_s;
        conn_timer_at(c, c->t_start + first);
        if (dial_now) conn_notify(c, BS_CONN_EV_ACCEPTED, NULL);
        conn_pump(c); /* may free c */
        if (sock_err == EMFILE || sock_err == ENFILE) {
            /* Accepting more clients now would only churn: each would be
             * closed for want of an upstream socket. */
            accept_pause(loop, wl, sock_err, true);
            return;
        }
    }
}

/* The accept pause is over: listen again unless the socket was closed meanwhile. */
void bs_net_accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    bs_wlistener *wl = bs_container_of(t, bs_wlistener, pause);
    if (wl->fd >= 0) ev_io_start(loop, &wl->io);
}

/* Enter drain mode. Open connections are closed by their timer once
 * quiescent and quiet for DRAIN_SETTLE_S (at once if they already are).
 * Connections still being set up are left to finish, so a client that
 * connected just before the shutdown is served instead of seeing its
 * handshake cut (its first request usually follows the handshake at once). */
void bs_net_worker_drain(bs_worker *w)
{
    w->draining = true;
    bs_conn *c = w->conns;
    ev_tstamp now = ev_now(w->loop);
    while (c) {
        bs_conn *next = c->next;
        /* A connection still being set up (TLS handshake, upstream connect)
         * keeps its handshake and connect timeouts; once open it drains like
         * the others (conn_pump arms the settle timer). The grace period
         * bounds everything. */
        if (c->opened) {
            if (now - c->t_active >= DRAIN_SETTLE_S && conn_quiescent(c))
                conn_close(c, true);
            else
                conn_timer_at(c, c->t_active + DRAIN_SETTLE_S);
        }
        c = next;
    }
    if (w->n_conns == 0) ev_break(w->loop, EVBREAK_ALL);
}

/* Close every connection now (close_notify where possible, no waiting). */
void bs_net_worker_close_all(bs_worker *w)
{
    while (w->conns)
        conn_close(w->conns, true);
}
