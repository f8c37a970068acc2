/*
 * aws_sink_run - run one AWS sink over a real spool on a libev loop, for the
 * integration tests (tests/integration/test_aws_sinks.py) and by hand:
 *
 *   aws_sink_run --sink firehose|cloudwatch_logs|cloudwatch_metrics|s3 --spool DIR
 *                --region R [--endpoint URL] [--input FILE --stream logs|audit|metrics]
 *                [--per-tick N] [--opt key=value]... [--http-attempts N]
 *                [--backoff-max-ms MS] [--max-attempts N] [--timeout-s S] [--no-wait]
 *
 * Appends the lines of FILE (one event per line) to the spool (all at once, or
 * N per 20 ms tick with --per-tick, so that appending goes on during an
 * outage), runs the sink until every appended event is final (idle) and prints
 * one JSON object: {"idle":bool,"appended":N,"delivered":..,"retried":..,
 * "dead_lettered":..,"batches":..,"metrics":{...registry...}}.
 * Sink options (--opt): group, log_stream, auto_create=1 (cloudwatch_logs);
 * query=1 (cloudwatch_metrics); bucket, prefix, no_gzip=1, object_bytes,
 * object_age_s, threshold, part_bytes (s3); delivery_stream (firehose);
 * hostname, broker_id (all). Credentials come from the normal chain.
 * Exit status 0 when idle, 1 on timeout or failure, 2 for bad usage.
 */
#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/aws_sinks.h"
#include "brokerside/buf.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"

typedef struct run {
    bs_spool *sp;
    bs_sink *sink;
    FILE *in;
    bs_stream stream;
    unsigned per_tick;
    unsigned long appended;
    bool eof;
    int fail;
} run;

/* Append up to per_tick lines (all when per_tick is 0). */
static void feed(run *r)
{
    char *line = NULL;
    size_t cap = 0;
    for (unsigned k = 0; r->in && !r->eof && (r->per_tick == 0 || k < r->per_tick); k++) {
        ssize_t n = getline(&line, &cap, r->in);
        if (n < 0) {
            r->eof = true;
            break;
        }
        if (n > 0 && line[n - 1] == '\n') n--;
        bs_status st = bs_spool_append(r->sp, r->stream, line, (size_t)n, 0, NULL);
        if (st != BS_OK) {
            fprintf(stderr, "append: %s\n", bs_status_name(st));
            r->fail = 1;
            r->eof = true;
            break;
        }
        r->appended++;
    }
    free(line);
    if (bs_spool_sync(r->sp) != BS_OK) r->fail = 1;
    bs_sink_kick(r->sink);
}

