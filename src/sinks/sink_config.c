/*
 * sink_config.c - the `sinks` section: named sinks, each of a type whose
 * descriptor lists its rows (batch limits are the service API's hard maxima,
 * so larger values would be refused on every call).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "brokerside/aws_config.h"
#include "brokerside/sinks_config.h"
#include "brokerside/aws_sinks.h"

#define CFG_MAX_SINKS 64
#define MIB (1024ll * 1024ll)

/* ---- checks shared by rows ----------------------------------------------- */

/* A {hostname}/{broker_id}/{stream} name template; `strftime_ok` also allows
 * '%' fields (S3 keys). The reason follows the quoted value. */
static const char *check_template(const char *t, bool strftime_ok)
{
    static const char *const names[] = {"{hostname}", "{broker_id}", "{stream}", NULL};
    for (const char *s = t; *s; s++) {
        if (*s == '{') {
            bool known = false;
            for (size_t i = 0; names[i] && !known; i++)
                if (strncmp(s, names[i], strlen(names[i])) == 0) {
                    known = true;
                    s += strlen(names[i]) - 1;
                }
            if (!known) return ": unknown placeholder (use {hostname}, {broker_id}, {stream})";
        } else if (*s == '}') {
            return ": '}' without '{'";
        } else if (*s == '%') {
            if (!strftime_ok) return ": strftime fields are only allowed in S3 prefixes";
            if (s[1] == '\0') return " ends with a lone '%'";
            s++;
        }
    }
    return NULL;
}

static const char *check_name_template(const char *t)
{
    return check_template(t, false);
}

static const char *check_s3_prefix(const char *t)
{
    return check_template(t, true);
}

/* S3 bucket naming: 3..63 of a-z 0-9 . -, starting and ending alphanumeric. */
static const char *check_bucket(const char *str)
{
    size_t bl = strlen(str);
    bool bad = bl < 3 || bl > 63 || !isalnum((unsigned char)str[0]) ||
               !isalnum((unsigned char)str[bl - 1]);
    for (size_t i = 0; i < bl && !bad; i++)
        bad = !islower((unsigned char)str[i]) && !isdigit((unsigned char)str[i]) &&
              str[i] != '.' && str[i] != '-';
    return bad ? " is not a valid S3 bucket name (3 to 63 of a-z 0-9 . -)" : NULL;
}

/* ---- rows ---------------------------------------------------------------- */

static const bs_conf_opt head_rows[] = {
    /* Read by the sinks reader: it picks the type's descriptor. */
    {.name = "type", .type = BS_CONF_CUSTOM, .flags = BS_CONF_REQUIRED, .doc = "string"},
};
static const bs_conf_section head_conf = BS_CONF_SECTION("sinks.NAME", head_rows, NULL);

/* Batch rows: max_events and max_bytes bounded by the API, max_age_ms. */
#define BATCH_ROWS(events_max, events_def, bytes_max, bytes_def)                                   \
    {.name = "max_events", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, max_events), .min = 1, \
     .max = (events_max), .def = #events_def},                                                     \
        {.name = "max_bytes", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, max_bytes),          \
         .min = 1024, .max = (bytes_max), .def = #bytes_def},                                      \
    {                                                                                              \
        .name = "max_age_ms", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, max_age_ms),         \
        .min = 1, .max = 3600000, .def = "1000"                                                    \
    }

static const bs_conf_opt file_batch_rows[] = {BATCH_ROWS(100000, 1000, 64 * MIB, 1048576)};
static const bs_conf_opt cwl_batch_rows[] = {BATCH_ROWS(10000, 10000, 1048576, 1048576)};
static const bs_conf_opt cwm_batch_rows[] = {BATCH_ROWS(1000, 1000, 4 * MIB, 4194304)};
static const bs_conf_opt fh_batch_rows[] = {BATCH_ROWS(500, 500, 4 * MIB, 4194304)};
static const bs_conf_section file_batch_conf =
    BS_CONF_SECTION("sinks.NAME (batch)", file_batch_rows, NULL);
