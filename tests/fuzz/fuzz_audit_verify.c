/*
 * fuzz_audit_verify.c - libFuzzer target for the audit file readers in
 * src/observe/audit_verify.c and audit_chain.c: the input is an audit file
 * (untrusted: anyone with write access to the audit directory controls
 * it). bs_audit_verify_files must read any bytes without crashing or
 * leaking, and its verdict must be consistent with its counters;
 * bs_audit_link_from_file must either fail or describe a 32-hex chain id.
 * The input goes through a memfd so the real file-reading path runs. It is
 * verified twice: without a key and with an HMAC key (the signature path).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "brokerside/audit.h"

/* An HMAC key loaded once from a private temp file (the loader wants a
 * 0600 regular file); NULL if that failed, then only the keyless path runs. */
static const bs_audit_key *fuzz_key(void)
{
    static bs_audit_key *key;
    static int done;
    if (done) return key;
    done = 1;
    char path[] = "/tmp/fuzz_audit_key_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    static const uint8_t secret[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                       12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                       23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
    if (write(fd, secret, sizeof secret) == (ssize_t)sizeof secret &&
        bs_audit_key_load(path, &key) != BS_OK)
        key = NULL;
    close(fd);
    unlink(path);
    return key;
}

/* One input: verify (keyless and keyed) and read its link. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("audit", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    const char *paths[] = {path, path}; /* twice: exercises chain transitions */
    bs_audit_verify_result r;
    bs_status st = bs_audit_verify_files(paths, 2, NULL, NULL, &r);
    if (st == BS_OK && ((r.problems == 0) != (r.first_problem == BS_AUDIT_OK))) abort();
    st = bs_audit_verify_files(paths, 1, fuzz_key(), NULL, &r);
    if (st == BS_OK && ((r.problems == 0) != (r.first_problem == BS_AUDIT_OK))) abort();
    bs_audit_link link;
    if (bs_audit_link_from_file(path, &link) == BS_OK && link.valid &&
        (strlen(link.chain_id) != 32 || strlen(link.hash) != 64))
        abort();
    close(fd);
    return 0;
}
