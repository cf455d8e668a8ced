/* api/cursor.h - opaque list cursors bound to the account that received them: a JSON array
 * of keyset values, base64url-encoded, with an HMAC (a subkey of POSTHORN_SECRET) over the
 * account id and the payload. A cursor from another account, or altered, does not verify. */
#ifndef POSTHORN_CURSOR_H
#define POSTHORN_CURSOR_H
#include <jansson.h>

void  cursor_init(const char *secret, const char *previous);
/* Returns a malloc'd cursor for values (not stolen). */
char *cursor_encode(const char *account_id, const json_t *values);
/* The values (new reference), or NULL when the cursor does not verify or is malformed. */
json_t *cursor_decode(const char *account_id, const char *cursor);
#endif
