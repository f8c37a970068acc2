/*
 * authz.c - the policy enforcer of the Kafka session (see authz.h).
 *
 * Requests are decoded with the schema codec into a tree (kafka_schema.h),
 * judged, and when something is denied either re-encoded without the denied
 * topics (Produce, Fetch; their answers are merged into the broker's
 * response later) or answered by the sidecar with an error response built
 * from the response schema: every ErrorCode set to the authorization error,
 * arrays mirroring the resources the request named.
 */
#include "brokerside/authz.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/identity.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/policy.h"

#define MOD "authz"

/* Kafka error codes. */
#define E_TOPIC_AUTH 29
#define E_GROUP_AUTH 30
#define E_CLUSTER_AUTH 31
#define E_TXN_AUTH 53

#define DECODE_LIMIT (64u << 20) /* arena bound per decoded frame */
#define CACHE_SLOTS 128u
#define CACHE_NAME_MAX 249u

struct bs_authz {
    bs_audit_log *log;
    bs_kafka_hook hook;
    bs_metric *allowed, *denied;
};

/* A topic removed from a request: answered by the sidecar in the response. */
typedef struct denied_topic {
    char name[256]; /* "" when only the id is known */
    uint8_t id[16];
    bool has_id;
    int32_t *parts;
    int32_t nparts;
} denied_topic;

/* A request whose response must be completed or filtered. */
typedef struct pending {
    int32_t corr;
    int16_t api, ver;
    bool md_all; /* Metadata asked for every topic */
    denied_topic *topics;
    size_t n;
} pending;

typedef struct cache_ent {
    bool used;
    uint8_t op, res;
    uint8_t len;
    char name[CACHE_NAME_MAX + 1];
    bs_policy_decision d;
} cache_ent;

/* Per connection. */
typedef struct aconn {
    bs_authz *a;
    const bs_conn_identity *id;
    char host[64];
    char listener[128];
    uint64_t conn_id;
    bs_kafka_arena arena;
    pending *q;
    size_t qhead, qn, qcap;
    /* decisions cache: valid for one policy and one principal */
    const bs_policy *cache_policy;
    uint32_t cache_gen;
    cache_ent cache[CACHE_SLOTS];
    /* the request being judged */
    const bs_policy *pol;
    const char *principal;
    bs_audit_event ev;
    bool ev_on;
    int16_t first_code; /* error code of the first denial, 0 if none */
    uint32_t counted;   /* allowed decisions the fast scan already counted in metrics */
} aconn;

/* ---------------------------------------------------------------- judging */

/* FNV-1a. */
static uint32_t hash_name(uint8_t op, uint8_t res, const char *p, size_t n)
{
    uint32_t h = 2166136261u ^ (uint32_t)(op * 31 + res);
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 16777619u;
    }
    return h;
}

static const char *basis_name(bs_policy_basis b)
{
    static const char *const n[] = {"denyRule", "allowRule", "impliedAllow", "superUser",
                                    "default"};
    return (unsigned)b < 5 ? n[b] : "default";
}

static bs_audit_res_type audit_res(bs_acl_res r)
{
    switch (r) {
    case BS_ACL_TOPIC: return BS_AUDIT_RES_TOPIC;
    case BS_ACL_GROUP: return BS_AUDIT_RES_GROUP;
    case BS_ACL_TRANSACTIONAL_ID: return BS_AUDIT_RES_TRANSACTIONAL_ID;
    default: return BS_AUDIT_RES_CLUSTER;
    }
}

static int16_t auth_error(bs_acl_res r)
{
    switch (r) {
    case BS_ACL_TOPIC: return E_TOPIC_AUTH;
    case BS_ACL_GROUP: return E_GROUP_AUTH;
    case BS_ACL_TRANSACTIONAL_ID: return E_TXN_AUTH;
    default: return E_CLUSTER_AUTH;
    }
}

/* Record a decision: audit item (once per resource and operation per
 * request), metrics, first denial. */
static void note(aconn *c, bs_acl_op op, bs_acl_res res, const char *name, size_t len,
                 const bs_policy_decision *d, const char *basis)
{
    if (d->allowed && c->counted)
        c->counted--; /* counted by the fast scan already */
    else
        bs_metric_add(d->allowed ? c->a->allowed : c->a->denied, 1);
    if (!d->allowed) {
        if (!c->first_code) c->first_code = auth_error(res);
        const char *label = bs_kafka_principal_admit(c->principal) ? c->principal : "_other";
        bs_metric_add(bs_metrics_counter_kv("brokerside_authz_denied_total",
                                            "Requests or resources denied by the authorization "
                                            "policy",
                                            "principal", label, "operation", bs_acl_op_name(op),
                                            "resource_type", bs_acl_res_name(res), NULL),
                      1);
    }
    if (!c->ev_on) return;
    bs_audit_event *ev = &c->ev;
    bs_audit_res_type at = audit_res(res);
    if (res == BS_ACL_CLUSTER) len = 0;
    const char *opn = bs_acl_op_name(op);
    /* one entry per (resource, operation) */
    for (size_t r = 0; r < ev->n_res; r++) {
        if (ev->res[r].type != at || ev->res[r].name_len != len ||
            memcmp(ev->arena + ev->res[r].name_off, name, len) != 0)
            continue;
        for (size_t i = 0; i < ev->n_items; i++)
            if (ev->items[i].resource == r && ev->items[i].key_len == 9 &&
                ev->items[i].val_len == strlen(opn) &&
                memcmp(ev->arena + ev->items[i].val_off, opn, ev->items[i].val_len) == 0)
                return;
    }
    (void)!bs_audit_event_add_decision(ev, at, name, len, opn, d->allowed, d->rule, basis);
}

/* The decision for (op, res, name), through the per-connection cache. */
static bs_policy_decision decide(aconn *c, bs_acl_op op, bs_acl_res res, const char *name,
                                 size_t len)
{
    if (c->cache_policy != c->pol || c->cache_gen != c->id->generation) {
        memset(c->cache, 0, sizeof c->cache);
        c->cache_policy = c->pol;
        c->cache_gen = c->id->generation;
    }
    cache_ent *e = NULL;
    if (len <= CACHE_NAME_MAX) {
        e = &c->cache[hash_name((uint8_t)op, (uint8_t)res, name, len) % CACHE_SLOTS];
        if (e->used && e->op == op && e->res == res && e->len == len &&
            memcmp(e->name, name, len) == 0)
            return e->d;
    }
    bs_policy_decision d = bs_policy_check(c->pol, c->principal, c->host, op, res, name, len);
    if (e) {
        e->used = true;
        e->op = (uint8_t)op;
        e->res = (uint8_t)res;
        e->len = (uint8_t)len;
        memcpy(e->name, name, len);
        e->d = d;
    }
    return d;
}

/* Judge and record one decision; true if allowed. */
static bool judge(aconn *c, bs_acl_op op, bs_acl_res res, const char *name, size_t len)
{
    bs_policy_decision d = decide(c, op, res, name, len);
    note(c, op, res, name, len, &d, basis_name(d.basis));
    return d.allowed;
}

/* CreateTopics / auto-creation: Create on the cluster, else on the topic. */
static bool judge_create(aconn *c, const char *name, size_t len)
{
    bs_policy_decision d = decide(c, BS_ACL_CREATE, BS_ACL_CLUSTER, "", 0);
    if (d.allowed) {
        note(c, BS_ACL_CREATE, BS_ACL_CLUSTER, "", 0, &d, basis_name(d.basis));
        return true;
    }
    return judge(c, BS_ACL_CREATE, BS_ACL_TOPIC, name, len);
}

