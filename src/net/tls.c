/*
 * tls.c - TLS contexts (OpenSSL 3) for termination and origination, the
 * handshake failure classifier and the peer principal. The policy lives here
 * and only here; see docs/tls.md.
 */
#include "brokerside/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "brokerside/cursor.h"
#include "brokerside/log.h"

#define TLS_MOD "tls"

/* ECDHE groups offered and accepted, strongest-common-first by speed. */
#define TLS_GROUPS "X25519:P-256:P-384"
/* Client chains are leaf + at most a few intermediates; deeper is abuse. */
#define TLS_VERIFY_DEPTH 5
/* OpenSSL security level floor: 2 = 112-bit (RSA/DH >= 2048, no SHA-1). */
#define TLS_MIN_SECURITY_LEVEL 2
/*
 * Server session cache: TLS 1.2 sessions (TLS 1.3 uses stateless tickets and
 * is not stored). Each entry costs roughly 1 KiB, so this bounds the cache to
 * a few MiB however many clients come and go.
 */
#define TLS_SESS_CACHE_SIZE 4096
/* Kafka clients reconnect after broker restarts and rebalances; an hour
 * lets those reconnects resume without keeping secrets around for long. */
#define TLS_SESS_TIMEOUT_S 3600
/* Read-ahead buffer: four full TLS records (16 KiB each plus overhead) per
 * read(2). Allocated only while a connection has unread bytes. */
#define TLS_READ_AHEAD_BYTES (4 * (16384 + 512))

/*
 * Append OpenSSL's reason for the earliest queued error to err (after the
 * message already there) and clear the queue. The earliest error is the most
 * specific one (e.g. "No such file or directory" before "system lib").
 */
static void tls_append_openssl_reason(char *err, size_t errlen)
{
    unsigned long e = ERR_peek_error();
    if (e != 0 && err && errlen > 0) {
        size_t used = strlen(err);
        const char *lib = ERR_lib_error_string(e);
        const char *reason = ERR_reason_error_string(e);
        char sysbuf[128];
        if (ERR_SYSTEM_ERROR(e)) {
            /* System errors carry errno; OpenSSL 3 has no string for them. */
            lib = NULL;
            reason = strerror_r(ERR_GET_REASON(e), sysbuf, sizeof sysbuf);
        }
        if (used < errlen) {
            if (reason)
                snprintf(err + used, errlen - used, ": %s%s%s", lib ? lib : "", lib ? ": " : "",
                         reason);
            else
                snprintf(err + used, errlen - used, ": OpenSSL error 0x%lx", e);
        }
    }
    ERR_clear_error();
}

/*
 * Format a one-line error into err[errlen] (may be NULL/0), add OpenSSL's
 * reason if `with_openssl`, and return `st` so callers can `return tls_fail(...)`
 * or assign it on their cleanup path.
 */
static bs_status tls_fail(bs_status st, bool with_openssl, char *err, size_t errlen,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static bs_status tls_fail(bs_status st, bool with_openssl, char *err, size_t errlen,
                          const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    if (with_openssl)
        tls_append_openssl_reason(err, errlen);
    else
        ERR_clear_error();
    return st;
}

/*
 * Password callback that supplies no password: an encrypted key file must
 * fail with a clear error instead of blocking the daemon on a terminal prompt.
 */
static int tls_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/*
 * Resolve a configured minimum version. 0 (unset) means TLS 1.2; anything
 * below TLS 1.2 or unknown is refused here even if the config loader let it
 * through, because this module is where the policy is enforced.
 */
static bs_status tls_min_version(int v, int *out, char *err, size_t errlen)
{
    if (v == 0) v = TLS1_2_VERSION;
    if (v != TLS1_2_VERSION && v != TLS1_3_VERSION)
        return tls_fail(BS_E_CONFIG, false, err, errlen,
                        "min_version 0x%04x refused: TLS 1.2 or TLS 1.3 required", (unsigned)v);
    *out = v;
    return BS_OK;
}

/* See tls.h: the one TLS 1.2 cipher rule, ECDHE key exchange, an AEAD and a
 * certificate (RSA or ECDSA) authenticating the server. TLS 1.3 suites are
 * always (EC)DHE and AEAD. */
bool bs_tls_cipher_allowed(const SSL_CIPHER *c)
{
    int kx = SSL_CIPHER_get_kx_nid(c);
    if (kx == NID_kx_any) return true;
    int auth = SSL_CIPHER_get_auth_nid(c);
    return kx == NID_kx_ecdhe && SSL_CIPHER_is_aead(c) &&
           (auth == NID_auth_rsa || auth == NID_auth_ecdsa);
}

/* See tls.h. */
size_t bs_tls_cipher_policy_violations(SSL_CTX *ctx, char *names, size_t nameslen)
{
    size_t used = 0, n_bad = 0;
    if (nameslen) names[0] = '\0';
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
        if (bs_tls_cipher_allowed(ci)) continue;
        if (n_bad++ < 4 && used < nameslen)
            used += (size_t)snprintf(names + used, nameslen - used, "%s%s", used ? ", " : "",
                                     SSL_CIPHER_get_name(ci));
    }
    return n_bad;
}

