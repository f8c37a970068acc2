/*
 * text.c - UTF-8 validation, hex and percent encoding (see text.h).
 */
#include "brokerside/text.h"

/* See text.h. */
size_t bs_utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    /* no overlong forms, no surrogates, nothing past U+10FFFF */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0;
    return len;
}

/* See text.h. */
bool bs_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = bs_utf8_seq(p + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

/* See text.h. */
void bs_utf8_sanitize(const uint8_t *p, size_t n, bs_wbuf *out)
{
    for (size_t i = 0; i < n;) {
        size_t l = bs_utf8_seq(p + i, n - i);
        if (l) {
            bs_wbuf_put(out, p + i, l);
            i += l;
        } else {
            bs_wbuf_put(out, "\xef\xbf\xbd", 3);
            i++;
        }
    }
}

/* See text.h. */
int bs_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* See text.h. */
void bs_hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* See text.h. */
bool bs_hex_decode(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = bs_hex_value((unsigned char)s[2 * i]), lo = bs_hex_value((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* See text.h. */
void bs_wbuf_put_percent(bs_wbuf *w, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            bs_wbuf_put_u8(w, c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            bs_wbuf_put(w, e, 3);
        }
    }
}
