/* cp_store, one suite run unchanged against both backends: a temporary SQLite file, and a
 * fresh database on the test Postgres (scripts/pg-temp.sh; scripts/test.sh exports
 * STRAIT_TEST_PG_{HOST,PORT,USER}) bootstrapped with cp_migrate_run.
 * Issue 2: store with versioned migrations, constraint errors, paging, one config version
 * bump per commit, one consistent read; issue 3: certificates, snis (unique name, cascade
 * with their certificate) and ca_certificates (unique digest, refused delete while a
 * service references one); issue 6: tag filters across pages, version bumps, concurrent
 * writers on two handles and a unique-name race. Without the STRAIT_TEST_PG_* variables
 * the Postgres group fails (it never skips). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <pthread.h>

#include "cp_migrate.h"
#include "cp_snapshot.h"
#include "cp_store.h"
#include "cp_store_int.h"
#include "cp_test_certs.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_snapshot.h"
#include "st_util.h"

enum backend {
    BE_SQLITE,
    BE_PG,
};

/* One fresh, empty store: a folder with a SQLite file, or a migrated Postgres database. */
struct db {
    enum backend be;
    char dir[64];
    char path[128];
    char name[64];
    struct st_conf conf;
};

struct fx {
    struct db db;
    struct cp_store *s;
};

static const char *const SVC1 = "10000000-0000-4000-8000-000000000001";
static const char *const UP1 = "a1000000-0000-4000-8000-000000000001";
static const char *const UP2 = "a2000000-0000-4000-8000-000000000002";
static const char *const TG1 = "b1000000-0000-4000-8000-000000000001";
static const char *const TG2 = "b2000000-0000-4000-8000-000000000002";
static const char *const TG3 = "b3000000-0000-4000-8000-000000000003";
static const char *const SVC2 = "20000000-0000-4000-8000-000000000002";
static const char *const RT1 = "30000000-0000-4000-8000-000000000003";
static const char *const CRT1 = "40000000-0000-4000-8000-000000000004";
static const char *const CRT2 = "50000000-0000-4000-8000-000000000005";
static const char *const SNI1 = "60000000-0000-4000-8000-000000000006";
static const char *const SNI2 = "70000000-0000-4000-8000-000000000007";
static const char *const CA1 = "80000000-0000-4000-8000-000000000008";
static const char *const CA2 = "90000000-0000-4000-8000-000000000009";

#define PG_MISSING "no test Postgres (STRAIT_TEST_PG_PORT unset): run through scripts/test.sh"

/* A connection to the test server's own database `strait`, for CREATE/DROP DATABASE. */
static PGconn *
pg_admin(void)
{
    const char *port = getenv("STRAIT_TEST_PG_PORT");
    const char *host = getenv("STRAIT_TEST_PG_HOST");
    const char *user = getenv("STRAIT_TEST_PG_USER");
    const char *const keys[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *vals[] = {host != NULL ? host : "127.0.0.1",
                          port,
                          user != NULL ? user : "strait",
                          "strait",
                          "10",
                          NULL};
    PGconn *c;

    if (port == NULL || port[0] == '\0') {
        fail_msg("%s", PG_MISSING);
    }
    c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("test Postgres at %s:%s: %s", vals[0], port, PQerrorMessage(c));
    }
    return c;
}

static void
pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
}

/* Creates an empty database on the test server (ICU en-US collation, as a server set up
 * with a real locale would have: ordering must not depend on it) with the conf that
 * points at it. */
static void
pg_db_new(struct db *d)
{
    static int n;
    char sql[256];
    PGconn *c = pg_admin();
    const char *host = getenv("STRAIT_TEST_PG_HOST");
    const char *user = getenv("STRAIT_TEST_PG_USER");

    snprintf(d->name, sizeof(d->name), "strait_u%ld_%d", (long)getpid(), n++);
    snprintf(sql, sizeof(sql),
             "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' "
             "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'",
             d->name);
    pg_exec(c, sql);
    PQfinish(c);
    memset(&d->conf, 0, sizeof(d->conf));
    d->conf.database = strdup("postgres");
    d->conf.pg_host = strdup(host != NULL ? host : "127.0.0.1");
    d->conf.pg_port = (int)strtol(getenv("STRAIT_TEST_PG_PORT"), NULL, 10);
    d->conf.pg_user = strdup(user != NULL ? user : "strait");
    d->conf.pg_database = strdup(d->name);
    d->conf.pg_pool_size = 4;
    d->conf.pg_timeout = 5000;
}

static void
pg_db_drop(struct db *d)
{
    char sql[128];
    PGconn *c = pg_admin();

    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->name);
    pg_exec(c, sql);
    PQfinish(c);
    free(d->conf.database);
    free(d->conf.pg_host);
    free(d->conf.pg_user);
    free(d->conf.pg_database);
    memset(&d->conf, 0, sizeof(d->conf));
}

/* Makes a fresh, empty store of backend be (migrated: Postgres through `migrations
 * bootstrap`, SQLite at its first open). */
static void
db_create(enum backend be, struct db *d)
{
    memset(d, 0, sizeof(*d));
    d->be = be;
    if (be == BE_SQLITE) {
        snprintf(d->dir, sizeof(d->dir), "/tmp/test_cp_store.XXXXXX");
        assert_non_null(mkdtemp(d->dir));
        snprintf(d->path, sizeof(d->path), "%s/strait.db", d->dir);
        return;
    }
    struct st_err err = {0};
    FILE *devnull = fopen("/dev/null", "w");
    int rc;

    assert_non_null(devnull);
    pg_db_new(d);
    rc = cp_migrate_run(&d->conf, CP_MIGRATE_BOOTSTRAP, false, devnull, &err);
    fclose(devnull);
    if (rc != 0) {
        fail_msg("migrations bootstrap on %s exited %d: %s", d->name, rc, err.msg);
    }
}

/* Opens one more handle on the store (the first one creates a SQLite file). */
static void
db_open(struct db *d, struct cp_store **out)
{
    struct st_err err = {0};
    int rc;

    *out = NULL;
    rc = d->be == BE_SQLITE ? cp_store_sqlite_open(d->path, out, &err)
                            : cp_store_open(&d->conf, out, &err);
    if (rc != 0) {
        fail_msg("opening the %s store: %d %s", d->be == BE_SQLITE ? "sqlite" : "postgres", rc,
                 err.msg);
    }
    assert_non_null(*out);
}

static void
db_destroy(struct db *d)
{
    if (d->be == BE_PG) {
        pg_db_drop(d);
        return;
    }
    static const char *const files[] = {"strait.db", "strait.db-wal", "strait.db-shm"};
    char p[192];

    for (size_t i = 0; i < ST_ARRAY_SIZE(files); i++) {
        snprintf(p, sizeof(p), "%s/%s", d->dir, files[i]);
        unlink(p);
    }
    rmdir(d->dir);
}

static int
setup_be(void **state, enum backend be)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    *state = f;
    db_create(be, &f->db);
    db_open(&f->db, &f->s);
    return 0;
}

static int
setup_sqlite(void **state)
{
    return setup_be(state, BE_SQLITE);
}

static int
setup_pg(void **state)
{
    return setup_be(state, BE_PG);
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    if (f == NULL) {
        return 0;
    }
    cp_store_close(f->s);
    db_destroy(&f->db);
    free(f);
    return 0;
}

static json_t *
service(const char *id, const char *name)
{
    json_t *o = json_pack("{s:s,s:i,s:i,s:s,s:s,s:i}", "id", id, "created_at", 1000, "updated_at",
                          1000, "protocol", "tcp", "host", "127.0.0.1", "port", 80);

    json_object_set_new(o, "name", name != NULL ? json_string(name) : json_null());
    return o;
}

static json_t *
route(const char *id, const char *service_id)
{
    return json_pack("{s:s,s:i,s:i,s:[s],s:[{s:i}],s:{s:s}}", "id", id, "created_at", 1000,
                     "updated_at", 1000, "protocols", "tcp", "destinations", "port", 5555,
                     "service", "id", service_id);
}

/* Inserts in its own transaction; returns the insert's code (committed only on 0). */
static int
insert1(struct cp_store *s, enum st_entity_kind k, json_t *o, struct st_err *err)
{
    int rc;

    assert_int_equal(cp_store_begin(s, true), 0);
    rc = cp_store_insert(s, k, o, err);
    if (rc == 0) {
        assert_int_equal(cp_store_commit(s), 0);
    } else {
        cp_store_rollback(s);
    }
    json_decref(o);
    return rc;
}

static uint64_t
version(struct cp_store *s)
{
    uint64_t v = 99;

    assert_int_equal(cp_store_version(s, &v), 0);
    return v;
}

static void
test_crud(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    json_t *o = NULL;

    assert_int_equal(version(f->s), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "echo"), &err), 0);
    assert_int_equal(version(f->s), 1);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, SVC1, &o), 0);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "echo");
    json_decref(o);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, "echo", &o), 0);
    assert_string_equal(json_string_value(json_object_get(o, "id")), SVC1);
    json_object_set_new(o, "name", json_string("echo2"));
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_update(f->s, ST_ENT_SERVICE, o, &err), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    json_decref(o);
    assert_int_equal(version(f->s), 2);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, "echo", &o), -ST_ENOTFOUND);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, "echo2", &o), 0);
    json_decref(o);
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_remove(f->s, ST_ENT_SERVICE, SVC1, &err), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(version(f->s), 3);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, SVC1, &o), -ST_ENOTFOUND);
    /* deleting what is absent succeeds and, writing nothing, bumps nothing */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_remove(f->s, ST_ENT_SERVICE, SVC1, &err), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(version(f->s), 3);
    /* updating what is absent */
    o = service(SVC2, NULL);
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_update(f->s, ST_ENT_SERVICE, o, &err), -ST_ENOTFOUND);
    cp_store_rollback(f->s);
    json_decref(o);
}

static void
test_unique_and_pkey(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    json_t *o = NULL;

    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "dup"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC2, "dup"), &err), -ST_EUNIQUE);
    assert_string_equal(err.field, "name");
    assert_string_equal(err.msg, "dup");
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "other"), &err), -ST_EPKEY);
    assert_string_equal(err.field, "id");
    assert_string_equal(err.msg, SVC1);
    /* unnamed entities never collide */
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC2, NULL), &err), 0);
    /* renaming onto a taken name */
    o = service(SVC2, "dup");
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_update(f->s, ST_ENT_SERVICE, o, &err), -ST_EUNIQUE);
    cp_store_rollback(f->s);
    json_decref(o);
    /* the failures changed nothing */
    assert_int_equal(version(f->s), 2);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, "other", &o), -ST_ENOTFOUND);
}

static void
test_foreign_keys(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};

    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, route(RT1, SVC1), &err), -ST_EFOREIGN);
    assert_string_equal(err.field, "service");
    assert_string_equal(err.msg, SVC1);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "s"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, route(RT1, SVC1), &err), 0);
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_remove(f->s, ST_ENT_SERVICE, SVC1, &err), -ST_EREFERENCED);
    cp_store_rollback(f->s);
    assert_int_equal(version(f->s), 2);
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_remove(f->s, ST_ENT_ROUTE, RT1, &err), 0);
    assert_int_equal(cp_store_remove(f->s, ST_ENT_SERVICE, SVC1, &err), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    /* two writes, one commit: one bump */
    assert_int_equal(version(f->s), 3);
}

static void
test_rollback_changes_nothing(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    json_t *o = service(SVC1, "a");
    json_t *o2 = service(SVC2, "b");

    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_insert(f->s, ST_ENT_SERVICE, o, &err), 0);
    assert_int_equal(cp_store_insert(f->s, ST_ENT_SERVICE, o2, &err), 0);
    cp_store_rollback(f->s);
    json_decref(o);
    json_decref(o2);
    assert_int_equal(version(f->s), 0);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, "a", &o), -ST_ENOTFOUND);
}

static void
make_ids(char ids[][37], int n)
{
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], 37, "%08x-0000-4000-8000-000000000000", (unsigned)(n - i) * 0x1000u);
    }
}

