/*
 * admin.c - the HTTP admin endpoint (see admin.h).
 *
 * Deliberately minimal HTTP/1.x: one request per connection, GET and HEAD,
 * every response sent with Content-Length and `Connection: close`. Each
 * connection owns a fixed BS_ADMIN_MAX_HEAD-byte head buffer and one timer
 * covering its whole life, so memory and time per client are bounded and
 * the control thread is never held by a slow or hostile peer.
 *
 * Connection life: READ (collect the head, re-parsed from the start on each
 * read; heads are small) -> WRITE (send the response) -> DRAIN (after
 * shutdown(SHUT_WR), read and discard until the peer closes, so that unread
 * request bytes do not make the kernel send an RST that would destroy the
 * response in flight) -> closed.
 */
#include "brokerside/admin.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/cursor.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/version.h"

#define MOD "admin"
/* Per accept callback: bounded so one burst cannot monopolise the loop. */
#define ACCEPT_BATCH 32
/* Back-off when the process is out of descriptors (the listening socket
 * would stay readable and spin the loop otherwise). */
#define ACCEPT_PAUSE_S 1.0
#define WHY_MAX 256

typedef enum conn_state {
    ST_READ = 0,
    ST_WRITE = 1,
    ST_DRAIN = 2,
} conn_state;

typedef struct admin_conn {
    bs_admin *admin;
    struct admin_conn *prev, *next;
    int fd;
    ev_io io;
    ev_timer timer;
    conn_state state;
    bs_wbuf out;
    size_t out_off;
    size_t in_len;
    uint8_t in[BS_ADMIN_MAX_HEAD];
} admin_conn;

struct bs_admin {
    struct ev_loop *loop;
    int fd;
    unsigned port;
    ev_io accept_io;
    ev_timer accept_pause;
    bs_admin_hooks hooks;
    double timeout_s;
    struct timespec started;
    admin_conn *conns;
    size_t n_conns;
    bs_metric *m_conns;    /* gauge: open admin connections */
    bs_metric *m_rejected; /* counter: connections refused over the limit */
};

typedef bs_admin_request request;

/* Next line of the cursor (LF or CRLF terminated; the terminator is not part
 * of *line). BS_E_SHORT without moving if no LF is buffered yet. */
static bs_status read_line(bs_cursor *c, const uint8_t **line, size_t *len)
{
    BS_GUARD(bs_cursor_take_until(c, '\n', line, len));
    if (*len > 0 && (*line)[*len - 1] == '\r') (*len)--;
    return BS_OK;
}

/* A request-target byte: visible ASCII. */
static bool is_target_byte(uint8_t b)
{
    return b >= 0x21 && b <= 0x7e;
}

/* A header-value byte: HTAB or any byte but the controls and DEL. */
static bool is_field_value_byte(uint8_t b)
{
    return b == '\t' || (b >= 0x20 && b != 0x7f);
}

/* A byte of a request line still being received: printable ASCII. */
static bool is_request_line_byte(uint8_t b)
{
    return b >= 0x20 && b < 0x7f;
}

/* Parse `method SP target SP HTTP/1.x` strictly (single spaces, origin-form
 * target of visible ASCII). BS_E_MALFORMED on any deviation. */
static bs_status parse_request_line(const uint8_t *line, size_t len, request *rq)
{
    bs_cursor c;
    bs_cursor_init(&c, line, len);
    rq->method_len = bs_cursor_take_while(&c, bs_byte_is_tchar, &rq->method);
    BS_ENSURE(rq->method_len > 0, BS_E_MALFORMED);
    BS_ENSURE(bs_cursor_accept(&c, " ", 1), BS_E_MALFORMED);

    const uint8_t *target;
    size_t target_len = bs_cursor_take_while(&c, is_target_byte, &target);
    BS_ENSURE(target_len > 0 && target[0] == '/', BS_E_MALFORMED);
    const uint8_t *query = memchr(target, '?', target_len);
    rq->path = target;
    rq->path_len = query ? (size_t)(query - target) : target_len;
    BS_ENSURE(bs_cursor_accept(&c, " ", 1), BS_E_MALFORMED);

    BS_ENSURE(bs_cursor_accept(&c, "HTTP/1.", 7), BS_E_MALFORMED);
    uint64_t minor;
    BS_ENSURE(bs_cursor_parse_decimal(&c, 1, 1, 1, &minor) == BS_OK, BS_E_MALFORMED);
    BS_ENSURE(bs_cursor_remaining(&c) == 0, BS_E_MALFORMED);
    rq->minor_version = (int)minor;
    return BS_OK;
}

