/* lib/dkim.h - DKIM signatures for outgoing mail (RFC 6376) with rsa-sha256 and
 * ed25519-sha256 (RFC 8463), on OpenSSL 3. Canonicalization is always relaxed/relaxed, no
 * l= tag. h= lists From, To, Cc, Subject, Date, Message-ID, MIME-Version, Content-Type,
 * Reply-To, List-Unsubscribe and List-Unsubscribe-Post as often as they occur, From and
 * Subject once more (over-signed, so a field added later breaks the signature).
 * The input is a message as lib/mime writes it: CRLF line ends, header, empty line, body.
 * The body hash can be computed once and shared by every recipient's signature. */
#ifndef POSTHORN_DKIM_H
#define POSTHORN_DKIM_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define DKIM_RSA     1   /* rsa-sha256, 2048-bit keys generated (1024..8192 loaded) */
#define DKIM_ED25519 2   /* ed25519-sha256 */
#define DKIM_HASH_LEN 32

typedef struct dkim_key dkim_key;

/* A PEM private key (PKCS#8 or PKCS#1 RSA); the algorithm is detected. NULL with a reason
 * in err when it is neither RSA nor Ed25519, or is malformed. */
dkim_key *dkim_key_load_pem(const char *pem, size_t n, char *err, size_t errlen);
void      dkim_key_free(dkim_key *k);
int       dkim_key_alg(const dkim_key *k);                  /* DKIM_RSA | DKIM_ED25519 */
/* Appends the p= value of the key record: base64 of the SubjectPublicKeyInfo (RSA) or of
 * the raw 32-byte public key (Ed25519). 0, or -1 when out is full. */
int       dkim_key_public_b64(const dkim_key *k, buf *out);

/* Generates a key: appends its unencrypted PKCS#8 PEM and the p= value. 0, or -1 + err. */
int dkim_keygen(int alg, buf *private_pem, buf *public_b64, char *err, size_t errlen);

typedef struct {
    const char     *domain;    /* d= */
    const char     *selector;  /* s= */
    const dkim_key *key;
} dkim_signer;

/* SHA-256 of the relaxed canonical body (the part after the first empty line). */
void dkim_body_hash(const char *msg, size_t n, uint8_t out[DKIM_HASH_LEN]);

/* Appends the complete "DKIM-Signature: ..." field (folded at 78 columns, CRLF-terminated,
 * b= last) to header_out, to be prepended to msg; signatures of several signers may be
 * prepended in any order. body_hash is dkim_body_hash(msg) or NULL to compute it here.
 * 0, or -1 with a reason in err (no From field, malformed header, bad domain or selector,
 * header_out full); on failure header_out is left as it was. */
int dkim_sign(const dkim_signer *s, const char *msg, size_t n, const uint8_t *body_hash,
              long long timestamp, buf *header_out, char *err, size_t errlen);

/* The building blocks, exposed for tests. Relaxed canonical form of a body (RFC 6376
 * 3.4.4) and of one header field with or without its CRLF ("name:value\r\n", 3.4.2);
 * 0, or -1 when out is full. dkim_sign_data signs canonical header data as the algorithm
 * requires (ed25519-sha256 signs its SHA-256) and appends the base64 signature. */
int dkim_canon_body(const char *body, size_t n, buf *out);
int dkim_canon_header(const char *field, size_t n, buf *out);
int dkim_sign_data(const dkim_key *k, const char *data, size_t n, buf *b64_out, char *err,
                   size_t errlen);
#endif