/* See tls.h. */
const char *const bs_tls13_suites[] = {"TLS_AES_128_GCM_SHA256",       "TLS_AES_256_GCM_SHA384",
                                       "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                                       "TLS_AES_128_CCM_8_SHA256",     NULL};

/*
 * The floor no configuration string can lower (docs/tls.md, "Policy"):
 * security level 2 or more (>= 112-bit: no RSA/DH < 2048, no SHA-1
 * signatures), and every TLS 1.2 cipher ECDHE with an AEAD. Called after
 * the cipher strings were applied: an "@SECLEVEL=n" below 2 or a cipher
 * outside the rule is a configuration error naming it (so --check-config and
 * a reload refuse it). The level itself was pinned to the floor before the
 * strings were applied (tls_common_setup), so openssl.cnf cannot lower it and
 * only a string's own @SECLEVEL can move it, which is checked here.
 */
static bs_status tls_enforce_floor(SSL_CTX *ctx, const char *cl, char *err, size_t errlen)
{
    int level = SSL_CTX_get_security_level(ctx);
    if (level < TLS_MIN_SECURITY_LEVEL)
        return tls_fail(BS_E_CONFIG, false, err, errlen,
                        "ciphers \"%s\" refused: it sets security level %d; brokerside never "
                        "runs below level %d (no RSA < 2048 bits, no SHA-1 signatures)",
                        cl, level, TLS_MIN_SECURITY_LEVEL);
    STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        if (!bs_tls_cipher_allowed(c))
            return tls_fail(BS_E_CONFIG, false, err, errlen,
                            "ciphers \"%s\" refused: %s is not ECDHE with an AEAD cipher and "
                            "a certificate (the only TLS 1.2 ciphers brokerside allows)",
                            cl, SSL_CIPHER_get_name(c));
    }
    return BS_OK;
}

/*
 * Settings shared by server and client contexts: versions, ciphers, groups,
 * no compression, no renegotiation, buffer modes, security level.
 */
static bs_status tls_common_setup(SSL_CTX *ctx, int min_version, const char *ciphers,
                                  const char *ciphersuites, char *err, size_t errlen)
{
    int minv = 0;
    BS_GUARD(tls_min_version(min_version, &minv, err, errlen));
    if (!SSL_CTX_set_min_proto_version(ctx, minv) || !SSL_CTX_set_max_proto_version(ctx, 0))
        return tls_fail(BS_E_CRYPTO, true, err, errlen, "cannot set TLS protocol versions");
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION | SSL_OP_LEGACY_SERVER_CONNECT);
    /* Idle connections (most Kafka connections, most of the time) give their
     * 16 KiB+ read/write buffers back; partial writes and moving buffers let
     * the event loop write from a ring buffer without copying. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read ahead into a buffer of several records: one read(2) takes what
     * the socket holds instead of two per record (5-byte header, then body).
     * A Kafka producer's stream is all full records, so this halves the
     * system calls of the busiest direction; the buffer is still released
     * when drained. The pump reads until SSL_ERROR_WANT_READ, which with
     * read-ahead means OpenSSL's buffer is empty too, so no bytes can wait
     * unseen behind an idle socket (conn.c checks SSL_has_pending). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_AHEAD_BYTES);
    const char *cl = ciphers && *ciphers ? ciphers : BS_TLS_DEFAULT_CIPHERS;
    const char *cs = ciphersuites && *ciphersuites ? ciphersuites : BS_TLS_DEFAULT_CIPHERSUITES;
    /* A permissive system openssl.cnf may have lowered the level already;
     * the cipher string may carry its own @SECLEVEL: check after both. */
    SSL_CTX_set_security_level(ctx, TLS_MIN_SECURITY_LEVEL);
    if (!SSL_CTX_set_cipher_list(ctx, cl))
        return tls_fail(BS_E_CONFIG, true, err, errlen, "ciphers \"%s\" rejected", cl);
    if (!SSL_CTX_set_ciphersuites(ctx, cs))
        return tls_fail(BS_E_CONFIG, true, err, errlen, "ciphersuites \"%s\" rejected", cs);
    BS_GUARD(tls_enforce_floor(ctx, cl, err, errlen));
    if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS))
        return tls_fail(BS_E_CRYPTO, true, err, errlen, "cannot set groups %s", TLS_GROUPS);
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_password);
    return BS_OK;
}

