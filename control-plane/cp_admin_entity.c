/* Admin API for every entity, Kong's generated endpoints (kong/api/endpoints.lua):
 * collections with paging, entities by id or endpoint key (name; certificates by SNI
 * name, kong/api/routes/certificates.lua), PUT as upsert, PATCH as merge, nested
 * /services/{s}/routes, /certificates/{c}/snis and /routes/{r}/service. Every write is
 * one store transaction: it commits whole or changes nothing. */
#include <stdlib.h>
#include <string.h>

#include "cp_admin_int.h"
#include "cp_ctx.h"
#include "cp_snapshot.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_util.h"

/* What a write does with the body. */
enum write_op {
    OP_CREATE = 0, /* POST */
    OP_UPSERT,     /* PUT */
    OP_PATCH,      /* PATCH */
};

struct write_req {
    enum st_entity_kind k;
    enum write_op op;
    const char *key;    /* PUT/PATCH: the id or endpoint key in the path */
    const char *parent; /* nested under /services/{parent} or /certificates/{parent} */
    json_t *body;       /* taken */
};

/* ------------------------------------------------------------------------ */
/* helpers */

static const char *
obj_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static const char *
ref_id(const json_t *o, const char *field)
{
    return obj_str(json_object_get(o, field), "id");
}

static const char *
route_service_id(const json_t *route)
{
    return ref_id(route, "service");
}

/* The kinds found by name when the key is not a UUID (Kong's endpoint_key). */
static bool
has_name(enum st_entity_kind k)
{
    return k == ST_ENT_SERVICE || k == ST_ENT_ROUTE || k == ST_ENT_SNI;
}

/* The kind a nested collection hangs under, and the field that points at it. */
static enum st_entity_kind
parent_kind(enum st_entity_kind k)
{
    return k == ST_ENT_SNI ? ST_ENT_CERTIFICATE : ST_ENT_SERVICE;
}

static const char *
parent_field(enum st_entity_kind k)
{
    return k == ST_ENT_SNI ? "certificate" : "service";
}

/* Kong's select_by_/update_by_/upsert_by_/delete_by_<endpoint key>: a key that is not
 * a valid value of the field (a service name with a space) is refused before any
 * lookup, as "invalid unique name" (-ST_EPARSE with err->field "name", err->msg the
 * field's error). A certificate's key is the name of one of its snis. */
static int
check_endpoint_key(enum st_entity_kind k, const char *key, struct st_err *err)
{
    enum st_entity_kind by = k == ST_ENT_CERTIFICATE ? ST_ENT_SNI : k;
    json_t *v;
    json_t *e;
    int rc = 0;

    if (!has_name(by)) {
        return 0;
    }
    v = json_string(key);
    e = v != NULL ? st_schema_check_value(by, "name", v) : json_string("expected a string");
    if (e != NULL) {
        rc = st_err_set(err, -ST_EPARSE, "name", "%s",
                        json_is_string(e) ? json_string_value(e) : "invalid value");
    }
    json_decref(e);
    json_decref(v);
    return rc;
}

/* Finds an entity by its key in a path: id or name; a certificate by id or by the name
 * of one of its snis (-ST_ENOTFOUND with err->field "sni" when no sni has it); a CA
 * certificate by id only (-ST_EPARSE, Kong's invalid primary key, for anything else). */
static int
get_keyed(struct cp_store *st, enum st_entity_kind k, const char *key, json_t **out,
          struct st_err *err)
{
    json_t *sni = NULL;
    char id[64];
    int rc;

