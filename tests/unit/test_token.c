/* Unit tests of lib/token.c: the wire format against tokens computed independently (Python
 * hmac/hashlib, HKDF-SHA256 with salt "posthorn"), round trips at every payload size class,
 * refusal of every single-character change, truncation and extension, purpose confusion,
 * unknown versions even with a valid MAC, secret rotation (and a key id collision between
 * the two secrets), size limits, and the VERP local part. */
#include "tests/unit/unit.h"

#include "lib/crypto.h"
#include "lib/token.h"

#define SECRET_A "token-test-secret-A-0123456789abcdef"
#define SECRET_B "token-test-secret-B-0123456789abcdef"
#define SECRET_C "token-test-secret-C-0123456789abcdef"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const token_purpose purposes[] = {TOKEN_UNSUBSCRIBE, TOKEN_CLICK, TOKEN_OPEN, TOKEN_VERP};

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 131 + i * 29 + (i >> 3));
}

static void assert_opens_to(token_purpose p, const char *tok, const uint8_t *want, size_t n)
{
    uint8_t got[TOKEN_PAYLOAD_MAX + 1];
    long r = token_open(p, tok, strlen(tok), got, sizeof got);
    if (r < 0)
        fail_msg("token %s (purpose %d) did not open", tok, (int)p);
    assert_int_equal(r, (long)n);
    if (n)
        assert_memory_equal(got, want, n);
}

static void assert_refused(token_purpose p, const char *tok, size_t n)
{
    uint8_t got[TOKEN_PAYLOAD_MAX + 1];
    long r = token_open(p, tok, n, got, sizeof got);
    if (r != -1)
        fail_msg("token \"%.*s\" (purpose %d) opened (%ld)", (int)n, tok, (int)p, r);
}

static void test_known_answers(void **state)
{
    token_init(SECRET_A, NULL);
    char out[TOKEN_MAX_CHARS + 1];
    const char *pl = "acc_1|dlv_2|0";
    assert_int_equal(token_make(TOKEN_UNSUBSCRIBE, pl, strlen(pl), out, sizeof out), 43);
    assert_string_equal(out, "AQH4YWNjXzF8ZGx2XzJ8MKD7X2k4MAo0JHnewVdPt24");
    assert_int_equal(token_make(TOKEN_CLICK, NULL, 0, out, sizeof out), 26);
    assert_string_equal(out, "AQL4hy20hiHTGfto-pyauK4nQQ");
    assert_opens_to(TOKEN_CLICK, "AQL4hy20hiHTGfto-pyauK4nQQ", NULL, 0);

    char local[TOKEN_VERP_LOCAL_MAX + 1];
    assert_int_equal(token_verp_local("acc_X", "dlv_0123456789ABCDEFabcdef", local, sizeof local), 64);
    assert_string_equal(local, "bounces+AQT4AACMJs2o6zmLyGufmVAOF9XS-Swt_PAXpLgR9sOiVIuKh7bCeLYH");
}

static void test_round_trip(void **state)
{
    token_init(SECRET_A, NULL);
    static const size_t sizes[] = {0, 1, 2, 3, 4, 16, 37, 255, TOKEN_PAYLOAD_MAX};
    for (size_t pi = 0; pi < N_ELEMS(purposes); pi++) {
        for (size_t si = 0; si < N_ELEMS(sizes); si++) {
            uint8_t payload[TOKEN_PAYLOAD_MAX];
            size_t n = sizes[si];
            fill(payload, n, (unsigned)(pi * 10 + si));
            char tok[TOKEN_MAX_CHARS + 1], again[TOKEN_MAX_CHARS + 1];
            int len = token_make(purposes[pi], payload, n, tok, sizeof tok);
            size_t raw = 3 + n + TOKEN_MAC_LEN;
            assert_int_equal(len, (int)((4 * raw + 2) / 3));
            assert_int_equal(strlen(tok), (size_t)len);
            assert_true(len <= TOKEN_MAX_CHARS);
            assert_int_equal(strspn(tok, b64url_alphabet), (size_t)len);
            assert_opens_to(purposes[pi], tok, payload, n);
            /* deterministic */
            assert_int_equal(token_make(purposes[pi], payload, n, again, sizeof again), len);
            assert_string_equal(tok, again);
        }
    }
    /* the longest token is exactly TOKEN_MAX_CHARS */
    uint8_t big[TOKEN_PAYLOAD_MAX] = {0};
    char tok[TOKEN_MAX_CHARS + 1];
    assert_int_equal(token_make(TOKEN_OPEN, big, sizeof big, tok, sizeof tok), TOKEN_MAX_CHARS);
}