static void
test_paging(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    struct cp_page_opts o = {.size = 2};
    char ids[5][37];
    char *next = NULL;
    char *prev = NULL;
    json_t *data = NULL;
    size_t seen = 0;

    make_ids(ids, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(ids[i], NULL), &err), 0);
    }
    do {
        o.offset = prev;
        assert_int_equal(cp_store_page(f->s, ST_ENT_SERVICE, &o, &data, &next, &err), 0);
        assert_true(json_array_size(data) >= 1 && json_array_size(data) <= 2);
        for (size_t i = 0; i < json_array_size(data); i++) {
            const char *id = json_string_value(json_object_get(json_array_get(data, i), "id"));

            /* ordered by id: ids[4] is the smallest */
            assert_string_equal(id, ids[4 - seen]);
            seen++;
        }
        json_decref(data);
        free(prev);
        prev = next;
    } while (next != NULL);
    assert_int_equal(seen, 5);
    o.offset = "not-an-offset";
    assert_int_equal(cp_store_page(f->s, ST_ENT_SERVICE, &o, &data, &next, &err), -ST_EPARSE);
    assert_non_null(strstr(err.msg, "'not-an-offset' is not a valid offset"));
    /* an exact last page has no next */
    o.offset = NULL;
    o.size = 5;
    assert_int_equal(cp_store_page(f->s, ST_ENT_SERVICE, &o, &data, &next, &err), 0);
    assert_int_equal(json_array_size(data), 5);
    assert_null(next);
    json_decref(data);
}

static void
test_page_filters(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    struct cp_page_opts o = {.size = 100};
    json_t *s1 = service(SVC1, "s1");
    json_t *data = NULL;
    char *next = NULL;

    json_object_set_new(s1, "tags", json_pack("[s,s]", "a", "b"));
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, s1, &err), 0);
    s1 = service(SVC2, "s2");
    json_object_set_new(s1, "tags", json_pack("[s]", "a"));
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, s1, &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, route(RT1, SVC1), &err), 0);

    o.tags = json_pack("[s,s]", "a", "b");
    assert_int_equal(cp_store_page(f->s, ST_ENT_SERVICE, &o, &data, &next, &err), 0);
    assert_int_equal(json_array_size(data), 1); /* AND */
    json_decref(data);
    o.tags_any = true;
    assert_int_equal(cp_store_page(f->s, ST_ENT_SERVICE, &o, &data, &next, &err), 0);
    assert_int_equal(json_array_size(data), 2); /* OR */
    json_decref(data);
    json_decref((json_t *)o.tags);
    o.tags = NULL;

    o.parent_id = SVC2;
    assert_int_equal(cp_store_page(f->s, ST_ENT_ROUTE, &o, &data, &next, &err), 0);
    assert_int_equal(json_array_size(data), 0);
    json_decref(data);
    o.parent_id = SVC1;
    assert_int_equal(cp_store_page(f->s, ST_ENT_ROUTE, &o, &data, &next, &err), 0);
    assert_int_equal(json_array_size(data), 1);
    json_decref(data);
}

static void
test_read_all_and_second_handle(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    struct cp_store *b = NULL;
    json_t *lists[ST_ENT__COUNT] = {NULL};
    json_t *svcs;
    json_t *rts;
    uint64_t v = 0;

    /* a second handle (the snapshot builder's) on the same store */
    db_open(&f->db, &b);
    assert_int_equal(cp_store_read_all(b, &v, lists), 0);
    assert_int_equal(v, 0);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        assert_int_equal(json_array_size(lists[k]), 0); /* every kind, empty */
        assert_true(json_is_array(lists[k]));
        json_decref(lists[k]);
    }

    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC2, "b"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "a"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, route(RT1, SVC1), &err), 0);

    /* an open write transaction on one handle is invisible to the other's read */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_remove(f->s, ST_ENT_ROUTE, RT1, &err), 0);
    assert_int_equal(cp_store_read_all(b, &v, lists), 0);
    cp_store_rollback(f->s);
    svcs = lists[ST_ENT_SERVICE];
    rts = lists[ST_ENT_ROUTE];
    assert_int_equal(v, 3);
    assert_int_equal(json_array_size(svcs), 2);
    assert_int_equal(json_array_size(rts), 1);
    /* ordered by id */
    assert_string_equal(json_string_value(json_object_get(json_array_get(svcs, 0), "id")), SVC1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(svcs, 0), "created_at")),
                     1000);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
    cp_store_close(b);
}

static void
test_reopen_keeps_data(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    json_t *o = NULL;

    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "kept"), &err), 0);
    cp_store_close(f->s);
    f->s = NULL;
    /* migrations already applied: opening again applies nothing and keeps the rows */
    db_open(&f->db, &f->s);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, "kept", &o), 0);
    json_decref(o);
    assert_int_equal(version(f->s), 1);
}

/* Validated like an admin write, so the store holds what the CP would store. */
static json_t *
valid(enum st_entity_kind k, json_t *o)
{
    json_t *fields = NULL;

    if (st_schema_validate(k, o, &fields) != 0) {
        char msg[512];

        st_schema_message(fields, msg, sizeof(msg));
        fail_msg("%s", msg);
    }
    assert_null(fields);
    return o;
}

static void
hash_of(struct cp_store *s, char hash[65])
{
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t v = 0;
    struct st_err err = {0};
    json_t *lists[ST_ENT__COUNT] = {NULL};

    assert_int_equal(cp_store_read_all(s, &v, lists), 0);
    assert_int_equal(st_snapshot_build(1, lists, &buf, &len, hash, &err), 0);
    free(buf);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
}

/* Issue 2: the same configuration gives one hash whatever the insertion order, and a
 * store round trip gives the hash of the entities as written. */
static void
test_snapshot_hash_through_store(void **state)
{
    struct fx *f = *state;
    struct cp_store *s2 = NULL;
    struct db d2;
    struct st_err err = {0};
    char h1[65], h2[65], direct[65];
    json_t *services = json_array(), *routes = json_array();
    json_t *lists[ST_ENT__COUNT] = {NULL};
    uint8_t *buf = NULL;
    size_t len = 0;

    db_create(f->db.be, &d2);
    db_open(&d2, &s2);

    json_array_append_new(services, valid(ST_ENT_SERVICE, service(SVC1, "one")));
    json_array_append_new(services, valid(ST_ENT_SERVICE, service(SVC2, "two")));
    json_array_append_new(routes, valid(ST_ENT_ROUTE, route(RT1, SVC2)));

    /* store 1: in order; store 2: reversed, with a write and delete in between */
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(
            insert1(f->s, ST_ENT_SERVICE, json_deep_copy(json_array_get(services, i)), &err), 0);
    }
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, json_deep_copy(json_array_get(routes, 0)), &err),
                     0);
    assert_int_equal(insert1(s2, ST_ENT_SERVICE, json_deep_copy(json_array_get(services, 1)), &err),
                     0);
    assert_int_equal(insert1(s2, ST_ENT_ROUTE, json_deep_copy(json_array_get(routes, 0)), &err), 0);
    assert_int_equal(
        insert1(s2, ST_ENT_SERVICE, valid(ST_ENT_SERVICE, service(SVC1, "temporary")), &err), 0);
    assert_int_equal(cp_store_begin(s2, true), 0);
    assert_int_equal(cp_store_remove(s2, ST_ENT_SERVICE, SVC1, &err), 0);
    assert_int_equal(cp_store_commit(s2), 0);
    assert_int_equal(insert1(s2, ST_ENT_SERVICE, json_deep_copy(json_array_get(services, 0)), &err),
                     0);

    hash_of(f->s, h1);
    hash_of(s2, h2);
    assert_string_equal(h1, h2);
    lists[ST_ENT_SERVICE] = services;
    lists[ST_ENT_ROUTE] = routes;
    assert_int_equal(st_snapshot_build(1, lists, &buf, &len, direct, &err), 0);
    assert_string_equal(h1, direct);

    /* and a real change moves it */
    assert_int_equal(cp_store_begin(s2, true), 0);
    assert_int_equal(cp_store_remove(s2, ST_ENT_ROUTE, RT1, &err), 0);
    assert_int_equal(cp_store_commit(s2), 0);
    hash_of(s2, h2);
    assert_string_not_equal(h1, h2);

    free(buf);
    json_decref(services);
    json_decref(routes);
    cp_store_close(s2);
    db_destroy(&d2);
}

static json_t *
certificate(const char *id)
{
    return json_pack("{s:s,s:i,s:i,s:s,s:s,s:n,s:n,s:n}", "id", id, "created_at", 1000,
                     "updated_at", 1000, "cert", LEAF_CERT, "key", LEAF_KEY, "cert_alt", "key_alt",
                     "tags");
}

static json_t *
sni(const char *id, const char *name, const char *cert_id)
{
    return json_pack("{s:s,s:i,s:i,s:s,s:{s:s},s:n}", "id", id, "created_at", 1000, "updated_at",
                     1000, "name", name, "certificate", "id", cert_id, "tags");
}

/* cert_digest as given: the store does not compute it (st_schema does). */
static json_t *
ca_certificate(const char *id, const char *digest)
{
    return json_pack("{s:s,s:i,s:i,s:s,s:s?,s:n}", "id", id, "created_at", 1000, "updated_at", 1000,
                     "cert", CA_CERT, "cert_digest", digest, "tags");
}

static int
remove1(struct cp_store *s, enum st_entity_kind k, const char *id, struct st_err *err)
{
    int rc;

    assert_int_equal(cp_store_begin(s, true), 0);
    rc = cp_store_remove(s, k, id, err);
    if (rc == 0) {
        assert_int_equal(cp_store_commit(s), 0);
    } else {
        cp_store_rollback(s);
    }
    return rc;
}

static size_t
page_count(struct cp_store *s, enum st_entity_kind k, const char *parent_id)
{
    struct cp_page_opts o = {.size = 100, .parent_id = parent_id};
    struct st_err err = {0};
    json_t *data = NULL;
    char *next = NULL;
    size_t n;

    assert_int_equal(cp_store_page(s, k, &o, &data, &next, &err), 0);
    n = json_array_size(data);
    json_decref(data);
    free(next);
    return n;
}

/* Issue 3: snis belong to a certificate (foreign key), have unique names, are found by
 * name, and go when their certificate goes; certificates and CA certificates are found
 * by id only; a CA certificate's digest is unique. */
static void
test_certificates_and_snis(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    json_t *o = NULL;

    assert_int_equal(insert1(f->s, ST_ENT_CERTIFICATE, certificate(CRT1), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_CERTIFICATE, certificate(CRT2), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SNI, sni(SNI1, "a.test", CRT1), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SNI, sni(SNI2, "*.b.test", CRT1), &err), 0);

    /* by name (the endpoint key) or id */
    assert_int_equal(cp_store_get(f->s, ST_ENT_SNI, "*.b.test", &o), 0);
    assert_string_equal(json_string_value(json_object_get(o, "id")), SNI2);
    json_decref(o);
    assert_int_equal(cp_store_get(f->s, ST_ENT_CERTIFICATE, CRT1, &o), 0);
    assert_string_equal(json_string_value(json_object_get(o, "cert")), LEAF_CERT);
    json_decref(o);
    assert_int_equal(cp_store_get(f->s, ST_ENT_CERTIFICATE, "a.test", &o), -ST_ENOTFOUND);

    /* a name is unique across certificates */
    memset(&err, 0, sizeof(err));
    assert_int_equal(insert1(f->s, ST_ENT_SNI, sni(CA1, "a.test", CRT2), &err), -ST_EUNIQUE);
    assert_string_equal(err.field, "name");
    assert_string_equal(err.msg, "a.test");
    /* the certificate must exist */
    memset(&err, 0, sizeof(err));
    assert_int_equal(insert1(f->s, ST_ENT_SNI, sni(CA1, "c.test", CA2), &err), -ST_EFOREIGN);
    assert_string_equal(err.field, "certificate");
    assert_string_equal(err.msg, CA2);

    /* nested listing: a certificate's snis */
    assert_int_equal(page_count(f->s, ST_ENT_SNI, CRT1), 2);
    assert_int_equal(page_count(f->s, ST_ENT_SNI, CRT2), 0);
    assert_int_equal(page_count(f->s, ST_ENT_SNI, NULL), 2);

    /* moving a sni to the other certificate */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    o = sni(SNI1, "a.test", CRT2);
    assert_int_equal(cp_store_update(f->s, ST_ENT_SNI, o, &err), 0);
    json_decref(o);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(page_count(f->s, ST_ENT_SNI, CRT2), 1);

    /* deleting a certificate deletes its snis, and only those */
    assert_int_equal(remove1(f->s, ST_ENT_CERTIFICATE, CRT1, &err), 0);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SNI, SNI2, &o), -ST_ENOTFOUND);
    assert_int_equal(page_count(f->s, ST_ENT_SNI, NULL), 1);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SNI, "a.test", &o), 0);
    json_decref(o);

    /* CA certificates: by id, unique digest */
    assert_int_equal(insert1(f->s, ST_ENT_CA_CERTIFICATE, ca_certificate(CA1, "d1"), &err), 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(insert1(f->s, ST_ENT_CA_CERTIFICATE, ca_certificate(CA2, "d1"), &err),
                     -ST_EUNIQUE);
    assert_string_equal(err.field, "cert_digest");
    assert_string_equal(err.msg, "d1");
    assert_int_equal(insert1(f->s, ST_ENT_CA_CERTIFICATE, ca_certificate(CA2, "d2"), &err), 0);
    /* updating one to its own digest is no conflict */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    o = ca_certificate(CA2, "d2");
    assert_int_equal(cp_store_update(f->s, ST_ENT_CA_CERTIFICATE, o, &err), 0);
    json_decref(o);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(cp_store_get(f->s, ST_ENT_CA_CERTIFICATE, "d1", &o), -ST_ENOTFOUND);
    assert_int_equal(page_count(f->s, ST_ENT_CA_CERTIFICATE, NULL), 2);
}

