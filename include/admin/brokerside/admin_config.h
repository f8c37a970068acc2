/*
 * admin_config.h - the configuration admin/ owns: the `admin` section and
 * its option table (admin/admin_config.c).
 */
#ifndef BROKERSIDE_ADMIN_CONFIG_H
#define BROKERSIDE_ADMIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "brokerside/confmap.h"

typedef struct bs_admin_config {
    bool enabled;            /* false when "admin": null */
    bs_endpoint bind;        /* default 127.0.0.1:9644 */
    double probe_interval_s; /* readiness probe of upstreams; default 5 */
} bs_admin_config;

/* admin/admin_config.c: `admin` (absent = on with defaults, null = off). */
extern const bs_conf_section bs_admin_conf;
void bs_admin_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                         void *base);
bool bs_admin_conf_diff(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                        char *what, size_t whatlen);

#endif
