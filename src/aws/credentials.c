/* credentials.c - the AWS credential provider chain (see aws_credentials.h). */
#include "brokerside/aws_credentials.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "brokerside/buf.h"
#include "brokerside/cursor.h"
#include "brokerside/log.h"

#define MOD "aws-creds"
#define MAX_FILE_BYTES (1024 * 1024)   /* credentials/config files */
#define MAX_METADATA_BYTES (64 * 1024) /* IMDS / ECS responses */
#define FAILED_REFRESH_PAUSE_S 10      /* while cached creds are valid */
#define REFRESHER_MARGIN_S 60          /* background refresh this long before get() would */
#define DEFAULT_IMDS_ENDPOINT "http://169.254.169.254"
#define DEFAULT_ECS_HOST "http://169.254.170.2"

struct bs_aws_credentials_provider {
    pthread_mutex_t mu;
    char *explicit_akid, *explicit_secret, *explicit_token; /* secrets wiped on free */
    char *profile;
    bool disable_imds;
    long connect_timeout_ms, timeout_ms, refresh_ahead_s;
    bs_aws_credentials cached;
    bool have, stale;
    time_t last_failed_attempt;
    unsigned long resolutions;
    /* Background refresher (optional): signalled when the cache changes or on stop. */
    pthread_cond_t cond;
    pthread_t thread;
    bool refresher_running, stop;
};

/* Wipe a NUL-terminated secret and free it. */
static void wipe_free(char *s)
{
    if (!s) return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* strdup that treats NULL as NULL; sets *failed on allocation failure. */
static char *dup_opt(const char *s, bool *failed)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *failed = true;
    return d;
}

/* Wipe the secrets, free all strings, zero `c` (see aws_credentials.h). */
void bs_aws_credentials_clear(bs_aws_credentials *c)
{
    free(c->access_key_id);
    wipe_free(c->secret_access_key);
    wipe_free(c->session_token);
    memset(c, 0, sizeof *c);
}

/* Deep copy; on failure `dst` is left cleared (see aws_credentials.h). */
bs_status bs_aws_credentials_copy(bs_aws_credentials *dst, const bs_aws_credentials *src)
{
    bool failed = false;
    memset(dst, 0, sizeof *dst);
    dst->access_key_id = dup_opt(src->access_key_id, &failed);
    dst->secret_access_key = dup_opt(src->secret_access_key, &failed);
    dst->session_token = dup_opt(src->session_token, &failed);
    dst->expiration = src->expiration;
    dst->source = src->source;
    if (failed) {
        bs_aws_credentials_clear(dst);
        return BS_E_NOMEM;
    }
    return BS_OK;
}

