/* The control plane's store: one interface (an ops table) over the database
 * backends: SQLite (cp_store_sqlite.c), the embedded default, and Postgres
 * (cp_store_pg.c), which several CPs share. Entities go in and come out as jansson objects in
 * Kong's admin-API shape with created_at/updated_at in milliseconds.
 *
 * A handle is used by one thread at a time. Writes happen inside an explicit
 * transaction (begin/commit/rollback); the config version in the database is bumped
 * by the commit of every transaction that wrote, so every CP sees one sequence. */
#ifndef STRAIT_CP_STORE_H
#define STRAIT_CP_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_entity.h"

struct st_conf;
struct st_err;
struct cp_store;
struct cp_store_cache;

#define CP_PAGE_SIZE_DEFAULT 100
#define CP_PAGE_SIZE_MAX     1000

/* One page of a collection, ordered by id. */
struct cp_page_opts {
    size_t size;              /* 1..CP_PAGE_SIZE_MAX */
    const char *offset;       /* opaque offset from the previous page, NULL: first page */
    const char *parent_id;    /* only the children of that entity (routes: of that service;
                               * snis: of that certificate); NULL: all */
    const char *parent_field; /* the foreign key parent_id is for ("service"); NULL: the
                               * kind's parent. A kind without one ignores parent_id */
    const json_t *tags;       /* array of strings to filter on, NULL: none */
    bool tags_any;            /* true: an entity with any of the tags; false: all of them */
};

struct cp_store_ops {
    const char *name;
    /* A write transaction takes the write lock at once, and its commit bumps the config
     * version if it wrote. */
    int (*begin)(struct cp_store *s, bool write);
    int (*commit)(struct cp_store *s);
    void (*rollback)(struct cp_store *s);
    int (*get)(struct cp_store *s, enum st_entity_kind k, const char *id_or_name, json_t **out);
    /* cp_store_get_in; NULL: a store that cannot scope a lookup */
    int (*get_in)(struct cp_store *s, enum st_entity_kind k, const char *parent_field,
                  const char *parent_id, const char *key, json_t **out);
    /* cp_store_insert (insert true) or cp_store_update */
    int (*write)(struct cp_store *s, enum st_entity_kind k, const json_t *obj, bool insert,
                 struct st_err *err);
    int (*remove)(struct cp_store *s, enum st_entity_kind k, const char *id, struct st_err *err);
    int (*page)(struct cp_store *s, enum st_entity_kind k, const struct cp_page_opts *o,
                json_t **data, char **next_offset, struct st_err *err);
    /* cache NULL: parse every row; else through cp_store_cache_doc (cp_store_int.h) */
    int (*read_all)(struct cp_store *s, struct cp_store_cache *cache, uint64_t *version,
                    json_t *lists[ST_ENT__COUNT]);
    int (*version)(struct cp_store *s, uint64_t *version);
    int (*clear)(struct cp_store *s);
    int (*count)(struct cp_store *s, enum st_entity_kind k, uint64_t *n);
    int (*tags_page)(struct cp_store *s, const char *tag, size_t size, const char *offset,
                     json_t **data, char **next_offset, struct st_err *err);
    /* The shared data-plane registry (cp_store_dps_*); NULL where the store is not shared
     * between CPs (SQLite). */
    int (*dps_save)(struct cp_store *s, const json_t *seen, const json_t *gone,
                    int64_t purge_before_ms);
    int (*dps_page)(struct cp_store *s, const char *after, size_t limit, int64_t seen_since_ms,
                    json_t **rows);
    void (*close)(struct cp_store *s);
};

/* What the open write transaction does to the encoded snapshot's size (issue 14):
 * cp_store_insert and cp_store_update count what their entity adds to it (an update less
 * what it replaces), through st_snapshot_entity_size. Deletions are not counted (they only
 * shrink it), so `bytes` is an upper bound. */
struct cp_store_growth {
    int64_t bytes;
    bool cleared; /* cp_store_clear ran: what was stored before no longer counts */
    bool wrote;   /* an insert or update succeeded, so the commit bumps the version */
};

