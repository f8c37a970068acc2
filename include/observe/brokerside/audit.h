/*
 * audit.h - the audit trail: event model, Kafka API classification, JSON
 * rendering, data-event aggregation, SHA-256 hash chain with signed digests,
 * and offline verification. docs/audit-events.md is the schema.
 *
 * Flow: the proxy fills a bs_audit_event per Kafka request (and per
 * connection event), then calls bs_audit_log_record(). The log decides by
 * category and `data_events` mode whether to emit the event now, fold it
 * into the aggregator, or drop it; emitted events are rendered to one JSON
 * line, chained (sequence + previousHash) and handed to the emit callback
 * (the spool, a file, a test buffer). Periodic digests sign the chain.
 *
 * Strings: the `const char *` fields of bs_audit_event are BORROWED and must
 * stay valid until bs_audit_log_record() returns (connection-lifetime
 * strings such as the principal qualify). Strings taken from the wire
 * (topics, groups, config keys, client.id) are copied into the event's
 * arena with the bs_audit_event_* adders, which take explicit lengths and
 * never read past them.
 */
#ifndef BROKERSIDE_AUDIT_H
#define BROKERSIDE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "brokerside/buf.h"
#include "brokerside/kafka.h"
#include "brokerside/sidecar_action.h"
#include "brokerside/status.h"

/* ---------------------------------------------------------------- tables */

typedef enum bs_audit_category {
    BS_AUDIT_MANAGEMENT = 0,
    BS_AUDIT_DATA = 1,
} bs_audit_category;

typedef struct bs_audit_api_class {
    int16_t key;
    const char *name; /* Kafka's message name without "Request", e.g. "CreateTopics" */
    bs_audit_category category;
    bool read_only;
} bs_audit_api_class;

/* Classification of a Kafka API key (0..87 as of Kafka 3.9/4.0 schemas).
 * Returns a pointer into a static table, or NULL for an unknown key (the
 * renderer then uses "UnknownApi", Management, readOnly false, so an
 * unknown API is never aggregated away). */
const bs_audit_api_class *bs_audit_api_lookup(int16_t api_key);
/* Number of entries in the table and the entry at `i` (for docs/tests). */
size_t bs_audit_api_count(void);
const bs_audit_api_class *bs_audit_api_at(size_t i);
/* Kafka error names: bs_kafka_error_name() in kafka.h. */
/* "Management" or "Data". */
const char *bs_audit_category_name(bs_audit_category c);

/* ---------------------------------------------------------------- events */

/* No error code known (the response did not carry one / not parsed). */
#define BS_AUDIT_NO_ERROR INT16_MIN

typedef enum bs_audit_event_type {
    BS_AUDIT_EV_REQUEST = 0,    /* one Kafka request and its response */
    BS_AUDIT_EV_CONNECTION = 1, /* connection lifecycle */
    /* authorization decisions of one request (the sidecar's policy): one
     * resource per decision, with attributes operation, decision, rule and
     * basis (bs_audit_event_add_decision) */
    BS_AUDIT_EV_AUTHZ = 2,
    /* one of the sidecar's own actions (sidecar_action.h): action, failed,
     * subject_type/subject, reason = message; resource 0 is the subject
     * (type component, its details as attributes), further resources are
     * changed configuration keys (type configKey, attributes change and,
     * unless secret, old/new) (bs_audit_event_from_action) */
    BS_AUDIT_EV_SIDECAR = 3,
} bs_audit_event_type;

typedef enum bs_audit_conn_kind {
    BS_AUDIT_CONN_ACCEPTED = 0,
    BS_AUDIT_CONN_TLS_HANDSHAKE_FAILED = 1,
    BS_AUDIT_CONN_CLIENT_CERT_REJECTED = 2,
    BS_AUDIT_CONN_CLOSED = 3,
    /* the client's certificate passed verification and mapped to a principal */
    BS_AUDIT_CONN_CLIENT_CERT_ACCEPTED = 4,
    /* a proxy_protocol listener refused the connection for its PROXY header
     * (or its source, or its silence): reason = the rejection label, detail =
     * the sidecar's one-line description; no Accepted/Closed pair */
    BS_AUDIT_CONN_PROXY_REJECTED = 5,
} bs_audit_conn_kind;

