/* st_log: one call writes exactly one line whatever the message holds. Control bytes
 * and DEL (a client's %0a in a path, an escape sequence) come out as \xHH, so nothing
 * logged can forge a line; issue 14, defect 9. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "st_log.h"

static void
check_escape(const char *src, size_t size, const char *want)
{
    char dst[256];

    assert_true(size <= sizeof(dst));
    memset(dst, '#', sizeof(dst));
    assert_int_equal(st_log_escape(dst, size, src), strlen(want));
    assert_string_equal(dst, want);
}

static void
test_escape(void **state)
{
    (void)state;
    check_escape("plain text, [brackets] and \\backslash", 256,
                 "plain text, [brackets] and \\backslash");
    check_escape("GET /x\n2024/01/01 00:00:00 [emerg] 1#1: admin_token accepted", 256,
                 "GET /x\\x0a2024/01/01 00:00:00 [emerg] 1#1: admin_token accepted");
    check_escape("a\r\nb\tc\x1b[31md\x7f\x01", 256, "a\\x0d\\x0ab\\x09c\\x1b[31md\\x7f\\x01");
    /* UTF-8 and other high bytes are not control bytes */
    check_escape("caf\xc3\xa9 \xff", 256, "caf\xc3\xa9 \xff");
    check_escape("", 1, "");
    /* a cut never splits an escape, and always terminates */
    check_escape("ab\ncd", 3, "ab");
    check_escape("ab\ncd", 6, "ab");
    check_escape("ab\ncd", 7, "ab\\x0a");
    check_escape("ab\ncd", 8, "ab\\x0ac");
}

/* What st_log writes to stderr for one call "admin: %s" (the caller frees). */
static char *
logged(int err, const char *arg)
{
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    char *out = calloc(1, 8192);
    size_t n;

    assert_non_null(f);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
    st_log(ST_LOG_NOTICE, err, "admin: %s", arg);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    rewind(f);
    n = fread(out, 1, 8191, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

static void
test_one_line_per_record(void **state)
{
    char big[4096];
    char *out;

    (void)state;
    out = logged(0, "GET /x\n2024/01/01 00:00:00 [emerg] 1#1: admin_token ok 404");
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "[notice] "));
    assert_non_null(strstr(out, ": admin: GET /x\\x0a2024/01/01 00:00:00 [emerg] 1#1: "
                                "admin_token ok 404\n"));
    free(out);

    out = logged(2, "open a\rb");
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "admin: open a\\x0db: No such file or directory\n"));
    free(out);

    /* a message longer than a line is cut, and the line still ends */
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    out = logged(0, big);
    assert_int_equal(count_lines(out), 1);
    assert_true(strlen(out) <= 2048);
    assert_int_equal(out[strlen(out) - 1], '\n');
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_one_line_per_record),
    };

    st_log_set_level(ST_LOG_NOTICE);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