static const bs_conf_section cwl_batch_conf =
    BS_CONF_SECTION("sinks.NAME (batch)", cwl_batch_rows, NULL);
static const bs_conf_section cwm_batch_conf =
    BS_CONF_SECTION("sinks.NAME (batch)", cwm_batch_rows, NULL);
static const bs_conf_section fh_batch_conf =
    BS_CONF_SECTION("sinks.NAME (batch)", fh_batch_rows, NULL);

/* Retries: backoff_max_ms may not be below backoff_initial_ms. */
static void check_retry(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    const bs_sink_config *s = base;
    char p[BS_CONF_PATH_MAX];
    if (!obj || s->backoff_max_ms >= s->backoff_initial_ms) return;
    bs_conf_path_key(p, sizeof p, path, "backoff_max_ms");
    bs_conf_err(c, p, "%" PRIu32 " is below backoff_initial_ms (%" PRIu32 ")", s->backoff_max_ms,
                s->backoff_initial_ms);
}

static const bs_conf_opt retry_rows[] = {
    {.name = "max_attempts", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, max_attempts),
     .min = 0, .max = 1000000, .def = "0"},
    {.name = "backoff_initial_ms", .type = BS_CONF_INT,
     BS_CONF_AT(bs_sink_config, backoff_initial_ms), .min = 1, .max = 600000, .def = "200"},
    {.name = "backoff_max_ms", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, backoff_max_ms),
     .min = 1, .max = 3600000, .def = "30000"},
};
static const bs_conf_section retry_conf = BS_CONF_SECTION("sinks.NAME (retry)", retry_rows, check_retry);

static const bs_conf_opt aws_rows[] = {
    {.name = "region", .type = BS_CONF_CUSTOM, BS_CONF_AT(bs_sink_config, region),
     .parse = bs_aws_conf_parse_region, .free = bs_conf_free_string,
     .diff = bs_conf_diff_string,
     .required = "no region: set it here, in aws.region or in AWS_REGION", .doc = "string"},
    {.name = "endpoint", .type = BS_CONF_CUSTOM, BS_CONF_AT(bs_sink_config, endpoint),
     .parse = bs_aws_conf_parse_endpoint, .free = bs_conf_free_string,
     .diff = bs_conf_diff_string, .doc = "string"},
    {.name = "allow_insecure_endpoint", .type = BS_CONF_CUSTOM, .def = "false",
     .doc = "boolean"},
};
static const bs_conf_section aws_conf = BS_CONF_SECTION("sinks.NAME (AWS)", aws_rows, NULL);

static const bs_conf_opt file_rows[] = {
    {.name = "dir", .type = BS_CONF_DIR, .flags = BS_CONF_REQUIRED, BS_CONF_AT(bs_sink_config, dir),
     .required = "is required: the directory the NDJSON files are written to"},
    {.name = "rotate_bytes", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, rotate_bytes),
     .min = MIB, .max = 1ll << 40, .def = "104857600"},
    {.name = "rotate_age_s", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, rotate_age_s),
     .min = 1, .max = 31 * 86400, .def = "3600"},
    {.name = "gzip", .type = BS_CONF_BOOL, BS_CONF_AT(bs_sink_config, gzip), .def = "false"},
};
static const bs_conf_section file_conf = BS_CONF_SECTION("sinks.NAME (file)", file_rows, NULL);

static const bs_conf_opt cwl_rows[] = {
    {.name = "log_group", .type = BS_CONF_STRING, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_sink_config, log_group), .check_str = check_name_template,
     .required = "is required, e.g. \"/kafka/brokerside\""},
    {.name = "log_stream", .type = BS_CONF_STRING, BS_CONF_AT(bs_sink_config, log_stream),
     .check_str = check_name_template, .def = "{hostname}-{stream}"},
    {.name = "auto_create", .type = BS_CONF_BOOL, BS_CONF_AT(bs_sink_config, auto_create),
     .def = "false"},
};
static const bs_conf_section cwl_conf =
    BS_CONF_SECTION("sinks.NAME (cloudwatch_logs)", cwl_rows, NULL);

