/*
 * pipeline.c - builds the event path from the config and tears it down (see
 * pipeline.h and docs/operations.md, "The event path").
 */
#include "brokerside/pipeline.h"

#include <ev.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/aws_credentials.h"
#include "brokerside/aws_sinks.h"
#include "brokerside/emf.h"
#include "brokerside/event_bus.h"
#include "brokerside/file_sink.h"
#include "brokerside/lag.h"
#include "brokerside/log.h"
#include "brokerside/logtail.h"
#include "brokerside/metrics.h"
#include "brokerside/sidecar_action.h"
#include "brokerside/sink.h"
#include "brokerside/spool.h"

#define MOD "pipeline"
/* While flushing at shutdown, how often the sinks are looked at. */
#define STOP_POLL_S 0.05

typedef struct pl_sink {
    bs_sink *s;
    const bs_sink_config *c;
} pl_sink;

struct bs_pipeline {
    struct ev_loop *loop;
    const bs_config *cfg; /* latest applied (live settings) */
    bs_spool *sp;
    bs_event_bus *bus;
    bs_aws_credentials_provider *creds;
    pl_sink *sinks;
    size_t n_sinks;
    bs_logtail *tail;
    const char **tail_files;
    bool *tail_plain; /* per logs.files entry: format "plain" (the tailer keeps a pointer) */
    bs_emf *emf;
    ev_timer emf_timer;
    char broker_id[16]; /* "{broker_id}" and the BrokerId dimension; "" if unknown */
    int32_t broker_id_num;
    bs_audit_key *key;
    bs_audit_log *audit;
    ev_timer agg_timer, digest_timer;
    bool stopped;
    bool cancel_flush; /* set by a second stop signal while flushing */
    bs_metric *m_emf_failed;
    bs_lag_monitor *lag; /* NULL: no consumer-lag documents */
};

/* ---------------------------------------------------------------- helpers */

/* Wall clock in microseconds since the epoch. */
static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The sink type's name as in the config ("file", "cloudwatch_logs", ...). */
static const char *kind_name(bs_sink_kind k)
{
    switch (k) {
    case BS_SINK_FILE:
        return "file";
    case BS_SINK_CLOUDWATCH_LOGS:
        return "cloudwatch_logs";
    case BS_SINK_CLOUDWATCH_METRICS:
        return "cloudwatch_metrics";
    case BS_SINK_S3:
        return "s3";
    case BS_SINK_FIREHOSE:
        return "firehose";
    case BS_SINK_CLOUDTRAIL_LAKE:
        return "cloudtrail_lake";
    }
    return "unknown";
}

/* True when any stream of the config is on (else there is no event path). */
static bool any_stream(const bs_config *cfg)
{
    return cfg->audit.enabled || cfg->metrics.enabled || cfg->logs.enabled;
}

/* ---------------------------------------------------------------- check */

/* Load the audit signing key and check it against signing_algorithm. On
 * success *out owns the key (NULL when no key file is configured). */
static bs_status load_key(const bs_config *cfg, bs_audit_key **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->audit.enabled || !cfg->audit.signing_key_file) return BS_OK;
    bs_audit_key *k = NULL;
    bs_status st = bs_audit_key_load(cfg->audit.signing_key_file, &k);
    if (st != BS_OK) {
        snprintf(err, errlen,
                 "%s: audit.signing_key_file: %s cannot be used as a signing key (%s; it must be "
                 "a regular file with mode 0600 holding an Ed25519 PEM private key or an HMAC "
                 "key)",
                 cfg->path, cfg->audit.signing_key_file, bs_status_name(st));
        return st == BS_E_NOMEM ? st : BS_E_CONFIG;
    }
    bs_audit_key_type t = bs_audit_key_get_type(k);
    if ((cfg->audit.signing_algorithm == BS_SIGNING_HMAC_SHA256 && t != BS_AUDIT_KEY_HMAC_SHA256) ||
        (cfg->audit.signing_algorithm == BS_SIGNING_ED25519 && t != BS_AUDIT_KEY_ED25519)) {
        snprintf(err, errlen, "%s: audit.signing_algorithm: the key in %s is %s", cfg->path,
                 cfg->audit.signing_key_file, bs_audit_key_algorithm(k));
        bs_audit_key_free(k);
        return BS_E_CONFIG;
    }
    *out = k;
    return BS_OK;
}

/* See pipeline.h. */
bs_status bs_pipeline_check(const bs_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; cfg->encryption.enabled && i < cfg->n_listeners; i++) {
        if (cfg->listeners[i].protocol == BS_PROTOCOL_KAFKA) continue;
        snprintf(err, errlen, "%s: listeners[%zu].protocol: %s", cfg->path, i,
                 BS_PIPELINE_ENCRYPTION_NEEDS_KAFKA);
        return BS_E_CONFIG;
    }
    bs_audit_key *k = NULL;
    BS_GUARD(load_key(cfg, &k, err, errlen));
    bs_audit_key_free(k);
    return BS_OK;
}

