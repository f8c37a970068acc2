/*
 * test_conn.c - the connection state machine of src/net, in process: a real
 * bs_server on its own control thread, real sockets on 127.0.0.1 with
 * ephemeral ports, real TLS handshakes, real upstream servers (echo, sink,
 * TLS echo, fake Kafka). Waits are bounded only as hang guards.
 */
#include <ev.h>
#include <sys/resource.h>

#include "brokerside/config.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/kafka_session.h"
#include "brokerside/net.h"
#include "brokerside/proxy_protocol.h"
#include "net_test_util.h"
#include "test.h"

static char g_dir[256]; /* certificates of this run */

/* ------------------------------------------------------------ harness */

typedef struct srvh {
    char cfgpath[512];
    bs_config *cfg;
    struct ev_loop *loop;
    bs_server *srv;
    pthread_t thr;
    ev_async call;
    pthread_mutex_t m;
    pthread_cond_t cv;
    void (*fn)(struct srvh *h, void *arg);
    void *arg;
    bool fn_done;
    atomic_bool done;
    bs_status result;
} srvh;

/* on_done of the server under test: remember that every worker stopped. */
static void h_on_done(void *arg)
{
    srvh *h = arg;
    atomic_store(&h->done, true);
}

/* Control thread: run the function h_call posted, then wake the caller. */
static void h_call_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    srvh *h = bs_container_of(a, srvh, call);
    pthread_mutex_lock(&h->m);
    if (h->fn && !h->fn_done) {
        h->fn(h, h->arg);
        h->fn_done = true;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->m);
}

/* The control thread of the server under test. */
static void *h_main(void *arg)
{
    srvh *h = arg;
    ev_run(h->loop, 0);
    return NULL;
}

/* Run fn on the control thread and wait for it. */
static void h_call(srvh *h, void (*fn)(srvh *, void *), void *arg)
{
    pthread_mutex_lock(&h->m);
    h->fn = fn;
    h->arg = arg;
    h->fn_done = false;
    pthread_mutex_unlock(&h->m);
    ev_async_send(h->loop, &h->call);
    pthread_mutex_lock(&h->m);
    while (!h->fn_done)
        pthread_cond_wait(&h->cv, &h->m);
    h->fn = NULL;
    pthread_mutex_unlock(&h->m);
}

/* Load `json` as a config file and start a server for it; with `ops`, the
 * session `ops` is installed on listener `listener` before the start; with
 * `obs`, the connection observer (obs_ctx its argument). */
static bool h_start_observed(srvh *h, const char *json, const char *listener,
                             const bs_session_ops *ops, bs_conn_observer_fn obs, void *obs_ctx)
{
    memset(h, 0, sizeof *h);
    static int seq;
    snprintf(h->cfgpath, sizeof h->cfgpath, "%s/conn-%d.json", g_dir, seq++);
    nt_write_file(h->cfgpath, json);
    bs_config_errors errs = {0};
    if (bs_config_load(h->cfgpath, &h->cfg, &errs) != BS_OK) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "config: %s\n", errs.msgs[i]);
        bs_config_errors_free(&errs);
        return false;
    }
    bs_config_errors_free(&errs);
    h->loop = ev_loop_new(EVFLAG_AUTO);
    pthread_mutex_init(&h->m, NULL);
    pthread_cond_init(&h->cv, NULL);
    atomic_init(&h->done, false);
    char err[600];
    if (bs_server_new(h->loop, &h->cfg->net, &h->srv, err, sizeof err) != BS_OK) {
        fprintf(stderr, "server: %s\n", err);
        return false;
    }
    if (ops && bs_server_set_session(h->srv, listener, ops, NULL) != BS_OK) return false;
    if (obs && bs_server_set_observer(h->srv, obs, obs_ctx) != BS_OK) return false;
    ev_async_init(&h->call, h_call_cb);
    ev_async_start(h->loop, &h->call);
    if (bs_server_start(h->srv, h_on_done, h) != BS_OK) return false;
    pthread_create(&h->thr, NULL, h_main, h);
    return true;
}

/* h_start_observed without an observer. */
static bool h_start_session(srvh *h, const char *json, const char *listener,
                            const bs_session_ops *ops)
{
    return h_start_observed(h, json, listener, ops, NULL, NULL);
}

/* h_start_observed with neither session nor observer. */
static bool h_start(srvh *h, const char *json)
{
    return h_start_observed(h, json, NULL, NULL, NULL, NULL);
}

/* h_call targets: shutdown (graceful if arg != NULL) and leaving the loop. */
static void h_do_shutdown(srvh *h, void *arg)
{
    bs_server_shutdown(h->srv, arg != NULL);
}
static void h_do_break(srvh *h, void *arg)
{
    (void)arg;
    ev_break(h->loop, EVBREAK_ALL);
}

/* Stop everything (hard) and free. */
static void h_stop(srvh *h)
{
    if (!h->loop) return;
    if (h->srv) {
        if (h->thr) {
            h_call(h, h_do_shutdown, NULL);
            WAIT_UNTIL(atomic_load(&h->done));
            h_call(h, h_do_break, NULL);
            pthread_join(h->thr, NULL);
        }
        bs_server_free(h->srv);
    }
    ev_async_stop(h->loop, &h->call);
    ev_loop_destroy(h->loop);
    bs_config_free(h->cfg);
    pthread_mutex_destroy(&h->m);
    pthread_cond_destroy(&h->cv);
    memset(h, 0, sizeof *h);
}

/* Current value of a counter / gauge series (created at 0 if unseen). */
static int64_t counter(const char *name, const char *labels)
{
    return bs_metric_value(bs_metrics_counter(name, "test", labels));
}
static int64_t gauge(const char *name, const char *labels)
{
    return bs_metric_value(bs_metrics_gauge(name, "test", labels));
}

/* Echo `n` bytes through fd concurrently (a sender thread) and compare. */
static bool echo_roundtrip(int fd, size_t n, uint32_t seed)
{
    nt_sender s;
    nt_sender_start(&s, fd, n, seed);
    uint8_t *buf = malloc(65536);
    uint64_t h = NT_FNV_INIT;
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf, 65536, 0);
        if (r <= 0) break;
        h = nt_fnv(h, buf, (size_t)r);
        got += (size_t)r;
    }
    pthread_join(s.thr, NULL);
    free(buf);
    return s.ok && got == n && h == s.hash;
}

#define TCP_LISTENER(name, port, up)                                                               \
    "{\"name\":\"" name                                                                            \
    "\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\"}"

/* ------------------------------------------------------------ tests */

static void test_forward_both_ways(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":2,\"admin\":null,\"limits\":{\"buffer_bytes\":16384},\"listeners\":"
             "[" TCP_LISTENER("fwd", 0, 0) "]}",
             port, e.port);
    srvh h;
    CHECK(h_start(&h, json));
    int fd = nt_connect(port);
    CHECK(fd >= 0);
    /* 4 MiB through a 16 KiB buffer: many buffer cycles in both directions. */
    CHECK(echo_roundtrip(fd, 4u << 20, 7));
    shutdown(fd, SHUT_WR);
    uint8_t *rest;
    CHECK_EQ(nt_read_to_eof(fd, &rest), 0);
    free(rest);
    close(fd);
    CHECK_EQ(counter("brokerside_bytes_total", "listener=\"fwd\",direction=\"client_to_upstream\""),
             4u << 20);
    CHECK_EQ(counter("brokerside_bytes_total", "listener=\"fwd\",direction=\"upstream_to_client\""),
             4u << 20);
    CHECK_EQ(counter("brokerside_connections_total", "listener=\"fwd\""), 1);
    CHECK(WAIT_UNTIL(gauge("brokerside_connections_open", "listener=\"fwd\"") == 0));
    h_stop(&h);
    nt_echo_stop(&e);
}

