/*
 * audit.c - audit event model: the Kafka API classification and error-name
 * tables, the per-request event with its arena, and JSON rendering
 * (see audit.h; the schema is docs/audit-events.md).
 */
#include "brokerside/audit.h"
#include "brokerside/identity.h"
#include "brokerside/text.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "audit_internal.h"

/* Category and readOnly per API key. Data = client runtime traffic
 * (produce/consume, offsets, group membership, transactions, discovery):
 * high volume, governed by data_events. Management = administrative and
 * inter-broker/controller APIs and authentication: always one event each.
 * docs/audit-events.md explains the borderline choices. */
static const bs_audit_api_class g_apis[] = {
#include "audit_apis.inc"
};

/* See audit.h. */
const bs_audit_api_class *bs_audit_api_lookup(int16_t api_key)
{
    /* The table is dense from 0, so the key is the index; checked anyway. */
    if (api_key < 0 || (size_t)api_key >= BS_ARRAY_LEN(g_apis)) return NULL;
    const bs_audit_api_class *c = &g_apis[api_key];
    return c->key == api_key ? c : NULL;
}

/* See audit.h. */
size_t bs_audit_api_count(void)
{
    return BS_ARRAY_LEN(g_apis);
}

/* See audit.h. */
const bs_audit_api_class *bs_audit_api_at(size_t i)
{
    return i < BS_ARRAY_LEN(g_apis) ? &g_apis[i] : NULL;
}

/* See audit.h. */
const char *bs_audit_category_name(bs_audit_category c)
{
    return c == BS_AUDIT_DATA ? "Data" : "Management";
}

/* See audit.h. */
const char *bs_audit_res_type_name(bs_audit_res_type t)
{
    static const char *const names[] = {
        "topic", "group", "transactionalId", "broker",        "brokerLogger", "cluster",
        "acl",   "user",  "delegationToken", "clientMetrics", "other",        "component",
        "configKey"};
    return (size_t)t < BS_ARRAY_LEN(names) ? names[t] : "other";
}

/* ------------------------------------------------------------------ event */

/* See audit.h. */
void bs_audit_event_init(bs_audit_event *ev)
{
    memset(ev, 0, sizeof *ev);
    bs_audit_event_reset(ev);
}

/* See audit.h. Keeps res/items/arena storage and capacities. */
void bs_audit_event_reset(bs_audit_event *ev)
{
    bs_audit_resource *res = ev->res;
    bs_audit_item *items = ev->items;
    char *arena = ev->arena;
    size_t cr = ev->cap_res, ci = ev->cap_items, ca = ev->arena_cap;
    memset(ev, 0, sizeof *ev);
    ev->res = res;
    ev->items = items;
    ev->arena = arena;
    ev->cap_res = cr;
    ev->cap_items = ci;
    ev->arena_cap = ca;
    ev->broker_id = -1;
    ev->error_code = BS_AUDIT_NO_ERROR;
    ev->latency_us = -1;
    ev->request_bytes = ev->response_bytes = -1;
    ev->duration_ms = ev->bytes_in = ev->bytes_out = -1;
}

/* See audit.h. */
void bs_audit_event_free(bs_audit_event *ev)
{
    free(ev->res);
    free(ev->items);
    free(ev->arena);
    memset(ev, 0, sizeof *ev);
}

/* Copy s[0..len) into the arena; *off receives its offset. BS_E_FULL (and
 * the event marked truncated) past BS_AUDIT_MAX_ARENA. */