/* Validate one header line `name: value` (no obs-fold, no control bytes).
 * Sets *is_host when the name is Host (case-insensitive). */
static bs_status check_header(const uint8_t *line, size_t len, bool *is_host)
{
    bs_cursor c;
    bs_cursor_init(&c, line, len);
    const uint8_t *name;
    size_t name_len = bs_cursor_take_while(&c, bs_byte_is_tchar, &name);
    /* No name, whitespace before the colon, or a continuation line. */
    BS_ENSURE(name_len > 0 && bs_cursor_accept(&c, ":", 1), BS_E_MALFORMED);
    *is_host = (name_len == 4 && strncasecmp((const char *)name, "host", 4) == 0);
    const uint8_t *value;
    (void)bs_cursor_take_while(&c, is_field_value_byte, &value);
    BS_ENSURE(bs_cursor_remaining(&c) == 0, BS_E_MALFORMED);
    return BS_OK;
}

/* See admin.h. */
bs_status bs_admin_parse_head(const void *buf, size_t len, bs_admin_request *rq)
{
    if (len == 0) return BS_E_SHORT; /* buf may be NULL then: no pointer arithmetic on it */
    bs_cursor c;
    bs_cursor_init(&c, buf, len);
    const uint8_t *line;
    size_t n;
    /* RFC 9112 2.2: ignore empty lines before the request line. */
    do {
        bs_status st = read_line(&c, &line, &n);
        if (st == BS_E_SHORT) {
            /* Reject a request line that is already invalid (binary, e.g. a
             * TLS ClientHello) instead of waiting for the limit or timeout;
             * a CR may end what has arrived so far. */
            const uint8_t *part;
            (void)bs_cursor_take_while(&c, is_request_line_byte, &part);
            (void)bs_cursor_accept(&c, "\r", 1);
            BS_ENSURE(bs_cursor_remaining(&c) == 0, BS_E_MALFORMED);
        }
        BS_GUARD(st);
    } while (n == 0);
    BS_GUARD(parse_request_line(line, n, rq));
    size_t hosts = 0;
    for (;;) {
        BS_GUARD(read_line(&c, &line, &n));
        if (n == 0) break;
        bool is_host = false;
        BS_GUARD(check_header(line, n, &is_host));
        hosts += is_host;
    }
    /* RFC 9112 3.2: an HTTP/1.1 request needs exactly one Host header. */
    BS_ENSURE(hosts <= 1 && (rq->minor_version == 0 || hosts == 1), BS_E_MALFORMED);
    rq->head_len = c.pos;
    return BS_OK;
}

/* The standard reason phrase for the status codes this endpoint sends. */
static const char *reason_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    }
    return "Unknown";
}

/* Count a response by status code (registered lazily: few codes exist). */
static void count_response(int code)
{
    char codebuf[8];
    snprintf(codebuf, sizeof codebuf, "%d", code);
    bs_metric_add(bs_metrics_counter_kv("brokerside_admin_responses_total",
                                        "Admin HTTP responses sent, by status code.", "code",
                                        codebuf, NULL),
                  1);
}

/* Replace c->out with a full response. `extra` is extra header lines (each
 * ending in CRLF) or NULL. With head_only the body is omitted but
 * Content-Length still states its size (RFC 9110 9.3.2). */
static void build_response(admin_conn *c, int code, const char *ctype, const char *extra,
                           const void *body, size_t body_len, bool head_only)
{
    bs_wbuf_reset(&c->out);
    c->out_off = 0;
    bs_wbuf_printf(&c->out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                   code, reason_phrase(code), ctype, body_len, extra ? extra : "");
    if (!head_only) bs_wbuf_put(&c->out, body, body_len);
    count_response(code);
}