static void test_tls_termination(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[2048];
    snprintf(
        json, sizeof json,
        "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"tlsfwd\",\"bind\":\"127.0.0.1:%"
        "d\","
        "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\",\"tls\":{\"cert\":\"%s/server.crt\","
        "\"key\":\"%s/server.key\",\"client_ca\":\"%s/ca.crt\",\"client_auth\":\"optional\"}}]}",
        port, e.port, g_dir, g_dir, g_dir);
    srvh h;
    CHECK(h_start(&h, json));
    char ca[300], cert[300], key[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    snprintf(cert, sizeof cert, "%s/client.crt", g_dir);
    snprintf(key, sizeof key, "%s/client.key", g_dir);
    nt_tls t;
    CHECK(nt_tls_connect(&t, port, ca, cert, key));
    /* 1 MiB in 64 KiB chunks, each echoed back before the next. */
    uint8_t *out = malloc(65536), *in = malloc(65536);
    bool same = true;
    for (int i = 0; i < 16 && same; i++) {
        nt_fill(out, 65536, (uint32_t)i);
        same = nt_tls_write(&t, out, 65536) && nt_tls_read_n(&t, in, 65536) &&
               memcmp(in, out, 65536) == 0;
    }
    CHECK(same);
    /* close_notify from the client: upstream gets EOF, echoes nothing more
     * and half-closes, so the client sees a clean close_notify back. */
    SSL_shutdown(t.ssl);
    CHECK_EQ(nt_tls_read_end(&t), SSL_ERROR_ZERO_RETURN);
    nt_tls_close(&t);
    free(out);
    free(in);
    CHECK_EQ(counter("brokerside_tls_handshakes_total", "listener=\"tlsfwd\""), 1);
    h_stop(&h);
    nt_echo_stop(&e);
}

/* Upstream for half-close tests: reads to EOF, then answers with the count. */
typedef struct answer_srv {
    int lfd, port;
    pthread_t thr;
    bool greet_and_close; /* send "hello" and SHUT_WR first, then read */
    long received;
} answer_srv;

/* answer_srv thread body. */
static void *answer_main(void *arg)
{
    answer_srv *a = arg;
    /* Connections that send nothing are readiness probes: skip them. */
    for (;;) {
        int fd = accept(a->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        if (a->greet_and_close) {
            nt_write_all(fd, "hello", 5);
            shutdown(fd, SHUT_WR);
        }
        uint8_t *data;
        a->received = nt_read_to_eof(fd, &data);
        free(data);
        if (a->received > 0 && !a->greet_and_close) {
            char line[32];
            int n = snprintf(line, sizeof line, "got %ld", a->received);
            nt_write_all(fd, line, (size_t)n);
        }
        close(fd);
        if (a->received > 0) return NULL;
    }
}

static void test_half_close_client_side(void)
{
    answer_srv a = {.port = 0};
    a.lfd = nt_listen(&a.port);
    pthread_create(&a.thr, NULL, answer_main, &a);
    int port = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":[" TCP_LISTENER("hc1", 0, 0) "]}", port,
             a.port);
    srvh h;
    CHECK(h_start(&h, json));
    int fd = nt_connect(port);
    uint8_t buf[100000];
    nt_fill(buf, sizeof buf, 3);
    CHECK(nt_write_all(fd, buf, sizeof buf));
    /* Client EOF must reach the upstream while the other direction stays open. */
    shutdown(fd, SHUT_WR);
    uint8_t *reply;
    long n = nt_read_to_eof(fd, &reply);
    CHECK_EQ(n, 10);
    CHECK(n == 10 && memcmp(reply, "got 100000", 10) == 0);
    free(reply);
    close(fd);
    pthread_join(a.thr, NULL);
    close(a.lfd);
    h_stop(&h);
}

static void test_half_close_upstream_side(void)
{
    answer_srv a = {.port = 0, .greet_and_close = true};
    a.lfd = nt_listen(&a.port);
    pthread_create(&a.thr, NULL, answer_main, &a);
    int port = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":[" TCP_LISTENER("hc2", 0, 0) "]}", port,
             a.port);
    srvh h;
    CHECK(h_start(&h, json));
    int fd = nt_connect(port);
    uint8_t *greet;
    /* Upstream EOF reaches the client... */
    long n = nt_read_to_eof(fd, &greet);
    CHECK_EQ(n, 5);
    free(greet);
    /* ...and the client can still send: the upstream receives every byte. */
    uint8_t buf[50000];
    nt_fill(buf, sizeof buf, 4);
    CHECK(nt_write_all(fd, buf, sizeof buf));
    shutdown(fd, SHUT_WR);
    pthread_join(a.thr, NULL);
    CHECK_EQ(a.received, 50000);
    /* Both directions finished: brokerside closes the pair. */
    CHECK(WAIT_UNTIL(gauge("brokerside_connections_open", "listener=\"hc2\"") == 0));
    close(fd);
    close(a.lfd);
    h_stop(&h);
}

/* TLS client sends close_notify after its request; the upstream answers
 * after seeing EOF; the answer still reaches the client over TLS. Then the
 * upstream-initiated direction: brokerside sends close_notify to the client. */
static void test_half_close_tls(void)
{
    answer_srv a = {.port = 0};
    a.lfd = nt_listen(&a.port);
    pthread_create(&a.thr, NULL, answer_main, &a);
    int port = nt_free_port();
    char json[2048];
    snprintf(
        json, sizeof json,
        "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"hctls\",\"bind\":\"127.0.0.1:%"
        "d\","
        "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\",\"tls\":{\"cert\":\"%s/server.crt\","
        "\"key\":\"%s/server.key\"}}]}",
        port, a.port, g_dir, g_dir);
    srvh h;
    CHECK(h_start(&h, json));
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    nt_tls t;
    CHECK(nt_tls_connect(&t, port, ca, NULL, NULL));
    uint8_t buf[70000];
    nt_fill(buf, sizeof buf, 8);
    CHECK(nt_tls_write(&t, buf, sizeof buf));
    CHECK_EQ(SSL_shutdown(t.ssl), 0); /* close_notify sent, the peer's not yet received */
    uint8_t reply[9];
    CHECK(nt_tls_read_n(&t, reply, 9) && memcmp(reply, "got 70000", 9) == 0);
    /* The upstream closed after answering: brokerside passes it on as close_notify. */
    CHECK_EQ(nt_tls_read_end(&t), SSL_ERROR_ZERO_RETURN);
    nt_tls_close(&t);
    pthread_join(a.thr, NULL);
    close(a.lfd);
    CHECK(WAIT_UNTIL(gauge("brokerside_connections_open", "listener=\"hctls\"") == 0));
    h_stop(&h);
}

static void test_backpressure(void)
{
    nt_sink s;
    nt_sink_start(&s, true);
    int port = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"limits\":{\"buffer_bytes\":16384},\"listeners\":"
             "[" TCP_LISTENER("bp", 0, 0) "]}",
             port, s.port);
    srvh h;
    CHECK(h_start(&h, json));
    int fd = nt_connect(port);
    int small = 16384;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    const size_t total = 32u << 20;
    nt_sender snd;
    nt_sender_start(&snd, fd, total, 11);
    /* While the upstream does not read, the sender stalls: what it got out is
     * bounded by socket buffers plus brokerside's one 16 KiB buffer. Wait for
     * the count to stop moving (sampled twice, 300 ms apart). */
    size_t prev = (size_t)-1, cur = 0;
    WAIT_UNTIL(
        (cur = atomic_load(&snd.sent), nt_sleep_ms(300), cur == prev ? true : (prev = cur, false)));
    CHECK(cur < total);
    CHECK(cur < (16u << 20));
    CHECK(counter("brokerside_bytes_total", "listener=\"bp\",direction=\"client_to_upstream\"") <
          (int64_t)cur);
    atomic_store(&s.paused, false);
    pthread_join(snd.thr, NULL);
    CHECK(snd.ok);
    shutdown(fd, SHUT_WR);
    uint8_t *reply;
    long n = nt_read_to_eof(fd, &reply);
    CHECK(n > 0);
    char want[64];
    snprintf(want, sizeof want, "%llu %llx\n", (unsigned long long)total,
             (unsigned long long)snd.hash);
    CHECK(n > 0 && (size_t)n == strlen(want) && memcmp(reply, want, (size_t)n) == 0);
    free(reply);
    close(fd);
    nt_sink_stop(&s);
    h_stop(&h);
}

/* TLS on the client side of a stalled pipe: brokerside stops calling
 * SSL_read while its buffer is full and must resume (including records
 * already decrypted inside OpenSSL) when the upstream drains. */
typedef struct tls_sender {
    nt_tls *t;
    size_t n;
    atomic_size_t sent;
    uint64_t hash;
    bool ok;
} tls_sender;

/* tls_sender thread body. */
static void *tls_sender_main(void *arg)
{
    tls_sender *s = arg;
    uint8_t buf[10000]; /* not a multiple of the record size */
    uint64_t h = NT_FNV_INIT;
    size_t left = s->n;
    uint32_t seed = 77;
    s->ok = true;
    while (left) {
        size_t k = left < sizeof buf ? left : sizeof buf;
        nt_fill(buf, k, seed++);
        h = nt_fnv(h, buf, k);
        if (!nt_tls_write(s->t, buf, k)) {
            s->ok = false;
            break;
        }
        atomic_fetch_add(&s->sent, k);
        left -= k;
    }
    s->hash = h;
    return NULL;
}

static void test_backpressure_tls(void)
{
    nt_sink s;
    nt_sink_start(&s, true);
    int port = nt_free_port();
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"limits\":{\"buffer_bytes\":20000},\"listeners\":[{"
             "\"name\":\"bptls\","
             "\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\",\"tls\":"
             "{\"cert\":\"%s/"
             "server.crt\",\"key\":\"%s/server.key\"}}]}",
             port, s.port, g_dir, g_dir);
    srvh h;
    CHECK(h_start(&h, json));
    nt_tls t;
    CHECK(nt_tls_connect(&t, port, NULL, NULL, NULL));
    tls_sender ts = {.t = &t, .n = 24u << 20};
    atomic_init(&ts.sent, 0);
    pthread_t thr;
    pthread_create(&thr, NULL, tls_sender_main, &ts);
    size_t prev = (size_t)-1, cur = 0;
    WAIT_UNTIL(
        (cur = atomic_load(&ts.sent), nt_sleep_ms(300), cur == prev ? true : (prev = cur, false)));
    CHECK(cur < ts.n);
    atomic_store(&s.paused, false);
    pthread_join(thr, NULL);
    CHECK(ts.ok);
    CHECK_EQ(SSL_shutdown(t.ssl), 0);
    char reply[64] = "", want[64];
    size_t got = 0, r;
    while (got < sizeof reply - 1 &&
           SSL_read_ex(t.ssl, reply + got, sizeof reply - 1 - got, &r) == 1)
        got += r;
    snprintf(want, sizeof want, "%llu %llx\n", (unsigned long long)ts.n,
             (unsigned long long)ts.hash);
    CHECK_STR(reply, want);
    nt_tls_close(&t);
    nt_sink_stop(&s);
    h_stop(&h);
}

static void test_idle_timeout(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"limits\":{\"idle_timeout_s\":1},\"listeners\":"
             "[" TCP_LISTENER("idle", 0, 0) "]}",
             port, e.port);
    srvh h;
    CHECK(h_start(&h, json));
    int fd = nt_connect(port);
    CHECK(echo_roundtrip(fd, 1000, 1));
    /* Say nothing: brokerside must close the connection. */
    uint8_t *rest;
    CHECK_EQ(nt_read_to_eof(fd, &rest), 0);
    free(rest);
    close(fd);
    CHECK_EQ(counter("brokerside_idle_timeouts_total", "listener=\"idle\""), 1);
    h_stop(&h);
    nt_echo_stop(&e);
}

