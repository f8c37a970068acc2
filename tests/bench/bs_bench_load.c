/*
 * bs_bench_load.c - load generator for `make bench` (TLS via OpenSSL, or plaintext).
 *
 * Usage: bs_bench_load --mode bulk|rtt|idle --port N [options]
 *   --host A            IPv4 address to connect to (default 127.0.0.1)
 *   --tls               speak TLS (default: plaintext TCP)
 *   --ca FILE           trust anchor; the server certificate is verified
 *                       against it and against --servername (required with --tls)
 *   --servername NAME   SNI and the name to verify (default localhost)
 *   --tls-version 1.2|1.3  pin exactly this version (default 1.3)
 *   --ciphers LIST      TLS 1.2 cipher list  (default ECDHE-ECDSA-AES128-GCM-SHA256)
 *   --ciphersuites LIST TLS 1.3 suites       (default TLS_AES_128_GCM_SHA256)
 *   --groups LIST       key exchange groups  (default X25519)
 *   --conns C           connections (bulk, rtt: one thread each; idle: held)
 *   --seconds T         measured duration for bulk and rtt (default 3)
 *   --warmup S          rtt: seconds of round trips not recorded (default 0.5)
 *   --size B            rtt: request size, echoed back (default 1024)
 *   --chunk B           bulk: bytes per write (default 65536)
 *   --ping B            idle: one echoed round trip of B bytes per connection
 *                       after its handshake, so the proxy's upstream leg
 *                       exists and has carried data (default 0 = none)
 *   --hold S            idle: longest time to hold the connections (default 600)
 *   --cert F --key F    present this client certificate (mTLS listeners)
 *   --kafka-ping        idle: the ping is one Kafka Heartbeat v0 request whose
 *                       echo parses as a response to it (correlation id =
 *                       api key/version), so a `kafka` listener in front of an
 *                       echo server carries it like a real exchange
 *
 * Modes and their one result line on stdout:
 *   bulk: C connections write as fast as they can for T seconds.
 *         "RESULT mode=bulk conns=C seconds=.. bytes=.. mbps=.." (MB = 10^6 bytes,
 *         counted as bytes accepted by the local TLS/socket write).
 *   rtt:  C connections each loop: write B bytes, read the B-byte echo, check it.
 *         Every round trip goes into a 1-microsecond-resolution histogram.
 *         "RESULT mode=rtt conns=C samples=.. p50_us=.. p99_us=.. p999_us=.. max_us=.. mean_us=.."
 *   idle: open C connections one after the other, complete each handshake
 *         (and the optional ping), then print "READY conns=C" and hold them until
 *         SIGTERM/SIGINT or --hold expires; then "RESULT mode=idle conns=C".
 * Every socket has 15 s send/receive timeouts so a stuck proxy fails the run
 * instead of hanging it. Exit 0 on success, 1 on any failure (with a message on
 * stderr naming the connection and the reason), 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "brokerside/status.h"

#define IO_TIMEOUT_S 15
#define HIST_BUCKETS 100000 /* 1 us each: 0 .. 99,999 us; slower samples go to `over` */
#define MAX_CONNS 19000     /* fits the 20,000 open-file limit */
#define MAX_THREADS 256     /* bulk and rtt use one thread per connection */

typedef enum load_mode { MODE_NONE, MODE_BULK, MODE_RTT, MODE_IDLE } load_mode;

typedef struct load_opts {
    load_mode mode;
    struct in_addr host;
    uint16_t port;
    bool tls;
    const char *ca;
    const char *servername;
    int tls_version;
    const char *ciphers, *ciphersuites, *groups;
    unsigned long conns;
    double seconds, warmup, hold;
    size_t size, chunk, ping;
    const char *cert, *key;
    bool kafka_ping;
} load_opts;

/* One client connection; `ssl` is NULL in plaintext mode. */
typedef struct load_conn {
    int fd;
    SSL *ssl;
} load_conn;

/* Latency histogram of round trips in whole microseconds. */
typedef struct load_hist {
    uint64_t b[HIST_BUCKETS];
    uint64_t over, n, max_us;
    double sum_us;
} load_hist;

