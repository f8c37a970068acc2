/* fuzz_kafka_request_header.c - libFuzzer target: request header parsing; a
 * parsed header is written back and must parse to the same fields. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/kafka.h"

/* libFuzzer entry point: one input, never fails (a bug aborts or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    bs_kafka_request_header h, h2;
    if (bs_kafka_parse_request_header(copy, size, &h) == BS_OK) {
        if (h.header_len > size) abort();
        bs_wbuf w;
        bs_wbuf_init(&w, 0);
        if (bs_kafka_put_request_header(&w, h.api_key, h.api_version, h.correlation_id,
                                        h.client_id.p, h.client_id.len) != BS_OK)
            abort();
        if (bs_kafka_parse_request_header(w.data, w.len, &h2) != BS_OK) abort();
        if (h2.api_key != h.api_key || h2.api_version != h.api_version ||
            h2.correlation_id != h.correlation_id || h2.client_id.len != h.client_id.len ||
            (h.client_id.len > 0 &&
             memcmp(h.client_id.p, h2.client_id.p, (size_t)h.client_id.len) != 0))
            abort();
        bs_wbuf_free(&w);
    }
    for (int hv = 0; hv <= 1; hv++) {
        bs_kafka_response_header rh;
        if (bs_kafka_parse_response_header(copy, size, hv, &rh) == BS_OK && rh.header_len > size)
            abort();
    }
    free(copy);
    return 0;
}
