/* Unit tests for src/observe/logtail.c: real files, real spool, a forked tailer killed with -9. */
#include "brokerside/logtail.h"

#include <cjson/cJSON.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "brokerside/file_sink.h"
#include "spool_testutil.h"
#include "test.h"

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_parse_start(void)
{
    int64_t ms;
    const char *lv, *rest;
    size_t ll, rl;
    const char *l = "[2026-11-24 21:05:09,123] WARN  [Log partition=t-0] Found (kafka.log.Log)";
    CHECK_EQ(bs_logtail_parse_start(l, strlen(l), 0, &ms, &lv, &ll, &rest, &rl), BS_OK);
    CHECK_EQ(ms, 1795554309123LL);
    CHECK(ll == 4 && memcmp(lv, "WARN", 4) == 0);
    CHECK(rl == strlen("[Log partition=t-0] Found (kafka.log.Log)") && rest[0] == '[');
    /* log4j has no zone: +02:00 local time is two hours earlier in UTC */
    CHECK_EQ(bs_logtail_parse_start(l, strlen(l), 120, &ms, &lv, &ll, &rest, &rl), BS_OK);
    CHECK_EQ(ms, 1795554309123LL - 7200000LL);
    const char *bad[] = {
        "\tat kafka.Foo.bar(Foo.scala:1)",  "Caused by: java.io.IOException",
        "[2026-11-24 21:05:09.123] INFO x", "[2026-13-24 21:05:09,123] INFO x",
        "[2026-11-24 21:05:09,123] info x", "[2026-11-24 21:05:09,123] INFORMATIONAL x",
        "[2026-11-24 21:05:09,12",          "",
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++)
        CHECK_EQ(bs_logtail_parse_start(bad[i], strlen(bad[i]), 0, &ms, &lv, &ll, &rest, &rl),
                 BS_E_MALFORMED);
    /* a level with nothing after it still starts an event */
    const char *bare = "[2026-11-24 21:05:09,123] ERROR";
    CHECK_EQ(bs_logtail_parse_start(bare, strlen(bare), 0, &ms, &lv, &ll, &rest, &rl), BS_OK);
    CHECK_EQ(rl, 0);
}

