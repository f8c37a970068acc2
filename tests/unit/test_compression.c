/* Unit tests for src/kafka/compression.c: round trips, bytes from a real Kafka client
 * library (kafka-python, tests/unit/data/kafka_vectors.py), output decoded by that library,
 * bounded output, corrupt and truncated input. */
#include <stdint.h>
#include <unistd.h>

#include <zstd.h>

#include "brokerside/kafka_compression.h"
#include "test.h"

static const int codecs[] = {BS_CODEC_GZIP, BS_CODEC_SNAPPY, BS_CODEC_LZ4, BS_CODEC_ZSTD};

/* Mirrors plain_text() in kafka_vectors.py. */
static void plain_text(bs_wbuf *w)
{
    for (int i = 0; i < 2000; i++)
        bs_wbuf_printf(w, "record %06d brokerside compression vector\n", i);
}

/* Read a file from tests/unit/data into `w`; false if it cannot be read. */
static bool read_data(const char *name, bs_wbuf *w)
{
    char path[1024];
    const char *src = getenv("BS_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/unit/data/%s", src ? src : ".", name);
    FILE *f = fopen(path, "rb");
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

/* Pseudo-random, incompressible bytes. */
static void noise(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
}

/* Every codec round-trips empty, tiny, compressible and random inputs, appending after existing
 * bytes. */
static void test_round_trip(void)
{
    static uint8_t rnd[200000];
    noise(rnd, sizeof rnd, 7);
    bs_wbuf text;
    bs_wbuf_init(&text, 0);
    plain_text(&text);
    const struct {
        const uint8_t *p;
        size_t n;
    } inputs[] = {{(const uint8_t *)"", 0},
                  {(const uint8_t *)"x", 1},
                  {text.data, text.len},
                  {rnd, sizeof rnd}};
    for (size_t c = 0; c < BS_ARRAY_LEN(codecs); c++) {
        for (size_t i = 0; i < BS_ARRAY_LEN(inputs); i++) {
            bs_wbuf z, back;
            bs_wbuf_init(&z, 0);
            bs_wbuf_init(&back, 0);
            bs_wbuf_put(&back, "pre", 3); /* output is appended after existing bytes */
            CHECK_EQ(bs_compress(codecs[c], inputs[i].p, inputs[i].n, &z), BS_OK);
            CHECK_EQ(bs_decompress(codecs[c], z.data, z.len, inputs[i].n, &back), BS_OK);
            CHECK_EQ(back.len, inputs[i].n + 3);
            CHECK(back.len == inputs[i].n + 3 && memcmp(back.data, "pre", 3) == 0 &&
                  (inputs[i].n == 0 || memcmp(back.data + 3, inputs[i].p, inputs[i].n) == 0));
            if (i == 2) CHECK(z.len < text.len / 4); /* it really compressed */
            bs_wbuf_free(&z);
            bs_wbuf_free(&back);
        }
    }
    bs_wbuf_free(&text);
}

/* Codec 0 copies with the limit applied; unknown codec values are unsupported. */
static void test_none_and_unknown(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    CHECK_EQ(bs_compress(BS_CODEC_NONE, (const uint8_t *)"abc", 3, &w), BS_OK);
    CHECK_EQ(bs_decompress(BS_CODEC_NONE, (const uint8_t *)"abc", 3, 3, &w), BS_OK);
    CHECK_EQ(w.len, 6);
    CHECK_EQ(bs_decompress(BS_CODEC_NONE, (const uint8_t *)"abc", 3, 2, &w), BS_E_TOO_LARGE);
    CHECK_EQ(bs_compress(5, (const uint8_t *)"abc", 3, &w), BS_E_UNSUPPORTED);
    CHECK_EQ(bs_decompress(7, (const uint8_t *)"abc", 3, 100, &w), BS_E_UNSUPPORTED);
    CHECK_EQ(w.len, 6);
    CHECK_STR(bs_codec_name(BS_CODEC_LZ4), "lz4");
    CHECK_STR(bs_codec_name(9), "unknown");
    bs_wbuf_free(&w);
}

/* Bytes written by kafka-python's codec functions decode to the expected text. */
static void test_decode_client_vectors(void)
{
    const char *files[] = {"codec_gzip.bin", "codec_snappy.bin", "codec_lz4.bin", "codec_zstd.bin",
                           "codec_snappy_raw.bin"};
    const int ids[] = {BS_CODEC_GZIP, BS_CODEC_SNAPPY, BS_CODEC_LZ4, BS_CODEC_ZSTD,
                       BS_CODEC_SNAPPY};
    bs_wbuf text;
    bs_wbuf_init(&text, 0);
    plain_text(&text);
    for (size_t i = 0; i < BS_ARRAY_LEN(files); i++) {
        bs_wbuf in, out;
        bs_wbuf_init(&in, 0);
        bs_wbuf_init(&out, 0);
        CHECK(read_data(files[i], &in));
        CHECK_EQ(bs_decompress(ids[i], in.data, in.len, 1 << 20, &out), BS_OK);
        CHECK_EQ(out.len, text.len);
        CHECK(out.len == text.len && memcmp(out.data, text.data, text.len) == 0);
        /* One byte less room than needed: refused, nothing kept. */
        bs_wbuf_reset(&out);
        CHECK_EQ(bs_decompress(ids[i], in.data, in.len, text.len - 1, &out), BS_E_TOO_LARGE);
        CHECK_EQ(out.len, 0);
        bs_wbuf_free(&in);
        bs_wbuf_free(&out);
    }
    bs_wbuf_free(&text);
}

/* Our output decodes with the client library's decoders (kafka.codec). */
static void test_client_decodes_ours(void)
{
    const char *names[] = {"gzip", "snappy", "lz4", "zstd"};
    const char *src = getenv("BS_SOURCE_DIR");
    bs_wbuf text;
    bs_wbuf_init(&text, 0);
    plain_text(&text);
    for (size_t c = 0; c < BS_ARRAY_LEN(codecs); c++) {
        bs_wbuf z;
        bs_wbuf_init(&z, 0);
        CHECK_EQ(bs_compress(codecs[c], text.data, text.len, &z), BS_OK);
        char path[] = "/tmp/bs_codec_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        if (fd < 0) continue;
        CHECK_EQ(write(fd, z.data, z.len), (long long)z.len);
        close(fd);
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 %s/tests/unit/data/kafka_vectors.py decode %s %s",
                 src ? src : ".", names[c], path);
        int rc = system(cmd);
        if (rc != 0) fprintf(stderr, "  kafka.codec could not decode our %s\n", names[c]);
        CHECK_EQ(rc, 0);
        unlink(path);
        bs_wbuf_free(&z);
    }
    bs_wbuf_free(&text);
}

