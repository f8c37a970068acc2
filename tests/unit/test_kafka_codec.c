/* Unit tests for the schema-driven codec (src/kafka/kafka_schema.c) and the
 * rewriter (src/kafka/kafka_rewrite.c): every generated message at every
 * version in the schemas, both encodings, built from the schema tables with
 * fixed seeds, round-tripped byte for byte, rewritten, and truncated. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

#include "brokerside/kafka_rewrite.h"
#include "brokerside/kafka_schema.h"
#include "kafka_gen.h"
#include "test.h"

#define SEEDS 6

/* node -> proxy-<id>.example:9000+id for ids 1..3; everything else unmapped. */
static bs_status map_fwd(void *arg, int32_t node, const bs_kafka_addr *was,
                   char *host, size_t hostlen, int32_t *port)
{
    (void)was;
    (void)arg;
    if (node < 1 || node > 3) return BS_E_NOT_FOUND;
    snprintf(host, hostlen, "proxy-%d.example", (int)node);
    *port = 9000 + node;
    return BS_OK;
}

/* The inverse of the generator's endpoint values. */
static bs_status map_back(void *arg, int32_t node, const bs_kafka_addr *was,
                   char *host, size_t hostlen, int32_t *port)
{
    (void)was;
    (void)arg;
    snprintf(host, hostlen, "broker-%d.real", (int)node);
    *port = 19000 + node;
    return BS_OK;
}

static bs_status map_none(void *arg, int32_t node, const bs_kafka_addr *was,
                   char *host, size_t hostlen, int32_t *port)
{
    (void)was;
    (void)arg, (void)node, (void)host, (void)hostlen, (void)port;
    return BS_E_NOT_FOUND;
}

static bool contains(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0) return true;
    return false;
}

/* Scan visitor: counts Host values and checks they are proxy addresses. */
typedef struct host_check {
    int hosts;
    int bad;
} host_check;

static bs_status visit_hosts(void *arg, const bs_kafka_field *f, const bs_kafka_val *v, int event)
{
    host_check *h = arg;
    if (event != BS_KAFKA_VISIT_VALUE || strcmp(f->name, "Host") != 0) return BS_OK;
    h->hosts++;
    if (v->n < 6 || memcmp(v->p, "proxy-", 6) != 0) h->bad++;
    return BS_OK;
}

/* The frame-level call gives: size + the original response header + the body
 * rewrite's output (`body_out`, `body_changed`), for both header versions. */
