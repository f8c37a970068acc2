/* Unit tests for src/admin/admin.c: a real libev loop on its own thread,
 * real TCP clients on loopback, every endpoint and error path. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/admin.h"
#include "brokerside/config.h"
#include "brokerside/metrics.h"
#include "brokerside/version.h"
#include "test.h"

/* Generous guard so a broken server makes the test fail instead of hang. */
#define CLIENT_TIMEOUT_S 10

typedef struct fixture {
    struct ev_loop *loop;
    ev_async stop;
    pthread_t thread;
    bool running;
    bs_admin *admin;
    atomic_bool ready;
    unsigned port;
    int family;
} fixture;

static bool ready_hook(void *ctx, char *why, size_t whylen)
{
    fixture *f = ctx;
    if (atomic_load(&f->ready)) return true;
    snprintf(why, whylen, "upstream 127.0.0.1:9092 unreachable\n(second line)");
    return false;
}

static void status_hook(void *ctx, bs_wbuf *out)
{
    (void)ctx;
    bs_wbuf_put_str(out, ",\"listeners\":[{\"name\":\"plain\",\"connections\":0}]");
}

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *loop_main(void *arg)
{
    fixture *f = arg;
    ev_run(f->loop, 0);
    return NULL;
}

/* Fill a config for the loopback address of `family`, port 0. */
static void loopback_config(bs_admin_config *cfg, int family, unsigned port)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->enabled = true;
    cfg->probe_interval_s = 5;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&cfg->bind.addr;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        s6->sin6_port = htons((uint16_t)port);
        cfg->bind.addrlen = sizeof *s6;
        cfg->bind.text = "[::1]:0";
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&cfg->bind.addr;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s4->sin_port = htons((uint16_t)port);
        cfg->bind.addrlen = sizeof *s4;
        cfg->bind.text = "127.0.0.1:0";
    }
}

/* Start an endpoint for `cfg` on a fresh loop running on its own thread.
 * timeout > 0 overrides the request timeout. Returns the start status. */
static bs_status fixture_start_cfg(fixture *f, const bs_admin_config *cfg, double timeout)
{
    memset(f, 0, sizeof *f);
    f->family = cfg->bind.addr.ss_family;
    atomic_init(&f->ready, false);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    bs_admin_hooks hooks = {.ctx = f, .ready = ready_hook, .status_json = status_hook};
    char err[256];
    bs_status st = bs_admin_start(f->loop, cfg, &hooks, &f->admin, err, sizeof err);
    if (st != BS_OK) {
        fprintf(stderr, "  admin start: %s\n", err);
        ev_loop_destroy(f->loop);
        return st;
    }
    if (timeout > 0) bs_admin_set_request_timeout(f->admin, timeout);
    f->port = bs_admin_port(f->admin);
    ev_async_init(&f->stop, stop_cb);
    ev_async_start(f->loop, &f->stop);
    f->running = pthread_create(&f->thread, NULL, loop_main, f) == 0;
    CHECK(f->running);
    return BS_OK;
}

/* fixture_start_cfg on the loopback address of `family`, port 0. */
static bs_status fixture_start(fixture *f, int family, double timeout)
{
    bs_admin_config cfg;
    loopback_config(&cfg, family, 0);
    return fixture_start_cfg(f, &cfg, timeout);
}

/* Stop the loop thread, then the endpoint (with the loop quiet, as admin.h
 * requires), then the loop. */
static void fixture_stop(fixture *f)
{
    if (f->running) {
        ev_async_send(f->loop, &f->stop);
        pthread_join(f->thread, NULL);
    }
    bs_admin_stop(f->admin);
    ev_async_stop(f->loop, &f->stop);
    ev_loop_destroy(f->loop);
}

