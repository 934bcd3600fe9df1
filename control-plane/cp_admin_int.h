/* Shared between cp_admin.c (routing, node endpoints, bodies, errors),
 * cp_admin_entity.c (every entity's generated endpoints) and cp_admin_cert.c (the
 * certificates' `snis` shorthand). Not an API. */
#ifndef STRAIT_CP_ADMIN_INT_H
#define STRAIT_CP_ADMIN_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "cp_admin.h"
#include "st_entity.h"

struct cp_store;
struct st_err;

/* Sets the status and body (takes `body`; NULL: no body). */
void cp_admin__reply(struct cp_response *rs, int status, json_t *body);
/* msg as a JSON string (new reference). A message may echo what a client sent in a path
 * or a query argument, which need not be UTF-8: each byte that starts no UTF-8 character
 * is written %HH, as the URL carried it, so every error has its body. */
json_t *cp_admin__text(const char *msg);

/* {"message": msg} (msg through cp_admin__text) */
void cp_admin__reply_msg(struct cp_response *rs, int status, const char *msg);
/* Kong's error body for a store or schema failure rc; fields (taken) for schema errors. */
void cp_admin__reply_err(struct cp_response *rs, enum st_entity_kind k, int rc,
                         const struct st_err *e, json_t *fields);
/* Kong's DATABASE_ERROR code (kong/db/errors.lua). */
#define CP_ADMIN_DATABASE_ERROR 8

/* The database cannot be reached (-ST_EDBDOWN): 503, Retry-After: 5 and
 * {"code": 8, "name": "database error", "message": "database unreachable, try again
 * later"}. cp_admin__reply_err answers this way for -ST_EDBDOWN; any other store failure
 * (-ST_EDB, ...) is a 500. */
void cp_admin__reply_db_down(struct cp_response *rs);
/* {"code": code, "name": name, "message": msg} plus fields (taken) if not NULL (msg through
 * cp_admin__text). */
void cp_admin__reply_code(struct cp_response *rs, int status, int code, const char *name,
                          const char *msg, json_t *fields);

/* The body of a POST/PUT/PATCH as an object, or NULL after replying with the error. */
json_t *cp_admin__body(const struct cp_request *rq, struct cp_response *rs);

/* A copy of a stored entity for output: created_at/updated_at in seconds. */
json_t *cp_admin__render(const json_t *obj);

bool cp_admin__is(const struct cp_request *rq, const char *method);

/* Whether a Content-Type value names `type` (parameters after ';' ignored). */
bool cp_admin__ct_is(const char *ct, const char *type);

/* A collection: /services, /routes, /certificates, /snis, /ca_certificates; nested
 * /services/{s}/routes and /certificates/{c}/snis (parent = s or c). */
void cp_admin__collection(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                          enum st_entity_kind k, const char *parent);
/* One entity: /<collection>/{key} and the nested /services/{s}/routes/{key},
 * /certificates/{c}/snis/{key} (parent = s or c). */
void cp_admin__entity(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                      enum st_entity_kind k, const char *key, const char *parent);
/* /routes/{r}/service */
void cp_admin__route_service(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                             const char *route);

/* Parses ?size= of a list (default CP_PAGE_SIZE_DEFAULT); replies Kong's 400 "invalid
 * size" and returns -1 when it is bad (cp_admin_entity.c; also GET /tags). */
int cp_admin__page_size(const struct cp_request *rq, struct cp_response *rs, size_t *size);

/* Kong's invalid offset (400, code 7) for a bad ?offset= (cp_admin_entity.c; also GET
 * /clustering/data-planes). Kong's offsets are base64, so an offset that is not base64
 * text is "'<offset>' is not a valid offset: bad base64 encoding" there; any other bad one
 * answers msg. */
void cp_admin__offset_error(struct cp_response *rs, const char *offset, const char *msg);

/* Percent-encodes s (all but RFC 3986 unreserved bytes) into a new string the caller
 * frees (cp_admin_entity.c; also GET /tags). */
char *cp_admin__escape(const char *s);

/* GET /endpoints (cp_admin_meta.c) */
void cp_admin__endpoints(struct cp_response *rs);
/* GET /schemas/{name} (cp_admin_meta.c) */
void cp_admin__schema_get(struct cp_response *rs, const char *name);
/* Kong's JSON form of kind k's schema, {"fields": [...], "entity_checks": [...]}, for the
 * fields st_schema accepts (cp_admin_schemas.c). A new object, or NULL (logged) when a
 * field st_schema knows has no description. */
json_t *cp_admin__schema_describe(enum st_entity_kind k);
/* GET /tags (tag NULL) and GET /tags/{tag} (cp_admin_tags.c) */
void cp_admin__tags(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                    const char *tag);
/* GET and POST /config (cp_admin_config.c) */
void cp_admin__config(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs);
/* POST /schemas/{name}/validate (cp_admin_meta.c) */
void cp_admin__schema_validate(const struct cp_request *rq, struct cp_response *rs,
                               const char *name);

/* The certificates' `snis` shorthand (cp_admin_cert.c); all run on the caller's store
 * handle, taken from the pool, inside its transaction for writes. */

/* Takes `snis` out of a certificate write's body. *names is NULL when the write leaves
 * the certificate's snis alone (absent on POST/PATCH), else a new array of the names to
 * keep (empty for null, or absent on PUT); a PUT by SNI name (put_name not NULL) adds
 * that name. Returns 0, or -ST_ESCHEMA with *fields set (not an array of strings; a
 * duplicated name). */
int cp_admin__cert_snis_take(json_t *body, const char *put_name, json_t **names, json_t **fields);

/* Refuses names that another certificate owns: -ST_ESCHEMA with *fields
 * {"snis": "<name> already associated with existing certificate '<id>'"}. 0 if none. */
int cp_admin__cert_snis_check(struct cp_store *st, const json_t *names, const char *cert_id,
                              json_t **fields);

/* After the certificate cert was written: when names is not NULL, makes the certificate's
 * snis rows exactly those names (validated as snis: errors come back as -ST_ESCHEMA with
 * *fields {"snis": [null, "<error of the second name>"]}). Then sets cert's "snis" to
 * the sorted names it has. Returns 0 or a store/schema error. */
int cp_admin__cert_snis_store(struct cp_store *st, json_t *cert, const json_t *names,
                              json_t **fields, struct st_err *err);

/* Sets cert's "snis" to the sorted names of its snis. Returns 0 or -ST_EDB. */
int cp_admin__cert_snis_render(struct cp_store *st, json_t *cert);

#endif
