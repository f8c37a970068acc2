/*
 * test_sdnotify.c - the systemd notification protocol against a datagram
 * socket standing in for systemd: path and abstract addresses, what each
 * message carries, the no-op outside systemd, bad addresses, a receiver that
 * is gone, and the watchdog variables.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/sdnotify.h"
#include "test.h"

/* A bound SOCK_DGRAM socket playing systemd; `name` is a path or "@abstract". */
static int fake_systemd(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        len++;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) != 0) {
        perror("fake systemd bind");
        if (fd >= 0) close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* One datagram from fd into buf (NUL-terminated); "" on timeout. */
static const char *receive(int fd, char *buf, size_t len)
{
    ssize_t r = recv(fd, buf, len - 1, 0);
    buf[r < 0 ? 0 : r] = '\0';
    return buf;
}

static void test_path_socket(void)
{
    char path[] = "/tmp/bs-sdnotify-XXXXXX";
    CHECK(mkdtemp(path) != NULL);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/notify", path);
    int fd = fake_systemd(sock);
    CHECK(fd >= 0);
    setenv("NOTIFY_SOCKET", sock, 1);
    char buf[512];
    CHECK_EQ(bs_sd_notify("READY=1\nSTATUS=serving"), BS_OK);
    CHECK_STR(receive(fd, buf, sizeof buf), "READY=1\nSTATUS=serving");
    CHECK_EQ(bs_sd_notifyf("STATUS=%d listeners", 3), BS_OK);
    CHECK_STR(receive(fd, buf, sizeof buf), "STATUS=3 listeners");
    /* RELOADING carries the monotonic clock in microseconds, as systemd requires */
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    CHECK_EQ(bs_sd_notify_reloading(), BS_OK);
    clock_gettime(CLOCK_MONOTONIC, &after);
    receive(fd, buf, sizeof buf);
    unsigned long long usec = 0;
    CHECK_EQ(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1);
    CHECK(usec >= (unsigned long long)before.tv_sec * 1000000ull + before.tv_nsec / 1000);
    CHECK(usec <= (unsigned long long)after.tv_sec * 1000000ull + after.tv_nsec / 1000);
    /* The receiver went away (systemd restarted): an error, not a hang or a crash. */
    close(fd);
    unlink(sock);
    errno = 0;
    CHECK_EQ(bs_sd_notify("WATCHDOG=1"), BS_E_IO);
    CHECK(errno == ENOENT || errno == ECONNREFUSED);
    rmdir(path);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void)
{
    char name[64];
    snprintf(name, sizeof name, "@bs-sdnotify-test-%ld", (long)getpid());
    int fd = fake_systemd(name);
    CHECK(fd >= 0);
    setenv("NOTIFY_SOCKET", name, 1);
    char buf[256];
    CHECK_EQ(bs_sd_notify("STOPPING=1"), BS_OK);
    CHECK_STR(receive(fd, buf, sizeof buf), "STOPPING=1");
    CHECK_EQ(bs_sd_notify("WATCHDOG=1"), BS_OK);
    CHECK_STR(receive(fd, buf, sizeof buf), "WATCHDOG=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_outside_systemd_and_bad_addresses(void)
{
    unsetenv("NOTIFY_SOCKET");
    CHECK_EQ(bs_sd_notify("READY=1"), BS_E_NOT_FOUND);
    setenv("NOTIFY_SOCKET", "", 1);
    CHECK_EQ(bs_sd_notify("READY=1"), BS_E_NOT_FOUND);
    setenv("NOTIFY_SOCKET", "relative/notify", 1);
    CHECK_EQ(bs_sd_notify("READY=1"), BS_E_CONFIG);
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    CHECK_EQ(bs_sd_notify("READY=1"), BS_E_CONFIG);
    setenv("NOTIFY_SOCKET", "@", 1);
    CHECK_EQ(bs_sd_notify("READY=1"), BS_E_CONFIG);
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    setenv("NOTIFY_SOCKET", longpath, 1);
    CHECK_EQ(bs_sd_notify("READY=1"), BS_E_CONFIG);
    /* 108 bytes fit an abstract name (no NUL needed), not a path */
    char p108[109];
    memset(p108, 'b', 108);
    p108[0] = '/';
    p108[108] = '\0';
    setenv("NOTIFY_SOCKET", p108, 1);
    CHECK_EQ(bs_sd_notify("READY=1"), BS_E_CONFIG);
    p108[0] = '@';
    setenv("NOTIFY_SOCKET", p108, 1);
    CHECK_EQ(bs_sd_notify("READY=1"), BS_E_IO); /* valid address, nobody listening */
    unsetenv("NOTIFY_SOCKET");
    /* a message longer than the formatting buffer is refused, not cut */
    char big[2048];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ(bs_sd_notifyf("STATUS=%s", big), BS_E_TOO_LARGE);
}

static void test_watchdog_usec(void)
{
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    CHECK_EQ(bs_sd_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "30000000", 1);
    CHECK_EQ(bs_sd_watchdog_usec(), 30000000);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    CHECK_EQ(bs_sd_watchdog_usec(), 30000000);
    /* meant for another process (e.g. inherited from a parent): not ours */
    snprintf(pid, sizeof pid, "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    CHECK_EQ(bs_sd_watchdog_usec(), 0);
    setenv("WATCHDOG_PID", "x", 1);
    CHECK_EQ(bs_sd_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "0", 1);
    CHECK_EQ(bs_sd_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "12s", 1);
    CHECK_EQ(bs_sd_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "-5", 1);
    CHECK_EQ(bs_sd_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "99999999999999999999999", 1);
    CHECK_EQ(bs_sd_watchdog_usec(), 0);
    unsetenv("WATCHDOG_USEC");
}

int main(void)
{
    RUN(test_path_socket);
    RUN(test_abstract_socket);
    RUN(test_outside_systemd_and_bad_addresses);
    RUN(test_watchdog_usec);
    return test_report();
}
