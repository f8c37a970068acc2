/* Unit tests for src/kafka/record_batch.c: batches written by a real client library
 * (kafka-python vectors in tests/unit/data), hand-built batches, value rewriting checked
 * by that library, control batches, partial batches, legacy magic, hostile input. */
#include <stdint.h>
#include <unistd.h>

#include "brokerside/crc32c.h"
#include "brokerside/kafka_compression.h"
#include "brokerside/record_batch.h"
#include "test.h"

#define LIMIT (1u << 20)

static const char *codec_files[] = {"batch_none.bin", "batch_gzip.bin", "batch_snappy.bin",
                                    "batch_lz4.bin", "batch_zstd.bin"};
/* The same records written by librdkafka (raw snappy, its own LZ4 frame settings). */
static const char *rdk_files[] = {"rdk_batch_none.bin", "rdk_batch_gzip.bin",
                                  "rdk_batch_snappy.bin", "rdk_batch_lz4.bin",
                                  "rdk_batch_zstd.bin"};

/* Path of tests/unit/data/`name` in `buf`. */
static const char *data_path(const char *name, char *buf, size_t n)
{
    const char *src = getenv("BS_SOURCE_DIR");
    snprintf(buf, n, "%s/tests/unit/data/%s", src ? src : ".", name);
    return buf;
}

/* Append tests/unit/data/`name` to `w`; false if it cannot be read. */
static bool read_data(const char *name, bs_wbuf *w)
{
    char path[1024];
    FILE *f = fopen(data_path(name, path, sizeof path), "rb");
    if (!f) {
        fprintf(stderr, "  cannot open %s\n", path);
        return false;
    }
    uint8_t buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        bs_wbuf_put(w, buf, n);
    fclose(f);
    return bs_wbuf_status(w) == BS_OK;
}

/* Recompute the CRC after a test edits a batch by hand. */
static void fix_crc(uint8_t *p, size_t len)
{
    uint32_t c = bs_crc32c(0, p + BS_BATCH_ATTR_OFFSET, len - BS_BATCH_ATTR_OFFSET);
    p[17] = (uint8_t)(c >> 24);
    p[18] = (uint8_t)(c >> 16);
    p[19] = (uint8_t)(c >> 8);
    p[20] = (uint8_t)c;
}

/* The vectors hold 50 records; see build_batch() in kafka_vectors.py. */
static void check_vector_records(const bs_record_batch *b)
{
    bs_records r;
    CHECK_EQ(bs_records_open(b, LIMIT, &r), BS_OK);
    for (int i = 0;; i++) {
        bs_record rec;
        bool done;
        CHECK_EQ(bs_records_next(&r, &rec, &done), BS_OK);
        if (done) {
            CHECK_EQ(i, 50);
            break;
        }
        if (i >= 50) break;
        char want[512];
        CHECK_EQ(rec.offset_delta, i);
        CHECK_EQ(rec.timestamp_delta, i * 3);
        if (i % 10 == 3) {
            CHECK(rec.key == NULL && rec.key_len == -1);
        } else {
            int n = snprintf(want, sizeof want, "key-%d", i);
            CHECK(rec.key_len == n && memcmp(rec.key, want, (size_t)n) == 0);
        }
        if (i % 10 == 7) {
            CHECK(rec.value == NULL && rec.value_len == -1);
        } else {
            int n = 0;
            for (int k = 0; k < 20; k++)
                n += snprintf(want + n, sizeof want - (size_t)n, "value %d ", i);
            CHECK(rec.value_len == n && memcmp(rec.value, want, (size_t)n) == 0);
        }
        CHECK_EQ(rec.header_count, i % 5 == 0 ? 2 : 0);
        if (i % 5 == 0) {
            bs_cursor hc;
            bs_cursor_init(&hc, rec.headers, rec.headers_len);
            const uint8_t *k, *v;
            int32_t kl, vl;
            CHECK_EQ(bs_header_next(&hc, &k, &kl, &v, &vl), BS_OK);
            int n = snprintf(want, sizeof want, "v%d", i);
            CHECK(kl == 2 && memcmp(k, "h1", 2) == 0 && vl == n && memcmp(v, want, (size_t)n) == 0);
            CHECK_EQ(bs_header_next(&hc, &k, &kl, &v, &vl), BS_OK);
            CHECK(kl == 2 && memcmp(k, "h2", 2) == 0 && vl == -1 && v == NULL);
            CHECK_EQ(bs_cursor_remaining(&hc), 0);
        }
    }
    bs_records_free(&r);
}

