/* Kong's error body for a declarative configuration (kong/db/errors.lua,
 * declarative_config and flatten_errors), for st_decl (st_decl_int.h).
 *
 * - The code-14 body's message is `declarative config is invalid: ` followed by the
 *   errors as penlight's pretty.write(err_t, "") writes a Lua table: array-like keys
 *   first, then the others sorted (Lua's own order is its hash order), strings quoted as
 *   stringx.quote_string does.
 * - flatten_errors=1 turns the nested errors into one entry per entity in error
 *   (add_entity_errors, categorize_errors), drained as Kong drains them.
 *
 * Strait differences, on purpose:
 * - Flattening: errors Kong's flatten_errors loses (a uniqueness message, a reference
 *   error keyed by name) become "entity" errors of the entity they belong to.
 * - Limits Kong does not have (st_decl.h, issue 14): the number of errors reported
 *   (ST_DECL_ERRORS_MAX) and the bytes of entities copied into flattened_errors
 *   (ST_DECL_FLAT_ENTITY_BYTES).
 */
#include "st_decl_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_decl.h"
#include "st_json.h"
#include "st_schema.h"
#include "st_str.h"
#include "st_util.h"

/* ------------------------------------------------------------------------ */
/* Kong's message: penlight's pretty.write(err_t, "")                          */

static bool
is_lua_keyword(const char *s)
{
    static const char *const kw[] = {
        "and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
        "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
        "repeat",   "return", "then", "true", "until",  "while", NULL,
    };

    return st_str_in(s, kw);
}

static bool
is_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_')) {
            return false;
        }
    }
    return !is_lua_keyword(s);
}

/* The longest run of '=' in a "[=*[" or "]=*]" of s, -1 if none (stringx.has_lquote). */
static int
long_quote_level(const char *s, size_t n)
{
    int best = -1;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '[' || s[i] == ']') {
            size_t j = i + 1;

            while (j < n && s[j] == '=') {
                j++;
            }
            if (j < n && s[j] == s[i] && (int)(j - i - 1) > best) {
                best = (int)(j - i - 1);
            }
        }
    }
    return best;
}

/* stringx.quote_string: a long bracket string when s holds a newline or a long
 * bracket, else Lua's %q. */
static void
lua_quote(struct st_str *b, const char *s, size_t n)
{
    int level = long_quote_level(s, n);

    if (memchr(s, '\n', n) != NULL || level >= 0) {
        char eq[64];
        int k = level + 1 < (int)sizeof(eq) ? level + 1 : (int)sizeof(eq) - 1;

        memset(eq, '=', (size_t)k);
        eq[k] = '\0';
        /* a newline right after the opening bracket is dropped by Lua: doubled */
        st_str_addf(b, "[%s[%s", eq, n > 0 && s[0] == '\n' ? "\n" : "");
        st_str_addn(b, s, n);
        st_str_addf(b, "]%s]", eq);
        return;
    }
    st_str_add(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            st_str_addn(b, esc, 2);
        } else if (c == '\r') {
            st_str_add(b, "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            /* three digits when a digit follows, which would otherwise join the escape */
            bool digit_next = i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9';

            st_str_addf(b, "\\%0*u", digit_next ? 3 : 1, c);
        } else {
            st_str_addn(b, s + i, 1);
        }
    }
    st_str_add(b, "\"");
}

bool
st_decl__is_index_key(const char *s, size_t *out)
{
    size_t v = 0;

    if (*s < '1' || *s > '9') {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > SIZE_MAX / 10 - 10) {
            return false;
        }
        v = v * 10 + (size_t)(*p - '0');
    }
    *out = v;
    return true;
}

struct ikey {
    size_t i;
    const char *key;
};

static int
cmp_ikey(const void *a, const void *b)
{
    const struct ikey *x = a;
    const struct ikey *y = b;

    return x->i < y->i ? -1 : x->i > y->i;
}

static void lua_pretty(struct st_str *b, const json_t *v);

static void
lua_item(struct st_str *b, bool *first, const char *key, const json_t *v)
{
    if (!*first) {
        st_str_add(b, ",");
    }
    *first = false;
    if (key != NULL) {
        st_str_add(b, key);
        st_str_add(b, "=");
    }
    lua_pretty(b, v);
}