/* A connection event's `detail` is rendered cut to this many bytes (it can
 * quote a few header bytes; an audit line must stay bounded). */
#define BS_AUDIT_DETAIL_MAX 200

typedef enum bs_audit_res_type {
    BS_AUDIT_RES_TOPIC = 0,
    BS_AUDIT_RES_GROUP = 1,
    BS_AUDIT_RES_TRANSACTIONAL_ID = 2,
    BS_AUDIT_RES_BROKER = 3, /* a broker config resource; name = broker id */
    BS_AUDIT_RES_BROKER_LOGGER = 4,
    BS_AUDIT_RES_CLUSTER = 5,
    BS_AUDIT_RES_ACL = 6,  /* an ACL binding or filter; fields as attributes */
    BS_AUDIT_RES_USER = 7, /* SCRAM user, quota entity */
    BS_AUDIT_RES_DELEGATION_TOKEN = 8,
    BS_AUDIT_RES_CLIENT_METRICS = 9,
    BS_AUDIT_RES_OTHER = 10,
    BS_AUDIT_RES_COMPONENT = 11,  /* the subject of a sidecar action */
    BS_AUDIT_RES_CONFIG_KEY = 12, /* a changed configuration key (name = its path) */
} bs_audit_res_type;

/* The JSON name of a resource type ("topic", "group", ...). */
const char *bs_audit_res_type_name(bs_audit_res_type t);

/* Hard bounds per event; what exceeds them is dropped and the event is
 * rendered with "truncated": true (an audit line must stay bounded). */
#define BS_AUDIT_MAX_RESOURCES 256
#define BS_AUDIT_MAX_ITEMS 2048
#define BS_AUDIT_MAX_ARENA 65536

typedef struct bs_audit_resource {
    uint8_t type;                /* bs_audit_res_type */
    uint32_t name_off, name_len; /* into the arena; name_len 0 = no name */
    int16_t error_code;          /* resource-level error, BS_AUDIT_NO_ERROR if none */
    int64_t records, bytes;      /* data volume for this resource (Produce/Fetch), -1 = unknown */
} bs_audit_resource;

typedef enum bs_audit_item_kind {
    BS_AUDIT_ITEM_PARTITION = 0,  /* `partition` set */
    BS_AUDIT_ITEM_CONFIG_KEY = 1, /* key set */
    BS_AUDIT_ITEM_ATTR = 2,       /* key and value set (ACL fields, quota entity parts) */
} bs_audit_item_kind;

typedef struct bs_audit_item {
    uint16_t resource; /* index into resources */
    uint8_t kind;      /* bs_audit_item_kind */
    int16_t error_code;
    int32_t partition;
    uint32_t key_off, key_len, val_off, val_len;
} bs_audit_item;

typedef struct bs_audit_event {
    bs_audit_event_type type;
    int64_t time_us; /* wall clock (UTC, µs since the epoch) the request arrived */
    /* who and where (borrowed; NULL = absent) */
    uint64_t conn_id;
    const char *listener;
    int32_t broker_id;     /* -1 = unknown */
    const char *principal; /* mTLS subject; NULL = anonymous */
    /* certificate and SASL identity of the connection (identity.h), read at
     * render time; NULL = only `principal` is known */
    const struct bs_conn_identity *identity;
    const char *source_ip;
    uint16_t source_port;
    /* request */
    int16_t api_key, api_version;
    int32_t correlation_id;
    int16_t error_code;                    /* top-level response error, BS_AUDIT_NO_ERROR if none */
    int64_t latency_us;                    /* -1 = no response (acks=0, connection lost) */
    int64_t request_bytes, response_bytes; /* frame sizes, -1 = unknown */
    /* connection events */
    bs_audit_conn_kind conn_kind;
    const char *reason;  /* handshake failure / rejection reason */
    const char *detail;  /* PROXY rejection: one line, cut at BS_AUDIT_DETAIL_MAX; NULL = absent */
    int64_t duration_ms; /* closed: connection lifetime */
    int64_t bytes_in, bytes_out;
    /* arena-backed (set with the adders below) */
    uint32_t client_id_off, client_id_len;
    uint32_t sw_name_off, sw_name_len, sw_version_off, sw_version_len;
    bool has_client_id, has_sw;
    bool truncated;
    bool undecoded; /* the request body could not be decoded: rendered "requestDecoded":false */
    /* sidecar actions (BS_AUDIT_EV_SIDECAR) */
    bs_sidecar_action_kind action;
    bool action_failed;
    const char *subject_type, *subject;
    bs_audit_resource *res;
    size_t n_res, cap_res;
    bs_audit_item *items;
    size_t n_items, cap_items;
    char *arena;
    size_t arena_len, arena_cap;
} bs_audit_event;