static const char *const protocol_names[] = {"json", "query", NULL};
static const bs_conf_opt cwm_rows[] = {
    {.name = "protocol", .type = BS_CONF_ENUM, BS_CONF_AT(bs_sink_config, query_protocol),
     .choices = protocol_names, .def = "json"},
};
static const bs_conf_section cwm_conf =
    BS_CONF_SECTION("sinks.NAME (cloudwatch_metrics)", cwm_rows, NULL);

static const char *const compression_names[] = {"gzip", "none", NULL};
static const int compression_gzip[] = {1, 0};
static const bs_conf_opt s3_rows[] = {
    {.name = "bucket", .type = BS_CONF_STRING, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_sink_config, bucket), .check_str = check_bucket},
    {.name = "prefix", .type = BS_CONF_STRING, BS_CONF_AT(bs_sink_config, prefix),
     .check_str = check_s3_prefix},
    {.name = "compression", .type = BS_CONF_ENUM, BS_CONF_AT(bs_sink_config, gzip),
     .choices = compression_names, .values = compression_gzip, .def = "gzip"},
    {.name = "object_max_bytes", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, object_max_bytes),
     .min = MIB, .max = 5ll * 1024 * MIB, .def = "67108864"},
    {.name = "object_max_age_s", .type = BS_CONF_INT, BS_CONF_AT(bs_sink_config, object_max_age_s),
     .min = 1, .max = 86400, .def = "60"},
    {.name = "multipart_threshold_bytes", .type = BS_CONF_INT,
     BS_CONF_AT(bs_sink_config, multipart_threshold_bytes), .min = 5 * MIB, .max = 5ll * 1024 * MIB,
     .def = "8388608"},
};
static const bs_conf_section s3_conf = BS_CONF_SECTION("sinks.NAME (s3)", s3_rows, NULL);

static const bs_conf_opt fh_rows[] = {
    {.name = "delivery_stream", .type = BS_CONF_STRING, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_sink_config, delivery_stream), .check_str = check_name_template},
};
static const bs_conf_section fh_conf = BS_CONF_SECTION("sinks.NAME (firehose)", fh_rows, NULL);

/* A CloudTrail Lake channel ARN (its account becomes recipientAccountId). */
static const char *check_channel_arn(const char *str)
{
    char region[64], account[13];
    return bs_ctlake_parse_channel_arn(str, region, sizeof region, account) == BS_OK
               ? NULL
               : " is not a CloudTrail Lake channel ARN "
                 "(arn:aws:cloudtrail:REGION:ACCOUNT:channel/ID)";
}

/* PutAuditEvents' externalId: 2 to 1224 of A-Z a-z 0-9 _ + = , . @ : / -. */
static const char *check_external_id(const char *str)
{
    size_t n = strlen(str);
    bool bad = n < 2 || n > 1224;
    for (size_t i = 0; i < n && !bad; i++)
        bad = !isalnum((unsigned char)str[i]) && !strchr("_+=,.@:/-", str[i]);
    return bad ? " is not a valid externalId (2 to 1224 of A-Z a-z 0-9 _ + = , . @ : / -)" : NULL;
}

/* The channel lives in one region: the sink must call that region's endpoint. */
static void check_ctl(bs_conf *c, const cJSON *obj, const char *path, void *base)
{
    const bs_sink_config *s = base;
    char p[BS_CONF_PATH_MAX], region[64], account[13];
    if (!obj || !s->channel_arn || !s->region ||
        bs_ctlake_parse_channel_arn(s->channel_arn, region, sizeof region, account) != BS_OK)
        return;
    if (strcmp(region, s->region) != 0) {
        bs_conf_path_key(p, sizeof p, path, "channel_arn");
        bs_conf_err(c, p, "names region %s but the sink sends to %s: set \"region\": \"%s\"",
                    region, s->region, region);
    }
}

