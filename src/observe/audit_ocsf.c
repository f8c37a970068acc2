/*
 * audit_ocsf.c - the OCSF 1.8.0 serialisation of the audit event model
 * (audit.format "ocsf"; docs/audit-events.md, "OCSF format", has the field
 * mapping). One bs_audit_event becomes one OCSF event:
 *
 *   Kafka request                       API Activity (6003)
 *   SaslAuthenticate with an outcome    Authentication (3002), Logon
 *   authorization decisions             API Activity (6003), actor.authorizations
 *   connection accepted / closed        Network Activity (4001), Open / Close
 *   TLS handshake failed                Network Activity (4001), Fail
 *   client certificate accepted/refused Authentication (3002), Logon
 *   sidecar actions                     Application Lifecycle (6002),
 *                                       Entity Management (3004),
 *                                       Application Error (6008)
 *
 * The chain records (audit_chain.c) use the head writer below too. Every
 * event ends with an open `unmapped` object whose first member is eventName,
 * so the chain members (chainId, sequence, previousHash) go inside it and
 * `brokerside audit verify` reads both formats the same way.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <string.h>

#include "audit_internal.h"
#include "brokerside/audit.h"
#include "brokerside/identity.h"
#include "brokerside/version.h"

/* Kafka's API keys the mapping looks at. */
#define API_PRODUCE 0
#define API_SASL_AUTHENTICATE 36

/* See audit_internal.h. */
void bs_ocsf_put_head(bs_wbuf *w, const bs_ocsf_head *h)
{
    static const char *const sev[] = {"Unknown", "Informational", "Low",  "Medium",
                                      "High",    "Critical",      "Fatal"};
    int cat = h->class_uid / 1000;
    static const char *const cats[] = {"Uncategorized", "System Activity", "Findings",
                                       "Identity & Access Management", "Network Activity",
                                       "Discovery", "Application Activity"};
    bs_wbuf_put_str(w, "{\"class_uid\":");
    bs_audit_put_i64(w, h->class_uid);
    bs_wbuf_put_str(w, ",\"class_name\":");
    bs_audit_put_cstr(w, h->class_name);
    bs_audit_put_kv(w, ",\"category_uid\":", cat);
    bs_wbuf_put_str(w, ",\"category_name\":");
    bs_audit_put_cstr(w, (size_t)cat < BS_ARRAY_LEN(cats) ? cats[cat] : "Uncategorized");
    bs_audit_put_kv(w, ",\"activity_id\":", h->activity_id);
    bs_wbuf_put_str(w, ",\"activity_name\":");
    bs_audit_put_cstr(w, h->activity_name);
    bs_audit_put_kv(w, ",\"type_uid\":", (int64_t)h->class_uid * 100 + h->activity_id);
    bs_wbuf_put_str(w, ",\"type_name\":\"");
    bs_wbuf_put_str(w, h->class_name);
    bs_wbuf_put_str(w, ": ");
    bs_wbuf_put_str(w, h->activity_name);
    bs_wbuf_put_u8(w, '"');
    int64_t ms = h->time_us < 0 ? 0 : h->time_us / 1000;
    bs_audit_put_kv(w, ",\"time\":", ms);
    bs_wbuf_put_str(w, ",\"timezone_offset\":0");
    int s = h->severity_id >= 0 && h->severity_id <= 6 ? h->severity_id : 0;
    bs_audit_put_kv(w, ",\"severity_id\":", s);
    bs_wbuf_put_str(w, ",\"severity\":\"");
    bs_wbuf_put_str(w, sev[s]);
    bs_wbuf_put_u8(w, '"');
    if (h->status_id >= 0) {
        static const char *const st[] = {"Unknown", "Success", "Failure"};
        bs_audit_put_kv(w, ",\"status_id\":", h->status_id);
        bs_wbuf_put_str(w, ",\"status\":");
        bs_audit_put_cstr(w, h->status ? h->status : h->status_id <= 2 ? st[h->status_id] : "Other");
        if (h->status_code) {
            bs_wbuf_put_str(w, ",\"status_code\":");
            bs_audit_put_cstr(w, h->status_code);
        }
        if (h->status_detail) {
            bs_wbuf_put_str(w, ",\"status_detail\":");
            bs_audit_put_cstr(w, h->status_detail);
        }
    }
    if (h->message) {
        bs_wbuf_put_str(w, ",\"message\":");
        bs_audit_put_cstr(w, h->message);
    }
    bs_wbuf_put_str(w, ",\"metadata\":{\"version\":\"" BS_OCSF_VERSION "\",\"uid\":\"");
    bs_wbuf_put_str(w, h->event_id);
    bs_wbuf_put_str(w, "\",\"product\":{\"name\":\"brokerside\",\"vendor_name\":\"brokerside\","
                       "\"version\":\"" BS_VERSION "\"},\"log_name\":");
    bs_audit_put_cstr(w, h->log_name);
    bs_wbuf_put_str(w, ",\"log_provider\":\"brokerside\",\"event_code\":");
    bs_audit_put_cstr(w, h->event_name);
    if (h->host_profile) bs_wbuf_put_str(w, ",\"profiles\":[\"host\"]");
    bs_wbuf_put_u8(w, '}');
}

