/* Unit tests for src/crypto/keyring_local.c: key file creation and loading on real files,
 * permission checks, DEK wrap/unwrap through the keyring vtable, tampering, wrong keys,
 * wrong context. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brokerside/envelope.h"
#include "brokerside/keyring.h"
#include "test.h"

static char dir[] = "/tmp/bs_keyring_XXXXXX";

/* Path of `name` inside the test directory. */
static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

typedef struct {
    int calls;
    bs_status st;
    uint8_t key[32];
    size_t key_len;
    uint8_t edek[256];
    size_t edek_len;
} result;

/* generate_dek callback: record the outcome in a `result`. */
static void on_dek(void *arg, bs_status st, const uint8_t *key, size_t key_len, const uint8_t *edek,
                   size_t edek_len)
{
    result *r = arg;
    r->calls++;
    r->st = st;
    r->key_len = key_len;
    r->edek_len = edek_len;
    if (key && key_len <= sizeof r->key) memcpy(r->key, key, key_len);
    if (edek && edek_len <= sizeof r->edek) memcpy(r->edek, edek, edek_len);
}

/* decrypt_edek callback: record the outcome in a `result`. */
static void on_key(void *arg, bs_status st, const uint8_t *key, size_t key_len)
{
    result *r = arg;
    r->calls++;
    r->st = st;
    r->key_len = key_len;
    if (key && key_len <= sizeof r->key) memcpy(r->key, key, key_len);
}

static const bs_kv topic_a[] = {{"topic", "payments"}};
static const bs_kv topic_b[] = {{"topic", "orders"}};

/* Create a new key file `name` and open it (NULL on failure). */
static bs_keyring *open_new(const char *name)
{
    char p[256], err[256] = "";
    path_in(p, sizeof p, name);
    CHECK_EQ(bs_keyring_local_keygen(p, err, sizeof err), BS_OK);
    bs_keyring *kr = NULL;
    CHECK_EQ(bs_keyring_local_open(p, &kr, err, sizeof err), BS_OK);
    if (!kr) fprintf(stderr, "  open: %s\n", err);
    return kr;
}

/* keygen: format, mode 0600 under any umask, refuses to overwrite, clear errors. */
static void test_keygen_file(void)
{
    char p[256], err[256] = "";
    path_in(p, sizeof p, "master.key");
    mode_t old = umask(0);
    CHECK_EQ(bs_keyring_local_keygen(p, err, sizeof err), BS_OK);
    umask(old);
    struct stat sb;
    CHECK_EQ(stat(p, &sb), 0);
    CHECK_EQ(sb.st_mode & 07777, 0600);
    CHECK(S_ISREG(sb.st_mode));
    /* Read it back: magic line, id, key, and nothing else. */
    char text[512] = {0};
    FILE *f = fopen(p, "r");
    CHECK(f != NULL);
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    CHECK_EQ(n, 25 + 3 + 17 + 4 + 65);
    CHECK(strncmp(text, "brokerside-master-key v1\nid ", 28) == 0);
    /* Refuses to overwrite, and the existing key survives. */
    err[0] = 0;
    CHECK_EQ(bs_keyring_local_keygen(p, err, sizeof err), BS_E_IO);
    CHECK(strstr(err, "refusing to overwrite") != NULL);
    char again[512] = {0};
    f = fopen(p, "r");
    if (f) {
        CHECK_EQ(fread(again, 1, sizeof again - 1, f), n);
        fclose(f);
    }
    CHECK(strcmp(text, again) == 0);
    /* Two keygens make different keys and ids; a restrictive umask still yields 0600. */
    char p2[256];
    path_in(p2, sizeof p2, "second.key");
    old = umask(0277);
    CHECK_EQ(bs_keyring_local_keygen(p2, err, sizeof err), BS_OK);
    umask(old);
    CHECK_EQ(stat(p2, &sb), 0);
    CHECK_EQ(sb.st_mode & 07777, 0600);
    bs_keyring *a = NULL, *b = NULL;
    CHECK_EQ(bs_keyring_local_open(p, &a, err, sizeof err), BS_OK);
    CHECK_EQ(bs_keyring_local_open(p2, &b, err, sizeof err), BS_OK);
    if (a && b) CHECK(strcmp(bs_keyring_local_key_id(a), bs_keyring_local_key_id(b)) != 0);
    if (a) CHECK_EQ(strlen(bs_keyring_local_key_id(a)), 16);
    bs_keyring_free(a);
    bs_keyring_free(b);
    /* A directory that does not exist: clear error, nothing created. */
    CHECK_EQ(bs_keyring_local_keygen("/nonexistent-dir/x.key", err, sizeof err), BS_E_IO);
    CHECK(strstr(err, "/nonexistent-dir/x.key") != NULL);
}

