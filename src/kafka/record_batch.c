/* record_batch.c - record batch v2 parsing, record iteration and value rewriting (see
 * record_batch.h). */
#include "brokerside/record_batch.h"

#include <openssl/crypto.h>
#include <string.h>

#include "brokerside/crc32c.h"
#include "brokerside/kafka_compression.h"

/* Smallest batchLength: the header after the batchLength field. */
#define MIN_BATCH_LENGTH (BS_BATCH_HEADER_LEN - BS_BATCH_LENGTH_OFFSET)
/* Offset of the magic byte; the same in v0/v1 message sets, which is how they are told apart. */
#define MAGIC_OFFSET 16
/* Smallest encoded record: six one-byte fields plus a one-byte length prefix. */
#define MIN_RECORD_LEN 7

/* Contract in record_batch.h. */
bs_status bs_record_batch_parse(const uint8_t *p, size_t len, bs_record_batch *out)
{
    bs_cursor c;
    bs_cursor_init(&c, p, len);
    memset(out, 0, sizeof *out);
    if (len <= MAGIC_OFFSET) return BS_E_SHORT;
    if (p[MAGIC_OFFSET] == 0 || p[MAGIC_OFFSET] == 1) return BS_E_UNSUPPORTED;
    if (p[MAGIC_OFFSET] != 2) return BS_E_MALFORMED;
    BS_GUARD(bs_read_i64(&c, &out->base_offset));
    BS_GUARD(bs_read_i32(&c, &out->batch_length));
    if (out->batch_length < MIN_BATCH_LENGTH) return BS_E_MALFORMED;
    size_t total = (size_t)out->batch_length + BS_BATCH_LENGTH_OFFSET;
    if (total > len) return BS_E_SHORT;
    if (total < len) return BS_E_MALFORMED; /* exactly one batch was promised */
    BS_GUARD(bs_read_i32(&c, &out->partition_leader_epoch));
    BS_GUARD(bs_read_i8(&c, &out->magic));
    BS_GUARD(bs_read_be32(&c, &out->crc));
    BS_GUARD(bs_read_i16(&c, &out->attributes));
    BS_GUARD(bs_read_i32(&c, &out->last_offset_delta));
    BS_GUARD(bs_read_i64(&c, &out->base_timestamp));
    BS_GUARD(bs_read_i64(&c, &out->max_timestamp));
    BS_GUARD(bs_read_i64(&c, &out->producer_id));
    BS_GUARD(bs_read_i16(&c, &out->producer_epoch));
    BS_GUARD(bs_read_i32(&c, &out->base_sequence));
    BS_GUARD(bs_read_i32(&c, &out->record_count));
    if (out->record_count < 0) return BS_E_MALFORMED;
    if (bs_crc32c(0, p + BS_BATCH_ATTR_OFFSET, total - BS_BATCH_ATTR_OFFSET) != out->crc)
        return BS_E_MALFORMED;
    out->raw = p;
    out->raw_len = total;
    out->records = bs_cursor_ptr(&c);
    out->records_len = bs_cursor_remaining(&c);
    /* An uncompressed count can be checked now; a compressed one after decompression. */
    if (bs_record_batch_codec(out) == BS_CODEC_NONE &&
        (size_t)out->record_count > out->records_len / MIN_RECORD_LEN)
        return BS_E_MALFORMED;
    return BS_OK;
}

/* Contract in record_batch.h. */
bs_status bs_batch_iter_next(bs_batch_iter *it, bs_batch_kind *kind, bs_record_batch *batch)
{
    size_t rem = bs_cursor_remaining(&it->c);
    memset(batch, 0, sizeof *batch);
    if (rem == 0) {
        *kind = BS_BATCH_END;
        return BS_OK;
    }
    /* Only now: an empty blob may have a NULL base pointer. */
    const uint8_t *p = bs_cursor_ptr(&it->c);
    if (rem > MAGIC_OFFSET) {
        if (p[MAGIC_OFFSET] == 0 || p[MAGIC_OFFSET] == 1) return BS_E_UNSUPPORTED;
        if (p[MAGIC_OFFSET] != 2) return BS_E_MALFORMED;
        bs_cursor hc = it->c;
        int64_t base;
        int32_t blen;
        BS_GUARD(bs_read_i64(&hc, &base));
        BS_GUARD(bs_read_i32(&hc, &blen));
        if (blen < MIN_BATCH_LENGTH) return BS_E_MALFORMED;
        if ((size_t)blen + BS_BATCH_LENGTH_OFFSET <= rem) {
            size_t n = (size_t)blen + BS_BATCH_LENGTH_OFFSET;
            BS_GUARD(bs_record_batch_parse(p, n, batch));
            BS_GUARD(bs_cursor_skip(&it->c, n));
            *kind = BS_BATCH_FULL;
            return BS_OK;
        }
    }
    /* Too few bytes for the header or the announced length: the broker cut the
     * response at max bytes; clients skip such a tail, so it is kept, not rejected. */
    batch->raw = p;
    batch->raw_len = rem;
    BS_GUARD(bs_cursor_skip(&it->c, rem));
    *kind = BS_BATCH_PARTIAL;
    return BS_OK;
}

