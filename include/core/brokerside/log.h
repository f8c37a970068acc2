/*
 * log.h - the process log: one line per event on stderr, with a level and a
 * module tag. Thread-safe (each line is one write(2)). Never log secrets or
 * record data.
 *
 * Three shapes of line, chosen at start (bs_log_init, then the config's
 * `log_format`):
 *   text     `2026-01-01T00:00:00.000Z WARN  [module] message`
 *   json     `{"ts":"2026-01-01T00:00:00.000Z","level":"warn","module":"module","msg":"message"}`
 *   journal  when stderr is systemd's journal stream ($JOURNAL_STREAM names
 *            stderr's device and inode): each line starts with the syslog
 *            priority `<N>` (journald strips it and files the line under
 *            that priority) and carries no timestamp, since journald stamps
 *            every line itself: `<4>[module] message`, or `<4>{"level":...}`
 *            for json.
 */
#ifndef BROKERSIDE_LOG_H
#define BROKERSIDE_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum bs_log_level {
    BS_LOG_DEBUG = 0,
    BS_LOG_INFO = 1,
    BS_LOG_WARN = 2,
    BS_LOG_ERROR = 3,
} bs_log_level;

/* The line format (`log_format` in the config). */
typedef enum bs_log_style {
    BS_LOG_STYLE_TEXT = 0, /* default */
    BS_LOG_STYLE_JSON = 1, /* one JSON object per line */
} bs_log_style;

/* Lines below `level` are dropped. Default: BS_LOG_INFO. */
void bs_log_set_level(bs_log_level level);
bs_log_level bs_log_get_level(void);
/* Parse "debug" | "info" | "warn" | "error"; returns -1 if unknown. */
int bs_log_level_parse(const char *s);
/* Choose text or JSON lines. Default: text. */
void bs_log_set_style(bs_log_style style);
/* Look at $JOURNAL_STREAM once: if it names the device and inode of
 * stderr, lines get journald priority prefixes and no timestamp. Returns
 * whether they do. Call early in main (before threads log). */
bool bs_log_init(void);
/* Force journald form on or off (tests). */
void bs_log_set_journal(bool on);
/* Emit one line in the current shape (see above). */
void bs_log(bs_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Format one line into buf[len] exactly as bs_log would write it (the
 * trailing newline included, NUL-terminated; long messages are cut);
 * returns its length, 0 if len < 128. `fmt` is printf-style. For tests and for callers that need the bytes. */
size_t bs_log_format_line(char *buf, size_t len, bs_log_level level, const char *module,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define BS_LOG_DEBUGF(mod, ...) bs_log(BS_LOG_DEBUG, mod, __VA_ARGS__)
#define BS_LOG_INFOF(mod, ...) bs_log(BS_LOG_INFO, mod, __VA_ARGS__)
#define BS_LOG_WARNF(mod, ...) bs_log(BS_LOG_WARN, mod, __VA_ARGS__)
#define BS_LOG_ERRORF(mod, ...) bs_log(BS_LOG_ERROR, mod, __VA_ARGS__)

#endif
