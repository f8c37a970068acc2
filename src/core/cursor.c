/* cursor.c - bounds-checked reads of untrusted bytes (see cursor.h). */
#include "brokerside/cursor.h"

#include <string.h>

bs_status bs_read_u8(bs_cursor *c, uint8_t *out)
{
    BS_ENSURE(bs_cursor_remaining(c) >= 1, BS_E_SHORT);
    *out = c->data[c->pos++];
    return BS_OK;
}

bs_status bs_read_i8(bs_cursor *c, int8_t *out)
{
    uint8_t v;
    BS_GUARD(bs_read_u8(c, &v));
    *out = (int8_t)v;
    return BS_OK;
}

bs_status bs_read_be16(bs_cursor *c, uint16_t *out)
{
    BS_ENSURE(bs_cursor_remaining(c) >= 2, BS_E_SHORT);
    const uint8_t *p = c->data + c->pos;
    *out = (uint16_t)((uint16_t)p[0] << 8 | p[1]);
    c->pos += 2;
    return BS_OK;
}

bs_status bs_read_i16(bs_cursor *c, int16_t *out)
{
    uint16_t v;
    BS_GUARD(bs_read_be16(c, &v));
    *out = (int16_t)v;
    return BS_OK;
}

bs_status bs_read_be32(bs_cursor *c, uint32_t *out)
{
    BS_ENSURE(bs_cursor_remaining(c) >= 4, BS_E_SHORT);
    const uint8_t *p = c->data + c->pos;
    *out = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    c->pos += 4;
    return BS_OK;
}

bs_status bs_read_i32(bs_cursor *c, int32_t *out)
{
    uint32_t v;
    BS_GUARD(bs_read_be32(c, &v));
    *out = (int32_t)v;
    return BS_OK;
}

bs_status bs_read_be64(bs_cursor *c, uint64_t *out)
{
    BS_ENSURE(bs_cursor_remaining(c) >= 8, BS_E_SHORT);
    uint32_t hi, lo;
    BS_GUARD(bs_read_be32(c, &hi));
    BS_GUARD(bs_read_be32(c, &lo));
    *out = (uint64_t)hi << 32 | lo;
    return BS_OK;
}

bs_status bs_read_i64(bs_cursor *c, int64_t *out)
{
    uint64_t v;
    BS_GUARD(bs_read_be64(c, &v));
    *out = (int64_t)v;
    return BS_OK;
}

/* Reads an unsigned LEB128 of at most max_bytes; the cursor moves only on success. */
static bs_status read_uleb(bs_cursor *c, unsigned max_bytes, uint64_t *out)
{
    uint64_t v = 0;
    size_t pos = c->pos;
    for (unsigned i = 0; i < max_bytes; i++) {
        if (pos >= c->len) return BS_E_SHORT;
        uint8_t b = c->data[pos++];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            c->pos = pos;
            *out = v;
            return BS_OK;
        }
    }
    return BS_E_MALFORMED;
}

bs_status bs_read_uvarint(bs_cursor *c, uint32_t *out)
{
    uint64_t v;
    size_t start = c->pos;
    BS_GUARD(read_uleb(c, 5, &v));
    if (v > UINT32_MAX) {
        c->pos = start;
        return BS_E_MALFORMED;
    }
    *out = (uint32_t)v;
    return BS_OK;
}

bs_status bs_read_uvarlong(bs_cursor *c, uint64_t *out)
{
    return read_uleb(c, 10, out);
}

bs_status bs_read_varint(bs_cursor *c, int32_t *out)
{
    uint32_t u;
    BS_GUARD(bs_read_uvarint(c, &u));
    *out = (int32_t)((u >> 1) ^ (~(u & 1) + 1));
    return BS_OK;
}

bs_status bs_read_varlong(bs_cursor *c, int64_t *out)
{
    uint64_t u;
    BS_GUARD(bs_read_uvarlong(c, &u));
    *out = (int64_t)((u >> 1) ^ (~(u & 1) + 1));
    return BS_OK;
}

bs_status bs_read_bytes(bs_cursor *c, size_t n, const uint8_t **out)
{
    BS_ENSURE(bs_cursor_remaining(c) >= n, BS_E_SHORT);
    *out = c->data + c->pos;
    c->pos += n;
    return BS_OK;
}

bs_status bs_cursor_skip(bs_cursor *c, size_t n)
{
    BS_ENSURE(bs_cursor_remaining(c) >= n, BS_E_SHORT);
    c->pos += n;
    return BS_OK;
}

