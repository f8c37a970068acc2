/*
 * spool_config.c - the `spool` section: where events wait for their sinks
 * and the limits of the on-disk queue (docs/spool.md).
 */
#include <inttypes.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "brokerside/events_config.h"

#define MIB (1024ll * 1024ll)

/* A few segments must fit under the limit, or the oldest could never be
 * released while the newest fills. */
static void check_spool(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    const bs_spool_config *sp = base;
    (void)path;
    if (obj && sp->segment_bytes > sp->max_bytes / 4)
        bs_conf_err(c, "spool.segment_bytes",
                    "%" PRIu64 " is more than a quarter of max_bytes (%" PRIu64 ")",
                    sp->segment_bytes, sp->max_bytes);
}

static const bs_conf_opt spool_rows[] = {
    /* Required when a stream is on: checked by the daemon's rules. */
    {.name = "dir", .type = BS_CONF_DIR, .flags = BS_CONF_RESTART, .restart_label = "spool",
     BS_CONF_AT(bs_spool_config, dir)},
    {.name = "max_bytes", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     .restart_label = "spool", BS_CONF_AT(bs_spool_config, max_bytes),
     .min = 16 * MIB, .max = 1ll << 50, .def = "1073741824"},
    {.name = "segment_bytes", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     .restart_label = "spool", BS_CONF_AT(bs_spool_config, segment_bytes),
     .min = MIB, .max = 1ll << 40, .def = "67108864"},
    {.name = "fsync_interval_ms", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     .restart_label = "spool",
     BS_CONF_AT(bs_spool_config, fsync_interval_ms), .min = 1, .max = 60000, .def = "100"},
    {.name = "audit_sync_ms", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     .restart_label = "spool", BS_CONF_AT(bs_spool_config, audit_sync_ms),
     .min = 0, .max = 1000, .def = "100"},
};

const bs_conf_section bs_spool_conf = BS_CONF_SECTION("spool", spool_rows, check_spool);