static void frame_check(const bs_kafka_message *m, int16_t v, const bs_wbuf *body,
                        const bs_wbuf *body_out, bool body_changed)
{
    int hv;
    CHECK_EQ(bs_kafka_response_header_version(m->api_key, v, &hv), BS_OK);
    bs_wbuf payload, out;
    bs_wbuf_init(&payload, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_put_be32(&payload, 4242);
    size_t hlen = 4;
    if (hv == 1) {
        const uint8_t tags[] = {1, 3, 2, 'h', 'i'}; /* an unknown header tag rides along */
        bs_wbuf_put(&payload, tags, sizeof tags);
        hlen += sizeof tags;
    }
    bs_wbuf_put(&payload, body->data, body->len);
    bs_wbuf_put_u8(&out, 0xEE); /* existing content must be kept */
    bool changed = !body_changed;
    int32_t bad;
    CHECK_EQ(bs_kafka_rewrite_response_frame(m->api_key, v, payload.data, payload.len, map_fwd,
                                             NULL, NULL, &out, &changed, &bad),
             BS_OK);
    CHECK_EQ(changed, body_changed);
    if (changed) {
        CHECK_EQ(out.len, 1 + 4 + hlen + body_out->len);
        bs_cursor c;
        uint32_t size;
        bs_cursor_init(&c, out.data + 1, out.len - 1);
        CHECK_EQ(bs_read_be32(&c, &size), BS_OK);
        CHECK_EQ(size, hlen + body_out->len);
        CHECK(memcmp(out.data + 5, payload.data, hlen) == 0);
        CHECK(memcmp(out.data + 5 + hlen, body_out->data, body_out->len) == 0);
    } else {
        CHECK_EQ(out.len, 1);
    }
    /* a truncated header is refused when the response must be decoded */
    if (bs_kafka_response_has_endpoints(m->api_key, v)) {
        bs_wbuf_reset(&out);
        CHECK_EQ(bs_kafka_rewrite_response_frame(m->api_key, v, payload.data, 3, map_fwd, NULL,
                                                 NULL, &out, &changed, &bad),
                 BS_E_MALFORMED);
        CHECK_EQ(out.len, 0);
    }
    bs_wbuf_free(&payload);
    bs_wbuf_free(&out);
}

static int rewrites_done;

static void round_trip_one(const bs_kafka_message *m, int16_t v, uint64_t seed, int *checked)
{
    kgen g = {.state = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)v + 1};
    bs_wbuf in, out;
    bs_kafka_arena a;
    bs_kafka_obj *root = NULL;
    bs_wbuf_init(&in, 0);
    bs_wbuf_init(&out, 0);
    bs_kafka_arena_init(&a, 0);
    kgen_message(&g, m, v, &in);
    CHECK_EQ(bs_wbuf_status(&in), BS_OK);

    bs_status st = bs_kafka_decode(m, v, in.data, in.len, &a, &root);
    if (st != BS_OK)
        fprintf(stderr, "  decode %s v%d seed %llu: %s\n", m->name, v, (unsigned long long)seed,
                bs_status_name(st));
    CHECK_EQ(st, BS_OK);
    if (st == BS_OK) {
        CHECK_EQ(bs_kafka_encode(m, v, root, &out), BS_OK);
        CHECK_EQ(out.len, in.len);
        CHECK(out.len == in.len && (in.len == 0 || memcmp(out.data, in.data, in.len) == 0));
    }
    /* scan mode accepts exactly what decode accepts */
    host_check hc = {0};
    CHECK_EQ(bs_kafka_scan(m, v, in.data, in.len, visit_hosts, &hc), BS_OK);

    /* truncated at every offset: a clean error, never success */
    for (size_t cut = 0; cut < in.len; cut++) {
        bs_kafka_arena_reset(&a);
        st = bs_kafka_decode(m, v, in.data, cut, &a, &root);
        if (st != BS_E_MALFORMED) {
            fprintf(stderr, "  %s v%d cut %zu/%zu: %s\n", m->name, v, cut, in.len,
                    bs_status_name(st));
            CHECK_EQ(st, BS_E_MALFORMED);
            break;
        }
    }
    /* trailing garbage is rejected too */
    bs_wbuf_put_u8(&in, 0);
    bs_kafka_arena_reset(&a);
    CHECK_EQ(bs_kafka_decode(m, v, in.data, in.len, &a, &root), BS_E_MALFORMED);
    in.len--;

    if (!m->is_request && m->api_key != BS_KAFKA_API_VERSIONS) {
        bool changed = false;
        int32_t bad = 0;
        bs_wbuf rw, back;
        bs_wbuf_init(&rw, 0);
        bs_wbuf_init(&back, 0);
        st = bs_kafka_rewrite_response(m->api_key, v, in.data, in.len, map_fwd, NULL, NULL, &rw,
                                       &changed, &bad);
        CHECK_EQ(st, BS_OK);
        CHECK_EQ(changed, g.endpoints > 0);
        rewrites_done += changed;
        if (changed) {
            /* no real address left, every Host is a proxy address, count unchanged */
            CHECK(!contains(rw.data, rw.len, "real"));
            host_check h2 = {0};
            CHECK_EQ(bs_kafka_scan(m, v, rw.data, rw.len, visit_hosts, &h2), BS_OK);
            CHECK_EQ(h2.bad, 0);
            CHECK_EQ(h2.hosts, hc.hosts);
            /* mapping back restores the input byte for byte: nothing else changed */
            bool changed2 = false;
            CHECK_EQ(bs_kafka_rewrite_response(m->api_key, v, rw.data, rw.len, map_back, NULL, NULL,
                                               &back, &changed2, &bad),
                     BS_OK);
            CHECK(changed2 && back.len == in.len && memcmp(back.data, in.data, in.len) == 0);
            /* unmapped node: error naming a node in 1..3, never success */
            bs_wbuf_reset(&back);
            bad = 0;
            CHECK_EQ(bs_kafka_rewrite_response(m->api_key, v, in.data, in.len, map_none, NULL, NULL,
                                               &back, &changed2, &bad),
                     BS_E_NOT_FOUND);
            CHECK(bad >= 1 && bad <= 3);
            CHECK(!changed2);
        } else {
            CHECK_EQ(rw.len, 0);
        }
        frame_check(m, v, &in, &rw, changed);
        /* truncated rewrite input: error, never a rewritten body */
        for (size_t cut = 0; cut < in.len && bs_kafka_response_has_endpoints(m->api_key, v);
             cut += 7) {
            bs_wbuf_reset(&rw);
            st = bs_kafka_rewrite_response(m->api_key, v, in.data, cut, map_fwd, NULL, NULL, &rw,
                                           &changed, &bad);
            CHECK(st == BS_E_MALFORMED);
            if (st != BS_E_MALFORMED) break;
        }
        bs_wbuf_free(&rw);
        bs_wbuf_free(&back);
    }
    (*checked)++;
    bs_kafka_arena_free(&a);
    bs_wbuf_free(&in);
    bs_wbuf_free(&out);
}