/* Zero the event and set the "unknown" sentinels. No allocation. */
void bs_audit_event_init(bs_audit_event *ev);
/* Forget contents but keep the arena/array storage for the next request
 * (no heap churn on the hot path). */
void bs_audit_event_reset(bs_audit_event *ev);
/* Release the storage; the event may be init'ed again. */
void bs_audit_event_free(bs_audit_event *ev);

/* Copy client.id (from the request header) into the arena. */
bs_status bs_audit_event_set_client_id(bs_audit_event *ev, const char *s, size_t len) BS_WUR;
/* Copy client software name and version (ApiVersions v3+) into the arena. */
bs_status bs_audit_event_set_software(bs_audit_event *ev, const char *name, size_t name_len,
                                      const char *version, size_t version_len) BS_WUR;
/* Add a resource named s[0..len) (len 0: unnamed, e.g. the cluster);
 * *idx receives its index for the item adders and set_resource_error.
 * BS_E_FULL past BS_AUDIT_MAX_RESOURCES or the arena limit (the event is
 * marked truncated, nothing else changes). */
bs_status bs_audit_event_add_resource(bs_audit_event *ev, bs_audit_res_type type, const char *s,
                                      size_t len, size_t *idx) BS_WUR;
/* Add a partition of resource `idx` (error_code BS_AUDIT_NO_ERROR until the
 * response is seen). BS_E_NOT_FOUND for a bad idx, BS_E_FULL when full. */
bs_status bs_audit_event_add_partition(bs_audit_event *ev, size_t idx, int32_t partition) BS_WUR;
/* Add a config key (DescribeConfigs/AlterConfigs: keys only, never values). */
bs_status bs_audit_event_add_config_key(bs_audit_event *ev, size_t idx, const char *key,
                                        size_t key_len) BS_WUR;
/* Add a key/value attribute (ACL binding fields, quota entity parts). Never
 * pass secrets (SCRAM salts/passwords, token HMACs) here. */
bs_status bs_audit_event_add_attr(bs_audit_event *ev, size_t idx, const char *key, size_t key_len,
                                  const char *val, size_t val_len) BS_WUR;
/* Authorization events: add one decision (a resource with attributes
 * operation, decision ALLOW/DENY, rule "rules[N]" or absent, basis). `op`,
 * `basis` are static strings; the name is copied. BS_E_FULL when full. */
bs_status bs_audit_event_add_decision(bs_audit_event *ev, bs_audit_res_type type, const char *name,
                                      size_t name_len, const char *op, bool allowed, int rule,
                                      const char *basis) BS_WUR;
/* Record the response's error code for a resource / one of its partitions.
 * BS_E_NOT_FOUND if there is no such resource or partition. */
bs_status bs_audit_event_set_resource_error(bs_audit_event *ev, size_t idx, int16_t code) BS_WUR;
bs_status bs_audit_event_set_partition_error(bs_audit_event *ev, size_t idx, int32_t partition,
                                             int16_t code) BS_WUR;
/* Set data volume for a resource (records/bytes produced or fetched). */
bs_status bs_audit_event_set_volume(bs_audit_event *ev, size_t idx, int64_t records,
                                    int64_t bytes) BS_WUR;

/* Fill `ev` (reset first) from one sidecar action: type SIDECAR, time now,
 * `broker_id`, the subject as resource 0 with the details as attributes,
 * one configKey resource per change (values left out when secret). Strings
 * of `a` are borrowed (subject_type, subject, message) or copied (details,
 * changes). BS_E_FULL when the arena bounds are hit (the event is marked
 * truncated and still usable), BS_E_NOMEM. */
bs_status bs_audit_event_from_action(bs_audit_event *ev, const bs_sidecar_action *a,
                                     int32_t broker_id) BS_WUR;

