/*
 * audit_chain.c - the audit log: routing by category and data_events mode,
 * the data-event aggregator, the SHA-256 hash chain, signed digests and the
 * restart link (see audit.h; docs/audit-events.md is the byte-level spec).
 *
 * Locking: one mutex per log guards the chain state and the aggregator.
 * Events are rendered outside it (the slow part); inside, the chain fields
 * are appended, the line is hashed and handed to emit, so lines reach the
 * sink in sequence order.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "audit_internal.h"
#include "brokerside/audit.h"
#include "brokerside/log.h"

#define MOD "audit"
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define LINK_SCAN_MAX (1024 * 1024)

/* One aggregation bucket: (principal, api, topic) -> totals. */
typedef struct agg_entry {
    char *principal; /* NULL = anonymous */
    char *topic;     /* NULL = the request named no topic */
    uint64_t hash;
    int16_t api_key;
    bool used;
    uint64_t requests, errors, records, bytes;
    int64_t first_us, last_us;
} agg_entry;

struct bs_audit_log {
    pthread_mutex_t lock;
    EVP_MD *sha256; /* fetched once */
    bs_audit_options opts;
    const bs_audit_key *key;
    bs_audit_emit_fn emit;
    void *emit_arg;
    char chain_id[33];
    uint64_t next_seq;
    char prev_hash[65];
    uint64_t first_unsealed; /* first sequence not covered by a digest */
    uint32_t since_digest;   /* events emitted since the last digest */
    /* aggregator */
    agg_entry *agg;
    size_t agg_cap, agg_used;
    agg_entry overflow; /* principal/topic "*" once agg_used hits the bound */
    int64_t interval_start_us;
    /* where events go can say it is backed up (bs_audit_log_set_backlog_probe) */
    bool (*backlogged)(void *arg);
    void *backlog_arg;
    /* events the emit callback refused since the last AuditEventsLost record */
    uint64_t lost;
    int64_t lost_first_us, lost_last_us;
    /* stats */
    uint64_t emitted, emit_failures, agg_overflow, lost_total, gap_records;
};

/* See audit.h. */
void bs_audit_options_default(bs_audit_options *o)
{
    memset(o, 0, sizeof *o);
    o->data_events = BS_AUDIT_DATA_AGGREGATE;
    o->digest_every_events = 1000;
    o->aggregate_max_keys = 10000;
    o->event_source = "kafka.brokerside";
    o->broker_id = -1;
}

