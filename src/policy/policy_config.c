/*
 * policy_config.c - the `authorization` section's option tables
 * (policy_config.h): the default decision, super users and the rules, each
 * rule an object read with its own table.
 *
 * The generic walker (core/confmap.c) reads every key; the callbacks here
 * are what needs code: the principal format, the `operations` list, a
 * rule's rules across keys, and building the policy (policy.c) once the
 * section was read without problems.
 */
#include "brokerside/policy_config.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/policy.h"

#define POLICY_MAX_RULES 100000

/* A principal: "<Type>:<name>", "User:*" or "*" (check_str). */
static const char *check_principal(const char *s)
{
    const char *colon = strchr(s, ':');
    if (strcmp(s, "*") == 0 || (colon && colon != s && colon[1])) return NULL;
    return " is not a principal: expected \"<Type>:<name>\" (e.g. \"User:alice\") or \"User:*\"";
}

/* The array member of a CUSTOM row: NULL when absent or null, and (with
 * `what` reported at its path) when not an array; p[BS_CONF_PATH_MAX]
 * receives its path. */
static const cJSON *array_member(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                                 const char *path, char *p, const char *what)
{
    const cJSON *v = obj ? bs_conf_member(obj, o->name) : NULL;
    if (!v) return NULL;
    bs_conf_path_key(p, BS_CONF_PATH_MAX, path, o->name);
    if (!cJSON_IsArray(v)) {
        bs_conf_err(c, p, "%s", what);
        return NULL;
    }
    return v;
}

/* CUSTOM `super_users`: "User:<name>" principals (no wildcard). */
static void parse_super_users(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                              const char *path, void *base)
{
    bs_policy_config *pc = base;
    char p[BS_CONF_PATH_MAX], pi[BS_CONF_PATH_MAX];
    const cJSON *v = array_member(c, o, obj, path, p, "expected an array of principals");
    if (!v) return;
    size_t i = 0;
    if (!(pc->super_users = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof *pc->super_users))) {
        c->nomem = true;
        return;
    }
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        if (!cJSON_IsString(it) || check_principal(it->valuestring) ||
            strcmp(it->valuestring, "*") == 0 || strcmp(it->valuestring, "User:*") == 0) {
            bs_conf_path_index(pi, sizeof pi, p, i);
            bs_conf_err(c, pi, "expected \"User:<name>\" (no wildcard)");
        } else if ((pc->super_users[pc->n_super_users] = bs_conf_strdup(c, it->valuestring))) {
            pc->n_super_users++;
        }
    }
}

static void free_super_users(const bs_conf_opt *o, void *base)
{
    bs_policy_config *pc = base;
    (void)o;
    for (size_t i = 0; i < pc->n_super_users; i++)
        free(pc->super_users[i]);
    free(pc->super_users);
    pc->super_users = NULL;
    pc->n_super_users = 0;
}

/* CUSTOM `operations` of a rule: a non-empty array of operation names. */
static void parse_operations(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                             const char *path, void *base)
{
    bs_policy_rule_config *r = base;
    static const char *const what = "\"operations\" must be a non-empty array";
    char p[BS_CONF_PATH_MAX], pi[BS_CONF_PATH_MAX];
    const cJSON *v = array_member(c, o, obj, path, p, what);
    if (!v) return;
    if (cJSON_GetArraySize(v) == 0) {
        bs_conf_err(c, p, "%s", what);
        return;
    }
    size_t i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        int op = cJSON_IsString(it) ? bs_conf_choice_index(bs_acl_op_names, it->valuestring, true)
                                    : -1;
        if (op < 0) {
            bs_conf_path_index(pi, sizeof pi, p, i);
            bs_conf_err(c, pi, "unknown operation in \"operations\"");
        } else {
            r->operations |= 1u << op;
        }
    }
}

/* A rule's rules across keys: exactly one of operation / operations; the
 * resource name is required except for Cluster, which is "kafka-cluster". */
static void check_rule(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    bs_policy_rule_config *r = base;
    char p[BS_CONF_PATH_MAX];
    if (!obj) return;
    if ((bs_conf_member(obj, "operation") != NULL) == (bs_conf_member(obj, "operations") != NULL)) {
        bs_conf_path_key(p, sizeof p, path, "operation");
        bs_conf_err(c, p, "give exactly one of \"operation\" or \"operations\"");
    }
    bs_conf_path_key(p, sizeof p, path, "resource_name");
    if (r->resource_type != BS_ACL_CLUSTER && !bs_conf_member(obj, "resource_name"))
        bs_conf_err(c, p, "required (\"*\" for every resource of the type)");
    if (r->resource_type == BS_ACL_CLUSTER && r->resource_name &&
        strcmp(r->resource_name, "kafka-cluster") != 0 && strcmp(r->resource_name, "*") != 0)
        bs_conf_err(c, p, "a Cluster resource is named \"kafka-cluster\" (or left out)");
}

static const char *const pattern_names[] = {"LITERAL", "PREFIXED", NULL};
static const char *const permission_names[] = {"ALLOW", "DENY", NULL};
static const int permission_values[] = {1, 0};

