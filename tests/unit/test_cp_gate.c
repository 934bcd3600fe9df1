/* Unit tests for cp_gate (issue 14, defect 3), the relay in front of the sync server:
 * 8 MiB each way through it with a backend that echoes, so that both directions fill
 * their buffers and wait for each other; the end of one side passed on as a half-close;
 * the backend's view of the relay (its peer port) mapped back to the client's address
 * while it is open, and forgotten once both ends are passed on;
 * the oldest connection still in its handshake displaced beyond cluster_max_pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cp_gate.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"

#define TRANSFER (8u << 20)

struct backend {
    int lfd;
    uint16_t port;
    pthread_t t;
    uint16_t peer_ports[8]; /* of the connections accepted, in order */
    int n;
    int hold; /* accept this many and keep them, silent, instead of echoing one */
    int fds[8];
};

static uint16_t
bound_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static int
listen_any(void)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static void
accept_one(struct backend *b)
{
    struct sockaddr_in peer;
    socklen_t len = sizeof(peer);
    int fd = accept(b->lfd, (struct sockaddr *)&peer, &len);

    assert_true(fd >= 0);
    b->peer_ports[b->n] = ntohs(peer.sin_port);
    b->fds[b->n++] = fd;
}

/* Echoes one connection until its end, then ends its own side. */
static void *
backend_main(void *arg)
{
    struct backend *b = arg;
    static char buf[65536];
    ssize_t n;

    if (b->hold > 0) {
        while (b->n < b->hold) {
            accept_one(b);
        }
        return NULL;
    }
    accept_one(b);
    while ((n = read(b->fds[0], buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(b->fds[0], buf + off, (size_t)(n - off));

            assert_true(w > 0);
            off += w;
        }
    }
    shutdown(b->fds[0], SHUT_WR);
    return NULL;
}

static struct cp_gate *
gate_start(struct st_conf *conf, struct backend *b, const char *max_pending, uint16_t *port)
{
    int probe = listen_any();
    char listen[64];
    struct st_err err = {0};
    struct cp_gate *g = NULL;

    *port = bound_port(probe); /* free a moment ago */
    close(probe);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", *port);
    setenv("STRAIT_CLUSTER_LISTEN", listen, 1);
    setenv("STRAIT_CLUSTER_MTLS", "off", 1);
    setenv("STRAIT_CLUSTER_MAX_PENDING", max_pending, 1);
    setenv("STRAIT_CLUSTER_HANDSHAKE_TIMEOUT", "60", 1);
    memset(conf, 0, sizeof(*conf));
    assert_int_equal(st_conf_load(conf, NULL, "/tmp", ST_PLANE_CP, &err), 0);
    b->lfd = listen_any();
    b->port = bound_port(b->lfd);
    assert_int_equal(cp_gate_start(conf, b->port, &g, &err), 0);
    assert_int_equal(pthread_create(&b->t, NULL, backend_main, b), 0);
    return g;
}

static int
connect_to(uint16_t port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static uint8_t
pattern(size_t i)
{
    return (uint8_t)(i * 7 + (i >> 13));
}

struct sender {
    int fd;
};

static void *
send_main(void *arg)
{
    struct sender *s = arg;
    static uint8_t buf[65536];

    for (size_t sent = 0; sent < TRANSFER;) {
        size_t n = TRANSFER - sent < sizeof(buf) ? TRANSFER - sent : sizeof(buf);
        ssize_t w;

        for (size_t i = 0; i < n; i++) {
            buf[i] = pattern(sent + i);
        }
        w = write(s->fd, buf, n);
        assert_true(w > 0);
        sent += (size_t)w; /* a short write: the next round starts from there */
    }
    shutdown(s->fd, SHUT_WR);
    return NULL;
}

static void
test_relays_both_ways_with_half_close(void **state)
{
    struct st_conf conf;
    struct backend b = {0};
    struct sender s;
    pthread_t t;
    uint16_t port;
    struct cp_gate *g;
    static uint8_t buf[65536];
    size_t got = 0;
    ssize_t n;
    struct sockaddr_storage peer;

    (void)state;
    g = gate_start(&conf, &b, "4", &port);
    s.fd = connect_to(port);
    assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
    while ((n = read(s.fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != pattern(got + (size_t)i)) {
                fail_msg("byte %zu differs", got + (size_t)i);
            }
        }
        got += (size_t)n;
    }
    assert_int_equal(n, 0); /* the backend's end came through */
    assert_int_equal(got, TRANSFER);
    pthread_join(t, NULL);
    pthread_join(b.t, NULL);

    /* both ends passed on: the relay goes (the gate's thread frees it just after it
     * passed the last end on, so wait for it, within a bound) */
    for (int i = 0; i < 500 && cp_gate_peer(g, b.peer_ports[0], &peer); i++) {
        poll(NULL, 0, 10);
    }
    assert_false(cp_gate_peer(g, b.peer_ports[0], &peer));
    assert_false(cp_gate_verified(g, b.peer_ports[0]));
    close(s.fd);
    close(b.fds[0]);
    close(b.lfd);
    cp_gate_stop(g);
    cp_gate_free(g);
    st_conf_fini(&conf);
}

static bool
closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;

    return poll(&p, 1, ms) == 1 && read(fd, &c, 1) <= 0;
}

static void
test_displaces_the_oldest_pending(void **state)
{
    struct st_conf conf;
    struct backend b = {.hold = 3};
    uint16_t port;
    struct cp_gate *g;
    int fd[3];
    struct sockaddr_storage peer;
    struct sockaddr_in self;
    socklen_t len = sizeof(self);

    (void)state;
    st_log_set_level(ST_LOG_ERR);
    g = gate_start(&conf, &b, "2", &port);
    fd[0] = connect_to(port);
    fd[1] = connect_to(port);
    assert_false(closed_within(fd[0], 200));
    fd[2] = connect_to(port);
    assert_true(closed_within(fd[0], 5000));
    assert_false(closed_within(fd[1], 200));
    assert_false(closed_within(fd[2], 0));
    pthread_join(b.t, NULL); /* every relay reached the backend */
    /* the backend sees the relay's port: it maps back to the client's own address */
    assert_true(cp_gate_peer(g, b.peer_ports[1], &peer));
    assert_int_equal(getsockname(fd[1], (struct sockaddr *)&self, &len), 0);
    assert_int_equal(peer.ss_family, AF_INET);
    assert_int_equal(((struct sockaddr_in *)&peer)->sin_port, self.sin_port);
    assert_false(cp_gate_peer(g, b.port, &peer)); /* not a relay's port */
    /* verified, the second no longer counts: a fourth displaces nobody */
    assert_true(cp_gate_verified(g, b.peer_ports[1]));
    {
        int f3 = connect_to(port);

        assert_false(closed_within(f3, 300));
        assert_false(closed_within(fd[1], 0));
        assert_false(closed_within(fd[2], 0));
        close(f3);
    }
    for (int i = 0; i < 3; i++) {
        close(fd[i]);
        close(b.fds[i]);
    }
    close(b.lfd);
    cp_gate_stop(g);
    cp_gate_free(g);
    st_conf_fini(&conf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relays_both_ways_with_half_close),
        cmocka_unit_test(test_displaces_the_oldest_pending),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
