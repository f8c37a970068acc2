/*
 * kafka_errors.c - Kafka error codes and names, and the ApiVersions v0
 * exchange the readiness probe uses.
 */
#include <stdio.h>
#include <string.h>

#include "brokerside/kafka.h"

/* Kafka error names indexed by code + 1 (code -1 is UNKNOWN_SERVER_ERROR). */
static const char *const g_errors[] = {
#include "kafka_errors.inc"
};

/* See kafka.h. */
const char *bs_kafka_error_name(int16_t code)
{
    if (code < -1 || (size_t)(code + 1) >= BS_ARRAY_LEN(g_errors)) return NULL;
    return g_errors[code + 1];
}

/* See kafka.h. */
bs_status bs_kafka_put_api_versions_probe(bs_wbuf *w, int32_t correlation_id,
                                          const char *client_id)
{
    size_t idlen = strlen(client_id);
    BS_ENSURE(idlen <= INT16_MAX, BS_E_TOO_LARGE);
    size_t at = w->len;
    bs_wbuf_put_be32(w, 0); /* size, patched below */
    BS_GUARD(bs_kafka_put_request_header(w, BS_KAFKA_API_VERSIONS, 0, correlation_id,
                                         (const uint8_t *)client_id, (int32_t)idlen));
    BS_GUARD(bs_wbuf_status(w));
    bs_wbuf_patch_be32(w, at, (uint32_t)(w->len - at - 4));
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_check_api_versions_probe(const uint8_t *p, size_t len, int32_t correlation_id,
                                            char *why, size_t whylen)
{
    bs_cursor c;
    int32_t corr, n;
    int16_t err;
    bs_cursor_init(&c, p, len);
    if (bs_read_i32(&c, &corr) != BS_OK || bs_read_i16(&c, &err) != BS_OK ||
        bs_read_i32(&c, &n) != BS_OK) {
        snprintf(why, whylen, "ApiVersions response too short");
        return BS_E_MALFORMED;
    }
    if (corr != correlation_id) {
        snprintf(why, whylen, "ApiVersions response has correlation id %d, expected %d", corr,
                 correlation_id);
        return BS_E_MALFORMED;
    }
    if (err != 0) {
        const char *name = bs_kafka_error_name(err);
        if (name)
            snprintf(why, whylen, "ApiVersions error code %d (%s)", err, name);
        else
            snprintf(why, whylen, "ApiVersions error code %d", err);
        return BS_E_MALFORMED;
    }
    /* v0 entries: api key, min version, max version (int16 each). */
    if (n < 0 || (size_t)n * 6 != bs_cursor_remaining(&c)) {
        snprintf(why, whylen, "malformed ApiVersions response (%d entries, %zu bytes)", n,
                 bs_cursor_remaining(&c));
        return BS_E_MALFORMED;
    }
    return BS_OK;
}