/* kafka-python batches of every codec parse with the expected header fields and records. */
static void test_parse_client_batches(void)
{
    for (size_t j = 0; j < 2 * BS_ARRAY_LEN(codec_files); j++) {
        size_t i = j % BS_ARRAY_LEN(codec_files);
        bool rdk = j >= BS_ARRAY_LEN(codec_files);
        bs_wbuf in;
        bs_wbuf_init(&in, 0);
        CHECK(read_data(rdk ? rdk_files[i] : codec_files[i], &in));
        bs_record_batch b;
        CHECK_EQ(bs_record_batch_parse(in.data, in.len, &b), BS_OK);
        CHECK_EQ(bs_record_batch_codec(&b), (int)i);
        CHECK_EQ(b.magic, 2);
        CHECK_EQ(b.record_count, 50);
        CHECK_EQ(b.last_offset_delta, 49);
        if (rdk) {
            /* Idempotent producer: an id from the (mock) broker, first sequence 0. */
            CHECK(b.producer_id >= 0);
            CHECK_EQ(b.base_sequence, 0);
        } else {
            CHECK_EQ(b.producer_id, 4242);
            CHECK_EQ(b.producer_epoch, 7);
            CHECK_EQ(b.base_sequence, 100);
        }
        CHECK_EQ(b.base_timestamp, 1700000000000LL);
        CHECK_EQ(b.max_timestamp, 1700000000000LL + 49 * 3);
        CHECK(!bs_record_batch_is_control(&b) && !bs_record_batch_is_transactional(&b));
        CHECK_EQ(b.raw_len, in.len);
        check_vector_records(&b);
        bs_wbuf_free(&in);
    }
    bs_wbuf in;
    bs_wbuf_init(&in, 0);
    CHECK(read_data("batch_txn_zstd.bin", &in));
    bs_record_batch b;
    CHECK_EQ(bs_record_batch_parse(in.data, in.len, &b), BS_OK);
    CHECK(bs_record_batch_is_transactional(&b));
    bs_wbuf_free(&in);
}

typedef struct {
    int calls;
    int fail_at; /* call number that returns an error; -1 = never */
} prefix_ctx;

/* Replace every non-null value by "ENC:" + value; tombstones are left alone. */
static bs_status prefix_value(void *arg, const bs_record_batch *b, const bs_record *rec,
                              bs_wbuf *nv, bool *replace)
{
    (void)b;
    prefix_ctx *ctx = arg;
    if (ctx->calls++ == ctx->fail_at) return BS_E_CRYPTO;
    if (!rec->value) return BS_OK;
    bs_wbuf_put(nv, "ENC:", 4);
    bs_wbuf_put(nv, rec->value, (size_t)rec->value_len);
    *replace = true;
    return BS_OK;
}

/* Keep every value; count calls. */
static bs_status keep_value(void *arg, const bs_record_batch *b, const bs_record *rec, bs_wbuf *nv,
                            bool *replace)
{
    (void)b, (void)rec, (void)nv, (void)replace;
    ((prefix_ctx *)arg)->calls++;
    return BS_OK;
}

