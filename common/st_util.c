/* Aborting allocators for boot and CP code, time, and small helpers. */
#include "st_util.h"

#include <errno.h>
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
st_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}