/* open refuses group/world-accessible files, directories, missing and malformed files. */
static void test_open_refusals(void)
{
    char p[256], err[256] = "";
    path_in(p, sizeof p, "perm.key");
    CHECK_EQ(bs_keyring_local_keygen(p, err, sizeof err), BS_OK);
    bs_keyring *kr = NULL;
    const mode_t modes[] = {0640, 0604, 0660, 0700, 0644};
    for (size_t i = 0; i < BS_ARRAY_LEN(modes); i++) {
        CHECK_EQ(chmod(p, modes[i]), 0);
        err[0] = 0;
        bs_status st = bs_keyring_local_open(p, &kr, err, sizeof err);
        if (modes[i] == 0700) {
            CHECK_EQ(st, BS_OK); /* owner-only is fine whatever the owner bits */
            bs_keyring_free(kr);
            kr = NULL;
            continue;
        }
        CHECK_EQ(st, BS_E_CONFIG);
        CHECK(strstr(err, "chmod 600") != NULL);
        CHECK(kr == NULL);
    }
    CHECK_EQ(chmod(p, 0400), 0);
    CHECK_EQ(bs_keyring_local_open(p, &kr, err, sizeof err), BS_OK);
    bs_keyring_free(kr);
    kr = NULL;
    /* Missing file, a directory, malformed contents. */
    char q[256];
    path_in(q, sizeof q, "missing.key");
    CHECK_EQ(bs_keyring_local_open(q, &kr, err, sizeof err), BS_E_IO);
    CHECK_EQ(bs_keyring_local_open(dir, &kr, err, sizeof err), BS_E_CONFIG);
    const char *bad[] = {
        "",
        "brokerside-master-key v2\nid 0011223344556677\nkey "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "brokerside-master-key v1\nid 0011223344556677\nkey "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeZZ\n",
        "brokerside-master-key v1\nid 0011223344556677\nkey "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddee\n",
        "brokerside-master-key v1\nid 0011223344556677\nkey "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\nextra\n",
        "brokerside-master-key v1\nkey "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    };
    for (size_t i = 0; i < BS_ARRAY_LEN(bad); i++) {
        path_in(q, sizeof q, "bad.key");
        unlink(q);
        int fd = open(q, O_WRONLY | O_CREAT | O_EXCL, 0600);
        CHECK(fd >= 0);
        if (fd < 0) continue;
        CHECK_EQ(write(fd, bad[i], strlen(bad[i])), (long long)strlen(bad[i]));
        close(fd);
        err[0] = 0;
        CHECK_EQ(bs_keyring_local_open(q, &kr, err, sizeof err), BS_E_CONFIG);
        CHECK(strstr(err, "not a brokerside master key file") != NULL);
    }
    CHECK(kr == NULL);
}

