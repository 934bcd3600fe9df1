/* Logging with nginx/Kong level names, to stderr by default. */
#ifndef STRAIT_ST_LOG_H
#define STRAIT_ST_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum st_log_level {
    ST_LOG_EMERG = 0,
    ST_LOG_ALERT,
    ST_LOG_CRIT,
    ST_LOG_ERR,
    ST_LOG_WARN,
    ST_LOG_NOTICE,
    ST_LOG_INFO,
    ST_LOG_DEBUG,
};

/* Sets the threshold; messages above it are dropped before formatting. */
void st_log_set_level(enum st_log_level level);

/* Parses "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg".
 * Returns 0 and sets *out, or -ST_EPARSE. */
int st_log_level_parse(const char *name, enum st_log_level *out);

bool st_log_enabled(enum st_log_level level);

/* Writes one line "YYYY/MM/DD HH:MM:SS [level] pid#tid: msg[: strerror(err)]" to stderr
 * in a single write(2). err is an errno value (positive or negative) or 0. One call is
 * always one line: control bytes and DEL in the message (a client's %0a in a path, an
 * escape sequence) are written as \xHH (st_log_escape), so no caller has to escape what
 * it got from outside, and nobody can forge a line. */
void st_log(enum st_log_level level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies the NUL-terminated src into dst[size] (size > 0) with every control byte
 * (0x00-0x1f) and DEL (0x7f) written as the four characters \xHH; other bytes, UTF-8
 * included, and backslashes stay as they are. Stops before an escape that would not
 * fit whole; dst is always NUL-terminated. Returns the length written. */
size_t st_log_escape(char *dst, size_t size, const char *src);

#endif
