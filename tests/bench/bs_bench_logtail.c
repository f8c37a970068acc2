/*
 * bs_bench_logtail - log lines per second through tail -> spool -> file sink
 * on one thread (one core).
 *
 * Usage: bs_bench_logtail [--lines N] [--dir DIR] [--keep]
 * Writes a Kafka-like server.log of N lines (5% of events are 4-line stack
 * traces) into a fresh directory under DIR (default $TMPDIR or /tmp), then
 * times the tailer, the spool (fsync every 100 ms, the default policy) and the
 * file sink (fdatasync per batch) until every event is in logs.ndjson.
 * Prints one line of key=value results; exit 1 if any event is missing.
 */
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/file_sink.h"
#include "brokerside/log.h"
#include "brokerside/logtail.h"
#include "brokerside/sink.h"
#include "brokerside/spool.h"

#include <ftw.h>

/* nftw callback for cleanup. */
static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* CPU seconds (user + system) of this process. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* Write the synthetic log; returns the number of events (lines counted in *lines). */
static long write_log(const char *path, long n_lines, long *lines)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    long events = 0;
    *lines = 0;
    for (long i = 0; *lines < n_lines; i++) {
        if (i % 20 == 19) {
            fprintf(
                f,
                "[2026-11-24 21:%02ld:%02ld,%03ld] ERROR [ReplicaFetcher replicaId=1, leaderId=2, "
                "fetcherId=0] Error for partition payments-%ld "
                "(kafka.server.ReplicaFetcherThread)\n"
                "org.apache.kafka.common.errors.NotLeaderOrFollowerException: not the leader\n"
                "\tat org.apache.kafka.common.requests.FetchResponse.error(FetchResponse.java:42)\n"
                "Caused by: java.io.IOException: connection reset\n",
                (i / 60000) % 60, (i / 1000) % 60, i % 1000, i % 64);
            *lines += 4;
        } else {
            fprintf(f,
                    "[2026-11-24 21:%02ld:%02ld,%03ld] INFO [Log partition=payments-%ld, "
                    "dir=/var/lib/kafka] "
                    "Rolled new log segment at offset %ld in 3 ms. (kafka.log.LocalLog)\n",
                    (i / 60000) % 60, (i / 1000) % 60, i % 1000, i % 64, i * 1000);
            *lines += 1;
        }
        events++;
    }
    return fclose(f) == 0 ? events : -1;
}

int main(int argc, char **argv)
{
    long n_lines = 1000000;
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int keep = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lines") == 0 && i + 1 < argc)
            n_lines = atol(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            base = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else {
            fprintf(stderr, "usage: %s [--lines N] [--dir DIR] [--keep]\n", argv[0]);
            return 2;
        }
    }
    bs_log_set_level(BS_LOG_WARN);
    char dir[512], log[600], sdir[600], out[600], state[600];
    snprintf(dir, sizeof dir, "%s/bs-bench-logtail-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(log, sizeof log, "%s/server.log", dir);
    snprintf(sdir, sizeof sdir, "%s/spool", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(state, sizeof state, "%s/tail.state", dir);
    long lines;
    long events = write_log(log, n_lines, &lines);
    if (events < 0) {
        perror("write log");
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    so.max_bytes = 8ull << 30;
    bs_spool *sp;
    const bs_sink_ops *ops;
    void *impl;
    bs_sink *sink;
    bs_logtail *t;
    if (bs_spool_open(&so, &sp) != BS_OK) return 2;
    bs_spool_attach_loop(sp, loop);
    bs_file_sink_options fo = {.dir = out, .rotate_bytes = 1ull << 40};
    if (bs_file_sink_new(&fo, &ops, &impl) != BS_OK) return 2;
    bs_sink_options o = {.name = "bench", .streams = BS_STREAM_MASK(BS_STREAM_LOGS)};
    bs_file_sink_limits(&o.limits);
    if (bs_sink_create(loop, sp, &o, ops, impl, &sink) != BS_OK) return 2;
    const char *files[] = {log};
    bs_logtail_options to = {.files = files, .n_files = 1, .state_path = state, .flush_ms = 1};
    if (bs_logtail_new(NULL, sp, &to, &t) != BS_OK) return 2;

    double c0 = cpu_s();
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    bs_sink_stats st = {0};
    bs_logtail_stats ts = {0};
    for (long iter = 0; st.delivered < (uint64_t)events && iter < 10000000; iter++) {
        bs_status ps = bs_logtail_poll(t);
        if (ps != BS_OK && ps != BS_E_FULL) {
            fprintf(stderr, "poll: %s\n", bs_status_name(ps));
            return 1;
        }
        bs_logtail_get_stats(t, &ts);
        if (ts.events == (uint64_t)events) bs_sink_flush(sink);
        ev_run(loop, EVRUN_NOWAIT);
        bs_sink_get_stats(sink, &st);
        if (ts.events == (uint64_t)events && st.delivered < (uint64_t)events) {
            /* all read: let the spool timer and the sink batches finish */
            if (bs_spool_sync(sp) != BS_OK) return 1;
            ev_run(loop, EVRUN_ONCE);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double cpu = cpu_s() - c0;
    double wall = (double)(w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9;
    bs_logtail_get_stats(t, &ts);
    bs_sink_get_stats(sink, &st);
    int ok = st.delivered == (uint64_t)events && ts.lines == (uint64_t)lines;
    printf("bench=logtail lines=%ld events=%ld wall_s=%.3f cpu_s=%.3f lines_per_s=%.0f "
           "lines_per_cpu_s=%.0f events_per_s=%.0f delivered=%llu goal_lines_per_s=100000 %s\n",
           lines, events, wall, cpu, lines / wall, lines / cpu, events / wall,
           (unsigned long long)st.delivered, ok ? "OK" : "MISSING_EVENTS");
    bs_logtail_free(t);
    bs_sink_destroy(sink);
    bs_spool_close(sp);
    ev_loop_destroy(loop);
    if (!keep) nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return ok ? 0 : 1;
}
