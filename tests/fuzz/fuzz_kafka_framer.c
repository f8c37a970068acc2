/* fuzz_kafka_framer.c - libFuzzer target: a byte stream cut into frames, each
 * parsed as a request (header, acks, correlation push) and as a response
 * (header, correlation pop), the way a proxy session would. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/kafka.h"
#include "brokerside/kafka_framer.h"

/* libFuzzer entry point: one input, never fails (a bug aborts or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_kafka_corr_table t;
    if (bs_kafka_corr_init(&t, 8) != BS_OK) return 0;
    size_t off = 0;
    while (off < size) {
        size_t n;
        bs_status st = bs_kafka_frame_length(data + off, size - off, 1u << 20, &n);
        if (st != BS_OK || n > size - off) break;
        if (n < 4 + BS_KAFKA_MIN_FRAME_PAYLOAD) abort();
        /* exact-size copy: ASan flags any read past the frame */
        uint8_t *frame = malloc(n - 4);
        if (!frame) break;
        memcpy(frame, data + off + 4, n - 4);
        bs_kafka_request_header h;
        if (bs_kafka_parse_request_header(frame, n - 4, &h) == BS_OK) {
            if (h.header_len > n - 4) abort();
            int16_t acks = -1;
            if (h.api_key == BS_KAFKA_PRODUCE)
                (void)!bs_kafka_produce_acks(frame + h.header_len, n - 4 - h.header_len,
                                             h.api_version, &acks);
            bs_kafka_inflight e = {h.correlation_id, h.api_key, h.api_version, off, acks != 0};
            if (bs_kafka_corr_push(&t, &e) == BS_E_FULL) {
                bs_kafka_inflight out;
                if (bs_kafka_corr_pop(&t, t.ring[t.head].correlation_id, &out) != BS_OK) abort();
            }
        }
        bs_kafka_response_header rh;
        int hv = frame[0] & 1;
        if (bs_kafka_parse_response_header(frame, n - 4, hv, &rh) == BS_OK) {
            bs_kafka_inflight out;
            bs_status pst = bs_kafka_corr_pop(&t, rh.correlation_id, &out);
            if (pst == BS_OK && out.correlation_id != rh.correlation_id) abort();
        }
        free(frame);
        off += n;
    }
    bs_kafka_corr_free(&t);
    return 0;
}
