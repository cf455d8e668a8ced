/* tests/unit/sealtool.c - lib/secretbox and lib/token from the command line, for the
 * worker signing test (tests/e2e/test_worker_signing.py), under POSTHORN_SECRET from the
 * environment. Not a unit test: `make unit` builds it and does not run it.
 *
 *   sealtool AD < plain          hex of secretbox_seal(SECRETBOX_DKIM_KEY, plain, ad = AD)
 *   sealtool --verp LOCAL ACCOUNT    the delivery id of a VERP local part (token_verp_open)
 *   sealtool --unsub TOKEN           the payload of an unsubscribe token (token_open)
 * Exit 0, or 2 with a reason on stderr. */
#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/ids.h"
#include "lib/secretbox.h"
#include "lib/token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void bail(const char *why)
{
    fprintf(stderr, "sealtool: %s\n", why);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *secret = getenv("POSTHORN_SECRET");
    if (!secret || !*secret)
        bail("POSTHORN_SECRET is not set");
    secretbox_init(secret, getenv("POSTHORN_SECRET_PREVIOUS"));
    token_init(secret, getenv("POSTHORN_SECRET_PREVIOUS"));
    if (argc == 4 && strcmp(argv[1], "--verp") == 0) {
        char did[IDS_MAX];
        if (token_verp_open(argv[2], strlen(argv[2]), argv[3], did) != 0)
            bail("not a VERP local part of this account under this secret");
        printf("%s\n", did);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--unsub") == 0) {
        char payload[TOKEN_PAYLOAD_MAX + 1];
        long n = token_open(TOKEN_UNSUBSCRIBE, argv[2], strlen(argv[2]), payload,
                            sizeof payload - 1);
        if (n < 0)
            bail("not an unsubscribe token under this secret");
        fwrite(payload, 1, (size_t)n, stdout);
        return 0;
    }
    if (argc != 2)
        bail("usage: sealtool AD < plain | --verp LOCAL ACCOUNT | --unsub TOKEN");
    buf in, box;
    buf_init(&in, SECRETBOX_PLAIN_MAX);
    buf_init(&box, SECRETBOX_PLAIN_MAX + SECRETBOX_OVERHEAD);
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, stdin)) > 0)
        if (buf_append(&in, tmp, n) != 0)
            bail("input too large");
    if (secretbox_seal(SECRETBOX_DKIM_KEY, in.data ? in.data : "", in.len, argv[1],
                       strlen(argv[1]), &box) != 0)
        bail("cannot seal");
    char *hex = malloc(2 * box.len + 1);
    if (!hex)
        bail("out of memory");
    crypto_hex((const uint8_t *)box.data, box.len, hex);
    printf("%s\n", hex);
    free(hex);
    buf_free(&in);
    buf_free(&box);
    return 0;
}
