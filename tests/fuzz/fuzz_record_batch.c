/*
 * fuzz_record_batch.c - libFuzzer target for the record batch v2 codec and the
 * compression codecs under it (src/kafka/record_batch.c, compression.c).
 *
 * Input: one flag byte, then a records blob. Flag bit 0 set: the CRC of every
 * complete-looking batch is recomputed first, so mutations get past the checksum
 * and reach header, decompression and record parsing. The blob is walked and
 * rewritten with a value-prefixing callback; a successful rewrite must parse
 * again with the same number of batches and records.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/crc32c.h"
#include "brokerside/record_batch.h"

#define LIMIT (4u << 20)

/* Prefix every non-null value with "E:" and count calls. */
static bs_status prefix(void *ctx, const bs_record_batch *b, const bs_record *rec, bs_wbuf *nv,
                        bool *replace)
{
    (void)b;
    (*(size_t *)ctx)++;
    if (!rec->value) return BS_OK;
    bs_wbuf_put(nv, "E:", 2);
    bs_wbuf_put(nv, rec->value, (size_t)rec->value_len);
    *replace = true;
    return BS_OK;
}

/* Recompute the CRC of each batch whose length field fits in the blob. */
static void fix_crcs(uint8_t *p, size_t len)
{
    size_t off = 0;
    while (len - off > BS_BATCH_HEADER_LEN) {
        uint8_t *b = p + off;
        uint32_t blen = (uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11];
        if (blen > len - off - BS_BATCH_LENGTH_OFFSET || blen < BS_BATCH_HEADER_LEN - 12) return;
        size_t total = blen + BS_BATCH_LENGTH_OFFSET;
        uint32_t c = bs_crc32c(0, b + BS_BATCH_ATTR_OFFSET, total - BS_BATCH_ATTR_OFFSET);
        b[17] = (uint8_t)(c >> 24), b[18] = (uint8_t)(c >> 16), b[19] = (uint8_t)(c >> 8),
        b[20] = (uint8_t)c;
        off += total;
    }
}

/* Count full batches and records of a blob; false on any error. */
static bool count(const uint8_t *p, size_t len, size_t *batches, size_t *records)
{
    bs_batch_iter it;
    bs_batch_iter_init(&it, p, len);
    *batches = *records = 0;
    for (;;) {
        bs_batch_kind k;
        bs_record_batch b;
        if (bs_batch_iter_next(&it, &k, &b) != BS_OK) return false;
        if (k == BS_BATCH_END) return true;
        if (k == BS_BATCH_PARTIAL) continue;
        (*batches)++;
        bs_records r;
        bs_status st = bs_records_open(&b, LIMIT, &r);
        for (bool done = false; st == BS_OK && !done;) {
            bs_record rec;
            st = bs_records_next(&r, &rec, &done);
            if (st == BS_OK && !done) (*records)++;
        }
        bs_records_free(&r);
        if (st != BS_OK) return false;
    }
}

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t *blob = malloc(size);
    if (!blob) return 0;
    size_t len = size - 1;
    memcpy(blob, data + 1, len);
    if (data[0] & 1) fix_crcs(blob, len);
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    size_t calls = 0, used = 0;
    bs_status st = bs_records_blob_transform(blob, len, LIMIT, prefix, &calls, &out, &used);
    if (st == BS_OK) {
        size_t b1, r1, b2, r2;
        bool ok1 = count(blob, len, &b1, &r1);
        bool ok2 = count(out.data, out.len, &b2, &r2);
        /* A successful rewrite parses exactly as its input did (control batches are copied
         * without being walked, so both may fail to walk, but only together). */
        if (ok1 != ok2 || (ok1 && (b1 != b2 || r1 != r2))) abort();
    } else if (out.len != 0) {
        abort(); /* errors must roll the output back */
    }
    /* The budget covers every batch together: never more unpacked than allowed
     * (one batch may pass it only if uncompressed, i.e. no larger than the input). */
    if (used > LIMIT && used > len) abort();
    bs_wbuf_free(&out);
    free(blob);
    return 0;
}
