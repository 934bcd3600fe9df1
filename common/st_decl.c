/* Kong's declarative configuration, read and written (see st_decl.h). This file holds the
 * parse; the module's other files (st_decl_int.h) read the text (st_decl_yaml.c), write
 * Kong's error body (st_decl_kong.c) and export (st_decl_export.c).
 *
 * Kong's sources: kong/db/declarative/init.lua (unserialize: JSON, then YAML through
 * lyaml; "failed parsing declarative configuration: ..."), kong/db/schema/others/
 * declarative_config.lua (the document schema, nesting through foreign keys,
 * populate_references/validate_references: uniqueness and reference errors),
 * kong/db/errors.lua (declarative_config: the code-14 body; flatten_errors),
 * kong/db/declarative/export.lua.
 *
 * A parse runs in Kong's two phases, each reporting all its problems at once:
 *   1. structure and schemas: the top-level keys, then every entity (st_schema), nested
 *      ones included; errors are placed where Kong's schema validation places them
 *      (`fields.services[2].routes[1].port`);
 *   2. only when phase 1 passed: uniqueness inside the document (names, ids, CA
 *      certificate digests) and references (`service: name-or-id`), Kong's
 *      "uniqueness violation: ..." and "invalid reference ..." messages.
 *
 * Strait differences, on purpose:
 * - Collections Kong has and Strait has not yet (plugins, consumers, ...) are refused
 *   when non-empty: "'plugins' is not supported yet". A non-mapping document (a
 *   list, a scalar) is "expected an object".
 * - Entities without an id take the caller's (st_decl_opts.lookup, by name) or a new
 *   random UUID (Kong DB-less derives a v5 UUID from the name).
 * - References are also checked for services.ca_certificates, and may be written
 *   `{"name": ...}` besides Kong's `name-or-id` and `{"id": ...}`.
 * - A duplicate name of a nested entity is reported under its parent
 *   (`services[1].routes[2]`), as Kong does for duplicate ids; Kong puts it at
 *   `routes[2]`, the wrong entity.
 * - Limits Kong does not have (st_decl.h, issue 14): a reference is quoted in a message
 *   up to ST_DECL_ECHO_MAX bytes (the text's own limits are st_decl_yaml.c's, the error
 *   body's st_decl_kong.c's). A reference error keyed by a name made of digits stays
 *   keyed by that name (Kong's string key), never an array position.
 */
#include "st_decl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_check.h"
#include "st_decl_int.h"
#include "st_err.h"
#include "st_json.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_str.h"
#include "st_util.h"

#define DECL_PLACEHOLDER "00000000-0000-0000-0000-000000000000"
#define MSG_PARSE        "failed parsing declarative configuration: "
/* Marks a phase-2 error keyed by a name or id (Kong's errs[entity][name], a string key in
 * Lua) apart from one keyed by a position (errs[entity][i], an integer key), until
 * normalise() turns the integer-keyed tables into arrays: a name such as "99999999999"
 * must never become an array index. Names and ids never hold a control character. */
#define DECL_NAMED_MARK '\x01'

/* ------------------------------------------------------------------------ */
/* entities, collections and their relationships                              */

/* The kinds, their foreign keys (written name-or-id at the top level, implied when
 * nested), nesting (through every foreign key) and endpoint keys are the descriptions'
 * (st_entity.h). Collections are walked in st_entity_order's order, referenced before
 * referencing, as Kong's populate_references walks them: it decides which of two
 * duplicates is "already declared". */

/* Top-level collections of Kong's declarative format Strait does not have yet. */
static const char *const later_collections[] = {
    "consumers",
    "vaults",
    "acls",
    "basicauth_credentials",
    "hmacauth_credentials",
    "jwt_secrets",
    "keyauth_credentials",
    "oauth2_credentials",
    "key_sets",
    "keys",
    "filter_chains",
    "workspaces",
    "partials",
    NULL,
};

/* The value of kind k's endpoint key in obj (Kong's name), or NULL. */
static const char *
endpoint_of(enum st_entity_kind k, const json_t *obj)
{
    const struct st_field *ep = st_entity_endpoint(k);

    return ep != NULL ? json_string_value(json_object_get(obj, ep->name)) : NULL;
}

