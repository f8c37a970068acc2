/*
 * config.c - load and validate the JSON configuration (see config.h and
 * docs/configuration.md).
 *
 * Pipeline: read the file -> blank out comments (same offsets, so cJSON's
 * error position maps back to line:column of the original) -> cJSON parse ->
 * one walker per section that checks keys, types and ranges, records every
 * problem with its JSON path, and fills a fully defaulted bs_config. The
 * walkers never stop at the first problem: they keep going so that
 * --check-config can list everything at once. The config is only handed out
 * when no problem was found.
 */
#include "brokerside/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "brokerside/tls.h"
#include "brokerside/version.h"

#define CFG_MAX_FILE_BYTES (16u * 1024u * 1024u)
#define CFG_MAX_LISTENERS 256
#define CFG_MAX_WORKERS 256
#define CFG_PATH_MAX 512
#define CFG_NAME_MAX 64

/* State shared by the walkers of one load. */
typedef struct cfg_ctx {
    const char *file;       /* as given by the caller, used in every message */
    char *dir;              /* absolute directory of `file`: base of relative paths */
    bs_config_errors *errs; /* where problems are appended (caller owns) */
    size_t n_problems;      /* problems found by this load (errs may hold older ones) */
    bool nomem;             /* an allocation failed somewhere: the result is unusable */
} cfg_ctx;

/* ------------------------------------------------------------------------ */
/* Error collection                                                          */
/* ------------------------------------------------------------------------ */

/* Append an already formatted line to errs; on allocation failure only the
 * nomem flag is raised (the load then fails with BS_E_NOMEM). */
static void errs_push(cfg_ctx *c, char *line)
{
    c->n_problems++;
    if (!line) {
        c->nomem = true;
        return;
    }
    char **grown = realloc(c->errs->msgs, (c->errs->n + 1) * sizeof *grown);
    if (!grown) {
        free(line);
        c->nomem = true;
        return;
    }
    c->errs->msgs = grown;
    c->errs->msgs[c->errs->n++] = line;
}

/* Record "FILE: PATH: message". An empty path means the document itself. */
__attribute__((format(printf, 3, 4))) static void cfg_err(cfg_ctx *c, const char *path,
                                                          const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *line = NULL;
    if (asprintf(&line, "%s: %s: %s", c->file, path[0] ? path : "(top level)", msg) < 0)
        line = NULL;
    /* Keys in paths come from the file verbatim: one problem must stay one line. */
    for (char *q = line; q && *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    errs_push(c, line);
}

/* Record a problem located by byte offset in the original text:
 * "FILE:LINE:COL: message". Used for syntax errors, which have no JSON path. */
static void cfg_err_at(cfg_ctx *c, const char *text, size_t len, size_t off, const char *msg)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            col++; /* count characters, not UTF-8 continuation bytes */
        }
    }
    char *out = NULL;
    if (asprintf(&out, "%s:%zu:%zu: %s", c->file, line, col, msg) < 0) out = NULL;
    errs_push(c, out);
}

/* Render `s` as a double-quoted, escaped string of bounded length into dst so
 * user text can never break a message line. Always NUL-terminates. */
static const char *quote(char *dst, size_t n, const char *s)
{
    size_t o = 0;
    const size_t limit = n > 8 ? n - 6 : 0; /* room for `..."` and NUL */
    if (n < 3) {
        if (n) dst[0] = '\0';
        return dst;
    }
    dst[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        size_t k;
        if (*p == '"' || *p == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)*p;
            k = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            k = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", *p);
        } else {
            tmp[0] = (char)*p;
            k = 1;
        }
        if (o + k > limit) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(dst + o, tmp, k);
        o += k;
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}

/* Build "base.key" (or "key" at top level) into dst. */
static void path_key(char *dst, size_t n, const char *base, const char *key)
{
    /* Truncating a long path only shortens a message; the check keeps
     * -Wformat-truncation quiet. */
    int r = base[0] ? snprintf(dst, n, "%s.%s", base, key) : snprintf(dst, n, "%s", key);
    if (r < 0 && n) dst[0] = '\0';
}

/* Build "base[i]" into dst. */
static void path_index(char *dst, size_t n, const char *base, size_t i)
{
    int r = snprintf(dst, n, "%s[%zu]", base, i);
    if (r < 0 && n) dst[0] = '\0';
}

/* A short article + type name for messages ("a string", "an array"...). */
static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

/* strdup that records allocation failure in the context; NULL in -> NULL out. */
static char *cfg_strdup(cfg_ctx *c, const char *s)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) c->nomem = true;
    return d;
}

/* ------------------------------------------------------------------------ */
/* Comments                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Copy `in` into a new NUL-terminated buffer with every comment byte replaced
 * by a space, except newlines, so offsets (and so line:column) are unchanged.
 * Comment markers inside JSON strings are data and are kept. A UTF-8 BOM is
 * blanked too. On a problem (unterminated block comment, NUL byte) returns
 * BS_E_CONFIG with *err_off and *why set. The caller frees *out.
 */
static bs_status strip_comments(const char *in, size_t len, char **out, size_t *err_off,
                                const char **why)
{
    char *o = malloc(len + 1);
    if (!o) return BS_E_NOMEM;
    memcpy(o, in, len);
    o[len] = '\0';
    bs_status st = BS_OK;
    size_t i = 0;
    if (len >= 3 && memcmp(o, "\xef\xbb\xbf", 3) == 0) {
        memset(o, ' ', 3);
        i = 3;
    }
    while (i < len) {
        char ch = o[i];
        if (ch == '\0') {
            *err_off = i;
            *why = "NUL byte in the file";
            st = BS_E_CONFIG;
            goto out;
        }
        if (ch == '"') {
            /* Skip the string. A raw newline ends it early: JSON forbids raw
             * newlines in strings, so the parser will report that line, and
             * comments after it are still stripped. */
            i++;
            while (i < len && o[i] != '"' && o[i] != '\n' && o[i] != '\0') {
                if (o[i] == '\\' && i + 1 < len && o[i + 1] != '\n') i++;
                i++;
            }
            if (i < len && o[i] == '"') i++;
            continue;
        }
        if (ch == '/' && i + 1 < len && o[i + 1] == '/') {
            while (i < len && o[i] != '\n')
                o[i++] = ' ';
            continue;
        }
        if (ch == '/' && i + 1 < len && o[i + 1] == '*') {
            size_t start = i;
            o[i++] = ' ';
            o[i++] = ' ';
            for (;;) {
                if (i >= len) {
                    *err_off = start;
                    *why = "unterminated /* comment";
                    st = BS_E_CONFIG;
                    goto out;
                }
                if (o[i] == '*' && i + 1 < len && o[i + 1] == '/') {
                    o[i++] = ' ';
                    o[i++] = ' ';
                    break;
                }
                if (o[i] != '\n') o[i] = ' ';
                i++;
            }
            continue;
        }
        i++;
    }
out:
    if (st != BS_OK) {
        free(o);
        return st;
    }
    *out = o;
    return BS_OK;
}

/*
 * Find the first trailing comma (",", whitespace, then "}" or "]") outside
 * strings in comment-free text. cJSON rejects them but reports the position
 * of the end of the document for objects, which would be a useless hint.
 * Returns true and the comma's offset if one exists.
 */
