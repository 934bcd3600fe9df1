/* The store's SQL, composed once for both backends from the kinds' relations
 * (cp_store_rel_of): transactions and the config version, lookups, writes with Kong's
 * unique and foreign-key checks, deletes with their reference checks, paging, the
 * consistent read, clear, count and GET /tags. A backend runs the statements (its
 * executor) and says how its SQL differs (its dialect): struct cp_store_dialect.
 *
 * The checks run before each write, so that an error names the field and the value as
 * Kong's does; the database's constraints stay as the backstop (a writer that skipped the
 * lock), and what they refuse is mapped to the same errors. Cascades on delete are the
 * DDL's (ON DELETE CASCADE): the store refuses what a RESTRICT reference or a set still
 * holds, and lets the database do the rest. */
#include "cp_store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_log.h"
#include "st_schema.h"
#include "st_util.h"

/* ------------------------------------------------------------------------ */
/* composing */

void
cp_sql_init(struct cp_sql *st, char ph)
{
    st->text = st->buf;
    st->text[0] = '\0';
    st->len = 0;
    st->cap = sizeof(st->buf);
    st->ph = ph;
    st->n = 0;
}

void
cp_sql_fini(struct cp_sql *st)
{
    if (st->text != st->buf) {
        free(st->text);
    }
    st->text = NULL;
}

static void __attribute__((format(printf, 2, 0)))
sql_vadd(struct cp_sql *st, const char *fmt, va_list ap)
{
    va_list again;
    int n;

    va_copy(again, ap);
    n = vsnprintf(st->text + st->len, st->cap - st->len, fmt, ap);
    ST_ASSERT(n >= 0);
    if ((size_t)n >= st->cap - st->len) {
        char *was = st->text;

        st->cap = st_grow(st->cap, st->len + (size_t)n + 1, SIZE_MAX);
        st->text = st_xrealloc(was != st->buf ? was : NULL, st->cap);
        if (was == st->buf) {
            memcpy(st->text, st->buf, st->len);
        }
        vsnprintf(st->text + st->len, st->cap - st->len, fmt, again);
    }
    va_end(again);
    st->len += (size_t)n;
}

void
cp_sql_add(struct cp_sql *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sql_vadd(st, fmt, ap);
    va_end(ap);
}

void
cp_sql_ref(struct cp_sql *st, int i)
{
    cp_sql_add(st, "%c%d", st->ph, i);
}

int
cp_sql_arg(struct cp_sql *st, enum cp_sql_type type, const char *text, int64_t num)
{
    ST_ASSERT(st->n < CP_SQL_ARGS_MAX);
    st->args[st->n] = (struct cp_sql_arg){type, text, num};
    return ++st->n;
}

void
cp_sql_text(struct cp_sql *st, const char *v)
{
    cp_sql_ref(st, cp_sql_arg(st, CP_SQL_TEXT, v, 0));
}

void
cp_sql_int(struct cp_sql *st, int64_t v)
{
    cp_sql_ref(st, cp_sql_arg(st, CP_SQL_INT, NULL, v));
}

void
cp_sql_json(struct cp_sql *st, const char *v)
{
    cp_sql_ref(st, cp_sql_arg(st, CP_SQL_JSON, v, 0));
}

/* ------------------------------------------------------------------------ */
/* running */

static struct cp_store_sql *
sql(struct cp_store *s)
{
    return (struct cp_store_sql *)s;
}

/* Starts a statement of q's dialect with text (printf). */
static void __attribute__((format(printf, 3, 4)))
start(const struct cp_store_sql *q, struct cp_sql *st, const char *fmt, ...)
{
    va_list ap;

    cp_sql_init(st, q->d->ph);
    va_start(ap, fmt);
    sql_vadd(st, fmt, ap);
    va_end(ap);
}

/* Runs st and frees it. */
static int
run(struct cp_store_sql *q, struct cp_sql *st, cp_sql_row_fn *fn, void *arg, struct cp_sql_res *res)
{
    int rc = q->d->run(q, st, fn, arg, res);

    cp_sql_fini(st);
    return rc;
}

static int
exec0(struct cp_store_sql *q, const char *text)
{
    struct cp_sql st;

    start(q, &st, "%s", text);
    return run(q, &st, NULL, NULL, NULL);
}

/* The first row's first column as a number (or a copy of the text in arg's buffer). */
struct first {
    bool found;
    uint64_t num;
    char text[64];
};

static int
row_first(void *arg, const struct cp_sql_row *row)
{
    struct first *f = arg;

    f->found = true;
    if (row->col[0] != NULL) {
        f->num = strtoull(row->col[0], NULL, 10);
        (void)st_snprintf(f->text, sizeof(f->text), "%s", row->col[0]);
    }
    return 1;
}

