/* Issue 15: the generic snapshot codec (protobuf-c's descriptors and the entity
 * descriptions) does what the per-kind one it replaced did. A generated configuration of
 * 10k entities (every kind, every field type: nulls, sets, records, foreign keys and
 * sets) encodes to the Config bytes, entity sizes and parsed structs that the per-kind
 * codec gave (GOLDEN_*: computed by it, commit 7cbc134, where both ran side by side and
 * agreed on this configuration and on every file of the declarative corpus); every
 * parse agrees with and without the sync client's memo. */
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
#include "st_file.h"
#include "st_schema.h"
#include "st_snapshot.h"
#include "st_ssl.h"
#include "st_util.h"

#define N_SERVICES 4000
#define N_ROUTES   4000
#define N_CERTS    800
#define N_CAS      400

/* What the per-kind codec gave for generate(): the Config's SHA-256, the sum of
 * st_snapshot_entity_size, the SHA-256 of dump_ent over every parsed entity. */
#define GOLDEN_HASH    "7077552539c058ff3affb66b318bde472d5f7d1949082baa9f05bd525f9e75a3"
#define GOLDEN_SIZES   1958732
#define GOLDEN_STRUCTS "2837cd1a5f03163db317a8d96db1005ec4ed1cceacc769ca3a5c8c3c6d93c24a"

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
build(json_t *const lists[ST_ENT__COUNT], struct built *b)
{
    struct st_err err = {0};

    if (st_snapshot_build(5, lists, &b->bytes, &b->len, b->hash, &err) != 0) {
        fail_msg("build: %s", err.msg);
    }
}

static struct st_snapshot *
parse(const struct built *b, struct st_snapshot_memo *memo)
{
    struct st_err err = {0};
    struct st_snapshot *s = NULL;

    if (st_snapshot_parse(b->bytes, b->len, memo, &s, &err) != 0) {
        fail_msg("parse: %s", err.msg);
    }
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

/* Appends every field the DP keeps of entity x of kind k to out, as text. */
static void
dump_ent(enum st_entity_kind k, const void *x, FILE *out)
{
    for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
        size_t n = f->dp_off2 != ST_DP_NO_OFF ? AT(x, f->dp_off2, size_t) : 0;

        fprintf(out, "%s=", f->name);
        switch (f->dp) {
        case ST_DP_NONE:
            break;
        case ST_DP_STR:
            fprintf(out, "%s", AT(x, f->dp_off, char *) ? AT(x, f->dp_off, char *) : "(null)");
            break;
        case ST_DP_U16:
            fprintf(out, "%u", (unsigned)AT(x, f->dp_off, uint16_t));
            break;
        case ST_DP_U32:
            fprintf(out, "%u", (unsigned)AT(x, f->dp_off, uint32_t));
            break;
        case ST_DP_I64:
            fprintf(out, "%lld", (long long)AT(x, f->dp_off, int64_t));
            break;
        case ST_DP_BOOL:
            fprintf(out, "%d", (int)AT(x, f->dp_off, bool));
            break;
        case ST_DP_TRISTATE:
        case ST_DP_INT:
            fprintf(out, "%d", AT(x, f->dp_off, int));
            break;
        case ST_DP_PROTO:
            fprintf(out, "%u", AT(x, f->dp_off, unsigned));
            break;
        case ST_DP_STRS:
            for (size_t i = 0; i < n; i++) {
                fprintf(out, "%s,", AT(x, f->dp_off, char **)[i]);
            }
            break;
        case ST_DP_ENDPOINTS:
            for (size_t i = 0; i < n; i++) {
                const struct st_endpoint *e = &AT(x, f->dp_off, struct st_endpoint *)[i];

                fprintf(out, "%d/%d/%u/%d/%d/", e->has_ip, e->has_port, e->port, e->ip.family,
                        e->ip.bits);
                for (size_t j = 0; j < sizeof(e->ip.addr); j++) {
                    fprintf(out, "%02x", e->ip.addr[j]);
                }
                fprintf(out, ",");
            }
            break;
        case ST_DP_REF: {
            const char *id = ref_id(AT(x, f->dp_off, void *));

            fprintf(out, "%s", id != NULL ? id : "(null)");
            break;
        }
        case ST_DP_REFS:
            for (size_t i = 0; i < n; i++) {
                fprintf(out, "%s,", ref_id(AT(x, f->dp_off, void **)[i]));
            }
            break;
        }
        fprintf(out, ";");
    }
    fprintf(out, "\n");
}

