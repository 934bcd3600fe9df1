/* st_decl: Kong's declarative configuration (issue 5, point 3): YAML and JSON
 * documents into validated entities, Kong's code-14 error bodies (nested `fields`,
 * message, flattened_errors), and the export that reads back the same entities. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_decl.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_testcert.h"

#define NOW     1700000000000LL
#define UUID1   "3f4e2d1c-0b9a-4877-8655-443322110001"
#define UUID2   "3f4e2d1c-0b9a-4877-8655-443322110002"
#define UUID3   "3f4e2d1c-0b9a-4877-8655-443322110003"
#define UUID4   "3f4e2d1c-0b9a-4877-8655-443322110004"
#define UUID5   "3f4e2d1c-0b9a-4877-8655-443322110005"
#define INVALID "declarative config is invalid: "

static struct tc_pair redis; /* EC, CN redis.example.com */
static struct tc_pair other; /* EC, CN other.example.com */
static struct tc_pair ca;    /* EC, a CA */

static int
make_certs(void **state)
{
    (void)state;
    redis = tc_make(TC_EC, "redis.example.com", false, -1, 365);
    other = tc_make(TC_EC, "other.example.com", false, -1, 365);
    ca = tc_make(TC_EC, "Test CA", true, -1, 365);
    return 0;
}

static int
free_certs(void **state)
{
    (void)state;
    tc_free(&redis);
    tc_free(&other);
    tc_free(&ca);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */

struct res {
    int rc;
    json_t *lists[ST_ENT__COUNT];
    json_t *error;
};

static struct res
parse_opts(const char *text, const struct st_decl_opts *o)
{
    struct res r;

    r.rc = st_decl_parse(text, strlen(text), o, r.lists, &r.error);
    return r;
}

static struct res
parse(const char *text)
{
    struct st_decl_opts o = {.now_ms = NOW};

    return parse_opts(text, &o);
}

static void
res_free(struct res *r)
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(r->lists[k]);
    }
    json_decref(r->error);
}

static char *
dump(const json_t *v)
{
    return json_dumps(v, JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_COMPACT);
}

static void
assert_json(const json_t *v, const char *text)
{
    json_error_t e;
    json_t *want = json_loads(text, JSON_DECODE_ANY, &e);

    if (want == NULL) {
        fail_msg("bad test JSON: %s: %s", text, e.text);
    }
    if (!json_equal(v, want)) {
        char *got = dump(v);
        fail_msg("got %s\nwant %s", got, text);
    }
    json_decref(want);
}

/* The text must parse; returns the result. */
static struct res
expect_ok(const char *text)
{
    struct res r = parse(text);

    if (r.rc != 0) {
        char *e = dump(r.error);
        fail_msg("unexpected error %s for:\n%s", e, text);
    }
    assert_null(r.error);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        assert_true(json_is_array(r.lists[k]));
    }
    return r;
}

/* The text must fail with exactly these fields and message; returns the error. */
static json_t *
expect_err(const char *text, const char *fields, const char *message)
{
    struct res r = parse(text);
    json_t *e;

    if (r.rc == 0) {
        fail_msg("parsed, wanted an error: %s", text);
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        assert_null(r.lists[k]);
    }
    e = r.error;
    assert_non_null(e);
    assert_int_equal(json_integer_value(json_object_get(e, "code")), 14);
    assert_string_equal(json_string_value(json_object_get(e, "name")),
                        "invalid declarative configuration");
    if (fields != NULL) {
        assert_json(json_object_get(e, "fields"), fields);
    }
    if (message != NULL) {
        assert_string_equal(json_string_value(json_object_get(e, "message")), message);
    }
    return e;
}

static json_t *
ent(const struct res *r, enum st_entity_kind k, size_t i)
{
    json_t *o = json_array_get(r->lists[k], i);

    assert_non_null(o);
    return o;
}

static const char *
sget(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long
iget(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static const char *
fk(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(json_object_get(o, key), "id"));
}

/* pem as a YAML literal block, each line indented by n spaces. */
static char *
yaml_block(const char *pem, int n)
{
    size_t cap = strlen(pem) * 2 + 64;
    char *out = malloc(cap);
    size_t len = 0;
    const char *p = pem;

    assert_non_null(out);
    len += (size_t)snprintf(out + len, cap - len, "|\n");
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);

        len += (size_t)snprintf(out + len, cap - len, "%*s%.*s\n", n, "", (int)l, p);
        p += l + (nl != NULL);
    }
    out[len > 0 ? len - 1 : 0] = '\0'; /* the caller's format adds the last newline */
    return out;
}

/* ------------------------------------------------------------------------ */
/* the reference's stream example (§7.1), YAML and JSON                        */

static char *
stream_yaml(void)
{
    char *cert = yaml_block(redis.cert, 4);
    char *key = yaml_block(redis.key, 4);
    size_t cap = strlen(cert) + strlen(key) + 1024;
    char *text = malloc(cap);

    assert_non_null(text);
    snprintf(text, cap,
             "_format_version: \"3.0\"\n"
             "_comment: the stream example\n"
             "services:\n"
             "- name: redis\n"
             "  url: tcp://10.0.0.5:6379\n"
             "  routes:\n"
             "  - name: redis-tls\n"
             "    protocols: [tls]\n"
             "    snis: [redis.example.com]\n"
             "- name: pg-pass\n"
             "  protocol: tcp\n"
             "  host: 10.0.0.6\n"
             "  port: 5432\n"
             "  routes:\n"
             "  - name: pg\n"
             "    protocols: [tls_passthrough]\n"
             "    snis: [\"*.db.example.com\"]\n"
             "certificates:\n"
             "- cert: %s\n"
             "  key: %s\n"
             "  snis:\n"
             "  - name: redis.example.com\n",
             cert, key);
    free(cert);
    free(key);
    return text;
}

static void
check_stream(const struct res *r)
{
    json_t *redis_svc = ent(r, ST_ENT_SERVICE, 0);
    json_t *pg_svc = ent(r, ST_ENT_SERVICE, 1);
    json_t *rt = ent(r, ST_ENT_ROUTE, 0);
    json_t *pg = ent(r, ST_ENT_ROUTE, 1);
    json_t *cert = ent(r, ST_ENT_CERTIFICATE, 0);
    json_t *sni = ent(r, ST_ENT_SNI, 0);

    assert_int_equal(json_array_size(r->lists[ST_ENT_SERVICE]), 2);
    assert_int_equal(json_array_size(r->lists[ST_ENT_ROUTE]), 2);
    assert_int_equal(json_array_size(r->lists[ST_ENT_CERTIFICATE]), 1);
    assert_int_equal(json_array_size(r->lists[ST_ENT_SNI]), 1);
    assert_int_equal(json_array_size(r->lists[ST_ENT_CA_CERTIFICATE]), 0);
    /* the url shorthand expanded, defaults filled, ids made, timestamps now */
    assert_string_equal(sget(redis_svc, "name"), "redis");
    assert_string_equal(sget(redis_svc, "protocol"), "tcp");
    assert_string_equal(sget(redis_svc, "host"), "10.0.0.5");
    assert_int_equal(iget(redis_svc, "port"), 6379);
    assert_int_equal(iget(redis_svc, "retries"), 5);
    assert_null(json_object_get(redis_svc, "url"));
    assert_null(json_object_get(redis_svc, "routes"));
    assert_true(st_schema_is_uuid(sget(redis_svc, "id")));
    assert_int_equal(iget(redis_svc, "created_at"), NOW);
    assert_int_equal(iget(redis_svc, "updated_at"), NOW);
    assert_int_equal(iget(pg_svc, "port"), 5432);
    /* nested routes carry their parent's id */
    assert_string_equal(sget(rt, "name"), "redis-tls");
    assert_string_equal(fk(rt, "service"), sget(redis_svc, "id"));
    assert_string_equal(fk(pg, "service"), sget(pg_svc, "id"));
    assert_json(json_object_get(pg, "snis"), "[\"*.db.example.com\"]");
    assert_json(json_object_get(pg, "protocols"), "[\"tls_passthrough\"]");
    /* the certificate and its nested sni */
    assert_string_equal(sget(cert, "cert"), redis.cert);
    assert_string_equal(sget(cert, "key"), redis.key);
    assert_null(json_object_get(cert, "snis"));
    assert_string_equal(sget(sni, "name"), "redis.example.com");
    assert_string_equal(fk(sni, "certificate"), sget(cert, "id"));
    assert_int_equal(iget(sni, "created_at"), NOW);
    /* all distinct ids */
    assert_string_not_equal(sget(redis_svc, "id"), sget(pg_svc, "id"));
    assert_string_not_equal(sget(rt, "id"), sget(pg, "id"));
}

