/* Unit tests of lib/addr.c: which addresses are accepted, the reason given for each refusal,
 * the length limits at their exact boundaries, normalisation (domain lower-cased and
 * converted to A-labels, local part kept), the SMTPUTF8 flag, and mailbox parsing. */
#include "tests/unit/unit.h"

#include "lib/addr.h"
#include "lib/mime.h"

typedef struct {
    const char *in;
    size_t      n;        /* 0: strlen(in) */
    const char *out;      /* normalised form when valid, NULL when refused */
    const char *why;      /* the reason when refused */
    int         utf8;     /* the SMTPUTF8 flag expected when valid */
} addr_case;

/* Each case through addr_parse, and addr_normalize must agree with it. */
static void run_cases(const addr_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const addr_case *c = &cases[i];
        size_t n = c->n ? c->n : strlen(c->in);
        char out[ADDR_MAX + 1];
        addr_t a;
        memset(out, '#', sizeof out);
        memset(&a, '#', sizeof a);
        const char *why = addr_normalize(c->in, n, out);
        const char *why2 = addr_parse(c->in, n, &a);
        if ((why == NULL) != (why2 == NULL) || (why && strcmp(why, why2) != 0))
            fail_msg("\"%s\": addr_normalize says %s, addr_parse %s", c->in,
                     why ? why : "valid", why2 ? why2 : "valid");
        if (c->out) {
            if (why)
                fail_msg("\"%s\" refused: %s", c->in, why);
            assert_string_equal(out, c->out);
            assert_string_equal(a.email, c->out);
            if (a.smtputf8 != c->utf8)
                fail_msg("\"%s\": smtputf8 %d, want %d", c->in, a.smtputf8, c->utf8);
        } else {
            if (!why)
                fail_msg("\"%s\" accepted as \"%s\", want refusal: %s", c->in, out, c->why);
            if (strcmp(why, c->why) != 0)
                fail_msg("\"%s\": reason \"%s\", want \"%s\"", c->in, why, c->why);
        }
    }
}

static void test_valid(void **state)
{
    static const addr_case cases[] = {
        {"user@example.com", 0, "user@example.com", NULL, 0},
        {"user+tag@example.com", 0, "user+tag@example.com", NULL, 0},
        {"o'brien@example.ie", 0, "o'brien@example.ie", NULL, 0},
        {"first.last@sub.example.co.uk", 0, "first.last@sub.example.co.uk", NULL, 0},
        {"a.b.c.d@x.example", 0, "a.b.c.d@x.example", NULL, 0},
        {"\"a b\"@x.example", 0, "\"a b\"@x.example", NULL, 0},
        {"\"a@b\"@x.example", 0, "\"a@b\"@x.example", NULL, 0},              /* @ inside quotes */
        {"\"a..b.\"@x.example", 0, "\"a..b.\"@x.example", NULL, 0},          /* dots inside quotes */
        {"\"a\\\"b\"@x.example", 0, "\"a\\\"b\"@x.example", NULL, 0},        /* quoted-pair */
        {"\"a\\\\\"@x.example", 0, "\"a\\\\\"@x.example", NULL, 0},
        {"\"\"@x.example", 0, "\"\"@x.example", NULL, 0},
        {"!#$%&'*+-/=?^_`{|}~@x.example", 0, "!#$%&'*+-/=?^_`{|}~@x.example", NULL, 0},
        {"a@x--y.example", 0, "a@x--y.example", NULL, 0},
        {"a@xn--bcher-kva.example", 0, "a@xn--bcher-kva.example", NULL, 0},
        {"a@0.example", 0, "a@0.example", NULL, 0},
        {"a@x.y", 0, "a@x.y", NULL, 0},
        /* normalisation: the domain only is lower-cased */
        {"MiXeD.Case@ExAmPlE.CoM", 0, "MiXeD.Case@example.com", NULL, 0},
        {"\"A B\"@X.EXAMPLE", 0, "\"A B\"@x.example", NULL, 0},
        {"USER@EXAMPLE.COM", 0, "USER@example.com", NULL, 0},
        /* only n bytes count */
        {"user@example.com trailing", 16, "user@example.com", NULL, 0},
        /* UTF-8: a local part needs SMTPUTF8; a domain becomes A-labels (IDNA2008) */
        {"\xc3\xbc@x.example", 0, "\xc3\xbc@x.example", NULL, 1},
        {"\"J\xc3\xbcrgen M\"@x.example", 0, "\"J\xc3\xbcrgen M\"@x.example", NULL, 1},
        {"a@b\xc3\xbc" "cher.example", 0, "a@xn--bcher-kva.example", NULL, 0},
        {"a@B\xc3\x9c" "CHER.Example", 0, "a@xn--bcher-kva.example", NULL, 0},
        {"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", 0,
         "\xe7\x94\xa8\xe6\x88\xb7@xn--fsqu00a.xn--4rr70v", NULL, 1},
    };
    run_cases(cases, N_ELEMS(cases));
}