/* An object: array-like keys first (positional while they run 1, 2, ..., then
 * "[n]="), then the other keys sorted (Lua's own order is its hash order). */
static void
lua_object(struct st_str *b, const json_t *v)
{
    size_t n;
    const char **keys = st_json_keys(v, &n);
    struct ikey *nums = st_xcalloc(n + 1, sizeof(*nums));
    const char **strs = st_xcalloc(n + 1, sizeof(*strs));
    size_t nn = 0;
    size_t ns = 0;
    bool first = true;
    size_t next = 1;

    for (size_t j = 0; j < n; j++) {
        size_t i;

        if (json_is_null(json_object_get(v, keys[j]))) {
            continue;
        }
        if (st_decl__is_index_key(keys[j], &i)) {
            nums[nn].i = i;
            nums[nn++].key = keys[j];
        } else {
            strs[ns++] = keys[j]; /* in order */
        }
    }
    free(keys);
    qsort(nums, nn, sizeof(*nums), cmp_ikey);
    st_str_add(b, "{");
    for (size_t i = 0; i < nn; i++) {
        bool positional = nums[i].i == next;
        char k[48];

        snprintf(k, sizeof(k), "[%zu]", nums[i].i);
        lua_item(b, &first, positional ? NULL : k, json_object_get(v, nums[i].key));
        next += positional;
    }
    for (size_t i = 0; i < ns; i++) {
        struct st_str k = {0};

        if (is_identifier(strs[i])) {
            st_str_add(&k, strs[i]);
        } else {
            st_str_add(&k, "[");
            lua_quote(&k, strs[i], strlen(strs[i]));
            st_str_add(&k, "]");
        }
        lua_item(b, &first, k.p, json_object_get(v, strs[i]));
        free(k.p);
    }
    st_str_add(b, "}");
    free(nums);
    free(strs);
}

static void
lua_pretty(struct st_str *b, const json_t *v)
{
    size_t i;
    json_t *el;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        lua_object(b, v);
        break;
    case JSON_ARRAY: {
        bool first = true;
        bool positional = true;

        st_str_add(b, "{");
        json_array_foreach(v, i, el)
        {
            char k[48];

            if (json_is_null(el)) {
                positional = false;
                continue;
            }
            snprintf(k, sizeof(k), "[%zu]", i + 1);
            lua_item(b, &first, positional ? NULL : k, el);
        }
        st_str_add(b, "}");
        break;
    }
    case JSON_STRING:
        lua_quote(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        st_str_addf(b, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL: {
        double d = json_real_value(v);

        if (d > -9.2e18 && d < 9.2e18 && (double)(long long)d == d) {
            st_str_addf(b, "%lld", (long long)d);
        } else {
            st_str_addf(b, "%.14g", d);
        }
        break;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        st_str_add(b, json_is_true(v) ? "true" : "false");
        break;
    default:
        st_str_add(b, "nil");
        break;
    }
}

/* The code-14 body's message for fields: a new JSON string. */
static json_t *
kong_message(const json_t *fields)
{
    struct st_str b = {0};
    json_t *msg;

    st_str_add(&b, "declarative config is invalid: ");
    lua_pretty(&b, fields);
    msg = json_string(b.p);
    free(b.p);
    return msg;
}

json_t *
st_decl__error_body(json_t *fields, json_t *flattened)
{
    json_t *body =
        json_pack("{s:i,s:s,s:o,s:o}", "code", 14, "name", "invalid declarative configuration",
                  "message", kong_message(fields), "fields", fields);

    if (flattened != NULL) {
        json_object_set_new(body, "flattened_errors", flattened);
    }
    return body;
}

/* ------------------------------------------------------------------------ */
/* the size of an error (Strait's bound)                                      */

static bool
is_blank(const json_t *v)
{
    size_t i;
    json_t *el;

    if (json_is_object(v)) {
        return json_object_size(v) == 0;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, el)
        {
            if (!json_is_null(el)) {
                return false;
            }
        }
        return true;
    }
    return json_is_null(v);
}

/* Keeps the first *keep messages of v (objects in key order, arrays in position order)
 * and drops the others, with the lists and records they leave empty. What is dropped is
 * always the end of each list, so no position moves. Returns how many messages v held. */
static size_t
prune(json_t *v, size_t *keep)
{
    size_t n = 0;

    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *el = json_array_get(v, i);

            if (json_is_object(el) || json_is_array(el)) {
                n += prune(el, keep);
                if (is_blank(el)) {
                    json_array_set_new(v, i, json_null());
                }
            } else if (!json_is_null(el)) {
                n++;
                if (*keep == 0) {
                    json_array_set_new(v, i, json_null());
                } else {
                    (*keep)--;
                }
            }
        }
        while (json_array_size(v) > 0 && json_is_null(json_array_get(v, json_array_size(v) - 1))) {
            json_array_remove(v, json_array_size(v) - 1);
        }
    } else if (json_is_object(v)) {
        size_t cnt;
        const char **keys = st_json_keys(v, &cnt);
        json_t *el;

        for (size_t i = 0; i < cnt; i++) {
            bool drop;

            el = json_object_get(v, keys[i]);
            if (json_is_object(el) || json_is_array(el)) {
                n += prune(el, keep);
                drop = is_blank(el);
            } else if (json_is_null(el)) {
                drop = true;
            } else {
                n++;
                drop = *keep == 0;
                *keep -= drop ? 0 : 1;
            }
            if (drop) {
                json_object_del(v, keys[i]); /* frees keys[i], which is not read again */
            }
        }
        free(keys);
    }
    return n;
}