/* See audit_internal.h. */
void bs_ocsf_open_unmapped(bs_wbuf *w, const char *event_name, const char *event_type)
{
    bs_wbuf_put_str(w, ",\"unmapped\":{\"eventName\":");
    bs_audit_put_cstr(w, event_name);
    bs_wbuf_put_str(w, ",\"eventType\":");
    bs_audit_put_cstr(w, event_type);
}

/* See audit_internal.h. */
void bs_ocsf_put_app(bs_wbuf *w)
{
    bs_wbuf_put_str(w, ",\"app\":{\"name\":\"brokerside\",\"vendor_name\":\"brokerside\","
                       "\"version\":\"" BS_VERSION "\"}");
}

/* The API Activity verb of a Kafka API: Produce and Create* create,
 * Delete* delete, read-only APIs read, everything else updates. */
static void api_activity(int16_t api_key, int *id, const char **name)
{
    const bs_audit_api_class *c = bs_audit_api_lookup(api_key);
    const char *n = c ? c->name : "";
    if (api_key == API_PRODUCE || strncmp(n, "Create", 6) == 0) {
        *id = 1;
        *name = "Create";
    } else if (strncmp(n, "Delete", 6) == 0) {
        *id = 4;
        *name = "Delete";
    } else if (c && c->read_only) {
        *id = 2;
        *name = "Read";
    } else {
        *id = 3;
        *name = "Update";
    }
}

/* `"user":{...}` for a principal string, with the certificate identity as
 * uid_alt when a SASL principal decides (both identities kept). Nothing
 * when the connection is anonymous. Returns whether it wrote a user. */
static bool put_user(bs_wbuf *w, const bs_audit_event *ev, bool lead_comma)
{
    const bs_conn_identity *id = ev->identity;
    const char *name = NULL, *alt = NULL, *type = NULL;
    if (id && id->sasl_principal[0]) {
        name = id->sasl_principal;
        alt = id->cert_principal[0] ? id->cert_principal : ev->principal;
        type = "SASL";
    } else if (id && id->cert_principal[0]) {
        name = id->cert_principal;
        alt = ev->principal;
        type = "mTLS";
    } else if (ev->principal) {
        name = ev->principal;
        type = "mTLS";
    }
    if (!name) return false;
    bs_wbuf_put_str(w, lead_comma ? ",\"user\":{\"name\":" : "\"user\":{\"name\":");
    bs_audit_put_cstr(w, name);
    bs_wbuf_put_str(w, ",\"uid\":");
    bs_audit_put_cstr(w, name);
    if (alt && strcmp(alt, name) != 0) {
        bs_wbuf_put_str(w, ",\"uid_alt\":");
        bs_audit_put_cstr(w, alt);
    }
    bs_wbuf_put_str(w, ",\"type\":\"");
    bs_wbuf_put_str(w, type);
    bs_wbuf_put_str(w, "\",\"type_id\":99}");
    return true;
}

/* `,"actor":{"user":...,"session":{"uid":CONN},"app_name":UA}` plus the
 * authorizations of an authorization event when `authz`. */
