/* st_snapshot and st_syncmsg: the canonical hash (same configuration, same bytes,
 * whatever the order; any field change changes it; updated_at and version do not),
 * the round trip to plain structs, and refusal of corrupt, truncated or invalid
 * snapshots (issue 2); certificates, snis, ca_certificates and the services' TLS
 * fields: hash stability, round trip with resolved references, refusals (issue 3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_plugin.h"
#include "st_schema.h"
#include "st_snapshot.h"
#include "st_ssl.h"
#include "st_syncmsg.h"
#include "st_testcert.h"

#define S1      "00000000-0000-4000-8000-000000000001"
#define S2      "00000000-0000-4000-8000-000000000002"
#define R1      "00000000-0000-4000-8000-0000000000a1"
#define R2      "00000000-0000-4000-8000-0000000000a2"
#define MISSING "00000000-0000-4000-8000-0000000000ff"
#define C1      "00000000-0000-4000-8000-0000000000c1"
#define C2      "00000000-0000-4000-8000-0000000000c2"
#define N1      "00000000-0000-4000-8000-0000000000d1"
#define N2      "00000000-0000-4000-8000-0000000000d2"
#define N3      "00000000-0000-4000-8000-0000000000d3"
#define CA1     "00000000-0000-4000-8000-0000000000e1"
#define CA2     "00000000-0000-4000-8000-0000000000e2"
#define S3      "00000000-0000-4000-8000-000000000003"
#define R3      "00000000-0000-4000-8000-0000000000a3"

#define SVC1                                                                                       \
    "{\"id\": \"" S1 "\", \"name\": \"one\", \"created_at\": 1700000000001,"                       \
    " \"updated_at\": 1700000000001, \"host\": \"10.0.0.1\", \"port\": 9001,"                      \
    " \"connect_timeout\": 1001, \"read_timeout\": 2001, \"write_timeout\": 3001,"                 \
    " \"retries\": 3, \"tags\": [\"b\", \"a\"]}"
#define SVC2                                                                                       \
    "{\"id\": \"" S2 "\", \"name\": \"two\", \"created_at\": 1700000000002,"                       \
    " \"host\": \"echo.local\", \"enabled\": false}"
#define RT1                                                                                        \
    "{\"id\": \"" R1 "\", \"name\": \"r-one\", \"created_at\": 1700000000003,"                     \
    " \"updated_at\": 1700000000003,"                                                              \
    " \"sources\": [{\"ip\": \"192.168.0.0/16\"}, {\"ip\": \"10.0.0.1\", \"port\": 4000}],"        \
    " \"destinations\": [{\"port\": 5555}, {\"ip\": \"::1\"}], \"preserve_host\": true,"           \
    " \"service\": {\"id\": \"" S1 "\"}, \"tags\": [\"z\", \"y\"]}"
#define RT2                                                                                        \
    "{\"id\": \"" R2 "\", \"created_at\": 1700000000004, \"destinations\": [{\"port\": 6666}]}"

static json_t *
load(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, JSON_DECODE_ANY, &e);

    if (o == NULL) {
        fail_msg("bad test JSON: %s: %s", text, e.text);
    }
    return o;
}

/* An entity as the store keeps it: validated, defaults filled. */
static json_t *
entity(enum st_entity_kind k, const char *text)
{
    json_t *o = load(text);

    assert_int_equal(st_schema_validate(k, o, NULL), 0);
    return o;
}

static json_t *
pair(enum st_entity_kind k, const char *a, const char *b)
{
    json_t *arr = json_array();

    json_array_append_new(arr, entity(k, a));
    json_array_append_new(arr, entity(k, b));
    return arr;
}

struct built {
    uint8_t *bytes;
    size_t len;
    char hash[65];
};

static void
build_ok(uint64_t version, json_t *services, json_t *routes, struct built *b)
{
    struct st_err err = {0};
    json_t *lists[ST_ENT__COUNT] = {NULL};
    int rc;

    lists[ST_ENT_SERVICE] = services;
    lists[ST_ENT_ROUTE] = routes;
    rc = st_snapshot_build(version, lists, &b->bytes, &b->len, b->hash, &err);

    if (rc != 0) {
        fail_msg("build: %s", err.msg);
    }
    assert_int_equal(strlen(b->hash), 64);
}

/* The base configuration: services s2, s1 and routes r2, r1 (out of id order). */
static void
build_base(struct built *b)
{
    json_t *svcs = pair(ST_ENT_SERVICE, SVC2, SVC1);
    json_t *rts = pair(ST_ENT_ROUTE, RT2, RT1);

    build_ok(7, svcs, rts, b);
    json_decref(svcs);
    json_decref(rts);
}

static int
parse_rc(const struct built *b, struct st_err *err)
{
    struct st_snapshot *s = NULL;
    int rc = st_snapshot_parse(b->bytes, b->len, NULL, &s, err);

    if (rc == 0) {
        assert_non_null(s);
        st_snapshot_free(s);
    } else {
        assert_null(s);
    }
    return rc;
}

/* Finds the Config bytes inside an encoded snapshot without decoding it: the one
 * range of bytes whose SHA-256 is the snapshot's hash (a search, not a parse). */
static void
config_range(const struct built *b, size_t *off, size_t *len)
{
    char h[65];

    for (size_t i = 0; i < b->len; i++) {
        for (size_t j = i + 1; j <= b->len; j++) {
            st_ssl_sha256_hex(b->bytes + i, j - i, h);
            if (strcmp(h, b->hash) == 0) {
                *off = i;
                *len = j - i;
                return;
            }
        }
    }
    fail_msg("no range of the snapshot hashes to %s", b->hash);
}

/* ------------------------------------------------------------------------ */

static void
test_same_config_same_hash(void **state)
{
    struct built a;
    struct built b;
    struct built c;
    json_t *svcs = pair(ST_ENT_SERVICE, SVC1, SVC2);
    json_t *rts = pair(ST_ENT_ROUTE, RT1, RT2);
    uint64_t v;
    char h[65];

    (void)state;
    build_base(&a);
    /* other insertion order, other set order, other updated_at, other version */
    json_array_set_new(json_object_get(json_array_get(svcs, 0), "tags"), 0, json_string("a"));
    json_array_set_new(json_object_get(json_array_get(svcs, 0), "tags"), 1, json_string("b"));
    json_object_set_new(json_array_get(svcs, 0), "updated_at", json_integer(1800000000000));
    json_object_set_new(json_array_get(rts, 0), "updated_at", json_integer(1800000000000));
    build_ok(8, svcs, rts, &b);
    assert_string_equal(a.hash, b.hash);
    build_ok(7, svcs, rts, &c);
    assert_string_equal(a.hash, c.hash);

    assert_int_equal(st_snapshot_peek(b.bytes, b.len, &v, h), 0);
    assert_int_equal(v, 8);
    assert_string_equal(h, a.hash);
    {
        /* the hashed bytes themselves are identical */
        size_t ao;
        size_t al;
        size_t bo;
        size_t bl;
        config_range(&a, &ao, &al);
        config_range(&b, &bo, &bl);
        assert_int_equal(al, bl);
        assert_memory_equal(a.bytes + ao, b.bytes + bo, al);
    }
    free(a.bytes);
    free(b.bytes);
    free(c.bytes);
    json_decref(svcs);
    json_decref(rts);
}