/* Fill `out` from three borrowed strings; the token may be NULL or empty. */
static bs_status creds_set(bs_aws_credentials *out, const char *akid, const char *secret,
                           const char *token, time_t exp, const char *source)
{
    bs_aws_credentials tmp = {(char *)akid, (char *)secret,
                              (char *)(token && *token ? token : NULL), exp, source};
    return bs_aws_credentials_copy(out, &tmp);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
/* libcurl's global set-up, once, before any metadata fetch (it is refcounted,
 * so the HTTP client doing the same is harmless). */
static void curl_global_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Validate the explicit key pair and copy the config (see aws_credentials.h). */
bs_status bs_aws_credentials_provider_new(const bs_aws_credentials_config *cfg,
                                          bs_aws_credentials_provider **out)
{
    pthread_once(&curl_once, curl_global_once);
    static const bs_aws_credentials_config defaults = {0};
    if (!cfg) cfg = &defaults;
    bool has_akid = cfg->access_key_id && *cfg->access_key_id;
    bool has_secret = cfg->secret_access_key && *cfg->secret_access_key;
    if (has_akid != has_secret) return BS_E_CONFIG;
    if (!has_akid && cfg->session_token && *cfg->session_token) return BS_E_CONFIG;
    bs_aws_credentials_provider *p = calloc(1, sizeof *p);
    if (!p) return BS_E_NOMEM;
    bool failed = false;
    if (has_akid) {
        p->explicit_akid = dup_opt(cfg->access_key_id, &failed);
        p->explicit_secret = dup_opt(cfg->secret_access_key, &failed);
        p->explicit_token =
            cfg->session_token && *cfg->session_token ? dup_opt(cfg->session_token, &failed) : NULL;
    }
    p->profile = dup_opt(cfg->profile && *cfg->profile ? cfg->profile : NULL, &failed);
    p->disable_imds = cfg->disable_imds;
    p->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 1000;
    p->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 3000;
    p->refresh_ahead_s = cfg->refresh_ahead_s > 0 ? cfg->refresh_ahead_s : 300;
    bool mu_ok = !failed && pthread_mutex_init(&p->mu, NULL) == 0;
    bool cond_ok = mu_ok && pthread_cond_init(&p->cond, NULL) == 0;
    if (mu_ok && !cond_ok) pthread_mutex_destroy(&p->mu);
    if (!cond_ok) {
        free(p->explicit_akid);
        wipe_free(p->explicit_secret);
        wipe_free(p->explicit_token);
        free(p->profile);
        free(p);
        return BS_E_NOMEM;
    }
    *out = p;
    return BS_OK;
}

/* Wipe explicit and cached secrets, then free (see aws_credentials.h). */
void bs_aws_credentials_provider_free(bs_aws_credentials_provider *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    bool running = p->refresher_running;
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    if (running) pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cond);
    free(p->explicit_akid);
    wipe_free(p->explicit_secret);
    wipe_free(p->explicit_token);
    free(p->profile);
    bs_aws_credentials_clear(&p->cached);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- shared credentials / config files ---------------------------------- */

/* Read a whole (small) file into a malloc'd NUL-terminated buffer.
 * BS_E_NOT_FOUND if absent; the caller wipes and frees it (it holds secrets). */
static bs_status read_small_file(const char *path, char **out, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return BS_E_NOT_FOUND;
    bs_status st = BS_OK;
    char *buf = malloc(MAX_FILE_BYTES + 1);
    size_t n = 0;
    if (!buf) {
        st = BS_E_NOMEM;
        goto out;
    }
    n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        st = BS_E_IO;
    } else if (n > MAX_FILE_BYTES) {
        st = BS_E_TOO_LARGE;
    }
    if (st != BS_OK) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len_out = n;
out:
    fclose(f);
    return st;
}

/* Trim ASCII whitespace at both ends of [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

/* A cursor over [p, p+n) with ASCII whitespace trimmed at both ends. */
static void trimmed(const uint8_t *p, size_t n, bs_cursor *out)
{
    bs_cursor c;
    bs_cursor_init(&c, p, n);
    const uint8_t *lead;
    (void)bs_cursor_take_while(&c, bs_byte_is_space, &lead);
    size_t rem = bs_cursor_remaining(&c);
    const uint8_t *s = bs_cursor_ptr(&c);
    while (rem && bs_byte_is_space(s[rem - 1]))
        rem--;
    bs_cursor_init(out, s, rem);
}

/* True if the whole cursor is exactly the string `lit`. */
static bool span_eq(const bs_cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    return bs_cursor_remaining(c) == n && memcmp(bs_cursor_ptr(c), lit, n) == 0;
}

/* The section name of a `[...]` line (`line` trimmed, starting with '['),
 * or false when the line opens no section this file style knows. */
