/*
 * fuzz_config.c - libFuzzer target for the configuration loader
 * (src/daemon/config.c): comment stripping, syntax-error location, cJSON
 * parsing and every section walker. Any input must either load or fail with
 * BS_E_CONFIG and at least one message, without leaks or UB.
 * Host names in inputs are looked up with getaddrinfo; run it where lookups
 * fail fast (no network or a local resolver).
 */
#include <stdint.h>
#include <stdlib.h>

#include "brokerside/config.h"

/* libFuzzer entry point: parse `data` as a config file that lives in /nonexistent
 * so relative file names never reach real files. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_config *cfg = NULL;
    bs_config_errors errs = {0};
    bs_status st = bs_config_parse("/nonexistent/fuzz.json", (const char *)data, size, &cfg, &errs);
    if (st == BS_OK) {
        if (!cfg || errs.n != 0) abort();
        bs_config_free(cfg);
    } else if (cfg != NULL || (st == BS_E_CONFIG && errs.n == 0)) {
        abort();
    }
    bs_config_errors_free(&errs);
    return 0;
}
