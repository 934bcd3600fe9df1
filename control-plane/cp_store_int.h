/* What the store backends (cp_store_sqlite.c, cp_store_pg.c) share: the tables'
 * layout, how an entity maps to columns, the write statements and the GET /tags offsets.
 * Only backends include this. */
#ifndef STRAIT_CP_STORE_INT_H
#define STRAIT_CP_STORE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_entity.h"

/* What each entity's table holds beside id, created_at, updated_at, tags and doc. */
struct cp_store_kind {
    const char *table;
    bool has_name;        /* a unique `name` column, the endpoint key */
    const char *fk_col;   /* a foreign key column, or NULL */
    const char *fk_field; /* the entity field {"id": ...} it comes from */
    const char *fk_table; /* the table it references */
    const char *uniq_col; /* another unique column (a string field of the same name) */
};

extern const struct cp_store_kind cp_store_kinds[ST_ENT__COUNT];

/* Children before parents, so that no foreign key refuses a delete. */
extern const enum st_entity_kind cp_store_clear_order[ST_ENT__COUNT];

/* One entity as the columns of its table. */
struct cp_store_cols {
    const char *id;
    const char *name;
    int64_t created_at;
    int64_t updated_at;
    const char *fk_id;
    const char *uniq;
    char *tags; /* malloc'd JSON text or NULL */
    char *doc;  /* malloc'd JSON text */
};

void cp_store_cols_from(enum st_entity_kind k, const json_t *obj, struct cp_store_cols *c);
void cp_store_cols_fini(struct cp_store_cols *c);

/* INSERT or UPDATE of kind k with fixed parameter numbers, written with the backend's
 * placeholder prefix ph ('?' for SQLite, '$' for Postgres): 1 name, 2 created_at,
 * 3 updated_at, 4 tags, 5 doc, 6 id, 7 the foreign key, 8 the other unique.
 * Returns 0 or -ENOSPC. */
int cp_store_write_sql(enum st_entity_kind k, bool insert, char ph, char *sql, size_t size);

/* What the shared checks below ask of a backend. exists: whether a row of table has
 * col = val (and an id other than not_id, when given): 1, 0 or a negative code. ca_user:
 * the first service (by id) whose ca_certificates hold ca_id: 1 with sid filled, 0 when
 * none, or a negative code. */
struct cp_store_probe {
    int (*exists)(void *ctx, const char *table, const char *col, const char *val,
                  const char *not_id);
    int (*ca_user)(void *ctx, const char *ca_id, char sid[64]);
    void *ctx;
};

struct st_err;

/* The unique and foreign-key checks of a write, before the database would refuse, so that
 * the error names the field and the value as Kong does (-ST_EPKEY, -ST_EUNIQUE,
 * -ST_EFOREIGN; the database's constraints stay as the backstop). */
int cp_store_check_write(const struct cp_store_probe *p, enum st_entity_kind k, const json_t *obj,
                         const struct cp_store_cols *c, bool insert, struct st_err *err);

/* Refuses to delete what another entity still references (-ST_EREFERENCED, with Kong's
 * message for a CA certificate); snis go with their certificate. */
int cp_store_check_refs(const struct cp_store_probe *p, enum st_entity_kind k, const char *id,
                        struct st_err *err);

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
struct cp_store_cache;
json_t *cp_store_cache_doc(struct cp_store_cache *c, enum st_entity_kind k, const char *id,
                           const char *text, size_t len);

#endif