static bool section_name(const bs_cursor *line, bool config_style, bs_cursor *name)
{
    size_t n = bs_cursor_remaining(line);
    const uint8_t *p = bs_cursor_ptr(line);
    if (n < 2 || p[n - 1] != ']') return false;
    trimmed(p + 1, n - 2, name);
    if (!config_style) return true;
    /* the config file: `[profile NAME]`, and `[default]` as is */
    bs_cursor probe = *name;
    const uint8_t *sp;
    if (bs_cursor_accept(&probe, "profile", 7) &&
        bs_cursor_take_while(&probe, bs_byte_is_space, &sp) > 0) {
        trimmed(bs_cursor_ptr(&probe), bs_cursor_remaining(&probe), name);
        return true;
    }
    return span_eq(name, "default");
}

/* A NUL-terminated copy of the value (wiped and freed by the caller); NULL
 * when out of memory. */
static char *value_dup(const bs_cursor *v)
{
    size_t n = bs_cursor_remaining(v);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, bs_cursor_ptr(v), n);
    s[n] = '\0';
    return s;
}

/* See aws_credentials.h. */
bs_status bs_aws_credentials_parse_profile(const void *text, size_t len, const char *profile,
                                           bool config_style, bs_aws_credentials *out)
{
    static const char *const keys[] = {"aws_access_key_id", "aws_secret_access_key",
                                       "aws_session_token"};
    bs_cursor vals[3];
    bool have[3] = {false, false, false};
    bool in_section = false;
    bs_cursor c;
    bs_cursor_init(&c, text, len);
    while (bs_cursor_remaining(&c)) {
        const uint8_t *raw;
        size_t n;
        if (bs_cursor_take_until(&c, '\n', &raw, &n) != BS_OK) {
            n = bs_cursor_remaining(&c); /* the last line without its newline */
            BS_GUARD(bs_read_bytes(&c, n, &raw));
        }
        bs_cursor line;
        trimmed(raw, n, &line);
        if (!bs_cursor_remaining(&line) || bs_cursor_at(&line, '#') || bs_cursor_at(&line, ';'))
            continue;
        if (bs_cursor_at(&line, '[')) {
            bs_cursor name;
            in_section = section_name(&line, config_style, &name) && span_eq(&name, profile);
            continue;
        }
        if (!in_section) continue;
        const uint8_t *key_raw;
        size_t key_len;
        if (bs_cursor_take_until(&line, '=', &key_raw, &key_len) != BS_OK) continue;
        bs_cursor key, val;
        trimmed(key_raw, key_len, &key);
        trimmed(bs_cursor_ptr(&line), bs_cursor_remaining(&line), &val);
        for (size_t k = 0; k < BS_ARRAY_LEN(keys); k++)
            if (span_eq(&key, keys[k])) {
                vals[k] = val;
                have[k] = true;
            }
    }
    if (!have[0] || !have[1] || !bs_cursor_remaining(&vals[0]) || !bs_cursor_remaining(&vals[1]))
        return BS_E_NOT_FOUND;
    /* A NUL would cut the key short where it is used as a C string: a file
     * that holds one is damaged, not a shorter key. */
    for (size_t k = 0; k < BS_ARRAY_LEN(keys); k++)
        if (have[k] && memchr(bs_cursor_ptr(&vals[k]), '\0', bs_cursor_remaining(&vals[k])))
            return BS_E_MALFORMED;
    char *akid = value_dup(&vals[0]);
    char *secret = value_dup(&vals[1]);
    char *token = have[2] ? value_dup(&vals[2]) : NULL;
    bs_status st = BS_E_NOMEM;
    if (akid && secret && (token || !have[2]))
        st = creds_set(out, akid, secret, token, 0, "shared-file");
    free(akid);
    wipe_free(secret);
    wipe_free(token);
    return st;
}

/* Look for `profile` in the INI file at `path` (see
 * bs_aws_credentials_parse_profile). BS_E_NOT_FOUND if the file is absent. */
static bs_status profile_from_file(const char *path, const char *profile, bool config_style,
                                   bs_aws_credentials *out)
{
    char *text = NULL;
    size_t len = 0;
    BS_GUARD(read_small_file(path, &text, &len));
    bs_status st = bs_aws_credentials_parse_profile(text, len, profile, config_style, out);
    if (st == BS_E_MALFORMED)
        BS_LOG_WARNF(MOD, "%s: profile %s: a key holds a NUL byte (damaged file?)", path,
                     profile);
    OPENSSL_cleanse(text, len);
    free(text);
    return st;
}

