/* The Postgres store: the backend of cp_store that several CPs share. One handle is one
 * libpq connection (cp_store_pool.c keeps several). The tables are those of
 * cp_store_pg_schema.c; the statements mirror cp_store_sqlite.c.
 *
 * Writers take one advisory transaction lock, so writes from every CP serialize like
 * SQLite's single writer and the config version (bumped by each commit that wrote) orders
 * them; the unique and foreign-key constraints hold in the database as well, in case a
 * writer skipped the lock. Each commit that wrote NOTIFYs CP_PG_CHANNEL with the new
 * version, so the other CPs rebuild at once (cp_pg_listen.c). A connection that broke is
 * reset at the next operation outside a transaction; while the server is away the calls
 * return -ST_EDBDOWN. */
#include "cp_store.h"

#include <stdlib.h>
#include <string.h>

#include "cp_pg.h"
#include "cp_store_int.h"
#include "st_err.h"
#include "st_log.h"
#include "st_schema.h"
#include "st_util.h"

/* pg_advisory_xact_lock key of the one writer at a time ("Strw"). */
#define PG_LOCK_WRITER 0x53747277

/* Parameter types (pg_type oids), so that a statement may leave a parameter unused. */
#define OID_INT8  20
#define OID_TEXT  25
#define OID_JSONB 3802

struct pg_store {
    struct cp_store base; /* first: pg() casts */
    PGconn *conn;
    bool in_tx;
    bool dirty;                  /* the open transaction wrote */
    struct cp_store_probe probe; /* for the shared checks: ctx is this handle */
    bool down;                   /* logged that the server is away, until it is back */
};

static struct pg_store *
pg(struct cp_store *s)
{
    return (struct pg_store *)s;
}

/* ------------------------------------------------------------------------ */
/* statements */

/* The error of a failed statement: -ST_EDBDOWN when the server is away, else -ST_EDB. */
static int
pg_fail(struct pg_store *q, PGresult *r, const char *what)
{
    if (cp_pg_is_down(q->conn, r)) {
        if (!q->down) {
            st_log(ST_LOG_ERR, 0, "postgres: the database is unreachable: %s",
                   PQerrorMessage(q->conn));
            q->down = true;
        }
        return -ST_EDBDOWN;
    }
    st_log(ST_LOG_ERR, 0, "postgres: %s: %s", what,
           r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(q->conn));
    return -ST_EDB;
}

/* Outside a transaction, a connection that broke is reset; inside one it cannot be. */
static int
pg_ready(struct pg_store *q)
{
    if (PQstatus(q->conn) == CONNECTION_OK) {
        return 0;
    }
    if (q->in_tx) {
        return -ST_EDBDOWN;
    }
    PQreset(q->conn);
    if (PQstatus(q->conn) != CONNECTION_OK) {
        return pg_fail(q, NULL, "reconnect");
    }
    if (q->down) {
        st_log(ST_LOG_NOTICE, 0, "postgres: the database is reachable again");
        q->down = false;
    }
    return 0;
}

/* Runs sql with n text parameters of the given types (NULL: all text). Returns 0 with *res
 * (PQclear it) or a negative code. Outside a transaction, a statement that finds the
 * connection broken is retried once on a new one (the server may have restarted). */
static int
pg_run(struct pg_store *q, const char *sql, int n, const char *const *params, const Oid *types,
       PGresult **res)
{
    Oid text_types[16];

    *res = NULL;
    ST_ASSERT(n <= 16);
    if (types == NULL) {
        for (int i = 0; i < n; i++) {
            text_types[i] = OID_TEXT;
        }
        types = text_types;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = pg_ready(q);
        PGresult *r;
        ExecStatusType st;

        if (rc < 0) {
            return rc;
        }
        r = PQexecParams(q->conn, sql, n, types, params, NULL, NULL, 0);
        st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            *res = r;
            return 0;
        }
        if (!q->in_tx && attempt == 0 && PQstatus(q->conn) != CONNECTION_OK) {
            PQclear(r);
            continue;
        }
        *res = r; /* the caller reads the SQLSTATE, then clears */
        return pg_fail(q, r, sql);
    }
    return -ST_EDBDOWN;
}