/* Shared state of a bulk or rtt run. */
typedef struct load_run {
    const load_opts *o;
    SSL_CTX *ctx;
    pthread_barrier_t start;
    atomic_bool stop;   /* set by main when the measured period ends */
    atomic_bool record; /* rtt: set by main when the warm-up ends */
    atomic_bool failed; /* any thread failed: the run is invalid */
    pthread_mutex_t mu; /* guards the merged results below */
    uint64_t bytes;
    load_hist *hist;
} load_run;

typedef struct load_thread {
    load_run *run;
    unsigned long id;
    pthread_t tid;
} load_thread;

static volatile sig_atomic_t g_stop;

/* SIGTERM/SIGINT handler for idle mode: only sets the stop flag. */
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Monotonic time in nanoseconds. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleep for `s` seconds (fractions allowed), resuming after signals unless
 * g_stop is set. */
static void sleep_s(double s)
{
    uint64_t end = now_ns() + (uint64_t)(s * 1e9);
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end || g_stop) return;
        uint64_t left = end - t;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                              .tv_nsec = (long)(left % 1000000000u)};
        (void)nanosleep(&ts, NULL);
    }
}

/* Print the OpenSSL error queue (or errno when it is empty) after `what`
 * for connection `id`, and clear the queue. */
static void report_tls_error(unsigned long id, const char *what, SSL *ssl, int ret)
{
    int e = errno;
    int why = ssl ? SSL_get_error(ssl, ret) : SSL_ERROR_SSL;
    unsigned long code = ERR_get_error();
    if (code) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        fprintf(stderr, "bs_bench_load: conn %lu: %s: %s", id, what, buf);
        if (ssl && SSL_get_verify_result(ssl) != X509_V_OK)
            fprintf(stderr, " (certificate: %s)",
                    X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
        fputc('\n', stderr);
    } else if (why == SSL_ERROR_ZERO_RETURN || (why == SSL_ERROR_SYSCALL && e == 0)) {
        fprintf(stderr, "bs_bench_load: conn %lu: %s: peer closed the connection\n", id, what);
    } else if (e == EAGAIN || e == EWOULDBLOCK) {
        fprintf(stderr, "bs_bench_load: conn %lu: %s: timed out after %d s\n", id, what,
                IO_TIMEOUT_S);
    } else {
        fprintf(stderr, "bs_bench_load: conn %lu: %s: %s\n", id, what, strerror(e));
    }
    ERR_clear_error();
}

/* True (with a message naming connection `id` and `what`) when a transfer
 * that started at `t0` has gone on for longer than the I/O timeout. A socket
 * timeout that strikes after some bytes moved ends send()/recv() with a
 * short count rather than an error, so stalls are caught by the clock too. */
static bool stalled(unsigned long id, const char *what, uint64_t t0)
{
    if (now_ns() - t0 < (uint64_t)IO_TIMEOUT_S * 1000000000u) return false;
    fprintf(stderr, "bs_bench_load: conn %lu: %s: timed out after %d s\n", id, what, IO_TIMEOUT_S);
    return true;
}

/* Build the client TLS context: exactly one protocol version, the given
 * suites and groups, peer verification against o->ca, no session cache (every
 * connection does a full handshake, the same for every proxy). `release` asks
 * OpenSSL to free idle record buffers (idle mode: the client holds thousands).
 * Returns BS_E_CRYPTO with the reason on stderr; *out is the caller's to free. */
static BS_WUR bs_status make_ctx(const load_opts *o, bool release, SSL_CTX **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) goto fail;
    if (!SSL_CTX_set_min_proto_version(ctx, o->tls_version)) goto fail;
    if (!SSL_CTX_set_max_proto_version(ctx, o->tls_version)) goto fail;
    if (o->tls_version == TLS1_2_VERSION && !SSL_CTX_set_cipher_list(ctx, o->ciphers)) goto fail;
    if (o->tls_version == TLS1_3_VERSION && !SSL_CTX_set_ciphersuites(ctx, o->ciphersuites))
        goto fail;
    if (!SSL_CTX_set1_groups_list(ctx, o->groups)) goto fail;
    if (!SSL_CTX_load_verify_locations(ctx, o->ca, NULL)) goto fail;
    if (o->cert && (!SSL_CTX_use_certificate_chain_file(ctx, o->cert) ||
                    !SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM)))
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (release) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    *out = ctx;
    return BS_OK;
