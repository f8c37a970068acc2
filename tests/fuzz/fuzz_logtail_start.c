/* libFuzzer target for the log4j start-line parser (bs_logtail_parse_start):
 * no crash, no read past the input, and on success the level and the rest
 * lie inside the input and the level is 4-5 upper-case letters. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/logtail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy so ASan flags any read past `size`. */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    int64_t ms;
    const char *lv, *rest;
    size_t ll, rl;
    if (bs_logtail_parse_start(buf, size, 0, &ms, &lv, &ll, &rest, &rl) == BS_OK) {
        if (ll < 4 || ll > 5 || lv < buf || lv + ll > buf + size) abort();
        for (size_t i = 0; i < ll; i++)
            if (lv[i] < 'A' || lv[i] > 'Z') abort();
        if (rest < lv + ll || rest + rl != buf + size) abort();
    }
    free(buf);
    return 0;
}
