/* Unit tests for src/events/spool.c: real segment files in temp directories. */
#include "brokerside/spool.h"
#include "brokerside/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "spool_testutil.h"
#include "test.h"

/* Deterministic payload for seq: "ev-<seq>-" followed by seq%97 filler bytes. */
static size_t payload_for(uint64_t seq, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "{\"ev\":%" PRIu64 ",\"pad\":\"", seq);
    size_t pad = seq % 97;
    for (size_t i = 0; i < pad && (size_t)n + 3 < outlen; i++)
        out[n++] = (char)('a' + (seq + i) % 26);
    out[n++] = '"';
    out[n++] = '}';
    return (size_t)n;
}

/* Open a spool with small segments in dir. */
static bs_spool *open_small(const char *dir, uint64_t seg)
{
    bs_spool_options o;
    bs_spool_options_default(&o);
    o.dir = dir;
    o.segment_bytes = seg;
    bs_spool *sp = NULL;
    if (bs_spool_open(&o, &sp) != BS_OK) return NULL;
    return sp;
}

/* Path of the active (highest) segment in dir. */
static void last_segment(const char *dir, char *out, size_t outlen)
{
    DIR *d = opendir(dir);
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".seg") && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    snprintf(out, outlen, "%s/%.200s", dir, best);
}

