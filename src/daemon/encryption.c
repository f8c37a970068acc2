/*
 * encryption.c - the encryption-at-rest runtime of the daemon (see encryption.h).
 */
#include "brokerside/encryption.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/aws_credentials.h"
#include "brokerside/aws_http.h"
#include "brokerside/dek_manager.h"
#include "brokerside/keyring.h"
#include "brokerside/keyring_aws.h"
#include "brokerside/log.h"
#include "brokerside/record_crypto.h"

struct bs_encryption {
    bs_aws_credentials_provider *creds; /* aws only */
    bs_aws_http *http;                  /* aws only */
    bs_keyring *keyring;
    bs_dek_manager *manager;
    bs_record_crypto *rc;
    bs_kafka_hook hook;
    bs_kafka_session_factory factory;
    const bs_encryption_config *started; /* the section the keyring was built from */
};

/* Same string, NULLs included. */
static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* bs_worker_hooks.init: this worker's DEK worker, bound for the record hook. */
static bs_status worker_init(void *arg, struct ev_loop *loop, void **state)
{
    bs_encryption *e = arg;
    bs_dek_worker *w = NULL;
    BS_GUARD(bs_dek_worker_new(e->manager, loop, &w));
    bs_record_crypto_bind_worker(w);
    *state = w;
    return BS_OK;
}

/* bs_worker_hooks.fini: unbind and free this worker's DEK worker (wipes its keys). */
static void worker_fini(void *arg, void *state)
{
    (void)arg;
    bs_record_crypto_bind_worker(NULL);
    bs_dek_worker_free(state);
}

/* See encryption.h. */
void bs_encryption_free(bs_encryption *e)
{
    if (!e) return;
    bs_record_crypto_free(e->rc);
    bs_dek_manager_free(e->manager);
    bs_keyring_free(e->keyring);
    bs_aws_http_free(e->http);
    bs_aws_credentials_provider_free(e->creds);
    free(e);
}

/* Build the aws keyring: credentials chain (explicit keys of the aws section
 * if given), HTTP client on `control`, KMS keyring. */
static bs_status aws_keyring(bs_encryption *e, struct ev_loop *control, const bs_config *cfg,
                             char *err, size_t errlen)
{
    const bs_aws_config *aws = &cfg->aws;
    bs_aws_credentials_config cc = {.access_key_id = aws->access_key_id,
                                    .secret_access_key = aws->secret_access_key,
                                    .session_token = aws->session_token,
                                    .profile = aws->profile};
    bs_aws_http_config hc = {.ca_file = aws->ca_file,
                             .connect_timeout_ms = (long)(aws->connect_timeout_s * 1000),
                             .timeout_ms = (long)(aws->request_timeout_s * 1000),
                             .max_attempts = aws->max_attempts};
    bs_keyring_aws_config kc = {.region = cfg->encryption.kms_region,
                                .endpoint = cfg->encryption.kms_endpoint};
    bs_status st = bs_aws_credentials_provider_new(&cc, &e->creds);
    if (st == BS_OK) st = bs_aws_http_new(control, &hc, e->creds, &e->http);
    if (st == BS_OK) st = bs_keyring_aws_new(e->http, &kc, &e->keyring);
    if (st != BS_OK)
        snprintf(err, errlen, "encryption.kms (aws): cannot set up the KMS client (%s)",
                 bs_status_name(st));
    return st;
}

/* See encryption.h. */
bs_status bs_encryption_check(const bs_config *cfg, char *err, size_t errlen)
{
    const bs_encryption_config *enc = &cfg->encryption;
    if (!enc->enabled || enc->kms_type != BS_KMS_LOCAL) return BS_OK;
    char why[256] = "";
    bs_keyring *kr = NULL;
    bs_status st = bs_keyring_local_open(enc->key_file, &kr, why, sizeof why);
    if (st != BS_OK) {
        snprintf(err, errlen, "%s: encryption.kms.key_file: %s", cfg->path, why);
        return BS_E_CONFIG;
    }
    bs_keyring_free(kr);
    return BS_OK;
}

