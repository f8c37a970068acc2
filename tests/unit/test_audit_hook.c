/*
 * test_audit_hook.c - the per-request audit recorder (audit_hook.h) driven
 * through its bs_kafka_observer exactly as the Kafka session drives it.
 *
 * Requests and responses are encoded from the generated schema tables by a
 * small JSON-spec encoder below (field values by Kafka field name; absent
 * fields get zero/empty values), for a classic and a flexible version of
 * each management API. The events the audit log emits are parsed back with
 * cJSON and checked field by field: requestParameters, per-resource
 * errorCode, config keys without values, principal/anonymous, acks=0,
 * undecodable requests, data-event modes and unanswered requests.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/audit.h"
#include "brokerside/audit_hook.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_session.h"
#include "test.h"

/* ---------------------------------------------------------------- encoder */

static void put_be(bs_wbuf *w, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        bs_wbuf_put_u8(w, (uint8_t)(v >> (8 * i)));
}

static void put_uvar(bs_wbuf *w, uint32_t v)
{
    while (v >= 0x80) {
        bs_wbuf_put_u8(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    bs_wbuf_put_u8(w, (uint8_t)v);
}

/* A (nullable) string or bytes value: j is a JSON string, null, or absent. */
static void enc_str(bs_wbuf *w, const cJSON *j, bool flex, bool bytes, bool nullable)
{
    bool null = (!j || cJSON_IsNull(j)) && nullable;
    const char *s = cJSON_IsString(j) ? j->valuestring : "";
    size_t n = strlen(s);
    if (flex)
        put_uvar(w, null ? 0 : (uint32_t)n + 1);
    else if (bytes)
        put_be(w, null ? (uint64_t)-1 : n, 4);
    else
        put_be(w, null ? (uint64_t)0xffff : n, 2);
    if (!null) bs_wbuf_put(w, s, n);
}

static void enc_struct(bs_wbuf *w, const bs_kafka_struct *s, int16_t v, bool flex, const cJSON *j);

/* One value of primitive or struct type `t`. */
static void enc_value(bs_wbuf *w, const bs_kafka_field *f, uint8_t t, int16_t v, bool flex,
                      const cJSON *j, bool nullable)
{
    int64_t num = cJSON_IsNumber(j) ? (int64_t)j->valuedouble : (cJSON_IsTrue(j) ? 1 : 0);
    switch (t) {
    case BS_KT_BOOL:
    case BS_KT_INT8:
        put_be(w, (uint64_t)num, 1);
        break;
    case BS_KT_INT16:
    case BS_KT_UINT16:
        put_be(w, (uint64_t)num, 2);
        break;
    case BS_KT_INT32:
    case BS_KT_UINT32:
        put_be(w, (uint64_t)num, 4);
        break;
    case BS_KT_INT64:
    case BS_KT_FLOAT64:
        put_be(w, (uint64_t)num, 8);
        break;
    case BS_KT_UUID:
        for (int i = 0; i < 16; i++)
            bs_wbuf_put_u8(w, (uint8_t)(cJSON_IsString(j) && j->valuestring[0] ? i + 1 : 0));
        break;
    case BS_KT_STRING:
        enc_str(w, j, flex, false, nullable);
        break;
    case BS_KT_BYTES:
    case BS_KT_RECORDS:
        enc_str(w, j, flex, true, nullable);
        break;
    case BS_KT_STRUCT:
        enc_struct(w, f->sub, v, flex, j);
        break;
    default:
        break;
    }
}

/* A struct: every field present at version v, by name from JSON object j. */
static void enc_struct(bs_wbuf *w, const bs_kafka_struct *s, int16_t v, bool flex, const cJSON *j)
{
    for (size_t i = 0; i < s->nfields; i++) {
        const bs_kafka_field *f = &s->fields[i];
        if (!bs_kafka_field_present(f, v) || bs_kafka_field_tagged(f, v)) continue;
        const cJSON *fj = j ? cJSON_GetObjectItemCaseSensitive(j, f->name) : NULL;
        bool nullable = bs_kafka_field_nullable(f, v);
        if (f->type == BS_KT_ARRAY) {
            bool null = nullable && (!fj || cJSON_IsNull(fj));
            int n = cJSON_IsArray(fj) ? cJSON_GetArraySize(fj) : 0;
            if (flex)
                put_uvar(w, null ? 0 : (uint32_t)n + 1);
            else
                put_be(w, null ? (uint64_t)-1 : (uint64_t)n, 4);
            for (int k = 0; k < n; k++)
                enc_value(w, f, f->elem, v, flex, cJSON_GetArrayItem(fj, k), false);
        } else {
            enc_value(w, f, f->type, v, flex, fj, nullable);
        }
    }
    if (flex) put_uvar(w, 0); /* no tagged fields */
}

/* A whole frame (size prefix included) of api/version from a JSON body
 * spec; requests get a header with client.id `cid` (NULL: null). */
static void frame(bs_wbuf *w, int16_t api, int16_t v, bool req, int32_t corr, const char *cid,
                  const char *spec)
{
    const bs_kafka_message *m = bs_kafka_message_find(api, req);
    CHECK(m != NULL);
    if (!m) return;
    bool flex = v >= m->flex_min;
    cJSON *j = cJSON_Parse(spec);
    CHECK(j != NULL);
    bs_wbuf_reset(w);
    put_be(w, 0, 4);
    if (req) {
        put_be(w, (uint64_t)api, 2);
        put_be(w, (uint64_t)v, 2);
        put_be(w, (uint64_t)corr, 4);
        if (cid) {
            put_be(w, strlen(cid), 2);
            bs_wbuf_put(w, cid, strlen(cid));
        } else {
            put_be(w, 0xffff, 2);
        }
        if (flex) put_uvar(w, 0);
    } else {
        int hv = 0;
        CHECK(bs_kafka_response_header_version(api, v, &hv) == BS_OK);
        put_be(w, (uint64_t)corr, 4);
        if (hv == 1) put_uvar(w, 0);
    }
    enc_struct(w, m->body, v, flex, j);
    cJSON_Delete(j);
    uint32_t n = (uint32_t)(w->len - 4);
    w->data[0] = (uint8_t)(n >> 24);
    w->data[1] = (uint8_t)(n >> 16);
    w->data[2] = (uint8_t)(n >> 8);
    w->data[3] = (uint8_t)n;
}

/* ---------------------------------------------------------------- harness */

typedef struct lines {
    char *v[256];
    size_t n;
} lines;

static bs_status mem_emit(const char *line, size_t len, void *arg)
{
    lines *l = arg;
    if (l->n == BS_ARRAY_LEN(l->v)) return BS_E_FULL;
    l->v[l->n++] = strndup(line, len);
    return BS_OK;
}

static void lines_free(lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

/* A recorder on a fresh log, and one connection. */
typedef struct rig {
    lines out;
    bs_audit_log *log;
    bs_audit_hook *hook;
    const bs_kafka_observer *obs;
    void *conn;
    bs_listener_config lc;
} rig;

static void rig_open(rig *r, bs_audit_data_mode mode, const char *principal)
{
    memset(r, 0, sizeof *r);
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.data_events = mode;
    o.digest_every_events = 0;
    CHECK(bs_audit_log_open(&o, NULL, NULL, mem_emit, &r->out, &r->log) == BS_OK);
    CHECK(bs_audit_hook_new(r->log, mode, &r->hook) == BS_OK);
    r->obs = bs_audit_hook_observer(r->hook);
    r->lc.name = "b1";
    r->lc.broker_id = 7;
    bs_session_info info = {
        .listener = &r->lc, .peer = "10.1.2.3:45678", .principal = principal, .conn_id = 42};
    CHECK(r->obs->open(r->obs->arg, &info, &r->conn) == BS_OK);
}

static void rig_close(rig *r)
{
    r->obs->close(r->conn);
    r->conn = NULL;
    bs_audit_hook_free(r->hook);
    CHECK(bs_audit_log_close(r->log, 0) == BS_OK);
    lines_free(&r->out);
}

/* Send one request (and its response when resp_spec is not NULL) through
 * the observer like the session does; returns the newest emitted event
 * parsed (caller deletes) or NULL when nothing new was emitted. */
static cJSON *exchange(rig *r, int16_t api, int16_t v, const char *req_spec, const char *resp_spec)
{
    static int32_t corr = 100;
    corr++;
    size_t before = r->out.n;
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    frame(&w, api, v, true, corr, "app-1", req_spec);
    bs_kafka_request_header h;
    bs_status st = bs_kafka_parse_request_header(w.data + 4, w.len - 4, &h);
    CHECK(st == BS_OK);
    bool expects = resp_spec != NULL;
    r->obs->on_request(r->conn, &h, st == BS_OK, expects, w.data, w.len, w.len);
    if (resp_spec) {
        frame(&w, api, v, false, corr, NULL, resp_spec);
        bs_kafka_inflight inf = {
            .correlation_id = corr, .api_key = api, .api_version = v, .expects_response = true};
        r->obs->on_response(r->conn, &inf, 1500000, w.data, w.len, w.len);
    }
    bs_wbuf_free(&w);
    if (r->out.n == before) return NULL;
    return cJSON_Parse(r->out.v[r->out.n - 1]);
}

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}
static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *j = jget(o, k);
    return cJSON_IsString(j) ? j->valuestring : "";
}
static double jnum(const cJSON *o, const char *k)
{
    const cJSON *j = jget(o, k);
    return cJSON_IsNumber(j) ? j->valuedouble : -99999;
}
/* requestParameters.resources[i] / responseElements.resources[i]. */
static const cJSON *req_res(const cJSON *ev, int i)
{
    return cJSON_GetArrayItem(jget(jget(ev, "requestParameters"), "resources"), i);
}
static const cJSON *resp_res(const cJSON *ev, int i)
{
    return cJSON_GetArrayItem(jget(jget(ev, "responseElements"), "resources"), i);
}
static int n_req_res(const cJSON *ev)
{
    return cJSON_GetArraySize(jget(jget(ev, "requestParameters"), "resources"));
}
/* Does JSON array `a` hold string s? */
static bool has_str(const cJSON *a, const char *s)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (cJSON_IsString(e) && !strcmp(e->valuestring, s)) return true;
    return false;
}
/* The raw line of the newest event contains s? */
static bool last_line_has(const rig *r, const char *s)
{
    return r->out.n && strstr(r->out.v[r->out.n - 1], s) != NULL;
}