fail:
    report_tls_error(0, "TLS client context", NULL, 0);
    SSL_CTX_free(ctx);
    return BS_E_CRYPTO;
}

/* Close a connection (TLS close_notify is skipped on purpose: the peer is
 * told by the TCP close, and a stalled peer must not block the teardown). */
static void conn_close(load_conn *c)
{
    if (c->ssl) SSL_free(c->ssl);
    if (c->fd >= 0) close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

/* Connect connection number `id` to o->host:o->port and, with TLS, complete
 * a verified handshake. On failure the reason is on stderr, *c is closed and
 * BS_E_IO or BS_E_CRYPTO is returned. */
static BS_WUR bs_status conn_open(const load_opts *o, SSL_CTX *ctx, unsigned long id, load_conn *c)
{
    c->fd = -1;
    c->ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "bs_bench_load: conn %lu: socket: %s\n", id, strerror(errno));
        return BS_E_IO;
    }
    c->fd = fd;
    int one = 1;
    /* Request/response latency must not wait for Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(o->port), .sin_addr = o->host};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "bs_bench_load: conn %lu: connect to port %u: %s\n", id, o->port,
                strerror(errno));
        conn_close(c);
        return BS_E_IO;
    }
    if (!o->tls) return BS_OK;
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, fd) || !SSL_set_tlsext_host_name(c->ssl, o->servername) ||
        !SSL_set1_host(c->ssl, o->servername)) {
        report_tls_error(id, "TLS setup", NULL, 0);
        conn_close(c);
        return BS_E_CRYPTO;
    }
    int r = SSL_connect(c->ssl);
    if (r != 1) {
        report_tls_error(id, "TLS handshake", c->ssl, r);
        conn_close(c);
        return BS_E_CRYPTO;
    }
    return BS_OK;
}

/* Write all `len` bytes of `p`. Returns BS_E_IO with the reason on stderr. */
static BS_WUR bs_status conn_write_all(load_conn *c, unsigned long id, const uint8_t *p, size_t len)
{
    size_t done = 0;
    uint64_t t0 = now_ns();
    while (done < len) {
        if (done && stalled(id, "write", t0)) return BS_E_IO;
        if (c->ssl) {
            size_t n = 0;
            int r = SSL_write_ex(c->ssl, p + done, len - done, &n);
            if (r != 1) {
                report_tls_error(id, "TLS write", c->ssl, r);
                return BS_E_IO;
            }
            done += n;
        } else {
            ssize_t n = send(c->fd, p + done, len - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                report_tls_error(id, "write", NULL, 0);
                return BS_E_IO;
            }
            done += (size_t)n;
        }
    }
    return BS_OK;
}

/* Read exactly `len` bytes into `p`. End of stream before that is an error
 * (BS_E_IO, reason on stderr). */
static BS_WUR bs_status conn_read_full(load_conn *c, unsigned long id, uint8_t *p, size_t len)
{
    size_t done = 0;
    uint64_t t0 = now_ns();
    while (done < len) {
        if (done && stalled(id, "read", t0)) return BS_E_IO;
        if (c->ssl) {
            size_t n = 0;
            int r = SSL_read_ex(c->ssl, p + done, len - done, &n);
            if (r != 1) {
                report_tls_error(id, "TLS read", c->ssl, r);
                return BS_E_IO;
            }
            done += n;
        } else {
            ssize_t n = recv(c->fd, p + done, len - done, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                if (n == 0) errno = 0; /* reported as "peer closed" */
                report_tls_error(id, "read", NULL, 0);
                return BS_E_IO;
            }
            done += (size_t)n;
        }
    }
    return BS_OK;
}

/* One request/response: send `len` bytes of `out` (stamped with `seq` so a
 * stale or misrouted echo is caught), read the echo into `in`, compare.
 * Returns BS_E_MALFORMED if the echo differs. */
static BS_WUR bs_status round_trip(load_conn *c, unsigned long id, uint64_t seq, uint8_t *out,
                                   uint8_t *in, size_t len)
{
    memcpy(out, &seq, len < sizeof seq ? len : sizeof seq);
    BS_GUARD(conn_write_all(c, id, out, len));
    BS_GUARD(conn_read_full(c, id, in, len));
    if (memcmp(out, in, len) != 0) {
        fprintf(stderr, "bs_bench_load: conn %lu: echo of round trip %llu differs from request\n",
                id, (unsigned long long)seq);
        return BS_E_MALFORMED;
    }
    return BS_OK;
}

