/* st_schema: Kong's defaults, shorthands, validation rules and exact messages for
 * services and routes (issue 2), and for certificates, snis, ca_certificates, the
 * services' TLS fields and tls routes (issue 3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_testcert.h"

#define UUID1  "3f4e2d1c-0b9a-4877-8655-443322110000"
#define PROTOS "grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"
#define DST    ", \"destinations\": [{\"port\": 5555}]"
#define UUID2  "3f4e2d1c-0b9a-4877-8655-443322110002"

#define MSG_COND "failed conditional validation given value of field 'protocol'"
#define MSG_SAME_TYPE                                                                              \
    "certificate and alternative certificate need to have different type (e.g. RSA and "           \
    "ECDSA), the provided certificates were both of the same type"
#define MSG_NOT_CA                                                                                 \
    "certificate does not appear to be a CA because it is missing the \"CA\" basic constraint"

/* Certificates made once for the whole run (RSA keys take a while). */
static struct tc_pair ec_a;   /* EC, not a CA */
static struct tc_pair ec_b;   /* EC, another key */
static struct tc_pair rsa_a;  /* RSA, not a CA */
static struct tc_pair ca_ok;  /* EC, CA, valid */
static struct tc_pair ca_old; /* EC, CA, expired yesterday */

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

/* Validates obj (owned) with flags; it must pass. Returns it normalised. */
static json_t *
obj_ok(enum st_entity_kind k, unsigned flags, json_t *o)
{
    json_t *fields = NULL;
    char buf[1024];

    if (st_schema_validate_ex(k, o, flags, &fields) != 0) {
        st_schema_message(fields, buf, sizeof(buf));
        fail_msg("unexpected %s", buf);
    }
    return o;
}

/* Validates obj (owned) with flags; it must fail with a message starting with msg
 * (exactly msg when exact). */
static void
obj_msg(enum st_entity_kind k, unsigned flags, json_t *o, const char *msg, bool exact)
{
    json_t *fields = NULL;
    char buf[1024];

    assert_int_equal(st_schema_validate_ex(k, o, flags, &fields), -ST_ESCHEMA);
    st_schema_message(fields, buf, sizeof(buf));
    if (exact ? strcmp(buf, msg) != 0 : strncmp(buf, msg, strlen(msg)) != 0) {
        fail_msg("got \"%s\", want \"%s\"%s", buf, msg, exact ? "" : "...");
    }
    json_decref(fields);
    json_decref(o);
}

/* A certificate object; NULL members are left out. */
static json_t *
cert_obj(const char *cert, const char *key, const char *cert_alt, const char *key_alt)
{
    json_t *o = json_object();

    if (cert != NULL) {
        json_object_set_new(o, "cert", json_string(cert));
    }
    if (key != NULL) {
        json_object_set_new(o, "key", json_string(key));
    }
    if (cert_alt != NULL) {
        json_object_set_new(o, "cert_alt", json_string(cert_alt));
    }
    if (key_alt != NULL) {
        json_object_set_new(o, "key_alt", json_string(key_alt));
    }
    return o;
}

static json_t *
ca_obj(const char *cert)
{
    return json_pack("{s:s}", "cert", cert);
}

static void
test_service_defaults(void **state)
{
    json_t *o = expect_ok(ST_ENT_SERVICE, "{\"name\": \"echo\", \"host\": \"example.com\"}");
    const struct st_field *names = st_entities[ST_ENT_SERVICE]->fields;
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
        assert_non_null(names[i].name);
        assert_string_equal(key, names[i].name);
        i++;
    }
    assert_null(names[i].name);
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
    json_decref(obj_ok(ST_ENT_SERVICE, 0, load("{\"host\": \"h\", \"protocol\": \"tls\"}")));
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
    const struct st_field *names = st_entities[ST_ENT_ROUTE]->fields;
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
        assert_non_null(names[i].name);
        assert_string_equal(key, names[i].name);
        i++;
    }
    assert_null(names[i].name);
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
    json_decref(obj_ok(ST_ENT_ROUTE, 0, load("{\"protocols\": [\"tcp\", \"tls\"]" DST "}")));
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

/* ------------------------------------------------------------------------ */
/* issue 3: TLS                                                               */

