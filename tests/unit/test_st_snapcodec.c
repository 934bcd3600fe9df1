/* Issue 15: the generic snapshot codec (protobuf-c's descriptors and the entity
 * descriptions) against the per-kind one it replaces: every fixture (the declarative
 * corpus) and a generated configuration of 10k entities (every kind, every field type:
 * nulls, sets, records, foreign keys and sets) encode to the same bytes and hash, the same
 * entity sizes, and parse to the same structs, with and without the sync client's memo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_test_certs.h"
#include "st_decl.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_snapshot.h"
#include "st_util.h"

#define N_SERVICES 4000
#define N_ROUTES   4000
#define N_CERTS    800
#define N_CAS      400

static void
uuid(char out[37], unsigned kind, size_t i)
{
    st_snprintf(out, 37, "00000000-0000-4000-8%03x-%012zx", kind, i);
}

static json_t *
ref(unsigned kind, size_t i)
{
    char id[37];

    uuid(id, kind, i);
    return json_pack("{s:s}", "id", id);
}

/* Validates o as the store would and appends it to lists[k]. */
static void
add(json_t *lists[ST_ENT__COUNT], enum st_entity_kind k, unsigned kind, size_t i, json_t *o)
{
    char id[37];
    json_t *fields = NULL;

    uuid(id, kind, i);
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "created_at", json_integer(1700000000000 + (json_int_t)i));
    json_object_set_new(o, "updated_at", json_integer(1700000000000 + (json_int_t)i));
    if (st_schema_validate(k, o, &fields) != 0) {
        fail_msg("fixture %s refused", id);
    }
    json_array_append_new(lists[k], o);
}

/* 10k entities: every kind, and each field null, set and (for sets) repeated. */
static void
generate(json_t *lists[ST_ENT__COUNT])
{
    char buf[64];

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        lists[k] = json_array();
    }
    for (size_t i = 0; i < N_CAS; i++) {
        json_t *o = json_pack("{s:s}", "cert", CA_CERT);

        if (i % 2) {
            json_object_set_new(o, "tags", json_pack("[s,s]", "z", i % 4 ? "a" : "b"));
        }
        add(lists, ST_ENT_CA_CERTIFICATE, 0xe, i, o);
    }
    for (size_t i = 0; i < N_CERTS; i++) {
        json_t *o = json_pack("{s:s,s:s}", "cert", LEAF_CERT, "key", LEAF_KEY);
        json_t *sni;

        if (i % 3 == 0) {
            json_object_set_new(o, "tags", json_pack("[s]", "cert"));
        }
        add(lists, ST_ENT_CERTIFICATE, 0xc, i, o);
        st_snprintf(buf, sizeof(buf), i % 5 == 0 ? "*.s%zu.test" : "s%zu.test", i);
        sni = json_pack("{s:s,s:o}", "name", buf, "certificate", ref(0xc, i));
        if (i % 2) {
            json_object_set_new(sni, "tags", json_pack("[s,s,s]", "y", "x", "w"));
        }
        add(lists, ST_ENT_SNI, 0xd, i, sni);
    }
    for (size_t i = 0; i < N_SERVICES; i++) {
        bool tls = i % 4 == 0;
        json_t *o = json_pack("{s:s,s:s}", "host", i % 2 ? "10.1.2.3" : "svc.example.test",
                              "protocol", tls ? "tls" : "tcp");

        if (i % 3) {
            st_snprintf(buf, sizeof(buf), "svc-%zu", i);
            json_object_set_new(o, "name", json_string(buf));
        }
        if (i % 5 == 0) {
            json_object_set_new(o, "port", json_integer((json_int_t)(i % 65536)));
            json_object_set_new(o, "retries", json_integer((json_int_t)(i % 10)));
            json_object_set_new(o, "connect_timeout", json_integer(1 + (json_int_t)i));
            json_object_set_new(o, "read_timeout", json_integer(2 + (json_int_t)i));
            json_object_set_new(o, "write_timeout", json_integer(3 + (json_int_t)i));
        }
        if (i % 7 == 0) {
            json_object_set_new(o, "enabled", json_false());
        }
        if (i % 2) {
            json_object_set_new(o, "tags", json_pack("[s,s,s]", "svc", "b", "a"));
        }
        if (tls && i % 8 == 0) {
            char ca[37];

            uuid(ca, 0xe, (i + 1) % N_CAS);
            json_object_set_new(o, "client_certificate", ref(0xc, i % N_CERTS));
            json_object_set_new(o, "tls_verify", json_boolean(i % 16 == 0));
            json_object_set_new(o, "tls_verify_depth", json_integer((json_int_t)(i % 65)));
            json_object_set_new(o, "ca_certificates",
                                json_pack("[s,s]", ca, "00000000-0000-4000-800e-000000000000"));
        }
        add(lists, ST_ENT_SERVICE, 0x5, i, o);
    }
    for (size_t i = 0; i < N_ROUTES; i++) {
        json_t *o;

        switch (i % 4) {
        case 0:
            o = json_pack("{s:[s],s:[{s:s,s:i},{s:s}],s:[{s:i}]}", "protocols", "tcp", "sources",
                          "ip", "10.0.0.0/8", "port", (int)(i % 65536), "ip", "::1", "destinations",
                          "port", 1 + (int)(i % 60000));
            break;
        case 1:
            st_snprintf(buf, sizeof(buf), "r%zu.test", i);
            o = json_pack("{s:[s],s:[s,s]}", "protocols", "tls", "snis", buf, "a.test");
            break;
        case 2:
            o = json_pack("{s:[s],s:[s]}", "protocols", "tls_passthrough", "snis", "*.p.test");
            break;
        default:
            o = json_pack("{s:[s,s],s:[{s:s}]}", "protocols", "tls", "tcp", "destinations", "ip",
                          "192.168.1.1");
            break;
        }
        if (i % 3) {
            st_snprintf(buf, sizeof(buf), "route-%zu", i);
            json_object_set_new(o, "name", json_string(buf));
        }
        if (i % 5) {
            json_object_set_new(o, "service", ref(0x5, i % N_SERVICES));
        }
        if (i % 6 == 0) {
            json_object_set_new(o, "preserve_host", json_true());
            json_object_set_new(o, "tags", json_pack("[s,s]", "rt", "a"));
        }
        add(lists, ST_ENT_ROUTE, 0xa, i, o);
    }
}