static void
test_stream_yaml(void **state)
{
    char *text = stream_yaml();
    struct res r = expect_ok(text);

    (void)state;
    check_stream(&r);
    res_free(&r);
    free(text);
}

static void
test_stream_json(void **state)
{
    json_t *doc = json_pack(
        "{s:s, s:[{s:s,s:s,s:[{s:s,s:[s],s:[s]}]},{s:s,s:s,s:s,s:i,s:[{s:s,s:[s],s:[s]}]}],"
        " s:[{s:s,s:s,s:[{s:s}]}]}",
        "_format_version", "3.0", "services", "name", "redis", "url", "tcp://10.0.0.5:6379",
        "routes", "name", "redis-tls", "protocols", "tls", "snis", "redis.example.com", "name",
        "pg-pass", "protocol", "tcp", "host", "10.0.0.6", "port", 5432, "routes", "name", "pg",
        "protocols", "tls_passthrough", "snis", "*.db.example.com", "certificates", "cert",
        redis.cert, "key", redis.key, "snis", "name", "redis.example.com");
    char *text = json_dumps(doc, JSON_INDENT(2));
    struct res r = expect_ok(text);

    (void)state;
    check_stream(&r);
    res_free(&r);
    free(text);
    json_decref(doc);
}

/* "{" that is YAML, not JSON, is read as YAML (Kong: cjson, then lyaml). */
static void
test_flow_yaml(void **state)
{
    struct res r = expect_ok("{_format_version: '3.0', services: [{name: a, host: x.org,"
                             " routes: [{destinations: [{port: 80}]}]}]}");

    (void)state;
    assert_int_equal(json_array_size(r.lists[ST_ENT_ROUTE]), 1);
    res_free(&r);
}

static void
test_versions(void **state)
{
    static const char *const ok[] = {"1.1", "2.1", "3.0"};
    char text[256];

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        struct res r;

        snprintf(text, sizeof(text),
                 "_format_version: \"%s\"\nservices:\n- name: s\n  host: example.com\n", ok[i]);
        r = expect_ok(text);
        assert_int_equal(json_array_size(r.lists[ST_ENT_SERVICE]), 1);
        res_free(&r);
    }
    /* an empty configuration is a configuration */
    {
        struct res r = expect_ok("_format_version: '3.0'\n");

        for (int k = 0; k < ST_ENT__COUNT; k++) {
            assert_int_equal(json_array_size(r.lists[k]), 0);
        }
        res_free(&r);
    }
}

/* ------------------------------------------------------------------------ */
/* references, ids, timestamps                                                */

static void
test_refs_by_name_and_id(void **state)
{
    char *cert = yaml_block(redis.cert, 4);
    char *key = yaml_block(redis.key, 4);
    char *cacert = yaml_block(ca.cert, 4);
    char text[16384];
    struct res r;
    json_t *svc;

    (void)state;
    snprintf(text, sizeof(text),
             "_format_version: '3.0'\n"
             "services:\n"
             "- name: a\n"
             "  id: " UUID1 "\n"
             "  host: a.example.com\n"
             "- name: tls-svc\n"
             "  protocol: tls\n"
             "  host: b.example.com\n"
             "  client_certificate: " UUID2 "\n"
             "  ca_certificates: [" UUID3 "]\n"
             "routes:\n"
             "- name: by-name\n"
             "  service: a\n"
             "  destinations: [{port: 1}]\n"
             "- name: by-id\n"
             "  service: " UUID1 "\n"
             "  destinations: [{port: 2}]\n"
             "- name: by-id-record\n"
             "  service: {id: " UUID1 "}\n"
             "  destinations: [{port: 3}]\n"
             "- name: by-name-record\n"
             "  service: {name: tls-svc}\n"
             "  destinations: [{port: 4}]\n"
             "- name: no-service\n"
             "  destinations: [{port: 5}]\n"
             "certificates:\n"
             "- id: " UUID2 "\n"
             "  cert: %s\n"
             "  key: %s\n"
             "snis:\n"
             "- name: top.example.com\n"
             "  certificate: " UUID2 "\n"
             "- name: rec.example.com\n"
             "  certificate: {id: " UUID2 "}\n"
             "ca_certificates:\n"
             "- id: " UUID3 "\n"
             "  cert: %s\n",
             cert, key, cacert);
    r = expect_ok(text);
    svc = ent(&r, ST_ENT_SERVICE, 1);
    assert_string_equal(fk(ent(&r, ST_ENT_ROUTE, 0), "service"), UUID1);
    assert_string_equal(fk(ent(&r, ST_ENT_ROUTE, 1), "service"), UUID1);
    assert_string_equal(fk(ent(&r, ST_ENT_ROUTE, 2), "service"), UUID1);
    assert_string_equal(fk(ent(&r, ST_ENT_ROUTE, 3), "service"), sget(svc, "id"));
    assert_true(json_is_null(json_object_get(ent(&r, ST_ENT_ROUTE, 4), "service")));
    assert_json(json_object_get(ent(&r, ST_ENT_ROUTE, 2), "service"), "{\"id\": \"" UUID1 "\"}");
    assert_string_equal(fk(ent(&r, ST_ENT_SNI, 0), "certificate"), UUID2);
    assert_string_equal(fk(ent(&r, ST_ENT_SNI, 1), "certificate"), UUID2);
    assert_string_equal(fk(svc, "client_certificate"), UUID2);
    assert_json(json_object_get(svc, "ca_certificates"), "[\"" UUID3 "\"]");
    assert_string_equal(sget(ent(&r, ST_ENT_CA_CERTIFICATE, 0), "id"), UUID3);
    assert_int_equal(strlen(sget(ent(&r, ST_ENT_CA_CERTIFICATE, 0), "cert_digest")), 64);
    res_free(&r);
    free(cert);
    free(key);
    free(cacert);
}