/* Common identity checks. */
static void check_identity(const cJSON *ev, const char *name, const char *cat, bool ro)
{
    CHECK_STR(jstr(ev, "eventName"), name);
    CHECK_STR(jstr(ev, "eventCategory"), cat);
    CHECK(cJSON_IsBool(jget(ev, "readOnly")) && cJSON_IsTrue(jget(ev, "readOnly")) == ro);
    CHECK_STR(jstr(jget(ev, "userIdentity"), "principal"), "CN=alice,O=acme");
    CHECK_STR(jstr(jget(ev, "userIdentity"), "type"), "mTLS");
    CHECK_STR(jstr(ev, "sourceIPAddress"), "10.1.2.3");
    CHECK_EQ(jnum(ev, "sourcePort"), 45678);
    CHECK_STR(jstr(ev, "listener"), "b1");
    CHECK_EQ(jnum(ev, "brokerId"), 7);
    CHECK_EQ(jnum(ev, "connectionId"), 42);
    CHECK_STR(jstr(ev, "clientId"), "app-1");
    CHECK(jget(ev, "requestDecoded") == NULL);
    CHECK_EQ(jnum(ev, "latencyMs"), 1.5);
}

/* ---------------------------------------------------------------- tests */

static void test_create_topics(void)
{
    static const int16_t versions[] = {4, 5};
    for (size_t i = 0; i < 2; i++) {
        rig r;
        rig_open(&r, BS_AUDIT_DATA_AGGREGATE, "CN=alice,O=acme");
        cJSON *ev = exchange(
            &r, 19, versions[i],
            "{\"Topics\":[{\"Name\":\"orders\",\"NumPartitions\":3,\"ReplicationFactor\":1,"
            "\"Configs\":[{\"Name\":\"retention.ms\",\"Value\":\"1000\"},"
            "{\"Name\":\"sasl.jaas.config\",\"Value\":\"SECRET-JAAS\"}]},"
            "{\"Name\":\"dup\",\"NumPartitions\":1,\"ReplicationFactor\":1}],\"TimeoutMs\":30000}",
            "{\"Topics\":[{\"Name\":\"orders\",\"ErrorCode\":0,\"Configs\":[{\"Name\":"
            "\"sasl.jaas.config\",\"Value\":\"SECRET-RESP\"}]},"
            "{\"Name\":\"dup\",\"ErrorCode\":36,\"ErrorMessage\":\"exists\"}]}");
        CHECK(ev != NULL);
        if (!ev) continue;
        check_identity(ev, "CreateTopics", "Management", false);
        CHECK_EQ(jnum(ev, "apiVersion"), versions[i]);
        CHECK_EQ(n_req_res(ev), 2);
        const cJSON *t = req_res(ev, 0);
        CHECK_STR(jstr(t, "type"), "topic");
        CHECK_STR(jstr(t, "name"), "orders");
        CHECK(has_str(jget(t, "configKeys"), "retention.ms"));
        CHECK(has_str(jget(t, "configKeys"), "sasl.jaas.config"));
        CHECK_STR(jstr(jget(t, "attributes"), "NumPartitions"), "3");
        CHECK_STR(jstr(req_res(ev, 1), "name"), "dup");
        /* config values never appear, from the request or the response */
        CHECK(!last_line_has(&r, "SECRET"));
        CHECK(!last_line_has(&r, "1000\""));
        /* per-resource errors; the summary is the first failure */
        const cJSON *e0 = resp_res(ev, 0), *e1 = resp_res(ev, 1);
        CHECK_STR(jstr(e0, "name"), "orders");
        CHECK_EQ(jnum(e0, "errorCode"), 0);
        CHECK_STR(jstr(e1, "name"), "dup");
        CHECK_EQ(jnum(e1, "errorCode"), 36);
        CHECK_EQ(jnum(ev, "errorCode"), 36);
        CHECK_STR(jstr(ev, "errorName"), "TOPIC_ALREADY_EXISTS");
        cJSON_Delete(ev);
        rig_close(&r);
    }
}

