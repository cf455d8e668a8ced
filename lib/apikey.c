#include "lib/apikey.h"

#include <string.h>

static const char prefix_chars[] = "abcdefghijkmnpqrstuvwxyz23456789";   /* 32, unambiguous */

void apikey_generate(char key[APIKEY_LEN + 1], char prefix[APIKEY_PREFIX_LEN + 1],
                     uint8_t hash[SHA256_LEN])
{
    uint8_t r[APIKEY_PREFIX_LEN], secret[32];
    crypto_random(r, sizeof r);
    crypto_random(secret, sizeof secret);
    for (int i = 0; i < APIKEY_PREFIX_LEN; i++)
        prefix[i] = prefix_chars[r[i] & 31];
    prefix[APIKEY_PREFIX_LEN] = '\0';
    memcpy(key, "ph_", 3);
    memcpy(key + 3, prefix, APIKEY_PREFIX_LEN);
    key[3 + APIKEY_PREFIX_LEN] = '_';
    crypto_b64url_encode(secret, sizeof secret, key + 4 + APIKEY_PREFIX_LEN);
    crypto_sha256(key, APIKEY_LEN, hash);
}

int apikey_prefix_valid(const char *s)
{
    if (strlen(s) != APIKEY_PREFIX_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!strchr(prefix_chars, *p))
            return 0;
    return 1;
}

int apikey_parse(const char *s, size_t n, char prefix[APIKEY_PREFIX_LEN + 1],
                 uint8_t hash[SHA256_LEN])
{
    if (n != APIKEY_LEN || memcmp(s, "ph_", 3) != 0 || s[3 + APIKEY_PREFIX_LEN] != '_')
        return -1;
    memcpy(prefix, s + 3, APIKEY_PREFIX_LEN);
    prefix[APIKEY_PREFIX_LEN] = '\0';
    if (!apikey_prefix_valid(prefix))
        return -1;
    uint8_t secret[33];
    if (crypto_b64url_decode(s + 4 + APIKEY_PREFIX_LEN, APIKEY_SECRET_LEN, secret, sizeof secret) != 32)
        return -1;
    crypto_sha256(s, n, hash);
    return 0;
}

static const char *const scope_names[] = {"public", "send", "read", "admin", "operator"};

const char *apikey_scope_name(scope s) { return scope_names[s]; }

int apikey_parse_scopes(const char *s, unsigned *out)
{
    *out = 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int found = 0;
        for (int i = SCOPE_SEND; i <= SCOPE_ADMIN; i++)
            if (strlen(scope_names[i]) == n && strncmp(p, scope_names[i], n) == 0) {
                *out |= SCOPE_BIT(i);
                found = 1;
            }
        if (!found || (comma && comma[1] == '\0'))
            return -1;
        p += n + (comma ? 1 : 0);
    }
    return *out ? 0 : -1;
}