/* An API the policy has no rule shape for: denied while a policy is on. */
static void deny_unjudged(aconn *c, int16_t api)
{
    bs_policy_decision d = {.allowed = false, .rule = -1, .basis = BS_POLICY_BY_DEFAULT};
    bs_metric_add(c->a->denied, 1);
    if (!c->first_code) c->first_code = E_CLUSTER_AUTH;
    const char *label = bs_kafka_principal_admit(c->principal) ? c->principal : "_other";
    bs_metric_add(bs_metrics_counter_kv("brokerside_authz_denied_total",
                                        "Requests or resources denied by the authorization policy",
                                        "principal", label, "operation", bs_kafka_api_name(api),
                                        "resource_type", "Api", NULL),
                  1);
    if (c->ev_on)
        (void)!bs_audit_event_add_decision(&c->ev, BS_AUDIT_RES_CLUSTER, "", 0,
                                           bs_kafka_api_name(api), false, d.rule,
                                           "apiNotCoveredByPolicy");
}

/* ---------------------------------------------------------------- trees */

static const uint8_t g_zero_uuid[16];

/* Index of field `name` in struct s, or -1. */
static int fidx(const bs_kafka_struct *s, const char *name)
{
    return bs_kafka_struct_field(s, name);
}

/* Ints whose Kafka default is -1 (or INT32_MIN), for answers we build. */
static int64_t default_int(const char *name)
{
    static const char *const minus1[] = {
        "BaseOffset",     "LogAppendTimeMs", "LogStartOffset", "HighWatermark", "LastStableOffset",
        "PreferredReadReplica", "LeaderId", "LeaderEpoch",     "ControllerId",  "Offset",
        "CommittedOffset", "CommittedLeaderEpoch", "ProducerId", "ProducerEpoch", "NodeId",
        "Timestamp",      "Port", NULL};
    for (size_t i = 0; minus1[i]; i++)
        if (strcmp(name, minus1[i]) == 0) return -1;
    if (strstr(name, "AuthorizedOperations")) return INT32_MIN;
    return 0;
}

/* A new object of struct `s` at version v with Kafka-like defaults. */
static bs_status obj_default(bs_kafka_arena *a, const bs_kafka_struct *s, int16_t v,
                             bs_kafka_obj **out, int depth)
{
    BS_ENSURE(depth < BS_KAFKA_MAX_DEPTH, BS_E_MALFORMED);
    bs_kafka_obj *o;
    BS_GUARD(bs_kafka_arena_alloc(a, sizeof *o, (void **)&o));
    o->schema = s;
    if (s->nfields) BS_GUARD(bs_kafka_arena_alloc(a, s->nfields * sizeof *o->vals, (void **)&o->vals));
    for (size_t i = 0; i < s->nfields; i++) {
        const bs_kafka_field *f = &s->fields[i];
        bs_kafka_val *val = &o->vals[i];
        if (!bs_kafka_field_present(f, v)) continue;
        val->present = !bs_kafka_field_tagged(f, v);
        bool nullable = bs_kafka_field_nullable(f, v);
        switch (f->type) {
        case BS_KT_STRING:
        case BS_KT_BYTES:
        case BS_KT_RECORDS:
            val->null = nullable;
            val->p = (const uint8_t *)"";
            break;
        case BS_KT_UUID:
            val->p = g_zero_uuid;
            val->n = 16;
            break;
        case BS_KT_ARRAY: val->count = 0; break;
        case BS_KT_STRUCT: BS_GUARD(obj_default(a, f->sub, v, &val->items, depth + 1)); break;
        default: val->i = default_int(f->name); break;
        }
    }
    *out = o;
    return BS_OK;
}

/* Set every ErrorCode of `o` (not below arrays) to `code`. */
static void set_errors(bs_kafka_obj *o, int16_t code)
{
    for (size_t i = 0; i < o->schema->nfields; i++)
        if (o->schema->fields[i].type == BS_KT_INT16 &&
            strcmp(o->schema->fields[i].name, "ErrorCode") == 0)
            o->vals[i].i = code;
}

/* Set field `name` of `o` to integer v (if it exists at this version). */
static void set_int(bs_kafka_obj *o, const char *name, int64_t v)
{
    int k = fidx(o->schema, name);
    if (k >= 0) o->vals[k].i = v;
}

/* Set string field `name` of `o` (pointing at p, which must outlive the encode). */
static void set_str(bs_kafka_obj *o, const char *name, const uint8_t *p, size_t n)
{
    int k = fidx(o->schema, name);
    if (k < 0) return;
    o->vals[k].p = p;
    o->vals[k].n = n;
    o->vals[k].null = false;
}

/* Request and response array names that hold the same resources. */
static const char *const g_alias[][2] = {
    {"TopicData", "Responses"},        {"PartitionData", "PartitionResponses"},
    {"Topics", "Responses"},           {"Topics", "Results"},
    {"CoordinatorKeys", "Coordinators"}, {"TopicNames", "Responses"},
    {"GroupsNames", "Results"},        {"Resources", "Results"},
    {"Resources", "Responses"},        {"TransactionalIds", "TransactionStates"},
    {"GroupIds", "Groups"},            {"Transactions", "ResultsByTransaction"},
};
/* Scalar fields named differently in request and response. */
static const char *const g_scalar_alias[][2] = {{"Partition", "PartitionIndex"},
                                                {"Topic", "Name"},
                                                {"Name", "Topic"},
                                                {"Index", "PartitionIndex"}};

/* Does request array `req` correspond to response array `resp`? */
static bool arrays_match(const char *req, const char *resp)
{
    if (strcmp(req, resp) == 0) return true;
    for (size_t i = 0; i < BS_ARRAY_LEN(g_alias); i++)
        if (strcmp(g_alias[i][0], req) == 0 && strcmp(g_alias[i][1], resp) == 0) return true;
    return false;
}

/* Copy scalar fields of request element `q` into response element `r`
 * where names (or aliases) and types agree. */
static void copy_scalars(bs_kafka_obj *r, const bs_kafka_obj *q)
{
    for (size_t i = 0; i < r->schema->nfields; i++) {
        const bs_kafka_field *rf = &r->schema->fields[i];
        if (rf->type == BS_KT_ARRAY || rf->type == BS_KT_STRUCT || !r->vals[i].present ||
            strcmp(rf->name, "ErrorCode") == 0)
            continue;
        int k = fidx(q->schema, rf->name);
        for (size_t a = 0; k < 0 && a < BS_ARRAY_LEN(g_scalar_alias); a++)
            if (strcmp(g_scalar_alias[a][1], rf->name) == 0) k = fidx(q->schema, g_scalar_alias[a][0]);
        if (k < 0 || q->schema->fields[k].type != rf->type || !q->vals[k].present) continue;
        bs_kafka_val v = q->vals[k];
        if (v.null && !r->vals[i].null && rf->type == BS_KT_STRING) continue;
        r->vals[i] = v;
        r->vals[i].present = true;
    }
}

/* Strings of a primitive string array value (raw elements) -> callback. */
typedef bs_status (*str_fn)(void *arg, const uint8_t *p, size_t n);
static bs_status each_string(const bs_kafka_val *v, bool flex, str_fn fn, void *arg)
{
    bs_cursor cur;
    bs_cursor_init(&cur, v->p, v->n);
    for (int32_t k = 0; k < v->count; k++) {
        bs_kafka_slice s;
        BS_GUARD(bs_kafka_read_string(&cur, flex, true, &s));
        if (s.len >= 0) BS_GUARD(fn(arg, s.p, (size_t)s.len));
    }
    return BS_OK;
}

