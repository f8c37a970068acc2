/* spool.c - durable append-only event queue (see spool.h, docs/spool.md). */
#include "brokerside/fsutil.h"
#include "brokerside/spool.h"

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "brokerside/cursor.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"

#define MOD "spool"
#define REC_MAGIC 0x42535231u /* "BSR1" */
#define REC_HDR 24u
#define READ_CHUNK (256u * 1024u)
#define HARD_MAX_RECORD (256u * 1024u * 1024u)

struct bs_spool_reader {
    bs_spool *sp;
    bs_spool_reader *next; /* in sp->readers */
    bool registered;
    char name[65];
    bs_stream stream;
    bs_spool_pos cursor; /* acknowledged */
    bs_spool_pos pos;    /* read position */
    bs_spool_pos prev;   /* position before the last returned record (unread) */
    int fd;              /* segment pos.seg, or -1 */
    uint64_t fd_seg;
    uint8_t *buf; /* file bytes [buf_off, buf_off + buf_len) of segment fd_seg */
    size_t buf_cap, buf_len;
    uint64_t buf_off;
    void (*notify)(void *);
    void *notify_arg;
};

struct bs_spool {
    bs_spool_options o;
    char *dir;
    char id[33];
    uint64_t *segs;  /* bases, ascending; the last one is active */
    uint64_t *sizes; /* bytes per segment */
    size_t n_segs, cap_segs;
    int active_fd;
    int lock_fd; /* holds the flock on <dir>/spool.lock: one process per spool */
    uint64_t active_size, synced_size;
    uint64_t next_seq;
    uint64_t bytes;
    bool dirty;
    bs_spool_stats st;
    bs_spool_reader *readers;
    struct ev_loop *loop;
    ev_timer timer;
    bs_metric *m_bytes, *m_rejected[BS_STREAM_COUNT], *m_truncated, *m_corrupt, *m_appended;
    bs_metric *m_max_bytes;
};

static const char *const stream_names[BS_STREAM_COUNT] = {"audit", "metrics", "logs"};

/* Static name of a stream; "unknown" for out-of-range values. */
const char *bs_stream_name(bs_stream s)
{
    return (unsigned)s < BS_STREAM_COUNT ? stream_names[s] : "unknown";
}

/* Defaults documented in spool.h. */
void bs_spool_options_default(bs_spool_options *o)
{
    memset(o, 0, sizeof *o);
    o->segment_bytes = 64ull << 20;
    o->max_bytes = 1ull << 30;
    o->logs_limit_pct = 80;
    o->audit_reserve_bytes = o->max_bytes / 16;
    o->fsync_interval_ms = 100;
    o->max_record_bytes = 8u << 20;
}

/* snprintf into out; BS_E_TOO_LARGE if truncated. */
static bs_status path_join(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= outlen) ? BS_E_TOO_LARGE : BS_OK;
}

/* Path of segment `base`. */
static bs_status seg_path(const bs_spool *sp, uint64_t base, char *out, size_t outlen)
{
    char name[40];
    snprintf(name, sizeof name, "%020" PRIu64 ".seg", base);
    return path_join(out, outlen, sp->dir, name);
}

/* Index of segment `base` in sp->segs, or -1. */
static long seg_index(const bs_spool *sp, uint64_t base)
{
    for (size_t i = 0; i < sp->n_segs; i++)
        if (sp->segs[i] == base) return (long)i;
    return -1;
}

/* Append a segment entry (base, size) to the sorted list. */
static bs_status seg_push(bs_spool *sp, uint64_t base, uint64_t size)
{
    if (sp->n_segs == sp->cap_segs) {
        size_t nc = sp->cap_segs ? sp->cap_segs * 2 : 16;
        uint64_t *s = realloc(sp->segs, nc * sizeof *s);
        if (!s) return BS_E_NOMEM;
        sp->segs = s;
        uint64_t *z = realloc(sp->sizes, nc * sizeof *z);
        if (!z) return BS_E_NOMEM;
        sp->sizes = z;
        sp->cap_segs = nc;
    }
    sp->segs[sp->n_segs] = base;
    sp->sizes[sp->n_segs] = size;
    sp->n_segs++;
    return BS_OK;
}

/* CRC32 (zlib) over the header bytes after the CRC field and the payload. */
static uint32_t rec_crc(const uint8_t *hdr_tail, const uint8_t *payload, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr_tail, REC_HDR - 12);
    /* zlib takes uInt lengths; records are capped far below 4 GiB */
    c = crc32(c, payload, (uInt)len);
    return (uint32_t)c;
}

