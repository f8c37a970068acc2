/*
 * aws_config.c - the `aws` section (credentials, HTTP client settings, the
 * region every AWS client falls back to) and the `region` / `endpoint` rows
 * that the KMS keyring and the AWS sinks share.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/aws_config.h"
#include "brokerside/confmap.h"

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

/* See aws_config.h. */
const char *bs_aws_conf_check_region(const char *s)
{
    return region_ok(s) ? NULL : " is not an AWS region name (e.g. \"us-east-1\")";
}

/* See aws_config.h. */
void bs_aws_conf_parse_region(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                              const char *path, void *base)
{
    char p[BS_CONF_PATH_MAX], q[160];
    char **out = (char **)((char *)base + o->offset);
    const char *s = NULL;
    if (!obj) return;
    bs_conf_path_key(p, sizeof p, path, o->name);
    if (!bs_conf_get_string(c, obj, o->name, path, &s)) return;
    if (s && !region_ok(s)) {
        bs_conf_err(c, p, "%s%s", bs_conf_quote(q, sizeof q, s), bs_aws_conf_check_region(s));
        return;
    }
    if (!s) {
        s = bs_conf_published(c, "aws.region");
        if (!s) {
            bs_conf_err(c, p, "%s", o->required ? o->required : "no region");
            return;
        }
    }
    *out = bs_conf_strdup(c, s);
}

/* Copy URL `u` into out[outlen] with any user information before the host
 * ("user:password@") replaced by "***@", so error messages never print a
 * credential somebody put in an endpoint. */
static void redact_url(const char *u, char *out, size_t outlen)
{
    const char *h = strstr(u, "://");
    h = h ? h + 3 : u;
    size_t hl = strcspn(h, "/?#");
    const char *at = NULL;
    for (const char *x = h; x < h + hl; x++)
        if (*x == '@') at = x; /* the last '@' ends the user information */
    if (!at) {
        snprintf(out, outlen, "%s", u);
        return;
    }
    snprintf(out, outlen, "%.*s***%s", (int)(h - u), u, at);
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
        if (!bs_conf_parse_port(port, &pn) || pn < 1 || pn > 65535)
            return "port must be a number between 1 and 65535";
    }
    if (host[0] == '\0' || !bs_conf_host_chars_ok(host, strchr(host, ':') != NULL))
        return "has no valid host";
    if (!tls && !insecure_ok && !bs_conf_host_is_loopback(host))
        return "uses plain http to a host that is not loopback: use https, or set "
               "\"allow_insecure_endpoint\": true";
    return NULL;
}

/* See aws_config.h. */
void bs_aws_conf_parse_endpoint(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                                const char *path, void *base)
{
    char p[BS_CONF_PATH_MAX], q[300];
    char **out = (char **)((char *)base + o->offset);
    const char *s;
    bool insecure = false;
    if (!obj) return;
    bs_conf_get_bool(c, obj, "allow_insecure_endpoint", path, &insecure);
    if (!bs_conf_get_string(c, obj, o->name, path, &s) || !s) return;
    const char *why = check_url(s, insecure);
    if (why) {
        char safe[600];
        bs_conf_path_key(p, sizeof p, path, o->name);
        redact_url(s, safe, sizeof safe);
        bs_conf_err(c, p, "%s %s", bs_conf_quote(q, sizeof q, safe), why);
        return;
    }
    *out = bs_conf_strdup(c, s);
}

