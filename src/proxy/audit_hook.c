/*
 * audit_hook.c - per-request audit events from the Kafka session (see
 * audit_hook.h).
 *
 * Each connection keeps a FIFO of events waiting for their response (Kafka
 * answers in order, and the session only reports requests that expect an
 * answer as such). Request bodies of management APIs (and the small data
 * APIs) are decoded into a tree with the schema codec and walked by field
 * name: the Kafka schemas name the same things the same way across APIs
 * (Topics[].Name, GroupId, TransactionalId, ResourceType/ResourceName,
 * Configs[].Name, PartitionIndex, ErrorCode), so one walker covers the whole
 * table, including versions added later. Produce requests and Fetch
 * responses are summarised with the allocation-free scan helpers instead.
 */
#include "brokerside/audit_hook.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/cursor.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_summary.h"
#include "brokerside/kafka_answer.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"

#define MOD "audit"
/* Memory one decode may use (management bodies are small; a bigger tree
 * means a hostile or unusual request, which is recorded undecoded). */
#define DECODE_LIMIT (4u << 20)
/* Client software name/version kept per connection (Kafka caps them too). */
#define SW_MAX 128
/* Requests awaiting their response per connection (the session's own bound). */
#define PENDING_MAX 1024u

struct bs_audit_hook {
    bs_audit_log *log;
    bs_audit_data_mode mode;
    bs_kafka_observer obs;
    bs_kafka_hook gate; /* refuses requests while audit events cannot be stored */
    _Atomic uint64_t recorded, failures, undecoded, refused;
    bs_metric *m_refused;
};

typedef struct pending {
    bs_audit_event ev;
    bool skip; /* not recorded (a data API with data events off): keeps the FIFO aligned */
} pending;

typedef struct conn {
    bs_audit_hook *h;
    uint64_t id;
    int32_t broker_id;
    char listener[128];
    char *principal; /* NULL = anonymous */
    const struct bs_conn_identity *identity; /* the session's, valid until close; may be NULL */
    char ip[64];
    uint16_t port;
    char sw_name[SW_MAX], sw_version[SW_MAX];
    size_t sw_name_len, sw_version_len;
    bool has_sw;
    pending *fifo;
    uint32_t cap, head, count;
    bs_audit_event scratch; /* requests recorded at once (acks=0, FIFO full) */
    /* Topics of the next Produce request / Fetch response as the session
     * summarised them (bs_kafka_observer.on_topic): saves a second scan. */
    bs_audit_event stage;
    bool staged_req, staged_resp;
    bs_kafka_arena arena;
} conn;

/* Wall clock in µs since the epoch. */
static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- classification */

/* The data_events mode now (bs_audit_hook_set_mode may change it from the
 * main thread while workers read it). */
static bs_audit_data_mode hook_mode(const bs_audit_hook *h)
{
    return __atomic_load_n(&h->mode, __ATOMIC_RELAXED);
}

/* Is `api` a data API (by the audit table; unknown APIs are management)? */
static bool is_data(int16_t api)
{
    const bs_audit_api_class *c = bs_audit_api_lookup(api);
    return c && c->category == BS_AUDIT_DATA;
}

/* bs_kafka_observer.wants_request: management requests and, unless data
 * events are off, the small data requests are assembled whole. Produce is
 * never held: the session copies it for its metrics and shows it whole. */
static bool wants_request(void *arg, int16_t api, int16_t ver)
{
    (void)ver;
    const bs_audit_hook *h = arg;
    if (api == BS_KAFKA_API_VERSIONS) return true; /* client software, tiny */
    if (!is_data(api)) return true;
    return hook_mode(h) != BS_AUDIT_DATA_OFF && api != BS_KAFKA_PRODUCE;
}

/* bs_kafka_observer.wants_response: like requests, but Fetch responses are
 * never held (they are the big frames; the session tees them). */
static bool wants_response(void *arg, int16_t api, int16_t ver)
{
    (void)ver;
    const bs_audit_hook *h = arg;
    if (!is_data(api)) return true;
    return hook_mode(h) != BS_AUDIT_DATA_OFF && api != BS_KAFKA_FETCH && api != BS_KAFKA_API_VERSIONS &&
           api != BS_KAFKA_METADATA;
}

/* ---------------------------------------------------------------- names */

/* ACL enums (org.apache.kafka.common.acl / resource), for readable attributes:
 * the resource type name, NULL if out of range. */
static const char *acl_resource_type(int64_t v)
{
    static const char *const n[] = {
        "UNKNOWN",          "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID",
        "DELEGATION_TOKEN", "USER"};
    return v >= 0 && v < (int64_t)BS_ARRAY_LEN(n) ? n[v] : NULL;
}
/* ACL operation name, NULL if out of range. */
static const char *acl_operation(int64_t v)
{
    static const char *const n[] = {"UNKNOWN",
                                    "ANY",
                                    "ALL",
                                    "READ",
                                    "WRITE",
                                    "CREATE",
                                    "DELETE",
                                    "ALTER",
                                    "DESCRIBE",
                                    "CLUSTER_ACTION",
                                    "DESCRIBE_CONFIGS",
                                    "ALTER_CONFIGS",
                                    "IDEMPOTENT_WRITE",
                                    "CREATE_TOKENS",
                                    "DESCRIBE_TOKENS"};
    return v >= 0 && v < (int64_t)BS_ARRAY_LEN(n) ? n[v] : NULL;
}
/* ACL permission type name, NULL if out of range. */
static const char *acl_permission(int64_t v)
{
    static const char *const n[] = {"UNKNOWN", "ANY", "DENY", "ALLOW"};
    return v >= 0 && v < (int64_t)BS_ARRAY_LEN(n) ? n[v] : NULL;
}
/* ACL resource pattern type name, NULL if out of range. */
static const char *acl_pattern(int64_t v)
{
    static const char *const n[] = {"UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"};
    return v >= 0 && v < (int64_t)BS_ARRAY_LEN(n) ? n[v] : NULL;
}

