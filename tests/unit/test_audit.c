/* Unit tests for src/observe/audit*.c: classification and error tables,
 * rendering of every event type (parsed back with cJSON), arena limits, the
 * log's routing and aggregator, the hash chain and digests, signing keys,
 * and verification of tampered files (edit, delete, swap, insert,
 * truncate, digest edits, broken restart links). */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "brokerside/audit.h"
#include "brokerside/kafka.h"
#include "test.h"

static char g_dir[256];

typedef struct bs_audit_verify_result verify_result;
static verify_result verify1(const char *path, const bs_audit_key *key);

/* ------------------------------------------------------------- helpers */

/* Path of `name` inside the test's temp dir (static buffer rotation). */
static const char *tpath(const char *name)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

/* Lines captured by mem_emit. */
typedef struct lines {
    char *v[4096];
    size_t n;
    int fail_after; /* emit fails once n reaches this (-1 never) */
} lines;

/* Emit callback: keep a copy of each line; fails once fail_after lines are held. */
static bs_status mem_emit(const char *line, size_t len, void *arg)
{
    lines *l = arg;
    if (l->fail_after >= 0 && (int)l->n >= l->fail_after) return BS_E_IO;
    if (l->n >= BS_ARRAY_LEN(l->v)) return BS_E_FULL;
    l->v[l->n] = strndup(line, len);
    l->n++;
    return BS_OK;
}

/* Free the captured lines. */
static void lines_free(lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

/* Create/replace a file with exactly `mode` (fchmod: the umask must not matter). */
static void write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK_EQ(write(fd, data, len), (long long)len);
    CHECK_EQ(fchmod(fd, mode), 0);
    close(fd);
}

/* Write lines[0..n) each + '\n'; `torn` bytes are cut from the end. */
static void write_lines(const char *path, char **v, size_t n, size_t torn)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", v[i]);
    fclose(f);
    if (torn) {
        struct stat sb;
        CHECK_EQ(stat(path, &sb), 0);
        CHECK_EQ(truncate(path, sb.st_size - (off_t)torn), 0);
    }
}

/* Member accessors: a string (NULL), a number (-99999), a bool (-1) when absent or another type. */
static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(j) ? j->valuedouble : -99999;
}

static int jbool(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(j) ? cJSON_IsTrue(j) : -1;
}

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Render ev and parse it; NULL on failure (and a CHECK failure). */
static cJSON *render_parse(const bs_audit_event *ev)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_audit_render(ev, "01234567-89ab-7cde-8f01-23456789abcd", &w), BS_OK);
    cJSON *j = cJSON_ParseWithLength((const char *)w.data, w.len);
    CHECK(j != NULL);
    CHECK(memchr(w.data, '\n', w.len) == NULL); /* one line */
    bs_wbuf_free(&w);
    return j;
}

/* Hex SHA-256 of a NUL-terminated line (the chain's canonical bytes). */
static void sha_hex(const char *s, char out[65])
{
    uint8_t md[32];
    SHA256((const uint8_t *)s, strlen(s), md);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* ---------------------------------------------------------------- tables */

static void test_classification_spot_checks(void)
{
    struct {
        int16_t key;
        const char *name;
        bs_audit_category cat;
        bool ro;
    } want[] = {
        {0, "Produce", BS_AUDIT_DATA, false},
        {1, "Fetch", BS_AUDIT_DATA, true},
        {2, "ListOffsets", BS_AUDIT_DATA, true},
        {3, "Metadata", BS_AUDIT_DATA, true},
        {8, "OffsetCommit", BS_AUDIT_DATA, false},
        {9, "OffsetFetch", BS_AUDIT_DATA, true},
        {11, "JoinGroup", BS_AUDIT_DATA, false},
        {12, "Heartbeat", BS_AUDIT_DATA, true},
        {14, "SyncGroup", BS_AUDIT_DATA, false},
        {15, "DescribeGroups", BS_AUDIT_MANAGEMENT, true},
        {18, "ApiVersions", BS_AUDIT_DATA, true},
        {19, "CreateTopics", BS_AUDIT_MANAGEMENT, false},
        {20, "DeleteTopics", BS_AUDIT_MANAGEMENT, false},
        {21, "DeleteRecords", BS_AUDIT_MANAGEMENT, false},
        {29, "DescribeAcls", BS_AUDIT_MANAGEMENT, true},
        {30, "CreateAcls", BS_AUDIT_MANAGEMENT, false},
        {31, "DeleteAcls", BS_AUDIT_MANAGEMENT, false},
        {32, "DescribeConfigs", BS_AUDIT_MANAGEMENT, true},
        {33, "AlterConfigs", BS_AUDIT_MANAGEMENT, false},
        {36, "SaslAuthenticate", BS_AUDIT_MANAGEMENT, true},
        {37, "CreatePartitions", BS_AUDIT_MANAGEMENT, false},
        {42, "DeleteGroups", BS_AUDIT_MANAGEMENT, false},
        {44, "IncrementalAlterConfigs", BS_AUDIT_MANAGEMENT, false},
        {45, "AlterPartitionReassignments", BS_AUDIT_MANAGEMENT, false},
        {60, "DescribeCluster", BS_AUDIT_MANAGEMENT, true},
        {68, "ConsumerGroupHeartbeat", BS_AUDIT_DATA, false},
        {75, "DescribeTopicPartitions", BS_AUDIT_MANAGEMENT, true},
        {87, "ReadShareGroupStateSummary", BS_AUDIT_MANAGEMENT, true},
        {88, "StreamsGroupHeartbeat", BS_AUDIT_DATA, false},
        {94, "UnregisterController", BS_AUDIT_MANAGEMENT, false},
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(want); i++) {
        const bs_audit_api_class *c = bs_audit_api_lookup(want[i].key);
        CHECK(c != NULL);
        if (!c) continue;
        CHECK_STR(c->name, want[i].name);
        CHECK_EQ(c->category, want[i].cat);
        CHECK_EQ(c->read_only, want[i].ro);
    }
    CHECK(bs_audit_api_lookup(-1) == NULL);
    CHECK(bs_audit_api_lookup(95) == NULL);
    CHECK(bs_audit_api_lookup(INT16_MAX) == NULL);
    CHECK_EQ(bs_audit_api_count(), 95);
    CHECK(bs_audit_api_at(95) == NULL);
}

/* Every *Request.json of the pinned release is in the table under its
 * name, and the table has nothing the schemas do not. */
static void test_classification_matches_schemas(void)
{
    /* The pinned Kafka release's definitions (extracted by the CMake configure step). */
    const char *dir = getenv("BS_KAFKA_MESSAGES");
    DIR *d = dir && *dir ? opendir(dir) : NULL;
    if (!d) fprintf(stderr, "  BS_KAFKA_MESSAGES=%s: run `make deps`\n", dir ? dir : "unset");
    CHECK(d != NULL);
    if (!d) return;
    size_t seen = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 13 || strcmp(de->d_name + nl - 12, "Request.json") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        if (!f) continue;
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* The schemas carry // comments: strip them before parsing. */
        for (char *p = buf; (p = strstr(p, "//"));)
            while (*p && *p != '\n')
                *p++ = ' ';
        cJSON *j = cJSON_Parse(buf);
        CHECK(j != NULL);
        const char *name = jstr(j, "name");
        double key = jnum(j, "apiKey");
        const bs_audit_api_class *c = bs_audit_api_lookup((int16_t)key);
        CHECK(c != NULL);
        if (c && name) {
            char want[128];
            snprintf(want, sizeof want, "%s", name);
            char *r = strstr(want, "Request");
            if (r) *r = 0;
            CHECK_STR(c->name, want);
        }
        cJSON_Delete(j);
        seen++;
    }
    closedir(d);
    CHECK_EQ(seen, bs_audit_api_count());
}


/* The audit table and the protocol library's table (src/kafka) name the
 * same API keys the same way: the proxy uses one for metrics labels and the
 * other for audit events. */
static void test_classification_matches_kafka_table(void)
{
    size_t n = 0;
    const bs_kafka_api_info *t = bs_kafka_api_table(&n);
    CHECK(t != NULL && n > 0);
    CHECK_EQ(n, bs_audit_api_count());
    for (size_t i = 0; t && i < n; i++) {
        const bs_audit_api_class *c = bs_audit_api_lookup(t[i].key);
        CHECK(c != NULL);
        if (c) CHECK_STR(c->name, t[i].name);
    }
}

