/*
 * test_log.c - the three shapes of log line: text, JSON (escaping, invalid
 * UTF-8, long messages stay valid JSON) and the journald form (priority
 * prefix, no timestamp), plus the $JOURNAL_STREAM detection against the real
 * stderr of this process.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "brokerside/buf.h"
#include "brokerside/log.h"
#include "test.h"

static void test_text(void)
{
    char line[4096];
    bs_log_set_style(BS_LOG_STYLE_TEXT);
    bs_log_set_journal(false);
    size_t n = bs_log_format_line(line, sizeof line, BS_LOG_WARN, "main", "a %s\nb", "x");
    CHECK_EQ(n, strlen(line));
    /* 2026-01-01T00:00:00.000Z WARN  [main] a x b */
    CHECK(n > 25 && line[4] == '-' && line[10] == 'T' && line[23] == 'Z');
    CHECK_STR(line + 24, " WARN  [main] a x b\n");
}

static void test_journal_text(void)
{
    char line[4096];
    bs_log_set_style(BS_LOG_STYLE_TEXT);
    bs_log_set_journal(true);
    bs_log_format_line(line, sizeof line, BS_LOG_ERROR, "net", "boom %d", 1);
    CHECK_STR(line, "<3>[net] boom 1\n");
    bs_log_format_line(line, sizeof line, BS_LOG_WARN, "net", "w");
    CHECK_STR(line, "<4>[net] w\n");
    bs_log_format_line(line, sizeof line, BS_LOG_INFO, "net", "i");
    CHECK_STR(line, "<6>[net] i\n");
    bs_log_format_line(line, sizeof line, BS_LOG_DEBUG, "net", "d");
    CHECK_STR(line, "<7>[net] d\n");
    bs_log_set_journal(false);
}

/* Parse a JSON line (without its newline); NULL if it is not one object. */
static cJSON *parse_line(const char *line)
{
    size_t n = strlen(line);
    if (n == 0 || line[n - 1] != '\n') return NULL;
    cJSON *j = cJSON_ParseWithLength(line, n - 1);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static void test_json(void)
{
    char line[4096];
    bs_log_set_style(BS_LOG_STYLE_JSON);
    bs_log_set_journal(false);
    bs_log_format_line(line, sizeof line, BS_LOG_INFO, "proxy",
                       "client \"%s\" said \\ %s\ttab\x01 \xc3\xa9 bad:\xff\xc3", "id", "two\nlines");
    CHECK(strchr(line, '\n') == line + strlen(line) - 1); /* one line */
    cJSON *j = parse_line(line);
    CHECK(j != NULL);
    if (j) {
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "level")), "info");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "module")), "proxy");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "msg")),
                  "client \"id\" said \\ two\nlines\ttab\x01 \xc3\xa9 bad:\xef\xbf\xbd\xef\xbf\xbd");
        const char *ts = cJSON_GetStringValue(cJSON_GetObjectItem(j, "ts"));
        CHECK(ts && strlen(ts) == 24 && ts[23] == 'Z');
        cJSON_Delete(j);
    }
    /* A message longer than the line is cut, and the line is still JSON. */
    char *big = malloc(6000);
    memset(big, '"', 5999);
    big[5999] = '\0';
    size_t n = bs_log_format_line(line, sizeof line, BS_LOG_ERROR, "m", "%s", big);
    CHECK(n < sizeof line);
    j = parse_line(line);
    CHECK(j != NULL);
    if (j) {
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "msg"));
        CHECK(msg && strlen(msg) > 1000 && msg[0] == '"');
        cJSON_Delete(j);
    }
    free(big);
    /* under journald: the priority prefix and no timestamp (journald stamps lines) */
    bs_log_set_journal(true);
    bs_log_format_line(line, sizeof line, BS_LOG_WARN, "main", "hi");
    CHECK_STR(line, "<4>{\"level\":\"warn\",\"module\":\"main\",\"msg\":\"hi\"}\n");
    bs_log_set_journal(false);
    bs_log_set_style(BS_LOG_STYLE_TEXT);
    /* too small a buffer formats nothing */
    CHECK_EQ(bs_log_format_line(line, 64, BS_LOG_WARN, "m", "x"), 0);
}

/* The JSON log line and bs_wbuf_put_json_string escape alike (one rule set,
 * bs_json_escape_unit): every byte value, valid and invalid UTF-8. */
static void test_json_escapes_like_wbuf(void)
{
    char in[300], line[4096];
    size_t n = 0;
    for (int c = 1; c < 256; c++)
        in[n++] = (char)c;
    memcpy(in + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xe2\x82", 11);
    n += 11;
    in[n] = '\0';
    bs_log_set_style(BS_LOG_STYLE_JSON);
    bs_log_set_journal(true);
    bs_log_format_line(line, sizeof line, BS_LOG_INFO, "m", "%s", in);
    bs_log_set_journal(false);
    bs_log_set_style(BS_LOG_STYLE_TEXT);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_json_string(&w, in, n);
    bs_wbuf_put_u8(&w, 0);
    CHECK_EQ(bs_wbuf_status(&w), BS_OK);
    const char *msg = strstr(line, "\"msg\":");
    CHECK(msg != NULL);
    if (msg && w.data) {
        size_t k = strlen((const char *)w.data);
        CHECK(strncmp(msg + 6, (const char *)w.data, k) == 0);
        CHECK_STR(msg + 6 + k, "}\n");
    }
    bs_wbuf_free(&w);
}

static void test_journal_stream_detection(void)
{
    /* stderr redirected to a file of ours: JOURNAL_STREAM names it or not */
    char path[] = "/tmp/bs-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    struct stat st;
    fstat(2, &st);
    char v[64];
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    bool on = bs_log_init();
    bs_log(BS_LOG_WARN, "test", "to the journal");
    /* inherited from a parent whose stderr was the journal: not ours */
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", v, 1);
    bool off = bs_log_init();
    setenv("JOURNAL_STREAM", "garbage", 1);
    bool garbage = bs_log_init();
    unsetenv("JOURNAL_STREAM");
    bool unset = bs_log_init();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK(on);
    CHECK(!off && !garbage && !unset);
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    CHECK_STR(buf, "<4>[test] to the journal\n");
    close(fd);
    unlink(path);
}

int main(void)
{
    RUN(test_text);
    RUN(test_journal_text);
    RUN(test_json);
    RUN(test_json_escapes_like_wbuf);
    RUN(test_journal_stream_detection);
    return test_report();
}