typedef struct mirror_str {
    bs_kafka_arena *a;
    const bs_kafka_field *rf;
    int16_t v;
    int16_t code;
    bs_kafka_obj *items;
    int32_t n;
} mirror_str;

/* One string of a request array becomes one response element. */
static bs_status mirror_one(void *arg, const uint8_t *p, size_t n)
{
    mirror_str *m = arg;
    bs_kafka_obj *e;
    BS_GUARD(obj_default(m->a, m->rf->sub, m->v, &e, 1));
    set_errors(e, m->code);
    static const char *const keys[] = {"Key", "GroupId", "Name", "TransactionalId", "Topic"};
    for (size_t i = 0; i < BS_ARRAY_LEN(keys); i++)
        if (fidx(e->schema, keys[i]) >= 0) {
            set_str(e, keys[i], p, n);
            break;
        }
    m->items[m->n++] = *e;
    return BS_OK;
}

/* Fill the arrays of response object `r` from request object `q`. */
static bs_status mirror(bs_kafka_arena *a, bs_kafka_obj *r, const bs_kafka_obj *q, int16_t v,
                        bool qflex, int16_t code, int depth)
{
    BS_ENSURE(depth < BS_KAFKA_MAX_DEPTH, BS_E_MALFORMED);
    set_errors(r, code);
    copy_scalars(r, q);
    for (size_t i = 0; i < r->schema->nfields; i++) {
        const bs_kafka_field *rf = &r->schema->fields[i];
        if (rf->type != BS_KT_ARRAY || rf->elem != BS_KT_STRUCT || !r->vals[i].present) continue;
        for (size_t k = 0; k < q->schema->nfields; k++) {
            const bs_kafka_field *qf = &q->schema->fields[k];
            const bs_kafka_val *qv = &q->vals[k];
            if (qf->type != BS_KT_ARRAY || !qv->present || qv->count <= 0 ||
                !arrays_match(qf->name, rf->name))
                continue;
            bs_kafka_obj *items;
            BS_GUARD(bs_kafka_arena_alloc(a, (size_t)qv->count * sizeof *items, (void **)&items));
            if (qf->elem == BS_KT_STRUCT) {
                for (int32_t e = 0; e < qv->count; e++) {
                    bs_kafka_obj *o;
                    BS_GUARD(obj_default(a, rf->sub, v, &o, depth + 1));
                    BS_GUARD(mirror(a, o, &qv->items[e], v, qflex, code, depth + 1));
                    items[e] = *o;
                }
                r->vals[i].count = qv->count;
            } else if (qf->elem == BS_KT_STRING) {
                mirror_str m = {.a = a, .rf = rf, .v = v, .code = code, .items = items};
                BS_GUARD(each_string(qv, qflex, mirror_one, &m));
                r->vals[i].count = m.n;
            } else {
                continue;
            }
            r->vals[i].items = items;
            break;
        }
    }
    return BS_OK;
}

/* Write a response frame: size, correlation id, header tags (v1), body `o`. */
static bs_status put_response(bs_wbuf *w, int16_t api, int16_t ver, int32_t corr,
                              const bs_kafka_obj *o)
{
    int hv;
    BS_GUARD(bs_kafka_response_header_version(api, ver, &hv));
    const bs_kafka_message *m = bs_kafka_message_find(api, false);
    BS_ENSURE(m, BS_E_UNSUPPORTED);
    size_t start = w->len;
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put_be32(w, (uint32_t)corr);
    if (hv == 1) bs_wbuf_put_u8(w, 0);
    BS_GUARD(bs_kafka_encode(m, ver, o, w));
    bs_wbuf_patch_be32(w, start, (uint32_t)(w->len - start - 4));
    return bs_wbuf_status(w);
}

/* The error answer to a whole denied request: the response schema's
 * defaults, ErrorCodes set to `code`, arrays mirroring the request. */
static bs_status error_answer(aconn *c, const bs_kafka_request_header *h, const bs_kafka_obj *req,
                              int16_t code, bs_wbuf *out)
{
    const bs_kafka_message *m = bs_kafka_message_find(h->api_key, false);
    BS_ENSURE(m && h->api_version >= m->min_version && h->api_version <= m->max_version,
              BS_E_UNSUPPORTED);
    bs_kafka_obj *r;
    BS_GUARD(obj_default(&c->arena, m->body, h->api_version, &r, 0));
    if (req)
        BS_GUARD(mirror(&c->arena, r, req, h->api_version, h->api_version >= m->flex_min, code, 0));
    else
        set_errors(r, code);
    /* Produce-like partition answers carry -1 offsets; mirror kept request ints */
    return put_response(out, h->api_key, h->api_version, h->correlation_id, r);
}

/* Re-encode request `o` with the original header bytes. */
static bs_status put_request(bs_wbuf *w, const uint8_t *frame, const bs_kafka_request_header *h,
                             const bs_kafka_obj *o)
{
    const bs_kafka_message *m = bs_kafka_message_find(h->api_key, true);
    BS_ENSURE(m, BS_E_UNSUPPORTED);
    bs_wbuf_put_be32(w, 0);
    bs_wbuf_put(w, frame + 4, h->header_len);
    BS_GUARD(bs_kafka_encode(m, h->api_version, o, w));
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
    return bs_wbuf_status(w);
}

/* ---------------------------------------------------------------- pending */

static void pending_free(pending *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->topics[i].parts);
    free(p->topics);
    memset(p, 0, sizeof *p);
}

/* Append to the FIFO (takes ownership of p's lists). */
static bs_status pending_push(aconn *c, pending *p)
{
    if (c->qn == c->qcap) {
        size_t nc = c->qcap ? c->qcap * 2 : 8;
        pending *g = calloc(nc, sizeof *g);
        if (!g) return BS_E_NOMEM;
        for (size_t i = 0; i < c->qn; i++)
            g[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = g;
        c->qcap = nc;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qn) % c->qcap] = *p;
    c->qn++;
    return BS_OK;
}

/* ---------------------------------------------------------------- Produce / Fetch */

/* The name of topic element `t` (Produce: Name; Fetch: Topic or TopicId). */
static bool topic_name(const bs_kafka_obj *t, char *name, size_t nlen, const uint8_t **id)
{
    *id = NULL;
    int k = fidx(t->schema, "Name");
    if (k < 0 || !t->vals[k].present) k = fidx(t->schema, "Topic");
    if (k >= 0 && t->vals[k].present && !t->vals[k].null) {
        size_t n = t->vals[k].n < nlen - 1 ? t->vals[k].n : nlen - 1;
        memcpy(name, t->vals[k].p, n);
        name[n] = 0;
        return true;
    }
    k = fidx(t->schema, "TopicId");
    if (k >= 0 && t->vals[k].present && t->vals[k].p) {
        *id = t->vals[k].p;
        return bs_kafka_topic_id_lookup(t->vals[k].p, name, nlen);
    }
    return false;
}

/* Copy the partition indexes of topic element `t` (array `arr`, index field `idxf`). */
static bs_status take_parts(const bs_kafka_obj *t, const char *arr, const char *idxf,
                            denied_topic *d)
{
    int k = fidx(t->schema, arr);
    if (k < 0 || t->vals[k].count <= 0) return BS_OK;
    const bs_kafka_val *pv = &t->vals[k];
    d->parts = calloc((size_t)pv->count, sizeof *d->parts);
    if (!d->parts) return BS_E_NOMEM;
    for (int32_t i = 0; i < pv->count; i++) {
        int j = fidx(pv->items[i].schema, idxf);
        d->parts[d->nparts++] = j >= 0 ? (int32_t)pv->items[i].vals[j].i : -1;
    }
    return BS_OK;
}

