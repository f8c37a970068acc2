/*
 * lag.c - the consumer-lag monitor thread (see lag.h).
 *
 * One librdkafka client (a consumer handle without a group, so it never joins
 * one) bootstraps through the listener's upstream with the listener's TLS
 * origination settings. Every interval, on its own thread:
 *   1. Metadata: which partitions does this broker lead (leader == own id)?
 *   2. Their log-end offsets, in one batched ListOffsets per leader
 *      (rd_kafka_offsets_for_times with RD_KAFKA_OFFSET_END as timestamp:
 *      librdkafka 2.0.2 has no ListOffsets admin call); each becomes a sample
 *      of the partition's history (lag_calc.c).
 *   3. ListConsumerGroups (ListGroups to every broker: classic and KIP-848
 *      groups), filtered (state, name) and capped (lag.max_groups, by name).
 *   4. ListConsumerGroupOffsets per group (OffsetFetch to its coordinator;
 *      librdkafka takes one group per call, so up to IN_FLIGHT calls share a
 *      queue), joined with the log-end offsets of the led partitions.
 *   5. The result is published as an immutable snapshot (pointer swap under
 *      `lock`); the control thread renders the latest one.
 * Nothing here is on the data path: workers and the control thread only
 * take `lock` to read or swap a pointer.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <openssl/crypto.h>

#include "brokerside/lag.h"
#include "brokerside/log.h"

#define MOD "lag"
#define IN_FLIGHT 64 /* ListConsumerGroupOffsets calls outstanding at once */

/* One partition this broker led at the last poll, with its history. */
typedef struct led_part {
    char *topic;
    int32_t partition;
    int64_t log_end; /* -1: unknown this poll (skipped) */
    bs_lag_history hist;
} led_part;

/* Open-addressing table of led partitions keyed by (topic, partition). */
typedef struct part_table {
    led_part **slot;
    size_t n_slots, n;
} part_table;

struct bs_lag_monitor {
    bs_lag_monitor_options o;
    char *bootstrap;
    char *upstream_host;
    uint16_t upstream_port;
    int32_t broker_id; /* configured, -1: found from metadata */
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    pthread_t thread;
    pthread_mutex_t lock; /* snapshot pointer, stop flag, interval */
    pthread_cond_t wake;
    bool stop;
    _Atomic uint32_t interval_s;
    bs_lag_snapshot *snap; /* latest successful poll; under lock */
    part_table parts;      /* monitor thread only */
    bool warned_id;
    _Atomic int32_t resolved_id; /* this broker's node id at the last metadata; -1 unknown */
    bs_metric *m_ok, *m_err, *m_groups, *m_last, *m_skipped[BS_LAG_SKIP_N], *m_drop_rows,
        *m_drop_aggs;
};

/* Wall clock, ms since the epoch. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- table */

/* FNV-1a of the topic, mixed with the partition. */
static uint64_t part_hash(const char *topic, int32_t partition)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (h ^ (uint32_t)partition) * 1099511628211ull;
}

/* The slot of (topic, partition): its entry or the empty slot to fill. */
static led_part **part_slot(part_table *t, const char *topic, int32_t partition)
{
    size_t i = part_hash(topic, partition) & (t->n_slots - 1);
    while (t->slot[i] &&
           (t->slot[i]->partition != partition || strcmp(t->slot[i]->topic, topic) != 0))
        i = (i + 1) & (t->n_slots - 1);
    return &t->slot[i];
}

/* Free every entry and the slots. */
static void part_table_free(part_table *t)
{
    for (size_t i = 0; i < t->n_slots; i++)
        if (t->slot[i]) {
            free(t->slot[i]->topic);
            free(t->slot[i]);
        }
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* An empty table for up to `n` entries (load <= 1/2). */
static bs_status part_table_init(part_table *t, size_t n)
{
    size_t slots = 16;
    while (slots < 2 * n + 2)
        slots *= 2;
    t->slot = calloc(slots, sizeof *t->slot);
    if (!t->slot) return BS_E_NOMEM;
    t->n_slots = slots;
    t->n = 0;
    return BS_OK;
}

/* Lookup; NULL when absent (or the table is empty). */
static led_part *part_find(part_table *t, const char *topic, int32_t partition)
{
    if (!t->n_slots) return NULL;
    return *part_slot(t, topic, partition);
}

/* ---------------------------------------------------------------- client */

/* librdkafka's log lines into ours (any librdkafka thread). */
static void on_rdk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        BS_LOG_ERRORF(MOD, "librdkafka %s: %s", fac, buf);
    else if (level <= 5)
        BS_LOG_WARNF(MOD, "librdkafka %s: %s", fac, buf);
    else
        BS_LOG_DEBUGF(MOD, "librdkafka %s: %s", fac, buf);
}

