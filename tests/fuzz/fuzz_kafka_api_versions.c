/* fuzz_kafka_api_versions.c - libFuzzer target: ApiVersions capping. Byte 0
 * is the response version (mod 6), the rest the body. A capped body must
 * decode and advertise no API we do not know, nor any above our cap. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/kafka_rewrite.h"
#include "brokerside/kafka_schema.h"
#include "brokerside/kafka_summary.h"

/* libFuzzer entry point: one input, never fails (a bug aborts or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int16_t v = (int16_t)(data[0] % 6);
    size_t len = size - 1;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return 0;
    memcpy(copy, data + 1, len);
    bs_wbuf out;
    bool changed;
    bs_wbuf_init(&out, 0);
    if (bs_kafka_rewrite_api_versions(copy, len, v, &out, &changed) == BS_OK && changed) {
        const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_API_VERSIONS, false);
        bs_kafka_arena a;
        bs_kafka_obj *o;
        bs_kafka_arena_init(&a, 0);
        /* an UNSUPPORTED_VERSION answer is re-encoded as v0 */
        if (bs_kafka_decode(m, v, out.data, out.len, &a, &o) != BS_OK) {
            bs_kafka_arena_reset(&a);
            if (bs_kafka_decode(m, 0, out.data, out.len, &a, &o) != BS_OK) abort();
        }
        bs_kafka_val *arr = &o->vals[1];
        for (int32_t k = 0; k < arr->count; k++) {
            bs_kafka_val *e = arr->items[k].vals;
            int16_t cap = bs_kafka_max_supported_version((int16_t)e[0].i);
            if (cap < 0 || e[2].i > cap || e[1].i > cap) abort();
        }
        bs_kafka_arena_free(&a);
    }
    bs_kafka_slice n1, n2;
    (void)!bs_kafka_api_versions_client(copy, len, v, &n1, &n2);
    uint64_t count;
    (void)!bs_kafka_count_records(copy, len, &count);
    bs_wbuf_free(&out);
    free(copy);
    return 0;
}
