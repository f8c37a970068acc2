/* Unit tests for src/sinks/file_sink.c: real spool, real files, gzip read back with zlib. */
#include "brokerside/file_sink.h"

#include <dirent.h>
#include <ev.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

#include "spool_testutil.h"
#include "test.h"

typedef struct rig {
    struct ev_loop *loop;
    char *dir;
    char out[512];
    bs_spool *sp;
    bs_sink *sink;
} rig;

/* Spool in dir/spool, file sink into dir/out. */
static bool rig_open(rig *r, const char *dir, const bs_file_sink_options *fo_in, size_t max_events)
{
    memset(r, 0, sizeof *r);
    r->loop = ev_loop_new(EVFLAG_AUTO);
    snprintf(r->out, sizeof r->out, "%s/out", dir);
    char sdir[512];
    snprintf(sdir, sizeof sdir, "%s/spool", dir);
    bs_spool_options so;
    bs_spool_options_default(&so);
    so.dir = sdir;
    so.fsync_interval_ms = 5;
    so.segment_bytes = 32768;
    if (bs_spool_open(&so, &r->sp) != BS_OK) return false;
    bs_spool_attach_loop(r->sp, r->loop);
    bs_file_sink_options fo = *fo_in;
    fo.dir = r->out;
    const bs_sink_ops *ops;
    void *impl;
    if (bs_file_sink_new(&fo, &ops, &impl) != BS_OK) return false;
    bs_sink_options o = {.name = "files"};
    bs_file_sink_limits(&o.limits);
    if (max_events) o.limits.max_events = max_events;
    o.limits.max_age_ms = 2;
    o.backoff_initial_ms = 5;
    if (bs_sink_create(r->loop, r->sp, &o, ops, impl, &r->sink) != BS_OK) {
        ops->destroy(impl);
        return false;
    }
    return true;
}

static void rig_close(rig *r)
{
    bs_sink_destroy(r->sink);
    bs_spool_close(r->sp);
    ev_loop_destroy(r->loop);
}

/* Sync and run until the sink has delivered everything (20 s hang guard). */
static bool rig_drain(rig *r)
{
    if (bs_spool_sync(r->sp) != BS_OK) return false;
    ev_tstamp deadline = ev_time() + 20;
    while (!bs_sink_idle(r->sink) && ev_time() < deadline)
        ev_run(r->loop, EVRUN_ONCE);
    return bs_sink_idle(r->sink);
}

/* Append one line of stream s with number n. */
static bs_status put(rig *r, bs_stream s, int n)
{
    char ev[160];
    int len = snprintf(ev, sizeof ev, "{\"stream\":\"%s\",\"n\":%d,\"pad\":\"%0*d\"}",
                       bs_stream_name(s), n, 40, n);
    return bs_spool_append(r->sp, s, ev, (size_t)len, 0, NULL);
}

/* Count occurrences of each n (0..max) of stream s in a buffer of lines; -1 if a line is malformed.
 */
static int tally(const char *buf, size_t len, int *count, int max)
{
    const char *p = buf, *end = buf + len;
    int lines = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return -1;
        int n;
        const char *k = strstr(p, "\"n\":");
        if (!k || k > nl || sscanf(k, "\"n\":%d", &n) != 1 || n < 0 || n > max) return -1;
        count[n]++;
        lines++;
        p = nl + 1;
    }
    return lines;
}

/* Read a gzip file fully with zlib. */
static char *gunzip_file(const char *path, size_t *len)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    int r;
    while ((r = gzread(gz, b + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)r;
        if (n == cap) b = realloc(b, cap *= 2);
    }
    int err = r < 0;
    gzclose(gz);
    if (err) {
        free(b);
        return NULL;
    }
    *len = n;
    return b;
}

/* Tally every file of stream s in dir (plain and .gz); returns files seen or -1. */
static int tally_dir(const char *dir, const char *stream, int *count, int max, int *gz_files)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int files = 0;
    size_t sl = strlen(stream);
    *gz_files = 0;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, stream, sl) != 0 || (e->d_name[sl] != '.' && e->d_name[sl] != '-'))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        size_t len = 0;
        char *b;
        bool gz = strstr(e->d_name, ".gz") != NULL;
        if (strstr(e->d_name, ".tmp")) continue;
        b = gz ? gunzip_file(p, &len) : tu_slurp(p, &len);
        if (!b) {
            files = -1;
            break;
        }
        *gz_files += gz;
        if (tally(b, len, count, max) < 0) files = -1;
        free(b);
        if (files < 0) break;
        files++;
    }
    closedir(d);
    return files;
}

