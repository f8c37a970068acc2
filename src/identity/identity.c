/*
 * identity.c - certificate principal mapping and the per-connection SASL
 * tracker (see identity.h); the `identity` section's tables are in
 * identity_config.c.
 */
#include "brokerside/identity.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/cursor.h"
#include "brokerside/kafka.h"

#define SASL_HANDSHAKE 17
#define SASL_AUTHENTICATE 36
#define API_VERSIONS 18

static const bs_identity_config g_defaults = {.principal_claim = "sub",
                                              .clock_skew_s = 30,
                                              .metrics_max_principals = 100};
static _Atomic(const bs_identity_config *) g_current;

/* ---------------------------------------------------------------- running config */

/* See identity.h. */
void bs_identity_set_config(const bs_identity_config *c)
{
    atomic_store(&g_current, c);
}

/* See identity.h. */
const bs_identity_config *bs_identity_config_current(void)
{
    const bs_identity_config *c = atomic_load(&g_current);
    return c ? c : &g_defaults;
}

/* See identity.h. */
bs_status bs_identity_map_cert(const bs_identity_config *c, const char *cert, char *out,
                               size_t outlen)
{
    if (!cert || !cert[0]) return BS_E_NOT_FOUND;
    char subj[512];
    const char *san = strstr(cert, ";SAN=");
    size_t sl = san ? (size_t)(san - cert) : strlen(cert);
    if (sl >= sizeof subj) return BS_E_TOO_LARGE;
    memcpy(subj, cert, sl);
    subj[sl] = 0;
    if (!c || c->n_rules == 0) {
        if ((size_t)snprintf(out, outlen, "User:%s", subj) >= outlen) return BS_E_TOO_LARGE;
        return BS_OK;
    }
    for (size_t i = 0; i < c->n_rules; i++) {
        const bs_mapping_rule *r = &c->rules[i];
        if (r->is_default) {
            if ((size_t)snprintf(out, outlen, "User:%s", subj) >= outlen) return BS_E_TOO_LARGE;
            return BS_OK;
        }
        regmatch_t m[11];
        if (regexec(&r->re, subj, 11, m, 0) != 0) continue;
        size_t o = (size_t)snprintf(out, outlen, "User:");
        for (const char *p = r->replacement; *p && o + 1 < outlen; p++) {
            if (*p == '$' && p[1] >= '1' && p[1] <= '9') {
                int g = p[1] - '0' + 1; /* group 1 is our own anchoring group */
                p++;
                if (m[g].rm_so < 0) continue;
                for (regoff_t k = m[g].rm_so; k < m[g].rm_eo && o + 1 < outlen; k++)
                    out[o++] = subj[k];
                continue;
            }
            out[o++] = *p;
        }
        out[o] = 0;
        for (size_t k = 5; k < o && r->case_fold; k++)
            out[k] = (char)(r->case_fold == 'L' ? tolower((unsigned char)out[k])
                                                : toupper((unsigned char)out[k]));
        return o > 5 ? BS_OK : BS_E_NOT_FOUND;
    }
    return BS_E_NOT_FOUND;
}

/* ---------------------------------------------------------------- tracker */

/* See identity.h. */
void bs_conn_identity_init(bs_conn_identity *id, const char *cert)
{
    memset(id, 0, sizeof *id);
    if (!cert) return;
    snprintf(id->cert_subject, sizeof id->cert_subject, "%s", cert);
    if (bs_identity_map_cert(bs_identity_config_current(), cert, id->cert_principal,
                             sizeof id->cert_principal) != BS_OK)
        id->cert_principal[0] = 0;
}

/* See identity.h. */
const char *bs_conn_identity_principal(const bs_conn_identity *id)
{
    if (id->sasl_principal[0] && id->sasl_verified) return id->sasl_principal;
    if (id->cert_principal[0]) return id->cert_principal;
    return "User:ANONYMOUS";
}

/* Learn the attempted principal from the first client message of the
 * exchange. BS_E_MALFORMED closes the connection. */
