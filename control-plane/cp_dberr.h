/* Kong's errors for the store's failures (kong/db/errors.lua: codes, names, messages and
 * `fields`), in one place for the admin API (cp_admin) and the declarative load
 * (cp_decl_load, strait-cp config db_import). Which collection a foreign key names comes
 * from the entity descriptions (st_entity_ref). */
#ifndef STRAIT_CP_DBERR_H
#define STRAIT_CP_DBERR_H

#include <jansson.h>

#include "st_entity.h"

struct st_err;

/* Kong's error body for a failed operation on an entity of kind k. */
struct cp_dberr {
    int status;    /* the HTTP status */
    int code;      /* Kong's code; 0: a plain {"message": msg} body */
    char name[96]; /* Kong's name of the code */
    char msg[768];
    json_t *fields; /* new reference or NULL: the body's "fields" */
};

/* Fills *out for the store or lookup failure rc (e filled as cp_store.h says; NULL: none):
 *   -ST_EPKEY       400, 3 "primary key violation on key '{id="<id>"}'"
 *   -ST_EPARSE      400, 1 "invalid primary key: '{id="<key>"}'"; e->field an endpoint key
 *                   ("name"): 400, 10, "invalid unique name", e->msg (Kong's invalid_unique:
 *                   a path key that is no valid value of the endpoint key)
 *   -ST_EFOREIGN    400, 4 "the foreign key '{id="<id>"}' does not reference an existing
 *                   '<collection>' entity."; e->field "<fk>.<key>" (a key written by the
 *                   referenced kind's endpoint key, not found): 400, 13, Kong's
 *                   foreign_keys_unresolved
 *   -ST_EREFERENCED 400, 4 "an existing '<e->field>' entity references this '<k>' entity";
 *                   a kind referenced through a foreign set (services.ca_certificates):
 *                   400, 19, the message e->msg (Kong checks those in the referenced
 *                   kind's DAO, kong/db/dao/ca_certificates.lua)
 *   -ST_EUNIQUE     409, 5 "UNIQUE violation detected on '{<field>="<value>"}'"
 *   -ST_ENOTFOUND   404 {"message": e->msg, or "Not found"}
 *   anything else   500 {"message": "An unexpected error occurred"}
 * Release out->fields (or hand it on). */
void cp_dberr_of(enum st_entity_kind k, int rc, const struct st_err *e, struct cp_dberr *out);

/* s as a JSON string (new reference) for an error body, which may echo what a client sent
 * in a path or a query argument, which need not be UTF-8: each byte that starts no UTF-8
 * character is written %HH, as the URL carried it, so every error has its body. */
json_t *cp_dberr_text(const char *s);

#endif