/* See audit.h. */
bs_status bs_audit_data_mode_parse(const char *s, bs_audit_data_mode *out)
{
    BS_ENSURE(s, BS_E_CONFIG);
    if (strcmp(s, "aggregate") == 0)
        *out = BS_AUDIT_DATA_AGGREGATE;
    else if (strcmp(s, "each") == 0)
        *out = BS_AUDIT_DATA_EACH;
    else if (strcmp(s, "off") == 0)
        *out = BS_AUDIT_DATA_OFF;
    else
        return BS_E_CONFIG;
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_emit_file(const char *line, size_t len, void *arg)
{
    FILE *f = arg;
    if (fwrite(line, 1, len, f) != len || fputc('\n', f) == EOF || fflush(f) != 0) return BS_E_IO;
    return BS_OK;
}

/* Put the signature over the complete digest line `body` into its empty
 * `"signature":""` placeholder (docs/audit-events.md, 8). */
static bs_status sign_in_place(bs_audit_log *log, bs_wbuf *body)
{
    bs_status st;
    size_t s, e;
    bs_wbuf msg, sig, line;
    bs_wbuf_init(&msg, 0);
    bs_wbuf_init(&sig, 0);
    bs_wbuf_init(&line, 0);
    BS_GUARD_GOTO(st, bs_audit_digest_message((const char *)body->data, body->len, &msg), out);
    BS_GUARD_GOTO(st, bs_audit_sign(log->key, msg.data, msg.len, &sig), out);
    BS_GUARD_GOTO(st, bs_audit_digest_sig_span((const char *)body->data, body->len, &s, &e), out);
    bs_wbuf_put(&line, body->data, s);
    bs_wbuf_put(&line, sig.data, sig.len);
    bs_wbuf_put(&line, body->data + e, body->len - e);
    BS_GUARD_GOTO(st, bs_wbuf_status(&line), out);
    bs_wbuf tmp = *body; /* swap: the caller frees whichever it holds */
    *body = line;
    line = tmp;
out:
    bs_wbuf_free(&msg);
    bs_wbuf_free(&sig);
    bs_wbuf_free(&line);
    return st;
}

/* Append the chain fields and the closing brace(s) to `body` (an event
 * object left open; OCSF: its `unmapped` object left open), sign it when `sign` (a digest with a key), hash the line and
 * emit it. On success the chain advances; on failure nothing changes (the
 * sequence number is reused). Lock held. */
static bs_status chain_emit_locked(bs_audit_log *log, bs_wbuf *body, bool sign)
{
    bs_wbuf_put_str(body, ",\"chainId\":\"");
    bs_wbuf_put(body, log->chain_id, 32);
    bs_wbuf_put_str(body, "\",\"sequence\":");
    bs_audit_put_u64(body, log->next_seq);
    bs_wbuf_put_str(body, ",\"previousHash\":\"");
    bs_wbuf_put(body, log->prev_hash, 64);
    bs_wbuf_put_u8(body, '"');
    bs_audit_put_close(log->opts.format, body);
    BS_GUARD(bs_wbuf_status(body));
    if (sign) BS_GUARD(sign_in_place(log, body));
    uint8_t md[SHA256_DIGEST_LENGTH];
    /* The pre-fetched implementation skips OpenSSL's per-call name lookup. */
    if (EVP_Digest(body->data, body->len, md, NULL, log->sha256, NULL) != 1) return BS_E_CRYPTO;
    bs_status st = log->emit((const char *)body->data, body->len, log->emit_arg);
    if (st != BS_OK) {
        log->emit_failures++;
        return st;
    }
    bs_audit_hex(md, sizeof md, log->prev_hash);
    log->next_seq++;
    log->since_digest++;
    log->emitted++;
    return BS_OK;
}

/* Open a chain record (AuditChainStart, AuditDigest, AuditEventsLost) in
 * the log's format, up to where its payload members follow: CloudTrail
 * head plus eventCategory/readOnly, or the OCSF head (Application
 * Lifecycle Start for a chain start, Event Log Activity for digests and
 * losses) with `unmapped` open. `failure` marks a record that admits a
 * problem (a loss, a start after a crash). */
static void record_open(bs_audit_log *log, bs_wbuf *body, int64_t now, const char *id,
                        const char *name, const char *type, bool failure)
{
    if (log->opts.format != BS_AUDIT_FORMAT_OCSF) {
        bs_wbuf_put_u8(body, '{');
        bs_audit_put_head(body, now, log->opts.event_source, name, type, id);
        bs_wbuf_put_str(body, ",\"eventCategory\":\"Management\",\"readOnly\":true");
        return;
    }
    bool start = strcmp(name, "AuditChainStart") == 0;
    bool lost = strcmp(name, "AuditEventsLost") == 0;
    bs_ocsf_head h = {.class_uid = start ? 6002 : 1008,
                      .class_name = start ? "Application Lifecycle" : "Event Log Activity",
                      .activity_id = start ? 3 : 99,
                      .activity_name = start ? "Start" : lost ? "Events Lost" : "Seal",
                      .time_us = now,
                      .event_id = id,
                      .severity_id = lost ? 4 : failure ? 3 : 1,
                      .status_id = failure ? 2 : 1,
                      .log_name = log->opts.event_source,
                      .event_name = name};
    bs_ocsf_put_head(body, &h);
    if (start)
        bs_ocsf_put_app(body);
    else
        bs_wbuf_put_str(body, ",\"log_name\":\"audit\",\"log_provider\":\"brokerside\","
                              "\"log_type_id\":2,\"log_type\":\"Application\"");
    bs_ocsf_open_unmapped(body, name, type);
}

/* Emit an AuditDigest covering first_unsealed..next_seq-1; no-op when that
 * range is empty. Lock held. */
static bs_status seal_locked(bs_audit_log *log)
{
    if (log->next_seq == log->first_unsealed) return BS_OK;
    bs_status st = BS_OK;
    uint64_t first = log->first_unsealed, last = log->next_seq - 1;
    bs_wbuf body;
    bs_wbuf_init(&body, 0);
    int64_t now = bs_audit_now_us();
    char id[37], kid[17];
    BS_GUARD_GOTO(st, bs_audit_new_event_id(now, id), out);
    record_open(log, &body, now, id, "AuditDigest", "AuditDigest", false);
    bs_wbuf_printf(&body,
                   ",\"brokerId\":%" PRId32
                   ",\"digest\":{\"firstSequence\":%" PRIu64 ",\"lastSequence\":%" PRIu64
                   ",\"lastHash\":\"%s\",\"algorithm\":\"%s\",\"keyId\":",
                   log->opts.broker_id, first, last, log->prev_hash,
                   bs_audit_key_algorithm(log->key));
    bs_audit_key_id(log->key, kid);
    if (log->key)
        bs_wbuf_printf(&body, "\"%s\",\"signature\":\"\"}", kid); /* filled after chaining */
    else
        bs_wbuf_put_str(&body, "null,\"signature\":null}");
    BS_GUARD_GOTO(st, chain_emit_locked(log, &body, log->key != NULL), out);
    log->first_unsealed = log->next_seq;
    log->since_digest = 0;
out:
    bs_wbuf_free(&body);
    return st;
}

/* Emit the AuditEventsLost record for the events counted in log->lost and
 * seal right after it, so the admission of the loss is signed at once. On
 * success the counter restarts; on failure it keeps counting. Lock held. */
static bs_status emit_gap_locked(bs_audit_log *log)
{
    if (log->lost == 0) return BS_OK;
    bs_status st;
    bs_wbuf body;
    bs_wbuf_init(&body, 0);
    int64_t now = bs_audit_now_us();
    char id[37], t0[25], t1[25];
    BS_GUARD_GOTO(st, bs_audit_new_event_id(now, id), out);
    bs_audit_format_time(log->lost_first_us, t0);
    bs_audit_format_time(log->lost_last_us, t1);
    record_open(log, &body, now, id, "AuditEventsLost", "AuditGap", true);
    bs_wbuf_printf(&body,
                   ",\"brokerId\":%" PRId32
                   ",\"lost\":{\"events\":%" PRIu64 ",\"firstTime\":\"%s\",\"lastTime\":\"%s\","
                   "\"reason\":\"the event path refused them (spool or queue full)\"}",
                   log->opts.broker_id, log->lost, t0, t1);
    BS_GUARD_GOTO(st, chain_emit_locked(log, &body, false), out);
    BS_LOG_ERRORF(MOD, "AUDIT EVENTS LOST: %" PRIu64 " event(s) between %s and %s; recorded as "
                       "AuditEventsLost at sequence %" PRIu64 " of chain %s",
                  log->lost, t0, t1, log->next_seq - 1, log->chain_id);
    log->gap_records++;
    log->lost = 0;
    st = seal_locked(log);
out:
    bs_wbuf_free(&body);
    return st;
}

/* Count one event the emit callback refused (the chain did not advance). */
static void note_lost_locked(bs_audit_log *log)
{
    int64_t now = bs_audit_now_us();
    if (log->lost++ == 0) log->lost_first_us = now;
    log->lost_last_us = now;
    log->lost_total++;
}

/* Emit `body` and seal when digest_every_events is reached. A pending loss
 * is recorded first (AuditEventsLost, sealed), so the chain never silently
 * skips events it was given. An event that cannot be emitted is counted as
 * lost. Lock held. */
static bs_status emit_locked(bs_audit_log *log, bs_wbuf *body)
{
    bs_status st = emit_gap_locked(log);
    if (st == BS_OK) st = chain_emit_locked(log, body, false);
    if (st != BS_OK) {
        note_lost_locked(log);
        return st;
    }
    if (log->opts.digest_every_events && log->since_digest >= log->opts.digest_every_events)
        BS_GUARD(seal_locked(log));
    return BS_OK;
}

/* The AuditChainStart event: sequence 0 of a fresh chain. Lock not needed
 * (the log is not yet shared). */
static bs_status write_chain_start(bs_audit_log *log, const bs_audit_link *prev)
{
    bs_status st;
    bs_wbuf body;
    bs_wbuf_init(&body, 0);
    int64_t now = bs_audit_now_us();
    char id[37], kid[17];
    BS_GUARD_GOTO(st, bs_audit_new_event_id(now, id), out);
    record_open(log, &body, now, id, "AuditChainStart", "AuditChain",
                prev && prev->valid && !prev->sealed);
    bs_wbuf_printf(&body, ",\"brokerId\":%" PRId32, log->opts.broker_id);
    bs_audit_key_id(log->key, kid);
    bs_wbuf_printf(&body, ",\"algorithm\":\"%s\",\"keyId\":", bs_audit_key_algorithm(log->key));
    if (log->key)
        bs_wbuf_printf(&body, "\"%s\"", kid);
    else
        bs_wbuf_put_str(&body, "null");
    if (prev && prev->valid)
        bs_wbuf_printf(&body,
                       ",\"previousChain\":{\"chainId\":\"%s\",\"lastSequence\":%" PRIu64
                       ",\"lastHash\":\"%s\",\"sealed\":%s}",
                       prev->chain_id, prev->sequence, prev->hash, prev->sealed ? "true" : "false");
    else
        bs_wbuf_put_str(&body, ",\"previousChain\":null");
    /* A previous chain that does not end with its final digest was not shut
     * down: the process crashed or was killed. Said explicitly, so the
     * restart is on record even where the old chain's file is gone. */
    bs_wbuf_printf(&body, ",\"previousRun\":\"%s\"",
                   !prev || !prev->valid ? "none" : prev->sealed ? "stopped" : "crashed");
    if (prev && prev->valid && !prev->sealed)
        BS_LOG_WARNF(MOD,
                     "previous audit chain %s ended without its final digest at sequence %" PRIu64
                     " (crash or kill): recorded in the new chain's start",
                     prev->chain_id, prev->sequence);
    st = chain_emit_locked(log, &body, false);
out:
    bs_wbuf_free(&body);
    return st;
}

/* See audit.h. */
bs_status bs_audit_log_open(const bs_audit_options *opts, const bs_audit_key *key,
                            const bs_audit_link *prev, bs_audit_emit_fn emit, void *emit_arg,
                            bs_audit_log **out)
{
    BS_ENSURE(opts && emit && out, BS_E_STATE);
    BS_ENSURE(opts->event_source && opts->aggregate_max_keys > 0, BS_E_CONFIG);
    bs_audit_log *log = calloc(1, sizeof *log);
    if (!log) return BS_E_NOMEM;
    bs_status st = BS_OK;
    pthread_mutex_init(&log->lock, NULL);
    log->opts = *opts;
    log->key = key;
    log->emit = emit;
    log->emit_arg = emit_arg;
    memcpy(log->prev_hash, ZERO_HASH, 65);
    log->interval_start_us = bs_audit_now_us();
    log->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!log->sha256) {
        st = BS_E_CRYPTO;
        goto out;
    }
    uint8_t rnd[16];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        st = BS_E_CRYPTO;
        goto out;
    }
    bs_audit_hex(rnd, sizeof rnd, log->chain_id);
    if (!key) BS_LOG_WARNF(MOD, "no audit signing key: digests will be unsigned");
    BS_GUARD_GOTO(st, write_chain_start(log, prev), out);
    *out = log;
    log = NULL;
