/*
 * test_kafka_session_sasl.c - SASL inspection in the Kafka session, driven
 * through bs_session_ops with byte streams: PLAIN, SCRAM and OAUTHBEARER
 * (JWKS-verified, bad signature, alg none, expired), the principal only
 * after the broker's success, hostile clients (malformed SASL bytes,
 * SaslAuthenticate without SaslHandshake, legacy v0, requests after a
 * failed authentication, re-authentication as someone else), per-principal
 * metrics, and no secret in the identity.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "brokerside/buf.h"
#include "brokerside/identity.h"
#include "brokerside/kafka.h"
#include "brokerside/kafka_session.h"
#include "brokerside/metrics.h"
#include "jwt_test_util.h"
#include "test.h"

#define BUFCAP 4096

typedef struct harness {
    const bs_session_ops *ops;
    void *st;
    bs_listener_config lc;
    bs_kafka_config kc;
    bs_buf cin, cfwd, cback, uin, ufwd, uback;
    const bs_conn_identity *id; /* seen by the observer */
    int32_t corr;
} harness;

static bs_status obs_open(void *arg, const bs_session_info *info, void **conn)
{
    harness *h = arg;
    h->id = info->identity;
    *conn = h;
    return BS_OK;
}
static void obs_req(void *conn, const bs_kafka_request_header *hd, bool ok, bool exp,
                    const uint8_t *f, size_t len, size_t flen)
{
    (void)conn, (void)hd, (void)ok, (void)exp, (void)f, (void)len, (void)flen;
}
static void obs_resp(void *conn, const bs_kafka_inflight *req, int64_t lat, const uint8_t *f,
                     size_t len, size_t flen)
{
    (void)conn, (void)req, (void)lat, (void)f, (void)len, (void)flen;
}

static bs_kafka_observer g_obs = {.open = obs_open, .on_request = obs_req, .on_response = obs_resp};
static bs_kafka_session_factory g_fac = {.observer = &g_obs};

static void h_open(harness *h, const char *cert)
{
    memset(h, 0, sizeof *h);
    h->ops = bs_kafka_session_ops();
    h->lc.name = "sasl";
    h->kc.max_frame_bytes = 1 << 20;
    g_obs.arg = h;
    bs_session_info info = {.listener = &h->lc, .kafka = &h->kc, .peer = "10.0.0.2:4444",
                            .principal = cert};
    CHECK_EQ(h->ops->open(&g_fac, &info, &h->st), BS_OK);
    bs_buf *bs[] = {&h->cin, &h->cfwd, &h->cback, &h->uin, &h->ufwd, &h->uback};
    for (size_t i = 0; i < BS_ARRAY_LEN(bs); i++)
        CHECK_EQ(bs_buf_init(bs[i], BUFCAP), BS_OK);
}

static void h_close(harness *h)
{
    h->ops->close(h->st);
    bs_buf *bs[] = {&h->cin, &h->cfwd, &h->cback, &h->uin, &h->ufwd, &h->uback};
    for (size_t i = 0; i < BS_ARRAY_LEN(bs); i++)
        bs_buf_free(bs[i]);
}

/* Feed one frame from a side; the status of the filter. Forwarded bytes are dropped. */
static bs_status feed(harness *h, bool client, const bs_wbuf *w)
{
    bs_buf *in = client ? &h->cin : &h->uin, *fwd = client ? &h->cfwd : &h->ufwd,
           *back = client ? &h->cback : &h->uback;
    CHECK_EQ(bs_buf_append(in, w->data, w->len), BS_OK);
    bs_status st = BS_OK;
    for (int i = 0; i < 4 && st == BS_OK; i++) {
        st = client ? h->ops->on_client_bytes(h->st, in, fwd, back)
                    : h->ops->on_upstream_bytes(h->st, in, fwd, back);
        bs_buf_consume(fwd, bs_buf_readable(fwd));
    }
    return st;
}

/* Request frames. */
static void begin_req(bs_wbuf *w, harness *h, int16_t api, int16_t ver)
{
    bs_wbuf_reset(w);
    bs_wbuf_put_be32(w, 0);
    CHECK_EQ(bs_kafka_put_request_header(w, api, ver, ++h->corr, (const uint8_t *)"t", 1), BS_OK);
}
static void end_frame(bs_wbuf *w)
{
    bs_wbuf_patch_be32(w, 0, (uint32_t)(w->len - 4));
}

static bs_status send_handshake(harness *h, const char *mech, int16_t ver)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    begin_req(&w, h, 17, ver);
    bs_kafka_put_string(&w, false, (const uint8_t *)mech, (int32_t)strlen(mech));
    end_frame(&w);
    bs_status st = feed(h, true, &w);
    bs_wbuf_free(&w);
    return st;
}

