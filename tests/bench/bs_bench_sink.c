/*
 * bs_bench_sink.c - loopback byte sink / echo server for `make bench`.
 *
 * Usage: bs_bench_sink [--mode sink|echo] [--port N] [--max-conns N]
 *
 * Listens on 127.0.0.1 (loopback only: the benchmark never leaves the
 * machine) in plaintext TCP, one thread, epoll, non-blocking sockets.
 *   sink: read and discard everything, count the bytes.
 *   echo: write back every byte read on the same connection; a connection
 *         whose peer does not read its echo stops being read (bounded buffer
 *         per connection, real backpressure, nothing dropped).
 * Once listening it prints "PORT <n>" on stdout (port 0 = the kernel picks a
 * free one), so the harness never needs a fixed port. SIGTERM or SIGINT make
 * it print "bytes_in <n> bytes_out <n> conns <n>" on stderr and exit 0.
 * Any setup failure exits 1 with a message naming the failing call.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "brokerside/status.h"

#define SINK_READ_BYTES (256 * 1024) /* one shared read buffer in sink mode */
#define ECHO_BUF_BYTES (64 * 1024)   /* per-connection pending echo, allocated on demand */
#define MAX_EVENTS 256
#define DEFAULT_MAX_CONNS 19000 /* fits the 20,000 open-file limit with room for the listener */

typedef enum sink_mode { MODE_SINK, MODE_ECHO } sink_mode;

/* One accepted connection. In echo mode `buf` holds bytes read but not yet
 * written back ([off, len) is pending); it is freed whenever it drains, so
 * thousands of idle connections cost no buffer memory. */
typedef struct sink_conn {
    struct sink_conn *prev, *next; /* list of open connections, freed at exit */
    int fd;
    uint8_t *buf;
    size_t off, len;
    uint32_t events; /* what the fd is registered for right now */
} sink_conn;

typedef struct sink_state {
    sink_mode mode;
    int ep;
    int lfd;
    sink_conn *conns; /* head of the open-connection list */
    size_t n_conns, max_conns;
    uint64_t bytes_in, bytes_out, conns_total;
    uint8_t *rbuf;
} sink_state;

static volatile sig_atomic_t g_stop;

/* Signal handler for SIGTERM/SIGINT: only sets the stop flag; the loop
 * notices it when epoll_wait returns EINTR. */
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Raise the soft open-file limit to the hard limit (the benchmark holds up to
 * 5,000 connections per tool). Failure is reported but not fatal: the run
 * then fails later with a clear accept() error if the limit is too low. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("bs_bench_sink: getrlimit(RLIMIT_NOFILE)");
        return;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("bs_bench_sink: setrlimit(RLIMIT_NOFILE)");
}

/* Register or modify `c` in the epoll set for `want` (non-zero) events.
 * Returns BS_E_IO
 * with errno set if epoll_ctl fails. */
static BS_WUR bs_status conn_watch(sink_state *s, sink_conn *c, uint32_t want)
{
    if (c->events == want) return BS_OK;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    int op = c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(s->ep, op, c->fd, &ev) != 0) return BS_E_IO;
    c->events = want;
    return BS_OK;
}

/* Close and free a connection. The caller must not use `c` afterwards. */
static void conn_close(sink_state *s, sink_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    close(c->fd); /* closing removes it from the epoll set */
    free(c->buf);
    free(c);
    s->n_conns--;
}

/* Accept every pending connection (the listener is non-blocking). Over
 * max_conns, a new connection is closed at once with a message: the harness
 * sees the failure instead of a hang. Returns BS_E_IO only for errors of the
 * listener itself. */
static BS_WUR bs_status accept_all(sink_state *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return BS_OK;
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                perror("bs_bench_sink: accept (out of descriptors)");
                return BS_OK;
            }
            return BS_E_IO;
        }
        if (s->n_conns >= s->max_conns) {
            fprintf(stderr, "bs_bench_sink: connection limit %zu reached, closing new one\n",
                    s->max_conns);
            close(fd);
            continue;
        }
        int one = 1;
        /* Echo replies must leave at once for the round-trip measurement. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sink_conn *c = calloc(1, sizeof *c);
        if (!c) {
            fprintf(stderr, "bs_bench_sink: out of memory for a connection\n");
            close(fd);
            continue;
        }
        c->fd = fd;
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        s->conns_total++;
        if (conn_watch(s, c, EPOLLIN | EPOLLRDHUP) != BS_OK) {
            perror("bs_bench_sink: epoll_ctl(add)");
            conn_close(s, c);
        }
    }
}

/* Write as much of c's pending echo as the socket takes. Sets *closed when
 * the connection failed and was closed (the caller must drop `c`). */
static void echo_flush(sink_state *s, sink_conn *c, bool *closed)
{
    *closed = false;
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_close(s, c);
            *closed = true;
            return;
        }
        c->off += (size_t)n;
        s->bytes_out += (uint64_t)n;
    }
    if (c->off == c->len) {
        free(c->buf);
        c->buf = NULL;
        c->off = c->len = 0;
    }
    /* Read again only when everything read so far has been echoed: that is
     * the backpressure towards a peer that does not read its replies. While
     * output is pending, RDHUP is not watched: a half-closed peer would
     * otherwise report it on every wait (level-triggered) and spin. */
    uint32_t want = c->len ? EPOLLOUT : (EPOLLIN | EPOLLRDHUP);
    if (conn_watch(s, c, want) != BS_OK) {
        perror("bs_bench_sink: epoll_ctl(mod)");
        conn_close(s, c);
        *closed = true;
    }
}