/*
 * Load a PEM certificate chain and its private key into ctx and check that
 * they match. `prefix` ("" or "upstream_tls ") names the config section in
 * errors. The key never leaves OpenSSL's memory.
 */
static bs_status tls_load_cert_key(SSL_CTX *ctx, const char *prefix, const char *cert_file,
                                   const char *key_file, char *err, size_t errlen)
{
    bs_status st = BS_OK;
    BIO *kb = NULL;
    EVP_PKEY *key = NULL;

    if (!SSL_CTX_use_certificate_chain_file(ctx, cert_file)) {
        st = tls_fail(BS_E_CONFIG, true, err, errlen, "%scert '%s' cannot be loaded", prefix,
                      cert_file);
        goto out;
    }
    kb = BIO_new_file(key_file, "r");
    if (!kb) {
        st = tls_fail(BS_E_CONFIG, true, err, errlen, "%skey '%s' cannot be opened", prefix,
                      key_file);
        goto out;
    }
    key = PEM_read_bio_PrivateKey(kb, NULL, tls_no_password, NULL);
    if (!key) {
        st = tls_fail(BS_E_CONFIG, true, err, errlen,
                      "%skey '%s' is not a readable PEM private key (encrypted keys are not "
                      "supported)",
                      prefix, key_file);
        goto out;
    }
    /* SSL_CTX_use_PrivateKey already compares with a certificate of the same
     * type; SSL_CTX_check_private_key catches a key of another type, which
     * would otherwise land in an empty slot and "succeed". */
    if (!SSL_CTX_use_PrivateKey(ctx, key) || !SSL_CTX_check_private_key(ctx)) {
        st = tls_fail(BS_E_CONFIG, true, err, errlen, "%skey '%s' does not match cert '%s'", prefix,
                      key_file, cert_file);
        goto out;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
        BS_LOG_WARNF(TLS_MOD, "%scert '%s' has expired; peers will refuse it", prefix, cert_file);
out:
    EVP_PKEY_free(key);
    BIO_free(kb);
    return st;
}

/*
 * Add every CRL in a PEM file to the context's store and turn on revocation
 * checking of the peer's leaf certificate. An empty or unreadable file is an
 * error: silently running without the CRL an operator asked for would be
 * worse than not starting.
 */
static bs_status tls_load_crl(SSL_CTX *ctx, const char *crl_file, char *err, size_t errlen)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (!lookup) return tls_fail(BS_E_NOMEM, true, err, errlen, "cannot allocate CRL lookup");
    if (X509_load_crl_file(lookup, crl_file, X509_FILETYPE_PEM) <= 0)
        return tls_fail(BS_E_CONFIG, true, err, errlen, "crl '%s' cannot be loaded", crl_file);
    /* Leaf only: the CRL file holds the client CA's CRL; intermediates
     * without a CRL would otherwise fail every handshake. */
    if (!X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK))
        return tls_fail(BS_E_CRYPTO, true, err, errlen, "cannot enable CRL checking");
    return BS_OK;
}

/*
 * Derive the session id context from what decides who may resume: the
 * certificate, the client CA, the CRL and the client_auth mode. A session
 * can then never be resumed under a context with a different policy, even if
 * a cache were shared.
 */