/* Append text to a file. */
static void append(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

/* Read every logs record of the spool (from seq `from`) into parsed JSON objects. */
static int read_events(bs_spool *sp, uint64_t from, cJSON **out, int max)
{
    bs_spool_reader *r;
    if (bs_spool_reader_open_at(sp, BS_STREAM_LOGS, from, &r) != BS_OK) return -1;
    bs_spool_record rec;
    int n = 0;
    while (n < max && bs_spool_read(r, &rec) == BS_OK)
        out[n++] = cJSON_ParseWithLength((const char *)rec.payload, rec.len);
    bs_spool_reader_close(r);
    return n;
}

static const char *jstr(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_fields_and_multiline(void)
{
    char *dir = tu_mkdtemp("tail");
    char log[512], state[512], sdir[512];
    snprintf(log, sizeof log, "%s/server.log", dir);
    snprintf(state, sizeof state, "%s/tail.state", dir);
    snprintf(sdir, sizeof sdir, "%s/spool", dir);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    bs_spool *sp;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    append(log,
           "[2026-11-24 21:00:00,001] INFO [KafkaServer id=1] started (kafka.server.KafkaServer)\n"
           "[2026-11-24 21:00:01,002] ERROR Error processing \"x\" (kafka.server.ReplicaManager)\n"
           "java.lang.IllegalStateException: boom\n"
           "\tat kafka.server.ReplicaManager.f(ReplicaManager.scala:10)\n"
           "Caused by: java.io.IOException: disk\n"
           "\t... 3 more\n"
           "[2026-11-24 21:00:02,003] DEBUG no logger here\n");
    char pattern[512];
    snprintf(pattern, sizeof pattern, "%s/*.log", dir);
    const char *files[] = {pattern};
    bs_logtail_options o = {.files = files, .n_files = 1, .state_path = state, .flush_ms = 40};
    bs_logtail *t;
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_OK);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    cJSON *ev[16] = {0};
    /* the last event is not complete until the quiet time has passed */
    CHECK_EQ(read_events(sp, 0, ev, 16), 2);
    for (int i = 0; i < 16; i++)
        cJSON_Delete(ev[i]), ev[i] = NULL;
    msleep(60);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    CHECK_EQ(read_events(sp, 0, ev, 16), 3);
    CHECK_STR(jstr(ev[0], "time"), "2026-11-24T21:00:00.001Z");
    CHECK_STR(jstr(ev[0], "level"), "INFO");
    CHECK_STR(jstr(ev[0], "logger"), "kafka.server.KafkaServer");
    CHECK_STR(jstr(ev[0], "message"), "[KafkaServer id=1] started");
    CHECK_STR(jstr(ev[0], "file"), log);
    CHECK_STR(jstr(ev[1], "level"), "ERROR");
    CHECK_STR(jstr(ev[1], "logger"), "kafka.server.ReplicaManager");
    CHECK_STR(jstr(ev[1], "message"),
              "Error processing \"x\"\njava.lang.IllegalStateException: boom\n"
              "\tat kafka.server.ReplicaManager.f(ReplicaManager.scala:10)\n"
              "Caused by: java.io.IOException: disk\n\t... 3 more");
    CHECK_STR(jstr(ev[2], "message"), "no logger here");
    CHECK(jstr(ev[2], "logger") == NULL);
    cJSON *off = cJSON_GetObjectItemCaseSensitive(ev[1], "offset");
    CHECK(cJSON_IsNumber(off) && off->valuedouble == 85);
    for (int i = 0; i < 16; i++)
        cJSON_Delete(ev[i]);
    bs_logtail_stats st;
    bs_logtail_get_stats(t, &st);
    CHECK_EQ(st.events, 3);
    CHECK_EQ(st.lines, 7);
    bs_logtail_free(t);
    /* restart: the checkpoint says everything is done; new lines only */
    append(log, "[2026-11-24 21:00:03,004] INFO again (x.Y)\n");
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_OK);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    /* quiet time counts from when the tailer saw the data */
    msleep(60);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    CHECK_EQ(read_events(sp, 0, ev, 16), 4);
    CHECK_STR(jstr(ev[3], "message"), "again");
    for (int i = 0; i < 16; i++)
        cJSON_Delete(ev[i]);
    bs_logtail_free(t);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

static void test_invalid_utf8_replaced(void)
{
    char *dir = tu_mkdtemp("tail");
    char log[512], state[512], sdir[512];
    snprintf(log, sizeof log, "%s/server.log", dir);
    snprintf(state, sizeof state, "%s/tail.state", dir);
    snprintf(sdir, sizeof sdir, "%s/spool", dir);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    bs_spool *sp;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    /* a stray latin-1 byte, an overlong '/', a truncated 3-byte sequence; valid e-acute kept */
    append(
        log,
        "[2026-11-24 21:00:00,001] WARN bad \xff byte \xc0\xaf and \xe2\x82 caf\xc3\xa9 (a.B)\n");
    const char *files[] = {log};
    bs_logtail_options o = {.files = files, .n_files = 1, .state_path = state, .flush_ms = 1};
    bs_logtail *t;
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_OK);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    msleep(5);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    cJSON *ev[2] = {0};
    CHECK_EQ(read_events(sp, 0, ev, 2), 1);
    CHECK_STR(
        jstr(ev[0], "message"),
        "bad \xef\xbf\xbd byte \xef\xbf\xbd\xef\xbf\xbd and \xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9");
    CHECK_STR(jstr(ev[0], "logger"), "a.B");
    cJSON *end = cJSON_GetObjectItemCaseSensitive(ev[0], "end");
    /* offsets stay those of the raw bytes in the file */
    CHECK(cJSON_IsNumber(end) && end->valuedouble == 64);
    cJSON_Delete(ev[0]);
    bs_logtail_free(t);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

static void test_spool_full_blocks_then_resumes(void)
{
    char *dir = tu_mkdtemp("tail");
    char log[512], state[512], sdir[512];
    snprintf(log, sizeof log, "%s/server.log", dir);
    snprintf(state, sizeof state, "%s/tail.state", dir);
    snprintf(sdir, sizeof sdir, "%s/spool", dir);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    so.max_bytes = 20000;
    so.segment_bytes = 4096;
    bs_spool *sp;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    bs_spool_reader *r;
    CHECK_EQ(bs_spool_reader_open(sp, "drain", BS_STREAM_LOGS, &r), BS_OK);
    for (int i = 0; i < 400; i++) {
        char line[128];
        snprintf(line, sizeof line, "[2026-11-24 21:00:00,000] INFO line %d (a.B)\n", i);
        append(log, line);
    }
    const char *files[] = {log};
    bs_logtail_options o = {.files = files, .n_files = 1, .state_path = state, .flush_ms = 1};
    bs_logtail *t;
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_OK);
    int seen[400] = {0}, rounds = 0;
    bs_status st;
    do {
        msleep(2);
        st = bs_logtail_poll(t);
        CHECK(st == BS_OK || st == BS_E_FULL);
        /* a sink drains the spool: read, acknowledge */
        bs_spool_record rec;
        bs_spool_pos last = {0};
        CHECK_EQ(bs_spool_sync(sp), BS_OK);
        while (bs_spool_read(r, &rec) == BS_OK) {
            int n;
            const char *m = memmem(rec.payload, rec.len, "line ", 5);
            if (m && sscanf(m, "line %d", &n) == 1 && n >= 0 && n < 400) seen[n]++;
            last = rec.end;
        }
        if (last.seg) CHECK_EQ(bs_spool_ack(r, last), BS_OK);
    } while (st == BS_E_FULL && ++rounds < 1000);
    bs_logtail_stats ts;
    bs_logtail_get_stats(t, &ts);
    CHECK(ts.blocked > 0);
    for (int i = 0; i < 400; i++)
        CHECK_EQ(seen[i], 1);
    bs_logtail_free(t);
    bs_spool_reader_close(r);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

static void test_bad_options_and_checkpoint(void)
{
    char *dir = tu_mkdtemp("tail");
    char sdir[512], state[512];
    snprintf(sdir, sizeof sdir, "%s/spool", dir);
    snprintf(state, sizeof state, "%s/tail.state", dir);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    bs_spool *sp;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    bs_logtail *t;
    const char *files[] = {"/nonexistent/*.log"};
    bs_logtail_options o = {.files = files, .n_files = 0, .state_path = state};
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_E_CONFIG);
    o.n_files = 1;
    o.state_path = NULL;
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_E_CONFIG);
    o.state_path = state;
    /* no file matches yet: fine, picked up later */
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_OK);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    /* a second tailer on the same checkpoint is refused before it reads it */
    bs_logtail *t2 = NULL;
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t2), BS_E_BUSY);
    CHECK(t2 == NULL);
    bs_logtail_free(t);
    append(state, "not a checkpoint\n");
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_E_MALFORMED);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