static const bs_conf_opt ctl_rows[] = {
    {.name = "channel_arn", .type = BS_CONF_STRING, .flags = BS_CONF_REQUIRED,
     BS_CONF_AT(bs_sink_config, channel_arn), .check_str = check_channel_arn,
     .required = "is required: the ARN of the CloudTrail Lake channel (an integration of type "
                 "application)"},
    {.name = "external_id", .type = BS_CONF_STRING, BS_CONF_AT(bs_sink_config, external_id),
     .check_str = check_external_id},
};
static const bs_conf_section ctl_conf =
    BS_CONF_SECTION("sinks.NAME (cloudtrail_lake)", ctl_rows, check_ctl);
static const bs_conf_opt ctl_batch_rows[] = {BATCH_ROWS(100, 100, 1000000, 1000000)};
static const bs_conf_section ctl_batch_conf =
    BS_CONF_SECTION("sinks.NAME (batch)", ctl_batch_rows, NULL);

/* ---- type descriptors ---------------------------------------------------- */

const char *const bs_sink_kind_names[] = {"file",     "cloudwatch_logs", "cloudwatch_metrics", "s3",
                                          "firehose", "cloudtrail_lake", NULL};

/* The sections a sink of each type reads, in reading order: the key check
 * and the "did you mean" hint use their union. S3 batches are objects
 * (object_max_*), so it has no batch rows. */
static const bs_conf_section *const file_secs[] = {&head_conf, &file_batch_conf, &retry_conf,
                                                   &file_conf};
static const bs_conf_section *const cwl_secs[] = {&head_conf, &cwl_batch_conf, &retry_conf,
                                                  &aws_conf, &cwl_conf};
static const bs_conf_section *const cwm_secs[] = {&head_conf, &cwm_batch_conf, &retry_conf,
                                                  &aws_conf, &cwm_conf};
static const bs_conf_section *const s3_secs[] = {&head_conf, &retry_conf, &aws_conf, &s3_conf};
static const bs_conf_section *const fh_secs[] = {&head_conf, &fh_batch_conf, &retry_conf,
                                                 &aws_conf, &fh_conf};
static const bs_conf_section *const ctl_secs[] = {&head_conf, &ctl_batch_conf, &retry_conf,
                                                  &aws_conf, &ctl_conf};

static const struct {
    const bs_conf_section *const *secs;
    size_t n;
} sink_types[] = {
    [BS_SINK_FILE] = {file_secs, BS_ARRAY_LEN(file_secs)},
    [BS_SINK_CLOUDWATCH_LOGS] = {cwl_secs, BS_ARRAY_LEN(cwl_secs)},
    [BS_SINK_CLOUDWATCH_METRICS] = {cwm_secs, BS_ARRAY_LEN(cwm_secs)},
    [BS_SINK_S3] = {s3_secs, BS_ARRAY_LEN(s3_secs)},
    [BS_SINK_FIREHOSE] = {fh_secs, BS_ARRAY_LEN(fh_secs)},
    [BS_SINK_CLOUDTRAIL_LAKE] = {ctl_secs, BS_ARRAY_LEN(ctl_secs)},
};

/* See sinks_config.h. */
const bs_conf_section *const *bs_sink_conf_sections(bs_sink_kind kind, size_t *n)
{
    *n = sink_types[kind].n;
    return sink_types[kind].secs;
}

/* See sinks_config.h. */
void bs_sink_conf_defaults(bs_sink_config *s, bs_sink_kind kind)
{
    bs_conf c = {0};
    s->kind = kind;
    bs_conf_walk(&c, NULL, "", sink_types[kind].secs, sink_types[kind].n, s);
}

/* Parse one `sinks.<name>` into *s (zeroed, name set). */
static void parse_sink(bs_conf *c, const cJSON *v, const char *path, bs_sink_config *s)
{
    char p[BS_CONF_PATH_MAX];
    if (!cJSON_IsObject(v)) {
        bs_conf_err(c, path, "expected an object with a \"type\", got %s", bs_conf_type_name(v));
        return;
    }
    int t = -1;
    if (!bs_conf_member(v, "type")) {
        bs_conf_path_key(p, sizeof p, path, "type");
        bs_conf_err(c, p,
                    "is required: \"file\", \"cloudwatch_logs\", \"cloudwatch_metrics\", \"s3\", "
                    "\"firehose\" or \"cloudtrail_lake\"");
    }
    bs_conf_get_enum(c, v, "type", path, bs_sink_kind_names, &t);
    if (t < 0) return;
    s->kind = (bs_sink_kind)t;
    bs_conf_walk(c, v, path, sink_types[t].secs, sink_types[t].n, s);
}