static bool find_trailing_comma(const char *t, size_t len, size_t *off)
{
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '"') {
            i++;
            while (i < len && t[i] != '"' && t[i] != '\n') {
                if (t[i] == '\\' && i + 1 < len) i++;
                i++;
            }
            continue;
        }
        if (t[i] != ',') continue;
        size_t j = i + 1;
        while (j < len && isspace((unsigned char)t[j]))
            j++;
        if (j < len && (t[j] == '}' || t[j] == ']')) {
            *off = i;
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Keys and typed getters                                                    */
/* ------------------------------------------------------------------------ */

/* Edit distance capped at small values: enough to suggest a misspelt key. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    size_t prev[41], cur[41];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* True if `s` is one of the NULL-terminated `list` (NULL list: false). */
static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0) return true;
    return false;
}

/*
 * Check the keys of object `obj` at `path`: every key must be in `allowed`
 * (NULL-terminated); keys in `future` (may be NULL) get a "not supported by
 * this version" message instead of "unknown key"; a key that appears twice is
 * an error (cJSON keeps both and lookups would silently take the first).
 */
static void check_keys(cfg_ctx *c, const cJSON *obj, const char *path, const char *const *allowed,
                       const char *const *future)
{
    char p[CFG_PATH_MAX], q[160];
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        path_key(p, sizeof p, path, k);
        bool dup = false;
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (prev->string && strcmp(prev->string, k) == 0) dup = true;
        if (dup) {
            cfg_err(c, p, "duplicate key %s: each key may appear once per object",
                    quote(q, sizeof q, k));
            continue;
        }
        if (in_list(allowed, k)) continue;
        if (in_list(future, k)) {
            cfg_err(c, p, "the %s section is not supported by this version of brokerside (%s)",
                    quote(q, sizeof q, k), BS_VERSION);
            continue;
        }
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t i = 0; allowed[i]; i++) {
            size_t d = edit_distance(k, allowed[i]);
            if (d < best_d) {
                best_d = d;
                best = allowed[i];
            }
        }
        if (best)
            cfg_err(c, p, "unknown key %s (did you mean \"%s\"?)", quote(q, sizeof q, k), best);
        else
            cfg_err(c, p, "unknown key %s", quote(q, sizeof q, k));
    }
}

/* The member `key` of `obj`, or NULL when absent or JSON null (null means
 * "use the default" everywhere except where a section documents otherwise). */
static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

/* Read an optional string member into *out (borrowed from the JSON tree;
 * NULL when absent). Wrong type or an empty string is an error; returns
 * false on error. */
static bool get_string(cfg_ctx *c, const cJSON *obj, const char *key, const char *path,
                       const char **out)
{
    char p[CFG_PATH_MAX];
    *out = NULL;
    const cJSON *v = member(obj, key);
    if (!v) return true;
    path_key(p, sizeof p, path, key);
    if (!cJSON_IsString(v)) {
        cfg_err(c, p, "expected a string, got %s", json_type_name(v));
        return false;
    }
    if (v->valuestring[0] == '\0') {
        cfg_err(c, p, "must not be empty");
        return false;
    }
    *out = v->valuestring;
    return true;
}

/* Read an optional integer member in [min, max] into *out (unchanged when
 * absent, so callers preset the default). */
static void get_int(cfg_ctx *c, const cJSON *obj, const char *key, const char *path, long long min,
                    long long max, long long *out)
{
    char p[CFG_PATH_MAX];
    const cJSON *v = member(obj, key);
    if (!v) return;
    path_key(p, sizeof p, path, key);
    if (!cJSON_IsNumber(v)) {
        cfg_err(c, p, "expected an integer, got %s", json_type_name(v));
        return;
    }
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) {
        cfg_err(c, p, "expected an integer, got %g", d);
        return;
    }
    if (d < (double)min || d > (double)max) {
        cfg_err(c, p, "%.0f is out of range: must be between %lld and %lld", d, min, max);
        return;
    }
    *out = (long long)d;
}

/* Read an optional number of seconds in (0, max] into *out (unchanged when
 * absent). */
static void get_seconds(cfg_ctx *c, const cJSON *obj, const char *key, const char *path, double max,
                        double *out)
{
    char p[CFG_PATH_MAX];
    const cJSON *v = member(obj, key);
    if (!v) return;
    path_key(p, sizeof p, path, key);
    if (!cJSON_IsNumber(v)) {
        cfg_err(c, p, "expected a number of seconds, got %s", json_type_name(v));
        return;
    }
    double d = v->valuedouble;
    if (!isfinite(d) || d <= 0 || d > max) {
        cfg_err(c, p, "%g is out of range: must be greater than 0 and at most %g", d, max);
        return;
    }
    *out = d;
}

/* Read an optional boolean member into *out (unchanged when absent). */
static void get_bool(cfg_ctx *c, const cJSON *obj, const char *key, const char *path, bool *out)
{
    char p[CFG_PATH_MAX];
    const cJSON *v = member(obj, key);
    if (!v) return;
    path_key(p, sizeof p, path, key);
    if (!cJSON_IsBool(v)) {
        cfg_err(c, p, "expected true or false, got %s", json_type_name(v));
        return;
    }
    *out = cJSON_IsTrue(v);
}

/* Read an optional string member that must be one of `names` (NULL-terminated);
 * *out receives the index, unchanged when absent. */
static void get_enum(cfg_ctx *c, const cJSON *obj, const char *key, const char *path,
                     const char *const *names, int *out)
{
    const char *s;
    if (!get_string(c, obj, key, path, &s) || !s) return;
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return;
        }
    }
    char p[CFG_PATH_MAX], q[160], choices[256] = "";
    size_t used = 0;
    for (int i = 0; names[i] && used < sizeof choices; i++)
        used += (size_t)snprintf(choices + used, sizeof choices - used, "%s\"%s\"",
                                 i ? (names[i + 1] ? ", " : " or ") : "", names[i]);
    path_key(p, sizeof p, path, key);
    cfg_err(c, p, "%s is not valid: expected %s", quote(q, sizeof q, s), choices);
}

/* ------------------------------------------------------------------------ */
/* Paths and files                                                           */
/* ------------------------------------------------------------------------ */

/* Absolute directory of the config file, without resolving symlinks (so a
 * config reached through a symlinked directory keeps resolving through it).
 * Caller frees. */
static char *config_dir(const char *file)
{
    char *copy = strdup(file);
    if (!copy) return NULL;
    char *slash = strrchr(copy, '/');
    const char *dir;
    if (!slash) {
        dir = ".";
    } else if (slash == copy) {
        dir = "/";
    } else {
        *slash = '\0';
        dir = copy;
    }
    char *res = NULL;
    if (dir[0] == '/') {
        res = strdup(dir);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd)) {
            if (strcmp(dir, ".") == 0) {
                res = strdup(cwd);
            } else if (asprintf(&res, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, dir) < 0) {
                res = NULL;
            }
        }
    }
    free(copy);
    return res;
}

/*
 * Resolve the file named by string member `key` of `obj` against the config
 * directory and check that it is a readable regular file. Returns a malloc'd
 * absolute path, or NULL when the key is absent (with *ok true) or on error
 * (*ok false, problem recorded). `required` makes absence an error; `secret`
 * (private keys) logs a warning when other users may read the file.
 */