static void test_delete_topics(void)
{
    rig r;
    rig_open(&r, BS_AUDIT_DATA_AGGREGATE, "CN=alice,O=acme");
    /* v3: TopicNames is an array of strings */
    cJSON *ev = exchange(&r, 20, 3, "{\"TopicNames\":[\"old\",\"gone\"],\"TimeoutMs\":1}",
                         "{\"Responses\":[{\"Name\":\"old\",\"ErrorCode\":0},"
                         "{\"Name\":\"gone\",\"ErrorCode\":3}]}");
    CHECK(ev != NULL);
    if (ev) {
        check_identity(ev, "DeleteTopics", "Management", false);
        CHECK_EQ(n_req_res(ev), 2);
        CHECK_STR(jstr(req_res(ev, 1), "name"), "gone");
        CHECK_EQ(jnum(resp_res(ev, 1), "errorCode"), 3);
        CHECK_STR(jstr(ev, "errorName"), "UNKNOWN_TOPIC_OR_PARTITION");
        cJSON_Delete(ev);
    }
    /* v6 (flexible): Topics[{Name, TopicId}] */
    ev = exchange(&r, 20, 6, "{\"Topics\":[{\"Name\":\"old\"}],\"TimeoutMs\":1}",
                  "{\"Responses\":[{\"Name\":\"old\",\"ErrorCode\":41}]}");
    CHECK(ev != NULL);
    if (ev) {
        CHECK_STR(jstr(req_res(ev, 0), "name"), "old");
        CHECK_EQ(jnum(resp_res(ev, 0), "errorCode"), 41);
        cJSON_Delete(ev);
    }
    rig_close(&r);
}

static void test_configs(void)
{
    static const int16_t dv[] = {2, 4}, av[] = {1, 2}, iv[] = {0, 1};
    for (size_t i = 0; i < 2; i++) {
        rig r;
        rig_open(&r, BS_AUDIT_DATA_AGGREGATE, "CN=alice,O=acme");
        cJSON *ev = exchange(
            &r, 32, dv[i],
            "{\"Resources\":[{\"ResourceType\":2,\"ResourceName\":\"orders\","
            "\"ConfigurationKeys\":[\"retention.ms\",\"cleanup.policy\"]},"
            "{\"ResourceType\":4,\"ResourceName\":\"1\",\"ConfigurationKeys\":null}]}",
            "{\"Results\":[{\"ErrorCode\":0,\"ResourceType\":2,\"ResourceName\":\"orders\","
            "\"Configs\":[{\"Name\":\"retention.ms\",\"Value\":\"VALUE-1\"}]},"
            "{\"ErrorCode\":29,\"ResourceType\":4,\"ResourceName\":\"1\",\"Configs\":[]}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "DescribeConfigs", "Management", true);
            CHECK_STR(jstr(req_res(ev, 0), "type"), "topic");
            CHECK(has_str(jget(req_res(ev, 0), "configKeys"), "cleanup.policy"));
            CHECK_STR(jstr(req_res(ev, 1), "type"), "broker");
            CHECK_STR(jstr(req_res(ev, 1), "name"), "1");
            CHECK_EQ(jnum(resp_res(ev, 0), "errorCode"), 0);
            CHECK_STR(jstr(resp_res(ev, 1), "type"), "broker");
            CHECK_EQ(jnum(resp_res(ev, 1), "errorCode"), 29);
            CHECK(!last_line_has(&r, "VALUE-1"));
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 33, av[i],
                      "{\"Resources\":[{\"ResourceType\":4,\"ResourceName\":\"1\","
                      "\"Configs\":[{\"Name\":\"ssl.keystore.password\",\"Value\":\"hunter2\"}]}],"
                      "\"ValidateOnly\":false}",
                      "{\"Responses\":[{\"ErrorCode\":0,\"ResourceType\":4,"
                      "\"ResourceName\":\"1\"}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "AlterConfigs", "Management", false);
            CHECK_STR(jstr(req_res(ev, 0), "type"), "broker");
            CHECK(has_str(jget(req_res(ev, 0), "configKeys"), "ssl.keystore.password"));
            CHECK(!last_line_has(&r, "hunter2"));
            CHECK_EQ(jnum(ev, "errorCode"), 0);
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 44, iv[i],
                      "{\"Resources\":[{\"ResourceType\":2,\"ResourceName\":\"orders\","
                      "\"Configs\":[{\"Name\":\"sasl.jaas.config\",\"ConfigOperation\":0,"
                      "\"Value\":\"org.Secret required password=pw;\"}]}]}",
                      "{\"Responses\":[{\"ErrorCode\":40,\"ResourceType\":2,"
                      "\"ResourceName\":\"orders\"}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "IncrementalAlterConfigs", "Management", false);
            CHECK(has_str(jget(req_res(ev, 0), "configKeys"), "sasl.jaas.config"));
            CHECK(!last_line_has(&r, "password=pw"));
            CHECK_EQ(jnum(resp_res(ev, 0), "errorCode"), 40);
            cJSON_Delete(ev);
        }
        rig_close(&r);
    }
}

