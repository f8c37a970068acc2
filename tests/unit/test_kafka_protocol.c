/* Unit tests for src/kafka/kafka.c (primitives, API table, headers),
 * src/kafka/kafka_framer.c, ApiVersions capping and src/kafka/kafka_summary.c. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/kafka.h"
#include "brokerside/kafka_framer.h"
#include "brokerside/kafka_rewrite.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_summary.h"
#include "test.h"

static void test_strings(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_kafka_put_string(&w, false, (const uint8_t *)"abc", 3);
    bs_kafka_put_string(&w, true, (const uint8_t *)"de", 2);
    bs_kafka_put_string(&w, false, NULL, -1);
    bs_kafka_put_string(&w, true, NULL, -1);
    bs_kafka_put_string(&w, true, (const uint8_t *)"", 0);
    CHECK_EQ(bs_wbuf_status(&w), BS_OK);
    const uint8_t want[] = {0, 3, 'a', 'b', 'c', 3, 'd', 'e', 0xff, 0xff, 0, 1};
    CHECK_EQ(w.len, sizeof want);
    CHECK_MEM(w.data, want, sizeof want);
    bs_cursor c;
    bs_kafka_slice s;
    bs_cursor_init(&c, w.data, w.len);
    CHECK_EQ(bs_kafka_read_string(&c, false, false, &s), BS_OK);
    CHECK(s.len == 3 && memcmp(s.p, "abc", 3) == 0);
    CHECK_EQ(bs_kafka_read_string(&c, true, false, &s), BS_OK);
    CHECK(s.len == 2 && memcmp(s.p, "de", 2) == 0);
    size_t at = c.pos;
    CHECK_EQ(bs_kafka_read_string(&c, false, false, &s), BS_E_MALFORMED); /* null, not nullable */
    c.pos = at;
    CHECK_EQ(bs_kafka_read_string(&c, false, true, &s), BS_OK);
    CHECK_EQ(s.len, -1);
    at = c.pos;
    CHECK_EQ(bs_kafka_read_string(&c, true, false, &s), BS_E_MALFORMED);
    c.pos = at;
    CHECK_EQ(bs_kafka_read_string(&c, true, true, &s), BS_OK);
    CHECK_EQ(s.len, -1);
    CHECK_EQ(bs_kafka_read_string(&c, true, false, &s), BS_OK);
    CHECK_EQ(s.len, 0);
    CHECK_EQ(bs_cursor_remaining(&c), 0);
    CHECK_EQ(bs_kafka_read_string(&c, true, false, &s), BS_E_SHORT);
    bs_wbuf_free(&w);
}