/* Parse and check the record at b[0..avail). BS_OK with the fields when it is
 * complete and its CRC matches; BS_E_SHORT if more bytes are needed and could
 * exist; BS_E_MALFORMED if these bytes are not a valid record. */
static bs_status rec_parse(const uint8_t *b, size_t avail, uint32_t max_len, uint32_t *len,
                           uint8_t *stream, uint64_t *seq)
{
    bs_cursor c;
    uint32_t magic, crc;
    uint8_t flags;
    uint16_t rsv;
    bs_cursor_init(&c, b, avail);
    if (avail < REC_HDR) return BS_E_SHORT;
    BS_GUARD(bs_read_be32(&c, &magic));
    BS_GUARD(bs_read_be32(&c, len));
    BS_GUARD(bs_read_be32(&c, &crc));
    BS_GUARD(bs_read_u8(&c, stream));
    BS_GUARD(bs_read_u8(&c, &flags));
    BS_GUARD(bs_read_be16(&c, &rsv));
    BS_GUARD(bs_read_be64(&c, seq));
    if (magic != REC_MAGIC || *len > max_len || *stream >= BS_STREAM_COUNT || flags != 0 ||
        rsv != 0)
        return BS_E_MALFORMED;
    const uint8_t *payload;
    if (bs_read_bytes(&c, *len, &payload) != BS_OK) return BS_E_SHORT;
    if (rec_crc(b + 12, payload, *len) != crc) return BS_E_MALFORMED;
    return BS_OK;
}

/* Read a whole file region [off, off+len) into a fresh malloc'd buffer. */
static bs_status read_region(int fd, uint64_t off, size_t len, uint8_t **out)
{
    uint8_t *b = malloc(len ? len : 1);
    if (!b) return BS_E_NOMEM;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, b + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(b);
            return BS_E_IO;
        }
        got += (size_t)r;
    }
    *out = b;
    return BS_OK;
}

/* Offset of the first valid record at or after `from` in b[0..len), or len. */
static size_t find_next_valid(const uint8_t *b, size_t len, size_t from, uint32_t max_len)
{
    for (size_t i = from; i + REC_HDR <= len; i++) {
        if (b[i] != 0x42 || b[i + 1] != 0x53 || b[i + 2] != 0x52 || b[i + 3] != 0x31) continue;
        uint32_t l;
        uint8_t s;
        uint64_t q;
        if (rec_parse(b + i, len - i, max_len, &l, &s, &q) == BS_OK) return i;
    }
    return len;
}

