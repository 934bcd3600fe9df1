/* Unit tests for st_entity, the table of entity kinds (issue 15): every kind has every
 * slot its consumers read (validation, GET /schemas, the admin routes, the declarative
 * walk, the snapshot's field names and the DP struct's offsets), every foreign key names
 * a registered kind, and what is derived from the table (lookups, the dependency order)
 * holds. A kind added with a slot missing fails here, not by falling back to another kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_check.h"
#include "st_entity.h"
#include "st_schema.h"
#include "st_snapshot.h"

/* Whether the dp conversion keeps a second slot (a count, an id). */
static bool
dp_has_off2(enum st_dpconv dp)
{
    return dp == ST_DP_STRS || dp == ST_DP_ENDPOINTS || dp == ST_DP_REF || dp == ST_DP_REFS;
}

static bool
is_foreign(const struct st_field *f)
{
    return f->type == ST_FT_FOREIGN || f->type == ST_FT_FOREIGN_SET;
}

/* The checks every row must pass; sub-records recurse with dp_size 0 (not on the DP). */
static void
check_rows(const char *kind, const struct st_field *fields, size_t dp_size)
{
    for (const struct st_field *f = fields; f->name != NULL; f++) {
        char members[1024];
        json_t *v;

        assert_true(f->name[0] != '\0');
        for (const struct st_field *g = fields; g != f; g++) {
            if (strcmp(g->name, f->name) == 0) {
                fail_msg("%s.%s: named twice", kind, f->name);
            }
        }
        if (is_foreign(f) != (f->ref != NULL)) {
            fail_msg("%s.%s: a foreign key needs `ref`, and only one may have it", kind, f->name);
        }
        if (f->ref != NULL && st_entities[f->ref->kind] != f->ref) {
            fail_msg("%s.%s: references an unregistered kind", kind, f->name);
        }
        if ((f->flags & (ST_FIELD_F_PARENT | ST_FIELD_F_CASCADE)) && f->type != ST_FT_FOREIGN) {
            fail_msg("%s.%s: PARENT and CASCADE are for FOREIGN fields", kind, f->name);
        }
        /* an abstract record (plugins' config) has no `sub`: its own check names them */
        if ((f->type == ST_FT_RECORDS || (f->type == ST_FT_RECORD && f->check == NULL)) !=
            (f->sub != NULL)) {
            fail_msg("%s.%s: RECORDS and RECORD need `sub`, and only they have it", kind, f->name);
        }
        if (f->type == ST_FT_RECORD) {
            /* its default (every field at its own) passes its check unchanged */
            json_t *d = st_check_default(f);
            json_t *copy = json_deep_copy(d);
            json_t *e = st_check_of(f)(NULL, f, copy);

            if (e != NULL || !json_equal(d, copy)) {
                fail_msg("%s.%s: the record's default does not pass its check", kind, f->name);
            }
            json_decref(d);
            json_decref(copy);
        }
        if (st_check_of(f) == NULL && !(f->flags & ST_FIELD_F_HTTP_ONLY)) {
            fail_msg("%s.%s: no check (the type has none of its own)", kind, f->name);
        }
        if (f->dflt != NULL) {
            v = json_loads(f->dflt, JSON_DECODE_ANY, NULL);
            if (v == NULL) {
                fail_msg("%s.%s: the default is not JSON", kind, f->name);
            }
            json_decref(v);
        }
        snprintf(members, sizeof(members), "{%s}", f->schema != NULL ? f->schema : "");
        v = json_loads(members, 0, NULL);
        if (v == NULL) {
            fail_msg("%s.%s: the schema text is not JSON object members", kind, f->name);
        }
        json_decref(v);
        if (f->pb != NULL && strcmp(f->pb, f->name) == 0) {
            fail_msg("%s.%s: pb repeats the name", kind, f->name);
        }
        if ((f->flags & ST_FIELD_F_NO_SNAP) && f->dp != ST_DP_NONE) {
            fail_msg("%s.%s: not in the snapshot, yet kept by the DP", kind, f->name);
        }
        if (f->dp != ST_DP_NONE &&
            (f->dp_off >= dp_size ||
             (dp_has_off2(f->dp) && f->dp_off2 != ST_DP_NO_OFF && f->dp_off2 >= dp_size))) {
            fail_msg("%s.%s: a DP offset outside struct st_%s", kind, f->name, kind);
        }
        if (f->sub != NULL) {
            check_rows(kind, f->sub, 0);
        }
    }
}