/* Runs a "SELECT x FROM ... WHERE ..." for its first row: 1 when there is one, 0 or < 0. */
static int
first_row(struct cp_store_sql *q, struct cp_sql *st, struct first *f)
{
    int rc;

    memset(f, 0, sizeof(*f));
    cp_sql_add(st, " LIMIT 1");
    rc = run(q, st, row_first, f, NULL);
    return rc < 0 ? rc : f->found;
}

/* Whether a row of table has col = val. */
static int
exists_eq(struct cp_store_sql *q, const char *table, const char *col, const char *val)
{
    struct cp_sql st;
    struct first f;

    start(q, &st, "SELECT 1 FROM %s WHERE %s = ", table, col);
    cp_sql_text(&st, val);
    return first_row(q, &st, &f);
}

/* ------------------------------------------------------------------------ */
/* the relations */

static const struct cp_rel_col *
col_named(const struct cp_rel *r, const char *name)
{
    for (const struct cp_rel_col *c = r->cols; c->name != NULL; c++) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    ST_ASSERT(!"a key names a column the kind does not have");
    return NULL;
}

/* The foreign key a nested listing or lookup is scoped by: the one of field, or (field
 * NULL) the kind's parent. NULL when field is NULL and the kind nests under nothing. */
static const struct cp_rel_col *
parent_col(const struct cp_rel *r, const char *field)
{
    for (const struct cp_rel_col *c = r->cols; c->name != NULL; c++) {
        if (c->ref != NULL && (field != NULL ? strcmp(c->field, field) == 0 : c->parent)) {
            return c;
        }
    }
    ST_ASSERT(field == NULL); /* a foreign key the kind does not have */
    return NULL;
}

/* Whether o refers to table (by a foreign key or a set), itself aside. */
static bool
refers_to(const struct cp_rel *o, const char *table)
{
    for (const struct cp_rel_col *c = o->cols; c->name != NULL; c++) {
        if (c->ref != NULL && strcmp(c->ref, table) == 0 && strcmp(o->table, table) != 0) {
            return true;
        }
    }
    for (const struct cp_rel_set *set = o->sets; set->field != NULL; set++) {
        if (strcmp(set->ref, table) == 0) {
            return true;
        }
    }
    return false;
}

/* The names the database gives a key over cols and a foreign key on col (Postgres's
 * defaults; cp_sql_res). */
static void
key_cons(char *buf, size_t size, const char *table, const char *const *cols)
{
    size_t n = 0;

    (void)st_snprintf(buf, size, "%s", table);
    for (size_t i = 0; cols[i] != NULL; i++) {
        n = strlen(buf);
        (void)st_snprintf(buf + n, size - n, "_%s", cols[i]);
    }
    n = strlen(buf);
    (void)st_snprintf(buf + n, size - n, "_key");
}

static void
fk_cons(char *buf, size_t size, const char *table, const char *col)
{
    (void)st_snprintf(buf, size, "%s_%s_fkey", table, col);
}

/* One entity as the values of its table's columns. */
struct row {
    const char *id;
    const char *val[CP_REL_COLS_MAX]; /* by column; NULL: SQL NULL */
    char *tags;                       /* malloc'd JSON text or NULL */
    char *doc;                        /* malloc'd JSON text */
};

static void
row_from(const struct cp_rel *r, const json_t *obj, struct row *w)
{
    const json_t *tags = json_object_get(obj, "tags");

    memset(w, 0, sizeof(*w));
    w->id = json_string_value(json_object_get(obj, "id"));
    for (const struct cp_rel_col *c = r->cols; c->name != NULL; c++) {
        const json_t *v = json_object_get(obj, c->field);

        w->val[c - r->cols] = json_string_value(c->ref == NULL ? v : json_object_get(v, "id"));
    }
    w->tags = json_is_array(tags) ? json_dumps(tags, JSON_COMPACT) : NULL;
    w->doc = json_dumps(obj, JSON_COMPACT);
}

static const char *
val_of(const struct cp_rel *r, const struct row *w, const char *col)
{
    return w->val[col_named(r, col) - r->cols];
}

/* ------------------------------------------------------------------------ */
/* transactions */

int
cp_store__begin(struct cp_store *s, bool write)
{
    struct cp_store_sql *q = sql(s);
    int rc;

    ST_ASSERT(!q->in_tx);
    rc = exec0(q, write ? q->d->begin_write : "BEGIN");
    if (rc < 0) {
        return rc;
    }
    q->in_tx = true;
    q->dirty = false;
    if (write && q->d->write_lock != NULL && (rc = exec0(q, q->d->write_lock)) < 0) {
        cp_store__rollback(s);
    }
    return rc;
}