/* Every backend's handle starts with this. */
struct cp_store {
    const struct cp_store_ops *ops;
    struct cp_store_growth tx; /* of the open transaction; reset by cp_store_begin */
};

/* Opens the backend `conf->database` names, creating and migrating the schema where the
 * backend migrates itself (SQLite; Postgres refuses a schema that is missing or behind,
 * naming the `strait-cp migrations` command to run). Returns 0 and a handle closed with
 * cp_store_close(), or a negative code with err filled. */
int cp_store_open(const struct st_conf *conf, struct cp_store **out, struct st_err *err);

/* Opens one Postgres connection as a store handle (conf's pg_* keys). A handle whose
 * connection broke reconnects at its next begin or read. Every operation that cannot reach
 * the server returns -ST_EDBDOWN (instead of -ST_EDB). */
int cp_store_pg_open(const struct st_conf *conf, struct cp_store **out, struct st_err *err);

/* Opens the SQLite store at path (created and migrated if needed), with PRAGMA
 * synchronous = NORMAL, or FULL with CP_STORE_SQLITE_F_SYNC_FULL in flags. */
int cp_store_sqlite_open(const char *path, struct cp_store **out, struct st_err *err);

enum cp_store_sqlite_flags {
    CP_STORE_SQLITE_F_SYNC_FULL = 1 << 0, /* sqlite_synchronous = full */
};

int cp_store_sqlite_open_flags(const char *path, unsigned flags, struct cp_store **out,
                               struct st_err *err);

/* The handle's PRAGMA synchronous as SQLite reads it back (1 NORMAL, 2 FULL), or a
 * negative code. s must be a SQLite handle. */
int cp_store_sqlite_synchronous(struct cp_store *s);

void cp_store_close(struct cp_store *s);

int cp_store_begin(struct cp_store *s, bool write);
int cp_store_commit(struct cp_store *s);
void cp_store_rollback(struct cp_store *s);

/* Finds an entity by id (when id_or_name is a UUID) or else by name (services, routes,
 * snis; certificates and ca_certificates are found by id only). Returns 0 and a new
 * object the caller releases (json_decref), or -ST_ENOTFOUND, or -ST_EDB. */
int cp_store_get(struct cp_store *s, enum st_entity_kind k, const char *id_or_name, json_t **out);

/* cp_store_get among the children of parent_id by its foreign key parent_field (NULL: the
 * kind's parent): a nested-only kind (targets) is found by its endpoint key only this
 * way. Same returns, and -ST_EUNSUPPORTED from a store that cannot scope. */
int cp_store_get_in(struct cp_store *s, enum st_entity_kind k, const char *parent_field,
                    const char *parent_id, const char *key, json_t **out);

/* Inserts a validated entity (id, created_at set). Inside a write transaction.
 * Returns 0, -ST_EPKEY (id exists, err->field "id", err->msg the id), -ST_EUNIQUE
 * (err->field "name" or "cert_digest", err->msg the value; for a key of several fields,
 * err->field names them with commas, "upstream,target", and err->msg is Kong's `fields`
 * of the 409 as JSON text, {"target":"a:80","upstream":{"id":"..."}}), -ST_EFOREIGN
 * (err->field the referencing field: "service", "certificate", "client_certificate" or
 * "ca_certificates"; err->msg the id that does not exist), -ST_ESCHEMA (a required
 * reference is missing: err->field names it) or -ST_EDB. */
int cp_store_insert(struct cp_store *s, enum st_entity_kind k, const json_t *obj,
                    struct st_err *err);

/* Replaces the entity with obj's id. Same errors as insert, plus -ST_ENOTFOUND. */
int cp_store_update(struct cp_store *s, enum st_entity_kind k, const json_t *obj,
                    struct st_err *err);

void cp_store_growth(const struct cp_store *s, struct cp_store_growth *g);

