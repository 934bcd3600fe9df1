/* st_schema: Kong's defaults, shorthands, validation rules and exact messages for
 * services and routes (issue 2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "st_err.h"
#include "st_schema.h"

#define UUID1  "3f4e2d1c-0b9a-4877-8655-443322110000"
#define PROTOS "grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"
#define DST    ", \"destinations\": [{\"port\": 5555}]"

static json_t *
load(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);

    if (o == NULL) {
        fail_msg("bad test JSON: %s: %s", text, e.text);
    }
    return o;
}

/* Validates text, which must pass; returns the normalised object. */
static json_t *
expect_ok(enum st_entity_kind k, const char *text)
{
    json_t *o = load(text);
    json_t *fields = NULL;
    char buf[1024];

    if (st_schema_validate(k, o, &fields) != 0) {
        st_schema_message(fields, buf, sizeof(buf));
        fail_msg("%s: unexpected %s", text, buf);
    }
    assert_null(fields);
    return o;
}

/* Validates text, which must fail with exactly msg; returns the `fields` object. */
static json_t *
expect_fields(enum st_entity_kind k, const char *text, const char *msg)
{
    json_t *o = load(text);
    json_t *fields = NULL;
    char buf[1024];

    assert_int_equal(st_schema_validate(k, o, &fields), -ST_ESCHEMA);
    assert_non_null(fields);
    st_schema_message(fields, buf, sizeof(buf));
    assert_string_equal(buf, msg);
    json_decref(o);
    return fields;
}

static void
expect_msg(enum st_entity_kind k, const char *text, const char *msg)
{
    json_decref(expect_fields(k, text, msg));
}

static void
assert_json(const json_t *v, const char *text)
{
    json_t *want = load(text);

    if (!json_equal(v, want)) {
        char *got = json_dumps(v, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        fail_msg("got %s, want %s", got, text);
    }
    json_decref(want);
}

/* ------------------------------------------------------------------------ */

static void
test_service_defaults(void **state)
{
    json_t *o = expect_ok(ST_ENT_SERVICE, "{\"name\": \"echo\", \"host\": \"example.com\"}");
    const char *const *names = st_schema_field_names(ST_ENT_SERVICE);
    const char *key;
    json_t *v;
    size_t i = 0;

    (void)state;
    assert_json(o, "{\"id\": null, \"name\": \"echo\", \"created_at\": null, \"updated_at\": null,"
                   " \"protocol\": \"tcp\", \"host\": \"example.com\", \"port\": 80,"
                   " \"path\": null, \"retries\": 5, \"connect_timeout\": 60000,"
                   " \"write_timeout\": 60000, \"read_timeout\": 60000, \"tags\": null,"
                   " \"enabled\": true, \"client_certificate\": null, \"tls_verify\": null,"
                   " \"tls_verify_depth\": null, \"ca_certificates\": null}");
    /* Stored in Kong's output order. */
    json_object_foreach(o, key, v)
    {
        assert_non_null(names[i]);
        assert_string_equal(key, names[i]);
        i++;
    }
    assert_null(names[i]);
    json_decref(o);
}

static void
test_service_keeps_values(void **state)
{
    json_t *o = expect_ok(ST_ENT_SERVICE, "{\"id\": \"" UUID1 "\", \"host\": \"10.0.0.1\","
                                          " \"port\": 9000.0, \"retries\": 0,"
                                          " \"connect_timeout\": 1, \"enabled\": false,"
                                          " \"tags\": [\"b\", \"a\", \"b\"],"
                                          " \"created_at\": 1700000000123}");

    (void)state;
    assert_true(json_is_integer(json_object_get(o, "port")));
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 9000);
    assert_int_equal(json_integer_value(json_object_get(o, "retries")), 0);
    assert_true(json_is_false(json_object_get(o, "enabled")));
    assert_json(json_object_get(o, "tags"), "[\"b\", \"a\"]"); /* a set: duplicates dropped */
    json_decref(o);
    json_decref(expect_ok(ST_ENT_SERVICE, "{\"host\": \"::1\"}"));
    json_decref(expect_ok(ST_ENT_SERVICE, "{\"host\": \"[::1]\"}"));
    json_decref(expect_ok(ST_ENT_SERVICE, "{\"host\": \"my_upstream.svc.local.\"}"));
}

