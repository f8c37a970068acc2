/*
 * net_test_util.h - helpers for the tests of src/net and the daemon:
 * ephemeral ports, temporary directories with dev certificates, blocking
 * upstream servers (echo, controllable sink, TLS echo, fake Kafka), TLS
 * clients and bounded waits. Everything here talks to real sockets.
 *
 * Waits are bounded only to avoid hanging a broken build (generous, never
 * asserted on): WAIT_UNTIL(cond) polls every 10 ms for up to 20 s.
 */
#ifndef BS_NET_TEST_UTIL_H
#define BS_NET_TEST_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#define NT_WAIT_S 20.0

/* Monotonic seconds. */
__attribute__((unused)) static double nt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sleep `ms` milliseconds. */
__attribute__((unused)) static void nt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll `cond` until true or the hang guard expires; evaluates to the result. */
#define WAIT_UNTIL(cond)                                                                           \
    ({                                                                                             \
        double nt_deadline_ = nt_now() + NT_WAIT_S;                                                \
        bool nt_ok_ = false;                                                                       \
        while (!(nt_ok_ = (cond)) && nt_now() < nt_deadline_)                                      \
            nt_sleep_ms(10);                                                                       \
        nt_ok_;                                                                                    \
    })

/* A free TCP port on 127.0.0.1 (bound and released; the kernel will not
 * hand it out again soon). */
__attribute__((unused)) static int nt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("nt_free_port");
        exit(2);
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Listening socket on 127.0.0.1:port (0 = any); *port receives the port. */
__attribute__((unused)) static int nt_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)*port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("nt_listen");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Blocking connect to 127.0.0.1:port with a receive/send guard timeout; -1 on failure. */
__attribute__((unused)) static int nt_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {(time_t)NT_WAIT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Blocking send of all n bytes; false on error. */
__attribute__((unused)) static bool nt_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Read until EOF (or error/guard timeout) into a malloc'd buffer. Returns
 * the byte count, -1 if the stream ended with an error instead of EOF. */
__attribute__((unused)) static long nt_read_to_eof(int fd, uint8_t **out)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (len == cap) b = realloc(b, cap *= 2);
        ssize_t r = recv(fd, b + len, cap - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            *out = b;
            return -1;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    *out = b;
    return (long)len;
}

/* FNV-1a over a byte stream. */
__attribute__((unused)) static uint64_t nt_fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}
#define NT_FNV_INIT 14695981039346656037ULL

/* Deterministic pseudo-random bytes. */
__attribute__((unused)) static void nt_fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* Run a shell command; its exit status. */
__attribute__((unused)) static int nt_sh(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* A fresh temporary directory with dev certificates in it (certs/make-dev-certs.sh). */
__attribute__((unused)) static void nt_make_certs(char *dir, size_t dirlen)
{
    snprintf(dir, dirlen, "/tmp/bs-net-test-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(2);
    }
    const char *src = getenv("BS_SOURCE_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash %s/certs/make-dev-certs.sh %s >/dev/null 2>&1", src ? src : ".",
             dir);
    if (nt_sh(cmd) != 0) {
        fprintf(stderr, "cannot create certificates: %s\n", cmd);
        exit(2);
    }
}

/* Remove a test directory tree. */
__attribute__((unused)) static void nt_rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)nt_sh(cmd);
}

/* Write `text` to `path` (exit on failure: set-up error). */
__attribute__((unused)) static void nt_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* ------------------------------------------------------------ upstream servers */

/* Echo server: every connection echoes until EOF, then half-closes. */
typedef struct nt_echo {
    int lfd, port;
    pthread_t thr;
    atomic_int accepted;
} nt_echo;

/* One echo connection (thread). */
__attribute__((unused)) static void *nt_echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint8_t buf[65536];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0) break;
        if (!nt_write_all(fd, buf, (size_t)r)) break;
    }
    shutdown(fd, SHUT_WR);
    close(fd);
    return NULL;
}

