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
/* {"message": msg} (msg through cp_dberr_text: bytes that are not UTF-8 as %HH) */
void cp_admin__reply_msg(struct cp_response *rs, int status, const char *msg);
/* Kong's error body for a store or schema failure rc on kind k (cp_dberr.h; -ST_EDBDOWN:
 * cp_admin__reply_db_down); fields (taken) for schema errors. */
void cp_admin__reply_err(struct cp_response *rs, enum st_entity_kind k, int rc,
                         const struct st_err *e, json_t *fields);
/* Kong's DATABASE_ERROR code (kong/db/errors.lua). */
#define CP_ADMIN_DATABASE_ERROR 8

/* The database cannot be reached (-ST_EDBDOWN): 503, Retry-After: 5 and
 * {"code": 8, "name": "database error", "message": "database unreachable, try again
 * later"}. cp_admin__reply_err answers this way for -ST_EDBDOWN; any other store failure
 * (-ST_EDB, ...) is a 500. */
void cp_admin__reply_db_down(struct cp_response *rs);
/* A store failure rc of a read about no one kind (GET /config, GET /tags): -ST_EDBDOWN as
 * cp_admin__reply_db_down, anything else 500 {"message": "An unexpected error occurred"}. */
void cp_admin__reply_db_fail(struct cp_response *rs, int rc);
/* {"code": code, "name": name, "message": msg} plus fields (taken) if not NULL (msg through
 * cp_dberr_text). */
void cp_admin__reply_code(struct cp_response *rs, int status, int code, const char *name,
                          const char *msg, json_t *fields);

/* The body of a POST/PUT/PATCH as an object, or NULL after replying with the error. */
json_t *cp_admin__body(const struct cp_request *rq, struct cp_response *rs);

/* A copy of a stored entity for output: created_at/updated_at in seconds. */
json_t *cp_admin__render(const json_t *obj);
/* Scales o's integer created_at/updated_at from seconds to ms (to_ms), or back. */
void cp_admin__timestamps(json_t *o, bool to_ms);

bool cp_admin__is(const struct cp_request *rq, const char *method);

/* Whether a Content-Type value names `type` (parameters after ';' ignored). */
bool cp_admin__ct_is(const char *ct, const char *type);

/* The parent of a nested path: the child's PARENT foreign key that names the parent's
 * kind (plugins nest under routes and services) and the parent's key in the path. */
struct cp_admin_parent {
    const struct st_field *field;
    const char *key;
};

/* A collection: /<kind> (parent NULL), or nested /<parent kind>/{parent}/<kind> under
 * one of kind k's PARENT foreign keys (/services/{s}/routes). */
void cp_admin__collection(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                          enum st_entity_kind k, const struct cp_admin_parent *parent);
/* One entity: /<kind>/{key} (parent NULL), or nested /<parent kind>/{parent}/<kind>/{key}. */
void cp_admin__entity(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                      enum st_entity_kind k, const char *key, const struct cp_admin_parent *parent);
/* The entity the foreign key `field` of the kind k entity `key` names, as /<ref kind>/{id}
 * serves it (GET, PATCH, PUT): /routes/{r}/service. */
void cp_admin__foreign(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                       enum st_entity_kind k, const char *field, const char *key);

/* Kong's select_by_<unique field>: refuses key when it is no valid value of kind k's
 * field (a service name with a space): -ST_EPARSE with err->field the field, err->msg its
 * error (cp_admin_entity.c; also the certificates' lookup by SNI name). 0 when valid. */
int cp_admin__check_key(enum st_entity_kind k, const char *field, const char *key,
                        struct st_err *err);

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
/* GET /upstreams/{key}/health: the fleet's view of the upstream's targets
 * (cp_admin_health.c). */
void cp_admin__upstream_health(struct cp_ctx *cx, const struct cp_request *rq,
                               struct cp_response *rs, const char *key);

/* The shared registry's records of the DPs seen within the purge delay (at most
 * CP_ADMIN_DPS_MAX), or NULL when the store is not shared or the database is away. */
#define CP_ADMIN_DPS_MAX 100000
json_t *cp_admin__shared_dps(struct cp_ctx *cx);

void cp_admin__config(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs);
/* POST /schemas/{name}/validate (cp_admin_meta.c) */
void cp_admin__schema_validate(const struct cp_request *rq, struct cp_response *rs,
                               const char *name);

/* What one kind's admin endpoints do beyond Kong's generated ones: the certificates'
 * `snis` shorthand and their lookup by SNI name (cp_admin_cert.c). A NULL member does
 * nothing. All run on the caller's store handle, inside its transaction for writes. */
struct cp_admin_hooks {
    /* Finds the entity for a path key that is neither an id nor a value of the kind's
     * endpoint key (a certificate by the name of one of its snis). */
    int (*lookup)(struct cp_store *st, const char *key, json_t **out, struct st_err *err);
    /* Takes what is not a field out of a write's body: *extra is NULL when the write
     * leaves it alone, else a new value for store (replace: a PUT, which replaces it even
     * when the body has none; put_key: a PUT's path key that is no id, which joins it).
     * Returns 0, or -ST_ESCHEMA with *fields set. */
    int (*take)(json_t *body, const char *put_key, bool replace, json_t **extra, json_t **fields);
    /* Before the write of entity id: refuses an extra that cannot be stored
     * (-ST_ESCHEMA with *fields set). */
    int (*check)(struct cp_store *st, const json_t *extra, const char *id, json_t **fields);
    /* After the write of o: stores extra (NULL: left alone), then renders o. */
    int (*store)(struct cp_store *st, json_t *o, const json_t *extra, json_t **fields,
                 struct st_err *err);
    /* Adds to o, for output, what is kept outside it (a certificate's snis). */
    int (*render)(struct cp_store *st, json_t *o);
    /* After the schema check of o, before its write: refuses what depends on other
     * entities (a plugin's protocols and its scope's routes; -ST_ESCHEMA with *fields). */
    int (*validated)(struct cp_store *st, const json_t *o, json_t **fields);
};

/* The certificates' hooks (cp_admin_cert.c). */
extern const struct cp_admin_hooks cp_admin__cert_hooks;

/* The plugins' hooks, endpoints and schema (cp_admin_plugin.c): GET /plugins/enabled,
 * GET /schemas/plugins/{name}, GET /'s available_on_server. */
extern const struct cp_admin_hooks cp_admin__plugin_hooks;
void cp_admin__plugins_enabled(struct cp_response *rs);
void cp_admin__plugin_schema_get(struct cp_response *rs, const char *name);
json_t *cp_admin__plugins_available(void);
/* GET /'s enabled_in_cluster: the distinct names of the stored plugins, sorted. */
json_t *cp_admin__plugins_in_use(struct cp_ctx *cx);
struct st_plugin_desc;
/* Kong's JSON form of plugin p's schema (cp_admin_schemas.c), or NULL (logged). */
json_t *cp_admin__plugin_schema_describe(const struct st_plugin_desc *p);

/* The hooks of kind k (cp_admin_entity.c): every member NULL for a kind without any. */
const struct cp_admin_hooks *cp_admin__hooks(enum st_entity_kind k);

#endif
