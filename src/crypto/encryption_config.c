/*
 * encryption_config.c - the `encryption` section: the KMS (a local master
 * key file or AWS KMS), the topic rules and the data-key limits, and the
 * rule lookup the Produce path uses.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "brokerside/aws_config.h"
#include "brokerside/crypto_config.h"
#include "brokerside/envelope.h"
#include "brokerside/log.h"

#define CFG_MAX_TOPIC_RULES 1024

/* Check a topic glob. Returns NULL when usable, else a static reason that
 * follows the quoted value (it starts with a space). */
static const char *check_glob(const char *g)
{
    size_t n = strlen(g);
    if (n > 249 * 2 + 16) return " is too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)g[i];
        if (ch == '\\') {
            if (i + 1 >= n) return " ends with a lone backslash";
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
            if (j >= n) return " has a '[' without its closing ']'";
            i = j;
            continue;
        }
        /* Kafka topic names use only [A-Za-z0-9._-]; anything else cannot match. */
        if (!isalnum(ch) && !strchr("._-*?", ch))
            return " contains a character that no Kafka topic name has (allowed: A-Z a-z 0-9 . _ "
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
    if (n > BS_ENVELOPE_MAX_KEYREF) return "is longer than 1024 bytes";
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

/* `kms` of type "local": the master key file. */
static void check_kms_local(bs_conf *c, const cJSON *k, const char *path, void *base)
{
    const bs_encryption_config *e = base;
    (void)path;
    const cJSON *kf = k ? bs_conf_member(k, "key_file") : NULL;
    char *want = (!e->key_file && kf && cJSON_IsString(kf) && kf->valuestring[0])
                     ? bs_conf_resolve_path(c, kf->valuestring)
                     : NULL;
    struct stat sb;
    /* The usual first-run mistake: say how to make the file. */
    if (want && stat(want, &sb) != 0 && errno == ENOENT)
        bs_log(BS_LOG_INFO, "config", "%s: create the master key with: brokerside keygen %s",
               c->file, want);
    free(want);
}

static const bs_conf_opt kms_local_rows[] = {
    {.name = "type", .type = BS_CONF_CUSTOM, .flags = BS_CONF_REQUIRED, .doc = "string"},
    {.name = "key_file", .type = BS_CONF_SECRET_FILE, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_encryption_config, key_file)},
};
const bs_conf_section bs_kms_local_conf =
    BS_CONF_SECTION("encryption.kms (local)", kms_local_rows, check_kms_local);

static const bs_conf_opt kms_aws_rows[] = {
    {.name = "type", .type = BS_CONF_CUSTOM, .flags = BS_CONF_REQUIRED, .doc = "string"},
    {.name = "region", .type = BS_CONF_CUSTOM, BS_CONF_AT(bs_encryption_config, kms_region),
     .parse = bs_aws_conf_parse_region, .free = bs_conf_free_string,
     .diff = bs_conf_diff_string,
     .required = "no region: set encryption.kms.region, aws.region or AWS_REGION",
     .doc = "string"},
    {.name = "endpoint", .type = BS_CONF_CUSTOM, BS_CONF_AT(bs_encryption_config, kms_endpoint),
     .parse = bs_aws_conf_parse_endpoint, .free = bs_conf_free_string,
     .diff = bs_conf_diff_string, .doc = "string"},
    {.name = "allow_insecure_endpoint", .type = BS_CONF_CUSTOM, .def = "false",
     .doc = "boolean"},
};
const bs_conf_section bs_kms_aws_conf =
    BS_CONF_SECTION("encryption.kms (aws)", kms_aws_rows, NULL);

