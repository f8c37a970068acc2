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
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
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
    bs_config_errors *warns; /* the config's warnings (NULL before it exists) */
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
    if (secret && (sb.st_mode & S_IROTH) && c->warns &&
        bs_config_errors_addf(c->warns, "%s: %s: %s is readable by every user: chmod 600 it",
                              c->file, p, where) != BS_OK)
        c->nomem = true;
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

/* See config.h. */
bool bs_endpoint_is_loopback(const bs_endpoint *e)
{
    return addr_is_loopback(&e->addr);
}

/* See config.h. */
bool bs_endpoint_is_wildcard(const bs_endpoint *e)
{
    return addr_is_any(&e->addr);
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
    free(l->advertised_host);
    endpoint_free(&l->bind);
    endpoint_free(&l->upstream);
    tls_server_free(l->tls);
    tls_client_free(l->upstream_tls);
}

static const char *check_advertised(const char *s, char *host, uint16_t *port);

/* Parse `listeners[i].advertised` (optional "host:port", kafka listeners
 * only): what clients are told for the broker this listener fronts. */
static void parse_listener_advertised(cfg_ctx *c, const cJSON *v, const char *path,
                                      bs_listener_config *l)
{
    char p[CFG_PATH_MAX], q[300];
    const char *s;
    path_key(p, sizeof p, path, "advertised");
    if (!get_string(c, v, "advertised", path, &s) || !s) return;
    if (l->protocol != BS_PROTOCOL_KAFKA) {
        cfg_err(c, p, "only a \"kafka\" listener announces broker addresses; remove it");
        return;
    }
    char *host = malloc(strlen(s) + 1);
    if (!host) {
        c->nomem = true;
        return;
    }
    const char *why = check_advertised(s, host, &l->advertised_port);
    if (why) {
        cfg_err(c, p, "%s: %s", quote(q, sizeof q, s), why);
        free(host);
        return;
    }
    l->advertised_host = host;
}

/* Parse `listeners[i]` into *l (zeroed by the caller). *bind_ok tells
 * whether l->bind is valid for the overlap check. */
