/*
 * sasl.h - pure parsers of the client side of Kafka's SASL mechanisms, for
 * pass-through inspection: the sidecar never terminates SASL, it only learns
 * who a client claims to be from the bytes it forwards.
 *
 * Every parser reads untrusted bytes through a bs_cursor and copies out only
 * the identity (a user name, an authorization id); passwords, SCRAM nonces and
 * proofs and bearer tokens are never copied except for the token, which is
 * handed to the JWT verifier by pointer (jwt.h) and never stored. Names are
 * bounded by BS_SASL_NAME_MAX and must be valid UTF-8 without control bytes.
 */
#ifndef BROKERSIDE_SASL_H
#define BROKERSIDE_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/status.h"

/* Longest user name / authorization id kept (bytes, NUL excluded). */
#define BS_SASL_NAME_MAX 255

typedef enum bs_sasl_mech {
    BS_SASL_NONE = 0,
    BS_SASL_PLAIN,
    BS_SASL_SCRAM_SHA_256,
    BS_SASL_SCRAM_SHA_512,
    BS_SASL_OAUTHBEARER,
    BS_SASL_OTHER, /* GSSAPI or anything else: passed through, principal unknown */
} bs_sasl_mech;

/* The mechanism named by a SaslHandshake request (exact, case-sensitive as
 * Kafka treats it); BS_SASL_OTHER for any other non-empty name. */
bs_sasl_mech bs_sasl_mech_parse(const uint8_t *p, size_t len);
/* "PLAIN", "SCRAM-SHA-256", ... ("NONE", "OTHER"). Static storage. */
const char *bs_sasl_mech_name(bs_sasl_mech m);

/* PLAIN (RFC 4616): authzid NUL authcid NUL passwd. The user name (the
 * authcid, as Kafka's PLAIN server uses it) goes to user[BS_SASL_NAME_MAX+1];
 * a non-empty authzid to authzid[] (else ""). BS_E_MALFORMED when the message
 * does not have exactly two NULs, the authcid is empty or a name is too long
 * or not printable UTF-8. The password is skipped, never copied. */
bs_status bs_sasl_plain_parse(const uint8_t *p, size_t len, char *user, char *authzid) BS_WUR;

/* SCRAM client-first-message (RFC 5802): gs2-header then n=saslname,r=nonce.
 * The unescaped saslname ("=2C" -> ",", "=3D" -> "=") goes to user[]; the
 * authzid of "a=" (unescaped) to authzid[] ("" when absent). *token_auth is
 * set when the extension tokenauth=true is present (a delegation token: the
 * user name is then the token id). BS_E_MALFORMED for a bad gs2 header, a
 * channel-binding flag other than n/y, a missing n= or r=, a bad escape. */
bs_status bs_sasl_scram_client_first(const uint8_t *p, size_t len, char *user, char *authzid,
                                     bool *token_auth) BS_WUR;

/* OAUTHBEARER client initial response (RFC 7628 as Kafka sends it):
 * gs2-header 0x01 *(key=value 0x01) 0x01, with auth="Bearer <token>". The
 * token is returned by pointer into `p` (*token, *token_len); the authzid of
 * the gs2 header to authzid[]. A lone 0x01 (the client's answer to a server
 * error) is BS_E_NOT_FOUND. BS_E_MALFORMED otherwise when the structure is
 * wrong or no auth key carries a Bearer token. */
bs_status bs_sasl_oauthbearer_parse(const uint8_t *p, size_t len, const uint8_t **token,
                                    size_t *token_len, char *authzid) BS_WUR;

#endif
