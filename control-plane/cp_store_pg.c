/* The Postgres store: the backend of cp_store that several CPs share, an executor and a
 * dialect for the statements of cp_store_sql.c. One handle is one libpq connection
 * (cp_store_pool.c keeps several). The tables are those of cp_store_pg_schema.c; a set of
 * references is kept as rows of its join table too (services_ca_certificates), so that
 * the database refuses to delete what a set holds.
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

/* pg_advisory_xact_lock key of the one writer at a time ("Strw", 0x53747277). */
#define PG_LOCK_WRITER "1400140407"

/* Parameter types (pg_type oids), so that a statement may leave a parameter unused. */
#define OID_INT8  20
#define OID_TEXT  25
#define OID_JSONB 3802

struct pg_store {
    struct cp_store_sql sql; /* first: pg() casts */
    PGconn *conn;
    bool down; /* logged that the server is away, until it is back */
};

static struct pg_store *
pg(struct cp_store_sql *q)
{
    return (struct pg_store *)q;
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
    if (q->sql.in_tx) {
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

/* ------------------------------------------------------------------------ */
/* the executor */

/* What a failed statement refused, from its SQLSTATE and constraint name. */
static void
pg_cons(PGresult *r, struct cp_sql_res *res)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = r != NULL ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    res->cons = CP_CONS_NONE;
    if (state != NULL && strcmp(state, "23505") == 0) {
        res->cons = cons != NULL && strstr(cons, "_pkey") != NULL ? CP_CONS_PKEY : CP_CONS_UNIQUE;
    } else if (state != NULL && strcmp(state, "23503") == 0) {
        res->cons = CP_CONS_FOREIGN;
    }
    (void)st_snprintf(res->cons_name, sizeof(res->cons_name), "%s", cons != NULL ? cons : "");
    (void)st_snprintf(res->msg, sizeof(res->msg), "%s", msg != NULL ? msg : "constraint violated");
}

static int
pg_rows(PGresult *r, cp_sql_row_fn *fn, void *arg)
{
    struct cp_sql_row row = {.n = PQnfields(r)};

    ST_ASSERT(row.n <= (int)ST_ARRAY_SIZE(row.col));
    for (int i = 0; i < PQntuples(r); i++) {
        int rc;

        for (int j = 0; j < row.n; j++) {
            row.col[j] = PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
            row.len[j] = (size_t)PQgetlength(r, i, j);
        }
        if ((rc = fn(arg, &row)) != 0) {
            return rc < 0 ? rc : 0;
        }
    }
    return 0;
}

/* Runs st, calling fn for each row. Outside a transaction, a statement that finds the
 * connection broken is retried once on a new one (the server may have restarted). */
static int
pg_exec_sql(struct cp_store_sql *b, const struct cp_sql *st, cp_sql_row_fn *fn, void *arg,
            struct cp_sql_res *res)
{
    static const Oid oids[] = {
        [CP_SQL_TEXT] = OID_TEXT, [CP_SQL_INT] = OID_INT8, [CP_SQL_JSON] = OID_JSONB};
    struct pg_store *q = pg(b);
    const char *params[CP_SQL_ARGS_MAX];
    Oid types[CP_SQL_ARGS_MAX];
    char nums[CP_SQL_ARGS_MAX][24];
    PGresult *r = NULL;
    int rc = -ST_EDBDOWN;

    for (int i = 0; i < st->n; i++) {
        types[i] = oids[st->args[i].type];
        params[i] = st->args[i].text;
        if (st->args[i].type == CP_SQL_INT) {
            (void)st_snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)st->args[i].num);
            params[i] = nums[i];
        }
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        ExecStatusType status;

        PQclear(r);
        r = NULL;
        if ((rc = pg_ready(q)) < 0) {
            break;
        }
        r = PQexecParams(q->conn, st->text, st->n, types, params, NULL, NULL, 0);
        status = PQresultStatus(r);
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
            break;
        }
        if (q->sql.in_tx || attempt > 0 || PQstatus(q->conn) == CONNECTION_OK) {
            rc = pg_fail(q, r, st->text);
            break;
        }
    }
    if (rc == 0 && res != NULL) {
        res->changes = strtoull(PQcmdTuples(r), NULL, 10);
    }
    if (rc == 0 && fn != NULL) {
        rc = pg_rows(r, fn, arg);
    }
    if (rc < 0 && res != NULL) {
        pg_cons(r, res);
    }
    PQclear(r);
    return rc;
}