static void parse_listener(cfg_ctx *c, const cJSON *v, const char *path, size_t idx,
                           bs_listener_config *l, bool *bind_ok)
{
    static const char *const keys[] = {"name", "bind",         "upstream",   "protocol", "broker_id",
                                       "tls",  "upstream_tls", "advertised", NULL};
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
    parse_listener_advertised(c, v, path, l);
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

/* Fill cfg->kafka.routes: one per kafka listener, announcing its
 * `advertised` address, else its bind address unless that is a wildcard or
 * port 0 (then host stays NULL: nothing derivable). */
static void derive_kafka_routes(cfg_ctx *c, bs_config *cfg)
{
    bs_kafka_config *k = &cfg->kafka;
    if (cfg->n_listeners == 0) return;
    k->routes = calloc(cfg->n_listeners, sizeof *k->routes);
    if (!k->routes) {
        c->nomem = true;
        return;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const bs_listener_config *l = &cfg->listeners[i];
        if (l->protocol != BS_PROTOCOL_KAFKA || !l->upstream.text) continue;
        bs_kafka_route *r = &k->routes[k->n_routes++];
        r->listener = l->name;
        r->upstream = &l->upstream;
        r->node_id = l->broker_id;
        if (l->advertised_host) {
            r->host = l->advertised_host;
            r->port = l->advertised_port;
        } else if (l->bind.text && l->bind.port != 0 && !addr_is_any(&l->bind.addr)) {
            r->host = l->bind.host;
            r->port = l->bind.port;
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
/* AWS, encryption, events, sinks, spool                                     */
/* ------------------------------------------------------------------------ */

#define CFG_MAX_TOPIC_RULES 1024
#define CFG_MAX_SINKS 64
#define CFG_MAX_LOG_FILES 256
#define CFG_KEYREF_MAX 1024 /* BS_ENVELOPE_MAX_KEYREF */
#define CFG_MIB (1024ull * 1024ull)

/* Resolve `s` against the config directory. Returns a malloc'd absolute
 * path, or NULL with c->nomem raised. */
static char *resolve_path(cfg_ctx *c, const char *s)
{
    char *abs = NULL;
    if (s[0] == '/') return cfg_strdup(c, s);
    if (!c->dir || asprintf(&abs, "%s%s%s", c->dir, strcmp(c->dir, "/") == 0 ? "" : "/", s) < 0) {
        c->nomem = true;
        return NULL;
    }
    return abs;
}

/*
 * Read a secret file named by string member `key` (like get_file), and also
 * require that its mode grants nothing to group or others: the key loaders
 * refuse such files at start, so the problem is reported here first. Returns
 * the malloc'd absolute path, NULL when absent (*ok true) or on error.
 */
static char *get_secret_file(cfg_ctx *c, const cJSON *obj, const char *key, const char *path,
                             bool required, bool *ok)
{
    char p[CFG_PATH_MAX], q[600];
    char *abs = get_file(c, obj, key, path, required, false, ok);
    if (!abs) return NULL;
    struct stat sb;
    if (stat(abs, &sb) == 0 && (sb.st_mode & 077)) {
        path_key(p, sizeof p, path, key);
        cfg_err(c, p, "%s is accessible by group or others (mode %04o): chmod 600 it",
                quote(q, sizeof q, abs), (unsigned)(sb.st_mode & 07777));
        free(abs);
        *ok = false;
        return NULL;
    }
    return abs;
}

/*
 * Read a directory named by string member `key`, resolved against the config
 * directory. It must be a writable directory, or not exist yet with a
 * writable parent directory (the daemon creates it). Returns the malloc'd
 * absolute path, NULL when absent or on error (problem recorded).
 */
static char *get_dir(cfg_ctx *c, const cJSON *obj, const char *key, const char *path)
{
    char p[CFG_PATH_MAX], q[600];
    const char *s;
    if (!get_string(c, obj, key, path, &s) || !s) return NULL;
    path_key(p, sizeof p, path, key);
    char *abs = resolve_path(c, s);
    if (!abs) return NULL;
    /* "dir/" and "dir" are one directory: compare (and store) them alike. */
    for (size_t n = strlen(abs); n > 1 && abs[n - 1] == '/'; n--)
        abs[n - 1] = '\0';
    struct stat sb;
    if (stat(abs, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            cfg_err(c, p, "%s exists and is not a directory", quote(q, sizeof q, abs));
            goto fail;
        }
        if (access(abs, W_OK | X_OK) != 0) {
            cfg_err(c, p, "%s is not writable: %s", quote(q, sizeof q, abs), strerror(errno));
            goto fail;
        }
        return abs;
    }
    if (errno != ENOENT) {
        cfg_err(c, p, "%s cannot be accessed: %s", quote(q, sizeof q, abs), strerror(errno));
        goto fail;
    }
    /* Missing: created at start, so its parent must be a writable directory. */
    char *parent = cfg_strdup(c, abs);
    if (!parent) goto fail;
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (slash == parent)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    bool parent_ok = stat(parent, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (!parent_ok)
        cfg_err(c, p, "%s does not exist and neither does its parent directory %s",
                quote(q, sizeof q, abs), parent);
    else if (access(parent, W_OK | X_OK) != 0)
        cfg_err(c, p, "%s does not exist and cannot be created: %s is not writable",
                quote(q, sizeof q, abs), parent);
    bool ok = parent_ok && access(parent, W_OK | X_OK) == 0;
    free(parent);
    if (ok) return abs;
fail:
    free(abs);
    return NULL;
}

/* An AWS region name: lower-case words joined by '-', at least three parts,
 * the last one a number ("us-east-1", "us-gov-west-1", "ap-southeast-4"). */
static bool region_ok(const char *s)
{
    size_t n = strlen(s), parts = 1;
    if (n < 6 || n > 32 || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-') {
            if (s[i + 1] == '-') return false;
            parts++;
        } else if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i])) {
            return false;
        }
    }
    if (parts < 3 || !isalpha((unsigned char)s[0])) return false;
    for (const char *t = strrchr(s, '-') + 1; *t; t++)
        if (!isdigit((unsigned char)*t)) return false;
    return true;
}

/* Read an optional region member, checking its format; *out borrowed. */
static void get_region(cfg_ctx *c, const cJSON *obj, const char *path, const char **out)
{
    char p[CFG_PATH_MAX], q[160];
    const char *s;
    *out = NULL;
    if (!get_string(c, obj, "region", path, &s) || !s) return;
    if (!region_ok(s)) {
        path_key(p, sizeof p, path, "region");
        cfg_err(c, p, "%s is not an AWS region name (e.g. \"us-east-1\")", quote(q, sizeof q, s));
        return;
    }
    *out = s;
}

/* True for "localhost", 127.0.0.0/8 and ::1 written literally. */
static bool host_is_loopback(const char *h)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(h, "localhost") == 0) return true;
    if (inet_pton(AF_INET, h, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, h, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/*
 * Validate an endpoint override URL: "https://HOST[:PORT][/PATH]", or
 * "http://..." when HOST is loopback or `insecure_ok`. No user info, query or
 * fragment (they would be signed into every request by accident). Returns
 * NULL when fine, else a static reason.
 */
static const char *check_url(const char *u, bool insecure_ok)
{
    bool tls = strncmp(u, "https://", 8) == 0;
    if (!tls && strncmp(u, "http://", 7) != 0)
        return "must be an http:// or https:// URL, e.g. \"https://kms.example.internal\"";
    const char *h = u + (tls ? 8 : 7);
    size_t hl = strcspn(h, "/?#");
    if (h[hl] == '?' || h[hl] == '#' || strpbrk(h, "?#"))
        return "must not contain a query or fragment";
    if (memchr(h, '@', hl)) return "must not contain user information";
    char host[300];
    if (hl == 0 || hl >= sizeof host) return "has no valid host";
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *port = NULL;
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        if (!close) return "missing ']' after the IPv6 address";
        *close = '\0';
        memmove(host, host + 1, strlen(host + 1) + 1);
        if (close[1] == ':')
            port = close + 2; /* the memmove left the tail in place */
        else if (close[1])
            return "expected ':PORT' after ']'";
    } else {
        port = strchr(host, ':');
        if (port) *port++ = '\0';
    }
    if (port) {
        long pn;
        if (!parse_port_digits(port, &pn) || pn < 1 || pn > 65535)
            return "port must be a number between 1 and 65535";
    }
    if (host[0] == '\0' || !host_chars_ok(host, strchr(host, ':') != NULL))
        return "has no valid host";
    if (!tls && !insecure_ok && !host_is_loopback(host))
        return "uses plain http to a host that is not loopback: use https, or set "
               "\"allow_insecure_endpoint\": true";
    return NULL;
}

/* Read the optional `endpoint` (+ `allow_insecure_endpoint`) of obj. */
static char *get_url(cfg_ctx *c, const cJSON *obj, const char *path)
{
    char p[CFG_PATH_MAX], q[300];
    const char *s;
    bool insecure = false;
    get_bool(c, obj, "allow_insecure_endpoint", path, &insecure);
    if (!get_string(c, obj, "endpoint", path, &s) || !s) return NULL;
    const char *why = check_url(s, insecure);
    if (why) {
        path_key(p, sizeof p, path, "endpoint");
        cfg_err(c, p, "%s %s", quote(q, sizeof q, s), why);
        return NULL;
    }
    return cfg_strdup(c, s);
}

/* Free and wipe a secret string. */
static void secret_free(char *s)
{
    if (!s) return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* Parse `aws` (optional object). The region is resolved from the
 * environment when the file does not set it. */
static void parse_aws(cfg_ctx *c, const cJSON *root, bs_aws_config *a)
{
    static const char *const keys[] = {"region",
                                       "profile",
                                       "credentials",
                                       "max_attempts",
                                       "connect_timeout_s",
                                       "request_timeout_s",
                                       "ca_file",
                                       NULL};
    static const char *const ckeys[] = {"access_key_id", "secret_access_key", "session_token",
                                        NULL};
    a->max_attempts = 4;
    a->connect_timeout_s = 3;
    a->request_timeout_s = 30;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "aws");
    if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v)) {
        cfg_err(c, "aws", "expected an object, got %s", json_type_name(v));
        v = NULL;
    }
    static const cJSON empty = {0};
    if (!v || cJSON_IsNull(v)) v = &empty;
    check_keys(c, v, "aws", keys, NULL);
    const char *region = NULL;
    get_region(c, v, "aws", &region);
    if (!region && !member(v, "region")) {
        const char *env = getenv("AWS_REGION");
        const char *name = "AWS_REGION";
        if (!env || !env[0]) {
            env = getenv("AWS_DEFAULT_REGION");
            name = "AWS_DEFAULT_REGION";
        }
        if (env && env[0]) {
            char q[160];
            if (region_ok(env)) {
                region = env;
                a->region_from_env = true;
            } else {
                cfg_err(c, "aws.region", "not set, and %s=%s is not an AWS region name", name,
                        quote(q, sizeof q, env));
            }
        }
    }
    a->region = cfg_strdup(c, region);
    const char *s;
    if (get_string(c, v, "profile", "aws", &s)) a->profile = cfg_strdup(c, s);
    long long x = a->max_attempts;
    get_int(c, v, "max_attempts", "aws", 1, 20, &x);
    a->max_attempts = (uint32_t)x;
    get_seconds(c, v, "connect_timeout_s", "aws", 600, &a->connect_timeout_s);
    get_seconds(c, v, "request_timeout_s", "aws", 3600, &a->request_timeout_s);
    bool ok;
    a->ca_file = get_file(c, v, "ca_file", "aws", false, false, &ok);
    const cJSON *cr = member(v, "credentials");
    if (!cr) return;
    if (!cJSON_IsObject(cr)) {
        cfg_err(c, "aws.credentials", "expected an object, got %s", json_type_name(cr));
        return;
    }
    check_keys(c, cr, "aws.credentials", ckeys, NULL);
    /* Only types are checked: a secret's value never appears in a message. */
    if (get_string(c, cr, "access_key_id", "aws.credentials", &s))
        a->access_key_id = cfg_strdup(c, s);
    if (get_string(c, cr, "secret_access_key", "aws.credentials", &s))
        a->secret_access_key = cfg_strdup(c, s);
    if (get_string(c, cr, "session_token", "aws.credentials", &s))
        a->session_token = cfg_strdup(c, s);
    bool has_id = member(cr, "access_key_id") != NULL;
    bool has_secret = member(cr, "secret_access_key") != NULL;
    if (has_id != has_secret)
        cfg_err(c, has_id ? "aws.credentials.secret_access_key" : "aws.credentials.access_key_id",
                "is required because %s is set", has_id ? "access_key_id" : "secret_access_key");
    else if (!has_id && member(cr, "session_token"))
        cfg_err(c, "aws.credentials.session_token",
                "needs access_key_id and secret_access_key (a token alone is not a credential)");
    else if (!has_id)
        cfg_err(c, "aws.credentials",
                "is empty: remove it to use the environment, a profile or the instance role");
}

/* Check a topic glob. Returns NULL when usable, else a static reason. */
static const char *check_glob(const char *g)
{
    size_t n = strlen(g);
    if (n > 249 * 2 + 16) return "is too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)g[i];
        if (ch == '\\') {
            if (i + 1 >= n) return "ends with a lone backslash";
            i++;
            continue;
        }
        if (ch == '[') {
            /* A bracket expression: "[!" or "[^" negates, a leading ']' is literal. */
            size_t j = i + 1;
            if (j < n && (g[j] == '!' || g[j] == '^')) j++;
            if (j < n && g[j] == ']') j++;
            while (j < n && g[j] != ']')
                j++;
            if (j >= n) return "has a '[' without its closing ']'";
            i = j;
            continue;
        }
        /* Kafka topic names use only [A-Za-z0-9._-]; anything else cannot match. */
        if (!isalnum(ch) && !strchr("._-*?", ch))
            return "contains a character that no Kafka topic name has (allowed: A-Z a-z 0-9 . _ "
                   "- and the glob syntax * ? [...] \\)";
    }
    return NULL;
}

/* A key reference: printable ASCII, no spaces, at most 1024 bytes (the
 * envelope's limit). For AWS KMS it must also be a key id, key ARN, alias
 * name or alias ARN. Returns NULL when fine, else a static reason. */
static const char *check_keyref(const char *k, bs_kms_type t)
{
    size_t n = strlen(k);
    if (n > CFG_KEYREF_MAX) return "is longer than 1024 bytes";
    for (size_t i = 0; i < n; i++)
        if (k[i] <= 0x20 || k[i] >= 0x7f) return "must be printable ASCII without spaces";
    if (t != BS_KMS_AWS) return NULL;
    if (strncmp(k, "alias/", 6) == 0 && n > 6) return NULL;
    if (strncmp(k, "arn:", 4) == 0 && strstr(k, ":kms:")) return NULL;
    bool id = n == 36 || (strncmp(k, "mrk-", 4) == 0 && n > 4);
    for (size_t i = 0; id && i < n; i++)
        if (!isxdigit((unsigned char)k[i]) && k[i] != '-' && !(i < 3 && strncmp(k, "mrk", 3) == 0))
            id = false;
    if (id) return NULL;
    return "is not a KMS key: use a key id, a key ARN, \"alias/NAME\" or an alias ARN";
}