static void test_every_character_change(void **state)
{
    token_init(SECRET_A, SECRET_B);
    static const size_t sizes[] = {0, 1, 2, 24};
    for (size_t si = 0; si < N_ELEMS(sizes); si++) {
        uint8_t payload[32];
        fill(payload, sizes[si], (unsigned)si);
        char tok[TOKEN_MAX_CHARS + 1];
        int len = token_make(TOKEN_UNSUBSCRIBE, payload, sizes[si], tok, sizeof tok);
        assert_true(len > 0);
        assert_opens_to(TOKEN_UNSUBSCRIBE, tok, payload, sizes[si]);
        for (int i = 0; i < len; i++) {
            char orig = tok[i];
            for (int c = 1; c < 256; c++) {
                if (c == (unsigned char)orig)
                    continue;
                tok[i] = (char)c;
                assert_refused(TOKEN_UNSUBSCRIBE, tok, (size_t)len);
            }
            tok[i] = orig;
        }
        assert_opens_to(TOKEN_UNSUBSCRIBE, tok, payload, sizes[si]);
        /* every proper prefix, and one character more */
        for (int k = 0; k < len; k++)
            assert_refused(TOKEN_UNSUBSCRIBE, tok, (size_t)k);
        for (size_t c = 0; c < 64; c++) {
            tok[len] = b64url_alphabet[c];
            tok[len + 1] = '\0';
            assert_refused(TOKEN_UNSUBSCRIBE, tok, (size_t)len + 1);
        }
    }
}

static void test_purpose_confusion(void **state)
{
    token_init(SECRET_A, SECRET_B);
    const char *pl = "acc_1 dlv_2 3";
    for (size_t i = 0; i < N_ELEMS(purposes); i++) {
        char tok[TOKEN_MAX_CHARS + 1];
        assert_true(token_make(purposes[i], pl, strlen(pl), tok, sizeof tok) > 0);
        for (size_t j = 0; j < N_ELEMS(purposes); j++) {
            if (i == j)
                assert_opens_to(purposes[j], tok, (const uint8_t *)pl, strlen(pl));
            else
                assert_refused(purposes[j], tok, strlen(tok));
        }
        assert_refused((token_purpose)0, tok, strlen(tok));
        assert_refused((token_purpose)5, tok, strlen(tok));
    }
    char tok[TOKEN_MAX_CHARS + 1];
    assert_int_equal(token_make((token_purpose)0, pl, 3, tok, sizeof tok), -1);
    assert_int_equal(token_make((token_purpose)5, pl, 3, tok, sizeof tok), -1);
}

/* Builds a token by hand the way the format says, with any version/purpose/key id. */
static void forge(const char *secret, const char *label, uint8_t version, uint8_t purpose,
                  const void *payload, size_t n, char *out)
{
    uint8_t raw[3 + TOKEN_PAYLOAD_MAX + 1 + TOKEN_MAC_LEN], key[32], id[1], m[SHA256_LEN];
    crypto_hkdf(secret, strlen(secret), "posthorn token key id v1", id, 1);
    crypto_hkdf(secret, strlen(secret), label, key, sizeof key);
    raw[0] = version;
    raw[1] = purpose;
    raw[2] = id[0];
    memcpy(raw + 3, payload, n);
    crypto_hmac_sha256(key, sizeof key, raw, 3 + n, m);
    memcpy(raw + 3 + n, m, TOKEN_MAC_LEN);
    crypto_b64url_encode(raw, 3 + n + TOKEN_MAC_LEN, out);
}

