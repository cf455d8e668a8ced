/* Unit tests of smtp/policy.c: the destination policy file, inheritance from "*" and the
 * built-ins, matching order, bounds and errors, the shipped file and the path override. */
#include "tests/unit/unit.h"

#include "smtp/policy.h"

#include <fcntl.h>
#include <unistd.h>

static policy_set *parse(const char *s, char *err, size_t errlen)
{
    return policy_parse(s, strlen(s), "d.conf", err, errlen);
}

static policy_set *parse_ok(const char *s)
{
    char err[256];
    policy_set *p = parse(s, err, sizeof err);
    if (!p)
        fail_msg("refused: %s", err);
    return p;
}

static void assert_builtin(const dest_policy *d)
{
    assert_int_equal(d->max_connections, 20);
    assert_int_equal(d->messages_per_connection, 100);
    assert_int_equal(d->rcpts_per_message, 50);
    assert_int_equal(d->rate_per_minute, 0);
    assert_int_equal(d->tls, TLS_POLICY_MAY);
    assert_int_equal(d->dead_after_ms, 600000);
    assert_int_equal(d->dead_for_ms, 300000);
}

static void test_empty_and_null(void **state)
{
    policy_set *p = parse_ok("");
    assert_int_equal(policy_count(p), 1);
    const dest_policy *d = policy_match(p, "mx.example.com", "example.com");
    assert_non_null(d);
    assert_string_equal(d->pattern, "*");
    assert_builtin(d);
    policy_free(p);
    /* no set at all (the caller failed to load one): the built-ins */
    assert_builtin(policy_match(NULL, "x", "y"));
    p = parse_ok("# only comments\n\n   # indented\n");
    assert_builtin(policy_match(p, NULL, NULL));
    policy_free(p);
    policy_free(NULL);
}

static void test_parse_all_keys(void **state)
{
    policy_set *p = parse_ok(
        "example.com connections=3 messages_per_connection=7 rcpts_per_message=9 rate=120 "
        "tls=verify dead_after=30s dead_for=1h   # a comment\n"
        "\tEXAMPLE.net.\ttls=none\r\n");
    const dest_policy *d = policy_match(p, "example.com", NULL);
    assert_string_equal(d->pattern, "example.com");
    assert_int_equal(d->max_connections, 3);
    assert_int_equal(d->messages_per_connection, 7);
    assert_int_equal(d->rcpts_per_message, 9);
    assert_int_equal(d->rate_per_minute, 120);
    assert_int_equal(d->tls, TLS_POLICY_VERIFY);
    assert_int_equal(d->dead_after_ms, 30000);
    assert_int_equal(d->dead_for_ms, 3600000);
    /* the pattern is lower-cased, its trailing dot dropped; CRLF line ends are fine */
    d = policy_match(p, "Example.NET.", NULL);
    assert_string_equal(d->pattern, "example.net");
    assert_int_equal(d->tls, TLS_POLICY_NONE);
    assert_int_equal(d->max_connections, 20);
    assert_int_equal(policy_count(p), 3);
    policy_free(p);
}

/* Keys left out come from "*" wherever it stands, then from the built-ins. */
static void test_inheritance(void **state)
{
    policy_set *p = parse_ok(
        "a.example connections=2\n"
        "b.example tls=require rate=10\n"
        "* connections=40 tls=none dead_for=1m\n"
        "c.example connections=5 dead_after=1s\n");
    const dest_policy *d = policy_match(p, "a.example", NULL);
    assert_int_equal(d->max_connections, 2);
    assert_int_equal(d->tls, TLS_POLICY_NONE);        /* from "*", below it in the file */
    assert_int_equal(d->dead_for_ms, 60000);
    assert_int_equal(d->messages_per_connection, 100); /* built-in: "*" has none */
    assert_int_equal(d->dead_after_ms, 600000);
    d = policy_match(p, "b.example", NULL);
    assert_int_equal(d->max_connections, 40);
    assert_int_equal(d->tls, TLS_POLICY_REQUIRE);
    assert_int_equal(d->rate_per_minute, 10);
    d = policy_match(p, "c.example", NULL);
    assert_int_equal(d->max_connections, 5);
    assert_int_equal(d->dead_after_ms, 1000);
    assert_int_equal(d->dead_for_ms, 60000);
    d = policy_match(p, "other.example", "other.example");
    assert_string_equal(d->pattern, "*");
    assert_int_equal(d->max_connections, 40);
    assert_int_equal(d->tls, TLS_POLICY_NONE);
    assert_int_equal(d->rcpts_per_message, 50);
    policy_free(p);
}