/* certificates[].services[] (client_certificate) and services[].routes[] inside it. */
static void
test_nested_two_levels(void **state)
{
    char *cert = yaml_block(redis.cert, 4);
    char *key = yaml_block(redis.key, 4);
    char text[16384];
    struct res r;

    (void)state;
    snprintf(text, sizeof(text),
             "_format_version: '3.0'\n"
             "certificates:\n"
             "- cert: %s\n"
             "  key: %s\n"
             "  services:\n"
             "  - name: mtls\n"
             "    protocol: tls\n"
             "    host: up.example.com\n"
             "    routes:\n"
             "    - name: r\n"
             "      destinations: [{port: 9}]\n",
             cert, key);
    r = expect_ok(text);
    assert_string_equal(fk(ent(&r, ST_ENT_SERVICE, 0), "client_certificate"),
                        sget(ent(&r, ST_ENT_CERTIFICATE, 0), "id"));
    assert_string_equal(fk(ent(&r, ST_ENT_ROUTE, 0), "service"),
                        sget(ent(&r, ST_ENT_SERVICE, 0), "id"));
    res_free(&r);
    free(cert);
    free(key);
}

static int lookups;

static int
lookup(void *arg, enum st_entity_kind k, const char *name, char id[37], int64_t *created_at_ms)
{
    (void)arg;
    lookups++;
    if (k == ST_ENT_SERVICE && strcmp(name, "known") == 0) {
        memcpy(id, UUID4, 37);
        *created_at_ms = 1500000000000LL;
        return 0;
    }
    if (k == ST_ENT_ROUTE && strcmp(name, "known-route") == 0) {
        memcpy(id, UUID5, 37);
        *created_at_ms = 1400000000000LL;
        return 0;
    }
    return -1;
}

static void
test_lookup_keeps_ids(void **state)
{
    struct st_decl_opts o = {.lookup = lookup, .now_ms = NOW};
    struct res r;

    (void)state;
    lookups = 0;
    r = parse_opts("_format_version: '3.0'\n"
                   "services:\n"
                   "- name: known\n"
                   "  host: a.org\n"
                   "  routes:\n"
                   "  - name: known-route\n"
                   "    destinations: [{port: 1}]\n"
                   "  - name: new-route\n"
                   "    destinations: [{port: 2}]\n"
                   "- name: new\n"
                   "  host: b.org\n"
                   "- name: given\n"
                   "  id: " UUID1 "\n"
                   "  host: c.org\n",
                   &o);
    assert_int_equal(r.rc, 0);
    assert_string_equal(sget(ent(&r, ST_ENT_SERVICE, 0), "id"), UUID4);
    assert_int_equal(iget(ent(&r, ST_ENT_SERVICE, 0), "created_at"), 1500000000000LL);
    assert_int_equal(iget(ent(&r, ST_ENT_SERVICE, 0), "updated_at"), NOW);
    assert_string_equal(sget(ent(&r, ST_ENT_ROUTE, 0), "id"), UUID5);
    assert_int_equal(iget(ent(&r, ST_ENT_ROUTE, 0), "created_at"), 1400000000000LL);
    assert_string_equal(fk(ent(&r, ST_ENT_ROUTE, 0), "service"), UUID4);
    assert_true(st_schema_is_uuid(sget(ent(&r, ST_ENT_ROUTE, 1), "id")));
    assert_int_equal(iget(ent(&r, ST_ENT_ROUTE, 1), "created_at"), NOW);
    assert_true(st_schema_is_uuid(sget(ent(&r, ST_ENT_SERVICE, 1), "id")));
    assert_string_not_equal(sget(ent(&r, ST_ENT_SERVICE, 1), "id"), UUID4);
    /* an entity with an id is not looked up */
    assert_string_equal(sget(ent(&r, ST_ENT_SERVICE, 2), "id"), UUID1);
    assert_int_equal(lookups, 4);
    res_free(&r);
}

static void
test_ids_and_timestamps_kept(void **state)
{
    struct res r = expect_ok("{\"_format_version\": \"3.0\", \"services\": [{\"id\": \"" UUID1
                             "\", \"name\": \"s\", \"host\": \"h.org\","
                             " \"created_at\": 1566863706, \"updated_at\": 1566863800}]}");
    json_t *s = ent(&r, ST_ENT_SERVICE, 0);

    (void)state;
    assert_string_equal(sget(s, "id"), UUID1);
    assert_int_equal(iget(s, "created_at"), 1566863706000LL);
    assert_int_equal(iget(s, "updated_at"), 1566863800000LL);
    res_free(&r);
}

/* _comment, _ignore, _transform, _workspace; null and empty collections. */
static void
test_meta_fields(void **state)
{
    struct res r = expect_ok("_format_version: '3.0'\n"
                             "_transform: false\n"
                             "_workspace: default\n"
                             "_comment: top\n"
                             "_ignore: [1, 2]\n"
                             "upstreams: []\n"
                             "plugins: ~\n"
                             "routes: ~\n"
                             "services:\n"
                             "- name: s\n"
                             "  _comment: in an entity\n"
                             "  _ignore: [{anything: 1}]\n"
                             "  host: h.org\n");

    (void)state;
    assert_null(json_object_get(ent(&r, ST_ENT_SERVICE, 0), "_comment"));
    assert_null(json_object_get(ent(&r, ST_ENT_SERVICE, 0), "_ignore"));
    res_free(&r);
}

/* Plain scalars are typed by the core schema, quoted ones are strings; aliases. */
static void
test_yaml_scalars(void **state)
{
    struct res r;

    (void)state;
    /* an anchor at the top level is an unknown field */
    r = parse("_format_version: '3.0'\n"
              "x-defaults: &d {host: h.org, port: 81}\n"
              "services:\n"
              "- *d\n");
    assert_int_equal(r.rc, -ST_ESCHEMA);
    assert_json(json_object_get(r.error, "fields"), "{\"x-defaults\": \"unknown field\"}");
    res_free(&r);

    r = expect_ok("_format_version: '3.0'\n"
                  "services:\n"
                  "- &d {host: h.org, port: 81, name: a}\n"
                  "- {host: h.org, port: 0o17, name: b, enabled: TRUE, retries: +3}\n"
                  "- {host: h.org, name: d, tags: &x [a, b]}\n"
                  "- {host: h.org, port: 0x1F90, name: c, retries: !!int '7', tags: *x}\n");
    assert_int_equal(iget(ent(&r, ST_ENT_SERVICE, 0), "port"), 81);
    assert_int_equal(iget(ent(&r, ST_ENT_SERVICE, 1), "port"), 15);
    assert_int_equal(iget(ent(&r, ST_ENT_SERVICE, 1), "retries"), 3);
    assert_true(json_is_true(json_object_get(ent(&r, ST_ENT_SERVICE, 1), "enabled")));
    assert_int_equal(iget(ent(&r, ST_ENT_SERVICE, 3), "port"), 8080);
    assert_int_equal(iget(ent(&r, ST_ENT_SERVICE, 3), "retries"), 7);
    assert_json(json_object_get(ent(&r, ST_ENT_SERVICE, 3), "tags"), "[\"a\", \"b\"]");
    res_free(&r);

    r = expect_ok("_format_version: '3.0'\n"
                  "services:\n"
                  "- name: '123'\n"
                  "  host: h.org\n"
                  "  enabled: False\n"
                  "  tags: ['true', \"1.5\", ~x, yes, null-ish]\n");
    assert_string_equal(sget(ent(&r, ST_ENT_SERVICE, 0), "name"), "123");
    assert_true(json_is_false(json_object_get(ent(&r, ST_ENT_SERVICE, 0), "enabled")));
    assert_json(json_object_get(ent(&r, ST_ENT_SERVICE, 0), "tags"),
                "[\"true\", \"1.5\", \"~x\", \"yes\", \"null-ish\"]");
    res_free(&r);

    /* a number JSON cannot hold stays a string */
    json_decref(expect_err("_format_version: '3.0'\nservices:\n- host: h.org\n  port: 1e999\n",
                           "{\"services\": [{\"port\": \"expected an integer\"}]}", NULL));
    /* a quoted number is a string: Kong's "expected an integer" */
    json_decref(expect_err("_format_version: '3.0'\nservices:\n- host: h.org\n  port: '80'\n",
                           "{\"services\": [{\"port\": \"expected an integer\"}]}",
                           INVALID "{services={{port=\"expected an integer\"}}}"));
}

