/* Unit tests for src/core/text.c: the shared UTF-8 validator, hex codec,
 * percent-encoder and JSON escape rule (their callers' own tests cover them in context too). */
#include "brokerside/text.h"

#include "test.h"

static void test_utf8(void)
{
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"a", 1), 1);
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"\xc3\xa9", 2), 2);
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"\xe2\x82\xac", 3), 3);
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"\xf0\x9f\x98\x80", 4), 4);
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"\xe2\x82", 2), 0);         /* truncated */
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"\xe0\x80\xaf", 3), 0);     /* overlong */
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"\xed\xbf\xbf", 3), 0);     /* surrogate */
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"\xf5\x80\x80\x80", 4), 0); /* > U+10FFFF */
    CHECK_EQ(bs_utf8_seq((const uint8_t *)"\x80", 1), 0);             /* continuation */
    CHECK(bs_utf8_valid((const uint8_t *)"", 0));
    CHECK(bs_utf8_valid((const uint8_t *)"caf\xc3\xa9", 5));
    CHECK(!bs_utf8_valid((const uint8_t *)"caf\xc3", 4));
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_utf8_sanitize((const uint8_t *)"a\xff\xc3\xa9z\xc3", 6, &w);
    CHECK_EQ(w.len, 10);
    if (w.len == 10) CHECK_MEM(w.data, "a\xef\xbf\xbd\xc3\xa9z\xef\xbf\xbd", 10);
    bs_wbuf_free(&w);
}

static void test_hex(void)
{
    char out[9];
    uint8_t bytes[4] = {0x00, 0xab, 0x7f, 0xff}, back[4];
    bs_hex_encode(bytes, 4, out);
    CHECK_STR(out, "00ab7fff");
    CHECK(bs_hex_decode("00AB7fFF", 4, back));
    CHECK_MEM(back, bytes, 4);
    CHECK(!bs_hex_decode("00ab7fgf", 4, back));
    CHECK_EQ(bs_hex_value('F'), 15);
    CHECK_EQ(bs_hex_value('g'), -1);
}

static void test_percent(void)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    const char *s = "a b/c~d-e_f.g%\xc3\xa9";
    bs_wbuf_put_percent(&w, s, strlen(s), false);
    bs_wbuf_put_u8(&w, '|');
    bs_wbuf_put_percent(&w, s, strlen(s), true);
    bs_wbuf_put_u8(&w, 0);
    CHECK_STR((const char *)w.data,
              "a%20b%2Fc~d-e_f.g%25%C3%A9|a%20b/c~d-e_f.g%25%C3%A9");
    bs_wbuf_free(&w);
}

/* The escape of one character, as a string ("" when kept as is), and its
 * length in input bytes. */
static const char *escape_of(const char *in, size_t n, size_t *adv)
{
    static char out[7];
    size_t k = bs_json_escape_unit((const uint8_t *)in, n, out, adv);
    out[k] = '\0';
    return out;
}

static void test_json_escape_unit(void)
{
    size_t adv;
    CHECK_STR(escape_of("a", 1, &adv), "");
    CHECK_EQ(adv, 1);
    CHECK_STR(escape_of("\xe2\x82\xac!", 4, &adv), ""); /* valid UTF-8: kept whole */
    CHECK_EQ(adv, 3);
    CHECK_STR(escape_of("\"", 1, &adv), "\\\"");
    CHECK_STR(escape_of("\\", 1, &adv), "\\\\");
    CHECK_STR(escape_of("\n", 1, &adv), "\\n");
    CHECK_STR(escape_of("\r", 1, &adv), "\\r");
    CHECK_STR(escape_of("\t", 1, &adv), "\\t");
    CHECK_STR(escape_of("\x01", 1, &adv), "\\u0001");
    CHECK_STR(escape_of("\x1f", 1, &adv), "\\u001f");
    CHECK_STR(escape_of("\x7f", 1, &adv), "\\u007f");
    CHECK_EQ(adv, 1);
    CHECK_STR(escape_of("\xff", 1, &adv), "\\ufffd");      /* starts nothing */
    CHECK_STR(escape_of("\xe2\x82", 2, &adv), "\\ufffd"); /* truncated: one byte replaced */
    CHECK_EQ(adv, 1);
    /* every byte value: printable ASCII kept, the rest escaped to 2 or 6 bytes */
    for (int c = 1; c < 0x80; c++) {
        char in[1] = {(char)c};
        size_t k = strlen(escape_of(in, 1, &adv));
        CHECK(k == ((c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? 0u : (k == 2 ? 2u : 6u)));
        CHECK_EQ(adv, 1);
    }
}

int main(void)
{
    RUN(test_utf8);
    RUN(test_hex);
    RUN(test_percent);
    RUN(test_json_escape_unit);
    return test_report();
}