out:
    if (log) {
        EVP_MD_free(log->sha256);
        pthread_mutex_destroy(&log->lock);
        free(log);
    }
    return st;
}

/* ------------------------------------------------------------- aggregator */

/* FNV-1a over the key parts (a NUL separates them so ("ab","c") and
 * ("a","bc") differ; NULL hashes differently from ""). */
static uint64_t agg_hash(const char *principal, int16_t api, const char *topic, size_t topic_len)
{
    uint64_t h = 1469598103934665603ULL;
#define MIX(b) (h = (h ^ (uint8_t)(b)) * 1099511628211ULL)
    if (principal)
        for (const char *p = principal; *p; p++)
            MIX(*p);
    else
        MIX(0xff);
    MIX(0);
    MIX(api & 0xff);
    MIX((api >> 8) & 0xff);
    if (topic)
        for (size_t i = 0; i < topic_len; i++)
            MIX(topic[i]);
    else
        MIX(0xff);
#undef MIX
    return h;
}

/* True if entry e has exactly this key. */
static bool agg_match(const agg_entry *e, uint64_t h, const char *principal, int16_t api,
                      const char *topic, size_t topic_len)
{
    if (e->hash != h || e->api_key != api) return false;
    if ((e->principal == NULL) != (principal == NULL)) return false;
    if (principal && strcmp(e->principal, principal) != 0) return false;
    if ((e->topic == NULL) != (topic == NULL)) return false;
    return !topic || (strlen(e->topic) == topic_len && memcmp(e->topic, topic, topic_len) == 0);
}