static void test_acls(void)
{
    static const int16_t vs[] = {1, 2};
    for (size_t i = 0; i < 2; i++) {
        rig r;
        rig_open(&r, BS_AUDIT_DATA_AGGREGATE, "CN=alice,O=acme");
        cJSON *ev = exchange(&r, 30, vs[i],
                             "{\"Creations\":[{\"ResourceType\":2,\"ResourceName\":\"orders\","
                             "\"ResourcePatternType\":3,\"Principal\":\"User:bob\",\"Host\":\"*\","
                             "\"Operation\":3,\"PermissionType\":3},"
                             "{\"ResourceType\":3,\"ResourceName\":\"g\",\"ResourcePatternType\":4,"
                             "\"Principal\":\"User:eve\",\"Host\":\"10.0.0.1\",\"Operation\":4,"
                             "\"PermissionType\":2}]}",
                             "{\"Results\":[{\"ErrorCode\":0},{\"ErrorCode\":31}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "CreateAcls", "Management", false);
            const cJSON *a = jget(req_res(ev, 0), "attributes");
            CHECK_STR(jstr(req_res(ev, 0), "type"), "acl");
            CHECK_STR(jstr(a, "resourceType"), "TOPIC");
            CHECK_STR(jstr(a, "resourceName"), "orders");
            CHECK_STR(jstr(a, "patternType"), "LITERAL");
            CHECK_STR(jstr(a, "principal"), "User:bob");
            CHECK_STR(jstr(a, "host"), "*");
            CHECK_STR(jstr(a, "operation"), "READ");
            CHECK_STR(jstr(a, "permissionType"), "ALLOW");
            a = jget(req_res(ev, 1), "attributes");
            CHECK_STR(jstr(a, "resourceType"), "GROUP");
            CHECK_STR(jstr(a, "permissionType"), "DENY");
            CHECK_STR(jstr(a, "patternType"), "PREFIXED");
            /* the second creation failed: its error, found by position */
            CHECK_EQ(jnum(resp_res(ev, 0), "errorCode"), 0);
            CHECK_STR(jstr(resp_res(ev, 1), "name"), "g");
            CHECK_EQ(jnum(resp_res(ev, 1), "errorCode"), 31);
            CHECK_EQ(jnum(ev, "errorCode"), 31);
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 31, vs[i],
                      "{\"Filters\":[{\"ResourceTypeFilter\":2,\"ResourceNameFilter\":\"orders\","
                      "\"PatternTypeFilter\":3,\"PrincipalFilter\":\"User:bob\","
                      "\"HostFilter\":null,\"Operation\":1,\"PermissionType\":1}]}",
                      "{\"FilterResults\":[{\"ErrorCode\":0,\"MatchingAcls\":[{\"ErrorCode\":0,"
                      "\"ResourceType\":2,\"ResourceName\":\"orders\",\"PatternType\":3,"
                      "\"Principal\":\"User:bob\",\"Host\":\"*\",\"Operation\":3,"
                      "\"PermissionType\":3}]}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "DeleteAcls", "Management", false);
            CHECK_EQ(n_req_res(ev), 1);
            const cJSON *a = jget(req_res(ev, 0), "attributes");
            CHECK_STR(jstr(a, "operation"), "ANY");
            CHECK_STR(jstr(a, "principal"), "User:bob");
            CHECK(jget(a, "host") == NULL); /* null filter: absent */
            CHECK_EQ(jnum(ev, "errorCode"), 0);
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 29, vs[i],
                      "{\"ResourceTypeFilter\":1,\"ResourceNameFilter\":null,"
                      "\"PatternTypeFilter\":1,\"PrincipalFilter\":\"User:bob\","
                      "\"HostFilter\":null,\"Operation\":1,\"PermissionType\":1}",
                      "{\"ErrorCode\":31,\"ErrorMessage\":\"no\",\"Resources\":[]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "DescribeAcls", "Management", true);
            CHECK_STR(jstr(jget(req_res(ev, 0), "attributes"), "resourceType"), "ANY");
            CHECK_EQ(jnum(ev, "errorCode"), 31);
            cJSON_Delete(ev);
        }
        rig_close(&r);
    }
}

static void test_partitions_records_reassignments(void)
{
    static const int16_t cp[] = {1, 2}, dr[] = {1, 2};
    for (size_t i = 0; i < 2; i++) {
        rig r;
        rig_open(&r, BS_AUDIT_DATA_AGGREGATE, "CN=alice,O=acme");
        cJSON *ev = exchange(&r, 37, cp[i],
                             "{\"Topics\":[{\"Name\":\"orders\",\"Count\":6,\"Assignments\":null}],"
                             "\"TimeoutMs\":1,\"ValidateOnly\":false}",
                             "{\"Results\":[{\"Name\":\"orders\",\"ErrorCode\":37}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "CreatePartitions", "Management", false);
            CHECK_STR(jstr(jget(req_res(ev, 0), "attributes"), "Count"), "6");
            CHECK_EQ(jnum(resp_res(ev, 0), "errorCode"), 37);
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 21, dr[i],
                      "{\"Topics\":[{\"Name\":\"orders\",\"Partitions\":[{\"PartitionIndex\":0,"
                      "\"Offset\":5},{\"PartitionIndex\":2,\"Offset\":9}]}],\"TimeoutMs\":1}",
                      "{\"Topics\":[{\"Name\":\"orders\",\"Partitions\":[{\"PartitionIndex\":0,"
                      "\"LowWatermark\":5,\"ErrorCode\":0},{\"PartitionIndex\":2,"
                      "\"LowWatermark\":-1,\"ErrorCode\":6}]}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "DeleteRecords", "Management", false);
            const cJSON *p = jget(req_res(ev, 0), "partitions");
            CHECK_EQ(cJSON_GetArraySize(p), 2);
            CHECK_EQ(cJSON_GetArrayItem(p, 1)->valuedouble, 2);
            const cJSON *rp = jget(resp_res(ev, 0), "partitions");
            CHECK_EQ(jnum(cJSON_GetArrayItem(rp, 1), "partition"), 2);
            CHECK_EQ(jnum(cJSON_GetArrayItem(rp, 1), "errorCode"), 6);
            CHECK_EQ(jnum(ev, "errorCode"), 6);
            cJSON_Delete(ev);
        }
        rig_close(&r);
    }
    rig r;
    rig_open(&r, BS_AUDIT_DATA_AGGREGATE, "CN=alice,O=acme");
    cJSON *ev = exchange(&r, 45, 0,
                         "{\"TimeoutMs\":1,\"Topics\":[{\"Name\":\"orders\",\"Partitions\":["
                         "{\"PartitionIndex\":1,\"Replicas\":[1,2,3]},"
                         "{\"PartitionIndex\":4,\"Replicas\":null}]}]}",
                         "{\"ErrorCode\":0,\"Responses\":[{\"Name\":\"orders\",\"Partitions\":["
                         "{\"PartitionIndex\":1,\"ErrorCode\":0},"
                         "{\"PartitionIndex\":4,\"ErrorCode\":85}]}]}");
    CHECK(ev != NULL);
    if (ev) {
        check_identity(ev, "AlterPartitionReassignments", "Management", false);
        const cJSON *a = jget(req_res(ev, 0), "attributes");
        CHECK_STR(jstr(a, "replicas[1]"), "1,2,3");
        CHECK_STR(jstr(a, "replicas[4]"), "cancel");
        CHECK_EQ(jnum(ev, "errorCode"), 85);
        cJSON_Delete(ev);
    }
    rig_close(&r);
}