static void test_streams_to_files(void)
{
    char *dir = tu_mkdtemp("fsink");
    rig r;
    bs_file_sink_options fo = {0};
    CHECK(rig_open(&r, dir, &fo, 0));
    for (int i = 1; i <= 90; i++)
        CHECK_EQ(put(&r, (bs_stream)(i % 3), i), BS_OK);
    /* a newline inside an event cannot be one line: dead-lettered */
    CHECK_EQ(bs_spool_append(r.sp, BS_STREAM_LOGS, "{\"n\":1,\n\"x\":2}", 14, 0, NULL), BS_OK);
    CHECK(rig_drain(&r));
    for (int s = 0; s < BS_STREAM_COUNT; s++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s.ndjson", r.out, bs_stream_name((bs_stream)s));
        size_t len;
        char *b = tu_slurp(p, &len);
        CHECK(b != NULL);
        if (!b) continue;
        /* in order, one line per event */
        char *q = b;
        for (int i = 1; i <= 90; i++) {
            if (i % 3 != s) continue;
            char want[32];
            int wl = snprintf(want, sizeof want, "\"n\":%d,", i);
            char *nl = strchr(q, '\n');
            CHECK(nl != NULL);
            if (!nl) break;
            CHECK(memmem(q, (size_t)(nl - q), want, (size_t)wl) != NULL);
            q = nl + 1;
        }
        CHECK_EQ(*q, 0);
        free(b);
    }
    bs_sink_stats st;
    bs_sink_get_stats(r.sink, &st);
    CHECK_EQ(st.delivered, 90);
    CHECK_EQ(st.dead_lettered, 1);
    rig_close(&r);
    tu_rmrf(dir);
    free(dir);
}

static void test_rotation_size_age_gzip(void)
{
    char *dir = tu_mkdtemp("fsink");
    rig r;
    bs_file_sink_options fo = {.rotate_bytes = 1000, .rotate_age_s = UINT32_MAX, .gzip = true};
    CHECK(rig_open(&r, dir, &fo, 8));
    int n = 0;
    /* 8 events of 74 bytes per round: the file passes 1000 bytes every 2 rounds */
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 8; i++)
            CHECK_EQ(put(&r, BS_STREAM_LOGS, ++n), BS_OK);
        CHECK(rig_drain(&r));
    }
    int count[200] = {0}, gz;
    int files = tally_dir(r.out, "logs", count, 199, &gz);
    CHECK_EQ(files, 5);
    CHECK_EQ(gz, 4);
    CHECK_EQ(gz, files - 1); /* every rotated file compressed, the current one plain */
    for (int i = 1; i <= n; i++)
        CHECK_EQ(count[i], 1);
    /* age: a file older than rotate_age_s is rotated at the next batch (its
     * creation time survives the restart through the intent record) */
    rig_close(&r);
    fo.rotate_age_s = 1;
    CHECK(rig_open(&r, dir, &fo, 8));
    int before = gz;
    struct timespec ts = {1, 200000000};
    nanosleep(&ts, NULL);
    CHECK_EQ(put(&r, BS_STREAM_LOGS, ++n), BS_OK);
    CHECK(rig_drain(&r));
    memset(count, 0, sizeof count);
    files = tally_dir(r.out, "logs", count, 199, &gz);
    CHECK_EQ(gz, before + 1);
    for (int i = 1; i <= n; i++)
        CHECK_EQ(count[i], 1);
    rig_close(&r);
    tu_rmrf(dir);
    free(dir);
}

/* Child: spool + file sink, append and deliver forever. */
static void crash_child(const char *dir)
{
    rig r;
    bs_file_sink_options fo = {.rotate_bytes = 20000};
    if (!rig_open(&r, dir, &fo, 16)) _exit(2);
    int n = (int)bs_spool_next_seq(r.sp);
    for (;;) {
        for (int i = 0; i < 5; i++)
            if (put(&r, BS_STREAM_AUDIT, n++) != BS_OK) _exit(3);
        ev_run(r.loop, EVRUN_NOWAIT);
    }
}

