/* dp_session and the runtime's lifetime, a worker driven turn by turn on the test's
 * thread: once a session proxies, it no longer holds the runtime it was routed with,
 * so a long connection does not keep an old runtime (at 100k routes, hundreds of MB)
 * alive across configuration changes; the session still proxies both ways after that
 * runtime is freed, and logs with the route it kept (a long name: the worker's pool).
 * Issue 7, point 6. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_ctx.h"
#include "dp_loop.h"
#include "dp_runtime.h"
#include "dp_worker.h"
#include "st_conf.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_log.h"
#include "st_schema.h"
#include "st_snapshot.h"

#define SVC "11111111-1111-4111-8111-111111111111"

struct rig {
    struct st_listen li;
    struct st_conf conf;
    struct dp_ctx ctx;
    struct dp_worker *w;
    struct sockaddr_in addr; /* where the worker listens */
    int up_fd;               /* the upstream's listening socket */
    struct sockaddr_in up_addr;
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
    r->conf.preread_timeout = 30000;
    r->ctx.conf = &r->conf;
    r->w = dp_worker_new(&r->ctx, 0, &err);
    assert_non_null(r->w);
    assert_int_equal(getsockname(r->w->listeners[0].io.fd, (struct sockaddr *)&r->addr, &len), 0);
    sin->sin_port = r->addr.sin_port; /* the session's destination (a bound listener) */

    r->up_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(r->up_fd >= 0);
    r->up_addr.sin_family = AF_INET;
    r->up_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->up_fd, (struct sockaddr *)&r->up_addr, sizeof(r->up_addr)), 0);
    assert_int_equal(listen(r->up_fd, 8), 0);
    len = sizeof(r->up_addr);
    assert_int_equal(getsockname(r->up_fd, (struct sockaddr *)&r->up_addr, &len), 0);
}

static json_t *
load(const char *text, enum st_entity_kind k)
{
    json_error_t je;
    json_t *arr = json_loads(text, 0, &je);
    json_t *o;
    size_t i;

    assert_non_null(arr);
    json_array_foreach(arr, i, o)
    {
        json_t *fields = NULL;

        assert_int_equal(st_schema_validate(k, o, &fields), 0);
    }
    return arr;
}

/* A runtime with one route from the worker's port to the upstream. */
static struct dp_runtime *
build(const struct rig *r, uint64_t version, const char *route_name)
{
    char svc[512], route[512], hash[65];
    json_t *lists[ST_ENT__COUNT] = {NULL};
    struct st_snapshot *snap = NULL;
    struct dp_runtime *rt = NULL;
    struct st_err err;
    uint8_t *bytes = NULL;
    size_t len = 0;

    (void)snprintf(svc, sizeof(svc),
                   "[{\"id\":\"" SVC "\",\"name\":\"up\",\"url\":\"tcp://127.0.0.1:%u\","
                   "\"created_at\":1000,\"updated_at\":1000}]",
                   (unsigned)ntohs(r->up_addr.sin_port));
    (void)snprintf(route, sizeof(route),
                   "[{\"id\":\"aaaaaaaa-1111-4111-8111-111111111111\",\"name\":\"%s\","
                   "\"protocols\":[\"tcp\"],\"destinations\":[{\"port\":%u}],"
                   "\"service\":{\"id\":\"" SVC "\"},\"created_at\":1000,\"updated_at\":1000}]",
                   route_name, (unsigned)ntohs(r->addr.sin_port));
    lists[ST_ENT_SERVICE] = load(svc, ST_ENT_SERVICE);
    lists[ST_ENT_ROUTE] = load(route, ST_ENT_ROUTE);
    memset(&err, 0, sizeof(err));
    assert_int_equal(st_snapshot_build(version, lists, &bytes, &len, hash, &err), 0);
    assert_int_equal(st_snapshot_parse(bytes, len, NULL, &snap, &err), 0);
    assert_int_equal(dp_runtime_new(snap, NULL, NULL, &rt, &err), 0);
    free(bytes);
    json_decref(lists[ST_ENT_SERVICE]);
    json_decref(lists[ST_ENT_ROUTE]);
    return rt;
}

static int
client_connect(const struct rig *r)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)&r->addr, sizeof(r->addr)), 0);
    return fd;
}

/* Runs turns until fd has want bytes to read (non-blocking peek), or ~5 s pass. */
static void
run_until_readable(struct rig *r, int fd, size_t want)
{
    char buf[64];
    ssize_t n = 0;

    for (int i = 0; i < 50; i++) {
        n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
        if (n >= (ssize_t)want) {
            return;
        }
        assert_int_equal(dp_loop_run_once(&r->w->loop, 100), 0);
    }
    fail_msg("no %zu bytes to read (last recv: %zd)", want, n);
}