/* ---------------------------------------------------------------- emit paths */

/* Audit log emit: called with the log's lock held, so only queue. */
static bs_status emit_audit(const char *line, size_t len, void *arg)
{
    return bs_event_bus_submit(((bs_pipeline *)arg)->bus, BS_STREAM_AUDIT, line, len);
}

/* Audit log backlog probe: the bus cannot store audit events now. */
static bool audit_blocked_probe(void *bus)
{
    return bs_event_bus_audit_blocked(bus);
}

/* EMF emit: one document per metrics event. */
static bs_status emit_metric(const char *json, size_t len, void *arg)
{
    return bs_event_bus_submit(((bs_pipeline *)arg)->bus, BS_STREAM_METRICS, json, len);
}

/* Take one metric snapshot now. A refused snapshot is retried implicitly:
 * the EMF baselines do not advance, so the next one carries the deltas. */
static void snapshot(bs_pipeline *p)
{
    if (!p->emf) return;
    int64_t ts = now_us() / 1000;
    bs_status st = bs_emf_snapshot(p->emf, ts, emit_metric, p, NULL);
    if (st == BS_OK && p->lag) {
        bs_emf_dimension dim = {.name = "BrokerId", .value = p->broker_id};
        st = bs_lag_emf(p->lag, p->cfg->metrics.ns, &dim, p->broker_id[0] ? 1 : 0, ts,
                        emit_metric, p);
    }
    if (st != BS_OK) {
        bs_metric_add(p->m_emf_failed, 1);
        BS_LOG_WARNF(MOD, "metric snapshot not queued (%s); its deltas go with the next one",
                     bs_status_name(st));
    }
}

/* Timer: metric snapshot every metrics.interval_s. */
static void on_emf_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    snapshot(t->data);
}

/* Timer: aggregate data events every audit.aggregate_interval_s. */
static void on_agg_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    bs_pipeline *p = t->data;
    if (bs_audit_log_flush_aggregates(p->audit, now_us()) != BS_OK)
        BS_LOG_ERRORF(MOD, "audit: aggregate events could not be written");
}

/* Timer: seal the chain every audit.digest_interval_s. */
static void on_digest_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    bs_pipeline *p = t->data;
    if (bs_audit_log_seal(p->audit) != BS_OK)
        BS_LOG_ERRORF(MOD, "audit: the digest could not be written");
}

/* Any thread: one of the sidecar's own actions (sidecar_action.h) becomes
 * an audit event in the chain. A failure is logged; the action itself is
 * not affected. */
static void record_action(const bs_sidecar_action *a, void *arg)
{
    bs_pipeline *p = arg;
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    bs_status st = bs_audit_event_from_action(&ev, a, p->broker_id_num);
    if (st == BS_OK || st == BS_E_FULL) st = bs_audit_log_record(p->audit, &ev);
    if (st != BS_OK)
        BS_LOG_WARNF(MOD, "audit: %s not recorded (%s)", bs_sidecar_action_name(a->kind),
                     bs_status_name(st));
    bs_audit_event_free(&ev);
}

/* Worker thread: a connection event (including a PROXY protocol refusal)
 * becomes an audit event. */
static void on_conn_event(void *ctx, const bs_conn_event *ce)
{
    bs_pipeline *p = ctx;
    static const bs_audit_conn_kind kinds[] = {
        [BS_CONN_EV_ACCEPTED] = BS_AUDIT_CONN_ACCEPTED,
        [BS_CONN_EV_TLS_FAILED] = BS_AUDIT_CONN_TLS_HANDSHAKE_FAILED,
        [BS_CONN_EV_CERT_REJECTED] = BS_AUDIT_CONN_CLIENT_CERT_REJECTED,
        [BS_CONN_EV_CLOSED] = BS_AUDIT_CONN_CLOSED,
        [BS_CONN_EV_PROXY_REJECTED] = BS_AUDIT_CONN_PROXY_REJECTED,
    };
    if ((size_t)ce->kind >= BS_ARRAY_LEN(kinds)) return;
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    ev.type = BS_AUDIT_EV_CONNECTION;
    ev.time_us = now_us();
    ev.conn_id = ce->conn_id;
    ev.listener = ce->listener;
    ev.broker_id = ce->broker_id;
    ev.principal = ce->principal;
    ev.source_ip = ce->peer_ip;
    ev.source_port = ce->peer_port;
    ev.conn_kind = kinds[ce->kind];
    ev.reason = ce->reason;
    ev.detail = ce->detail;
    ev.duration_ms = ce->duration_ms;
    ev.bytes_in = (int64_t)ce->bytes_in;
    ev.bytes_out = (int64_t)ce->bytes_out;
    /* A failure is counted by the log (emit_failures) and, for a full queue,
     * logged loudly by the bus; the connection itself is not affected. */
    if (bs_audit_log_record(p->audit, &ev) != BS_OK)
        BS_LOG_DEBUGF(MOD, "connection %" PRIu64 ": audit event not recorded", ce->conn_id);
    /* A verified client certificate is an authentication of its own
     * (ClientCertificateAccepted; OCSF Authentication, Logon success). */
    if (ce->kind == BS_CONN_EV_ACCEPTED && ce->principal) {
        ev.conn_kind = BS_AUDIT_CONN_CLIENT_CERT_ACCEPTED;
        if (bs_audit_log_record(p->audit, &ev) != BS_OK)
            BS_LOG_DEBUGF(MOD, "connection %" PRIu64 ": audit event not recorded", ce->conn_id);
    }
    bs_audit_event_free(&ev);
}