static void
test_service_url_shorthand(void **state)
{
    json_t *o = expect_ok(ST_ENT_SERVICE, "{\"url\": \"tcp://10.1.2.3:9000\"}");

    (void)state;
    assert_null(json_object_get(o, "url"));
    assert_string_equal(json_string_value(json_object_get(o, "protocol")), "tcp");
    assert_string_equal(json_string_value(json_object_get(o, "host")), "10.1.2.3");
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 9000);
    assert_true(json_is_null(json_object_get(o, "path")));
    json_decref(o);

    o = expect_ok(ST_ENT_SERVICE, "{\"url\": \"tcp://echo.local\"}");
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 80);
    assert_string_equal(json_string_value(json_object_get(o, "host")), "echo.local");
    json_decref(o);

    o = expect_ok(ST_ENT_SERVICE, "{\"url\": \"tcp://[::1]:7000\"}");
    assert_string_equal(json_string_value(json_object_get(o, "host")), "::1");
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 7000);
    json_decref(o);

    /* url wins over explicit fields, as Kong's shorthand does */
    o = expect_ok(ST_ENT_SERVICE, "{\"host\": \"a.com\", \"port\": 1, \"url\": \"tcp://b.com:2\"}");
    assert_string_equal(json_string_value(json_object_get(o, "host")), "b.com");
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 2);
    json_decref(o);
}

static void
test_service_url_errors(void **state)
{
    (void)state;
    expect_msg(ST_ENT_SERVICE, "{\"url\": \"example.com:80\"}",
               "schema violation (url: missing scheme in url)");
    expect_msg(ST_ENT_SERVICE, "{\"url\": \"tcp://:80\"}",
               "schema violation (url: missing host in url)");
    expect_msg(ST_ENT_SERVICE, "{\"url\": \"tcp://h:8x\"}",
               "schema violation (url: invalid port in url)");
    expect_msg(ST_ENT_SERVICE, "{\"url\": \"tcp://[::1\"}",
               "schema violation (url: missing host in url)");
    expect_msg(ST_ENT_SERVICE, "{\"url\": \"tcp://[::1]x\"}",
               "schema violation (url: invalid port in url)");
    expect_msg(ST_ENT_SERVICE, "{\"url\": 5}", "schema violation (url: expected a string)");
    expect_msg(ST_ENT_SERVICE, "{\"url\": \"tcp://h:70000\"}",
               "schema violation (port: value should be between 0 and 65535)");
    expect_msg(ST_ENT_SERVICE, "{\"url\": \"udp://h:53\"}",
               "schema violation (protocol: 'udp' is not supported yet)");
    /* Kong keeps the url's path, which a tcp service may not have */
    expect_msg(ST_ENT_SERVICE, "{\"url\": \"tcp://h:1/\"}",
               "2 schema violations (failed conditional validation given value of field "
               "'protocol'; path: value must be null)");
}

