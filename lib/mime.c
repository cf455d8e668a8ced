#include "lib/mime.h"
#include "lib/crypto.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Lines are folded at 78 columns; no unbreakable word we write passes 998. */
#define FOLD_AT       78
#define LINE_MAX_OCT  998
#define EW_MAX        75   /* RFC 2047: an encoded-word is at most 75 characters */
#define EW_OVERHEAD   12   /* "=?UTF-8?B?" + "?=" */
#define PLAIN_WORD_MAX 900 /* longer words are encoded so that the line stays <= 998 */
#define QP_LINE       76
#define B64_LINE      76
#define EMAIL_MAX     320
#define CID_MAX       250
#define CTYPE_MAX     127

static const char HEX[] = "0123456789ABCDEF";
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* --- UTF-8 and header text checks -------------------------------------------------- */

/* Length of the UTF-8 sequence at s (1-4), its code point in *cp; 0 when invalid. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

static int is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0);
}

int mime_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = utf8_next(p + i, n - i, &cp);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int byte_is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* Decodes the encoded text of one encoded-word as leniently as mail readers do and says
 * whether a control byte comes out (CR or LF there would become a header break in a
 * reader that decodes before it parses). */
static int ew_text_has_control(const unsigned char *t, size_t n, unsigned char enc)
{
    if (enc == 'q' || enc == 'Q') {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = t[i];
            if (c == '=' && i + 2 < n && hex_value(t[i + 1]) >= 0 && hex_value(t[i + 2]) >= 0) {
                c = (unsigned char)(hex_value(t[i + 1]) * 16 + hex_value(t[i + 2]));
                i += 2;
            } else if (c == '_') {
                c = ' ';
            }
            if (byte_is_control(c))
                return 1;
        }
        return 0;
    }
    /* Some decoders stop at padding, others start afresh after it: check both ways. */
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(t[i]);
        if (t[i] == '=') {
            acc = 0;
            bits = 0;
            continue;
        }
        if (v < 0)
            continue;
        acc = ((acc << 6) | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (byte_is_control((unsigned char)((acc >> bits) & 0xff)))
                return 1;
        }
    }
    return 0;
}

/* 1 when some "=?charset?enc?text?=" in s decodes to a control byte. Every "=?" is tried,
 * overlapping ones too, so no reader's idea of where an encoded-word starts is missed. */
static int ew_has_control(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '=' || p[i + 1] != '?')
            continue;
        size_t j = i + 2;
        while (j < n && p[j] != '?')
            j++;
        if (j + 2 >= n || p[j + 2] != '?')
            continue;
        unsigned char enc = p[j + 1];
        if (enc != 'q' && enc != 'Q' && enc != 'b' && enc != 'B')
            continue;
        size_t t = j + 3, e = t;
        while (e + 1 < n && !(p[e] == '?' && p[e + 1] == '='))
            e++;
        if (e + 1 >= n)
            continue;
        if (ew_text_has_control(p + t, e - t, enc))
            return 1;
    }
    return 0;
}

int mime_text_valid(const char *s, size_t n, size_t max)
{
    if (n > max)
        return 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = utf8_next(p + i, n - i, &cp);
        if (!l || is_control(cp))
            return 0;
        i += l;
    }
    return !ew_has_control(s, n);
}

int mime_header_value_valid(const char *v, size_t n)
{
    return mime_text_valid(v, n, MIME_HEADER_VALUE_MAX);
}

const char *mime_custom_header_check(const char *name, size_t n)
{
    static const char *const own[] = {"From", "Sender", "Reply-To", "To", "Cc", "Bcc",
                                      "Subject", "Date", "Message-ID", "In-Reply-To",
                                      "References"};
    static const char *const reserved[] = {"MIME-Version", "DKIM-Signature",
                                           "Authentication-Results", "Received",
                                           "Return-Path"};
    static const char *const reserved_prefix[] = {"Content-", "ARC-", "Resent-",
                                                  "List-Unsubscribe"};
    if (n == 0)
        return "empty header name";
    if (n > MIME_HEADER_NAME_MAX)
        return "header name longer than 76 characters";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 33 || c > 126 || c == ':')
            return "header name must be printable ASCII without ':' or space";
    }
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strlen(own[i]) == n && strncasecmp(own[i], name, n) == 0)
            return "header must be given through its own field, not in headers";
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen(reserved[i]) == n && strncasecmp(reserved[i], name, n) == 0)
            return "header is reserved (written by Posthorn or the transport)";
    for (size_t i = 0; i < sizeof reserved_prefix / sizeof reserved_prefix[0]; i++) {
        size_t l = strlen(reserved_prefix[i]);
        if (n >= l && strncasecmp(reserved_prefix[i], name, l) == 0)
            return "header is reserved (written by Posthorn or the transport)";
    }
    return NULL;
}

