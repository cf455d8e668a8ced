/* lib/token.h - compact, URL-safe tokens that Posthorn hands out and later takes back:
 * unsubscribe links, click and open tracking, VERP return paths. A token carries caller
 * bytes in the clear (authenticated, not secret) and a MAC under an HKDF subkey of
 * POSTHORN_SECRET, one subkey per purpose, so a token of one purpose never opens as another.
 *
 * Wire form, unpadded base64url of:
 *   version (1, = TOKEN_VERSION) || purpose (1) || key id (1) || payload (0..256) || mac (16)
 * mac = HMAC-SHA256(subkey(secret, purpose), everything before it), truncated to 128 bits.
 * The key id is derived from the secret itself (not "current"/"previous"), so a token made
 * before a rotation names the same secret after it; opening tries every configured secret
 * whose id matches (a one-in-256 id collision only costs a second MAC). */
#ifndef POSTHORN_TOKEN_H
#define POSTHORN_TOKEN_H
#include <stddef.h>

#include "lib/ids.h"

typedef enum {
    TOKEN_UNSUBSCRIBE = 1,
    TOKEN_CLICK = 2,
    TOKEN_OPEN = 3,
    TOKEN_VERP = 4,
} token_purpose;

#define TOKEN_VERSION     1
#define TOKEN_MAC_LEN     16
#define TOKEN_PAYLOAD_MAX 256
/* Longest token in characters (3 + 256 + 16 = 275 bytes, base64url), without the NUL. */
#define TOKEN_MAX_CHARS   367

/* Derives the subkeys. secret is required (dies without it); previous may be NULL or "".
 * Call again to rotate; not thread-safe against concurrent make/open (call at start-up). */
void token_init(const char *secret, const char *previous);

/* Writes the NUL-terminated token into out. Returns its length, or -1 when n passes
 * TOKEN_PAYLOAD_MAX, the purpose is unknown, or out_max cannot hold the token and its NUL. */
int  token_make(token_purpose p, const void *payload, size_t n, char *out, size_t out_max);

/* Verifies tok (n characters, no NUL needed) for purpose p and copies its payload out.
 * Returns the payload length, or -1: bad length or base64url, unknown version, another
 * purpose, unknown key id, MAC wrong under every configured secret, or a payload longer than
 * payload_max. The MAC comparison is constant time. */
long token_open(token_purpose p, const char *tok, size_t n, void *payload_out, size_t payload_max);

/* VERP. The envelope sender's local part "bounces+<token>", at most 64 octets (RFC 5321
 * 4.5.3.1.1) and made only of dot-atom characters (base64url and '+').
 * The payload is the delivery id's 22 base62 characters packed into 17 bytes plus a 6-byte
 * tag of SHA-256(account id): 3 + 23 + 16 = 42 bytes = 56 characters, 64 with "bounces+".
 * The delivery id comes back whole (no lookup by hash needed); the account's row is then
 * found through the delivery. delivery_id must be a "dlv_" id (ids_valid). */
#define TOKEN_VERP_PREFIX    "bounces+"
#define TOKEN_VERP_LOCAL_MAX 64
/* Writes the local part (NUL-terminated) into out; returns its length or -1 (delivery id
 * not a dlv_ id, out_max < 65). */
int  token_verp_local(const char *account_id, const char *delivery_id, char *out, size_t out_max);
/* Opens a local part (n octets, with the "bounces+" prefix, compared case-sensitively as
 * base64url needs) into delivery_id_out. When account_id is not NULL, the token must also have
 * been made for that account. Returns 0, or -1 for anything not made by token_verp_local
 * under a configured secret. */
int  token_verp_open(const char *local, size_t n, const char *account_id,
                     char delivery_id_out[IDS_MAX]);
#endif