/* ---------------------------------------------------------------- build */

/* The previous chain's end: the last audit record still in the spool (newer
 * than anything a sink wrote), else the last line of the first file sink's
 * audit.ndjson that the audit stream goes to. */
static bs_status find_link(bs_pipeline *p, bs_audit_link *link, char *err, size_t errlen)
{
    memset(link, 0, sizeof *link);
    bs_spool_reader *r = NULL;
    bs_status st = bs_spool_reader_open_at(p->sp, BS_STREAM_AUDIT, 0, &r);
    if (st != BS_OK) {
        snprintf(err, errlen, "audit: cannot scan the spool for the previous chain (%s)",
                 bs_status_name(st));
        return st;
    }
    uint8_t *last = NULL;
    size_t last_len = 0;
    bs_spool_record rec;
    while ((st = bs_spool_read(r, &rec)) == BS_OK) {
        uint8_t *copy = realloc(last, rec.len + 1);
        if (!copy) {
            st = BS_E_NOMEM;
            break;
        }
        last = copy;
        memcpy(last, rec.payload, rec.len);
        last[rec.len] = '\n';
        last_len = rec.len + 1;
    }
    bs_spool_reader_close(r);
    if (st != BS_E_AGAIN) {
        free(last);
        snprintf(err, errlen, "audit: cannot scan the spool for the previous chain (%s)",
                 bs_status_name(st));
        return st;
    }
    char path[4096];
    if (last) {
        /* bs_audit_link_from_file reads files: hand it the record as one. */
        snprintf(path, sizeof path, "%s/audit-link.tmp", bs_spool_dir(p->sp));
        FILE *f = fopen(path, "wb");
        bool ok = f && fwrite(last, 1, last_len, f) == last_len;
        if (f && fclose(f) != 0) ok = false;
        free(last);
        st = ok ? bs_audit_link_from_file(path, link) : BS_E_IO;
        unlink(path);
        if (st != BS_OK)
            BS_LOG_WARNF(MOD,
                         "audit: the spool's last audit record cannot be linked (%s); the new "
                         "chain starts without a link",
                         bs_status_name(st));
        return BS_OK;
    }
    for (size_t i = 0; i < p->cfg->audit.sinks.n; i++) {
        const bs_sink_config *c = bs_config_sink(p->cfg, p->cfg->audit.sinks.names[i]);
        if (!c || c->kind != BS_SINK_FILE) continue;
        snprintf(path, sizeof path, "%s/audit.ndjson", c->dir);
        st = bs_audit_link_from_file(path, link);
        if (st != BS_OK)
            BS_LOG_WARNF(MOD,
                         "audit: %s: last line cannot be linked (%s); the new chain starts "
                         "without a link",
                         path, bs_status_name(st));
        return BS_OK;
    }
    return BS_OK;
}

/* Fill the options every AWS sink shares. */
static void aws_common(bs_pipeline *p, const bs_sink_config *c, bs_aws_sink_common *o)
{
    const bs_aws_config *a = &p->cfg->aws;
    memset(o, 0, sizeof *o);
    o->loop = p->loop;
    o->creds = p->creds;
    o->sink_name = c->name;
    o->region = c->region;
    o->endpoint = c->endpoint;
    o->broker_id = p->broker_id[0] ? p->broker_id : NULL;
    o->http.ca_file = a->ca_file;
    o->http.max_attempts = a->max_attempts;
    o->http.connect_timeout_ms = (long)(a->connect_timeout_s * 1000);
    o->http.timeout_ms = (long)(a->request_timeout_s * 1000);
}