typedef struct ck_seen {
    bs_logtail_ckpt_entry e[4];
    char path[4][64];
    int n;
} ck_seen;

static bs_status ck_collect(const bs_logtail_ckpt_entry *e, void *arg)
{
    ck_seen *s = arg;
    if (s->n >= 4) return BS_E_FULL;
    s->e[s->n] = *e;
    snprintf(s->path[s->n], sizeof s->path[0], "%.*s", (int)e->path_len, e->path);
    s->n++;
    return BS_OK;
}

/* The checkpoint reader: what the writer writes, and the inputs the old
 * sscanf reader took although no writer produces them. */
static void test_parse_checkpoint(void)
{
    ck_seen s = {0};
    uint64_t seq = 0;
    static const char good[] = "bslt1 42\n"
                               "2049 131 1000 64 00000000deadBEEF /var/log/kafka/server.log\n"
                               "2049 132 0 0 0000000000000000 \n";
    CHECK_EQ(bs_logtail_parse_checkpoint(good, sizeof good - 1, &seq, ck_collect, &s), BS_OK);
    CHECK_EQ(seq, 42);
    CHECK_EQ(s.n, 2);
    CHECK(s.e[0].dev == 2049 && s.e[0].ino == 131 && s.e[0].off == 1000 && s.e[0].head_len == 64);
    CHECK(s.e[0].head_hash == 0xdeadbeefULL);
    CHECK_STR(s.path[0], "/var/log/kafka/server.log");
    CHECK_STR(s.path[1], ""); /* name unknown */
    /* the callback's refusal stops the parse */
    s.n = 4;
    CHECK_EQ(bs_logtail_parse_checkpoint(good, sizeof good - 1, &seq, ck_collect, &s), BS_E_FULL);
    const char *bad[] = {
        "",                                            /* empty file */
        "bslt1 42",                                    /* cut short */
        "bslt2 42\n",                                  /* another format */
        "bslt1 -1\n",                                  /* sscanf read this as 2^64-1 */
        "bslt1  42\n",                                 /* sscanf skipped the spaces */
        "bslt1 42x\n",                                 /* sscanf ignored the tail */
        "bslt1 1\n1 2 -1 64 ff /x\n",                  /* negative offset: read as 2^64-1 */
        "bslt1 1\n1 2 3 65 ff /x\n",                   /* head longer than hashed */
        "bslt1 1\n1 2 3 4 ff /x",                       /* entry cut short */
        "bslt1 1\n1 2 3 4 0x1f /x\n",                  /* no 0x prefix */
        "bslt1 1\n1 2 3 4 11112222333344445 /x\n",     /* 17 hex digits */
        "bslt1 1\n+1 2 3 4 ff /x\n",                   /* sign */
        "bslt1 1\n1 2 3 4 ff\n",                       /* no separator before the path */
        "bslt1 1\n99999999999999999999 2 3 4 ff /x\n", /* 20 digits */
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++) {
        s.n = 0;
        bs_status st = bs_logtail_parse_checkpoint(bad[i], strlen(bad[i]), &seq, ck_collect, &s);
        if (st != BS_E_MALFORMED) fprintf(stderr, "accepted bad checkpoint #%zu\n", i);
        CHECK_EQ(st, BS_E_MALFORMED);
    }
    static const char nul[] = "bslt1 1\n1 2 3 4 ff /a\0b\n";
    CHECK_EQ(bs_logtail_parse_checkpoint(nul, sizeof nul - 1, &seq, ck_collect, &s),
             BS_E_MALFORMED);
}