static void test_error_names(void)
{
    CHECK_STR(bs_kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
    CHECK_STR(bs_kafka_error_name(0), "NONE");
    CHECK_STR(bs_kafka_error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
    CHECK_STR(bs_kafka_error_name(6), "NOT_LEADER_OR_FOLLOWER");
    CHECK_STR(bs_kafka_error_name(29), "TOPIC_AUTHORIZATION_FAILED");
    CHECK_STR(bs_kafka_error_name(31), "CLUSTER_AUTHORIZATION_FAILED");
    CHECK_STR(bs_kafka_error_name(36), "TOPIC_ALREADY_EXISTS");
    CHECK_STR(bs_kafka_error_name(58), "SASL_AUTHENTICATION_FAILED");
    CHECK_STR(bs_kafka_error_name(87), "INVALID_RECORD");
    CHECK_STR(bs_kafka_error_name(100), "UNKNOWN_TOPIC_ID");
    CHECK_STR(bs_kafka_error_name(127), "VOTER_NOT_FOUND");
    /* Kafka 4.4.0's Errors enum ends at 136 */
    CHECK_STR(bs_kafka_error_name(129), "REBOOTSTRAP_REQUIRED");
    CHECK_STR(bs_kafka_error_name(136), "CONTROLLER_ID_NOT_REGISTERED");
    CHECK(bs_kafka_error_name(137) == NULL);
    CHECK(bs_kafka_error_name(-2) == NULL);
    CHECK(bs_kafka_error_name(INT16_MIN) == NULL);
}

/* ---------------------------------------------------------------- render */

static void fill_common(bs_audit_event *ev)
{
    ev->time_us = 1764000000123456LL; /* 2025-11-24T16:00:00.123Z */
    ev->conn_id = 42;
    ev->listener = "clients";
    ev->broker_id = 2;
    ev->principal = "CN=dev-client,O=Example";
    ev->source_ip = "192.0.2.7";
    ev->source_port = 51234;
}

static void test_render_management_event(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    fill_common(&ev);
    ev.type = BS_AUDIT_EV_REQUEST;
    ev.api_key = 19;
    ev.api_version = 7;
    ev.correlation_id = 1001;
    ev.latency_us = 2500;
    ev.request_bytes = 120;
    ev.response_bytes = 80;
    size_t t0, t1;
    CHECK_EQ(bs_audit_event_set_client_id(&ev, "admin-1", 7), BS_OK);
    CHECK_EQ(bs_audit_event_set_software(&ev, "apache-kafka-java", 17, "3.7.0", 5), BS_OK);
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, "orders", 6, &t0), BS_OK);
    CHECK_EQ(bs_audit_event_add_config_key(&ev, t0, "retention.ms", 12), BS_OK);
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, "payments", 8, &t1), BS_OK);
    CHECK_EQ(bs_audit_event_set_resource_error(&ev, t0, 0), BS_OK);
    CHECK_EQ(bs_audit_event_set_resource_error(&ev, t1, 36), BS_OK);
    cJSON *j = render_parse(&ev);
    CHECK_STR(jstr(j, "eventVersion"), "1.0");
    CHECK_STR(jstr(j, "eventTime"), "2025-11-24T16:00:00.123Z");
    CHECK_STR(jstr(j, "eventSource"), "kafka.brokerside");
    CHECK_STR(jstr(j, "eventName"), "CreateTopics");
    CHECK_STR(jstr(j, "eventType"), "KafkaApiCall");
    CHECK_STR(jstr(j, "eventID"), "01234567-89ab-7cde-8f01-23456789abcd");
    CHECK_STR(jstr(j, "eventCategory"), "Management");
    CHECK_EQ(jbool(j, "readOnly"), 0);
    CHECK_EQ(jnum(j, "apiKey"), 19);
    CHECK_EQ(jnum(j, "apiVersion"), 7);
    const cJSON *ui = jget(j, "userIdentity");
    CHECK_STR(jstr(ui, "type"), "mTLS");
    CHECK_STR(jstr(ui, "principal"), "CN=dev-client,O=Example");
    CHECK_STR(jstr(j, "sourceIPAddress"), "192.0.2.7");
    CHECK_EQ(jnum(j, "sourcePort"), 51234);
    CHECK_STR(jstr(j, "listener"), "clients");
    CHECK_EQ(jnum(j, "brokerId"), 2);
    CHECK_EQ(jnum(j, "connectionId"), 42);
    CHECK_STR(jstr(j, "userAgent"), "apache-kafka-java/3.7.0 (client.id=admin-1)");
    CHECK_STR(jstr(j, "clientId"), "admin-1");
    CHECK_STR(jstr(j, "clientSoftwareName"), "apache-kafka-java");
    CHECK_STR(jstr(j, "clientSoftwareVersion"), "3.7.0");
    const cJSON *res = jget(jget(j, "requestParameters"), "resources");
    CHECK_EQ(cJSON_GetArraySize(res), 2);
    const cJSON *r0 = cJSON_GetArrayItem(res, 0);
    CHECK_STR(jstr(r0, "type"), "topic");
    CHECK_STR(jstr(r0, "name"), "orders");
    CHECK_STR(cJSON_GetArrayItem(jget(r0, "configKeys"), 0)->valuestring, "retention.ms");
    CHECK(jget(r0, "partitions") == NULL);
    const cJSON *out = jget(jget(j, "responseElements"), "resources");
    CHECK_EQ(cJSON_GetArraySize(out), 2);
    const cJSON *o1 = cJSON_GetArrayItem(out, 1);
    CHECK_STR(jstr(o1, "name"), "payments");
    CHECK_EQ(jnum(o1, "errorCode"), 36);
    CHECK_STR(jstr(o1, "errorName"), "TOPIC_ALREADY_EXISTS");
    CHECK_EQ(jnum(cJSON_GetArrayItem(out, 0), "errorCode"), 0);
    CHECK_EQ(jnum(j, "errorCode"), 36); /* first failing resource */
    CHECK_STR(jstr(j, "errorName"), "TOPIC_ALREADY_EXISTS");
    CHECK_EQ(jnum(j, "latencyMs"), 2.5);
    CHECK_STR(jstr(j, "requestID"), "42-1001");
    CHECK_EQ(jnum(j, "correlationId"), 1001);
    CHECK_EQ(jnum(j, "requestBytes"), 120);
    CHECK_EQ(jnum(j, "responseBytes"), 80);
    CHECK(jget(j, "truncated") == NULL);
    CHECK(jget(j, "sequence") == NULL); /* unchained rendering */
    cJSON_Delete(j);
    bs_audit_event_free(&ev);
}

static void test_render_data_event_partitions_and_acl(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    fill_common(&ev);
    ev.principal = NULL; /* anonymous */
    ev.api_key = 0;
    ev.api_version = 9;
    ev.correlation_id = -5;
    ev.latency_us = 1000;
    size_t t, acl;
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, "t", 1, &t), BS_OK);
    CHECK_EQ(bs_audit_event_add_partition(&ev, t, 0), BS_OK);
    CHECK_EQ(bs_audit_event_add_partition(&ev, t, 3), BS_OK);
    CHECK_EQ(bs_audit_event_set_partition_error(&ev, t, 3, 29), BS_OK);
    CHECK_EQ(bs_audit_event_set_partition_error(&ev, t, 0, 0), BS_OK);
    CHECK_EQ(bs_audit_event_set_partition_error(&ev, t, 7, 0), BS_E_NOT_FOUND);
    CHECK_EQ(bs_audit_event_set_volume(&ev, t, 10, 2048), BS_OK);
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_ACL, "orders", 6, &acl), BS_OK);
    CHECK_EQ(bs_audit_event_add_attr(&ev, acl, "principal", 9, "User:bob", 8), BS_OK);
    CHECK_EQ(bs_audit_event_add_attr(&ev, acl, "operation", 9, "WRITE", 5), BS_OK);
    CHECK_EQ(bs_audit_event_add_partition(&ev, 9, 0), BS_E_NOT_FOUND);
    CHECK_EQ(bs_audit_event_set_resource_error(&ev, 9, 0), BS_E_NOT_FOUND);
    cJSON *j = render_parse(&ev);
    CHECK_STR(jstr(j, "eventName"), "Produce");
    CHECK_STR(jstr(j, "eventCategory"), "Data");
    CHECK_EQ(jbool(j, "readOnly"), 0);
    const cJSON *ui = jget(j, "userIdentity");
    CHECK_STR(jstr(ui, "type"), "Anonymous");
    CHECK(cJSON_IsNull(jget(ui, "principal")));
    CHECK(cJSON_IsNull(jget(j, "userAgent")));
    CHECK(cJSON_IsNull(jget(j, "clientId")));
    const cJSON *r0 = cJSON_GetArrayItem(jget(jget(j, "requestParameters"), "resources"), 0);
    CHECK_EQ(cJSON_GetArraySize(jget(r0, "partitions")), 2);
    CHECK_EQ(cJSON_GetArrayItem(jget(r0, "partitions"), 1)->valuedouble, 3);
    CHECK_EQ(jnum(r0, "records"), 10);
    CHECK_EQ(jnum(r0, "bytes"), 2048);
    const cJSON *r1 = cJSON_GetArrayItem(jget(jget(j, "requestParameters"), "resources"), 1);
    CHECK_STR(jstr(r1, "type"), "acl");
    CHECK_STR(jstr(jget(r1, "attributes"), "principal"), "User:bob");
    CHECK_STR(jstr(jget(r1, "attributes"), "operation"), "WRITE");
    const cJSON *o0 = cJSON_GetArrayItem(jget(jget(j, "responseElements"), "resources"), 0);
    const cJSON *p1 = cJSON_GetArrayItem(jget(o0, "partitions"), 1);
    CHECK_EQ(jnum(p1, "partition"), 3);
    CHECK_EQ(jnum(p1, "errorCode"), 29);
    CHECK_STR(jstr(p1, "errorName"), "TOPIC_AUTHORIZATION_FAILED");
    CHECK_EQ(jnum(j, "errorCode"), 29);
    CHECK_STR(jstr(j, "requestID"), "42--5");
    cJSON_Delete(j);

    /* No response (acks=0): responseElements and latencyMs are null, no errorCode. */
    bs_audit_event_reset(&ev);
    fill_common(&ev);
    ev.api_key = 0;
    j = render_parse(&ev);
    CHECK(cJSON_IsNull(jget(j, "responseElements")));
    CHECK(cJSON_IsNull(jget(j, "latencyMs")));
    CHECK(jget(j, "errorCode") == NULL);
    CHECK_EQ(cJSON_GetArraySize(jget(jget(j, "requestParameters"), "resources")), 0);
    cJSON_Delete(j);

    /* An unknown API key and an unknown error code. */
    bs_audit_event_reset(&ev);
    fill_common(&ev);
    ev.api_key = 999;
    ev.latency_us = 0;
    ev.error_code = 4242;
    j = render_parse(&ev);
    CHECK_STR(jstr(j, "eventName"), "UnknownApi");
    CHECK_STR(jstr(j, "eventCategory"), "Management");
    CHECK_EQ(jnum(j, "errorCode"), 4242);
    CHECK(jget(j, "errorName") == NULL);
    cJSON_Delete(j);
    bs_audit_event_free(&ev);
}

static void test_render_connection_events(void)
{
    static const char *names[] = {"ConnectionAccepted",        "TlsHandshakeFailed",
                                  "ClientCertificateRejected", "ConnectionClosed",
                                  "ClientCertificateAccepted", "ProxyProtocolRejected"};
    for (int k = 0; k < 6; k++) {
        bs_audit_event ev;
        bs_audit_event_init(&ev);
        fill_common(&ev);
        ev.type = BS_AUDIT_EV_CONNECTION;
        ev.conn_kind = (bs_audit_conn_kind)k;
        if (k == 1 || k == 2) {
            ev.principal = NULL;
            ev.reason = k == 1 ? "protocol_version" : "unknown_ca";
        }
        if (k == 3) {
            ev.duration_ms = 61000;
            ev.bytes_in = 1234;
            ev.bytes_out = 98765;
        }
        if (k == 5) {
            ev.principal = NULL;
            ev.reason = "malformed_v1";
            ev.detail = "v1: unknown protocol \"TCP5\" (TCP4, TCP6 or UNKNOWN)";
        }
        cJSON *j = render_parse(&ev);
        CHECK_STR(jstr(j, "eventName"), names[k]);
        CHECK_STR(jstr(j, "eventType"), "KafkaConnection");
        CHECK_STR(jstr(j, "eventCategory"), "Management");
        CHECK_EQ(jbool(j, "readOnly"), 1);
        CHECK_EQ(jnum(j, "connectionId"), 42);
        CHECK_STR(jstr(j, "sourceIPAddress"), "192.0.2.7");
        CHECK_EQ(jnum(j, "sourcePort"), 51234);
        CHECK_STR(jstr(j, "listener"), "clients");
        if (k == 1) CHECK_STR(jstr(j, "reason"), "protocol_version");
        if (k == 2) CHECK_STR(jstr(j, "reason"), "unknown_ca");
        if (k == 0) CHECK(jget(j, "reason") == NULL);
        if (k == 5) {
            CHECK_STR(jstr(j, "reason"), "malformed_v1");
            CHECK_STR(jstr(j, "detail"), "v1: unknown protocol \"TCP5\" (TCP4, TCP6 or UNKNOWN)");
            CHECK_STR(jstr(jget(j, "userIdentity"), "type"), "Anonymous");
        } else {
            CHECK(jget(j, "detail") == NULL);
        }
        if (k == 3) {
            CHECK_EQ(jnum(j, "durationMs"), 61000);
            CHECK_EQ(jnum(j, "bytesIn"), 1234);
            CHECK_EQ(jnum(j, "bytesOut"), 98765);
        } else {
            CHECK(jget(j, "durationMs") == NULL);
        }
        cJSON_Delete(j);
        bs_audit_event_free(&ev);
    }
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    ev.type = BS_AUDIT_EV_CONNECTION;
    ev.conn_kind = (bs_audit_conn_kind)9;
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_audit_render(&ev, NULL, &w), BS_E_MALFORMED);
    bs_wbuf_free(&w);
}

