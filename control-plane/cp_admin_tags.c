/* GET /tags and GET /tags/{tag} (issue 5; Kong's kong/api/routes/tags.lua,
 * kong/db/dao/tags.lua, spec/02-integration/04-admin_api/14-tags_spec.lua): every
 * (tag, entity) pair of the configuration, paged like the entity collections (size 1..1000,
 * default 100; opaque offset; `next` on every page but the last), ordered by tag, then
 * entity_name, then entity_id. A ?tags= filter is ignored, as Kong does. The tag in the
 * path is checked as the schemas check tags: a bad one answers Kong's 400
 * {"code": 10, "name": "invalid unique tag", "message": "..."}. Read-only: Kong's tags
 * DAO refuses every write, and so does routing here (GET, HEAD and OPTIONS only). */
#include <stdlib.h>
#include <string.h>

#include "cp_admin_int.h"
#include "cp_ctx.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "st_check.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_util.h"

/* Kong's code and name for a bad tag (errors.lua INVALID_UNIQUE, "invalid unique %s"). */
#define TAGS_INVALID_UNIQUE 10

/* The tags row every kind has (typedefs.tags). */
static const struct st_field tags_row[] = {ST_FIELD_TAGS};

/* Checks tag with the schemas' own tag rule (typedefs.tag), as one entity's tags field.
 * Writes the error into msg and returns false when the tag is bad. The tag may be any
 * bytes (a decoded path). */
static bool
tag_is_valid(const char *tag, char *msg, size_t size)
{
    json_t *tags = json_pack("[o]", json_stringn_nocheck(tag, strlen(tag)));
    json_t *e = st_schema_check_field(&tags_row[0], tags);
    const json_t *first = json_is_array(e) ? json_array_get(e, 0) : e;
    bool ok = !json_is_string(first);

    if (!ok) {
        st_snprintf(msg, size, "%s", json_string_value(first));
    }
    json_decref(e);
    json_decref(tags);
    return ok;
}

/* "/tags?offset=..&size=.." or "/tags/<tag, escaped>?offset=..&size=..". */
static json_t *
next_link(const char *tag, const char *offset, size_t size)
{
    char *etag = tag != NULL ? cp_admin__escape(tag) : NULL;
    char *eoff = cp_admin__escape(offset);
    json_t *v = json_sprintf("/tags%s%s?offset=%s&size=%zu", etag != NULL ? "/" : "",
                             etag != NULL ? etag : "", eoff, size);

    free(eoff);
    free(etag);
    return v;
}

void
cp_admin__tags(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
               const char *tag)
{
    const char *offset = json_string_value(json_object_get(rq->query, "offset"));
    struct st_err err = {0};
    struct cp_store *st;
    json_t *data = NULL;
    char *next = NULL;
    char msg[512];
    size_t size;
    json_t *o;
    int rc;

    if (cp_admin__page_size(rq, rs, &size) < 0) {
        return;
    }
    if (tag != NULL && !tag_is_valid(tag, msg, sizeof(msg))) {
        cp_admin__reply_code(rs, 400, TAGS_INVALID_UNIQUE, "invalid unique tag", msg, NULL);
        return;
    }
    st = cp_store_pool_get(cx->pool);
    rc = cp_store_tags_page(st, tag, size, offset, &data, &next, &err);
    cp_store_pool_put(cx->pool, st);
    if (rc == -ST_EPARSE) {
        cp_admin__reply_code(rs, 400, 7, "invalid offset", err.msg, NULL);
        return;
    }
    if (rc < 0) {
        cp_admin__reply_db_fail(rs, rc);
        return;
    }
    o = json_pack("{s:o}", "data", data);
    if (next != NULL) {
        json_object_set_new(o, "offset", json_string(next));
        json_object_set_new(o, "next", next_link(tag, next, size));
    } else {
        json_object_set_new(o, "next", json_null());
    }
    free(next);
    cp_admin__reply(rs, 200, o);
}
