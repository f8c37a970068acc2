/* sdnotify.c - systemd's notification protocol over a datagram socket (see sdnotify.h). */
#include "brokerside/sdnotify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Fill *sa and *len from the $NOTIFY_SOCKET value `v`: an absolute path or "@abstract". */
static bs_status notify_address(const char *v, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n = strlen(v);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    /* systemd also knows "vsock:CID:PORT" (VMs); a sidecar runs on the host. */
    BS_ENSURE(v[0] == '/' || v[0] == '@', BS_E_CONFIG);
    BS_ENSURE(n >= 2 && n <= sizeof sa->sun_path, BS_E_CONFIG);
    memcpy(sa->sun_path, v, n);
    if (v[0] == '@') {
        sa->sun_path[0] = '\0'; /* abstract: no terminator, the length says where it ends */
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        BS_ENSURE(n < sizeof sa->sun_path, BS_E_CONFIG); /* room for the NUL */
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return BS_OK;
}

/* See sdnotify.h. */
bs_status bs_sd_notify(const char *state)
{
    const char *v = getenv("NOTIFY_SOCKET");
    if (!v || !v[0]) return BS_E_NOT_FOUND;
    struct sockaddr_un sa;
    socklen_t salen;
    BS_GUARD(notify_address(v, &sa, &salen));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return BS_E_IO;
    size_t n = strlen(state);
    ssize_t w;
    do {
        w = sendto(fd, state, n, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    } while (w < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    errno = saved;
    if (w < 0) return BS_E_IO;
    return (size_t)w == n ? BS_OK : BS_E_IO;
}

/* See sdnotify.h. */
bs_status bs_sd_notifyf(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    BS_ENSURE(n >= 0 && (size_t)n < sizeof msg, BS_E_TOO_LARGE);
    return bs_sd_notify(msg);
}

/* See sdnotify.h. */
bs_status bs_sd_notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    return bs_sd_notifyf("RELOADING=1\nMONOTONIC_USEC=%" PRIu64, usec);
}

/* Parse a decimal unsigned number filling all of `s`; false if it is not one. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* See sdnotify.h. */
uint64_t bs_sd_watchdog_usec(void)
{
    uint64_t usec, pid;
    if (!parse_u64(getenv("WATCHDOG_USEC"), &usec) || usec == 0) return 0;
    const char *p = getenv("WATCHDOG_PID");
    if (p && *p && (!parse_u64(p, &pid) || pid != (uint64_t)getpid())) return 0;
    return usec;
}
