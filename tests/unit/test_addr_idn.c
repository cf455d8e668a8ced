/* Unit tests of the internationalised side of lib/addr.c: IDNA2008 A-labels (expected
 * values from Python's independent `idna` package, UTS #46 non-transitional), the SMTPUTF8
 * flag for UTF-8 local parts, mailbox parsing ("Ann <ann@example.com>") and display-name
 * checks, including CR/LF smuggled inside RFC 2047 encoded-words. */
#include "tests/unit/unit.h"

#include "lib/addr.h"

typedef struct {
    const char *in;
    const char *email;   /* normalised when valid, NULL when refused */
    int         smtputf8;
    const char *why;     /* the reason when refused */
} parse_case;

static void run_parse(const parse_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const parse_case *c = &cases[i];
        addr_t a;
        memset(&a, '#', sizeof a);
        const char *why = addr_parse(c->in, strlen(c->in), &a);
        if (c->email) {
            if (why)
                fail_msg("\"%s\" refused: %s", c->in, why);
            assert_string_equal(a.email, c->email);
            if (a.smtputf8 != c->smtputf8)
                fail_msg("\"%s\": smtputf8 %d, want %d", c->in, a.smtputf8, c->smtputf8);
            /* addr_normalize agrees with addr_parse */
            char out[ADDR_MAX + 1];
            assert_null(addr_normalize(c->in, strlen(c->in), out));
            assert_string_equal(out, c->email);
        } else {
            if (!why)
                fail_msg("\"%s\" accepted as \"%s\", want refusal: %s", c->in, a.email, c->why);
            if (strcmp(why, c->why) != 0)
                fail_msg("\"%s\": reason \"%s\", want \"%s\"", c->in, why, c->why);
        }
    }
}

static void test_idn_domains(void **state)
{
    static const parse_case cases[] = {
        {"ann@b\xc3\xbc" "cher.example", "ann@xn--bcher-kva.example", 0, NULL},
        {"ann@B\xc3\x9c" "CHER.Example", "ann@xn--bcher-kva.example", 0, NULL},    /* BÜCHER */
        {"Ann@b\xc3\xbc" "cher.EXAMPLE", "Ann@xn--bcher-kva.example", 0, NULL},    /* local kept */
        {"a@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", "a@xn--fsqu00a.xn--4rr70v", 0, NULL},
        {"a@fa\xc3\x9f.de", "a@xn--fa-hia.de", 0, NULL},          /* non-transitional: ß kept */
        {"a@\xce\xb5\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac.example",
         "a@xn--hxargifdar.example", 0, NULL},
        {"a@b\xc3\xbc" "cher\xe3\x80\x82" "example", "a@xn--bcher-kva.example", 0, NULL}, /* U+3002 */
        {"a@xn--bcher-kva.example", "a@xn--bcher-kva.example", 0, NULL},          /* ASCII */
        {"a@b\xc3\xbc" "cher", NULL, 0, "domain needs at least two labels"},
        {"a@b\xc3\xbc" "cher..example", NULL, 0, "empty domain label"},
        {"a@b\xc3\xbc cher.example", NULL, 0, "invalid internationalised domain name"},
        {"a@b\xc3\xbc" "cher.example\x01", NULL, 0,
         "domain is not valid UTF-8 or has control characters"},
        {"a@b\xc3\xbc" "cher\xc2\x85.example", NULL, 0,                        /* C1 NEL */
         "domain is not valid UTF-8 or has control characters"},
        {"a@b\xc3" "cher.example", NULL, 0, "domain is not valid UTF-8 or has control characters"},
        {"a@[b\xc3\xbc" "cher]", NULL, 0, "address literals are not accepted"},
        {"a@b\xe2\x80\xa8.example", NULL, 0, "invalid internationalised domain name"}, /* U+2028 */
    };
    run_parse(cases, N_ELEMS(cases));
}