static bs_status tls_set_sid_ctx(SSL_CTX *ctx, const bs_tls_server_config *cfg, char *err,
                                 size_t errlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    bs_status st = BS_OK;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    const char *parts[] = {"brokerside-tls-v1", cfg->cert_file, cfg->client_ca_file, cfg->crl_file};
    char mode = (char)('0' + (int)cfg->client_auth);
    if (!m || !EVP_DigestInit_ex(m, EVP_sha256(), NULL)) {
        st = tls_fail(BS_E_CRYPTO, true, err, errlen, "cannot derive session id context");
        goto out;
    }
    for (size_t i = 0; i < BS_ARRAY_LEN(parts); i++) {
        const char *p = parts[i] ? parts[i] : "";
        /* Include the NUL so ("ab","c") and ("a","bc") differ. */
        if (!EVP_DigestUpdate(m, p, strlen(p) + 1)) {
            st = tls_fail(BS_E_CRYPTO, true, err, errlen, "cannot derive session id context");
            goto out;
        }
    }
    if (!EVP_DigestUpdate(m, &mode, 1) || !EVP_DigestFinal_ex(m, md, &mdlen)) {
        st = tls_fail(BS_E_CRYPTO, true, err, errlen, "cannot derive session id context");
        goto out;
    }
    if (mdlen > SSL_MAX_SID_CTX_LENGTH) mdlen = SSL_MAX_SID_CTX_LENGTH;
    if (!SSL_CTX_set_session_id_context(ctx, md, mdlen))
        st = tls_fail(BS_E_CRYPTO, true, err, errlen, "cannot set session id context");
out:
    EVP_MD_CTX_free(m);
    return st;
}

/* Is verify result `v` about the CRL (missing, expired, not yet valid,
 * badly signed or dated) rather than about the certificate? One list for the
 * verify callback (which alert the client gets) and the failure classifier. */
static bool tls_verify_error_is_crl(long v)
{
    switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
    case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
    case X509_V_ERR_CRL_PATH_VALIDATION_ERROR: /* set by tls_crl_alert_cb */
        return true;
    default:
        return false;
    }
}

/*
 * Server verify callback: revocation that cannot be checked (CRL missing,
 * expired, not yet valid, badly signed) is not the client certificate's
 * fault. OpenSSL would send certificate_expired for an expired CRL (and
 * unknown_ca for a missing one); replace the error with
 * X509_V_ERR_CRL_PATH_VALIDATION_ERROR, which OpenSSL answers with the
 * catch-all certificate_unknown alert and our classifier counts as crl_error.
 * Every other result passes through unchanged.
 */
static int tls_crl_alert_cb(int preverify_ok, X509_STORE_CTX *x)
{
    if (preverify_ok) return preverify_ok;
    if (tls_verify_error_is_crl(X509_STORE_CTX_get_error(x)))
        X509_STORE_CTX_set_error(x, X509_V_ERR_CRL_PATH_VALIDATION_ERROR);
    return 0;
}

/*
 * Build a server (termination) context; see tls.h. On failure nothing is
 * leaked and err names the file and OpenSSL's reason.
 */
bs_status bs_tls_server_ctx_new(const bs_tls_server_config *cfg, SSL_CTX **out, char *err,
                                size_t errlen)
{
    bs_status st = BS_OK;
    SSL_CTX *ctx = NULL;
    *out = NULL;
    if (err && errlen) err[0] = '\0';
    ERR_clear_error();

    if (!cfg || !cfg->cert_file || !cfg->key_file) {
        st = tls_fail(BS_E_CONFIG, false, err, errlen, "tls: cert and key are required");
        goto out;
    }
    if (cfg->client_auth != BS_CLIENT_AUTH_NONE && !cfg->client_ca_file) {
        st = tls_fail(BS_E_CONFIG, false, err, errlen,
                      "tls: client_auth optional/required needs client_ca");
        goto out;
    }
    if (cfg->crl_file && cfg->client_auth == BS_CLIENT_AUTH_NONE) {
        st = tls_fail(BS_E_CONFIG, false, err, errlen,
                      "tls: crl '%s' given but client_auth is none (no client certificates to "
                      "check)",
                      cfg->crl_file);
        goto out;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        st = tls_fail(BS_E_NOMEM, true, err, errlen, "cannot allocate server TLS context");
        goto out;
    }
    BS_GUARD_GOTO(
        st, tls_common_setup(ctx, cfg->min_version, cfg->ciphers, cfg->ciphersuites, err, errlen),
        out);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Tickets stay on (the default): TLS 1.3 resumption is ticket-only. */
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLS_SESS_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, TLS_SESS_TIMEOUT_S);
    BS_GUARD_GOTO(st, tls_set_sid_ctx(ctx, cfg, err, errlen), out);
    BS_GUARD_GOTO(st, tls_load_cert_key(ctx, "", cfg->cert_file, cfg->key_file, err, errlen), out);

    if (cfg->client_auth != BS_CLIENT_AUTH_NONE) {
        if (!SSL_CTX_load_verify_file(ctx, cfg->client_ca_file)) {
            st = tls_fail(BS_E_CONFIG, true, err, errlen, "client_ca '%s' cannot be loaded",
                          cfg->client_ca_file);
            goto out;
        }
        /* The CA names go into CertificateRequest so clients with several
         * certificates pick one we can verify. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca_file);
        if (!names) {
            st = tls_fail(BS_E_CONFIG, true, err, errlen, "client_ca '%s' holds no CA certificate",
                          cfg->client_ca_file);
            goto out;
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* ctx owns names now */
        int mode = SSL_VERIFY_PEER;
        if (cfg->client_auth == BS_CLIENT_AUTH_REQUIRED) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, tls_crl_alert_cb);
        SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
        if (cfg->crl_file) BS_GUARD_GOTO(st, tls_load_crl(ctx, cfg->crl_file, err, errlen), out);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return st;
}

