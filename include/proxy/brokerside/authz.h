/*
 * authz.h - enforcement of the authorization policy (policy.h) in the Kafka
 * session, with Kafka's semantics and error codes (docs/authorization.md).
 *
 * A bs_authz is a session hook (kafka_session.h) installed first on every
 * `kafka` listener; it is idle while no policy is configured and follows
 * bs_policy_current() per request, so a reload applies from each
 * connection's next request on. With a policy on, every request is judged
 * for the connection's principal (identity.h) before any byte of it reaches
 * the broker:
 *  - Produce and Fetch are split per topic: denied topics are removed from
 *    the request and answered with TOPIC_AUTHORIZATION_FAILED for each of
 *    their partitions, merged into the broker's response (same correlation
 *    id, same response order); a request with nothing allowed is answered
 *    by the sidecar (or dropped for acks=0);
 *  - Metadata omits topics the principal may not Describe when all topics
 *    were asked for, and answers TOPIC_AUTHORIZATION_FAILED for those asked
 *    by name; auto-creation is turned off for a request naming a topic the
 *    principal may not Create;
 *  - every other API is judged whole by the resources it names; a denied
 *    one is answered with an error response carrying GROUP_, TRANSACTIONAL_ID_,
 *    TOPIC_ or CLUSTER_AUTHORIZATION_FAILED in its error codes;
 *  - an API the policy cannot judge is denied (CLUSTER_AUTHORIZATION_FAILED);
 *    ApiVersions, SaslHandshake and SaslAuthenticate always pass.
 * Each judged request yields one KafkaAuthorization audit event with every
 * decision and the rule that made it; denials are counted in
 * brokerside_authz_denied_total{principal,operation,resource_type}.
 */
#ifndef BROKERSIDE_AUTHZ_H
#define BROKERSIDE_AUTHZ_H

#include "brokerside/audit.h"
#include "brokerside/kafka_session.h"
#include "brokerside/status.h"

typedef struct bs_authz bs_authz;

/* Create the enforcer; `log` (may be NULL: no audit events) is borrowed and
 * must outlive every connection. *out freed with bs_authz_free. */
bs_status bs_authz_new(bs_audit_log *log, bs_authz **out) BS_WUR;
/* The hook to put first in the session factory's hook array; valid until free. */
const bs_kafka_hook *bs_authz_hook(bs_authz *a);
/* Free (after every connection using it has closed). NULL: no-op. */
void bs_authz_free(bs_authz *a);

#endif
