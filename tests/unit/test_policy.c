/* test_policy.c - the authorization policy: parsing, Kafka's evaluation
 * order, the index, explanations (src/policy/policy.c). */
#include <cjson/cJSON.h>

#include "brokerside/policy.h"
#include "test.h"

static int g_reports;
static char g_last[512];
static void rep(void *ctx, const char *path, const char *msg)
{
    (void)ctx;
    g_reports++;
    snprintf(g_last, sizeof g_last, "%s: %s", path, msg);
}

static bs_policy *parse(const char *json, bs_status *st)
{
    cJSON *j = cJSON_Parse(json);
    bs_policy *p = NULL;
    g_reports = 0;
    *st = bs_policy_parse(j, rep, NULL, &p);
    cJSON_Delete(j);
    return p;
}

#define CHECKP(p, who, op, res, name, want)                                                      \
    CHECK_EQ(bs_policy_check(p, who, "10.0.0.1", op, res, name, strlen(name)).allowed, want)

static const char *g_rules =
    "{\"default\":\"deny\",\"super_users\":[\"User:admin\"],\"rules\":["
    "{\"principal\":\"User:alice\",\"operation\":\"Write\",\"resource_type\":\"Topic\","
    "\"resource_name\":\"orders\",\"permission\":\"allow\"},"
    "{\"principal\":\"User:alice\",\"operations\":[\"Read\"],\"resource_type\":\"Topic\","
    "\"resource_name\":\"logs-\",\"pattern_type\":\"PREFIXED\",\"permission\":\"ALLOW\"},"
    "{\"principal\":\"User:*\",\"operation\":\"Read\",\"resource_type\":\"Topic\","
    "\"resource_name\":\"logs-secret\",\"permission\":\"DENY\"},"
    "{\"principal\":\"User:bob\",\"operation\":\"All\",\"resource_type\":\"Group\","
    "\"resource_name\":\"*\",\"permission\":\"ALLOW\"},"
    "{\"principal\":\"User:bob\",\"host\":\"10.0.0.9\",\"operation\":\"Read\","
    "\"resource_type\":\"Topic\",\"resource_name\":\"orders\",\"permission\":\"ALLOW\"},"
    "{\"principal\":\"User:carol\",\"operation\":\"Create\",\"resource_type\":\"Cluster\","
    "\"permission\":\"ALLOW\"},"
    "{\"principal\":\"User:alice\",\"operation\":\"AlterConfigs\",\"resource_type\":\"Topic\","
    "\"resource_name\":\"orders\",\"permission\":\"ALLOW\"}"
    "]}";