/* What is missing or wrong in the kind-level slots of description d, registered as kind
 * k (NULL: nothing): the name (a path segment: lowercase letters and '_', no other kind's),
 * the singular (a prefix of the name, no other kind's), the fields (starting with id), the
 * DP struct's size. */
static const char *
slot_missing(const struct st_entity_desc *d, int k)
{
    if (d == NULL) {
        return "no description";
    }
    if (d->kind != (enum st_entity_kind)k) {
        return "registered under another kind";
    }
    if (d->name == NULL || d->name[0] == '\0' ||
        strspn(d->name, "abcdefghijklmnopqrstuvwxyz_") != strlen(d->name)) {
        return "no name, or one that is no path segment";
    }
    if (d->singular == NULL || d->singular[0] == '\0' ||
        strncmp(d->name, d->singular, strlen(d->singular)) != 0 ||
        strcmp(d->name, d->singular) == 0) {
        return "no singular, or one that is not the name's";
    }
    if (d->fields == NULL || d->fields[0].name == NULL || strcmp(d->fields[0].name, "id") != 0) {
        return "no fields, or not starting with id";
    }
    if (d->dp_size == 0) {
        return "no dp_size";
    }
    for (int j = 0; j < ST_ENT__COUNT; j++) {
        const struct st_entity_desc *o = st_entities[j];

        if (j != k && o != NULL && o->name != NULL &&
            (strcmp(o->name, d->name) == 0 || strcmp(o->singular, d->singular) == 0)) {
            return "the name or singular of another kind";
        }
    }
    return NULL;
}

/* slot_missing finds a hole: each slot of a real description, emptied in a copy. */
static void
test_missing_slot_fails(void **state)
{
    const struct st_field none[] = {{NULL}};
    struct st_entity_desc d;

    (void)state;
    assert_non_null(slot_missing(NULL, 0));
    d = *st_entities[1];
    assert_non_null(slot_missing(&d, 0)); /* another kind's slot */
    d = *st_entities[1];
    d.name = NULL;
    assert_non_null(slot_missing(&d, 1));
    d = *st_entities[1];
    d.name = "Routes";
    assert_non_null(slot_missing(&d, 1));
    d = *st_entities[1];
    d.singular = NULL;
    assert_non_null(slot_missing(&d, 1));
    d = *st_entities[1];
    d.singular = d.name;
    assert_non_null(slot_missing(&d, 1));
    d = *st_entities[1];
    d.fields = NULL;
    assert_non_null(slot_missing(&d, 1));
    d = *st_entities[1];
    d.fields = none;
    assert_non_null(slot_missing(&d, 1));
    d = *st_entities[1];
    d.dp_size = 0;
    assert_non_null(slot_missing(&d, 1));
    d = *st_entities[1];
    d.name = st_entities[0]->name;
    assert_non_null(slot_missing(&d, 1));
    d = *st_entities[1];
    assert_null(slot_missing(&d, 1));
}