static bs_status learn_attempt(bs_conn_identity *id, const uint8_t *ab, size_t alen)
{
    char user[BS_SASL_NAME_MAX + 1], zid[BS_SASL_NAME_MAX + 1];
    id->attempt_note = NULL;
    id->attempt_verified = true;
    switch (id->attempt_mech) {
    case BS_SASL_PLAIN:
        BS_GUARD(bs_sasl_plain_parse(ab, alen, user, zid));
        snprintf(id->attempt_principal, sizeof id->attempt_principal, "User:%s", user);
        return BS_OK;
    case BS_SASL_SCRAM_SHA_256:
    case BS_SASL_SCRAM_SHA_512: {
        bool token = false;
        BS_GUARD(bs_sasl_scram_client_first(ab, alen, user, zid, &token));
        if (token) {
            /* The name is a delegation token id; its owner is known to the broker only. */
            snprintf(id->attempt_principal, sizeof id->attempt_principal, "DelegationToken:%s",
                     user);
            id->attempt_verified = false;
            id->attempt_note = "delegation token: owner not known to the proxy";
        } else {
            snprintf(id->attempt_principal, sizeof id->attempt_principal, "User:%s", user);
        }
        return BS_OK;
    }
    case BS_SASL_OAUTHBEARER: {
        const uint8_t *tok;
        size_t tlen;
        bs_status st = bs_sasl_oauthbearer_parse(ab, alen, &tok, &tlen, zid);
        if (st != BS_OK) return st;
        const bs_identity_config *c = bs_identity_config_current();
        id->attempt_verified = false;
        id->attempt_principal[0] = 0;
        if (!c->jwks) {
            id->attempt_note = "no JWKS configured: token not verified";
            return BS_OK;
        }
        bs_jwt_expect x = {.issuer = c->issuer,
                           .audience = c->audience,
                           .claim = c->principal_claim,
                           .now_s = (int64_t)time(NULL),
                           .leeway_s = c->clock_skew_s};
        char name[BS_SASL_NAME_MAX + 1];
        const char *why = NULL;
        if (bs_jwt_verify(c->jwks, tok, tlen, &x, name, sizeof name, &why) == BS_OK) {
            snprintf(id->attempt_principal, sizeof id->attempt_principal, "User:%s", name);
            id->attempt_verified = true;
        } else {
            id->attempt_note = why;
        }
        return BS_OK;
    }
    default:
        id->attempt_principal[0] = 0;
        id->attempt_verified = false;
        id->attempt_note = "mechanism not inspected";
        return BS_OK;
    }
}

static bs_sasl_verdict first_token(bs_conn_identity *id, const uint8_t *p, size_t n,
                                   const char **why);

/* See identity.h. */
bs_sasl_verdict bs_sasl_track_request(bs_conn_identity *id, int16_t api, int16_t version,
                                      const uint8_t *body, size_t len, const char **why)
{
    *why = NULL;
    if (api != SASL_HANDSHAKE && api != SASL_AUTHENTICATE) {
        if (id->failed && api != API_VERSIONS) {
            *why = "request after a failed SASL authentication";
            return BS_SASL_CLOSE;
        }
        return BS_SASL_FORWARD;
    }
    bs_cursor c;
    bs_cursor_init(&c, body, len);
    if (api == SASL_HANDSHAKE) {
        bs_kafka_slice mech;
        if (bs_kafka_read_string(&c, false, false, &mech) != BS_OK || bs_cursor_remaining(&c)) {
            *why = "malformed SaslHandshake request";
            return BS_SASL_CLOSE;
        }
        bs_sasl_mech m = bs_sasl_mech_parse(mech.p, (size_t)mech.len);
        if (version == 0 && m == BS_SASL_OTHER) {
            /* bare tokens follow; only known mechanisms tell where they end */
            *why = "legacy SaslHandshake v0 with a mechanism the proxy cannot follow (use "
                   "SaslHandshake v1)";
            return BS_SASL_CLOSE;
        }
        if (version == 0 && id->sasl_principal[0]) {
            *why = "legacy SaslHandshake v0 after authentication";
            return BS_SASL_CLOSE;
        }
        id->legacy_pending = version == 0;
        if (id->sasl_principal[0] && m != id->mech) {
            *why = "re-authentication with another SASL mechanism";
            return BS_SASL_CLOSE;
        }
        id->attempt_mech = m;
        id->handshake_done = false;
        id->rounds = 0;
        id->last_result = BS_SASL_RESULT_PENDING;
        return BS_SASL_FORWARD;
    }
    /* SaslAuthenticate */
    if (!id->handshake_done) {
        *why = "SaslAuthenticate without a successful SaslHandshake";
        return BS_SASL_CLOSE;
    }
    bool flex = version >= 2;
    bs_kafka_slice ab;
    if (bs_kafka_read_bytes(&c, flex, false, &ab) != BS_OK) {
        *why = "malformed SaslAuthenticate request";
        return BS_SASL_CLOSE;
    }
    if (flex) {
        bs_kafka_slice tags;
        if (bs_kafka_read_tag_section(&c, &tags, NULL) != BS_OK) {
            *why = "malformed SaslAuthenticate request";
            return BS_SASL_CLOSE;
        }
    }
    if (bs_cursor_remaining(&c)) {
        *why = "malformed SaslAuthenticate request (trailing bytes)";
        return BS_SASL_CLOSE;
    }
    return first_token(id, ab.p, (size_t)ab.len, why);
}

