/*
 * log.h - the process log: one line per event on stderr, timestamped in UTC,
 * with a level and a module tag. Thread-safe (each line is one write(2)).
 * Never log secrets or record data.
 */
#ifndef BROKERSIDE_LOG_H
#define BROKERSIDE_LOG_H

typedef enum bs_log_level {
    BS_LOG_DEBUG = 0,
    BS_LOG_INFO = 1,
    BS_LOG_WARN = 2,
    BS_LOG_ERROR = 3,
} bs_log_level;

/* Lines below `level` are dropped. Default: BS_LOG_INFO. */
void bs_log_set_level(bs_log_level level);
bs_log_level bs_log_get_level(void);
/* Parse "debug" | "info" | "warn" | "error"; returns -1 if unknown. */
int bs_log_level_parse(const char *s);
/* Emit one line: `2026-01-01T00:00:00.000Z WARN  [module] message`. */
void bs_log(bs_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define BS_LOG_DEBUGF(mod, ...) bs_log(BS_LOG_DEBUG, mod, __VA_ARGS__)
#define BS_LOG_INFOF(mod, ...) bs_log(BS_LOG_INFO, mod, __VA_ARGS__)
#define BS_LOG_WARNF(mod, ...) bs_log(BS_LOG_WARN, mod, __VA_ARGS__)
#define BS_LOG_ERRORF(mod, ...) bs_log(BS_LOG_ERROR, mod, __VA_ARGS__)

#endif
