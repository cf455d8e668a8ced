/* lib/apikey.h - API keys: "ph_<prefix>_<secret>", a 12-character lookup prefix and 32
 * random bytes in base64url. Only the SHA-256 of the whole key is ever stored; checks
 * compare hashes in constant time. */
#ifndef POSTHORN_APIKEY_H
#define POSTHORN_APIKEY_H
#include "lib/crypto.h"
#include <stddef.h>

/* Scopes a key may hold; a route needs one (public routes none). Operator keys hold only
 * SCOPE_OPERATOR and belong to no account. */
typedef enum { SCOPE_PUBLIC, SCOPE_SEND, SCOPE_READ, SCOPE_ADMIN, SCOPE_OPERATOR } scope;
#define SCOPE_BIT(s) (1u << (s))

const char *apikey_scope_name(scope s);
/* Parses "send,read,admin" into SCOPE_BIT()s; -1 on an empty list or an unknown or
 * operator scope. */
int apikey_parse_scopes(const char *s, unsigned *out);

#define APIKEY_PREFIX_LEN 12
#define APIKEY_SECRET_LEN 43                              /* base64url of 32 bytes */
#define APIKEY_LEN (3 + APIKEY_PREFIX_LEN + 1 + APIKEY_SECRET_LEN)

/* A new key (NUL-terminated, APIKEY_LEN chars), its prefix and hash. */
void apikey_generate(char key[APIKEY_LEN + 1], char prefix[APIKEY_PREFIX_LEN + 1],
                     uint8_t hash[SHA256_LEN]);
/* Parses a presented key: 0 with prefix and hash filled, -1 when malformed. */
int  apikey_parse(const char *s, size_t n, char prefix[APIKEY_PREFIX_LEN + 1],
                  uint8_t hash[SHA256_LEN]);
/* 1 when s is a well-formed prefix. */
int  apikey_prefix_valid(const char *s);
#endif
