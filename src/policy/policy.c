/*
 * policy.c - the authorization policy: built from the `authorization`
 * section (read by the tables of policy_config.c), an index over the rules,
 * and Kafka's evaluation order (see policy.h).
 *
 * Index: per resource type, literal rules sorted by name (binary search),
 * wildcard ("*") rules, and prefixed rules. A check looks only at the rules
 * that can match the name, so 1,000 rules cost a binary search plus the
 * wildcard and prefixed lists.
 */
#include "brokerside/policy.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/confmap.h"

typedef struct idx_list {
    uint32_t *v;
    size_t n;
} idx_list;

struct bs_policy {
    bs_policy_rule *rules;
    size_t n;
    bool default_allow;
    char **super_users;
    size_t n_super;
    idx_list literal[BS_ACL_RES_COUNT]; /* sorted by name */
    idx_list wildcard[BS_ACL_RES_COUNT];
    idx_list prefixed[BS_ACL_RES_COUNT];
};

static _Atomic(const bs_policy *) g_policy;

/* See policy.h. */
const char *const bs_acl_op_names[BS_ACL_OP_COUNT + 1] = {
    "All",      "Read",          "Write",           "Create",       "Delete",         "Alter",
    "Describe", "ClusterAction", "DescribeConfigs", "AlterConfigs", "IdempotentWrite", NULL};
/* See policy.h. */
const char *const bs_acl_res_names[BS_ACL_RES_COUNT + 1] = {"Topic", "Group", "TransactionalId",
                                                            "Cluster", NULL};

/* See policy.h. */
const char *bs_acl_op_name(bs_acl_op op)
{
    return (unsigned)op < BS_ACL_OP_COUNT ? bs_acl_op_names[op] : "Unknown";
}

/* See policy.h. */
const char *bs_acl_res_name(bs_acl_res r)
{
    return (unsigned)r < BS_ACL_RES_COUNT ? bs_acl_res_names[r] : "Unknown";
}

/* See policy.h. */
bool bs_acl_op_parse(const char *s, bs_acl_op *out)
{
    int i = bs_conf_choice_index(bs_acl_op_names, s, true);
    if (i < 0) return false;
    *out = (bs_acl_op)i;
    return true;
}

/* See policy.h. */
bool bs_acl_res_parse(const char *s, bs_acl_res *out)
{
    int i = bs_conf_choice_index(bs_acl_res_names, s, true);
    if (i < 0) return false;
    *out = (bs_acl_res)i;
    return true;
}

/* See policy.h. */
void bs_policy_free(bs_policy *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->rules[i].principal);
        free(p->rules[i].host);
        free(p->rules[i].name);
    }
    free(p->rules);
    for (size_t i = 0; i < p->n_super; i++)
        free(p->super_users[i]);
    free(p->super_users);
    for (int r = 0; r < BS_ACL_RES_COUNT; r++) {
        free(p->literal[r].v);
        free(p->wildcard[r].v);
        free(p->prefixed[r].v);
    }
    free(p);
}

/* See policy.h. */
size_t bs_policy_rule_count(const bs_policy *p)
{
    return p ? p->n : 0;
}

/* See policy.h. */
const bs_policy_rule *bs_policy_rule_at(const bs_policy *p, size_t i)
{
    return p && i < p->n ? &p->rules[i] : NULL;
}

/* See policy.h. */
bool bs_policy_default_allow(const bs_policy *p)
{
    return p && p->default_allow;
}

/* See policy.h. */
void bs_policy_set_current(const bs_policy *p)
{
    atomic_store(&g_policy, p);
}

/* See policy.h. */
const bs_policy *bs_policy_current(void)
{
    return atomic_load(&g_policy);
}

/* ---------------------------------------------------------------- build */

/* qsort context (rules of the policy being indexed). */
static const bs_policy *g_sort_policy;

/* Order literal rule indexes by name, then index. */
static int cmp_literal(const void *a, const void *b)
{
    const bs_policy_rule *x = &g_sort_policy->rules[*(const uint32_t *)a];
    const bs_policy_rule *y = &g_sort_policy->rules[*(const uint32_t *)b];
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    if (x->name_len != y->name_len) return x->name_len < y->name_len ? -1 : 1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

/* Build the per-type lists. false on allocation failure. */
static bool build_index(bs_policy *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const bs_policy_rule *r = &p->rules[i];
        idx_list *l = r->wildcard ? &p->wildcard[r->res]
                      : r->prefixed ? &p->prefixed[r->res]
                                    : &p->literal[r->res];
        uint32_t *g = realloc(l->v, (l->n + 1) * sizeof *g);
        if (!g) return false;
        l->v = g;
        l->v[l->n++] = (uint32_t)i;
    }
    /* Single-threaded here (config load); a static keeps qsort's signature. */
    g_sort_policy = p;
    for (int r = 0; r < BS_ACL_RES_COUNT; r++)
        if (p->literal[r].n > 1) qsort(p->literal[r].v, p->literal[r].n, sizeof(uint32_t), cmp_literal);
    g_sort_policy = NULL;
    return true;
}

