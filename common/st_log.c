/* Logging: one line per call, formatted into a stack buffer and written to stderr
 * with one write(2), so lines from threads never interleave. The message's control
 * bytes are escaped here, once for every caller (the DP's log rings drain through
 * st_log too): a record is exactly one line. */
#include "st_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "st_err.h"
#include "st_util.h"

static const char *const level_names[] = {
    [ST_LOG_EMERG] = "emerg", [ST_LOG_ALERT] = "alert", [ST_LOG_CRIT] = "crit",
    [ST_LOG_ERR] = "error",   [ST_LOG_WARN] = "warn",   [ST_LOG_NOTICE] = "notice",
    [ST_LOG_INFO] = "info",   [ST_LOG_DEBUG] = "debug",
};

/* The one process-wide setting; written at start-up, read everywhere. */
static _Atomic int log_threshold = ST_LOG_NOTICE;

void
st_log_set_level(enum st_log_level level)
{
    atomic_store_explicit(&log_threshold, (int)level, memory_order_relaxed);
}

int
st_log_level_parse(const char *name, enum st_log_level *out)
{
    for (size_t i = 0; i < ST_ARRAY_SIZE(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum st_log_level)i;
            return 0;
        }
    }
    return -ST_EPARSE;
}

bool
st_log_enabled(enum st_log_level level)
{
    return (int)level <= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

size_t
st_log_escape(char *dst, size_t size, const char *src)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            if (n + 1 >= size) {
                break;
            }
            dst[n++] = (char)*p;
            continue;
        }
        if (n + 4 >= size) {
            break;
        }
        n += (size_t)snprintf(dst + n, size - n, "\\x%02x", *p);
    }
    dst[n] = '\0';
    return n;
}

void
st_log(enum st_log_level level, int err, const char *fmt, ...)
{
    char line[2048];
    char msg[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    size_t n;
    int rc;

    if (!st_log_enabled(level)) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm);
    rc = snprintf(line + n, sizeof(line) - n, " [%s] %d#%ld: ", level_names[level], (int)getpid(),
                  (long)syscall(SYS_gettid));
    if (rc > 0) {
        n += (size_t)rc;
    }
    /* formatted apart, then escaped into the line: what a client sent (a path, a
     * header, a name) must never start a line of its own */
    va_start(ap, fmt);
    rc = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (rc < 0) {
        msg[0] = '\0';
    }
    /* room for the newline is kept: a cut message still ends its line */
    n += st_log_escape(line + n, sizeof(line) - n - 1, msg);
    if (err != 0) {
        msg[0] = ':';
        msg[1] = ' ';
        (void)st_snprintf(msg + 2, sizeof(msg) - 2, "%s", st_strerror(err)); /* cut: fine */
        n += st_log_escape(line + n, sizeof(line) - n - 1, msg);
    }
    line[n++] = '\n';
    /* Best effort: a log line that cannot be written has nowhere else to go. */
    (void)!write(STDERR_FILENO, line, n);
}
