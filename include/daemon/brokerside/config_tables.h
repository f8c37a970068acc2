/*
 * config_tables.h - every configuration section's option table, for the
 * composition root and the tests.
 *
 * Every section is a bs_conf_section (confmap.h) defined in the module that
 * owns the keys, next to the code that uses them, and declared in that
 * module's <module>_config.h with the struct it fills; the daemon's root
 * table (daemon/config.c) lists the top-level keys and points at these.
 * identity/ and policy/ declare theirs in identity.h and policy.h.
 * docs/configuration.md is checked against these tables by
 * tests/unit/test_config_tables.c.
 */
#ifndef BROKERSIDE_CONFIG_TABLES_H
#define BROKERSIDE_CONFIG_TABLES_H

#include "brokerside/config.h"
#include "brokerside/confmap.h"

/* daemon/config.c: the top level (the root table). */
extern const bs_conf_section bs_root_conf;

#endif