/* A PROXY rejection's detail is bounded and escaped in both formats: a
 * long one is cut at BS_AUDIT_DETAIL_MAX bytes, quotes, control bytes and
 * invalid UTF-8 still give valid JSON. */
static void test_render_proxy_rejected_detail(void)
{
    char long_detail[BS_AUDIT_DETAIL_MAX * 3];
    memset(long_detail, 'x', sizeof long_detail - 1);
    long_detail[sizeof long_detail - 1] = 0;
    const char hostile[] = "v1: \"PR\\OXY\"\r\n\x01\xff\xc3";
    const char *details[] = {long_detail, hostile};
    for (size_t i = 0; i < BS_ARRAY_LEN(details); i++) {
        for (int f = 0; f < 2; f++) {
            bs_audit_event ev;
            bs_audit_event_init(&ev);
            fill_common(&ev);
            ev.principal = NULL;
            ev.type = BS_AUDIT_EV_CONNECTION;
            ev.conn_kind = BS_AUDIT_CONN_PROXY_REJECTED;
            ev.reason = "missing_header";
            ev.detail = details[i];
            bs_wbuf w;
            bs_wbuf_init(&w, 0);
            CHECK_EQ(bs_audit_render_format(f ? BS_AUDIT_FORMAT_OCSF : BS_AUDIT_FORMAT_CLOUDTRAIL,
                                            &ev, "01234567-89ab-7cde-8f01-23456789abcd", &w),
                     BS_OK);
            CHECK(memchr(w.data, '\n', w.len) == NULL);
            CHECK(memchr(w.data, '\r', w.len) == NULL);
            cJSON *j = cJSON_ParseWithLength((const char *)w.data, w.len);
            CHECK(j != NULL);
            const cJSON *rec = f ? jget(j, "unmapped") : j;
            const char *d = jstr(rec, "detail");
            CHECK(d != NULL);
            if (d && i == 0) CHECK_EQ(strlen(d), BS_AUDIT_DETAIL_MAX);
            if (d && i == 1) CHECK(strncmp(d, "v1: \"PR\\OXY\"\r\n\x01", 13) == 0);
            if (f) {
                const char *m = jstr(j, "message");
                CHECK(m != NULL);
                if (m && i == 0) CHECK_EQ(strlen(m), BS_AUDIT_DETAIL_MAX);
            }
            /* the whole line stays small: nothing but the bounded detail grows it */
            CHECK(w.len < 3 * BS_AUDIT_DETAIL_MAX + 1500);
            cJSON_Delete(j);
            bs_wbuf_free(&w);
            bs_audit_event_free(&ev);
        }
    }
}

/* Wire strings with quotes, control bytes and invalid UTF-8 still give
 * valid JSON; valid multi-byte UTF-8 passes through. */
static void test_render_hostile_strings(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    fill_common(&ev);
    ev.latency_us = 1;
    const char cid[] = "a\"b\\c\nd\x01\xff\xc3\x28\xc3\xa9\xe2\x82\xac\xed\xa0\x80z";
    CHECK_EQ(bs_audit_event_set_client_id(&ev, cid, sizeof cid - 1), BS_OK);
    size_t t;
    const char topic[] = "to\0pic"; /* explicit length: the NUL is data */
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, topic, 6, &t), BS_OK);
    cJSON *j = render_parse(&ev);
    CHECK_STR(jstr(j, "clientId"), "a\"b\\c\nd\x01\xef\xbf\xbd\xef\xbf\xbd("
                                   "\xc3\xa9\xe2\x82\xac\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz");
    const cJSON *r0 = cJSON_GetArrayItem(jget(jget(j, "requestParameters"), "resources"), 0);
    CHECK(r0 != NULL);
    cJSON_Delete(j);
    bs_audit_event_free(&ev);
}

static void test_event_limits(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    fill_common(&ev);
    ev.latency_us = 1;
    size_t idx = 0;
    for (int i = 0; i < BS_AUDIT_MAX_RESOURCES; i++) {
        char n[16];
        int l = snprintf(n, sizeof n, "t%d", i);
        CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, n, (size_t)l, &idx), BS_OK);
    }
    CHECK(!ev.truncated);
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, "x", 1, &idx), BS_E_FULL);
    CHECK(ev.truncated);
    CHECK_EQ(ev.n_res, BS_AUDIT_MAX_RESOURCES);
    bs_status st = BS_OK;
    int added = 0;
    while ((st = bs_audit_event_add_partition(&ev, 0, added)) == BS_OK)
        added++;
    CHECK_EQ(st, BS_E_FULL);
    CHECK_EQ(added, BS_AUDIT_MAX_ITEMS);
    cJSON *j = render_parse(&ev);
    CHECK_EQ(jbool(j, "truncated"), 1);
    cJSON_Delete(j);
    /* The arena bound: a huge key is refused, a key/value pair is all or nothing. */
    bs_audit_event_reset(&ev);
    CHECK(!ev.truncated);
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_ACL, "a", 1, &idx), BS_OK);
    static char big[BS_AUDIT_MAX_ARENA];
    memset(big, 'k', sizeof big);
    size_t before = ev.arena_len;
    CHECK_EQ(bs_audit_event_add_attr(&ev, idx, "k", 1, big, sizeof big - 1), BS_E_FULL);
    CHECK_EQ(ev.arena_len, before);
    CHECK_EQ(ev.n_items, 0);
    CHECK_EQ(bs_audit_event_set_client_id(&ev, NULL, 3), BS_E_MALFORMED);
    bs_audit_event_free(&ev);
}