/* A checkpoint naming a file by a path too long for the fixed record used
 * to make the whole checkpoint unreadable (the reader's line buffer split
 * it): now the entry is kept, its name forgotten. */
static void test_checkpoint_long_path(void)
{
    char *dir = tu_mkdtemp("tail");
    char sdir[512], state[512], log[512];
    snprintf(sdir, sizeof sdir, "%s/spool", dir);
    snprintf(state, sizeof state, "%s/tail.state", dir);
    snprintf(log, sizeof log, "%s/server.log", dir);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    bs_spool *sp;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    append(log, "[2026-11-24 21:05:09,123] INFO one (x.Y)\n");
    struct stat sb;
    CHECK_EQ(stat(log, &sb), 0);
    /* the file's first line is already done; a second, gone file has a 2000-byte name */
    char *text = malloc(4096);
    int n = snprintf(text, 4096, "bslt1 0\n%llu %llu 41 0 0 %s\n%llu 999999 5 0 0 /",
                     (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino, log,
                     (unsigned long long)sb.st_dev);
    for (int i = 0; i < 2000; i++)
        text[n++] = 'x';
    text[n++] = '\n';
    int fd = open(state, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, text, (size_t)n) == n);
    close(fd);
    free(text);
    const char *files[] = {log};
    bs_logtail_options o = {.files = files, .n_files = 1, .state_path = state, .flush_ms = 1};
    bs_logtail *t = NULL;
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_OK);
    append(log, "[2026-11-24 21:05:10,000] INFO two (x.Y)\n");
    CHECK_EQ(bs_logtail_poll(t), BS_OK); /* read */
    msleep(5);
    CHECK_EQ(bs_logtail_poll(t), BS_OK); /* quiet for flush_ms: emitted */
    cJSON *ev[4];
    int got = read_events(sp, 0, ev, 4);
    CHECK_EQ(got, 1); /* resumed after "one": only "two" */
    if (got == 1) CHECK_STR(jstr(ev[0], "message"), "two");
    for (int i = 0; i < got; i++)
        cJSON_Delete(ev[i]);
    bs_logtail_free(t);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

/* Format "plain": every line is an event of its own, even lines that log4j
 * rules would join (indented, "Caused by:") or parse (a log4j start line). */