struct built {
    uint8_t *bytes;
    size_t len;
    char hash[65];
};

static void
build(json_t *const lists[ST_ENT__COUNT], bool legacy, struct built *b)
{
    struct st_err err = {0};

    st_snapshot_legacy = legacy;
    if (st_snapshot_build(5, lists, &b->bytes, &b->len, b->hash, &err) != 0) {
        fail_msg("build (%s): %s", legacy ? "old" : "new", err.msg);
    }
    st_snapshot_legacy = false;
}

static struct st_snapshot *
parse(const struct built *b, bool legacy, struct st_snapshot_memo *memo)
{
    struct st_err err = {0};
    struct st_snapshot *s = NULL;

    st_snapshot_legacy = legacy;
    if (st_snapshot_parse(b->bytes, b->len, memo, &s, &err) != 0) {
        fail_msg("parse (%s): %s", legacy ? "old" : "new", err.msg);
    }
    st_snapshot_legacy = false;
    return s;
}

#define AT(p, off, type) (*(const type *)((const char *)(p) + (off)))

static bool
str_same(const char *x, const char *y)
{
    return x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

/* The id of a resolved reference (every DP struct starts with its id). */
static const char *
ref_id(const void *p)
{
    return p != NULL ? *(const char *const *)p : NULL;
}

/* Entities x and y of kind k hold the same, field by field, by the descriptions. */
static void
assert_same_ent(enum st_entity_kind k, const void *x, const void *y)
{
    for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
        bool same = true;

        switch (f->dp) {
        case ST_DP_NONE:
            break;
        case ST_DP_STR:
            same = str_same(AT(x, f->dp_off, char *), AT(y, f->dp_off, char *));
            break;
        case ST_DP_U16:
            same = AT(x, f->dp_off, uint16_t) == AT(y, f->dp_off, uint16_t);
            break;
        case ST_DP_U32:
            same = AT(x, f->dp_off, uint32_t) == AT(y, f->dp_off, uint32_t);
            break;
        case ST_DP_I64:
            same = AT(x, f->dp_off, int64_t) == AT(y, f->dp_off, int64_t);
            break;
        case ST_DP_BOOL:
            same = AT(x, f->dp_off, bool) == AT(y, f->dp_off, bool);
            break;
        case ST_DP_TRISTATE:
        case ST_DP_INT:
            same = AT(x, f->dp_off, int) == AT(y, f->dp_off, int);
            break;
        case ST_DP_PROTO:
            same = AT(x, f->dp_off, unsigned) == AT(y, f->dp_off, unsigned);
            break;
        case ST_DP_STRS:
            same = AT(x, f->dp_off2, size_t) == AT(y, f->dp_off2, size_t);
            for (size_t i = 0; same && i < AT(x, f->dp_off2, size_t); i++) {
                same = str_same(AT(x, f->dp_off, char **)[i], AT(y, f->dp_off, char **)[i]);
            }
            break;
        case ST_DP_ENDPOINTS:
            same = AT(x, f->dp_off2, size_t) == AT(y, f->dp_off2, size_t) &&
                   memcmp(AT(x, f->dp_off, struct st_endpoint *),
                          AT(y, f->dp_off, struct st_endpoint *),
                          AT(x, f->dp_off2, size_t) * sizeof(struct st_endpoint)) == 0;
            break;
        case ST_DP_REF:
            same = str_same(ref_id(AT(x, f->dp_off, void *)), ref_id(AT(y, f->dp_off, void *)));
            if (same && f->dp_off2 != ST_DP_NO_OFF) {
                same = str_same(AT(x, f->dp_off2, char *), AT(y, f->dp_off2, char *));
            }
            break;
        case ST_DP_REFS:
            same = AT(x, f->dp_off2, size_t) == AT(y, f->dp_off2, size_t);
            for (size_t i = 0; same && i < AT(x, f->dp_off2, size_t); i++) {
                same = str_same(ref_id(AT(x, f->dp_off, void **)[i]),
                                ref_id(AT(y, f->dp_off, void **)[i]));
            }
            break;
        }
        if (!same) {
            fail_msg("%s %s: %s differs", st_entities[k]->singular, *(const char *const *)x,
                     f->name);
        }
    }
}