struct mutation {
    enum st_entity_kind kind;
    const char *key;
    const char *value; /* JSON */
};

static void
test_any_change_changes_hash(void **state)
{
    static const struct mutation muts[] = {
        {ST_ENT_SERVICE, "id", "\"00000000-0000-4000-8000-000000000003\""},
        {ST_ENT_SERVICE, "name", "\"uno\""},
        {ST_ENT_SERVICE, "name", "null"},
        {ST_ENT_SERVICE, "created_at", "1700000000009"},
        {ST_ENT_SERVICE, "protocol", "\"tls\""},
        {ST_ENT_SERVICE, "host", "\"10.0.0.2\""},
        {ST_ENT_SERVICE, "port", "9002"},
        {ST_ENT_SERVICE, "connect_timeout", "1002"},
        {ST_ENT_SERVICE, "read_timeout", "2002"},
        {ST_ENT_SERVICE, "write_timeout", "3002"},
        {ST_ENT_SERVICE, "retries", "4"},
        {ST_ENT_SERVICE, "enabled", "false"},
        {ST_ENT_SERVICE, "tags", "[\"a\"]"},
        {ST_ENT_ROUTE, "id", "\"00000000-0000-4000-8000-0000000000a3\""},
        {ST_ENT_ROUTE, "name", "\"r-uno\""},
        {ST_ENT_ROUTE, "created_at", "1700000000009"},
        {ST_ENT_ROUTE, "protocols", "[\"tls\"]"},
        {ST_ENT_ROUTE, "sources",
         "[{\"ip\": \"10.0.0.1\", \"port\": 4000}, "
         "{\"ip\": \"192.168.0.0/16\", \"port\": null}]"},
        {ST_ENT_ROUTE, "sources",
         "[{\"ip\": \"192.168.0.0/16\", \"port\": 1}, "
         "{\"ip\": \"10.0.0.1\", \"port\": 4000}]"},
        {ST_ENT_ROUTE, "destinations",
         "[{\"port\": 5556, \"ip\": null}, "
         "{\"ip\": \"::1\", \"port\": null}]"},
        {ST_ENT_ROUTE, "snis", "[\"a.example\"]"},
        {ST_ENT_ROUTE, "preserve_host", "false"},
        {ST_ENT_ROUTE, "service", "{\"id\": \"" S2 "\"}"},
        {ST_ENT_ROUTE, "service", "null"},
        {ST_ENT_ROUTE, "tags", "[\"y\"]"},
    };
    struct built base;

    (void)state;
    build_base(&base);
    for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
        json_t *svcs = pair(ST_ENT_SERVICE, SVC1, SVC2);
        json_t *rts = pair(ST_ENT_ROUTE, RT1, RT2);
        json_t *target = json_array_get(muts[i].kind == ST_ENT_SERVICE ? svcs : rts, 0);
        struct built m;

        json_object_set_new(target, muts[i].key, load(muts[i].value));
        build_ok(7, svcs, rts, &m);
        if (strcmp(m.hash, base.hash) == 0) {
            fail_msg("changing %s.%s to %s kept the hash", st_entity_name(muts[i].kind),
                     muts[i].key, muts[i].value);
        }
        free(m.bytes);
        json_decref(svcs);
        json_decref(rts);
    }
    free(base.bytes);
}

static void
test_round_trip(void **state)
{
    struct built b;
    struct st_snapshot *s = NULL;
    struct st_err err = {0};
    const struct st_route *r;

    (void)state;
    build_base(&b);
    assert_int_equal(st_snapshot_parse(b.bytes, b.len, NULL, &s, &err), 0);
    assert_int_equal(s->version, 7);
    assert_string_equal(s->hash, b.hash);

    assert_int_equal(s->n_services, 2);
    assert_string_equal(s->services[0].id, S1);
    assert_string_equal(s->services[0].name, "one");
    assert_int_equal(s->services[0].created_at_ms, 1700000000001);
    assert_int_equal(s->services[0].protocol, ST_PROTO_TCP);
    assert_string_equal(s->services[0].host, "10.0.0.1");
    assert_int_equal(s->services[0].port, 9001);
    assert_int_equal(s->services[0].connect_timeout, 1001);
    assert_int_equal(s->services[0].read_timeout, 2001);
    assert_int_equal(s->services[0].write_timeout, 3001);
    assert_int_equal(s->services[0].retries, 3);
    assert_true(s->services[0].enabled);
    assert_string_equal(s->services[1].id, S2);
    assert_string_equal(s->services[1].host, "echo.local");
    assert_int_equal(s->services[1].port, 80);
    assert_int_equal(s->services[1].connect_timeout, 60000);
    assert_int_equal(s->services[1].retries, 5);
    assert_false(s->services[1].enabled);

    assert_int_equal(s->n_routes, 2);
    r = &s->routes[0];
    assert_string_equal(r->id, R1);
    assert_string_equal(r->name, "r-one");
    assert_int_equal(r->created_at_ms, 1700000000003);
    assert_int_equal(r->protocols, ST_PROTO_TCP);
    assert_true(r->preserve_host);
    assert_string_equal(r->service_id, S1);
    assert_ptr_equal(r->service, &s->services[0]);
    assert_int_equal(r->n_snis, 0);
    /* sources and destinations keep the order the user wrote */
    assert_int_equal(r->n_sources, 2);
    assert_true(r->sources[0].has_ip);
    assert_false(r->sources[0].has_port);
    assert_int_equal(r->sources[0].ip.family, AF_INET);
    assert_int_equal(r->sources[0].ip.bits, 16);
    assert_int_equal(r->sources[0].ip.addr[0], 192);
    assert_true(r->sources[1].has_ip);
    assert_true(r->sources[1].ip.is_host);
    assert_true(r->sources[1].has_port);
    assert_int_equal(r->sources[1].port, 4000);
    assert_int_equal(r->n_destinations, 2);
    assert_false(r->destinations[0].has_ip);
    assert_int_equal(r->destinations[0].port, 5555);
    assert_int_equal(r->destinations[1].ip.family, AF_INET6);
    assert_false(r->destinations[1].has_port);
    r = &s->routes[1];
    assert_string_equal(r->id, R2);
    assert_null(r->name);
    assert_false(r->preserve_host);
    assert_null(r->service_id);
    assert_null(r->service);
    st_snapshot_free(s);
    free(b.bytes);
    st_snapshot_free(NULL);
}

/* Issue 18: plugins in the snapshot: the config record as sorted compact JSON, the
 * protocols as flags (HTTP ones are none), route and service resolved, and a snapshot
 * with a plugin the DP does not enable refused with Kong's message. */