static void test_append_read_ack_delete(void)
{
    char *dir = tu_mkdtemp("spool");
    bs_spool *sp = open_small(dir, 4096);
    CHECK(sp != NULL);
    if (!sp) return;
    bs_spool_reader *logs, *audit;
    CHECK_EQ(bs_spool_reader_open(sp, "s1", BS_STREAM_LOGS, &logs), BS_OK);
    CHECK_EQ(bs_spool_reader_open(sp, "s1", BS_STREAM_AUDIT, &audit), BS_OK);
    char buf[256];
    for (uint64_t i = 1; i <= 300; i++) {
        size_t n = payload_for(i, buf, sizeof buf);
        uint64_t seq;
        CHECK_EQ(
            bs_spool_append(sp, i % 3 == 0 ? BS_STREAM_AUDIT : BS_STREAM_LOGS, buf, n, 0, &seq),
            BS_OK);
        CHECK_EQ(seq, i);
    }
    bs_spool_stats st;
    bs_spool_get_stats(sp, &st);
    CHECK(st.segments > 5);
    bs_spool_record rec;
    CHECK_EQ(bs_spool_sync(sp), BS_OK);
    uint64_t expect = 1, nlogs = 0;
    bs_spool_pos last = {0};
    while (bs_spool_read(logs, &rec) == BS_OK) {
        if (expect % 3 == 0) expect++;
        CHECK_EQ(rec.seq, expect);
        size_t n = payload_for(rec.seq, buf, sizeof buf);
        CHECK_EQ(rec.len, n);
        CHECK_MEM(rec.payload, buf, n);
        CHECK_EQ(rec.stream, BS_STREAM_LOGS);
        expect++;
        nlogs++;
        last = rec.end;
    }
    CHECK_EQ(nlogs, 200);
    int segs_before = tu_count_suffix(dir, ".seg");
    CHECK_EQ(bs_spool_ack(logs, last), BS_OK);
    /* the audit reader has acknowledged nothing: every segment stays */
    CHECK_EQ(tu_count_suffix(dir, ".seg"), segs_before);
    uint64_t bytes_before = bs_spool_bytes(sp);
    CHECK(bs_spool_reader_lag_bytes(audit) == bytes_before);
    uint64_t naudit = 0;
    while (bs_spool_read(audit, &rec) == BS_OK) {
        CHECK_EQ(rec.seq % 3, 0);
        naudit++;
        last = rec.end;
    }
    CHECK_EQ(naudit, 100);
    CHECK_EQ(bs_spool_ack(audit, last), BS_OK);
    /* both passed everything: only the active segment remains */
    CHECK_EQ(tu_count_suffix(dir, ".seg"), 1);
    CHECK(bs_spool_bytes(sp) < bytes_before);
    CHECK_EQ(bs_spool_reader_lag_bytes(audit), 0);
    /* an unregistered reader cannot ack */
    bs_spool_reader *tmp;
    CHECK_EQ(bs_spool_reader_open_at(sp, BS_STREAM_LOGS, 1, &tmp), BS_OK);
    CHECK_EQ(bs_spool_ack(tmp, last), BS_E_STATE);
    bs_spool_reader_close(tmp);
    bs_spool_reader_close(logs);
    bs_spool_reader_close(audit);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

static void test_reopen_resumes(void)
{
    char *dir = tu_mkdtemp("spool");
    bs_spool *sp = open_small(dir, 8192);
    char buf[256];
    bs_spool_reader *r;
    CHECK_EQ(bs_spool_reader_open(sp, "s", BS_STREAM_METRICS, &r), BS_OK);
    bs_spool_record rec;
    CHECK_EQ(bs_spool_read(r, &rec), BS_E_AGAIN);
    for (uint64_t i = 1; i <= 100; i++) {
        size_t n = payload_for(i, buf, sizeof buf);
        CHECK_EQ(bs_spool_append(sp, BS_STREAM_METRICS, buf, n, 0, NULL), BS_OK);
        /* not synced yet: readers see nothing of the active segment */
        if (i == 1) CHECK_EQ(bs_spool_read(r, &rec), BS_E_AGAIN);
    }
    CHECK_EQ(bs_spool_sync(sp), BS_OK);
    for (int i = 0; i < 40; i++)
        CHECK_EQ(bs_spool_read(r, &rec), BS_OK);
    CHECK_EQ(rec.seq, 40);
    CHECK_EQ(bs_spool_ack(r, rec.end), BS_OK);
    /* read further without acking: after reopen these come again */
    for (int i = 0; i < 10; i++)
        CHECK_EQ(bs_spool_read(r, &rec), BS_OK);
    char id[40];
    snprintf(id, sizeof id, "%s", bs_spool_id(sp));
    bs_spool_reader_close(r);
    bs_spool_close(sp);

    sp = open_small(dir, 8192);
    CHECK(sp != NULL);
    CHECK_STR(bs_spool_id(sp), id);
    CHECK_EQ(bs_spool_next_seq(sp), 101);
    CHECK_EQ(bs_spool_reader_open(sp, "s", BS_STREAM_METRICS, &r), BS_OK);
    CHECK_EQ(bs_spool_read(r, &rec), BS_OK);
    CHECK_EQ(rec.seq, 41);
    uint64_t seq;
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_METRICS, "x", 1, BS_SPOOL_FSYNC, &seq), BS_OK);
    CHECK_EQ(seq, 101);
    int n = 1;
    while (bs_spool_read(r, &rec) == BS_OK)
        n++;
    CHECK_EQ(n, 61);
    CHECK_EQ(rec.seq, 101);
    char eid[80];
    bs_spool_event_id(sp, 101, eid, sizeof eid);
    CHECK(strncmp(eid, id, 32) == 0 && strcmp(eid + 32, "-101") == 0);
    bs_spool_reader_close(r);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

/* Append n records of logs to a fresh spool in dir, close it. */
static void fill(const char *dir, int n)
{
    bs_spool *sp = open_small(dir, 1 << 20);
    char buf[256];
    for (int i = 1; i <= n; i++) {
        size_t len = payload_for((uint64_t)i, buf, sizeof buf);
        CHECK_EQ(bs_spool_append(sp, BS_STREAM_LOGS, buf, len, 0, NULL), BS_OK);
    }
    bs_spool_close(sp);
}

/* Read all logs records with an unregistered reader; returns count, checks payloads. */
static int read_all_check(bs_spool *sp, uint64_t *last_seq)
{
    bs_spool_reader *r;
    bs_spool_record rec;
    int n = 0;
    char buf[256];
    *last_seq = 0;
    if (bs_spool_reader_open_at(sp, BS_STREAM_LOGS, 0, &r) != BS_OK) return -1;
    while (bs_spool_read(r, &rec) == BS_OK) {
        size_t len = payload_for(rec.seq, buf, sizeof buf);
        CHECK_EQ(rec.len, len);
        if (rec.len == len) CHECK_MEM(rec.payload, buf, len);
        CHECK(rec.seq > *last_seq);
        *last_seq = rec.seq;
        n++;
    }
    bs_spool_reader_close(r);
    return n;
}

