/* Unit tests of api/cursor.c: round trips, binding to the account, tamper detection on every
 * character, malformed and oversized input, and secret rotation. */
#include "tests/unit/unit.h"

#include "api/cursor.h"

#define SECRET_A "cursor-test-secret-A-0123456789abcdef"
#define SECRET_B "cursor-test-secret-B-0123456789abcdef"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static json_t *sample(void)
{
    json_t *v = json_pack("[s, s, i]", "2024-05-01T12:00:00.123456Z", "o'brien@example.com", 42);
    assert_non_null(v);
    return v;
}

static void assert_decodes_to(const char *account, const char *cursor, const json_t *want)
{
    json_t *got = cursor_decode(account, cursor);
    if (!got)
        fail_msg("cursor for %s did not decode: %s", account, cursor);
    assert_true(json_equal(got, (json_t *)want));
    json_decref(got);
}

static void assert_refused(const char *account, const char *cursor)
{
    json_t *got = cursor_decode(account, cursor);
    if (got) {
        char *s = json_dumps(got, JSON_COMPACT);
        json_decref(got);
        fail_msg("cursor \"%s\" for %s decoded to %s", cursor, account, s ? s : "?");
    }
}

static void test_round_trip(void **state)
{
    cursor_init(SECRET_A, NULL);
    json_t *values[] = {
        sample(),
        json_pack("[]"),
        json_pack("[s]", ""),
        json_pack("[s, s]", "line\nbreak \"quoted\" \\ back", "\xc3\xa9t\xc3\xa9"),
        json_pack("[n, b, f]", 1, 1.5),
        json_pack("[[i], {s:s}]", 1, "k", "v"),
    };
    for (size_t i = 0; i < N_ELEMS(values); i++) {
        assert_non_null(values[i]);
        char *c = cursor_encode("acc_1", values[i]);
        assert_non_null(c);
        assert_int_equal(strspn(c, b64url_alphabet), strlen(c));   /* URL-safe as is */
        assert_decodes_to("acc_1", c, values[i]);
        /* deterministic: the same values give the same cursor */
        char *again = cursor_encode("acc_1", values[i]);
        assert_string_equal(c, again);
        free(again);
        free(c);
        json_decref(values[i]);
    }
}

static void test_bound_to_account(void **state)
{
    cursor_init(SECRET_A, NULL);
    json_t *v = sample();
    char *c = cursor_encode("acc_1", v);
    assert_decodes_to("acc_1", c, v);
    assert_refused("acc_2", c);
    assert_refused("acc_", c);
    assert_refused("acc_11", c);
    assert_refused("", c);
    assert_refused("operator", c);
    /* An account id that merely starts with the right one does not verify either. */
    char *d = cursor_encode("acc_1\n", v);
    assert_refused("acc_1", d);
    free(d);
    free(c);
    json_decref(v);
}

/* Any single changed character makes the cursor fail: every byte is covered by the MAC, and
 * the trailing bits of the last character must be zero. */
static void test_every_character_tamper(void **state)
{
    cursor_init(SECRET_A, NULL);
    json_t *v = sample();
    char *c = cursor_encode("acc_1", v);
    size_t n = strlen(c);
    size_t tried = 0;
    for (size_t i = 0; i < n; i++) {
        char orig = c[i];
        for (const char *r = b64url_alphabet; *r; r++) {
            if (*r == orig)
                continue;
            c[i] = *r;
            json_t *got = cursor_decode("acc_1", c);
            if (got) {
                json_decref(got);
                fail_msg("cursor with position %zu changed '%c' -> '%c' still decodes", i, orig, *r);
            }
            tried++;
        }
        c[i] = orig;
    }
    assert_int_equal(tried, n * 63);
    assert_decodes_to("acc_1", c, v);      /* restored: still good */
    /* extended by one character, and truncated by one */
    char *longer = malloc(n + 2);
    assert_non_null(longer);
    for (const char *r = b64url_alphabet; *r; r++) {
        memcpy(longer, c, n);
        longer[n] = *r;
        longer[n + 1] = '\0';
        assert_refused("acc_1", longer);
    }
    free(longer);
    c[n - 1] = '\0';
    assert_refused("acc_1", c);
    free(c);
    json_decref(v);
}

static void test_malformed(void **state)
{
    cursor_init(SECRET_A, NULL);
    static const char *const cases[] = {
        "", "A", "AA", "AAAA", "!!!!", "abc=", "abc def", "ab+/",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* right size, wrong MAC */
        "W10",                                                 /* "[]" with no MAC at all */
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        assert_refused("acc_1", cases[i]);

    /* 1025 characters: too long before anything else is looked at */
    char big[1026];
    memset(big, 'A', 1025);
    big[1025] = '\0';
    assert_refused("acc_1", big);
}

/* A verified payload that is not a JSON array is refused too. */
static void test_not_an_array(void **state)
{
    cursor_init(SECRET_A, NULL);
    json_t *o = json_pack("{s:i}", "a", 1);
    char *c = cursor_encode("acc_1", o);
    assert_refused("acc_1", c);
    free(c);
    json_decref(o);
}

/* The longest cursor decode accepts is 1024 characters: a 752-byte payload plus the 16-byte
 * MAC. A string of 748 characters gives exactly that ("[\"...\"]"). */
static void test_length_limit(void **state)
{
    cursor_init(SECRET_A, NULL);
    char s[750];
    memset(s, 'x', sizeof s);
    s[748] = '\0';
    json_t *v = json_pack("[s]", s);
    char *c = cursor_encode("acc_1", v);
    assert_int_equal(strlen(c), 1024);
    assert_decodes_to("acc_1", c, v);
    free(c);
    json_decref(v);

    s[748] = 'x';
    s[749] = '\0';
    v = json_pack("[s]", s);
    c = cursor_encode("acc_1", v);
    assert_int_equal(strlen(c), 1026);
    assert_refused("acc_1", c);            /* encodes, but is past the decode limit */
    free(c);
    json_decref(v);
}

static void test_rotation(void **state)
{
    json_t *v = sample();
    cursor_init(SECRET_A, NULL);
    char *old = cursor_encode("acc_1", v);

    cursor_init(SECRET_B, NULL);            /* another secret alone refuses old cursors */
    assert_refused("acc_1", old);

    cursor_init(SECRET_B, SECRET_A);        /* rotation: the previous secret still verifies */
    assert_decodes_to("acc_1", old, v);
    assert_refused("acc_2", old);           /* ... still bound to its account */
    char *fresh = cursor_encode("acc_1", v);
    assert_string_not_equal(fresh, old);   /* new cursors use the new secret */
    assert_decodes_to("acc_1", fresh, v);

    cursor_init(SECRET_B, "");              /* rotation over: the old secret is gone */
    assert_refused("acc_1", old);
    assert_decodes_to("acc_1", fresh, v);

    cursor_init(SECRET_A, NULL);
    assert_refused("acc_1", fresh);
    assert_decodes_to("acc_1", old, v);
    free(old);
    free(fresh);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bound_to_account),
        cmocka_unit_test(test_every_character_tamper),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_not_an_array),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests_name("cursor", tests, NULL, NULL);
}
