/*
 * test_authz.c - the policy enforcer (src/proxy/authz.c) in the Kafka session
 * with flexible request versions built here: whole-request denials answered
 * from the response schema (FindCoordinator v4 with its coordinator keys,
 * JoinGroup v9, DescribeCluster), the idempotent producer
 * rule of InitProducerId, an API the policy cannot judge (closed: no schema), a Produce v9 split
 * whose broker answer is completed (also with a reused correlation id),
 * Produce v13 by topic id judged for Write, a Fetch v15 follower fetch
 * (tagged ReplicaState) needing ClusterAction, and no policy at all.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/authz.h"
#include "brokerside/buf.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_session.h"
#include "brokerside/metrics.h"
#include "brokerside/policy.h"
#include "test.h"

#define BUFCAP 8192

typedef struct harness {
    const bs_session_ops *ops;
    void *st;
    bs_listener_config lc;
    bs_kafka_config kc;
    bs_buf cin, cfwd, cback, uin, ufwd, uback;
    bs_wbuf to_broker, to_client;
} harness;

static bs_authz *g_az;
static bs_kafka_session_factory g_fac;

static void h_open(harness *h)
{
    memset(h, 0, sizeof *h);
    h->ops = bs_kafka_session_ops();
    h->lc.name = "authz";
    h->kc.max_frame_bytes = 1 << 20;
    bs_session_info info = {.listener = &h->lc, .kafka = &h->kc, .peer = "10.1.1.1:999",
                            .principal = "CN=app,O=x"};
    CHECK_EQ(h->ops->open(&g_fac, &info, &h->st), BS_OK);
    bs_buf *bs[] = {&h->cin, &h->cfwd, &h->cback, &h->uin, &h->ufwd, &h->uback};
    for (size_t i = 0; i < BS_ARRAY_LEN(bs); i++)
        CHECK_EQ(bs_buf_init(bs[i], BUFCAP), BS_OK);
    bs_wbuf_init(&h->to_broker, 0);
    bs_wbuf_init(&h->to_client, 0);
}

static void h_close(harness *h)
{
    h->ops->close(h->st);
    bs_buf *bs[] = {&h->cin, &h->cfwd, &h->cback, &h->uin, &h->ufwd, &h->uback};
    for (size_t i = 0; i < BS_ARRAY_LEN(bs); i++)
        bs_buf_free(bs[i]);
    bs_wbuf_free(&h->to_broker);
    bs_wbuf_free(&h->to_client);
}

/* Feed a frame from one side; what the session sends on is collected
 * (forwarded to the other side, or answered back to the client). */
static bs_status feed(harness *h, bool client, const bs_wbuf *w)
{
    bs_buf *in = client ? &h->cin : &h->uin, *fwd = client ? &h->cfwd : &h->ufwd,
           *back = client ? &h->cback : &h->uback;
    CHECK_EQ(bs_buf_append(in, w->data, w->len), BS_OK);
    bs_status st = BS_OK;
    for (int i = 0; i < 6 && st == BS_OK; i++) {
        st = client ? h->ops->on_client_bytes(h->st, in, fwd, back)
                    : h->ops->on_upstream_bytes(h->st, in, fwd, back);
        bs_wbuf_put(client ? &h->to_broker : &h->to_client, bs_buf_read_ptr(fwd),
                    bs_buf_readable(fwd));
        bs_buf_consume(fwd, bs_buf_readable(fwd));
        if (client) {
            bs_wbuf_put(&h->to_client, bs_buf_read_ptr(back), bs_buf_readable(back));
            bs_buf_consume(back, bs_buf_readable(back));
        }
    }
    return st;
}

static void begin(bs_wbuf *w, int16_t api, int16_t ver, int32_t corr)
{
    bs_wbuf_reset(w);
    bs_wbuf_put_be32(w, 0);
    CHECK_EQ(bs_kafka_put_request_header(w, api, ver, corr, (const uint8_t *)"c", 1), BS_OK);
}
static void end(bs_wbuf *w)
{
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
}
static void cstr(bs_wbuf *w, const char *s)
{
    bs_kafka_put_string(w, true, (const uint8_t *)s, (int32_t)strlen(s));
}

