/*
 * admin_config.c - the `admin` section: absent = on with defaults, null =
 * off (the one section where null does not mean "default").
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/admin_config.h"


static const bs_conf_opt admin_rows[] = {
    {.name = "bind", .type = BS_CONF_ENDPOINT, .flags = BS_CONF_RESTART | BS_CONF_PASSIVE,
     BS_CONF_AT(bs_admin_config, bind), .min = 0, .def = "127.0.0.1:9644",
     .restart_label = "admin (enabled or bind)"},
    {.name = "probe_interval_s", .type = BS_CONF_SECONDS,
     BS_CONF_AT(bs_admin_config, probe_interval_s), .max = 3600, .def = "5"},
};

const bs_conf_section bs_admin_conf = BS_CONF_SECTION("admin", admin_rows, NULL);

/* See admin_config.h. */
void bs_admin_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                         void *base)
{
    bs_admin_config *adm = (bs_admin_config *)((char *)base + o->offset);
    (void)path;
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, "admin") : NULL;
    if (v && cJSON_IsNull(v)) {
        adm->enabled = false;
        adm->probe_interval_s = 5;
        return;
    }
    adm->enabled = true;
    if (v && !cJSON_IsObject(v)) {
        bs_conf_err(c, "admin",
                    "expected an object, or null to disable the admin endpoint; got %s",
                    bs_conf_type_name(v));
        return;
    }
    static const cJSON empty = {0};
    bs_conf_walk1(c, v ? v : &empty, "admin", &bs_admin_conf, adm);
}

/* See admin_config.h: enabling, disabling or moving it needs a restart. */
bool bs_admin_conf_diff(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                        char *what, size_t whatlen)
{
    const bs_admin_config *x = (const bs_admin_config *)((const char *)a + o->offset);
    const bs_admin_config *y = (const bs_admin_config *)((const char *)b + o->offset);
    (void)label;
    if (x->enabled != y->enabled)
        bs_conf_list_add(what, whatlen, "admin (enabled or bind)");
    else if (x->enabled)
        return bs_conf_restart_diff(&bs_admin_conf, x, y, "admin", what, whatlen);
    return x->enabled != y->enabled;
}