static void test_event_id_and_time(void)
{
    char a[37], b[37], t[25];
    CHECK_EQ(bs_audit_new_event_id(1764000000123456LL, a), BS_OK);
    CHECK_EQ(bs_audit_new_event_id(1764000000123456LL, b), BS_OK);
    CHECK_EQ(strlen(a), 36);
    CHECK(strcmp(a, b) != 0);
    CHECK(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
    CHECK(a[14] == '7');                  /* version */
    CHECK(strchr("89ab", a[19]) != NULL); /* variant */
    CHECK(strncmp(a, "019ab6", 6) == 0);  /* 1764000000123 ms = 0x019ab6... */
    bs_audit_format_time(0, t);
    CHECK_STR(t, "1970-01-01T00:00:00.000Z");
    bs_audit_format_time(1764000000999999LL, t);
    CHECK_STR(t, "2025-11-24T16:00:00.999Z");
}

/* ------------------------------------------------------------- the log */

static bs_audit_log *open_log(const bs_audit_options *o, const bs_audit_key *k,
                              const bs_audit_link *prev, lines *out)
{
    bs_audit_log *log = NULL;
    CHECK_EQ(bs_audit_log_open(o, k, prev, mem_emit, out, &log), BS_OK);
    return log;
}

/* Check the chain fields of captured lines: consecutive sequences from 0,
 * one chain id, previousHash = SHA-256 of the previous line. */
static void check_chain(const lines *l)
{
    char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000";
    char chain[33] = "";
    for (size_t i = 0; i < l->n; i++) {
        cJSON *j = cJSON_Parse(l->v[i]);
        CHECK(j != NULL);
        CHECK_EQ(jnum(j, "sequence"), (double)i);
        CHECK_STR(jstr(j, "previousHash"), prev);
        if (i == 0) {
            CHECK_STR(jstr(j, "eventName"), "AuditChainStart");
            snprintf(chain, sizeof chain, "%s", jstr(j, "chainId") ? jstr(j, "chainId") : "");
            CHECK_EQ(strlen(chain), 32);
        } else {
            CHECK_STR(jstr(j, "chainId"), chain);
        }
        sha_hex(l->v[i], prev);
        cJSON_Delete(j);
    }
}

/* Fill ev as a request of `api` by `principal` naming `topic` (partition 0 with error
 * `err`, volume records/bytes), or no topic (top-level error `err`) when topic is NULL. */
static void data_event(bs_audit_event *ev, const char *principal, int16_t api, const char *topic,
                       int64_t t_us, int16_t err, int64_t records, int64_t bytes)
{
    bs_audit_event_reset(ev);
    fill_common(ev);
    ev->principal = principal;
    ev->api_key = api;
    ev->time_us = t_us;
    ev->latency_us = 10;
    if (topic) {
        size_t idx;
        CHECK_EQ(bs_audit_event_add_resource(ev, BS_AUDIT_RES_TOPIC, topic, strlen(topic), &idx),
                 BS_OK);
        CHECK_EQ(bs_audit_event_add_partition(ev, idx, 0), BS_OK);
        CHECK_EQ(bs_audit_event_set_partition_error(ev, idx, 0, err), BS_OK);
        CHECK_EQ(bs_audit_event_set_volume(ev, idx, records, bytes), BS_OK);
    } else {
        ev->error_code = err;
    }
}

static void test_log_routing_modes(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    bs_audit_data_mode modes[] = {BS_AUDIT_DATA_EACH, BS_AUDIT_DATA_OFF, BS_AUDIT_DATA_AGGREGATE};
    for (int m = 0; m < 3; m++) {
        lines out = {.fail_after = -1};
        bs_audit_options o;
        bs_audit_options_default(&o);
        CHECK_EQ(o.data_events, BS_AUDIT_DATA_AGGREGATE);
        CHECK_EQ(o.digest_every_events, 1000);
        o.data_events = modes[m];
        o.digest_every_events = 0;
        bs_audit_log *log = open_log(&o, NULL, NULL, &out);
        if (!log) continue;
        data_event(&ev, "CN=a", 0, "t1", 1000, 0, 1, 100); /* Produce */
        CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
        data_event(&ev, "CN=a", 19, "t1", 2000, 0, 0, 0); /* CreateTopics: always */
        CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
        bs_audit_event_reset(&ev);
        ev.type = BS_AUDIT_EV_CONNECTION;
        CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
        size_t expect = m == 0 ? 4 : 3; /* start + (produce) + create + connection */
        CHECK_EQ(out.n, expect);
        char cid[33];
        uint64_t next;
        bs_audit_log_position(log, cid, &next);
        CHECK_EQ(next, expect);
        CHECK_EQ(bs_audit_log_close(log, 5000), BS_OK);
        /* close: aggregate mode flushes one aggregate event; every mode seals. */
        size_t after = expect + (m == 2 ? 1 : 0) + 1;
        CHECK_EQ(out.n, after);
        cJSON *last = cJSON_Parse(out.v[out.n - 1]);
        CHECK_STR(jstr(last, "eventName"), "AuditDigest");
        CHECK_STR(jstr(jget(last, "digest"), "algorithm"), "none");
        CHECK(cJSON_IsNull(jget(jget(last, "digest"), "signature")));
        cJSON_Delete(last);
        check_chain(&out);
        lines_free(&out);
    }
    bs_audit_data_mode dm;
    CHECK_EQ(bs_audit_data_mode_parse("each", &dm), BS_OK);
    CHECK_EQ(dm, BS_AUDIT_DATA_EACH);
    CHECK_EQ(bs_audit_data_mode_parse("off", &dm), BS_OK);
    CHECK_EQ(dm, BS_AUDIT_DATA_OFF);
    CHECK_EQ(bs_audit_data_mode_parse("aggregate", &dm), BS_OK);
    CHECK_EQ(dm, BS_AUDIT_DATA_AGGREGATE);
    CHECK_EQ(bs_audit_data_mode_parse("Each", &dm), BS_E_CONFIG);
    CHECK_EQ(bs_audit_data_mode_parse(NULL, &dm), BS_E_CONFIG);
    bs_audit_event_free(&ev);
}

/* Find the aggregate event for (principal, api name, topic) in out. */
static cJSON *find_agg(const lines *out, const char *principal, const char *api, const char *topic)
{
    for (size_t i = 0; i < out->n; i++) {
        cJSON *j = cJSON_Parse(out->v[i]);
        const char *type = jstr(j, "eventType");
        const char *p = jstr(jget(j, "userIdentity"), "principal");
        const cJSON *res = jget(jget(j, "requestParameters"), "resources");
        const char *t = cJSON_GetArraySize(res) ? jstr(cJSON_GetArrayItem(res, 0), "name") : NULL;
        bool match = type && strcmp(type, "KafkaApiCallAggregate") == 0 &&
                     strcmp(jstr(j, "eventName"), api) == 0 &&
                     ((!p && !principal) || (p && principal && strcmp(p, principal) == 0)) &&
                     ((!t && !topic) || (t && topic && strcmp(t, topic) == 0));
        if (match) return j;
        cJSON_Delete(j);
    }
    return NULL;
}

static void test_aggregator(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    lines out = {.fail_after = -1};
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.digest_every_events = 0;
    o.broker_id = 3;
    bs_audit_log *log = open_log(&o, NULL, NULL, &out);
    if (!log) return;
    const int64_t T = 1764000000000000LL;
    data_event(&ev, "CN=a", 0, "orders", T + 3000, 0, 5, 500);
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    data_event(&ev, "CN=a", 0, "orders", T + 1000, 10, 2, 200); /* error, earlier time */
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    data_event(&ev, "CN=b", 0, "orders", T + 2000, 0, 1, 10);
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    data_event(&ev, NULL, 1, "orders", T + 2000, 0, 7, 70); /* anonymous Fetch */
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    data_event(&ev, "CN=a", 12, NULL, T + 2500, 27, 0, 0); /* Heartbeat, no topic, error */
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    CHECK_EQ(out.n, 1); /* only the chain start so far */
    CHECK_EQ(bs_audit_log_flush_aggregates(log, T + 60000000), BS_OK);
    CHECK_EQ(out.n, 5);
    cJSON *j = find_agg(&out, "CN=a", "Produce", "orders");
    CHECK(j != NULL);
    const cJSON *a = jget(j, "aggregate");
    CHECK_EQ(jnum(a, "requests"), 2);
    CHECK_EQ(jnum(a, "errors"), 1);
    CHECK_EQ(jnum(a, "records"), 7);
    CHECK_EQ(jnum(a, "bytes"), 700);
    CHECK_STR(jstr(a, "firstEventTime"), "2025-11-24T16:00:00.001Z");
    CHECK_STR(jstr(a, "lastEventTime"), "2025-11-24T16:00:00.003Z");
    CHECK_STR(jstr(a, "intervalEnd"), "2025-11-24T16:01:00.000Z");
    CHECK_STR(jstr(j, "eventCategory"), "Data");
    CHECK_EQ(jbool(j, "readOnly"), 0);
    CHECK_EQ(jnum(j, "brokerId"), 3);
    CHECK_STR(jstr(jget(j, "userIdentity"), "type"), "mTLS");
    cJSON_Delete(j);
    j = find_agg(&out, "CN=b", "Produce", "orders");
    CHECK(j != NULL);
    CHECK_EQ(jnum(jget(j, "aggregate"), "requests"), 1);
    cJSON_Delete(j);
    j = find_agg(&out, NULL, "Fetch", "orders");
    CHECK(j != NULL);
    CHECK_STR(jstr(jget(j, "userIdentity"), "type"), "Anonymous");
    CHECK_EQ(jbool(j, "readOnly"), 1);
    CHECK_EQ(jnum(jget(j, "aggregate"), "bytes"), 70);
    cJSON_Delete(j);
    j = find_agg(&out, "CN=a", "Heartbeat", NULL);
    CHECK(j != NULL);
    CHECK_EQ(jnum(jget(j, "aggregate"), "errors"), 1);
    cJSON_Delete(j);
    /* A second flush with nothing new emits nothing; the interval restarts. */
    CHECK_EQ(bs_audit_log_flush_aggregates(log, T + 120000000), BS_OK);
    CHECK_EQ(out.n, 5);
    CHECK_EQ(bs_audit_log_close(log, T + 130000000), BS_OK);
    check_chain(&out);
    lines_free(&out);

    /* Bound: with 2 keys allowed, the third key overflows into "*". */
    o.aggregate_max_keys = 2;
    log = open_log(&o, NULL, NULL, &out);
    if (!log) return;
    data_event(&ev, "CN=a", 0, "t1", T, 0, 1, 1);
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    data_event(&ev, "CN=a", 0, "t2", T, 0, 1, 1);
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    data_event(&ev, "CN=a", 0, "t3", T, 0, 1, 1);
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    data_event(&ev, "CN=c", 0, "t4", T, 0, 1, 1);
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    uint64_t emitted, fails, ovf;
    bs_audit_log_stats(log, &emitted, &fails, &ovf);
    CHECK_EQ(ovf, 2);
    CHECK_EQ(bs_audit_log_flush_aggregates(log, T + 1000), BS_OK);
    CHECK_EQ(out.n, 4); /* start, t1, t2, overflow */
    cJSON *ov = NULL;
    for (size_t i = 0; i < out.n && !ov; i++) {
        cJSON *x = cJSON_Parse(out.v[i]);
        if (jstr(jget(x, "userIdentity"), "type") &&
            strcmp(jstr(jget(x, "userIdentity"), "type"), "Overflow") == 0)
            ov = x;
        else
            cJSON_Delete(x);
    }
    CHECK(ov != NULL);
    CHECK_EQ(jnum(jget(ov, "aggregate"), "requests"), 2);
    cJSON_Delete(ov);
    CHECK_EQ(bs_audit_log_close(log, T + 2000), BS_OK);
    lines_free(&out);
    bs_audit_event_free(&ev);
}

/* A failing sink does not advance the chain; the refused event is lost, and
 * that loss is recorded (AuditEventsLost, sealed at once) before the next
 * event, so the chain never skips silently. */
static void test_emit_failure_keeps_chain(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    lines out = {.fail_after = -1};
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.digest_every_events = 0;
    bs_audit_log *log = open_log(&o, NULL, NULL, &out);
    if (!log) return;
    data_event(&ev, "CN=a", 19, "t", 1000, 0, 0, 0);
    out.fail_after = 1;
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_E_IO);
    out.fail_after = -1;
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    uint64_t emitted, fails, ovf;
    bs_audit_log_stats(log, &emitted, &fails, &ovf);
    CHECK_EQ(emitted, 4); /* start, AuditEventsLost, its digest, the event */
    CHECK_EQ(fails, 1);
    uint64_t lost, unrecorded, gaps;
    bs_audit_log_losses(log, &lost, &unrecorded, &gaps);
    CHECK_EQ(lost, 1);
    CHECK_EQ(unrecorded, 0);
    CHECK_EQ(gaps, 1);
    CHECK_EQ(out.n, 4);
    if (out.n == 4) {
        cJSON *g = cJSON_Parse(out.v[1]);
        CHECK_STR(jstr(g, "eventName"), "AuditEventsLost");
        CHECK_EQ(jnum(jget(g, "lost"), "events"), 1);
        cJSON_Delete(g);
        cJSON *d = cJSON_Parse(out.v[2]);
        CHECK_STR(jstr(d, "eventName"), "AuditDigest");
        cJSON_Delete(d);
    }
    CHECK_EQ(bs_audit_log_close(log, 0), BS_OK);
    check_chain(&out);
    lines_free(&out);
    /* Opening fails cleanly when the chain start cannot be written. */
    out.fail_after = 0;
    bs_audit_log *l2 = NULL;
    CHECK_EQ(bs_audit_log_open(&o, NULL, NULL, mem_emit, &out, &l2), BS_E_IO);
    CHECK(l2 == NULL);
    o.aggregate_max_keys = 0;
    CHECK_EQ(bs_audit_log_open(&o, NULL, NULL, mem_emit, &out, &l2), BS_E_CONFIG);
    bs_audit_event_free(&ev);
}

typedef struct worker_arg {
    bs_audit_log *log;
    int id;
    int failures;
} worker_arg;

/* Thread body: 500 DescribeConfigs events into the shared log. */
static void *worker(void *p)
{
    worker_arg *a = p;
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    for (int i = 0; i < 500; i++) {
        bs_audit_event_reset(&ev);
        ev.api_key = 32; /* DescribeConfigs: always emitted */
        ev.conn_id = (uint64_t)a->id;
        ev.correlation_id = i;
        ev.time_us = 1764000000000000LL + i;
        ev.latency_us = 5;
        size_t idx;
        if (bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, "t", 1, &idx) != BS_OK ||
            bs_audit_log_record(a->log, &ev) != BS_OK)
            a->failures++;
    }
    bs_audit_event_free(&ev);
    return NULL;
}

/* Four threads recording at once still give one gap-free, correctly linked
 * chain with digests, which the verifier accepts. */
static void test_concurrent_recording(void)
{
    lines out = {.fail_after = -1};
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.digest_every_events = 50;
    bs_audit_log *log = open_log(&o, NULL, NULL, &out);
    if (!log) return;
    pthread_t th[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){.log = log, .id = i};
        CHECK_EQ(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(args[i].failures, 0);
    }
    CHECK_EQ(bs_audit_log_close(log, 0), BS_OK);
    check_chain(&out);
    size_t digests = 0;
    for (size_t i = 0; i < out.n; i++)
        digests += strstr(out.v[i], "\"AuditDigest\"") != NULL;
    CHECK_EQ(out.n, 1 + 2000 + digests);
    CHECK(digests >= 40);
    write_lines(tpath("conc.log"), out.v, out.n, 0);
    bs_audit_verify_result r = verify1(tpath("conc.log"), NULL);
    CHECK_EQ(r.problems, 0);
    CHECK_EQ(r.digests_ok, digests);
    lines_free(&out);
}

/* ---------------------------------------------------------------- keys */

static void make_hmac_key(const char *path, mode_t mode)
{
    uint8_t k[48];
    for (size_t i = 0; i < sizeof k; i++)
        k[i] = (uint8_t)(i * 37 + 11);
    write_file(path, (const char *)k, sizeof k, mode);
}

/* Generate an Ed25519 key pair as PEM files priv (0600) and pub. */
static void make_ed25519(const char *priv, const char *pub)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    CHECK(pk != NULL);
    if (!pk) return;
    int fd = open(priv, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *f = fdopen(fd, "w");
    CHECK(f && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1);
    if (f) fclose(f);
    f = fopen(pub, "w");
    CHECK(f && PEM_write_PUBKEY(f, pk) == 1);
    if (f) fclose(f);
    EVP_PKEY_free(pk);
}

