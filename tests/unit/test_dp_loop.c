/* dp_loop and dp_timer: timers fire in deadline order, a deleted or re-armed timer
 * behaves, deferred work runs once per turn after I/O, and an eventfd wakes the loop.
 * Issue 2, point 5 (the workers' event loop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_loop.h"

static int fired[16];
static int n_fired;

static void
on_timer(struct dp_loop *l, void *arg)
{
    (void)l;
    fired[n_fired++] = (int)(intptr_t)arg;
}

static void
test_timer_order(void **state)
{
    struct dp_loop l;
    struct dp_timer t[6];
    const int64_t when[6] = {50, 10, 40, 20, 60, 30};

    (void)state;
    assert_int_equal(dp_loop_init(&l), 0);
    n_fired = 0;
    l.now = 0;
    for (int i = 0; i < 6; i++) {
        dp_timer_init(&t[i], on_timer, (void *)(intptr_t)i);
        assert_int_equal(dp_timer_set(&l, &t[i], when[i]), 0);
    }
    assert_int_equal(dp_timer_next(&l), 10);
    dp_timer_del(&l, &t[3]);                         /* 20: never fires */
    assert_int_equal(dp_timer_set(&l, &t[4], 5), 0); /* 60 -> 5: first */
    dp_timer_del(&l, &t[3]);                         /* twice: a no-op */
    l.now = 45;
    dp_timer_run(&l);
    assert_int_equal(n_fired, 4);
    assert_int_equal(fired[0], 4);
    assert_int_equal(fired[1], 1);
    assert_int_equal(fired[2], 5);
    assert_int_equal(fired[3], 2);
    assert_int_equal(dp_timer_next(&l), 5);
    l.now = 100;
    dp_timer_run(&l);
    assert_int_equal(n_fired, 5);
    assert_int_equal(fired[4], 0);
    assert_int_equal(dp_timer_next(&l), -1);
    dp_loop_fini(&l);
}

static int io_calls;
static int deferred_calls;

static void
on_io(struct dp_loop *l, int fd, void *arg, uint32_t events)
{
    struct dp_deferred *d = arg;
    uint64_t v;

    (void)events;
    assert_int_equal(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    io_calls++;
    dp_loop_defer(l, d);
    dp_loop_defer(l, d); /* queued once */
}

static void
on_deferred(struct dp_loop *l, void *arg)
{
    (void)l;
    (void)arg;
    assert_int_equal(io_calls, 1); /* after I/O dispatch */
    deferred_calls++;
}

static void
test_io_and_deferred(void **state)
{
    struct dp_loop l;
    struct dp_deferred d;
    struct dp_io io;
    uint64_t one = 1;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(dp_loop_init(&l), 0);
    memset(&d, 0, sizeof(d));
    d.cb = on_deferred;
    io.fd = fd;
    io.cb = on_io;
    io.arg = &d;
    assert_int_equal(dp_loop_io_add(&l, &io, EPOLLIN), 0);
    assert_int_equal(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(dp_loop_run_once(&l, 1000), 0);
    assert_int_equal(io_calls, 1);
    assert_int_equal(deferred_calls, 1);
    assert_int_equal(dp_loop_run_once(&l, 0), 0); /* nothing pending */
    assert_int_equal(deferred_calls, 1);
    dp_loop_io_del(&l, &io);
    close(fd);
    dp_loop_fini(&l);
}

struct resumer {
    struct dp_deferred d;
    int runs;
    int again; /* re-queue itself this many more times */
};

static struct resumer *resumers;
static int resume_order[8];
static int n_resumed;

static void
on_resume(struct dp_loop *l, void *arg)
{
    struct resumer *r = arg;

    r->runs++;
    resume_order[n_resumed++ % 8] = (int)(r - resumers);
    if (r->again > 0) {
        r->again--;
        dp_loop_defer_next(l, &r->d);
    }
}

/* Work queued for the next turn runs there (not in the turn that queued it), oldest
 * first, without waiting in epoll; a re-queue waits one more turn; a cancelled one never
 * runs; queueing twice runs once. */
static void
test_defer_next_turn(void **state)
{
    struct dp_loop l;
    struct resumer r[3];

    (void)state;
    assert_int_equal(dp_loop_init(&l), 0);
    memset(r, 0, sizeof(r));
    resumers = r;
    n_resumed = 0;
    for (int i = 0; i < 3; i++) {
        r[i].d.cb = on_resume;
        r[i].d.arg = &r[i];
    }
    r[0].again = 1;
    dp_loop_defer_next(&l, &r[0].d);
    dp_loop_defer_next(&l, &r[1].d);
    dp_loop_defer_next(&l, &r[2].d);
    dp_loop_defer_next(&l, &r[1].d); /* once */
    dp_loop_cancel(&l, &r[2].d);
    assert_int_equal(r[2].d.queued, DP_DEFER_NONE);
    assert_int_equal(dp_loop_run_once(&l, 5000), 0); /* must not wait 5 s */
    assert_int_equal(r[0].runs, 1);
    assert_int_equal(r[1].runs, 1);
    assert_int_equal(r[2].runs, 0);
    assert_int_equal(n_resumed, 2);
    assert_int_equal(resume_order[0], 0); /* oldest first */
    assert_int_equal(resume_order[1], 1);
    assert_int_equal(dp_loop_run_once(&l, 5000), 0); /* r[0] re-queued itself */
    assert_int_equal(r[0].runs, 2);
    assert_int_equal(r[1].runs, 1);
    assert_null(l.next_turn);
    assert_null(l.this_turn);
    /* cancel also finds a struct queued for the end of the turn */
    dp_loop_defer(&l, &r[2].d);
    dp_loop_cancel(&l, &r[2].d);
    assert_null(l.deferred);
    dp_loop_fini(&l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_io_and_deferred),
        cmocka_unit_test(test_defer_next_turn),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