static void test_matching(void **state)
{
    policy_set *p = parse_ok(
        "*                  connections=1\n"      /* the default, even though it is first */
        "mx1.big.example    connections=2\n"
        "*.big.example      connections=3\n"
        "mx2.big.example    connections=4\n"      /* shadowed by the line above */
        "big.example        connections=5\n"
        "customer.example   connections=6\n");
    static const struct { const char *dest, *domain; int want; } cases[] = {
        {"mx1.big.example", "x.example", 2},
        {"mx2.big.example", "x.example", 3},      /* first matching line wins */
        {"a.b.big.example", NULL, 3},             /* any depth */
        {"big.example", NULL, 5},                 /* "*.big.example" wants a subdomain */
        {"xbig.example", NULL, 1},                /* no match on a partial label */
        {"MX1.Big.Example.", NULL, 2},            /* case and trailing dot */
        {"mx.customer.example", "customer.example", 6},   /* the recipient domain matches */
        {"mx.other.example", "other.example", 1},
        {"customer.example", "customer.example", 6},      /* implicit MX */
        {"mx1.big.example", "customer.example", 2},       /* file order, not which name */
        {"mx.other.example", "big.example", 5},
        {NULL, "customer.example", 6},
        {"", "", 1},
        {".", NULL, 1},
        {NULL, NULL, 1},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const dest_policy *d = policy_match(p, cases[i].dest, cases[i].domain);
        if (d->max_connections != cases[i].want)
            fail_msg("case %zu (%s, %s): %d (%s), want %d", i,
                     cases[i].dest ? cases[i].dest : "NULL",
                     cases[i].domain ? cases[i].domain : "NULL", d->max_connections,
                     d->pattern, cases[i].want);
    }
    /* names longer than any domain name never match a line other than "*" */
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(policy_match(p, longname, longname)->max_connections, 1);
    policy_free(p);
}