/* ------------------------------------------------------------------------ */
/* errors                                                                     */

static void
test_err_format_version(void **state)
{
    (void)state;
    json_decref(expect_err("services: []\n", "{\"_format_version\": \"required field missing\"}",
                           INVALID "{_format_version=\"required field missing\"}"));
    json_decref(expect_err("_format_version: '3.1'\n",
                           "{\"_format_version\": \"expected one of: 1.1, 2.1, 3.0\"}",
                           INVALID "{_format_version=\"expected one of: 1.1, 2.1, 3.0\"}"));
    /* unquoted 3.0 is a number in YAML, as for Kong */
    json_decref(expect_err("_format_version: 3.0\n", "{\"_format_version\": \"expected a string\"}",
                           INVALID "{_format_version=\"expected a string\"}"));
    json_decref(expect_err("_format_version: '3.0'\n_transform: 'no'\n",
                           "{\"_transform\": \"expected a boolean\"}",
                           INVALID "{_transform=\"expected a boolean\"}"));
}

static void
test_err_unknown_and_unsupported(void **state)
{
    (void)state;
    json_decref(expect_err("_format_version: '3.0'\nfoo: 1\nbar-baz: ~\n",
                           "{\"foo\": \"unknown field\", \"bar-baz\": \"unknown field\"}",
                           INVALID "{[\"bar-baz\"]=\"unknown field\",foo=\"unknown field\"}"));
    json_decref(expect_err("_format_version: '3.0'\nconsumers:\n- username: x\n"
                           "vaults:\n- prefix: x\n",
                           "{\"consumers\": \"'consumers' is not supported yet\","
                           " \"vaults\": \"'vaults' is not supported yet\"}",
                           INVALID "{consumers=\"'consumers' is not supported yet\","
                                   "vaults=\"'vaults' is not supported yet\"}"));
    json_decref(expect_err("_format_version: '3.0'\nservices: {name: x}\n",
                           "{\"services\": \"expected an array\"}",
                           INVALID "{services=\"expected an array\"}"));
}

/* Kong's spec 15-off_spec "returns 400 on a validation error", word for word. */
static void
test_err_kong_validation_example(void **state)
{
    (void)state;
    json_decref(expect_err("_format_version: \"1.1\"\nservices:\n- port: -12\n",
                           "{\"services\": [{\"host\": \"required field missing\","
                           " \"port\": \"value should be between 0 and 65535\"}]}",
                           INVALID "{services={{host=\"required field missing\","
                                   "port=\"value should be between 0 and 65535\"}}}"));
}

/* Every schema problem of the document at once, each where Kong puts it. */
static void
test_err_nested_all_at_once(void **state)
{
    char text[8192];
    json_t *e;
    json_t *fields;
    json_t *certs;
    const char *msg;

    (void)state;
    snprintf(text, sizeof(text),
             "_format_version: '3.0'\n"
             "_comment: 5\n"
             "services:\n"
             "- name: ok\n"
             "  host: h.org\n"
             "- name: bad\n"
             "  id: not-a-uuid\n"
             "  host: h.org\n"
             "  port: 70000\n"
             "  routes:\n"
             "  - name: fine\n"
             "    destinations: [{port: 1}]\n"
             "  - name: r2\n"
             "    protocols: [tcp]\n"
             "  - name: r3\n"
             "    service: ok\n"
             "    destinations: [{port: 1}]\n"
             "- not a record\n"
             "routes:\n"
             "- name: top\n"
             "  service: 17\n"
             "  destinations: [{ip: 300.1.1.1}]\n"
             "certificates:\n"
             "- cert: nope\n"
             "  key: %s\n"
             "  snis:\n"
             "  - shorthand.example.com\n"
             "  - name: '*.*.bad'\n",
             "x");
    e = expect_err(text, NULL, NULL);
    fields = json_object_get(e, "fields");
    certs = json_array_get(json_object_get(fields, "certificates"), 0);
    /* the PEM errors end with OpenSSL's reason, which depends on its version */
    msg = json_string_value(json_object_get(certs, "cert"));
    assert_non_null(msg);
    assert_true(strncmp(msg, "invalid certificate: x509.new: ", 31) == 0);
    msg = json_string_value(json_object_get(certs, "key"));
    assert_non_null(msg);
    assert_true(strncmp(msg, "invalid key: pkey.new:load_key: ", 32) == 0);
    json_object_del(certs, "cert");
    json_object_del(certs, "key");
    assert_json(
        fields,
        "{\"_comment\": \"expected a string\","
        " \"services\": [null, {\"id\": \"expected a valid UUID\","
        "   \"port\": \"value should be between 0 and 65535\","
        "   \"routes\": [null, {\"@entity\": [\"must set one of 'sources', 'destinations', 'snis'"
        " when 'protocols' is 'tcp', 'tls' or 'udp'\"]}, {\"service\": \"value must be null\"}]},"
        "  \"expected a record\"],"
        " \"routes\": [{\"service\": \"expected a record\","
        "   \"destinations\": [{\"ip\": \"invalid ip or cidr range: '300.1.1.1'\"}]}],"
        " \"certificates\": [{\"snis\": [\"expected a record\","
        "   {\"name\": \"only one wildcard must be specified\"}]}]}");
    /* the message lists them all, Lua-style */
    msg = json_string_value(json_object_get(e, "message"));
    assert_true(strncmp(msg, INVALID "{_comment=\"expected a string\",certificates={{cert=", 62) ==
                0);
    assert_non_null(strstr(msg, ",services={[2]={id=\"expected a valid UUID\",port=\"value should"
                                " be between 0 and 65535\",routes={[2]={[\"@entity\"]={\"must set"
                                " one of"));
    assert_non_null(
        strstr(msg, "},[3]={service=\"value must be null\"}}},[3]=\"expected a record\"}}"));
    json_decref(e);
}

