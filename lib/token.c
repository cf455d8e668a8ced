#include "lib/token.h"
#include "lib/crypto.h"
#include "lib/log.h"

#include <openssl/crypto.h>
#include <stdint.h>
#include <string.h>

#define HEADER_LEN 3
#define RAW_MAX    (HEADER_LEN + TOKEN_PAYLOAD_MAX + TOKEN_MAC_LEN)
#define N_PURPOSES 4
#define N_KEYS     2   /* the current secret, then the previous one */

static const char *const labels[N_PURPOSES + 1] = {
    [TOKEN_UNSUBSCRIBE] = "posthorn token v1 unsubscribe",
    [TOKEN_CLICK] = "posthorn token v1 click",
    [TOKEN_OPEN] = "posthorn token v1 open",
    [TOKEN_VERP] = "posthorn token v1 verp",
};

static struct {
    int     present;
    uint8_t id;
    uint8_t key[N_PURPOSES + 1][SHA256_LEN];
} keys[N_KEYS];
static int ready;

static int purpose_ok(token_purpose p)
{
    return p >= TOKEN_UNSUBSCRIBE && p <= TOKEN_VERP;
}

static void derive(int slot, const char *secret)
{
    uint8_t id[1];
    crypto_hkdf(secret, strlen(secret), "posthorn token key id v1", id, sizeof id);
    keys[slot].id = id[0];
    for (int p = TOKEN_UNSUBSCRIBE; p <= TOKEN_VERP; p++)
        crypto_hkdf(secret, strlen(secret), labels[p], keys[slot].key[p], SHA256_LEN);
    keys[slot].present = 1;
}

void token_init(const char *secret, const char *previous)
{
    if (!secret || !*secret)
        die("token_init: no secret");
    OPENSSL_cleanse(keys, sizeof keys);
    derive(0, secret);
    if (previous && *previous)
        derive(1, previous);
    ready = 1;
}

static void mac(int slot, token_purpose p, const uint8_t *raw, size_t n,
                uint8_t out[SHA256_LEN])
{
    crypto_hmac_sha256(keys[slot].key[p], SHA256_LEN, raw, n, out);
}

int token_make(token_purpose p, const void *payload, size_t n, char *out, size_t out_max)
{
    if (!ready)
        die("token_make before token_init");
    if (!purpose_ok(p) || n > TOKEN_PAYLOAD_MAX || (n > 0 && !payload))
        return -1;
    size_t total = HEADER_LEN + n + TOKEN_MAC_LEN;
    if (out_max < (4 * total + 2) / 3 + 1)   /* unpadded base64url length, then the NUL */
        return -1;
    uint8_t raw[RAW_MAX], m[SHA256_LEN];
    raw[0] = TOKEN_VERSION;
    raw[1] = (uint8_t)p;
    raw[2] = keys[0].id;
    if (n)
        memcpy(raw + HEADER_LEN, payload, n);
    mac(0, p, raw, HEADER_LEN + n, m);
    memcpy(raw + HEADER_LEN + n, m, TOKEN_MAC_LEN);
    return (int)crypto_b64url_encode(raw, total, out);
}

long token_open(token_purpose p, const char *tok, size_t n, void *payload_out, size_t payload_max)
{
    if (!ready)
        die("token_open before token_init");
    if (!purpose_ok(p) || !tok || n > TOKEN_MAX_CHARS)
        return -1;
    uint8_t raw[RAW_MAX], m[SHA256_LEN];
    long got = crypto_b64url_decode(tok, n, raw, sizeof raw);
    if (got < HEADER_LEN + TOKEN_MAC_LEN)
        return -1;
    size_t pl = (size_t)got - HEADER_LEN - TOKEN_MAC_LEN;
    if (raw[0] != TOKEN_VERSION || raw[1] != (uint8_t)p)
        return -1;
    int ok = 0;
    for (int slot = 0; slot < N_KEYS; slot++) {
        if (!keys[slot].present || keys[slot].id != raw[2])
            continue;
        mac(slot, p, raw, HEADER_LEN + pl, m);
        ok |= crypto_equal(m, raw + HEADER_LEN + pl, TOKEN_MAC_LEN);
    }
    if (!ok || pl > payload_max)
        return -1;
    if (pl)
        memcpy(payload_out, raw + HEADER_LEN, pl);
    return (long)pl;
}

