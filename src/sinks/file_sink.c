/* file_sink.c - NDJSON files per stream, rotation, gzip, crash-safe writes (see file_sink.h). */
#include "brokerside/fsutil.h"
#include "brokerside/file_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "brokerside/buf.h"
#include "brokerside/log.h"

#define MOD "file_sink"

typedef struct fstream {
    int fd;
    uint64_t ino, dev, size;
    int64_t created; /* wall-clock seconds */
} fstream;

typedef struct file_sink {
    bs_file_sink_options o;
    char *dir;
    int lock_fd; /* flock on <dir>/.lock: one writer per directory */
    fstream f[BS_STREAM_COUNT];
    bs_wbuf w;
} file_sink;

/* Path of a per-stream file: <dir>/<prefix><stream><suffix>. */
static bs_status fs_path(const file_sink *fs, char *out, size_t outlen, const char *prefix,
                         bs_stream s, const char *suffix)
{
    int n = snprintf(out, outlen, "%s/%s%s%s", fs->dir, prefix, bs_stream_name(s), suffix);
    return (n < 0 || (size_t)n >= outlen) ? BS_E_TOO_LARGE : BS_OK;
}

typedef struct intent {
    uint64_t ino, size, first_seq;
    int64_t created;
} intent;

/* Read <dir>/.S.intent; BS_E_NOT_FOUND if absent, BS_E_MALFORMED if unreadable. */
static bs_status load_intent(const file_sink *fs, bs_stream s, intent *it)
{
    char path[4200];
    BS_GUARD(fs_path(fs, path, sizeof path, ".", s, ".intent"));
    FILE *f = fopen(path, "re");
    if (!f) return errno == ENOENT ? BS_E_NOT_FOUND : BS_E_IO;
    int n = fscanf(f, "bsi1 %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNd64, &it->ino, &it->size,
                   &it->first_seq, &it->created);
    fclose(f);
    return n == 4 ? BS_OK : BS_E_MALFORMED;
}

/* Persist the intent to write a batch starting at first_seq. */
static bs_status save_intent(const file_sink *fs, bs_stream s, const fstream *f, uint64_t first_seq)
{
    char path[4200], line[128];
    BS_GUARD(fs_path(fs, path, sizeof path, ".", s, ".intent"));
    int n = snprintf(line, sizeof line, "bsi1 %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64 "\n",
                     f->ino, f->size, first_seq, f->created);
    return bs_write_atomic(path, line, (size_t)n);
}

/* Open (creating) <dir>/S.ndjson for appending. */
static bs_status open_stream(file_sink *fs, bs_stream s)
{
    fstream *f = &fs->f[s];
    char path[4200];
    struct stat sb;
    BS_GUARD(fs_path(fs, path, sizeof path, "", s, ".ndjson"));
    f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (f->fd < 0) return BS_E_IO;
    if (fstat(f->fd, &sb) != 0) {
        close(f->fd);
        f->fd = -1;
        return BS_E_IO;
    }
    f->ino = (uint64_t)sb.st_ino;
    f->dev = (uint64_t)sb.st_dev;
    f->size = (uint64_t)sb.st_size;
    f->created = (int64_t)time(NULL);
    intent it;
    /* the creation time survives restarts through the intent record */
    if (load_intent(fs, s, &it) == BS_OK && it.ino == f->ino && it.created > 0)
        f->created = it.created;
    return bs_fsync_dir(fs->dir);
}

/* gzip `src` into `dst` durably (temp + fsync + rename), then remove src. */
static bs_status gzip_file(file_sink *fs, const char *src, const char *dst)
{
    char tmp[4300];
    bs_status st = BS_OK;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    BS_ENSURE(n > 0 && (size_t)n < sizeof tmp, BS_E_TOO_LARGE);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    BS_ENSURE(in >= 0, BS_E_IO);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out < 0) {
        close(in);
        return BS_E_IO;
    }
    int gfd = dup(out);
    gzFile gz = gfd >= 0 ? gzdopen(gfd, "wb6") : NULL;
    if (!gz) {
        if (gfd >= 0) close(gfd);
        st = BS_E_NOMEM;
        goto out;
    }
    static uint8_t chunk[64 * 1024];
    for (;;) {
        ssize_t r = read(in, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = BS_E_IO;
            break;
        }
        if (r == 0) break;
        if (gzwrite(gz, chunk, (unsigned)r) != (int)r) {
            st = BS_E_IO;
            break;
        }
    }
    if (gzclose(gz) != Z_OK && st == BS_OK) st = BS_E_IO;
    if (st == BS_OK && fsync(out) != 0) st = BS_E_IO;
