/*
 * confmap.c - the generic walker of declarative option tables (confmap.h)
 * and the typed readers that modules' callbacks share.
 *
 * Every message has the form "FILE: JSON.PATH: problem"; user text is quoted
 * and escaped so one problem is one line. The walker never stops at the
 * first problem.
 */
#include "brokerside/confmap.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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

#include "brokerside/log.h"

/* ------------------------------------------------------------------------ */
/* Errors, paths, typed readers                                              */
/* ------------------------------------------------------------------------ */

/* Record "FILE: PATH: message". An empty path means the document itself.
 * bs_config_errors_addf replaces control characters (keys in paths come
 * from the file verbatim: one problem must stay one line). On allocation
 * failure only the nomem flag is raised (the load then fails with
 * BS_E_NOMEM). */
__attribute__((format(printf, 3, 4))) void bs_conf_err(bs_conf *c, const char *path,
                                                          const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->n_problems++;
    if (c->report || !c->errs) { /* no errs: the caller only counts problems */
        if (c->report) c->report(c->report_ctx, path[0] ? path : "(top level)", msg);
        return;
    }
    if (bs_config_errors_addf(c->errs, "%s: %s: %s", c->file, path[0] ? path : "(top level)",
                              msg) != BS_OK)
        c->nomem = true;
}

/* Record a problem located by byte offset in the original text:
 * "FILE:LINE:COL: message". Used for syntax errors, which have no JSON path. */
void bs_conf_err_at(bs_conf *c, const char *text, size_t len, size_t off, const char *msg)
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
    c->n_problems++;
    if (bs_config_errors_addf(c->errs, "%s:%zu:%zu: %s", c->file, line, col, msg) != BS_OK)
        c->nomem = true;
}

/* Render `s` as a double-quoted, escaped string of bounded length into dst so
 * user text can never break a message line. Always NUL-terminates. */
const char *bs_conf_quote(char *dst, size_t n, const char *s)
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
void bs_conf_path_key(char *dst, size_t n, const char *base, const char *key)
{
    /* Truncating a long path only shortens a message; the check keeps
     * -Wformat-truncation quiet. */
    int r = base[0] ? snprintf(dst, n, "%s.%s", base, key) : snprintf(dst, n, "%s", key);
    if (r < 0 && n) dst[0] = '\0';
}

/* Build "base[i]" into dst. */
void bs_conf_path_index(char *dst, size_t n, const char *base, size_t i)
{
    int r = snprintf(dst, n, "%s[%zu]", base, i);
    if (r < 0 && n) dst[0] = '\0';
}

/* A short article + type name for messages ("a string", "an array"...). */
const char *bs_conf_type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

/* See confmap.h. */
void bs_conf_publish(bs_conf *c, const char *name, const char *value)
{
    for (size_t i = 0; i < c->n_published; i++) {
        if (strcmp(c->published[i].name, name) == 0) {
            c->published[i].value = value;
            return;
        }
    }
    if (c->n_published == BS_CONF_PUBLISHED_MAX) {
        c->nomem = true;
        return;
    }
    c->published[c->n_published].name = name;
    c->published[c->n_published].value = value;
    c->n_published++;
}

/* See confmap.h. */
const char *bs_conf_published(const bs_conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_published; i++)
        if (strcmp(c->published[i].name, name) == 0) return c->published[i].value;
    return NULL;
}

/* strdup that records allocation failure in the context; NULL in -> NULL out. */
char *bs_conf_strdup(bs_conf *c, const char *s)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) c->nomem = true;
    return d;
}


/* Edit distance capped at small values: enough to suggest a misspelt key. */
size_t bs_conf_edit_distance(const char *a, const char *b)
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



/* The member `key` of `obj`, or NULL when absent or JSON null (null means
 * "use the default" everywhere except where a section documents otherwise). */
const cJSON *bs_conf_member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

/* Read an optional string member into *out (borrowed from the JSON tree;
 * NULL when absent). Wrong type or an empty string is an error; returns
 * false on error. */
bool bs_conf_get_string(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                       const char **out)
{
    char p[BS_CONF_PATH_MAX];
    *out = NULL;
    const cJSON *v = bs_conf_member(obj, key);
    if (!v) return true;
    bs_conf_path_key(p, sizeof p, path, key);
    if (!cJSON_IsString(v)) {
        bs_conf_err(c, p, "expected a string, got %s", bs_conf_type_name(v));
        return false;
    }
    if (v->valuestring[0] == '\0') {
        bs_conf_err(c, p, "must not be empty");
        return false;
    }
    *out = v->valuestring;
    return true;
}

/* Read an optional integer member in [min, max] into *out (unchanged when
 * absent, so callers preset the default). */
