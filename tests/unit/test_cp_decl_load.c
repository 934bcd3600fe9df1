/* cp_decl_load over a scripted fake store (issue 5, point 3): POST /config clears and
 * inserts in dependency order inside one transaction and rolls the whole of it back when
 * any insert fails (a failure the document's own checks cannot see); db_import upserts,
 * keeps the stored created_at when the file gives none, takes a stored entity's id by
 * name; an invalid document never opens a write. Issue 14: the parse runs before the
 * write lock, replays its look-ups under it when another write committed meanwhile, and a
 * document beyond cluster_max_payload never takes the lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_decl_load.h"
#include "cp_store.h"
#include "st_err.h"

#define STORED_ID  "5b59a69d-83ad-4708-89c4-0c8c9bdf6eab"
#define STORED_CAT 1000000000000LL

#define OTHER_ID "7c1f5d0e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"

/* A store that records what it is asked and fails the insert number fail_at. */
struct fake {
    struct cp_store base;
    int begins, commits, rollbacks, clears, inserts, updates;
    int fail_at;     /* 1-based insert that fails with -ST_EUNIQUE; 0: none */
    char order[16];  /* the kinds inserted or updated, as digits */
    json_t *updated; /* the last object given to update */
    uint64_t version;
    /* another write commits just before the lock is granted: at the first begin
     * (race_once) or at every one (racing); it stores a service "other" (renames), which
     * racing writes delete and store again in turn */
    bool racing;
    bool race_once;
    bool renames;
    bool other_stored;
    /* every call: V version, G get, B begin, C commit, R rollback, X clear, I insert,
     * U update */
    char log[128];
};

static void
ops_log(struct fake *f, char c)
{
    size_t n = strlen(f->log);

    if (n + 1 < sizeof(f->log)) {
        f->log[n] = c;
    }
}

static int
f_begin(struct cp_store *s, bool write)
{
    struct fake *f = (struct fake *)s;

    assert_true(write);
    f->begins++;
    ops_log(f, 'B');
    if (f->racing) {
        f->version++;
        f->other_stored = f->renames && !f->other_stored; /* stored, gone, stored, ... */
    } else if (f->race_once && f->begins == 1) {
        f->version++;
        f->other_stored = f->renames;
    }
    return 0;
}

static int
f_commit(struct cp_store *s)
{
    ((struct fake *)s)->commits++;
    ops_log((struct fake *)s, 'C');
    return 0;
}

static void
f_rollback(struct cp_store *s)
{
    ((struct fake *)s)->rollbacks++;
    ops_log((struct fake *)s, 'R');
}

static int
f_version(struct cp_store *s, uint64_t *v)
{
    ops_log((struct fake *)s, 'V');
    *v = ((struct fake *)s)->version;
    return 0;
}

/* One stored service "stored" (by name or by its id), and "other" once another write
 * stored it. */
static int
f_get(struct cp_store *s, enum st_entity_kind k, const char *key, json_t **out)
{
    struct fake *f = (struct fake *)s;

    ops_log(f, 'G');
    if (k == ST_ENT_SERVICE && (strcmp(key, "stored") == 0 || strcmp(key, STORED_ID) == 0)) {
        *out = json_pack("{s:s,s:s,s:I,s:s,s:i}", "id", STORED_ID, "name", "stored", "created_at",
                         (json_int_t)STORED_CAT, "host", "old", "port", 1);
        return 0;
    }
    if (k == ST_ENT_SERVICE && f->other_stored && strcmp(key, "other") == 0) {
        *out = json_pack("{s:s,s:s,s:I,s:s,s:i}", "id", OTHER_ID, "name", "other", "created_at",
                         (json_int_t)STORED_CAT, "host", "old", "port", 1);
        return 0;
    }
    return -ST_ENOTFOUND;
}

static void
record(struct fake *f, enum st_entity_kind k)
{
    size_t n = strlen(f->order);

    if (n + 1 < sizeof(f->order)) {
        f->order[n] = (char)('0' + k);
    }
}

static int
f_insert(struct cp_store *s, enum st_entity_kind k, const json_t *obj, struct st_err *err)
{
    struct fake *f = (struct fake *)s;

    (void)obj;
    f->inserts++;
    ops_log(f, 'I');
    record(f, k);
    if (f->inserts == f->fail_at) {
        return st_err_set(err, -ST_EUNIQUE, "name", "clash");
    }
    return 0;
}

