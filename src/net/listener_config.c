/*
 * listener_config.c - the `listeners` array and the `limits` section: option
 * rows, the per-listener defaults that depend on the index or the upstream,
 * and the rules across listeners (unique names, no overlapping binds).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/net_config.h"
#include "brokerside/proxy_protocol.h"

#define CFG_MAX_LISTENERS 256

/*
 * See net_config.h. Same port (not 0, which the kernel makes unique) and
 * the same address, or a wildcard on either side. With SO_REUSEPORT the
 * kernel would accept both and split the traffic between them, so this must
 * be caught at load. IPv6 wildcards are dual-stack by default and so overlap
 * IPv4 addresses too.
 */
bool bs_conf_binds_overlap(const bs_endpoint *a, const bs_endpoint *b)
{
    if (a->port == 0 || b->port == 0 || a->port != b->port) return false;
    bool a_any = bs_endpoint_is_wildcard(a), b_any = bs_endpoint_is_wildcard(b);
    if (a->addr.ss_family == b->addr.ss_family) {
        if (a_any || b_any) return true;
        if (a->addr.ss_family == AF_INET)
            return ((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr ==
                   ((const struct sockaddr_in *)&b->addr)->sin_addr.s_addr;
        return memcmp(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr,
                      &((const struct sockaddr_in6 *)&b->addr)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    }
    return (a->addr.ss_family == AF_INET6 && a_any) || (b->addr.ss_family == AF_INET6 && b_any);
}

/* A listener name: the message continues the quoted value. */
static const char *check_name(const char *s)
{
    return bs_conf_name_ok(s) ? NULL : ": use 1 to 64 characters from A-Z a-z 0-9 _ . -";
}

/* CUSTOM `tls` / `upstream_tls`: a pointer to a section, NULL when absent or
 * null (plaintext). */
static void parse_tls(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                      void *base)
{
    char p[BS_CONF_PATH_MAX];
    void **out = (void **)((char *)base + o->offset);
    const cJSON *v = obj ? bs_conf_member(obj, o->name) : NULL;
    *out = NULL;
    if (!v) return;
    bs_conf_path_key(p, sizeof p, path, o->name);
    if (!cJSON_IsObject(v)) {
        bs_conf_err(c, p, "expected an object or null, got %s", bs_conf_type_name(v));
        return;
    }
    void *t = calloc(1, o->sub == &bs_tls_server_conf ? sizeof(bs_tls_server_config)
                                                        : sizeof(bs_tls_client_config));
    if (!t) {
        c->nomem = true;
        return;
    }
    bs_conf_walk1(c, v, p, o->sub, t);
    *out = t;
}

/* Free a `tls` / `upstream_tls` section. */
static void free_tls(const bs_conf_opt *o, void *base)
{
    void **t = (void **)((char *)base + o->offset);
    if (!*t) return;
    bs_conf_free_section(o->sub, *t);
    free(*t);
    *t = NULL;
}

/* SIGHUP: turning TLS on or off needs a restart; its settings reload. */
static bool diff_tls(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                     char *what, size_t whatlen)
{
    bool on_a = *(void *const *)((const char *)a + o->offset) != NULL;
    bool on_b = *(void *const *)((const char *)b + o->offset) != NULL;
    if (on_a == on_b) return false;
    bs_conf_list_add(what, whatlen, label);
    return true;
}

/* CUSTOM `advertised` (kafka listeners only): the "host:port" clients are
 * told for the broker this listener fronts. */
static void parse_advertised(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                             void *base)
{
    bs_listener_config *l = base;
    char p[BS_CONF_PATH_MAX], q[300];
    const char *s;
    (void)o;
    if (!obj) return;
    bs_conf_path_key(p, sizeof p, path, "advertised");
    if (!bs_conf_get_string(c, obj, "advertised", path, &s) || !s) return;
    if (l->protocol != BS_PROTOCOL_KAFKA) {
        bs_conf_err(c, p, "only a \"kafka\" listener announces broker addresses; remove it");
        return;
    }
    char *host = malloc(strlen(s) + 1);
    if (!host) {
        c->nomem = true;
        return;
    }
    const char *why = bs_conf_check_hostport(s, host, &l->advertised_port);
    if (why) {
        bs_conf_err(c, p, "%s: %s", bs_conf_quote(q, sizeof q, s), why);
        free(host);
        return;
    }
    l->advertised_host = host;
}

/* Free `advertised`. */
static void free_advertised(const bs_conf_opt *o, void *base)
{
    bs_listener_config *l = base;
    (void)o;
    free(l->advertised_host);
    l->advertised_host = NULL;
}

/* Most entries of `proxy_protocol_sources` (load balancer subnets, not clients). */
#define CFG_MAX_PROXY_SOURCES 256

/* CUSTOM `proxy_protocol_sources`: an array of CIDR strings, required (and
 * only allowed) with `proxy_protocol: true`, which is read before it. */
static void parse_proxy_sources(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                                const char *path, void *base)
{
    bs_listener_config *l = base;
    char p[BS_CONF_PATH_MAX], pi[BS_CONF_PATH_MAX], q[160];
    const cJSON *v = obj ? bs_conf_member(obj, o->name) : NULL;
    bs_conf_path_key(p, sizeof p, path, o->name);
    if (v && cJSON_IsNull(v)) v = NULL;
    if (!v) {
        if (l->proxy_protocol)
            bs_conf_err(c, p,
                        "is required with \"proxy_protocol\": true: the networks of the load "
                        "balancers allowed to send PROXY headers, e.g. [\"10.0.0.0/8\"]");
        return;
    }
    if (!l->proxy_protocol) {
        bs_conf_err(c, p, "has no effect without \"proxy_protocol\": true; remove it");
        return;
    }
    if (!cJSON_IsArray(v)) {
        bs_conf_err(c, p, "expected an array of CIDR strings, got %s", bs_conf_type_name(v));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0 || n > CFG_MAX_PROXY_SOURCES) {
        bs_conf_err(c, p, "must list 1 to %d networks (got %zu)", CFG_MAX_PROXY_SOURCES, n);
        return;
    }
    bs_cidr *list = calloc(n, sizeof *list);
    if (!list) {
        c->nomem = true;
        return;
    }
    size_t i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        bs_conf_path_index(pi, sizeof pi, p, i);
        if (!cJSON_IsString(it)) {
            bs_conf_err(c, pi, "expected a CIDR string such as \"10.0.0.0/8\", got %s",
                        bs_conf_type_name(it));
            continue;
        }
        const char *why = bs_cidr_parse(it->valuestring, &list[i]);
        if (why == bs_cidr_host_bits) {
            char net[64];
            bs_cidr_format(&list[i], net, sizeof net);
            bs_conf_err(c, pi, "%s: %s: did you mean \"%s\"?",
                        bs_conf_quote(q, sizeof q, it->valuestring), why, net);
        } else if (why) {
            bs_conf_err(c, pi, "%s: %s", bs_conf_quote(q, sizeof q, it->valuestring), why);
        }
    }
    l->proxy_sources = list;
    l->n_proxy_sources = n;
}

/* Free `proxy_protocol_sources`. */
static void free_proxy_sources(const bs_conf_opt *o, void *base)
{
    bs_listener_config *l = base;
    (void)o;
    free(l->proxy_sources);
    l->proxy_sources = NULL;
    l->n_proxy_sources = 0;
}

/* SIGHUP: the source list is read when the listener is built: any change
 * needs a restart. */
static bool diff_proxy_sources(const bs_conf_opt *o, const void *a, const void *b,
                               const char *label, char *what, size_t whatlen)
{
    const bs_listener_config *la = a, *lb = b;
    (void)o;
    if (la->n_proxy_sources == lb->n_proxy_sources &&
        (la->n_proxy_sources == 0 ||
         memcmp(la->proxy_sources, lb->proxy_sources,
                la->n_proxy_sources * sizeof *la->proxy_sources) == 0))
        return false;
    bs_conf_list_add(what, whatlen, label);
    return true;
}

static const char *const protocol_names[] = {"kafka", "tcp", NULL};

static const bs_conf_opt listener_rows[] = {
    /* Default "listener<i>": filled in by the array's reader. */
    {.name = "name", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_listener_config, name), .check_str = check_name},
    {.name = "bind", .type = BS_CONF_ENDPOINT, .flags = BS_CONF_RESTART | BS_CONF_PASSIVE,
     BS_CONF_AT(bs_listener_config, bind), .min = 0},
    {.name = "upstream", .type = BS_CONF_ENDPOINT, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_listener_config, upstream), .min = 1},
    {.name = "protocol", .type = BS_CONF_ENUM, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_listener_config, protocol), .choices = protocol_names, .def = "kafka"},
    {.name = "broker_id", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_listener_config, broker_id), .min = 0, .max = INT32_MAX, .def = "-1"},
    {.name = "tls", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART, BS_CONF_AT(bs_listener_config, tls),
     .parse = parse_tls, .free = free_tls, .diff = diff_tls, .restart_label = ".tls (on/off)", .sub = &bs_tls_server_conf,
     .doc = "object or null"},
    {.name = "upstream_tls", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_listener_config, upstream_tls),
     .parse = parse_tls, .free = free_tls, .diff = diff_tls,
     .restart_label = ".upstream_tls (on/off)", .sub = &bs_tls_client_conf, .doc = "object or null"},
    {.name = "advertised", .type = BS_CONF_CUSTOM, .parse = parse_advertised,
     .free = free_advertised, .doc = "string"},
    {.name = "proxy_protocol", .type = BS_CONF_BOOL, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_listener_config, proxy_protocol), .def = "false"},
    {.name = "proxy_protocol_sources", .type = BS_CONF_CUSTOM, .flags = BS_CONF_RESTART,
     .parse = parse_proxy_sources, .free = free_proxy_sources, .diff = diff_proxy_sources,
     .doc = "array of strings"},
};

