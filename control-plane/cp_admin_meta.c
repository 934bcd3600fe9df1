/* Admin API introspection (issue 5, point 2; Kong's kong/api/routes/kong.lua):
 * GET /schemas/{entity} describes an entity's fields (cp_admin_schemas.c builds the
 * description) and POST /schemas/{entity}/validate runs Kong's schema checks on a body
 * without storing it. GET /endpoints is cp_admin.c's, from its route table. */
#include <jansson.h>
#include <string.h>

#include "cp_admin_int.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_util.h"

void
cp_admin__schema_validate(const struct cp_request *rq, struct cp_response *rs, const char *name)
{
    enum st_entity_kind k;
    json_t *body, *names = NULL, *fields = NULL;
    struct st_err err = {0};
    char msg[160];
    int rc = 0;

    if (!st_entity_by_name(name, &k)) {
        (void)st_snprintf(msg, sizeof(msg), "No entity named '%s'", name);
        cp_admin__reply_msg(rs, 404, msg);
        return;
    }
    body = cp_admin__body(rq, rs);
    if (body == NULL) {
        return;
    }
    if (cp_admin__hooks(k)->take != NULL) {
        /* what is not a field (a certificate's snis) is part of what Kong validates */
        rc = cp_admin__hooks(k)->take(body, NULL, false, &names, &fields);
    }
    if (rc == 0) {
        st_schema_input(k, body);
        rc = st_schema_validate(k, body, &fields);
    }
    if (rc == 0) {
        cp_admin__reply_msg(rs, 200, "schema validation successful");
    } else {
        cp_admin__reply_err(rs, k, rc, &err, fields);
        fields = NULL;
    }
    json_decref(fields);
    json_decref(names);
    json_decref(body);
}

void
cp_admin__schema_get(struct cp_response *rs, const char *name)
{
    enum st_entity_kind k;
    json_t *o;
    char msg[160];

    if (!st_entity_by_name(name, &k)) {
        (void)st_snprintf(msg, sizeof(msg), "No entity named '%s'", name);
        cp_admin__reply_msg(rs, 404, msg);
        return;
    }
    o = cp_admin__schema_describe(k);
    if (o == NULL) {
        cp_admin__reply_msg(rs, 500, "An unexpected error occurred");
        return;
    }
    cp_admin__reply(rs, 200, o);
}