static bs_status arena_put(bs_audit_event *ev, const char *s, size_t len, uint32_t *off)
{
    if (len > BS_AUDIT_MAX_ARENA - ev->arena_len) {
        ev->truncated = true;
        return BS_E_FULL;
    }
    if (ev->arena_len + len > ev->arena_cap) {
        size_t cap = ev->arena_cap ? ev->arena_cap : 512;
        while (cap < ev->arena_len + len)
            cap *= 2;
        if (cap > BS_AUDIT_MAX_ARENA) cap = BS_AUDIT_MAX_ARENA;
        char *p = realloc(ev->arena, cap);
        if (!p) return BS_E_NOMEM;
        ev->arena = p;
        ev->arena_cap = cap;
    }
    if (len) memcpy(ev->arena + ev->arena_len, s, len);
    *off = (uint32_t)ev->arena_len;
    ev->arena_len += len;
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_event_set_client_id(bs_audit_event *ev, const char *s, size_t len)
{
    BS_ENSURE(s || len == 0, BS_E_MALFORMED);
    BS_GUARD(arena_put(ev, s, len, &ev->client_id_off));
    ev->client_id_len = (uint32_t)len;
    ev->has_client_id = true;
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_event_set_software(bs_audit_event *ev, const char *name, size_t name_len,
                                      const char *version, size_t version_len)
{
    BS_ENSURE((name || name_len == 0) && (version || version_len == 0), BS_E_MALFORMED);
    BS_GUARD(arena_put(ev, name, name_len, &ev->sw_name_off));
    BS_GUARD(arena_put(ev, version, version_len, &ev->sw_version_off));
    ev->sw_name_len = (uint32_t)name_len;
    ev->sw_version_len = (uint32_t)version_len;
    ev->has_sw = true;
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_event_add_resource(bs_audit_event *ev, bs_audit_res_type type, const char *s,
                                      size_t len, size_t *idx)
{
    BS_ENSURE(s || len == 0, BS_E_MALFORMED);
    if (ev->n_res >= BS_AUDIT_MAX_RESOURCES) {
        ev->truncated = true;
        return BS_E_FULL;
    }
    if (ev->n_res == ev->cap_res) {
        size_t cap = ev->cap_res ? ev->cap_res * 2 : 8;
        bs_audit_resource *p = realloc(ev->res, cap * sizeof *p);
        if (!p) return BS_E_NOMEM;
        ev->res = p;
        ev->cap_res = cap;
    }
    bs_audit_resource r = {.type = (uint8_t)type,
                           .name_len = (uint32_t)len,
                           .error_code = BS_AUDIT_NO_ERROR,
                           .records = -1,
                           .bytes = -1};
    BS_GUARD(arena_put(ev, s, len, &r.name_off));
    ev->res[ev->n_res] = r;
    *idx = ev->n_res++;
    return BS_OK;
}

/* Append an item for resource `idx`; fills nothing but resource/kind/error. */
static bs_status item_new(bs_audit_event *ev, size_t idx, bs_audit_item_kind kind,
                          bs_audit_item **out)
{
    BS_ENSURE(idx < ev->n_res, BS_E_NOT_FOUND);
    if (ev->n_items >= BS_AUDIT_MAX_ITEMS) {
        ev->truncated = true;
        return BS_E_FULL;
    }
    if (ev->n_items == ev->cap_items) {
        size_t cap = ev->cap_items ? ev->cap_items * 2 : 16;
        bs_audit_item *p = realloc(ev->items, cap * sizeof *p);
        if (!p) return BS_E_NOMEM;
        ev->items = p;
        ev->cap_items = cap;
    }
    bs_audit_item *it = &ev->items[ev->n_items];
    memset(it, 0, sizeof *it);
    it->resource = (uint16_t)idx;
    it->kind = (uint8_t)kind;
    it->error_code = BS_AUDIT_NO_ERROR;
    *out = it;
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_event_add_partition(bs_audit_event *ev, size_t idx, int32_t partition)
{
    bs_audit_item *it;
    BS_GUARD(item_new(ev, idx, BS_AUDIT_ITEM_PARTITION, &it));
    it->partition = partition;
    ev->n_items++;
    return BS_OK;
}

/* See audit.h. The item is only committed (n_items++) once its strings are
 * in the arena, so a full arena leaves no half item. */
bs_status bs_audit_event_add_config_key(bs_audit_event *ev, size_t idx, const char *key,
                                        size_t key_len)
{
    BS_ENSURE(key || key_len == 0, BS_E_MALFORMED);
    bs_audit_item *it;
    BS_GUARD(item_new(ev, idx, BS_AUDIT_ITEM_CONFIG_KEY, &it));
    BS_GUARD(arena_put(ev, key, key_len, &it->key_off));
    it->key_len = (uint32_t)key_len;
    ev->n_items++;
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_event_add_attr(bs_audit_event *ev, size_t idx, const char *key, size_t key_len,
                                  const char *val, size_t val_len)
{
    BS_ENSURE((key || key_len == 0) && (val || val_len == 0), BS_E_MALFORMED);
    bs_audit_item *it;
    BS_GUARD(item_new(ev, idx, BS_AUDIT_ITEM_ATTR, &it));
    size_t mark = ev->arena_len;
    bs_status st = arena_put(ev, key, key_len, &it->key_off);
    if (st == BS_OK) st = arena_put(ev, val, val_len, &it->val_off);
    if (st != BS_OK) {
        ev->arena_len = mark; /* drop a key whose value did not fit */
        return st;
    }
    it->key_len = (uint32_t)key_len;
    it->val_len = (uint32_t)val_len;
    ev->n_items++;
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_event_add_decision(bs_audit_event *ev, bs_audit_res_type type, const char *name,
                                      size_t name_len, const char *op, bool allowed, int rule,
                                      const char *basis)
{
    size_t idx;
    BS_GUARD(bs_audit_event_add_resource(ev, type, name, name_len, &idx));
    BS_GUARD(bs_audit_event_add_attr(ev, idx, "operation", 9, op, strlen(op)));
    const char *d = allowed ? "ALLOW" : "DENY";
    BS_GUARD(bs_audit_event_add_attr(ev, idx, "decision", 8, d, strlen(d)));
    if (rule >= 0) {
        char r[32];
        int n = snprintf(r, sizeof r, "rules[%d]", rule);
        BS_GUARD(bs_audit_event_add_attr(ev, idx, "rule", 4, r, (size_t)n));
    }
    return bs_audit_event_add_attr(ev, idx, "basis", 5, basis, strlen(basis));
}

/* See audit.h. */
bs_status bs_audit_event_set_resource_error(bs_audit_event *ev, size_t idx, int16_t code)
{
    BS_ENSURE(idx < ev->n_res, BS_E_NOT_FOUND);
    ev->res[idx].error_code = code;
    return BS_OK;
}

/* See audit.h. Sets every matching partition item (a request may name a
 * partition twice; the response answers both). */
bs_status bs_audit_event_set_partition_error(bs_audit_event *ev, size_t idx, int32_t partition,
                                             int16_t code)
{
    BS_ENSURE(idx < ev->n_res, BS_E_NOT_FOUND);
    bool found = false;
    for (size_t i = 0; i < ev->n_items; i++) {
        bs_audit_item *it = &ev->items[i];
        if (it->resource == idx && it->kind == BS_AUDIT_ITEM_PARTITION &&
            it->partition == partition) {
            it->error_code = code;
            found = true;
        }
    }
    return found ? BS_OK : BS_E_NOT_FOUND;
}

/* See audit.h. */
bs_status bs_audit_event_set_volume(bs_audit_event *ev, size_t idx, int64_t records, int64_t bytes)
{
    BS_ENSURE(idx < ev->n_res, BS_E_NOT_FOUND);
    ev->res[idx].records = records;
    ev->res[idx].bytes = bytes;
    return BS_OK;
}

/* --------------------------------------------------------------- helpers */

/* See audit_internal.h. */
void bs_audit_put_cstr(bs_wbuf *w, const char *s)
{
    if (!s)
        bs_wbuf_put_str(w, "null");
    else
        bs_wbuf_put_json_string(w, s, strlen(s));
}

/* See audit_internal.h. */
void bs_audit_put_u64(bs_wbuf *w, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    bs_wbuf_put(w, tmp + sizeof tmp - n, n);
}

/* See audit_internal.h. INT64_MIN is negated in unsigned arithmetic. */
void bs_audit_put_i64(bs_wbuf *w, int64_t v)
{
    if (v < 0) {
        bs_wbuf_put_u8(w, '-');
        bs_audit_put_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        bs_audit_put_u64(w, (uint64_t)v);
    }
}

/* See audit_internal.h. */
void bs_audit_put_kv(bs_wbuf *w, const char *key, int64_t v)
{
    bs_wbuf_put_str(w, key);
    bs_audit_put_i64(w, v);
}

/* See audit_internal.h. */
void bs_audit_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* See audit_internal.h. */
int64_t bs_audit_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Two decimal digits of v (0..99) at p. */
static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* See audit.h. Times before the epoch are clamped to it; years are printed
 * modulo 10000 (four digits). Formatted by hand: this runs per event. */
void bs_audit_format_time(int64_t time_us, char out[25])
{
    if (time_us < 0) time_us = 0;
    time_t sec = (time_t)(time_us / 1000000);
    int ms = (int)((time_us / 1000) % 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    int y = (tm.tm_year + 1900) % 10000;
    put2(out, y / 100);
    put2(out + 2, y % 100);
    out[4] = '-';
    put2(out + 5, tm.tm_mon + 1);
    out[7] = '-';
    put2(out + 8, tm.tm_mday);
    out[10] = 'T';
    put2(out + 11, tm.tm_hour);
    out[13] = ':';
    put2(out + 14, tm.tm_min);
    out[16] = ':';
    put2(out + 17, tm.tm_sec);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    put2(out + 21, ms % 100);
    out[23] = 'Z';
    out[24] = 0;
}

/* See audit.h. Layout as UUIDv7 (RFC 9562): 48-bit ms, version 7, 12 random
 * bits, variant 10, 62 random bits. */
bs_status bs_audit_new_event_id(int64_t time_us, char out[37])
{
    uint8_t b[16];
    if (RAND_bytes(b + 6, 10) != 1) return BS_E_CRYPTO;
    uint64_t ms = time_us < 0 ? 0 : (uint64_t)time_us / 1000;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    char hex[33];
    bs_audit_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return BS_OK;
}

/* See audit_internal.h. */
void bs_audit_put_head(bs_wbuf *w, int64_t time_us, const char *source, const char *name,
                       const char *type, const char *event_id)
{
    char t[25];
    bs_audit_format_time(time_us, t);
    bs_wbuf_put_str(w, "\"eventVersion\":\"1.0\",\"eventTime\":\"");
    bs_wbuf_put(w, t, 24);
    bs_wbuf_put_str(w, "\",\"eventSource\":");
    bs_audit_put_cstr(w, source);
    bs_wbuf_put_str(w, ",\"eventName\":");
    bs_audit_put_cstr(w, name);
    bs_wbuf_put_str(w, ",\"eventType\":");
    bs_audit_put_cstr(w, type);
    bs_wbuf_put_str(w, ",\"eventID\":\"");
    bs_wbuf_put_str(w, event_id);
    bs_wbuf_put_u8(w, '"');
}

/* ---------------------------------------------------------------- render */

/* See audit_internal.h: errorCode and errorName members (the name only
 * when known), preceded by a comma. */
void bs_audit_put_error(bs_wbuf *w, int16_t code)
{
    bs_audit_put_kv(w, ",\"errorCode\":", code);
    const char *n = bs_kafka_error_name(code);
    if (n) {
        bs_wbuf_put_str(w, ",\"errorName\":\"");
        bs_wbuf_put_str(w, n);
        bs_wbuf_put_u8(w, '"');
    }
}

/* See audit_internal.h: userIdentity, sourceIPAddress, sourcePort,
 * listener, brokerId, connectionId. */
void bs_audit_put_identity(bs_wbuf *w, const bs_audit_event *ev)
{
    const bs_conn_identity *id = ev->identity;
    if (id && id->sasl_principal[0]) {
        /* both identities: the SASL principal decides, the certificate is kept */
        bs_wbuf_put_str(w, ",\"userIdentity\":{\"type\":\"SASL\",\"principal\":");
        bs_audit_put_cstr(w, id->sasl_principal);
        bs_wbuf_put_str(w, ",\"mechanism\":");
        bs_audit_put_cstr(w, bs_sasl_mech_name(id->mech));
        if (!id->sasl_verified) bs_wbuf_put_str(w, ",\"verified\":false");
        if (ev->principal) {
            bs_wbuf_put_str(w, ",\"certificateSubject\":");
            bs_audit_put_cstr(w, ev->principal);
        }
        if (id->cert_principal[0]) {
            bs_wbuf_put_str(w, ",\"certificatePrincipal\":");
            bs_audit_put_cstr(w, id->cert_principal);
        }
        bs_wbuf_put_u8(w, '}');
    } else if (ev->principal) {
        bs_wbuf_put_str(w, ",\"userIdentity\":{\"type\":\"mTLS\",\"principal\":");
        bs_audit_put_cstr(w, ev->principal);
        bs_wbuf_put_u8(w, '}');
    } else {
        bs_wbuf_put_str(w, ",\"userIdentity\":{\"type\":\"Anonymous\",\"principal\":null}");
    }
    /* SASL exchanges carry the attempt: who tried, how, and how it ended
     * (never a password, proof, nonce or token). */
    if (id && (ev->api_key == 17 || ev->api_key == 36) && ev->type != BS_AUDIT_EV_CONNECTION &&
        id->last_result != BS_SASL_RESULT_NONE) {
        static const char *const res[] = {"none", "pending", "success", "failure"};
        bs_wbuf_put_str(w, ",\"authentication\":{\"mechanism\":");
        bs_audit_put_cstr(w, bs_sasl_mech_name(id->attempt_mech));
        bs_wbuf_put_str(w, ",\"attemptedPrincipal\":");
        if (id->attempt_principal[0])
            bs_audit_put_cstr(w, id->attempt_principal);
        else
            bs_wbuf_put_str(w, "null");
        bs_wbuf_put_str(w, ",\"result\":\"");
        bs_wbuf_put_str(w, res[id->last_result]);
        bs_wbuf_put_u8(w, '"');
        if (id->attempt_note) {
            bs_wbuf_put_str(w, ",\"note\":");
            bs_audit_put_cstr(w, id->attempt_note);
        }
        bs_wbuf_put_u8(w, '}');
    }
    bs_wbuf_put_str(w, ",\"sourceIPAddress\":");
    bs_audit_put_cstr(w, ev->source_ip);
    bs_audit_put_kv(w, ",\"sourcePort\":", ev->source_port);
    bs_wbuf_put_str(w, ",\"listener\":");
    bs_audit_put_cstr(w, ev->listener);
    if (ev->broker_id >= 0)
        bs_audit_put_kv(w, ",\"brokerId\":", ev->broker_id);
    else
        bs_wbuf_put_str(w, ",\"brokerId\":null");
    bs_wbuf_put_str(w, ",\"connectionId\":");
    bs_audit_put_u64(w, ev->conn_id);
}

/* See audit_internal.h: userAgent "name/version (client.id=ID)" plus the
 * structured parts. */
void bs_audit_put_user_agent(bs_wbuf *w, const bs_audit_event *ev)
{
    const char *a = ev->arena;
    bs_wbuf ua;
    bs_wbuf_init(&ua, 0);
    if (ev->has_sw) {
        bs_wbuf_put(&ua, a + ev->sw_name_off, ev->sw_name_len);
        bs_wbuf_put_u8(&ua, '/');
        bs_wbuf_put(&ua, a + ev->sw_version_off, ev->sw_version_len);
    }
    if (ev->has_client_id) {
        if (ev->has_sw) bs_wbuf_put_u8(&ua, ' ');
        bs_wbuf_put_str(&ua, "(client.id=");
        bs_wbuf_put(&ua, a + ev->client_id_off, ev->client_id_len);
        bs_wbuf_put_u8(&ua, ')');
    }
    bs_wbuf_put_str(w, ",\"userAgent\":");
    if (ua.failed)
        w->failed = true;
    else if (ev->has_sw || ev->has_client_id)
        bs_wbuf_put_json_string(w, (const char *)ua.data, ua.len);
    else
        bs_wbuf_put_str(w, "null");
    bs_wbuf_free(&ua);
    bs_wbuf_put_str(w, ",\"clientId\":");
    if (ev->has_client_id)
        bs_wbuf_put_json_string(w, a + ev->client_id_off, ev->client_id_len);
    else
        bs_wbuf_put_str(w, "null");
    if (ev->has_sw) {
        bs_wbuf_put_str(w, ",\"clientSoftwareName\":");
        bs_wbuf_put_json_string(w, a + ev->sw_name_off, ev->sw_name_len);
        bs_wbuf_put_str(w, ",\"clientSoftwareVersion\":");
        bs_wbuf_put_json_string(w, a + ev->sw_version_off, ev->sw_version_len);
    }
}

/* {"type":..,"name":..} opening of resource `r` (no closing brace). */
static void put_res_open(bs_wbuf *w, const bs_audit_event *ev, const bs_audit_resource *r)
{
    bs_wbuf_put_str(w, "{\"type\":\"");
    bs_wbuf_put_str(w, bs_audit_res_type_name(r->type));
    bs_wbuf_put_str(w, "\",\"name\":");
    if (r->name_len || r->type != BS_AUDIT_RES_CLUSTER)
        bs_wbuf_put_json_string(w, ev->arena + r->name_off, r->name_len);
    else
        bs_wbuf_put_str(w, "null");
}

/* See audit_internal.h. */
void bs_audit_put_items(bs_wbuf *w, const bs_audit_event *ev, size_t r, bool *first_member)
{
    /* Each item kind is its own array/object; a pass per kind keeps the
     * items in request order within it. */
    static const char *const open[] = {"\"partitions\":[", "\"configKeys\":[",
                                       "\"attributes\":{"};
    static const char close[] = {']', ']', '}'};
    for (int kind = 0; kind < 3; kind++) {
        bool first = true;
        for (size_t i = 0; i < ev->n_items; i++) {
            const bs_audit_item *it = &ev->items[i];
            if (it->resource != r || it->kind != kind) continue;
            if (first) {
                if (!*first_member) bs_wbuf_put_u8(w, ',');
                *first_member = false;
                bs_wbuf_put_str(w, open[kind]);
            } else {
                bs_wbuf_put_u8(w, ',');
            }
            first = false;
            if (kind == BS_AUDIT_ITEM_PARTITION) {
                bs_audit_put_i64(w, it->partition);
            } else {
                bs_wbuf_put_json_string(w, ev->arena + it->key_off, it->key_len);
                if (kind == BS_AUDIT_ITEM_ATTR) {
                    bs_wbuf_put_u8(w, ':');
                    bs_wbuf_put_json_string(w, ev->arena + it->val_off, it->val_len);
                }
            }
        }
        if (!first) bs_wbuf_put_u8(w, (uint8_t)close[kind]);
    }
}

/* requestParameters: the resources named by the request. */
static void put_request_params(bs_wbuf *w, const bs_audit_event *ev)
{
    bs_wbuf_put_str(w, ",\"requestParameters\":{\"resources\":[");
    for (size_t r = 0; r < ev->n_res; r++) {
        const bs_audit_resource *res = &ev->res[r];
        if (r) bs_wbuf_put_u8(w, ',');
        put_res_open(w, ev, res);
        bool first_member = false; /* after the resource's name: every member leads with ',' */
        bs_audit_put_items(w, ev, r, &first_member);
        if (res->records >= 0) bs_audit_put_kv(w, ",\"records\":", res->records);
        if (res->bytes >= 0) bs_audit_put_kv(w, ",\"bytes\":", res->bytes);
        bs_wbuf_put_u8(w, '}');
    }
    bs_wbuf_put_str(w, "]}");
}

/* responseElements: per-resource and per-partition error codes, or null
 * when no response was seen. */
static void put_response(bs_wbuf *w, const bs_audit_event *ev)
{
    if (ev->latency_us < 0) {
        bs_wbuf_put_str(w, ",\"responseElements\":null");
        return;
    }
    bs_wbuf_put_str(w, ",\"responseElements\":{\"resources\":[");
    bool first_res = true;
    for (size_t r = 0; r < ev->n_res; r++) {
        const bs_audit_resource *res = &ev->res[r];
        bool any = res->error_code != BS_AUDIT_NO_ERROR;
        for (size_t i = 0; i < ev->n_items && !any; i++)
            any = ev->items[i].resource == r && ev->items[i].error_code != BS_AUDIT_NO_ERROR;
        if (!any) continue;
        if (!first_res) bs_wbuf_put_u8(w, ',');
        first_res = false;
        put_res_open(w, ev, res);
        if (res->error_code != BS_AUDIT_NO_ERROR) bs_audit_put_error(w, res->error_code);
        bool first = true;
        for (size_t i = 0; i < ev->n_items; i++) {
            const bs_audit_item *it = &ev->items[i];
            if (it->resource != r || it->kind != BS_AUDIT_ITEM_PARTITION ||
                it->error_code == BS_AUDIT_NO_ERROR)
                continue;
            bs_wbuf_put_str(w, first ? ",\"partitions\":[" : ",");
            first = false;
            bs_audit_put_kv(w, "{\"partition\":", it->partition);
            bs_audit_put_error(w, it->error_code);
            bs_wbuf_put_u8(w, '}');
        }
        if (!first) bs_wbuf_put_u8(w, ']');
        bs_wbuf_put_u8(w, '}');
    }
    bs_wbuf_put_str(w, "]}");
}

/* See audit_internal.h: the top-level code if non-zero, else the first
 * non-zero resource or partition code, else 0 when a response was seen,
 * else BS_AUDIT_NO_ERROR. */
int16_t bs_audit_summary_error(const bs_audit_event *ev)
{
    if (ev->error_code != BS_AUDIT_NO_ERROR && ev->error_code != 0) return ev->error_code;
    for (size_t r = 0; r < ev->n_res; r++)
        if (ev->res[r].error_code != BS_AUDIT_NO_ERROR && ev->res[r].error_code != 0)
            return ev->res[r].error_code;
    for (size_t i = 0; i < ev->n_items; i++)
        if (ev->items[i].error_code != BS_AUDIT_NO_ERROR && ev->items[i].error_code != 0)
            return ev->items[i].error_code;
    return ev->latency_us >= 0 ? 0 : BS_AUDIT_NO_ERROR;
}

/* See audit_internal.h. */
const char *bs_audit_conn_name(bs_audit_conn_kind kind)
{
    static const char *const names[] = {"ConnectionAccepted", "TlsHandshakeFailed",
                                        "ClientCertificateRejected", "ConnectionClosed",
                                        "ClientCertificateAccepted", "ProxyProtocolRejected"};
    return (size_t)kind < BS_ARRAY_LEN(names) ? names[kind] : NULL;
}

/* See audit_internal.h. */
void bs_audit_put_reason_detail(bs_wbuf *w, const bs_audit_event *ev)
{
    if (ev->reason) {
        bs_wbuf_put_str(w, ",\"reason\":");
        bs_audit_put_cstr(w, ev->reason);
    }
    if (ev->detail) {
        size_t n = strnlen(ev->detail, BS_AUDIT_DETAIL_MAX);
        bs_wbuf_put_str(w, ",\"detail\":");
        bs_wbuf_put_json_string(w, ev->detail, n);
    }
}

/* Render a connection event body (after the head). */
static void put_connection(bs_wbuf *w, const bs_audit_event *ev)
{
    bs_audit_put_identity(w, ev);
    bs_audit_put_reason_detail(w, ev);
    if (ev->conn_kind == BS_AUDIT_CONN_CLOSED) {
        bs_wbuf_printf(w,
                       ",\"durationMs\":%" PRId64 ",\"bytesIn\":%" PRId64 ",\"bytesOut\":%" PRId64,
                       ev->duration_ms, ev->bytes_in, ev->bytes_out);
    }
}

/* An authorization event: who, which request, and every decision. */
static bs_status render_authz(const bs_audit_event *ev, const char *source, const char *event_id,
                              bs_wbuf *out)
{
    const bs_audit_api_class *c = bs_audit_api_lookup(ev->api_key);
    bs_audit_put_head(out, ev->time_us, source, c ? c->name : "UnknownApi", "KafkaAuthorization",
                      event_id);
    bs_wbuf_put_str(out, ",\"eventCategory\":\"Management\",\"readOnly\":true");
    bs_audit_put_kv(out, ",\"apiKey\":", ev->api_key);
    bs_audit_put_kv(out, ",\"apiVersion\":", ev->api_version);
    bs_audit_put_identity(out, ev);
    bool denied = false;
    for (size_t i = 0; i < ev->n_items; i++) {
        const bs_audit_item *it = &ev->items[i];
        if (it->kind == BS_AUDIT_ITEM_ATTR && it->key_len == 8 &&
            memcmp(ev->arena + it->key_off, "decision", 8) == 0 && it->val_len == 4)
            denied = true;
    }
    bs_wbuf_put_str(out, denied ? ",\"decision\":\"DENY\"" : ",\"decision\":\"ALLOW\"");
    bs_wbuf_put_str(out, ",\"authorization\":[");
    for (size_t r = 0; r < ev->n_res; r++) {
        if (r) bs_wbuf_put_u8(out, ',');
        put_res_open(out, ev, &ev->res[r]);
        for (size_t i = 0; i < ev->n_items; i++) {
            const bs_audit_item *it = &ev->items[i];
            if (it->resource != r || it->kind != BS_AUDIT_ITEM_ATTR) continue;
            bs_wbuf_put_u8(out, ',');
            bs_wbuf_put_json_string(out, ev->arena + it->key_off, it->key_len);
            bs_wbuf_put_u8(out, ':');
            bs_wbuf_put_json_string(out, ev->arena + it->val_off, it->val_len);
        }
        bs_wbuf_put_u8(out, '}');
    }
    bs_wbuf_put_u8(out, ']');
    bs_wbuf_put_str(out, ",\"requestID\":\"");
    bs_audit_put_u64(out, ev->conn_id);
    bs_wbuf_put_u8(out, '-');
    bs_audit_put_i64(out, ev->correlation_id);
    bs_audit_put_kv(out, "\",\"correlationId\":", ev->correlation_id);
    if (ev->truncated) bs_wbuf_put_str(out, ",\"truncated\":true");
    return bs_wbuf_status(out);
}

/* See audit_internal.h. */
bs_status bs_audit_render_open(const bs_audit_event *ev, const char *source, const char *event_id,
                               bs_wbuf *out)
{
    bs_wbuf_put_u8(out, '{');
    if (ev->type == BS_AUDIT_EV_CONNECTION) {
        const char *name = bs_audit_conn_name(ev->conn_kind);
        BS_ENSURE(name, BS_E_MALFORMED);
        bs_audit_put_head(out, ev->time_us, source, name, "KafkaConnection", event_id);
        bs_wbuf_put_str(out, ",\"eventCategory\":\"Management\",\"readOnly\":true");
        put_connection(out, ev);
        return bs_wbuf_status(out);
    }
    if (ev->type == BS_AUDIT_EV_AUTHZ) return render_authz(ev, source, event_id, out);
    if (ev->type == BS_AUDIT_EV_SIDECAR) {
        bs_audit_put_head(out, ev->time_us, source, bs_sidecar_action_name(ev->action),
                          "SidecarAction", event_id);
        bs_wbuf_put_str(out, ",\"eventCategory\":\"Management\",\"readOnly\":false");
        bs_audit_put_action(out, ev);
        return bs_wbuf_status(out);
    }
    BS_ENSURE(ev->type == BS_AUDIT_EV_REQUEST, BS_E_MALFORMED);
    const bs_audit_api_class *c = bs_audit_api_lookup(ev->api_key);
    bs_audit_put_head(out, ev->time_us, source, c ? c->name : "UnknownApi", "KafkaApiCall",
                      event_id);
    bs_wbuf_put_str(out, ",\"eventCategory\":\"");
    bs_wbuf_put_str(out, bs_audit_category_name(c ? c->category : BS_AUDIT_MANAGEMENT));
    bs_wbuf_put_str(out, c && c->read_only ? "\",\"readOnly\":true" : "\",\"readOnly\":false");
    bs_audit_put_kv(out, ",\"apiKey\":", ev->api_key);
    bs_audit_put_kv(out, ",\"apiVersion\":", ev->api_version);
    bs_audit_put_identity(out, ev);
    bs_audit_put_user_agent(out, ev);
    put_request_params(out, ev);
    put_response(out, ev);
    int16_t err = bs_audit_summary_error(ev);
    if (err != BS_AUDIT_NO_ERROR) bs_audit_put_error(out, err);
    if (ev->latency_us >= 0) {
        /* Milliseconds with three decimals, exact (no floating point). */
        int frac = (int)(ev->latency_us % 1000);
        char f[4] = {(char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                     (char)('0' + frac % 10), 0};
        bs_audit_put_kv(out, ",\"latencyMs\":", ev->latency_us / 1000);
        bs_wbuf_put_u8(out, '.');
        bs_wbuf_put(out, f, 3);
    } else {
        bs_wbuf_put_str(out, ",\"latencyMs\":null");
    }
    bs_wbuf_put_str(out, ",\"requestID\":\"");
    bs_audit_put_u64(out, ev->conn_id);
    bs_wbuf_put_u8(out, '-');
    bs_audit_put_i64(out, ev->correlation_id);
    bs_audit_put_kv(out, "\",\"correlationId\":", ev->correlation_id);
    if (ev->request_bytes >= 0) bs_audit_put_kv(out, ",\"requestBytes\":", ev->request_bytes);
    if (ev->response_bytes >= 0) bs_audit_put_kv(out, ",\"responseBytes\":", ev->response_bytes);
    if (ev->truncated) bs_wbuf_put_str(out, ",\"truncated\":true");
    if (ev->undecoded) bs_wbuf_put_str(out, ",\"requestDecoded\":false");
    return bs_wbuf_status(out);
}

/* See audit_internal.h. */
void bs_audit_put_action(bs_wbuf *w, const bs_audit_event *ev)
{
    if (ev->broker_id >= 0)
        bs_audit_put_kv(w, ",\"brokerId\":", ev->broker_id);
    else
        bs_wbuf_put_str(w, ",\"brokerId\":null");
    bs_wbuf_put_str(w, ev->action_failed ? ",\"outcome\":\"failure\"" : ",\"outcome\":\"success\"");
    if (ev->reason) {
        bs_wbuf_put_str(w, ",\"message\":");
        bs_audit_put_cstr(w, ev->reason);
    }
    bs_wbuf_put_str(w, ",\"component\":{\"type\":");
    bs_audit_put_cstr(w, ev->subject_type);
    bs_wbuf_put_str(w, ",\"name\":");
    bs_audit_put_cstr(w, ev->subject);
    bool first = true;
    for (size_t i = 0; ev->n_res > 0 && i < ev->n_items; i++) {
        const bs_audit_item *it = &ev->items[i];
        if (it->resource != 0 || it->kind != BS_AUDIT_ITEM_ATTR) continue;
        bs_wbuf_put_str(w, first ? ",\"details\":{" : ",");
        first = false;
        bs_wbuf_put_json_string(w, ev->arena + it->key_off, it->key_len);
        bs_wbuf_put_u8(w, ':');
        bs_wbuf_put_json_string(w, ev->arena + it->val_off, it->val_len);
    }
    if (!first) bs_wbuf_put_u8(w, '}');
    bs_wbuf_put_u8(w, '}');
    bool any = false;
    for (size_t r = 1; r < ev->n_res; r++) {
        if (ev->res[r].type != BS_AUDIT_RES_CONFIG_KEY) continue;
        bs_wbuf_put_str(w, any ? ",{\"path\":" : ",\"changes\":[{\"path\":");
        any = true;
        bs_wbuf_put_json_string(w, ev->arena + ev->res[r].name_off, ev->res[r].name_len);
        for (size_t i = 0; i < ev->n_items; i++) {
            const bs_audit_item *it = &ev->items[i];
            if (it->resource != r || it->kind != BS_AUDIT_ITEM_ATTR) continue;
            bs_wbuf_put_u8(w, ',');
            bs_wbuf_put_json_string(w, ev->arena + it->key_off, it->key_len);
            bs_wbuf_put_u8(w, ':');
            /* "secret" is a boolean; old/new are JSON texts of the values */
            if ((it->key_len == 6 && memcmp(ev->arena + it->key_off, "secret", 6) == 0))
                bs_wbuf_put_str(w, "true");
            else
                bs_wbuf_put_json_string(w, ev->arena + it->val_off, it->val_len);
        }
        bs_wbuf_put_u8(w, '}');
    }
    if (any) bs_wbuf_put_u8(w, ']');
    if (ev->truncated) bs_wbuf_put_str(w, ",\"truncated\":true");
}

/* See audit.h. Details and changes are copied; a change marked secret gets
 * only its path, its kind and "secret": whatever values the caller set. */
bs_status bs_audit_event_from_action(bs_audit_event *ev, const bs_sidecar_action *a,
                                     int32_t broker_id)
{
    BS_ENSURE(ev && a, BS_E_STATE);
    bs_audit_event_reset(ev);
    ev->type = BS_AUDIT_EV_SIDECAR;
    ev->time_us = bs_audit_now_us();
    ev->broker_id = broker_id;
    ev->action = a->kind;
    ev->action_failed = a->failed;
    ev->subject_type = a->subject_type ? a->subject_type : "sidecar";
    ev->subject = a->subject;
    ev->reason = a->message;
    size_t idx;
    const char *sub = a->subject ? a->subject : "";
    BS_GUARD(bs_audit_event_add_resource(ev, BS_AUDIT_RES_COMPONENT, sub, strlen(sub), &idx));
    for (size_t i = 0; i < a->n_details; i++) {
        const bs_action_detail *d = &a->details[i];
        if (!d->key || !d->value) continue;
        BS_GUARD(bs_audit_event_add_attr(ev, idx, d->key, strlen(d->key), d->value,
                                         strlen(d->value)));
    }
    for (size_t i = 0; i < a->n_changes; i++) {
        const bs_config_change *c = &a->changes[i];
        if (!c->path || !c->change) continue;
        BS_GUARD(bs_audit_event_add_resource(ev, BS_AUDIT_RES_CONFIG_KEY, c->path, strlen(c->path),
                                             &idx));
        BS_GUARD(bs_audit_event_add_attr(ev, idx, "change", 6, c->change, strlen(c->change)));
        if (c->secret) {
            BS_GUARD(bs_audit_event_add_attr(ev, idx, "secret", 6, "", 0));
            continue;
        }
        if (c->old_value)
            BS_GUARD(bs_audit_event_add_attr(ev, idx, "old", 3, c->old_value, strlen(c->old_value)));
        if (c->new_value)
            BS_GUARD(bs_audit_event_add_attr(ev, idx, "new", 3, c->new_value, strlen(c->new_value)));
    }
    return BS_OK;
}

/* See audit_internal.h. */
bs_status bs_audit_render_event_open(bs_audit_format format, const bs_audit_event *ev,
                                     const char *source, const char *event_id, bs_wbuf *out)
{
    if (format == BS_AUDIT_FORMAT_OCSF) return bs_ocsf_render_open(ev, source, event_id, out);
    return bs_audit_render_open(ev, source, event_id, out);
}

/* See audit_internal.h. */
void bs_audit_put_close(bs_audit_format format, bs_wbuf *w)
{
    bs_wbuf_put_str(w, format == BS_AUDIT_FORMAT_OCSF ? "}}" : "}");
}

/* See audit.h. */
bs_status bs_audit_render_format(bs_audit_format format, const bs_audit_event *ev,
                                 const char *event_id, bs_wbuf *out)
{
    char id[37];
    if (!event_id) {
        BS_GUARD(bs_audit_new_event_id(ev->time_us, id));
        event_id = id;
    }
    BS_GUARD(bs_audit_render_event_open(format, ev, "kafka.brokerside", event_id, out));
    bs_audit_put_close(format, out);
    return bs_wbuf_status(out);
}

/* See audit.h. */
bs_status bs_audit_render(const bs_audit_event *ev, const char *event_id, bs_wbuf *out)
{
    return bs_audit_render_format(BS_AUDIT_FORMAT_CLOUDTRAIL, ev, event_id, out);
}
