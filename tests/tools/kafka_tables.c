/*
 * kafka_tables - print the Kafka protocol tables this build was generated with, as one
 * JSON object on stdout, for tests/integration/test_kafka_java.py (ApiCoverageTest) and by
 * hand:
 *
 *   kafka_tables
 *
 * {"apis": [{"key", "name", "min", "max", "cap"}...],   cap: bs_kafka_max_supported_version
 *  "messages": [{"name", "key", "request", "min", "max", "endpoint_versions": [v...]}...]}
 *
 * endpoint_versions lists the versions whose body can hold a broker endpoint that the
 * rewriter maps (the generated mask).
 */
#include <stdio.h>

#include "brokerside/kafka.h"
#include "brokerside/kafka_rewrite.h"
#include "brokerside/kafka_schema.h"

/* Prints the tables; always succeeds. */
int main(void)
{
    size_t n = 0;
    const bs_kafka_api_info *t = bs_kafka_api_table(&n);
    printf("{\"apis\":[");
    for (size_t i = 0; i < n; i++)
        printf("%s{\"key\":%d,\"name\":\"%s\",\"min\":%d,\"max\":%d,\"cap\":%d}", i ? "," : "",
               t[i].key, t[i].name, t[i].min_version, t[i].max_version,
               bs_kafka_max_supported_version(t[i].key));
    printf("],\"messages\":[");
    for (size_t i = 0; i < bs_kafka_messages_count; i++) {
        const bs_kafka_message *m = &bs_kafka_messages[i];
        printf("%s{\"name\":\"%s\",\"key\":%d,\"request\":%s,\"min\":%d,\"max\":%d,"
               "\"endpoint_versions\":[",
               i ? "," : "", m->name, m->api_key, m->is_request ? "true" : "false",
               m->min_version, m->max_version);
        int first = 1;
        for (int v = 0; v < 64; v++)
            if ((m->endpoint_versions >> v) & 1) {
                printf("%s%d", first ? "" : ",", v);
                first = 0;
            }
        printf("]}");
    }
    printf("]}\n");
    return 0;
}
