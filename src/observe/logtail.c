/* logtail.c - follow log4j files into the spool with exact-once checkpoints (see logtail.h). */
#include "brokerside/fsutil.h"
#include "brokerside/logtail.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "brokerside/buf.h"
#include "brokerside/cursor.h"
#include "brokerside/log.h"
#include "brokerside/metrics.h"
#include "brokerside/text.h"

#define MOD "logtail"
#define HEAD_BYTES 64u
#define READ_CHUNK (1u << 20)
#define MAX_READ_PER_POLL (8u << 20)

typedef struct tfile {
    char *path;
    int fd;
    uint64_t dev, ino;
    uint64_t off;  /* consumed: everything before is in the spool */
    uint8_t *buf;  /* allocation (pend_cap bytes) */
    uint8_t *pend; /* into buf: bytes [off, off + pend_len) read but not emitted */
    size_t pend_len, pend_cap;
    size_t scanned; /* pend[0..scanned): complete lines of the event being assembled */
    size_t ev_lines;
    ev_tstamp last_data;
    uint64_t head_hash;
    uint32_t head_len;
    bool plain;  /* one event per line (format "plain"), else log4j rules */
    bool seen;   /* matched by a pattern in this poll */
    bool orphan; /* no pattern matches its inode any more: drain and drop */
} tfile;

typedef struct ckpt {
    uint64_t dev, ino, off, head_hash;
    uint32_t head_len;
    char path[1024]; /* last known name (for files renamed away), may be empty */
} ckpt;

struct bs_logtail {
    struct ev_loop *loop;
    bs_spool *sp;
    bs_logtail_options o;
    char **patterns;
    char *state_path;
    int lock_fd; /* flock on <state_path>.lock: one tailer per checkpoint */
    tfile **files;
    size_t n_files, cap_files;
    ckpt *ck; /* checkpoint entries not yet matched to a file */
    size_t n_ck;
    ckpt *unreadable; /* inodes already reported as unreadable */
    size_t n_unreadable;
    bool dirty; /* offsets moved since the last checkpoint */
    bool blocked;
    ev_timer timer;
    bs_wbuf ev, scratch, clean;
    bs_logtail_stats st;
    bs_metric *m_events, *m_blocked, *m_rot, *m_trunc;
};

/* FNV-1a 64 over the first bytes of a file (reuse / copytruncate detection). */
static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Hash of the first `n` bytes of fd; false if it has fewer. */
static bool head_of(int fd, uint32_t n, uint64_t *h)
{
    uint8_t b[HEAD_BYTES];
    if (n > HEAD_BYTES) return false;
    ssize_t r = pread(fd, b, n, 0);
    if (r != (ssize_t)n) return false;
    *h = fnv1a(b, n);
    return true;
}

/* The only padding log4j puts after the level: ' '. */
static bool is_sp(uint8_t b)
{
    return b == ' ';
}

/* Read `digits` decimal digits in [lo, hi], then the separator `sep` (0: none). */
static bool field(bs_cursor *c, unsigned digits, uint64_t lo, uint64_t hi, char sep, int *out)
{
    uint64_t v;
    if (bs_cursor_parse_decimal(c, digits, digits, hi, &v) != BS_OK || v < lo) return false;
    if (sep && !bs_cursor_accept(c, &sep, 1)) return false;
    *out = (int)v;
    return true;
}

/* See logtail.h. */
bs_status bs_logtail_parse_start(const char *line, size_t len, int tz_offset_min, int64_t *epoch_ms,
                                 const char **level, size_t *level_len, const char **rest,
                                 size_t *rest_len)
{
    /* [2026-11-24 21:00:00,123] INFO  */
    bs_cursor c;
    bs_cursor_init(&c, line, len);
    int Y, M, D, h, mi, s, ms;
    BS_ENSURE(bs_cursor_accept(&c, "[", 1), BS_E_MALFORMED);
    BS_ENSURE(field(&c, 4, 0, 9999, '-', &Y) && field(&c, 2, 1, 12, '-', &M) &&
                  field(&c, 2, 1, 31, ' ', &D) && field(&c, 2, 0, 23, ':', &h) &&
                  field(&c, 2, 0, 59, ':', &mi) && field(&c, 2, 0, 60, ',', &s) &&
                  field(&c, 3, 0, 999, ']', &ms),
              BS_E_MALFORMED);
    BS_ENSURE(bs_cursor_accept(&c, " ", 1), BS_E_MALFORMED);
    const uint8_t *lvl;
    size_t ll = bs_cursor_take_while(&c, bs_byte_is_upper, &lvl);
    BS_ENSURE(ll >= 4 && ll <= 5, BS_E_MALFORMED); /* INFO WARN DEBUG ERROR TRACE FATAL */
    BS_ENSURE(!bs_cursor_remaining(&c) || bs_cursor_at(&c, ' '), BS_E_MALFORMED);
    const uint8_t *spaces;
    (void)bs_cursor_take_while(&c, is_sp, &spaces);
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    *epoch_ms = ((int64_t)timegm(&tm) - (int64_t)tz_offset_min * 60) * 1000 + ms;
    *level = (const char *)lvl;
    *level_len = ll;
    *rest = line + c.pos;
    *rest_len = len - c.pos;
    return BS_OK;
}