static char *get_file(cfg_ctx *c, const cJSON *obj, const char *key, const char *path,
                      bool required, bool secret, bool *ok)
{
    char p[CFG_PATH_MAX], q[600], qr[600];
    const char *s;
    *ok = true;
    path_key(p, sizeof p, path, key);
    if (!get_string(c, obj, key, path, &s)) {
        *ok = false;
        return NULL;
    }
    if (!s) {
        if (required) {
            cfg_err(c, p, "is required");
            *ok = false;
        }
        return NULL;
    }
    char *abs = NULL;
    if (s[0] == '/') {
        abs = cfg_strdup(c, s);
    } else if (!c->dir) {
        c->nomem = true;
    } else if (asprintf(&abs, "%s%s%s", c->dir, strcmp(c->dir, "/") == 0 ? "" : "/", s) < 0) {
        abs = NULL;
        c->nomem = true;
    }
    if (!abs) {
        *ok = false;
        return NULL;
    }
    char where[1300];
    if (strcmp(abs, s) == 0)
        snprintf(where, sizeof where, "%s", quote(q, sizeof q, s));
    else
        snprintf(where, sizeof where, "%s (resolved to %s)", quote(q, sizeof q, s),
                 quote(qr, sizeof qr, abs));
    struct stat sb;
    if (stat(abs, &sb) != 0) {
        if (errno == ENOENT)
            cfg_err(c, p, "%s does not exist", where);
        else
            cfg_err(c, p, "%s cannot be accessed: %s", where, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        cfg_err(c, p, "%s is not a regular file", where);
        goto fail;
    }
    /* open(2), not access(2): what matters is whether this process, with its
     * effective ids, can read it now. */
    int fd = open(abs, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cfg_err(c, p, "%s cannot be read: %s", where, strerror(errno));
        goto fail;
    }
    close(fd);
    if (secret && (sb.st_mode & S_IROTH))
        bs_log(BS_LOG_WARN, "config", "%s: %s: %s is readable by every user: chmod 600 it", c->file,
               p, where);
    return abs;
fail:
    free(abs);
    *ok = false;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Addresses                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Split "host:port" or "[v6]:port" into host (brackets stripped) and the port
 * text. Returns NULL on success or a static reason. host/port are written
 * NUL-terminated and must have room for strlen(s)+1 bytes.
 */
static const char *split_hostport(const char *s, char *host, char *port, bool *bracketed)
{
    const char *colon;
    *bracketed = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) return "missing ']' after the IPv6 address";
        if (close[1] != ':') return "expected ':PORT' after ']'";
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
        *bracketed = true;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return "expected HOST:PORT";
        if (memchr(s, ':', (size_t)(colon - s)))
            return "an IPv6 address must be written in brackets, e.g. [::1]:9092";
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    if (host[0] == '\0') return "the host is empty (use 0.0.0.0 or [::] for every address)";
    strcpy(port, colon + 1);
    if (port[0] == '\0') return "the port is empty";
    return NULL;
}

/* Parse a decimal port of at most 5 digits into *out; false if not digits. */
static bool parse_port_digits(const char *s, long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    *out = strtol(s, NULL, 10);
    return true;
}

/* True if every character could appear in a DNS name or an IP literal. */
static bool host_chars_ok(const char *h, bool bracketed)
{
    for (const unsigned char *p = (const unsigned char *)h; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_') continue;
        if (bracketed && (*p == ':' || *p == '%')) continue;
        return false;
    }
    return true;
}

/*
 * Parse and resolve the endpoint string member `key` of `obj` into *ep.
 * `min_port` is 0 for binds (0 = ephemeral) and 1 for destinations;
 * `passive` asks getaddrinfo for a bind address. When the key is absent and
 * `def` is non-NULL, `def` is used; otherwise absence is an error. Returns
 * true when *ep is filled (its strings are then owned by *ep).
 */
static bool get_endpoint(cfg_ctx *c, const cJSON *obj, const char *key, const char *path,
                         const char *def, long min_port, bool passive, bs_endpoint *ep)
{
    char p[CFG_PATH_MAX], q[160];
    const char *s;
    path_key(p, sizeof p, path, key);
    if (!get_string(c, obj, key, path, &s)) return false;
    if (!s) s = def;
    if (!s) {
        cfg_err(c, p, "is required (HOST:PORT)");
        return false;
    }
    size_t n = strlen(s);
    char *host = malloc(n + 1), *port = malloc(n + 1);
    bool ok = false, bracketed;
    struct addrinfo *res = NULL;
    if (!host || !port) {
        c->nomem = true;
        goto out;
    }
    const char *why = split_hostport(s, host, port, &bracketed);
    if (why) {
        cfg_err(c, p, "%s: %s", quote(q, sizeof q, s), why);
        goto out;
    }
    long portnum;
    if (!parse_port_digits(port, &portnum) || portnum < min_port || portnum > 65535) {
        cfg_err(c, p, "%s: port must be a number between %ld and 65535", quote(q, sizeof q, s),
                min_port);
        goto out;
    }
    if (!host_chars_ok(host, bracketed)) {
        cfg_err(c, p, "%s: the host contains characters that are not valid in a host name",
                quote(q, sizeof q, s));
        goto out;
    }
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (bracketed) {
        /* Brackets promise an IPv6 literal: never send it to DNS. */
        hints.ai_family = AF_INET6;
        hints.ai_flags |= AI_NUMERICHOST;
    }
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        cfg_err(c, p, "%s: cannot resolve %s: %s", quote(q, sizeof q, s),
                bracketed ? "the IPv6 address" : "the host",
                rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        goto out;
    }
    memset(ep, 0, sizeof *ep);
    memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
    ep->addrlen = res->ai_addrlen;
    ep->port = (uint16_t)portnum;
    ep->text = cfg_strdup(c, s);
    ep->host = cfg_strdup(c, host);
    ok = ep->text && ep->host;
out:
    if (res) freeaddrinfo(res);
    free(host);
    free(port);
    return ok;
}

/* Free the strings of *ep (not ep itself); safe on a zeroed endpoint. */
static void endpoint_free(bs_endpoint *ep)
{
    free(ep->text);
    free(ep->host);
    ep->text = ep->host = NULL;
}

/* True for a wildcard bind address (0.0.0.0 or ::). */
static bool addr_is_any(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

/* True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
static bool addr_is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(v6)) return true;
        return IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127;
    }
    return false;
}

/*
 * True when two bind endpoints would compete for the same port: same port
 * (not 0, which the kernel makes unique) and the same address, or a wildcard
 * on either side. With SO_REUSEPORT the kernel would accept both and split
 * the traffic between them, so this must be caught here. IPv6 wildcards are
 * dual-stack by default and so overlap IPv4 addresses too.
 */
static bool binds_overlap(const bs_endpoint *a, const bs_endpoint *b)
{
    if (a->port == 0 || b->port == 0 || a->port != b->port) return false;
    bool a_any = addr_is_any(&a->addr), b_any = addr_is_any(&b->addr);
    if (a->addr.ss_family == b->addr.ss_family) {
        if (a_any || b_any) return true;
        if (a->addr.ss_family == AF_INET)
            return ((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr ==
                   ((const struct sockaddr_in *)&b->addr)->sin_addr.s_addr;
        return memcmp(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr,
                      &((const struct sockaddr_in6 *)&b->addr)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    }
    return (a->addr.ss_family == AF_INET6 && a_any) || (b->addr.ss_family == AF_INET6 && b_any);
}

/* ------------------------------------------------------------------------ */
/* TLS                                                                       */
/* ------------------------------------------------------------------------ */

/* Read `min_version` ("TLSv1.2" | "TLSv1.3") into *out (default TLS 1.2). */
static void get_tls_version(cfg_ctx *c, const cJSON *obj, const char *path, int *out)
{
    static const char *const too_old[] = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1", NULL};
    char p[CFG_PATH_MAX], q[160];
    const char *s;
    *out = TLS1_2_VERSION;
    if (!get_string(c, obj, "min_version", path, &s) || !s) return;
    path_key(p, sizeof p, path, "min_version");
    if (strcmp(s, "TLSv1.2") == 0)
        *out = TLS1_2_VERSION;
    else if (strcmp(s, "TLSv1.3") == 0)
        *out = TLS1_3_VERSION;
    else if (in_list(too_old, s))
        cfg_err(c, p, "%s is not allowed: the minimum is TLSv1.2", quote(q, sizeof q, s));
    else
        cfg_err(c, p, "%s is not a TLS version: expected \"TLSv1.2\" or \"TLSv1.3\"",
                quote(q, sizeof q, s));
}

/* The TLS 1.3 suites OpenSSL implements (RFC 8446); all are AEAD. */
static const char *const tls13_suites[] = {"TLS_AES_128_GCM_SHA256",       "TLS_AES_256_GCM_SHA384",
                                           "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                                           "TLS_AES_128_CCM_8_SHA256",     NULL};

/*
 * Validate a TLS 1.2 cipher list with a throwaway SSL_CTX: OpenSSL must
 * accept it, and every TLS 1.2 cipher it selects must use ECDHE key exchange,
 * authenticate the server, and be an AEAD; otherwise the list would let a
 * client negotiate something the policy forbids. OpenSSL silently skips
 * unknown names in a list, so plain names are also checked one by one.
 */
static void check_ciphers(cfg_ctx *c, const char *p, const char *list)
{
    char q[300];
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    char *copy = strdup(list);
    if (!ctx || !copy) {
        c->nomem = true;
        goto out;
    }
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        cfg_err(c, p, "%s is not a valid OpenSSL cipher list (no cipher matches)",
                quote(q, sizeof q, list));
        goto out;
    }
    /* Each plain name (not an operator like !X, -X, +X, @STRENGTH or a
     * combination A+B) must select something on its own. */
    char *save = NULL;
    for (char *tok = strtok_r(copy, ":;, ", &save); tok; tok = strtok_r(NULL, ":;, ", &save)) {
        if (strchr("!-+@", tok[0]) || strchr(tok, '+')) continue;
        SSL_CTX *one = SSL_CTX_new(TLS_method());
        if (!one) {
            c->nomem = true;
            goto out;
        }
        int ok = SSL_CTX_set_cipher_list(one, tok);
        SSL_CTX_free(one);
        if (ok != 1) cfg_err(c, p, "unknown cipher %s", quote(q, sizeof q, tok));
    }
    char bad[512] = "";
    size_t used = 0, n_bad = 0;
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
        if (SSL_CIPHER_get_kx_nid(ci) == NID_kx_any) continue; /* a TLS 1.3 suite */
        if (SSL_CIPHER_get_kx_nid(ci) == NID_kx_ecdhe && SSL_CIPHER_is_aead(ci) &&
            SSL_CIPHER_get_auth_nid(ci) != NID_auth_null)
            continue;
        if (n_bad++ < 4 && used < sizeof bad)
            used += (size_t)snprintf(bad + used, sizeof bad - used, "%s%s", used ? ", " : "",
                                     SSL_CIPHER_get_name(ci));
    }
    if (n_bad)
        cfg_err(c, p,
                "%s allows %zu cipher(s) without ECDHE key exchange, server authentication or "
                "AEAD encryption (%s%s): only ECDHE with AES-GCM or ChaCha20-Poly1305 is allowed",
                quote(q, sizeof q, list), n_bad, bad, n_bad > 4 ? ", ..." : "");
out:
    ERR_clear_error(); /* rejected lists leave reasons queued; they are reported above */
    free(copy);
    SSL_CTX_free(ctx);
}

/* Validate a TLS 1.3 suite list: colon-separated names from tls13_suites,
 * at least one. OpenSSL would silently drop unknown names. */
static void check_ciphersuites(cfg_ctx *c, const char *p, const char *list)
{
    char q[160];
    char *copy = strdup(list);
    if (!copy) {
        c->nomem = true;
        return;
    }
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        n++;
        if (!in_list(tls13_suites, tok))
            cfg_err(c, p, "unknown TLS 1.3 cipher suite %s (known: %s, %s, %s, %s, %s)",
                    quote(q, sizeof q, tok), tls13_suites[0], tls13_suites[1], tls13_suites[2],
                    tls13_suites[3], tls13_suites[4]);
    }
    if (n == 0) cfg_err(c, p, "names no TLS 1.3 cipher suite");
    free(copy);
}

/* Read `ciphers` and `ciphersuites` of a TLS section (defaults from tls.h)
 * into owned strings. */
static void get_cipher_lists(cfg_ctx *c, const cJSON *obj, const char *path, char **ciphers,
                             char **suites)
{
    char p[CFG_PATH_MAX];
    const char *s;
    if (get_string(c, obj, "ciphers", path, &s)) {
        path_key(p, sizeof p, path, "ciphers");
        if (s) check_ciphers(c, p, s);
        *ciphers = cfg_strdup(c, s ? s : BS_TLS_DEFAULT_CIPHERS);
    }
    if (get_string(c, obj, "ciphersuites", path, &s)) {
        path_key(p, sizeof p, path, "ciphersuites");
        if (s) check_ciphersuites(c, p, s);
        *suites = cfg_strdup(c, s ? s : BS_TLS_DEFAULT_CIPHERSUITES);
    }
}

/* Free a TLS server section and its strings; NULL is a no-op. */
static void tls_server_free(bs_tls_server_config *t)
{
    if (!t) return;
    free(t->cert_file);
    free(t->key_file);
    free(t->client_ca_file);
    free(t->crl_file);
    free(t->ciphers);
    free(t->ciphersuites);
    free(t);
}

/* Free a TLS client section and its strings; NULL is a no-op. */
static void tls_client_free(bs_tls_client_config *t)
{
    if (!t) return;
    free(t->ca_file);
    free(t->cert_file);
    free(t->key_file);
    free(t->server_name);
    free(t->ciphers);
    free(t->ciphersuites);
    free(t);
}

/* Parse `listeners[i].tls` (absent or null: plaintext, *out stays NULL). */
static void parse_tls_server(cfg_ctx *c, const cJSON *v, const char *path,
                             bs_tls_server_config **out)
{
    static const char *const keys[] = {"cert",    "key",          "client_ca",
                                       "crl",     "client_auth",  "min_version",
                                       "ciphers", "ciphersuites", NULL};
    static const char *const auth_names[] = {"none", "optional", "required", NULL};
    char p[CFG_PATH_MAX], q[160];
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, path, "expected an object or null, got %s", json_type_name(v));
        return;
    }
    bs_tls_server_config *t = calloc(1, sizeof *t);
    if (!t) {
        c->nomem = true;
        return;
    }
    check_keys(c, v, path, keys, NULL);
    bool ok; /* problems are recorded in the context; nothing more to do here */
    t->cert_file = get_file(c, v, "cert", path, true, false, &ok);
    t->key_file = get_file(c, v, "key", path, true, true, &ok);
    t->client_ca_file = get_file(c, v, "client_ca", path, false, false, &ok);
    t->crl_file = get_file(c, v, "crl", path, false, false, &ok);
    int auth = BS_CLIENT_AUTH_NONE;
    get_enum(c, v, "client_auth", path, auth_names, &auth);
    t->client_auth = (bs_client_auth)auth;
    /* Only complain about a missing CA when it is absent, not when it was
     * given but broken: that has its own message already. */
    bool ca_given = member(v, "client_ca") != NULL;
    if (t->client_auth != BS_CLIENT_AUTH_NONE && !ca_given) {
        path_key(p, sizeof p, path, "client_auth");
        cfg_err(c, p, "%s needs client_ca (the CA file that signs client certificates)",
                quote(q, sizeof q, auth_names[auth]));
    }
    if (member(v, "crl") && t->client_auth == BS_CLIENT_AUTH_NONE) {
        path_key(p, sizeof p, path, "crl");
        cfg_err(c, p,
                "a CRL is only used to check client certificates: set client_auth to "
                "\"optional\" or \"required\"");
    }
    get_tls_version(c, v, path, &t->min_version);
    get_cipher_lists(c, v, path, &t->ciphers, &t->ciphersuites);
    *out = t;
}

/* Parse `listeners[i].upstream_tls` (absent or null: plaintext upstream).
 * `upstream_host` (may be NULL if the upstream was invalid) is the default
 * server name. */
static void parse_tls_client(cfg_ctx *c, const cJSON *v, const char *path,
                             const char *upstream_host, bs_tls_client_config **out)
{
    static const char *const keys[] = {"ca",          "cert",         "key",
                                       "server_name", "verify",       "min_version",
                                       "ciphers",     "ciphersuites", NULL};
    char p[CFG_PATH_MAX];
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, path, "expected an object or null, got %s", json_type_name(v));
        return;
    }
    bs_tls_client_config *t = calloc(1, sizeof *t);
    if (!t) {
        c->nomem = true;
        return;
    }
    check_keys(c, v, path, keys, NULL);
    bool ok;
    t->ca_file = get_file(c, v, "ca", path, false, false, &ok);
    t->cert_file = get_file(c, v, "cert", path, false, false, &ok);
    t->key_file = get_file(c, v, "key", path, false, true, &ok);
    bool has_cert = member(v, "cert") != NULL, has_key = member(v, "key") != NULL;
    if (has_cert != has_key) {
        path_key(p, sizeof p, path, has_cert ? "key" : "cert");
        cfg_err(c, p,
                "is required because %s is set: a client certificate needs its key and "
                "vice versa",
                has_cert ? "cert" : "key");
    }
    const char *sn;
    if (get_string(c, v, "server_name", path, &sn))
        t->server_name = cfg_strdup(c, sn ? sn : upstream_host);
    t->verify = true;
    get_bool(c, v, "verify", path, &t->verify);
    get_tls_version(c, v, path, &t->min_version);
    get_cipher_lists(c, v, path, &t->ciphers, &t->ciphersuites);
    *out = t;
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */
/* ------------------------------------------------------------------------ */