static void
test_service_field_errors(void **state)
{
    (void)state;
    expect_msg(ST_ENT_SERVICE, "{}", "schema violation (host: required field missing)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": null}",
               "schema violation (host: required field missing)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"\"}",
               "schema violation (host: length must be at least 1)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"exa mple\"}",
               "schema violation (host: invalid value: exa mple)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"a-.com\"}",
               "schema violation (host: invalid value: a-.com)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"a.com:80\"}",
               "schema violation (host: must not have a port)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"[::1]:80\"}",
               "schema violation (host: must not have a port)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"1.2.3.4:80\"}",
               "schema violation (host: must not have a port)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"300.2.3.4\"}",
               "schema violation (host: invalid value: 300.2.3.4)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": 5}", "schema violation (host: expected a string)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"protocol\": \"foo\"}",
               "schema violation (protocol: expected one of: " PROTOS ")");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"protocol\": \"http\"}",
               "schema violation (protocol: 'http' is not supported: Strait proxies tcp)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"protocol\": \"grpcs\"}",
               "schema violation (protocol: 'grpcs' is not supported: Strait proxies tcp)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"protocol\": \"tls\"}",
               "schema violation (protocol: 'tls' is not supported yet)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"protocol\": null}",
               "schema violation (protocol: required field missing)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"port\": 65536}",
               "schema violation (port: value should be between 0 and 65535)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"port\": -1}",
               "schema violation (port: value should be between 0 and 65535)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"port\": \"80\"}",
               "schema violation (port: expected an integer)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"port\": 80.5}",
               "schema violation (port: expected an integer)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"retries\": 32768}",
               "schema violation (retries: value should be between 0 and 32767)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"connect_timeout\": 0}",
               "schema violation (connect_timeout: value should be between 1 and 2147483646)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"read_timeout\": 2147483647}",
               "schema violation (read_timeout: value should be between 1 and 2147483646)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"write_timeout\": true}",
               "schema violation (write_timeout: expected an integer)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"enabled\": \"yes\"}",
               "schema violation (enabled: expected a boolean)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"name\": \"a b\"}",
               "schema violation (name: invalid value 'a b': it must only contain alphanumeric "
               "and '., -, _, ~' characters)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"name\": \"\"}",
               "schema violation (name: length must be at least 1)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"id\": \"nope\"}",
               "schema violation (id: expected a valid UUID)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"created_at\": 0}",
               "schema violation (created_at: expected a valid timestamp)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"updated_at\": \"x\"}",
               "schema violation (updated_at: expected an integer)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"foo\": 1}",
               "schema violation (foo: unknown field)");
}

static void
test_service_tags(void **state)
{
    json_t *f;

    (void)state;
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"tags\": \"x\"}",
               "schema violation (tags: expected a set)");
    f = expect_fields(ST_ENT_SERVICE, "{\"host\": \"h\", \"tags\": [\"ok\", \"a,b\", \"c/d\"]}",
                      "2 schema violations (tags.2: invalid tag 'a,b': expected printable ascii "
                      "(except `,` and `/`) or valid utf-8 sequences; tags.3: invalid tag 'c/d': "
                      "expected printable ascii (except `,` and `/`) or valid utf-8 sequences)");
    assert_true(json_is_null(json_array_get(json_object_get(f, "tags"), 0)));
    json_decref(f);
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"tags\": [\"\"]}",
               "schema violation (tags.1: length must be at least 1)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"tags\": [1]}",
               "schema violation (tags.1: expected a string)");
    json_decref(expect_ok(ST_ENT_SERVICE, "{\"host\": \"h\", \"tags\": [\"with space\", \"é\"]}"));
}

static void
test_service_null_only_fields(void **state)
{
    (void)state;
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"path\": \"/x\"}",
               "2 schema violations (failed conditional validation given value of field "
               "'protocol'; path: value must be null)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"tls_verify\": true}",
               "2 schema violations (failed conditional validation given value of field "
               "'protocol'; tls_verify: value must be null)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"ca_certificates\": [\"" UUID1 "\"]}",
               "2 schema violations (failed conditional validation given value of field "
               "'protocol'; ca_certificates: value must be null)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"client_certificate\": {\"id\": \"" UUID1 "\"}}",
               "2 schema violations (failed conditional validation given value of field "
               "'protocol'; client_certificate: value must be null)");
    expect_msg(ST_ENT_SERVICE, "{\"host\": \"h\", \"tls_verify_depth\": 1}",
               "2 schema violations (failed conditional validation given value of field "
               "'protocol'; tls_verify_depth: value must be null)");
}

static void
test_service_many_violations(void **state)
{
    json_t *f;

    (void)state;
    f = expect_fields(ST_ENT_SERVICE,
                      "{\"host\": \"bad host!\", \"port\": 99999, \"zzz\": 1, \"path\": \"/p\"}",
                      "5 schema violations (failed conditional validation given value of field "
                      "'protocol'; host: invalid value: bad host!; path: value must be null; "
                      "port: value should be between 0 and 65535; zzz: unknown field)");
    assert_json(f,
                "{\"@entity\": [\"failed conditional validation given value of field "
                "'protocol'\"], \"host\": \"invalid value: bad host!\","
                " \"path\": \"value must be null\","
                " \"port\": \"value should be between 0 and 65535\", \"zzz\": \"unknown field\"}");
    json_decref(f);
}

