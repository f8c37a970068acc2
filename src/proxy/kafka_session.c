/*
 * kafka_session.c - the Kafka-aware session: framing both directions,
 * correlation, endpoint rewriting, hooks and metrics (see kafka_session.h).
 *
 * Each direction is a small state machine over the net seam's buffers:
 *   - between frames, the next frame's size prefix and header are read in
 *     place from `in` (waiting for more bytes when they are not there yet);
 *   - a frame nobody needs whole is STREAMED: `remain` counts its bytes still
 *     to move from `in` to `fwd`, in chunks as large as both allow, so a
 *     100 MiB frame never occupies more than the connection buffers;
 *   - a frame we only want to look at (per-topic produce figures, error codes
 *     of a Fetch response) is TEED when it does not fit `in`: streamed as
 *     above while a copy accumulates in session memory (bounded by
 *     BS_KAFKA_INSPECT_MAX), inspected once complete. Inspection never delays
 *     or changes the bytes; a frame that already sits whole in `in` is
 *     inspected in place without a copy;
 *   - a frame that must be changed or checked before any byte of it leaves
 *     (a response carrying broker endpoints, ApiVersions, a frame a hook
 *     wants) is HELD: assembled whole (in place if `in` holds it, else copied
 *     into session memory bounded by kafka.max_frame_bytes), run through the
 *     hooks and the rewriter, and the result is queued in `out`, which drains
 *     into `fwd` as room appears. Nothing else moves in that direction until
 *     it has drained, so frame order is kept.
 *
 * Pass-through bytes avoid the copy when they can: with `fwd` empty and
 * mostly bytes of the current frame in `in`, the storage of the two buffers
 * is swapped (session.h allows it: net/ allocates each buffer's bytes
 * separately) and only a trailing piece of the next frame is copied back.
 * Otherwise they cost one memcpy (one bs_buf_append per chunk).
 */
#include "brokerside/kafka_session.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/proxy_config.h"
#include "brokerside/identity.h"
#include "brokerside/kafka_rewrite.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_summary.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"

#define MOD "kafka"

/* Requests in flight per connection: the table starts small (idle
 * connections stay cheap) and doubles up to CORR_MAX; beyond that we stop
 * reading the client (backpressure, not an error). */
#define CORR_INIT 16u
#define CORR_MAX 1024u
/* Per-session metric caches (open addressing). A full API cache skips the
 * metrics of further pairs, a full topic cache evicts; sized for what one
 * client connection uses. */
#define API_CACHE 32u
#define ERR_CACHE 16u
#define TOPIC_CACHE 32u
/* Process-wide topic-id -> name map entries (Fetch v13+ names topics by id). */
#define TOPIC_IDS_MAX 4096u
#define TOPIC_SET_SLOTS 2048u /* > BS_KAFKA_TOPIC_SERIES_MAX: the open-addressing set never fills */

/* ---------------------------------------------------------------- globals */

/* Bytes of request frames assembled in session memory right now, all
 * connections (bounded by kafka.held_bytes_budget). */
static _Atomic uint64_t g_held_bytes;

/* Distinct topic label values handed out so far, process-wide (the cap is
 * about the metric registry, which is process-wide too). */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_topics[TOPIC_SET_SLOTS];
static size_t g_ntopics;
typedef struct topic_id_ent {
    uint8_t id[16];
    char *name;
} topic_id_ent;
static topic_id_ent g_ids[TOPIC_IDS_MAX];
static size_t g_nids;

#define PRINCIPAL_SET_SLOTS 4096u
static char *g_principals[PRINCIPAL_SET_SLOTS];
static size_t g_nprincipals;

/* FNV-1a over `n` bytes. */
static uint32_t hash_bytes(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

/* See kafka_session.h. */
void bs_kafka_session_reset_globals(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < TOPIC_SET_SLOTS; i++) {
        free(g_topics[i]);
        g_topics[i] = NULL;
    }
    g_ntopics = 0;
    for (size_t i = 0; i < TOPIC_IDS_MAX; i++) {
        free(g_ids[i].name);
        g_ids[i].name = NULL;
    }
    g_nids = 0;
    for (size_t i = 0; i < PRINCIPAL_SET_SLOTS; i++) {
        free(g_principals[i]);
        g_principals[i] = NULL;
    }
    g_nprincipals = 0;
    pthread_mutex_unlock(&g_lock);
}

/* Has the broker confirmed topic `name` (NUL-terminated)? Only confirmed
 * topics get a series of their own: a client can put any string in a
 * request, so names from requests alone would let anyone fill the
 * BS_KAFKA_TOPIC_SERIES_MAX series with junk and push real topics into
 * "_other". */