/* Response entries (topic with its partitions, error 29) for the denied
 * topics, appended to array field `arr` of response `r`. */
static bs_status append_denied(aconn *c, bs_kafka_obj *r, int16_t v, const char *arr,
                               const char *parr, const char *pidx, const denied_topic *dt,
                               size_t nd)
{
    int k = fidx(r->schema, arr);
    BS_ENSURE(k >= 0, BS_E_MALFORMED);
    bs_kafka_val *av = &r->vals[k];
    const bs_kafka_struct *ts = r->schema->fields[k].sub;
    int32_t old = av->count > 0 ? av->count : 0;
    bs_kafka_obj *items;
    BS_GUARD(bs_kafka_arena_alloc(&c->arena, ((size_t)old + nd) * sizeof *items, (void **)&items));
    if (old) memcpy(items, av->items, (size_t)old * sizeof *items);
    for (size_t i = 0; i < nd; i++) {
        bs_kafka_obj *t;
        BS_GUARD(obj_default(&c->arena, ts, v, &t, 1));
        if (fidx(ts, "TopicId") >= 0 && t->vals[fidx(ts, "TopicId")].present && dt[i].has_id)
            t->vals[fidx(ts, "TopicId")].p = dt[i].id;
        int nk = fidx(ts, "Name") >= 0 ? fidx(ts, "Name") : fidx(ts, "Topic");
        if (nk >= 0 && t->vals[nk].present) {
            t->vals[nk].p = (const uint8_t *)dt[i].name;
            t->vals[nk].n = strlen(dt[i].name);
            t->vals[nk].null = false;
        }
        int pk = fidx(ts, parr);
        BS_ENSURE(pk >= 0, BS_E_MALFORMED);
        bs_kafka_obj *ps = NULL;
        if (dt[i].nparts)
            BS_GUARD(bs_kafka_arena_alloc(&c->arena, (size_t)dt[i].nparts * sizeof *ps, (void **)&ps));
        for (int32_t j = 0; j < dt[i].nparts; j++) {
            bs_kafka_obj *p;
            BS_GUARD(obj_default(&c->arena, ts->fields[pk].sub, v, &p, 2));
            set_int(p, pidx, dt[i].parts[j]);
            set_errors(p, E_TOPIC_AUTH);
            ps[j] = *p;
        }
        t->vals[pk].count = dt[i].nparts;
        t->vals[pk].items = ps;
        items[old + i] = *t;
    }
    av->count = old + (int32_t)nd;
    av->items = items;
    av->null = false;
    return BS_OK;
}

/* Produce (write) or Fetch (read): split by topic. */
static bs_status judge_data(aconn *c, const bs_kafka_request_header *h, const uint8_t *frame,
                            bs_kafka_obj *o, bs_wbuf *out, bs_kafka_hook_verdict *verdict)
{
    bool produce = h->api_key == BS_KAFKA_PRODUCE;
    int16_t v = h->api_version;
    int64_t acks = -1;
    if (produce) {
        int k = fidx(o->schema, "Acks");
        if (k >= 0) acks = o->vals[k].i;
        k = fidx(o->schema, "TransactionalId");
        if (k >= 0 && o->vals[k].present && !o->vals[k].null &&
            !judge(c, BS_ACL_WRITE, BS_ACL_TRANSACTIONAL_ID, (const char *)o->vals[k].p,
                   o->vals[k].n)) {
            if (acks == 0) {
                *verdict = BS_KAFKA_HOOK_ANSWER;
                return BS_OK;
            }
            *verdict = BS_KAFKA_HOOK_ANSWER;
            return error_answer(c, h, o, E_TXN_AUTH, out);
        }
    } else {
        /* a follower's fetch needs ClusterAction on the cluster */
        int64_t replica = -1;
        int k = fidx(o->schema, "ReplicaId");
        if (k >= 0 && o->vals[k].present) replica = o->vals[k].i;
        k = fidx(o->schema, "ReplicaState");
        if (k >= 0 && o->vals[k].present && o->vals[k].items) {
            int j = fidx(o->vals[k].items->schema, "ReplicaId");
            if (j >= 0) replica = o->vals[k].items->vals[j].i;
        }
        if (replica >= 0 && !judge(c, BS_ACL_CLUSTER_ACTION, BS_ACL_CLUSTER, "", 0)) {
            *verdict = BS_KAFKA_HOOK_ANSWER;
            return error_answer(c, h, NULL, E_CLUSTER_AUTH, out);
        }
    }
    int tk = fidx(o->schema, produce ? "TopicData" : "Topics");
    BS_ENSURE(tk >= 0, BS_E_MALFORMED);
    bs_kafka_val *tv = &o->vals[tk];
    int32_t n = tv->count > 0 ? tv->count : 0;
    pending p = {.corr = h->correlation_id, .api = h->api_key, .ver = v};
    int32_t kept = 0;
    bs_status st = BS_OK;
    for (int32_t i = 0; i < n && st == BS_OK; i++) {
        char name[256];
        const uint8_t *id;
        bool known = topic_name(&tv->items[i], name, sizeof name, &id);
        bool ok = known && judge(c, produce ? BS_ACL_WRITE : BS_ACL_READ, BS_ACL_TOPIC, name,
                                 strlen(name));
        if (!known) {
            /* a topic id no Metadata response named: cannot be judged */
            bs_policy_decision d = {.allowed = false, .rule = -1, .basis = BS_POLICY_BY_DEFAULT};
            note(c, produce ? BS_ACL_WRITE : BS_ACL_READ, BS_ACL_TOPIC, "", 0, &d,
                 "unknownTopicId");
        }
        if (ok) {
            tv->items[kept++] = tv->items[i];
            continue;
        }
        denied_topic *g = realloc(p.topics, (p.n + 1) * sizeof *g);
        if (!g) {
            st = BS_E_NOMEM;
            break;
        }
        p.topics = g;
        denied_topic *d = &p.topics[p.n++];
        memset(d, 0, sizeof *d);
        snprintf(d->name, sizeof d->name, "%s", known ? name : "");
        if (id) {
            memcpy(d->id, id, 16);
            d->has_id = true;
        }
        st = take_parts(&tv->items[i], produce ? "PartitionData" : "Partitions",
                        produce ? "Index" : "Partition", d);
    }
    if (st != BS_OK || p.n == 0) {
        pending_free(&p);
        return st;
    }
    tv->count = kept;
    if (kept == 0) {
        /* nothing left for the broker: the sidecar answers (acks=0: nothing) */
        *verdict = BS_KAFKA_HOOK_ANSWER;
        if (produce && acks == 0) {
            pending_free(&p);
            return BS_OK;
        }
        const bs_kafka_message *m = bs_kafka_message_find(h->api_key, false);
        bs_kafka_obj *r;
        st = obj_default(&c->arena, m->body, v, &r, 0);
        if (st == BS_OK && !produce) {
            /* keep the client's fetch session: same id, no error at the top */
            int sk = fidx(o->schema, "SessionId");
            if (sk >= 0 && o->vals[sk].present) set_int(r, "SessionId", o->vals[sk].i);
        }
        if (st == BS_OK)
            st = append_denied(c, r, v, "Responses", produce ? "PartitionResponses" : "Partitions",
                               produce ? "Index" : "PartitionIndex", p.topics, p.n);
        if (st == BS_OK) st = put_response(out, h->api_key, v, h->correlation_id, r);
        pending_free(&p);
        return st;
    }
    st = put_request(out, frame, h, o);
    if (st == BS_OK) *verdict = BS_KAFKA_HOOK_REPLACE;
    if (st == BS_OK && !(produce && acks == 0)) return pending_push(c, &p);
    pending_free(&p);
    return st;
}