static void
test_not_an_object(void **state)
{
    json_t *v = json_string("x");
    json_t *f = NULL;
    char buf[128];

    (void)state;
    assert_int_equal(st_schema_validate(ST_ENT_SERVICE, v, &f), -ST_ESCHEMA);
    st_schema_message(f, buf, sizeof(buf));
    assert_string_equal(buf, "schema violation (expected a record)");
    /* fields may be NULL when the caller only wants the verdict */
    assert_int_equal(st_schema_validate(ST_ENT_ROUTE, v, NULL), -ST_ESCHEMA);
    json_decref(f);
    json_decref(v);
}

/* ------------------------------------------------------------------------ */

static void
test_route_defaults(void **state)
{
    json_t *o = expect_ok(ST_ENT_ROUTE, "{\"destinations\": [{\"port\": 5555}],"
                                        " \"service\": {\"id\": \"" UUID1 "\", \"name\": \"x\"}}");
    const char *const *names = st_schema_field_names(ST_ENT_ROUTE);
    const char *key;
    json_t *v;
    size_t i = 0;

    (void)state;
    assert_json(o, "{\"id\": null, \"name\": null, \"created_at\": null, \"updated_at\": null,"
                   " \"protocols\": [\"tcp\"], \"sources\": null,"
                   " \"destinations\": [{\"ip\": null, \"port\": 5555}], \"snis\": null,"
                   " \"preserve_host\": false, \"service\": {\"id\": \"" UUID1 "\"},"
                   " \"tags\": null, \"methods\": null, \"hosts\": null, \"paths\": null,"
                   " \"headers\": null}");
    json_object_foreach(o, key, v)
    {
        assert_non_null(names[i]);
        assert_string_equal(key, names[i]);
        i++;
    }
    assert_null(names[i]);
    json_decref(o);

    o = expect_ok(ST_ENT_ROUTE, "{\"protocols\": [\"tcp\", \"tcp\"], \"service\": null,"
                                " \"sources\": [{\"ip\": \"10.0.0.0/8\"}, {\"ip\": \"::1\", "
                                "\"port\": 1}]}");
    assert_json(json_object_get(o, "protocols"), "[\"tcp\"]");
    assert_json(json_object_get(o, "sources"),
                "[{\"ip\": \"10.0.0.0/8\", \"port\": null}, {\"ip\": \"::1\", \"port\": 1}]");
    json_decref(o);
}

static void
test_route_must_set_one(void **state)
{
    (void)state;
    expect_msg(ST_ENT_ROUTE, "{}",
               "schema violation (must set one of 'sources', 'destinations', 'snis' when "
               "'protocols' is 'tcp', 'tls' or 'udp')");
    expect_msg(ST_ENT_ROUTE, "{\"sources\": [], \"destinations\": null}",
               "schema violation (must set one of 'sources', 'destinations', 'snis' when "
               "'protocols' is 'tcp', 'tls' or 'udp')");
}

static void
test_route_protocols(void **state)
{
    json_t *f;

    (void)state;
    f = expect_fields(ST_ENT_ROUTE, "{\"protocols\": [\"foo\"]" DST "}",
                      "schema violation (protocols.1: expected one of: " PROTOS ")");
    assert_json(f, "{\"protocols\": [\"expected one of: " PROTOS "\"]}");
    json_decref(f);
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": [\"tcp\", 7]" DST "}",
               "schema violation (protocols.2: expected a string)");
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": \"tcp\"" DST "}",
               "schema violation (protocols: expected a set)");
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": []" DST "}",
               "schema violation (protocols: length must be at least 1)");
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": null" DST "}",
               "schema violation (protocols: required field missing)");
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": [\"tcp\", \"tls_passthrough\"]" DST "}",
               "schema violation (protocols: these sets are mutually exclusive: "
               "('tcp', 'tls', 'udp'), ('tls_passthrough'))");
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": [\"https\", \"tcp\", \"http\"]" DST "}",
               "schema violation (protocols: these sets are mutually exclusive: "
               "('http', 'https'), ('tcp', 'tls', 'udp'))");
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": [\"udp\"]" DST "}",
               "schema violation (protocols: 'udp' is not supported yet)");
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": [\"tcp\", \"tls\"]" DST "}",
               "schema violation (protocols: 'tls' is not supported yet)");
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": [\"http\"], \"snis\": null}",
               "schema violation (protocols: 'http' is not supported: Strait proxies tcp)");
}

