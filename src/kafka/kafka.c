/* kafka.c - Kafka wire primitives, API table lookups and headers (see kafka.h). */
#include "brokerside/kafka.h"

#include "brokerside/kafka_schema.h"

/* Reads a length that is -1 (null) or >= 0 and fits the remaining bytes.
 * `max` caps it (strings: 32767). Shared by strings and bytes. */
static bs_status read_len(bs_cursor *c, bool compact, bool wide, bool nullable, int64_t max,
                          int32_t *len)
{
    int64_t n;
    if (compact) {
        uint32_t u;
        BS_GUARD(bs_read_uvarint(c, &u));
        n = (int64_t)u - 1;
    } else if (wide) {
        int32_t v;
        BS_GUARD(bs_read_i32(c, &v));
        n = v;
    } else {
        int16_t v;
        BS_GUARD(bs_read_i16(c, &v));
        n = v;
    }
    if (n == -1) {
        BS_ENSURE(nullable, BS_E_MALFORMED);
        *len = -1;
        return BS_OK;
    }
    /* Negative lengths other than -1 and lengths past the end are hostile, not short. */
    BS_ENSURE(n >= 0 && n <= max && (uint64_t)n <= bs_cursor_remaining(c), BS_E_MALFORMED);
    *len = (int32_t)n;
    return BS_OK;
}

