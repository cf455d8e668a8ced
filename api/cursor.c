#include "api/cursor.h"
#include "lib/crypto.h"
#include "lib/log.h"

#include <stdlib.h>
#include <string.h>

#define MAC_LEN 16
#define CURSOR_MAX 1024

static uint8_t key_now[32], key_prev[32];
static int have_prev;

void cursor_init(const char *secret, const char *previous)
{
    crypto_hkdf(secret, strlen(secret), "posthorn cursor v1", key_now, sizeof key_now);
    have_prev = previous && *previous;
    if (have_prev)
        crypto_hkdf(previous, strlen(previous), "posthorn cursor v1", key_prev, sizeof key_prev);
}

static void mac(const uint8_t key[32], const char *account_id, const char *payload, size_t n,
                uint8_t out[SHA256_LEN])
{
    size_t al = strlen(account_id);
    char *msg = xmalloc(al + 1 + n);
    memcpy(msg, account_id, al);
    msg[al] = '\n';
    memcpy(msg + al + 1, payload, n);
    crypto_hmac_sha256(key, 32, msg, al + 1 + n, out);
    free(msg);
}

char *cursor_encode(const char *account_id, const json_t *values)
{
    char *payload = json_dumps(values, JSON_COMPACT);
    if (!payload)
        die("cannot serialise a cursor");
    size_t n = strlen(payload);
    uint8_t m[SHA256_LEN];
    mac(key_now, account_id, payload, n, m);
    size_t total = n + MAC_LEN;
    uint8_t *raw = xmalloc(total);
    memcpy(raw, payload, n);
    memcpy(raw + n, m, MAC_LEN);
    char *out = xmalloc(4 * ((total + 2) / 3) + 1);
    crypto_b64url_encode(raw, total, out);
    free(raw);
    free(payload);
    return out;
}

json_t *cursor_decode(const char *account_id, const char *cursor)
{
    size_t cl = strlen(cursor);
    if (cl == 0 || cl > CURSOR_MAX)
        return NULL;
    uint8_t raw[CURSOR_MAX];
    long n = crypto_b64url_decode(cursor, cl, raw, sizeof raw);
    if (n <= MAC_LEN)
        return NULL;
    size_t pl = (size_t)n - MAC_LEN;
    uint8_t m[SHA256_LEN];
    mac(key_now, account_id, (const char *)raw, pl, m);
    int ok = crypto_equal(m, raw + pl, MAC_LEN);
    if (!ok && have_prev) {
        mac(key_prev, account_id, (const char *)raw, pl, m);
        ok = crypto_equal(m, raw + pl, MAC_LEN);
    }
    if (!ok)
        return NULL;
    json_t *v = json_loadb((const char *)raw, pl, 0, NULL);
    if (v && !json_is_array(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}