static bool topic_confirmed(const char *name)
{
    size_t n = strlen(name);
    uint32_t h = hash_bytes((const uint8_t *)name, n) % TOPIC_SET_SLOTS;
    bool ok = false;
    pthread_mutex_lock(&g_lock);
    for (uint32_t i = 0; i < TOPIC_SET_SLOTS; i++) {
        uint32_t k = (h + i) % TOPIC_SET_SLOTS;
        if (!g_topics[k]) break;
        if (strcmp(g_topics[k], name) == 0) {
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

/* The broker confirmed topic `name` (len bytes): a successful Metadata entry,
 * a Produce partition without error, Fetch records. Admitted until
 * BS_KAFKA_TOPIC_SERIES_MAX distinct names were; later ones stay "_other". */
static void topic_confirm(const uint8_t *name, size_t len)
{
    char buf[256];
    if (len == 0 || len >= sizeof buf) return;
    memcpy(buf, name, len);
    buf[len] = 0;
    uint32_t h = hash_bytes(name, len) % TOPIC_SET_SLOTS;
    pthread_mutex_lock(&g_lock);
    for (uint32_t i = 0; i < TOPIC_SET_SLOTS; i++) {
        uint32_t k = (h + i) % TOPIC_SET_SLOTS;
        if (!g_topics[k]) {
            if (g_ntopics < BS_KAFKA_TOPIC_SERIES_MAX && (g_topics[k] = strdup(buf))) g_ntopics++;
            break;
        }
        if (strcmp(g_topics[k], buf) == 0) break;
    }
    pthread_mutex_unlock(&g_lock);
}

/* Remember that topic id `id` (16 bytes) is called `name` (len bytes). A full
 * map keeps its entries (ids then stay labelled by their hex form). */
static void topic_id_learn(const uint8_t *id, const uint8_t *name, size_t len)
{
    static const uint8_t zero[16];
    if (memcmp(id, zero, 16) == 0 || len == 0 || len > 249) return; /* 249: Kafka's topic name limit */
    uint32_t h = hash_bytes(id, 16) % TOPIC_IDS_MAX;
    pthread_mutex_lock(&g_lock);
    for (uint32_t i = 0; i < TOPIC_IDS_MAX; i++) {
        topic_id_ent *e = &g_ids[(h + i) % TOPIC_IDS_MAX];
        if (!e->name) {
            if (g_nids + 1 < TOPIC_IDS_MAX && (e->name = strndup((const char *)name, len))) {
                memcpy(e->id, id, 16);
                g_nids++;
            }
            break;
        }
        if (memcmp(e->id, id, 16) == 0) {
            /* A topic deleted and re-created keeps neither name nor id, but a
             * rename is impossible: nothing to update. */
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

/* See kafka_session.h. */
bool bs_kafka_topic_id_lookup(const uint8_t id[16], char *out, size_t outlen)
{
    uint32_t h = hash_bytes(id, 16) % TOPIC_IDS_MAX;
    bool found = false;
    pthread_mutex_lock(&g_lock);
    for (uint32_t i = 0; i < TOPIC_IDS_MAX; i++) {
        topic_id_ent *e = &g_ids[(h + i) % TOPIC_IDS_MAX];
        if (!e->name) break;
        if (memcmp(e->id, id, 16) == 0) {
            found = strlen(e->name) < outlen;
            if (found) memcpy(out, e->name, strlen(e->name) + 1);
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return found;
}

/* The name of topic id `id` into out[outlen] (NUL-terminated) and true, or
 * its hex form and false if no Metadata response told us. */
static bool topic_id_name(const uint8_t *id, char *out, size_t outlen)
{
    uint32_t h = hash_bytes(id, 16) % TOPIC_IDS_MAX;
    bool found = false;
    pthread_mutex_lock(&g_lock);
    for (uint32_t i = 0; i < TOPIC_IDS_MAX; i++) {
        topic_id_ent *e = &g_ids[(h + i) % TOPIC_IDS_MAX];
        if (!e->name) break;
        if (memcmp(e->id, id, 16) == 0) {
            snprintf(out, outlen, "%s", e->name);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (!found && outlen >= 33) {
        for (int i = 0; i < 16; i++)
            snprintf(out + 2 * i, 3, "%02x", id[i]);
    } else if (!found && outlen) {
        out[0] = 0;
    }
    return found;
}

/* ---------------------------------------------------------------- state */

typedef struct api_metrics {
    uint32_t key; /* (api << 16) | version, valid when `used` */
    bool used;
    bs_metric *requests, *req_bytes, *resp_bytes;
} api_metrics;

typedef struct lat_metrics {
    int16_t api;
    bool used;
    bs_histogram *broker, *total; /* brokerside_kafka_request_duration_seconds{stage} */
    bs_histogram *in_broker;      /* brokerside_kafka_broker_duration_seconds */
    bs_histogram *in_sidecar;     /* brokerside_kafka_sidecar_duration_seconds */
} lat_metrics;

typedef struct err_metric {
    uint32_t key; /* (api << 16) | (uint16_t)error */
    bool used;
    bs_metric *m;
} err_metric;

typedef struct topic_metrics {
    char *name; /* NULL = free slot */
    bs_metric *bytes_in, *msgs_in, *bytes_out;
    bs_metric *overflow; /* non-NULL when this topic is counted as "_other" */
} topic_metrics;

/* Times of one in-flight request, kept in a ring parallel to the
 * correlation table (same indexes). */
typedef struct req_times {
    uint64_t t_first; /* first byte of the request read from the client */
    uint64_t t_fwd;   /* last byte handed to the upstream buffer */
    uint64_t end_off; /* offset just past its last byte in the upstream-bound stream */
    uint64_t t_sent;  /* last byte written to the upstream socket (0: not reported) */
} req_times;

/* When the bytes of one direction's input arrived: a FIFO of (stream offset
 * just past a batch of bytes, monotonic time the session first saw them),
 * so a frame that waited in `in` behind a parked or slow frame is timed
 * from its arrival, not from when the session got to it. Bytes are counted
 * from the start of the connection. A call sees each batch right after net/
 * read it (session.h: the filter runs after every read), so "first seen" is
 * the read time. When the FIFO is full the newest entry absorbs further
 * batches (their bytes are dated a little early): bounded memory, and it
 * only happens while the session does not consume (a parked frame). */
#define ARRIVALS 16u
typedef struct arrivals {
    uint64_t end[ARRIVALS];
    uint64_t t[ARRIVALS];
    uint32_t head, n;
    uint64_t consumed;  /* stream bytes consumed before the current call */
    uint64_t seen;      /* stream bytes seen so far */
    const bs_buf *in;   /* the current call's input, NULL between calls */
    size_t in_at_entry; /* its readable bytes when the call began */
} arrivals;

/* Requests counter of one API for the connection's current principal. */
typedef struct principal_api_metric {
    int16_t api;
    bool used;
    bs_metric *m;
} principal_api_metric;

/* M_PARKED: a hook said HOLD; the frame stays where it is (in `in` when
 * parked_in_place, else asm_) until a wake-up reruns the hooks.
 * M_ANSWER: a hook answered a request itself; `out` holds the answer for the
 * client, sent through `back` once every earlier response went out. */
typedef enum mode { M_IDLE = 0, M_STREAM, M_HOLD, M_OUT, M_PARKED, M_ANSWER } mode;

typedef struct dir {
    bool is_req;
    mode m;
    size_t frame_len; /* current frame, size prefix included */
    size_t remain;    /* M_STREAM: bytes of it still to move from `in` */
    bool tee;         /* M_STREAM: also copy into `asm_` for inspection at the end */
    bool frame_seen;  /* a byte of the next frame has been seen (t_first is set) */
    size_t asm_limit; /* kafka.max_frame_bytes + 4 */
    uint64_t t_first; /* arrival of the current frame's first byte */
    arrivals arr;
    bs_wbuf asm_;    /* session-owned frame copy (held or teed) */
    bs_wbuf out;     /* M_OUT: bytes to emit, from out_off */
    size_t out_off;
    bs_wbuf scratch; /* hook chain */
    /* the current frame */
    bs_kafka_request_header rh; /* requests */
    bool rh_ok;                 /* header fully parsed (not only key/version/id) */
    bool validate;              /* requests: check against the schema once whole */
    size_t held_reserved;       /* requests: bytes of g_held_bytes this frame holds */
    bool pushed;                /* a correlation entry was pushed for it */
    bs_kafka_inflight inf;      /* responses: the request it answers */
    req_times times;            /* responses: that request's times */
    bool parked_in_place;       /* M_PARKED: the frame is at the read position of `in` */
    bool woken;                 /* M_PARKED: a hook called wake since the frame parked */
    bool observed;              /* the observer has seen the current frame */
    bool raw;                   /* a bare legacy SASL token (no Kafka header), see identity.h */
    int64_t obs_latency_ns;     /* responses: time in the broker, -1 unknown */
} dir;

typedef struct ksess {
    const bs_kafka_session_factory *fac;
    const bs_kafka_config *kcfg;
    char listener[128];
    char peer[64];
    bs_kafka_corr_table corr;
    req_times *times; /* corr.cap entries parallel to corr.ring */
    uint32_t n_sent;  /* leading corr entries whose last byte was written upstream */
    uint64_t up_written;     /* bytes of the upstream-bound stream written (net/ reports) */
    uint64_t up_appended;    /* bytes appended to upstream-bound buffers before this call */
    const bs_buf *up_out;    /* ksess_client: its `fwd`, NULL outside */
    size_t up_out_at_entry;  /* readable bytes of up_out when the call began */
    dir req, resp;
    api_metrics api[API_CACHE];
    lat_metrics lat[API_CACHE];
    err_metric err[ERR_CACHE];
    topic_metrics topics[TOPIC_CACHE];
    topic_metrics other; /* the "_other" series (other_m) */
    uint32_t topic_evict;
    void **hconn; /* per hook: its per-connection state (bs_kafka_hook.conn_open), or NULL */
    void (*net_wake)(void *); /* bs_session_info.wake */
    void *net_wake_arg;
    const bs_kafka_observer *obs; /* NULL: none */
    void *obs_conn;               /* the observer's per-connection state */
    bs_conn_identity ident;       /* certificate and SASL principal (identity.h) */
    /* per-principal metrics of the current principal (re-resolved when
     * ident.generation moves) */
    uint32_t pm_generation;
    bool pm_valid;
    char pm_label[BS_PRINCIPAL_MAX];
    bs_metric *pm_bytes_in, *pm_bytes_out;
    principal_api_metric pm_api[API_CACHE];
} ksess;

/* bs_kafka_hook_conn.wake: let parked frames rerun their hooks, and have the
 * connection call us again. */
static void ksess_wake(void *arg)
{
    ksess *s = arg;
    s->req.woken = s->resp.woken = true;
    if (s->net_wake) s->net_wake(s->net_wake_arg);
}

/* The argument of hook `i`'s callbacks on this connection. */
static void *hook_arg(const ksess *s, size_t i)
{
    return s->fac->hooks[i].conn_open ? s->hconn[i] : s->fac->hooks[i].arg;
}

/* Monotonic clock in nanoseconds. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A filter call on input `in` begins: date the bytes not seen before. */
static void arrivals_enter(arrivals *a, const bs_buf *in)
{
    a->in = in;
    a->in_at_entry = bs_buf_readable(in);
    uint64_t end = a->consumed + a->in_at_entry;
    if (end <= a->seen) return;
    a->seen = end;
    /* Batches consumed whole are history. */
    while (a->n > 0 && a->end[a->head] <= a->consumed) {
        a->head = (a->head + 1) % ARRIVALS;
        a->n--;
    }
    if (a->n == ARRIVALS) {
        a->end[(a->head + a->n - 1) % ARRIVALS] = end;
        return;
    }
    uint32_t i = (a->head + a->n) % ARRIVALS;
    a->end[i] = end;
    a->t[i] = now_ns();
    a->n++;
}

/* Arrival time of the byte now at the read position of the current call's
 * input (now, outside a call or when nothing is recorded). */
static uint64_t arrivals_at(arrivals *a)
{
    if (!a->in) return now_ns();
    uint64_t pos = a->consumed + (a->in_at_entry - bs_buf_readable(a->in));
    while (a->n > 0 && a->end[a->head] <= pos) {
        a->head = (a->head + 1) % ARRIVALS;
        a->n--;
    }
    return a->n > 0 ? a->t[a->head] : now_ns();
}

/* The filter call ends: account for what it consumed. */
static void arrivals_leave(arrivals *a)
{
    if (!a->in) return;
    a->consumed += a->in_at_entry - bs_buf_readable(a->in);
    a->in = NULL;
}

/* ---------------------------------------------------------------- metrics */

/* Counters of (api, version), registered on first use by this session. */
static api_metrics *api_m(ksess *s, int16_t api, int16_t ver)
{
    static api_metrics none;
    /* Label values come from the client: keys and versions outside the API
     * table share one series each ("unknown"), so a hostile client cannot
     * grow the registry without bound. */
    const bs_kafka_api_info *info = bs_kafka_api(api);
    if (!info) api = -1;
    bool ver_ok = info && ver >= info->min_version && ver <= info->max_version;
    if (!ver_ok) ver = -1;
    uint32_t key = ((uint32_t)(uint16_t)api << 16) | (uint16_t)ver;
    uint32_t h = (key * 2654435761u) % API_CACHE;
    for (uint32_t i = 0; i < API_CACHE; i++) {
        api_metrics *e = &s->api[(h + i) % API_CACHE];
        if (e->used && e->key == key) return e;
        if (e->used) continue;
        char v[8];
        if (ver_ok)
            snprintf(v, sizeof v, "%d", ver);
        else
            snprintf(v, sizeof v, "unknown");
        const char *name = bs_kafka_api_name(api);
        e->requests = bs_metrics_counter_kv("brokerside_kafka_requests_total",
                                            "Kafka requests received from clients", "listener",
                                            s->listener, "api", name, "version", v, NULL);
        e->req_bytes = bs_metrics_counter_kv("brokerside_kafka_request_bytes_total",
                                             "Bytes of Kafka requests (frames, size included)",
                                             "listener", s->listener, "api", name, "version", v,
                                             NULL);
        e->resp_bytes = bs_metrics_counter_kv(
            "brokerside_kafka_response_bytes_total",
            "Bytes of Kafka responses from the broker (frames, size included)", "listener",
            s->listener, "api", name, "version", v, NULL);
        e->key = key;
        e->used = true;
        return e;
    }
    /* Cache full (a client walking every version of every API): correct but
     * unusual; metrics of this pair are then skipped rather than hitting
     * the registry lock per frame. */
    return &none;
}

/* Latency histograms of `api`. */
static lat_metrics *lat_m(ksess *s, int16_t api)
{
    static lat_metrics none;
    if (!bs_kafka_api(api)) api = -1; /* one "unknown" series, see api_m */
    uint32_t h = ((uint32_t)(uint16_t)api * 2654435761u) % API_CACHE;
    for (uint32_t i = 0; i < API_CACHE; i++) {
        lat_metrics *e = &s->lat[(h + i) % API_CACHE];
        if (e->used && e->api == api) return e;
        if (e->used) continue;
        size_t nb;
        const double *b = bs_metrics_latency_bounds_s(&nb);
        const char *help = "Kafka request latency: stage=broker from the request's last byte "
                           "written to the broker to the first response byte read back, "
                           "stage=total from the request's first byte read from the client "
                           "to the response handed to the client";
        const char *name = bs_kafka_api_name(api);
        e->in_broker = bs_metrics_histogram_kv(
            "brokerside_kafka_broker_duration_seconds",
            "Time of a Kafka request in the broker: from its last byte written to the broker "
            "to the first byte of its response read back",
            b, nb, "listener", s->listener, "api", name, NULL);
        e->in_sidecar = bs_metrics_histogram_kv(
            "brokerside_kafka_sidecar_duration_seconds",
            "Time of a Kafka request in the sidecar (queueing, hooks such as encryption, "
            "policy and the audit gate, rewriting): total minus broker time",
            b, nb, "listener", s->listener, "api", name, NULL);
        e->broker = bs_metrics_histogram_kv("brokerside_kafka_request_duration_seconds", help, b,
                                            nb, "listener", s->listener, "api", name, "stage",
                                            "broker", NULL);
        e->total = bs_metrics_histogram_kv("brokerside_kafka_request_duration_seconds", help, b,
                                           nb, "listener", s->listener, "api", name, "stage",
                                           "total", NULL);
        e->api = api;
        e->used = true;
        return e;
    }
    return &none;
}

/* Count one non-zero Kafka error code in a response of `api`. */
static void count_error(ksess *s, int16_t api, int16_t code)
{
    uint32_t key = ((uint32_t)(uint16_t)api << 16) | (uint16_t)code;
    uint32_t h = (key * 2654435761u) % ERR_CACHE;
    for (uint32_t i = 0; i < ERR_CACHE; i++) {
        err_metric *e = &s->err[(h + i) % ERR_CACHE];
        if (e->used && e->key == key) {
            bs_metric_add(e->m, 1);
            return;
        }
        if (e->used) continue;
        char c[8];
        snprintf(c, sizeof c, "%d", code);
        e->m = bs_metrics_counter_kv("brokerside_kafka_errors_total",
                                     "Kafka error codes found in broker responses", "listener",
                                     s->listener, "api", bs_kafka_api_name(api), "error", c, NULL);
        e->key = key;
        e->used = true;
        bs_metric_add(e->m, 1);
        return;
    }
    char c[8];
    snprintf(c, sizeof c, "%d", code);
    bs_metric_add(bs_metrics_counter_kv("brokerside_kafka_errors_total",
                                        "Kafka error codes found in broker responses", "listener",
                                        s->listener, "api", bs_kafka_api_name(api), "error", c,
                                        NULL),
                  1);
}

/* A one-off counter with listener plus one more label (rare events: errors). */
static void count_event(ksess *s, const char *name, const char *help, const char *k, const char *v)
{
    bs_metric_add(bs_metrics_counter_kv(name, help, "listener", s->listener, k, v, NULL), 1);
}

/* Metrics of the "_other" series (topics the broker has not confirmed, or
 * past the cap); created on first use, kept for the session's life. */
static topic_metrics *other_m(ksess *s)
{
    topic_metrics *o = &s->other;
    if (o->name) return o;
    if (!(o->name = strdup("_other"))) return NULL;
    o->overflow = bs_metrics_counter("brokerside_topic_series_overflow_total",
                                     "Topic metric updates aggregated as topic=\"_other\" (topic "
                                     "not confirmed by the broker yet, or the distinct-topic cap "
                                     "reached)",
                                     NULL);
    o->bytes_in = bs_metrics_counter_kv("brokerside_topic_bytes_in_total",
                                        "Record bytes produced to the topic (MSK BytesInPerSec)",
                                        "topic", "_other", NULL);
    o->msgs_in = bs_metrics_counter_kv("brokerside_topic_messages_in_total",
                                       "Records produced to the topic (MSK MessagesInPerSec)",
                                       "topic", "_other", NULL);
    o->bytes_out = bs_metrics_counter_kv(
        "brokerside_topic_bytes_out_total", "Record bytes fetched from the topic (MSK BytesOutPerSec)",
        "topic", "_other", NULL);
    return o;
}

/* Per-topic metrics of topic `name` (NUL-terminated): its own series once
 * the broker confirmed it (topic_confirm), else "_other". */
static topic_metrics *topic_m(ksess *s, const char *name)
{
    uint32_t h = hash_bytes((const uint8_t *)name, strlen(name)) % TOPIC_CACHE;
    topic_metrics *slot = NULL;
    for (uint32_t i = 0; i < TOPIC_CACHE; i++) {
        topic_metrics *e = &s->topics[(h + i) % TOPIC_CACHE];
        if (!e->name) {
            slot = e;
            break;
        }
        if (strcmp(e->name, name) == 0) return e;
    }
    /* unconfirmed names are not cached: they get their series once confirmed */
    if (!topic_confirmed(name)) return other_m(s);
    if (!slot) {
        /* Full: evict round-robin (the metric series stay in the registry). */
        slot = &s->topics[s->topic_evict++ % TOPIC_CACHE];
        free(slot->name);
        slot->name = NULL;
    }
    slot->overflow = NULL;
    if (!(slot->name = strdup(name))) return NULL;
    slot->bytes_in = bs_metrics_counter_kv("brokerside_topic_bytes_in_total",
                                           "Record bytes produced to the topic (MSK BytesInPerSec)",
                                           "topic", name, NULL);
    slot->msgs_in = bs_metrics_counter_kv("brokerside_topic_messages_in_total",
                                          "Records produced to the topic (MSK MessagesInPerSec)",
                                          "topic", name, NULL);
    slot->bytes_out = bs_metrics_counter_kv(
        "brokerside_topic_bytes_out_total", "Record bytes fetched from the topic (MSK BytesOutPerSec)",
        "topic", name, NULL);
    return slot;
}

/* The label name of a topic in a summary: its name, else its id's name. */
static void topic_label(const bs_kafka_topic_summary *t, char *out, size_t outlen)
{
    if (t->name.len >= 0) {
        size_t n = (size_t)t->name.len < outlen - 1 ? (size_t)t->name.len : outlen - 1;
        memcpy(out, t->name.p, n);
        out[n] = 0;
    } else if (t->topic_id) {
        (void)topic_id_name(t->topic_id, out, outlen); /* unknown ids: their hex form */
    } else {
        snprintf(out, outlen, "_unknown");
    }
}

/* Summary callback: produce figures of one topic. */
static bs_status on_produce_topic(void *arg, const bs_kafka_topic_summary *t)
{
    const ksess *s = arg;
    if (s->obs && s->obs->on_topic) s->obs->on_topic(s->obs_conn, true, t);
    char name[256];
    topic_label(t, name, sizeof name);
    topic_metrics *m = topic_m(arg, name);
    if (m) {
        bs_metric_add(m->bytes_in, (int64_t)t->record_bytes);
        bs_metric_add(m->msgs_in, (int64_t)t->records);
        bs_metric_add(m->overflow, 1);
    }
    return BS_OK;
}

/* Summary callback: fetch figures of one topic. */
static bs_status on_fetch_topic(void *arg, const bs_kafka_topic_summary *t)
{
    const ksess *s = arg;
    if (s->obs && s->obs->on_topic) s->obs->on_topic(s->obs_conn, false, t);
    if (t->record_bytes == 0) return BS_OK; /* empty long-poll answers: no series churn */
    char name[256];
    topic_label(t, name, sizeof name);
    /* records in a broker's answer: the topic exists */
    if (t->name.len > 0) topic_confirm(t->name.p, (size_t)t->name.len);
    topic_metrics *m = topic_m(arg, name);
    if (m) {
        bs_metric_add(m->bytes_out, (int64_t)t->record_bytes);
        bs_metric_add(m->overflow, 1);
    }
    return BS_OK;
}

/* ---------------------------------------------------------------- per principal */

/* See kafka_session.h. */
bool bs_kafka_principal_admit(const char *name)
{
    uint32_t cap = bs_identity_config_current()->metrics_max_principals;
    if (cap > PRINCIPAL_SET_SLOTS / 2) cap = PRINCIPAL_SET_SLOTS / 2;
    uint32_t h = hash_bytes((const uint8_t *)name, strlen(name)) % PRINCIPAL_SET_SLOTS;
    bool ok = false;
    pthread_mutex_lock(&g_lock);
    for (uint32_t i = 0; i < PRINCIPAL_SET_SLOTS; i++) {
        uint32_t k = (h + i) % PRINCIPAL_SET_SLOTS;
        if (!g_principals[k]) {
            if (g_nprincipals < cap && (g_principals[k] = strdup(name))) {
                g_nprincipals++;
                ok = true;
            }
            break;
        }
        if (strcmp(g_principals[k], name) == 0) {
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

/* Make the per-principal series follow the connection's current principal. */
static void principal_refresh(ksess *s)
{
    if (s->pm_valid && s->pm_generation == s->ident.generation) return;
    const char *p = bs_conn_identity_principal(&s->ident);
    s->pm_valid = true;
    s->pm_generation = s->ident.generation;
    bool admitted = bs_kafka_principal_admit(p);
    snprintf(s->pm_label, sizeof s->pm_label, "%s", admitted ? p : "_other");
    if (!admitted) /* the cap folded this principal's series into "_other": counted */
        bs_metric_add(bs_metrics_counter_kv(
                          "brokerside_metric_series_dropped_total",
                          "Series not exported, or folded into \"_other\", because a cardinality cap was reached",
                          "metric", "brokerside_principal_requests_total", NULL),
                      1);
    memset(s->pm_api, 0, sizeof s->pm_api);
    s->pm_bytes_in = bs_metrics_counter_kv(
        "brokerside_principal_request_bytes_total",
        "Bytes of Kafka requests by principal (capped by identity.metrics_max_principals)",
        "principal", s->pm_label, NULL);
    s->pm_bytes_out = bs_metrics_counter_kv(
        "brokerside_principal_response_bytes_total",
        "Bytes of Kafka responses by principal (capped by identity.metrics_max_principals)",
        "principal", s->pm_label, NULL);
}

/* Count one request of `api` and its bytes for the current principal. */
static void principal_count_request(ksess *s, int16_t api, size_t bytes)
{
    principal_refresh(s);
    if (!bs_kafka_api(api)) api = -1;
    uint32_t h = ((uint32_t)(uint16_t)api * 2654435761u) % API_CACHE;
    for (uint32_t i = 0; i < API_CACHE; i++) {
        principal_api_metric *e = &s->pm_api[(h + i) % API_CACHE];
        if (!e->used) {
            e->used = true;
            e->api = api;
            e->m = bs_metrics_counter_kv("brokerside_principal_requests_total",
                                         "Kafka requests by principal and API", "principal",
                                         s->pm_label, "api", bs_kafka_api_name(api), NULL);
        }
        if (e->api != api) continue;
        bs_metric_add(e->m, 1);
        break;
    }
    bs_metric_add(s->pm_bytes_in, (int64_t)bytes);
}

/* ---------------------------------------------------------------- inspection */

typedef struct resp_scan {
    ksess *s;
    int16_t api;
    int depth;
    bool metadata; /* Metadata response: learn ids, confirm topics */
    bool produce;  /* Produce response: confirm topics with a partition written */
    const uint8_t *name;
    size_t name_len;
    bool has_name;
    const uint8_t *id;
    bool topic_ok; /* Metadata: topic ErrorCode 0; Produce: a partition ErrorCode 0 */
} resp_scan;

/* Scan visitor over a response body: counts every non-zero ErrorCode field
 * and, in Metadata responses, learns topic id -> name pairs. */
static bs_status resp_visit(void *arg, const bs_kafka_field *f, const bs_kafka_val *v, int event)
{
    resp_scan *x = arg;
    bool topics = x->depth <= 1 && ((x->metadata && strcmp(f->name, "Topics") == 0) ||
                                     (x->produce && strcmp(f->name, "Responses") == 0));
    if (event == BS_KAFKA_VISIT_ENTER) {
        if (topics && x->depth == 0) {
            x->has_name = false;
            x->id = NULL;
            x->topic_ok = false;
        }
        x->depth++;
        return BS_OK;
    }
    if (event == BS_KAFKA_VISIT_LEAVE) {
        x->depth--;
        if (topics && x->depth == 0) {
            if (x->metadata && x->has_name && x->id) topic_id_learn(x->id, x->name, x->name_len);
            if (x->topic_ok && x->has_name) {
                topic_confirm(x->name, x->name_len);
            } else if (x->topic_ok && x->id) {
                char name[256];
                if (topic_id_name(x->id, name, sizeof name))
                    topic_confirm((const uint8_t *)name, strlen(name));
            }
        }
        return BS_OK;
    }
    bool is_err = f->type == BS_KT_INT16 && f->name[0] == 'E' && strcmp(f->name, "ErrorCode") == 0;
    if (is_err && v->i != 0) count_error(x->s, x->api, (int16_t)v->i);
    if (is_err && v->i == 0 && ((x->metadata && x->depth == 1) || (x->produce && x->depth == 2)))
        x->topic_ok = true;
    /* a topic entry of either: its name and (Metadata, Produce v13+) its id */
    if ((x->produce || x->metadata) && x->depth == 1) {
        if (f->type == BS_KT_STRING && strcmp(f->name, "Name") == 0 && !v->null) {
            x->name = v->p;
            x->name_len = v->n;
            x->has_name = true;
        } else if (f->type == BS_KT_UUID && strcmp(f->name, "TopicId") == 0) {
            x->id = v->p;
        }
    }
    return BS_OK;
}

/* Note a frame that could not be decoded for metrics (it is still forwarded:
 * the broker or client is the judge of its own protocol). */
static void undecodable(ksess *s, int16_t api, int16_t ver, bool is_req, bs_status st)
{
    BS_LOG_DEBUGF(MOD, "listener %s: %s %s v%d from %s not decodable for metrics (%s)",
                  s->listener, bs_kafka_api_name(api), is_req ? "request" : "response", ver,
                  s->peer, bs_status_name(st));
    bs_metric_add(bs_metrics_counter_kv("brokerside_kafka_undecodable_total",
                                        "Frames forwarded without metrics because they did not "
                                        "decode",
                                        "listener", s->listener, "api", bs_kafka_api_name(api),
                                        "direction", is_req ? "request" : "response", NULL),
                  1);
}

/* Inspect a whole request frame (size included) for per-topic metrics. */
static void inspect_request(ksess *s, const dir *d, const uint8_t *frame, size_t len)
{
    if (!d->rh_ok || d->rh.api_key != BS_KAFKA_PRODUCE) return;
    size_t off = 4 + d->rh.header_len;
    if (off > len) return;
    bs_status st =
        bs_kafka_produce_summary(frame + off, len - off, d->rh.api_version, on_produce_topic, s);
    if (st != BS_OK) undecodable(s, d->rh.api_key, d->rh.api_version, true, st);
}

/* Inspect a whole response frame (size included): error codes of every API
 * with a schema, topic ids of Metadata, bytes out of Fetch. */
static void inspect_response(ksess *s, const dir *d, const uint8_t *frame, size_t len)
{
    int16_t api = d->inf.api_key, ver = d->inf.api_version;
    const bs_kafka_message *m = bs_kafka_message_find(api, false);
    if (!m || ver < m->min_version || ver > m->max_version) return;
    int hv;
    bs_kafka_response_header rh;
    if (bs_kafka_response_header_version(api, ver, &hv) != BS_OK) return;
    bs_status st = bs_kafka_parse_response_header(frame + 4, len - 4, hv, &rh);
    if (st == BS_OK) {
        const uint8_t *body = frame + 4 + rh.header_len;
        size_t blen = len - 4 - rh.header_len;
        resp_scan x = {.s = s,
                       .api = api,
                       .metadata = api == BS_KAFKA_METADATA,
                       .produce = api == BS_KAFKA_PRODUCE};
        st = bs_kafka_scan(m, ver, body, blen, resp_visit, &x);
        if (st == BS_OK && api == BS_KAFKA_FETCH)
            st = bs_kafka_fetch_summary(body, blen, ver, on_fetch_topic, s);
    }
    if (st != BS_OK) undecodable(s, api, ver, false, st);
}

/* Does a response of this API get inspected even when it must be copied
 * aside (it does not fit the connection buffer)? */
static bool response_worth_tee(int16_t api)
{
    return api == BS_KAFKA_PRODUCE || api == BS_KAFKA_FETCH || api == BS_KAFKA_METADATA ||
           api == BS_KAFKA_FIND_COORDINATOR;
}

/* ---------------------------------------------------------------- rewriting */

/* bs_kafka_map_fn of a session: the kafka.advertise entry or template for
 * the node, else (zero-config, bs_config_route_for) the address of the kafka
 * listener fronting the address the broker advertised for it, preferring the
 * session's own listener. A node with neither stays unmapped: never forwarded. */
static bs_status map_node(void *arg, int32_t node_id, const bs_kafka_addr *was, char *host,
                          size_t hostlen, int32_t *port)
{
    const ksess *s = arg;
    uint16_t p;
    bs_status st = bs_config_advertised(s->kcfg, node_id, host, hostlen, &p);
    if (st == BS_E_MALFORMED) st = BS_E_NOT_FOUND; /* a template with no valid port for this id */
    if (st == BS_E_NOT_FOUND) {
        const bs_kafka_route *r = bs_config_route_for(s->kcfg, node_id, was->host, was->host_len,
                                                      was->port, was->shared, s->listener);
        if (!r) return BS_E_NOT_FOUND;
        size_t n = strlen(r->host);
        if (n >= hostlen) return BS_E_TOO_LARGE;
        memcpy(host, r->host, n + 1);
        p = r->port;
        st = BS_OK;
    }
    if (st != BS_OK) return st;
    *port = p;
    return BS_OK;
}

/* Validate a hook's replacement: one complete frame. */
static bool frame_ok(const bs_wbuf *w)
{
    if (w->len < 8) return false;
    uint32_t n = ((uint32_t)w->data[0] << 24) | ((uint32_t)w->data[1] << 16) |
                 ((uint32_t)w->data[2] << 8) | w->data[3];
    return (size_t)n + 4 == w->len;
}

/* Run hooks and (responses) the rewriter over a whole frame. On BS_OK,
 * *replaced says whether d->out now holds the frame to emit instead of the
 * original, and *verdict_out is PASS/REPLACE (go on), HOLD (a hook waits:
 * nothing was decided) or ANSWER (d->out holds the answer to the client).
 * Any other status: the connection must close (logged here). */
static bs_status transform(ksess *s, dir *d, const uint8_t *frame, size_t len, bool *replaced,
                           bs_kafka_hook_verdict *verdict_out)
{
    const uint8_t *cur = frame;
    size_t cur_len = len;
    *replaced = false;
    *verdict_out = BS_KAFKA_HOOK_PASS;
    bs_wbuf_reset(&d->out);
    d->out_off = 0;
    int16_t api = d->is_req ? d->rh.api_key : d->inf.api_key;
    int16_t ver = d->is_req ? d->rh.api_version : d->inf.api_version;
    for (size_t i = 0; s->fac && i < s->fac->n_hooks; i++) {
        const bs_kafka_hook *hk = &s->fac->hooks[i];
        void *harg = hook_arg(s, i);
        bool wants = d->is_req ? (hk->wants_request && hk->on_request &&
                                  hk->wants_request(harg, api, ver))
                               : (hk->wants_response && hk->on_response &&
                                  hk->wants_response(harg, api, ver));
        if (!wants) continue;
        bs_kafka_hook_verdict v = BS_KAFKA_HOOK_PASS;
        bs_wbuf_reset(&d->scratch);
        bs_status st = BS_OK;
        bs_kafka_request_header rh = d->rh;
        if (d->is_req) {
            /* d->rh was parsed where the frame first arrived; its slices must
             * point into the bytes the hook sees. */
            st = bs_kafka_parse_request_header(cur + 4, cur_len - 4, &rh);
            if (st == BS_E_UNSUPPORTED) st = BS_OK;
        }
        if (st == BS_OK)
            st = d->is_req ? hk->on_request(harg, &rh, cur, cur_len, &d->scratch, &v)
                           : hk->on_response(harg, &d->inf, cur, cur_len, &d->scratch, &v);
        if (st == BS_OK && (v == BS_KAFKA_HOOK_REPLACE || v == BS_KAFKA_HOOK_ANSWER)) {
            st = bs_wbuf_status(&d->scratch);
            /* An empty answer is a drop, valid only for a request expecting none. */
            bool drop_ok = v == BS_KAFKA_HOOK_ANSWER && d->scratch.len == 0 && !d->pushed;
            if (st == BS_OK && !drop_ok && !frame_ok(&d->scratch)) st = BS_E_MALFORMED;
            /* ...and a request expecting none must get none (acks=0). */
            if (st == BS_OK && v == BS_KAFKA_HOOK_ANSWER && !d->pushed && d->scratch.len > 0)
                st = BS_E_MALFORMED;
        }
        if (st == BS_OK && v == BS_KAFKA_HOOK_ANSWER && !d->is_req) st = BS_E_STATE;
        if (st == BS_OK && v > BS_KAFKA_HOOK_ANSWER) st = BS_E_STATE;
        if (st != BS_OK) {
            BS_LOG_WARNF(MOD, "listener %s: hook %s failed on %s %s v%d from %s (%s); closing",
                         s->listener, hk->name ? hk->name : "?", bs_kafka_api_name(api),
                         d->is_req ? "request" : "response", ver, s->peer, bs_status_name(st));
            return st;
        }
        if (v == BS_KAFKA_HOOK_HOLD) {
            *verdict_out = v;
            return BS_OK;
        }
        if (v == BS_KAFKA_HOOK_REPLACE || v == BS_KAFKA_HOOK_ANSWER) {
            bs_wbuf t = d->out;
            d->out = d->scratch;
            d->scratch = t;
            cur = d->out.data;
            cur_len = d->out.len;
            *replaced = true;
        }
        if (v == BS_KAFKA_HOOK_ANSWER) {
            *verdict_out = v;
            return BS_OK;
        }
    }
    if (d->is_req || !(api == BS_KAFKA_API_VERSIONS || bs_kafka_response_has_endpoints(api, ver)))
        return BS_OK;
    bool changed = false;
    int32_t bad_node = -1;
    bs_wbuf_reset(&d->scratch);
    bs_status st = bs_kafka_rewrite_response_frame(api, ver, cur + 4, cur_len - 4, map_node, s, NULL, &d->scratch, &changed,
                                                   &bad_node);
    if (st == BS_E_NOT_FOUND) {
        char node[16];
        snprintf(node, sizeof node, "%" PRId32, bad_node);
        BS_LOG_ERRORF(MOD,
                      "listener %s: node %s has no advertised address (kafka.advertise) and no "
                      "kafka listener fronts the address the broker advertised for it as that node "
                      "(nodes sharing one address need the listener's broker_id); %s v%d "
                      "response not forwarded, closing connection from %s",
                      s->listener, node, bs_kafka_api_name(api), ver, s->peer);
        count_event(s, "brokerside_kafka_unmapped_node_total",
                    "Responses refused because a broker node has no advertised address", "node",
                    node);
        return st;
    }
    if (st != BS_OK && api == BS_KAFKA_API_VERSIONS && cur_len >= 10 && (cur[8] | cur[9]) != 0) {
        /* An ApiVersions error answer (e.g. UNSUPPORTED_VERSION, which some
         * brokers, librdkafka's mock among them, encode loosely) carries no
         * endpoint and only tells the client which ApiVersions version to
         * retry with; the retry's answer is capped. Forward it as it is. */
        undecodable(s, api, ver, false, st);
        return BS_OK;
    }
    if (st != BS_OK) {
        BS_LOG_ERRORF(MOD,
                      "listener %s: cannot rewrite %s v%d response for %s (%s); not forwarded, "
                      "closing",
                      s->listener, bs_kafka_api_name(api), ver, s->peer, bs_status_name(st));
        bs_metric_add(bs_metrics_counter_kv("brokerside_kafka_rewrite_errors_total",
                                            "Responses that needed a rewrite and did not decode",
                                            "listener", s->listener, "api", bs_kafka_api_name(api),
                                            "reason", bs_status_name(st), NULL),
                      1);
        return st;
    }
    if (changed) {
        bs_wbuf t = d->out;
        d->out = d->scratch;
        d->scratch = t;
        *replaced = true;
    }
    return BS_OK;
}

/* ---------------------------------------------------------------- frame events */

/* Show the current frame to the observer, once: `len` bytes at `frame`
 * (fewer than d->frame_len when only a prefix is at hand). A request's
 * header is parsed again from `frame`: d->rh was parsed where the frame first
 * arrived, and a frame assembled or copied aside (d->asm_) no longer lives
 * there, so d->rh's slices (client id) may point at bytes since reused. If
 * the header is not within `frame`, the observer gets it without the slices. */
static void observe(ksess *s, dir *d, const uint8_t *frame, size_t len)
{
    if (!s->obs || d->observed) return;
    d->observed = true;
    if (d->is_req) {
        bs_kafka_request_header rh = d->rh;
        bool ok = d->rh_ok;
        bs_status st = frame && len >= 4
                           ? bs_kafka_parse_request_header(frame + 4, len - 4, &rh)
                           : BS_E_SHORT;
        if (st != BS_OK && st != BS_E_UNSUPPORTED) {
            rh = d->rh;
            rh.client_id.p = NULL;
            rh.client_id.len = -1;
            ok = false;
        }
        s->obs->on_request(s->obs_conn, &rh, ok, d->pushed, frame, len, d->frame_len);
    } else
        s->obs->on_response(s->obs_conn, &d->inf, d->obs_latency_ns, frame, len, d->frame_len);
}

/* Does the observer want this frame whole? */
static bool observer_wants(const ksess *s, bool is_req, int16_t api, int16_t ver)
{
    if (!s->obs) return false;
    if (is_req) return s->obs->wants_request && s->obs->wants_request(s->obs->arg, api, ver);
    return s->obs->wants_response && s->obs->wants_response(s->obs->arg, api, ver);
}

/* The last byte of the current frame has been handed to `fwd`. */
static void frame_done(ksess *s, dir *d)
{
    uint64_t t = now_ns();
    if (d->is_req) {
        /* The request just forwarded is the newest entry (requests are cut in
         * order); its response cannot have arrived before its last byte. */
        if (d->pushed && s->corr.count > 0) {
            req_times *rt = &s->times[(s->corr.head + s->corr.count - 1) % s->corr.cap];
            rt->t_fwd = t;
            rt->end_off = s->up_appended +
                          (s->up_out ? bs_buf_readable(s->up_out) - s->up_out_at_entry : 0);
        }
    } else if (d->times.t_first && t >= d->times.t_first) {
        uint64_t total = t - d->times.t_first;
        lat_metrics *lm = lat_m(s, d->inf.api_key);
        bs_histogram_observe(lm->total, (double)total / 1e9);
        if (d->obs_latency_ns >= 0) {
            uint64_t broker = (uint64_t)d->obs_latency_ns;
            if (broker > total) broker = total;
            bs_histogram_observe(lm->in_broker, (double)broker / 1e9);
            bs_histogram_observe(lm->in_sidecar, (double)(total - broker) / 1e9);
        }
    }
    if (d->held_reserved) {
        atomic_fetch_sub(&g_held_bytes, d->held_reserved);
        d->held_reserved = 0;
    }
    d->m = M_IDLE;
    d->remain = 0;
    d->tee = false;
    d->frame_seen = false;
    d->pushed = false;
    d->observed = false;
    d->raw = false;
    /* Keep memory per idle connection small: drop big copies, keep small ones. */
    bs_wbuf *ws[] = {&d->asm_, &d->out, &d->scratch};
    for (size_t i = 0; i < BS_ARRAY_LEN(ws); i++) {
        if (ws[i]->cap > 256u * 1024u)
            bs_wbuf_free(ws[i]);
        else
            bs_wbuf_reset(ws[i]);
        /* finish_hold and transform swap these buffers: restore each one's role */
        ws[i]->limit = i == 0 ? d->asm_limit : 0;
    }
}

/* Close-worthy protocol violation: log, count, return the status. */
static bs_status protocol_error(ksess *s, dir *d, const char *reason, const char *detail)
{
    BS_LOG_WARNF(MOD, "listener %s: %s from %s: %s; closing connection", s->listener,
                 d->is_req ? "request" : "response", s->peer, detail);
    bs_metric_add(bs_metrics_counter_kv("brokerside_kafka_protocol_errors_total",
                                        "Connections closed for a Kafka protocol violation",
                                        "listener", s->listener, "direction",
                                        d->is_req ? "request" : "response", "reason", reason, NULL),
                  1);
    return BS_E_MALFORMED;
}

/* SaslHandshake or SaslAuthenticate? */
static bool is_sasl_api(int16_t api)
{
    return api == 17 || api == 36;
}

/* Close for a SASL rule (identity.h): log and count. */
static bs_status sasl_refuse(ksess *s, const char *why)
{
    BS_LOG_WARNF(MOD, "listener %s: closing connection from %s: %s", s->listener, s->peer, why);
    bs_metric_add(bs_metrics_counter_kv("brokerside_sasl_refused_total",
                                        "Connections closed by the SASL inspection",
                                        "listener", s->listener, "reason", why, NULL),
                  1);
    return BS_E_MALFORMED;
}

/* Follow a whole SaslHandshake/SaslAuthenticate frame through the tracker
 * (requests may close the connection; responses may change the identity). */
static bs_status sasl_track(ksess *s, dir *d, const uint8_t *frame, size_t len)
{
    int16_t api = d->is_req ? d->rh.api_key : d->inf.api_key;
    int16_t ver = d->is_req ? d->rh.api_version : d->inf.api_version;
    if (!is_sasl_api(api)) return BS_OK;
    const char *why = NULL;
    if (d->is_req) {
        if (!d->rh_ok) return sasl_refuse(s, "SASL request of an unknown version");
        size_t off = 4 + d->rh.header_len;
        if (bs_sasl_track_request(&s->ident, api, ver, frame + off, len - off, &why) !=
            BS_SASL_FORWARD)
            return sasl_refuse(s, why);
        return BS_OK;
    }
    int hv;
    bs_kafka_response_header rh;
    if (bs_kafka_response_header_version(api, ver, &hv) != BS_OK ||
        bs_kafka_parse_response_header(frame + 4, len - 4, hv, &rh) != BS_OK)
        return sasl_refuse(s, "malformed SASL response from the broker");
    uint32_t gen = s->ident.generation;
    bs_sasl_result before = s->ident.last_result;
    bool changed = bs_sasl_track_response(&s->ident, api, ver, frame + 4 + rh.header_len,
                                          len - 4 - rh.header_len, &why);
    if (changed && s->ident.last_result == BS_SASL_RESULT_OK) {
        BS_LOG_INFOF(MOD, "listener %s: %s authenticated as %s (%s%s)", s->listener, s->peer,
                     s->ident.sasl_principal[0] ? s->ident.sasl_principal : "(unknown)",
                     bs_sasl_mech_name(s->ident.mech),
                     s->ident.sasl_verified ? "" : ", not verified: not used for decisions");
        count_event(s, "brokerside_sasl_authentications_total",
                    "SASL authentications seen, by result", "result", "ok");
    } else if (changed && s->ident.last_result == BS_SASL_RESULT_FAILED &&
               before != BS_SASL_RESULT_FAILED) {
        BS_LOG_WARNF(MOD, "listener %s: %s failed SASL authentication (%s, attempted %s)",
                     s->listener, s->peer, bs_sasl_mech_name(s->ident.attempt_mech),
                     s->ident.attempt_principal[0] ? s->ident.attempt_principal : "unknown name");
        count_event(s, "brokerside_sasl_authentications_total",
                    "SASL authentications seen, by result", "result", "failed");
    }
    (void)gen;
    if (why) return sasl_refuse(s, why);
    return BS_OK;
}

/* Scan visitor that only lets the scan validate. */
static bs_status visit_nothing(void *arg, const bs_kafka_field *f, const bs_kafka_val *v, int event)
{
    (void)arg;
    (void)f;
    (void)v;
    (void)event;
    return BS_OK;
}

/* The schema of the current request when this build has one for its API and
 * version (the request is then validated before any byte is forwarded). */
static const bs_kafka_message *request_schema(const dir *d)
{
    if (!d->rh_ok) return NULL;
    const bs_kafka_message *m = bs_kafka_message_find(d->rh.api_key, true);
    if (!m || d->rh.api_version < m->min_version || d->rh.api_version > m->max_version)
        return NULL;
    return m;
}

/* Validate a whole request frame (size included) against its schema. A
 * request the sidecar cannot decode is never forwarded: a broker might not
 * survive it (a Metadata topic count of 0x7fffffff in 26 bytes took a broker
 * down), and a Kafka broker would close the connection for it too. */
static bs_status validate_request(ksess *s, dir *d, const uint8_t *frame, size_t len)
{
    const bs_kafka_message *m = request_schema(d);
    size_t off = 4 + d->rh.header_len;
    if (!m) return BS_OK;
    bs_status st = off <= len ? bs_kafka_scan(m, d->rh.api_version, frame + off, len - off,
                                              visit_nothing, NULL)
                              : BS_E_MALFORMED;
    if (st == BS_OK || st == BS_E_UNSUPPORTED) return BS_OK;
    char detail[160];
    snprintf(detail, sizeof detail, "%s v%d request (correlation id %" PRId32 ") does not decode (%s)",
             bs_kafka_api_name(d->rh.api_key), d->rh.api_version, d->rh.correlation_id,
             bs_status_name(st));
    return protocol_error(s, d, "undecodable", detail);
}

/* Count a refused held request (reason "too_large" or "budget"). */
static void held_refused(ksess *s, const char *reason)
{
    bs_metric_add(bs_metrics_counter_kv("brokerside_kafka_held_refused_total",
                                        "Connections closed because a request that must be held "
                                        "whole was too large or over the process budget",
                                        "listener", s->listener, "reason", reason, NULL),
                  1);
}

/* Reserve d->frame_len bytes of the process-wide held-request budget for the
 * frame about to be assembled in session memory. BS_E_FULL (logged, counted;
 * the connection closes) when the budget cannot take it. */
static bs_status held_reserve(ksess *s, dir *d)
{
    uint64_t want = d->frame_len;
    uint64_t now = atomic_fetch_add(&g_held_bytes, want) + want;
    if (s->kcfg->held_bytes_budget && now > s->kcfg->held_bytes_budget) {
        atomic_fetch_sub(&g_held_bytes, want);
        BS_LOG_WARNF(MOD,
                     "listener %s: %zu-byte request from %s refused: held requests of all "
                     "connections would pass kafka.held_bytes_budget (%" PRIu64 " bytes); closing",
                     s->listener, d->frame_len, s->peer, s->kcfg->held_bytes_budget);
        held_refused(s, "budget");
        return BS_E_FULL;
    }
    d->held_reserved = want;
    return BS_OK;
}

/* See kafka_session.h. */
uint64_t bs_kafka_session_held_bytes(void)
{
    return atomic_load(&g_held_bytes);
}

/* Can `in` still receive bytes (the frame start is not stuck behind a full buffer)? */
static bool can_grow(const bs_buf *in)
{
    return bs_buf_readable(in) < in->cap;
}

/* Double the correlation table and its time ring, keeping the FIFO order.
 * BS_E_FULL at CORR_MAX, BS_E_NOMEM if memory runs out (nothing changed). */
static bs_status corr_grow(ksess *s)
{
    if (s->corr.cap >= CORR_MAX) return BS_E_FULL;
    uint32_t cap = s->corr.cap * 2;
    bs_kafka_corr_table t;
    BS_GUARD(bs_kafka_corr_init(&t, cap));
    req_times *times = calloc(cap, sizeof *times);
    if (!times) {
        bs_kafka_corr_free(&t);
        return BS_E_NOMEM;
    }
    /* A fresh table stores its i-th push at index i: the rings stay parallel. */
    for (uint32_t i = 0; i < s->corr.count; i++) {
        uint32_t idx = (s->corr.head + i) % s->corr.cap;
        if (bs_kafka_corr_push(&t, &s->corr.ring[idx]) != BS_OK) {
            bs_kafka_corr_free(&t);
            free(times);
            return BS_E_STATE; /* cannot happen: cap > count */
        }
        times[i] = s->times[idx];
    }
    bs_kafka_corr_free(&s->corr);
    free(s->times);
    s->corr = t;
    s->times = times;
    return BS_OK;
}

/* Room for a teed copy of a `flen`-byte frame, allocated once up front (a
 * growing buffer would copy the frame again at every doubling). False if
 * there is no memory: the frame then passes uninspected. */
static bool tee_reserve(dir *d, size_t flen)
{
    bs_wbuf_reset(&d->asm_);
    return bs_wbuf_reserve(&d->asm_, flen);
}

/* Start a request frame of `flen` bytes at the read position of `in`:
 * parse its header, push the correlation entry, choose the mode. Returns
 * BS_E_AGAIN to wait for more bytes (or room in the correlation table). */
static bs_status start_request(ksess *s, dir *d, bs_buf *in, size_t flen)
{
    const uint8_t *p = bs_buf_read_ptr(in);
    size_t have = bs_buf_readable(in) < flen ? bs_buf_readable(in) : flen;
    bool complete = have == flen;
    if (flen < 12) return protocol_error(s, d, "malformed", "frame too short for a request header");
    if (have < 12) return BS_E_AGAIN;
    memset(&d->rh, 0, sizeof d->rh);
    bs_status st = bs_kafka_parse_request_header(p + 4, have - 4, &d->rh);
    if (st == BS_E_MALFORMED && !complete && can_grow(in)) return BS_E_AGAIN;
    if (st == BS_E_MALFORMED) return protocol_error(s, d, "malformed", "malformed request header");
    d->rh_ok = st == BS_OK;
    /* Undecodable requests are refused before anything else happens to them;
     * one not all here yet is held (assembled) and checked once whole. */
    d->validate = request_schema(d) != NULL && !complete;
    if (complete) BS_GUARD(validate_request(s, d, p, flen));
    bool expects = true;
    if (d->rh_ok && d->rh.api_key == BS_KAFKA_PRODUCE) {
        int16_t acks = -1;
        st = bs_kafka_produce_acks(p + 4 + d->rh.header_len, have - 4 - d->rh.header_len,
                                   d->rh.api_version, &acks);
        if (st == BS_E_MALFORMED && !complete && can_grow(in)) return BS_E_AGAIN;
        /* An undecodable body still goes to the broker, which answers it. */
        expects = st != BS_OK || acks != 0;
    }
    bs_kafka_inflight e = {.correlation_id = d->rh.correlation_id,
                           .api_key = d->rh.api_key,
                           .api_version = d->rh.api_version,
                           .start_ns = d->t_first,
                           .expects_response = expects};
    st = bs_kafka_corr_push(&s->corr, &e);
    if (st == BS_E_FULL) {
        st = corr_grow(s);
        if (st == BS_E_FULL) return BS_E_AGAIN;
        if (st != BS_OK) {
            BS_LOG_ERRORF(MOD, "listener %s: cannot track more requests from %s (%s); closing",
                          s->listener, s->peer, bs_status_name(st));
            return st;
        }
        st = bs_kafka_corr_push(&s->corr, &e);
    }
    if (st != BS_OK) return st;
    d->pushed = expects;
    if (expects)
        s->times[(s->corr.head + s->corr.count - 1) % s->corr.cap] =
            (req_times){.t_first = d->t_first, .t_fwd = 0};
    api_metrics *am = api_m(s, d->rh.api_key, d->rh.api_version);
    bs_metric_add(am->requests, 1);
    bs_metric_add(am->req_bytes, (int64_t)flen);
    principal_count_request(s, d->rh.api_key, flen);

    /* SASL exchanges are small and read whole; any other request only has
     * to pass the "no requests after a failed authentication" rule. */
    bool sasl = is_sasl_api(d->rh.api_key);
    if (!sasl) {
        const char *why;
        if (bs_sasl_track_request(&s->ident, d->rh.api_key, d->rh.api_version, NULL, 0, &why) !=
            BS_SASL_FORWARD)
            return sasl_refuse(s, why);
    }
    bool hold = sasl;
    for (size_t i = 0; s->fac && i < s->fac->n_hooks; i++) {
        const bs_kafka_hook *hk = &s->fac->hooks[i];
        if (hk->wants_request && hk->on_request &&
            hk->wants_request(hook_arg(s, i), d->rh.api_key, d->rh.api_version))
            hold = true;
    }
    if (!hold && observer_wants(s, true, d->rh.api_key, d->rh.api_version)) hold = true;
    if (d->validate) hold = true;
    bool inspect = d->rh_ok && d->rh.api_key == BS_KAFKA_PRODUCE;
    d->frame_len = flen;
    if (hold && s->kcfg->max_held_request_bytes &&
        flen > (size_t)s->kcfg->max_held_request_bytes + 4) {
        BS_LOG_WARNF(MOD,
                     "listener %s: %s request of %zu bytes from %s exceeds "
                     "kafka.max_held_request_bytes (%" PRIu32 "); closing",
                     s->listener, bs_kafka_api_name(d->rh.api_key), flen, s->peer,
                     s->kcfg->max_held_request_bytes);
        held_refused(s, "too_large");
        return BS_E_TOO_LARGE;
    }
    if (hold) {
        d->m = M_HOLD;
    } else {
        d->m = M_STREAM;
        d->remain = flen;
        if (inspect && complete) {
            inspect_request(s, d, p, flen);
        } else if (inspect && flen <= BS_KAFKA_INSPECT_MAX && tee_reserve(d, flen)) {
            d->tee = true;
        } else if (inspect) {
            count_event(s, "brokerside_kafka_uninspected_frames_total",
                        "Frames too large to inspect for per-topic metrics", "api",
                        bs_kafka_api_name(d->rh.api_key));
        }
        /* A teed frame is observed whole when it has streamed through. */
        if (!d->tee) observe(s, d, p, have);
    }
    return BS_OK;
}

/* Start a response frame: match it to the oldest request, choose the mode. */
static bs_status start_response(ksess *s, dir *d, bs_buf *in, size_t flen)
{
    const uint8_t *p = bs_buf_read_ptr(in);
    size_t have = bs_buf_readable(in) < flen ? bs_buf_readable(in) : flen;
    bool complete = have == flen;
    if (have < 8) return BS_E_AGAIN;
    int32_t corr = (int32_t)(((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) |
                             ((uint32_t)p[6] << 8) | p[7]);
    uint32_t idx = s->corr.head;
    bs_status st = bs_kafka_corr_pop(&s->corr, corr, &d->inf);
    if (st != BS_OK) {
        char detail[160];
        if (st == BS_E_NOT_FOUND)
            snprintf(detail, sizeof detail, "correlation id %" PRId32 " with no request in flight",
                     corr);
        else
            snprintf(detail, sizeof detail,
                     "correlation id %" PRId32 " does not answer the oldest request (%" PRId32 ")",
                     corr, s->corr.ring[s->corr.head].correlation_id);
        return protocol_error(s, d, "correlation", detail);
    }
    d->times = s->times[idx];
    if (s->n_sent > 0) s->n_sent--;
    int16_t api = d->inf.api_key, ver = d->inf.api_version;
    /* In the broker: from the request's last byte written to the upstream
     * socket (bs_session_ops.on_upstream_written; an embedder that does not
     * report writes gets the time it was handed to `fwd`) to the arrival of
     * this response's first byte (d->t_first, set when the frame began). */
    uint64_t sent = d->times.t_sent ? d->times.t_sent : d->times.t_fwd;
    d->obs_latency_ns = -1;
    if (sent) {
        uint64_t in_broker = d->t_first > sent ? d->t_first - sent : 0;
        bs_histogram_observe(lat_m(s, api)->broker, (double)in_broker / 1e9);
        d->obs_latency_ns = (int64_t)in_broker;
    }
    bs_metric_add(api_m(s, api, ver)->resp_bytes, (int64_t)flen);

    principal_refresh(s);
    bs_metric_add(s->pm_bytes_out, (int64_t)flen);
    bool hold = api == BS_KAFKA_API_VERSIONS || is_sasl_api(api) ||
                bs_kafka_response_has_endpoints(api, ver);
    for (size_t i = 0; !hold && s->fac && i < s->fac->n_hooks; i++) {
        const bs_kafka_hook *hk = &s->fac->hooks[i];
        if (hk->wants_response && hk->on_response && hk->wants_response(hook_arg(s, i), api, ver))
            hold = true;
    }
    if (!hold && observer_wants(s, false, api, ver)) hold = true;
    d->frame_len = flen;
    if (hold) {
        d->m = M_HOLD;
        return BS_OK;
    }
    d->m = M_STREAM;
    d->remain = flen;
    if (complete)
        inspect_response(s, d, p, flen);
    else if (response_worth_tee(api) && flen <= BS_KAFKA_INSPECT_MAX && tee_reserve(d, flen))
        d->tee = true;
    else if (response_worth_tee(api))
        count_event(s, "brokerside_kafka_uninspected_frames_total",
                    "Frames too large to inspect for per-topic metrics", "api",
                    bs_kafka_api_name(api));
    if (!d->tee) observe(s, d, p, have);
    return BS_OK;
}

/* Legacy SASL (after an accepted SaslHandshake v0): the next frame of this
 * side is a bare token, assembled whole (it is small), shown to the tracker
 * and forwarded unchanged; no header, no correlation, no hooks. */
static bs_status start_raw_token(ksess *s, dir *d, size_t flen)
{
    (void)s;
    d->raw = true;
    d->frame_len = flen;
    d->times = (req_times){0};
    d->m = M_HOLD;
    return BS_OK;
}

/* A whole bare token: follow it, then forward it as it is. */
static bs_status finish_raw_token(ksess *s, dir *d, bs_buf *in, const uint8_t *frame, bool in_place)
{
    size_t len = d->frame_len;
    const char *why = NULL;
    if (d->is_req) {
        if (bs_sasl_track_legacy_client(&s->ident, frame + 4, len - 4, &why) != BS_SASL_FORWARD)
            return sasl_refuse(s, why);
    } else if (bs_sasl_track_legacy_server(&s->ident, frame + 4, len - 4, &why)) {
        if (why) return sasl_refuse(s, why);
        BS_LOG_INFOF(MOD, "listener %s: %s authenticated as %s (%s, legacy SASL%s)", s->listener,
                     s->peer, s->ident.sasl_principal[0] ? s->ident.sasl_principal : "(unknown)",
                     bs_sasl_mech_name(s->ident.mech),
                     s->ident.sasl_verified ? "" : ", not verified: not used for decisions");
        count_event(s, "brokerside_sasl_authentications_total",
                    "SASL authentications seen, by result", "result", "ok");
    }
    if (in_place) {
        d->m = M_STREAM;
        d->remain = len;
        d->tee = false;
        return BS_OK;
    }
    (void)in;
    bs_wbuf t = d->out;
    d->out = d->asm_;
    d->asm_ = t;
    d->out_off = 0;
    d->m = M_OUT;
    return BS_OK;
}

/* A held frame is complete at `frame` (in `in` when in_place, else d->asm_):
 * inspect, transform, and queue what to emit. */
static bs_status finish_hold(ksess *s, dir *d, bs_buf *in, const uint8_t *frame, bool in_place)
{
    size_t len = d->frame_len;
    if (d->raw) return finish_raw_token(s, d, in, frame, in_place);
    if (d->is_req && d->validate) {
        BS_GUARD(validate_request(s, d, frame, len));
        d->validate = false;
    }
    /* A parked frame was inspected when it first came. */
    if (d->m != M_PARKED && d->is_req)
        inspect_request(s, d, frame, len);
    else if (d->m != M_PARKED)
        inspect_response(s, d, frame, len);
    if (d->m != M_PARKED) BS_GUARD(sasl_track(s, d, frame, len));
    /* The observer sees the frame as it came, before any hook changes it. */
    observe(s, d, frame, len);
    bool replaced;
    bs_kafka_hook_verdict v;
    /* A wake-up from before this frame's first run is stale; one that comes
     * while the hooks run (or later) reruns them. */
    if (d->m != M_PARKED) d->woken = false;
    BS_GUARD(transform(s, d, frame, len, &replaced, &v));
    if (v == BS_KAFKA_HOOK_HOLD) {
        d->m = M_PARKED;
        d->parked_in_place = in_place;
        return BS_OK;
    }
    if (v == BS_KAFKA_HOOK_ANSWER) {
        if (in_place) bs_buf_consume(in, len);
        d->m = M_ANSWER;
        return BS_OK;
    }
    if (replaced) {
        if (in_place) bs_buf_consume(in, len);
        d->m = M_OUT;
        return BS_OK;
    }
    if (in_place) {
        /* Unchanged and still in `in`: stream it from there (no copy). */
        d->m = M_STREAM;
        d->remain = len;
        d->tee = false;
        return BS_OK;
    }
    bs_wbuf t = d->out;
    d->out = d->asm_;
    d->asm_ = t;
    d->out_off = 0;
    d->m = M_OUT;
    return BS_OK;
}

/* The last byte of a streamed frame went out: inspect its teed copy, finish. */
static void stream_done(ksess *s, dir *d)
{
    if (d->tee) {
        if (bs_wbuf_status(&d->asm_) == BS_OK && d->asm_.len == d->frame_len) {
            if (d->is_req)
                inspect_request(s, d, d->asm_.data, d->asm_.len);
            else
                inspect_response(s, d, d->asm_.data, d->asm_.len);
        } else {
            undecodable(s, d->is_req ? d->rh.api_key : d->inf.api_key,
                        d->is_req ? d->rh.api_version : d->inf.api_version, d->is_req, BS_E_NOMEM);
        }
        /* Whole if the copy is complete, else only what was copied. */
        size_t got = d->asm_.len < d->frame_len ? d->asm_.len : d->frame_len;
        observe(s, d, got ? d->asm_.data : NULL, got);
    }
    frame_done(s, d);
}

/* The direction machine: move as much as possible from `in` to `fwd`
 * (and, for a hook's answer, to `back`). */
static bs_status pump(ksess *s, dir *d, bs_buf *in, bs_buf *fwd, bs_buf *back)
{
    size_t max_frame = s->kcfg->max_frame_bytes;
    for (;;) {
        switch (d->m) {
        case M_PARKED: {
            /* Rerun the hooks after a wake-up only (a parked frame is not
             * decoded again on every unrelated event); if what they wait for
             * is still missing they park again. */
            if (!d->woken) return BS_OK;
            d->woken = false;
            const uint8_t *f = d->parked_in_place ? bs_buf_read_ptr(in) : d->asm_.data;
            BS_GUARD(finish_hold(s, d, in, f, d->parked_in_place));
            if (d->m == M_PARKED) return BS_OK;
            continue;
        }
        case M_ANSWER: {
            /* Only this request may be outstanding (the request direction is
             * stopped here, so none newer exists): every earlier response has
             * been handed to the client buffer, which `back` is. */
            if (bs_kafka_corr_count(&s->corr) > (d->pushed ? 1u : 0u) || s->resp.m != M_IDLE)
                return BS_OK;
            size_t left = d->out.len - d->out_off;
            size_t n = left < bs_buf_free_space(back) ? left : bs_buf_free_space(back);
            if (n > 0) {
                BS_GUARD(bs_buf_append(back, d->out.data + d->out_off, n));
                d->out_off += n;
            }
            if (d->out_off < d->out.len) return BS_OK;
            if (d->pushed) {
                bs_kafka_inflight inf;
                BS_GUARD(bs_kafka_corr_pop(&s->corr, d->rh.correlation_id, &inf));
                if (s->n_sent > 0) s->n_sent--;
                d->pushed = false;
            }
            frame_done(s, d);
            continue;
        }
        case M_OUT: {
            size_t left = d->out.len - d->out_off;
            size_t n = left < bs_buf_free_space(fwd) ? left : bs_buf_free_space(fwd);
            if (n == 0) return BS_OK;
            BS_GUARD(bs_buf_append(fwd, d->out.data + d->out_off, n));
            d->out_off += n;
            if (d->out_off == d->out.len) frame_done(s, d);
            continue;
        }
        case M_STREAM: {
            size_t avail = bs_buf_readable(in);
            size_t take = avail < d->remain ? avail : d->remain;
            if (bs_buf_readable(fwd) == 0 && in->cap == fwd->cap && in->cap > 0 &&
                take >= in->cap / 4 && avail - take <= take) {
                /* Zero copy (session.h): hand `in`'s storage to `fwd` and
                 * move back only the bytes that belong to the next frame. */
                bs_buf t = *in;
                *in = *fwd;
                *fwd = t;
                in->rd = in->wr = 0;
                if (avail > take) {
                    BS_GUARD(bs_buf_append(in, fwd->data + fwd->rd + take, avail - take));
                    fwd->wr -= avail - take;
                }
                if (d->tee) bs_wbuf_put(&d->asm_, bs_buf_read_ptr(fwd), take);
                d->remain -= take;
                if (d->remain == 0) stream_done(s, d);
                continue;
            }
            size_t n = avail;
            if (n > d->remain) n = d->remain;
            if (n > bs_buf_free_space(fwd)) n = bs_buf_free_space(fwd);
            if (n == 0) return BS_OK;
            const uint8_t *p = bs_buf_read_ptr(in);
            if (d->tee) bs_wbuf_put(&d->asm_, p, n);
            BS_GUARD(bs_buf_append(fwd, p, n));
            bs_buf_consume(in, n);
            d->remain -= n;
            if (d->remain == 0) stream_done(s, d);
            continue;
        }
        case M_HOLD: {
            if (d->asm_.len == 0 && bs_buf_readable(in) >= d->frame_len) {
                BS_GUARD(finish_hold(s, d, in, bs_buf_read_ptr(in), true));
                continue;
            }
            /* A frame that fits `in` is awaited there: no copy. */
            if (d->asm_.len == 0 && d->frame_len <= in->cap) {
                if (bs_buf_tail_room(in) < d->frame_len - bs_buf_readable(in)) bs_buf_compact(in);
                return BS_OK;
            }
            size_t n = bs_buf_readable(in);
            if (n > d->frame_len - d->asm_.len) n = d->frame_len - d->asm_.len;
            if (n == 0) return BS_OK;
            /* Not all of it in `in` (or `in` cannot hold it): consume into
             * our own storage so the direction never stalls on a full `in`.
             * A request's copy counts against the process-wide budget. */
            if (d->is_req && d->asm_.len == 0 && !d->held_reserved)
                BS_GUARD(held_reserve(s, d));
            if (!bs_wbuf_reserve(&d->asm_, d->frame_len - d->asm_.len)) {
                BS_LOG_ERRORF(MOD, "listener %s: no memory to assemble a %zu-byte frame from %s",
                              s->listener, d->frame_len, s->peer);
                return BS_E_NOMEM;
            }
            bs_wbuf_put(&d->asm_, bs_buf_read_ptr(in), n);
            bs_buf_consume(in, n);
            if (d->asm_.len == d->frame_len) BS_GUARD(finish_hold(s, d, in, d->asm_.data, false));
            continue;
        }
        case M_IDLE: {
            size_t avail = bs_buf_readable(in);
            if (avail == 0) return BS_OK;
            if (!d->frame_seen) {
                d->frame_seen = true;
                d->t_first = arrivals_at(&d->arr);
            }
            size_t flen;
            if (s->ident.legacy_active && d->is_req == s->ident.legacy_client_turn) {
                /* a bare legacy SASL token: any size up to the frame limit, empty included */
                if (avail < 4) return BS_OK;
                const uint8_t *q = bs_buf_read_ptr(in);
                uint32_t size = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) |
                                ((uint32_t)q[2] << 8) | q[3];
                if (size > max_frame || size > INT32_MAX)
                    return protocol_error(s, d, "malformed", "invalid legacy SASL token size");
                BS_GUARD(start_raw_token(s, d, (size_t)size + 4));
                continue;
            }
            bs_status st = bs_kafka_frame_length(bs_buf_read_ptr(in), avail, max_frame, &flen);
            if (st == BS_E_SHORT) return BS_OK;
            if (st == BS_E_TOO_LARGE) {
                const uint8_t *p = bs_buf_read_ptr(in);
                uint32_t size = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                                ((uint32_t)p[2] << 8) | p[3];
                BS_LOG_WARNF(MOD,
                             "listener %s: %s frame of %" PRIu32
                             " bytes from %s exceeds kafka.max_frame_bytes (%zu); closing",
                             s->listener, d->is_req ? "request" : "response", size, s->peer,
                             max_frame);
                count_event(s, "brokerside_kafka_frame_too_large_total",
                            "Connections closed for a frame above kafka.max_frame_bytes",
                            "direction", d->is_req ? "request" : "response");
                return st;
            }
            if (st != BS_OK) return protocol_error(s, d, "malformed", "invalid frame size");
            st = d->is_req ? start_request(s, d, in, flen) : start_response(s, d, in, flen);
            if (st == BS_E_AGAIN) {
                /* Header not all there yet: make sure `in` can take the rest. */
                if (bs_buf_tail_room(in) == 0 && in->rd > 0) bs_buf_compact(in);
                return BS_OK;
            }
            BS_GUARD(st);
            continue;
        }
        }
    }
}

/* ---------------------------------------------------------------- ops */

/* Release everything of `s`; NULL is a no-op. */
static void ksess_close(void *state)
{
    ksess *s = state;
    if (!s) return;
    if (s->obs && s->obs->close && s->obs_conn) s->obs->close(s->obs_conn);
    dir *ds[] = {&s->req, &s->resp};
    for (size_t i = 0; i < 2; i++) {
        if (ds[i]->held_reserved) atomic_fetch_sub(&g_held_bytes, ds[i]->held_reserved);
        bs_wbuf_free(&ds[i]->asm_);
        bs_wbuf_free(&ds[i]->out);
        bs_wbuf_free(&ds[i]->scratch);
    }
    for (size_t i = 0; s->hconn && i < s->fac->n_hooks; i++)
        if (s->hconn[i] && s->fac->hooks[i].conn_close) s->fac->hooks[i].conn_close(s->hconn[i]);
    free(s->hconn);
    for (size_t i = 0; i < TOPIC_CACHE; i++)
        free(s->topics[i].name);
    free(s->other.name);
    bs_kafka_corr_free(&s->corr);
    free(s->times);
    free(s);
}

/* bs_session_ops.open: state for one connection; *state owned by the
 * connection until close. */
static bs_status ksess_open(void *factory_ctx, const bs_session_info *info, void **state)
{
    *state = NULL;
    BS_ENSURE(info && info->kafka && info->listener, BS_E_STATE);
    ksess *s = calloc(1, sizeof *s);
    BS_ENSURE(s, BS_E_NOMEM);
    s->fac = factory_ctx;
    s->kcfg = info->kafka;
    snprintf(s->listener, sizeof s->listener, "%s", info->listener->name ? info->listener->name : "?");
    snprintf(s->peer, sizeof s->peer, "%s", info->peer ? info->peer : "?");
    s->req.is_req = true;
    size_t lim = s->kcfg->max_frame_bytes + (size_t)4;
    dir *ds[] = {&s->req, &s->resp};
    for (size_t i = 0; i < 2; i++) {
        ds[i]->asm_limit = lim;
        bs_wbuf_init(&ds[i]->asm_, lim);
        /* Rewritten frames may grow (longer host names); hooks too. */
        bs_wbuf_init(&ds[i]->out, 0);
        bs_wbuf_init(&ds[i]->scratch, 0);
    }
    bs_status st = bs_kafka_corr_init(&s->corr, CORR_INIT);
    if (st == BS_OK && !(s->times = calloc(CORR_INIT, sizeof *s->times))) st = BS_E_NOMEM;
    if (st == BS_OK && s->fac && s->fac->n_hooks > 0 &&
        !(s->hconn = calloc(s->fac->n_hooks, sizeof *s->hconn)))
        st = BS_E_NOMEM;
    s->net_wake = info->wake;
    s->net_wake_arg = info->wake_arg;
    bs_conn_identity_init(&s->ident, info->principal);
    bs_kafka_hook_conn hc = {.wake = ksess_wake,
                             .wake_arg = s,
                             .listener = s->listener,
                             .peer = s->peer,
                             .identity = &s->ident,
                             .conn_id = info->conn_id};
    for (size_t i = 0; st == BS_OK && s->hconn && i < s->fac->n_hooks; i++) {
        const bs_kafka_hook *hk = &s->fac->hooks[i];
        if (!hk->conn_open) continue;
        st = hk->conn_open(hk->arg, &hc, &s->hconn[i]);
        if (st != BS_OK)
            BS_LOG_WARNF(MOD, "listener %s: hook %s refused connection from %s (%s)", s->listener,
                         hk->name ? hk->name : "?", s->peer, bs_status_name(st));
    }
    if (st == BS_OK && s->fac && s->fac->observer) {
        s->obs = s->fac->observer;
        bs_session_info oi = *info;
        oi.identity = &s->ident;
        if (s->obs->open) st = s->obs->open(s->obs->arg, &oi, &s->obs_conn);
    }
    if (st != BS_OK) {
        ksess_close(s);
        return st;
    }
    *state = s;
    return BS_OK;
}

/* bs_session_ops.on_client_bytes. Counts the bytes it hands to `fwd` (the
 * upstream-bound stream) so a request's end can be matched with what net/
 * reports written (ksess_upstream_written); `fwd` only grows during a call. */
static bs_status ksess_client(void *state, bs_buf *in, bs_buf *fwd, bs_buf *back)
{
    ksess *s = state;
    arrivals_enter(&s->req.arr, in);
    s->up_out = fwd;
    s->up_out_at_entry = bs_buf_readable(fwd);
    bs_status st = pump(s, &s->req, in, fwd, back);
    s->up_appended += bs_buf_readable(fwd) - s->up_out_at_entry;
    s->up_out = NULL;
    arrivals_leave(&s->req.arr);
    return st;
}

/* bs_session_ops.on_upstream_bytes. */
static bs_status ksess_upstream(void *state, bs_buf *in, bs_buf *fwd, bs_buf *back)
{
    ksess *s = state;
    arrivals_enter(&s->resp.arr, in);
    bs_status st = pump(s, &s->resp, in, fwd, back);
    arrivals_leave(&s->resp.arr);
    return st;
}

/* bs_session_ops.on_upstream_written: the next `n` bytes of the
 * upstream-bound stream have been written to the socket. Every forwarded
 * request whose last byte is now written (in order: requests are forwarded
 * in order) gets its sent time, from which its broker time runs. */
static void ksess_upstream_written(void *state, size_t n)
{
    ksess *s = state;
    s->up_written += n;
    uint64_t total = s->up_written, t = 0;
    while (s->n_sent < s->corr.count) {
        req_times *rt = &s->times[(s->corr.head + s->n_sent) % s->corr.cap];
        if (!rt->t_fwd || rt->end_off > total) break;
        if (!t) t = now_ns();
        rt->t_sent = t;
        s->n_sent++;
    }
}

/* bs_session_ops.is_quiescent: no request awaiting its response and no frame
 * part held or half-forwarded in either direction. */
static bool ksess_quiescent(const void *state)
{
    const ksess *s = state;
    return bs_kafka_corr_count(&s->corr) == 0 && s->req.m == M_IDLE && s->resp.m == M_IDLE;
}

/* bs_session_ops.input_truncated: does the direction hold or await bytes of
 * a frame that has not fully arrived (the side has ended, so it never will)? */
static bool ksess_input_truncated(const void *state, bool from_client, const bs_buf *in)
{
    const ksess *s = state;
    const dir *d = from_client ? &s->req : &s->resp;
    size_t have = bs_buf_readable(in);
    switch (d->m) {
    case M_IDLE: {
        if (have == 0) return false;
        if (have < 4) return true;
        const uint8_t *p = in->data + in->rd;
        size_t flen = 4 + (((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3]);
        return have < flen;
    }
    case M_STREAM:
        return have < d->remain;
    case M_HOLD:
        return d->asm_.len + have < d->frame_len;
    default:
        return false; /* a whole frame waits for room or for a hook */
    }
}

/* bs_session_ops.input_deadline: seconds until the client's current
 * request (started, not yet complete: a partial header, or a frame being
 * assembled) passes kafka.frame_timeout_s; 0 when it has; -1 when none is
 * pending. A streamed frame's bytes are never held, so it has no deadline
 * (the idle timeout covers a client that stops). */
static double ksess_input_deadline(const void *state)
{
    const ksess *s = state;
    const dir *d = &s->req;
    if (s->kcfg->frame_timeout_s <= 0) return -1;
    if (!(d->m == M_HOLD || (d->m == M_IDLE && d->frame_seen))) return -1;
    double age = (double)(now_ns() - d->t_first) / 1e9;
    double left = s->kcfg->frame_timeout_s - age;
    return left > 0 ? left : 0;
}

static const bs_session_ops g_ops = {
    .open = ksess_open,
    .on_client_bytes = ksess_client,
    .on_upstream_bytes = ksess_upstream,
    .is_quiescent = ksess_quiescent,
    .close = ksess_close,
    .input_truncated = ksess_input_truncated,
    .input_deadline = ksess_input_deadline,
    .on_upstream_written = ksess_upstream_written,
};

/* See kafka_session.h. */
const bs_session_ops *bs_kafka_session_ops(void)
{
    return &g_ops;
}
