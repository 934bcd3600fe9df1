/* The SQLite store: the embedded default backend of cp_store, an executor and a dialect
 * for the statements of cp_store_sql.c. The only file that includes sqlite3.h.
 *
 * One table per entity with columns for what the database must enforce or search
 * (id, name unique, created_at in ms, updated_at, foreign keys: routes.service_id and
 * services.client_certificate_id ON DELETE RESTRICT, snis.certificate_id ON DELETE
 * CASCADE; ca_certificates.cert_digest unique; tags) and the whole entity as JSON text in
 * `doc`. A set of references (a service's ca_certificates) stays in the doc and is read
 * with json_each. The config version lives in `meta`. WAL mode, so the snapshot builder's
 * handle reads while the admin API writes; BEGIN IMMEDIATE makes writers take the one
 * write lock at once. The schema is versioned in `schema_migrations` and migrated at open.
 * GET /tags reads the `tags` columns (JSON arrays) through json_each. */
#include "cp_store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cp_store_int.h"
#include "st_err.h"
#include "st_log.h"
#include "st_schema.h"
#include "st_util.h"

struct sq_store {
    struct cp_store_sql sql; /* first: sq() casts */
    sqlite3 *db;
};

static const struct cp_store_migration migrations[] = {
    {1, "000_base",
     "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
     "INSERT INTO meta (key, value) VALUES ('config_version', 0);"
     "CREATE TABLE services ("
     " id TEXT PRIMARY KEY, name TEXT UNIQUE, created_at INTEGER NOT NULL,"
     " updated_at INTEGER NOT NULL, tags TEXT, doc TEXT NOT NULL);"
     "CREATE TABLE routes ("
     " id TEXT PRIMARY KEY, name TEXT UNIQUE, created_at INTEGER NOT NULL,"
     " updated_at INTEGER NOT NULL,"
     " service_id TEXT REFERENCES services (id) ON DELETE RESTRICT,"
     " tags TEXT, doc TEXT NOT NULL);"
     "CREATE INDEX routes_service_id_idx ON routes (service_id);"},
    {2, "001_certificates",
     "CREATE TABLE certificates ("
     " id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
     " tags TEXT, doc TEXT NOT NULL);"
     "CREATE TABLE snis ("
     " id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,"
     " updated_at INTEGER NOT NULL,"
     " certificate_id TEXT NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,"
     " tags TEXT, doc TEXT NOT NULL);"
     "CREATE INDEX snis_certificate_id_idx ON snis (certificate_id);"
     "CREATE TABLE ca_certificates ("
     " id TEXT PRIMARY KEY, cert_digest TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,"
     " updated_at INTEGER NOT NULL, tags TEXT, doc TEXT NOT NULL);"
     "ALTER TABLE services ADD COLUMN"
     " client_certificate_id TEXT REFERENCES certificates (id) ON DELETE RESTRICT;"
     "CREATE INDEX services_client_certificate_id_idx ON services (client_certificate_id);"},
    /* a target's (upstream, target) is unique regardless of case, as host names are */
    {3, "002_upstreams",
     "CREATE TABLE upstreams ("
     " id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,"
     " updated_at INTEGER NOT NULL, tags TEXT, doc TEXT NOT NULL,"
     " client_certificate_id TEXT REFERENCES certificates (id) ON DELETE RESTRICT);"
     "CREATE INDEX upstreams_client_certificate_id_idx ON upstreams (client_certificate_id);"
     "CREATE TABLE targets ("
     " id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
     " tags TEXT, doc TEXT NOT NULL,"
     " upstream_id TEXT NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,"
     " target TEXT NOT NULL, UNIQUE (upstream_id, target COLLATE NOCASE));"},
    /* plugins (issue 18): unique per (name, route, service, consumer), NULLs equal, checked
     * by the store before each write (cp_store_sql.c key_taken); consumer stays NULL */
    {4, "003_plugins",
     "CREATE TABLE plugins ("
     " id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
     " tags TEXT, doc TEXT NOT NULL,"
     " name TEXT NOT NULL, instance_name TEXT UNIQUE,"
     " route_id TEXT REFERENCES routes (id) ON DELETE CASCADE,"
     " service_id TEXT REFERENCES services (id) ON DELETE CASCADE,"
     " consumer TEXT);"
     "CREATE INDEX plugins_route_id_idx ON plugins (route_id);"
     "CREATE INDEX plugins_service_id_idx ON plugins (service_id);"
     "CREATE INDEX plugins_name_idx ON plugins (name);"},
};