/* --- message ids ------------------------------------------------------------------------ */

static int hostname_ok(const char *d, size_t n)
{
    if (n == 0 || d[0] == '.' || d[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
        if (c == '.' && d[i + 1] == '.')
            return 0;
    }
    return 1;
}

void mime_message_id(const char *domain, char out[MIME_MESSAGE_ID_MAX])
{
    uint8_t r[16];
    char hex[2 * sizeof r + 1];
    crypto_random(r, sizeof r);
    crypto_hex(r, sizeof r, hex);
    size_t dl = domain ? strlen(domain) : 0;
    /* "<" hex "@" domain ">" NUL */
    if (!domain || !hostname_ok(domain, dl) || dl > MIME_MESSAGE_ID_MAX - 4 - 2 * sizeof r) {
        domain = "posthorn.invalid";
        dl = strlen(domain);
    }
    snprintf(out, MIME_MESSAGE_ID_MAX, "<%s@%.*s>", hex, (int)dl, domain);
}

/* --- the builder ------------------------------------------------------------------------ */

typedef struct {
    buf        *out;
    const char *why;      /* first failure; output is discarded */
    char        whybuf[160];
    size_t      col;      /* column on the current header line */
    int         words;    /* words on the current header line after the name */
    int         nbound;   /* boundaries made so far; their level digit */
} mb;

static void fail(mb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(mb *b, const char *fmt, ...)
{
    if (b->why)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->whybuf, sizeof b->whybuf, fmt, ap);
    va_end(ap);
    b->why = b->whybuf;
}

static void put(mb *b, const void *p, size_t n)
{
    if (!b->why && buf_append(b->out, p, n) != 0)
        fail(b, "message larger than the limit");
}

static void put_str(mb *b, const char *s) { put(b, s, strlen(s)); }

static void hdr_start(mb *b, const char *name)
{
    put_str(b, name);
    put(b, ":", 1);
    b->col = strlen(name) + 1;
    b->words = 0;
}

static void hdr_end(mb *b) { put(b, "\r\n", 2); }

static void hdr_fold(mb *b)
{
    put(b, "\r\n", 2);
    b->col = 0;
    b->words = 0;
}

/* Room for the next word on the current line (after its separating space). */
static size_t hdr_room(const mb *b)
{
    return b->col + 1 < FOLD_AT ? FOLD_AT - b->col - 1 : 0;
}

/* One unbreakable word w (n octets) followed by suffix, preceded by a space, or by a fold
 * when it would pass 78 columns and the line already holds a word. */
static void hdr_word(mb *b, const char *w, size_t n, const char *suffix)
{
    size_t sl = suffix ? strlen(suffix) : 0;
    if (b->words > 0 && n + sl > hdr_room(b))
        hdr_fold(b);
    put(b, " ", 1);
    put(b, w, n);
    if (sl)
        put(b, suffix, sl);
    b->col += 1 + n + sl;
    b->words++;
    if (b->col > LINE_MAX_OCT)
        fail(b, "header line longer than 998 octets");
}

/* Plain ASCII text: words split at single spaces. */
static void hdr_plain(mb *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != ' ')
            j++;
        if (j > i)
            hdr_word(b, s + i, j - i, NULL);
        i = j + 1;
    }
}

static int q_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

/* How many octets of whole UTF-8 characters of s fit in an encoded-word of at most room
 * characters, with B and with Q encoding (the phrase-safe Q alphabet of RFC 2047 5(3),
 * valid in every context). */
static size_t ew_fit_b(const unsigned char *s, size_t n, size_t room)
{
    if (room <= EW_OVERHEAD)
        return 0;
    size_t max = (room - EW_OVERHEAD) / 4 * 3, take = 0;
    while (take < n) {
        uint32_t cp;
        size_t l = utf8_next(s + take, n - take, &cp);
        if (!l)
            l = 1;
        if (take + l > max)
            break;
        take += l;
    }
    return take;
}

static size_t ew_fit_q(const unsigned char *s, size_t n, size_t room)
{
    if (room <= EW_OVERHEAD)
        return 0;
    size_t max = room - EW_OVERHEAD, take = 0, len = 0;
    while (take < n) {
        uint32_t cp;
        size_t l = utf8_next(s + take, n - take, &cp), el = 0;
        if (!l)
            l = 1;
        for (size_t k = 0; k < l; k++)
            el += (q_safe(s[take + k]) || s[take + k] == ' ') ? 1 : 3;
        if (len + el > max)
            break;
        take += l;
        len += el;
    }
    return take;
}