/* Parse `encryption` (absent or null: off). */
static void parse_encryption(cfg_ctx *c, const cJSON *root, const bs_aws_config *aws,
                             bs_encryption_config *e)
{
    static const char *const keys[] = {"kms", "topics",        "unmatched_topics",
                                       "dek", "decrypt_cache", NULL};
    static const char *const local_keys[] = {"type", "key_file", NULL};
    static const char *const aws_keys[] = {"type", "region", "endpoint", "allow_insecure_endpoint",
                                           NULL};
    static const char *const rule_keys[] = {"match", "key", NULL};
    static const char *const dek_keys[] = {"max_records", "max_age_s", NULL};
    static const char *const cache_keys[] = {"max_entries", "ttl_s", NULL};
    static const char *const types[] = {"local", "aws", NULL};
    static const char *const unmatched[] = {"plaintext", "reject", NULL};
    char p[CFG_PATH_MAX], pr[CFG_PATH_MAX], q[160];
    e->dek_max_records = 1000000;
    e->dek_max_age_s = 3600;
    e->decrypt_cache_max_entries = 10000;
    e->decrypt_cache_ttl_s = 3600;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "encryption");
    if (!v || cJSON_IsNull(v)) return;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, "encryption", "expected an object, got %s", json_type_name(v));
        return;
    }
    e->enabled = true;
    check_keys(c, v, "encryption", keys, NULL);
    const cJSON *k = member(v, "kms");
    if (!k) {
        cfg_err(c, "encryption.kms",
                "is required: {\"type\": \"local\", \"key_file\": \"master.key\"} or "
                "{\"type\": \"aws\"}");
    } else if (!cJSON_IsObject(k)) {
        cfg_err(c, "encryption.kms", "expected an object, got %s", json_type_name(k));
    } else {
        int t = -1;
        if (!member(k, "type"))
            cfg_err(c, "encryption.kms.type", "is required: \"local\" or \"aws\"");
        get_enum(c, k, "type", "encryption.kms", types, &t);
        if (t == BS_KMS_LOCAL) {
            e->kms_type = BS_KMS_LOCAL;
            check_keys(c, k, "encryption.kms", local_keys, NULL);
            bool ok;
            e->key_file = get_secret_file(c, k, "key_file", "encryption.kms", true, &ok);
            const cJSON *kf = member(k, "key_file");
            char *want = (!ok && kf && cJSON_IsString(kf) && kf->valuestring[0])
                             ? resolve_path(c, kf->valuestring)
                             : NULL;
            struct stat sb;
            /* The usual first-run mistake: say how to make the file. */
            if (want && stat(want, &sb) != 0 && errno == ENOENT)
                bs_log(BS_LOG_INFO, "config",
                       "%s: create the master key with: brokerside keygen %s", c->file, want);
            free(want);
        } else if (t == BS_KMS_AWS) {
            e->kms_type = BS_KMS_AWS;
            check_keys(c, k, "encryption.kms", aws_keys, NULL);
            const char *r;
            get_region(c, k, "encryption.kms", &r);
            if (!r && !member(k, "region")) r = aws->region;
            if (!r && !member(k, "region"))
                cfg_err(c, "encryption.kms.region",
                        "no region: set encryption.kms.region, aws.region or AWS_REGION");
            e->kms_region = cfg_strdup(c, r);
            e->kms_endpoint = get_url(c, k, "encryption.kms");
        }
    }
    int um = 0;
    get_enum(c, v, "unmatched_topics", "encryption", unmatched, &um);
    e->reject_unmatched = um == 1;
    const cJSON *t = member(v, "topics");
    if (!t) {
        cfg_err(c, "encryption.topics",
                "is required: at least one rule such as {\"match\": \"*\", \"key\": \"...\"}");
    } else if (!cJSON_IsArray(t)) {
        cfg_err(c, "encryption.topics", "expected an array of {match, key} rules, got %s",
                json_type_name(t));
    } else {
        size_t n = (size_t)cJSON_GetArraySize(t);
        if (n == 0)
            cfg_err(c, "encryption.topics",
                    "must contain at least one rule (remove the encryption section to turn "
                    "encryption off)");
        else if (n > CFG_MAX_TOPIC_RULES)
            cfg_err(c, "encryption.topics", "has %zu rules: at most %d are supported", n,
                    CFG_MAX_TOPIC_RULES);
        else if (!(e->topics = calloc(n, sizeof *e->topics)))
            c->nomem = true;
        size_t i = 0;
        for (const cJSON *it = t->child; it && e->topics; it = it->next, i++) {
            path_index(pr, sizeof pr, "encryption.topics", i);
            if (!cJSON_IsObject(it)) {
                cfg_err(c, pr, "expected an object {match, key}, got %s", json_type_name(it));
                continue;
            }
            check_keys(c, it, pr, rule_keys, NULL);
            const char *m, *kr;
            bool m_ok = get_string(c, it, "match", pr, &m),
                 k_ok = get_string(c, it, "key", pr, &kr);
            if (m_ok && !m) {
                path_key(p, sizeof p, pr, "match");
                cfg_err(c, p, "is required (a topic glob such as \"payments.*\" or \"*\")");
                m_ok = false;
            }
            if (k_ok && !kr) {
                path_key(p, sizeof p, pr, "key");
                cfg_err(c, p, "is required (the key reference for matching topics)");
                k_ok = false;
            }
            const char *why;
            if (m_ok && (why = check_glob(m))) {
                path_key(p, sizeof p, pr, "match");
                cfg_err(c, p, "%s %s", quote(q, sizeof q, m), why);
                m_ok = false;
            }
            if (k_ok && (why = check_keyref(kr, e->kms_type))) {
                path_key(p, sizeof p, pr, "key");
                cfg_err(c, p, "%s %s", quote(q, sizeof q, kr), why);
                k_ok = false;
            }
            if (!m_ok || !k_ok) continue;
            for (size_t j = 0; j < e->n_topics; j++) {
                if (strcmp(e->topics[j].match, "*") == 0) {
                    path_key(p, sizeof p, pr, "match");
                    cfg_err(c, p,
                            "never applies: an earlier rule matches \"*\" (every topic) "
                            "and the first match wins; put \"*\" last");
                    break;
                }
                if (strcmp(e->topics[j].match, m) == 0) {
                    path_key(p, sizeof p, pr, "match");
                    cfg_err(c, p,
                            "%s repeats an earlier rule: the first match wins, so this "
                            "rule would never apply",
                            quote(q, sizeof q, m));
                }
            }
            bs_topic_rule *r = &e->topics[e->n_topics++];
            r->match = cfg_strdup(c, m);
            r->key = cfg_strdup(c, kr);
        }
    }
    const cJSON *d = member(v, "dek");
    if (d && !cJSON_IsObject(d)) {
        cfg_err(c, "encryption.dek", "expected an object, got %s", json_type_name(d));
    } else if (d) {
        check_keys(c, d, "encryption.dek", dek_keys, NULL);
        long long x = (long long)e->dek_max_records;
        get_int(c, d, "max_records", "encryption.dek", 1, 1LL << 28, &x);
        e->dek_max_records = (uint64_t)x;
        x = (long long)e->dek_max_age_s;
        get_int(c, d, "max_age_s", "encryption.dek", 1, 86400, &x);
        e->dek_max_age_s = (uint64_t)x;
    }
    d = member(v, "decrypt_cache");
    if (d && !cJSON_IsObject(d)) {
        cfg_err(c, "encryption.decrypt_cache", "expected an object, got %s", json_type_name(d));
    } else if (d) {
        check_keys(c, d, "encryption.decrypt_cache", cache_keys, NULL);
        long long x = e->decrypt_cache_max_entries;
        get_int(c, d, "max_entries", "encryption.decrypt_cache", 1, 10000000, &x);
        e->decrypt_cache_max_entries = (uint32_t)x;
        x = (long long)e->decrypt_cache_ttl_s;
        get_int(c, d, "ttl_s", "encryption.decrypt_cache", 1, 86400, &x);
        e->decrypt_cache_ttl_s = (uint64_t)x;
    }
}

