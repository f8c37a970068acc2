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
/* Render a request/connection/authorization/sidecar event in the
 * CloudTrail-like format without its closing brace. */
bs_status bs_audit_render_open(const bs_audit_event *ev, const char *source, const char *event_id,
                               bs_wbuf *out) BS_WUR;
/* The same event in OCSF (audit_ocsf.c): the object is left with its
 * "unmapped" object open and non-empty, so the chain members follow it. */
bs_status bs_ocsf_render_open(const bs_audit_event *ev, const char *source, const char *event_id,
                              bs_wbuf *out) BS_WUR;
/* The OCSF schema version the events follow. */
#define BS_OCSF_VERSION "1.8.0"

/* What the OCSF head of one event says (bs_ocsf_put_head). */
typedef struct bs_ocsf_head {
    int class_uid;             /* e.g. 6003; the category is class_uid / 1000 */
    const char *class_name;    /* "API Activity" */
    int activity_id;           /* type_uid = class_uid * 100 + activity_id */
    const char *activity_name; /* "Read" */
    int64_t time_us;
    const char *event_id;      /* metadata.uid */
    int severity_id;           /* 1 Informational .. 6 Fatal */
    int status_id;             /* -1 = no status members; 0 unknown, 1 success, 2 failure */
    const char *status;        /* NULL = the caption of status_id */
    const char *status_code, *status_detail, *message; /* NULL = absent */
    const char *log_name;      /* metadata.log_name: the event source */
    const char *event_name;    /* metadata.event_code: the CloudTrail-like eventName */
    bool host_profile;         /* metadata.profiles ["host"]: the class has `actor` only
                                  through that profile (Network Activity) */
} bs_ocsf_head;

/* Open an OCSF event: `{` and the classification, time, severity, status,
 * message and metadata members (no trailing comma). */
void bs_ocsf_put_head(bs_wbuf *w, const bs_ocsf_head *h);
/* `,"unmapped":{"eventName":..,"eventType":..` left open. */
void bs_ocsf_open_unmapped(bs_wbuf *w, const char *event_name, const char *event_type);
/* `,"app":{...}`: brokerside itself as the product (Application Lifecycle). */
void bs_ocsf_put_app(bs_wbuf *w);
/* The object of a parsed audit line that holds the chain members and the
 * brokerside record fields (eventName, digest, previousChain, lost...):
 * the line itself (CloudTrail-like), or its `unmapped` object (OCSF: a
 * line with a numeric class_uid). */
typedef struct cJSON cJSON;
const cJSON *bs_audit_record_of(const cJSON *line);
/* Dispatch on `format` to one of the two above. */
bs_status bs_audit_render_event_open(bs_audit_format format, const bs_audit_event *ev,
                                     const char *source, const char *event_id, bs_wbuf *out) BS_WUR;
/* What closes an event after its chain members: "}" (CloudTrail) or "}}"
 * (OCSF: `unmapped`, then the event). */
void bs_audit_put_close(bs_audit_format format, bs_wbuf *w);
/* Members shared by both formats (preceded by a comma each): */
/* errorCode and errorName (the name only when known). */
void bs_audit_put_error(bs_wbuf *w, int16_t code);
/* userIdentity, authentication (SASL attempts), sourceIPAddress,
 * sourcePort, listener, brokerId, connectionId. */
void bs_audit_put_identity(bs_wbuf *w, const bs_audit_event *ev);
/* userAgent, clientId, clientSoftwareName/Version. */
void bs_audit_put_user_agent(bs_wbuf *w, const bs_audit_event *ev);
/* reason and detail of a connection event (each when set; detail cut at
 * BS_AUDIT_DETAIL_MAX bytes). */
void bs_audit_put_reason_detail(bs_wbuf *w, const bs_audit_event *ev);
/* The eventName of a connection event kind; NULL for an unknown kind. */
const char *bs_audit_conn_name(bs_audit_conn_kind kind);
/* A sidecar action's brokerId, outcome, message, component (type, name,
 * details) and changes (path, change, old/new or secret: true). */
void bs_audit_put_action(bs_wbuf *w, const bs_audit_event *ev);
/* The event's summary error code (see audit.c). */
int16_t bs_audit_summary_error(const bs_audit_event *ev);
/* Append a decimal integer (no printf: this is the per-event hot path). */
void bs_audit_put_u64(bs_wbuf *w, uint64_t v);
void bs_audit_put_i64(bs_wbuf *w, int64_t v);
/* Append the string literal `key` (e.g. ",\"sourcePort\":") then v. */
void bs_audit_put_kv(bs_wbuf *w, const char *key, int64_t v);
/* The items the request named for resource `r`, one member per kind that has
 * any: `"partitions":[..]`, `"configKeys":[..]`, `"attributes":{..}`, in
 * request order within each. A ',' leads each member unless *first_member
 * (then cleared): the CloudTrail-like rendering and OCSF share it. */
void bs_audit_put_items(bs_wbuf *w, const bs_audit_event *ev, size_t r, bool *first_member);
/* Lower-case hex of n bytes into out[2n+1]. */
void bs_audit_hex(const uint8_t *p, size_t n, char *out);
/* Wall clock in µs since the epoch (CLOCK_REALTIME). */
int64_t bs_audit_now_us(void);

#endif
