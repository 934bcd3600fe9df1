/* cp_store_pool: its size from the configuration, handles handed out once at a time, a
 * get that waits for a put (threads, no timing assertions), the timed get, the close of
 * every handle, and a pool that cannot open because the database is unreachable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "cp_store.h"
#include "cp_store_pool.h"
#include "st_conf.h"
#include "st_err.h"

/* A handle that only counts: in use by how many (0 or 1 when the pool is right), and
 * closes of every handle. */
struct fake {
    struct cp_store base;
    int in_use;
};

static int closed;

static void
fake_close(struct cp_store *s)
{
    __atomic_add_fetch(&closed, 1, __ATOMIC_SEQ_CST);
    free(s);
}

static const struct cp_store_ops fake_ops = {.name = "fake", .close = fake_close};

static struct cp_store_pool *
fake_pool(size_t n, struct cp_store **h)
{
    for (size_t i = 0; i < n; i++) {
        struct fake *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->base.ops = &fake_ops;
        h[i] = &f->base;
    }
    return cp_store_pool_of(h, n);
}

static void
test_n_handles(void **state)
{
    struct cp_store *h[3];
    struct cp_store *got[3];
    struct cp_store_pool *p;

    (void)state;
    closed = 0;
    p = fake_pool(3, h);
    assert_int_equal(cp_store_pool_size(p), 3);
    for (size_t i = 0; i < 3; i++) {
        got[i] = cp_store_pool_get(p);
        assert_non_null(got[i]);
        for (size_t j = 0; j < i; j++) {
            assert_ptr_not_equal(got[i], got[j]);
        }
    }
    /* every handle is one of the pool's */
    for (size_t i = 0; i < 3; i++) {
        assert_true(got[i] == h[0] || got[i] == h[1] || got[i] == h[2]);
    }
    /* all taken: a timed get gives nothing */
    assert_null(cp_store_pool_get_timed(p, 0));
    assert_null(cp_store_pool_get_timed(p, 20));
    /* one back: that one comes out again */
    cp_store_pool_put(p, got[1]);
    assert_ptr_equal(cp_store_pool_get_timed(p, 0), got[1]);
    /* a put of a handle too many is refused (logged), not stored */
    for (size_t i = 0; i < 3; i++) {
        cp_store_pool_put(p, got[i]);
    }
    cp_store_pool_put(p, got[0]);
    for (size_t i = 0; i < 3; i++) {
        got[i] = cp_store_pool_get_timed(p, 0);
        assert_non_null(got[i]);
    }
    assert_null(cp_store_pool_get_timed(p, 0));
    for (size_t i = 0; i < 3; i++) {
        cp_store_pool_put(p, got[i]);
    }
    cp_store_pool_free(p);
    assert_int_equal(closed, 3);
    cp_store_pool_free(NULL);
}

/* get blocks while every handle is out, and wakes up with the one given back. */
struct waiter {
    struct cp_store_pool *p;
    struct cp_store *got;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
};

static void *
waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct cp_store *s;

    pthread_mutex_lock(&w->mu);
    w->started = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    s = cp_store_pool_get(w->p);
    __atomic_store_n(&w->got, s, __ATOMIC_SEQ_CST);
    return NULL;
}

static void
test_get_waits_for_put(void **state)
{
    struct cp_store *h[2];
    struct cp_store *a;
    struct cp_store *b;
    struct waiter w = {0};
    pthread_t t;

    (void)state;
    closed = 0;
    w.p = fake_pool(2, h);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    a = cp_store_pool_get(w.p);
    b = cp_store_pool_get(w.p);
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.started) {
        pthread_cond_wait(&w.cv, &w.mu);
    }
    pthread_mutex_unlock(&w.mu);
    usleep(50000); /* a chance to block inside get; the checks hold either way */
    assert_null(__atomic_load_n(&w.got, __ATOMIC_SEQ_CST));
    cp_store_pool_put(w.p, b);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_ptr_equal(w.got, b); /* the waiter got exactly the handle given back */
    assert_null(cp_store_pool_get_timed(w.p, 0));
    cp_store_pool_put(w.p, a);
    cp_store_pool_put(w.p, w.got);
    cp_store_pool_free(w.p);
    assert_int_equal(closed, 2);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
}

/* Many threads taking and giving back: a handle is never held by two at once, and never
 * more than N are out. */