    *out = NULL;
    if (k == ST_ENT_CA_CERTIFICATE && !st_schema_is_uuid(key)) {
        /* Kong: invalid_primary_key(errors of validate_primary_key) */
        return st_err_set(err, -ST_EPARSE, "id", "expected a valid UUID");
    }
    if (!st_schema_is_uuid(key)) {
        rc = check_endpoint_key(k, key, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (k != ST_ENT_CERTIFICATE || st_schema_is_uuid(key)) {
        return cp_store_get(st, k, key, out);
    }
    rc = cp_store_get(st, ST_ENT_SNI, key, &sni);
    if (rc == -ST_ENOTFOUND) {
        return st_err_set(err, -ST_ENOTFOUND, "sni", "SNI not found");
    }
    if (rc < 0) {
        return rc;
    }
    st_snprintf(id, sizeof(id), "%s",
                ref_id(sni, "certificate") != NULL ? ref_id(sni, "certificate") : "");
    json_decref(sni);
    return cp_store_get(st, ST_ENT_CERTIFICATE, id, out);
}

/* created_at/updated_at come in seconds through the API and are kept in ms. */
static void
input_timestamps(json_t *o)
{
    static const char *const ts[] = {"created_at", "updated_at"};

    for (size_t i = 0; i < ST_ARRAY_SIZE(ts); i++) {
        json_t *v = json_object_get(o, ts[i]);

        if (json_is_integer(v)) {
            json_object_set_new(o, ts[i], json_integer(json_integer_value(v) * 1000));
        }
    }
}

/* Resolves `service: {"name": ...}` to `{"id": ...}`; leaves other shapes to the schema. */
static int
resolve_service(struct cp_store *st, json_t *route, struct st_err *err)
{
    json_t *ref = json_object_get(route, "service");
    const char *name = obj_str(ref, "name");
    json_t *svc = NULL;
    int rc;

    if (!json_is_object(ref) || json_object_get(ref, "id") != NULL || name == NULL) {
        return 0;
    }
    svc = st_schema_check_value(ST_ENT_SERVICE, "name", json_object_get(ref, "name"));
    if (svc != NULL) {
        /* not a valid name: the schema reports service.name (Kong resolves only names
         * that validate) */
        json_decref(svc);
        return 0;
    }
    rc = cp_store_get(st, ST_ENT_SERVICE, name, &svc);
    if (rc == -ST_ENOTFOUND) {
        return st_err_set(err, -ST_EFOREIGN, "service.name", "%s", name);
    }
    if (rc < 0) {
        return rc;
    }
    json_object_set_new(route, "service", json_pack("{s:s}", "id", obj_str(svc, "id")));
    json_decref(svc);
    return 0;
}

static void
kick(struct cp_ctx *cx)
{
    if (cx->snap != NULL) {
        cp_snapshot_kick(cx->snap);
    }
}

static void
new_id(json_t *o)
{
    char id[37];

    if (json_object_get(o, "id") == NULL || json_is_null(json_object_get(o, "id"))) {
        if (st_ssl_uuid(id) == 0) {
            json_object_set_new(o, "id", json_string(id));
        }
    }
}

/* Kong's error body for rc. Two come from here rather than cp_admin__reply_err: a path
 * key that is not a valid name (Kong's invalid_unique: 400, code 10, "invalid unique
 * name") and a route's `service: {"name": ...}` that names no service (Kong's
 * resolve_foreign, foreign_keys_unresolved: 400, code 13). */
static void
reply_error(struct cp_response *rs, enum st_entity_kind k, int rc, const struct st_err *err,
            json_t *fields)
{
    char detail[512];
    char msg[768];

    if (rc == -ST_EPARSE && err != NULL && strcmp(err->field, "name") == 0) {
        json_decref(fields);
        cp_admin__reply_code(rs, 400, 10, "invalid unique name", err->msg, NULL);
        return;
    }
    if (rc == -ST_EFOREIGN && err != NULL && strcmp(err->field, "service.name") == 0) {
        json_decref(fields);
        st_snprintf(detail, sizeof(detail),
                    "the foreign key cannot be resolved with '{name=\"%s\"}' for an existing "
                    "'services' entity",
                    err->msg);
        st_snprintf(msg, sizeof(msg), "foreign key unresolved (service.name: %s)", detail);
        cp_admin__reply_code(rs, 400, 13, "foreign keys unresolved", msg,
                             json_pack("{s:{s:s}}", "service", "name", detail));
        return;
    }
    cp_admin__reply_err(rs, k, rc, err, fields);
}

/* ------------------------------------------------------------------------ */
/* writes */

/* Builds the entity to store from the body and the existing one (NULL: none), with
 * id, created_at, updated_at and a nested route's service set. Returns a new object. */
static json_t *
prepare(const struct write_req *w, const json_t *existing, const char *parent_id)
{
    /* whole seconds, as the API shows them: an export re-imported hashes the same */
    int64_t now = st_time_ms() / 1000 * 1000;
    json_t *o;

    if (w->op == OP_PATCH) {
        o = json_deep_copy(existing);
        if (json_object_get(w->body, "url") != NULL) {
            static const char *const parts[] = {"protocol", "host", "port", "path"};

            for (size_t i = 0; i < ST_ARRAY_SIZE(parts); i++) {
                json_object_del(o, parts[i]);
            }
        }
        json_object_update(o, w->body);
    } else {
        o = json_deep_copy(w->body);
    }
    if (existing != NULL) {
        json_object_set(o, "id", json_object_get(existing, "id"));
        json_object_set(o, "created_at", json_object_get(existing, "created_at"));
    } else if (w->op == OP_UPSERT && st_schema_is_uuid(w->key)) {
        json_object_set_new(o, "id", json_string(w->key));
    }
    if (w->op == OP_UPSERT && !st_schema_is_uuid(w->key) && has_name(w->k)) {
        json_object_set_new(o, "name", json_string(w->key));
    }
    new_id(o);
    if (json_object_get(o, "created_at") == NULL) {
        json_object_set_new(o, "created_at", json_integer(now));
    }
    json_object_set_new(o, "updated_at", json_integer(now));
    /* Kong's nested endpoints: POST and PUT set the parent; PATCH sets it only when the
     * body does not name one (a PATCH may move the child to another parent) */
    if ((w->k == ST_ENT_ROUTE || w->k == ST_ENT_SNI) && parent_id != NULL &&
        (w->op != OP_PATCH || json_object_get(w->body, parent_field(w->k)) == NULL)) {
        json_object_set_new(o, parent_field(w->k), json_pack("{s:s}", "id", parent_id));
    }
    return o;
}

/* Inside the transaction: finds the parent and the existing entity. */
static int
load(struct cp_store *st, const struct write_req *w, json_t **parent, json_t **existing,
     struct st_err *err)
{
    int rc;

    *parent = NULL;
    *existing = NULL;
    if (w->parent != NULL) {
        rc = get_keyed(st, parent_kind(w->k), w->parent, parent, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (w->op == OP_CREATE) {
        return 0;
    }
    rc = get_keyed(st, w->k, w->key, existing, err);
    if (rc == -ST_ENOTFOUND && w->op == OP_UPSERT) {
        memset(err, 0, sizeof(*err)); /* PUT creates: not an error */
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (*parent != NULL && w->op != OP_UPSERT) {
        /* GET, PATCH, DELETE: not this parent's child is 404. Kong's nested PUT upserts
         * with the parent from the path whoever owned the child (it moves). */
        const char *pid = ref_id(*existing, parent_field(w->k));

        if (pid == NULL || strcmp(pid, obj_str(*parent, "id")) != 0) {
            json_decref(*existing);
            *existing = NULL;
            return -ST_ENOTFOUND; /* not this parent's child */
        }
    }
    return 0;
}

/* Validates and stores; on success *out is the stored entity (a certificate with its
 * `snis` names added). */
static int
store_one(struct cp_store *st, const struct write_req *w, json_t **out, json_t **fields,
          struct st_err *err)
{
    bool by_sni = w->k == ST_ENT_CERTIFICATE && w->op == OP_UPSERT && !st_schema_is_uuid(w->key);
    json_t *parent = NULL;
    json_t *existing = NULL;
    json_t *names = NULL;
    json_t *o = NULL;
    int rc;

    rc = load(st, w, &parent, &existing, err);
    if (rc < 0) {
        goto out;
    }
    if (w->k == ST_ENT_CERTIFICATE) {
        rc = cp_admin__cert_snis_take(w->body, by_sni ? w->key : NULL, &names, fields);
        if (rc < 0) {
            goto out;
        }
        if (names == NULL && w->op == OP_UPSERT) {
            names = json_array(); /* PUT replaces: no snis in the body, none kept */
        }
    }
    o = prepare(w, existing, parent != NULL ? obj_str(parent, "id") : NULL);
    if (w->k == ST_ENT_ROUTE) {
        rc = resolve_service(st, o, err);
        if (rc < 0) {
            goto out;
        }
    }
    if (names != NULL) {
        rc = cp_admin__cert_snis_check(st, names, obj_str(o, "id"), fields);
        if (rc < 0) {
            goto out;
        }
    }
    rc = st_schema_validate(w->k, o, fields);
    if (rc < 0) {
        goto out;
    }
    rc = existing != NULL ? cp_store_update(st, w->k, o, err) : cp_store_insert(st, w->k, o, err);
    if (rc == 0 && w->k == ST_ENT_CERTIFICATE) {
        rc = cp_admin__cert_snis_store(st, o, names, fields, err);
    }
out:
    json_decref(parent);
    json_decref(existing);
    json_decref(names);
    if (rc < 0) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* Inside the write's transaction: refuses (Kong's schema-violation body, an "@entity"
 * error naming both sizes) a write after which the snapshot would be beyond
 * cluster_max_payload, which no DP would take (issue 14). */
static int
check_fits(struct cp_ctx *cx, struct cp_store *st, struct cp_snapshot_fit *fit, json_t **fields,
           struct st_err *err)
{
    int rc;

    if (cx->snap == NULL) {
        fit->wrote = false;
        return 0;
    }
    rc = cp_snapshot_fit(cx->snap, st, cx->conf.cluster_max_payload, fit, err);
    if (rc == -ST_ETOOBIG) {
        *fields = json_pack("{s:[s]}", "@entity", err->msg);
        return -ST_ESCHEMA;
    }
    return rc;
}

static void
write_entity(struct cp_ctx *cx, struct write_req *w, struct cp_response *rs)
{
    struct cp_store *st;
    struct cp_snapshot_fit fit = {0};
    struct st_err err = {0};
    json_t *fields = NULL;
    json_t *o = NULL;
    int rc;

    input_timestamps(w->body);
    st = cp_store_pool_get(cx->pool);
    rc = cp_store_begin(st, true);
    if (rc == 0) {
        rc = store_one(st, w, &o, &fields, &err);
        if (rc == 0) {
            rc = check_fits(cx, st, &fit, &fields, &err);
        }
        if (rc == 0) {
            rc = cp_store_commit(st);
        } else {
            cp_store_rollback(st);
        }
        if (rc == 0 && cx->snap != NULL) {
            cp_snapshot_fit_commit(cx->snap, &fit);
        }
    }
    cp_store_pool_put(cx->pool, st);
    json_decref(w->body);
    w->body = NULL;
    if (rc < 0) {
        json_decref(o);
        reply_error(rs, w->k, rc, &err, fields);
        return;
    }
    kick(cx);
    cp_admin__reply(rs, w->op == OP_CREATE ? 201 : 200, cp_admin__render(o));
    json_decref(o);
}

static void
delete_entity(struct cp_ctx *cx, enum st_entity_kind k, const char *key, const char *parent,
              struct cp_response *rs)
{
    struct cp_store *st;
    struct write_req w = {.k = k, .op = OP_PATCH, .key = key, .parent = parent};
    struct st_err err = {0};
    json_t *par = NULL;
    json_t *existing = NULL;
    int rc;

    st = cp_store_pool_get(cx->pool);
    rc = cp_store_begin(st, true);
    if (rc == 0) {
        rc = load(st, &w, &par, &existing, &err);
        if (rc == -ST_ENOTFOUND && parent == NULL && strcmp(err.field, "sni") != 0) {
            rc = 1; /* Kong: 204 for an absent top-level entity */
        } else if (rc == 0) {
            rc = cp_store_remove(st, k, obj_str(existing, "id"), &err);
        }
        if (rc >= 0) {
            rc = cp_store_commit(st);
        } else {
            cp_store_rollback(st);
        }
    }
    cp_store_pool_put(cx->pool, st);
    json_decref(par);
    json_decref(existing);
    if (rc < 0) {
        reply_error(rs, k, rc, &err, NULL);
        return;
    }
    kick(cx);
    cp_admin__reply(rs, 204, NULL);
}

/* ------------------------------------------------------------------------ */
/* reads */

static void
get_entity(struct cp_ctx *cx, enum st_entity_kind k, const char *key, const char *parent,
           struct cp_response *rs)
{
    struct cp_store *st;
    struct write_req w = {.k = k, .op = OP_PATCH, .key = key, .parent = parent};
    struct st_err err = {0};
    json_t *par = NULL;
    json_t *o = NULL;
    int rc;

    st = cp_store_pool_get(cx->pool);
    rc = load(st, &w, &par, &o, &err);
    if (rc == 0 && k == ST_ENT_CERTIFICATE) {
        rc = cp_admin__cert_snis_render(st, o);
    }
    cp_store_pool_put(cx->pool, st);
    json_decref(par);
    if (rc < 0) {
        json_decref(o);
        reply_error(rs, k, rc, &err, NULL);
        return;
    }
    cp_admin__reply(rs, 200, cp_admin__render(o));
    json_decref(o);
}

int
cp_admin__page_size(const struct cp_request *rq, struct cp_response *rs, size_t *size)
{
    const char *v = json_string_value(json_object_get(rq->query, "size"));
    char *end = NULL;
    double d;

    *size = CP_PAGE_SIZE_DEFAULT;
    if (v == NULL) {
        return 0;
    }
    d = strtod(v, &end);
    if (end == v || *end != '\0') {
        cp_admin__reply_code(rs, 400, 9, "invalid size", "size must be a number", NULL);
        return -1;
    }
    /* written so that NaN ("nan" parses) fails before the cast, which would be undefined */
    if (!(d >= 1 && d <= CP_PAGE_SIZE_MAX) || d != (double)(long)d) {
        cp_admin__reply_code(rs, 400, 9, "invalid size",
                             "size must be an integer between 1 and 1000", NULL);
        return -1;
    }
    *size = (size_t)d;
    return 0;
}

/* A byte Kong accepts in a tag filter: printable ASCII but ',' and '/', or a UTF-8
 * byte 0x80-0xF4 (kong/api/endpoints.lua TAGS_AND_REGEX, TAGS_OR_REGEX). */
static bool
tag_filter_byte(unsigned char c)
{
    return (c >= 0x20 && c <= 0x7e && c != ',' && c != '/') || (c >= 0x80 && c <= 0xf4);
}

/* True when v is one or more tags separated by sep alone (an empty tag between two
 * separators, or a leading separator, fails; a trailing one is allowed, as Kong's
 * regular expressions allow it). */
static bool
tag_filter_is(const char *v, char sep)
{
    const unsigned char *p = (const unsigned char *)v;

    while (*p != '\0') {
        const unsigned char *start = p;

        while (tag_filter_byte(*p)) {
            p++;
        }
        if (p == start || (*p != '\0' && *p != (unsigned char)sep)) {
            return false;
        }
        if (*p != '\0') {
            p++;
        }
    }
    return p != (const unsigned char *)v;
}

/* Parses ?tags= (a,b = all of them; a/b = any), as Kong's extract_options and
 * validate_options_value do: anything else (a mix of ',' and '/', an empty filter, a
 * byte outside the tag bytes) is "invalid filter syntax", more than 5 tags "cannot
 * query more than 5 tags". Replies and returns -1 when bad. */
static int
page_tags(const struct cp_request *rq, struct cp_response *rs, json_t **tags, bool *any)
{
    const char *v = json_string_value(json_object_get(rq->query, "tags"));
    const char *why = NULL;
    const char *p;

    *tags = NULL;
    *any = false;
    if (v == NULL) {
        return 0;
    }
    if (tag_filter_is(v, ',')) {
        *any = false;
    } else if (tag_filter_is(v, '/')) {
        *any = true;
    } else {
        why = "invalid filter syntax";
    }
    if (why == NULL) {
        *tags = json_array();
        for (p = v; *p != '\0' && why == NULL;) {
            size_t n = strcspn(p, ",/");

            /* a tag that is not UTF-8 is no tag (jansson refuses it): dropped, it would
             * have widened the filter */
            if (json_array_append_new(*tags, json_stringn(p, n)) != 0) {
                why = "invalid filter syntax";
            }
            p += n;
            if (*p != '\0') {
                p++;
            }
        }
        if (why == NULL && json_array_size(*tags) > 5) {
            why = "cannot query more than 5 tags";
        }
    }
    if (why != NULL) {
        char msg[128];

        json_decref(*tags);
        *tags = NULL;
        st_snprintf(msg, sizeof(msg), "invalid option (tags: %s)", why);
        cp_admin__reply_code(rs, 400, 11, "invalid options", msg, NULL);
        return -1;
    }
    return 0;
}

char *
cp_admin__escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = st_xmalloc(strlen(s) * 3 + 1);
    char *o = out;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c) != NULL) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* The page after this one: the request's path, the offset and size, and the tags filter,
 * whole however long (a 1 KiB buffer cut five long tags short). */
static json_t *
next_link(const struct cp_request *rq, const char *offset, size_t size)
{
    const char *tags = json_string_value(json_object_get(rq->query, "tags"));
    char *path = st_xstrdup(rq->path);
    char *etags = tags != NULL ? cp_admin__escape(tags) : NULL;
    size_t len = strlen(path);
    size_t n;
    char *buf;
    json_t *v;

    while (len > 1 && path[len - 1] == '/') {
        path[--len] = '\0';
    }
    n = len + strlen("?offset=&size=&tags=") + strlen(offset) + 24 +
        (etags != NULL ? strlen(etags) : 0);
    buf = st_xmalloc(n);
    if (st_snprintf(buf, n, "%s?offset=%s&size=%zu%s%s", path, offset, size,
                    etags != NULL ? "&tags=" : "", etags != NULL ? etags : "") < 0) {
        buf[0] = '\0'; /* not reached: n counts every byte */
    }
    v = json_string(buf);
    free(buf);
    free(path);
    free(etags);
    return v;
}

/* True when ngx.decode_base64 would decode s: the standard alphabet up to an optional
 * '=' (what follows is not read), and a length that is not 1 modulo 4. */
static bool
offset_is_base64(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0' && s[n] != '='; n++) {
        unsigned char c = (unsigned char)s[n];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/')) {
            return false;
        }
    }
    return n % 4 != 1;
}

void
cp_admin__offset_error(struct cp_response *rs, const char *offset, const char *msg)
{
    char buf[512];

    if (offset != NULL && !offset_is_base64(offset)) {
        st_snprintf(buf, sizeof(buf), "'%s' is not a valid offset: bad base64 encoding", offset);
        msg = buf;
    }
    cp_admin__reply_code(rs, 400, 7, "invalid offset", msg, NULL);
}

static void
list(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs, enum st_entity_kind k,
     const char *parent)
{
    struct cp_store *st;
    struct cp_page_opts o = {0};
    struct st_err err = {0};
    json_t *tags = NULL;
    json_t *par = NULL;
    json_t *data = NULL;
    char *next = NULL;
    int rc = 0;

    if (cp_admin__page_size(rq, rs, &o.size) < 0 || page_tags(rq, rs, &tags, &o.tags_any) < 0) {
        return;
    }
    o.tags = parent == NULL ? tags : NULL; /* Kong: nested collections ignore tags */
    o.offset = json_string_value(json_object_get(rq->query, "offset"));
    st = cp_store_pool_get(cx->pool);
    if (parent != NULL) {
        rc = get_keyed(st, parent_kind(k), parent, &par, &err);
        o.parent_id = rc == 0 ? obj_str(par, "id") : NULL;
    }
    if (rc == 0) {
        rc = cp_store_page(st, k, &o, &data, &next, &err);
    }
    if (rc == 0 && k == ST_ENT_CERTIFICATE) {
        size_t i;
        json_t *v;

        json_array_foreach(data, i, v)
        {
            rc = rc == 0 ? cp_admin__cert_snis_render(st, v) : rc;
        }
    }
    cp_store_pool_put(cx->pool, st);
    json_decref(par);
    json_decref(tags);
    if (rc == -ST_EPARSE && strcmp(err.field, "offset") == 0) {
        cp_admin__offset_error(rs, o.offset, err.msg);
    } else if (rc < 0) {
        reply_error(rs, k, rc, &err, NULL);
    } else {
        json_t *out = json_array();
        size_t i;
        json_t *v;

        json_array_foreach(data, i, v)
        {
            json_array_append_new(out, cp_admin__render(v));
        }
        v = json_pack("{s:o}", "data", out);
        json_object_set_new(v, "next", next != NULL ? next_link(rq, next, o.size) : json_null());
        if (next != NULL) {
            json_object_set_new(v, "offset", json_string(next));
        }
        cp_admin__reply(rs, 200, v);
    }
    json_decref(data);
    free(next);
}

/* ------------------------------------------------------------------------ */
/* endpoints */

void
cp_admin__collection(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                     enum st_entity_kind k, const char *parent)
{
    struct write_req w = {.k = k, .op = OP_CREATE, .parent = parent};

    if (cp_admin__is(rq, "GET")) {
        list(cx, rq, rs, k, parent);
        return;
    }
    w.body = cp_admin__body(rq, rs);
    if (w.body != NULL) {
        write_entity(cx, &w, rs);
    }
}

void
cp_admin__entity(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                 enum st_entity_kind k, const char *key, const char *parent)
{
    struct write_req w = {.k = k, .key = key, .parent = parent};

    if (cp_admin__is(rq, "GET")) {
        get_entity(cx, k, key, parent, rs);
        return;
    }
    if (cp_admin__is(rq, "DELETE")) {
        delete_entity(cx, k, key, parent, rs);
        return;
    }
    w.op = cp_admin__is(rq, "PUT") ? OP_UPSERT : OP_PATCH;
    w.body = cp_admin__body(rq, rs);
    if (w.body != NULL) {
        write_entity(cx, &w, rs);
    }
}

void
cp_admin__route_service(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                        const char *route)
{
    struct cp_store *st;
    struct st_err err = {0};
    json_t *r = NULL;
    char sid[64];
    int rc;

    st = cp_store_pool_get(cx->pool);
    rc = get_keyed(st, ST_ENT_ROUTE, route, &r, &err);
    cp_store_pool_put(cx->pool, st);
    if (rc < 0 || route_service_id(r) == NULL) {
        json_decref(r);
        reply_error(rs, ST_ENT_SERVICE, rc < 0 ? rc : -ST_ENOTFOUND, &err, NULL);
        return;
    }
    st_snprintf(sid, sizeof(sid), "%s", route_service_id(r));
    json_decref(r);
    cp_admin__entity(cx, rq, rs, ST_ENT_SERVICE, sid, NULL);
}