static void test_hostile_lengths(void)
{
    bs_cursor c;
    bs_kafka_slice s;
    int32_t n;
    /* negative string length other than -1 */
    const uint8_t neg[] = {0xff, 0xfe, 'a', 'b'};
    bs_cursor_init(&c, neg, sizeof neg);
    CHECK_EQ(bs_kafka_read_string(&c, false, true, &s), BS_E_MALFORMED);
    CHECK_EQ(c.pos, 2); /* the length was consumed; the caller rejects the frame anyway */
    /* length beyond the frame */
    const uint8_t big[] = {0, 5, 'a', 'b'};
    bs_cursor_init(&c, big, sizeof big);
    CHECK_EQ(bs_kafka_read_string(&c, false, false, &s), BS_E_MALFORMED);
    /* bytes: int32 length beyond the frame, and negative */
    const uint8_t bb[] = {0x7f, 0xff, 0xff, 0xff, 1};
    bs_cursor_init(&c, bb, sizeof bb);
    CHECK_EQ(bs_kafka_read_bytes(&c, false, true, &s), BS_E_MALFORMED);
    const uint8_t bn[] = {0x80, 0, 0, 0};
    bs_cursor_init(&c, bn, sizeof bn);
    CHECK_EQ(bs_kafka_read_bytes(&c, false, true, &s), BS_E_MALFORMED);
    /* compact string longer than Kafka allows, even if bytes were there */
    const uint8_t cl[] = {0x81, 0x80, 0x02}; /* 32769 - 1 */
    bs_cursor_init(&c, cl, sizeof cl);
    CHECK_EQ(bs_kafka_read_string(&c, true, false, &s), BS_E_MALFORMED);
    /* varint too long (6 bytes) */
    const uint8_t vl[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    bs_cursor_init(&c, vl, sizeof vl);
    CHECK_EQ(bs_kafka_read_string(&c, true, false, &s), BS_E_MALFORMED);
    bs_cursor_init(&c, vl, sizeof vl);
    CHECK_EQ(bs_kafka_read_array_len(&c, true, false, 1, &n), BS_E_MALFORMED);
    /* array counts: larger than the frame, larger than the frame can hold at 4 bytes each */
    const uint8_t ac[] = {0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8};
    bs_cursor_init(&c, ac, sizeof ac);
    CHECK_EQ(bs_kafka_read_array_len(&c, false, false, 4, &n), BS_E_MALFORMED);
    bs_cursor_init(&c, ac, sizeof ac);
    CHECK_EQ(bs_kafka_read_array_len(&c, false, false, 2, &n), BS_OK);
    CHECK_EQ(n, 3);
    const uint8_t an[] = {0xff, 0xff, 0xff, 0xfd};
    bs_cursor_init(&c, an, sizeof an);
    CHECK_EQ(bs_kafka_read_array_len(&c, false, true, 1, &n), BS_E_MALFORMED);
    const uint8_t anull[] = {0xff, 0xff, 0xff, 0xff};
    bs_cursor_init(&c, anull, sizeof anull);
    CHECK_EQ(bs_kafka_read_array_len(&c, false, false, 1, &n), BS_E_MALFORMED);
    bs_cursor_init(&c, anull, sizeof anull);
    CHECK_EQ(bs_kafka_read_array_len(&c, false, true, 1, &n), BS_OK);
    CHECK_EQ(n, -1);
    const uint8_t cz[] = {0};
    bs_cursor_init(&c, cz, sizeof cz);
    CHECK_EQ(bs_kafka_read_array_len(&c, true, true, 1, &n), BS_OK);
    CHECK_EQ(n, -1);
    /* compact count 0xffffffff - 1 in a 5-byte varint */
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    bs_cursor_init(&c, huge, sizeof huge);
    CHECK_EQ(bs_kafka_read_array_len(&c, true, false, 1, &n), BS_E_MALFORMED);
    /* uuid truncated */
    const uint8_t *u;
    bs_cursor_init(&c, ac, 10);
    CHECK_EQ(bs_kafka_read_uuid(&c, &u), BS_E_SHORT);
}

static void test_tag_sections(void)
{
    /* two tags (1: "x", 7: "yz") then a byte after the section */
    const uint8_t t[] = {2, 1, 1, 'x', 7, 2, 'y', 'z', 0x55};
    bs_cursor c;
    bs_kafka_slice raw;
    uint32_t n;
    bs_cursor_init(&c, t, sizeof t);
    CHECK_EQ(bs_kafka_read_tag_section(&c, &raw, &n), BS_OK);
    CHECK_EQ(n, 2);
    CHECK_EQ(raw.len, 8);
    CHECK(raw.p == t);
    /* re-emitted verbatim */
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put(&w, raw.p, (size_t)raw.len);
    CHECK_MEM(w.data, t, 8);
    bs_wbuf_free(&w);
    /* truncated at every offset */
    for (size_t cut = 0; cut < 8; cut++) {
        bs_cursor_init(&c, t, cut);
        CHECK_EQ(bs_kafka_read_tag_section(&c, &raw, &n), BS_E_MALFORMED);
        CHECK_EQ(c.pos, 0);
    }
    const uint8_t unordered[] = {2, 7, 0, 1, 0};
    bs_cursor_init(&c, unordered, sizeof unordered);
    CHECK_EQ(bs_kafka_read_tag_section(&c, &raw, &n), BS_E_MALFORMED);
    const uint8_t dup[] = {2, 1, 0, 1, 0};
    bs_cursor_init(&c, dup, sizeof dup);
    CHECK_EQ(bs_kafka_read_tag_section(&c, &raw, &n), BS_E_MALFORMED);
    const uint8_t many[] = {100, 1, 0};
    bs_cursor_init(&c, many, sizeof many);
    CHECK_EQ(bs_kafka_read_tag_section(&c, &raw, &n), BS_E_MALFORMED);
    bs_kafka_tag tag;
    const uint8_t big[] = {1, 9, 1};
    bs_cursor_init(&c, big, sizeof big);
    CHECK_EQ(bs_kafka_read_tag(&c, &tag), BS_E_MALFORMED);
}

/* Parses `"key": "value"` or `"key": number` from the first occurrence outside // comments. */
static bool json_field(const char *text, const char *key, char *out, size_t outlen)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = text;
    while ((p = strstr(p, pat))) {
        const char *line = p;
        while (line > text && line[-1] != '\n')
            line--;
        while (*line == ' ' || *line == '\t')
            line++;
        if (line[0] == '/' && line[1] == '/') {
            p += strlen(pat);
            continue;
        }
        p += strlen(pat);
        while (*p == ' ' || *p == ':')
            p++;
        if (*p == '"') p++;
        size_t n = 0;
        while (p[n] && p[n] != '"' && p[n] != ',' && p[n] != '\n' && n + 1 < outlen)
            n++;
        memcpy(out, p, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* The generated API table agrees with every *Request.json / *Response.json of
 * the pinned Kafka release ($BS_KAFKA_MESSAGES: extracted from its
 * kafka-clients jar by the CMake configure step). */
static void test_api_table_matches_json(void)
{
    const char *dir = getenv("BS_KAFKA_MESSAGES");
    DIR *d = dir && *dir ? opendir(dir) : NULL;
    if (!d)
        fprintf(stderr, "  no message definitions (BS_KAFKA_MESSAGES=%s): run `make deps`\n",
                dir ? dir : "unset");
    CHECK(d != NULL);
    if (!d) return;
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        bool req = nl > 12 && strcmp(e->d_name + nl - 12, "Request.json") == 0;
        bool resp = nl > 13 && strcmp(e->d_name + nl - 13, "Response.json") == 0;
        if (!req && !resp) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        CHECK(f != NULL);
        if (!f) continue;
        static char text[256 * 1024];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        char key[32], valid[32], flex[32];
        CHECK(json_field(text, "apiKey", key, sizeof key));
        CHECK(json_field(text, "validVersions", valid, sizeof valid));
        /* APIs Kafka removed (validVersions "none") name no flexible versions */
        if (!json_field(text, "flexibleVersions", flex, sizeof flex)) snprintf(flex, sizeof flex, "none");
        const bs_kafka_api_info *a = bs_kafka_api((int16_t)atoi(key));
        CHECK(a != NULL);
        if (!a) continue;
        int vmin = atoi(valid), vmax = strchr(valid, '-') ? atoi(strchr(valid, '-') + 1) : vmin;
        if (strcmp(valid, "none") == 0) vmin = 1, vmax = 0; /* removed APIs: an empty range */
        int fmin = strcmp(flex, "none") == 0 ? 0x7fff : atoi(flex);
        if (req) {
            CHECK_EQ(a->min_version, vmin);
            CHECK_EQ(a->max_version, vmax);
            CHECK_EQ(a->req_flex_min, fmin);
        } else {
            CHECK_EQ(a->resp_flex_min, fmin);
        }
        char name[128];
        snprintf(name, sizeof name, "%s%s", a->name, req ? "Request.json" : "Response.json");
        CHECK_STR(e->d_name, name);
        files++;
    }
    closedir(d);
    size_t napis;
    bs_kafka_api_table(&napis);
    CHECK_EQ(files, (int)napis * 2);
    CHECK_STR(bs_kafka_api_name(0), "Produce");
    CHECK_STR(bs_kafka_api_name(3), "Metadata");
    CHECK_STR(bs_kafka_api_name(-5), "unknown");
    CHECK_STR(bs_kafka_api_name(9999), "unknown");
}

/* Every API x version: header versions, and a request header round trip. */
static void test_headers_every_api_version(void)
{
    size_t napis;
    const bs_kafka_api_info *t = bs_kafka_api_table(&napis);
    int cases = 0;
    for (size_t i = 0; i < napis; i++) {
        for (int16_t v = t[i].min_version; v <= t[i].max_version; v++) {
            int hv, rhv;
            CHECK_EQ(bs_kafka_request_header_version(t[i].key, v, &hv), BS_OK);
            CHECK_EQ(bs_kafka_response_header_version(t[i].key, v, &rhv), BS_OK);
            int want = v >= t[i].req_flex_min ? 2 : 1;
            if (t[i].key == BS_KAFKA_CONTROLLED_SHUTDOWN && v == 0) want = 0;
            CHECK_EQ(hv, want);
            CHECK_EQ(rhv,
                     t[i].key == BS_KAFKA_API_VERSIONS ? 0 : (v >= t[i].resp_flex_min ? 1 : 0));
            bs_wbuf w;
            bs_wbuf_init(&w, 0);
            CHECK_EQ(bs_kafka_put_request_header(&w, t[i].key, v, 1000 + v,
                                                 (const uint8_t *)"client-1", 8),
                     BS_OK);
            bs_wbuf_put_u8(&w, 0xAB); /* first body byte */
            bs_kafka_request_header h;
            CHECK_EQ(bs_kafka_parse_request_header(w.data, w.len, &h), BS_OK);
            CHECK_EQ(h.api_key, t[i].key);
            CHECK_EQ(h.api_version, v);
            CHECK_EQ(h.correlation_id, 1000 + v);
            CHECK_EQ(h.header_version, want);
            CHECK_EQ(h.header_len, w.len - 1);
            if (want >= 1)
                CHECK(h.client_id.len == 8 && memcmp(h.client_id.p, "client-1", 8) == 0);
            else
                CHECK_EQ(h.client_id.len, -1);
            /* truncated at every offset */
            for (size_t cut = 0; cut + 1 < w.len; cut++)
                CHECK_EQ(bs_kafka_parse_request_header(w.data, cut, &h), BS_E_MALFORMED);
            bs_wbuf_free(&w);
            cases++;
        }
    }
    CHECK(cases > 300);
    fprintf(stderr, "  %d API/version header cases\n", cases);
    int hv;
    CHECK_EQ(bs_kafka_request_header_version(BS_KAFKA_API_VERSIONS, 3, &hv), BS_OK);
    CHECK_EQ(hv, 2);
    CHECK_EQ(bs_kafka_response_header_version(BS_KAFKA_API_VERSIONS, 4, &hv), BS_OK);
    CHECK_EQ(hv, 0);
    CHECK_EQ(bs_kafka_response_header_version(BS_KAFKA_METADATA, 9, &hv), BS_OK);
    CHECK_EQ(hv, 1);
    /* a newer version of a flexible API is still flexible; unknown keys are unsupported */
    CHECK_EQ(bs_kafka_request_header_version(BS_KAFKA_METADATA, 40, &hv), BS_OK);
    CHECK_EQ(hv, 2);
    CHECK_EQ(bs_kafka_request_header_version(17, 5, &hv),
             BS_E_UNSUPPORTED); /* SaslHandshake: never flexible */
    CHECK_EQ(bs_kafka_request_header_version(9999, 0, &hv), BS_E_UNSUPPORTED);
    CHECK_EQ(bs_kafka_request_header_version(3, -1, &hv), BS_E_UNSUPPORTED);
    /* unknown API: the fixed part is still reported */
    const uint8_t unk[] = {0x27, 0x0f, 0, 1, 0, 0, 0, 42, 0, 0};
    bs_kafka_request_header h;
    CHECK_EQ(bs_kafka_parse_request_header(unk, sizeof unk, &h), BS_E_UNSUPPORTED);
    CHECK_EQ(h.api_key, 9999);
    CHECK_EQ(h.correlation_id, 42);
    /* header v2 with a tagged field is parsed and kept raw */
    const uint8_t v2[] = {0, 3, 0, 12, 0, 0, 0, 7, 0xff, 0xff, 1, 3, 1, 'q', 0x99};
    CHECK_EQ(bs_kafka_parse_request_header(v2, sizeof v2, &h), BS_OK);
    CHECK_EQ(h.client_id.len, -1);
    CHECK_EQ(h.tags.len, 4);
    CHECK_EQ(h.header_len, sizeof v2 - 1);
    /* client id with a hostile length */
    const uint8_t badcid[] = {0, 3, 0, 1, 0, 0, 0, 7, 0x7f, 0xff, 'a'};
    CHECK_EQ(bs_kafka_parse_request_header(badcid, sizeof badcid, &h), BS_E_MALFORMED);
}

static void test_response_headers(void)
{
    bs_kafka_response_header h;
    const uint8_t v0[] = {0, 0, 1, 0, 0xEE};
    CHECK_EQ(bs_kafka_parse_response_header(v0, sizeof v0, 0, &h), BS_OK);
    CHECK_EQ(h.correlation_id, 256);
    CHECK_EQ(h.header_len, 4);
    const uint8_t v1[] = {0, 0, 1, 0, 1, 5, 1, 'z', 0xEE};
    CHECK_EQ(bs_kafka_parse_response_header(v1, sizeof v1, 1, &h), BS_OK);
    CHECK_EQ(h.header_len, 8);
    CHECK_EQ(h.tags.len, 4);
    for (size_t cut = 0; cut < 8; cut++)
        CHECK_EQ(bs_kafka_parse_response_header(v1, cut, 1, &h), BS_E_MALFORMED);
    CHECK_EQ(bs_kafka_parse_response_header(v1, sizeof v1, 2, &h), BS_E_UNSUPPORTED);
}

static void test_framer(void)
{
    size_t n;
    const uint8_t ok[] = {0, 0, 0, 8, 1, 2};
    CHECK_EQ(bs_kafka_frame_length(ok, 3, 100, &n), BS_E_SHORT);
    CHECK_EQ(bs_kafka_frame_length(ok, 0, 100, &n), BS_E_SHORT);
    CHECK_EQ(bs_kafka_frame_length(ok, sizeof ok, 100, &n), BS_OK);
    CHECK_EQ(n, 12);
    CHECK_EQ(bs_kafka_frame_length(ok, sizeof ok, 8, &n), BS_OK);
    CHECK_EQ(bs_kafka_frame_length(ok, sizeof ok, 7, &n), BS_E_TOO_LARGE);
    const uint8_t neg[] = {0xff, 0xff, 0xff, 0xff};
    CHECK_EQ(bs_kafka_frame_length(neg, 4, 100, &n), BS_E_MALFORMED);
    const uint8_t tiny[] = {0, 0, 0, 3};
    CHECK_EQ(bs_kafka_frame_length(tiny, 4, 100, &n), BS_E_MALFORMED);
    const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
    CHECK_EQ(bs_kafka_frame_length(huge, 4, 104857600, &n), BS_E_TOO_LARGE);
    /* a TLS ClientHello on a plaintext port */
    const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    CHECK(bs_kafka_looks_like_tls(hello, sizeof hello));
    CHECK(!bs_kafka_looks_like_tls(ok, sizeof ok));
    CHECK_EQ(bs_kafka_frame_length(hello, sizeof hello, 104857600, &n), BS_E_TOO_LARGE);
    /* pipelined frames cut one after another */
    const uint8_t two[] = {0, 0, 0, 4, 9, 9, 9, 9, 0, 0, 0, 5, 1, 1, 1, 1, 1};
    size_t off = 0, frames = 0;
    while (off < sizeof two &&
           bs_kafka_frame_length(two + off, sizeof two - off, 100, &n) == BS_OK &&
           n <= sizeof two - off) {
        off += n;
        frames++;
    }
    CHECK_EQ(frames, 2);
    CHECK_EQ(off, sizeof two);
}

static void test_correlation_table(void)
{
    bs_kafka_corr_table t;
    bs_kafka_inflight e = {.api_key = 3, .api_version = 12, .expects_response = true}, out;
    CHECK_EQ(bs_kafka_corr_init(&t, 0), BS_E_CONFIG);
    CHECK_EQ(bs_kafka_corr_init(&t, 3), BS_OK);
    CHECK_EQ(bs_kafka_corr_pop(&t, 1, &out), BS_E_NOT_FOUND);
    for (int round = 0; round < 5; round++) { /* wraps around the ring */
        for (int i = 0; i < 3; i++) {
            e.correlation_id = round * 10 + i;
            e.start_ns = (uint64_t)i;
            CHECK_EQ(bs_kafka_corr_push(&t, &e), BS_OK);
        }
        e.correlation_id = 99;
        CHECK_EQ(bs_kafka_corr_push(&t, &e), BS_E_FULL);
        /* acks=0 produce: no response, never stored, never fills the table */
        bs_kafka_inflight noresp = {.correlation_id = 77, .expects_response = false};
        CHECK_EQ(bs_kafka_corr_push(&t, &noresp), BS_OK);
        CHECK_EQ(bs_kafka_corr_count(&t), 3);
        /* a response for the second request while the first is outstanding: protocol error */
        CHECK_EQ(bs_kafka_corr_pop(&t, round * 10 + 1, &out), BS_E_MALFORMED);
        CHECK_EQ(bs_kafka_corr_count(&t), 3);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(bs_kafka_corr_pop(&t, round * 10 + i, &out), BS_OK);
            CHECK_EQ(out.correlation_id, round * 10 + i);
            CHECK_EQ(out.api_key, 3);
            CHECK_EQ(out.start_ns, (uint64_t)i);
        }
        CHECK_EQ(bs_kafka_corr_count(&t), 0);
    }
    bs_kafka_corr_free(&t);
    bs_kafka_corr_free(&t);
}

static void test_produce_acks(void)
{
    int16_t acks;
    for (int16_t v = 0; v <= 13; v++) {
        bs_wbuf w;
        bs_wbuf_init(&w, 0);
        bool flex = v >= 9;
        if (v >= 3) bs_kafka_put_string(&w, flex, (const uint8_t *)"txn", v % 2 ? 3 : -1);
        bs_wbuf_put_be16(&w, (uint16_t)(v % 3 == 0 ? 0 : -1));
        bs_wbuf_put_be32(&w, 30000);
        CHECK_EQ(bs_kafka_produce_acks(w.data, w.len, v, &acks), BS_OK);
        CHECK_EQ(acks, v % 3 == 0 ? 0 : -1);
        for (size_t cut = 0; cut < (v >= 3 ? (v % 2 ? (flex ? 6u : 7u) : (flex ? 3u : 4u)) : 2u);
             cut++)
            CHECK_EQ(bs_kafka_produce_acks(w.data, cut, v, &acks), BS_E_MALFORMED);
        bs_wbuf_free(&w);
    }
    const uint8_t b[] = {0, 1};
    CHECK_EQ(bs_kafka_produce_acks(b, 2, 14, &acks), BS_E_UNSUPPORTED);
    CHECK_EQ(bs_kafka_produce_acks(b, 2, -1, &acks), BS_E_UNSUPPORTED);
}

/* Builds an ApiVersions response listing every API in the table with max 99,
 * plus the unknown key 999. */
static void build_api_versions(bs_wbuf *w, int16_t v, int16_t error)
{
    bool flex = v >= 3;
    size_t napis;
    const bs_kafka_api_info *t = bs_kafka_api_table(&napis);
    bs_wbuf_put_be16(w, (uint16_t)error);
    bs_kafka_put_array_len(w, flex, (int32_t)napis + 1);
    for (size_t i = 0; i < napis; i++) {
        bs_wbuf_put_be16(w, (uint16_t)t[i].key);
        bs_wbuf_put_be16(w, t[i].key == BS_KAFKA_FETCH ? 4 : 0); /* a min above 0 stays */
        bs_wbuf_put_be16(w, 99);
        if (flex) bs_wbuf_put_uvarint(w, 0);
    }
    /* an API key no schema knows */
    bs_wbuf_put_be16(w, 999);
    bs_wbuf_put_be16(w, 0);
    bs_wbuf_put_be16(w, 3);
    if (flex) bs_wbuf_put_uvarint(w, 0);
    if (v >= 1) bs_wbuf_put_be32(w, 0);
    if (flex) bs_wbuf_put_uvarint(w, 0);
}

static void test_api_versions_capping(void)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_API_VERSIONS, false);
    for (int16_t v = 0; v <= m->max_version; v++) {
        bs_wbuf w, out;
        bs_wbuf_init(&w, 0);
        bs_wbuf_init(&out, 0);
        build_api_versions(&w, v, 0);
        bool changed = false;
        CHECK_EQ(bs_kafka_rewrite_api_versions(w.data, w.len, v, &out, &changed), BS_OK);
        CHECK(changed);
        bs_kafka_arena a;
        bs_kafka_obj *root;
        bs_kafka_arena_init(&a, 0);
        CHECK_EQ(bs_kafka_decode(m, v, out.data, out.len, &a, &root), BS_OK);
        size_t napis, servable = 0;
        const bs_kafka_api_info *t = bs_kafka_api_table(&napis);
        for (size_t i = 0; i < napis; i++)
            servable += t[i].min_version <= t[i].max_version; /* not the APIs Kafka removed */
        bs_kafka_val *arr = &root->vals[1];
        /* dropped: the 4 removed APIs and the unknown key 999 */
        CHECK_EQ(arr->count, (int32_t)servable);
        CHECK(servable == napis - 4);
        for (int32_t k = 0; k < arr->count; k++) {
            bs_kafka_val *e = arr->items[k].vals;
            int16_t cap = bs_kafka_max_supported_version((int16_t)e[0].i);
            CHECK(cap >= 0);
            CHECK_EQ(e[1].i, e[0].i == BS_KAFKA_FETCH ? 4 : 0);
            CHECK_EQ(e[2].i, cap);
            CHECK(e[0].i != 999);
        }
        /* the frame-level call: header v0 (always, for ApiVersions) + capped body */
        bs_wbuf payload, frame;
        bs_wbuf_init(&payload, 0);
        bs_wbuf_init(&frame, 0);
        bs_wbuf_put_be32(&payload, 77);
        bs_wbuf_put(&payload, w.data, w.len);
        int32_t bad;
        CHECK_EQ(bs_kafka_rewrite_response_frame(BS_KAFKA_API_VERSIONS, v, payload.data,
                                                 payload.len, NULL, NULL, NULL, &frame, &changed,
                                                 &bad),
                 BS_OK);
        CHECK(changed);
        CHECK_EQ(frame.len, 8 + out.len);
        CHECK(frame.len == 8 + out.len && memcmp(frame.data + 8, out.data, out.len) == 0);
        CHECK(frame.len > 8 && frame.data[3] == (uint8_t)(4 + out.len) && frame.data[7] == 77);
        bs_wbuf_free(&payload);
        bs_wbuf_free(&frame);
        /* capping twice changes nothing more */
        bs_wbuf again;
        bs_wbuf_init(&again, 0);
        CHECK_EQ(bs_kafka_rewrite_api_versions(out.data, out.len, v, &again, &changed), BS_OK);
        CHECK(!changed);
        CHECK_EQ(again.len, 0);
        /* truncated: error */
        for (size_t cut = 0; cut < w.len; cut += 3) {
            bs_wbuf_reset(&again);
            CHECK(bs_kafka_rewrite_api_versions(w.data, cut, v, &again, &changed) != BS_OK);
        }
        bs_wbuf_free(&again);
        bs_kafka_arena_free(&a);
        bs_wbuf_free(&w);
        bs_wbuf_free(&out);
    }
    /* Kafka 4.4.0's schemas; Produce v13 (topic ids only) is capped by policy */
    CHECK_EQ(bs_kafka_max_supported_version(BS_KAFKA_PRODUCE), 12);
    CHECK_EQ(bs_kafka_max_supported_version(BS_KAFKA_FETCH), 18);
    CHECK_EQ(bs_kafka_max_supported_version(BS_KAFKA_METADATA), 13);
    CHECK_EQ(bs_kafka_max_supported_version(BS_KAFKA_DESCRIBE_CLUSTER), 2);
    CHECK_EQ(bs_kafka_max_supported_version(BS_KAFKA_SHARE_FETCH), 2);
    CHECK_EQ(bs_kafka_max_supported_version(BS_KAFKA_SHARE_ACKNOWLEDGE), 2);
    CHECK_EQ(bs_kafka_max_supported_version(BS_KAFKA_API_VERSIONS), 5);
    /* UNSUPPORTED_VERSION answer to a v4 request is v0-encoded */
    bs_wbuf w, out;
    bs_wbuf_init(&w, 0);
    bs_wbuf_init(&out, 0);
    build_api_versions(&w, 0, 35);
    bool changed;
    CHECK_EQ(bs_kafka_rewrite_api_versions(w.data, w.len, 4, &out, &changed), BS_OK);
    CHECK(changed);
    CHECK_EQ(out.len, w.len - 5 * 6); /* v0 entries are 6 bytes; 5 dropped */
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

