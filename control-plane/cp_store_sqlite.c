/* The SQLite store: the embedded default backend of cp_store. The only file that
 * includes sqlite3.h.
 *
 * One table per entity with columns for what the database must enforce or search
 * (id, name unique, created_at in ms, updated_at, foreign keys: routes.service_id and
 * services.client_certificate_id ON DELETE RESTRICT, snis.certificate_id ON DELETE
 * CASCADE; ca_certificates.cert_digest unique; tags) and the whole entity as JSON text in
 * `doc`. A service's ca_certificates stay in its doc (checked with json_each). The config version
 * lives in `meta` and is bumped by the commit of every transaction that wrote. WAL mode, so the
 * snapshot builder's handle reads while the admin API writes. The schema is versioned in
 * `schema_migrations` and migrated at open. GET /tags reads the `tags` columns (JSON
 * arrays) through json_each. */
#include "cp_store.h"
#include "cp_store_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_log.h"
#include "st_schema.h"
#include "st_util.h"

struct sq_store {
    struct cp_store base; /* first: cp_store_sqlite casts */
    sqlite3 *db;
    bool in_tx;
    bool dirty;                  /* the open transaction wrote */
    struct cp_store_probe probe; /* for the shared checks: ctx is this handle */
};

struct sq_migration {
    int version;
    const char *name;
    const char *sql;
};

static const struct sq_migration migrations[] = {
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
};

static struct sq_store *
sq(struct cp_store *s)
{
    return (struct sq_store *)s;
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

static void
sq_bind_str(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL) {
        sqlite3_bind_null(st, i);
    } else {
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    }
}

/* ------------------------------------------------------------------------ */
/* migrations */

static int
sq_schema_version(sqlite3 *db, int *version)
{
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     " applied_at INTEGER NOT NULL)");
    if (rc < 0) {
        return rc;
    }
    rc = sq_prepare(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &st);
    if (rc < 0) {
        return rc;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return sq_db_err(db, "schema_migrations");
    }
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int
sq_apply_migration(sqlite3 *db, const struct sq_migration *m)
{
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_exec(db, m->sql);
    if (rc < 0) {
        return rc;
    }
    rc = sq_prepare(db,
                    "INSERT INTO schema_migrations (version, name, applied_at)"
                    " VALUES (?, ?, ?)",
                    &st);
    if (rc < 0) {
        return rc;
    }
    sqlite3_bind_int(st, 1, m->version);
    sq_bind_str(st, 2, m->name);
    sqlite3_bind_int64(st, 3, st_time_ms());
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sq_db_err(db, "schema_migrations");
    sqlite3_finalize(st);
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
    rc = sq_schema_version(db, &cur);
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
/* transactions */

static int
sq_begin(struct cp_store *s, bool write)
{
    struct sq_store *q = sq(s);
    int rc;

    ST_ASSERT(!q->in_tx);
    rc = sq_exec(q->db, write ? "BEGIN IMMEDIATE" : "BEGIN");
    if (rc == 0) {
        q->in_tx = true;
        q->dirty = false;
    }
    return rc;
}

static void
sq_rollback(struct cp_store *s)
{
    struct sq_store *q = sq(s);

    if (q->in_tx) {
        sq_exec(q->db, "ROLLBACK");
    }
    q->in_tx = false;
    q->dirty = false;
}

static int
sq_commit(struct cp_store *s)
{
    struct sq_store *q = sq(s);
    int rc = 0;

    ST_ASSERT(q->in_tx);
    if (q->dirty) {
        rc = sq_exec(q->db, "UPDATE meta SET value = value + 1 WHERE key = 'config_version'");
    }
    if (rc == 0) {
        rc = sq_exec(q->db, "COMMIT");
    }
    if (rc < 0) {
        sq_rollback(s);
        return rc;
    }
    q->in_tx = false;
    q->dirty = false;
    return 0;
}

static int
sq_version(struct cp_store *s, uint64_t *version)
{
    struct sq_store *q = sq(s);
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prepare(q->db, "SELECT value FROM meta WHERE key = 'config_version'", &st);
    if (rc < 0) {
        return rc;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        *version = (uint64_t)sqlite3_column_int64(st, 0);
    } else {
        rc = sq_db_err(q->db, "config_version");
    }
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* reads */

static json_t *
sq_row_doc(sqlite3_stmt *st, int col)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    json_error_t jerr;

    if (text == NULL) {
        return NULL;
    }
    return json_loads((const char *)text, 0, &jerr);
}

static int
sq_get_by(struct sq_store *q, const char *table, const char *col, const char *key, json_t **out)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    int rc;

    st_snprintf(sql, sizeof(sql), "SELECT doc FROM %s WHERE %s = ?", table, col);
    rc = sq_prepare(q->db, sql, &st);
    if (rc < 0) {
        return rc;
    }
    sq_bind_str(st, 1, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sq_row_doc(st, 0);
        rc = *out != NULL ? 0 : sq_db_err(q->db, "corrupt doc");
    } else if (rc == SQLITE_DONE) {
        rc = -ST_ENOTFOUND;
    } else {
        rc = sq_db_err(q->db, sql);
    }
    sqlite3_finalize(st);
    return rc;
}

