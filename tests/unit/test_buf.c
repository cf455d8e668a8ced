/* Unit tests of lib/buf.c: the bound on every append, printf, steal and reset. */
#include "tests/unit/unit.h"

#include "lib/buf.h"

static void assert_buf(const buf *b, const char *want, size_t want_len)
{
    assert_int_equal(b->len, want_len);
    assert_non_null(b->data);
    assert_memory_equal(b->data, want, want_len);
    assert_int_equal(b->data[want_len], '\0');
    assert_true(b->cap >= b->len + 1);
    assert_true(b->cap <= b->max + 1);
}

/* Appends of these sizes into a buffer of this max: the result of each, in order. */
static void test_bounded_appends(void **state)
{
    static const struct {
        size_t max;
        size_t sizes[4];
        int    want[4];
        size_t final_len;
    } cases[] = {
        {10, {10, 0, 1, 0}, {0, 0, -1, 0}, 10},     /* exactly max, then nothing more */
        {10, {11, 0, 0, 0}, {-1, 0, 0, 0}, 0},      /* max+1 in one go */
        {10, {4, 6, 1, 0}, {0, 0, -1, 0}, 10},
        {10, {4, 7, 6, 0}, {0, -1, 0, 0}, 10},      /* a refused append changes nothing */
        {0, {0, 1, 0, 0}, {0, -1, 0, 0}, 0},
        {1000, {300, 300, 400, 1}, {0, 0, 0, -1}, 1000},   /* growth past the first 256 */
        {(size_t)-1 / 4, {300, 1, 0, 0}, {0, 0, 0, 0}, 301},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        buf b;
        buf_init(&b, cases[i].max);
        char want[1024];
        size_t len = 0;
        for (int k = 0; k < 4; k++) {
            size_t n = cases[i].sizes[k];
            char *chunk = malloc(n + 1);
            assert_non_null(chunk);
            memset(chunk, 'a' + k, n);
            int rc = buf_append(&b, chunk, n);
            free(chunk);
            if (rc != cases[i].want[k])
                fail_msg("case %zu append %d of %zu: %d, want %d", i, k, n, rc, cases[i].want[k]);
            if (rc == 0) {
                memset(want + len, 'a' + k, n);
                len += n;
            }
            if (len > 0)
                assert_buf(&b, want, len);
        }
        assert_int_equal(len, cases[i].final_len);
        buf_free(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
    }
}

static void test_appendz_and_reset(void **state)
{
    buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_appendz(&b, "abcd"), 0);
    assert_int_equal(buf_appendz(&b, "efgh"), 0);
    assert_buf(&b, "abcdefgh", 8);
    assert_int_equal(buf_appendz(&b, "i"), -1);
    assert_buf(&b, "abcdefgh", 8);
    assert_int_equal(buf_appendz(&b, ""), 0);
    buf_reset(&b);
    assert_buf(&b, "", 0);
    assert_int_equal(buf_appendz(&b, "xyz"), 0);
    assert_buf(&b, "xyz", 3);
    buf_free(&b);

    buf e;
    buf_init(&e, 8);
    buf_reset(&e);                      /* on a buffer that never allocated */
    assert_null(e.data);
    assert_int_equal(e.len, 0);
    buf_free(&e);
}

static void test_binary_content(void **state)
{
    buf b;
    buf_init(&b, 16);
    static const char bin[] = {'a', '\0', 'b', '\n', '\xff'};
    assert_int_equal(buf_append(&b, bin, sizeof bin), 0);
    assert_buf(&b, bin, sizeof bin);
    buf_free(&b);
}

static void test_printf(void **state)
{
    buf b;
    buf_init(&b, 12);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "ab"), 0);
    assert_buf(&b, "42-ab", 5);
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_buf(&b, "42-ab", 5);
    assert_int_equal(buf_printf(&b, "%07d", 123), 0);       /* exactly to the max */
    assert_buf(&b, "42-ab0000123", 12);
    assert_int_equal(buf_printf(&b, "%c", 'x'), -1);        /* max+1 */
    assert_buf(&b, "42-ab0000123", 12);
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "%s", "0123456789abc"), -1);   /* 13 into 12 */
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_free(&b);

    /* Long output forces growth between the measuring and the writing pass. */
    buf big;
    buf_init(&big, 5000);
    assert_int_equal(buf_printf(&big, "%4000d|", 7), 0);
    assert_int_equal(big.len, 4001);
    assert_int_equal(big.data[3999], '7');
    assert_int_equal(big.data[4000], '|');
    assert_int_equal(big.data[4001], '\0');
    buf_free(&big);
}

static void test_steal(void **state)
{
    buf b;
    buf_init(&b, 100);
    assert_int_equal(buf_appendz(&b, "hello"), 0);
    size_t len = 0;
    char *s = buf_steal(&b, &len);
    assert_non_null(s);
    assert_int_equal(len, 5);
    assert_string_equal(s, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);

    /* The buffer stays usable with the same bound. */
    assert_int_equal(buf_appendz(&b, "again"), 0);
    s = buf_steal(&b, NULL);
    assert_string_equal(s, "again");
    free(s);
    char big[101];
    memset(big, 'x', sizeof big);
    assert_int_equal(buf_append(&b, big, 101), -1);
    assert_int_equal(buf_append(&b, big, 100), 0);
    buf_free(&b);

    /* After a reset, steal gives the empty string. */
    buf_init(&b, 10);
    assert_int_equal(buf_appendz(&b, "abc"), 0);
    buf_reset(&b);
    s = buf_steal(&b, &len);
    assert_int_equal(len, 0);
    assert_string_equal(s, "");
    free(s);
}

/* buf.h promises the content is always NUL-terminated, so stealing a buffer nothing was ever
 * appended to must give "" (callers hand the result on as a C string). */
static void test_steal_never_written(void **state)
{
    buf b;
    buf_init(&b, 10);
    size_t len = 99;
    char *s = buf_steal(&b, &len);
    assert_non_null(s);
    assert_int_equal(len, 0);
    assert_int_equal(s[0], '\0');
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded_appends),
        cmocka_unit_test(test_appendz_and_reset),
        cmocka_unit_test(test_binary_content),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_steal_never_written),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