static void
test_err_duplicates(void **state)
{
    (void)state;
    json_decref(expect_err(
        "_format_version: '3.0'\nservices:\n- name: foo\n  host: a.org\n- name: foo\n"
        "  host: b.org\n",
        "{\"services\": [null, \"uniqueness violation: 'services' entity with name set to 'foo'"
        " already declared\"]}",
        INVALID "{services={[2]=\"uniqueness violation: 'services' entity with name set to 'foo'"
                " already declared\"}}"));
    json_decref(expect_err("_format_version: '3.0'\nservices:\n- id: " UUID1
                           "\n  host: a.org\n- id: " UUID1 "\n"
                           "  host: b.org\n",
                           "{\"services\": [null, \"uniqueness violation: 'services' entity with "
                           "primary key set to '" UUID1 "' already declared\"]}",
                           NULL));
    /* a nested duplicate (against a route declared earlier) under its parent */
    json_decref(expect_err(
        "_format_version: '3.0'\nservices:\n- name: s\n  host: a.org\n  routes:\n"
        "  - name: r\n    destinations: [{port: 1}]\n  - name: r\n    destinations: [{port: 2}]\n"
        "routes:\n- name: r\n  destinations: [{port: 3}]\n",
        "{\"services\": [{\"routes\": [null, \"uniqueness violation: 'routes' entity with name set"
        " to 'r' already declared\"]}],"
        " \"routes\": [\"uniqueness violation: 'routes' entity with name set to 'r' already"
        " declared\"]}",
        NULL));
    /* sni names across nested and top level */
    {
        char *cert = yaml_block(redis.cert, 4);
        char *key = yaml_block(redis.key, 4);
        char text[8192];

        snprintf(text, sizeof(text),
                 "_format_version: '3.0'\ncertificates:\n- id: " UUID2 "\n  cert: %s\n  key: %s\n"
                 "  snis: [{name: a.example.com}]\nsnis:\n- name: a.example.com\n"
                 "  certificate: " UUID2 "\n",
                 cert, key);
        json_decref(expect_err(text,
                               "{\"snis\": [\"uniqueness violation: 'snis' entity with name set"
                               " to 'a.example.com' already declared\"]}",
                               NULL));
        free(cert);
        free(key);
    }
}

static void
test_err_dangling_refs(void **state)
{
    (void)state;
    json_decref(
        expect_err("_format_version: '3.0'\nroutes:\n- name: r1\n  service: nope\n"
                   "  destinations: [{port: 1}]\n",
                   "{\"routes\": {\"r1\": [\"invalid reference 'service: nope' (no such entry in"
                   " 'services')\"]}}",
                   INVALID "{routes={r1={\"invalid reference 'service: nope' (no such entry in"
                           " 'services')\"}}}"));
    /* keyed by id when nameless; a record reference is written as JSON */
    {
        struct res r = parse("_format_version: '3.0'\nroutes:\n- id: " UUID1 "\n"
                             "  service: {id: " UUID2 "}\n  destinations: [{port: 1}]\n");
        char want[512];

        assert_int_equal(r.rc, -ST_ESCHEMA);
        snprintf(want, sizeof(want),
                 "{\"routes\": {\"" UUID1
                 "\": [\"invalid reference 'service: {\\\"id\\\":\\\"" UUID2
                 "\\\"}' (no such entry in 'services')\"]}}");
        assert_json(json_object_get(r.error, "fields"), want);
        res_free(&r);
    }
    /* snis, client certificates and CA certificates point nowhere */
    json_decref(expect_err(
        "_format_version: '3.0'\nsnis:\n- name: x.example.com\n  certificate: " UUID2 "\n"
        "services:\n- name: s\n  protocol: tls\n  host: h.org\n  client_certificate: " UUID2 "\n"
        "  ca_certificates: [" UUID3 "]\n",
        "{\"snis\": {\"x.example.com\": [\"invalid reference 'certificate: " UUID2
        "' (no such entry in 'certificates')\"]},"
        " \"services\": {\"s\": [\"invalid reference 'client_certificate: " UUID2
        "' (no such entry in 'certificates')\", \"invalid reference 'ca_certificates: " UUID3
        "' (no such entry in 'ca_certificates')\"]}}",
        NULL));
    /* a top-level sni must name its certificate */
    json_decref(expect_err("_format_version: '3.0'\nsnis:\n- name: x.example.com\n",
                           "{\"snis\": [{\"certificate\": \"required field missing\"}]}", NULL));
}

static void
test_err_unparsable(void **state)
{
    json_t *e;
    const char *msg;

    (void)state;
    /* Kong's spec 15-off_spec "returns 400 on an invalid config string" */
    e = expect_err("bobby tables",
                   "{\"error\": \"failed parsing declarative configuration: expected an object\"}",
                   INVALID "{error=\"failed parsing declarative configuration: expected an"
                           " object\"}");
    assert_null(json_object_get(e, "flattened_errors"));
    json_decref(e);
    json_decref(expect_err(
        "- a\n- b\n",
        "{\"error\": \"failed parsing declarative configuration: expected an object\"}", NULL));
    json_decref(expect_err(
        "", "{\"error\": \"failed parsing declarative configuration: expected an object\"}", NULL));
    /* malformed YAML: libyaml's problem at line:column */
    {
        struct res r = parse("_format_version: '3.0'\nservices:\n- name: a\n  host: [x\n");

        assert_int_equal(r.rc, -ST_EPARSE);
        msg = json_string_value(json_object_get(json_object_get(r.error, "fields"), "error"));
        assert_non_null(msg);
        if (strncmp(msg, "failed parsing declarative configuration: 5:1: ", 47) != 0) {
            fail_msg("got %s", msg);
        }
        res_free(&r);
    }
    json_decref(expect_err("a: b: c\n",
                           "{\"error\": \"failed parsing declarative configuration: 1:5: mapping"
                           " values are not allowed in this context\"}",
                           NULL));
    json_decref(expect_err("_format_version: '3.0'\nservices: *nope\n",
                           "{\"error\": \"failed parsing declarative configuration: 2:11: found"
                           " undefined alias\"}",
                           NULL));
    /* broken JSON falls through to YAML, whose error is reported (as Kong) */
    e = expect_err("{\"_format_version\": \"3.0\",,}", NULL, NULL);
    json_decref(e);
}

