/* Unit tests for st_connguard (issue 14, defects 3, 4 and 8): admission up to the limit,
 * displacement of the oldest connection that has not finished its head, refusal when
 * every connection is past its head, the per-address limit (IPv4 and v4-mapped IPv6 are
 * one address), absolute deadlines that trickling bytes cannot extend, lapsed and
 * displaced admissions, the rate-limited log lines with their counts, and the reaper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_connguard.h"
#include "st_log.h"
#include "st_util.h"

#define KILLS_MAX 64

struct kills {
    int n;
    int fd[KILLS_MAX];
    void *owner[KILLS_MAX];
};

static void
on_kill(void *arg, int fd, void *owner)
{
    struct kills *k = arg;

    if (k->n < KILLS_MAX) {
        k->fd[k->n] = fd;
        k->owner[k->n] = owner;
    }
    __atomic_add_fetch(&k->n, 1, __ATOMIC_RELEASE);
}

static struct sockaddr_in
v4(const char *ip, uint16_t port)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin.sin_addr);
    return sin;
}

#define SA(x) ((const struct sockaddr *)&(x))

static struct st_connguard_limits
limits(size_t max, size_t per_ip, int64_t deadline_ms, unsigned flags)
{
    struct st_connguard_limits lim = {
        .name = "test",
        .head = "request head",
        .max = max,
        .max_key = "test_max",
        .max_per_ip = per_ip,
        .per_ip_key = "test_per_ip",
        .deadline_ms = deadline_ms,
        .deadline_key = "test_timeout",
        .flags = flags,
    };
    return lim;
}

/* Admits and claims one connection from ip:port with fd. */
static struct st_connguard_conn *
open_one(struct st_connguard *g, const char *ip, uint16_t port, int fd, int64_t now)
{
    struct sockaddr_in a = v4(ip, port);

    assert_int_equal(st_connguard_admit(g, SA(a), now), ST_CONNGUARD_ADMIT);
    return st_connguard_claim(g, SA(a), fd, (void *)(intptr_t)(fd + 1000), now);
}

static void
test_displaces_oldest_pending(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(3, 0, 10000, 0);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    struct st_connguard_conn *c[4];
    struct st_connguard_stats st;

    (void)state;
    c[0] = open_one(g, "10.0.0.1", 1000, 10, 100);
    c[1] = open_one(g, "10.0.0.1", 1001, 11, 101);
    c[2] = open_one(g, "10.0.0.1", 1002, 12, 102);
    st_connguard_head_done(g, c[0]); /* past its head: never displaced */
    assert_int_equal(k.n, 0);
    c[3] = open_one(g, "10.0.0.2", 1003, 13, 103);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.fd[0], 11); /* the oldest that had not finished its head */
    assert_ptr_equal(k.owner[0], (void *)(intptr_t)1011);
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.displaced, 1);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.active, 1);
    st_connguard_remove(g, c[1]); /* its owner closes it */
    st_connguard_remove(g, c[0]);
    st_connguard_remove(g, c[2]);
    st_connguard_remove(g, c[3]);
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.pending + st.active, 0);
    st_connguard_free(g);
}

static void
test_refuses_when_all_past_head(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(2, 0, 10000, 0);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    struct sockaddr_in a = v4("10.0.0.3", 2000);
    struct st_connguard_conn *c0, *c1;
    struct st_connguard_stats st;

    (void)state;
    c0 = open_one(g, "10.0.0.1", 1000, 10, 0);
    c1 = open_one(g, "10.0.0.2", 1000, 11, 0);
    st_connguard_head_done(g, c0);
    st_connguard_head_done(g, c1);
    assert_int_equal(st_connguard_admit(g, SA(a), 5), ST_CONNGUARD_REFUSE_FULL);
    assert_int_equal(k.n, 0);
    /* kept alive after its answer, c1 waits for a head again: displaceable */
    st_connguard_head_again(g, c1, 6);
    assert_int_equal(st_connguard_admit(g, SA(a), 7), ST_CONNGUARD_ADMIT);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.fd[0], 11);
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.refused_full, 1);
    assert_int_equal(st.displaced, 1);
    st_connguard_free(g); /* frees what is left, calls no kill */
    assert_int_equal(k.n, 1);
}

