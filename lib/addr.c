#include "lib/addr.h"
#include "lib/mime.h"

#include <idn2.h>
#include <string.h>

/* Non-ASCII input may be longer than its normalised form (U-labels); this bounds it. */
#define ADDR_INPUT_MAX 1024
#define MAILBOX_MAX    (ADDR_INPUT_MAX + 4 * MIME_NAME_MAX)

static int atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

/* UTF-8 (RFC 6531 atext/qtext) bytes were validated before: they pass as text here. */
static const char *check_local(const char *s, size_t n)
{
    if (n == 0)
        return "empty local part";
    if (n > 64)
        return "local part longer than 64 octets";
    if (s[0] == '"') {
        if (n < 2 || s[n - 1] != '"')
            return "unterminated quoted local part";
        for (size_t i = 1; i + 1 < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '\\') {
                if (++i + 1 >= n)
                    return "bad escape in quoted local part";
                c = (unsigned char)s[i];
                if (c < 0x20 || c == 0x7f)
                    return "invalid character in local part";
                continue;
            }
            if (c < 0x20 || c == 0x7f || c == '"')
                return "invalid character in local part";
        }
        return NULL;
    }
    if (s[0] == '.' || s[n - 1] == '.')
        return "local part starts or ends with a dot";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return "consecutive dots in local part";
            continue;
        }
        if (c < 0x80 && !atext(c))
            return "invalid character in local part";
    }
    return NULL;
}

static const char *check_domain(const char *s, size_t n)
{
    if (n == 0)
        return "empty domain";
    if (n > 255)
        return "domain longer than 255 octets";
    if (s[0] == '[')
        return "address literals are not accepted";
    size_t label = 0, labels = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0)
                return "empty domain label";
            if (s[i - 1] == '-' || s[i - label] == '-')
                return "domain label starts or ends with a hyphen";
            label = 0;
            labels++;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return "invalid character in domain";
        if (++label > 63)
            return "domain label longer than 63 octets";
    }
    if (labels < 2)
        return "domain needs at least two labels";
    return NULL;
}