static void test_handshake_timeout(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":{\"bind\":\"127.0.0.1:0\",\"probe_interval_s\":3600},"
             "\"limits\":{\"handshake_timeout_s\":1},\"listeners\":"
             "[{\"name\":\"hst\","
             "\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\",\"tls\":"
             "{\"cert\":\"%s/"
             "server.crt\",\"key\":\"%s/server.key\"}}]}",
             port, e.port, g_dir, g_dir);
    srvh h;
    CHECK(h_start(&h, json));
    /* the readiness probe's one connect (the next is an hour away) */
    CHECK(WAIT_UNTIL(gauge("brokerside_upstream_up", "listener=\"hst\"") == 1));
    /* The probe's connect completes in the kernel's backlog, before the echo
     * thread accept()s it: counting the upstream's accepts right after the
     * gauge said "up" raced with that thread under load (a probe counted as
     * a client's broker connection). Wait for the echo to have seen it. */
    CHECK(WAIT_UNTIL(atomic_load(&e.accepted) == 1));
    int probes = 1;
    int fd = nt_connect(port);
    /* The start of a ClientHello record, then silence. */
    static const uint8_t partial[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00};
    CHECK(nt_write_all(fd, partial, sizeof partial));
    uint8_t *rest;
    CHECK(nt_read_to_eof(fd, &rest) <= 0);
    free(rest);
    close(fd);
    CHECK_EQ(
        counter("brokerside_tls_handshake_failures_total", "listener=\"hst\",reason=\"timeout\""),
        1);
    /* Not TLS at all: refused with its own reason, not a timeout. */
    fd = nt_connect(port);
    CHECK(nt_write_all(fd, "GET / HTTP/1.1\r\n\r\n", 18));
    CHECK(nt_read_to_eof(fd, &rest) <= 0);
    free(rest);
    close(fd);
    CHECK_EQ(counter("brokerside_tls_handshake_failures_total",
                     "listener=\"hst\",reason=\"http_request\""),
             1);
    /* Plaintext Kafka (an ApiVersions v3 request) on the TLS port. */
    static const uint8_t kafka[] = {0, 0, 0,   0x14, 0,   0x12, 0,   3,   0, 0, 0, 1,
                                    0, 6, 'c', 'l',  'i', 'e',  'n', 't', 0, 0, 0, 0};
    fd = nt_connect(port);
    CHECK(nt_write_all(fd, kafka, sizeof kafka));
    CHECK(nt_read_to_eof(fd, &rest) <= 0);
    free(rest);
    close(fd);
    CHECK_EQ(counter("brokerside_tls_handshake_failures_total",
                     "listener=\"hst\",reason=\"plaintext_kafka\""),
             1);
    /* A client that connects and leaves without a byte. */
    fd = nt_connect(port);
    close(fd);
    CHECK(WAIT_UNTIL(counter("brokerside_tls_handshakes_total", "listener=\"hst\"") == 0 &&
                     counter("brokerside_tls_handshake_failures_total",
                             "listener=\"hst\",reason=\"eof\"") == 1));
    CHECK_EQ(counter("brokerside_tls_handshakes_total", "listener=\"hst\""), 0);
    /* None of those clients made a broker connection: the upstream is dialled
     * only after a completed handshake. */
    CHECK(WAIT_UNTIL(gauge("brokerside_connections_open", "listener=\"hst\"") == 0));
    CHECK_EQ(atomic_load(&e.accepted) - probes, 0);
    /* A client that completes its handshake does get one. */
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    nt_tls t;
    CHECK(nt_tls_connect(&t, port, ca, NULL, NULL));
    CHECK(nt_tls_write(&t, "ping", 4));
    uint8_t pong[4];
    CHECK(nt_tls_read_n(&t, pong, 4) && memcmp(pong, "ping", 4) == 0);
    CHECK_EQ(atomic_load(&e.accepted) - probes, 1);
    nt_tls_close(&t);
    h_stop(&h);
    nt_echo_stop(&e);
}

static void test_connection_limit(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":2,\"admin\":null,\"limits\":{\"max_connections\":2},\"listeners\":"
             "[" TCP_LISTENER("lim", 0, 0) "]}",
             port, e.port);
    srvh h;
    CHECK(h_start(&h, json));
    int a = nt_connect(port), b = nt_connect(port);
    CHECK(echo_roundtrip(a, 100, 1));
    CHECK(echo_roundtrip(b, 100, 2));
    int c = nt_connect(port);
    CHECK(c >= 0);
    uint8_t *rest;
    /* Accepted and closed at once: EOF or reset, never data. */
    CHECK(nt_read_to_eof(c, &rest) <= 0);
    free(rest);
    close(c);
    CHECK_EQ(counter("brokerside_connections_rejected_total", "listener=\"lim\",reason=\"limit\""),
             1);
    /* Freeing a slot lets the next client in. */
    close(a);
    CHECK(WAIT_UNTIL(bs_server_connections_open(h.srv) == 1));
    int d = nt_connect(port);
    CHECK(echo_roundtrip(d, 100, 3));
    close(d);
    close(b);
    h_stop(&h);
    nt_echo_stop(&e);
}

static void test_upstream_down(void)
{
    int dead = nt_free_port(); /* nothing listens there */
    int port = nt_free_port(), tport = nt_free_port();
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":{\"bind\":\"127.0.0.1:0\",\"probe_interval_s\":0.2},"
             "\"listeners\":[" TCP_LISTENER(
                 "down", 0, 0) ",{\"name\":\"downtls\",\"bind\":\"127.0.0.1:%d\",\"upstream\":"
                               "\"127.0.0.1:%d\",\"protocol\":\"tcp\","
                               "\"tls\":{\"cert\":\"%s/server.crt\",\"key\":\"%s/server.key\"}}]}",
             port, dead, tport, dead, g_dir, g_dir);
    srvh h;
    CHECK(h_start(&h, json));
    int fd = nt_connect(port);
    uint8_t *rest;
    CHECK_EQ(nt_read_to_eof(fd, &rest), 0); /* clean FIN, not a reset */
    free(rest);
    close(fd);
    CHECK(counter("brokerside_upstream_connect_failures_total", "listener=\"down\"") >= 1);
    /* TLS: the handshake completes, then a clean close_notify. */
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    nt_tls t;
    CHECK(nt_tls_connect(&t, tport, ca, NULL, NULL));
    CHECK_EQ(nt_tls_read_end(&t), SSL_ERROR_ZERO_RETURN);
    nt_tls_close(&t);
    CHECK(counter("brokerside_upstream_connect_failures_total", "listener=\"downtls\"") >= 1);
    /* Readiness names the failing listener. */
    char why[256] = "";
    CHECK(WAIT_UNTIL(gauge("brokerside_upstream_up", "listener=\"down\"") == 0 &&
                     !bs_server_ready(h.srv, why, sizeof why) && strstr(why, "down") != NULL));
    /* The upstream comes back: readiness recovers and clients are served. */
    nt_echo e;
    atomic_init(&e.accepted, 0);
    e.port = dead;
    e.lfd = nt_listen(&e.port);
    pthread_create(&e.thr, NULL, nt_echo_main, &e);
    CHECK(WAIT_UNTIL(bs_server_ready(h.srv, why, sizeof why)));
    CHECK_EQ(gauge("brokerside_upstream_up", "listener=\"down\""), 1);
    fd = nt_connect(port);
    CHECK(echo_roundtrip(fd, 1000, 9));
    close(fd);
    h_stop(&h);
    nt_echo_stop(&e);
}

/* The child of test_out_of_descriptors: a server with a TLS and a plaintext
 * listener whose process has exactly one descriptor left, so a client can be
 * accepted but its upstream socket cannot be created. Each listener must
 * then pause accepting (counted, logged). Talks to the parent over `to` (a
 * byte when a client may connect) and `from` (a byte per client done).
 * Returns the exit status: 0 when every check held. */
static int emfile_child(int to, int from)
{
    /* The upstream listens but never accepts: the readiness probe (connect
     * only, for `tcp`) succeeds and no descriptor stays open in this process
     * for its connections. */
    int up_port = 0;
    int up_fd = nt_listen(&up_port);
    int port = nt_free_port(), tport = nt_free_port();
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":{\"bind\":\"127.0.0.1:0\",\"probe_interval_s\":3600},"
             "\"listeners\":[" TCP_LISTENER(
                 "emplain", 0, 0) ",{\"name\":\"emtls\",\"bind\":\"127.0.0.1:%d\",\"upstream\":"
                                  "\"127.0.0.1:%d\",\"protocol\":\"tcp\","
                                  "\"tls\":{\"cert\":\"%s/server.crt\",\"key\":\"%s/server.key\"}}]}",
             port, up_port, tport, up_port, g_dir, g_dir);
    srvh h;
    if (up_fd < 0 || !h_start(&h, json)) return 10;
    /* both first probes done (their sockets closed); the next is an hour away */
    char why[256];
    if (!WAIT_UNTIL(bs_server_ready(h.srv, why, sizeof why))) return 14;
    int ports[2] = {tport, port};
    if (write(to, ports, sizeof ports) != (ssize_t)sizeof ports) return 11;
    /* A low limit, then fill it: one descriptor is left for the accept. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 256;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 12;
    int filler[256], n = 0;
    while (n < 256 && (filler[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    if (n == 0 || errno != EMFILE) return 13;
    close(filler[--n]);
    int status = 0;
    static const char *const names[] = {"emtls", "emplain"};

    for (int i = 0; i < 2 && status == 0; i++) {
        char lab[64], plab[80];
        snprintf(lab, sizeof lab, "listener=\"%s\"", names[i]);
        snprintf(plab, sizeof plab, "%s,at=\"upstream\"", lab);
        char go = 'g', done;
        if (write(to, &go, 1) != 1) status = 20;
        /* the client is accepted, its upstream socket fails: accepting pauses */
        else if (!WAIT_UNTIL(counter("brokerside_accept_pauses_total", plab) == 1 &&
                             counter("brokerside_upstream_connect_failures_total", lab) == 1)) {
            fprintf(stderr, "emfile child: %s: %lld pauses, %lld upstream failures\n", names[i],
                    (long long)counter("brokerside_accept_pauses_total", plab),
                    (long long)counter("brokerside_upstream_connect_failures_total", lab));
            status = 21 + i;
        }
        else if (read(from, &done, 1) != 1)
            status = 30;
        /* the client's descriptor is free again for the next one */
        else if (!WAIT_UNTIL(bs_server_connections_open(h.srv) == 0))
            status = 31;
    }
    while (n > 0)
        close(filler[--n]);
    h_stop(&h);
    close(up_fd);
    return status;
}