/* See encryption.h. */
bs_status bs_encryption_start(struct ev_loop *control, const bs_config *cfg, bs_server *srv,
                              bs_encryption **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen) err[0] = 0;
    const bs_encryption_config *enc = &cfg->encryption;
    if (!enc->enabled) {
        snprintf(err, errlen, "encryption is not configured");
        return BS_E_CONFIG;
    }
    bs_encryption *e = calloc(1, sizeof *e);
    BS_ENSURE(e, BS_E_NOMEM);
    bs_status st = BS_OK;
    if (enc->kms_type == BS_KMS_LOCAL) {
        char why[256] = "";
        st = bs_keyring_local_open(enc->key_file, &e->keyring, why, sizeof why);
        if (st != BS_OK)
            snprintf(err, errlen, "encryption.kms.key_file: %s", why);
        else
            BS_LOG_INFOF("encryption", "local keyring %s (master key id %s)", enc->key_file,
                         bs_keyring_local_key_id(e->keyring));
    } else {
        st = aws_keyring(e, control, cfg, err, errlen);
    }
    if (st == BS_OK) {
        bs_dek_manager_config mc = {.keyring = e->keyring,
                                    .loop = control,
                                    .policy = {enc->dek_max_records, enc->dek_max_age_s},
                                    .cache_max_entries = enc->decrypt_cache_max_entries,
                                    .cache_ttl_s = enc->decrypt_cache_ttl_s};
        st = bs_dek_manager_new(&mc, &e->manager);
        if (st != BS_OK)
            snprintf(err, errlen, "encryption.dek: invalid settings (%s)", bs_status_name(st));
    }
    if (st == BS_OK) {
        st = bs_record_crypto_new(enc, cfg->kafka.max_frame_bytes, &e->rc);
        if (st != BS_OK) snprintf(err, errlen, "encryption: %s", bs_status_name(st));
    }
    if (st == BS_OK) {
        bs_worker_hooks wh = {.init = worker_init, .fini = worker_fini, .arg = e};
        st = bs_server_set_worker_hooks(srv, &wh);
        if (st != BS_OK) snprintf(err, errlen, "encryption: server already started");
    }
    if (st != BS_OK) {
        bs_encryption_free(e);
        return st;
    }
    e->started = enc;
    e->hook = bs_record_crypto_hook(e->rc);
    e->factory = (bs_kafka_session_factory){.hooks = &e->hook, .n_hooks = 1};
    *out = e;
    return BS_OK;
}

/* See encryption.h. */
bs_status bs_encryption_reload(bs_encryption *e, const bs_config *cfg)
{
    const bs_encryption_config *enc = &cfg->encryption;
    if (!e || !enc->enabled) return BS_OK;
    const bs_encryption_config *o = e->started;
    if (o->kms_type != enc->kms_type || !same_str(o->key_file, enc->key_file) ||
        !same_str(o->kms_region, enc->kms_region) ||
        !same_str(o->kms_endpoint, enc->kms_endpoint)) {
        /* The keys the new rules name may live in the new keyring only. */
        BS_LOG_WARNF("encryption", "reload: encryption.kms changed, which needs a restart; "
                                   "keeping the running topic rules until then");
        return BS_OK;
    }
    bs_dek_policy policy = {enc->dek_max_records, enc->dek_max_age_s};
    BS_GUARD(bs_dek_manager_set_policy(e->manager, &policy));
    bs_record_crypto_set_config(e->rc, enc);
    BS_LOG_INFOF("encryption", "reload: %zu topic rules, unmatched topics %s", enc->n_topics,
                 enc->reject_unmatched ? "rejected" : "plaintext");
    return BS_OK;
}

/* See encryption.h. */
const bs_kafka_session_factory *bs_encryption_factory(bs_encryption *e)
{
    return &e->factory;
}