/* Set one property; BS_E_CONFIG (logged) if librdkafka refuses it. */
static bs_status set_prop(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        BS_LOG_ERRORF(MOD, "librdkafka refuses %s=%s: %s", k, v, err);
        return BS_E_CONFIG;
    }
    return BS_OK;
}

/* The SASL password: the file's first line (a trailing newline dropped).
 * BS_E_IO (logged) if it cannot be read or is empty. Caller wipes and frees. */
static bs_status read_password(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    char buf[1024];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    bs_status st = BS_OK;
    if (!f || !buf[0]) {
        BS_LOG_ERRORF(MOD, "lag.sasl_password_file %s: %s", path,
                      f ? "empty" : strerror(errno));
        st = BS_E_IO;
    } else if (!(*out = strdup(buf))) {
        st = BS_E_NOMEM;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return st;
}

/* Build the client from the listener's upstream settings. */
static bs_status make_client(bs_lag_monitor *m)
{
    const bs_listener_config *li = m->o.listener;
    char tmo[32], err[512];
    snprintf(tmo, sizeof tmo, "%u", m->o.timeout_s * 1000);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) return BS_E_NOMEM;
    bs_status st = BS_OK;
    BS_GUARD_GOTO(st, set_prop(conf, "bootstrap.servers", m->bootstrap), fail);
    BS_GUARD_GOTO(st, set_prop(conf, "client.id", "brokerside-lag"), fail);
    BS_GUARD_GOTO(st, set_prop(conf, "socket.timeout.ms", tmo), fail);
    BS_GUARD_GOTO(st, set_prop(conf, "enable.auto.commit", "false"), fail);
    const bs_tls_client_config *tls = li->upstream_tls;
    static const char *const mechs[] = {NULL, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
    bool sasl = m->o.sasl_mechanism > 0 && m->o.sasl_mechanism < 4;
    if (sasl) {
        char *pw = NULL;
        BS_GUARD_GOTO(st, read_password(m->o.sasl_password_file, &pw), fail);
        st = set_prop(conf, "sasl.mechanisms", mechs[m->o.sasl_mechanism]);
        if (st == BS_OK) st = set_prop(conf, "sasl.username", m->o.sasl_username);
        if (st == BS_OK) st = set_prop(conf, "sasl.password", pw);
        OPENSSL_cleanse(pw, strlen(pw));
        free(pw);
        if (st != BS_OK) goto fail;
    }
    BS_GUARD_GOTO(st,
                  set_prop(conf, "security.protocol",
                           tls ? (sasl ? "sasl_ssl" : "ssl") : (sasl ? "sasl_plaintext" : "plaintext")),
                  fail);
    if (tls) {
        if (tls->ca_file) BS_GUARD_GOTO(st, set_prop(conf, "ssl.ca.location", tls->ca_file), fail);
        if (tls->cert_file)
            BS_GUARD_GOTO(st, set_prop(conf, "ssl.certificate.location", tls->cert_file), fail);
        if (tls->key_file) BS_GUARD_GOTO(st, set_prop(conf, "ssl.key.location", tls->key_file), fail);
        BS_GUARD_GOTO(st,
                      set_prop(conf, "enable.ssl.certificate.verification",
                               tls->verify ? "true" : "false"),
                      fail);
        BS_GUARD_GOTO(st,
                      set_prop(conf, "ssl.endpoint.identification.algorithm",
                               tls->verify ? "https" : "none"),
                      fail);
        /* the TLS 1.2 cipher list (OpenSSL syntax, as the data path uses it);
         * librdkafka 2.0.2 has no setting for the minimum version or the TLS
         * 1.3 suites: OpenSSL's defaults apply there (docs/observability.md) */
        if (tls->ciphers) BS_GUARD_GOTO(st, set_prop(conf, "ssl.cipher.suites", tls->ciphers), fail);
    }
    rd_kafka_conf_set_log_cb(conf, on_rdk_log);
    m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!m->rk) {
        BS_LOG_ERRORF(MOD, "cannot create the lag monitor's Kafka client: %s", err);
        rd_kafka_conf_destroy(conf);
        return BS_E_CONFIG;
    }
    return BS_OK;
fail:
    rd_kafka_conf_destroy(conf);
    return st;
}