/* Deletes by id; what references it with a cascade goes with it (a certificate's snis).
 * Returns 0 (also when absent), -ST_EREFERENCED with err->field the referencing collection
 * (a service that routes use: "routes"; a certificate that a service uses as
 * client_certificate: "services"; a CA certificate in a service's ca_certificates:
 * "services", with err->msg Kong's message "ca certificate <id> is still referenced by
 * services (id = <service id>)"), or -ST_EDB. */
int cp_store_remove(struct cp_store *s, enum st_entity_kind k, const char *id, struct st_err *err);

/* One page: *data is a new array, *next_offset a malloc'd offset for the next page or
 * NULL on the last one. Returns 0, -ST_EPARSE for a bad offset (err->msg says why), or
 * -ST_EDB. */
int cp_store_page(struct cp_store *s, enum st_entity_kind k, const struct cp_page_opts *o,
                  json_t **data, char **next_offset, struct st_err *err);

/* One consistent read (its own transaction) of the config version and every entity:
 * lists[k] is a new array of the entities of kind k ordered by id, owned by the caller.
 * Returns 0, or -ST_EDB with every lists[k] NULL. */
int cp_store_read_all(struct cp_store *s, uint64_t *version, json_t *lists[ST_ENT__COUNT]);

/* The entities of the last cp_store_read_all_cached, each with a digest of its stored
 * text, so that the next read parses only the rows whose text changed (at 100k routes
 * the parse is most of a read). For one thread at a time, with one store. */
struct cp_store_cache *cp_store_cache_new(void);
void cp_store_cache_free(struct cp_store_cache *c);

/* cp_store_read_all through the cache: unchanged rows come back as the objects of the
 * last read (shared references: read-only, as every list from the store is). Rows
 * parsed anew and rows reused, of this read, in *parsed and *reused (may be NULL). */
int cp_store_read_all_cached(struct cp_store *s, struct cp_store_cache *c, uint64_t *version,
                             json_t *lists[ST_ENT__COUNT], size_t *parsed, size_t *reused);

int cp_store_version(struct cp_store *s, uint64_t *version);

/* Deletes every entity, inside a write transaction: POST /config and
 * `strait-cp config db_import` replace the whole configuration this way (clear, then
 * insert everything, then commit: one version bump). Returns 0 or -ST_EDB. */
int cp_store_clear(struct cp_store *s);

/* GET /status */
int cp_store_count(struct cp_store *s, enum st_entity_kind k, uint64_t *n);

/* One page of GET /tags (tag NULL) or /tags/{tag}: every (tag, entity) pair, ordered by
 * tag, then entity_name, then entity_id. *data is a new array of
 * {"entity_name": "services", "entity_id": "<uuid>", "tag": "<tag>"}; *next_offset as
 * cp_store_page. size is 1..CP_PAGE_SIZE_MAX. Returns 0, -ST_EPARSE for a bad offset
 * (err->msg says why), or -ST_EDB. */
int cp_store_tags_page(struct cp_store *s, const char *tag, size_t size, const char *offset,
                       json_t **data, char **next_offset, struct st_err *err);

/* ------------------------------------------------------------------------ */
/* the data-plane registry several CPs share (Postgres) */

bool cp_store_dps_shared(const struct cp_store *s);

/* In one transaction of its own (no config version bump, no writer lock): upserts each
 * record of `seen` (an array of {"id", "last_seen_ms", "doc"}; a row already seen later,
 * through another CP, is kept), deletes each of `gone` ({"id", "at_ms"}: unless seen
 * after at_ms), and deletes every row last seen before purge_before_ms. Returns 0,
 * -ST_EUNSUPPORTED (not shared), -ST_EDBDOWN or -ST_EDB. */
int cp_store_dps_save(struct cp_store *s, const json_t *seen, const json_t *gone,
                      int64_t purge_before_ms);

/* Up to `limit` records (as dps_save took them) whose id sorts after `after` (NULL: from
 * the first) and that were seen at or after seen_since_ms, ordered by id: *rows is a new
 * array. Returns 0, -ST_EUNSUPPORTED, -ST_EDBDOWN or -ST_EDB. */
int cp_store_dps_page(struct cp_store *s, const char *after, size_t limit, int64_t seen_since_ms,
                      json_t **rows);

#endif