static void test_evaluation(void)
{
    bs_status st;
    bs_policy *p = parse(g_rules, &st);
    CHECK_EQ(st, BS_OK);
    CHECK_EQ(bs_policy_rule_count(p), 7);
    CHECKP(p, "User:alice", BS_ACL_WRITE, BS_ACL_TOPIC, "orders", true);
    CHECKP(p, "User:alice", BS_ACL_READ, BS_ACL_TOPIC, "orders", false);
    CHECKP(p, "User:alice", BS_ACL_WRITE, BS_ACL_TOPIC, "orders2", false);
    /* Describe implied by Write; DescribeConfigs by AlterConfigs */
    bs_policy_decision d = bs_policy_check(p, "User:alice", NULL, BS_ACL_DESCRIBE, BS_ACL_TOPIC, "orders", 6);
    CHECK(d.allowed);
    CHECK_EQ(d.basis, BS_POLICY_BY_IMPLIED_ALLOW);
    CHECKP(p, "User:alice", BS_ACL_DESCRIBE_CONFIGS, BS_ACL_TOPIC, "orders", true);
    /* prefixed, and deny wins over it */
    CHECKP(p, "User:alice", BS_ACL_READ, BS_ACL_TOPIC, "logs-app", true);
    d = bs_policy_check(p, "User:alice", NULL, BS_ACL_READ, BS_ACL_TOPIC, "logs-secret", 11);
    CHECK(!d.allowed);
    CHECK_EQ(d.rule, 2);
    CHECK_EQ(d.basis, BS_POLICY_BY_DENY_RULE);
    /* a deny of Read does not deny Describe (Kafka: only the op and All) */
    CHECKP(p, "User:alice", BS_ACL_DESCRIBE, BS_ACL_TOPIC, "logs-secret", true);
    /* wildcard name, All operation */
    CHECKP(p, "User:bob", BS_ACL_READ, BS_ACL_GROUP, "anything", true);
    CHECKP(p, "User:bob", BS_ACL_DELETE, BS_ACL_GROUP, "g", true);
    /* host */
    CHECK(bs_policy_check(p, "User:bob", "10.0.0.9", BS_ACL_READ, BS_ACL_TOPIC, "orders", 6).allowed);
    CHECKP(p, "User:bob", BS_ACL_READ, BS_ACL_TOPIC, "orders", false);
    /* cluster */
    CHECKP(p, "User:carol", BS_ACL_CREATE, BS_ACL_CLUSTER, "", true);
    CHECKP(p, "User:carol", BS_ACL_ALTER, BS_ACL_CLUSTER, "", false);
    /* super user, default */
    d = bs_policy_check(p, "User:admin", NULL, BS_ACL_DELETE, BS_ACL_TOPIC, "x", 1);
    CHECK(d.allowed);
    CHECK_EQ(d.basis, BS_POLICY_BY_SUPER_USER);
    d = bs_policy_check(p, "User:nobody", NULL, BS_ACL_READ, BS_ACL_TOPIC, "x", 1);
    CHECK(!d.allowed);
    CHECK_EQ(d.basis, BS_POLICY_BY_DEFAULT);
    /* any-topic Write for idempotent producers */
    CHECK(bs_policy_allows_any(p, "User:alice", NULL, BS_ACL_WRITE, BS_ACL_TOPIC));
    CHECK(!bs_policy_allows_any(p, "User:bob", NULL, BS_ACL_WRITE, BS_ACL_TOPIC));
    char why[512];
    d = bs_policy_check(p, "User:alice", NULL, BS_ACL_READ, BS_ACL_TOPIC, "logs-secret", 11);
    bs_policy_explain(p, &d, why, sizeof why);
    CHECK(strstr(why, "DENY by rules[2]") != NULL);
    CHECK(strstr(why, "deny wins") != NULL);
    d = bs_policy_check(p, "User:x", NULL, BS_ACL_READ, BS_ACL_TOPIC, "t", 1);
    bs_policy_explain(p, &d, why, sizeof why);
    CHECK(strstr(why, "no rule matches") != NULL);
    bs_policy_free(p);
}

/* Write on "any topic" (idempotent producers) is Kafka's
 * authorizeByResourceType: an allow counts only if no deny covers all it allows. */
static void test_allows_any_deny_covers(void)
{
    bs_status st;
    bs_policy *p = parse(
        "{\"default\":\"deny\",\"rules\":["
        "{\"principal\":\"User:u\",\"operation\":\"Write\",\"resource_type\":\"Topic\","
        "\"resource_name\":\"orders\",\"permission\":\"ALLOW\"},"
        "{\"principal\":\"User:u\",\"operation\":\"Write\",\"resource_type\":\"Topic\","
        "\"resource_name\":\"orders\",\"permission\":\"DENY\"},"
        "{\"principal\":\"User:v\",\"operation\":\"Write\",\"resource_type\":\"Topic\","
        "\"resource_name\":\"app-x\",\"pattern_type\":\"PREFIXED\",\"permission\":\"ALLOW\"},"
        "{\"principal\":\"User:*\",\"operation\":\"All\",\"resource_type\":\"Topic\","
        "\"resource_name\":\"app-\",\"pattern_type\":\"PREFIXED\",\"permission\":\"DENY\"},"
        "{\"principal\":\"User:w\",\"operation\":\"Write\",\"resource_type\":\"Topic\","
        "\"resource_name\":\"app\",\"pattern_type\":\"PREFIXED\",\"permission\":\"ALLOW\"}"
        "]}",
        &st);
    CHECK_EQ(st, BS_OK);
    /* the same literal allowed and denied: nothing writable */
    CHECK(!bs_policy_allows_any(p, "User:u", NULL, BS_ACL_WRITE, BS_ACL_TOPIC));
    /* a denied prefix that starts the allowed prefix covers it */
    CHECK(!bs_policy_allows_any(p, "User:v", NULL, BS_ACL_WRITE, BS_ACL_TOPIC));
    /* a shorter allowed prefix still allows names the deny misses ("apple") */
    CHECK(bs_policy_allows_any(p, "User:w", NULL, BS_ACL_WRITE, BS_ACL_TOPIC));
    bs_policy_free(p);
}

