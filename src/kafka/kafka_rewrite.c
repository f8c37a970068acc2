/* kafka_rewrite.c - broker endpoint rewriting and ApiVersions capping (see kafka_rewrite.h). */
#include "brokerside/kafka_rewrite.h"

#include <string.h>
#include <strings.h>

#include "brokerside/kafka.h"

/* The APIs whose bodies this build decodes (capped in ApiVersions). */
static const int16_t decoded_apis[] = {
    BS_KAFKA_PRODUCE,          BS_KAFKA_FETCH,        BS_KAFKA_METADATA,
    BS_KAFKA_FIND_COORDINATOR, BS_KAFKA_API_VERSIONS, BS_KAFKA_DESCRIBE_CLUSTER,
    BS_KAFKA_DESCRIBE_QUORUM,  BS_KAFKA_SHARE_FETCH,  BS_KAFKA_SHARE_ACKNOWLEDGE,
};

/* Versions the codec could decode but the proxy must not let clients use.
 * Produce v13 (KIP-516) names topics by id only: encryption rules, per-topic
 * metrics and audit select by topic name, and a sidecar in front of one broker
 * need not have seen the Metadata answer that maps the id (the client may have
 * fetched it through another broker's sidecar). v12 keeps KIP-951 leader hints. */
static const struct {
    int16_t api_key, max_version;
} policy_caps[] = {
    {BS_KAFKA_PRODUCE, 12},
};

/* See kafka_rewrite.h. Any API: the generated table's max version (the
 * request header and audit decoding of a newer version are unknown, and it
 * could carry an endpoint where no older version did). Decoded APIs: the
 * lowest max version among the generated request/response schemas of the
 * API, i.e. every version the codec and its unit tests cover. Then
 * policy_caps. */
int16_t bs_kafka_max_supported_version(int16_t api_key)
{
    const bs_kafka_api_info *a = bs_kafka_api(api_key);
    if (!a || a->min_version > a->max_version) return -1;
    int16_t cap = a->max_version;
    for (size_t i = 0; i < BS_ARRAY_LEN(policy_caps); i++)
        if (policy_caps[i].api_key == api_key && policy_caps[i].max_version < cap)
            cap = policy_caps[i].max_version;
    bool decoded = false;
    for (size_t i = 0; i < BS_ARRAY_LEN(decoded_apis); i++)
        decoded |= decoded_apis[i] == api_key;
    if (!decoded) return cap;
    for (size_t i = 0; i < bs_kafka_messages_count; i++) {
        const bs_kafka_message *m = &bs_kafka_messages[i];
        if (m->api_key == api_key && m->max_version < cap) cap = m->max_version;
    }
    return cap;
}

/* Does struct `s` (or anything below it) hold an endpoint (Host and Port,
 * Host present) at version v? Compares names: used for checking only. */
static bool struct_has_endpoints(const bs_kafka_struct *s, int16_t v, int depth)
{
    if (depth > BS_KAFKA_MAX_DEPTH) return false;
    int host = bs_kafka_struct_field(s, "Host"), port = bs_kafka_struct_field(s, "Port");
    if (host >= 0 && port >= 0 && bs_kafka_field_present(&s->fields[host], v)) return true;
    for (size_t i = 0; i < s->nfields; i++) {
        const bs_kafka_field *f = &s->fields[i];
        if (f->sub && bs_kafka_field_present(f, v) && struct_has_endpoints(f->sub, v, depth + 1))
            return true;
    }
    return false;
}

/* See kafka_rewrite.h. The reference walk over the schema; the generated
 * endpoint_versions masks cache it (the unit tests check they agree). */
bool bs_kafka_struct_has_endpoints(const bs_kafka_struct *s, int16_t v)
{
    return struct_has_endpoints(s, v, 0);
}

/* See kafka_rewrite.h. */
bool bs_kafka_response_has_endpoints(int16_t api_key, int16_t api_version)
{
    if (api_key == BS_KAFKA_API_VERSIONS) return false;
    const bs_kafka_message *m = bs_kafka_message_find(api_key, false);
    if (!m || api_version < m->min_version || api_version > m->max_version || api_version >= 64)
        return false;
    return (m->endpoint_versions >> api_version) & 1;
}

/* For a response without endpoints at this version: BS_OK (forward it), or
 * BS_E_UNSUPPORTED for an endpoint-carrying API at a version outside the
 * codec's range, which must not slip through unrewritten (the caller caps
 * versions, so only a misbehaving broker gets here). */