/* Every generated message x every version x SEEDS seeds. */
static void test_every_message_every_version(void)
{
    int checked = 0;
    for (size_t i = 0; i < bs_kafka_messages_count; i++) {
        const bs_kafka_message *m = &bs_kafka_messages[i];
        for (int16_t v = m->min_version; v <= m->max_version; v++)
            for (uint64_t s = 1; s <= SEEDS; s++)
                round_trip_one(m, v, s, &checked);
    }
    CHECK(checked > 300);
    CHECK(rewrites_done > 100);
    fprintf(stderr, "  %d message/version/seed cases, %d rewritten\n", checked, rewrites_done);
}

/* The endpoint-carrying messages really are covered, with both encodings. */
static void test_coverage_of_rewritten_apis(void)
{
    static const int16_t keys[] = {BS_KAFKA_METADATA,
                                   BS_KAFKA_FIND_COORDINATOR,
                                   BS_KAFKA_DESCRIBE_CLUSTER,
                                   BS_KAFKA_PRODUCE,
                                   BS_KAFKA_FETCH,
                                   BS_KAFKA_API_VERSIONS,
                                   BS_KAFKA_SHARE_FETCH,
                                   BS_KAFKA_SHARE_ACKNOWLEDGE,
                                   BS_KAFKA_DESCRIBE_QUORUM};
    for (size_t i = 0; i < BS_ARRAY_LEN(keys); i++) {
        const bs_kafka_message *m = bs_kafka_message_find(keys[i], false);
        CHECK(m != NULL);
        if (!m) continue;
        const bs_kafka_api_info *a = bs_kafka_api(keys[i]);
        CHECK_EQ(m->min_version, a->min_version);
        CHECK_EQ(m->max_version, a->max_version);
        /* Produce v13 (topic ids only) is capped by policy, see kafka_rewrite.c */
        CHECK_EQ(bs_kafka_max_supported_version(keys[i]),
                 keys[i] == BS_KAFKA_PRODUCE ? 12 : m->max_version);
        if (keys[i] <= BS_KAFKA_API_VERSIONS)
            CHECK(m->flex_min > m->min_version); /* classic versions exist */
        CHECK(m->flex_min <= m->max_version);    /* flexible too */
    }
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_PRODUCE, 10));
    CHECK(!bs_kafka_response_has_endpoints(BS_KAFKA_PRODUCE, 9));
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_FETCH, 16));
    CHECK(!bs_kafka_response_has_endpoints(BS_KAFKA_FETCH, 15));
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_FIND_COORDINATOR, 0));
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_FIND_COORDINATOR, 6));
    CHECK(!bs_kafka_response_has_endpoints(BS_KAFKA_API_VERSIONS, 3));
    CHECK(!bs_kafka_response_has_endpoints(BS_KAFKA_DESCRIBE_QUORUM, 1));
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_DESCRIBE_QUORUM, 2));
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_SHARE_FETCH, 1));
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_SHARE_ACKNOWLEDGE, 2));
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_METADATA, 13));
    CHECK(bs_kafka_response_has_endpoints(BS_KAFKA_DESCRIBE_CLUSTER, 2));
    /* ListOffsets is never decoded: capped at the table's max; unknown keys are not served */
    CHECK_EQ(bs_kafka_max_supported_version(2), bs_kafka_api(2)->max_version);
    CHECK_EQ(bs_kafka_max_supported_version(999), -1);
    CHECK_EQ(bs_kafka_max_supported_version(4), -1); /* LeaderAndIsr: removed in Kafka 4 */
    /* the generated masks and struct indexes agree with the name-based rule */
    for (size_t i = 0; i < bs_kafka_messages_count; i++) {
        const bs_kafka_message *m = &bs_kafka_messages[i];
        for (int16_t v = m->min_version; v <= m->max_version; v++)
            CHECK_EQ((m->endpoint_versions >> v) & 1, bs_kafka_struct_has_endpoints(m->body, v));
        const bs_kafka_struct *b = m->body;
        CHECK_EQ(b->host_idx, bs_kafka_struct_field(b, "Host"));
        CHECK_EQ(b->port_idx, bs_kafka_struct_field(b, "Port"));
        CHECK_EQ(b->error_idx, bs_kafka_struct_field(b, "ErrorCode"));
    }
}

