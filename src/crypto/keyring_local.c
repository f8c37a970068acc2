/* keyring_local.c - the local master-key-file keyring (see keyring.h). */
#include "brokerside/fsutil.h"
#include "brokerside/keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brokerside/buf.h"
#include "brokerside/cursor.h"
#include "brokerside/text.h"

#define MASTER_KEY_LEN 32
#define KEY_ID_LEN 8
#define FILE_MAGIC "brokerside-master-key v1\n"
#define MAX_FILE 1024
#define EDEK_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16
#define DEK_LEN 32
#define EDEK_LEN (1 + KEY_ID_LEN + NONCE_LEN + DEK_LEN + TAG_LEN)

typedef struct local_keyring {
    bs_keyring base;
    uint8_t master[MASTER_KEY_LEN];
    uint8_t key_id[KEY_ID_LEN];
    char key_id_hex[2 * KEY_ID_LEN + 1];
} local_keyring;

/* Write a formatted reason into err/errlen when the caller gave room for one. */
__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt,
                                                         ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Contract in keyring.h. */
bs_status bs_keyring_local_keygen(const char *path, char *err, size_t errlen)
{
    uint8_t key[MASTER_KEY_LEN], id[KEY_ID_LEN];
    char text[256], key_hex[2 * MASTER_KEY_LEN + 1], id_hex[2 * KEY_ID_LEN + 1];
    bs_status st = BS_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        seterr(err, errlen, "%s: %s", path,
               errno == EEXIST ? "file exists; refusing to overwrite a key file" : strerror(errno));
        return BS_E_IO;
    }
    if (RAND_bytes(key, sizeof key) != 1 || RAND_bytes(id, sizeof id) != 1) {
        seterr(err, errlen, "%s: the random generator failed", path);
        st = BS_E_CRYPTO;
        goto out;
    }
    bs_hex_encode(key, sizeof key, key_hex);
    bs_hex_encode(id, sizeof id, id_hex);
    int n = snprintf(text, sizeof text, FILE_MAGIC "id %s\nkey %s\n", id_hex, key_hex);
    /* The umask may have cleared bits of 0600; the owner still needs to read it. */
    if (fchmod(fd, 0600) != 0) {
        seterr(err, errlen, "%s: chmod: %s", path, strerror(errno));
        st = BS_E_IO;
        goto out;
    }
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = write(fd, text + off, (size_t)n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            seterr(err, errlen, "%s: write: %s", path, w < 0 ? strerror(errno) : "no progress");
            st = BS_E_IO;
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || bs_fsync_parent(path) != BS_OK) {
        seterr(err, errlen, "%s: fsync: %s", path, strerror(errno));
        st = BS_E_IO;
        goto out;
    }
out:
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(key_hex, sizeof key_hex);
    OPENSSL_cleanse(text, sizeof text);
    if (close(fd) != 0 && st == BS_OK) {
        seterr(err, errlen, "%s: close: %s", path, strerror(errno));
        st = BS_E_IO;
    }
    if (st != BS_OK) unlink(path); /* never leave a half-written key behind */
    return st;
}

/* Parse the v1 text: magic line, "id <16 hex>", "key <64 hex>", nothing else; on
 * success the id and master key are stored in `kr`. False on any deviation. */
static bool parse_key_file(const uint8_t *p, size_t len, local_keyring *kr)
{
    bs_cursor c;
    const uint8_t *f;
    bs_cursor_init(&c, p, len);
    size_t ml = strlen(FILE_MAGIC);
    if (bs_read_bytes(&c, ml, &f) != BS_OK || memcmp(f, FILE_MAGIC, ml) != 0) return false;
    if (bs_read_bytes(&c, 3, &f) != BS_OK || memcmp(f, "id ", 3) != 0) return false;
    if (bs_read_bytes(&c, 2 * KEY_ID_LEN + 1, &f) != BS_OK || f[2 * KEY_ID_LEN] != '\n' ||
        !bs_hex_decode((const char *)f, KEY_ID_LEN, kr->key_id))
        return false;
    if (bs_read_bytes(&c, 4, &f) != BS_OK || memcmp(f, "key ", 4) != 0) return false;
    if (bs_read_bytes(&c, 2 * MASTER_KEY_LEN + 1, &f) != BS_OK || f[2 * MASTER_KEY_LEN] != '\n' ||
        !bs_hex_decode((const char *)f, MASTER_KEY_LEN, kr->master))
        return false;
    return bs_cursor_remaining(&c) == 0;
}

