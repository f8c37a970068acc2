/*
 * policy.c - the authorization policy: parsing the `authorization` section,
 * an index over the rules, and Kafka's evaluation order (see policy.h).
 *
 * Index: per resource type, literal rules sorted by name (binary search),
 * wildcard ("*") rules, and prefixed rules. A check looks only at the rules
 * that can match the name, so 1,000 rules cost a binary search plus the
 * wildcard and prefixed lists.
 */
#include "brokerside/policy.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "brokerside/confmap.h"

#define POLICY_MAX_RULES 100000

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

static const char *const g_op_names[BS_ACL_OP_COUNT] = {
    "All",      "Read",         "Write",           "Create",       "Delete",         "Alter",
    "Describe", "ClusterAction", "DescribeConfigs", "AlterConfigs", "IdempotentWrite"};
static const char *const g_op_alt[BS_ACL_OP_COUNT] = {
    "ALL",      "READ",           "WRITE",            "CREATE",        "DELETE",          "ALTER",
    "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"};
static const char *const g_res_names[BS_ACL_RES_COUNT] = {"Topic", "Group", "TransactionalId",
                                                          "Cluster"};
static const char *const g_res_alt[BS_ACL_RES_COUNT] = {"TOPIC", "GROUP", "TRANSACTIONAL_ID",
                                                        "CLUSTER"};

/* See policy.h. */
const char *bs_acl_op_name(bs_acl_op op)
{
    return (unsigned)op < BS_ACL_OP_COUNT ? g_op_names[op] : "Unknown";
}

/* See policy.h. */
const char *bs_acl_res_name(bs_acl_res r)
{
    return (unsigned)r < BS_ACL_RES_COUNT ? g_res_names[r] : "Unknown";
}

/* See policy.h. */
bool bs_acl_op_parse(const char *s, bs_acl_op *out)
{
    for (int i = 0; i < BS_ACL_OP_COUNT; i++)
        if (strcasecmp(s, g_op_names[i]) == 0 || strcasecmp(s, g_op_alt[i]) == 0) {
            *out = (bs_acl_op)i;
            return true;
        }
    return false;
}

/* See policy.h. */
bool bs_acl_res_parse(const char *s, bs_acl_res *out)
{
    for (int i = 0; i < BS_ACL_RES_COUNT; i++)
        if (strcasecmp(s, g_res_names[i]) == 0 || strcasecmp(s, g_res_alt[i]) == 0) {
            *out = (bs_acl_res)i;
            return true;
        }
    return false;
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

/* ---------------------------------------------------------------- parse */

typedef struct pctx {
    bs_cfg_report_fn fn;
    void *ctx;
    int bad;
} pctx;

__attribute__((format(printf, 3, 4))) static void perr(pctx *c, const char *sub, const char *fmt,
                                                       ...)
{
    char path[160], msg[512];
    snprintf(path, sizeof path, "authorization%s", sub);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->bad++;
    if (c->fn) c->fn(c->ctx, path, msg);
}

/* A principal as written: "User:name", "User:*" or "*" (NULL out = any). */
static bool parse_principal(const char *s, char **out)
{
    *out = NULL;
    if (strcmp(s, "*") == 0 || strcmp(s, "User:*") == 0) return true;
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || !colon[1]) return false;
    return (*out = strdup(s)) != NULL;
}


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

