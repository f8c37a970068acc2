/*
 * identity.h - who is on a connection: the certificate principal (mapped by
 * rules like Kafka's ssl.principal.mapping.rules) and the SASL principal
 * learned by following SaslHandshake/SaslAuthenticate through the Kafka
 * session without terminating SASL.
 *
 * Config: the `identity` section (docs/configuration.md) is the module's
 * option table (identity_config.h, read by the generic walker). The
 * running config is one process-wide pointer (bs_identity_set_config), read
 * atomically by workers; configs are kept until exit, so a pointer read once
 * stays valid.
 *
 * SASL tracking (bs_sasl_track_*): the Kafka session shows it every
 * SaslHandshake/SaslAuthenticate request and response body. A principal
 * counts only after the broker's successful answer (for SCRAM: the final
 * server message); a failed attempt is remembered with the attempted name
 * for the audit trail. Passwords, SCRAM nonces/proofs and tokens are never
 * copied into the state.
 */
#ifndef BROKERSIDE_IDENTITY_H
#define BROKERSIDE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/identity_config.h"
#include "brokerside/jwt.h"
#include "brokerside/sasl.h"
#include "brokerside/status.h"

/* Longest principal text ("User:" + name). */
#define BS_PRINCIPAL_MAX 320

/* Install the running config (NULL = defaults); any thread. */
void bs_identity_set_config(const bs_identity_config *c);
/* The running config (never NULL: built-in defaults). */
const bs_identity_config *bs_identity_config_current(void);

/* Map a certificate principal as net/ renders it ("CN=a,O=b;SAN=DNS:x": the
 * part before ";SAN=" is the subject) through the rules: the first RULE whose
 * regex matches the whole subject gives the name (replacement, then case
 * folding); DEFAULT gives the subject itself. Writes "User:<name>" into
 * out[outlen]. BS_E_NOT_FOUND when no rule applies (Kafka refuses such a
 * client; the sidecar treats it as anonymous). */
bs_status bs_identity_map_cert(const bs_identity_config *c, const char *cert, char *out,
                               size_t outlen) BS_WUR;

/* ---------------------------------------------------------------- per connection */

typedef enum bs_sasl_result {
    BS_SASL_RESULT_NONE = 0,   /* no attempt yet */
    BS_SASL_RESULT_PENDING,    /* an exchange is in progress */
    BS_SASL_RESULT_OK,         /* the broker accepted */
    BS_SASL_RESULT_FAILED,     /* the broker refused (or the handshake failed) */
} bs_sasl_result;

/* The identity of one connection, owned by the Kafka session. */
typedef struct bs_conn_identity {
    char cert_subject[512];             /* TLS principal as net/ gives it, "" without a cert */
    char cert_principal[BS_PRINCIPAL_MAX]; /* mapped "User:..." or "" */
    /* the authenticated SASL session */
    bs_sasl_mech mech;
    char sasl_principal[BS_PRINCIPAL_MAX]; /* "User:alice", "" until authenticated */
    bool sasl_verified; /* false for OAUTHBEARER tokens that did not verify: the name is
                           then the attempted one and not used for decisions */
    uint32_t generation; /* bumped whenever the effective principal changes */
    /* the exchange in progress / last attempt (for audit) */
    bs_sasl_mech attempt_mech;
    char attempt_principal[BS_PRINCIPAL_MAX]; /* attempted name, "" unknown */
    bool attempt_verified;
    const char *attempt_note; /* static text: why unverified, or NULL */
    bs_sasl_result last_result;
    bool handshake_done; /* SaslHandshake answered with success */
    uint16_t rounds;     /* SaslAuthenticate round trips in this exchange */
    bool failed;         /* an authentication failed: only SASL APIs may follow */
    /* Legacy SASL (SaslHandshake v0, kafka-python 2.0 and old clients): once the
     * broker accepted the handshake, the tokens travel as bare size-prefixed
     * frames without a Kafka header, client and broker in turn, until the
     * mechanism's exchange ends. */
    bool legacy_pending; /* a SaslHandshake v0 is awaiting its answer */
    bool legacy_active;  /* bare tokens are on the wire */
    bool legacy_client_turn; /* the next bare frame comes from the client */
} bs_conn_identity;

/* Start the identity of a connection with its certificate principal (NULL:
 * none), mapped with the running config. */
void bs_conn_identity_init(bs_conn_identity *id, const char *cert);
/* The principal decisions use: the SASL principal once authenticated (and,
 * for OAUTHBEARER, verified), else the mapped certificate principal, else
 * "User:ANONYMOUS". Never NULL. */
const char *bs_conn_identity_principal(const bs_conn_identity *id);

/* What a request means for SASL tracking. */
typedef enum bs_sasl_verdict {
    BS_SASL_FORWARD = 0, /* forward it */
    BS_SASL_CLOSE = 1,   /* close the connection: *why says why (static text) */
} bs_sasl_verdict;

/* A SaslHandshake (17) / SaslAuthenticate (36) request body of `version`,
 * or any other request (`api` other than those; body ignored) so the tracker
 * can refuse requests after a failed authentication. Never copies secrets.
 * Closes for: a SaslAuthenticate without a successful SaslHandshake, a
 * legacy SaslHandshake v0 for a mechanism whose end the proxy cannot tell
 * (GSSAPI), malformed SASL bytes of a known mechanism, a re-authentication
 * naming another principal or mechanism, any non-SASL request after a failed
 * authentication. */
bs_sasl_verdict bs_sasl_track_request(bs_conn_identity *id, int16_t api, int16_t version,
                                      const uint8_t *body, size_t len, const char **why);
/* Legacy SASL: one bare client token (the session calls this for the
 * client frame that follows an accepted SaslHandshake v0). Same rules as a
 * SaslAuthenticate request's bytes. */
bs_sasl_verdict bs_sasl_track_legacy_client(bs_conn_identity *id, const uint8_t *token, size_t len,
                                            const char **why);
/* Legacy SASL: one bare broker token. Returns true when the exchange ended
 * with it (the principal is then committed, as after a successful
 * SaslAuthenticate; Kafka frames follow). A failed legacy exchange is ended
 * by the broker closing the connection. *close_why as for responses. */
bool bs_sasl_track_legacy_server(bs_conn_identity *id, const uint8_t *token, size_t len,
                                 const char **close_why);
/* The matching response body. Returns true when the identity or the attempt
 * changed (so observers may log it). *close_why is set (and the caller must
 * close) for a re-authentication that the broker accepted with a principal
 * other than the connection's. */
bool bs_sasl_track_response(bs_conn_identity *id, int16_t api, int16_t version,
                            const uint8_t *body, size_t len, const char **close_why);

#endif