static void
test_plugins(void **state)
{
    json_t *lists[ST_ENT__COUNT] = {NULL};
    struct built b;
    struct st_snapshot *s = NULL;
    struct st_err err = {0};
    const struct st_plugin *p;

    (void)state;
    lists[ST_ENT_SERVICE] = pair(ST_ENT_SERVICE, SVC2, SVC1);
    lists[ST_ENT_ROUTE] = pair(ST_ENT_ROUTE, RT2, RT1);
    lists[ST_ENT_PLUGIN] = json_array();
    json_array_append_new(
        lists[ST_ENT_PLUGIN],
        entity(ST_ENT_PLUGIN, "{\"id\": \"" N1 "\", \"created_at\": 1700000000005, "
                              "\"name\": \"ip-restriction\", \"instance_name\": \"i\", "
                              "\"route\": {\"id\": \"" R1 "\"}, \"service\": {\"id\": \"" S1 "\"}, "
                              "\"config\": {\"deny\": [\"10.0.0.0/8\"], \"status\": 401}}"));
    json_array_append_new(lists[ST_ENT_PLUGIN],
                          entity(ST_ENT_PLUGIN,
                                 "{\"id\": \"" N2 "\", \"created_at\": 1700000000006, "
                                 "\"name\": \"ip-restriction\", \"enabled\": false, "
                                 "\"protocols\": [\"tls_passthrough\"], "
                                 "\"config\": {\"allow\": [\"::1\"]}}"));
    assert_int_equal(st_snapshot_build(3, lists, &b.bytes, &b.len, b.hash, &err), 0);
    assert_int_equal(st_snapshot_parse(b.bytes, b.len, NULL, &s, &err), 0);
    assert_int_equal(s->n_plugins, 2);
    p = &s->plugins[0];
    assert_string_equal(p->id, N1);
    assert_string_equal(p->name, "ip-restriction");
    assert_string_equal(p->instance_name, "i");
    assert_ptr_equal(p->route, &s->routes[0]);
    assert_ptr_equal(p->service, &s->services[0]);
    assert_string_equal(
        p->config, "{\"allow\":null,\"deny\":[\"10.0.0.0/8\"],\"message\":null,\"status\":401}");
    assert_int_equal(p->protocols, ST_PROTO_TCP | ST_PROTO_TLS);
    assert_true(p->enabled);
    p = &s->plugins[1];
    assert_null(p->route);
    assert_null(p->service_id);
    assert_false(p->enabled);
    assert_int_equal(p->protocols, ST_PROTO_TLS_PASSTHROUGH);
    st_snapshot_free(s);

    /* a DP that does not enable ip-restriction refuses the snapshot */
    st_plugin_conf_apply("off");
    assert_int_not_equal(st_snapshot_parse(b.bytes, b.len, NULL, &s, &err), 0);
    assert_non_null(strstr(err.msg, "plugin 'ip-restriction' not enabled"));
    st_plugin_conf_apply(NULL);
    free(b.bytes);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
}

static void
test_empty_config(void **state)
{
    struct built b;
    struct st_snapshot *s = NULL;
    struct st_err err = {0};

    (void)state;
    build_ok(1, NULL, NULL, &b);
    /* SHA-256 of no bytes */
    assert_string_equal(b.hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(st_snapshot_parse(b.bytes, b.len, NULL, &s, &err), 0);
    assert_int_equal(s->n_services, 0);
    assert_int_equal(s->n_routes, 0);
    st_snapshot_free(s);
    free(b.bytes);
}

static void
test_hash_text_mismatch(void **state)
{
    struct built b;
    struct st_err err = {0};
    char want[256];
    char says[65];
    uint8_t *p;

    (void)state;
    build_base(&b);
    p = memmem(b.bytes, b.len, b.hash, 64);
    assert_non_null(p);
    p[0] = p[0] == '0' ? '1' : '0';
    memcpy(says, p, 64);
    says[64] = '\0';
    assert_int_equal(parse_rc(&b, &err), -ST_EHASH);
    snprintf(want, sizeof(want), "snapshot hash mismatch: says %s, bytes hash to %s", says, b.hash);
    assert_string_equal(err.msg, want);
    free(b.bytes);
}

static void
test_flipped_config_byte(void **state)
{
    struct built b;
    struct st_err err = {0};
    size_t off;
    size_t len;
    char got[65];
    char want[256];

    (void)state;
    build_base(&b);
    config_range(&b, &off, &len);
    for (size_t i = off; i < off + len; i += 7) {
        b.bytes[i] ^= 0x20;
        st_ssl_sha256_hex(b.bytes + off, len, got);
        assert_int_equal(parse_rc(&b, &err), -ST_EHASH);
        snprintf(want, sizeof(want), "snapshot hash mismatch: says %s, bytes hash to %s", b.hash,
                 got);
        assert_string_equal(err.msg, want);
        b.bytes[i] ^= 0x20;
    }
    assert_int_equal(parse_rc(&b, &err), 0);
    free(b.bytes);
}

static void
test_garbage_refused(void **state)
{
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct built b;
    struct built t;
    struct st_snapshot dummy;
    struct st_snapshot *s = &dummy; /* parse must reset it to NULL */
    struct st_err err = {0};
    uint64_t v;
    char h[65];

    (void)state;
    assert_int_equal(st_snapshot_parse(junk, sizeof(junk), NULL, &s, &err), -ST_EPARSE);
    assert_null(s);
    assert_non_null(strstr(err.msg, "not a valid Snapshot"));
    assert_int_equal(st_snapshot_parse((const uint8_t *)"", 0, NULL, &s, &err), -ST_EPARSE);
    assert_int_equal(st_snapshot_peek(junk, sizeof(junk), &v, h), -ST_EPARSE);

    build_base(&b);
    t.bytes = b.bytes;
    t.len = b.len - 1;
    assert_int_equal(parse_rc(&t, &err), -ST_EPARSE);
    t.len = b.len / 2;
    assert_int_equal(parse_rc(&t, &err), -ST_EPARSE);
    /* Every prefix is refused or is the whole configuration (a prefix that only drops
     * the optional trailing created_at_ms); none crashes. */
    for (t.len = 0; t.len < b.len; t.len++) {
        struct st_snapshot *p = NULL;
        int rc = st_snapshot_parse(t.bytes, t.len, NULL, &p, &err);
        if (rc == 0) {
            assert_string_equal(p->hash, b.hash);
            assert_int_equal(p->n_routes, 2);
            st_snapshot_free(p);
        } else {
            assert_true(rc == -ST_EPARSE || rc == -ST_EHASH);
        }
    }
    free(b.bytes);
}

/* Config bytes that are no Config message, under a hash that matches them. */
static void
test_garbage_config_refused(void **state)
{
    struct built b;
    struct st_err err = {0};
    size_t off;
    size_t len;
    char h[65];
    uint8_t *hp;

    (void)state;
    build_base(&b);
    config_range(&b, &off, &len);
    hp = memmem(b.bytes, b.len, b.hash, 64);
    assert_non_null(hp);
    memset(b.bytes + off, 0xff, len);
    st_ssl_sha256_hex(b.bytes + off, len, h);
    memcpy(hp, h, 64);
    assert_int_equal(parse_rc(&b, &err), -ST_EPARSE);
    assert_non_null(strstr(err.msg, "not a valid Config"));
    free(b.bytes);
}

/* Builds from entities that skipped validation (as a buggy or hostile CP could), and
 * expects parse to refuse them with rc and a message containing msg. */
static void
expect_refused(const char *svc, const char *rt, int rc, const char *msg)
{
    json_t *svcs = json_array();
    json_t *rts = json_array();
    struct built b;
    struct st_err err = {0};

    json_array_append_new(svcs, load(svc));
    if (rt != NULL) {
        json_array_append_new(rts, load(rt));
    }
    build_ok(1, svcs, rts, &b);
    assert_int_equal(parse_rc(&b, &err), rc);
    if (strstr(err.msg, msg) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg);
    }
    free(b.bytes);
    json_decref(svcs);
    json_decref(rts);
}

