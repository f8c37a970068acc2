/*
 * buf.h - byte buffers.
 *
 * bs_buf is a bounded I/O buffer with a fixed capacity, used for the two
 * directions of a proxied connection: data is appended at `wr` and consumed
 * at `rd`; bs_buf_compact() moves unread bytes to the front. Its capacity
 * bounds memory per connection and is what backpressure is measured against.
 *
 * bs_wbuf is a growable output buffer for encoders and text rendering. Writes
 * never fail individually: the first allocation failure (or exceeding
 * `limit` when non-zero) sets `failed`, later writes are ignored, and
 * bs_wbuf_status() reports it once at the end.
 */
#ifndef BROKERSIDE_BUF_H
#define BROKERSIDE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/status.h"

typedef struct bs_buf {
    uint8_t *data;
    size_t cap; /* fixed capacity */
    size_t rd;  /* first unread byte */
    size_t wr;  /* one past the last written byte */
} bs_buf;

/* Allocate `cap` bytes. The buffer must be released with bs_buf_free(). */
bs_status bs_buf_init(bs_buf *b, size_t cap) BS_WUR;
/* Release the storage; safe on a zeroed or already-freed buffer. */
void bs_buf_free(bs_buf *b);
/* Number of unread bytes. */
static inline size_t bs_buf_readable(const bs_buf *b) { return b->wr - b->rd; }
/* Contiguous free space after `wr` (call bs_buf_compact() first to maximise it). */
static inline size_t bs_buf_tail_room(const bs_buf *b) { return b->cap - b->wr; }
/* Total free space (what compaction would make contiguous). */
static inline size_t bs_buf_free_space(const bs_buf *b) { return b->cap - bs_buf_readable(b); }
static inline uint8_t *bs_buf_read_ptr(bs_buf *b) { return b->data + b->rd; }
static inline uint8_t *bs_buf_write_ptr(bs_buf *b) { return b->data + b->wr; }
/* Mark `n` bytes as written after filling bs_buf_write_ptr(); n <= tail room. */
void bs_buf_produce(bs_buf *b, size_t n);
/* Mark `n` bytes as consumed; n <= readable. Resets offsets when empty. */
void bs_buf_consume(bs_buf *b, size_t n);
/* Move unread bytes to offset 0 so the whole free space is contiguous. */
void bs_buf_compact(bs_buf *b);
/* Copy `len` bytes in (compacting if needed); BS_E_FULL if they do not fit. */
bs_status bs_buf_append(bs_buf *b, const void *p, size_t len) BS_WUR;

typedef struct bs_wbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0 = unlimited; otherwise len may never exceed it */
    bool failed;
    bool over_limit; /* failed because `limit` would be exceeded */
} bs_wbuf;

/* Start empty; no allocation until the first write. `limit` 0 = unlimited. */
void bs_wbuf_init(bs_wbuf *w, size_t limit);
/* Release storage and reset to empty. */
void bs_wbuf_free(bs_wbuf *w);
/* Forget the contents but keep the storage and limit; clears `failed`. */
void bs_wbuf_reset(bs_wbuf *w);
/* BS_OK, or BS_E_NOMEM / BS_E_TOO_LARGE if any write failed. */
bs_status bs_wbuf_status(const bs_wbuf *w) BS_WUR;
/* Make room for `extra` more bytes; false (and `failed` set) if impossible. */
bool bs_wbuf_reserve(bs_wbuf *w, size_t extra);
void bs_wbuf_put(bs_wbuf *w, const void *p, size_t len);
void bs_wbuf_put_str(bs_wbuf *w, const char *s);
void bs_wbuf_printf(bs_wbuf *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bs_wbuf_put_u8(bs_wbuf *w, uint8_t v);
void bs_wbuf_put_be16(bs_wbuf *w, uint16_t v);
void bs_wbuf_put_be32(bs_wbuf *w, uint32_t v);
void bs_wbuf_put_be64(bs_wbuf *w, uint64_t v);
/* Unsigned LEB128 varint (Kafka UNSIGNED_VARINT). */
void bs_wbuf_put_uvarint(bs_wbuf *w, uint32_t v);
/* Zig-zag varint / varlong (Kafka VARINT / VARLONG). */
void bs_wbuf_put_varint(bs_wbuf *w, int32_t v);
void bs_wbuf_put_varlong(bs_wbuf *w, int64_t v);
void bs_wbuf_put_uvarlong(bs_wbuf *w, uint64_t v);
/* Overwrite 4 bytes at `off` (< len) with a big-endian value (length back-patching). */
void bs_wbuf_patch_be32(bs_wbuf *w, size_t off, uint32_t v);
/* Append s[0..len) as a JSON string literal, quotes included: the one JSON
 * string escaper. Valid UTF-8 is kept as is; '"', '\\', control characters
 * and DEL are escaped; a byte that starts no valid UTF-8 sequence becomes
 * \ufffd, so text from the wire or from files can never produce invalid
 * JSON. */
void bs_wbuf_put_json_string(bs_wbuf *w, const char *s, size_t len);

#endif