/* See sinks_config.h: an object of named sinks (names become metric labels). */
void bs_sinks_conf_parse(bs_conf *c, const bs_conf_opt *o, const cJSON *obj, const char *path,
                         bs_sink_config **out, size_t *n_out)
{
    char p[BS_CONF_PATH_MAX], q[160];
    (void)o;
    (void)path;
    const cJSON *v = obj ? bs_conf_member(obj, "sinks") : NULL;
    if (!v) return;
    if (!cJSON_IsObject(v)) {
        bs_conf_err(c, "sinks", "expected an object of named sinks, got %s", bs_conf_type_name(v));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n > CFG_MAX_SINKS) {
        bs_conf_err(c, "sinks", "defines %zu sinks: at most %d are supported", n, CFG_MAX_SINKS);
        return;
    }
    /* One spare slot for the implicit default file sink. */
    if (!(*out = calloc(n + 1, sizeof **out))) {
        c->nomem = true;
        return;
    }
    for (const cJSON *it = v->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        snprintf(p, sizeof p, "sinks.%s", name);
        bool dup = false;
        for (const cJSON *prev = v->child; prev != it; prev = prev->next)
            dup = dup || (prev->string && strcmp(prev->string, name) == 0);
        if (dup) {
            bs_conf_err(c, p, "duplicate sink name %s", bs_conf_quote(q, sizeof q, name));
            continue;
        }
        if (!bs_conf_name_ok(name)) {
            bs_conf_err(c, p,
                        "%s is not a valid sink name: use 1 to %d characters from A-Z a-z 0-9 _ "
                        ". -",
                        bs_conf_quote(q, sizeof q, name), BS_CONF_NAME_MAX);
            continue;
        }
        bs_sink_config *s = &(*out)[*n_out];
        s->name = bs_conf_strdup(c, name);
        if (!s->name) continue;
        (*n_out)++;
        parse_sink(c, it, p, s);
    }
}

/* Free one sink: its name and the rows of every type (fields of other types
 * are NULL). */
static void sink_free(bs_sink_config *s)
{
    free(s->name);
    s->name = NULL;
    for (size_t t = 0; t < BS_ARRAY_LEN(sink_types); t++)
        for (size_t i = 0; i < sink_types[t].n; i++)
            bs_conf_free_section(sink_types[t].secs[i], s);
}

/* See sinks_config.h. */
void bs_sinks_conf_free(bs_sink_config **sinks, size_t *n)
{
    for (size_t i = 0; *sinks && i < *n; i++)
        sink_free(&(*sinks)[i]);
    free(*sinks);
    *sinks = NULL;
    *n = 0;
}

/* Every field of two sinks alike (a sink owns delivery state: a change means
 * a new sink, which only start-up wires). */
static bool sink_eq(const bs_sink_config *a, const bs_sink_config *b)
{
    if (a->kind != b->kind || a->streams != b->streams || a->implicit != b->implicit ||
        strcmp(a->name ? a->name : "", b->name ? b->name : "") != 0)
        return false;
    for (size_t i = 0; i < sink_types[a->kind].n; i++)
        if (bs_conf_restart_diff(sink_types[a->kind].secs[i], a, b, NULL, NULL, 0)) return false;
    return true;
}

/* See sinks_config.h: adding, removing or changing any sink needs a restart. */
bool bs_sinks_conf_diff(const bs_sink_config *a, size_t na, const bs_sink_config *b, size_t nb,
                        const char *label, char *what, size_t whatlen)
{
    bool same = na == nb;
    for (size_t i = 0; same && i < na; i++)
        same = sink_eq(&a[i], &b[i]);
    if (!same) bs_conf_list_add(what, whatlen, label);
    return !same;
}