/* Config resource types (DescribeConfigs & co.) to audit resource types. */
static bs_audit_res_type config_res_type(int64_t v)
{
    switch (v) {
    case 2:
        return BS_AUDIT_RES_TOPIC;
    case 4:
        return BS_AUDIT_RES_BROKER;
    case 8:
        return BS_AUDIT_RES_BROKER_LOGGER;
    case 16:
        return BS_AUDIT_RES_CLIENT_METRICS;
    default:
        return BS_AUDIT_RES_OTHER;
    }
}

/* DescribeAcls, CreateAcls, DeleteAcls. */
static bool is_acl_api(int16_t api)
{
    return api == 29 || api == 30 || api == 31;
}
/* DescribeConfigs, AlterConfigs, IncrementalAlterConfigs. */
static bool is_config_api(int16_t api)
{
    return api == 32 || api == 33 || api == 44;
}

/* ---------------------------------------------------------------- tree walk */

typedef struct walk {
    bs_audit_event *ev;
    int16_t api, version;
    bool flexible;
    bool response;
    bool add_missing; /* response: add resources the request did not name */
    size_t acl_seen;  /* ACL resources met so far (index-matched in responses) */
} walk;

/* The value of field `name` in `o` if present at this version, else NULL. */
static const bs_kafka_val *val(const bs_kafka_obj *o, const char *name)
{
    int i = bs_kafka_struct_field(o->schema, name);
    if (i < 0 || !o->vals[i].present) return NULL;
    return &o->vals[i];
}

/* A present, non-null string field. */
static const bs_kafka_val *str(const bs_kafka_obj *o, const char *name)
{
    int i = bs_kafka_struct_field(o->schema, name);
    if (i < 0 || o->schema->fields[i].type != BS_KT_STRING) return NULL;
    const bs_kafka_val *v = &o->vals[i];
    return v->present && !v->null ? v : NULL;
}

/* An integer field (any width), or `dflt`. */
static int64_t intval(const bs_kafka_obj *o, const char *name, int64_t dflt, bool *found)
{
    int i = bs_kafka_struct_field(o->schema, name);
    bool ok = i >= 0 && o->vals[i].present && o->schema->fields[i].type >= BS_KT_INT8 &&
              o->schema->fields[i].type <= BS_KT_INT64;
    if (found) *found = ok;
    return ok ? o->vals[i].i : dflt;
}

/* Index of the resource (type, name) in the event, or -1. */
static long find_res(const bs_audit_event *ev, bs_audit_res_type t, const char *s, size_t n)
{
    for (size_t i = 0; i < ev->n_res; i++) {
        const bs_audit_resource *r = &ev->res[i];
        if (r->type == t && r->name_len == n && memcmp(ev->arena + r->name_off, s, n) == 0)
            return (long)i;
    }
    return -1;
}

/* The resource (type, name) for this walk: added in requests, looked up
 * (and added when allowed) in responses. -1 when there is none or no room
 * (the event is then marked truncated by the adder). */
static long resource(walk *w, bs_audit_res_type t, const char *s, size_t n)
{
    long i = find_res(w->ev, t, s, n);
    if (i >= 0 && w->response) return i;
    if (w->response && !w->add_missing) return -1;
    size_t idx;
    if (bs_audit_event_add_resource(w->ev, t, s, n, &idx) != BS_OK) return -1;
    return (long)idx;
}

/* Add attribute key=val to resource `r` (request side only). */
static void attr(walk *w, long r, const char *k, const char *v, size_t vlen)
{
    if (r < 0 || w->response || !v) return;
    /* BS_E_FULL marks the event truncated: nothing more to do */
    (void)!bs_audit_event_add_attr(w->ev, (size_t)r, k, strlen(k), v, vlen);
}

/* Attribute from an integer, with an optional enum name. */
static void attr_int(walk *w, long r, const char *k, int64_t v, const char *name)
{
    char b[32];
    if (name) {
        attr(w, r, k, name, strlen(name));
        return;
    }
    int n = snprintf(b, sizeof b, "%" PRId64, v);
    attr(w, r, k, b, (size_t)n);
}

/* Read element i of a primitive string array's raw bytes: `c` advances. */
static bs_status next_string(walk *w, bs_cursor *c, const uint8_t **p, size_t *n, bool *null)
{
    *null = false;
    if (w->flexible) {
        uint32_t l;
        BS_GUARD(bs_read_uvarint(c, &l));
        if (l == 0) {
            *null = true;
            *n = 0;
            return BS_OK;
        }
        *n = l - 1;
    } else {
        int16_t l;
        BS_GUARD(bs_read_i16(c, &l));
        if (l < 0) {
            *null = true;
            *n = 0;
            return BS_OK;
        }
        *n = (size_t)l;
    }
    return bs_read_bytes(c, *n, p);
}

/* A primitive array of strings named `f` (request side): groups, topics,
 * transactional ids, or config keys of resource `cur`. */