/* A blocking client socket connected to the fixture, with I/O timeouts. */
static int client_connect(const fixture *f, int rcvbuf)
{
    int fd = socket(f->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    if (fd < 0) return -1;
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    bs_admin_config cfg;
    loopback_config(&cfg, f->family, f->port);
    int rc = connect(fd, (struct sockaddr *)&cfg.bind.addr, cfg.bind.addrlen);
    CHECK_EQ(rc, 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return; /* the server may close early (400 paths) */
        c += n;
        len -= (size_t)n;
    }
}

/* Read until EOF (or reset/timeout). Returns a NUL-terminated heap string;
 * *len_out gets the byte count. *timed_out tells a hang from a close. */
static char *read_all(int fd, size_t *len_out, bool *timed_out)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (timed_out) *timed_out = false;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && timed_out) *timed_out = true;
        break;
    }
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

/* One full exchange: connect, send `req` (len bytes), read to EOF. */
static char *http_n(const fixture *f, const char *req, size_t len)
{
    int fd = client_connect(f, 0);
    send_all(fd, req, len);
    bool to;
    char *r = read_all(fd, NULL, &to);
    CHECK(!to);
    close(fd);
    return r;
}

static char *http(const fixture *f, const char *req)
{
    return http_n(f, req, strlen(req));
}

static int status_of(const char *resp)
{
    int code = 0;
    if (sscanf(resp, "HTTP/1.1 %d ", &code) != 1) return -1;
    return code;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : NULL;
}

static long content_length(const char *resp)
{
    const char *p = strstr(resp, "\r\nContent-Length: ");
    return p ? strtol(p + 18, NULL, 10) : -1;
}

/* Poll a gauge/counter until it reaches `want` (the loop updates it on its
 * thread). The deadline only stops a hang; it is not a timing assertion. */
