/*
 * audit_hook.h - the per-request audit recorder of the Kafka session.
 *
 * A bs_audit_hook is a bs_kafka_observer (kafka_session.h): for every
 * request on a `kafka` listener it fills a bs_audit_event (API, version,
 * correlation id, connection id, listener, broker id, mTLS principal or
 * anonymous, source address, client.id, client software from the
 * connection's ApiVersions v3+ request), decodes the request with the
 * schema codec into requestParameters (topics, partitions, groups,
 * transactional ids, config resources and config KEYS (never values), ACL
 * bindings/filters, reassignment targets; never record data), attaches the
 * response's per-resource and per-partition error codes and the latency,
 * and hands the event to bs_audit_log_record(). Management requests and
 * their responses are assembled whole; data APIs are counted from what the
 * session shows (Produce/Fetch through the kafka_summary scan helpers). A
 * request that cannot be decoded is still recorded (API key/version) with
 * "requestDecoded": false. docs/audit-events.md ("Per-request events").
 */
#ifndef BROKERSIDE_AUDIT_HOOK_H
#define BROKERSIDE_AUDIT_HOOK_H

#include <stdint.h>

#include "brokerside/audit.h"
#include "brokerside/kafka_session.h"
#include "brokerside/status.h"

typedef struct bs_audit_hook bs_audit_hook;

/* Create a recorder writing to `log` (borrowed; must outlive the hook and
 * every connection using it). `data_mode` must be the mode the log was
 * opened with: with BS_AUDIT_DATA_OFF data APIs are not decoded at all.
 * *out is freed with bs_audit_hook_free. BS_E_NOMEM, BS_E_STATE (NULL log). */
bs_status bs_audit_hook_new(bs_audit_log *log, bs_audit_data_mode data_mode,
                            bs_audit_hook **out) BS_WUR;
/* The observer to put in bs_kafka_session_factory.observer; valid until
 * bs_audit_hook_free. */
const bs_kafka_observer *bs_audit_hook_observer(bs_audit_hook *h);
/* The gate: a bs_kafka_hook to put FIRST in bs_kafka_session_factory.hooks.
 * While bs_audit_log_backlogged() (the spool cannot store audit events),
 * every request whose event is recorded individually (management APIs
 * always, data APIs with data_events each) is refused instead of forwarded:
 * Produce gets KAFKA_STORAGE_ERROR (56, retriable) for every partition (no
 * answer for acks=0), other APIs close the connection. Counted in
 * brokerside_audit_refused_requests_total. Valid until bs_audit_hook_free. */
const bs_kafka_hook *bs_audit_hook_gate(bs_audit_hook *h);
/* Counters: events recorded, events the log refused (emit failures),
 * requests recorded without decoded parameters. Thread-safe. */
void bs_audit_hook_stats(bs_audit_hook *h, uint64_t *recorded, uint64_t *record_failures,
                         uint64_t *undecoded);
/* Reload: switch the data_events mode (call bs_audit_log_set_data_mode on the
 * log too). Requests observed from now on follow it; a request already in
 * flight may be recorded without decoded parameters. Any thread. */
void bs_audit_hook_set_mode(bs_audit_hook *h, bs_audit_data_mode data_mode);
/* Free the recorder (after every connection using it has closed). NULL: no-op. */
void bs_audit_hook_free(bs_audit_hook *h);

#endif