/* Fast path of Produce/Fetch: a scan of the body (no tree, no allocation)
 * that judges every topic; the tree is built only when something is denied. */
typedef struct fast_scan {
    aconn *c;
    bool produce;
    int depth;
    bool denied;   /* something denied (or unjudgeable): take the slow path */
    uint32_t allowed; /* allowed decisions noted */
    bool replica;  /* a follower's fetch: slow path */
    int32_t names; /* topics judged */
} fast_scan;

static bs_status fast_visit(void *arg, const bs_kafka_field *f, const bs_kafka_val *v, int event)
{
    fast_scan *x = arg;
    if (event == BS_KAFKA_VISIT_ENTER) {
        x->depth++;
        return BS_OK;
    }
    if (event == BS_KAFKA_VISIT_LEAVE) {
        x->depth--;
        return BS_OK;
    }
    if (x->depth == 0) {
        if (f->type == BS_KT_STRING && !v->null && strcmp(f->name, "TransactionalId") == 0)
            x->denied = true; /* transactional produce: judged on the slow path */
        else if (f->type == BS_KT_INT32 && v->i >= 0 && strcmp(f->name, "ReplicaId") == 0)
            x->replica = true;
        return BS_OK;
    }
    if (x->depth == 1 && f->type == BS_KT_INT32 && v->i >= 0 && strcmp(f->name, "ReplicaId") == 0)
        x->replica = true; /* Fetch v15+: the tagged ReplicaState struct */
    if (x->depth != 1 || x->denied) return BS_OK;
    /* Produce writes, Fetch reads: by name or (Produce v13+, Fetch v13+) by id */
    bs_acl_op op = x->produce ? BS_ACL_WRITE : BS_ACL_READ;
    if (f->type == BS_KT_STRING && !v->null &&
        (strcmp(f->name, "Name") == 0 || strcmp(f->name, "Topic") == 0)) {
        x->names++;
        bs_policy_decision d = decide(x->c, op, BS_ACL_TOPIC, (const char *)v->p, v->n);
        if (!d.allowed) {
            x->denied = true; /* noted on the slow path */
        } else {
            note(x->c, op, BS_ACL_TOPIC, (const char *)v->p, v->n, &d, basis_name(d.basis));
            x->allowed++;
        }
    } else if (f->type == BS_KT_UUID && strcmp(f->name, "TopicId") == 0) {
        char name[256];
        x->names++;
        bs_policy_decision d = {.allowed = false};
        if (bs_kafka_topic_id_lookup(v->p, name, sizeof name))
            d = decide(x->c, op, BS_ACL_TOPIC, name, strlen(name));
        if (!d.allowed) {
            x->denied = true;
        } else {
            note(x->c, op, BS_ACL_TOPIC, name, strlen(name), &d, basis_name(d.basis));
            x->allowed++;
        }
    }
    return BS_OK;
}

/* ---------------------------------------------------------------- Metadata */

static bs_status judge_metadata(aconn *c, const bs_kafka_request_header *h, const uint8_t *frame,
                                bs_kafka_obj *o, bs_wbuf *out, bs_kafka_hook_verdict *verdict)
{
    pending p = {.corr = h->correlation_id, .api = h->api_key, .ver = h->api_version};
    int tk = fidx(o->schema, "Topics");
    const bs_kafka_val *tv = tk >= 0 ? &o->vals[tk] : NULL;
    p.md_all = !tv || tv->count < 0 || (tv->count == 0 && h->api_version == 0);
    int ak = fidx(o->schema, "AllowAutoTopicCreation");
    bool autoc = h->api_version < 4 || (ak >= 0 && o->vals[ak].present && o->vals[ak].i);
    bool changed = false;
    if (!p.md_all && autoc && ak >= 0 && o->vals[ak].present) {
        /* creation by Metadata needs Create, like CreateTopics */
        for (int32_t i = 0; i < tv->count; i++) {
            int nk = fidx(tv->items[i].schema, "Name");
            const bs_kafka_val *nv = nk >= 0 ? &tv->items[i].vals[nk] : NULL;
            if (!nv || nv->null) continue;
            bs_policy_decision d = decide(c, BS_ACL_CREATE, BS_ACL_CLUSTER, "", 0);
            if (!d.allowed) d = decide(c, BS_ACL_CREATE, BS_ACL_TOPIC, (const char *)nv->p, nv->n);
            if (!d.allowed) {
                o->vals[ak].i = 0;
                changed = true;
                break;
            }
        }
    }
    if (changed) {
        BS_GUARD(put_request(out, frame, h, o));
        *verdict = BS_KAFKA_HOOK_REPLACE;
    }
    return pending_push(c, &p);
}

/* Filter a Metadata response for the current principal. */
static bs_status filter_metadata(aconn *c, const pending *p, const bs_kafka_inflight *req,
                                 const uint8_t *frame, size_t len, bs_wbuf *out,
                                 bs_kafka_hook_verdict *verdict)
{
    int hv;
    bs_kafka_response_header rh;
    BS_GUARD(bs_kafka_response_header_version(req->api_key, req->api_version, &hv));
    BS_GUARD(bs_kafka_parse_response_header(frame + 4, len - 4, hv, &rh));
    const bs_kafka_message *m = bs_kafka_message_find(req->api_key, false);
    BS_ENSURE(m, BS_E_UNSUPPORTED);
    bs_kafka_obj *o;
    BS_GUARD(bs_kafka_decode(m, req->api_version, frame + 4 + rh.header_len,
                             len - 4 - rh.header_len, &c->arena, &o));
    int tk = fidx(o->schema, "Topics");
    BS_ENSURE(tk >= 0, BS_E_MALFORMED);
    bs_kafka_val *tv = &o->vals[tk];
    int32_t kept = 0;
    bool changed = false;
    for (int32_t i = 0; i < (tv->count > 0 ? tv->count : 0); i++) {
        bs_kafka_obj *t = &tv->items[i];
        char name[256];
        const uint8_t *id;
        bool known = topic_name(t, name, sizeof name, &id);
        bool ok = known && judge(c, BS_ACL_DESCRIBE, BS_ACL_TOPIC, name, strlen(name));
        if (ok) {
            tv->items[kept++] = *t;
            continue;
        }
        changed = true;
        if (p->md_all) continue; /* omitted */
        /* asked by name: the topic's entry says it is not authorized */
        set_errors(t, E_TOPIC_AUTH);
        int pk = fidx(t->schema, "Partitions");
        if (pk >= 0) t->vals[pk].count = 0;
        int ik = fidx(t->schema, "TopicId");
        if (ik >= 0) t->vals[ik].p = g_zero_uuid;
        set_int(t, "IsInternal", 0);
        set_int(t, "TopicAuthorizedOperations", INT32_MIN);
        tv->items[kept++] = *t;
    }
    if (!changed) return BS_OK;
    tv->count = kept;
    bs_wbuf_put_be32(out, 0);
    bs_wbuf_put(out, frame + 4, rh.header_len);
    BS_GUARD(bs_kafka_encode(m, req->api_version, o, out));
    bs_wbuf_patch_be32(out, 0, (uint32_t)(out->len - 4));
    BS_GUARD(bs_wbuf_status(out));
    *verdict = BS_KAFKA_HOOK_REPLACE;
    return BS_OK;
}

/* ---------------------------------------------------------------- other APIs */

/* What a request of an API names and needs: resources found at field
 * `field` (a string, or an array of strings) inside array `parent` ("" =
 * top level), or a cluster requirement (field NULL). */