static void string_array(walk *w, const bs_kafka_field *f, const bs_kafka_val *v, long cur)
{
    if (w->response || v->count <= 0) return;
    int kind; /* 0 group, 1 topic, 2 txn, 3 config key */
    if (!strcmp(f->name, "Groups") || !strcmp(f->name, "GroupsNames") ||
        !strcmp(f->name, "GroupIds") || !strcmp(f->name, "CoordinatorKeys"))
        kind = 0;
    else if (!strcmp(f->name, "TopicNames") || !strcmp(f->name, "Topics"))
        kind = 1;
    else if (!strcmp(f->name, "TransactionalIds"))
        kind = 2;
    else if (!strcmp(f->name, "ConfigurationKeys"))
        kind = 3;
    else
        return;
    bs_cursor c;
    bs_cursor_init(&c, v->p, v->n);
    for (int32_t i = 0; i < v->count; i++) {
        const uint8_t *p;
        size_t n;
        bool null;
        if (next_string(w, &c, &p, &n, &null) != BS_OK) return; /* the codec validated it */
        if (null) continue;
        size_t idx;
        bs_status st = BS_OK;
        if (kind == 3) {
            if (cur >= 0)
                st = bs_audit_event_add_config_key(w->ev, (size_t)cur, (const char *)p, n);
        } else {
            static const bs_audit_res_type t[] = {BS_AUDIT_RES_GROUP, BS_AUDIT_RES_TOPIC,
                                                  BS_AUDIT_RES_TRANSACTIONAL_ID};
            st = bs_audit_event_add_resource(w->ev, t[kind], (const char *)p, n, &idx);
        }
        if (st != BS_OK) return; /* full: the event says truncated */
    }
}

/* A primitive int32 array of partitions (request side). */
static void partition_array(walk *w, const bs_kafka_val *v, long cur)
{
    if (w->response || cur < 0 || v->count <= 0 || v->n < (size_t)v->count * 4) return;
    for (int32_t i = 0; i < v->count; i++) {
        const uint8_t *p = v->p + (size_t)i * 4;
        int32_t part = (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                                 ((uint32_t)p[2] << 8) | p[3]);
        if (bs_audit_event_add_partition(w->ev, (size_t)cur, part) != BS_OK) return;
    }
}

/* Replica list of a reassignment target as "1,2,3" (null: "cancel"). */
static void replicas_attr(walk *w, long cur, int32_t part, const bs_kafka_val *v)
{
    char key[40], buf[512];
    snprintf(key, sizeof key, "replicas[%" PRId32 "]", part);
    if (v->count < 0) {
        attr(w, cur, key, "cancel", 6);
        return;
    }
    size_t o = 0;
    for (int32_t i = 0; i < v->count && (size_t)(i + 1) * 4 <= v->n && o < sizeof buf - 16; i++) {
        const uint8_t *p = v->p + (size_t)i * 4;
        int32_t r = (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                              ((uint32_t)p[2] << 8) | p[3]);
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%" PRId32, i ? "," : "", r);
    }
    attr(w, cur, key, buf, o);
}

/* Is `a` the name of an array whose elements are topics (named by `Name`)? */
static bool topic_array_name(const char *a)
{
    return a && (!strcmp(a, "Topics") || !strcmp(a, "Responses") || !strcmp(a, "Results") ||
                 !strcmp(a, "TopicData") || !strcmp(a, "TopicPartitions") || !strcmp(a, "Topic") ||
                 !strcmp(a, "ReplicaElectionResults") || !strcmp(a, "V3AndBelowTopics") ||
                 !strcmp(a, "ResultsByTopicV3AndBelow"));
}

/* Which resource does struct `o` (an element of array `arr`, or the body
 * when arr is NULL) name? -1 if none. */