/* The path of a shared file: $env_var (a leading "~/" means $HOME, as in the
 * SDKs), else ~/.aws/<name>. False if it cannot be formed (no HOME). */
static bool file_path(const char *env_var, const char *name, char *out, size_t cap)
{
    const char *v = getenv(env_var);
    const char *home = getenv("HOME");
    size_t n;
    if (v && *v) {
        if (v[0] == '~' && v[1] == '/') {
            if (!home) return false;
            n = (size_t)snprintf(out, cap, "%s%s", home, v + 1);
        } else {
            n = (size_t)snprintf(out, cap, "%s", v);
        }
    } else {
        if (!home) return false;
        n = (size_t)snprintf(out, cap, "%s/.aws/%s", home, name);
    }
    return n < cap;
}

/* The profile from the credentials file, else from the config file.
 * BS_E_NOT_FOUND when neither has a complete key pair for it. */
static bs_status from_shared_files(const bs_aws_credentials_provider *p, bs_aws_credentials *out)
{
    const char *profile = p->profile ? p->profile : getenv("AWS_PROFILE");
    if (!profile || !*profile) profile = "default";
    char path[4096];
    if (!file_path("AWS_SHARED_CREDENTIALS_FILE", "credentials", path, sizeof path))
        return BS_E_NOT_FOUND;
    bs_status st = profile_from_file(path, profile, false, out);
    if (st != BS_E_NOT_FOUND) return st;
    if (!file_path("AWS_CONFIG_FILE", "config", path, sizeof path)) return BS_E_NOT_FOUND;
    return profile_from_file(path, profile, true, out);
}

/* ---- metadata endpoints (ECS, IMDS) ------------------------------------- */

typedef struct fetch_body {
    bs_wbuf buf;
} fetch_body;

/* libcurl write callback of metadata_fetch: append, bounded by the wbuf limit. */
static size_t fetch_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    fetch_body *b = ud;
    size_t n = size * nmemb;
    bs_wbuf_put(&b->buf, ptr, n);
    return b->buf.failed ? 0 : n; /* 0 aborts the transfer: response too large */
}

/* One blocking HTTP exchange with a metadata endpoint. On BS_OK *status is
 * the HTTP status and `body` holds the response (caller wipes and frees). */
static bs_status metadata_fetch(const bs_aws_credentials_provider *p, const char *method,
                                const char *url, const char *header1, const char *header2,
                                long *status, bs_wbuf *body)
{
    bs_status st = BS_OK;
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL, *tmp;
    fetch_body fb;
    bs_wbuf_init(&fb.buf, MAX_METADATA_BYTES);
    if (!h) {
        st = BS_E_NOMEM;
        goto out;
    }
    if (header1) {
        if (!(tmp = curl_slist_append(hl, header1))) {
            st = BS_E_NOMEM;
            goto out;
        }
        hl = tmp;
    }
    if (header2) {
        if (!(tmp = curl_slist_append(hl, header2))) {
            st = BS_E_NOMEM;
            goto out;
        }
        hl = tmp;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* Metadata endpoints are link-local or loopback: a proxy must never see the token. */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, p->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, p->timeout_ms);
    /* A metadata endpoint never redirects; following one could leak the token. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &fb);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        BS_LOG_DEBUGF(MOD, "%s %s: %s", method, url, curl_easy_strerror(rc));
        st = rc == CURLE_WRITE_ERROR ? BS_E_TOO_LARGE : BS_E_IO;
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    *body = fb.buf;
    fb.buf.data = NULL;
out:
    if (fb.buf.data) {
        OPENSSL_cleanse(fb.buf.data, fb.buf.cap);
        bs_wbuf_free(&fb.buf);
    }
    curl_slist_free_all(hl);
    if (h) curl_easy_cleanup(h);
    return st;
}

/* Wipe a buffer that may hold secrets, then free it. */
static void wbuf_wipe_free(bs_wbuf *w)
{
    if (w->data) OPENSSL_cleanse(w->data, w->cap);
    bs_wbuf_free(w);
}

/* Parse "2026-11-24T22:00:00Z" (fractional seconds and numeric offsets tolerated). */
static bool parse_expiration(const char *s, time_t *out)
{
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) return false;
    if (*rest == '.')
        for (rest++; isdigit((unsigned char)*rest); rest++) {
        }
    long off = 0;
    if (*rest == '+' || *rest == '-') {
        int hh = 0, mm = 0;
        if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2) return false;
        off = (hh * 3600L + mm * 60L) * (*rest == '+' ? 1 : -1);
    } else if (*rest != 'Z' && *rest != '\0') {
        return false;
    }
    *out = timegm(&tm) - off;
    return true;
}