/* Write `w` to a temp file, return its path in `path` (caller unlinks). */
static bool write_tmp(const bs_wbuf *w, char *path)
{
    strcpy(path, "/tmp/bs_batch_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return false;
    bool ok = write(fd, w->data, w->len) == (ssize_t)w->len;
    close(fd);
    return ok;
}

/* Rewritten batches of every codec are accepted by kafka-python with the same records,
 * keys, headers, offsets, timestamps and producer fields, and new values. */
static void test_transform_checked_by_client(void)
{
    for (size_t j = 0; j < 2 * BS_ARRAY_LEN(codec_files); j++) {
        size_t i = j % BS_ARRAY_LEN(codec_files);
        const char *file = j >= BS_ARRAY_LEN(codec_files) ? rdk_files[i] : codec_files[i];
        bs_wbuf in, out;
        bs_wbuf_init(&in, 0);
        bs_wbuf_init(&out, 0);
        CHECK(read_data(file, &in));
        bs_record_batch b, nb;
        CHECK_EQ(bs_record_batch_parse(in.data, in.len, &b), BS_OK);
        prefix_ctx ctx = {0, -1};
        CHECK_EQ(bs_record_batch_transform(&b, LIMIT, prefix_value, &ctx, &out), BS_OK);
        CHECK_EQ(ctx.calls, 50);
        CHECK_EQ(bs_record_batch_parse(out.data, out.len, &nb), BS_OK);
        CHECK_EQ(bs_record_batch_codec(&nb), (int)i);
        CHECK_EQ(nb.record_count, 50);
        char tmp[64], orig[1024], cmd[4096];
        CHECK(write_tmp(&out, tmp));
        const char *src = getenv("BS_SOURCE_DIR");
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 %s/tests/unit/data/kafka_vectors.py batch-compare %s %s ENC:",
                 src ? src : ".", data_path(file, orig, sizeof orig), tmp);
        int rc = system(cmd);
        if (rc) fprintf(stderr, "  kafka-python rejected our rewrite of %s\n", file);
        CHECK_EQ(rc, 0);
        unlink(tmp);
        bs_wbuf_free(&in);
        bs_wbuf_free(&out);
    }
}

/* Keeping every value re-encodes an uncompressed batch byte for byte. */
static void test_identity_transform(void)
{
    bs_wbuf in, out;
    bs_wbuf_init(&in, 0);
    bs_wbuf_init(&out, 0);
    CHECK(read_data("batch_none.bin", &in));
    bs_record_batch b;
    CHECK_EQ(bs_record_batch_parse(in.data, in.len, &b), BS_OK);
    prefix_ctx ctx = {0, -1};
    CHECK_EQ(bs_record_batch_transform(&b, LIMIT, keep_value, &ctx, &out), BS_OK);
    CHECK_EQ(out.len, in.len);
    CHECK(out.len == in.len && memcmp(out.data, in.data, in.len) == 0);
    bs_wbuf_free(&in);
    bs_wbuf_free(&out);
}

/* A transaction marker built by hand (control record key: version 0, type 1 = commit). */
static void build_control(bs_wbuf *out, int codec)
{
    const uint8_t key[] = {0, 0, 0, 1}, value[] = {0, 0, 0, 0, 0, 5};
    bs_record_spec rs = {.timestamp_delta = 0,
                         .offset_delta = 0,
                         .key = key,
                         .key_len = 4,
                         .value = value,
                         .value_len = 6};
    bs_record_batch hdr = {
        .base_offset = 10,
        .partition_leader_epoch = 3,
        .attributes = (int16_t)(BS_BATCH_ATTR_CONTROL | BS_BATCH_ATTR_TRANSACTIONAL | codec),
        .base_timestamp = 5,
        .max_timestamp = 5,
        .producer_id = 9,
        .producer_epoch = 1,
        .base_sequence = -1};
    CHECK_EQ(bs_record_batch_build(&hdr, &rs, 1, out), BS_OK);
}

/* A control batch is copied byte for byte and its records never reach the callback. */
static void test_control_batch_untouched(void)
{
    bs_wbuf in, out;
    bs_wbuf_init(&in, 0);
    bs_wbuf_init(&out, 0);
    build_control(&in, BS_CODEC_NONE);
    bs_record_batch b;
    CHECK_EQ(bs_record_batch_parse(in.data, in.len, &b), BS_OK);
    CHECK(bs_record_batch_is_control(&b));
    prefix_ctx ctx = {0, -1};
    CHECK_EQ(bs_record_batch_transform(&b, LIMIT, prefix_value, &ctx, &out), BS_OK);
    CHECK_EQ(ctx.calls, 0);
    CHECK(out.len == in.len && memcmp(out.data, in.data, in.len) == 0);
    bs_wbuf_free(&in);
    bs_wbuf_free(&out);
}