/* Echo accept loop (thread); ends when the listening socket is shut down. */
__attribute__((unused)) static void *nt_echo_main(void *arg)
{
    nt_echo *e = arg;
    for (;;) {
        int fd = accept(e->lfd, NULL, NULL);
        if (fd < 0) return NULL; /* listening socket shut down: stop */
        atomic_fetch_add(&e->accepted, 1);
        pthread_t t;
        pthread_create(&t, NULL, nt_echo_conn, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

/* Start an echo server on an ephemeral port (e->port). */
__attribute__((unused)) static void nt_echo_start(nt_echo *e)
{
    e->port = 0;
    atomic_init(&e->accepted, 0);
    e->lfd = nt_listen(&e->port);
    pthread_create(&e->thr, NULL, nt_echo_main, e);
}

/* Stop accepting and join (open echo connections end with their peers). */
__attribute__((unused)) static void nt_echo_stop(nt_echo *e)
{
    shutdown(e->lfd, SHUT_RDWR);
    pthread_join(e->thr, NULL);
    close(e->lfd);
}

/* Sink: accepts ONE connection, reads only while not paused, counts and
 * hashes everything until EOF, then answers "<count> <hash>\n" and closes. */
typedef struct nt_sink {
    int lfd, port;
    pthread_t thr;
    atomic_bool paused, done;
    atomic_bool connected; /* its connection brought a first byte (so the proxy opened it) */
    uint64_t count, hash;
} nt_sink;

/* Sink thread body (see nt_sink). */
__attribute__((unused)) static void *nt_sink_main(void *arg)
{
    nt_sink *s = arg;
    int fd;
    for (;;) {
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        /* Skip connections that end without a byte (readiness probes). */
        uint8_t b;
        if (recv(fd, &b, 1, MSG_PEEK) > 0) break;
        close(fd);
    }
    atomic_store(&s->connected, true);
    /* A small receive buffer so backpressure reaches brokerside quickly. */
    int small = 16384;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    uint64_t h = NT_FNV_INIT, n = 0;
    uint8_t buf[65536];
    for (;;) {
        if (atomic_load(&s->paused)) {
            nt_sleep_ms(5);
            continue;
        }
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        h = nt_fnv(h, buf, (size_t)r);
        n += (size_t)r;
    }
    s->count = n;
    s->hash = h;
    char line[64];
    int len =
        snprintf(line, sizeof line, "%llu %llx\n", (unsigned long long)n, (unsigned long long)h);
    nt_write_all(fd, line, (size_t)len);
    close(fd);
    atomic_store(&s->done, true);
    return NULL;
}

/* Start a sink, paused or not. The listening socket has a small receive buffer too. */
__attribute__((unused)) static void nt_sink_start(nt_sink *s, bool paused)
{
    memset(s, 0, sizeof *s);
    atomic_init(&s->paused, paused);
    atomic_init(&s->done, false);
    atomic_init(&s->connected, false);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 16384, one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 4) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &len) != 0) {
        perror("sink");
        exit(2);
    }
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thr, NULL, nt_sink_main, s);
}

/* Unpause, stop accepting, join. */
__attribute__((unused)) static void nt_sink_stop(nt_sink *s)
{
    shutdown(s->lfd, SHUT_RDWR);
    atomic_store(&s->paused, false);
    pthread_join(s->thr, NULL);
    close(s->lfd);
}

/* Send `n` deterministic bytes (seed) from a thread while the caller waits. */
typedef struct nt_sender {
    int fd;
    size_t n;
    uint32_t seed;
    pthread_t thr;
    atomic_size_t sent;
    bool ok;
    uint64_t hash;
} nt_sender;

/* Sender thread body: n deterministic bytes, hash in s->hash. */
__attribute__((unused)) static void *nt_sender_main(void *arg)
{
    nt_sender *s = arg;
    uint8_t buf[16384];
    uint64_t h = NT_FNV_INIT;
    uint32_t seed = s->seed;
    s->ok = true;
    size_t left = s->n;
    while (left) {
        size_t k = left < sizeof buf ? left : sizeof buf;
        nt_fill(buf, k, seed++);
        h = nt_fnv(h, buf, k);
        if (!nt_write_all(s->fd, buf, k)) {
            s->ok = false;
            break;
        }
        atomic_fetch_add(&s->sent, k);
        left -= k;
    }
    s->hash = h;
    return NULL;
}

/* Start sending `n` bytes of seed `seed` on fd from a thread; join s->thr. */
__attribute__((unused)) static void nt_sender_start(nt_sender *s, int fd, size_t n, uint32_t seed)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->n = n;
    s->seed = seed;
    atomic_init(&s->sent, 0);
    pthread_create(&s->thr, NULL, nt_sender_main, s);
}

/* ------------------------------------------------------------ TLS */

/* A blocking TLS client connection to 127.0.0.1:port. Verification against
 * `ca` when given; `cert`/`key` an optional client certificate. NULL if the
 * TCP connect fails; *hs_ok tells whether the handshake succeeded. */
typedef struct nt_tls {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} nt_tls;

/* TLS handshake over the connected socket `fd` (owned by t from here; see
 * nt_tls); true if the handshake succeeded. */