/* Unlink, close and free a connection. */
static void conn_close(admin_conn *c)
{
    bs_admin *a = c->admin;
    ev_io_stop(a->loop, &c->io);
    ev_timer_stop(a->loop, &c->timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    a->n_conns--;
    bs_metric_add(a->m_conns, -1);
    bs_wbuf_free(&c->out);
    free(c);
}

/* Re-arm the connection's I/O watcher for `events`. */
static void conn_watch(admin_conn *c, int events)
{
    ev_io_stop(c->admin->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(c->admin->loop, &c->io);
}

/* Send what is left of c->out; on completion half-close and drain. May free
 * the connection: callers must not touch c afterwards. */
static void conn_flush(admin_conn *c)
{
    if (c->out.failed) {
        /* No memory even for the response head: a truncated response would
         * be worse than none, so just close. */
        BS_LOG_WARNF(MOD, "out of memory building a response; closing");
        conn_close(c);
        return;
    }
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state != ST_WRITE) {
                c->state = ST_WRITE;
                conn_watch(c, EV_WRITE);
            }
            return;
        }
        conn_close(c); /* peer gone: nothing more to do */
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = ST_DRAIN;
    conn_watch(c, EV_READ);
}

/* Build the /status document into body. */
static void render_status(bs_admin *a, bs_wbuf *body)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long up = (long long)(now.tv_sec - a->started.tv_sec);
    if (now.tv_nsec < a->started.tv_nsec) up--;
    bs_wbuf_put_str(body, "{\"version\":");
    bs_wbuf_put_json_string(body, BS_VERSION, strlen(BS_VERSION));
    bs_wbuf_printf(body, ",\"uptime_s\":%lld", up < 0 ? 0 : up);
    if (a->hooks.status_json) a->hooks.status_json(a->hooks.ctx, body);
    bs_wbuf_put_str(body, ",\"metrics\":");
    bs_status st = bs_metrics_render_json(body);
    (void)st; /* failure is sticky in `body`; the caller checks it once */
    bs_wbuf_put_str(body, "}\n");
}

/* True if the request path (query already cut off) equals `lit` exactly. */
static bool path_is(const request *rq, const char *lit)
{
    size_t n = strlen(lit);
    return rq->path_len == n && memcmp(rq->path, lit, n) == 0;
}

/* Produce the response for a complete, well-formed request into c->out. */
static void route(admin_conn *c, const request *rq)
{
    bs_admin *a = c->admin;
    static const char text[] = "text/plain; charset=utf-8";
    bool head = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
    bool get = rq->method_len == 3 && memcmp(rq->method, "GET", 3) == 0;
    if (!get && !head) {
        static const char msg[] = "method not allowed\n";
        build_response(c, 405, text, "Allow: GET, HEAD\r\n", msg, sizeof msg - 1, false);
        return;
    }
    if (path_is(rq, "/healthz")) {
        build_response(c, 200, text, NULL, "ok\n", 3, head);
        return;
    }
    if (path_is(rq, "/readyz")) {
        char why[WHY_MAX] = "";
        bool ready = a->hooks.ready ? a->hooks.ready(a->hooks.ctx, why, sizeof why) : true;
        if (ready) {
            build_response(c, 200, text, NULL, "ready\n", 6, head);
            return;
        }
        why[sizeof why - 1] = 0; /* the hook might not terminate on truncation */
        char body[WHY_MAX + 16];
        int n = snprintf(body, sizeof body, "not ready: %s", why[0] ? why : "unknown");
        size_t bl = n < 0 ? 0 : (size_t)n < sizeof body - 1 ? (size_t)n : sizeof body - 2;
        /* One line of plain text whatever the hook wrote. */
        for (size_t i = 0; i < bl; i++)
            if ((unsigned char)body[i] < 0x20 || body[i] == 0x7f) body[i] = ' ';
        body[bl++] = '\n';
        build_response(c, 503, text, NULL, body, bl, head);
        return;
    }
    if (path_is(rq, "/metrics") || path_is(rq, "/status")) {
        bool metrics = path_is(rq, "/metrics");
        bs_wbuf body;
        bs_wbuf_init(&body, 0);
        bs_status st;
        if (metrics) {
            st = bs_metrics_render_prometheus(&body);
        } else {
            render_status(a, &body);
            st = bs_wbuf_status(&body);
        }
        if (st != BS_OK) {
            BS_LOG_ERRORF(MOD, "rendering %s failed: %s", metrics ? "/metrics" : "/status",
                          bs_status_name(st));
            static const char msg[] = "internal error\n";
            build_response(c, 500, text, NULL, msg, sizeof msg - 1, head);
        } else {
            build_response(
                c, 200, metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json",
                NULL, body.data, body.len, head);
        }
        bs_wbuf_free(&body);
        return;
    }
    static const char msg[] = "not found\n";
    build_response(c, 404, text, NULL, msg, sizeof msg - 1, head);
}