/* Issue 3: a service's client_certificate and ca_certificates must exist, and what a
 * service references cannot be deleted (Kong: foreign key violation for the
 * certificate, REFERENCED_BY_OTHERS for the CA certificate). */
static void
test_service_tls_references(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    json_t *svc;

    assert_int_equal(insert1(f->s, ST_ENT_CERTIFICATE, certificate(CRT1), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_CA_CERTIFICATE, ca_certificate(CA1, "d1"), &err), 0);

    svc = service(SVC1, "tls");
    json_object_set_new(svc, "client_certificate", json_pack("{s:s}", "id", CRT2));
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, svc, &err), -ST_EFOREIGN);
    assert_string_equal(err.field, "client_certificate");
    assert_string_equal(err.msg, CRT2);

    memset(&err, 0, sizeof(err));
    svc = service(SVC1, "tls");
    json_object_set_new(svc, "ca_certificates", json_pack("[s,s]", CA1, CA2));
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, svc, &err), -ST_EFOREIGN);
    assert_string_equal(err.field, "ca_certificates");
    assert_string_equal(err.msg, CA2);

    svc = service(SVC1, "tls");
    json_object_set_new(svc, "client_certificate", json_pack("{s:s}", "id", CRT1));
    json_object_set_new(svc, "ca_certificates", json_pack("[s]", CA1));
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, svc, &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC2, "plain"), &err), 0);

    memset(&err, 0, sizeof(err));
    assert_int_equal(remove1(f->s, ST_ENT_CA_CERTIFICATE, CA1, &err), -ST_EREFERENCED);
    assert_string_equal(err.field, "services");
    assert_string_equal(err.msg, "ca certificate 80000000-0000-4000-8000-000000000008 is still "
                                 "referenced by services (id = "
                                 "10000000-0000-4000-8000-000000000001)");
    memset(&err, 0, sizeof(err));
    assert_int_equal(remove1(f->s, ST_ENT_CERTIFICATE, CRT1, &err), -ST_EREFERENCED);
    assert_string_equal(err.field, "services");
    assert_int_equal(version(f->s), 4);

    /* once the service lets go, both can go */
    assert_int_equal(remove1(f->s, ST_ENT_SERVICE, SVC1, &err), 0);
    assert_int_equal(remove1(f->s, ST_ENT_CA_CERTIFICATE, CA1, &err), 0);
    assert_int_equal(remove1(f->s, ST_ENT_CERTIFICATE, CRT1, &err), 0);
    assert_int_equal(version(f->s), 7);
}

/* Issue 3: the snapshot the CP builds carries every kind the store holds. */
static void
test_snapshot_carries_certificates(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    struct cp_store *b = NULL;
    struct cp_snapshot *sn = NULL;
    struct cp_snapshot_blob *blob;
    struct st_snapshot *snap = NULL;

    assert_int_equal(
        insert1(f->s, ST_ENT_CERTIFICATE, valid(ST_ENT_CERTIFICATE, certificate(CRT1)), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SNI, valid(ST_ENT_SNI, sni(SNI1, "a.test", CRT1)), &err),
                     0);
    assert_int_equal(insert1(f->s, ST_ENT_CA_CERTIFICATE,
                             valid(ST_ENT_CA_CERTIFICATE, ca_certificate(CA1, NULL)), &err),
                     0);
    db_open(&f->db, &b);
    assert_int_equal(cp_snapshot_new(b, &sn, &err), 0);
    blob = cp_snapshot_acquire(sn);
    assert_int_equal(blob->version, 3);
    assert_int_equal(st_snapshot_parse(blob->bytes, blob->len, NULL, &snap, &err), 0);
    assert_int_equal(snap->n_certificates, 1);
    assert_int_equal(snap->n_snis, 1);
    assert_string_equal(snap->snis[0].name, "a.test");
    assert_ptr_equal(snap->snis[0].certificate, &snap->certificates[0]);
    assert_int_equal(snap->n_ca_certificates, 1);
    assert_int_equal(strlen(snap->ca_certificates[0].cert_digest), 64);
    st_snapshot_free(snap);
    cp_snapshot_blob_unref(blob);
    cp_snapshot_free(sn);
}

static uint64_t
count(struct cp_store *s, enum st_entity_kind k)
{
    uint64_t n = 99;

    assert_int_equal(cp_store_count(s, k, &n), 0);
    return n;
}

/* One of each kind (service, route, certificate, sni, CA certificate, upstream, target). */
static void
insert_one_of_each(struct fx *f)
{
    struct st_err err = {0};

    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "a"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, route(RT1, SVC1), &err), 0);
    assert_int_equal(
        insert1(f->s, ST_ENT_CERTIFICATE, valid(ST_ENT_CERTIFICATE, certificate(CRT1)), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SNI, valid(ST_ENT_SNI, sni(SNI1, "a.test", CRT1)), &err),
                     0);
    assert_int_equal(insert1(f->s, ST_ENT_CA_CERTIFICATE,
                             valid(ST_ENT_CA_CERTIFICATE, ca_certificate(CA1, NULL)), &err),
                     0);
    assert_int_equal(
        insert1(f->s, ST_ENT_UPSTREAM,
                valid(ST_ENT_UPSTREAM, json_pack("{s:s,s:i,s:i,s:s}", "id", UP1, "created_at", 1000,
                                                 "updated_at", 1000, "name", "pool.test")),
                &err),
        0);
    assert_int_equal(
        insert1(f->s, ST_ENT_TARGET,
                valid(ST_ENT_TARGET,
                      json_pack("{s:s,s:i,s:i,s:{s:s},s:s}", "id", TG1, "created_at", 1000,
                                "updated_at", 1000, "upstream", "id", UP1, "target", "127.0.0.1")),
                &err),
        0);
    /* issue 18 */
    assert_int_equal(
        insert1(f->s, ST_ENT_PLUGIN,
                valid(ST_ENT_PLUGIN, json_pack("{s:s,s:i,s:i,s:s,s:{s:[s]},s:{s:s}}", "id",
                                               "e1000000-0000-4000-8000-000000000001", "created_at",
                                               1000, "updated_at", 1000, "name", "ip-restriction",
                                               "config", "deny", "10.0.0.0/8", "route", "id", RT1)),
                &err),
        0);
}

/* Issue 5: count per kind (GET /status); clear deletes everything inside the caller's
 * transaction, so a rollback keeps it all and a commit bumps the version once. */
static void
test_clear_and_count(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    uint64_t v;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        assert_int_equal(count(f->s, (enum st_entity_kind)k), 0);
    }
    /* clearing an empty store writes nothing: no version bump */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_clear(f->s), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(version(f->s), 0);

    insert_one_of_each(f);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC2, "b"), &err), 0);
    assert_int_equal(count(f->s, ST_ENT_SERVICE), 2);
    for (int k = 1; k < ST_ENT__COUNT; k++) {
        assert_int_equal(count(f->s, (enum st_entity_kind)k), 1);
    }
    v = version(f->s);

    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_clear(f->s), 0);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        assert_int_equal(count(f->s, (enum st_entity_kind)k), 0);
    }
    cp_store_rollback(f->s);
    assert_int_equal(count(f->s, ST_ENT_SERVICE), 2);
    assert_int_equal(count(f->s, ST_ENT_ROUTE), 1);
    assert_int_equal(count(f->s, ST_ENT_SNI), 1);
    assert_int_equal(version(f->s), v);

    /* clear then insert in one transaction: one bump, only the new entity left */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_clear(f->s), 0);
    json_t *o = service(SVC2, "b");
    assert_int_equal(cp_store_insert(f->s, ST_ENT_SERVICE, o, &err), 0);
    json_decref(o);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(version(f->s), v + 1);
    assert_int_equal(count(f->s, ST_ENT_SERVICE), 1);
    for (int k = 1; k < ST_ENT__COUNT; k++) {
        assert_int_equal(count(f->s, (enum st_entity_kind)k), 0);
    }
    o = NULL;
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, SVC2, &o), 0);
    json_decref(o);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, SVC1, &o), -ST_ENOTFOUND);
}

static json_t *
tagged(json_t *o, const char *tags_json)
{
    json_error_t jerr;

    json_object_set_new(o, "tags", json_loads(tags_json, 0, &jerr));
    return o;
}

/* Pages GET /tags (tag NULL) with size, and returns every pair as "tag|entity|id"
 * strings in order, checking the page sizes on the way. */
static json_t *
tags_all(struct cp_store *s, const char *tag, size_t size, size_t *pages)
{
    json_t *all = json_array();
    char *offset = NULL;
    struct st_err err = {0};

    *pages = 0;
    do {
        json_t *data = NULL;
        char *next = NULL;
        size_t i;
        json_t *v;

        assert_int_equal(cp_store_tags_page(s, tag, size, offset, &data, &next, &err), 0);
        (*pages)++;
        assert_true(json_array_size(data) <= size);
        if (next != NULL) {
            assert_int_equal(json_array_size(data), size);
        }
        json_array_foreach(data, i, v)
        {
            char buf[256];

            assert_int_equal(json_object_size(v), 3);
            snprintf(buf, sizeof(buf), "%s|%s|%s", json_string_value(json_object_get(v, "tag")),
                     json_string_value(json_object_get(v, "entity_name")),
                     json_string_value(json_object_get(v, "entity_id")));
            json_array_append_new(all, json_string(buf));
        }
        json_decref(data);
        free(offset);
        offset = next;
    } while (offset != NULL);
    return all;
}

/* Issue 5: GET /tags pages every (tag, entity) pair ordered by tag, entity_name,
 * entity_id, with an opaque offset, optionally for one tag; a bad offset is refused. */