void bs_conf_get_int(bs_conf *c, const cJSON *obj, const char *key, const char *path, long long min,
                    long long max, long long *out)
{
    char p[BS_CONF_PATH_MAX];
    const cJSON *v = bs_conf_member(obj, key);
    if (!v) return;
    bs_conf_path_key(p, sizeof p, path, key);
    if (!cJSON_IsNumber(v)) {
        bs_conf_err(c, p, "expected an integer, got %s", bs_conf_type_name(v));
        return;
    }
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) {
        bs_conf_err(c, p, "expected an integer, got %g", d);
        return;
    }
    if (d < (double)min || d > (double)max) {
        bs_conf_err(c, p, "%.0f is out of range: must be between %lld and %lld", d, min, max);
        return;
    }
    *out = (long long)d;
}

/* The smallest duration a `*_s` key accepts. */
#define BS_CONF_MIN_SECONDS 0.001

/* Read an optional number of seconds in [0.001, max] into *out (unchanged when
 * absent). */
void bs_conf_get_seconds(bs_conf *c, const cJSON *obj, const char *key, const char *path, double max,
                        double *out)
{
    char p[BS_CONF_PATH_MAX];
    const cJSON *v = bs_conf_member(obj, key);
    if (!v) return;
    bs_conf_path_key(p, sizeof p, path, key);
    if (!cJSON_IsNumber(v)) {
        bs_conf_err(c, p, "expected a number of seconds, got %s", bs_conf_type_name(v));
        return;
    }
    double d = v->valuedouble;
    /* Below a millisecond no timer can honour it (1e-300 was accepted). */
    if (isfinite(d) && d > 0 && d < BS_CONF_MIN_SECONDS) {
        bs_conf_err(c, p, "%g s is too small: at least %g s (1 ms)", d, BS_CONF_MIN_SECONDS);
        return;
    }
    if (!isfinite(d) || d <= 0 || d > max) {
        bs_conf_err(c, p, "%g is out of range: must be greater than 0 and at most %g", d, max);
        return;
    }
    *out = d;
}

/* Read an optional boolean member into *out (unchanged when absent). */
void bs_conf_get_bool(bs_conf *c, const cJSON *obj, const char *key, const char *path, bool *out)
{
    char p[BS_CONF_PATH_MAX];
    const cJSON *v = bs_conf_member(obj, key);
    if (!v) return;
    bs_conf_path_key(p, sizeof p, path, key);
    if (!cJSON_IsBool(v)) {
        bs_conf_err(c, p, "expected true or false, got %s", bs_conf_type_name(v));
        return;
    }
    *out = cJSON_IsTrue(v);
}

/* True when `s` spells `name` ignoring case and every '_' of `s`. */
static bool nocase_eq(const char *name, const char *s)
{
    for (;; name++, s++) {
        while (*s == '_')
            s++;
        if (tolower((unsigned char)*name) != tolower((unsigned char)*s)) return false;
        if (!*name) return true;
    }
}

/* See confmap.h. */
int bs_conf_choice_index(const char *const *names, const char *s, bool nocase)
{
    for (int i = 0; names[i]; i++)
        if (nocase ? nocase_eq(names[i], s) : strcmp(names[i], s) == 0) return i;
    return -1;
}

/* An enum member (bs_conf_get_enum); `nocase` as bs_conf_choice_index. */
static void get_enum(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                     const char *const *names, bool nocase, int *out)
{
    const char *s;
    if (!bs_conf_get_string(c, obj, key, path, &s) || !s) return;
    int i = bs_conf_choice_index(names, s, nocase);
    if (i >= 0) {
        *out = i;
        return;
    }
    char p[BS_CONF_PATH_MAX], q[160], choices[256] = "";
    size_t used = 0;
    for (int i = 0; names[i] && used < sizeof choices; i++)
        used += (size_t)snprintf(choices + used, sizeof choices - used, "%s\"%s\"",
                                 i ? (names[i + 1] ? ", " : " or ") : "", names[i]);
    bs_conf_path_key(p, sizeof p, path, key);
    bs_conf_err(c, p, "%s is not valid: expected %s", bs_conf_quote(q, sizeof q, s), choices);
}

/* Read an optional string member that must be one of `names` (NULL-terminated);
 * *out receives the index, unchanged when absent. */
void bs_conf_get_enum(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                     const char *const *names, int *out)
{
    get_enum(c, obj, key, path, names, false, out);
}


/*
 * Resolve the file named by string member `key` of `obj` against the config
 * directory and check that it is a readable regular file. Returns a malloc'd
 * absolute path, or NULL when the key is absent (with *ok true) or on error
 * (*ok false, problem recorded). `required` makes absence an error; `secret`
 * (private keys) logs a warning when other users may read the file.
 */