static size_t q_len(const unsigned char *s, size_t n)
{
    size_t l = 0;
    for (size_t i = 0; i < n; i++)
        l += (q_safe(s[i]) || s[i] == ' ') ? 1 : 3;
    return l;
}

/* Writes one encoded-word for s[0..n) into w (EW_MAX+1 bytes); returns its length. */
static size_t ew_make(const unsigned char *s, size_t n, int q, char *w)
{
    size_t o = 0;
    memcpy(w, q ? "=?UTF-8?Q?" : "=?UTF-8?B?", 10);
    o = 10;
    if (q) {
        for (size_t i = 0; i < n; i++) {
            if (q_safe(s[i])) {
                w[o++] = (char)s[i];
            } else if (s[i] == ' ') {
                w[o++] = '_';
            } else {
                w[o++] = '=';
                w[o++] = HEX[s[i] >> 4];
                w[o++] = HEX[s[i] & 15];
            }
        }
    } else {
        for (size_t i = 0; i < n; i += 3) {
            uint32_t v = (uint32_t)s[i] << 16;
            if (i + 1 < n)
                v |= (uint32_t)s[i + 1] << 8;
            if (i + 2 < n)
                v |= s[i + 2];
            w[o++] = B64[(v >> 18) & 63];
            w[o++] = B64[(v >> 12) & 63];
            w[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
            w[o++] = i + 2 < n ? B64[v & 63] : '=';
        }
    }
    w[o++] = '?';
    w[o++] = '=';
    w[o] = '\0';
    return o;
}

/* Text as encoded-words, each as long as the line allows (B or Q, whichever carries more
 * of the text), split only between characters. prefix goes before the first word and
 * suffix after the last (both short: a parameter's `name="` and `"`). */
static size_t ew_room(const mb *b, size_t extra)
{
    size_t room = hdr_room(b);
    room = room > extra ? room - extra : 0;
    return room > EW_MAX ? EW_MAX : room;
}

static void hdr_ew(mb *b, const char *text, size_t n, const char *prefix, const char *suffix)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t pl = prefix ? strlen(prefix) : 0, sl = suffix ? strlen(suffix) : 0;
    size_t i = 0;
    do {
        size_t extra = (i == 0 ? pl : 0) + sl;
        size_t room = ew_room(b, extra);
        /* Fold rather than split when the rest fits one encoded-word on a fresh line:
         * fewer words, and a display name in one word reads the same in every reader
         * (Python's phrase parser, for one, keeps the space between adjacent words).
         * A sliver at the end of a line is not worth a word either. */
        size_t fresh = FOLD_AT - 2 > extra ? FOLD_AT - 2 - extra : 0;
        fresh = fresh > EW_MAX ? EW_MAX : fresh;
        size_t rest = n - i;
        int fits_here = ew_fit_b(s + i, rest, room) == rest || ew_fit_q(s + i, rest, room) == rest;
        int fits_fresh = ew_fit_b(s + i, rest, fresh) == rest || ew_fit_q(s + i, rest, fresh) == rest;
        if (b->words > 0 && ((!fits_here && fits_fresh) || room < EW_OVERHEAD + 12)) {
            hdr_fold(b);
            room = ew_room(b, extra);
        }
        size_t tb = ew_fit_b(s + i, n - i, room), tq = ew_fit_q(s + i, n - i, room);
        if (tb == 0 && tq == 0 && i < n) {
            /* Only the first word after a long header name gets here (after a fold there
             * is room for any character): let that line pass 78 columns, never 998. */
            room = EW_MAX;
            tb = ew_fit_b(s + i, n - i, room);
            tq = ew_fit_q(s + i, n - i, room);
        }
        /* The word that carries more; of two carrying all, the shorter (Q on a tie). */
        int q = tq > tb || (tq == tb && q_len(s + i, tq) <= (tb + 2) / 3 * 4);
        size_t take = q ? tq : tb;
        char w[EW_MAX + 1];
        char word[EW_MAX + 1 + 16];
        size_t wl = ew_make(s + i, take, q, w), k = 0;
        if (i == 0 && pl) {
            memcpy(word, prefix, pl);
            k = pl;
        }
        memcpy(word + k, w, wl);
        k += wl;
        i += take;
        /* Sized above to fit the line, so hdr_word does not fold here. */
        hdr_word(b, word, k, i >= n ? suffix : NULL);
    } while (i < n);
}

/* Unstructured text (subject, custom values) goes out as it is when that is unambiguous:
 * printable ASCII, single spaces, no "=?" a reader could take for an encoded-word. */