/*
 * Origination verify callback: the leaf must have been checked against an
 * expected name. If a connection was never given one (bs_tls_client_prepare
 * not called), OpenSSL would accept any certificate from the CA; fail
 * closed instead.
 */
static int tls_require_expected_name(int preverify_ok, X509_STORE_CTX *x)
{
    if (!preverify_ok || X509_STORE_CTX_get_error_depth(x) != 0) return preverify_ok;
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(x);
    if (X509_VERIFY_PARAM_get0_host(param, 0) != NULL) return 1;
    char *ip = X509_VERIFY_PARAM_get1_ip_asc(param);
    if (ip) {
        OPENSSL_free(ip);
        return 1;
    }
    X509_STORE_CTX_set_error(x, X509_V_ERR_HOSTNAME_MISMATCH);
    return 0;
}

/*
 * Build a client (origination) context; see tls.h. Verification is on unless
 * cfg->verify is false (logged as a warning: only for testing).
 */
bs_status bs_tls_client_ctx_new(const bs_tls_client_config *cfg, SSL_CTX **out, char *err,
                                size_t errlen)
{
    bs_status st = BS_OK;
    SSL_CTX *ctx = NULL;
    *out = NULL;
    if (err && errlen) err[0] = '\0';
    ERR_clear_error();

    if (!cfg) {
        st = tls_fail(BS_E_CONFIG, false, err, errlen, "upstream_tls: no configuration");
        goto out;
    }
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        st = tls_fail(BS_E_CONFIG, false, err, errlen,
                      "upstream_tls: cert and key must be given together");
        goto out;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        st = tls_fail(BS_E_NOMEM, true, err, errlen, "cannot allocate client TLS context");
        goto out;
    }
    BS_GUARD_GOTO(
        st, tls_common_setup(ctx, cfg->min_version, cfg->ciphers, cfg->ciphersuites, err, errlen),
        out);
    if (cfg->verify) {
        if (cfg->ca_file) {
            if (!SSL_CTX_load_verify_file(ctx, cfg->ca_file)) {
                st = tls_fail(BS_E_CONFIG, true, err, errlen,
                              "upstream_tls ca '%s' cannot be loaded", cfg->ca_file);
                goto out;
            }
        } else if (!SSL_CTX_set_default_verify_paths(ctx)) {
            st = tls_fail(BS_E_CONFIG, true, err, errlen,
                          "upstream_tls: system trust store cannot be loaded");
            goto out;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_require_expected_name);
        SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
    } else {
        BS_LOG_WARNF(TLS_MOD, "upstream_tls: certificate verification is OFF (\"verify\": false)");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (cfg->cert_file)
        BS_GUARD_GOTO(
            st, tls_load_cert_key(ctx, "upstream_tls ", cfg->cert_file, cfg->key_file, err, errlen),
            out);
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return st;
}

/* Per-connection origination set-up; see tls.h. */
bs_status bs_tls_client_prepare(SSL *ssl, const bs_tls_client_config *cfg, const char *default_host)
{
    const char *name =
        cfg && cfg->server_name && *cfg->server_name ? cfg->server_name : default_host;
    bool verify = !cfg || cfg->verify;
    if (!ssl) return BS_E_STATE;
    if (!name || !*name) return verify ? BS_E_CONFIG : BS_OK;

    unsigned char addr[sizeof(struct in6_addr)];
    bool is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    if (is_ip) {
        if (verify && !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)) {
            ERR_clear_error();
            return BS_E_CRYPTO;
        }
        return BS_OK;
    }
    if (!SSL_set_tlsext_host_name(ssl, name)) {
        ERR_clear_error();
        return BS_E_CRYPTO;
    }
    if (verify) {
        /* "*.example.com" may match "a.example.com"; "a*.example.com" never. */
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (!SSL_set1_host(ssl, name)) {
            ERR_clear_error();
            return BS_E_NOMEM;
        }
    }
    return BS_OK;
}