static void test_invalid(void **state)
{
    static const addr_case cases[] = {
        {"", 0, NULL, "empty address", 0},
        {"userexample.com", 0, NULL, "missing @", 0},
        {"@x.example", 0, NULL, "empty local part", 0},
        {"a@", 0, NULL, "empty domain", 0},
        {"a@b@x.example", 0, NULL, "invalid character in local part", 0},
        {"\"a\"@b@x.example", 0, NULL, "unterminated quoted local part", 0},
        {".a@x.example", 0, NULL, "local part starts or ends with a dot", 0},
        {"a.@x.example", 0, NULL, "local part starts or ends with a dot", 0},
        {".@x.example", 0, NULL, "local part starts or ends with a dot", 0},
        {"a..b@x.example", 0, NULL, "consecutive dots in local part", 0},
        {"a@.x.example", 0, NULL, "empty domain label", 0},
        {"a@x..example", 0, NULL, "empty domain label", 0},
        {"a@x.example.", 0, NULL, "empty domain label", 0},
        {"a@-x.example", 0, NULL, "domain label starts or ends with a hyphen", 0},
        {"a@x-.example", 0, NULL, "domain label starts or ends with a hyphen", 0},
        {"a@x.-example", 0, NULL, "domain label starts or ends with a hyphen", 0},
        {"a@x.example-", 0, NULL, "domain label starts or ends with a hyphen", 0},
        {"a@-.example", 0, NULL, "domain label starts or ends with a hyphen", 0},
        {"a@localhost", 0, NULL, "domain needs at least two labels", 0},
        {"a@[127.0.0.1]", 0, NULL, "address literals are not accepted", 0},
        {"a@[IPv6:::1]", 0, NULL, "address literals are not accepted", 0},
        {"a\r\n@x.example", 0, NULL, "invalid character in local part", 0},
        {"a@x.exa\r\nmple", 0, NULL, "invalid character in domain", 0},
        {"a@x.example\r\nRCPT TO:<b@y.example>", 0, NULL, "invalid character in local part", 0},
        {"\"a\r\nb\"@x.example", 0, NULL, "invalid character in local part", 0},
        {"a\0b@x.example", 13, NULL, "NUL in address", 0},
        {"a@x.example\0", 12, NULL, "NUL in address", 0},
        {"a b@x.example", 0, NULL, "invalid character in local part", 0},
        {" a@x.example", 0, NULL, "invalid character in local part", 0},
        {"a@x .example", 0, NULL, "invalid character in domain", 0},
        {"a@x.example ", 0, NULL, "invalid character in domain", 0},
        {"a@x_y.example", 0, NULL, "invalid character in domain", 0},
        {"a(comment)@x.example", 0, NULL, "invalid character in local part", 0},
        {"<a@x.example>", 0, NULL, "invalid character in local part", 0},
        {"a,b@x.example", 0, NULL, "invalid character in local part", 0},
        {"\"a b@x.example", 0, NULL, "unterminated quoted local part", 0},
        {"\"@x.example", 0, NULL, "unterminated quoted local part", 0},
        {"\"a\"b\"@x.example", 0, NULL, "invalid character in local part", 0},
        {"\"a\\\"@x.example", 0, NULL, "bad escape in quoted local part", 0},
        {"a\"b\"@x.example", 0, NULL, "invalid character in local part", 0},
        /* UTF-8 is accepted now (tests/unit/test_addr_idn.c); broken or control UTF-8 is not */
        {"\xc3@x.example", 0, NULL, "local part is not valid UTF-8 or has control characters", 0},
        {"a@b\xff" "cher.example", 0, NULL, "domain is not valid UTF-8 or has control characters", 0},
        {"\"\xc2\x85\"@x.example", 0, NULL, "local part is not valid UTF-8 or has control characters", 0},
    };
    run_cases(cases, N_ELEMS(cases));
}