static void test_version_and_label(void **state)
{
    token_init(SECRET_A, NULL);
    char tok[TOKEN_MAX_CHARS + 1];
    forge(SECRET_A, "posthorn token v1 click", 1, TOKEN_CLICK, "xyz", 3, tok);
    assert_opens_to(TOKEN_CLICK, tok, (const uint8_t *)"xyz", 3);
    /* valid MAC, but a version this code does not know */
    forge(SECRET_A, "posthorn token v1 click", 2, TOKEN_CLICK, "xyz", 3, tok);
    assert_refused(TOKEN_CLICK, tok, strlen(tok));
    forge(SECRET_A, "posthorn token v1 click", 0, TOKEN_CLICK, "xyz", 3, tok);
    assert_refused(TOKEN_CLICK, tok, strlen(tok));
    /* purpose byte says click, but MACed with the unsubscribe subkey */
    forge(SECRET_A, "posthorn token v1 unsubscribe", 1, TOKEN_CLICK, "xyz", 3, tok);
    assert_refused(TOKEN_CLICK, tok, strlen(tok));
    assert_refused(TOKEN_UNSUBSCRIBE, tok, strlen(tok));
}

static void test_rotation(void **state)
{
    const char *pl = "acc_9/dlv_9/7";
    size_t n = strlen(pl);
    char old[TOKEN_MAX_CHARS + 1], fresh[TOKEN_MAX_CHARS + 1], other[TOKEN_MAX_CHARS + 1];

    token_init(SECRET_A, NULL);
    assert_true(token_make(TOKEN_UNSUBSCRIBE, pl, n, old, sizeof old) > 0);
    token_init(SECRET_C, NULL);
    assert_true(token_make(TOKEN_UNSUBSCRIBE, pl, n, other, sizeof other) > 0);

    /* rotation: B current, A previous */
    token_init(SECRET_B, SECRET_A);
    assert_opens_to(TOKEN_UNSUBSCRIBE, old, (const uint8_t *)pl, n);
    assert_true(token_make(TOKEN_UNSUBSCRIBE, pl, n, fresh, sizeof fresh) > 0);
    assert_string_not_equal(fresh, old);
    assert_opens_to(TOKEN_UNSUBSCRIBE, fresh, (const uint8_t *)pl, n);
    assert_refused(TOKEN_UNSUBSCRIBE, other, strlen(other));   /* unknown secret */

    /* rotation finished: A dropped */
    token_init(SECRET_B, NULL);
    assert_refused(TOKEN_UNSUBSCRIBE, old, strlen(old));
    assert_opens_to(TOKEN_UNSUBSCRIBE, fresh, (const uint8_t *)pl, n);
    token_init(SECRET_B, "");
    assert_refused(TOKEN_UNSUBSCRIBE, old, strlen(old));

    /* the previous secret never makes tokens */
    token_init(SECRET_B, SECRET_A);
    char again[TOKEN_MAX_CHARS + 1];
    token_make(TOKEN_UNSUBSCRIBE, pl, n, again, sizeof again);
    assert_string_equal(again, fresh);
}

/* Two secrets whose one-byte key ids collide must both still verify. */
static void test_key_id_collision(void **state)
{
    uint8_t want[1], id[1];
    crypto_hkdf(SECRET_A, strlen(SECRET_A), "posthorn token key id v1", want, 1);
    char other[64];
    int found = 0;
    for (int i = 0; i < 100000 && !found; i++) {
        snprintf(other, sizeof other, "token-collision-secret-%d-0123456789abcdef", i);
        crypto_hkdf(other, strlen(other), "posthorn token key id v1", id, 1);
        found = id[0] == want[0];
    }
    assert_true(found);
    char ta[TOKEN_MAX_CHARS + 1], to[TOKEN_MAX_CHARS + 1];
    token_init(SECRET_A, NULL);
    token_make(TOKEN_OPEN, "a", 1, ta, sizeof ta);
    token_init(other, NULL);
    token_make(TOKEN_OPEN, "o", 1, to, sizeof to);
    assert_int_equal(strncmp(ta, to, 4), 0);   /* same version, purpose and key id */
    token_init(SECRET_A, other);
    assert_opens_to(TOKEN_OPEN, ta, (const uint8_t *)"a", 1);
    assert_opens_to(TOKEN_OPEN, to, (const uint8_t *)"o", 1);
    token_init(other, SECRET_A);
    assert_opens_to(TOKEN_OPEN, ta, (const uint8_t *)"a", 1);
    assert_opens_to(TOKEN_OPEN, to, (const uint8_t *)"o", 1);
    token_init(SECRET_B, other);
    assert_refused(TOKEN_OPEN, ta, strlen(ta));
}

