/* dp_fwd: one forwarder moves bytes between real loopback TCP sockets by splice, by
 * copy when told to (STRAIT_TEST_NO_SPLICE) and by copy when the kernel refuses to
 * splice (EINVAL); it stops on its per-turn budget and says so; it passes the FIN on
 * only after everything it holds is written; a full destination blocks it and stops
 * reads from the source (backpressure). Issue 2, point 5 (TCP proxying with splice,
 * half-close). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_ctx.h"
#include "dp_fwd.h"
#include "dp_pool.h"

/* A forwarder from `src` to `dst`, with the far ends the test writes to and reads from. */
struct rig {
    int src_peer, src_fd, dst_fd, dst_peer;
    struct dp_sock src, dst;
    struct dp_fwd f;
    struct dp_pipe_pool pipes;
    struct dp_pool bufs;
    struct dp_counters cnt;
    struct dp_fwd_env env;
};

/* A connected loopback TCP pair: *a is the client end, *b the accepted end. */
static void
tcp_pair(int *a, int *b)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(l >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*a >= 0);
    assert_int_equal(connect(*a, (struct sockaddr *)&sin, sizeof(sin)), 0);
    *b = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(*b >= 0);
    close(l);
}

static void
rig_init(struct rig *r, bool no_splice, size_t budget)
{
    memset(r, 0, sizeof(*r));
    tcp_pair(&r->src_peer, &r->src_fd);
    tcp_pair(&r->dst_peer, &r->dst_fd);
    dp_xprt_raw_init(&r->src, r->src_fd);
    dp_xprt_raw_init(&r->dst, r->dst_fd);
    r->src.rd_ready = r->dst.wr_ready = true;
    dp_fwd_init(&r->f, &r->src, &r->dst);
    dp_pipe_pool_init(&r->pipes, 4);
    dp_pool_init(&r->bufs, "buffer", DP_COPY_BUF_SIZE, 4);
    r->env.pipes = &r->pipes;
    r->env.bufs = &r->bufs;
    r->env.cnt = &r->cnt;
    r->env.now = 1000;
    r->env.budget = budget;
    r->env.no_splice = no_splice;
}

static void
rig_fini(struct rig *r)
{
    dp_fwd_fini(&r->f, &r->env);
    dp_pipe_pool_fini(&r->pipes);
    assert_int_equal(r->bufs.used, 0);
    dp_pool_fini(&r->bufs);
    close(r->src_peer);
    close(r->src_fd);
    close(r->dst_fd);
    close(r->dst_peer);
}

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 31 + seed);
    }
}

/* Blocking read of exactly n bytes from fd. */
static void
read_exact(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = recv(fd, p + got, n - got, 0);

        assert_true(k > 0);
        got += (size_t)k;
    }
}

/* True when bytes wait in the forwarder's source socket: epoll would say so (the
 * forwarder may clear rd_ready after a short read, as edge-triggered epoll allows). */
static bool
src_readable(struct rig *r)
{
    struct pollfd p = {.fd = r->src.fd, .events = POLLIN};

    return poll(&p, 1, 0) > 0;
}

/* Sends `n` bytes through the forwarder, running it until the far end got them all:
 * it must stop on the budget (and say so) rather than take everything in one run. */
static void
forward_and_check(struct rig *r, size_t n)
{
    uint8_t *in = malloc(n), *out = malloc(n);
    size_t sent = 0, got = 0;
    int runs = 0, more = 0;

    fill(in, n, 7);
    while (got < n) {
        unsigned flags = 0;

        if (sent < n) {
            ssize_t k = send(r->src_peer, in + sent, n - sent, MSG_DONTWAIT);

            if (k > 0) {
                sent += (size_t)k;
            }
        }
        if (src_readable(r)) {
            r->src.rd_ready = true; /* what an epoll edge would report */
        }
        r->dst.wr_ready = true;
        assert_int_equal(dp_fwd_run(&r->f, &r->env, &flags), 0);
        runs++;
        if (flags & DP_FWD_F_MORE) {
            more++;
            assert_true(r->src.rd_ready); /* left set for the next turn */
        }
        for (;;) {
            ssize_t k = recv(r->dst_peer, out + got, n - got, MSG_DONTWAIT);

            if (k <= 0) {
                break;
            }
            got += (size_t)k;
        }
        assert_true(runs < 100000);
    }
    assert_memory_equal(in, out, n);
    assert_int_equal(r->f.bytes, n);
    if (r->env.budget != 0 && n > 4 * r->env.budget) {
        assert_true(more > 0);
    }
    free(in);
    free(out);
}

static void
test_splice_with_budget(void **state)
{
    struct rig r;
    const size_t n = 1 << 20;

    (void)state;
    rig_init(&r, false, 16384);
    forward_and_check(&r, n);
    /* bulk: after the first full buffer, everything goes through the pipe */
    assert_false(r.f.copy);
    assert_true(r.f.bulk);
    assert_int_equal(atomic_load(&r.cnt.bytes_splice) + atomic_load(&r.cnt.bytes_copy), n);
    assert_true(atomic_load(&r.cnt.bytes_copy) <= 2 * DP_COPY_BUF_SIZE);
    rig_fini(&r);
}

/* Request/response traffic stays on the copy path (no pipe), and an idle direction
 * holds neither a buffer nor a pipe between messages. */