bs_status bs_cursor_sub(bs_cursor *c, size_t n, bs_cursor *sub)
{
    const uint8_t *p;
    BS_GUARD(bs_read_bytes(c, n, &p));
    bs_cursor_init(sub, p, n);
    return BS_OK;
}

/* ---- text helpers (see cursor.h) ---------------------------------------- */

bs_status bs_cursor_peek(const bs_cursor *c, uint8_t *out)
{
    BS_ENSURE(bs_cursor_remaining(c) >= 1, BS_E_SHORT);
    *out = c->data[c->pos];
    return BS_OK;
}

bool bs_cursor_at(const bs_cursor *c, uint8_t b)
{
    return bs_cursor_remaining(c) >= 1 && c->data[c->pos] == b;
}

bs_status bs_cursor_take_until(bs_cursor *c, uint8_t delim, const uint8_t **out, size_t *len)
{
    size_t rem = bs_cursor_remaining(c);
    BS_ENSURE(rem > 0, BS_E_SHORT); /* memchr must not see a NULL data pointer */
    const uint8_t *p = bs_cursor_ptr(c);
    const uint8_t *hit = memchr(p, delim, rem);
    BS_ENSURE(hit, BS_E_SHORT);
    *out = p;
    *len = (size_t)(hit - p);
    c->pos += *len + 1;
    return BS_OK;
}

bs_status bs_cursor_take_until_lit(bs_cursor *c, const void *lit, size_t lit_len,
                                   const uint8_t **out, size_t *len)
{
    size_t rem = bs_cursor_remaining(c);
    BS_ENSURE(lit_len > 0 && rem >= lit_len, BS_E_SHORT);
    const uint8_t *p = bs_cursor_ptr(c);
    const uint8_t *hit = memmem(p, rem, lit, lit_len);
    BS_ENSURE(hit, BS_E_SHORT);
    *out = p;
    *len = (size_t)(hit - p);
    c->pos += *len + lit_len;
    return BS_OK;
}

size_t bs_cursor_take_while(bs_cursor *c, bs_byte_class cls, const uint8_t **out)
{
    size_t start = c->pos;
    while (c->pos < c->len && cls(c->data[c->pos]))
        c->pos++;
    *out = c->data ? c->data + start : NULL; /* no arithmetic on an empty input's NULL */
    return c->pos - start;
}

bs_status bs_cursor_expect(bs_cursor *c, const void *lit, size_t lit_len)
{
    size_t rem = bs_cursor_remaining(c);
    size_t n = rem < lit_len ? rem : lit_len;
    if (n) BS_ENSURE(memcmp(bs_cursor_ptr(c), lit, n) == 0, BS_E_MALFORMED);
    BS_ENSURE(rem >= lit_len, BS_E_SHORT);
    c->pos += lit_len;
    return BS_OK;
}

bool bs_cursor_accept(bs_cursor *c, const void *lit, size_t lit_len)
{
    if (bs_cursor_remaining(c) < lit_len) return false;
    if (lit_len && memcmp(bs_cursor_ptr(c), lit, lit_len) != 0) return false;
    c->pos += lit_len;
    return true;
}

bs_status bs_cursor_parse_decimal(bs_cursor *c, unsigned min_digits, unsigned max_digits,
                                  uint64_t max, uint64_t *out)
{
    BS_ENSURE(max_digits >= 1 && max_digits <= 19 && min_digits <= max_digits, BS_E_MALFORMED);
    size_t pos = c->pos;
    unsigned n = 0;
    uint64_t v = 0;
    while (pos < c->len && bs_byte_is_digit(c->data[pos])) {
        if (++n > max_digits) return BS_E_MALFORMED;
        v = v * 10 + (uint64_t)(c->data[pos++] - '0'); /* < 10^19: no overflow */
    }
    BS_ENSURE(n >= min_digits && n >= 1 && v <= max, BS_E_MALFORMED);
    c->pos = pos;
    *out = v;
    return BS_OK;
}

bool bs_byte_is_digit(uint8_t b) { return b >= '0' && b <= '9'; }
bool bs_byte_is_upper(uint8_t b) { return b >= 'A' && b <= 'Z'; }
bool bs_byte_is_blank(uint8_t b) { return b == ' ' || b == '\t'; }
bool bs_byte_is_space(uint8_t b) { return b == ' ' || (b >= '\t' && b <= '\r'); }

bool bs_byte_is_tchar(uint8_t b)
{
    if (bs_byte_is_digit(b) || (b >= 'a' && b <= 'z') || bs_byte_is_upper(b)) return true;
    return b != 0 && strchr("!#$%&'*+-.^_`|~", b) != NULL;
}
