/* test_policy_config.c - the `authorization` option tables
 * (src/policy/policy_config.c): a full section builds the policy the
 * hand-written parser built, and the walker's messages (unknown keys with
 * their hint, wrong types, bad enum names) next to the ones the callbacks
 * keep (required keys, principal format, a rule's cross-key rules). */
#include <cjson/cJSON.h>

#include "brokerside/config.h"
#include "brokerside/policy.h"
#include "conf_report_test_util.h"
#include "test.h"

static bs_status parse(const char *json, bs_policy **p)
{
    cJSON *j = cJSON_Parse(json);
    tu_reports_reset();
    bs_status st = bs_policy_parse(j, tu_report, NULL, p);
    cJSON_Delete(j);
    return st;
}

/* One rule object inside an otherwise valid section. */
static bs_status parse_rule(const char *members, bs_policy **p)
{
    char doc[1024];
    snprintf(doc, sizeof doc, "{\"default\": \"deny\", \"rules\": [{%s}]}", members);
    return parse(doc, p);
}

#define RULE_OK "\"principal\": \"User:a\", \"resource_type\": \"Topic\", \"resource_name\": \"t\""

/* Every key of the section and of a rule, names in any case: the policy is
 * what the hand-written parser built (NULL principal/host for the
 * wildcards, ops as a mask, Cluster named "*", LITERAL "*" a wildcard). */
static void test_full_section_builds_the_same_policy(void)
{
    bs_policy *p = NULL;
    CHECK_EQ(parse("{\"default\": \"Allow\", \"super_users\": [\"User:admin\", \"User:ops\"],"
                   " \"rules\": ["
                   "{\"principal\": \"User:alice\", \"host\": \"10.0.0.9\", \"operation\": "
                   "\"IDEMPOTENT_WRITE\", \"resource_type\": \"cluster\", \"permission\": "
                   "\"allow\"},"
                   "{\"principal\": \"*\", \"host\": \"*\", \"operations\": [\"read\", "
                   "\"DESCRIBE_CONFIGS\"], \"resource_type\": \"TRANSACTIONAL_ID\", "
                   "\"resource_name\": \"tx-\", \"pattern_type\": \"prefixed\", \"permission\": "
                   "\"DENY\"},"
                   "{\"principal\": \"User:*\", \"operation\": \"All\", \"resource_type\": "
                   "\"Topic\", \"resource_name\": \"*\", \"pattern_type\": \"LITERAL\", "
                   "\"permission\": \"ALLOW\"},"
                   "{\"principal\": \"Group:devs\", \"operation\": \"Write\", \"resource_type\": "
                   "\"Group\", \"resource_name\": \"g1\", \"permission\": \"deny\"}]}",
                   &p),
             BS_OK);
    CHECK_EQ(g_n, 0);
    if (!p) return;
    CHECK(bs_policy_default_allow(p));
    CHECK_EQ(bs_policy_rule_count(p), 4);
    const bs_policy_rule *r = bs_policy_rule_at(p, 0);
    CHECK_STR(r->principal, "User:alice");
    CHECK_STR(r->host, "10.0.0.9");
    CHECK_EQ(r->ops, 1u << BS_ACL_IDEMPOTENT_WRITE);
    CHECK_EQ(r->res, BS_ACL_CLUSTER);
    CHECK_STR(r->name, "*");
    CHECK_EQ(r->name_len, 1);
    CHECK(r->wildcard && !r->prefixed && r->allow);
    r = bs_policy_rule_at(p, 1);
    CHECK(r->principal == NULL && r->host == NULL);
    CHECK_EQ(r->ops, 1u << BS_ACL_READ | 1u << BS_ACL_DESCRIBE_CONFIGS);
    CHECK_EQ(r->res, BS_ACL_TRANSACTIONAL_ID);
    CHECK_STR(r->name, "tx-");
    CHECK(!r->wildcard && r->prefixed && !r->allow);
    r = bs_policy_rule_at(p, 2);
    CHECK(r->principal == NULL && r->host == NULL);
    CHECK_EQ(r->ops, 1u << BS_ACL_ALL);
    CHECK(r->wildcard && !r->prefixed && r->allow);
    r = bs_policy_rule_at(p, 3);
    CHECK_STR(r->principal, "Group:devs");
    CHECK_EQ(r->res, BS_ACL_GROUP);
    CHECK(!r->wildcard && !r->allow);
    /* the super users and the index work on what was built */
    CHECK_EQ(bs_policy_check(p, "User:ops", NULL, BS_ACL_DELETE, BS_ACL_TOPIC, "x", 1).basis,
             BS_POLICY_BY_SUPER_USER);
    CHECK(!bs_policy_check(p, "User:bob", NULL, BS_ACL_READ, BS_ACL_TRANSACTIONAL_ID, "tx-1", 4)
               .allowed);
    CHECK(bs_policy_check(p, "User:alice", "10.0.0.9", BS_ACL_IDEMPOTENT_WRITE, BS_ACL_CLUSTER,
                          "", 0)
              .allowed);
    bs_policy_free(p);
    /* defaults: no rules, no super users, LITERAL, host "*" */
    CHECK_EQ(parse("{\"default\": \"deny\"}", &p), BS_OK);
    CHECK(!bs_policy_default_allow(p));
    CHECK_EQ(bs_policy_rule_count(p), 0);
    bs_policy_free(p);
    CHECK_EQ(parse_rule(RULE_OK ", \"operation\": \"Read\", \"permission\": \"ALLOW\"", &p), BS_OK);
    r = bs_policy_rule_at(p, 0);
    CHECK(r && r->host == NULL && !r->prefixed && !r->wildcard);
    bs_policy_free(p);
}

