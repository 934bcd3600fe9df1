/* Aborting allocators for boot and CP code, time, and small helpers. */
#include "st_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    return st_xstrndup(s, strlen(s));
}

char *
st_xstrndup(const char *s, size_t n)
{
    char *p = st_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
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

/* Clock id now + ms (>= 0). */
static void
deadline_on(clockid_t id, int64_t ms, struct timespec *out)
{
    clock_gettime(id, out);
    out->tv_sec += (time_t)(ms / 1000);
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

void
st_mono_deadline(int64_t ms, struct timespec *out)
{
    deadline_on(CLOCK_MONOTONIC, ms, out);
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
    deadline_on(CLOCK_REALTIME, ms, &ts); /* pthread_timedjoin_np's clock */
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