static void test_keys(void)
{
    bs_audit_key *k = NULL, *k2 = NULL, *pub = NULL;
    /* HMAC, raw bytes. */
    make_hmac_key(tpath("hmac.key"), 0600);
    CHECK_EQ(bs_audit_key_load(tpath("hmac.key"), &k), BS_OK);
    CHECK_EQ(bs_audit_key_get_type(k), BS_AUDIT_KEY_HMAC_SHA256);
    CHECK_STR(bs_audit_key_algorithm(k), "HMAC-SHA256");
    /* The same secret as hex text gives the same key id. */
    char hex[97 + 1];
    for (int i = 0; i < 48; i++)
        sprintf(hex + 2 * i, "%02x", (unsigned)(uint8_t)(i * 37 + 11));
    strcat(hex, "\n");
    write_file(tpath("hmac.hex"), hex, strlen(hex), 0400);
    CHECK_EQ(bs_audit_key_load(tpath("hmac.hex"), &k2), BS_OK);
    char id1[17], id2[17];
    bs_audit_key_id(k, id1);
    bs_audit_key_id(k2, id2);
    CHECK_EQ(strlen(id1), 16);
    CHECK_STR(id1, id2);
    const uint8_t msg[] = "message";
    bs_wbuf sig;
    bs_wbuf_init(&sig, 0);
    CHECK_EQ(bs_audit_sign(k, msg, 7, &sig), BS_OK);
    CHECK_EQ(sig.len, 64);
    CHECK_EQ(bs_audit_verify_sig(k2, msg, 7, (const char *)sig.data, sig.len), BS_OK);
    CHECK_EQ(bs_audit_verify_sig(k2, msg, 6, (const char *)sig.data, sig.len), BS_E_CRYPTO);
    CHECK_EQ(bs_audit_verify_sig(k2, msg, 7, "zz", 2), BS_E_MALFORMED);
    CHECK_EQ(bs_audit_verify_sig(k2, msg, 7, "abc", 3), BS_E_MALFORMED);
    bs_audit_key_free(k2);
    k2 = NULL;
    /* Ed25519: sign with the private key, verify with the public one. */
    make_ed25519(tpath("ed.pem"), tpath("ed.pub"));
    CHECK_EQ(bs_audit_key_load(tpath("ed.pem"), &k2), BS_OK);
    CHECK_EQ(bs_audit_key_load_public(tpath("ed.pub"), &pub), BS_OK);
    CHECK_EQ(bs_audit_key_get_type(pub), BS_AUDIT_KEY_ED25519);
    CHECK_STR(bs_audit_key_algorithm(k2), "Ed25519");
    bs_audit_key_id(k2, id1);
    bs_audit_key_id(pub, id2);
    CHECK_STR(id1, id2);
    bs_wbuf_reset(&sig);
    CHECK_EQ(bs_audit_sign(k2, msg, 7, &sig), BS_OK);
    CHECK_EQ(sig.len, 128);
    CHECK_EQ(bs_audit_verify_sig(pub, msg, 7, (const char *)sig.data, sig.len), BS_OK);
    /* Another hex digit, so the signature stays well-formed but wrong. */
    ((char *)sig.data)[5] = ((char *)sig.data)[5] == '0' ? '1' : '0';
    CHECK_EQ(bs_audit_verify_sig(pub, msg, 7, (const char *)sig.data, sig.len), BS_E_CRYPTO);
    CHECK_EQ(bs_audit_sign(NULL, msg, 7, &sig), BS_E_STATE);
    bs_wbuf_free(&sig);
    /* The signed message: the digest line without the signature's hex. */
    bs_wbuf m;
    bs_wbuf_init(&m, 0);
    const char line[] = "{\"a\":\"x\\\"signature\\\":\\\"\",\"signature\":\"abcd\",\"z\":1}";
    size_t s0, e0;
    CHECK_EQ(bs_audit_digest_sig_span(line, sizeof line - 1, &s0, &e0), BS_OK);
    CHECK_EQ(e0 - s0, 4);
    CHECK_MEM(line + s0, "abcd", 4);
    CHECK_EQ(bs_audit_digest_message(line, sizeof line - 1, &m), BS_OK);
    bs_wbuf_put_u8(&m, 0);
    CHECK_STR((const char *)m.data,
              "brokerside-audit-digest-v1\n{\"a\":\"x\\\"signature\\\":\\\"\","
              "\"signature\":\"\",\"z\":1}");
    bs_wbuf_reset(&m);
    CHECK_EQ(bs_audit_digest_message("{\"signature\":null}", 18, &m), BS_E_MALFORMED);
    CHECK_EQ(bs_audit_digest_message("{\"signature\":\"ab", 17, &m), BS_E_MALFORMED);
    bs_wbuf_free(&m);
    /* Refusals. */
    bs_audit_key *bad = NULL;
    make_hmac_key(tpath("open.key"), 0640);
    CHECK_EQ(bs_audit_key_load(tpath("open.key"), &bad), BS_E_CONFIG);
    make_hmac_key(tpath("world.key"), 0604);
    CHECK_EQ(bs_audit_key_load(tpath("world.key"), &bad), BS_E_CONFIG);
    CHECK_EQ(chmod(tpath("ed.pem"), 0644), 0);
    CHECK_EQ(bs_audit_key_load(tpath("ed.pem"), &bad), BS_E_CONFIG);
    write_file(tpath("short.key"), "0123456789abcdef0123456789abcde", 31, 0600);
    CHECK_EQ(bs_audit_key_load(tpath("short.key"), &bad), BS_E_CONFIG);
    CHECK_EQ(bs_audit_key_load(tpath("missing.key"), &bad), BS_E_IO);
    CHECK_EQ(bs_audit_key_load(g_dir, &bad), BS_E_CONFIG); /* a directory */
    CHECK_EQ(bs_audit_key_load_public(tpath("hmac.key"), &bad), BS_E_CONFIG);
    const char junk[] = "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n";
    write_file(tpath("junk.pem"), junk, sizeof junk - 1, 0600);
    CHECK_EQ(bs_audit_key_load(tpath("junk.pem"), &bad), BS_E_CONFIG);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    CHECK(ec != NULL);
    int fd = open(tpath("ec.pem"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *f = fdopen(fd, "w");
    CHECK(f && PEM_write_PrivateKey(f, ec, NULL, NULL, 0, NULL, NULL) == 1);
    if (f) fclose(f);
    EVP_PKEY_free(ec);
    CHECK_EQ(bs_audit_key_load(tpath("ec.pem"), &bad), BS_E_CONFIG);
    CHECK(bad == NULL);
    bs_audit_key_free(k);
    bs_audit_key_free(k2);
    bs_audit_key_free(pub);
}

/* ------------------------------------------------------------- verify */

/* Build a sealed chain of 20 events (digest every 5) signed by `key`. */
static void build_chain(const bs_audit_key *key, lines *out, const bs_audit_link *prev)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.data_events = BS_AUDIT_DATA_EACH;
    o.digest_every_events = 5;
    bs_audit_log *log = open_log(&o, key, prev, out);
    for (int i = 0; log && i < 20; i++) {
        char topic[16];
        snprintf(topic, sizeof topic, "topic-%02d", i);
        data_event(&ev, "CN=a", (int16_t)(i % 2 ? 19 : 0), topic, 1764000000000000LL + i, 0, 1, 1);
        CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    }
    CHECK_EQ(bs_audit_log_close(log, 1764000001000000LL), BS_OK);
    bs_audit_event_free(&ev);
}

/* Verify one file; returns the result (first problem etc.). */
static bs_audit_verify_result verify1(const char *path, const bs_audit_key *key)
{
    bs_audit_verify_result r;
    const char *p[] = {path};
    FILE *rep = getenv("BS_TEST_VERBOSE") ? stderr : fopen("/dev/null", "w");
    CHECK_EQ(bs_audit_verify_files(p, 1, key, rep, &r), BS_OK);
    if (rep && rep != stderr) fclose(rep);
    return r;
}

/* Index of the first line whose text contains `needle`, from `from`. */
static size_t find_line(const lines *l, const char *needle, size_t from)
{
    for (size_t i = from; i < l->n; i++)
        if (strstr(l->v[i], needle)) return i;
    CHECK(!"line not found");
    return 0;
}

/* Loss and crash are on record and reported: `audit verify` fails on an
 * AuditEventsLost record, and a chain that starts after a crash says so
 * ("previousRun":"crashed") and is warned about. */
static void test_loss_and_crash_reported(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    lines out = {.fail_after = -1};
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.data_events = BS_AUDIT_DATA_EACH;
    o.digest_every_events = 0;
    bs_audit_log *log = open_log(&o, NULL, NULL, &out);
    if (!log) return;
    data_event(&ev, "CN=a", 0, "t", 1764000000000000LL, 0, 1, 1);
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    out.fail_after = (int)out.n; /* the sink refuses the next three */
    for (int i = 0; i < 3; i++)
        CHECK(bs_audit_log_record(log, &ev) != BS_OK);
    out.fail_after = -1;
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    CHECK_EQ(bs_audit_log_close(log, 1764000001000000LL), BS_OK);
    write_lines(tpath("lost.log"), out.v, out.n, 0);
    bs_audit_verify_result r = verify1(tpath("lost.log"), NULL);
    CHECK_EQ(r.problems, 1);
    CHECK_EQ(r.first_problem, BS_AUDIT_LOST);
    CHECK(find_line(&out, "\"events\":3", 0) > 0);
    lines_free(&out);

    /* a chain left without its final digest (kill -9), then a restart */
    lines a = {.fail_after = -1}, b = {.fail_after = -1};
    log = open_log(&o, NULL, NULL, &a);
    if (!log) return;
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    write_lines(tpath("crash.log"), a.v, a.n, 0);
    bs_audit_link link;
    CHECK_EQ(bs_audit_link_from_file(tpath("crash.log"), &link), BS_OK);
    CHECK(link.valid && !link.sealed);
    bs_audit_log *log2 = open_log(&o, NULL, &link, &b);
    if (log2) {
        CHECK_EQ(bs_audit_log_close(log2, 1764000002000000LL), BS_OK);
        cJSON *start = cJSON_Parse(b.v[0]);
        CHECK_STR(jstr(start, "previousRun"), "crashed");
        cJSON_Delete(start);
        FILE *f = fopen(tpath("crash.log"), "ab");
        for (size_t i = 0; f && i < b.n; i++)
            fprintf(f, "%s\n", b.v[i]);
        if (f) fclose(f);
        r = verify1(tpath("crash.log"), NULL);
        CHECK_EQ(r.problems, 0);
        CHECK(r.warnings >= 2); /* the unsealed tail, and the crash */
    }
    /* the interrupted log is released without sealing (the process "died") */
    CHECK_EQ(bs_audit_log_close(log, 0), BS_OK);
    lines_free(&a);
    lines_free(&b);
    bs_audit_event_free(&ev);
}

static void test_verify_detects_tampering(void)
{
    bs_audit_key *k = NULL, *other = NULL;
    make_hmac_key(tpath("v.key"), 0600);
    CHECK_EQ(bs_audit_key_load(tpath("v.key"), &k), BS_OK);
    lines l = {.fail_after = -1};
    build_chain(k, &l, NULL);
    /* 1 start + 20 events + digests after every 5 events (start counts) + final */
    CHECK(l.n >= 25);
    const char *f = tpath("chain.log");
    write_lines(f, l.v, l.n, 0);
    bs_audit_verify_result r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_OK);
    CHECK_EQ(r.problems, 0);
    CHECK_EQ(r.warnings, 0);
    CHECK_EQ(r.events, l.n);
    CHECK(r.digests_ok >= 4);
    /* Without a key: intact, with a warning. With another key: every digest fails. */
    r = verify1(f, NULL);
    CHECK_EQ(r.problems, 0);
    CHECK_EQ(r.warnings, 1);
    uint8_t ok2[40];
    memset(ok2, 7, sizeof ok2);
    write_file(tpath("other.key"), (const char *)ok2, sizeof ok2, 0600);
    CHECK_EQ(bs_audit_key_load(tpath("other.key"), &other), BS_OK);
    r = verify1(f, other);
    CHECK_EQ(r.first_problem, BS_AUDIT_BAD_SIGNATURE);

    char *saved;
    size_t i;
    /* Edited: change one byte of a topic name in event line i. */
    i = find_line(&l, "topic-07", 0);
    saved = l.v[i];
    l.v[i] = strdup(saved);
    strstr(l.v[i], "topic-07")[6] = '9';
    write_lines(f, l.v, l.n, 0);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_EDITED);
    CHECK_EQ(r.first_line, i + 1);
    CHECK_EQ(r.first_sequence, i);
    free(l.v[i]);
    l.v[i] = saved;

    /* Removed: delete line i. */
    i = find_line(&l, "topic-03", 0);
    saved = l.v[i];
    memmove(&l.v[i], &l.v[i + 1], (l.n - i - 1) * sizeof(char *));
    l.n--;
    write_lines(f, l.v, l.n, 0);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_REMOVED);
    CHECK_EQ(r.first_line, i + 1); /* reported at the line after the gap */
    CHECK_EQ(r.first_sequence, i + 1);
    CHECK_EQ(r.problems, 1);
    memmove(&l.v[i + 1], &l.v[i], (l.n - i) * sizeof(char *));
    l.v[i] = saved;
    l.n++;

    /* Reordered: swap two adjacent event lines. */
    i = find_line(&l, "topic-12", 0);
    saved = l.v[i];
    l.v[i] = l.v[i + 1];
    l.v[i + 1] = saved;
    write_lines(f, l.v, l.n, 0);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_REORDERED);
    CHECK_EQ(r.first_line, i + 1);
    CHECK_EQ(r.problems, 1);
    l.v[i + 1] = l.v[i];
    l.v[i] = saved;

    /* Inserted: a copy of an earlier line placed later. */
    i = find_line(&l, "topic-15", 0);
    char **ins = malloc((l.n + 1) * sizeof(char *));
    memcpy(ins, l.v, i * sizeof(char *));
    ins[i] = l.v[2];
    memcpy(ins + i + 1, l.v + i, (l.n - i) * sizeof(char *));
    write_lines(f, ins, l.n + 1, 0);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_INSERTED);
    CHECK_EQ(r.first_line, i + 1);
    CHECK_EQ(r.problems, 1);
    /* Inserted garbage. */
    ins[i] = "{\"hello\":1}";
    write_lines(f, ins, l.n + 1, 0);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_MALFORMED);
    CHECK_EQ(r.first_line, i + 1);
    free(ins);

    /* Truncated mid-line: the torn line is reported, and the tail is unsealed. */
    write_lines(f, l.v, l.n, 10);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_MALFORMED);
    CHECK_EQ(r.first_line, l.n);
    CHECK(r.warnings >= 1);
    /* Truncated at a line boundary (the final digest gone): a warning only. */
    write_lines(f, l.v, l.n - 1, 0);
    r = verify1(f, k);
    CHECK_EQ(r.problems, 0);
    CHECK_EQ(r.warnings, 1);

    /* A digest's signature edited. */
    i = find_line(&l, "\"AuditDigest\"", 0);
    saved = l.v[i];
    l.v[i] = strdup(saved);
    char *sg = strstr(l.v[i], "\"signature\":\"") + 13;
    *sg = *sg == '0' ? '1' : '0';
    write_lines(f, l.v, l.n, 0);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_BAD_SIGNATURE);
    CHECK_EQ(r.first_line, i + 1);
    free(l.v[i]);
    /* A digest's lastHash edited (signature then fails too). */
    l.v[i] = strdup(saved);
    char *lh = strstr(l.v[i], "\"lastHash\":\"") + 12;
    *lh = *lh == '0' ? '1' : '0';
    write_lines(f, l.v, l.n, 0);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_BAD_DIGEST);
    CHECK_EQ(r.first_line, i + 1);
    CHECK(r.problems >= 2);
    free(l.v[i]);
    /* A digest stripped of its signature. */
    l.v[i] = strdup(saved);
    sg = strstr(l.v[i], "\"signature\":\"") + 12;
    char *endq = strchr(sg + 1, '"');
    memcpy(sg, "null", 4);
    memmove(sg + 4, endq + 1, strlen(endq + 1) + 1);
    cJSON *chk = cJSON_Parse(l.v[i]);
    CHECK(cJSON_IsNull(jget(jget(chk, "digest"), "signature")));
    cJSON_Delete(chk);
    write_lines(f, l.v, l.n, 0);
    r = verify1(f, k);
    CHECK_EQ(r.first_problem, BS_AUDIT_BAD_SIGNATURE);
    CHECK_EQ(r.first_line, i + 1);
    free(l.v[i]);
    l.v[i] = saved;

    /* I/O errors are not verdicts. */
    const char *missing[] = {tpath("nope.log")};
    bs_audit_verify_result rr;
    CHECK_EQ(bs_audit_verify_files(missing, 1, k, NULL, &rr), BS_E_IO);
    lines_free(&l);
    bs_audit_key_free(k);
    bs_audit_key_free(other);
}

