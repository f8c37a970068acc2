/* envelope.c - AES-256-GCM record envelopes and DEK objects (see envelope.h). */
#include "brokerside/envelope.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "brokerside/cursor.h"

const uint8_t bs_envelope_magic[BS_ENVELOPE_MAGIC_LEN] = {0xBE, 0x5E, 0xC0, 0xDE};

/* Longest topic bound into the AAD (Kafka's own limit is 249). */
#define MAX_TOPIC 65535

struct bs_dek {
    uint8_t key[BS_DEK_KEY_LEN];
    char *keyref;
    size_t keyref_len;
    uint8_t *edek;
    size_t edek_len;
    uint64_t created_s;
    uint64_t uses;
    uint8_t iv_prefix[4];
    /* Keyed once at creation: per-record work is then only IV setup and the data. */
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
};

/* True when `s`/`n` is a valid keyref: printable ASCII without spaces, because it
 * appears in logs and KMS requests. */
static bool keyref_valid(const char *s, size_t n)
{
    if (n == 0 || n > BS_ENVELOPE_MAX_KEYREF) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e) return false;
    return true;
}

/* Contract in envelope.h. */
bs_status bs_dek_new(const uint8_t key[BS_DEK_KEY_LEN], const char *keyref, const uint8_t *edek,
                     size_t edek_len, uint64_t created_s, bs_dek **out)
{
    *out = NULL;
    size_t kl = strnlen(keyref, BS_ENVELOPE_MAX_KEYREF + 1);
    if (!keyref_valid(keyref, kl) || edek_len == 0 || edek_len > BS_ENVELOPE_MAX_EDEK)
        return BS_E_CONFIG;
    bs_status st = BS_OK;
    EVP_CIPHER *aes = NULL;
    bs_dek *d = calloc(1, sizeof *d);
    if (!d) return BS_E_NOMEM;
    d->keyref = malloc(kl + 1);
    d->edek = malloc(edek_len);
    d->enc = EVP_CIPHER_CTX_new();
    d->dec = EVP_CIPHER_CTX_new();
    if (!d->keyref || !d->edek || !d->enc || !d->dec) {
        st = BS_E_NOMEM;
        goto out;
    }
    memcpy(d->key, key, BS_DEK_KEY_LEN);
    memcpy(d->keyref, keyref, kl + 1);
    d->keyref_len = kl;
    memcpy(d->edek, edek, edek_len);
    d->edek_len = edek_len;
    d->created_s = created_s;
    aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    /* The random prefix keeps IVs apart even if the same key were ever loaded twice
     * for encryption; the counter alone guarantees uniqueness within this object. */
    if (!aes || RAND_bytes(d->iv_prefix, sizeof d->iv_prefix) != 1 ||
        EVP_EncryptInit_ex2(d->enc, aes, d->key, NULL, NULL) != 1 ||
        EVP_DecryptInit_ex2(d->dec, aes, d->key, NULL, NULL) != 1) {
        st = BS_E_CRYPTO;
        goto out;
    }
out:
    EVP_CIPHER_free(aes);
    if (st != BS_OK)
        bs_dek_free(d);
    else
        *out = d;
    return st;
}

/* Contract in envelope.h. */
void bs_dek_free(bs_dek *d)
{
    if (!d) return;
    OPENSSL_cleanse(d->key, sizeof d->key);
    EVP_CIPHER_CTX_free(d->enc); /* frees (and clears) the expanded key schedule */
    EVP_CIPHER_CTX_free(d->dec);
    free(d->keyref);
    free(d->edek);
    OPENSSL_cleanse(d, sizeof *d);
    free(d);
}

/* Contract in envelope.h. */
const char *bs_dek_keyref(const bs_dek *d)
{
    return d->keyref;
}

/* Contract in envelope.h. */
const uint8_t *bs_dek_edek(const bs_dek *d, size_t *len)
{
    *len = d->edek_len;
    return d->edek;
}

/* Contract in envelope.h. */
uint64_t bs_dek_created(const bs_dek *d)
{
    return d->created_s;
}

/* Contract in envelope.h. */
uint64_t bs_dek_uses(const bs_dek *d)
{
    return d->uses;
}

/* Contract in envelope.h. */
bs_status bs_dek_policy_check(const bs_dek_policy *p)
{
    if (p->max_records == 0 || p->max_records > BS_DEK_HARD_MAX_RECORDS || p->max_age_s == 0)
        return BS_E_CONFIG;
    return BS_OK;
}