/* Create the implementation and limits of sink `c`. */
static bs_status make_sink_impl(bs_pipeline *p, const bs_sink_config *c, const bs_sink_ops **ops,
                                void **impl, bs_sink_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    switch (c->kind) {
    case BS_SINK_FILE: {
        bs_file_sink_options o = {.dir = c->dir,
                                  .rotate_bytes = c->rotate_bytes,
                                  .rotate_age_s = c->rotate_age_s,
                                  .gzip = c->gzip};
        bs_file_sink_limits(lim);
        return bs_file_sink_new(&o, ops, impl);
    }
    case BS_SINK_CLOUDWATCH_LOGS: {
        bs_cwlogs_sink_options o = {
            .log_group = c->log_group, .log_stream = c->log_stream, .auto_create = c->auto_create};
        aws_common(p, c, &o.c);
        bs_cwlogs_sink_limits(lim);
        return bs_cwlogs_sink_new(&o, ops, impl);
    }
    case BS_SINK_CLOUDWATCH_METRICS: {
        bs_cwmetrics_sink_options o = {.query_protocol = c->query_protocol};
        aws_common(p, c, &o.c);
        bs_cwmetrics_sink_limits(lim);
        return bs_cwmetrics_sink_new(&o, ops, impl);
    }
    case BS_SINK_S3: {
        bs_s3_sink_options o = {.bucket = c->bucket,
                                .key_prefix = c->prefix,
                                .no_gzip = !c->gzip,
                                .multipart_threshold = (size_t)c->multipart_threshold_bytes};
        aws_common(p, c, &o.c);
        bs_s3_sink_limits(lim, (size_t)c->object_max_bytes, c->object_max_age_s);
        return bs_s3_sink_new(&o, ops, impl);
    }
    case BS_SINK_FIREHOSE: {
        bs_firehose_sink_options o = {.delivery_stream = c->delivery_stream};
        aws_common(p, c, &o.c);
        bs_firehose_sink_limits(lim);
        return bs_firehose_sink_new(&o, ops, impl);
    }
    case BS_SINK_CLOUDTRAIL_LAKE: {
        bs_ctlake_sink_options o = {.channel_arn = c->channel_arn, .external_id = c->external_id};
        aws_common(p, c, &o.c);
        bs_ctlake_sink_limits(lim);
        return bs_ctlake_sink_new(&o, ops, impl);
    }
    }
    return BS_E_CONFIG;
}

/* Create every sink a stream refers to. */
static bs_status build_sinks(bs_pipeline *p, char *err, size_t errlen)
{
    const bs_config *cfg = p->cfg;
    bool need_aws = false;
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (cfg->sinks[i].streams && cfg->sinks[i].kind != BS_SINK_FILE) need_aws = true;
    if (need_aws) {
        bs_aws_credentials_config cc = {.access_key_id = cfg->aws.access_key_id,
                                        .secret_access_key = cfg->aws.secret_access_key,
                                        .session_token = cfg->aws.session_token,
                                        .profile = cfg->aws.profile};
        bs_status st = bs_aws_credentials_provider_new(&cc, &p->creds);
        if (st != BS_OK) {
            snprintf(err, errlen, "%s: aws: cannot set up credentials (%s)", cfg->path,
                     bs_status_name(st));
            return st;
        }
    }
    p->sinks = calloc(cfg->n_sinks ? cfg->n_sinks : 1, sizeof *p->sinks);
    if (!p->sinks) return BS_E_NOMEM;
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        const bs_sink_config *c = &cfg->sinks[i];
        if (!c->streams) continue; /* defined but unused: nothing reads for it */
        const bs_sink_ops *ops = NULL;
        void *impl = NULL;
        bs_sink_limits lim;
        bs_status st = make_sink_impl(p, c, &ops, &impl, &lim);
        if (st != BS_OK) {
            snprintf(err, errlen, "%s: sinks.%s: cannot create the %s sink (%s)", cfg->path,
                     c->name, kind_name(c->kind), bs_status_name(st));
            return st;
        }
        /* The config holds the type's API maxima unless the user lowered them;
         * an S3 batch is one object, sized by the object_* keys above. */
        if (c->kind != BS_SINK_S3) {
            if (c->max_events) lim.max_events = c->max_events;
            if (c->max_bytes) lim.max_bytes = (size_t)c->max_bytes;
            if (c->max_age_ms) lim.max_age_ms = c->max_age_ms;
            if (lim.max_event_bytes > lim.max_bytes) lim.max_event_bytes = lim.max_bytes;
        }
        bs_sink_options so = {.name = c->name,
                              .streams = c->streams,
                              .limits = lim,
                              .backoff_initial_ms = c->backoff_initial_ms,
                              .backoff_max_ms = c->backoff_max_ms,
                              .max_attempts = c->max_attempts};
        st = bs_sink_create(p->loop, p->sp, &so, ops, impl, &p->sinks[p->n_sinks].s);
        if (st != BS_OK) {
            ops->destroy(impl);
            snprintf(err, errlen, "%s: sinks.%s: cannot start the sink (%s)", cfg->path, c->name,
                     bs_status_name(st));
            return st;
        }
        p->sinks[p->n_sinks++].c = c;
        BS_LOG_INFOF(MOD, "sink %s (%s) ships%s%s%s", c->name, kind_name(c->kind),
                     c->streams & BS_STREAM_MASK(BS_STREAM_AUDIT) ? " audit" : "",
                     c->streams & BS_STREAM_MASK(BS_STREAM_METRICS) ? " metrics" : "",
                     c->streams & BS_STREAM_MASK(BS_STREAM_LOGS) ? " logs" : "");
    }
    return BS_OK;
}