/* Kong's code-14 body with flattened_errors, and st_decl_error_flatten. */
static void
test_flattened(void **state)
{
    json_t *e;
    json_t *flat;

    (void)state;
    e = expect_err("_format_version: '3.0'\n"
                   "services:\n"
                   "- name: svc\n"
                   "  id: " UUID1 "\n"
                   "  tags: [t1]\n"
                   "  host: h.org\n"
                   "  path: /x\n"
                   "  routes:\n"
                   "  - name: rr\n"
                   "    tags: [a, b]\n"
                   "    protocols: [tcp]\n",
                   "{\"services\": [{\"@entity\": [\"failed conditional validation given value of"
                   " field 'protocol'\"], \"path\": \"value must be null\", \"routes\":"
                   " [{\"@entity\": [\"must set one of 'sources', 'destinations', 'snis' when"
                   " 'protocols' is 'tcp', 'tls' or 'udp'\"]}]}]}",
                   NULL);
    flat = json_object_get(e, "flattened_errors");
    /* the route first (children before their parent), with its parent's key */
    assert_json(
        flat,
        "[{\"entity_type\": \"route\", \"entity_name\": \"rr\", \"entity_tags\": [\"a\","
        " \"b\"], \"entity\": {\"name\": \"rr\", \"tags\": [\"a\", \"b\"], \"protocols\":"
        " [\"tcp\"], \"service\": {\"id\": \"" UUID1 "\"}}, \"errors\": [{\"type\":"
        " \"entity\", \"message\": \"must set one of 'sources', 'destinations', 'snis'"
        " when 'protocols' is 'tcp', 'tls' or 'udp'\"}]},"
        " {\"entity_type\": \"service\", \"entity_id\": \"" UUID1 "\", \"entity_name\":"
        " \"svc\", \"entity_tags\": [\"t1\"], \"entity\": {\"name\": \"svc\", \"id\": \"" UUID1
        "\", \"tags\": [\"t1\"], \"host\": \"h.org\", \"path\": \"/x\"}, \"errors\":"
        " [{\"type\": \"field\", \"field\": \"path\", \"message\": \"value must be null\"},"
        " {\"type\": \"entity\", \"message\": \"failed conditional validation given value"
        " of field 'protocol'\"}]}]");
    st_decl_error_flatten(e);
    assert_json(json_object_get(e, "fields"), "{}");
    assert_string_equal(json_string_value(json_object_get(e, "message")), INVALID "{}");
    assert_non_null(json_object_get(e, "flattened_errors"));
    json_decref(e);

    /* top-level errors stay in fields; field paths of nested values and tags */
    e = expect_err("_format_version: '9'\nservices:\n- name: s\n  host: h.org\n  tags: [ok, 5]\n",
                   NULL, NULL);
    assert_json(json_object_get(e, "flattened_errors"),
                "[{\"entity_type\": \"service\", \"entity_name\": \"s\", \"entity\": {\"name\":"
                " \"s\", \"host\": \"h.org\", \"tags\": [\"ok\", 5]}, \"errors\": [{\"type\":"
                " \"field\", \"field\": \"tags.2\", \"message\": \"expected a string\"}]}]");
    st_decl_error_flatten(e);
    assert_json(json_object_get(e, "fields"),
                "{\"_format_version\": \"expected one of: 1.1, 2.1, 3.0\"}");
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        INVALID "{_format_version=\"expected one of: 1.1, 2.1, 3.0\"}");
    json_decref(e);

    /* phase 2 messages become entity errors of their entity */
    e = expect_err("_format_version: '3.0'\nservices:\n- name: a\n  host: h.org\n- name: a\n"
                   "  host: h.org\nroutes:\n- name: r1\n  service: nope\n"
                   "  destinations: [{port: 1}]\n",
                   NULL, NULL);
    assert_json(json_object_get(e, "flattened_errors"),
                "[{\"entity_type\": \"service\", \"entity_name\": \"a\", \"entity\": {\"name\":"
                " \"a\", \"host\": \"h.org\"}, \"errors\": [{\"type\": \"entity\", \"message\":"
                " \"uniqueness violation: 'services' entity with name set to 'a' already"
                " declared\"}]},"
                " {\"entity_type\": \"route\", \"entity_name\": \"r1\", \"entity\": {\"name\":"
                " \"r1\", \"service\": \"nope\", \"destinations\": [{\"port\": 1}]}, \"errors\":"
                " [{\"type\": \"entity\", \"message\": \"invalid reference 'service: nope' (no"
                " such entry in 'services')\"}]}]");
    json_decref(e);

    /* unparsable text: no flattening, as Kong */
    e = expect_err("[", NULL, NULL);
    st_decl_error_flatten(e);
    assert_null(json_object_get(e, "flattened_errors"));
    assert_non_null(json_object_get(json_object_get(e, "fields"), "error"));
    json_decref(e);
}

/* ------------------------------------------------------------------------ */
/* export                                                                     */

static char *
full_doc(void)
{
    char *c1 = yaml_block(redis.cert, 4);
    char *k1 = yaml_block(redis.key, 4);
    char *c2 = yaml_block(other.cert, 4);
    char *k2 = yaml_block(other.key, 4);
    char *cc = yaml_block(ca.cert, 4);
    size_t cap = 32768;
    char *text = malloc(cap);

    assert_non_null(text);
    snprintf(text, cap,
             "_format_version: '3.0'\n"
             "ca_certificates:\n"
             "- cert: %s\n"
             "  tags: [ca]\n"
             "certificates:\n"
             "- id: " UUID2 "\n"
             "  cert: %s\n"
             "  key: %s\n"
             "  snis: [{name: redis.example.com}, {name: '*.redis.example.com', tags: [w]}]\n"
             "- cert: %s\n"
             "  key: %s\n"
             "services:\n"
             "- name: redis\n"
             "  url: tcp://10.0.0.5:6379\n"
             "  tags: ['123', 'true', 'null', 'x y', '0x10', 'yes', '1.5', '~']\n"
             "  routes:\n"
             "  - name: redis-tls\n"
             "    protocols: [tls]\n"
             "    snis: [redis.example.com]\n"
             "  - name: by-src\n"
             "    sources: [{ip: 10.0.0.0/8}, {ip: 192.168.0.1, port: 9}]\n"
             "- name: mtls\n"
             "  protocol: tls\n"
             "  host: up.example.com\n"
             "  port: 443\n"
             "  client_certificate: " UUID2 "\n"
             "  tls_verify: true\n"
             "  tls_verify_depth: 3\n"
             "  created_at: 1600000000\n"
             "routes:\n"
             "- name: orphan\n"
             "  destinations: [{port: 7000}]\n"
             "  preserve_host: true\n",
             cc, c1, k1, c2, k2);
    free(c1);
    free(k1);
    free(c2);
    free(k2);
    free(cc);
    return text;
}

/* The same entities: every list holds, by id, equal objects. */
static void
assert_same_lists(json_t *const a[ST_ENT__COUNT], json_t *const b[ST_ENT__COUNT])
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        size_t i;
        json_t *x;

        assert_int_equal(json_array_size(a[k]), json_array_size(b[k]));
        json_array_foreach(a[k], i, x)
        {
            size_t j;
            json_t *y;
            bool found = false;

            json_array_foreach(b[k], j, y)
            {
                if (strcmp(sget(x, "id"), sget(y, "id")) == 0) {
                    found = true;
                    if (!json_equal(x, y)) {
                        char *dx = dump(x);
                        char *dy = dump(y);
                        fail_msg("differ:\n%s\n%s", dx, dy);
                    }
                }
            }
            if (!found) {
                fail_msg("%s %s lost", st_entity_name((enum st_entity_kind)k), sget(x, "id"));
            }
        }
    }
}

