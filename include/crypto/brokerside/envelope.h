/*
 * envelope.h - the per-record encryption envelope and data encryption keys (DEKs).
 *
 * An encrypted record value is a self-contained envelope (byte layout in
 * docs/encryption-format.md):
 *   magic BE 5E C0 DE | version 0x01 | algorithm 0x01 (AES-256-GCM) |
 *   keyref length uint16 | keyref | EDEK length uint16 | EDEK | IV (12) | ciphertext | tag (16)
 * The GCM additional authenticated data is every byte before the IV (magic,
 * version, algorithm, keyref, EDEK) followed by uint16 topic length | topic, so an
 * envelope only decrypts under the topic it was written for.
 *
 * A bs_dek holds one plaintext data key (wiped on free), the EDEK and key
 * reference it came with, its creation time and use count. IVs are the DEK's
 * random 4-byte prefix followed by a 64-bit big-endian counter, so they never
 * repeat under one DEK object; a DEK refuses to encrypt past
 * BS_DEK_HARD_MAX_RECORDS. A bs_dek is not thread-safe: one owner (a worker)
 * at a time. Envelope parsing is pure and reads through bs_cursor.
 */
#ifndef BROKERSIDE_ENVELOPE_H
#define BROKERSIDE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brokerside/buf.h"
#include "brokerside/status.h"

#define BS_ENVELOPE_MAGIC_LEN 4
#define BS_ENVELOPE_VERSION 1
#define BS_ENVELOPE_ALG_AES256GCM 1
#define BS_ENVELOPE_IV_LEN 12
#define BS_ENVELOPE_TAG_LEN 16
#define BS_DEK_KEY_LEN 32
/* Longest key reference (KMS key ids, ARNs, aliases, local names all fit). */
#define BS_ENVELOPE_MAX_KEYREF 1024
/* Longest EDEK (a KMS CiphertextBlob for a 256-bit key is about 180 bytes). */
#define BS_ENVELOPE_MAX_EDEK 4096
/* Fixed bytes of an envelope besides keyref, EDEK and ciphertext. */
#define BS_ENVELOPE_FIXED_LEN (4 + 1 + 1 + 2 + 2 + BS_ENVELOPE_IV_LEN + BS_ENVELOPE_TAG_LEN)
/* Encryptions allowed under one DEK whatever the policy says: far below the 2^32
 * GCM invocation bound, so a misconfiguration cannot approach it. */
#define BS_DEK_HARD_MAX_RECORDS (1ull << 28)

extern const uint8_t bs_envelope_magic[BS_ENVELOPE_MAGIC_LEN];

typedef struct bs_dek bs_dek;

/* Create a DEK from a 32-byte plaintext `key` (copied; the caller wipes its own
 * copy), the key reference `keyref` (1..BS_ENVELOPE_MAX_KEYREF printable ASCII
 * bytes, NUL-terminated) and the EDEK that unwraps to it (copied), created at
 * `created_s` (any monotonic clock in seconds; the same clock must be used for
 * rotation checks). Free with bs_dek_free(). BS_E_CONFIG for a bad keyref or EDEK
 * length, BS_E_CRYPTO if OpenSSL cannot set up AES-256-GCM, BS_E_NOMEM. */
bs_status bs_dek_new(const uint8_t key[BS_DEK_KEY_LEN], const char *keyref, const uint8_t *edek,
                     size_t edek_len, uint64_t created_s, bs_dek **out) BS_WUR;

/* Wipe the plaintext key (OPENSSL_cleanse) and release everything; NULL is a no-op. */
void bs_dek_free(bs_dek *dek);

/* The key reference, NUL-terminated (owned by the DEK, valid until bs_dek_free). */
const char *bs_dek_keyref(const bs_dek *dek);
/* The EDEK bytes and their length in *len (owned by the DEK, valid until bs_dek_free). */
const uint8_t *bs_dek_edek(const bs_dek *dek, size_t *len);
/* The creation time given to bs_dek_new(). */
uint64_t bs_dek_created(const bs_dek *dek);
/* Number of encryptions done with this DEK (IVs consumed). */
uint64_t bs_dek_uses(const bs_dek *dek);

/* When an encrypting DEK must be replaced. */
typedef struct bs_dek_policy {
    uint64_t max_records; /* 1..BS_DEK_HARD_MAX_RECORDS */
    uint64_t max_age_s;   /* > 0 */
} bs_dek_policy;

/* BS_OK if the policy is usable, BS_E_CONFIG otherwise (zero or above the hard cap). */
bs_status bs_dek_policy_check(const bs_dek_policy *p) BS_WUR;

/* True when `dek` has done max_records encryptions (or the hard cap), or is at least
 * max_age_s old at `now_s`. A clock that went backwards counts as expired too, so a
 * key is never kept on a time it cannot vouch for. */
bool bs_dek_should_rotate(const bs_dek *dek, const bs_dek_policy *p, uint64_t now_s);

/* Encrypt `pt_len` bytes at `pt` for `topic` (`topic_len` bytes, 1..65535) and append
 * the envelope to `out`. Consumes one IV. BS_E_STATE once the DEK reached
 * BS_DEK_HARD_MAX_RECORDS (rotate it), BS_E_CONFIG for a bad topic length,
 * BS_E_CRYPTO, BS_E_NOMEM / BS_E_TOO_LARGE from `out`; `out` is unchanged on error. */
bs_status bs_envelope_encrypt(bs_dek *dek, const char *topic, size_t topic_len, const uint8_t *pt,
                              size_t pt_len, bs_wbuf *out) BS_WUR;

/* Size of the envelope for `pt_len` bytes under `dek`. */
size_t bs_envelope_size(const bs_dek *dek, size_t pt_len);

/* Views into a parsed envelope (no copies; they live as long as the input). */
typedef struct bs_envelope {
    uint8_t version;
    uint8_t algorithm;
    const uint8_t *keyref;
    size_t keyref_len;
    const uint8_t *edek;
    size_t edek_len;
    const uint8_t *iv; /* BS_ENVELOPE_IV_LEN bytes */
    const uint8_t *ciphertext;
    size_t ciphertext_len;
    const uint8_t *tag; /* BS_ENVELOPE_TAG_LEN bytes */
    size_t header_len;  /* bytes before the IV: the envelope's part of the AAD */
} bs_envelope;

/* Parse `len` bytes at `p`. BS_E_MALFORMED if it is not an envelope or lengths are
 * inconsistent; BS_E_UNSUPPORTED for an envelope of another version or algorithm. */
bs_status bs_envelope_parse(const uint8_t *p, size_t len, bs_envelope *out) BS_WUR;

/* Decrypt and authenticate the envelope at `p` for `topic` with `dek` and append the
 * plaintext to `out`. BS_E_CRYPTO when the DEK's keyref/EDEK are not the envelope's,
 * or the tag does not verify (tampering, wrong topic); then `out` is unchanged and no
 * unauthenticated plaintext is left in it. Parse errors as bs_envelope_parse(). */
bs_status bs_envelope_decrypt(bs_dek *dek, const char *topic, size_t topic_len, const uint8_t *p,
                              size_t len, bs_wbuf *out) BS_WUR;

/* True when the bytes start with the envelope magic (any version): a produced value
 * that already looks like an envelope must be rejected, not wrapped again. */
bool bs_envelope_is_envelope(const uint8_t *p, size_t len);

#endif