static void test_size_limits(void **state)
{
    token_init(SECRET_A, NULL);
    uint8_t payload[TOKEN_PAYLOAD_MAX + 1];
    fill(payload, sizeof payload, 3);
    char tok[TOKEN_MAX_CHARS + 2];
    assert_int_equal(token_make(TOKEN_CLICK, payload, TOKEN_PAYLOAD_MAX + 1, tok, sizeof tok), -1);

    /* out_max: exactly the length plus NUL works, one less does not */
    int len = token_make(TOKEN_CLICK, payload, 10, tok, sizeof tok);
    assert_int_equal(len, 39);   /* 29 bytes */
    char small[40];
    memset(small, '#', sizeof small);
    assert_int_equal(token_make(TOKEN_CLICK, payload, 10, small, 39), -1);
    assert_int_equal(token_make(TOKEN_CLICK, payload, 10, small, 40), 39);
    assert_string_equal(small, tok);

    /* payload_max: exactly the payload works, one less does not */
    uint8_t got[16];
    assert_int_equal(token_open(TOKEN_CLICK, tok, (size_t)len, got, 10), 10);
    assert_memory_equal(got, payload, 10);
    assert_int_equal(token_open(TOKEN_CLICK, tok, (size_t)len, got, 9), -1);

    /* an empty-payload token opens with payload_max 0 and a NULL buffer */
    assert_int_equal(token_make(TOKEN_CLICK, NULL, 0, tok, sizeof tok), 26);
    assert_int_equal(token_open(TOKEN_CLICK, tok, 26, NULL, 0), 0);

    /* bad input */
    assert_refused(TOKEN_CLICK, "", 0);
    assert_refused(TOKEN_CLICK, "AAAA", 4);
    assert_refused(TOKEN_CLICK, "AQL4hy20hiHTGfto-pyauK4nQQ==", 28);   /* padding */
    assert_refused(TOKEN_CLICK, "AQL4hy20hiHTGfto+pyauK4nQQ", 26);     /* std alphabet */
    char *huge = malloc(TOKEN_MAX_CHARS + 5);
    assert_non_null(huge);
    memset(huge, 'A', TOKEN_MAX_CHARS + 4);
    assert_refused(TOKEN_CLICK, huge, TOKEN_MAX_CHARS + 1);
    assert_refused(TOKEN_CLICK, huge, TOKEN_MAX_CHARS + 4);
    /* a hand-made token of the largest payload opens; one byte more, MACed properly, not */
    forge(SECRET_A, "posthorn token v1 click", 1, TOKEN_CLICK, payload, TOKEN_PAYLOAD_MAX, huge);
    assert_int_equal(strlen(huge), TOKEN_MAX_CHARS);
    uint8_t all[TOKEN_PAYLOAD_MAX + 1];
    assert_int_equal(token_open(TOKEN_CLICK, huge, TOKEN_MAX_CHARS, all, sizeof all),
                     TOKEN_PAYLOAD_MAX);
    forge(SECRET_A, "posthorn token v1 click", 1, TOKEN_CLICK, payload, TOKEN_PAYLOAD_MAX + 1, huge);
    assert_int_equal(strlen(huge), TOKEN_MAX_CHARS + 1);   /* 276 bytes */
    assert_int_equal(token_open(TOKEN_CLICK, huge, TOKEN_MAX_CHARS + 1, all, sizeof all), -1);
    free(huge);
}

static int dot_atom_text(const char *s)
{
    static const char specials[] = "!#$%&'*+-/=?^_`{|}~";
    if (!*s || *s == '.')
        return 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        int atext = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    (c && strchr(specials, c));
        if (!atext && !(c == '.' && p[1] && p[1] != '.'))
            return 0;
    }
    return 1;
}