/* pg_run for statements whose result only matters as success. */
static int
pg_do(struct pg_store *q, const char *sql, int n, const char *const *params)
{
    PGresult *r = NULL;
    int rc = pg_run(q, sql, n, params, NULL, &r);

    PQclear(r);
    return rc;
}

static json_t *
pg_doc(PGresult *r, int row, int col)
{
    json_error_t jerr;

    if (PQgetisnull(r, row, col)) {
        return NULL;
    }
    return json_loads(PQgetvalue(r, row, col), 0, &jerr);
}

/* ------------------------------------------------------------------------ */
/* transactions */

static int
pg_begin(struct cp_store *s, bool write)
{
    struct pg_store *q = pg(s);
    char lock[64];
    int rc;

    ST_ASSERT(!q->in_tx);
    rc = pg_do(q, "BEGIN", 0, NULL);
    if (rc < 0) {
        return rc;
    }
    q->in_tx = true;
    q->dirty = false;
    if (write) {
        st_snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)", PG_LOCK_WRITER);
        rc = pg_do(q, lock, 0, NULL);
        if (rc < 0) {
            pg_do(q, "ROLLBACK", 0, NULL);
            q->in_tx = false;
        }
    }
    return rc;
}

static void
pg_rollback(struct cp_store *s)
{
    struct pg_store *q = pg(s);

    if (q->in_tx && PQstatus(q->conn) == CONNECTION_OK) {
        pg_do(q, "ROLLBACK", 0, NULL);
    }
    q->in_tx = false;
    q->dirty = false;
}

static int
pg_commit(struct cp_store *s)
{
    struct pg_store *q = pg(s);
    PGresult *r = NULL;
    int rc = 0;

    ST_ASSERT(q->in_tx);
    if (q->dirty) {
        rc = pg_run(q,
                    "UPDATE meta SET value = value + 1 WHERE key = 'config_version'"
                    " RETURNING value",
                    0, NULL, NULL, &r);
        if (rc == 0) {
            const char *v = PQgetvalue(r, 0, 0);

            /* delivered to the listeners when (and only if) the transaction commits */
            rc = pg_do(q, "SELECT pg_notify('" CP_PG_CHANNEL "', $1)", 1, &v);
        }
        PQclear(r);
    }
    if (rc == 0) {
        rc = pg_do(q, "COMMIT", 0, NULL);
    }
    if (rc < 0) {
        pg_rollback(s);
        return rc;
    }
    q->in_tx = false;
    q->dirty = false;
    return 0;
}

