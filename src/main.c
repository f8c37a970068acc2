/*
 * main.c - the brokerside daemon: command line, start-up, signals, reload,
 * admin endpoint wiring. The main thread is the control thread: it runs
 * libev's default loop with the signal watchers, the admin endpoint and the
 * readiness probes; the data path runs on the server's worker threads.
 *
 * The event path (spool, sinks, log tailer, metric snapshots, audit log) is
 * built by pipeline.c; this file only orders it around the server: it starts
 * before the workers (so connection events have somewhere to go) and stops
 * after they have drained.
 *
 * Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT, also the second,
 * immediate one), 1 on a configuration or start-up error, 2 on bad usage.
 * Sub-commands `keygen` and `audit verify` have their own (see usage()).
 */
#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "brokerside/admin.h"
#include "brokerside/audit_hook.h"
#include "brokerside/aws_http.h"
#include "brokerside/audit.h"
#include "brokerside/config.h"
#include "brokerside/config_diff.h"
#include "brokerside/encryption.h"
#include "brokerside/authz.h"
#include "brokerside/identity.h"
#include "brokerside/kafka_session.h"
#include "brokerside/keyring.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/net.h"
#include "brokerside/lag.h"
#include "brokerside/pipeline.h"
#include "brokerside/policy.h"
#include "brokerside/sidecar_action.h"
#include "brokerside/sdnotify.h"
#include "brokerside/tls.h"
#include "brokerside/version.h"

/* Everything the control thread's callbacks need. */
typedef struct app {
    struct ev_loop *loop;
    const char *config_path;
    bs_config *cfg;      /* the config the server was built from */
    bs_config **retired; /* configs applied by reloads; kept until exit (see bs_server_reload) */
    size_t n_retired;
    bs_server *srv;
    bs_pipeline *pipe;
    bs_audit_hook *audit_hook;              /* per-request audit recorder, NULL without audit */
    bs_kafka_session_factory kafka_factory; /* what every kafka listener's session sees */
    bs_kafka_hook *hooks;                   /* kafka_factory.hooks: audit gate, then encryption */
    bool server_done;                       /* workers gone: the event path is flushing */
    bs_admin *admin;
    bs_encryption *enc; /* NULL when encryption at rest is off */
    bs_authz *authz;    /* policy enforcer: idle while no authorization section */
    bs_lag_monitor *lag; /* consumer-lag monitor thread, NULL without a lag section */
    ev_signal sigterm, sigint, sighup;
    ev_timer watchdog; /* WATCHDOG=1 every half of $WATCHDOG_USEC (systemd), if set */
    int stop_requests;
} app;

/* Print usage to `f`. The same text is the source of the man page
 * brokerside(8) (help2man, see packaging/): keep its section shape. */
static void usage(FILE *f)
{
    fprintf(f,
            "Usage: brokerside --config FILE\n"
            "  or:  brokerside --check-config [--strict] FILE\n"
            "  or:  brokerside keygen FILE\n"
            "  or:  brokerside audit verify [--strict] [--key FILE | --public-key FILE] "
            "AUDIT.ndjson...\n"
            "  or:  brokerside policy explain [--config FILE] [--host IP] PRINCIPAL OPERATION "
            "RESOURCE\n"
            "Security and observability sidecar beside an Apache Kafka broker: TLS termination,\n"
            "Kafka address rewriting, per-API metrics, a signed audit trail, encryption of record\n"
            "values at rest, and shipping of logs, metrics and audit events.\n"
            "\n"
            "Options:\n"
            "  --config FILE             run the sidecar in the foreground with FILE (JSON with\n"
            "                            comments); logs go to stderr\n"
            "  --check-config FILE       validate FILE, its TLS material and the audit signing\n"
            "                            key, print warnings; exit 0 if usable, 1 if not\n"
            "  --check-config --strict FILE\n"
            "                            the same, but any warning is an error (exit 1)\n"
            "  --help                    print this text and exit\n"
            "  --version                 print the version and exit\n"
            "\n"
            "Commands:\n"
            "  keygen FILE               create a local master key file (mode 0600, never\n"
            "                            overwrites); exit 0 if created, 1 if not\n"
            "  audit verify              check the hash chain and digests of audit files;\n"
            "                            exit 0 intact, 1 tampering found, 2 usage or I/O error\n"
            "  policy explain [--config FILE] [--host IP] PRINCIPAL OPERATION RESOURCE\n"
            "                            which authorization rule decides and why (RESOURCE:\n"
            "                            Topic:NAME, Group:NAME, TransactionalId:NAME, Cluster);\n"
            "                            exit 0 allowed, 1 denied, 2 usage or config error\n"
            "\n"
            "Signals:\n"
            "  SIGTERM, SIGINT           drain connections and exit 0 (a second one closes every\n"
            "                            connection at once)\n"
            "  SIGHUP                    reload FILE; a broken file changes nothing\n"
            "\n"
            "Exit status:\n"
            "  0                         clean shutdown, or the check passed\n"
            "  1                         configuration or start-up error\n"
            "  2                         bad usage\n");
}