static void test_verp(void **state)
{
    token_init(SECRET_A, NULL);
    char fresh[IDS_MAX];
    ids_new("dlv_", fresh);
    const char *ids[] = {"dlv_0000000000000000000000", "dlv_zzzzzzzzzzzzzzzzzzzzzz",
                         "dlv_0123456789ABCDEFabcdef", fresh};
    for (size_t i = 0; i < N_ELEMS(ids); i++) {
        char local[TOKEN_VERP_LOCAL_MAX + 1], back[IDS_MAX];
        int len = token_verp_local("acc_X", ids[i], local, sizeof local);
        assert_int_equal(len, 64);
        assert_int_equal(strlen(local), 64);
        assert_true(dot_atom_text(local));
        assert_int_equal(strncmp(local, "bounces+", 8), 0);
        assert_int_equal(strspn(local + 8, b64url_alphabet), 56);

        memset(back, '#', sizeof back);
        assert_int_equal(token_verp_open(local, 64, "acc_X", back), 0);
        assert_string_equal(back, ids[i]);
        memset(back, '#', sizeof back);
        assert_int_equal(token_verp_open(local, 64, NULL, back), 0);
        assert_string_equal(back, ids[i]);
        assert_int_equal(token_verp_open(local, 64, "acc_Y", back), -1);
        assert_int_equal(token_verp_open(local, 64, "acc_X ", back), -1);

        /* the token inside is a VERP token only */
        for (size_t p = 0; p < 3; p++)
            assert_refused(purposes[p], local + 8, 56);

        /* every single-character change, and case folding by a careless MTA */
        for (int k = 0; k < len; k++) {
            char orig = local[k];
            for (size_t c = 0; c < 64; c++) {
                if (b64url_alphabet[c] == orig)
                    continue;
                local[k] = b64url_alphabet[c];
                assert_int_equal(token_verp_open(local, 64, NULL, back), -1);
            }
            local[k] = orig;
        }
        for (int k = 0; k < len; k++)
            assert_int_equal(token_verp_open(local, (size_t)k, NULL, back), -1);
        /* a relay that lowercases local parts breaks VERP tokens (documented limit) */
        char lower[TOKEN_VERP_LOCAL_MAX + 1];
        for (int k = 0; k <= len; k++)
            lower[k] = (char)((local[k] >= 'A' && local[k] <= 'Z') ? local[k] + 32 : local[k]);
        assert_int_equal(token_verp_open(lower, 64, NULL, back), -1);
    }

    char local[TOKEN_VERP_LOCAL_MAX + 1], back[IDS_MAX];
    /* not a delivery id */
    assert_int_equal(token_verp_local("acc_X", "msg_0123456789ABCDEFabcdef", local, sizeof local), -1);
    assert_int_equal(token_verp_local("acc_X", "dlv_0123456789ABCDEFabcde", local, sizeof local), -1);
    assert_int_equal(token_verp_local("acc_X", "dlv_0123456789ABCDEFabcde-", local, sizeof local), -1);
    assert_int_equal(token_verp_local("acc_X", fresh, local, 64), -1);

    /* an unsubscribe token with a VERP-sized payload behind "bounces+" is refused */
    uint8_t p23[23] = {0};
    char t[TOKEN_MAX_CHARS + 1];
    assert_int_equal(token_make(TOKEN_UNSUBSCRIBE, p23, sizeof p23, t, sizeof t), 56);
    memcpy(local, "bounces+", 8);
    memcpy(local + 8, t, 57);   /* 56 characters and the NUL, checked above */
    assert_int_equal(token_verp_open(local, 64, NULL, back), -1);
    /* a VERP token with another prefix is refused */
    assert_int_equal(token_verp_local("acc_X", fresh, local, sizeof local), 64);
    local[0] = 'B';
    assert_int_equal(token_verp_open(local, 64, NULL, back), -1);
    assert_int_equal(token_verp_open("bounces+", 8, NULL, back), -1);
    assert_int_equal(token_verp_open("", 0, NULL, back), -1);

    /* a VERP payload that is not a packed id (>= 62^22), MACed properly, is refused */
    uint8_t ff[23];
    memset(ff, 0xff, sizeof ff);
    assert_int_equal(token_make(TOKEN_VERP, ff, sizeof ff, t, sizeof t), 56);
    memcpy(local, "bounces+", 8);
    memcpy(local + 8, t, 57);   /* 56 characters and the NUL, checked above */
    assert_int_equal(token_verp_open(local, 64, NULL, back), -1);

    /* rotation */
    assert_int_equal(token_verp_local("acc_X", fresh, local, sizeof local), 64);
    token_init(SECRET_B, SECRET_A);
    assert_int_equal(token_verp_open(local, 64, "acc_X", back), 0);
    assert_string_equal(back, fresh);
    token_init(SECRET_B, NULL);
    assert_int_equal(token_verp_open(local, 64, "acc_X", back), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_character_change),
        cmocka_unit_test(test_purpose_confusion),
        cmocka_unit_test(test_version_and_label),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_key_id_collision),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_verp),
    };
    return cmocka_run_group_tests_name("token", tests, NULL, NULL);
}