/* CUSTOM `kms` (required): its `type` picks the rows. */
static void parse_kms(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                      void *base)
{
    static const char *const types[] = {"local", "aws", NULL};
    bs_encryption_config *e = base;
    (void)o;
    (void)path;
    if (!obj) return;
    const cJSON *k = bs_conf_member(obj, "kms");
    if (!k) {
        bs_conf_err(c, "encryption.kms",
                    "is required: {\"type\": \"local\", \"key_file\": \"master.key\"} or "
                    "{\"type\": \"aws\"}");
        return;
    }
    if (!cJSON_IsObject(k)) {
        bs_conf_err(c, "encryption.kms", "expected an object, got %s", bs_conf_type_name(k));
        return;
    }
    int t = -1;
    if (!bs_conf_member(k, "type"))
        bs_conf_err(c, "encryption.kms.type", "is required: \"local\" or \"aws\"");
    bs_conf_get_enum(c, k, "type", "encryption.kms", types, &t);
    if (t == BS_KMS_LOCAL) {
        e->kms_type = BS_KMS_LOCAL;
        bs_conf_walk1(c, k, "encryption.kms", &bs_kms_local_conf, e);
    } else if (t == BS_KMS_AWS) {
        e->kms_type = BS_KMS_AWS;
        bs_conf_walk1(c, k, "encryption.kms", &bs_kms_aws_conf, e);
    }
}

/* Free the KMS strings. */
static void free_kms(const bs_conf_opt *o, void *base)
{
    (void)o;
    bs_conf_free_section(&bs_kms_local_conf, base);
    bs_conf_free_section(&bs_kms_aws_conf, base);
}

/* SIGHUP: any change of the KMS needs a restart (the keyring is built once). */
static bool diff_kms(const bs_conf_opt *o, const void *a, const void *b, const char *label,
                     char *what, size_t whatlen)
{
    const bs_encryption_config *x = a, *y = b;
    (void)o;
    bool same = x->kms_type == y->kms_type &&
                !bs_conf_restart_diff(&bs_kms_local_conf, a, b, NULL, NULL, 0) &&
                !bs_conf_restart_diff(&bs_kms_aws_conf, a, b, NULL, NULL, 0);
    if (!same) bs_conf_list_add(what, whatlen, label);
    return !same;
}

static const bs_conf_opt rule_rows[] = {
    {.name = "match", .type = BS_CONF_STRING, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_topic_rule, match), .check_str = check_glob,
     .required = "is required (a topic glob such as \"payments.*\" or \"*\")"},
    {.name = "key", .type = BS_CONF_STRING, .flags = BS_CONF_REQUIRED, BS_CONF_AT(bs_topic_rule, key),
     .required = "is required (the key reference for matching topics)"},
};
static const bs_conf_section rule_conf = BS_CONF_SECTION("encryption.topics[i]", rule_rows, NULL);

