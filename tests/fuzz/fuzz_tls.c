/*
 * fuzz_tls.c - libFuzzer target for the parts of src/net/tls.c that read
 * untrusted bytes without OpenSSL's handshake in between: the first-bytes
 * classifier (plaintext Kafka / HTTP / not TLS) and the principal text built
 * from a peer certificate (DER decoded from the input). Any input must give
 * a known reason and a NUL-terminated principal that fits its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "brokerside/tls.h"

static const char *const known_reasons[] = {"protocol_version",
                                            "no_shared_cipher",
                                            "handshake_failure",
                                            "unknown_ca",
                                            "bad_certificate",
                                            "certificate_required",
                                            "certificate_revoked",
                                            "certificate_expired",
                                            "hostname_mismatch",
                                            "crl_error",
                                            "renegotiation",
                                            "plaintext_kafka",
                                            "http_request",
                                            "proxy_protocol",
                                            "not_tls",
                                            "eof",
                                            "other"};

/* Abort unless r is one of the documented reasons. */
static void check_reason(const char *r)
{
    for (size_t i = 0; i < sizeof known_reasons / sizeof known_reasons[0]; i++)
        if (r && strcmp(r, known_reasons[i]) == 0) return;
    abort();
}

/* libFuzzer entry point. The first byte also picks a small output size so
 * the truncation path is exercised. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)bs_tls_looks_like_plaintext_kafka(data, size);
    check_reason(bs_tls_failure_reason(NULL, SSL_ERROR_SSL, data, size));
    check_reason(bs_tls_failure_reason(NULL, SSL_ERROR_SYSCALL, data, size < 8 ? size : 8));

    const unsigned char *p = data;
    X509 *cert = d2i_X509(NULL, &p, (long)size);
    ERR_clear_error();
    if (cert) {
        char big[BS_TLS_PRINCIPAL_MAX + 1];
        char small[64];
        size_t small_len = size ? (size_t)data[0] % sizeof small + 1 : 1;
        memset(big, 'Z', sizeof big);
        memset(small, 'Z', sizeof small);
        bs_status st = bs_tls_cert_principal(cert, big, sizeof big - 1);
        if (st != BS_OK && st != BS_E_TOO_LARGE && st != BS_E_NOMEM) abort();
        if (big[sizeof big - 1] != 'Z' || strnlen(big, sizeof big - 1) >= sizeof big - 1) abort();
        st = bs_tls_cert_principal(cert, small, small_len);
        if (st != BS_OK && st != BS_E_TOO_LARGE && st != BS_E_NOMEM) abort();
        if (strnlen(small, small_len) >= small_len) abort();
        if (small_len < sizeof small && small[small_len] != 'Z') abort();
        X509_free(cert);
    }
    return 0;
}