static int
make_certs(void **state)
{
    (void)state;
    ec_a = tc_make(TC_EC, "a.test", false, -1, 30);
    ec_b = tc_make(TC_EC, "b.test", false, -1, 30);
    rsa_a = tc_make(TC_RSA, "a.test", false, -1, 30);
    ca_ok = tc_make(TC_EC, "ca.test", true, -1, 30);
    ca_old = tc_make(TC_EC, "old-ca.test", true, -10, -1);
    return 0;
}

static int
free_certs(void **state)
{
    (void)state;
    tc_free(&ec_a);
    tc_free(&ec_b);
    tc_free(&rsa_a);
    tc_free(&ca_ok);
    tc_free(&ca_old);
    return 0;
}

static void
test_tls_protocols(void **state)
{
    (void)state;
    json_decref(obj_ok(ST_ENT_ROUTE, 0,
                       load("{\"protocols\": [\"tls_passthrough\"], \"snis\": [\"a.test\"]}")));
    json_decref(
        obj_ok(ST_ENT_ROUTE, 0, load("{\"protocols\": [\"tls\"], \"snis\": [\"a.test\"]}")));
    json_decref(
        obj_ok(ST_ENT_SERVICE, 0, load("{\"protocol\": \"tls\", \"host\": \"h\", \"port\": 443}")));
    expect_msg(ST_ENT_ROUTE, "{\"protocols\": [\"tls\", \"tls_passthrough\"]" DST "}",
               "schema violation (protocols: these sets are mutually exclusive: "
               "('tcp', 'tls', 'udp'), ('tls_passthrough'))");
    /* udp and service tls_passthrough stay refused */
    obj_msg(ST_ENT_ROUTE, 0, load("{\"protocols\": [\"udp\"]" DST "}"),
            "schema violation (protocols: 'udp' is not supported yet)", true);
    obj_msg(ST_ENT_SERVICE, 0, load("{\"protocol\": \"tls_passthrough\", \"host\": \"h\"}"),
            "schema violation (protocol: 'tls_passthrough' is not supported yet)", true);
}

static void
test_service_tls_fields(void **state)
{
    const unsigned F = 0;
    json_t *o;

    (void)state;
    o = obj_ok(ST_ENT_SERVICE, F,
               load("{\"url\": \"tls://up.test:8443\", \"tls_verify\": true,"
                    " \"tls_verify_depth\": 3, \"ca_certificates\": [\"" UUID2 "\", \"" UUID1
                    "\"], \"client_certificate\": {\"id\": \"" UUID1 "\", \"x\": 1}}"));
    assert_json(json_object_get(o, "ca_certificates"), "[\"" UUID2 "\", \"" UUID1 "\"]");
    assert_json(json_object_get(o, "client_certificate"), "{\"id\": \"" UUID1 "\"}");
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 8443);
    json_decref(o);
    obj_msg(ST_ENT_SERVICE, F, load("{\"protocol\": \"tls\", \"host\": \"h\", \"tls_verify\": 1}"),
            "schema violation (tls_verify: expected a boolean)", true);
    obj_msg(ST_ENT_SERVICE, F,
            load("{\"protocol\": \"tls\", \"host\": \"h\", \"tls_verify_depth\": 65}"),
            "schema violation (tls_verify_depth: value should be between 0 and 64)", true);
    obj_msg(ST_ENT_SERVICE, F,
            load("{\"protocol\": \"tls\", \"host\": \"h\", \"tls_verify_depth\": -1}"),
            "schema violation (tls_verify_depth: value should be between 0 and 64)", true);
    obj_msg(ST_ENT_SERVICE, F,
            load("{\"protocol\": \"tls\", \"host\": \"h\", \"ca_certificates\": [\"" UUID1
                 "\", \"nope\"]}"),
            "schema violation (ca_certificates.2: expected a valid UUID)", true);
    obj_msg(ST_ENT_SERVICE, F,
            load("{\"protocol\": \"tls\", \"host\": \"h\", \"ca_certificates\": \"" UUID1 "\"}"),
            "schema violation (ca_certificates: expected an array)", true);
    obj_msg(ST_ENT_SERVICE, F,
            load("{\"protocol\": \"tls\", \"host\": \"h\", \"client_certificate\": {\"id\": 5}}"),
            "schema violation (client_certificate.id: expected a string)", true);
    /* only with protocol tls */
    obj_msg(ST_ENT_SERVICE, F,
            load("{\"protocol\": \"tcp\", \"host\": \"h\", \"tls_verify\": false}"),
            "2 schema violations (" MSG_COND "; tls_verify: value must be null)", true);
    obj_msg(ST_ENT_SERVICE, F,
            load("{\"protocol\": \"tcp\", \"host\": \"h\", \"tls_verify_depth\": 1,"
                 " \"client_certificate\": {\"id\": \"" UUID1 "\"}}"),
            "4 schema violations (" MSG_COND "; " MSG_COND
            "; client_certificate: value must be null; tls_verify_depth: value must be null)",
            true);
}

