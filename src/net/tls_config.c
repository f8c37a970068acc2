/*
 * tls_config.c - the `listeners[i].tls` and `listeners[i].upstream_tls`
 * sections: option rows, the TLS version rule and the cipher policy applied
 * at load (the same policy bs_tls_*_ctx_new enforce, see tls.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "brokerside/net_config.h"
#include "brokerside/tls.h"

/* True if `s` is one of the NULL-terminated `list`. */
static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return true;
    return false;
}

/* CUSTOM `min_version`: "TLSv1.2" | "TLSv1.3" into an int (default TLS 1.2);
 * older versions get their own message. */
static void parse_min_version(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                              const char *path, void *base)
{
    static const char *const too_old[] = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1", NULL};
    char p[BS_CONF_PATH_MAX], q[160];
    int *out = (int *)((char *)base + o->offset);
    const char *s;
    *out = TLS1_2_VERSION;
    if (!obj || !bs_conf_get_string(c, obj, o->name, path, &s) || !s) return;
    bs_conf_path_key(p, sizeof p, path, o->name);
    if (strcmp(s, "TLSv1.2") == 0)
        *out = TLS1_2_VERSION;
    else if (strcmp(s, "TLSv1.3") == 0)
        *out = TLS1_3_VERSION;
    else if (in_list(too_old, s))
        bs_conf_err(c, p, "%s is not allowed: the minimum is TLSv1.2", bs_conf_quote(q, sizeof q, s));
    else
        bs_conf_err(c, p, "%s is not a TLS version: expected \"TLSv1.2\" or \"TLSv1.3\"",
                    bs_conf_quote(q, sizeof q, s));
}

/*
 * Validate a TLS 1.2 cipher list with a throwaway SSL_CTX: OpenSSL must
 * accept it, and it must pass bs_tls_cipher_policy_violations; otherwise the
 * list would let a client negotiate something the policy forbids. OpenSSL
 * silently skips unknown names in a list, so plain names are also checked
 * one by one.
 */
static void check_ciphers(bs_conf *c, const char *p, const char *list)
{
    char q[300];
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    char *copy = strdup(list);
    if (!ctx || !copy) {
        c->nomem = true;
        goto out;
    }
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        bs_conf_err(c, p, "%s is not a valid OpenSSL cipher list (no cipher matches)",
                    bs_conf_quote(q, sizeof q, list));
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
        if (ok != 1) bs_conf_err(c, p, "unknown cipher %s", bs_conf_quote(q, sizeof q, tok));
    }
    char bad[512];
    size_t n_bad = bs_tls_cipher_policy_violations(ctx, bad, sizeof bad);
    if (n_bad)
        bs_conf_err(c, p,
                    "%s allows %zu cipher(s) without ECDHE key exchange, server authentication "
                    "or AEAD encryption (%s%s): only ECDHE with AES-GCM or ChaCha20-Poly1305 is "
                    "allowed",
                    bs_conf_quote(q, sizeof q, list), n_bad, bad, n_bad > 4 ? ", ..." : "");
out:
    ERR_clear_error(); /* rejected lists leave reasons queued; they are reported above */
    free(copy);
    SSL_CTX_free(ctx);
}

/* Validate a TLS 1.3 suite list: colon-separated names from bs_tls13_suites,
 * at least one. OpenSSL would silently drop unknown names. */
static void check_ciphersuites(bs_conf *c, const char *p, const char *list)
{
    char q[160];
    char *copy = strdup(list);
    if (!copy) {
        c->nomem = true;
        return;
    }
    size_t n = 0;
    char *save = NULL;
    const char *const *k = bs_tls13_suites;
    for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        n++;
        if (!in_list(k, tok))
            bs_conf_err(c, p, "unknown TLS 1.3 cipher suite %s (known: %s, %s, %s, %s, %s)",
                        bs_conf_quote(q, sizeof q, tok), k[0], k[1], k[2], k[3], k[4]);
    }
    if (n == 0) bs_conf_err(c, p, "names no TLS 1.3 cipher suite");
    free(copy);
}

/* CUSTOM `ciphers` / `ciphersuites`: an owned string, checked against the
 * policy, the default from tls.h when absent. */
static void parse_cipher_list(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                              const char *path, void *base)
{
    char p[BS_CONF_PATH_MAX];
    char **out = (char **)((char *)base + o->offset);
    const char *s = NULL;
    if (obj && !bs_conf_get_string(c, obj, o->name, path, &s)) return;
    bs_conf_path_key(p, sizeof p, path, o->name);
    if (s && strcmp(o->name, "ciphers") == 0) check_ciphers(c, p, s);
    if (s && strcmp(o->name, "ciphersuites") == 0) check_ciphersuites(c, p, s);
    *out = bs_conf_strdup(c, s ? s : o->def);
}

