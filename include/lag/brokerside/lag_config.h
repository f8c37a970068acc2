/*
 * lag_config.h - the configuration lag/ owns: the `lag` section (the
 * consumer-lag monitor, lag.h) and its option table (lag/lag_config.c).
 * Which listener it names is checked by the composition root, which sees
 * the listeners (daemon/config.c).
 */
#ifndef BROKERSIDE_LAG_CONFIG_H
#define BROKERSIDE_LAG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "brokerside/confmap.h"

/* `lag`: the consumer-lag monitor (lag.h); off when absent or null. */
typedef struct bs_lag_config {
    bool enabled;
    uint32_t interval_s;     /* default 30; live on SIGHUP */
    char *listener;          /* whose upstream, upstream_tls and broker_id; default: first kafka
                                listener */
    char *bootstrap;         /* "host:port" of a broker listener advertising reachable
                                addresses; NULL: the listener's upstream */
    int sasl_mechanism;      /* 0 none (default), 1 PLAIN, 2 SCRAM-SHA-256, 3 SCRAM-SHA-512 */
    char *sasl_username;     /* required with a mechanism */
    char *sasl_password_file; /* required with a mechanism; owner-only (SECRET_FILE) */
    uint32_t max_groups;     /* groups reported per poll; default 10000 */
    uint32_t max_partitions; /* per-partition lag rows per poll; default 100000 */
    uint32_t timeout_s;      /* per request to the cluster; default 10 */
} bs_lag_config;

/* lag/lag_config.c: `lag` (the consumer-lag monitor; off when absent or null). */
extern const bs_conf_section bs_lag_conf;

#endif