/* ------------------------------------------------------------------------ */
/* phase 1: the document's structure and every entity's schema               */

struct item {
    enum st_entity_kind k;
    json_t *obj; /* the entity, owned */
    long parent; /* the item it is nested in, -1 at the top level */
    size_t idx;  /* 1-based position in its list */
    /* its foreign keys (the kind's FOREIGN fields, in order): as written at the top level
     * (owned; NULL none), and the items they name (-1 none, yet) */
    json_t *ref[ST_ENTITY_FOREIGN_MAX];
    long target[ST_ENTITY_FOREIGN_MAX];
};

struct decl {
    const struct st_decl_opts *o;
    int64_t now_ms;
    struct item *items;
    size_t n;
    size_t cap;
    json_t *errs; /* phase 2 errors, keys are strings until normalised */
};

static long
item_add(struct decl *d, enum st_entity_kind k, size_t idx, long parent)
{
    struct item *it;

    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 32;
        d->items = st_xrealloc(d->items, d->cap * sizeof(*d->items));
    }
    it = &d->items[d->n];
    memset(it, 0, sizeof(*it));
    it->k = k;
    it->parent = parent;
    for (size_t j = 0; j < ST_ENTITY_FOREIGN_MAX; j++) {
        it->target[j] = -1;
    }
    it->idx = idx;
    return (long)d->n++;
}

/* _comment and _ignore, allowed in every record and dropped. */
static void
strip_meta(json_t *obj, json_t *e)
{
    json_t *v = json_object_get(obj, "_comment");

    if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
        json_object_set_new(e, "_comment", json_string("expected a string"));
    }
    v = json_object_get(obj, "_ignore");
    if (v != NULL && !json_is_null(v) && !json_is_array(v)) {
        json_object_set_new(e, "_ignore", json_string("expected an array"));
    }
    json_object_del(obj, "_comment");
    json_object_del(obj, "_ignore");
}

/* A foreign key written at the top level: "name-or-id", {"id": uuid} or {"name": ...}.
 * Returns its error or NULL. */
static json_t *
ref_check(const json_t *v)
{
    const json_t *id;
    const json_t *name;

    if (json_is_string(v)) {
        return json_string_length(v) > 0 ? NULL : json_string("length must be at least 1");
    }
    if (!json_is_object(v)) {
        return json_string("expected a record");
    }
    id = json_object_get(v, "id");
    name = json_object_get(v, "name");
    if (id != NULL) {
        const char *why = json_is_null(id)                            ? "required field missing"
                          : !json_is_string(id)                       ? "expected a string"
                          : !st_schema_is_uuid(json_string_value(id)) ? "expected a valid UUID"
                                                                      : NULL;

        return why != NULL ? json_pack("{s:s}", "id", why) : NULL;
    }
    if (name != NULL && !json_is_null(name)) {
        if (!json_is_string(name)) {
            return json_pack("{s:s}", "name", "expected a string");
        }
        return json_string_length(name) > 0
                   ? NULL
                   : json_pack("{s:s}", "name", "length must be at least 1");
    }
    return json_pack("{s:s}", "id", "missing primary key");
}

/* One foreign key (fk, the item's j-th): implied by its parent when nested in one of the
 * kind it references (and then must not be written), else kept aside for phase 2. A
 * valid-looking placeholder stands in for it while the schema checks the entity, so that
 * rules depending on it apply. */
static void
foreign_in(struct decl *d, struct item *it, const struct st_field *fk, size_t j, json_t *obj,
           json_t *e)
{
    json_t *v = json_object_get(obj, fk->name);
    json_t *err;

    if (it->parent >= 0 && d->items[it->parent].k == fk->ref->kind) {
        if (v != NULL && !json_is_null(v)) {
            json_object_set_new(e, fk->name, json_string("value must be null"));
        }
        it->target[j] = it->parent;
        json_object_set_new(obj, fk->name, json_pack("{s:s}", "id", DECL_PLACEHOLDER));
        return;
    }
    if (v == NULL || json_is_null(v)) {
        return;
    }
    err = ref_check(v);
    if (err != NULL) {
        json_object_set_new(e, fk->name, err);
        json_object_del(obj, fk->name);
        return;
    }
    it->ref[j] = json_incref(v);
    json_object_set_new(obj, fk->name, json_pack("{s:s}", "id", DECL_PLACEHOLDER));
}