static const char *const client_auth_names[] = {"none", "optional", "required", NULL};

/* The rows both sections share: version and cipher lists. */
#define TLS_POLICY_ROWS(T)                                                                      \
    {.name = "min_version", .type = BS_CONF_CUSTOM, BS_CONF_AT(T, min_version),                 \
     .parse = parse_min_version, .def = "TLSv1.2", .doc = "string"},                               \
        {.name = "ciphers", .type = BS_CONF_CUSTOM, BS_CONF_AT(T, ciphers),                     \
         .parse = parse_cipher_list, .free = bs_conf_free_string, .def = BS_TLS_DEFAULT_CIPHERS,           \
         .doc = "string"},                                                                         \
    {                                                                                              \
        .name = "ciphersuites", .type = BS_CONF_CUSTOM, BS_CONF_AT(T, ciphersuites),            \
        .parse = parse_cipher_list, .free = bs_conf_free_string, .def = BS_TLS_DEFAULT_CIPHERSUITES,       \
        .doc = "string"                                                                            \
    }

static const bs_conf_opt server_rows[] = {
    {.name = "cert", .type = BS_CONF_FILE, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_tls_server_config, cert_file)},
    {.name = "key", .type = BS_CONF_FILE, .flags = BS_CONF_REQUIRED | BS_CONF_SECRET,
     BS_CONF_AT(bs_tls_server_config, key_file)},
    {.name = "client_ca", .type = BS_CONF_FILE, BS_CONF_AT(bs_tls_server_config, client_ca_file)},
    {.name = "crl", .type = BS_CONF_FILE, BS_CONF_AT(bs_tls_server_config, crl_file)},
    {.name = "client_auth", .type = BS_CONF_ENUM, BS_CONF_AT(bs_tls_server_config, client_auth),
     .choices = client_auth_names, .def = "none"},
    TLS_POLICY_ROWS(bs_tls_server_config),
};

/* Rules across keys of `tls`: client_auth needs a CA, a CRL needs client_auth. */
static void check_server(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    const bs_tls_server_config *t = base;
    char p[BS_CONF_PATH_MAX], q[160];
    if (!obj) return;
    /* Only complain about a missing CA when it is absent, not when it was
     * given but broken: that has its own message already. */
    if (t->client_auth != BS_CLIENT_AUTH_NONE && !bs_conf_member(obj, "client_ca")) {
        bs_conf_path_key(p, sizeof p, path, "client_auth");
        bs_conf_err(c, p, "%s needs client_ca (the CA file that signs client certificates)",
                    bs_conf_quote(q, sizeof q, client_auth_names[t->client_auth]));
    }
    if (bs_conf_member(obj, "crl") && t->client_auth == BS_CLIENT_AUTH_NONE) {
        bs_conf_path_key(p, sizeof p, path, "crl");
        bs_conf_err(c, p,
                    "a CRL is only used to check client certificates: set client_auth to "
                    "\"optional\" or \"required\"");
    }
}

const bs_conf_section bs_tls_server_conf =
    BS_CONF_SECTION("listeners[i].tls", server_rows, check_server);

static const bs_conf_opt client_rows[] = {
    {.name = "ca", .type = BS_CONF_FILE, BS_CONF_AT(bs_tls_client_config, ca_file)},
    {.name = "cert", .type = BS_CONF_FILE, BS_CONF_AT(bs_tls_client_config, cert_file)},
    {.name = "key", .type = BS_CONF_FILE, .flags = BS_CONF_SECRET,
     BS_CONF_AT(bs_tls_client_config, key_file)},
    /* Default: the upstream host, filled in by the listener (listener_config.c). */
    {.name = "server_name", .type = BS_CONF_STRING,
     BS_CONF_AT(bs_tls_client_config, server_name)},
    {.name = "verify", .type = BS_CONF_BOOL, BS_CONF_AT(bs_tls_client_config, verify),
     .def = "true"},
    TLS_POLICY_ROWS(bs_tls_client_config),
};

/* Rules across keys of `upstream_tls`: cert and key come together. */
static void check_client(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    (void)base;
    char p[BS_CONF_PATH_MAX];
    if (!obj) return;
    bool has_cert = bs_conf_member(obj, "cert") != NULL, has_key = bs_conf_member(obj, "key") != NULL;
    if (has_cert != has_key) {
        bs_conf_path_key(p, sizeof p, path, has_cert ? "key" : "cert");
        bs_conf_err(c, p,
                    "is required because %s is set: a client certificate needs its key and "
                    "vice versa",
                    has_cert ? "cert" : "key");
    }
}

const bs_conf_section bs_tls_client_conf =
    BS_CONF_SECTION("listeners[i].upstream_tls", client_rows, check_client);