/* ---------------------------------------------------------------- one poll */

/* This broker's node id: configured, else the metadata broker whose
 * advertised host:port is the bootstrap address (the upstream or
 * lag.bootstrap), else the only broker. -1 if none. */
static int32_t own_id(bs_lag_monitor *m, const struct rd_kafka_metadata *md)
{
    if (m->broker_id >= 0) return m->broker_id;
    for (int i = 0; i < md->broker_cnt; i++)
        if (md->brokers[i].port == m->upstream_port &&
            strcmp(md->brokers[i].host, m->upstream_host) == 0)
            return md->brokers[i].id;
    if (md->broker_cnt == 1) return md->brokers[0].id;
    if (!m->warned_id) {
        BS_LOG_ERRORF(MOD,
                      "no broker of the cluster advertises %s: set listeners[].broker_id of the "
                      "lag monitor's listener",
                      m->bootstrap);
        m->warned_id = true;
    }
    return -1;
}

/* Steps 1 and 2: the led partitions and their log-end offsets into a new
 * table (histories carried over from the old one). */
static bs_status refresh_parts(bs_lag_monitor *m, int timeout_ms, size_t *dropped)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(m->rk, 1, NULL, &md, timeout_ms);
    if (e) {
        BS_LOG_WARNF(MOD, "metadata: %s", rd_kafka_err2str(e));
        return BS_E_IO;
    }
    bs_status st = BS_OK;
    part_table nt = {0};
    rd_kafka_topic_partition_list_t *tl = NULL;
    int32_t me = own_id(m, md);
    atomic_store(&m->resolved_id, me);
    if (me < 0) {
        st = BS_E_STATE;
        goto out;
    }
    size_t n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!md->topics[i].err)
            for (int j = 0; j < md->topics[i].partition_cnt; j++)
                if (md->topics[i].partitions[j].leader == me) n++;
    if (n > m->o.max_partitions) {
        *dropped += n - m->o.max_partitions;
        n = m->o.max_partitions;
    }
    BS_GUARD_GOTO(st, part_table_init(&nt, n), out);
    tl = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
    if (!tl) {
        st = BS_E_NOMEM;
        goto out;
    }
    for (int i = 0; i < md->topic_cnt && nt.n < n; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        if (t->err) continue;
        for (int j = 0; j < t->partition_cnt && nt.n < n; j++) {
            if (t->partitions[j].leader != me) continue;
            led_part *p = calloc(1, sizeof *p);
            if (!p || !(p->topic = strdup(t->topic))) {
                free(p);
                st = BS_E_NOMEM;
                goto out;
            }
            p->partition = t->partitions[j].id;
            p->log_end = -1;
            led_part *old = part_find(&m->parts, p->topic, p->partition);
            if (old) p->hist = old->hist;
            *part_slot(&nt, p->topic, p->partition) = p;
            nt.n++;
            rd_kafka_topic_partition_list_add(tl, p->topic, p->partition)->offset =
                RD_KAFKA_OFFSET_END; /* as a timestamp: the latest offset */
        }
    }
    if (tl->cnt > 0) {
        e = rd_kafka_offsets_for_times(m->rk, tl, timeout_ms);
        if (e) {
            BS_LOG_WARNF(MOD, "log-end offsets: %s", rd_kafka_err2str(e));
            st = BS_E_IO;
            goto out;
        }
        int64_t t = now_ms();
        for (int i = 0; i < tl->cnt; i++) {
            const rd_kafka_topic_partition_t *r = &tl->elems[i];
            led_part *p = part_find(&nt, r->topic, r->partition);
            if (!p || r->err || r->offset < 0) continue; /* unknown: no rows this poll */
            p->log_end = r->offset;
            bs_lag_history_add(&p->hist, t, r->offset);
        }
    }
    part_table_free(&m->parts);
    m->parts = nt;
    memset(&nt, 0, sizeof nt);
out:
    part_table_free(&nt);
    if (tl) rd_kafka_topic_partition_list_destroy(tl);
    rd_kafka_metadata_destroy(md);
    return st;
}