static void
test_small_messages_copy_and_idle_holds_nothing(void **state)
{
    struct rig r;
    uint8_t msg[100], out[100];

    (void)state;
    rig_init(&r, false, 0);
    for (int i = 0; i < 50; i++) {
        unsigned flags = 0;

        fill(msg, sizeof(msg), (uint8_t)i);
        assert_int_equal(send(r.src_peer, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
        r.src.rd_ready = r.dst.wr_ready = true;
        assert_int_equal(dp_fwd_run(&r.f, &r.env, &flags), 0);
        assert_true(flags & DP_FWD_F_PROGRESS);
        read_exact(r.dst_peer, out, sizeof(out));
        assert_memory_equal(msg, out, sizeof(msg));
        /* the short read emptied the socket: no read for EAGAIN was needed */
        assert_false(r.src.rd_ready);
        assert_null(r.f.pipe);
        assert_null(r.f.buf);
        assert_int_equal(r.bufs.used, 0);
    }
    assert_false(r.f.bulk);
    assert_int_equal(atomic_load(&r.cnt.bytes_copy), 50 * sizeof(msg));
    assert_int_equal(atomic_load(&r.cnt.bytes_splice), 0);
    rig_fini(&r);
}

static void
test_no_splice_copies(void **state)
{
    struct rig r;
    const size_t n = 512 * 1024;

    (void)state;
    rig_init(&r, true, 16384);
    forward_and_check(&r, n);
    assert_true(r.f.copy);
    assert_null(r.f.pipe);
    assert_int_equal(atomic_load(&r.cnt.bytes_copy), n);
    assert_int_equal(atomic_load(&r.cnt.bytes_splice), 0);
    rig_fini(&r);
}

/* A "pipe" whose ends are sockets makes splice() fail with EINVAL, as a kernel that
 * cannot splice these fds would: the direction must fall back to copying. */
static void
test_splice_einval_falls_back_to_copy(void **state)
{
    struct rig r;
    struct dp_pipe *fake = calloc(1, sizeof(*fake));
    int sv[2];

    (void)state;
    rig_init(&r, false, 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fake->rfd = sv[0];
    fake->wfd = sv[1];
    dp_pipe_put(&r.pipes, fake);
    forward_and_check(&r, 100000);
    assert_true(r.f.copy);
    assert_int_equal(atomic_load(&r.cnt.bytes_copy), 100000);
    assert_int_equal(r.pipes.n_free, 1); /* the empty "pipe" went back to the pool */
    rig_fini(&r);
}

/* The FIN reaches dst only after every byte before it, and dst then reads EOF. */
static void
test_half_close_after_drain(void **state)
{
    struct rig r;
    uint8_t in[50000], out[50000], extra;
    unsigned flags = 0;
    int runs = 0;

    (void)state;
    rig_init(&r, false, DP_FWD_BUDGET);
    fill(in, sizeof(in), 3);
    assert_int_equal(send(r.src_peer, in, sizeof(in), 0), (ssize_t)sizeof(in));
    assert_int_equal(shutdown(r.src_peer, SHUT_WR), 0);
    while (!r.f.done) {
        r.src.rd_ready = r.dst.wr_ready = true;
        assert_int_equal(dp_fwd_run(&r.f, &r.env, &flags), 0);
        assert_true(++runs < 100000);
    }
    assert_true(r.f.eof);
    assert_true(r.dst.shut_wr);
    read_exact(r.dst_peer, out, sizeof(out));
    assert_memory_equal(in, out, sizeof(in));
    assert_int_equal(recv(r.dst_peer, &extra, 1, 0), 0); /* the FIN */
    rig_fini(&r);
}

/* A destination that reads nothing fills up: the forwarder blocks with bytes held,
 * records since when, reads no more from src, and sends no FIN. */
static void
test_full_destination_blocks(void **state)
{
    struct rig r;
    static uint8_t chunk[65536];
    unsigned flags = 0;
    bool blocked = false;

    (void)state;
    rig_init(&r, false, 0);
    for (int i = 0; i < 400 && !blocked; i++) {
        (void)send(r.src_peer, chunk, sizeof(chunk), MSG_DONTWAIT);
        r.src.rd_ready = true;
        assert_int_equal(dp_fwd_run(&r.f, &r.env, &flags), 0);
        blocked = r.f.blocked_since != 0;
    }
    assert_true(blocked);
    assert_int_equal(r.f.blocked_since, 1000);
    assert_false(r.dst.wr_ready);
    assert_non_null(r.f.pipe);
    assert_true(r.f.pipe->data > 0);
    /* src is not read while dst cannot take more */
    r.src.rd_ready = true;
    assert_int_equal(dp_fwd_run(&r.f, &r.env, &flags), 0);
    assert_true(r.src.rd_ready);
    assert_false(r.dst.shut_wr);
    rig_fini(&r); /* a pipe holding data is closed, not pooled */
    assert_int_equal(r.pipes.n_free, 0);
}

/* A destination that was reset gives an error, not a spin. */
static void
test_reset_destination_fails(void **state)
{
    struct rig r;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    uint8_t buf[4096] = {0};
    unsigned flags = 0;
    int rc = 0;

    (void)state;
    rig_init(&r, false, 0);
    assert_int_equal(setsockopt(r.dst_peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(r.dst_peer);
    r.dst_peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* for rig_fini */
    for (int i = 0; i < 100 && rc == 0; i++) {
        (void)send(r.src_peer, buf, sizeof(buf), MSG_DONTWAIT);
        r.src.rd_ready = r.dst.wr_ready = true;
        rc = dp_fwd_run(&r.f, &r.env, &flags);
    }
    assert_true(rc == -ECONNRESET || rc == -EPIPE);
    rig_fini(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splice_with_budget),
        cmocka_unit_test(test_small_messages_copy_and_idle_holds_nothing),
        cmocka_unit_test(test_no_splice_copies),
        cmocka_unit_test(test_splice_einval_falls_back_to_copy),
        cmocka_unit_test(test_half_close_after_drain),
        cmocka_unit_test(test_full_destination_blocks),
        cmocka_unit_test(test_reset_destination_fails),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
