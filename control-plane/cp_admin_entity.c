/* Admin API for every entity, Kong's generated endpoints (kong/api/endpoints.lua), from
 * the kinds' descriptions (st_entity.h): collections with paging, entities by id or
 * endpoint key (name; or a kind's own lookup: certificates by SNI name,
 * kong/api/routes/certificates.lua), PUT as upsert, PATCH as merge, nested collections
 * under the parent a PARENT foreign key names (/services/{s}/routes,
 * /certificates/{c}/snis), and the entity a foreign key names (/routes/{r}/service). A
 * kind's hooks (cp_admin_int.h) add what is not a field. Every write is one store
 * transaction: it commits whole or changes nothing. */
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
    const char *key;                      /* PUT/PATCH: the id or endpoint key in the path */
    const struct cp_admin_parent *parent; /* nested under /<parent kind>/{parent} */
    json_t *body;                         /* taken */
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

/* The kinds with hooks (cp_admin_int.h). */
static const struct cp_admin_hooks *const kind_hooks[ST_ENT__COUNT] = {
    [ST_ENT_CERTIFICATE] = &cp_admin__cert_hooks,
    [ST_ENT_PLUGIN] = &cp_admin__plugin_hooks,
};

const struct cp_admin_hooks *
cp_admin__hooks(enum st_entity_kind k)
{
    static const struct cp_admin_hooks none = {0};

    return kind_hooks[k] != NULL ? kind_hooks[k] : &none;
}

/* Kong's select_by_/update_by_/upsert_by_/delete_by_<endpoint key> refuse such a key
 * before any lookup, as "invalid unique name". */
int
cp_admin__check_key(enum st_entity_kind k, const char *field, const char *key, struct st_err *err)
{
    json_t *v = json_string(key);
    json_t *e = v != NULL ? st_schema_check_value(k, field, v) : json_string("expected a string");
    int rc = 0;

    if (e != NULL) {
        rc = st_err_set(err, -ST_EPARSE, field, "%s",
                        json_is_string(e) ? json_string_value(e) : "invalid value");
    }
    json_decref(e);
    json_decref(v);
    return rc;
}

/* Finds an entity by its key in a path: its id, else a value of its endpoint key, else
 * what its hooks' lookup finds (a certificate by the name of one of its snis); a kind
 * with neither takes only an id (-ST_EPARSE, Kong's invalid primary key, for anything
 * else). */
static int
get_keyed(struct cp_store *st, enum st_entity_kind k, const char *key, json_t **out,
          struct st_err *err)
{
    const struct st_field *ep = st_entity_endpoint(k);
    int rc;

    *out = NULL;
    if (st_schema_is_uuid(key)) {
        return cp_store_get(st, k, key, out);
    }
    if (ep != NULL) {
        rc = cp_admin__check_key(k, ep->name, key, err);
        return rc < 0 ? rc : cp_store_get(st, k, key, out);
    }
    if (cp_admin__hooks(k)->lookup != NULL) {
        return cp_admin__hooks(k)->lookup(st, key, out, err);
    }
    /* Kong: invalid_primary_key(errors of validate_primary_key) */
    return st_err_set(err, -ST_EPARSE, "id", "expected a valid UUID");
}

/* Kong's resolve_foreign: a foreign key written by the referenced kind's endpoint key
 * (`service: {"name": ...}`) becomes `{"id": ...}`; other shapes are left to the schema
 * (a name that is not valid: Kong resolves only names that validate). A name that names
 * nothing is -ST_EFOREIGN with err->field "<field>.<key>" (Kong's foreign_keys_unresolved). */
static int
resolve_refs(struct cp_store *st, enum st_entity_kind k, json_t *o, struct st_err *err)
{
    for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
        const struct st_field *ep =
            f->type == ST_FT_FOREIGN ? st_entity_endpoint(f->ref->kind) : NULL;
        json_t *ref = json_object_get(o, f->name);
        const char *key = ep != NULL ? obj_str(ref, ep->name) : NULL;
        json_t *e;
        json_t *target = NULL;
        int rc;

        if (key == NULL || !json_is_object(ref) || json_object_get(ref, "id") != NULL) {
            continue;
        }
        e = st_schema_check_value(f->ref->kind, ep->name, json_object_get(ref, ep->name));
        if (e != NULL) {
            json_decref(e);
            continue;
        }
        rc = cp_store_get(st, f->ref->kind, key, &target);
        if (rc == -ST_ENOTFOUND) {
            char at[64];

            st_snprintf(at, sizeof(at), "%s.%s", f->name, ep->name);
            return st_err_set(err, -ST_EFOREIGN, at, "%s", key);
        }
        if (rc < 0) {
            return rc;
        }
        json_object_set_new(o, f->name, json_pack("{s:s}", "id", obj_str(target, "id")));
        json_decref(target);
    }
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