/* A record batch v2 header with `count` records (body bytes are not inspected). */
static void put_batch_v2(bs_wbuf *w, int32_t count, size_t payload)
{
    bs_wbuf_put_be64(w, 0);
    bs_wbuf_put_be32(w, (uint32_t)(49 + payload));
    bs_wbuf_put_be32(w, 0); /* leader epoch */
    bs_wbuf_put_u8(w, 2);   /* magic */
    for (int i = 0; i < 57 - 17; i++)
        bs_wbuf_put_u8(w, 0);
    bs_wbuf_put_be32(w, (uint32_t)count);
    for (size_t i = 0; i < payload; i++)
        bs_wbuf_put_u8(w, 0x5a);
}

static void test_count_records(void)
{
    bs_wbuf w;
    uint64_t n;
    bs_wbuf_init(&w, 0);
    put_batch_v2(&w, 3, 10);
    put_batch_v2(&w, 5, 0);
    CHECK_EQ(bs_kafka_count_records(w.data, w.len, &n), BS_OK);
    CHECK_EQ(n, 8);
    for (size_t cut = 1; cut < w.len; cut++) {
        if (cut == 71) continue; /* exactly the first batch: valid */
        CHECK_EQ(bs_kafka_count_records(w.data, cut, &n), BS_E_MALFORMED);
    }
    CHECK_EQ(bs_kafka_count_records(w.data, 0, &n), BS_OK);
    CHECK_EQ(n, 0);
    /* v1 message set: two messages */
    bs_wbuf_reset(&w);
    for (int i = 0; i < 2; i++) {
        bs_wbuf_put_be64(&w, (uint64_t)i);
        bs_wbuf_put_be32(&w, 14 + 8);
        bs_wbuf_put_be32(&w, 0); /* crc */
        bs_wbuf_put_u8(&w, 1);   /* magic */
        bs_wbuf_put_u8(&w, 0);
        bs_wbuf_put_be64(&w, 0);          /* timestamp */
        bs_wbuf_put_be32(&w, 0xffffffff); /* key null */
        bs_wbuf_put_be32(&w, 0);          /* value empty */
    }
    CHECK_EQ(bs_kafka_count_records(w.data, w.len, &n), BS_OK);
    CHECK_EQ(n, 2);
    /* bad magic, negative length, negative count */
    w.data[16] = 7;
    CHECK_EQ(bs_kafka_count_records(w.data, w.len, &n), BS_E_MALFORMED);
    bs_wbuf_reset(&w);
    put_batch_v2(&w, -4, 0);
    CHECK_EQ(bs_kafka_count_records(w.data, w.len, &n), BS_E_MALFORMED);
    w.data[8] = 0x80;
    CHECK_EQ(bs_kafka_count_records(w.data, w.len, &n), BS_E_MALFORMED);
    bs_wbuf_free(&w);
}

