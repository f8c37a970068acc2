/*
 * identity_config.c - the `identity` section's option tables
 * (identity_config.h): certificate principal mapping rules, OAUTHBEARER
 * token verification, the per-principal metric cap.
 *
 * The generic walker (core/confmap.c) reads every key; what needs code is a
 * callback here: each mapping rule's syntax (compiled at load time) and the
 * JWKS file, loaded once jwks_file and issuer are both given.
 */
#include "brokerside/identity_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* Parse "RULE:pattern/replacement/[LU]" (backslash escapes '/' and '\') or
 * "DEFAULT" into r; NULL on success, else the reason. */
static const char *parse_rule(const char *s, bs_mapping_rule *r)
{
    memset(r, 0, sizeof *r);
    if (strcmp(s, "DEFAULT") == 0) {
        r->is_default = true;
        return NULL;
    }
    if (strncmp(s, "RULE:", 5) != 0) return "expected \"DEFAULT\" or \"RULE:<regex>/<replacement>/[L|U]\"";
    size_t n = strlen(s);
    char *parts[2] = {calloc(1, n + 8), calloc(1, n + 1)};
    if (!parts[0] || !parts[1]) {
        free(parts[0]);
        free(parts[1]);
        return "out of memory";
    }
    const char *p = s + 5;
    for (int k = 0; k < 2; k++) {
        size_t o = 0;
        if (k == 0) {
            memcpy(parts[0], "^(", 2);
            o = 2;
        }
        for (; *p && *p != '/'; p++) {
            if (*p == '\\' && (p[1] == '/' || p[1] == '\\')) p++;
            parts[k][o++] = *p;
        }
        if (k == 0) {
            parts[0][o++] = ')';
            parts[0][o++] = '$';
        }
        if (*p != '/') {
            free(parts[0]);
            free(parts[1]);
            return "a rule needs two '/' separators: RULE:<regex>/<replacement>/[L|U]";
        }
        p++;
    }
    if (*p == 'L' || *p == 'U') r->case_fold = *p++;
    if (*p) {
        free(parts[0]);
        free(parts[1]);
        return "only L or U may follow the last '/'";
    }
    if (regcomp(&r->re, parts[0], REG_EXTENDED) != 0) {
        free(parts[0]);
        free(parts[1]);
        return "the regex does not compile (POSIX extended syntax)";
    }
    free(parts[0]);
    r->replacement = parts[1];
    return NULL;
}

/* CUSTOM `principal_mapping_rules`: an array of rule strings, each compiled. */
static void parse_rules(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                        void *base)
{
    bs_identity_config *ic = base;
    const cJSON *v = obj ? bs_conf_member(obj, o->name) : NULL;
    char p[BS_CONF_PATH_MAX], pi[BS_CONF_PATH_MAX];
    if (!v) return; /* absent: DEFAULT */
    bs_conf_path_key(p, sizeof p, path, o->name);
    if (!cJSON_IsArray(v)) {
        bs_conf_err(c, p, "expected an array of strings");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
    if (!(ic->rules = calloc(n + 1, sizeof *ic->rules))) {
        c->nomem = true;
        return;
    }
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        bs_conf_path_index(pi, sizeof pi, p, i);
        const char *why = cJSON_IsString(it) ? parse_rule(it->valuestring, &ic->rules[ic->n_rules])
                                             : "expected a string";
        if (why)
            bs_conf_err(c, pi, "%s", why);
        else
            ic->n_rules++;
    }
}

static void free_rules(const bs_conf_opt *o, void *base)
{
    bs_identity_config *ic = base;
    (void)o;
    for (size_t i = 0; i < ic->n_rules; i++) {
        if (!ic->rules[i].is_default) regfree(&ic->rules[i].re);
        free(ic->rules[i].replacement);
    }
    free(ic->rules);
    ic->rules = NULL;
    ic->n_rules = 0;
}

/* `identity.oauthbearer` given: load the JWKS once both jwks_file and
 * issuer are usable (the rows reported what is missing). */
static void check_oauthbearer(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    bs_identity_config *ic = base;
    char p[BS_CONF_PATH_MAX], err[256] = "";
    if (!obj || !ic->jwks_file || !ic->issuer) return;
    if (bs_jwks_load(ic->jwks_file, &ic->jwks, err, sizeof err) != BS_OK) {
        bs_conf_path_key(p, sizeof p, path, "jwks_file");
        bs_conf_err(c, p, "%s", err);
    }
}