#define CHURN_THREADS 6
#define CHURN_ROUNDS  500
#define CHURN_N       2

struct churn {
    struct cp_store_pool *p;
    int out;     /* handles out now */
    int max_out; /* the most seen */
    int errors;
};

static void *
churn_main(void *arg)
{
    struct churn *c = arg;

    for (int i = 0; i < CHURN_ROUNDS; i++) {
        struct fake *f = (struct fake *)cp_store_pool_get(c->p);
        int out = __atomic_add_fetch(&c->out, 1, __ATOMIC_SEQ_CST);
        int max = __atomic_load_n(&c->max_out, __ATOMIC_SEQ_CST);

        while (out > max && !__atomic_compare_exchange_n(&c->max_out, &max, out, false,
                                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        }
        if (__atomic_add_fetch(&f->in_use, 1, __ATOMIC_SEQ_CST) != 1) {
            __atomic_add_fetch(&c->errors, 1, __ATOMIC_SEQ_CST);
        }
        if (i % 50 == 0) {
            sched_yield();
        }
        __atomic_sub_fetch(&f->in_use, 1, __ATOMIC_SEQ_CST);
        __atomic_sub_fetch(&c->out, 1, __ATOMIC_SEQ_CST);
        cp_store_pool_put(c->p, &f->base);
    }
    return NULL;
}

static void
test_concurrent_get_put(void **state)
{
    struct cp_store *h[CHURN_N];
    struct churn c = {0};
    pthread_t t[CHURN_THREADS];

    (void)state;
    closed = 0;
    c.p = fake_pool(CHURN_N, h);
    for (int i = 0; i < CHURN_THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, churn_main, &c), 0);
    }
    for (int i = 0; i < CHURN_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    assert_int_equal(c.errors, 0);
    assert_true(c.max_out >= 1 && c.max_out <= CHURN_N);
    /* all back */
    for (int i = 0; i < CHURN_N; i++) {
        assert_non_null(cp_store_pool_get_timed(c.p, 0));
    }
    assert_null(cp_store_pool_get_timed(c.p, 0));
    for (int i = 0; i < CHURN_N; i++) {
        cp_store_pool_put(c.p, h[i]);
    }
    cp_store_pool_free(c.p);
    assert_int_equal(closed, CHURN_N);
}

/* database = sqlite: one handle whatever pg_pool_size says, and a working one. */
static void
test_sqlite_pool(void **state)
{
    struct st_conf conf = {0};
    struct st_err err = {0};
    struct cp_store_pool *p = NULL;
    struct cp_store *s;
    char dir[64];
    char path[128];
    char wal[160];
    uint64_t v = 99;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_cp_store_pool.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/strait.db", dir);
    conf.database = "sqlite";
    conf.sqlite_path = path;
    conf.pg_pool_size = 4;
    assert_int_equal(cp_store_pool_new(&conf, &p, &err), 0);
    assert_non_null(p);
    assert_int_equal(cp_store_pool_size(p), 1);
    s = cp_store_pool_get(p);
    assert_int_equal(cp_store_version(s, &v), 0);
    assert_int_equal(v, 0);
    assert_null(cp_store_pool_get_timed(p, 0));
    cp_store_pool_put(p, s);
    cp_store_pool_free(p);
    unlink(path);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
    assert_int_equal(rmdir(dir), 0);
}

/* A port on loopback where nothing listens. */
static int
closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* database = postgres with no server: the pool does not open (the CP refuses to start). */
static void
test_postgres_unreachable(void **state)
{
    struct st_conf conf = {0};
    struct st_err err = {0};
    struct cp_store_pool *p = (struct cp_store_pool *)&conf; /* must become NULL */
    int rc;

    (void)state;
    conf.database = "postgres";
    conf.pg_host = "127.0.0.1";
    conf.pg_port = closed_port();
    conf.pg_user = "strait";
    conf.pg_password = "strait";
    conf.pg_database = "strait";
    conf.pg_pool_size = 3;
    conf.pg_timeout = 2000;
    rc = cp_store_pool_new(&conf, &p, &err);
    assert_true(rc < 0);
    assert_null(p);
    assert_true(err.msg[0] != '\0');
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_n_handles),
        cmocka_unit_test(test_get_waits_for_put),
        cmocka_unit_test(test_concurrent_get_put),
        cmocka_unit_test(test_sqlite_pool),
        cmocka_unit_test(test_postgres_unreachable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