/* Scan the last segment: find the valid end, truncate a torn tail, set next_seq. */
static bs_status recover_active(bs_spool *sp)
{
    char path[4200];
    uint8_t *b = NULL;
    bs_status st;
    size_t i = sp->n_segs - 1;
    uint64_t base = sp->segs[i], size = sp->sizes[i];
    BS_GUARD(seg_path(sp, base, path, sizeof path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    BS_ENSURE(fd >= 0, BS_E_IO);
    BS_GUARD_GOTO(st, read_region(fd, 0, (size_t)size, &b), out);
    size_t off = 0, valid_end = 0;
    uint64_t next = base;
    while (off < size) {
        uint32_t len;
        uint8_t s;
        uint64_t seq;
        if (rec_parse(b + off, (size_t)size - off, sp->o.max_record_bytes, &len, &s, &seq) ==
            BS_OK) {
            off += REC_HDR + len;
            valid_end = off;
            next = seq + 1;
            continue;
        }
        size_t nx = find_next_valid(b, (size_t)size, off + 1, sp->o.max_record_bytes);
        if (nx == size) break;
        /* valid records follow: corruption in the middle, readers skip it */
        sp->st.corrupt_records++;
        bs_metric_add(sp->m_corrupt, 1);
        BS_LOG_WARNF(MOD, "segment %s: corrupt bytes at %zu..%zu, readers will skip them", path,
                     off, nx);
        off = nx;
    }
    if (valid_end < size) {
        if (ftruncate(fd, (off_t)valid_end) != 0 || fsync(fd) != 0) {
            st = BS_E_IO;
            goto out;
        }
        BS_LOG_WARNF(MOD, "segment %s: cut torn/corrupt tail of %" PRIu64 " bytes at offset %zu",
                     path, size - valid_end, valid_end);
        sp->st.truncated_bytes += size - valid_end;
        bs_metric_add(sp->m_truncated, (int64_t)(size - valid_end));
        sp->bytes -= size - valid_end;
        sp->sizes[i] = valid_end;
    } else if (fsync(fd) != 0) {
        /* a crashed predecessor may have left unsynced pages: make them durable */
        st = BS_E_IO;
        goto out;
    }
    sp->next_seq = next;
    sp->active_size = sp->synced_size = valid_end;
    sp->active_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    st = sp->active_fd >= 0 ? BS_OK : BS_E_IO;
out:
    free(b);
    close(fd);
    return st;
}

/* Create an empty segment named `base` and make it the active one. */
static bs_status create_segment(bs_spool *sp, uint64_t base)
{
    char path[4200];
    BS_GUARD(seg_path(sp, base, path, sizeof path));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    BS_ENSURE(fd >= 0, BS_E_IO);
    /* the list changes only once the file is durably there */
    bs_status st = bs_fsync_dir(sp->dir);
    if (st == BS_OK) st = seg_push(sp, base, 0);
    if (st != BS_OK) {
        int err = errno;
        close(fd);
        unlink(path);
        errno = err;
        return st;
    }
    if (sp->active_fd >= 0) close(sp->active_fd);
    sp->active_fd = fd;
    sp->active_size = sp->synced_size = 0;
    sp->st.segments = sp->n_segs;
    return BS_OK;
}

/* Read or create <dir>/spool.id. */
static bs_status load_id(bs_spool *sp)
{
    char path[4200];
    BS_GUARD(path_join(path, sizeof path, sp->dir, "spool.id"));
    FILE *f = fopen(path, "re");
    if (f) {
        char line[64] = {0};
        bool ok = fgets(line, sizeof line, f) != NULL && strspn(line, "0123456789abcdef") == 32;
        fclose(f);
        if (!ok) {
            BS_LOG_ERRORF(MOD, "%s: not a spool id (32 hex characters)", path);
            return BS_E_MALFORMED;
        }
        memcpy(sp->id, line, 32);
        sp->id[32] = 0;
        return BS_OK;
    }
    BS_ENSURE(errno == ENOENT, BS_E_IO);
    unsigned char r[16];
    BS_ENSURE(RAND_bytes(r, sizeof r) == 1, BS_E_CRYPTO);
    for (int i = 0; i < 16; i++)
        snprintf(sp->id + 2 * i, 3, "%02x", r[i]);
    char line[40];
    snprintf(line, sizeof line, "%s\n", sp->id);
    return bs_write_atomic(path, line, 33);
}

/* List existing segments, sizes and total bytes. */
static bs_status scan_dir(bs_spool *sp)
{
    DIR *d = opendir(sp->dir);
    BS_ENSURE(d, BS_E_IO);
    bs_status st = BS_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl != 24 || strcmp(e->d_name + 20, ".seg") != 0 ||
            strspn(e->d_name, "0123456789") != 20)
            continue;
        uint64_t base = strtoull(e->d_name, NULL, 10);
        char path[4200];
        struct stat sb;
        BS_GUARD_GOTO(st, path_join(path, sizeof path, sp->dir, e->d_name), out);
        if (stat(path, &sb) != 0) {
            st = BS_E_IO;
            goto out;
        }
        BS_GUARD_GOTO(st, seg_push(sp, base, (uint64_t)sb.st_size), out);
    }
out:
    closedir(d);
    if (st != BS_OK) return st;
    /* insertion sort keeps sizes paired with their bases; segment counts are small */
    for (size_t i = 1; i < sp->n_segs; i++)
        for (size_t j = i; j > 0 && sp->segs[j - 1] > sp->segs[j]; j--) {
            uint64_t t = sp->segs[j];
            sp->segs[j] = sp->segs[j - 1];
            sp->segs[j - 1] = t;
            t = sp->sizes[j];
            sp->sizes[j] = sp->sizes[j - 1];
            sp->sizes[j - 1] = t;
        }
    for (size_t i = 0; i < sp->n_segs; i++)
        sp->bytes += sp->sizes[i];
    return BS_OK;
}

/* Register the metrics this spool updates. */
static void init_metrics(bs_spool *sp)
{
    sp->m_bytes =
        bs_metrics_gauge("brokerside_spool_bytes", "Bytes in spool segments on disk", NULL);
    sp->m_max_bytes = bs_metrics_gauge(
        "brokerside_spool_max_bytes",
        "spool.max_bytes: metric snapshots are refused above it, logs earlier (logs_limit_pct), "
        "audit events only above it plus the audit reserve",
        NULL);
    for (int s = 0; s < BS_STREAM_COUNT; s++)
        sp->m_rejected[s] = bs_metrics_counter_kv("brokerside_spool_rejected_total",
                                                  "Events refused by the spool (full or disk full)",
                                                  "stream", stream_names[s], NULL);
    sp->m_truncated =
        bs_metrics_counter("brokerside_spool_truncated_bytes_total",
                           "Bytes of torn or corrupt segment tails cut at open", NULL);
    sp->m_corrupt = bs_metrics_counter("brokerside_spool_corrupt_records_total",
                                       "Corrupt spool regions skipped", NULL);
    sp->m_appended =
        bs_metrics_counter("brokerside_spool_appended_total", "Events appended to the spool", NULL);
}