static int
pg_version(struct cp_store *s, uint64_t *version)
{
    struct pg_store *q = pg(s);
    PGresult *r = NULL;
    int rc;

    rc = pg_run(q, "SELECT value FROM meta WHERE key = 'config_version'", 0, NULL, NULL, &r);
    if (rc == 0 && PQntuples(r) == 1) {
        *version = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    } else if (rc == 0) {
        rc = pg_fail(q, r, "config_version");
    }
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* reads */

static int
pg_get_by(struct pg_store *q, const char *table, const char *col, const char *key, json_t **out)
{
    char sql[128];
    PGresult *r = NULL;
    int rc;

    st_snprintf(sql, sizeof(sql), "SELECT doc FROM %s WHERE %s = $1", table, col);
    rc = pg_run(q, sql, 1, &key, NULL, &r);
    if (rc == 0 && PQntuples(r) == 0) {
        rc = -ST_ENOTFOUND;
    } else if (rc == 0) {
        *out = pg_doc(r, 0, 0);
        rc = *out != NULL ? 0 : pg_fail(q, r, "corrupt doc");
    }
    PQclear(r);
    return rc;
}

static int
pg_get(struct cp_store *s, enum st_entity_kind k, const char *id_or_name, json_t **out)
{
    struct pg_store *q = pg(s);
    const char *table = cp_store_kinds[k].table;
    int rc = -ST_ENOTFOUND;

    *out = NULL;
    if (st_schema_is_uuid(id_or_name)) {
        rc = pg_get_by(q, table, "id", id_or_name, out);
    }
    if (rc == -ST_ENOTFOUND && cp_store_kinds[k].has_name) {
        rc = pg_get_by(q, table, "name", id_or_name, out);
    }
    return rc;
}

/* Whether a row matches `col = val` (and id is not not_id when given): 1, 0 or < 0. */
static int
pg_exists(void *ctx, const char *table, const char *col, const char *val, const char *not_id)
{
    struct pg_store *q = ctx;
    const char *params[2] = {val, not_id};
    char sql[160];
    PGresult *r = NULL;
    int rc;

    st_snprintf(sql, sizeof(sql),
                "SELECT 1 FROM %s WHERE %s = $1 AND id IS DISTINCT FROM $2 LIMIT 1", table, col);
    rc = pg_run(q, sql, 2, params, NULL, &r);
    if (rc == 0) {
        rc = PQntuples(r) > 0 ? 1 : 0;
    }
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* writes */

/* Maps a constraint the database enforced (a racing writer) to Kong's errors. */
static int
pg_constraint(enum st_entity_kind k, PGresult *r, int rc, bool del, struct st_err *err)
{
    const struct cp_store_kind *d = &cp_store_kinds[k];
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = r != NULL ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (msg == NULL) {
        msg = "constraint violated";
    }
    if (rc == -ST_EDBDOWN || state == NULL) {
        return st_err_set(err, rc, NULL, "database unreachable");
    }
    if (strcmp(state, "23505") == 0) {
        if (cons != NULL && strstr(cons, "_pkey") != NULL) {
            return st_err_set(err, -ST_EPKEY, "id", "%s", msg);
        }
        return st_err_set(err, -ST_EUNIQUE, d->has_name ? "name" : d->uniq_col, "%s", msg);
    }
    if (strcmp(state, "23503") == 0 && del) {
        return st_err_set(err, -ST_EREFERENCED, k == ST_ENT_SERVICE ? "routes" : "services", "%s",
                          k == ST_ENT_SERVICE ? "routes" : "services");
    }
    if (strcmp(state, "23503") == 0) {
        bool cas = cons != NULL && strstr(cons, "services_ca_certificates") != NULL;

        return st_err_set(err, -ST_EFOREIGN,
                          cas                   ? "ca_certificates"
                          : d->fk_field != NULL ? d->fk_field
                                                : "id",
                          "%s", msg);
    }
    return st_err_set(err, rc, NULL, "database error");
}

/* A service's ca_certificates as rows, so the database refuses to delete one in use. */
static int
pg_write_cas(struct pg_store *q, const json_t *obj, const char *id, struct st_err *err)
{
    const json_t *cas = json_object_get(obj, "ca_certificates");
    char *text = NULL;
    const char *params[2] = {id, NULL};
    PGresult *r = NULL;
    int rc;

    rc = pg_do(q, "DELETE FROM services_ca_certificates WHERE service_id = $1", 1, params);
    if (rc < 0 || json_array_size(cas) == 0) {
        return rc;
    }
    text = json_dumps(cas, JSON_COMPACT);
    params[1] = text;
    rc = pg_run(q,
                "INSERT INTO services_ca_certificates (service_id, ca_certificate_id)"
                " SELECT DISTINCT $1, jsonb_array_elements_text($2::jsonb)",
                2, params, NULL, &r);
    if (rc < 0) {
        rc = pg_constraint(ST_ENT_SERVICE, r, rc, false, err);
    }
    PQclear(r);
    free(text);
    return rc;
}

static int
pg_write(struct cp_store *s, enum st_entity_kind k, const json_t *obj, bool insert,
         struct st_err *err)
{
    static const Oid types[8] = {OID_TEXT, OID_INT8, OID_INT8, OID_JSONB,
                                 OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT};
    struct pg_store *q = pg(s);
    struct cp_store_cols c;
    char created[24];
    char updated[24];
    const char *params[8];
    char sql[512];
    PGresult *r = NULL;
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
    rc = cp_store_write_sql(k, insert, '$', sql, sizeof(sql));
    if (rc < 0) {
        goto out;
    }
    st_snprintf(created, sizeof(created), "%lld", (long long)c.created_at);
    st_snprintf(updated, sizeof(updated), "%lld", (long long)c.updated_at);
    params[0] = c.name;
    params[1] = created;
    params[2] = updated;
    params[3] = c.tags;
    params[4] = c.doc;
    params[5] = c.id;
    params[6] = c.fk_id;
    params[7] = c.uniq;
    rc = pg_run(q, sql, 8, params, types, &r);
    if (rc < 0) {
        rc = pg_constraint(k, r, rc, false, err);
        goto out;
    }
    if (!insert && strcmp(PQcmdTuples(r), "0") == 0) {
        rc = -ST_ENOTFOUND;
        goto out;
    }
    if (k == ST_ENT_SERVICE) {
        rc = pg_write_cas(q, obj, c.id, err);
    }
    if (rc == 0) {
        q->dirty = true;
    }
out:
    PQclear(r);
    cp_store_cols_fini(&c);
    return rc;
}

/* The first service (by id) whose ca_certificates holds ca_id: 1 and sid filled, 0 when
 * none, or < 0. */
static int
pg_ca_user(void *ctx, const char *ca_id, char sid[64])
{
    struct pg_store *q = ctx;
    PGresult *r = NULL;
    int rc;

    rc = pg_run(q,
                "SELECT service_id FROM services_ca_certificates WHERE ca_certificate_id = $1"
                " ORDER BY service_id LIMIT 1",
                1, &ca_id, NULL, &r);
    if (rc == 0 && PQntuples(r) > 0) {
        st_snprintf(sid, 64, "%s", PQgetvalue(r, 0, 0));
        rc = 1;
    }
    PQclear(r);
    return rc;
}

static int
pg_remove(struct cp_store *s, enum st_entity_kind k, const char *id, struct st_err *err)
{
    struct pg_store *q = pg(s);
    char sql[96];
    PGresult *r = NULL;
    int rc;

    ST_ASSERT(q->in_tx && k < ST_ENT__COUNT);
    rc = cp_store_check_refs(&q->probe, k, id, err);
    if (rc < 0) {
        return rc;
    }
    st_snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = $1", cp_store_kinds[k].table);
    rc = pg_run(q, sql, 1, &id, NULL, &r);
    if (rc == 0 && strcmp(PQcmdTuples(r), "0") != 0) {
        q->dirty = true;
    } else if (rc < 0) {
        rc = pg_constraint(k, r, rc, true, err);
    }
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* paging */

static int
pg_page(struct cp_store *s, enum st_entity_kind k, const struct cp_page_opts *o, json_t **data,
        char **next_offset, struct st_err *err)
{
    struct pg_store *q = pg(s);
    const char *params[4];
    char limit[24];
    char sql[512];
    char *tags_text = NULL;
    size_t ntags = o->tags != NULL ? json_array_size(o->tags) : 0;
    PGresult *r = NULL;
    size_t len;
    int n = 0;
    int rc;

    *data = NULL;
    *next_offset = NULL;
    if (o->offset != NULL && !st_schema_is_uuid(o->offset)) {
        return st_err_set(err, -ST_EPARSE, "offset", "'%s' is not a valid offset: bad offset",
                          o->offset);
    }
    st_snprintf(sql, sizeof(sql), "SELECT doc FROM %s WHERE true", cp_store_kinds[k].table);
    if (o->offset != NULL) {
        params[n++] = o->offset;
        len = strlen(sql);
        st_snprintf(sql + len, sizeof(sql) - len, " AND id > $%d", n);
    }
    if (o->parent_id != NULL && (k == ST_ENT_ROUTE || k == ST_ENT_SNI)) {
        params[n++] = o->parent_id;
        len = strlen(sql);
        st_snprintf(sql + len, sizeof(sql) - len, " AND %s = $%d", cp_store_kinds[k].fk_col, n);
    }
    if (ntags > 0) {
        tags_text = json_dumps(o->tags, JSON_COMPACT);
        params[n++] = tags_text;
        len = strlen(sql);
        if (o->tags_any) {
            st_snprintf(sql + len, sizeof(sql) - len,
                        " AND tags ?| ARRAY(SELECT jsonb_array_elements_text($%d::jsonb))", n);
        } else {
            st_snprintf(sql + len, sizeof(sql) - len, " AND tags @> $%d::jsonb", n);
        }
    }
    st_snprintf(limit, sizeof(limit), "%zu", o->size + 1);
    params[n++] = limit;
    len = strlen(sql);
    if (st_snprintf(sql + len, sizeof(sql) - len, " ORDER BY id LIMIT $%d::bigint", n) < 0) {
        free(tags_text);
        return -ST_EDB;
    }
    rc = pg_run(q, sql, n, params, NULL, &r);
    if (rc == 0) {
        json_t *arr = json_array();
        int rows = PQntuples(r);

        for (int i = 0; i < rows; i++) {
            json_t *doc;

            if (json_array_size(arr) == o->size) {
                /* one more row than asked: there is a next page after the last one kept */
                json_t *last = json_array_get(arr, o->size - 1);

                *next_offset = st_xstrdup(json_string_value(json_object_get(last, "id")));
                break;
            }
            doc = pg_doc(r, i, 0);
            if (doc != NULL) {
                json_array_append_new(arr, doc);
            }
        }
        *data = arr;
    }
    PQclear(r);
    free(tags_text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the consistent read for the snapshot */

static int
pg_read_table(struct pg_store *q, struct cp_store_cache *c, enum st_entity_kind k, json_t **out)
{
    char sql[96];
    PGresult *r = NULL;
    json_t *arr;
    int rc;

    st_snprintf(sql, sizeof(sql), "SELECT id, doc FROM %s ORDER BY id", cp_store_kinds[k].table);
    rc = pg_run(q, sql, 0, NULL, NULL, &r);
    if (rc < 0) {
        PQclear(r);
        return rc;
    }
    arr = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *doc = PQgetisnull(r, i, 1)
                          ? NULL
                          : cp_store_cache_doc(c, k, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                                               (size_t)PQgetlength(r, i, 1));

        if (doc == NULL) {
            json_decref(arr);
            rc = pg_fail(q, r, "corrupt doc");
            PQclear(r);
            return rc;
        }
        json_array_append_new(arr, doc);
    }
    PQclear(r);
    *out = arr;
    return 0;
}

static int
pg_read_all(struct cp_store *s, struct cp_store_cache *c, uint64_t *version,
            json_t *lists[ST_ENT__COUNT])
{
    struct pg_store *q = pg(s);
    int rc;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        lists[k] = NULL;
    }
    rc = pg_do(q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL);
    if (rc < 0) {
        return rc;
    }
    q->in_tx = true;
    rc = pg_version(s, version);
    for (int k = 0; rc == 0 && k < ST_ENT__COUNT; k++) {
        rc = pg_read_table(q, c, (enum st_entity_kind)k, &lists[k]);
    }
    pg_rollback(s); /* read-only: nothing to commit */
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
pg_clear(struct cp_store *s)
{
    struct pg_store *q = pg(s);
    char sql[64];
    PGresult *r = NULL;
    int rc;

    ST_ASSERT(q->in_tx);
    for (size_t i = 0; i < ST_ARRAY_SIZE(cp_store_clear_order); i++) {
        st_snprintf(sql, sizeof(sql), "DELETE FROM %s",
                    cp_store_kinds[cp_store_clear_order[i]].table);
        rc = pg_run(q, sql, 0, NULL, NULL, &r);
        if (rc == 0 && strcmp(PQcmdTuples(r), "0") != 0) {
            q->dirty = true;
        }
        PQclear(r);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int
pg_count(struct cp_store *s, enum st_entity_kind k, uint64_t *n)
{
    struct pg_store *q = pg(s);
    char sql[64];
    PGresult *r = NULL;
    int rc;

    ST_ASSERT(k < ST_ENT__COUNT);
    st_snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", cp_store_kinds[k].table);
    rc = pg_run(q, sql, 0, NULL, NULL, &r);
    if (rc == 0) {
        *n = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* tags */

/* Every (tag, entity) pair of every table, one page of them. Parameters: $1 the tag or
 * NULL, $2..$4 the offset's (tag, entity_name, entity_id) or NULL, $5 the limit. */
static int
pg_tags_sql(char *sql, size_t size)
{
    size_t n;
    int rc;

    rc = st_snprintf(sql, size, "SELECT tag, entity_name, entity_id FROM (");
    for (int k = 0; rc == 0 && k < ST_ENT__COUNT; k++) {
        n = strlen(sql);
        rc = st_snprintf(sql + n, size - n,
                         "%sSELECT t.value COLLATE \"C\" AS tag,"
                         " '%s'::text COLLATE \"C\" AS entity_name, e.id AS entity_id"
                         " FROM %s AS e, jsonb_array_elements_text(e.tags) AS t(value)"
                         " WHERE jsonb_typeof(e.tags) = 'array'",
                         k > 0 ? " UNION ALL " : "", cp_store_kinds[k].table,
                         cp_store_kinds[k].table);
    }
    n = strlen(sql);
    if (rc == 0) {
        rc = st_snprintf(sql + n, size - n,
                         ") AS pairs WHERE ($1::text IS NULL OR tag = $1)"
                         " AND ($2::text IS NULL OR (tag, entity_name, entity_id) >"
                         " ($2::text COLLATE \"C\", $3::text COLLATE \"C\","
                         " $4::text COLLATE \"C\"))"
                         " ORDER BY tag, entity_name, entity_id LIMIT $5::bigint");
    }
    return rc;
}

static int
pg_tags_page(struct cp_store *s, const char *tag, size_t size, const char *offset, json_t **data,
             char **next_offset, struct st_err *err)
{
    struct pg_store *q = pg(s);
    char sql[2048];
    char limit[24];
    const char *params[5];
    json_t *off = NULL;
    PGresult *r = NULL;
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
    if (pg_tags_sql(sql, sizeof(sql)) < 0) {
        json_decref(off);
        return -ST_EDB;
    }
    st_snprintf(limit, sizeof(limit), "%zu", size + 1);
    params[0] = tag;
    for (int i = 0; i < 3; i++) {
        params[1 + i] = json_string_value(json_array_get(off, (size_t)i));
    }
    params[4] = limit;
    rc = pg_run(q, sql, 5, params, NULL, &r);
    if (rc == 0) {
        json_t *arr = json_array();

        for (int i = 0; i < PQntuples(r); i++) {
            if (json_array_size(arr) == size) {
                json_t *last = json_array_get(arr, size - 1);

                *next_offset = cp_store_tags_offset_make(
                    json_string_value(json_object_get(last, "tag")),
                    json_string_value(json_object_get(last, "entity_name")),
                    json_string_value(json_object_get(last, "entity_id")));
                break;
            }
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "entity_name",
                                                 PQgetvalue(r, i, 1), "entity_id",
                                                 PQgetvalue(r, i, 2), "tag", PQgetvalue(r, i, 0)));
        }
        *data = arr;
    }
    PQclear(r);
    json_decref(off);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the shared data-plane registry (cp_store_dps_save / cp_store_dps_page) */

/* Runs each (id, ms[, doc]) of arr through sql inside the open transaction. */
static int
pg_dps_each(struct pg_store *q, const char *sql, const json_t *arr, const char *ms_key,
            bool with_doc)
{
    static const Oid types[] = {OID_TEXT, OID_INT8, OID_TEXT};
    size_t i;
    const json_t *rec;

    json_array_foreach(arr, i, rec)
    {
        char ms[24];
        char *doc = NULL;
        const char *params[3];
        PGresult *r = NULL;
        int rc;

        params[0] = json_string_value(json_object_get(rec, "id"));
        if (params[0] == NULL) {
            continue;
        }
        st_snprintf(ms, sizeof(ms), "%lld",
                    (long long)json_integer_value(json_object_get(rec, ms_key)));
        params[1] = ms;
        if (with_doc) {
            doc = json_dumps(json_object_get(rec, "doc"), JSON_COMPACT);
            if (doc == NULL) {
                continue;
            }
            params[2] = doc;
        }
        rc = pg_run(q, sql, with_doc ? 3 : 2, params, types, &r);
        PQclear(r);
        free(doc);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int
pg_dps_save(struct cp_store *s, const json_t *seen, const json_t *gone, int64_t purge_before_ms)
{
    static const Oid types[] = {OID_INT8};
    struct pg_store *q = pg(s);
    char before[24];
    const char *params[1] = {before};
    PGresult *r = NULL;
    int rc;

    /* a transaction of its own that writes no entity: its commit bumps no version */
    if ((rc = pg_begin(s, false)) < 0) {
        return rc;
    }
    /* a DP that moved on to another CP may have a newer row already: keep that one */
    rc = pg_dps_each(q,
                     "INSERT INTO clustering_data_planes (id, last_seen_ms, doc)"
                     " VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE"
                     " SET last_seen_ms = EXCLUDED.last_seen_ms, doc = EXCLUDED.doc"
                     " WHERE clustering_data_planes.last_seen_ms <= EXCLUDED.last_seen_ms",
                     seen, "last_seen_ms", true);
    if (rc == 0) {
        rc = pg_dps_each(q,
                         "DELETE FROM clustering_data_planes WHERE id = $1 AND last_seen_ms <= $2",
                         gone, "at_ms", false);
    }
    if (rc == 0) {
        st_snprintf(before, sizeof(before), "%lld", (long long)purge_before_ms);
        rc = pg_run(q, "DELETE FROM clustering_data_planes WHERE last_seen_ms < $1", 1, params,
                    types, &r);
        PQclear(r);
    }
    if (rc < 0) {
        pg_rollback(s);
        return rc;
    }
    return pg_commit(s);
}

static int
pg_dps_page(struct cp_store *s, const char *after, size_t limit, int64_t seen_since_ms,
            json_t **rows)
{
    static const Oid types[] = {OID_TEXT, OID_INT8, OID_INT8};
    struct pg_store *q = pg(s);
    char since[24], lim[24];
    const char *params[3] = {after, since, lim};
    PGresult *r = NULL;
    int rc;

    st_snprintf(since, sizeof(since), "%lld", (long long)seen_since_ms);
    st_snprintf(lim, sizeof(lim), "%zu", limit);
    rc = pg_run(q,
                "SELECT id, last_seen_ms, doc FROM clustering_data_planes"
                " WHERE ($1::text IS NULL OR id > $1) AND last_seen_ms >= $2"
                " ORDER BY id LIMIT $3",
                3, params, types, &r);
    if (rc == 0) {
        json_t *arr = json_array();

        for (int i = 0; i < PQntuples(r); i++) {
            json_t *doc = pg_doc(r, i, 2);

            if (doc == NULL) {
                continue;
            }
            json_array_append_new(
                arr, json_pack("{s:s,s:I,s:o}", "id", PQgetvalue(r, i, 0), "last_seen_ms",
                               (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10), "doc", doc));
        }
        *rows = arr;
    }
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* open and close */

static void
pg_close(struct cp_store *s)
{
    struct pg_store *q = pg(s);

    if (q->in_tx) {
        pg_rollback(s);
    }
    PQfinish(q->conn);
    free(q);
}

static const struct cp_store_ops pg_ops = {
    .name = "postgres",
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .get = pg_get,
    .write = pg_write,
    .remove = pg_remove,
    .page = pg_page,
    .read_all = pg_read_all,
    .version = pg_version,
    .clear = pg_clear,
    .count = pg_count,
    .tags_page = pg_tags_page,
    .dps_save = pg_dps_save,
    .dps_page = pg_dps_page,
    .close = pg_close,
};

int
cp_store_pg_open(const struct st_conf *conf, struct cp_store **out, struct st_err *err)
{
    struct pg_store *q;
    PGconn *conn = NULL;
    int rc;

    *out = NULL;
    rc = cp_pg_connect(conf, &conn, err);
    if (rc < 0) {
        return rc;
    }
    rc = cp_pg_schema_check(conn, err);
    if (rc < 0) {
        PQfinish(conn);
        return rc;
    }
    q = st_xcalloc(1, sizeof(*q));
    q->base.ops = &pg_ops;
    q->probe.exists = pg_exists;
    q->probe.ca_user = pg_ca_user;
    q->probe.ctx = q;
    q->conn = conn;
    *out = &q->base;
    return 0;
}