/* Take ownership of ctx (may be NULL) as the slot's current context. */
void bs_tls_slot_init(bs_tls_slot *slot, SSL_CTX *ctx)
{
    pthread_mutex_init(&slot->lock, NULL);
    slot->ctx = ctx;
}

/*
 * Return the current context with one more reference (caller frees with
 * SSL_CTX_free), or NULL if the slot is empty.
 */
SSL_CTX *bs_tls_slot_acquire(bs_tls_slot *slot)
{
    pthread_mutex_lock(&slot->lock);
    SSL_CTX *ctx = slot->ctx;
    /* Up-ref under the lock: a concurrent swap must not free ctx between
     * reading the pointer and taking the reference. */
    if (ctx && !SSL_CTX_up_ref(ctx)) ctx = NULL;
    pthread_mutex_unlock(&slot->lock);
    return ctx;
}

/*
 * Install ctx (ownership taken). The slot's reference to the old context is
 * dropped; SSL objects and acquirers holding their own references keep it
 * alive until they are done.
 */
void bs_tls_slot_swap(bs_tls_slot *slot, SSL_CTX *ctx)
{
    pthread_mutex_lock(&slot->lock);
    SSL_CTX *old = slot->ctx;
    slot->ctx = ctx;
    pthread_mutex_unlock(&slot->lock);
    SSL_CTX_free(old); /* outside the lock: freeing may take a while */
}

/* Drop the slot's reference and destroy its mutex. No concurrent use allowed. */
void bs_tls_slot_destroy(bs_tls_slot *slot)
{
    SSL_CTX_free(slot->ctx);
    slot->ctx = NULL;
    pthread_mutex_destroy(&slot->lock);
}

/*
 * Plaintext Kafka request prefix: int32 size (a request header v0 is 8 bytes,
 * the broker's default socket.request.max.bytes is 100 MiB), int16 api_key
 * (0..80 covers every key Kafka defines today plus headroom), int16 version.
 */
bool bs_tls_looks_like_plaintext_kafka(const uint8_t *p, size_t n)
{
    bs_cursor c;
    int32_t size;
    int16_t api_key, api_version;
    if (!p) return false;
    bs_cursor_init(&c, p, n);
    if (bs_read_i32(&c, &size) != BS_OK || bs_read_i16(&c, &api_key) != BS_OK ||
        bs_read_i16(&c, &api_version) != BS_OK)
        return false;
    return size >= 8 && size <= 100 * 1024 * 1024 && api_key >= 0 && api_key <= 80 &&
           api_version >= 0 && api_version <= 20;
}

/* True if the bytes start like an HTTP/1.x request line or a proxy CONNECT. */
static bool tls_looks_like_http(const uint8_t *p, size_t n)
{
    static const char *const methods[] = {"GET ",   "POST ",    "PUT ",     "HEAD ", "DELETE ",
                                          "PATCH ", "OPTIONS ", "CONNECT ", "TRACE "};
    for (size_t i = 0; i < BS_ARRAY_LEN(methods); i++) {
        size_t m = strlen(methods[i]);
        /* A prefix of a method counts when that is all we have. */
        size_t k = n < m ? n : m;
        if (k >= 3 && memcmp(p, methods[i], k) == 0) return true;
    }
    return false;
}

/*
 * Classify the first bytes: NULL if they are (the start of) a TLS handshake
 * record or too few to tell, else the reason for whatever else they are.
 */
static const char *tls_reason_from_first_bytes(const uint8_t *p, size_t n)
{
    if (!p || n == 0) return NULL;
    /* TLS handshake record: type 22, record version 3.0-3.4 (3.0/3.1 appear
     * in ClientHello records of every TLS version). */
    bool tls_prefix = p[0] == 0x16 && (n < 2 || p[1] == 0x03) && (n < 3 || p[2] <= 0x04);
    if (tls_prefix) return NULL;
    /* SSLv2-format ClientHello: 2-byte length with the top bit set, then
     * message type 1. That is a (very old) TLS client, refused on version. */
    if (n >= 3 && (p[0] & 0x80) && p[2] == 0x01) return "protocol_version";
    /* A PROXY protocol header (v1 "PROXY " or the v2 signature's first 6
     * bytes): a load balancer writes one, but this listener has no
     * proxy_protocol. Named so the operator sees the mismatch at once. */
    static const uint8_t v2_sig[6] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D};
    if (n >= 6 && (memcmp(p, "PROXY ", 6) == 0 || memcmp(p, v2_sig, 6) == 0))
        return "proxy_protocol";
    if (bs_tls_looks_like_plaintext_kafka(p, n)) return "plaintext_kafka";
    if (tls_looks_like_http(p, n)) return "http_request";
    /* A Kafka frame whose first 8 bytes have not all arrived yet. */
    if (n < 8 && p[0] == 0x00) return "plaintext_kafka";
    return "not_tls";
}