/* Add one sample (nanoseconds) to a histogram. */
static void hist_add(load_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us < HIST_BUCKETS)
        h->b[us]++;
    else
        h->over++;
    if (us > h->max_us) h->max_us = us;
    h->n++;
    h->sum_us += (double)ns / 1000.0;
}

/* Merge `src` into `dst`. */
static void hist_merge(load_hist *dst, const load_hist *src)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->over += src->over;
    dst->n += src->n;
    dst->sum_us += src->sum_us;
    if (src->max_us > dst->max_us) dst->max_us = src->max_us;
}

/* The q-quantile (0 < q <= 1) in microseconds: the smallest bucket at which
 * the cumulative count reaches ceil(q * n). Samples past the last bucket
 * report max_us. h->n must be > 0. */
static uint64_t hist_quantile(const load_hist *h, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank == 0) rank = 1;
    uint64_t cum = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        cum += h->b[i];
        if (cum >= rank) return i;
    }
    return h->max_us;
}

/* Thread body for bulk and rtt: connect, wait at the start barrier for every
 * other connection, then write (bulk) or do round trips (rtt) until `stop`.
 * A failure sets run->failed (the run is then reported invalid) and stops. */
static void *worker(void *arg)
{
    load_thread *t = arg;
    load_run *run = t->run;
    const load_opts *o = run->o;
    load_conn c = {.fd = -1};
    uint8_t *out = NULL, *in = NULL;
    load_hist *h = NULL;
    uint64_t bytes = 0;
    bool ok = conn_open(o, run->ctx, t->id, &c) == BS_OK;
    size_t bufsz = o->mode == MODE_BULK ? o->chunk : o->size;
    if (ok) {
        out = malloc(bufsz);
        in = malloc(bufsz);
        h = o->mode == MODE_RTT ? calloc(1, sizeof *h) : NULL;
        ok = out && in && (o->mode != MODE_RTT || h);
        if (!ok) fprintf(stderr, "bs_bench_load: conn %lu: out of memory\n", t->id);
    }
    if (ok) {
        for (size_t i = 0; i < bufsz; i++)
            out[i] = (uint8_t)(i * 131u + t->id);
    }
    if (!ok) atomic_store(&run->failed, true);
    /* Everyone meets here, failed or not, so main is never left waiting. */
    pthread_barrier_wait(&run->start);
    if (!ok || atomic_load(&run->failed)) goto out;
    if (o->mode == MODE_BULK) {
        while (!atomic_load_explicit(&run->stop, memory_order_relaxed)) {
            if (conn_write_all(&c, t->id, out, bufsz) != BS_OK) {
                ok = false;
                break;
            }
            bytes += bufsz;
        }
    } else {
        for (uint64_t seq = 0; !atomic_load_explicit(&run->stop, memory_order_relaxed); seq++) {
            uint64_t t0 = now_ns();
            if (round_trip(&c, t->id, seq, out, in, bufsz) != BS_OK) {
                ok = false;
                break;
            }
            if (atomic_load_explicit(&run->record, memory_order_relaxed))
                hist_add(h, now_ns() - t0);
        }
    }
    if (!ok) atomic_store(&run->failed, true);
    pthread_mutex_lock(&run->mu);
    run->bytes += bytes;
    if (h) hist_merge(run->hist, h);
    pthread_mutex_unlock(&run->mu);
out:
    conn_close(&c);
    free(out);
    free(in);
    free(h);
    return NULL;
}

/* Run bulk or rtt mode and print its RESULT line. Returns BS_E_IO if any
 * connection failed (no result is printed then: a partial run is no result). */
