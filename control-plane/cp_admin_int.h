/* Shared between cp_admin.c (routing, node endpoints, bodies, errors) and
 * cp_admin_entity.c (services and routes). Not an API. */
#ifndef STRAIT_CP_ADMIN_INT_H
#define STRAIT_CP_ADMIN_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "cp_admin.h"
#include "st_entity.h"

struct st_err;

/* Sets the status and body (takes `body`; NULL: no body). */
void cp_admin__reply(struct cp_response *rs, int status, json_t *body);
/* {"message": msg} */
void cp_admin__reply_msg(struct cp_response *rs, int status, const char *msg);
/* Kong's error body for a store or schema failure rc; fields (taken) for schema errors. */
void cp_admin__reply_err(struct cp_response *rs, enum st_entity_kind k, int rc,
                         const struct st_err *e, json_t *fields);
/* {"code": code, "name": name, "message": msg} plus fields (taken) if not NULL. */
void cp_admin__reply_code(struct cp_response *rs, int status, int code, const char *name,
                          const char *msg, json_t *fields);

/* The body of a POST/PUT/PATCH as an object, or NULL after replying with the error. */
json_t *cp_admin__body(const struct cp_request *rq, struct cp_response *rs);

/* A copy of a stored entity for output: created_at/updated_at in seconds. */
json_t *cp_admin__render(const json_t *obj);

bool cp_admin__is(const struct cp_request *rq, const char *method);

/* /services, /routes, /services/{s}/routes (parent = s). */
void cp_admin__collection(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                          enum st_entity_kind k, const char *parent);
/* /services/{key}, /routes/{key}, /services/{s}/routes/{key} (parent = s). */
void cp_admin__entity(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                      enum st_entity_kind k, const char *key, const char *parent);
/* /routes/{r}/service */
void cp_admin__route_service(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                             const char *route);

#endif