/* Grow the open-addressing table to `cap` (a power of two). Lock held. */
static bs_status agg_grow(bs_audit_log *log, size_t cap)
{
    agg_entry *t = calloc(cap, sizeof *t);
    if (!t) return BS_E_NOMEM;
    for (size_t i = 0; i < log->agg_cap; i++) {
        if (!log->agg[i].used) continue;
        size_t j = log->agg[i].hash & (cap - 1);
        while (t[j].used)
            j = (j + 1) & (cap - 1);
        t[j] = log->agg[i];
    }
    free(log->agg);
    log->agg = t;
    log->agg_cap = cap;
    return BS_OK;
}

/* Find or create the bucket for the key; the overflow bucket when the map
 * is at its bound or an allocation fails (counted: data is never dropped,
 * only its key detail). Lock held. */
static agg_entry *agg_get(bs_audit_log *log, const char *principal, int16_t api, const char *topic,
                          size_t topic_len)
{
    uint64_t h = agg_hash(principal, api, topic, topic_len);
    if (log->agg_cap) {
        for (size_t j = h & (log->agg_cap - 1);; j = (j + 1) & (log->agg_cap - 1)) {
            agg_entry *e = &log->agg[j];
            if (!e->used) break;
            if (agg_match(e, h, principal, api, topic, topic_len)) return e;
        }
    }
    if (log->agg_used >= log->opts.aggregate_max_keys) goto overflow;
    if ((log->agg_used + 1) * 10 > log->agg_cap * 7 &&
        agg_grow(log, log->agg_cap ? log->agg_cap * 2 : 64) != BS_OK)
        goto overflow;
    char *pc = principal ? strdup(principal) : NULL;
    char *tc = topic ? strndup(topic, topic_len) : NULL;
    if ((principal && !pc) || (topic && !tc)) {
        free(pc);
        free(tc);
        goto overflow;
    }
    size_t j = h & (log->agg_cap - 1);
    while (log->agg[j].used)
        j = (j + 1) & (log->agg_cap - 1);
    agg_entry *e = &log->agg[j];
    memset(e, 0, sizeof *e);
    e->used = true;
    e->hash = h;
    e->api_key = api;
    e->principal = pc;
    e->topic = tc;
    log->agg_used++;
    return e;
overflow:
    log->agg_overflow++;
    log->overflow.used = true;
    return &log->overflow;
}

