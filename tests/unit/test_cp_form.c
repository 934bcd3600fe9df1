/* cp_form: Kong's form-urlencoded shapes (issue 2, admin API bodies); keys and values
 * that are not text refused without touching freed memory (issue 14, defect 1), and what
 * a body decodes into bounded (issue 14, defect 2). */
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

/* Decodes s and expects -ST_EPARSE with exactly the message want. */
static void
check_msg(const char *s, size_t len, const char *want)
{
    struct st_err err = {0};
    json_t *got = NULL;

    assert_int_equal(cp_form_decode(s, len, &got, &err), -ST_EPARSE);
    assert_null(got);
    assert_string_equal(err.msg, want);
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
test_keys_that_are_not_text(void **state)
{
    (void)state;
    /* jansson refuses a key that is not UTF-8 and frees the value it was given: the
     * decoder used to go on writing to that value (issue 14, defect 1) */
    check_msg("%FF[1]=x", 8, "invalid form key '%FF[1]'");
    check_msg("%FF=x", 5, "invalid form key '%FF'");
    check_msg("a.%FF=x", 7, "invalid form key 'a.%FF'");
    check_msg("a[1].%C3=x", 10, "invalid form key 'a[1].%C3'");
    check_msg("a[]=1&%FF[]=x", 13, "invalid form key '%FF[]'");
    check_msg("sources[1].ip=1&sources[1].%FE%FF=2", 36, "invalid form key 'sources[1].%FE%FF'");
    /* a NUL would cut the key short: "name%00x" is not "name" */
    check_msg("name%00x=1", 10, "invalid form key 'name%00x'");
    check_msg("%00=1", 5, "invalid form key '%00'");
    check_msg("a%0Ab[x]=1", 10, "invalid form key 'a%0Ab[x]'");
    /* UTF-8 keys are keys */
    check("%C3%A9=1", "{\"\u00e9\":\"1\"}");
}

static void
test_values_that_are_not_text(void **state)
{
    (void)state;
    check_msg("name=%FF", 8,
              "invalid form value for key 'name': not UTF-8 text, or a NUL byte "
              "in it");
    check_msg("tags[]=a&tags[]=%C3", 19,
              "invalid form value for key 'tags[]': not UTF-8 text, "
              "or a NUL byte in it");
    /* a NUL would cut the value short: "a%00b" is not "a" */
    check_msg("name=a%00b", 10,
              "invalid form value for key 'name': not UTF-8 text, or a NUL "
              "byte in it");
    check("name=caf%C3%A9&cert=a%0Ab", "{\"name\":\"caf\u00e9\",\"cert\":\"a\\nb\"}");
}

/* The decoder as cp_http drives it for a multipart body: one field at a time. */
static void
test_fields_one_at_a_time(void **state)
{
    struct st_err err = {0};
    struct cp_form *f = cp_form_new(100);
    json_t *o;

    (void)state;
    assert_int_equal(cp_form_add(f, "protocols", 9, "tcp", 3, &err), 0);
    assert_int_equal(cp_form_add(f, "cert", 4, "a\nb", 3, &err), 0);
    assert_int_equal(cp_form_add(f, "name", 4, "a\0b", 3, &err), -ST_EPARSE);
    assert_string_equal(err.msg, "invalid form value for key 'name': not UTF-8 text, or a NUL "
                                 "byte in it");
    assert_int_equal(cp_form_add(f, "x\xff", 2, "1", 1, &err), -ST_EPARSE);
    assert_string_equal(err.msg, "invalid form key 'x%FF'");
    o = cp_form_object(f);
    cp_form_free(f);
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "protocols"), 0)),
                        "tcp");
    assert_int_equal(json_string_length(json_object_get(o, "cert")), 3);
    assert_null(json_object_get(o, "name"));
    json_decref(o);
}

/* A body of n copies of the pair `item` joined by '&' (the caller frees). */
static char *
repeat(const char *item, size_t n, size_t *len)
{
    size_t k = strlen(item);
    char *s = calloc(n, k + 1);

    for (size_t i = 0; i < n; i++) {
        memcpy(s + i * (k + 1), item, k);
        s[i * (k + 1) + k] = '&';
    }
    *len = n * (k + 1) - 1;
    s[*len] = '\0';
    return s;
}

