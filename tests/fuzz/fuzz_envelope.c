/*
 * fuzz_envelope.c - libFuzzer target for envelope parsing and decryption
 * (src/crypto/envelope.c). The input is treated as a record value fetched from
 * the broker: it is checked with bs_envelope_is_envelope, parsed, and decrypted
 * with a fixed DEK (key 32 zero bytes, keyref "fuzz", EDEK "edek", topic "t");
 * the seeds in corpus/fuzz_envelope were made with bs_envelope_encrypt and that
 * DEK, so mutations exercise the authentication path. Invariants: a parsed
 * envelope is always recognised as one; a failed decryption appends nothing.
 */
#include <stdint.h>
#include <stdlib.h>

#include "brokerside/envelope.h"

static bs_dek *dek;

/* libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dek) {
        static const uint8_t key[BS_DEK_KEY_LEN] = {0};
        if (bs_dek_new(key, "fuzz", (const uint8_t *)"edek", 4, 0, &dek) != BS_OK) abort();
    }
    bs_envelope e;
    bs_status st = bs_envelope_parse(data, size, &e);
    if (st == BS_OK) {
        if (!bs_envelope_is_envelope(data, size)) abort();
        if (e.header_len + BS_ENVELOPE_IV_LEN + e.ciphertext_len + BS_ENVELOPE_TAG_LEN != size)
            abort();
    }
    bs_wbuf out;
    bs_wbuf_init(&out, 0);
    st = bs_envelope_decrypt(dek, "t", 1, data, size, &out);
    if (st != BS_OK && out.len != 0) abort();
    if (st == BS_OK && out.len != e.ciphertext_len) abort();
    bs_wbuf_free(&out);
    return 0;
}
