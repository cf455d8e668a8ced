/* Fuzz target: lib/addr.c addr_parse / addr_normalize and addr_parse_mailbox. Whatever is
 * accepted must be one line without control characters, keep its local part, have an ASCII
 * lower-case LDH domain of at most 255 octets, carry the SMTPUTF8 flag exactly when the
 * local part has 8-bit bytes, and normalise to itself again. */
#include "tests/fuzz/fuzz.h"

#include "lib/addr.h"
#include "lib/mime.h"

#include <string.h>

static int has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

/* The invariants of one accepted address (in: what was parsed, may be a mailbox's inner part). */
static void check_email(const addr_t *a)
{
    const char *e = a->email;
    size_t n = strlen(e);
    CHECK(n >= 5 && n <= ADDR_MAX);            /* "a@b.c" is the shortest there is */
    const char *at = strrchr(e, '@');
    CHECK(at != NULL && at > e);
    size_t ll = (size_t)(at - e);
    CHECK(ll <= 64 && n - ll - 1 <= 255);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)e[i];
        CHECK(c >= 0x20 && c != 0x7f);          /* no CR, LF, NUL or other C0 control */
        if (i > ll)
            CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
    }
    CHECK(a->smtputf8 == has_8bit(e, ll));
    if (e[0] != '"')
        for (size_t i = 0; i < ll; i++)
            CHECK(e[i] != ' ' && e[i] != '"' && e[i] != '<' && e[i] != '>' && e[i] != ',');
    addr_t again;
    CHECK(addr_parse(e, n, &again) == NULL);
    CHECK(strcmp(again.email, e) == 0);
    CHECK(again.smtputf8 == a->smtputf8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    addr_t a;
    const char *why = addr_parse(s, size, &a);
    char out[ADDR_MAX + 1];
    const char *why2 = addr_normalize(s, size, out);
    CHECK((why == NULL) == (why2 == NULL));
    if (why) {
        CHECK(*why != '\0');
    } else {
        check_email(&a);
        CHECK(strcmp(out, a.email) == 0);
        const char *at = memrchr(s, '@', size);
        CHECK(at != NULL);
        size_t ll = (size_t)(at - s);
        CHECK(memcmp(a.email, s, ll + 1) == 0);   /* the local part is kept as it is */
        if (!has_8bit(s, size)) {
            CHECK(strlen(a.email) == size);         /* ASCII: only the case changes */
            for (size_t i = ll + 1; i < size; i++) {
                char c = s[i];
                CHECK(a.email[i] == ((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c));
            }
        }
    }

    char name[MIME_NAME_MAX + 1];
    addr_t m;
    why = addr_parse_mailbox(s, size, &m, name, sizeof name);
    if (why) {
        CHECK(*why != '\0');
        CHECK(name[0] == '\0');
        return 0;
    }
    check_email(&m);
    size_t nl = strlen(name);
    CHECK(addr_name_valid(name, nl));
    CHECK(!memchr(name, '\r', nl) && !memchr(name, '\n', nl));
    if (!memchr(s, '"', size))                 /* unquoted words are joined by one space */
        CHECK(nl == 0 || (name[0] != ' ' && name[nl - 1] != ' ' && !strstr(name, "  ")));
    return 0;
}