/* Decode the response frame at the start of `w` (api/ver) into a tree. */
static bs_kafka_obj *decode_answer(const bs_wbuf *w, int16_t api, int16_t ver, bs_kafka_arena *a)
{
    int hv;
    bs_kafka_response_header rh;
    if (w->len < 8 || bs_kafka_response_header_version(api, ver, &hv) != BS_OK ||
        bs_kafka_parse_response_header(w->data + 4, w->len - 4, hv, &rh) != BS_OK)
        return NULL;
    bs_kafka_obj *o = NULL;
    const bs_kafka_message *m = bs_kafka_message_find(api, false);
    if (bs_kafka_decode(m, ver, w->data + 4 + rh.header_len, w->len - 4 - rh.header_len, a, &o) !=
        BS_OK)
        return NULL;
    return o;
}

static const bs_kafka_val *field(const bs_kafka_obj *o, const char *name)
{
    int k = bs_kafka_struct_field(o->schema, name);
    return k >= 0 ? &o->vals[k] : NULL;
}

static void test_group_and_cluster_denials(void)
{
    harness h;
    h_open(&h);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    /* FindCoordinator v4: two group keys, one allowed, one not -> whole request denied */
    begin(&w, 10, 4, 1);
    bs_wbuf_put_u8(&w, 0); /* KeyType group */
    bs_kafka_put_array_len(&w, true, 2);
    cstr(&w, "app-group");
    cstr(&w, "other-group");
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    CHECK_EQ(h.to_broker.len, 0);
    bs_kafka_obj *o = decode_answer(&h.to_client, 10, 4, &a);
    CHECK(o != NULL);
    if (o) {
        const bs_kafka_val *cs = field(o, "Coordinators");
        CHECK_EQ(cs->count, 2);
        for (int32_t i = 0; i < cs->count && i < 2; i++) {
            CHECK_EQ(field(&cs->items[i], "ErrorCode")->i, 30);
            CHECK_EQ(field(&cs->items[i], "NodeId")->i, -1);
        }
        if (cs->count == 2) CHECK(memcmp(field(&cs->items[1], "Key")->p, "other-group", 11) == 0);
    }
    /* JoinGroup v9 for a denied group: GROUP_AUTHORIZATION_FAILED */
    bs_wbuf_reset(&h.to_client);
    begin(&w, 11, 9, 2);
    cstr(&w, "other-group");
    bs_wbuf_put_be32(&w, 30000);
    bs_wbuf_put_be32(&w, 30000);
    cstr(&w, "");                           /* member id */
    bs_kafka_put_string(&w, true, NULL, -1); /* group instance id */
    cstr(&w, "consumer");
    bs_kafka_put_array_len(&w, true, 0);
    bs_kafka_put_string(&w, true, NULL, -1); /* reason */
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    bs_kafka_arena_reset(&a);
    o = decode_answer(&h.to_client, 11, 9, &a);
    CHECK(o != NULL);
    if (o) CHECK_EQ(field(o, "ErrorCode")->i, 30);
    /* DescribeCluster v1: CLUSTER_AUTHORIZATION_FAILED */
    bs_wbuf_reset(&h.to_client);
    begin(&w, 60, 1, 3);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_u8(&w, 0); /* endpoint type 0 */
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    bs_kafka_arena_reset(&a);
    o = decode_answer(&h.to_client, 60, 1, &a);
    CHECK(o != NULL);
    if (o) CHECK_EQ(field(o, "ErrorCode")->i, 31);
    CHECK_EQ(h.to_broker.len, 0); /* nothing reached the broker */
    bs_wbuf_free(&w);
    bs_kafka_arena_free(&a);
    h_close(&h);
}