/* One rule object. */
static void parse_rule(pctx *c, const cJSON *o, int i, bs_policy_rule *r, bool *ok)
{
    char sub[64];
    *ok = false;
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(o)) {
        snprintf(sub, sizeof sub, ".rules[%d]", i);
        perr(c, sub, "expected an object");
        return;
    }
    static const char *const keys[] = {"principal",     "host",         "operation", "operations",
                                       "resource_type", "resource_name", "pattern_type",
                                       "permission",    NULL};
    for (const cJSON *it = o->child; it; it = it->next) {
        bool known = false;
        for (size_t k = 0; keys[k] && !known; k++)
            known = it->string && strcmp(it->string, keys[k]) == 0;
        snprintf(sub, sizeof sub, ".rules[%d].%.32s", i, it->string ? it->string : "");
        if (!known) perr(c, sub, "unknown key");
    }
    int before = c->bad;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "principal");
    snprintf(sub, sizeof sub, ".rules[%d].principal", i);
    if (!cJSON_IsString(v))
        perr(c, sub, "required: \"User:<name>\" or \"User:*\"");
    else if (!parse_principal(v->valuestring, &r->principal))
        perr(c, sub, "expected \"<Type>:<name>\" (e.g. \"User:alice\") or \"User:*\"");
    v = cJSON_GetObjectItemCaseSensitive(o, "host");
    snprintf(sub, sizeof sub, ".rules[%d].host", i);
    if (v && !cJSON_IsString(v))
        perr(c, sub, "expected a string (an IP address or \"*\")");
    else if (v && strcmp(v->valuestring, "*") != 0 && !(r->host = strdup(v->valuestring)))
        c->bad++;
    const cJSON *op1 = cJSON_GetObjectItemCaseSensitive(o, "operation");
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(o, "operations");
    snprintf(sub, sizeof sub, ".rules[%d].operation", i);
    if ((op1 != NULL) == (ops != NULL)) {
        perr(c, sub, "give exactly one of \"operation\" or \"operations\"");
    } else if (op1) {
        bs_acl_op op;
        if (!cJSON_IsString(op1) || !bs_acl_op_parse(op1->valuestring, &op))
            perr(c, sub, "unknown operation (Read, Write, Create, Delete, Alter, Describe, "
                         "ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All)");
        else
            r->ops = 1u << op;
    } else {
        const cJSON *e;
        if (!cJSON_IsArray(ops) || cJSON_GetArraySize(ops) == 0)
            perr(c, sub, "\"operations\" must be a non-empty array");
        else cJSON_ArrayForEach(e, ops)
            {
                bs_acl_op op;
                if (!cJSON_IsString(e) || !bs_acl_op_parse(e->valuestring, &op))
                    perr(c, sub, "unknown operation in \"operations\"");
                else
                    r->ops |= 1u << op;
            }
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "resource_type");
    snprintf(sub, sizeof sub, ".rules[%d].resource_type", i);
    if (!cJSON_IsString(v) || !bs_acl_res_parse(v->valuestring, &r->res))
        perr(c, sub, "required: Topic, Group, TransactionalId or Cluster");
    v = cJSON_GetObjectItemCaseSensitive(o, "resource_name");
    snprintf(sub, sizeof sub, ".rules[%d].resource_name", i);
    const char *name = NULL;
    if (v && (!cJSON_IsString(v) || !v->valuestring[0]))
        perr(c, sub, "expected a non-empty string");
    else if (v)
        name = v->valuestring;
    else if (r->res != BS_ACL_CLUSTER)
        perr(c, sub, "required (\"*\" for every resource of the type)");
    if (r->res == BS_ACL_CLUSTER) {
        if (name && strcmp(name, "kafka-cluster") != 0 && strcmp(name, "*") != 0)
            perr(c, sub, "a Cluster resource is named \"kafka-cluster\" (or left out)");
        name = "*";
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "pattern_type");
    snprintf(sub, sizeof sub, ".rules[%d].pattern_type", i);
    if (v && !(cJSON_IsString(v) && (strcasecmp(v->valuestring, "LITERAL") == 0 ||
                                     strcasecmp(v->valuestring, "PREFIXED") == 0)))
        perr(c, sub, "expected LITERAL (default) or PREFIXED");
    else if (v)
        r->prefixed = strcasecmp(v->valuestring, "PREFIXED") == 0;
    if (name) {
        r->wildcard = !r->prefixed && strcmp(name, "*") == 0;
        if (!(r->name = strdup(name))) c->bad++;
        r->name_len = strlen(name);
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "permission");
    snprintf(sub, sizeof sub, ".rules[%d].permission", i);
    if (!cJSON_IsString(v) || !(strcasecmp(v->valuestring, "ALLOW") == 0 ||
                                strcasecmp(v->valuestring, "DENY") == 0))
        perr(c, sub, "required: ALLOW or DENY");
    else
        r->allow = strcasecmp(v->valuestring, "ALLOW") == 0;
    *ok = c->bad == before;
}