static void test_bounds(void **state)
{
    static const char *const good[] = {
        "* connections=1", "* connections=1000", "* messages_per_connection=10000",
        "* rcpts_per_message=1000", "* rate=0", "* rate=1000000", "* dead_after=1s",
        "* dead_for=7d", "* dead_after=168h", "* dead_for=1000ms", "x connections=0020",
    };
    for (size_t i = 0; i < N_ELEMS(good); i++)
        policy_free(parse_ok(good[i]));
    static const struct { const char *text, *want; } bad[] = {
        {"* connections=0", "d.conf:1: connections=0: want an integer from 1 to 1000"},
        {"* connections=1001", "d.conf:1: connections=1001: want an integer from 1 to 1000"},
        {"* connections=-1", "d.conf:1: connections=-1"},
        {"* connections=+5", "d.conf:1: connections=+5"},
        {"* connections= 5", "d.conf:1: connections=: want"},
        {"* connections=5x", "d.conf:1: connections=5x"},
        {"* connections=99999999999999999999999", "d.conf:1: connections=9999"},
        {"* messages_per_connection=0", "d.conf:1: messages_per_connection=0"},
        {"* messages_per_connection=10001", "d.conf:1: messages_per_connection=10001"},
        {"* rcpts_per_message=0", "d.conf:1: rcpts_per_message=0"},
        {"* rcpts_per_message=1001", "d.conf:1: rcpts_per_message=1001"},
        {"* rate=1000001", "d.conf:1: rate=1000001"},
        {"* rate=", "d.conf:1: rate=: want"},
        {"* tls=yes", "d.conf:1: tls=yes: want none, may, require or verify"},
        {"* tls=MAY", "d.conf:1: tls=MAY"},
        {"* dead_after=0", "d.conf:1: dead_after=0: want a duration"},
        {"* dead_after=999ms", "d.conf:1: dead_after=999ms"},
        {"* dead_for=8d", "d.conf:1: dead_for=8d"},
        {"* dead_for=5 m", "d.conf:1: expected key=value, got \"m\""},
        {"* dead_for=-5m", "d.conf:1: dead_for=-5m"},
        {"* dead_for=soon", "d.conf:1: dead_for=soon"},
        {"\n\n* colour=red", "d.conf:3: unknown key \"colour\""},
        {"* connections", "d.conf:1: expected key=value, got \"connections\""},
        {"* connections=1 connections=2", "d.conf:1: connections given twice"},
        {"*\n*", "d.conf:2: second \"*\" line"},
        {"a.example\nA.Example.", "d.conf:2: pattern \"a.example\" given twice"},
        {"**", "d.conf:1: bad pattern \"**\""},
        {"*example.com", "d.conf:1: bad pattern"},
        {"a.*.com", "d.conf:1: bad pattern"},
        {"*.", "d.conf:1: bad pattern"},
        {"a..b", "d.conf:1: bad pattern"},
        {".a", "d.conf:1: bad pattern"},
        {"a/b", "d.conf:1: bad pattern"},
        {"connections=5", "d.conf:1: bad pattern"},
        {"x tls=may\x01", "d.conf:1: control character in line"},
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        char err[256] = "";
        policy_set *p = parse(bad[i].text, err, sizeof err);
        if (p)
            fail_msg("case %zu accepted: %s", i, bad[i].text);
        if (strncmp(err, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("case %zu: error \"%s\", want \"%s...\"", i, err, bad[i].want);
    }
    /* a 64-byte label, a 254-byte name, a NUL byte, a long line */
    char big[8192], err[256];
    memset(big, 'a', 64);
    big[64] = '\0';
    assert_null(parse(big, err, sizeof err));
    big[63] = '\0';
    policy_free(parse_ok(big));
    size_t n = 0;
    while (n < 254) {
        memcpy(big + n, "abcdefg.", 8);
        n += 8;
    }
    big[254] = 'x';
    big[255] = '\0';
    assert_null(parse(big, err, sizeof err));
    static const char nul[] = "* rate=1\0\n";
    assert_null(policy_parse(nul, sizeof nul - 1, "d.conf", err, sizeof err));
    assert_string_equal(err, "d.conf:1: control character in line");
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_null(parse(big, err, sizeof err));
    assert_string_equal(err, "d.conf:1: line longer than 4096 bytes");
    assert_null(parse("bogus=1", NULL, 0));
}

static void test_shipped(void **state)
{
    char err[256];
    policy_set *p = policy_load(NULL, err, sizeof err);
    if (!p)
        fail_msg("shipped policy: %s", err);
    assert_true(policy_count(p) >= 2);
    assert_builtin(policy_match(p, "mx.example.com", "example.com"));
    const dest_policy *g = policy_match(p, "gmail-smtp-in.l.google.com", "gmail.com");
    assert_string_equal(g->pattern, "*.google.com");
    assert_int_equal(g->tls, TLS_POLICY_REQUIRE);
    assert_int_equal(g->dead_for_ms, 300000);
    const dest_policy *o = policy_match(p, "hotmail-com.olc.protection.outlook.com", "hotmail.com");
    assert_string_equal(o->pattern, "*.olc.protection.outlook.com");
    o = policy_match(p, "contoso-com.mail.protection.outlook.com", "contoso.com");
    assert_string_equal(o->pattern, "*.protection.outlook.com");
    const dest_policy *y = policy_match(p, "mta5.am0.yahoodns.net", "yahoo.com");
    assert_true(y->max_connections < 20);
    policy_free(p);
    p = policy_load("", err, sizeof err);
    assert_non_null(p);
    policy_free(p);
}

static void test_path_override(void **state)
{
    char path[] = "/tmp/posthorn-policy-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char body[] = "* connections=7\nslow.example rate=6\n";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    char err[256];
    policy_set *p = policy_load(path, err, sizeof err);
    if (!p)
        fail_msg("%s", err);
    const dest_policy *d = policy_match(p, "mx.slow.example", "slow.example");
    assert_int_equal(d->rate_per_minute, 6);
    assert_int_equal(d->max_connections, 7);
    policy_free(p);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    static const char bad[] = "* connections=7\nslow.example rate=fast\n";
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    close(fd);
    assert_null(policy_load(path, err, sizeof err));
    char want[128];
    snprintf(want, sizeof want, "%s:2: rate=fast", path);
    assert_true(strncmp(err, want, strlen(want)) == 0);
    unlink(path);
    assert_null(policy_load(path, err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
}

static void test_tls_names(void **state)
{
    assert_string_equal(tls_policy_name(TLS_POLICY_NONE), "none");
    assert_string_equal(tls_policy_name(TLS_POLICY_MAY), "may");
    assert_string_equal(tls_policy_name(TLS_POLICY_REQUIRE), "require");
    assert_string_equal(tls_policy_name(TLS_POLICY_VERIFY), "verify");
    assert_string_equal(tls_policy_name((tls_policy)9), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_parse_all_keys),
        cmocka_unit_test(test_inheritance),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_path_override),
        cmocka_unit_test(test_tls_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
