/*
 * fuzz_audit_verify.c - libFuzzer target for the audit file readers in
 * src/observe/audit_verify.c and audit_chain.c: the input is an audit file
 * (untrusted: anyone with write access to the audit directory controls
 * it). bs_audit_verify_files must read any bytes without crashing or
 * leaking, and its verdict must be consistent with its counters;
 * bs_audit_link_from_file must either fail or describe a 32-hex chain id.
 * The input goes through a memfd so the real file-reading path runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "brokerside/audit.h"

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
    bs_audit_link link;
    if (bs_audit_link_from_file(path, &link) == BS_OK && link.valid &&
        (strlen(link.chain_id) != 32 || strlen(link.hash) != 64))
        abort();
    close(fd);
    return 0;
}