static void test_torn_tail_truncated(void)
{
    char *dir = tu_mkdtemp("spool");
    fill(dir, 10);
    char seg[512];
    last_segment(dir, seg, sizeof seg);
    struct stat sb;
    stat(seg, &sb);
    /* cut in the middle of the last record */
    CHECK_EQ(truncate(seg, sb.st_size - 5), 0);
    bs_spool *sp = open_small(dir, 1 << 20);
    CHECK(sp != NULL);
    bs_spool_stats st;
    bs_spool_get_stats(sp, &st);
    CHECK(st.truncated_bytes > 0);
    CHECK_EQ(bs_spool_next_seq(sp), 10);
    uint64_t last;
    CHECK_EQ(read_all_check(sp, &last), 9);
    CHECK_EQ(last, 9);
    /* appends continue cleanly after the cut */
    char buf[256];
    size_t n = payload_for(10, buf, sizeof buf);
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_LOGS, buf, n, BS_SPOOL_FSYNC, NULL), BS_OK);
    CHECK_EQ(read_all_check(sp, &last), 10);
    bs_spool_close(sp);

    /* garbage appended after valid records */
    int fd = open(seg, O_WRONLY | O_APPEND);
    const char junk[] = "\x42\x53\x52\x31garbage-that-is-not-a-record-at-all";
    CHECK(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    sp = open_small(dir, 1 << 20);
    CHECK(sp != NULL);
    bs_spool_get_stats(sp, &st);
    CHECK_EQ(st.truncated_bytes, sizeof junk);
    CHECK_EQ(read_all_check(sp, &last), 10);
    stat(seg, &sb);
    bs_spool_close(sp);
    struct stat sb2;
    stat(seg, &sb2);
    CHECK_EQ(sb.st_size, sb2.st_size);
    tu_rmrf(dir);
    free(dir);
}

/* A second process on a live spool is refused before it touches anything:
 * the torn tail the owner has not cut yet (the owner's next append would
 * have written there) stays, no segment or id is created, and the refusal
 * is BS_E_BUSY. Once the owner closes, the spool opens normally. */
static void test_second_process_refused(void)
{
    char *dir = tu_mkdtemp("spool");
    bs_spool *sp = open_small(dir, 1 << 20);
    CHECK(sp != NULL);
    if (!sp) return;
    char buf[256];
    for (uint64_t s = 1; s <= 3; s++) {
        size_t n = payload_for(s, buf, sizeof buf);
        CHECK_EQ(bs_spool_append(sp, BS_STREAM_AUDIT, buf, n, BS_SPOOL_FSYNC, NULL), BS_OK);
    }
    char seg[512];
    last_segment(dir, seg, sizeof seg);
    int fd = open(seg, O_WRONLY | O_APPEND);
    CHECK(write(fd, "BSR1torn", 8) == 8);
    close(fd);
    struct stat before, after;
    CHECK_EQ(stat(seg, &before), 0);
    pid_t pid = fork();
    if (pid == 0) {
        bs_spool_options o;
        bs_spool_options_default(&o);
        o.dir = dir;
        bs_spool *other = NULL;
        _exit(bs_spool_open(&o, &other) == BS_E_BUSY && other == NULL ? 0 : 1);
    }
    int ws = 0;
    CHECK_EQ(waitpid(pid, &ws, 0), pid);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    CHECK_EQ(stat(seg, &after), 0);
    CHECK_EQ(after.st_size, before.st_size); /* the torn tail was not cut by the loser */
    /* the same holds for a second open inside this process */
    bs_spool_options o;
    bs_spool_options_default(&o);
    o.dir = dir;
    bs_spool *again = NULL;
    CHECK_EQ(bs_spool_open(&o, &again), BS_E_BUSY);
    CHECK_EQ(bs_spool_next_seq(sp), 4);
    bs_spool_close(sp);
    /* the owner is gone: the next one recovers (cuts the torn tail) */
    sp = open_small(dir, 1 << 20);
    CHECK(sp != NULL);
    if (sp) {
        bs_spool_stats st;
        bs_spool_get_stats(sp, &st);
        CHECK_EQ(st.truncated_bytes, 8);
        bs_spool_close(sp);
    }
    tu_rmrf(dir);
    free(dir);
}

