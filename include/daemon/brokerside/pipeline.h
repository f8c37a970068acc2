/*
 * pipeline.h - the event path of the daemon, built from the config and torn
 * down at exit: spool, event bus, sinks, log tailer, metric snapshots (EMF),
 * the audit log with its timers, and connection audit events.
 *
 *   workers (connection observer) --\
 *   audit log emit ------------------> event bus -> spool -> sinks (file, AWS)
 *   EMF snapshot timer -------------/            ^
 *   log tailer (control thread) -----------------/
 *
 * Everything runs on the control thread's loop except bs_pipeline_audit_log()'s
 * users and the connection observer, which run on worker threads and only
 * touch the thread-safe audit log and event bus. docs/operations.md ("The
 * event path") describes start-up, /status fields and the shutdown order.
 */
#ifndef BROKERSIDE_PIPELINE_H
#define BROKERSIDE_PIPELINE_H

#include <stddef.h>

#include "brokerside/audit.h"
#include "brokerside/buf.h"
#include "brokerside/config.h"
#include "brokerside/net.h"
#include "brokerside/status.h"

struct ev_loop;

/* Why the daemon refuses an `encryption` section with a `tcp` listener (an
 * opaque listener cannot encrypt records: they would reach the broker in
 * plaintext). */
#define BS_PIPELINE_ENCRYPTION_NEEDS_KAFKA                                                         \
    "protocol \"tcp\" cannot encrypt records: with an \"encryption\" section every listener " \
    "must be \"kafka\""

typedef struct bs_pipeline bs_pipeline;

/*
 * Checks shared by --check-config and start-up that open nothing: refuses an
 * `encryption` section with a `tcp` listener (BS_E_CONFIG, message
 * BS_PIPELINE_ENCRYPTION_NEEDS_KAFKA) and loads (then wipes) the audit signing
 * key (BS_E_CONFIG: unreadable, wrong permissions or format). Writes the
 * first problem as "FILE: PATH: message" into err[errlen].
 */
bs_status bs_pipeline_check(const bs_config *cfg, char *err, size_t errlen) BS_WUR;

/*
 * Build the event path of `cfg` on the control loop: nothing is built when no
 * stream (audit, metrics, logs) is enabled (*out is then a pipeline that does
 * nothing). Opens the spool (creating spool.dir), the credential provider
 * when an AWS sink is used, every sink referenced by a stream, the log
 * tailer, the EMF timer, the audit log (linked to the previous chain: the
 * last audit record in the spool, else the last line of the first audit file
 * sink's audit.ndjson) and its aggregate/digest timers, and registers the
 * recorder that writes the sidecar's own actions (sidecar_action.h) into
 * the audit chain until bs_pipeline_stop. `cfg` is borrowed and must
 * outlive the pipeline. On failure everything built so far is torn
 * down, the reason is in err[errlen], and BS_E_CONFIG / BS_E_IO /
 * BS_E_UNSUPPORTED / BS_E_NOMEM is returned.
 */
bs_status bs_pipeline_start(struct ev_loop *loop, const bs_config *cfg, bs_pipeline **out,
                            char *err, size_t errlen) BS_WUR;

/* Install the connection observer on `srv` (before bs_server_start) so that
 * accepted / tls_handshake_failed / client_certificate_rejected / closed
 * connection events are recorded in the audit log. No-op without audit. */
bs_status bs_pipeline_observe(bs_pipeline *p, bs_server *srv) BS_WUR;

/* The audit log (NULL when audit is off). Thread-safe to use from any thread
 * until bs_pipeline_stop: the proxy records per-request events with
 * bs_audit_log_record(bs_pipeline_audit_log(p), &ev). */
bs_audit_log *bs_pipeline_audit_log(bs_pipeline *p);

/* True while audit events cannot be stored (bs_event_bus_audit_blocked):
 * the daemon reports not ready (/readyz 503) then. Any thread. */
bool bs_pipeline_audit_blocked(bs_pipeline *p);

/* Append the pipeline's /status members: `,"spool":{...},"events":{...},
 * "sinks":[...],"audit":{...},"logtail":{...}` (docs/operations.md). */
void bs_pipeline_status_json(bs_pipeline *p, bs_wbuf *out);

/* SIGHUP: apply the live settings of `cfg` (metrics interval and namespace,
 * audit aggregate and digest intervals); settings that need a restart were
 * already named by bs_config_needs_restart and keep their old values.
 * `cfg` must outlive the pipeline. */
void bs_pipeline_reload(bs_pipeline *p, const bs_config *cfg);

/* Orderly stop after the server has drained (control thread; runs `loop`
 * itself while waiting): stop the tailer's polling, a last metric snapshot,
 * flush aggregates, close the audit log (final signed digest), spool what is
 * queued, flush every sink for up to `grace_s` seconds, then destroy sinks,
 * the tailer (its checkpoint is already on disk), the bus and the spool.
 * Idempotent. */
void bs_pipeline_stop(bs_pipeline *p, double grace_s);

/* Cut a running bs_pipeline_stop's wait for the sinks short (a second
 * SIGTERM/SIGINT while flushing): what is not delivered stays in the spool.
 * Control thread (signal watcher). NULL: no-op. */
void bs_pipeline_cancel_flush(bs_pipeline *p);

/* Add the consumer-lag monitor's latest result (MSK names) to every metric
 * snapshot (lag.h, bs_lag_emf). The monitor must outlive the pipeline.
 * NULL p or lag: nothing. */
struct bs_lag_monitor;
void bs_pipeline_set_lag(bs_pipeline *p, struct bs_lag_monitor *lag);

/* bs_pipeline_stop with no grace if still running, then free. NULL: no-op. */
void bs_pipeline_free(bs_pipeline *p);

#endif
