/* st_str: the one growing string of the CP and common code (issue 15: it replaced the
 * copies in st_decl and cp_decl_load), the word list lookup and trimming. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "st_str.h"

static void
test_add(void **state)
{
    struct st_str b = {0};

    (void)state;
    assert_null(b.p);
    st_str_add(&b, ""); /* adding nothing still makes a string */
    assert_non_null(b.p);
    assert_string_equal(b.p, "");
    st_str_add(&b, "ab");
    st_str_addn(&b, "c\0d", 3);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "abc\0d", 6);
    free(b.p);

    memset(&b, 0, sizeof(b));
    for (int i = 0; i < 1000; i++) {
        st_str_addf(&b, "%d,", i % 10);
    }
    assert_int_equal(b.len, 2000);
    assert_memory_equal(b.p, "0,1,2,", 6);
    assert_int_equal(b.p[b.len], '\0');
    free(b.p);
}

static void
test_addf_long(void **state)
{
    struct st_str b = {0};
    char big[600];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    st_str_add(&b, "<");
    st_str_addf(&b, "%s|%lld", big, -42LL); /* longer than the small buffer: not cut */
    assert_int_equal(b.len, 1 + 599 + 4);
    assert_memory_equal(b.p + 1, big, 599);
    assert_string_equal(b.p + 600, "|-42");
    free(b.p);
}

static void
test_in_and_trim(void **state)
{
    static const char *const words[] = {"on", "off", NULL};
    char s1[] = " \t a b \n";
    char s2[] = "   ";
    char s3[] = "x";

    (void)state;
    assert_true(st_str_in("off", words));
    assert_false(st_str_in("of", words));
    assert_false(st_str_in("", words));
    assert_string_equal(st_str_trim(s1), "a b");
    assert_string_equal(st_str_trim(s2), "");
    assert_string_equal(st_str_trim(s3), "x");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_addf_long),
        cmocka_unit_test(test_in_and_trim),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