static void
test_route_endpoints(void **state)
{
    json_t *f;

    (void)state;
    f = expect_fields(ST_ENT_ROUTE,
                      "{\"sources\": [{\"ip\": \"10.0.0.1\"}, {\"ip\": \"10.0.0.300\"}]}",
                      "schema violation (sources.2.ip: invalid ip or cidr range: '10.0.0.300')");
    assert_json(f, "{\"sources\": [null, {\"ip\": \"invalid ip or cidr range: '10.0.0.300'\"}]}");
    json_decref(f);
    /* a set holding one empty record is not empty: Kong's is_nonempty */
    expect_msg(ST_ENT_ROUTE, "{\"destinations\": [{}]}",
               "schema violation (destinations.1: at least one of these fields must be "
               "non-empty: 'ip', 'port')");
    f = expect_fields(ST_ENT_ROUTE,
                      "{\"destinations\": [{\"ip\": null, \"port\": null}], "
                      "\"sources\": [{\"ip\": \"10.0.0.0/8\"}]}",
                      "schema violation (destinations.1: at least one of these fields must be "
                      "non-empty: 'ip', 'port')");
    assert_json(f, "{\"destinations\": [{\"@entity\": [\"at least one of these fields must be "
                   "non-empty: 'ip', 'port'\"]}]}");
    json_decref(f);
    expect_msg(ST_ENT_ROUTE, "{\"destinations\": [{\"port\": 70000}]}",
               "schema violation (destinations.1.port: value should be between 0 and 65535)");
    expect_msg(ST_ENT_ROUTE, "{\"destinations\": [{\"ip\": \"10.0.0.0/33\"}]}",
               "schema violation (destinations.1.ip: invalid ip or cidr range: '10.0.0.0/33')");
    expect_msg(ST_ENT_ROUTE, "{\"destinations\": [{\"ip\": 10}]}",
               "schema violation (destinations.1.ip: expected a string)");
    expect_msg(ST_ENT_ROUTE, "{\"destinations\": [{\"port\": 1, \"proto\": \"x\"}]}",
               "schema violation (destinations.1.proto: unknown field)");
    expect_msg(ST_ENT_ROUTE, "{\"destinations\": [5]}",
               "schema violation (destinations.1: expected a record)");
    expect_msg(ST_ENT_ROUTE, "{\"destinations\": {\"port\": 1}}",
               "schema violation (destinations: expected a set)");
}

static void
test_route_snis_and_http_fields(void **state)
{
    json_t *f;

    (void)state;
    f = expect_fields(ST_ENT_ROUTE, "{\"snis\": [\"a.example\"]}",
                      "2 schema violations ('snis' can only be set when 'protocols' is 'grpcs', "
                      "'https', 'tls' or 'tls_passthrough'; snis: length must be 0)");
    json_decref(f);
    expect_msg(ST_ENT_ROUTE, "{\"hosts\": [\"x.com\"]" DST "}",
               "schema violation (hosts: cannot set 'hosts' when 'protocols' is 'tcp', 'tls', "
               "'tls_passthrough' or 'udp')");
    expect_msg(ST_ENT_ROUTE, "{\"methods\": [\"GET\"], \"paths\": [\"/\"]" DST "}",
               "2 schema violations (methods: cannot set 'methods' when 'protocols' is 'tcp', "
               "'tls', 'tls_passthrough' or 'udp'; paths: cannot set 'paths' when 'protocols' is "
               "'tcp', 'tls', 'tls_passthrough' or 'udp')");
    expect_msg(ST_ENT_ROUTE, "{\"headers\": {\"x\": [\"y\"]}" DST "}",
               "schema violation (headers: cannot set 'headers' when 'protocols' is 'tcp', "
               "'tls', 'tls_passthrough' or 'udp')");
    json_decref(expect_ok(ST_ENT_ROUTE, "{\"hosts\": null, \"methods\": null" DST "}"));
}

