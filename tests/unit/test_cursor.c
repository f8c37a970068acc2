/* Unit tests for src/core/cursor.c and the varint writers in src/core/buf.c. */
#include "brokerside/buf.h"
#include "brokerside/cursor.h"
#include "test.h"

static void test_fixed_width(void)
{
    const uint8_t b[] = {0x01, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8};
    bs_cursor c;
    bs_cursor_init(&c, b, sizeof b);
    uint8_t u8;
    int16_t i16;
    int32_t i32;
    uint64_t u64;
    CHECK_EQ(bs_read_u8(&c, &u8), BS_OK);
    CHECK_EQ(u8, 1);
    CHECK_EQ(bs_read_i16(&c, &i16), BS_OK);
    CHECK_EQ(i16, -2);
    CHECK_EQ(bs_read_i32(&c, &i32), BS_OK);
    CHECK_EQ(i32, (int32_t)0x80000001);
    CHECK_EQ(bs_read_be64(&c, &u64), BS_OK);
    CHECK(u64 == 0x0102030405060708ULL);
    CHECK_EQ(bs_cursor_remaining(&c), 0);
    CHECK_EQ(bs_read_u8(&c, &u8), BS_E_SHORT);
}

static void test_short_reads_do_not_move(void)
{
    const uint8_t b[] = {0, 0, 0};
    bs_cursor c;
    bs_cursor_init(&c, b, sizeof b);
    uint32_t v;
    const uint8_t *p;
    bs_cursor sub;
    CHECK_EQ(bs_read_be32(&c, &v), BS_E_SHORT);
    CHECK_EQ(c.pos, 0);
    CHECK_EQ(bs_read_bytes(&c, 4, &p), BS_E_SHORT);
    CHECK_EQ(bs_cursor_skip(&c, (size_t)-1), BS_E_SHORT);
    CHECK_EQ(bs_cursor_sub(&c, 4, &sub), BS_E_SHORT);
    CHECK_EQ(c.pos, 0);
    CHECK_EQ(bs_cursor_sub(&c, 2, &sub), BS_OK);
    CHECK_EQ(sub.len, 2);
    CHECK_EQ(c.pos, 2);
}

static void test_varint_round_trip(void)
{
    const int32_t vals[] = {0, 1, -1, 63, -64, 64, 300, -300, INT32_MAX, INT32_MIN};
    const int64_t lvals[] = {0, -1, INT64_MAX, INT64_MIN, 1LL << 40};
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    for (size_t i = 0; i < BS_ARRAY_LEN(vals); i++) bs_wbuf_put_varint(&w, vals[i]);
    for (size_t i = 0; i < BS_ARRAY_LEN(lvals); i++) bs_wbuf_put_varlong(&w, lvals[i]);
    bs_wbuf_put_uvarint(&w, UINT32_MAX);
    CHECK_EQ(bs_wbuf_status(&w), BS_OK);
    bs_cursor c;
    bs_cursor_init(&c, w.data, w.len);
    for (size_t i = 0; i < BS_ARRAY_LEN(vals); i++) {
        int32_t v;
        CHECK_EQ(bs_read_varint(&c, &v), BS_OK);
        CHECK_EQ(v, vals[i]);
    }
    for (size_t i = 0; i < BS_ARRAY_LEN(lvals); i++) {
        int64_t v;
        CHECK_EQ(bs_read_varlong(&c, &v), BS_OK);
        CHECK(v == lvals[i]);
    }
    uint32_t u;
    CHECK_EQ(bs_read_uvarint(&c, &u), BS_OK);
    CHECK(u == UINT32_MAX);
    CHECK_EQ(bs_cursor_remaining(&c), 0);
    bs_wbuf_free(&w);
}

static void test_varint_hostile(void)
{
    /* six continuation bytes: too long for a 32-bit varint */
    const uint8_t too_long[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    /* five bytes but the value overflows 32 bits */
    const uint8_t overflow[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
    /* truncated: continuation bit set on the last byte */
    const uint8_t truncated[] = {0x80, 0x80};
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    bs_cursor c;
    uint32_t u;
    uint64_t ul;
    bs_cursor_init(&c, too_long, sizeof too_long);
    CHECK_EQ(bs_read_uvarint(&c, &u), BS_E_MALFORMED);
    bs_cursor_init(&c, overflow, sizeof overflow);
    CHECK_EQ(bs_read_uvarint(&c, &u), BS_E_MALFORMED);
    CHECK_EQ(c.pos, 0);
    bs_cursor_init(&c, truncated, sizeof truncated);
    CHECK_EQ(bs_read_uvarint(&c, &u), BS_E_SHORT);
    CHECK_EQ(c.pos, 0);
    bs_cursor_init(&c, eleven, sizeof eleven);
    CHECK_EQ(bs_read_uvarlong(&c, &ul), BS_E_MALFORMED);
}

static void test_wbuf_limit(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 8);
    bs_wbuf_put_be32(&w, 1);
    bs_wbuf_put_be32(&w, 2);
    CHECK_EQ(bs_wbuf_status(&w), BS_OK);
    bs_wbuf_put_u8(&w, 3);
    CHECK_EQ(bs_wbuf_status(&w), BS_E_TOO_LARGE);
    CHECK_EQ(w.len, 8);
    bs_wbuf_reset(&w);
    bs_wbuf_printf(&w, "%d", 1234567);
    CHECK_EQ(bs_wbuf_status(&w), BS_OK);
    CHECK_MEM(w.data, "1234567", 7);
    bs_wbuf_free(&w);
}

static void test_wbuf_json_and_patch(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_json_string(&w, "a\"b\\c\n\x01", 7);
    CHECK_EQ(w.len, strlen("\"a\\\"b\\\\c\\n\\u0001\""));
    CHECK_MEM(w.data, "\"a\\\"b\\\\c\\n\\u0001\"", w.len);
    bs_wbuf_reset(&w);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_str(&w, "xyz");
    bs_wbuf_patch_be32(&w, 0, 3);
    CHECK_MEM(w.data, "\0\0\0\3xyz", 7);
    bs_wbuf_free(&w);
}

static void test_bounded_buf(void)
{
    bs_buf b;
    CHECK_EQ(bs_buf_init(&b, 8), BS_OK);
    CHECK_EQ(bs_buf_append(&b, "abcdef", 6), BS_OK);
    bs_buf_consume(&b, 4);
    CHECK_EQ(bs_buf_readable(&b), 2);
    CHECK_EQ(bs_buf_tail_room(&b), 2);
    CHECK_EQ(bs_buf_free_space(&b), 6);
    CHECK_EQ(bs_buf_append(&b, "ghijkl", 6), BS_OK); /* needs compaction */
    CHECK_EQ(bs_buf_readable(&b), 8);
    CHECK_MEM(bs_buf_read_ptr(&b), "efghijkl", 8);
    CHECK_EQ(bs_buf_append(&b, "x", 1), BS_E_FULL);
    bs_buf_consume(&b, 8);
    CHECK_EQ(b.rd, 0);
    CHECK_EQ(b.wr, 0);
    bs_buf_free(&b);
    bs_buf_free(&b); /* idempotent */
}

int main(void)
{
    RUN(test_fixed_width);
    RUN(test_short_reads_do_not_move);
    RUN(test_varint_round_trip);
    RUN(test_varint_hostile);
    RUN(test_wbuf_limit);
    RUN(test_wbuf_json_and_patch);
    RUN(test_bounded_buf);
    return test_report();
}