static bs_status send_auth(harness *h, const void *p, size_t n)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    begin_req(&w, h, 36, 2);
    bs_kafka_put_bytes(&w, true, p, (int32_t)n);
    bs_wbuf_put_u8(&w, 0);
    end_frame(&w);
    bs_status st = feed(h, true, &w);
    bs_wbuf_free(&w);
    return st;
}

static bs_status send_heartbeat(harness *h)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    begin_req(&w, h, 12, 0);
    bs_kafka_put_string(&w, false, (const uint8_t *)"g", 1);
    bs_wbuf_put_be32(&w, 1);
    bs_kafka_put_string(&w, false, (const uint8_t *)"m", 1);
    end_frame(&w);
    bs_status st = feed(h, true, &w);
    bs_wbuf_free(&w);
    return st;
}

/* Broker answers (response header v0 for SaslHandshake v1, v1 for SaslAuthenticate v2). */
static bs_status answer_handshake(harness *h, int16_t err)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_be32(&w, (uint32_t)h->corr);
    bs_wbuf_put_be16(&w, (uint16_t)err);
    bs_wbuf_put_be32(&w, 1);
    bs_kafka_put_string(&w, false, (const uint8_t *)"PLAIN", 5);
    end_frame(&w);
    bs_status st = feed(h, false, &w);
    bs_wbuf_free(&w);
    return st;
}

static bs_status answer_auth(harness *h, int16_t err, const char *server)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_be32(&w, (uint32_t)h->corr);
    bs_wbuf_put_u8(&w, 0);
    bs_wbuf_put_be16(&w, (uint16_t)err);
    bs_kafka_put_string(&w, true, NULL, -1);
    bs_kafka_put_bytes(&w, true, (const uint8_t *)server, (int32_t)strlen(server));
    bs_wbuf_put_be64(&w, 3600000);
    bs_wbuf_put_u8(&w, 0);
    end_frame(&w);
    bs_status st = feed(h, false, &w);
    bs_wbuf_free(&w);
    return st;
}

static bs_status answer_heartbeat(harness *h)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_be32(&w, 0);
    bs_wbuf_put_be32(&w, (uint32_t)h->corr);
    bs_wbuf_put_be16(&w, 0);
    end_frame(&w);
    bs_status st = feed(h, false, &w);
    bs_wbuf_free(&w);
    return st;
}

static int64_t principal_requests(const char *principal, const char *api)
{
    return bs_metric_value(bs_metrics_counter_kv("brokerside_principal_requests_total",
                                                 "Kafka requests by principal and API", "principal",
                                                 principal, "api", api, NULL));
}

static void test_plain_and_metrics(void)
{
    harness h;
    h_open(&h, "CN=client,O=x;SAN=DNS:c");
    CHECK(h.id != NULL);
    CHECK_STR(bs_conn_identity_principal(h.id), "User:CN=client,O=x");
    CHECK_EQ(send_handshake(&h, "PLAIN", 1), BS_OK);
    CHECK_EQ(answer_handshake(&h, 0), BS_OK);
    CHECK_EQ(send_auth(&h, "\0alice\0alice-secret", 19), BS_OK);
    /* not yet: the broker has not answered */
    CHECK_STR(bs_conn_identity_principal(h.id), "User:CN=client,O=x");
    CHECK_EQ(answer_auth(&h, 0, ""), BS_OK);
    CHECK_STR(bs_conn_identity_principal(h.id), "User:alice");
    CHECK_EQ(h.id->mech, BS_SASL_PLAIN);
    int64_t before = principal_requests("User:alice", "Heartbeat");
    CHECK_EQ(send_heartbeat(&h), BS_OK);
    CHECK_EQ(answer_heartbeat(&h), BS_OK);
    CHECK_EQ(principal_requests("User:alice", "Heartbeat"), before + 1);
    CHECK(memmem(h.id, sizeof *h.id, "alice-secret", 12) == NULL);
    /* KIP-368: re-authenticating as someone else closes */
    CHECK_EQ(send_handshake(&h, "PLAIN", 1), BS_OK);
    CHECK_EQ(answer_handshake(&h, 0), BS_OK);
    CHECK(send_auth(&h, "\0mallory\0pw", 11) != BS_OK);
    h_close(&h);
}