static void test_idn_lengths(void **state)
{
    /* A U-label whose A-label passes 63 octets; a domain that passes 255 once converted. */
    char in[1200], want[400];
    size_t k = 0;
    memcpy(in, "a@", 2), k = 2;
    for (int i = 0; i < 60; i++)
        in[k++] = (char)0xc3, in[k++] = (char)0xbc;
    memcpy(in + k, ".example", 9);
    addr_t a;
    assert_string_equal(addr_parse(in, strlen(in), &a), "invalid internationalised domain name");

    /* 4 labels of "ü" x 10 (A-label "xn--tdaaaaaaaaa" style, 15+ octets each) is fine... */
    k = 2;
    for (int l = 0; l < 4; l++) {
        for (int i = 0; i < 10; i++)
            in[k++] = (char)0xc3, in[k++] = (char)0xbc;
        in[k++] = '.';
    }
    memcpy(in + k, "example", 8);
    assert_null(addr_parse(in, strlen(in), &a));
    assert_int_equal(strncmp(a.email, "a@xn--", 6), 0);

    /* ...and 20 labels of 12 "ü" each make more than 255 octets of A-labels. */
    k = 2;
    for (int l = 0; l < 20; l++) {
        for (int i = 0; i < 12; i++)
            in[k++] = (char)0xc3, in[k++] = (char)0xbc;
        in[k++] = '.';
    }
    memcpy(in + k, "example", 8);
    const char *why = addr_parse(in, strlen(in), &a);
    assert_non_null(why);
    if (strcmp(why, "domain longer than 255 octets") != 0 &&
        strcmp(why, "invalid internationalised domain name") != 0)
        fail_msg("reason %s", why);

    /* The input bound on non-ASCII addresses. */
    memset(in, 'a', sizeof in);
    in[0] = (char)0xc3, in[1] = (char)0xbc, in[2] = '@';
    assert_string_equal(addr_parse(in, 1025, &a), "address too long");
    (void)want;
}