/* The ACL names as the command line (policy explain) reads them: the same
 * matcher as the enum rows. */
static void test_acl_names(void)
{
    bs_acl_op op;
    bs_acl_res res;
    CHECK(bs_acl_op_parse("IdempotentWrite", &op) && op == BS_ACL_IDEMPOTENT_WRITE);
    CHECK(bs_acl_op_parse("IDEMPOTENT_WRITE", &op) && op == BS_ACL_IDEMPOTENT_WRITE);
    CHECK(bs_acl_op_parse("describeconfigs", &op) && op == BS_ACL_DESCRIBE_CONFIGS);
    CHECK(!bs_acl_op_parse("Wrte", &op));
    CHECK(!bs_acl_op_parse("", &op));
    CHECK(bs_acl_res_parse("TRANSACTIONAL_ID", &res) && res == BS_ACL_TRANSACTIONAL_ID);
    CHECK(!bs_acl_res_parse("Topics", &res));
    CHECK_STR(bs_acl_op_name(BS_ACL_CLUSTER_ACTION), "ClusterAction");
    CHECK_EQ(bs_conf_choice_index(bs_acl_res_names, "topic", false), -1); /* exact without nocase */
    CHECK_EQ(bs_conf_choice_index(bs_acl_res_names, "Topic", false), BS_ACL_TOPIC);
}