static bool
str_same(const char *x, const char *y)
{
    return x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

/* Two parses of the same bytes give the same services and routes. */
static void
assert_same_parse(const struct st_snapshot *x, const struct st_snapshot *y)
{
    assert_string_equal(x->hash, y->hash);
    assert_int_equal(x->n_services, y->n_services);
    for (size_t i = 0; i < x->n_services; i++) {
        const struct st_service *a = &x->services[i], *b = &y->services[i];

        assert_true(str_same(a->id, b->id) && str_same(a->name, b->name) &&
                    str_same(a->host, b->host));
        assert_true(a->created_at_ms == b->created_at_ms && a->protocol == b->protocol &&
                    a->port == b->port && a->connect_timeout == b->connect_timeout &&
                    a->read_timeout == b->read_timeout && a->write_timeout == b->write_timeout &&
                    a->retries == b->retries && a->enabled == b->enabled &&
                    a->tls_verify == b->tls_verify && a->tls_verify_depth == b->tls_verify_depth &&
                    a->n_ca_certificates == b->n_ca_certificates);
    }
    assert_int_equal(x->n_routes, y->n_routes);
    for (size_t i = 0; i < x->n_routes; i++) {
        const struct st_route *a = &x->routes[i], *b = &y->routes[i];

        assert_true(str_same(a->id, b->id) && str_same(a->name, b->name) &&
                    str_same(a->service_id, b->service_id));
        assert_true(a->created_at_ms == b->created_at_ms && a->protocols == b->protocols &&
                    a->preserve_host == b->preserve_host && a->n_sources == b->n_sources &&
                    a->n_destinations == b->n_destinations && a->n_snis == b->n_snis);
        assert_int_equal(a->service != NULL ? a->service - x->services : -1,
                         b->service != NULL ? b->service - y->services : -1);
        assert_memory_equal(a->sources, b->sources, a->n_sources * sizeof(*a->sources));
        assert_memory_equal(a->destinations, b->destinations,
                            a->n_destinations * sizeof(*a->destinations));
    }
}

/* Issue 15: the parser's memo is the caller's object. Entities it remembers are filled
 * from their message, and give what a parse without it gives; a refused parse leaves
 * it as it was; each memo remembers only its own parses. */
static void
test_memo(void **state)
{
    struct st_snapshot_memo *memo = st_snapshot_memo_new(), *other = st_snapshot_memo_new();
    struct st_snapshot *with = NULL, *without = NULL;
    struct st_err err = {0};
    struct built base, changed, bad;
    json_t *svcs, *rts;

    (void)state;
    build_base(&base);
    svcs = pair(ST_ENT_SERVICE, SVC2, SVC1);
    rts = pair(ST_ENT_ROUTE, RT2,
               "{\"id\": \"" R1 "\", \"name\": \"r-one\", \"destinations\": [{\"port\": 7}],"
               " \"service\": {\"id\": \"" S2 "\"}}");
    build_ok(8, svcs, rts, &changed);
    json_decref(rts);
    rts = json_array();
    json_array_append_new(rts, load("{\"id\": \"" R1 "\"}")); /* no endpoint: refused */
    build_ok(9, svcs, rts, &bad);
    json_decref(rts);
    json_decref(svcs);

    assert_int_equal(st_snapshot_parse(base.bytes, base.len, memo, &with, &err), 0);
    st_snapshot_free(with);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(st_snapshot_parse(changed.bytes, changed.len, memo, &with, &err), 0);
        assert_int_equal(st_snapshot_parse(changed.bytes, changed.len, NULL, &without, &err), 0);
        assert_same_parse(with, without);
        assert_ptr_equal(with->routes[0].service, &with->services[1]);
        assert_int_equal(with->routes[0].destinations[0].port, 7);
        st_snapshot_free(with);
        st_snapshot_free(without);
        assert_int_equal(st_snapshot_parse(bad.bytes, bad.len, memo, &with, &err), -ST_ESCHEMA);
        assert_null(with);
    }
    assert_int_equal(st_snapshot_parse(bad.bytes, bad.len, other, &with, &err), -ST_ESCHEMA);
    st_snapshot_memo_free(memo);
    st_snapshot_memo_free(other);
    st_snapshot_memo_free(NULL);
    free(base.bytes);
    free(changed.bytes);
    free(bad.bytes);
}

/* Issue 15: a field the message lacks is its schema default whether the entity is
 * checked or filled from its message: a service without enabled (or any default) is
 * enabled, and remembered, since its message alone gives what the check gives (the
 * per-kind fill took a missing enabled as false, a missing port as 0, so such an entity
 * was never remembered and was checked again at every parse). An entity that validation
 * rewrites (a repeat in a set) is filled from what validation left, and not remembered. */
static void
test_missing_defaults(void **state)
{
    struct st_snapshot_memo *memo = st_snapshot_memo_new();
    struct st_snapshot *s = NULL;
    struct st_err err = {0};
    json_t *svcs = json_array(), *rts = json_array();
    struct built b;

    (void)state;
    json_array_append_new(svcs, load("{\"id\": \"" S1 "\", \"host\": \"h\"}"));
    json_array_append_new(rts, entity(ST_ENT_ROUTE, RT2));
    json_array_append_new(rts, load("{\"id\": \"" R1 "\", \"protocols\": [\"tls\"], "
                                    "\"snis\": [\"a.test\", \"a.test\"]}"));
    build_ok(1, svcs, rts, &b);
    for (int round = 0; round < 2; round++) {
        const struct st_service *svc;

        assert_int_equal(st_snapshot_parse(b.bytes, b.len, memo, &s, &err), 0);
        svc = &s->services[0];
        assert_true(svc->enabled);
        assert_int_equal(svc->protocol, ST_PROTO_TCP);
        assert_int_equal(svc->port, 80);
        assert_int_equal(svc->retries, 5);
        assert_int_equal(svc->connect_timeout, 60000);
        assert_int_equal(svc->tls_verify, -1);
        assert_int_equal(svc->tls_verify_depth, -1);
        assert_false(s->routes[0].preserve_host);
        assert_int_equal(s->routes[0].n_snis, 1);
        assert_string_equal(s->routes[0].snis[0], "a.test");
        /* the service and RT2, not R1 */
        assert_int_equal(st_snapshot_memo_size(memo), 2);
        st_snapshot_free(s);
    }
    st_snapshot_memo_free(memo);
    free(b.bytes);
    json_decref(svcs);
    json_decref(rts);
}