static void
test_pending_only(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(2, 0, 10000, ST_CONNGUARD_F_PENDING_ONLY);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    struct st_connguard_conn *c;

    (void)state;
    for (int i = 0; i < 10; i++) { /* verified ones are not counted */
        c = open_one(g, "10.0.0.1", (uint16_t)(1000 + i), 10 + i, i);
        st_connguard_head_done(g, c);
    }
    assert_int_equal(k.n, 0);
    open_one(g, "10.0.0.2", 1, 50, 20);
    open_one(g, "10.0.0.2", 2, 51, 21);
    assert_int_equal(k.n, 0);
    open_one(g, "10.0.0.2", 3, 52, 22);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.fd[0], 50);
    st_connguard_free(g);
}

static void
test_per_ip(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(100, 2, 10000, 0);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    struct sockaddr_in a = v4("10.0.0.1", 3000);
    struct sockaddr_in b = v4("10.0.0.2", 3000);
    struct sockaddr_in6 mapped;
    struct st_connguard_conn *c0;
    struct st_connguard_stats st;

    (void)state;
    memset(&mapped, 0, sizeof(mapped));
    mapped.sin6_family = AF_INET6;
    mapped.sin6_port = htons(3001);
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &mapped.sin6_addr);
    c0 = open_one(g, "10.0.0.1", 1, 10, 0);
    st_connguard_head_done(g, c0); /* counted, past its head or not */
    open_one(g, "10.0.0.1", 2, 11, 0);
    assert_int_equal(st_connguard_admit(g, SA(a), 1), ST_CONNGUARD_REFUSE_PER_IP);
    assert_int_equal(st_connguard_admit(g, SA(mapped), 1), ST_CONNGUARD_REFUSE_PER_IP);
    assert_int_equal(st_connguard_admit(g, SA(b), 1), ST_CONNGUARD_ADMIT);
    assert_int_equal(k.n, 0); /* a per-address refusal displaces nobody */
    st_connguard_remove(g, c0);
    assert_int_equal(st_connguard_admit(g, SA(a), 2), ST_CONNGUARD_ADMIT);
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.refused_per_ip, 2);
    st_connguard_free(g);
}

static void
test_deadline_is_absolute(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(10, 0, 1000, 0);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    struct st_connguard_conn *a, *b, *c;
    struct st_connguard_stats st;

    (void)state;
    a = open_one(g, "10.0.0.1", 1, 10, 0);
    b = open_one(g, "10.0.0.1", 2, 11, 300);
    c = open_one(g, "10.0.0.1", 3, 12, 600);
    st_connguard_head_done(g, c);
    assert_int_equal(st_connguard_expire(g, 999), 1000);
    assert_int_equal(k.n, 0);
    assert_int_equal(st_connguard_expire(g, 1000), 1300); /* whatever a sent meanwhile */
    assert_int_equal(k.n, 1);
    assert_int_equal(k.fd[0], 10);
    assert_int_equal(st_connguard_expire(g, 1000), 1300); /* killed once */
    assert_int_equal(k.n, 1);
    st_connguard_head_again(g, c, 1200);
    assert_int_equal(st_connguard_expire(g, 1300), 2200);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.fd[1], 11);
    st_connguard_head_done(g, a); /* too late: a killed connection stays killed */
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.timed_out, 2);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.pending, 1);
    st_connguard_remove(g, a);
    st_connguard_remove(g, b);
    assert_int_equal(st_connguard_expire(g, 2200), INT64_MAX);
    assert_int_equal(k.n, 3);
    st_connguard_remove(g, c);
    st_connguard_free(g);
}

static void
test_admissions_lapse_and_claims(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(1, 0, 1000, 0);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    struct sockaddr_in a = v4("10.0.0.1", 1);
    struct sockaddr_in b = v4("10.0.0.1", 2);
    struct st_connguard_conn *c;
    struct st_connguard_stats st;

    (void)state;
    /* admitted but never claimed (the server failed the connection): it lapses */
    assert_int_equal(st_connguard_admit(g, SA(a), 0), ST_CONNGUARD_ADMIT);
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st_connguard_expire(g, 1000), INT64_MAX);
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.timed_out, 0);
    assert_int_equal(k.n, 0);

    /* displaced between its admission and its claim: killed at the claim */
    assert_int_equal(st_connguard_admit(g, SA(a), 2000), ST_CONNGUARD_ADMIT);
    assert_int_equal(st_connguard_admit(g, SA(b), 2001), ST_CONNGUARD_ADMIT);
    assert_int_equal(k.n, 0);
    c = st_connguard_claim(g, SA(a), 20, NULL, 2002);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.fd[0], 20);
    st_connguard_remove(g, c);

    /* a claim without an admission is known all the same */
    c = st_connguard_claim(g, SA(a), 21, NULL, 2003);
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.pending, 2);
    st_connguard_remove(g, c);
    st_connguard_free(g);
}