/* Hand-built batches of each codec round-trip through build, parse and transform. */
static void test_build_round_trip(void)
{
    const uint8_t hdrs[] = {2, 'k', 4, 'v', 'v'}; /* one header: "k" = "vv" */
    for (int codec = 0; codec <= 4; codec++) {
        bs_record_spec rs[3] = {
            {.timestamp_delta = 0,
             .offset_delta = 0,
             .key = (const uint8_t *)"a",
             .key_len = 1,
             .value = (const uint8_t *)"hello",
             .value_len = 5,
             .headers = hdrs,
             .headers_len = sizeof hdrs,
             .header_count = 1},
            {.timestamp_delta = -5,
             .offset_delta = 1,
             .key = NULL,
             .key_len = -1,
             .value = NULL,
             .value_len = -1},
            {.timestamp_delta = 1000,
             .offset_delta = 2,
             .key = (const uint8_t *)"",
             .key_len = 0,
             .value = (const uint8_t *)"",
             .value_len = 0},
        };
        bs_record_batch hdr = {.base_offset = 77,
                               .partition_leader_epoch = -1,
                               .attributes = (int16_t)codec,
                               .last_offset_delta = 2,
                               .base_timestamp = 100,
                               .max_timestamp = 1100,
                               .producer_id = -1,
                               .producer_epoch = -1,
                               .base_sequence = -1};
        bs_wbuf w, t;
        bs_wbuf_init(&w, 0);
        bs_wbuf_init(&t, 0);
        CHECK_EQ(bs_record_batch_build(&hdr, rs, 3, &w), BS_OK);
        bs_record_batch b;
        CHECK_EQ(bs_record_batch_parse(w.data, w.len, &b), BS_OK);
        prefix_ctx ctx = {0, -1};
        CHECK_EQ(bs_record_batch_transform(&b, LIMIT, prefix_value, &ctx, &t), BS_OK);
        CHECK_EQ(bs_record_batch_parse(t.data, t.len, &b), BS_OK);
        CHECK_EQ(b.base_offset, 77);
        CHECK_EQ(b.partition_leader_epoch, -1);
        CHECK_EQ(b.record_count, 3);
        CHECK_EQ(bs_record_batch_codec(&b), codec);
        bs_records r;
        bs_record rec;
        bool done;
        CHECK_EQ(bs_records_open(&b, LIMIT, &r), BS_OK);
        CHECK_EQ(bs_records_next(&r, &rec, &done), BS_OK);
        CHECK(rec.value_len == 9 && memcmp(rec.value, "ENC:hello", 9) == 0);
        CHECK(rec.key_len == 1 && rec.header_count == 1 && rec.headers_len == sizeof hdrs);
        CHECK_EQ(bs_records_next(&r, &rec, &done), BS_OK);
        CHECK(rec.value == NULL && rec.value_len == -1 && rec.key_len == -1); /* tombstone */
        CHECK_EQ(rec.timestamp_delta, -5);
        CHECK_EQ(bs_records_next(&r, &rec, &done), BS_OK);
        CHECK(rec.value_len == 4 && rec.key_len == 0 && rec.timestamp_delta == 1000);
        CHECK_EQ(bs_records_next(&r, &rec, &done), BS_OK);
        CHECK(done);
        bs_records_free(&r);
        bs_wbuf_free(&w);
        bs_wbuf_free(&t);
    }
}

