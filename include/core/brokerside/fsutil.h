/*
 * fsutil.h - small durability helpers shared by every module that writes
 * files it must not lose (spool, file sink, log tailer checkpoints, keys).
 */
#ifndef BROKERSIDE_FSUTIL_H
#define BROKERSIDE_FSUTIL_H

#include "brokerside/status.h"

/* fsync the directory `dir` so creations, renames and unlinks in it survive a
 * crash. BS_OK, or BS_E_IO (errno set) if it cannot be opened or synced. */
bs_status bs_fsync_dir(const char *dir) BS_WUR;

/* fsync the directory that holds `path` ("." for a bare file name). BS_OK,
 * BS_E_TOO_LARGE for a path longer than PATH_MAX, or BS_E_IO (errno set). */
bs_status bs_fsync_parent(const char *path) BS_WUR;

/* Replace `path` with data[0..len) so that a crash leaves either the old or
 * the new contents, never a mix: write "<path>.tmp" (mode 0600), fsync it,
 * rename it over `path`, fsync the directory. BS_OK, BS_E_TOO_LARGE for a
 * path longer than PATH_MAX, or BS_E_IO with errno of the failing call (the
 * temporary file is removed). */
bs_status bs_write_atomic(const char *path, const void *data, size_t len) BS_WUR;

/* Take an exclusive, non-blocking advisory lock (flock) on the lock file
 * `path`, creating it (0600) if absent, and write our pid into it. `what`
 * names the guarded resource in the log ("spool /var/spool/bs").
 * BS_OK with *fd_out the open descriptor that holds the lock (keep it open;
 * close it, or bs_unlock_file(), to release); BS_E_BUSY when another process
 * holds it (an ERROR line names that process's pid and nothing else is
 * touched); BS_E_IO (errno set) when the file cannot be opened or locked.
 * Locks are per open file: a second call in the same process is refused too. */
bs_status bs_lock_file(const char *path, const char *what, int *fd_out) BS_WUR;

/* Release a lock taken by bs_lock_file (closes `fd`); -1 is a no-op. The
 * file stays so that a concurrent starter never locks an unlinked inode. */
void bs_unlock_file(int fd);

#endif
