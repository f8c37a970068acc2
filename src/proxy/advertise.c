/*
 * advertise.c - the `kafka` section and the advertised-address lookups the
 * Kafka session uses to rewrite broker addresses (explicit node-id map
 * first, then the "{id}" template, then the zero-config listener routes).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "brokerside/proxy_config.h"

/*
 * Replace every "{id}" in `tmpl` by the decimal `id` into dst[dstlen].
 * Returns BS_E_TOO_LARGE if it does not fit.
 */
static bs_status expand_template(const char *tmpl, int32_t id, char *dst, size_t dstlen)
{
    if (dstlen == 0) return BS_E_TOO_LARGE;
    char num[16];
    int nl = snprintf(num, sizeof num, "%" PRId32, id);
    size_t o = 0;
    for (const char *s = tmpl; *s;) {
        const char *piece = s;
        size_t k = 1;
        if (strncmp(s, "{id}", 4) == 0) {
            piece = num;
            k = (size_t)nl;
            s += 4;
        } else {
            s++;
        }
        if (o + k >= dstlen) return BS_E_TOO_LARGE;
        memcpy(dst + o, piece, k);
        o += k;
    }
    dst[o] = '\0';
    return BS_OK;
}

/* Validate an advertise template: contains "{id}", no other braces, and with
 * "{id}" replaced gives a valid host:port. */
static void check_template(bs_conf *c, const char *p, const char *t)
{
    char q[160];
    if (!strstr(t, "{id}")) {
        bs_conf_err(c, p, "%s: the template must contain {id} (replaced by the broker's node id)",
                bs_conf_quote(q, sizeof q, t));
        return;
    }
    /* Braces other than {id} are almost certainly a typo such as {ID} or {node}. */
    for (const char *s = t; *s; s++) {
        if (strncmp(s, "{id}", 4) == 0) {
            s += 3;
            continue;
        }
        if (*s == '{' || *s == '}') {
            bs_conf_err(c, p, "%s: only the placeholder {id} is supported", bs_conf_quote(q, sizeof q, t));
            return;
        }
    }
    /* Expanding with id 0 checks the host and also a port built from {id}
     * (e.g. "localhost:909{id}"); ids that overflow such a port are refused
     * at lookup time. */
    size_t cap = strlen(t) * 3 + 16;
    char *buf = malloc(cap), *host = malloc(cap);
    if (!buf || !host) {
        c->nomem = true;
        goto out;
    }
    uint16_t port;
    const char *why = NULL;
    if (expand_template(t, 0, buf, cap) != BS_OK)
        why = "too long";
    else
        why = bs_conf_check_hostport(buf, host, &port);
    if (why) bs_conf_err(c, p, "%s: %s", bs_conf_quote(q, sizeof q, t), why);
out:
    free(buf);
    free(host);
}

/* Parse a node-id map object ({"1": "host:port", ...}) at `path` into k. */
static void parse_advertise_map(bs_conf *c, const cJSON *m, const char *path, bs_kafka_config *k)
{
    char p[BS_CONF_PATH_MAX], q[160], qv[300];
    size_t n = (size_t)cJSON_GetArraySize(m);
    if (n == 0) {
        /* An empty map advertises nothing: almost certainly an unfinished edit. */
        bs_conf_err(c, path, "maps no node id: add \"ID\": \"host:port\" entries%s",
                strcmp(path, "kafka.advertise") == 0 ? " or use a template" : " or remove it");
        return;
    }
    k->advertise = calloc(n, sizeof *k->advertise);
    if (!k->advertise) {
        c->nomem = true;
        return;
    }
    for (const cJSON *it = m->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        snprintf(p, sizeof p, "%s[%s]", path, bs_conf_quote(q, sizeof q, key));
        bool dup = false;
        for (const cJSON *prev = m->child; prev != it; prev = prev->next)
            if (prev->string && strcmp(prev->string, key) == 0) dup = true;
        if (dup) {
            bs_conf_err(c, p, "duplicate node id %s", bs_conf_quote(q, sizeof q, key));
            continue;
        }
        /* Digits only and no leading zero, so "01" and "1" cannot both map. */
        size_t kl = strlen(key);
        bool digits = kl > 0 && kl <= 10 && (key[0] != '0' || kl == 1);
        for (size_t i = 0; digits && i < kl; i++)
            if (!isdigit((unsigned char)key[i])) digits = false;
        long long id = digits ? strtoll(key, NULL, 10) : -1;
        if (!digits || id > INT32_MAX) {
            bs_conf_err(c, p,
                    "%s is not a node id: keys must be non-negative integers written in "
                    "decimal, e.g. \"1\"",
                    bs_conf_quote(q, sizeof q, key));
            continue;
        }
        if (!cJSON_IsString(it)) {
            bs_conf_err(c, p, "expected a \"host:port\" string, got %s", bs_conf_type_name(it));
            continue;
        }
        const char *s = it->valuestring;
        char *host = malloc(strlen(s) + 1);
        if (!host) {
            c->nomem = true;
            return;
        }
        uint16_t port;
        const char *why = bs_conf_check_hostport(s, host, &port);
        if (why) {
            bs_conf_err(c, p, "%s: %s", bs_conf_quote(qv, sizeof qv, s), why);
            free(host);
            continue;
        }
        bs_advertise_entry *e = &k->advertise[k->n_advertise++];
        e->node_id = (int32_t)id;
        e->host = host;
        e->port = port;
    }
}

