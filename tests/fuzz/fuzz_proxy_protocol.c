/* fuzz_proxy_protocol.c - libFuzzer target: the PROXY protocol header parser
 * (v1 and v2) over arbitrary bytes, fed whole and in every prefix the way
 * net/conn.c feeds it; and the CIDR parser. Checks the parser's contract:
 * a complete header never claims more bytes than it was given, a prefix of
 * a complete header is never an error, and an address is always a family
 * the connection can report. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "brokerside/proxy_protocol.h"

/* libFuzzer entry point: one input, never fails (a bug aborts or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size copy: ASan flags any read past the input */
    uint8_t *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    bs_proxy_header h;
    const char *reason;
    char why[200];
    bs_status st = bs_proxy_parse(p, size, &h, &reason, why, sizeof why);
    if (st == BS_OK) {
        if (h.len == 0 || h.len > size || h.len > BS_PROXY_HEADER_MAX) abort();
        if (h.version != 1 && h.version != 2) abort();
        if (h.has_addr && h.src.ss_family != AF_INET && h.src.ss_family != AF_INET6) abort();
        /* every strict prefix of the header is incomplete, never an error */
        for (size_t k = 0; k < h.len; k++) {
            bs_proxy_header h2;
            if (bs_proxy_parse(p, k, &h2, &reason, NULL, 0) != BS_E_SHORT) abort();
        }
    } else if (st == BS_E_MALFORMED || st == BS_E_TOO_LARGE) {
        if (!reason) abort();
    } else if (st != BS_E_SHORT) {
        abort();
    }
    /* the CIDR parser over the same bytes as a string */
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = 0;
        bs_cidr c;
        if (!bs_cidr_parse(s, &c) && c.family != AF_INET && c.family != AF_INET6) abort();
        free(s);
    }
    free(p);
    return 0;
}
