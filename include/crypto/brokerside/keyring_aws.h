/*
 * keyring_aws.h - the `aws` keyring: data keys from AWS KMS or any server that
 * speaks the KMS JSON 1.1 API (TrentService.GenerateDataKey / Decrypt).
 *
 * Implements the bs_keyring vtable of keyring.h over an async bs_aws_http
 * client. Every operation must be called on the client's thread (the control
 * thread) and completes later, from that thread's loop, with exactly one call
 * of its callback. GenerateDataKey asks for KeySpec AES_256 under the key
 * reference (key id, ARN, alias name or alias ARN) with the caller's
 * EncryptionContext; Decrypt sends the EDEK (the KMS CiphertextBlob) with the
 * same KeyId and EncryptionContext, so KMS refuses an EDEK presented for
 * another key or topic.
 *
 * Secrets: the base64 plaintext in the response body, cJSON's copy of it and
 * the decoded key are wiped with OPENSSL_cleanse as soon as the callback
 * returns. Nothing secret is logged; failures are logged with the KMS error
 * code, message and request id.
 *
 * Callback statuses (see keyring.h for the general contract):
 *   BS_OK           key material (32 bytes) and, for generate, the EDEK;
 *   BS_E_AGAIN      throttled, still after the HTTP client's retries;
 *   BS_E_IO         KMS unreachable or 5xx after retries (transport, timeout);
 *   BS_E_NOT_FOUND  NotFoundException: no such key or alias;
 *   BS_E_CRYPTO     InvalidCiphertextException, IncorrectKeyException: the EDEK
 *                   is not valid for this key and encryption context;
 *   BS_E_STATE      DisabledException, KMSInvalidStateException,
 *                   KeyUnavailableException: the key exists but cannot be used;
 *   BS_E_CONFIG     AccessDeniedException, InvalidKeyUsageException, rejected
 *                   or missing credentials: fix IAM policy or configuration;
 *   BS_E_MALFORMED  the KMS refused the request as invalid (other 4xx), or its
 *                   reply was not a usable GenerateDataKey/Decrypt result
 *                   (missing fields, bad base64, a key that is not 32 bytes);
 *   BS_E_TOO_LARGE  reply above the HTTP client's size limit;
 *   BS_E_STATE      also when the keyring was destroyed with the operation
 *                   still pending (its callback then runs inside destroy).
 * Everything but BS_E_AGAIN and BS_E_IO is permanent for that request.
 */
#ifndef BROKERSIDE_KEYRING_AWS_H
#define BROKERSIDE_KEYRING_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/aws_http.h"
#include "brokerside/envelope.h"
#include "brokerside/keyring.h"
#include "brokerside/status.h"

typedef struct bs_keyring_aws_config {
    const char *region;   /* required, e.g. "eu-west-1" (also the SigV4 scope) */
    const char *endpoint; /* NULL = https://kms.<region>.amazonaws.com/; any http(s) URL */
} bs_keyring_aws_config;

/* Create an aws keyring on `http` (borrowed: it must outlive the keyring, and the
 * keyring is used only on its thread). Strings of `cfg` are copied. BS_E_CONFIG
 * for a missing or unsafe region or an endpoint that is not an http(s) URL,
 * BS_E_NOMEM. Free with bs_keyring_free() (pending operations then complete with
 * BS_E_STATE before it returns). */
bs_status bs_keyring_aws_new(bs_aws_http *http, const bs_keyring_aws_config *cfg,
                             bs_keyring **out) BS_WUR;

/* Map a KMS error code (normalised, as in bs_aws_http_response.error_code) and
 * HTTP outcome to the callback status listed above. Pure; exposed for tests. */
bs_status bs_keyring_aws_classify(bs_aws_outcome outcome, const char *error_code);

/* Parse the body of a successful GenerateDataKey (want_edek) or Decrypt reply
 * (untrusted bytes, `len` of them): `Plaintext` must be padded base64 of
 * exactly 32 bytes, written to `key`; with want_edek, `CiphertextBlob` must be
 * base64 of 1..min(edek_cap, BS_ENVELOPE_MAX_EDEK) bytes, written to `edek`
 * with its length in *edek_len. BS_E_MALFORMED otherwise (outputs untouched).
 * Internal copies of the key (cJSON's, the decoder's) are wiped; the caller
 * wipes `key` and the body. Pure; exposed for tests and fuzzing. */
bs_status bs_keyring_aws_parse_reply(const uint8_t *body, size_t len, bool want_edek,
                                     uint8_t key[BS_DEK_KEY_LEN], uint8_t *edek, size_t edek_cap,
                                     size_t *edek_len) BS_WUR;

#endif
