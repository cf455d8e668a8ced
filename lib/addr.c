#include "lib/addr.h"

#include <string.h>

static int atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

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
                if (c < 0x20 || c > 0x7e)
                    return "invalid character in local part";
                continue;
            }
            if (c < 0x20 || c > 0x7e || c == '"')
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
        if (c >= 0x80)
            return "non-ASCII local part (SMTPUTF8) not supported yet";
        if (!atext(c))
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
        if (c >= 0x80)
            return "non-ASCII domain not supported yet";
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return "invalid character in domain";
        if (++label > 63)
            return "domain label longer than 63 octets";
    }
    if (labels < 2)
        return "domain needs at least two labels";
    return NULL;
}

const char *addr_normalize(const char *s, size_t n, char out[ADDR_MAX + 1])
{
    if (n == 0)
        return "empty address";
    if (n > ADDR_MAX)
        return "address too long";
    if (memchr(s, '\0', n))
        return "NUL in address";
    const char *at = NULL;
    for (size_t i = n; i-- > 0;)
        if (s[i] == '@') {
            at = s + i;
            break;
        }
    if (!at)
        return "missing @";
    size_t ll = (size_t)(at - s), dl = n - ll - 1;
    const char *why = check_local(s, ll);
    if (!why)
        why = check_domain(at + 1, dl);
    if (why)
        return why;
    memcpy(out, s, n);
    out[n] = '\0';
    for (size_t i = ll + 1; i < n; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
    return NULL;
}