const bs_conf_section bs_listener_conf = BS_CONF_SECTION("listeners[i]", listener_rows, NULL);

/* See net_config.h: `listeners` is required, 1..256 objects; then the
 * rules across listeners. */
void bs_listeners_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                             const char *path, bs_listener_config **out, size_t *n_out)
{
    char p[BS_CONF_PATH_MAX], pj[BS_CONF_PATH_MAX], q[160];
    (void)o;
    (void)path;
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, "listeners") : NULL;
    if (!v || cJSON_IsNull(v)) {
        bs_conf_err(c, "listeners", "is required: at least one listener");
        return;
    }
    if (!cJSON_IsArray(v)) {
        bs_conf_err(c, "listeners", "expected an array of listener objects, got %s",
                    bs_conf_type_name(v));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0) {
        bs_conf_err(c, "listeners", "must contain at least one listener");
        return;
    }
    if (n > CFG_MAX_LISTENERS) {
        bs_conf_err(c, "listeners", "has %zu entries: at most %d are supported", n,
                    CFG_MAX_LISTENERS);
        return;
    }
    bs_listener_config *ls = calloc(n, sizeof *ls);
    if (!ls) {
        c->nomem = true;
        return;
    }
    *out = ls;
    *n_out = n;
    size_t i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        bs_listener_config *l = &ls[i];
        bs_conf_path_index(p, sizeof p, "listeners", i);
        l->broker_id = -1;
        if (!cJSON_IsObject(it)) {
            bs_conf_err(c, p, "expected an object, got %s", bs_conf_type_name(it));
            continue;
        }
        bs_conf_walk1(c, it, p, &bs_listener_conf, l);
        if (!l->name && !bs_conf_member(it, "name") && asprintf(&l->name, "listener%zu", i) < 0) {
            l->name = NULL;
            c->nomem = true;
        }
        bs_tls_client_config *ut = l->upstream_tls;
        if (ut && !ut->server_name && !bs_conf_member(bs_conf_member(it, "upstream_tls"),
                                                      "server_name"))
            ut->server_name = bs_conf_strdup(c, l->upstream.host);
    }
    for (size_t j = 0; j < n; j++) {
        for (size_t k = 0; k < j; k++) {
            const bs_listener_config *a = &ls[k], *b = &ls[j];
            if (a->name && b->name && strcmp(a->name, b->name) == 0) {
                bs_conf_path_index(pj, sizeof pj, "listeners", j);
                bs_conf_path_key(p, sizeof p, pj, "name");
                bs_conf_err(c, p, "%s is already the name of listeners[%zu]",
                            bs_conf_quote(q, sizeof q, b->name), k);
            }
            if (a->bind.text && b->bind.text && bs_conf_binds_overlap(&a->bind, &b->bind)) {
                bs_conf_path_index(pj, sizeof pj, "listeners", j);
                bs_conf_path_key(p, sizeof p, pj, "bind");
                bs_conf_err(c, p,
                            "%s overlaps listeners[%zu].bind (%s): each listener needs its own "
                            "address and port",
                            bs_conf_quote(q, sizeof q, b->bind.text), k, a->bind.text);
            }
        }
    }
}

