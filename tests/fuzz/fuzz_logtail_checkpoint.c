/* libFuzzer target for the log tailer's checkpoint reader
 * (bs_logtail_parse_checkpoint): no crash, no read past the input; every
 * entry it accepts lies inside the input, has a head of at most 64 bytes, an
 * offset that fits off_t and a path without NUL or newline. */
#include <stdlib.h>
#include <string.h>

#include "brokerside/logtail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct span {
    const char *buf;
    size_t size, entries;
} span;

/* Check one accepted entry against the contract. */
static bs_status check_entry(const bs_logtail_ckpt_entry *e, void *arg)
{
    span *s = arg;
    if (e->head_len > 64 || e->off > (uint64_t)INT64_MAX) abort();
    if (e->path < s->buf || e->path + e->path_len > s->buf + s->size) abort();
    if (memchr(e->path, '\0', e->path_len) || memchr(e->path, '\n', e->path_len)) abort();
    s->entries++;
    return BS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy so ASan flags any read past `size`. */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    span s = {buf, size, 0};
    uint64_t seq;
    bs_status st = bs_logtail_parse_checkpoint(buf, size, &seq, check_entry, &s);
    if (st != BS_OK && st != BS_E_MALFORMED) abort();
    if (st == BS_OK && (seq > (uint64_t)INT64_MAX || size == 0 || buf[size - 1] != '\n')) abort();
    free(buf);
    return 0;
}