/* Start the log tailer over logs.files. */
static bs_status build_tailer(bs_pipeline *p, char *err, size_t errlen)
{
    const bs_logs_config *lc = &p->cfg->logs;
    p->tail_files = calloc(lc->n_files ? lc->n_files : 1, sizeof *p->tail_files);
    if (!p->tail_files) return BS_E_NOMEM;
    p->tail_plain = calloc(lc->n_files ? lc->n_files : 1, sizeof *p->tail_plain);
    if (!p->tail_plain) return BS_E_NOMEM;
    for (size_t i = 0; i < lc->n_files; i++) {
        p->tail_files[i] = lc->files[i].path;
        p->tail_plain[i] = lc->files[i].format == BS_LOG_FORMAT_PLAIN;
    }
    bs_logtail_options o = {.files = p->tail_files,
                            .plain = p->tail_plain,
                            .n_files = lc->n_files,
                            .state_path = lc->state_file,
                            .tz_offset_min = lc->tz_offset_min,
                            .start_at_end = lc->start_at_end};
    bs_status st = bs_logtail_new(p->loop, p->sp, &o, &p->tail);
    if (st != BS_OK)
        snprintf(err, errlen, "%s: logs: cannot start tailing (%s; checkpoint %s)", p->cfg->path,
                 bs_status_name(st), lc->state_file);
    return st;
}

/* (Re)create the EMF snapshotter for the current namespace. */
static bs_status build_emf(bs_pipeline *p)
{
    bs_emf_options o;
    bs_emf_options_default(&o);
    o.namespace_name = p->cfg->metrics.ns;
    bs_emf_dimension dim = {.name = "BrokerId", .value = p->broker_id};
    if (p->broker_id[0]) {
        o.fixed = &dim;
        o.n_fixed = 1;
    }
    bs_emf *e = NULL;
    BS_GUARD(bs_emf_new(&o, &e));
    bs_emf_free(p->emf);
    p->emf = e;
    return BS_OK;
}

/* Start (or restart with a new period) a repeating timer of `period_s`. */
static void arm(bs_pipeline *p, ev_timer *t, double period_s)
{
    ev_timer_stop(p->loop, t);
    ev_timer_set(t, period_s, period_s);
    ev_timer_start(p->loop, t);
}

/* Open the audit log and start its timers. */
static bs_status build_audit(bs_pipeline *p, char *err, size_t errlen)
{
    const bs_audit_config *ac = &p->cfg->audit;
    BS_GUARD(load_key(p->cfg, &p->key, err, errlen));
    bs_audit_link link;
    BS_GUARD(find_link(p, &link, err, errlen));
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.data_events = (bs_audit_data_mode)ac->data_events;
    o.digest_every_events = ac->digest_every_events;
    o.aggregate_max_keys = ac->aggregate_max_keys;
    o.broker_id = p->broker_id_num;
    o.format = (bs_audit_format)ac->format;
    bs_status st = bs_audit_log_open(&o, p->key, &link, emit_audit, p, &p->audit);
    if (st != BS_OK) {
        snprintf(err, errlen, "audit: cannot open the audit log (%s)", bs_status_name(st));
        return st;
    }
    bs_audit_log_set_backlog_probe(p->audit, audit_blocked_probe, p->bus);
    /* from now on the modules' own actions are recorded in the chain */
    bs_sidecar_action_set_recorder(record_action, p);
    ev_init(&p->agg_timer, on_agg_timer);
    p->agg_timer.data = p;
    arm(p, &p->agg_timer, ac->aggregate_interval_s);
    ev_init(&p->digest_timer, on_digest_timer);
    p->digest_timer.data = p;
    arm(p, &p->digest_timer, ac->digest_interval_s);
    if (link.valid)
        BS_LOG_INFOF(MOD, "audit: new chain linked to chain %s (sequence %" PRIu64 ", %s)",
                     link.chain_id, link.sequence, link.sealed ? "sealed" : "NOT sealed");
    return BS_OK;
}