static void put_actor(bs_wbuf *w, const bs_audit_event *ev, bool authz)
{
    bs_wbuf_put_str(w, ",\"actor\":{");
    bool any = put_user(w, ev, false);
    bs_wbuf_put_str(w, any ? ",\"session\":{\"uid\":\"" : "\"session\":{\"uid\":\"");
    bs_audit_put_u64(w, ev->conn_id);
    bs_wbuf_put_str(w, "\",\"is_remote\":true}");
    if (ev->has_sw) {
        bs_wbuf_put_str(w, ",\"app_name\":");
        bs_wbuf_put_json_string(w, ev->arena + ev->sw_name_off, ev->sw_name_len);
    } else if (ev->has_client_id && ev->client_id_len) {
        bs_wbuf_put_str(w, ",\"app_name\":");
        bs_wbuf_put_json_string(w, ev->arena + ev->client_id_off, ev->client_id_len);
    }
    if (authz) {
        /* one authorization per decision: ALLOW/DENY, the rule as policy */
        bs_wbuf_put_str(w, ",\"authorizations\":[");
        for (size_t r = 0; r < ev->n_res; r++) {
            const char *dec = "ALLOW", *rule = NULL, *basis = NULL, *op = NULL;
            size_t rule_len = 0, basis_len = 0, op_len = 0;
            for (size_t i = 0; i < ev->n_items; i++) {
                const bs_audit_item *it = &ev->items[i];
                if (it->resource != r || it->kind != BS_AUDIT_ITEM_ATTR) continue;
                const char *k = ev->arena + it->key_off, *v = ev->arena + it->val_off;
                if (it->key_len == 8 && memcmp(k, "decision", 8) == 0 && it->val_len == 4)
                    dec = "DENY";
                else if (it->key_len == 4 && memcmp(k, "rule", 4) == 0)
                    rule = v, rule_len = it->val_len;
                else if (it->key_len == 5 && memcmp(k, "basis", 5) == 0)
                    basis = v, basis_len = it->val_len;
                else if (it->key_len == 9 && memcmp(k, "operation", 9) == 0)
                    op = v, op_len = it->val_len;
            }
            const bs_audit_resource *res = &ev->res[r];
            bs_wbuf_put_str(w, r ? ",{\"decision\":\"" : "{\"decision\":\"");
            bs_wbuf_put_str(w, dec[0] == 'A' ? "Allow" : "Deny");
            bs_wbuf_put_str(w, "\",\"policy\":{\"type\":\"brokerside-authorization\",\"name\":");
            if (rule)
                bs_wbuf_put_json_string(w, rule, rule_len);
            else
                bs_wbuf_put_str(w, "\"default\"");
            if (basis) {
                bs_wbuf_put_str(w, ",\"desc\":");
                bs_wbuf_put_json_string(w, basis, basis_len);
            }
            bs_wbuf_put_str(w, ",\"data\":{\"resourceType\":\"");
            bs_wbuf_put_str(w, bs_audit_res_type_name(res->type));
            bs_wbuf_put_str(w, "\",\"resourceName\":");
            bs_wbuf_put_json_string(w, ev->arena + res->name_off, res->name_len);
            if (op) {
                bs_wbuf_put_str(w, ",\"operation\":");
                bs_wbuf_put_json_string(w, op, op_len);
            }
            bs_wbuf_put_str(w, "}}}");
        }
        bs_wbuf_put_u8(w, ']');
    }
    bs_wbuf_put_u8(w, '}');
}

/* True when s is an IPv4 or IPv6 address in text form (the peer address
 * is "?" when the socket could not tell it, e.g. after the peer left). */
static bool is_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

