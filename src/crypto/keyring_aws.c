/* keyring_aws.c - the AWS KMS keyring (see keyring_aws.h). */
#include "brokerside/keyring_aws.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/envelope.h"
#include "brokerside/log.h"

#define MOD "kms"

typedef struct aws_op aws_op;

typedef struct aws_keyring {
    bs_keyring base;
    bs_aws_http *http;
    char *region;
    char *endpoint;  /* NULL = the regional default */
    aws_op *pending; /* doubly linked: what destroy must still answer */
} aws_keyring;

/* One request in flight. It outlives a destroyed keyring (kr == NULL) until the
 * HTTP client's callback frees it. */
struct aws_op {
    aws_keyring *kr;
    bool generate;
    bs_keyring_dek_cb dek_cb;
    bs_keyring_key_cb key_cb;
    void *arg;
    aws_op *prev, *next;
};

/* Contract in keyring_aws.h. */
bs_status bs_keyring_aws_classify(bs_aws_outcome outcome, const char *code)
{
    static const struct {
        const char *code;
        bs_status st;
    } map[] = {
        {"NotFoundException", BS_E_NOT_FOUND},    {"InvalidCiphertextException", BS_E_CRYPTO},
        {"IncorrectKeyException", BS_E_CRYPTO},   {"DisabledException", BS_E_STATE},
        {"KMSInvalidStateException", BS_E_STATE}, {"KeyUnavailableException", BS_E_STATE},
        {"AccessDeniedException", BS_E_CONFIG},   {"InvalidKeyUsageException", BS_E_CONFIG},
    };
    switch (outcome) {
    case BS_AWS_OK:
        return BS_OK;
    case BS_AWS_THROTTLED:
        return BS_E_AGAIN;
    case BS_AWS_SERVER_ERROR:
    case BS_AWS_TRANSPORT:
        return BS_E_IO;
    case BS_AWS_AUTH:
    case BS_AWS_NO_CREDENTIALS:
        return BS_E_CONFIG;
    case BS_AWS_TOO_LARGE:
        return BS_E_TOO_LARGE;
    case BS_AWS_CANCELLED:
        return BS_E_STATE;
    case BS_AWS_CLIENT_ERROR:
        break;
    }
    for (size_t i = 0; code && i < BS_ARRAY_LEN(map); i++)
        if (strcmp(code, map[i].code) == 0) return map[i].st;
    return BS_E_MALFORMED;
}

/* Unlink `op` from its keyring's pending list (no-op once detached). */
static void op_unlink(aws_op *op)
{
    if (!op->kr) return;
    if (op->prev)
        op->prev->next = op->next;
    else
        op->kr->pending = op->next;
    if (op->next) op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

/* Report a failure to the op's caller (never with key material). */
static void op_fail(aws_op *op, bs_status st)
{
    if (op->generate)
        op->dek_cb(op->arg, st, NULL, 0, NULL, 0);
    else
        op->key_cb(op->arg, st, NULL, 0);
}

/* Decode the base64 JSON string `s` into out[cap]; *n gets the length. False
 * for anything that is not padded base64 (length a multiple of 4) or does not fit. */
static bool b64_decode(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    size_t len = strlen(s); /* s is cJSON's NUL-terminated copy, not wire bytes */
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap) return false;
    int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (got < 0) return false;
    size_t pad = (s[len - 1] == '=') + (s[len - 2] == '=');
    *n = (size_t)got - pad;
    return true;
}

/* The string member `name` of object `o`, or NULL if absent or not a string. */
static const char *json_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Wipe a cJSON string member in place (cJSON_Delete would free it unwiped). */
static void json_wipe_str(cJSON *o, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v) && v->valuestring)
        OPENSSL_cleanse(v->valuestring, strlen(v->valuestring));
}

/* Contract in keyring_aws.h. */
bs_status bs_keyring_aws_parse_reply(const uint8_t *body, size_t len, bool want_edek,
                                     uint8_t key[BS_DEK_KEY_LEN], uint8_t *edek, size_t edek_cap,
                                     size_t *edek_len)
{
    /* Room for base64's padding slack: decoding writes whole 3-byte groups. */
    uint8_t k[BS_DEK_KEY_LEN + 3];
    size_t k_len = 0, e_len = 0;
    bs_status st = BS_E_MALFORMED;
    cJSON *j = body && len ? cJSON_ParseWithLength((const char *)body, len) : NULL;
    const char *pt = cJSON_IsObject(j) ? json_str(j, "Plaintext") : NULL;
    if (!pt || !b64_decode(pt, k, sizeof k, &k_len) || k_len != BS_DEK_KEY_LEN) goto out;
    if (want_edek) {
        const char *blob = json_str(j, "CiphertextBlob");
        uint8_t *tmp = NULL;
        size_t cap = blob ? strlen(blob) / 4 * 3 : 0;
        if (!blob || cap == 0 || !(tmp = malloc(cap))) goto out;
        bool ok = b64_decode(blob, tmp, cap, &e_len) && e_len > 0 && e_len <= edek_cap &&
                  e_len <= BS_ENVELOPE_MAX_EDEK;
        if (ok) memcpy(edek, tmp, e_len);
        free(tmp);
        if (!ok) goto out;
        *edek_len = e_len;
    }
    memcpy(key, k, BS_DEK_KEY_LEN);
    st = BS_OK;
out:
    OPENSSL_cleanse(k, sizeof k);
    if (j) {
        json_wipe_str(j, "Plaintext");
        cJSON_Delete(j);
    }
    return st;
}

