/* compression.c - Kafka's record batch codecs over zlib, snappy, lz4 frame and zstd (see
 * kafka_compression.h). */
#include "brokerside/kafka_compression.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "brokerside/cursor.h"

/* Step size for growing the output while streaming decoders run. */
#define OUT_CHUNK (64 * 1024)
/* xerial block size used by the Java and Python clients. */
#define XERIAL_BLOCK (32 * 1024)
/* Kafka's default zstd level (compression.zstd.level). */
#define ZSTD_LEVEL 3

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};

/* Contract in kafka_compression.h. */
const char *bs_codec_name(int codec)
{
    switch (codec) {
    case BS_CODEC_NONE:
        return "none";
    case BS_CODEC_GZIP:
        return "gzip";
    case BS_CODEC_SNAPPY:
        return "snappy";
    case BS_CODEC_LZ4:
        return "lz4";
    case BS_CODEC_ZSTD:
        return "zstd";
    default:
        return "unknown";
    }
}

/* Reserve up to OUT_CHUNK bytes of room in `out` without letting the decoded
 * total (out->len - start) pass `limit` + 1: one byte beyond the limit is how a
 * decoder shows that the output is too large. Sets *room to the usable space. */
static bs_status out_room(bs_wbuf *out, size_t start, size_t limit, size_t *room)
{
    size_t produced = out->len - start;
    size_t allowed = limit - produced + 1; /* produced <= limit holds on every call */
    size_t want = allowed < OUT_CHUNK ? allowed : OUT_CHUNK;
    if (!bs_wbuf_reserve(out, want)) return bs_wbuf_status(out);
    *room = want;
    return BS_OK;
}

/* gzip (RFC 1952) at zlib's default level. */
static bs_status gzip_compress(const uint8_t *in, size_t len, bs_wbuf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* 15 + 16: a gzip wrapper rather than zlib's. */
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return BS_E_NOMEM;
    bs_status st = BS_OK;
    uLong bound = deflateBound(&zs, (uLong)len);
    if (!bs_wbuf_reserve(out, bound)) {
        st = bs_wbuf_status(out);
        goto out;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out->data + out->len;
    zs.avail_out = (uInt)bound;
    /* deflateBound guarantees one Z_FINISH call completes. */
    if (len > UINT32_MAX || deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        st = len > UINT32_MAX ? BS_E_TOO_LARGE : BS_E_NOMEM;
        goto out;
    }
    out->len += zs.total_out;
out:
    deflateEnd(&zs);
    return st;
}

/* gzip decoding; concatenated gzip members are accepted (java.util.zip.GZIPInputStream does). */
static bs_status gzip_decompress(const uint8_t *in, size_t len, size_t limit, bs_wbuf *out,
                                 size_t start)
{
    if (len > UINT32_MAX) return BS_E_TOO_LARGE;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) return BS_E_NOMEM;
    bs_status st = BS_OK;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    bool done = false;
    while (!done) {
        size_t room = 0;
        BS_GUARD_GOTO(st, out_room(out, start, limit, &room), out);
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)room;
        int rc = inflate(&zs, Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        if (out->len - start > limit) {
            st = BS_E_TOO_LARGE;
            goto out;
        }
        if (rc == Z_STREAM_END) {
            if (zs.avail_in == 0) {
                done = true;
            } else if (inflateReset(&zs) != Z_OK) {
                st = BS_E_MALFORMED;
                goto out;
            }
        } else if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
            st = BS_E_MALFORMED; /* input ended inside a member */
            goto out;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            st = rc == Z_MEM_ERROR ? BS_E_NOMEM : BS_E_MALFORMED;
            goto out;
        }
    }
out:
    inflateEnd(&zs);
    return st;
}

/* Xerial framing: header, then each XERIAL_BLOCK of input as int32 length + raw snappy. */
static bs_status snappy_compress_xerial(const uint8_t *in, size_t len, bs_wbuf *out)
{
    bs_wbuf_put(out, xerial_magic, sizeof xerial_magic);
    bs_wbuf_put_be32(out, 1); /* version */
    bs_wbuf_put_be32(out, 1); /* minimum compatible version */
    /* Empty input is the bare header, as the Java and Python clients write it. */
    for (size_t off = 0; off < len;) {
        size_t n = len - off < XERIAL_BLOCK ? len - off : XERIAL_BLOCK;
        size_t max = snappy_max_compressed_length(n);
        if (!bs_wbuf_reserve(out, 4 + max)) break;
        size_t clen = max;
        if (snappy_compress((const char *)in + off, n, (char *)out->data + out->len + 4, &clen) !=
            SNAPPY_OK)
            return BS_E_NOMEM;
        bs_wbuf_put_be32(out, (uint32_t)clen);
        out->len += clen;
        off += n;
    }
    return bs_wbuf_status(out);
}