/* See spool.h. */
bs_status bs_spool_open(const bs_spool_options *o, bs_spool **out)
{
    bs_status st;
    BS_ENSURE(o && o->dir && o->dir[0] && out, BS_E_CONFIG);
    bs_spool *sp = calloc(1, sizeof *sp);
    BS_ENSURE(sp, BS_E_NOMEM);
    sp->active_fd = -1;
    sp->lock_fd = -1;
    bs_spool_options_default(&sp->o);
    if (o->segment_bytes) sp->o.segment_bytes = o->segment_bytes;
    if (o->max_bytes) {
        sp->o.max_bytes = o->max_bytes;
        sp->o.audit_reserve_bytes = o->max_bytes / 16;
    }
    if (o->audit_reserve_bytes) sp->o.audit_reserve_bytes = o->audit_reserve_bytes;
    if (o->logs_limit_pct) sp->o.logs_limit_pct = o->logs_limit_pct;
    if (o->fsync_interval_ms) sp->o.fsync_interval_ms = o->fsync_interval_ms;
    if (o->max_record_bytes) sp->o.max_record_bytes = o->max_record_bytes;
    if (sp->o.logs_limit_pct > 100 || sp->o.max_record_bytes > HARD_MAX_RECORD ||
        sp->o.segment_bytes < 4096) {
        BS_LOG_ERRORF(MOD, "invalid spool options (logs_limit_pct <= 100, max_record_bytes <= "
                           "256 MiB, segment_bytes >= 4096)");
        st = BS_E_CONFIG;
        goto fail;
    }
    sp->dir = strdup(o->dir);
    BS_ENSURE(sp->dir, (free(sp), BS_E_NOMEM));
    init_metrics(sp);
    char cdir[4200];
    BS_GUARD_GOTO(st, path_join(cdir, sizeof cdir, sp->dir, "cursors"), fail);
    if ((mkdir(sp->dir, 0700) != 0 && errno != EEXIST) ||
        (mkdir(cdir, 0700) != 0 && errno != EEXIST)) {
        BS_LOG_ERRORF(MOD, "cannot create spool directory %s: %s", sp->dir, strerror(errno));
        st = BS_E_IO;
        goto fail;
    }
    /* One process per spool, locked before anything in it is read or written:
     * a second sidecar on the same dir would cut the live segment's tail and
     * start a second audit chain in it. */
    char lpath[4200], what[4300];
    BS_GUARD_GOTO(st, path_join(lpath, sizeof lpath, sp->dir, "spool.lock"), fail);
    snprintf(what, sizeof what, "spool %s", sp->dir);
    BS_GUARD_GOTO(st, bs_lock_file(lpath, what, &sp->lock_fd), fail);
    BS_GUARD_GOTO(st, load_id(sp), fail);
    BS_GUARD_GOTO(st, scan_dir(sp), fail);
    if (sp->n_segs == 0) {
        BS_GUARD_GOTO(st, create_segment(sp, 1), fail);
        sp->next_seq = 1;
    } else {
        BS_GUARD_GOTO(st, recover_active(sp), fail);
    }
    sp->st.segments = sp->n_segs;
    bs_metric_set(sp->m_bytes, (int64_t)sp->bytes);
    bs_metric_set(sp->m_max_bytes, (int64_t)sp->o.max_bytes);
    *out = sp;
    return BS_OK;
fail:
    BS_LOG_ERRORF(MOD, "cannot open spool %s: %s", o->dir, bs_status_name(st));
    if (sp->active_fd >= 0) close(sp->active_fd);
    bs_unlock_file(sp->lock_fd);
    free(sp->segs);
    free(sp->sizes);
    free(sp->dir);
    free(sp);
    return st;
}

/* Timer callback: periodic fsync. */
static void sync_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bs_spool *sp = bs_container_of(w, bs_spool, timer);
    if (sp->dirty && bs_spool_sync(sp) != BS_OK)
        BS_LOG_ERRORF(MOD, "periodic fsync of %s failed: %s", sp->dir, strerror(errno));
}

/* See spool.h. */
void bs_spool_attach_loop(bs_spool *sp, struct ev_loop *loop)
{
    sp->loop = loop;
    double p = sp->o.fsync_interval_ms / 1000.0;
    ev_timer_init(&sp->timer, sync_timer_cb, p, p);
    ev_timer_start(loop, &sp->timer);
}