/* A principal as written: "User:*" and "*" are any principal (NULL). */
static bool copy_principal(const char *s, char **out)
{
    *out = NULL;
    if (!s || strcmp(s, "*") == 0 || strcmp(s, "User:*") == 0) return true;
    return (*out = strdup(s)) != NULL;
}

/* See policy.h. */
bs_status bs_policy_build(const bs_policy_config *cfg, bs_policy **out)
{
    *out = NULL;
    bs_policy *p = calloc(1, sizeof *p);
    if (!p) return BS_E_NOMEM;
    p->default_allow = cfg->default_allow;
    p->super_users = calloc(cfg->n_super_users + 1, sizeof *p->super_users);
    p->rules = calloc(cfg->n_rules + 1, sizeof *p->rules);
    if (!p->super_users || !p->rules) goto nomem;
    for (size_t i = 0; i < cfg->n_super_users; i++) {
        if (!(p->super_users[i] = strdup(cfg->super_users[i]))) goto nomem;
        p->n_super++;
    }
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const bs_policy_rule_config *rc = &cfg->rules[i];
        bs_policy_rule *r = &p->rules[p->n++];
        r->res = (bs_acl_res)rc->resource_type;
        r->ops = rc->operations ? rc->operations : 1u << rc->operation;
        r->prefixed = rc->prefixed;
        r->allow = rc->allow;
        const char *name = r->res == BS_ACL_CLUSTER || !rc->resource_name ? "*" : rc->resource_name;
        r->wildcard = !r->prefixed && strcmp(name, "*") == 0;
        r->name_len = strlen(name);
        if (!copy_principal(rc->principal, &r->principal) || !(r->name = strdup(name)) ||
            (rc->host && strcmp(rc->host, "*") != 0 && !(r->host = strdup(rc->host))))
            goto nomem;
    }
    if (!build_index(p)) goto nomem;
    *out = p;
    return BS_OK;
nomem:
    bs_policy_free(p);
    return BS_E_NOMEM;
}

/* ---------------------------------------------------------------- evaluate */

/* Operations whose ALLOW also allows `op` (Kafka's implied operations). */
static uint32_t allow_mask(bs_acl_op op)
{
    uint32_t m = 1u << op | 1u << BS_ACL_ALL;
    if (op == BS_ACL_DESCRIBE)
        m |= 1u << BS_ACL_READ | 1u << BS_ACL_WRITE | 1u << BS_ACL_DELETE | 1u << BS_ACL_ALTER;
    if (op == BS_ACL_DESCRIBE_CONFIGS) m |= 1u << BS_ACL_ALTER_CONFIGS;
    return m;
}

/* Does rule `r` apply to principal and host? */
static bool who_matches(const bs_policy_rule *r, const char *principal, const char *host)
{
    if (r->principal && strcmp(r->principal, principal) != 0) return false;
    if (r->host && (!host || strcmp(r->host, host) != 0)) return false;
    return true;
}

typedef struct eval {
    const char *principal, *host;
    uint32_t deny_mask, allow_mask;
    int deny, allow;    /* lowest matching rule index, -1 none */
    bool allow_implied; /* the allowing rule matched through an implied operation */
    bs_acl_op op;
} eval;

/* Fold rule i into the evaluation. */
static void consider(const bs_policy *p, eval *e, uint32_t i)
{
    const bs_policy_rule *r = &p->rules[i];
    if (!who_matches(r, e->principal, e->host)) return;
    if (!r->allow && (r->ops & e->deny_mask)) {
        if (e->deny < 0 || (int)i < e->deny) e->deny = (int)i;
    } else if (r->allow && (r->ops & e->allow_mask)) {
        if (e->allow < 0 || (int)i < e->allow) {
            e->allow = (int)i;
            e->allow_implied = !(r->ops & (1u << e->op | 1u << BS_ACL_ALL));
        }
    }
}

