/*
 * policy_config.h - the configuration policy/ owns: the `authorization`
 * section (Kafka-style ACL rules, policy.h) and its option tables
 * (policy/policy_config.c).
 *
 * The generic walker (confmap.h) reads the section into bs_policy_config:
 * every key, and every key of each rule object, is a table row. What needs
 * code stays in callbacks: the principal format, the `operations` list,
 * the rules across a rule's keys (exactly one of operation/operations, the
 * resource name of a Cluster) and building the policy's index
 * (bs_policy_build, policy.h). The daemon holds the built bs_policy as a
 * pointer (NULL = no policy) so a reload swaps it atomically.
 */
#ifndef BROKERSIDE_POLICY_CONFIG_H
#define BROKERSIDE_POLICY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/confmap.h"

/* One object of `authorization.rules` as written. */
typedef struct bs_policy_rule_config {
    char *principal;     /* "User:<name>", "User:*" or "*" */
    char *host;          /* an IP address or "*" (default) */
    int operation;       /* bs_acl_op, when `operation` is given */
    uint32_t operations; /* bit per bs_acl_op, when `operations` is given */
    int resource_type;   /* bs_acl_res */
    char *resource_name; /* NULL: left out (only for Cluster) */
    bool prefixed;       /* pattern_type PREFIXED (default LITERAL) */
    bool allow;          /* permission ALLOW or DENY */
} bs_policy_rule_config;

/* `authorization` as written (built into a bs_policy by bs_policy_build). */
typedef struct bs_policy_config {
    bool default_allow; /* `default`: "allow" or "deny" (required) */
    char **super_users; /* "User:<name>" each */
    size_t n_super_users;
    bs_policy_rule_config *rules; /* in file order: rules[i] is "rules[i]" */
    size_t n_rules;
} bs_policy_config;

/* policy/policy_config.c: `authorization` and each `authorization.rules[i]`. */
extern const bs_conf_section bs_authorization_conf;
extern const bs_conf_section bs_authorization_rule_conf;

/* The `authorization` row of the root config table (a CUSTOM row with
 * sub = &bs_authorization_conf): member "authorization" of `obj` (absent
 * or null: no policy, NULL stored) read with the tables and built into the
 * bs_policy * at base + o->offset; free releases it. */
void bs_policy_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                          void *base);
void bs_policy_conf_free(const bs_conf_opt *o, void *base);

#endif