static void
test_invalid_entity_refused(void **state)
{
    (void)state;
    expect_refused("{\"id\": \"" S1 "\", \"host\": \"h\", \"port\": 70000}", NULL, -ST_ESCHEMA,
                   "service " S1 ": schema violation (port: value should be between 0 and 65535)");
    expect_refused("{\"id\": \"" S1 "\"}", NULL, -ST_ESCHEMA,
                   "schema violation (host: required field missing)");
    expect_refused("{\"id\": \"not-a-uuid\", \"host\": \"h\"}", NULL, -ST_ESCHEMA,
                   "id: expected a valid UUID");
    expect_refused("{\"id\": \"" S1 "\", \"host\": \"h\", \"protocol\": \"udp\"}", NULL,
                   -ST_ESCHEMA, "'udp' is not supported yet");
    expect_refused("{\"id\": \"" S1 "\", \"host\": \"h\"}",
                   "{\"id\": \"" R1 "\", \"protocols\": [\"udp\"], "
                   "\"destinations\": [{\"port\": 53}]}",
                   -ST_ESCHEMA,
                   "route " R1 ": schema violation (protocols: 'udp' is not "
                   "supported yet)");
    expect_refused("{\"id\": \"" S1 "\", \"host\": \"h\"}", "{\"id\": \"" R1 "\"}", -ST_ESCHEMA,
                   "must set one of 'sources', 'destinations', 'snis'");
    expect_refused("{\"id\": \"" S1 "\", \"host\": \"h\"}",
                   "{\"id\": \"" R1 "\", \"sources\": [{\"ip\": \"10.0.0.300\"}]}", -ST_ESCHEMA,
                   "sources.1.ip: invalid ip or cidr range: '10.0.0.300'");
    expect_refused("{\"id\": \"" S1 "\", \"host\": \"h\"}",
                   "{\"id\": \"" R1 "\", \"destinations\": [{\"port\": 1}], "
                   "\"service\": {\"id\": \"" MISSING "\"}}",
                   -ST_EFOREIGN, "route " R1 ": its service " MISSING " is not in the snapshot");
}

static void
test_non_utf8_refused(void **state)
{
    json_t *svc = load("{\"id\": \"" S1 "\", \"host\": \"h\"}");
    json_t *svcs = json_array();
    struct built b;
    struct st_err err = {0};

    (void)state;
    json_object_set_new(svc, "name", json_string_nocheck("bad\xff"));
    json_array_append_new(svcs, svc);
    build_ok(1, svcs, NULL, &b);
    assert_int_equal(parse_rc(&b, &err), -ST_EPARSE);
    assert_non_null(strstr(err.msg, "not UTF-8"));
    free(b.bytes);
    json_decref(svcs);
}

static void
test_build_errors(void **state)
{
    json_t *svcs = json_array();
    uint8_t *out = NULL;
    size_t len = 0;
    char hash[65];
    struct st_err err = {0};
    json_t *lists[ST_ENT__COUNT] = {NULL};

    (void)state;
    json_array_append_new(svcs, load("{\"host\": \"h\"}"));
    lists[ST_ENT_SERVICE] = svcs;
    assert_int_equal(st_snapshot_build(1, lists, &out, &len, hash, &err), -ST_ESCHEMA);
    json_array_clear(svcs);
    json_array_append_new(svcs, load("{\"id\": \"" S1 "\", \"host\": \"h\"}"));
    json_array_append_new(svcs, load("{\"id\": \"" S1 "\", \"host\": \"i\"}"));
    assert_int_equal(st_snapshot_build(1, lists, &out, &len, hash, &err), -ST_EUNIQUE);
    lists[ST_ENT_SERVICE] = NULL;
    lists[ST_ENT_ROUTE] = svcs;
    assert_int_equal(st_snapshot_build(1, lists, &out, &len, hash, &err), -ST_EUNIQUE);
    assert_null(out);
    json_decref(svcs);
}

/* ------------------------------------------------------------------------ */

static void
test_syncmsg_request(void **state)
{
    struct st_label labels[] = {{"region", "eu"}, {"tier", "edge"}};
    struct st_sync_req in = {
        .dp_id = "d1",
        .hostname = "host-1",
        .dp_version = "0.1.0",
        .labels = labels,
        .n_labels = 2,
        .have_hash = "abc",
        .last_error = "boom",
        .cert_expiry = 1800000000,
        .goodbye = true,
        .max_payload = 4194304,
    };
    struct st_sync_req out;
    uint8_t *buf = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(st_syncmsg_req_encode(&in, &buf, &len), 0);
    assert_int_equal(st_syncmsg_req_decode(buf, len, &out), 0);
    assert_string_equal(out.dp_id, "d1");
    assert_string_equal(out.hostname, "host-1");
    assert_string_equal(out.dp_version, "0.1.0");
    assert_int_equal(out.n_labels, 2);
    assert_string_equal(out.labels[1].key, "tier");
    assert_string_equal(out.labels[1].value, "edge");
    assert_string_equal(out.have_hash, "abc");
    assert_string_equal(out.last_error, "boom");
    assert_int_equal(out.cert_expiry, 1800000000);
    assert_true(out.goodbye);
    assert_int_equal(out.max_payload, 4194304);
    st_syncmsg_req_fini(&out);
    free(buf);

    /* absent optional fields stay absent */
    in = (struct st_sync_req){.dp_id = "d2"};
    assert_int_equal(st_syncmsg_req_encode(&in, &buf, &len), 0);
    assert_int_equal(st_syncmsg_req_decode(buf, len, &out), 0);
    assert_string_equal(out.dp_id, "d2");
    assert_null(out.hostname);
    assert_null(out.have_hash);
    assert_null(out.last_error);
    assert_int_equal(out.cert_expiry, 0);
    assert_false(out.goodbye);
    assert_int_equal(out.max_payload, 0);
    assert_int_equal(out.n_labels, 0);
    st_syncmsg_req_fini(&out);
    free(buf);

    /* a request lacking its required dp_id, and garbage, are refused */
    assert_int_equal(st_syncmsg_req_decode((const uint8_t *)"", 0, &out), -ST_EPARSE);
    assert_int_equal(st_syncmsg_req_decode((const uint8_t *)"\x0a\x09zz", 4, &out), -ST_EPARSE);
}