/* Print every config error to stderr. */
static void print_errors(const bs_config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msgs[i]);
}

/* Log every warning of a loaded config (see bs_config_warnings). */
static void log_warnings(const bs_config *cfg)
{
    for (size_t i = 0; cfg->warnings && i < cfg->warnings->n; i++)
        BS_LOG_WARNF("config", "%s", cfg->warnings->msgs[i]);
}

/* Raise the soft open-file limit to the hard one: each proxied connection
 * holds two descriptors, and systemd's default soft limit (1024) is meant to
 * be raised by the services that need more. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        BS_LOG_INFOF("main", "open-file limit raised from %llu to %llu", (unsigned long long)was,
                     (unsigned long long)rl.rlim_max);
}

/* Log a failed systemd notification (`what` names it); not run by systemd is fine. */
static void sd_result(const char *what, bs_status st)
{
    if (st != BS_OK && st != BS_E_NOT_FOUND)
        BS_LOG_WARNF("main", "cannot notify systemd of %s via $NOTIFY_SOCKET: %s", what,
                     st == BS_E_CONFIG ? "not a usable AF_UNIX address" : strerror(errno));
}

/* Send `state` to systemd (see sdnotify.h), logging a failure. */
static void notify(const char *state)
{
    sd_result(state, bs_sd_notify(state));
}

/* Build (and discard) every TLS context of `cfg`, printing each failure as
 * "FILE: listeners[i].tls: reason". Returns the number of failures. */
static size_t check_tls(const bs_config *cfg)
{
    size_t bad = 0;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const bs_listener_config *l = &cfg->listeners[i];
        char err[512];
        SSL_CTX *ctx = NULL;
        if (l->tls) {
            err[0] = 0;
            if (bs_tls_server_ctx_new(l->tls, &ctx, err, sizeof err) != BS_OK) {
                fprintf(stderr, "%s: listeners[%zu].tls: %s\n", cfg->path, i, err);
                bad++;
            }
            SSL_CTX_free(ctx);
            ctx = NULL;
        }
        if (l->upstream_tls) {
            err[0] = 0;
            if (bs_tls_client_ctx_new(l->upstream_tls, &ctx, err, sizeof err) != BS_OK) {
                fprintf(stderr, "%s: listeners[%zu].upstream_tls: %s\n", cfg->path, i, err);
                bad++;
            }
            SSL_CTX_free(ctx);
        }
    }
    return bad;
}

/* --check-config [--strict] FILE: exit status 0 if the file and all its TLS
 * material are good. Warnings (bs_config_warnings) are printed too; they
 * fail the check only with --strict. */