static long struct_resource(walk *w, const bs_kafka_obj *o, const char *arr)
{
    const bs_kafka_val *v;
    bool f1, f2;
    if (is_acl_api(w->api) && val(o, "Operation")) {
        if (w->response) return -1;
        const bs_kafka_val *name = str(o, "ResourceName");
        if (!name) name = str(o, "ResourceNameFilter");
        size_t idx;
        if (bs_audit_event_add_resource(w->ev, BS_AUDIT_RES_ACL, name ? (const char *)name->p : "",
                                        name ? name->n : 0, &idx) != BS_OK)
            return -1;
        long r = (long)idx;
        int64_t t = intval(o, "ResourceType", -1, &f1);
        if (!f1) t = intval(o, "ResourceTypeFilter", -1, &f1);
        if (f1) attr_int(w, r, "resourceType", t, acl_resource_type(t));
        if (name) attr(w, r, "resourceName", (const char *)name->p, name->n);
        int64_t pt = intval(o, "ResourcePatternType", -1, &f1);
        if (!f1) pt = intval(o, "PatternTypeFilter", -1, &f1);
        if (f1) attr_int(w, r, "patternType", pt, acl_pattern(pt));
        const char *sk[][2] = {{"Principal", "principal"},
                               {"PrincipalFilter", "principal"},
                               {"Host", "host"},
                               {"HostFilter", "host"}};
        for (size_t i = 0; i < BS_ARRAY_LEN(sk); i++)
            if ((v = str(o, sk[i][0]))) attr(w, r, sk[i][1], (const char *)v->p, v->n);
        int64_t op = intval(o, "Operation", -1, &f1);
        if (f1) attr_int(w, r, "operation", op, acl_operation(op));
        int64_t pm = intval(o, "PermissionType", -1, &f2);
        if (f2) attr_int(w, r, "permissionType", pm, acl_permission(pm));
        return r;
    }
    if (is_config_api(w->api) && val(o, "ResourceType") && (v = str(o, "ResourceName"))) {
        int64_t t = intval(o, "ResourceType", -1, NULL);
        return resource(w, config_res_type(t), (const char *)v->p, v->n);
    }
    if ((v = str(o, "GroupId"))) return resource(w, BS_AUDIT_RES_GROUP, (const char *)v->p, v->n);
    if ((v = str(o, "TransactionalId")) || (v = str(o, "V3AndBelowTransactionalId")))
        return resource(w, BS_AUDIT_RES_TRANSACTIONAL_ID, (const char *)v->p, v->n);
    if (!arr && w->api == BS_KAFKA_FIND_COORDINATOR && (v = str(o, "Key"))) {
        /* KeyType is absent in v0 (groups only) */
        int64_t kt = intval(o, "KeyType", 0, NULL);
        return resource(w, kt == 1 ? BS_AUDIT_RES_TRANSACTIONAL_ID : BS_AUDIT_RES_GROUP,
                        (const char *)v->p, v->n);
    }
    if ((v = str(o, "Topic")) || (v = str(o, "TopicName")) ||
        (topic_array_name(arr) && (v = str(o, "Name"))))
        return resource(w, BS_AUDIT_RES_TOPIC, (const char *)v->p, v->n);
    if (topic_array_name(arr) && (v = val(o, "TopicId")) && v->p) {
        static const char hx[] = "0123456789abcdef";
        char id[33];
        for (int i = 0; i < 16; i++) {
            id[2 * i] = hx[v->p[i] >> 4];
            id[2 * i + 1] = hx[v->p[i] & 15];
        }
        return resource(w, BS_AUDIT_RES_TOPIC, id, 32);
    }
    return -1;
}

/* Walk struct `o` (element of array `arr`, or the body: arr NULL) with
 * `cur` the enclosing resource. */
static void walk_obj(walk *w, const bs_kafka_obj *o, const char *arr, long cur, int depth)
{
    if (depth > BS_KAFKA_MAX_DEPTH) return;
    long own = struct_resource(w, o, arr);
    bool found;
    int64_t part = -1;
    bool is_part = false;
    if (own < 0 && cur >= 0) {
        static const char *const pn[] = {"PartitionIndex", "Partition", "Index", "PartitionId"};
        for (size_t i = 0; i < BS_ARRAY_LEN(pn) && !is_part; i++) {
            part = intval(o, pn[i], -1, &found);
            is_part = found && o->schema->fields[bs_kafka_struct_field(o->schema, pn[i])].type ==
                                   BS_KT_INT32;
        }
        if (is_part && !w->response)
            (void)!bs_audit_event_add_partition(w->ev, (size_t)cur, (int32_t)part);
    }
    int64_t err = intval(o, "ErrorCode", 0, &found);
    if (found && w->response) {
        if (own >= 0)
            (void)!bs_audit_event_set_resource_error(w->ev, (size_t)own, (int16_t)err);
        else if (is_part &&
                 bs_audit_event_set_partition_error(w->ev, (size_t)cur, (int32_t)part,
                                                    (int16_t)err) == BS_E_NOT_FOUND &&
                 err != 0 &&
                 bs_audit_event_add_partition(w->ev, (size_t)cur, (int32_t)part) == BS_OK)
            /* A failed partition the request summary did not list (Produce
             * counts topics, not partitions): name it so its error is kept. */
            (void)!bs_audit_event_set_partition_error(w->ev, (size_t)cur, (int32_t)part,
                                                      (int16_t)err);
        else if (depth == 0)
            w->ev->error_code = (int16_t)err;
        else if (is_acl_api(w->api) && arr &&
                 (!strcmp(arr, "Results") || !strcmp(arr, "FilterResults"))) {
            /* ACL results answer the creations/filters by position. */
            size_t k = 0;
            for (size_t i = 0; i < w->ev->n_res; i++) {
                if (w->ev->res[i].type != BS_AUDIT_RES_ACL) continue;
                if (k++ == w->acl_seen) {
                    (void)!bs_audit_event_set_resource_error(w->ev, i, (int16_t)err);
                    break;
                }
            }
            w->acl_seen++;
            return; /* the matching bindings are not resources of this call */
        }
    }
    long here = own >= 0 ? own : cur;
    if (own >= 0 && !w->response) {
        const char *nk[] = {"NumPartitions", "ReplicationFactor", "Count"};
        for (size_t i = 0; i < BS_ARRAY_LEN(nk); i++) {
            int64_t x = intval(o, nk[i], 0, &found);
            if (found) attr_int(w, own, nk[i], x, NULL);
        }
    }
    for (size_t k = 0; k < o->schema->nfields; k++) {
        const bs_kafka_field *f = &o->schema->fields[k];
        const bs_kafka_val *v = &o->vals[k];
        if (!v->present) continue;
        if (f->type == BS_KT_STRUCT && v->items) {
            walk_obj(w, v->items, f->name, here, depth + 1);
        } else if (f->type == BS_KT_ARRAY && f->elem == BS_KT_STRUCT && v->count > 0) {
            bool configs = !strcmp(f->name, "Configs") || !strcmp(f->name, "Configurations");
            if (configs) {
                /* Keys only: values may be secrets (sasl.jaas.config, passwords). */
                if (w->response || here < 0) continue;
                for (int32_t i = 0; i < v->count; i++) {
                    const bs_kafka_val *n = str(&v->items[i], "Name");
                    if (n && bs_audit_event_add_config_key(w->ev, (size_t)here, (const char *)n->p,
                                                           n->n) != BS_OK)
                        break;
                }
                continue;
            }
            for (int32_t i = 0; i < v->count; i++)
                walk_obj(w, &v->items[i], f->name, here, depth + 1);
        } else if (f->type == BS_KT_ARRAY && f->elem == BS_KT_STRING) {
            string_array(w, f, v, here);
        } else if (f->type == BS_KT_ARRAY && f->elem == BS_KT_INT32) {
            if (!strcmp(f->name, "Partitions") || !strcmp(f->name, "PartitionIndexes") ||
                !strcmp(f->name, "PartitionIds"))
                partition_array(w, v, here);
            else if (!strcmp(f->name, "Replicas") && is_part && !w->response && w->api == 45)
                replicas_attr(w, cur, (int32_t)part, v);
        }
    }
}

