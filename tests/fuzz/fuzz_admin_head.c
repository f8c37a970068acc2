/* libFuzzer target for the admin endpoint's HTTP request-head parser
 * (bs_admin_parse_head): no crash, no read past the input, and on success
 * the reported spans lie inside the input and respect the grammar. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy so ASan flags any read past `size`. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    bs_admin_request rq;
    if (bs_admin_parse_head(buf, size, &rq) == BS_OK) {
        if (rq.head_len == 0 || rq.head_len > size) abort();
        if (rq.method < buf || rq.method + rq.method_len > buf + rq.head_len) abort();
        if (rq.path < buf || rq.path + rq.path_len > buf + rq.head_len) abort();
        if (rq.method_len == 0 || rq.path_len == 0 || rq.path[0] != '/') abort();
        if (rq.minor_version != 0 && rq.minor_version != 1) abort();
        /* A valid head stays valid, with the same length, whatever follows. */
        bs_admin_request again;
        uint8_t *longer = malloc(size + 1);
        if (!longer) abort();
        memcpy(longer, buf, size);
        longer[size] = 0x01;
        if (bs_admin_parse_head(longer, size + 1, &again) != BS_OK || again.head_len != rq.head_len)
            abort();
        free(longer);
    }
    free(buf);
    return 0;
}
