/* lib/mime.h - the MIME builder for outgoing mail (RFC 5322, 2045-2049, 2047, 2231).
 * Output is always 7-bit: text parts quoted-printable, attachments base64, non-ASCII header
 * text as RFC 2047 encoded-words, so nothing needs re-encoding after DKIM signing. The one
 * exception is an addr-spec whose local part is UTF-8 (SMTPUTF8 mail, RFC 6532): it cannot
 * be written in 7 bits and is written as it is. Every line ends CRLF; header lines are
 * folded at 78 columns where they can be and never exceed 998 octets.
 * Also here: the checks for header-bound text (names, subjects, custom headers), shared
 * with lib/addr. */
#ifndef POSTHORN_MIME_H
#define POSTHORN_MIME_H
#include <stddef.h>

#include "lib/buf.h"

#define MIME_HEADER_VALUE_MAX 998   /* octets of one custom header value or subject */
#define MIME_HEADER_NAME_MAX  76
#define MIME_NAME_MAX         256   /* display names */
#define MIME_FILENAME_MAX     255
#define MIME_MESSAGE_ID_MAX   128   /* including the angle brackets and the NUL */

typedef struct {
    const char *email;   /* already normalised (lib/addr) */
    const char *name;    /* display name, UTF-8, may be NULL or "" */
} mime_addr;

typedef struct {
    const char          *filename;      /* UTF-8, may be NULL */
    const char          *content_type;  /* "type/subtype"; NULL = application/octet-stream */
    const char          *disposition;   /* "attachment" | "inline"; NULL = attachment */
    const char          *content_id;    /* without <>, inline only; NULL = none */
    const unsigned char *data;
    size_t               len;
} mime_attachment;

typedef struct {
    mime_addr               from;
    const mime_addr        *reply_to;   /* may be NULL */
    const mime_addr        *to;
    size_t                  nto;
    const mime_addr        *cc;
    size_t                  ncc;
    const char             *subject;    /* UTF-8; NULL = no Subject header */
    const char             *text;       /* NULL = no text part */
    size_t                  text_len;
    const char             *html;       /* NULL = no html part */
    size_t                  html_len;
    const char *const      *hdr_names;  /* custom headers, in this order */
    const char *const      *hdr_values;
    size_t                  nhdrs;
    const mime_attachment  *att;
    size_t                  natt;
    const char             *message_id; /* "<...>"; NULL = generated from the From domain */
    long long               date_unix;  /* 0 = now */
    const char             *list_unsubscribe;       /* NULL = none */
    const char             *list_unsubscribe_post;  /* NULL = none */
} mime_message;

/* Appends the message to out. Returns 0, or -1 with a reason in err (the input was not
 * valid, or out's maximum was reached); on failure out is left as it was. Structure:
 * text and/or html (multipart/alternative, text first); inline attachments with a
 * content_id go in a multipart/related around the html; every other attachment makes the
 * whole a multipart/mixed. Bodies may end lines with CRLF, LF or CR: all become CRLF. */
int mime_build(const mime_message *m, buf *out, char *err, size_t errlen);

/* NULL when name may be given as a custom header, else the reason (API.md "Sending"). */
const char *mime_custom_header_check(const char *name, size_t n);

/* 1 when v may be a header value: valid UTF-8, no control character (CR, LF, NUL, TAB,
 * DEL, C1), none inside any RFC 2047 encoded-word either once decoded, <= 998 octets. */
int mime_header_value_valid(const char *v, size_t n);

/* The same check with another bound (display names: MIME_NAME_MAX). */
int mime_text_valid(const char *s, size_t n, size_t max);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int mime_utf8_valid(const char *s, size_t n);

/* "<random@domain>", NUL-terminated; a domain that is not a plain host name or would not
 * fit is replaced by "posthorn.invalid". */
void mime_message_id(const char *domain, char out[MIME_MESSAGE_ID_MAX]);

#endif
