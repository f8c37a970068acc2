/*
 * kafka_compression.h - the compression codecs of Kafka record batches
 * (attributes bits 0-2), with Kafka's framings:
 *   none(0), gzip(1) (RFC 1952, zlib), snappy(2) (xerial framing: "\x82SNAPPY\0",
 *   int32 version, int32 compatible version, then blocks of int32 length + raw
 *   snappy; raw snappy is also accepted when decoding, as the Java client does),
 *   lz4(3) (LZ4 frame format, independent 64 KiB blocks, as Kafka writes it),
 *   zstd(4) (zstd frames).
 *
 * Every function appends to a caller-owned bs_wbuf and leaves its earlier
 * contents alone; on error the wbuf is truncated back to its length on entry.
 * Decompression never writes more than `limit` bytes: input that would expand
 * beyond it (a zip bomb, or simply too big) gets BS_E_TOO_LARGE. Corrupt input
 * gets BS_E_MALFORMED. All functions are thread-safe (no shared state).
 */
#ifndef BROKERSIDE_KAFKA_COMPRESSION_H
#define BROKERSIDE_KAFKA_COMPRESSION_H

#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/status.h"

typedef enum bs_codec {
    BS_CODEC_NONE = 0,
    BS_CODEC_GZIP = 1,
    BS_CODEC_SNAPPY = 2,
    BS_CODEC_LZ4 = 3,
    BS_CODEC_ZSTD = 4,
} bs_codec;

/* "none", "gzip", "snappy", "lz4", "zstd", or "unknown" for other values. */
const char *bs_codec_name(int codec);

/* Compress `len` bytes at `in` with `codec` and append the result to `out`.
 * BS_E_UNSUPPORTED for a codec value outside 0-4, BS_E_NOMEM, or BS_E_TOO_LARGE
 * when `out`'s limit is exceeded. BS_CODEC_NONE appends the bytes as they are. */
bs_status bs_compress(int codec, const uint8_t *in, size_t len, bs_wbuf *out) BS_WUR;

/* Decompress `len` bytes at `in` and append the plain bytes to `out`, at most
 * `limit` of them. BS_E_TOO_LARGE if the output would exceed `limit`,
 * BS_E_MALFORMED for corrupt, truncated or trailing-garbage input,
 * BS_E_UNSUPPORTED for an unknown codec value, BS_E_NOMEM. */
bs_status bs_decompress(int codec, const uint8_t *in, size_t len, size_t limit,
                        bs_wbuf *out) BS_WUR;

#endif