/* The item's foreign keys (foreign_in each). */
static void
foreigns_in(struct decl *d, long self, json_t *obj, json_t *e)
{
    struct item *it = &d->items[self];
    size_t j = 0;

    for (const struct st_field *f = st_entities[it->k]->fields; f->name != NULL; f++) {
        if (f->type == ST_FT_FOREIGN) {
            foreign_in(d, it, f, j++, obj, e);
        }
    }
}

/* created_at/updated_at: seconds in the document, milliseconds inside. */
static void
timestamp_in(json_t *obj, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(obj, key);
    long long n;

    if (v == NULL || json_is_null(v)) {
        json_object_set_new(obj, key, json_integer(dflt));
        return;
    }
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 9.2e15 &&
               (double)(long long)json_real_value(v) == json_real_value(v)) {
        n = (long long)json_real_value(v);
    } else {
        return; /* st_schema reports it */
    }
    if (n > 0 && n <= LLONG_MAX / 1000) {
        json_object_set_new(obj, key, json_integer(n * 1000));
    }
}

/* id (kept, else the caller's for this name, else new) and timestamps. */
static void
ids_in(struct decl *d, enum st_entity_kind k, json_t *obj)
{
    json_t *id = json_object_get(obj, "id");
    int64_t created = 0;

    if (id == NULL || json_is_null(id)) {
        const char *name = endpoint_of(k, obj);
        char buf[37] = "";

        if (name == NULL || name[0] == '\0' || d->o->lookup == NULL ||
            d->o->lookup(d->o->lookup_arg, k, name, buf, &created) != 0 ||
            !st_schema_is_uuid(buf)) {
            int rc = st_ssl_uuid(buf);

            ST_ASSERT(rc == 0);
            created = 0;
        }
        json_object_set_new(obj, "id", json_string(buf));
    }
    timestamp_in(obj, "created_at", created > 0 ? created : d->now_ms);
    timestamp_in(obj, "updated_at", d->now_ms);
}

static json_t *list_in(struct decl *d, enum st_entity_kind k, const json_t *list, long parent);

/* One record of a list: its errors (NULL when it is valid). */
static json_t *
entity_in(struct decl *d, enum st_entity_kind k, const json_t *raw, size_t idx, long parent)
{
    struct st_entity_nest nests[ST_ENTITY_NESTS_MAX];
    size_t nn = st_entity_nests(k, nests);
    json_t *kids[ST_ENTITY_NESTS_MAX] = {NULL};
    json_t *fields = NULL;
    json_t *obj;
    json_t *e;
    long self;

    if (!json_is_object(raw)) {
        return json_string("expected a record");
    }
    e = json_object();
    obj = json_deep_copy(raw);
    strip_meta(obj, e);
    for (size_t i = 0; i < nn; i++) {
        const char *key = nests[i].child->name;

        if (json_object_get(obj, key) != NULL) {
            kids[i] = json_incref(json_object_get(obj, key));
            json_object_del(obj, key);
        }
    }
    self = item_add(d, k, idx, parent);
    d->items[self].obj = obj;
    foreigns_in(d, self, obj, e);
    ids_in(d, k, obj);
    st_schema_input(k, obj);
    if (st_schema_validate(k, obj, &fields) < 0) {
        json_object_update(fields, e); /* ours are the more precise */
        json_decref(e);
        e = fields;
    }
    for (size_t i = 0; i < nn; i++) {
        if (kids[i] != NULL) {
            json_t *ce = list_in(d, nests[i].child->kind, kids[i], self);

            if (ce != NULL) {
                json_object_set_new(e, nests[i].child->name, ce);
            }
            json_decref(kids[i]);
        }
    }
    if (json_object_size(e) == 0) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* A list of records: its errors, Kong's shape (an array with nulls at valid
 * entries), or NULL. */