/* qsort comparator over C strings. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Wait for one admin result of `type` on the monitor's queue (bounded by
 * timeout_ms, in slices so a stop is noticed). NULL on timeout or stop. */
static rd_kafka_event_t *wait_event(bs_lag_monitor *m, rd_kafka_event_type_t type, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        pthread_mutex_lock(&m->lock);
        bool stop = m->stop;
        pthread_mutex_unlock(&m->lock);
        if (stop) return NULL;
        rd_kafka_event_t *ev = rd_kafka_queue_poll(m->q, 200);
        if (!ev) continue;
        if (rd_kafka_event_type(ev) == type) return ev;
        rd_kafka_event_destroy(ev); /* not an answer we wait for */
    }
    return NULL;
}

/* Fold one group's committed offsets into the snapshot. */
static bs_status fold_group(bs_lag_monitor *m, bs_lag_builder *b, const rd_kafka_group_result_t *g,
                            int64_t t)
{
    const rd_kafka_topic_partition_list_t *pl = rd_kafka_group_result_partitions(g);
    const char *name = rd_kafka_group_result_name(g);
    if (!pl) return BS_OK;
    for (int i = 0; i < pl->cnt; i++) {
        const rd_kafka_topic_partition_t *r = &pl->elems[i];
        if (r->err || r->offset < 0) continue; /* nothing committed */
        led_part *p = part_find(&m->parts, r->topic, r->partition);
        if (!p || p->log_end < 0) continue; /* not led here, or unknown this poll */
        double tl = bs_lag_history_time_lag_s(&p->hist, r->offset, t);
        BS_GUARD(bs_lag_builder_add(b, name, r->topic, r->partition, p->log_end, r->offset, tl));
    }
    return BS_OK;
}