/* ---------------------------------------------------------------- decoding */

/* Decode a body of `api`/`version` (request or response) and walk it into
 * `ev`. BS_OK, or the codec's status (the event is then left as far as it
 * got: undecoded requests are flagged by the caller). */
static bs_status decode_into(conn *c, bs_audit_event *ev, int16_t api, int16_t version,
                             bool response, const uint8_t *body, size_t len)
{
    const bs_kafka_message *m = bs_kafka_message_find(api, !response);
    if (!m) return BS_E_UNSUPPORTED;
    bs_kafka_obj *o = NULL;
    bs_kafka_arena_reset(&c->arena);
    bs_status st = bs_kafka_decode(m, version, body, len, &c->arena, &o);
    if (st == BS_OK) {
        walk w = {.ev = ev,
                  .api = api,
                  .version = version,
                  .flexible = version >= m->flex_min,
                  .response = response,
                  .add_missing = response && !is_data(api)};
        walk_obj(&w, o, NULL, -1, 0);
    }
    bs_kafka_arena_reset(&c->arena);
    return st;
}

/* One topic of a Produce request / Fetch request or response into event `arg`:
 * found or added by name (or hex id), with the volume when `volume`. Always
 * BS_OK (a full event is marked truncated; the scan goes on validating). */
static bs_status on_topic(void *arg, const bs_kafka_topic_summary *t, bool volume, int64_t records)
{
    bs_audit_event *ev = arg;
    char id[33];
    const char *name = (const char *)t->name.p;
    size_t n = t->name.len > 0 ? (size_t)t->name.len : 0;
    if (t->name.len < 0 && t->topic_id) {
        static const char hx[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
            id[2 * i] = hx[t->topic_id[i] >> 4];
            id[2 * i + 1] = hx[t->topic_id[i] & 15];
        }
        name = id;
        n = 32;
    }
    long r = find_res(ev, BS_AUDIT_RES_TOPIC, name ? name : "", n);
    if (r < 0) {
        size_t idx;
        if (bs_audit_event_add_resource(ev, BS_AUDIT_RES_TOPIC, name ? name : "", n, &idx) != BS_OK)
            return BS_OK; /* full: truncated, keep validating */
        r = (long)idx;
    }
    if (r >= 0 && volume)
        (void)!bs_audit_event_set_volume(ev, (size_t)r, records, (int64_t)t->record_bytes);
    return BS_OK;
}
/* bs_kafka_topic_fn for Produce requests (arg: the event): topic with records and bytes. */
static bs_status on_produce_topic(void *arg, const bs_kafka_topic_summary *t)
{
    return on_topic(arg, t, true, (int64_t)t->records);
}
/* bs_kafka_topic_fn for Fetch requests: the topic only. */
static bs_status on_fetch_req_topic(void *arg, const bs_kafka_topic_summary *t)
{
    return on_topic(arg, t, false, -1);
}
/* bs_kafka_topic_fn for Fetch responses: bytes per topic. */
static bs_status on_fetch_resp_topic(void *arg, const bs_kafka_topic_summary *t)
{
    /* Fetched records are not counted (a fetch may end in a partial batch):
     * records stay unknown, bytes are exact. */
    return on_topic(arg, t, true, -1);
}

/* bs_kafka_observer.on_topic: stage one topic of the frame about to be observed. */
static void on_session_topic(void *arg, bool is_request, const bs_kafka_topic_summary *t)
{
    conn *c = arg;
    if (hook_mode(c->h) == BS_AUDIT_DATA_OFF) return;
    if (!c->staged_req && !c->staged_resp) bs_audit_event_reset(&c->stage);
    (void)on_topic(&c->stage, t, true, is_request ? (int64_t)t->records : -1);
    if (is_request)
        c->staged_req = true;
    else
        c->staged_resp = true;
}

/* Move the staged topics (with their volumes) into `ev`; false if none
 * were staged for this direction. The stage is emptied either way. */