static int check_config(const char *path, bool strict)
{
    bs_config *cfg = NULL;
    bs_config_errors errs = {0};
    int rc = 1;
    if (bs_config_load(path, &cfg, &errs) != BS_OK) {
        print_errors(&errs);
        if (errs.n == 0) fprintf(stderr, "%s: cannot be loaded\n", path);
        goto out;
    }
    if (check_tls(cfg) > 0) goto out;
    char err[1024];
    if (bs_pipeline_check(cfg, err, sizeof err) != BS_OK) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (bs_encryption_check(cfg, err, sizeof err) != BS_OK) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    size_t nw = cfg->warnings ? cfg->warnings->n : 0;
    for (size_t i = 0; i < nw; i++)
        fprintf(stderr, "%s: %s\n", strict ? "error" : "warning", cfg->warnings->msgs[i]);
    if (strict && nw) {
        fprintf(stderr, "%s: refused: %zu warning%s (--strict)\n", path, nw, nw == 1 ? "" : "s");
        goto out;
    }
    if (nw)
        printf("%s: OK with %zu warning%s\n", path, nw, nw == 1 ? "" : "s");
    else
        printf("%s: OK\n", path);
    rc = 0;
out:
    bs_config_errors_free(&errs);
    bs_config_free(cfg);
    return rc;
}

/* Server finished draining: leave the control loop. */
static void on_server_done(void *arg)
{
    app *a = arg;
    a->server_done = true;
    ev_break(a->loop, EVBREAK_ALL);
}

/* SIGTERM / SIGINT: first one drains, the second closes everything now. */
static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    app *a = w->data;
    a->stop_requests++;
    if (a->stop_requests == 1) {
        notify("STOPPING=1\nSTATUS=draining connections");
        bs_action_detail d[] = {{"signal", strsignal(w->signum)}};
        bs_sidecar_action act = {.kind = BS_ACTION_STOPPING,
                                 .subject_type = "sidecar",
                                 .subject = a->config_path,
                                 .message = "orderly stop: draining connections, then the final "
                                            "digest seals the audit chain",
                                 .details = d,
                                 .n_details = 1};
        bs_sidecar_action_emit(&act);
    }
    BS_LOG_INFOF("main", "received %s%s", strsignal(w->signum),
                 a->stop_requests > 1 ? " again: closing every connection now" : "");
    /* Once the workers are gone only the sinks' flush is left to cut short. */
    if (a->server_done)
        bs_pipeline_cancel_flush(a->pipe);
    else
        bs_server_shutdown(a->srv, a->stop_requests == 1);
}

/* Record a refused reload (ConfigurationReloadRejected): how many problems
 * and why in general terms; the messages themselves stay in the log (they
 * quote the file and may quote values). */
static void note_reload_rejected(app *a, const char *why, size_t problems)
{
    char n[24];
    snprintf(n, sizeof n, "%zu", problems);
    bs_action_detail d[] = {{"problems", n}};
    bs_sidecar_action act = {.kind = BS_ACTION_CONFIG_REJECTED,
                             .failed = true,
                             .subject_type = "configuration",
                             .subject = a->config_path,
                             .message = why,
                             .details = d,
                             .n_details = 1};
    bs_sidecar_action_emit(&act);
}

/* Record an applied reload (ConfigurationReloaded: every changed key path,
 * secrets without values) and, when the `authorization` or `identity`
 * section changed, the new policy (AuthorizationPolicyChanged). `prev` is
 * the configuration that was running. */