/* See policy.h. */
bs_policy_decision bs_policy_check(const bs_policy *p, const char *principal, const char *host,
                                   bs_acl_op op, bs_acl_res res, const char *name, size_t len)
{
    bs_policy_decision d = {.allowed = false, .rule = -1, .basis = BS_POLICY_BY_DEFAULT};
    if (!p) {
        d.allowed = true;
        return d;
    }
    for (size_t i = 0; i < p->n_super; i++)
        if (strcmp(p->super_users[i], principal) == 0) {
            d.allowed = true;
            d.basis = BS_POLICY_BY_SUPER_USER;
            return d;
        }
    eval e = {.principal = principal,
              .host = host,
              .deny_mask = 1u << op | 1u << BS_ACL_ALL,
              .allow_mask = allow_mask(op),
              .deny = -1,
              .allow = -1,
              .op = op};
    if (res == BS_ACL_CLUSTER) {
        name = "kafka-cluster";
        len = strlen(name);
    }
    const idx_list *l = &p->literal[res];
    /* lower bound of `name` in the sorted literal list */
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const bs_policy_rule *r = &p->rules[l->v[mid]];
        size_t n = r->name_len < len ? r->name_len : len;
        int c = memcmp(r->name, name, n);
        if (c < 0 || (c == 0 && r->name_len < len))
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo; k < l->n; k++) {
        const bs_policy_rule *r = &p->rules[l->v[k]];
        if (r->name_len != len || memcmp(r->name, name, len) != 0) break;
        consider(p, &e, l->v[k]);
    }
    for (size_t k = 0; k < p->wildcard[res].n; k++)
        consider(p, &e, p->wildcard[res].v[k]);
    for (size_t k = 0; k < p->prefixed[res].n; k++) {
        const bs_policy_rule *r = &p->rules[p->prefixed[res].v[k]];
        if (r->name_len <= len && memcmp(r->name, name, r->name_len) == 0)
            consider(p, &e, p->prefixed[res].v[k]);
    }
    if (e.deny >= 0) {
        d.rule = e.deny;
        d.basis = BS_POLICY_BY_DENY_RULE;
    } else if (e.allow >= 0) {
        d.allowed = true;
        d.rule = e.allow;
        d.basis = e.allow_implied ? BS_POLICY_BY_IMPLIED_ALLOW : BS_POLICY_BY_ALLOW_RULE;
    } else {
        d.allowed = p->default_allow;
    }
    return d;
}

/* Does DENY rule `d` cover every name ALLOW rule `a` can match (Kafka's
 * authorizeByResourceType): a LITERAL "*" deny covers all, a PREFIXED deny
 * covers what starts with its prefix, a LITERAL deny the same literal. */
static bool deny_covers(const bs_policy_rule *d, const bs_policy_rule *a)
{
    if (d->wildcard) return true;
    if (a->wildcard) return false;
    if (d->prefixed)
        return d->name_len <= a->name_len && memcmp(d->name, a->name, d->name_len) == 0;
    return !a->prefixed && d->name_len == a->name_len && memcmp(d->name, a->name, a->name_len) == 0;
}

/* See policy.h. */
bool bs_policy_allows_any(const bs_policy *p, const char *principal, const char *host,
                          bs_acl_op op, bs_acl_res res)
{
    if (!p) return true;
    for (size_t i = 0; i < p->n_super; i++)
        if (strcmp(p->super_users[i], principal) == 0) return true;
    uint32_t m = 1u << op | 1u << BS_ACL_ALL;
    for (size_t i = 0; i < p->n; i++) {
        const bs_policy_rule *a = &p->rules[i];
        if (a->res != res || !a->allow || !(a->ops & m) || !who_matches(a, principal, host))
            continue;
        bool denied = false;
        for (size_t k = 0; k < p->n && !denied; k++) {
            const bs_policy_rule *d = &p->rules[k];
            denied = d->res == res && !d->allow && (d->ops & m) &&
                     who_matches(d, principal, host) && deny_covers(d, a);
        }
        if (!denied) return true;
    }
    return false;
}

/* The ops of a rule as "Read,Write". */
static void ops_text(uint32_t ops, char *out, size_t n)
{
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < BS_ACL_OP_COUNT; i++)
        if (ops & (1u << i))
            o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s%s", o ? "," : "", bs_acl_op_names[i]);
}

/* See policy.h. */
void bs_policy_explain(const bs_policy *p, const bs_policy_decision *d, char *out, size_t outlen)
{
    const char *verdict = d->allowed ? "ALLOW" : "DENY";
    if (d->basis == BS_POLICY_BY_SUPER_USER) {
        snprintf(out, outlen, "%s: the principal is a super user", verdict);
        return;
    }
    if (d->rule < 0 || !p || (size_t)d->rule >= p->n) {
        snprintf(out, outlen, "%s: no rule matches; the default decision is %s", verdict,
                 p && p->default_allow ? "allow" : "deny");
        return;
    }
    const bs_policy_rule *r = &p->rules[d->rule];
    char ops[160];
    ops_text(r->ops, ops, sizeof ops);
    static const char *const basis[] = {"a DENY rule matches (deny wins)", "an ALLOW rule matches",
                                        "an ALLOW rule of an operation that implies it matches",
                                        "", ""};
    snprintf(out, outlen,
             "%s by rules[%d]: %s (principal %s, host %s, operations %s, %s %s %s)", verdict,
             d->rule, basis[d->basis], r->principal ? r->principal : "User:*",
             r->host ? r->host : "*", ops, bs_acl_res_names[r->res], r->prefixed ? "PREFIXED" : "LITERAL",
             r->name ? r->name : "*");
}