/* Out of descriptors when the upstream is dialled: a TLS listener (dial after
 * the handshake) pauses accepting like a plaintext one (dial at accept), and
 * both count brokerside_accept_pauses_total. In a child process, whose
 * descriptor limit can be exhausted without harming this one. */
static void test_out_of_descriptors(void)
{
    int to_parent[2], to_child[2];
    CHECK_EQ(pipe(to_parent), 0);
    CHECK_EQ(pipe(to_child), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(to_parent[0]);
        close(to_child[1]);
        _exit(emfile_child(to_parent[1], to_child[0]));
    }
    close(to_parent[1]);
    close(to_child[0]);
    int ports[2];
    CHECK_EQ(read(to_parent[0], ports, sizeof ports), (ssize_t)sizeof ports);
    char ca[300], go, done = 'd';
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    /* TLS: the handshake completes, then a clean close (no upstream socket) */
    if (read(to_parent[0], &go, 1) == 1) {
        nt_tls t;
        CHECK(nt_tls_connect(&t, ports[0], ca, NULL, NULL));
        CHECK_EQ(nt_tls_read_end(&t), SSL_ERROR_ZERO_RETURN);
        nt_tls_close(&t);
        CHECK_EQ(write(to_child[1], &done, 1), 1);
    }
    /* plaintext: accepted, then closed */
    if (read(to_parent[0], &go, 1) == 1) {
        int fd = nt_connect(ports[1]);
        uint8_t *rest;
        CHECK(nt_read_to_eof(fd, &rest) <= 0);
        free(rest);
        close(fd);
        CHECK_EQ(write(to_child[1], &done, 1), 1);
    }
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "emfile child: status 0x%x\n", status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(to_parent[0]);
    close(to_child[1]);
}

static void test_tls_origination(void)
{
    char cert[300], key[300], ca[300], other[300];
    snprintf(cert, sizeof cert, "%s/server.crt", g_dir);
    snprintf(key, sizeof key, "%s/server.key", g_dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    snprintf(other, sizeof other, "%s/other-ca.crt", g_dir);
    nt_tls_echo te;
    nt_tls_echo_start(&te, cert, key);
    int good = nt_free_port(), bad = nt_free_port();
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":["
             "{\"name\":\"orig\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\","
             "\"protocol\":\"tcp\","
             "\"upstream_tls\":{\"ca\":\"%s\",\"server_name\":\"localhost\"}},"
             "{\"name\":\"origbad\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\","
             "\"protocol\":\"tcp\","
             "\"upstream_tls\":{\"ca\":\"%s\",\"server_name\":\"localhost\"}}]}",
             good, te.port, ca, bad, te.port, other);
    srvh h;
    CHECK(h_start(&h, json));
    int fd = nt_connect(good);
    CHECK(echo_roundtrip(fd, 300000, 5));
    close(fd);
    CHECK(atomic_load(&te.handshakes) >= 1);
    /* An upstream certificate from another CA is refused: the client is
     * closed and the failure counted. */
    fd = nt_connect(bad);
    uint8_t *rest;
    CHECK(nt_write_all(fd, "ping", 4));
    CHECK(nt_read_to_eof(fd, &rest) <= 0);
    free(rest);
    close(fd);
    CHECK(counter("brokerside_upstream_connect_failures_total", "listener=\"origbad\"") >= 1);
    h_stop(&h);
    nt_tls_echo_stop(&te);
}

static void test_graceful_drain(void)
{
    nt_sink s;
    nt_sink_start(&s, true);
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port(), eport = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":2,\"admin\":null,\"limits\":{\"shutdown_grace_s\":60},\"listeners\":"
             "[" TCP_LISTENER("drain", 0, 0) "," TCP_LISTENER("drainidle", 0, 0) "]}",
             port, s.port, eport, e.port);
    srvh h;
    CHECK(h_start(&h, json));
    /* Bytes in flight: the client sent everything (and its EOF) and waits
     * for the answer; the upstream has not read them yet. 256 KiB fit in
     * the socket buffers and brokerside's buffer, so the sender finishes. */
    int fd = nt_connect(port);
    const size_t total = 256u << 10;
    nt_sender snd;
    nt_sender_start(&snd, fd, total, 21);
    pthread_join(snd.thr, NULL);
    CHECK(snd.ok);
    shutdown(fd, SHUT_WR);
    CHECK(WAIT_UNTIL(counter("brokerside_bytes_total",
                             "listener=\"drain\",direction=\"client_to_upstream\"") > 0));
    /* An idle connection (nothing in flight) is closed on shutdown. */
    int idle = nt_connect(eport);
    CHECK(echo_roundtrip(idle, 10, 1));
    h_call(&h, h_do_shutdown, (void *)1);
    uint8_t *rest;
    CHECK_EQ(nt_read_to_eof(idle, &rest), 0);
    free(rest);
    close(idle);
    /* Listening sockets are gone: new clients are refused. (Probed on the
     * echo listener: a connection that races the close still ends cleanly
     * there, while the one-connection sink would never answer it.) */
    int probe = -1;
    CHECK(WAIT_UNTIL((probe = nt_connect(eport)) < 0 || (close(probe), false)));
    /* The busy connection is left alone however long the upstream pauses
     * (well past the 1 s quiet period), then delivers everything, including
     * the upstream's answer. */
    nt_sleep_ms(1500);
    atomic_store(&s.paused, false);
    long n = nt_read_to_eof(fd, &rest);
    char want[64];
    snprintf(want, sizeof want, "%llu %llx\n", (unsigned long long)total,
             (unsigned long long)snd.hash);
    CHECK(n > 0 && (size_t)n == strlen(want) && memcmp(rest, want, (size_t)n) == 0);
    if (n < 0 || (size_t)n != strlen(want))
        fprintf(stderr, "  drain: got %ld bytes, sink saw %llu\n", n, (unsigned long long)s.count);
    free(rest);
    close(fd);
    CHECK(WAIT_UNTIL(atomic_load(&h.done)));
    h_stop(&h);
    nt_sink_stop(&s);
    nt_echo_stop(&e);
}

/* IPv6 listener (skipped when the machine has no IPv6 loopback). */
static void test_ipv6_listener(void)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
    socklen_t len = sizeof a6;
    if (have_v6) getsockname(probe, (struct sockaddr *)&a6, &len);
    if (probe >= 0) close(probe);
    if (!have_v6) {
        fprintf(stderr, "  (no IPv6 loopback: skipped)\n");
        return;
    }
    int port = ntohs(a6.sin6_port);
    nt_echo e;
    nt_echo_start(&e);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":2,\"admin\":null,\"listeners\":[{\"name\":\"v6\",\"bind\":\"[::1]:%d\","
             "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\"}]}",
             port, e.port);
    srvh h;
    CHECK(h_start(&h, json));
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct timeval tv = {(time_t)NT_WAIT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK(connect(fd, (struct sockaddr *)&a6, sizeof a6) == 0);
    CHECK(echo_roundtrip(fd, 100000, 6));
    close(fd);
    h_stop(&h);
    nt_echo_stop(&e);
}

/* A session filter for the seam: upper-cases client bytes, and answers
 * every client chunk containing '!' with "ACK" injected back to the client. */
static int g_sess_open, g_sess_closed;
static bs_status up_open(void *ctx, const bs_session_info *info, void **state)
{
    (void)ctx;
    CHECK_STR(info->listener->name, "sess");
    CHECK(info->peer && strncmp(info->peer, "127.0.0.1:", 10) == 0);
    CHECK(info->kafka && info->kafka->max_frame_bytes == 104857600);
    CHECK(info->principal == NULL);
    g_sess_open++;
    *state = &g_sess_open;
    return BS_OK;
}
static bs_status up_client(void *state, bs_buf *in, bs_buf *fwd, bs_buf *back)
{
    (void)state;
    size_t n = bs_buf_readable(in);
    if (n > bs_buf_free_space(fwd)) n = bs_buf_free_space(fwd);
    uint8_t tmp[65536];
    bool bang = false;
    for (size_t i = 0; i < n && i < sizeof tmp; i++) {
        uint8_t ch = bs_buf_read_ptr(in)[i];
        bang |= ch == '!';
        tmp[i] = (ch >= 'a' && ch <= 'z') ? (uint8_t)(ch - 32) : ch;
    }
    if (n > sizeof tmp) n = sizeof tmp;
    if (bang && bs_buf_append(back, "ACK", 3) != BS_OK) return BS_OK; /* retry when room */
    BS_GUARD(bs_buf_append(fwd, tmp, n));
    bs_buf_consume(in, n);
    return BS_OK;
}
static bs_status up_upstream(void *state, bs_buf *in, bs_buf *fwd, bs_buf *back)
{
    (void)state;
    (void)back;
    size_t n = bs_buf_readable(in);
    if (n > bs_buf_free_space(fwd)) n = bs_buf_free_space(fwd);
    BS_GUARD(bs_buf_append(fwd, bs_buf_read_ptr(in), n));
    bs_buf_consume(in, n);
    return BS_OK;
}
static bool up_quiet(const void *state)
{
    (void)state;
    return true;
}
static void up_close(void *state)
{
    if (state) g_sess_closed++;
}
/* on_upstream_written: net/ reports every byte written to the upstream. */
static _Atomic size_t g_up_written;
static void up_written(void *state, size_t n)
{
    (void)state;
    CHECK(n > 0);
    g_up_written += n;
}
static const bs_session_ops upper_ops = {up_open,  up_client, up_upstream, up_quiet,
                                         up_close, NULL,      NULL,        up_written};

