/* Fuzz target: lib/crypto.c crypto_b64url_decode. The output buffer is a heap block of
 * exactly out_max bytes. Whatever decodes must re-encode to exactly the input (one encoding
 * per byte string), and fit the size the length implies. */
#include "tests/fuzz/fuzz.h"

#include "lib/crypto.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    size_t full = n / 4 * 3 + 2;             /* more than any decoding of n characters */
    size_t out_max = data[0] & 1 ? full : (size_t)data[0] % (full + 1);

    uint8_t *out = malloc(out_max ? out_max : 1);
    CHECK(out != NULL);
    long r = crypto_b64url_decode(s, n, out, out_max);
    CHECK(r >= -1);
    if (r >= 0) {
        CHECK((size_t)r <= out_max);
        CHECK((size_t)r == n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0));
        char *enc = malloc(4 * ((size_t)r + 2) / 3 + 1);
        CHECK(enc != NULL);
        size_t el = crypto_b64url_encode(out, (size_t)r, enc);
        CHECK(el == n);
        CHECK(memcmp(enc, s, n) == 0);
        free(enc);
    }
    free(out);
    return 0;
}