typedef struct spec {
    int16_t api;
    const char *parent, *field;
    bs_acl_res res;
    bs_acl_op op;
} spec;

static const spec g_specs[] = {
    {2, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_DESCRIBE},
    {8, "", "GroupId", BS_ACL_GROUP, BS_ACL_READ},
    {8, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_READ},
    {9, "", "GroupId", BS_ACL_GROUP, BS_ACL_DESCRIBE},
    {9, "Groups", "GroupId", BS_ACL_GROUP, BS_ACL_DESCRIBE},
    {9, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_DESCRIBE},
    {11, "", "GroupId", BS_ACL_GROUP, BS_ACL_READ},
    {12, "", "GroupId", BS_ACL_GROUP, BS_ACL_READ},
    {13, "", "GroupId", BS_ACL_GROUP, BS_ACL_READ},
    {14, "", "GroupId", BS_ACL_GROUP, BS_ACL_READ},
    {15, "", "Groups", BS_ACL_GROUP, BS_ACL_DESCRIBE},
    {16, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE},
    {20, "", "TopicNames", BS_ACL_TOPIC, BS_ACL_DELETE},
    {20, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_DELETE},
    {21, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_DELETE},
    {22, "", "TransactionalId", BS_ACL_TRANSACTIONAL_ID, BS_ACL_WRITE},
    {23, "Topics", "Topic", BS_ACL_TOPIC, BS_ACL_DESCRIBE},
    {24, "", "TransactionalId", BS_ACL_TRANSACTIONAL_ID, BS_ACL_WRITE},
    {24, "Transactions", "TransactionalId", BS_ACL_TRANSACTIONAL_ID, BS_ACL_WRITE},
    {24, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_WRITE},
    {25, "", "TransactionalId", BS_ACL_TRANSACTIONAL_ID, BS_ACL_WRITE},
    {25, "", "GroupId", BS_ACL_GROUP, BS_ACL_READ},
    {26, "", "TransactionalId", BS_ACL_TRANSACTIONAL_ID, BS_ACL_WRITE},
    {28, "", "TransactionalId", BS_ACL_TRANSACTIONAL_ID, BS_ACL_WRITE},
    {28, "", "GroupId", BS_ACL_GROUP, BS_ACL_READ},
    {28, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_READ},
    {29, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE},
    {30, "", NULL, BS_ACL_CLUSTER, BS_ACL_ALTER},
    {31, "", NULL, BS_ACL_CLUSTER, BS_ACL_ALTER},
    {34, "", NULL, BS_ACL_CLUSTER, BS_ACL_ALTER},
    {35, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE},
    {37, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_ALTER},
    {42, "", "GroupsNames", BS_ACL_GROUP, BS_ACL_DELETE},
    {43, "", NULL, BS_ACL_CLUSTER, BS_ACL_ALTER},
    {45, "", NULL, BS_ACL_CLUSTER, BS_ACL_ALTER},
    {46, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE},
    {47, "", "GroupId", BS_ACL_GROUP, BS_ACL_DELETE},
    {47, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_READ},
    {48, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE_CONFIGS},
    {49, "", NULL, BS_ACL_CLUSTER, BS_ACL_ALTER_CONFIGS},
    {50, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE},
    {51, "", NULL, BS_ACL_CLUSTER, BS_ACL_ALTER},
    {57, "", NULL, BS_ACL_CLUSTER, BS_ACL_ALTER},
    {60, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE},
    {61, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_READ},
    {65, "", "TransactionalIds", BS_ACL_TRANSACTIONAL_ID, BS_ACL_DESCRIBE},
    {66, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE},
    {68, "", "GroupId", BS_ACL_GROUP, BS_ACL_READ},
    {69, "", "GroupIds", BS_ACL_GROUP, BS_ACL_DESCRIBE},
    {74, "", NULL, BS_ACL_CLUSTER, BS_ACL_DESCRIBE_CONFIGS},
    {75, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_DESCRIBE},
};

typedef struct walk_ctx {
    aconn *c;
    const spec *sp;
    size_t nsp;
    int16_t v;
    bool flex;
    bool all_ok;
} walk_ctx;

typedef struct str_judge {
    walk_ctx *w;
    const spec *s;
} str_judge;

static bs_status judge_str(void *arg, const uint8_t *p, size_t n)
{
    str_judge *j = arg;
    if (!judge(j->w->c, j->s->op, j->s->res, (const char *)p, n)) j->w->all_ok = false;
    return BS_OK;
}

/* Walk a decoded request, judging every resource the specs point at. */
static bs_status walk(walk_ctx *w, const bs_kafka_obj *o, const char *parent, int depth)
{
    BS_ENSURE(depth < BS_KAFKA_MAX_DEPTH, BS_E_MALFORMED);
    for (size_t i = 0; i < o->schema->nfields; i++) {
        const bs_kafka_field *f = &o->schema->fields[i];
        const bs_kafka_val *v = &o->vals[i];
        if (!v->present) continue;
        for (size_t k = 0; k < w->nsp; k++) {
            const spec *s = &w->sp[k];
            if (!s->field || strcmp(s->field, f->name) != 0 || strcmp(s->parent, parent) != 0)
                continue;
            if (f->type == BS_KT_STRING && !v->null) {
                if (s->res == BS_ACL_TOPIC && w->sp->api == 19) {
                    if (!judge_create(w->c, (const char *)v->p, v->n)) w->all_ok = false;
                } else if (!judge(w->c, s->op, s->res, (const char *)v->p, v->n)) {
                    w->all_ok = false;
                }
            } else if (f->type == BS_KT_ARRAY && f->elem == BS_KT_STRING && v->count > 0) {
                str_judge j = {w, s};
                BS_GUARD(each_string(v, w->flex, judge_str, &j));
            }
        }
        if (f->type == BS_KT_ARRAY && f->elem == BS_KT_STRUCT)
            for (int32_t e = 0; e < v->count; e++)
                BS_GUARD(walk(w, &v->items[e], f->name, depth + 1));
        else if (f->type == BS_KT_STRUCT && v->items)
            BS_GUARD(walk(w, v->items, parent, depth + 1));
    }
    return BS_OK;
}

/* Config resources: topic (2) or broker/broker-logger (4, 8) = the cluster. */
static bool judge_configs(aconn *c, const bs_kafka_obj *o, bs_acl_op op)
{
    int rk = fidx(o->schema, "Resources");
    if (rk < 0) return true;
    bool ok = true;
    for (int32_t i = 0; i < o->vals[rk].count; i++) {
        const bs_kafka_obj *r = &o->vals[rk].items[i];
        int tk = fidx(r->schema, "ResourceType"), nk = fidx(r->schema, "ResourceName");
        if (tk < 0 || nk < 0) continue;
        if (r->vals[tk].i == 2)
            ok &= judge(c, op, BS_ACL_TOPIC, (const char *)r->vals[nk].p, r->vals[nk].n);
        else
            ok &= judge(c, op, BS_ACL_CLUSTER, "", 0);
    }
    return ok;
}

/* FindCoordinator: Describe on the group (KeyType 0) or transactional id (1). */
static bool judge_coordinator(aconn *c, const bs_kafka_obj *o, bool flex)
{
    int tk = fidx(o->schema, "KeyType");
    bs_acl_res res = tk >= 0 && o->vals[tk].present && o->vals[tk].i == 1
                         ? BS_ACL_TRANSACTIONAL_ID
                         : BS_ACL_GROUP;
    spec s = {10, "", "Key", res, BS_ACL_DESCRIBE};
    walk_ctx w = {.c = c, .sp = &s, .nsp = 1, .flex = flex, .all_ok = true};
    int kk = fidx(o->schema, "Key");
    if (kk >= 0 && o->vals[kk].present && !o->vals[kk].null)
        w.all_ok &= judge(c, BS_ACL_DESCRIBE, res, (const char *)o->vals[kk].p, o->vals[kk].n);
    int ck = fidx(o->schema, "CoordinatorKeys");
    if (ck >= 0 && o->vals[ck].present && o->vals[ck].count > 0) {
        str_judge j = {&w, &s};
        (void)!each_string(&o->vals[ck], flex, judge_str, &j);
    }
    return w.all_ok;
}