static int
sq_get(struct cp_store *s, enum st_entity_kind k, const char *id_or_name, json_t **out)
{
    struct sq_store *q = sq(s);
    const char *table = cp_store_kinds[k].table;
    int rc = -ST_ENOTFOUND;

    *out = NULL;
    if (st_schema_is_uuid(id_or_name)) {
        rc = sq_get_by(q, table, "id", id_or_name, out);
    }
    if (rc == -ST_ENOTFOUND && cp_store_kinds[k].has_name) {
        rc = sq_get_by(q, table, "name", id_or_name, out);
    }
    return rc;
}

/* Whether a row matches `col = val` (and id != not_id when given). */
static int
sq_exists(void *ctx, const char *table, const char *col, const char *val, const char *not_id)
{
    struct sq_store *q = ctx;
    char sql[160];
    sqlite3_stmt *st = NULL;
    int rc;

    st_snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE %s = ? AND id IS NOT ?", table, col);
    rc = sq_prepare(q->db, sql, &st);
    if (rc < 0) {
        return rc;
    }
    sq_bind_str(st, 1, val);
    sq_bind_str(st, 2, not_id);
    rc = sqlite3_step(st);
    rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sq_db_err(q->db, sql);
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* writes */

static int
sq_constraint(struct sq_store *q, enum st_entity_kind k, int ext, struct st_err *err)
{
    const struct cp_store_kind *d = &cp_store_kinds[k];

    switch (ext) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return st_err_set(err, -ST_EPKEY, "id", "%s", sqlite3_errmsg(q->db));
    case SQLITE_CONSTRAINT_UNIQUE:
        return st_err_set(err, -ST_EUNIQUE, d->has_name ? "name" : d->uniq_col, "%s",
                          sqlite3_errmsg(q->db));
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return st_err_set(err, -ST_EFOREIGN, d->fk_field != NULL ? d->fk_field : "id", "%s",
                          sqlite3_errmsg(q->db));
    default:
        return st_err_set(err, sq_db_err(q->db, "write"), NULL, "database error");
    }
}

static int
sq_write(struct cp_store *s, enum st_entity_kind k, const json_t *obj, bool insert,
         struct st_err *err)
{
    struct sq_store *q = sq(s);
    struct cp_store_cols c;
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc;