static BS_WUR bs_status run_threads(const load_opts *o)
{
    bs_status st = BS_E_IO;
    load_run run = {.o = o};
    load_thread *th = NULL;
    unsigned long started = 0;
    bool barrier = false, mu = false;
    atomic_init(&run.stop, false);
    atomic_init(&run.record, false);
    atomic_init(&run.failed, false);
    if (o->tls && make_ctx(o, false, &run.ctx) != BS_OK) return BS_E_CRYPTO;
    run.hist = calloc(1, sizeof *run.hist);
    th = calloc(o->conns, sizeof *th);
    if (!run.hist || !th) {
        fprintf(stderr, "bs_bench_load: out of memory\n");
        goto out;
    }
    if (pthread_barrier_init(&run.start, NULL, (unsigned)o->conns + 1) != 0) goto out;
    barrier = true;
    if (pthread_mutex_init(&run.mu, NULL) != 0) goto out;
    mu = true;
    for (; started < o->conns; started++) {
        th[started].run = &run;
        th[started].id = started;
        if (pthread_create(&th[started].tid, NULL, worker, &th[started]) != 0) {
            /* Threads already started wait at the barrier for conns+1 parties;
             * they cannot be released, so this is fatal for the process. */
            fprintf(stderr, "bs_bench_load: pthread_create failed\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&run.start);
    uint64_t t0 = now_ns();
    double measured = o->seconds;
    if (o->mode == MODE_RTT) {
        sleep_s(o->warmup);
        atomic_store(&run.record, true);
        t0 = now_ns();
    }
    /* Sleep in short steps so a failing connection ends the run early. */
    while (!g_stop && !atomic_load(&run.failed) && now_ns() - t0 < (uint64_t)(measured * 1e9))
        sleep_s(0.05);
    atomic_store(&run.stop, true);
    for (unsigned long i = 0; i < started; i++)
        pthread_join(th[i].tid, NULL);
    started = 0;
    double secs = (double)(now_ns() - t0) / 1e9;
    if (atomic_load(&run.failed) || g_stop) {
        fprintf(stderr, "bs_bench_load: %s; no result\n",
                g_stop ? "interrupted" : "a connection failed");
        goto out;
    }
    if (o->mode == MODE_BULK) {
        printf("RESULT mode=bulk conns=%lu seconds=%.3f bytes=%llu mbps=%.1f\n", o->conns, secs,
               (unsigned long long)run.bytes, (double)run.bytes / secs / 1e6);
    } else {
        const load_hist *h = run.hist;
        if (h->n == 0) {
            fprintf(stderr, "bs_bench_load: no round trip completed in %.1f s\n", secs);
            goto out;
        }
        printf("RESULT mode=rtt conns=%lu samples=%llu p50_us=%llu p99_us=%llu p999_us=%llu "
               "max_us=%llu mean_us=%.1f\n",
               o->conns, (unsigned long long)h->n, (unsigned long long)hist_quantile(h, 0.50),
               (unsigned long long)hist_quantile(h, 0.99),
               (unsigned long long)hist_quantile(h, 0.999), (unsigned long long)h->max_us,
               h->sum_us / (double)h->n);
    }
    fflush(stdout);
    st = BS_OK;
out:
    for (unsigned long i = 0; i < started; i++)
        pthread_join(th[i].tid, NULL);
    if (barrier) pthread_barrier_destroy(&run.start);
    if (mu) pthread_mutex_destroy(&run.mu);
    free(th);
    free(run.hist);
    SSL_CTX_free(run.ctx);
    return st;
}

/* Idle mode: open o->conns connections one by one (each with its handshake
 * and optional ping), announce READY, hold until signalled or --hold expires,
 * then close them all. Returns BS_E_IO if any connection failed. */
static BS_WUR bs_status run_idle(const load_opts *o)
{
    bs_status st = BS_E_IO;
    SSL_CTX *ctx = NULL;
    load_conn *cs = calloc(o->conns, sizeof *cs);
    uint8_t *out = o->ping ? malloc(o->ping) : NULL;
    uint8_t *in = o->ping ? malloc(o->ping) : NULL;
    unsigned long open = 0;
    if (!cs || (o->ping && (!out || !in))) {
        fprintf(stderr, "bs_bench_load: out of memory\n");
        goto out;
    }
    if (o->ping) memset(out, 'p', o->ping);
    if (o->kafka_ping) {
        /* Heartbeat v0 (api 12): correlation id 0x000c0000 = the api key and
         * version, so the echoed frame reads as the answer to it; then an
         * empty client id, group "g", generation 1, member "m", padding in
         * the member name up to the ping size. */
        static const uint8_t hb[] = {0,   0x0c, 0,   0, 0, 0x0c, 0, 0, 0, 0,
                                     0,   1,    'g', 0, 0, 0,    1};
        size_t mlen = o->ping - 4 - sizeof hb - 2;
        out[0] = (uint8_t)((o->ping - 4) >> 24);
        out[1] = (uint8_t)((o->ping - 4) >> 16);
        out[2] = (uint8_t)((o->ping - 4) >> 8);
        out[3] = (uint8_t)(o->ping - 4);
        memcpy(out + 4, hb, sizeof hb);
        out[4 + sizeof hb] = (uint8_t)(mlen >> 8);
        out[5 + sizeof hb] = (uint8_t)mlen;
        memset(out + 6 + sizeof hb, 'm', mlen);
    }
    if (o->tls && make_ctx(o, true, &ctx) != BS_OK) goto out;
    uint64_t t0 = now_ns();
    for (; open < o->conns && !g_stop; open++) {
        if (conn_open(o, ctx, open, &cs[open]) != BS_OK) goto out;
        /* a Kafka ping is sent as built (round_trip stamps a sequence number
         * over the first bytes, which would break the frame) */
        bool ping_ok = true;
        if (o->ping && o->kafka_ping)
            ping_ok = conn_write_all(&cs[open], open, out, o->ping) == BS_OK &&
                      conn_read_full(&cs[open], open, in, o->ping) == BS_OK &&
                      memcmp(out, in, o->ping) == 0;
        else if (o->ping)
            ping_ok = round_trip(&cs[open], open, open, out, in, o->ping) == BS_OK;
        if (!ping_ok) {
            open++; /* it is open: close it below */
            goto out;
        }
    }
    if (g_stop) {
        fprintf(stderr, "bs_bench_load: stopped before all connections were open\n");
        goto out;
    }
    printf("READY conns=%lu seconds=%.3f\n", open, (double)(now_ns() - t0) / 1e9);
    fflush(stdout);
    sleep_s(o->hold);
    printf("RESULT mode=idle conns=%lu\n", open);
    fflush(stdout);
    st = BS_OK;
out:
    for (unsigned long i = 0; i < open; i++)
        conn_close(&cs[i]);
    free(cs);
    free(out);
    free(in);
    SSL_CTX_free(ctx);
    return st;
}

/* Raise the soft open-file limit to the hard limit; idle mode needs one
 * descriptor per connection. Failure is reported; the run then fails with a
 * clear socket() error if the limit is too low. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("bs_bench_load: getrlimit(RLIMIT_NOFILE)");
        return;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("bs_bench_load: setrlimit(RLIMIT_NOFILE)");
}

/* Parse an unsigned decimal option in [lo, hi] or exit 2 with a message. */
static unsigned long parse_ul(const char *opt, const char *v, unsigned long lo, unsigned long hi)
{
    char *end = NULL;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x < lo || x > hi) {
        fprintf(stderr, "bs_bench_load: %s wants an integer in [%lu, %lu], got '%s'\n", opt, lo, hi,
                v);
        exit(2);
    }
    return x;
}

/* Parse a non-negative decimal number of seconds in [lo, hi] or exit 2. */
static double parse_secs(const char *opt, const char *v, double lo, double hi)
{
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "bs_bench_load: %s wants seconds in [%g, %g], got '%s'\n", opt, lo, hi, v);
        exit(2);
    }
    return x;
}

