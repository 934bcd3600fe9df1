/* dp_log: a worker's log ring keeps lines in order with their level and error, cuts a
 * long line, drops and counts lines when full (never blocks), and the logger thread
 * writes every line and the drop count out, the last ones at stop, one line per record
 * whatever it holds. DESIGN.md "Data plane" (logs from workers go through a per-worker
 * ring); issue 2, point 5; issue 14, defect 9. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_log.h"
#include "st_err.h"
#include "st_log.h"

static void
test_ring_order_and_fields(void **state)
{
    struct dp_log_ring *r = dp_log_ring_new();
    char text[DP_LOG_LINE], big[DP_LOG_LINE * 2];
    enum st_log_level level;
    int err;

    (void)state;
    assert_non_null(r);
    assert_false(dp_log_ring_pop(r, &level, &err, text));
    dp_log(r, ST_LOG_NOTICE, 0, "first %d", 1);
    dp_log(r, ST_LOG_ERR, 104, "second %s", "line");
    dp_log(r, ST_LOG_DEBUG, 0, "below the threshold: never stored");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    dp_log(r, ST_LOG_WARN, 0, "%s", big);
    assert_true(dp_log_ring_pop(r, &level, &err, text));
    assert_int_equal(level, ST_LOG_NOTICE);
    assert_int_equal(err, 0);
    assert_string_equal(text, "first 1");
    assert_true(dp_log_ring_pop(r, &level, &err, text));
    assert_int_equal(level, ST_LOG_ERR);
    assert_int_equal(err, 104);
    assert_string_equal(text, "second line");
    assert_true(dp_log_ring_pop(r, &level, &err, text));
    assert_int_equal(strlen(text), DP_LOG_LINE - 1); /* cut, still terminated */
    assert_false(dp_log_ring_pop(r, &level, &err, text));
    assert_int_equal(dp_log_ring_dropped(r), 0);
    dp_log_ring_free(r);
}

static void
test_ring_full_drops_and_counts(void **state)
{
    struct dp_log_ring *r = dp_log_ring_new();
    char text[DP_LOG_LINE], want[32];
    enum st_log_level level;
    int err;

    (void)state;
    for (int i = 0; i < DP_LOG_SLOTS + 5; i++) {
        dp_log(r, ST_LOG_NOTICE, 0, "line %d", i);
    }
    assert_int_equal(dp_log_ring_dropped(r), 5);
    for (int i = 0; i < DP_LOG_SLOTS; i++) {
        assert_true(dp_log_ring_pop(r, &level, &err, text));
        (void)snprintf(want, sizeof(want), "line %d", i); /* the oldest are kept */
        assert_string_equal(text, want);
    }
    assert_false(dp_log_ring_pop(r, &level, &err, text));
    dp_log(r, ST_LOG_NOTICE, 0, "room again");
    assert_true(dp_log_ring_pop(r, &level, &err, text));
    assert_string_equal(text, "room again");
    dp_log_ring_free(r);
}

/* Runs the logger with stderr sent to a file; returns what it wrote (caller frees).
 * Worker 1 logs one line with `extra` in it. */
static char *
logger_output(int overflow, const char *extra)
{
    struct st_err e;
    struct dp_logger *lg;
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    char *out = calloc(1, 1 << 20);
    size_t n;

    assert_non_null(f);
    assert_true(saved >= 0);
    memset(&e, 0, sizeof(e));
    assert_int_equal(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
    lg = dp_logger_new(2, &e);
    assert_non_null(lg);
    assert_null(dp_logger_ring(lg, 2));
    dp_log(dp_logger_ring(lg, 1), ST_LOG_ERR, 2, "from worker %d%s", 1, extra);
    for (int i = 0; i < overflow; i++) {
        dp_log(dp_logger_ring(lg, 0), ST_LOG_NOTICE, 0, "burst %d", i);
    }
    dp_logger_free(lg);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    rewind(f);
    n = fread(out, 1, (1 << 20) - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static void
test_logger_writes_everything_at_stop(void **state)
{
    char *out = logger_output(3, "");

    (void)state;
    assert_non_null(strstr(out, "[error]"));
    assert_non_null(strstr(out, "from worker 1: No such file or directory\n"));
    assert_non_null(strstr(out, "[notice]"));
    assert_non_null(strstr(out, "burst 0\n"));
    assert_non_null(strstr(out, "burst 2\n"));
    assert_null(strstr(out, "dropped"));
    free(out);
}

static void
test_logger_reports_drops(void **state)
{
    /* Far more than a ring holds, faster than a thread polling every 100 ms drains:
     * whatever was dropped is reported, and the lines written plus the drops add up. */
    const int total = 20 * DP_LOG_SLOTS;
    char *out = logger_output(total, "");
    const char *p = out;
    unsigned long long dropped = 0;
    int lines = 0;

    (void)state;
    while ((p = strstr(p, "burst ")) != NULL) {
        lines++;
        p++;
    }
    for (p = out; (p = strstr(p, "worker 0: ")) != NULL; p++) {
        dropped += strtoull(p + strlen("worker 0: "), NULL, 10);
    }
    assert_int_equal((unsigned long long)lines + dropped, (unsigned long long)total);
    free(out);
}

static void
test_logger_one_line_per_record(void **state)
{
    /* what a worker logs from a client (a name, a reason) cannot start a line: the
     * logger writes through st_log, which escapes control bytes (issue 14, defect 9) */
    char *out = logger_output(0, " sni a\n2024/01/01 00:00:00 [emerg] 1#1: forged\r\x1b");
    const char *p;
    int lines = 0;

    (void)state;
    for (p = out; *p != '\0'; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, 1);
    assert_non_null(strstr(out, "from worker 1 sni a\\x0a2024/01/01 00:00:00 [emerg] 1#1: "
                                "forged\\x0d\\x1b: No such file or directory\n"));
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_order_and_fields),
        cmocka_unit_test(test_ring_full_drops_and_counts),
        cmocka_unit_test(test_logger_writes_everything_at_stop),
        cmocka_unit_test(test_logger_reports_drops),
        cmocka_unit_test(test_logger_one_line_per_record),
    };

    st_log_set_level(ST_LOG_NOTICE);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