static void test_idempotent_and_unjudged(void)
{
    harness h;
    h_open(&h);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    /* InitProducerId v4 without a transactional id: Write on some topic suffices */
    begin(&w, 22, 4, 1);
    bs_kafka_put_string(&w, true, NULL, -1);
    bs_wbuf_put_be32(&w, 60000);
    bs_wbuf_put_be64(&w, (uint64_t)-1);
    bs_wbuf_put_be16(&w, (uint16_t)-1);
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    CHECK_EQ(h.to_broker.len, w.len); /* forwarded unchanged */
    CHECK(memcmp(h.to_broker.data, w.data, w.len) == 0);
    CHECK_EQ(h.to_client.len, 0);
    h_close(&h);
    /* an API this build has no schema for and the policy cannot judge
     * (DescribeDelegationToken v3): denied, and with no format to answer in,
     * the connection closes; nothing reaches the broker */
    h_open(&h);
    begin(&w, 41, 3, 1);
    bs_kafka_put_array_len(&w, true, -1); /* owners: null */
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK(feed(&h, true, &w) != BS_OK);
    CHECK_EQ(h.to_broker.len, 0);
    CHECK_EQ(h.to_client.len, 0);
    bs_wbuf_free(&w);
    h_close(&h);
}

/* Produce v9 to an allowed and a denied topic: the broker gets the allowed
 * topic only, the client gets both answers. */
static void test_produce_split_flexible(void)
{
    harness h;
    h_open(&h);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    begin(&w, 0, 9, 7);
    bs_kafka_put_string(&w, true, NULL, -1);
    bs_wbuf_put_be16(&w, 1);
    bs_wbuf_put_be32(&w, 1000);
    bs_kafka_put_array_len(&w, true, 2);
    const char *topics[] = {"app-orders", "payroll"};
    for (int t = 0; t < 2; t++) {
        cstr(&w, topics[t]);
        bs_kafka_put_array_len(&w, true, 2);
        for (int p = 0; p < 2; p++) {
            bs_wbuf_put_be32(&w, (uint32_t)p);
            bs_kafka_put_bytes(&w, true, (const uint8_t *)"rec", 3);
            bs_wbuf_put_u8(&w, 0);
        }
        bs_wbuf_put_u8(&w, 0);
    }
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    CHECK(h.to_broker.len > 0 && h.to_broker.len < w.len);
    CHECK(memmem(h.to_broker.data, h.to_broker.len, "payroll", 7) == NULL);
    CHECK(memmem(h.to_broker.data, h.to_broker.len, "app-orders", 10) != NULL);
    /* the broker answers for app-orders only */
    bs_wbuf r;
    bs_wbuf_init(&r, 0);
    bs_wbuf_put_be32(&r, 0);
    bs_wbuf_put_be32(&r, 7);
    bs_wbuf_put_u8(&r, 0);
    bs_kafka_put_array_len(&r, true, 1);
    cstr(&r, "app-orders");
    bs_kafka_put_array_len(&r, true, 2);
    for (int p = 0; p < 2; p++) {
        bs_wbuf_put_be32(&r, (uint32_t)p);
        bs_wbuf_put_be16(&r, 0);
        bs_wbuf_put_be64(&r, 41);
        bs_wbuf_put_be64(&r, (uint64_t)-1);
        bs_wbuf_put_be64(&r, 0);
        bs_kafka_put_array_len(&r, true, 0);
        bs_kafka_put_string(&r, true, NULL, -1);
        bs_wbuf_put_u8(&r, 0);
    }
    bs_wbuf_put_u8(&r, 0);
    bs_wbuf_put_be32(&r, 0);
    bs_wbuf_put_u8(&r, 0);
    end(&r);
    CHECK_EQ(feed(&h, false, &r), BS_OK);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    bs_kafka_obj *o = decode_answer(&h.to_client, 0, 9, &a);
    CHECK(o != NULL);
    if (o) {
        const bs_kafka_val *rs = field(o, "Responses");
        CHECK_EQ(rs->count, 2);
        if (rs->count == 2) {
            const bs_kafka_val *parts = field(&rs->items[1], "PartitionResponses");
            CHECK(memcmp(field(&rs->items[1], "Name")->p, "payroll", 7) == 0);
            CHECK_EQ(parts->count, 2);
            for (int32_t p = 0; p < parts->count; p++) {
                CHECK_EQ(field(&parts->items[p], "ErrorCode")->i, 29);
                CHECK_EQ(field(&parts->items[p], "BaseOffset")->i, -1);
                CHECK_EQ(field(&parts->items[p], "Index")->i, p);
            }
            CHECK_EQ(field(&field(&rs->items[0], "PartitionResponses")->items[0], "BaseOffset")->i,
                     41);
        }
    }
    /* no policy: the same request passes whole */
    const bs_policy *saved = bs_policy_current();
    bs_policy_set_current(NULL);
    bs_wbuf_reset(&h.to_broker);
    bs_wbuf_patch_be32(&w, 8, 8); /* another correlation id */
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    CHECK_EQ(h.to_broker.len, w.len);
    bs_policy_set_current(saved);
    bs_kafka_arena_free(&a);
    bs_wbuf_free(&r);
    bs_wbuf_free(&w);
    h_close(&h);
}