/* See net_config.h. */
void bs_listeners_conf_free(bs_listener_config **ls, size_t *n)
{
    for (size_t i = 0; *ls && i < *n; i++)
        bs_conf_free_section(&bs_listener_conf, &(*ls)[i]);
    free(*ls);
    *ls = NULL;
    *n = 0;
}

/* See net_config.h: adding, removing or reordering listeners needs a
 * restart; so do the listener rows flagged BS_CONF_RESTART. */
bool bs_listeners_conf_diff(const bs_listener_config *a, size_t na, const bs_listener_config *b,
                            size_t nb, char *what, size_t whatlen)
{
    if (na != nb) {
        bs_conf_list_add(what, whatlen, "the number of listeners");
        return true;
    }
    bool changed = false;
    char prefix[64];
    for (size_t i = 0; i < na; i++) {
        snprintf(prefix, sizeof prefix, "listeners[%zu]", i);
        if (bs_conf_restart_diff(&bs_listener_conf, &a[i], &b[i], prefix,
                                 what, whatlen))
            changed = true;
    }
    return changed;
}

static const bs_conf_opt limits_rows[] = {
    {.name = "max_connections", .type = BS_CONF_INT, BS_CONF_AT(bs_limits_config, max_connections),
     .min = 1, .max = 1000000, .def = "10000"},
    {.name = "buffer_bytes", .type = BS_CONF_INT, BS_CONF_AT(bs_limits_config, buffer_bytes),
     .min = 4096, .max = 16777216, .def = "65536"},
    {.name = "handshake_timeout_s", .type = BS_CONF_SECONDS,
     BS_CONF_AT(bs_limits_config, handshake_timeout_s), .max = 3600, .def = "10"},
    {.name = "idle_timeout_s", .type = BS_CONF_SECONDS,
     BS_CONF_AT(bs_limits_config, idle_timeout_s), .max = 604800, .def = "600"},
    {.name = "connect_timeout_s", .type = BS_CONF_SECONDS,
     BS_CONF_AT(bs_limits_config, connect_timeout_s), .max = 3600, .def = "5"},
    {.name = "shutdown_grace_s", .type = BS_CONF_SECONDS,
     BS_CONF_AT(bs_limits_config, shutdown_grace_s), .max = 3600, .def = "30"},
};

const bs_conf_section bs_limits_conf = BS_CONF_SECTION("limits", limits_rows, NULL);
