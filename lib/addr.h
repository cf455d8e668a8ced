/* lib/addr.h - email address checks (RFC 5321/5322 addr-spec, RFC 6531/6532 for UTF-8)
 * and normalisation, and mailbox parsing ("Ann <ann@example.com>").
 * Local parts: dot-atom or quoted-string, <= 64 octets, kept as given; UTF-8 in them is
 * accepted (valid, no controls) and marks the address as needing SMTPUTF8. Domains: LDH
 * labels (<= 63 octets each, >= 2 labels, <= 255 in all) after IDNA2008 conversion of
 * non-ASCII labels to A-labels (libidn2, UTS #46 non-transitional), lower-cased; address
 * literals are refused. No CR, LF, NUL or other control character anywhere. */
#ifndef POSTHORN_ADDR_H
#define POSTHORN_ADDR_H
#include <stddef.h>

#define ADDR_MAX 320        /* 64 + 1 + 255: buffer size */
#define ADDR_PATH_MAX 254   /* longest address accepted (RFC 5321 path limit) */

typedef struct {
    char email[ADDR_MAX + 1];   /* normalised: A-label domain, lower-cased; local part kept */
    int  smtputf8;              /* 1 when the local part has UTF-8 */
} addr_t;

/* Validates s (n bytes) and writes the normalised address into out (ADDR_MAX+1 bytes).
 * Returns NULL when valid, else a short reason for the error message. addr_parse without
 * the SMTPUTF8 flag (ASCII input is treated exactly as before UTF-8 support). */
const char *addr_normalize(const char *s, size_t n, char out[ADDR_MAX + 1]);

/* Validates the addr-spec s (n bytes) into out. NULL when valid, else a short reason. */
const char *addr_parse(const char *s, size_t n, addr_t *out);

/* A mailbox: "ann@example.com", "Ann <ann@example.com>" or "\"Doe, Ann\" <ann@...>"
 * (RFC 5322 name-addr; the display name a phrase of atoms or quoted-strings, UTF-8
 * allowed). The display name, unquoted and unescaped, words joined by one space, goes to
 * name (NUL-terminated, "" when there is none; name may be NULL to drop it). Refuses
 * whatever addr_parse or addr_name_valid refuses, and a name longer than name_max - 1. */
const char *addr_parse_mailbox(const char *s, size_t n, addr_t *out, char *name,
                               size_t name_max);

/* 1 when name may be a display name: valid UTF-8, no control character (none inside an
 * RFC 2047 encoded-word either, once decoded), <= 256 octets. */
/* Lower-cases ASCII letters in place (suppression lists compare whole addresses this way). */
void addr_lower_ascii(char *s);

int addr_name_valid(const char *name, size_t n);
#endif