static void test_plain_format(void)
{
    char *dir = tu_mkdtemp("tail");
    char sdir[512], state[512], log[512];
    snprintf(sdir, sizeof sdir, "%s/spool", dir);
    snprintf(state, sizeof state, "%s/tail.state", dir);
    snprintf(log, sizeof log, "%s/app.log", dir);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    bs_spool *sp;
    CHECK_EQ(bs_spool_open(&so, &sp), BS_OK);
    append(log, "first line\n\tat indented\nCaused by: x\n[2026-11-24 21:05:09,123] INFO y (a.B)\n");
    const char *files[] = {log};
    const bool plain[] = {true};
    bs_logtail_options o = {
        .files = files, .plain = plain, .n_files = 1, .state_path = state, .flush_ms = 1};
    bs_logtail *t = NULL;
    CHECK_EQ(bs_logtail_new(NULL, sp, &o, &t), BS_OK);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    msleep(5);
    CHECK_EQ(bs_logtail_poll(t), BS_OK);
    cJSON *ev[8];
    int got = read_events(sp, 0, ev, 8);
    CHECK_EQ(got, 4);
    static const char *const want[] = {"first line", "\tat indented", "Caused by: x",
                                       "[2026-11-24 21:05:09,123] INFO y (a.B)"};
    for (int i = 0; i < got && i < 4; i++) {
        CHECK_STR(jstr(ev[i], "message"), want[i]);
        CHECK(jstr(ev[i], "level") == NULL && jstr(ev[i], "time") == NULL);
    }
    for (int i = 0; i < got; i++)
        cJSON_Delete(ev[i]);
    bs_logtail_free(t);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

/* ---- end to end: writer, rotations both ways, kill -9 of the tailer process ---- */

typedef struct e2e {
    char dir[256], log[512], out[512];
} e2e;

/* The sidecar side: spool + tailer + file sink on one loop, forever. */
static void tailer_child(const e2e *e)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char sdir[600], state[600];
    snprintf(sdir, sizeof sdir, "%s/spool", e->dir);
    snprintf(state, sizeof state, "%s/tail.state", e->dir);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    so.fsync_interval_ms = 10;
    so.segment_bytes = 64 * 1024;
    bs_spool *sp;
    if (bs_spool_open(&so, &sp) != BS_OK) _exit(2);
    bs_spool_attach_loop(sp, loop);
    bs_file_sink_options fo = {.dir = e->out, .rotate_bytes = 100000};
    const bs_sink_ops *ops;
    void *impl;
    if (bs_file_sink_new(&fo, &ops, &impl) != BS_OK) _exit(3);
    bs_sink_options o = {.name = "files", .streams = BS_STREAM_MASK(BS_STREAM_LOGS)};
    bs_file_sink_limits(&o.limits);
    o.limits.max_age_ms = 5;
    bs_sink *s;
    if (bs_sink_create(loop, sp, &o, ops, impl, &s) != BS_OK) _exit(4);
    const char *files[] = {e->log};
    bs_logtail_options to = {
        .files = files, .n_files = 1, .state_path = state, .poll_ms = 5, .flush_ms = 20};
    bs_logtail *t;
    if (bs_logtail_new(loop, sp, &to, &t) != BS_OK) _exit(5);
    ev_run(loop, 0);
    _exit(6);
}

static pid_t start_child(const e2e *e)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* never outlive the test, even if it crashes */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        tailer_child(e);
    }
    return pid;
}

static void stop_child(pid_t pid)
{
    int status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

/* Count events "k=<n>" in every logs file of the output; stacks[n] set when
 * the event carried its stack trace joined. Returns lines or -1. */
static int tally_out(const char *out, int *count, int *stacks, int max)
{
    DIR *d = opendir(out);
    if (!d) return 0;
    struct dirent *de;
    int lines = 0;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "logs", 4) != 0 || !strstr(de->d_name, ".ndjson")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", out, de->d_name);
        size_t len;
        char *b = tu_slurp(p, &len);
        if (!b) continue;
        for (char *line = b, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
            *nl = 0;
            cJSON *j = cJSON_Parse(line);
            const char *m = jstr(j, "message");
            int k;
            if (m && sscanf(m, "event k=%d", &k) == 1 && k >= 0 && k < max) {
                count[k]++;
                if (strstr(m, "\n\tat com.example.A.b(A.java:1)\nCaused by: java.io.IOException"))
                    stacks[k]++;
            } else {
                lines = -1000000;
            }
            cJSON_Delete(j);
            lines++;
        }
        free(b);
    }
    closedir(d);
    return lines;
}