/* Parse a successful reply and hand the key to the caller. The key and the
 * response body (the HTTP client's writable buffer; it held the key in
 * base64) are wiped before returning. */
static void deliver_ok(aws_op *op, const bs_aws_http_response *r)
{
    uint8_t key[BS_DEK_KEY_LEN], edek[BS_ENVELOPE_MAX_EDEK];
    size_t edek_len = 0;
    bs_status st = bs_keyring_aws_parse_reply(r->body, r->body_len, op->generate, key, edek,
                                              sizeof edek, &edek_len);
    if (st != BS_OK) {
        BS_LOG_WARNF(MOD, "%s reply without a usable 32-byte Plaintext%s (request id %s)",
                     op->generate ? "GenerateDataKey" : "Decrypt",
                     op->generate ? " and CiphertextBlob" : "", r->request_id);
        op_fail(op, st);
    } else if (op->generate) {
        op->dek_cb(op->arg, BS_OK, key, BS_DEK_KEY_LEN, edek, edek_len);
    } else {
        op->key_cb(op->arg, BS_OK, key, BS_DEK_KEY_LEN);
    }
    OPENSSL_cleanse(key, sizeof key);
    /* r->body (the plaintext key in base64) is wiped by the HTTP client when
     * the callback returns: the call is sensitive (bs_aws_json_call_sensitive). */
}

/* HTTP completion: classify, deliver, free the op. */
static void on_http_done(const bs_aws_http_response *r, void *arg)
{
    aws_op *op = arg;
    const char *name = op->generate ? "GenerateDataKey" : "Decrypt";
    if (!op->kr) {
        /* The keyring was destroyed and already answered the caller. */
        free(op);
        return;
    }
    op_unlink(op);
    if (r->outcome == BS_AWS_OK) {
        deliver_ok(op, r);
    } else {
        bs_status st = bs_keyring_aws_classify(r->outcome, r->error_code);
        BS_LOG_WARNF(MOD, "%s failed: %s (%s) HTTP %ld %s%s%s after %u attempt(s), request id %s",
                     name, bs_aws_outcome_name(r->outcome), bs_status_name(st), r->status,
                     r->error_code, *r->error_message ? ": " : "",
                     *r->error_message ? r->error_message : r->transport_error, r->attempts,
                     *r->request_id ? r->request_id : "-");
        op_fail(op, st);
    }
    free(op);
}

/* Add the EncryptionContext object for `ctx` (omitted when empty) to `req`.
 * False on allocation failure. */
static bool add_context(cJSON *req, const bs_enc_context *ctx)
{
    if (!ctx || ctx->n == 0) return true;
    cJSON *o = cJSON_AddObjectToObject(req, "EncryptionContext");
    if (!o) return false;
    for (size_t i = 0; i < ctx->n; i++)
        if (!ctx->pairs[i].key || !ctx->pairs[i].value ||
            !cJSON_AddStringToObject(o, ctx->pairs[i].key, ctx->pairs[i].value))
            return false;
    return true;
}

/* Build and send one request; on BS_OK the op is pending and owned by the HTTP
 * client's callback. `req` is consumed. */
static bs_status send_op(aws_keyring *kr, aws_op *op, const char *target, cJSON *req)
{
    bs_status st = BS_E_NOMEM;
    char *body = req ? cJSON_PrintUnformatted(req) : NULL;
    if (!body) goto out;
    st = bs_aws_json_call_sensitive(kr->http, "kms", kr->region, kr->endpoint, target, body,
                                    on_http_done, op);
    if (st != BS_OK) goto out;
    op->kr = kr;
    op->prev = NULL;
    op->next = kr->pending;
    if (kr->pending) kr->pending->prev = op;
    kr->pending = op;
out:
    if (body) {
        /* A Decrypt body carries the EDEK only, but wipe uniformly. */
        OPENSSL_cleanse(body, strlen(body));
        free(body);
    }
    cJSON_Delete(req);
    if (st != BS_OK) free(op);
    return st;
}