static void
pg_close(struct cp_store_sql *b)
{
    PQfinish(pg(b)->conn);
    free(pg(b));
}

/* ------------------------------------------------------------------------ */
/* the dialect */

static void
pg_tags_match(struct cp_sql *st, const char *tags_json, bool any)
{
    cp_sql_add(st, "%s", any ? "tags ?| ARRAY(SELECT jsonb_array_elements_text(" : "tags @> ");
    cp_sql_json(st, tags_json);
    cp_sql_add(st, "%s", any ? "))" : "");
}

static void
pg_tags_pairs(struct cp_sql *st, const char *table)
{
    cp_sql_add(st,
               "SELECT t.value COLLATE \"C\" AS tag, '%s'::text COLLATE \"C\" AS entity_name,"
               " e.id AS entity_id FROM %s AS e, jsonb_array_elements_text(e.tags) AS t(value)"
               " WHERE jsonb_typeof(e.tags) = 'array'",
               table, table);
}

static void
pg_set_member(struct cp_sql *st, const struct cp_rel *r, const struct cp_rel_set *set,
              const char *ref_id)
{
    (void)r;
    cp_sql_add(st, "SELECT %s FROM %s WHERE %s = ", set->own_col, set->join, set->ref_col);
    cp_sql_text(st, ref_id);
    cp_sql_add(st, " ORDER BY %s", set->own_col);
}

/* An entity's set as rows of the join table, so the database refuses to delete one in use. */
static int
pg_set_write(struct cp_store_sql *b, const struct cp_rel_set *set, const char *id,
             const json_t *ids, struct cp_sql_res *res)
{
    struct cp_sql st;
    char *text;
    int rc;

    cp_sql_init(&st, '$');
    cp_sql_add(&st, "DELETE FROM %s WHERE %s = ", set->join, set->own_col);
    cp_sql_text(&st, id);
    rc = pg_exec_sql(b, &st, NULL, NULL, res);
    cp_sql_fini(&st);
    if (rc < 0 || json_array_size(ids) == 0) {
        return rc;
    }
    text = json_dumps(ids, JSON_COMPACT);
    cp_sql_init(&st, '$');
    cp_sql_add(&st, "INSERT INTO %s (%s, %s) SELECT DISTINCT ", set->join, set->own_col,
               set->ref_col);
    cp_sql_text(&st, id);
    cp_sql_add(&st, ", jsonb_array_elements_text(");
    cp_sql_json(&st, text);
    cp_sql_add(&st, ")");
    rc = pg_exec_sql(b, &st, NULL, NULL, res);
    cp_sql_fini(&st);
    free(text);
    return rc;
}

static const struct cp_store_dialect pg_dialect = {
    .ph = '$',
    .begin_write = "BEGIN",
    .begin_snapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    .write_lock = "SELECT pg_advisory_xact_lock(" PG_LOCK_WRITER ")",
    .collate = " COLLATE \"C\"",
    .run = pg_exec_sql,
    .close = pg_close,
    /* tells the CPs that share the database about the new version, when (and only if)
     * the transaction commits */
    .on_bump = "SELECT pg_notify('" CP_PG_CHANNEL "', value::text) FROM meta"
               " WHERE key = 'config_version'",
    .tags_match = pg_tags_match,
    .tags_pairs = pg_tags_pairs,
    .set_member = pg_set_member,
    .set_write = pg_set_write,
};

/* ------------------------------------------------------------------------ */
/* the shared data-plane registry (cp_store_dps_save / cp_store_dps_page) */

/* Runs sql ($1 the id, $2 the record's ms_key, $3 its doc when with_doc) for each record
 * of arr inside the open transaction. */
