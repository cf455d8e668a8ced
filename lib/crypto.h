/* lib/crypto.h - the few cryptographic building blocks Posthorn needs, on OpenSSL:
 * OS randomness, SHA-256, HMAC-SHA256, HKDF subkeys of POSTHORN_SECRET, constant-time
 * comparison, hex and unpadded base64url. */
#ifndef POSTHORN_CRYPTO_H
#define POSTHORN_CRYPTO_H
#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

void crypto_random(void *out, size_t n);          /* dies if the OS has no randomness */
void crypto_sha256(const void *p, size_t n, uint8_t out[SHA256_LEN]);
void crypto_hmac_sha256(const void *key, size_t klen, const void *p, size_t n,
                        uint8_t out[SHA256_LEN]);
/* HKDF-SHA256 (RFC 5869) of ikm with an ASCII label as info; out_len <= 255*32. */
void crypto_hkdf(const void *ikm, size_t ikm_len, const char *label, uint8_t *out,
                 size_t out_len);
int  crypto_equal(const void *a, const void *b, size_t n);   /* 1 equal, constant time */

/* hex: out needs 2n+1 bytes. */
void crypto_hex(const uint8_t *in, size_t n, char *out);
/* Unpadded base64url. encode: out needs 4*ceil(n/3)+1 bytes; returns the length.
 * decode: -1 on a character outside the alphabet or an impossible length. */
size_t crypto_b64url_encode(const uint8_t *in, size_t n, char *out);
long   crypto_b64url_decode(const char *in, size_t n, uint8_t *out, size_t out_max);
/* Standard base64 (RFC 4648 section 4) with padding, no whitespace: the decoded length, or
 * -1 when malformed. out NULL only validates and measures. */
long   crypto_b64_decode(const char *in, size_t n, uint8_t *out, size_t out_max);
#endif