out:
    close(in);
    close(out);
    if (st == BS_OK && rename(tmp, dst) != 0) st = BS_E_IO;
    if (st == BS_OK && unlink(src) != 0) st = BS_E_IO;
    if (st != BS_OK) unlink(tmp);
    if (st == BS_OK) st = bs_fsync_dir(fs->dir);
    return st;
}

/* Rename the current file of stream s aside (and gzip it), open a new one. */
static bs_status rotate(file_sink *fs, bs_stream s)
{
    fstream *f = &fs->f[s];
    char cur[4200], name[64], dst[4200];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(name, sizeof name, "-%Y%m%dT%H%M%SZ", &tm);
    BS_GUARD(fs_path(fs, cur, sizeof cur, "", s, ".ndjson"));
    /* a unique name: never overwrite an earlier rotation (plain or .gz) */
    for (int i = 0;; i++) {
        char suffix[96], gzp[4300];
        struct stat sb;
        if (i == 0)
            snprintf(suffix, sizeof suffix, "%s.ndjson", name);
        else
            snprintf(suffix, sizeof suffix, "%s-%d.ndjson", name, i);
        BS_GUARD(fs_path(fs, dst, sizeof dst, "", s, suffix));
        snprintf(gzp, sizeof gzp, "%s.gz", dst);
        if (stat(dst, &sb) != 0 && stat(gzp, &sb) != 0) break;
        if (i > 10000) return BS_E_STATE;
    }
    if (rename(cur, dst) != 0) return BS_E_IO;
    close(f->fd);
    f->fd = -1;
    BS_GUARD(bs_fsync_dir(fs->dir));
    BS_LOG_INFOF(MOD, "rotated %s to %s (%" PRIu64 " bytes)", cur, dst, f->size);
    if (fs->o.gzip) {
        char gzp[4300];
        snprintf(gzp, sizeof gzp, "%s.gz", dst);
        if (gzip_file(fs, dst, gzp) != BS_OK)
            /* the rotated plain file stays: nothing is lost, only not compressed */
            BS_LOG_ERRORF(MOD, "cannot gzip %s: %s", dst, strerror(errno));
    }
    return open_stream(fs, s);
}

/* Mark every PENDING entry retryable with `why`. */
static void fail_pending(bs_sink_batch *b, const char *why)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->entries[i].result == BS_SINK_PENDING) {
            b->entries[i].result = BS_SINK_RETRYABLE;
            snprintf(b->entries[i].reason, sizeof b->entries[i].reason, "%s", why);
        }
}

