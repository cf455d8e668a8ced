/* lib/addr.h - email address checks (RFC 5321/5322 addr-spec) and normalisation.
 * Foundation cut: dot-atom or quoted-string local-parts up to 64 octets, an ASCII domain of
 * LDH labels (<= 63 octets each, <= 255 in all) or an address literal is refused; the
 * domain part is lower-cased. Internationalised addresses come with the sending issue. */
#ifndef POSTHORN_ADDR_H
#define POSTHORN_ADDR_H
#include <stddef.h>

#define ADDR_MAX 320   /* 64 + 1 + 255 */

/* Validates s (n bytes) and writes the normalised address into out (ADDR_MAX+1 bytes).
 * Returns NULL when valid, else a short reason for the error message. */
const char *addr_normalize(const char *s, size_t n, char out[ADDR_MAX + 1]);
#endif