/* One raw snappy buffer, sized from its own header before any allocation. */
static bs_status snappy_block(const uint8_t *in, size_t len, size_t limit, bs_wbuf *out,
                              size_t start)
{
    size_t n;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK) return BS_E_MALFORMED;
    if (n > limit - (out->len - start)) return BS_E_TOO_LARGE;
    /* At least one byte so the destination is a real pointer for empty blocks too. */
    if (!bs_wbuf_reserve(out, n ? n : 1)) return bs_wbuf_status(out);
    size_t got = n;
    if (snappy_uncompress((const char *)in, len, (char *)out->data + out->len, &got) != SNAPPY_OK ||
        got != n)
        return BS_E_MALFORMED;
    out->len += n;
    return BS_OK;
}

/* Xerial framed when the magic is there, raw snappy otherwise. */
static bs_status snappy_decompress(const uint8_t *in, size_t len, size_t limit, bs_wbuf *out,
                                   size_t start)
{
    if (len < 16 || memcmp(in, xerial_magic, sizeof xerial_magic) != 0)
        return snappy_block(in, len, limit, out, start);
    bs_cursor c;
    bs_cursor_init(&c, in, len);
    BS_GUARD(bs_cursor_skip(&c, 16)); /* magic, version, compatible version: any value decodes */
    while (bs_cursor_remaining(&c) > 0) {
        uint32_t blen;
        const uint8_t *block;
        if (bs_read_be32(&c, &blen) != BS_OK || bs_read_bytes(&c, blen, &block) != BS_OK)
            return BS_E_MALFORMED;
        BS_GUARD(snappy_block(block, blen, limit, out, start));
    }
    return BS_OK;
}

/* LZ4 frame with the settings of Kafka's KafkaLZ4BlockOutputStream: independent
 * 64 KiB blocks, no content size, no checksums beyond the header's. */
static bs_status lz4_compress(const uint8_t *in, size_t len, bs_wbuf *out)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    size_t bound = LZ4F_compressFrameBound(len, &prefs);
    if (!bs_wbuf_reserve(out, bound)) return bs_wbuf_status(out);
    size_t n = LZ4F_compressFrame(out->data + out->len, bound, in, len, &prefs);
    if (LZ4F_isError(n)) return BS_E_NOMEM;
    out->len += n;
    return BS_OK;
}

/* Streaming LZ4 frame decoding, so output is bounded chunk by chunk; several frames in a row
 * are accepted. */
static bs_status lz4_decompress(const uint8_t *in, size_t len, size_t limit, bs_wbuf *out,
                                size_t start)
{
    LZ4F_dctx *dctx = NULL;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION))) return BS_E_NOMEM;
    bs_status st = BS_OK;
    size_t pos = 0, hint = 1;
    if (len == 0) st = BS_E_MALFORMED;
    while (st == BS_OK && pos < len) {
        size_t room = 0;
        BS_GUARD_GOTO(st, out_room(out, start, limit, &room), out);
        size_t src = len - pos, dst = room;
        hint = LZ4F_decompress(dctx, out->data + out->len, &dst, in + pos, &src, NULL);
        if (LZ4F_isError(hint)) {
            st = BS_E_MALFORMED;
            goto out;
        }
        pos += src;
        out->len += dst;
        if (out->len - start > limit)
            st = BS_E_TOO_LARGE;
        else if (src == 0 && dst == 0)
            st = BS_E_MALFORMED; /* no progress: cannot happen on valid input */
    }
    /* Output may still be buffered inside the context after all input is consumed. */
    while (st == BS_OK && hint != 0) {
        size_t room = 0;
        BS_GUARD_GOTO(st, out_room(out, start, limit, &room), out);
        size_t src = 0, dst = room;
        hint = LZ4F_decompress(dctx, out->data + out->len, &dst, NULL, &src, NULL);
        if (LZ4F_isError(hint)) st = BS_E_MALFORMED;
        out->len += LZ4F_isError(hint) ? 0 : dst;
        if (st == BS_OK && out->len - start > limit)
            st = BS_E_TOO_LARGE;
        else if (st == BS_OK && hint != 0 && dst == 0)
            st = BS_E_MALFORMED; /* frame is truncated */
    }