static void
test_route_tls_rules(void **state)
{
    const unsigned F = 0;
    json_t *o;

    (void)state;
    o = obj_ok(ST_ENT_ROUTE, F,
               load("{\"protocols\": [\"tls\", \"tcp\", \"tls\"],"
                    " \"snis\": [\"*.a.test\", \"b.*\", \"c.test\", \"c.test\", \"*\"]}"));
    assert_json(json_object_get(o, "protocols"), "[\"tls\", \"tcp\"]");
    assert_json(json_object_get(o, "snis"), "[\"*.a.test\", \"b.*\", \"c.test\", \"*\"]");
    json_decref(o);
    json_decref(obj_ok(ST_ENT_ROUTE, F,
                       load("{\"protocols\": [\"tls_passthrough\"], \"snis\": [\"a.test\"],"
                            " \"sources\": [{\"ip\": \"10.0.0.0/8\"}]}")));
    json_decref(obj_ok(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls\"]" DST "}")));
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls_passthrough\"]" DST "}"),
            "schema violation (must set snis when 'protocols' is 'tls_passthrough')", true);
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls_passthrough\"], \"snis\": []}"),
            "schema violation (must set snis when 'protocols' is 'tls_passthrough')", true);
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls\"]}"),
            "schema violation (must set one of 'sources', 'destinations', 'snis' when "
            "'protocols' is 'tcp', 'tls' or 'udp')",
            true);
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls_passthrough\", \"tcp\"]" DST "}"),
            "schema violation (protocols: these sets are mutually exclusive: "
            "('tls_passthrough'), ('tcp', 'tls', 'udp'))",
            true);
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tcp\"], \"snis\": [\"a.test\"]}"),
            "2 schema violations ('snis' can only be set when 'protocols' is 'grpcs', 'https', "
            "'tls' or 'tls_passthrough'; snis: length must be 0)",
            true);
    obj_msg(ST_ENT_ROUTE, F,
            load("{\"protocols\": [\"tls\"], \"snis\": [\"ok.test\", \"a.*.test\"]}"),
            "schema violation (snis.2: wildcard must be leftmost or rightmost character)", true);
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls\"], \"snis\": [\"*.a.*\"]}"),
            "schema violation (snis.1: only one wildcard must be specified)", true);
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls\"], \"snis\": [\"10.0.0.1\"]}"),
            "schema violation (snis.1: must not be an IP)", true);
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls\"], \"snis\": [\"a.test:443\"]}"),
            "schema violation (snis.1: must not have a port)", true);
    obj_msg(ST_ENT_ROUTE, F, load("{\"protocols\": [\"tls\"], \"snis\": [\"a b\"]}"),
            "schema violation (snis.1: invalid value: a b)", true);
}

static void
test_certificate_ok(void **state)
{
    const struct st_field *names = st_entities[ST_ENT_CERTIFICATE]->fields;
    char *chain = tc_concat(ec_a.cert, ca_ok.cert);
    json_t *o;
    const char *key;
    json_t *v;
    size_t i = 0;

    (void)state;
    o = obj_ok(ST_ENT_CERTIFICATE, 0, cert_obj(ec_a.cert, ec_a.key, rsa_a.cert, rsa_a.key));
    json_object_foreach(o, key, v)
    {
        assert_non_null(names[i].name);
        assert_string_equal(key, names[i].name);
        i++;
    }
    assert_null(names[i].name);
    assert_true(json_is_null(json_object_get(o, "tags")));
    json_decref(o);
    /* RSA first, ECDSA as the alternative; a chain after the leaf */
    json_decref(obj_ok(ST_ENT_CERTIFICATE, 0, cert_obj(rsa_a.cert, rsa_a.key, chain, ec_a.key)));
    json_decref(obj_ok(ST_ENT_CERTIFICATE, 0, cert_obj(chain, ec_a.key, NULL, NULL)));
    o = cert_obj(ec_a.cert, ec_a.key, NULL, NULL);
    json_object_set_new(o, "id", json_string(UUID1));
    json_object_set_new(o, "created_at", json_integer(1700000000123));
    json_object_set_new(o, "tags", json_pack("[s]", "edge"));
    json_object_set_new(o, "cert_alt", json_null());
    json_decref(obj_ok(ST_ENT_CERTIFICATE, 0, o));
    free(chain);
}

