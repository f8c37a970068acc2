/*
 * audit_key.c - signing keys for audit digests: loading (with the file
 * permission rule), key ids, and HMAC-SHA256 / Ed25519 signatures through
 * OpenSSL (see audit.h, "keys").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "audit_internal.h"
#include "brokerside/audit.h"
#include "brokerside/log.h"
#include "brokerside/text.h"

#define MOD "audit"
#define KEY_FILE_MAX 65536
#define HMAC_MIN 32
#define HMAC_MAX 1024

struct bs_audit_key {
    bs_audit_key_type type;
    EVP_PKEY *pkey; /* Ed25519 (private or public) */
    uint8_t *hmac;  /* HMAC secret, wiped on free */
    size_t hmac_len;
    char id[17];
};

/* Read a whole key file into a fresh buffer (*out, *len; free with
 * OPENSSL_clear_free(*out, KEY_FILE_MAX)). When `secret`, refuse anything
 * but a regular file without group/other permission bits. */
static bs_status read_key_file(const char *path, bool secret, uint8_t **out, size_t *len)
{
    bs_status st = BS_OK;
    uint8_t *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        BS_LOG_ERRORF(MOD, "key file %s: %s", path, strerror(errno));
        return BS_E_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        BS_LOG_ERRORF(MOD, "key file %s: %s", path, strerror(errno));
        st = BS_E_IO;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        BS_LOG_ERRORF(MOD, "key file %s: not a regular file", path);
        st = BS_E_CONFIG;
        goto out;
    }
    if (secret && (sb.st_mode & 077) != 0) {
        BS_LOG_ERRORF(MOD, "key file %s: mode %03o grants group/other access; chmod 600 it", path,
                      (unsigned)(sb.st_mode & 0777));
        st = BS_E_CONFIG;
        goto out;
    }
    buf = OPENSSL_zalloc(KEY_FILE_MAX);
    if (!buf) {
        st = BS_E_NOMEM;
        goto out;
    }
    size_t n = 0;
    for (;;) {
        if (n == KEY_FILE_MAX) {
            BS_LOG_ERRORF(MOD, "key file %s: larger than %d bytes", path, KEY_FILE_MAX);
            st = BS_E_TOO_LARGE;
            goto out;
        }
        ssize_t r = read(fd, buf + n, KEY_FILE_MAX - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            BS_LOG_ERRORF(MOD, "key file %s: %s", path, strerror(errno));
            st = BS_E_IO;
            goto out;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    *out = buf;
    *len = n;
    buf = NULL;
out:
    if (buf) OPENSSL_clear_free(buf, KEY_FILE_MAX);
    close(fd);
    return st;
}

/* Compute k->id from the public key or the HMAC secret (domain-separated
 * hash, so the id reveals nothing usable about the secret). */
static bs_status set_key_id(bs_audit_key *k)
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    if (k->type == BS_AUDIT_KEY_ED25519) {
        uint8_t pub[32];
        size_t pl = sizeof pub;
        if (EVP_PKEY_get_raw_public_key(k->pkey, pub, &pl) != 1) return BS_E_CRYPTO;
        SHA256(pub, pl, md);
    } else {
        static const char dom[] = "brokerside-audit-hmac-key-id";
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c) return BS_E_NOMEM;
        int ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
                 EVP_DigestUpdate(c, dom, sizeof dom) == 1 &&
                 EVP_DigestUpdate(c, k->hmac, k->hmac_len) == 1 &&
                 EVP_DigestFinal_ex(c, md, NULL) == 1;
        EVP_MD_CTX_free(c);
        if (!ok) return BS_E_CRYPTO;
    }
    bs_audit_hex(md, 8, k->id);
    return BS_OK;
}

/* Parse an Ed25519 PEM (private when `priv`) from buf into k. */
static bs_status parse_pem(const char *path, const uint8_t *buf, size_t len, bool priv,
                           bs_audit_key *k)
{
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    if (!bio) return BS_E_NOMEM;
    EVP_PKEY *pk = priv ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                        : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pk) {
        BS_LOG_ERRORF(MOD, "key file %s: not a readable PEM %s key", path,
                      priv ? "private" : "public");
        return BS_E_CONFIG;
    }
    if (!EVP_PKEY_is_a(pk, "ED25519")) {
        BS_LOG_ERRORF(MOD, "key file %s: PEM key is not Ed25519", path);
        EVP_PKEY_free(pk);
        return BS_E_CONFIG;
    }
    k->type = BS_AUDIT_KEY_ED25519;
    k->pkey = pk;
    return BS_OK;
}