/* A byte a logger name may hold: anything but a space or ')'. */
static bool is_logger_byte(uint8_t b)
{
    return b != ' ' && b != ')';
}

/* Split Kafka's trailing " (logger.name)" off the first line's text `rest`:
 * the logger is what follows the last " (" up to the final ')', if it holds
 * no space or ')'. Sets *logger and *logger_len (NULL, 0 when there is none)
 * and *msg_len, the length of the message before it. */
static void split_logger(const char *rest, size_t rest_len, const char **logger,
                         size_t *logger_len, size_t *msg_len)
{
    *logger = NULL;
    *logger_len = 0;
    *msg_len = rest_len;
    if (rest_len < 3 || rest[rest_len - 1] != ')') return;
    bs_cursor c;
    bs_cursor_init(&c, rest, rest_len - 1); /* without the final ')' */
    const uint8_t *before;
    size_t n, open = SIZE_MAX; /* offset of the last " (" */
    while (bs_cursor_take_until_lit(&c, " (", 2, &before, &n) == BS_OK)
        open = c.pos - 2;
    if (open == SIZE_MAX) return;
    bs_cursor name;
    bs_cursor_init(&name, rest + open + 2, rest_len - 1 - (open + 2));
    const uint8_t *lg;
    size_t lg_len = bs_cursor_take_while(&name, is_logger_byte, &lg);
    if (bs_cursor_remaining(&name)) return;
    *logger = (const char *)lg;
    *logger_len = lg_len;
    *msg_len = open;
}

/* Render the event pend[a..b) of file f (lines, newline-terminated except
 * maybe the last) as JSON into t->ev. */