/*
 * Read the `sinks` list of an event section into *refs. Absent: the one
 * name "default". Names are checked against the sinks later (resolve_refs),
 * when every section has been read.
 */
static void get_sink_refs(cfg_ctx *c, const cJSON *obj, const char *path, bs_sink_refs *refs)
{
    char p[CFG_PATH_MAX], pi[CFG_PATH_MAX], q[160];
    path_key(p, sizeof p, path, "sinks");
    const cJSON *v = member(obj, "sinks");
    if (!v) {
        refs->names = calloc(1, sizeof *refs->names);
        if (!refs->names || !(refs->names[0] = cfg_strdup(c, "default"))) {
            c->nomem = true;
            return;
        }
        refs->n = 1;
        return;
    }
    if (!cJSON_IsArray(v)) {
        cfg_err(c, p, "expected an array of sink names, got %s", json_type_name(v));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0) {
        cfg_err(c, p,
                "is empty: events would pile up in the spool; name a sink, omit the key for the "
                "default file sink, or set the section to null");
        return;
    }
    if (n > CFG_MAX_SINKS || !(refs->names = calloc(n, sizeof *refs->names))) {
        if (n > CFG_MAX_SINKS)
            cfg_err(c, p, "names %zu sinks: at most %d are supported", n, CFG_MAX_SINKS);
        else
            c->nomem = true;
        return;
    }
    size_t i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        path_index(pi, sizeof pi, p, i);
        if (!cJSON_IsString(it)) {
            cfg_err(c, pi, "expected a sink name, got %s", json_type_name(it));
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < refs->n; j++)
            dup = dup || strcmp(refs->names[j], it->valuestring) == 0;
        if (dup) {
            cfg_err(c, pi, "%s is listed twice", quote(q, sizeof q, it->valuestring));
            continue;
        }
        refs->names[refs->n] = cfg_strdup(c, it->valuestring);
        if (refs->names[refs->n]) refs->n++;
    }
}

/* Read the common head of an event section: absent or null = disabled
 * (returns NULL), otherwise the object after checking its keys. */
static const cJSON *event_section(cfg_ctx *c, const cJSON *root, const char *name,
                                  const char *const *keys, bool *enabled)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    *enabled = false;
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, name, "expected an object, or null to turn it off; got %s", json_type_name(v));
        return NULL;
    }
    *enabled = true;
    check_keys(c, v, name, keys, NULL);
    return v;
}

/* Parse `audit`. */
static void parse_audit(cfg_ctx *c, const cJSON *root, bs_audit_config *a)
{
    static const char *const keys[] = {"data_events",
                                       "aggregate_interval_s",
                                       "aggregate_max_keys",
                                       "signing_key_file",
                                       "signing_algorithm",
                                       "digest_interval_s",
                                       "digest_every_events",
                                       "sinks",
                                       NULL};
    static const char *const modes[] = {"aggregate", "each", "off", NULL};
    static const char *const algs[] = {"detect", "hmac-sha256", "ed25519", NULL};
    a->data_events = BS_DATA_EVENTS_AGGREGATE;
    a->aggregate_interval_s = 60;
    a->digest_interval_s = 300;
    a->digest_every_events = 1000;
    a->aggregate_max_keys = 10000;
    const cJSON *v = event_section(c, root, "audit", keys, &a->enabled);
    if (!v) return;
    int m = 0;
    get_enum(c, v, "data_events", "audit", modes, &m);
    a->data_events = (bs_data_events)m;
    long long x = a->aggregate_interval_s;
    get_int(c, v, "aggregate_interval_s", "audit", 1, 86400, &x);
    a->aggregate_interval_s = (uint32_t)x;
    x = a->digest_interval_s;
    get_int(c, v, "digest_interval_s", "audit", 1, 86400, &x);
    a->digest_interval_s = (uint32_t)x;
    x = a->digest_every_events;
    get_int(c, v, "digest_every_events", "audit", 0, 10000000, &x);
    a->digest_every_events = (uint32_t)x;
    x = a->aggregate_max_keys;
    get_int(c, v, "aggregate_max_keys", "audit", 1, 10000000, &x);
    a->aggregate_max_keys = (uint32_t)x;
    bool ok;
    a->signing_key_file = get_secret_file(c, v, "signing_key_file", "audit", false, &ok);
    int alg = 0;
    get_enum(c, v, "signing_algorithm", "audit", algs, &alg);
    a->signing_algorithm = (bs_signing_algorithm)alg;
    if (member(v, "signing_algorithm") && !member(v, "signing_key_file"))
        cfg_err(c, "audit.signing_algorithm", "needs signing_key_file");
    if (a->signing_key_file && a->signing_algorithm != BS_SIGNING_DETECT) {
        /* Only the kind is checked here (PEM or not); the audit key loader
         * parses the contents at start. */
        char head[11] = "";
        FILE *f = fopen(a->signing_key_file, "re");
        if (f) {
            size_t got = fread(head, 1, sizeof head - 1, f);
            head[got] = '\0';
            fclose(f);
        }
        bool pem = strncmp(head, "-----BEGIN", 10) == 0;
        if (pem != (a->signing_algorithm == BS_SIGNING_ED25519))
            cfg_err(c, "audit.signing_algorithm", "is %s but signing_key_file %s",
                    a->signing_algorithm == BS_SIGNING_ED25519 ? "\"ed25519\"" : "\"hmac-sha256\"",
                    pem ? "is a PEM file (an Ed25519 key?)" : "is not a PEM Ed25519 key");
    }

    get_sink_refs(c, v, "audit", &a->sinks);
}

/* Parse `metrics`. */
static void parse_metrics(cfg_ctx *c, const cJSON *root, bs_metrics_config *mc)
{
    static const char *const keys[] = {"interval_s", "namespace", "sinks", NULL};
    char q[300];
    mc->interval_s = 60;
    const cJSON *v = event_section(c, root, "metrics", keys, &mc->enabled);
    const char *ns = NULL;
    if (v) {
        long long x = mc->interval_s;
        get_int(c, v, "interval_s", "metrics", 1, 86400, &x);
        mc->interval_s = (uint32_t)x;
        if (get_string(c, v, "namespace", "metrics", &ns) && ns) {
            /* CloudWatch: 1..255 characters, no leading ':' and no "AWS/" prefix. */
            bool bad = strlen(ns) > 255 || ns[0] == ':' || strncmp(ns, "AWS/", 4) == 0;
            for (const char *s = ns; *s && !bad; s++)
                bad = !isalnum((unsigned char)*s) && !strchr(".-_/#:", *s);
            if (bad) {
                cfg_err(c, "metrics.namespace",
                        "%s is not a CloudWatch namespace: 1 to 255 of A-Z a-z 0-9 . - _ / # :, "
                        "not starting with ':' or \"AWS/\"",
                        quote(q, sizeof q, ns));
                ns = NULL;
            }
        }
        get_sink_refs(c, v, "metrics", &mc->sinks);
    }
    mc->ns = cfg_strdup(c, ns ? ns : "Kafka/Brokerside");
}