static json_t *
list_in(struct decl *d, enum st_entity_kind k, const json_t *list, long parent)
{
    json_t *errs = NULL;
    size_t i;
    json_t *raw;

    if (json_is_null(list)) {
        return NULL;
    }
    if (!json_is_array(list)) {
        return json_string("expected an array");
    }
    json_array_foreach(list, i, raw)
    {
        json_t *e = entity_in(d, k, raw, i + 1, parent);

        if (e != NULL) {
            st_json_arr_put(&errs, i, e);
        }
    }
    return errs;
}

static bool
is_empty_value(const json_t *v)
{
    return json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ||
           (json_is_object(v) && json_object_size(v) == 0);
}

/* The top level: returns Kong's `fields` (empty when valid). */
static json_t *
doc_in(struct decl *d, const json_t *doc)
{
    static const char *const versions[] = {"1.1", "2.1", "3.0", NULL};
    json_t *errs = json_object();
    const json_t *v = json_object_get(doc, "_format_version");
    enum st_entity_kind order[ST_ENT__COUNT];
    enum st_entity_kind k;
    const char *key;
    json_t *val;
    const char *why = v == NULL || json_is_null(v) ? "required field missing"
                      : !json_is_string(v)         ? "expected a string"
                      : !st_str_in(json_string_value(v), versions)
                          ? "expected one of: 1.1, 2.1, 3.0"
                          : NULL;

    if (why != NULL) {
        json_object_set_new(errs, "_format_version", json_string(why));
    }
    json_object_foreach((json_t *)doc, key, val)
    {
        char msg[128];

        if (strcmp(key, "_format_version") == 0 || st_entity_by_name(key, &k)) {
            continue;
        }
        if (json_is_null(val) && (key[0] == '_' || st_str_in(key, later_collections))) {
            continue;
        }
        if (strcmp(key, "_transform") == 0) {
            why = json_is_boolean(val) ? NULL : "expected a boolean";
        } else if (strcmp(key, "_comment") == 0 || strcmp(key, "_workspace") == 0) {
            why = json_is_string(val) ? NULL : "expected a string";
        } else if (strcmp(key, "_ignore") == 0) {
            why = json_is_array(val) ? NULL : "expected an array";
        } else if (st_str_in(key, later_collections)) {
            snprintf(msg, sizeof(msg), "'%s' is not supported yet", key);
            why = is_empty_value(val) ? NULL : msg;
        } else {
            why = "unknown field";
        }
        if (why != NULL) {
            json_object_set_new(errs, key, json_string(why));
        }
    }
    st_entity_order(order);
    for (size_t i = 0; i < ST_ENT__COUNT; i++) {
        const char *coll = st_entity_name(order[i]);
        const json_t *list = json_object_get(doc, coll);

        if (list != NULL) {
            json_t *e = list_in(d, order[i], list, -1);

            if (e != NULL) {
                json_object_set_new(errs, coll, e);
            }
        }
    }
    return errs;
}

/* ------------------------------------------------------------------------ */
/* phase 2: uniqueness and references                                         */

/* The errors of item i's list, created on demand: errs[coll], or under the parent's
 * entry for a nested item (errs.services["2"].routes). */
static json_t *
list_errs(struct decl *d, long i)
{
    const struct item *it = &d->items[i];
    json_t *holder;

    if (it->parent < 0) {
        holder = d->errs;
    } else {
        json_t *pl = list_errs(d, it->parent);
        char key[32];

        snprintf(key, sizeof(key), "%zu", d->items[it->parent].idx);
        holder = json_object_get(pl, key);
        if (!json_is_object(holder)) {
            json_t *o = json_object();

            if (json_is_string(holder)) {
                json_object_set_new(o, "@entity", json_pack("[O]", holder));
            }
            json_object_set_new(pl, key, o);
            holder = o;
        }
    }
    return st_json_child(holder, st_entity_name(it->k), JSON_OBJECT);
}

/* Kong's errs[entity][i] = msg (a second message joins the entity's "@entity"). */
static void
put_msg(struct decl *d, long i, const char *msg)
{
    json_t *l = list_errs(d, i);
    char key[32];
    json_t *cur;

    snprintf(key, sizeof(key), "%zu", d->items[i].idx);
    cur = json_object_get(l, key);
    if (cur == NULL) {
        json_object_set_new(l, key, json_string(msg));
    } else if (json_is_object(cur)) {
        st_check_entity_err(cur, msg);
    }
}

