/* buf.c - bounded I/O buffers and growable output buffers (see buf.h). */
#include "brokerside/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/text.h"

bs_status bs_buf_init(bs_buf *b, size_t cap)
{
    b->data = malloc(cap ? cap : 1);
    b->cap = b->data ? cap : 0;
    b->rd = b->wr = 0;
    return b->data ? BS_OK : BS_E_NOMEM;
}

void bs_buf_free(bs_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = b->rd = b->wr = 0;
}

void bs_buf_produce(bs_buf *b, size_t n)
{
    b->wr += n;
}

void bs_buf_consume(bs_buf *b, size_t n)
{
    b->rd += n;
    if (b->rd == b->wr) b->rd = b->wr = 0; /* empty: reuse from the front, no memmove */
}

void bs_buf_compact(bs_buf *b)
{
    if (b->rd == 0) return;
    size_t n = b->wr - b->rd;
    memmove(b->data, b->data + b->rd, n);
    b->rd = 0;
    b->wr = n;
}

bs_status bs_buf_append(bs_buf *b, const void *p, size_t len)
{
    if (len > bs_buf_free_space(b)) return BS_E_FULL;
    if (len > bs_buf_tail_room(b)) bs_buf_compact(b);
    memcpy(b->data + b->wr, p, len);
    b->wr += len;
    return BS_OK;
}

void bs_wbuf_init(bs_wbuf *w, size_t limit)
{
    w->data = NULL;
    w->len = w->cap = 0;
    w->limit = limit;
    w->failed = false;
    w->over_limit = false;
}

void bs_wbuf_free(bs_wbuf *w)
{
    free(w->data);
    bs_wbuf_init(w, w->limit);
}

void bs_wbuf_reset(bs_wbuf *w)
{
    w->len = 0;
    w->failed = false;
    w->over_limit = false;
}

bs_status bs_wbuf_status(const bs_wbuf *w)
{
    if (!w->failed) return BS_OK;
    return w->over_limit ? BS_E_TOO_LARGE : BS_E_NOMEM;
}

bool bs_wbuf_reserve(bs_wbuf *w, size_t extra)
{
    if (w->failed) return false;
    if (extra > SIZE_MAX - w->len || (w->limit && w->len + extra > w->limit)) {
        w->failed = true;
        w->over_limit = true;
        return false;
    }
    size_t need = w->len + extra;
    if (need <= w->cap) return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(w->data, cap);
    if (!p) {
        w->failed = true;
        return false;
    }
    w->data = p;
    w->cap = cap;
    return true;
}

void bs_wbuf_put(bs_wbuf *w, const void *p, size_t len)
{
    if (len == 0 || !bs_wbuf_reserve(w, len)) return;
    memcpy(w->data + w->len, p, len);
    w->len += len;
}

void bs_wbuf_put_str(bs_wbuf *w, const char *s)
{
    bs_wbuf_put(w, s, strlen(s));
}

void bs_wbuf_printf(bs_wbuf *w, const char *fmt, ...)
{
    if (w->failed) return;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        w->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        bs_wbuf_put(w, small, (size_t)n);
        return;
    }
    if (!bs_wbuf_reserve(w, (size_t)n + 1)) return;
    va_start(ap, fmt);
    vsnprintf((char *)w->data + w->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n;
}

void bs_wbuf_put_u8(bs_wbuf *w, uint8_t v)
{
    bs_wbuf_put(w, &v, 1);
}

void bs_wbuf_put_be16(bs_wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    bs_wbuf_put(w, b, 2);
}

void bs_wbuf_put_be32(bs_wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    bs_wbuf_put(w, b, 4);
}

void bs_wbuf_put_be64(bs_wbuf *w, uint64_t v)
{
    bs_wbuf_put_be32(w, (uint32_t)(v >> 32));
    bs_wbuf_put_be32(w, (uint32_t)v);
}

void bs_wbuf_put_uvarlong(bs_wbuf *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    bs_wbuf_put(w, b, n);
}

void bs_wbuf_put_uvarint(bs_wbuf *w, uint32_t v)
{
    bs_wbuf_put_uvarlong(w, v);
}

void bs_wbuf_put_varint(bs_wbuf *w, int32_t v)
{
    bs_wbuf_put_uvarlong(w, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)));
}

void bs_wbuf_put_varlong(bs_wbuf *w, int64_t v)
{
    bs_wbuf_put_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void bs_wbuf_patch_be32(bs_wbuf *w, size_t off, uint32_t v)
{
    if (w->failed || off + 4 > w->len) return;
    w->data[off] = (uint8_t)(v >> 24);
    w->data[off + 1] = (uint8_t)(v >> 16);
    w->data[off + 2] = (uint8_t)(v >> 8);
    w->data[off + 3] = (uint8_t)v;
}

/* Plain runs are copied in one piece; the rules are bs_json_escape_unit's. */
void bs_wbuf_put_json_string(bs_wbuf *w, const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    bs_wbuf_put_u8(w, '"');
    size_t start = 0, i = 0;
    while (i < len) {
        char esc[6];
        size_t adv, k = bs_json_escape_unit(p + i, len - i, esc, &adv);
        if (k) {
            bs_wbuf_put(w, s + start, i - start);
            bs_wbuf_put(w, esc, k);
            start = i + adv;
        }
        i += adv;
    }
    bs_wbuf_put(w, s + start, len - start);
    bs_wbuf_put_u8(w, '"');
}
