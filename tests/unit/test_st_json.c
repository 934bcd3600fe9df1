/* st_json: the one list-with-holes helper and the one sorted-keys helper that st_decl,
 * cp_decl_load and cp_registry_share share (issue 15: they replaced copies). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>

#include "st_json.h"

static void
test_arr_put(void **state)
{
    json_t *arr = NULL;
    char *s;

    (void)state;
    st_json_arr_put(&arr, 1, json_string("b"));
    st_json_arr_put(&arr, 4, json_string("e"));
    s = json_dumps(arr, JSON_COMPACT);
    assert_string_equal(s, "[null,\"b\",null,null,\"e\"]");
    free(s);
    json_decref(arr);
}

static void
test_keys(void **state)
{
    json_t *o = json_pack("{s:i,s:i,s:i,s:i}", "b", 1, "a", 2, "ab", 3, "B", 4);
    json_t *arr = json_array();
    const char **keys;
    size_t n;

    (void)state;
    keys = st_json_keys(o, &n);
    assert_int_equal(n, 4);
    assert_string_equal(keys[0], "B");
    assert_string_equal(keys[1], "a");
    assert_string_equal(keys[2], "ab");
    assert_string_equal(keys[3], "b");
    assert_null(keys[4]);
    free(keys);
    keys = st_json_keys(arr, &n); /* not an object: no keys */
    assert_int_equal(n, 0);
    assert_null(keys[0]);
    free(keys);
    json_decref(arr);
    json_decref(o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arr_put),
        cmocka_unit_test(test_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