static void
test_tags_page(void **state)
{
    static const char *const want[] = {
        "a|ca_certificates|80000000-0000-4000-8000-000000000008",
        "a|routes|30000000-0000-4000-8000-000000000003",
        "a|services|10000000-0000-4000-8000-000000000001",
        "a|services|20000000-0000-4000-8000-000000000002",
        "b|services|20000000-0000-4000-8000-000000000002",
        "b|snis|60000000-0000-4000-8000-000000000006",
        "c|certificates|40000000-0000-4000-8000-000000000004",
        "\xf0\x9f\xa6\x8d|services|10000000-0000-4000-8000-000000000001",
    };
    struct fx *f = *state;
    struct st_err err = {0};
    json_t *all;
    json_t *data = NULL;
    char *next = NULL;
    size_t pages;

    assert_int_equal(
        insert1(f->s, ST_ENT_SERVICE, tagged(service(SVC2, "b"), "[\"b\", \"a\"]"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE,
                             tagged(service(SVC1, "a"), "[\"\\ud83e\\udd8d\", \"a\"]"), &err),
                     0);
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, tagged(route(RT1, SVC1), "[\"a\"]"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_CERTIFICATE,
                             tagged(valid(ST_ENT_CERTIFICATE, certificate(CRT1)), "[\"c\"]"), &err),
                     0);
    assert_int_equal(
        insert1(f->s, ST_ENT_CERTIFICATE, valid(ST_ENT_CERTIFICATE, certificate(CRT2)), &err),
        0); /* no tags: no pairs */
    assert_int_equal(insert1(f->s, ST_ENT_SNI,
                             tagged(valid(ST_ENT_SNI, sni(SNI1, "a.test", CRT1)), "[\"b\"]"), &err),
                     0);
    assert_int_equal(
        insert1(f->s, ST_ENT_CA_CERTIFICATE,
                tagged(valid(ST_ENT_CA_CERTIFICATE, ca_certificate(CA1, NULL)), "[\"a\"]"), &err),
        0);

    for (size_t size = 1; size <= 9; size++) {
        all = tags_all(f->s, NULL, size, &pages);
        assert_int_equal(json_array_size(all), ST_ARRAY_SIZE(want));
        for (size_t i = 0; i < ST_ARRAY_SIZE(want); i++) {
            assert_string_equal(json_string_value(json_array_get(all, i)), want[i]);
        }
        assert_int_equal(pages, (ST_ARRAY_SIZE(want) + size - 1) / size);
        json_decref(all);
    }

    all = tags_all(f->s, "a", 3, &pages);
    assert_int_equal(json_array_size(all), 4);
    assert_int_equal(pages, 2);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(json_string_value(json_array_get(all, i)), want[i]);
    }
    json_decref(all);
    all = tags_all(f->s, "\xf0\x9f\xa6\x8d", 100, &pages);
    assert_int_equal(json_array_size(all), 1);
    assert_string_equal(json_string_value(json_array_get(all, 0)), want[7]);
    json_decref(all);
    all = tags_all(f->s, "nope", 100, &pages);
    assert_int_equal(json_array_size(all), 0);
    assert_int_equal(pages, 1);
    json_decref(all);

    /* an offset from /tags also works on /tags/{tag}: it is a position in the order */
    assert_int_equal(cp_store_tags_page(f->s, NULL, 5, NULL, &data, &next, &err), 0);
    json_decref(data);
    assert_non_null(next);
    char *offset = next;
    assert_int_equal(cp_store_tags_page(f->s, "b", 5, offset, &data, &next, &err), 0);
    free(offset);
    assert_int_equal(json_array_size(data), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "entity_name")),
                        "snis");
    assert_null(next);
    json_decref(data);

    /* bad offsets: not hex, odd length, hex of something else */
    static const char *const bad[] = {"zz",   "abc",        "",
                                      "6869", "5b2261225d", "5B2261222C2262222C2263225D"};
    for (size_t i = 0; i < ST_ARRAY_SIZE(bad); i++) {
        memset(&err, 0, sizeof(err));
        data = NULL;
        assert_int_equal(cp_store_tags_page(f->s, NULL, 5, bad[i], &data, &next, &err), -ST_EPARSE);
        assert_null(data);
        assert_null(next);
        assert_non_null(strstr(err.msg, "is not a valid offset: bad offset"));
    }

    /* a removed entity's pairs go with it */
    assert_int_equal(remove1(f->s, ST_ENT_CERTIFICATE, CRT1, &err), 0);
    all = tags_all(f->s, NULL, 100, &pages);
    assert_int_equal(json_array_size(all), ST_ARRAY_SIZE(want) - 2); /* c, and the sni's b */
    json_decref(all);
}

static void
test_open_fails_cleanly(void **state)
{
    struct cp_store *s = NULL;
    struct st_err err = {0};

    (void)state;
    assert_true(cp_store_sqlite_open("/nonexistent-dir/x/strait.db", &s, &err) < 0);
    assert_null(s);
    assert_non_null(strstr(err.msg, "sqlite"));
}

/* Issue 14: sqlite_synchronous reaches the connection: `normal` is PRAGMA synchronous 1,
 * `full` is 2, read back from the handle cp_store_open() made from the configuration. */
static void
test_sqlite_synchronous(void **state)
{
    struct db d;
    char database[] = "sqlite";

    (void)state;
    db_create(BE_SQLITE, &d);
    for (int full = 0; full <= 1; full++) {
        struct st_conf conf;
        struct st_err err = {0};
        struct cp_store *s = NULL;

        memset(&conf, 0, sizeof(conf));
        conf.database = database;
        conf.sqlite_path = d.path;
        conf.sqlite_synchronous_full = full == 1;
        assert_int_equal(cp_store_open(&conf, &s, &err), 0);
        assert_int_equal(cp_store_sqlite_synchronous(s), full ? 2 : 1);
        cp_store_close(s);
    }
    db_destroy(&d);
}

/* Issue 6: tag filters (all of the tags, or any) hold across pages: every page but the
 * last is full, the offset carries on with the same filter, and the pages together are
 * exactly the matching entities in id order. */
static void
test_tag_filters_across_pages(void **state)
{
    static const char *const tag_sets[4] = {"[\"a\", \"b\"]", "[\"a\"]", "[\"c\", \"b\"]", NULL};
    static const struct {
        const char *tags;
        bool any;
        unsigned mask; /* which i % 4 match */
    } cases[] = {
        {"[\"a\", \"b\"]", false, 1u << 0},
        {"[\"a\", \"b\"]", true, (1u << 0) | (1u << 1) | (1u << 2)},
        {"[\"b\"]", false, (1u << 0) | (1u << 2)},
        {"[\"a\", \"c\"]", true, (1u << 0) | (1u << 1) | (1u << 2)},
        {"[\"c\"]", true, 1u << 2},
        {"[\"z\"]", true, 0},
        {"[\"a\", \"z\"]", false, 0},
        {"[\"b\", \"a\", \"b\"]", false, 1u << 0},
    };
    enum { N = 13 };
    struct fx *f = *state;
    struct st_err err = {0};
    char ids[N][37];

    /* ids[0] is the largest: inserted out of id order */
    make_ids(ids, N);
    for (int i = 0; i < N; i++) {
        json_t *o = service(ids[i], NULL);

        if (tag_sets[i % 4] != NULL) {
            tagged(o, tag_sets[i % 4]);
        }
        assert_int_equal(insert1(f->s, ST_ENT_SERVICE, o, &err), 0);
    }
    for (size_t c = 0; c < ST_ARRAY_SIZE(cases); c++) {
        json_error_t jerr;
        json_t *tags = json_loads(cases[c].tags, 0, &jerr);
        size_t want = 0;

        for (int i = 0; i < N; i++) {
            want += (cases[c].mask >> (i % 4)) & 1u;
        }
        for (size_t size = 1; size <= 5; size++) {
            struct cp_page_opts o = {.size = size, .tags = tags, .tags_any = cases[c].any};
            char *prev = NULL;
            char *next = NULL;
            size_t seen = 0;
            size_t pages = 0;
            int i = N - 1; /* walks the ids in ascending order */

            do {
                json_t *data = NULL;
                size_t j;
                json_t *v;

                o.offset = prev;
                assert_int_equal(cp_store_page(f->s, ST_ENT_SERVICE, &o, &data, &next, &err), 0);
                pages++;
                if (next != NULL) {
                    assert_int_equal(json_array_size(data), size);
                }
                json_array_foreach(data, j, v)
                {
                    const char *id = json_string_value(json_object_get(v, "id"));

                    while (i >= 0 && ((cases[c].mask >> (i % 4)) & 1u) == 0) {
                        i--;
                    }
                    assert_true(i >= 0);
                    if (strcmp(id, ids[i]) != 0) {
                        fail_msg("tags %s %s, page size %zu: entity %zu is %s, want %s",
                                 cases[c].tags, cases[c].any ? "any" : "all", size, seen, id,
                                 ids[i]);
                    }
                    i--;
                    seen++;
                }
                json_decref(data);
                free(prev);
                prev = next;
                assert_true(pages <= N + 1);
            } while (next != NULL);
            if (seen != want) {
                fail_msg("tags %s %s, page size %zu: %zu entities, want %zu", cases[c].tags,
                         cases[c].any ? "any" : "all", size, seen, want);
            }
            /* an exact last page has no next: no empty page at the end */
            assert_int_equal(pages, want == 0 ? 1 : (want + size - 1) / size);
        }
        json_decref(tags);
    }
}

/* Issue 6: the config version moves by exactly one for every committed transaction that
 * wrote, whatever it wrote and however many writes it held; never for a rollback, a
 * read-only transaction, a write transaction that wrote nothing or failed; and every
 * handle sees the same committed version. */
static void
test_version_bumps(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    struct cp_store *b = NULL;
    struct cp_page_opts po = {.size = 10};
    json_t *o = NULL;
    json_t *data = NULL;
    char *next = NULL;
    uint64_t n = 0;

    assert_int_equal(version(f->s), 0);
    /* nothing written */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(cp_store_begin(f->s, false), 0);
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, "x", &o), -ST_ENOTFOUND);
    assert_int_equal(cp_store_page(f->s, ST_ENT_SERVICE, &po, &data, &next, &err), 0);
    json_decref(data);
    assert_int_equal(cp_store_count(f->s, ST_ENT_ROUTE, &n), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(cp_store_begin(f->s, false), 0);
    cp_store_rollback(f->s);
    assert_int_equal(version(f->s), 0);
    /* written, then rolled back */
    o = service(SVC1, "a");
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_insert(f->s, ST_ENT_SERVICE, o, &err), 0);
    cp_store_rollback(f->s);
    json_decref(o);
    assert_int_equal(version(f->s), 0);

    /* one per commit */
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "a"), &err), 0);
    assert_int_equal(version(f->s), 1);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC2, "b"), &err), 0);
    assert_int_equal(version(f->s), 2);
    /* an upsert's shape: a read that finds nothing, then writes; several writes, one bump */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_get(f->s, ST_ENT_ROUTE, RT1, &o), -ST_ENOTFOUND);
    o = route(RT1, SVC1);
    assert_int_equal(cp_store_insert(f->s, ST_ENT_ROUTE, o, &err), 0);
    json_decref(o);
    o = service(SVC2, "b2");
    assert_int_equal(cp_store_update(f->s, ST_ENT_SERVICE, o, &err), 0);
    json_decref(o);
    assert_int_equal(
        cp_store_remove(f->s, ST_ENT_SERVICE, "00000000-0000-4000-8000-00000000000f", &err), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(version(f->s), 3);
    /* a failed write, rolled back */
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(CA1, "a"), &err), -ST_EUNIQUE);
    assert_int_equal(version(f->s), 3);
    /* a delete that deleted nothing */
    assert_int_equal(remove1(f->s, ST_ENT_ROUTE, SVC1, &err), 0);
    assert_int_equal(version(f->s), 3);
    /* an update to the same content still wrote */
    assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, SVC1, &o), 0);
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_update(f->s, ST_ENT_SERVICE, o, &err), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    json_decref(o);
    assert_int_equal(version(f->s), 4);

    /* a second handle sees the same version, and its commits move the first's */
    db_open(&f->db, &b);
    assert_int_equal(version(b), 4);
    assert_int_equal(remove1(b, ST_ENT_ROUTE, RT1, &err), 0);
    assert_int_equal(version(b), 5);
    assert_int_equal(version(f->s), 5);
    assert_int_equal(cp_store_get(f->s, ST_ENT_ROUTE, RT1, &o), -ST_ENOTFOUND);
    cp_store_close(b);
}

/* Two handles, each used by its own thread, as two CPs (or the admin API and the
 * snapshot builder) use one database. Threads cannot use cmocka's asserts: each records
 * its first failure for the main thread to check. */