/* Runs turns until the upstream has a connection to accept, or ~5 s pass. */
static int
run_until_upstream_accepts(struct rig *r)
{
    for (int i = 0; i < 50; i++) {
        int fd = accept4(r->up_fd, NULL, NULL, SOCK_CLOEXEC);

        if (fd >= 0) {
            return fd;
        }
        assert_int_equal(errno, EAGAIN);
        assert_int_equal(dp_loop_run_once(&r->w->loop, 100), 0);
    }
    fail_msg("the worker did not connect to the upstream");
    return -1;
}

static void
expect_recv(int fd, const char *want)
{
    char buf[64];
    size_t n = strlen(want);

    assert_int_equal(recv(fd, buf, n, MSG_DONTWAIT), (ssize_t)n);
    assert_memory_equal(buf, want, n);
}

static int saved_stderr = -1;

/* The worker logs to stderr (no logger): sends it to a file until stderr_end (or the
 * teardown, when an assertion failed: cmocka reports on stderr). */
static int
stderr_begin(FILE **f)
{
    int saved = dup(STDERR_FILENO);

    saved_stderr = saved;
    *f = tmpfile();
    assert_non_null(*f);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(*f), STDERR_FILENO) >= 0);
    return saved;
}

static void
stderr_end(int saved, FILE *f, char *text, size_t size)
{
    size_t n;

    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    saved_stderr = -1;
    rewind(f);
    n = fread(text, 1, size - 1, f);
    text[n] = '\0';
    fclose(f);
}

static void
run_session(const char *route_name)
{
    struct rig r;
    struct dp_runtime *old, *cur;
    char log[4096], want[512];
    FILE *f = NULL;
    int c, u, saved;

    st_log_set_level(ST_LOG_INFO);
    saved = stderr_begin(&f);
    rig_init(&r);
    old = build(&r, 1, route_name);
    dp_worker_set_runtime(r.w, dp_runtime_ref(old)); /* the worker's and the test's */
    assert_int_equal(dp_runtime_refs(old), 2);

    c = client_connect(&r);
    assert_int_equal(send(c, "ping", 4, 0), 4);
    u = run_until_upstream_accepts(&r);
    run_until_readable(&r, u, 4);
    expect_recv(u, "ping");
    assert_int_equal(atomic_load(&r.w->cnt.active), 1);
    assert_non_null(r.w->sessions);

    /* Proxying: the session holds no reference, only the worker and the test do. */
    assert_int_equal(dp_runtime_refs(old), 2);

    /* A configuration change: the worker drops the old runtime; the test's reference is
     * the last one, and the old runtime goes while the connection stays open. */
    cur = build(&r, 2, route_name);
    dp_worker_set_runtime(r.w, dp_runtime_ref(cur));
    assert_ptr_equal(dp_worker_runtime(r.w), cur); /* as the worker's loop takes it */
    assert_int_equal(dp_loop_run_once(&r.w->loop, 0), 0);
    assert_int_equal(dp_runtime_refs(old), 1);
    assert_int_equal(dp_runtime_refs(cur), 2);
    dp_runtime_unref(old); /* freed: the session must not touch it (ASan) */

    /* The session goes on both ways, and ends and logs without the runtime. */
    assert_int_equal(send(u, "pong", 4, 0), 4);
    run_until_readable(&r, c, 4);
    expect_recv(c, "pong");
    assert_int_equal(send(c, "more", 4, 0), 4);
    run_until_readable(&r, u, 4);
    expect_recv(u, "more");
    close(c);
    close(u);
    for (int i = 0; i < 50 && r.w->sessions != NULL; i++) {
        assert_int_equal(dp_loop_run_once(&r.w->loop, 100), 0);
    }
    assert_null(r.w->sessions);
    assert_int_equal(atomic_load(&r.w->cnt.active), 0);
    assert_int_equal(dp_runtime_refs(cur), 2); /* the worker's and the test's */

    dp_runtime_unref(cur);
    close(r.up_fd);
    dp_worker_free(r.w);
    stderr_end(saved, f, log, sizeof(log));
    (void)snprintf(want, sizeof(want),
                   ", route aaaaaaaa-1111-4111-8111-111111111111 (%s), upstream 127.0.0.1:%u, "
                   "status 200, bytes_received 8, bytes_sent 4,",
                   route_name, (unsigned)ntohs(r.up_addr.sin_port));
    if (strstr(log, want) == NULL) {
        fail_msg("no session line with \"%s\" in:\n%s", want, log);
    }
}

static int
teardown(void **state)
{
    (void)state;
    if (saved_stderr != -1) {
        (void)dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
    return 0;
}

static void
test_proxying_session_drops_runtime(void **state)
{
    (void)state;
    run_session("short");
}

static void
test_long_route_name_kept(void **state)
{
    (void)state;
    run_session("a-route-name-longer-than-what-a-session-keeps-inline-0123456789-abcdefghij");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_proxying_session_drops_runtime, teardown),
        cmocka_unit_test_teardown(test_long_route_name_kept, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
