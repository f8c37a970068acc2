/* fsutil.c - directory fsync helpers (see fsutil.h). */
#include "brokerside/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

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