static void note_reload(app *a, const bs_config *prev, const bs_config *cfg, const char *restart)
{
    bs_config_diff diff;
    bs_status st = bs_config_diff_compute(prev, cfg, &diff);
    if (st != BS_OK) {
        BS_LOG_ERRORF("main", "reload: cannot compare the configurations (%s)",
                      bs_status_name(st));
        memset(&diff, 0, sizeof diff);
    }
    char n[24], omitted[24];
    snprintf(n, sizeof n, "%zu", diff.n + diff.omitted);
    snprintf(omitted, sizeof omitted, "%zu", diff.omitted);
    bs_action_detail d[] = {{"changedKeys", n}, {"changesOmitted", omitted},
                            {"needsRestart", restart[0] ? restart : "none"}};
    bs_sidecar_action act = {.kind = BS_ACTION_CONFIG_RELOADED,
                             .subject_type = "configuration",
                             .subject = a->config_path,
                             .message = "configuration reloaded (SIGHUP)",
                             .details = d,
                             .n_details = BS_ARRAY_LEN(d),
                             .changes = diff.changes,
                             .n_changes = diff.n};
    bs_sidecar_action_emit(&act);
    if (bs_config_diff_touches(&diff, "authorization") || bs_config_diff_touches(&diff, "identity")) {
        char rules[24];
        snprintf(rules, sizeof rules, "%zu", bs_policy_rule_count(cfg->authorization));
        bs_action_detail pd[] = {
            {"enabled", cfg->authorization ? "true" : "false"},
            {"rules", rules},
            {"defaultDecision", !cfg->authorization ? "allow (no policy)"
                                : bs_policy_default_allow(cfg->authorization) ? "allow" : "deny"},
            {"authorizationChanged", bs_config_diff_touches(&diff, "authorization") ? "true" : "false"},
            {"identityChanged", bs_config_diff_touches(&diff, "identity") ? "true" : "false"}};
        bs_sidecar_action pact = {.kind = BS_ACTION_POLICY_CHANGED,
                                  .subject_type = "policy",
                                  .subject = "authorization",
                                  .message = "the authorization policy and identity rules in force "
                                             "were replaced; each connection's next request is "
                                             "judged by them",
                                  .details = pd,
                                  .n_details = BS_ARRAY_LEN(pd)};
        bs_sidecar_action_emit(&pact);
    }
    bs_config_diff_free(&diff);
}

/* Reload the config file; a bad file changes nothing. */
static void reload(app *a)
{
    bs_config *cfg = NULL;
    bs_config_errors errs = {0};
    BS_LOG_INFOF("main", "received SIGHUP: reloading %s", a->config_path);
    if (bs_config_load(a->config_path, &cfg, &errs) != BS_OK) {
        for (size_t i = 0; i < errs.n; i++)
            BS_LOG_ERRORF("main", "reload: %s", errs.msgs[i]);
        note_reload_rejected(a, "the configuration file did not load; the running configuration "
                                "stays (the problems are in the log)", errs.n);
        bs_config_errors_free(&errs);
        /* Counted like a refused TLS rebuild: the old config stays. */
        bs_metric_add(bs_metrics_counter("brokerside_config_reloads_total",
                                         "Config reloads (SIGHUP), by result", "result=\"failed\""),
                      1);
        BS_LOG_ERRORF("main", "reload: refused; keeping the running configuration");
        return;
    }
    bs_config_errors_free(&errs);
    log_warnings(cfg);
    bs_config **grown = realloc(a->retired, (a->n_retired + 1) * sizeof *grown);
    if (!grown) {
        BS_LOG_ERRORF("main", "reload: out of memory; keeping the running configuration");
        bs_config_free(cfg);
        return;
    }
    a->retired = grown;
    /* Compared with the config the server was built from: a restart-only
     * change stays reported on every reload until a restart applies it. */
    char what[512];
    if (bs_config_needs_restart(a->cfg, cfg, what, sizeof what))
        BS_LOG_WARNF("main", "reload: %s changed: requires restart; keeping the old value", what);
    if (bs_server_reload(a->srv, &cfg->net) != BS_OK) {
        note_reload_rejected(a, "the TLS material of the new configuration could not be loaded; "
                                "the running configuration stays (the problems are in the log)",
                             1);
        bs_config_free(cfg);
        return;
    }
    bs_log_set_style(cfg->log_style);
    bs_metrics_set_level((bs_metrics_level)cfg->metrics.level);
    if (a->lag && cfg->lag.enabled) bs_lag_monitor_set_interval(a->lag, cfg->lag.interval_s);
    bs_pipeline_reload(a->pipe, cfg);
    if (a->enc && bs_encryption_reload(a->enc, cfg) != BS_OK)
        BS_LOG_ERRORF("main", "reload: encryption.dek limits refused; keeping the old ones");
    /* the per-request recorder follows the audit log's new data_events mode */
    if (a->audit_hook && cfg->audit.enabled)
        bs_audit_hook_set_mode(a->audit_hook, (bs_audit_data_mode)cfg->audit.data_events);
    /* Identity settings and the policy swap atomically: every request from
     * now on is judged by the new policy (a revoked principal is refused at
     * its next request). The old config stays alive in `retired`. */
    bs_identity_set_config(cfg->identity);
    if (!!cfg->authorization != !!a->cfg->authorization || cfg->authorization)
        BS_LOG_INFOF("main", "reload: authorization %s (%zu rules)",
                     cfg->authorization ? "policy applied" : "off",
                     bs_policy_rule_count(cfg->authorization));
    bs_policy_set_current(cfg->authorization);
    note_reload(a, a->n_retired ? a->retired[a->n_retired - 1] : a->cfg, cfg, what);
    a->retired[a->n_retired++] = cfg;
}

