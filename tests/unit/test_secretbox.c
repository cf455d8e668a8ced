/* Unit tests of lib/secretbox.c: a box sealed independently (Python `cryptography` AESGCM,
 * HKDF-SHA256 with salt "posthorn") opens, round trips at several sizes, refusal of every
 * single-byte change, truncation and extension, wrong associated data and purpose, secret
 * rotation (with a key id collision), size limits, and silence on failure. */
#include "tests/unit/unit.h"

#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/secretbox.h"

#include <unistd.h>

#define SECRET_A "token-test-secret-A-0123456789abcdef"
#define SECRET_B "secretbox-test-secret-B-0123456789abcdef"
#define SECRET_C "secretbox-test-secret-C-0123456789abcdef"
#define AD_X     "acc_X\nexample.com"

static void seal_ok(secretbox_purpose p, const void *plain, size_t n, const char *ad, buf *out)
{
    buf_reset(out);
    assert_int_equal(secretbox_seal(p, plain, n, ad, ad ? strlen(ad) : 0, out), 0);
    assert_int_equal(out->len, n + SECRETBOX_OVERHEAD);
}

static void assert_opens(secretbox_purpose p, const buf *box, const char *ad, const void *want,
                         size_t n)
{
    buf plain;
    buf_init(&plain, SECRETBOX_PLAIN_MAX);
    if (secretbox_open(p, box->data, box->len, ad, ad ? strlen(ad) : 0, &plain) != 0)
        fail_msg("box of %zu bytes did not open", box->len);
    assert_int_equal(plain.len, n);
    if (n)
        assert_memory_equal(plain.data, want, n);
    buf_free(&plain);
}

static void assert_refused_raw(secretbox_purpose p, const void *box, size_t n, const void *ad,
                               size_t adn)
{
    buf plain;
    buf_init(&plain, SECRETBOX_PLAIN_MAX);
    assert_int_equal(secretbox_open(p, box, n, ad, adn, &plain), -1);
    assert_int_equal(plain.len, 0);
    buf_free(&plain);
}

static void assert_refused(secretbox_purpose p, const buf *box, const char *ad)
{
    assert_refused_raw(p, box->data, box->len, ad, ad ? strlen(ad) : 0);
}

static void test_known_answer(void **state)
{
    secretbox_init(SECRET_A, NULL);
    uint8_t raw[128];
    size_t n = unit_unhex("9f000102030405060708090a0bc8967a50ea09a3291ad99da27d404e458a1d205bc7"
                          "60880761e22a33479e9510db2ba198c961d3e0542ba9", raw, sizeof raw);
    buf box;
    buf_init(&box, 1024);
    assert_int_equal(buf_append(&box, raw, n), 0);
    const char *want = "-----BEGIN PRIVATE KEY-----";
    assert_opens(SECRETBOX_DKIM_KEY, &box, AD_X, want, strlen(want));
    assert_refused(SECRETBOX_WEBHOOK_SECRET, &box, AD_X);
    /* our own boxes under A carry the same key id byte */
    seal_ok(SECRETBOX_DKIM_KEY, want, strlen(want), AD_X, &box);
    assert_int_equal((uint8_t)box.data[0], 0x9f);
    buf_free(&box);
}

