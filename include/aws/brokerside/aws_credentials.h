/*
 * aws_credentials.h - AWS credentials and the provider chain.
 *
 * Chain order (first source that yields a complete key pair wins):
 *   1. explicit: access key id + secret (+ token) from the configuration
 *   2. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   3. shared files for the profile (config profile, else AWS_PROFILE, else
 *      "default"): the credentials file (AWS_SHARED_CREDENTIALS_FILE, default
 *      ~/.aws/credentials, `[name]` sections) and then the config file
 *      (AWS_CONFIG_FILE, default ~/.aws/config, `[profile name]` / `[default]`)
 *   4. ECS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *      (on 169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) as the Authorization header
 *   5. EC2 instance metadata, IMDSv2 only (PUT token, GET role, GET
 *      credentials); endpoint AWS_EC2_METADATA_SERVICE_ENDPOINT, default
 *      http://169.254.169.254; disabled by AWS_EC2_METADATA_DISABLED=true
 *
 * Caching and refresh: the provider keeps the last credentials. Credentials
 * with an expiry are re-resolved when less than `refresh_ahead_s` (default
 * 300) remain; bs_aws_credentials_invalidate() forces re-resolution on the
 * next get (after the server rejected a signature or a token). If a refresh
 * fails while the cached credentials are still valid, those are returned.
 *
 * Threads: a provider may be shared; every call takes its mutex. The ECS
 * and IMDS fetches are blocking HTTP calls with short timeouts (connect 1 s,
 * total 3 s by default), made at most once per refresh; with
 * bs_aws_credentials_start_refresher they happen on a background thread
 * ahead of expiry instead of inside get().
 *
 * Secrets: every copy of a secret key or token is wiped with
 * OPENSSL_cleanse when replaced or freed; nothing here logs them.
 */
#ifndef BROKERSIDE_AWS_CREDENTIALS_H
#define BROKERSIDE_AWS_CREDENTIALS_H

#include <stdbool.h>
#include <time.h>

#include "brokerside/status.h"

typedef struct bs_aws_credentials {
    char *access_key_id;     /* malloc'd */
    char *secret_access_key; /* malloc'd, secret */
    char *session_token;     /* malloc'd, secret; NULL for long-term keys */
    time_t expiration;       /* 0 = does not expire */
    const char *source;      /* static: "explicit", "environment", "shared-file", "ecs", "imds" */
} bs_aws_credentials;

typedef struct bs_aws_credentials_config {
    const char *access_key_id; /* explicit credentials (all three optional) */
    const char *secret_access_key;
    const char *session_token;
    const char *profile;     /* overrides AWS_PROFILE */
    bool disable_imds;       /* skip EC2 metadata (e.g. not on EC2: avoids a 1 s probe) */
    long connect_timeout_ms; /* metadata endpoints; 0 = 1000 */
    long timeout_ms;         /* metadata endpoints, whole exchange; 0 = 3000 */
    long refresh_ahead_s;    /* 0 = 300 */
} bs_aws_credentials_config;

typedef struct bs_aws_credentials_provider bs_aws_credentials_provider;

/* Wipe and free the strings of `c` and zero it; safe on a zeroed struct. */
void bs_aws_credentials_clear(bs_aws_credentials *c);

/* Deep copy `src` into `dst` (which must be zeroed or cleared). */
bs_status bs_aws_credentials_copy(bs_aws_credentials *dst, const bs_aws_credentials *src) BS_WUR;

/* Create a provider. The config's strings are copied (secrets wiped on
 * free). Nothing is resolved until the first get. BS_E_CONFIG if only one
 * of an explicit key pair is given. Free with bs_aws_credentials_provider_free. */
bs_status bs_aws_credentials_provider_new(const bs_aws_credentials_config *cfg,
                                          bs_aws_credentials_provider **out) BS_WUR;

/* Wipe everything and free the provider; NULL is fine. */
void bs_aws_credentials_provider_free(bs_aws_credentials_provider *p);

/* Current credentials as a deep copy in `out` (caller clears it with
 * bs_aws_credentials_clear). Resolves the chain when nothing is cached, the
 * cache was invalidated, or the cached credentials expire within the
 * refresh window. BS_E_NOT_FOUND when no source has credentials (the log says
 * which sources were tried); BS_E_NOMEM. */
bs_status bs_aws_credentials_get(bs_aws_credentials_provider *p, bs_aws_credentials *out) BS_WUR;

/* Start a background thread that re-resolves expiring credentials a minute
 * before get() would, without holding the provider's lock while it fetches,
 * so that callers of get() (the control loop) normally never wait for ECS or
 * IMDS after the first resolution. Optional; stopped and joined by
 * bs_aws_credentials_provider_free. BS_E_STATE if already started; BS_E_NOMEM
 * if the thread cannot be created. */
bs_status bs_aws_credentials_start_refresher(bs_aws_credentials_provider *p) BS_WUR;

/* Mark the cached credentials stale: the next get resolves the chain again. */
void bs_aws_credentials_invalidate(bs_aws_credentials_provider *p);

/* Parse the text of a shared credentials file (config_style false: sections
 * `[NAME]`) or config file (config_style true: `[profile NAME]`, and
 * `[default]`) and fill `out` (zeroed) with the key pair and optional session
 * token of section `profile` (source "shared-file"). Lines are trimmed;
 * `#` and `;` start comment lines; later keys replace earlier ones.
 * BS_E_NOT_FOUND unless the profile has a non-empty aws_access_key_id and
 * aws_secret_access_key, BS_E_MALFORMED when one of its keys holds a NUL
 * byte, BS_E_NOMEM. Exposed for tests and the fuzz target. */
bs_status bs_aws_credentials_parse_profile(const void *text, size_t len, const char *profile,
                                           bool config_style, bs_aws_credentials *out) BS_WUR;

/* Number of chain resolutions performed so far (tests, metrics). */
unsigned long bs_aws_credentials_resolutions(bs_aws_credentials_provider *p);

#endif
