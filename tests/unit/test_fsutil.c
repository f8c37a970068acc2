/* Unit tests for src/core/fsutil.c. */
#include "brokerside/fsutil.h"
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void test_fsync_dir(void)
{
    CHECK_EQ(bs_fsync_dir(tmpdir), BS_OK);
    CHECK_EQ(bs_fsync_dir("/"), BS_OK);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing", tmpdir);
    CHECK_EQ(bs_fsync_dir(missing), BS_E_IO);
    char file[128];
    snprintf(file, sizeof file, "%s/file", tmpdir);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    CHECK_EQ(bs_fsync_dir(file), BS_E_IO); /* not a directory */
    unlink(file);
}

static void test_fsync_parent(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/some.file", tmpdir);
    CHECK_EQ(bs_fsync_parent(path), BS_OK); /* the file need not exist, its directory must */
    CHECK_EQ(bs_fsync_parent("bare-name"), BS_OK); /* "." */
    CHECK_EQ(bs_fsync_parent("/etc"), BS_OK);      /* parent "/" */
    snprintf(path, sizeof path, "%s/nodir/x", tmpdir);
    CHECK_EQ(bs_fsync_parent(path), BS_E_IO);
    char *huge = malloc(PATH_MAX + 16);
    CHECK(huge != NULL);
    if (huge) {
        memset(huge, 'a', PATH_MAX + 8);
        huge[PATH_MAX + 8] = '\0';
        CHECK_EQ(bs_fsync_parent(huge), BS_E_TOO_LARGE);
        free(huge);
    }
}

/* Replace a file's contents whole; a failure leaves the old file and no
 * temporary behind. */
static void test_write_atomic(void)
{
    char path[128], tmp[140], buf[64];
    snprintf(path, sizeof path, "%s/state", tmpdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK_EQ(bs_write_atomic(path, "first\n", 6), BS_OK);
    CHECK_EQ(bs_write_atomic(path, "second\n", 7), BS_OK);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK_EQ(n, 7);
    CHECK(memcmp(buf, "second\n", 7) == 0);
    CHECK(access(tmp, F_OK) != 0);
    /* rename over a directory fails: the directory stays, no temporary */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/adir", tmpdir);
    CHECK_EQ(mkdir(dir, 0700), 0);
    CHECK_EQ(bs_write_atomic(dir, "x", 1), BS_E_IO);
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    CHECK(access(tmp, F_OK) != 0);
    rmdir(dir);
    snprintf(dir, sizeof dir, "%s/nodir/x", tmpdir);
    CHECK_EQ(bs_write_atomic(dir, "x", 1), BS_E_IO);
    unlink(path);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bs-fsutil.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(test_fsync_dir);
    RUN(test_fsync_parent);
    RUN(test_write_atomic);
    rmdir(tmpdir);
    return test_report();
}
