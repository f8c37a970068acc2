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

/* ---- text helpers: the same rules (check first, never move on failure) for
 * line- and token-oriented formats (HTTP heads, log lines, INI files, XML). */

/* A byte class for bs_cursor_take_while: true if `b` belongs. */
typedef bool (*bs_byte_class)(uint8_t b);

/* The next byte without consuming it. BS_E_SHORT if none is left. */
bs_status bs_cursor_peek(const bs_cursor *c, uint8_t *out) BS_WUR;
/* True if the next byte is `b` (false at the end). */
bool bs_cursor_at(const bs_cursor *c, uint8_t b);
/* Point *out at the bytes before the next `delim` (*len of them, maybe 0)
 * and advance past the delimiter. BS_E_SHORT without moving if no `delim`
 * remains (a streaming caller reads more; a whole-buffer caller has the
 * unterminated tail). */
bs_status bs_cursor_take_until(bs_cursor *c, uint8_t delim, const uint8_t **out,
                               size_t *len) BS_WUR;
/* As bs_cursor_take_until for a literal of `lit_len` >= 1 bytes: the bytes
 * before its next occurrence, then advance past it. BS_E_SHORT without
 * moving if it does not occur. */
bs_status bs_cursor_take_until_lit(bs_cursor *c, const void *lit, size_t lit_len,
                                   const uint8_t **out, size_t *len) BS_WUR;
/* Consume the longest run of bytes in `cls` (possibly empty): *out points at
 * it, the return value is its length. Never fails. */
size_t bs_cursor_take_while(bs_cursor *c, bs_byte_class cls, const uint8_t **out);
/* Consume `lit_len` bytes equal to `lit`. BS_E_SHORT without moving if fewer
 * bytes remain and those match the literal's start (more input could
 * complete it); BS_E_MALFORMED without moving if a byte differs. */
bs_status bs_cursor_expect(bs_cursor *c, const void *lit, size_t lit_len) BS_WUR;
/* Consume the literal if it comes next and return true; else false and no
 * move (no distinction between "short" and "different"). */
bool bs_cursor_accept(bs_cursor *c, const void *lit, size_t lit_len);
/* An unsigned decimal of between min_digits and max_digits digits (ASCII
 * '0'-'9', no sign, no spaces) whose value is at most `max`; stops at the
 * first non-digit. BS_E_MALFORMED without moving on too few or too many
 * digits or a value above `max` (never overflows: max_digits <= 19). */
bs_status bs_cursor_parse_decimal(bs_cursor *c, unsigned min_digits, unsigned max_digits,
                                  uint64_t max, uint64_t *out) BS_WUR;

/* Byte classes for bs_cursor_take_while. */
bool bs_byte_is_digit(uint8_t b);
bool bs_byte_is_upper(uint8_t b);
/* ' ' or '\t' */
bool bs_byte_is_blank(uint8_t b);
/* isspace in the C locale: ' ', \t, \n, \v, \f, \r */
bool bs_byte_is_space(uint8_t b);
/* RFC 9110 tchar: the bytes of an HTTP method or header name. */
bool bs_byte_is_tchar(uint8_t b);

#endif