/* Parse an HMAC secret: hex text (64..2048 digits, optional trailing
 * newline) or raw bytes (32..1024). */
static bs_status parse_hmac(const char *path, const uint8_t *buf, size_t len, bs_audit_key *k)
{
    size_t tl = len;
    while (tl > 0 && (buf[tl - 1] == '\n' || buf[tl - 1] == '\r'))
        tl--;
    bool hex = tl >= 2 * HMAC_MIN && tl <= 2 * HMAC_MAX && tl % 2 == 0;
    for (size_t i = 0; hex && i < tl; i++)
        hex = bs_hex_value(buf[i]) >= 0;
    size_t klen = hex ? tl / 2 : len;
    if (klen < HMAC_MIN || klen > HMAC_MAX) {
        BS_LOG_ERRORF(MOD,
                      "key file %s: an HMAC key needs %d..%d bytes (or twice as many hex digits)",
                      path, HMAC_MIN, HMAC_MAX);
        return BS_E_CONFIG;
    }
    k->hmac = OPENSSL_malloc(klen);
    if (!k->hmac) return BS_E_NOMEM;
    if (hex) {
        for (size_t i = 0; i < klen; i++)
            k->hmac[i] = (uint8_t)(bs_hex_value(buf[2 * i]) << 4 | bs_hex_value(buf[2 * i + 1]));
    } else {
        memcpy(k->hmac, buf, klen);
    }
    k->hmac_len = klen;
    k->type = BS_AUDIT_KEY_HMAC_SHA256;
    return BS_OK;
}

/* Shared body of the two loaders. */
static bs_status load(const char *path, bool priv, bs_audit_key **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    bs_status st;
    bs_audit_key *k = calloc(1, sizeof *k);
    if (!k) return BS_E_NOMEM;
    BS_GUARD_GOTO(st, read_key_file(path, priv, &buf, &len), out);
    static const char pem[] = "-----BEGIN";
    bool is_pem = len >= sizeof pem - 1 && memcmp(buf, pem, sizeof pem - 1) == 0;
    if (is_pem) {
        BS_GUARD_GOTO(st, parse_pem(path, buf, len, priv, k), out);
    } else if (priv) {
        BS_GUARD_GOTO(st, parse_hmac(path, buf, len, k), out);
    } else {
        BS_LOG_ERRORF(MOD, "key file %s: expected a PEM Ed25519 public key", path);
        st = BS_E_CONFIG;
        goto out;
    }
    BS_GUARD_GOTO(st, set_key_id(k), out);
    *out = k;
    k = NULL;
out:
    if (buf) OPENSSL_clear_free(buf, KEY_FILE_MAX);
    bs_audit_key_free(k);
    return st;
}

/* See audit.h. */
bs_status bs_audit_key_load(const char *path, bs_audit_key **out)
{
    return load(path, true, out);
}

/* See audit.h. */
bs_status bs_audit_key_load_public(const char *path, bs_audit_key **out)
{
    return load(path, false, out);
}

/* See audit.h. */
void bs_audit_key_free(bs_audit_key *k)
{
    if (!k) return;
    EVP_PKEY_free(k->pkey);
    if (k->hmac) OPENSSL_clear_free(k->hmac, k->hmac_len);
    free(k);
}

/* See audit.h. */
bs_audit_key_type bs_audit_key_get_type(const bs_audit_key *k)
{
    return k ? k->type : BS_AUDIT_KEY_NONE;
}

/* See audit.h. */
const char *bs_audit_key_algorithm(const bs_audit_key *k)
{
    switch (bs_audit_key_get_type(k)) {
    case BS_AUDIT_KEY_HMAC_SHA256:
        return "HMAC-SHA256";
    case BS_AUDIT_KEY_ED25519:
        return "Ed25519";
    default:
        return "none";
    }
}

/* See audit.h. */
void bs_audit_key_id(const bs_audit_key *k, char out[17])
{
    if (!k) {
        out[0] = 0;
        return;
    }
    memcpy(out, k->id, 17);
}

/* See audit.h. Inside a JSON line a raw `"signature":"` can only be a
 * member name followed by a string (a quote inside a string value is
 * escaped), and lower-case hex holds no quote, so the first such member and
 * the next quote delimit the value exactly. */
