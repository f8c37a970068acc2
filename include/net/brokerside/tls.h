/*
 * tls.h - TLS contexts (OpenSSL 3) for termination and origination.
 *
 * A bs_tls_ctx wraps one SSL_CTX built from a config section. Policy is
 * enforced here and nowhere else: TLS 1.2 minimum, ECDHE+AEAD TLS 1.2
 * ciphers by default, no compression, no renegotiation, session resumption
 * on (server-side cache and tickets), client certificate verification per
 * `client_auth` against the CA file and optional CRL.
 *
 * Reload: a bs_tls_slot holds the current context of a listener. Workers
 * take a reference when they accept (bs_tls_slot_acquire) and SSL objects
 * keep their SSL_CTX alive on their own, so swapping in a new context never
 * disturbs open connections.
 */
#ifndef BROKERSIDE_TLS_H
#define BROKERSIDE_TLS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "brokerside/net_config.h"
#include "brokerside/status.h"

/* Default TLS 1.2 cipher list: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305. */
#define BS_TLS_DEFAULT_CIPHERS                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define BS_TLS_DEFAULT_CIPHERSUITES                                                                \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/*
 * The TLS 1.2 cipher policy: every TLS 1.2 cipher a context enables must use
 * ECDHE key exchange, authenticate the server and be an AEAD. Returns how
 * many of ctx's ciphers break it and writes the first four names,
 * comma-separated, into names[nameslen]. bs_tls_*_ctx_new refuse a list
 * that breaks it (BS_E_CONFIG); the config loader reports it per key.
 */
size_t bs_tls_cipher_policy_violations(SSL_CTX *ctx, char *names, size_t nameslen);
/* The rule for one cipher (true for every TLS 1.3 suite); the context floor
 * (security level, this rule) is applied by bs_tls_*_ctx_new after the
 * cipher strings, so neither the file nor openssl.cnf can lower it. */
bool bs_tls_cipher_allowed(const SSL_CIPHER *c);
/* The TLS 1.3 suites OpenSSL implements (RFC 8446), all AEAD; NULL-terminated.
 * A `ciphersuites` list may name only these. */
extern const char *const bs_tls13_suites[];

/*
 * Build a server context from `cfg`. On failure returns BS_E_CONFIG or
 * BS_E_CRYPTO (BS_E_NOMEM) and writes a one-line reason (file name and
 * OpenSSL's error) into err[errlen]; *out is then NULL. The caller owns *out
 * (SSL_CTX_free). min_version 0 means TLS 1.2; anything below TLS 1.2 is
 * refused. Blocking file I/O: call from the control thread, not a worker.
 */
bs_status bs_tls_server_ctx_new(const bs_tls_server_config *cfg, SSL_CTX **out, char *err,
                                size_t errlen) BS_WUR;
/* Same for origination towards an upstream (verification on unless
 * cfg->verify is false). Each connection must then go through
 * bs_tls_client_prepare: with verification on, a connection that was never
 * given an expected name fails its handshake (hostname_mismatch). */
bs_status bs_tls_client_ctx_new(const bs_tls_client_config *cfg, SSL_CTX **out, char *err,
                                size_t errlen) BS_WUR;

/*
 * Prepare one origination connection: sets SNI and the name the upstream's
 * certificate must match. The name is cfg->server_name, or `default_host`
 * (normally the upstream host from the config) when that is NULL. An IP
 * literal is matched against the certificate's IP SANs and sent without SNI
 * (RFC 6066 forbids IP literals there); a DNS name is matched by
 * SSL_set1_host (no partial wildcards) and sent as SNI. Call after SSL_new,
 * before the handshake. BS_E_CONFIG if there is no name while verification is
 * on; BS_E_NOMEM / BS_E_CRYPTO if OpenSSL refuses the name.
 */
bs_status bs_tls_client_prepare(SSL *ssl, const bs_tls_client_config *cfg,
                                const char *default_host) BS_WUR;