static void test_many_literals(void)
{
    /* the sorted index finds every name among 1000 literal rules */
    char *doc = malloc(200000);
    size_t o = (size_t)sprintf(doc, "{\"default\":\"deny\",\"rules\":[");
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(doc + o,
                             "%s{\"principal\":\"User:u%d\",\"operation\":\"Write\","
                             "\"resource_type\":\"Topic\",\"resource_name\":\"t%d\","
                             "\"permission\":\"ALLOW\"}",
                             i ? "," : "", i % 10, i);
    sprintf(doc + o, "]}");
    bs_status st;
    bs_policy *p = parse(doc, &st);
    CHECK_EQ(st, BS_OK);
    int ok = 0;
    for (int i = 0; i < 1000; i++) {
        char t[16], u[16];
        snprintf(t, sizeof t, "t%d", i);
        snprintf(u, sizeof u, "User:u%d", i % 10);
        ok += bs_policy_check(p, u, NULL, BS_ACL_WRITE, BS_ACL_TOPIC, t, strlen(t)).allowed;
        ok -= bs_policy_check(p, "User:u99", NULL, BS_ACL_WRITE, BS_ACL_TOPIC, t, strlen(t)).allowed;
    }
    CHECK_EQ(ok, 1000);
    bs_policy_free(p);
    free(doc);
}

static void test_parse_errors(void)
{
    bs_status st;
    CHECK(parse("{\"rules\":[]}", &st) == NULL);
    CHECK_EQ(st, BS_E_CONFIG); /* default required */
    CHECK(parse("{\"default\":\"maybe\"}", &st) == NULL);
    CHECK(parse("{\"default\":\"deny\",\"rules\":[{\"principal\":\"alice\",\"operation\":\"Wrte\","
                "\"resource_type\":\"Topics\",\"permission\":\"yes\",\"extra\":1}]}",
                &st) == NULL);
    CHECK_EQ(g_reports, 6); /* principal, operation, resource_type, resource_name, permission, extra */
    CHECK(parse("{\"default\":\"deny\",\"rules\":[{\"principal\":\"User:a\",\"operation\":\"Read\","
                "\"resource_type\":\"Cluster\",\"resource_name\":\"other\",\"permission\":\"ALLOW\"}]}",
                &st) == NULL);
    CHECK(strstr(g_last, "kafka-cluster") != NULL);
    CHECK(parse("{\"default\":\"deny\",\"super_users\":[\"User:*\"]}", &st) == NULL);
    bs_policy *p = parse("{\"default\":\"allow\"}", &st);
    CHECK_EQ(st, BS_OK);
    CHECKP(p, "User:x", BS_ACL_DELETE, BS_ACL_TOPIC, "t", true);
    bs_policy_free(p);
}

int main(void)
{
    RUN(test_evaluation);
    RUN(test_allows_any_deny_covers);
    RUN(test_many_literals);
    RUN(test_parse_errors);
    return test_report();
}
