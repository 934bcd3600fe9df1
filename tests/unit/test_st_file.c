/* st_file: st_file_read, the one whole-file reader (issue 15: it replaced the slurpers of
 * cp_sync, cp_http, cp_main, dp_sync, dp_tls and dp_cache), its limit counted exactly,
 * and st_file_replace read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_file.h"

static char dir[] = "/tmp/st_file_test.XXXXXX";

static int
setup(void **state)
{
    (void)state;
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_read_limit(void **state)
{
    char path[128];
    char *buf;
    size_t len;

    (void)state;
    snprintf(path, sizeof(path), "%s/ten", dir);
    assert_int_equal(st_file_replace(path,
                                     "0123\0"
                                     "56789",
                                     10, 0600),
                     0);
    assert_int_equal(st_file_read(path, 10, &buf, &len), 0); /* exactly max: read */
    assert_int_equal(len, 10);
    assert_memory_equal(buf,
                        "0123\0"
                        "56789",
                        11);
    free(buf);
    assert_int_equal(st_file_read(path, 9, &buf, &len), -EFBIG);
    assert_null(buf);
    assert_int_equal(len, 10); /* a regular file: its size */
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(st_file_read(path, 10, &buf, &len), -ENOENT);
    assert_null(buf);
    assert_int_equal(st_file_read(dir, 10, &buf, &len), -EISDIR);
}

static void
test_read_empty(void **state)
{
    char path[128];
    char *buf;
    size_t len;

    (void)state;
    snprintf(path, sizeof(path), "%s/empty", dir);
    assert_int_equal(st_file_replace(path, "", 0, 0600), 0);
    assert_int_equal(st_file_read(path, 0, &buf, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    free(buf);
}

struct writer {
    int fd;
    size_t n;
};

static void *
write_main(void *arg)
{
    struct writer *w = arg;
    char chunk[4096];

    memset(chunk, 'p', sizeof(chunk));
    for (size_t left = w->n; left > 0;) {
        size_t k = left < sizeof(chunk) ? left : sizeof(chunk);
        ssize_t n = write(w->fd, chunk, k);

        if (n <= 0) {
            break; /* the reader stopped (EPIPE): it found the limit */
        }
        left -= (size_t)n;
    }
    close(w->fd);
    return NULL;
}

/* A pipe (no size known ahead): the buffer grows past its first allocation. */
static size_t
read_pipe(size_t n, size_t max, int *rc)
{
    int p[2];
    pthread_t t;
    struct writer w;
    char *buf;
    size_t len;

    assert_int_equal(pipe(p), 0);
    w.fd = p[1];
    w.n = n;
    assert_int_equal(pthread_create(&t, NULL, write_main, &w), 0);
    *rc = st_file_read_fd(p[0], max, &buf, &len);
    close(p[0]);
    pthread_join(t, NULL);
    if (*rc == 0) {
        assert_int_equal(buf[len], '\0');
        assert_int_equal(buf[len - 1], 'p');
        free(buf);
    }
    return len;
}

static void
test_read_pipe(void **state)
{
    int rc;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(read_pipe(300000, 300000, &rc), 300000);
    assert_int_equal(rc, 0);
    assert_true(read_pipe(300000, 299999, &rc) >= 300000);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(read_pipe(5, SIZE_MAX, &rc), 5);
    assert_int_equal(rc, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_limit),
        cmocka_unit_test(test_read_empty),
        cmocka_unit_test(test_read_pipe),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