/* DEKs wrap and unwrap through the vtable, bound to keyref and context. */
static void test_wrap_unwrap(void)
{
    bs_keyring *kr = open_new("wrap.key");
    if (!kr) return;
    bs_enc_context ctx = {topic_a, 1};
    result g = {0}, u = {0};
    CHECK_EQ(bs_keyring_generate_dek(kr, "alias/payments", &ctx, on_dek, &g), BS_OK);
    CHECK_EQ(g.calls, 1); /* synchronous */
    CHECK_EQ(g.st, BS_OK);
    CHECK_EQ(g.key_len, 32);
    CHECK_EQ(g.edek_len, 69);
    CHECK(memcmp(g.edek + 21, g.key, 32) != 0); /* EDEK does not carry the key in clear */
    CHECK_EQ(bs_keyring_decrypt_edek(kr, "alias/payments", g.edek, g.edek_len, &ctx, on_key, &u),
             BS_OK);
    CHECK_EQ(u.calls, 1);
    CHECK_EQ(u.st, BS_OK);
    CHECK(u.key_len == 32 && memcmp(u.key, g.key, 32) == 0);
    /* Context order does not matter; a context with more pairs is a different context. */
    const bs_kv two[] = {{"z", "1"}, {"topic", "payments"}},
                two_rev[] = {{"topic", "payments"}, {"z", "1"}};
    bs_enc_context c2 = {two, 2}, c2r = {two_rev, 2};
    result g2 = {0}, u2 = {0};
    CHECK_EQ(bs_keyring_generate_dek(kr, "k", &c2, on_dek, &g2), BS_OK);
    CHECK_EQ(bs_keyring_decrypt_edek(kr, "k", g2.edek, g2.edek_len, &c2r, on_key, &u2), BS_OK);
    CHECK(u2.st == BS_OK && memcmp(u2.key, g2.key, 32) == 0);
    u2 = (result){0};
    CHECK_EQ(bs_keyring_decrypt_edek(kr, "k", g2.edek, g2.edek_len, &ctx, on_key, &u2), BS_OK);
    CHECK_EQ(u2.st, BS_E_CRYPTO);
    /* Two DEKs differ. */
    result g3 = {0};
    CHECK_EQ(bs_keyring_generate_dek(kr, "alias/payments", &ctx, on_dek, &g3), BS_OK);
    CHECK(memcmp(g3.key, g.key, 32) != 0 && memcmp(g3.edek, g.edek, 69) != 0);
    /* The unwrapped key drives an envelope end to end. */
    bs_dek *d = NULL;
    CHECK_EQ(bs_dek_new(u.key, "alias/payments", g.edek, g.edek_len, 0, &d), BS_OK);
    bs_wbuf env, back;
    bs_wbuf_init(&env, 0);
    bs_wbuf_init(&back, 0);
    CHECK_EQ(bs_envelope_encrypt(d, "payments", 8, (const uint8_t *)"hello", 5, &env), BS_OK);
    CHECK_EQ(bs_envelope_decrypt(d, "payments", 8, env.data, env.len, &back), BS_OK);
    CHECK(back.len == 5 && memcmp(back.data, "hello", 5) == 0);
    bs_wbuf_free(&env);
    bs_wbuf_free(&back);
    bs_dek_free(d);
    bs_keyring_free(kr);
}