static void render(bs_logtail *t, tfile *f, size_t a, size_t b)
{
    bs_wbuf *w = &t->ev;
    const char *s = (const char *)f->pend + a;
    size_t len = b - a;
    if (!bs_utf8_valid((const uint8_t *)s, len)) {
        /* JSON consumers (and AWS APIs) reject invalid UTF-8 */
        bs_wbuf_reset(&t->clean);
        bs_utf8_sanitize((const uint8_t *)s, len, &t->clean);
        if (bs_wbuf_status(&t->clean) != BS_OK) {
            w->failed = true;
            return;
        }
        s = (const char *)t->clean.data;
        len = t->clean.len;
    }
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    const char *nl = memchr(s, '\n', len);
    size_t first = nl ? (size_t)(nl - s) : len;
    size_t fl = first && s[first - 1] == '\r' ? first - 1 : first;
    int64_t ms;
    const char *lvl, *rest;
    size_t lvl_len, rest_len;
    bs_wbuf_reset(w);
    bs_wbuf_put_u8(w, '{');
    if (!f->plain && bs_logtail_parse_start(s, fl, t->o.tz_offset_min, &ms, &lvl, &lvl_len, &rest,
                                            &rest_len) == BS_OK) {
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        char ts[40];
        gmtime_r(&secs, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        bs_wbuf_printf(w, "\"time\":\"%s.%03dZ\",\"level\":", ts, (int)(ms % 1000));
        bs_wbuf_put_json_string(w, lvl, lvl_len);
        /* Kafka's layout ends the first line with " (logger.name)" */
        const char *logger;
        size_t logger_len, msg_first;
        split_logger(rest, rest_len, &logger, &logger_len, &msg_first);
        if (logger && logger_len) {
            bs_wbuf_put_str(w, ",\"logger\":");
            bs_wbuf_put_json_string(w, logger, logger_len);
        }
        /* message: the first line's text, then the continuation lines */
        bs_wbuf_put_str(w, ",\"message\":");
        if (nl) {
            bs_wbuf_reset(&t->scratch);
            bs_wbuf_put(&t->scratch, rest, msg_first);
            bs_wbuf_put(&t->scratch, s + first, len - first);
            if (bs_wbuf_status(&t->scratch) != BS_OK)
                w->failed = true;
            else
                bs_wbuf_put_json_string(w, (const char *)t->scratch.data, t->scratch.len);
        } else {
            bs_wbuf_put_json_string(w, rest, msg_first);
        }
    } else {
        /* a "plain" line, or no start line (the file began mid-event): the text as is */
        bs_wbuf_put_str(w, "\"message\":");
        bs_wbuf_put_json_string(w, s, len);
    }
    bs_wbuf_put_str(w, ",\"file\":");
    bs_wbuf_put_json_string(w, f->path, strlen(f->path));
    bs_wbuf_printf(
        w, ",\"dev\":%" PRIu64 ",\"inode\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"end\":%" PRIu64 "}",
        f->dev, f->ino, f->off + a, f->off + b);
}

/* Drop pend[0..n) after it went into the spool. */
static void consume(tfile *f, size_t n)
{
    /* no copy per event: the buffer is compacted once per read */
    f->pend += n;
    f->pend_len -= n;
    f->scanned -= n;
    f->off += n;
}

/* Append pend[a..b) as one event. */
static bs_status emit(bs_logtail *t, tfile *f, size_t a, size_t b, size_t lines)
{
    render(t, f, a, b);
    BS_GUARD(bs_wbuf_status(&t->ev));
    bs_status st = bs_spool_append(t->sp, BS_STREAM_LOGS, t->ev.data, t->ev.len, 0, NULL);
    if (st == BS_E_FULL) {
        if (!t->blocked)
            BS_LOG_WARNF(MOD, "spool full: pausing %s at offset %" PRIu64, f->path, f->off + a);
        t->blocked = true;
        t->st.blocked++;
        bs_metric_add(t->m_blocked, 1);
        return st;
    }
    BS_GUARD(st);
    t->blocked = false;
    t->st.events++;
    t->st.lines += lines;
    t->st.bytes += b - a;
    bs_metric_add(t->m_events, 1);
    t->dirty = true;
    return BS_OK;
}

/* Split pend into lines and emit every finished event. The event being
 * assembled always starts at pend[0] (emitted bytes are consumed). `final`
 * (file gone or truncated): also emit the unfinished one, including a last
 * line without a newline. */
static bs_status assemble(bs_logtail *t, tfile *f, bool final, ev_tstamp now)
{
    while (f->scanned < f->pend_len) {
        uint8_t *nl = memchr(f->pend + f->scanned, '\n', f->pend_len - f->scanned);
        if (!nl) break;
        size_t ls = f->scanned, le = (size_t)(nl - f->pend) + 1;
        int64_t ms;
        const char *lv, *rest;
        size_t lvl, rl;
        size_t tl = le - ls - 1; /* without the newline */
        bool start = f->plain || bs_logtail_parse_start((const char *)f->pend + ls, tl, 0, &ms,
                                                        &lv, &lvl, &rest, &rl) == BS_OK;
        if (start && ls > 0) {
            /* the previous event (always at pend[0]) is complete */
            BS_GUARD(emit(t, f, 0, ls, f->ev_lines));
            consume(f, ls);
            le -= ls;
            f->ev_lines = 0;
        }
        f->ev_lines++;
        f->scanned = le;
        if (f->scanned >= t->o.max_event_bytes) {
            BS_GUARD(emit(t, f, 0, f->scanned, f->ev_lines));
            consume(f, f->scanned);
            f->ev_lines = 0;
        }
    }
    bool quiet = now - f->last_data >= t->o.flush_ms / 1000.0;
    if (f->scanned > 0 && (quiet || final)) {
        BS_GUARD(emit(t, f, 0, f->scanned, f->ev_lines));
        consume(f, f->scanned);
        f->ev_lines = 0;
    }
    if (final && f->pend_len > 0) {
        /* a last line without its newline: the writer is gone */
        BS_GUARD(emit(t, f, 0, f->pend_len, 1));
        consume(f, f->pend_len);
        f->ev_lines = 0;
    }
    return BS_OK;
}

/* Read what is new in f (bounded per poll). Detects copytruncate. */
static bs_status read_new(bs_logtail *t, tfile *f, ev_tstamp now, bool *truncated)
{
    struct stat sb;
    *truncated = false;
    if (fstat(f->fd, &sb) != 0) return BS_E_IO;
    uint64_t have = f->off + f->pend_len;
    uint64_t h;
    bool head_changed = f->head_len && (uint64_t)sb.st_size >= f->head_len &&
                        head_of(f->fd, f->head_len, &h) && h != f->head_hash;
    if ((uint64_t)sb.st_size < have || head_changed) {
        *truncated = true;
        return BS_OK;
    }
    size_t budget = MAX_READ_PER_POLL;
    while (budget && !t->blocked) {
        if (f->pend != f->buf) {
            memmove(f->buf, f->pend, f->pend_len);
            f->pend = f->buf;
        }
        if (f->pend_cap - f->pend_len < READ_CHUNK) {
            size_t nc = f->pend_cap ? f->pend_cap * 2 : 2 * READ_CHUNK;
            uint8_t *np = realloc(f->buf, nc);
            if (!np) return BS_E_NOMEM;
            f->buf = f->pend = np;
            f->pend_cap = nc;
        }
        ssize_t r = pread(f->fd, f->pend + f->pend_len, READ_CHUNK, (off_t)(f->off + f->pend_len));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return BS_E_IO;
        if (r == 0) break;
        f->pend_len += (size_t)r;
        f->last_data = now;
        budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
        if (f->head_len < HEAD_BYTES && f->off == 0 && f->pend_len > f->head_len) {
            f->head_len = f->pend_len < HEAD_BYTES ? (uint32_t)f->pend_len : HEAD_BYTES;
            f->head_hash = fnv1a(f->pend, f->head_len);
        }
        bs_status st = assemble(t, f, false, now);
        if (st == BS_E_FULL) return BS_OK;
        BS_GUARD(st);
    }
    return BS_OK;
}

/* Start over at offset 0 (copytruncate): flush what was read before. */
static bs_status restart_file(bs_logtail *t, tfile *f, ev_tstamp now)
{
    BS_GUARD(assemble(t, f, true, now));
    BS_LOG_INFOF(MOD, "%s was truncated: reading from the start", f->path);
    t->st.truncations++;
    bs_metric_add(t->m_trunc, 1);
    f->off = 0;
    f->pend_len = f->scanned = f->ev_lines = 0;
    f->pend = f->buf;
    f->head_len = 0;
    t->dirty = true;
    return BS_OK;
}

/* Free a file entry. */
static void tfile_free(tfile *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    free(f->buf);
    free(f->path);
    free(f);
}

/* Remember an unreadable inode; true the first time (so it is logged once). */
static bool note_unreadable(bs_logtail *t, const struct stat *sb)
{
    for (size_t i = 0; i < t->n_unreadable; i++)
        if (t->unreadable[i].dev == (uint64_t)sb->st_dev &&
            t->unreadable[i].ino == (uint64_t)sb->st_ino)
            return false;
    ckpt *n = realloc(t->unreadable, (t->n_unreadable + 1) * sizeof *n);
    if (!n) return true;
    t->unreadable = n;
    memset(&n[t->n_unreadable], 0, sizeof *n);
    n[t->n_unreadable].dev = (uint64_t)sb->st_dev;
    n[t->n_unreadable].ino = (uint64_t)sb->st_ino;
    t->n_unreadable++;
    return true;
}

/* True when every configured file is "plain": the format of a checkpointed
 * file found under a name no pattern matches any more. */
static bool all_plain(const bs_logtail *t)
{
    for (size_t i = 0; i < t->o.n_files; i++)
        if (!t->o.plain || !t->o.plain[i]) return false;
    return true;
}

/* Open `path` (dev/ino already known) as a new tracked file, resuming from a
 * matching checkpoint entry. */
static bs_status track(bs_logtail *t, const char *path, const struct stat *sb, bool initial,
                       bool plain)
{
    tfile *f = calloc(1, sizeof *f);
    BS_ENSURE(f, BS_E_NOMEM);
    f->plain = plain;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    f->path = strdup(path);
    if (!f->path) {
        tfile_free(f);
        return BS_E_NOMEM;
    }
    if (f->fd < 0) {
        /* gone between glob and open, or unreadable: the other files go on;
         * an unreadable file is reported once per inode */
        int err = errno;
        tfile_free(f);
        if (err != ENOENT && note_unreadable(t, sb))
            BS_LOG_ERRORF(MOD, "cannot read %s: %s (skipped until it becomes readable)", path,
                          strerror(err));
        return BS_OK;
    }
    f->dev = (uint64_t)sb->st_dev;
    f->ino = (uint64_t)sb->st_ino;
    bool resumed = false;
    for (size_t i = 0; i < t->n_ck; i++) {
        ckpt *c = &t->ck[i];
        if (c->dev != f->dev || c->ino != f->ino) continue;
        uint64_t h;
        bool same = c->head_len == 0 || (head_of(f->fd, c->head_len, &h) && h == c->head_hash);
        if (same && c->off <= (uint64_t)sb->st_size) {
            f->off = c->off;
            f->head_len = c->head_len;
            f->head_hash = c->head_hash;
            resumed = true;
        } else {
            BS_LOG_INFOF(MOD, "%s: inode reused or truncated since the checkpoint: reading from 0",
                         path);
        }
        t->ck[i] = t->ck[--t->n_ck];
        break;
    }
    if (!resumed && initial && t->o.start_at_end) f->off = (uint64_t)sb->st_size;
    if (!resumed && f->off &&
        !head_of(f->fd, f->off < HEAD_BYTES ? (uint32_t)f->off : HEAD_BYTES, &f->head_hash)) {
        tfile_free(f);
        return BS_E_IO;
    }
    if (!resumed && f->off) f->head_len = f->off < HEAD_BYTES ? (uint32_t)f->off : HEAD_BYTES;
    f->last_data = ev_time();
    f->seen = true;
    if (t->n_files == t->cap_files) {
        size_t nc = t->cap_files ? t->cap_files * 2 : 8;
        tfile **nf = realloc(t->files, nc * sizeof *nf);
        if (!nf) {
            tfile_free(f);
            return BS_E_NOMEM;
        }
        t->files = nf;
        t->cap_files = nc;
    }
    t->files[t->n_files++] = f;
    t->st.files++;
    t->dirty = true;
    BS_LOG_INFOF(MOD, "following %s (inode %" PRIu64 ") from offset %" PRIu64, path, f->ino,
                 f->off);
    return BS_OK;
}

/* Re-glob every pattern: track new inodes, mark inodes no pattern matches. */
static bs_status scan_patterns(bs_logtail *t, bool initial)
{
    for (size_t i = 0; i < t->n_files; i++)
        t->files[i]->seen = false;
    for (size_t p = 0; p < t->o.n_files; p++) {
        glob_t g;
        int rc = glob(t->patterns[p], GLOB_NOSORT, NULL, &g);
        if (rc == GLOB_NOSPACE) {
            globfree(&g);
            return BS_E_NOMEM;
        }
        if (rc != 0) {
            /* no match yet, or a directory we cannot read: try again next poll */
            globfree(&g);
            continue;
        }
        for (size_t k = 0; k < g.gl_pathc; k++) {
            struct stat sb;
            if (stat(g.gl_pathv[k], &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
            tfile *hit = NULL;
            for (size_t i = 0; i < t->n_files; i++)
                if (t->files[i]->dev == (uint64_t)sb.st_dev &&
                    t->files[i]->ino == (uint64_t)sb.st_ino)
                    hit = t->files[i];
            if (hit) {
                hit->seen = true;
                hit->orphan = false;
                if (strcmp(hit->path, g.gl_pathv[k]) != 0) {
                    /* renamed (rotation) and still matched: same inode, same offset */
                    char *np = strdup(g.gl_pathv[k]);
                    if (np) {
                        free(hit->path);
                        hit->path = np;
                    }
                }
                continue;
            }
            bs_status st = track(t, g.gl_pathv[k], &sb, initial, t->o.plain && t->o.plain[p]);
            if (st != BS_OK) {
                globfree(&g);
                return st;
            }
            if (!initial) {
                t->st.rotations++;
                bs_metric_add(t->m_rot, 1);
            }
        }
        globfree(&g);
    }
    for (size_t i = 0; i < t->n_files; i++)
        if (!t->files[i]->seen) t->files[i]->orphan = true;
    return BS_OK;
}

/* Write the checkpoint: spool synced first, then the offsets, atomically. */
static bs_status checkpoint(bs_logtail *t)
{
    BS_GUARD(bs_spool_sync(t->sp));
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_printf(&w, "bslt1 %" PRIu64 "\n", bs_spool_next_seq(t->sp));
    for (size_t i = 0; i < t->n_files; i++) {
        tfile *f = t->files[i];
        char name[1024];
        const char *path = f->path;
        if (f->orphan) {
            /* renamed away: remember where it went, so a restart can finish it */
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", f->fd);
            ssize_t n = readlink(link, name, sizeof name - 1);
            name[n > 0 ? n : 0] = 0;
            path = name;
        }
        bs_wbuf_printf(&w, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %u %016" PRIx64 " %s\n", f->dev,
                       f->ino, f->off, f->head_len, f->head_hash, strchr(path, '\n') ? "" : path);
    }
    /* (n_ck is 0 after start-up; kept for completeness) */
    for (size_t i = 0; i < t->n_ck; i++)
        bs_wbuf_printf(&w, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %u %016" PRIx64 " %s\n",
                       t->ck[i].dev, t->ck[i].ino, t->ck[i].off, t->ck[i].head_len,
                       t->ck[i].head_hash, t->ck[i].path);
    bs_status st = bs_wbuf_status(&w);
    /* the rename is durable too: a checkpoint is only counted once it is */
    if (st == BS_OK) st = bs_write_atomic(t->state_path, w.data, w.len);
    bs_wbuf_free(&w);
    if (st == BS_OK) {
        t->dirty = false;
        t->st.checkpoints++;
    } else {
        BS_LOG_ERRORF(MOD, "cannot write checkpoint %s: %s", t->state_path, strerror(errno));
    }
    return st;
}

/* See logtail.h. */
bs_status bs_logtail_poll(bs_logtail *t)
{
    ev_tstamp now = ev_time();
    bs_status st = BS_OK;
    t->blocked = false;
    BS_GUARD_GOTO(st, scan_patterns(t, false), out);
    /* files that left every pattern first (renamed away or deleted): they hold
     * older lines than a new file at the same path */
    for (int pass = 0; pass < 2 && !t->blocked; pass++) {
        for (size_t i = 0; i < t->n_files && !t->blocked; i++) {
            tfile *f = t->files[i];
            if (f->orphan != (pass == 0)) continue;
            bool trunc;
            BS_GUARD_GOTO(st, read_new(t, f, now, &trunc), out);
            if (t->blocked) break;
            if (trunc) {
                st = restart_file(t, f, now);
                if (st == BS_E_FULL) break;
                BS_GUARD_GOTO(st, st, out);
                BS_GUARD_GOTO(st, read_new(t, f, now, &trunc), out);
                if (t->blocked) break;
            }
            st = assemble(t, f, f->orphan, now);
            if (st == BS_E_FULL) break;
            BS_GUARD_GOTO(st, st, out);
            if (f->orphan && f->pend_len == 0) {
                BS_LOG_INFOF(MOD, "%s (inode %" PRIu64 ") finished at offset %" PRIu64, f->path,
                             f->ino, f->off);
                tfile_free(f);
                t->files[i] = t->files[--t->n_files];
                t->dirty = true;
                i--;
            }
        }
    }
    st = BS_OK;
out:
    if (t->dirty) {
        bs_status cs = checkpoint(t);
        if (st == BS_OK) st = cs;
    }
    if (st == BS_OK && t->blocked) st = BS_E_FULL;
    return st;
}

/* Poll timer. */
static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bs_logtail *t = bs_container_of(w, bs_logtail, timer);
    bs_status st = bs_logtail_poll(t);
    if (st != BS_OK && st != BS_E_FULL) BS_LOG_ERRORF(MOD, "poll failed: %s", bs_status_name(st));
}

/* A lower-case or upper-case hexadecimal digit. */
static bool is_xdigit(uint8_t b)
{
    return bs_byte_is_digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

/* One checkpoint entry line (without its newline):
 * `DEV INO OFFSET HEAD_LEN HEAD_HASH PATH` (PATH may be empty). */
static bs_status parse_ckpt_line(const uint8_t *line, size_t len, bs_logtail_ckpt_entry *e)
{
    bs_cursor c;
    bs_cursor_init(&c, line, len);
    uint64_t head_len;
    BS_ENSURE(bs_cursor_parse_decimal(&c, 1, 19, UINT64_MAX, &e->dev) == BS_OK &&
                  bs_cursor_accept(&c, " ", 1) &&
                  bs_cursor_parse_decimal(&c, 1, 19, UINT64_MAX, &e->ino) == BS_OK &&
                  bs_cursor_accept(&c, " ", 1) &&
                  bs_cursor_parse_decimal(&c, 1, 19, INT64_MAX, &e->off) == BS_OK &&
                  bs_cursor_accept(&c, " ", 1) &&
                  bs_cursor_parse_decimal(&c, 1, 2, HEAD_BYTES, &head_len) == BS_OK &&
                  bs_cursor_accept(&c, " ", 1),
              BS_E_MALFORMED);
    const uint8_t *hex;
    size_t hex_len = bs_cursor_take_while(&c, is_xdigit, &hex);
    BS_ENSURE(hex_len >= 1 && hex_len <= 16 && bs_cursor_accept(&c, " ", 1), BS_E_MALFORMED);
    e->head_hash = 0;
    for (size_t i = 0; i < hex_len; i++)
        e->head_hash = e->head_hash << 4 |
                       (uint64_t)(bs_byte_is_digit(hex[i]) ? hex[i] - '0' : (hex[i] | 0x20) - 'a' + 10);
    e->head_len = (uint32_t)head_len;
    e->path = (const char *)bs_cursor_ptr(&c);
    e->path_len = bs_cursor_remaining(&c);
    BS_ENSURE(!memchr(e->path, '\0', e->path_len), BS_E_MALFORMED);
    return BS_OK;
}

/* See logtail.h. */
bs_status bs_logtail_parse_checkpoint(const void *text, size_t len, uint64_t *spool_seq,
                                      bs_logtail_ckpt_fn fn, void *arg)
{
    bs_cursor c;
    bs_cursor_init(&c, text, len);
    const uint8_t *line;
    size_t n;
    BS_ENSURE(bs_cursor_take_until(&c, '\n', &line, &n) == BS_OK, BS_E_MALFORMED);
    bs_cursor head;
    bs_cursor_init(&head, line, n);
    BS_ENSURE(bs_cursor_accept(&head, "bslt1 ", 6) &&
                  bs_cursor_parse_decimal(&head, 1, 19, INT64_MAX, spool_seq) == BS_OK &&
                  bs_cursor_remaining(&head) == 0,
              BS_E_MALFORMED);
    while (bs_cursor_remaining(&c)) {
        /* a last line without its newline was cut short: the writer replaces
         * the file atomically, so this is not a checkpoint it wrote */
        BS_ENSURE(bs_cursor_take_until(&c, '\n', &line, &n) == BS_OK, BS_E_MALFORMED);
        bs_logtail_ckpt_entry e;
        BS_GUARD(parse_ckpt_line(line, n, &e));
        BS_GUARD(fn(&e, arg));
    }
    return BS_OK;
}

/* bs_logtail_ckpt_fn of load_checkpoint: append the entry to t->ck. A name
 * too long to keep is forgotten (the inode is still resumed when a pattern
 * matches it). */
static bs_status ckpt_add(const bs_logtail_ckpt_entry *e, void *arg)
{
    bs_logtail *t = arg;
    ckpt *nc = realloc(t->ck, (t->n_ck + 1) * sizeof *nc);
    BS_ENSURE(nc, BS_E_NOMEM);
    t->ck = nc;
    ckpt *c = &t->ck[t->n_ck++];
    c->dev = e->dev;
    c->ino = e->ino;
    c->off = e->off;
    c->head_len = e->head_len;
    c->head_hash = e->head_hash;
    c->path[0] = 0;
    if (e->path_len < sizeof c->path) {
        memcpy(c->path, e->path, e->path_len);
        c->path[e->path_len] = 0;
    }
    return BS_OK;
}

/* Bound on a checkpoint file: ~100 bytes per followed file. */
#define MAX_CHECKPOINT_BYTES (64u << 20)

/* Read the checkpoint file into t->ck; *spool_seq gets the recorded spool position. */
static bs_status load_checkpoint(bs_logtail *t, uint64_t *spool_seq)
{
    *spool_seq = 0;
    int fd = open(t->state_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? BS_OK : BS_E_IO;
    bs_wbuf w;
    bs_wbuf_init(&w, MAX_CHECKPOINT_BYTES);
    bs_status st = BS_OK;
    for (;;) {
        uint8_t chunk[8192];
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = BS_E_IO;
            break;
        }
        if (r == 0) break;
        bs_wbuf_put(&w, chunk, (size_t)r);
        if ((st = bs_wbuf_status(&w)) != BS_OK) break;
    }
    close(fd);
    if (st == BS_OK) st = bs_logtail_parse_checkpoint(w.data, w.len, spool_seq, ckpt_add, t);
    bs_wbuf_free(&w);
    if (st == BS_E_MALFORMED) BS_LOG_ERRORF(MOD, "%s: malformed checkpoint", t->state_path);
    return st;
}

/* Look for the checkpointed inode: under its recorded name, else among the
 * files of the same directory (a rotated name). */
static bool find_inode(const ckpt *c, char *out, size_t outlen, struct stat *sb)
{
    if (stat(c->path, sb) == 0 && (uint64_t)sb->st_dev == c->dev &&
        (uint64_t)sb->st_ino == c->ino) {
        snprintf(out, outlen, "%s", c->path);
        return true;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", c->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    DIR *d = opendir(dir);
    if (!d) return false;
    bool hit = false;
    struct dirent *e;
    while (!hit && (e = readdir(d)) != NULL) {
        if (e->d_ino != (ino_t)c->ino) continue;
        int n = snprintf(out, outlen, "%s/%s", dir, e->d_name);
        hit = n > 0 && (size_t)n < outlen && stat(out, sb) == 0 && (uint64_t)sb->st_dev == c->dev &&
              (uint64_t)sb->st_ino == c->ino && S_ISREG(sb->st_mode);
    }
    closedir(d);
    return hit;
}

/* Events that reached the spool after the checkpoint was written (crash in
 * between): move the offsets past them so they are not read twice. */
static bs_status reconcile(bs_logtail *t, uint64_t spool_seq)
{
    bs_spool_reader *r;
    BS_GUARD(bs_spool_reader_open_at(t->sp, BS_STREAM_LOGS, spool_seq, &r));
    bs_spool_record rec;
    bs_status st;
    size_t n = 0;
    while ((st = bs_spool_read(r, &rec)) == BS_OK) {
        cJSON *j = cJSON_ParseWithLength((const char *)rec.payload, rec.len);
        cJSON *dev = cJSON_GetObjectItemCaseSensitive(j, "dev");
        cJSON *ino = cJSON_GetObjectItemCaseSensitive(j, "inode");
        cJSON *end = cJSON_GetObjectItemCaseSensitive(j, "end");
        cJSON *file = cJSON_GetObjectItemCaseSensitive(j, "file");
        if (cJSON_IsNumber(dev) && cJSON_IsNumber(ino) && cJSON_IsNumber(end)) {
            ckpt c = {(uint64_t)dev->valuedouble,
                      (uint64_t)ino->valuedouble,
                      (uint64_t)end->valuedouble,
                      0,
                      0,
                      ""};
            bool found = false;
            for (size_t i = 0; i < t->n_ck; i++)
                if (t->ck[i].dev == c.dev && t->ck[i].ino == c.ino) {
                    if (c.off > t->ck[i].off) t->ck[i].off = c.off;
                    found = true;
                }
            if (!found) {
                if (cJSON_IsString(file)) snprintf(c.path, sizeof c.path, "%s", file->valuestring);
                ckpt *nc = realloc(t->ck, (t->n_ck + 1) * sizeof *nc);
                if (!nc) {
                    cJSON_Delete(j);
                    st = BS_E_NOMEM;
                    break;
                }
                t->ck = nc;
                t->ck[t->n_ck++] = c;
            }
            n++;
        }
        cJSON_Delete(j);
    }
    bs_spool_reader_close(r);
    if (n)
        BS_LOG_INFOF(MOD, "%zu event(s) reached the spool after the last checkpoint: not re-read",
                     n);
    return st == BS_E_AGAIN ? BS_OK : st;
}

/* See logtail.h. */
bs_status bs_logtail_new(struct ev_loop *loop, bs_spool *sp, const bs_logtail_options *o,
                         bs_logtail **out)
{
    bs_status st;
    BS_ENSURE(sp && o && out && o->state_path && o->state_path[0] && o->n_files > 0 && o->files,
              BS_E_CONFIG);
    for (size_t i = 0; i < o->n_files; i++)
        BS_ENSURE(o->files[i] && o->files[i][0], BS_E_CONFIG);
    bs_logtail *t = calloc(1, sizeof *t);
    BS_ENSURE(t, BS_E_NOMEM);
    t->lock_fd = -1;
    t->loop = loop;
    t->sp = sp;
    t->o = *o;
    if (!t->o.poll_ms) t->o.poll_ms = 250;
    if (!t->o.flush_ms) t->o.flush_ms = 1000;
    if (!t->o.max_event_bytes) t->o.max_event_bytes = 256 * 1024;
    bs_wbuf_init(&t->ev, 0);
    bs_wbuf_init(&t->scratch, 0);
    bs_wbuf_init(&t->clean, 0);
    t->state_path = strdup(o->state_path);
    t->patterns = calloc(o->n_files, sizeof *t->patterns);
    st = t->state_path && t->patterns ? BS_OK : BS_E_NOMEM;
    for (size_t i = 0; st == BS_OK && i < o->n_files; i++)
        if (!(t->patterns[i] = strdup(o->files[i]))) st = BS_E_NOMEM;
    t->m_events = bs_metrics_counter("brokerside_logtail_events_total",
                                     "Log events appended to the spool", NULL);
    t->m_blocked =
        bs_metrics_counter("brokerside_logtail_blocked_total",
                           "Times the log tailer paused because the spool was full", NULL);
    t->m_rot = bs_metrics_counter("brokerside_logtail_files_opened_total",
                                  "Log files picked up after start (rotation or new files)", NULL);
    t->m_trunc = bs_metrics_counter("brokerside_logtail_truncations_total",
                                    "Log files truncated in place (copytruncate)", NULL);
    /* one tailer per checkpoint, locked before it is read: two would both
     * re-read the same lines and overwrite each other's offsets */
    if (st == BS_OK) {
        char lpath[1200], what[1300];
        int n = snprintf(lpath, sizeof lpath, "%s.lock", t->state_path);
        snprintf(what, sizeof what, "log-tail checkpoint %s", t->state_path);
        st = n > 0 && (size_t)n < sizeof lpath ? bs_lock_file(lpath, what, &t->lock_fd)
                                               : BS_E_TOO_LARGE;
    }
    uint64_t seq = 0;
    if (st == BS_OK) st = load_checkpoint(t, &seq);
    if (st == BS_OK && seq) st = reconcile(t, seq);
    if (st == BS_OK) st = scan_patterns(t, true);
    /* files renamed away (rotated while we were down, or before we finished
     * them): find the inode under its recorded name or next to it in the
     * same directory, finish it, then drop it */
    for (size_t i = 0; st == BS_OK && i < t->n_ck;) {
        char found[1100];
        struct stat sb;
        ckpt *c = &t->ck[i];
        size_t before = t->n_ck;
        if (c->path[0] && find_inode(c, found, sizeof found, &sb)) {
            st = track(t, found, &sb, true, all_plain(t));
            if (st == BS_OK && t->n_files) t->files[t->n_files - 1]->orphan = true;
            if (t->n_ck < before)
                continue; /* entry consumed by track(): same index holds the next */
        }
        i++;
    }
    for (size_t i = 0; st == BS_OK && i < t->n_ck; i++)
        BS_LOG_WARNF(MOD, "checkpointed file (inode %" PRIu64 ", %s) is gone: forgetting it",
                     t->ck[i].ino, t->ck[i].path[0] ? t->ck[i].path : "name unknown");
    t->n_ck = 0;
    if (st != BS_OK) {
        bs_logtail_free(t);
        return st;
    }
    if (loop) {
        double p = t->o.poll_ms / 1000.0;
        ev_timer_init(&t->timer, poll_cb, 0, p);
        ev_timer_start(loop, &t->timer);
    }
    *out = t;
    return BS_OK;
}

/* See logtail.h. */
void bs_logtail_free(bs_logtail *t)
{
    if (!t) return;
    if (t->loop) ev_timer_stop(t->loop, &t->timer);
    for (size_t i = 0; i < t->n_files; i++)
        tfile_free(t->files[i]);
    free(t->files);
    if (t->patterns)
        for (size_t i = 0; i < t->o.n_files; i++)
            free(t->patterns[i]);
    free(t->patterns);
    free(t->ck);
    free(t->unreadable);
    free(t->state_path);
    bs_unlock_file(t->lock_fd);
    bs_wbuf_free(&t->ev);
    bs_wbuf_free(&t->scratch);
    bs_wbuf_free(&t->clean);
    free(t);
}

/* See logtail.h. */
void bs_logtail_get_stats(const bs_logtail *t, bs_logtail_stats *st)
{
    *st = t->st;
}