static void
test_every_slot(void **state)
{
    (void)state;
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        const struct st_entity_desc *d = st_entities[k];
        const char *why = slot_missing(d, k);
        int endpoints = 0;
        int parents = 0;
        int foreign = 0;
        json_t *v;

        if (why != NULL) {
            fail_msg("kind %d: %s", k, why);
        }
        assert_string_equal(st_entity_name((enum st_entity_kind)k), d->name);
        check_rows(d->singular, d->fields, d->dp_size);
        for (const struct st_field *f = d->fields; f->name != NULL; f++) {
            endpoints += (f->flags & ST_FIELD_F_ENDPOINT) != 0;
            parents += (f->flags & ST_FIELD_F_PARENT) != 0;
            foreign += f->type == ST_FT_FOREIGN;
            /* unique among the kind, or for a nested-only kind within its parent */
            if ((f->flags & ST_FIELD_F_ENDPOINT) &&
                (f->type != ST_FT_STRING ||
                 !((f->flags & ST_FIELD_F_UNIQUE) || (d->nested_only && d->unique != NULL)))) {
                fail_msg("%s.%s: an endpoint key is a unique string", d->name, f->name);
            }
            if ((f->flags & ST_FIELD_F_PARENT) && f->ref == d) {
                fail_msg("%s.%s: a kind nested under itself", d->name, f->name);
            }
            if ((f->flags & ST_FIELD_F_PARENT) &&
                st_entity_parent_in((enum st_entity_kind)k, f->ref->kind) != f) {
                fail_msg("%s.%s: two parent keys to one kind", d->name, f->name);
            }
        }
        assert_true(foreign <= ST_ENTITY_FOREIGN_MAX);
        assert_true(endpoints <= 1);
        assert_true(parents <= 2); /* plugins: under routes and under services */
        if (d->nested_only && parents == 0) {
            fail_msg("%s: nested only, under no parent", d->name);
        }
        if ((endpoints == 1) != (st_entity_endpoint((enum st_entity_kind)k) != NULL) ||
            (parents >= 1) != (st_entity_parent((enum st_entity_kind)k) != NULL)) {
            fail_msg("%s: the endpoint or parent lookup disagrees with the rows", d->name);
        }
        for (const char *const *u = d->unique; u != NULL && *u != NULL; u++) {
            assert_non_null(st_entity_field((enum st_entity_kind)k, *u));
        }
        v = json_loads(d->checks_schema != NULL ? d->checks_schema : "", 0, NULL);
        if (!json_is_array(v)) {
            fail_msg("%s: checks_schema is not a JSON array", d->name);
        }
        json_decref(v);
    }
}

static void
test_lookups(void **state)
{
    enum st_entity_kind k = ST_ENT__COUNT;

    (void)state;
    for (int i = 0; i < ST_ENT__COUNT; i++) {
        assert_true(st_entity_by_name(st_entity_name((enum st_entity_kind)i), &k));
        assert_int_equal(k, i);
    }
    assert_false(st_entity_by_name("consumers", &k));
    assert_false(st_entity_by_name("service", &k));
    assert_string_equal(st_entity_name(ST_ENT__COUNT), "unknown");
    assert_string_equal(st_entity_endpoint(ST_ENT_SERVICE)->name, "name");
    assert_null(st_entity_endpoint(ST_ENT_CERTIFICATE));
    assert_null(st_entity_endpoint(ST_ENT_CA_CERTIFICATE));
    assert_string_equal(st_entity_parent(ST_ENT_ROUTE)->name, "service");
    assert_string_equal(st_entity_parent(ST_ENT_SNI)->name, "certificate");
    assert_null(st_entity_parent(ST_ENT_SERVICE));
    assert_ptr_equal(st_entity_ref(ST_ENT_SERVICE, "ca_certificates"), &st_ent_ca_certificate);
    assert_ptr_equal(st_entity_ref(ST_ENT_SERVICE, "client_certificate"), &st_ent_certificate);
    assert_null(st_entity_ref(ST_ENT_SERVICE, "host"));
    assert_null(st_entity_ref(ST_ENT_SERVICE, "service"));
    /* issue 16: targets, found by target under their upstream only */
    assert_string_equal(st_entity_endpoint(ST_ENT_UPSTREAM)->name, "name");
    assert_string_equal(st_entity_endpoint(ST_ENT_TARGET)->name, "target");
    assert_string_equal(st_entity_parent(ST_ENT_TARGET)->name, "upstream");
    assert_true(st_entity_parent(ST_ENT_TARGET)->flags & ST_FIELD_F_CASCADE);
    assert_true(st_ent_target.nested_only);
    assert_false(st_ent_upstream.nested_only);
    /* issue 18: plugins, found by instance_name, nested under routes and services */
    assert_string_equal(st_entity_endpoint(ST_ENT_PLUGIN)->name, "instance_name");
    assert_string_equal(st_entity_parent(ST_ENT_PLUGIN)->name, "route");
    assert_ptr_equal(st_entity_ref(ST_ENT_PLUGIN, "service"), &st_ent_service);
    assert_true(st_entity_field(ST_ENT_PLUGIN, "service")->flags & ST_FIELD_F_PARENT);
    assert_true(st_entity_field(ST_ENT_PLUGIN, "service")->flags & ST_FIELD_F_CASCADE);
}

/* Kong's nesting in declarative documents: through every foreign key, the admin API's
 * nested collections first. */
