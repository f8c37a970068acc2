/*
 * sigv4.h - AWS Signature Version 4 (header signing and presigned query signing).
 *
 * Pure functions over a described request: no I/O, no clock (the caller
 * passes the signing time). The signer produces the canonical request, the
 * string to sign, the signed-headers list, the hex signature and the
 * Authorization header value; the caller sends the headers listed in
 * bs_sigv4_result (X-Amz-Date, Authorization and, when they apply,
 * X-Amz-Security-Token and X-Amz-Content-SHA256) with the request.
 *
 * Paths: by default the path (as on the request line, i.e. already
 * percent-encoded once) has its dot segments and duplicate slashes removed
 * and is percent-encoded again ("double encoding"), as every service except
 * S3 expects. S3 (bs_sigv4_options_init with service "s3") uses the path
 * as-is: it must already be encoded exactly once.
 *
 * Secrets: the secret key is only read; derived keys live in a
 * bs_sigv4_key_cache that is wiped on replacement and by
 * bs_sigv4_key_cache_clear().
 */
#ifndef BROKERSIDE_SIGV4_H
#define BROKERSIDE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "brokerside/status.h"

#define BS_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

typedef struct bs_sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" unless temporary (session) credentials */
} bs_sigv4_credentials;

typedef struct bs_sigv4_header {
    const char *name;
    const char *value; /* may contain line breaks (folded values) and runs of spaces */
} bs_sigv4_header;

typedef struct bs_sigv4_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* request-line path without the query, e.g. "/bucket/a%20b" */
    const char *query;  /* request-line query after '?', NULL or "" when none */
    /* Headers to sign, Host included. Names are case-insensitive; repeated
     * names are joined with commas in order. Must not contain Authorization or
     * X-Amz-Date (the signer owns those). */
    const bs_sigv4_header *headers;
    size_t n_headers;
    const uint8_t *body; /* hashed unless payload_hash is set */
    size_t body_len;
    /* Optional precomputed payload hash (64 lower-case hex digits) or
     * BS_SIGV4_UNSIGNED_PAYLOAD; NULL = SHA-256 of body. */
    const char *payload_hash;
} bs_sigv4_request;

/* A one-entry cache of the derived signing key, keyed by date, region,
 * service and a digest of the secret key. Owned by the caller (one per
 * thread or per client); zero-initialise it or call bs_sigv4_key_cache_clear. */
typedef struct bs_sigv4_key_cache {
    bool valid;
    char date[9];
    char region[64];
    char service[64];
    uint8_t secret_digest[32];
    uint8_t key[32];
    uint64_t hits, misses; /* for tests and metrics */
} bs_sigv4_key_cache;

typedef struct bs_sigv4_options {
    const char *region;
    const char *service;
    time_t time;             /* signing time, UTC seconds */
    bool normalize_path;     /* remove dot segments and empty segments (not for S3) */
    bool double_encode_path; /* percent-encode the path again (not for S3) */
    bool add_content_sha256; /* send and sign X-Amz-Content-SHA256 (S3 requires it) */
    /* Sign without the session token and only add it afterwards (a few STS
     * flows; the test suite's "omit_session_token"). */
    bool omit_session_token_from_signature;
    bs_sigv4_key_cache *cache; /* optional */
} bs_sigv4_options;

typedef struct bs_sigv4_result {
    char amz_date[17];     /* "YYYYMMDDTHHMMSSZ": send as X-Amz-Date (header signing) */
    char payload_hash[65]; /* hex SHA-256 or UNSIGNED-PAYLOAD: send as X-Amz-Content-SHA256 when
                              add_content_sha256 */
    char signature[65];    /* lower-case hex */
    char *canonical_request;
    char *string_to_sign;
    char *signed_headers;  /* "host;x-amz-date" */
    char *authorization;   /* header signing: full Authorization header value; presign: NULL */
    char *presigned_query; /* presign: the complete query to send (X-Amz-Signature included); else
                              NULL */
} bs_sigv4_result;

/* Fill `o` with the defaults for `service`: path normalisation and double
 * encoding on, except for "s3" (both off, add_content_sha256 on). `region`
 * and `service` are borrowed and must outlive every use of `o`. */
void bs_sigv4_options_init(bs_sigv4_options *o, const char *region, const char *service, time_t t);

/* Header signing. On BS_OK `out` holds malloc'd strings the caller releases
 * with bs_sigv4_result_free (also call it after an error: it is safe on a
 * partially filled result). Errors: BS_E_CONFIG for missing credentials,
 * region or service; BS_E_MALFORMED for a bad path, query, header name or a
 * header owned by the signer; BS_E_NOMEM; BS_E_CRYPTO. */
bs_status bs_sigv4_sign(const bs_sigv4_request *req, const bs_sigv4_credentials *creds,
                        const bs_sigv4_options *opts, bs_sigv4_result *out) BS_WUR;

/* Query signing (presigned URL) valid for `expires_s` seconds (1..604800).
 * The request's query must not already carry X-Amz-* signing parameters.
 * On BS_OK out->presigned_query is the full query string to send. Same
 * ownership and errors as bs_sigv4_sign. */
bs_status bs_sigv4_presign(const bs_sigv4_request *req, const bs_sigv4_credentials *creds,
                           const bs_sigv4_options *opts, unsigned expires_s,
                           bs_sigv4_result *out) BS_WUR;

/* Release the strings in `r` (wiping none of them: none is secret) and zero it. */
void bs_sigv4_result_free(bs_sigv4_result *r);

/* Wipe the cached signing key and mark the cache empty. */
void bs_sigv4_key_cache_clear(bs_sigv4_key_cache *c);

/* Lower-case hex SHA-256 of `len` bytes into out[65] (NUL-terminated). */
bs_status bs_sigv4_sha256_hex(const void *data, size_t len, char out[65]) BS_WUR;

#endif
