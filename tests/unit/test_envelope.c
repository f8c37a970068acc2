/* Unit tests for src/crypto/envelope.c: round trips, tampering with every byte, topic
 * binding, IV uniqueness, DEK limits and rotation, parse errors. */
#include <openssl/rand.h>
#include <stdint.h>

#include <unistd.h>

#include "brokerside/envelope.h"
#include "brokerside/record_batch.h"
#include "test.h"

static const char *TOPIC = "payments";

/* A DEK whose key bytes are all `fill` and whose EDEK is derived from it. */
static bs_dek *make_dek(const char *keyref, uint8_t fill, uint64_t created)
{
    uint8_t key[BS_DEK_KEY_LEN], edek[69];
    memset(key, fill, sizeof key);
    memset(edek, fill ^ 0x5a, sizeof edek);
    bs_dek *d = NULL;
    CHECK_EQ(bs_dek_new(key, keyref, edek, sizeof edek, created, &d), BS_OK);
    return d;
}

/* Values of many sizes encrypt into well-formed envelopes and decrypt back. */
static void test_round_trip(void)
{
    bs_dek *d = make_dek("alias/payments", 1, 100);
    if (!d) return;
    const size_t sizes[] = {0, 1, 15, 16, 17, 1024, 100000};
    static uint8_t pt[100000];
    CHECK_EQ(RAND_bytes(pt, sizeof pt), 1);
    for (size_t i = 0; i < BS_ARRAY_LEN(sizes); i++) {
        bs_wbuf env, back;
        bs_wbuf_init(&env, 0);
        bs_wbuf_init(&back, 0);
        CHECK_EQ(bs_envelope_encrypt(d, TOPIC, strlen(TOPIC), pt, sizes[i], &env), BS_OK);
        CHECK_EQ(env.len, bs_envelope_size(d, sizes[i]));
        CHECK(bs_envelope_is_envelope(env.data, env.len));
        bs_envelope e;
        CHECK_EQ(bs_envelope_parse(env.data, env.len, &e), BS_OK);
        CHECK_EQ(e.version, BS_ENVELOPE_VERSION);
        CHECK(e.keyref_len == 14 && memcmp(e.keyref, "alias/payments", 14) == 0);
        size_t el;
        const uint8_t *edek = bs_dek_edek(d, &el);
        CHECK(e.edek_len == el && memcmp(e.edek, edek, el) == 0);
        CHECK_EQ(e.ciphertext_len, sizes[i]);
        if (sizes[i] >= 16) CHECK(memcmp(e.ciphertext, pt, 16) != 0); /* not plaintext */
        CHECK_EQ(bs_envelope_decrypt(d, TOPIC, strlen(TOPIC), env.data, env.len, &back), BS_OK);
        CHECK(back.len == sizes[i] && (sizes[i] == 0 || memcmp(back.data, pt, sizes[i]) == 0));
        bs_wbuf_free(&env);
        bs_wbuf_free(&back);
    }
    CHECK_EQ(bs_dek_uses(d), BS_ARRAY_LEN(sizes));
    /* A separate DEK object with the same key, keyref and EDEK (as a decrypting worker
     * would build from the keyring) decrypts too. */
    bs_dek *d2 = make_dek("alias/payments", 1, 0);
    bs_wbuf env, back;
    bs_wbuf_init(&env, 0);
    bs_wbuf_init(&back, 0);
    CHECK_EQ(bs_envelope_encrypt(d, TOPIC, strlen(TOPIC), (const uint8_t *)"hi", 2, &env), BS_OK);
    CHECK_EQ(bs_envelope_decrypt(d2, TOPIC, strlen(TOPIC), env.data, env.len, &back), BS_OK);
    CHECK(back.len == 2 && memcmp(back.data, "hi", 2) == 0);
    bs_wbuf_free(&env);
    bs_wbuf_free(&back);
    bs_dek_free(d2);
    bs_dek_free(d);
}

/* Flipping any single bit of any byte, the topic, or the DEK makes decryption fail, and
 * nothing is appended to the output. */