static int
f_update(struct cp_store *s, enum st_entity_kind k, const json_t *obj, struct st_err *err)
{
    struct fake *f = (struct fake *)s;

    (void)err;
    f->updates++;
    ops_log(f, 'U');
    record(f, k);
    json_decref(f->updated);
    f->updated = json_deep_copy(obj);
    return 0;
}

static int
f_write(struct cp_store *s, enum st_entity_kind k, const json_t *obj, bool insert,
        struct st_err *err)
{
    return insert ? f_insert(s, k, obj, err) : f_update(s, k, obj, err);
}

static int
f_clear(struct cp_store *s)
{
    ((struct fake *)s)->clears++;
    ops_log((struct fake *)s, 'X');
    return 0;
}

static const struct cp_store_ops fake_ops = {
    .name = "fake",
    .begin = f_begin,
    .commit = f_commit,
    .rollback = f_rollback,
    .get = f_get,
    .write = f_write,
    .version = f_version,
    .clear = f_clear,
};

static const char doc[] = "_format_version: \"3.0\"\n"
                          "services:\n"
                          "- name: stored\n"
                          "  host: new\n"
                          "  port: 2\n"
                          "  routes:\n"
                          "  - {name: r, protocols: [tcp], destinations: [{port: 7}]}\n"
                          "- {name: other, host: h, port: 3}\n";

static void
test_replace_inserts_in_order_and_commits(void **state)
{
    struct fake f = {.base.ops = &fake_ops};
    struct cp_decl_result r;

    (void)state;
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_REPLACE, NULL, &r), 0);
    assert_int_equal(f.begins, 1);
    assert_int_equal(f.clears, 1);
    assert_int_equal(f.inserts, 3);
    assert_int_equal(f.updates, 0);
    assert_int_equal(f.commits, 1);
    assert_int_equal(f.rollbacks, 0);
    /* services (0) before routes (1) */
    assert_string_equal(f.order, "001");
    /* the stored service's id and created_at were kept (found by name) */
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(r.lists[ST_ENT_SERVICE], 0), "id")),
        STORED_ID);
    cp_decl_result_fini(&r);
}

static void
test_replace_failure_rolls_back(void **state)
{
    struct fake f = {.base.ops = &fake_ops, .fail_at = 3};
    struct cp_decl_result r;

    (void)state;
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_REPLACE, NULL, &r),
                     -ST_EUNIQUE);
    assert_int_equal(f.clears, 1);
    assert_int_equal(f.commits, 0);
    assert_int_equal(f.rollbacks, 1);
    assert_int_equal(r.kind, ST_ENT_ROUTE);
    assert_string_equal(r.err.msg, "clash");
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        assert_null(r.lists[k]);
    }
    cp_decl_result_fini(&r);
}

static void
test_upsert_updates_and_keeps_created_at(void **state)
{
    struct fake f = {.base.ops = &fake_ops};
    struct cp_decl_result r;

    (void)state;
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_UPSERT, NULL, &r), 0);
    assert_int_equal(f.clears, 0);
    assert_int_equal(f.updates, 1);
    assert_int_equal(f.inserts, 2);
    assert_int_equal(f.commits, 1);
    assert_non_null(f.updated);
    assert_string_equal(json_string_value(json_object_get(f.updated, "id")), STORED_ID);
    assert_string_equal(json_string_value(json_object_get(f.updated, "host")), "new");
    assert_int_equal(json_integer_value(json_object_get(f.updated, "created_at")), STORED_CAT);
    json_decref(f.updated);
    cp_decl_result_fini(&r);
}

static void
test_invalid_document_writes_nothing(void **state)
{
    static const char bad[] = "_format_version: \"3.0\"\nservices:\n- {name: x, port: -1}\n";
    struct fake f = {.base.ops = &fake_ops};
    struct cp_decl_result r;

    (void)state;
    assert_int_equal(cp_decl_load(&f.base, bad, strlen(bad), CP_DECL_REPLACE, NULL, &r),
                     -ST_ESCHEMA);
    assert_non_null(r.error);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 14);
    assert_int_equal(f.clears + f.inserts + f.updates + f.commits, 0);
    /* issue 14: an invalid document never takes the write lock */
    assert_int_equal(f.begins + f.rollbacks, 0);
    assert_string_equal(f.log, "VG"); /* the version, then "x" looked up */
    cp_decl_result_fini(&r);
}