/* Parse `logs`. */
static void parse_logs(cfg_ctx *c, const cJSON *root, bs_logs_config *l)
{
    static const char *const keys[] = {"files",      "tz_offset_min", "start_at_end",
                                       "state_file", "sinks",         NULL};
    static const char *const fkeys[] = {"path", "format", NULL};
    static const char *const formats[] = {"log4j", "plain", NULL};
    char p[CFG_PATH_MAX];
    const cJSON *v = event_section(c, root, "logs", keys, &l->enabled);
    if (!v) return;
    long long tz = 0;
    get_int(c, v, "tz_offset_min", "logs", -720, 840, &tz);
    l->tz_offset_min = (int32_t)tz;
    get_bool(c, v, "start_at_end", "logs", &l->start_at_end);
    const char *s;
    if (get_string(c, v, "state_file", "logs", &s) && s) l->state_file = resolve_path(c, s);
    get_sink_refs(c, v, "logs", &l->sinks);
    const cJSON *f = member(v, "files");
    if (!f) {
        cfg_err(c, "logs.files", "is required: the broker log files to ship (paths or globs)");
        return;
    }
    if (!cJSON_IsArray(f)) {
        cfg_err(c, "logs.files", "expected an array of {path, format}, got %s", json_type_name(f));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(f);
    if (n == 0 || n > CFG_MAX_LOG_FILES) {
        cfg_err(c, "logs.files", "must list 1 to %d files", CFG_MAX_LOG_FILES);
        return;
    }
    if (!(l->files = calloc(n, sizeof *l->files))) {
        c->nomem = true;
        return;
    }
    size_t i = 0;
    for (const cJSON *it = f->child; it; it = it->next, i++) {
        path_index(p, sizeof p, "logs.files", i);
        if (!cJSON_IsObject(it)) {
            cfg_err(c, p, "expected an object {path, format}, got %s", json_type_name(it));
            continue;
        }
        check_keys(c, it, p, fkeys, NULL);
        int fmtx = 0;
        get_enum(c, it, "format", p, formats, &fmtx);
        if (!get_string(c, it, "path", p, &s)) continue;
        if (!s) {
            char pp[CFG_PATH_MAX];
            path_key(pp, sizeof pp, p, "path");
            cfg_err(c, pp, "is required (a file path or a glob such as \"/var/log/kafka/*.log\")");
            continue;
        }
        bs_log_file_config *lf = &l->files[l->n_files];
        lf->path = resolve_path(c, s);
        lf->format = (bs_log_format)fmtx;
        if (lf->path) l->n_files++;
    }
}

/* Per-type batch limits: {max_events, max_bytes} hard maxima of the API
 * and the defaults (the maxima, except for files). */
typedef struct sink_type_info {
    const char *name;
    bool aws;
    uint32_t max_events;
    uint64_t max_bytes;
    uint32_t def_events;
    uint64_t def_bytes;
} sink_type_info;

static const sink_type_info sink_types[] = {
    [BS_SINK_FILE] = {"file", false, 100000, 64 * CFG_MIB, 1000, CFG_MIB},
    [BS_SINK_CLOUDWATCH_LOGS] = {"cloudwatch_logs", true, 10000, 1048576, 10000, 1048576},
    [BS_SINK_CLOUDWATCH_METRICS] = {"cloudwatch_metrics", true, 1000, 4 * CFG_MIB, 1000,
                                    4 * CFG_MIB},
    [BS_SINK_S3] = {"s3", true, 0, 0, 0, 0}, /* batches are objects: object_max_* */
    [BS_SINK_FIREHOSE] = {"firehose", true, 500, 4 * CFG_MIB, 500, 4 * CFG_MIB},
};

/* Check a {hostname}/{broker_id}/{stream} name template; `strftime_ok`
 * also allows '%' fields (S3 keys). */
static void check_name_template(cfg_ctx *c, const char *p, const char *t, bool strftime_ok)
{
    static const char *const names[] = {"{hostname}", "{broker_id}", "{stream}", NULL};
    char q[300];
    for (const char *s = t; *s; s++) {
        if (*s == '{') {
            bool known = false;
            for (size_t i = 0; names[i] && !known; i++)
                if (strncmp(s, names[i], strlen(names[i])) == 0) {
                    known = true;
                    s += strlen(names[i]) - 1;
                }
            if (!known) {
                cfg_err(c, p, "%s: unknown placeholder (use {hostname}, {broker_id}, {stream})",
                        quote(q, sizeof q, t));
                return;
            }
        } else if (*s == '}') {
            cfg_err(c, p, "%s: '}' without '{'", quote(q, sizeof q, t));
            return;
        } else if (*s == '%') {
            if (!strftime_ok) {
                cfg_err(c, p, "%s: strftime fields are only allowed in S3 prefixes",
                        quote(q, sizeof q, t));
                return;
            }
            if (s[1] == '\0') {
                cfg_err(c, p, "%s ends with a lone '%%'", quote(q, sizeof q, t));
                return;
            }
            s++;
        }
    }
}

/* Free what a sink config owns (not s itself). */
static void sink_free(bs_sink_config *s)
{
    free(s->name);
    free(s->region);
    free(s->endpoint);
    free(s->dir);
    free(s->log_group);
    free(s->log_stream);
    free(s->bucket);
    free(s->prefix);
    free(s->delivery_stream);
}

/* Parse one `sinks.<name>` into *s (zeroed). */
static void parse_sink(cfg_ctx *c, const cJSON *v, const char *path, const bs_aws_config *aws,
                       bs_sink_config *s)
{
    static const char *const common[] = {
        "type",         "max_events",         "max_bytes",      "max_age_ms",
        "max_attempts", "backoff_initial_ms", "backoff_max_ms", NULL};
    static const char *const aws_common[] = {"region", "endpoint", "allow_insecure_endpoint", NULL};
    static const char *const per_type[][8] = {
        [BS_SINK_FILE] = {"dir", "rotate_bytes", "rotate_age_s", "gzip", NULL},
        [BS_SINK_CLOUDWATCH_LOGS] = {"log_group", "log_stream", "auto_create", NULL},
        [BS_SINK_CLOUDWATCH_METRICS] = {"protocol", NULL},
        [BS_SINK_S3] = {"bucket", "prefix", "compression", "object_max_bytes", "object_max_age_s",
                        "multipart_threshold_bytes", NULL},
        [BS_SINK_FIREHOSE] = {"delivery_stream", NULL},
    };
    static const char *const type_names[] = {"file", "cloudwatch_logs", "cloudwatch_metrics",
                                             "s3",   "firehose",        NULL};
    char p[CFG_PATH_MAX];
    const char *allowed[24];
    if (!cJSON_IsObject(v)) {
        cfg_err(c, path, "expected an object with a \"type\", got %s", json_type_name(v));
        return;
    }
    int t = -1;
    if (!member(v, "type")) {
        path_key(p, sizeof p, path, "type");
        cfg_err(c, p,
                "is required: \"file\", \"cloudwatch_logs\", \"cloudwatch_metrics\", \"s3\" or "
                "\"firehose\"");
    }
    get_enum(c, v, "type", path, type_names, &t);
    if (t < 0) return;
    s->kind = (bs_sink_kind)t;
    const sink_type_info *ti = &sink_types[t];
    size_t na = 0;
    for (size_t i = 0; common[i]; i++)
        if (t != BS_SINK_S3 || (strcmp(common[i], "max_bytes") && strcmp(common[i], "max_age_ms") &&
                                strcmp(common[i], "max_events")))
            allowed[na++] = common[i];
    for (size_t i = 0; ti->aws && aws_common[i]; i++)
        allowed[na++] = aws_common[i];
    for (size_t i = 0; per_type[t][i]; i++)
        allowed[na++] = per_type[t][i];
    allowed[na] = NULL;
    check_keys(c, v, path, allowed, NULL);
    /* Batching: the API's limits are hard, larger values would be rejected by
     * the service on every call. */
    long long x = ti->def_events;
    if (ti->max_events) get_int(c, v, "max_events", path, 1, ti->max_events, &x);
    s->max_events = (uint32_t)x;
    x = (long long)ti->def_bytes;
    if (ti->max_bytes) get_int(c, v, "max_bytes", path, 1024, (long long)ti->max_bytes, &x);
    s->max_bytes = (uint64_t)x;
    x = 1000;
    get_int(c, v, "max_age_ms", path, 1, 3600000, &x);
    s->max_age_ms = (uint32_t)x;
    x = 0;
    get_int(c, v, "max_attempts", path, 0, 1000000, &x);
    s->max_attempts = (uint32_t)x;
    x = 200;
    get_int(c, v, "backoff_initial_ms", path, 1, 600000, &x);
    s->backoff_initial_ms = (uint32_t)x;
    x = 30000;
    get_int(c, v, "backoff_max_ms", path, 1, 3600000, &x);
    s->backoff_max_ms = (uint32_t)x;
    if (s->backoff_max_ms < s->backoff_initial_ms) {
        path_key(p, sizeof p, path, "backoff_max_ms");
        cfg_err(c, p, "%" PRIu32 " is below backoff_initial_ms (%" PRIu32 ")", s->backoff_max_ms,
                s->backoff_initial_ms);
    }
    const char *str;
    if (ti->aws) {
        const char *r;
        get_region(c, v, path, &r);
        if (!r && !member(v, "region")) {
            r = aws->region;
            if (!r) {
                path_key(p, sizeof p, path, "region");
                cfg_err(c, p, "no region: set it here, in aws.region or in AWS_REGION");
            }
        }
        s->region = cfg_strdup(c, r);
        s->endpoint = get_url(c, v, path);
    }
    switch (s->kind) {
    case BS_SINK_FILE:
        s->dir = get_dir(c, v, "dir", path);
        if (!member(v, "dir")) {
            path_key(p, sizeof p, path, "dir");
            cfg_err(c, p, "is required: the directory the NDJSON files are written to");
        }
        x = 100 * (long long)CFG_MIB;
        get_int(c, v, "rotate_bytes", path, (long long)CFG_MIB, 1LL << 40, &x);
        s->rotate_bytes = (uint64_t)x;
        x = 3600;
        get_int(c, v, "rotate_age_s", path, 1, 31 * 86400, &x);
        s->rotate_age_s = (uint32_t)x;
        get_bool(c, v, "gzip", path, &s->gzip);
        break;
    case BS_SINK_CLOUDWATCH_LOGS:
        if (get_string(c, v, "log_group", path, &str)) {
            path_key(p, sizeof p, path, "log_group");
            if (!str)
                cfg_err(c, p, "is required, e.g. \"/kafka/brokerside\"");
            else
                check_name_template(c, p, str, false);
            s->log_group = cfg_strdup(c, str);
        }
        if (get_string(c, v, "log_stream", path, &str)) {
            path_key(p, sizeof p, path, "log_stream");
            if (str) check_name_template(c, p, str, false);
            s->log_stream = cfg_strdup(c, str ? str : "{hostname}-{stream}");
        }
        get_bool(c, v, "auto_create", path, &s->auto_create);
        break;
    case BS_SINK_CLOUDWATCH_METRICS: {
        static const char *const protos[] = {"json", "query", NULL};
        int pr = 0;
        get_enum(c, v, "protocol", path, protos, &pr);
        s->query_protocol = pr == 1;
        break;
    }
    case BS_SINK_S3: {
        static const char *const comps[] = {"gzip", "none", NULL};
        if (get_string(c, v, "bucket", path, &str)) {
            path_key(p, sizeof p, path, "bucket");
            /* S3 bucket naming: 3..63 of a-z 0-9 . -, starting and ending alphanumeric. */
            size_t bl = str ? strlen(str) : 0;
            bool bad = str && (bl < 3 || bl > 63 || !isalnum((unsigned char)str[0]) ||
                               !isalnum((unsigned char)str[bl - 1]));
            for (size_t i = 0; str && i < bl && !bad; i++)
                bad = !islower((unsigned char)str[i]) && !isdigit((unsigned char)str[i]) &&
                      str[i] != '.' && str[i] != '-';
            char q[160];
            if (!str)
                cfg_err(c, p, "is required");
            else if (bad)
                cfg_err(c, p, "%s is not a valid S3 bucket name (3 to 63 of a-z 0-9 . -)",
                        quote(q, sizeof q, str));
            else
                s->bucket = cfg_strdup(c, str);
        }
        if (get_string(c, v, "prefix", path, &str) && str) {
            path_key(p, sizeof p, path, "prefix");
            check_name_template(c, p, str, true);
            s->prefix = cfg_strdup(c, str);
        }
        int comp = 0;
        get_enum(c, v, "compression", path, comps, &comp);
        s->gzip = comp == 0;
        x = 64 * (long long)CFG_MIB;
        get_int(c, v, "object_max_bytes", path, (long long)CFG_MIB, 5LL * 1024 * 1024 * 1024, &x);
        s->object_max_bytes = (uint64_t)x;
        x = 60;
        get_int(c, v, "object_max_age_s", path, 1, 86400, &x);
        s->object_max_age_s = (uint32_t)x;
        x = 8 * (long long)CFG_MIB;
        get_int(c, v, "multipart_threshold_bytes", path, 5 * (long long)CFG_MIB,
                5LL * 1024 * 1024 * 1024, &x);
        s->multipart_threshold_bytes = (uint64_t)x;
        break;
    }
    case BS_SINK_FIREHOSE:
        if (get_string(c, v, "delivery_stream", path, &str)) {
            path_key(p, sizeof p, path, "delivery_stream");
            if (!str)
                cfg_err(c, p, "is required");
            else
                check_name_template(c, p, str, false);
            s->delivery_stream = cfg_strdup(c, str);
        }
        break;
    }
}

/* Parse `sinks` (optional object of named sinks). */
static void parse_sinks(cfg_ctx *c, const cJSON *root, bs_config *cfg)
{
    char p[CFG_PATH_MAX], q[160];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "sinks");
    if (!v || cJSON_IsNull(v)) return;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, "sinks", "expected an object of named sinks, got %s", json_type_name(v));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n > CFG_MAX_SINKS) {
        cfg_err(c, "sinks", "defines %zu sinks: at most %d are supported", n, CFG_MAX_SINKS);
        return;
    }
    /* One spare slot for the implicit default file sink. */
    if (!(cfg->sinks = calloc(n + 1, sizeof *cfg->sinks))) {
        c->nomem = true;
        return;
    }
    for (const cJSON *it = v->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        snprintf(p, sizeof p, "sinks.%s", name);
        bool dup = false;
        for (const cJSON *prev = v->child; prev != it; prev = prev->next)
            dup = dup || (prev->string && strcmp(prev->string, name) == 0);
        if (dup) {
            cfg_err(c, p, "duplicate sink name %s", quote(q, sizeof q, name));
            continue;
        }
        if (!name_ok(name)) {
            cfg_err(c, p,
                    "%s is not a valid sink name: use 1 to %d characters from A-Z a-z 0-9 _ . -",
                    quote(q, sizeof q, name), CFG_NAME_MAX);
            continue;
        }
        bs_sink_config *s = &cfg->sinks[cfg->n_sinks];
        s->name = cfg_strdup(c, name);
        if (!s->name) continue;
        cfg->n_sinks++;
        parse_sink(c, it, p, &cfg->aws, s);
    }
}