/* A hand-built FindCoordinator v0..v3 error answer passes through; a leaked
 * host in an error answer is blanked; a v4 batched error entry likewise. */
static void test_find_coordinator_errors(void)
{
    for (int16_t v = 0; v <= 3; v++) {
        bool flex = v >= 3;
        bs_wbuf w, out;
        bs_wbuf_init(&w, 0);
        bs_wbuf_init(&out, 0);
        if (v >= 1) bs_wbuf_put_be32(&w, 0); /* throttle */
        bs_wbuf_put_be16(&w, 15);            /* COORDINATOR_NOT_AVAILABLE */
        if (v >= 1) bs_kafka_put_string(&w, flex, NULL, -1);
        bs_wbuf_put_be32(&w, (uint32_t)-1); /* node -1 */
        bs_kafka_put_string(&w, flex, (const uint8_t *)"", 0);
        bs_wbuf_put_be32(&w, (uint32_t)-1);
        if (flex) bs_wbuf_put_uvarint(&w, 0);
        bool changed = true;
        int32_t bad = 0;
        CHECK_EQ(bs_kafka_rewrite_response(BS_KAFKA_FIND_COORDINATOR, v, w.data, w.len, map_none,
                                           NULL, NULL, &out, &changed, &bad),
                 BS_OK);
        CHECK(!changed);
        CHECK_EQ(out.len, 0);
        bs_wbuf_free(&w);
        bs_wbuf_free(&out);
    }
    /* v4: one error entry with a (leaking) host, one good entry */
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_put_be32(&w, 0);
    bs_kafka_put_array_len(&w, true, 2);
    bs_kafka_put_string(&w, true, (const uint8_t *)"g1", 2);
    bs_wbuf_put_be32(&w, (uint32_t)-1);
    bs_kafka_put_string(&w, true, (const uint8_t *)"leak.real", 9);
    bs_wbuf_put_be32(&w, 9092);
    bs_wbuf_put_be16(&w, 15);
    bs_kafka_put_string(&w, true, NULL, -1);
    bs_wbuf_put_uvarint(&w, 0);
    bs_kafka_put_string(&w, true, (const uint8_t *)"g2", 2);
    bs_wbuf_put_be32(&w, 2);
    bs_kafka_put_string(&w, true, (const uint8_t *)"b2.real", 7);
    bs_wbuf_put_be32(&w, 9092);
    bs_wbuf_put_be16(&w, 0);
    bs_kafka_put_string(&w, true, NULL, -1);
    bs_wbuf_put_uvarint(&w, 0);
    bs_wbuf_put_uvarint(&w, 0);
    bool changed = false;
    int32_t bad = 0;
    CHECK_EQ(bs_kafka_rewrite_response(BS_KAFKA_FIND_COORDINATOR, 4, w.data, w.len, map_fwd, NULL,
                                       NULL, &out, &changed, &bad),
             BS_OK);
    CHECK(changed);
    CHECK(!contains(out.data, out.len, "real"));
    CHECK(contains(out.data, out.len, "proxy-2.example"));
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

static char longhost[BS_KAFKA_MAX_HOST + 1];

/* Maps every node to a 200-byte host name. */
static bs_status map_long(void *arg, int32_t node, const bs_kafka_addr *was,
                   char *host, size_t hostlen, int32_t *port)
{
    (void)was;
    (void)arg, (void)node;
    snprintf(host, hostlen, "%s", longhost);
    *port = 1;
    return BS_OK;
}

/* Metadata v12 (flexible) with a 200-byte host: compact length grows from 1 to 2 bytes. */
static void test_compact_length_changes(void)
{
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_put_be32(&w, 0);             /* throttle */
    bs_kafka_put_array_len(&w, true, 1); /* brokers */
    bs_wbuf_put_be32(&w, 1);
    bs_kafka_put_string(&w, true, (const uint8_t *)"h", 1);
    bs_wbuf_put_be32(&w, 9092);
    bs_kafka_put_string(&w, true, NULL, -1); /* rack */
    bs_wbuf_put_uvarint(&w, 0);
    bs_kafka_put_string(&w, true, NULL, -1); /* cluster id */
    bs_wbuf_put_be32(&w, 1);                 /* controller */
    bs_kafka_put_array_len(&w, true, 0);     /* topics */
    bs_wbuf_put_uvarint(&w, 0);
    memset(longhost, 'x', 200);
    longhost[200] = '\0';
    bool changed = false;
    int32_t bad = 0;
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    CHECK_EQ(bs_kafka_rewrite_response(BS_KAFKA_METADATA, 12, w.data, w.len, map_fwd, NULL, &a,
                                       &out, &changed, &bad),
             BS_OK);
    CHECK(changed);
    CHECK_EQ(out.len, w.len - 1 + strlen("proxy-1.example"));
    /* 200 bytes: the compact length prefix grows from one byte to two */
    bs_wbuf_reset(&out);
    CHECK_EQ(bs_kafka_rewrite_response(BS_KAFKA_METADATA, 12, w.data, w.len, map_long, NULL, &a,
                                       &out, &changed, &bad),
             BS_OK);
    CHECK_EQ(out.len, w.len - 1 + 200 + 1);
    bs_kafka_obj *root;
    bs_kafka_arena_reset(&a);
    CHECK_EQ(bs_kafka_decode(bs_kafka_message_find(BS_KAFKA_METADATA, false), 12, out.data, out.len,
                             &a, &root),
             BS_OK);
    CHECK_EQ(root->vals[1].items[0].vals[1].n, 200);
    CHECK_EQ(root->vals[1].items[0].vals[2].i, 1);
    bs_kafka_arena_free(&a);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

/* What map_seen saw per node id (index), set by the map function. */
typedef struct seen_addr {
    bool called, shared;
    char host[64];
    int32_t port;
} seen_addr;

/* Records `was` per node, maps every node to "p:1". */
static bs_status map_seen(void *arg, int32_t node, const bs_kafka_addr *was, char *host,
                          size_t hostlen, int32_t *port)
{
    seen_addr *s = arg;
    if (node >= 0 && node < 8) {
        s[node].called = true;
        s[node].shared = was->shared;
        snprintf(s[node].host, sizeof s[node].host, "%.*s", (int)was->host_len, was->host);
        s[node].port = was->port;
    }
    snprintf(host, hostlen, "p");
    *port = 1;
    return BS_OK;
}

/* The map function sees each node's address as the broker wrote it, and
 * whether another node of the response advertises the same one. */
static void test_map_sees_advertised_address(void)
{
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    static const struct {
        int32_t id;
        const char *host;
        int32_t port;
    } brokers[] = {{1, "127.0.0.1", 9092}, {2, "LOCALHOST", 9092}, {3, "localhost", 9092},
                   {4, "127.0.0.1", 9093}};
    bs_wbuf_put_be32(&w, 0);             /* throttle */
    bs_kafka_put_array_len(&w, true, 4); /* brokers */
    for (size_t i = 0; i < 4; i++) {
        bs_wbuf_put_be32(&w, (uint32_t)brokers[i].id);
        bs_kafka_put_string(&w, true, (const uint8_t *)brokers[i].host,
                            (int32_t)strlen(brokers[i].host));
        bs_wbuf_put_be32(&w, (uint32_t)brokers[i].port);
        bs_kafka_put_string(&w, true, NULL, -1); /* rack */
        bs_wbuf_put_uvarint(&w, 0);
    }
    bs_kafka_put_string(&w, true, NULL, -1); /* cluster id */
    bs_wbuf_put_be32(&w, 1);                 /* controller */
    bs_kafka_put_array_len(&w, true, 0);     /* topics */
    bs_wbuf_put_uvarint(&w, 0);
    seen_addr seen[8] = {0};
    bool changed = false;
    int32_t bad = 0;
    CHECK_EQ(bs_kafka_rewrite_response(BS_KAFKA_METADATA, 12, w.data, w.len, map_seen, seen, NULL,
                                       &out, &changed, &bad),
             BS_OK);
    CHECK(changed);
    CHECK(seen[1].called && seen[4].called);
    CHECK_STR(seen[1].host, "127.0.0.1");
    CHECK_EQ(seen[1].port, 9092);
    CHECK_STR(seen[2].host, "LOCALHOST");
    CHECK(!seen[1].shared);                  /* same port as 2 and 3, another host */
    CHECK(seen[2].shared && seen[3].shared); /* hosts compare case-insensitively */
    CHECK(!seen[4].shared);                  /* same host as 1, another port */
    /* FindCoordinator v4: two coordinators on one node are the same node, not shared */
    bs_wbuf_reset(&w);
    bs_wbuf_reset(&out);
    bs_wbuf_put_be32(&w, 0);             /* throttle */
    bs_kafka_put_array_len(&w, true, 2); /* coordinators */
    for (int i = 0; i < 2; i++) {
        bs_kafka_put_string(&w, true, (const uint8_t *)(i ? "g2" : "g1"), 2); /* key */
        bs_wbuf_put_be32(&w, 5);                                              /* node */
        bs_kafka_put_string(&w, true, (const uint8_t *)"h", 1);
        bs_wbuf_put_be32(&w, 9092);
        bs_wbuf_put_be16(&w, 0);                 /* error */
        bs_kafka_put_string(&w, true, NULL, -1); /* message */
        bs_wbuf_put_uvarint(&w, 0);
    }
    bs_wbuf_put_uvarint(&w, 0);
    memset(seen, 0, sizeof seen);
    CHECK_EQ(bs_kafka_rewrite_response(BS_KAFKA_FIND_COORDINATOR, 4, w.data, w.len, map_seen, seen,
                                       NULL, &out, &changed, &bad),
             BS_OK);
    CHECK(seen[5].called && !seen[5].shared);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

/* A synthetic self-nesting schema shows the depth bound holds even if a schema recursed. */
static const bs_kafka_struct nest_struct;
static const bs_kafka_field nest_fields[] = {
    {"Child", BS_KT_ARRAY, BS_KT_STRUCT, 0, 0x7fff, 0, 0x7fff, 1, 0, -1, &nest_struct},
};
static const bs_kafka_struct nest_struct = {"Nest", nest_fields, 1, -1, -1, -1, -1, false};

static void test_depth_bound(void)
{
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = 2; /* compact count 1, over and over */
    bs_kafka_arena a;
    bs_kafka_arena_init(&a, 0);
    bs_cursor c;
    bs_cursor_init(&c, buf, sizeof buf);
    bs_kafka_obj *o;
    CHECK_EQ(bs_kafka_decode_struct(&nest_struct, 0, true, &c, &a, 0, &o), BS_E_MALFORMED);
    /* shallow nesting is fine: 1 child, then null child array, then tags */
    const uint8_t ok[] = {2, 0, 0, 0};
    bs_kafka_arena_reset(&a);
    bs_cursor_init(&c, ok, sizeof ok);
    CHECK_EQ(bs_kafka_decode_struct(&nest_struct, 0, true, &c, &a, 0, &o), BS_OK);
    CHECK_EQ(bs_cursor_remaining(&c), 0);
    bs_kafka_arena_free(&a);
}

/* Hostile counts fail before allocating; the arena limit bounds memory. */
static void test_hostile_counts_and_arena_limit(void)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_METADATA, false);
    bs_kafka_arena a;
    bs_kafka_obj *o;
    bs_kafka_arena_init(&a, 4096);
    /* v0: brokers count 0x7fffffff in a 16-byte body */
    uint8_t b[16] = {0x7f, 0xff, 0xff, 0xff};
    CHECK_EQ(bs_kafka_decode(m, 0, b, sizeof b, &a, &o), BS_E_MALFORMED);
    /* negative count other than -1 */
    uint8_t neg[8] = {0xff, 0xff, 0xff, 0xfe};
    bs_kafka_arena_reset(&a);
    CHECK_EQ(bs_kafka_decode(m, 0, neg, sizeof neg, &a, &o), BS_E_MALFORMED);
    /* null brokers array where the schema allows none */
    uint8_t nul[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    bs_kafka_arena_reset(&a);
    CHECK_EQ(bs_kafka_decode(m, 0, nul, sizeof nul, &a, &o), BS_E_MALFORMED);
    /* version outside the schema */
    CHECK_EQ(bs_kafka_decode(m, m->max_version + 1, b, sizeof b, &a, &o), BS_E_UNSUPPORTED);
    CHECK_EQ(bs_kafka_decode(m, -1, b, sizeof b, &a, &o), BS_E_UNSUPPORTED);
    /* a legal but large message exceeds a small arena limit: TOO_LARGE, not a crash */
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_be32(&w, 200);
    for (int i = 0; i < 200; i++) {
        bs_wbuf_put_be32(&w, 1);
        bs_kafka_put_string(&w, false, (const uint8_t *)"h", 1);
        bs_wbuf_put_be32(&w, 1);
    }
    bs_wbuf_put_be32(&w, 0);
    bs_kafka_arena_reset(&a);
    CHECK_EQ(bs_kafka_decode(m, 0, w.data, w.len, &a, &o), BS_E_TOO_LARGE);
    bs_kafka_arena_free(&a);
    bs_kafka_arena_init(&a, 0);
    CHECK_EQ(bs_kafka_decode(m, 0, w.data, w.len, &a, &o), BS_OK);
    bs_kafka_arena_free(&a);
    bs_wbuf_free(&w);
}

/* Out-of-order and duplicate tags, and a known tag whose value is shorter than its size. */
static void test_bad_tag_sections(void)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_DESCRIBE_CLUSTER, false);
    /* DescribeCluster v0 minimal body prefix */
    bs_wbuf w;
    bs_kafka_arena a;
    bs_kafka_obj *o;
    bs_kafka_arena_init(&a, 0);
    for (int variant = 0; variant < 3; variant++) {
        bs_wbuf_init(&w, 0);
        bs_wbuf_put_be32(&w, 0);
        bs_wbuf_put_be16(&w, 0);
        bs_kafka_put_string(&w, true, NULL, -1);
        bs_kafka_put_string(&w, true, (const uint8_t *)"c", 1);
        bs_wbuf_put_be32(&w, 1);
        bs_kafka_put_array_len(&w, true, 0);
        bs_wbuf_put_be32(&w, 0);
        if (variant == 0) { /* tags 5 then 5 */
            const uint8_t t[] = {2, 5, 0, 5, 0};
            bs_wbuf_put(&w, t, sizeof t);
        } else if (variant == 1) { /* tags 9 then 4 */
            const uint8_t t[] = {2, 9, 0, 4, 0};
            bs_wbuf_put(&w, t, sizeof t);
        } else { /* size beyond the end */
            const uint8_t t[] = {1, 9, 50, 1};
            bs_wbuf_put(&w, t, sizeof t);
        }
        bs_kafka_arena_reset(&a);
        CHECK_EQ(bs_kafka_decode(m, 0, w.data, w.len, &a, &o), BS_E_MALFORMED);
        bs_wbuf_free(&w);
    }
    /* Produce v10: NodeEndpoints (tag 0) whose value is followed by junk inside its size */
    const bs_kafka_message *pm = bs_kafka_message_find(BS_KAFKA_PRODUCE, false);
    bs_wbuf_init(&w, 0);
    bs_kafka_put_array_len(&w, true, 0);    /* responses */
    bs_wbuf_put_be32(&w, 0);                /* throttle */
    const uint8_t t[] = {1, 0, 2, 1, 0xAA}; /* tag 0 size 2: empty array + one junk byte */
    bs_wbuf_put(&w, t, sizeof t);
    bs_kafka_arena_reset(&a);
    CHECK_EQ(bs_kafka_decode(pm, 10, w.data, w.len, &a, &o), BS_E_MALFORMED);
    bs_wbuf_free(&w);
    bs_kafka_arena_free(&a);
}

