/*
 * events_config.h - the configuration events/ owns: the `spool` section
 * and its option table (events/spool_config.c).
 */
#ifndef BROKERSIDE_EVENTS_CONFIG_H
#define BROKERSIDE_EVENTS_CONFIG_H

#include <stdint.h>

#include "brokerside/confmap.h"

typedef struct bs_spool_config {
    char *dir;                  /* absolute; NULL when no stream is enabled */
    uint64_t max_bytes;         /* default 1 GiB, at least 16 MiB */
    uint64_t segment_bytes;     /* default 64 MiB, 1 MiB..max_bytes/4 */
    uint32_t fsync_interval_ms; /* default 100 */
    uint32_t audit_sync_ms;   /* group-commit window of audit fsyncs; default 100, 0..1000 */
} bs_spool_config;

/* events/spool_config.c: `spool`. */
extern const bs_conf_section bs_spool_conf;

#endif
