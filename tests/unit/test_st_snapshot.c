/* st_snapshot and st_syncmsg: the canonical hash (same configuration, same bytes,
 * whatever the order; any field change changes it; updated_at and version do not),
 * the round trip to plain structs, and refusal of corrupt, truncated or invalid
 * snapshots (issue 2). */
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
#include "st_snapshot.h"
#include "st_ssl.h"
#include "st_syncmsg.h"

#define S1      "00000000-0000-4000-8000-000000000001"
#define S2      "00000000-0000-4000-8000-000000000002"
#define R1      "00000000-0000-4000-8000-0000000000a1"
#define R2      "00000000-0000-4000-8000-0000000000a2"
#define MISSING "00000000-0000-4000-8000-0000000000ff"

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
    int rc = st_snapshot_build(version, services, routes, &b->bytes, &b->len, b->hash, &err);

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
    int rc = st_snapshot_parse(b->bytes, b->len, &s, err);

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
    assert_int_equal(st_snapshot_parse(b.bytes, b.len, &s, &err), 0);
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
    assert_int_equal(st_snapshot_parse(b.bytes, b.len, &s, &err), 0);
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
    assert_int_equal(st_snapshot_parse(junk, sizeof(junk), &s, &err), -ST_EPARSE);
    assert_null(s);
    assert_non_null(strstr(err.msg, "not a valid Snapshot"));
    assert_int_equal(st_snapshot_parse((const uint8_t *)"", 0, &s, &err), -ST_EPARSE);
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
        int rc = st_snapshot_parse(t.bytes, t.len, &p, &err);
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

    (void)state;
    json_array_append_new(svcs, load("{\"host\": \"h\"}"));
    assert_int_equal(st_snapshot_build(1, svcs, NULL, &out, &len, hash, &err), -ST_ESCHEMA);
    json_array_clear(svcs);
    json_array_append_new(svcs, load("{\"id\": \"" S1 "\", \"host\": \"h\"}"));
    json_array_append_new(svcs, load("{\"id\": \"" S1 "\", \"host\": \"i\"}"));
    assert_int_equal(st_snapshot_build(1, svcs, NULL, &out, &len, hash, &err), -ST_EUNIQUE);
    assert_int_equal(st_snapshot_build(1, NULL, svcs, &out, &len, hash, &err), -ST_EUNIQUE);
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

    /* status 7 is no Status; truncated bytes are no message */
    assert_int_equal(st_syncmsg_resp_decode((const uint8_t *)"\x08\x07", 2, &out), -ST_EPARSE);
    assert_int_equal(st_syncmsg_resp_decode((const uint8_t *)"\x08", 1, &out), -ST_EPARSE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_config_same_hash),
        cmocka_unit_test(test_any_change_changes_hash),
        cmocka_unit_test(test_round_trip),
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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