/* A Produce v9 request (acks 1) writing partition 0 of topics t1 and t2. */
static void produce_two(bs_wbuf *w, int32_t corr, const char *t1, const char *t2)
{
    begin(w, 0, 9, corr);
    bs_kafka_put_string(w, true, NULL, -1);
    bs_wbuf_put_be16(w, 1);
    bs_wbuf_put_be32(w, 1000);
    bs_kafka_put_array_len(w, true, 2);
    const char *topics[] = {t1, t2};
    for (int t = 0; t < 2; t++) {
        cstr(w, topics[t]);
        bs_kafka_put_array_len(w, true, 1);
        bs_wbuf_put_be32(w, 0);
        bs_kafka_put_bytes(w, true, (const uint8_t *)"rec", 3);
        bs_wbuf_put_u8(w, 0);
        bs_wbuf_put_u8(w, 0);
    }
    bs_wbuf_put_u8(w, 0);
    end(w);
}

/* The broker's Produce v9 answer (correlation id corr) for partition 0 of `topic`. */
static void produce_answer(bs_wbuf *r, int32_t corr, const char *topic)
{
    bs_wbuf_reset(r);
    bs_wbuf_put_be32(r, 0);
    bs_wbuf_put_be32(r, (uint32_t)corr);
    bs_wbuf_put_u8(r, 0);
    bs_kafka_put_array_len(r, true, 1);
    cstr(r, topic);
    bs_kafka_put_array_len(r, true, 1);
    bs_wbuf_put_be32(r, 0);
    bs_wbuf_put_be16(r, 0);
    bs_wbuf_put_be64(r, 41);
    bs_wbuf_put_be64(r, (uint64_t)-1);
    bs_wbuf_put_be64(r, 0);
    bs_kafka_put_array_len(r, true, 0);
    bs_kafka_put_string(r, true, NULL, -1);
    bs_wbuf_put_u8(r, 0);
    bs_wbuf_put_u8(r, 0);
    bs_wbuf_put_be32(r, 0);
    bs_wbuf_put_u8(r, 0);
    end(r);
}

/* Two split Produce requests in flight with the same correlation id (a
 * client may reuse one): each broker answer is completed with its own
 * request's denied topic, in order. */
static void test_split_reused_correlation_id(void)
{
    harness h;
    h_open(&h);
    bs_wbuf w, r;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&r, 0);
    produce_two(&w, 5, "app-a", "payroll");
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    produce_two(&w, 5, "app-b", "secrets");
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    CHECK(memmem(h.to_broker.data, h.to_broker.len, "payroll", 7) == NULL);
    CHECK(memmem(h.to_broker.data, h.to_broker.len, "secrets", 7) == NULL);
    produce_answer(&r, 5, "app-a");
    CHECK_EQ(feed(&h, false, &r), BS_OK);
    CHECK(memmem(h.to_client.data, h.to_client.len, "payroll", 7) != NULL);
    CHECK(memmem(h.to_client.data, h.to_client.len, "secrets", 7) == NULL);
    bs_wbuf_reset(&h.to_client);
    produce_answer(&r, 5, "app-b");
    CHECK_EQ(feed(&h, false, &r), BS_OK);
    CHECK(memmem(h.to_client.data, h.to_client.len, "secrets", 7) != NULL);
    CHECK(memmem(h.to_client.data, h.to_client.len, "payroll", 7) == NULL);
    bs_wbuf_free(&r);
    bs_wbuf_free(&w);
    h_close(&h);
}