static int text_is_plain(const char *s, size_t n)
{
    if (n == 0)
        return 1;
    if (s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    size_t word = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            return 0;
        if (c == ' ') {
            if (s[i + 1] == ' ')
                return 0;
            word = 0;
            continue;
        }
        if (c == '=' && i + 1 < n && s[i + 1] == '?')
            return 0;
        if (++word > PLAIN_WORD_MAX)
            return 0;
    }
    return 1;
}

static void hdr_text(mb *b, const char *name, const char *s, size_t n)
{
    hdr_start(b, name);
    if (text_is_plain(s, n))
        hdr_plain(b, s, n);
    else
        hdr_ew(b, s, n, NULL, NULL);
    hdr_end(b);
}

static int atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

typedef enum { NAME_ATOMS, NAME_QUOTED, NAME_EW } name_form;

static name_form display_name_form(const char *s, size_t n)
{
    int atoms = s[0] != ' ' && s[n - 1] != ' ', ascii = 1;
    size_t qlen = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e) {
            ascii = 0;
            break;
        }
        if (c == '=' && i + 1 < n && s[i + 1] == '?')
            return NAME_EW;
        if (c == ' ' ? (i + 1 < n && s[i + 1] == ' ') : !atext(c))
            atoms = 0;
        qlen += (c == '"' || c == '\\') ? 2 : 1;
    }
    if (!ascii)
        return NAME_EW;
    if (atoms && n <= FOLD_AT - 2)
        return NAME_ATOMS;
    return qlen <= FOLD_AT - 2 ? NAME_QUOTED : NAME_EW;
}

static void hdr_display_name(mb *b, const char *s, size_t n)
{
    switch (display_name_form(s, n)) {
    case NAME_ATOMS:
        hdr_plain(b, s, n);
        break;
    case NAME_QUOTED: {
        char q[FOLD_AT + 2];
        size_t k = 0;
        q[k++] = '"';
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"' || s[i] == '\\')
                q[k++] = '\\';
            q[k++] = s[i];
        }
        q[k++] = '"';
        hdr_word(b, q, k, NULL);
        break;
    }
    case NAME_EW:
        hdr_ew(b, s, n, NULL, NULL);
        break;
    }
}

static int email_ok(const char *e)
{
    size_t n = strlen(e);
    const char *at = memrchr(e, '@', n);
    if (n < 3 || n > EMAIL_MAX || !at || at == e || at + 1 == e + n)
        return 0;
    if (!mime_text_valid(e, n, EMAIL_MAX))
        return 0;
    for (const char *p = at + 1; p < e + n; p++)
        if ((unsigned char)*p >= 0x80 || *p == ' ' || *p == '>' || *p == '<')
            return 0;
    return 1;
}

static int check_addr(mb *b, const mime_addr *a, const char *field, size_t idx)
{
    if (!a->email || !email_ok(a->email)) {
        fail(b, "%s[%zu]: invalid email address", field, idx);
        return -1;
    }
    if (a->name && !mime_text_valid(a->name, strlen(a->name), MIME_NAME_MAX)) {
        fail(b, "%s[%zu]: invalid display name", field, idx);
        return -1;
    }
    return 0;
}

static void hdr_addrs(mb *b, const char *name, const mime_addr *a, size_t n)
{
    hdr_start(b, name);
    for (size_t i = 0; i < n; i++) {
        const char *sep = i + 1 < n ? "," : NULL;
        size_t el = strlen(a[i].email);
        if (a[i].name && a[i].name[0]) {
            hdr_display_name(b, a[i].name, strlen(a[i].name));
            char w[EMAIL_MAX + 3];
            w[0] = '<';
            memcpy(w + 1, a[i].email, el);
            w[el + 1] = '>';
            hdr_word(b, w, el + 2, sep);
        } else {
            hdr_word(b, a[i].email, el, sep);
        }
    }
    hdr_end(b);
}

static void hdr_date(mb *b, long long t)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = t ? (time_t)t : time(NULL);
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1900) {
        fail(b, "date out of range");
        return;
    }
    if (!b->why && buf_printf(b->out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
                              days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                              tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec) != 0)
        fail(b, "message larger than the limit");
}

/* msg-id / Content-ID text: printable ASCII without space, angle brackets, quotes. */
static int id_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(atext(c) || c == '.' || c == '@'))
            return 0;
    }
    return 1;
}

static int ctype_ok(const char *s)
{
    size_t n = strlen(s), slash = 0, i;
    if (n == 0 || n > CTYPE_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/') {
            if (slash++ || i == 0 || i + 1 == n)
                return 0;
            continue;
        }
        /* RFC 2045 token: no tspecials, no space or controls */
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c))
            return 0;
    }
    return slash == 1;
}