static void test_groups(void)
{
    rig r;
    rig_open(&r, BS_AUDIT_DATA_EACH, "CN=alice,O=acme");
    static const int16_t dg[] = {4, 5}, del[] = {1, 2}, lg[] = {2, 3}, lv[] = {3, 4};
    for (size_t i = 0; i < 2; i++) {
        cJSON *ev = exchange(&r, 15, dg[i], "{\"Groups\":[\"g1\",\"g2\"]}",
                             "{\"Groups\":[{\"ErrorCode\":0,\"GroupId\":\"g1\",\"Members\":[]},"
                             "{\"ErrorCode\":69,\"GroupId\":\"g2\",\"Members\":[]}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "DescribeGroups", "Management", true);
            CHECK_STR(jstr(req_res(ev, 1), "type"), "group");
            CHECK_STR(jstr(req_res(ev, 1), "name"), "g2");
            CHECK_EQ(jnum(resp_res(ev, 1), "errorCode"), 69);
            CHECK_STR(jstr(ev, "errorName"), "GROUP_ID_NOT_FOUND");
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 42, del[i], "{\"GroupsNames\":[\"g1\"]}",
                      "{\"Results\":[{\"GroupId\":\"g1\",\"ErrorCode\":68}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "DeleteGroups", "Management", false);
            CHECK_STR(jstr(req_res(ev, 0), "name"), "g1");
            CHECK_EQ(jnum(resp_res(ev, 0), "errorCode"), 68);
            cJSON_Delete(ev);
        }
        /* ListGroups names no group; the groups listed come from the response */
        ev = exchange(
            &r, 16, lg[i], "{}",
            "{\"ErrorCode\":0,\"Groups\":[{\"GroupId\":\"g7\",\"ProtocolType\":\"consumer\"}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "ListGroups", "Management", true);
            CHECK_EQ(jnum(ev, "errorCode"), 0);
            CHECK_STR(jstr(req_res(ev, 0), "name"), "g7");
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 13, lv[i], "{\"GroupId\":\"g1\",\"Members\":[{\"MemberId\":\"m\"}]}",
                      "{\"ErrorCode\":25,\"Members\":[]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "LeaveGroup", "Data", false);
            CHECK_STR(jstr(req_res(ev, 0), "name"), "g1");
            CHECK_EQ(jnum(ev, "errorCode"), 25);
            cJSON_Delete(ev);
        }
    }
    cJSON *ev = exchange(&r, 47, 0,
                         "{\"GroupId\":\"g1\",\"Topics\":[{\"Name\":\"orders\",\"Partitions\":["
                         "{\"PartitionIndex\":3}]}]}",
                         "{\"ErrorCode\":0,\"Topics\":[{\"Name\":\"orders\",\"Partitions\":["
                         "{\"PartitionIndex\":3,\"ErrorCode\":86}]}]}");
    CHECK(ev != NULL);
    if (ev) {
        check_identity(ev, "OffsetDelete", "Management", false);
        CHECK_STR(jstr(req_res(ev, 0), "type"), "group");
        CHECK_STR(jstr(req_res(ev, 1), "type"), "topic");
        CHECK_EQ(cJSON_GetArrayItem(jget(req_res(ev, 1), "partitions"), 0)->valuedouble, 3);
        CHECK_EQ(jnum(ev, "errorCode"), 86);
        cJSON_Delete(ev);
    }
    ev = exchange(&r, 11, 5,
                  "{\"GroupId\":\"g1\",\"SessionTimeoutMs\":1,\"RebalanceTimeoutMs\":1,"
                  "\"MemberId\":\"\",\"GroupInstanceId\":null,\"ProtocolType\":\"consumer\","
                  "\"Protocols\":[{\"Name\":\"range\",\"Metadata\":\"\"}]}",
                  "{\"ErrorCode\":0,\"GenerationId\":1,\"ProtocolName\":\"range\","
                  "\"Leader\":\"m\",\"MemberId\":\"m\",\"Members\":[]}");
    CHECK(ev != NULL);
    if (ev) {
        check_identity(ev, "JoinGroup", "Data", false);
        CHECK_STR(jstr(req_res(ev, 0), "name"), "g1");
        CHECK_EQ(n_req_res(ev), 1);
        cJSON_Delete(ev);
    }
    rig_close(&r);
}

/* The consumer-group and transaction data APIs, at the versions the dev
 * broker speaks and a flexible one (data_events each). */