typedef struct seen {
    int topics;
    char names[4][16];
    uint64_t bytes[4], records[4];
    uint32_t partitions[4];
    bool ids[4];
} seen;

static bs_status collect(void *arg, const bs_kafka_topic_summary *t)
{
    seen *s = arg;
    if (s->topics >= 4) return BS_E_FULL;
    int i = s->topics++;
    snprintf(s->names[i], sizeof s->names[i], "%.*s", t->name.len < 0 ? 0 : (int)t->name.len,
             t->name.p ? (const char *)t->name.p : "");
    s->bytes[i] = t->record_bytes;
    s->records[i] = t->records;
    s->partitions[i] = t->partitions;
    s->ids[i] = t->topic_id != NULL;
    return BS_OK;
}

static void test_produce_summary_every_version(void)
{
    bs_wbuf batch;
    bs_wbuf_init(&batch, 0);
    put_batch_v2(&batch, 4, 7);
    /* Kafka 4 starts Produce at v3; v13 names topics by id (capped away) */
    for (int16_t v = 3; v <= 12; v++) {
        bool flex = v >= 9;
        bs_wbuf w;
        bs_wbuf_init(&w, 0);
        if (v >= 3) bs_kafka_put_string(&w, flex, NULL, -1);
        bs_wbuf_put_be16(&w, 1);
        bs_wbuf_put_be32(&w, 1000);
        bs_kafka_put_array_len(&w, flex, 2);
        const char *names[] = {"orders", "payments"};
        for (int t = 0; t < 2; t++) {
            bs_kafka_put_string(&w, flex, (const uint8_t *)names[t], (int32_t)strlen(names[t]));
            bs_kafka_put_array_len(&w, flex, t + 1);
            for (int p = 0; p <= t; p++) {
                bs_wbuf_put_be32(&w, (uint32_t)p);
                bs_kafka_put_bytes(&w, flex, batch.data, (int32_t)batch.len);
                if (flex) bs_wbuf_put_uvarint(&w, 0);
            }
            if (flex) bs_wbuf_put_uvarint(&w, 0);
        }
        if (flex) bs_wbuf_put_uvarint(&w, 0);
        seen s = {0};
        CHECK_EQ(bs_kafka_produce_summary(w.data, w.len, v, collect, &s), BS_OK);
        CHECK_EQ(s.topics, 2);
        CHECK_STR(s.names[0], "orders");
        CHECK_STR(s.names[1], "payments");
        CHECK_EQ(s.bytes[0], batch.len);
        CHECK_EQ(s.bytes[1], 2 * batch.len);
        CHECK_EQ(s.records[0], 4);
        CHECK_EQ(s.records[1], 8);
        CHECK_EQ(s.partitions[1], 2);
        for (size_t cut = 0; cut < w.len; cut += 5) {
            seen s2 = {0};
            CHECK_EQ(bs_kafka_produce_summary(w.data, cut, v, collect, &s2), BS_E_MALFORMED);
        }
        int16_t acks;
        CHECK_EQ(bs_kafka_produce_acks(w.data, w.len, v, &acks), BS_OK);
        CHECK_EQ(acks, 1);
        bs_wbuf_free(&w);
    }
    bs_wbuf_free(&batch);
}

