/*
 * test_daemon.c - the brokerside executable as a child process: CLI exit
 * codes, --check-config, SIGTERM drain and exit 0, the immediate second
 * SIGTERM, SIGHUP with a new certificate (new connections see it, an open
 * connection keeps working) and with a broken config (refused, still
 * serving). Every child is killed on the way out, even on failure.
 */
#include <libgen.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "net_test_util.h"
#include "test.h"

#define BS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char g_bin[1024];
static char g_dir[256];
static pid_t g_children[16];
static size_t g_n_children;

/* SIGKILL and reap every daemon still running (atexit and end of run). */
static void kill_children(void)
{
    for (size_t i = 0; i < g_n_children; i++) {
        if (g_children[i] > 0) {
            kill(g_children[i], SIGKILL);
            waitpid(g_children[i], NULL, 0);
            g_children[i] = 0;
        }
    }
}

/* Run the binary with args, stdout/stderr into files; returns the exit
 * status (-1 if it did not exit normally). */
static int run_cli(const char *const *args, const char *out_path, const char *err_path)
{
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        const char *argv[8] = {g_bin};
        for (int i = 0; args[i] && i < 6; i++)
            argv[i + 1] = args[i];
        execv(g_bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A file's contents (at most 1 MiB), "" if missing; caller frees. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* True if the file contains `needle`. */
static bool file_contains(const char *path, const char *needle)
{
    char *s = slurp(path);
    bool found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

/* Start the daemon on `cfg` with stderr into `log`, at most `max_fds`
 * descriptors (0 = inherit the limit). */
static pid_t start_daemon_limited(const char *cfg, const char *log, unsigned max_fds)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* Die with the test, whatever kills it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int e = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(e, 2);
        close(e);
        if (max_fds) {
            /* Close what the test process holds so the limit is what counts. */
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
            struct rlimit rl = {max_fds, max_fds};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        execl(g_bin, g_bin, "--config", cfg, (char *)NULL);
        _exit(127);
    }
    if (g_n_children < BS_ARRAY_LEN(g_children)) g_children[g_n_children++] = pid;
    return pid;
}

/* Start the daemon on `cfg` with stderr into `log`. */
static pid_t start_daemon(const char *cfg, const char *log)
{
    return start_daemon_limited(cfg, log, 0);
}

/* Wait for the child to exit (hang guard); its exit status or -1. */
static int wait_exit(pid_t pid)
{
    int st = 0;
    bool gone = WAIT_UNTIL(waitpid(pid, &st, WNOHANG) == pid);
    for (size_t i = 0; i < g_n_children; i++)
        if (g_children[i] == pid && gone) g_children[i] = 0;
    if (!gone) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Connect to port until it accepts (the daemon is starting). */
static bool wait_listening(int port)
{
    int fd = -1;
    bool ok = WAIT_UNTIL((fd = nt_connect(port)) >= 0);
    if (fd >= 0) close(fd);
    return ok;
}

/* One 4-byte round trip through an echo upstream. */
static bool echo_ok(int fd)
{
    char in[4];
    return nt_write_all(fd, "ping", 4) && recv(fd, in, 4, MSG_WAITALL) == 4 &&
           memcmp(in, "ping", 4) == 0;
}

/* ------------------------------------------------------------ CLI */

static void test_cli(void)
{
    char out[400], err[400], good[400], broken[400], badcert[400], garbage[400], missing[400];
    snprintf(out, sizeof out, "%s/out.txt", g_dir);
    snprintf(err, sizeof err, "%s/err.txt", g_dir);
    snprintf(good, sizeof good, "%s/good.json", g_dir);
    snprintf(broken, sizeof broken, "%s/broken.json", g_dir);
    snprintf(badcert, sizeof badcert, "%s/badcert.json", g_dir);
    snprintf(garbage, sizeof garbage, "%s/garbage.pem", g_dir);
    snprintf(missing, sizeof missing, "%s/does-not-exist.json", g_dir);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"listeners\":[{\"name\":\"c\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:"
             "9\",\"tls\":{\"cert\":"
             "\"%s/server.crt\",\"key\":\"%s/server.key\"}}], \"limits\": {\"max_connections\": 100}}",
             nt_free_port(), g_dir, g_dir);
    nt_write_file(good, json);
    nt_write_file(broken,
                  "{\"listeners\": [ {\"name\": \"x\", \"bind\": 12 } ], \"nonsense\": true");
    nt_write_file(garbage,
                  "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    snprintf(json, sizeof json,
             "{\"listeners\":[{\"name\":\"c\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:"
             "9\",\"tls\":{\"cert\":"
             "\"%s\",\"key\":\"%s/server.key\"}}]}",
             nt_free_port(), garbage, g_dir);
    nt_write_file(badcert, json);

    CHECK_EQ(run_cli((const char *[]){"--help", NULL}, out, err), 0);
    CHECK(file_contains(out, "Usage: brokerside"));
    CHECK_EQ(run_cli((const char *[]){"--version", NULL}, out, err), 0);
    CHECK(file_contains(out, "brokerside "));
    CHECK_EQ(run_cli((const char *[]){NULL}, out, err), 2);
    CHECK(file_contains(err, "Usage: brokerside"));
    CHECK_EQ(run_cli((const char *[]){"--frobnicate", NULL}, out, err), 2);
    CHECK(file_contains(err, "Usage: brokerside"));
    CHECK_EQ(run_cli((const char *[]){"--config", NULL}, out, err), 2);

    CHECK_EQ(run_cli((const char *[]){"--check-config", good, NULL}, out, err), 0);
    char ok_line[500];
    snprintf(ok_line, sizeof ok_line, "%s: OK", good);
    CHECK(file_contains(out, ok_line));
    CHECK_EQ(run_cli((const char *[]){"--check-config", broken, NULL}, out, err), 1);
    CHECK(file_contains(err, broken));
    CHECK_EQ(run_cli((const char *[]){"--check-config", missing, NULL}, out, err), 1);
    CHECK(file_contains(err, missing));
    /* The config parses, but the certificate does not: TLS contexts are built too. */
    CHECK_EQ(run_cli((const char *[]){"--check-config", badcert, NULL}, out, err), 1);
    CHECK(file_contains(err, "listeners[0].tls"));
    CHECK(!file_contains(out, "OK"));
    /* Running with a broken config fails at once with status 1. */
    CHECK_EQ(run_cli((const char *[]){"--config", broken, NULL}, out, err), 1);

    /* Warnings: printed, exit 0; --strict makes them errors (exit 1). `good` has no
     * encryption section; `wild` is the new user's kafka listener on a wildcard bind
     * with no kafka.advertise (clients would be cut at the first Metadata response). */
    CHECK_EQ(run_cli((const char *[]){"--check-config", good, NULL}, out, err), 0);
    CHECK(file_contains(err, "warning: ") && file_contains(err, "encryption at rest is OFF"));
    snprintf(ok_line, sizeof ok_line, "%s: OK with 1 warning", good);
    CHECK(file_contains(out, ok_line));
    CHECK_EQ(run_cli((const char *[]){"--check-config", "--strict", good, NULL}, out, err), 1);
    CHECK(file_contains(err, "error: ") && file_contains(err, "encryption at rest is OFF"));
    CHECK(file_contains(err, "refused: 1 warning (--strict)"));
    CHECK(!file_contains(out, "OK"));
    CHECK_EQ(run_cli((const char *[]){"--check-config", "--strict", missing, NULL}, out, err), 1);
    CHECK_EQ(run_cli((const char *[]){"--check-config", "--strict", NULL}, out, err), 2);
    char wild[400];
    snprintf(wild, sizeof wild, "%s/wild.json", g_dir);
    snprintf(json, sizeof json,
             "{\"listeners\":[{\"name\":\"w\",\"bind\":\"0.0.0.0:%d\",\"upstream\":\"127.0.0.1:"
             "9\",\"tls\":{\"cert\":\"%s/server.crt\",\"key\":\"%s/server.key\"}}]}",
             nt_free_port(), g_dir, g_dir);
    nt_write_file(wild, json);
    CHECK_EQ(run_cli((const char *[]){"--check-config", wild, NULL}, out, err), 0);
    CHECK(file_contains(err, "listeners[0] (w): no address to announce for the broker"));
    CHECK(file_contains(err, "set listeners[0].advertised"));
    CHECK_EQ(run_cli((const char *[]){"--check-config", "--strict", wild, NULL}, out, err), 1);
}

/* ------------------------------------------------------------ signals */

static void test_sigterm_drains_and_exits_0(void)
{
    nt_sink s;
    nt_sink_start(&s, true);
    nt_echo e;
    nt_echo_start(&e);
    /* `t` leads to a one-connection sink; `te` (echo) is what the test uses
     * to see the daemon listening and then refusing. */
    int port = nt_free_port(), eport = nt_free_port();
    char cfg[400], log[400], json[1024];
    snprintf(cfg, sizeof cfg, "%s/term.json", g_dir);
    snprintf(log, sizeof log, "%s/term.log", g_dir);
    snprintf(json, sizeof json,
             "{\"workers\":2,\"admin\":null,\"limits\":{\"shutdown_grace_s\":60},\"listeners\":["
             "{\"name\":\"t\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":"
             "\"tcp\"},"
             "{\"name\":\"te\",\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\","
             "\"protocol\":\"tcp\"}]}",
             port, s.port, eport, e.port);
    nt_write_file(cfg, json);
    pid_t pid = start_daemon(cfg, log);
    CHECK(wait_listening(eport));
    /* The client sent its request and EOF and waits for the answer; the
     * upstream has not read it yet (256 KiB fit in the buffers on the way). */
    int fd = nt_connect(port);
    const size_t total = 256u << 10;
    nt_sender snd;
    nt_sender_start(&snd, fd, total, 99);
    pthread_join(snd.thr, NULL);
    CHECK(snd.ok);
    shutdown(fd, SHUT_WR);
    /* The 256 KiB can sit in kernel buffers before brokerside has even
     * accepted the connection, and a connection still setting up is closed at
     * once on SIGTERM (by design): signal only once bytes reached the upstream. */
    CHECK(WAIT_UNTIL(atomic_load(&s.connected)));
    kill(pid, SIGTERM);
    CHECK(WAIT_UNTIL(file_contains(log, "stopped accepting")));
    int probe = -1;
    CHECK(WAIT_UNTIL((probe = nt_connect(eport)) < 0 || (close(probe), false)));
    /* Well past the drain's quiet period: the exchange is still left to finish. */
    nt_sleep_ms(1500);
    CHECK(waitpid(pid, NULL, WNOHANG) == 0);
    atomic_store(&s.paused, false);
    uint8_t *reply;
    long n = nt_read_to_eof(fd, &reply);
    char want[64];
    snprintf(want, sizeof want, "%llu %llx\n", (unsigned long long)total,
             (unsigned long long)snd.hash);
    CHECK(n > 0 && (size_t)n == strlen(want) && memcmp(reply, want, (size_t)n) == 0);
    free(reply);
    close(fd);
    CHECK_EQ(wait_exit(pid), 0);
    CHECK(file_contains(log, "all connections closed"));
    nt_sink_stop(&s);
    nt_echo_stop(&e);
}

static void test_second_sigterm_is_immediate(void)
{
    nt_sink s;
    nt_sink_start(&s, true);
    int port = nt_free_port();
    char cfg[400], log[400], json[1024];
    snprintf(cfg, sizeof cfg, "%s/term2.json", g_dir);
    snprintf(log, sizeof log, "%s/term2.log", g_dir);
    snprintf(json, sizeof json,
             "{\"workers\":1,\"admin\":null,\"limits\":{\"shutdown_grace_s\":3600},\"listeners\":[{"
             "\"name\":\"t2\","
             "\"bind\":\"127.0.0.1:%d\",\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\"}]}",
             port, s.port);
    nt_write_file(cfg, json);
    pid_t pid = start_daemon(cfg, log);
    CHECK(wait_listening(port));
    int fd = nt_connect(port);
    /* Bytes the paused upstream will not take before the grace period: the
     * first SIGTERM cannot finish the drain on its own. */
    nt_sender snd;
    nt_sender_start(&snd, fd, 64u << 20, 5);
    size_t prev = (size_t)-1, cur = 0;
    WAIT_UNTIL(
        (cur = atomic_load(&snd.sent), nt_sleep_ms(300), cur == prev ? true : (prev = cur, false)));
    /* a stalled sender alone does not prove brokerside opened the connection
     * (kernel buffers fill without it); bytes at the upstream do */
    CHECK(WAIT_UNTIL(atomic_load(&s.connected)));
    kill(pid, SIGTERM);
    CHECK(WAIT_UNTIL(file_contains(log, "stopped accepting")));
    CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still draining */
    kill(pid, SIGTERM);
    CHECK_EQ(wait_exit(pid), 0);
    CHECK(file_contains(log, "closing every connection now"));
    shutdown(fd, SHUT_RDWR);
    pthread_join(snd.thr, NULL);
    close(fd);
    nt_sink_stop(&s);
}

/* Copy a file (certificate rotation). */
static void copy_file(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    CHECK_EQ(nt_sh(cmd), 0);
}

/* Occurrences of `needle` in the file. */
static int count_lines(const char *path, const char *needle)
{
    char *s = slurp(path);
    int n = 0;
    for (char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(s);
    return n;
}

static void test_sighup_reload(void)
{
    nt_echo e;
    nt_echo_start(&e);
    char dir_b[256];
    nt_make_certs(dir_b, sizeof dir_b);
    char live_crt[400], live_key[400], a_crt[400], b_crt[400], tmp[400];
    snprintf(live_crt, sizeof live_crt, "%s/live.crt", g_dir);
    snprintf(live_key, sizeof live_key, "%s/live.key", g_dir);
    snprintf(a_crt, sizeof a_crt, "%s/server.crt", g_dir);
    snprintf(b_crt, sizeof b_crt, "%s/server.crt", dir_b);
    copy_file(a_crt, live_crt);
    snprintf(tmp, sizeof tmp, "%s/server.key", g_dir);
    copy_file(tmp, live_key);

    int port = nt_free_port();
    char cfg[400], log[400], json[1024];
    snprintf(cfg, sizeof cfg, "%s/hup.json", g_dir);
    snprintf(log, sizeof log, "%s/hup.log", g_dir);
    snprintf(
        json, sizeof json,
        "{\"workers\":2,\"admin\":null,\"listeners\":[{\"name\":\"h\",\"bind\":\"127.0.0.1:%d\","
        "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\",\"tls\":{\"cert\":\"%s\",\"key\":\"%"
        "s\"}}]}",
        port, e.port, live_crt, live_key);
    nt_write_file(cfg, json);
    pid_t pid = start_daemon(cfg, log);
    CHECK(wait_listening(port));

    nt_tls old;
    CHECK(nt_tls_connect(&old, port, NULL, NULL, NULL));
    CHECK(nt_peer_cert_is(old.ssl, a_crt));
    uint8_t in[5];
    CHECK(nt_tls_write(&old, "one..", 5) && nt_tls_read_n(&old, in, 5) &&
          memcmp(in, "one..", 5) == 0);

    /* Rotate the certificate on disk and reload. */
    copy_file(b_crt, live_crt);
    snprintf(tmp, sizeof tmp, "%s/server.key", dir_b);
    copy_file(tmp, live_key);
    kill(pid, SIGHUP);
    CHECK(WAIT_UNTIL(file_contains(log, "reload: applied")));
    nt_tls fresh;
    CHECK(nt_tls_connect(&fresh, port, NULL, NULL, NULL));
    CHECK(nt_peer_cert_is(fresh.ssl, b_crt));
    nt_tls_close(&fresh);
    /* The connection opened before the reload is untouched. */
    CHECK(nt_tls_write(&old, "two..", 5) && nt_tls_read_n(&old, in, 5) &&
          memcmp(in, "two..", 5) == 0);

    /* A broken config is refused; the old one keeps serving. */
    nt_write_file(cfg, "{ \"listeners\": [ { \"bind\": \"nonsense\" } ] ");
    kill(pid, SIGHUP);
    CHECK(WAIT_UNTIL(file_contains(log, "reload: refused")));
    CHECK(waitpid(pid, NULL, WNOHANG) == 0);
    CHECK(nt_tls_connect(&fresh, port, NULL, NULL, NULL));
    CHECK(nt_peer_cert_is(fresh.ssl, b_crt));
    CHECK(nt_tls_write(&fresh, "three", 5) && nt_tls_read_n(&fresh, in, 5) &&
          memcmp(in, "three", 5) == 0);
    nt_tls_close(&fresh);

    /* A key that does not match: TLS rebuild fails, nothing changes. */
    nt_write_file(cfg, json);
    copy_file(a_crt, live_crt); /* B's key with A's certificate */
    kill(pid, SIGHUP);
    CHECK(WAIT_UNTIL(count_lines(log, "reload: refused") == 2));
    CHECK(nt_tls_connect(&fresh, port, NULL, NULL, NULL));
    CHECK(nt_peer_cert_is(fresh.ssl, b_crt));
    nt_tls_close(&fresh);

    /* Restart-only settings are reported and ignored. */
    copy_file(b_crt, live_crt);
    int other = nt_free_port();
    snprintf(
        json, sizeof json,
        "{\"workers\":2,\"admin\":null,\"listeners\":[{\"name\":\"h\",\"bind\":\"127.0.0.1:%d\","
        "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\",\"tls\":{\"cert\":\"%s\",\"key\":\"%"
        "s\"}}]}",
        other, e.port, live_crt, live_key);
    nt_write_file(cfg, json);
    kill(pid, SIGHUP);
    CHECK(WAIT_UNTIL(count_lines(log, "reload: applied") == 2));
    CHECK(file_contains(log, "listeners[0].bind changed: requires restart"));
    CHECK(nt_connect(other) < 0);
    CHECK(nt_tls_write(&old, "four.", 5) && nt_tls_read_n(&old, in, 5) &&
          memcmp(in, "four.", 5) == 0);
    nt_tls_close(&old);

    kill(pid, SIGTERM);
    CHECK_EQ(wait_exit(pid), 0);
    nt_echo_stop(&e);
    nt_rm_rf(dir_b);
}

/* Out of descriptors: accepting pauses (no spinning on the readable
 * listening socket) and resumes once descriptors are free again. */
static void test_fd_exhaustion(void)
{
    nt_echo e;
    nt_echo_start(&e);
    int port = nt_free_port();
    char cfg[400], log[400], json[1024];
    snprintf(cfg, sizeof cfg, "%s/fds.json", g_dir);
    snprintf(log, sizeof log, "%s/fds.log", g_dir);
    snprintf(
        json, sizeof json,
        "{\"workers\":1,\"admin\":null,\"listeners\":[{\"name\":\"fds\",\"bind\":\"127.0.0.1:%d\","
        "\"upstream\":\"127.0.0.1:%d\",\"protocol\":\"tcp\"}]}",
        port, e.port);
    nt_write_file(cfg, json);
    pid_t pid = start_daemon_limited(cfg, log, 32);
    CHECK(wait_listening(port));
    int fds[40];
    for (int i = 0; i < 40; i++)
        fds[i] = nt_connect(port);
    CHECK(WAIT_UNTIL(file_contains(log, "pausing accepts")));
    CHECK(waitpid(pid, NULL, WNOHANG) == 0);
    for (int i = 0; i < 40; i++)
        if (fds[i] >= 0) close(fds[i]);
    /* Descriptors come back as brokerside sees those clients leave. */
    int fd = -1;
    bool served =
        WAIT_UNTIL((fd = nt_connect(port)) >= 0 && (echo_ok(fd) || (close(fd), fd = -1, false)));
    CHECK(served);
    if (fd >= 0) close(fd);
    kill(pid, SIGTERM);
    CHECK_EQ(wait_exit(pid), 0);
    nt_echo_stop(&e);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char self[900];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 2;
    self[n] = 0;
    snprintf(g_bin, sizeof g_bin, "%s/brokerside", dirname(self));
    if (access(g_bin, X_OK) != 0) {
        fprintf(stderr, "%s not built\n", g_bin);
        return 2;
    }
    atexit(kill_children);
    nt_make_certs(g_dir, sizeof g_dir);
    RUN(test_cli);
    RUN(test_sigterm_drains_and_exits_0);
    RUN(test_second_sigterm_is_immediate);
    RUN(test_sighup_reload);
    RUN(test_fd_exhaustion);
    kill_children();
    if (!getenv("NT_KEEP")) nt_rm_rf(g_dir);
    return test_report();
}