struct writer {
    struct cp_store *s;
    pthread_barrier_t *start;
    int t;     /* 0 or 1 */
    int n;     /* services to insert, one transaction each */
    int round; /* the unique-name race: which round */
    int rc;    /* the first failure (or, in the race, the insert's code) */
    int at;    /* where it failed */
    char what[32];
    struct st_err err;
};

static void
writer_fail(struct writer *w, int rc, int at, const char *what)
{
    if (w->rc == 0) {
        w->rc = rc != 0 ? rc : -1;
        w->at = at;
        snprintf(w->what, sizeof(w->what), "%s", what);
    }
}

static void *
writer_run(void *arg)
{
    struct writer *w = arg;

    pthread_barrier_wait(w->start);
    for (int i = 0; i < w->n && w->rc == 0; i++) {
        char id[37], name[32];
        json_t *o;
        int rc;

        snprintf(id, sizeof(id), "%08x-0000-4000-8000-%012x", (unsigned)w->t + 1u, (unsigned)i);
        snprintf(name, sizeof(name), "w%d-%d", w->t, i);
        o = service(id, name);
        rc = cp_store_begin(w->s, true);
        if (rc != 0) {
            writer_fail(w, rc, i, "begin");
        } else if ((rc = cp_store_insert(w->s, ST_ENT_SERVICE, o, &w->err)) != 0) {
            writer_fail(w, rc, i, "insert");
            cp_store_rollback(w->s);
        } else if ((rc = cp_store_commit(w->s)) != 0) {
            writer_fail(w, rc, i, "commit");
        }
        json_decref(o);
    }
    return NULL;
}

/* Issue 6: two writers at once, each committing N inserts in their own transactions: all
 * of them land, and the version moves by exactly 2N (no bump lost, none doubled). */
static void
test_concurrent_writers(void **state)
{
    enum { N = 40 };
    struct fx *f = *state;
    struct writer w[2];
    pthread_t th[2];
    pthread_barrier_t start;
    json_t *lists[ST_ENT__COUNT] = {NULL};
    uint64_t v0, v = 0;

    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "before"), &(struct st_err){0}),
                     0);
    v0 = version(f->s);
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    for (int t = 0; t < 2; t++) {
        memset(&w[t], 0, sizeof(w[t]));
        db_open(&f->db, &w[t].s);
        w[t].start = &start;
        w[t].t = t;
        w[t].n = N;
        assert_int_equal(pthread_create(&th[t], NULL, writer_run, &w[t]), 0);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
    }
    pthread_barrier_destroy(&start);
    for (int t = 0; t < 2; t++) {
        cp_store_close(w[t].s);
        if (w[t].rc != 0) {
            fail_msg("writer %d: %s of service %d failed: %d (%s)", t, w[t].what, w[t].at, w[t].rc,
                     w[t].err.msg);
        }
    }
    assert_int_equal(count(f->s, ST_ENT_SERVICE), 2 * N + 1);
    assert_int_equal(version(f->s), v0 + 2 * N);
    assert_int_equal(cp_store_read_all(f->s, &v, lists), 0);
    assert_int_equal(v, v0 + 2 * N);
    assert_int_equal(json_array_size(lists[ST_ENT_SERVICE]), 2 * N + 1);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
    for (int t = 0; t < 2; t++) {
        json_t *o = NULL;
        char name[32];

        snprintf(name, sizeof(name), "w%d-%d", t, N - 1);
        assert_int_equal(cp_store_get(f->s, ST_ENT_SERVICE, name, &o), 0);
        json_decref(o);
    }
}

static void *
racer_run(void *arg)
{
    struct writer *w = arg;
    char id[37], name[32];
    json_t *o;
    int rc;

    snprintf(id, sizeof(id), "%08x-0000-4000-8000-%012x", (unsigned)w->t + 0xa1u,
             (unsigned)w->round);
    snprintf(name, sizeof(name), "race-%d", w->round);
    o = service(id, name);
    pthread_barrier_wait(w->start);
    rc = cp_store_begin(w->s, true);
    if (rc != 0) {
        writer_fail(w, rc, w->round, "begin");
        w->at = -1;
    } else {
        w->rc = cp_store_insert(w->s, ST_ENT_SERVICE, o, &w->err);
        if (w->rc == 0) {
            rc = cp_store_commit(w->s);
            if (rc != 0) {
                w->rc = rc;
                snprintf(w->what, sizeof(w->what), "commit");
                w->at = -1;
            }
        } else {
            cp_store_rollback(w->s);
        }
    }
    json_decref(o);
    return NULL;
}

/* Issue 6: two writers insert the same name at once, through two handles: exactly one
 * succeeds, the other gets -ST_EUNIQUE on the name (not a database error, not both). */
static void
test_unique_name_race(void **state)
{
    enum { ROUNDS = 12 };
    struct fx *f = *state;
    struct writer w[2];
    pthread_t th[2];
    pthread_barrier_t start;
    struct cp_store *h[2];
    uint64_t v0 = version(f->s);

    db_open(&f->db, &h[0]);
    db_open(&f->db, &h[1]);
    for (int r = 0; r < ROUNDS; r++) {
        char name[32];
        int ok = 0;
        int loser = -1;

        assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
        for (int t = 0; t < 2; t++) {
            memset(&w[t], 0, sizeof(w[t]));
            w[t].s = h[t];
            w[t].start = &start;
            w[t].t = t;
            w[t].round = r;
            assert_int_equal(pthread_create(&th[t], NULL, racer_run, &w[t]), 0);
        }
        for (int t = 0; t < 2; t++) {
            pthread_join(th[t], NULL);
        }
        pthread_barrier_destroy(&start);
        snprintf(name, sizeof(name), "race-%d", r);
        for (int t = 0; t < 2; t++) {
            if (w[t].at == -1) {
                fail_msg("round %d, writer %d: %s failed: %d", r, t,
                         w[t].what[0] != '\0' ? w[t].what : "begin", w[t].rc);
            }
            if (w[t].rc == 0) {
                ok++;
            } else {
                loser = t;
            }
        }
        if (ok != 1) {
            fail_msg("round %d: %d writers succeeded (codes %d and %d: %s / %s), want exactly 1", r,
                     ok, w[0].rc, w[1].rc, w[0].err.msg, w[1].err.msg);
        }
        if (w[loser].rc != -ST_EUNIQUE) {
            fail_msg("round %d: the loser got %d (%s), want -ST_EUNIQUE", r, w[loser].rc,
                     w[loser].err.msg);
        }
        assert_string_equal(w[loser].err.field, "name");
        assert_string_equal(w[loser].err.msg, name);
    }
    cp_store_close(h[0]);
    cp_store_close(h[1]);
    assert_int_equal(count(f->s, ST_ENT_SERVICE), ROUNDS);
    assert_int_equal(version(f->s), v0 + ROUNDS);
}

/* Reads everything through the cache; checks the lists equal a plain read's. */
static void
read_cached(struct fx *f, struct cp_store_cache *c, json_t *lists[ST_ENT__COUNT], size_t *parsed,
            size_t *reused)
{
    json_t *plain[ST_ENT__COUNT] = {NULL};
    uint64_t v1 = 0, v2 = 0;

    assert_int_equal(cp_store_read_all_cached(f->s, c, &v1, lists, parsed, reused), 0);
    assert_int_equal(cp_store_read_all(f->s, &v2, plain), 0);
    assert_int_equal(v1, v2);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        assert_true(json_equal(lists[k], plain[k]));
        json_decref(plain[k]);
    }
}

static void
lists_free(json_t *lists[ST_ENT__COUNT])
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
        lists[k] = NULL;
    }
}

/* The read cache: a second read parses nothing and shares the objects of the first; an
 * update is parsed anew (and read as updated), a delete leaves the list, an insert is
 * parsed; the result always equals a plain read. */
static void
test_read_cache(void **state)
{
    struct fx *f = *state;
    struct cp_store_cache *c = cp_store_cache_new();
    struct st_err err = {0};
    json_t *lists[ST_ENT__COUNT] = {NULL};
    json_t *first;
    json_t *o;
    size_t parsed = 9, reused = 9;

    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "a"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC2, "b"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, route(RT1, SVC1), &err), 0);
    read_cached(f, c, lists, &parsed, &reused);
    assert_int_equal(parsed, 3);
    assert_int_equal(reused, 0);
    first = json_incref(json_array_get(lists[ST_ENT_SERVICE], 1));
    lists_free(lists);

    read_cached(f, c, lists, &parsed, &reused);
    assert_int_equal(parsed, 0);
    assert_int_equal(reused, 3);
    assert_ptr_equal(json_array_get(lists[ST_ENT_SERVICE], 1), first);
    lists_free(lists);

    o = service(SVC2, "b");
    json_object_set_new(o, "port", json_integer(8080));
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_update(f->s, ST_ENT_SERVICE, o, &err), 0);
    assert_int_equal(cp_store_remove(f->s, ST_ENT_ROUTE, RT1, &err), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    json_decref(o);
    read_cached(f, c, lists, &parsed, &reused);
    assert_int_equal(parsed, 1);
    assert_int_equal(reused, 1);
    assert_int_equal(json_array_size(lists[ST_ENT_ROUTE]), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(lists[ST_ENT_SERVICE], 1), "port")),
        8080);
    assert_int_equal(json_integer_value(json_object_get(first, "port")), 80); /* untouched */
    lists_free(lists);

    /* the deleted route left the cache too: inserted again, it is parsed */
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, route(RT1, SVC1), &err), 0);
    read_cached(f, c, lists, &parsed, &reused);
    assert_int_equal(parsed, 1);
    assert_int_equal(reused, 2);
    lists_free(lists);
    json_decref(first);
    cp_store_cache_free(c);
}

static json_t *
dp_record(const char *id, long long seen_ms, const char *hostname)
{
    return json_pack("{s:s,s:I,s:{s:s,s:s}}", "id", id, "last_seen_ms", (json_int_t)seen_ms, "doc",
                     "id", id, "hostname", hostname);
}

/* The ids of a dps_page, joined by ',' (at most 255 bytes). */
static const char *
dp_ids(const json_t *rows, char buf[256])
{
    size_t i, n = 0;
    const json_t *r;

    buf[0] = '\0';
    json_array_foreach(rows, i, r)
    {
        n += (size_t)snprintf(buf + n, 256 - n, "%s%s", i ? "," : "",
                              json_string_value(json_object_get(r, "id")));
    }
    return buf;
}

/* The shared data-plane registry: SQLite has none (one CP); on Postgres records are
 * upserted (an older one never replaces a newer one, as when a DP moved to another CP),
 * paged by id from `after`, filtered by last seen, deleted by a goodbye unless seen
 * since, and purged by age; none of it bumps the config version. */
