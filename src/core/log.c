/* log.c - levelled log lines on stderr: text, JSON, journald form (see log.h). */
#include "brokerside/log.h"
#include "brokerside/text.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = BS_LOG_INFO;
static _Atomic int g_style = BS_LOG_STYLE_TEXT;
static _Atomic bool g_journal = false;

void bs_log_set_level(bs_log_level level)
{
    atomic_store(&g_level, (int)level);
}

bs_log_level bs_log_get_level(void)
{
    return (bs_log_level)atomic_load(&g_level);
}

int bs_log_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

void bs_log_set_style(bs_log_style style)
{
    atomic_store(&g_style, (int)style);
}

void bs_log_set_journal(bool on)
{
    atomic_store(&g_journal, on);
}

/* See log.h. systemd sets JOURNAL_STREAM="DEV:INODE" (decimal) for a
 * service whose stdout/stderr is the journal; a child that redirected
 * stderr elsewhere inherits the variable, hence the comparison. */
bool bs_log_init(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    char end;
    bool on = v && sscanf(v, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
              fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
              (unsigned long long)st.st_ino == ino;
    bs_log_set_journal(on);
    return on;
}

/* Append `s` as the body of a JSON string to out[*o..cap), escaped by the
 * rules every JSON writer shares (bs_json_escape_unit). Stops (without
 * cutting an escape or a UTF-8 sequence) when the buffer is full. Not
 * bs_wbuf_put_json_string: the logger must work without allocating (it
 * reports allocation failures). */
static void json_escape(char *out, size_t cap, size_t *o, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        char esc[6];
        size_t adv, k = bs_json_escape_unit(p + i, n - i, esc, &adv);
        const char *piece = k ? esc : s + i;
        if (!k) k = adv;
        if (*o + k >= cap) return;
        memcpy(out + *o, piece, k);
        *o += k;
        i += adv;
    }
}

/* The line for one event into buf[len] (len >= 128), newline and NUL
 * included; returns its length without the NUL. */
static size_t format_line_v(char *buf, size_t len, bs_log_level level, const char *module,
                            const char *fmt, va_list ap)
{
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    static const char *names[] = {"debug", "info", "warn", "error"};
    static const int prio[] = {7, 6, 4, 3}; /* syslog: debug, info, warning, err */
    char msg[2048], ts[80] = "";
    bool journal = atomic_load(&g_journal);
    bool json = atomic_load(&g_style) == BS_LOG_STYLE_JSON;
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    if (m < 0) msg[0] = '\0';
    if (!journal) {
        struct timespec t;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &t);
        gmtime_r(&t.tv_sec, &tm);
        snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 t.tv_nsec / 1000000);
    }
    size_t o = 0, cap = len - 2; /* room for "}" or nothing, then "\n" */
    int n = 0;
    if (journal) n = snprintf(buf, len, "<%d>", prio[level & 3]);
    o = (size_t)n;
    if (json) {
        if (!journal) o += (size_t)snprintf(buf + o, len - o, "{\"ts\":\"%s\",", ts);
        else o += (size_t)snprintf(buf + o, len - o, "{");
        o += (size_t)snprintf(buf + o, len - o, "\"level\":\"%s\",\"module\":\"", names[level & 3]);
        json_escape(buf, cap - 8, &o, module);
        memcpy(buf + o, "\",\"msg\":\"", 9);
        o += 9;
        json_escape(buf, cap - 2, &o, msg);
        buf[o++] = '"';
        buf[o++] = '}';
    } else {
        if (journal)
            o += (size_t)snprintf(buf + o, len - o, "[%s] ", module);
        else
            o += (size_t)snprintf(buf + o, len - o, "%s %s [%s] ", ts, tags[level & 3], module);
        if (o > cap) o = cap;
        size_t start = o;
        size_t k = strnlen(msg, sizeof msg);
        if (k > cap - o) k = cap - o;
        memcpy(buf + o, msg, k);
        o += k;
        for (size_t i = start; i < o; i++)
            if (buf[i] == '\n' || buf[i] == '\r') buf[i] = ' '; /* one event, one line */
    }
    buf[o++] = '\n';
    buf[o] = '\0';
    return o;
}

/* See log.h. */
size_t bs_log_format_line(char *buf, size_t len, bs_log_level level, const char *module,
                          const char *fmt, ...)
{
    if (len < 128) {
        if (len) buf[0] = '\0';
        return 0;
    }
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_line_v(buf, len, level, module, fmt, ap);
    va_end(ap);
    return n;
}

/* Formats the whole line into one buffer so concurrent threads never interleave. */
void bs_log(bs_log_level level, const char *module, const char *fmt, ...)
{
    if ((int)level < atomic_load(&g_level)) return;
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_line_v(line, sizeof line, level, module, fmt, ap);
    va_end(ap);
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
