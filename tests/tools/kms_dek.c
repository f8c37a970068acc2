/*
 * kms_dek - drive the DEK manager over the aws KMS keyring with real threads,
 * for integration tests (tests/integration/test_kms_keyring.py) and by hand:
 *
 *   kms_dek --region eu-west-1 --endpoint http://127.0.0.1:5000/ [--workers 2]
 *           [--max-records N] [--max-attempts N] [--timeout-ms MS] [--backoff-ms MS]
 *
 * A control thread runs the HTTP client, the keyring and the manager on its
 * loop; each worker thread runs its own loop with a bs_dek_worker. Commands on
 * stdin, one per line; one JSON line on stdout for each:
 *
 *   encrypt W KEYREF TOPIC VALUE  -> {"status":"ok","envelope":HEX} | {"status":ERR}
 *   decrypt W TOPIC HEX           -> {"status":"ok","value":STRING} | {"status":ERR}
 *   stats                         -> KMS call, cache and rotation counters
 *
 * W is the worker index. A command waits (the worker's loop keeps running)
 * until its key arrives or fails; ERR is a bs_status name ("io", "crypto", ...).
 * Credentials come from the normal chain (environment, files, ...).
 */
#include <ev.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/dek_manager.h"
#include "brokerside/keyring_aws.h"
#include "brokerside/metrics.h"

#define MAX_WORKERS 8

typedef struct worker {
    struct ev_loop *loop;
    ev_async cmd_async;
    ev_async stop_async;
    bs_dek_worker *dw;
    bs_dek_manager *m;
    pthread_t thread;
    bs_dek_waiter waiter;
    /* The command in progress, set by the main thread, answered under `mu`. */
    char op[16], keyref[256], topic[256];
    bs_wbuf arg; /* value or envelope bytes */
    bs_wbuf result;
    bool done;
} worker;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* Finish the command with the JSON object `r` (a printf-built string). */
static void finish(worker *w, const char *fmt, const char *a, size_t alen)
{
    pthread_mutex_lock(&mu);
    bs_wbuf_reset(&w->result);
    if (strcmp(fmt, "status") == 0) {
        bs_wbuf_printf(&w->result, "{\"status\":\"%s\"}", a);
    } else {
        bs_wbuf_printf(&w->result, "{\"status\":\"ok\",\"%s\":", fmt);
        if (strcmp(fmt, "envelope") == 0) {
            bs_wbuf_put_u8(&w->result, '"');
            for (size_t i = 0; i < alen; i++)
                bs_wbuf_printf(&w->result, "%02x", (unsigned char)a[i]);
            bs_wbuf_put_u8(&w->result, '"');
        } else {
            bs_wbuf_put_json_string(&w->result, a, alen);
        }
        bs_wbuf_put_u8(&w->result, '}');
    }
    w->done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Try the current command; on BS_E_AGAIN the waiter brings us back here. */
static void attempt(worker *w)
{
    bs_dek *d = NULL;
    bs_status st;
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    if (strcmp(w->op, "encrypt") == 0) {
        uint64_t budget;
        st = bs_dek_worker_encrypt_dek(w->dw, w->keyref, w->topic, strlen(w->topic), &w->waiter, &d,
                                       &budget);
        if (st == BS_E_AGAIN) goto out;
        if (st == BS_OK)
            st = bs_envelope_encrypt(d, w->topic, strlen(w->topic), w->arg.data, w->arg.len, &out);
        if (st == BS_OK)
            finish(w, "envelope", (const char *)out.data, out.len);
        else
            finish(w, "status", bs_status_name(st), 0);
    } else {
        bs_envelope e;
        st = bs_envelope_parse(w->arg.data, w->arg.len, &e);
        if (st == BS_OK) {
            st = bs_dek_worker_decrypt_dek(w->dw, e.keyref, e.keyref_len, e.edek, e.edek_len,
                                           w->topic, strlen(w->topic), &w->waiter, &d);
            if (st == BS_E_AGAIN) goto out;
        }
        if (st == BS_OK)
            st = bs_envelope_decrypt(d, w->topic, strlen(w->topic), w->arg.data, w->arg.len, &out);
        if (st == BS_OK)
            finish(w, "value", (const char *)out.data, out.len);
        else
            finish(w, "status", bs_status_name(st), 0);
    }
out:
    bs_wbuf_free(&out);
}

static void on_wake(bs_dek_waiter *wt, bs_status st)
{
    worker *w = wt->arg;
    if (st == BS_OK)
        attempt(w);
    else
        finish(w, "status", bs_status_name(st), 0); /* fail closed: report, never fall back */
}

static void on_cmd(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    /* The command was written under `mu`; taking it orders those writes before
     * our reads (the ev_async wake-up alone is invisible to TSan). */
    pthread_mutex_lock(&mu);
    pthread_mutex_unlock(&mu);
    attempt(bs_container_of(a, worker, cmd_async));
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)a;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    ev_run(w->loop, 0);
    bs_dek_waiter_cancel(&w->waiter);
    bs_dek_worker_free(w->dw);
    return NULL;
}