/* src_endpoint (the client) and dst_endpoint (the listener). */
static void put_endpoints(bs_wbuf *w, const bs_audit_event *ev)
{
    if (is_ip(ev->source_ip)) {
        bs_wbuf_put_str(w, ",\"src_endpoint\":{\"ip\":");
        bs_audit_put_cstr(w, ev->source_ip);
        if (ev->source_port) bs_audit_put_kv(w, ",\"port\":", ev->source_port);
        bs_wbuf_put_u8(w, '}');
    } else {
        bs_wbuf_put_str(w, ",\"src_endpoint\":{\"uid\":\"connection-");
        bs_audit_put_u64(w, ev->conn_id);
        bs_wbuf_put_str(w, "\"}");
    }
    bs_wbuf_put_str(w, ",\"dst_endpoint\":{\"svc_name\":\"kafka\"");
    if (ev->listener) {
        bs_wbuf_put_str(w, ",\"name\":");
        bs_audit_put_cstr(w, ev->listener);
    }
    if (ev->broker_id >= 0) {
        bs_wbuf_put_str(w, ",\"uid\":\"broker-");
        bs_audit_put_i64(w, ev->broker_id);
        bs_wbuf_put_u8(w, '"');
    }
    bs_wbuf_put_u8(w, '}');
}

/* A comma before every member of an object but its first. */
static void sep(bs_wbuf *w, bool *first)
{
    if (!*first) bs_wbuf_put_u8(w, ',');
    *first = false;
}

/* `"errorCode":N` and, when known, `,"errorName":"NAME"` (no lead comma). */
static void put_err(bs_wbuf *w, int16_t code)
{
    bs_audit_put_kv(w, "\"errorCode\":", code);
    const char *n = bs_kafka_error_name(code);
    if (n) {
        bs_wbuf_put_str(w, ",\"errorName\":\"");
        bs_wbuf_put_str(w, n);
        bs_wbuf_put_u8(w, '"');
    }
}

/* `,"resources":[...]`: each resource's type and name, and in `data` what
 * the request named (partitions, config keys, attributes), the volume and
 * the response's errors. Nothing when the event names no resource. */
static void put_resources(bs_wbuf *w, const bs_audit_event *ev)
{
    if (ev->n_res == 0) return;
    bs_wbuf_put_str(w, ",\"resources\":[");
    for (size_t r = 0; r < ev->n_res; r++) {
        const bs_audit_resource *res = &ev->res[r];
        bs_wbuf_put_str(w, r ? ",{\"type\":\"" : "{\"type\":\"");
        bs_wbuf_put_str(w, bs_audit_res_type_name(res->type));
        bs_wbuf_put_str(w, "\",\"name\":");
        if (res->name_len || res->type != BS_AUDIT_RES_CLUSTER)
            bs_wbuf_put_json_string(w, ev->arena + res->name_off, res->name_len);
        else
            bs_wbuf_put_str(w, "\"kafka-cluster\"");
        bs_wbuf_put_str(w, ",\"data\":{");
        bool first_member = true;
        bs_audit_put_items(w, ev, r, &first_member);
        if (res->records >= 0) {
            sep(w, &first_member);
            bs_audit_put_kv(w, "\"records\":", res->records);
        }
        if (res->bytes >= 0) {
            sep(w, &first_member);
            bs_audit_put_kv(w, "\"bytes\":", res->bytes);
        }
        if (res->error_code != BS_AUDIT_NO_ERROR) {
            sep(w, &first_member);
            put_err(w, res->error_code);
        }
        bool first = true;
        for (size_t i = 0; i < ev->n_items; i++) {
            const bs_audit_item *it = &ev->items[i];
            if (it->resource != r || it->kind != BS_AUDIT_ITEM_PARTITION ||
                it->error_code == BS_AUDIT_NO_ERROR)
                continue;
            if (first) {
                sep(w, &first_member);
                bs_wbuf_put_str(w, "\"partitionErrors\":[");
            } else {
                bs_wbuf_put_u8(w, ',');
            }
            first = false;
            bs_audit_put_kv(w, "{\"partition\":", it->partition);
            bs_wbuf_put_u8(w, ',');
            put_err(w, it->error_code);
            bs_wbuf_put_u8(w, '}');
        }
        if (!first) bs_wbuf_put_u8(w, ']');
        bs_wbuf_put_str(w, "}}");
    }
    bs_wbuf_put_u8(w, ']');
}

/* Status of a request: unknown without a response, success for error 0,
 * failure with the Kafka error code and name otherwise. */