/* SIGHUP: reload, bracketed by RELOADING=1 / READY=1 for systemd (also when
 * the new file is refused: the daemon is serving either way). */
static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    app *a = w->data;
    if (a->server_done) {
        BS_LOG_INFOF("main", "received SIGHUP while shutting down: ignored");
        return;
    }
    /* during a drain systemd already knows the service is stopping */
    bool draining = a->stop_requests > 0;
    if (!draining) sd_result("RELOADING=1", bs_sd_notify_reloading());
    reload(a);
    if (!draining) notify("READY=1\nSTATUS=serving");
}

/* The systemd watchdog: the control loop is alive. */
static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    notify("WATCHDOG=1");
}

/* Admin hook: readiness is the server's (listeners bound, upstreams answering). */
static bool ready_hook(void *ctx, char *why, size_t whylen)
{
    app *a = ctx;
    if (bs_pipeline_audit_blocked(a->pipe)) {
        snprintf(why, whylen,
                 "audit events cannot be stored (spool refusing them or event queue over half "
                 "full): requests are refused");
        return false;
    }
    return bs_server_ready(a->srv, why, whylen);
}

/* Admin hook: the server's and the event path's members of /status. */
static void status_hook(void *ctx, bs_wbuf *out)
{
    bs_server_status_json(((app *)ctx)->srv, out);
    bs_pipeline_status_json(((app *)ctx)->pipe, out);
    bs_lag_status_json(((app *)ctx)->lag, out); /* the consumer-lag monitor, or null */
    /* AWS attempts (sinks, KMS) running past their slow threshold right now */
    bs_wbuf_put_str(out, ",\"aws_slow_attempts\":");
    bs_aws_http_status_json(out);
}