static void test_round_trip(void **state)
{
    secretbox_init(SECRET_A, NULL);
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 4096};
    static const secretbox_purpose ps[] = {SECRETBOX_DKIM_KEY, SECRETBOX_WEBHOOK_SECRET};
    uint8_t *plain = malloc(4096);
    assert_non_null(plain);
    for (size_t i = 0; i < 4096; i++)
        plain[i] = (uint8_t)(i * 7 + 3);
    buf a, b;
    buf_init(&a, 8192);
    buf_init(&b, 8192);
    for (size_t pi = 0; pi < N_ELEMS(ps); pi++) {
        for (size_t si = 0; si < N_ELEMS(sizes); si++) {
            seal_ok(ps[pi], plain, sizes[si], AD_X, &a);
            assert_opens(ps[pi], &a, AD_X, plain, sizes[si]);
            seal_ok(ps[pi], plain, sizes[si], NULL, &b);
            assert_opens(ps[pi], &b, NULL, plain, sizes[si]);
            assert_opens(ps[pi], &b, "", plain, sizes[si]);
            /* fresh nonce each time: same key id, different rest */
            seal_ok(ps[pi], plain, sizes[si], AD_X, &b);
            assert_int_equal(a.data[0], b.data[0]);
            assert_memory_not_equal(a.data + 1, b.data + 1, SECRETBOX_NONCE_LEN);
            /* the ciphertext is not the plaintext */
            if (sizes[si] >= 16)
                assert_memory_not_equal(a.data + 1 + SECRETBOX_NONCE_LEN, plain, sizes[si]);
        }
    }
    /* seal appends to what out already holds */
    buf_reset(&a);
    assert_int_equal(buf_appendz(&a, "prefix"), 0);
    assert_int_equal(secretbox_seal(SECRETBOX_DKIM_KEY, "k", 1, NULL, 0, &a), 0);
    assert_int_equal(a.len, 6 + 1 + SECRETBOX_OVERHEAD);
    assert_memory_equal(a.data, "prefix", 6);
    buf plain_out;
    buf_init(&plain_out, 64);
    assert_int_equal(buf_appendz(&plain_out, "got:"), 0);
    assert_int_equal(secretbox_open(SECRETBOX_DKIM_KEY, a.data + 6, a.len - 6, NULL, 0, &plain_out), 0);
    assert_string_equal(plain_out.data, "got:k");
    buf_free(&plain_out);
    buf_free(&a);
    buf_free(&b);
    free(plain);
}

static void test_every_byte_change(void **state)
{
    secretbox_init(SECRET_A, SECRET_B);
    buf box;
    buf_init(&box, 1024);
    const char *secret = "whsec_0123456789";
    seal_ok(SECRETBOX_WEBHOOK_SECRET, secret, strlen(secret), AD_X, &box);
    assert_opens(SECRETBOX_WEBHOOK_SECRET, &box, AD_X, secret, strlen(secret));
    for (size_t i = 0; i < box.len; i++) {
        char orig = box.data[i];
        for (int x = 1; x < 256; x++) {
            box.data[i] = (char)(orig ^ x);
            assert_refused(SECRETBOX_WEBHOOK_SECRET, &box, AD_X);
        }
        box.data[i] = orig;
    }
    assert_opens(SECRETBOX_WEBHOOK_SECRET, &box, AD_X, secret, strlen(secret));
    for (size_t k = 0; k < box.len; k++)
        assert_refused_raw(SECRETBOX_WEBHOOK_SECRET, box.data, k, AD_X, strlen(AD_X));
    assert_refused_raw(SECRETBOX_WEBHOOK_SECRET, box.data + 1, box.len - 1, AD_X, strlen(AD_X));
    assert_int_equal(buf_append(&box, "\0", 1), 0);
    assert_refused(SECRETBOX_WEBHOOK_SECRET, &box, AD_X);
    /* an empty plaintext box is still authenticated */
    seal_ok(SECRETBOX_WEBHOOK_SECRET, NULL, 0, AD_X, &box);
    assert_opens(SECRETBOX_WEBHOOK_SECRET, &box, AD_X, NULL, 0);
    for (size_t i = 0; i < box.len; i++) {
        box.data[i] ^= 1;
        assert_refused(SECRETBOX_WEBHOOK_SECRET, &box, AD_X);
        box.data[i] ^= 1;
    }
    buf_free(&box);
}

static void test_associated_data_and_purpose(void **state)
{
    secretbox_init(SECRET_A, NULL);
    buf box;
    buf_init(&box, 1024);
    const char *pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI...\n";
    seal_ok(SECRETBOX_DKIM_KEY, pem, strlen(pem), AD_X, &box);
    assert_opens(SECRETBOX_DKIM_KEY, &box, AD_X, pem, strlen(pem));
    assert_refused(SECRETBOX_DKIM_KEY, &box, "acc_Y\nexample.com");    /* another account */
    assert_refused(SECRETBOX_DKIM_KEY, &box, "acc_X\nexample.org");    /* another domain */
    assert_refused(SECRETBOX_DKIM_KEY, &box, "acc_X\nexample.co");
    assert_refused(SECRETBOX_DKIM_KEY, &box, "acc_X\nexample.com\n");
    assert_refused(SECRETBOX_DKIM_KEY, &box, "");
    assert_refused(SECRETBOX_DKIM_KEY, &box, NULL);
    assert_refused(SECRETBOX_WEBHOOK_SECRET, &box, AD_X);               /* another purpose */
    assert_refused((secretbox_purpose)0, &box, AD_X);
    assert_refused((secretbox_purpose)3, &box, AD_X);
    /* and without associated data, any given at open is refused */
    seal_ok(SECRETBOX_DKIM_KEY, pem, strlen(pem), NULL, &box);
    assert_refused(SECRETBOX_DKIM_KEY, &box, AD_X);
    assert_int_equal(secretbox_seal((secretbox_purpose)0, "x", 1, NULL, 0, &box), -1);
    assert_int_equal(secretbox_seal((secretbox_purpose)3, "x", 1, NULL, 0, &box), -1);
    buf_free(&box);
}