/* Issue 14: the parse (and its look-ups) runs before the write lock; under it, only the
 * version check and the writes. */
static void
test_parse_before_lock(void **state)
{
    struct fake f = {.base.ops = &fake_ops};
    struct cp_decl_result r;

    (void)state;
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_REPLACE, NULL, &r), 0);
    /* version, the 3 names looked up, begin, the version again, clear, 3 inserts, commit */
    assert_string_equal(f.log, "VGGGBVXIIIC");
    cp_decl_result_fini(&r);
}

/* Another write committed between the parse and the lock, without touching the names
 * the document uses: the look-ups are replayed under the lock, and hold. */
static void
test_other_write_meanwhile(void **state)
{
    struct fake f = {.base.ops = &fake_ops, .race_once = true};
    struct cp_decl_result r;

    (void)state;
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_REPLACE, NULL, &r), 0);
    assert_string_equal(f.log, "VGGGBVGGGXIIIC");
    cp_decl_result_fini(&r);
}

/* That write stored a service named "other", which the document names: the parse is
 * done again, and the document's "other" takes the stored id. */
static void
test_names_changed_meanwhile(void **state)
{
    struct fake f = {.base.ops = &fake_ops, .race_once = true, .renames = true};
    struct cp_decl_result r;
    const json_t *other;

    (void)state;
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_REPLACE, NULL, &r), 0);
    /* the replay stops at "other", the third name looked up */
    assert_string_equal(f.log, "VGGGBVGGGR"
                               "VGGGBVXIIIC");
    other = json_array_get(r.lists[ST_ENT_SERVICE], 1);
    assert_string_equal(json_string_value(json_object_get(other, "name")), "other");
    assert_string_equal(json_string_value(json_object_get(other, "id")), OTHER_ID);
    cp_decl_result_fini(&r);
}

/* Writes keep racing the load: the last attempt parses under the lock. */
static void
test_last_attempt_under_lock(void **state)
{
    struct fake f = {.base.ops = &fake_ops, .racing = true, .renames = true};
    struct cp_decl_result r;

    (void)state;
    assert_int_equal(CP_DECL_ATTEMPTS, 3);
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_REPLACE, NULL, &r), 0);
    assert_string_equal(f.log, "VGGGBVGGGR"
                               "VGGGBVGGGR"
                               "BGGGXIIIC");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(r.lists[ST_ENT_SERVICE], 1), "id")),
        OTHER_ID);
    cp_decl_result_fini(&r);
}

/* A document whose snapshot would be beyond cluster_max_payload is refused before the
 * lock, with both sizes named. */
static void
test_too_big_never_locks(void **state)
{
    struct fake f = {.base.ops = &fake_ops};
    struct cp_decl_limits lim = {.max_payload = 512};
    struct cp_decl_result r;

    (void)state;
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_REPLACE, &lim, &r),
                     -ST_ETOOBIG);
    assert_int_equal(f.begins, 0);
    assert_non_null(strstr(r.err.msg, "beyond cluster_max_payload (512 bytes)"));
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        assert_null(r.lists[k]);
    }
    cp_decl_result_fini(&r);
    lim.max_payload = 4096;
    assert_int_equal(cp_decl_load(&f.base, doc, strlen(doc), CP_DECL_REPLACE, &lim, &r), 0);
    cp_decl_result_fini(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace_inserts_in_order_and_commits),
        cmocka_unit_test(test_replace_failure_rolls_back),
        cmocka_unit_test(test_upsert_updates_and_keeps_created_at),
        cmocka_unit_test(test_invalid_document_writes_nothing),
        cmocka_unit_test(test_parse_before_lock),
        cmocka_unit_test(test_other_write_meanwhile),
        cmocka_unit_test(test_names_changed_meanwhile),
        cmocka_unit_test(test_last_attempt_under_lock),
        cmocka_unit_test(test_too_big_never_locks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
