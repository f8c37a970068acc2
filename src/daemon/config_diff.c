/*
 * config_diff.c - key-path diff of two configuration documents for the
 * ConfigurationReloaded audit event (see config_diff.h). The documents are
 * the operator's files as parsed (comments removed), so the paths are the
 * ones the operator wrote; which keys are secret comes from the option
 * tables (BS_CONF_SECRET, SECRET_FILE) and from the key names.
 */
#include "brokerside/config_diff.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/config_tables.h"

/* Case-insensitive "contains". */
static bool has_word(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (; *s; s++)
        if (strncasecmp(s, w, n) == 0) return true;
    return false;
}

/* True when the key name says it holds a secret. */
static bool name_is_secret(const char *name)
{
    return has_word(name, "key") || has_word(name, "secret") || has_word(name, "password") ||
           has_word(name, "token");
}

/* The row `name` of `sec`, or NULL. */
static const bs_conf_opt *find_row(const bs_conf_section *sec, const char *name)
{
    for (size_t i = 0; sec && i < sec->n_opts; i++)
        if (strcmp(sec->opts[i].name, name) == 0) return &sec->opts[i];
    return NULL;
}

/* The section a key of `sec` opens: an OBJECT row's sub, or the sections
 * the CUSTOM rows hold (listeners, their tls / upstream_tls). */
static const bs_conf_section *child_section(const bs_conf_section *sec, const char *name)
{
    if (sec == &bs_root_conf && strcmp(name, "listeners") == 0) return &bs_listener_conf;
    if (sec == &bs_listener_conf && strcmp(name, "tls") == 0) return &bs_tls_server_conf;
    if (sec == &bs_listener_conf && strcmp(name, "upstream_tls") == 0) return &bs_tls_client_conf;
    const bs_conf_opt *o = find_row(sec, name);
    return o && o->type == BS_CONF_OBJECT ? o->sub : NULL;
}

/* True when the table row for `name` in `sec` is a secret. */
static bool row_is_secret(const bs_conf_section *sec, const char *name)
{
    const bs_conf_opt *o = find_row(sec, name);
    return o && ((o->flags & BS_CONF_SECRET) || o->type == BS_CONF_SECRET_FILE);
}

typedef struct walk {
    bs_config_diff *d;
    bool nomem;
} walk;

/* The text of a value: a string's own text, else its JSON, cut to
 * BS_CONFIG_DIFF_VALUE_MAX bytes. NULL for NULL (or out of memory). */
static char *value_text(walk *w, const cJSON *v)
{
    if (!v) return NULL;
    char *s = cJSON_IsString(v) ? strdup(v->valuestring) : cJSON_PrintUnformatted(v);
    if (!s) {
        w->nomem = true;
        return NULL;
    }
    if (strlen(s) > BS_CONFIG_DIFF_VALUE_MAX) strcpy(s + BS_CONFIG_DIFF_VALUE_MAX - 3, "...");
    return s;
}

/* Record one change at `path`. */
static void add(walk *w, const char *path, const char *change, const cJSON *a, const cJSON *b,
                bool secret)
{
    bs_config_diff *d = w->d;
    if (d->n >= BS_CONFIG_DIFF_MAX) {
        d->omitted++;
        return;
    }
    if ((d->n & (d->n - 1)) == 0) { /* grow at powers of two */
        bs_config_change *g = realloc(d->changes, (d->n ? d->n * 2 : 8) * sizeof *g);
        if (!g) {
            w->nomem = true;
            return;
        }
        d->changes = g;
    }
    bs_config_change *c = &d->changes[d->n];
    memset(c, 0, sizeof *c);
    c->path = strdup(path);
    c->change = change;
    c->secret = secret;
    if (!c->path) {
        w->nomem = true;
        return;
    }
    if (!secret) {
        c->old_value = value_text(w, a);
        c->new_value = value_text(w, b);
    }
    d->n++;
}

static void diff_node(walk *w, const bs_conf_section *sec, const char *path, const cJSON *a,
                      const cJSON *b, bool secret);

/* Compare member `name` of two objects (either may lack it). */
static void diff_member(walk *w, const bs_conf_section *sec, const char *path, const char *name,
                        const cJSON *a, const cJSON *b, bool secret)
{
    char p[BS_CONF_PATH_MAX];
    snprintf(p, sizeof p, "%s%s%s", path, path[0] ? "." : "", name);
    bool s = secret || name_is_secret(name) || row_is_secret(sec, name);
    const bs_conf_section *sub = child_section(sec, name);
    if (!a)
        add(w, p, "added", NULL, b, s);
    else if (!b)
        add(w, p, "removed", a, NULL, s);
    else
        diff_node(w, sub, p, a, b, s);
}

/* Compare two values at `path` (section `sec` describes an object there). */
static void diff_node(walk *w, const bs_conf_section *sec, const char *path, const cJSON *a,
                      const cJSON *b, bool secret)
{
    if (cJSON_Compare(a, b, true)) return;
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, a)
            diff_member(w, sec, path, x->string, x, cJSON_GetObjectItemCaseSensitive(b, x->string),
                        secret);
        cJSON_ArrayForEach(x, b)
            if (!cJSON_GetObjectItemCaseSensitive(a, x->string))
                diff_member(w, sec, path, x->string, NULL, x, secret);
        return;
    }
    if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
        int na = cJSON_GetArraySize(a), nb = cJSON_GetArraySize(b);
        for (int i = 0; i < (na > nb ? na : nb); i++) {
            char p[BS_CONF_PATH_MAX];
            snprintf(p, sizeof p, "%s[%d]", path, i);
            const cJSON *ea = i < na ? cJSON_GetArrayItem(a, i) : NULL;
            const cJSON *eb = i < nb ? cJSON_GetArrayItem(b, i) : NULL;
            if (!ea)
                add(w, p, "added", NULL, eb, secret);
            else if (!eb)
                add(w, p, "removed", ea, NULL, secret);
            else
                diff_node(w, sec, p, ea, eb, secret); /* array elements keep the section */
        }
        return;
    }
    add(w, path, "changed", a, b, secret);
}

/* See config_diff.h. */
bs_status bs_config_diff_compute(const bs_config *old_cfg, const bs_config *new_cfg,
                                 bs_config_diff *out)
{
    memset(out, 0, sizeof *out);
    BS_ENSURE(old_cfg && new_cfg && old_cfg->tree && new_cfg->tree, BS_E_STATE);
    walk w = {.d = out};
    diff_node(&w, &bs_root_conf, "", old_cfg->tree, new_cfg->tree, false);
    if (w.nomem) {
        bs_config_diff_free(out);
        return BS_E_NOMEM;
    }
    return BS_OK;
}

/* See config_diff.h. */
bool bs_config_diff_touches(const bs_config_diff *d, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < d->n; i++) {
        const char *p = d->changes[i].path;
        if (strncmp(p, prefix, n) == 0 && (p[n] == 0 || p[n] == '.' || p[n] == '[')) return true;
    }
    return false;
}

/* See config_diff.h. */
void bs_config_diff_free(bs_config_diff *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free((char *)d->changes[i].path);
        free((char *)d->changes[i].old_value);
        free((char *)d->changes[i].new_value);
    }
    free(d->changes);
    memset(d, 0, sizeof *d);
}