static void
roundtrip(bool yaml)
{
    char *text = full_doc();
    struct res r1 = expect_ok(text);
    struct res r2;
    char *out = NULL;
    char *out2 = NULL;
    size_t len = 0;
    size_t len2 = 0;
    json_t *rev[ST_ENT__COUNT];
    struct st_decl_opts later = {.now_ms = NOW + 5000};

    assert_int_equal(st_decl_export(r1.lists, yaml, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    /* read back (at another time: nothing may depend on it) */
    r2 = parse_opts(out, &later);
    if (r2.rc != 0) {
        char *e = dump(r2.error);
        fail_msg("export does not parse: %s\n%s", e, out);
    }
    assert_same_lists(r1.lists, r2.lists);
    /* deterministic: the same entities in another order give the same text */
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        size_t n = json_array_size(r2.lists[k]);

        rev[k] = json_array();
        for (size_t i = n; i > 0; i--) {
            json_array_append(rev[k], json_array_get(r2.lists[k], i - 1));
        }
    }
    assert_int_equal(st_decl_export(rev, yaml, &out2, &len2), 0);
    assert_string_equal(out, out2);
    free(out2);
    assert_int_equal(st_decl_export(r1.lists, yaml, &out2, &len2), 0);
    assert_string_equal(out, out2);
    if (yaml) {
        assert_non_null(strstr(out, "_format_version: '3.0'\n"));
        assert_non_null(strstr(out, "_transform: false\n"));
        assert_non_null(strstr(out, "- cert: |\n    -----BEGIN CERTIFICATE-----\n"));
        assert_non_null(strstr(out, "- '123'\n"));
        assert_non_null(strstr(out, "- 'true'\n"));
        assert_non_null(strstr(out, "- 'yes'\n"));
        assert_non_null(strstr(out, "created_at: 1600000000\n"));
        assert_null(strstr(out, ": null"));
        assert_true(strncmp(out, "---", 3) != 0);
        assert_null(strstr(out, "\n...\n"));
    } else {
        assert_non_null(strstr(out, "\"_format_version\": \"3.0\""));
        assert_non_null(strstr(out, "\"created_at\": 1600000000"));
        assert_null(strstr(out, ": null"));
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(rev[k]);
    }
    free(out2);
    free(out);
    free(text);
    res_free(&r1);
    res_free(&r2);
}

static void
test_export_yaml_roundtrip(void **state)
{
    (void)state;
    roundtrip(true);
}

static void
test_export_json_roundtrip(void **state)
{
    (void)state;
    roundtrip(false);
}

/* The shape of an export: nesting, foreign keys, seconds, no nulls. */
static void
test_export_shape(void **state)
{
    char *text = full_doc();
    struct res r = expect_ok(text);
    char *out = NULL;
    size_t len = 0;
    json_t *doc;
    json_t *svcs;
    json_error_t je;
    size_t i;
    json_t *s;

    (void)state;
    assert_int_equal(st_decl_export(r.lists, false, &out, &len), 0);
    doc = json_loads(out, 0, &je);
    assert_non_null(doc);
    assert_string_equal(sget(doc, "_format_version"), "3.0");
    assert_true(json_is_false(json_object_get(doc, "_transform")));
    assert_int_equal(json_array_size(json_object_get(doc, "ca_certificates")), 1);
    assert_int_equal(json_array_size(json_object_get(doc, "certificates")), 2);
    assert_null(json_object_get(doc, "snis"));
    assert_int_equal(json_array_size(json_object_get(doc, "routes")), 1);
    assert_string_equal(sget(json_array_get(json_object_get(doc, "routes"), 0), "name"), "orphan");
    svcs = json_object_get(doc, "services");
    assert_int_equal(json_array_size(svcs), 2);
    json_array_foreach(svcs, i, s)
    {
        assert_null(json_object_get(s, "path")); /* null: left out */
        if (strcmp(sget(s, "name"), "redis") == 0) {
            json_t *rt = json_object_get(s, "routes");

            assert_int_equal(json_array_size(rt), 2);
            assert_null(json_object_get(json_array_get(rt, 0), "service"));
            assert_int_equal(iget(s, "created_at"), NOW / 1000);
        } else {
            assert_string_equal(sget(s, "client_certificate"), UUID2);
            assert_int_equal(iget(s, "created_at"), 1600000000);
            assert_null(json_object_get(s, "routes"));
        }
    }
    {
        json_t *certs = json_object_get(doc, "certificates");
        json_t *c;
        size_t n = 0;

        json_array_foreach(certs, i, c)
        {
            json_t *sn = json_object_get(c, "snis");

            if (sn != NULL) {
                n += json_array_size(sn);
                assert_null(json_object_get(json_array_get(sn, 0), "certificate"));
                assert_string_equal(sget(c, "id"), UUID2);
            }
        }
        assert_int_equal(n, 2);
    }
    json_decref(doc);
    free(out);
    free(text);
    res_free(&r);
}

/* An empty store exports a document that parses to nothing. */
static void
test_export_empty(void **state)
{
    json_t *lists[ST_ENT__COUNT];
    char *out = NULL;
    size_t len = 0;
    struct res r;

    (void)state;
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        lists[k] = json_array();
    }
    assert_int_equal(st_decl_export(lists, true, &out, &len), 0);
    assert_string_equal(out, "_format_version: '3.0'\n_transform: false\n");
    r = expect_ok(out);
    res_free(&r);
    free(out);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
}

/* ------------------------------------------------------------------------ */
/* limits (issue 14, defect 2): what a small document may make the parser build     */

/* A growing string for the documents of these tests. */
struct text {
    char *p;
    size_t len;
    size_t cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        assert_non_null(t->p);
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* The size of the error body as the admin API would send it. */
static size_t
body_size(const json_t *error)
{
    return json_dumpb(error, NULL, 0, JSON_COMPACT);
}

/* Kong keys a reference error by the entity's name, a string key in Lua: a name made of
 * digits must not become an array index (a route named "99999999999" made an array of
 * 10^11 nulls). */
static void
test_limit_numeric_names(void **state)
{
    static const char *const names[] = {"3000000", "99999999999", "18446744073709551615"};
    char text[512];
    char want[512];

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct res r;
        json_t *flat;

        snprintf(text, sizeof(text),
                 "_format_version: '3.0'\nroutes:\n- name: '%s'\n  service: nope\n"
                 "  destinations: [{port: 1}]\n",
                 names[i]);
        snprintf(want, sizeof(want),
                 "{\"routes\": {\"%s\": [\"invalid reference 'service: nope' (no such entry in"
                 " 'services')\"]}}",
                 names[i]);
        r = parse(text);
        assert_int_equal(r.rc, -ST_ESCHEMA);
        assert_json(json_object_get(r.error, "fields"), want);
        assert_true(body_size(r.error) < 4096);
        /* flattened: the error is the route's, found by its name */
        flat = json_object_get(r.error, "flattened_errors");
        assert_int_equal(json_array_size(flat), 1);
        assert_string_equal(sget(json_array_get(flat, 0), "entity_name"), names[i]);
        res_free(&r);
    }
    /* a name that is also a position of an error of the same list: one key, both errors */
    json_decref(expect_err(
        "_format_version: '3.0'\nservices:\n- {name: a, host: h.org}\n"
        "routes:\n- {name: x, service: a, destinations: [{port: 1}]}\n"
        "- {name: x, service: a, destinations: [{port: 1}]}\n"
        "- {name: '2', service: nope, destinations: [{port: 1}]}\n",
        "{\"routes\": {\"2\": [\"uniqueness violation: 'routes' entity with name set to 'x'"
        " already declared\", \"invalid reference 'service: nope' (no such entry in"
        " 'services')\"]}}",
        NULL));
}

/* A reference is quoted up to ST_DECL_ECHO_MAX bytes. */
static void
test_limit_reference_echo(void **state)
{
    struct text t = {0};
    struct res r;
    const char *msg;
    char *big = malloc(100001);

    (void)state;
    assert_non_null(big);
    memset(big, 'n', 100000);
    big[100000] = '\0';
    text_add(&t,
             "_format_version: '3.0'\nroutes:\n- name: r\n  service: %s\n"
             "  destinations: [{port: 1}]\n",
             big);
    r = parse(t.p);
    assert_int_equal(r.rc, -ST_ESCHEMA);
    msg = json_string_value(json_array_get(
        json_object_get(json_object_get(json_object_get(r.error, "fields"), "routes"), "r"), 0));
    assert_non_null(msg);
    assert_true(strlen(msg) < ST_DECL_ECHO_MAX + 100);
    assert_non_null(strstr(msg, "nnn...' (no such entry in 'services')"));
    res_free(&r);
    free(t.p);
    free(big);
}

/* YAML aliases count as copies of what they name: 64 KiB aliased 1,000 times is 64 MiB
 * built from 70 KB of text, refused; a document without aliases is never refused for
 * its size, and modest aliases still work (test_yaml_scalars). */
