/*
 * fuzz_decompress.c - libFuzzer target for bs_decompress (gzip, snappy raw and
 * xerial, lz4 frame, zstd) with the size limits asserted: whatever the input
 * (hostile ratios included), a success never returns more than `limit` bytes,
 * a failure never leaves bytes behind, and no call allocates past the limit
 * (ASan's rss limit in run.sh catches a bomb that would). The first byte
 * picks the codec, the next two the limit (1 byte .. 1 MiB); every accepted
 * output must also survive a compress/decompress round trip under the same
 * limit plus the codec's framing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/buf.h"
#include "brokerside/kafka_compression.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    int codec = 1 + data[0] % 4;
    size_t limit = (((size_t)data[1] << 8) | data[2]) * 16 + 1;
    const uint8_t *in = data + 3;
    size_t len = size - 3;
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    bs_wbuf_put(&out, "x", 1); /* output is appended after what is there */
    bs_status st = bs_decompress(codec, in, len, limit, &out);
    if (st == BS_OK) {
        if (out.len - 1 > limit) abort();
        bs_wbuf z, back;
        bs_wbuf_init(&z, 0);
        bs_wbuf_init(&back, 0);
        if (bs_compress(codec, out.data + 1, out.len - 1, &z) == BS_OK) {
            if (bs_decompress(codec, z.data, z.len, limit, &back) != BS_OK) abort();
            if (back.len != out.len - 1 ||
                (back.len && memcmp(back.data, out.data + 1, back.len) != 0))
                abort();
        }
        bs_wbuf_free(&z);
        bs_wbuf_free(&back);
    } else if (out.len != 1) {
        abort(); /* a failure leaves the buffer as it was */
    }
    bs_wbuf_free(&out);
    return 0;
}
