#include "lib/ids.h"
#include "lib/crypto.h"
#include "lib/log.h"

#include <stdint.h>
#include <string.h>

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void ids_new(const char *prefix, char out[IDS_MAX])
{
    size_t pl = strlen(prefix);
    if (pl + IDS_BODY_LEN + 1 > IDS_MAX)
        die("id prefix too long: %s", prefix);
    memcpy(out, prefix, pl);
    size_t o = pl;
    while (o < pl + IDS_BODY_LEN) {
        uint8_t r[32];
        crypto_random(r, sizeof r);
        for (size_t i = 0; i < sizeof r && o < pl + IDS_BODY_LEN; i++)
            if (r[i] < 248)   /* 248 = 4 * 62: reject to keep the draw uniform */
                out[o++] = alphabet[r[i] % 62];
    }
    out[o] = '\0';
}

int ids_valid(const char *prefix, const char *s)
{
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl) != 0 || strlen(s) != pl + IDS_BODY_LEN)
        return 0;
    for (const char *p = s + pl; *p; p++)
        if (!strchr(alphabet, *p))
            return 0;
    return 1;
}