/* The serialisations of one event model (audit.format). */
typedef enum bs_audit_format {
    BS_AUDIT_FORMAT_CLOUDTRAIL = 0, /* CloudTrail-like records (the default) */
    BS_AUDIT_FORMAT_OCSF = 1,       /* OCSF 1.8.0 events; chain fields in `unmapped` */
} bs_audit_format;

/* Render `ev` as one complete, unchained JSON object (no newline) appended
 * to `out`: every field of the schema except sequence/previousHash/chainId.
 * `event_id` is the 36-char UUID to use, or NULL to generate one.
 * Returns the wbuf status. */
bs_status bs_audit_render(const bs_audit_event *ev, const char *event_id, bs_wbuf *out) BS_WUR;
/* The same in `format` (OCSF: docs/audit-events.md, "OCSF format"), with
 * the chain members left out (for OCSF the `unmapped` object then closes
 * without chainId/sequence/previousHash). */
bs_status bs_audit_render_format(bs_audit_format format, const bs_audit_event *ev,
                                 const char *event_id, bs_wbuf *out) BS_WUR;
/* Write a fresh UUIDv7-style id (48-bit ms timestamp, 74 random bits) as
 * 36 chars + NUL into out[37]. BS_E_CRYPTO if the RNG fails. */
bs_status bs_audit_new_event_id(int64_t time_us, char out[37]) BS_WUR;
/* ISO 8601 UTC with milliseconds, "2026-11-24T21:10:19.123Z", into out[25]. */
void bs_audit_format_time(int64_t time_us, char out[25]);

/* ---------------------------------------------------------------- keys */

typedef enum bs_audit_key_type {
    BS_AUDIT_KEY_NONE = 0,
    BS_AUDIT_KEY_HMAC_SHA256 = 1,
    BS_AUDIT_KEY_ED25519 = 2,
} bs_audit_key_type;

typedef struct bs_audit_key bs_audit_key;

/* Load a signing key: a PEM Ed25519 private key, or an HMAC key (a file
 * with 32..1024 raw bytes, or 64..2048 hex digits plus optional newline).
 * Refuses (BS_E_CONFIG, logged without key material) a file that is not
 * regular or whose mode grants any group/other permission. *out is freed
 * with bs_audit_key_free (which wipes it). */
bs_status bs_audit_key_load(const char *path, bs_audit_key **out) BS_WUR;
/* Load a verification-only key: a PEM Ed25519 public key. No permission
 * requirement (public keys are public). */
bs_status bs_audit_key_load_public(const char *path, bs_audit_key **out) BS_WUR;
void bs_audit_key_free(bs_audit_key *k);
bs_audit_key_type bs_audit_key_get_type(const bs_audit_key *k);
/* "HMAC-SHA256" or "Ed25519". */
const char *bs_audit_key_algorithm(const bs_audit_key *k);
/* 16 hex chars identifying the key (SHA-256 of the public key, or of a
 * domain-separated HMAC key: never reveals the secret) into out[17]. */
void bs_audit_key_id(const bs_audit_key *k, char out[17]);

/* ---------------------------------------------------------------- chain + log */

typedef enum bs_audit_data_mode {
    BS_AUDIT_DATA_AGGREGATE = 0, /* default */
    BS_AUDIT_DATA_EACH = 1,
    BS_AUDIT_DATA_OFF = 2,
} bs_audit_data_mode;

/* Parse "each" | "aggregate" | "off"; BS_E_CONFIG otherwise. */
bs_status bs_audit_data_mode_parse(const char *s, bs_audit_data_mode *out) BS_WUR;

/* Options; bs_audit_options_default() fills the documented defaults. */
typedef struct bs_audit_options {
    bs_audit_data_mode data_events; /* default aggregate */
    uint32_t digest_every_events;   /* seal after this many events; default 1000, 0 = only on
                                       timer/close */
    uint32_t aggregate_max_keys;    /* aggregator map bound; default 10000 */
    const char *event_source;       /* default "kafka.brokerside" (borrowed) */
    int32_t broker_id;              /* for aggregate/chain events; default -1 (unknown) */
    bs_audit_format format;         /* serialisation of every event; default cloudtrail */
} bs_audit_options;

void bs_audit_options_default(bs_audit_options *o);

