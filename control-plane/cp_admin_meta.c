/* Admin API introspection (issue 5, point 2; Kong's kong/api/routes/kong.lua):
 * GET /endpoints lists every path the admin API serves, GET /schemas/{entity} describes
 * an entity's fields (cp_admin_schemas.c builds the description) and
 * POST /schemas/{entity}/validate runs Kong's schema checks on a body without storing it. */
#include <jansson.h>
#include <string.h>

#include "cp_admin_int.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_util.h"

/* Every path cp_admin.c routes, in Kong's form (`{name}` for a key, named as Kong names
 * it), sorted as Kong sorts them ('/' below every other byte). Keep in step with allowed()
 * there; tests/system/test_admin_meta.py probes each one. */
static const char *const endpoints[] = {
    "/",
    "/ca_certificates",
    "/ca_certificates/{ca_certificates}",
    "/certificates",
    "/certificates/{certificates}",
    "/certificates/{certificates}/snis",
    "/certificates/{certificates}/snis/{snis}",
    "/clustering/data-planes",
    "/clustering/status",
    "/config",
    "/endpoints",
    "/routes",
    "/routes/{routes}",
    "/routes/{routes}/service",
    "/schemas/{db_entity_name}/validate",
    "/schemas/{name}",
    "/services",
    "/services/{services}",
    "/services/{services}/routes",
    "/services/{services}/routes/{routes}",
    "/snis",
    "/snis/{snis}",
    "/status",
    "/tags",
    "/tags/{tags}",
};

void
cp_admin__endpoints(struct cp_response *rs)
{
    json_t *data = json_array();

    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        json_array_append_new(data, json_string(endpoints[i]));
    }
    cp_admin__reply(rs, 200, json_pack("{s:o}", "data", data));
}

/* The kind an entity name (a collection name) stands for, or ST_ENT__COUNT. */
static enum st_entity_kind
entity_kind(const char *name)
{
    for (int i = 0; i < ST_ENT__COUNT; i++) {
        if (strcmp(name, st_entity_name((enum st_entity_kind)i)) == 0) {
            return (enum st_entity_kind)i;
        }
    }
    return ST_ENT__COUNT;
}

void
cp_admin__schema_validate(const struct cp_request *rq, struct cp_response *rs, const char *name)
{
    enum st_entity_kind k = entity_kind(name);
    json_t *body, *names = NULL, *fields = NULL;
    struct st_err err;
    char msg[160];
    int rc = 0;

    if (k == ST_ENT__COUNT) {
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
        rc = st_schema_validate(k, body, &fields);
    }
    if (rc == 0) {
        cp_admin__reply_msg(rs, 200, "schema validation successful");
    } else {
        memset(&err, 0, sizeof(err));
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
    enum st_entity_kind k = entity_kind(name);
    json_t *o;
    char msg[160];

    if (k == ST_ENT__COUNT) {
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
