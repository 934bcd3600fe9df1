/* st_util: st_grow (amortised buffer growth that never passes a limit; issue 14, defect
 * 10), the monotonic deadline helper and st_run_bounded (a call that may hang gets a time
 * limit: in time it is joined, too slow it is left running, detached). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "st_util.h"

static void
test_mono_deadline(void **state)
{
    struct timespec now, d;
    int64_t diff_ms;

    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &now);
    st_mono_deadline(1500, &d);
    diff_ms = (int64_t)(d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
    assert_true(diff_ms >= 1499 && diff_ms <= 1600);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    st_mono_deadline(999, &d); /* carries into seconds whatever the current nanoseconds */
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
}

struct call {
    int sleep_ms;
    atomic_int done;
};

static void
slow(void *arg)
{
    struct call *c = arg;

    usleep((useconds_t)c->sleep_ms * 1000);
    atomic_store(&c->done, 1);
}

static void
test_run_bounded(void **state)
{
    static struct call late = {.sleep_ms = 300}; /* outlives the test: the thread uses it */
    struct call quick = {.sleep_ms = 0};

    (void)state;
    assert_true(st_run_bounded(slow, &quick, 2000));
    assert_int_equal(atomic_load(&quick.done), 1);

    assert_false(st_run_bounded(slow, &late, 50));
    assert_int_equal(atomic_load(&late.done), 0);
    for (int i = 0; i < 100 && atomic_load(&late.done) == 0; i++) {
        usleep(20000);
    }
    assert_int_equal(atomic_load(&late.done), 1); /* left running, it finished on its own */
}

static void
test_grow(void **state)
{
    const size_t max = (16u << 20) + 1;
    size_t cap = 0;
    int steps = 0;

    (void)state;
    assert_int_equal(st_grow(0, 10, 100), 10);
    assert_int_equal(st_grow(10, 10, 100), 10);
    assert_int_equal(st_grow(10, 11, 100), 20);
    assert_int_equal(st_grow(10, 50, 100), 50);
    assert_int_equal(st_grow(60, 61, 100), 100);
    assert_int_equal(st_grow(99, 100, 100), 100);
    /* an admin body arriving 1000 bytes at a time up to the 16 MiB limit: a logarithmic
     * number of reallocations, and never more than the limit (issue 14, defect 10: the
     * body buffer doubled past it, a 16 MiB body could hold 32 MiB) */
    for (size_t len = 0; len + 1000 <= max - 1; len += 1000) {
        size_t next = st_grow(cap, len + 1000 + 1, max);

        steps += next != cap;
        cap = next;
        assert_true(cap <= max);
    }
    assert_true(steps < 40);
    assert_int_equal(st_grow(cap, max, max), max);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono_deadline),
        cmocka_unit_test(test_run_bounded),
        cmocka_unit_test(test_grow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
