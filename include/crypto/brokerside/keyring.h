/*
 * keyring.h - where data keys come from: a vtable that the local key-file
 * keyring (keyring_local.c) and the AWS KMS keyring both implement.
 *
 * Both operations are asynchronous by contract. A call that returns BS_OK
 * promises exactly one call of `cb`, possibly before the call returns (the
 * local keyring always completes synchronously, in the calling thread); a call
 * that returns an error never calls `cb`. `cb` gets a status: BS_OK with the
 * key material, or the failure (BS_E_CRYPTO: EDEK rejected / tampered / wrong
 * master key; BS_E_IO or BS_E_AGAIN: KMS unreachable or throttled, retry
 * later; BS_E_NOT_FOUND: unknown key reference). Pointers passed to `cb` are
 * valid only during the call; the plaintext key is wiped right after it
 * returns, so `cb` copies it (e.g. into bs_dek_new()).
 *
 * The encryption context (KMS EncryptionContext) is a set of string pairs bound
 * to the EDEK: decryption must present the same set (order does not matter).
 * Brokerside uses {"topic": <topic name>}.
 */
#ifndef BROKERSIDE_KEYRING_H
#define BROKERSIDE_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "brokerside/status.h"

typedef struct bs_kv {
    const char *key;
    const char *value;
} bs_kv;

typedef struct bs_enc_context {
    const bs_kv *pairs;
    size_t n;
} bs_enc_context;

/* Result of generate_dek: a fresh 32-byte plaintext key and its EDEK. */
typedef void (*bs_keyring_dek_cb)(void *arg, bs_status st, const uint8_t *key, size_t key_len,
                                  const uint8_t *edek, size_t edek_len);
/* Result of decrypt_edek: the 32-byte plaintext key. */
typedef void (*bs_keyring_key_cb)(void *arg, bs_status st, const uint8_t *key, size_t key_len);

typedef struct bs_keyring bs_keyring;

typedef struct bs_keyring_ops {
    const char *type; /* "local", "aws" */
    /* Make a new data key under the master key `keyref`, bound to `ctx`. */
    bs_status (*generate_dek)(bs_keyring *kr, const char *keyref, const bs_enc_context *ctx,
                              bs_keyring_dek_cb cb, void *arg);
    /* Unwrap `edek` (made by generate_dek with the same keyref and ctx). */
    bs_status (*decrypt_edek)(bs_keyring *kr, const char *keyref, const uint8_t *edek,
                              size_t edek_len, const bs_enc_context *ctx, bs_keyring_key_cb cb,
                              void *arg);
    /* Release the keyring, wiping its secrets. Only once no operation is pending. */
    void (*destroy)(bs_keyring *kr);
} bs_keyring_ops;

/* Implementations embed this as a member and recover themselves with bs_container_of. */
struct bs_keyring {
    const bs_keyring_ops *ops;
};

/* Dispatch helpers: same contracts as the ops above. */
static inline BS_WUR bs_status bs_keyring_generate_dek(bs_keyring *kr, const char *keyref,
                                                       const bs_enc_context *ctx,
                                                       bs_keyring_dek_cb cb, void *arg)
{
    return kr->ops->generate_dek(kr, keyref, ctx, cb, arg);
}
static inline BS_WUR bs_status bs_keyring_decrypt_edek(bs_keyring *kr, const char *keyref,
                                                       const uint8_t *edek, size_t edek_len,
                                                       const bs_enc_context *ctx,
                                                       bs_keyring_key_cb cb, void *arg)
{
    return kr->ops->decrypt_edek(kr, keyref, edek, edek_len, ctx, cb, arg);
}
/* Destroy `kr`; NULL is a no-op. */
static inline void bs_keyring_free(bs_keyring *kr)
{
    if (kr) kr->ops->destroy(kr);
}

/*
 * The local keyring: one 256-bit master key in a file. Every key reference
 * maps to that master key; EDEKs are bound to the key reference and the
 * encryption context through the AES-GCM AAD (format in
 * docs/encryption-format.md). Thread-safe: operations share only read-only
 * state and complete synchronously.
 */

/* Create a new master key file at `path`: O_EXCL (never overwrites), mode 0600,
 * fsync'd (file and directory). On failure returns BS_E_IO / BS_E_CRYPTO with a
 * human-readable reason in `err` (`errlen` bytes, may be 0) and leaves no file behind. */
bs_status bs_keyring_local_keygen(const char *path, char *err, size_t errlen) BS_WUR;

/* Load the master key file at `path` into a new keyring (*out, free with
 * bs_keyring_free). Refuses (BS_E_CONFIG, reason in `err`) a file that is not a
 * regular file, is group- or world-accessible, or is not in the v1 format;
 * BS_E_IO if it cannot be read. */
bs_status bs_keyring_local_open(const char *path, bs_keyring **out, char *err,
                                size_t errlen) BS_WUR;

/* The master key's id (16 lower-case hex digits, NUL-terminated) of a local keyring. */
const char *bs_keyring_local_key_id(const bs_keyring *kr);

#endif