/* SHA-256 of the text of every entity of s (dump_ent), in hex. */
static void
dump_hash(const struct st_snapshot *s, char hash[65])
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        size_t n = s->lists[k].n;
        const char *arr = s->lists[k].items;

        for (size_t i = 0; i < n; i++) {
            dump_ent((enum st_entity_kind)k, arr + i * st_entities[k]->dp_size, out);
        }
    }
    fclose(out);
    st_ssl_sha256_hex(text, len, hash);
    free(text);
}

static void
assert_same_snapshot(const struct st_snapshot *x, const struct st_snapshot *y)
{
    assert_int_equal(x->version, y->version);
    assert_string_equal(x->hash, y->hash);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        size_t size = st_entities[k]->dp_size;
        const char *xa = x->lists[k].items, *ya = y->lists[k].items;

        assert_int_equal(x->lists[k].n, y->lists[k].n);
        for (size_t i = 0; i < x->lists[k].n; i++) {
            assert_same_ent((enum st_entity_kind)k, xa + i * size, ya + i * size);
        }
    }
}

/* What the codec makes of lists: the Config's hash, the sum of the entity sizes and the
 * hash of the parsed structs (dump_hash); a parse without a memo, a first and a second
 * one with it (every entity from the memo) give the same structs. */
static void
encode_parse(json_t *const lists[ST_ENT__COUNT], char hash[65], size_t *sizes, char structs[65])
{
    struct built b;
    struct st_snapshot *plain, *first, *again;
    struct st_snapshot_memo *memo = st_snapshot_memo_new();

    build(lists, &b);
    *sizes = 0;
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        size_t i;
        json_t *el;

        json_array_foreach(lists[k], i, el)
        {
            *sizes += st_snapshot_entity_size((enum st_entity_kind)k, el);
        }
    }
    /* the encoded snapshot is its entities plus an envelope (issue 14) */
    assert_true(b.len >= *sizes && b.len <= *sizes + ST_SNAPSHOT_ENVELOPE_MAX);
    plain = parse(&b, NULL);
    first = parse(&b, memo);
    again = parse(&b, memo);
    assert_same_snapshot(plain, first);
    assert_same_snapshot(plain, again);
    dump_hash(plain, structs);
    memcpy(hash, b.hash, 65);
    st_snapshot_free(plain);
    st_snapshot_free(first);
    st_snapshot_free(again);
    free(b.bytes);
    st_snapshot_memo_free(memo);
}

static void
test_generated(void **state)
{
    json_t *lists[ST_ENT__COUNT];
    char hash[65], structs[65];
    size_t sizes;

    (void)state;
    generate(lists);
    encode_parse(lists, hash, &sizes, structs);
    assert_string_equal(hash, GOLDEN_HASH);
    assert_int_equal(sizes, GOLDEN_SIZES);
    assert_string_equal(structs, GOLDEN_STRUCTS);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
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
        char path[1024], hash[65], structs[65];
        size_t sizes;
        char *text;
        size_t len;
        json_t *lists[ST_ENT__COUNT] = {NULL}, *error = NULL;
        struct st_decl_opts opts = {.now_ms = 1700000000000};

        if (e->d_name[0] == '.') {
            continue;
        }
        st_snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        assert_int_equal(st_file_read(path, 1 << 20, &text, &len), 0);
        if (st_decl_parse(text, len, &opts, lists, &error) == 0) {
            encode_parse(lists, hash, &sizes, structs);
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