/* A small input that expands enormously is stopped at the limit, not decoded in full. */
static void test_zip_bomb(void)
{
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    CHECK(zeros != NULL);
    if (!zeros) return;
    for (size_t c = 0; c < BS_ARRAY_LEN(codecs); c++) {
        bs_wbuf z, out;
        bs_wbuf_init(&z, 0);
        bs_wbuf_init(&out, 0);
        CHECK_EQ(bs_compress(codecs[c], zeros, big, &z), BS_OK);
        CHECK(z.len < big / 16);
        CHECK_EQ(bs_decompress(codecs[c], z.data, z.len, 1 << 20, &out), BS_E_TOO_LARGE);
        CHECK_EQ(out.len, 0);
        CHECK(out.cap <= (2u << 20)); /* memory stayed near the limit */
        bs_wbuf_free(&z);
        bs_wbuf_free(&out);
    }
    free(zeros);
}

/* Every truncation and a few corruptions of valid streams fail cleanly. */
static void test_truncated_and_corrupt(void)
{
    bs_wbuf text;
    bs_wbuf_init(&text, 0);
    plain_text(&text);
    for (size_t c = 0; c < BS_ARRAY_LEN(codecs); c++) {
        bs_wbuf z, out;
        bs_wbuf_init(&z, 0);
        bs_wbuf_init(&out, 0);
        CHECK_EQ(bs_compress(codecs[c], text.data, 5000, &z), BS_OK);
        int bad = 0;
        for (size_t cut = 0; cut < z.len; cut++) {
            bs_wbuf_reset(&out);
            bs_status st = bs_decompress(codecs[c], z.data, cut, 1 << 20, &out);
            /* Raw snappy cannot tell a short xerial stream from a bad raw one: both are
             * malformed; nothing may ever decode to success. */
            /* A bare 16-byte xerial header is the valid encoding of empty input. */
            if (codecs[c] == BS_CODEC_SNAPPY && cut == 16 && st == BS_OK) continue;
            if (st != BS_E_MALFORMED) {
                fprintf(stderr, "  %s cut %zu: %s\n", bs_codec_name(codecs[c]), cut,
                        bs_status_name(st));
                bad++;
            }
            if (out.len != 0) bad++;
        }
        CHECK_EQ(bad, 0);
        /* Trailing garbage after a complete stream. */
        bs_wbuf_put(&z, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11", 17);
        bs_wbuf_reset(&out);
        CHECK_EQ(bs_decompress(codecs[c], z.data, z.len, 1 << 20, &out), BS_E_MALFORMED);
        bs_wbuf_free(&z);
        bs_wbuf_free(&out);
    }
    /* A xerial block length that points past the end. */
    const uint8_t xer[] = {0x82, 'S', 'N', 'A', 'P', 'P',  'Y',  0,    0,    0,   0,
                           1,    0,   0,   0,   1,   0x7f, 0xff, 0xff, 0xff, 0x00};
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    CHECK_EQ(bs_decompress(BS_CODEC_SNAPPY, xer, sizeof xer, 1 << 20, &out), BS_E_MALFORMED);
    /* A snappy block claiming a 4 GiB output is refused before any allocation. */
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    CHECK_EQ(bs_decompress(BS_CODEC_SNAPPY, huge, sizeof huge, 1 << 20, &out), BS_E_TOO_LARGE);
    CHECK_EQ(bs_decompress(BS_CODEC_GZIP, (const uint8_t *)"not gzip at all", 15, 100, &out),
             BS_E_MALFORMED);
    CHECK_EQ(out.len, 0);
    bs_wbuf_free(&out);
    bs_wbuf_free(&text);
}

/* A zstd frame declaring a 128 MiB window (decoder memory) for a few bytes of content is
 * refused when the output limit is small, instead of making the decoder allocate it. */
static void test_zstd_window_bound(void)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    CHECK(c != NULL);
    if (!c) return;
    CHECK(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 27)));
    CHECK(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)));
    uint8_t frame[256];
    ZSTD_inBuffer in = {"hello hello hello", 17, 0};
    ZSTD_outBuffer zo = {frame, sizeof frame, 0};
    /* Feeding before ending keeps the size unknown, so the declared window stays 2^27. */
    CHECK(!ZSTD_isError(ZSTD_compressStream2(c, &zo, &in, ZSTD_e_continue)));
    ZSTD_inBuffer none = {NULL, 0, 0};
    CHECK_EQ(ZSTD_compressStream2(c, &zo, &none, ZSTD_e_end), 0);
    ZSTD_freeCCtx(c);
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    CHECK_EQ(bs_decompress(BS_CODEC_ZSTD, frame, zo.pos, 1 << 20, &out), BS_E_TOO_LARGE);
    CHECK_EQ(out.len, 0);
    /* With a limit that large the same frame is fine. */
    CHECK_EQ(bs_decompress(BS_CODEC_ZSTD, frame, zo.pos, 200u << 20, &out), BS_OK);
    CHECK_EQ(out.len, 17);
    CHECK(out.len == 17 && memcmp(out.data, "hello hello hello", 17) == 0);
    bs_wbuf_free(&out);
}

/* Run every test; non-zero exit on failure. */
int main(void)
{
    RUN(test_round_trip);
    RUN(test_none_and_unknown);
    RUN(test_decode_client_vectors);
    RUN(test_client_decodes_ours);
    RUN(test_zip_bomb);
    RUN(test_truncated_and_corrupt);
    RUN(test_zstd_window_bound);
    return test_report();
}