/* Write the batch's pending entries as lines and fdatasync (see file_sink.h). */
static void fs_deliver(void *impl, bs_sink_batch *b)
{
    file_sink *fs = impl;
    fstream *f = &fs->f[b->stream];
    char why[160];
    uint64_t first = 0;
    bool have_first = false;
    if (f->fd < 0 && open_stream(fs, b->stream) != BS_OK) {
        snprintf(why, sizeof why, "cannot open %s file: %s", bs_stream_name(b->stream),
                 strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < b->n; i++)
        if (b->entries[i].result == BS_SINK_PENDING) {
            first = b->entries[i].seq;
            have_first = true;
            break;
        }
    if (!have_first) goto done;
    intent it;
    /* only a first attempt can be a redelivery after a restart; in-process
     * retries never need it (a failed write is cut off at once) */
    if (b->attempt == 0 && load_intent(fs, b->stream, &it) == BS_OK && it.ino == f->ino &&
        it.first_seq == first && f->size > it.size) {
        /* this batch was written before a crash but never acknowledged */
        if (ftruncate(f->fd, (off_t)it.size) != 0) {
            snprintf(why, sizeof why, "cannot cut unacknowledged tail: %s", strerror(errno));
            goto fail;
        }
        BS_LOG_INFOF(MOD,
                     "%s: cut %" PRIu64 " bytes of an unacknowledged batch before rewriting it",
                     bs_stream_name(b->stream), f->size - it.size);
        f->size = it.size;
    }
    if (f->size > 0 && (f->size >= fs->o.rotate_bytes ||
                        (fs->o.rotate_age_s != UINT32_MAX &&
                         time(NULL) - f->created >= (int64_t)fs->o.rotate_age_s))) {
        if (rotate(fs, b->stream) != BS_OK) {
            snprintf(why, sizeof why, "rotation failed: %s", strerror(errno));
            goto fail;
        }
    }
    bs_wbuf_reset(&fs->w);
    for (size_t i = 0; i < b->n; i++) {
        bs_sink_entry *e = &b->entries[i];
        if (e->result != BS_SINK_PENDING) continue;
        if (memchr(e->payload, '\n', e->len)) {
            e->result = BS_SINK_PERMANENT;
            snprintf(e->reason, sizeof e->reason, "event contains a newline: not one NDJSON line");
            continue;
        }
        bs_wbuf_put(&fs->w, e->payload, e->len);
        bs_wbuf_put_u8(&fs->w, '\n');
    }
    if (bs_wbuf_status(&fs->w) != BS_OK) {
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    if (save_intent(fs, b->stream, f, first) != BS_OK) {
        snprintf(why, sizeof why, "cannot record write intent: %s", strerror(errno));
        goto fail;
    }
    size_t done = 0;
    while (done < fs->w.len) {
        ssize_t n = write(f->fd, fs->w.data + done, fs->w.len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    if (done < fs->w.len || fdatasync(f->fd) != 0) {
        snprintf(why, sizeof why, "write to %s file failed: %s", bs_stream_name(b->stream),
                 strerror(errno ? errno : ENOSPC));
        /* a partial batch would be written again on retry: cut it off */
        if (ftruncate(f->fd, (off_t)f->size) != 0)
            BS_LOG_ERRORF(MOD, "cannot cut a partial batch: %s", strerror(errno));
        goto fail;
    }
    f->size += fs->w.len;
    for (size_t i = 0; i < b->n; i++)
        if (b->entries[i].result == BS_SINK_PENDING) b->entries[i].result = BS_SINK_DELIVERED;
done:
    bs_sink_batch_done(b);
    return;
fail:
    fail_pending(b, why);
    bs_sink_batch_done(b);
}

/* Close files and free. */
static void fs_destroy(void *impl)
{
    file_sink *fs = impl;
    if (!fs) return;
    for (int i = 0; i < BS_STREAM_COUNT; i++)
        if (fs->f[i].fd >= 0) close(fs->f[i].fd);
    bs_wbuf_free(&fs->w);
    bs_unlock_file(fs->lock_fd);
    free(fs->dir);
    free(fs);
}

static const bs_sink_ops file_sink_ops = {
    .type = "file",
    .deliver = fs_deliver,
    .destroy = fs_destroy,
};

/* See file_sink.h. */
bs_status bs_file_sink_new(const bs_file_sink_options *o, const bs_sink_ops **ops, void **impl)
{
    BS_ENSURE(o && o->dir && o->dir[0] && ops && impl, BS_E_CONFIG);
    if (mkdir(o->dir, 0750) != 0 && errno != EEXIST) {
        BS_LOG_ERRORF(MOD, "cannot create %s: %s", o->dir, strerror(errno));
        return BS_E_IO;
    }
    /* One writer per directory, locked before any file in it is opened: a
     * second process would interleave its own sequence of events into the
     * same audit files and rotate them under us. */
    char lpath[4200], what[4300];
    int n = snprintf(lpath, sizeof lpath, "%s/.lock", o->dir);
    BS_ENSURE(n > 0 && (size_t)n < sizeof lpath, BS_E_TOO_LARGE);
    snprintf(what, sizeof what, "file sink directory %s", o->dir);
    int lock_fd;
    BS_GUARD(bs_lock_file(lpath, what, &lock_fd));
    file_sink *fs = calloc(1, sizeof *fs);
    BS_ENSURE(fs, (bs_unlock_file(lock_fd), BS_E_NOMEM));
    fs->lock_fd = lock_fd;
    fs->o = *o;
    if (!fs->o.rotate_bytes) fs->o.rotate_bytes = 100ull << 20;
    if (!fs->o.rotate_age_s) fs->o.rotate_age_s = 3600;
    fs->dir = strdup(o->dir);
    if (!fs->dir) {
        bs_unlock_file(lock_fd);
        free(fs);
        return BS_E_NOMEM;
    }
    fs->o.dir = fs->dir;
    for (int i = 0; i < BS_STREAM_COUNT; i++)
        fs->f[i].fd = -1;
    bs_wbuf_init(&fs->w, 0);
    *ops = &file_sink_ops;
    *impl = fs;
    return BS_OK;
}

/* See file_sink.h. */
void bs_file_sink_limits(bs_sink_limits *l)
{
    memset(l, 0, sizeof *l);
    l->max_events = 10000;
    l->max_bytes = 4u << 20;
    l->max_event_bytes = 1u << 20;
    l->max_age_ms = 200;
}
