/* fuzz_kafka_session.c - libFuzzer target: the Kafka session fed hostile
 * byte streams on both sides, in small chunks, through small buffers, the way
 * net/ drives it. Input: byte 0 = chunk size, byte 1 = where the input splits
 * into the client stream and the upstream stream, the rest = the streams. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/buf.h"
#include "brokerside/kafka_session.h"
#include "brokerside/log.h"

#define CAP 512

/* Move up to `chunk` bytes of the stream into `in`, run the filter, drop what
 * it forwarded (the "socket write"). Returns the filter's status. */
static bs_status step(const bs_session_ops *ops, void *st, bool client, const uint8_t *p,
                      size_t len, size_t *off, size_t chunk, bs_buf *in, bs_buf *fwd, bs_buf *back,
                      size_t *moved)
{
    size_t n = len - *off;
    if (n > chunk) n = chunk;
    if (n > bs_buf_free_space(in)) n = bs_buf_free_space(in);
    if (n) {
        bs_buf_compact(in);
        if (bs_buf_append(in, p + *off, n) != BS_OK) abort();
        *off += n;
    }
    bs_status s = client ? ops->on_client_bytes(st, in, fwd, back)
                         : ops->on_upstream_bytes(st, in, fwd, back);
    if (bs_buf_readable(fwd) > fwd->cap || bs_buf_readable(in) > in->cap) abort();
    *moved += bs_buf_readable(fwd);
    bs_buf_consume(fwd, bs_buf_readable(fwd));
    bs_buf_consume(back, bs_buf_readable(back));
    return s;
}

/* libFuzzer entry point: one input, never fails (a bug aborts or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        bs_log_set_level(BS_LOG_ERROR + 1); /* the session logs every refusal */
        quiet = 1;
    }
    if (size < 2) return 0;
    size_t chunk = (size_t)data[0] + 1;
    const uint8_t *p = data + 2;
    size_t len = size - 2, split = len * data[1] / 255;
    static bs_advertise_entry adv[] = {{1, "sc1.side", 9091}, {2, "sc2.side", 9092}};
    static char tmpl[] = "n{id}.side:9000";
    bs_kafka_config kc = {.advertise = adv, .n_advertise = 2, .advertise_template = tmpl,
                          .max_frame_bytes = 1 << 16};
    bs_listener_config lc = {.name = "fuzz"};
    bs_session_info info = {.listener = &lc, .kafka = &kc, .peer = "fuzz"};
    const bs_session_ops *ops = bs_kafka_session_ops();
    void *st = NULL;
    bs_buf b[6];
    memset(b, 0, sizeof b);
    for (int i = 0; i < 6; i++)
        if (bs_buf_init(&b[i], CAP) != BS_OK) goto out;
    if (ops->open(NULL, &info, &st) != BS_OK) goto out;
    size_t coff = 0, uoff = 0, moved = 0;
    for (int idle = 0; idle < 4;) {
        size_t before = coff + uoff + moved + bs_buf_readable(&b[0]) + bs_buf_readable(&b[3]);
        if (step(ops, st, true, p, split, &coff, chunk, &b[0], &b[1], &b[2], &moved) != BS_OK)
            break;
        if (step(ops, st, false, p + split, len - split, &uoff, chunk, &b[3], &b[4], &b[5],
                 &moved) != BS_OK)
            break;
        size_t after = coff + uoff + moved + bs_buf_readable(&b[0]) + bs_buf_readable(&b[3]);
        idle = after == before ? idle + 1 : 0;
    }
    (void)ops->is_quiescent(st);
out:
    ops->close(st);
    for (int i = 0; i < 6; i++)
        bs_buf_free(&b[i]);
    return 0;
}
