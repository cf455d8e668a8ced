/* Fuzz target: api/server.c http_pct_decode (query values, path parameters). The first byte
 * picks the output room; the output buffer is a heap block of exactly that size so ASan sees
 * any write past it. Accepted output has no NUL, is never longer than the input, and decodes
 * back from a fully escaped copy of itself. */
#include "tests/fuzz/fuzz.h"

#include "api/http.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* out_max 0 is left out: with an empty input it writes one byte past the buffer, a
     * reported bug (see the unit test test_pct_decode_zero_room). */
    size_t out_max = 1 + data[0] % 64;
    if (data[0] >= 192)
        out_max = size;                    /* room for all: what callers pass (n + 1) */
    const char *s = (const char *)data + 1;
    size_t n = size - 1;

    char *out = malloc(out_max);
    CHECK(out != NULL);
    int rc = http_pct_decode(s, n, out, out_max);
    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        size_t len = strlen(out);
        CHECK(len < out_max);
        CHECK(len <= n);
        CHECK(memchr(s, '\0', n) == NULL);
        /* percent-encode every byte and decode again: the same bytes come back */
        char *enc = malloc(3 * len + 1);
        char *dec = malloc(len + 1);
        CHECK(enc && dec);
        for (size_t i = 0; i < len; i++)
            snprintf(enc + 3 * i, 4, "%%%02X", (unsigned char)out[i]);
        CHECK(http_pct_decode(enc, 3 * len, dec, len + 1) == 0);
        CHECK(memcmp(dec, out, len + 1) == 0);
        /* with one byte less room it must refuse, not truncate */
        if (len > 0)
            CHECK(http_pct_decode(enc, 3 * len, dec, len) == -1);
        free(enc);
        free(dec);
    }
    free(out);
    return 0;
}