static void test_middle_corruption_skipped(void)
{
    char *dir = tu_mkdtemp("spool");
    fill(dir, 10);
    char seg[512];
    last_segment(dir, seg, sizeof seg);
    /* flip one payload byte of record 5: find its offset by walking headers */
    size_t len;
    char *all = tu_slurp(seg, &len);
    size_t off = 0;
    for (int i = 1; i < 5; i++) {
        uint32_t l = (uint32_t)(uint8_t)all[off + 4] << 24 | (uint32_t)(uint8_t)all[off + 5] << 16 |
                     (uint32_t)(uint8_t)all[off + 6] << 8 | (uint8_t)all[off + 7];
        off += 24 + l;
    }
    free(all);
    int fd = open(seg, O_WRONLY);
    CHECK(pwrite(fd, "#", 1, (off_t)off + 30) == 1);
    close(fd);
    bs_spool *sp = open_small(dir, 1 << 20);
    CHECK(sp != NULL);
    bs_spool_stats st;
    bs_spool_get_stats(sp, &st);
    CHECK_EQ(st.truncated_bytes, 0);
    CHECK_EQ(st.corrupt_records, 1);
    CHECK_EQ(bs_spool_next_seq(sp), 11);
    uint64_t last;
    CHECK_EQ(read_all_check(sp, &last), 9);
    CHECK_EQ(last, 10);
    bs_spool_get_stats(sp, &st);
    CHECK_EQ(st.corrupt_records, 2); /* the reader skipped it too */
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

/* Child: append forever, report the last fsynced seq on `wfd` every 37 appends. */
static void crash_child(const char *dir, int wfd)
{
    bs_spool *sp = open_small(dir, 64 * 1024);
    if (!sp) _exit(2);
    char buf[256];
    for (;;) {
        uint64_t seq = bs_spool_next_seq(sp);
        size_t n = payload_for(seq, buf, sizeof buf);
        if (bs_spool_append(sp, BS_STREAM_LOGS, buf, n, 0, &seq) != BS_OK) _exit(3);
        if (seq % 37 == 0) {
            if (bs_spool_sync(sp) != BS_OK) _exit(4);
            if (write(wfd, &seq, sizeof seq) != sizeof seq) _exit(5);
        }
    }
}

static void test_crash_kill9(void)
{
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int round = 0; round < 3; round++) {
        char *dir = tu_mkdtemp("spool");
        int p[2];
        CHECK_EQ(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
            /* never outlive the test, even if it crashes */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            close(p[0]);
            crash_child(dir, p[1]);
        }
        close(p[1]);
        int target = 20 + rand() % 200, got = 0;
        uint64_t acked = 0, v;
        while (got < target && read(p[0], &v, sizeof v) == sizeof v) {
            acked = v;
            got++;
        }
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        close(p[0]);
        CHECK(WIFSIGNALED(status));
        CHECK(acked > 0);
        bs_spool *sp = open_small(dir, 64 * 1024);
        CHECK(sp != NULL);
        if (sp) {
            uint64_t last;
            int n = read_all_check(sp, &last);
            /* every record is there, contiguous from 1, at least up to the last synced one */
            CHECK_EQ((uint64_t)n, last);
            CHECK(last >= acked);
            CHECK_EQ(bs_spool_next_seq(sp), last + 1);
            bs_spool_stats st;
            bs_spool_get_stats(sp, &st);
            CHECK_EQ(st.corrupt_records, 0);
            bs_spool_close(sp);
        }
        tu_rmrf(dir);
        free(dir);
    }
}