/* Parse `spool` (optional object; dir required later if events are on). */
static void parse_spool(cfg_ctx *c, const cJSON *root, bs_spool_config *sp)
{
    static const char *const keys[] = {"dir",           "max_bytes",       "segment_bytes",
                                       "fsync_interval_ms", "audit_sync_ms", NULL};
    sp->max_bytes = 1024 * CFG_MIB;
    sp->segment_bytes = 64 * CFG_MIB;
    sp->fsync_interval_ms = 100;
    sp->audit_sync_ms = 100;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "spool");
    if (!v || cJSON_IsNull(v)) return;
    if (!cJSON_IsObject(v)) {
        cfg_err(c, "spool", "expected an object, got %s", json_type_name(v));
        return;
    }
    check_keys(c, v, "spool", keys, NULL);
    sp->dir = get_dir(c, v, "dir", "spool");
    long long x = (long long)sp->max_bytes;
    get_int(c, v, "max_bytes", "spool", 16 * (long long)CFG_MIB, 1LL << 50, &x);
    sp->max_bytes = (uint64_t)x;
    x = (long long)sp->segment_bytes;
    get_int(c, v, "segment_bytes", "spool", (long long)CFG_MIB, 1LL << 40, &x);
    sp->segment_bytes = (uint64_t)x;
    /* A few segments must fit under the limit, or the oldest could never be
     * released while the newest fills. */
    if (sp->segment_bytes > sp->max_bytes / 4)
        cfg_err(c, "spool.segment_bytes",
                "%" PRIu64 " is more than a quarter of max_bytes (%" PRIu64 ")", sp->segment_bytes,
                sp->max_bytes);
    x = sp->fsync_interval_ms;
    get_int(c, v, "fsync_interval_ms", "spool", 1, 60000, &x);
    sp->fsync_interval_ms = (uint32_t)x;
    x = sp->audit_sync_ms;
    get_int(c, v, "audit_sync_ms", "spool", 0, 1000, &x);
    sp->audit_sync_ms = (uint32_t)x;
}

/* Index of the sink `name` in cfg, or -1. */
static long sink_index(const bs_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (cfg->sinks[i].name && strcmp(cfg->sinks[i].name, name) == 0) return (long)i;
    return -1;
}

/*
 * Cross-section rules once everything is read: the implicit "default" file
 * sink, every reference resolved (and routed), the stream/sink type fit, a
 * spool dir when events are on, the logtail state file default, and
 * warnings for sinks nobody uses.
 */
