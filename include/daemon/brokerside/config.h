/*
 * config.h - the daemon's configuration: the top-level bs_config that
 * aggregates every module's section, and its loader.
 *
 * The file is JSON with // and / * * / comments. Unknown keys are errors.
 * Every error names the file, the JSON path (e.g. `listeners[0].tls.cert`)
 * and the problem; loading collects all errors instead of stopping at the
 * first. Defaults are applied by the loader, so consumers never see an
 * unset field. All strings are owned by the bs_config and freed with it.
 * See docs/configuration.md for every key.
 *
 * Ownership: each section's struct and option table belong to the module
 * that uses it (<module>_config.h: net, proxy, admin, aws, crypto, observe,
 * sinks, events, identity, policy), so a module never needs a higher
 * module's struct. Only this composition (bs_config), the loader, the rules
 * across sections and the SIGHUP rule (bs_config_load/parse/free,
 * bs_config_needs_restart; daemon/config.c) are the daemon's, and only the
 * composition root (src/daemon/, src/main.c) and the tests include this
 * header. The value types every table shares (bs_endpoint,
 * bs_config_errors) are core's (confmap.h).
 */
#ifndef BROKERSIDE_CONFIG_H
#define BROKERSIDE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/admin_config.h"
#include "brokerside/aws_config.h"
#include "brokerside/confmap.h"
#include "brokerside/crypto_config.h"
#include "brokerside/events_config.h"
#include "brokerside/identity_config.h"
#include "brokerside/lag_config.h"
#include "brokerside/log.h"
#include "brokerside/net_config.h"
#include "brokerside/observe_config.h"
#include "brokerside/policy_config.h"
#include "brokerside/proxy_config.h"
#include "brokerside/sinks_config.h"
#include "brokerside/status.h"

typedef struct bs_config {
    char *path;       /* file it was loaded from */
    uint32_t workers; /* resolved: 0 in the file means one per online core */
    bs_log_level log_level;
    bs_log_style log_style; /* `log_format`: "text" (default) or "json" */
    bs_listener_config *listeners;
    size_t n_listeners;
    bs_limits_config limits;
    bs_kafka_config kafka;
    bs_admin_config admin;
    bs_aws_config aws;
    bs_encryption_config encryption;
    bs_audit_config audit;
    bs_metrics_config metrics;
    bs_lag_config lag;
    bs_logs_config logs;
    bs_sink_config *sinks; /* defined sinks in file order, then the implicit "default" */
    size_t n_sinks;
    bs_spool_config spool;
    /* `identity` (identity_config.h): never NULL after a load */
    bs_identity_config *identity;
    /* `authorization` (policy_config.h, built into a policy.h policy): NULL = no policy */
    struct bs_policy *authorization;
    /* What an operator would regret, found by the loader in a valid file
     * (bs_config_warnings): each "FILE: message". The daemon logs them at
     * start and on reload; --check-config prints them (--strict: errors). */
    struct bs_config_errors *warnings;
    /* The document as parsed (comments removed), kept for the reload diff
     * (config_diff.h); owned, freed by bs_config_free. */
    struct cJSON *tree;
    /* What the server reads (net_config.h), filled by the loader: pointers
     * into this config. */
    bs_net_config net;
} bs_config;

/*
 * Load and validate `path`. On success *out owns a fully defaulted config.
 * On failure returns BS_E_CONFIG (or BS_E_IO if the file cannot be read,
 * BS_E_NOMEM) and appends every problem found to `errs` (caller frees with
 * bs_config_errors_free). Certificate and key files are checked to exist and
 * be readable here; whether they parse is checked when TLS contexts are built.
 */
bs_status bs_config_load(const char *path, bs_config **out, bs_config_errors *errs) BS_WUR;
/* Same as bs_config_load but from memory (`text` need not be NUL-terminated);
 * `path` is used in messages and its directory is the base of relative file
 * paths, as if the text had been read from it. */
bs_status bs_config_parse(const char *path, const char *text, size_t len, bs_config **out,
                          bs_config_errors *errs) BS_WUR;
/* Free a config and every string it owns; NULL is a no-op. */
void bs_config_free(bs_config *cfg);
/*
 * The warnings of a valid config (config_warnings.c), appended to `out` as
 * "FILE: message": things that work but that an operator would regret, e.g.
 * a kafka listener with no address to announce for its broker, encryption at
 * rest off, audit digests unsigned, the admin endpoint or a plaintext
 * listener reachable from the network, the broker reached in plaintext over
 * the network or without certificate checks, AWS secrets in the file, an
 * unused sink, max_connections beyond this process's open-file limit.
 * bs_config_load runs it and keeps the result in cfg->warnings.
 */
bs_status bs_config_warnings(const bs_config *cfg, bs_config_errors *out) BS_WUR;

/* The sink named `name`, or NULL. */
const bs_sink_config *bs_config_sink(const bs_config *cfg, const char *name);

/*
 * SIGHUP rule: true when `new_cfg` differs from `old_cfg` in a setting that
 * only a restart can apply (workers, the number of listeners, a listener's
 * name/bind/upstream/protocol/broker_id, turning tls or upstream_tls on or
 * off, admin enabled/bind, the aws section, encryption on/off and its kms,
 * decrypt_cache, audit/metrics/logs on/off, their sinks lists, the audit
 * signing key, logs files/tz/state, every sink, spool). Everything else (TLS
 * files and settings, limits, log_level, kafka.advertise,
 * kafka.max_frame_bytes, admin.probe_interval_s, encryption.topics,
 * unmatched_topics, dek, audit data_events and intervals, metrics interval_s
 * and namespace) may be applied live. Writes a comma-separated list of the offending keys
 * into what[whatlen] (truncated if needed; may be NULL when whatlen is 0).
 */
bool bs_config_needs_restart(const bs_config *old_cfg, const bs_config *new_cfg, char *what,
                             size_t whatlen);

#endif