static void test_max_bytes_policy(void)
{
    char *dir = tu_mkdtemp("spool");
    bs_spool_options o;
    bs_spool_options_default(&o);
    o.dir = dir;
    o.segment_bytes = 8192;
    o.max_bytes = 100000;
    o.logs_limit_pct = 80;
    o.audit_reserve_bytes = 10000;
    bs_spool *sp;
    CHECK_EQ(bs_spool_open(&o, &sp), BS_OK);
    bs_spool_reader *r;
    CHECK_EQ(bs_spool_reader_open(sp, "only", BS_STREAM_LOGS, &r), BS_OK);
    char ev[100];
    memset(ev, 'x', sizeof ev);
    bs_status st;
    while ((st = bs_spool_append(sp, BS_STREAM_LOGS, ev, sizeof ev, 0, NULL)) == BS_OK) {
    }
    CHECK_EQ(st, BS_E_FULL);
    CHECK(bs_spool_bytes(sp) <= 80000 && bs_spool_bytes(sp) > 80000 - 124);
    /* metrics still fit until max_bytes */
    while ((st = bs_spool_append(sp, BS_STREAM_METRICS, ev, sizeof ev, 0, NULL)) == BS_OK) {
    }
    CHECK_EQ(st, BS_E_FULL);
    CHECK(bs_spool_bytes(sp) <= 100000 && bs_spool_bytes(sp) > 100000 - 124);
    /* the gauges an alert divides: bytes on disk against the configured limit */
    CHECK_EQ(bs_metric_value(bs_metrics_gauge("brokerside_spool_max_bytes", "x", NULL)), 100000);
    CHECK_EQ(bs_metric_value(bs_metrics_gauge("brokerside_spool_bytes", "x", NULL)),
             (int64_t)bs_spool_bytes(sp));
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_LOGS, ev, sizeof ev, 0, NULL), BS_E_FULL);
    /* audit goes into the reserve, then fails loudly */
    int audit_ok = 0;
    while ((st = bs_spool_append(sp, BS_STREAM_AUDIT, ev, sizeof ev, 0, NULL)) == BS_OK)
        audit_ok++;
    CHECK_EQ(st, BS_E_FULL);
    CHECK(audit_ok >= 10000 / 124 - 1);
    CHECK(bs_spool_bytes(sp) <= 110000);
    bs_spool_stats s;
    bs_spool_get_stats(sp, &s);
    CHECK_EQ(s.rejected[BS_STREAM_LOGS], 2);
    CHECK_EQ(s.rejected[BS_STREAM_METRICS], 1);
    CHECK_EQ(s.rejected[BS_STREAM_AUDIT], 1);
    /* the one sink acknowledges everything: space comes back, logs are admitted again */
    CHECK_EQ(bs_spool_sync(sp), BS_OK);
    bs_spool_record rec;
    bs_spool_pos last = {0};
    while (bs_spool_read(r, &rec) == BS_OK)
        last = rec.end;
    /* the logs reader walks past metrics and audit records as well */
    while (bs_spool_read(r, &rec) == BS_OK) {
    }
    CHECK(last.seg != 0);
    CHECK_EQ(bs_spool_ack(r, last), BS_OK);
    CHECK(bs_spool_bytes(sp) < 80000);
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_LOGS, ev, sizeof ev, 0, NULL), BS_OK);
    bs_spool_reader_close(r);
    bs_spool_close(sp);
    tu_rmrf(dir);
    free(dir);
}