typedef struct control {
    struct ev_loop *loop;
    ev_async stop_async;
    pthread_t thread;
} control;

static void *control_main(void *arg)
{
    control *c = arg;
    ev_run(c->loop, 0);
    return NULL;
}

/* Hex to bytes into `w`; false on odd length or a non-hex digit. */
static bool unhex(const char *s, bs_wbuf *w)
{
    size_t n = strlen(s);
    if (n % 2) return false;
    for (size_t i = 0; i < n; i += 2) {
        unsigned v;
        if (sscanf(s + i, "%2x", &v) != 1) return false;
        bs_wbuf_put_u8(w, (uint8_t)v);
    }
    return true;
}

static long metric(const char *name, const char *labels)
{
    return (long)bs_metric_value(bs_metrics_counter(name, "", labels));
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"region", required_argument, 0, 'r'},       {"endpoint", required_argument, 0, 'e'},
        {"workers", required_argument, 0, 'w'},      {"max-records", required_argument, 0, 'n'},
        {"max-attempts", required_argument, 0, 'a'}, {"timeout-ms", required_argument, 0, 't'},
        {"backoff-ms", required_argument, 0, 'b'},   {0, 0, 0, 0}};
    const char *region = NULL, *endpoint = NULL;
    unsigned nworkers = 2, attempts = 0;
    unsigned long long max_records = 1000000, backoff_ms = 0;
    long timeout_ms = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            region = optarg;
            break;
        case 'e':
            endpoint = optarg;
            break;
        case 'w':
            nworkers = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'n':
            max_records = strtoull(optarg, NULL, 10);
            break;
        case 'a':
            attempts = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            timeout_ms = strtol(optarg, NULL, 10);
            break;
        case 'b':
            backoff_ms = strtoull(optarg, NULL, 10);
            break;
        default:
            return 2;
        }
    }
    if (!region || nworkers == 0 || nworkers > MAX_WORKERS) {
        fprintf(stderr, "usage: kms_dek --region R [--endpoint URL] [--workers N] ...\n");
        return 2;
    }
    control ctl = {.loop = ev_loop_new(EVFLAG_AUTO)};
    bs_aws_credentials_provider *creds = NULL;
    bs_aws_http *http = NULL;
    bs_keyring *kr = NULL;
    bs_dek_manager *m = NULL;
    bs_aws_credentials_config cc = {.disable_imds = true};
    bs_aws_http_config hc = {.max_attempts = attempts,
                             .timeout_ms = timeout_ms,
                             .backoff_base_ms = 50,
                             .backoff_max_ms = 500};
    bs_keyring_aws_config kc = {.region = region, .endpoint = endpoint};
    bs_dek_manager_config mc = {
        .loop = ctl.loop, .policy = {max_records, 3600}, .failure_backoff_ms = backoff_ms};
    if (bs_aws_credentials_provider_new(&cc, &creds) != BS_OK ||
        bs_aws_http_new(ctl.loop, &hc, creds, &http) != BS_OK ||
        bs_keyring_aws_new(http, &kc, &kr) != BS_OK) {
        fprintf(stderr, "kms_dek: set-up failed\n");
        return 1;
    }
    mc.keyring = kr;
    if (bs_dek_manager_new(&mc, &m) != BS_OK) {
        fprintf(stderr, "kms_dek: bad DEK policy\n");
        return 1;
    }
    ev_async_init(&ctl.stop_async, on_stop);
    ev_async_start(ctl.loop, &ctl.stop_async);
    worker ws[MAX_WORKERS];
    memset(ws, 0, sizeof ws);
    for (unsigned i = 0; i < nworkers; i++) {
        worker *w = &ws[i];
        w->loop = ev_loop_new(EVFLAG_AUTO);
        w->m = m;
        bs_wbuf_init(&w->arg, 0);
        bs_wbuf_init(&w->result, 0);
        bs_dek_waiter_init(&w->waiter, on_wake, w);
        ev_async_init(&w->cmd_async, on_cmd);
        ev_async_start(w->loop, &w->cmd_async);
        ev_async_init(&w->stop_async, on_stop);
        ev_async_start(w->loop, &w->stop_async);
        if (bs_dek_worker_new(m, w->loop, &w->dw) != BS_OK) return 1;
    }
    pthread_create(&ctl.thread, NULL, control_main, &ctl);
    for (unsigned i = 0; i < nworkers; i++)
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);

    char line[65536];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL, *op = strtok_r(line, " ", &save);
        if (!op) continue;
        if (strcmp(op, "stats") == 0) {
            printf("{\"generate_ok\":%ld,\"generate_io\":%ld,\"decrypt_ok\":%ld,"
                   "\"decrypt_crypto\":%ld,\"hits\":%ld,\"misses\":%ld,\"rotations\":%ld}\n",
                   metric("brokerside_kms_calls_total", "op=\"generate_data_key\",result=\"ok\""),
                   metric("brokerside_kms_calls_total", "op=\"generate_data_key\",result=\"io\""),
                   metric("brokerside_kms_calls_total", "op=\"decrypt\",result=\"ok\""),
                   metric("brokerside_kms_calls_total", "op=\"decrypt\",result=\"crypto\""),
                   metric("brokerside_dek_cache_hits_total", NULL),
                   metric("brokerside_dek_cache_misses_total", NULL),
                   metric("brokerside_dek_rotations_total", "reason=\"records\""));
            fflush(stdout);
            continue;
        }
        char *ws_idx = strtok_r(NULL, " ", &save);
        unsigned wi = ws_idx ? (unsigned)strtoul(ws_idx, NULL, 10) : MAX_WORKERS;
        bool enc = strcmp(op, "encrypt") == 0;
        if (wi >= nworkers || (!enc && strcmp(op, "decrypt") != 0)) {
            printf("{\"status\":\"usage\"}\n");
            fflush(stdout);
            continue;
        }
        worker *w = &ws[wi];
        char *keyref = enc ? strtok_r(NULL, " ", &save) : NULL;
        char *topic = strtok_r(NULL, " ", &save);
        char *rest = strtok_r(NULL, "", &save);
        pthread_mutex_lock(&mu);
        bs_wbuf_reset(&w->arg);
        bool ok = topic && rest && (!enc || keyref) && strlen(topic) < sizeof w->topic &&
                  (!keyref || strlen(keyref) < sizeof w->keyref);
        if (ok) {
            snprintf(w->op, sizeof w->op, "%s", op);
            snprintf(w->keyref, sizeof w->keyref, "%s", keyref ? keyref : "");
            snprintf(w->topic, sizeof w->topic, "%s", topic);
            if (enc)
                bs_wbuf_put_str(&w->arg, rest);
            else
                ok = unhex(rest, &w->arg);
        }
        w->done = false;
        pthread_mutex_unlock(&mu);
        if (!ok) {
            printf("{\"status\":\"usage\"}\n");
            fflush(stdout);
            continue;
        }
        ev_async_send(w->loop, &w->cmd_async);
        pthread_mutex_lock(&mu);
        while (!w->done)
            pthread_cond_wait(&cv, &mu);
        printf("%.*s\n", (int)w->result.len, (const char *)w->result.data);
        pthread_mutex_unlock(&mu);
        fflush(stdout);
    }

    for (unsigned i = 0; i < nworkers; i++) {
        ev_async_send(ws[i].loop, &ws[i].stop_async);
        pthread_join(ws[i].thread, NULL);
        ev_loop_destroy(ws[i].loop);
        bs_wbuf_free(&ws[i].arg);
        bs_wbuf_free(&ws[i].result);
    }
    ev_async_send(ctl.loop, &ctl.stop_async);
    pthread_join(ctl.thread, NULL);
    bs_dek_manager_free(m);
    bs_keyring_free(kr);
    bs_aws_http_free(http);
    bs_aws_credentials_provider_free(creds);
    ev_loop_destroy(ctl.loop);
    bs_metrics_shutdown();
    return 0;
}