/* Print usage to stderr. */
static void usage(void)
{
    fprintf(stderr,
            "usage: bs_bench_load --mode bulk|rtt|idle --port N [--host A] [--tls --ca FILE\n"
            "       [--servername NAME] [--tls-version 1.2|1.3] [--ciphers L] [--ciphersuites L]\n"
            "       [--groups L]] [--conns C] [--seconds T] [--warmup S] [--size B] [--chunk B]\n"
            "       [--ping B] [--kafka-ping] [--hold S] [--cert FILE --key FILE]\n");
}

/* Entry point: parse and check options, then run the mode. Exit codes as in
 * the file header. */
int main(int argc, char **argv)
{
    load_opts o = {.servername = "localhost",
                   .tls_version = TLS1_3_VERSION,
                   .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256",
                   .ciphersuites = "TLS_AES_128_GCM_SHA256",
                   .groups = "X25519",
                   .conns = 1,
                   .seconds = 3,
                   .warmup = 0.5,
                   .hold = 600,
                   .size = 1024,
                   .chunk = 65536};
    o.host.s_addr = htonl(INADDR_LOOPBACK);
    bool have_port = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tls") == 0) {
            o.tls = true;
            continue;
        }
        if (strcmp(a, "--kafka-ping") == 0) {
            o.kafka_ping = true;
            continue;
        }
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--mode") == 0) {
            o.mode = strcmp(v, "bulk") == 0   ? MODE_BULK
                     : strcmp(v, "rtt") == 0  ? MODE_RTT
                     : strcmp(v, "idle") == 0 ? MODE_IDLE
                                              : MODE_NONE;
            if (o.mode == MODE_NONE) {
                fprintf(stderr, "bs_bench_load: --mode is bulk, rtt or idle, got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--host") == 0) {
            if (inet_pton(AF_INET, v, &o.host) != 1) {
                fprintf(stderr, "bs_bench_load: --host wants an IPv4 address, got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--port") == 0) {
            o.port = (uint16_t)parse_ul(a, v, 1, 65535);
            have_port = true;
        } else if (strcmp(a, "--ca") == 0) {
            o.ca = v;
        } else if (strcmp(a, "--servername") == 0) {
            o.servername = v;
        } else if (strcmp(a, "--tls-version") == 0) {
            if (strcmp(v, "1.2") == 0)
                o.tls_version = TLS1_2_VERSION;
            else if (strcmp(v, "1.3") == 0)
                o.tls_version = TLS1_3_VERSION;
            else {
                fprintf(stderr, "bs_bench_load: --tls-version is 1.2 or 1.3, got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--ciphers") == 0) {
            o.ciphers = v;
        } else if (strcmp(a, "--ciphersuites") == 0) {
            o.ciphersuites = v;
        } else if (strcmp(a, "--groups") == 0) {
            o.groups = v;
        } else if (strcmp(a, "--conns") == 0) {
            o.conns = parse_ul(a, v, 1, MAX_CONNS);
        } else if (strcmp(a, "--seconds") == 0) {
            o.seconds = parse_secs(a, v, 0.1, 3600);
        } else if (strcmp(a, "--warmup") == 0) {
            o.warmup = parse_secs(a, v, 0, 60);
        } else if (strcmp(a, "--hold") == 0) {
            o.hold = parse_secs(a, v, 0, 86400);
        } else if (strcmp(a, "--size") == 0) {
            o.size = parse_ul(a, v, 1, 1 << 20);
        } else if (strcmp(a, "--chunk") == 0) {
            o.chunk = parse_ul(a, v, 1, 16 << 20);
        } else if (strcmp(a, "--ping") == 0) {
            o.ping = parse_ul(a, v, 0, 1 << 20);
        } else if (strcmp(a, "--cert") == 0) {
            o.cert = v;
        } else if (strcmp(a, "--key") == 0) {
            o.key = v;
        } else {
            fprintf(stderr, "bs_bench_load: unknown option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (o.kafka_ping && o.ping < 32) {
        fprintf(stderr, "bs_bench_load: --kafka-ping needs --ping of at least 32 bytes\n");
        return 2;
    }
    if ((o.cert == NULL) != (o.key == NULL)) {
        fprintf(stderr, "bs_bench_load: --cert and --key go together\n");
        return 2;
    }
    if (o.mode == MODE_NONE || !have_port) {
        fprintf(stderr, "bs_bench_load: --mode and --port are required\n");
        usage();
        return 2;
    }
    if (o.tls && !o.ca) {
        fprintf(stderr, "bs_bench_load: --tls needs --ca (the server certificate is verified)\n");
        return 2;
    }
    if (o.mode != MODE_IDLE && o.conns > MAX_THREADS) {
        fprintf(stderr, "bs_bench_load: bulk and rtt use one thread per connection; at most %d\n",
                MAX_THREADS);
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    bs_status st = o.mode == MODE_IDLE ? run_idle(&o) : run_threads(&o);
    return st == BS_OK ? 0 : 1;
}