static bs_status no_endpoints_status(int16_t api_key, int16_t api_version)
{
    const bs_kafka_message *m = bs_kafka_message_find(api_key, false);
    bool endpoints_api = api_key == BS_KAFKA_METADATA || api_key == BS_KAFKA_FIND_COORDINATOR ||
                         api_key == BS_KAFKA_DESCRIBE_CLUSTER || api_key == BS_KAFKA_SHARE_FETCH ||
                         api_key == BS_KAFKA_SHARE_ACKNOWLEDGE ||
                         (m && api_version > m->max_version && api_key != BS_KAFKA_API_VERSIONS);
    return endpoints_api ? BS_E_UNSUPPORTED : BS_OK;
}

/* One endpoint of the response as the broker wrote it (for `shared`). */
typedef struct rw_seen {
    int32_t node;
    const uint8_t *host;
    size_t host_len;
    int64_t port;
} rw_seen;

typedef struct rw_ctx {
    int16_t v;
    bs_kafka_map_fn map_fn;
    void *map_arg;
    bs_kafka_arena *a;
    bool changed;
    int32_t bad_node;
    bool collecting;  /* first pass: record endpoints in `seen`, change nothing */
    rw_seen *seen;    /* BS_KAFKA_MAX_ENDPOINTS entries (arena) */
    size_t n_seen;
    bool seen_overflow; /* more endpoints than `seen` holds: every address counts as shared */
} rw_ctx;

/* Does another node than `node` advertise host[len]:port in this response? */
static bool address_shared(const rw_ctx *x, int32_t node, const uint8_t *host, size_t len,
                           int64_t port)
{
    if (x->seen_overflow) return true;
    for (size_t i = 0; i < x->n_seen; i++) {
        const rw_seen *e = &x->seen[i];
        if (e->node != node && e->port == port && e->host_len == len &&
            (len == 0 || strncasecmp((const char *)e->host, (const char *)host, len) == 0))
            return true;
    }
    return false;
}

/* Rewrites the endpoint held by object `o` if its struct has Host and Port.
 * The node is the struct's own NodeId/BrokerId, else `parent_node` (the
 * enclosing struct's, e.g. DescribeQuorum Nodes[].Listeners[]); with neither
 * there is no node to map by, which is BS_E_NOT_FOUND (bad node -1). */
static bs_status rewrite_endpoint(rw_ctx *x, bs_kafka_obj *o, bool has_parent, int32_t parent_node)
{
    const bs_kafka_struct *s = o->schema;
    int node = s->node_idx, host = s->host_idx, port = s->port_idx, err = s->error_idx;
    if (host < 0 || port < 0) return BS_OK;
    bs_kafka_val *hv = &o->vals[host], *pv = &o->vals[port];
    /* Absent at this version, or a tagged endpoint not on the wire. */
    if (!hv->present || !pv->present) return BS_OK;
    bool has_node = node >= 0 && o->vals[node].present;
    if (!has_node && !has_parent) {
        x->bad_node = -1;
        return BS_E_NOT_FOUND; /* an address with no node to map it by: never forward it */
    }
    int32_t node_id = has_node ? (int32_t)o->vals[node].i : parent_node;
    if (x->collecting) {
        if (x->n_seen == BS_KAFKA_MAX_ENDPOINTS) {
            x->seen_overflow = true;
            return BS_OK;
        }
        x->seen[x->n_seen++] = (rw_seen){.node = node_id,
                                         .host = hv->null ? NULL : hv->p,
                                         .host_len = hv->null ? 0 : hv->n,
                                         .port = pv->i};
        return BS_OK;
    }
    if (err >= 0 && o->vals[err].present && o->vals[err].i != 0 && node_id == -1) {
        /* An error answer names no broker; make sure it carries no address either. */
        if (hv->n == 0 && !hv->null) return BS_OK;
        hv->null = false;
        hv->n = 0;
        pv->i = -1;
        x->changed = true;
        return BS_OK;
    }
    char name[BS_KAFKA_MAX_HOST + 1];
    int32_t new_port = 0;
    name[0] = '\0';
    bs_kafka_addr was = {.host = hv->null ? "" : (const char *)hv->p,
                         .host_len = hv->null ? 0 : hv->n,
                         .port = (int32_t)pv->i,
                         .shared = address_shared(x, node_id, hv->null ? NULL : hv->p,
                                                  hv->null ? 0 : hv->n, pv->i)};
    bs_status st = x->map_fn(x->map_arg, node_id, &was, name, sizeof name, &new_port);
    if (st != BS_OK) {
        x->bad_node = node_id;
        return st; /* BS_E_NOT_FOUND, or whatever else the map function failed with */
    }
    size_t n = strnlen(name, sizeof name);
    BS_ENSURE(n <= BS_KAFKA_MAX_HOST, BS_E_MALFORMED);
    /* DescribeQuorum carries ports as uint16 */
    BS_ENSURE(s->fields[port].type != BS_KT_UINT16 || (new_port >= 0 && new_port <= 65535),
              BS_E_MALFORMED);
    void *copy = NULL;
    if (n) {
        BS_GUARD(bs_kafka_arena_alloc(x->a, n, &copy));
        memcpy(copy, name, n);
    }
    hv->p = copy;
    hv->n = n;
    hv->null = false;
    pv->i = new_port;
    x->changed = true;
    return BS_OK;
}