static void
test_syncmsg_response(void **state)
{
    uint8_t snap[] = {1, 2, 3, 0, 5};
    struct st_sync_resp in = {.status = ST_SYNC_OK, .snapshot = snap, .snapshot_len = 5};
    struct st_sync_resp out;
    uint8_t *buf = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(st_syncmsg_resp_encode(&in, &buf, &len), 0);
    assert_int_equal(st_syncmsg_resp_decode(buf, len, &out), 0);
    assert_int_equal(out.status, ST_SYNC_OK);
    assert_null(out.reason);
    assert_int_equal(out.snapshot_len, 5);
    assert_memory_equal(out.snapshot, snap, 5);
    st_syncmsg_resp_fini(&out);
    free(buf);

    in = (struct st_sync_resp){.status = ST_SYNC_REFUSED, .reason = "too old"};
    assert_int_equal(st_syncmsg_resp_encode(&in, &buf, &len), 0);
    assert_int_equal(st_syncmsg_resp_decode(buf, len, &out), 0);
    assert_int_equal(out.status, ST_SYNC_REFUSED);
    assert_string_equal(out.reason, "too old");
    assert_null(out.snapshot);
    st_syncmsg_resp_fini(&out);
    free(buf);

    in = (struct st_sync_resp){.status = ST_SYNC_NOT_MODIFIED};
    assert_int_equal(st_syncmsg_resp_encode(&in, &buf, &len), 0);
    assert_int_equal(st_syncmsg_resp_decode(buf, len, &out), 0);
    assert_int_equal(out.status, ST_SYNC_NOT_MODIFIED);
    st_syncmsg_resp_fini(&out);
    free(buf);

    /* packed into the caller's buffer: the size is exact and the bytes decode the same */
    in = (struct st_sync_resp){.status = ST_SYNC_OK, .snapshot = snap, .snapshot_len = 5};
    assert_int_equal(st_syncmsg_resp_size(&in, &len), 0);
    buf = malloc(len + 1);
    assert_non_null(buf);
    buf[len] = 0xAB;
    assert_int_equal(st_syncmsg_resp_pack(&in, buf), 0);
    assert_int_equal(buf[len], 0xAB);
    assert_int_equal(st_syncmsg_resp_decode(buf, len, &out), 0);
    assert_int_equal(out.status, ST_SYNC_OK);
    assert_int_equal(out.snapshot_len, 5);
    assert_memory_equal(out.snapshot, snap, 5);
    st_syncmsg_resp_fini(&out);
    free(buf);
    in.status = (enum st_sync_status)7;
    assert_int_equal(st_syncmsg_resp_size(&in, &len), -EINVAL);

    /* status 7 is no Status; truncated bytes are no message */
    assert_int_equal(st_syncmsg_resp_decode((const uint8_t *)"\x08\x07", 2, &out), -ST_EPARSE);
    assert_int_equal(st_syncmsg_resp_decode((const uint8_t *)"\x08", 1, &out), -ST_EPARSE);
}

/* ------------------------------------------------------------------------ */
/* issue 3: TLS entities                                                      */

static struct tc_pair ec1;    /* C1's certificate */
static struct tc_pair rsa1;   /* C1's alternative */
static struct tc_pair ec2;    /* C2's certificate (the services' client certificate) */
static struct tc_pair ca1;    /* CA1 */
static struct tc_pair ca2;    /* CA2 */
static struct tc_pair ca_old; /* an expired CA */

static int
make_certs(void **state)
{
    (void)state;
    ec1 = tc_make(TC_EC, "a.test", false, -1, 30);
    rsa1 = tc_make(TC_RSA, "a.test", false, -1, 30);
    ec2 = tc_make(TC_EC, "client.test", false, -1, 30);
    ca1 = tc_make(TC_EC, "ca1.test", true, -1, 30);
    ca2 = tc_make(TC_EC, "ca2.test", true, -1, 30);
    ca_old = tc_make(TC_EC, "old.test", true, -10, -1);
    return 0;
}

static int
free_certs(void **state)
{
    (void)state;
    tc_free(&ec1);
    tc_free(&rsa1);
    tc_free(&ec2);
    tc_free(&ca1);
    tc_free(&ca2);
    tc_free(&ca_old);
    return 0;
}

/* The TLS configuration as jansson lists, every list out of id order; validated as the
 * CP stores them. */
struct tls_config {
    json_t *lists[ST_ENT__COUNT];
};

static void
add(struct tls_config *c, enum st_entity_kind k, json_t *o)
{
    json_t *fields = NULL;
    char buf[512];

    if (st_schema_validate(k, o, &fields) != 0) {
        st_schema_message(fields, buf, sizeof(buf));
        fail_msg("%s: %s", st_entity_name(k), buf);
    }
    if (c->lists[k] == NULL) {
        c->lists[k] = json_array();
    }
    json_array_append_new(c->lists[k], o);
}

static void
tls_config(struct tls_config *c)
{
    memset(c, 0, sizeof(*c));
    add(c, ST_ENT_CERTIFICATE,
        json_pack("{s:s, s:I, s:s, s:s}", "id", C2, "created_at", (json_int_t)1700000000020, "cert",
                  ec2.cert, "key", ec2.key));
    add(c, ST_ENT_CERTIFICATE,
        json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:[s,s]}", "id", C1, "created_at",
                  (json_int_t)1700000000010, "cert", ec1.cert, "key", ec1.key, "cert_alt",
                  rsa1.cert, "key_alt", rsa1.key, "tags", "z", "a"));
    add(c, ST_ENT_SNI,
        load("{\"id\": \"" N3 "\", \"name\": \"*\", \"certificate\": {\"id\": \"" C1 "\"}}"));
    add(c, ST_ENT_SNI,
        load("{\"id\": \"" N1 "\", \"name\": \"*.a.test\", \"certificate\": {\"id\": \"" C1
             "\"}, \"tags\": [\"t\"]}"));
    add(c, ST_ENT_SNI,
        load("{\"id\": \"" N2 "\", \"name\": \"b.*\", \"certificate\": {\"id\": \"" C2 "\"}}"));
    add(c, ST_ENT_CA_CERTIFICATE, json_pack("{s:s, s:s}", "id", CA2, "cert", ca2.cert));
    add(c, ST_ENT_CA_CERTIFICATE,
        json_pack("{s:s, s:s, s:[s]}", "id", CA1, "cert", ca1.cert, "tags", "root"));
    add(c, ST_ENT_SERVICE,
        load("{\"id\": \"" S3 "\", \"url\": \"tls://up.test:8443\", \"tls_verify\": true,"
             " \"tls_verify_depth\": 2, \"ca_certificates\": [\"" CA2 "\", \"" CA1 "\"],"
             " \"client_certificate\": {\"id\": \"" C2 "\"}}"));
    add(c, ST_ENT_SERVICE, load(SVC1));
    add(c, ST_ENT_ROUTE,
        load("{\"id\": \"" R3 "\", \"protocols\": [\"tls\"], \"snis\": [\"x.a.test\"],"
             " \"service\": {\"id\": \"" S3 "\"}}"));
    add(c, ST_ENT_ROUTE,
        load("{\"id\": \"" R2 "\", \"protocols\": [\"tls_passthrough\"], \"snis\": [\"p.test\"],"
             " \"service\": {\"id\": \"" S1 "\"}}"));
}

static void
tls_config_fini(struct tls_config *c)
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(c->lists[k]);
    }
}

static void
build_lists(json_t *const lists[ST_ENT__COUNT], struct built *b)
{
    struct st_err err = {0};

    if (st_snapshot_build(3, lists, &b->bytes, &b->len, b->hash, &err) != 0) {
        fail_msg("build: %s", err.msg);
    }
}

/* Reverses every list (another insertion order). */
static void
reverse_lists(struct tls_config *c)
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_t *r = json_array();
        for (size_t i = json_array_size(c->lists[k]); i > 0; i--) {
            json_array_append(r, json_array_get(c->lists[k], i - 1));
        }
        json_decref(c->lists[k]);
        c->lists[k] = r;
    }
}