static void
test_route_other_fields(void **state)
{
    (void)state;
    expect_msg(ST_ENT_ROUTE, "{\"service\": {\"id\": \"bad\"}" DST "}",
               "schema violation (service.id: expected a valid UUID)");
    expect_msg(ST_ENT_ROUTE, "{\"service\": \"" UUID1 "\"" DST "}",
               "schema violation (service: expected a record)");
    expect_msg(ST_ENT_ROUTE, "{\"service\": {}" DST "}",
               "schema violation (service.id: missing primary key)");
    expect_msg(ST_ENT_ROUTE, "{\"preserve_host\": null" DST "}",
               "schema violation (preserve_host: required field missing)");
    expect_msg(ST_ENT_ROUTE, "{\"preserve_host\": 1" DST "}",
               "schema violation (preserve_host: expected a boolean)");
    expect_msg(ST_ENT_ROUTE, "{\"name\": \"a b\"" DST "}",
               "schema violation (name: invalid value 'a b': the only accepted ascii characters "
               "are alphanumerics or ., -, _, and ~)");
    json_decref(expect_ok(ST_ENT_ROUTE, "{\"name\": \"é-route_1.~\"" DST "}"));
    expect_msg(ST_ENT_ROUTE, "{\"url\": \"tcp://x\"" DST "}",
               "schema violation (url: unknown field)");
    expect_msg(ST_ENT_ROUTE, "{\"strip_path\": true" DST "}",
               "schema violation (strip_path: unknown field)");
}

static void
test_message_format(void **state)
{
    json_t *f = load("{\"zeta\": \"z\", \"alpha\": \"a\", \"@entity\": [\"e1\", \"e2\"],"
                     " \"list\": [null, {\"b\": \"B\", \"a\": \"A\"}, \"three\"]}");
    char buf[512];
    char small[24];

    (void)state;
    st_schema_message(f, buf, sizeof(buf));
    assert_string_equal(buf, "7 schema violations (e1; e2; alpha: a; list.2.a: A; list.2.b: B; "
                             "list.3: three; zeta: z)");
    /* truncates without overflowing */
    st_schema_message(f, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    json_decref(f);
}

static void
test_is_uuid(void **state)
{
    (void)state;
    assert_true(st_schema_is_uuid(UUID1));
    assert_true(st_schema_is_uuid("3F4E2D1C-0B9A-4877-8655-443322110000"));
    assert_false(st_schema_is_uuid("3f4e2d1c-0b9a-4877-8655-44332211000"));
    assert_false(st_schema_is_uuid("3f4e2d1c-0b9a-4877-8655-4433221100000"));
    assert_false(st_schema_is_uuid("3f4e2d1c00b9a-4877-8655-443322110000"));
    assert_false(st_schema_is_uuid("3f4e2d1c-0b9a-4877-8655-44332211000g"));
    assert_false(st_schema_is_uuid(NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_defaults),
        cmocka_unit_test(test_service_keeps_values),
        cmocka_unit_test(test_service_url_shorthand),
        cmocka_unit_test(test_service_url_errors),
        cmocka_unit_test(test_service_field_errors),
        cmocka_unit_test(test_service_tags),
        cmocka_unit_test(test_service_null_only_fields),
        cmocka_unit_test(test_service_many_violations),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_route_defaults),
        cmocka_unit_test(test_route_must_set_one),
        cmocka_unit_test(test_route_protocols),
        cmocka_unit_test(test_route_endpoints),
        cmocka_unit_test(test_route_snis_and_http_fields),
        cmocka_unit_test(test_route_other_fields),
        cmocka_unit_test(test_message_format),
        cmocka_unit_test(test_is_uuid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
