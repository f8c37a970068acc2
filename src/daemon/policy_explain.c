/*
 * policy_explain.c - `brokerside policy explain`: which rule of the configured
 * authorization policy decides a request, and why (see policy.h).
 */
#include <stdio.h>
#include <string.h>

#include "brokerside/config.h"
#include "brokerside/policy.h"

#define DEFAULT_CONFIG "/etc/brokerside/brokerside.json"

/* Print usage to stderr; returns 2. */
static int usage(void)
{
    fprintf(stderr,
            "usage: brokerside policy explain [--config FILE] [--host IP] PRINCIPAL OPERATION "
            "RESOURCE\n"
            "  PRINCIPAL  User:alice\n"
            "  OPERATION  Read Write Create Delete Alter Describe ClusterAction DescribeConfigs\n"
            "             AlterConfigs IdempotentWrite\n"
            "  RESOURCE   Topic:NAME, Group:NAME, TransactionalId:NAME or Cluster\n"
            "  FILE defaults to " DEFAULT_CONFIG "; exit 0 allowed, 1 denied, 2 error\n");
    return 2;
}

/* See policy.h. */
int bs_policy_explain_main(int argc, char **argv)
{
    const char *cfg_path = DEFAULT_CONFIG, *host = NULL;
    const char *pos[3];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            cfg_path = argv[++i];
        else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (argv[i][0] == '-' || npos == 3)
            return usage();
        else
            pos[npos++] = argv[i];
    }
    if (npos != 3) return usage();
    bs_acl_op op;
    if (!bs_acl_op_parse(pos[1], &op) || op == BS_ACL_ALL) {
        fprintf(stderr, "unknown operation %s\n", pos[1]);
        return usage();
    }
    const char *colon = strchr(pos[2], ':');
    char type[32];
    size_t tl = colon ? (size_t)(colon - pos[2]) : strlen(pos[2]);
    if (tl >= sizeof type) return usage();
    memcpy(type, pos[2], tl);
    type[tl] = 0;
    bs_acl_res res;
    if (!bs_acl_res_parse(type, &res) || (res != BS_ACL_CLUSTER && (!colon || !colon[1]))) {
        fprintf(stderr, "RESOURCE must be Topic:NAME, Group:NAME, TransactionalId:NAME or "
                        "Cluster\n");
        return 2;
    }
    const char *name = res == BS_ACL_CLUSTER ? "kafka-cluster" : colon + 1;
    bs_config *cfg = NULL;
    bs_config_errors errs = {0};
    if (bs_config_load(cfg_path, &cfg, &errs) != BS_OK) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        if (errs.n == 0) fprintf(stderr, "%s: cannot be loaded\n", cfg_path);
        bs_config_errors_free(&errs);
        return 2;
    }
    int rc;
    if (!cfg->authorization) {
        printf("ALLOW: %s has no authorization section: the sidecar enforces no policy\n",
               cfg_path);
        rc = 0;
    } else {
        bs_policy_decision d = bs_policy_check(cfg->authorization, pos[0], host, op, res, name,
                                               strlen(name));
        char why[768];
        bs_policy_explain(cfg->authorization, &d, why, sizeof why);
        printf("%s %s %s:%s%s%s: %s\n", pos[0], bs_acl_op_name(op), bs_acl_res_name(res), name,
               host ? " from " : "", host ? host : "", why);
        if (!host) {
            /* Rules naming a host did not apply: say so, they may for a real client. */
            for (size_t i = 0; i < bs_policy_rule_count(cfg->authorization); i++)
                if (bs_policy_rule_at(cfg->authorization, i)->host) {
                    printf("note: rules with a host were not considered (give --host IP)\n");
                    break;
                }
        }
        rc = d.allowed ? 0 : 1;
    }
    bs_config_free(cfg);
    return rc;
}
