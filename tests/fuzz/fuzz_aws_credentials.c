/* libFuzzer target for the AWS shared credentials/config file parser
 * (bs_aws_credentials_parse_profile), in both file styles: no crash, no
 * read past the input, no leak; what it accepts is a non-empty key pair of
 * C strings without surrounding whitespace. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/aws_credentials.h"
#include "brokerside/cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Check one parsed result against the contract and clear it. */
static void check(bs_status st, bs_aws_credentials *c)
{
    if (st == BS_OK) {
        const char *v[] = {c->access_key_id, c->secret_access_key, c->session_token};
        if (!v[0] || !v[1] || !*v[0] || !*v[1]) abort();
        for (size_t i = 0; i < 3; i++) {
            size_t n = v[i] ? strlen(v[i]) : 0;
            if (n && (bs_byte_is_space((uint8_t)v[i][0]) || bs_byte_is_space((uint8_t)v[i][n - 1])))
                abort();
        }
    } else if (st != BS_E_NOT_FOUND && st != BS_E_MALFORMED && st != BS_E_NOMEM) {
        abort();
    } else if (c->access_key_id) {
        abort(); /* nothing filled on failure */
    }
    bs_aws_credentials_clear(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy so ASan flags any read past `size`. */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    static const char *const profiles[] = {"default", "prod", "x"};
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
        for (int style = 0; style < 2; style++) {
            bs_aws_credentials c = {0};
            check(bs_aws_credentials_parse_profile(buf, size, profiles[i], style, &c), &c);
        }
    free(buf);
    return 0;
}