/* The walker's messages: unknown keys with the hint, wrong types, bad enums. */
static void test_generic_messages(void)
{
    bs_policy *p = NULL;
    CHECK_EQ(parse("{\"defualt\": \"deny\", \"default\": \"deny\"}", &p), BS_E_CONFIG);
    CHECK(p == NULL);
    CHECK(reported("authorization.defualt: unknown key \"defualt\" (did you mean \"default\"?)"));
    CHECK_EQ(g_n, 1);
    CHECK_EQ(parse_rule(RULE_OK ", \"operation\": \"Read\", \"permision\": \"ALLOW\"", &p),
             BS_E_CONFIG);
    CHECK(reported("authorization.rules[0].permision: unknown key \"permision\" (did you mean "
                   "\"permission\"?)"));
    CHECK(reported("authorization.rules[0].permission: required: ALLOW or DENY"));
    CHECK_EQ(g_n, 2);
    CHECK_EQ(parse_rule(RULE_OK ", \"operation\": \"Read\", \"permission\": \"ALLOW\", \"host\": 5",
                        &p),
             BS_E_CONFIG);
    CHECK(reported("authorization.rules[0].host: expected a string, got a number"));
    CHECK_EQ(parse("{\"default\": \"maybe\"}", &p), BS_E_CONFIG);
    CHECK(reported("authorization.default: \"maybe\" is not valid: expected \"deny\" or \"allow\""));
    CHECK_EQ(parse("{\"default\": true}", &p), BS_E_CONFIG);
    CHECK(reported("authorization.default: expected a string, got a boolean"));
    CHECK_EQ(parse_rule(RULE_OK ", \"operation\": \"Wrte\", \"permission\": \"yes\", "
                                "\"pattern_type\": \"GLOB\"",
                        &p),
             BS_E_CONFIG);
    CHECK(reported("authorization.rules[0].operation: \"Wrte\" is not valid: expected \"All\", "
                   "\"Read\", \"Write\", \"Create\", \"Delete\", \"Alter\", \"Describe\", "
                   "\"ClusterAction\", \"DescribeConfigs\", \"AlterConfigs\" or "
                   "\"IdempotentWrite\""));
    CHECK(reported("authorization.rules[0].permission: \"yes\" is not valid: expected \"ALLOW\" or "
                   "\"DENY\""));
    CHECK(reported("authorization.rules[0].pattern_type: \"GLOB\" is not valid: expected "
                   "\"LITERAL\" or \"PREFIXED\""));
    CHECK_EQ(g_n, 3);
    CHECK_EQ(parse("{\"default\": \"deny\", \"rules\": 5, \"super_users\": {}}", &p), BS_E_CONFIG);
    CHECK(reported("authorization.rules: expected an array of rules"));
    CHECK(reported("authorization.super_users: expected an array of principals"));
    CHECK_EQ(parse("[1]", &p), BS_E_CONFIG);
    CHECK(reported("authorization: expected an object"));
}

/* The messages of the callbacks and the required rows, as before. */
static void test_module_messages(void)
{
    bs_policy *p = NULL;
    CHECK_EQ(parse("{\"rules\": []}", &p), BS_E_CONFIG);
    CHECK(reported("authorization.default: required: \"deny\" or \"allow\" (the decision when no "
                   "rule matches)"));
    CHECK_EQ(parse_rule("\"permission\": \"ALLOW\"", &p), BS_E_CONFIG);
    CHECK(reported("authorization.rules[0].principal: required: \"User:<name>\" or \"User:*\""));
    CHECK(reported("authorization.rules[0].operation: give exactly one of \"operation\" or "
                   "\"operations\""));
    CHECK(reported("authorization.rules[0].resource_type: required: Topic, Group, TransactionalId "
                   "or Cluster"));
    CHECK(reported("authorization.rules[0].resource_name: required (\"*\" for every resource of "
                   "the type)"));
    CHECK_EQ(g_n, 4);
    CHECK_EQ(parse_rule("\"principal\": \"alice\", \"resource_type\": \"Cluster\", \"resource_name\":"
                        " \"other\", \"operation\": \"Read\", \"operations\": [\"Read\"], "
                        "\"permission\": \"ALLOW\"",
                        &p),
             BS_E_CONFIG);
    CHECK(reported("authorization.rules[0].principal: \"alice\" is not a principal: expected "
                   "\"<Type>:<name>\" (e.g. \"User:alice\") or \"User:*\""));
    CHECK(reported("authorization.rules[0].operation: give exactly one of \"operation\" or "
                   "\"operations\""));
    CHECK(reported("authorization.rules[0].resource_name: a Cluster resource is named "
                   "\"kafka-cluster\" (or left out)"));
    CHECK_EQ(parse_rule(RULE_OK ", \"operations\": [\"Read\", \"Wrte\", 3], \"permission\": \"DENY\"",
                        &p),
             BS_E_CONFIG);
    CHECK(reported("authorization.rules[0].operations[1]: unknown operation in \"operations\""));
    CHECK(reported("authorization.rules[0].operations[2]: unknown operation in \"operations\""));
    CHECK_EQ(parse_rule(RULE_OK ", \"operations\": [], \"permission\": \"DENY\"", &p), BS_E_CONFIG);
    CHECK(reported("authorization.rules[0].operations: \"operations\" must be a non-empty array"));
    CHECK_EQ(parse("{\"default\": \"deny\", \"super_users\": [\"User:*\", \"bob\", \"User:x\"], "
                   "\"rules\": [3]}",
                   &p),
             BS_E_CONFIG);
    CHECK(reported("authorization.super_users[0]: expected \"User:<name>\" (no wildcard)"));
    CHECK(reported("authorization.super_users[1]: expected \"User:<name>\" (no wildcard)"));
    CHECK(reported("authorization.rules[0]: expected an object"));
    CHECK_EQ(g_n, 3);
}