static void test_tamper_every_byte(void)
{
    bs_dek *d = make_dek("alias/payments", 2, 0);
    if (!d) return;
    bs_wbuf env, back;
    bs_wbuf_init(&env, 0);
    bs_wbuf_init(&back, 0);
    const char *msg = "card=4111111111111111;amount=10.00";
    CHECK_EQ(bs_envelope_encrypt(d, TOPIC, strlen(TOPIC), (const uint8_t *)msg, strlen(msg), &env),
             BS_OK);
    bs_wbuf_put(&back, "x", 1);
    int accepted = 0, wrote = 0;
    for (size_t i = 0; i < env.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            env.data[i] ^= (uint8_t)(1u << bit);
            bs_status st = bs_envelope_decrypt(d, TOPIC, strlen(TOPIC), env.data, env.len, &back);
            if (st == BS_OK) accepted++;
            if (back.len != 1) wrote++;
            env.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    CHECK_EQ(accepted, 0);
    CHECK_EQ(wrote, 0);
    /* Truncated at every length, or extended by a byte. */
    for (size_t cut = 0; cut < env.len; cut++)
        if (bs_envelope_decrypt(d, TOPIC, strlen(TOPIC), env.data, cut, &back) == BS_OK) accepted++;
    bs_wbuf_put_u8(&env, 0);
    CHECK_EQ(bs_envelope_decrypt(d, TOPIC, strlen(TOPIC), env.data, env.len, &back), BS_E_CRYPTO);
    env.len--;
    CHECK_EQ(accepted, 0);
    /* Another topic, a topic that is a prefix, a different DEK with the same keyref and EDEK. */
    CHECK_EQ(bs_envelope_decrypt(d, "payment", 7, env.data, env.len, &back), BS_E_CRYPTO);
    CHECK_EQ(bs_envelope_decrypt(d, "payments2", 9, env.data, env.len, &back), BS_E_CRYPTO);
    bs_dek *other = make_dek("alias/payments", 2, 0);
    CHECK_EQ(bs_envelope_decrypt(other, TOPIC, strlen(TOPIC), env.data, env.len, &back), BS_OK);
    bs_dek_free(other);
    uint8_t key[BS_DEK_KEY_LEN];
    memset(key, 3, sizeof key); /* same EDEK bytes, wrong plaintext key */
    size_t el;
    const uint8_t *edek = bs_dek_edek(d, &el);
    CHECK_EQ(bs_dek_new(key, "alias/payments", edek, el, 0, &other), BS_OK);
    back.len = 1;
    CHECK_EQ(bs_envelope_decrypt(other, TOPIC, strlen(TOPIC), env.data, env.len, &back),
             BS_E_CRYPTO);
    CHECK_EQ(back.len, 1);
    bs_dek_free(other);
    other = make_dek("alias/other", 2, 0); /* right key, other keyref */
    CHECK_EQ(bs_envelope_decrypt(other, TOPIC, strlen(TOPIC), env.data, env.len, &back),
             BS_E_CRYPTO);
    bs_dek_free(other);
    bs_wbuf_free(&env);
    bs_wbuf_free(&back);
    bs_dek_free(d);
}

/* The keyref or EDEK of an envelope swapped for another valid one (lengths consistent)
 * fails authentication, proving both are in the AAD rather than only compared. */
static void test_header_fields_bound(void)
{
    bs_dek *a = make_dek("key-a", 4, 0), *b = make_dek("key-b", 4, 0);
    if (!a || !b) return;
    bs_wbuf env, back;
    bs_wbuf_init(&env, 0);
    bs_wbuf_init(&back, 0);
    CHECK_EQ(bs_envelope_encrypt(a, TOPIC, strlen(TOPIC), (const uint8_t *)"secret", 6, &env),
             BS_OK);
    /* Re-label the envelope as key-b: b has the same key and EDEK, so only the AAD stops it. */
    env.data[8 + 4] = 'b';
    CHECK_EQ(bs_envelope_decrypt(b, TOPIC, strlen(TOPIC), env.data, env.len, &back), BS_E_CRYPTO);
    CHECK_EQ(back.len, 0);
    bs_wbuf_free(&env);
    bs_wbuf_free(&back);
    bs_dek_free(a);
    bs_dek_free(b);
}

/* IVs never repeat across many encryptions, nor across two DEKs of the same key. */
static int cmp_iv(const void *x, const void *y)
{
    return memcmp(x, y, BS_ENVELOPE_IV_LEN);
}

/* No IV repeats across 2 x 50000 encryptions under two DEK objects of the same key. */
static void test_iv_uniqueness(void)
{
    enum { N = 50000 };
    bs_dek *d1 = make_dek("k", 5, 0), *d2 = make_dek("k", 5, 0);
    if (!d1 || !d2) return;
    uint8_t(*ivs)[BS_ENVELOPE_IV_LEN] = malloc(2 * N * BS_ENVELOPE_IV_LEN);
    CHECK(ivs != NULL);
    if (!ivs) return;
    bs_wbuf env;
    bs_wbuf_init(&env, 0);
    for (int i = 0; i < 2 * N; i++) {
        bs_wbuf_reset(&env);
        CHECK_EQ(bs_envelope_encrypt(i < N ? d1 : d2, "t", 1, (const uint8_t *)"v", 1, &env),
                 BS_OK);
        bs_envelope e;
        CHECK_EQ(bs_envelope_parse(env.data, env.len, &e), BS_OK);
        memcpy(ivs[i], e.iv, BS_ENVELOPE_IV_LEN);
    }
    qsort(ivs, 2 * N, BS_ENVELOPE_IV_LEN, cmp_iv);
    int dups = 0;
    for (int i = 1; i < 2 * N; i++)
        dups += memcmp(ivs[i - 1], ivs[i], BS_ENVELOPE_IV_LEN) == 0;
    CHECK_EQ(dups, 0);
    CHECK_EQ(bs_dek_uses(d1), N);
    free(ivs);
    bs_wbuf_free(&env);
    bs_dek_free(d1);
    bs_dek_free(d2);
}

/* Policy validation, rotation by record count, by age, and on a clock going backwards. */
static void test_rotation_policy(void)
{
    bs_dek_policy p = {.max_records = 3, .max_age_s = 60};
    CHECK_EQ(bs_dek_policy_check(&p), BS_OK);
    bs_dek_policy bad[] = {{0, 60}, {3, 0}, {BS_DEK_HARD_MAX_RECORDS + 1, 60}, {UINT64_MAX, 1}};
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++)
        CHECK_EQ(bs_dek_policy_check(&bad[i]), BS_E_CONFIG);
    bs_dek_policy max = {BS_DEK_HARD_MAX_RECORDS, 1};
    CHECK_EQ(bs_dek_policy_check(&max), BS_OK);
    CHECK(BS_DEK_HARD_MAX_RECORDS <= (1ull << 32) / 8); /* far below the GCM bound */
    bs_dek *d = make_dek("k", 6, 1000);
    if (!d) return;
    bs_wbuf env;
    bs_wbuf_init(&env, 0);
    CHECK(!bs_dek_should_rotate(d, &p, 1000));
    for (int i = 0; i < 3; i++) {
        CHECK(!bs_dek_should_rotate(d, &p, 1001));
        CHECK_EQ(bs_envelope_encrypt(d, "t", 1, (const uint8_t *)"v", 1, &env), BS_OK);
    }
    CHECK(bs_dek_should_rotate(d, &p, 1001)); /* max_records reached */
    bs_dek_free(d);
    d = make_dek("k", 6, 1000);
    CHECK(!bs_dek_should_rotate(d, &p, 1059));
    CHECK(bs_dek_should_rotate(d, &p, 1060)); /* max_age_s reached */
    CHECK(bs_dek_should_rotate(d, &p, 999));  /* clock went backwards */
    bs_dek_policy huge = {UINT64_MAX, UINT64_MAX};
    CHECK(!bs_dek_should_rotate(d, &huge, 2000));
    bs_wbuf_free(&env);
    bs_dek_free(d);
}