/* Contract in record_batch.h. */
bs_status bs_records_open(const bs_record_batch *batch, size_t limit, bs_records *r)
{
    bs_wbuf_init(&r->plain, 0);
    r->remaining = batch->record_count;
    if (bs_record_batch_codec(batch) == BS_CODEC_NONE) {
        bs_cursor_init(&r->c, batch->records, batch->records_len);
    } else {
        BS_GUARD(bs_decompress(bs_record_batch_codec(batch), batch->records, batch->records_len,
                               limit, &r->plain));
        bs_cursor_init(&r->c, r->plain.data, r->plain.len);
    }
    if ((size_t)batch->record_count > bs_cursor_remaining(&r->c) / MIN_RECORD_LEN)
        return BS_E_MALFORMED;
    return BS_OK;
}

/* Contract in record_batch.h. */
void bs_records_free(bs_records *r)
{
    bs_wbuf_free(&r->plain);
    r->remaining = 0;
}

/* Read a varint length where -1 means null; anything below is malformed. */
static bs_status read_nullable_len(bs_cursor *c, int32_t *len, const uint8_t **p)
{
    BS_GUARD(bs_read_varint(c, len));
    if (*len < -1) return BS_E_MALFORMED;
    *p = NULL;
    if (*len >= 0) BS_GUARD(bs_read_bytes(c, (size_t)*len, p));
    return BS_OK;
}

/* Contract in record_batch.h. */
bs_status bs_header_next(bs_cursor *c, const uint8_t **key, int32_t *key_len, const uint8_t **value,
                         int32_t *value_len)
{
    BS_GUARD(read_nullable_len(c, key_len, key));
    if (*key_len < 0) return BS_E_MALFORMED;
    return read_nullable_len(c, value_len, value);
}

/* Parse the body of one record (its length prefix already consumed) from `c`. */
static bs_status parse_record(bs_cursor *c, bs_record *rec)
{
    rec->raw = bs_cursor_ptr(c);
    rec->raw_len = bs_cursor_remaining(c);
    BS_GUARD(bs_read_i8(c, &rec->attributes));
    BS_GUARD(bs_read_varlong(c, &rec->timestamp_delta));
    BS_GUARD(bs_read_varint(c, &rec->offset_delta));
    BS_GUARD(read_nullable_len(c, &rec->key_len, &rec->key));
    rec->value_field_off = c->pos;
    BS_GUARD(read_nullable_len(c, &rec->value_len, &rec->value));
    rec->tail_off = c->pos;
    int32_t hcount;
    BS_GUARD(bs_read_varint(c, &hcount));
    /* Each header takes at least two bytes, which bounds a hostile count. */
    if (hcount < 0 || (size_t)hcount > bs_cursor_remaining(c) / 2) return BS_E_MALFORMED;
    rec->header_count = (uint32_t)hcount;
    rec->headers = bs_cursor_ptr(c);
    for (int32_t i = 0; i < hcount; i++) {
        const uint8_t *k, *v;
        int32_t kl, vl;
        BS_GUARD(bs_header_next(c, &k, &kl, &v, &vl));
    }
    rec->headers_len = (size_t)(bs_cursor_ptr(c) - rec->headers);
    return bs_cursor_remaining(c) == 0 ? BS_OK : BS_E_MALFORMED;
}

/* Contract in record_batch.h. */
bs_status bs_records_next(bs_records *r, bs_record *rec, bool *done)
{
    memset(rec, 0, sizeof *rec);
    if (r->remaining == 0) {
        *done = true;
        return bs_cursor_remaining(&r->c) == 0 ? BS_OK : BS_E_MALFORMED;
    }
    *done = false;
    int32_t len;
    bs_cursor sub;
    if (bs_read_varint(&r->c, &len) != BS_OK || len < MIN_RECORD_LEN - 1 ||
        bs_cursor_sub(&r->c, (size_t)len, &sub) != BS_OK)
        return BS_E_MALFORMED;
    if (parse_record(&sub, rec) != BS_OK) return BS_E_MALFORMED;
    r->remaining--;
    return BS_OK;
}