static void test_scram_two_rounds(void)
{
    harness h;
    h_open(&h, NULL);
    CHECK_EQ(send_handshake(&h, "SCRAM-SHA-512", 1), BS_OK);
    CHECK_EQ(answer_handshake(&h, 0), BS_OK);
    CHECK_EQ(send_auth(&h, "n,,n=bob,r=rOprNGfwEbeRWgbNEkqO", 31), BS_OK);
    CHECK_EQ(answer_auth(&h, 0, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"), BS_OK);
    CHECK_STR(bs_conn_identity_principal(h.id), "User:ANONYMOUS");
    CHECK_EQ(send_auth(&h, "c=biws,r=x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", 56), BS_OK);
    CHECK_EQ(answer_auth(&h, 0, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), BS_OK);
    CHECK_STR(bs_conn_identity_principal(h.id), "User:bob");
    CHECK(memmem(h.id, sizeof *h.id, "rOprNG", 6) == NULL);
    CHECK(memmem(h.id, sizeof *h.id, "dHzbZa", 6) == NULL);
    h_close(&h);
}

static void test_hostile_clients(void)
{
    harness h;
    /* SaslAuthenticate without SaslHandshake */
    h_open(&h, NULL);
    CHECK(send_auth(&h, "\0alice\0pw", 9) != BS_OK);
    h_close(&h);
    /* legacy v0 handshake with a mechanism whose bare tokens cannot be followed */
    h_open(&h, NULL);
    CHECK(send_handshake(&h, "GSSAPI", 0) != BS_OK);
    h_close(&h);
    /* malformed PLAIN bytes */
    h_open(&h, NULL);
    CHECK_EQ(send_handshake(&h, "PLAIN", 1), BS_OK);
    CHECK_EQ(answer_handshake(&h, 0), BS_OK);
    CHECK(send_auth(&h, "alice", 5) != BS_OK);
    h_close(&h);
    /* a SaslAuthenticate body that is not one */
    h_open(&h, NULL);
    CHECK_EQ(send_handshake(&h, "PLAIN", 1), BS_OK);
    CHECK_EQ(answer_handshake(&h, 0), BS_OK);
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    begin_req(&w, &h, 36, 2);
    bs_wbuf_put_u8(&w, 0x7f); /* compact length 126 with 0 bytes behind it */
    end_frame(&w);
    CHECK(feed(&h, true, &w) != BS_OK);
    bs_wbuf_free(&w);
    h_close(&h);
    /* bytes after a failed authentication */
    h_open(&h, NULL);
    CHECK_EQ(send_handshake(&h, "PLAIN", 1), BS_OK);
    CHECK_EQ(answer_handshake(&h, 0), BS_OK);
    CHECK_EQ(send_auth(&h, "\0alice\0wrong", 12), BS_OK);
    CHECK_EQ(answer_auth(&h, 58, ""), BS_OK);
    CHECK_EQ(h.id->last_result, BS_SASL_RESULT_FAILED);
    CHECK_STR(h.id->attempt_principal, "User:alice");
    CHECK_STR(bs_conn_identity_principal(h.id), "User:ANONYMOUS");
    CHECK(send_heartbeat(&h) != BS_OK);
    h_close(&h);
}

/* A bare size-prefixed token (legacy SASL after SaslHandshake v0). */
static bs_status bare(harness *h, bool client, const void *p, size_t n)
{
    bs_wbuf w;
    bs_wbuf_init(&w, 0);
    bs_wbuf_put_be32(&w, (uint32_t)n);
    bs_wbuf_put(&w, p, n);
    bs_status st = feed(h, client, &w);
    bs_wbuf_free(&w);
    return st;
}

/* kafka-python 2.0 and other old clients: SaslHandshake v0, then bare tokens. */
static void test_legacy_plain(void)
{
    harness h;
    h_open(&h, NULL);
    CHECK_EQ(send_handshake(&h, "PLAIN", 0), BS_OK);
    /* the v0 answer has the same shape as v1's */
    CHECK_EQ(answer_handshake(&h, 0), BS_OK);
    CHECK_EQ(bare(&h, true, "\0dave\0dave-secret", 16), BS_OK);
    CHECK_STR(bs_conn_identity_principal(h.id), "User:ANONYMOUS");
    CHECK_EQ(bare(&h, false, "", 0), BS_OK); /* the broker's empty token: success */
    CHECK_STR(bs_conn_identity_principal(h.id), "User:dave");
    CHECK(memmem(h.id, sizeof *h.id, "dave-secret", 11) == NULL);
    /* Kafka frames again afterwards */
    CHECK_EQ(send_heartbeat(&h), BS_OK);
    CHECK_EQ(answer_heartbeat(&h), BS_OK);
    h_close(&h);
}

/* OAUTHBEARER with a JWKS: the principal counts only for a verified token. */
static void test_oauthbearer(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char jwk[1024], path[] = "/tmp/bs-jwks-XXXXXX";
    tu_jwk(k, "k1", jwk, sizeof jwk);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    dprintf(fd, "{\"keys\":[%s]}", jwk);
    close(fd);
    char cfgtext[512];
    snprintf(cfgtext, sizeof cfgtext,
             "{\"oauthbearer\":{\"jwks_file\":\"%s\",\"issuer\":\"https://idp\",\"audience\":\"kafka\"}}",
             path);
    cJSON *j = cJSON_Parse(cfgtext);
    bs_identity_config *cfg = NULL;
    CHECK_EQ(bs_identity_config_parse(j, NULL, NULL, NULL, &cfg), BS_OK);
    cJSON_Delete(j);
    bs_identity_set_config(cfg);

    struct {
        EVP_PKEY *key;
        const char *hdr;
        long exp;
        const char *want;
        const char *note;
    } cases[] = {
        {k, "{\"alg\":\"ES256\",\"kid\":\"k1\"}", 600, "User:carol", NULL},
        {other, "{\"alg\":\"ES256\",\"kid\":\"k1\"}", 600, "User:ANONYMOUS",
         "token signature does not verify"},
        {NULL, "{\"alg\":\"none\"}", 600, "User:ANONYMOUS", "unsigned token (alg none)"},
        {k, "{\"alg\":\"ES256\",\"kid\":\"k1\"}", -600, "User:ANONYMOUS", "token expired"},
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(cases); i++) {
        char claims[256], tok[4096], msg[4200];
        snprintf(claims, sizeof claims,
                 "{\"sub\":\"carol\",\"iss\":\"https://idp\",\"aud\":\"kafka\",\"exp\":%ld}",
                 (long)time(NULL) + cases[i].exp);
        tu_jwt(cases[i].key, cases[i].hdr, claims, tok, sizeof tok);
        int n = snprintf(msg, sizeof msg, "n,,\x01" "auth=Bearer %s\x01\x01", tok);
        harness h;
        h_open(&h, NULL);
        CHECK_EQ(send_handshake(&h, "OAUTHBEARER", 1), BS_OK);
        CHECK_EQ(answer_handshake(&h, 0), BS_OK);
        CHECK_EQ(send_auth(&h, msg, (size_t)n), BS_OK);
        /* the broker (which may trust other tokens) accepts */
        CHECK_EQ(answer_auth(&h, 0, ""), BS_OK);
        CHECK_STR(bs_conn_identity_principal(h.id), cases[i].want);
        if (cases[i].note) {
            CHECK(!h.id->sasl_verified);
            CHECK_STR(h.id->attempt_note, cases[i].note);
        } else {
            CHECK(h.id->sasl_verified);
        }
        /* the token is nowhere in the identity */
        const char *sig = strrchr(tok, '.');
        CHECK(memmem(h.id, sizeof *h.id, tok, 20) == NULL);
        if (sig && strlen(sig) > 10) CHECK(memmem(h.id, sizeof *h.id, sig + 1, 10) == NULL);
        h_close(&h);
    }
    bs_identity_set_config(NULL);
    bs_identity_config_free(cfg);
    unlink(path);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

/* identity.metrics_max_principals: a principal past the cap counts as "_other", and each
 * such fold is counted as a dropped series (docs/observability.md, "Metric levels"). */
static void test_principal_cap_counted(void)
{
    bs_identity_config cfg = *bs_identity_config_current();
    const bs_identity_config *old = bs_identity_config_current();
    cfg.metrics_max_principals = 1;
    bs_identity_set_config(&cfg);
    bs_metric *dropped = bs_metrics_counter_kv(
        "brokerside_metric_series_dropped_total",
        "Series not exported, or folded into \"_other\", because a cardinality cap was reached",
        "metric", "brokerside_principal_requests_total", NULL);
    int64_t d0 = bs_metric_value(dropped), o0 = principal_requests("_other", "Heartbeat");
    /* two new principals, cap 1: at least the second is folded (the first may be too, if an
     * earlier test already took the only place) */
    const char *certs[] = {"CN=cap-a,O=x", "CN=cap-b,O=x"};
    for (size_t i = 0; i < 2; i++) {
        harness h;
        h_open(&h, certs[i]);
        CHECK_EQ(send_heartbeat(&h), BS_OK);
        CHECK_EQ(answer_heartbeat(&h), BS_OK);
        h_close(&h);
    }
    int64_t folded = bs_metric_value(dropped) - d0;
    CHECK(folded >= 1 && folded <= 2);
    CHECK_EQ(principal_requests("_other", "Heartbeat") - o0, folded);
    bs_identity_set_config(old);
}

int main(void)
{
    RUN(test_plain_and_metrics);
    RUN(test_scram_two_rounds);
    RUN(test_hostile_clients);
    RUN(test_oauthbearer);
    RUN(test_legacy_plain);
    RUN(test_principal_cap_counted);
    bs_kafka_session_reset_globals();
    bs_metrics_shutdown();
    return test_report();
}