/* Runs fn with stderr going to a file; returns what was written (caller frees). */
static char *
capture_log(void (*fn)(struct st_connguard *g), struct st_connguard *g)
{
    char path[] = "/tmp/test_st_connguard.XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    char *buf = st_xcalloc(1, 65536);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    dup2(fd, 2);
    fn(g);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, buf, 65535);
    assert_true(n >= 0);
    close(fd);
    return buf;
}

static void
flood(struct st_connguard *g)
{
    /* 1 place: 1 admitted, then 100 each displacing the previous, in one millisecond */
    for (int i = 0; i < 101; i++) {
        struct sockaddr_in a = v4("10.0.0.9", (uint16_t)(4000 + i));

        st_connguard_admit(g, SA(a), 5000);
        st_connguard_claim(g, SA(a), 100 + i, NULL, 5000);
    }
    /* a second later, one more */
    {
        struct sockaddr_in a = v4("10.0.0.9", 5000);

        st_connguard_admit(g, SA(a), 6000);
    }
}

static int
count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void
test_log_rate_limited(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(1, 0, 10000, 0);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    struct st_connguard_stats st;
    char *out;

    (void)state;
    st_log_set_level(ST_LOG_INFO);
    out = capture_log(flood, g);
    assert_int_equal(k.n, 101);
    assert_int_equal(count(out, "\n"), 2);
    assert_int_equal(count(out, "[warn] "), 2);
    assert_int_equal(count(out, ": test: closed the connection from 10.0.0.9:4000, the "
                                "oldest without a finished request head, to admit a new one: "
                                "1 open (test_max)\n"),
                     1);
    assert_int_equal(count(out, "test: closed the connection from 10.0.0.9:4100, the oldest "
                                "without a finished request head, to admit a new one: 1 open "
                                "(test_max) (and 99 more since the last line)\n"),
                     1);
    st_connguard_get_stats(g, &st);
    assert_int_equal(st.displaced, 101);
    assert_int_equal(st.lines, 2);
    free(out);
    st_connguard_free(g);
}

static void
expire_many(struct st_connguard *g)
{
    for (int i = 0; i < 3; i++) {
        struct sockaddr_in a = v4("10.0.0.8", (uint16_t)(100 + i));

        st_connguard_admit(g, SA(a), 0);
        st_connguard_claim(g, SA(a), 30 + i, NULL, 0);
    }
    (void)st_connguard_expire(g, 2000);
}

static void
test_log_timeout_line(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(10, 0, 2000, 0);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    char *out;

    (void)state;
    st_log_set_level(ST_LOG_INFO);
    out = capture_log(expire_many, g);
    assert_int_equal(k.n, 3);
    assert_int_equal(count(out, "\n"), 1);
    assert_int_equal(count(out, "[info] "), 1);
    assert_int_equal(count(out, ": test: closed the connection from 10.0.0.8:100: no "
                                "finished request head within test_timeout (2 s)\n"),
                     1);
    free(out);
    st_connguard_free(g);
}

static void
test_reaper(void **state)
{
    struct kills k = {0};
    struct st_connguard_limits lim = limits(10, 0, 50, 0);
    struct st_connguard *g = st_connguard_new(&lim, on_kill, &k);
    struct st_connguard_conn *c;
    int64_t end;

    (void)state;
    st_log_set_level(ST_LOG_ERR);
    assert_int_equal(st_connguard_reaper_start(g), 0);
    c = open_one(g, "10.0.0.1", 1, 7, st_mono_ms()); /* the reaper waits without a deadline */
    end = st_mono_ms() + 5000;
    while (__atomic_load_n(&k.n, __ATOMIC_ACQUIRE) == 0 && st_mono_ms() < end) {
        usleep(5000);
    }
    assert_int_equal(__atomic_load_n(&k.n, __ATOMIC_ACQUIRE), 1);
    assert_int_equal(k.fd[0], 7);
    st_connguard_remove(g, c);
    st_connguard_free(g); /* stops the reaper */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_displaces_oldest_pending),
        cmocka_unit_test(test_refuses_when_all_past_head),
        cmocka_unit_test(test_pending_only),
        cmocka_unit_test(test_per_ip),
        cmocka_unit_test(test_deadline_is_absolute),
        cmocka_unit_test(test_admissions_lapse_and_claims),
        cmocka_unit_test(test_log_rate_limited),
        cmocka_unit_test(test_log_timeout_line),
        cmocka_unit_test(test_reaper),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