/* DEK construction rejects bad keyrefs and EDEK sizes; encryption rejects bad topics. */
static void test_dek_arguments(void)
{
    uint8_t key[BS_DEK_KEY_LEN] = {0}, edek[8] = {1};
    bs_dek *d = NULL;
    CHECK_EQ(bs_dek_new(key, "", edek, sizeof edek, 0, &d), BS_E_CONFIG);
    CHECK_EQ(bs_dek_new(key, "has space", edek, sizeof edek, 0, &d), BS_E_CONFIG);
    CHECK_EQ(bs_dek_new(key, "k", edek, 0, 0, &d), BS_E_CONFIG);
    CHECK_EQ(bs_dek_new(key, "k", edek, BS_ENVELOPE_MAX_EDEK + 1, 0, &d), BS_E_CONFIG);
    char longref[BS_ENVELOPE_MAX_KEYREF + 2];
    memset(longref, 'a', sizeof longref - 1);
    longref[sizeof longref - 1] = 0;
    CHECK_EQ(bs_dek_new(key, longref, edek, sizeof edek, 0, &d), BS_E_CONFIG);
    CHECK(d == NULL);
    CHECK_EQ(bs_dek_new(key, "k", edek, sizeof edek, 0, &d), BS_OK);
    CHECK_STR(bs_dek_keyref(d), "k");
    bs_wbuf env;
    bs_wbuf_init(&env, 0);
    CHECK_EQ(bs_envelope_encrypt(d, "", 0, (const uint8_t *)"v", 1, &env), BS_E_CONFIG);
    CHECK_EQ(env.len, 0);
    CHECK_EQ(bs_dek_uses(d), 0);
    /* An output limit that cannot hold the envelope: refused, no IV burned needlessly. */
    bs_wbuf small;
    bs_wbuf_init(&small, 10);
    CHECK_EQ(bs_envelope_encrypt(d, "t", 1, (const uint8_t *)"v", 1, &small), BS_E_TOO_LARGE);
    CHECK_EQ(small.len, 0);
    CHECK_EQ(bs_dek_uses(d), 0);
    bs_wbuf_free(&small);
    bs_wbuf_free(&env);
    bs_dek_free(d);
    bs_dek_free(NULL);
}