static void test_smtputf8_local_parts(void **state)
{
    static const parse_case cases[] = {
        {"j\xc3\xb6rg@example.com", "j\xc3\xb6rg@example.com", 1, NULL},
        {"j\xc3\xb6rg@EXAMPLE.com", "j\xc3\xb6rg@example.com", 1, NULL},
        {"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
         "\xe7\x94\xa8\xe6\x88\xb7@xn--fsqu00a.xn--4rr70v", 1, NULL},
        {"\"j\xc3\xb6rg doe\"@example.com", "\"j\xc3\xb6rg doe\"@example.com", 1, NULL},
        {"j\xc3\xb6rg.m\xc3\xbcller@b\xc3\xbc" "cher.example",
         "j\xc3\xb6rg.m\xc3\xbcller@xn--bcher-kva.example", 1, NULL},
        {"ann@example.com", "ann@example.com", 0, NULL},
        {"\xf0\x9f\x90\x8d@example.com", "\xf0\x9f\x90\x8d@example.com", 1, NULL},   /* 🐍 */
        /* 32 x "ü" = 64 octets: the limit; 33 is over */
        {"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc@x.example",
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc@x.example", 1, NULL},
        {"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
         "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc@x.example",
         NULL, 0, "local part longer than 64 octets"},
        {"j\xc3\xb6\x01rg@example.com", NULL, 0, "local part is not valid UTF-8 or has control characters"},
        {"j\xc2\x80@example.com", NULL, 0, "local part is not valid UTF-8 or has control characters"},
        {"\xc0\xaf@example.com", NULL, 0, "local part is not valid UTF-8 or has control characters"},
        {"\xed\xa0\x80@example.com", NULL, 0, "local part is not valid UTF-8 or has control characters"},
        {"\xf4\x90\x80\x80@example.com", NULL, 0, "local part is not valid UTF-8 or has control characters"},
        {"j\xc3\xb6rg\r\n@example.com", NULL, 0, "local part is not valid UTF-8 or has control characters"},
        {"j\xc3\xb6 rg@example.com", NULL, 0, "invalid character in local part"},
        {"j\xc3\xb6..rg@example.com", NULL, 0, "consecutive dots in local part"},
        {".j\xc3\xb6rg@example.com", NULL, 0, "local part starts or ends with a dot"},
    };
    run_parse(cases, N_ELEMS(cases));
}

typedef struct {
    const char *in;
    const char *email;   /* NULL: refused */
    const char *name;
    const char *why;
} mailbox_case;

static void test_mailboxes(void **state)
{
    static const mailbox_case cases[] = {
        {"ann@example.com", "ann@example.com", "", NULL},
        {"Ann <ann@example.com>", "ann@example.com", "Ann", NULL},
        {"\"Doe, Ann\" <ann@example.com>", "ann@example.com", "Doe, Ann", NULL},
        {"  Ann   Lee\t<ann@Example.COM>  ", "ann@example.com", "Ann Lee", NULL},
        {"<ann@example.com>", "ann@example.com", "", NULL},
        {"\"\" <ann@example.com>", "ann@example.com", "", NULL},
        {"Ann< ann@example.com >", "ann@example.com", "Ann", NULL},
        {"\"a\\\"b\\\\c\" <x@y.example>", "x@y.example", "a\"b\\c", NULL},
        {"\"  spaced  \" <x@y.example>", "x@y.example", "  spaced  ", NULL},
        {"J. Doe <j@x.example>", "j@x.example", "J. Doe", NULL},
        {"Ann \"the boss\" Lee <a@x.example>", "a@x.example", "Ann the boss Lee", NULL},
        {"Ann <\"a<b\"@x.example>", "\"a<b\"@x.example", "Ann", NULL},
        {"J\xc3\xb6rg M\xc3\xbcller <j\xc3\xb6rg@b\xc3\xbc" "cher.example>",
         "j\xc3\xb6rg@xn--bcher-kva.example", "J\xc3\xb6rg M\xc3\xbcller", NULL},
        {"\"M\xc3\xbcller, J\xc3\xb6rg\" <j@x.example>", "j@x.example", "M\xc3\xbcller, J\xc3\xb6rg", NULL},
        /* an encoded-word in a name is kept as typed (it is only checked) */
        {"=?utf-8?q?Ann?= <a@x.example>", "a@x.example", "=?utf-8?q?Ann?=", NULL},
        /* refusals */
        {"=?utf-8?q?a=0D=0Ab?= <a@x.example>", NULL, NULL,
         "display name is not valid UTF-8 or has control characters"},
        {"\"=?utf-8?b?YQ0KYg==?=\" <a@x.example>", NULL, NULL,
         "display name is not valid UTF-8 or has control characters"},
        {"=?UTF-8?Q?a=00b?= <a@x.example>", NULL, NULL,
         "display name is not valid UTF-8 or has control characters"},
        {"\"a\\\tb\" <a@x.example>", NULL, NULL,
         "display name is not valid UTF-8 or has control characters"},
        {"Ann\r\n <a@x.example>", NULL, NULL, "CR or LF in address"},
        {"Ann <a@x.example>\nBcc: b@x.example", NULL, NULL, "CR or LF in address"},
        {"Ann <a@x.example>\r", NULL, NULL, "CR or LF in address"},
        {"Doe, Ann <a@x.example>", NULL, NULL, "display name with special characters must be quoted"},
        {"Ann (x) <a@x.example>", NULL, NULL, "display name with special characters must be quoted"},
        {"Ann\x01 <a@x.example>", NULL, NULL, "control character in display name"},
        {"\"Ann <a@x.example>", NULL, NULL, "'>' without '<'"},
        {"Ann a@x.example>", NULL, NULL, "'>' without '<'"},
        {"\"Ann\" <a@x.example", NULL, NULL, "unterminated quoted local part"},
        {"Ann <a@x.example> x", NULL, NULL, "invalid character in local part"},
        {"Ann <>", NULL, NULL, "empty address"},
        {"Ann <a@x>", NULL, NULL, "domain needs at least two labels"},
        {"Ann <a@[127.0.0.1]>", NULL, NULL, "address literals are not accepted"},
        {"   ", NULL, NULL, "empty address"},
        {"\"Ann <a@x.example>\" <b@x.example", NULL, NULL, "unterminated quoted local part"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const mailbox_case *c = &cases[i];
        addr_t a;
        char name[300];
        memset(name, '#', sizeof name);
        const char *why = addr_parse_mailbox(c->in, strlen(c->in), &a, name, sizeof name);
        if (c->email) {
            if (why)
                fail_msg("\"%s\" refused: %s", c->in, why);
            assert_string_equal(a.email, c->email);
            assert_string_equal(name, c->name);
        } else {
            if (!why)
                fail_msg("\"%s\" accepted, want refusal: %s", c->in, c->why);
            if (strcmp(why, c->why) != 0)
                fail_msg("\"%s\": reason \"%s\", want \"%s\"", c->in, why, c->why);
        }
    }
}

static void test_mailbox_bounds(void **state)
{
    addr_t a;
    char name[8], big[600];
    /* the name must fit the caller's buffer */
    const char *why = addr_parse_mailbox("Annabell <a@x.example>", 22, &a, NULL, 0);
    assert_null(why);
    why = addr_parse_mailbox("Annabell <a@x.example>", 22, &a, name, sizeof name);
    assert_non_null(why);
    assert_string_equal(why, "display name too long");
    assert_null(addr_parse_mailbox("Annabel <a@x.example>", 21, &a, name, sizeof name));
    assert_string_equal(name, "Annabel");
    /* 256 octets of name, then 257 */
    memset(big, 'n', 256);
    memcpy(big + 256, " <a@x.example>", 15);
    char nm[300];
    assert_null(addr_parse_mailbox(big, strlen(big), &a, nm, sizeof nm));
    assert_int_equal(strlen(nm), 256);
    memset(big, 'n', 257);
    memcpy(big + 257, " <a@x.example>", 15);
    assert_string_equal(addr_parse_mailbox(big, strlen(big), &a, nm, sizeof nm),
                        "display name longer than 256 octets");
    /* NUL anywhere; only n bytes count */
    assert_string_equal(addr_parse_mailbox("Ann\0 <a@x.example>", 18, &a, nm, sizeof nm),
                        "NUL in address");
    assert_null(addr_parse_mailbox("Ann <a@x.example>junk", 17, &a, nm, sizeof nm));
    assert_string_equal(nm, "Ann");
}

typedef struct {
    const char *s;
    size_t      n;   /* 0: strlen */
    int         ok;
} name_case;

static void test_name_valid(void **state)
{
    static const name_case cases[] = {
        {"Ann", 0, 1},
        {"", 0, 1},
        {"J\xc3\xb6rg M\xc3\xbcller", 0, 1},
        {"\xe5\xb1\xb1\xe7\x94\xb0\xe5\xa4\xaa\xe9\x83\x8e", 0, 1},
        {"Doe, Ann <x>", 0, 1},
        {"=?utf-8?q?a_b?=", 0, 1},
        {"=?iso-8859-1?q?caf=E9?=", 0, 1},
        {"=?utf-8?b?w6k=?=", 0, 1},
        {"=? not an encoded word ?=", 0, 1},
        {"a\rb", 0, 0},
        {"a\nb", 0, 0},
        {"a\tb", 0, 0},
        {"a\x7f", 0, 0},
        {"a\xc2\x9f", 0, 0},              /* C1 */
        {"a\0b", 3, 0},
        {"\xc3", 0, 0},
        {"\xe2\x82", 0, 0},
        {"=?utf-8?q?a=0D=0Ab?=", 0, 0},
        {"=?UTF-8?Q?a=0ab?=", 0, 0},
        {"=?utf-8?b?YQ0KYg==?=", 0, 0},
        {"=?utf-8?B?YQpi?=", 0, 0},        /* "a\nb" */
        {"x =?utf-8?Q?=00?= y", 0, 0},
        {"=?utf-8?q?=7F?=", 0, 0},
        {"=?utf-16?b?AAoA?=", 0, 0},       /* any charset: the bytes are checked */
        {"ok =?x?q?=0D?=", 0, 0},
        {"=?utf-8*en?q?=0A?=", 0, 0},      /* RFC 2231 language suffix */
        {"=?utf-8?q?=0D=?utf-8?q?ok?=", 0, 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const name_case *c = &cases[i];
        size_t n = c->n ? c->n : strlen(c->s);
        if (addr_name_valid(c->s, n) != c->ok)
            fail_msg("case %zu \"%s\": want %d", i, c->s, c->ok);
    }
    char big[300];
    memset(big, 'a', sizeof big);
    assert_int_equal(addr_name_valid(big, 256), 1);
    assert_int_equal(addr_name_valid(big, 257), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idn_domains),
        cmocka_unit_test(test_idn_lengths),
        cmocka_unit_test(test_smtputf8_local_parts),
        cmocka_unit_test(test_mailboxes),
        cmocka_unit_test(test_mailbox_bounds),
        cmocka_unit_test(test_name_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