/* Wait until event k is in the output (the tailer caught up). */
static bool wait_for(const e2e *e, int k, int max)
{
    int *count = calloc((size_t)max, sizeof *count), *stacks = calloc((size_t)max, sizeof *stacks);
    bool ok = false;
    for (int i = 0; i < 6000 && !ok; i++) {
        memset(count, 0, (size_t)max * sizeof *count);
        tally_out(e->out, count, stacks, max);
        ok = count[k] > 0;
        if (!ok) msleep(10);
    }
    free(count);
    free(stacks);
    return ok;
}

static void test_rotation_and_kill9_exactly_once(void)
{
    enum { N = 1500 };
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    e2e e;
    char *dir = tu_mkdtemp("tail");
    snprintf(e.dir, sizeof e.dir, "%s", dir);
    snprintf(e.log, sizeof e.log, "%s/server.log", dir);
    snprintf(e.out, sizeof e.out, "%s/out", dir);
    pid_t pid = start_child(&e);
    int fd = open(e.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int rotations = 0, kills = 0;
    for (int k = 0; k < N; k++) {
        char ev[512];
        int n;
        if (k % 7 == 3)
            n = snprintf(ev, sizeof ev,
                         "[2026-11-24 21:00:00,000] ERROR event k=%d failed (kafka.test.Logger)\n"
                         "java.lang.IllegalStateException: boom %d\n"
                         "\tat com.example.A.b(A.java:1)\n"
                         "Caused by: java.io.IOException: x\n",
                         k, k);
        else
            n = snprintf(ev, sizeof ev,
                         "[2026-11-24 21:00:00,000] INFO event k=%d ok (kafka.test.Logger)\n", k);
        CHECK(write(fd, ev, (size_t)n) == n);
        if (k % 10 == 0) msleep(1);
        if (k > 0 && k % 300 == 0) {
            if ((k / 300) % 2 == 1) {
                /* rename-and-create */
                char rot[600];
                snprintf(rot, sizeof rot, "%s.%d", e.log, k);
                CHECK_EQ(rename(e.log, rot), 0);
                close(fd);
                fd = open(e.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            } else {
                /* copytruncate: the copier can only avoid losing lines if the
                 * tailer read them first, as with logrotate in production */
                CHECK(wait_for(&e, k, N));
                char cp[600], cmd[1400];
                snprintf(cp, sizeof cp, "%s.copy%d", e.log, k);
                snprintf(cmd, sizeof cmd, "cp '%s' '%s'", e.log, cp);
                CHECK_EQ(system(cmd), 0);
                CHECK_EQ(ftruncate(fd, 0), 0);
            }
            rotations++;
        }
        if (k > 0 && k % 250 == 0 && rand() % 3 != 0) {
            /* kill -9 at a random moment and restart */
            msleep(rand() % 30);
            stop_child(pid);
            kills++;
            pid = start_child(&e);
        }
    }
    close(fd);
    CHECK(wait_for(&e, N - 1, N));
    /* give a last event the quiet time, then compare */
    int count[N], stacks[N], done = 0;
    for (int i = 0; i < 6000 && !done; i++) {
        memset(count, 0, sizeof count);
        memset(stacks, 0, sizeof stacks);
        tally_out(e.out, count, stacks, N);
        done = 1;
        for (int k = 0; k < N; k++)
            if (count[k] == 0) done = 0;
        if (!done) msleep(10);
    }
    stop_child(pid);
    memset(count, 0, sizeof count);
    memset(stacks, 0, sizeof stacks);
    CHECK(tally_out(e.out, count, stacks, N) >= N);
    int bad = 0;
    for (int k = 0; k < N; k++) {
        if (count[k] != 1 && bad++ < 10)
            fprintf(stderr, "  event %d arrived %d times\n", k, count[k]);
        if (k % 7 == 3 && stacks[k] != count[k] && bad++ < 10)
            fprintf(stderr, "  event %d lost its stack\n", k);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(rotations, 4);
    fprintf(stderr, "  %d events, %d rotations, %d kill -9\n", N, rotations, kills);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    RUN(test_parse_start);
    RUN(test_fields_and_multiline);
    RUN(test_invalid_utf8_replaced);
    RUN(test_spool_full_blocks_then_resumes);
    RUN(test_bad_options_and_checkpoint);
    RUN(test_parse_checkpoint);
    RUN(test_checkpoint_long_path);
    RUN(test_plain_format);
    RUN(test_rotation_and_kill9_exactly_once);
    return test_report();
}