static void test_group_data_apis(void)
{
    rig r;
    rig_open(&r, BS_AUDIT_DATA_EACH, "CN=alice,O=acme");
    static const int16_t oc[] = {2, 8}, sg[] = {3, 4}, lo[] = {2, 6};
    for (size_t i = 0; i < 2; i++) {
        cJSON *ev = exchange(&r, 8, oc[i],
                             "{\"GroupId\":\"g1\",\"MemberId\":\"m\",\"Topics\":[{\"Name\":"
                             "\"orders\",\"Partitions\":[{\"PartitionIndex\":0,\"CommittedOffset\":"
                             "5},{\"PartitionIndex\":1,\"CommittedOffset\":7}]}]}",
                             "{\"Topics\":[{\"Name\":\"orders\",\"Partitions\":[{\"PartitionIndex\""
                             ":0,\"ErrorCode\":0},{\"PartitionIndex\":1,\"ErrorCode\":22}]}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "OffsetCommit", "Data", false);
            CHECK_STR(jstr(req_res(ev, 0), "name"), "g1");
            CHECK_EQ(cJSON_GetArraySize(jget(req_res(ev, 1), "partitions")), 2);
            CHECK_EQ(jnum(ev, "errorCode"), 22);
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 14, sg[i],
                      "{\"GroupId\":\"g1\",\"GenerationId\":1,\"MemberId\":\"m\","
                      "\"Assignments\":[{\"MemberId\":\"m\",\"Assignment\":\"SECRET-ASSIGN\"}]}",
                      "{\"ErrorCode\":27,\"Assignment\":\"\"}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "SyncGroup", "Data", false);
            CHECK_STR(jstr(req_res(ev, 0), "name"), "g1");
            CHECK_EQ(jnum(ev, "errorCode"), 27);
            CHECK(!last_line_has(&r, "SECRET-ASSIGN"));
            cJSON_Delete(ev);
        }
        ev = exchange(&r, 2, lo[i],
                      "{\"ReplicaId\":-1,\"Topics\":[{\"Name\":\"orders\",\"Partitions\":"
                      "[{\"PartitionIndex\":1,\"Timestamp\":-1}]}]}",
                      "{\"Topics\":[{\"Name\":\"orders\",\"Partitions\":[{\"PartitionIndex\""
                      ":1,\"ErrorCode\":6}]}]}");
        CHECK(ev != NULL);
        if (ev) {
            check_identity(ev, "ListOffsets", "Data", true);
            CHECK_EQ(cJSON_GetArrayItem(jget(req_res(ev, 0), "partitions"), 0)->valuedouble, 1);
            CHECK_EQ(jnum(ev, "errorCode"), 6);
            cJSON_Delete(ev);
        }
    }
    /* OffsetFetch v1 (GroupId + Topics) and v8 (Groups[] each with Topics) */
    cJSON *ev = exchange(&r, 9, 1,
                         "{\"GroupId\":\"g1\",\"Topics\":[{\"Name\":\"orders\","
                         "\"PartitionIndexes\":[0,1]}]}",
                         "{\"Topics\":[{\"Name\":\"orders\",\"Partitions\":[{\"PartitionIndex\""
                         ":0,\"CommittedOffset\":5,\"Metadata\":\"\",\"ErrorCode\":0}]}]}");
    CHECK(ev != NULL);
    if (ev) {
        check_identity(ev, "OffsetFetch", "Data", true);
        CHECK_STR(jstr(req_res(ev, 1), "name"), "orders");
        CHECK_EQ(cJSON_GetArraySize(jget(req_res(ev, 1), "partitions")), 2);
        cJSON_Delete(ev);
    }
    ev = exchange(&r, 9, 8,
                  "{\"Groups\":[{\"GroupId\":\"g1\",\"Topics\":[{\"Name\":\"orders\","
                  "\"PartitionIndexes\":[3]}]},{\"GroupId\":\"g2\",\"Topics\":null}],"
                  "\"RequireStable\":false}",
                  "{\"Groups\":[{\"GroupId\":\"g1\",\"Topics\":[],\"ErrorCode\":0},"
                  "{\"GroupId\":\"g2\",\"Topics\":[],\"ErrorCode\":16}]}");
    CHECK(ev != NULL);
    if (ev) {
        CHECK_STR(jstr(req_res(ev, 0), "name"), "g1");
        CHECK_STR(jstr(req_res(ev, 1), "name"), "orders");
        CHECK_STR(jstr(req_res(ev, 2), "name"), "g2");
        CHECK_EQ(jnum(ev, "errorCode"), 16);
        cJSON_Delete(ev);
    }
    /* FindCoordinator v2 (Key + KeyType 1: a transactional id) and v4 (CoordinatorKeys) */
    ev = exchange(&r, 10, 2, "{\"Key\":\"tx-1\",\"KeyType\":1}",
                  "{\"ErrorCode\":15,\"NodeId\":-1,\"Host\":\"\",\"Port\":-1}");
    CHECK(ev != NULL);
    if (ev) {
        check_identity(ev, "FindCoordinator", "Data", true);
        CHECK_STR(jstr(req_res(ev, 0), "type"), "transactionalId");
        CHECK_STR(jstr(req_res(ev, 0), "name"), "tx-1");
        CHECK_EQ(jnum(ev, "errorCode"), 15);
        cJSON_Delete(ev);
    }
    ev = exchange(&r, 10, 4, "{\"KeyType\":0,\"CoordinatorKeys\":[\"g1\",\"g2\"]}",
                  "{\"Coordinators\":[{\"Key\":\"g1\",\"NodeId\":1,\"Host\":\"h\",\"Port\":1,"
                  "\"ErrorCode\":0}]}");
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ(n_req_res(ev), 2);
        CHECK_STR(jstr(req_res(ev, 1), "name"), "g2");
        cJSON_Delete(ev);
    }
    /* AddPartitionsToTxn v3 (V3AndBelow* fields) and v4 (Transactions[]) */
    ev = exchange(&r, 24, 3,
                  "{\"V3AndBelowTransactionalId\":\"tx-1\",\"V3AndBelowProducerId\":1,"
                  "\"V3AndBelowTopics\":[{\"Name\":\"orders\",\"Partitions\":[2]}]}",
                  "{\"ResultsByTopicV3AndBelow\":[{\"Name\":\"orders\",\"ResultsByPartition\":"
                  "[{\"PartitionIndex\":2,\"PartitionErrorCode\":0}]}]}");
    CHECK(ev != NULL);
    if (ev) {
        check_identity(ev, "AddPartitionsToTxn", "Data", false);
        CHECK_STR(jstr(req_res(ev, 0), "type"), "transactionalId");
        CHECK_STR(jstr(req_res(ev, 1), "name"), "orders");
        CHECK_EQ(cJSON_GetArrayItem(jget(req_res(ev, 1), "partitions"), 0)->valuedouble, 2);
        cJSON_Delete(ev);
    }
    ev = exchange(&r, 24, 4,
                  "{\"Transactions\":[{\"TransactionalId\":\"tx-2\",\"Topics\":[{\"Name\":"
                  "\"orders\",\"Partitions\":[0]}]}]}",
                  "{\"ErrorCode\":0,\"ResultsByTransaction\":[]}");
    CHECK(ev != NULL);
    if (ev) {
        CHECK_STR(jstr(req_res(ev, 0), "name"), "tx-2");
        CHECK_STR(jstr(req_res(ev, 1), "name"), "orders");
        cJSON_Delete(ev);
    }
    rig_close(&r);
}

/* Produce with acks=0 expects no response: recorded at once without errors. */
static void test_produce_acks0_and_data_modes(void)
{
    /* A Produce v7 body with one topic and a null records field. */
    const char *req = "{\"TransactionalId\":null,\"Acks\":0,\"TimeoutMs\":1,\"TopicData\":[{"
                      "\"Name\":\"orders\",\"PartitionData\":[{\"Index\":0,\"Records\":null}]}]}";
    rig r;
    rig_open(&r, BS_AUDIT_DATA_EACH, NULL);
    cJSON *ev = exchange(&r, 0, 7, req, NULL);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_STR(jstr(ev, "eventName"), "Produce");
        CHECK_STR(jstr(ev, "eventCategory"), "Data");
        CHECK_STR(jstr(jget(ev, "userIdentity"), "type"), "Anonymous");
        CHECK(cJSON_IsNull(jget(ev, "latencyMs")));
        CHECK(cJSON_IsNull(jget(ev, "responseElements")));
        CHECK(jget(ev, "errorCode") == NULL);
        CHECK_STR(jstr(req_res(ev, 0), "name"), "orders");
        cJSON_Delete(ev);
    }
    /* Topics the session already summarised (on_topic) are taken as they
     * are: the Produce body is not scanned a second time. */
    bs_kafka_topic_summary t = {
        .name = {(const uint8_t *)"staged", 6}, .partitions = 1, .record_bytes = 99, .records = 9};
    r.obs->on_topic(r.conn, true, &t);
    ev = exchange(&r, 0, 7, req, NULL);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ(n_req_res(ev), 1);
        CHECK_STR(jstr(req_res(ev, 0), "name"), "staged");
        CHECK_EQ(jnum(req_res(ev, 0), "records"), 9);
        CHECK_EQ(jnum(req_res(ev, 0), "bytes"), 99);
        cJSON_Delete(ev);
    }
    /* ... and only for the frame they came with */
    ev = exchange(&r, 0, 7, req, NULL);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_STR(jstr(req_res(ev, 0), "name"), "orders");
        cJSON_Delete(ev);
    }
    rig_close(&r);
    /* off: data APIs are not recorded at all; management still is */
    rig_open(&r, BS_AUDIT_DATA_OFF, NULL);
    size_t before = r.out.n;
    CHECK(exchange(&r, 0, 7, req, NULL) == NULL);
    CHECK(exchange(&r, 12, 3, "{\"GroupId\":\"g\",\"GenerationId\":1,\"MemberId\":\"m\"}",
                   "{\"ErrorCode\":0}") == NULL);
    CHECK_EQ(r.out.n, before);
    ev = exchange(&r, 16, 2, "{}", "{\"ErrorCode\":0,\"Groups\":[]}");
    CHECK(ev != NULL);
    cJSON_Delete(ev);
    rig_close(&r);
    /* aggregate: no per-request line for data APIs (folded into aggregates) */
    rig_open(&r, BS_AUDIT_DATA_AGGREGATE, NULL);
    before = r.out.n;
    CHECK(exchange(&r, 0, 7, req, NULL) == NULL);
    CHECK_EQ(r.out.n, before);
    rig_close(&r);
}