/* Only types are checked: a secret's value never appears in a message. */
static void check_credentials(bs_conf *c, const cJSON *cr, const char *path, void *base)
{
    (void)base;
    (void)path;
    if (!cr) return;
    bool has_id = bs_conf_member(cr, "access_key_id") != NULL;
    bool has_secret = bs_conf_member(cr, "secret_access_key") != NULL;
    if (has_id != has_secret)
        bs_conf_err(c,
                    has_id ? "aws.credentials.secret_access_key" : "aws.credentials.access_key_id",
                    "is required because %s is set", has_id ? "access_key_id" : "secret_access_key");
    else if (!has_id && bs_conf_member(cr, "session_token"))
        bs_conf_err(c, "aws.credentials.session_token",
                    "needs access_key_id and secret_access_key (a token alone is not a "
                    "credential)");
    else if (!has_id)
        bs_conf_err(c, "aws.credentials",
                    "is empty: remove it to use the environment, a profile or the instance role");
}

static const bs_conf_opt credential_rows[] = {
    {.name = "access_key_id", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART, .restart_label = "aws", BS_CONF_AT(bs_aws_config, access_key_id)},
    {.name = "secret_access_key", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART | BS_CONF_SECRET, .restart_label = "aws",
     BS_CONF_AT(bs_aws_config, secret_access_key)},
    {.name = "session_token", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART | BS_CONF_SECRET, .restart_label = "aws",
     BS_CONF_AT(bs_aws_config, session_token)},
};

static const bs_conf_section credentials_conf =
    BS_CONF_SECTION("aws.credentials", credential_rows, check_credentials);

/* The region of AWS clients that set none: published as "aws.region" for
 * the sections read after this one. */
static void check_aws(bs_conf *c, const cJSON *obj, const char *path, void *base);

/* The region: the file, else AWS_REGION, else AWS_DEFAULT_REGION. */
static void resolve_region(bs_conf *c, const cJSON *obj, bs_aws_config *a)
{
    if (a->region || (obj && bs_conf_member(obj, "region"))) return;
    const char *env = getenv("AWS_REGION");
    const char *name = "AWS_REGION";
    if (!env || !env[0]) {
        env = getenv("AWS_DEFAULT_REGION");
        name = "AWS_DEFAULT_REGION";
    }
    if (!env || !env[0]) return;
    char q[160];
    if (region_ok(env)) {
        a->region = bs_conf_strdup(c, env);
        a->region_from_env = true;
    } else {
        bs_conf_err(c, "aws.region", "not set, and %s=%s is not an AWS region name", name,
                    bs_conf_quote(q, sizeof q, env));
    }
}

static void check_aws(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    bs_aws_config *a = base;
    (void)path;
    resolve_region(c, obj, a);
    bs_conf_publish(c, "aws.region", a->region);
}

static const bs_conf_opt aws_rows[] = {
    {.name = "region", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART, .restart_label = "aws", BS_CONF_AT(bs_aws_config, region),
     .check_str = bs_aws_conf_check_region},
    {.name = "profile", .type = BS_CONF_STRING, .flags = BS_CONF_RESTART, .restart_label = "aws", BS_CONF_AT(bs_aws_config, profile)},
    {.name = "max_attempts", .type = BS_CONF_INT, .flags = BS_CONF_RESTART, .restart_label = "aws", BS_CONF_AT(bs_aws_config, max_attempts), .min = 1,
     .max = 20, .def = "4"},
    {.name = "connect_timeout_s", .type = BS_CONF_SECONDS, .flags = BS_CONF_RESTART, .restart_label = "aws",
     BS_CONF_AT(bs_aws_config, connect_timeout_s), .max = 600, .def = "3"},
    {.name = "request_timeout_s", .type = BS_CONF_SECONDS, .flags = BS_CONF_RESTART, .restart_label = "aws",
     BS_CONF_AT(bs_aws_config, request_timeout_s), .max = 3600, .def = "30"},
    {.name = "ca_file", .type = BS_CONF_FILE, .flags = BS_CONF_RESTART, .restart_label = "aws", BS_CONF_AT(bs_aws_config, ca_file)},
    {.name = "credentials", .type = BS_CONF_OBJECT, .sub = &credentials_conf},
};

const bs_conf_section bs_aws_conf = BS_CONF_SECTION("aws", aws_rows, check_aws);