/* True for a key reference we are willing to put on the wire. */
static bool keyref_ok(const char *keyref)
{
    size_t n = keyref ? strnlen(keyref, BS_ENVELOPE_MAX_KEYREF + 1) : 0;
    if (n == 0 || n > BS_ENVELOPE_MAX_KEYREF) return false;
    for (size_t i = 0; i < n; i++)
        if (keyref[i] < 0x21 || keyref[i] > 0x7e) return false;
    return true;
}

/* vtable generate_dek: TrentService.GenerateDataKey, KeySpec AES_256. */
static bs_status aws_generate(bs_keyring *base, const char *keyref, const bs_enc_context *ctx,
                              bs_keyring_dek_cb cb, void *arg)
{
    aws_keyring *kr = bs_container_of(base, aws_keyring, base);
    BS_ENSURE(cb && keyref_ok(keyref), BS_E_CONFIG);
    aws_op *op = calloc(1, sizeof *op);
    BS_ENSURE(op, BS_E_NOMEM);
    op->generate = true;
    op->dek_cb = cb;
    op->arg = arg;
    cJSON *req = cJSON_CreateObject();
    if (req && (!cJSON_AddStringToObject(req, "KeyId", keyref) || !add_context(req, ctx) ||
                !cJSON_AddStringToObject(req, "KeySpec", "AES_256"))) {
        cJSON_Delete(req);
        req = NULL;
    }
    return send_op(kr, op, "TrentService.GenerateDataKey", req);
}

/* vtable decrypt_edek: TrentService.Decrypt with KeyId and EncryptionContext. */
static bs_status aws_decrypt(bs_keyring *base, const char *keyref, const uint8_t *edek,
                             size_t edek_len, const bs_enc_context *ctx, bs_keyring_key_cb cb,
                             void *arg)
{
    aws_keyring *kr = bs_container_of(base, aws_keyring, base);
    BS_ENSURE(cb && keyref_ok(keyref), BS_E_CONFIG);
    BS_ENSURE(edek && edek_len > 0 && edek_len <= BS_ENVELOPE_MAX_EDEK, BS_E_MALFORMED);
    size_t b64_cap = 4 * ((edek_len + 2) / 3) + 1;
    char *b64 = malloc(b64_cap);
    aws_op *op = calloc(1, sizeof *op);
    cJSON *req = NULL;
    if (!b64 || !op) {
        free(b64);
        free(op);
        return BS_E_NOMEM;
    }
    EVP_EncodeBlock((unsigned char *)b64, edek, (int)edek_len);
    op->key_cb = cb;
    op->arg = arg;
    req = cJSON_CreateObject();
    if (req && (!cJSON_AddStringToObject(req, "CiphertextBlob", b64) ||
                !cJSON_AddStringToObject(req, "KeyId", keyref) || !add_context(req, ctx))) {
        cJSON_Delete(req);
        req = NULL;
    }
    free(b64);
    return send_op(kr, op, "TrentService.Decrypt", req);
}

/* vtable destroy: answer pending operations with BS_E_STATE, then free. The ops
 * themselves stay allocated until the HTTP client calls back. */
static void aws_destroy(bs_keyring *base)
{
    aws_keyring *kr = bs_container_of(base, aws_keyring, base);
    while (kr->pending) {
        aws_op *op = kr->pending;
        op_unlink(op);
        op->kr = NULL;
        op_fail(op, BS_E_STATE);
    }
    free(kr->region);
    free(kr->endpoint);
    free(kr);
}

static const bs_keyring_ops aws_ops = {
    .type = "aws",
    .generate_dek = aws_generate,
    .decrypt_edek = aws_decrypt,
    .destroy = aws_destroy,
};

/* Contract in keyring_aws.h. */
bs_status bs_keyring_aws_new(bs_aws_http *http, const bs_keyring_aws_config *cfg, bs_keyring **out)
{
    BS_ENSURE(http && cfg && out && cfg->region && *cfg->region, BS_E_CONFIG);
    /* The region lands in the host name and the SigV4 scope: letters, digits, '-'. */
    for (const char *p = cfg->region; *p; p++)
        BS_ENSURE((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-', BS_E_CONFIG);
    if (cfg->endpoint)
        BS_ENSURE(strncmp(cfg->endpoint, "http://", 7) == 0 ||
                      strncmp(cfg->endpoint, "https://", 8) == 0,
                  BS_E_CONFIG);
    aws_keyring *kr = calloc(1, sizeof *kr);
    BS_ENSURE(kr, BS_E_NOMEM);
    kr->base.ops = &aws_ops;
    kr->http = http;
    kr->region = strdup(cfg->region);
    kr->endpoint = cfg->endpoint ? strdup(cfg->endpoint) : NULL;
    if (!kr->region || (cfg->endpoint && !kr->endpoint)) {
        free(kr->region);
        free(kr->endpoint);
        free(kr);
        return BS_E_NOMEM;
    }
    *out = &kr->base;
    return BS_OK;
}
