#include "lib/secretbox.h"
#include "lib/crypto.h"
#include "lib/log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N_PURPOSES 2
#define N_KEYS     2   /* the current secret, then the previous one */
#define KEY_LEN    32

static const char *const labels[N_PURPOSES + 1] = {
    [SECRETBOX_DKIM_KEY] = "posthorn dkim keys v1",
    [SECRETBOX_WEBHOOK_SECRET] = "posthorn webhook secrets v1",
};

static struct {
    int     present;
    uint8_t id;
    uint8_t key[N_PURPOSES + 1][KEY_LEN];
} keys[N_KEYS];
static int ready;

static int purpose_ok(secretbox_purpose p)
{
    return p >= SECRETBOX_DKIM_KEY && p <= SECRETBOX_WEBHOOK_SECRET;
}

static void derive(int slot, const char *secret)
{
    uint8_t id[1];
    crypto_hkdf(secret, strlen(secret), "posthorn secretbox key id v1", id, sizeof id);
    keys[slot].id = id[0];
    for (int p = SECRETBOX_DKIM_KEY; p <= SECRETBOX_WEBHOOK_SECRET; p++)
        crypto_hkdf(secret, strlen(secret), labels[p], keys[slot].key[p], KEY_LEN);
    keys[slot].present = 1;
}

void secretbox_init(const char *secret, const char *previous)
{
    if (!secret || !*secret)
        die("secretbox_init: no secret");
    OPENSSL_cleanse(keys, sizeof keys);
    derive(0, secret);
    if (previous && *previous)
        derive(1, previous);
    ready = 1;
}

/* One AES-256-GCM operation. enc: tag is written; !enc: tag is checked. The key id byte
 * goes into the associated data first, then the caller's. Returns 0, or -1 on a tag
 * mismatch; OpenSSL failing otherwise is a broken invariant. */
static int gcm(int enc, const uint8_t key[KEY_LEN], uint8_t kid, const uint8_t *nonce,
               const uint8_t *in, size_t n, const void *ad, size_t adn, uint8_t *out,
               uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len, rc = -1;
    if (!ctx)
        die("secretbox: out of memory");
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SECRETBOX_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &len, &kid, 1) != 1 ||
        (adn && EVP_CipherUpdate(ctx, NULL, &len, ad, (int)adn) != 1) ||
        (n && EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1))
        die("secretbox: cipher setup failed");
    if (enc) {
        if (EVP_CipherFinal_ex(ctx, out + n, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SECRETBOX_TAG_LEN, tag) != 1)
            die("secretbox: seal failed");
        rc = 0;
    } else {
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SECRETBOX_TAG_LEN, tag) != 1)
            die("secretbox: cannot set tag");
        rc = EVP_CipherFinal_ex(ctx, out + n, &len) == 1 ? 0 : -1;
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int secretbox_seal(secretbox_purpose p, const void *plain, size_t n, const void *ad, size_t adn,
                   buf *out)
{
    if (!ready)
        die("secretbox_seal before secretbox_init");
    if (!purpose_ok(p) || n > SECRETBOX_PLAIN_MAX || adn > SECRETBOX_AD_MAX ||
        (n && !plain) || (adn && !ad))
        return -1;
    size_t total = SECRETBOX_OVERHEAD + n;
    uint8_t *box = xmalloc(total + 16);   /* +16: GCM final writes nothing, but keep slack */
    box[0] = keys[0].id;
    crypto_random(box + 1, SECRETBOX_NONCE_LEN);
    uint8_t *ct = box + 1 + SECRETBOX_NONCE_LEN;
    gcm(1, keys[0].key[p], box[0], box + 1, plain, n, ad, adn, ct, ct + n);
    int rc = buf_append(out, box, total);
    free(box);
    return rc;
}

int secretbox_open(secretbox_purpose p, const void *box, size_t n, const void *ad, size_t adn,
                   buf *plain_out)
{
    if (!ready)
        die("secretbox_open before secretbox_init");
    if (!purpose_ok(p) || !box || n < SECRETBOX_OVERHEAD ||
        n - SECRETBOX_OVERHEAD > SECRETBOX_PLAIN_MAX || adn > SECRETBOX_AD_MAX || (adn && !ad))
        return -1;
    const uint8_t *b = box;
    size_t cn = n - SECRETBOX_OVERHEAD;
    const uint8_t *ct = b + 1 + SECRETBOX_NONCE_LEN;
    uint8_t tag[SECRETBOX_TAG_LEN];
    memcpy(tag, ct + cn, sizeof tag);
    uint8_t *plain = xmalloc(cn + 16);
    int rc = -1;
    for (int slot = 0; slot < N_KEYS && rc != 0; slot++) {
        if (!keys[slot].present || keys[slot].id != b[0])
            continue;
        rc = gcm(0, keys[slot].key[p], b[0], b + 1, ct, cn, ad, adn, plain, tag);
    }
    if (rc == 0)
        rc = buf_append(plain_out, plain, cn);
    OPENSSL_cleanse(plain, cn + 16);
    free(plain);
    return rc;
}