static void
test_dps(void **state)
{
    struct fx *f = *state;
    json_t *seen, *gone, *rows = NULL;
    char ids[256];
    uint64_t v0 = version(f->s);

    if (f->db.be == BE_SQLITE) {
        assert_false(cp_store_dps_shared(f->s));
        assert_int_equal(cp_store_dps_page(f->s, NULL, 10, 0, &rows), -ST_EUNSUPPORTED);
        assert_null(rows);
        return;
    }
    assert_true(cp_store_dps_shared(f->s));
    seen = json_pack("[o,o,o]", dp_record("c", 3000, "host-c"), dp_record("a", 1000, "host-a"),
                     dp_record("b", 2000, "host-b"));
    gone = json_array();
    assert_int_equal(cp_store_dps_save(f->s, seen, gone, 0), 0);
    json_decref(seen);
    assert_int_equal(cp_store_dps_page(f->s, NULL, 10, 0, &rows), 0);
    assert_string_equal(dp_ids(rows, ids), "a,b,c");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(rows, 1), "doc"), "hostname")),
                        "host-b");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 1), "last_seen_ms")),
                     2000);
    json_decref(rows);
    /* paging and the last-seen filter */
    assert_int_equal(cp_store_dps_page(f->s, "a", 1, 0, &rows), 0);
    assert_string_equal(dp_ids(rows, ids), "b");
    json_decref(rows);
    assert_int_equal(cp_store_dps_page(f->s, NULL, 10, 2000, &rows), 0);
    assert_string_equal(dp_ids(rows, ids), "b,c");
    json_decref(rows);

    /* an older record of b does not replace the newer one; a newer one of a does */
    seen = json_pack("[o,o]", dp_record("b", 1500, "stale"), dp_record("a", 4000, "host-a2"));
    assert_int_equal(cp_store_dps_save(f->s, seen, gone, 0), 0);
    json_decref(seen);
    assert_int_equal(cp_store_dps_page(f->s, NULL, 10, 0, &rows), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(rows, 0), "doc"), "hostname")),
                        "host-a2");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(rows, 1), "doc"), "hostname")),
                        "host-b");
    json_decref(rows);

    /* a goodbye at 3500 removes b (seen at 2000), not a (seen since, at 4000) */
    seen = json_array();
    json_array_append_new(gone, json_pack("{s:s,s:I}", "id", "b", "at_ms", (json_int_t)3500));
    json_array_append_new(gone, json_pack("{s:s,s:I}", "id", "a", "at_ms", (json_int_t)3500));
    assert_int_equal(cp_store_dps_save(f->s, seen, gone, 0), 0);
    assert_int_equal(cp_store_dps_page(f->s, NULL, 10, 0, &rows), 0);
    assert_string_equal(dp_ids(rows, ids), "a,c");
    json_decref(rows);

    /* the purge: rows last seen before 3500 go */
    json_array_clear(gone);
    assert_int_equal(cp_store_dps_save(f->s, seen, gone, 3500), 0);
    assert_int_equal(cp_store_dps_page(f->s, NULL, 10, 0, &rows), 0);
    assert_string_equal(dp_ids(rows, ids), "a");
    json_decref(rows);
    json_decref(seen);
    json_decref(gone);
    assert_int_equal(version(f->s), v0);
}

/* Issue 6: Postgres only. A database nobody bootstrapped is refused at open, naming the
 * command to run; an unreachable server fails the open cleanly. */
static void
test_pg_open_refusals(void **state)
{
    struct db d;
    struct st_conf conf;
    struct cp_store *s = NULL;
    struct st_err err = {0};
    int rc;

    (void)state;
    memset(&d, 0, sizeof(d));
    d.be = BE_PG;
    pg_db_new(&d); /* not migrated */
    rc = cp_store_open(&d.conf, &s, &err);
    if (rc >= 0 || s != NULL || strstr(err.msg, "strait-cp migrations bootstrap") == NULL) {
        fail_msg("open of an empty database: %d, handle %p, '%s' (want a refusal naming "
                 "'strait-cp migrations bootstrap')",
                 rc, (void *)s, err.msg);
    }
    cp_store_close(s);
    s = NULL;

    /* nothing listens there */
    conf = d.conf;
    conf.pg_port = 1; /* privileged, never a Postgres in a test */
    conf.pg_timeout = 2000;
    memset(&err, 0, sizeof(err));
    rc = cp_store_open(&conf, &s, &err);
    if (rc >= 0 || s != NULL || err.msg[0] == '\0') {
        fail_msg("open of an unreachable server: %d, handle %p, '%s'", rc, (void *)s, err.msg);
    }
    pg_db_drop(&d);
}

/* ------------------------------------------------------------------------ */
/* issue 14: the snapshot's size after a write, known without encoding it */

/* One write through cp_snapshot_fit as the admin API does it: begin, insert (or update)
 * o, fit against max, commit and remember. Returns fit's code (0: committed). */
static int
fit_write(struct cp_store *s, struct cp_snapshot *sn, enum st_entity_kind k, json_t *o, bool update,
          int64_t max, struct cp_snapshot_fit *fit, struct st_err *err)
{
    int rc;

    assert_int_equal(cp_store_begin(s, true), 0);
    rc = update ? cp_store_update(s, k, o, err) : cp_store_insert(s, k, o, err);
    assert_int_equal(rc, 0);
    rc = cp_snapshot_fit(sn, s, max, fit, err);
    if (rc == 0) {
        assert_int_equal(cp_store_commit(s), 0);
        cp_snapshot_fit_commit(sn, fit);
    } else {
        cp_store_rollback(s);
    }
    json_decref(o);
    return rc;
}

/* The published snapshot's version and size. */
static uint64_t
blob_now(struct cp_snapshot *sn, size_t *len)
{
    struct cp_snapshot_blob *b = cp_snapshot_acquire(sn);
    uint64_t v = b->version;

    *len = b->len;
    cp_snapshot_blob_unref(b);
    return v;
}

static void
test_snapshot_fit(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    struct cp_store *b = NULL;
    struct cp_store *other = NULL;
    struct cp_snapshot *sn = NULL;
    struct cp_snapshot_fit fit;
    const int64_t max = 1 << 30;
    size_t len0, len;
    json_t *o;

    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, valid(ST_ENT_SERVICE, service(SVC1, "a")), &err),
                     0);
    db_open(&f->db, &b);
    assert_int_equal(cp_snapshot_new(b, &sn, &err), 0);
    assert_int_equal(blob_now(sn, &len0), 1);

    /* a write counts its entity (and a byte for each varint its size may lengthen) */
    o = valid(ST_ENT_ROUTE, route(RT1, SVC1));
    len = st_snapshot_entity_size(ST_ENT_ROUTE, o);
    assert_int_equal(fit_write(f->s, sn, ST_ENT_ROUTE, o, false, max, &fit, &err), 0);
    assert_int_equal(fit.version, 1);
    assert_int_equal(fit.before, len0);
    assert_true(fit.after >= len0 + len && fit.after <= len0 + len + 2);
    /* the next write needs no build: the size this CP's write left is known */
    o = valid(ST_ENT_SERVICE, service(SVC2, "b"));
    json_object_set_new(o, "tags", json_pack("[s,s]", "x", "y"));
    assert_int_equal(fit_write(f->s, sn, ST_ENT_SERVICE, o, false, max, &fit, &err), 0);
    assert_int_equal(blob_now(sn, &len), 1); /* not rebuilt */
    assert_int_equal(fit.version, 2);
    /* the build agrees with the estimate */
    assert_int_equal(cp_snapshot_refresh(sn), 0);
    assert_int_equal(blob_now(sn, &len), 3);
    if (!(len <= fit.after && fit.after - len <= 16)) {
        fail_msg("built %zu, estimated %zu (from %zu)", len, fit.after, fit.before);
    }

    /* an update counts the difference (fewer tags: smaller) */
    o = valid(ST_ENT_SERVICE, service(SVC2, "b"));
    assert_int_equal(fit_write(f->s, sn, ST_ENT_SERVICE, o, true, max, &fit, &err), 0);
    assert_true(fit.after < fit.before);
    assert_int_equal(cp_snapshot_refresh(sn), 0);
    assert_int_equal(blob_now(sn, &len), 4);
    if (!(len <= fit.after && fit.after - len <= 16)) {
        fail_msg("built %zu, estimated %zu (from %zu)", len, fit.after, fit.before);
    }

    /* another writer (another CP, db_import) committed: the size is built first */
    db_open(&f->db, &other);
    o = valid(ST_ENT_SERVICE, service("a0000000-0000-4000-8000-00000000000a", "c"));
    json_object_set_new(o, "tags", json_pack("[s]", "from-another-cp"));
    assert_int_equal(insert1(other, ST_ENT_SERVICE, o, &err), 0);
    o = valid(ST_ENT_SERVICE, service("b0000000-0000-4000-8000-00000000000b", "d"));
    assert_int_equal(fit_write(f->s, sn, ST_ENT_SERVICE, o, false, max, &fit, &err), 0);
    assert_int_equal(fit.version, 5);
    assert_int_equal(blob_now(sn, &len), 5); /* built at the version the write started from */
    assert_int_equal(fit.before, len);

    /* beyond the limit: refused, both sizes named, nothing written */
    o = valid(ST_ENT_SERVICE, service("c0000000-0000-4000-8000-00000000000c", "e"));
    len = st_snapshot_entity_size(ST_ENT_SERVICE, o);
    assert_int_equal(fit_write(f->s, sn, ST_ENT_SERVICE, json_incref(o), false,
                               (int64_t)(fit.after + len + CP_SNAPSHOT_SEND_SLACK - 1), &fit, &err),
                     -ST_ETOOBIG);
    if (strstr(err.msg, "beyond cluster_max_payload (") == NULL ||
        strstr(err.msg, "would be sent to data planes as ") == NULL) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(fit_write(f->s, sn, ST_ENT_SERVICE, o, false,
                               (int64_t)(fit.after + len + CP_SNAPSHOT_SEND_SLACK), &fit, &err),
                     0);

    /* beyond a limit lowered under the configuration: a write that does not grow the
     * snapshot goes through, one that does is refused */
    o = valid(ST_ENT_SERVICE, service(SVC2, "b")); /* the same size */
    assert_int_equal(fit_write(f->s, sn, ST_ENT_SERVICE, o, true, 300, &fit, &err), 0);
    o = valid(ST_ENT_SERVICE, service(SVC2, "bb")); /* a byte more */
    assert_int_equal(fit_write(f->s, sn, ST_ENT_SERVICE, o, true, 300, &fit, &err), -ST_ETOOBIG);

    /* after a clear, only what the transaction wrote counts */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_clear(f->s), 0);
    o = valid(ST_ENT_SERVICE, service(SVC1, "a"));
    assert_int_equal(cp_store_insert(f->s, ST_ENT_SERVICE, o, &err), 0);
    assert_int_equal(cp_snapshot_fit(sn, f->s, max, &fit, &err), 0);
    assert_int_equal(fit.before, ST_SNAPSHOT_ENVELOPE_MAX);
    assert_int_equal(fit.after,
                     ST_SNAPSHOT_ENVELOPE_MAX + st_snapshot_entity_size(ST_ENT_SERVICE, o));
    cp_store_rollback(f->s);
    json_decref(o);

    cp_store_close(other);
    cp_snapshot_free(sn);
}

/* ------------------------------------------------------------------------ */
/* relations beyond the simple ones (issue 15) */

/* Targets (a unique key over (upstream, target), a cascade from the upstream, nested only:
 * their real description since issue 16) and, declared the way the entity descriptor will
 * declare them with tables of their own in the throwaway database, plugins (three nullable foreign
 * keys, a four-column unique key whose NULLs compare equal as Kong's cache_key, a restrict). The
 * store runs them with no code of their own. */
static const struct cp_rel rel_consumers = {
    .table = "consumers",
    .singular = "consumer",
    .endpoint = "username",
    .cols = {{.name = "username", .field = "username"}},
    .keys = {{.cols = {"username"}}},
};

/* route says cascade where the DDL restricts: the database refuses as it would refuse a
 * writer that skipped the checks, and the refusal must map to the checks' error */
static const struct cp_rel rel_plugins = {
    .table = "xplugins",
    .singular = "xplugin",
    .endpoint = "instance_name",
    .cols = {{.name = "name", .field = "name"},
             {.name = "instance_name", .field = "instance_name"},
             {.name = "service_id",
              .field = "service",
              .ref = "services",
              .nullable = true,
              .on_delete = CP_REL_CASCADE,
              .parent = true},
             {.name = "route_id",
              .field = "route",
              .ref = "routes",
              .nullable = true,
              .on_delete = CP_REL_CASCADE,
              .parent = true},
             {.name = "consumer_id",
              .field = "consumer",
              .ref = "consumers",
              .nullable = true,
              .on_delete = CP_REL_RESTRICT,
              .parent = true}},
    .keys = {{.cols = {"instance_name"}},
             {.cols = {"name", "route_id", "service_id", "consumer_id"}}},
};

/* The tables, as each backend's migration would write them. The targets' key is also
 * case-blind in the database: the store's check does not see "A:80" as "a:80", the
 * database does, as it would refuse a writer that skipped the checks (the backstop, with
 * SQLite's two ways of naming a key: by columns, by an index's name). */