/* Handle readiness on a connection: drain it (sink) or read one buffer and
 * echo it (echo). A peer close or error closes the connection. */
static void conn_ready(sink_state *s, sink_conn *c, uint32_t events)
{
    bool closed = false;
    if (s->mode == MODE_ECHO && c->len) {
        /* Pending echo: only writability (or HUP/ERR, where send fails and
         * closes) is watched now. */
        echo_flush(s, c, &closed);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    if (s->mode == MODE_SINK) {
        /* Bounded: at most 64 reads per wakeup so one fast connection cannot
         * starve the others. */
        for (int i = 0; i < 64; i++) {
            ssize_t n = recv(c->fd, s->rbuf, SINK_READ_BYTES, 0);
            if (n > 0) {
                s->bytes_in += (uint64_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            conn_close(s, c); /* EOF or error */
            return;
        }
        return;
    }
    if (!c->buf) {
        c->buf = malloc(ECHO_BUF_BYTES);
        if (!c->buf) {
            fprintf(stderr, "bs_bench_sink: out of memory for an echo buffer\n");
            conn_close(s, c);
            return;
        }
    }
    ssize_t n;
    do {
        n = recv(c->fd, c->buf, ECHO_BUF_BYTES, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
        conn_close(s, c);
        return;
    }
    s->bytes_in += (uint64_t)n;
    c->off = 0;
    c->len = (size_t)n;
    echo_flush(s, c, &closed);
}

/* Parse a decimal option value in [lo, hi]; exits with a usage message on
 * anything else. */
static unsigned long parse_num(const char *opt, const char *v, unsigned long lo, unsigned long hi)
{
    char *end = NULL;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || !end || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "bs_bench_sink: %s wants a number in [%lu, %lu], got '%s'\n", opt, lo, hi,
                v);
        exit(2);
    }
    return x;
}

/* Print usage to stderr. */
static void usage(void)
{
    fprintf(stderr, "usage: bs_bench_sink [--mode sink|echo] [--port N] [--max-conns N]\n");
}

/* Open the non-blocking loopback listener on `port` and store the bound port
 * in *bound. Returns BS_E_IO (errno set) naming nothing; the caller reports. */
static BS_WUR bs_status listen_loopback(uint16_t port, int *lfd_out, uint16_t *bound)
{
    bs_status st = BS_E_IO;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return BS_E_IO;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto out;
    if (listen(fd, 4096) != 0) goto out;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) goto out;
    *bound = ntohs(sa.sin_port);
    *lfd_out = fd;
    fd = -1;
    st = BS_OK;
out:
    if (fd >= 0) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return st;
}

/* Entry point: parse options, listen, announce the port, serve until
 * signalled, print the byte counts. Exit 0 on a clean stop, 1 on a runtime
 * error, 2 on bad usage. */
int main(int argc, char **argv)
{
    sink_state s = {.mode = MODE_SINK, .ep = -1, .lfd = -1, .max_conns = DEFAULT_MAX_CONNS};
    unsigned long port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "sink") == 0)
                s.mode = MODE_SINK;
            else if (strcmp(v, "echo") == 0)
                s.mode = MODE_ECHO;
            else {
                fprintf(stderr, "bs_bench_sink: --mode is sink or echo, got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--port") == 0) {
            port = parse_num(a, v, 0, 65535);
        } else if (strcmp(a, "--max-conns") == 0) {
            s.max_conns = parse_num(a, v, 1, 1000000);
        } else {
            usage();
            return 2;
        }
    }
    raise_nofile();
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    uint16_t bound = 0;
    s.rbuf = malloc(SINK_READ_BYTES);
    if (!s.rbuf) {
        fprintf(stderr, "bs_bench_sink: out of memory\n");
        goto out;
    }
    if (listen_loopback((uint16_t)port, &s.lfd, &bound) != BS_OK) {
        fprintf(stderr, "bs_bench_sink: listen on 127.0.0.1:%lu: %s\n", port, strerror(errno));
        goto out;
    }
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    if (s.ep < 0) {
        perror("bs_bench_sink: epoll_create1");
        goto out;
    }
    /* The listener is the only epoll entry whose data.ptr is NULL. */
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.lfd, &lev) != 0) {
        perror("bs_bench_sink: epoll_ctl(listener)");
        goto out;
    }
    printf("PORT %u\n", bound);
    fflush(stdout);

    struct epoll_event evs[MAX_EVENTS];
    while (!g_stop) {
        int n = epoll_wait(s.ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("bs_bench_sink: epoll_wait");
            goto out;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                if (accept_all(&s) != BS_OK) {
                    perror("bs_bench_sink: accept");
                    goto out;
                }
                continue;
            }
            conn_ready(&s, evs[i].data.ptr, evs[i].events);
        }
    }
    rc = 0;
out:
    fprintf(stderr, "bytes_in %llu bytes_out %llu conns %llu\n", (unsigned long long)s.bytes_in,
            (unsigned long long)s.bytes_out, (unsigned long long)s.conns_total);
    while (s.conns)
        conn_close(&s, s.conns);
    if (s.ep >= 0) close(s.ep);
    if (s.lfd >= 0) close(s.lfd);
    free(s.rbuf);
    return rc;
}
