/* Unit tests of worker/bqueue.c: FIFO order through the ring's wrap-around, the bound that
 * blocks producers, urgent items that go first and past the bound, and close. */
#include "tests/unit/unit.h"

#include "worker/bqueue.h"

static int vals[64];

static void test_fifo_through_wraparound(void **state)
{
    (void)state;
    bqueue *q = bqueue_new(3);
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 20; round++) {
        int k = 1 + round % 3;
        for (int i = 0; i < k; i++)
            bqueue_push(q, &vals[next_in++ % 64]);
        assert_int_equal(bqueue_len(q), (size_t)k);
        for (int i = 0; i < k; i++)
            assert_ptr_equal(bqueue_pop(q), &vals[next_out++ % 64]);
    }
    assert_null(bqueue_try_pop(q));
    bqueue_free(q);
}

static void test_bound_and_room(void **state)
{
    (void)state;
    bqueue *q = bqueue_new(2);
    assert_int_equal(bqueue_wait_room(q, 0), 1);
    bqueue_push(q, &vals[0]);
    bqueue_push(q, &vals[1]);
    assert_int_equal(bqueue_wait_room(q, 20), 0);   /* full: no room within 20 ms */
    assert_ptr_equal(bqueue_pop(q), &vals[0]);
    assert_int_equal(bqueue_wait_room(q, 0), 1);
    bqueue_free(q);
}

static void test_urgent_first_and_past_the_bound(void **state)
{
    (void)state;
    bqueue *q = bqueue_new(2);
    /* rotate the ring first so the front insert wraps below index 0 */
    bqueue_push(q, &vals[9]);
    assert_ptr_equal(bqueue_pop(q), &vals[9]);
    bqueue_push(q, &vals[0]);
    bqueue_push(q, &vals[1]);                        /* full for ordinary pushes */
    bqueue_push_urgent(q, &vals[10]);                /* does not wait */
    bqueue_push_urgent(q, &vals[11]);
    assert_int_equal(bqueue_len(q), 4);
    assert_int_equal(bqueue_wait_room(q, 0), 0);     /* still no room for bulk */
    assert_ptr_equal(bqueue_pop(q), &vals[11]);      /* the latest urgent one first */
    assert_ptr_equal(bqueue_pop(q), &vals[10]);
    assert_int_equal(bqueue_wait_room(q, 0), 0);     /* two bulk items: still full */
    assert_ptr_equal(bqueue_pop(q), &vals[0]);
    assert_int_equal(bqueue_wait_room(q, 0), 1);
    bqueue_push(q, &vals[2]);
    assert_ptr_equal(bqueue_pop(q), &vals[1]);
    assert_ptr_equal(bqueue_pop(q), &vals[2]);
    assert_null(bqueue_try_pop(q));
    bqueue_free(q);
}

static void test_close_drains_then_null(void **state)
{
    (void)state;
    bqueue *q = bqueue_new(4);
    bqueue_push(q, &vals[0]);
    bqueue_push_urgent(q, &vals[1]);
    bqueue_close(q);
    assert_ptr_equal(bqueue_pop(q), &vals[1]);
    assert_ptr_equal(bqueue_pop(q), &vals[0]);
    assert_null(bqueue_pop(q));
    assert_int_equal(bqueue_wait_room(q, 0), 1);     /* closed: nobody waits */
    bqueue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_through_wraparound),
        cmocka_unit_test(test_bound_and_room),
        cmocka_unit_test(test_urgent_first_and_past_the_bound),
        cmocka_unit_test(test_close_drains_then_null),
    };
    return cmocka_run_group_tests_name("bqueue", tests, NULL, NULL);
}