/* ---------------------------------------------------------------- hook */

static bool wants_request(void *arg, int16_t api, int16_t ver)
{
    (void)arg;
    (void)ver;
    (void)api;
    return bs_policy_current() != NULL;
}

static bool wants_response(void *arg, int16_t api, int16_t ver)
{
    (void)ver;
    aconn *c = arg;
    for (size_t i = 0; i < c->qn; i++)
        if (c->q[(c->qhead + i) % c->qcap].api == api) return true;
    return false;
}

/* Start the audit event of a request. */
static void ev_begin(aconn *c, const bs_kafka_request_header *h)
{
    c->first_code = 0;
    c->counted = 0;
    c->ev_on = c->a->log != NULL;
    if (!c->ev_on) return;
    bs_audit_event_reset(&c->ev);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->ev.type = BS_AUDIT_EV_AUTHZ;
    c->ev.time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    c->ev.conn_id = c->conn_id;
    c->ev.listener = c->listener;
    c->ev.principal = c->id->cert_subject[0] ? c->id->cert_subject : NULL;
    c->ev.identity = c->id;
    c->ev.source_ip = c->host;
    c->ev.api_key = h->api_key;
    c->ev.api_version = h->api_version;
    c->ev.correlation_id = h->correlation_id;
    c->ev.latency_us = -1;
}

/* Hand the request's decisions to the audit log. */
static void ev_end(aconn *c)
{
    if (!c->ev_on || c->ev.n_res == 0) return;
    bs_status st = bs_audit_log_record(c->a->log, &c->ev);
    if (st != BS_OK)
        BS_LOG_WARNF(MOD, "listener %s: authorization audit event not recorded (%s)", c->listener,
                     bs_status_name(st));
}

/* bs_kafka_hook.on_request. */
static bs_status on_request(void *arg, const bs_kafka_request_header *h, const uint8_t *frame,
                            size_t len, bs_wbuf *out, bs_kafka_hook_verdict *verdict)
{
    aconn *c = arg;
    *verdict = BS_KAFKA_HOOK_PASS;
    c->pol = bs_policy_current();
    if (!c->pol) return BS_OK;
    int16_t api = h->api_key;
    if (api == BS_KAFKA_API_VERSIONS || api == 17 || api == 36 || api == 71 || api == 72)
        return BS_OK;
    c->principal = bs_conn_identity_principal(c->id);
    ev_begin(c, h);
    bs_kafka_arena_reset(&c->arena);
    const bs_kafka_message *m = bs_kafka_message_find(api, true);
    if ((api == BS_KAFKA_PRODUCE || api == BS_KAFKA_FETCH) && m && h->header_len &&
        h->header_len + 4 <= len) {
        fast_scan x = {.c = c, .produce = api == BS_KAFKA_PRODUCE};
        bs_status fs = bs_kafka_scan(m, h->api_version, frame + 4 + h->header_len,
                                     len - 4 - h->header_len, fast_visit, &x);
        if (fs == BS_OK && !x.denied && !x.replica) {
            ev_end(c);
            return BS_OK; /* every topic allowed: forwarded as it is */
        }
        /* judged again below with the tree: one audit entry per decision, and
         * the allowed decisions already counted are not counted twice */
        ev_begin(c, h);
        c->counted = x.allowed;
    }
    if (!m) {
        /* No schema in this build: judged when the API needs only a cluster
         * right (no names to read); a denial cannot be answered in the API's
         * own format, so it closes the connection (logged). */
        bool ok = false, judged = false;
        for (size_t i = 0; i < BS_ARRAY_LEN(g_specs); i++) {
            if (g_specs[i].api != api) continue;
            judged = !g_specs[i].field;
            if (!judged) break;
            ok = judge(c, g_specs[i].op, g_specs[i].res, "", 0);
        }
        if (!judged) deny_unjudged(c, api);
        ev_end(c);
        if (judged && ok) return BS_OK;
        BS_LOG_WARNF(MOD, "listener %s: %s v%d from %s (%s) denied and without a schema to "
                     "answer it: closing the connection",
                     c->listener, bs_kafka_api_name(api), h->api_version, c->host, c->principal);
        return BS_E_UNSUPPORTED;
    }
    bs_kafka_obj *o = NULL;
    bs_status st = BS_E_UNSUPPORTED;
    if (h->header_len && h->header_len + 4 <= len)
        st = bs_kafka_decode(m, h->api_version, frame + 4 + h->header_len, len - 4 - h->header_len,
                             &c->arena, &o);
    if (st != BS_OK) {
        /* A request the sidecar cannot read cannot be judged: refused. */
        deny_unjudged(c, api);
        ev_end(c);
        BS_LOG_WARNF(MOD, "listener %s: %s v%d from %s (%s) not decodable (%s): refused while "
                     "a policy is on",
                     c->listener, bs_kafka_api_name(api), h->api_version, c->host, c->principal,
                     bs_status_name(st));
        /* without a readable body no error answer can be built: close */
        return BS_E_MALFORMED;
    }
    bool flex = h->api_version >= m->flex_min;
    if (api == BS_KAFKA_PRODUCE || api == BS_KAFKA_FETCH) {
        st = judge_data(c, h, frame, o, out, verdict);
        ev_end(c);
        return st;
    }
    if (api == BS_KAFKA_METADATA) {
        st = judge_metadata(c, h, frame, o, out, verdict);
        ev_end(c);
        return st;
    }
    bool ok = true, judged = false;
    if (api == 10) {
        ok = judge_coordinator(c, o, flex);
        judged = true;
    } else if (api == 32 || api == 33 || api == 44) {
        ok = judge_configs(c, o, api == 32 ? BS_ACL_DESCRIBE_CONFIGS : BS_ACL_ALTER_CONFIGS);
        judged = true;
    } else if (api == 19) {
        spec s = {19, "Topics", "Name", BS_ACL_TOPIC, BS_ACL_CREATE};
        walk_ctx w = {.c = c, .sp = &s, .nsp = 1, .v = h->api_version, .flex = flex, .all_ok = true};
        st = walk(&w, o, "", 0);
        ok = w.all_ok;
        judged = true;
    } else if (api == 22) {
        int k = fidx(o->schema, "TransactionalId");
        if (k >= 0 && o->vals[k].present && !o->vals[k].null) {
            ok = judge(c, BS_ACL_WRITE, BS_ACL_TRANSACTIONAL_ID, (const char *)o->vals[k].p,
                       o->vals[k].n);
        } else {
            /* idempotent producer: IdempotentWrite on the cluster or Write on any topic */
            bs_policy_decision d = decide(c, BS_ACL_IDEMPOTENT_WRITE, BS_ACL_CLUSTER, "", 0);
            const char *basis = basis_name(d.basis);
            if (!d.allowed &&
                bs_policy_allows_any(c->pol, c->principal, c->host, BS_ACL_WRITE, BS_ACL_TOPIC)) {
                d.allowed = true;
                d.rule = -1;
                basis = "writeOnAnyTopic";
            }
            note(c, BS_ACL_IDEMPOTENT_WRITE, BS_ACL_CLUSTER, "", 0, &d, basis);
            ok = d.allowed;
        }
        judged = true;
    } else {
        size_t first = BS_ARRAY_LEN(g_specs), nsp = 0;
        for (size_t i = 0; i < BS_ARRAY_LEN(g_specs); i++)
            if (g_specs[i].api == api) {
                if (first == BS_ARRAY_LEN(g_specs)) first = i;
                nsp++;
            }
        if (nsp) {
            judged = true;
            walk_ctx w = {.c = c, .sp = &g_specs[first], .nsp = nsp, .v = h->api_version,
                          .flex = flex, .all_ok = true};
            for (size_t i = 0; i < nsp; i++)
                if (!w.sp[i].field) w.all_ok &= judge(c, w.sp[i].op, w.sp[i].res, "", 0);
            st = walk(&w, o, "", 0);
            ok = w.all_ok;
        }
    }
    if (!judged) {
        deny_unjudged(c, api);
        ok = false;
    }
    if (st == BS_OK && !ok) {
        *verdict = BS_KAFKA_HOOK_ANSWER;
        st = error_answer(c, h, o, c->first_code ? c->first_code : E_CLUSTER_AUTH, out);
    }
    ev_end(c);
    if (st != BS_OK)
        BS_LOG_WARNF(MOD, "listener %s: cannot judge %s v%d from %s (%s)", c->listener,
                     bs_kafka_api_name(api), h->api_version, c->host, bs_status_name(st));
    return st;
}