/* Builds "<local>@<domain>" from a local-part length and domain label lengths. */
static size_t build(char *out, size_t local_len, const size_t *labels, size_t nlabels)
{
    size_t o = 0;
    memset(out, 'l', local_len);
    o = local_len;
    out[o++] = '@';
    for (size_t i = 0; i < nlabels; i++) {
        if (i)
            out[o++] = '.';
        memset(out + o, 'D', labels[i]);
        o += labels[i];
    }
    out[o] = '\0';
    return o;
}

static void test_lengths(void **state)
{
    static const struct {
        size_t local, labels[6], nlabels;
        const char *why;             /* NULL: valid */
    } cases[] = {
        {64, {7, 3}, 2, NULL},                              /* 64-octet local part */
        {65, {7, 3}, 2, "local part longer than 64 octets"},
        {1, {63, 3}, 2, NULL},                              /* 63-octet label */
        {1, {64, 3}, 2, "domain label longer than 63 octets"},
        {1, {3, 64}, 2, "domain label longer than 63 octets"},
        {1, {63, 63, 63, 60}, 4, NULL},                     /* 254 octets: the path limit */
        {1, {63, 63, 63, 61}, 4, "address longer than 254 octets"},
        {1, {63, 63, 63, 62, 1}, 5, "domain longer than 255 octets"},
        {64, {63, 63, 63, 63}, 4, "address longer than 254 octets"}, /* 320 octets */
        {65, {63, 63, 63, 63}, 4, "address too long"},      /* 321 */
        {64, {63, 63, 63, 62, 1}, 5, "address too long"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char in[400], out[ADDR_MAX + 1 + 8];
        size_t n = build(in, cases[i].local, cases[i].labels, cases[i].nlabels);
        memset(out, '#', sizeof out);
        const char *why = addr_normalize(in, n, out);
        if (!cases[i].why) {
            if (why)
                fail_msg("case %zu (%zu octets) refused: %s", i, n, why);
            /* the domain is lower-cased, the local part kept */
            assert_int_equal(strlen(out), n);
            assert_memory_equal(out, in, cases[i].local + 1);
            for (size_t k = cases[i].local + 1; k < n; k++)
                assert_true(out[k] == 'd' || out[k] == '.');
            assert_int_equal(out[ADDR_MAX + 1], '#');   /* nothing past the buffer */
        } else {
            if (!why)
                fail_msg("case %zu (%zu octets) accepted", i, n);
            assert_string_equal(why, cases[i].why);
        }
    }
}

/* A quoted 64-octet local part is at the limit; the quotes count. */
static void test_quoted_length(void **state)
{
    char in[100], out[ADDR_MAX + 1];
    in[0] = '"';
    memset(in + 1, ' ', 62);
    in[63] = '"';
    memcpy(in + 64, "@x.example", 11);
    assert_null(addr_normalize(in, strlen(in), out));
    assert_string_equal(out, in);
    in[0] = '"';
    memset(in + 1, ' ', 63);
    in[64] = '"';
    memcpy(in + 65, "@x.example", 11);
    assert_string_equal(addr_normalize(in, strlen(in), out), "local part longer than 64 octets");
}

/* Normalising a normalised address changes nothing. */
static void test_idempotent(void **state)
{
    static const char *const in[] = {
        "MiXeD.Case@ExAmPlE.CoM", "\"Q U\"@X.Y", "o'brien@EXAMPLE.ie", "a+b@x-Y.example",
    };
    for (size_t i = 0; i < N_ELEMS(in); i++) {
        char a[ADDR_MAX + 1], b[ADDR_MAX + 1];
        assert_null(addr_normalize(in[i], strlen(in[i]), a));
        assert_null(addr_normalize(a, strlen(a), b));
        assert_string_equal(a, b);
    }
}

static void test_mailbox(void **state)
{
    static const struct {
        const char *in;
        const char *email, *name;   /* email NULL: refused with why */
        const char *why;
    } cases[] = {
        {"ann@example.com", "ann@example.com", "", NULL},
        {"Ann <ann@Example.com>", "ann@example.com", "Ann", NULL},
        {"<ann@example.com>", "ann@example.com", "", NULL},
        {"\"Doe, Ann\" <ann@example.com>", "ann@example.com", "Doe, Ann", NULL},
        {"\"Ann \\\"The\\\" Doe\" <a@x.example>", "a@x.example", "Ann \"The\" Doe", NULL},
        {"J. Doe <j@x.example>", "j@x.example", "J. Doe", NULL},
        {"Ann   Lee\t<a@x.example>", "a@x.example", "Ann Lee", NULL},
        {"  Ann  < a@x.example >  ", "a@x.example", "Ann", NULL},
        {"Ann \"Q\" Lee <a@x.example>", "a@x.example", "Ann Q Lee", NULL},
        {"Ren\xc3\xa9 <rene@x.example>", "rene@x.example", "Ren\xc3\xa9", NULL},
        {"\"a@b\" <c@x.example>", "c@x.example", "a@b", NULL},
        {"Ann, Lee <a@x.example>", NULL, NULL, "display name with special characters must be quoted"},
        {"Ann <a@x.example>, Bob <b@x.example>", NULL, NULL, "invalid character in local part"},
        {"ann@example.com>", NULL, NULL, "'>' without '<'"},
        {"\"unterminated <a@x.example>", NULL, NULL, "'>' without '<'"},
        {"Ann <a@x.example", NULL, NULL, "invalid character in local part"},
        {"Ann <a@x.example> x", NULL, NULL, "invalid character in local part"},
        {"Ann <a@x.example>>", NULL, NULL, "invalid character in domain"},
        {"Ann <>", NULL, NULL, "empty address"},
        {"", NULL, NULL, "empty address"},
        {"   ", NULL, NULL, "empty address"},
        {"Ann\r\nBcc: x@y.example <a@x.example>", NULL, NULL, "CR or LF in address"},
        {"Ann <a@x.example>\n", NULL, NULL, "CR or LF in address"},
        {"Ann\x01 <a@x.example>", NULL, NULL, "control character in display name"},
        {"\"Ann\x01\" <a@x.example>", NULL, NULL, "display name is not valid UTF-8 or has control characters"},
        {"Ann\xff <a@x.example>", NULL, NULL, "display name is not valid UTF-8 or has control characters"},
        /* an RFC 2047 encoded-word may not smuggle a control character in either */
        {"=?utf-8?q?a=0Db?= <a@x.example>", NULL, NULL, "display name is not valid UTF-8 or has control characters"},
        {"Ann <b@localhost>", NULL, NULL, "domain needs at least two labels"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        addr_t a;
        char name[MIME_NAME_MAX + 1];
        memset(name, '#', sizeof name);
        const char *why = addr_parse_mailbox(cases[i].in, strlen(cases[i].in), &a, name, sizeof name);
        if (cases[i].email) {
            if (why)
                fail_msg("mailbox \"%s\" refused: %s", cases[i].in, why);
            assert_string_equal(a.email, cases[i].email);
            assert_string_equal(name, cases[i].name);
        } else {
            if (!why)
                fail_msg("mailbox \"%s\" accepted as %s / \"%s\"", cases[i].in, a.email, name);
            if (strcmp(why, cases[i].why) != 0)
                fail_msg("mailbox \"%s\": \"%s\", want \"%s\"", cases[i].in, why, cases[i].why);
            assert_string_equal(name, "");
        }
    }
}

/* The display name: 256 octets at most, and no longer than the caller's buffer. */
static void test_mailbox_name_bounds(void **state)
{
    char in[400], name[300];
    addr_t a;
    memset(in, 'n', 256);
    memcpy(in + 256, " <a@x.example>", 15);
    assert_null(addr_parse_mailbox(in, strlen(in), &a, name, sizeof name));
    assert_int_equal(strlen(name), 256);
    assert_string_equal(addr_parse_mailbox(in, strlen(in), &a, name, 256), "display name too long");
    assert_null(addr_parse_mailbox(in, strlen(in), &a, NULL, 0));   /* name dropped */
    assert_string_equal(a.email, "a@x.example");

    memset(in, 'n', 257);
    memcpy(in + 257, " <a@x.example>", 15);
    assert_string_equal(addr_parse_mailbox(in, strlen(in), &a, name, sizeof name),
                        "display name longer than 256 octets");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_quoted_length),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_mailbox),
        cmocka_unit_test(test_mailbox_name_bounds),
    };
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
