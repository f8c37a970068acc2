/*
 * audit_internal.h - helpers shared by audit.c, audit_chain.c and
 * audit_verify.c. Not a public header: only src/observe/audit*.c include it.
 */
#ifndef BROKERSIDE_AUDIT_INTERNAL_H
#define BROKERSIDE_AUDIT_INTERNAL_H

#include <stdint.h>

#include "brokerside/audit.h"
#include "brokerside/buf.h"

/* bs_wbuf_put_json_string for a NUL-terminated string, or `null` when s is NULL. */
void bs_audit_put_cstr(bs_wbuf *w, const char *s);
/* Render the common CloudTrail head fields up to and including
 * "eventCategory" and "readOnly" (no braces, no leading comma):
 * eventVersion, eventTime, eventSource, eventName, eventType, eventID. */
void bs_audit_put_head(bs_wbuf *w, int64_t time_us, const char *source, const char *name,
                       const char *type, const char *event_id);
/* Render a request/connection event without its closing brace. */
bs_status bs_audit_render_open(const bs_audit_event *ev, const char *source, const char *event_id,
                               bs_wbuf *out) BS_WUR;
/* Append a decimal integer (no printf: this is the per-event hot path). */
void bs_audit_put_u64(bs_wbuf *w, uint64_t v);
void bs_audit_put_i64(bs_wbuf *w, int64_t v);
/* Append the string literal `key` (e.g. ",\"sourcePort\":") then v. */
void bs_audit_put_kv(bs_wbuf *w, const char *key, int64_t v);
/* Lower-case hex of n bytes into out[2n+1]. */
void bs_audit_hex(const uint8_t *p, size_t n, char *out);
/* Wall clock in µs since the epoch (CLOCK_REALTIME). */
int64_t bs_audit_now_us(void);

#endif