/* Kong reports every message: a document of many broken entities would answer with a body
 * many times its size. */
void
st_decl__errors_bound(json_t *fields)
{
    size_t keep = ST_DECL_ERRORS_MAX;
    size_t n = prune(fields, &keep);
    char msg[128];

    if (n > ST_DECL_ERRORS_MAX) {
        st_snprintf(msg, sizeof(msg), "only the first %d of %zu errors are shown",
                    ST_DECL_ERRORS_MAX, n);
        json_object_set_new(fields, "@truncated", json_string(msg));
    }
}

/* ------------------------------------------------------------------------ */
/* Kong's flatten_errors (kong/db/errors.lua)                                 */

static json_t *
make_pk(const json_t *entity)
{
    const json_t *id = json_object_get(entity, "id");

    if (json_is_string(id) && st_schema_is_uuid(json_string_value(id))) {
        return json_pack("{s:O}", "id", id);
    }
    return NULL;
}

static void
add_entity_error(json_t *errors, const json_t *err)
{
    size_t i;
    json_t *el;

    if (json_is_string(err)) {
        json_array_append_new(errors, json_pack("{s:s,s:O}", "type", "entity", "message", err));
    } else if (json_is_array(err)) {
        json_array_foreach(err, i, el)
        {
            add_entity_error(errors, el);
        }
    }
}

static void categorize(json_t *errors, const json_t *err, const char *ns);

static void
categorize_one(json_t *errors, const char *key, const json_t *v, const char *ns)
{
    struct st_str path = {0};

    if (ns != NULL && ns[0] != '\0') {
        st_str_addf(&path, "%s.", ns);
    }
    st_str_add(&path, key);
    if (strcmp(key, "@entity") == 0) {
        add_entity_error(errors, v);
    } else if (json_is_string(v)) {
        json_array_append_new(
            errors, json_pack("{s:s,s:s,s:O}", "type", "field", "field", path.p, "message", v));
    } else if (json_is_object(v) || json_is_array(v)) {
        categorize(errors, v, path.p);
    }
    free(path.p);
}

/* Kong's categorize_errors: keys drained from the last in sorted order. */
static void
categorize(json_t *errors, const json_t *err, const char *ns)
{
    if (json_is_array(err)) {
        for (size_t i = json_array_size(err); i > 0; i--) {
            char key[32];

            snprintf(key, sizeof(key), "%zu", i);
            categorize_one(errors, key, json_array_get(err, i - 1), ns);
        }
    } else if (json_is_object(err)) {
        size_t n;
        const char **keys = st_json_keys(err, &n);

        for (size_t i = n; i > 0; i--) {
            categorize_one(errors, keys[i - 1], json_object_get(err, keys[i - 1]), ns);
        }
        free(keys);
    }
}

