/* cursor.c - bounds-checked reads of untrusted bytes (see cursor.h). */
#include "brokerside/cursor.h"

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