/* Steps 3 and 4: groups and their committed offsets into the builder. */
static bs_status collect_groups(bs_lag_monitor *m, bs_lag_builder *b, int timeout_ms,
                                size_t skipped[BS_LAG_SKIP_N], size_t *reported)
{
    char err[256];
    bs_status st = BS_OK;
    rd_kafka_AdminOptions_t *lo = rd_kafka_AdminOptions_new(m->rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
    rd_kafka_AdminOptions_t *oo =
        rd_kafka_AdminOptions_new(m->rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_event_t *lev = NULL;
    char **names = NULL;
    size_t n_names = 0;
    if (!lo || !oo) {
        st = BS_E_NOMEM;
        goto out;
    }
    rd_kafka_AdminOptions_set_request_timeout(lo, timeout_ms, err, sizeof err);
    rd_kafka_AdminOptions_set_request_timeout(oo, timeout_ms, err, sizeof err);
    rd_kafka_ListConsumerGroups(m->rk, lo, m->q);
    lev = wait_event(m, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, timeout_ms + 1000);
    if (!lev) {
        BS_LOG_WARNF(MOD, "ListConsumerGroups: no answer within %d ms", timeout_ms);
        st = BS_E_IO;
        goto out;
    }
    if (rd_kafka_event_error(lev)) {
        BS_LOG_WARNF(MOD, "ListConsumerGroups: %s", rd_kafka_event_error_string(lev));
        st = BS_E_IO;
        goto out;
    }
    const rd_kafka_ListConsumerGroups_result_t *lr = rd_kafka_event_ListConsumerGroups_result(lev);
    size_t n_err = 0, n_valid = 0;
    const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(lr, &n_err);
    if (n_err) {
        /* a broker did not answer: its groups would look deleted */
        BS_LOG_WARNF(MOD, "ListConsumerGroups: %s (and %zu more)", rd_kafka_error_string(errs[0]),
                     n_err - 1);
        st = BS_E_IO;
        goto out;
    }
    const rd_kafka_ConsumerGroupListing_t **gl = rd_kafka_ListConsumerGroups_result_valid(lr, &n_valid);
    names = calloc(n_valid ? n_valid : 1, sizeof *names);
    if (!names) {
        st = BS_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n_valid; i++) {
        const char *id = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
        if (rd_kafka_ConsumerGroupListing_state(gl[i]) == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD)
            skipped[BS_LAG_SKIP_STATE]++;
        else if (!bs_lag_name_usable(id))
            skipped[BS_LAG_SKIP_UNLABELABLE]++;
        else
            names[n_names++] = (char *)id; /* lives as long as lev */
    }
    qsort(names, n_names, sizeof *names, cmp_str);
    if (n_names > m->o.max_groups) {
        skipped[BS_LAG_SKIP_CAP] += n_names - m->o.max_groups;
        n_names = m->o.max_groups;
    }
    int64_t t = now_ms();
    size_t next = 0, pending = 0;
    while ((next < n_names || pending > 0) && st == BS_OK) {
        while (next < n_names && pending < IN_FLIGHT) {
            rd_kafka_ListConsumerGroupOffsets_t *req =
                rd_kafka_ListConsumerGroupOffsets_new(names[next++], NULL);
            if (!req) {
                st = BS_E_NOMEM;
                break;
            }
            rd_kafka_ListConsumerGroupOffsets(m->rk, &req, 1, oo, m->q);
            rd_kafka_ListConsumerGroupOffsets_destroy(req);
            pending++;
        }
        if (pending == 0) break;
        rd_kafka_event_t *ev =
            wait_event(m, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, timeout_ms + 1000);
        if (!ev) {
            BS_LOG_WARNF(MOD, "ListConsumerGroupOffsets: %zu answers missing", pending);
            st = BS_E_IO;
            break;
        }
        pending--;
        size_t n_g = 0;
        const rd_kafka_ListConsumerGroupOffsets_result_t *r =
            rd_kafka_event_ListConsumerGroupOffsets_result(ev);
        const rd_kafka_group_result_t **gr =
            r ? rd_kafka_ListConsumerGroupOffsets_result_groups(r, &n_g) : NULL;
        if (rd_kafka_event_error(ev) || n_g == 0) {
            skipped[BS_LAG_SKIP_OFFSETS]++;
        } else {
            for (size_t i = 0; i < n_g && st == BS_OK; i++) {
                if (rd_kafka_group_result_error(gr[i])) {
                    skipped[BS_LAG_SKIP_OFFSETS]++;
                    continue;
                }
                st = fold_group(m, b, gr[i], t);
                (*reported)++;
            }
        }
        rd_kafka_event_destroy(ev);
    }
out:
    free(names);
    if (lev) rd_kafka_event_destroy(lev);
    if (lo) rd_kafka_AdminOptions_destroy(lo);
    if (oo) rd_kafka_AdminOptions_destroy(oo);
    return st;
}

/* One poll: publish a new snapshot or count an error. */
static void poll_once(bs_lag_monitor *m)
{
    int timeout_ms = (int)m->o.timeout_s * 1000;
    size_t skipped[BS_LAG_SKIP_N] = {0}, reported = 0, dropped_parts = 0;
    bs_lag_builder *b = NULL;
    bs_lag_snapshot *s = NULL;
    /* a queue per poll: answers of an abandoned poll die with its queue */
    m->q = rd_kafka_queue_new(m->rk);
    bs_status st = m->q ? refresh_parts(m, timeout_ms, &dropped_parts) : BS_E_NOMEM;
    if (st == BS_OK) st = bs_lag_builder_new(now_ms(), m->o.max_partitions, &b);
    if (st == BS_OK) st = collect_groups(m, b, timeout_ms, skipped, &reported);
    if (st == BS_OK) {
        bs_metric_add(m->m_drop_rows, (int64_t)(bs_lag_builder_dropped_rows(b) + dropped_parts));
        bs_metric_add(m->m_drop_aggs, (int64_t)bs_lag_builder_dropped_aggs(b));
        st = bs_lag_builder_finish(b, &s);
        b = NULL;
    }
    bs_lag_builder_free(b);
    if (m->q) rd_kafka_queue_destroy(m->q);
    m->q = NULL;
    for (size_t i = 0; i < BS_LAG_SKIP_N; i++)
        bs_metric_add(m->m_skipped[i], (int64_t)skipped[i]);
    if (st != BS_OK) {
        bs_metric_add(m->m_err, 1);
        return;
    }
    pthread_mutex_lock(&m->lock);
    bs_lag_snapshot *old = m->snap;
    m->snap = s;
    pthread_mutex_unlock(&m->lock);
    bs_lag_snapshot_free(old);
    bs_metric_add(m->m_ok, 1);
    bs_metric_set(m->m_groups, (int64_t)reported);
    bs_metric_set(m->m_last, bs_lag_snapshot_taken_ms(s) / 1000);
}

/* The thread: poll, wait until an interval after the poll started (the
 * deadline follows a new interval from SIGHUP at once), repeat until stopped. */
static void *run(void *arg)
{
    bs_lag_monitor *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        pthread_mutex_unlock(&m->lock);
        struct timespec started;
        clock_gettime(CLOCK_REALTIME, &started);
        poll_once(m);
        pthread_mutex_lock(&m->lock);
        for (;;) {
            struct timespec until = started;
            until.tv_sec += atomic_load(&m->interval_s);
            if (m->stop || pthread_cond_timedwait(&m->wake, &m->lock, &until) == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---------------------------------------------------------------- public */

/* See lag.h. */
void bs_lag_monitor_options_from_config(const bs_lag_config *lag,
                                        const bs_listener_config *listeners, size_t n_listeners,
                                        bs_lag_monitor_options *o)
{
    memset(o, 0, sizeof *o);
    o->interval_s = lag->interval_s;
    o->max_groups = lag->max_groups;
    o->max_partitions = lag->max_partitions;
    o->timeout_s = lag->timeout_s;
    o->bootstrap = lag->bootstrap;
    o->sasl_mechanism = lag->sasl_mechanism;
    o->sasl_username = lag->sasl_username;
    o->sasl_password_file = lag->sasl_password_file;
    for (size_t i = 0; i < n_listeners; i++) {
        const bs_listener_config *li = &listeners[i];
        if (lag->listener ? (li->name && strcmp(li->name, lag->listener) == 0)
                          : li->protocol == BS_PROTOCOL_KAFKA) {
            o->listener = li;
            return;
        }
    }
}

/* See lag.h. */
bs_status bs_lag_monitor_start(const bs_lag_monitor_options *o, bs_lag_monitor **out)
{
    BS_ENSURE(o && out && o->listener && o->listener->upstream.text && o->interval_s > 0 &&
                  o->max_groups > 0 && o->max_partitions > 0 && o->timeout_s > 0,
              BS_E_CONFIG);
    bs_lag_monitor *m = calloc(1, sizeof *m);
    if (!m) return BS_E_NOMEM;
    m->o = *o;
    m->o.bootstrap = NULL; /* copied below; the caller's endpoint need not outlive us */
    atomic_init(&m->interval_s, o->interval_s);
    atomic_init(&m->resolved_id, -1);
    m->broker_id = o->listener->broker_id;
    char host[256];
    if (o->bootstrap) {
        if (!bs_lag_split_hostport(o->bootstrap, host, sizeof host, &m->upstream_port)) {
            free(m);
            return BS_E_CONFIG;
        }
        m->bootstrap = strdup(o->bootstrap);
        m->upstream_host = strdup(host);
    } else {
        m->bootstrap = strdup(o->listener->upstream.text);
        m->upstream_host = strdup(o->listener->upstream.host ? o->listener->upstream.host : "");
        m->upstream_port = o->listener->upstream.port;
    }
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    bs_status st = BS_OK;
    if (!m->bootstrap || !m->upstream_host) {
        st = BS_E_NOMEM;
        goto fail;
    }
    m->m_ok = bs_metrics_counter("brokerside_lag_monitor_polls_total",
                                 "Polls of the consumer-lag monitor, by result", "result=\"ok\"");
    m->m_err = bs_metrics_counter("brokerside_lag_monitor_polls_total",
                                  "Polls of the consumer-lag monitor, by result",
                                  "result=\"error\"");
    m->m_groups = bs_metrics_gauge("brokerside_lag_monitor_groups",
                                   "Consumer groups reported by the last successful poll", NULL);
    m->m_last = bs_metrics_gauge("brokerside_lag_monitor_last_success_timestamp_seconds",
                                 "Unix time of the last successful consumer-lag poll", NULL);
    for (size_t i = 0; i < BS_LAG_SKIP_N; i++)
        m->m_skipped[i] = bs_metrics_counter_kv(
            "brokerside_lag_groups_skipped_total",
            "Consumer groups left out of a lag poll, by reason (once per poll)", "reason",
            bs_lag_skip_name((bs_lag_skip)i), NULL);
    m->m_drop_rows = bs_metrics_counter_kv(
        "brokerside_metric_series_dropped_total",
        "Series not exported, or folded into \"_other\", because a cardinality cap was reached",
        "metric", "brokerside_consumer_lag_offsets", NULL);
    m->m_drop_aggs = bs_metrics_counter_kv(
        "brokerside_metric_series_dropped_total",
        "Series not exported, or folded into \"_other\", because a cardinality cap was reached",
        "metric", "brokerside_consumer_lag_sum_offsets", NULL);
    BS_GUARD_GOTO(st, make_client(m), fail);
    m->o.sasl_username = m->o.sasl_password_file = NULL; /* librdkafka holds copies */
    if (pthread_create(&m->thread, NULL, run, m) != 0) {
        st = BS_E_IO;
        goto fail;
    }
    pthread_setname_np(m->thread, "bs-lag");
    BS_LOG_INFOF(MOD, "consumer-lag monitor: every %us through %s (listener %s)", o->interval_s,
                 m->bootstrap, o->listener->name ? o->listener->name : "?");
    *out = m;
    return BS_OK;
fail:
    if (m->rk) rd_kafka_destroy(m->rk);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->wake);
    free(m->bootstrap);
    free(m->upstream_host);
    free(m);
    return st;
}

/* See lag.h. */
void bs_lag_monitor_set_interval(bs_lag_monitor *m, uint32_t interval_s)
{
    if (!m || interval_s == 0) return;
    pthread_mutex_lock(&m->lock);
    atomic_store(&m->interval_s, interval_s);
    pthread_cond_signal(&m->wake); /* the wait recomputes its deadline */
    pthread_mutex_unlock(&m->lock);
}

/* See lag.h. */
void bs_lag_monitor_stop(bs_lag_monitor *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    rd_kafka_destroy(m->rk);
    part_table_free(&m->parts);
    bs_lag_snapshot_free(m->snap);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->wake);
    free(m->bootstrap);
    free(m->upstream_host);
    free(m);
}

/* True if the snapshot is older than three intervals (the polls fail). */
static bool stale(bs_lag_monitor *m, const bs_lag_snapshot *s)
{
    int64_t max_age = 3 * ((int64_t)atomic_load(&m->interval_s) * 1000 + (int64_t)m->o.timeout_s * 1000);
    return now_ms() - bs_lag_snapshot_taken_ms(s) > max_age;
}

/* See lag.h. */
bs_status bs_lag_render_prometheus(bs_wbuf *out, void *arg)
{
    bs_lag_monitor *m = arg;
    bs_status st = BS_OK;
    pthread_mutex_lock(&m->lock);
    if (m->snap && !stale(m, m->snap))
        st = bs_lag_snapshot_render_prometheus(m->snap, bs_metrics_get_level(), out);
    pthread_mutex_unlock(&m->lock);
    return st;
}

/* See lag.h. */
bs_status bs_lag_emf(bs_lag_monitor *m, const char *ns, const bs_emf_dimension *fixed,
                     size_t n_fixed, int64_t ts_ms, bs_emf_emit_fn emit, void *arg)
{
    if (!m) return BS_OK;
    bs_status st = BS_OK;
    pthread_mutex_lock(&m->lock);
    if (m->snap && !stale(m, m->snap))
        st = bs_lag_snapshot_emf(m->snap, bs_metrics_get_level(), ns, fixed, n_fixed, ts_ms, emit,
                                 arg);
    pthread_mutex_unlock(&m->lock);
    return st;
}

/* See lag.h. */
void bs_lag_status_json(bs_lag_monitor *m, bs_wbuf *out)
{
    bs_wbuf_put_str(out, ",\"lag\":");
    if (!m) {
        bs_wbuf_put_str(out, "null");
        return;
    }
    bs_wbuf_put_str(out, "{\"bootstrap\":");
    bs_wbuf_put_json_string(out, m->bootstrap, strlen(m->bootstrap));
    bs_wbuf_printf(out, ",\"broker_id\":%" PRId32 ",\"interval_s\":%u",
                   atomic_load(&m->resolved_id), atomic_load(&m->interval_s));
    pthread_mutex_lock(&m->lock);
    size_t nr = 0, na = 0;
    (void)bs_lag_snapshot_rows(m->snap, &nr);
    (void)bs_lag_snapshot_aggs(m->snap, &na);
    bs_wbuf_printf(out,
                   ",\"last_success_ms\":%" PRId64 ",\"stale\":%s,\"rows\":%zu,\"aggregates\":%zu}",
                   bs_lag_snapshot_taken_ms(m->snap),
                   m->snap && !stale(m, m->snap) ? "false" : "true", nr, na);
    pthread_mutex_unlock(&m->lock);
}