/* See spool.h. */
void bs_spool_close(bs_spool *sp)
{
    if (!sp) return;
    if (sp->loop) ev_timer_stop(sp->loop, &sp->timer);
    if (sp->dirty && bs_spool_sync(sp) != BS_OK)
        BS_LOG_ERRORF(MOD, "final fsync of %s failed", sp->dir);
    if (sp->active_fd >= 0) close(sp->active_fd);
    bs_unlock_file(sp->lock_fd);
    free(sp->segs);
    free(sp->sizes);
    free(sp->dir);
    free(sp);
}

/* See spool.h. */
bs_status bs_spool_sync(bs_spool *sp)
{
    if (sp->synced_size == sp->active_size) return BS_OK;
    if (fdatasync(sp->active_fd) != 0) return BS_E_IO;
    sp->synced_size = sp->active_size;
    sp->dirty = false;
    for (bs_spool_reader *r = sp->readers; r; r = r->next)
        if (r->notify) r->notify(r->notify_arg);
    return BS_OK;
}

/* Admission limit for `stream` (see bs_spool_append). */
static uint64_t admit_limit(const bs_spool *sp, bs_stream s)
{
    switch (s) {
    case BS_STREAM_LOGS:
        return sp->o.max_bytes / 100 * sp->o.logs_limit_pct;
    case BS_STREAM_METRICS:
        return sp->o.max_bytes;
    default:
        return sp->o.max_bytes + sp->o.audit_reserve_bytes;
    }
}

/* Count and log a refused event. */
static bs_status reject(bs_spool *sp, bs_stream s, const char *why)
{
    sp->st.rejected[s]++;
    bs_metric_add(sp->m_rejected[s], 1);
    if (s == BS_STREAM_AUDIT)
        BS_LOG_ERRORF(MOD, "AUDIT EVENT REFUSED: %s (spool %s, %" PRIu64 " bytes)", why, sp->dir,
                      sp->bytes);
    return BS_E_FULL;
}

/* See spool.h. */
bs_status bs_spool_append(bs_spool *sp, bs_stream stream, const void *payload, size_t len,
                          unsigned flags, uint64_t *seq_out)
{
    BS_ENSURE((unsigned)stream < BS_STREAM_COUNT, BS_E_STATE);
    BS_ENSURE(len <= sp->o.max_record_bytes, BS_E_TOO_LARGE);
    uint64_t rec = REC_HDR + len;
    if (sp->bytes + rec > admit_limit(sp, stream)) return reject(sp, stream, "spool is full");
    if (sp->active_size > 0 && sp->active_size + rec > sp->o.segment_bytes) {
        /* roll: the old segment must be durable before readers may see past it */
        BS_GUARD(bs_spool_sync(sp));
        bs_status st = create_segment(sp, sp->next_seq);
        if (st != BS_OK) {
            if (errno == ENOSPC || errno == EDQUOT) return reject(sp, stream, "disk full");
            return st;
        }
    }
    uint8_t hdr[REC_HDR];
    bs_wbuf w = {.data = hdr, .cap = sizeof hdr};
    bs_wbuf_put_be32(&w, REC_MAGIC);
    bs_wbuf_put_be32(&w, (uint32_t)len);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_u8(&w, (uint8_t)stream);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_be16(&w, 0);
    bs_wbuf_put_be64(&w, sp->next_seq);
    /* the header lives in a fixed stack array: fill the CRC in place */
    uint32_t crc = rec_crc(hdr + 12, payload, len);
    hdr[8] = (uint8_t)(crc >> 24);
    hdr[9] = (uint8_t)(crc >> 16);
    hdr[10] = (uint8_t)(crc >> 8);
    hdr[11] = (uint8_t)crc;
    size_t done = 0;
    int err = 0;
    while (done < rec) {
        struct iovec v[2];
        int n = 0;
        if (done < REC_HDR) v[n++] = (struct iovec){hdr + done, REC_HDR - done};
        size_t po = done > REC_HDR ? done - REC_HDR : 0;
        if (len > po) v[n++] = (struct iovec){(uint8_t *)payload + po, len - po};
        ssize_t wr = writev(sp->active_fd, v, n);
        if (wr < 0 && errno == EINTR) continue;
        if (wr <= 0) {
            err = wr < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)wr;
    }
    if (err) {
        /* never leave half a record behind: later appends would follow garbage */
        if (done && ftruncate(sp->active_fd, (off_t)sp->active_size) != 0)
            BS_LOG_ERRORF(MOD, "cannot cut partial record: %s", strerror(errno));
        if (err == ENOSPC || err == EFBIG || err == EDQUOT) return reject(sp, stream, "disk full");
        BS_LOG_ERRORF(MOD, "write to spool %s failed: %s", sp->dir, strerror(err));
        errno = err;
        return BS_E_IO;
    }
    sp->active_size += rec;
    sp->sizes[sp->n_segs - 1] = sp->active_size;
    sp->bytes += rec;
    sp->dirty = true;
    sp->st.appended++;
    bs_metric_add(sp->m_appended, 1);
    bs_metric_set(sp->m_bytes, (int64_t)sp->bytes);
    if (seq_out) *seq_out = sp->next_seq;
    sp->next_seq++;
    if (flags & BS_SPOOL_FSYNC) BS_GUARD(bs_spool_sync(sp));
    return BS_OK;
}

