/* Unit tests of lib/crypto.c against published vectors (FIPS 180-2 examples, RFC 4231,
 * RFC 4648) and, for HKDF with Posthorn's fixed salt, against values computed independently
 * with Python's hmac module. */
#include "tests/unit/unit.h"

#include "lib/crypto.h"

static void test_sha256_vectors(void **state)
{
    static const struct { const char *in; const char *hex; } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    uint8_t out[SHA256_LEN];
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        crypto_sha256(cases[i].in, strlen(cases[i].in), out);
        unit_assert_hex(out, sizeof out, cases[i].hex);
    }
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    crypto_sha256(a, n, out);
    unit_assert_hex(out, sizeof out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static void test_hmac_rfc4231(void **state)
{
    static const struct { const char *key_hex, *data_hex, *mac_hex; } cases[] = {
        /* test case 1 */
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        /* test case 2: key "Jefe", "what do ya want for nothing?" */
        {"4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        /* test case 3 */
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        uint8_t key[64], data[64], out[SHA256_LEN];
        size_t kl = unit_unhex(cases[i].key_hex, key, sizeof key);
        size_t dl = unit_unhex(cases[i].data_hex, data, sizeof data);
        crypto_hmac_sha256(key, kl, data, dl, out);
        unit_assert_hex(out, sizeof out, cases[i].mac_hex);
    }
    /* test case 6: a key longer than the block size is hashed first */
    uint8_t key[131], out[SHA256_LEN];
    memset(key, 0xaa, sizeof key);
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    crypto_hmac_sha256(key, sizeof key, msg, strlen(msg), out);
    unit_assert_hex(out, sizeof out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* crypto_hkdf is HKDF-SHA256 with salt "posthorn" and the label as info. */
static void test_hkdf(void **state)
{
    const char *ikm = "0123456789abcdef0123456789abcdef";
    uint8_t a[32], b[32], c[32], d[42];
    crypto_hkdf(ikm, strlen(ikm), "posthorn cursor v1", a, sizeof a);
    unit_assert_hex(a, sizeof a, "b79b194ffd7a2aabfe80fe389d460445686d2cd48ddad3cc0d007c838e74e5c9");

    crypto_hkdf(ikm, strlen(ikm), "posthorn cursor v1", b, sizeof b);
    assert_memory_equal(a, b, sizeof a);               /* deterministic */

    crypto_hkdf(ikm, strlen(ikm), "posthorn cursor v2", c, sizeof c);
    assert_memory_not_equal(a, c, sizeof a);           /* labels separate keys */
    crypto_hkdf(ikm, strlen(ikm), "", c, sizeof c);
    assert_memory_not_equal(a, c, sizeof a);
    crypto_hkdf("0123456789abcdef0123456789abcdeF", 32, "posthorn cursor v1", c, sizeof c);
    assert_memory_not_equal(a, c, sizeof a);           /* so do secrets */

    /* Longer output extends, never changes, the first block (T(1) || T(2) ...). */
    memset(d, 0, sizeof d);
    crypto_hkdf(ikm, strlen(ikm), "posthorn cursor v1", d, sizeof d);
    unit_assert_hex(d, sizeof d, "b79b194ffd7a2aabfe80fe389d460445686d2cd48ddad3cc0d007c838e74e5c9ce2101d906c7c059f80c");

    /* Exactly out_len bytes are written. */
    uint8_t e[20];
    memset(e, 0xee, sizeof e);
    crypto_hkdf(ikm, strlen(ikm), "posthorn cursor v1", e, 16);
    assert_memory_equal(e, a, 16);
    for (int i = 16; i < 20; i++)
        assert_int_equal(e[i], 0xee);
}

static void test_equal(void **state)
{
    static const uint8_t x[] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t y[sizeof x];
    memcpy(y, x, sizeof x);
    assert_int_equal(crypto_equal(x, y, sizeof x), 1);
    assert_int_equal(crypto_equal(x, y, 0), 1);
    for (size_t i = 0; i < sizeof x; i++) {
        y[i] ^= 0x80;
        assert_int_equal(crypto_equal(x, y, sizeof x), 0);
        assert_int_equal(crypto_equal(x, y, i), 1);     /* only the prefix compared */
        y[i] ^= 0x80;
    }
}

static void test_hex(void **state)
{
    static const uint8_t in[] = {0x00, 0xff, 0x1a, 0xb2, 0x09};
    char out[2 * sizeof in + 1];
    memset(out, 'x', sizeof out);
    crypto_hex(in, sizeof in, out);
    assert_string_equal(out, "00ff1ab209");
    crypto_hex(in, 0, out);
    assert_string_equal(out, "");
}

static void test_b64url_vectors(void **state)
{
    static const struct { const char *raw; size_t n; const char *enc; } cases[] = {
        /* RFC 4648 section 10, unpadded */
        {"", 0, ""}, {"f", 1, "Zg"}, {"fo", 2, "Zm8"}, {"foo", 3, "Zm9v"},
        {"foob", 4, "Zm9vYg"}, {"fooba", 5, "Zm9vYmE"}, {"foobar", 6, "Zm9vYmFy"},
        /* the two url-safe characters */
        {"\xfb\xff", 2, "-_8"}, {"\xfb\xef\xbe", 3, "----"}, {"\xff\xff\xff", 3, "____"},
        {"\x00", 1, "AA"}, {"\x00\x00\x00", 3, "AAAA"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char enc[16];
        memset(enc, 'x', sizeof enc);
        size_t el = crypto_b64url_encode((const uint8_t *)cases[i].raw, cases[i].n, enc);
        assert_int_equal(el, strlen(cases[i].enc));
        assert_string_equal(enc, cases[i].enc);

        uint8_t dec[16];
        long dl = crypto_b64url_decode(cases[i].enc, strlen(cases[i].enc), dec, cases[i].n);
        assert_int_equal(dl, (long)cases[i].n);           /* out_max exactly the size */
        assert_memory_equal(dec, cases[i].raw, cases[i].n);
        if (cases[i].n > 0)
            assert_int_equal(crypto_b64url_decode(cases[i].enc, strlen(cases[i].enc), dec,
                                                  cases[i].n - 1), -1);
    }
}

static void test_b64url_refusals(void **state)
{
    static const char *const cases[] = {
        "Z",          /* n % 4 == 1 is impossible */
        "Zm9vY",
        "Zg==",       /* padding is not part of the unpadded alphabet */
        "Zg=",
        "Zm8=",
        "Zm9v+g",     /* standard alphabet characters */
        "Zm9v/g",
        "Zm 9v",
        "Zm9v\n",
        "Zm9\x80",
        "Zh",         /* 'h' leaves non-zero trailing bits: a second spelling of "f" */
        "Zv",
        "Zm9",        /* '9' likewise for "fo" (canonical: "Zm8") */
        "Zm_",
        "__",
        "A_",
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        uint8_t out[16];
        long r = crypto_b64url_decode(cases[i], strlen(cases[i]), out, sizeof out);
        if (r != -1)
            fail_msg("\"%s\" decoded to %ld bytes", cases[i], r);
    }
    /* A NUL inside the given length is a bad character, not an end. */
    uint8_t out[16];
    assert_int_equal(crypto_b64url_decode("Zm\0v", 4, out, sizeof out), -1);
    /* Only n bytes are read. */
    assert_int_equal(crypto_b64url_decode("Zm9v!!!", 4, out, sizeof out), 3);
    assert_memory_equal(out, "foo", 3);
}

static void test_b64url_round_trip(void **state)
{
    uint8_t raw[200], dec[200];
    char enc[4 * sizeof raw / 3 + 4];
    for (size_t n = 0; n <= sizeof raw; n++) {
        crypto_random(raw, n);
        size_t el = crypto_b64url_encode(raw, n, enc);
        assert_int_equal(el, (4 * n + 2) / 3);          /* unpadded length */
        assert_int_equal(strlen(enc), el);
        long dl = crypto_b64url_decode(enc, el, dec, n);
        assert_int_equal(dl, (long)n);
        assert_memory_equal(dec, raw, n);
        /* Every encoding uses only the url-safe alphabet. */
        for (size_t k = 0; k < el; k++)
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                                   enc[k]));
    }
}

static void test_random(void **state)
{
    uint8_t a[32], b[32], zero[32] = {0};
    crypto_random(a, sizeof a);
    crypto_random(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hkdf),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_b64url_vectors),
        cmocka_unit_test(test_b64url_refusals),
        cmocka_unit_test(test_b64url_round_trip),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
