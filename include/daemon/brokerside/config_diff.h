/*
 * config_diff.h - what a configuration reload changed, by key path, with
 * the values of secrets left out (daemon/config_diff.c). The daemon turns
 * the result into a ConfigurationReloaded audit event (sidecar_action.h).
 */
#ifndef BROKERSIDE_CONFIG_DIFF_H
#define BROKERSIDE_CONFIG_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "brokerside/config.h"
#include "brokerside/sidecar_action.h"
#include "brokerside/status.h"

/* Bounds: at most this many changes are listed (the rest are counted), and
 * a value longer than BS_CONFIG_DIFF_VALUE_MAX bytes is cut with "...". */
#define BS_CONFIG_DIFF_MAX 256
#define BS_CONFIG_DIFF_VALUE_MAX 256

typedef struct bs_config_diff {
    bs_config_change *changes; /* path, change, old/new (NULL for secrets) */
    size_t n;
    size_t omitted; /* changes beyond BS_CONFIG_DIFF_MAX */
} bs_config_diff;

/* Compare the documents two configs were loaded from (bs_config.tree):
 * every key whose value differs, was added or was removed, as a path in
 * the --check-config spelling ("audit.data_events", "listeners[0].tls.crl").
 * Objects are compared key by key, arrays element by element; a change of
 * type is one "changed" entry. A key is secret when an option table marks
 * it BS_CONF_SECRET / SECRET_FILE or its name (or an ancestor's) contains
 * "key", "secret", "password" or "token" (case-insensitive): its entry
 * carries no values. Strings' values are their text, other values their
 * JSON. BS_E_NOMEM; BS_E_STATE when a config has no tree. Free with
 * bs_config_diff_free. */
bs_status bs_config_diff_compute(const bs_config *old_cfg, const bs_config *new_cfg,
                                 bs_config_diff *out) BS_WUR;
/* True when any change is at or under `prefix` ("authorization"). */
bool bs_config_diff_touches(const bs_config_diff *d, const char *prefix);
/* Free what bs_config_diff_compute allocated; the struct may be reused. */
void bs_config_diff_free(bs_config_diff *d);

#endif