static const json_t *
by_id(const json_t *arr, const char *id)
{
    size_t i;
    json_t *el;

    json_array_foreach(arr, i, el)
    {
        if (strcmp(json_string_value(json_object_get(el, "id")), id) == 0) {
            return el;
        }
    }
    fail_msg("no entity %s", id);
    return NULL;
}

static void
test_tls_hash_stability(void **state)
{
    static const struct {
        enum st_entity_kind kind;
        const char *id;
        const char *key;
        const char *value; /* JSON; NULL: another PEM (below) */
    } muts[] = {
        {ST_ENT_CERTIFICATE, C1, "created_at", "1700000000011"},
        {ST_ENT_CERTIFICATE, C1, "tags", "[\"a\"]"},
        {ST_ENT_CERTIFICATE, C1, "cert_alt", "null"},
        {ST_ENT_CERTIFICATE, C1, "cert", NULL},
        {ST_ENT_CERTIFICATE, C1, "key", NULL},
        {ST_ENT_CERTIFICATE, C2, "id", "\"" MISSING "\""},
        {ST_ENT_SNI, N1, "name", "\"*.b.test\""},
        {ST_ENT_SNI, N1, "certificate", "{\"id\": \"" C2 "\"}"},
        {ST_ENT_SNI, N1, "tags", "null"},
        {ST_ENT_SNI, N2, "created_at", "1700000000000"},
        {ST_ENT_CA_CERTIFICATE, CA1, "cert", NULL},
        {ST_ENT_CA_CERTIFICATE, CA1, "cert_digest", "\"00\""},
        {ST_ENT_CA_CERTIFICATE, CA1, "tags", "[\"other\"]"},
        {ST_ENT_SERVICE, S3, "tls_verify", "false"},
        {ST_ENT_SERVICE, S3, "tls_verify", "null"},
        {ST_ENT_SERVICE, S3, "tls_verify_depth", "3"},
        {ST_ENT_SERVICE, S3, "tls_verify_depth", "null"},
        {ST_ENT_SERVICE, S3, "ca_certificates", "[\"" CA1 "\", \"" CA2 "\"]"},
        {ST_ENT_SERVICE, S3, "ca_certificates", "[\"" CA2 "\"]"},
        {ST_ENT_SERVICE, S3, "client_certificate", "{\"id\": \"" C1 "\"}"},
        {ST_ENT_SERVICE, S3, "client_certificate", "null"},
    };
    struct tls_config c;
    struct built a;
    struct built b;

    (void)state;
    tls_config(&c);
    build_lists(c.lists, &a);
    /* another insertion order, other set orders, other updated_at: the same bytes */
    reverse_lists(&c);
    json_array_set_new(json_object_get(by_id(c.lists[ST_ENT_CERTIFICATE], C1), "tags"), 0,
                       json_string("a"));
    json_array_set_new(json_object_get(by_id(c.lists[ST_ENT_CERTIFICATE], C1), "tags"), 1,
                       json_string("z"));
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_SNI], N1), "updated_at",
                        json_integer(1800000000000));
    build_lists(c.lists, &b);
    assert_string_equal(a.hash, b.hash);
    assert_int_equal(a.len, b.len);
    free(b.bytes);
    tls_config_fini(&c);

    for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
        json_t *target;
        struct built m;

        tls_config(&c);
        target = (json_t *)by_id(c.lists[muts[i].kind], muts[i].id);
        if (muts[i].value != NULL) {
            json_object_set_new(target, muts[i].key, load(muts[i].value));
        } else if (strcmp(muts[i].key, "key") == 0) {
            json_object_set_new(target, "key", json_string(ec2.key));
        } else {
            json_object_set_new(target, muts[i].key, json_string(ca2.cert));
        }
        build_lists(c.lists, &m);
        if (strcmp(m.hash, a.hash) == 0) {
            fail_msg("changing %s %s.%s kept the hash", st_entity_name(muts[i].kind), muts[i].id,
                     muts[i].key);
        }
        free(m.bytes);
        tls_config_fini(&c);
    }
    free(a.bytes);
}

static void
test_tls_round_trip(void **state)
{
    struct tls_config c;
    struct built b;
    struct st_snapshot *s = NULL;
    struct st_err err = {0};
    const struct st_service *svc;

    (void)state;
    tls_config(&c);
    build_lists(c.lists, &b);
    if (st_snapshot_parse(b.bytes, b.len, NULL, &s, &err) != 0) {
        fail_msg("parse: %s", err.msg);
    }
    assert_string_equal(s->hash, b.hash);

    assert_int_equal(s->n_certificates, 2);
    assert_string_equal(s->certificates[0].id, C1);
    assert_int_equal(s->certificates[0].created_at_ms, 1700000000010);
    assert_string_equal(s->certificates[0].cert, ec1.cert);
    assert_string_equal(s->certificates[0].key, ec1.key);
    assert_string_equal(s->certificates[0].cert_alt, rsa1.cert);
    assert_string_equal(s->certificates[0].key_alt, rsa1.key);
    assert_string_equal(s->certificates[1].id, C2);
    assert_null(s->certificates[1].cert_alt);
    assert_null(s->certificates[1].key_alt);

    assert_int_equal(s->n_snis, 3);
    assert_string_equal(s->snis[0].id, N1);
    assert_string_equal(s->snis[0].name, "*.a.test");
    assert_string_equal(s->snis[0].certificate_id, C1);
    assert_ptr_equal(s->snis[0].certificate, &s->certificates[0]);
    assert_string_equal(s->snis[1].name, "b.*");
    assert_ptr_equal(s->snis[1].certificate, &s->certificates[1]);
    assert_string_equal(s->snis[2].name, "*");
    assert_ptr_equal(s->snis[2].certificate, &s->certificates[0]);

    assert_int_equal(s->n_ca_certificates, 2);
    assert_string_equal(s->ca_certificates[0].id, CA1);
    assert_string_equal(s->ca_certificates[0].cert, ca1.cert);
    assert_int_equal(strlen(s->ca_certificates[0].cert_digest), 64);
    assert_string_not_equal(s->ca_certificates[0].cert_digest, s->ca_certificates[1].cert_digest);

    assert_int_equal(s->n_services, 2);
    svc = &s->services[0];
    assert_string_equal(svc->id, S1);
    assert_int_equal(svc->tls_verify, -1);
    assert_int_equal(svc->tls_verify_depth, -1);
    assert_int_equal(svc->n_ca_certificates, 0);
    assert_null(svc->client_certificate);
    svc = &s->services[1];
    assert_string_equal(svc->id, S3);
    assert_int_equal(svc->protocol, ST_PROTO_TLS);
    assert_string_equal(svc->host, "up.test");
    assert_int_equal(svc->port, 8443);
    assert_int_equal(svc->tls_verify, 1);
    assert_int_equal(svc->tls_verify_depth, 2);
    /* the user's order, not the id order */
    assert_int_equal(svc->n_ca_certificates, 2);
    assert_ptr_equal(svc->ca_certificates[0], &s->ca_certificates[1]);
    assert_ptr_equal(svc->ca_certificates[1], &s->ca_certificates[0]);
    assert_ptr_equal(svc->client_certificate, &s->certificates[1]);

    assert_int_equal(s->n_routes, 2);
    assert_string_equal(s->routes[0].id, R2);
    assert_int_equal(s->routes[0].protocols, ST_PROTO_TLS_PASSTHROUGH);
    assert_ptr_equal(s->routes[0].service, &s->services[0]);
    assert_string_equal(s->routes[1].id, R3);
    assert_int_equal(s->routes[1].protocols, ST_PROTO_TLS);
    assert_int_equal(s->routes[1].n_snis, 1);
    assert_string_equal(s->routes[1].snis[0], "x.a.test");
    assert_ptr_equal(s->routes[1].service, &s->services[1]);
    st_snapshot_free(s);
    free(b.bytes);
    tls_config_fini(&c);
}

