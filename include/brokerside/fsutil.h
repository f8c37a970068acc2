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

#endif