/* See pipeline.h. */
bs_status bs_pipeline_start(struct ev_loop *loop, const bs_config *cfg, bs_pipeline **out,
                            char *err, size_t errlen)
{
    bs_status st = bs_pipeline_check(cfg, err, errlen);
    if (st != BS_OK) return st;
    bs_pipeline *p = calloc(1, sizeof *p);
    if (!p) return BS_E_NOMEM;
    p->loop = loop;
    p->cfg = cfg;
    p->broker_id_num = -1;
    ev_init(&p->emf_timer, on_emf_timer);
    p->emf_timer.data = p;
    ev_init(&p->agg_timer, on_agg_timer);
    ev_init(&p->digest_timer, on_digest_timer);
    /* One broker per sidecar: the first listener that knows its id names it. */
    for (size_t i = 0; i < cfg->n_listeners; i++)
        if (cfg->listeners[i].broker_id >= 0) {
            p->broker_id_num = cfg->listeners[i].broker_id;
            snprintf(p->broker_id, sizeof p->broker_id, "%d", (int)p->broker_id_num);
            break;
        }
    p->m_emf_failed = bs_metrics_counter("brokerside_metric_snapshots_failed_total",
                                         "Metric snapshots that could not be queued", "");
    *out = p;
    if (!any_stream(cfg)) return BS_OK;

    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = cfg->spool.dir;
    so.max_bytes = cfg->spool.max_bytes;
    so.segment_bytes = cfg->spool.segment_bytes;
    so.fsync_interval_ms = cfg->spool.fsync_interval_ms;
    st = bs_spool_open(&so, &p->sp);
    if (st == BS_E_BUSY) {
        snprintf(err, errlen,
                 "%s: spool: %s is in use by another brokerside process (lock %s/spool.lock); "
                 "nothing in it was changed",
                 cfg->path, cfg->spool.dir, cfg->spool.dir);
        goto fail;
    }
    if (st != BS_OK) {
        snprintf(err, errlen, "%s: spool: cannot open %s (%s)", cfg->path, cfg->spool.dir,
                 bs_status_name(st));
        goto fail;
    }
    bs_spool_attach_loop(p->sp, loop);
    bs_event_bus_options bo = {.audit_sync_ms = cfg->spool.audit_sync_ms};
    st = bs_event_bus_new(loop, p->sp, &bo, &p->bus);
    if (st != BS_OK) {
        snprintf(err, errlen, "event bus: %s", bs_status_name(st));
        goto fail;
    }
    BS_GUARD_GOTO(st, build_sinks(p, err, errlen), fail);
    if (cfg->logs.enabled) BS_GUARD_GOTO(st, build_tailer(p, err, errlen), fail);
    if (cfg->metrics.enabled) {
        st = build_emf(p);
        if (st != BS_OK) {
            snprintf(err, errlen, "%s: metrics.namespace: not usable for EMF (%s)", cfg->path,
                     bs_status_name(st));
            goto fail;
        }
        arm(p, &p->emf_timer, cfg->metrics.interval_s);
    }
    if (cfg->audit.enabled) BS_GUARD_GOTO(st, build_audit(p, err, errlen), fail);
    BS_LOG_INFOF(MOD, "event path up: spool %s, %zu sink(s)%s%s%s", cfg->spool.dir, p->n_sinks,
                 cfg->audit.enabled ? ", audit" : "", cfg->metrics.enabled ? ", metrics" : "",
                 cfg->logs.enabled ? ", logs" : "");
    return BS_OK;
fail:
    bs_pipeline_free(p);
    *out = NULL;
    return st;
}

/* See pipeline.h. */
bs_status bs_pipeline_observe(bs_pipeline *p, bs_server *srv)
{
    if (!p->audit) return BS_OK;
    return bs_server_set_observer(srv, on_conn_event, p);
}

/* See pipeline.h. */
bool bs_pipeline_audit_blocked(bs_pipeline *p)
{
    return p && p->audit && bs_event_bus_audit_blocked(p->bus);
}

/* See pipeline.h. */
bs_audit_log *bs_pipeline_audit_log(bs_pipeline *p)
{
    return p ? p->audit : NULL;
}

/* ---------------------------------------------------------------- status */

/* `"audit":N,"metrics":N,"logs":N` of a per-stream array. */
static void put_streams(bs_wbuf *out, const uint64_t *v)
{
    bs_wbuf_printf(out, "{\"audit\":%" PRIu64 ",\"metrics\":%" PRIu64 ",\"logs\":%" PRIu64 "}",
                   v[BS_STREAM_AUDIT], v[BS_STREAM_METRICS], v[BS_STREAM_LOGS]);
}

