/*
 * crypto_config.h - the configuration crypto/ owns: the `encryption`
 * section (keyring, topic rules, data-key lifetimes, decrypt cache), its
 * option tables and the topic-rule lookup (crypto/encryption_config.c).
 */
#ifndef BROKERSIDE_CRYPTO_CONFIG_H
#define BROKERSIDE_CRYPTO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/confmap.h"

typedef enum bs_kms_type {
    BS_KMS_LOCAL = 0, /* master key file (bs_keyring_local_open) */
    BS_KMS_AWS = 1,   /* AWS KMS JSON API or a compatible endpoint */
} bs_kms_type;

/* One `encryption.topics[i]` rule. */
typedef struct bs_topic_rule {
    char *match; /* fnmatch(3) pattern (flags 0) over the topic name */
    char *key;   /* key reference: envelope keyref / KMS KeyId */
} bs_topic_rule;

/* What the daemon logs (WARN) at start when !cfg->encryption.enabled; one
 * %s: the config file path. Kept here so every entry point says the same. */
#define BS_CONFIG_ENCRYPTION_OFF_FMT                                                               \
    "encryption at rest is OFF: no \"encryption\" section in %s; records reach the broker in "     \
    "plaintext"


typedef struct bs_encryption_config {
    bool enabled; /* false when the section is absent or null: the daemon must log
                     "encryption at rest is OFF" at start (docs/configuration.md) */
    bs_kms_type kms_type;
    char *key_file;        /* local: master key file (exists, no group/other permission) */
    char *kms_region;      /* aws: resolved (kms.region, else aws.region) */
    char *kms_endpoint;    /* aws: URL override or NULL for https://kms.<region>.amazonaws.com */
    bs_topic_rule *topics; /* in file order: the first match wins */
    size_t n_topics;
    bool reject_unmatched;    /* unmatched_topics "reject" (true) or "plaintext" (false, default) */
    uint64_t dek_max_records; /* default 1000000, 1..2^28 (BS_DEK_HARD_MAX_RECORDS) */
    uint64_t dek_max_age_s;   /* default 3600, 1..86400 */
    uint32_t decrypt_cache_max_entries; /* default 10000 */
    uint64_t decrypt_cache_ttl_s;       /* default 3600 */
} bs_encryption_config;

/* crypto/encryption_config.c: `encryption` (off when absent or null). */
extern const bs_conf_section bs_encryption_conf;
/* `encryption.kms` by type (its `type` key picks one). */
extern const bs_conf_section bs_kms_local_conf;
extern const bs_conf_section bs_kms_aws_conf;

/* The rule of `enc` for `topic` (len bytes, need not be NUL-terminated):
 * the first rule whose pattern matches, or NULL when none does (the caller
 * then applies reject_unmatched). Thread-safe: reads `enc` only. */
const bs_topic_rule *bs_config_topic_rule(const bs_encryption_config *enc, const char *topic,
                                          size_t len);


#endif