    ST_ASSERT(q->in_tx && k < ST_ENT__COUNT);
    cp_store_cols_from(k, obj, &c);
    if (c.id == NULL || c.doc == NULL) {
        rc = st_err_set(err, -ST_ESCHEMA, "id", "missing id");
        goto out;
    }
    rc = cp_store_check_write(&q->probe, k, obj, &c, insert, err);
    if (rc < 0) {
        goto out;
    }
    rc = cp_store_write_sql(k, insert, '?', sql, sizeof(sql));
    if (rc == 0) {
        rc = sq_prepare(q->db, sql, &st);
    }
    if (rc < 0) {
        goto out;
    }
    sq_bind_str(st, 1, c.name);
    sqlite3_bind_int64(st, 2, c.created_at);
    sqlite3_bind_int64(st, 3, c.updated_at);
    sq_bind_str(st, 4, c.tags);
    sq_bind_str(st, 5, c.doc);
    sq_bind_str(st, 6, c.id);
    if (sqlite3_bind_parameter_count(st) >= 7) {
        sq_bind_str(st, 7, c.fk_id);
    }
    if (sqlite3_bind_parameter_count(st) >= 8) {
        sq_bind_str(st, 8, c.uniq);
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        rc = 0;
        if (!insert && sqlite3_changes(q->db) == 0) {
            rc = -ST_ENOTFOUND;
        }
    } else {
        rc = sq_constraint(q, k, sqlite3_extended_errcode(q->db), err);
    }
    if (rc == 0) {
        q->dirty = true;
    }
out:
    sqlite3_finalize(st);
    cp_store_cols_fini(&c);
    return rc;
}

/* The first service (by id) whose ca_certificates holds ca_id: 1 and sid filled, 0 when
 * none, or -ST_EDB. */
static int
sq_ca_user(void *ctx, const char *ca_id, char sid[64])
{
    struct sq_store *q = ctx;
    static const char sql[] =
        "SELECT id FROM services WHERE EXISTS (SELECT 1 FROM"
        " json_each(services.doc, '$.ca_certificates') WHERE value = ?) ORDER BY id LIMIT 1";
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prepare(q->db, sql, &st);
    if (rc < 0) {
        return rc;
    }
    sq_bind_str(st, 1, ca_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);

        st_snprintf(sid, 64, "%s", v != NULL ? (const char *)v : "");
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : sq_db_err(q->db, sql);
    }
    sqlite3_finalize(st);
    return rc;
}