static void
test_certificate_errors(void **state)
{
    json_t *o;

    (void)state;
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj(NULL, NULL, NULL, NULL),
            "2 schema violations (cert: required field missing; key: required field missing)",
            true);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj("garbage", ec_a.key, NULL, NULL),
            "schema violation (cert: invalid certificate: x509.new: ", false);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj(ec_a.cert, "garbage", NULL, NULL),
            "schema violation (key: invalid key: pkey.new:load_key: ", false);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj(ec_a.cert, ec_a.key, rsa_a.cert, "garbage"),
            "schema violation (key_alt: invalid key: pkey.new:load_key: ", false);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj("", ec_a.key, NULL, NULL),
            "schema violation (cert: length must be at least 1)", true);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj(ec_a.cert, ec_b.key, NULL, NULL),
            "schema violation (certificate does not match key)", true);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj(ec_a.cert, ec_a.key, rsa_a.cert, ec_b.key),
            "schema violation (alternative certificate does not match key)", true);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj(ec_a.cert, ec_a.key, ec_b.cert, ec_b.key),
            "schema violation (" MSG_SAME_TYPE ")", true);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj(ec_a.cert, ec_a.key, rsa_a.cert, NULL),
            "schema violation (all or none of these fields must be set: 'cert_alt', 'key_alt')",
            true);
    obj_msg(ST_ENT_CERTIFICATE, 0, cert_obj(ec_a.cert, ec_a.key, NULL, rsa_a.key),
            "schema violation (all or none of these fields must be set: 'cert_alt', 'key_alt')",
            true);
    /* the snis shorthand is the admin API's, not a stored field */
    o = cert_obj(ec_a.cert, ec_a.key, NULL, NULL);
    json_object_set_new(o, "snis", json_pack("[s]", "a.test"));
    obj_msg(ST_ENT_CERTIFICATE, 0, o, "schema violation (snis: unknown field)", true);
    o = cert_obj(ec_a.cert, ec_a.key, NULL, NULL);
    json_object_set_new(o, "cert", json_integer(1));
    obj_msg(ST_ENT_CERTIFICATE, 0, o, "schema violation (cert: expected a string)", true);
}

static void
test_sni(void **state)
{
    const char *const good[] = {"a.test", "*.a.test", "a.*", "*", "xn--bcher-kva.example"};
    const struct st_field *names = st_entities[ST_ENT_SNI]->fields;
    char text[256];
    json_t *o;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "{\"name\": \"%s\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
                 good[i]);
        o = expect_ok(ST_ENT_SNI, text);
        assert_string_equal(json_string_value(json_object_get(o, "name")), good[i]);
        json_decref(o);
    }
    o = expect_ok(ST_ENT_SNI, "{\"name\": \"a.test\", \"certificate\": {\"id\": \"" UUID1 "\"}}");
    assert_json(o,
                "{\"id\": null, \"name\": \"a.test\", \"created_at\": null,"
                " \"updated_at\": null, \"tags\": null, \"certificate\": {\"id\": \"" UUID1 "\"}}");
    assert_string_equal(names[1].name, "name");
    json_decref(o);
    expect_msg(ST_ENT_SNI, "{\"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: required field missing)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"a.test\"}",
               "schema violation (certificate: required field missing)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"a.test\", \"certificate\": {\"id\": \"x\"}}",
               "schema violation (certificate.id: expected a valid UUID)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"a.*.test\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: wildcard must be leftmost or rightmost character)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"*.test.*\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: only one wildcard must be specified)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"**\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: only one wildcard must be specified)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"127.0.0.1\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: must not be an IP)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"[::1]\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: must not be an IP)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"a.test:8443\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: must not have a port)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"*.a.test:1\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: must not have a port)");
    expect_msg(ST_ENT_SNI, "{\"name\": \"a_b c\", \"certificate\": {\"id\": \"" UUID1 "\"}}",
               "schema violation (name: invalid value: a_b c)");
    expect_msg(ST_ENT_SNI,
               "{\"name\": \"a.test\", \"certificate\": {\"id\": \"" UUID1 "\"}, \"snis\": 1}",
               "schema violation (snis: unknown field)");
}