static const bs_conf_opt oauthbearer_rows[] = {
    /* PATH, not FILE: the JWKS loader names what is wrong with the file */
    {.name = "jwks_file", .type = BS_CONF_PATH, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_identity_config, jwks_file),
     .required = "required: tokens are trusted for identity only when they verify against a "
                 "JWKS"},
    {.name = "issuer", .type = BS_CONF_STRING, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_identity_config, issuer),
     .required = "required with jwks_file (tokens of any issuer would be accepted)"},
    {.name = "audience", .type = BS_CONF_STRING, BS_CONF_AT(bs_identity_config, audience)},
    {.name = "principal_claim", .type = BS_CONF_STRING,
     BS_CONF_AT(bs_identity_config, principal_claim), .def = "sub"},
    {.name = "clock_skew_s", .type = BS_CONF_INT, BS_CONF_AT(bs_identity_config, clock_skew_s),
     .min = 0, .max = 3600, .def = "30"},
};

const bs_conf_section bs_identity_oauthbearer_conf =
    BS_CONF_SECTION("identity.oauthbearer", oauthbearer_rows, check_oauthbearer);

static const bs_conf_opt identity_rows[] = {
    {.name = "principal_mapping_rules", .type = BS_CONF_CUSTOM, .parse = parse_rules,
     .free = free_rules, .doc = "array of strings"},
    /* its fields live in bs_identity_config itself (offset 0); absent or null: defaults */
    {.name = "oauthbearer", .type = BS_CONF_OBJECT, .offset = 0,
     .sub = &bs_identity_oauthbearer_conf},
    {.name = "metrics_max_principals", .type = BS_CONF_INT,
     BS_CONF_AT(bs_identity_config, metrics_max_principals), .min = 1, .max = 100000,
     .def = "100"},
};

const bs_conf_section bs_identity_conf = BS_CONF_SECTION("identity", identity_rows, NULL);

/* See identity_config.h. */
void bs_identity_config_free(bs_identity_config *ic)
{
    if (!ic) return;
    bs_conf_free_section(&bs_identity_conf, ic);
    bs_jwks_free(ic->jwks);
    free(ic);
}

/* Read the section value `v` (NULL: absent or null) at `path` into a new
 * config; NULL only when out of memory (c->nomem raised). */
static bs_identity_config *read_section(bs_conf *c, const cJSON *v, const char *path)
{
    if (v && !cJSON_IsObject(v)) {
        bs_conf_err(c, path, "expected an object, got %s", bs_conf_type_name(v));
        v = NULL;
    }
    bs_identity_config *ic = calloc(1, sizeof *ic);
    if (!ic) {
        c->nomem = true;
        return NULL;
    }
    bs_conf_walk1(c, v, path, &bs_identity_conf, ic);
    return ic;
}

/* See identity_config.h. */
void bs_identity_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                            void *base)
{
    char p[BS_CONF_PATH_MAX];
    bs_conf_path_key(p, sizeof p, path, o->name);
    *(bs_identity_config **)((char *)base + o->offset) =
        read_section(c, obj ? bs_conf_member(obj, o->name) : NULL, p);
}

/* See identity_config.h. */
void bs_identity_conf_free(const bs_conf_opt *o, void *base)
{
    bs_identity_config **p = (bs_identity_config **)((char *)base + o->offset);
    bs_identity_config_free(*p);
    *p = NULL;
}

/* See identity_config.h. */
bs_status bs_identity_config_parse(const cJSON *section, const char *base_dir,
                                   bs_cfg_report_fn fn, void *rctx, bs_identity_config **out)
{
    /* dir is only read (relative jwks_file paths are resolved against it) */
    bs_conf c = {.dir = (char *)(base_dir ? base_dir : "."),
                 .report = fn,
                 .report_ctx = rctx};
    *out = NULL;
    bs_identity_config *ic =
        read_section(&c, section && !cJSON_IsNull(section) ? section : NULL, "identity");
    if (c.nomem || c.n_problems) {
        bs_identity_config_free(ic);
        return c.nomem ? BS_E_NOMEM : BS_E_CONFIG;
    }
    *out = ic;
    return BS_OK;
}