static void test_fetch_summary_and_request_topics(void)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_FETCH, false);
    for (int16_t v = m->min_version; v <= m->max_version; v++) {
        bool flex = v >= m->flex_min;
        bs_wbuf w;
        bs_wbuf_init(&w, 0);
        if (v >= 1) bs_wbuf_put_be32(&w, 0);
        if (v >= 7) {
            bs_wbuf_put_be16(&w, 0);
            bs_wbuf_put_be32(&w, 0);
        }
        bs_kafka_put_array_len(&w, flex, 1);
        if (v >= 13) {
            for (int i = 0; i < 16; i++)
                bs_wbuf_put_u8(&w, (uint8_t)i);
        } else {
            bs_kafka_put_string(&w, flex, (const uint8_t *)"logs", 4);
        }
        bs_kafka_put_array_len(&w, flex, 1);
        bs_wbuf_put_be32(&w, 0);  /* partition */
        bs_wbuf_put_be16(&w, 0);  /* error */
        bs_wbuf_put_be64(&w, 10); /* high watermark */
        if (v >= 4) bs_wbuf_put_be64(&w, 10);
        if (v >= 5) bs_wbuf_put_be64(&w, 0);
        if (v >= 4) bs_kafka_put_array_len(&w, flex, -1);
        if (v >= 11) bs_wbuf_put_be32(&w, (uint32_t)-1);
        bs_kafka_put_bytes(&w, flex, (const uint8_t *)"0123456789",
                           10); /* partial batch bytes are fine */
        if (flex) bs_wbuf_put_uvarint(&w, 0);
        if (flex) bs_wbuf_put_uvarint(&w, 0);
        if (flex) bs_wbuf_put_uvarint(&w, 0);
        seen s = {0};
        CHECK_EQ(bs_kafka_fetch_summary(w.data, w.len, v, collect, &s), BS_OK);
        CHECK_EQ(s.topics, 1);
        CHECK_EQ(s.bytes[0], 10);
        CHECK_EQ(s.ids[0], v >= 13);
        CHECK_STR(s.names[0], v >= 13 ? "" : "logs");
        bs_wbuf_free(&w);
    }
    /* Fetch request v4: one topic */
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_be32(&w, (uint32_t)-1);
    bs_wbuf_put_be32(&w, 500);
    bs_wbuf_put_be32(&w, 1);
    bs_wbuf_put_be32(&w, 1 << 20);
    bs_wbuf_put_u8(&w, 0);
    bs_kafka_put_array_len(&w, false, 1);
    bs_kafka_put_string(&w, false, (const uint8_t *)"audit-me", 8);
    bs_kafka_put_array_len(&w, false, 0);
    seen s = {0};
    CHECK_EQ(bs_kafka_fetch_request_topics(w.data, w.len, 4, collect, &s), BS_OK);
    CHECK_EQ(s.topics, 1);
    CHECK_STR(s.names[0], "audit-me");
    CHECK_EQ(bs_kafka_fetch_request_topics(w.data, w.len - 1, 4, collect, &s), BS_E_MALFORMED);
    bs_wbuf_free(&w);
}

