/*
 * aws_config.h - the configuration aws/ owns: the `aws` section
 * (credentials, HTTP client settings, the region every AWS client falls back
 * to) and the `region` / `endpoint` rows that the KMS keyring and the AWS
 * sinks share (aws/aws_config.c).
 */
#ifndef BROKERSIDE_AWS_CONFIG_H
#define BROKERSIDE_AWS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "brokerside/confmap.h"

/* `aws`: settings shared by the KMS keyring and the AWS sinks. */
typedef struct bs_aws_config {
    char *region;             /* resolved: the file, else AWS_REGION, else AWS_DEFAULT_REGION
                                 at load time; NULL only if none was set and nothing needs it */
    bool region_from_env;     /* true when `region` came from the environment */
    char *profile;            /* shared-config profile; NULL = AWS_PROFILE / "default" */
    char *access_key_id;      /* explicit credentials (discouraged), all NULL by default */
    char *secret_access_key;  /* secret: wiped by bs_config_free, never printed */
    char *session_token;      /* secret: wiped by bs_config_free, never printed */
    uint32_t max_attempts;    /* HTTP attempts per call (1 = no retry); default 4 */
    double connect_timeout_s; /* default 3 */
    double request_timeout_s; /* whole attempt; default 30 */
    char *ca_file;            /* extra trust anchors (PEM) for endpoints; NULL = system store */
} bs_aws_config;

/* aws/aws_config.c: `aws`, and the region / endpoint rows AWS clients share.
 * The section publishes its resolved region as "aws.region" (bs_conf_publish). */
extern const bs_conf_section bs_aws_conf;
/* NULL when `s` is an AWS region name ("us-east-1"), else the reason. */
const char *bs_aws_conf_check_region(const char *s);
/* CUSTOM `region` of an AWS client section: checked; when absent, aws.region
 * (published by the aws section, read earlier); when neither, opt->required
 * is the message. */
void bs_aws_conf_parse_region(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                              const char *path, void *base);
/* CUSTOM `endpoint` (with its sibling `allow_insecure_endpoint`): an
 * http(s) URL override, plain http only to loopback unless allowed. */
void bs_aws_conf_parse_endpoint(bs_conf *c, const bs_conf_opt *o, const cJSON *obj,
                                const char *path, void *base);

#endif