/* Map a certificate verification result to a reason (NULL for X509_V_OK). */
static const char *tls_reason_from_verify(long v)
{
    switch (v) {
    case X509_V_OK:
        return NULL;
    case X509_V_ERR_CERT_REVOKED:
        return "certificate_revoked";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "certificate_expired";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH:
        return "hostname_mismatch";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
        return "unknown_ca";
    default:
        return tls_verify_error_is_crl(v) ? "crl_error" : "bad_certificate";
    }
}

/*
 * Map one OpenSSL SSL-library reason code. `verify_reason` is the reason
 * from the certificate verification result, used when OpenSSL only says
 * "certificate verify failed". NULL if the code is not one we classify.
 */
static const char *tls_reason_from_ssl_code(int r, const char *verify_reason)
{
    switch (r) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_INAPPROPRIATE_FALLBACK:
    case SSL_R_TLSV1_ALERT_INAPPROPRIATE_FALLBACK:
        return "protocol_version";
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
        return "no_shared_cipher";
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        return "handshake_failure";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return "unknown_ca";
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
    case SSL_R_BAD_SIGNATURE:
    case SSL_R_NO_CERTIFICATES_RETURNED:
        return "bad_certificate";
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        return "certificate_revoked";
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        return "certificate_expired";
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return "certificate_required";
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return verify_reason ? verify_reason : "bad_certificate";
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        return "http_request";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_UNEXPECTED_MESSAGE:
        return "not_tls";
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return "eof";
    case SSL_R_NO_RENEGOTIATION:
    case SSL_R_TLSV1_ALERT_NO_RENEGOTIATION:
        return "renegotiation";
    default:
        return NULL;
    }
}

/*
 * Classify a failed handshake; see tls.h for the contract and docs/tls.md
 * for the reason list. Order: what the first bytes say (a non-TLS peer makes
 * OpenSSL report record-layer noise), then OpenSSL's error queue (earliest
 * classifiable error wins), then the verify result, then the I/O outcome.
 * Always empties this thread's error queue.
 */
const char *bs_tls_failure_reason(SSL *ssl, int ssl_error, const uint8_t *first_bytes,
                                  size_t n_first)
{
    const char *reason = tls_reason_from_first_bytes(first_bytes, n_first);
    const char *verify_reason = ssl ? tls_reason_from_verify(SSL_get_verify_result(ssl)) : NULL;
    bool queue_empty = ERR_peek_error() == 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (reason) continue; /* keep draining */
        if (ERR_GET_LIB(e) == ERR_LIB_SSL)
            reason = tls_reason_from_ssl_code(ERR_GET_REASON(e), verify_reason);
    }
    if (reason) return reason;
    if (ssl_error == SSL_ERROR_ZERO_RETURN) return "eof";
    /* SYSCALL with nothing queued: the peer closed or reset the socket. */
    if (ssl_error == SSL_ERROR_SYSCALL && queue_empty) return "eof";
    if (verify_reason && ssl_error == SSL_ERROR_SSL) return verify_reason;
    return "other";
}

/* Bounded writer for the principal text; `full` latches once out of room. */
typedef struct tls_pw {
    char *out;
    size_t cap; /* usable bytes, excluding the NUL */
    size_t len;
    bool full;
} tls_pw;

/* Append n bytes as one unit: all of them or none (keeps escapes whole). */
static void tls_pw_put(tls_pw *w, const char *s, size_t n)
{
    if (w->full) return;
    if (n > w->cap - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->out + w->len, s, n);
    w->len += n;
}

/*
 * Append a SAN value from the certificate, escaping everything outside
 * printable ASCII and the separators of our format (, ; \ =) as \XX, so a
 * hostile certificate cannot forge extra SAN entries or break log lines.
 */
static void tls_pw_put_escaped(tls_pw *w, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n && !w->full; i++) {
        unsigned char ch = s[i];
        if (ch < 0x20 || ch > 0x7e || ch == ',' || ch == ';' || ch == '\\' || ch == '=') {
            char esc[4];
            snprintf(esc, sizeof esc, "\\%02X", ch);
            tls_pw_put(w, esc, 3);
        } else {
            tls_pw_put(w, (const char *)&ch, 1);
        }
    }
}