static void
uniq_msg(char *buf, size_t size, enum st_entity_kind k, const char *what, const char *value)
{
    st_snprintf(buf, size, "uniqueness violation: '%s' entity with %s set to '%s' already declared",
                st_entity_name(k), what, value);
}

/* Where Kong keys a reference error: the entity's name, else its id. */
static const char *
item_key(const struct item *it)
{
    const char *name = endpoint_of(it->k, it->obj);

    return name != NULL ? name : json_string_value(json_object_get(it->obj, "id"));
}

/* The key of an error Kong keys by a name or id (see DECL_NAMED_MARK). */
static void
named_key(struct st_str *b, const char *name)
{
    st_str_addf(b, "%c%s", DECL_NAMED_MARK, name);
}

/* s quoted in a message: at most ST_DECL_ECHO_MAX bytes of it (whole UTF-8 characters),
 * then "...". Longer than any name, so it still says which reference was meant. */
static void
echo_add(struct st_str *b, const char *s)
{
    size_t n = strlen(s);

    if (n <= ST_DECL_ECHO_MAX) {
        st_str_addn(b, s, n);
        return;
    }
    n = ST_DECL_ECHO_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
        n--;
    }
    st_str_addn(b, s, n);
    st_str_add(b, "...");
}

/* Kong's errs[entity][name-or-id] list of "invalid reference" messages. */
static void
ref_err(struct decl *d, long i, const char *field, const json_t *v, enum st_entity_kind to)
{
    json_t *l = list_errs(d, i);
    struct st_str at = {0};
    char *dump = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    struct st_str b = {0};

    named_key(&at, item_key(&d->items[i]));
    st_str_addf(&b, "invalid reference '%s: ", field);
    echo_add(&b, json_is_string(v) ? json_string_value(v) : (dump != NULL ? dump : "?"));
    st_str_addf(&b, "' (no such entry in '%s')", st_entity_name(to));
    free(dump);
    json_array_append_new(st_json_child(l, at.p, JSON_ARRAY), json_string(b.p));
    free(b.p);
    free(at.p);
}

/* The item of kind k named by key: by its endpoint key (name) first, then by id (Kong's
 * find_entity). */
static long
find(json_t *const names[ST_ENT__COUNT], json_t *const ids[ST_ENT__COUNT], enum st_entity_kind k,
     const char *key, bool by_id)
{
    json_t *hit = NULL;

    if (key == NULL) {
        return -1;
    }
    if (st_entity_endpoint(k) != NULL) {
        hit = json_object_get(names[k], key);
    }
    if (hit == NULL && by_id) {
        hit = json_object_get(ids[k], key);
    }
    return hit != NULL ? (long)json_integer_value(hit) : -1;
}

/* Item i's foreign key fk (its j-th), written at the top level: the item it names. */
static void
resolve_ref(struct decl *d, long i, const struct st_field *fk, size_t j,
            json_t *const names[ST_ENT__COUNT], json_t *const ids[ST_ENT__COUNT])
{
    const json_t *r = d->items[i].ref[j];
    const json_t *id = json_object_get(r, "id");
    enum st_entity_kind to = fk->ref->kind;
    /* "name-or-id" and {"id": ...} by name, then id; {"name": ...} by name only */
    bool by_id = json_is_string(r) || id != NULL;
    const json_t *key = json_is_string(r) ? r : by_id ? id : json_object_get(r, "name");
    long t = find(names, ids, to, json_string_value(key), by_id);

    if (t < 0) {
        ref_err(d, i, fk->name, r, to);
    }
    d->items[i].target[j] = t;
}

/* Item i's references: its foreign keys written at the top level, and the ids of its
 * foreign sets (services.ca_certificates), each of which must name an entity of the
 * document. */
static void
resolve_refs(struct decl *d, long i, json_t *const names[ST_ENT__COUNT],
             json_t *const ids[ST_ENT__COUNT])
{
    const struct item *it = &d->items[i];
    size_t j = 0;

    for (const struct st_field *f = st_entities[it->k]->fields; f->name != NULL; f++) {
        const json_t *arr = json_object_get(it->obj, f->name);
        size_t n;
        json_t *el;

        if (f->type == ST_FT_FOREIGN && it->ref[j++] != NULL) {
            resolve_ref(d, i, f, j - 1, names, ids);
        }
        if (f->type != ST_FT_FOREIGN_SET || !json_is_array(arr)) {
            continue;
        }
        json_array_foreach(arr, n, el)
        {
            if (json_object_get(ids[f->ref->kind], json_string_value(el)) == NULL) {
                ref_err(d, i, f->name, el, f->ref->kind);
            }
        }
    }
}

