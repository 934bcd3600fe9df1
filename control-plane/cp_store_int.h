/* Inside the store: the relation model every SQL statement is composed from
 * (cp_store_rel_of), the composer (struct cp_sql), and what a SQL backend supplies, an
 * executor and a dialect (struct cp_store_dialect). The statements themselves are written
 * once, in cp_store_sql.c; cp_store_sqlite.c and cp_store_pg.c only run them and say how
 * their SQL differs. Only the store's files (and its unit test) include this. */
#ifndef STRAIT_CP_STORE_INT_H
#define STRAIT_CP_STORE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_store.h"
#include "st_entity.h"

struct st_err;

/* ------------------------------------------------------------------------ */
/* relations */

/* Bounds of a kind's description (each array has one more slot, always empty, that ends
 * it). */
#define CP_REL_COLS_MAX 8 /* columns beside id, created_at, updated_at, tags, doc */
#define CP_REL_KEYS_MAX 4 /* unique keys beside the id */
#define CP_REL_KEY_COLS 4 /* columns of one key: plugins' name, route, service, consumer */
#define CP_REL_SETS_MAX 2 /* sets of references */

enum cp_rel_del {
    CP_REL_RESTRICT = 0, /* the referenced entity cannot go while this one refers to it */
    CP_REL_CASCADE,      /* this one goes with it (the DDL says ON DELETE CASCADE) */
};

/* A column beside id, created_at, updated_at, tags and doc: a string field of the entity,
 * or a foreign key (the field is {"id": ...}). */
struct cp_rel_col {
    const char *name;  /* "name", "cert_digest", "service_id" */
    const char *field; /* the entity's field it holds: "name", "service" */
    const char *ref;   /* a foreign key: the table it references; NULL: a string field */
    bool nullable;     /* foreign key: the field may be absent or null */
    enum cp_rel_del on_delete;
    bool parent; /* foreign key: the entity nests under the one it references
                  * (/<ref>/{id}/<table>): listings and lookups can be scoped to it */
};

/* A unique key beside the id. NULLs compare equal within a key, as Kong's cache_key does
 * (two global plugins of one name collide); a key whose values are all NULL is not
 * checked (unnamed services never collide). A unique index over expressions is named
 * <table>_<col>[_<col>...]_key, as Postgres names a key, so that a refusal names the key. */
struct cp_rel_key {
    const char *cols[CP_REL_KEY_COLS + 1]; /* column names */
};

/* A set of references to another kind: an array of ids in the entity
 * (services.ca_certificates). The doc holds it; a backend may keep it as rows of a join
 * table too, so that the database enforces it (Postgres). A referenced entity cannot go
 * while a set holds it. */
struct cp_rel_set {
    const char *field;   /* "ca_certificates" */
    const char *ref;     /* the table referenced: "ca_certificates" */
    const char *join;    /* the join table: "services_ca_certificates" */
    const char *own_col; /* its column of this entity's id: "service_id" */
    const char *ref_col; /* its column of the referenced id: "ca_certificate_id" */
};

/* What one kind's table holds and how it relates to the others. */
struct cp_rel {
    const char *table;    /* "services": also the entity_name of GET /tags */
    const char *singular; /* "service"; "ca_certificate" says "ca certificate" in messages */
    const char *endpoint; /* the column a key that is not a UUID finds ("name"); NULL: by id
                           * only */
    bool nested_only;     /* the endpoint key is unique only under the parent, so it finds an
                           * entity only through it (targets: /upstreams/{u}/targets/{t}) */
    struct cp_rel_col cols[CP_REL_COLS_MAX + 1];
    struct cp_rel_key keys[CP_REL_KEYS_MAX + 1];
    struct cp_rel_set sets[CP_REL_SETS_MAX + 1];
};

/* The relations of kind k, for as long as the process lives. The one place that knows
 * the kinds' columns, keys and references. */
const struct cp_rel *cp_store_rel_of(enum st_entity_kind k);

/* ------------------------------------------------------------------------ */
/* composing statements */

enum cp_sql_type {
    CP_SQL_TEXT = 0,
    CP_SQL_INT,
    CP_SQL_JSON, /* JSON text: jsonb in Postgres, text in SQLite */
};

struct cp_sql_arg {
    enum cp_sql_type type;
    const char *text; /* TEXT and JSON; NULL: SQL NULL. Not owned */
    int64_t num;      /* INT */
};

