/*
 * record_batch.h - Kafka record batch v2 (magic 2) codec.
 *
 * Layout (big-endian): baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 |
 * magic int8 | crc uint32 (CRC-32C of everything after it) | attributes int16 |
 * lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64 | producerId int64 |
 * producerEpoch int16 | baseSequence int32 | recordCount int32 | records (compressed as a
 * whole when attributes bits 0-2 say so). Each record: length varint | attributes int8 |
 * timestampDelta varlong | offsetDelta varint | keyLength varint (-1 = null) | key |
 * valueLength varint (-1 = null) | value | headerCount varint |
 * (headerKeyLength varint | headerKey | headerValueLength varint (-1 = null) | headerValue)*.
 *
 * Parsing never copies or owns the input: views point into the caller's
 * bytes (or into a bs_records' own decompressed buffer), which must outlive
 * them. Everything is read through bs_cursor; counts and lengths are checked
 * against the bytes actually present. Not thread-safe per object; no global state.
 */
#ifndef BROKERSIDE_RECORD_BATCH_H
#define BROKERSIDE_RECORD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/cursor.h"
#include "brokerside/status.h"

/* Bytes before the records: the fixed v2 header. */
#define BS_BATCH_HEADER_LEN 61
/* batchLength counts from partitionLeaderEpoch on: the header minus baseOffset and batchLength. */
#define BS_BATCH_LENGTH_OFFSET 12
#define BS_BATCH_CRC_OFFSET 17
#define BS_BATCH_ATTR_OFFSET 21

#define BS_BATCH_ATTR_CODEC_MASK 0x07
#define BS_BATCH_ATTR_TIMESTAMP_TYPE 0x08 /* 1 = LogAppendTime */
#define BS_BATCH_ATTR_TRANSACTIONAL 0x10
#define BS_BATCH_ATTR_CONTROL 0x20
#define BS_BATCH_ATTR_DELETE_HORIZON 0x40

/* One parsed batch header plus views of its bytes. */
typedef struct bs_record_batch {
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
    const uint8_t *raw; /* the whole batch: BS_BATCH_LENGTH_OFFSET + batch_length bytes */
    size_t raw_len;
    const uint8_t *records; /* the records section as stored (maybe compressed) */
    size_t records_len;
} bs_record_batch;

/* The compression codec (bs_codec value, 0-7) from the attributes. */
static inline int bs_record_batch_codec(const bs_record_batch *b)
{
    return b->attributes & BS_BATCH_ATTR_CODEC_MASK;
}
/* True for control batches (transaction markers). */
static inline bool bs_record_batch_is_control(const bs_record_batch *b)
{
    return (b->attributes & BS_BATCH_ATTR_CONTROL) != 0;
}
/* True for batches written inside a transaction. */
static inline bool bs_record_batch_is_transactional(const bs_record_batch *b)
{
    return (b->attributes & BS_BATCH_ATTR_TRANSACTIONAL) != 0;
}

/* Parse exactly one complete batch occupying all `len` bytes at `p` and verify
 * its CRC-32C. BS_E_SHORT if the bytes end before the batch does,
 * BS_E_UNSUPPORTED for magic 0/1 message sets, BS_E_MALFORMED for anything
 * else wrong (trailing bytes, bad length, unknown magic, negative count, CRC mismatch). */
bs_status bs_record_batch_parse(const uint8_t *p, size_t len, bs_record_batch *out) BS_WUR;

/* What bs_batch_iter_next() found. */
typedef enum bs_batch_kind {
    BS_BATCH_END = 0,     /* no bytes left */
    BS_BATCH_FULL = 1,    /* a complete, CRC-verified v2 batch in `batch` */
    BS_BATCH_PARTIAL = 2, /* trailing bytes that do not hold a whole batch (a Fetch cut by
                             max bytes): `batch.raw`/`raw_len` cover them, other fields unset */
} bs_batch_kind;

/* Iterator over the batches of one records blob (a Produce or Fetch partition's records). */
typedef struct bs_batch_iter {
    bs_cursor c;
} bs_batch_iter;

/* Start iterating the `len` bytes at `p` (not copied; they must outlive the iterator). */
static inline void bs_batch_iter_init(bs_batch_iter *it, const uint8_t *p, size_t len)
{
    bs_cursor_init(&it->c, p, len);
}

/* Step to the next batch. BS_OK with *kind set (a partial batch is reported once,
 * then BS_BATCH_END). BS_E_UNSUPPORTED when the next entry is a magic 0/1 message
 * set, BS_E_MALFORMED for a corrupt batch; after an error the iterator is stuck. */
bs_status bs_batch_iter_next(bs_batch_iter *it, bs_batch_kind *kind, bs_record_batch *batch) BS_WUR;