static const char *const rel_ddl_sqlite[] = {
    "CREATE TABLE consumers (id TEXT PRIMARY KEY, username TEXT UNIQUE,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, tags TEXT, doc TEXT NOT NULL)",
    "CREATE TABLE xplugins (id TEXT PRIMARY KEY, name TEXT NOT NULL, instance_name TEXT UNIQUE,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, tags TEXT, doc TEXT NOT NULL,"
    " service_id TEXT REFERENCES services (id) ON DELETE CASCADE,"
    " route_id TEXT REFERENCES routes (id) ON DELETE RESTRICT,"
    " consumer_id TEXT REFERENCES consumers (id) ON DELETE RESTRICT)",
    "CREATE UNIQUE INDEX xplugins_name_route_id_service_id_consumer_id_key ON xplugins"
    " (name, ifnull(route_id, ''), ifnull(service_id, ''), ifnull(consumer_id, ''))",
};

static const char *const rel_ddl_pg[] = {
    "CREATE TABLE consumers (id TEXT COLLATE \"C\" PRIMARY KEY,"
    " username TEXT COLLATE \"C\" UNIQUE,"
    " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, tags JSONB, doc TEXT NOT NULL)",
    "CREATE TABLE xplugins (id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT COLLATE \"C\" NOT NULL,"
    " instance_name TEXT COLLATE \"C\" UNIQUE,"
    " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, tags JSONB, doc TEXT NOT NULL,"
    " service_id TEXT COLLATE \"C\" REFERENCES services (id) ON DELETE CASCADE,"
    " route_id TEXT COLLATE \"C\" REFERENCES routes (id) ON DELETE RESTRICT,"
    " consumer_id TEXT COLLATE \"C\" REFERENCES consumers (id) ON DELETE RESTRICT,"
    " UNIQUE NULLS NOT DISTINCT (name, route_id, service_id, consumer_id))",
};

static const char *const CO1 = "c1000000-0000-4000-8000-000000000001";
static const char *const PL1 = "d1000000-0000-4000-8000-000000000001";
static const char *const PL2 = "d2000000-0000-4000-8000-000000000002";
static const char *const PL3 = "d3000000-0000-4000-8000-000000000003";
static const char *const PL4 = "d4000000-0000-4000-8000-000000000004";
static const char *const PL5 = "d5000000-0000-4000-8000-000000000005";

/* {"id", "created_at", "updated_at"} and each of the NULL-ended (field, value) pairs: a
 * value "id:<uuid>" is a reference {"id": <uuid>}, NULL null. */
static json_t *
rel_ent(const char *id, ...)
{
    json_t *o = json_pack("{s:s,s:i,s:i}", "id", id, "created_at", 1000, "updated_at", 1000);
    const char *k;
    va_list ap;

    va_start(ap, id);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);

        json_object_set_new(o, k,
                            v == NULL                   ? json_null()
                            : strncmp(v, "id:", 3) == 0 ? json_pack("{s:s}", "id", v + 3)
                                                        : json_string(v));
    }
    va_end(ap);
    return o;
}

/* The kinds rel_schema adds after the real ones, in order. */
static const struct cp_rel *const rel_extra[] = {&rel_consumers, &rel_plugins};

/* The kind number the store knows r by once rel_schema ran. */
static enum st_entity_kind
rel_kind(const struct cp_rel *r)
{
    size_t i = 0;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        if (cp_store_rel_of((enum st_entity_kind)k) == r) {
            return (enum st_entity_kind)k;
        }
    }
    while (rel_extra[i] != r) {
        i++;
    }
    return (enum st_entity_kind)(ST_ENT__COUNT + i);
}

static int
rel_write(struct cp_store *s, const struct cp_rel *r, json_t *o, struct st_err *err)
{
    int rc;

    memset(err, 0, sizeof(*err));
    assert_int_equal(cp_store_begin(s, true), 0);
    rc = cp_store__write(s, rel_kind(r), o, true, err);
    if (rc == 0) {
        assert_int_equal(cp_store_commit(s), 0);
    } else {
        cp_store_rollback(s);
    }
    json_decref(o);
    return rc;
}

static int
rel_remove(struct cp_store *s, const struct cp_rel *r, const char *id, struct st_err *err)
{
    int rc;

    memset(err, 0, sizeof(*err));
    assert_int_equal(cp_store_begin(s, true), 0);
    rc = cp_store__remove(s, rel_kind(r), id, err);
    if (rc == 0) {
        assert_int_equal(cp_store_commit(s), 0);
    } else {
        cp_store_rollback(s);
    }
    return rc;
}

/* The id of what cp_store__get_in finds, or "" (not found). */
static const char *
rel_get(struct cp_store *s, const struct cp_rel *r, const char *parent_id, const char *key)
{
    static char id[64];
    json_t *o = NULL;
    int rc = cp_store__get_in(s, rel_kind(r), NULL, parent_id, key, &o);

    assert_true(rc == 0 || rc == -ST_ENOTFOUND);
    snprintf(id, sizeof(id), "%s", rc == 0 ? json_string_value(json_object_get(o, "id")) : "");
    json_decref(o);
    return id;
}

static size_t
rel_count(struct cp_store *s, const struct cp_rel *r, const char *parent_field,
          const char *parent_id)
{
    struct cp_page_opts o = {.size = 100, .parent_id = parent_id, .parent_field = parent_field};
    struct st_err err = {0};
    json_t *data = NULL;
    char *next = NULL;
    size_t n;

    assert_int_equal(cp_store__page(s, rel_kind(r), &o, &data, &next, &err), 0);
    n = json_array_size(data);
    json_decref(data);
    free(next);
    return n;
}

static void
assert_err(const struct st_err *err, const char *field, const char *msg)
{
    assert_string_equal(err->field, field);
    assert_string_equal(err->msg, msg);
}

static void
rel_schema(struct fx *f, const struct cp_rel **all, size_t n)
{
    const char *const *ddl = f->db.be == BE_SQLITE ? rel_ddl_sqlite : rel_ddl_pg;
    size_t n_ddl =
        f->db.be == BE_SQLITE ? ST_ARRAY_SIZE(rel_ddl_sqlite) : ST_ARRAY_SIZE(rel_ddl_pg);

    for (size_t i = 0; i < n_ddl; i++) {
        if (cp_store__exec(f->s, ddl[i]) != 0) {
            fail_msg("%s", ddl[i]);
        }
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        all[k] = cp_store_rel_of((enum st_entity_kind)k);
    }
    assert_int_equal(n, ST_ENT__COUNT + ST_ARRAY_SIZE(rel_extra));
    memcpy(all + ST_ENT__COUNT, rel_extra, sizeof(rel_extra));
    cp_store__use_rels(f->s, all, n);
}

/* Targets: (upstream, target) unique, a cascade from the upstream, found by target only
 * under their upstream. */
static void
test_rel_targets(void **state)
{
    struct fx *f = *state;
    const struct cp_rel *all[ST_ENT__COUNT + 2];
    struct st_err err;
    char want[256];
    char up1[64], up2[64];

    rel_schema(f, all, ST_ARRAY_SIZE(all));
    snprintf(up1, sizeof(up1), "id:%s", UP1);
    snprintf(up2, sizeof(up2), "id:%s", UP2);
    assert_int_equal(
        rel_write(f->s, cp_store_rel_of(ST_ENT_UPSTREAM), rel_ent(UP1, "name", "u1", NULL), &err),
        0);
    assert_int_equal(
        rel_write(f->s, cp_store_rel_of(ST_ENT_UPSTREAM), rel_ent(UP2, "name", "u2", NULL), &err),
        0);
    assert_int_equal(rel_write(f->s, cp_store_rel_of(ST_ENT_TARGET),
                               rel_ent(TG1, "upstream", up1, "target", "a:80", NULL), &err),
                     0);
    assert_int_equal(rel_write(f->s, cp_store_rel_of(ST_ENT_TARGET),
                               rel_ent(TG2, "upstream", up2, "target", "a:80", NULL), &err),
                     0);

    /* the composite key: Kong's 409 (code 5) names the fields and their values */
    snprintf(want, sizeof(want), "{\"target\":\"a:80\",\"upstream\":{\"id\":\"%s\"}}", UP1);
    assert_int_equal(rel_write(f->s, cp_store_rel_of(ST_ENT_TARGET),
                               rel_ent(TG3, "upstream", up1, "target", "a:80", NULL), &err),
                     -ST_EUNIQUE);
    assert_err(&err, "upstream,target", want);
    /* what the database refuses maps to the same error */
    snprintf(want, sizeof(want), "{\"target\":\"A:80\",\"upstream\":{\"id\":\"%s\"}}", UP1);
    assert_int_equal(rel_write(f->s, cp_store_rel_of(ST_ENT_TARGET),
                               rel_ent(TG3, "upstream", up1, "target", "A:80", NULL), &err),
                     -ST_EUNIQUE);
    assert_err(&err, "upstream,target", want);
    /* the upstream is required and must exist */
    assert_int_equal(
        rel_write(f->s, cp_store_rel_of(ST_ENT_TARGET), rel_ent(TG3, "target", "b:80", NULL), &err),
        -ST_ESCHEMA);
    assert_string_equal(err.field, "upstream");
    assert_int_equal(rel_write(f->s, cp_store_rel_of(ST_ENT_TARGET),
                               rel_ent(TG3, "upstream", "id:a9000000-0000-4000-8000-000000000009",
                                       "target", "b:80", NULL),
                               &err),
                     -ST_EFOREIGN);
    assert_err(&err, "upstream", "a9000000-0000-4000-8000-000000000009");

    /* nested only: the target finds one only under its upstream; the id, anywhere */
    assert_string_equal(rel_get(f->s, cp_store_rel_of(ST_ENT_TARGET), NULL, "a:80"), "");
    assert_string_equal(rel_get(f->s, cp_store_rel_of(ST_ENT_TARGET), UP1, "a:80"), TG1);
    assert_string_equal(rel_get(f->s, cp_store_rel_of(ST_ENT_TARGET), UP2, "a:80"), TG2);
    assert_string_equal(rel_get(f->s, cp_store_rel_of(ST_ENT_TARGET), UP2, TG1), "");
    assert_string_equal(rel_get(f->s, cp_store_rel_of(ST_ENT_TARGET), NULL, TG1), TG1);
    assert_int_equal(rel_count(f->s, cp_store_rel_of(ST_ENT_TARGET), NULL, UP1), 1);
    assert_int_equal(rel_count(f->s, cp_store_rel_of(ST_ENT_TARGET), "upstream", UP2), 1);
    assert_int_equal(rel_count(f->s, cp_store_rel_of(ST_ENT_TARGET), NULL, NULL), 2);

    /* the cascade */
    assert_int_equal(rel_remove(f->s, cp_store_rel_of(ST_ENT_UPSTREAM), UP1, &err), 0);
    assert_string_equal(rel_get(f->s, cp_store_rel_of(ST_ENT_TARGET), NULL, TG1), "");
    assert_string_equal(rel_get(f->s, cp_store_rel_of(ST_ENT_TARGET), NULL, TG2), TG2);
    cp_store__use_rels(f->s, NULL, 0);
}

/* Plugins: three nullable references, (name, route, service, consumer) unique with NULL
 * equal to NULL, found by instance_name, listed under each of their parents; a consumer in
 * use cannot go, a service takes its plugins with it; GET /tags and clear know the kind. */