static void
test_limits(void **state)
{
    struct st_err err = {0};
    char want[128];
    json_t *got = NULL;
    size_t len;
    char *s;

    (void)state;
    /* the largest index, and one more */
    assert_int_equal(cp_form_decode("tags[1000]=x", 12, &got, &err), 0);
    assert_int_equal(json_array_size(json_object_get(got, "tags")), 1000);
    json_decref(got);
    check_msg("tags[1001]=x", 12, "invalid form key 'tags[1001]': an index is at most 1000");
    check_msg("tags[99999999999999999999999]=x", 31,
              "invalid form key 'tags[99999999999999999999999]': an index is at most 1000");

    /* CP_FORM_MAX_FIELDS fields, and one more (empty keys are skipped, not counted) */
    s = repeat("tags=a", CP_FORM_MAX_FIELDS, &len);
    assert_int_equal(cp_form_decode(s, len, &got, &err), 0);
    assert_int_equal(json_array_size(json_object_get(got, "tags")), CP_FORM_MAX_FIELDS);
    json_decref(got);
    free(s);
    s = repeat("tags=a", CP_FORM_MAX_FIELDS + 1, &len);
    check_msg(s, len, "form body too large: more than 1000 fields");
    free(s);

    /* padding counts: 5 levels of [1000] is about 5,000 values from 37 bytes, more than
     * CP_FORM_VALUES_BASE + 37 */
    s = strdup("a[1000][1000][1000][1000][1000]=x");
    (void)snprintf(want, sizeof(want), "form body too large: it decodes into more than %d values",
                   CP_FORM_VALUES_BASE + (int)strlen(s));
    check_msg(s, strlen(s), want);
    free(s);
    /* defect 2's reproduction: 8 levels of [10000] in every key of a 167 KB body took the
     * CP to 4.5 GB; now every key is refused at once, and a smaller index soon */
    s = repeat("a[10000][10000][10000][10000][10000][10000][10000][1]=x", 3000, &len);
    check_msg(s, len,
              "invalid form key 'a[10000][10000][10000][10000][10000][10000][10000][1]': "
              "an index is at most 1000");
    free(s);
    /* distinct keys, each padding arrays of its own: the absolute bound (with a long
     * value, the body is long enough for the per-byte bound to be above it) */
    s = calloc(1, 200000);
    len = (size_t)snprintf(s, 200000, "cert=%070000d", 0);
    for (int i = 1; i <= 1000; i++) {
        len += (size_t)snprintf(s + len, 200000 - len, "&a[%d][999][999][999][999][999][1]=x", i);
    }
    (void)snprintf(want, sizeof(want), "form body too large: it decodes into more than %d values",
                   CP_FORM_MAX_VALUES);
    check_msg(s, len, want);
    free(s);
}

static void
test_unescape(void **state)
{
    size_t n;
    char *s;

    (void)state;

    s = cp_form_unescape("a%2Fb+c%", 8, &n);
    assert_string_equal(s, "a/b c%");
    assert_int_equal(n, 6);
    free(s);
    s = cp_form_unescape("%4", 2, &n);
    assert_string_equal(s, "%4");
    assert_int_equal(n, 2);
    free(s);
    /* a %00 is decoded, and the length says so */
    s = cp_form_unescape("a%00b", 5, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "a\0b", 4);
    free(s);
}

/* A URL's path and query parts: %XX decoded, %00 kept whole, '+' left alone. */
static void
test_url_unescape(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/services/a%20b", "/services/a b"},
        {"/services/%00abc", "/services/%00abc"},
        {"a+b%2Bc", "a+b+c"},
        {"%e9%C3%a9", "\xe9\xc3\xa9"},
        {"%4", "%4"},
        {"%zz%", "%zz%"},
        {"", ""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[64];
        size_t n;

        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        n = cp_form_url_unescape(buf);
        assert_string_equal(buf, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_values),
        cmocka_unit_test(test_inference),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_keys_that_are_not_text),
        cmocka_unit_test(test_values_that_are_not_text),
        cmocka_unit_test(test_fields_one_at_a_time),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_url_unescape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