/* Add one request's numbers to a bucket. */
static void agg_add(agg_entry *e, int64_t t, bool error, int64_t records, int64_t bytes)
{
    if (e->requests == 0 || t < e->first_us) e->first_us = t;
    if (e->requests == 0 || t > e->last_us) e->last_us = t;
    e->requests++;
    if (error) e->errors++;
    if (records > 0) e->records += (uint64_t)records;
    if (bytes > 0) e->bytes += (uint64_t)bytes;
}

/* True if resource r, or any of its partitions, or the whole response
 * failed. */
static bool res_failed(const bs_audit_event *ev, size_t r)
{
    if (ev->error_code != BS_AUDIT_NO_ERROR && ev->error_code != 0) return true;
    if (ev->res[r].error_code != BS_AUDIT_NO_ERROR && ev->res[r].error_code != 0) return true;
    for (size_t i = 0; i < ev->n_items; i++)
        if (ev->items[i].resource == r && ev->items[i].error_code != BS_AUDIT_NO_ERROR &&
            ev->items[i].error_code != 0)
            return true;
    return false;
}

/* Fold a data event into the aggregator: one bucket per topic it names, or
 * the topic-less bucket. Lock held. */
static void agg_fold(bs_audit_log *log, const bs_audit_event *ev)
{
    bool any_topic = false;
    for (size_t r = 0; r < ev->n_res; r++) {
        const bs_audit_resource *res = &ev->res[r];
        if (res->type != BS_AUDIT_RES_TOPIC) continue;
        any_topic = true;
        agg_entry *e =
            agg_get(log, ev->principal, ev->api_key, ev->arena + res->name_off, res->name_len);
        agg_add(e, ev->time_us, res_failed(ev, r), res->records, res->bytes);
    }
    if (!any_topic) {
        bool err = ev->error_code != BS_AUDIT_NO_ERROR && ev->error_code != 0;
        agg_add(agg_get(log, ev->principal, ev->api_key, NULL, 0), ev->time_us, err, 0, 0);
    }
}

/* The OCSF head of an aggregate event: API Activity with `count`, the
 * first and last request's times as start_time/end_time, the principal
 * and topic, and a status (errors: none = success, all = failure, some =
 * other); `unmapped` is left open for the shared payload. Lock held. */
static void agg_ocsf_open(bs_audit_log *log, bs_wbuf *body, const agg_entry *e, bool overflow,
                          int64_t end_us, const char *id)
{
    const bs_audit_api_class *c = bs_audit_api_lookup(e->api_key);
    const char *op = c ? c->name : "UnknownApi";
    bs_ocsf_head h = {.class_uid = 6003,
                      .class_name = "API Activity",
                      .time_us = end_us,
                      .event_id = id,
                      .severity_id = e->errors ? 2 : 1,
                      .status_id = e->errors == 0 ? 1 : e->errors == e->requests ? 2 : 99,
                      .status = e->errors && e->errors != e->requests ? "Partial failure" : NULL,
                      .log_name = log->opts.event_source,
                      .event_name = op};
    if (e->api_key == 0 || strncmp(op, "Create", 6) == 0)
        h.activity_id = 1, h.activity_name = "Create";
    else if (c && c->read_only)
        h.activity_id = 2, h.activity_name = "Read";
    else
        h.activity_id = 3, h.activity_name = "Update";
    bs_ocsf_put_head(body, &h);
    bs_wbuf_printf(body, ",\"count\":%" PRIu64 ",\"start_time\":%" PRId64 ",\"end_time\":%" PRId64,
                   e->requests > INT32_MAX ? (uint64_t)INT32_MAX : e->requests,
                   e->first_us / 1000, e->last_us / 1000);
    const char *who = overflow ? "*" : e->principal;
    if (who) {
        bs_wbuf_put_str(body, ",\"actor\":{\"user\":{\"name\":");
        bs_audit_put_cstr(body, who);
        bs_wbuf_put_str(body, "}}");
    } else {
        bs_wbuf_put_str(body, ",\"actor\":{\"user\":{\"name\":\"ANONYMOUS\",\"type_id\":0}}");
    }
    bs_wbuf_put_str(body, ",\"src_endpoint\":{\"name\":\"aggregate\"}");
    bs_wbuf_put_str(body, ",\"api\":{\"operation\":");
    bs_audit_put_cstr(body, op);
    bs_wbuf_put_str(body, ",\"service\":{\"name\":\"kafka\"}}");
    if (overflow || e->topic) {
        bs_wbuf_put_str(body, ",\"resources\":[{\"type\":\"topic\",\"name\":");
        bs_audit_put_cstr(body, overflow ? "*" : e->topic);
        bs_wbuf_printf(body, ",\"data\":{\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 "}}]",
                       e->records, e->bytes);
    }
    bs_ocsf_open_unmapped(body, op, "KafkaApiCallAggregate");
}