static void
test_ca_certificate(void **state)
{
    char *two = tc_concat(ca_ok.cert, ca_old.cert);
    struct st_ssl_cert_info info;
    char msg[256];
    json_t *o;

    (void)state;
    assert_int_equal(st_ssl_cert_parse(ca_ok.cert, &info, msg, sizeof(msg)), 0);
    o = obj_ok(ST_ENT_CA_CERTIFICATE, 0, ca_obj(ca_ok.cert));
    assert_string_equal(json_string_value(json_object_get(o, "cert_digest")), info.digest);
    json_decref(o);
    /* a digest given is overwritten by the computed one */
    o = ca_obj(ca_ok.cert);
    json_object_set_new(o, "cert_digest", json_string("abc"));
    o = obj_ok(ST_ENT_CA_CERTIFICATE, 0, o);
    assert_string_equal(json_string_value(json_object_get(o, "cert_digest")), info.digest);
    json_decref(o);
    o = ca_obj(ca_ok.cert);
    json_object_set_new(o, "cert_digest", json_integer(5));
    json_decref(obj_ok(ST_ENT_CA_CERTIFICATE, 0, o));

    obj_msg(ST_ENT_CA_CERTIFICATE, 0, ca_obj(two),
            "schema violation (please submit only one certificate at a time)", true);
    obj_msg(ST_ENT_CA_CERTIFICATE, 0, ca_obj(ca_old.cert),
            "schema violation (certificate expired, \"Not After\" time is in the past)", true);
    obj_msg(ST_ENT_CA_CERTIFICATE, 0, ca_obj(ec_a.cert), "schema violation (" MSG_NOT_CA ")", true);
    obj_msg(ST_ENT_CA_CERTIFICATE, 0, ca_obj("nope"),
            "schema violation (cert: invalid certificate: x509.new: ", false);
    obj_msg(ST_ENT_CA_CERTIFICATE, 0, json_object(),
            "schema violation (cert: required field missing)", true);
    /* stored (the DP's snapshot parse): the time of writing decided expiry */
    json_decref(obj_ok(ST_ENT_CA_CERTIFICATE, ST_SCHEMA_F_STORED, ca_obj(ca_old.cert)));
    obj_msg(ST_ENT_CA_CERTIFICATE, ST_SCHEMA_F_STORED, ca_obj(ec_a.cert),
            "schema violation (" MSG_NOT_CA ")", true);
    free(two);
}

/* Issue 14, defect 5: limits that keep every accepted entity sendable to the DPs. */

/* A string of n copies of c (json). */
static json_t *
str_of(size_t n, char c)
{
    char *b = malloc(n + 1);
    json_t *v;

    assert_non_null(b);
    memset(b, c, n);
    b[n] = '\0';
    v = json_string(b);
    free(b);
    return v;
}