static void test_kill9_exactly_once_in_files(void)
{
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    char *dir = tu_mkdtemp("fsink");
    for (int round = 0; round < 4; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* never outlive the test, even if it crashes */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            crash_child(dir);
        }
        struct timespec ts = {0, (long)(30 + rand() % 250) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
    }
    /* restart and drain: the file holds each appended event exactly once */
    rig r;
    bs_file_sink_options fo = {.rotate_bytes = 20000};
    CHECK(rig_open(&r, dir, &fo, 16));
    CHECK(rig_drain(&r));
    int total = (int)bs_spool_next_seq(r.sp) - 1;
    CHECK(total > 0);
    static int count[2000000];
    memset(count, 0, sizeof count);
    int gz;
    CHECK(total < 2000000);
    CHECK(tally_dir(r.out, "audit", count, 1999999, &gz) >= 1);
    for (int i = 1; i <= total; i++)
        if (count[i] != 1) {
            fprintf(stderr, "  event %d appears %d times (of %d)\n", i, count[i], total);
            CHECK_EQ(count[i], 1);
            break;
        }
    rig_close(&r);
    tu_rmrf(dir);
    free(dir);
}

static void test_bad_options(void)
{
    const bs_sink_ops *ops;
    void *impl;
    bs_file_sink_options fo = {0};
    CHECK_EQ(bs_file_sink_new(&fo, &ops, &impl), BS_E_CONFIG);
    char *dir = tu_mkdtemp("fsink");
    char p[512];
    snprintf(p, sizeof p, "%s/afile", dir);
    FILE *f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/afile/sub", dir);
    fo.dir = p;
    CHECK_EQ(bs_file_sink_new(&fo, &ops, &impl), BS_E_IO);
    tu_rmrf(dir);
    free(dir);
}

/* Two writers on one output directory are refused: the second gets
 * BS_E_BUSY and opens none of the stream files; after the first is gone
 * the directory is free again. */
static void test_second_writer_refused(void)
{
    char *dir = tu_mkdtemp("fsink");
    char out[512];
    snprintf(out, sizeof out, "%s/out", dir);
    const bs_sink_ops *ops, *ops2;
    void *impl = NULL, *impl2 = NULL;
    bs_file_sink_options fo = {.dir = out};
    CHECK_EQ(bs_file_sink_new(&fo, &ops, &impl), BS_OK);
    CHECK_EQ(bs_file_sink_new(&fo, &ops2, &impl2), BS_E_BUSY);
    CHECK(impl2 == NULL);
    if (impl) ops->destroy(impl);
    CHECK_EQ(bs_file_sink_new(&fo, &ops2, &impl2), BS_OK);
    if (impl2) ops2->destroy(impl2);
    tu_rmrf(dir);
    free(dir);
}

static void test_unwritable_dir_retries(void)
{
    /* the output directory vanishes: deliveries fail retryably, nothing is acked;
     * once it is back, everything arrives */
    char *dir = tu_mkdtemp("fsink");
    rig r;
    bs_file_sink_options fo = {0};
    CHECK(rig_open(&r, dir, &fo, 0));
    char lock[600];
    snprintf(lock, sizeof lock, "%s/.lock", r.out);
    CHECK_EQ(unlink(lock), 0); /* the sink's lock file; the directory is otherwise empty */
    CHECK_EQ(rmdir(r.out), 0);
    for (int i = 1; i <= 10; i++)
        CHECK_EQ(put(&r, BS_STREAM_METRICS, i), BS_OK);
    CHECK_EQ(bs_spool_sync(r.sp), BS_OK);
    bs_sink_stats st;
    ev_tstamp deadline = ev_time() + 10;
    do {
        ev_run(r.loop, EVRUN_ONCE);
        bs_sink_get_stats(r.sink, &st);
    } while (st.retried < 20 && ev_time() < deadline);
    CHECK(st.retried >= 20);
    CHECK_EQ(st.delivered, 0);
    CHECK_EQ(mkdir(r.out, 0750), 0);
    CHECK(rig_drain(&r));
    bs_sink_get_stats(r.sink, &st);
    CHECK_EQ(st.delivered, 10);
    CHECK_EQ(st.dead_lettered, 0);
    rig_close(&r);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    RUN(test_streams_to_files);
    RUN(test_rotation_size_age_gzip);
    RUN(test_kill9_exactly_once_in_files);
    RUN(test_unwritable_dir_retries);
    RUN(test_bad_options);
    RUN(test_second_writer_refused);
    return test_report();
}