/* Parser errors: not an envelope, other versions, inconsistent lengths. */
static void test_parse_errors(void)
{
    bs_envelope e;
    CHECK(!bs_envelope_is_envelope((const uint8_t *)"\xBE\x5E\xC0", 3));
    CHECK(!bs_envelope_is_envelope((const uint8_t *)"{\"json\":1}", 10));
    CHECK_EQ(bs_envelope_parse((const uint8_t *)"plain value", 11, &e), BS_E_MALFORMED);
    uint8_t v[64] = {0xBE, 0x5E, 0xC0, 0xDE, 2, 1};
    CHECK(bs_envelope_is_envelope(v, sizeof v)); /* any version is ours: reject injection */
    CHECK_EQ(bs_envelope_parse(v, sizeof v, &e), BS_E_UNSUPPORTED);
    v[4] = 1;
    v[5] = 9;
    CHECK_EQ(bs_envelope_parse(v, sizeof v, &e), BS_E_UNSUPPORTED);
    v[5] = 1;
    /* keyref length 0, then one that runs past the end. */
    CHECK_EQ(bs_envelope_parse(v, sizeof v, &e), BS_E_MALFORMED);
    v[6] = 0x10;
    CHECK_EQ(bs_envelope_parse(v, sizeof v, &e), BS_E_MALFORMED);
    /* keyref "k", EDEK of 1 byte, IV, but 15 bytes of tag only. */
    v[6] = 0, v[7] = 1, v[8] = 'k', v[9] = 0, v[10] = 1, v[11] = 0xee;
    CHECK_EQ(bs_envelope_parse(v, 12 + 12 + 15, &e), BS_E_MALFORMED);
    CHECK_EQ(bs_envelope_parse(v, 12 + 12 + 16, &e), BS_OK);
    CHECK_EQ(e.ciphertext_len, 0);
    CHECK_EQ(e.header_len, 12);
    v[8] = ' '; /* keyref must be printable without spaces */
    CHECK_EQ(bs_envelope_parse(v, 12 + 12 + 16, &e), BS_E_MALFORMED);
}

/* Record batch callbacks: encrypt / decrypt each non-null value of topic TOPIC. */
static bs_status enc_value(void *ctx, const bs_record_batch *b, const bs_record *rec, bs_wbuf *nv,
                           bool *replace)
{
    (void)b;
    if (!rec->value) return BS_OK;
    if (bs_envelope_is_envelope(rec->value, (size_t)rec->value_len)) return BS_E_MALFORMED;
    *replace = true;
    return bs_envelope_encrypt(ctx, TOPIC, strlen(TOPIC), rec->value, (size_t)rec->value_len, nv);
}