/* IDNA2008 (UTS #46 non-transitional, NFC) to A-labels, then the LDH rules above. */
static const char *idn_domain(const char *s, size_t n, char *out, size_t *outlen)
{
    char in[ADDR_INPUT_MAX + 1];
    char *ace = NULL;
    if (s[0] == '[')
        return "address literals are not accepted";
    if (!mime_text_valid(s, n, ADDR_INPUT_MAX))
        return "domain is not valid UTF-8 or has control characters";
    memcpy(in, s, n);
    in[n] = '\0';
    if (idn2_to_ascii_8z(in, &ace, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK) {
        idn2_free(ace);
        return "invalid internationalised domain name";
    }
    size_t al = strlen(ace);
    const char *why = check_domain(ace, al);
    if (!why) {
        memcpy(out, ace, al);
        *outlen = al;
    }
    idn2_free(ace);
    return why;
}

const char *addr_parse(const char *s, size_t n, addr_t *out)
{
    if (n == 0)
        return "empty address";
    int utf8 = has_8bit(s, n);
    if (n > (utf8 ? ADDR_INPUT_MAX : ADDR_MAX))
        return "address too long";
    if (memchr(s, '\0', n))
        return "NUL in address";
    const char *at = memrchr(s, '@', n);
    if (!at)
        return "missing @";
    size_t ll = (size_t)(at - s), dl = n - ll - 1;
    int local8 = has_8bit(s, ll);
    if (local8 && !mime_text_valid(s, ll, 64))
        return ll > 64 ? "local part longer than 64 octets"
                       : "local part is not valid UTF-8 or has control characters";
    const char *why = check_local(s, ll);
    if (why)
        return why;
    char dom[256];
    size_t dlen = dl;
    if (has_8bit(at + 1, dl)) {
        why = idn_domain(at + 1, dl, dom, &dlen);
    } else {
        why = check_domain(at + 1, dl);
        if (!why)
            memcpy(dom, at + 1, dl);
    }
    if (why)
        return why;
    /* RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets. */
    if (ll + 1 + dlen > ADDR_PATH_MAX)
        return "address longer than 254 octets";
    memcpy(out->email, s, ll);
    out->email[ll] = '@';
    for (size_t i = 0; i < dlen; i++) {
        char c = dom[i];
        out->email[ll + 1 + i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out->email[ll + 1 + dlen] = '\0';
    out->smtputf8 = local8;
    return NULL;
}

const char *addr_normalize(const char *s, size_t n, char out[ADDR_MAX + 1])
{
    addr_t a;
    const char *why = addr_parse(s, n, &a);
    if (!why)
        memcpy(out, a.email, strlen(a.email) + 1);
    return why;
}

int addr_name_valid(const char *name, size_t n)
{
    return mime_text_valid(name, n, MIME_NAME_MAX);
}

static int wsp(char c) { return c == ' ' || c == '\t'; }

/* The display name: words (atoms or quoted-strings) joined by one space where the input
 * had whitespace between them. Atoms may hold '.' (obs-phrase, "J. Doe") and UTF-8. */
static const char *parse_phrase(const char *s, size_t n, char *nm, size_t *nlen)
{
    size_t k = 0, i = 0;
    int gap = 0;
    while (i < n) {
        if (wsp(s[i])) {
            gap = 1;
            i++;
            continue;
        }
        if (gap && k > 0) {
            if (k >= MIME_NAME_MAX)
                return "display name longer than 256 octets";
            nm[k++] = ' ';
        }
        gap = 0;
        if (s[i] == '"') {
            for (i++;; i++) {
                if (i >= n)
                    return "unterminated quoted display name";
                char c = s[i];
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (++i >= n)
                        return "unterminated quoted display name";
                    c = s[i];
                }
                if (k >= MIME_NAME_MAX)
                    return "display name longer than 256 octets";
                nm[k++] = c;
            }
            i++;
            continue;
        }
        for (; i < n && !wsp(s[i]) && s[i] != '"'; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x80 && !atext(c) && c != '.')
                return c < 0x20 || c == 0x7f ? "control character in display name"
                                             : "display name with special characters must be quoted";
            if (k >= MIME_NAME_MAX)
                return "display name longer than 256 octets";
            nm[k++] = (char)c;
        }
    }
    *nlen = k;
    return NULL;
}

const char *addr_parse_mailbox(const char *s, size_t n, addr_t *out, char *name,
                               size_t name_max)
{
    if (name && name_max)
        name[0] = '\0';
    if (n > MAILBOX_MAX)
        return "address too long";
    if (memchr(s, '\0', n))
        return "NUL in address";
    if (memchr(s, '\r', n) || memchr(s, '\n', n))
        return "CR or LF in address";
    while (n > 0 && wsp(s[0]))
        s++, n--;
    while (n > 0 && wsp(s[n - 1]))
        n--;
    if (n == 0)
        return "empty address";
    if (s[n - 1] != '>')
        return addr_parse(s, n, out);

    size_t lt = n;
    int inq = 0;
    for (size_t i = 0; i < n && lt == n; i++) {
        if (inq) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '"')
                inq = 0;
        } else if (s[i] == '"') {
            inq = 1;
        } else if (s[i] == '<') {
            lt = i;
        }
    }
    if (lt == n)
        return "'>' without '<'";
    const char *a = s + lt + 1;
    size_t an = n - lt - 2;
    while (an > 0 && wsp(a[0]))
        a++, an--;
    while (an > 0 && wsp(a[an - 1]))
        an--;
    const char *why = addr_parse(a, an, out);
    if (why)
        return why;

    char nm[MIME_NAME_MAX];
    size_t k = 0;
    why = parse_phrase(s, lt, nm, &k);
    if (why)
        return why;
    if (!addr_name_valid(nm, k))
        return "display name is not valid UTF-8 or has control characters";
    if (name) {
        if (k >= name_max)
            return "display name too long";
        memcpy(name, nm, k);
        name[k] = '\0';
    }
    return NULL;
}

void addr_lower_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}
