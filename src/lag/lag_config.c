/*
 * lag_config.c - the `lag` section: the consumer-lag monitor (lag.h), off
 * when absent or null. interval_s applies on SIGHUP; the other keys need a
 * restart (the monitor's client is built once).
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/lag.h"
#include "brokerside/lag_config.h"

#define LAG_CLIENT_LABEL "lag (listener, bootstrap, max_groups, max_partitions, timeout_s)"

/* A SASL mechanism comes with its username and password file, and they
 * with a mechanism. The listener it names is checked by the composition
 * root (daemon/config.c), which sees the listeners. */
static void check_lag(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    bs_lag_config *l = base;
    (void)path;
    if (!obj) return;
    if (l->sasl_mechanism != 0 && (!l->sasl_username || !l->sasl_password_file))
        bs_conf_err(c, "lag.sasl_mechanism", "needs sasl_username and sasl_password_file");
    if (l->sasl_mechanism == 0 && (l->sasl_username || l->sasl_password_file))
        bs_conf_err(c, l->sasl_username ? "lag.sasl_username" : "lag.sasl_password_file",
                    "needs sasl_mechanism");
}

/* "host:port" (IPv6 as "[addr]:port"), port 1..65535: what librdkafka takes. */
static const char *check_bootstrap(const char *s)
{
    char host[256];
    uint16_t port;
    return bs_lag_split_hostport(s, host, sizeof host, &port) ? NULL
                                                               : " is not HOST:PORT (port 1..65535)";
}

/* Indexed by bs_lag_config.sasl_mechanism (lag.c maps them to librdkafka's names). */
static const char *const sasl_names[] = {"none", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", NULL};

static const bs_conf_opt lag_rows[] = {
    {.name = "interval_s", .type = BS_CONF_INT, BS_CONF_AT(bs_lag_config, interval_s), .min = 1,
     .max = 3600, .def = "30"},
    {.name = "listener", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_lag_config, listener), .restart_label = LAG_CLIENT_LABEL},
    {.name = "bootstrap", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_lag_config, bootstrap), .check_str = check_bootstrap,
     .restart_label = LAG_CLIENT_LABEL},
    {.name = "sasl_mechanism", .type = BS_CONF_ENUM, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_lag_config, sasl_mechanism), .choices = sasl_names, .def = "none",
     .restart_label = LAG_CLIENT_LABEL},
    {.name = "sasl_username", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_lag_config, sasl_username), .restart_label = LAG_CLIENT_LABEL},
    {.name = "sasl_password_file", .type = BS_CONF_SECRET_FILE, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_lag_config, sasl_password_file), .restart_label = LAG_CLIENT_LABEL},
    {.name = "max_groups", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_lag_config, max_groups), .min = 1, .max = 100000, .def = "10000",
     .restart_label = LAG_CLIENT_LABEL},
    {.name = "max_partitions", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_lag_config, max_partitions), .min = 1, .max = 1000000, .def = "100000",
     .restart_label = LAG_CLIENT_LABEL},
    {.name = "timeout_s", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     BS_CONF_AT(bs_lag_config, timeout_s), .min = 1, .max = 300, .def = "10",
     .restart_label = LAG_CLIENT_LABEL},
};

const bs_conf_section bs_lag_conf = BS_CONF_SECTION("lag", lag_rows, check_lag);
