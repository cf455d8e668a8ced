/* Fuzz target: lib/apikey.c apikey_parse and apikey_parse_scopes, the two parsers that see
 * what clients and operators type. An accepted key has the documented shape and its hash is
 * the SHA-256 of exactly the bytes given. */
#include "tests/fuzz/fuzz.h"

#include "lib/apikey.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char prefix[APIKEY_PREFIX_LEN + 1];
    uint8_t hash[SHA256_LEN];
    if (apikey_parse(s, size, prefix, hash) == 0) {
        CHECK(size == APIKEY_LEN);
        CHECK(memcmp(s, "ph_", 3) == 0 && s[3 + APIKEY_PREFIX_LEN] == '_');
        CHECK(strlen(prefix) == APIKEY_PREFIX_LEN && apikey_prefix_valid(prefix));
        CHECK(memcmp(prefix, s + 3, APIKEY_PREFIX_LEN) == 0);
        uint8_t want[SHA256_LEN];
        crypto_sha256(s, size, want);
        CHECK(memcmp(hash, want, SHA256_LEN) == 0);
        uint8_t secret[33];
        CHECK(crypto_b64url_decode(s + 16, APIKEY_SECRET_LEN, secret, sizeof secret) == 32);
    }

    char *z = malloc(size + 1);
    CHECK(z != NULL);
    memcpy(z, data, size);
    z[size] = '\0';
    unsigned bits = 0;
    if (apikey_parse_scopes(z, &bits) == 0) {
        unsigned allowed = SCOPE_BIT(SCOPE_SEND) | SCOPE_BIT(SCOPE_READ) | SCOPE_BIT(SCOPE_ADMIN);
        CHECK(bits != 0 && (bits & ~allowed) == 0);
    }
    free(z);
    return 0;
}
