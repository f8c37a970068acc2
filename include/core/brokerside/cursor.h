/*
 * cursor.h - bounds-checked reader for untrusted bytes.
 *
 * Every parser of wire data reads through a bs_cursor. Each read checks the
 * remaining length first and returns BS_E_SHORT without moving if the bytes
 * are not there; varints longer than their type allows are BS_E_MALFORMED.
 * The cursor never owns the bytes it reads.
 */
#ifndef BROKERSIDE_CURSOR_H
#define BROKERSIDE_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/status.h"

typedef struct bs_cursor {
    const uint8_t *data;
    size_t len; /* total bytes */
    size_t pos; /* next byte to read */
} bs_cursor;

static inline void bs_cursor_init(bs_cursor *c, const void *data, size_t len)
{
    c->data = (const uint8_t *)data;
    c->len = len;
    c->pos = 0;
}
static inline size_t bs_cursor_remaining(const bs_cursor *c) { return c->len - c->pos; }
static inline const uint8_t *bs_cursor_ptr(const bs_cursor *c) { return c->data + c->pos; }

bs_status bs_read_u8(bs_cursor *c, uint8_t *out) BS_WUR;
bs_status bs_read_i8(bs_cursor *c, int8_t *out) BS_WUR;
bs_status bs_read_be16(bs_cursor *c, uint16_t *out) BS_WUR;
bs_status bs_read_i16(bs_cursor *c, int16_t *out) BS_WUR;
bs_status bs_read_be32(bs_cursor *c, uint32_t *out) BS_WUR;
bs_status bs_read_i32(bs_cursor *c, int32_t *out) BS_WUR;
bs_status bs_read_be64(bs_cursor *c, uint64_t *out) BS_WUR;
bs_status bs_read_i64(bs_cursor *c, int64_t *out) BS_WUR;
/* Unsigned LEB128, at most 5 bytes, value fits 32 bits. */
bs_status bs_read_uvarint(bs_cursor *c, uint32_t *out) BS_WUR;
/* Unsigned LEB128, at most 10 bytes. */
bs_status bs_read_uvarlong(bs_cursor *c, uint64_t *out) BS_WUR;
/* Zig-zag signed varint (int32) and varlong (int64). */
bs_status bs_read_varint(bs_cursor *c, int32_t *out) BS_WUR;
bs_status bs_read_varlong(bs_cursor *c, int64_t *out) BS_WUR;
/* Point `*out` at the next `n` bytes (no copy) and advance. */
bs_status bs_read_bytes(bs_cursor *c, size_t n, const uint8_t **out) BS_WUR;
/* Advance `n` bytes. */
bs_status bs_cursor_skip(bs_cursor *c, size_t n) BS_WUR;
/* A sub-cursor over the next `n` bytes; the parent advances past them. */
bs_status bs_cursor_sub(bs_cursor *c, size_t n, bs_cursor *sub) BS_WUR;

#endif