/* The JSON document both ECS and IMDS return. */
static bs_status parse_credentials_json(const bs_wbuf *body, const char *source,
                                        bs_aws_credentials *out)
{
    cJSON *j = cJSON_ParseWithLength((const char *)body->data, body->len);
    bs_status st = BS_E_MALFORMED;
    if (!j) goto out;
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(j, "Code"));
    const char *akid = cJSON_GetStringValue(cJSON_GetObjectItem(j, "AccessKeyId"));
    const char *secret = cJSON_GetStringValue(cJSON_GetObjectItem(j, "SecretAccessKey"));
    const char *token = cJSON_GetStringValue(cJSON_GetObjectItem(j, "Token"));
    const char *exp = cJSON_GetStringValue(cJSON_GetObjectItem(j, "Expiration"));
    time_t expiration = 0;
    if (code && strcmp(code, "Success") != 0) {
        BS_LOG_WARNF(MOD, "%s: credentials document has Code %.64s", source, code);
        goto out;
    }
    if (!akid || !*akid || !secret || !*secret) {
        BS_LOG_WARNF(MOD, "%s: credentials document lacks AccessKeyId or SecretAccessKey", source);
        goto out;
    }
    if (exp && !parse_expiration(exp, &expiration)) {
        BS_LOG_WARNF(MOD, "%s: unparseable Expiration", source);
        goto out;
    }
    st = creds_set(out, akid, secret, token, expiration, source);
out:
    if (j) {
        /* cJSON holds its own copies of the secrets: wipe them before freeing. */
        cJSON *it;
        cJSON_ArrayForEach(it, j)
        {
            if (cJSON_IsString(it) && it->valuestring)
                OPENSSL_cleanse(it->valuestring, strlen(it->valuestring));
        }
        cJSON_Delete(j);
    }
    return st;
}

/* True if an http:// container-credentials URL points somewhere the SDKs
 * allow plaintext: loopback or the ECS/EKS link-local agents. */
static bool ecs_host_allowed(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = false;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) goto out;
    if (strcasecmp(scheme, "https") == 0) {
        ok = true;
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0) goto out;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) goto out;
    ok = strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 ||
         strcmp(host, "[::1]") == 0 || strcmp(host, "169.254.170.2") == 0 ||
         strcmp(host, "169.254.170.23") == 0 || strcasecmp(host, "[fd00:ec2::23]") == 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* ECS/EKS container credentials. BS_E_NOT_FOUND if not configured;
 * BS_E_CONFIG for a refused URL; other errors when configured but failing. */