/* bs_kafka_hook.on_response: complete split answers, filter Metadata. */
static bs_status on_response(void *arg, const bs_kafka_inflight *req, const uint8_t *frame,
                             size_t len, bs_wbuf *out, bs_kafka_hook_verdict *verdict)
{
    aconn *c = arg;
    *verdict = BS_KAFKA_HOOK_PASS;
    /* Responses come in request order. An entry older than the request this
     * response answers never got a broker response (a later hook answered
     * that request itself): drop it. The head may also be for a later request.
     * A head that matches is this response's: a client may reuse a
     * correlation id, and a later entry with the same id is not this one. */
    bool head_matches = c->qn && c->q[c->qhead].corr == req->correlation_id;
    for (size_t k = 1; !head_matches && k < c->qn; k++) {
        if (c->q[(c->qhead + k) % c->qcap].corr != req->correlation_id) continue;
        while (k--) {
            pending_free(&c->q[c->qhead]);
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qn--;
        }
        break;
    }
    if (!c->qn || c->q[c->qhead].corr != req->correlation_id) return BS_OK;
    pending p = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qn--;
    bs_kafka_arena_reset(&c->arena);
    bs_status st;
    c->pol = bs_policy_current();
    c->principal = bs_conn_identity_principal(c->id);
    if (p.api == BS_KAFKA_METADATA) {
        if (!c->pol) {
            pending_free(&p);
            return BS_OK;
        }
        bs_kafka_request_header h = {.api_key = req->api_key,
                                     .api_version = req->api_version,
                                     .correlation_id = req->correlation_id};
        ev_begin(c, &h);
        st = filter_metadata(c, &p, req, frame, len, out, verdict);
        ev_end(c);
    } else {
        int hv;
        bs_kafka_response_header rh;
        const bs_kafka_message *m = bs_kafka_message_find(req->api_key, false);
        bs_kafka_obj *o;
        st = bs_kafka_response_header_version(req->api_key, req->api_version, &hv);
        if (st == BS_OK) st = bs_kafka_parse_response_header(frame + 4, len - 4, hv, &rh);
        if (st == BS_OK && !m) st = BS_E_UNSUPPORTED;
        if (st == BS_OK)
            st = bs_kafka_decode(m, req->api_version, frame + 4 + rh.header_len,
                                 len - 4 - rh.header_len, &c->arena, &o);
        bool produce = req->api_key == BS_KAFKA_PRODUCE;
        if (st == BS_OK)
            st = append_denied(c, o, req->api_version, "Responses",
                               produce ? "PartitionResponses" : "Partitions",
                               produce ? "Index" : "PartitionIndex", p.topics, p.n);
        if (st == BS_OK) {
            bs_wbuf_put_be32(out, 0);
            bs_wbuf_put(out, frame + 4, rh.header_len);
            st = bs_kafka_encode(m, req->api_version, o, out);
            bs_wbuf_patch_be32(out, 0, (uint32_t)(out->len - 4));
            if (st == BS_OK) st = bs_wbuf_status(out);
        }
        if (st == BS_OK) *verdict = BS_KAFKA_HOOK_REPLACE;
    }
    if (st != BS_OK)
        BS_LOG_WARNF(MOD, "listener %s: cannot complete the %s v%d response for %s (%s); closing",
                     c->listener, bs_kafka_api_name(req->api_key), req->api_version, c->host,
                     bs_status_name(st));
    pending_free(&p);
    return st;
}

/* bs_kafka_hook.conn_open. */
static bs_status conn_open(void *arg, const bs_kafka_hook_conn *hc, void **out)
{
    *out = NULL;
    aconn *c = calloc(1, sizeof *c);
    BS_ENSURE(c, BS_E_NOMEM);
    c->a = arg;
    c->id = hc->identity;
    c->conn_id = hc->conn_id;
    snprintf(c->listener, sizeof c->listener, "%s", hc->listener ? hc->listener : "?");
    /* peer "ip:port" or "[v6]:port" -> ip */
    const char *peer = hc->peer ? hc->peer : "";
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    if (n >= 2 && peer[0] == '[' && peer[n - 1] == ']') {
        peer++;
        n -= 2;
    }
    if (n >= sizeof c->host) n = sizeof c->host - 1;
    memcpy(c->host, peer, n);
    c->host[n] = 0;
    bs_kafka_arena_init(&c->arena, DECODE_LIMIT);
    bs_audit_event_init(&c->ev);
    if (!c->id) {
        bs_kafka_arena_free(&c->arena);
        free(c);
        return BS_E_STATE;
    }
    *out = c;
    return BS_OK;
}

/* bs_kafka_hook.conn_close. */
static void conn_close(void *arg)
{
    aconn *c = arg;
    if (!c) return;
    for (size_t i = 0; i < c->qn; i++)
        pending_free(&c->q[(c->qhead + i) % c->qcap]);
    free(c->q);
    bs_kafka_arena_free(&c->arena);
    bs_audit_event_free(&c->ev);
    free(c);
}

/* See authz.h. */
bs_status bs_authz_new(bs_audit_log *log, bs_authz **out)
{
    *out = NULL;
    bs_authz *a = calloc(1, sizeof *a);
    BS_ENSURE(a, BS_E_NOMEM);
    a->log = log;
    a->hook = (bs_kafka_hook){.name = "authorization",
                              .wants_request = wants_request,
                              .on_request = on_request,
                              .wants_response = wants_response,
                              .on_response = on_response,
                              .arg = a,
                              .conn_open = conn_open,
                              .conn_close = conn_close};
    a->allowed = bs_metrics_counter("brokerside_authz_decisions_total",
                                    "Authorization decisions of the sidecar's policy",
                                    "decision=\"allow\"");
    a->denied = bs_metrics_counter("brokerside_authz_decisions_total",
                                   "Authorization decisions of the sidecar's policy",
                                   "decision=\"deny\"");
    *out = a;
    return BS_OK;
}

/* See authz.h. */
const bs_kafka_hook *bs_authz_hook(bs_authz *a)
{
    return &a->hook;
}

/* See authz.h. */
void bs_authz_free(bs_authz *a)
{
    free(a);
}
