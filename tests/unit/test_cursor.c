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

static void test_peek_and_at(void)
{
    bs_cursor c;
    uint8_t b = 0;
    bs_cursor_init(&c, "x", 1);
    CHECK_EQ(bs_cursor_peek(&c, &b), BS_OK);
    CHECK_EQ(b, 'x');
    CHECK_EQ(c.pos, 0);
    CHECK(bs_cursor_at(&c, 'x'));
    CHECK(!bs_cursor_at(&c, 'y'));
    c.pos = 1;
    CHECK_EQ(bs_cursor_peek(&c, &b), BS_E_SHORT);
    CHECK(!bs_cursor_at(&c, 'x'));
    bs_cursor_init(&c, NULL, 0); /* empty input with no buffer at all */
    CHECK_EQ(bs_cursor_peek(&c, &b), BS_E_SHORT);
}

static void test_take_until(void)
{
    bs_cursor c;
    const uint8_t *p;
    size_t n;
    bs_cursor_init(&c, "ab\n\nc", 5);
    CHECK_EQ(bs_cursor_take_until(&c, '\n', &p, &n), BS_OK);
    CHECK_EQ(n, 2);
    CHECK_MEM(p, "ab", 2);
    CHECK_EQ(c.pos, 3);
    CHECK_EQ(bs_cursor_take_until(&c, '\n', &p, &n), BS_OK); /* empty span */
    CHECK_EQ(n, 0);
    CHECK_EQ(c.pos, 4);
    CHECK_EQ(bs_cursor_take_until(&c, '\n', &p, &n), BS_E_SHORT); /* "c": unterminated */
    CHECK_EQ(c.pos, 4);
    c.pos = 5;
    CHECK_EQ(bs_cursor_take_until(&c, '\n', &p, &n), BS_E_SHORT);
    bs_cursor_init(&c, NULL, 0);
    CHECK_EQ(bs_cursor_take_until(&c, '\n', &p, &n), BS_E_SHORT);
}

static void test_take_until_lit(void)
{
    bs_cursor c;
    const uint8_t *p;
    size_t n;
    static const char doc[] = "<a>x</a><a></a";
    bs_cursor_init(&c, doc, sizeof doc - 1);
    CHECK_EQ(bs_cursor_take_until_lit(&c, "<a>", 3, &p, &n), BS_OK);
    CHECK_EQ(n, 0);
    CHECK_EQ(bs_cursor_take_until_lit(&c, "</a>", 4, &p, &n), BS_OK);
    CHECK_EQ(n, 1);
    CHECK_MEM(p, "x", 1);
    CHECK_EQ(bs_cursor_take_until_lit(&c, "<a>", 3, &p, &n), BS_OK);
    size_t at = c.pos;
    /* "</a" at the very end is not the whole literal */
    CHECK_EQ(bs_cursor_take_until_lit(&c, "</a>", 4, &p, &n), BS_E_SHORT);
    CHECK_EQ(c.pos, at);
    CHECK_EQ(bs_cursor_take_until_lit(&c, "", 0, &p, &n), BS_E_SHORT); /* empty literal */
    c.pos = c.len;
    CHECK_EQ(bs_cursor_take_until_lit(&c, "a", 1, &p, &n), BS_E_SHORT);
}

static void test_take_while(void)
{
    bs_cursor c;
    const uint8_t *p;
    bs_cursor_init(&c, "GET /x", 6);
    CHECK_EQ(bs_cursor_take_while(&c, bs_byte_is_upper, &p), 3);
    CHECK_MEM(p, "GET", 3);
    CHECK_EQ(bs_cursor_take_while(&c, bs_byte_is_upper, &p), 0); /* empty run, no move */
    CHECK_EQ(c.pos, 3);
    CHECK_EQ(bs_cursor_take_while(&c, bs_byte_is_blank, &p), 1);
    CHECK_EQ(bs_cursor_take_while(&c, bs_byte_is_tchar, &p), 0); /* '/' is no tchar */
    c.pos = c.len;
    CHECK_EQ(bs_cursor_take_while(&c, bs_byte_is_tchar, &p), 0);
    /* the classes */
    CHECK(bs_byte_is_tchar('~') && bs_byte_is_tchar('z') && !bs_byte_is_tchar(0));
    CHECK(!bs_byte_is_tchar(':') && !bs_byte_is_tchar(' ') && !bs_byte_is_tchar(0x80));
    CHECK(bs_byte_is_space('\v') && bs_byte_is_space('\r') && !bs_byte_is_space(0));
    CHECK(bs_byte_is_blank('\t') && !bs_byte_is_blank('\n'));
    CHECK(bs_byte_is_digit('0') && bs_byte_is_digit('9') && !bs_byte_is_digit('a'));
}

