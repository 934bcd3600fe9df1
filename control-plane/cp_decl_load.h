/* Declarative configuration and the store: parses a document with st_decl against the
 * entities already stored (so a re-loaded file without ids keeps its ids and created_at)
 * and writes it in ONE write transaction, all or nothing; exports the store as a
 * document. Shared by POST/GET /config (cp_admin_config.c) and `strait-cp config
 * db_import|db_export` (cp_main.c). No HTTP, no files.
 *
 * The parse runs before the write lock is taken (issue 14: a large document held every
 * other admin write, and on Postgres every CP's), so an invalid document never takes it;
 * the lock is held for the writes only. */
#ifndef STRAIT_CP_DECL_LOAD_H
#define STRAIT_CP_DECL_LOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_entity.h"
#include "st_err.h"

struct cp_store;
struct cp_snapshot;

enum cp_decl_mode {
    /* POST /config: the document becomes the whole configuration (clear, then insert). */
    CP_DECL_REPLACE = 0,
    /* db_import, Kong's load_into_db: every entity of the document is upserted by id
     * (an entity found by name takes the stored id); entities the document does not
     * name stay. */
    CP_DECL_UPSERT,
};

/* What a load must leave sendable (issue 14). */
struct cp_decl_limits {
    struct cp_snapshot *snap; /* the CP's snapshot builder (cp_snapshot_fit); NULL: only a
                               * CP_DECL_REPLACE load is checked (its size is the
                               * document's, whatever is stored) */
    int64_t max_payload;      /* cluster_max_payload */
};

/* What a load did or why it failed. */
struct cp_decl_result {
    json_t *lists[ST_ENT__COUNT]; /* on success: the entities written (store shape) */
    json_t *error;                /* -ST_ESCHEMA: Kong's code-14 body from st_decl_parse */
    enum st_entity_kind kind;     /* a store error: the kind being written */
    struct st_err err;            /* a store error: the store's details */
};

/* Parses len bytes of text (YAML or JSON), reading st for the ids of the entities it
 * names without one, then writes them into st in one write transaction (begun and
 * committed here; the caller holds no transaction). When another write committed
 * between the parse and the lock, the names looked up are looked up again and the parse
 * is redone if one changed (the last of CP_DECL_ATTEMPTS parses holds the lock).
 * lim (NULL: none) refuses a load after which the snapshot would be beyond
 * lim->max_payload.
 *
 * Returns 0 with r->lists set, or a negative code with nothing changed: -ST_ESCHEMA
 * (r->error set: the document is invalid), -ST_ETOOBIG (r->err.msg names both sizes), a
 * store error from the insert or update of an entity of kind r->kind (-ST_EUNIQUE,
 * -ST_EFOREIGN, -ST_EPKEY with r->err filled), or -ST_EDB / -ST_EDBDOWN. Release r
 * with cp_decl_result_fini() in every case. */
int cp_decl_load(struct cp_store *st, const char *text, size_t len, enum cp_decl_mode mode,
                 const struct cp_decl_limits *lim, struct cp_decl_result *r);

#define CP_DECL_ATTEMPTS 3

void cp_decl_result_fini(struct cp_decl_result *r);

/* One consistent read of st written as a document (YAML, or JSON when yaml is false).
 * Returns 0 and *out (malloc'd, NUL-terminated, *len bytes; the caller frees it), or
 * -ST_EDB / -ENOMEM. */
int cp_decl_export(struct cp_store *st, bool yaml, char **out, size_t *len);

/* Kong's message for a store error rc on kind k (as kong/db/errors.lua words it), e.g.
 * `UNIQUE violation detected on '{name="foo"}'`, into buf. */
void cp_decl_store_msg(enum st_entity_kind k, int rc, const struct st_err *err, char *buf,
                       size_t size);

/* The errors of a code-14 body as Kong's CLI prints them (pretty_print_error: one line
 * per error, nested with "in '<field>':" and "- in entry N of '<list>':"), or its
 * message when it has no fields. Returns a malloc'd string without a final newline. */
char *cp_decl_error_text(const json_t *error);

#endif