/* Run the daemon with `path` until shut down. */
static int run(const char *path)
{
    app a = {.config_path = path};
    bs_config_errors errs = {0};
    char err[600];
    int rc = 1;
    signal(SIGPIPE, SIG_IGN);
    if (bs_config_load(path, &a.cfg, &errs) != BS_OK) {
        print_errors(&errs);
        if (errs.n == 0) fprintf(stderr, "%s: cannot be loaded\n", path);
        goto out;
    }
    bs_log_set_level(a.cfg->log_level);
    bs_log_set_style(a.cfg->log_style);
    log_warnings(a.cfg);
    raise_fd_limit();
    bs_identity_set_config(a.cfg->identity);
    bs_policy_set_current(a.cfg->authorization);
    if (a.cfg->authorization)
        BS_LOG_INFOF("main", "authorization policy on: %zu rules, default %s",
                     bs_policy_rule_count(a.cfg->authorization),
                     bs_policy_default_allow(a.cfg->authorization) ? "allow" : "deny");
    a.loop = ev_default_loop(EVFLAG_AUTO);
    if (!a.loop) {
        BS_LOG_ERRORF("main", "cannot initialise the event loop");
        goto out;
    }
    if (bs_server_new(a.loop, &a.cfg->net, &a.srv, err, sizeof err) != BS_OK) {
        BS_LOG_ERRORF("main", "cannot start: %s", err);
        goto out;
    }
    if (bs_pipeline_start(a.loop, a.cfg, &a.pipe, err, sizeof err) != BS_OK) {
        BS_LOG_ERRORF("main", "cannot start: %s", err);
        goto out;
    }
    if (bs_pipeline_observe(a.pipe, a.srv) != BS_OK) {
        BS_LOG_ERRORF("main", "cannot observe connections for the audit log");
        goto out;
    }
    bs_metrics_set_level((bs_metrics_level)a.cfg->metrics.level);
    if (a.cfg->lag.enabled) {
        bs_lag_monitor_options lo;
        bs_lag_monitor_options_from_config(&a.cfg->lag, a.cfg->listeners, a.cfg->n_listeners, &lo);
        if (bs_lag_monitor_start(&lo, &a.lag) != BS_OK) {
            BS_LOG_ERRORF("main", "cannot start the consumer-lag monitor");
            goto out;
        }
        bs_metrics_set_extension(bs_lag_render_prometheus, a.lag);
        bs_pipeline_set_lag(a.pipe, a.lag);
    }
    /* (bs_pipeline_check, run by bs_pipeline_start, refused an encryption
     * section with a tcp listener: those records would pass in plaintext.) */
    if (a.cfg->encryption.enabled) {
        if (bs_encryption_start(a.loop, a.cfg, a.srv, &a.enc, err, sizeof err) != BS_OK) {
            BS_LOG_ERRORF("main", "cannot start: %s", err);
            goto out;
        }
    }
    /* Per-request audit events ride on the Kafka session (audit_hook.h). */
    if (bs_pipeline_audit_log(a.pipe)) {
        if (bs_audit_hook_new(bs_pipeline_audit_log(a.pipe),
                              (bs_audit_data_mode)a.cfg->audit.data_events,
                              &a.audit_hook) != BS_OK) {
            BS_LOG_ERRORF("main", "cannot create the per-request audit recorder");
            goto out;
        }
        a.kafka_factory.observer = bs_audit_hook_observer(a.audit_hook);
    }
    /* Hooks, in order: the audit gate first (a request whose event cannot be
     * stored is refused before anything else touches it), then the policy
     * enforcer (it judges the request as the client sent it; installed always,
     * so a reload can turn a policy on), then the record crypto hook (Produce
     * values encrypted, Fetch values decrypted). */
    if (bs_authz_new(bs_pipeline_audit_log(a.pipe), &a.authz) != BS_OK) {
        BS_LOG_ERRORF("main", "cannot create the authorization enforcer");
        goto out;
    }
    {
        const bs_kafka_session_factory *ef = a.enc ? bs_encryption_factory(a.enc) : NULL;
        size_t n = (a.audit_hook ? 1 : 0) + 1 + (ef ? ef->n_hooks : 0);
        a.hooks = calloc(n ? n : 1, sizeof *a.hooks);
        if (!a.hooks) {
            BS_LOG_ERRORF("main", "out of memory");
            goto out;
        }
        size_t k = 0;
        if (a.audit_hook) a.hooks[k++] = *bs_audit_hook_gate(a.audit_hook);
        a.hooks[k++] = *bs_authz_hook(a.authz);
        for (size_t i = 0; ef && i < ef->n_hooks; i++)
            a.hooks[k++] = ef->hooks[i];
        a.kafka_factory.hooks = a.hooks;
        a.kafka_factory.n_hooks = k;
    }
    /* `kafka` listeners get the protocol-aware session (record crypto hook and
     * audit observer when configured); `tcp` stays opaque. */
    for (size_t i = 0; i < a.cfg->n_listeners; i++) {
        const bs_listener_config *l = &a.cfg->listeners[i];
        if (l->protocol != BS_PROTOCOL_KAFKA) continue;
        if (bs_server_set_session(a.srv, l->name, bs_kafka_session_ops(), &a.kafka_factory) !=
            BS_OK) {
            BS_LOG_ERRORF("main", "cannot install the Kafka session on listener %s", l->name);
            goto out;
        }
    }
    if (a.cfg->admin.enabled) {
        bs_admin_hooks hooks = {.ctx = &a, .ready = ready_hook, .status_json = status_hook};
        if (bs_admin_start(a.loop, &a.cfg->admin, &hooks, &a.admin, err, sizeof err) != BS_OK) {
            BS_LOG_ERRORF("main", "cannot start the admin endpoint: %s", err);
            goto out;
        }
        BS_LOG_INFOF("main", "admin endpoint on %s (port %u)", a.cfg->admin.bind.text,
                     bs_admin_port(a.admin));
    }
    ev_signal_init(&a.sigterm, on_stop_signal, SIGTERM);
    ev_signal_init(&a.sigint, on_stop_signal, SIGINT);
    ev_signal_init(&a.sighup, on_hup, SIGHUP);
    a.sigterm.data = a.sigint.data = a.sighup.data = &a;
    ev_signal_start(a.loop, &a.sigterm);
    ev_signal_start(a.loop, &a.sigint);
    ev_signal_start(a.loop, &a.sighup);
    if (bs_server_start(a.srv, on_server_done, &a) != BS_OK) {
        BS_LOG_ERRORF("main", "cannot start the worker threads");
        goto out;
    }
    BS_LOG_INFOF("main", "brokerside %s running (config %s, pid %ld)", BS_VERSION, path,
                 (long)getpid());
    /* Listeners are bound and the admin endpoint answers: tell systemd. */
    notify("READY=1\nSTATUS=serving");
    uint64_t wd_usec = bs_sd_watchdog_usec();
    if (wd_usec) {
        ev_timer_init(&a.watchdog, on_watchdog, 0., (double)wd_usec / 2e6);
        ev_timer_start(a.loop, &a.watchdog);
        BS_LOG_INFOF("main", "systemd watchdog: pinging every %.3f s", (double)wd_usec / 2e6);
    }
    ev_run(a.loop, 0);
    /* Workers are gone: seal the audit chain and let the sinks catch up. */
    bs_pipeline_stop(a.pipe, bs_server_config(a.srv)->limits.shutdown_grace_s);
    BS_LOG_INFOF("main", "stopped");
    rc = 0;
out:
    bs_admin_stop(a.admin);
    bs_server_free(a.srv);
    /* After the server (no connection uses it any more), before the log it writes to. */
    bs_audit_hook_free(a.audit_hook);
    bs_authz_free(a.authz);
    bs_encryption_free(a.enc); /* after the workers (they free their DEK workers) */
    free(a.hooks);
    bs_pipeline_free(a.pipe);
    bs_metrics_set_extension(NULL, NULL); /* no render uses the monitor after this */
    bs_lag_monitor_stop(a.lag);
    for (size_t i = 0; i < a.n_retired; i++)
        bs_config_free(a.retired[i]);
    free(a.retired);
    bs_identity_set_config(NULL);
    bs_policy_set_current(NULL);
    bs_config_free(a.cfg);
    bs_config_errors_free(&errs);
    bs_metrics_shutdown();
    return rc;
}