/* ------------------------------------------------------------------------ */
/* writes */

/* Kong's merge_values for a PATCH of a plugin: the body's config record is merged into
 * the stored one (PATCH {"config": {"deny": [...]}} keeps `allow`), as Kong's plugins
 * DAO does with the plugin's subschema. Only abstract records (plugins' config) are
 * merged here: the other records keep Strait's behaviour (issue 16's healthchecks). */
static void
merge_records(const json_t *stored, json_t *body, const struct st_field *fields)
{
    for (const struct st_field *f = fields; f->name != NULL; f++) {
        json_t *b = json_object_get(body, f->name);
        const json_t *old = json_object_get(stored, f->name);
        json_t *merged;

        if (f->type != ST_FT_RECORD || f->sub != NULL || !json_is_object(b) ||
            !json_is_object(old)) {
            continue;
        }
        merged = json_deep_copy(old);
        json_object_update(merged, b);
        json_object_set_new(body, f->name, merged);
    }
}

/* Builds the entity to store from the body and the existing one (NULL: none), with
 * id, created_at, updated_at, the endpoint key of a PUT by it and a nested entity's
 * parent set. Returns a new object. */
static json_t *
prepare(const struct write_req *w, const json_t *existing, const char *parent_id)
{
    /* whole seconds, as the API shows them: an export re-imported hashes the same */
    int64_t now = st_time_ms() / 1000 * 1000;
    const struct st_field *ep = st_entity_endpoint(w->k);
    const struct st_field *pf = w->parent != NULL ? w->parent->field : NULL;
    json_t *o;

    if (w->op == OP_PATCH) {
        o = json_deep_copy(existing);
        if (json_object_get(w->body, "url") != NULL) {
            static const char *const parts[] = {"protocol", "host", "port", "path"};

            for (size_t i = 0; i < ST_ARRAY_SIZE(parts); i++) {
                json_object_del(o, parts[i]);
            }
        }
        json_t *body = json_deep_copy(w->body);

        st_schema_input(w->k, body);
        merge_records(o, body, st_entities[w->k]->fields);
        json_object_update(o, body);
        json_decref(body);
    } else {
        o = json_deep_copy(w->body);
        st_schema_input(w->k, o);
    }
    if (existing != NULL) {
        json_object_set(o, "id", json_object_get(existing, "id"));
        json_object_set(o, "created_at", json_object_get(existing, "created_at"));
    } else if (w->op == OP_UPSERT && st_schema_is_uuid(w->key)) {
        json_object_set_new(o, "id", json_string(w->key));
    }
    if (w->op == OP_UPSERT && !st_schema_is_uuid(w->key) && ep != NULL) {
        json_object_set_new(o, ep->name, json_string(w->key));
    }
    new_id(o);
    if (json_object_get(o, "created_at") == NULL) {
        json_object_set_new(o, "created_at", json_integer(now));
    }
    json_object_set_new(o, "updated_at", json_integer(now));
    /* Kong's nested endpoints: POST and PUT set the parent; PATCH sets it only when the
     * body does not name one (a PATCH may move the child to another parent) */
    if (pf != NULL && parent_id != NULL &&
        (w->op != OP_PATCH || json_object_get(w->body, pf->name) == NULL)) {
        json_object_set_new(o, pf->name, json_pack("{s:s}", "id", parent_id));
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
        rc = get_keyed(st, w->parent->field->ref->kind, w->parent->key, parent, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (w->op == OP_CREATE) {
        return 0;
    }
    if (*parent != NULL && st_entities[w->k]->nested_only) {
        /* its endpoint key is unique only under its parent (targets) */
        rc = cp_store_get_in(st, w->k, w->parent->field->name, obj_str(*parent, "id"), w->key,
                             existing);
    } else {
        rc = get_keyed(st, w->k, w->key, existing, err);
    }
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
        const char *pid = ref_id(*existing, w->parent->field->name);

        if (pid == NULL || strcmp(pid, obj_str(*parent, "id")) != 0) {
            json_decref(*existing);
            *existing = NULL;
            return -ST_ENOTFOUND; /* not this parent's child */
        }
    }
    return 0;
}

/* Validates and stores; on success *out is the stored entity (with what its hooks add:
 * a certificate's `snis` names). */
static int
store_one(struct cp_store *st, const struct write_req *w, json_t **out, json_t **fields,
          struct st_err *err)
{
    const struct cp_admin_hooks *h = cp_admin__hooks(w->k);
    /* a PUT by a key that is no id nor endpoint key (a certificate's SNI name) */
    const char *put_key =
        w->op == OP_UPSERT && !st_schema_is_uuid(w->key) && st_entity_endpoint(w->k) == NULL
            ? w->key
            : NULL;
    json_t *parent = NULL;
    json_t *existing = NULL;
    json_t *extra = NULL;
    json_t *o = NULL;
    int rc;

    rc = load(st, w, &parent, &existing, err);
    if (rc == 0 && h->take != NULL) {
        rc = h->take(w->body, put_key, w->op == OP_UPSERT, &extra, fields);
    }
    if (rc < 0) {
        goto out;
    }
    o = prepare(w, existing, parent != NULL ? obj_str(parent, "id") : NULL);
    rc = resolve_refs(st, w->k, o, err);
    if (rc == 0 && extra != NULL && h->check != NULL) {
        rc = h->check(st, extra, obj_str(o, "id"), fields);
    }
    if (rc == 0) {
        rc = st_schema_validate(w->k, o, fields);
    }
    if (rc == 0 && h->validated != NULL) {
        rc = h->validated(st, o, fields);
    }
    if (rc == 0) {
        rc = existing != NULL ? cp_store_update(st, w->k, o, err)
                              : cp_store_insert(st, w->k, o, err);
    }
    if (rc == 0 && h->store != NULL) {
        rc = h->store(st, o, extra, fields, err);
    }
out:
    json_decref(parent);
    json_decref(existing);
    json_decref(extra);
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

/* A POST, PUT or PATCH of the request's body. */
static void
write_entity(struct cp_ctx *cx, const struct cp_request *rq, struct write_req *w,
             struct cp_response *rs)
{
    struct cp_store *st;
    struct cp_snapshot_fit fit = {0};
    struct st_err err = {0};
    json_t *fields = NULL;
    json_t *o = NULL;
    int rc;

    w->body = cp_admin__body(rq, rs);
    if (w->body == NULL) {
        return;
    }
    cp_admin__timestamps(w->body, true); /* seconds through the API, kept in ms */
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
        cp_admin__reply_err(rs, w->k, rc, &err, fields);
        return;
    }
    kick(cx);
    cp_admin__reply(rs, w->op == OP_CREATE ? 201 : 200, cp_admin__render(o));
    json_decref(o);
}

static void
delete_entity(struct cp_ctx *cx, enum st_entity_kind k, const char *key,
              const struct cp_admin_parent *parent, struct cp_response *rs)
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
        /* (a lookup that says why, by SNI name, is Kong's 404) */
        if (rc == -ST_ENOTFOUND && parent == NULL && err.field[0] == '\0') {
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
        cp_admin__reply_err(rs, k, rc, &err, NULL);
        return;
    }
    kick(cx);
    cp_admin__reply(rs, 204, NULL);
}