static const bs_keyring_ops local_ops;

/* Contract in keyring.h. */
bs_status bs_keyring_local_open(const char *path, bs_keyring **out, char *err, size_t errlen)
{
    uint8_t buf[MAX_FILE + 1];
    size_t len = 0;
    bs_status st = BS_OK;
    local_keyring *kr = NULL;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        return BS_E_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        seterr(err, errlen, "%s: stat: %s", path, strerror(errno));
        st = BS_E_IO;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        seterr(err, errlen, "%s: not a regular file", path);
        st = BS_E_CONFIG;
        goto out;
    }
    if (sb.st_mode & 077) {
        seterr(err, errlen,
               "%s: mode %04o lets group or others access the master key; run chmod 600 %s", path,
               (unsigned)(sb.st_mode & 07777), path);
        st = BS_E_CONFIG;
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            seterr(err, errlen, "%s: read: %s", path, strerror(errno));
            st = BS_E_IO;
            goto out;
        }
        if (r == 0 || (len += (size_t)r) == sizeof buf) break;
    }
    kr = calloc(1, sizeof *kr);
    if (!kr) {
        st = BS_E_NOMEM;
        goto out;
    }
    if (len > MAX_FILE || !parse_key_file(buf, len, kr)) {
        seterr(err, errlen, "%s: not a brokerside master key file (format v1 expected)", path);
        st = BS_E_CONFIG;
        goto out;
    }
    kr->base.ops = &local_ops;
    bs_hex_encode(kr->key_id, KEY_ID_LEN, kr->key_id_hex);
    *out = &kr->base;
out:
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    if (st != BS_OK && kr) {
        OPENSSL_cleanse(kr, sizeof *kr);
        free(kr);
    }
    return st;
}

/* Contract in keyring.h. */
const char *bs_keyring_local_key_id(const bs_keyring *kr)
{
    return bs_container_of(kr, local_keyring, base)->key_id_hex;
}

/* qsort comparator: context pairs by key. */
static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(const bs_kv *const *)a)->key, (*(const bs_kv *const *)b)->key);
}

/* Build the wrap AAD: version | key id | keyref | context pairs sorted by key, each
 * string as uint16 length + bytes. BS_E_CONFIG for duplicate keys or strings too long. */
static bs_status wrap_aad(const local_keyring *kr, const char *keyref, const bs_enc_context *ctx,
                          bs_wbuf *aad)
{
    size_t n = ctx ? ctx->n : 0;
    const bs_kv **sorted = NULL;
    bs_status st = BS_OK;
    size_t kl = strlen(keyref);
    if (kl == 0 || kl > UINT16_MAX || n > UINT16_MAX) return BS_E_CONFIG;
    if (n) {
        sorted = malloc(n * sizeof *sorted);
        if (!sorted) return BS_E_NOMEM;
        for (size_t i = 0; i < n; i++)
            sorted[i] = &ctx->pairs[i];
        qsort(sorted, n, sizeof *sorted, cmp_kv);
    }
    bs_wbuf_put_u8(aad, EDEK_VERSION);
    bs_wbuf_put(aad, kr->key_id, KEY_ID_LEN);
    bs_wbuf_put_be16(aad, (uint16_t)kl);
    bs_wbuf_put(aad, keyref, kl);
    bs_wbuf_put_be16(aad, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(sorted[i]->key), b = strlen(sorted[i]->value);
        if (a > UINT16_MAX || b > UINT16_MAX ||
            (i > 0 && strcmp(sorted[i - 1]->key, sorted[i]->key) == 0)) {
            st = BS_E_CONFIG;
            goto out;
        }
        bs_wbuf_put_be16(aad, (uint16_t)a);
        bs_wbuf_put(aad, sorted[i]->key, a);
        bs_wbuf_put_be16(aad, (uint16_t)b);
        bs_wbuf_put(aad, sorted[i]->value, b);
    }
    st = bs_wbuf_status(aad);
out:
    free(sorted);
    return st;
}

/* One AES-256-GCM operation under the master key with a fresh context (thread-safe).
 * Encrypt: `in` -> `out`, tag written to `tag`. Decrypt: tag read from `tag`. */