/* A body that does not decode is still recorded, flagged; so is an API the
 * codec has no schema for. */
static void test_undecodable_still_recorded(void)
{
    rig r;
    rig_open(&r, BS_AUDIT_DATA_AGGREGATE, "CN=alice,O=acme");
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    frame(&w, 19, 4, true, 9, "app-1", "{\"Topics\":[{\"Name\":\"orders\"}]}");
    w.len -= 3; /* cut the body short */
    uint32_t n = (uint32_t)(w.len - 4);
    w.data[2] = (uint8_t)(n >> 8);
    w.data[3] = (uint8_t)n;
    bs_kafka_request_header h;
    CHECK(bs_kafka_parse_request_header(w.data + 4, w.len - 4, &h) == BS_OK);
    r.obs->on_request(r.conn, &h, true, true, w.data, w.len, w.len);
    /* only a prefix seen (a frame the session streamed): also undecoded */
    bs_kafka_request_header h2 = h;
    h2.correlation_id = 10;
    r.obs->on_request(r.conn, &h2, true, true, w.data, 20, 5000);
    /* an API key unknown to this build */
    bs_kafka_request_header h3 = {.api_key = 999, .api_version = 0, .correlation_id = 11};
    r.obs->on_request(r.conn, &h3, false, true, w.data, 12, 12);
    size_t before = r.out.n;
    /* the connection closes with all three unanswered */
    r.obs->close(r.conn);
    r.conn = NULL;
    CHECK_EQ(r.out.n, before + 3);
    for (size_t i = before; i < r.out.n; i++) {
        cJSON *ev = cJSON_Parse(r.out.v[i]);
        CHECK(ev != NULL);
        if (!ev) continue;
        CHECK(cJSON_IsFalse(jget(ev, "requestDecoded")));
        CHECK(cJSON_IsNull(jget(ev, "latencyMs")));
        CHECK_EQ(jnum(ev, "correlationId"), 9 + (double)(i - before));
        if (i == before + 2) {
            CHECK_STR(jstr(ev, "eventName"), "UnknownApi");
            CHECK_EQ(jnum(ev, "apiKey"), 999);
        } else {
            CHECK_STR(jstr(ev, "eventName"), "CreateTopics");
        }
        cJSON_Delete(ev);
    }
    bs_wbuf_free(&w);
    bs_audit_hook_free(r.hook);
    CHECK(bs_audit_log_close(r.log, 0) == BS_OK);
    lines_free(&r.out);
}

/* ApiVersions v3 names the client software for later events of the connection. */
static void test_client_software(void)
{
    rig r;
    rig_open(&r, BS_AUDIT_DATA_EACH, "CN=alice,O=acme");
    cJSON *ev = exchange(&r, 18, 3,
                         "{\"ClientSoftwareName\":\"apache-kafka-java\","
                         "\"ClientSoftwareVersion\":\"3.7.0\"}",
                         "{\"ErrorCode\":0,\"ApiKeys\":[],\"ThrottleTimeMs\":0}");
    CHECK(ev != NULL);
    cJSON_Delete(ev);
    ev = exchange(&r, 16, 3, "{\"StatesFilter\":[]}", "{\"ErrorCode\":0,\"Groups\":[]}");
    CHECK(ev != NULL);
    if (ev) {
        CHECK_STR(jstr(ev, "clientSoftwareName"), "apache-kafka-java");
        CHECK_STR(jstr(ev, "clientSoftwareVersion"), "3.7.0");
        CHECK_STR(jstr(ev, "userAgent"), "apache-kafka-java/3.7.0 (client.id=app-1)");
        cJSON_Delete(ev);
    }
    rig_close(&r);
}

/* ---------------------------------------------------------------- through the session */

/* The real Kafka session with the recorder as its observer, fed through
 * 256-byte connection buffers in 37-byte chunks: a management request larger
 * than the buffer must be assembled (held), a Produce streams through and is
 * observed from the session's copy, pipelined requests keep their order;
 * every event carries the client id the request was sent with. */
typedef struct sess {
    const bs_session_ops *ops;
    void *st;
    bs_listener_config lc;
    bs_kafka_config kc;
    bs_buf in, fwd, back;
} sess;

/* Push `len` bytes through one direction; what comes out is appended to `out`. */
static void sess_feed(sess *h, bool from_client, const uint8_t *p, size_t len, bs_wbuf *out)
{
    size_t off = 0;
    for (int idle = 0; idle < 3;) {
        size_t n = len - off;
        if (n > 37) n = 37;
        if (n > bs_buf_free_space(&h->in)) n = bs_buf_free_space(&h->in);
        if (n) {
            bs_buf_compact(&h->in);
            CHECK_EQ(bs_buf_append(&h->in, p + off, n), BS_OK);
            off += n;
        }
        size_t before = bs_buf_readable(&h->in);
        bs_status st = from_client ? h->ops->on_client_bytes(h->st, &h->in, &h->fwd, &h->back)
                                   : h->ops->on_upstream_bytes(h->st, &h->in, &h->fwd, &h->back);
        CHECK_EQ(st, BS_OK);
        if (st != BS_OK) return;
        size_t got = bs_buf_readable(&h->fwd);
        bs_wbuf_put(out, bs_buf_read_ptr(&h->fwd), got);
        bs_buf_consume(&h->fwd, got);
        idle = (n == 0 && got == 0 && bs_buf_readable(&h->in) == before) ? idle + 1 : 0;
    }
    CHECK_EQ(off, len);
}

