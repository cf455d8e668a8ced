/* Unit tests of lib/ids.c (prefixed random ids) and lib/apikey.c (API keys and scopes). */
#include "tests/unit/unit.h"

#include "lib/apikey.h"
#include "lib/crypto.h"
#include "lib/ids.h"

#define DRAWS 10000

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char prefix_alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts n strings and fails on the first duplicate. */
static void assert_all_distinct(char **v, size_t n, const char *what)
{
    qsort(v, n, sizeof *v, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            fail_msg("duplicate %s after %zu draws: %s", what, n, v[i]);
}

/* ---- ids ------------------------------------------------------------------------------ */

static void test_ids_format_and_uniqueness(void **state)
{
    char **all = calloc(DRAWS, sizeof *all);
    assert_non_null(all);
    size_t counts[256] = {0};
    for (size_t i = 0; i < DRAWS; i++) {
        char id[IDS_MAX];
        memset(id, 'X', sizeof id);
        ids_new("msg_", id);
        assert_int_equal(strlen(id), 4 + IDS_BODY_LEN);
        assert_memory_equal(id, "msg_", 4);
        for (const char *p = id + 4; *p; p++) {
            if (!strchr(base62, *p))
                fail_msg("character %#x outside base62 in %s", (unsigned char)*p, id);
            counts[(unsigned char)*p]++;
        }
        assert_int_equal(ids_valid("msg_", id), 1);
        all[i] = strdup(id);
        assert_non_null(all[i]);
    }
    assert_all_distinct(all, DRAWS, "id");
    for (size_t i = 0; i < DRAWS; i++)
        free(all[i]);
    free(all);

    /* 220000 draws over 62 characters: about 3548 each, sigma about 60. Every character
     * must appear, none far from the mean (a modulo bias or a lost character shows here). */
    double mean = (double)DRAWS * IDS_BODY_LEN / 62;
    for (const char *c = base62; *c; c++) {
        size_t k = counts[(unsigned char)*c];
        if (k < mean * 0.85 || k > mean * 1.15)
            fail_msg("'%c' drawn %zu times, expected about %.0f", *c, k, mean);
    }
}

static void test_ids_prefixes(void **state)
{
    char id[IDS_MAX];
    ids_new("", id);
    assert_int_equal(strlen(id), IDS_BODY_LEN);
    assert_int_equal(ids_valid("", id), 1);
    ids_new("acc_", id);
    assert_int_equal(ids_valid("acc_", id), 1);
    assert_int_equal(ids_valid("msg_", id), 0);
    /* The longest prefix that fits: 32 - 22 - 1 = 9 characters. */
    ids_new("abcdefgh_", id);
    assert_int_equal(strlen(id), 31);
    assert_int_equal(ids_valid("abcdefgh_", id), 1);
}

static void test_ids_valid_table(void **state)
{
    static const struct { const char *prefix, *s; int want; } cases[] = {
        {"msg_", "msg_0123456789ABCDEFGHIJkl", 1},
        {"msg_", "msg_zzzzzzzzzzzzzzzzzzzzzz", 1},
        {"msg_", "dlv_0123456789ABCDEFGHIJkl", 0},       /* wrong prefix */
        {"msg_", "MSG_0123456789ABCDEFGHIJkl", 0},
        {"msg_", "msg0123456789ABCDEFGHIJklm", 0},
        {"msg_", "msg_0123456789ABCDEFGHIJk", 0},        /* 21 */
        {"msg_", "msg_0123456789ABCDEFGHIJklm", 0},      /* 23 */
        {"msg_", "msg_", 0},
        {"msg_", "", 0},
        {"msg_", "msg_0123456789ABCDEFGHIJ-l", 0},       /* charset */
        {"msg_", "msg_0123456789ABCDEFGHIJ_l", 0},
        {"msg_", "msg_0123456789ABCDEFGHIJ l", 0},
        {"msg_", "msg_0123456789ABCDEFGHIJ\xc3\xa9", 0},
        {"msg_", "msg_0123456789ABCDEFGHIJ%2", 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        if (ids_valid(cases[i].prefix, cases[i].s) != cases[i].want)
            fail_msg("ids_valid(\"%s\", \"%s\") != %d", cases[i].prefix, cases[i].s, cases[i].want);
}

/* ---- API keys -------------------------------------------------------------------------- */

static void test_apikey_generate(void **state)
{
    assert_int_equal(APIKEY_LEN, 59);
    char **keys = calloc(DRAWS, sizeof *keys), **prefixes = calloc(DRAWS, sizeof *prefixes);
    assert_non_null(keys);
    assert_non_null(prefixes);
    for (size_t i = 0; i < DRAWS; i++) {
        char key[APIKEY_LEN + 1], prefix[APIKEY_PREFIX_LEN + 1];
        uint8_t hash[SHA256_LEN], want[SHA256_LEN];
        apikey_generate(key, prefix, hash);
        assert_int_equal(strlen(key), APIKEY_LEN);
        assert_memory_equal(key, "ph_", 3);
        assert_memory_equal(key + 3, prefix, APIKEY_PREFIX_LEN);
        assert_int_equal(key[3 + APIKEY_PREFIX_LEN], '_');
        assert_int_equal(strlen(prefix), APIKEY_PREFIX_LEN);
        assert_int_equal(strspn(prefix, prefix_alphabet), APIKEY_PREFIX_LEN);
        assert_int_equal(apikey_prefix_valid(prefix), 1);
        /* The secret is the canonical base64url of 32 bytes. */
        uint8_t secret[33];
        assert_int_equal(crypto_b64url_decode(key + 16, APIKEY_SECRET_LEN, secret, sizeof secret), 32);
        /* Only the SHA-256 of the whole key is kept. */
        crypto_sha256(key, APIKEY_LEN, want);
        assert_memory_equal(hash, want, SHA256_LEN);
        /* What is generated parses back to the same prefix and hash. */
        char p2[APIKEY_PREFIX_LEN + 1];
        uint8_t h2[SHA256_LEN];
        assert_int_equal(apikey_parse(key, strlen(key), p2, h2), 0);
        assert_string_equal(p2, prefix);
        assert_memory_equal(h2, hash, SHA256_LEN);
        keys[i] = strdup(key);
        prefixes[i] = strdup(prefix);
        assert_non_null(keys[i]);
        assert_non_null(prefixes[i]);
    }
    assert_all_distinct(keys, DRAWS, "key");
    assert_all_distinct(prefixes, DRAWS, "key prefix");
    for (size_t i = 0; i < DRAWS; i++) {
        free(keys[i]);
        free(prefixes[i]);
    }
    free(keys);
    free(prefixes);
}

/* A fixed, well-formed key: "ph_" + 12 prefix characters + "_" + 43 secret characters, the
 * base64url of bytes 0..31. The table breaks it one way at a time; K() supplies the first 42
 * secret characters, so each row shows what comes before them and the last character(s).
 * The canonical last character '8' (60) leaves the two trailing bits zero. */
#define SECRET_HEAD "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh"
#define K(head, tail) head SECRET_HEAD tail
#define GOOD_KEY K("ph_abcdefghjk23_", "8")

static void test_apikey_parse_table(void **state)
{
    static const struct { const char *s; int want; } cases[] = {
        {K("ph_abcdefghjk23_", "8"), 0},
        {K("ph_abcdefghjk23_", "E"), 0},         /* 'E' = 4: trailing bits 00 */
        {K("ph_abcdefghjk23_", "4"), 0},
        {K("pk_abcdefghjk23_", "8"), -1},        /* wrong prefix */
        {K("PH_abcdefghjk23_", "8"), -1},
        {K("ph-abcdefghjk23_", "8"), -1},
        {K("ph_abcdefghjk23-", "8"), -1},        /* separator */
        {K("ph_abcdefghjk2_", "8A"), -1},        /* 11-character prefix, right total length */
        {K("ph_abcdefghjk234", "8"), -1},        /* 13-character prefix */
        {K("ph_abcdefghjk23_", ""), -1},         /* 58 characters */
        {K("ph_abcdefghjk23_", "8A"), -1},       /* 60 characters */
        {K("ph_abcdefghjk2l_", "8"), -1},        /* 'l' is not a prefix character */
        {K("ph_abcdefghjk20_", "8"), -1},        /* nor '0' */
        {K("ph_abcdefghjk21_", "8"), -1},        /* nor '1' */
        {K("ph_abcdefghjko3_", "8"), -1},        /* nor 'o' */
        {K("ph_Abcdefghjk23_", "8"), -1},        /* nor upper case */
        {K("ph_abcdefghjk2__", "8"), -1},
        {K("ph_abcdefghjk23_", "9"), -1},        /* '9' = 61: non-zero trailing bits */
        {K("ph_abcdefghjk23_", "B"), -1},
        {K("ph_abcdefghjk23_", "_"), -1},
        {K("ph_abcdefghjk23_", "="), -1},        /* padding */
        {K("ph_abcdefghjk23_", "+"), -1},        /* standard alphabet */
        {K("ph_abcdefghjk23_", "/"), -1},
        {K("ph_abcdefghjk23_", " "), -1},
        {K("ph_abcdefghjk23_", "\n"), -1},
        {"", -1},
        {"ph_", -1},
        /* a character outside base64url in the middle of the secret */
        {"ph_abcdefghjk23_AAECAwQFBgcICQoLDA0ODxAREhMU+RYXGBkaGxwdHh8", -1},
        {"ph_abcdefghjk23_AAECAwQFBgcICQoLDA0ODxAREhMU.RYXGBkaGxwdHh8", -1},
    };
    assert_int_equal(strlen(GOOD_KEY), APIKEY_LEN);
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char prefix[APIKEY_PREFIX_LEN + 1];
        uint8_t hash[SHA256_LEN];
        int r = apikey_parse(cases[i].s, strlen(cases[i].s), prefix, hash);
        if (r != cases[i].want)
            fail_msg("apikey_parse(\"%s\") = %d, want %d", cases[i].s, r, cases[i].want);
        if (r == 0) {
            assert_string_equal(prefix, "abcdefghjk23");
            uint8_t want[SHA256_LEN];
            crypto_sha256(cases[i].s, strlen(cases[i].s), want);
            assert_memory_equal(hash, want, SHA256_LEN);
        }
    }
    /* The length given is what counts: a longer buffer, a shorter n, an embedded NUL. */
    char prefix[APIKEY_PREFIX_LEN + 1];
    uint8_t hash[SHA256_LEN];
    assert_int_equal(apikey_parse(GOOD_KEY "trailing", APIKEY_LEN, prefix, hash), 0);
    assert_int_equal(apikey_parse(GOOD_KEY, APIKEY_LEN - 1, prefix, hash), -1);
    char nul[] = GOOD_KEY;
    nul[5] = '\0';
    assert_int_equal(apikey_parse(nul, APIKEY_LEN, prefix, hash), -1);
    nul[5] = 'c';
    nul[40] = '\0';
    assert_int_equal(apikey_parse(nul, APIKEY_LEN, prefix, hash), -1);
}

static void test_apikey_prefix_valid(void **state)
{
    assert_int_equal(apikey_prefix_valid("abcdefghjk23"), 1);
    assert_int_equal(apikey_prefix_valid("zzzzzzzzzzzz"), 1);
    assert_int_equal(apikey_prefix_valid("abcdefghjk2"), 0);
    assert_int_equal(apikey_prefix_valid("abcdefghjk234"), 0);
    assert_int_equal(apikey_prefix_valid("abcdefghjkl3"), 0);
    assert_int_equal(apikey_prefix_valid("ABCDEFGHJK23"), 0);
    assert_int_equal(apikey_prefix_valid(""), 0);
}

static void test_apikey_scopes(void **state)
{
    static const struct { const char *in; int rc; unsigned bits; } cases[] = {
        {"send,read", 0, SCOPE_BIT(SCOPE_SEND) | SCOPE_BIT(SCOPE_READ)},
        {"read,send", 0, SCOPE_BIT(SCOPE_SEND) | SCOPE_BIT(SCOPE_READ)},
        {"admin", 0, SCOPE_BIT(SCOPE_ADMIN)},
        {"send", 0, SCOPE_BIT(SCOPE_SEND)},
        {"send,read,admin", 0, SCOPE_BIT(SCOPE_SEND) | SCOPE_BIT(SCOPE_READ) | SCOPE_BIT(SCOPE_ADMIN)},
        {"send,send", 0, SCOPE_BIT(SCOPE_SEND)},
        {"", -1, 0},
        {"operator", -1, 0},
        {"send,operator", -1, 0},
        {"public", -1, 0},
        {"send,,read", -1, 0},
        {",send", -1, 0},
        {",", -1, 0},
        {"SEND", -1, 0},
        {"Send", -1, 0},
        {"send ", -1, 0},
        {" send", -1, 0},
        {"sen", -1, 0},
        {"sendx", -1, 0},
        {"send;read", -1, 0},
    };
    assert_int_equal(SCOPE_BIT(SCOPE_SEND) | SCOPE_BIT(SCOPE_READ), 6);
    assert_int_equal(SCOPE_BIT(SCOPE_ADMIN), 8);
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        unsigned bits = 0xdead;
        int rc = apikey_parse_scopes(cases[i].in, &bits);
        if (rc != cases[i].rc)
            fail_msg("scopes \"%s\": %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0 && bits != cases[i].bits)
            fail_msg("scopes \"%s\": %#x, want %#x", cases[i].in, bits, cases[i].bits);
    }
    assert_string_equal(apikey_scope_name(SCOPE_PUBLIC), "public");
    assert_string_equal(apikey_scope_name(SCOPE_SEND), "send");
    assert_string_equal(apikey_scope_name(SCOPE_READ), "read");
    assert_string_equal(apikey_scope_name(SCOPE_ADMIN), "admin");
    assert_string_equal(apikey_scope_name(SCOPE_OPERATOR), "operator");
}

/* "send,,read" is refused for its empty item; a trailing empty item must be too. */
static void test_apikey_scopes_trailing_comma(void **state)
{
    unsigned bits = 0;
    assert_int_equal(apikey_parse_scopes("send,", &bits), -1);
    assert_int_equal(apikey_parse_scopes("send,read,", &bits), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_format_and_uniqueness),
        cmocka_unit_test(test_ids_prefixes),
        cmocka_unit_test(test_ids_valid_table),
        cmocka_unit_test(test_apikey_generate),
        cmocka_unit_test(test_apikey_parse_table),
        cmocka_unit_test(test_apikey_prefix_valid),
        cmocka_unit_test(test_apikey_scopes),
        cmocka_unit_test(test_apikey_scopes_trailing_comma),
    };
    return cmocka_run_group_tests_name("ids_apikey", tests, NULL, NULL);
}