static void
test_rel_plugins(void **state)
{
    struct fx *f = *state;
    const struct cp_rel *all[ST_ENT__COUNT + 2];
    struct st_err err;
    char want[256];
    char svc[64], rt[64], co[64];
    size_t pages;
    json_t *tags;

    rel_schema(f, all, ST_ARRAY_SIZE(all));
    snprintf(svc, sizeof(svc), "id:%s", SVC1);
    snprintf(rt, sizeof(rt), "id:%s", RT1);
    snprintf(co, sizeof(co), "id:%s", CO1);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC1, "s1"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_SERVICE, service(SVC2, "s2"), &err), 0);
    assert_int_equal(insert1(f->s, ST_ENT_ROUTE, route(RT1, SVC2), &err), 0);
    assert_int_equal(rel_write(f->s, &rel_consumers, rel_ent(CO1, "username", "bob", NULL), &err),
                     0);

    assert_int_equal(
        rel_write(f->s, &rel_plugins, rel_ent(PL1, "name", "key-auth", "service", svc, NULL), &err),
        0);
    snprintf(want, sizeof(want),
             "{\"consumer\":null,\"name\":\"key-auth\",\"route\":null,\"service\":{\"id\":\"%s\"}}",
             SVC1);
    assert_int_equal(
        rel_write(f->s, &rel_plugins,
                  rel_ent(PL2, "name", "key-auth", "service", svc, "route", NULL, NULL), &err),
        -ST_EUNIQUE);
    assert_err(&err, "name,route,service,consumer", want);
    /* global: every reference null, and still one per name */
    assert_int_equal(rel_write(f->s, &rel_plugins, rel_ent(PL2, "name", "key-auth", NULL), &err),
                     0);
    assert_int_equal(rel_write(f->s, &rel_plugins, rel_ent(PL3, "name", "key-auth", NULL), &err),
                     -ST_EUNIQUE);
    assert_err(&err, "name,route,service,consumer",
               "{\"consumer\":null,\"name\":\"key-auth\",\"route\":null,\"service\":null}");
    assert_int_equal(
        rel_write(f->s, &rel_plugins,
                  rel_ent(PL3, "name", "key-auth", "consumer", co, "instance_name", "ka", NULL),
                  &err),
        0);
    assert_int_equal(rel_write(f->s, &rel_plugins,
                               rel_ent(PL4, "name", "acl", "instance_name", "ka", NULL), &err),
                     -ST_EUNIQUE);
    assert_err(&err, "instance_name", "ka");
    assert_int_equal(rel_write(f->s, &rel_plugins,
                               rel_ent(PL4, "name", "acl", "route",
                                       "id:e9000000-0000-4000-8000-000000000009", NULL),
                               &err),
                     -ST_EFOREIGN);
    assert_err(&err, "route", "e9000000-0000-4000-8000-000000000009");
    assert_int_equal(rel_write(f->s, &rel_plugins,
                               tagged(rel_ent(PL4, "name", "acl", "route", rt, NULL), "[\"t1\"]"),
                               &err),
                     0);
    assert_int_equal(
        rel_write(f->s, &rel_plugins, rel_ent(PL5, "name", "acl", "service", svc, NULL), &err), 0);

    assert_string_equal(rel_get(f->s, &rel_plugins, NULL, "ka"), PL3);
    assert_int_equal(rel_count(f->s, &rel_plugins, "consumer", CO1), 1);
    assert_int_equal(rel_count(f->s, &rel_plugins, "service", SVC1), 2);
    assert_int_equal(rel_count(f->s, &rel_plugins, "route", RT1), 1);
    assert_int_equal(rel_count(f->s, &rel_plugins, NULL, NULL), 5);
    tags = tags_all(f->s, "t1", 10, &pages);
    assert_int_equal(json_array_size(tags), 1);
    snprintf(want, sizeof(want), "t1|xplugins|%s", PL4);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), want);
    json_decref(tags);

    /* a restrict: Kong's "referenced" error; the database's own refusal maps the same */
    assert_int_equal(rel_remove(f->s, &rel_consumers, CO1, &err), -ST_EREFERENCED);
    assert_err(&err, "xplugins", "xplugins");
    assert_int_equal(rel_remove(f->s, &rel_plugins, PL4, &err), 0);
    assert_int_equal(
        rel_write(f->s, &rel_plugins, rel_ent(PL4, "name", "acl", "route", rt, NULL), &err), 0);
    assert_int_equal(remove1(f->s, ST_ENT_ROUTE, RT1, &err), -ST_EREFERENCED);
    /* SQLite names no constraint: the refusal names the first kind that references routes
     * (Strait's own plugins since issue 18); Postgres names the constraint */
    assert_string_equal(err.field, f->db.be == BE_SQLITE ? "plugins" : "xplugins");
    /* a cascade */
    assert_int_equal(remove1(f->s, ST_ENT_SERVICE, SVC1, &err), 0);
    assert_int_equal(rel_count(f->s, &rel_plugins, NULL, NULL), 3);
    assert_string_equal(rel_get(f->s, &rel_plugins, NULL, PL1), "");

    /* clear deletes what refers before what is referred to */
    assert_int_equal(cp_store_begin(f->s, true), 0);
    assert_int_equal(cp_store_clear(f->s), 0);
    assert_int_equal(cp_store_commit(f->s), 0);
    assert_int_equal(rel_count(f->s, &rel_plugins, NULL, NULL), 0);
    assert_int_equal(rel_count(f->s, &rel_consumers, NULL, NULL), 0);
    assert_int_equal(count(f->s, ST_ENT_SERVICE), 0);
    cp_store__use_rels(f->s, NULL, 0);
}

/* The suite both backends run unchanged. */
/* The relations derived from the descriptions are the ones the DDL of both backends
 * creates (they were spelled by hand before issue 15): every column, key and set. */
static void
expect_col(const struct cp_rel *r, size_t i, const char *name, const char *field, const char *ref,
           bool nullable, enum cp_rel_del del, bool parent)
{
    const struct cp_rel_col *c = &r->cols[i];
    assert_non_null(c->name);
    assert_string_equal(c->name, name);
    assert_string_equal(c->field, field);
    if (ref == NULL) {
        assert_null(c->ref);
    } else {
        assert_non_null(c->ref);
        assert_string_equal(c->ref, ref);
    }
    assert_int_equal(c->nullable, nullable);
    assert_int_equal(c->on_delete, del);
    assert_int_equal(c->parent, parent);
}

static void
expect_key1(const struct cp_rel *r, size_t i, const char *col)
{
    assert_non_null(r->keys[i].cols[0]);
    assert_string_equal(r->keys[i].cols[0], col);
    assert_null(r->keys[i].cols[1]);
}

static void
test_rels_from_descriptions(void **state)
{
    (void)state;
    const struct cp_rel *sv = cp_store_rel_of(ST_ENT_SERVICE);
    assert_string_equal(sv->table, "services");
    assert_string_equal(sv->singular, "service");
    assert_string_equal(sv->endpoint, "name");
    assert_false(sv->nested_only);
    expect_col(sv, 0, "name", "name", NULL, false, CP_REL_RESTRICT, false);
    expect_col(sv, 1, "client_certificate_id", "client_certificate", "certificates", true,
               CP_REL_RESTRICT, false);
    assert_null(sv->cols[2].name);
    expect_key1(sv, 0, "name");
    assert_null(sv->keys[1].cols[0]);
    assert_string_equal(sv->sets[0].field, "ca_certificates");
    assert_string_equal(sv->sets[0].ref, "ca_certificates");
    assert_string_equal(sv->sets[0].join, "services_ca_certificates");
    assert_string_equal(sv->sets[0].own_col, "service_id");
    assert_string_equal(sv->sets[0].ref_col, "ca_certificate_id");
    assert_null(sv->sets[1].field);

    const struct cp_rel *rt = cp_store_rel_of(ST_ENT_ROUTE);
    assert_string_equal(rt->table, "routes");
    assert_string_equal(rt->endpoint, "name");
    expect_col(rt, 0, "name", "name", NULL, false, CP_REL_RESTRICT, false);
    expect_col(rt, 1, "service_id", "service", "services", true, CP_REL_RESTRICT, true);
    assert_null(rt->cols[2].name);
    expect_key1(rt, 0, "name");
    assert_null(rt->keys[1].cols[0]);
    assert_null(rt->sets[0].field);

    const struct cp_rel *ce = cp_store_rel_of(ST_ENT_CERTIFICATE);
    assert_string_equal(ce->table, "certificates");
    assert_string_equal(ce->singular, "certificate");
    assert_null(ce->endpoint);
    assert_null(ce->cols[0].name);
    assert_null(ce->keys[0].cols[0]);
    assert_null(ce->sets[0].field);

    const struct cp_rel *sn = cp_store_rel_of(ST_ENT_SNI);
    assert_string_equal(sn->table, "snis");
    assert_string_equal(sn->endpoint, "name");
    expect_col(sn, 0, "name", "name", NULL, false, CP_REL_RESTRICT, false);
    expect_col(sn, 1, "certificate_id", "certificate", "certificates", false, CP_REL_CASCADE, true);
    assert_null(sn->cols[2].name);
    expect_key1(sn, 0, "name");
    assert_null(sn->keys[1].cols[0]);

    const struct cp_rel *ca = cp_store_rel_of(ST_ENT_CA_CERTIFICATE);
    assert_string_equal(ca->table, "ca_certificates");
    assert_string_equal(ca->singular, "ca_certificate");
    assert_null(ca->endpoint);
    expect_col(ca, 0, "cert_digest", "cert_digest", NULL, false, CP_REL_RESTRICT, false);
    assert_null(ca->cols[1].name);
    expect_key1(ca, 0, "cert_digest");
    assert_null(ca->keys[1].cols[0]);
    assert_null(ca->sets[0].field);
}

#define STORE_TESTS(SETUP)                                                                         \
    cmocka_unit_test_setup_teardown(test_crud, SETUP, teardown),                                   \
        cmocka_unit_test_setup_teardown(test_unique_and_pkey, SETUP, teardown),                    \
        cmocka_unit_test_setup_teardown(test_foreign_keys, SETUP, teardown),                       \
        cmocka_unit_test_setup_teardown(test_rollback_changes_nothing, SETUP, teardown),           \
        cmocka_unit_test_setup_teardown(test_paging, SETUP, teardown),                             \
        cmocka_unit_test_setup_teardown(test_page_filters, SETUP, teardown),                       \
        cmocka_unit_test_setup_teardown(test_read_all_and_second_handle, SETUP, teardown),         \
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, SETUP, teardown),                  \
        cmocka_unit_test_setup_teardown(test_snapshot_hash_through_store, SETUP, teardown),        \
        cmocka_unit_test_setup_teardown(test_certificates_and_snis, SETUP, teardown),              \
        cmocka_unit_test_setup_teardown(test_service_tls_references, SETUP, teardown),             \
        cmocka_unit_test_setup_teardown(test_snapshot_carries_certificates, SETUP, teardown),      \
        cmocka_unit_test_setup_teardown(test_clear_and_count, SETUP, teardown),                    \
        cmocka_unit_test_setup_teardown(test_tags_page, SETUP, teardown),                          \
        cmocka_unit_test_setup_teardown(test_tag_filters_across_pages, SETUP, teardown),           \
        cmocka_unit_test_setup_teardown(test_version_bumps, SETUP, teardown),                      \
        cmocka_unit_test_setup_teardown(test_concurrent_writers, SETUP, teardown),                 \
        cmocka_unit_test_setup_teardown(test_unique_name_race, SETUP, teardown),                   \
        cmocka_unit_test_setup_teardown(test_dps, SETUP, teardown),                                \
        cmocka_unit_test_setup_teardown(test_read_cache, SETUP, teardown),                         \
        cmocka_unit_test_setup_teardown(test_snapshot_fit, SETUP, teardown),                       \
        cmocka_unit_test_setup_teardown(test_rel_targets, SETUP, teardown),                        \
        cmocka_unit_test_setup_teardown(test_rel_plugins, SETUP, teardown)

int
main(int argc, char **argv)
{
    const struct CMUnitTest sqlite_tests[] = {
        STORE_TESTS(setup_sqlite),
        cmocka_unit_test(test_open_fails_cleanly),
        cmocka_unit_test(test_sqlite_synchronous),
        cmocka_unit_test(test_rels_from_descriptions),
    };
    const struct CMUnitTest pg_tests[] = {
        /* without the test server, each fails in its setup, saying so */
        STORE_TESTS(setup_pg),
        cmocka_unit_test(test_pg_open_refusals),
    };
    const char *only = argc > 1 ? argv[1] : NULL; /* "sqlite" or "postgres": one group */
    int failed = 0;

    if (only == NULL || strcmp(only, "sqlite") == 0) {
        failed += cmocka_run_group_tests_name("sqlite", sqlite_tests, NULL, NULL);
    }
    if (only == NULL || strcmp(only, "postgres") == 0) {
        failed += cmocka_run_group_tests_name("postgres", pg_tests, NULL, NULL);
    }
    return failed != 0 ? 1 : 0;
}