/* Writes one corpus file <dir>/<target>/<name>. */
static void write_seed(const char *dir, const char *target, const char *name, const uint8_t *p,
                       size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* With BS_WRITE_FUZZ_CORPUS=tests/fuzz/corpus, (re)generate the seed corpora
 * from the same schema-built messages (seed 1 of each message/version). */
static void write_fuzz_corpus(void)
{
    const char *dir = getenv("BS_WRITE_FUZZ_CORPUS");
    if (!dir) return;
    for (size_t i = 0; i < bs_kafka_messages_count; i++) {
        const bs_kafka_message *m = &bs_kafka_messages[i];
        for (int16_t v = m->min_version; v <= m->max_version; v++) {
            kgen g = {.state = 0x9E3779B97F4A7C15ULL + (uint64_t)v + 1};
            bs_wbuf w, frame;
            bs_wbuf_init(&w, 0);
            bs_wbuf_init(&frame, 0);
            bs_wbuf_put_u8(&w, (uint8_t)i);
            bs_wbuf_put_u8(&w, (uint8_t)(v - m->min_version));
            kgen_message(&g, m, v, &w);
            char name[128];
            snprintf(name, sizeof name, "%s-v%d", m->name, v);
            write_seed(dir, "fuzz_kafka_response", name, w.data, w.len);
            if (m->api_key == BS_KAFKA_API_VERSIONS && !m->is_request) {
                w.data[1] = (uint8_t)v;
                write_seed(dir, "fuzz_kafka_api_versions", name, w.data + 1, w.len - 1);
            }
            if (m->is_request) {
                /* a framed request: size, header, body */
                bs_wbuf_put_be32(&frame, 0);
                CHECK_EQ(bs_kafka_put_request_header(&frame, m->api_key, v, 7,
                                                     (const uint8_t *)"fuzz", 4),
                         BS_OK);
                bs_wbuf_put(&frame, w.data + 2, w.len - 2);
                bs_wbuf_patch_be32(&frame, 0, (uint32_t)(frame.len - 4));
                write_seed(dir, "fuzz_kafka_framer", name, frame.data, frame.len);
                write_seed(dir, "fuzz_kafka_request_header", name, frame.data + 4, frame.len - 4);
            }
            bs_wbuf_free(&w);
            bs_wbuf_free(&frame);
        }
    }
}

int main(void)
{
    RUN(write_fuzz_corpus);
    RUN(test_every_message_every_version);
    RUN(test_coverage_of_rewritten_apis);
    RUN(test_find_coordinator_errors);
    RUN(test_compact_length_changes);
    RUN(test_map_sees_advertised_address);
    RUN(test_depth_bound);
    RUN(test_hostile_counts_and_arena_limit);
    RUN(test_bad_tag_sections);
    return test_report();
}
