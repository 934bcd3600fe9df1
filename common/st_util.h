/* Allocation that aborts on failure (boot, config and CP code only; the DP
 * hot path checks its allocations), and small string helpers. */
#ifndef STRAIT_ST_UTIL_H
#define STRAIT_ST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Always-on cheap invariant check; never use on external input. */
#define ST_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            st_assert_fail(#cond, __FILE__, __LINE__);                                             \
        }                                                                                          \
    } while (0)

void st_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

/* Abort with the size on failure. Results are freed with free(). */
void *st_xmalloc(size_t n);
void *st_xcalloc(size_t n, size_t size);
void *st_xrealloc(void *p, size_t n);
char *st_xstrdup(const char *s);
char *st_xstrndup(const char *s, size_t n); /* the n bytes of s and a NUL */

/* The capacity a buffer of cap units grows to so that it holds need (<= max) units: at
 * least twice cap, so that growing one unit at a time stays amortised O(1), and never
 * more than max, so that a buffer bounded by a limit never allocates beyond it. cap when
 * it already holds need. */
size_t st_grow(size_t cap, size_t need, size_t max);

/* snprintf that reports truncation: returns 0, or -ENOSPC if the output was cut. */
int st_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Milliseconds: wall clock (for created_at) and monotonic (for timeouts). */
int64_t st_time_ms(void);
int64_t st_mono_ms(void);

/* *out = the monotonic clock now + ms (>= 0): the deadline for pthread_cond_timedwait on a
 * condition variable whose clock is CLOCK_MONOTONIC (pthread_condattr_setclock). */
struct timespec;
void st_mono_deadline(int64_t ms, struct timespec *out);

/* Runs fn(arg) on a new thread and waits at most ms for it (fn(arg) runs here when no
 * thread can be made). Returns true when fn returned in time, false when it is still
 * running: the thread is then detached and fn keeps arg. For calls into libraries that
 * can hang on shutdown (nng 1.5.2's close), so that a process that is stopping does not. */
bool st_run_bounded(void (*fn)(void *arg), void *arg, int ms);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void st_hex(const uint8_t *p, size_t n, char *out);

#endif