/* Adds the messages of a named error (a string or a list of them) to cur, the error
 * of the same key by position (Kong sends both as one JSON key). */
static json_t *
named_merge(json_t *cur, json_t *named)
{
    json_t *list = cur;

    if (json_is_object(cur)) {
        list = st_json_child(cur, "@entity", JSON_ARRAY);
    } else if (!json_is_array(cur)) {
        list = json_pack("[O]", cur);
        json_decref(cur);
        cur = list;
    }
    if (json_is_array(named)) {
        json_array_extend(list, named);
    } else {
        json_array_append(list, named);
    }
    json_decref(named);
    return cur;
}

/* Objects whose keys are all positions 1..n become arrays with nulls (Lua's
 * sequences); n is at most the length of the list the errors are about, never a
 * number read from the document. Named keys lose their mark. */
static json_t *
normalise(json_t *v)
{
    const char *key;
    json_t *el;
    void *tmp;
    json_t *named = NULL;
    size_t max = 0;
    bool seq = true;

    if (!json_is_object(v)) {
        return v;
    }
    json_object_foreach_safe(v, tmp, key, el)
    {
        size_t i;

        if (key[0] == DECL_NAMED_MARK) {
            if (named == NULL) {
                named = json_object();
            }
            json_object_set_new(named, key + 1, normalise(json_incref(el)));
            json_object_del(v, key);
            continue;
        }
        json_object_set_new(v, key, normalise(json_incref(el)));
        if (!st_decl__is_index_key(key, &i)) {
            seq = false;
        } else if (i > max) {
            max = i;
        }
    }
    if (named != NULL) {
        json_object_foreach(named, key, el)
        {
            json_t *cur = json_object_get(v, key);

            json_incref(el);
            json_object_set_new(v, key, cur != NULL ? named_merge(json_incref(cur), el) : el);
        }
        json_decref(named);
        return v;
    }
    if (seq && json_object_size(v) > 0) {
        json_t *arr = json_array();

        for (size_t i = 1; i <= max; i++) {
            char k[32];
            json_t *x;

            snprintf(k, sizeof(k), "%zu", i);
            x = json_object_get(v, k);
            json_array_append(arr, x != NULL ? x : json_null());
        }
        json_decref(v);
        return arr;
    }
    return v;
}

/* Kong's uniqueness of the unique fields that are not the endpoint key
 * (ca_certificates.cert_digest) inside the document, keyed by the entity's id; seen[k]
 * holds the values met of kind k, by field. */
static void
uniques_check(struct decl *d, long i, json_t *const seen[ST_ENT__COUNT])
{
    const struct item *it = &d->items[i];
    const char *id = json_string_value(json_object_get(it->obj, "id"));
    char msg[1024];

    for (const struct st_field *f = st_entities[it->k]->fields; f->name != NULL; f++) {
        const char *v = json_string_value(json_object_get(it->obj, f->name));
        json_t *vals;

        if (!(f->flags & ST_FIELD_F_UNIQUE) || (f->flags & ST_FIELD_F_ENDPOINT) || v == NULL) {
            continue;
        }
        vals = st_json_child(seen[it->k], f->name, JSON_OBJECT);
        if (json_object_get(vals, v) != NULL) {
            struct st_str at = {0};

            named_key(&at, id);
            uniq_msg(msg, sizeof(msg), it->k, f->name, v);
            json_object_set_new(list_errs(d, i), at.p, json_string(msg));
            free(at.p);
        } else {
            json_object_set_new(vals, v, json_true());
        }
    }
}