/* Several batches in one blob, the last one cut short as in a Fetch at max bytes. */
static void test_blob_with_partial_tail(void)
{
    bs_wbuf blob, zstd, out;
    bs_wbuf_init(&blob, 0);
    bs_wbuf_init(&zstd, 0);
    bs_wbuf_init(&out, 0);
    CHECK(read_data("batch_gzip.bin", &blob));
    size_t first = blob.len;
    build_control(&blob, BS_CODEC_NONE);
    size_t second = blob.len;
    CHECK(read_data("batch_zstd.bin", &zstd));
    for (size_t cut = 0; cut < zstd.len; cut += (cut < 70 ? 1 : 97)) {
        blob.len = second;
        bs_wbuf_put(&blob, zstd.data, cut);
        bs_batch_iter it;
        bs_batch_iter_init(&it, blob.data, blob.len);
        bs_batch_kind k;
        bs_record_batch b;
        CHECK_EQ(bs_batch_iter_next(&it, &k, &b), BS_OK);
        CHECK(k == BS_BATCH_FULL && b.raw_len == first);
        CHECK_EQ(bs_batch_iter_next(&it, &k, &b), BS_OK);
        CHECK(k == BS_BATCH_FULL && bs_record_batch_is_control(&b));
        CHECK_EQ(bs_batch_iter_next(&it, &k, &b), BS_OK);
        if (cut == 0) {
            CHECK_EQ(k, BS_BATCH_END);
        } else {
            CHECK(k == BS_BATCH_PARTIAL && b.raw_len == cut && b.raw == blob.data + second);
            CHECK_EQ(bs_batch_iter_next(&it, &k, &b), BS_OK);
            CHECK_EQ(k, BS_BATCH_END);
        }
        prefix_ctx ctx = {0, -1};
        bs_wbuf_reset(&out);
        CHECK_EQ(bs_records_blob_transform(blob.data, blob.len, LIMIT, prefix_value, &ctx, &out, NULL),
                 BS_OK);
        CHECK_EQ(ctx.calls, 50);
        /* The control batch and the partial tail come out unchanged, at the end. */
        size_t tail = blob.len - first;
        CHECK(out.len > tail && memcmp(out.data + out.len - tail, blob.data + first, tail) == 0);
    }
    bs_wbuf_free(&blob);
    bs_wbuf_free(&zstd);
    bs_wbuf_free(&out);
}

/* Every prefix of a batch: never parsed as complete; the iterator calls it partial. */
static void test_truncated_everywhere(void)
{
    for (size_t f = 0; f < BS_ARRAY_LEN(codec_files); f++) {
        bs_wbuf in;
        bs_wbuf_init(&in, 0);
        CHECK(read_data(codec_files[f], &in));
        int bad = 0;
        for (size_t cut = 0; cut < in.len; cut++) {
            bs_record_batch b;
            if (bs_record_batch_parse(in.data, cut, &b) != BS_E_SHORT) bad++;
            bs_batch_iter it;
            bs_batch_iter_init(&it, in.data, cut);
            bs_batch_kind k;
            if (bs_batch_iter_next(&it, &k, &b) != BS_OK) bad++;
            if (k != (cut ? BS_BATCH_PARTIAL : BS_BATCH_END)) bad++;
        }
        CHECK_EQ(bad, 0);
        bs_wbuf_free(&in);
    }
}

/* Flipping any bit after the CRC field is caught; bytes before it change the header. */
static void test_crc_detects_corruption(void)
{
    bs_wbuf in;
    bs_wbuf_init(&in, 0);
    CHECK(read_data("batch_lz4.bin", &in));
    int missed = 0;
    for (size_t i = BS_BATCH_CRC_OFFSET; i < in.len; i++) {
        in.data[i] ^= 0x04;
        bs_record_batch b;
        if (bs_record_batch_parse(in.data, in.len, &b) != BS_E_MALFORMED) missed++;
        in.data[i] ^= 0x04;
    }
    CHECK_EQ(missed, 0);
    bs_wbuf_free(&in);
}

/* Magic 0/1 message sets are reported unsupported everywhere; other magics are malformed. */
static void test_legacy_magic_unsupported(void)
{
    /* A v1 message: offset, size, crc, magic 1, attributes, timestamp, key -1, value "x". */
    uint8_t m[8 + 4 + 4 + 1 + 1 + 8 + 4 + 5] = {0};
    m[11] = sizeof m - 12;
    m[16] = 1;
    memset(m + 26, 0xff, 4);
    m[33] = 1;
    m[34] = 'x';
    bs_record_batch b;
    CHECK_EQ(bs_record_batch_parse(m, sizeof m, &b), BS_E_UNSUPPORTED);
    bs_batch_iter it;
    bs_batch_iter_init(&it, m, sizeof m);
    bs_batch_kind k;
    CHECK_EQ(bs_batch_iter_next(&it, &k, &b), BS_E_UNSUPPORTED);
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    prefix_ctx ctx = {0, -1};
    CHECK_EQ(bs_records_blob_transform(m, sizeof m, LIMIT, prefix_value, &ctx, &out, NULL),
             BS_E_UNSUPPORTED);
    m[16] = 0;
    CHECK_EQ(bs_records_blob_transform(m, sizeof m, LIMIT, prefix_value, &ctx, &out, NULL),
             BS_E_UNSUPPORTED);
    m[16] = 3;
    CHECK_EQ(bs_record_batch_parse(m, sizeof m, &b), BS_E_MALFORMED);
    CHECK_EQ(out.len, 0);
    bs_wbuf_free(&out);
}