static struct sq_store *
sq(struct cp_store_sql *q)
{
    return (struct sq_store *)q;
}

static int
sq_db_err(sqlite3 *db, const char *what)
{
    st_log(ST_LOG_ERR, 0, "sqlite: %s: %s", what, sqlite3_errmsg(db));
    return -ST_EDB;
}

static int
sq_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        st_log(ST_LOG_ERR, 0, "sqlite: %s: %s", sql, msg != NULL ? msg : "error");
        sqlite3_free(msg);
        return -ST_EDB;
    }
    return 0;
}

static int
sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
        return sq_db_err(db, sql);
    }
    return 0;
}

/* The first column of sql's first row: 0 and *out, or -ST_EDB. */
static int
sq_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(db, sql, &st);

    if (rc == 0) {
        rc = sqlite3_step(st) == SQLITE_ROW ? 0 : sq_db_err(db, sql);
    }
    if (rc == 0) {
        *out = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* migrations */

/* Runs m and records it. */
static int
sq_apply_migration(sqlite3 *db, const struct cp_store_migration *m)
{
    char *sql = sqlite3_mprintf("%s INSERT INTO schema_migrations (version, name, applied_at)"
                                " VALUES (%d, %Q, %lld)",
                                m->sql, m->version, m->name, (long long)st_time_ms());
    int rc = sql != NULL ? sq_exec(db, sql) : -ST_EDB;

    sqlite3_free(sql);
    if (rc == 0) {
        st_log(ST_LOG_NOTICE, 0, "sqlite: applied migration %d (%s)", m->version, m->name);
    }
    return rc;
}

/* Applies every migration above the recorded version, all in one transaction. */
static int
sq_migrate(sqlite3 *db, struct st_err *err)
{
    int cur = 0;
    int rc;

    rc = sq_exec(db, "BEGIN IMMEDIATE");
    if (rc < 0) {
        return st_err_set(err, rc, "sqlite_path", "sqlite: cannot start the migration");
    }
    rc = sq_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     " applied_at INTEGER NOT NULL)");
    if (rc == 0) {
        rc = sq_int(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &cur);
    }
    for (size_t i = 0; rc == 0 && i < ST_ARRAY_SIZE(migrations); i++) {
        if (migrations[i].version > cur) {
            rc = sq_apply_migration(db, &migrations[i]);
        }
    }
    if (rc == 0 && cur > migrations[ST_ARRAY_SIZE(migrations) - 1].version) {
        rc = st_err_set(err, -ST_EDB, "sqlite_path",
                        "sqlite: the database schema (version %d) is newer than this "
                        "strait-cp knows",
                        cur);
    }
    if (rc < 0) {
        sq_exec(db, "ROLLBACK");
        if (err != NULL && err->msg[0] == '\0') {
            st_err_set(err, rc, "sqlite_path", "sqlite: migration failed: %s", sqlite3_errmsg(db));
        }
        return rc;
    }
    rc = sq_exec(db, "COMMIT");
    if (rc < 0) {
        return st_err_set(err, rc, "sqlite_path", "sqlite: migration commit failed");
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* the executor */

/* A unique constraint's name from what SQLite says of it: "index 'x'" names x; the columns
 * "t.a, t.b" name t_a_b_key, as Postgres would. */
static void
sq_cons_name(const char *what, struct cp_sql_res *res)
{
    size_t n = 0;

    res->cons_name[0] = '\0';
    if (strncmp(what, "index '", 7) == 0) {
        (void)st_snprintf(res->cons_name, sizeof(res->cons_name), "%.*s",
                          (int)strcspn(what + 7, "'"), what + 7);
        return;
    }
    for (const char *p = what; *p != '\0'; p += strspn(p, ", ")) {
        const char *dot = strchr(p, '.');
        size_t len = strcspn(p, ",");

        if (dot == NULL || dot >= p + len) {
            break;
        }
        if (n == 0) { /* the table, once */
            (void)st_snprintf(res->cons_name, sizeof(res->cons_name), "%.*s", (int)(dot - p), p);
        }
        n = strlen(res->cons_name);
        (void)st_snprintf(res->cons_name + n, sizeof(res->cons_name) - n, "_%.*s",
                          (int)(p + len - dot - 1), dot + 1);
        n = strlen(res->cons_name);
        p += len;
    }
    if (n > 0) {
        (void)st_snprintf(res->cons_name + n, sizeof(res->cons_name) - n, "_key");
    }
}

/* What a failed statement refused, from SQLite's extended code and message ("UNIQUE
 * constraint failed: routes.name" or "...: index 'x'"). Logs what is not a constraint.
 * SQLite does not say which foreign key refused. */
static int
sq_fail(struct sq_store *q, const char *sql, struct cp_sql_res *res)
{
    static const char unique[] = "UNIQUE constraint failed: ";
    int ext = sqlite3_extended_errcode(q->db);
    const char *msg = sqlite3_errmsg(q->db);
    /* ON DELETE RESTRICT is a trigger's RAISE: SQLITE_CONSTRAINT_TRIGGER, not FOREIGNKEY */
    bool fk =
        ext == SQLITE_CONSTRAINT_FOREIGNKEY ||
        (ext == SQLITE_CONSTRAINT_TRIGGER && strcmp(msg, "FOREIGN KEY constraint failed") == 0);
    enum cp_sql_cons_kind cons = ext == SQLITE_CONSTRAINT_PRIMARYKEY ? CP_CONS_PKEY
                                 : ext == SQLITE_CONSTRAINT_UNIQUE   ? CP_CONS_UNIQUE
                                 : fk                                ? CP_CONS_FOREIGN
                                                                     : CP_CONS_NONE;

    if (res != NULL) {
        res->cons = cons;
        (void)st_snprintf(res->msg, sizeof(res->msg), "%s", msg);
        sq_cons_name(strncmp(msg, unique, strlen(unique)) == 0 ? msg + strlen(unique) : "", res);
    }
    return cons == CP_CONS_NONE ? sq_db_err(q->db, sql) : -ST_EDB;
}

/* Hands the current row to fn. */
static int
sq_row(sqlite3_stmt *st, cp_sql_row_fn *fn, void *arg)
{
    struct cp_sql_row row = {.n = sqlite3_column_count(st)};

    ST_ASSERT(row.n <= (int)ST_ARRAY_SIZE(row.col));
    for (int i = 0; i < row.n; i++) {
        row.col[i] = (const char *)sqlite3_column_text(st, i);
        row.len[i] = (size_t)sqlite3_column_bytes(st, i);
    }
    return fn(arg, &row);
}

static int
sq_run(struct cp_store_sql *b, const struct cp_sql *sql, cp_sql_row_fn *fn, void *arg,
       struct cp_sql_res *res)
{
    struct sq_store *q = sq(b);
    sqlite3_stmt *st = NULL;
    int step;
    int rc = 0;

    if (sq_prepare(q->db, sql->text, &st) < 0) {
        return -ST_EDB;
    }
    for (int i = 0; i < sql->n; i++) {
        if (sql->args[i].type == CP_SQL_INT) {
            sqlite3_bind_int64(st, i + 1, sql->args[i].num);
        } else { /* NULL binds SQL NULL; the text outlives the run (cp_sql) */
            sqlite3_bind_text(st, i + 1, sql->args[i].text, -1, SQLITE_STATIC);
        }
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (fn != NULL && (rc = sq_row(st, fn, arg)) != 0) {
            break;
        }
    }
    if (rc > 0 || (rc == 0 && step == SQLITE_DONE)) {
        rc = 0;
        if (res != NULL) {
            res->changes = (uint64_t)sqlite3_changes(q->db);
        }
    } else if (rc == 0) {
        rc = sq_fail(q, sql->text, res);
    }
    sqlite3_finalize(st);
    return rc;
}

static void
sq_close(struct cp_store_sql *b)
{
    sqlite3_close(sq(b)->db);
    free(sq(b));
}

/* ------------------------------------------------------------------------ */
/* the dialect */

static void
sq_tags_match(struct cp_sql *st, const char *tags_json, bool any)
{
    if (any) {
        cp_sql_add(st, "EXISTS (SELECT 1 FROM json_each(tags) WHERE value IN"
                       " (SELECT value FROM json_each(");
        cp_sql_json(st, tags_json);
        cp_sql_add(st, ")))");
        return;
    }
    cp_sql_add(st, "NOT EXISTS (SELECT 1 FROM json_each(");
    cp_sql_json(st, tags_json);
    cp_sql_add(st, ") AS w WHERE w.value NOT IN (SELECT value FROM json_each(tags)))");
}

static void
sq_tags_pairs(struct cp_sql *st, const char *table)
{
    cp_sql_add(st,
               "SELECT t.value AS tag, '%s' AS entity_name, e.id AS entity_id"
               " FROM %s AS e, json_each(e.tags) AS t WHERE t.type = 'text'",
               table, table);
}

/* The set stays in the doc. */
static void
sq_set_member(struct cp_sql *st, const struct cp_rel *r, const struct cp_rel_set *set,
              const char *ref_id)
{
    cp_sql_add(st,
               "SELECT id FROM %s WHERE EXISTS (SELECT 1 FROM json_each(%s.doc, '$.%s')"
               " WHERE value = ",
               r->table, r->table, set->field);
    cp_sql_text(st, ref_id);
    cp_sql_add(st, ") ORDER BY id");
}

static const struct cp_store_dialect sq_dialect = {
    .ph = '?',
    .begin_write = "BEGIN IMMEDIATE",
    .begin_snapshot = "BEGIN", /* WAL: a read transaction sees one snapshot */
    .collate = "",
    .run = sq_run,
    .close = sq_close,
    .tags_match = sq_tags_match,
    .tags_pairs = sq_tags_pairs,
    .set_member = sq_set_member,
};

/* ------------------------------------------------------------------------ */
/* open and close */

static const struct cp_store_ops sq_ops = {CP_STORE_SQL_OPS("sqlite")};

#define SQ_SETUP "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = "

int
cp_store_sqlite_open(const char *path, struct cp_store **out, struct st_err *err)
{
    return cp_store_sqlite_open_flags(path, 0, out, err);
}

int
cp_store_sqlite_open_flags(const char *path, unsigned flags, struct cp_store **out,
                           struct st_err *err)
{
    struct sq_store *q;
    int rc;

    *out = NULL;
    if (path == NULL) {
        return st_err_set(err, -ST_ECONF, "sqlite_path", "sqlite_path is not set");
    }
    q = st_xcalloc(1, sizeof(*q));
    cp_store__init(&q->sql, &sq_ops, &sq_dialect);
    rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        rc = st_err_set(err, -ST_EDB, "sqlite_path", "sqlite: cannot open %s: %s", path,
                        q->db != NULL ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_busy_timeout(q->db, 5000);
    /* In WAL mode NORMAL survives a crash of the process but may lose the last commits to a
     * power loss or an OS crash; FULL syncs the WAL at every commit (sqlite_synchronous). */
    rc =
        sq_exec(q->db, (flags & CP_STORE_SQLITE_F_SYNC_FULL) ? SQ_SETUP "FULL" : SQ_SETUP "NORMAL");
    if (rc < 0) {
        st_err_set(err, rc, "sqlite_path", "sqlite: cannot set up %s: %s", path,
                   sqlite3_errmsg(q->db));
        goto out;
    }
    rc = sq_migrate(q->db, err);
out:
    if (rc < 0) {
        sqlite3_close(q->db);
        free(q);
        return rc;
    }
    *out = &q->sql.base;
    return 0;
}

int
cp_store_sqlite_synchronous(struct cp_store *s)
{
    int v = 0;
    int rc = sq_int(sq((struct cp_store_sql *)s)->db, "PRAGMA synchronous", &v);

    return rc < 0 ? rc : v;
}
