/* Unit tests for src/daemon/config_diff.c: the key-path diff of two loaded
 * configurations behind the ConfigurationReloaded audit event: changed,
 * added and removed keys, array elements, secrets (by option table and by
 * name) without values, the prefix query, and configs without a tree. */
#include <string.h>

#include "brokerside/config_diff.h"
#include "test.h"

/* Load a config from memory; NULL (and a failure) when it does not load. */
static bs_config *parse(const char *json)
{
    bs_config *cfg = NULL;
    bs_config_errors e = {0};
    CHECK_EQ(bs_config_parse("mem.json", json, strlen(json), &cfg, &e), BS_OK);
    for (size_t i = 0; i < e.n; i++)
        fprintf(stderr, "  %s\n", e.msgs[i]);
    bs_config_errors_free(&e);
    return cfg;
}

/* The change at `path`, or NULL. */
static const bs_config_change *find(const bs_config_diff *d, const char *path)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->changes[i].path, path) == 0) return &d->changes[i];
    return NULL;
}

#define L0 "\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:1\"}]"
#define L1 "\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:2\"}]"

static void test_changes_by_path(void)
{
    bs_config *a = parse("{" L0 ", \"workers\": 2, \"log_level\": \"info\","
                         " \"aws\": {\"region\": \"eu-west-1\", \"credentials\": {\"access_key_id\":"
                         " \"AKIDOLD\", \"secret_access_key\": \"OLD-SECRET-VALUE\"}}}");
    bs_config *b = parse("{" L1 ", \"workers\": 3, \"log_format\": \"json\","
                         " \"aws\": {\"region\": \"eu-west-1\", \"credentials\": {\"access_key_id\":"
                         " \"AKIDOLD\", \"secret_access_key\": \"NEW-SECRET-VALUE\"}}}");
    if (!a || !b) goto out;
    bs_config_diff d;
    CHECK_EQ(bs_config_diff_compute(a, b, &d), BS_OK);
    const bs_config_change *c = find(&d, "workers");
    CHECK(c && strcmp(c->change, "changed") == 0 && !c->secret);
    if (c) {
        CHECK_STR(c->old_value, "2");
        CHECK_STR(c->new_value, "3");
    }
    c = find(&d, "listeners[0].upstream");
    CHECK(c != NULL);
    if (c) CHECK_STR(c->new_value, "127.0.0.1:2"); /* strings as text, not JSON */
    c = find(&d, "log_level");
    CHECK(c && strcmp(c->change, "removed") == 0 && c->new_value == NULL);
    c = find(&d, "log_format");
    CHECK(c && strcmp(c->change, "added") == 0 && c->old_value == NULL);
    c = find(&d, "aws.credentials.secret_access_key");
    CHECK(c && c->secret && !c->old_value && !c->new_value);
    CHECK(find(&d, "aws.region") == NULL);                     /* unchanged */
    CHECK(find(&d, "aws.credentials.access_key_id") == NULL); /* unchanged */
    CHECK_EQ(d.n, 5);
    CHECK(bs_config_diff_touches(&d, "aws"));
    CHECK(bs_config_diff_touches(&d, "listeners"));
    CHECK(!bs_config_diff_touches(&d, "authorization"));
    CHECK(!bs_config_diff_touches(&d, "work")); /* a prefix is a whole key */
    bs_config_diff_free(&d);
    CHECK_EQ(d.n, 0);
    /* the same config: nothing */
    CHECK_EQ(bs_config_diff_compute(a, a, &d), BS_OK);
    CHECK_EQ(d.n, 0);
    bs_config_diff_free(&d);
out:
    bs_config_free(a);
    bs_config_free(b);
}

/* Policy edits: a changed scalar and an added rule (array element, its
 * JSON as the value); a config without its document cannot be compared. */
static void test_policy_rules_and_no_tree(void)
{
    bs_config *a = parse("{" L0 ", \"authorization\": {\"default\": \"allow\", \"rules\": []}}");
    bs_config *b = parse("{" L0 ", \"authorization\": {\"default\": \"deny\", \"rules\": [{"
                         "\"principal\": \"User:a\", \"operation\": \"Read\", \"resource_type\":"
                         " \"Topic\", \"resource_name\": \"t\", \"permission\": \"ALLOW\"}]}}");
    if (!a || !b) goto out;
    bs_config_diff d;
    CHECK_EQ(bs_config_diff_compute(a, b, &d), BS_OK);
    const bs_config_change *c = find(&d, "authorization.default");
    CHECK(c && c->new_value && strcmp(c->new_value, "deny") == 0);
    c = find(&d, "authorization.rules[0]");
    CHECK(c && strcmp(c->change, "added") == 0 && c->new_value && strstr(c->new_value, "User:a"));
    CHECK(bs_config_diff_touches(&d, "authorization"));
    bs_config_diff_free(&d);
    /* a config built without a document cannot be compared */
    bs_config bare;
    memset(&bare, 0, sizeof bare);
    CHECK_EQ(bs_config_diff_compute(a, &bare, &d), BS_E_STATE);
    CHECK_EQ(d.n, 0);
out:
    bs_config_free(a);
    bs_config_free(b);
}

int main(void)
{
    RUN(test_changes_by_path);
    RUN(test_policy_rules_and_no_tree);
    return test_report();
}