static bool wait_metric(bs_metric *m, int64_t want)
{
    for (int i = 0; i < CLIENT_TIMEOUT_S * 100; i++) {
        if (bs_metric_value(m) == want) return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return bs_metric_value(m) == want;
}

static bs_metric *conns_gauge(void)
{
    return bs_metrics_gauge("brokerside_admin_connections", "", NULL);
}

static void test_endpoints(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    CHECK(f.port != 0);
    bs_metric_add(bs_metrics_counter("brokerside_test_total", "A test counter.", NULL), 42);

    char *r = http(&f, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ(status_of(r), 200);
    CHECK_STR(body_of(r), "ok\n");
    CHECK(strstr(r, "\r\nContent-Type: text/plain; charset=utf-8\r\n") != NULL);
    CHECK_EQ(content_length(r), 3);
    CHECK(strstr(r, "\r\nConnection: close\r\n") != NULL);
    free(r);

    /* Query strings are ignored; HTTP/1.0 needs no Host; LF-only is accepted. */
    r = http(&f, "GET /healthz?verbose=1 HTTP/1.0\n\n");
    CHECK_EQ(status_of(r), 200);
    CHECK_STR(body_of(r), "ok\n");
    free(r);
    r = http(&f, "\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: t\t1\r\n\r\ntrailing body");
    CHECK_EQ(status_of(r), 200);
    free(r);

    /* Readiness follows the hook, with the reason kept on one line. */
    r = http(&f, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ(status_of(r), 503);
    CHECK_STR(body_of(r), "not ready: upstream 127.0.0.1:9092 unreachable (second line)\n");
    free(r);
    atomic_store(&f.ready, true);
    r = http(&f, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ(status_of(r), 200);
    CHECK_STR(body_of(r), "ready\n");
    free(r);
    atomic_store(&f.ready, false);
    r = http(&f, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ(status_of(r), 503);
    free(r);

    r = http(&f, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ(status_of(r), 200);
    CHECK(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL);
    const char *b = body_of(r);
    CHECK(b &&
          strstr(b, "# HELP brokerside_test_total A test counter.\n"
                    "# TYPE brokerside_test_total counter\nbrokerside_test_total 42\n") != NULL);
    /* Our own responses so far: 4 x 200 + 2 x 503 (the current one is
     * counted after rendering). */
    CHECK(b && strstr(b, "brokerside_admin_responses_total{code=\"200\"} 4\n") != NULL);
    CHECK(b && strstr(b, "brokerside_admin_responses_total{code=\"503\"} 2\n") != NULL);
    CHECK_EQ(content_length(r), (long)strlen(b));
    free(r);

    r = http(&f, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ(status_of(r), 200);
    CHECK(strstr(r, "\r\nContent-Type: application/json\r\n") != NULL);
    cJSON *j = cJSON_Parse(body_of(r));
    CHECK(j != NULL);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")), BS_VERSION);
    cJSON *up = cJSON_GetObjectItem(j, "uptime_s");
    CHECK(cJSON_IsNumber(up) && up->valuedouble >= 0);
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(j, "listeners")));
    cJSON *m = cJSON_GetObjectItem(j, "metrics");
    CHECK(cJSON_IsObject(m));
    CHECK_EQ(cJSON_GetObjectItem(m, "brokerside_test_total")->valuedouble, 42);
    CHECK(cJSON_GetObjectItem(m, "brokerside_admin_responses_total{code=\"200\"}") != NULL);
    cJSON_Delete(j);
    free(r);
    fixture_stop(&f);
}

static void test_head_has_no_body(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    char *r = http(&f, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ(status_of(r), 200);
    CHECK_EQ(content_length(r), 3);
    CHECK_STR(body_of(r), "");
    free(r);
    r = http(&f, "HEAD /metrics HTTP/1.0\r\n\r\n");
    CHECK_EQ(status_of(r), 200);
    CHECK(content_length(r) > 0);
    CHECK_STR(body_of(r), "");
    free(r);
    r = http(&f, "HEAD /nope HTTP/1.0\r\n\r\n");
    CHECK_EQ(status_of(r), 404);
    CHECK_EQ(content_length(r), 10);
    CHECK_STR(body_of(r), "");
    free(r);
    fixture_stop(&f);
}

static void test_error_statuses(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    static const char *not_found[] = {"/", "/healthz/", "/HEALTHZ", "/metricsx", "/status/x"};
    for (size_t i = 0; i < BS_ARRAY_LEN(not_found); i++) {
        char req[128];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", not_found[i]);
        char *r = http(&f, req);
        CHECK_EQ(status_of(r), 404);
        CHECK_STR(body_of(r), "not found\n");
        free(r);
    }
    static const char *methods[] = {"POST", "DELETE", "PUT", "OPTIONS", "get"};
    for (size_t i = 0; i < BS_ARRAY_LEN(methods); i++) {
        char req[128];
        snprintf(req, sizeof req, "%s /healthz HTTP/1.1\r\nHost: x\r\n\r\n", methods[i]);
        char *r = http(&f, req);
        CHECK_EQ(status_of(r), 405);
        CHECK(strstr(r, "\r\nAllow: GET, HEAD\r\n") != NULL);
        free(r);
    }
    static const char *malformed[] = {
        "GET /healthz\r\n\r\n",                      /* HTTP/0.9 */
        "GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", /* double space */
        "GET /healthz  HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/1.1 \r\nHost: x\r\n\r\n",
        "GET /healthz http/1.1\r\nHost: x\r\n\r\n",
        "GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", /* not origin-form */
        "GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", /* '(' is not a tchar */
        "GET /heal\x7fthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",             /* header without colon */
        "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",           /* space before colon */
        "GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /* obs-fold */
        "GET /healthz HTTP/1.1\r\nHost: x\ry\r\n\r\n",         /* bare CR */
        "GET /healthz HTTP/1.1\r\n\r\n",                       /* 1.1 without Host */
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(malformed); i++) {
        char *r = http(&f, malformed[i]);
        if (status_of(r) != 400) fprintf(stderr, "  malformed[%zu] got: %.40s\n", i, r);
        CHECK_EQ(status_of(r), 400);
        CHECK_STR(body_of(r), "bad request\n");
        free(r);
    }
    /* TLS spoken to the plain port: rejected at once, without a newline. */
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    char *r = http_n(&f, tls, sizeof tls - 1);
    CHECK_EQ(status_of(r), 400);
    free(r);
    /* A NUL inside a header (strlen would stop there; the parser must not). */
    static const char nul[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n";
    r = http_n(&f, nul, sizeof nul - 1);
    CHECK_EQ(status_of(r), 400);
    free(r);

    /* A client that gives up before finishing its head gets nothing. */
    int fd = client_connect(&f, 0);
    send_all(fd, "GET /healthz HTTP/1.1\r\n", 23);
    shutdown(fd, SHUT_WR);
    size_t len = 99;
    bool to;
    r = read_all(fd, &len, &to);
    CHECK(!to);
    CHECK_EQ(len, 0);
    free(r);
    close(fd);
    CHECK(wait_metric(conns_gauge(), 0));
    fixture_stop(&f);
}

/* A request whose head is exactly `total` bytes (padded with a header). */
static char *head_of_size(size_t total)
{
    static const char pre[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    char *req = malloc(total + 1);
    size_t pl = sizeof pre - 1;
    memcpy(req, pre, pl);
    memset(req + pl, 'a', total - pl - 4);
    memcpy(req + total - 4, "\r\n\r\n", 4);
    req[total] = 0;
    return req;
}

static void test_oversized_head(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    char *req = head_of_size(BS_ADMIN_MAX_HEAD);
    char *r = http(&f, req);
    CHECK_EQ(status_of(r), 200); /* exactly at the limit is fine */
    free(r);
    free(req);

    req = head_of_size(BS_ADMIN_MAX_HEAD + 1);
    r = http(&f, req);
    CHECK_EQ(status_of(r), 400);
    CHECK_STR(body_of(r), "request head too large\n");
    free(r);
    free(req);

    /* 64 KiB of request line with no newline at all: answered, not RST. */
    size_t big = 64 * 1024;
    req = malloc(big);
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', big - 5);
    r = http_n(&f, req, big);
    CHECK_EQ(status_of(r), 400);
    free(r);
    free(req);
    CHECK(wait_metric(conns_gauge(), 0));
    fixture_stop(&f);
}

static void test_slow_client_times_out(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0.3) != BS_OK) {
        CHECK(0);
        return;
    }
    /* Half a request, then silence: the server answers 408 and closes. */
    int fd = client_connect(&f, 0);
    send_all(fd, "GET /healthz HTTP/1.1\r\nHo", 25);
    bool to;
    char *r = read_all(fd, NULL, &to);
    CHECK(!to);
    CHECK_EQ(status_of(r), 408);
    free(r);
    close(fd);
    /* A client that never sends a byte is closed too. */
    fd = client_connect(&f, 0);
    r = read_all(fd, NULL, &to);
    CHECK(!to);
    CHECK_EQ(status_of(r), 408);
    free(r);
    close(fd);
    CHECK(wait_metric(conns_gauge(), 0));
    fixture_stop(&f);
}

static void test_connection_limit(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    bs_metric *rejected =
        bs_metrics_counter("brokerside_admin_connections_rejected_total", "", NULL);
    int64_t rej0 = bs_metric_value(rejected);
    int fds[BS_ADMIN_MAX_CONNS];
    for (int i = 0; i < BS_ADMIN_MAX_CONNS; i++) {
        fds[i] = client_connect(&f, 0);
        send_all(fds[i], "GET /healthz HTTP/1.1\r\n", 23);
    }
    CHECK(wait_metric(conns_gauge(), BS_ADMIN_MAX_CONNS));
    /* One over the limit: accepted and closed without a response. */
    int extra = client_connect(&f, 0);
    size_t len = 99;
    bool to;
    char *r = read_all(extra, &len, &to);
    CHECK(!to);
    CHECK_EQ(len, 0);
    free(r);
    close(extra);
    CHECK(wait_metric(rejected, rej0 + 1));
    /* The held connections are all still served. */
    for (int i = 0; i < BS_ADMIN_MAX_CONNS; i++) {
        send_all(fds[i], "Host: x\r\n\r\n", 11);
        r = read_all(fds[i], NULL, &to);
        CHECK(!to);
        CHECK_EQ(status_of(r), 200);
        free(r);
        close(fds[i]);
    }
    CHECK(wait_metric(conns_gauge(), 0));
    /* And new ones are accepted again. */
    r = http(&f, "GET /healthz HTTP/1.0\r\n\r\n");
    CHECK_EQ(status_of(r), 200);
    free(r);
    fixture_stop(&f);
}

static void test_large_response_to_slow_reader(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    /* ~1.5 MB of exposition against a tiny receive window forces partial
     * sends and the EV_WRITE path. */
    for (int i = 0; i < 20000; i++) {
        char v[32];
        snprintf(v, sizeof v, "%05d", i);
        bs_metric_add(bs_metrics_counter_kv("brokerside_big_total", "Many series.", "series", v,
                                            "padding", "xxxxxxxxxxxxxxxxxxxxxxxx", NULL),
                      i);
    }
    int fd = client_connect(&f, 4096);
    send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 35);
    size_t len;
    bool to;
    char *r = read_all(fd, &len, &to);
    CHECK(!to);
    CHECK_EQ(status_of(r), 200);
    const char *b = body_of(r);
    CHECK(b != NULL);
    CHECK(len > 1000000);
    CHECK_EQ(content_length(r), (long)(len - (size_t)(b - r)));
    CHECK(strstr(b, "brokerside_big_total{series=\"19999\",padding=\"xxxxxxxxxxxxxxxxxxxxxxxx\"} "
                    "19999\n") != NULL);
    free(r);
    close(fd);
    fixture_stop(&f);
}

static void test_stop_with_clients_connected(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = client_connect(&f, 0);
        if (i % 2) send_all(fds[i], "GET /status HTTP/1.1\r\n", 22);
    }
    CHECK(wait_metric(conns_gauge(), 8));
    fixture_stop(&f); /* ASan's leak check covers the per-connection state */
    CHECK_EQ(bs_metric_value(conns_gauge()), 0);
    for (int i = 0; i < 8; i++) {
        size_t len = 99;
        bool to;
        char *r = read_all(fds[i], &len, &to);
        CHECK(!to);
        CHECK_EQ(len, 0);
        free(r);
        close(fds[i]);
    }
}

static bool have_ipv6_loopback(void)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = probe >= 0 && bind(probe, (struct sockaddr *)&s6, sizeof s6) == 0;
    if (probe >= 0) close(probe);
    return ok;
}

static void test_ipv6(void)
{
    if (!have_ipv6_loopback()) {
        fprintf(stderr, "  skipped: no IPv6 loopback on this host\n");
        return;
    }
    fixture f;
    if (fixture_start(&f, AF_INET6, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    char *r = http(&f, "GET /healthz HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    CHECK_EQ(status_of(r), 200);
    free(r);
    fixture_stop(&f);
}

/* The admin section exactly as the real config loader produces it. */
static void test_from_loaded_config(void)
{
    bool v6 = have_ipv6_loopback();
    char text[256];
    snprintf(text, sizeof text,
             "{\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\"}],"
             " \"admin\": {\"bind\": \"%s\"}}",
             v6 ? "[::1]:0" : "127.0.0.1:0");
    bs_config *cfg = NULL;
    bs_config_errors errs = {0};
    bs_status st = bs_config_parse("test.json", text, strlen(text), &cfg, &errs);
    CHECK_EQ(st, BS_OK);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  config: %s\n", errs.msgs[i]);
    bs_config_errors_free(&errs);
    if (st != BS_OK) return;
    CHECK(cfg->admin.enabled);
    fixture f;
    if (fixture_start_cfg(&f, &cfg->admin, 0) == BS_OK) {
        CHECK_EQ(f.family, v6 ? AF_INET6 : AF_INET);
        char *r = http(&f, "GET /healthz HTTP/1.0\r\n\r\n");
        CHECK_EQ(status_of(r), 200);
        free(r);
        fixture_stop(&f);
    } else {
        CHECK(0);
    }
    bs_config_free(cfg);
}

static void test_start_errors(void)
{
    fixture f;
    if (fixture_start(&f, AF_INET, 0) != BS_OK) {
        CHECK(0);
        return;
    }
    /* The same port again: bind fails even with SO_REUSEADDR (a listener
     * holds it), with a message naming the address and the call. */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_admin_config cfg;
    loopback_config(&cfg, AF_INET, f.port);
    bs_admin *a = (bs_admin *)&cfg; /* must be reset to NULL on failure */
    char err[256];
    CHECK_EQ(bs_admin_start(loop, &cfg, NULL, &a, err, sizeof err), BS_E_IO);
    CHECK(a == NULL);
    CHECK(strstr(err, "127.0.0.1:0") != NULL && strstr(err, "bind") != NULL);
    cfg.enabled = false;
    CHECK_EQ(bs_admin_start(loop, &cfg, NULL, &a, err, sizeof err), BS_E_CONFIG);
    cfg.enabled = true;
    cfg.bind.addr.ss_family = AF_UNIX;
    CHECK_EQ(bs_admin_start(loop, &cfg, NULL, &a, err, sizeof err), BS_E_CONFIG);
    bs_admin_stop(NULL);
    CHECK_EQ(bs_admin_port(NULL), 0);

    /* NULL hooks: always ready, status has only the built-in members. */
    loopback_config(&cfg, AF_INET, 0);
    CHECK_EQ(bs_admin_start(loop, &cfg, NULL, &a, err, sizeof err), BS_OK);
    CHECK(bs_admin_port(a) != 0 && bs_admin_port(a) != f.port);
    bs_admin_stop(a);
    ev_loop_destroy(loop);
    fixture_stop(&f);
}

static void test_parser_direct(void)
{
    static const char req[] = "\r\nHEAD /metrics?a=b HTTP/1.0\r\nAccept: */*\r\n\r\nbody";
    size_t head = sizeof req - 1 - 4;
    bs_admin_request rq;
    CHECK_EQ(bs_admin_parse_head(req, sizeof req - 1, &rq), BS_OK);
    CHECK_EQ(rq.method_len, 4);
    CHECK(memcmp(rq.method, "HEAD", 4) == 0);
    CHECK_EQ(rq.path_len, 8);
    CHECK(memcmp(rq.path, "/metrics", 8) == 0);
    CHECK_EQ(rq.minor_version, 0);
    CHECK_EQ(rq.head_len, head);
    /* Every proper prefix of a valid head needs more bytes, never "bad". */
    for (size_t i = 0; i < head; i++)
        CHECK_EQ(bs_admin_parse_head(req, i, &rq), BS_E_SHORT);
    CHECK_EQ(bs_admin_parse_head(NULL, 0, &rq), BS_E_SHORT);
    /* Invalid bytes in an unfinished request line fail early. */
    CHECK_EQ(bs_admin_parse_head("GET /\x01", 6, &rq), BS_E_MALFORMED);
    CHECK_EQ(bs_admin_parse_head("GET /\r", 6, &rq), BS_E_SHORT);
    CHECK_EQ(bs_admin_parse_head("GET /\rx", 7, &rq), BS_E_MALFORMED);
}

int main(void)
{
    RUN(test_parser_direct);
    RUN(test_endpoints);
    RUN(test_head_has_no_body);
    RUN(test_error_statuses);
    RUN(test_oversized_head);
    RUN(test_slow_client_times_out);
    RUN(test_connection_limit);
    RUN(test_large_response_to_slow_reader);
    RUN(test_stop_with_clients_connected);
    RUN(test_ipv6);
    RUN(test_from_loaded_config);
    RUN(test_start_errors);
    bs_metrics_shutdown();
    return test_report();
}