/* Builds c (after edit) and expects parse to refuse it with rc and
 * a message containing msg. */
static void
expect_tls_refused(struct tls_config *c, int rc, const char *msg)
{
    struct built b;
    struct st_err err = {0};

    build_lists(c->lists, &b);
    assert_int_equal(parse_rc(&b, &err), rc);
    if (strstr(err.msg, msg) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg);
    }
    free(b.bytes);
    tls_config_fini(c);
}

static void
test_tls_refusals(void **state)
{
    struct tls_config c;
    struct built b;
    struct st_err err = {0};
    json_t *o;

    (void)state;
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_SNI], N2), "certificate",
                        json_pack("{s:s}", "id", MISSING));
    expect_tls_refused(&c, -ST_EFOREIGN,
                       "sni " N2 ": its certificate " MISSING " is not in the snapshot");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_SERVICE], S3), "client_certificate",
                        json_pack("{s:s}", "id", MISSING));
    expect_tls_refused(&c, -ST_EFOREIGN,
                       "service " S3 ": its client certificate " MISSING " is not in the snapshot");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_SERVICE], S3), "ca_certificates",
                        json_pack("[s,s]", CA1, MISSING));
    expect_tls_refused(&c, -ST_EFOREIGN,
                       "service " S3 ": its CA certificate " MISSING " is not in the snapshot");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_SNI], N2), "name", json_string("*.a.test"));
    expect_tls_refused(&c, -ST_EUNIQUE, "sni name *.a.test appears twice");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_CERTIFICATE], C2), "key",
                        json_string(ec1.key));
    expect_tls_refused(&c, -ST_ESCHEMA,
                       "certificate " C2 ": schema violation (certificate does not match key)");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_CERTIFICATE], C2), "cert",
                        json_string("garbage"));
    expect_tls_refused(&c, -ST_ESCHEMA,
                       "certificate " C2 ": schema violation (cert: invalid certificate: ");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_CA_CERTIFICATE], CA2), "cert",
                        json_string(ec2.cert));
    expect_tls_refused(&c, -ST_ESCHEMA,
                       "ca_certificate " CA2 ": schema violation (certificate "
                       "does not appear to be a CA");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_SNI], N2), "name", json_string("10.0.0.1"));
    expect_tls_refused(&c, -ST_ESCHEMA, "sni " N2 ": schema violation (name: must not be an IP)");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_ROUTE], R2), "snis", json_null());
    expect_tls_refused(&c, -ST_ESCHEMA,
                       "route " R2 ": schema violation (must set snis when 'protocols' is "
                       "'tls_passthrough')");
    tls_config(&c);
    json_object_set_new((json_t *)by_id(c.lists[ST_ENT_SERVICE], S1), "tls_verify", json_true());
    expect_tls_refused(&c, -ST_ESCHEMA,
                       "service " S1 ": 2 schema violations (failed conditional "
                       "validation given value of field 'protocol'; tls_verify: "
                       "value must be null)");

    /* a CA certificate that expired after it was written does not refuse the snapshot */
    tls_config(&c);
    o = json_pack("{s:s, s:s, s:s}", "id", MISSING, "cert", ca_old.cert, "cert_digest", "x");
    json_array_append_new(c.lists[ST_ENT_CA_CERTIFICATE], o);
    build_lists(c.lists, &b);
    assert_int_equal(parse_rc(&b, &err), 0);
    free(b.bytes);
    tls_config_fini(&c);

    /* no tls at all: certificates, snis and CA certificates are fine as they are */
    tls_config(&c);
    json_decref(c.lists[ST_ENT_SERVICE]);
    json_decref(c.lists[ST_ENT_ROUTE]);
    c.lists[ST_ENT_SERVICE] = NULL;
    c.lists[ST_ENT_ROUTE] = NULL;
    build_lists(c.lists, &b);
    assert_int_equal(parse_rc(&b, &err), 0);
    free(b.bytes);
    tls_config_fini(&c);
}

/* Issue 14: the sum of st_snapshot_entity_size over every entity is the snapshot's
 * size less at most ST_SNAPSHOT_ENVELOPE_MAX, so a write's effect on the size is known
 * without encoding the configuration. */
static void
test_entity_sizes_add_up(void **state)
{
    struct tls_config c;
    struct built b;
    size_t sum = 0;
    size_t i;
    json_t *el;

    (void)state;
    tls_config(&c);
    /* sources and destinations, tags, many of them */
    for (int j = 0; j < 300; j++) {
        char id[40];

        snprintf(id, sizeof(id), "3f4e2d1c-0b9a-4877-8655-4433221%05d", j);
        add(&c, ST_ENT_ROUTE,
            json_pack("{s:s,s:[s],s:[{s:s,s:i},{s:s}],s:[{s:i}],s:{s:s},s:[s,s]}", "id", id,
                      "protocols", "tcp", "sources", "ip", "10.0.0.0/8", "port", j, "ip",
                      "192.0.2.1", "destinations", "port", 1000 + j, "service", "id", S1, "tags",
                      "a", "b"));
    }
    build_lists(c.lists, &b);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_array_foreach(c.lists[k], i, el)
        {
            sum += st_snapshot_entity_size((enum st_entity_kind)k, el);
        }
    }
    assert_true(b.len > sum);
    assert_true(b.len - sum <= ST_SNAPSHOT_ENVELOPE_MAX);
    free(b.bytes);
    tls_config_fini(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_config_same_hash),
        cmocka_unit_test(test_any_change_changes_hash),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_plugins),
        cmocka_unit_test(test_empty_config),
        cmocka_unit_test(test_hash_text_mismatch),
        cmocka_unit_test(test_flipped_config_byte),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_garbage_config_refused),
        cmocka_unit_test(test_invalid_entity_refused),
        cmocka_unit_test(test_non_utf8_refused),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_syncmsg_request),
        cmocka_unit_test(test_syncmsg_response),
        cmocka_unit_test(test_tls_hash_stability),
        cmocka_unit_test(test_tls_round_trip),
        cmocka_unit_test(test_tls_refusals),
        cmocka_unit_test(test_entity_sizes_add_up),
        cmocka_unit_test(test_memo),
        cmocka_unit_test(test_missing_defaults),
    };

    return cmocka_run_group_tests(tests, make_certs, free_certs);
}