/* A listener name: 1..64 characters from [A-Za-z0-9_.-] (it becomes a log
 * tag and a metric label value). */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CFG_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i])) return false;
    return true;
}

/* Free what a listener owns (not l itself: it lives in the listeners array). */
static void listener_free(bs_listener_config *l)
{
    free(l->name);
    endpoint_free(&l->bind);
    endpoint_free(&l->upstream);
    tls_server_free(l->tls);
    tls_client_free(l->upstream_tls);
}

/* Parse `listeners[i]` into *l (zeroed by the caller). *bind_ok tells
 * whether l->bind is valid for the overlap check. */
static void parse_listener(cfg_ctx *c, const cJSON *v, const char *path, size_t idx,
                           bs_listener_config *l, bool *bind_ok)
{
    static const char *const keys[] = {"name",      "bind", "upstream",     "protocol",
                                       "broker_id", "tls",  "upstream_tls", NULL};
    static const char *const protocols[] = {"kafka", "tcp", NULL};
    char p[CFG_PATH_MAX], q[160];
    *bind_ok = false;
    l->broker_id = -1;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, path, "expected an object, got %s", json_type_name(v));
        return;
    }
    check_keys(c, v, path, keys, NULL);
    const char *name;
    if (get_string(c, v, "name", path, &name)) {
        if (name && !name_ok(name)) {
            path_key(p, sizeof p, path, "name");
            cfg_err(c, p, "%s: use 1 to %d characters from A-Z a-z 0-9 _ . -",
                    quote(q, sizeof q, name), CFG_NAME_MAX);
        } else if (name) {
            l->name = cfg_strdup(c, name);
        } else if (asprintf(&l->name, "listener%zu", idx) < 0) {
            l->name = NULL;
            c->nomem = true;
        }
    }
    *bind_ok = get_endpoint(c, v, "bind", path, NULL, 0, true, &l->bind);
    bool up_ok = get_endpoint(c, v, "upstream", path, NULL, 1, false, &l->upstream);
    int proto = BS_PROTOCOL_KAFKA;
    get_enum(c, v, "protocol", path, protocols, &proto);
    l->protocol = (bs_protocol)proto;
    long long id = -1;
    get_int(c, v, "broker_id", path, 0, INT32_MAX, &id);
    l->broker_id = (int32_t)id;
    path_key(p, sizeof p, path, "tls");
    parse_tls_server(c, cJSON_GetObjectItemCaseSensitive(v, "tls"), p, &l->tls);
    path_key(p, sizeof p, path, "upstream_tls");
    parse_tls_client(c, cJSON_GetObjectItemCaseSensitive(v, "upstream_tls"), p,
                     up_ok ? l->upstream.host : NULL, &l->upstream_tls);
}