static void
assert_same_snapshot(const struct st_snapshot *x, const struct st_snapshot *y)
{
    const void *xa[ST_ENT__COUNT] = {x->services, x->routes, x->certificates, x->snis,
                                     x->ca_certificates};
    const void *ya[ST_ENT__COUNT] = {y->services, y->routes, y->certificates, y->snis,
                                     y->ca_certificates};
    size_t xn[ST_ENT__COUNT] = {x->n_services, x->n_routes, x->n_certificates, x->n_snis,
                                x->n_ca_certificates};
    size_t yn[ST_ENT__COUNT] = {y->n_services, y->n_routes, y->n_certificates, y->n_snis,
                                y->n_ca_certificates};

    assert_int_equal(x->version, y->version);
    assert_string_equal(x->hash, y->hash);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        size_t size = st_entities[k]->dp_size;

        assert_int_equal(xn[k], yn[k]);
        for (size_t i = 0; i < xn[k]; i++) {
            assert_same_ent((enum st_entity_kind)k, (const char *)xa[k] + i * size,
                            (const char *)ya[k] + i * size);
        }
    }
}

/* Old and new codecs agree on lists: bytes (through the hash of the Config bytes and
 * the length), every entity's size, and the parsed structs. Returns the hash. */
static void
compare(json_t *const lists[ST_ENT__COUNT], char hash[65])
{
    struct built o, n;
    struct st_snapshot *so, *sn, *sm;
    struct st_snapshot_memo *memo = st_snapshot_memo_new();

    build(lists, true, &o);
    build(lists, false, &n);
    assert_string_equal(o.hash, n.hash);
    assert_int_equal(o.len, n.len);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        size_t i;
        json_t *el;

        json_array_foreach(lists[k], i, el)
        {
            size_t a, b;

            st_snapshot_legacy = true;
            a = st_snapshot_entity_size((enum st_entity_kind)k, el);
            st_snapshot_legacy = false;
            b = st_snapshot_entity_size((enum st_entity_kind)k, el);
            assert_int_equal(a, b);
        }
    }
    so = parse(&o, true, NULL);
    sn = parse(&o, false, NULL);
    assert_same_snapshot(so, sn);
    st_snapshot_free(sn);
    sn = parse(&n, false, memo);
    sm = parse(&n, false, memo); /* every entity from the memo */
    assert_same_snapshot(so, sm);
    st_snapshot_free(sn);
    st_snapshot_free(sm);
    st_snapshot_free(so);
    memcpy(hash, n.hash, 65);
    free(o.bytes);
    free(n.bytes);
    st_snapshot_memo_free(memo);
}

static void
test_generated(void **state)
{
    json_t *lists[ST_ENT__COUNT];
    char hash[65];

    (void)state;
    generate(lists);
    compare(lists, hash);
    print_message("generated 10k: %s\n", hash);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
}

static char *
read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1 << 20);

    assert_non_null(f);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

static void
test_corpus(void **state)
{
    char dir[512];
    const char *slash = strrchr(__FILE__, '/');
    DIR *d;
    struct dirent *e;
    size_t n_ok = 0;

    (void)state;
    st_snprintf(dir, sizeof(dir), "%.*s/../fuzz/corpus/st_decl", (int)(slash - __FILE__), __FILE__);
    d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[1024], hash[65];
        char *text;
        size_t len;
        json_t *lists[ST_ENT__COUNT] = {NULL}, *error = NULL;
        struct st_decl_opts opts = {.now_ms = 1700000000000};

        if (e->d_name[0] == '.') {
            continue;
        }
        st_snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        text = read_all(path, &len);
        if (st_decl_parse(text, len, &opts, lists, &error) == 0) {
            compare(lists, hash);
            n_ok++;
        }
        json_decref(error);
        for (int k = 0; k < ST_ENT__COUNT; k++) {
            json_decref(lists[k]);
        }
        free(text);
    }
    closedir(d);
    assert_true(n_ok >= 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_corpus),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