/* Walks the tree below `o`, rewriting every endpoint; the innermost node id
 * seen on the way down is passed to endpoints that have none of their own. */
static bs_status rewrite_walk(rw_ctx *x, bs_kafka_obj *o, int depth, bool has_node, int32_t node_id)
{
    BS_ENSURE(depth <= BS_KAFKA_MAX_DEPTH, BS_E_MALFORMED);
    BS_GUARD(rewrite_endpoint(x, o, has_node, node_id));
    const bs_kafka_struct *s = o->schema;
    int nf = s->node_idx;
    if (nf >= 0 && o->vals[nf].present) {
        has_node = true;
        node_id = (int32_t)o->vals[nf].i;
    }
    for (size_t i = 0; i < s->nfields; i++) {
        const bs_kafka_field *f = &s->fields[i];
        bs_kafka_val *val = &o->vals[i];
        /* subtrees that cannot hold an endpoint (Fetch partitions...) are skipped whole */
        if (!f->sub || !f->sub->endpoints_below || !val->present || !val->items) continue;
        int32_t n = f->type == BS_KT_STRUCT ? 1 : val->count;
        for (int32_t k = 0; k < n; k++)
            BS_GUARD(rewrite_walk(x, &val->items[k], depth + 1, has_node, node_id));
    }
    return BS_OK;
}

/* See kafka_rewrite.h. */
bs_status bs_kafka_rewrite_response(int16_t api_key, int16_t api_version, const uint8_t *body,
                                    size_t len, bs_kafka_map_fn map_fn, void *map_arg,
                                    bs_kafka_arena *arena, bs_wbuf *out, bool *changed,
                                    int32_t *bad_node)
{
    bs_kafka_arena local;
    bs_kafka_obj *root = NULL;
    bs_status st = BS_OK;
    *changed = false;
    *bad_node = -1;
    if (!bs_kafka_response_has_endpoints(api_key, api_version))
        return no_endpoints_status(api_key, api_version);
    const bs_kafka_message *m = bs_kafka_message_find(api_key, false);
    if (!arena) {
        bs_kafka_arena_init(&local,
                            ((size_t)1 << 20) + (len > SIZE_MAX / 64 ? SIZE_MAX / 2 : len * 32));
        arena = &local;
    } else {
        bs_kafka_arena_reset(arena);
    }
    rw_ctx x = {.v = api_version, .map_fn = map_fn, .map_arg = map_arg, .a = arena, .bad_node = -1};
    BS_GUARD_GOTO(st, bs_kafka_decode(m, api_version, body, len, arena, &root), done);
    /* First pass: which addresses does more than one node advertise? */
    void *seen = NULL;
    BS_GUARD_GOTO(st, bs_kafka_arena_alloc(arena, BS_KAFKA_MAX_ENDPOINTS * sizeof(rw_seen), &seen),
                  done);
    x.seen = seen;
    x.collecting = true;
    BS_GUARD_GOTO(st, rewrite_walk(&x, root, 0, false, -1), done);
    x.collecting = false;
    BS_GUARD_GOTO(st, rewrite_walk(&x, root, 0, false, -1), done);
    *bad_node = x.bad_node;
    if (x.changed) BS_GUARD_GOTO(st, bs_kafka_encode(m, api_version, root, out), done);
    *changed = x.changed;
done:
    if (st != BS_OK) *bad_node = x.bad_node;
    if (arena == &local) bs_kafka_arena_free(&local);
    return st;
}

