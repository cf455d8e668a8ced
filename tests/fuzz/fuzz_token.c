/* Fuzz target: lib/token.c. The first byte picks a mode and a purpose.
 * Mode 0: the rest is a token presented from outside; forging one that opens is not
 * expected, and whatever opens fits the payload bound. Mode 1: the rest is a payload; its
 * token (when the payload fits) is base64url of the expected length, opens back to the same
 * bytes under its purpose only, and refuses a change at a position the input picks.
 * Mode 2: the rest is a VERP local part to open; mode 3: the rest seeds a delivery id whose
 * local part must stay within 64 octets and open back to it. */
#include "tests/fuzz/fuzz.h"

#include "lib/ids.h"
#include "lib/token.h"

#include <string.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        token_init("fuzz-secret-0123456789abcdef0123456789", "fuzz-previous-0123456789abcdef01234");
        ready = 1;
    }
    if (size < 1)
        return 0;
    int mode = data[0] & 3;
    token_purpose p = (token_purpose)(((data[0] >> 2) & 3) + 1);
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    uint8_t payload[TOKEN_PAYLOAD_MAX + 1];
    char tok[TOKEN_MAX_CHARS + 1];
    char id[IDS_MAX];

    if (mode == 0) {
        long r = token_open(p, (const char *)rest, n, payload, sizeof payload);
        CHECK(r >= -1 && r <= TOKEN_PAYLOAD_MAX);
    } else if (mode == 1) {
        int len = token_make(p, rest, n, tok, sizeof tok);
        if (n > TOKEN_PAYLOAD_MAX) {
            CHECK(len == -1);
            return 0;
        }
        CHECK(len == (int)((4 * (3 + n + 16) + 2) / 3));
        CHECK(strspn(tok, b64url) == (size_t)len);
        long r = token_open(p, tok, (size_t)len, payload, sizeof payload);
        CHECK(r == (long)n);
        CHECK(n == 0 || memcmp(payload, rest, n) == 0);
        for (int q = TOKEN_UNSUBSCRIBE; q <= TOKEN_VERP; q++)
            if (q != (int)p)
                CHECK(token_open((token_purpose)q, tok, (size_t)len, payload, sizeof payload) == -1);
        size_t at = n ? rest[0] % (size_t)len : 0;
        char c = tok[at];
        tok[at] = b64url[(strchr(b64url, c) - b64url + 1 + (n > 1 ? rest[1] % 63 : 0)) % 64];
        CHECK(tok[at] != c);
        CHECK(token_open(p, tok, (size_t)len, payload, sizeof payload) == -1);
        CHECK(token_open(p, tok, (size_t)len - 1, payload, sizeof payload) == -1);
    } else if (mode == 2) {
        if (token_verp_open((const char *)rest, n, NULL, id) == 0)
            CHECK(ids_valid("dlv_", id));
    } else {
        memcpy(id, "dlv_", 4);
        for (size_t i = 0; i < IDS_BODY_LEN; i++)
            id[4 + i] = base62[(i < n ? rest[i] : 0) % 62];
        id[4 + IDS_BODY_LEN] = '\0';
        const char *acc = n > IDS_BODY_LEN ? "acc_other" : "acc_fuzz";
        char local[TOKEN_VERP_LOCAL_MAX + 1], back[IDS_MAX];
        int len = token_verp_local(acc, id, local, sizeof local);
        CHECK(len > 0 && len <= TOKEN_VERP_LOCAL_MAX && (size_t)len == strlen(local));
        CHECK(token_verp_open(local, (size_t)len, acc, back) == 0);
        CHECK(strcmp(back, id) == 0);
        CHECK(token_verp_open(local, (size_t)len, n > IDS_BODY_LEN ? "acc_fuzz" : "acc_other", back) == -1);
    }
    return 0;
}