/* Parse `listeners` (required, non-empty array) and the cross-listener
 * rules: unique names, no overlapping binds. */
static void parse_listeners(cfg_ctx *c, const cJSON *root, bs_config *cfg)
{
    char p[CFG_PATH_MAX], pj[CFG_PATH_MAX], q[160];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "listeners");
    if (!v || cJSON_IsNull(v)) {
        cfg_err(c, "listeners", "is required: at least one listener");
        return;
    }
    if (!cJSON_IsArray(v)) {
        cfg_err(c, "listeners", "expected an array of listener objects, got %s", json_type_name(v));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0) {
        cfg_err(c, "listeners", "must contain at least one listener");
        return;
    }
    if (n > CFG_MAX_LISTENERS) {
        cfg_err(c, "listeners", "has %zu entries: at most %d are supported", n, CFG_MAX_LISTENERS);
        return;
    }
    cfg->listeners = calloc(n, sizeof *cfg->listeners);
    bool *bind_ok = calloc(n, sizeof *bind_ok);
    if (!cfg->listeners || !bind_ok) {
        c->nomem = true;
        free(bind_ok);
        return;
    }
    cfg->n_listeners = n;
    size_t i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        path_index(p, sizeof p, "listeners", i);
        parse_listener(c, it, p, i, &cfg->listeners[i], &bind_ok[i]);
    }
    for (size_t j = 0; j < n; j++) {
        for (size_t k = 0; k < j; k++) {
            const bs_listener_config *a = &cfg->listeners[k], *b = &cfg->listeners[j];
            if (a->name && b->name && strcmp(a->name, b->name) == 0) {
                path_index(pj, sizeof pj, "listeners", j);
                path_key(p, sizeof p, pj, "name");
                cfg_err(c, p, "%s is already the name of listeners[%zu]",
                        quote(q, sizeof q, b->name), k);
            }
            if (bind_ok[j] && bind_ok[k] && binds_overlap(&a->bind, &b->bind)) {
                path_index(pj, sizeof pj, "listeners", j);
                path_key(p, sizeof p, pj, "bind");
                cfg_err(c, p,
                        "%s overlaps listeners[%zu].bind (%s): each listener needs its own "
                        "address and port",
                        quote(q, sizeof q, b->bind.text), k, a->bind.text);
            }
        }
    }
    free(bind_ok);
}

