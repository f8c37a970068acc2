/*
 * bs_bench_crypto.c - record encryption throughput on one core.
 *
 * usage: bs_bench_crypto [--seconds S] [--value-bytes N] [--openssl]
 *
 * Encrypts (then decrypts) N-byte values (default 1024) into full envelopes with
 * one DEK for S seconds each (default 3) and prints plaintext MB/s (10^6 bytes),
 * the envelope overhead per record, and with --openssl the single-core figure of
 * `openssl speed -evp aes-256-gcm -bytes N` and the ratio between the two.
 * It also measures the whole Produce-path rewrite of an uncompressed 100-record batch
 * (parse, encrypt every value, re-encode, CRC-32C) as batch_encrypt_MBps.
 * Output is `key=value` lines, easy to grep from a script. Exit 1 on any failure.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerside/envelope.h"
#include "brokerside/record_batch.h"

/* Monotonic seconds as a double. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run `openssl speed` for `bytes`-byte blocks; returns bytes/s or -1. */
static double openssl_speed(size_t bytes, int seconds)
{
    char cmd[256], line[512];
    snprintf(cmd, sizeof cmd, "openssl speed -evp aes-256-gcm -bytes %zu -seconds %d 2>/dev/null",
             bytes, seconds);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double kbps = -1;
    while (fgets(line, sizeof line, p)) {
        double v;
        /* The result line: "AES-256-GCM    2164791.85k" (1000s of bytes per second). */
        if (strncmp(line, "AES-256-GCM", 11) == 0 && sscanf(line + 11, " %lfk", &v) == 1) kbps = v;
    }
    pclose(p);
    return kbps < 0 ? -1 : kbps * 1000.0;
}

/* Record batch callback: encrypt the value with the DEK in `ctx`. */
static bs_status encrypt_value(void *ctx, const bs_record_batch *b, const bs_record *rec,
                               bs_wbuf *nv, bool *replace)
{
    (void)b;
    if (!rec->value) return BS_OK;
    *replace = true;
    return bs_envelope_encrypt(ctx, "bench", 5, rec->value, (size_t)rec->value_len, nv);
}

/* Parse arguments, run both loops, print the figures. */
int main(int argc, char **argv)
{
    double seconds = 3;
    size_t vbytes = 1024;
    int with_openssl = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--value-bytes") && i + 1 < argc)
            vbytes = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--openssl"))
            with_openssl = 1;
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--value-bytes N] [--openssl]\n", argv[0]);
            return 2;
        }
    }
    if (seconds <= 0 || vbytes == 0 || vbytes > (64u << 20)) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    uint8_t key[BS_DEK_KEY_LEN], edek[69]; /* 69 bytes: the local keyring's EDEK size */
    uint8_t *val = malloc(vbytes);
    if (!val || RAND_bytes(key, sizeof key) != 1 || RAND_bytes(edek, sizeof edek) != 1 ||
        RAND_bytes(val, (int)vbytes) != 1)
        return 1;
    bs_dek *dek = NULL;
    if (bs_dek_new(key, "alias/bench", edek, sizeof edek, 0, &dek) != BS_OK) return 1;
    bs_wbuf env, back;
    bs_wbuf_init(&env, 0);
    bs_wbuf_init(&back, 0);

    /* Encryption: the Produce-path cost per record (envelope build included). */
    unsigned long n = 0;
    double t0 = now_s(), t1;
    do {
        for (int k = 0; k < 256; k++) {
            bs_wbuf_reset(&env);
            if (bs_envelope_encrypt(dek, "bench", 5, val, vbytes, &env) != BS_OK) return 1;
        }
        n += 256;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    double enc_s = t1 - t0, enc = (double)n * (double)vbytes / enc_s;

    /* Decryption of the last envelope (the Fetch-path cost per record). */
    unsigned long m = 0;
    t0 = now_s();
    do {
        for (int k = 0; k < 256; k++) {
            bs_wbuf_reset(&back);
            if (bs_envelope_decrypt(dek, "bench", 5, env.data, env.len, &back) != BS_OK) return 1;
        }
        m += 256;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    double dec = (double)m * (double)vbytes / (t1 - t0);

    /* The batch path: 100 records with 16-byte keys, uncompressed. */
    enum { NREC = 100 };
    bs_record_spec specs[NREC];
    for (int i = 0; i < NREC; i++)
        specs[i] = (bs_record_spec){.offset_delta = i,
                                    .key = key,
                                    .key_len = 16,
                                    .value = val,
                                    .value_len = (int32_t)vbytes};
    bs_record_batch hdr = {.last_offset_delta = NREC - 1, .producer_id = -1, .base_sequence = -1};
    bs_wbuf batch, rewritten;
    bs_wbuf_init(&batch, 0);
    bs_wbuf_init(&rewritten, 0);
    bs_record_batch parsed;
    if (bs_record_batch_build(&hdr, specs, NREC, &batch) != BS_OK) return 1;
    unsigned long nb = 0;
    t0 = now_s();
    do {
        for (int k = 0; k < 16; k++) {
            bs_wbuf_reset(&rewritten);
            if (bs_record_batch_parse(batch.data, batch.len, &parsed) != BS_OK ||
                bs_record_batch_transform(&parsed, 1u << 30, encrypt_value, dek, &rewritten) !=
                    BS_OK)
                return 1;
        }
        nb += 16;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    double batch_rate = (double)nb * NREC * (double)vbytes / (t1 - t0);
    bs_wbuf_free(&batch);
    bs_wbuf_free(&rewritten);

    printf("value_bytes=%zu\n", vbytes);
    printf("envelope_overhead_bytes=%zu\n", env.len - vbytes);
    printf("encrypt_records_per_s=%.0f\n", (double)n / enc_s);
    printf("encrypt_MBps=%.1f\n", enc / 1e6);
    printf("decrypt_MBps=%.1f\n", dec / 1e6);
    printf("batch_encrypt_MBps=%.1f\n", batch_rate / 1e6);
    if (with_openssl) {
        int secs = seconds >= 1 ? (int)(seconds + 0.5) : 1;
        double ref = openssl_speed(vbytes, secs);
        if (ref <= 0) {
            fprintf(stderr, "openssl speed did not run or its output was not understood\n");
            return 1;
        }
        printf("openssl_aes_256_gcm_MBps=%.1f\n", ref / 1e6);
        printf("encrypt_vs_openssl_pct=%.1f\n", 100.0 * enc / ref);
    }
    bs_wbuf_free(&env);
    bs_wbuf_free(&back);
    bs_dek_free(dek);
    free(val);
    return 0;
}