/* With the key, changing any single byte of a sealed file is reported as a
 * problem: every event is hashed by its successor and the final digest's
 * signature covers all of its own bytes but the signature. */
static void test_verify_every_byte_flip(void)
{
    bs_audit_key *k = NULL;
    make_hmac_key(tpath("flip.key"), 0600);
    CHECK_EQ(bs_audit_key_load(tpath("flip.key"), &k), BS_OK);
    lines l = {.fail_after = -1};
    build_chain(k, &l, NULL);
    bs_wbuf all;
    bs_wbuf_init(&all, 0);
    for (size_t i = 0; i < l.n; i++) {
        bs_wbuf_put_str(&all, l.v[i]);
        bs_wbuf_put_u8(&all, '\n');
    }
    CHECK_EQ(bs_wbuf_status(&all), BS_OK);
    const char *f = tpath("flip.log");
    size_t undetected = 0, tried = 0;
    /* Every third byte by default (a few seconds); BS_FLIP_STRIDE=1 for all. */
    const char *stride_env = getenv("BS_FLIP_STRIDE");
    size_t stride = stride_env && atoi(stride_env) > 0 ? (size_t)atoi(stride_env) : 3;
    for (size_t pos = 0; pos < all.len; pos += stride) {
        all.data[pos] ^= 0x01;
        write_file(f, (const char *)all.data, all.len, 0600);
        bs_audit_verify_result r = verify1(f, k);
        if (r.problems == 0) {
            undetected++;
            fprintf(stderr, "  undetected flip at byte %zu\n", pos);
        }
        all.data[pos] ^= 0x01;
        tried++;
    }
    CHECK(tried > all.len / stride - 1);
    CHECK_EQ(undetected, 0);
    bs_wbuf_free(&all);
    lines_free(&l);
    bs_audit_key_free(k);
}

static void test_verify_ed25519_and_restart_link(void)
{
    bs_audit_key *k = NULL, *pub = NULL;
    make_ed25519(tpath("r.pem"), tpath("r.pub"));
    CHECK_EQ(bs_audit_key_load(tpath("r.pem"), &k), BS_OK);
    CHECK_EQ(bs_audit_key_load_public(tpath("r.pub"), &pub), BS_OK);
    const char *f = tpath("restart.log");
    unlink(f);
    bs_audit_link link;
    CHECK_EQ(bs_audit_link_from_file(f, &link), BS_OK); /* missing file: no link */
    CHECK(!link.valid);
    lines a = {.fail_after = -1}, b = {.fail_after = -1};
    build_chain(k, &a, NULL);
    write_lines(f, a.v, a.n, 0);
    CHECK_EQ(bs_audit_link_from_file(f, &link), BS_OK);
    CHECK(link.valid);
    CHECK(link.sealed);
    CHECK_EQ(link.sequence, a.n - 1);
    char h[65];
    sha_hex(a.v[a.n - 1], h);
    CHECK_STR(link.hash, h);
    /* The "restarted process": a new chain linked to the old one. */
    build_chain(k, &b, &link);
    cJSON *start = cJSON_Parse(b.v[0]);
    const cJSON *pc = jget(start, "previousChain");
    CHECK_STR(jstr(pc, "chainId"), link.chain_id);
    CHECK_EQ(jnum(pc, "lastSequence"), (double)link.sequence);
    CHECK_STR(jstr(pc, "lastHash"), h);
    CHECK_EQ(jbool(pc, "sealed"), 1);
    CHECK(strcmp(jstr(start, "chainId"), link.chain_id) != 0);
    cJSON_Delete(start);
    FILE *fa = fopen(f, "ab");
    for (size_t i = 0; fa && i < b.n; i++)
        fprintf(fa, "%s\n", b.v[i]);
    if (fa) fclose(fa);
    bs_audit_verify_result r = verify1(f, pub);
    CHECK_EQ(r.first_problem, BS_AUDIT_OK);
    CHECK_EQ(r.events, a.n + b.n);
    r = verify1(f, k); /* the private key verifies too */
    CHECK_EQ(r.problems, 0);
    /* Two files given in order are one stream; the second alone starts a
     * chain that links to something not given: a warning. */
    write_lines(tpath("seg1.log"), a.v, a.n, 0);
    write_lines(tpath("seg2.log"), b.v, b.n, 0);
    const char *both[] = {tpath("seg1.log"), tpath("seg2.log")};
    CHECK_EQ(bs_audit_verify_files(both, 2, pub, NULL, &r), BS_OK);
    CHECK_EQ(r.problems, 0);
    CHECK_EQ(r.warnings, 0);
    r = verify1(tpath("seg2.log"), pub);
    CHECK_EQ(r.problems, 0);
    CHECK_EQ(r.warnings, 1);
    /* Remove the first chain's final digest: the link breaks. */
    write_lines(tpath("seg1.log"), a.v, a.n - 1, 0);
    CHECK_EQ(bs_audit_verify_files(both, 2, pub, NULL, &r), BS_OK);
    CHECK_EQ(r.first_problem, BS_AUDIT_BAD_LINK);
    CHECK_STR(r.first_file, tpath("seg2.log"));
    CHECK_EQ(r.first_line, 1);
    /* A file that starts mid-chain (earlier rotated files not given). */
    write_lines(tpath("mid.log"), a.v + 3, a.n - 3, 0);
    r = verify1(tpath("mid.log"), pub);
    CHECK_EQ(r.problems, 0);
    CHECK(r.warnings >= 1);
    /* An unparsable last line makes the link unusable. */
    write_file(tpath("badtail.log"), "garbage\n", 8, 0600);
    CHECK_EQ(bs_audit_link_from_file(tpath("badtail.log"), &link), BS_E_MALFORMED);
    lines_free(&a);
    lines_free(&b);
    bs_audit_key_free(k);
    bs_audit_key_free(pub);
}