static void test_session_filter(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[1024];
    snprintf(
        json, sizeof json,
        "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"sess\",\"bind\":\"127.0.0.1:%d\","
        "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"kafka\"}]}",
        port, e.port);
    srvh h;
    memset(&h, 0, sizeof h);
    /* Install the session between new and start: start by hand. */
    snprintf(h.cfgpath, sizeof h.cfgpath, "%s/sess.json", g_dir);
    nt_write_file(h.cfgpath, json);
    bs_config_errors errs = {0};
    CHECK(bs_config_load(h.cfgpath, &h.cfg, &errs) == BS_OK);
    bs_config_errors_free(&errs);
    h.loop = ev_loop_new(EVFLAG_AUTO);
    pthread_mutex_init(&h.m, NULL);
    pthread_cond_init(&h.cv, NULL);
    char err[300];
    CHECK(bs_server_new(h.loop, &h.cfg->net, &h.srv, err, sizeof err) == BS_OK);
    CHECK(bs_server_set_session(h.srv, "nope", &upper_ops, NULL) == BS_E_NOT_FOUND);
    CHECK(bs_server_set_session(h.srv, "sess", &upper_ops, NULL) == BS_OK);
    ev_async_init(&h.call, h_call_cb);
    ev_async_start(h.loop, &h.call);
    CHECK(bs_server_start(h.srv, h_on_done, &h) == BS_OK);
    CHECK(bs_server_set_session(h.srv, "sess", &upper_ops, NULL) == BS_E_STATE);
    pthread_create(&h.thr, NULL, h_main, &h);
    int fd = nt_connect(port);
    CHECK(nt_write_all(fd, "hello kafka!", 12));
    shutdown(fd, SHUT_WR);
    uint8_t *got;
    long n = nt_read_to_eof(fd, &got);
    /* The injected ACK reaches the client before the echo of the forwarded bytes. */
    CHECK(n == 15 && memcmp(got, "ACKHELLO KAFKA!", 15) == 0);
    free(got);
    close(fd);
    CHECK(WAIT_UNTIL(gauge("brokerside_connections_open", "listener=\"sess\"") == 0));
    CHECK_EQ(g_sess_open, 1);
    CHECK_EQ(g_sess_closed, 1);
    /* the 12 forwarded bytes were reported written to the upstream */
    CHECK_EQ((long long)g_up_written, 12);
    h_stop(&h);
    nt_echo_stop(&e);
}

/* A session that takes all input into its own storage and releases it
 * only 1000 bytes per call: output must keep flowing with an empty `in`. */
typedef struct hold_state {
    uint8_t *data;
    size_t len, cap;
} hold_state;
static bs_status hold_open(void *ctx, const bs_session_info *info, void **state)
{
    (void)ctx;
    (void)info;
    *state = calloc(1, sizeof(hold_state));
    return *state ? BS_OK : BS_E_NOMEM;
}
static bs_status hold_client(void *state, bs_buf *in, bs_buf *fwd, bs_buf *back)
{
    (void)back;
    hold_state *h = state;
    size_t n = bs_buf_readable(in);
    if (n) {
        if (h->len + n > h->cap) {
            size_t cap = (h->len + n) * 2;
            uint8_t *p = realloc(h->data, cap);
            if (!p) return BS_E_NOMEM;
            h->data = p;
            h->cap = cap;
        }
        memcpy(h->data + h->len, bs_buf_read_ptr(in), n);
        h->len += n;
        bs_buf_consume(in, n);
    }
    size_t k = h->len < 1000 ? h->len : 1000;
    if (k && bs_buf_append(fwd, h->data, k) == BS_OK) {
        memmove(h->data, h->data + k, h->len - k);
        h->len -= k;
    }
    return BS_OK;
}
static bool hold_quiet(const void *state)
{
    return ((const hold_state *)state)->len == 0;
}
static void hold_close(void *state)
{
    hold_state *h = state;
    if (h) free(h->data);
    free(h);
}
static const bs_session_ops hold_ops = {hold_open, hold_client, up_upstream, hold_quiet,
                                        hold_close, NULL, NULL, NULL};

static void test_session_holding_output(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[1024];
    snprintf(
        json, sizeof json,
        "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"hold\",\"bind\":\"127.0.0.1:%d\","
        "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"kafka\"}]}",
        port, e.port);
    srvh h;
    CHECK(h_start_session(&h, json, "hold", &hold_ops));
    int fd = nt_connect(port);
    CHECK(echo_roundtrip(fd, 300000, 12));
    close(fd);
    CHECK(WAIT_UNTIL(gauge("brokerside_connections_open", "listener=\"hold\"") == 0));
    h_stop(&h);
    nt_echo_stop(&e);
}

/* A client that closes with half a Kafka request sent: both sides close at
 * once (counted), not at the idle timeout; the upstream sees its EOF. */
static void test_partial_frame_closes_both(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"limits\":{\"idle_timeout_s\":3600},"
             "\"kafka\":{\"frame_timeout_s\":1},\"listeners\":"
             "[{\"name\":\"part\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\","
             "\"protocol\":\"kafka\"}]}",
             port, e.port);
    srvh h;
    CHECK(h_start_session(&h, json, "part", bs_kafka_session_ops()));
    /* a frame announcing 100 bytes; 10 sent */
    static const uint8_t partial[] = {0, 0, 0, 100, 0, 3, 0, 1, 0, 0, 0, 7, 0, 0};
    int fd = nt_connect(port);
    CHECK(nt_write_all(fd, partial, sizeof partial));
    shutdown(fd, SHUT_WR);
    uint8_t *got;
    CHECK(nt_read_to_eof(fd, &got) <= 0);
    free(got);
    close(fd);
    CHECK(WAIT_UNTIL(gauge("brokerside_connections_open", "listener=\"part\"") == 0));
    CHECK_EQ(counter("brokerside_connections_truncated_total",
                     "listener=\"part\",side=\"client\""),
             1);
    /* A client that sends half a request and then nothing (slowloris) is
     * closed at kafka.frame_timeout_s (1 s here), not at the idle timeout. */
    fd = nt_connect(port);
    CHECK(nt_write_all(fd, partial, sizeof partial));
    CHECK(nt_read_to_eof(fd, &got) <= 0);
    free(got);
    close(fd);
    CHECK(WAIT_UNTIL(gauge("brokerside_connections_open", "listener=\"part\"") == 0));
    CHECK_EQ(counter("brokerside_connections_overdue_total", "listener=\"part\""), 1);
    h_stop(&h);
    nt_echo_stop(&e);
}

static char g_principal[512];
static bs_status pr_open(void *ctx, const bs_session_info *info, void **state)
{
    (void)ctx;
    snprintf(g_principal, sizeof g_principal, "%s", info->principal ? info->principal : "(none)");
    *state = NULL;
    return BS_OK;
}
static void pr_close(void *state)
{
    (void)state;
}
static const bs_session_ops principal_ops = {pr_open, up_upstream, up_upstream, up_quiet, pr_close,
                                             NULL, NULL, NULL};

static void test_principal_and_required_cert(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[2048];
    snprintf(
        json, sizeof json,
        "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"mtls\",\"bind\":\"127.0.0.1:%d\","
        "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"kafka\",\"tls\":{\"cert\":\"%s/server.crt\","
        "\"key\":\"%s/server.key\",\"client_ca\":\"%s/ca.crt\",\"client_auth\":\"required\"}}]}",
        port, e.port, g_dir, g_dir, g_dir);
    srvh h;
    CHECK(h_start_session(&h, json, "mtls", &principal_ops));
    char ca[300], cert[300], key[300], ucert[300], ukey[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    snprintf(cert, sizeof cert, "%s/client.crt", g_dir);
    snprintf(key, sizeof key, "%s/client.key", g_dir);
    snprintf(ucert, sizeof ucert, "%s/untrusted-client.crt", g_dir);
    snprintf(ukey, sizeof ukey, "%s/untrusted-client.key", g_dir);
    nt_tls t;
    CHECK(nt_tls_connect(&t, port, ca, cert, key));
    uint8_t in[4];
    CHECK(nt_tls_write(&t, "ping", 4) && nt_tls_read_n(&t, in, 4) && memcmp(in, "ping", 4) == 0);
    CHECK(strstr(g_principal, "CN=dev-client") != NULL);
    nt_tls_close(&t);
    /* No certificate, or one from an unknown CA: refused and counted. With
     * TLS 1.3 the client learns it on its first read. */
    bool refused = !nt_tls_connect(&t, port, ca, NULL, NULL) || !nt_tls_write(&t, "ping", 4) ||
                   !nt_tls_read_n(&t, in, 4);
    CHECK(refused);
    nt_tls_close(&t);
    refused = !nt_tls_connect(&t, port, ca, ucert, ukey) || !nt_tls_write(&t, "ping", 4) ||
              !nt_tls_read_n(&t, in, 4);
    CHECK(refused);
    nt_tls_close(&t);
    CHECK(WAIT_UNTIL(counter("brokerside_tls_handshake_failures_total",
                             "listener=\"mtls\",reason=\"certificate_required\"") == 1));
    CHECK(WAIT_UNTIL(counter("brokerside_tls_handshake_failures_total",
                             "listener=\"mtls\",reason=\"unknown_ca\"") == 1));
    CHECK_EQ(counter("brokerside_tls_handshakes_total", "listener=\"mtls\""), 1);
    h_stop(&h);
    nt_echo_stop(&e);
}

/* Connection observer of test_closed_duration_counts_handshake: the
 * duration of the last CLOSED event (-1 before one). */
static atomic_llong g_closed_ms = -1;
static void closed_obs(void *ctx, const bs_conn_event *ev)
{
    (void)ctx;
    if (ev->kind == BS_CONN_EV_CLOSED) atomic_store(&g_closed_ms, (long long)ev->duration_ms);
}

/* A TLS connection's duration (audit ConnectionClosed) runs from the accept,
 * the client handshake included, although the upstream is dialled only once
 * that handshake is done: a client that waits 400 ms before its ClientHello
 * is connected for at least 400 ms. */
static void test_closed_duration_counts_handshake(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"dur\",\"bind\":"
             "\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\",\"tls\":{"
             "\"cert\":\"%s/server.crt\",\"key\":\"%s/server.key\"}}]}",
             port, e.port, g_dir, g_dir);
    srvh h;
    atomic_store(&g_closed_ms, -1);
    CHECK(h_start_observed(&h, json, NULL, NULL, closed_obs, NULL));
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    int fd = nt_connect(port);
    usleep(400 * 1000);
    nt_tls t;
    CHECK(nt_tls_handshake(&t, fd, ca, NULL, NULL));
    uint8_t in[4];
    CHECK(nt_tls_write(&t, "ping", 4) && nt_tls_read_n(&t, in, 4) && memcmp(in, "ping", 4) == 0);
    nt_tls_close(&t);
    CHECK(WAIT_UNTIL(atomic_load(&g_closed_ms) >= 0));
    CHECK(atomic_load(&g_closed_ms) >= 400);
    h_stop(&h);
    nt_echo_stop(&e);
}