/* See kafka_rewrite.h. */
bs_status bs_kafka_rewrite_api_versions(const uint8_t *body, size_t len, int16_t version,
                                        bs_wbuf *out, bool *changed)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_API_VERSIONS, false);
    bs_kafka_arena a;
    bs_kafka_obj *root = NULL;
    bs_status st;
    *changed = false;
    BS_ENSURE(m, BS_E_UNSUPPORTED);
    bs_kafka_arena_init(&a, ((size_t)1 << 20) + (len > SIZE_MAX / 64 ? SIZE_MAX / 2 : len * 64));
    st = bs_kafka_decode(m, version, body, len, &a, &root);
    /* UNSUPPORTED_VERSION answers are v0-encoded whatever the request version. */
    if (st != BS_OK && version != 0 && len >= 2 && body[0] == 0 && body[1] == 35) {
        bs_kafka_arena_reset(&a);
        version = 0;
        st = bs_kafka_decode(m, version, body, len, &a, &root);
    }
    if (st != BS_OK) goto done;
    int keys = bs_kafka_struct_field(m->body, "ApiKeys");
    const bs_kafka_struct *av = m->body->fields[keys].sub;
    int fkey = bs_kafka_struct_field(av, "ApiKey"), fmin = bs_kafka_struct_field(av, "MinVersion"),
        fmax = bs_kafka_struct_field(av, "MaxVersion");
    bs_kafka_val *arr = &root->vals[keys];
    bool any = false;
    int32_t kept = 0;
    for (int32_t k = 0; k < arr->count; k++) {
        bs_kafka_val *vals = arr->items[k].vals;
        int16_t cap = bs_kafka_max_supported_version((int16_t)vals[fkey].i);
        if (cap < 0 || vals[fmin].i > cap) {
            any = true; /* an API (or every version of it) we cannot serve: drop it */
            continue;
        }
        if (vals[fmax].i > cap) {
            vals[fmax].i = cap;
            any = true;
        }
        arr->items[kept++] = arr->items[k];
    }
    if (arr->count > 0) arr->count = kept;
    if (any) BS_GUARD_GOTO(st, bs_kafka_encode(m, version, root, out), done);
    *changed = any;
done:
    bs_kafka_arena_free(&a);
    return st;
}

/* See kafka_rewrite.h. */
bs_status bs_kafka_rewrite_response_frame(int16_t api_key, int16_t api_version,
                                          const uint8_t *payload, size_t len,
                                          bs_kafka_map_fn map_fn, void *map_arg,
                                          bs_kafka_arena *arena, bs_wbuf *out, bool *changed,
                                          int32_t *bad_node)
{
    bs_kafka_response_header h;
    int hv;
    bs_status st;
    *changed = false;
    *bad_node = -1;
    bool api_versions = api_key == BS_KAFKA_API_VERSIONS;
    /* the common case first: nothing in this response can need a change */
    if (!api_versions && !bs_kafka_response_has_endpoints(api_key, api_version))
        return no_endpoints_status(api_key, api_version);
    BS_GUARD(bs_kafka_response_header_version(api_key, api_version, &hv));
    BS_GUARD(bs_kafka_parse_response_header(payload, len, hv, &h));
    size_t start = out->len;
    bs_wbuf_put_be32(out, 0); /* size, patched below */
    bs_wbuf_put(out, payload, h.header_len);
    if (api_versions)
        st = bs_kafka_rewrite_api_versions(payload + h.header_len, len - h.header_len, api_version,
                                           out, changed);
    else
        st = bs_kafka_rewrite_response(api_key, api_version, payload + h.header_len,
                                       len - h.header_len, map_fn, map_arg, arena, out, changed,
                                       bad_node);
    if (st == BS_OK) st = bs_wbuf_status(out);
    if (st == BS_OK && *changed && out->len - start - 4 > INT32_MAX) st = BS_E_TOO_LARGE;
    if (st != BS_OK || !*changed) {
        /* leave `out` as it was: the caller forwards the original (or nothing) */
        out->len = start;
        if (st != BS_OK) *changed = false;
        return st;
    }
    bs_wbuf_patch_be32(out, start, (uint32_t)(out->len - start - 4));
    return BS_OK;
}