/* bs_audit_verify_main's exit codes (its report goes to stdout). */
static void test_verify_cli_exit_codes(void)
{
    bs_audit_key *k = NULL;
    make_hmac_key(tpath("cli.key"), 0600);
    CHECK_EQ(bs_audit_key_load(tpath("cli.key"), &k), BS_OK);
    lines l = {.fail_after = -1};
    build_chain(k, &l, NULL);
    write_lines(tpath("cli.log"), l.v, l.n, 0);
    char *ok[] = {"verify", "--key", (char *)tpath("cli.key"), (char *)tpath("cli.log")};
    CHECK_EQ(bs_audit_verify_main(4, ok), 0);
    char *strict_nokey[] = {"verify", "--strict", (char *)tpath("cli.log")};
    CHECK_EQ(bs_audit_verify_main(3, strict_nokey), 1);
    write_lines(tpath("cli.log"), l.v, l.n - 3, 0);
    CHECK_EQ(bs_audit_verify_main(4, ok), 0); /* unsealed tail: warning */
    char *strict[] = {"verify", "--strict", "--key", (char *)tpath("cli.key"),
                      (char *)tpath("cli.log")};
    CHECK_EQ(bs_audit_verify_main(5, strict), 1);
    char *tmp = l.v[4];
    l.v[4] = l.v[5];
    l.v[5] = tmp;
    write_lines(tpath("cli.log"), l.v, l.n, 0);
    CHECK_EQ(bs_audit_verify_main(4, ok), 1);
    char *none[] = {"verify"};
    CHECK_EQ(bs_audit_verify_main(1, none), 2);
    char *badopt[] = {"verify", "--bogus", "x"};
    CHECK_EQ(bs_audit_verify_main(3, badopt), 2);
    char *nokeyarg[] = {"verify", "--key"};
    CHECK_EQ(bs_audit_verify_main(2, nokeyarg), 2);
    char *missing[] = {"verify", (char *)tpath("missing.log")};
    CHECK_EQ(bs_audit_verify_main(2, missing), 2);
    char *badkey[] = {"verify", "--key", (char *)tpath("missing.key"), (char *)tpath("cli.log")};
    CHECK_EQ(bs_audit_verify_main(4, badkey), 2);
    lines_free(&l);
    bs_audit_key_free(k);
}

/* Remove the temp dir's files and the dir. */
static void cleanup_dir(void)
{
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') unlink(tpath(de->d_name));
    closedir(d);
    rmdir(g_dir);
}

/* Run every test in a private temp dir, removed at the end. */
/* ------------------------------------------------------------------ OCSF */

/* Render ev in OCSF and parse it; also appends the line to samples.ndjson
 * (the integration tests validate such lines against the schema). */
static cJSON *render_ocsf(const bs_audit_event *ev)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_audit_render_format(BS_AUDIT_FORMAT_OCSF, ev,
                                    "01234567-89ab-7cde-8f01-23456789abcd", &w),
             BS_OK);
    cJSON *j = cJSON_ParseWithLength((const char *)w.data, w.len);
    CHECK(j != NULL);
    CHECK(memchr(w.data, '\n', w.len) == NULL);
    bs_wbuf_free(&w);
    return j;
}

/* The OCSF classification members agree: type_uid = class*100+activity,
 * category = class/1000, metadata names the product and the event id. */
static void check_ocsf_head(const cJSON *j, int class_uid, int activity)
{
    CHECK_EQ(jnum(j, "class_uid"), class_uid);
    CHECK_EQ(jnum(j, "category_uid"), class_uid / 1000);
    CHECK_EQ(jnum(j, "activity_id"), activity);
    CHECK_EQ(jnum(j, "type_uid"), class_uid * 100 + activity);
    CHECK(jnum(j, "severity_id") >= 1);
    const cJSON *md = jget(j, "metadata");
    CHECK_STR(jstr(md, "version"), "1.8.0");
    CHECK_STR(jstr(jget(md, "product"), "name"), "brokerside");
    CHECK(cJSON_IsObject(jget(j, "unmapped")));
}

static void test_ocsf_request_and_authz(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    fill_common(&ev);
    ev.type = BS_AUDIT_EV_REQUEST;
    ev.api_key = 19; /* CreateTopics */
    ev.api_version = 7;
    ev.correlation_id = 1001;
    ev.latency_us = 2500;
    size_t t0, t1;
    CHECK_EQ(bs_audit_event_set_client_id(&ev, "admin-1", 7), BS_OK);
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, "orders", 6, &t0), BS_OK);
    CHECK_EQ(bs_audit_event_add_config_key(&ev, t0, "retention.ms", 12), BS_OK);
    CHECK_EQ(bs_audit_event_add_resource(&ev, BS_AUDIT_RES_TOPIC, "payments", 8, &t1), BS_OK);
    CHECK_EQ(bs_audit_event_set_resource_error(&ev, t0, 0), BS_OK);
    CHECK_EQ(bs_audit_event_set_resource_error(&ev, t1, 36), BS_OK);
    cJSON *j = render_ocsf(&ev);
    check_ocsf_head(j, 6003, 1); /* Create */
    CHECK_EQ(jnum(j, "time"), 1764000000123);
    CHECK_EQ(jnum(j, "status_id"), 2);
    CHECK_STR(jstr(j, "status_code"), "36");
    CHECK_STR(jstr(j, "status_detail"), "TOPIC_ALREADY_EXISTS");
    CHECK_STR(jstr(jget(j, "metadata"), "uid"), "01234567-89ab-7cde-8f01-23456789abcd");
    const cJSON *api = jget(j, "api");
    CHECK_STR(jstr(api, "operation"), "CreateTopics");
    CHECK_STR(jstr(jget(api, "request"), "uid"), "1001");
    CHECK_EQ(jnum(jget(api, "response"), "code"), 36);
    CHECK_STR(jstr(jget(jget(j, "actor"), "user"), "name"), "CN=dev-client,O=Example");
    CHECK_STR(jstr(jget(j, "src_endpoint"), "ip"), "192.0.2.7");
    CHECK_EQ(jnum(jget(j, "src_endpoint"), "port"), 51234);
    CHECK_STR(jstr(jget(j, "dst_endpoint"), "name"), "clients");
    const cJSON *res = jget(j, "resources");
    CHECK_EQ(cJSON_GetArraySize(res), 2);
    CHECK_STR(jstr(cJSON_GetArrayItem(res, 0), "name"), "orders");
    CHECK_STR(jstr(cJSON_GetArrayItem(res, 0), "type"), "topic");
    const cJSON *ck = cJSON_GetArrayItem(jget(jget(cJSON_GetArrayItem(res, 0), "data"), "configKeys"), 0);
    CHECK(cJSON_IsString(ck) && strcmp(ck->valuestring, "retention.ms") == 0);
    CHECK_EQ(jnum(jget(cJSON_GetArrayItem(res, 1), "data"), "errorCode"), 36);
    const cJSON *um = jget(j, "unmapped");
    CHECK_STR(jstr(um, "eventName"), "CreateTopics");
    CHECK_STR(jstr(um, "eventType"), "KafkaApiCall");
    CHECK_STR(jstr(um, "clientId"), "admin-1");
    cJSON_Delete(j);

    /* an authorization decision: actor.authorizations, denied = failure */
    bs_audit_event_reset(&ev);
    fill_common(&ev);
    ev.type = BS_AUDIT_EV_AUTHZ;
    ev.api_key = 0;
    ev.correlation_id = 7;
    CHECK_EQ(bs_audit_event_add_decision(&ev, BS_AUDIT_RES_TOPIC, "orders", 6, "WRITE", false, 3,
                                         "rule"),
             BS_OK);
    j = render_ocsf(&ev);
    check_ocsf_head(j, 6003, 1);
    CHECK_EQ(jnum(j, "status_id"), 2);
    const cJSON *az = cJSON_GetArrayItem(jget(jget(j, "actor"), "authorizations"), 0);
    CHECK_STR(jstr(az, "decision"), "Deny");
    CHECK_STR(jstr(jget(az, "policy"), "name"), "rules[3]");
    CHECK_STR(jstr(jget(jget(az, "policy"), "data"), "operation"), "WRITE");
    CHECK_STR(jstr(jget(j, "unmapped"), "eventType"), "KafkaAuthorization");
    cJSON_Delete(j);
    bs_audit_event_free(&ev);
}

static void test_ocsf_connection_events(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    static const struct {
        bs_audit_conn_kind kind;
        int class_uid, activity, status;
    } want[] = {
        {BS_AUDIT_CONN_ACCEPTED, 4001, 1, 1},
        {BS_AUDIT_CONN_TLS_HANDSHAKE_FAILED, 4001, 4, 2},
        {BS_AUDIT_CONN_CLIENT_CERT_REJECTED, 3002, 1, 2},
        {BS_AUDIT_CONN_CLOSED, 4001, 2, 1},
        {BS_AUDIT_CONN_CLIENT_CERT_ACCEPTED, 3002, 1, 1},
        {BS_AUDIT_CONN_PROXY_REJECTED, 4001, 4, 2},
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(want); i++) {
        bs_audit_event_reset(&ev);
        fill_common(&ev);
        ev.type = BS_AUDIT_EV_CONNECTION;
        ev.conn_kind = want[i].kind;
        ev.reason = want[i].status == 2 ? "certificate verify failed" : NULL;
        ev.duration_ms = 1500;
        ev.bytes_in = 10;
        ev.bytes_out = 20;
        cJSON *j = render_ocsf(&ev);
        check_ocsf_head(j, want[i].class_uid, want[i].activity);
        CHECK_EQ(jnum(j, "status_id"), want[i].status);
        if (want[i].class_uid == 3002)
            CHECK_STR(jstr(j, "auth_protocol"), "TLS client certificate");
        if (want[i].kind == BS_AUDIT_CONN_CLOSED) {
            CHECK_EQ(jnum(jget(j, "traffic"), "bytes"), 30);
            CHECK_EQ(jnum(j, "duration"), 1500);
        }
        if (want[i].kind == BS_AUDIT_CONN_PROXY_REJECTED) {
            /* refused like a failed handshake: the peer, the listener, the reason */
            CHECK_STR(jstr(j, "activity_name"), "Fail");
            CHECK_EQ(jnum(j, "severity_id"), 2);
            CHECK_STR(jstr(j, "status_detail"), "certificate verify failed");
            CHECK_STR(jstr(jget(j, "src_endpoint"), "ip"), "192.0.2.7");
            CHECK_EQ(jnum(jget(j, "src_endpoint"), "port"), 51234);
            CHECK_STR(jstr(jget(j, "dst_endpoint"), "name"), "clients");
            CHECK_STR(jstr(jget(j, "connection_info"), "uid"), "42");
            CHECK_STR(jstr(jget(j, "unmapped"), "eventName"), "ProxyProtocolRejected");
            CHECK_STR(jstr(jget(j, "unmapped"), "reason"), "certificate verify failed");
        }
        cJSON_Delete(j);
        /* the CloudTrail-like rendering names the same event */
        j = render_parse(&ev);
        CHECK_STR(jstr(j, "eventType"), "KafkaConnection");
        cJSON_Delete(j);
    }
    bs_audit_event_free(&ev);
}