/* Fake Kafka broker for the readiness probe: answers ApiVersions v0, well
 * or in one of several broken ways (switchable while running). */
enum { FK_GOOD, FK_BAD_CORRELATION, FK_MALFORMED, FK_ERROR_CODE, FK_OVERSIZED };
typedef struct fake_kafka {
    int lfd, port;
    pthread_t thr;
    atomic_int mode;
} fake_kafka;

/* fake_kafka thread body: one ApiVersions v0 answer per connection. */
static void *fake_kafka_main(void *arg)
{
    fake_kafka *k = arg;
    for (;;) {
        int fd = accept(k->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        uint8_t req[256];
        ssize_t r = recv(fd, req, sizeof req, 0);
        if (r >= 12) {
            /* size, correlation id (copied), error 0, one api entry */
            uint8_t resp[4 + 4 + 2 + 4 + 6] = {0, 0, 0, 16};
            memcpy(resp + 4, req + 8, 4);
            resp[13] = 1;  /* array length 1 */
            resp[15] = 18; /* api key 18, min 0, max 3 */
            resp[19] = 3;
            switch (atomic_load(&k->mode)) {
            case FK_BAD_CORRELATION:
                resp[7] ^= 0x55;
                break;
            case FK_MALFORMED:
                resp[13] = 2; /* two entries announced, one present */
                break;
            case FK_ERROR_CODE:
                resp[9] = 35;
                break;
            case FK_OVERSIZED:
                resp[1] = 0x10; /* a 1 MiB frame */
                break;
            }
            nt_write_all(fd, resp, sizeof resp);
        }
        close(fd);
    }
}

static void test_readiness_probe(void)
{
    fake_kafka k = {.port = 0};
    atomic_init(&k.mode, FK_GOOD);
    k.lfd = nt_listen(&k.port);
    pthread_create(&k.thr, NULL, fake_kafka_main, &k);
    int p1 = nt_free_port();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":{\"bind\":\"127.0.0.1:0\",\"probe_interval_s\":0.1},"
             "\"listeners\":[{\"name\":\"kprobe\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0."
             "1:%d\"}]}",
             p1, k.port);
    srvh h;
    CHECK(h_start(&h, json));
    char why[256] = "";
    CHECK(WAIT_UNTIL(bs_server_ready(h.srv, why, sizeof why)));
    CHECK_EQ(gauge("brokerside_upstream_up", "listener=\"kprobe\""), 1);
    /* Each broken answer turns readiness off with its reason; a good one
     * turns it back on. */
    static const struct {
        int mode;
        const char *reason;
    } cases[] = {{FK_BAD_CORRELATION, "correlation"},
                 {FK_MALFORMED, "malformed"},
                 {FK_ERROR_CODE, "error code 35"},
                 {FK_OVERSIZED, "out of range"}};
    for (size_t i = 0; i < BS_ARRAY_LEN(cases); i++) {
        atomic_store(&k.mode, cases[i].mode);
        CHECK(WAIT_UNTIL(!bs_server_ready(h.srv, why, sizeof why) && strstr(why, "kprobe") &&
                         strstr(why, cases[i].reason)));
        CHECK_EQ(gauge("brokerside_upstream_up", "listener=\"kprobe\""), 0);
        atomic_store(&k.mode, FK_GOOD);
        CHECK(WAIT_UNTIL(bs_server_ready(h.srv, why, sizeof why)));
    }
    /* Upstream gone entirely. */
    shutdown(k.lfd, SHUT_RDWR);
    pthread_join(k.thr, NULL);
    close(k.lfd);
    CHECK(WAIT_UNTIL(!bs_server_ready(h.srv, why, sizeof why) && strstr(why, "connect")));
    bs_wbuf st;
    bs_wbuf_init(&st, 0);
    bs_server_status_json(h.srv, &st);
    bs_wbuf_put_u8(&st, 0);
    CHECK(strstr((char *)st.data, "\"name\":\"kprobe\"") &&
          strstr((char *)st.data, "\"protocol\":\"kafka\"") &&
          strstr((char *)st.data, "\"upstream_up\":false"));
    bs_wbuf_free(&st);
    h_stop(&h);
}

/* bs_server_reload on the control thread: h_call target. */
typedef struct reload_req {
    const bs_config *cfg;
    bs_status result;
} reload_req;
static void h_do_reload(srvh *h, void *arg)
{
    reload_req *r = arg;
    r->result = bs_server_reload(h->srv, &r->cfg->net);
}

/* Load a config file written from `json` (kept by the caller until after h_stop). */
static bs_config *load_json(const char *name, const char *json)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    nt_write_file(path, json);
    bs_config *cfg = NULL;
    bs_config_errors errs = {0};
    if (bs_config_load(path, &cfg, &errs) != BS_OK) cfg = NULL;
    bs_config_errors_free(&errs);
    return cfg;
}

static void test_reload_limits_and_refusal(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port(), tport = nt_free_port();
    const char *fmt =
        "{\"workers\":2,\"admin\":null,\"limits\":{\"max_connections\":%d},\"listeners\":["
        "{\"name\":\"rl\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":"
        "\"tcp\"},"
        "{\"name\":\"rltls\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":"
        "\"tcp\",\"tls\":{\"cert\":\"%s\",\"key\":\"%s/server.key\"}}]}";
    char json[2048], cert[300], junk[300];
    snprintf(cert, sizeof cert, "%s/server.crt", g_dir);
    snprintf(junk, sizeof junk, "%s/junk.crt", g_dir);
    nt_write_file(junk, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    snprintf(json, sizeof json, fmt, 100, port, e.port, tport, e.port, cert, g_dir);
    srvh h;
    CHECK(h_start(&h, json));
    int a = nt_connect(port), b = nt_connect(port);
    CHECK(echo_roundtrip(a, 10, 1) && echo_roundtrip(b, 10, 2));

    /* Lower the limit live: open connections stay, the next one is refused. */
    snprintf(json, sizeof json, fmt, 2, port, e.port, tport, e.port, cert, g_dir);
    bs_config *lower = load_json("rl2.json", json);
    CHECK(lower != NULL);
    reload_req r = {.cfg = lower};
    h_call(&h, h_do_reload, &r);
    CHECK_EQ(r.result, BS_OK);
    CHECK(bs_server_config(h.srv) == &lower->net);
    int c = nt_connect(port);
    uint8_t *rest;
    CHECK(WAIT_UNTIL(
        counter("brokerside_connections_rejected_total", "listener=\"rl\",reason=\"limit\"") == 1));
    CHECK(nt_read_to_eof(c, &rest) <= 0);
    free(rest);
    close(c);
    CHECK(echo_roundtrip(a, 10, 3) && echo_roundtrip(b, 10, 4));

    /* A certificate that does not parse: refused, nothing applied. */
    snprintf(json, sizeof json, fmt, 100, port, e.port, tport, e.port, junk, g_dir);
    bs_config *broken = load_json("rl3.json", json);
    CHECK(broken != NULL);
    int64_t failed_before = counter("brokerside_config_reloads_total", "result=\"failed\"");
    r.cfg = broken;
    h_call(&h, h_do_reload, &r);
    CHECK(r.result != BS_OK);
    CHECK(bs_server_config(h.srv) == &lower->net);
    CHECK_EQ(counter("brokerside_config_reloads_total", "result=\"failed\""), failed_before + 1);
    c = nt_connect(port);
    CHECK(nt_read_to_eof(c, &rest) <= 0); /* the limit of 2 still holds */
    free(rest);
    close(c);
    nt_tls t;
    CHECK(nt_tls_connect(&t, tport, NULL, NULL, NULL) == false); /* over the limit too */
    nt_tls_close(&t);
    close(a);
    CHECK(WAIT_UNTIL(bs_server_connections_open(h.srv) == 1));
    CHECK(nt_tls_connect(&t, tport, NULL, NULL, NULL));
    CHECK(nt_peer_cert_is(t.ssl, cert));
    nt_tls_close(&t);

    bs_wbuf st;
    bs_wbuf_init(&st, 0);
    bs_server_status_json(h.srv, &st);
    bs_wbuf_put_u8(&st, 0);
    CHECK(strstr((char *)st.data, "\"reloads\":1") != NULL);
    bs_wbuf_free(&st);
    close(b);
    h_stop(&h);
    bs_config_free(lower);
    bs_config_free(broken);
    nt_echo_stop(&e);
}

/* Stop right after start, many times: a worker thread that has not run
 * yet must still get the stop message (no lost wake-up, no hang). */
static void test_stop_right_after_start(void)
{
    for (int i = 0; i < 20; i++) {
        int port = nt_free_port();
        char json[512];
        snprintf(json, sizeof json,
                 "{\"workers\":16,\"admin\":null,\"listeners\":[" TCP_LISTENER("quick", 0, 0) "]}",
                 port, port);
        srvh h;
        CHECK(h_start(&h, json));
        h_call(&h, h_do_shutdown, (i % 2) ? (void *)1 : NULL);
        CHECK(WAIT_UNTIL(atomic_load(&h.done)));
        h_stop(&h);
    }
}

static void test_bind_conflict(void)
{
    /* A port held by a socket without SO_REUSEPORT: bs_server_new fails cleanly. */
    int held = 0, lfd = nt_listen(&held);
    char json[512];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":[" TCP_LISTENER("busy", 0, 0) "]}", held,
             held);
    char path[400];
    snprintf(path, sizeof path, "%s/busy.json", g_dir);
    nt_write_file(path, json);
    bs_config *cfg = NULL;
    bs_config_errors errs = {0};
    CHECK(bs_config_load(path, &cfg, &errs) == BS_OK);
    bs_config_errors_free(&errs);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_server *srv = NULL;
    char err[600] = "";
    CHECK(bs_server_new(loop, &cfg->net, &srv, err, sizeof err) == BS_E_IO);
    CHECK(srv == NULL);
    CHECK(strstr(err, "busy") != NULL);
    ev_loop_destroy(loop);
    bs_config_free(cfg);
    close(lfd);
}