/* Render and emit the aggregate event for one bucket. Lock held. */
static bs_status agg_emit(bs_audit_log *log, const agg_entry *e, bool overflow, int64_t end_us)
{
    bs_status st;
    bs_wbuf body;
    bs_wbuf_init(&body, 0);
    char id[37], t0[25], t1[25], tf[25], tl[25];
    BS_GUARD_GOTO(st, bs_audit_new_event_id(end_us, id), out);
    const bs_audit_api_class *c = bs_audit_api_lookup(e->api_key);
    if (log->opts.format == BS_AUDIT_FORMAT_OCSF) {
        agg_ocsf_open(log, &body, e, overflow, end_us, id);
    } else {
        bs_wbuf_put_u8(&body, '{');
        bs_audit_put_head(&body, end_us, log->opts.event_source, c ? c->name : "UnknownApi",
                          "KafkaApiCallAggregate", id);
    }
    bs_wbuf_printf(&body, ",\"eventCategory\":\"Data\",\"readOnly\":%s,\"apiKey\":%d",
                   c && c->read_only ? "true" : "false", e->api_key);
    if (overflow)
        bs_wbuf_put_str(&body, ",\"userIdentity\":{\"type\":\"Overflow\",\"principal\":\"*\"}");
    else if (e->principal) {
        bs_wbuf_put_str(&body, ",\"userIdentity\":{\"type\":\"mTLS\",\"principal\":");
        bs_audit_put_cstr(&body, e->principal);
        bs_wbuf_put_u8(&body, '}');
    } else {
        bs_wbuf_put_str(&body, ",\"userIdentity\":{\"type\":\"Anonymous\",\"principal\":null}");
    }
    bs_wbuf_put_str(&body, ",\"requestParameters\":{\"resources\":[");
    if (overflow)
        bs_wbuf_put_str(&body, "{\"type\":\"topic\",\"name\":\"*\"}");
    else if (e->topic) {
        bs_wbuf_put_str(&body, "{\"type\":\"topic\",\"name\":");
        bs_audit_put_cstr(&body, e->topic);
        bs_wbuf_put_u8(&body, '}');
    }
    bs_audit_format_time(log->interval_start_us, t0);
    bs_audit_format_time(end_us, t1);
    bs_audit_format_time(e->first_us, tf);
    bs_audit_format_time(e->last_us, tl);
    bs_wbuf_printf(&body,
                   "]},\"aggregate\":{\"intervalStart\":\"%s\",\"intervalEnd\":\"%s\","
                   "\"firstEventTime\":\"%s\",\"lastEventTime\":\"%s\",\"requests\":%" PRIu64
                   ",\"errors\":%" PRIu64 ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
                   t0, t1, tf, tl, e->requests, e->errors, e->records, e->bytes);
    if (log->opts.broker_id >= 0)
        bs_wbuf_printf(&body, ",\"brokerId\":%" PRId32, log->opts.broker_id);
    else
        bs_wbuf_put_str(&body, ",\"brokerId\":null");
    st = emit_locked(log, &body);
out:
    bs_wbuf_free(&body);
    return st;
}

/* Forget every bucket (keeps the table storage). Lock held. */
static void agg_clear(bs_audit_log *log)
{
    for (size_t i = 0; i < log->agg_cap; i++) {
        if (!log->agg[i].used) continue;
        free(log->agg[i].principal);
        free(log->agg[i].topic);
        memset(&log->agg[i], 0, sizeof log->agg[i]);
    }
    log->agg_used = 0;
    memset(&log->overflow, 0, sizeof log->overflow);
}

/* See audit.h. On an emit failure the buckets not yet emitted are kept for
 * the next flush (the ones emitted are cleared), so nothing is counted twice
 * and nothing is lost. */