/* CUSTOM `kafka.advertise`: a template string, a node-id map, or an object
 * with "nodes" and/or "template". */
static void parse_advertise(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                            void *base)
{
    static const bs_conf_opt combined_rows[] = {
        {.name = "nodes", .type = BS_CONF_CUSTOM},
        {.name = "template", .type = BS_CONF_CUSTOM},
    };
    static const bs_conf_section combined = BS_CONF_SECTION("kafka.advertise", combined_rows, NULL);
    const bs_conf_section *const secs[] = {&combined};
    bs_kafka_config *k = base;
    char q[160];
    (void)o;
    (void)path;
    const cJSON *a = obj ? bs_conf_member(obj, "advertise") : NULL;
    if (!a) return;
    if (cJSON_IsString(a)) {
        check_template(c, "kafka.advertise", a->valuestring);
        k->advertise_template = bs_conf_strdup(c, a->valuestring);
        return;
    }
    if (!cJSON_IsObject(a)) {
        bs_conf_err(c, "kafka.advertise",
                    "expected a template string, a node-id map, or an object with \"nodes\" "
                    "and/or \"template\"; got %s",
                    bs_conf_type_name(a));
        return;
    }
    bool is_combined = cJSON_GetObjectItemCaseSensitive(a, "nodes") ||
                       cJSON_GetObjectItemCaseSensitive(a, "template");
    if (!is_combined) {
        parse_advertise_map(c, a, "kafka.advertise", k);
        return;
    }
    /* The combined form: node ids are not allowed next to nodes/template, so
     * every other key is reported by the key check. */
    bs_conf_check_keys(c, a, "kafka.advertise", secs, 1);
    const cJSON *nodes = bs_conf_member(a, "nodes");
    if (nodes) {
        if (cJSON_IsObject(nodes))
            parse_advertise_map(c, nodes, "kafka.advertise.nodes", k);
        else
            bs_conf_err(c, "kafka.advertise.nodes",
                        "expected an object mapping node ids to "
                        "\"host:port\", got %s",
                        bs_conf_type_name(nodes));
    }
    const cJSON *t = bs_conf_member(a, "template");
    if (t) {
        if (cJSON_IsString(t)) {
            check_template(c, "kafka.advertise.template", t->valuestring);
            k->advertise_template = bs_conf_strdup(c, t->valuestring);
        } else {
            bs_conf_err(c, "kafka.advertise.template", "expected a string such as %s, got %s",
                        bs_conf_quote(q, sizeof q, "kafka-{id}.example.com:9094"),
                        bs_conf_type_name(t));
        }
    }
}

/* Free the map and the template. */
static void free_advertise(const bs_conf_opt *o, void *base)
{
    bs_kafka_config *k = base;
    (void)o;
    for (size_t i = 0; i < k->n_advertise; i++)
        free(k->advertise[i].host);
    free(k->advertise);
    free(k->advertise_template);
    k->advertise = NULL;
    k->n_advertise = 0;
    k->advertise_template = NULL;
}

