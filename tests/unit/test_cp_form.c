/* cp_form: Kong's form-urlencoded shapes (issue 2, admin API bodies). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_form.h"
#include "st_err.h"

/* Decodes s and compares with the JSON text want (jansson equality). */
static void
check(const char *s, const char *want)
{
    struct st_err err = {0};
    json_error_t jerr;
    json_t *got = NULL;
    json_t *exp = json_loads(want, 0, &jerr);
    char *text;

    assert_non_null(exp);
    assert_int_equal(cp_form_decode(s, strlen(s), &got, &err), 0);
    text = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    if (!json_equal(got, exp)) {
        fail_msg("'%s' gave %s, want %s", s, text, want);
    }
    free(text);
    json_decref(got);
    json_decref(exp);
}

static void
check_bad(const char *s)
{
    struct st_err err = {0};
    json_t *got = NULL;

    assert_int_equal(cp_form_decode(s, strlen(s), &got, &err), -ST_EPARSE);
    assert_null(got);
    assert_non_null(strstr(err.msg, "invalid form key"));
}

static void
test_plain_values(void **state)
{
    (void)state;
    check("", "{}");
    check("name=foo&url=tcp%3A%2F%2F127.0.0.1%3A9000",
          "{\"name\":\"foo\",\"url\":\"tcp://127.0.0.1:9000\"}");
    check("name=a+b%20c", "{\"name\":\"a b c\"}");
    check("name=%zz", "{\"name\":\"%zz\"}");
    check("&&name=x&", "{\"name\":\"x\"}");
}

static void
test_inference(void **state)
{
    (void)state;
    check("port=8080&retries=3&connect_timeout=100", "{\"port\":8080,\"retries\":3,"
                                                     "\"connect_timeout\":100}");
    /* only integer fields become numbers; bad numbers stay strings for the schema */
    check("name=123&port=abc&port2=1", "{\"name\":\"123\",\"port\":\"abc\",\"port2\":\"1\"}");
    check("port=-1", "{\"port\":-1}");
    check("enabled=false&preserve_host=true", "{\"enabled\":false,\"preserve_host\":true}");
    check("path=&name", "{\"path\":null,\"name\":null}");
}

static void
test_arrays(void **state)
{
    (void)state;
    check("protocols=tcp", "{\"protocols\":[\"tcp\"]}");
    check("protocols[]=tcp&protocols[]=tls", "{\"protocols\":[\"tcp\",\"tls\"]}");
    check("tags=a&tags=b&tags=c", "{\"tags\":[\"a\",\"b\",\"c\"]}");
    check("tags[1]=a&tags[2]=b", "{\"tags\":[\"a\",\"b\"]}");
    check("tags[2]=b&tags[1]=a", "{\"tags\":[\"a\",\"b\"]}");
    /* a repeated non-array field also becomes an array; the schema refuses it */
    check("name=a&name=b", "{\"name\":[\"a\",\"b\"]}");
}

static void
test_nested(void **state)
{
    (void)state;
    check("destinations[1].port=5555", "{\"destinations\":[{\"port\":5555}]}");
    check("sources[1].ip=10.0.0.0/8&sources[1].port=22&sources[2].ip=192.168.0.1",
          "{\"sources\":[{\"ip\":\"10.0.0.0/8\",\"port\":22},{\"ip\":\"192.168.0.1\"}]}");
    check("service.id=6c9b1f8e-0000-4000-8000-000000000001",
          "{\"service\":{\"id\":\"6c9b1f8e-0000-4000-8000-000000000001\"}}");
    check("service.name=echo&protocols=tcp",
          "{\"service\":{\"name\":\"echo\"},\"protocols\":[\"tcp\"]}");
    check("destinations%5B1%5D.port=80", "{\"destinations\":[{\"port\":80}]}");
}

static void
test_bad_keys(void **state)
{
    (void)state;
    check_bad("a[x]=1");
    check_bad("a[0]=1");
    check_bad("a..b=1");
    check_bad("[1]=2");
    check_bad(".a=1");
    check_bad("a[1=2");
    check_bad("a.b.c.d.e.f.g.h.i=1");
    /* a scalar cannot also be an object */
    check_bad("service=x&service.id=y");
}

static void
test_unescape(void **state)
{
    char *s;

    (void)state;
    s = cp_form_unescape("a%2Fb+c%", 8);
    assert_string_equal(s, "a/b c%");
    free(s);
    s = cp_form_unescape("%4", 2);
    assert_string_equal(s, "%4");
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_values), cmocka_unit_test(test_inference),
        cmocka_unit_test(test_arrays),       cmocka_unit_test(test_nested),
        cmocka_unit_test(test_bad_keys),     cmocka_unit_test(test_unescape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
