/* st_util: the monotonic deadline helper and st_run_bounded (a call that may hang gets a
 * time limit: in time it is joined, too slow it is left running, detached). */
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono_deadline),
        cmocka_unit_test(test_run_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
