/* dp_ctx (issue 14, defect 7): stream_max_sessions = auto is (nofile - reserve) / 2, the
 * reserve holding the status listener's connections and sockets, a fixed part for the
 * cluster link, logs, the cache and TLS/DNS work, and each worker's descriptors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "dp_ctx.h"
#include "st_addr.h"
#include "st_conf.h"

static void
conf_init(struct st_conf *c, struct st_listen *status, size_t n_status, size_t n_stream)
{
    memset(c, 0, sizeof(*c));
    c->status_max_connections = 64;
    c->status_listen.n = n_status;
    c->status_listen.v = status;
    c->stream_listen.n = n_stream;
    c->stream_listen.v = status; /* only the count matters */
}

static void
test_auto_derivation(void **state)
{
    struct st_listen li[3];
    struct st_conf c;
    int64_t reserve;

    (void)state;
    memset(li, 0, sizeof(li));
    conf_init(&c, li, 1, 1);
    /* 1 worker: 64 base + 64 status connections + 3 for the status listener + 1 x (2 + 1) */
    reserve = DP_FD_RESERVE_BASE + 64 + DP_FD_PER_STATUS_LISTEN + 3;
    assert_int_equal(reserve, 134);
    assert_int_equal(dp_ctx_max_sessions_auto(2048, &c, 1), (2048 - reserve) / 2);
    assert_int_equal(dp_ctx_max_sessions_auto(2048, &c, 1), 957);
    assert_int_equal(dp_ctx_max_sessions_auto(1048576, &c, 1), (1048576 - reserve) / 2);

    /* every worker has its epoll, its eventfd and a socket per stream_listen entry */
    conf_init(&c, li, 1, 3);
    assert_int_equal(dp_ctx_max_sessions_auto(10000, &c, 4), (10000 - (64 + 64 + 3 + 4 * 5)) / 2);

    /* status_max_connections and each status_listen entry count; no status listener: none */
    conf_init(&c, li, 2, 1);
    c.status_max_connections = 500;
    assert_int_equal(dp_ctx_max_sessions_auto(10000, &c, 1), (10000 - (64 + 500 + 6 + 3)) / 2);
    conf_init(&c, li, 0, 1);
    assert_int_equal(dp_ctx_max_sessions_auto(10000, &c, 1), (10000 - (64 + 3)) / 2);
}

static void
test_auto_bounds(void **state)
{
    struct st_listen li[1];
    struct st_conf c;

    (void)state;
    memset(li, 0, sizeof(li));
    conf_init(&c, li, 1, 1);
    /* a limit below the reserve still lets one session through */
    assert_int_equal(dp_ctx_max_sessions_auto(100, &c, 1), 1);
    assert_int_equal(dp_ctx_max_sessions_auto(0, &c, 1), 1);
    /* an unlimited descriptor limit: the key's maximum */
    assert_int_equal(dp_ctx_max_sessions_auto(UINT64_MAX, &c, 1), 2147483647);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_derivation),
        cmocka_unit_test(test_auto_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