static const bs_conf_opt rule_rows[] = {
    {.name = "principal", .type = BS_CONF_STRING, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_policy_rule_config, principal), .check_str = check_principal,
     .required = "required: \"User:<name>\" or \"User:*\""},
    {.name = "host", .type = BS_CONF_STRING, BS_CONF_AT(bs_policy_rule_config, host), .def = "*"},
    /* exactly one of operation / operations (check_rule) */
    {.name = "operation", .type = BS_CONF_ENUM, .flags = BS_CONF_NOCASE,
     BS_CONF_AT(bs_policy_rule_config, operation), .choices = bs_acl_op_names},
    {.name = "operations", .type = BS_CONF_CUSTOM, .parse = parse_operations,
     .doc = "array of strings"},
    {.name = "resource_type", .type = BS_CONF_ENUM, .flags = BS_CONF_REQUIRED | BS_CONF_NOCASE,
     BS_CONF_AT(bs_policy_rule_config, resource_type), .choices = bs_acl_res_names,
     .required = "required: Topic, Group, TransactionalId or Cluster"},
    /* required except for Cluster (check_rule) */
    {.name = "resource_name", .type = BS_CONF_STRING,
     BS_CONF_AT(bs_policy_rule_config, resource_name)},
    {.name = "pattern_type", .type = BS_CONF_ENUM, .flags = BS_CONF_NOCASE,
     BS_CONF_AT(bs_policy_rule_config, prefixed), .choices = pattern_names, .def = "LITERAL"},
    {.name = "permission", .type = BS_CONF_ENUM, .flags = BS_CONF_REQUIRED | BS_CONF_NOCASE,
     BS_CONF_AT(bs_policy_rule_config, allow), .choices = permission_names,
     .values = permission_values, .required = "required: ALLOW or DENY"},
};

const bs_conf_section bs_authorization_rule_conf =
    BS_CONF_SECTION("authorization.rules[i]", rule_rows, check_rule);

/* CUSTOM `rules`: objects read with bs_authorization_rule_conf, in order. */
static void parse_rules(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                        void *base)
{
    bs_policy_config *pc = base;
    char p[BS_CONF_PATH_MAX], pi[BS_CONF_PATH_MAX];
    const cJSON *v = array_member(c, o, obj, path, p, "expected an array of rules");
    if (!v) return;
    size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
    if (n > POLICY_MAX_RULES) {
        bs_conf_err(c, p, "more than %d rules", POLICY_MAX_RULES);
        return;
    }
    if (!(pc->rules = calloc(n + 1, sizeof *pc->rules))) {
        c->nomem = true;
        return;
    }
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        bs_conf_path_index(pi, sizeof pi, p, i);
        if (!cJSON_IsObject(it)) {
            bs_conf_err(c, pi, "expected an object");
            continue;
        }
        bs_conf_walk1(c, it, pi, &bs_authorization_rule_conf, &pc->rules[pc->n_rules++]);
    }
}

static void free_rules(const bs_conf_opt *o, void *base)
{
    bs_policy_config *pc = base;
    (void)o;
    for (size_t i = 0; i < pc->n_rules; i++)
        bs_conf_free_section(&bs_authorization_rule_conf, &pc->rules[i]);
    free(pc->rules);
    pc->rules = NULL;
    pc->n_rules = 0;
}

static const char *const default_names[] = {"deny", "allow", NULL};

static const bs_conf_opt authorization_rows[] = {
    {.name = "default", .type = BS_CONF_ENUM, .flags = BS_CONF_REQUIRED | BS_CONF_NOCASE,
     BS_CONF_AT(bs_policy_config, default_allow), .choices = default_names,
     .required = "required: \"deny\" or \"allow\" (the decision when no rule matches)"},
    {.name = "super_users", .type = BS_CONF_CUSTOM, .parse = parse_super_users,
     .free = free_super_users, .doc = "array of strings"},
    {.name = "rules", .type = BS_CONF_CUSTOM, .parse = parse_rules, .free = free_rules,
     .sub = &bs_authorization_rule_conf, .doc = "array of objects"},
};

const bs_conf_section bs_authorization_conf =
    BS_CONF_SECTION("authorization", authorization_rows, NULL);

/* Read the section object `v` at `path` and build the policy into *out
 * (NULL when the section has a problem). */
static void read_section(bs_conf *c, const cJSON *v, const char *path, bs_policy **out)
{
    bs_policy_config pc = {0};
    size_t before = c->n_problems;
    *out = NULL;
    bs_conf_walk1(c, v, path, &bs_authorization_conf, &pc);
    if (c->n_problems == before && !c->nomem && bs_policy_build(&pc, out) != BS_OK)
        c->nomem = true;
    bs_conf_free_section(&bs_authorization_conf, &pc);
}

/* See policy_config.h. */
void bs_policy_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                          void *base)
{
    char p[BS_CONF_PATH_MAX];
    bs_policy **out = (bs_policy **)((char *)base + o->offset);
    const cJSON *v = obj ? bs_conf_member(obj, o->name) : NULL;
    *out = NULL;
    if (!v) return; /* absent or null: no policy */
    bs_conf_path_key(p, sizeof p, path, o->name);
    if (!cJSON_IsObject(v)) {
        bs_conf_err(c, p, "expected %s got %s", o->expect ? o->expect : "an object,",
                    bs_conf_type_name(v));
        return;
    }
    read_section(c, v, p, out);
}

/* See policy_config.h. */
void bs_policy_conf_free(const bs_conf_opt *o, void *base)
{
    bs_policy **p = (bs_policy **)((char *)base + o->offset);
    bs_policy_free(*p);
    *p = NULL;
}

/* See policy.h. */
bs_status bs_policy_parse(const cJSON *section, bs_cfg_report_fn fn, void *rctx, bs_policy **out)
{
    bs_conf c = {.report = fn, .report_ctx = rctx};
    *out = NULL;
    if (!cJSON_IsObject(section))
        bs_conf_err(&c, "authorization", "expected an object");
    else
        read_section(&c, section, "authorization", out);
    if (c.nomem || c.n_problems) {
        bs_policy_free(*out);
        *out = NULL;
        return c.nomem ? BS_E_NOMEM : BS_E_CONFIG;
    }
    return BS_OK;
}