static int
sq_remove(struct cp_store *s, enum st_entity_kind k, const char *id, struct st_err *err)
{
    struct sq_store *q = sq(s);
    char sql[96];
    sqlite3_stmt *st = NULL;
    int rc;

    ST_ASSERT(q->in_tx && k < ST_ENT__COUNT);
    rc = cp_store_check_refs(&q->probe, k, id, err);
    if (rc < 0) {
        return rc;
    }
    st_snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = ?", cp_store_kinds[k].table);
    rc = sq_prepare(q->db, sql, &st);
    if (rc < 0) {
        return rc;
    }
    sq_bind_str(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        rc = 0;
        if (sqlite3_changes(q->db) > 0) {
            q->dirty = true;
        }
    } else if (sqlite3_extended_errcode(q->db) == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = st_err_set(err, -ST_EREFERENCED, k == ST_ENT_SERVICE ? "routes" : "services", "%s",
                        k == ST_ENT_SERVICE ? "routes" : "services");
    } else {
        rc = sq_db_err(q->db, sql);
    }
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* paging */

/* Builds the SELECT of one page; binds follow the order of the clauses. */
static int
sq_page_sql(enum st_entity_kind k, const struct cp_page_opts *o, char *sql, size_t size)
{
    size_t n = 0;
    size_t ntags = o->tags != NULL ? json_array_size(o->tags) : 0;
    int rc;

    rc = st_snprintf(sql, size, "SELECT id, doc FROM %s WHERE 1", cp_store_kinds[k].table);
    for (int step = 0; rc == 0 && step < 3; step++) {
        const char *clause = NULL;

        n = strlen(sql);
        if (step == 0 && o->offset != NULL) {
            clause = " AND id > ?";
        } else if (step == 1 && o->parent_id != NULL && k == ST_ENT_ROUTE) {
            clause = " AND service_id = ?";
        } else if (step == 1 && o->parent_id != NULL && k == ST_ENT_SNI) {
            clause = " AND certificate_id = ?";
        } else if (step == 2 && ntags > 0 && o->tags_any) {
            clause = " AND EXISTS (SELECT 1 FROM json_each(tags) WHERE value IN"
                     " (SELECT value FROM json_each(?)))";
        } else if (step == 2 && ntags > 0) {
            clause = " AND NOT EXISTS (SELECT 1 FROM json_each(?) AS w WHERE w.value NOT IN"
                     " (SELECT value FROM json_each(tags)))";
        }
        if (clause != NULL) {
            rc = st_snprintf(sql + n, size - n, "%s", clause);
        }
    }
    n = strlen(sql);
    if (rc == 0) {
        rc = st_snprintf(sql + n, size - n, " ORDER BY id LIMIT ?");
    }
    return rc;
}

static int
sq_page(struct cp_store *s, enum st_entity_kind k, const struct cp_page_opts *o, json_t **data,
        char **next_offset, struct st_err *err)
{
    struct sq_store *q = sq(s);
    char sql[512];
    char *tags_text = NULL;
    sqlite3_stmt *st = NULL;
    json_t *arr = NULL;
    int i = 1;
    int rc;

    *data = NULL;
    *next_offset = NULL;
    if (o->offset != NULL && !st_schema_is_uuid(o->offset)) {
        return st_err_set(err, -ST_EPARSE, "offset", "'%s' is not a valid offset: bad offset",
                          o->offset);
    }
    if (sq_page_sql(k, o, sql, sizeof(sql)) < 0) {
        return -ST_EDB;
    }
    rc = sq_prepare(q->db, sql, &st);
    if (rc < 0) {
        return rc;
    }
    if (o->offset != NULL) {
        sq_bind_str(st, i++, o->offset);
    }
    if (o->parent_id != NULL && (k == ST_ENT_ROUTE || k == ST_ENT_SNI)) {
        sq_bind_str(st, i++, o->parent_id);
    }
    if (o->tags != NULL && json_array_size(o->tags) > 0) {
        tags_text = json_dumps(o->tags, JSON_COMPACT);
        sq_bind_str(st, i++, tags_text);
    }
    sqlite3_bind_int64(st, i, (sqlite3_int64)o->size + 1);
    arr = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *doc;

        if (json_array_size(arr) == o->size) {
            /* one more row than asked: there is a next page after the last one kept */
            json_t *last = json_array_get(arr, o->size - 1);
            *next_offset = st_xstrdup(json_string_value(json_object_get(last, "id")));
            break;
        }
        doc = sq_row_doc(st, 1);
        if (doc != NULL) {
            json_array_append_new(arr, doc);
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = sq_db_err(q->db, sql);
        json_decref(arr);
        free(*next_offset);
        *next_offset = NULL;
    } else {
        rc = 0;
        *data = arr;
    }
    sqlite3_finalize(st);
    free(tags_text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the consistent read for the snapshot */

static int
sq_read_table(struct sq_store *q, struct cp_store_cache *c, enum st_entity_kind k, json_t **out)
{
    char sql[96];
    sqlite3_stmt *st = NULL;
    json_t *arr;
    int rc;

    st_snprintf(sql, sizeof(sql), "SELECT id, doc FROM %s ORDER BY id", cp_store_kinds[k].table);
    rc = sq_prepare(q->db, sql, &st);
    if (rc < 0) {
        return rc;
    }
    arr = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *text = (const char *)sqlite3_column_text(st, 1);
        json_t *doc = id != NULL && text != NULL
                          ? cp_store_cache_doc(c, k, id, text, (size_t)sqlite3_column_bytes(st, 1))
                          : NULL;

        if (doc == NULL) {
            rc = SQLITE_CORRUPT;
            break;
        }
        json_array_append_new(arr, doc);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return sq_db_err(q->db, sql);
    }
    *out = arr;
    return 0;
}

static int
sq_read_all(struct cp_store *s, struct cp_store_cache *c, uint64_t *version,
            json_t *lists[ST_ENT__COUNT])
{
    struct sq_store *q = sq(s);
    int rc;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        lists[k] = NULL;
    }
    rc = sq_begin(s, false);
    if (rc < 0) {
        return rc;
    }
    rc = sq_version(s, version);
    for (int k = 0; rc == 0 && k < ST_ENT__COUNT; k++) {
        rc = sq_read_table(q, c, (enum st_entity_kind)k, &lists[k]);
    }
    sq_rollback(s); /* read-only: nothing to commit */
    if (rc < 0) {
        for (int k = 0; k < ST_ENT__COUNT; k++) {
            json_decref(lists[k]);
            lists[k] = NULL;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* clear and count */

static int
sq_clear(struct cp_store *s)
{
    struct sq_store *q = sq(s);
    char sql[64];
    int rc;

    ST_ASSERT(q->in_tx);
    for (size_t i = 0; i < ST_ARRAY_SIZE(cp_store_clear_order); i++) {
        st_snprintf(sql, sizeof(sql), "DELETE FROM %s",
                    cp_store_kinds[cp_store_clear_order[i]].table);
        rc = sq_exec(q->db, sql);
        if (rc < 0) {
            return rc;
        }
        if (sqlite3_changes(q->db) > 0) {
            q->dirty = true;
        }
    }
    return 0;
}

static int
sq_count(struct cp_store *s, enum st_entity_kind k, uint64_t *n)
{
    struct sq_store *q = sq(s);
    char sql[64];
    sqlite3_stmt *st = NULL;
    int rc;

    ST_ASSERT(k < ST_ENT__COUNT);
    st_snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", cp_store_kinds[k].table);
    rc = sq_prepare(q->db, sql, &st);
    if (rc < 0) {
        return rc;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        *n = (uint64_t)sqlite3_column_int64(st, 0);
    } else {
        rc = sq_db_err(q->db, sql);
    }
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* tags */

/* Every (tag, entity) pair of every table, one page of them. Binds: ?1 the tag or NULL,
 * ?2..?4 the offset's (tag, entity_name, entity_id) or NULL, ?5 the limit. */
static int
sq_tags_sql(char *sql, size_t size)
{
    size_t n;
    int rc;

    rc = st_snprintf(sql, size, "SELECT tag, entity_name, entity_id FROM (");
    for (int k = 0; rc == 0 && k < ST_ENT__COUNT; k++) {
        n = strlen(sql);
        rc = st_snprintf(sql + n, size - n,
                         "%sSELECT t.value AS tag, '%s' AS entity_name, e.id AS entity_id"
                         " FROM %s AS e, json_each(e.tags) AS t WHERE t.type = 'text'",
                         k > 0 ? " UNION ALL " : "", cp_store_kinds[k].table,
                         cp_store_kinds[k].table);
    }
    n = strlen(sql);
    if (rc == 0) {
        rc = st_snprintf(sql + n, size - n,
                         ") WHERE (?1 IS NULL OR tag = ?1)"
                         " AND (?2 IS NULL OR (tag, entity_name, entity_id) > (?2, ?3, ?4))"
                         " ORDER BY tag, entity_name, entity_id LIMIT ?5");
    }
    return rc;
}

/* Runs the prepared page query into *data; *next_offset when a row beyond size came. */
static int
sq_tags_rows(struct sq_store *q, sqlite3_stmt *st, size_t size, json_t **data, char **next_offset)
{
    json_t *arr = json_array();
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *tag = (const char *)sqlite3_column_text(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *id = (const char *)sqlite3_column_text(st, 2);

        if (json_array_size(arr) == size) {
            json_t *last = json_array_get(arr, size - 1);

            *next_offset =
                cp_store_tags_offset_make(json_string_value(json_object_get(last, "tag")),
                                          json_string_value(json_object_get(last, "entity_name")),
                                          json_string_value(json_object_get(last, "entity_id")));
            break;
        }
        if (tag != NULL && name != NULL && id != NULL) {
            json_array_append_new(
                arr, json_pack("{s:s,s:s,s:s}", "entity_name", name, "entity_id", id, "tag", tag));
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(arr);
        free(*next_offset);
        *next_offset = NULL;
        return sq_db_err(q->db, "tags");
    }
    *data = arr;
    return 0;
}

static int
sq_tags_page(struct cp_store *s, const char *tag, size_t size, const char *offset, json_t **data,
             char **next_offset, struct st_err *err)
{
    struct sq_store *q = sq(s);
    char sql[1536];
    sqlite3_stmt *st = NULL;
    json_t *off = NULL;
    int rc;

    *data = NULL;
    *next_offset = NULL;
    ST_ASSERT(size >= 1 && size <= CP_PAGE_SIZE_MAX);
    if (offset != NULL) {
        off = cp_store_tags_offset_parse(offset);
        if (off == NULL) {
            return st_err_set(err, -ST_EPARSE, "offset", "'%s' is not a valid offset: bad offset",
                              offset);
        }
    }
    rc = sq_tags_sql(sql, sizeof(sql));
    if (rc < 0) {
        json_decref(off);
        return -ST_EDB;
    }
    rc = sq_prepare(q->db, sql, &st);
    if (rc == 0) {
        sq_bind_str(st, 1, tag);
        for (int i = 0; i < 3; i++) {
            sq_bind_str(st, 2 + i, json_string_value(json_array_get(off, (size_t)i)));
        }
        sqlite3_bind_int64(st, 5, (sqlite3_int64)size + 1);
        rc = sq_tags_rows(q, st, size, data, next_offset);
    }
    sqlite3_finalize(st);
    json_decref(off);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* open and close */

static void
sq_close(struct cp_store *s)
{
    struct sq_store *q = sq(s);

    if (q->in_tx) {
        sq_rollback(s);
    }
    sqlite3_close(q->db);
    free(q);
}

static const struct cp_store_ops sq_ops = {
    .name = "sqlite",
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .get = sq_get,
    .write = sq_write,
    .remove = sq_remove,
    .page = sq_page,
    .read_all = sq_read_all,
    .version = sq_version,
    .clear = sq_clear,
    .count = sq_count,
    .tags_page = sq_tags_page,
    .close = sq_close,
};

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
    q->base.ops = &sq_ops;
    q->probe.exists = sq_exists;
    q->probe.ca_user = sq_ca_user;
    q->probe.ctx = q;
    rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        st_err_set(err, -ST_EDB, "sqlite_path", "sqlite: cannot open %s: %s", path,
                   q->db != NULL ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
        rc = -ST_EDB;
        goto out;
    }
    sqlite3_busy_timeout(q->db, 5000);
    rc = sq_exec(q->db, "PRAGMA journal_mode = WAL");
    if (rc == 0) {
        rc = sq_exec(q->db, "PRAGMA foreign_keys = ON");
    }
    if (rc == 0) {
        /* In WAL mode NORMAL survives a crash of the process but may lose the last
         * commits to a power loss or an OS crash; FULL syncs the WAL at every commit
         * (sqlite_synchronous). */
        rc = sq_exec(q->db, (flags & CP_STORE_SQLITE_F_SYNC_FULL) ? "PRAGMA synchronous = FULL"
                                                                  : "PRAGMA synchronous = NORMAL");
    }
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
    *out = &q->base;
    return 0;
}

int
cp_store_sqlite_synchronous(struct cp_store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(sq(s)->db, "PRAGMA synchronous", &st);

    if (rc < 0) {
        return rc;
    }
    rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -ST_EDB;
    sqlite3_finalize(st);
    return rc;
}