/* Parse `limits` (optional object). */
static void parse_limits(cfg_ctx *c, const cJSON *root, bs_limits_config *lim)
{
    static const char *const keys[] = {"max_connections",
                                       "buffer_bytes",
                                       "handshake_timeout_s",
                                       "idle_timeout_s",
                                       "connect_timeout_s",
                                       "shutdown_grace_s",
                                       NULL};
    lim->max_connections = 10000;
    lim->buffer_bytes = 65536;
    lim->handshake_timeout_s = 10;
    lim->idle_timeout_s = 600;
    lim->connect_timeout_s = 5;
    lim->shutdown_grace_s = 30;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "limits");
    if (!v || cJSON_IsNull(v)) return;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, "limits", "expected an object, got %s", json_type_name(v));
        return;
    }
    check_keys(c, v, "limits", keys, NULL);
    long long x = lim->max_connections;
    get_int(c, v, "max_connections", "limits", 1, 1000000, &x);
    lim->max_connections = (uint32_t)x;
    x = lim->buffer_bytes;
    get_int(c, v, "buffer_bytes", "limits", 4096, 16777216, &x);
    lim->buffer_bytes = (uint32_t)x;
    get_seconds(c, v, "handshake_timeout_s", "limits", 3600, &lim->handshake_timeout_s);
    get_seconds(c, v, "idle_timeout_s", "limits", 604800, &lim->idle_timeout_s);
    get_seconds(c, v, "connect_timeout_s", "limits", 3600, &lim->connect_timeout_s);
    get_seconds(c, v, "shutdown_grace_s", "limits", 3600, &lim->shutdown_grace_s);
}

/*
 * Check an advertised "host:port" (not resolved: it is what clients are
 * told). Returns NULL if fine, else a static reason; on success host (room
 * for strlen(s)+1) and *port are filled.
 */
static const char *check_advertised(const char *s, char *host, uint16_t *port)
{
    size_t n = strlen(s);
    char *portbuf = malloc(n + 1);
    if (!portbuf) return "out of memory";
    bool bracketed;
    const char *why = split_hostport(s, host, portbuf, &bracketed);
    long pn = 0;
    if (!why && (!parse_port_digits(portbuf, &pn) || pn < 1 || pn > 65535))
        why = "port must be a number between 1 and 65535";
    if (!why && !host_chars_ok(host, bracketed))
        why = "the host contains characters that are not valid in a host name";
    if (!why && bracketed) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            why = "the text in brackets is not an IPv6 address";
    }
    free(portbuf);
    if (!why) *port = (uint16_t)pn;
    return why;
}

/*
 * Replace every "{id}" in `tmpl` by the decimal `id` into dst[dstlen].
 * Returns BS_E_TOO_LARGE if it does not fit.
 */
static bs_status expand_template(const char *tmpl, int32_t id, char *dst, size_t dstlen)
{
    if (dstlen == 0) return BS_E_TOO_LARGE;
    char num[16];
    int nl = snprintf(num, sizeof num, "%" PRId32, id);
    size_t o = 0;
    for (const char *s = tmpl; *s;) {
        const char *piece = s;
        size_t k = 1;
        if (strncmp(s, "{id}", 4) == 0) {
            piece = num;
            k = (size_t)nl;
            s += 4;
        } else {
            s++;
        }
        if (o + k >= dstlen) return BS_E_TOO_LARGE;
        memcpy(dst + o, piece, k);
        o += k;
    }
    dst[o] = '\0';
    return BS_OK;
}

/* Validate an advertise template: contains "{id}", no other braces, and with
 * "{id}" replaced gives a valid host:port. */
static void check_template(cfg_ctx *c, const char *p, const char *t)
{
    char q[160];
    if (!strstr(t, "{id}")) {
        cfg_err(c, p, "%s: the template must contain {id} (replaced by the broker's node id)",
                quote(q, sizeof q, t));
        return;
    }
    /* Braces other than {id} are almost certainly a typo such as {ID} or {node}. */
    for (const char *s = t; *s; s++) {
        if (strncmp(s, "{id}", 4) == 0) {
            s += 3;
            continue;
        }
        if (*s == '{' || *s == '}') {
            cfg_err(c, p, "%s: only the placeholder {id} is supported", quote(q, sizeof q, t));
            return;
        }
    }
    /* Expanding with id 0 checks the host and also a port built from {id}
     * (e.g. "localhost:909{id}"); ids that overflow such a port are refused
     * at lookup time. */
    size_t cap = strlen(t) * 3 + 16;
    char *buf = malloc(cap), *host = malloc(cap);
    if (!buf || !host) {
        c->nomem = true;
        goto out;
    }
    uint16_t port;
    const char *why = NULL;
    if (expand_template(t, 0, buf, cap) != BS_OK)
        why = "too long";
    else
        why = check_advertised(buf, host, &port);
    if (why) cfg_err(c, p, "%s: %s", quote(q, sizeof q, t), why);
out:
    free(buf);
    free(host);
}

/* Parse a node-id map object ({"1": "host:port", ...}) at `path` into k. */
static void parse_advertise_map(cfg_ctx *c, const cJSON *m, const char *path, bs_kafka_config *k)
{
    char p[CFG_PATH_MAX], q[160], qv[300];
    size_t n = (size_t)cJSON_GetArraySize(m);
    if (n == 0) {
        /* An empty map advertises nothing: almost certainly an unfinished edit. */
        cfg_err(c, path, "maps no node id: add \"ID\": \"host:port\" entries%s",
                strcmp(path, "kafka.advertise") == 0 ? " or use a template" : " or remove it");
        return;
    }
    k->advertise = calloc(n, sizeof *k->advertise);
    if (!k->advertise) {
        c->nomem = true;
        return;
    }
    for (const cJSON *it = m->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        snprintf(p, sizeof p, "%s[%s]", path, quote(q, sizeof q, key));
        bool dup = false;
        for (const cJSON *prev = m->child; prev != it; prev = prev->next)
            if (prev->string && strcmp(prev->string, key) == 0) dup = true;
        if (dup) {
            cfg_err(c, p, "duplicate node id %s", quote(q, sizeof q, key));
            continue;
        }
        /* Digits only and no leading zero, so "01" and "1" cannot both map. */
        size_t kl = strlen(key);
        bool digits = kl > 0 && kl <= 10 && (key[0] != '0' || kl == 1);
        for (size_t i = 0; digits && i < kl; i++)
            if (!isdigit((unsigned char)key[i])) digits = false;
        long long id = digits ? strtoll(key, NULL, 10) : -1;
        if (!digits || id > INT32_MAX) {
            cfg_err(c, p,
                    "%s is not a node id: keys must be non-negative integers written in "
                    "decimal, e.g. \"1\"",
                    quote(q, sizeof q, key));
            continue;
        }
        if (!cJSON_IsString(it)) {
            cfg_err(c, p, "expected a \"host:port\" string, got %s", json_type_name(it));
            continue;
        }
        const char *s = it->valuestring;
        char *host = malloc(strlen(s) + 1);
        if (!host) {
            c->nomem = true;
            return;
        }
        uint16_t port;
        const char *why = check_advertised(s, host, &port);
        if (why) {
            cfg_err(c, p, "%s: %s", quote(qv, sizeof qv, s), why);
            free(host);
            continue;
        }
        bs_advertise_entry *e = &k->advertise[k->n_advertise++];
        e->node_id = (int32_t)id;
        e->host = host;
        e->port = port;
    }
}