static bool
is_string_list(const json_t *v)
{
    size_t i;
    json_t *el;

    if (!json_is_array(v)) {
        return false;
    }
    json_array_foreach(v, i, el)
    {
        if (!json_is_string(el)) {
            return false;
        }
    }
    return true;
}

/* Kong's flattened list being built, and how many more bytes of entity copies it may
 * take (ST_DECL_FLAT_ENTITY_BYTES). */
struct flat {
    json_t *out;
    size_t budget;
};

static void fl_list(struct flat *f, enum st_entity_kind k, json_t *items, json_t *errs, bool desc);

/* The entity an entry of flattened_errors shows: a copy while the budget lasts, then
 * only its id and name (the entry names it too). */
static json_t *
fl_copy(struct flat *f, json_t *entity)
{
    size_t n = json_dumpb(entity, NULL, 0, JSON_COMPACT);
    json_t *stub;
    const char *keys[] = {"id", "name"};

    if (n <= f->budget) {
        f->budget -= n;
        return json_incref(entity);
    }
    f->budget = 0;
    stub = json_object();
    for (size_t i = 0; i < ST_ARRAY_SIZE(keys); i++) {
        json_t *v = json_object_get(entity, keys[i]);

        if (json_is_string(v) && json_string_length(v) <= ST_DECL_ECHO_MAX) {
            json_object_set(stub, keys[i], v);
        }
    }
    return stub;
}

/* Kong's add_entity_errors: hoists the errors of nested and referenced entities into
 * entries of their own, then one entry for what is left. entity and err are ours to
 * change. */
static void
fl_entity(struct flat *f, enum st_entity_kind k, json_t *entity, json_t *err)
{
    struct st_entity_nest nests[ST_ENTITY_NESTS_MAX];
    size_t nn = st_entity_nests(k, nests);
    json_t *wrapped = NULL;
    json_t *pk;
    json_t *errors;
    json_t *entry;
    const json_t *v;

    if (json_is_string(err) || (is_string_list(err) && json_array_size(err) > 0)) {
        wrapped = json_pack("{s:O}", "@entity", err); /* Kong loses these */
        err = wrapped;
    }
    if (!json_is_object(err) || json_object_size(err) == 0 || !json_is_object(entity)) {
        json_decref(wrapped);
        return;
    }
    pk = make_pk(entity);
    for (const struct st_field *fk = st_entities[k]->fields; fk->name != NULL; fk++) {
        json_t *fv = fk->type == ST_FT_FOREIGN ? json_object_get(entity, fk->name) : NULL;

        if (json_is_object(fv) || json_is_array(fv)) {
            json_t *fe = json_incref(json_object_get(err, fk->name));
            json_t *fpk = make_pk(fv);

            json_incref(fv);
            json_object_del(err, fk->name);
            if (fpk != NULL) {
                json_object_set_new(entity, fk->name, fpk);
            } else {
                json_object_del(entity, fk->name);
            }
            fl_entity(f, fk->ref->kind, fv, fe);
            json_decref(fv);
            json_decref(fe);
        }
    }
    for (size_t i = 0; i < nn; i++) {
        const char *key = nests[i].child->name;
        json_t *cv = json_object_get(entity, key);
        json_t *ce = json_object_get(err, key);
        size_t j;
        json_t *item;

        if (!(json_is_object(cv) || json_is_array(cv))) {
            continue;
        }
        json_incref(cv);
        json_object_del(entity, key);
        if (json_is_array(cv)) {
            const char *cfk = nests[i].field->name;

            json_array_foreach(cv, j, item)
            {
                if (json_is_object(item) && json_object_get(item, cfk) == NULL && pk != NULL) {
                    json_object_set(item, cfk, pk);
                }
            }
        }
        if (json_is_object(ce) || json_is_array(ce)) {
            json_incref(ce);
            json_object_del(err, key);
            fl_list(f, nests[i].child->kind, cv, ce, false);
            json_decref(ce);
        }
        json_decref(cv);
    }
    json_decref(pk);
    if (json_object_size(err) > 0) {
        errors = json_array();
        categorize(errors, err, NULL);
        if (json_array_size(errors) > 0) {
            entry = json_object();
            json_object_set_new(entry, "entity_type", json_string(st_entities[k]->singular));
            v = json_object_get(entity, "id");
            if (json_is_string(v) && st_schema_is_uuid(json_string_value(v))) {
                json_object_set(entry, "entity_id", (json_t *)v);
            }
            v = json_object_get(entity, "name");
            if (json_is_string(v) && json_string_length(v) > 0) {
                json_object_set(entry, "entity_name", (json_t *)v);
            }
            v = json_object_get(entity, "tags");
            if (is_string_list(v)) {
                json_object_set(entry, "entity_tags", (json_t *)v);
            }
            json_object_set_new(entry, "entity", fl_copy(f, entity));
            json_object_set_new(entry, "errors", errors);
            json_array_append_new(f->out, entry);
        } else {
            json_decref(errors);
        }
    }
    json_decref(wrapped);
}

