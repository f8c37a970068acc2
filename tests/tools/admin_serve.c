/*
 * admin_serve - run the admin endpoint alone, over a sample registry, for
 * integration tests and manual poking (curl, a Prometheus scraper).
 *
 * Usage: admin_serve [BIND_IP]   (default 127.0.0.1; the port is always 0)
 * Prints `PORT <n>` on stdout once listening, then serves until SIGTERM,
 * SIGINT or EOF on stdin (so a test that dies takes this process with it).
 * Readiness: not ready ("warming up") until SIGUSR1, ready after it.
 * The sample metrics exercise every type, label escaping and a histogram.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "brokerside/admin.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"

static bool g_ready;

/* Readiness hook: flipped by SIGUSR1. */
static bool ready_hook(void *ctx, char *why, size_t whylen)
{
    (void)ctx;
    if (!g_ready) snprintf(why, whylen, "warming up");
    return g_ready;
}

/* Status hook: one extra member, as the daemon's listeners would add. */
static void status_hook(void *ctx, bs_wbuf *out)
{
    (void)ctx;
    bs_wbuf_put_str(out, ",\"listeners\":[{\"name\":\"sample\",\"port\":0}]");
}

/* SIGTERM/SIGINT: stop serving. */
static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* SIGUSR1: become ready. */
static void on_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    g_ready = true;
}

/* stdin readable: EOF (or error) means the parent is gone; stop. */
static void on_stdin(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    char buf[256];
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n <= 0) ev_break(loop, EVBREAK_ALL);
}

/* Register and fill the sample metrics. */
static void sample_metrics(void)
{
    bs_metric_add(bs_metrics_counter_kv("brokerside_requests_total", "Kafka requests by API.",
                                        "listener", "plain", "api", "Produce", NULL),
                  10);
    bs_metric_add(bs_metrics_counter_kv("brokerside_requests_total", "Kafka requests by API.",
                                        "listener", "plain", "api", "Fetch", NULL),
                  25);
    bs_metric_set(bs_metrics_gauge_kv("brokerside_connections", "Open client connections.",
                                      "listener", "we\"ird\\name\nx", NULL),
                  3);
    bs_metric_add(bs_metrics_counter("brokerside_tls_handshake_failures_total",
                                     "TLS handshakes that failed.\nBy reason.",
                                     "reason=\"unknown_ca\""),
                  2);
    size_t n;
    const double *b = bs_metrics_latency_bounds_s(&n);
    bs_histogram *h =
        bs_metrics_histogram_kv("brokerside_request_latency_seconds", "Broker round trip time.", b,
                                n, "api", "Produce", NULL);
    bs_histogram_observe(h, 0.0005);
    bs_histogram_observe(h, 0.003);
    bs_histogram_observe(h, 0.2);
    bs_histogram_observe(h, 30);
}

int main(int argc, char **argv)
{
    const char *ip = argc > 1 ? argv[1] : "127.0.0.1";
    bs_admin_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.enabled = true;
    cfg.probe_interval_s = 5;
    cfg.bind.text = (char *)ip;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&cfg.bind.addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&cfg.bind.addr;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        cfg.bind.addrlen = sizeof *s4;
    } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        cfg.bind.addrlen = sizeof *s6;
    } else {
        fprintf(stderr, "admin_serve: not an IP address: %s\n", ip);
        return 2;
    }
    sample_metrics();

    struct ev_loop *loop = ev_default_loop(0);
    bs_admin_hooks hooks = {.ready = ready_hook, .status_json = status_hook};
    bs_admin *admin = NULL;
    char err[256];
    if (bs_admin_start(loop, &cfg, &hooks, &admin, err, sizeof err) != BS_OK) {
        fprintf(stderr, "admin_serve: %s\n", err);
        bs_metrics_shutdown();
        return 1;
    }
    ev_signal sterm, sint, susr1;
    ev_signal_init(&sterm, on_stop_signal, SIGTERM);
    ev_signal_init(&sint, on_stop_signal, SIGINT);
    ev_signal_init(&susr1, on_usr1, SIGUSR1);
    ev_signal_start(loop, &sterm);
    ev_signal_start(loop, &sint);
    ev_signal_start(loop, &susr1);
    ev_io in;
    ev_io_init(&in, on_stdin, STDIN_FILENO, EV_READ);
    ev_io_start(loop, &in);

    printf("PORT %u\n", bs_admin_port(admin));
    fflush(stdout);
    ev_run(loop, 0);

    bs_admin_stop(admin);
    bs_metrics_shutdown();
    return 0;
}