bs_status bs_audit_digest_sig_span(const char *line, size_t len, size_t *start, size_t *end)
{
    static const char key[] = "\"signature\":\"";
    const char *p = memmem(line, len, key, sizeof key - 1);
    BS_ENSURE(p, BS_E_MALFORMED);
    size_t s = (size_t)(p - line) + sizeof key - 1;
    const char *q = memchr(line + s, '"', len - s);
    BS_ENSURE(q, BS_E_MALFORMED);
    *start = s;
    *end = (size_t)(q - line);
    return BS_OK;
}

/* See audit.h. */
bs_status bs_audit_digest_message(const char *line, size_t len, bs_wbuf *out)
{
    size_t s, e;
    BS_GUARD(bs_audit_digest_sig_span(line, len, &s, &e));
    bs_wbuf_put_str(out, "brokerside-audit-digest-v1\n");
    bs_wbuf_put(out, line, s);
    bs_wbuf_put(out, line + e, len - e);
    return bs_wbuf_status(out);
}

/* Raw signature of msg into sig[*siglen] (capacity 64). */
static bs_status sign_raw(const bs_audit_key *k, const uint8_t *msg, size_t len, uint8_t sig[64],
                          size_t *siglen)
{
    if (k->type == BS_AUDIT_KEY_HMAC_SHA256) {
        unsigned int ol = 0;
        if (!HMAC(EVP_sha256(), k->hmac, (int)k->hmac_len, msg, len, sig, &ol)) return BS_E_CRYPTO;
        *siglen = ol;
        return BS_OK;
    }
    bs_status st = BS_E_CRYPTO;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return BS_E_NOMEM;
    *siglen = 64;
    if (EVP_DigestSignInit(c, NULL, NULL, NULL, k->pkey) == 1 &&
        EVP_DigestSign(c, sig, siglen, msg, len) == 1)
        st = BS_OK;
    EVP_MD_CTX_free(c);
    return st;
}

/* See audit.h. Ed25519 signing needs the private key (BS_E_STATE for a
 * public-only key). */
bs_status bs_audit_sign(const bs_audit_key *k, const uint8_t *msg, size_t len, bs_wbuf *sig_hex)
{
    BS_ENSURE(k && k->type != BS_AUDIT_KEY_NONE, BS_E_STATE);
    uint8_t sig[64];
    size_t sl = 0;
    char hex[129];
    BS_GUARD(sign_raw(k, msg, len, sig, &sl));
    bs_audit_hex(sig, sl, hex);
    bs_wbuf_put(sig_hex, hex, 2 * sl);
    return bs_wbuf_status(sig_hex);
}

/* See audit.h. */
bs_status bs_audit_verify_sig(const bs_audit_key *k, const uint8_t *msg, size_t len,
                              const char *sig_hex, size_t sig_len)
{
    BS_ENSURE(k && k->type != BS_AUDIT_KEY_NONE, BS_E_STATE);
    uint8_t sig[64];
    BS_ENSURE(sig_len % 2 == 0 && sig_len / 2 <= sizeof sig, BS_E_MALFORMED);
    size_t sl = sig_len / 2;
    for (size_t i = 0; i < sl; i++) {
        int hi = bs_hex_value((unsigned char)sig_hex[2 * i]),
            lo = bs_hex_value((unsigned char)sig_hex[2 * i + 1]);
        BS_ENSURE(hi >= 0 && lo >= 0, BS_E_MALFORMED);
        sig[i] = (uint8_t)(hi << 4 | lo);
    }
    if (k->type == BS_AUDIT_KEY_HMAC_SHA256) {
        uint8_t want[64];
        size_t wl = 0;
        BS_GUARD(sign_raw(k, msg, len, want, &wl));
        bool ok = wl == sl && CRYPTO_memcmp(want, sig, wl) == 0;
        OPENSSL_cleanse(want, sizeof want);
        return ok ? BS_OK : BS_E_CRYPTO;
    }
    bs_status st = BS_E_CRYPTO;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return BS_E_NOMEM;
    if (EVP_DigestVerifyInit(c, NULL, NULL, NULL, k->pkey) == 1 &&
        EVP_DigestVerify(c, sig, sl, msg, len) == 1)
        st = BS_OK;
    EVP_MD_CTX_free(c);
    return st;
}
