/*
 * conf_report_test_util.h - collect the problems a module's own parse entry
 * point reports (bs_conf_report_fn: path and message apart, e.g.
 * bs_policy_parse, bs_identity_config_parse) as "PATH: message" lines, and
 * ask whether one was reported exactly.
 */
#ifndef BS_CONF_REPORT_TEST_UTIL_H
#define BS_CONF_REPORT_TEST_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TU_MAX_MSGS 64
static char g_msgs[TU_MAX_MSGS][512];
static int g_n; /* problems reported since the last tu_reports_reset */

static void tu_reports_reset(void)
{
    g_n = 0;
}

/* A bs_conf_report_fn. */
static void tu_report(void *ctx, const char *path, const char *msg)
{
    (void)ctx;
    if (g_n < TU_MAX_MSGS) snprintf(g_msgs[g_n], sizeof g_msgs[0], "%s: %s", path, msg);
    g_n++;
}

/* Was "PATH: message" reported (exactly)? Prints what was, when not. */
static bool reported(const char *want)
{
    for (int i = 0; i < g_n && i < TU_MAX_MSGS; i++)
        if (strcmp(g_msgs[i], want) == 0) return true;
    fprintf(stderr, "    wanted [%s], got:\n", want);
    for (int i = 0; i < g_n && i < TU_MAX_MSGS; i++)
        fprintf(stderr, "    | %s\n", g_msgs[i]);
    return false;
}

#endif