/* A canned 400 for a malformed or oversized head. */
static void bad_request(admin_conn *c, const char *msg)
{
    build_response(c, 400, "text/plain; charset=utf-8", NULL, msg, strlen(msg), false);
}

/* Readable while collecting the head. May free c. */
static void conn_on_read(admin_conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        /* EOF or error before a complete request: nobody to answer. */
        conn_close(c);
        return;
    }
    c->in_len += (size_t)n;
    request rq;
    bs_status st = bs_admin_parse_head(c->in, c->in_len, &rq);
    if (st == BS_E_SHORT && c->in_len < sizeof c->in) return;
    if (st == BS_OK)
        route(c, &rq);
    else if (st == BS_E_SHORT)
        bad_request(c, "request head too large\n");
    else
        bad_request(c, "bad request\n");
    /* Ignore anything after the head (bodies, pipelined requests): we close. */
    conn_flush(c);
}

/* Readable after the response: discard until the peer closes. May free c. */
static void conn_on_drain(admin_conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in, sizeof c->in, 0);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        conn_close(c);
        return;
    }
}

/* libev I/O callback of a connection: dispatch on its state. May free it. */
static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    admin_conn *c = bs_container_of(w, admin_conn, io);
    switch (c->state) {
    case ST_READ:
        conn_on_read(c);
        break;
    case ST_WRITE:
        conn_flush(c);
        break;
    case ST_DRAIN:
        conn_on_drain(c);
        break;
    }
}

/* The connection's total time is up. A client still sending its head gets a
 * best-effort 408 (one non-blocking send); in every state the connection is
 * then closed. */
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    admin_conn *c = bs_container_of(w, admin_conn, timer);
    if (c->state == ST_READ) {
        static const char msg[] = "request timeout\n";
        build_response(c, 408, "text/plain; charset=utf-8", NULL, msg, sizeof msg - 1, false);
        if (!c->out.failed) {
            ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)n; /* best effort: the peer may be gone or not reading */
        }
    }
    conn_close(c);
}

/* The listening socket is readable: accept up to ACCEPT_BATCH clients,
 * closing those over BS_ADMIN_MAX_CONNS; pause accepting when out of
 * descriptors or memory. */
static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    bs_admin *a = bs_container_of(w, bs_admin, accept_io);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                BS_LOG_WARNF(MOD, "accept: %s; pausing for %.0f s", strerror(errno),
                             ACCEPT_PAUSE_S);
                ev_io_stop(loop, &a->accept_io);
                ev_timer_set(&a->accept_pause, ACCEPT_PAUSE_S, 0);
                ev_timer_start(loop, &a->accept_pause);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                BS_LOG_WARNF(MOD, "accept: %s", strerror(errno));
            }
            return;
        }
        if (a->n_conns >= BS_ADMIN_MAX_CONNS) {
            /* Accept-and-close keeps the backlog from filling with clients
             * that would wait forever. */
            close(fd);
            bs_metric_add(a->m_rejected, 1);
            continue;
        }
        admin_conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            BS_LOG_WARNF(MOD, "out of memory accepting a connection");
            continue;
        }
        c->admin = a;
        c->fd = fd;
        c->state = ST_READ;
        c->in_len = 0;
        c->out_off = 0;
        bs_wbuf_init(&c->out, 0);
        c->prev = NULL;
        c->next = a->conns;
        if (a->conns) a->conns->prev = c;
        a->conns = c;
        a->n_conns++;
        bs_metric_add(a->m_conns, 1);
        ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
        ev_timer_init(&c->timer, conn_timer_cb, a->timeout_s, 0);
        ev_timer_start(loop, &c->timer);
    }
}

