/*
 * identity_config.h - the configuration identity/ owns: the `identity`
 * section (certificate principal mapping, OAUTHBEARER token verification,
 * the per-principal metric cap; identity.h) and its option tables
 * (identity/identity_config.c).
 *
 * The tables are read by the generic walker (confmap.h); what needs code
 * stays here as callbacks: the syntax of each mapping rule (compiled to a
 * regex at load time) and loading the JWKS file once jwks_file and issuer
 * are both given. The daemon holds the section as a pointer (never NULL
 * after a load) so a reload swaps it atomically (bs_identity_set_config).
 */
#ifndef BROKERSIDE_IDENTITY_CONFIG_H
#define BROKERSIDE_IDENTITY_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/confmap.h"
#include "brokerside/jwt.h"
#include "brokerside/status.h"

/* A config problem: JSON path (e.g. "identity.principal_mapping_rules[1]")
 * and a message (confmap.h's report hook). */
typedef bs_conf_report_fn bs_cfg_report_fn;

/* One certificate mapping rule: "RULE:<regex>/<replacement>/[L|U]" or "DEFAULT". */
typedef struct bs_mapping_rule {
    bool is_default;
    regex_t re; /* POSIX extended, anchored by the caller's pattern */
    char *replacement; /* $1..$9 refer to groups */
    char case_fold;    /* 0, 'L' or 'U' */
} bs_mapping_rule;

/* `identity`: every field is a row of bs_identity_conf or of
 * bs_identity_oauthbearer_conf (whose fields live in this struct too). */
typedef struct bs_identity_config {
    bs_mapping_rule *rules; /* `principal_mapping_rules`; empty: DEFAULT (the whole subject) */
    size_t n_rules;
    /* `oauthbearer`: tokens are trusted for identity only with a JWKS. */
    char *jwks_file;         /* absolute; NULL: tokens never verified, principal unknown */
    bs_jwks *jwks;           /* loaded at parse time (the oauthbearer section's check) */
    char *issuer, *audience; /* NULL: not checked (audience) / required with jwks_file (issuer) */
    char *principal_claim;   /* default "sub" */
    int64_t clock_skew_s;    /* default 30 */
    uint32_t metrics_max_principals; /* distinct principal label values; default 100 */
} bs_identity_config;

/* identity/identity_config.c: `identity` and `identity.oauthbearer`. */
extern const bs_conf_section bs_identity_conf;
extern const bs_conf_section bs_identity_oauthbearer_conf;

/* Parse the `identity` section (`section` may be NULL or JSON null:
 * defaults) with the tables, outside a config load. Problems go to report()
 * with paths below "identity"; returns BS_E_CONFIG if there was any,
 * BS_E_NOMEM. `base_dir` resolves a relative jwks_file (NULL: the current
 * directory). *out freed with bs_identity_config_free. */
bs_status bs_identity_config_parse(const cJSON *section, const char *base_dir,
                                   bs_cfg_report_fn report, void *rctx,
                                   bs_identity_config **out) BS_WUR;
void bs_identity_config_free(bs_identity_config *c);

/* The `identity` row of the root config table (a CUSTOM row with
 * sub = &bs_identity_conf): reads member "identity" of `obj` into a new
 * bs_identity_config stored at base + o->offset (defaults when absent or
 * null, so never NULL after a load); free releases it. */
void bs_identity_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                            void *base);
void bs_identity_conf_free(const bs_conf_opt *o, void *base);

#endif