/* See pipeline.h. */
void bs_pipeline_status_json(bs_pipeline *p, bs_wbuf *out)
{
    if (!p || !p->sp) return;
    bs_spool_stats ss;
    bs_spool_get_stats(p->sp, &ss);
    bs_wbuf_put_str(out, ",\"spool\":{\"dir\":");
    bs_wbuf_put_json_string(out, bs_spool_dir(p->sp), strlen(bs_spool_dir(p->sp)));
    bs_wbuf_printf(out,
                   ",\"bytes\":%" PRIu64 ",\"max_bytes\":%" PRIu64 ",\"segments\":%" PRIu64
                   ",\"appended\":%" PRIu64 ",\"next_seq\":%" PRIu64 ",\"rejected\":",
                   bs_spool_bytes(p->sp), p->cfg->spool.max_bytes, ss.segments, ss.appended,
                   bs_spool_next_seq(p->sp));
    put_streams(out, ss.rejected);
    bs_wbuf_printf(out, ",\"truncated_bytes\":%" PRIu64 ",\"corrupt_records\":%" PRIu64 "}",
                   ss.truncated_bytes, ss.corrupt_records);
    bs_event_bus_stats bst;
    bs_event_bus_get_stats(p->bus, &bst);
    bs_wbuf_printf(out,
                   ",\"events\":{\"queued\":%zu,\"queued_bytes\":%zu,\"audit_blocked\":%s,"
                   "\"spooled\":",
                   bst.queued_events, bst.queued_bytes,
                   bs_event_bus_audit_blocked(p->bus) ? "true" : "false");
    put_streams(out, bst.spooled);
    bs_wbuf_put_str(out, ",\"dropped\":");
    put_streams(out, bst.dropped);
    bs_wbuf_put_str(out, "},\"sinks\":[");
    for (size_t i = 0; i < p->n_sinks; i++) {
        bs_sink_stats st;
        bs_sink_get_stats(p->sinks[i].s, &st);
        bs_wbuf_put_str(out, i ? ",{\"name\":" : "{\"name\":");
        bs_wbuf_put_json_string(out, p->sinks[i].c->name, strlen(p->sinks[i].c->name));
        bs_wbuf_printf(out,
                       ",\"type\":\"%s\",\"lag_bytes\":%" PRIu64 ",\"delivered\":%" PRIu64
                       ",\"retried\":%" PRIu64 ",\"dead_lettered\":%" PRIu64 ",\"batches\":%" PRIu64
                       ",\"last_error\":",
                       kind_name(p->sinks[i].c->kind), st.lag_bytes, st.delivered, st.retried,
                       st.dead_lettered, st.batches);
        if (st.last_error[0]) {
            bs_wbuf_put_json_string(out, st.last_error, strlen(st.last_error));
            char t[25];
            bs_audit_format_time(st.last_error_ms * 1000, t);
            bs_wbuf_printf(out, ",\"last_error_time\":\"%s\"}", t);
        } else {
            bs_wbuf_put_str(out, "null}");
        }
    }
    bs_wbuf_put_str(out, "]");
    if (p->audit) {
        char chain[33];
        uint64_t next, emitted, failures, overflow;
        bs_audit_log_position(p->audit, chain, &next);
        bs_audit_log_stats(p->audit, &emitted, &failures, &overflow);
        uint64_t lost, unrecorded, gaps;
        bs_audit_log_losses(p->audit, &lost, &unrecorded, &gaps);
        bs_wbuf_printf(out,
                       ",\"audit\":{\"chain_id\":\"%s\",\"next_sequence\":%" PRIu64
                       ",\"emitted\":%" PRIu64 ",\"emit_failures\":%" PRIu64
                       ",\"aggregate_overflow\":%" PRIu64 ",\"signed\":%s,\"lost\":%" PRIu64
                       ",\"lost_unrecorded\":%" PRIu64 ",\"gap_records\":%" PRIu64 "}",
                       chain, next, emitted, failures, overflow, p->key ? "true" : "false", lost,
                       unrecorded, gaps);
    }
    if (p->tail) {
        bs_logtail_stats ls;
        bs_logtail_get_stats(p->tail, &ls);
        bs_wbuf_printf(out,
                       ",\"logtail\":{\"files\":%" PRIu64 ",\"lines\":%" PRIu64
                       ",\"events\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"rotations\":%" PRIu64
                       ",\"truncations\":%" PRIu64 ",\"blocked\":%" PRIu64 "}",
                       ls.files, ls.lines, ls.events, ls.bytes, ls.rotations, ls.truncations,
                       ls.blocked);
    }
}

/* See pipeline.h. */
void bs_pipeline_set_lag(bs_pipeline *p, bs_lag_monitor *lag)
{
    if (p) p->lag = lag;
}

/* ---------------------------------------------------------------- reload */