/* Where the previous process's chain ended (see bs_audit_link_from_file). */
typedef struct bs_audit_link {
    bool valid;
    char chain_id[33];
    uint64_t sequence;
    char hash[65]; /* hex SHA-256 of that last line */
    bool sealed;   /* the last line was a digest */
} bs_audit_link;

/* Read the last complete line of an existing audit file and describe it
 * (chain id, sequence, hash, whether it is a digest). A missing or empty
 * file gives BS_OK with link->valid false; an unparsable last line gives
 * BS_E_MALFORMED. */
bs_status bs_audit_link_from_file(const char *path, bs_audit_link *link) BS_WUR;

/* Receives each finished line (no trailing newline; the bytes that were
 * hashed). Called with the log's lock held, in chain order, so it must be
 * quick (in the daemon: append to the spool's queue, no blocking I/O; every
 * worker recording an event waits on that lock). A non-OK return means the
 * line was NOT stored: the log does not advance the chain. */
typedef bs_status (*bs_audit_emit_fn)(const char *line, size_t len, void *arg);

typedef struct bs_audit_log bs_audit_log;

/* Create a log and write its AuditChainStart event (sequence 0, a fresh
 * random chain id, previousHash of 64 zeros, and `prev` as previousChain
 * when prev && prev->valid; "previousRun" says "crashed" when that chain did
 * not end with its final digest, "stopped" when it did, "none" without one). `key` is borrowed (must outlive the log; NULL
 * = unsigned digests, allowed but logged as a warning). */
bs_status bs_audit_log_open(const bs_audit_options *opts, const bs_audit_key *key,
                            const bs_audit_link *prev, bs_audit_emit_fn emit, void *emit_arg,
                            bs_audit_log **out) BS_WUR;
/* Route one event: connection and Management events are emitted; Data
 * events per data_events mode. Thread-safe. Rendering happens outside the
 * lock; chaining and emission inside. An event the emit callback refuses is
 * LOST: it is counted, and before the next event that can be emitted (or at
 * close) the chain records an AuditEventsLost event (count, first and last
 * loss time) followed at once by a signed digest; `audit verify` reports it
 * as a problem (loss), never as OK. */
bs_status bs_audit_log_record(bs_audit_log *log, const bs_audit_event *ev) BS_WUR;
/* Emit aggregate events for everything accumulated since the last flush
 * (interval ends at now_us), then clear the aggregator. Thread-safe. */
bs_status bs_audit_log_flush_aggregates(bs_audit_log *log, int64_t now_us) BS_WUR;
/* Reload (SIGHUP): switch the data_events mode and digest_every_events of a
 * running log. Data events recorded from now on follow `mode`; when the old
 * mode was aggregate, what was folded so far is flushed as aggregate events
 * (interval ending at now_us) so nothing is lost. The chain continues
 * unbroken. Thread-safe. Returns the flush's status. */
bs_status bs_audit_log_set_data_mode(bs_audit_log *log, bs_audit_data_mode mode,
                                     uint32_t digest_every_events, int64_t now_us) BS_WUR;
/* Emit a signed AuditDigest for the events since the previous digest (no-op
 * if there are none). Call on a timer; also called every
 * digest_every_events events. Thread-safe. */
bs_status bs_audit_log_seal(bs_audit_log *log) BS_WUR;
/* Flush aggregates, write the final digest, free the log. Returns the first
 * error of those steps; the log is freed in every case. NULL: BS_OK. */
bs_status bs_audit_log_close(bs_audit_log *log, int64_t now_us) BS_WUR;
/* Current chain position (for tests and /status). */
void bs_audit_log_position(bs_audit_log *log, char chain_id[33], uint64_t *next_sequence);
/* Counters: events emitted, events dropped because emit failed, aggregate
 * keys that overflowed into the "*" bucket. */
void bs_audit_log_stats(bs_audit_log *log, uint64_t *emitted, uint64_t *emit_failures,
                        uint64_t *agg_overflow);
/* Give the log a probe that says whether its emit target is backed up
 * (the daemon: bs_event_bus_audit_blocked). Set once, before the log is
 * shared; the probe must be cheap and callable from any thread. */
void bs_audit_log_set_backlog_probe(bs_audit_log *log, bool (*blocked)(void *arg), void *arg);
/* True when the probe says events cannot be stored now (false without a
 * probe). Any thread. The per-request recorder refuses requests then. */