/* See spool.h. */
uint64_t bs_spool_bytes(const bs_spool *sp)
{
    return sp->bytes;
}
/* See spool.h. */
uint64_t bs_spool_next_seq(const bs_spool *sp)
{
    return sp->next_seq;
}
const char *bs_spool_id(const bs_spool *sp)
{
    return sp->id;
}
const char *bs_spool_dir(const bs_spool *sp)
{
    return sp->dir;
}

/* See spool.h. */
void bs_spool_event_id(const bs_spool *sp, uint64_t seq, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s-%" PRIu64, sp->id, seq);
}

/* See spool.h. */
void bs_spool_get_stats(const bs_spool *sp, bs_spool_stats *st)
{
    *st = sp->st;
}

/* ---- readers ---- */

/* Path of a registered reader's cursor file. */
static bs_status cursor_path(const bs_spool_reader *r, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/cursors/%s.%s.cur", r->sp->dir, r->name,
                     bs_stream_name(r->stream));
    return (n < 0 || (size_t)n >= outlen) ? BS_E_TOO_LARGE : BS_OK;
}

/* Load a persisted cursor; BS_E_NOT_FOUND if the reader has none. */
static bs_status load_cursor(bs_spool_reader *r)
{
    char path[4200];
    BS_GUARD(cursor_path(r, path, sizeof path));
    FILE *f = fopen(path, "re");
    if (!f) return errno == ENOENT ? BS_E_NOT_FOUND : BS_E_IO;
    uint64_t seg, off, next;
    int n = fscanf(f, "bsc1 %" SCNu64 " %" SCNu64 " %" SCNu64, &seg, &off, &next);
    fclose(f);
    if (n != 3) {
        BS_LOG_ERRORF(MOD, "%s: malformed cursor file", path);
        return BS_E_MALFORMED;
    }
    r->cursor = (bs_spool_pos){seg, off, next};
    return BS_OK;
}

/* First position of the spool (oldest segment, offset 0). */
static bs_spool_pos spool_start(const bs_spool *sp)
{
    return (bs_spool_pos){sp->segs[0], 0, sp->segs[0]};
}

/* Allocate and link a reader. */
static bs_status reader_new(bs_spool *sp, bs_stream stream, bs_spool_reader **out)
{
    BS_ENSURE((unsigned)stream < BS_STREAM_COUNT, BS_E_CONFIG);
    bs_spool_reader *r = calloc(1, sizeof *r);
    BS_ENSURE(r, BS_E_NOMEM);
    r->sp = sp;
    r->stream = stream;
    r->fd = -1;
    r->next = sp->readers;
    sp->readers = r;
    *out = r;
    return BS_OK;
}

/* See spool.h. */
bs_status bs_spool_reader_open(bs_spool *sp, const char *name, bs_stream stream,
                               bs_spool_reader **out)
{
    size_t nl = name ? strlen(name) : 0;
    BS_ENSURE(
        nl >= 1 && nl <= 64 &&
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
                nl &&
            name[0] != '.',
        BS_E_CONFIG);
    for (bs_spool_reader *o = sp->readers; o; o = o->next)
        BS_ENSURE(!(o->registered && o->stream == stream && strcmp(o->name, name) == 0),
                  BS_E_STATE);
    bs_spool_reader *r;
    BS_GUARD(reader_new(sp, stream, &r));
    memcpy(r->name, name, nl + 1);
    r->registered = true;
    bs_status st = load_cursor(r);
    if (st == BS_E_NOT_FOUND || (st == BS_OK && seg_index(sp, r->cursor.seg) < 0)) {
        /* new reader, or its segment is gone (deleted while it was not
         * registered): start at the oldest record still here */
        if (st == BS_OK)
            BS_LOG_WARNF(MOD,
                         "reader %s.%s: cursor segment %" PRIu64 " is gone, starting at the oldest",
                         name, bs_stream_name(stream), r->cursor.seg);
        r->cursor = spool_start(sp);
        st = BS_OK;
    }
    if (st != BS_OK) {
        bs_spool_reader_close(r);
        return st;
    }
    r->pos = r->prev = r->cursor;
    *out = r;
    return BS_OK;
}