/* Through the whole config: "FILE: PATH: message", the section's absence
 * and null (no policy), a wrong type. */
static void test_in_the_config(void)
{
    const char *l = "\"listeners\": [{\"bind\": \"127.0.0.1:0\", \"upstream\": \"127.0.0.1:9092\"}]";
    char doc[512];
    bs_config *cfg = NULL;
    bs_config_errors e = {0};
    snprintf(doc, sizeof doc, "{%s}", l);
    CHECK_EQ(bs_config_parse("/etc/bs.json", doc, strlen(doc), &cfg, &e), BS_OK);
    CHECK(cfg && cfg->authorization == NULL);
    bs_config_free(cfg);
    snprintf(doc, sizeof doc, "{%s, \"authorization\": null}", l);
    CHECK_EQ(bs_config_parse("/etc/bs.json", doc, strlen(doc), &cfg, &e), BS_OK);
    CHECK(cfg && cfg->authorization == NULL);
    bs_config_free(cfg);
    snprintf(doc, sizeof doc, "{%s, \"authorization\": {\"default\": \"allow\"}}", l);
    CHECK_EQ(bs_config_parse("/etc/bs.json", doc, strlen(doc), &cfg, &e), BS_OK);
    CHECK(cfg && bs_policy_default_allow(cfg->authorization));
    bs_config_free(cfg);
    snprintf(doc, sizeof doc, "{%s, \"authorization\": 5}", l);
    CHECK_EQ(bs_config_parse("/etc/bs.json", doc, strlen(doc), &cfg, &e), BS_E_CONFIG);
    CHECK(e.n == 1 && strcmp(e.msgs[0], "/etc/bs.json: authorization: expected an object, or null "
                                         "for no policy; got a number") == 0);
    bs_config_errors_free(&e);
    snprintf(doc, sizeof doc,
             "{%s, \"authorization\": {\"default\": \"deny\", \"rules\": [{\"princpal\": 1}]}}", l);
    CHECK_EQ(bs_config_parse("/etc/bs.json", doc, strlen(doc), &cfg, &e), BS_E_CONFIG);
    CHECK(cfg == NULL);
    CHECK(e.n >= 1 && strcmp(e.msgs[0], "/etc/bs.json: authorization.rules[0].princpal: unknown key "
                                         "\"princpal\" (did you mean \"principal\"?)") == 0);
    bs_config_errors_free(&e);
}

int main(void)
{
    RUN(test_full_section_builds_the_same_policy);
    RUN(test_acl_names);
    RUN(test_generic_messages);
    RUN(test_module_messages);
    RUN(test_in_the_config);
    return test_report();
}