/* See policy.h. */
bs_status bs_policy_parse(const cJSON *section, bs_cfg_report_fn fn, void *rctx, bs_policy **out)
{
    *out = NULL;
    pctx c = {.fn = fn, .ctx = rctx};
    bs_policy *p = calloc(1, sizeof *p);
    if (!p) return BS_E_NOMEM;
    if (!cJSON_IsObject(section)) {
        perr(&c, "", "expected an object");
        goto out;
    }
    static const char *const keys[] = {"default", "super_users", "rules", NULL};
    for (const cJSON *it = section->child; it; it = it->next) {
        bool known = false;
        for (size_t k = 0; keys[k] && !known; k++)
            known = it->string && strcmp(it->string, keys[k]) == 0;
        char sub[64];
        snprintf(sub, sizeof sub, ".%.40s", it->string ? it->string : "");
        if (!known) perr(&c, sub, "unknown key (default, super_users, rules)");
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(section, "default");
    if (!d)
        perr(&c, ".default", "required: \"deny\" or \"allow\" (the decision when no rule matches)");
    else if (!cJSON_IsString(d) || !(strcasecmp(d->valuestring, "deny") == 0 ||
                                     strcasecmp(d->valuestring, "allow") == 0))
        perr(&c, ".default", "expected \"deny\" or \"allow\"");
    else
        p->default_allow = strcasecmp(d->valuestring, "allow") == 0;
    const cJSON *su = cJSON_GetObjectItemCaseSensitive(section, "super_users");
    if (su && !cJSON_IsArray(su)) {
        perr(&c, ".super_users", "expected an array of principals");
    } else if (su) {
        int n = cJSON_GetArraySize(su);
        p->super_users = calloc((size_t)n + 1, sizeof *p->super_users);
        if (!p->super_users) goto nomem;
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(su, i);
            char sub[48];
            snprintf(sub, sizeof sub, ".super_users[%d]", i);
            char *pr = NULL;
            if (!cJSON_IsString(e) || !parse_principal(e->valuestring, &pr) || !pr)
                perr(&c, sub, "expected \"User:<name>\" (no wildcard)");
            else
                p->super_users[p->n_super++] = pr;
        }
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(section, "rules");
    if (rules && !cJSON_IsArray(rules)) {
        perr(&c, ".rules", "expected an array of rules");
    } else if (rules) {
        int n = cJSON_GetArraySize(rules);
        if (n > POLICY_MAX_RULES) {
            perr(&c, ".rules", "more than %d rules", POLICY_MAX_RULES);
            goto out;
        }
        p->rules = calloc((size_t)n + 1, sizeof *p->rules);
        if (!p->rules) goto nomem;
        int i = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, rules)
        {
            bool ok;
            bs_policy_rule *r = &p->rules[p->n];
            parse_rule(&c, o, i++, r, &ok);
            if (ok) {
                p->n++;
            } else {
                free(r->principal);
                free(r->host);
                free(r->name);
                memset(r, 0, sizeof *r);
            }
        }
    }
    if (!c.bad && !build_index(p)) goto nomem;
out:
    if (c.bad) {
        bs_policy_free(p);
        return BS_E_CONFIG;
    }
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
            o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s%s", o ? "," : "", g_op_names[i]);
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
             r->host ? r->host : "*", ops, g_res_names[r->res], r->prefixed ? "PREFIXED" : "LITERAL",
             r->name ? r->name : "*");
}

/* bs_cfg_report_fn into a confmap load. */
static void conf_report(void *ctx, const char *path, const char *msg)
{
    bs_conf_err(ctx, path, "%s", msg);
}

/* See policy.h. */
void bs_policy_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                          void *base)
{
    (void)path;
    bs_policy **out = (bs_policy **)((char *)base + o->offset);
    const cJSON *sec = obj ? bs_conf_member(obj, o->name) : NULL;
    *out = NULL;
    if (!sec) return; /* absent or null: no policy */
    if (bs_policy_parse(sec, conf_report, c, out) == BS_E_NOMEM) c->nomem = true;
}

/* See policy.h. */
void bs_policy_conf_free(const bs_conf_opt *o, void *base)
{
    bs_policy **p = (bs_policy **)((char *)base + o->offset);
    bs_policy_free(*p);
    *p = NULL;
}