__attribute__((unused)) static bool nt_tls_handshake(nt_tls *t, int fd, const char *ca,
                                                     const char *cert, const char *key)
{
    memset(t, 0, sizeof *t);
    t->fd = fd;
    if (t->fd < 0) return false;
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (ca) {
        SSL_CTX_load_verify_locations(t->ctx, ca, NULL);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    }
    if (cert) {
        SSL_CTX_use_certificate_chain_file(t->ctx, cert);
        SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM);
    }
    t->ssl = SSL_new(t->ctx);
    SSL_set_fd(t->ssl, t->fd);
    SSL_set_tlsext_host_name(t->ssl, "localhost");
    bool ok = SSL_connect(t->ssl) == 1;
    ERR_clear_error();
    return ok;
}

/* TLS connect (see nt_tls); true if the handshake succeeded. */
__attribute__((unused)) static bool nt_tls_connect(nt_tls *t, int port, const char *ca,
                                                   const char *cert, const char *key)
{
    return nt_tls_handshake(t, nt_connect(port), ca, cert, key);
}

/* Free the client (no close_notify unless the caller sent one). */
__attribute__((unused)) static void nt_tls_close(nt_tls *t)
{
    if (t->ssl) SSL_free(t->ssl);
    if (t->ctx) SSL_CTX_free(t->ctx);
    if (t->fd >= 0) close(t->fd);
    memset(t, 0, sizeof *t);
    t->fd = -1;
}

/* Write all n bytes over TLS. */
__attribute__((unused)) static bool nt_tls_write(nt_tls *t, const void *p, size_t n)
{
    size_t w;
    return SSL_write_ex(t->ssl, p, n, &w) == 1 && w == n;
}

/* Read exactly n bytes; false on EOF/error. */
__attribute__((unused)) static bool nt_tls_read_n(nt_tls *t, uint8_t *p, size_t n)
{
    while (n) {
        size_t r;
        if (SSL_read_ex(t->ssl, p, n, &r) != 1) return false;
        p += r;
        n -= r;
    }
    return true;
}

/* SSL_get_error of the next read: SSL_ERROR_ZERO_RETURN means a clean close_notify. */
__attribute__((unused)) static int nt_tls_read_end(nt_tls *t)
{
    uint8_t b[256];
    size_t r;
    int ret = SSL_read_ex(t->ssl, b, sizeof b, &r);
    int e = ret == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, ret);
    ERR_clear_error();
    return e;
}

/* SHA-256 of the peer certificate's DER, compared with a PEM file's. */
__attribute__((unused)) static bool nt_peer_cert_is(SSL *ssl, const char *pem_path)
{
    X509 *peer = SSL_get1_peer_certificate(ssl);
    FILE *f = fopen(pem_path, "r");
    X509 *want = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    bool same = peer && want && X509_cmp(peer, want) == 0;
    X509_free(peer);
    X509_free(want);
    return same;
}

/* TLS echo server on its own thread (one connection at a time is enough). */
typedef struct nt_tls_echo {
    int lfd, port;
    SSL_CTX *ctx;
    pthread_t thr;
    atomic_int handshakes;
} nt_tls_echo;

/* TLS echo accept loop (thread), one connection at a time. */
__attribute__((unused)) static void *nt_tls_echo_main(void *arg)
{
    nt_tls_echo *e = arg;
    for (;;) {
        int fd = accept(e->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        struct timeval tv = {(time_t)NT_WAIT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(e->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            atomic_fetch_add(&e->handshakes, 1);
            uint8_t buf[16384];
            size_t r, w;
            while (SSL_read_ex(ssl, buf, sizeof buf, &r) == 1)
                if (SSL_write_ex(ssl, buf, r, &w) != 1) break;
            SSL_shutdown(ssl);
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
    }
}

/* Start a TLS echo server with cert/key on an ephemeral port. */
__attribute__((unused)) static void nt_tls_echo_start(nt_tls_echo *e, const char *cert,
                                                      const char *key)
{
    memset(e, 0, sizeof *e);
    atomic_init(&e->handshakes, 0);
    e->ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(e->ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(e->ctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "tls echo: cannot load %s\n", cert);
        exit(2);
    }
    e->lfd = nt_listen(&e->port);
    pthread_create(&e->thr, NULL, nt_tls_echo_main, e);
}

/* Stop and join the TLS echo server. */
__attribute__((unused)) static void nt_tls_echo_stop(nt_tls_echo *e)
{
    shutdown(e->lfd, SHUT_RDWR);
    pthread_join(e->thr, NULL);
    close(e->lfd);
    SSL_CTX_free(e->ctx);
}

#endif
