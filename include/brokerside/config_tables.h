/*
 * config_tables.h - the configuration sections each module declares.
 *
 * Every section is a bs_conf_section (confmap.h) defined in the module that
 * owns the keys, next to the code that uses them; the daemon's root table
 * (daemon/config.c) lists the top-level keys and points at these. The structs
 * the rows fill are in config.h. docs/configuration.md is checked against
 * these tables by tests/unit/test_config_tables.c.
 */
#ifndef BROKERSIDE_CONFIG_TABLES_H
#define BROKERSIDE_CONFIG_TABLES_H

#include "brokerside/config.h"
#include "brokerside/confmap.h"

/* net/tls_config.c: `listeners[i].tls`, `listeners[i].upstream_tls`. */
extern const bs_conf_section bs_tls_server_conf;
extern const bs_conf_section bs_tls_client_conf;

/* net/listener_config.c: `listeners` (array, cross-listener rules), `limits`. */
extern const bs_conf_section bs_listener_conf;
extern const bs_conf_section bs_limits_conf;
void bs_listeners_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                             const char *path, void *base);
void bs_listeners_conf_free(const bs_conf_opt *o, void *base);
bool bs_listeners_conf_diff(const bs_conf_opt *o, const void *a, const void *b,
                            const char *label, char *what, size_t whatlen);
/* True when two bind endpoints would compete for the same port. */
bool bs_conf_binds_overlap(const bs_endpoint *a, const bs_endpoint *b);

/* proxy/advertise.c: `kafka` (advertise map or template, max_frame_bytes). */
extern const bs_conf_section bs_kafka_conf;

/* admin/admin_config.c: `admin` (absent = on with defaults, null = off). */
extern const bs_conf_section bs_admin_conf;
void bs_admin_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                         void *base);
bool bs_admin_conf_diff(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                        char *what, size_t whatlen);

/* aws/aws_config.c: `aws`, and the region / endpoint rows AWS clients share. */
extern const bs_conf_section bs_aws_conf;
/* NULL when `s` is an AWS region name ("us-east-1"), else the reason. */
const char *bs_aws_conf_check_region(const char *s);
/* CUSTOM `region` of an AWS client section: checked; when absent, aws.region
 * (from c->top); when neither, opt->required is the message. */
void bs_aws_conf_parse_region(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                              const char *path, void *base);
/* CUSTOM `endpoint` (with its sibling `allow_insecure_endpoint`): an
 * http(s) URL override, plain http only to loopback unless allowed. */
void bs_aws_conf_parse_endpoint(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                                const char *path, void *base);

/* crypto/encryption_config.c: `encryption` (off when absent or null). */
extern const bs_conf_section bs_encryption_conf;
/* `encryption.kms` by type (its `type` key picks one). */
extern const bs_conf_section bs_kms_local_conf;
extern const bs_conf_section bs_kms_aws_conf;

/* observe/event_config.c: `audit`, `metrics`, `logs` (off when absent or null). */
extern const bs_conf_section bs_audit_conf;
extern const bs_conf_section bs_metrics_conf;
extern const bs_conf_section bs_logs_conf;

/* lag/lag_config.c: `lag` (the consumer-lag monitor; off when absent or null). */
extern const bs_conf_section bs_lag_conf;

/* sinks/sink_config.c: `sinks` (named sinks; each type is a descriptor). */
void bs_sinks_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                         void *base);
void bs_sinks_conf_free(const bs_conf_opt *o, void *base);
bool bs_sinks_conf_diff(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                        char *what, size_t whatlen);
/* Fill *s with the defaults of a sink of `kind` (the implicit "default" sink). */
void bs_sink_conf_defaults(bs_sink_config *s, bs_sink_kind kind);
/* The sections (rows) a sink of `kind` reads, for docs and tests: *n set. */
const bs_conf_section *const *bs_sink_conf_sections(bs_sink_kind kind, size_t *n);
/* The type names, indexed by bs_sink_kind; NULL-terminated. */
extern const char *const bs_sink_kind_names[];

/* events/spool_config.c: `spool`. */
extern const bs_conf_section bs_spool_conf;

/* daemon/config.c: the top level (the root table). */
extern const bs_conf_section bs_root_conf;

#endif