/* Parse `kafka` (optional object): advertise and max_frame_bytes. */
static void parse_kafka(cfg_ctx *c, const cJSON *root, bs_kafka_config *k)
{
    static const char *const keys[] = {"advertise", "max_frame_bytes", NULL};
    static const char *const adv_keys[] = {"nodes", "template", NULL};
    char q[160];
    k->max_frame_bytes = 104857600;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "kafka");
    if (!v || cJSON_IsNull(v)) return;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, "kafka", "expected an object, got %s", json_type_name(v));
        return;
    }
    check_keys(c, v, "kafka", keys, NULL);
    long long x = k->max_frame_bytes;
    get_int(c, v, "max_frame_bytes", "kafka", 1024, 1073741824, &x);
    k->max_frame_bytes = (uint32_t)x;
    const cJSON *a = member(v, "advertise");
    if (!a) return;
    if (cJSON_IsString(a)) {
        check_template(c, "kafka.advertise", a->valuestring);
        k->advertise_template = cfg_strdup(c, a->valuestring);
        return;
    }
    if (!cJSON_IsObject(a)) {
        cfg_err(c, "kafka.advertise",
                "expected a template string, a node-id map, or an object with \"nodes\" and/or "
                "\"template\"; got %s",
                json_type_name(a));
        return;
    }
    bool combined = cJSON_GetObjectItemCaseSensitive(a, "nodes") ||
                    cJSON_GetObjectItemCaseSensitive(a, "template");
    if (!combined) {
        parse_advertise_map(c, a, "kafka.advertise", k);
        return;
    }
    /* The combined form: node ids are not allowed next to nodes/template, so
     * every other key is reported by check_keys. */
    check_keys(c, a, "kafka.advertise", adv_keys, NULL);
    const cJSON *nodes = member(a, "nodes");
    if (nodes) {
        if (cJSON_IsObject(nodes))
            parse_advertise_map(c, nodes, "kafka.advertise.nodes", k);
        else
            cfg_err(c, "kafka.advertise.nodes",
                    "expected an object mapping node ids to "
                    "\"host:port\", got %s",
                    json_type_name(nodes));
    }
    const cJSON *t = member(a, "template");
    if (t) {
        if (cJSON_IsString(t)) {
            check_template(c, "kafka.advertise.template", t->valuestring);
            k->advertise_template = cfg_strdup(c, t->valuestring);
        } else {
            cfg_err(c, "kafka.advertise.template", "expected a string such as %s, got %s",
                    quote(q, sizeof q, "kafka-{id}.example.com:9094"), json_type_name(t));
        }
    }
}

/* Parse `admin`: absent = enabled with defaults, null = disabled. */
static void parse_admin(cfg_ctx *c, const cJSON *root, bs_admin_config *adm)
{
    static const char *const keys[] = {"bind", "probe_interval_s", NULL};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "admin");
    adm->probe_interval_s = 5;
    if (v && cJSON_IsNull(v)) {
        adm->enabled = false;
        return;
    }
    adm->enabled = true;
    if (v && !cJSON_IsObject(v)) {
        cfg_err(c, "admin", "expected an object, or null to disable the admin endpoint; got %s",
                json_type_name(v));
        return;
    }
    static const cJSON empty = {0};
    if (!v) v = &empty;
    check_keys(c, v, "admin", keys, NULL);
    (void)get_endpoint(c, v, "bind", "admin", "127.0.0.1:9644", 0, true, &adm->bind);
    get_seconds(c, v, "probe_interval_s", "admin", 3600, &adm->probe_interval_s);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

/* Free cfg and everything it owns; NULL is a no-op. Works on partially
 * filled configs too, which is how failed loads clean up. */
void bs_config_free(bs_config *cfg)
{
    if (!cfg) return;
    free(cfg->path);
    for (size_t i = 0; i < cfg->n_listeners; i++)
        listener_free(&cfg->listeners[i]);
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->kafka.n_advertise; i++)
        free(cfg->kafka.advertise[i].host);
    free(cfg->kafka.advertise);
    free(cfg->kafka.advertise_template);
    endpoint_free(&cfg->admin.bind);
    free(cfg);
}

/* Free every message and reset errs to empty, ready for reuse. */
void bs_config_errors_free(bs_config_errors *errs)
{
    if (!errs) return;
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}