bool bs_audit_log_backlogged(bs_audit_log *log);
/* Loss counters: events lost since start, lost events not yet covered by an
 * AuditEventsLost record, and such records written. */
void bs_audit_log_losses(bs_audit_log *log, uint64_t *lost_total, uint64_t *lost_unrecorded,
                         uint64_t *gap_records);

/* An emit callback that appends line + '\n' to a FILE * (arg) and fflushes. */
bs_status bs_audit_emit_file(const char *line, size_t len, void *arg) BS_WUR;

/* The bytes an AuditDigest signature covers (docs/audit-events.md, 8):
 * "brokerside-audit-digest-v1\n" followed by the complete digest line (chain
 * fields included) with the signature's hex digits removed, i.e. with
 * `"signature":""`. So every byte of the digest line except the signature
 * itself is signed. `line` may carry the hex or be empty there.
 * BS_E_MALFORMED if the line has no `"signature":"..."` string member. */
bs_status bs_audit_digest_message(const char *line, size_t len, bs_wbuf *out) BS_WUR;
/* The byte range [*start, *end) of the signature's hex digits in a digest
 * line (start == end for the empty placeholder). BS_E_MALFORMED if absent. */
bs_status bs_audit_digest_sig_span(const char *line, size_t len, size_t *start, size_t *end) BS_WUR;
/* Sign / verify such a message; signatures are lower-case hex. */
bs_status bs_audit_sign(const bs_audit_key *k, const uint8_t *msg, size_t len,
                        bs_wbuf *sig_hex) BS_WUR;
/* BS_OK if valid, BS_E_CRYPTO if not, BS_E_MALFORMED for a bad hex string. */
bs_status bs_audit_verify_sig(const bs_audit_key *k, const uint8_t *msg, size_t len,
                              const char *sig_hex, size_t sig_len) BS_WUR;

/* ---------------------------------------------------------------- verify */

typedef enum bs_audit_problem {
    BS_AUDIT_OK = 0,
    BS_AUDIT_EDITED,        /* an event's bytes no longer hash to what the next event recorded */
    BS_AUDIT_REMOVED,       /* sequence gap */
    BS_AUDIT_INSERTED,      /* a line that does not belong at this place (duplicate/foreign) */
    BS_AUDIT_REORDERED,     /* adjacent events swapped */
    BS_AUDIT_MALFORMED,     /* not a valid audit event line (incl. truncated last line) */
    BS_AUDIT_BAD_DIGEST,    /* a digest's range or lastHash does not match the chain */
    BS_AUDIT_BAD_SIGNATURE, /* a digest's signature does not verify */
    BS_AUDIT_BAD_LINK,      /* a chain start does not link to the preceding chain */
    BS_AUDIT_LOST,          /* an AuditEventsLost record: the sidecar could not record events */
} bs_audit_problem;

const char *bs_audit_problem_name(bs_audit_problem p);

typedef struct bs_audit_verify_result {
    bs_audit_problem first_problem; /* BS_AUDIT_OK if none */
    char first_file[256];
    uint64_t first_line;     /* 1-based */
    uint64_t first_sequence; /* of the event reported */
    uint64_t problems;       /* total problems reported */
    uint64_t warnings;       /* unsealed tails, unchecked signatures, unresolved links */
    uint64_t events;         /* lines read */
    uint64_t digests_ok;
} bs_audit_verify_result;

/* Verify the files as one stream, in the given order (rotated files of one
 * chain, possibly several chains after restarts). Writes one line per
 * problem/warning to `report` (may be NULL): `FILE:LINE: event sequence N:
 * KIND (detail)` and a summary. `key` may be NULL (signatures then not
 * checked: a warning). Returns BS_OK when the files could be read (look at
 * res->first_problem for the verdict), BS_E_IO if a file cannot be read. */
bs_status bs_audit_verify_files(const char **paths, size_t n, const bs_audit_key *key, FILE *report,
                                bs_audit_verify_result *res) BS_WUR;

/* `brokerside audit verify [--strict] [--key FILE | --public-key FILE] FILE...`
 * argv[0] is "verify". Exit 0 ok (warnings allowed unless --strict), 1
 * tampering found (or warnings with --strict), 2 usage or I/O error. */
int bs_audit_verify_main(int argc, char **argv);

#endif
