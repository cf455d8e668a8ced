/* lib/secretbox.h - encryption at rest of the few secrets Posthorn stores: DKIM private keys
 * and webhook signing secrets. AES-256-GCM (OpenSSL EVP) under an HKDF subkey of
 * POSTHORN_SECRET, one subkey per purpose, with caller associated data that binds a box to
 * its row (e.g. account id and domain), so a box copied to another row does not open.
 *
 * Box layout: key id (1) || nonce (12, random) || ciphertext (n) || tag (16).
 * The key id is derived from the secret (not "current"/"previous"), so boxes sealed before a
 * rotation still name their secret after it; the key id byte is authenticated too.
 * Random 96-bit nonces: fine for the low volume of these secrets (well under 2^32 per key). */
#ifndef POSTHORN_SECRETBOX_H
#define POSTHORN_SECRETBOX_H
#include <stddef.h>

#include "lib/buf.h"

typedef enum {
    SECRETBOX_DKIM_KEY = 1,        /* "posthorn dkim keys v1" */
    SECRETBOX_WEBHOOK_SECRET = 2,  /* "posthorn webhook secrets v1" */
} secretbox_purpose;

#define SECRETBOX_NONCE_LEN 12
#define SECRETBOX_TAG_LEN   16
#define SECRETBOX_OVERHEAD  (1 + SECRETBOX_NONCE_LEN + SECRETBOX_TAG_LEN)
#define SECRETBOX_PLAIN_MAX (1u << 20)   /* a PEM key is a few KB; 1 MiB is generous */
#define SECRETBOX_AD_MAX    4096

/* Derives the subkeys. secret is required (dies without it); previous may be NULL or "".
 * Call at start-up (not thread-safe against concurrent seal/open). */
void secretbox_init(const char *secret, const char *previous);

/* Seals n bytes of plain with associated data ad (adn bytes, may be 0) under the current
 * secret and appends the box to out. Returns 0, or -1 (n or adn too large, unknown purpose,
 * out would pass its maximum; out is then unchanged). */
int secretbox_seal(secretbox_purpose p, const void *plain, size_t n, const void *ad, size_t adn,
                   buf *out);

/* Opens a box and appends the plaintext to plain_out. Returns 0, or -1 when the box is
 * truncated, altered, sealed for another purpose, with other associated data, or under a
 * secret that is neither the current nor the previous one, or plain_out would pass its
 * maximum. On -1 nothing is appended. Nothing is logged. */
int secretbox_open(secretbox_purpose p, const void *box, size_t n, const void *ad, size_t adn,
                   buf *plain_out);
#endif