/* Bytes a zig-zag varint of `v` takes. */
static size_t varint_size(int32_t v)
{
    uint32_t u = ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
    size_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

/* Append one record to `w`: its fields from `rec` byte for byte, but with value `v`/`vlen`
 * (vlen -1 = null). */
static void put_record_with_value(bs_wbuf *w, const bs_record *rec, const uint8_t *v, int32_t vlen)
{
    size_t tail = rec->raw_len - rec->tail_off;
    size_t body = rec->value_field_off + varint_size(vlen) + (vlen > 0 ? (size_t)vlen : 0) + tail;
    if (body > INT32_MAX) {
        w->failed = w->over_limit = true; /* a record length must fit its varint */
        return;
    }
    bs_wbuf_put_varint(w, (int32_t)body);
    bs_wbuf_put(w, rec->raw, rec->value_field_off);
    bs_wbuf_put_varint(w, vlen);
    if (vlen > 0) bs_wbuf_put(w, v, (size_t)vlen);
    bs_wbuf_put(w, rec->raw + rec->tail_off, tail);
}

/* Compress `plain` records with `codec` after the 61 header bytes already at `out`+`start`,
 * then patch batchLength and the CRC. */
static bs_status finish_batch(bs_wbuf *out, size_t start, int codec, const bs_wbuf *plain)
{
    BS_GUARD(bs_wbuf_status(out));
    BS_GUARD(bs_compress(codec, plain->data, plain->len, out));
    size_t total = out->len - start;
    if (total - BS_BATCH_LENGTH_OFFSET > INT32_MAX) return BS_E_TOO_LARGE;
    bs_wbuf_patch_be32(out, start + 8, (uint32_t)(total - BS_BATCH_LENGTH_OFFSET));
    uint32_t crc =
        bs_crc32c(0, out->data + start + BS_BATCH_ATTR_OFFSET, total - BS_BATCH_ATTR_OFFSET);
    bs_wbuf_patch_be32(out, start + BS_BATCH_CRC_OFFSET, crc);
    return BS_OK;
}

/* bs_record_batch_transform, also reporting the batch's decompressed records
 * size in *plain_len (0 for a control batch). */
static bs_status batch_transform(const bs_record_batch *batch, size_t limit, bs_record_value_fn fn,
                                 void *ctx, bs_wbuf *out, size_t *plain_len)
{
    size_t start = out->len;
    *plain_len = 0;
    bs_records r;
    bs_wbuf plain, nv;
    bs_wbuf_init(&plain, 0);
    bs_wbuf_init(&nv, 0);
    bs_status st = BS_OK;
    bool r_open = false;
    if (bs_record_batch_is_control(batch)) {
        /* Transaction markers carry no user data and must reach clients as written. */
        bs_wbuf_put(out, batch->raw, batch->raw_len);
        st = bs_wbuf_status(out);
        goto out;
    }
    r_open = true;
    BS_GUARD_GOTO(st, bs_records_open(batch, limit, &r), out);
    *plain_len = bs_cursor_remaining(&r.c);
    for (;;) {
        bs_record rec;
        bool done, replace = false;
        BS_GUARD_GOTO(st, bs_records_next(&r, &rec, &done), out);
        if (done) break;
        bs_wbuf_reset(&nv);
        BS_GUARD_GOTO(st, fn(ctx, batch, &rec, &nv, &replace), out);
        BS_GUARD_GOTO(st, bs_wbuf_status(&nv), out);
        if (!replace) {
            put_record_with_value(&plain, &rec, rec.value, rec.value_len);
        } else if (nv.len > INT32_MAX) {
            st = BS_E_TOO_LARGE;
            goto out;
        } else {
            put_record_with_value(&plain, &rec, nv.data, (int32_t)nv.len);
        }
    }
    BS_GUARD_GOTO(st, bs_wbuf_status(&plain), out);
    bs_wbuf_put(out, batch->raw, BS_BATCH_HEADER_LEN);
    st = finish_batch(out, start, bs_record_batch_codec(batch), &plain);
out:
    if (r_open) bs_records_free(&r);
    /* New and re-encoded values may be plaintext (just encrypted, or just decrypted): do not
     * leave them in freed memory. */
    if (plain.data) OPENSSL_cleanse(plain.data, plain.cap);
    bs_wbuf_free(&plain);
    if (nv.data) OPENSSL_cleanse(nv.data, nv.cap);
    bs_wbuf_free(&nv);
    if (st != BS_OK) out->len = start;
    return st;
}

/* Contract in record_batch.h. */
bs_status bs_record_batch_transform(const bs_record_batch *batch, size_t limit,
                                    bs_record_value_fn fn, void *ctx, bs_wbuf *out)
{
    size_t plain_len;
    return batch_transform(batch, limit, fn, ctx, out, &plain_len);
}

/* Contract in record_batch.h. */
bs_status bs_records_blob_transform(const uint8_t *p, size_t len, size_t limit,
                                    bs_record_value_fn fn, void *ctx, bs_wbuf *out,
                                    size_t *plain_used)
{
    size_t start = out->len, used = 0;
    bs_batch_iter it;
    bs_batch_iter_init(&it, p, len);
    bs_status st = BS_OK;
    for (;;) {
        bs_batch_kind kind;
        bs_record_batch b;
        BS_GUARD_GOTO(st, bs_batch_iter_next(&it, &kind, &b), out);
        if (kind == BS_BATCH_END) break;
        if (kind == BS_BATCH_PARTIAL) {
            bs_wbuf_put(out, b.raw, b.raw_len);
            BS_GUARD_GOTO(st, bs_wbuf_status(out), out);
            continue;
        }
        /* one budget for the whole blob: a blob of many small bombs is one big bomb */
        size_t plain_len;
        size_t left = used < limit ? limit - used : 0; /* uncompressed batches are not capped */
        BS_GUARD_GOTO(st, batch_transform(&b, left, fn, ctx, out, &plain_len), out);
        used += plain_len;
    }
out:
    if (st != BS_OK) out->len = start;
    if (plain_used) *plain_used = used;
    return st;
}

/* Contract in record_batch.h. */
bs_status bs_record_batch_build(const bs_record_batch *hdr, const bs_record_spec *recs, size_t n,
                                bs_wbuf *out)
{
    if (n > INT32_MAX) return BS_E_TOO_LARGE;
    size_t start = out->len;
    bs_wbuf plain;
    bs_wbuf_init(&plain, 0);
    bs_status st = BS_OK;
    for (size_t i = 0; i < n; i++) {
        const bs_record_spec *s = &recs[i];
        if ((s->key_len < 0 && s->key) || (s->value_len < 0 && s->value) || s->key_len < -1 ||
            s->value_len < -1 || s->header_count > INT32_MAX) {
            st = BS_E_MALFORMED;
            goto out;
        }
        bs_wbuf body;
        bs_wbuf_init(&body, 0);
        bs_wbuf_put_u8(&body, 0); /* record attributes: unused, always 0 */
        bs_wbuf_put_varlong(&body, s->timestamp_delta);
        bs_wbuf_put_varint(&body, s->offset_delta);
        bs_wbuf_put_varint(&body, s->key ? s->key_len : -1);
        if (s->key) bs_wbuf_put(&body, s->key, (size_t)s->key_len);
        bs_wbuf_put_varint(&body, s->value ? s->value_len : -1);
        if (s->value) bs_wbuf_put(&body, s->value, (size_t)s->value_len);
        bs_wbuf_put_varint(&body, (int32_t)s->header_count);
        bs_wbuf_put(&body, s->headers, s->headers_len);
        st = bs_wbuf_status(&body);
        if (st == BS_OK && body.len > INT32_MAX) st = BS_E_TOO_LARGE;
        if (st == BS_OK) {
            bs_wbuf_put_varint(&plain, (int32_t)body.len);
            bs_wbuf_put(&plain, body.data, body.len);
        }
        bs_wbuf_free(&body);
        if (st != BS_OK) goto out;
    }
    BS_GUARD_GOTO(st, bs_wbuf_status(&plain), out);
    bs_wbuf_put_be64(out, (uint64_t)hdr->base_offset);
    bs_wbuf_put_be32(out, 0); /* batchLength, patched */
    bs_wbuf_put_be32(out, (uint32_t)hdr->partition_leader_epoch);
    bs_wbuf_put_u8(out, 2);
    bs_wbuf_put_be32(out, 0); /* crc, patched */
    bs_wbuf_put_be16(out, (uint16_t)hdr->attributes);
    bs_wbuf_put_be32(out, (uint32_t)hdr->last_offset_delta);
    bs_wbuf_put_be64(out, (uint64_t)hdr->base_timestamp);
    bs_wbuf_put_be64(out, (uint64_t)hdr->max_timestamp);
    bs_wbuf_put_be64(out, (uint64_t)hdr->producer_id);
    bs_wbuf_put_be16(out, (uint16_t)hdr->producer_epoch);
    bs_wbuf_put_be32(out, (uint32_t)hdr->base_sequence);
    bs_wbuf_put_be32(out, (uint32_t)n);
    st = finish_batch(out, start, hdr->attributes & BS_BATCH_ATTR_CODEC_MASK, &plain);
out:
    bs_wbuf_free(&plain);
    if (st != BS_OK) out->len = start;
    return st;
}