/* Returns Kong's `fields` of phase 2 (empty when valid). */
static json_t *
refs_check(struct decl *d)
{
    json_t *names[ST_ENT__COUNT];
    json_t *ids[ST_ENT__COUNT];
    json_t *seen[ST_ENT__COUNT];
    char msg[1024];

    d->errs = json_object();
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        names[k] = json_object();
        ids[k] = json_object();
        seen[k] = json_object();
    }
    for (size_t i = 0; i < d->n; i++) {
        const struct item *it = &d->items[i];
        const struct st_field *ep = st_entity_endpoint(it->k);
        const char *name = endpoint_of(it->k, it->obj);
        const char *id = json_string_value(json_object_get(it->obj, "id"));
        bool failed = false;

        if (name != NULL) {
            if (json_object_get(names[it->k], name) != NULL) {
                uniq_msg(msg, sizeof(msg), it->k, ep->name, name);
                put_msg(d, (long)i, msg);
                failed = true;
            } else {
                json_object_set_new(names[it->k], name, json_integer((json_int_t)i));
            }
        }
        if (json_object_get(ids[it->k], id) != NULL) {
            if (!failed) {
                uniq_msg(msg, sizeof(msg), it->k, "primary key", id);
                put_msg(d, (long)i, msg);
            }
        } else {
            json_object_set_new(ids[it->k], id, json_integer((json_int_t)i));
        }
        uniques_check(d, (long)i, seen);
    }
    for (size_t i = 0; i < d->n; i++) {
        resolve_refs(d, (long)i, names, ids);
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(names[k]);
        json_decref(ids[k]);
        json_decref(seen[k]);
    }
    return d->errs;
}

/* ------------------------------------------------------------------------ */
/* parse                                                                      */

/* Sets each foreign key of item it to {"id": <the id of the item it names>}. */
static void
targets_out(struct decl *d, struct item *it)
{
    size_t j = 0;

    for (const struct st_field *f = st_entities[it->k]->fields; f->name != NULL; f++) {
        long t = f->type == ST_FT_FOREIGN ? it->target[j++] : -1;

        if (t >= 0) {
            json_object_set_new(it->obj, f->name,
                                json_pack("{s:O}", "id", json_object_get(d->items[t].obj, "id")));
        }
    }
}

static void
decl_fini(struct decl *d)
{
    for (size_t i = 0; i < d->n; i++) {
        json_decref(d->items[i].obj);
        for (size_t j = 0; j < ST_ENTITY_FOREIGN_MAX; j++) {
            json_decref(d->items[i].ref[j]);
        }
    }
    free(d->items);
    json_decref(d->errs);
}

int
st_decl_parse(const char *text, size_t len, const struct st_decl_opts *o,
              json_t *lists[ST_ENT__COUNT], json_t **error)
{
    static const struct st_decl_opts none = {0};
    struct decl d = {0};
    char err[320];
    json_t *doc;
    json_t *fields;
    int rc = 0;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        lists[k] = NULL;
    }
    *error = NULL;
    d.o = o != NULL ? o : &none;
    d.now_ms = d.o->now_ms > 0 ? d.o->now_ms : st_time_ms() / 1000 * 1000;
    err[0] = '\0';
    doc = st_decl__load(text, len, err, sizeof(err));
    if (doc == NULL || !json_is_object(doc)) {
        char msg[400];

        st_snprintf(msg, sizeof(msg), MSG_PARSE "%s", doc != NULL ? "expected an object" : err);
        json_decref(doc);
        *error = st_decl__error_body(json_pack("{s:s}", "error", msg), NULL);
        return -ST_EPARSE;
    }
    fields = doc_in(&d, doc);
    if (json_object_size(fields) == 0) {
        json_decref(fields);
        fields = normalise(json_incref(refs_check(&d)));
    }
    if (json_object_size(fields) > 0) {
        json_t *flat;

        st_decl__errors_bound(fields);
        flat = st_decl__flatten(doc, fields);

        *error = st_decl__error_body(fields, flat);
        rc = -ST_ESCHEMA;
    } else {
        json_decref(fields);
        for (int k = 0; k < ST_ENT__COUNT; k++) {
            lists[k] = json_array();
        }
        for (size_t i = 0; i < d.n; i++) {
            struct item *it = &d.items[i];

            targets_out(&d, it);
            json_array_append(lists[it->k], it->obj);
        }
    }
    json_decref(doc);
    decl_fini(&d);
    return rc;
}