/* See spool.h. */
bs_status bs_spool_reader_open_at(bs_spool *sp, bs_stream stream, uint64_t from_seq,
                                  bs_spool_reader **out)
{
    bs_spool_reader *r;
    BS_GUARD(reader_new(sp, stream, &r));
    size_t i = 0;
    while (i + 1 < sp->n_segs && sp->segs[i + 1] <= from_seq)
        i++;
    r->pos = r->cursor = r->prev = (bs_spool_pos){sp->segs[i], 0, sp->segs[i]};
    /* skip records below from_seq; they are read (headers and payload) once */
    bs_spool_record rec;
    bs_status st;
    while ((st = bs_spool_read(r, &rec)) == BS_OK) {
        if (rec.seq >= from_seq) {
            bs_spool_unread(r);
            break;
        }
    }
    if (st != BS_OK && st != BS_E_AGAIN) {
        bs_spool_reader_close(r);
        return st;
    }
    *out = r;
    return BS_OK;
}

/* See spool.h. */
void bs_spool_reader_close(bs_spool_reader *r)
{
    if (!r) return;
    for (bs_spool_reader **p = &r->sp->readers; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    if (r->fd >= 0) close(r->fd);
    free(r->buf);
    free(r);
}

/* See spool.h. */
void bs_spool_reader_set_notify(bs_spool_reader *r, void (*fn)(void *), void *arg)
{
    r->notify = fn;
    r->notify_arg = arg;
}

/* Make buf hold [off, off+need) of the reader's segment, reading ahead up to
 * `limit`. BS_E_SHORT if the segment ends before. */
static bs_status fill(bs_spool_reader *r, uint64_t off, size_t need, uint64_t limit)
{
    if (off >= r->buf_off && off + need <= r->buf_off + r->buf_len) return BS_OK;
    if (off + need > limit) return BS_E_SHORT;
    size_t want = need > READ_CHUNK ? need : READ_CHUNK;
    if (off + want > limit) want = (size_t)(limit - off);
    if (want > r->buf_cap) {
        uint8_t *nb = realloc(r->buf, want);
        if (!nb) return BS_E_NOMEM;
        r->buf = nb;
        r->buf_cap = want;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return BS_E_IO;
        if (n == 0) break;
        got += (size_t)n;
    }
    r->buf_off = off;
    r->buf_len = got;
    return got >= need ? BS_OK : BS_E_SHORT;
}

/* Open segment `seg` for reading (if not already). */
static bs_status reader_open_seg(bs_spool_reader *r, uint64_t seg)
{
    if (r->fd >= 0 && r->fd_seg == seg) return BS_OK;
    char path[4200];
    BS_GUARD(seg_path(r->sp, seg, path, sizeof path));
    if (r->fd >= 0) close(r->fd);
    r->buf_len = 0;
    r->buf_off = 0;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) return BS_E_IO;
    r->fd_seg = seg;
    return BS_OK;
}

/* Count a skipped corrupt region. */
static void count_corrupt(bs_spool_reader *r, uint64_t off, uint64_t to)
{
    r->sp->st.corrupt_records++;
    bs_metric_add(r->sp->m_corrupt, 1);
    BS_LOG_WARNF(MOD, "segment %020" PRIu64 ".seg: skipping corrupt bytes %" PRIu64 "..%" PRIu64,
                 r->pos.seg, off, to);
}