/* Sidecar actions in both formats; a secret change carries no value. */
static void test_sidecar_action_events(void)
{
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    bs_action_detail d[] = {{"file", "/etc/brokerside/brokerside.json"}};
    bs_config_change ch[] = {
        {"audit.data_events", "changed", "aggregate", "each", false},
        {"aws.secret_access_key", "changed", "TOPSECRET-OLD", "TOPSECRET-NEW", true},
        {"listeners[0].tls.crl", "added", NULL, "/etc/crl.pem", false},
    };
    bs_sidecar_action a = {.kind = BS_ACTION_CONFIG_RELOADED,
                           .subject_type = "configuration",
                           .subject = "/etc/brokerside/brokerside.json",
                           .message = "configuration reloaded",
                           .details = d,
                           .n_details = 1,
                           .changes = ch,
                           .n_changes = 3};
    CHECK_EQ(bs_audit_event_from_action(&ev, &a, 4), BS_OK);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_audit_render(&ev, NULL, &w), BS_OK);
    CHECK(memmem(w.data, w.len, "TOPSECRET", 9) == NULL);
    cJSON *j = cJSON_ParseWithLength((const char *)w.data, w.len);
    CHECK_STR(jstr(j, "eventName"), "ConfigurationReloaded");
    CHECK_STR(jstr(j, "eventType"), "SidecarAction");
    CHECK_STR(jstr(j, "outcome"), "success");
    CHECK_EQ(jnum(j, "brokerId"), 4);
    const cJSON *c = jget(j, "changes");
    CHECK_EQ(cJSON_GetArraySize(c), 3);
    CHECK_STR(jstr(cJSON_GetArrayItem(c, 0), "new"), "each");
    CHECK_STR(jstr(cJSON_GetArrayItem(c, 1), "path"), "aws.secret_access_key");
    CHECK_EQ(jbool(cJSON_GetArrayItem(c, 1), "secret"), 1);
    CHECK(jget(cJSON_GetArrayItem(c, 1), "old") == NULL);
    CHECK(jget(cJSON_GetArrayItem(c, 2), "old") == NULL);
    CHECK_STR(jstr(jget(jget(j, "component"), "details"), "file"),
              "/etc/brokerside/brokerside.json");
    cJSON_Delete(j);
    bs_wbuf_free(&w);
    j = render_ocsf(&ev);
    check_ocsf_head(j, 3004, 3);
    CHECK_STR(jstr(jget(j, "entity"), "type"), "Configuration");
    CHECK_EQ(cJSON_GetArraySize(jget(jget(j, "unmapped"), "changes")), 3);
    cJSON_Delete(j);

    static const struct {
        bs_sidecar_action_kind kind;
        int class_uid, activity;
    } map[] = {
        {BS_ACTION_STOPPING, 6002, 4},        {BS_ACTION_CONFIG_REJECTED, 3004, 3},
        {BS_ACTION_TLS_RELOADED, 3004, 3},    {BS_ACTION_POLICY_CHANGED, 3004, 3},
        {BS_ACTION_DEK_CREATED, 3004, 1},     {BS_ACTION_DEK_ROTATED, 3004, 11},
        {BS_ACTION_KMS_FAILED, 6008, 1},      {BS_ACTION_KMS_RECOVERED, 6008, 99},
        {BS_ACTION_SINK_DEAD_LETTERED, 6008, 1}, {BS_ACTION_SPOOL_FULL, 6008, 1},
        {BS_ACTION_SPOOL_RECOVERED, 6008, 99},
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(map); i++) {
        bs_sidecar_action b = {.kind = map[i].kind, .subject_type = "x", .subject = "y"};
        CHECK_EQ(bs_audit_event_from_action(&ev, &b, -1), BS_OK);
        j = render_ocsf(&ev);
        check_ocsf_head(j, map[i].class_uid, map[i].activity);
        CHECK_STR(jstr(jget(j, "unmapped"), "eventName"), bs_sidecar_action_name(map[i].kind));
        cJSON_Delete(j);
    }
    CHECK_STR(bs_sidecar_action_name(BS_ACTION__COUNT), "UnknownAction");
    bs_audit_event_free(&ev);
}

/* The recorder registry: nothing without one, every emission with one. */
static int g_actions_seen;
static void count_action(const bs_sidecar_action *a, void *arg)
{
    (void)a;
    *(int *)arg += 1;
    g_actions_seen++;
}

static void test_sidecar_action_recorder(void)
{
    bs_sidecar_action a = {.kind = BS_ACTION_SPOOL_FULL};
    int n = 0;
    bs_sidecar_action_emit(&a); /* no recorder: dropped */
    bs_sidecar_action_set_recorder(count_action, &n);
    bs_sidecar_action_emit(&a);
    bs_sidecar_action_emit(NULL);
    bs_sidecar_action_set_recorder(NULL, NULL);
    bs_sidecar_action_emit(&a);
    CHECK_EQ(n, 1);
}

/* An OCSF chain: aggregates, start, digests and loss records in OCSF, and
 * `audit verify` reads it like the CloudTrail-like one (and finds edits). */
static void test_ocsf_chain_verifies(void)
{
    bs_audit_key *k = NULL;
    make_hmac_key(tpath("ocsf.key"), 0600);
    CHECK_EQ(bs_audit_key_load(tpath("ocsf.key"), &k), BS_OK);
    bs_audit_event ev;
    bs_audit_event_init(&ev);
    lines out = {.fail_after = -1};
    bs_audit_options o;
    bs_audit_options_default(&o);
    o.format = BS_AUDIT_FORMAT_OCSF;
    o.digest_every_events = 3;
    bs_audit_log *log = open_log(&o, k, NULL, &out);
    if (!log) return;
    for (int i = 0; i < 4; i++) {
        data_event(&ev, "CN=a", 0, "t", 1764000000000000LL + i, i == 2 ? 6 : 0, 2, 20);
        CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK); /* folded */
    }
    bs_sidecar_action a = {.kind = BS_ACTION_DEK_CREATED, .subject_type = "dataKey", .subject = "k"};
    CHECK_EQ(bs_audit_event_from_action(&ev, &a, 1), BS_OK);
    CHECK_EQ(bs_audit_log_record(log, &ev), BS_OK);
    out.fail_after = (int)out.n; /* one loss */
    CHECK(bs_audit_log_record(log, &ev) != BS_OK);
    out.fail_after = -1;
    CHECK_EQ(bs_audit_log_flush_aggregates(log, 1764000001000000LL), BS_OK);
    CHECK_EQ(bs_audit_log_close(log, 1764000002000000LL), BS_OK);
    /* every line is OCSF with the chain members in unmapped */
    for (size_t i = 0; i < out.n; i++) {
        cJSON *j = cJSON_Parse(out.v[i]);
        CHECK(j && jnum(j, "class_uid") > 0);
        const cJSON *um = jget(j, "unmapped");
        CHECK_EQ(jnum(um, "sequence"), (double)i);
        CHECK(jstr(um, "chainId") && jstr(um, "previousHash"));
        cJSON_Delete(j);
    }
    cJSON *start = cJSON_Parse(out.v[0]);
    check_ocsf_head(start, 6002, 3);
    CHECK_STR(jstr(jget(start, "unmapped"), "previousRun"), "none");
    cJSON_Delete(start);
    size_t agg = find_line(&out, "\"KafkaApiCallAggregate\"", 0);
    CHECK(agg < out.n);
    if (agg < out.n) {
        cJSON *j = cJSON_Parse(out.v[agg]);
        check_ocsf_head(j, 6003, 1);
        CHECK_EQ(jnum(j, "count"), 4);
        CHECK_EQ(jnum(j, "start_time"), 1764000000000);
        CHECK_EQ(jnum(j, "status_id"), 99);
        CHECK_EQ(jnum(jget(jget(j, "unmapped"), "aggregate"), "errors"), 1);
        cJSON_Delete(j);
    }
    CHECK(find_line(&out, "\"class_uid\":1008", 0) < out.n); /* digests, the loss */
    write_lines(tpath("ocsf.log"), out.v, out.n, 0);
    bs_audit_verify_result r = verify1(tpath("ocsf.log"), k);
    CHECK_EQ(r.problems, 1); /* the recorded loss, and nothing else */
    CHECK_EQ(r.first_problem, BS_AUDIT_LOST);
    CHECK(r.digests_ok >= 2);
    /* the restart link reads an OCSF last line */
    bs_audit_link link;
    CHECK_EQ(bs_audit_link_from_file(tpath("ocsf.log"), &link), BS_OK);
    CHECK(link.valid && link.sealed && link.sequence == out.n - 1);
    /* an edit inside a mapped attribute breaks the chain */
    size_t e = find_line(&out, "\"event_code\":\"Produce\"", 0); /* an aggregate, after the loss */
    CHECK(e < out.n);
    if (e < out.n) {
        char *p = strstr(out.v[e], "\"count\":4");
        CHECK(p != NULL);
        if (p) p[8] = '5';
        write_lines(tpath("ocsf-edited.log"), out.v, out.n, 0);
        r = verify1(tpath("ocsf-edited.log"), k);
        /* the recorded loss before it, then the edit (and the digest over it) */
        CHECK(r.problems >= 2);
        CHECK_EQ(r.first_problem, BS_AUDIT_LOST);
    }
    lines_free(&out);
    bs_audit_event_free(&ev);
    bs_audit_key_free(k);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/bs_test_audit_XXXXXX");
    if (!mkdtemp(g_dir)) return 2;
    RUN(test_classification_spot_checks);
    RUN(test_classification_matches_schemas);
    RUN(test_classification_matches_kafka_table);
    RUN(test_error_names);
    RUN(test_render_management_event);
    RUN(test_render_data_event_partitions_and_acl);
    RUN(test_render_connection_events);
    RUN(test_render_proxy_rejected_detail);
    RUN(test_render_hostile_strings);
    RUN(test_event_limits);
    RUN(test_event_id_and_time);
    RUN(test_log_routing_modes);
    RUN(test_aggregator);
    RUN(test_emit_failure_keeps_chain);
    RUN(test_loss_and_crash_reported);
    RUN(test_concurrent_recording);
    RUN(test_keys);
    RUN(test_verify_detects_tampering);
    RUN(test_verify_every_byte_flip);
    RUN(test_verify_ed25519_and_restart_link);
    RUN(test_verify_cli_exit_codes);
    RUN(test_ocsf_request_and_authz);
    RUN(test_ocsf_connection_events);
    RUN(test_sidecar_action_events);
    RUN(test_sidecar_action_recorder);
    RUN(test_ocsf_chain_verifies);
    cleanup_dir();
    return test_report();
}