static void request_status(const bs_audit_event *ev, bs_ocsf_head *h, char code[8])
{
    int16_t err = bs_audit_summary_error(ev);
    if (err == BS_AUDIT_NO_ERROR) {
        h->status_id = 0;
        return;
    }
    snprintf(code, 8, "%d", err);
    h->status_code = code;
    h->status_id = err == 0 ? 1 : 2;
    const char *n = bs_kafka_error_name(err);
    h->status_detail = n ? n : NULL;
    if (err != 0) h->severity_id = 2;
}

/* The members of the CloudTrail-like record that have no OCSF attribute,
 * after eventName/eventType (inside `unmapped`). */
static void put_request_extras(bs_wbuf *w, const bs_audit_event *ev)
{
    const bs_audit_api_class *c = bs_audit_api_lookup(ev->api_key);
    bs_wbuf_put_str(w, ",\"eventCategory\":\"");
    bs_wbuf_put_str(w, ev->type == BS_AUDIT_EV_AUTHZ
                           ? "Management"
                           : bs_audit_category_name(c ? c->category : BS_AUDIT_MANAGEMENT));
    bs_wbuf_put_str(w, c && c->read_only ? "\",\"readOnly\":true" : "\",\"readOnly\":false");
    bs_audit_put_kv(w, ",\"apiKey\":", ev->api_key);
    bs_audit_put_kv(w, ",\"apiVersion\":", ev->api_version);
    bs_audit_put_identity(w, ev);
    if (ev->type == BS_AUDIT_EV_REQUEST) bs_audit_put_user_agent(w, ev);
    if (ev->latency_us >= 0) {
        int frac = (int)(ev->latency_us % 1000);
        char f[4] = {(char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                     (char)('0' + frac % 10), 0};
        bs_audit_put_kv(w, ",\"latencyMs\":", ev->latency_us / 1000);
        bs_wbuf_put_u8(w, '.');
        bs_wbuf_put(w, f, 3);
    }
    bs_wbuf_put_str(w, ",\"requestID\":\"");
    bs_audit_put_u64(w, ev->conn_id);
    bs_wbuf_put_u8(w, '-');
    bs_audit_put_i64(w, ev->correlation_id);
    bs_wbuf_put_u8(w, '"');
    if (ev->request_bytes >= 0) bs_audit_put_kv(w, ",\"requestBytes\":", ev->request_bytes);
    if (ev->response_bytes >= 0) bs_audit_put_kv(w, ",\"responseBytes\":", ev->response_bytes);
    if (ev->truncated) bs_wbuf_put_str(w, ",\"truncated\":true");
    if (ev->undecoded) bs_wbuf_put_str(w, ",\"requestDecoded\":false");
}

/* api: operation, version, service, request uid (the correlation id) and,
 * when a response was seen, its code and error name. */
static void put_api(bs_wbuf *w, const bs_audit_event *ev, const char *op)
{
    bs_wbuf_put_str(w, ",\"api\":{\"operation\":");
    bs_audit_put_cstr(w, op);
    bs_wbuf_put_str(w, ",\"version\":\"");
    bs_audit_put_i64(w, ev->api_version);
    bs_wbuf_put_str(w, "\",\"service\":{\"name\":\"kafka\"},\"request\":{\"uid\":\"");
    bs_audit_put_i64(w, ev->correlation_id);
    bs_wbuf_put_str(w, "\"}");
    int16_t err = bs_audit_summary_error(ev);
    if (ev->type == BS_AUDIT_EV_REQUEST && err != BS_AUDIT_NO_ERROR) {
        bs_audit_put_kv(w, ",\"response\":{\"code\":", err);
        const char *n = bs_kafka_error_name(err);
        if (n && err != 0) {
            bs_wbuf_put_str(w, ",\"error\":\"");
            bs_wbuf_put_str(w, n);
            bs_wbuf_put_u8(w, '"');
        }
        bs_wbuf_put_u8(w, '}');
    }
    bs_wbuf_put_u8(w, '}');
}

/* The SASL protocol of a mechanism: OAUTHBEARER is OAuth 2.0, the others
 * are "Other" with their SASL name. */
static void put_auth_protocol(bs_wbuf *w, bs_sasl_mech m)
{
    bs_audit_put_kv(w, ",\"auth_protocol_id\":", m == BS_SASL_OAUTHBEARER ? 6 : 99);
    bs_wbuf_put_str(w, ",\"auth_protocol\":\"SASL/");
    bs_wbuf_put_str(w, bs_sasl_mech_name(m) ? bs_sasl_mech_name(m) : "unknown");
    bs_wbuf_put_u8(w, '"');
}

/* An Authentication (3002) Logon for a SASL outcome or a client
 * certificate check; `ok` is the outcome. */
static void render_auth(const bs_audit_event *ev, const char *source, const char *event_id,
                        const char *event_name, const char *event_type, bool sasl, bool ok,
                        bs_wbuf *out)
{
    const bs_conn_identity *id = ev->identity;
    bs_ocsf_head h = {.class_uid = 3002,
                      .class_name = "Authentication",
                      .activity_id = 1,
                      .activity_name = "Logon",
                      .time_us = ev->time_us,
                      .event_id = event_id,
                      .severity_id = ok ? 1 : 3,
                      .status_id = ok ? 1 : 2,
                      .log_name = source,
                      .event_name = event_name};
    if (sasl && id && id->attempt_note) h.status_detail = id->attempt_note;
    if (!sasl && ev->reason) h.status_detail = ev->reason;
    bs_ocsf_put_head(out, &h);
    /* the user who tried: the attempted SASL name, or the certificate's */
    const char *who = NULL;
    if (sasl && id && id->attempt_principal[0]) who = id->attempt_principal;
    if (!sasl && id && id->cert_principal[0]) who = id->cert_principal;
    if (!who) who = !sasl ? ev->principal : NULL;
    bs_wbuf_put_str(out, ",\"user\":{\"name\":");
    bs_audit_put_cstr(out, who ? who : "(unknown)");
    if (!sasl && ev->principal && who != ev->principal) {
        bs_wbuf_put_str(out, ",\"uid_alt\":");
        bs_audit_put_cstr(out, ev->principal);
    }
    bs_wbuf_put_u8(out, '}');
    put_actor(out, ev, false);
    if (sasl)
        put_auth_protocol(out, id ? id->attempt_mech : BS_SASL_OTHER);
    else
        bs_wbuf_put_str(out, ",\"auth_protocol_id\":99,\"auth_protocol\":\"TLS client certificate\"");
    bs_wbuf_put_str(out, ",\"logon_type_id\":3,\"logon_type\":\"Network\",\"is_remote\":true");
    bs_wbuf_put_str(out, ",\"service\":{\"name\":\"kafka\"}");
    put_endpoints(out, ev);
    bs_ocsf_open_unmapped(out, event_name, event_type);
}

/* A connection event: Network Activity, or Authentication for the
 * client certificate verdicts. A PROXY protocol refusal is a failed
 * connection like a failed TLS handshake (4 Fail), its detail the message. */
static bs_status render_connection(const bs_audit_event *ev, const char *source,
                                   const char *event_id, bs_wbuf *out)
{
    const char *name = bs_audit_conn_name(ev->conn_kind);
    BS_ENSURE(name, BS_E_MALFORMED);
    if (ev->conn_kind == BS_AUDIT_CONN_CLIENT_CERT_REJECTED ||
        ev->conn_kind == BS_AUDIT_CONN_CLIENT_CERT_ACCEPTED) {
        render_auth(ev, source, event_id, name, "KafkaConnection", false,
                    ev->conn_kind == BS_AUDIT_CONN_CLIENT_CERT_ACCEPTED, out);
    } else {
        char message[BS_AUDIT_DETAIL_MAX + 1];
        bs_ocsf_head h = {.class_uid = 4001,
                          .class_name = "Network Activity",
                          .time_us = ev->time_us,
                          .event_id = event_id,
                          .severity_id = 1,
                          .status_id = 1,
                          .log_name = source,
                          .event_name = name,
                          .host_profile = true};
        if (ev->conn_kind == BS_AUDIT_CONN_ACCEPTED) {
            h.activity_id = 1;
            h.activity_name = "Open";
        } else if (ev->conn_kind == BS_AUDIT_CONN_CLOSED) {
            h.activity_id = 2;
            h.activity_name = "Close";
        } else {
            h.activity_id = 4;
            h.activity_name = "Fail";
            h.status_id = 2;
            h.severity_id = 2;
            h.status_detail = ev->reason;
            if (ev->detail) {
                snprintf(message, sizeof message, "%s", ev->detail);
                h.message = message;
            }
        }
        bs_ocsf_put_head(out, &h);
        put_actor(out, ev, false);
        put_endpoints(out, ev);
        bs_wbuf_put_str(out, ",\"connection_info\":{\"uid\":\"");
        bs_audit_put_u64(out, ev->conn_id);
        bs_wbuf_put_str(out, "\",\"direction_id\":1,\"direction\":\"Inbound\","
                             "\"protocol_name\":\"tcp\",\"protocol_num\":6}");
        if (ev->conn_kind == BS_AUDIT_CONN_CLOSED) {
            int64_t in = ev->bytes_in < 0 ? 0 : ev->bytes_in, o = ev->bytes_out < 0 ? 0 : ev->bytes_out;
            bs_audit_put_kv(out, ",\"traffic\":{\"bytes_in\":", in);
            bs_audit_put_kv(out, ",\"bytes_out\":", o);
            bs_audit_put_kv(out, ",\"bytes\":", in + o);
            bs_wbuf_put_u8(out, '}');
            if (ev->duration_ms >= 0) bs_audit_put_kv(out, ",\"duration\":", ev->duration_ms);
        }
        bs_ocsf_open_unmapped(out, name, "KafkaConnection");
    }
    bs_audit_put_identity(out, ev);
    bs_audit_put_reason_detail(out, ev);
    if (ev->conn_kind == BS_AUDIT_CONN_CLOSED)
        bs_wbuf_printf(out, ",\"durationMs\":%" PRId64 ",\"bytesIn\":%" PRId64 ",\"bytesOut\":%" PRId64,
                       ev->duration_ms, ev->bytes_in, ev->bytes_out);
    return bs_wbuf_status(out);
}

/* A sidecar action: Application Lifecycle for stop, Entity Management for
 * what the sidecar changed (configuration, policy, TLS material, data
 * keys), Application Error for outages and their recovery. */
static bs_status render_action(const bs_audit_event *ev, const char *source, const char *event_id,
                               bs_wbuf *out)
{
    const char *name = bs_sidecar_action_name(ev->action);
    bs_ocsf_head h = {.time_us = ev->time_us,
                      .event_id = event_id,
                      .severity_id = ev->action_failed ? 3 : 1,
                      .status_id = ev->action_failed ? 2 : 1,
                      .message = ev->reason,
                      .log_name = source,
                      .event_name = name};
    const char *entity_type = NULL;
    int entity_type_id = 0;
    switch (ev->action) {
    case BS_ACTION_STOPPING:
        h.class_uid = 6002, h.class_name = "Application Lifecycle";
        h.activity_id = 4, h.activity_name = "Stop";
        break;
    case BS_ACTION_CONFIG_RELOADED:
    case BS_ACTION_CONFIG_REJECTED:
        entity_type = "Configuration";
        break;
    case BS_ACTION_TLS_RELOADED:
        entity_type = "TLS material";
        break;
    case BS_ACTION_POLICY_CHANGED:
        entity_type = "Policy";
        entity_type_id = 5;
        break;
    case BS_ACTION_DEK_CREATED:
    case BS_ACTION_DEK_ROTATED:
        entity_type = "Data key";
        break;
    case BS_ACTION_KMS_FAILED:
    case BS_ACTION_SINK_DEAD_LETTERED:
    case BS_ACTION_SPOOL_FULL:
        h.class_uid = 6008, h.class_name = "Application Error";
        h.activity_id = 1, h.activity_name = "General Error";
        h.status_id = 2;
        h.severity_id = 4;
        break;
    case BS_ACTION_KMS_RECOVERED:
    case BS_ACTION_SPOOL_RECOVERED:
    default:
        h.class_uid = 6008, h.class_name = "Application Error";
        h.activity_id = 99, h.activity_name = "Recovered";
        break;
    }
    if (entity_type) {
        h.class_uid = 3004, h.class_name = "Entity Management";
        if (ev->action == BS_ACTION_DEK_CREATED)
            h.activity_id = 1, h.activity_name = "Create";
        else if (ev->action == BS_ACTION_DEK_ROTATED)
            h.activity_id = 11, h.activity_name = "Deactivate";
        else
            h.activity_id = 3, h.activity_name = "Update";
    }
    bs_ocsf_put_head(out, &h);
    if (h.class_uid == 6002) bs_ocsf_put_app(out);
    if (entity_type) {
        bs_wbuf_put_str(out, ",\"entity\":{\"name\":");
        bs_audit_put_cstr(out, ev->subject ? ev->subject : ev->subject_type);
        bs_wbuf_put_str(out, ",\"type\":");
        bs_audit_put_cstr(out, entity_type);
        if (entity_type_id) bs_audit_put_kv(out, ",\"type_id\":", entity_type_id);
        bs_wbuf_put_u8(out, '}');
        bs_wbuf_put_str(out, ",\"actor\":{\"app_name\":\"brokerside\"}");
    }
    bs_ocsf_open_unmapped(out, name, "SidecarAction");
    bs_audit_put_action(out, ev);
    return bs_wbuf_status(out);
}

/* See audit_internal.h. */
bs_status bs_ocsf_render_open(const bs_audit_event *ev, const char *source, const char *event_id,
                              bs_wbuf *out)
{
    if (ev->type == BS_AUDIT_EV_CONNECTION) return render_connection(ev, source, event_id, out);
    if (ev->type == BS_AUDIT_EV_SIDECAR) return render_action(ev, source, event_id, out);
    BS_ENSURE(ev->type == BS_AUDIT_EV_REQUEST || ev->type == BS_AUDIT_EV_AUTHZ, BS_E_MALFORMED);
    const bs_audit_api_class *c = bs_audit_api_lookup(ev->api_key);
    const char *op = c ? c->name : "UnknownApi";
    const bs_conn_identity *id = ev->identity;
    if (ev->type == BS_AUDIT_EV_REQUEST && ev->api_key == API_SASL_AUTHENTICATE && id &&
        (id->last_result == BS_SASL_RESULT_OK || id->last_result == BS_SASL_RESULT_FAILED)) {
        render_auth(ev, source, event_id, op, "KafkaApiCall", true,
                    id->last_result == BS_SASL_RESULT_OK, out);
        put_request_extras(out, ev);
        return bs_wbuf_status(out);
    }
    bs_ocsf_head h = {.class_uid = 6003,
                      .class_name = "API Activity",
                      .time_us = ev->time_us,
                      .event_id = event_id,
                      .severity_id = 1,
                      .log_name = source,
                      .event_name = op};
    api_activity(ev->api_key, &h.activity_id, &h.activity_name);
    char code[8];
    bool authz = ev->type == BS_AUDIT_EV_AUTHZ;
    if (authz) {
        bool denied = false;
        for (size_t i = 0; i < ev->n_items; i++) {
            const bs_audit_item *it = &ev->items[i];
            if (it->kind == BS_AUDIT_ITEM_ATTR && it->key_len == 8 &&
                memcmp(ev->arena + it->key_off, "decision", 8) == 0 && it->val_len == 4)
                denied = true;
        }
        h.status_id = denied ? 2 : 1;
        h.status_detail = denied ? "DENY" : "ALLOW";
        h.severity_id = denied ? 3 : 1;
    } else {
        request_status(ev, &h, code);
    }
    bs_ocsf_put_head(out, &h);
    put_actor(out, ev, authz);
    put_endpoints(out, ev);
    put_api(out, ev, op);
    put_resources(out, ev);
    if (!authz && ev->latency_us >= 0) bs_audit_put_kv(out, ",\"duration\":", ev->latency_us / 1000);
    bs_ocsf_open_unmapped(out, op, authz ? "KafkaAuthorization" : "KafkaApiCall");
    if (authz) bs_wbuf_put_str(out, h.status_id == 2 ? ",\"decision\":\"DENY\"" : ",\"decision\":\"ALLOW\"");
    put_request_extras(out, ev);
    return bs_wbuf_status(out);
}