/* ------------------------------------------------------------------------ */
/* reads */

static void
get_entity(struct cp_ctx *cx, enum st_entity_kind k, const char *key,
           const struct cp_admin_parent *parent, struct cp_response *rs)
{
    struct cp_store *st;
    struct write_req w = {.k = k, .op = OP_PATCH, .key = key, .parent = parent};
    struct st_err err = {0};
    json_t *par = NULL;
    json_t *o = NULL;
    int rc;

    st = cp_store_pool_get(cx->pool);
    rc = load(st, &w, &par, &o, &err);
    if (rc == 0 && cp_admin__hooks(k)->render != NULL) {
        rc = cp_admin__hooks(k)->render(st, o);
    }
    cp_store_pool_put(cx->pool, st);
    json_decref(par);
    if (rc < 0) {
        json_decref(o);
        cp_admin__reply_err(rs, k, rc, &err, NULL);
        return;
    }
    cp_admin__reply(rs, 200, cp_admin__render(o));
    json_decref(o);
}

int
cp_admin__page_size(const struct cp_request *rq, struct cp_response *rs, size_t *size)
{
    const char *v = json_string_value(json_object_get(rq->query, "size"));
    const char *why;
    char *end = NULL;
    double d;

    *size = CP_PAGE_SIZE_DEFAULT;
    if (v == NULL) {
        return 0;
    }
    d = strtod(v, &end);
    /* written so that NaN ("nan" parses) fails before the cast, which would be undefined */
    why = end == v || *end != '\0' ? "size must be a number"
          : !(d >= 1 && d <= CP_PAGE_SIZE_MAX) || d != (double)(long)d
              ? "size must be an integer between 1 and 1000"
              : NULL;
    if (why != NULL) {
        cp_admin__reply_code(rs, 400, 9, "invalid size", why, NULL);
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
    *any = !tag_filter_is(v, ',');
    if (*any && !tag_filter_is(v, '/')) {
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
    char *etags = tags != NULL ? cp_admin__escape(tags) : NULL;
    size_t len = strlen(rq->path);
    json_t *v;

    while (len > 1 && rq->path[len - 1] == '/') {
        len--; /* a trailing slash is not part of the link */
    }
    v = json_sprintf("%.*s?offset=%s&size=%zu%s%s", (int)len, rq->path, offset, size,
                     etags != NULL ? "&tags=" : "", etags != NULL ? etags : "");
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
     const struct cp_admin_parent *parent)
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
        rc = get_keyed(st, parent->field->ref->kind, parent->key, &par, &err);
        o.parent_id = rc == 0 ? obj_str(par, "id") : NULL;
        o.parent_field = parent->field->name;
    }
    if (rc == 0) {
        rc = cp_store_page(st, k, &o, &data, &next, &err);
    }
    if (rc == 0 && cp_admin__hooks(k)->render != NULL) {
        size_t i;
        json_t *v;

        json_array_foreach(data, i, v)
        {
            rc = rc == 0 ? cp_admin__hooks(k)->render(st, v) : rc;
        }
    }
    cp_store_pool_put(cx->pool, st);
    json_decref(par);
    json_decref(tags);
    if (rc == -ST_EPARSE && strcmp(err.field, "offset") == 0) {
        cp_admin__offset_error(rs, o.offset, err.msg);
    } else if (rc < 0) {
        cp_admin__reply_err(rs, k, rc, &err, NULL);
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
                     enum st_entity_kind k, const struct cp_admin_parent *parent)
{
    struct write_req w = {.k = k, .op = OP_CREATE, .parent = parent};

    if (cp_admin__is(rq, "GET")) {
        list(cx, rq, rs, k, parent);
    } else {
        write_entity(cx, rq, &w, rs);
    }
}

void
cp_admin__entity(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                 enum st_entity_kind k, const char *key, const struct cp_admin_parent *parent)
{
    struct write_req w = {.k = k, .key = key, .parent = parent};

    if (cp_admin__is(rq, "GET")) {
        get_entity(cx, k, key, parent, rs);
    } else if (cp_admin__is(rq, "DELETE")) {
        delete_entity(cx, k, key, parent, rs);
    } else {
        w.op = cp_admin__is(rq, "PUT") ? OP_UPSERT : OP_PATCH;
        write_entity(cx, rq, &w, rs);
    }
}

void
cp_admin__foreign(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                  enum st_entity_kind k, const char *field, const char *key)
{
    const struct st_field *f = st_entity_field(k, field);
    struct cp_store *st;
    struct st_err err = {0};
    json_t *o = NULL;
    char id[64];
    int rc;

    st = cp_store_pool_get(cx->pool);
    rc = get_keyed(st, k, key, &o, &err);
    cp_store_pool_put(cx->pool, st);
    if (rc < 0 || ref_id(o, field) == NULL) {
        json_decref(o);
        cp_admin__reply_err(rs, f->ref->kind, rc < 0 ? rc : -ST_ENOTFOUND, &err, NULL);
        return;
    }
    st_snprintf(id, sizeof(id), "%s", ref_id(o, field));
    json_decref(o);
    cp_admin__entity(cx, rq, rs, f->ref->kind, id, NULL);
}