/* `brokerside keygen FILE`: a new local master key file. */
static int keygen(const char *path)
{
    char err[512] = "";
    if (bs_keyring_local_keygen(path, err, sizeof err) != BS_OK) {
        fprintf(stderr, "%s: %s\n", path, err[0] ? err : "cannot create the key file");
        return 1;
    }
    printf("%s: new master key written (mode 0600)\n", path);
    return 0;
}

/* Dispatch on the command line; see usage(). Exactly one action per run. */
int main(int argc, char **argv)
{
    bs_log_init(); /* journald form when stderr is the journal */
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("brokerside %s\n", BS_VERSION);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--check-config") == 0 && strcmp(argv[2], "--strict") != 0)
        return check_config(argv[2], false);
    if (argc == 4 && strcmp(argv[1], "--check-config") == 0 && strcmp(argv[2], "--strict") == 0)
        return check_config(argv[3], true);
    if (argc == 3 && strcmp(argv[1], "--config") == 0) return run(argv[2]);
    if (argc == 3 && strcmp(argv[1], "keygen") == 0) return keygen(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "policy") == 0 && strcmp(argv[2], "explain") == 0)
        return bs_policy_explain_main(argc - 2, argv + 2);
    if (argc >= 3 && strcmp(argv[1], "audit") == 0 && strcmp(argv[2], "verify") == 0)
        return bs_audit_verify_main(argc - 2, argv + 2);
    usage(stderr);
    return 2;
}