/* Feeding timer. */
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    run *r = w->data;
    feed(r);
    if (r->eof) ev_timer_stop(loop, w);
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
    const char *type = NULL, *spool_dir = NULL, *region = NULL, *endpoint = NULL, *input = NULL;
    const char *stream = "logs";
    char *opts[32];
    int n_opts = 0;
    unsigned per_tick = 0, http_attempts = 0, max_attempts = 0;
    unsigned backoff_max = 2000, timeout_s = 120;
    static const struct option lo[] = {{"sink", 1, 0, 's'},
                                       {"spool", 1, 0, 'd'},
                                       {"region", 1, 0, 'r'},
                                       {"endpoint", 1, 0, 'e'},
                                       {"input", 1, 0, 'i'},
                                       {"stream", 1, 0, 'S'},
                                       {"per-tick", 1, 0, 'p'},
                                       {"opt", 1, 0, 'o'},
                                       {"http-attempts", 1, 0, 'h'},
                                       {"backoff-max-ms", 1, 0, 'b'},
                                       {"max-attempts", 1, 0, 'm'},
                                       {"timeout-s", 1, 0, 't'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 's':
            type = optarg;
            break;
        case 'd':
            spool_dir = optarg;
            break;
        case 'r':
            region = optarg;
            break;
        case 'e':
            endpoint = optarg;
            break;
        case 'i':
            input = optarg;
            break;
        case 'S':
            stream = optarg;
            break;
        case 'p':
            per_tick = (unsigned)atoi(optarg);
            break;
        case 'o':
            if (n_opts < 32) opts[n_opts++] = optarg;
            break;
        case 'h':
            http_attempts = (unsigned)atoi(optarg);
            break;
        case 'b':
            backoff_max = (unsigned)atoi(optarg);
            break;
        case 'm':
            max_attempts = (unsigned)atoi(optarg);
            break;
        case 't':
            timeout_s = (unsigned)atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (!type || !spool_dir || !region) {
        fprintf(stderr, "usage: see the comment at the top of aws_sink_run.c\n");
        return 2;
    }
    bs_log_set_level(BS_LOG_INFO);
    struct ev_loop *loop = EV_DEFAULT;
    run r = {.stream = strcmp(stream, "audit") == 0     ? BS_STREAM_AUDIT
                       : strcmp(stream, "metrics") == 0 ? BS_STREAM_METRICS
                                                        : BS_STREAM_LOGS,
             .per_tick = per_tick};
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = spool_dir;
    if (bs_spool_open(&so, &r.sp) != BS_OK) {
        fprintf(stderr, "cannot open spool %s\n", spool_dir);
        return 1;
    }
    bs_spool_attach_loop(r.sp, loop);
    bs_aws_credentials_config cc = {.disable_imds = true};
    bs_aws_credentials_provider *creds = NULL;
    if (bs_aws_credentials_provider_new(&cc, &creds) != BS_OK) return 1;
    bs_aws_sink_common com = {.loop = loop,
                              .creds = creds,
                              .sink_name = type,
                              .region = region,
                              .endpoint = endpoint,
                              .hostname = opt(opts, n_opts, "hostname"),
                              .broker_id = opt(opts, n_opts, "broker_id"),
                              .http = {.max_attempts = http_attempts,
                                       .backoff_base_ms = 50,
                                       .backoff_max_ms = 500,
                                       .connect_timeout_ms = 2000,
                                       .timeout_ms = 10000}};
    bs_sink_options sopt = {.name = type,
                            .backoff_initial_ms = 100,
                            .backoff_max_ms = backoff_max,
                            .max_attempts = max_attempts};
    const bs_sink_ops *ops = NULL;
    void *impl = NULL;
    bs_status st = BS_E_CONFIG;
    const char *v;
    if (strcmp(type, "firehose") == 0) {
        bs_firehose_sink_options o = {.c = com,
                                      .delivery_stream = opt(opts, n_opts, "delivery_stream")};
        bs_firehose_sink_limits(&sopt.limits);
        st = bs_firehose_sink_new(&o, &ops, &impl);
    } else if (strcmp(type, "cloudwatch_logs") == 0) {
        bs_cwlogs_sink_options o = {.c = com,
                                    .log_group = opt(opts, n_opts, "group"),
                                    .log_stream = opt(opts, n_opts, "log_stream"),
                                    .auto_create = opt(opts, n_opts, "auto_create") != NULL};
        bs_cwlogs_sink_limits(&sopt.limits);
        st = bs_cwlogs_sink_new(&o, &ops, &impl);
    } else if (strcmp(type, "cloudwatch_metrics") == 0) {
        bs_cwmetrics_sink_options o = {.c = com,
                                       .query_protocol = opt(opts, n_opts, "query") != NULL};
        bs_cwmetrics_sink_limits(&sopt.limits);
        st = bs_cwmetrics_sink_new(&o, &ops, &impl);
    } else if (strcmp(type, "s3") == 0) {
        bs_s3_sink_options o = {.c = com,
                                .bucket = opt(opts, n_opts, "bucket"),
                                .key_prefix = opt(opts, n_opts, "prefix"),
                                .no_gzip = opt(opts, n_opts, "no_gzip") != NULL};
        if ((v = opt(opts, n_opts, "threshold"))) o.multipart_threshold = strtoull(v, NULL, 10);
        if ((v = opt(opts, n_opts, "part_bytes"))) o.part_bytes = strtoull(v, NULL, 10);
        size_t ob = (v = opt(opts, n_opts, "object_bytes")) ? strtoull(v, NULL, 10) : 0;
        uint32_t oa = (v = opt(opts, n_opts, "object_age_s")) ? (uint32_t)atoi(v) : 1;
        bs_s3_sink_limits(&sopt.limits, ob, oa);
        st = bs_s3_sink_new(&o, &ops, &impl);
    }
    if (st != BS_OK) {
        fprintf(stderr, "cannot create sink %s: %s\n", type, bs_status_name(st));
        printf("{\"error\":\"config\",\"status\":\"%s\"}\n", bs_status_name(st));
        bs_aws_credentials_provider_free(creds);
        bs_spool_close(r.sp);
        return 1;
    }
    if (bs_sink_create(loop, r.sp, &sopt, ops, impl, &r.sink) != BS_OK) {
        ops->destroy(impl);
        fprintf(stderr, "bs_sink_create failed\n");
        return 1;
    }
    r.in = input ? fopen(input, "r") : NULL;
    if (input && !r.in) {
        fprintf(stderr, "cannot open %s\n", input);
        r.fail = 1;
    }
    if (!r.in) r.eof = true;
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.02, 0.02);
    tick.data = &r;
    if (per_tick && !r.eof)
        ev_timer_start(loop, &tick);
    else
        feed(&r);
    ev_tstamp deadline = ev_time() + timeout_s;
    bool idle = false;
    while (ev_time() < deadline && !r.fail) {
        if (r.eof) {
            if (bs_spool_sync(r.sp) != BS_OK) break;
            bs_sink_flush(r.sink);
            if (bs_sink_idle(r.sink)) {
                idle = true;
                break;
            }
        }
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &tick);
    bs_sink_stats ss;
    bs_sink_get_stats(r.sink, &ss);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_printf(&w,
                   "{\"idle\":%s,\"appended\":%lu,\"delivered\":%llu,\"retried\":%llu,"
                   "\"dead_lettered\":%llu,\"batches\":%llu,\"metrics\":",
                   idle ? "true" : "false", r.appended, (unsigned long long)ss.delivered,
                   (unsigned long long)ss.retried, (unsigned long long)ss.dead_lettered,
                   (unsigned long long)ss.batches);
    if (bs_metrics_render_json(&w) != BS_OK) bs_wbuf_put_str(&w, "{}");
    bs_wbuf_put_str(&w, "}\n");
    if (bs_wbuf_status(&w) == BS_OK) fwrite(w.data, 1, w.len, stdout);
    bs_wbuf_free(&w);
    if (r.in) fclose(r.in);
    bs_sink_destroy(r.sink);
    bs_spool_close(r.sp);
    bs_aws_credentials_provider_free(creds);
    bs_metrics_shutdown();
    return idle && !r.fail ? 0 : 1;
}