/* Contract in envelope.h. */
bool bs_dek_should_rotate(const bs_dek *d, const bs_dek_policy *p, uint64_t now_s)
{
    uint64_t max =
        p->max_records < BS_DEK_HARD_MAX_RECORDS ? p->max_records : BS_DEK_HARD_MAX_RECORDS;
    if (d->uses >= max) return true;
    if (now_s < d->created_s) return true;
    return now_s - d->created_s >= p->max_age_s;
}

/* Contract in envelope.h. */
size_t bs_envelope_size(const bs_dek *d, size_t pt_len)
{
    return BS_ENVELOPE_FIXED_LEN + d->keyref_len + d->edek_len + pt_len;
}

/* Append the envelope header (everything before the IV) for `d` to `w`. */
static void put_header(bs_wbuf *w, const bs_dek *d)
{
    bs_wbuf_put(w, bs_envelope_magic, sizeof bs_envelope_magic);
    bs_wbuf_put_u8(w, BS_ENVELOPE_VERSION);
    bs_wbuf_put_u8(w, BS_ENVELOPE_ALG_AES256GCM);
    bs_wbuf_put_be16(w, (uint16_t)d->keyref_len);
    bs_wbuf_put(w, d->keyref, d->keyref_len);
    bs_wbuf_put_be16(w, (uint16_t)d->edek_len);
    bs_wbuf_put(w, d->edek, d->edek_len);
}

/* Feed the AAD to a keyed GCM context: the envelope header, then the topic binding.
 * False if OpenSSL refuses. */
static bool gcm_aad(EVP_CIPHER_CTX *ctx, bool enc, const uint8_t *hdr, size_t hdr_len,
                    const char *topic, size_t topic_len)
{
    uint8_t tl[2] = {(uint8_t)(topic_len >> 8), (uint8_t)topic_len};
    int n;
    if (enc)
        return EVP_EncryptUpdate(ctx, NULL, &n, hdr, (int)hdr_len) == 1 &&
               EVP_EncryptUpdate(ctx, NULL, &n, tl, 2) == 1 &&
               EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)topic, (int)topic_len) == 1;
    return EVP_DecryptUpdate(ctx, NULL, &n, hdr, (int)hdr_len) == 1 &&
           EVP_DecryptUpdate(ctx, NULL, &n, tl, 2) == 1 &&
           EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)topic, (int)topic_len) == 1;
}

/* Contract in envelope.h. */
bs_status bs_envelope_encrypt(bs_dek *d, const char *topic, size_t topic_len, const uint8_t *pt,
                              size_t pt_len, bs_wbuf *out)
{
    if (topic_len == 0 || topic_len > MAX_TOPIC) return BS_E_CONFIG;
    if (d->uses >= BS_DEK_HARD_MAX_RECORDS) return BS_E_STATE;
    if (pt_len > INT32_MAX) return BS_E_TOO_LARGE; /* EVP lengths are int */
    size_t start = out->len;
    bs_status st = BS_OK;
    if (!bs_wbuf_reserve(out, bs_envelope_size(d, pt_len))) return bs_wbuf_status(out);
    put_header(out, d);
    size_t hdr_len = out->len - start;
    uint8_t iv[BS_ENVELOPE_IV_LEN];
    memcpy(iv, d->iv_prefix, 4);
    for (int i = 0; i < 8; i++)
        iv[4 + i] = (uint8_t)(d->uses >> (56 - 8 * i));
    /* Count the IV as used before anything can fail: an IV is never handed out twice. */
    d->uses++;
    bs_wbuf_put(out, iv, sizeof iv);
    int n = 0, fin = 0;
    uint8_t *ct = out->data + out->len;
    if (EVP_EncryptInit_ex2(d->enc, NULL, NULL, iv, NULL) != 1 ||
        !gcm_aad(d->enc, true, out->data + start, hdr_len, topic, topic_len) ||
        EVP_EncryptUpdate(d->enc, ct, &n, pt, (int)pt_len) != 1 ||
        EVP_EncryptFinal_ex(d->enc, ct + n, &fin) != 1 || (size_t)(n + fin) != pt_len) {
        st = BS_E_CRYPTO;
        goto out;
    }
    out->len += pt_len;
    if (EVP_CIPHER_CTX_ctrl(d->enc, EVP_CTRL_GCM_GET_TAG, BS_ENVELOPE_TAG_LEN,
                            out->data + out->len) != 1) {
        st = BS_E_CRYPTO;
        goto out;
    }
    out->len += BS_ENVELOPE_TAG_LEN;
out:
    if (st != BS_OK) out->len = start;
    return st;
}