/* The current context of one listener, swappable at run time. */
typedef struct bs_tls_slot {
    pthread_mutex_t lock;
    SSL_CTX *ctx;
} bs_tls_slot;

/* Initialise the slot with `ctx` (ownership taken; may be NULL). */
void bs_tls_slot_init(bs_tls_slot *slot, SSL_CTX *ctx);
/* Return the current context with a reference the caller must SSL_CTX_free()
 * (NULL if the slot is empty). Thread-safe. */
SSL_CTX *bs_tls_slot_acquire(bs_tls_slot *slot);
/* Install `ctx` (ownership taken); the old one is released once unused:
 * SSL objects made from it keep it alive. Thread-safe. */
void bs_tls_slot_swap(bs_tls_slot *slot, SSL_CTX *ctx);
/* Release the slot's context and its mutex; no other thread may use it. */
void bs_tls_slot_destroy(bs_tls_slot *slot);

/*
 * Classify a failed handshake into a short, stable reason used in logs and as
 * the `reason` label of brokerside_tls_handshake_failures_total, one of
 * "protocol_version", "no_shared_cipher", "handshake_failure", "unknown_ca",
 * "bad_certificate", "certificate_required", "certificate_revoked",
 * "certificate_expired", "hostname_mismatch", "crl_error", "renegotiation",
 * "plaintext_kafka", "http_request", "proxy_protocol" (a PROXY header on a
 * listener without proxy_protocol), "not_tls", "eof", "other" (and
 * BS_TLS_REASON_TIMEOUT, which only the caller can know); see docs/tls.md.
 * Call it right after the failing SSL call, on the same thread.
 * `ssl` may be NULL; `ssl_error` is SSL_get_error's result; `first_bytes`
 * are the first bytes the peer sent (peek them before the handshake; may be
 * NULL/0, 8 are enough). Returns a static string. Consumes OpenSSL's error
 * queue for this thread.
 */
const char *bs_tls_failure_reason(SSL *ssl, int ssl_error, const uint8_t *first_bytes,
                                  size_t n_first);

/* Reason for a handshake the caller aborted because it took too long
 * (bs_tls_failure_reason cannot know about timers). */
#define BS_TLS_REASON_TIMEOUT "timeout"

/* True if the bytes look like the start of a plaintext Kafka request
 * (int32 size 8..100 MiB, then API key 0..80 and version 0..20) rather than
 * a TLS record. Needs at least 8 bytes; p may be NULL. */
bool bs_tls_looks_like_plaintext_kafka(const uint8_t *p, size_t n);

/*
 * The peer certificate's identity as the connection principal:
 * "CN=client,O=Example" style RFC 2253 subject, followed by
 * ";SAN=DNS:a,IP:1.2.3.4" when SANs exist (types DNS, IP, URI, email, in
 * certificate order). Returns BS_E_NOT_FOUND if the peer sent no certificate,
 * BS_E_CRYPTO if its certificate did not verify (a principal is never derived
 * from an unverified certificate), BS_E_TOO_LARGE if truncated (see
 * bs_tls_cert_principal). Writes at most outlen-1 bytes plus NUL.
 */
bs_status bs_tls_peer_principal(SSL *ssl, char *out, size_t outlen) BS_WUR;
/*
 * The principal text of one certificate (same format as above). Used by
 * bs_tls_peer_principal; public for logging and tests. Returns BS_OK, or
 * BS_E_TOO_LARGE when the text did not fit: out then holds the longest prefix
 * that ends on a whole character or escape, followed by "...", so a truncated
 * principal can never be mistaken for a complete one. BS_E_NOMEM on
 * allocation failure. `cert` is borrowed.
 */
bs_status bs_tls_cert_principal(X509 *cert, char *out, size_t outlen) BS_WUR;
/* A buffer of this size holds any ordinary principal (subject plus SANs). */
#define BS_TLS_PRINCIPAL_MAX 1024

#endif
