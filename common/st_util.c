/* Aborting allocators for boot and CP code, time, atomic file replacement, and small
 * helpers. */
#include "st_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void
st_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "strait: assertion failed: %s (%s:%d)\n", cond, file, line);
    abort();
}

static void
oom(size_t n)
{
    fprintf(stderr, "strait: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
st_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *
st_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL) {
        oom(n * size);
    }
    return p;
}

void *
st_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL) {
        oom(n);
    }
    return q;
}

size_t
st_grow(size_t cap, size_t need, size_t max)
{
    size_t n;

    ST_ASSERT(need <= max);
    if (need <= cap) {
        return cap;
    }
    n = cap > max / 2 ? max : cap * 2;
    return n < need ? need : n;
}

char *
st_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = st_xmalloc(n);

    memcpy(p, s, n);
    return p;
}

int
st_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        return -ENOSPC;
    }
    return 0;
}

static int64_t
clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
st_time_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t
st_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

void
st_mono_deadline(int64_t ms, struct timespec *out)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    out->tv_sec += (time_t)(ms / 1000);
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

struct bounded {
    void (*fn)(void *arg);
    void *arg;
};

static void *
bounded_main(void *p)
{
    struct bounded *b = p;

    b->fn(b->arg);
    free(b);
    return NULL;
}

bool
st_run_bounded(void (*fn)(void *arg), void *arg, int ms)
{
    struct bounded *b = st_xmalloc(sizeof(*b));
    struct timespec ts;
    pthread_t t;

    b->fn = fn;
    b->arg = arg;
    if (pthread_create(&t, NULL, bounded_main, b) != 0) {
        bounded_main(b);
        return true;
    }
    clock_gettime(CLOCK_REALTIME, &ts); /* pthread_timedjoin_np's clock */
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(t, NULL, &ts) == 0) {
        return true;
    }
    pthread_detach(t);
    return false;
}

void
st_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
st_file_replace(const char *path, const void *p, size_t len, int mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    char *slash;
    int fd, rc;

    if (st_snprintf(tmp, sizeof(tmp), "%s.tmp", path) != 0 ||
        st_snprintf(dir, sizeof(dir), "%s", path) != 0) {
        return -ENAMETOOLONG;
    }
    /* A stale temporary (a crash between open and rename) is removed, never written
     * through: a symlink planted at its name must not redirect the write, so unlink
     * (which does not follow) and create afresh; O_EXCL|O_NOFOLLOW refuse whatever
     * appears at the name in between. */
    if (unlink(tmp) == -1 && errno != ENOENT) {
        return -errno;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd == -1) {
        return -errno;
    }
    rc = fchmod(fd, (mode_t)mode) == -1 ? -errno : 0; /* whatever the umask said */
    if (rc == 0) {
        rc = write_all(fd, p, len);
    }
    if (rc == 0 && fsync(fd) == -1) {
        rc = -errno;
    }
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) == -1) {
        rc = -errno;
    }
    if (rc < 0) {
        (void)unlink(tmp);
        return rc;
    }
    slash = strrchr(dir, '/');
    if (slash != NULL) {
        *(slash == dir ? slash + 1 : slash) = '\0';
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd != -1) {
        (void)fsync(fd); /* the rename itself */
        close(fd);
    }
    return 0;
}