static void test_expect_and_accept(void)
{
    bs_cursor c;
    bs_cursor_init(&c, "HTTP/1.1", 8);
    CHECK_EQ(bs_cursor_expect(&c, "HTTP/", 5), BS_OK);
    CHECK_EQ(c.pos, 5);
    CHECK_EQ(bs_cursor_expect(&c, "2.0", 3), BS_E_MALFORMED);
    CHECK_EQ(c.pos, 5);
    CHECK_EQ(bs_cursor_expect(&c, "1.1 extra", 9), BS_E_SHORT); /* matches so far */
    CHECK_EQ(bs_cursor_expect(&c, "1.2 extra", 9), BS_E_MALFORMED);
    CHECK_EQ(c.pos, 5);
    CHECK(!bs_cursor_accept(&c, "1.0", 3));
    CHECK(!bs_cursor_accept(&c, "1.1x", 4));
    CHECK_EQ(c.pos, 5);
    CHECK(bs_cursor_accept(&c, "1.1", 3));
    CHECK_EQ(bs_cursor_remaining(&c), 0);
    CHECK(bs_cursor_accept(&c, "", 0));
    CHECK_EQ(bs_cursor_expect(&c, "", 0), BS_OK);
}

static void test_parse_decimal(void)
{
    bs_cursor c;
    uint64_t v = 7;
    bs_cursor_init(&c, "2026-11", 7);
    CHECK_EQ(bs_cursor_parse_decimal(&c, 4, 4, 9999, &v), BS_OK);
    CHECK_EQ(v, 2026);
    CHECK(bs_cursor_accept(&c, "-", 1));
    CHECK_EQ(bs_cursor_parse_decimal(&c, 2, 2, 10, &v), BS_E_MALFORMED); /* 11 > 10 */
    CHECK_EQ(c.pos, 5);
    CHECK_EQ(bs_cursor_parse_decimal(&c, 3, 3, 999, &v), BS_E_MALFORMED); /* too few digits */
    CHECK_EQ(bs_cursor_parse_decimal(&c, 1, 1, 9, &v), BS_E_MALFORMED);   /* too many */
    CHECK_EQ(c.pos, 5);
    CHECK_EQ(bs_cursor_parse_decimal(&c, 1, 2, 12, &v), BS_OK);
    CHECK_EQ(v, 11);
    CHECK_EQ(bs_cursor_parse_decimal(&c, 0, 3, 9, &v), BS_E_MALFORMED); /* at the end: none */
    /* 19 digits is the most: 20 would overflow uint64 for large values */
    bs_cursor_init(&c, "18446744073709551615", 20);
    CHECK_EQ(bs_cursor_parse_decimal(&c, 1, 19, UINT64_MAX, &v), BS_E_MALFORMED);
    CHECK_EQ(bs_cursor_parse_decimal(&c, 1, 20, UINT64_MAX, &v), BS_E_MALFORMED);
    bs_cursor_init(&c, "9999999999999999999x", 20);
    CHECK_EQ(bs_cursor_parse_decimal(&c, 1, 19, UINT64_MAX, &v), BS_OK);
    CHECK(v == 9999999999999999999ULL);
    CHECK(bs_cursor_at(&c, 'x'));
    bs_cursor_init(&c, "+1", 2); /* no sign */
    CHECK_EQ(bs_cursor_parse_decimal(&c, 1, 5, 100, &v), BS_E_MALFORMED);
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
    RUN(test_peek_and_at);
    RUN(test_take_until);
    RUN(test_take_until_lit);
    RUN(test_take_while);
    RUN(test_expect_and_accept);
    RUN(test_parse_decimal);
    return test_report();
}