/* See pipeline.h. */
void bs_pipeline_reload(bs_pipeline *p, const bs_config *cfg)
{
    if (!p || !p->sp || p->stopped) return;
    const bs_config *old = p->cfg;
    /* Sections switched on or off, sinks and keys keep the running values
     * (bs_config_needs_restart already said so); only the live keys move. */
    if (p->emf && cfg->metrics.enabled) {
        if (strcmp(old->metrics.ns, cfg->metrics.ns) != 0) {
            const bs_config *keep = p->cfg;
            p->cfg = cfg;
            if (build_emf(p) != BS_OK) {
                p->cfg = keep;
                BS_LOG_ERRORF(MOD, "reload: metrics.namespace %s not usable; keeping %s",
                              cfg->metrics.ns, keep->metrics.ns);
            }
        }
        if (old->metrics.interval_s != cfg->metrics.interval_s)
            arm(p, &p->emf_timer, cfg->metrics.interval_s);
    }
    if (p->audit && cfg->audit.enabled) {
        if (old->audit.aggregate_interval_s != cfg->audit.aggregate_interval_s)
            arm(p, &p->agg_timer, cfg->audit.aggregate_interval_s);
        if (old->audit.digest_interval_s != cfg->audit.digest_interval_s)
            arm(p, &p->digest_timer, cfg->audit.digest_interval_s);
        if (old->audit.data_events != cfg->audit.data_events ||
            old->audit.digest_every_events != cfg->audit.digest_every_events) {
            /* main.c switches the per-request recorder (audit_hook) the same way */
            if (bs_audit_log_set_data_mode(p->audit, (bs_audit_data_mode)cfg->audit.data_events,
                                           cfg->audit.digest_every_events,
                                           now_us()) != BS_OK)
                BS_LOG_ERRORF(MOD, "reload: flushing the audit aggregates failed");
            static const char *const modes[] = {"aggregate", "each", "off"};
            unsigned m = (unsigned)cfg->audit.data_events;
            BS_LOG_INFOF(MOD, "reload: audit.data_events %s, digest_every_events %u",
                         m < 3 ? modes[m] : "?", cfg->audit.digest_every_events);
        }
    }
    p->cfg = cfg;
}

/* ---------------------------------------------------------------- stop */

/* True when every sink has acknowledged everything that was synced. */
static bool sinks_idle(bs_pipeline *p)
{
    for (size_t i = 0; i < p->n_sinks; i++)
        if (!bs_sink_idle(p->sinks[i].s)) return false;
    return true;
}

/* Wake-up while waiting for the sinks at shutdown: just return from ev_run. */
static void on_stop_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
}

/* See pipeline.h. */
void bs_pipeline_stop(bs_pipeline *p, double grace_s)
{
    if (!p || p->stopped) return;
    p->stopped = true;
    ev_timer_stop(p->loop, &p->emf_timer);
    ev_timer_stop(p->loop, &p->agg_timer);
    ev_timer_stop(p->loop, &p->digest_timer);
    if (!p->sp) return;
    /* The tailer's checkpoint only covers spooled events; stopping it first
     * means nothing new is read while the rest drains. */
    bs_logtail_free(p->tail);
    p->tail = NULL;
    snapshot(p);
    if (p->audit) {
        /* Workers have exited (the server drained first): nobody records now
         * but the modules' actions, which stop here. */
        bs_sidecar_action_set_recorder(NULL, NULL);
        if (bs_audit_log_close(p->audit, now_us()) != BS_OK)
            BS_LOG_ERRORF(MOD, "audit: the final digest could not be written");
        p->audit = NULL;
    }
    bs_event_bus_drain(p->bus);
    if (bs_spool_sync(p->sp) != BS_OK) BS_LOG_ERRORF(MOD, "spool: final sync failed");
    ev_tstamp deadline = ev_time() + grace_s;
    ev_timer tick;
    ev_timer_init(&tick, on_stop_tick, STOP_POLL_S, STOP_POLL_S);
    ev_timer_start(p->loop, &tick);
    for (size_t i = 0; i < p->n_sinks; i++)
        bs_sink_flush(p->sinks[i].s);
    while (!sinks_idle(p) && ev_time() < deadline && !p->cancel_flush) {
        bs_event_bus_drain(p->bus);
        ev_run(p->loop, EVRUN_ONCE);
        for (size_t i = 0; i < p->n_sinks; i++)
            bs_sink_flush(p->sinks[i].s);
    }
    ev_timer_stop(p->loop, &tick);
    if (!sinks_idle(p))
        BS_LOG_WARNF(MOD, "sinks not idle %s; the rest stays in the spool %s for the next start",
                     p->cancel_flush ? "(flush cut short by a second signal)"
                                     : "after the grace period",
                     bs_spool_dir(p->sp));
    else
        BS_LOG_INFOF(MOD, "every sink delivered what the spool holds");
}

/* See pipeline.h. */
void bs_pipeline_cancel_flush(bs_pipeline *p)
{
    if (p) p->cancel_flush = true;
}

/* See pipeline.h. */
void bs_pipeline_free(bs_pipeline *p)
{
    if (!p) return;
    bs_pipeline_stop(p, 0);
    for (size_t i = 0; i < p->n_sinks; i++)
        bs_sink_destroy(p->sinks[i].s);
    free(p->sinks);
    bs_logtail_free(p->tail);
    free(p->tail_files);
    free(p->tail_plain);
    if (p->audit) bs_sidecar_action_set_recorder(NULL, NULL);
    if (p->audit && bs_audit_log_close(p->audit, now_us()) != BS_OK)
        BS_LOG_ERRORF(MOD, "audit: the final digest could not be written");
    bs_event_bus_free(p->bus);
    bs_spool_close(p->sp);
    bs_emf_free(p->emf);
    bs_audit_key_free(p->key);
    bs_aws_credentials_provider_free(p->creds);
    free(p);
}