static bool take_stage(conn *c, bool is_request, bs_audit_event *ev)
{
    bool have = is_request ? c->staged_req : c->staged_resp;
    c->staged_req = c->staged_resp = false;
    if (!have) return false;
    const bs_audit_event *st = &c->stage;
    for (size_t i = 0; i < st->n_res; i++) {
        const bs_audit_resource *r = &st->res[i];
        const char *name = st->arena + r->name_off;
        long k = find_res(ev, (bs_audit_res_type)r->type, name, r->name_len);
        size_t idx = (size_t)k;
        if (k < 0 && bs_audit_event_add_resource(ev, (bs_audit_res_type)r->type, name, r->name_len,
                                                 &idx) != BS_OK)
            break; /* full: the event says truncated */
        (void)!bs_audit_event_set_volume(ev, idx, r->records, r->bytes);
    }
    if (st->truncated) ev->truncated = true;
    return true;
}

/* ---------------------------------------------------------------- recording */

/* Hand a finished event to the log and count. */
static void record(conn *c, const bs_audit_event *ev)
{
    bs_audit_hook *h = c->h;
    bs_status st = bs_audit_log_record(h->log, ev);
    if (st == BS_OK) {
        atomic_fetch_add(&h->recorded, 1);
        if (ev->undecoded) atomic_fetch_add(&h->undecoded, 1);
    } else {
        uint64_t n = atomic_fetch_add(&h->failures, 1);
        /* One line per power of two: a stuck sink must not flood the log. */
        if ((n & (n + 1)) == 0)
            BS_LOG_WARNF(MOD,
                         "listener %s: audit event for %s from %s:%u not recorded (%s; %" PRIu64
                         " so far)",
                         c->listener, bs_kafka_api_name(ev->api_key), c->ip, c->port,
                         bs_status_name(st), n + 1);
    }
}

/* Fill the identity part of `ev` from the connection. */
static void identity(conn *c, bs_audit_event *ev)
{
    ev->type = BS_AUDIT_EV_REQUEST;
    ev->time_us = wall_us();
    ev->conn_id = c->id;
    ev->listener = c->listener;
    ev->broker_id = c->broker_id;
    ev->principal = c->principal;
    ev->identity = c->identity;
    ev->source_ip = c->ip;
    ev->source_port = c->port;
}

/* bs_kafka_observer.on_request. */
static void on_request(void *arg, const bs_kafka_request_header *h, bool header_ok,
                       bool expects_response, const uint8_t *frame, size_t len, size_t frame_len)
{
    conn *c = arg;
    bool whole = len == frame_len && header_ok && h->header_len + 4 <= len;
    const uint8_t *body = whole ? frame + 4 + h->header_len : NULL;
    size_t blen = whole ? len - 4 - h->header_len : 0;
    /* Client software is remembered whatever the audit mode. */
    if (whole && h->api_key == BS_KAFKA_API_VERSIONS && h->api_version >= 3) {
        bs_kafka_slice sn, sv;
        if (bs_kafka_api_versions_client(body, blen, h->api_version, &sn, &sv) == BS_OK &&
            sn.len >= 0 && sv.len >= 0) {
            c->sw_name_len = (size_t)sn.len < SW_MAX ? (size_t)sn.len : SW_MAX;
            c->sw_version_len = (size_t)sv.len < SW_MAX ? (size_t)sv.len : SW_MAX;
            memcpy(c->sw_name, sn.p, c->sw_name_len);
            memcpy(c->sw_version, sv.p, c->sw_version_len);
            c->has_sw = true;
        }
    }
    bool skip = is_data(h->api_key) && hook_mode(c->h) == BS_AUDIT_DATA_OFF;
    bool staged = c->staged_req;
    bs_audit_event *ev = &c->scratch;
    bool queued = false;
    if (expects_response && c->count < PENDING_MAX) {
        if (c->count == c->cap) {
            /* Grow the ring, unrolling it so head is 0 again. */
            uint32_t nc = c->cap ? c->cap * 2 : 8;
            pending *nf = calloc(nc, sizeof *nf);
            if (nf) {
                for (uint32_t i = 0; i < c->count; i++)
                    nf[i] = c->fifo[(c->head + i) % c->cap];
                for (uint32_t i = c->count; i < nc; i++)
                    bs_audit_event_init(&nf[i].ev);
                free(c->fifo);
                c->fifo = nf;
                c->cap = nc;
                c->head = 0;
            }
        }
        if (c->count < c->cap) {
            pending *p = &c->fifo[(c->head + c->count) % c->cap];
            c->count++;
            p->skip = skip;
            ev = &p->ev;
            queued = true;
        }
    }
    if (skip) {
        c->staged_req = c->staged_resp = false;
        return;
    }
    bs_audit_event_reset(ev);
    identity(c, ev);
    ev->api_key = h->api_key;
    ev->api_version = h->api_version;
    ev->correlation_id = h->correlation_id;
    ev->request_bytes = (int64_t)frame_len;
    if (header_ok && h->client_id.len >= 0)
        (void)!bs_audit_event_set_client_id(ev, (const char *)h->client_id.p,
                                            (size_t)h->client_id.len);
    if (c->has_sw)
        (void)!bs_audit_event_set_software(ev, c->sw_name, c->sw_name_len, c->sw_version,
                                           c->sw_version_len);
    bs_status st = BS_E_SHORT;
    if (h->api_key == BS_KAFKA_PRODUCE && staged && take_stage(c, true, ev))
        st = BS_OK; /* the session's own summary of this frame */
    else if (whole && h->api_key == BS_KAFKA_PRODUCE)
        st = bs_kafka_produce_summary(body, blen, h->api_version, on_produce_topic, ev);
    else if (whole && h->api_key == BS_KAFKA_FETCH)
        st = bs_kafka_fetch_request_topics(body, blen, h->api_version, on_fetch_req_topic, ev);
    else if (whole)
        st = decode_into(c, ev, h->api_key, h->api_version, false, body, blen);
    c->staged_req = c->staged_resp = false; /* staged topics belong to this frame only */
    ev->undecoded = st != BS_OK;
    if (!queued) {
        /* No response will be matched (acks=0, or too many in flight). */
        ev->latency_us = -1;
        record(c, ev);
    }
}