/* "=_ph<level>_<24 random hex>". It can never occur in a body: quoted-printable writes '='
 * only before two hex digits or a line break, base64 only as final padding before '=' or
 * a line break, so "=_" is impossible in either; part headers never start with "--"; and
 * the level digit keeps nested boundaries apart (no one is a prefix of another). The
 * randomness is for readers that look for boundaries in the wrong places. */
static void new_boundary(mb *b, char out[32])
{
    uint8_t r[12];
    char hex[2 * sizeof r + 1];
    crypto_random(r, sizeof r);
    crypto_hex(r, sizeof r, hex);
    snprintf(out, 32, "=_ph%d_%s", b->nbound++ % 10, hex);
}

static void multipart_start(mb *b, const char *subtype, const char *type_param, char bnd[32])
{
    char w[96];
    new_boundary(b, bnd);
    hdr_start(b, "Content-Type");
    snprintf(w, sizeof w, "multipart/%s;", subtype);
    hdr_word(b, w, strlen(w), NULL);
    if (type_param) {
        snprintf(w, sizeof w, "type=\"%s\";", type_param);
        hdr_word(b, w, strlen(w), NULL);
    }
    snprintf(w, sizeof w, "boundary=\"%s\"", bnd);
    hdr_word(b, w, strlen(w), NULL);
    hdr_end(b);
    put(b, "\r\n", 2);
}

/* Part delimiters own the CRLF before them (RFC 2046 5.1.1), so bodies end without one. */
static void multipart_next(mb *b, const char *bnd, int first)
{
    if (!first)
        put(b, "\r\n", 2);
    put(b, "--", 2);
    put_str(b, bnd);
    put(b, "\r\n", 2);
}

static void multipart_end(mb *b, const char *bnd)
{
    put(b, "\r\n--", 4);
    put_str(b, bnd);
    put(b, "--", 2);
}

/* How many of the bytes p[0..lim) from the start are printable ASCII or SP but '='; the
 * bytes up to p[avail) (avail >= lim) may be read. */
static size_t qp_plain_prefix(const unsigned char *p, size_t lim, size_t avail)
{
    size_t j = 0;
#ifdef __SSE2__
    const __m128i lo = _mm_set1_epi8(0x1F), hi = _mm_set1_epi8(0x7F), eq = _mm_set1_epi8('=');
    while (j < lim && j + 16 <= avail) {   /* signed compares: bytes >= 0x80 are not plain */
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + j));
        __m128i ok = _mm_andnot_si128(_mm_cmpeq_epi8(x, eq),
                                      _mm_and_si128(_mm_cmpgt_epi8(x, lo), _mm_cmplt_epi8(x, hi)));
        unsigned m = (unsigned)_mm_movemask_epi8(ok);
        size_t k = m == 0xFFFF ? 16 : (size_t)__builtin_ctz(~m);
        if (j + k >= lim)
            return lim;
        if (k < 16)
            return j + k;
        j += 16;
    }
#else
    (void)avail;
#endif
    while (j < lim && p[j] >= 32 && p[j] <= 126 && p[j] != '=')
        j++;
    return j;
}

/* Quoted-printable (RFC 2045 6.7), lines <= 76 with the soft break. Any of CRLF, CR, LF
 * is a line break. soft_end: the body ends the message, so a last line without a break
 * gets a soft one (every line ends CRLF, the content gains nothing). */
static void qp_body(mb *b, const unsigned char *p, size_t n, int soft_end)
{
    /* Output gathers in out[] and goes to the buffer a few KB at a time; col is the column
     * on the current line. */
    char out[4096];
    size_t used = 0, col = 0, i = 0;
    while (i < n) {
        if (used > sizeof out - (QP_LINE + 8)) {
            put(b, out, used);
            used = 0;
        }
        /* Fast path, most of any text: bytes written as they are (printable ASCII but '=',
         * and SP not at a line's end), as far as the line has room for them and a soft
         * break: what the general case below decides too. */
        size_t room = col < QP_LINE - 1 ? QP_LINE - 1 - col : 0;
        size_t lim = n - i < room ? n : i + room, j = i;
        j += qp_plain_prefix(p + i, lim - i, n - i);
        if (j > i && p[j - 1] == ' ' && (j == n || p[j] == '\r' || p[j] == '\n'))
            j--;                         /* SP at a line's end: encoded below */
        memcpy(out + used, p + i, j - i);
        used += j - i;
        col += j - i;
        i = j;
        if (i == n)
            break;
        unsigned char c = p[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < n && p[i + 1] == '\n')
                i++;
            i++;
            out[used++] = '\r';
            out[used++] = '\n';
            col = 0;
            continue;
        }
        int last = i + 1 == n;
        int eol = last || p[i + 1] == '\r' || p[i + 1] == '\n';
        size_t limit = (eol && !(last && soft_end)) ? QP_LINE : QP_LINE - 1;
        int lit = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !eol);
        size_t tl = lit ? 1 : 3;
        if (col + tl > limit) {
            out[used++] = '=';
            out[used++] = '\r';
            out[used++] = '\n';
            col = 0;
        }
        if (lit) {
            out[used++] = (char)c;
        } else {
            out[used++] = '=';
            out[used++] = HEX[c >> 4];
            out[used++] = HEX[c & 15];
        }
        col += tl;
        i++;
    }
    if (used)
        put(b, out, used);
    if (soft_end && n > 0 && p[n - 1] != '\n' && p[n - 1] != '\r')
        put(b, "=\r\n", 3);
}