/* The record of items an error key names: its 1-based index, or (ours: Kong loses
 * them) the name or id that keys a reference or digest error. */
static json_t *
fl_item(json_t *items, const char *key)
{
    size_t i;
    json_t *el;

    if (st_decl__is_index_key(key, &i) && i <= json_array_size(items)) {
        return json_array_get(items, i - 1);
    }
    json_array_foreach(items, i, el)
    {
        const char *name = json_string_value(json_object_get(el, "name"));
        const char *id = json_string_value(json_object_get(el, "id"));

        if ((name != NULL && strcmp(name, key) == 0) || (id != NULL && strcmp(id, key) == 0)) {
            return el;
        }
    }
    return NULL;
}

/* The errors of a list (an array, or an object keyed by index or name), each given to
 * the record it belongs to; top-level lists go from the last (Kong's drain). */
static void
fl_list(struct flat *f, enum st_entity_kind k, json_t *items, json_t *errs, bool desc)
{
    if (json_is_array(errs)) {
        size_t n = json_array_size(errs);

        for (size_t j = 0; j < n; j++) {
            size_t i = desc ? n - 1 - j : j;
            json_t *e = json_array_get(errs, i);
            json_t *item = json_array_get(items, i);

            if (!json_is_null(e) && json_is_object(item)) {
                fl_entity(f, k, item, e);
            }
        }
    } else if (json_is_object(errs)) {
        size_t n;
        const char **keys = st_json_keys(errs, &n);

        for (size_t j = 0; j < n; j++) {
            const char *key = keys[desc ? n - 1 - j : j];
            json_t *item = fl_item(items, key);

            if (json_is_object(item)) {
                fl_entity(f, k, item, json_object_get(errs, key));
            }
        }
        free(keys);
    }
}

json_t *
st_decl__flatten(const json_t *doc, const json_t *fields)
{
    struct flat f = {json_array(), ST_DECL_FLAT_ENTITY_BYTES};
    json_t *input = json_deep_copy(doc);
    json_t *errs = json_deep_copy(fields);
    size_t n;
    const char **keys = st_json_keys(errs, &n);

    for (size_t i = n; i > 0; i--) {
        json_t *sec = json_object_get(errs, keys[i - 1]);
        json_t *items = json_object_get(input, keys[i - 1]);
        enum st_entity_kind k;

        if ((json_is_object(sec) || json_is_array(sec)) && json_is_array(items) &&
            st_entity_by_name(keys[i - 1], &k)) {
            fl_list(&f, k, items, sec, true);
        }
    }
    free(keys);
    json_decref(errs);
    json_decref(input);
    return f.out;
}

void
st_decl_error_flatten(json_t *error)
{
    const json_t *fields = json_object_get(error, "fields");
    json_t *rest;
    const char *key;
    json_t *v;

    if (json_object_get(error, "flattened_errors") == NULL) {
        return;
    }
    rest = json_object();
    json_object_foreach((json_t *)fields, key, v)
    {
        enum st_entity_kind k;

        if (!(json_is_object(v) || json_is_array(v)) || !st_entity_by_name(key, &k)) {
            json_object_set(rest, key, v);
        }
    }
    json_object_set_new(error, "message", kong_message(rest));
    json_object_set_new(error, "fields", rest);
}