/* bs_kafka_observer.on_response. */
static void on_response(void *arg, const bs_kafka_inflight *req, int64_t latency_ns,
                        const uint8_t *frame, size_t len, size_t frame_len)
{
    conn *c = arg;
    bool staged = c->staged_resp;
    if (c->count == 0) {
        /* the request was recorded at once (FIFO was full) */
        c->staged_req = c->staged_resp = false;
        return;
    }
    pending *p = &c->fifo[c->head];
    c->head = (c->head + 1) % c->cap;
    c->count--;
    if (p->skip) {
        c->staged_req = c->staged_resp = false;
        return;
    }
    bs_audit_event *ev = &p->ev;
    if (ev->correlation_id != req->correlation_id) {
        /* The session enforces order; a mismatch means a request was recorded
         * at once because the FIFO was full: record this one without response. */
        c->staged_req = c->staged_resp = false;
        record(c, ev);
        return;
    }
    ev->latency_us = latency_ns >= 0 ? latency_ns / 1000 : 0;
    ev->response_bytes = (int64_t)frame_len;
    int hv;
    bs_kafka_response_header rh;
    if (len == frame_len && len >= 8 &&
        bs_kafka_response_header_version(req->api_key, req->api_version, &hv) == BS_OK &&
        bs_kafka_parse_response_header(frame + 4, len - 4, hv, &rh) == BS_OK) {
        const uint8_t *body = frame + 4 + rh.header_len;
        size_t blen = len - 4 - rh.header_len;
        bs_status st;
        if (req->api_key == BS_KAFKA_FETCH) {
            const bs_kafka_message *m = bs_kafka_message_find(req->api_key, false);
            if (staged && take_stage(c, false, ev))
                st = BS_OK; /* the session's own summary of this frame */
            else
                st = bs_kafka_fetch_summary(body, blen, req->api_version, on_fetch_resp_topic, ev);
            /* The top-level error of a Fetch (v7+) without a second decode:
             * it is the first field after ThrottleTimeMs. */
            if (st == BS_OK && m && req->api_version >= 7 && blen >= 6)
                ev->error_code = (int16_t)(((uint16_t)body[4] << 8) | body[5]);
        } else if (req->api_key != BS_KAFKA_API_VERSIONS) {
            st = decode_into(c, ev, req->api_key, req->api_version, true, body, blen);
        } else {
            st = BS_OK;
            if (blen >= 2) ev->error_code = (int16_t)(((uint16_t)body[0] << 8) | body[1]);
        }
        if (st != BS_OK)
            BS_LOG_DEBUGF(MOD, "listener %s: %s v%d response not decodable for audit (%s)",
                          c->listener, bs_kafka_api_name(req->api_key), req->api_version,
                          bs_status_name(st));
    }
    c->staged_req = c->staged_resp = false; /* staged topics belong to this frame only */
    record(c, ev);
}

/* bs_kafka_observer.open: per-connection state. */
static bs_status conn_open(void *arg, const bs_session_info *info, void **out)
{
    *out = NULL;
    conn *c = calloc(1, sizeof *c);
    BS_ENSURE(c, BS_E_NOMEM);
    c->h = arg;
    c->id = info->conn_id;
    c->identity = info->identity;
    c->broker_id = info->listener ? info->listener->broker_id : -1;
    snprintf(c->listener, sizeof c->listener, "%s",
             info->listener && info->listener->name ? info->listener->name : "?");
    bs_status st = BS_OK;
    if (info->principal && !(c->principal = strdup(info->principal))) st = BS_E_NOMEM;
    /* peer is "ip:port" or "[v6]:port" */
    const char *peer = info->peer ? info->peer : "?";
    const char *colon = strrchr(peer, ':');
    size_t iplen = colon ? (size_t)(colon - peer) : strlen(peer);
    if (iplen >= 2 && peer[0] == '[' && peer[iplen - 1] == ']') {
        peer++;
        iplen -= 2;
    }
    if (iplen >= sizeof c->ip) iplen = sizeof c->ip - 1;
    memcpy(c->ip, peer, iplen);
    c->ip[iplen] = 0;
    c->port = colon ? (uint16_t)strtoul(colon + 1, NULL, 10) : 0;
    bs_audit_event_init(&c->scratch);
    bs_audit_event_init(&c->stage);
    bs_kafka_arena_init(&c->arena, DECODE_LIMIT);
    if (st != BS_OK) {
        free(c->principal);
        bs_kafka_arena_free(&c->arena);
        free(c);
        return st;
    }
    *out = c;
    return BS_OK;
}

/* bs_kafka_observer.close: requests still unanswered are recorded without
 * a response (latency null), then everything is freed. */