/* Hand-edited batches with hostile counts and lengths, CRC made valid again. */
static void test_hostile_fields(void)
{
    bs_record_spec rs[2] = {
        {.offset_delta = 0,
         .key = (const uint8_t *)"k",
         .key_len = 1,
         .value = (const uint8_t *)"value",
         .value_len = 5},
        {.offset_delta = 1,
         .key = NULL,
         .key_len = -1,
         .value = (const uint8_t *)"v2",
         .value_len = 2},
    };
    bs_record_batch hdr = {.last_offset_delta = 1, .producer_id = -1, .base_sequence = -1};
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_record_batch_build(&hdr, rs, 2, &w), BS_OK);
    bs_record_batch b;
    bs_records r;
    bs_record rec;
    bool done;
    prefix_ctx ctx = {0, -1};
    bs_wbuf out;
    bs_wbuf_init(&out, 0);

    /* recordCount: huge, negative, one too many, one too few. */
    const int32_t counts[] = {0x7fffffff, -1, 3, 1};
    const bs_status want[] = {BS_E_MALFORMED, BS_E_MALFORMED, BS_E_MALFORMED, BS_E_MALFORMED};
    for (size_t i = 0; i < BS_ARRAY_LEN(counts); i++) {
        uint8_t *p = w.data;
        uint32_t c = (uint32_t)counts[i];
        p[57] = (uint8_t)(c >> 24), p[58] = (uint8_t)(c >> 16), p[59] = (uint8_t)(c >> 8),
        p[60] = (uint8_t)c;
        fix_crc(w.data, w.len);
        bs_status st = bs_record_batch_parse(w.data, w.len, &b);
        if (st == BS_OK) {
            st = bs_record_batch_transform(&b, LIMIT, prefix_value, &ctx, &out);
        }
        CHECK_EQ(st, want[i]);
        CHECK_EQ(out.len, 0);
    }
    uint8_t *p = w.data;
    p[57] = p[58] = p[59] = 0, p[60] = 2;
    /* The first record's key length claims more than the record holds. */
    p[BS_BATCH_HEADER_LEN + 4] = 0x7e; /* zig-zag 63 */
    fix_crc(w.data, w.len);
    CHECK_EQ(bs_record_batch_parse(w.data, w.len, &b), BS_OK);
    CHECK_EQ(bs_records_open(&b, LIMIT, &r), BS_OK);
    CHECK_EQ(bs_records_next(&r, &rec, &done), BS_E_MALFORMED);
    bs_records_free(&r);
    /* Key length below -1. */
    p[BS_BATCH_HEADER_LEN + 4] = 0x03; /* zig-zag -2 */
    fix_crc(w.data, w.len);
    CHECK_EQ(bs_record_batch_parse(w.data, w.len, &b), BS_OK);
    CHECK_EQ(bs_record_batch_transform(&b, LIMIT, prefix_value, &ctx, &out), BS_E_MALFORMED);
    /* A record length larger than what is left. */
    p[BS_BATCH_HEADER_LEN + 4] = 0x02;
    p[BS_BATCH_HEADER_LEN] = 0x7e;
    fix_crc(w.data, w.len);
    CHECK_EQ(bs_record_batch_parse(w.data, w.len, &b), BS_OK);
    CHECK_EQ(bs_record_batch_transform(&b, LIMIT, prefix_value, &ctx, &out), BS_E_MALFORMED);
    CHECK_EQ(out.len, 0);
    /* batchLength below the header size, and negative. */
    p[11] = 10;
    CHECK_EQ(bs_record_batch_parse(w.data, w.len, &b), BS_E_MALFORMED);
    p[8] = 0x80;
    bs_batch_iter it;
    bs_batch_iter_init(&it, w.data, w.len);
    bs_batch_kind k;
    CHECK_EQ(bs_batch_iter_next(&it, &k, &b), BS_E_MALFORMED);
    bs_wbuf_free(&w);
    bs_wbuf_free(&out);
}