/* Any changed EDEK byte, another keyref or topic context: BS_E_CRYPTO through the callback. */
static void test_tampered_edek(void)
{
    bs_keyring *kr = open_new("tamper.key");
    if (!kr) return;
    bs_enc_context ctx = {topic_a, 1}, other = {topic_b, 1};
    result g = {0};
    CHECK_EQ(bs_keyring_generate_dek(kr, "alias/payments", &ctx, on_dek, &g), BS_OK);
    int accepted = 0, calls = 0;
    for (size_t i = 0; i < g.edek_len; i++) {
        g.edek[i] ^= 0x20;
        result u = {0};
        CHECK_EQ(
            bs_keyring_decrypt_edek(kr, "alias/payments", g.edek, g.edek_len, &ctx, on_key, &u),
            BS_OK);
        calls += u.calls;
        if (u.st == BS_OK) accepted++;
        if (i >= 1 && i < 9) CHECK_EQ(u.st, BS_E_NOT_FOUND); /* the key id bytes */
        g.edek[i] ^= 0x20;
    }
    CHECK_EQ(accepted, 0);
    CHECK_EQ(calls, (int)g.edek_len);
    result u = {0};
    CHECK_EQ(
        bs_keyring_decrypt_edek(kr, "alias/payments", g.edek, g.edek_len - 1, &ctx, on_key, &u),
        BS_OK);
    CHECK_EQ(u.st, BS_E_CRYPTO);
    u = (result){0};
    CHECK_EQ(bs_keyring_decrypt_edek(kr, "alias/other", g.edek, g.edek_len, &ctx, on_key, &u),
             BS_OK);
    CHECK_EQ(u.st, BS_E_CRYPTO);
    u = (result){0};
    CHECK_EQ(bs_keyring_decrypt_edek(kr, "alias/payments", g.edek, g.edek_len, &other, on_key, &u),
             BS_OK);
    CHECK_EQ(u.st, BS_E_CRYPTO);
    u = (result){0};
    CHECK_EQ(bs_keyring_decrypt_edek(kr, "alias/payments", g.edek, g.edek_len, NULL, on_key, &u),
             BS_OK);
    CHECK_EQ(u.st, BS_E_CRYPTO);
    /* Invalid arguments: error returned, callback never called. */
    const bs_kv dup[] = {{"topic", "a"}, {"topic", "b"}};
    bs_enc_context dctx = {dup, 2};
    result n = {0};
    CHECK_EQ(bs_keyring_generate_dek(kr, "k", &dctx, on_dek, &n), BS_E_CONFIG);
    CHECK_EQ(bs_keyring_generate_dek(kr, "", &ctx, on_dek, &n), BS_E_CONFIG);
    CHECK_EQ(bs_keyring_decrypt_edek(kr, "k", g.edek, g.edek_len, &dctx, on_key, &n), BS_E_CONFIG);
    CHECK_EQ(n.calls, 0);
    bs_keyring_free(kr);
}

/* Another master key, or the same key id with different key bytes, cannot unwrap. */
static void test_wrong_master_key(void)
{
    bs_keyring *a = open_new("a.key"), *b = open_new("b.key");
    if (!a || !b) return;
    bs_enc_context ctx = {topic_a, 1};
    result g = {0}, u = {0};
    CHECK_EQ(bs_keyring_generate_dek(a, "k", &ctx, on_dek, &g), BS_OK);
    CHECK_EQ(bs_keyring_decrypt_edek(b, "k", g.edek, g.edek_len, &ctx, on_key, &u), BS_OK);
    CHECK_EQ(u.st, BS_E_NOT_FOUND);
    /* A forged file reusing a's id with other key bytes. */
    char pa[256], pf[256], text[256] = {0}, err[256];
    path_in(pa, sizeof pa, "a.key");
    path_in(pf, sizeof pf, "forged.key");
    FILE *f = fopen(pa, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    CHECK(n > 20);
    text[n - 2] = text[n - 2] == '0' ? '1' : '0'; /* last hex digit of the key */
    int fd = open(pf, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_EQ(write(fd, text, n), (long long)n);
        close(fd);
    }
    bs_keyring *forged = NULL;
    CHECK_EQ(bs_keyring_local_open(pf, &forged, err, sizeof err), BS_OK);
    if (forged) {
        CHECK_STR(bs_keyring_local_key_id(forged), bs_keyring_local_key_id(a));
        u = (result){0};
        CHECK_EQ(bs_keyring_decrypt_edek(forged, "k", g.edek, g.edek_len, &ctx, on_key, &u), BS_OK);
        CHECK_EQ(u.st, BS_E_CRYPTO);
    }
    bs_keyring_free(forged);
    bs_keyring_free(a);
    bs_keyring_free(b);
}

/* Run every test in a fresh temporary directory, then remove it. */
int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_keygen_file);
    RUN(test_open_refusals);
    RUN(test_wrap_unwrap);
    RUN(test_tampered_edek);
    RUN(test_wrong_master_key);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_report();
}