/* Produce v13 names topics by id. A principal that may Read a topic but not
 * Write it must not produce to it by id: the id (learnt from a Metadata
 * answer) is judged for Write like a name, and the request is answered by
 * the sidecar with TOPIC_AUTHORIZATION_FAILED instead of being forwarded. */
static void test_produce_by_topic_id_needs_write(void)
{
    static const uint8_t id[16] = {0x7a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0x7b};
    cJSON *j = cJSON_Parse("{\"default\":\"deny\",\"rules\":[{\"principal\":\"User:CN=app,O=x\","
                           "\"operations\":[\"Read\",\"Describe\"],\"resource_type\":\"Topic\","
                           "\"resource_name\":\"ro-topic\",\"permission\":\"ALLOW\"}]}");
    bs_policy *ro = NULL;
    CHECK_EQ(bs_policy_parse(j, NULL, NULL, &ro), BS_OK);
    cJSON_Delete(j);
    const bs_policy *saved = bs_policy_current();
    bs_policy_set_current(ro);
    harness h;
    h_open(&h);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    /* Metadata v12 for every topic; the broker's answer names ro-topic's id */
    begin(&w, BS_KAFKA_METADATA, 12, 1);
    bs_kafka_put_array_len(&w, true, -1);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    bs_wbuf_reset(&w);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_be32(&w, 1);
    bs_wbuf_put_u8(&w, 0);                   /* header tags */
    bs_wbuf_put_be32(&w, 0);                 /* throttle */
    bs_kafka_put_array_len(&w, true, 0);     /* no brokers */
    bs_kafka_put_string(&w, true, NULL, -1); /* cluster id */
    bs_wbuf_put_be32(&w, 1);                 /* controller */
    bs_kafka_put_array_len(&w, true, 1);
    bs_wbuf_put_be16(&w, 0);
    cstr(&w, "ro-topic");
    bs_wbuf_put(&w, id, 16);
    bs_wbuf_put_u8(&w, 0);               /* internal */
    bs_kafka_put_array_len(&w, true, 0); /* partitions */
    bs_wbuf_put_be32(&w, 0);             /* authorized operations */
    bs_wbuf_put_u8(&w, 0);               /* topic tags */
    bs_wbuf_put_u8(&w, 0);               /* tags */
    end(&w);
    CHECK_EQ(feed(&h, false, &w), BS_OK);
    char name[64];
    CHECK(bs_kafka_topic_id_lookup(id, name, sizeof name));
    /* Produce v13 to ro-topic by id */
    bs_wbuf_reset(&h.to_broker);
    bs_wbuf_reset(&h.to_client);
    begin(&w, 0, 13, 2);
    bs_kafka_put_string(&w, true, NULL, -1);
    bs_wbuf_put_be16(&w, 1);
    bs_wbuf_put_be32(&w, 1000);
    bs_kafka_put_array_len(&w, true, 1);
    bs_wbuf_put(&w, id, 16);
    bs_kafka_put_array_len(&w, true, 1);
    bs_wbuf_put_be32(&w, 0);
    bs_kafka_put_bytes(&w, true, (const uint8_t *)"rec", 3);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    CHECK_EQ(h.to_broker.len, 0);
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    bs_kafka_obj *o = decode_answer(&h.to_client, 0, 13, &a);
    CHECK(o != NULL);
    if (o) {
        const bs_kafka_val *rs = field(o, "Responses");
        CHECK_EQ(rs->count, 1);
        if (rs->count == 1) {
            CHECK(memcmp(field(&rs->items[0], "TopicId")->p, id, 16) == 0);
            const bs_kafka_val *parts = field(&rs->items[0], "PartitionResponses");
            CHECK_EQ(parts->count, 1);
            if (parts->count == 1) CHECK_EQ(field(&parts->items[0], "ErrorCode")->i, 29);
        }
    }
    /* Fetch v15 as a follower (tagged ReplicaState, ReplicaId 1) of the same
     * topic: Read on the topic is not enough, ClusterAction is needed */
    bs_wbuf_reset(&h.to_broker);
    bs_wbuf_reset(&h.to_client);
    begin(&w, BS_KAFKA_FETCH, 15, 3);
    bs_wbuf_put_be32(&w, 500);  /* MaxWaitMs */
    bs_wbuf_put_be32(&w, 1);    /* MinBytes */
    bs_wbuf_put_be32(&w, 1000); /* MaxBytes */
    bs_wbuf_put_u8(&w, 0);      /* IsolationLevel */
    bs_wbuf_put_be32(&w, 0);    /* SessionId */
    bs_wbuf_put_be32(&w, -1);   /* SessionEpoch */
    bs_kafka_put_array_len(&w, true, 1);
    bs_wbuf_put(&w, id, 16);
    bs_kafka_put_array_len(&w, true, 0); /* partitions */
    bs_wbuf_put_u8(&w, 0);
    bs_kafka_put_array_len(&w, true, 0); /* forgotten topics */
    cstr(&w, "");                        /* rack */
    bs_wbuf_put_u8(&w, 1);               /* one tagged field: */
    bs_wbuf_put_u8(&w, 1);               /* tag 1, ReplicaState */
    bs_wbuf_put_u8(&w, 13);
    bs_wbuf_put_be32(&w, 1);             /* ReplicaId */
    bs_wbuf_put_be64(&w, 7);             /* ReplicaEpoch */
    bs_wbuf_put_u8(&w, 0);
    end(&w);
    CHECK_EQ(feed(&h, true, &w), BS_OK);
    CHECK_EQ(h.to_broker.len, 0);
    o = decode_answer(&h.to_client, BS_KAFKA_FETCH, 15, &a);
    CHECK(o != NULL);
    if (o) CHECK_EQ(field(o, "ErrorCode")->i, 31);
    bs_kafka_arena_free(&a);
    bs_wbuf_free(&w);
    h_close(&h);
    bs_policy_set_current(saved);
    bs_policy_free(ro);
}