#define CP_SQL_ARGS_MAX 24

/* A statement and its arguments, numbered in the order they were added (?1 or $1, by the
 * dialect's placeholder character). Argument texts are borrowed: they must outlive the run. */
struct cp_sql {
    char *text; /* NUL-terminated: buf, or malloc'd once it outgrows it (never copy a cp_sql) */
    size_t len, cap;
    char ph;
    int n;
    struct cp_sql_arg args[CP_SQL_ARGS_MAX];
    char buf[512];
};

void cp_sql_init(struct cp_sql *st, char ph);
void cp_sql_fini(struct cp_sql *st);
/* Appends text (printf). */
void cp_sql_add(struct cp_sql *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the placeholder of a new argument. */
void cp_sql_text(struct cp_sql *st, const char *v);
void cp_sql_int(struct cp_sql *st, int64_t v);
void cp_sql_json(struct cp_sql *st, const char *v);
/* Appends the placeholder of argument i (1-based) again. */
void cp_sql_ref(struct cp_sql *st, int i);
/* Adds an argument without its placeholder; returns its number. */
int cp_sql_arg(struct cp_sql *st, enum cp_sql_type type, const char *text, int64_t num);

/* ------------------------------------------------------------------------ */
/* what a SQL backend supplies */

/* One row of a result: column i as text of len[i] bytes, NULL for SQL NULL. */
struct cp_sql_row {
    int n;
    const char *col[8];
    size_t len[8];
};

/* Returns 0 for the next row, > 0 to stop, < 0 to fail the run with that code. */
typedef int cp_sql_row_fn(void *arg, const struct cp_sql_row *row);

/* What a failed statement's constraint was, as the dialect reads it. */
enum cp_sql_cons_kind {
    CP_CONS_NONE = 0, /* not a constraint of these (or the server is away) */
    CP_CONS_PKEY,
    CP_CONS_UNIQUE,
    CP_CONS_FOREIGN,
};

struct cp_sql_res {
    uint64_t changes; /* rows the statement wrote */
    enum cp_sql_cons_kind cons;
    char cons_name[128]; /* the constraint's name as Postgres names it by default,
                          * <table>_<col>[_<col>...]_key or <table>_<col>_fkey (a DDL that
                          * names one names it so); "" when the database does not say */
    char msg[256];       /* the database's message */
};

struct cp_store_sql;

struct cp_store_dialect {
    char ph; /* placeholders: '?' ?1 ?2 (SQLite), '$' $1 $2 (Postgres) */
    const char *begin_write, *begin_snapshot; /* a consistent read; a read is plain BEGIN */
    const char *write_lock;                   /* run after begin_write, or NULL */
    const char *collate; /* appended to a text argument compared with a column */

    /* The executor: runs st, calling fn (may be NULL) for each row. Returns 0, or a negative
     * code (-ST_EDB, -ST_EDBDOWN or fn's) with the failure logged and, when res is given,
     * read into it. */
    int (*run)(struct cp_store_sql *q, const struct cp_sql *st, cp_sql_row_fn *fn, void *arg,
               struct cp_sql_res *res);
    void (*close)(struct cp_store_sql *q);
    /* Run after the version bump, in the transaction that commits it; NULL: nothing. */
    const char *on_bump;

    /* The dialect: " AND <the tags column holds any (all) of a JSON array of tags>". */
    void (*tags_match)(struct cp_sql *st, const char *tags_json, bool any);
    /* One table's SELECT of (tag, entity_name, entity_id) for every tag of every row. */
    void (*tags_pairs)(struct cp_sql *st, const char *table);
    /* A SELECT of the ids of r whose set holds ref_id, ordered by id (without a LIMIT). */
    void (*set_member)(struct cp_sql *st, const struct cp_rel *r, const struct cp_rel_set *set,
                       const char *ref_id);
    /* Keeps an entity's set as rows, after the entity's write; NULL: the doc is enough. */
    int (*set_write)(struct cp_store_sql *q, const struct cp_rel_set *set, const char *id,
                     const json_t *ids, struct cp_sql_res *res);
};

/* The handle of a SQL backend: cp_store's, then what the shared statements need. */
struct cp_store_sql {
    struct cp_store base; /* first */
    const struct cp_store_dialect *d;
    const struct cp_rel *kinds[ST_ENT__COUNT]; /* cp_store_rel_of(k) */
    const struct cp_rel *const *rels;          /* every kind in the database: kinds, unless the unit
                                                * test says otherwise (cp_store__use_rels) */
    size_t n_rels;
    bool in_tx;
    bool dirty; /* the open transaction wrote */
};

/* Sets up the shared part of a backend's handle (ops, dialect, the described kinds). */
void cp_store__init(struct cp_store_sql *q, const struct cp_store_ops *ops,
                    const struct cp_store_dialect *d);

/* The operations every SQL backend shares, for its ops table. A kind k is an index into
 * the handle's relations (cp_store__use_rels): the described kinds, then the unit test's. */
int cp_store__begin(struct cp_store *s, bool write);
int cp_store__commit(struct cp_store *s);
void cp_store__rollback(struct cp_store *s);
int cp_store__get(struct cp_store *s, enum st_entity_kind k, const char *key, json_t **out);
/* cp_store_get_in; parent_id NULL: unscoped (cp_store__get). */
int cp_store__get_in(struct cp_store *s, enum st_entity_kind k, const char *parent_field,
                     const char *parent_id, const char *key, json_t **out);
int cp_store__write(struct cp_store *s, enum st_entity_kind k, const json_t *obj, bool insert,
                    struct st_err *err);
int cp_store__remove(struct cp_store *s, enum st_entity_kind k, const char *id, struct st_err *err);
int cp_store__page(struct cp_store *s, enum st_entity_kind k, const struct cp_page_opts *o,
                   json_t **data, char **next_offset, struct st_err *err);
int cp_store__read_all(struct cp_store *s, struct cp_store_cache *c, uint64_t *version,
                       json_t *lists[ST_ENT__COUNT]);
int cp_store__version(struct cp_store *s, uint64_t *version);
int cp_store__clear(struct cp_store *s);
int cp_store__count(struct cp_store *s, enum st_entity_kind k, uint64_t *n);
int cp_store__tags_page(struct cp_store *s, const char *tag, size_t size, const char *offset,
                        json_t **data, char **next_offset, struct st_err *err);
void cp_store__close(struct cp_store *s);

#define CP_STORE_SQL_OPS(NAME)                                                                     \
    .name = (NAME), .begin = cp_store__begin, .commit = cp_store__commit,                          \
    .rollback = cp_store__rollback, .get = cp_store__get, .get_in = cp_store__get_in,              \
    .write = cp_store__write, .remove = cp_store__remove, .page = cp_store__page,                  \
    .read_all = cp_store__read_all, .version = cp_store__version, .clear = cp_store__clear,        \
    .count = cp_store__count, .tags_page = cp_store__tags_page, .close = cp_store__close

/* Makes rels (n of them, borrowed; the described kinds first, in order) every kind the handle
 * knows, for the unit test's kinds that cp_store_rel_of does not know yet; NULL: the described
 * kinds again. */
void cp_store__use_rels(struct cp_store *s, const struct cp_rel *const *rels, size_t n);
/* Runs one statement with no argument (the unit test's DDL). 0 or a negative code. */
int cp_store__exec(struct cp_store *s, const char *sql);

/* One step of a backend's versioned schema (recorded in its schema_migrations). */
struct cp_store_migration {
    int version;
    const char *name; /* Kong's style: "000_base" */
    const char *sql;  /* statements, each ending with ';' */
};

/* ------------------------------------------------------------------------ */
/* shared helpers (cp_store.c) */

/* A GET /tags offset is the hex of the JSON text ["<tag>", "<entity_name>", "<entity_id>"]
 * of the last pair of the page before: opaque to clients and safe in a query string.
 * make returns a malloc'd offset; parse a new array of three strings, or NULL when the
 * text is not an offset. */
char *cp_store_tags_offset_make(const char *tag, const char *entity_name, const char *entity_id);
json_t *cp_store_tags_offset_parse(const char *offset);

/* read_all with a cache (cp_store_read_all_cached): the object for the row of kind k
 * with this id and stored text (len bytes, not NUL-terminated), as a new reference:
 * the cached one when the text is the same as at the last read, else parsed (NULL: not
 * JSON). c NULL: parsed. */
json_t *cp_store_cache_doc(struct cp_store_cache *c, enum st_entity_kind k, const char *id,
                           const char *text, size_t len);

#endif