/* The decompression limit of a blob covers all its batches together: four
 * zstd batches of 600 KiB each (a few hundred bytes compressed) pass one by
 * one under 1 MiB, but not as one blob; what was unpacked is reported. */
static void test_blob_budget_shared(void)
{
    static uint8_t zeros[600 << 10];
    bs_record_spec rs = {.offset_delta = 0, .key = NULL, .key_len = -1, .value = zeros,
                         .value_len = (int32_t)sizeof zeros};
    bs_record_batch hdr = {.attributes = 4 /* zstd */, .producer_id = -1, .producer_epoch = -1,
                           .base_sequence = -1};
    bs_wbuf one, blob, out;
    bs_wbuf_init(&one, 0);
    bs_wbuf_init(&blob, 0);
    bs_wbuf_init(&out, 0);
    CHECK_EQ(bs_record_batch_build(&hdr, &rs, 1, &one), BS_OK);
    CHECK(one.len < 4096);
    for (int i = 0; i < 4; i++)
        bs_wbuf_put(&blob, one.data, one.len);
    bs_record_batch b;
    CHECK_EQ(bs_record_batch_parse(one.data, one.len, &b), BS_OK);
    prefix_ctx ctx = {0, -1};
    CHECK_EQ(bs_record_batch_transform(&b, 1 << 20, prefix_value, &ctx, &out), BS_OK);
    bs_wbuf_reset(&out);
    size_t used = 0;
    CHECK_EQ(bs_records_blob_transform(blob.data, blob.len, 1 << 20, prefix_value, &ctx, &out,
                                       &used),
             BS_E_TOO_LARGE);
    CHECK_EQ(out.len, 0);
    CHECK(used <= (1u << 20));
    CHECK(used >= sizeof zeros);
    used = 0;
    CHECK_EQ(bs_records_blob_transform(blob.data, blob.len, 4 << 20, prefix_value, &ctx, &out,
                                       &used),
             BS_OK);
    CHECK(used > 4 * sizeof zeros);
    bs_wbuf_free(&one);
    bs_wbuf_free(&blob);
    bs_wbuf_free(&out);
}

/* Callback errors and decompression limits abort the rebuild and leave `out` as it was. */
static void test_errors_roll_back(void)
{
    bs_wbuf in, out;
    bs_wbuf_init(&in, 0);
    bs_wbuf_init(&out, 0);
    bs_wbuf_put(&out, "keep", 4);
    CHECK(read_data("batch_snappy.bin", &in));
    bs_record_batch b;
    CHECK_EQ(bs_record_batch_parse(in.data, in.len, &b), BS_OK);
    prefix_ctx ctx = {0, 10};
    CHECK_EQ(bs_record_batch_transform(&b, LIMIT, prefix_value, &ctx, &out), BS_E_CRYPTO);
    CHECK_EQ(ctx.calls, 11);
    CHECK_EQ(out.len, 4);
    ctx.calls = 0;
    ctx.fail_at = -1;
    CHECK_EQ(bs_record_batch_transform(&b, 1000, prefix_value, &ctx, &out), BS_E_TOO_LARGE);
    CHECK_EQ(out.len, 4);
    CHECK_EQ(bs_records_blob_transform(in.data, in.len, 1000, prefix_value, &ctx, &out, NULL),
             BS_E_TOO_LARGE);
    CHECK_EQ(out.len, 4);
    CHECK_EQ(ctx.calls, 0);
    bs_wbuf_free(&in);
    bs_wbuf_free(&out);
}

/* Run every test; non-zero exit on failure. */
int main(void)
{
    RUN(test_parse_client_batches);
    RUN(test_transform_checked_by_client);
    RUN(test_identity_transform);
    RUN(test_control_batch_untouched);
    RUN(test_build_round_trip);
    RUN(test_blob_with_partial_tail);
    RUN(test_truncated_everywhere);
    RUN(test_crc_detects_corruption);
    RUN(test_legacy_magic_unsupported);
    RUN(test_hostile_fields);
    RUN(test_errors_roll_back);
    RUN(test_blob_budget_shared);
    return test_report();
}