static void
test_limit_yaml_aliases(void **state)
{
    struct text t = {0};
    struct res r;
    const char *msg;
    char *big = malloc(65537);

    (void)state;
    assert_non_null(big);
    memset(big, 'a', 65536);
    big[65536] = '\0';
    text_add(&t,
             "_format_version: '3.0'\nx: &big %s\nservices:\n- name: s\n  host: h.org\n"
             "  tags: [",
             big);
    for (int i = 0; i < 1000; i++) {
        text_add(&t, "%s*big", i > 0 ? ", " : "");
    }
    text_add(&t, "]\n");
    r = parse(t.p);
    assert_int_equal(r.rc, -ST_EPARSE);
    msg = json_string_value(json_object_get(json_object_get(r.error, "fields"), "error"));
    assert_non_null(msg);
    if (strstr(msg, "document too large: it builds more than ") == NULL) {
        fail_msg("got %s", msg);
    }
    res_free(&r);
    free(t.p);

    /* nested aliases (a billion laughs) stop at the limit, early */
    t = (struct text){0};
    text_add(&t, "_format_version: '3.0'\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 30; i++) {
        text_add(&t, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i,
                 i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    }
    r = parse(t.p);
    assert_int_equal(r.rc, -ST_EPARSE);
    res_free(&r);
    free(t.p);

    /* 2 MiB of text without aliases is never refused for what it builds */
    t = (struct text){0};
    text_add(&t, "_format_version: '3.0'\nservices:\n- name: s\n  host: h.org\n  tags: [");
    for (int i = 0; t.len < (2u << 20); i++) {
        text_add(&t, "%s%d", i > 0 ? "," : "", i % 10);
    }
    text_add(&t, "]\n");
    r = parse(t.p);
    assert_int_not_equal(r.rc, -ST_EPARSE);
    res_free(&r);
    free(t.p);
    free(big);
}

/* A JSON document of depth levels (the document is level 1, "x" level 2), in JSON or
 * in YAML's flow style. */
static char *
nested(int depth, bool json)
{
    struct text t = {0};

    text_add(&t, json ? "{\"_format_version\": \"3.0\", \"x\": " : "_format_version: '3.0'\nx: ");
    for (int i = 0; i < depth - 2; i++) {
        text_add(&t, "[");
    }
    text_add(&t, "1");
    for (int i = 0; i < depth - 2; i++) {
        text_add(&t, "]");
    }
    text_add(&t, json ? "}" : "\n");
    return t.p;
}

/* JSON documents have the YAML reader's depth limit (jansson's is 2048). */
static void
test_limit_json_depth(void **state)
{
    (void)state;
    for (int json = 0; json <= 1; json++) {
        char *ok = nested(ST_DECL_DEPTH_MAX, json);
        char *deep = nested(ST_DECL_DEPTH_MAX + 1, json);
        struct res r = parse(deep);
        const char *msg;

        json_decref(expect_err(ok, "{\"x\": \"unknown field\"}", NULL));
        assert_int_equal(r.rc, -ST_EPARSE);
        msg = json_string_value(json_object_get(json_object_get(r.error, "fields"), "error"));
        assert_non_null(msg);
        assert_non_null(strstr(msg, "document nested too deeply"));
        res_free(&r);
        free(ok);
        free(deep);
    }
}

/* An error holds at most ST_DECL_ERRORS_MAX messages, then says how many there were. */
static void
test_limit_error_count(void **state)
{
    struct text t = {0};
    struct res r;
    json_t *fields;
    json_t *svcs;
    size_t i;
    json_t *el;
    size_t n = 0;

    (void)state;
    text_add(&t, "{\"_format_version\": \"3.0\", \"services\": [");
    for (int j = 0; j < 1500; j++) {
        text_add(&t, "%s{\"name\": \"s%d\", \"host\": \"h.org\", \"port\": \"x\"}",
                 j > 0 ? "," : "", j);
    }
    text_add(&t, "]}");
    r = parse(t.p);
    assert_int_equal(r.rc, -ST_ESCHEMA);
    fields = json_object_get(r.error, "fields");
    assert_string_equal(sget(fields, "@truncated"), "only the first 1000 of 1500 errors are shown");
    svcs = json_object_get(fields, "services");
    assert_int_equal(json_array_size(svcs), 1000);
    json_array_foreach(svcs, i, el)
    {
        assert_json(el, "{\"port\": \"expected an integer\"}");
        n++;
    }
    assert_int_equal(n, 1000);
    assert_int_equal(json_array_size(json_object_get(r.error, "flattened_errors")), 1000);
    assert_non_null(strstr(json_string_value(json_object_get(r.error, "message")),
                           "[\"@truncated\"]=\"only the first 1000 of 1500 errors are shown\""));
    /* Kong's flatten_errors=1 form keeps the note */
    st_decl_error_flatten(r.error);
    assert_json(json_object_get(r.error, "fields"),
                "{\"@truncated\": \"only the first 1000 of 1500 errors are shown\"}");
    res_free(&r);
    free(t.p);
}

/* flattened_errors copies entities up to ST_DECL_FLAT_ENTITY_BYTES in all. */
static void
test_limit_flattened_copies(void **state)
{
    struct text t = {0};
    struct res r;
    json_t *flat;
    size_t i;
    json_t *el;
    size_t copies = 0;
    char *big = malloc(900001);

    (void)state;
    assert_non_null(big);
    memset(big, 'j', 900000);
    big[900000] = '\0';
    text_add(&t, "{\"_format_version\": \"3.0\", \"services\": [");
    for (int j = 0; j < 6; j++) {
        text_add(&t, "%s{\"name\": \"s%d\", \"host\": \"h.org\", \"junk\": \"%s\"}",
                 j > 0 ? "," : "", j, big);
    }
    text_add(&t, "]}");
    r = parse(t.p);
    assert_int_equal(r.rc, -ST_ESCHEMA);
    flat = json_object_get(r.error, "flattened_errors");
    assert_int_equal(json_array_size(flat), 6);
    json_array_foreach(flat, i, el)
    {
        json_t *e = json_object_get(el, "entity");

        assert_non_null(sget(e, "name"));
        copies += json_object_get(e, "junk") != NULL;
    }
    assert_int_equal(copies, 4);
    assert_true(body_size(r.error) < 5 * 900000 + 100000);
    res_free(&r);
    free(t.p);
    free(big);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_yaml),
        cmocka_unit_test(test_stream_json),
        cmocka_unit_test(test_flow_yaml),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_refs_by_name_and_id),
        cmocka_unit_test(test_nested_two_levels),
        cmocka_unit_test(test_lookup_keeps_ids),
        cmocka_unit_test(test_ids_and_timestamps_kept),
        cmocka_unit_test(test_meta_fields),
        cmocka_unit_test(test_yaml_scalars),
        cmocka_unit_test(test_err_format_version),
        cmocka_unit_test(test_err_unknown_and_unsupported),
        cmocka_unit_test(test_err_kong_validation_example),
        cmocka_unit_test(test_err_nested_all_at_once),
        cmocka_unit_test(test_err_duplicates),
        cmocka_unit_test(test_err_dangling_refs),
        cmocka_unit_test(test_err_unparsable),
        cmocka_unit_test(test_flattened),
        cmocka_unit_test(test_export_yaml_roundtrip),
        cmocka_unit_test(test_export_json_roundtrip),
        cmocka_unit_test(test_export_shape),
        cmocka_unit_test(test_export_empty),
        cmocka_unit_test(test_limit_numeric_names),
        cmocka_unit_test(test_limit_reference_echo),
        cmocka_unit_test(test_limit_yaml_aliases),
        cmocka_unit_test(test_limit_json_depth),
        cmocka_unit_test(test_limit_error_count),
        cmocka_unit_test(test_limit_flattened_copies),
    };

    return cmocka_run_group_tests(tests, make_certs, free_certs);
}