static int
pg_dps_each(struct cp_store_sql *b, const char *sql, const json_t *arr, const char *ms_key,
            bool with_doc)
{
    size_t i;
    const json_t *rec;

    json_array_foreach(arr, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        char *doc = with_doc ? json_dumps(json_object_get(rec, "doc"), JSON_COMPACT) : NULL;
        struct cp_sql st;
        int rc = 0;

        if (id != NULL && (doc != NULL || !with_doc)) {
            cp_sql_init(&st, '$');
            cp_sql_add(&st, "%s", sql);
            cp_sql_arg(&st, CP_SQL_TEXT, id, 0);
            cp_sql_arg(&st, CP_SQL_INT, NULL, json_integer_value(json_object_get(rec, ms_key)));
            if (with_doc) {
                cp_sql_arg(&st, CP_SQL_TEXT, doc, 0);
            }
            rc = pg_exec_sql(b, &st, NULL, NULL, NULL);
            cp_sql_fini(&st);
        }
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
    struct cp_store_sql *b = (struct cp_store_sql *)s;
    struct cp_sql st;
    int rc;

    /* a transaction of its own that writes no entity: its commit bumps no version */
    if ((rc = cp_store__begin(s, false)) < 0) {
        return rc;
    }
    /* a DP that moved on to another CP may have a newer row already: keep that one */
    rc = pg_dps_each(b,
                     "INSERT INTO clustering_data_planes (id, last_seen_ms, doc)"
                     " VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE"
                     " SET last_seen_ms = EXCLUDED.last_seen_ms, doc = EXCLUDED.doc"
                     " WHERE clustering_data_planes.last_seen_ms <= EXCLUDED.last_seen_ms",
                     seen, "last_seen_ms", true);
    if (rc == 0) {
        rc = pg_dps_each(b,
                         "DELETE FROM clustering_data_planes WHERE id = $1 AND last_seen_ms <= $2",
                         gone, "at_ms", false);
    }
    if (rc == 0) {
        cp_sql_init(&st, '$');
        cp_sql_add(&st, "DELETE FROM clustering_data_planes WHERE last_seen_ms < ");
        cp_sql_int(&st, purge_before_ms);
        rc = pg_exec_sql(b, &st, NULL, NULL, NULL);
        cp_sql_fini(&st);
    }
    if (rc < 0) {
        cp_store__rollback(s);
        return rc;
    }
    return cp_store__commit(s);
}

static int
row_dp(void *arg, const struct cp_sql_row *row)
{
    json_error_t jerr;
    json_t *doc = row->col[2] != NULL ? json_loadb(row->col[2], row->len[2], 0, &jerr) : NULL;

    if (doc != NULL) {
        json_array_append_new(arg,
                              json_pack("{s:s,s:I,s:o}", "id", row->col[0], "last_seen_ms",
                                        (json_int_t)strtoll(row->col[1], NULL, 10), "doc", doc));
    }
    return 0;
}

static int
pg_dps_page(struct cp_store *s, const char *after, size_t limit, int64_t seen_since_ms,
            json_t **rows)
{
    json_t *arr = json_array();
    struct cp_sql st;
    int rc;

    cp_sql_init(&st, '$');
    cp_sql_arg(&st, CP_SQL_TEXT, after, 0);
    cp_sql_add(&st, "SELECT id, last_seen_ms, doc FROM clustering_data_planes"
                    " WHERE ($1::text IS NULL OR id > $1) AND last_seen_ms >= ");
    cp_sql_int(&st, seen_since_ms);
    cp_sql_add(&st, " ORDER BY id LIMIT ");
    cp_sql_int(&st, (int64_t)limit);
    rc = pg_exec_sql((struct cp_store_sql *)s, &st, row_dp, arr, NULL);
    cp_sql_fini(&st);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *rows = arr;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* open and close */

static const struct cp_store_ops pg_ops = {
    CP_STORE_SQL_OPS("postgres"),
    .dps_save = pg_dps_save,
    .dps_page = pg_dps_page,
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
    cp_store__init(&q->sql, &pg_ops, &pg_dialect);
    q->conn = conn;
    *out = &q->sql.base;
    return 0;
}