/* ---- PROXY protocol ---------------------------------------------------- */

/* What the observer and the session were told about the last PROXY connection. */
static pthread_mutex_t g_pp_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_pp_accepted[80], g_pp_closed[80], g_pp_session_peer[80];

/* Observer: remember ACCEPTED's and CLOSED's "ip:port". */
static void pp_obs(void *ctx, const bs_conn_event *ev)
{
    (void)ctx;
    pthread_mutex_lock(&g_pp_lock);
    if (ev->kind == BS_CONN_EV_ACCEPTED)
        snprintf(g_pp_accepted, sizeof g_pp_accepted, "%s:%u", ev->peer_ip, ev->peer_port);
    if (ev->kind == BS_CONN_EV_CLOSED)
        snprintf(g_pp_closed, sizeof g_pp_closed, "%s:%u", ev->peer_ip, ev->peer_port);
    pthread_mutex_unlock(&g_pp_lock);
}

/* A pass-through session that remembers the peer it was opened with. */
static bs_status pp_sess_open(void *f, const bs_session_info *info, void **st)
{
    (void)f;
    pthread_mutex_lock(&g_pp_lock);
    snprintf(g_pp_session_peer, sizeof g_pp_session_peer, "%s", info->peer);
    pthread_mutex_unlock(&g_pp_lock);
    *st = (void *)1;
    return BS_OK;
}
static bs_status pp_sess_pass(void *st, bs_buf *in, bs_buf *fwd, bs_buf *back)
{
    (void)st;
    (void)back;
    size_t n = bs_buf_readable(in), room = bs_buf_free_space(fwd);
    if (n > room) n = room;
    if (n && bs_buf_append(fwd, bs_buf_read_ptr(in), n) == BS_OK) bs_buf_consume(in, n);
    return BS_OK;
}
static bool pp_sess_quiet(const void *st)
{
    (void)st;
    return true;
}
static void pp_sess_close(void *st)
{
    (void)st;
}
static const bs_session_ops pp_sess = {.open = pp_sess_open,
                                       .on_client_bytes = pp_sess_pass,
                                       .on_upstream_bytes = pp_sess_pass,
                                       .is_quiescent = pp_sess_quiet,
                                       .close = pp_sess_close};

/* Copy a remembered string under the lock. */
static void pp_get(const char *src, char *out, size_t n)
{
    pthread_mutex_lock(&g_pp_lock);
    snprintf(out, n, "%s", src);
    pthread_mutex_unlock(&g_pp_lock);
}

/* Observer: remember the last PROXY_REJECTED event and count them. */
static char g_pp_rej[256];
static atomic_int g_pp_rej_n;
static void pp_rej_obs(void *ctx, const bs_conn_event *ev)
{
    (void)ctx;
    if (ev->kind != BS_CONN_EV_PROXY_REJECTED) return;
    pthread_mutex_lock(&g_pp_lock);
    snprintf(g_pp_rej, sizeof g_pp_rej, "%s %s %s:%u id=%d detail=%d %s", ev->listener, ev->reason,
             ev->peer_ip, ev->peer_port, ev->conn_id > 0, ev->detail && *ev->detail,
             ev->principal ? "principal" : "-");
    pthread_mutex_unlock(&g_pp_lock);
    atomic_fetch_add(&g_pp_rej_n, 1);
}

/* The last PROXY_REJECTED event is `reason` from 127.0.0.1:`port` on "pp". */
static bool pp_rej_is(const char *reason, int port)
{
    char want[256], got[256];
    snprintf(want, sizeof want, "pp %s 127.0.0.1:%d id=1 detail=1 -", reason, port);
    pp_get(g_pp_rej, got, sizeof got);
    if (strcmp(want, got) != 0) fprintf(stderr, "  rejection event: %s (want %s)\n", got, want);
    return strcmp(want, got) == 0;
}

/* The local port of a connected socket. */
static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    return getsockname(fd, (struct sockaddr *)&a, &len) == 0 ? ntohs(a.sin_port) : -1;
}

/* The counter of rejections for `reason` on listener "pp". */
static int64_t pp_rejected(const char *reason)
{
    char lab[128];
    snprintf(lab, sizeof lab, "listener=\"pp\",reason=\"%s\"", reason);
    return counter("brokerside_proxy_protocol_rejected_total", lab);
}

/* Send `n` bytes on a fresh connection to `port` and expect the server to
 * close it without answering (EOF, or a reset). *lport: the client's port. */
static bool pp_closed_after(int port, const void *p, size_t n, int *lport)
{
    int fd = nt_connect(port);
    if (fd < 0) return false;
    *lport = local_port(fd);
    if (n) nt_write_all(fd, p, n);
    uint8_t *got = NULL;
    long r = nt_read_to_eof(fd, &got);
    free(got);
    close(fd);
    return r <= 0;
}

static const uint8_t PP_V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Plaintext PROXY listener: v1 and v2 headers set the client address the
 * observer and the session see; the header is never forwarded; the stream
 * behind it is. */
static void test_proxy_protocol_plain(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"pp\",\"bind\":"
             "\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\","
             "\"proxy_protocol\":true,\"proxy_protocol_sources\":[\"10.0.0.0/8\","
             "\"127.0.0.0/8\"]}]}",
             port, e.port);
    srvh h;
    CHECK(h_start_observed(&h, json, "pp", &pp_sess, pp_obs, NULL));
    int64_t v1_before = counter("brokerside_proxy_protocol_accepted_total",
                                "listener=\"pp\",version=\"1\"");
    /* v1, with the first payload bytes in the same segment */
    int fd = nt_connect(port);
    const char v1[] = "PROXY TCP4 192.0.2.7 10.0.0.1 51234 9094\r\nping";
    CHECK(nt_write_all(fd, v1, sizeof v1 - 1));
    uint8_t in[8];
    CHECK(recv(fd, in, 4, MSG_WAITALL) == 4 && memcmp(in, "ping", 4) == 0);
    char got[80];
    pp_get(g_pp_accepted, got, sizeof got);
    CHECK_STR(got, "192.0.2.7:51234");
    pp_get(g_pp_session_peer, got, sizeof got);
    CHECK_STR(got, "192.0.2.7:51234");
    close(fd);
    CHECK(WAIT_UNTIL((pp_get(g_pp_closed, got, sizeof got), strcmp(got, "192.0.2.7:51234") == 0)));
    CHECK_EQ(counter("brokerside_proxy_protocol_accepted_total", "listener=\"pp\",version=\"1\""),
             v1_before + 1);

    /* v2 over IPv6, sent a byte at a time, then the payload */
    uint8_t v2[16 + 36 + 4] = {0};
    memcpy(v2, PP_V2_SIG, 12);
    v2[12] = 0x21;
    v2[13] = 0x21;
    v2[15] = 36;
    inet_pton(AF_INET6, "2001:db8::7", v2 + 16);
    inet_pton(AF_INET6, "2001:db8::1", v2 + 32);
    v2[48] = 0x30;
    v2[49] = 0x39; /* 12345 */
    v2[50] = 0x23;
    v2[51] = 0x86;
    memcpy(v2 + 52, "pong", 4);
    fd = nt_connect(port);
    for (size_t i = 0; i < sizeof v2; i++) {
        CHECK(nt_write_all(fd, v2 + i, 1));
        if (i < 20) nt_sleep_ms(2);
    }
    CHECK(recv(fd, in, 4, MSG_WAITALL) == 4 && memcmp(in, "pong", 4) == 0);
    pp_get(g_pp_session_peer, got, sizeof got);
    CHECK_STR(got, "[2001:db8::7]:12345");
    pp_get(g_pp_accepted, got, sizeof got);
    CHECK_STR(got, "2001:db8::7:12345");
    close(fd);

    /* v2 LOCAL (a health check of the balancer): the socket's own address */
    uint8_t local[16 + 4] = {0};
    memcpy(local, PP_V2_SIG, 12);
    local[12] = 0x20;
    memcpy(local + 16, "lcl!", 4);
    int64_t local_before = counter("brokerside_proxy_protocol_local_total", "listener=\"pp\"");
    fd = nt_connect(port);
    CHECK(nt_write_all(fd, local, sizeof local));
    CHECK(recv(fd, in, 4, MSG_WAITALL) == 4 && memcmp(in, "lcl!", 4) == 0);
    pp_get(g_pp_session_peer, got, sizeof got);
    CHECK(strncmp(got, "127.0.0.1:", 10) == 0);
    close(fd);
    CHECK_EQ(counter("brokerside_proxy_protocol_local_total", "listener=\"pp\""), local_before + 1);
    h_stop(&h);
    nt_echo_stop(&e);
}

/* Hostile and broken headers: each closes the connection, is counted by
 * reason, and told to the observer (PROXY_REJECTED with the reason and the
 * socket's peer); the upstream never sees a byte. */