/* One record: views into the records buffer. Null key/value: pointer NULL, length -1. */
typedef struct bs_record {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value;
    int32_t value_len;
    uint32_t header_count;
    const uint8_t *headers; /* the encoded headers, count excluded: walk with bs_header_next() */
    size_t headers_len;
    const uint8_t *raw; /* the whole record, its length prefix excluded */
    size_t raw_len;
    size_t value_field_off; /* offset in `raw` of the valueLength varint */
    size_t tail_off;        /* offset in `raw` just past the value (the header count) */
} bs_record;

/* The records of one batch, decompressed if needed. */
typedef struct bs_records {
    bs_wbuf plain; /* owns the decompressed bytes (empty for uncompressed batches) */
    bs_cursor c;   /* over the plain records */
    int32_t remaining;
} bs_records;

/* Prepare to walk `batch`'s records, decompressing into `r`'s own buffer with at
 * most `limit` decompressed bytes (BS_E_TOO_LARGE beyond; uncompressed records are
 * used in place). BS_E_UNSUPPORTED for codec values 5-7, BS_E_MALFORMED for corrupt
 * compressed data or a record count the bytes cannot hold. `r` must be released
 * with bs_records_free() whatever this returns; `batch`'s bytes must outlive `r`. */
bs_status bs_records_open(const bs_record_batch *batch, size_t limit, bs_records *r) BS_WUR;

/* Parse the next record into *rec and set *done false; at the end set *done true.
 * BS_E_MALFORMED for a bad record, fewer records than counted, or bytes left over
 * after the last one. The views in *rec live as long as `r`. */
bs_status bs_records_next(bs_records *r, bs_record *rec, bool *done) BS_WUR;

/* Release the decompressed bytes owned by `r` (views from it become invalid). */
void bs_records_free(bs_records *r);

/* Parse one header from `c` (positioned inside bs_record.headers). Null value:
 * pointer NULL, length -1. A header key is never null (negative length is malformed). */
bs_status bs_header_next(bs_cursor *c, const uint8_t **key, int32_t *key_len, const uint8_t **value,
                         int32_t *value_len) BS_WUR;

/* Value rewriting callback, called once per record of a non-control batch, in
 * order. To replace the value, write the new bytes to `new_value` (empty on
 * entry) and set *replace = true; leave *replace false to keep it. A null value
 * (tombstone) can be kept or replaced, never created. Any status other than
 * BS_OK aborts the rebuild and is returned to the caller. */
typedef bs_status (*bs_record_value_fn)(void *ctx, const bs_record_batch *batch,
                                        const bs_record *rec, bs_wbuf *new_value, bool *replace);

/* Append to `out` a copy of `batch` whose record values went through `fn`:
 * records re-encoded (their key, headers, attributes, deltas byte for byte),
 * recompressed with the same codec, batchLength and CRC-32C recomputed, every
 * other header field unchanged. Control batches are appended unchanged without
 * calling `fn`. `limit` bounds the decompressed records size. On error `out` is
 * truncated back to its length on entry. */
bs_status bs_record_batch_transform(const bs_record_batch *batch, size_t limit,
                                    bs_record_value_fn fn, void *ctx, bs_wbuf *out) BS_WUR;

/* Transform every batch of a records blob into `out` (see bs_record_batch_transform);
 * a partial trailing batch is appended as it is. `limit` bounds the decompressed
 * records of ALL batches together (BS_E_TOO_LARGE as soon as the next batch would
 * pass it, before its work is done). *plain_used (may be NULL) gets the decompressed
 * bytes processed, also on error. BS_E_UNSUPPORTED for magic 0/1 message sets, or
 * any error of the per-batch transform; `out` rolls back on error. */
bs_status bs_records_blob_transform(const uint8_t *p, size_t len, size_t limit,
                                    bs_record_value_fn fn, void *ctx, bs_wbuf *out,
                                    size_t *plain_used) BS_WUR;

/* A record to encode with bs_record_batch_build(). Null key/value: pointer NULL. */
typedef struct bs_record_spec {
    int64_t timestamp_delta;
    int32_t offset_delta;
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value;
    int32_t value_len;
    const uint8_t *headers; /* encoded headers (as in bs_record.headers), count separate */
    size_t headers_len;
    uint32_t header_count;
} bs_record_spec;

/* Encode a batch from header fields in `hdr` (base_offset, partition_leader_epoch,
 * attributes (codec included), last_offset_delta, timestamps, producer fields; the
 * rest is ignored) and `n` records, compressing with the attributes' codec, and
 * append it to `out` with batchLength, recordCount and CRC-32C computed. */
bs_status bs_record_batch_build(const bs_record_batch *hdr, const bs_record_spec *recs, size_t n,
                                bs_wbuf *out) BS_WUR;

#endif