/* See spool.h. */
bs_status bs_spool_read(bs_spool_reader *r, bs_spool_record *rec)
{
    bs_spool *sp = r->sp;
    for (;;) {
        long i = seg_index(sp, r->pos.seg);
        if (i < 0) {
            /* our segment was deleted under us (acked by everyone): start over at the oldest */
            if (sp->segs[0] <= r->pos.seg) return BS_E_STATE;
            r->pos = spool_start(sp);
            continue;
        }
        bool active = (size_t)i == sp->n_segs - 1;
        uint64_t limit = active ? sp->synced_size : sp->sizes[i];
        if (r->pos.off >= limit) {
            if (active) return BS_E_AGAIN;
            r->pos = (bs_spool_pos){sp->segs[i + 1], 0, sp->segs[i + 1]};
            continue;
        }
        BS_GUARD(reader_open_seg(r, r->pos.seg));
        uint64_t off = r->pos.off;
        bs_status st = fill(r, off, REC_HDR, limit);
        uint32_t len = 0;
        uint8_t s = 0;
        uint64_t seq = 0;
        if (st == BS_OK) {
            const uint8_t *h = r->buf + (off - r->buf_off);
            /* header fields first, to know how many bytes to pull in */
            len = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
            if (len <= sp->o.max_record_bytes) st = fill(r, off, REC_HDR + len, limit);
            if (st == BS_OK)
                st = rec_parse(r->buf + (off - r->buf_off), r->buf_len - (size_t)(off - r->buf_off),
                               sp->o.max_record_bytes, &len, &s, &seq);
        }
        if (st == BS_E_NOMEM || st == BS_E_IO) return st;
        if (st != BS_OK) {
            /* corruption: scan forward within the segment for the next valid record */
            uint8_t *all = NULL;
            BS_GUARD(read_region(r->fd, off, (size_t)(limit - off), &all));
            size_t nx = find_next_valid(all, (size_t)(limit - off), 1, sp->o.max_record_bytes);
            free(all);
            count_corrupt(r, off, off + nx);
            r->pos.off = off + nx;
            r->buf_len = 0;
            continue;
        }
        r->prev = r->pos;
        r->pos.off = off + REC_HDR + len;
        r->pos.next_seq = seq + 1;
        if (s != r->stream) continue;
        rec->seq = seq;
        rec->stream = (bs_stream)s;
        rec->payload = r->buf + (off - r->buf_off) + REC_HDR;
        rec->len = len;
        rec->end = r->pos;
        return BS_OK;
    }
}

/* See spool.h. */
void bs_spool_unread(bs_spool_reader *r)
{
    r->pos = r->prev;
}

/* See spool.h. */
void bs_spool_reader_rewind(bs_spool_reader *r)
{
    r->pos = r->prev = r->cursor;
}

/* Delete segments that every registered reader has passed (never the active one). */
static void collect(bs_spool *sp)
{
    uint64_t min = UINT64_MAX;
    bool any = false;
    for (bs_spool_reader *r = sp->readers; r; r = r->next)
        if (r->registered) {
            any = true;
            if (r->cursor.seg < min) min = r->cursor.seg;
        }
    if (!any) return;
    size_t drop = 0;
    while (drop + 1 < sp->n_segs && sp->segs[drop] < min) {
        char path[4200];
        if (seg_path(sp, sp->segs[drop], path, sizeof path) != BS_OK || unlink(path) != 0) {
            BS_LOG_ERRORF(MOD, "cannot delete segment %s: %s", path, strerror(errno));
            break;
        }
        sp->bytes -= sp->sizes[drop];
        drop++;
    }
    if (!drop) return;
    memmove(sp->segs, sp->segs + drop, (sp->n_segs - drop) * sizeof *sp->segs);
    memmove(sp->sizes, sp->sizes + drop, (sp->n_segs - drop) * sizeof *sp->sizes);
    sp->n_segs -= drop;
    sp->st.segments = sp->n_segs;
    bs_metric_set(sp->m_bytes, (int64_t)sp->bytes);
}

/* See spool.h. */
bs_status bs_spool_ack(bs_spool_reader *r, bs_spool_pos end)
{
    BS_ENSURE(r->registered, BS_E_STATE);
    /* an ack pointing into a segment that is not ours any more is a caller bug */
    BS_ENSURE(seg_index(r->sp, end.seg) >= 0, BS_E_STATE);
    r->cursor = end;
    char path[4200], line[96];
    BS_GUARD(cursor_path(r, path, sizeof path));
    int n = snprintf(line, sizeof line, "bsc1 %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", end.seg,
                     end.off, end.next_seq);
    bs_status st = bs_write_atomic(path, line, (size_t)n);
    if (st != BS_OK) {
        BS_LOG_ERRORF(MOD, "cannot persist cursor %s: %s", path, strerror(errno));
        return st;
    }
    collect(r->sp);
    return BS_OK;
}

/* See spool.h. */
bs_spool_pos bs_spool_reader_pos(const bs_spool_reader *r)
{
    return r->pos;
}
/* See spool.h. */
bs_spool_pos bs_spool_reader_cursor(const bs_spool_reader *r)
{
    return r->cursor;
}

/* See spool.h. */
uint64_t bs_spool_reader_lag_bytes(const bs_spool_reader *r)
{
    const bs_spool *sp = r->sp;
    uint64_t lag = 0;
    for (size_t i = 0; i < sp->n_segs; i++) {
        if (sp->segs[i] < r->cursor.seg) continue;
        lag += sp->sizes[i];
        if (sp->segs[i] == r->cursor.seg)
            lag -= r->cursor.off < sp->sizes[i] ? r->cursor.off : sp->sizes[i];
    }
    return lag;
}