static void link_events(cfg_ctx *c, const cJSON *root, bs_config *cfg)
{
    struct {
        const char *section;
        bool enabled;
        bs_sink_refs *refs;
        unsigned stream;
    } secs[] = {
        {"audit", cfg->audit.enabled, &cfg->audit.sinks, 0 /* BS_STREAM_AUDIT */},
        {"metrics", cfg->metrics.enabled, &cfg->metrics.sinks, 1 /* BS_STREAM_METRICS */},
        {"logs", cfg->logs.enabled, &cfg->logs.sinks, 2 /* BS_STREAM_LOGS */},
    };
    char p[CFG_PATH_MAX], q[160];
    bool any = false, wants_default = false;
    for (size_t i = 0; i < BS_ARRAY_LEN(secs); i++) {
        any = any || secs[i].enabled;
        for (size_t j = 0; secs[i].enabled && j < secs[i].refs->n; j++)
            wants_default = wants_default || strcmp(secs[i].refs->names[j], "default") == 0;
    }
    if (!any) return;
    if (!cfg->spool.dir) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(root, "spool");
        bool given = sp && cJSON_IsObject(sp) && member(sp, "dir");
        if (!given)
            cfg_err(c, "spool.dir",
                    "is required when audit, metrics or logs are on: every event is spooled to "
                    "disk before a sink takes it");
    }
    if (wants_default && sink_index(cfg, "default") < 0 && cfg->spool.dir) {
        if (!cfg->sinks && !(cfg->sinks = calloc(1, sizeof *cfg->sinks))) {
            c->nomem = true;
            return;
        }
        /* Beside the spool: its parent is known to be writable. */
        bs_sink_config *s = &cfg->sinks[cfg->n_sinks++];
        char *parent = cfg_strdup(c, cfg->spool.dir);
        char *slash = parent ? strrchr(parent, '/') : NULL;
        if (slash && slash != parent)
            *slash = '\0';
        else if (slash)
            slash[1] = '\0';
        s->name = cfg_strdup(c, "default");
        s->kind = BS_SINK_FILE;
        s->implicit = true;
        if (parent &&
            asprintf(&s->dir, "%s%sevents", parent, strcmp(parent, "/") == 0 ? "" : "/") < 0) {
            s->dir = NULL;
            c->nomem = true;
        }
        free(parent);
        s->max_events = sink_types[BS_SINK_FILE].def_events;
        s->max_bytes = sink_types[BS_SINK_FILE].def_bytes;
        s->max_age_ms = 1000;
        s->backoff_initial_ms = 200;
        s->backoff_max_ms = 30000;
        s->rotate_bytes = 100 * CFG_MIB;
        s->rotate_age_s = 3600;
    }
    for (size_t i = 0; i < BS_ARRAY_LEN(secs); i++) {
        if (!secs[i].enabled) continue;
        for (size_t j = 0; j < secs[i].refs->n; j++) {
            const char *name = secs[i].refs->names[j];
            snprintf(p, sizeof p, "%s.sinks[%zu]", secs[i].section, j);
            if (!member(cJSON_GetObjectItemCaseSensitive(root, secs[i].section), "sinks"))
                snprintf(p, sizeof p, "%s.sinks", secs[i].section);
            long k = sink_index(cfg, name);
            if (k < 0) {
                /* The default cannot be made without a spool dir: already reported. */
                if (strcmp(name, "default") != 0 || cfg->spool.dir)
                    cfg_err(c, p, "sink %s is not defined in sinks", quote(q, sizeof q, name));
                continue;
            }
            bs_sink_config *s = &cfg->sinks[k];
            /* PutMetricData takes metric data points, which only metric events carry. */
            if (s->kind == BS_SINK_CLOUDWATCH_METRICS && secs[i].stream != 1) {
                cfg_err(c, p,
                        "sink %s is a cloudwatch_metrics sink: it can only carry metrics (use "
                        "cloudwatch_logs, s3, firehose or file for %s)",
                        quote(q, sizeof q, name), secs[i].section);
                continue;
            }
            s->streams |= 1u << secs[i].stream;
        }
    }
    /* Two writers in one directory would interleave or rotate each other's files. */
    for (size_t k = 0; k < cfg->n_sinks; k++) {
        const bs_sink_config *s = &cfg->sinks[k];
        if (s->kind != BS_SINK_FILE || !s->dir) continue;
        snprintf(p, sizeof p, s->implicit ? "sinks" : "sinks.%s.dir", s->name);
        if (cfg->spool.dir && strcmp(s->dir, cfg->spool.dir) == 0)
            cfg_err(c, p, "%s%s is the spool directory: give the sink its own directory",
                    s->implicit ? "the default sink's dir " : "", quote(q, sizeof q, s->dir));
        for (size_t j = 0; j < k; j++)
            if (cfg->sinks[j].kind == BS_SINK_FILE && cfg->sinks[j].dir &&
                strcmp(cfg->sinks[j].dir, s->dir) == 0)
                cfg_err(c, p,
                        "%s%s is also the dir of sinks.%s: each file sink needs its own "
                        "directory",
                        s->implicit ? "the default sink's dir " : "", quote(q, sizeof q, s->dir),
                        cfg->sinks[j].name);
    }
    if (cfg->logs.enabled && !cfg->logs.state_file && cfg->spool.dir &&
        asprintf(&cfg->logs.state_file, "%s/logtail.state", cfg->spool.dir) < 0) {
        cfg->logs.state_file = NULL;
        c->nomem = true;
    }
}

/* Free the strings of refs. */
static void refs_free(bs_sink_refs *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
}

/* Free what the sections of issues 4-6 own; secrets are wiped. */
static void events_free(bs_config *cfg)
{
    bs_aws_config *a = &cfg->aws;
    free(a->region);
    free(a->profile);
    free(a->access_key_id);
    secret_free(a->secret_access_key);
    secret_free(a->session_token);
    free(a->ca_file);
    bs_encryption_config *e = &cfg->encryption;
    free(e->key_file);
    free(e->kms_region);
    free(e->kms_endpoint);
    for (size_t i = 0; i < e->n_topics; i++) {
        free(e->topics[i].match);
        free(e->topics[i].key);
    }
    free(e->topics);
    free(cfg->audit.signing_key_file);
    refs_free(&cfg->audit.sinks);
    free(cfg->metrics.ns);
    refs_free(&cfg->metrics.sinks);
    for (size_t i = 0; i < cfg->logs.n_files; i++)
        free(cfg->logs.files[i].path);
    free(cfg->logs.files);
    free(cfg->logs.state_file);
    refs_free(&cfg->logs.sinks);
    for (size_t i = 0; i < cfg->n_sinks; i++)
        sink_free(&cfg->sinks[i]);
    free(cfg->sinks);
    free(cfg->spool.dir);
}

