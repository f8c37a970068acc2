/*
 * config_warnings.c - what a valid configuration does that an operator would
 * regret (see bs_config_warnings in config.h). Every check reads the loaded
 * bs_config only (plus this process's open-file limit); none opens a file or
 * a socket. The loader keeps the result in cfg->warnings; the daemon logs it
 * at start and on reload, --check-config prints it, and --check-config
 * --strict refuses the file for it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "brokerside/config.h"

/* Open files a sidecar needs beyond two per client connection: listeners,
 * the admin endpoint, spool segments, sinks, probes, log files. */
#define WARN_FD_MARGIN 100u

/* Does kafka.advertise name an address for the node behind listener `l`? */
static bool advertise_covers(const bs_kafka_config *k, const bs_listener_config *l)
{
    if (k->advertise_template) return true;
    for (size_t i = 0; l->broker_id >= 0 && i < k->n_advertise; i++)
        if (k->advertise[i].node_id == l->broker_id) return true;
    return false;
}

/* The zero-config route of the listener named `name`, or NULL. */
static const bs_kafka_route *route_of(const bs_kafka_config *k, const char *name)
{
    for (size_t i = 0; i < k->n_routes; i++)
        if (k->routes[i].listener && name && strcmp(k->routes[i].listener, name) == 0)
            return &k->routes[i];
    return NULL;
}

/* The listener checks: addresses to announce, plaintext on the network. */
static bs_status listener_warnings(const bs_config *cfg, bs_config_errors *out)
{
    const char *f = cfg->path;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const bs_listener_config *l = &cfg->listeners[i];
        const bs_kafka_route *r = route_of(&cfg->kafka, l->name);
        if (l->protocol == BS_PROTOCOL_KAFKA && !(r && r->host) &&
            !advertise_covers(&cfg->kafka, l))
            BS_GUARD(bs_config_errors_addf(
                out,
                "%s: listeners[%zu] (%s): no address to announce for the broker behind it: "
                "kafka.advertise has no entry for it and its bind %s is %s, so clients are "
                "disconnected at their first Metadata response; set listeners[%zu].advertised to "
                "the host:port clients dial (or map the broker's node id in kafka.advertise)",
                f, i, l->name, l->bind.text, l->bind.port == 0 ? "port 0" : "a wildcard", i));
        if (l->protocol == BS_PROTOCOL_KAFKA && r && r->host && l->broker_id < 0 &&
            cfg->kafka.n_advertise > 0 && !advertise_covers(&cfg->kafka, l))
            BS_GUARD(bs_config_errors_addf(
                out,
                "%s: listeners[%zu] (%s): kafka.advertise maps other nodes but broker_id is not "
                "set: if the brokers all advertise the same address (each its own loopback "
                "listener), the address cannot tell which node this sidecar fronts and it is "
                "refused; set listeners[%zu].broker_id to the broker's node.id",
                f, i, l->name, i));
        if (l->bind.port > 0 && l->bind.port < 1024)
            BS_GUARD(bs_config_errors_addf(
                out,
                "%s: listeners[%zu] (%s): bind port %u is below 1024: binding it needs "
                "CAP_NET_BIND_SERVICE, which the packaged unit does not grant (add it in a "
                "drop-in, see the unit file)",
                f, i, l->name, (unsigned)l->bind.port));
        if (!l->tls && !bs_endpoint_is_loopback(&l->bind))
            BS_GUARD(bs_config_errors_addf(
                out,
                "%s: listeners[%zu] (%s): bind %s is not a loopback address and tls is off: "
                "clients reach it in plaintext over the network",
                f, i, l->name, l->bind.text));
        if (!l->upstream_tls && !bs_endpoint_is_loopback(&l->upstream))
            BS_GUARD(bs_config_errors_addf(
                out,
                "%s: listeners[%zu] (%s): upstream %s is not a loopback address and "
                "upstream_tls is off: traffic to the broker crosses the network in plaintext",
                f, i, l->name, l->upstream.text));
        if (l->upstream_tls && !l->upstream_tls->verify)
            BS_GUARD(bs_config_errors_addf(
                out,
                "%s: listeners[%zu].upstream_tls.verify is false: the broker's certificate is "
                "not checked, so anyone on the path can impersonate the broker",
                f, i));
    }
    return BS_OK;
}

/* max_connections against the open-file limit this process can reach (the
 * daemon raises its soft limit to the hard one at start). */
static bs_status fd_limit_warning(const bs_config *cfg, bs_config_errors *out)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max == RLIM_INFINITY) return BS_OK;
    unsigned long long need = 2ull * cfg->limits.max_connections + WARN_FD_MARGIN;
    if ((unsigned long long)rl.rlim_max >= need) return BS_OK;
    return bs_config_errors_addf(
        out,
        "%s: limits.max_connections %u needs about %llu open files (two per connection) but "
        "this process may open at most %llu: raise LimitNOFILE (ulimit -n) or lower "
        "max_connections",
        cfg->path, cfg->limits.max_connections, need, (unsigned long long)rl.rlim_max);
}

/* See config.h. */
bs_status bs_config_warnings(const bs_config *cfg, bs_config_errors *out)
{
    const char *f = cfg->path;
    BS_GUARD(listener_warnings(cfg, out));
    if (cfg->admin.enabled && !bs_endpoint_is_loopback(&cfg->admin.bind))
        BS_GUARD(bs_config_errors_addf(
            out,
            "%s: admin.bind %s is not a loopback address: health, metrics and status will be "
            "reachable from the network",
            f, cfg->admin.bind.text));
    if (!cfg->encryption.enabled) BS_GUARD(bs_config_errors_addf(out, BS_CONFIG_ENCRYPTION_OFF_FMT, f));
    if (cfg->audit.enabled && !cfg->audit.signing_key_file)
        BS_GUARD(bs_config_errors_addf(
            out,
            "%s: audit.signing_key_file is not set: the audit trail is hash-chained but its "
            "digests are not signed, so a rewrite of the whole trail is not detectable",
            f));
    if (cfg->aws.access_key_id)
        BS_GUARD(bs_config_errors_addf(
            out,
            "%s: aws.credentials holds a long-lived secret in the configuration file: prefer "
            "the environment, a profile or the instance role",
            f));
    for (size_t k = 0; k < cfg->n_sinks; k++)
        if (cfg->sinks[k].streams == 0)
            BS_GUARD(bs_config_errors_addf(
                out, "%s: sinks.%s is not used by audit, metrics or logs: it ships nothing", f,
                cfg->sinks[k].name));
    return fd_limit_warning(cfg, out);
}