/* Contract in envelope.h. */
bool bs_envelope_is_envelope(const uint8_t *p, size_t len)
{
    return len >= BS_ENVELOPE_MAGIC_LEN && memcmp(p, bs_envelope_magic, BS_ENVELOPE_MAGIC_LEN) == 0;
}

/* Contract in envelope.h. */
bs_status bs_envelope_parse(const uint8_t *p, size_t len, bs_envelope *e)
{
    bs_cursor c;
    const uint8_t *magic;
    uint16_t kl, el;
    memset(e, 0, sizeof *e);
    bs_cursor_init(&c, p, len);
    if (bs_read_bytes(&c, BS_ENVELOPE_MAGIC_LEN, &magic) != BS_OK ||
        memcmp(magic, bs_envelope_magic, BS_ENVELOPE_MAGIC_LEN) != 0 ||
        bs_read_u8(&c, &e->version) != BS_OK || bs_read_u8(&c, &e->algorithm) != BS_OK)
        return BS_E_MALFORMED;
    if (e->version != BS_ENVELOPE_VERSION || e->algorithm != BS_ENVELOPE_ALG_AES256GCM)
        return BS_E_UNSUPPORTED;
    if (bs_read_be16(&c, &kl) != BS_OK || kl == 0 || kl > BS_ENVELOPE_MAX_KEYREF ||
        bs_read_bytes(&c, kl, &e->keyref) != BS_OK || !keyref_valid((const char *)e->keyref, kl) ||
        bs_read_be16(&c, &el) != BS_OK || el == 0 || el > BS_ENVELOPE_MAX_EDEK ||
        bs_read_bytes(&c, el, &e->edek) != BS_OK)
        return BS_E_MALFORMED;
    e->keyref_len = kl;
    e->edek_len = el;
    e->header_len = c.pos;
    if (bs_read_bytes(&c, BS_ENVELOPE_IV_LEN, &e->iv) != BS_OK ||
        bs_cursor_remaining(&c) < BS_ENVELOPE_TAG_LEN)
        return BS_E_MALFORMED;
    e->ciphertext_len = bs_cursor_remaining(&c) - BS_ENVELOPE_TAG_LEN;
    if (bs_read_bytes(&c, e->ciphertext_len, &e->ciphertext) != BS_OK ||
        bs_read_bytes(&c, BS_ENVELOPE_TAG_LEN, &e->tag) != BS_OK)
        return BS_E_MALFORMED;
    return BS_OK;
}

/* Contract in envelope.h. */
bs_status bs_envelope_decrypt(bs_dek *d, const char *topic, size_t topic_len, const uint8_t *p,
                              size_t len, bs_wbuf *out)
{
    if (topic_len == 0 || topic_len > MAX_TOPIC) return BS_E_CONFIG;
    bs_envelope e;
    BS_GUARD(bs_envelope_parse(p, len, &e));
    if (e.ciphertext_len > INT32_MAX) return BS_E_TOO_LARGE;
    /* The wrong DEK would fail the tag too; this check just names the cause. */
    if (e.keyref_len != d->keyref_len || memcmp(e.keyref, d->keyref, e.keyref_len) != 0 ||
        e.edek_len != d->edek_len || memcmp(e.edek, d->edek, e.edek_len) != 0)
        return BS_E_CRYPTO;
    /* At least one byte so `pt` below is a real pointer even for an empty value. */
    if (!bs_wbuf_reserve(out, e.ciphertext_len ? e.ciphertext_len : 1)) return bs_wbuf_status(out);
    size_t start = out->len;
    bs_status st = BS_OK;
    uint8_t *pt = out->data + out->len;
    uint8_t tag[BS_ENVELOPE_TAG_LEN];
    memcpy(tag, e.tag, sizeof tag); /* the ctrl call takes a non-const pointer */
    int n = 0, fin = 0;
    if (EVP_DecryptInit_ex2(d->dec, NULL, NULL, e.iv, NULL) != 1 ||
        !gcm_aad(d->dec, false, p, e.header_len, topic, topic_len) ||
        EVP_DecryptUpdate(d->dec, pt, &n, e.ciphertext, (int)e.ciphertext_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->dec, EVP_CTRL_GCM_SET_TAG, sizeof tag, tag) != 1 ||
        EVP_DecryptFinal_ex(d->dec, pt + n, &fin) != 1 || (size_t)(n + fin) != e.ciphertext_len) {
        /* GCM releases plaintext before the tag is checked: erase it. */
        OPENSSL_cleanse(pt, e.ciphertext_len);
        st = BS_E_CRYPTO;
        goto out;
    }
    out->len += e.ciphertext_len;
out:
    if (st != BS_OK) out->len = start;
    return st;
}
