/* Unit tests of the in-process token bucket of api/ratelimit.c (ratelimit_local), driven by an
 * explicit clock: burst, refusal with Retry-After, refill, cap, independent keys. Each test
 * uses keys of its own because the bucket table is process-wide. */
#include "tests/unit/unit.h"

#include "api/ratelimit.h"

#define T0 1000000   /* an arbitrary monotonic start, ms */

typedef struct {
    int64_t at_ms;      /* offset from T0 */
    int allowed, remaining, retry_after_s, reset_s;
} step;

/* Times are chosen so every token count is exact in binary floating point. */
static void run_steps(const char *key, int rate, const step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rl_result r;
        memset(&r, 0x5a, sizeof r);
        ratelimit_local(key, rate, T0 + steps[i].at_ms, &r);
        if (r.allowed != steps[i].allowed || r.remaining != steps[i].remaining ||
            r.retry_after_s != steps[i].retry_after_s || r.reset_s != steps[i].reset_s)
            fail_msg("%s step %zu at +%lld ms: allowed %d remaining %d retry %d reset %d, "
                     "want %d %d %d %d", key, i, (long long)steps[i].at_ms, r.allowed,
                     r.remaining, r.retry_after_s, r.reset_s, steps[i].allowed,
                     steps[i].remaining, steps[i].retry_after_s, steps[i].reset_s);
        assert_int_equal(r.limit, rate);
        assert_int_equal(r.via_redis, 0);
    }
}

static void test_burst_then_refuse(void **state)
{
    static const step steps[] = {
        {0, 1, 4, 0, 1}, {0, 1, 3, 0, 1}, {0, 1, 2, 0, 1}, {0, 1, 1, 0, 1}, {0, 1, 0, 0, 1},
        {0, 0, 0, 1, 1},        /* the sixth in the same instant */
        {0, 0, 0, 1, 1},        /* refusals take nothing and stay refused */
    };
    run_steps("test:burst", 5, steps, N_ELEMS(steps));
}

static void test_refill(void **state)
{
    static const step steps[] = {
        /* rate 10/s: drain 10 at +0 */
        {0, 1, 9, 0, 1}, {0, 1, 8, 0, 1}, {0, 1, 7, 0, 1}, {0, 1, 6, 0, 1}, {0, 1, 5, 0, 1},
        {0, 1, 4, 0, 1}, {0, 1, 3, 0, 1}, {0, 1, 2, 0, 1}, {0, 1, 1, 0, 1}, {0, 1, 0, 0, 1},
        {0, 0, 0, 1, 1},
        {50, 0, 0, 1, 1},       /* half a token: not yet */
        {100, 1, 0, 0, 1},      /* a whole one after 100 ms */
        {100, 0, 0, 1, 1},
        {175, 0, 0, 1, 1},      /* 0.75: a fraction is never enough */
        {350, 1, 1, 0, 1},      /* 2.5 tokens: allowed, 1.5 left */
        {350, 1, 0, 0, 1},
        {350, 0, 0, 1, 1},
        /* a long pause refills to the burst and no further */
        {60000, 1, 9, 0, 1},
    };
    run_steps("test:refill", 10, steps, N_ELEMS(steps));
    rl_result r;
    for (int i = 0; i < 9; i++) {
        ratelimit_local("test:refill", 10, T0 + 60000, &r);
        assert_int_equal(r.allowed, 1);
    }
    ratelimit_local("test:refill", 10, T0 + 60000, &r);
    assert_int_equal(r.allowed, 0);
}

/* At one request per second the refused caller is told to wait whole seconds. */
static void test_retry_after(void **state)
{
    static const step steps[] = {
        {0, 1, 0, 0, 1},
        {0, 0, 0, 1, 1},
        {500, 0, 0, 1, 1},      /* half a token: still >= 1 s (rounded up) */
        {1000, 1, 0, 0, 1},
    };
    run_steps("test:retry", 1, steps, N_ELEMS(steps));

    /* rate 1000/s: a refusal still says at least 1 s (Retry-After is whole seconds) */
    rl_result r;
    for (int i = 0; i < 1000; i++) {
        ratelimit_local("test:retry-fast", 1000, T0, &r);
        assert_int_equal(r.allowed, 1);
    }
    ratelimit_local("test:retry-fast", 1000, T0, &r);
    assert_int_equal(r.allowed, 0);
    assert_int_equal(r.retry_after_s, 1);
}

static void test_independent_keys(void **state)
{
    rl_result r;
    for (int i = 0; i < 3; i++)
        ratelimit_local("test:acc_a:key1", 3, T0, &r);
    ratelimit_local("test:acc_a:key1", 3, T0, &r);
    assert_int_equal(r.allowed, 0);
    /* another key, and the same key name under another namespace, are untouched */
    ratelimit_local("test:acc_a:key2", 3, T0, &r);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 2);
    ratelimit_local("test:acc_b:key1", 3, T0, &r);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 2);
    ratelimit_local("test:acc_a:key1", 3, T0, &r);
    assert_int_equal(r.allowed, 0);
}

/* A clock that goes backwards neither refills nor breaks the bucket. */
static void test_clock_backwards(void **state)
{
    static const step steps[] = {
        {5000, 1, 1, 0, 1}, {5000, 1, 0, 0, 1}, {5000, 0, 0, 1, 1},
        {0, 0, 0, 1, 1},
        {5500, 1, 0, 0, 1},     /* 500 ms after the last forward time: one token at 2/s */
    };
    run_steps("test:backwards", 2, steps, N_ELEMS(steps));
}

/* Keys are whatever the caller namespaces them to; a long one must still be limited. */
static void test_long_key(void **state)
{
    char key[128];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    rl_result r;
    ratelimit_local(key, 1, T0, &r);
    assert_int_equal(r.allowed, 1);
    ratelimit_local(key, 1, T0, &r);
    assert_int_equal(r.allowed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refuse),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_independent_keys),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_long_key),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