static bs_status from_ecs(const bs_aws_credentials_provider *p, bs_aws_credentials *out)
{
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[4096];
    if (rel && *rel) {
        snprintf(url, sizeof url, "%s%s%s", DEFAULT_ECS_HOST, rel[0] == '/' ? "" : "/", rel);
    } else if (full && *full) {
        if (!ecs_host_allowed(full)) {
            BS_LOG_WARNF(MOD, "ecs: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or a loopback/"
                              "ECS agent address; ignored");
            return BS_E_CONFIG;
        }
        snprintf(url, sizeof url, "%s", full);
    } else {
        return BS_E_NOT_FOUND;
    }
    bs_status st = BS_OK;
    char *token = NULL;
    size_t token_len = 0;
    char *auth = NULL;
    const char *tok_env = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    const char *tok_file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    bs_wbuf body = {0};
    long status = 0;
    if (tok_file && *tok_file) {
        BS_GUARD_GOTO(st, read_small_file(tok_file, &token, &token_len), out);
    } else if (tok_env && *tok_env) {
        if (!(token = strdup(tok_env))) {
            st = BS_E_NOMEM;
            goto out;
        }
        token_len = strlen(token);
    }
    if (token) {
        const char *s = token, *e = token + strlen(token);
        trim(&s, &e);
        if (memchr(s, '\r', (size_t)(e - s)) || memchr(s, '\n', (size_t)(e - s))) {
            st = BS_E_CONFIG; /* header injection */
            goto out;
        }
        size_t n = (size_t)(e - s) + sizeof "Authorization: ";
        if (!(auth = malloc(n))) {
            st = BS_E_NOMEM;
            goto out;
        }
        snprintf(auth, n, "Authorization: %.*s", (int)(e - s), s);
    }
    BS_GUARD_GOTO(st, metadata_fetch(p, "GET", url, auth, NULL, &status, &body), out);
    if (status != 200) {
        BS_LOG_WARNF(MOD, "ecs: credentials endpoint answered HTTP %ld", status);
        st = BS_E_NOT_FOUND;
        goto out;
    }
    st = parse_credentials_json(&body, "ecs", out);
out:
    if (token) {
        OPENSSL_cleanse(token, token_len);
        free(token);
    }
    wipe_free(auth);
    wbuf_wipe_free(&body);
    return st;
}

/* EC2 instance-role credentials over IMDSv2 (token, role, credentials).
 * BS_E_NOT_FOUND when disabled or the endpoint has no role for us. */
static bs_status from_imds(const bs_aws_credentials_provider *p, bs_aws_credentials *out)
{
    const char *disabled = getenv("AWS_EC2_METADATA_DISABLED");
    if (p->disable_imds || (disabled && strcasecmp(disabled, "true") == 0)) return BS_E_NOT_FOUND;
    const char *base = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!base || !*base) base = DEFAULT_IMDS_ENDPOINT;
    size_t blen = strlen(base);
    while (blen && base[blen - 1] == '/')
        blen--;
    bs_status st = BS_OK;
    char url[4096];
    char token_hdr[1200];
    char role[256];
    bs_wbuf body = {0};
    long status = 0;

    /* IMDSv2 only: a session token first, never the v1 fallback. */
    snprintf(url, sizeof url, "%.*s/latest/api/token", (int)blen, base);
    BS_GUARD_GOTO(st,
                  metadata_fetch(p, "PUT", url, "X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL,
                                 &status, &body),
                  out);
    if (status != 200 || body.len == 0 || body.len > 1000 || memchr(body.data, '\n', body.len) ||
        memchr(body.data, '\r', body.len)) {
        BS_LOG_WARNF(MOD, "imds: token request answered HTTP %ld", status);
        st = BS_E_NOT_FOUND;
        goto out;
    }
    snprintf(token_hdr, sizeof token_hdr, "X-aws-ec2-metadata-token: %.*s", (int)body.len,
             (const char *)body.data);
    wbuf_wipe_free(&body);

    snprintf(url, sizeof url, "%.*s/latest/meta-data/iam/security-credentials/", (int)blen, base);
    BS_GUARD_GOTO(st, metadata_fetch(p, "GET", url, token_hdr, NULL, &status, &body), out);
    if (status != 200 || body.len == 0) {
        BS_LOG_WARNF(MOD, "imds: no instance role (HTTP %ld)", status);
        st = BS_E_NOT_FOUND;
        goto out;
    }
    /* The first line names the role; it becomes a path segment, so keep it tame. */
    size_t rlen = 0;
    while (rlen < body.len && body.data[rlen] != '\n' && body.data[rlen] != '\r')
        rlen++;
    if (rlen == 0 || rlen >= sizeof role) {
        st = BS_E_MALFORMED;
        goto out;
    }
    for (size_t i = 0; i < rlen; i++) {
        unsigned char c = body.data[i];
        if (!isalnum(c) && !strchr("+=,.@_-", c)) {
            st = BS_E_MALFORMED;
            goto out;
        }
        role[i] = (char)c;
    }
    role[rlen] = '\0';
    wbuf_wipe_free(&body);

    snprintf(url, sizeof url, "%.*s/latest/meta-data/iam/security-credentials/%s", (int)blen, base,
             role);
    BS_GUARD_GOTO(st, metadata_fetch(p, "GET", url, token_hdr, NULL, &status, &body), out);
    if (status != 200) {
        BS_LOG_WARNF(MOD, "imds: credentials for the role answered HTTP %ld", status);
        st = BS_E_NOT_FOUND;
        goto out;
    }
    st = parse_credentials_json(&body, "imds", out);