out:
    LZ4F_freeDecompressionContext(dctx);
    return st;
}

/* One zstd frame at Kafka's default level. */
static bs_status zstd_compress(const uint8_t *in, size_t len, bs_wbuf *out)
{
    size_t bound = ZSTD_compressBound(len);
    if (!bs_wbuf_reserve(out, bound)) return bs_wbuf_status(out);
    size_t n = ZSTD_compress(out->data + out->len, bound, in, len, ZSTD_LEVEL);
    if (ZSTD_isError(n)) return BS_E_NOMEM;
    out->len += n;
    return BS_OK;
}

/* Streaming zstd decoding (bounded output); consecutive frames are accepted. */
static bs_status zstd_decompress(const uint8_t *in, size_t len, size_t limit, bs_wbuf *out,
                                 size_t start)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d) return BS_E_NOMEM;
    bs_status st = BS_OK;
    /* A frame may declare a window (decoder memory) far larger than its content; allow
     * what ordinary encoders use (2^23 covers levels 1-19) or what the limit needs. */
    int wlog = 23;
    while (wlog < 27 && ((size_t)1 << wlog) < limit)
        wlog++;
    if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, wlog))) {
        st = BS_E_NOMEM;
        goto out;
    }
    ZSTD_inBuffer ib = {in, len, 0};
    size_t ret = 1;
    if (len == 0) st = BS_E_MALFORMED;
    /* Loop until all input is read and the last frame is complete (ret == 0). */
    while (st == BS_OK && (ib.pos < ib.size || ret != 0)) {
        size_t room = 0;
        BS_GUARD_GOTO(st, out_room(out, start, limit, &room), out);
        ZSTD_outBuffer ob = {out->data + out->len, room, 0};
        ret = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(ret)) {
            ZSTD_ErrorCode ec = ZSTD_getErrorCode(ret);
            st = ec == ZSTD_error_memory_allocation               ? BS_E_NOMEM
                 : ec == ZSTD_error_frameParameter_windowTooLarge ? BS_E_TOO_LARGE
                                                                  : BS_E_MALFORMED;
            goto out;
        }
        out->len += ob.pos;
        if (out->len - start > limit) st = BS_E_TOO_LARGE;
        /* Input exhausted and frame unfinished although output space was left: truncated. */
        else if (ret != 0 && ib.pos == ib.size && ob.pos < ob.size)
            st = BS_E_MALFORMED;
    }
out:
    ZSTD_freeDCtx(d);
    return st;
}

/* Contract in kafka_compression.h. */
bs_status bs_compress(int codec, const uint8_t *in, size_t len, bs_wbuf *out)
{
    size_t start = out->len;
    bs_status st;
    switch (codec) {
    case BS_CODEC_NONE:
        bs_wbuf_put(out, in, len);
        st = bs_wbuf_status(out);
        break;
    case BS_CODEC_GZIP:
        st = gzip_compress(in, len, out);
        break;
    case BS_CODEC_SNAPPY:
        st = snappy_compress_xerial(in, len, out);
        break;
    case BS_CODEC_LZ4:
        st = lz4_compress(in, len, out);
        break;
    case BS_CODEC_ZSTD:
        st = zstd_compress(in, len, out);
        break;
    default:
        return BS_E_UNSUPPORTED;
    }
    if (st != BS_OK) out->len = start;
    return st;
}

/* Contract in kafka_compression.h. */
bs_status bs_decompress(int codec, const uint8_t *in, size_t len, size_t limit, bs_wbuf *out)
{
    size_t start = out->len;
    bs_status st;
    switch (codec) {
    case BS_CODEC_NONE:
        if (len > limit) return BS_E_TOO_LARGE;
        bs_wbuf_put(out, in, len);
        st = bs_wbuf_status(out);
        break;
    case BS_CODEC_GZIP:
        st = gzip_decompress(in, len, limit, out, start);
        break;
    case BS_CODEC_SNAPPY:
        st = snappy_decompress(in, len, limit, out, start);
        break;
    case BS_CODEC_LZ4:
        st = lz4_decompress(in, len, limit, out, start);
        break;
    case BS_CODEC_ZSTD:
        st = zstd_decompress(in, len, limit, out, start);
        break;
    default:
        return BS_E_UNSUPPORTED;
    }
    if (st != BS_OK) out->len = start;
    return st;
}