/* Reads a length-prefixed field into a slice pointing at the input. */
static bs_status read_slice(bs_cursor *c, bool compact, bool wide, bool nullable, int64_t max,
                            bs_kafka_slice *out)
{
    int32_t len;
    const uint8_t *p = NULL;
    BS_GUARD(read_len(c, compact, wide, nullable, max, &len));
    if (len > 0) BS_GUARD(bs_read_bytes(c, (size_t)len, &p));
    if (len == 0) p = bs_cursor_ptr(c);
    out->p = p;
    out->len = len;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_read_string(bs_cursor *c, bool compact, bool nullable, bs_kafka_slice *out)
{
    return read_slice(c, compact, false, nullable, BS_KAFKA_MAX_STRING, out);
}

/* See kafka.h. */
bs_status bs_kafka_read_bytes(bs_cursor *c, bool compact, bool nullable, bs_kafka_slice *out)
{
    return read_slice(c, compact, true, nullable, INT32_MAX, out);
}

/* See kafka.h. */
bs_status bs_kafka_read_array_len(bs_cursor *c, bool compact, bool nullable, size_t min_elem_size,
                                  int32_t *count)
{
    int64_t n;
    if (compact) {
        uint32_t u;
        BS_GUARD(bs_read_uvarint(c, &u));
        n = (int64_t)u - 1;
    } else {
        int32_t v;
        BS_GUARD(bs_read_i32(c, &v));
        n = v;
    }
    if (n == -1) {
        BS_ENSURE(nullable, BS_E_MALFORMED);
        *count = -1;
        return BS_OK;
    }
    if (min_elem_size == 0) min_elem_size = 1;
    BS_ENSURE(n >= 0 && n <= INT32_MAX, BS_E_MALFORMED);
    /* A count the frame cannot possibly hold is rejected before anyone allocates for it. */
    BS_ENSURE((uint64_t)n <= bs_cursor_remaining(c) / min_elem_size, BS_E_MALFORMED);
    *count = (int32_t)n;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_read_uuid(bs_cursor *c, const uint8_t **out)
{
    return bs_read_bytes(c, 16, out);
}

/* See kafka.h. */
bs_status bs_kafka_read_tag_count(bs_cursor *c, uint32_t *count)
{
    uint32_t n;
    BS_GUARD(bs_read_uvarint(c, &n));
    /* each tag takes at least a tag varint and a size varint */
    BS_ENSURE(n <= bs_cursor_remaining(c) / 2, BS_E_MALFORMED);
    *count = n;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_read_tag(bs_cursor *c, bs_kafka_tag *out)
{
    uint32_t tag, size;
    const uint8_t *p;
    BS_GUARD(bs_read_uvarint(c, &tag));
    BS_GUARD(bs_read_uvarint(c, &size));
    BS_ENSURE(size <= bs_cursor_remaining(c), BS_E_MALFORMED);
    BS_GUARD(bs_read_bytes(c, size, &p));
    out->tag = tag;
    out->p = p;
    out->n = size;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_read_tag_section(bs_cursor *c, bs_kafka_slice *raw, uint32_t *ntags)
{
    size_t start = c->pos;
    uint32_t n, prev = 0;
    bs_status st = bs_kafka_read_tag_count(c, &n);
    for (uint32_t i = 0; st == BS_OK && i < n; i++) {
        bs_kafka_tag t;
        st = bs_kafka_read_tag(c, &t);
        /* Kafka writers emit tags in strictly ascending order. */
        if (st == BS_OK && i > 0 && t.tag <= prev) st = BS_E_MALFORMED;
        prev = t.tag;
    }
    if (st != BS_OK) {
        c->pos = start;
        return st == BS_E_SHORT ? BS_E_MALFORMED : st;
    }
    raw->p = c->data + start;
    raw->len = (int32_t)(c->pos - start);
    if (ntags) *ntags = n;
    return BS_OK;
}

/* Writes the length prefix of a string/bytes/array field. */
static void put_len(bs_wbuf *w, bool compact, bool wide, int32_t len)
{
    if (compact)
        bs_wbuf_put_uvarint(w, (uint32_t)((int64_t)len + 1));
    else if (wide)
        bs_wbuf_put_be32(w, (uint32_t)len);
    else
        bs_wbuf_put_be16(w, (uint16_t)(int16_t)len);
}

/* See kafka.h. */
void bs_kafka_put_string(bs_wbuf *w, bool compact, const uint8_t *p, int32_t len)
{
    put_len(w, compact, false, len);
    if (len > 0) bs_wbuf_put(w, p, (size_t)len);
}

/* See kafka.h. */
void bs_kafka_put_bytes(bs_wbuf *w, bool compact, const uint8_t *p, int32_t len)
{
    put_len(w, compact, true, len);
    if (len > 0) bs_wbuf_put(w, p, (size_t)len);
}

/* See kafka.h. */
void bs_kafka_put_array_len(bs_wbuf *w, bool compact, int32_t count)
{
    put_len(w, compact, true, count);
}

/* ---- API table ---- */

/* See kafka.h. The generated table is sorted by key: binary search. */
const bs_kafka_api_info *bs_kafka_api(int16_t api_key)
{
    size_t lo = 0, hi = bs_kafka_apis_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bs_kafka_apis[mid].key == api_key) return &bs_kafka_apis[mid];
        if (bs_kafka_apis[mid].key < api_key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* See kafka.h. */
const char *bs_kafka_api_name(int16_t api_key)
{
    const bs_kafka_api_info *a = bs_kafka_api(api_key);
    return a ? a->name : "unknown";
}

/* See kafka.h. */
const bs_kafka_api_info *bs_kafka_api_table(size_t *n)
{
    *n = bs_kafka_apis_count;
    return bs_kafka_apis;
}

/* Is api_key/version flexible in the direction whose first flexible version is
 * `flex_min`? Versions above the table's maximum are flexible iff the API
 * already was (flexibility never goes back); otherwise unknowable. */
static bs_status is_flexible(const bs_kafka_api_info *a, int16_t version, int16_t flex_min,
                             bool *flex)
{
    BS_ENSURE(version >= 0, BS_E_UNSUPPORTED);
    if (version > a->max_version && flex_min == 0x7fff) return BS_E_UNSUPPORTED;
    *flex = version >= flex_min;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_request_header_version(int16_t api_key, int16_t api_version, int *hv)
{
    const bs_kafka_api_info *a = bs_kafka_api(api_key);
    bool flex;
    BS_ENSURE(a, BS_E_UNSUPPORTED);
    BS_GUARD(is_flexible(a, api_version, a->req_flex_min, &flex));
    /* ControlledShutdown v0 predates the client_id field in the header. */
    if (api_key == BS_KAFKA_CONTROLLED_SHUTDOWN && api_version == 0)
        *hv = 0;
    else
        *hv = flex ? 2 : 1;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_response_header_version(int16_t api_key, int16_t api_version, int *hv)
{
    const bs_kafka_api_info *a = bs_kafka_api(api_key);
    bool flex;
    BS_ENSURE(a, BS_E_UNSUPPORTED);
    BS_GUARD(is_flexible(a, api_version, a->resp_flex_min, &flex));
    /* ApiVersions responses keep header v0 so that a client that does not yet
     * know the broker's versions can always parse them. */
    *hv = (flex && api_key != BS_KAFKA_API_VERSIONS) ? 1 : 0;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_parse_request_header(const uint8_t *p, size_t len, bs_kafka_request_header *h)
{
    bs_cursor c;
    bs_status st;
    bs_cursor_init(&c, p, len);
    h->header_len = 0;
    h->client_id.p = NULL;
    h->client_id.len = -1;
    h->tags.p = NULL;
    h->tags.len = 0;
    h->header_version = -1;
    if (bs_read_i16(&c, &h->api_key) != BS_OK || bs_read_i16(&c, &h->api_version) != BS_OK ||
        bs_read_i32(&c, &h->correlation_id) != BS_OK)
        return BS_E_MALFORMED;
    BS_GUARD(bs_kafka_request_header_version(h->api_key, h->api_version, &h->header_version));
    if (h->header_version >= 1) {
        /* client_id stays a classic nullable string even in header v2 */
        st = bs_kafka_read_string(&c, false, true, &h->client_id);
        if (st != BS_OK) return BS_E_MALFORMED;
    }
    if (h->header_version >= 2) {
        st = bs_kafka_read_tag_section(&c, &h->tags, NULL);
        if (st != BS_OK) return BS_E_MALFORMED;
    }
    h->header_len = c.pos;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_parse_response_header(const uint8_t *p, size_t len, int hv,
                                         bs_kafka_response_header *h)
{
    bs_cursor c;
    BS_ENSURE(hv == 0 || hv == 1, BS_E_UNSUPPORTED);
    bs_cursor_init(&c, p, len);
    h->tags.p = NULL;
    h->tags.len = 0;
    if (bs_read_i32(&c, &h->correlation_id) != BS_OK) return BS_E_MALFORMED;
    if (hv == 1 && bs_kafka_read_tag_section(&c, &h->tags, NULL) != BS_OK) return BS_E_MALFORMED;
    h->header_len = c.pos;
    return BS_OK;
}

/* See kafka.h. */
bs_status bs_kafka_put_request_header(bs_wbuf *w, int16_t api_key, int16_t api_version,
                                      int32_t correlation_id, const uint8_t *client_id,
                                      int32_t client_id_len)
{
    int hv;
    BS_GUARD(bs_kafka_request_header_version(api_key, api_version, &hv));
    BS_ENSURE(client_id_len >= -1 && client_id_len <= BS_KAFKA_MAX_STRING, BS_E_MALFORMED);
    bs_wbuf_put_be16(w, (uint16_t)api_key);
    bs_wbuf_put_be16(w, (uint16_t)api_version);
    bs_wbuf_put_be32(w, (uint32_t)correlation_id);
    if (hv >= 1) bs_kafka_put_string(w, false, client_id, client_id_len);
    if (hv >= 2) bs_wbuf_put_uvarint(w, 0);
    return bs_wbuf_status(w);
}