static void
test_limits_names_and_tags(void **state)
{
    json_t *o;
    json_t *tags;
    json_t *f = NULL;

    (void)state;
    /* names: 256 bytes pass, 257 do not (services, routes, snis) */
    o = load("{\"host\": \"h.org\"}");
    json_object_set_new(o, "name", str_of(ST_SCHEMA_NAME_MAX, 'n'));
    json_decref(obj_ok(ST_ENT_SERVICE, 0, o));
    o = load("{\"host\": \"h.org\"}");
    json_object_set_new(o, "name", str_of(ST_SCHEMA_NAME_MAX + 1, 'n'));
    obj_msg(ST_ENT_SERVICE, 0, o, "schema violation (name: length must be at most 256)", true);
    o = load("{\"protocols\": [\"tcp\"]" DST "}");
    json_object_set_new(o, "name", str_of(ST_SCHEMA_NAME_MAX + 1, 'r'));
    obj_msg(ST_ENT_ROUTE, 0, o, "schema violation (name: length must be at most 256)", true);
    o = load("{\"certificate\": {\"id\": \"" UUID1 "\"}}");
    json_object_set_new(o, "name", str_of(ST_SCHEMA_NAME_MAX + 1, 'a'));
    obj_msg(ST_ENT_SNI, 0, o, "schema violation (name: length must be at most 256)", true);

    /* a tag: 256 bytes pass, 257 do not, at its position */
    o = load("{\"host\": \"h.org\", \"tags\": [\"a\"]}");
    json_array_append_new(json_object_get(o, "tags"), str_of(ST_SCHEMA_TAG_MAX, 't'));
    json_decref(obj_ok(ST_ENT_SERVICE, 0, o));
    o = load("{\"host\": \"h.org\", \"tags\": [\"a\"]}");
    json_array_append_new(json_object_get(o, "tags"), str_of(ST_SCHEMA_TAG_MAX + 1, 't'));
    assert_int_equal(st_schema_validate(ST_ENT_SERVICE, o, &f), -ST_ESCHEMA);
    assert_json(f, "{\"tags\": [null, \"length must be at most 256\"]}");
    json_decref(f);
    json_decref(o);

    /* 64 tags pass, 65 do not (every kind has tags) */
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        char t[16];

        tags = json_array();
        for (int i = 0; i <= ST_SCHEMA_TAGS_MAX; i++) {
            snprintf(t, sizeof(t), "t%d", i);
            json_array_append_new(tags, json_string(t));
        }
        o = json_pack("{s:o}", "tags", tags);
        f = NULL;
        assert_int_equal(st_schema_validate((enum st_entity_kind)k, o, &f), -ST_ESCHEMA);
        assert_string_equal(json_string_value(json_object_get(f, "tags")),
                            "length must be at most 64");
        json_decref(f);
        json_decref(o);
    }
    o = load("{\"host\": \"h.org\", \"tags\": []}");
    for (int i = 0; i < ST_SCHEMA_TAGS_MAX; i++) {
        char t[16];

        snprintf(t, sizeof(t), "t%d", i);
        json_array_append_new(json_object_get(o, "tags"), json_string(t));
    }
    json_decref(obj_ok(ST_ENT_SERVICE, 0, o));
}

/* One entity as stored is at most 1 MiB; the DP's check of a snapshot applies it too. */
static void
test_limits_entity_size(void **state)
{
    json_t *o;
    json_t *f = NULL;
    char buf[1024];
    char want[128];
    size_t stored;

    (void)state;
    /* a route of many destinations, about 1.8 MB stored */
    o = load("{\"protocols\": [\"tcp\"], \"destinations\": []}");
    for (int i = 0; i < 60000; i++) {
        json_array_append_new(json_object_get(o, "destinations"),
                              json_pack("{s:s,s:i}", "ip", "10.0.0.1", "port", 1 + i % 65000));
    }
    assert_int_equal(st_schema_validate(ST_ENT_ROUTE, o, &f), -ST_ESCHEMA);
    stored = json_dumpb(o, NULL, 0, JSON_COMPACT);
    assert_true(stored > ST_SCHEMA_ENTITY_MAX);
    snprintf(want, sizeof(want),
             "schema violation (entity too large: %zu bytes stored, at most %u)", stored,
             ST_SCHEMA_ENTITY_MAX);
    st_schema_message(f, buf, sizeof(buf));
    assert_string_equal(buf, want);
    json_decref(f);
    /* the same as a stored entity (the DP's snapshot check) */
    f = NULL;
    assert_int_equal(st_schema_validate_ex(ST_ENT_ROUTE, o, ST_SCHEMA_F_STORED, &f), -ST_ESCHEMA);
    json_decref(f);
    json_decref(o);

    /* just below the limit passes */
    o = load("{\"protocols\": [\"tcp\"], \"destinations\": []}");
    for (int i = 0; i < 30000; i++) {
        json_array_append_new(json_object_get(o, "destinations"),
                              json_pack("{s:s,s:i}", "ip", "10.0.0.1", "port", 1 + i % 65000));
    }
    json_decref(obj_ok(ST_ENT_ROUTE, 0, o));
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
        cmocka_unit_test(test_tls_protocols),
        cmocka_unit_test(test_service_tls_fields),
        cmocka_unit_test(test_route_tls_rules),
        cmocka_unit_test(test_certificate_ok),
        cmocka_unit_test(test_certificate_errors),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_ca_certificate),
        cmocka_unit_test(test_limits_names_and_tags),
        cmocka_unit_test(test_limits_entity_size),
    };

    return cmocka_run_group_tests(tests, make_certs, free_certs);
}
