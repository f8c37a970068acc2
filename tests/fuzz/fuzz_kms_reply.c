/* libFuzzer target for the KMS reply parser (bs_keyring_aws_parse_reply):
 * arbitrary bytes as a GenerateDataKey and as a Decrypt reply body. No crash,
 * no read past the input; a success always yields a 32-byte key and an EDEK
 * within the caller's capacity, and a failure leaves the outputs untouched. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/keyring_aws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy so ASan flags any read past `size`. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    uint8_t key[BS_DEK_KEY_LEN], edek[200];
    size_t edek_len = (size_t)-1;
    memset(key, 0xAA, sizeof key);
    bs_status st = bs_keyring_aws_parse_reply(buf, size, true, key, edek, sizeof edek, &edek_len);
    if (st == BS_OK && (edek_len == 0 || edek_len > sizeof edek)) abort();
    if (st != BS_OK && (st != BS_E_MALFORMED || edek_len != (size_t)-1)) abort();
    edek_len = (size_t)-1;
    st = bs_keyring_aws_parse_reply(buf, size, false, key, NULL, 0, &edek_len);
    if (st != BS_OK && st != BS_E_MALFORMED) abort();
    if (edek_len != (size_t)-1) abort(); /* a Decrypt reply never writes an EDEK */
    free(buf);
    return 0;
}