/* Walk the parsed document into cfg (every section, all problems recorded). */
static void walk_root(cfg_ctx *c, const cJSON *root, bs_config *cfg)
{
    static const char *const keys[] = {"workers", "log_level", "listeners", "limits",
                                       "kafka",   "admin",     NULL};
    static const char *const future[] = {"encryption", "aws",   "audit", "metrics",
                                         "logs",       "sinks", "spool", NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    check_keys(c, root, "", keys, future);
    long long w = 0;
    get_int(c, root, "workers", "", 0, CFG_MAX_WORKERS, &w);
    if (w == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        w = cores < 1 ? 1 : (cores > CFG_MAX_WORKERS ? CFG_MAX_WORKERS : cores);
    }
    cfg->workers = (uint32_t)w;
    int level = BS_LOG_INFO;
    get_enum(c, root, "log_level", "", levels, &level);
    cfg->log_level = (bs_log_level)level;
    parse_listeners(c, root, cfg);
    parse_limits(c, root, &cfg->limits);
    parse_kafka(c, root, &cfg->kafka);
    parse_admin(c, root, &cfg->admin);
    if (cfg->admin.enabled && cfg->admin.bind.text) {
        for (size_t i = 0; i < cfg->n_listeners; i++) {
            if (cfg->listeners[i].bind.text &&
                binds_overlap(&cfg->admin.bind, &cfg->listeners[i].bind))
                cfg_err(c, "admin.bind", "%s overlaps listeners[%zu].bind (%s)",
                        cfg->admin.bind.text, i, cfg->listeners[i].bind.text);
        }
    }
}

/* See config.h. `text` need not be NUL-terminated; it is copied. */
bs_status bs_config_parse(const char *path, const char *text, size_t len, bs_config **out,
                          bs_config_errors *errs)
{
    cfg_ctx c = {.file = path, .errs = errs};
    char *clean = NULL;
    cJSON *root = NULL;
    bs_config *cfg = NULL;
    bs_status st = BS_OK;
    *out = NULL;
    size_t off = 0;
    const char *why = NULL;
    st = strip_comments(text, len, &clean, &off, &why);
    if (st == BS_E_CONFIG) cfg_err_at(&c, text, len, off, why);
    if (st != BS_OK) goto out;
    bool blank = true;
    for (size_t i = 0; i < len && blank; i++)
        blank = isspace((unsigned char)clean[i]);
    if (blank) {
        cfg_err(&c, "", "the file is empty (or only comments): expected a JSON object");
        st = BS_E_CONFIG;
        goto out;
    }
    if (find_trailing_comma(clean, len, &off)) {
        cfg_err_at(&c, text, len, off, "JSON syntax error: trailing comma before '}' or ']'");
        st = BS_E_CONFIG;
        goto out;
    }
    const char *end = NULL;
    /* len + 1 includes the NUL, which is how cJSON detects trailing garbage. */
    root = cJSON_ParseWithLengthOpts(clean, len + 1, &end, true);
    if (!root) {
        off = end ? (size_t)(end - clean) : 0;
        /* Past the end means "ran out of input": point at the last real byte. */
        while (off > 0 && (off >= len || isspace((unsigned char)clean[off])))
            off--;
        char msg[128];
        if (off < len && isprint((unsigned char)text[off]))
            snprintf(msg, sizeof msg, "JSON syntax error near '%c'", text[off]);
        else
            snprintf(msg, sizeof msg, "JSON syntax error");
        cfg_err_at(&c, text, len, off, msg);
        st = BS_E_CONFIG;
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        cfg_err(&c, "", "expected a JSON object at the top level, got %s", json_type_name(root));
        st = BS_E_CONFIG;
        goto out;
    }
    c.dir = config_dir(path);
    cfg = calloc(1, sizeof *cfg);
    if (!c.dir || !cfg) {
        st = BS_E_NOMEM;
        goto out;
    }
    cfg->path = cfg_strdup(&c, path);
    walk_root(&c, root, cfg);
    if (c.nomem)
        st = BS_E_NOMEM;
    else if (c.n_problems)
        st = BS_E_CONFIG;
    if (st == BS_OK && cfg->admin.enabled && !addr_is_loopback(&cfg->admin.bind.addr))
        bs_log(BS_LOG_WARN, "config",
               "%s: admin.bind %s is not a loopback address: health, metrics and status will "
               "be reachable from the network",
               path, cfg->admin.bind.text);
out:
    if (st == BS_E_NOMEM && !c.n_problems) {
        /* Best effort: the list may itself be what failed to grow. */
        cfg_err(&c, "", "out of memory while loading the configuration");
    }
    if (st == BS_OK) {
        *out = cfg;
        cfg = NULL;
    }
    bs_config_free(cfg);
    cJSON_Delete(root);
    free(clean);
    free(c.dir);
    return st;
}

/* See config.h: read the whole file, then bs_config_parse(). */
bs_status bs_config_load(const char *path, bs_config **out, bs_config_errors *errs)
{
    cfg_ctx c = {.file = path, .errs = errs};
    char *text = NULL;
    bs_status st = BS_OK;
    int fd = -1;
    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        cfg_err(&c, "", "cannot open the configuration file: %s", strerror(errno));
        st = BS_E_IO;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        cfg_err(&c, "", "not a regular file");
        st = BS_E_IO;
        goto out;
    }
    if ((uint64_t)sb.st_size > CFG_MAX_FILE_BYTES) {
        cfg_err(&c, "", "the file is %lld bytes: at most %u are accepted", (long long)sb.st_size,
                CFG_MAX_FILE_BYTES);
        st = BS_E_CONFIG;
        goto out;
    }
    /* Read to EOF rather than trusting st_size: the file may change under us. */
    size_t cap = (size_t)sb.st_size + 1, len = 0;
    text = malloc(cap);
    if (!text) {
        st = BS_E_NOMEM;
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > CFG_MAX_FILE_BYTES) {
                cfg_err(&c, "", "the file is larger than %u bytes", CFG_MAX_FILE_BYTES);
                st = BS_E_CONFIG;
                goto out;
            }
            char *grown = realloc(text, cap * 2);
            if (!grown) {
                st = BS_E_NOMEM;
                goto out;
            }
            text = grown;
            cap *= 2;
        }
        ssize_t r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            cfg_err(&c, "", "cannot read the configuration file: %s", strerror(errno));
            st = BS_E_IO;
            goto out;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    st = bs_config_parse(path, text, len, out, errs);
out:
    if (fd >= 0) close(fd);
    free(text);
    return st;
}

/* See config.h. */
bs_status bs_config_advertised(const bs_kafka_config *k, int32_t node_id, char *host,
                               size_t hostlen, uint16_t *port)
{
    if (node_id < 0) return BS_E_NOT_FOUND;
    for (size_t i = 0; i < k->n_advertise; i++) {
        const bs_advertise_entry *e = &k->advertise[i];
        if (e->node_id != node_id) continue;
        size_t n = strlen(e->host);
        if (n >= hostlen) return BS_E_TOO_LARGE;
        memcpy(host, e->host, n + 1);
        *port = e->port;
        return BS_OK;
    }
    if (!k->advertise_template) return BS_E_NOT_FOUND;
    char buf[512], h[512];
    BS_GUARD(expand_template(k->advertise_template, node_id, buf, sizeof buf));
    uint16_t p;
    /* A template may put {id} in the port ("localhost:909{id}"); ids that make
     * it overflow cannot be advertised. */
    if (check_advertised(buf, h, &p) != NULL) return BS_E_MALFORMED;
    size_t n = strlen(h);
    if (n >= hostlen) return BS_E_TOO_LARGE;
    memcpy(host, h, n + 1);
    *port = p;
    return BS_OK;
}

/* Append "what" to a comma-separated list in buf (bounded, always terminated). */
static void list_add(char *buf, size_t len, const char *what)
{
    if (len == 0) return;
    size_t used = strlen(buf);
    if (used + 1 >= len) return;
    snprintf(buf + used, len - used, "%s%s", used ? ", " : "", what);
}

/* Same resolved socket address (the text may differ, e.g. a renamed host). */
static bool same_endpoint(const bs_endpoint *a, const bs_endpoint *b)
{
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* See config.h: the SIGHUP rule of docs/configuration.md, key by key. */
bool bs_config_needs_restart(const bs_config *old_cfg, const bs_config *new_cfg, char *what,
                             size_t whatlen)
{
    char item[160];
    bool changed = false;
    if (whatlen) what[0] = '\0';
    if (old_cfg->workers != new_cfg->workers) {
        changed = true;
        list_add(what, whatlen, "workers");
    }
    if (old_cfg->n_listeners != new_cfg->n_listeners) {
        changed = true;
        list_add(what, whatlen, "the number of listeners");
    } else {
        for (size_t i = 0; i < old_cfg->n_listeners; i++) {
            const bs_listener_config *a = &old_cfg->listeners[i], *b = &new_cfg->listeners[i];
            static const char *const fields[] = {"name",
                                                 "bind",
                                                 "upstream",
                                                 "protocol",
                                                 "broker_id",
                                                 "tls (on/off)",
                                                 "upstream_tls (on/off)"};
            bool diff[] = {strcmp(a->name, b->name) != 0,
                           !same_endpoint(&a->bind, &b->bind),
                           !same_endpoint(&a->upstream, &b->upstream),
                           a->protocol != b->protocol,
                           a->broker_id != b->broker_id,
                           (a->tls == NULL) != (b->tls == NULL),
                           (a->upstream_tls == NULL) != (b->upstream_tls == NULL)};
            for (size_t f = 0; f < BS_ARRAY_LEN(fields); f++) {
                if (!diff[f]) continue;
                changed = true;
                snprintf(item, sizeof item, "listeners[%zu].%s", i, fields[f]);
                list_add(what, whatlen, item);
            }
        }
    }
    if (old_cfg->admin.enabled != new_cfg->admin.enabled ||
        (old_cfg->admin.enabled && !same_endpoint(&old_cfg->admin.bind, &new_cfg->admin.bind))) {
        changed = true;
        list_add(what, whatlen, "admin (enabled or bind)");
    }
    return changed;
}