static void conn_close(void *arg)
{
    conn *c = arg;
    if (!c) return;
    for (uint32_t i = 0; i < c->count; i++) {
        pending *p = &c->fifo[(c->head + i) % c->cap];
        if (!p->skip) record(c, &p->ev);
    }
    for (uint32_t i = 0; i < c->cap; i++)
        bs_audit_event_free(&c->fifo[i].ev);
    free(c->fifo);
    bs_audit_event_free(&c->scratch);
    bs_audit_event_free(&c->stage);
    bs_kafka_arena_free(&c->arena);
    free(c->principal);
    free(c);
}

/* ---------------------------------------------------------------- gate */

/* Is the event of a request of `api` recorded on its own (not folded into an
 * aggregate, not off)? Those are the requests the gate refuses. */
static bool recorded_individually(const bs_audit_hook *h, int16_t api)
{
    return !is_data(api) || hook_mode(h) == BS_AUDIT_DATA_EACH;
}

/* bs_kafka_hook.wants_request of the gate: only while audit events cannot be
 * stored (one atomic load per request otherwise). */
static bool gate_wants(void *arg, int16_t api, int16_t ver)
{
    (void)ver;
    bs_audit_hook *h = arg;
    return recorded_individually(h, api) && bs_audit_log_backlogged(h->log);
}

/* bs_kafka_hook.on_request of the gate: a request whose audit event could not
 * be stored is not forwarded (docs/operations.md, "Audit completeness").
 * Produce is answered with KAFKA_STORAGE_ERROR (retriable) per partition, or
 * dropped for acks=0; any other API closes the connection (clients reconnect
 * and retry). */
static bs_status gate_on_request(void *arg, const bs_kafka_request_header *hdr,
                                 const uint8_t *frame, size_t len, bs_wbuf *replacement,
                                 bs_kafka_hook_verdict *verdict)
{
    bs_audit_hook *h = arg;
    *verdict = BS_KAFKA_HOOK_PASS;
    if (!recorded_individually(h, hdr->api_key) || !bs_audit_log_backlogged(h->log)) return BS_OK;
    uint64_t n = atomic_fetch_add(&h->refused, 1);
    bs_metric_add(h->m_refused, 1);
    if ((n & (n + 1)) == 0) /* one line per power of two */
        BS_LOG_WARNF(MOD,
                     "%s request refused: its audit event cannot be stored (spool full); %" PRIu64
                     " refused so far",
                     bs_kafka_api_name(hdr->api_key), n + 1);
    if (hdr->api_key != BS_KAFKA_PRODUCE) return BS_E_FULL; /* the session closes */
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_PRODUCE, true);
    if (!m || len < 4 + hdr->header_len) return BS_E_FULL;
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, DECODE_LIMIT);
    bs_kafka_obj *req = NULL;
    bs_status st = bs_kafka_decode(m, hdr->api_version, frame + 4 + hdr->header_len,
                                   len - 4 - hdr->header_len, &a, &req);
    if (st == BS_OK) {
        int i = bs_kafka_struct_field(req->schema, "Acks");
        *verdict = BS_KAFKA_HOOK_ANSWER;
        if (i < 0 || req->vals[i].i != 0)
            st = bs_kafka_produce_answer(req, hdr->api_version, hdr->correlation_id, NULL,
                                         BS_KERR_KAFKA_STORAGE_ERROR /* retriable */, &a,
                                         replacement);
    }
    bs_kafka_arena_free(&a);
    return st == BS_OK ? BS_OK : BS_E_FULL;
}

/* See audit_hook.h. */
const bs_kafka_hook *bs_audit_hook_gate(bs_audit_hook *h)
{
    return &h->gate;
}

/* See audit_hook.h. */
bs_status bs_audit_hook_new(bs_audit_log *log, bs_audit_data_mode data_mode, bs_audit_hook **out)
{
    *out = NULL;
    BS_ENSURE(log, BS_E_STATE);
    bs_audit_hook *h = calloc(1, sizeof *h);
    BS_ENSURE(h, BS_E_NOMEM);
    h->log = log;
    h->mode = data_mode;
    h->obs = (bs_kafka_observer){.open = conn_open,
                                 .wants_request = wants_request,
                                 .wants_response = wants_response,
                                 .on_request = on_request,
                                 .on_response = on_response,
                                 .on_topic = on_session_topic,
                                 .close = conn_close,
                                 .arg = h};
    h->gate = (bs_kafka_hook){.name = "audit-gate",
                              .wants_request = gate_wants,
                              .on_request = gate_on_request,
                              .arg = h};
    h->m_refused = bs_metrics_counter("brokerside_audit_refused_requests_total",
                                      "Requests refused because their audit event could not be "
                                      "stored (spool full)",
                                      NULL);
    *out = h;
    return BS_OK;
}

/* See audit_hook.h. */
const bs_kafka_observer *bs_audit_hook_observer(bs_audit_hook *h)
{
    return &h->obs;
}

/* See audit_hook.h. */
void bs_audit_hook_stats(bs_audit_hook *h, uint64_t *recorded, uint64_t *record_failures,
                         uint64_t *undecoded)
{
    if (recorded) *recorded = atomic_load(&h->recorded);
    if (record_failures) *record_failures = atomic_load(&h->failures);
    if (undecoded) *undecoded = atomic_load(&h->undecoded);
}

/* See audit_hook.h. */
void bs_audit_hook_set_mode(bs_audit_hook *h, bs_audit_data_mode data_mode)
{
    __atomic_store_n(&h->mode, data_mode, __ATOMIC_RELAXED);
}

/* See audit_hook.h. */
void bs_audit_hook_free(bs_audit_hook *h)
{
    free(h);
}