/* Parse every section of issues 4-6, in dependency order. */
static void walk_events(cfg_ctx *c, const cJSON *root, bs_config *cfg)
{
    parse_aws(c, root, &cfg->aws);
    parse_encryption(c, root, &cfg->aws, &cfg->encryption);
    parse_spool(c, root, &cfg->spool);
    parse_sinks(c, root, cfg);
    parse_audit(c, root, &cfg->audit);
    parse_metrics(c, root, &cfg->metrics);
    parse_logs(c, root, &cfg->logs);
    link_events(c, root, cfg);
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
    free(cfg->kafka.routes);
    endpoint_free(&cfg->admin.bind);
    events_free(cfg);
    bs_config_errors_free(cfg->warnings);
    free(cfg->warnings);
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
    static const char *const keys[] = {"workers",    "log_level", "log_format", "listeners",
                                       "limits",     "kafka",     "admin",      "encryption",
                                       "aws",        "audit",     "metrics",    "logs",
                                       "sinks",      "spool",     NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    static const char *const styles[] = {"text", "json", NULL}; /* bs_log_style order */
    check_keys(c, root, "", keys, NULL);
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
    int style = BS_LOG_STYLE_TEXT;
    get_enum(c, root, "log_format", "", styles, &style);
    cfg->log_style = (bs_log_style)style;
    parse_listeners(c, root, cfg);
    parse_limits(c, root, &cfg->limits);
    parse_kafka(c, root, &cfg->kafka);
    derive_kafka_routes(c, cfg);
    parse_admin(c, root, &cfg->admin);
    if (cfg->admin.enabled && cfg->admin.bind.text) {
        for (size_t i = 0; i < cfg->n_listeners; i++) {
            if (cfg->listeners[i].bind.text &&
                binds_overlap(&cfg->admin.bind, &cfg->listeners[i].bind))
                cfg_err(c, "admin.bind", "%s overlaps listeners[%zu].bind (%s)",
                        cfg->admin.bind.text, i, cfg->listeners[i].bind.text);
        }
    }
    walk_events(c, root, cfg);
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
    cfg->warnings = calloc(1, sizeof *cfg->warnings);
    if (!cfg->warnings) {
        st = BS_E_NOMEM;
        goto out;
    }
    c.warns = cfg->warnings;
    walk_root(&c, root, cfg);
    if (c.nomem)
        st = BS_E_NOMEM;
    else if (c.n_problems)
        st = BS_E_CONFIG;
    /* Warnings only for a file that loads: a broken one is not also noisy. */
    if (st == BS_OK && bs_config_warnings(cfg, cfg->warnings) != BS_OK) st = BS_E_NOMEM;
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

/* Does the advertised host[hostlen]:port name endpoint `up`? As text
 * (case-insensitive), or as an IP literal equal to its resolved address. */
static bool advertised_is(const bs_endpoint *up, const char *host, size_t hostlen, int32_t port)
{
    if (!up->host || port != up->port || hostlen == 0 || hostlen > 64 * 4) return false;
    if (strlen(up->host) == hostlen && strncasecmp(up->host, host, hostlen) == 0) return true;
    char lit[INET6_ADDRSTRLEN + 1];
    if (hostlen >= sizeof lit) return false;
    memcpy(lit, host, hostlen);
    lit[hostlen] = '\0';
    if (up->addr.ss_family == AF_INET) {
        struct in_addr a;
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&up->addr;
        return inet_pton(AF_INET, lit, &a) == 1 && a.s_addr == sin->sin_addr.s_addr;
    }
    if (up->addr.ss_family == AF_INET6) {
        struct in6_addr a;
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&up->addr;
        return inet_pton(AF_INET6, lit, &a) == 1 && memcmp(&a, &sin6->sin6_addr, sizeof a) == 0;
    }
    return false;
}

/* See config.h. */
const bs_kafka_route *bs_config_route_for(const bs_kafka_config *k, int32_t node_id,
                                          const char *host, size_t hostlen, int32_t port,
                                          bool shared, const char *via)
{
    const bs_kafka_route *first = NULL;
    if (node_id < 0) return NULL;
    for (size_t i = 0; i < k->n_routes; i++) {
        const bs_kafka_route *r = &k->routes[i];
        if (!r->host || !advertised_is(r->upstream, host, hostlen, port)) continue;
        if (r->node_id >= 0 ? r->node_id != node_id : shared) continue;
        if (via && r->listener && strcmp(via, r->listener) == 0) return r;
        if (!first) first = r;
    }
    return first;
}

/* See config.h: first match wins. */
const bs_topic_rule *bs_config_topic_rule(const bs_encryption_config *enc, const char *topic,
                                          size_t len)
{
    char name[256];
    /* Kafka topic names are at most 249 bytes; longer cannot match a valid rule. */
    if (len >= sizeof name || memchr(topic, '\0', len)) return NULL;
    memcpy(name, topic, len);
    name[len] = '\0';
    for (size_t i = 0; i < enc->n_topics; i++)
        if (fnmatch(enc->topics[i].match, name, 0) == 0) return &enc->topics[i];
    return NULL;
}

/* See config.h. */
const bs_sink_config *bs_config_sink(const bs_config *cfg, const char *name)
{
    long i = sink_index(cfg, name);
    return i < 0 ? NULL : &cfg->sinks[i];
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

/* NULL-safe string equality. */
static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Same sink names in the same order. */
static bool refs_eq(const bs_sink_refs *a, const bs_sink_refs *b)
{
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++)
        if (!str_eq(a->names[i], b->names[i])) return false;
    return true;
}

/* Every field of two sinks (they own delivery state: a change means a new
 * sink, which only start-up wires). */
static bool sink_eq(const bs_sink_config *a, const bs_sink_config *b)
{
    return str_eq(a->name, b->name) && a->kind == b->kind && a->streams == b->streams &&
           a->max_events == b->max_events && a->max_bytes == b->max_bytes &&
           a->max_age_ms == b->max_age_ms && a->max_attempts == b->max_attempts &&
           a->backoff_initial_ms == b->backoff_initial_ms &&
           a->backoff_max_ms == b->backoff_max_ms && str_eq(a->region, b->region) &&
           str_eq(a->endpoint, b->endpoint) && str_eq(a->dir, b->dir) &&
           a->rotate_bytes == b->rotate_bytes && a->rotate_age_s == b->rotate_age_s &&
           a->gzip == b->gzip && str_eq(a->log_group, b->log_group) &&
           str_eq(a->log_stream, b->log_stream) && a->auto_create == b->auto_create &&
           a->query_protocol == b->query_protocol && str_eq(a->bucket, b->bucket) &&
           str_eq(a->prefix, b->prefix) && a->object_max_bytes == b->object_max_bytes &&
           a->object_max_age_s == b->object_max_age_s &&
           a->multipart_threshold_bytes == b->multipart_threshold_bytes &&
           str_eq(a->delivery_stream, b->delivery_stream);
}

/* The restart part of the SIGHUP rule for aws, encryption, events, sinks
 * and spool (see config.h); appends offending keys to what. */
static bool events_need_restart(const bs_config *o, const bs_config *n, char *what, size_t whatlen)
{
    const bs_aws_config *a = &o->aws, *b = &n->aws;
    const bs_encryption_config *ea = &o->encryption, *eb = &n->encryption;
    bool sinks_same = o->n_sinks == n->n_sinks;
    for (size_t i = 0; sinks_same && i < o->n_sinks; i++)
        sinks_same = sink_eq(&o->sinks[i], &n->sinks[i]);
    const bs_logs_config *la = &o->logs, *lb = &n->logs;
    bool files_same = la->n_files == lb->n_files;
    for (size_t i = 0; files_same && i < la->n_files; i++)
        files_same = str_eq(la->files[i].path, lb->files[i].path) &&
                     la->files[i].format == lb->files[i].format;
    static const char *const names[] = {"aws",
                                        "encryption (on/off)",
                                        "encryption.kms",
                                        "encryption.decrypt_cache",
                                        "audit (on/off)",
                                        "audit.sinks",
                                        "audit (signing key, aggregate_max_keys)",
                                        "metrics (on/off)",
                                        "metrics.sinks",
                                        "logs (on/off)",
                                        "logs.sinks",
                                        "logs.files",
                                        "logs (tz_offset_min, start_at_end, state_file)",
                                        "sinks",
                                        "spool"};
    bool diff[] = {
        !str_eq(a->region, b->region) || !str_eq(a->profile, b->profile) ||
            !str_eq(a->access_key_id, b->access_key_id) ||
            !str_eq(a->secret_access_key, b->secret_access_key) ||
            !str_eq(a->session_token, b->session_token) || a->max_attempts != b->max_attempts ||
            a->connect_timeout_s != b->connect_timeout_s ||
            a->request_timeout_s != b->request_timeout_s || !str_eq(a->ca_file, b->ca_file),
        ea->enabled != eb->enabled,
        ea->enabled && eb->enabled &&
            (ea->kms_type != eb->kms_type || !str_eq(ea->key_file, eb->key_file) ||
             !str_eq(ea->kms_region, eb->kms_region) ||
             !str_eq(ea->kms_endpoint, eb->kms_endpoint)),
        ea->decrypt_cache_max_entries != eb->decrypt_cache_max_entries ||
            ea->decrypt_cache_ttl_s != eb->decrypt_cache_ttl_s,
        o->audit.enabled != n->audit.enabled,
        o->audit.enabled && n->audit.enabled && !refs_eq(&o->audit.sinks, &n->audit.sinks),
        !str_eq(o->audit.signing_key_file, n->audit.signing_key_file) ||
            o->audit.signing_algorithm != n->audit.signing_algorithm ||
            o->audit.aggregate_max_keys != n->audit.aggregate_max_keys,
        o->metrics.enabled != n->metrics.enabled,
        o->metrics.enabled && n->metrics.enabled && !refs_eq(&o->metrics.sinks, &n->metrics.sinks),
        la->enabled != lb->enabled,
        la->enabled && lb->enabled && !refs_eq(&la->sinks, &lb->sinks),
        !files_same,
        la->tz_offset_min != lb->tz_offset_min || la->start_at_end != lb->start_at_end ||
            !str_eq(la->state_file, lb->state_file),
        !sinks_same,
        !str_eq(o->spool.dir, n->spool.dir) || o->spool.max_bytes != n->spool.max_bytes ||
            o->spool.segment_bytes != n->spool.segment_bytes ||
            o->spool.fsync_interval_ms != n->spool.fsync_interval_ms ||
            o->spool.audit_sync_ms != n->spool.audit_sync_ms,
    };
    bool changed = false;
    for (size_t f = 0; f < BS_ARRAY_LEN(names); f++) {
        if (!diff[f]) continue;
        changed = true;
        list_add(what, whatlen, names[f]);
    }
    return changed;
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
    if (events_need_restart(old_cfg, new_cfg, what, whatlen)) changed = true;
    return changed;
}