bs_status bs_audit_log_flush_aggregates(bs_audit_log *log, int64_t now_us)
{
    bs_status st = BS_OK;
    pthread_mutex_lock(&log->lock);
    for (size_t i = 0; i < log->agg_cap && st == BS_OK; i++) {
        agg_entry *e = &log->agg[i];
        if (!e->used || e->requests == 0) continue;
        st = agg_emit(log, e, false, now_us);
        if (st == BS_OK) e->requests = e->errors = e->records = e->bytes = 0;
    }
    if (st == BS_OK && log->overflow.requests > 0) {
        st = agg_emit(log, &log->overflow, true, now_us);
        if (st == BS_OK) memset(&log->overflow, 0, sizeof log->overflow);
    }
    if (st == BS_OK) {
        agg_clear(log);
        log->interval_start_us = now_us;
    }
    pthread_mutex_unlock(&log->lock);
    return st;
}

/* ------------------------------------------------------------------ route */

/* See audit.h. */
bs_status bs_audit_log_record(bs_audit_log *log, const bs_audit_event *ev)
{
    BS_ENSURE(log && ev, BS_E_STATE);
    bool data = false;
    if (ev->type == BS_AUDIT_EV_REQUEST) {
        const bs_audit_api_class *c = bs_audit_api_lookup(ev->api_key);
        data = c && c->category == BS_AUDIT_DATA;
    }
    /* the mode can change on reload (bs_audit_log_set_data_mode) */
    bs_audit_data_mode mode = __atomic_load_n(&log->opts.data_events, __ATOMIC_RELAXED);
    if (ev->type == BS_AUDIT_EV_AUTHZ && mode != BS_AUDIT_DATA_EACH) {
        /* Denials and decisions on management APIs are always written; the
         * allowed decisions of data APIs (every Produce/Fetch) only with
         * data_events "each" (docs/authorization.md). */
        const bs_audit_api_class *c = bs_audit_api_lookup(ev->api_key);
        bool denied = false;
        for (size_t i = 0; i < ev->n_items && !denied; i++)
            denied = ev->items[i].kind == BS_AUDIT_ITEM_ATTR && ev->items[i].val_len == 4 &&
                     memcmp(ev->arena + ev->items[i].val_off, "DENY", 4) == 0;
        if (!denied && c && c->category == BS_AUDIT_DATA) return BS_OK;
    }
    if (data && mode == BS_AUDIT_DATA_OFF) return BS_OK;
    if (data && mode == BS_AUDIT_DATA_AGGREGATE) {
        pthread_mutex_lock(&log->lock);
        /* re-checked under the lock: a switch away from aggregate flushes
         * under it, so nothing is folded after that flush */
        if (log->opts.data_events == BS_AUDIT_DATA_AGGREGATE) {
            agg_fold(log, ev);
            pthread_mutex_unlock(&log->lock);
            return BS_OK;
        }
        pthread_mutex_unlock(&log->lock);
        if (log->opts.data_events == BS_AUDIT_DATA_OFF) return BS_OK;
    }
    bs_status st;
    char id[37];
    bs_wbuf body;
    bs_wbuf_init(&body, 0);
    /* Typical events are 0.8-1.5 KiB: one allocation instead of a few reallocs. */
    bs_wbuf_reserve(&body, 2048);
    BS_GUARD_GOTO(st, bs_audit_new_event_id(ev->time_us, id), out);
    BS_GUARD_GOTO(
        st, bs_audit_render_event_open(log->opts.format, ev, log->opts.event_source, id, &body),
        out);
    pthread_mutex_lock(&log->lock);
    st = emit_locked(log, &body);
    pthread_mutex_unlock(&log->lock);
out:
    bs_wbuf_free(&body);
    return st;
}