static void
test_nests(void **state)
{
    struct st_entity_nest n[ST_ENTITY_NESTS_MAX];

    (void)state;
    assert_int_equal(st_entity_nests(ST_ENT_SERVICE, n), 2);
    assert_ptr_equal(n[0].child, &st_ent_route);
    assert_string_equal(n[0].field->name, "service");
    assert_ptr_equal(n[1].child, &st_ent_plugin);
    assert_string_equal(n[1].field->name, "service");
    assert_int_equal(st_entity_nests(ST_ENT_CERTIFICATE, n), 3);
    assert_ptr_equal(n[0].child, &st_ent_sni);
    assert_ptr_equal(n[1].child, &st_ent_service);
    assert_string_equal(n[1].field->name, "client_certificate");
    assert_ptr_equal(n[2].child, &st_ent_upstream);
    assert_int_equal(st_entity_nests(ST_ENT_UPSTREAM, n), 1);
    assert_ptr_equal(n[0].child, &st_ent_target);
    assert_string_equal(n[0].field->name, "upstream");
    assert_int_equal(st_entity_nests(ST_ENT_CA_CERTIFICATE, n), 0);
    assert_int_equal(st_entity_nests(ST_ENT_ROUTE, n), 1);
    assert_ptr_equal(n[0].child, &st_ent_plugin);
    assert_string_equal(n[0].field->name, "route");
}

/* Every kind once, each after the kinds it references; for today's kinds, the order in
 * which Kong's declarative config walks them. */
static void
test_order(void **state)
{
    static const enum st_entity_kind kong[] = {
        ST_ENT_CERTIFICATE, ST_ENT_CA_CERTIFICATE, ST_ENT_SERVICE, ST_ENT_ROUTE, ST_ENT_SNI,
    };
    enum st_entity_kind order[ST_ENT__COUNT];
    int pos[ST_ENT__COUNT];

    (void)state;
    st_entity_order(order);
    for (int i = 0; i < ST_ENT__COUNT; i++) {
        pos[i] = -1;
    }
    for (int i = 0; i < ST_ENT__COUNT; i++) {
        assert_int_equal(pos[order[i]], -1);
        pos[order[i]] = i;
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
            if (is_foreign(f)) {
                assert_true(pos[f->ref->kind] < pos[k]);
            }
        }
    }
    assert_memory_equal(order, kong, sizeof(kong));
}

/* The DP's named arrays of struct st_snapshot lie over its lists by kind
 * (ST_ENTITY_SNAPSHOT_LISTS follows the enum): each name reaches its own kind's list, and
 * each array's element is that kind's DP struct. */
#define EXPECT_LIST(kind, arr, cnt)                                                                \
    do {                                                                                           \
        assert_int_equal(offsetof(struct st_snapshot, arr),                                        \
                         offsetof(struct st_snapshot, lists) +                                     \
                             (size_t)(kind) * sizeof(struct st_snapshot_list) +                    \
                             offsetof(struct st_snapshot_list, items));                            \
        assert_int_equal(offsetof(struct st_snapshot, cnt),                                        \
                         offsetof(struct st_snapshot, lists) +                                     \
                             (size_t)(kind) * sizeof(struct st_snapshot_list) +                    \
                             offsetof(struct st_snapshot_list, n));                                \
        assert_int_equal(sizeof(*((struct st_snapshot *)NULL)->arr), st_entities[kind]->dp_size);  \
        seen++;                                                                                    \
    } while (0)

static void
test_snapshot_lists(void **state)
{
    int seen = 0;

    (void)state;
    EXPECT_LIST(ST_ENT_SERVICE, services, n_services);
    EXPECT_LIST(ST_ENT_ROUTE, routes, n_routes);
    EXPECT_LIST(ST_ENT_CERTIFICATE, certificates, n_certificates);
    EXPECT_LIST(ST_ENT_SNI, snis, n_snis);
    EXPECT_LIST(ST_ENT_CA_CERTIFICATE, ca_certificates, n_ca_certificates);
    EXPECT_LIST(ST_ENT_UPSTREAM, upstreams, n_upstreams);
    EXPECT_LIST(ST_ENT_TARGET, targets, n_targets);
    EXPECT_LIST(ST_ENT_PLUGIN, plugins, n_plugins);
    assert_int_equal(seen, ST_ENT__COUNT); /* a kind added: name its list here */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_slot_fails),
        cmocka_unit_test(test_every_slot),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_nests),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_snapshot_lists),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
