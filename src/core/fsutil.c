/* fsutil.c - directory fsync helpers (see fsutil.h). */
#include "brokerside/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

#include "brokerside/log.h"

#define MOD "fsutil"

bs_status bs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return BS_E_IO;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0 ? BS_OK : BS_E_IO;
}

bs_status bs_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    BS_ENSURE(n < sizeof dir, BS_E_TOO_LARGE);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) return bs_fsync_dir(".");
    if (slash == dir) slash++; /* "/name": the parent is "/" */
    *slash = '\0';
    return bs_fsync_dir(dir);
}

/* See fsutil.h. */
bs_status bs_lock_file(const char *path, const char *what, int *fd_out)
{
    *fd_out = -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int saved = errno;
        BS_LOG_ERRORF(MOD, "%s: cannot open lock file %s: %s", what, path, strerror(saved));
        errno = saved;
        return BS_E_IO;
    }
    int rc;
    do
        rc = flock(fd, LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int saved = errno;
        if (saved == EWOULDBLOCK) {
            char pid[24] = "";
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            BS_LOG_ERRORF(MOD,
                          "%s is in use by another brokerside process (pid %s, lock %s): only "
                          "one process may use it; nothing was changed",
                          what, pid[0] ? pid : "unknown", path);
            close(fd);
            return BS_E_BUSY;
        }
        BS_LOG_ERRORF(MOD, "%s: cannot lock %s: %s", what, path, strerror(saved));
        close(fd);
        errno = saved;
        return BS_E_IO;
    }
    char line[24];
    int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    /* the pid is advice for the operator; the flock is the lock */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n)
        BS_LOG_WARNF(MOD, "%s: cannot record our pid in %s: %s", what, path, strerror(errno));
    *fd_out = fd;
    return BS_OK;
}

/* See fsutil.h. */
void bs_unlock_file(int fd)
{
    if (fd >= 0) close(fd);
}

/* See fsutil.h. */
bs_status bs_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX + 8];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    BS_ENSURE(n > 0 && (size_t)n < sizeof tmp, BS_E_TOO_LARGE);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    BS_ENSURE(fd >= 0, BS_E_IO);
    bs_status st = BS_OK;
    const unsigned char *p = data;
    size_t left = len;
    while (left && st == BS_OK) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            st = BS_E_IO;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (st == BS_OK && fsync(fd) != 0) st = BS_E_IO;
    int saved = errno;
    close(fd);
    if (st == BS_OK && rename(tmp, path) != 0) {
        st = BS_E_IO;
        saved = errno;
    }
    if (st != BS_OK) {
        unlink(tmp);
        errno = saved;
        return st;
    }
    return bs_fsync_parent(path);
}