int main(void)
{
    const char *doc =
        "{\"default\":\"deny\",\"rules\":["
        "{\"principal\":\"User:CN=app,O=x\",\"operations\":[\"Write\",\"Describe\"],"
        "\"resource_type\":\"Topic\",\"resource_name\":\"app-\",\"pattern_type\":\"PREFIXED\","
        "\"permission\":\"ALLOW\"},"
        "{\"principal\":\"User:CN=app,O=x\",\"operation\":\"Read\",\"resource_type\":\"Group\","
        "\"resource_name\":\"app-group\",\"permission\":\"ALLOW\"},"
        "{\"principal\":\"User:CN=app,O=x\",\"operation\":\"Describe\",\"resource_type\":\"Group\","
        "\"resource_name\":\"app-group\",\"permission\":\"ALLOW\"}]}";
    cJSON *j = cJSON_Parse(doc);
    bs_policy *pol = NULL;
    CHECK_EQ(bs_policy_parse(j, NULL, NULL, &pol), BS_OK);
    cJSON_Delete(j);
    bs_policy_set_current(pol);
    CHECK_EQ(bs_authz_new(NULL, &g_az), BS_OK);
    g_fac.hooks = bs_authz_hook(g_az);
    g_fac.n_hooks = 1;
    RUN(test_group_and_cluster_denials);
    RUN(test_idempotent_and_unjudged);
    RUN(test_produce_split_flexible);
    RUN(test_split_reused_correlation_id);
    RUN(test_produce_by_topic_id_needs_write);
    bs_policy_set_current(NULL);
    bs_authz_free(g_az);
    bs_policy_free(pol);
    bs_kafka_session_reset_globals();
    bs_metrics_shutdown();
    return test_report();
}