static void test_rotation(void **state)
{
    const char *key = "dkim private key bytes";
    size_t n = strlen(key);
    buf old, other, fresh, probe;
    buf_init(&old, 1024);
    buf_init(&other, 1024);
    buf_init(&fresh, 1024);
    buf_init(&probe, 1024);

    secretbox_init(SECRET_A, NULL);
    seal_ok(SECRETBOX_DKIM_KEY, key, n, AD_X, &old);
    secretbox_init(SECRET_C, NULL);
    seal_ok(SECRETBOX_DKIM_KEY, key, n, AD_X, &other);
    secretbox_init(SECRET_B, NULL);
    seal_ok(SECRETBOX_DKIM_KEY, key, n, AD_X, &probe);

    secretbox_init(SECRET_B, SECRET_A);
    assert_opens(SECRETBOX_DKIM_KEY, &old, AD_X, key, n);
    assert_refused(SECRETBOX_DKIM_KEY, &other, AD_X);                  /* unknown secret */
    seal_ok(SECRETBOX_DKIM_KEY, key, n, AD_X, &fresh);
    assert_int_equal(fresh.data[0], probe.data[0]);                    /* sealed under B */
    assert_opens(SECRETBOX_DKIM_KEY, &fresh, AD_X, key, n);

    secretbox_init(SECRET_B, NULL);
    assert_refused(SECRETBOX_DKIM_KEY, &old, AD_X);
    assert_opens(SECRETBOX_DKIM_KEY, &fresh, AD_X, key, n);
    secretbox_init(SECRET_A, SECRET_C);
    assert_refused(SECRETBOX_DKIM_KEY, &fresh, AD_X);
    assert_opens(SECRETBOX_DKIM_KEY, &other, AD_X, key, n);

    /* two secrets whose key id bytes collide both still open */
    uint8_t want[1], id[1];
    crypto_hkdf(SECRET_A, strlen(SECRET_A), "posthorn secretbox key id v1", want, 1);
    char twin[64];
    int found = 0;
    for (int i = 0; i < 100000 && !found; i++) {
        snprintf(twin, sizeof twin, "secretbox-collision-%d-0123456789abcdef", i);
        crypto_hkdf(twin, strlen(twin), "posthorn secretbox key id v1", id, 1);
        found = id[0] == want[0];
    }
    assert_true(found);
    secretbox_init(twin, NULL);
    seal_ok(SECRETBOX_DKIM_KEY, key, n, AD_X, &other);
    assert_int_equal(other.data[0], old.data[0]);
    secretbox_init(SECRET_A, twin);
    assert_opens(SECRETBOX_DKIM_KEY, &old, AD_X, key, n);
    assert_opens(SECRETBOX_DKIM_KEY, &other, AD_X, key, n);
    secretbox_init(twin, SECRET_A);
    assert_opens(SECRETBOX_DKIM_KEY, &old, AD_X, key, n);
    assert_opens(SECRETBOX_DKIM_KEY, &other, AD_X, key, n);

    buf_free(&old);
    buf_free(&other);
    buf_free(&fresh);
    buf_free(&probe);
}