void
cp_store__rollback(struct cp_store *s)
{
    struct cp_store_sql *q = sql(s);

    if (q->in_tx) {
        exec0(q, "ROLLBACK");
    }
    q->in_tx = false;
    q->dirty = false;
}

int
cp_store__commit(struct cp_store *s)
{
    struct cp_store_sql *q = sql(s);
    int rc = 0;

    ST_ASSERT(q->in_tx);
    if (q->dirty) {
        rc = exec0(q, "UPDATE meta SET value = value + 1 WHERE key = 'config_version'");
        if (rc == 0 && q->d->on_bump != NULL) {
            rc = exec0(q, q->d->on_bump);
        }
    }
    if (rc == 0) {
        rc = exec0(q, "COMMIT");
    }
    if (rc < 0) {
        cp_store__rollback(s);
        return rc;
    }
    q->in_tx = false;
    q->dirty = false;
    return 0;
}

int
cp_store__version(struct cp_store *s, uint64_t *version)
{
    struct cp_store_sql *q = sql(s);
    struct cp_sql st;
    struct first f;
    int rc;

    start(q, &st, "SELECT value FROM meta WHERE key = 'config_version'");
    if ((rc = first_row(q, &st, &f)) <= 0) {
        st_log(ST_LOG_ERR, 0, "%s: cannot read the config version", s->ops->name);
        return rc < 0 ? rc : -ST_EDB;
    }
    *version = f.num;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* lookups */

/* The doc of the row found by get_by (key, in table). */
struct doc {
    const char *table, *key;
    json_t *doc;
};

static int
row_doc(void *arg, const struct cp_sql_row *row)
{
    struct doc *d = arg;
    json_error_t jerr;

    d->doc = row->col[0] != NULL ? json_loadb(row->col[0], row->len[0], 0, &jerr) : NULL;
    if (d->doc == NULL) {
        st_log(ST_LOG_ERR, 0, "store: the doc of %s %s is corrupt", d->table, d->key);
        return -ST_EDB;
    }
    return 1;
}

static int
get_by(struct cp_store_sql *q, const struct cp_rel *r, const char *col, const char *key,
       const struct cp_rel_col *parent, const char *parent_id, json_t **out)
{
    struct doc d = {r->table, key, NULL};
    struct cp_sql st;
    int rc;

    start(q, &st, "SELECT doc FROM %s WHERE %s = ", r->table, col);
    cp_sql_text(&st, key);
    if (parent != NULL) {
        cp_sql_add(&st, " AND %s = ", parent->name);
        cp_sql_text(&st, parent_id);
    }
    rc = run(q, &st, row_doc, &d, NULL);
    *out = d.doc;
    return rc == 0 && d.doc == NULL ? -ST_ENOTFOUND : rc;
}

int
cp_store__get_in(struct cp_store *s, enum st_entity_kind k, const char *parent_field,
                 const char *parent_id, const char *key, json_t **out)
{
    struct cp_store_sql *q = sql(s);
    const struct cp_rel *r = q->rels[k];
    const struct cp_rel_col *parent = parent_id != NULL ? parent_col(r, parent_field) : NULL;
    int rc = -ST_ENOTFOUND;

    *out = NULL;
    ST_ASSERT(parent_id == NULL || parent != NULL); /* the kind nests under nothing */
    if (st_schema_is_uuid(key)) {
        rc = get_by(q, r, "id", key, parent, parent_id, out);
    }
    if (rc == -ST_ENOTFOUND && r->endpoint != NULL && (parent != NULL || !r->nested_only)) {
        rc = get_by(q, r, r->endpoint, key, parent, parent_id, out);
    }
    return rc;
}

int
cp_store__get(struct cp_store *s, enum st_entity_kind k, const char *key, json_t **out)
{
    return cp_store__get_in(s, k, NULL, NULL, key, out);
}

/* ------------------------------------------------------------------------ */
/* writes */

/* Kong's unique violation of key: the field and the value, or for a key of several fields
 * their names and Kong's `fields` as JSON ({"target": "a", "upstream": {"id": "..."}}). */
static int
key_err(const struct cp_rel *r, const struct cp_rel_key *key, const struct row *w,
        struct st_err *err)
{
    char names[64] = "";
    json_t *fields;
    char *text;
    int rc;

    if (key->cols[1] == NULL) {
        return st_err_set(err, -ST_EUNIQUE, col_named(r, key->cols[0])->field, "%s",
                          val_of(r, w, key->cols[0]));
    }
    fields = json_object();
    for (size_t i = 0; key->cols[i] != NULL; i++) {
        const struct cp_rel_col *c = col_named(r, key->cols[i]);
        const char *v = val_of(r, w, c->name);
        size_t n = strlen(names);

        json_object_set_new(fields, c->field,
                            v == NULL        ? json_null()
                            : c->ref == NULL ? json_string(v)
                                             : json_pack("{s:s}", "id", v));
        (void)st_snprintf(names + n, sizeof(names) - n, "%s%s", i > 0 ? "," : "", c->field);
    }
    text = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    rc = st_err_set(err, -ST_EUNIQUE, names, "%s", text != NULL ? text : "");
    free(text);
    json_decref(fields);
    return rc;
}

/* Whether another entity than w's holds w's values of key (NULL equal to NULL): 1, 0 or
 * < 0; 0 for a key whose values are all NULL. */
static int
key_taken(struct cp_store_sql *q, const struct cp_rel *r, const struct cp_rel_key *key,
          const struct row *w)
{
    struct cp_sql st;
    struct first f;
    bool any = false;

    start(q, &st, "SELECT 1 FROM %s WHERE id <> ", r->table);
    cp_sql_text(&st, w->id);
    for (size_t i = 0; key->cols[i] != NULL; i++) {
        const char *v = val_of(r, w, key->cols[i]);

        cp_sql_add(&st, " AND %s %s", key->cols[i], v != NULL ? "= " : "IS NULL");
        if (v != NULL) {
            cp_sql_text(&st, v);
            any = true;
        }
    }
    if (!any) {
        cp_sql_fini(&st);
        return 0;
    }
    return first_row(q, &st, &f);
}

/* The checks of a write, before the database would refuse it, so that the error names the
 * field and the value as Kong's does: the id, each unique key, each reference. */
static int
check_write(struct cp_store_sql *q, const struct cp_rel *r, const json_t *obj, const struct row *w,
            bool insert, struct st_err *err)
{
    int rc;

    if (insert && (rc = exists_eq(q, r->table, "id", w->id)) != 0) {
        return rc < 0 ? rc : st_err_set(err, -ST_EPKEY, "id", "%s", w->id);
    }
    for (const struct cp_rel_key *k = r->keys; k->cols[0] != NULL; k++) {
        if ((rc = key_taken(q, r, k, w)) != 0) {
            return rc < 0 ? rc : key_err(r, k, w, err);
        }
    }
    for (const struct cp_rel_col *c = r->cols; c->name != NULL; c++) {
        const char *v = w->val[c - r->cols];

        if (c->ref != NULL && v == NULL && !c->nullable) {
            return st_err_set(err, -ST_ESCHEMA, c->field, "required field missing");
        }
        if (c->ref != NULL && v != NULL && (rc = exists_eq(q, c->ref, "id", v)) <= 0) {
            return rc < 0 ? rc : st_err_set(err, -ST_EFOREIGN, c->field, "%s", v);
        }
    }
    for (const struct cp_rel_set *set = r->sets; set->field != NULL; set++) {
        const json_t *v;
        size_t i;

        json_array_foreach(json_object_get(obj, set->field), i, v)
        {
            const char *id = json_string_value(v); /* NULL: the schema refuses it */

            if (id != NULL && (rc = exists_eq(q, set->ref, "id", id)) <= 0) {
                return rc < 0 ? rc : st_err_set(err, -ST_EFOREIGN, set->field, "%s", id);
            }
        }
    }
    return 0;
}

/* INSERT or UPDATE of w. Arguments: 1 the id, then created_at, updated_at, tags, doc and
 * each column's value. */
static void
write_sql(struct cp_sql *st, const struct cp_rel *r, const struct row *w, const json_t *obj,
          bool insert)
{
    static const char *const fixed[] = {"created_at", "updated_at", "tags", "doc"};
    const int n_fixed = (int)ST_ARRAY_SIZE(fixed);

    cp_sql_arg(st, CP_SQL_TEXT, w->id, 0);
    cp_sql_arg(st, CP_SQL_INT, NULL, json_integer_value(json_object_get(obj, "created_at")));
    cp_sql_arg(st, CP_SQL_INT, NULL, json_integer_value(json_object_get(obj, "updated_at")));
    cp_sql_arg(st, CP_SQL_JSON, w->tags, 0);
    cp_sql_arg(st, CP_SQL_TEXT, w->doc, 0);
    for (const struct cp_rel_col *c = r->cols; c->name != NULL; c++) {
        cp_sql_arg(st, CP_SQL_TEXT, w->val[c - r->cols], 0);
    }
    cp_sql_add(st, insert ? "INSERT INTO %s (id" : "UPDATE %s SET ", r->table);
    for (int i = 0; i < st->n - 1; i++) { /* argument i + 2: fixed[i], then the columns */
        cp_sql_add(st,
                   insert  ? ", %s"
                   : i > 0 ? ", %s = "
                           : "%s = ",
                   i < n_fixed ? fixed[i] : r->cols[i - n_fixed].name);
        if (!insert) {
            cp_sql_ref(st, i + 2);
        }
    }
    cp_sql_add(st, insert ? ") VALUES (" : " WHERE id = ");
    for (int i = 1; i <= (insert ? st->n : 1); i++) {
        cp_sql_add(st, "%s", i > 1 ? ", " : "");
        cp_sql_ref(st, i);
    }
    cp_sql_add(st, "%s", insert ? ")" : "");
}

/* The foreign key or set whose constraint refused a write: the one the database names,
 * else the first given. */
static int
refused_ref(const struct cp_rel *r, const struct row *w, const struct cp_sql_res *res,
            struct st_err *err)
{
    const struct cp_rel_col *fk = NULL;
    char name[128];

    for (const struct cp_rel_col *c = r->cols; c->name != NULL; c++) {
        if (c->ref == NULL || w->val[c - r->cols] == NULL) {
            continue;
        }
        fk_cons(name, sizeof(name), r->table, c->name);
        if (fk == NULL || strcmp(res->cons_name, name) == 0) {
            fk = c;
        }
    }
    for (const struct cp_rel_set *set = r->sets; set->field != NULL; set++) {
        fk_cons(name, sizeof(name), set->join, set->ref_col);
        if (fk == NULL || strcmp(res->cons_name, name) == 0) {
            return st_err_set(err, -ST_EFOREIGN, set->field, "%s", res->msg);
        }
    }
    if (fk != NULL) {
        return st_err_set(err, -ST_EFOREIGN, fk->field, "%s", w->val[fk - r->cols]);
    }
    return st_err_set(err, -ST_EFOREIGN, "id", "%s", res->msg);
}

/* Maps what the database refused (a writer that skipped the lock) to the errors of the
 * checks: the key or reference it names, else the first. */
static int
refused_write(const struct cp_rel *r, const struct row *w, int rc, const struct cp_sql_res *res,
              struct st_err *err)
{
    char name[128];

    if (res->cons == CP_CONS_PKEY) {
        return st_err_set(err, -ST_EPKEY, "id", "%s", w->id);
    }
    if (res->cons == CP_CONS_FOREIGN) {
        return refused_ref(r, w, res, err);
    }
    for (const struct cp_rel_key *k = r->keys; res->cons == CP_CONS_UNIQUE && k->cols[0]; k++) {
        key_cons(name, sizeof(name), r->table, k->cols);
        if (strcmp(res->cons_name, name) == 0 || k[1].cols[0] == NULL) {
            return key_err(r, strcmp(res->cons_name, name) == 0 ? k : r->keys, w, err);
        }
    }
    return st_err_set(err, rc, NULL, rc == -ST_EDBDOWN ? "database unreachable" : "database error");
}

int
cp_store__write(struct cp_store *s, enum st_entity_kind k, const json_t *obj, bool insert,
                struct st_err *err)
{
    struct cp_store_sql *q = sql(s);
    const struct cp_rel *r = q->rels[k];
    struct cp_sql_res res = {0};
    struct cp_sql st;
    struct row w;
    int rc;

    ST_ASSERT(q->in_tx);
    row_from(r, obj, &w);
    if (w.id == NULL || w.doc == NULL) {
        rc = st_err_set(err, -ST_ESCHEMA, "id", "missing id");
    } else {
        rc = check_write(q, r, obj, &w, insert, err);
    }
    if (rc == 0) {
        start(q, &st, "%s", "");
        write_sql(&st, r, &w, obj, insert);
        rc = run(q, &st, NULL, NULL, &res);
        rc = rc == 0 && !insert && res.changes == 0 ? -ST_ENOTFOUND : rc;
        for (const struct cp_rel_set *set = r->sets;
             rc == 0 && q->d->set_write != NULL && set->field != NULL; set++) {
            rc = q->d->set_write(q, set, w.id, json_object_get(obj, set->field), &res);
        }
        rc = rc < 0 && rc != -ST_ENOTFOUND ? refused_write(r, &w, rc, &res, err) : rc;
        q->dirty = q->dirty || rc == 0;
    }
    free(w.tags);
    free(w.doc);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* deletes */

/* Kong's REFERENCED_BY_OTHERS when a set holds the entity (ca_certificates' DAO): "ca
 * certificate <id> is still referenced by services (id = <the first service>)". */
static int
set_holds(struct cp_store_sql *q, const struct cp_rel *r, const struct cp_rel *o,
          const struct cp_rel_set *set, const char *id, struct st_err *err)
{
    struct cp_sql st;
    struct first f;
    char what[64];
    int rc;

    start(q, &st, "%s", "");
    q->d->set_member(&st, o, set, id);
    if ((rc = first_row(q, &st, &f)) <= 0) {
        return rc;
    }
    (void)st_snprintf(what, sizeof(what), "%s", r->singular);
    for (char *p = strchr(what, '_'); p != NULL; p = strchr(p, '_')) {
        *p = ' ';
    }
    return st_err_set(err, -ST_EREFERENCED, o->table, "%s %s is still referenced by %s (id = %s)",
                      what, id, o->table, f.text);
}

/* Refuses to delete what another entity still references (RESTRICT, or in a set). */
static int
check_refs(struct cp_store_sql *q, const struct cp_rel *r, const char *id, struct st_err *err)
{
    int rc;

    for (size_t i = 0; i < q->n_rels; i++) {
        const struct cp_rel *o = q->rels[i];

        for (const struct cp_rel_col *c = o->cols; c->name != NULL; c++) {
            if (c->ref != NULL && c->on_delete == CP_REL_RESTRICT && !strcmp(c->ref, r->table) &&
                (rc = exists_eq(q, o->table, c->name, id)) != 0) {
                return rc < 0 ? rc : st_err_set(err, -ST_EREFERENCED, o->table, "%s", o->table);
            }
        }
        for (const struct cp_rel_set *set = o->sets; set->field != NULL; set++) {
            if (strcmp(set->ref, r->table) == 0 && (rc = set_holds(q, r, o, set, id, err)) != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* The collection whose reference made the database refuse to delete an entity of r (a
 * writer that skipped the checks): the one its constraint `cons` names, else the first
 * that restricts it, else the first that refers to it. */
static const char *
refused_by(const struct cp_store_sql *q, const struct cp_rel *r, const char *cons)
{
    const char *restrict_first = NULL;
    const char *any = NULL;
    char name[128];

    for (size_t i = 0; i < q->n_rels; i++) {
        const struct cp_rel *o = q->rels[i];

        for (const struct cp_rel_col *c = o->cols; c->name != NULL; c++) {
            if (c->ref == NULL || strcmp(c->ref, r->table) != 0) {
                continue;
            }
            fk_cons(name, sizeof(name), o->table, c->name);
            if (strcmp(cons, name) == 0) {
                return o->table;
            }
            any = any != NULL ? any : o->table;
            if (restrict_first == NULL && c->on_delete == CP_REL_RESTRICT) {
                restrict_first = o->table;
            }
        }
        for (const struct cp_rel_set *set = o->sets; set->field != NULL; set++) {
            fk_cons(name, sizeof(name), set->join, set->ref_col);
            if (strcmp(set->ref, r->table) == 0 && strcmp(cons, name) == 0) {
                return o->table;
            }
            if (strcmp(set->ref, r->table) == 0 && restrict_first == NULL) {
                restrict_first = o->table;
            }
        }
    }
    return restrict_first != NULL ? restrict_first : any != NULL ? any : r->table;
}

int
cp_store__remove(struct cp_store *s, enum st_entity_kind k, const char *id, struct st_err *err)
{
    struct cp_store_sql *q = sql(s);
    const struct cp_rel *r = q->rels[k];
    struct cp_sql_res res = {0};
    struct cp_sql st;
    int rc;

    ST_ASSERT(q->in_tx);
    if ((rc = check_refs(q, r, id, err)) < 0) {
        return rc;
    }
    start(q, &st, "DELETE FROM %s WHERE id = ", r->table);
    cp_sql_text(&st, id);
    if ((rc = run(q, &st, NULL, NULL, &res)) == 0) {
        q->dirty = q->dirty || res.changes > 0;
        return 0;
    }
    if (res.cons == CP_CONS_FOREIGN) {
        const char *by = refused_by(q, r, res.cons_name);

        return st_err_set(err, -ST_EREFERENCED, by, "%s", by);
    }
    return st_err_set(err, rc, NULL, rc == -ST_EDBDOWN ? "database unreachable" : "database error");
}

/* ------------------------------------------------------------------------ */
/* paging */

/* " WHERE" before a statement's first condition, " AND" before the others. */
static const char *
where(bool *first)
{
    const char *w = *first ? " WHERE" : " AND";

    *first = false;
    return w;
}

struct page {
    size_t size;
    bool tags; /* rows of (tag, entity_name, entity_id); else of docs */
    json_t *arr;
    char *next;
};

static const char *
last_str(const struct page *p, const char *key)
{
    return json_string_value(json_object_get(json_array_get(p->arr, p->size - 1), key));
}

static int
row_page(void *arg, const struct cp_sql_row *row)
{
    struct page *p = arg;
    json_error_t jerr;
    json_t *v = NULL;

    if (json_array_size(p->arr) == p->size) {
        /* one more row than asked: there is a next page after the last one kept */
        p->next = p->tags
                      ? cp_store_tags_offset_make(last_str(p, "tag"), last_str(p, "entity_name"),
                                                  last_str(p, "entity_id"))
                      : st_xstrdup(last_str(p, "id"));
        return 1;
    }
    if (p->tags && row->col[0] != NULL && row->col[1] != NULL && row->col[2] != NULL) {
        v = json_pack("{s:s,s:s,s:s}", "entity_name", row->col[1], "entity_id", row->col[2], "tag",
                      row->col[0]);
    } else if (!p->tags && row->col[0] != NULL) {
        v = json_loadb(row->col[0], row->len[0], 0, &jerr);
    }
    if (v != NULL) {
        json_array_append_new(p->arr, v);
    }
    return 0;
}

/* Runs a page's statement into *data and *next_offset. */
static int
page_run(struct cp_store_sql *q, struct cp_sql *st, bool tags, size_t size, json_t **data,
         char **next_offset)
{
    struct page p = {size, tags, json_array(), NULL};
    int rc = run(q, st, row_page, &p, NULL);

    if (rc < 0) {
        json_decref(p.arr);
        free(p.next);
        return rc;
    }
    *data = p.arr;
    *next_offset = p.next;
    return 0;
}

int
cp_store__page(struct cp_store *s, enum st_entity_kind k, const struct cp_page_opts *o,
               json_t **data, char **next_offset, struct st_err *err)
{
    struct cp_store_sql *q = sql(s);
    const struct cp_rel *r = q->rels[k];
    const struct cp_rel_col *parent = o->parent_id ? parent_col(r, o->parent_field) : NULL;
    char *tags_text = NULL;
    bool first = true;
    struct cp_sql st;
    int rc;

    *data = NULL;
    *next_offset = NULL;
    if (o->offset != NULL && !st_schema_is_uuid(o->offset)) {
        return st_err_set(err, -ST_EPARSE, "offset", "'%s' is not a valid offset: bad offset",
                          o->offset);
    }
    start(q, &st, "SELECT doc FROM %s", r->table);
    if (o->offset != NULL) {
        cp_sql_add(&st, "%s id > ", where(&first));
        cp_sql_text(&st, o->offset);
    }
    if (parent != NULL) {
        cp_sql_add(&st, "%s %s = ", where(&first), parent->name);
        cp_sql_text(&st, o->parent_id);
    }
    if (o->tags != NULL && json_array_size(o->tags) > 0) {
        tags_text = json_dumps(o->tags, JSON_COMPACT);
        cp_sql_add(&st, "%s ", where(&first));
        q->d->tags_match(&st, tags_text, o->tags_any);
    }
    cp_sql_add(&st, " ORDER BY id LIMIT ");
    cp_sql_int(&st, (int64_t)o->size + 1);
    rc = page_run(q, &st, false, o->size, data, next_offset);
    free(tags_text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the consistent read for the snapshot */

struct read {
    struct cp_store_cache *c;
    enum st_entity_kind k;
    json_t *arr;
};

static int
row_read(void *arg, const struct cp_sql_row *row)
{
    struct read *rd = arg;
    json_t *doc = NULL;

    if (row->col[0] != NULL && row->col[1] != NULL) {
        doc = cp_store_cache_doc(rd->c, rd->k, row->col[0], row->col[1], row->len[1]);
    }
    if (doc == NULL) {
        st_log(ST_LOG_ERR, 0, "store: the doc of %s is corrupt", row->col[0] ? row->col[0] : "?");
        return -ST_EDB;
    }
    json_array_append_new(rd->arr, doc);
    return 0;
}

int
cp_store__read_all(struct cp_store *s, struct cp_store_cache *c, uint64_t *version,
                   json_t *lists[ST_ENT__COUNT])
{
    struct cp_store_sql *q = sql(s);
    int rc;

    ST_ASSERT(!q->in_tx);
    memset(lists, 0, ST_ENT__COUNT * sizeof(lists[0]));
    if ((rc = exec0(q, q->d->begin_snapshot)) < 0) {
        return rc;
    }
    q->in_tx = true;
    rc = cp_store__version(s, version);
    for (int k = 0; rc == 0 && k < ST_ENT__COUNT; k++) {
        struct read rd = {c, (enum st_entity_kind)k, json_array()};
        struct cp_sql st;

        start(q, &st, "SELECT id, doc FROM %s ORDER BY id", q->kinds[k]->table);
        rc = run(q, &st, row_read, &rd, NULL);
        lists[k] = rd.arr;
    }
    cp_store__rollback(s); /* read-only: nothing to commit */
    for (int k = 0; rc < 0 && k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
        lists[k] = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* clear and count */

/* Whether a table not yet cleared refers to rels[i]. */
static bool
held(const struct cp_store_sql *q, const bool *done, size_t i)
{
    for (size_t j = 0; j < q->n_rels; j++) {
        if (!done[j] && refers_to(q->rels[j], q->rels[i]->table)) {
            return true;
        }
    }
    return false;
}

/* Deletes every table's rows, a table that others refer to after them, so that no
 * reference refuses a delete. */
int
cp_store__clear(struct cp_store *s)
{
    struct cp_store_sql *q = sql(s);
    bool *done = st_xcalloc(q->n_rels + 1, sizeof(*done));
    int rc = 0;

    ST_ASSERT(q->in_tx);
    for (size_t step = 0; rc == 0 && step < q->n_rels; step++) {
        struct cp_sql_res res = {0};
        struct cp_sql st;
        size_t i = 0;

        while (i < q->n_rels && (done[i] || held(q, done, i))) {
            i++;
        }
        for (i = i < q->n_rels ? i : 0; done[i]; i++) {
            /* a cycle of references: the first left, and the database decides */
        }
        done[i] = true;
        start(q, &st, "DELETE FROM %s", q->rels[i]->table);
        rc = run(q, &st, NULL, NULL, &res);
        q->dirty = q->dirty || (rc == 0 && res.changes > 0);
    }
    free(done);
    return rc;
}

int
cp_store__count(struct cp_store *s, enum st_entity_kind k, uint64_t *n)
{
    struct cp_store_sql *q = sql(s);
    struct cp_sql st;
    struct first f;
    int rc;

    ST_ASSERT((unsigned)k < ST_ENT__COUNT);
    start(q, &st, "SELECT COUNT(*) FROM %s", q->kinds[k]->table);
    if ((rc = first_row(q, &st, &f)) < 0) {
        return rc;
    }
    *n = f.num;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* tags */

/* Every (tag, entity) pair of every table, one page of them, ordered by tag, entity_name,
 * entity_id. Arguments: 1 the tag or NULL, 2-4 the offset's (tag, entity_name, entity_id)
 * or NULL, 5 the limit. */
int
cp_store__tags_page(struct cp_store *s, const char *tag, size_t size, const char *offset,
                    json_t **data, char **next_offset, struct st_err *err)
{
    struct cp_store_sql *q = sql(s);
    const char *co = q->d->collate;
    struct cp_sql st;
    json_t *off = NULL;
    int rc;

    *data = NULL;
    *next_offset = NULL;
    ST_ASSERT(size >= 1 && size <= CP_PAGE_SIZE_MAX);
    if (offset != NULL && (off = cp_store_tags_offset_parse(offset)) == NULL) {
        return st_err_set(err, -ST_EPARSE, "offset", "'%s' is not a valid offset: bad offset",
                          offset);
    }
    cp_sql_init(&st, q->d->ph);
    cp_sql_arg(&st, CP_SQL_TEXT, tag, 0);
    for (size_t i = 0; i < 3; i++) {
        cp_sql_arg(&st, CP_SQL_TEXT, json_string_value(json_array_get(off, i)), 0);
    }
    cp_sql_arg(&st, CP_SQL_INT, NULL, (int64_t)size + 1);
    cp_sql_add(&st, "SELECT tag, entity_name, entity_id FROM (");
    for (size_t i = 0; i < q->n_rels; i++) {
        cp_sql_add(&st, "%s", i > 0 ? " UNION ALL " : "");
        q->d->tags_pairs(&st, q->rels[i]->table);
    }
    cp_sql_add(&st, ") AS pairs WHERE (%c1 IS NULL OR tag = %c1) AND (%c2 IS NULL OR", st.ph, st.ph,
               st.ph);
    cp_sql_add(&st, " (tag, entity_name, entity_id) > (%c2%s, %c3%s, %c4%s))", st.ph, co, st.ph, co,
               st.ph, co);
    cp_sql_add(&st, " ORDER BY tag, entity_name, entity_id LIMIT %c5", st.ph);
    rc = page_run(q, &st, true, size, data, next_offset);
    json_decref(off);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the handle */

void
cp_store__init(struct cp_store_sql *q, const struct cp_store_ops *ops,
               const struct cp_store_dialect *d)
{
    q->base.ops = ops;
    q->d = d;
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        q->kinds[k] = cp_store_rel_of((enum st_entity_kind)k);
    }
    cp_store__use_rels(&q->base, NULL, 0);
}

void
cp_store__use_rels(struct cp_store *s, const struct cp_rel *const *rels, size_t n)
{
    sql(s)->rels = rels != NULL ? rels : sql(s)->kinds;
    sql(s)->n_rels = rels != NULL ? n : ST_ENT__COUNT;
}

int
cp_store__exec(struct cp_store *s, const char *text)
{
    return exec0(sql(s), text);
}

void
cp_store__close(struct cp_store *s)
{
    cp_store__rollback(s);
    sql(s)->d->close(sql(s));
}