static const bs_conf_opt kafka_rows[] = {
    {.name = "max_frame_bytes", .type = BS_CONF_INT, BS_CONF_AT(bs_kafka_config, max_frame_bytes),
     .min = 1024, .max = 1073741824, .def = "104857600"},
    /* hardening (issue 11): requests held whole, their process budget and deadline */
    {.name = "max_held_request_bytes", .type = BS_CONF_INT,
     BS_CONF_AT(bs_kafka_config, max_held_request_bytes), .min = 1024, .max = 1073741824,
     .def = "16777216"},
    {.name = "held_bytes_budget", .type = BS_CONF_INT,
     BS_CONF_AT(bs_kafka_config, held_bytes_budget), .min = 1048576, .max = 1ll << 40,
     .def = "268435456"},
    {.name = "frame_timeout_s", .type = BS_CONF_SECONDS,
     BS_CONF_AT(bs_kafka_config, frame_timeout_s), .max = 3600, .def = "30"},
    {.name = "advertise", .type = BS_CONF_CUSTOM, .parse = parse_advertise,
     .free = free_advertise, .doc = "string or object"},
};

const bs_conf_section bs_kafka_conf = BS_CONF_SECTION("kafka", kafka_rows, NULL);

/* See proxy_config.h. */
bs_status bs_config_advertised(const bs_kafka_config *k, int32_t node_id, char *host,
                               size_t hostlen, uint16_t *port)
{
    if (node_id < 0) return BS_E_NOT_FOUND;
    for (size_t i = 0; i < k->n_advertise; i++) {
        const bs_advertise_entry *e = &k->advertise[i];
        if (e->node_id != node_id) continue;
        size_t n = strlen(e->host);
        if (n >= hostlen) return BS_E_TOO_LARGE;
        memcpy(host, e->host, n + 1);
        *port = e->port;
        return BS_OK;
    }
    if (!k->advertise_template) return BS_E_NOT_FOUND;
    char buf[512], h[512];
    BS_GUARD(expand_template(k->advertise_template, node_id, buf, sizeof buf));
    uint16_t p;
    /* A template may put {id} in the port ("localhost:909{id}"); ids that make
     * it overflow cannot be advertised. */
    if (bs_conf_check_hostport(buf, h, &p) != NULL) return BS_E_MALFORMED;
    size_t n = strlen(h);
    if (n >= hostlen) return BS_E_TOO_LARGE;
    memcpy(host, h, n + 1);
    *port = p;
    return BS_OK;
}

/* Does the advertised host[hostlen]:port name endpoint `up`? As text
 * (case-insensitive), or as an IP literal equal to its resolved address. */
static bool advertised_is(const bs_endpoint *up, const char *host, size_t hostlen, int32_t port)
{
    if (!up->host || port != up->port || hostlen == 0 || hostlen > 64 * 4) return false;
    if (strlen(up->host) == hostlen && strncasecmp(up->host, host, hostlen) == 0) return true;
    char lit[INET6_ADDRSTRLEN + 1];
    if (hostlen >= sizeof lit) return false;
    memcpy(lit, host, hostlen);
    lit[hostlen] = '\0';
    if (up->addr.ss_family == AF_INET) {
        struct in_addr a;
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&up->addr;
        return inet_pton(AF_INET, lit, &a) == 1 && a.s_addr == sin->sin_addr.s_addr;
    }
    if (up->addr.ss_family == AF_INET6) {
        struct in6_addr a;
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&up->addr;
        return inet_pton(AF_INET6, lit, &a) == 1 && memcmp(&a, &sin6->sin6_addr, sizeof a) == 0;
    }
    return false;
}

/* See proxy_config.h. */
const bs_kafka_route *bs_config_route_for(const bs_kafka_config *k, int32_t node_id,
                                          const char *host, size_t hostlen, int32_t port,
                                          bool shared, const char *via)
{
    const bs_kafka_route *first = NULL;
    if (node_id < 0) return NULL;
    for (size_t i = 0; i < k->n_routes; i++) {
        const bs_kafka_route *r = &k->routes[i];
        if (!r->host || !advertised_is(r->upstream, host, hostlen, port)) continue;
        /* the node must be the listener's broker: by broker_id, else by an address no
         * other node of the response shares */
        if (r->node_id >= 0 ? r->node_id != node_id : shared) continue;
        if (via && r->listener && strcmp(via, r->listener) == 0) return r;
        if (!first) first = r;
    }
    return first;
}