/* End of an accept pause: listen again. */
static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    bs_admin *a = bs_container_of(w, bs_admin, accept_pause);
    ev_io_start(loop, &a->accept_io);
}

/* Create, bind and listen the socket for `ep`; *port_out gets the real
 * port. BS_E_IO with err set on failure (no descriptor leaked). */
static bs_status open_listener(const bs_endpoint *ep, int *fd_out, unsigned *port_out, char *err,
                               size_t errlen)
{
    const char *what = "socket";
    const char *text = ep->text ? ep->text : "(admin bind)";
    int fd = socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    int one = 1;
    what = "setsockopt(SO_REUSEADDR)";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) goto fail;
    what = "bind";
    if (bind(fd, (const struct sockaddr *)&ep->addr, ep->addrlen) < 0) goto fail;
    what = "listen";
    if (listen(fd, 128) < 0) goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    what = "getsockname";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) goto fail;
    *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return BS_OK;
fail:
    if (err && errlen) snprintf(err, errlen, "admin %s: %s: %s", text, what, strerror(errno));
    if (fd >= 0) close(fd);
    return BS_E_IO;
}

/* See admin.h. */
bs_status bs_admin_start(struct ev_loop *loop, const bs_admin_config *cfg,
                         const bs_admin_hooks *hooks, bs_admin **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen) err[0] = 0;
    if (!loop || !cfg || !cfg->enabled) {
        if (err && errlen) snprintf(err, errlen, "admin endpoint not enabled");
        return BS_E_CONFIG;
    }
    if (cfg->bind.addr.ss_family != AF_INET && cfg->bind.addr.ss_family != AF_INET6) {
        if (err && errlen) snprintf(err, errlen, "admin bind: not an IPv4 or IPv6 address");
        return BS_E_CONFIG;
    }
    bs_admin *a = calloc(1, sizeof *a);
    if (!a) return BS_E_NOMEM;
    bs_status st = open_listener(&cfg->bind, &a->fd, &a->port, err, errlen);
    if (st != BS_OK) {
        free(a);
        return st;
    }
    a->loop = loop;
    if (hooks) a->hooks = *hooks;
    a->timeout_s = BS_ADMIN_REQUEST_TIMEOUT_S;
    clock_gettime(CLOCK_MONOTONIC, &a->started);
    a->m_conns =
        bs_metrics_gauge("brokerside_admin_connections", "Open admin HTTP connections.", NULL);
    a->m_rejected =
        bs_metrics_counter("brokerside_admin_connections_rejected_total",
                           "Admin connections closed at once because too many were open.", NULL);
    ev_io_init(&a->accept_io, accept_cb, a->fd, EV_READ);
    ev_io_start(loop, &a->accept_io);
    ev_timer_init(&a->accept_pause, accept_pause_cb, ACCEPT_PAUSE_S, 0);
    BS_LOG_INFOF(MOD, "admin endpoint listening on %s (port %u)",
                 cfg->bind.text ? cfg->bind.text : "?", a->port);
    *out = a;
    return BS_OK;
}

/* See admin.h. */
unsigned bs_admin_port(const bs_admin *admin)
{
    return admin ? admin->port : 0;
}

/* See admin.h. */
void bs_admin_set_request_timeout(bs_admin *admin, double seconds)
{
    if (admin && seconds > 0) admin->timeout_s = seconds;
}

/* See admin.h. */
void bs_admin_stop(bs_admin *admin)
{
    if (!admin) return;
    ev_io_stop(admin->loop, &admin->accept_io);
    ev_timer_stop(admin->loop, &admin->accept_pause);
    close(admin->fd);
    while (admin->conns)
        conn_close(admin->conns);
    free(admin);
}