/* VERP: base62 id bodies packed as a big-endian number (62^22 < 2^131 fits 17 bytes). */
#define VERP_ID_PREFIX "dlv_"
#define VERP_PACKED    17
#define VERP_TAG       6
#define VERP_PAYLOAD   (VERP_PACKED + VERP_TAG)

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void pack_id(const char *body, uint8_t out[VERP_PACKED])
{
    memset(out, 0, VERP_PACKED);
    for (size_t i = 0; i < IDS_BODY_LEN; i++) {
        unsigned carry = (unsigned)(strchr(base62, body[i]) - base62);
        for (int j = VERP_PACKED - 1; j >= 0; j--) {
            unsigned v = out[j] * 62u + carry;
            out[j] = (uint8_t)v;
            carry = v >> 8;
        }
    }
}

/* -1 when the number is not below 62^22, i.e. not something pack_id produced. */
static int unpack_id(const uint8_t in[VERP_PACKED], char body[IDS_BODY_LEN])
{
    uint8_t n[VERP_PACKED];
    memcpy(n, in, sizeof n);
    for (int i = IDS_BODY_LEN - 1; i >= 0; i--) {
        unsigned rem = 0;
        for (size_t j = 0; j < VERP_PACKED; j++) {
            unsigned v = rem << 8 | n[j];
            n[j] = (uint8_t)(v / 62);
            rem = v % 62;
        }
        body[i] = base62[rem];
    }
    for (size_t j = 0; j < VERP_PACKED; j++)
        if (n[j])
            return -1;
    return 0;
}

static void account_tag(const char *account_id, uint8_t out[VERP_TAG])
{
    uint8_t h[SHA256_LEN];
    crypto_sha256(account_id, strlen(account_id), h);
    memcpy(out, h, VERP_TAG);
}

int token_verp_local(const char *account_id, const char *delivery_id, char *out, size_t out_max)
{
    if (!account_id || !delivery_id || !ids_valid(VERP_ID_PREFIX, delivery_id) ||
        out_max < TOKEN_VERP_LOCAL_MAX + 1)
        return -1;
    uint8_t payload[VERP_PAYLOAD];
    pack_id(delivery_id + strlen(VERP_ID_PREFIX), payload);
    account_tag(account_id, payload + VERP_PACKED);
    size_t pre = strlen(TOKEN_VERP_PREFIX);
    memcpy(out, TOKEN_VERP_PREFIX, pre);
    int tl = token_make(TOKEN_VERP, payload, sizeof payload, out + pre, out_max - pre);
    if (tl < 0 || pre + (size_t)tl > TOKEN_VERP_LOCAL_MAX)
        die("token_verp_local: local part does not fit");   /* fixed sizes: cannot happen */
    return (int)pre + tl;
}

int token_verp_open(const char *local, size_t n, const char *account_id,
                    char delivery_id_out[IDS_MAX])
{
    size_t pre = strlen(TOKEN_VERP_PREFIX);
    if (!local || n < pre || n > TOKEN_VERP_LOCAL_MAX || memcmp(local, TOKEN_VERP_PREFIX, pre) != 0)
        return -1;
    uint8_t payload[VERP_PAYLOAD];
    long pl = token_open(TOKEN_VERP, local + pre, n - pre, payload, sizeof payload);
    if (pl != VERP_PAYLOAD)
        return -1;
    if (account_id) {
        uint8_t tag[VERP_TAG];
        account_tag(account_id, tag);
        if (!crypto_equal(tag, payload + VERP_PACKED, VERP_TAG))
            return -1;
    }
    char body[IDS_BODY_LEN];
    if (unpack_id(payload, body) < 0)
        return -1;
    size_t ip = strlen(VERP_ID_PREFIX);
    memcpy(delivery_id_out, VERP_ID_PREFIX, ip);
    memcpy(delivery_id_out + ip, body, IDS_BODY_LEN);
    delivery_id_out[ip + IDS_BODY_LEN] = '\0';
    return 0;
}