static void test_size_limits(void **state)
{
    secretbox_init(SECRET_A, NULL);
    size_t big = SECRETBOX_PLAIN_MAX + 1;
    uint8_t *plain = calloc(1, big);
    assert_non_null(plain);
    buf box;
    buf_init(&box, big + SECRETBOX_OVERHEAD);
    assert_int_equal(secretbox_seal(SECRETBOX_DKIM_KEY, plain, big, NULL, 0, &box), -1);
    assert_int_equal(box.len, 0);
    assert_int_equal(secretbox_seal(SECRETBOX_DKIM_KEY, plain, big - 1, NULL, 0, &box), 0);
    assert_int_equal(box.len, big - 1 + SECRETBOX_OVERHEAD);
    buf out;
    buf_init(&out, big - 1);
    assert_int_equal(secretbox_open(SECRETBOX_DKIM_KEY, box.data, box.len, NULL, 0, &out), 0);
    assert_int_equal(out.len, big - 1);
    /* plain_out one byte too small: refused, nothing appended */
    buf tight;
    buf_init(&tight, big - 2);
    assert_int_equal(secretbox_open(SECRETBOX_DKIM_KEY, box.data, box.len, NULL, 0, &tight), -1);
    assert_int_equal(tight.len, 0);
    buf_free(&tight);
    buf_free(&out);

    /* out one byte too small for the box: refused, out unchanged */
    buf small;
    buf_init(&small, 10 + SECRETBOX_OVERHEAD - 1);
    assert_int_equal(secretbox_seal(SECRETBOX_DKIM_KEY, plain, 10, NULL, 0, &small), -1);
    assert_int_equal(small.len, 0);
    buf_free(&small);
    buf_init(&small, 10 + SECRETBOX_OVERHEAD);
    assert_int_equal(secretbox_seal(SECRETBOX_DKIM_KEY, plain, 10, NULL, 0, &small), 0);
    buf_free(&small);

    /* associated data bound */
    char *ad = malloc(SECRETBOX_AD_MAX + 1);
    assert_non_null(ad);
    memset(ad, 'a', SECRETBOX_AD_MAX + 1);
    buf_reset(&box);
    assert_int_equal(secretbox_seal(SECRETBOX_DKIM_KEY, "x", 1, ad, SECRETBOX_AD_MAX + 1, &box), -1);
    assert_int_equal(secretbox_seal(SECRETBOX_DKIM_KEY, "x", 1, ad, SECRETBOX_AD_MAX, &box), 0);
    buf pl;
    buf_init(&pl, 16);
    assert_int_equal(secretbox_open(SECRETBOX_DKIM_KEY, box.data, box.len, ad, SECRETBOX_AD_MAX, &pl), 0);
    assert_int_equal(secretbox_open(SECRETBOX_DKIM_KEY, box.data, box.len, ad, SECRETBOX_AD_MAX + 1, &pl), -1);
    assert_string_equal(pl.data, "x");
    buf_free(&pl);
    free(ad);

    /* a box longer than any seal makes is refused without work */
    uint8_t *huge = calloc(1, SECRETBOX_PLAIN_MAX + SECRETBOX_OVERHEAD + 1);
    assert_non_null(huge);
    assert_refused_raw(SECRETBOX_DKIM_KEY, huge, SECRETBOX_PLAIN_MAX + SECRETBOX_OVERHEAD + 1, NULL, 0);
    free(huge);
    buf_free(&box);
    free(plain);
}

/* Failing opens write nothing to stderr (where logs go), so no plaintext can leak there. */
static void test_silent_failure(void **state)
{
    secretbox_init(SECRET_A, NULL);
    buf box;
    buf_init(&box, 1024);
    seal_ok(SECRETBOX_DKIM_KEY, "SECRETPLAINTEXT", 15, AD_X, &box);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    box.data[20] ^= 1;
    buf plain;
    buf_init(&plain, 64);
    int r1 = secretbox_open(SECRETBOX_DKIM_KEY, box.data, box.len, AD_X, strlen(AD_X), &plain);
    box.data[20] ^= 1;
    int r2 = secretbox_open(SECRETBOX_DKIM_KEY, box.data, box.len, "other", 5, &plain);
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    assert_int_equal(r1, -1);
    assert_int_equal(r2, -1);
    assert_int_equal(plain.len, 0);
    assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
    assert_int_equal(ftell(tmp), 0);
    fclose(tmp);
    buf_free(&plain);
    buf_free(&box);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_byte_change),
        cmocka_unit_test(test_associated_data_and_purpose),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_silent_failure),
    };
    return cmocka_run_group_tests_name("secretbox", tests, NULL, NULL);
}