static bool master_gcm(const local_keyring *kr, bool enc, const uint8_t *nonce, const bs_wbuf *aad,
                       const uint8_t *in, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    bool ok = c != NULL;
    if (ok && enc)
        ok = EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, kr->master, nonce) == 1 &&
             EVP_EncryptUpdate(c, NULL, &n, aad->data, (int)aad->len) == 1 &&
             EVP_EncryptUpdate(c, out, &n, in, DEK_LEN) == 1 &&
             EVP_EncryptFinal_ex(c, out + n, &fin) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    else if (ok)
        ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, kr->master, nonce) == 1 &&
             EVP_DecryptUpdate(c, NULL, &n, aad->data, (int)aad->len) == 1 &&
             EVP_DecryptUpdate(c, out, &n, in, DEK_LEN) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
             EVP_DecryptFinal_ex(c, out + n, &fin) == 1;
    ok = ok && n + fin == DEK_LEN;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* Local generate_dek: random DEK, wrapped under the master key; completes before returning. */
static bs_status local_generate(bs_keyring *base, const char *keyref, const bs_enc_context *ctx,
                                bs_keyring_dek_cb cb, void *arg)
{
    local_keyring *kr = bs_container_of(base, local_keyring, base);
    uint8_t dek[DEK_LEN], edek[EDEK_LEN];
    bs_wbuf aad;
    bs_wbuf_init(&aad, 0);
    if (!cb || !keyref) return BS_E_CONFIG;
    bs_status st = wrap_aad(kr, keyref, ctx, &aad);
    if (st != BS_OK) goto out;
    edek[0] = EDEK_VERSION;
    memcpy(edek + 1, kr->key_id, KEY_ID_LEN);
    uint8_t *nonce = edek + 1 + KEY_ID_LEN, *ct = nonce + NONCE_LEN, *tag = ct + DEK_LEN;
    /* Random nonces: one wrap per DEK rotation keeps the count far below 2^32 per master key. */
    if (RAND_bytes(dek, sizeof dek) != 1 || RAND_bytes(nonce, NONCE_LEN) != 1 ||
        !master_gcm(kr, true, nonce, &aad, dek, ct, tag))
        cb(arg, BS_E_CRYPTO, NULL, 0, NULL, 0);
    else
        cb(arg, BS_OK, dek, sizeof dek, edek, sizeof edek);
out:
    OPENSSL_cleanse(dek, sizeof dek);
    bs_wbuf_free(&aad);
    return st;
}

/* Local decrypt_edek: the EDEK comes from record data, so every problem with it is
 * reported through `cb`: BS_E_CRYPTO (malformed, tampered, other keyref/context) or
 * BS_E_NOT_FOUND (made under another master key). */
static bs_status local_decrypt(bs_keyring *base, const char *keyref, const uint8_t *edek,
                               size_t edek_len, const bs_enc_context *ctx, bs_keyring_key_cb cb,
                               void *arg)
{
    local_keyring *kr = bs_container_of(base, local_keyring, base);
    uint8_t dek[DEK_LEN], tag[TAG_LEN];
    bs_wbuf aad;
    bs_wbuf_init(&aad, 0);
    if (!cb || !keyref) return BS_E_CONFIG;
    bs_status st = wrap_aad(kr, keyref, ctx, &aad);
    if (st != BS_OK) goto out;
    if (edek_len != EDEK_LEN || edek[0] != EDEK_VERSION) {
        cb(arg, BS_E_CRYPTO, NULL, 0);
    } else if (CRYPTO_memcmp(edek + 1, kr->key_id, KEY_ID_LEN) != 0) {
        cb(arg, BS_E_NOT_FOUND, NULL, 0);
    } else {
        const uint8_t *nonce = edek + 1 + KEY_ID_LEN, *ct = nonce + NONCE_LEN;
        memcpy(tag, ct + DEK_LEN, TAG_LEN);
        if (master_gcm(kr, false, nonce, &aad, ct, dek, tag))
            cb(arg, BS_OK, dek, sizeof dek);
        else
            cb(arg, BS_E_CRYPTO, NULL, 0);
    }
out:
    OPENSSL_cleanse(dek, sizeof dek);
    bs_wbuf_free(&aad);
    return st;
}

/* Wipe the master key and free. */
static void local_destroy(bs_keyring *base)
{
    local_keyring *kr = bs_container_of(base, local_keyring, base);
    OPENSSL_cleanse(kr, sizeof *kr);
    free(kr);
}

static const bs_keyring_ops local_ops = {
    .type = "local",
    .generate_dek = local_generate,
    .decrypt_edek = local_decrypt,
    .destroy = local_destroy,
};