/* The client's token of the exchange: the first one names the principal. */
static bs_sasl_verdict first_token(bs_conn_identity *id, const uint8_t *p, size_t n,
                                   const char **why)
{
    if (id->rounds == 0) {
        bs_status st = learn_attempt(id, p, n);
        if (st != BS_OK) {
            *why = "malformed SASL client message";
            return BS_SASL_CLOSE;
        }
        /* KIP-368: a re-authentication must keep the principal. */
        if (id->sasl_principal[0] && id->attempt_mech != BS_SASL_OTHER &&
            (strcmp(id->attempt_principal, id->sasl_principal) != 0 ||
             id->attempt_verified != id->sasl_verified)) {
            *why = "re-authentication names another principal";
            return BS_SASL_CLOSE;
        }
    }
    return BS_SASL_FORWARD;
}

/* Commit the attempt as the connection's SASL identity. */
static void commit(bs_conn_identity *id)
{
    bool changed = strcmp(id->sasl_principal, id->attempt_principal) != 0 ||
                   id->sasl_verified != id->attempt_verified;
    id->mech = id->attempt_mech;
    snprintf(id->sasl_principal, sizeof id->sasl_principal, "%s", id->attempt_principal);
    id->sasl_verified = id->attempt_verified;
    id->last_result = BS_SASL_RESULT_OK;
    id->handshake_done = false;
    id->rounds = 0;
    if (changed) id->generation++;
}

/* See identity.h. */
bool bs_sasl_track_response(bs_conn_identity *id, int16_t api, int16_t version,
                            const uint8_t *body, size_t len, const char **close_why)
{
    *close_why = NULL;
    bs_cursor c;
    bs_cursor_init(&c, body, len);
    int16_t err;
    if (bs_read_i16(&c, &err) != BS_OK) err = -1; /* unreadable answer: count as failure */
    if (api == SASL_HANDSHAKE) {
        bool legacy = id->legacy_pending;
        id->legacy_pending = false;
        if (err == 0) {
            id->handshake_done = true;
            id->legacy_active = legacy;
            id->legacy_client_turn = legacy;
            return false;
        }
        id->last_result = BS_SASL_RESULT_FAILED;
        id->failed = true;
        return true;
    }
    if (api != SASL_AUTHENTICATE) return false;
    if (err != 0) {
        id->last_result = BS_SASL_RESULT_FAILED;
        id->failed = true;
        id->handshake_done = false;
        return true;
    }
    bs_kafka_slice msg, ab;
    bool flex = version >= 2;
    if (bs_kafka_read_string(&c, flex, true, &msg) != BS_OK ||
        bs_kafka_read_bytes(&c, flex, false, &ab) != BS_OK)
        ab.len = 0;
    id->rounds++;
    bool done;
    switch (id->attempt_mech) {
    case BS_SASL_PLAIN: done = true; break;
    case BS_SASL_SCRAM_SHA_256:
    case BS_SASL_SCRAM_SHA_512: done = id->rounds >= 2; break;
    /* A non-empty server message is an error challenge; the failure follows. */
    case BS_SASL_OAUTHBEARER: done = ab.len == 0; break;
    default: done = false; break;
    }
    if (!done) return false;
    bool was = id->sasl_principal[0] != 0;
    char old[BS_PRINCIPAL_MAX];
    snprintf(old, sizeof old, "%s", id->sasl_principal);
    commit(id);
    if (was && strcmp(old, id->sasl_principal) != 0)
        *close_why = "re-authentication changed the principal";
    return true;
}

/* See identity.h. */
bs_sasl_verdict bs_sasl_track_legacy_client(bs_conn_identity *id, const uint8_t *token, size_t len,
                                            const char **why)
{
    *why = NULL;
    if (!id->legacy_active || !id->legacy_client_turn) {
        *why = "bare SASL token out of turn";
        return BS_SASL_CLOSE;
    }
    id->legacy_client_turn = false;
    return first_token(id, token, len, why);
}

/* See identity.h. */
bool bs_sasl_track_legacy_server(bs_conn_identity *id, const uint8_t *token, size_t len,
                                 const char **close_why)
{
    *close_why = NULL;
    (void)token;
    id->rounds++;
    bool done;
    switch (id->attempt_mech) {
    case BS_SASL_PLAIN: done = true; break;
    case BS_SASL_SCRAM_SHA_256:
    case BS_SASL_SCRAM_SHA_512: done = id->rounds >= 2; break;
    default: done = len == 0; break; /* OAUTHBEARER: empty = success */
    }
    if (!done) {
        id->legacy_client_turn = true;
        return false;
    }
    id->legacy_active = id->legacy_client_turn = false;
    bool was = id->sasl_principal[0] != 0;
    char old[BS_PRINCIPAL_MAX];
    snprintf(old, sizeof old, "%s", id->sasl_principal);
    commit(id);
    if (was && strcmp(old, id->sasl_principal) != 0)
        *close_why = "re-authentication changed the principal";
    return true;
}