/* Append an RFC 2253 subject, keeping each escape ("\\," or "\\2C") whole. */
static void tls_pw_put_subject(tls_pw *w, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && !w->full) {
        size_t unit = 1;
        if (s[i] == '\\' && i + 1 < n) {
            unit = (i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
                    isxdigit((unsigned char)s[i + 2]))
                       ? 3
                       : 2;
        }
        tls_pw_put(w, s + i, unit);
        i += unit;
    }
}

/* Render subject and SANs into w; stops (w->full) at the first unit that does not fit. */
static void tls_render_principal(tls_pw *w, const char *subj, size_t subj_len,
                                 const GENERAL_NAMES *sans)
{
    tls_pw_put_subject(w, subj, subj_len);
    bool first = true;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !w->full; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        const char *label = NULL;
        const ASN1_STRING *val = NULL;
        char ipbuf[INET6_ADDRSTRLEN];
        switch (gn->type) {
        case GEN_DNS:
            label = "DNS:";
            val = gn->d.dNSName;
            break;
        case GEN_URI:
            label = "URI:";
            val = gn->d.uniformResourceIdentifier;
            break;
        case GEN_EMAIL:
            label = "email:";
            val = gn->d.rfc822Name;
            break;
        case GEN_IPADD:
            label = "IP:";
            val = gn->d.iPAddress;
            break;
        default:
            continue; /* otherName, dirName, ...: not part of the principal */
        }
        const unsigned char *d = ASN1_STRING_get0_data(val);
        int dl = ASN1_STRING_length(val);
        if (gn->type == GEN_IPADD) {
            int af = dl == 4 ? AF_INET : dl == 16 ? AF_INET6 : 0;
            if (!af || !inet_ntop(af, d, ipbuf, sizeof ipbuf)) continue; /* malformed IP SAN */
        }
        tls_pw_put(w, first ? ";SAN=" : ",", first ? 5 : 1);
        first = false;
        tls_pw_put(w, label, strlen(label));
        if (gn->type == GEN_IPADD)
            tls_pw_put(w, ipbuf, strlen(ipbuf));
        else
            tls_pw_put_escaped(w, d, dl > 0 ? (size_t)dl : 0);
    }
}

/* Principal text of one certificate; see tls.h. */
bs_status bs_tls_cert_principal(X509 *cert, char *out, size_t outlen)
{
    static const char ellipsis[] = "...";
    const size_t elen = sizeof ellipsis - 1;
    bs_status st = BS_OK;
    BIO *mem = NULL;
    GENERAL_NAMES *sans = NULL;

    if (!out || outlen == 0) return BS_E_STATE;
    out[0] = '\0';
    if (!cert) return BS_E_STATE;
    mem = BIO_new(BIO_s_mem());
    if (!mem) {
        st = BS_E_NOMEM;
        goto out;
    }
    /* RFC 2253 flags escape specials, control and non-ASCII bytes, so the
     * text is printable ASCII and unambiguous. */
    if (X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
        st = BS_E_NOMEM;
        goto out;
    }
    char *subj = NULL;
    long subj_len = BIO_get_mem_data(mem, &subj);
    if (subj_len < 0) subj_len = 0;
    sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

    tls_pw w = {.out = out, .cap = outlen - 1, .len = 0, .full = false};
    tls_render_principal(&w, subj, (size_t)subj_len, sans);
    if (w.full) {
        /* Render again leaving room for the marker, so the cut falls on a
         * unit boundary and the result visibly ends in "...". */
        w = (tls_pw){.out = out, .cap = outlen - 1 > elen ? outlen - 1 - elen : 0};
        tls_render_principal(&w, subj, (size_t)subj_len, sans);
        size_t m = outlen - 1 - w.len < elen ? outlen - 1 - w.len : elen;
        memcpy(out + w.len, ellipsis, m);
        w.len += m;
        st = BS_E_TOO_LARGE;
    }
    out[w.len] = '\0';
out:
    ERR_clear_error();
    GENERAL_NAMES_free(sans);
    BIO_free(mem);
    return st;
}

/* Principal of the connection's verified peer; see tls.h. */
bs_status bs_tls_peer_principal(SSL *ssl, char *out, size_t outlen)
{
    if (out && outlen) out[0] = '\0';
    if (!ssl) return BS_E_STATE;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert) return BS_E_NOT_FOUND;
    if (SSL_get_verify_result(ssl) != X509_V_OK) return BS_E_CRYPTO;
    return bs_tls_cert_principal(cert, out, outlen);
}