/* Child body: append audit events until the file-size limit (EFBIG) refuses one. */
static int enospc_child(const char *dir)
{
    struct rlimit rl = {48 * 1024, 48 * 1024};
    signal(SIGXFSZ, SIG_IGN);
    bs_spool *sp = open_small(dir, 1 << 20);
    if (!sp) return 10;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 11;
    char buf[256];
    int ok = 0;
    bs_status st;
    for (;;) {
        uint64_t seq = bs_spool_next_seq(sp);
        size_t n = payload_for(seq, buf, sizeof buf);
        /* write the same payloads as the logs helpers, on the logs stream */
        st = bs_spool_append(sp, BS_STREAM_LOGS, buf, n, 0, NULL);
        if (st != BS_OK) break;
        ok++;
    }
    if (st != BS_E_FULL) return 12;
    bs_spool_stats s;
    bs_spool_get_stats(sp, &s);
    if (s.rejected[BS_STREAM_LOGS] != 1) return 13;
    /* a refused audit event is also BS_E_FULL (and logged) */
    if (bs_spool_append(sp, BS_STREAM_AUDIT, buf, 200, 0, NULL) != BS_E_FULL) return 14;
    bs_spool_close(sp);
    sp = open_small(dir, 1 << 20);
    if (!sp) return 15;
    uint64_t last;
    int n = read_all_check(sp, &last);
    bs_spool_get_stats(sp, &s);
    bs_spool_close(sp);
    if (n != ok || s.truncated_bytes != 0) return 16;
    return test_failures_in_current ? 17 : 0;
}

static void test_disk_full_efbig(void)
{
    char *dir = tu_mkdtemp("spool");
    pid_t pid = fork();
    if (pid == 0) _exit(enospc_child(dir));
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    tu_rmrf(dir);
    free(dir);
}

static void test_bad_input(void)
{
    bs_spool_options o;
    bs_spool_options_default(&o);
    bs_spool *sp = NULL;
    CHECK_EQ(bs_spool_open(&o, &sp), BS_E_CONFIG); /* no dir */
    char *dir = tu_mkdtemp("spool");
    o.dir = dir;
    o.logs_limit_pct = 150;
    CHECK_EQ(bs_spool_open(&o, &sp), BS_E_CONFIG);
    o.logs_limit_pct = 0;
    o.max_record_bytes = 1000;
    CHECK_EQ(bs_spool_open(&o, &sp), BS_OK);
    char big[1001] = {0};
    CHECK_EQ(bs_spool_append(sp, BS_STREAM_LOGS, big, sizeof big, 0, NULL), BS_E_TOO_LARGE);
    CHECK_EQ(bs_spool_append(sp, (bs_stream)7, big, 1, 0, NULL), BS_E_STATE);
    bs_spool_reader *r, *r2;
    CHECK_EQ(bs_spool_reader_open(sp, "bad/name", BS_STREAM_LOGS, &r), BS_E_CONFIG);
    CHECK_EQ(bs_spool_reader_open(sp, "", BS_STREAM_LOGS, &r), BS_E_CONFIG);
    CHECK_EQ(bs_spool_reader_open(sp, "ok", BS_STREAM_LOGS, &r), BS_OK);
    CHECK_EQ(bs_spool_reader_open(sp, "ok", BS_STREAM_LOGS, &r2), BS_E_STATE);
    bs_spool_reader_close(r);
    bs_spool_close(sp);
    /* a damaged cursor file is an error, not a silent restart from zero */
    char p[512];
    snprintf(p, sizeof p, "%s/cursors/ok.logs.cur", dir);
    FILE *f = fopen(p, "w");
    fputs("nonsense\n", f);
    fclose(f);
    CHECK_EQ(bs_spool_open(&o, &sp), BS_OK);
    CHECK_EQ(bs_spool_reader_open(sp, "ok", BS_STREAM_LOGS, &r), BS_E_MALFORMED);
    bs_spool_close(sp);
    /* a damaged spool id refuses to open */
    snprintf(p, sizeof p, "%s/spool.id", dir);
    f = fopen(p, "w");
    fputs("zz\n", f);
    fclose(f);
    CHECK_EQ(bs_spool_open(&o, &sp), BS_E_MALFORMED);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    RUN(test_append_read_ack_delete);
    RUN(test_reopen_resumes);
    RUN(test_torn_tail_truncated);
    RUN(test_second_process_refused);
    RUN(test_middle_corruption_skipped);
    RUN(test_crash_kill9);
    RUN(test_max_bytes_policy);
    RUN(test_disk_full_efbig);
    RUN(test_bad_input);
    return test_report();
}
