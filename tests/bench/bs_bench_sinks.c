/*
 * bs_bench_sinks - events per second from the spool to one AWS sink, and CPU
 * (user + system of this process) per 10,000 events.
 *
 * Usage: bs_bench_sinks --sink firehose|cloudwatch_logs|cloudwatch_metrics|s3
 *                       --endpoint URL --region R [--events N] [--opt key=value]...
 * Options as for tests/tools/aws_sink_run (delivery_stream, group, log_stream,
 * bucket, ...). Credentials come from the normal chain. The resources must
 * exist: tests/bench/bench_sinks.py starts moto (SigV4 on), creates them and
 * runs this for every sink. N events (audit-like JSON, ~300 bytes; EMF for
 * cloudwatch_metrics) are appended and synced into a fresh spool first; the
 * timed part is delivery until the sink is idle. Prints one line of
 * key=value results; exit 1 if not every event was delivered.
 */
#include <ev.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/aws_sinks.h"
#include "brokerside/log.h"

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

/* The value of --opt key, or NULL. */
static const char *opt(char **opts, int n, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++)
        if (strncmp(opts[i], key, kl) == 0 && opts[i][kl] == '=') return opts[i] + kl + 1;
    return NULL;
}

/* Parse the options, fill the spool, run the sink until idle, print the stats (see the top). */
int main(int argc, char **argv)
{
    const char *type = NULL, *endpoint = NULL, *region = "us-east-1";
    unsigned long n = 20000;
    char *opts[32];
    int n_opts = 0, c;
    static const struct option lo[] = {{"sink", 1, 0, 's'},   {"endpoint", 1, 0, 'e'},
                                       {"region", 1, 0, 'r'}, {"events", 1, 0, 'n'},
                                       {"opt", 1, 0, 'o'},    {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 's')
            type = optarg;
        else if (c == 'e')
            endpoint = optarg;
        else if (c == 'r')
            region = optarg;
        else if (c == 'n')
            n = strtoul(optarg, NULL, 10);
        else if (c == 'o' && n_opts < 32)
            opts[n_opts++] = optarg;
        else
            return 2;
    }
    if (!type || !endpoint || n == 0) {
        fprintf(stderr, "usage: bs_bench_sinks --sink TYPE --endpoint URL [--region R] "
                        "[--events N] [--opt k=v]...\n");
        return 2;
    }
    bs_log_set_level(BS_LOG_WARN);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/bs-bench-sinks-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return 1;
    struct ev_loop *loop = EV_DEFAULT;
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = dir;
    bs_spool *sp = NULL;
    if (bs_spool_open(&so, &sp) != BS_OK) return 1;
    bool metrics = strcmp(type, "cloudwatch_metrics") == 0;
    bs_stream stream = metrics ? BS_STREAM_METRICS : BS_STREAM_AUDIT;
    long long t0 = (long long)time(NULL) * 1000;
    char ev[1024];
    for (unsigned long i = 0; i < n; i++) {
        int len =
            metrics
                ? snprintf(ev, sizeof ev,
                           "{\"_aws\":{\"Timestamp\":%lld,\"CloudWatchMetrics\":[{\"Namespace\":"
                           "\"BsBench\",\"Dimensions\":[[\"Broker\",\"Api\"]],\"Metrics\":[{"
                           "\"Name\":\"Requests\",\"Unit\":\"Count\"},{\"Name\":\"LatencyMs\","
                           "\"Unit\":\"Milliseconds\"}]}]},\"Broker\":\"b%lu\",\"Api\":"
                           "\"Produce\",\"Requests\":%lu,\"LatencyMs\":[%lu.5,2.5,3.5]}",
                           t0, i % 3, i, i % 50)
                : snprintf(ev, sizeof ev,
                           "{\"timestamp\":%lld,\"type\":\"kafka.request\",\"api\":\"Produce\","
                           "\"principal\":\"User:CN=dev-client,O=brokerside\",\"client\":"
                           "\"10.0.0.%lu:51234\",\"topic\":\"orders-%lu\",\"partition\":%lu,"
                           "\"bytes\":%lu,\"outcome\":\"ok\",\"latency_ms\":1.25,\"seq\":%lu}",
                           t0 + (long long)(i / 100), i % 250, i % 16, i % 12, 100 + i % 900, i);
        if (bs_spool_append(sp, stream, ev, (size_t)len, 0, NULL) != BS_OK) return 1;
    }
    if (bs_spool_sync(sp) != BS_OK) return 1;
    bs_aws_credentials_config cc = {.disable_imds = true};
    bs_aws_credentials_provider *creds = NULL;
    if (bs_aws_credentials_provider_new(&cc, &creds) != BS_OK) return 1;
    bs_aws_sink_common com = {.loop = loop,
                              .creds = creds,
                              .sink_name = type,
                              .region = region,
                              .endpoint = endpoint,
                              .hostname = "bench"};
    bs_sink_options sopt = {.name = type, .streams = BS_STREAM_MASK(stream)};
    const bs_sink_ops *ops = NULL;
    void *impl = NULL;
    bs_status st = BS_E_CONFIG;
    if (strcmp(type, "firehose") == 0) {
        bs_firehose_sink_options o = {.c = com,
                                      .delivery_stream = opt(opts, n_opts, "delivery_stream")};
        bs_firehose_sink_limits(&sopt.limits);
        st = bs_firehose_sink_new(&o, &ops, &impl);
    } else if (strcmp(type, "cloudwatch_logs") == 0) {
        bs_cwlogs_sink_options o = {.c = com,
                                    .log_group = opt(opts, n_opts, "group"),
                                    .log_stream = opt(opts, n_opts, "log_stream"),
                                    .auto_create = true};
        bs_cwlogs_sink_limits(&sopt.limits);
        st = bs_cwlogs_sink_new(&o, &ops, &impl);
    } else if (metrics) {
        bs_cwmetrics_sink_options o = {.c = com};
        bs_cwmetrics_sink_limits(&sopt.limits);
        st = bs_cwmetrics_sink_new(&o, &ops, &impl);
    } else if (strcmp(type, "s3") == 0) {
        bs_s3_sink_options o = {.c = com, .bucket = opt(opts, n_opts, "bucket")};
        bs_s3_sink_limits(&sopt.limits, 16u * 1024 * 1024, 1);
        st = bs_s3_sink_new(&o, &ops, &impl);
    }
    bs_sink *sink = NULL;
    if (st != BS_OK || bs_sink_create(loop, sp, &sopt, ops, impl, &sink) != BS_OK) {
        fprintf(stderr, "cannot create sink %s\n", type);
        return 1;
    }
    struct timespec a, b;
    double cpu0 = cpu_s();
    clock_gettime(CLOCK_MONOTONIC, &a);
    ev_tstamp deadline = ev_time() + 600; /* hang guard only */
    bs_sink_kick(sink);
    while (!bs_sink_idle(sink) && ev_time() < deadline) {
        bs_sink_flush(sink);
        ev_run(loop, EVRUN_ONCE);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double cpu = cpu_s() - cpu0;
    double secs = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    bs_sink_stats ss;
    bs_sink_get_stats(sink, &ss);
    printf("sink=%s events=%lu delivered=%llu batches=%llu seconds=%.3f events_per_s=%.0f "
           "cpu_s_per_10k=%.4f cpu_share=%.2f\n",
           type, n, (unsigned long long)ss.delivered, (unsigned long long)ss.batches, secs,
           secs > 0 ? (double)ss.delivered / secs : 0.0, cpu * 10000.0 / (double)n,
           secs > 0 ? cpu / secs : 0.0);
    bs_sink_destroy(sink);
    bs_spool_close(sp);
    bs_aws_credentials_provider_free(creds);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return ss.delivered == n ? 0 : 1;
}