static void test_api_versions_client(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_kafka_put_string(&w, true, (const uint8_t *)"librdkafka", 10);
    bs_kafka_put_string(&w, true, (const uint8_t *)"2.3.0", 5);
    bs_wbuf_put_uvarint(&w, 0);
    bs_kafka_slice name, ver;
    CHECK_EQ(bs_kafka_api_versions_client(w.data, w.len, 3, &name, &ver), BS_OK);
    CHECK(name.len == 10 && memcmp(name.p, "librdkafka", 10) == 0);
    CHECK(ver.len == 5 && memcmp(ver.p, "2.3.0", 5) == 0);
    CHECK_EQ(bs_kafka_api_versions_client(w.data, w.len - 1, 3, &name, &ver), BS_E_MALFORMED);
    CHECK_EQ(bs_kafka_api_versions_client(w.data, 0, 0, &name, &ver), BS_OK);
    CHECK_EQ(name.len, -1);
    CHECK_EQ(bs_kafka_api_versions_client(w.data, w.len, 9, &name, &ver), BS_E_UNSUPPORTED);
    bs_wbuf_free(&w);
}

/* The readiness probe's exchange: the exact ApiVersions v0 request bytes,
 * and every way a response can be refused. Error names come from kafka/. */
static void test_api_versions_probe(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_kafka_put_api_versions_probe(&w, 7, "bs"), BS_OK);
    static const uint8_t want[] = {0, 0, 0, 12, 0, 18, 0, 0, 0, 0, 0, 7, 0, 2, 'b', 's'};
    CHECK_EQ(w.len, sizeof want);
    if (w.len == sizeof want) CHECK_MEM(w.data, want, sizeof want);
    bs_wbuf_free(&w);
    char why[160];
    /* corr 7, error 0, one entry (api 0, 0..9) */
    uint8_t ok[] = {0, 0, 0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 9};
    CHECK_EQ(bs_kafka_check_api_versions_probe(ok, sizeof ok, 7, why, sizeof why), BS_OK);
    CHECK_EQ(bs_kafka_check_api_versions_probe(ok, sizeof ok, 8, why, sizeof why), BS_E_MALFORMED);
    CHECK(strstr(why, "correlation id 7, expected 8") != NULL);
    CHECK_EQ(bs_kafka_check_api_versions_probe(ok, 5, 7, why, sizeof why), BS_E_MALFORMED);
    CHECK(strstr(why, "too short") != NULL);
    CHECK_EQ(bs_kafka_check_api_versions_probe(ok, sizeof ok - 1, 7, why, sizeof why),
             BS_E_MALFORMED);
    CHECK(strstr(why, "malformed") != NULL);
    uint8_t err[] = {0, 0, 0, 7, 0, 35, 0, 0, 0, 0};
    CHECK_EQ(bs_kafka_check_api_versions_probe(err, sizeof err, 7, why, sizeof why),
             BS_E_MALFORMED);
    CHECK(strstr(why, "error code 35 (UNSUPPORTED_VERSION)") != NULL);
    CHECK_STR(bs_kafka_error_name(35), "UNSUPPORTED_VERSION");
    CHECK(bs_kafka_error_name(-2) == NULL);
}

int main(void)
{
    RUN(test_strings);
    RUN(test_hostile_lengths);
    RUN(test_tag_sections);
    RUN(test_api_table_matches_json);
    RUN(test_headers_every_api_version);
    RUN(test_response_headers);
    RUN(test_framer);
    RUN(test_correlation_table);
    RUN(test_produce_acks);
    RUN(test_api_versions_capping);
    RUN(test_count_records);
    RUN(test_produce_summary_every_version);
    RUN(test_fetch_summary_and_request_topics);
    RUN(test_api_versions_client);
    RUN(test_api_versions_probe);
    return test_report();
}