static void b64_body(mb *b, const unsigned char *p, size_t n)
{
    char line[B64_LINE + 2];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        if (i > 0)
            line[k++] = '\r', line[k++] = '\n';
        for (size_t end = i + B64_LINE / 4 * 3 < n ? i + B64_LINE / 4 * 3 : n; i < end; i += 3) {
            uint32_t v = (uint32_t)p[i] << 16;
            if (i + 1 < n)
                v |= (uint32_t)p[i + 1] << 8;
            if (i + 2 < n)
                v |= p[i + 2];
            line[k++] = B64[(v >> 18) & 63];
            line[k++] = B64[(v >> 12) & 63];
            line[k++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
            line[k++] = i + 2 < n ? B64[v & 63] : '=';
        }
        put(b, line, k);
    }
}

static void text_part(mb *b, const char *subtype, const char *s, size_t n, int top)
{
    char w[32];
    snprintf(w, sizeof w, "text/%s;", subtype);
    hdr_start(b, "Content-Type");
    hdr_word(b, w, strlen(w), NULL);
    hdr_word(b, "charset=utf-8", 13, NULL);
    hdr_end(b);
    put_str(b, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    qp_body(b, (const unsigned char *)s, n, top);
}

static int attr_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$&+-.^_`|~", c));
}

/* A filename that can go in a plain quoted-string on one line. */
static int filename_plain(const char *s, size_t n)
{
    if (n > 60)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return 0;
        if (c == '=' && i + 1 < n && s[i + 1] == '?')
            return 0;
    }
    return 1;
}

/* filename*=utf-8''%XX.. (RFC 2231), split into numbered continuations when long. */
static void param_2231(mb *b, const char *attr, const char *s, size_t n)
{
    char w[FOLD_AT + 1];
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += attr_char((unsigned char)s[i]) ? 1 : 3;
    size_t al = strlen(attr);
    if (al + 10 + total <= FOLD_AT - 2) {   /* attr*=utf-8''...; */
        size_t k = (size_t)snprintf(w, sizeof w, "%s*=utf-8''", attr);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (attr_char(c)) {
                w[k++] = (char)c;
            } else {
                w[k++] = '%';
                w[k++] = HEX[c >> 4];
                w[k++] = HEX[c & 15];
            }
        }
        hdr_word(b, w, k, NULL);
        return;
    }
    size_t i = 0;
    for (int part = 0; i < n; part++) {
        size_t k = (size_t)snprintf(w, sizeof w, "%s*%d*=%s", attr, part, part ? "" : "utf-8''");
        /* Whole characters per segment: some readers decode segments one by one. */
        while (i < n) {
            uint32_t cp;
            size_t cl = utf8_next((const unsigned char *)s + i, n - i, &cp), l = 0;
            if (!cl)
                cl = 1;
            for (size_t j = 0; j < cl; j++)
                l += attr_char((unsigned char)s[i + j]) ? 1 : 3;
            if (k + l > FOLD_AT - 3)   /* room for ";" and the fold space */
                break;
            for (size_t j = 0; j < cl; j++, i++) {
                unsigned char c = (unsigned char)s[i];
                if (attr_char(c)) {
                    w[k++] = (char)c;
                } else {
                    w[k++] = '%';
                    w[k++] = HEX[c >> 4];
                    w[k++] = HEX[c & 15];
                }
            }
        }
        hdr_word(b, w, k, i < n ? ";" : NULL);
    }
}

static void attachment_part(mb *b, const mime_attachment *a)
{
    const char *ct = a->content_type ? a->content_type : "application/octet-stream";
    const char *disp = a->disposition ? a->disposition : "attachment";
    size_t fl = a->filename ? strlen(a->filename) : 0;
    int plain = fl && filename_plain(a->filename, fl);

    hdr_start(b, "Content-Type");
    hdr_word(b, ct, strlen(ct), fl ? ";" : NULL);
    if (fl && plain) {
        char w[FOLD_AT];
        size_t k = (size_t)snprintf(w, sizeof w, "name=\"%s\"", a->filename);
        hdr_word(b, w, k, NULL);
    } else if (fl) {
        /* RFC 2047 inside a quoted string is not standard, but it is what old clients
         * read; current ones use the RFC 2231 filename below. */
        hdr_ew(b, a->filename, fl, "name=\"", "\"");
    }
    hdr_end(b);
    put_str(b, "Content-Transfer-Encoding: base64\r\n");
    hdr_start(b, "Content-Disposition");
    hdr_word(b, disp, strlen(disp), fl ? ";" : NULL);
    if (fl && plain) {
        char w[FOLD_AT];
        size_t k = (size_t)snprintf(w, sizeof w, "filename=\"%s\"", a->filename);
        hdr_word(b, w, k, NULL);
    } else if (fl) {
        param_2231(b, "filename", a->filename, fl);
    }
    hdr_end(b);
    if (a->content_id) {
        hdr_start(b, "Content-ID");
        char w[CID_MAX + 3];
        size_t cl = strlen(a->content_id);
        w[0] = '<';
        memcpy(w + 1, a->content_id, cl);
        w[cl + 1] = '>';
        hdr_word(b, w, cl + 2, NULL);
        hdr_end(b);
    }
    put(b, "\r\n", 2);
    b64_body(b, a->data, a->len);
}

static int is_related(const mime_message *m, const mime_attachment *a)
{
    return m->html && a->content_id && a->disposition && strcmp(a->disposition, "inline") == 0;
}

static void html_or_related(mb *b, const mime_message *m, int top)
{
    size_t nrel = 0;
    for (size_t i = 0; i < m->natt; i++)
        nrel += is_related(m, &m->att[i]);
    if (!nrel) {
        text_part(b, "html", m->html, m->html_len, top);
        return;
    }
    char bnd[32];
    multipart_start(b, "related", "text/html", bnd);
    multipart_next(b, bnd, 1);
    text_part(b, "html", m->html, m->html_len, 0);
    for (size_t i = 0; i < m->natt; i++)
        if (is_related(m, &m->att[i])) {
            multipart_next(b, bnd, 0);
            attachment_part(b, &m->att[i]);
        }
    multipart_end(b, bnd);
}

static void content(mb *b, const mime_message *m, int top)
{
    if (m->text && m->html) {
        char bnd[32];
        multipart_start(b, "alternative", NULL, bnd);
        multipart_next(b, bnd, 1);
        text_part(b, "plain", m->text, m->text_len, 0);
        multipart_next(b, bnd, 0);
        html_or_related(b, m, 0);
        multipart_end(b, bnd);
    } else if (m->html) {
        html_or_related(b, m, top);
    } else {
        text_part(b, "plain", m->text ? m->text : "", m->text ? m->text_len : 0, top);
    }
}

static void body(mb *b, const mime_message *m)
{
    size_t nmixed = 0;
    for (size_t i = 0; i < m->natt; i++)
        nmixed += !is_related(m, &m->att[i]);
    if (!nmixed) {
        content(b, m, 1);
    } else {
        char bnd[32];
        multipart_start(b, "mixed", NULL, bnd);
        multipart_next(b, bnd, 1);
        content(b, m, 0);
        for (size_t i = 0; i < m->natt; i++)
            if (!is_related(m, &m->att[i])) {
                multipart_next(b, bnd, 0);
                attachment_part(b, &m->att[i]);
            }
        multipart_end(b, bnd);
    }
    /* A multipart ends at its close delimiter; a single QP part ended itself. */
    if (b->out->len >= 2 && memcmp(b->out->data + b->out->len - 2, "\r\n", 2) != 0)
        put(b, "\r\n", 2);
}

static int check(mb *b, const mime_message *m)
{
    if ((m->nto && !m->to) || (m->ncc && !m->cc) || (m->natt && !m->att) ||
        (m->nhdrs && (!m->hdr_names || !m->hdr_values)) || (m->text_len && !m->text) ||
        (m->html_len && !m->html)) {
        fail(b, "inconsistent message description");
        return -1;
    }
    if (check_addr(b, &m->from, "from", 0) != 0)
        return -1;
    if (m->reply_to && check_addr(b, m->reply_to, "reply_to", 0) != 0)
        return -1;
    for (size_t i = 0; i < m->nto; i++)
        if (check_addr(b, &m->to[i], "to", i) != 0)
            return -1;
    for (size_t i = 0; i < m->ncc; i++)
        if (check_addr(b, &m->cc[i], "cc", i) != 0)
            return -1;
    if (m->subject && !mime_header_value_valid(m->subject, strlen(m->subject))) {
        fail(b, "subject: invalid header value");
        return -1;
    }
    for (size_t i = 0; i < m->nhdrs; i++) {
        const char *why = m->hdr_names[i] ? mime_custom_header_check(m->hdr_names[i],
                                                                     strlen(m->hdr_names[i]))
                                           : "missing header name";
        if (why) {
            fail(b, "headers[%zu]: %s", i, why);
            return -1;
        }
        if (!m->hdr_values[i] ||
            !mime_header_value_valid(m->hdr_values[i], strlen(m->hdr_values[i]))) {
            fail(b, "headers[%zu]: invalid header value", i);
            return -1;
        }
    }
    if (m->message_id) {
        size_t n = strlen(m->message_id);
        if (n < 3 || m->message_id[0] != '<' || m->message_id[n - 1] != '>' ||
            !id_ok(m->message_id + 1, n - 2, CID_MAX)) {
            fail(b, "message_id: must be <id-left@id-right>");
            return -1;
        }
    }
    const char *lu[2] = {m->list_unsubscribe, m->list_unsubscribe_post};
    for (int i = 0; i < 2; i++)
        if (lu[i]) {
            size_t n = strlen(lu[i]);
            if (!mime_header_value_valid(lu[i], n) || !text_is_plain(lu[i], n) || n == 0) {
                fail(b, "%s: must be printable ASCII", i ? "list_unsubscribe_post" : "list_unsubscribe");
                return -1;
            }
        }
    for (size_t i = 0; i < m->natt; i++) {
        const mime_attachment *a = &m->att[i];
        if (a->filename && (!mime_text_valid(a->filename, strlen(a->filename), MIME_FILENAME_MAX) ||
                            !a->filename[0])) {
            fail(b, "attachments[%zu]: invalid filename", i);
            return -1;
        }
        if (a->content_type && !ctype_ok(a->content_type)) {
            fail(b, "attachments[%zu]: content_type must be type/subtype", i);
            return -1;
        }
        if (a->disposition && strcmp(a->disposition, "attachment") != 0 &&
            strcmp(a->disposition, "inline") != 0) {
            fail(b, "attachments[%zu]: disposition must be attachment or inline", i);
            return -1;
        }
        if (a->content_id && !id_ok(a->content_id, strlen(a->content_id), CID_MAX)) {
            fail(b, "attachments[%zu]: invalid content_id", i);
            return -1;
        }
        if (a->len && !a->data) {
            fail(b, "attachments[%zu]: no data", i);
            return -1;
        }
    }
    return 0;
}

int mime_build(const mime_message *m, buf *out, char *err, size_t errlen)
{
    mb b = {.out = out};
    size_t start = out->len;

    if (check(&b, m) != 0)
        goto done;
    hdr_date(&b, m->date_unix);
    hdr_addrs(&b, "From", &m->from, 1);
    if (m->reply_to)
        hdr_addrs(&b, "Reply-To", m->reply_to, 1);
    if (m->nto)
        hdr_addrs(&b, "To", m->to, m->nto);
    if (m->ncc)
        hdr_addrs(&b, "Cc", m->cc, m->ncc);
    if (m->subject)
        hdr_text(&b, "Subject", m->subject, strlen(m->subject));
    char mid[MIME_MESSAGE_ID_MAX];
    if (!m->message_id) {
        const char *at = strrchr(m->from.email, '@');
        mime_message_id(at + 1, mid);
    }
    hdr_start(&b, "Message-ID");
    const char *id = m->message_id ? m->message_id : mid;
    hdr_word(&b, id, strlen(id), NULL);
    hdr_end(&b);
    put_str(&b, "MIME-Version: 1.0\r\n");
    for (size_t i = 0; i < m->nhdrs; i++)
        hdr_text(&b, m->hdr_names[i], m->hdr_values[i], strlen(m->hdr_values[i]));
    if (m->list_unsubscribe) {
        hdr_start(&b, "List-Unsubscribe");
        hdr_plain(&b, m->list_unsubscribe, strlen(m->list_unsubscribe));
        hdr_end(&b);
    }
    if (m->list_unsubscribe_post) {
        hdr_start(&b, "List-Unsubscribe-Post");
        hdr_plain(&b, m->list_unsubscribe_post, strlen(m->list_unsubscribe_post));
        hdr_end(&b);
    }
    body(&b, m);

done:
    if (b.why) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        if (err && errlen)
            snprintf(err, errlen, "%s", b.why);
        return -1;
    }
    return 0;
}