/* Decrypt each non-null value. */
static bs_status dec_value(void *ctx, const bs_record_batch *b, const bs_record *rec, bs_wbuf *nv,
                           bool *replace)
{
    (void)b;
    if (!rec->value) return BS_OK;
    *replace = true;
    return bs_envelope_decrypt(ctx, TOPIC, strlen(TOPIC), rec->value, (size_t)rec->value_len, nv);
}

static int count_plain;
/* Count values that are not envelopes or still show plaintext. */
static bs_status check_encrypted(void *ctx, const bs_record_batch *b, const bs_record *rec,
                                 bs_wbuf *nv, bool *replace)
{
    (void)ctx, (void)b, (void)nv, (void)replace;
    if (rec->value && !bs_envelope_is_envelope(rec->value, (size_t)rec->value_len)) count_plain++;
    if (rec->value && memmem(rec->value, (size_t)rec->value_len, "value ", 6)) count_plain++;
    return BS_OK;
}

/* Batches written by kafka-python and librdkafka, every codec: values encrypted into envelopes (no
 * plaintext left), then decrypted; kafka-python finds the original records again. */
static void test_batch_encrypt_decrypt(void)
{
    const char *files[] = {"batch_none.bin",     "batch_gzip.bin",     "batch_snappy.bin",
                           "batch_lz4.bin",      "batch_zstd.bin",     "batch_txn_zstd.bin",
                           "rdk_batch_none.bin", "rdk_batch_gzip.bin", "rdk_batch_snappy.bin",
                           "rdk_batch_lz4.bin",  "rdk_batch_zstd.bin"};
    const char *src = getenv("BS_SOURCE_DIR");
    bs_dek *d = make_dek("alias/payments", 9, 0);
    if (!d) return;
    for (size_t i = 0; i < BS_ARRAY_LEN(files); i++) {
        char path[1024], tmp[] = "/tmp/bs_encbatch_XXXXXX", cmd[4096];
        snprintf(path, sizeof path, "%s/tests/unit/data/%s", src ? src : ".", files[i]);
        bs_wbuf in, enc, dec;
        bs_wbuf_init(&in, 0);
        bs_wbuf_init(&enc, 0);
        bs_wbuf_init(&dec, 0);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        if (!f) continue;
        uint8_t buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            bs_wbuf_put(&in, buf, n);
        fclose(f);
        CHECK_EQ(bs_records_blob_transform(in.data, in.len, 1 << 20, enc_value, d, &enc, NULL), BS_OK);
        count_plain = 0;
        CHECK_EQ(bs_records_blob_transform(enc.data, enc.len, 1 << 20, check_encrypted, NULL, &dec, NULL),
                 BS_OK);
        CHECK_EQ(count_plain, 0);
        bs_wbuf_reset(&dec);
        /* Envelopes are rejected as input (no injection), leaving nothing behind. */
        CHECK_EQ(bs_records_blob_transform(enc.data, enc.len, 1 << 20, enc_value, d, &dec, NULL),
                 BS_E_MALFORMED);
        CHECK_EQ(dec.len, 0);
        CHECK_EQ(bs_records_blob_transform(enc.data, enc.len, 1 << 20, dec_value, d, &dec, NULL), BS_OK);
        int fd = mkstemp(tmp);
        CHECK(fd >= 0);
        if (fd >= 0) {
            CHECK_EQ(write(fd, dec.data, dec.len), (long long)dec.len);
            close(fd);
            snprintf(cmd, sizeof cmd,
                     "/usr/bin/python3 %s/tests/unit/data/kafka_vectors.py batch-compare %s %s -",
                     src ? src : ".", path, tmp);
            CHECK_EQ(system(cmd), 0);
            unlink(tmp);
        }
        bs_wbuf_free(&in);
        bs_wbuf_free(&enc);
        bs_wbuf_free(&dec);
    }
    bs_dek_free(d);
}

/* Run every test; non-zero exit on failure. */
int main(void)
{
    RUN(test_round_trip);
    RUN(test_tamper_every_byte);
    RUN(test_header_fields_bound);
    RUN(test_iv_uniqueness);
    RUN(test_rotation_policy);
    RUN(test_dek_arguments);
    RUN(test_parse_errors);
    RUN(test_batch_encrypt_decrypt);
    return test_report();
}