static void test_proxy_protocol_rejects(void)
{
    nt_sink sk;
    nt_sink_start(&sk, false);
    int port = nt_free_port();
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"limits\":{\"handshake_timeout_s\":0.5},"
             "\"listeners\":[{\"name\":\"pp\",\"bind\":\"127.0.0.1:%d\",\"upstream\":"
             "\"127.0.0.1:%d\",\"protocol\":\"tcp\",\"proxy_protocol\":true,"
             "\"proxy_protocol_sources\":[\"127.0.0.1/32\"]}]}",
             port, sk.port);
    srvh h;
    CHECK(h_start_observed(&h, json, NULL, NULL, pp_rej_obs, NULL));
    struct {
        const char *reason;
        const char *bytes;
        size_t n;
    } cases[] = {
        {BS_PROXY_REASON_MISSING, "\x00\x00\x00\x10\x00\x12\x00\x03", 8},
        {BS_PROXY_REASON_V1, "PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", 36},
        {BS_PROXY_REASON_V2, "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04", 20},
        {BS_PROXY_REASON_OVERSIZED, "\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", 16},
        {BS_PROXY_REASON_EOF, "PROXY TCP4 1.2", 14},
        {BS_PROXY_REASON_EOF, "", 0},
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(cases); i++) {
        int64_t before = pp_rejected(cases[i].reason);
        int events = atomic_load(&g_pp_rej_n), lport = -1;
        if (strcmp(cases[i].reason, BS_PROXY_REASON_EOF) == 0) {
            /* the client gives up: shut its side after the bytes */
            int fd = nt_connect(port);
            lport = local_port(fd);
            if (cases[i].n) nt_write_all(fd, cases[i].bytes, cases[i].n);
            shutdown(fd, SHUT_WR);
            uint8_t b;
            CHECK(recv(fd, &b, 1, 0) <= 0);
            close(fd);
        } else {
            CHECK(pp_closed_after(port, cases[i].bytes, cases[i].n, &lport));
        }
        if (!WAIT_UNTIL(pp_rejected(cases[i].reason) == before + 1))
            fprintf(stderr, "  case %zu (%s) not counted\n", i, cases[i].reason);
        CHECK_EQ(pp_rejected(cases[i].reason), before + 1);
        /* one event per refused connection, naming its reason and its peer */
        CHECK(WAIT_UNTIL(atomic_load(&g_pp_rej_n) == events + 1));
        CHECK(pp_rej_is(cases[i].reason, lport));
    }
    /* an incomplete header, then silence: closed at the handshake deadline */
    int64_t before = pp_rejected(BS_PROXY_REASON_TIMEOUT);
    int lport;
    CHECK(pp_closed_after(port, "\r\n\r\n\x00\r\nQUIT\n\x21", 13, &lport));
    CHECK(WAIT_UNTIL(pp_rejected(BS_PROXY_REASON_TIMEOUT) == before + 1));
    CHECK(WAIT_UNTIL(atomic_load(&g_pp_rej_n) == (int)BS_ARRAY_LEN(cases) + 1));
    CHECK(pp_rej_is(BS_PROXY_REASON_TIMEOUT, lport));
    CHECK(!atomic_load(&sk.connected)); /* the upstream saw nothing */
    h_stop(&h);

    /* a source outside the list: closed before a byte is read, still told */
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"pp\",\"bind\":"
             "\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\","
             "\"proxy_protocol\":true,\"proxy_protocol_sources\":[\"10.0.0.0/8\",\"::1\"]}]}",
             port, sk.port);
    CHECK(h_start_observed(&h, json, NULL, NULL, pp_rej_obs, NULL));
    before = pp_rejected(BS_PROXY_REASON_UNTRUSTED);
    int events = atomic_load(&g_pp_rej_n);
    CHECK(pp_closed_after(port, "PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\nping", 39, &lport));
    CHECK(WAIT_UNTIL(pp_rejected(BS_PROXY_REASON_UNTRUSTED) == before + 1));
    CHECK(WAIT_UNTIL(atomic_load(&g_pp_rej_n) == events + 1));
    CHECK(pp_rej_is(BS_PROXY_REASON_UNTRUSTED, lport));
    CHECK(!atomic_load(&sk.connected));
    h_stop(&h);
    nt_sink_stop(&sk);
}

/* TLS listener: the PROXY header precedes the ClientHello; the TLS
 * handshake then runs on the same socket. A listener without
 * proxy_protocol does not interpret a header: it is bytes like any other. */
static void test_proxy_protocol_tls_and_off(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port(), port2 = nt_free_port();
    char json[3072];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"pp\",\"bind\":"
             "\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\","
             "\"proxy_protocol\":true,\"proxy_protocol_sources\":[\"127.0.0.1\"],"
             "\"tls\":{\"cert\":\"%s/server.crt\",\"key\":\"%s/server.key\"}},"
             "{\"name\":\"plain\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\","
             "\"protocol\":\"tcp\"}]}",
             port, e.port, g_dir, g_dir, port2, e.port);
    srvh h;
    CHECK(h_start_observed(&h, json, NULL, NULL, pp_obs, NULL));
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    int fd = nt_connect(port);
    const char v1[] = "PROXY TCP4 198.51.100.9 10.0.0.1 40000 9094\r\n";
    CHECK(nt_write_all(fd, v1, sizeof v1 - 1));
    nt_tls t;
    CHECK(nt_tls_handshake(&t, fd, ca, NULL, NULL));
    uint8_t in[4];
    CHECK(nt_tls_write(&t, "ping", 4) && nt_tls_read_n(&t, in, 4) && memcmp(in, "ping", 4) == 0);
    char got[80];
    pp_get(g_pp_accepted, got, sizeof got);
    CHECK_STR(got, "198.51.100.9:40000");
    nt_tls_close(&t);
    /* a TLS client that skips the header: refused as missing_header */
    int64_t before = pp_rejected(BS_PROXY_REASON_MISSING);
    CHECK(!nt_tls_connect(&t, port, ca, NULL, NULL));
    nt_tls_close(&t);
    CHECK(WAIT_UNTIL(pp_rejected(BS_PROXY_REASON_MISSING) == before + 1));
    /* the plain listener echoes a header back as data */
    fd = nt_connect(port2);
    CHECK(nt_write_all(fd, v1, sizeof v1 - 1));
    char back[sizeof v1];
    CHECK(recv(fd, back, sizeof v1 - 1, MSG_WAITALL) == (ssize_t)(sizeof v1 - 1));
    CHECK(memcmp(back, v1, sizeof v1 - 1) == 0);
    pp_get(g_pp_accepted, got, sizeof got);
    CHECK(strncmp(got, "127.0.0.1:", 10) == 0);
    close(fd);
    h_stop(&h);
    nt_echo_stop(&e);
}

/* IPv6: a PROXY listener on [::1] trusts ::1/128; and a dual-stack [::]
 * listener sees an IPv4 peer as ::ffff:127.0.0.1, which an IPv4 network in
 * proxy_protocol_sources must match. */
static void test_proxy_protocol_ipv6_sources(void)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
    socklen_t len = sizeof a6;
    if (have_v6) getsockname(probe, (struct sockaddr *)&a6, &len);
    if (probe >= 0) close(probe);
    if (!have_v6) {
        fprintf(stderr, "  (no IPv6 loopback: skipped)\n");
        return;
    }
    int port6 = ntohs(a6.sin6_port), port_any = nt_free_port();
    nt_echo e;
    nt_echo_start(&e);
    char json[2048];
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"listeners\":["
             "{\"name\":\"pp\",\"bind\":\"[::1]:%d\",\"upstream\":\"127.0.0.1:%d\","
             "\"protocol\":\"tcp\",\"proxy_protocol\":true,\"proxy_protocol_sources\":[\"::1/128\"]},"
             "{\"name\":\"ppany\",\"bind\":\"[::]:%d\",\"upstream\":\"127.0.0.1:%d\","
             "\"protocol\":\"tcp\",\"proxy_protocol\":true,"
             "\"proxy_protocol_sources\":[\"127.0.0.0/8\"]}]}",
             port6, e.port, port_any, e.port);
    srvh h;
    CHECK(h_start_observed(&h, json, NULL, NULL, pp_obs, NULL));
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct timeval tv = {(time_t)NT_WAIT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK(connect(fd, (struct sockaddr *)&a6, sizeof a6) == 0);
    const char v1[] = "PROXY TCP6 2001:db8::99 ::1 4321 9094\r\nv6v6";
    CHECK(nt_write_all(fd, v1, sizeof v1 - 1));
    uint8_t in[4];
    CHECK(recv(fd, in, 4, MSG_WAITALL) == 4 && memcmp(in, "v6v6", 4) == 0);
    char got[80];
    pp_get(g_pp_accepted, got, sizeof got);
    CHECK_STR(got, "2001:db8::99:4321");
    close(fd);
    /* IPv4 client on the dual-stack listener */
    fd = nt_connect(port_any);
    const char v1b[] = "PROXY TCP4 203.0.113.5 10.0.0.1 1111 9094\r\nv4v4";
    CHECK(nt_write_all(fd, v1b, sizeof v1b - 1));
    CHECK(recv(fd, in, 4, MSG_WAITALL) == 4 && memcmp(in, "v4v4", 4) == 0);
    pp_get(g_pp_accepted, got, sizeof got);
    CHECK_STR(got, "203.0.113.5:1111");
    close(fd);
    CHECK_EQ(counter("brokerside_proxy_protocol_rejected_total",
                     "listener=\"ppany\",reason=\"untrusted_source\""),
             0);
    h_stop(&h);
    nt_echo_stop(&e);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bs_log_set_level(BS_LOG_WARN);
    nt_make_certs(g_dir, sizeof g_dir);
    RUN(test_forward_both_ways);
    RUN(test_tls_termination);
    RUN(test_half_close_client_side);
    RUN(test_half_close_upstream_side);
    RUN(test_half_close_tls);
    RUN(test_backpressure);
    RUN(test_backpressure_tls);
    RUN(test_idle_timeout);
    RUN(test_handshake_timeout);
    RUN(test_connection_limit);
    RUN(test_upstream_down);
    RUN(test_out_of_descriptors);
    RUN(test_tls_origination);
    RUN(test_graceful_drain);
    RUN(test_ipv6_listener);
    RUN(test_session_filter);
    RUN(test_session_holding_output);
    RUN(test_partial_frame_closes_both);
    RUN(test_principal_and_required_cert);
    RUN(test_closed_duration_counts_handshake);
    RUN(test_readiness_probe);
    RUN(test_reload_limits_and_refusal);
    RUN(test_stop_right_after_start);
    RUN(test_bind_conflict);
    RUN(test_proxy_protocol_plain);
    RUN(test_proxy_protocol_rejects);
    RUN(test_proxy_protocol_tls_and_off);
    RUN(test_proxy_protocol_ipv6_sources);
    if (!getenv("NT_KEEP")) nt_rm_rf(g_dir);
    bs_metrics_shutdown();
    return test_report();
}