/* See audit.h. */
bs_status bs_audit_log_set_data_mode(bs_audit_log *log, bs_audit_data_mode mode,
                                     uint32_t digest_every_events, int64_t now_us)
{
    BS_ENSURE(log, BS_E_STATE);
    pthread_mutex_lock(&log->lock);
    bs_audit_data_mode old = log->opts.data_events;
    __atomic_store_n(&log->opts.data_events, mode, __ATOMIC_RELAXED);
    log->opts.digest_every_events = digest_every_events;
    pthread_mutex_unlock(&log->lock);
    if (old == BS_AUDIT_DATA_AGGREGATE && mode != BS_AUDIT_DATA_AGGREGATE)
        return bs_audit_log_flush_aggregates(log, now_us);
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_log_seal(bs_audit_log *log)
{
    BS_ENSURE(log, BS_E_STATE);
    pthread_mutex_lock(&log->lock);
    bs_status st = seal_locked(log);
    pthread_mutex_unlock(&log->lock);
    return st;
}

/* See audit.h. */
bs_status bs_audit_log_close(bs_audit_log *log, int64_t now_us)
{
    if (!log) return BS_OK;
    bs_status st = bs_audit_log_flush_aggregates(log, now_us);
    pthread_mutex_lock(&log->lock);
    bs_status st3 = emit_gap_locked(log); /* a loss not yet on record */
    pthread_mutex_unlock(&log->lock);
    if (st3 != BS_OK)
        BS_LOG_ERRORF(MOD, "%" PRIu64 " lost audit event(s) could not be recorded at close",
                      log->lost);
    bs_status st2 = bs_audit_log_seal(log);
    if (st == BS_OK) st = st2;
    agg_clear(log);
    free(log->agg);
    EVP_MD_free(log->sha256);
    pthread_mutex_destroy(&log->lock);
    free(log);
    return st;
}

/* See audit.h. */
void bs_audit_log_position(bs_audit_log *log, char chain_id[33], uint64_t *next_sequence)
{
    pthread_mutex_lock(&log->lock);
    memcpy(chain_id, log->chain_id, 33);
    *next_sequence = log->next_seq;
    pthread_mutex_unlock(&log->lock);
}

/* See audit.h. */
void bs_audit_log_stats(bs_audit_log *log, uint64_t *emitted, uint64_t *emit_failures,
                        uint64_t *agg_overflow)
{
    pthread_mutex_lock(&log->lock);
    *emitted = log->emitted;
    *emit_failures = log->emit_failures;
    *agg_overflow = log->agg_overflow;
    pthread_mutex_unlock(&log->lock);
}

/* See audit.h. */
void bs_audit_log_set_backlog_probe(bs_audit_log *log, bool (*blocked)(void *arg), void *arg)
{
    log->backlog_arg = arg;
    log->backlogged = blocked;
}

/* See audit.h. */
bool bs_audit_log_backlogged(bs_audit_log *log)
{
    return log && log->backlogged && log->backlogged(log->backlog_arg);
}

/* See audit.h. */
void bs_audit_log_losses(bs_audit_log *log, uint64_t *lost_total, uint64_t *lost_unrecorded,
                         uint64_t *gap_records)
{
    pthread_mutex_lock(&log->lock);
    *lost_total = log->lost_total;
    *lost_unrecorded = log->lost;
    *gap_records = log->gap_records;
    pthread_mutex_unlock(&log->lock);
}

/* ------------------------------------------------------------------- link */

/* See audit_internal.h. */
const cJSON *bs_audit_record_of(const cJSON *line)
{
    const cJSON *um = cJSON_GetObjectItemCaseSensitive(line, "unmapped");
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(line, "class_uid")) && cJSON_IsObject(um))
        return um;
    return line;
}

/* See audit.h. Reads at most the last LINK_SCAN_MAX bytes; a torn last line
 * (no newline) is ignored, as the verifier will report it. */
bs_status bs_audit_link_from_file(const char *path, bs_audit_link *link)
{
    memset(link, 0, sizeof *link);
    bs_status st = BS_OK;
    char *buf = NULL;
    cJSON *j = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? BS_OK : BS_E_IO;
    if (fseeko(f, 0, SEEK_END) != 0) {
        st = BS_E_IO;
        goto out;
    }
    off_t size = ftello(f);
    off_t start = size > LINK_SCAN_MAX ? size - LINK_SCAN_MAX : 0;
    size_t n = (size_t)(size - start);
    if (n == 0) goto out;
    buf = malloc(n);
    if (!buf) {
        st = BS_E_NOMEM;
        goto out;
    }
    if (fseeko(f, start, SEEK_SET) != 0 || fread(buf, 1, n, f) != n) {
        st = BS_E_IO;
        goto out;
    }
    size_t end = n;
    while (end > 0 && buf[end - 1] != '\n')
        end--; /* drop a torn tail */
    if (end == 0) goto out;
    end--; /* the newline */
    size_t b = end;
    while (b > 0 && buf[b - 1] != '\n')
        b--;
    if (b == 0 && start > 0) { /* the line is longer than the window */
        st = BS_E_TOO_LARGE;
        goto out;
    }
    const char *pend = NULL;
    j = cJSON_ParseWithLengthOpts(buf + b, end - b, &pend, false);
    if (j && pend != buf + end) { /* trailing bytes: not one of our lines */
        st = BS_E_MALFORMED;
        goto out;
    }
    const cJSON *r = bs_audit_record_of(j);
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(r, "chainId");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(r, "sequence");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "eventName");
    if (!cJSON_IsString(cid) || strlen(cid->valuestring) != 32 || !cJSON_IsNumber(seq) ||
        seq->valuedouble < 0) {
        st = BS_E_MALFORMED;
        goto out;
    }
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)buf + b, end - b, md);
    bs_audit_hex(md, sizeof md, link->hash);
    memcpy(link->chain_id, cid->valuestring, 33);
    link->sequence = (uint64_t)seq->valuedouble;
    link->sealed = cJSON_IsString(name) && strcmp(name->valuestring, "AuditDigest") == 0;
    link->valid = true;
out:
    cJSON_Delete(j);
    free(buf);
    fclose(f);
    return st;
}