char *bs_conf_get_file(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                      bool required, bool secret, bool *ok)
{
    char p[BS_CONF_PATH_MAX], q[600], qr[600];
    const char *s;
    *ok = true;
    bs_conf_path_key(p, sizeof p, path, key);
    if (!bs_conf_get_string(c, obj, key, path, &s)) {
        *ok = false;
        return NULL;
    }
    if (!s) {
        if (required) {
            bs_conf_err(c, p, "is required");
            *ok = false;
        }
        return NULL;
    }
    char *abs = NULL;
    if (s[0] == '/') {
        abs = bs_conf_strdup(c, s);
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
        snprintf(where, sizeof where, "%s", bs_conf_quote(q, sizeof q, s));
    else
        snprintf(where, sizeof where, "%s (resolved to %s)", bs_conf_quote(q, sizeof q, s),
                 bs_conf_quote(qr, sizeof qr, abs));
    struct stat sb;
    if (stat(abs, &sb) != 0) {
        if (errno == ENOENT)
            bs_conf_err(c, p, "%s does not exist", where);
        else
            bs_conf_err(c, p, "%s cannot be accessed: %s", where, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        bs_conf_err(c, p, "%s is not a regular file", where);
        goto fail;
    }
    /* open(2), not access(2): what matters is whether this process, with its
     * effective ids, can read it now. */
    /* O_NONBLOCK: the file may have been swapped for a FIFO since stat() */
    int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat fsb;
    if (fd < 0) {
        bs_conf_err(c, p, "%s cannot be read: %s", where, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &fsb) != 0 || !S_ISREG(fsb.st_mode)) {
        close(fd);
        bs_conf_err(c, p, "%s is not a regular file", where);
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


/*
 * Split "host:port" or "[v6]:port" into host (brackets stripped) and the port
 * text. Returns NULL on success or a static reason. host/port are written
 * NUL-terminated and must have room for strlen(s)+1 bytes.
 */
const char *bs_conf_split_hostport(const char *s, char *host, char *port, bool *bracketed)
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
bool bs_conf_parse_port(const char *s, long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    *out = strtol(s, NULL, 10);
    return true;
}

/* True if every character could appear in a DNS name or an IP literal. */
bool bs_conf_host_chars_ok(const char *h, bool bracketed)
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
bool bs_conf_get_endpoint(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                         const char *def, long min_port, bool passive, bs_endpoint *ep)
{
    char p[BS_CONF_PATH_MAX], q[160];
    const char *s;
    bs_conf_path_key(p, sizeof p, path, key);
    if (!bs_conf_get_string(c, obj, key, path, &s)) return false;
    if (!s) s = def;
    if (!s) {
        bs_conf_err(c, p, "is required (HOST:PORT)");
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
    const char *why = bs_conf_split_hostport(s, host, port, &bracketed);
    if (why) {
        bs_conf_err(c, p, "%s: %s", bs_conf_quote(q, sizeof q, s), why);
        goto out;
    }
    long portnum;
    if (!bs_conf_parse_port(port, &portnum) || portnum < min_port || portnum > 65535) {
        bs_conf_err(c, p, "%s: port must be a number between %ld and 65535", bs_conf_quote(q, sizeof q, s),
                min_port);
        goto out;
    }
    if (!bs_conf_host_chars_ok(host, bracketed)) {
        bs_conf_err(c, p, "%s: the host contains characters that are not valid in a host name",
                bs_conf_quote(q, sizeof q, s));
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
        bs_conf_err(c, p, "%s: cannot resolve %s: %s", bs_conf_quote(q, sizeof q, s),
                bracketed ? "the IPv6 address" : "the host",
                rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        goto out;
    }
    memset(ep, 0, sizeof *ep);
    memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
    ep->addrlen = res->ai_addrlen;
    ep->port = (uint16_t)portnum;
    ep->text = bs_conf_strdup(c, s);
    ep->host = bs_conf_strdup(c, host);
    ok = ep->text && ep->host;
out:
    if (res) freeaddrinfo(res);
    free(host);
    free(port);
    return ok;
}

/* Free the strings of *ep (not ep itself); safe on a zeroed endpoint. */
void bs_conf_endpoint_free(bs_endpoint *ep)
{
    free(ep->text);
    free(ep->host);
    ep->text = ep->host = NULL;
}


/* Resolve `s` against the config directory. Returns a malloc'd absolute
 * path, or NULL with c->nomem raised. */
char *bs_conf_resolve_path(bs_conf *c, const char *s)
{
    char *abs = NULL;
    if (s[0] == '/') return bs_conf_strdup(c, s);
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
char *bs_conf_get_secret_file(bs_conf *c, const cJSON *obj, const char *key, const char *path,
                             bool required, bool *ok)
{
    char p[BS_CONF_PATH_MAX], q[600];
    char *abs = bs_conf_get_file(c, obj, key, path, required, false, ok);
    if (!abs) return NULL;
    struct stat sb;
    if (stat(abs, &sb) == 0 && (sb.st_mode & 077)) {
        bs_conf_path_key(p, sizeof p, path, key);
        bs_conf_err(c, p, "%s is accessible by group or others (mode %04o): chmod 600 it",
                bs_conf_quote(q, sizeof q, abs), (unsigned)(sb.st_mode & 07777));
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
char *bs_conf_get_dir(bs_conf *c, const cJSON *obj, const char *key, const char *path)
{
    char p[BS_CONF_PATH_MAX], q[600];
    const char *s;
    if (!bs_conf_get_string(c, obj, key, path, &s) || !s) return NULL;
    bs_conf_path_key(p, sizeof p, path, key);
    char *abs = bs_conf_resolve_path(c, s);
    if (!abs) return NULL;
    /* "dir/" and "dir" are one directory: compare (and store) them alike. */
    for (size_t n = strlen(abs); n > 1 && abs[n - 1] == '/'; n--)
        abs[n - 1] = '\0';
    struct stat sb;
    if (stat(abs, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            bs_conf_err(c, p, "%s exists and is not a directory", bs_conf_quote(q, sizeof q, abs));
            goto fail;
        }
        if (access(abs, W_OK | X_OK) != 0) {
            bs_conf_err(c, p, "%s is not writable: %s", bs_conf_quote(q, sizeof q, abs), strerror(errno));
            goto fail;
        }
        return abs;
    }
    if (errno != ENOENT) {
        bs_conf_err(c, p, "%s cannot be accessed: %s", bs_conf_quote(q, sizeof q, abs), strerror(errno));
        goto fail;
    }
    /* Missing: created at start, so its parent must be a writable directory. */
    char *parent = bs_conf_strdup(c, abs);
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
        bs_conf_err(c, p, "%s does not exist and neither does its parent directory %s",
                bs_conf_quote(q, sizeof q, abs), parent);
    else if (access(parent, W_OK | X_OK) != 0)
        bs_conf_err(c, p, "%s does not exist and cannot be created: %s is not writable",
                bs_conf_quote(q, sizeof q, abs), parent);
    bool ok = parent_ok && access(parent, W_OK | X_OK) == 0;
    free(parent);
    if (ok) return abs;
fail:
    free(abs);
    return NULL;
}


/* True for "localhost", 127.0.0.0/8 and ::1 written literally. */
bool bs_conf_host_is_loopback(const char *h)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(h, "localhost") == 0) return true;
    if (inet_pton(AF_INET, h, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, h, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}


/* A listener name: 1..64 characters from [A-Za-z0-9_.-] (it becomes a log
 * tag and a metric label value). */
bool bs_conf_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BS_CONF_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i])) return false;
    return true;
}


/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

/* True when some row of `secs` is named `k`. */
static bool known_key(const bs_conf_section *const *secs, size_t n, const char *k)
{
    for (size_t s = 0; s < n; s++)
        for (size_t i = 0; i < secs[s]->n_opts; i++)
            if (strcmp(secs[s]->opts[i].name, k) == 0) return true;
    return false;
}

/* See confmap.h: duplicates first per key, then unknown keys with the
 * closest row name (edit distance below 3, first in table order on a tie). */
/* A key of an object and its position, for the duplicate check. */
typedef struct key_pos {
    const char *k;
    size_t i;
} key_pos;

/* qsort order: by key, then by position (so the first occurrence comes first). */
static int key_pos_cmp(const void *a, const void *b)
{
    const key_pos *x = a, *y = b;
    int r = strcmp(x->k, y->k);
    return r ? r : (x->i > y->i) - (x->i < y->i);
}

/* Mark in dup[i] every member of `obj` (n of them) whose key appeared
 * earlier: the keys are sorted once (O(n log n)); a config with 60,000 keys
 * in one object used to take seconds with the pairwise check. False when out
 * of memory. */
static bool mark_duplicates(const cJSON *obj, size_t n, bool *dup)
{
    key_pos *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return false;
    size_t i = 0;
    for (const cJSON *it = obj->child; it; it = it->next, i++)
        v[i] = (key_pos){it->string ? it->string : "", i};
    qsort(v, n, sizeof *v, key_pos_cmp);
    for (i = 1; i < n; i++)
        if (strcmp(v[i - 1].k, v[i].k) == 0) dup[v[i].i] = true;
    free(v);
    return true;
}

void bs_conf_check_keys(bs_conf *c, const cJSON *obj, const char *path,
                        const bs_conf_section *const *secs, size_t n)
{
    char p[BS_CONF_PATH_MAX], q[160];
    size_t nk = 0, idx = 0;
    for (const cJSON *it = obj->child; it; it = it->next)
        nk++;
    bool *dups = calloc(nk ? nk : 1, sizeof *dups);
    if (!dups || !mark_duplicates(obj, nk, dups)) {
        free(dups);
        c->nomem = true;
        return;
    }
    for (const cJSON *it = obj->child; it; it = it->next, idx++) {
        const char *k = it->string ? it->string : "";
        bs_conf_path_key(p, sizeof p, path, k);
        bool dup = dups[idx];
        if (dup) {
            bs_conf_err(c, p, "duplicate key %s: each key may appear once per object",
                        bs_conf_quote(q, sizeof q, k));
            continue;
        }
        if (known_key(secs, n, k)) continue;
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t s = 0; s < n; s++) {
            for (size_t i = 0; i < secs[s]->n_opts; i++) {
                size_t d = bs_conf_edit_distance(k, secs[s]->opts[i].name);
                if (d < best_d) {
                    best_d = d;
                    best = secs[s]->opts[i].name;
                }
            }
        }
        if (best)
            bs_conf_err(c, p, "unknown key %s (did you mean \"%s\"?)",
                        bs_conf_quote(q, sizeof q, k), best);
        else
            bs_conf_err(c, p, "unknown key %s", bs_conf_quote(q, sizeof q, k));
    }
    free(dups);
}

/* ------------------------------------------------------------------------ */
/* The walker                                                                */
/* ------------------------------------------------------------------------ */

/* Store x in an integer field of `size` bytes (signed or not: the bit
 * pattern of an in-range value is the same). */
static void store_int(void *field, size_t size, long long x)
{
    switch (size) {
    case 1: *(uint8_t *)field = (uint8_t)x; break;
    case 2: *(uint16_t *)field = (uint16_t)x; break;
    case 4: *(uint32_t *)field = (uint32_t)x; break;
    default: *(uint64_t *)field = (uint64_t)x; break;
    }
}

/* Read an integer field of `size` bytes; `is_signed` sign-extends. */
static long long load_int(const void *field, size_t size, bool is_signed)
{
    switch (size) {
    case 1: return is_signed ? (long long)*(const int8_t *)field : (long long)*(const uint8_t *)field;
    case 2: return is_signed ? (long long)*(const int16_t *)field : (long long)*(const uint16_t *)field;
    case 4: return is_signed ? (long long)*(const int32_t *)field : (long long)*(const uint32_t *)field;
    default: return (long long)*(const uint64_t *)field;
    }
}

/* Index of `name` in a NULL-terminated list, or 0 (tables are checked by
 * test_config_tables: every default names a choice). */
static int choice_index(const char *const *choices, const char *name)
{
    for (int i = 0; name && choices[i]; i++)
        if (strcmp(choices[i], name) == 0) return i;
    return 0;
}

/* Read one row of a section from obj (NULL: defaults only) into base. */
static void read_row(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                     void *base)
{
    char p[BS_CONF_PATH_MAX];
    void *field = (char *)base + o->offset;
    const cJSON *v = obj ? bs_conf_member(obj, o->name) : NULL;
    bool required_absent = obj && (o->flags & BS_CONF_REQUIRED) && !v;
    bs_conf_path_key(p, sizeof p, path, o->name);
    switch (o->type) {
    case BS_CONF_BOOL: {
        bool b = o->def && strcmp(o->def, "true") == 0;
        if (obj) bs_conf_get_bool(c, obj, o->name, path, &b);
        *(bool *)field = b;
        break;
    }
    case BS_CONF_INT: {
        long long x = o->def ? strtoll(o->def, NULL, 10) : 0;
        if (obj) bs_conf_get_int(c, obj, o->name, path, o->min, o->max, &x);
        store_int(field, o->size, x);
        break;
    }
    case BS_CONF_SECONDS: {
        double d = o->def ? strtod(o->def, NULL) : 0;
        if (obj) bs_conf_get_seconds(c, obj, o->name, path, (double)o->max, &d);
        *(double *)field = d;
        break;
    }
    case BS_CONF_STRING: {
        const char *s = NULL;
        if (obj && !bs_conf_get_string(c, obj, o->name, path, &s)) break;
        if (required_absent) {
            bs_conf_err(c, p, "%s", o->required ? o->required : "is required");
            break;
        }
        const char *why = s && o->check_str ? o->check_str(s) : NULL;
        if (why) {
            char q[300];
            bs_conf_err(c, p, "%s%s", bs_conf_quote(q, sizeof q, s), why);
            s = NULL;
        }
        *(char **)field = bs_conf_strdup(c, s ? s : o->def);
        break;
    }
    case BS_CONF_ENUM: {
        int idx = choice_index(o->choices, o->def);
        if (required_absent) bs_conf_err(c, p, "%s", o->required ? o->required : "is required");
        if (obj) get_enum(c, obj, o->name, path, o->choices, (o->flags & BS_CONF_NOCASE) != 0, &idx);
        int val = o->values ? o->values[idx] : idx;
        if (o->size == 1)
            *(bool *)field = val != 0;
        else
            *(int *)field = val;
        break;
    }
    case BS_CONF_FILE:
    case BS_CONF_SECRET_FILE: {
        bool ok = true;
        bool req = (o->flags & BS_CONF_REQUIRED) != 0;
        char *abs = NULL;
        if (o->type == BS_CONF_FILE)
            abs = obj ? bs_conf_get_file(c, obj, o->name, path, req, (o->flags & BS_CONF_SECRET),
                                         &ok)
                      : NULL;
        else
            abs = obj ? bs_conf_get_secret_file(c, obj, o->name, path, req, &ok) : NULL;
        *(char **)field = abs;
        break;
    }
    case BS_CONF_DIR:
        *(char **)field = obj ? bs_conf_get_dir(c, obj, o->name, path) : NULL;
        if (required_absent) bs_conf_err(c, p, "%s", o->required ? o->required : "is required");
        break;
    case BS_CONF_PATH: {
        const char *s = NULL;
        if (obj && bs_conf_get_string(c, obj, o->name, path, &s) && s)
            *(char **)field = bs_conf_resolve_path(c, s);
        if (required_absent) bs_conf_err(c, p, "%s", o->required ? o->required : "is required");
        break;
    }
    case BS_CONF_ENDPOINT: {
        static const cJSON empty = {0};
        (void)bs_conf_get_endpoint(c, obj ? obj : &empty, o->name, path, o->def, (long)o->min,
                                   (o->flags & BS_CONF_PASSIVE) != 0, (bs_endpoint *)field);
        break;
    }
    case BS_CONF_OBJECT:
        if (v && !cJSON_IsObject(v)) {
            bs_conf_err(c, p, "expected %s got %s", o->expect ? o->expect : "an object,",
                        bs_conf_type_name(v));
            v = NULL;
        }
        bs_conf_walk1(c, v, p, o->sub, field);
        break;
    case BS_CONF_CUSTOM:
        if (o->parse) o->parse(c, o, obj, path, base);
        break;
    }
}

/* See confmap.h. */
void bs_conf_walk(bs_conf *c, const cJSON *obj, const char *path,
                  const bs_conf_section *const *secs, size_t n, void *base)
{
    if (obj) bs_conf_check_keys(c, obj, path, secs, n);
    for (size_t s = 0; s < n; s++)
        for (size_t i = 0; i < secs[s]->n_opts; i++)
            read_row(c, &secs[s]->opts[i], obj, path, base);
    for (size_t s = 0; s < n; s++)
        if (secs[s]->check) secs[s]->check(c, obj, path, base);
}

/* See confmap.h. */
void bs_conf_walk1(bs_conf *c, const cJSON *obj, const char *path, const bs_conf_section *sec,
                   void *base)
{
    bs_conf_walk(c, obj, path, &sec, 1, base);
}

/* See confmap.h. */
void bs_conf_free_section(const bs_conf_section *sec, void *base)
{
    for (size_t i = 0; i < sec->n_opts; i++) {
        const bs_conf_opt *o = &sec->opts[i];
        void *field = (char *)base + o->offset;
        switch (o->type) {
        case BS_CONF_STRING:
        case BS_CONF_FILE:
        case BS_CONF_SECRET_FILE:
        case BS_CONF_DIR:
        case BS_CONF_PATH: {
            char **s = field;
            if (*s && (o->flags & BS_CONF_SECRET) && o->type == BS_CONF_STRING)
                OPENSSL_cleanse(*s, strlen(*s));
            free(*s);
            *s = NULL;
            break;
        }
        case BS_CONF_ENDPOINT:
            bs_conf_endpoint_free(field);
            break;
        case BS_CONF_OBJECT:
            bs_conf_free_section(o->sub, field);
            break;
        case BS_CONF_CUSTOM:
            if (o->free) o->free(o, base);
            break;
        default:
            break;
        }
    }
}

/* NULL-safe string equality. */
static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* True when row `o` holds the same value in a and b. */
static bool row_equal(const bs_conf_opt *o, const void *a, const void *b)
{
    const void *fa = (const char *)a + o->offset, *fb = (const char *)b + o->offset;
    switch (o->type) {
    case BS_CONF_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    case BS_CONF_INT:
        return load_int(fa, o->size, o->min < 0) == load_int(fb, o->size, o->min < 0);
    case BS_CONF_SECONDS:
        return *(const double *)fa == *(const double *)fb;
    case BS_CONF_ENUM:
        return o->size == 1 ? *(const bool *)fa == *(const bool *)fb
                            : *(const int *)fa == *(const int *)fb;
    case BS_CONF_STRING:
    case BS_CONF_FILE:
    case BS_CONF_SECRET_FILE:
    case BS_CONF_DIR:
    case BS_CONF_PATH:
        return str_eq(*(char *const *)fa, *(char *const *)fb);
    case BS_CONF_ENDPOINT: {
        const bs_endpoint *ea = fa, *eb = fb;
        return ea->addrlen == eb->addrlen && memcmp(&ea->addr, &eb->addr, ea->addrlen) == 0;
    }
    case BS_CONF_OBJECT:
        return !bs_conf_restart_diff(o->sub, fa, fb, NULL, NULL, 0);
    case BS_CONF_CUSTOM:
        /* A custom row's diff appends nothing when what is NULL. */
        return !o->diff || !o->diff(o, a, b, "", NULL, 0);
    }
    return true;
}

/* True when the comma-separated list in buf already holds `item`. */
static bool list_has(const char *buf, const char *item)
{
    size_t n = strlen(item);
    for (const char *s = buf; (s = strstr(s, item)) != NULL; s += n)
        if ((s == buf || (s >= buf + 2 && s[-2] == ',' && s[-1] == ' ')) &&
            (s[n] == '\0' || s[n] == ','))
            return true;
    return false;
}

/* See confmap.h. */
void bs_conf_list_add(char *buf, size_t len, const char *item)
{
    if (!buf || len == 0) return;
    size_t used = strlen(buf);
    if (used + 1 >= len || list_has(buf, item)) return;
    snprintf(buf + used, len - used, "%s%s", used ? ", " : "", item);
}

/* See confmap.h. With prefix NULL every row counts (the whole section is
 * compared, nothing appended): that is how a BS_CONF_RESTART object row
 * compares its members. */
bool bs_conf_restart_diff(const bs_conf_section *sec, const void *a, const void *b,
                          const char *prefix, char *what, size_t whatlen)
{
    bool changed = false;
    for (size_t i = 0; i < sec->n_opts; i++) {
        const bs_conf_opt *o = &sec->opts[i];
        if (!prefix) {
            if (!row_equal(o, a, b)) return true;
            continue;
        }
        char label[BS_CONF_PATH_MAX];
        if (o->restart_label && o->restart_label[0] == '.')
            snprintf(label, sizeof label, "%s%s", prefix, o->restart_label);
        else if (o->restart_label)
            snprintf(label, sizeof label, "%s", o->restart_label);
        else
            bs_conf_path_key(label, sizeof label, prefix, o->name);
        if (o->type == BS_CONF_CUSTOM && o->diff && (o->flags & BS_CONF_RESTART)) {
            /* Custom rows name what changed themselves (e.g. per element). */
            if (o->diff(o, a, b, label, what, whatlen)) changed = true;
            continue;
        }
        if (o->type == BS_CONF_OBJECT && !(o->flags & BS_CONF_RESTART)) {
            if (bs_conf_restart_diff(o->sub, (const char *)a + o->offset,
                                     (const char *)b + o->offset, label, what, whatlen))
                changed = true;
            continue;
        }
        if (!(o->flags & BS_CONF_RESTART) || row_equal(o, a, b)) continue;
        changed = true;
        bs_conf_list_add(what, whatlen, label);
    }
    return changed;
}

/* ------------------------------------------------------------------------ */
/* Shared CUSTOM rows                                                        */
/* ------------------------------------------------------------------------ */

/* See confmap.h. */
void bs_conf_parse_switch(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                          void *base)
{
    char p[BS_CONF_PATH_MAX];
    void *field = (char *)base + o->offset;
    const cJSON *v = obj ? bs_conf_member(obj, o->name) : NULL;
    bs_conf_path_key(p, sizeof p, path, o->name);
    if (v && !cJSON_IsObject(v)) {
        bs_conf_err(c, p, "expected %s got %s", o->expect ? o->expect : "an object,",
                    bs_conf_type_name(v));
        v = NULL;
    }
    *(bool *)field = v != NULL;
    bs_conf_walk1(c, v, p, o->sub, field);
}

/* See confmap.h. */
void bs_conf_free_switch(const bs_conf_opt *o, void *base)
{
    bs_conf_free_section(o->sub, (char *)base + o->offset);
}

/* See confmap.h. */
bool bs_conf_diff_switch(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                         char *what, size_t whatlen)
{
    const char *fa = (const char *)a + o->offset, *fb = (const char *)b + o->offset;
    bool ea = *(const bool *)fa, eb = *(const bool *)fb;
    if (ea != eb) {
        char l[BS_CONF_PATH_MAX];
        snprintf(l, sizeof l, "%s (on/off)", label);
        bs_conf_list_add(what, whatlen, l);
        return true;
    }
    return ea && bs_conf_restart_diff(o->sub, fa, fb, label, what, whatlen);
}

#define CONF_MAX_SINK_REFS 64

/* See confmap.h. */
void bs_conf_parse_sink_refs(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                             const char *path, void *base)
{
    char p[BS_CONF_PATH_MAX], pi[BS_CONF_PATH_MAX], q[160];
    bs_sink_refs *refs = (bs_sink_refs *)((char *)base + o->offset);
    if (!obj) return; /* the section is off: no stream, no route */
    bs_conf_path_key(p, sizeof p, path, o->name);
    const cJSON *v = bs_conf_member(obj, o->name);
    if (!v) {
        refs->names = calloc(1, sizeof *refs->names);
        if (!refs->names || !(refs->names[0] = bs_conf_strdup(c, "default"))) {
            c->nomem = true;
            return;
        }
        refs->n = 1;
        return;
    }
    if (!cJSON_IsArray(v)) {
        bs_conf_err(c, p, "expected an array of sink names, got %s", bs_conf_type_name(v));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0) {
        bs_conf_err(c, p,
                    "is empty: events would pile up in the spool; name a sink, omit the key for "
                    "the default file sink, or set the section to null");
        return;
    }
    if (n > CONF_MAX_SINK_REFS || !(refs->names = calloc(n, sizeof *refs->names))) {
        if (n > CONF_MAX_SINK_REFS)
            bs_conf_err(c, p, "names %zu sinks: at most %d are supported", n, CONF_MAX_SINK_REFS);
        else
            c->nomem = true;
        return;
    }
    size_t i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        bs_conf_path_index(pi, sizeof pi, p, i);
        if (!cJSON_IsString(it)) {
            bs_conf_err(c, pi, "expected a sink name, got %s", bs_conf_type_name(it));
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < refs->n; j++)
            dup = dup || strcmp(refs->names[j], it->valuestring) == 0;
        if (dup) {
            bs_conf_err(c, pi, "%s is listed twice", bs_conf_quote(q, sizeof q, it->valuestring));
            continue;
        }
        refs->names[refs->n] = bs_conf_strdup(c, it->valuestring);
        if (refs->names[refs->n]) refs->n++;
    }
}

/* See confmap.h. */
void bs_conf_free_sink_refs(const bs_conf_opt *o, void *base)
{
    bs_sink_refs *r = (bs_sink_refs *)((char *)base + o->offset);
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    r->names = NULL;
    r->n = 0;
}

/* See confmap.h. */
bool bs_conf_diff_sink_refs(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                            char *what, size_t whatlen)
{
    const bs_sink_refs *ra = (const bs_sink_refs *)((const char *)a + o->offset);
    const bs_sink_refs *rb = (const bs_sink_refs *)((const char *)b + o->offset);
    bool same = ra->n == rb->n;
    for (size_t i = 0; same && i < ra->n; i++)
        same = str_eq(ra->names[i], rb->names[i]);
    if (!same) bs_conf_list_add(what, whatlen, label);
    return !same;
}

/* See confmap.h. */
void bs_conf_free_string(const bs_conf_opt *o, void *base)
{
    char **s = (char **)((char *)base + o->offset);
    free(*s);
    *s = NULL;
}

/* See confmap.h. */
bool bs_conf_diff_string(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                         char *what, size_t whatlen)
{
    const char *x = *(char *const *)((const char *)a + o->offset);
    const char *y = *(char *const *)((const char *)b + o->offset);
    if (str_eq(x, y)) return false;
    bs_conf_list_add(what, whatlen, label);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Addresses, warnings                                                       */
/* ------------------------------------------------------------------------ */

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

/* See confmap.h. */
bool bs_endpoint_is_loopback(const bs_endpoint *e)
{
    return addr_is_loopback(&e->addr);
}

/* See confmap.h. */
bool bs_endpoint_is_wildcard(const bs_endpoint *e)
{
    return addr_is_any(&e->addr);
}

/*
 * See confmap.h. Check an advertised "host:port" (not resolved: it is what
 * clients are told). Returns NULL if fine, else a static reason; on success host (room
 * for strlen(s)+1) and *port are filled.
 */
const char *bs_conf_check_hostport(const char *s, char *host, uint16_t *port)
{
    size_t n = strlen(s);
    char *portbuf = malloc(n + 1);
    if (!portbuf) return "out of memory";
    bool bracketed;
    const char *why = bs_conf_split_hostport(s, host, portbuf, &bracketed);
    long pn = 0;
    if (!why && (!bs_conf_parse_port(portbuf, &pn) || pn < 1 || pn > 65535))
        why = "port must be a number between 1 and 65535";
    if (!why && !bs_conf_host_chars_ok(host, bracketed))
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

/* See confmap.h. */
void bs_config_errors_free(bs_config_errors *errs)
{
    if (!errs) return;
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}

/* See confmap.h. */
bs_status bs_config_errors_addf(bs_config_errors *list, const char *fmt, ...)
{
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0) return BS_E_NOMEM;
    for (char *q = line; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    char **grown = realloc(list->msgs, (list->n + 1) * sizeof *grown);
    if (!grown) {
        free(line);
        return BS_E_NOMEM;
    }
    list->msgs = grown;
    list->msgs[list->n++] = line;
    return BS_OK;
}

