/* dp_worker and dp_listener, driven turn by turn on the test's thread: a connection
 * with no configuration is accepted and closed; out of fds, the listener pauses its
 * accepts (instead of spinning on a level-triggered socket) and takes the waiting
 * connection once fds are back. Issue 2, point 5 (workers, listeners). Issue 14: at
 * stream_max_sessions the listener pauses, and resumes when a slot is given back. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_ctx.h"
#include "dp_loop.h"
#include "dp_worker.h"
#include "st_addr.h"
#include "st_conf.h"
#include "st_err.h"

struct rig {
    struct st_listen li;
    struct st_conf conf;
    struct dp_ctx ctx;
    struct dp_worker *w;
    struct sockaddr_in addr; /* where the worker listens */
};

static void
rig_init(struct rig *r)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&r->li.addr;
    socklen_t len = sizeof(r->addr);
    struct st_err err;

    memset(r, 0, sizeof(*r));
    memset(&err, 0, sizeof(err));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->li.addrlen = sizeof(*sin);
    (void)snprintf(r->li.text, sizeof(r->li.text), "127.0.0.1:0");
    r->conf.stream_listen.n = 1;
    r->conf.stream_listen.v = &r->li;
    r->ctx.conf = &r->conf;
    r->w = dp_worker_new(&r->ctx, 0, &err);
    assert_non_null(r->w);
    assert_int_equal(r->w->n_listeners, 1);
    assert_int_equal(getsockname(r->w->listeners[0].io.fd, (struct sockaddr *)&r->addr, &len), 0);
}

static int
client_connect(const struct rig *r)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)&r->addr, sizeof(r->addr)), 0);
    return fd;
}

static uint64_t
accepted(const struct rig *r)
{
    return atomic_load(&r->w->cnt.accepted);
}

/* Runs turns until the worker accepted want_accepted connections, or ~5 s pass. */
static void
run_until(struct rig *r, uint64_t want_accepted)
{
    for (int i = 0; i < 50 && accepted(r) < want_accepted; i++) {
        assert_int_equal(dp_loop_run_once(&r->w->loop, 100), 0);
    }
    assert_int_equal(accepted(r), want_accepted);
}

static void
assert_closed_by_peer(int fd)
{
    struct timeval tv = {.tv_sec = 5};
    char c;

    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(recv(fd, &c, 1, 0), 0);
}

static void
test_no_configuration_closes(void **state)
{
    struct rig r;
    int c;

    (void)state;
    rig_init(&r);
    c = client_connect(&r);
    run_until(&r, 1);
    assert_int_equal(atomic_load(&r.w->cnt.no_route), 1);
    assert_int_equal(atomic_load(&r.w->cnt.active), 0);
    assert_null(r.w->sessions);
    assert_closed_by_peer(c);
    close(c);
    dp_worker_free(r.w);
}

static void
test_out_of_fds_pauses_accepts(void **state)
{
    struct rig r;
    struct rlimit saved, low;
    struct dp_listener *li;
    int c, next_fd;

    (void)state;
    rig_init(&r);
    li = &r.w->listeners[0];
    c = client_connect(&r);
    next_fd = dup(c);
    assert_true(next_fd > c);
    close(next_fd);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = (rlim_t)next_fd; /* no fd numbered next_fd or above */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

    assert_int_equal(dp_loop_run_once(&r.w->loop, 1000), 0);
    assert_int_equal(accepted(&r), 0);
    assert_true(li->resume.idx != 0); /* paused, with a timer to resume */
    assert_true(li->warned_at != 0);
    /* paused: the pending connection no longer wakes the loop (no spinning) */
    assert_int_equal(dp_loop_run_once(&r.w->loop, 0), 0);
    assert_int_equal(accepted(&r), 0);

    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    run_until(&r, 1); /* the timer re-arms the listener, which takes the connection */
    assert_int_equal(li->resume.idx, 0);
    assert_closed_by_peer(c);
    close(c);
    dp_worker_free(r.w);
}

/* Issue 14, defect 7: stream_max_sessions across workers. At the cap (here a slot held
 * by "another worker") the listener is not watched: the waiting connection neither spins
 * the loop nor is accepted. The slot given back elsewhere wakes this worker through its
 * eventfd, and the connection is taken; its session's slot is given back at its end. */
static void
test_cap_pauses_and_resumes(void **state)
{
    struct rig r;
    struct dp_listener *li;
    int c;

    (void)state;
    rig_init(&r);
    li = &r.w->listeners[0];
    r.ctx.workers = &r.w;
    r.ctx.n_workers = 1;
    r.ctx.max_sessions = 1;
    atomic_store(&r.ctx.sessions, 1); /* the one slot, held by another worker's session */
    c = client_connect(&r);

    assert_int_equal(dp_loop_run_once(&r.w->loop, 1000), 0);
    assert_int_equal(accepted(&r), 0);
    assert_true(r.w->cap_paused);
    assert_false(li->watching);
    assert_true(atomic_load(&r.w->cap_wait));
    assert_true(atomic_load(&r.ctx.capped));
    assert_int_equal(atomic_load(&r.ctx.cap_reached), 1);
    assert_int_equal(atomic_load(&r.ctx.sessions), 1); /* the failed reservation given back */
    /* paused: the pending connection no longer wakes the loop */
    assert_int_equal(dp_loop_run_once(&r.w->loop, 0), 0);
    assert_int_equal(accepted(&r), 0);

    dp_worker_session_release(r.w); /* the other session ends */
    assert_false(atomic_load(&r.ctx.capped));
    assert_false(atomic_load(&r.w->cap_wait));
    run_until(&r, 1);         /* woken: watches the listener again, takes the connection */
    assert_closed_by_peer(c); /* no configuration: closed */
    /* holding the one slot, the worker paused again (a second episode); the session's end
     * gives the slot back and the worker listens again */
    for (int i = 0; i < 50 && (r.w->cap_paused || atomic_load(&r.ctx.sessions) != 0); i++) {
        assert_int_equal(dp_loop_run_once(&r.w->loop, 100), 0);
    }
    assert_false(r.w->cap_paused);
    assert_true(li->watching);
    assert_int_equal(atomic_load(&r.ctx.sessions), 0);
    assert_false(atomic_load(&r.ctx.capped));
    assert_int_equal(atomic_load(&r.ctx.cap_reached), 2);
    close(c);
    dp_worker_free(r.w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_configuration_closes),
        cmocka_unit_test(test_out_of_fds_pauses_accepts),
        cmocka_unit_test(test_cap_pauses_and_resumes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