out:
    OPENSSL_cleanse(token_hdr, sizeof token_hdr);
    wbuf_wipe_free(&body);
    return st;
}

/* ---- the chain ---------------------------------------------------------- */

/* Walk the chain once. BS_E_NOT_FOUND if no source had credentials. Reads
 * only the provider's immutable configuration, so it may run without the
 * mutex (the refresher does); callers count p->resolutions under it. */
static bs_status resolve(const bs_aws_credentials_provider *p, bs_aws_credentials *out)
{
    if (p->explicit_akid)
        return creds_set(out, p->explicit_akid, p->explicit_secret, p->explicit_token, 0,
                         "explicit");
    const char *akid = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (akid && *akid && secret && *secret)
        return creds_set(out, akid, secret, getenv("AWS_SESSION_TOKEN"), 0, "environment");
    bs_status st = from_shared_files(p, out);
    if (st != BS_E_NOT_FOUND) return st;
    st = from_ecs(p, out);
    /* A configured but failing container endpoint is the answer: falling back to
     * the instance role would silently change identity. */
    if (st != BS_E_NOT_FOUND || getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
        getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
        return st == BS_E_NOT_FOUND ? BS_E_IO : st;
    return from_imds(p, out);
}

/* Replace the cache with `fresh` (ownership moves; the old secrets are wiped)
 * and wake the refresher so it plans from the new expiry. Mutex held. */
static void install(bs_aws_credentials_provider *p, bs_aws_credentials *fresh)
{
    bs_aws_credentials_clear(&p->cached);
    p->cached = *fresh;
    memset(fresh, 0, sizeof *fresh);
    p->have = true;
    p->stale = false;
    p->last_failed_attempt = 0;
    BS_LOG_INFOF(MOD, "credentials resolved from %s%s", p->cached.source,
                 p->cached.expiration ? " (expiring)" : "");
    pthread_cond_broadcast(&p->cond);
}

/* The refresher thread: sleeps until expiring credentials are
 * REFRESHER_MARGIN_S ahead of get()'s refresh window, resolves the chain
 * without holding the mutex (readers keep getting the cached credentials),
 * then installs the result. Failed attempts are retried every
 * FAILED_REFRESH_PAUSE_S; get() still refreshes by itself if all fail. */
static void *refresher_main(void *arg)
{
    bs_aws_credentials_provider *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (!p->have || p->cached.expiration == 0) {
            pthread_cond_wait(&p->cond, &p->mu); /* nothing expiring to look after */
            continue;
        }
        time_t wake = p->cached.expiration - p->refresh_ahead_s - REFRESHER_MARGIN_S;
        if (p->last_failed_attempt && wake < p->last_failed_attempt + FAILED_REFRESH_PAUSE_S)
            wake = p->last_failed_attempt + FAILED_REFRESH_PAUSE_S;
        if (time(NULL) < wake) {
            struct timespec ts = {.tv_sec = wake, .tv_nsec = 0};
            pthread_cond_timedwait(&p->cond, &p->mu, &ts);
            continue;
        }
        p->resolutions++;
        pthread_mutex_unlock(&p->mu);
        bs_aws_credentials fresh = {0};
        bs_status st = resolve(p, &fresh);
        pthread_mutex_lock(&p->mu);
        if (st == BS_OK && !p->stop) {
            install(p, &fresh);
        } else if (st != BS_OK) {
            p->last_failed_attempt = time(NULL);
            BS_LOG_WARNF(MOD, "background credential refresh failed (%s); retrying in %d s",
                         bs_status_name(st), FAILED_REFRESH_PAUSE_S);
        }
        bs_aws_credentials_clear(&fresh);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start the refresher thread once (see aws_credentials.h). */
bs_status bs_aws_credentials_start_refresher(bs_aws_credentials_provider *p)
{
    pthread_mutex_lock(&p->mu);
    bs_status st = BS_OK;
    if (p->refresher_running || p->stop)
        st = BS_E_STATE;
    else if (pthread_create(&p->thread, NULL, refresher_main, p) != 0)
        st = BS_E_NOMEM;
    else
        p->refresher_running = true;
    pthread_mutex_unlock(&p->mu);
    return st;
}

/* Serve the cache, re-resolving the chain when due (see aws_credentials.h). */
bs_status bs_aws_credentials_get(bs_aws_credentials_provider *p, bs_aws_credentials *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->mu);
    time_t now = time(NULL);
    bs_status st = BS_OK;
    bool still_valid = p->have && (p->cached.expiration == 0 || p->cached.expiration > now);
    bool due = !p->have || p->stale ||
               (p->cached.expiration != 0 && p->cached.expiration - now <= p->refresh_ahead_s);
    /* After a failed refresh, keep serving valid credentials for a while
     * rather than blocking every caller on an unreachable endpoint. */
    if (due && still_valid && !p->stale && p->last_failed_attempt &&
        now - p->last_failed_attempt < FAILED_REFRESH_PAUSE_S)
        due = false;
    if (due) {
        bs_aws_credentials fresh = {0};
        p->resolutions++;
        st = resolve(p, &fresh);
        if (st == BS_OK) {
            install(p, &fresh);
        } else {
            p->last_failed_attempt = now;
            if (still_valid) {
                BS_LOG_WARNF(MOD,
                             "credential refresh failed (%s); using the cached ones until "
                             "they expire",
                             bs_status_name(st));
                st = BS_OK;
            } else {
                BS_LOG_ERRORF(MOD,
                              "no AWS credentials: explicit, environment, shared files "
                              "(profile), ECS and IMDS tried (%s)",
                              bs_status_name(st));
            }
        }
    }
    if (st == BS_OK) st = p->have ? bs_aws_credentials_copy(out, &p->cached) : BS_E_NOT_FOUND;
    pthread_mutex_unlock(&p->mu);
    return st;
}

/* Force re-resolution on the next get (see aws_credentials.h). */
void bs_aws_credentials_invalidate(bs_aws_credentials_provider *p)
{
    pthread_mutex_lock(&p->mu);
    p->stale = true;
    pthread_mutex_unlock(&p->mu);
}

/* Chain resolutions so far, read under the mutex. */
unsigned long bs_aws_credentials_resolutions(bs_aws_credentials_provider *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned long n = p->resolutions;
    pthread_mutex_unlock(&p->mu);
    return n;
}