static void test_through_session(void)
{
    lines out = {0};
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.data_events = BS_AUDIT_DATA_EACH;
    o.digest_every_events = 0;
    bs_audit_log *log = NULL;
    bs_audit_hook *hook = NULL;
    CHECK(bs_audit_log_open(&o, NULL, NULL, mem_emit, &out, &log) == BS_OK);
    CHECK(bs_audit_hook_new(log, BS_AUDIT_DATA_EACH, &hook) == BS_OK);
    if (!hook) return;
    bs_kafka_session_factory fac = {.observer = bs_audit_hook_observer(hook)};
    sess h;
    memset(&h, 0, sizeof h);
    h.ops = bs_kafka_session_ops();
    h.lc.name = "s1";
    h.lc.broker_id = 3;
    h.kc.max_frame_bytes = 1 << 20;
    bs_session_info info = {.listener = &h.lc,
                            .kafka = &h.kc,
                            .peer = "[::1]:9999",
                            .principal = "CN=carol",
                            .conn_id = 5};
    CHECK_EQ(h.ops->open(&fac, &info, &h.st), BS_OK);
    CHECK_EQ(bs_buf_init(&h.in, 256), BS_OK);
    CHECK_EQ(bs_buf_init(&h.fwd, 256), BS_OK);
    CHECK_EQ(bs_buf_init(&h.back, 256), BS_OK);
    /* two pipelined requests: a big CreateTopics and a Produce with a null records field */
    bs_wbuf reqs, w, fwd;
    bs_wbuf_init(&reqs, 0);
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&fwd, 0);
    char spec[4096];
    size_t n = (size_t)snprintf(spec, sizeof spec, "{\"Topics\":[");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(spec + n, sizeof spec - n,
                              "%s{\"Name\":\"topic-with-a-long-name-%02d\",\"NumPartitions\":1,"
                              "\"ReplicationFactor\":1}",
                              i ? "," : "", i);
    snprintf(spec + n, sizeof spec - n, "],\"TimeoutMs\":5}");
    frame(&w, 19, 5, true, 1, "adm", spec);
    CHECK(w.len > 256);
    bs_wbuf_put(&reqs, w.data, w.len);
    frame(&w, 0, 9, true, 2, "prod",
          "{\"TransactionalId\":null,\"Acks\":-1,\"TimeoutMs\":1,\"TopicData\":[{"
          "\"Name\":\"orders\",\"PartitionData\":[{\"Index\":0,\"Records\":null}]}]}");
    bs_wbuf_put(&reqs, w.data, w.len);
    sess_feed(&h, true, reqs.data, reqs.len, &fwd);
    /* the observer never changes bytes */
    CHECK_EQ(fwd.len, reqs.len);
    CHECK(fwd.len == reqs.len && memcmp(fwd.data, reqs.data, reqs.len) == 0);
    size_t before = out.n;
    /* responses, in order */
    bs_wbuf resps;
    bs_wbuf_init(&resps, 0);
    n = (size_t)snprintf(spec, sizeof spec, "{\"Topics\":[");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(spec + n, sizeof spec - n,
                              "%s{\"Name\":\"topic-with-a-long-name-%02d\",\"ErrorCode\":%d}",
                              i ? "," : "", i, i == 7 ? 37 : 0);
    snprintf(spec + n, sizeof spec - n, "]}");
    frame(&w, 19, 5, false, 1, NULL, spec);
    bs_wbuf_put(&resps, w.data, w.len);
    frame(&w, 0, 9, false, 2, NULL,
          "{\"Responses\":[{\"Name\":\"orders\",\"PartitionResponses\":[{\"Index\":0,"
          "\"ErrorCode\":0}]}],\"ThrottleTimeMs\":0}");
    bs_wbuf_put(&resps, w.data, w.len);
    bs_wbuf_reset(&fwd);
    sess_feed(&h, false, resps.data, resps.len, &fwd);
    CHECK(fwd.len == resps.len && memcmp(fwd.data, resps.data, resps.len) == 0);
    CHECK_EQ(out.n, before + 2);
    if (out.n == before + 2) {
        cJSON *ct = cJSON_Parse(out.v[before]), *pr = cJSON_Parse(out.v[before + 1]);
        CHECK(ct && pr);
        if (ct && pr) {
            CHECK_STR(jstr(ct, "eventName"), "CreateTopics");
            /* assembled aside: its client id comes from the assembled copy, not from
             * where the frame first arrived (those bytes were reused meanwhile) */
            CHECK_STR(jstr(ct, "clientId"), "adm");
            CHECK_EQ(n_req_res(ct), 20);
            CHECK_STR(jstr(req_res(ct, 19), "name"), "topic-with-a-long-name-19");
            CHECK_EQ(jnum(resp_res(ct, 7), "errorCode"), 37);
            CHECK_EQ(jnum(ct, "errorCode"), 37);
            CHECK_STR(jstr(ct, "sourceIPAddress"), "::1");
            CHECK_EQ(jnum(ct, "sourcePort"), 9999);
            CHECK_EQ(jnum(ct, "connectionId"), 5);
            CHECK_EQ(jnum(ct, "brokerId"), 3);
            CHECK_STR(jstr(jget(ct, "userIdentity"), "principal"), "CN=carol");
            CHECK(cJSON_IsNumber(jget(ct, "latencyMs")));
            CHECK_STR(jstr(pr, "eventName"), "Produce");
            CHECK_STR(jstr(pr, "clientId"), "prod");
            CHECK_STR(jstr(req_res(pr, 0), "name"), "orders");
            CHECK_EQ(jnum(pr, "errorCode"), 0);
        }
        cJSON_Delete(ct);
        cJSON_Delete(pr);
    }
    /* a request left unanswered is recorded when the connection closes */
    frame(&w, 16, 3, true, 3, "adm", "{\"StatesFilter\":[]}");
    bs_wbuf_reset(&fwd);
    sess_feed(&h, true, w.data, w.len, &fwd);
    before = out.n;
    h.ops->close(h.st);
    CHECK_EQ(out.n, before + 1);
    CHECK(out.n && strstr(out.v[out.n - 1], "\"eventName\":\"ListGroups\"") != NULL);
    CHECK(out.n && strstr(out.v[out.n - 1], "\"latencyMs\":null") != NULL);
    bs_buf_free(&h.in);
    bs_buf_free(&h.fwd);
    bs_buf_free(&h.back);
    bs_wbuf_free(&reqs);
    bs_wbuf_free(&resps);
    bs_wbuf_free(&w);
    bs_wbuf_free(&fwd);
    bs_audit_hook_free(hook);
    CHECK(bs_audit_log_close(log, 0) == BS_OK);
    lines_free(&out);
}

/* Bad arguments. */
static void test_new_refuses_null_log(void)
{
    bs_audit_hook *h = (bs_audit_hook *)1;
    CHECK(bs_audit_hook_new(NULL, BS_AUDIT_DATA_EACH, &h) == BS_E_STATE);
    CHECK(h == NULL);
    bs_audit_hook_free(NULL);
}

int main(void)
{
    RUN(test_create_topics);
    RUN(test_delete_topics);
    RUN(test_configs);
    RUN(test_acls);
    RUN(test_partitions_records_reassignments);
    RUN(test_groups);
    RUN(test_group_data_apis);
    RUN(test_produce_acks0_and_data_modes);
    RUN(test_undecodable_still_recorded);
    RUN(test_client_software);
    RUN(test_through_session);
    RUN(test_new_refuses_null_log);
    return test_report();
}