/* CUSTOM `topics` (required): rules in file order, the first match wins. */
static void parse_topics(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                         void *base)
{
    bs_encryption_config *e = base;
    char p[BS_CONF_PATH_MAX], pr[BS_CONF_PATH_MAX], q[160];
    (void)o;
    (void)path;
    if (!obj) return;
    const cJSON *t = bs_conf_member(obj, "topics");
    if (!t) {
        bs_conf_err(c, "encryption.topics",
                    "is required: at least one rule such as {\"match\": \"*\", \"key\": "
                    "\"...\"}");
        return;
    }
    if (!cJSON_IsArray(t)) {
        bs_conf_err(c, "encryption.topics", "expected an array of {match, key} rules, got %s",
                    bs_conf_type_name(t));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(t);
    if (n == 0)
        bs_conf_err(c, "encryption.topics",
                    "must contain at least one rule (remove the encryption section to turn "
                    "encryption off)");
    else if (n > CFG_MAX_TOPIC_RULES)
        bs_conf_err(c, "encryption.topics", "has %zu rules: at most %d are supported", n,
                    CFG_MAX_TOPIC_RULES);
    else if (!(e->topics = calloc(n, sizeof *e->topics)))
        c->nomem = true;
    size_t i = 0;
    for (const cJSON *it = t->child; it && e->topics; it = it->next, i++) {
        bs_conf_path_index(pr, sizeof pr, "encryption.topics", i);
        if (!cJSON_IsObject(it)) {
            bs_conf_err(c, pr, "expected an object {match, key}, got %s", bs_conf_type_name(it));
            continue;
        }
        bs_topic_rule r = {0};
        bs_conf_walk1(c, it, pr, &rule_conf, &r);
        const char *why;
        if (r.key && (why = check_keyref(r.key, e->kms_type))) {
            bs_conf_path_key(p, sizeof p, pr, "key");
            bs_conf_err(c, p, "%s %s", bs_conf_quote(q, sizeof q, r.key), why);
            bs_conf_free_section(&rule_conf, &r);
        }
        if (!r.match || !r.key) {
            bs_conf_free_section(&rule_conf, &r);
            continue;
        }
        for (size_t j = 0; j < e->n_topics; j++) {
            if (strcmp(e->topics[j].match, "*") == 0) {
                bs_conf_path_key(p, sizeof p, pr, "match");
                bs_conf_err(c, p,
                            "never applies: an earlier rule matches \"*\" (every topic) "
                            "and the first match wins; put \"*\" last");
                break;
            }
            if (strcmp(e->topics[j].match, r.match) == 0) {
                bs_conf_path_key(p, sizeof p, pr, "match");
                bs_conf_err(c, p,
                            "%s repeats an earlier rule: the first match wins, so this "
                            "rule would never apply",
                            bs_conf_quote(q, sizeof q, r.match));
            }
        }
        e->topics[e->n_topics++] = r;
    }
}

/* Free the rules. */
static void free_topics(const bs_conf_opt *o, void *base)
{
    bs_encryption_config *e = base;
    (void)o;
    for (size_t i = 0; i < e->n_topics; i++)
        bs_conf_free_section(&rule_conf, &e->topics[i]);
    free(e->topics);
    e->topics = NULL;
    e->n_topics = 0;
}

static const bs_conf_opt dek_rows[] = {
    {.name = "max_records", .type = BS_CONF_INT, BS_CONF_AT(bs_encryption_config, dek_max_records),
     .min = 1, .max = (long long)BS_DEK_HARD_MAX_RECORDS, .def = "1000000"},
    {.name = "max_age_s", .type = BS_CONF_INT, BS_CONF_AT(bs_encryption_config, dek_max_age_s),
     .min = 1, .max = 86400, .def = "3600"},
};
static const bs_conf_section dek_conf = BS_CONF_SECTION("encryption.dek", dek_rows, NULL);

static const bs_conf_opt cache_rows[] = {
    {.name = "max_entries", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     .restart_label = "encryption.decrypt_cache",
     BS_CONF_AT(bs_encryption_config, decrypt_cache_max_entries), .min = 1, .max = 10000000,
     .def = "10000"},
    {.name = "ttl_s", .type = BS_CONF_INT, .flags = BS_CONF_RESTART,
     .restart_label = "encryption.decrypt_cache", BS_CONF_AT(bs_encryption_config, decrypt_cache_ttl_s),
     .min = 1, .max = 86400, .def = "3600"},
};
static const bs_conf_section cache_conf =
    BS_CONF_SECTION("encryption.decrypt_cache", cache_rows, NULL);

static const char *const unmatched_names[] = {"plaintext", "reject", NULL};

static const bs_conf_opt encryption_rows[] = {
    {.name = "kms", .type = BS_CONF_CUSTOM, .flags = BS_CONF_REQUIRED | BS_CONF_RESTART, .parse = parse_kms, .free = free_kms,
     .diff = diff_kms, .doc = "object"},
    {.name = "unmatched_topics", .type = BS_CONF_ENUM,
     BS_CONF_AT(bs_encryption_config, reject_unmatched), .choices = unmatched_names,
     .def = "plaintext"},
    {.name = "topics", .type = BS_CONF_CUSTOM, .flags = BS_CONF_REQUIRED, .parse = parse_topics,
     .free = free_topics, .sub = &rule_conf, .doc = "array"},
    {.name = "dek", .type = BS_CONF_OBJECT, .sub = &dek_conf},
    {.name = "decrypt_cache", .type = BS_CONF_OBJECT, .sub = &cache_conf},
};

const bs_conf_section bs_encryption_conf =
    BS_CONF_SECTION("encryption", encryption_rows, NULL);

/* See crypto_config.h: first match wins. */
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

