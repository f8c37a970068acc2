/*
 * policy.h - the authorization policy: Kafka's ACL vocabulary evaluated by
 * the sidecar (docs/authorization.md).
 *
 * A rule is (principal, host, operation, resource type, LITERAL or PREFIXED
 * name, ALLOW or DENY), as in `kafka-acls.sh`. Evaluation follows Kafka's
 * StandardAuthorizer: a matching DENY (for the operation or All) wins; else
 * a matching ALLOW for the operation, for All, or for an operation that
 * implies it (Describe is implied by Read, Write, Delete and Alter;
 * DescribeConfigs by AlterConfigs) allows; super users are always allowed;
 * otherwise the section's default decides. Literal name "*" matches every
 * resource of its type; principal "User:*" (or "*") every principal; host
 * "*" every host.
 *
 * The section is the module's option table (policy_config.h, read by the
 * generic walker) built into a policy here (bs_policy_build); bs_policy_parse
 * reads a section on its own. A built policy is immutable; the running one is a single
 * process-wide pointer swapped atomically on reload (bs_policy_set_current).
 * Policies are kept until exit by the config that owns them, so a pointer
 * read once stays valid.
 */
#ifndef BROKERSIDE_POLICY_H
#define BROKERSIDE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/identity.h"
#include "brokerside/policy_config.h"
#include "brokerside/status.h"

typedef enum bs_acl_op {
    BS_ACL_ALL = 0,
    BS_ACL_READ,
    BS_ACL_WRITE,
    BS_ACL_CREATE,
    BS_ACL_DELETE,
    BS_ACL_ALTER,
    BS_ACL_DESCRIBE,
    BS_ACL_CLUSTER_ACTION,
    BS_ACL_DESCRIBE_CONFIGS,
    BS_ACL_ALTER_CONFIGS,
    BS_ACL_IDEMPOTENT_WRITE,
    BS_ACL_OP_COUNT
} bs_acl_op;

typedef enum bs_acl_res {
    BS_ACL_TOPIC = 0,
    BS_ACL_GROUP,
    BS_ACL_TRANSACTIONAL_ID,
    BS_ACL_CLUSTER,
    BS_ACL_RES_COUNT
} bs_acl_res;

/* Kafka's names ("Read", "Topic", ...), indexed by bs_acl_op / bs_acl_res and
 * NULL-terminated (the choices of the config's enum rows). */
extern const char *const bs_acl_op_names[BS_ACL_OP_COUNT + 1];
extern const char *const bs_acl_res_names[BS_ACL_RES_COUNT + 1];
const char *bs_acl_op_name(bs_acl_op op);
const char *bs_acl_res_name(bs_acl_res r);
/* Case-insensitive and ignoring '_' (bs_conf_choice_index), as the config
 * reads them: "IdempotentWrite" and "IDEMPOTENT_WRITE" both parse. false if
 * unknown. */
bool bs_acl_op_parse(const char *s, bs_acl_op *out);
bool bs_acl_res_parse(const char *s, bs_acl_res *out);

typedef struct bs_policy_rule {
    char *principal; /* NULL: any ("User:*" / "*") */
    char *host;      /* NULL: any ("*") */
    uint32_t ops;    /* bit per bs_acl_op; All sets bit 0 */
    bs_acl_res res;
    char *name;      /* resource name ("kafka-cluster" for Cluster) */
    size_t name_len;
    bool wildcard;   /* LITERAL "*" */
    bool prefixed;
    bool allow;
} bs_policy_rule;

typedef struct bs_policy bs_policy;

/* Parse the `authorization` section (an object; the caller does not call
 * this when the section is absent or null: no policy) with the tables,
 * outside a config load. Problems go to report() with paths like
 * "authorization.rules[3].operation"; BS_E_CONFIG if there was any. *out
 * freed with bs_policy_free. */
bs_status bs_policy_parse(const struct cJSON *section, bs_cfg_report_fn report, void *rctx,
                          bs_policy **out) BS_WUR;
/* Build the policy (rules, super users, the index) from a section the
 * tables read without problems. BS_E_NOMEM. */
bs_status bs_policy_build(const bs_policy_config *cfg, bs_policy **out) BS_WUR;
void bs_policy_free(bs_policy *p);
size_t bs_policy_rule_count(const bs_policy *p);
const bs_policy_rule *bs_policy_rule_at(const bs_policy *p, size_t i);
bool bs_policy_default_allow(const bs_policy *p);

typedef enum bs_policy_basis {
    BS_POLICY_BY_DENY_RULE = 0,
    BS_POLICY_BY_ALLOW_RULE,
    BS_POLICY_BY_IMPLIED_ALLOW, /* an ALLOW of an operation that implies this one */
    BS_POLICY_BY_SUPER_USER,
    BS_POLICY_BY_DEFAULT,
} bs_policy_basis;

typedef struct bs_policy_decision {
    bool allowed;
    int rule; /* index of the deciding rule in `rules`, -1 when none */
    bs_policy_basis basis;
} bs_policy_decision;

/* Decide whether `principal` ("User:alice") from `host` (an IP address, no
 * port) may do `op` on resource `res` named name[0..len). Thread-safe
 * (the policy is immutable). */
bs_policy_decision bs_policy_check(const bs_policy *p, const char *principal, const char *host,
                                   bs_acl_op op, bs_acl_res res, const char *name, size_t len);
/* Does some ALLOW rule for `op` on `res` match principal/host without a
 * matching DENY of `op` covering all of its names (a LITERAL "*" deny, a
 * PREFIXED deny whose prefix starts the allowed name or prefix, a LITERAL
 * deny of the same literal)? Kafka's authorizeByResourceType, used for
 * InitProducerId without a transactional id: IdempotentWrite on the
 * cluster, or Write on any topic. */
bool bs_policy_allows_any(const bs_policy *p, const char *principal, const char *host,
                          bs_acl_op op, bs_acl_res res);
/* One line explaining `d` ("DENY by rules[2] (deny User:bob Write Topic
 * LITERAL orders)"), into out[outlen]. */
void bs_policy_explain(const bs_policy *p, const bs_policy_decision *d, char *out, size_t outlen);

/* The running policy (NULL: authorization off). Any thread. */
void bs_policy_set_current(const bs_policy *p);
const bs_policy *bs_policy_current(void);

/* `brokerside policy explain --config FILE PRINCIPAL OPERATION RESOURCE
 * [HOST]`: argv[0] is "explain". RESOURCE is "Topic:NAME", "Group:NAME",
 * "TransactionalId:NAME" or "Cluster". Prints the decision and the rule;
 * exit 0 allowed, 1 denied, 2 usage or config error. */
int bs_policy_explain_main(int argc, char **argv);

#endif
