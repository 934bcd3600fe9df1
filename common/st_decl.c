/* Kong's declarative configuration, read and written (see st_decl.h).
 *
 * Kong's sources: kong/db/declarative/init.lua (unserialize: JSON, then YAML through
 * lyaml; "failed parsing declarative configuration: ..."), kong/db/schema/others/
 * declarative_config.lua (the document schema, nesting through foreign keys,
 * populate_references/validate_references: uniqueness and reference errors),
 * kong/db/errors.lua (declarative_config: the code-14 body, its message written with
 * penlight's pretty.write; flatten_errors), kong/db/declarative/export.lua.
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
 * - Collections Kong has and Strait has not yet (upstreams, plugins, ...) are refused
 *   when non-empty: "'upstreams' is not supported yet". A non-mapping document (a
 *   list, a scalar) is "expected an object".
 * - Entities without an id take the caller's (st_decl_opts.lookup, by name) or a new
 *   random UUID (Kong DB-less derives a v5 UUID from the name).
 * - References are also checked for services.ca_certificates, and may be written
 *   `{"name": ...}` besides Kong's `name-or-id` and `{"id": ...}`.
 * - A duplicate name of a nested entity is reported under its parent
 *   (`services[1].routes[2]`), as Kong does for duplicate ids; Kong puts it at
 *   `routes[2]`, the wrong entity.
 * - Flattening: errors Kong's flatten_errors loses (a uniqueness message, a reference
 *   error keyed by name) become "entity" errors of the entity they belong to.
 * - Limits Kong does not have (st_decl.h, issue 14): the text's depth, what a YAML
 *   document builds (aliases count as copies), the number of errors reported and the
 *   size of what an error quotes or copies. A reference error keyed by a name made of
 *   digits stays keyed by that name (Kong's string key), never an array position.
 * - Export nests routes under their service and snis under their certificate and
 *   omits null fields; Kong's export writes every collection flat with foreign keys as
 *   ids and keeps nulls. Both read back the same.
 */
#include "st_decl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "st_err.h"
#include "st_json.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_str.h"
#include "st_util.h"

#define DECL_PLACEHOLDER "00000000-0000-0000-0000-000000000000"
#define MSG_PARSE        "failed parsing declarative configuration: "
/* What a node of the document costs besides its text, in ST_DECL_EXPANDED_* units: about
 * what jansson spends on a value, so that a million empty nodes weigh as they cost. */
#define DECL_NODE_WEIGHT 16
/* Marks a phase-2 error keyed by a name or id (Kong's errs[entity][name], a string key in
 * Lua) apart from one keyed by a position (errs[entity][i], an integer key), until
 * normalise() turns the integer-keyed tables into arrays: a name such as "99999999999"
 * must never become an array index. Names and ids never hold a control character. */
#define DECL_NAMED_MARK '\x01'

/* ------------------------------------------------------------------------ */
/* entities, collections and their relationships                              */

/* Collections in the order Kong's populate_references walks them (referenced before
 * referencing), which decides which of two duplicates is "already declared". */
static const enum st_entity_kind walk_order[] = {
    ST_ENT_CERTIFICATE, ST_ENT_CA_CERTIFICATE, ST_ENT_SERVICE, ST_ENT_ROUTE, ST_ENT_SNI,
};

/* A foreign key: written as name-or-id at the top level, implied when nested. */
struct fkey {
    enum st_entity_kind k;
    const char *field;
    enum st_entity_kind ref;
};

static const struct fkey fkeys[] = {
    {ST_ENT_ROUTE, "service", ST_ENT_SERVICE},
    {ST_ENT_SNI, "certificate", ST_ENT_CERTIFICATE},
    {ST_ENT_SERVICE, "client_certificate", ST_ENT_CERTIFICATE},
};

/* Nesting through a foreign key: parent[key] is a list of child records. */
struct nest {
    enum st_entity_kind parent;
    const char *key;
    enum st_entity_kind child;
};

static const struct nest nests[] = {
    {ST_ENT_SERVICE, "routes", ST_ENT_ROUTE},
    {ST_ENT_CERTIFICATE, "snis", ST_ENT_SNI},
    {ST_ENT_CERTIFICATE, "services", ST_ENT_SERVICE},
};

/* Top-level collections of Kong's declarative format Strait does not have yet. */
static const char *const later_collections[] = {
    "upstreams",
    "targets",
    "plugins",
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

static const struct fkey *
fkey_of(enum st_entity_kind k)
{
    for (size_t i = 0; i < ST_ARRAY_SIZE(fkeys); i++) {
        if (fkeys[i].k == k) {
            return &fkeys[i];
        }
    }
    return NULL;
}

/* Entities with a unique endpoint key (`name`). */
static bool
has_name(enum st_entity_kind k)
{
    return k == ST_ENT_SERVICE || k == ST_ENT_ROUTE || k == ST_ENT_SNI;
}

static int
kind_of(const char *coll)
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        if (strcmp(coll, st_entity_name((enum st_entity_kind)k)) == 0) {
            return k;
        }
    }
    return -1;
}

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
        st_str_add(b, "[");
        st_str_add(b, eq);
        st_str_add(b, "[");
        if (n > 0 && s[0] == '\n') {
            st_str_add(b, "\n");
        }
        st_str_addn(b, s, n);
        st_str_add(b, "]");
        st_str_add(b, eq);
        st_str_add(b, "]");
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
            bool digit_next = i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9';
            if (digit_next) {
                st_str_addf(b, "\\%03u", c);
            } else {
                st_str_addf(b, "\\%u", c);
            }
        } else {
            st_str_addn(b, s + i, 1);
        }
    }
    st_str_add(b, "\"");
}

/* "12" and not "012": a key that stands for a Lua array index. */
static bool
is_index_key(const char *s, size_t *out)
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
        if (is_index_key(keys[j], &i)) {
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
        char k[48];

        if (nums[i].i == next) {
            lua_item(b, &first, NULL, json_object_get(v, nums[i].key));
            next++;
        } else {
            snprintf(k, sizeof(k), "[%zu]", nums[i].i);
            lua_item(b, &first, k, json_object_get(v, nums[i].key));
        }
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
        st_str_add(b, "true");
        break;
    case JSON_FALSE:
        st_str_add(b, "false");
        break;
    default:
        st_str_add(b, "nil");
        break;
    }
}

/* The code-14 body for fields (stolen), with flattened (stolen, may be NULL). */
static json_t *
error_body(json_t *fields, json_t *flattened)
{
    struct st_str b = {0};
    json_t *body;

    st_str_add(&b, "declarative config is invalid: ");
    lua_pretty(&b, fields);
    body = json_pack("{s:i,s:s,s:s,s:o}", "code", 14, "name", "invalid declarative configuration",
                     "message", b.p, "fields", fields);
    free(b.p);
    if (flattened != NULL) {
        json_object_set_new(body, "flattened_errors", flattened);
    }
    return body;
}

/* ------------------------------------------------------------------------ */
/* YAML: libyaml events into jansson (YAML 1.2 core schema for plain scalars)  */

static bool
all_in(const char *s, const char *set)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (strchr(set, *s) == NULL) {
            return false;
        }
    }
    return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool
is_core_float(const char *s)
{
    const char *p = s;
    bool digits = false;

    if (*p == '-' || *p == '+') {
        p++;
    }
    while (*p >= '0' && *p <= '9') {
        p++;
        digits = true;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits = true;
        }
    }
    if (!digits) {
        return false;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') {
            p++;
        }
        if (!(*p >= '0' && *p <= '9')) {
            return false;
        }
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    return *p == '\0';
}

/* A JSON number, or NULL (then the scalar stays a string) when it overflows. */
static json_t *
finite_real(double d)
{
    return isfinite(d) ? json_real(d) : NULL;
}

/* What a plain scalar means in the core schema: null, a boolean, an integer, a
 * float; NULL when it is a string (.inf and .nan too: JSON has no such numbers). */
static json_t *
core_resolve(const char *s)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    const char *d = s + (*s == '-' || *s == '+');
    char *end;

    if (st_str_in(s, nulls)) {
        return json_null();
    }
    if (st_str_in(s, trues)) {
        return json_true();
    }
    if (st_str_in(s, falses)) {
        return json_false();
    }
    if (all_in(d, "0123456789")) {
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0') {
            return json_integer(v);
        }
        return finite_real(strtod(s, NULL));
    }
    if ((strncmp(s, "0o", 2) == 0 && all_in(s + 2, "01234567")) ||
        (strncmp(s, "0x", 2) == 0 && all_in(s + 2, "0123456789abcdefABCDEF"))) {
        unsigned long long v;

        errno = 0;
        v = strtoull(s + 2, &end, s[1] == 'o' ? 8 : 16);
        if (errno == 0 && *end == '\0' && v <= LLONG_MAX) {
            return json_integer((long long)v);
        }
        return NULL;
    }
    if (is_core_float(s)) {
        return finite_real(strtod(s, NULL));
    }
    return NULL;
}

struct yread {
    yaml_parser_t p;
    json_t *anchors; /* name: {"v": node, "n": its weight} */
    size_t weight;   /* of what was built so far, aliases expanded */
    size_t limit;    /* the most weight the document may build */
    int depth;
    char err[256];
};

static void
y_error(struct yread *y)
{
    const yaml_parser_t *p = &y->p;
    const char *problem = p->problem != NULL ? p->problem : "unknown error";

    if (p->error == YAML_READER_ERROR) {
        snprintf(y->err, sizeof(y->err), "%s", problem);
    } else {
        snprintf(y->err, sizeof(y->err), "%zu:%zu: %s", p->problem_mark.line + 1,
                 p->problem_mark.column + 1, problem);
    }
}

static int
y_next(struct yread *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&y->p, ev)) {
        y_error(y);
        return -1;
    }
    return 0;
}

static int
y_fail(struct yread *y, const yaml_event_t *ev, const char *what)
{
    snprintf(y->err, sizeof(y->err), "%zu:%zu: %s", ev->start_mark.line + 1,
             ev->start_mark.column + 1, what);
    return -1;
}

/* Adds w to what the document built. Returns -1 (err set) when that goes beyond its
 * limit: Kong has none, and 1 MiB of aliases once built 836 MB (issue 14). */
static int
y_weigh(struct yread *y, const yaml_event_t *ev, size_t w)
{
    char what[160];

    if (w <= y->limit && y->weight <= y->limit - w) {
        y->weight += w;
        return 0;
    }
    st_snprintf(what, sizeof(what),
                "document too large: it builds more than %zu bytes (an alias counts as a copy "
                "of what it names)",
                y->limit);
    return y_fail(y, ev, what);
}

/* A scalar event's value: strings unless plain (or tagged with a core type). */
static json_t *
y_scalar(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    json_t *v;

    if (tag != NULL && (strcmp(tag, YAML_STR_TAG) == 0 || strcmp(tag, "!") == 0)) {
        return json_stringn(s, n);
    }
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
        (tag == NULL || strncmp(tag, "tag:yaml.org,2002:", 18) != 0)) {
        return json_stringn(s, n);
    }
    if (strlen(s) == n && (v = core_resolve(s)) != NULL) {
        return v;
    }
    return json_stringn(s, n);
}

static int y_node(struct yread *y, yaml_event_t *ev, json_t **out);

static int
y_seq(struct yread *y, json_t *arr)
{
    for (;;) {
        yaml_event_t c;
        json_t *cv = NULL;

        if (y_next(y, &c) < 0) {
            return -1;
        }
        if (c.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&c);
            return 0;
        }
        if (y_node(y, &c, &cv) < 0) {
            return -1;
        }
        json_array_append_new(arr, cv);
    }
}

static int
y_map(struct yread *y, json_t *obj)
{
    for (;;) {
        yaml_event_t c;
        json_t *key = NULL;
        json_t *cv = NULL;
        int rc;

        if (y_next(y, &c) < 0) {
            return -1;
        }
        if (c.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&c);
            return 0;
        }
        if (c.type != YAML_SCALAR_EVENT && c.type != YAML_ALIAS_EVENT) {
            rc = y_fail(y, &c, "mapping keys must be scalars");
            yaml_event_delete(&c);
            return rc;
        }
        if (c.type == YAML_SCALAR_EVENT) {
            size_t w = DECL_NODE_WEIGHT + c.data.scalar.length;

            if (y_weigh(y, &c, w) < 0) {
                yaml_event_delete(&c);
                return -1;
            }
            key = json_stringn((const char *)c.data.scalar.value, c.data.scalar.length);
            if (c.data.scalar.anchor != NULL) {
                json_object_set_new(y->anchors, (const char *)c.data.scalar.anchor,
                                    json_pack("{s:O,s:I}", "v", key, "n", (json_int_t)w));
            }
            yaml_event_delete(&c);
        } else if (y_node(y, &c, &key) < 0) {
            return -1;
        }
        if (!json_is_string(key)) {
            json_t *k2 = NULL;
            char *dump = json_dumps(key, JSON_ENCODE_ANY | JSON_COMPACT);

            if (dump != NULL && !json_is_object(key) && !json_is_array(key)) {
                k2 = json_string(dump);
            }
            free(dump);
            json_decref(key);
            if (k2 == NULL) {
                snprintf(y->err, sizeof(y->err), "mapping keys must be scalars");
                return -1;
            }
            key = k2;
        }
        if (y_next(y, &c) < 0 || y_node(y, &c, &cv) < 0) {
            json_decref(key);
            return -1;
        }
        json_object_setn_new(obj, json_string_value(key), json_string_length(key), cv);
        json_decref(key);
    }
}

/* Builds the node ev starts (consuming ev and the events of its content). */
static int
y_node(struct yread *y, yaml_event_t *ev, json_t **out)
{
    size_t before = y->weight;
    const char *anchor = NULL;
    json_t *v = NULL;
    int rc = 0;

    *out = NULL;
    y->depth++;
    if (y->depth > ST_DECL_DEPTH_MAX) {
        rc = y_fail(y, ev, "document nested too deeply");
        goto out;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        json_t *a = json_object_get(y->anchors, (const char *)ev->data.alias.anchor);

        if (a == NULL) {
            rc = y_fail(y, ev, "found undefined alias");
            break;
        }
        rc = y_weigh(y, ev, (size_t)json_integer_value(json_object_get(a, "n")));
        if (rc == 0) {
            v = json_incref(json_object_get(a, "v"));
        }
        break;
    }
    case YAML_SCALAR_EVENT:
        anchor = (const char *)ev->data.scalar.anchor;
        rc = y_weigh(y, ev, DECL_NODE_WEIGHT + ev->data.scalar.length);
        if (rc == 0) {
            v = y_scalar(ev);
        }
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = (const char *)ev->data.sequence_start.anchor;
        rc = y_weigh(y, ev, DECL_NODE_WEIGHT);
        if (rc == 0) {
            v = json_array();
            rc = y_seq(y, v);
        }
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = (const char *)ev->data.mapping_start.anchor;
        rc = y_weigh(y, ev, DECL_NODE_WEIGHT);
        if (rc == 0) {
            v = json_object();
            rc = y_map(y, v);
        }
        break;
    default:
        rc = y_fail(y, ev, "unexpected event");
        break;
    }
    if (rc == 0 && anchor != NULL) {
        json_object_set_new(y->anchors, anchor,
                            json_pack("{s:O,s:I}", "v", v, "n", (json_int_t)(y->weight - before)));
    }
out:
    y->depth--;
    yaml_event_delete(ev);
    if (rc < 0) {
        json_decref(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* The first document of a YAML stream (json null when there is none), or NULL with
 * err set. */
static json_t *
yaml_load(const char *text, size_t len, char *err, size_t errsize)
{
    struct yread y;
    yaml_event_t ev;
    json_t *doc = NULL;

    memset(&y, 0, sizeof(y));
    y.limit = len > ST_DECL_EXPAND_MAX / ST_DECL_EXPAND_RATIO ? ST_DECL_EXPAND_MAX
                                                              : len * ST_DECL_EXPAND_RATIO;
    if (y.limit < ST_DECL_EXPAND_FLOOR) {
        y.limit = ST_DECL_EXPAND_FLOOR;
    }
    if (!yaml_parser_initialize(&y.p)) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    y.anchors = json_object();
    yaml_parser_set_input_string(&y.p, (const unsigned char *)text, len);
    while (doc == NULL) {
        if (y_next(&y, &ev) < 0) {
            break;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            doc = json_null();
        } else if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
        } else if (y_node(&y, &ev, &doc) < 0) {
            break;
        }
    }
    if (doc == NULL) {
        snprintf(err, errsize, "%s", y.err);
    }
    json_decref(y.anchors);
    yaml_parser_delete(&y.p);
    return doc;
}

/* The nesting of v (1 for a scalar), counted no further than max + 1. */
static int
json_depth(const json_t *v, int max)
{
    int deepest = 0;
    const char *key;
    json_t *el;
    size_t i;

    if (max < 0 || !(json_is_object(v) || json_is_array(v))) {
        return 1;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, el)
        {
            int d = json_depth(el, max - 1);

            deepest = d > deepest ? d : deepest;
            if (deepest > max) {
                break;
            }
        }
    } else {
        json_array_foreach(v, i, el)
        {
            int d = json_depth(el, max - 1);

            deepest = d > deepest ? d : deepest;
            if (deepest > max) {
                break;
            }
        }
    }
    return deepest + 1;
}

/* Kong's unserialize: JSON first (when it looks like JSON), then YAML, which reads
 * flow mappings JSON does not. Returns the document or NULL with err set. JSON keeps
 * jansson's (and Kong's cjson's) way with a repeated key: the last one wins. */
static json_t *
text_load(const char *text, size_t len, char *err, size_t errsize)
{
    size_t i = 0;

    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        i = 3;
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) {
        i++;
    }
    if (i < len && text[i] == '{') {
        json_error_t je;
        json_t *doc = json_loadb(text, len, 0, &je);

        if (doc != NULL && json_depth(doc, ST_DECL_DEPTH_MAX) > ST_DECL_DEPTH_MAX) {
            /* jansson stops at 2048 levels; the YAML reader at ST_DECL_DEPTH_MAX */
            json_decref(doc);
            snprintf(err, errsize, "document nested too deeply");
            return NULL;
        }
        if (doc != NULL) {
            return doc;
        }
    }
    return yaml_load(text, len, err, errsize);
}

/* ------------------------------------------------------------------------ */
/* phase 1: the document's structure and every entity's schema               */

struct item {
    enum st_entity_kind k;
    json_t *obj; /* the entity, owned */
    json_t *ref; /* its foreign key as written at the top level, owned; NULL none */
    long parent; /* the item it is nested in, -1 at the top level */
    long target; /* the item its foreign key names, -1 none (yet) */
    size_t idx;  /* 1-based position in its list */
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
    it->target = -1;
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
        if (json_is_null(id)) {
            return json_pack("{s:s}", "id", "required field missing");
        }
        if (!json_is_string(id)) {
            return json_pack("{s:s}", "id", "expected a string");
        }
        if (!st_schema_is_uuid(json_string_value(id))) {
            return json_pack("{s:s}", "id", "expected a valid UUID");
        }
        return NULL;
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

/* The item's foreign key: implied by its parent when nested (and then must not be
 * written), else kept aside for phase 2. A valid-looking placeholder stands in for it
 * while the schema checks the entity, so that rules depending on it apply. */
static void
foreign_in(struct decl *d, long self, json_t *obj, json_t *e)
{
    struct item *it = &d->items[self];
    const struct fkey *fk = fkey_of(it->k);
    json_t *v;
    json_t *err;

    if (fk == NULL) {
        return;
    }
    v = json_object_get(obj, fk->field);
    if (it->parent >= 0 && d->items[it->parent].k == fk->ref) {
        if (v != NULL && !json_is_null(v)) {
            json_object_set_new(e, fk->field, json_string("value must be null"));
        }
        it->target = it->parent;
        json_object_set_new(obj, fk->field, json_pack("{s:s}", "id", DECL_PLACEHOLDER));
        return;
    }
    if (v == NULL || json_is_null(v)) {
        return;
    }
    err = ref_check(v);
    if (err != NULL) {
        json_object_set_new(e, fk->field, err);
        json_object_del(obj, fk->field);
        return;
    }
    it->ref = json_incref(v);
    json_object_set_new(obj, fk->field, json_pack("{s:s}", "id", DECL_PLACEHOLDER));
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
        const char *name = has_name(k) ? json_string_value(json_object_get(obj, "name")) : NULL;
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
    json_t *kids[ST_ARRAY_SIZE(nests)] = {NULL};
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
    for (size_t i = 0; i < ST_ARRAY_SIZE(nests); i++) {
        if (nests[i].parent == k && json_object_get(obj, nests[i].key) != NULL) {
            kids[i] = json_incref(json_object_get(obj, nests[i].key));
            json_object_del(obj, nests[i].key);
        }
    }
    self = item_add(d, k, idx, parent);
    d->items[self].obj = obj;
    foreign_in(d, self, obj, e);
    ids_in(d, k, obj);
    if (st_schema_validate(k, obj, &fields) < 0) {
        json_object_update(fields, e); /* ours are the more precise */
        json_decref(e);
        e = fields;
    }
    for (size_t i = 0; i < ST_ARRAY_SIZE(nests); i++) {
        if (kids[i] != NULL) {
            json_t *ce = list_in(d, nests[i].child, kids[i], self);

            if (ce != NULL) {
                json_object_set_new(e, nests[i].key, ce);
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
    const char *key;
    json_t *val;

    if (v == NULL || json_is_null(v)) {
        json_object_set_new(errs, "_format_version", json_string("required field missing"));
    } else if (!json_is_string(v)) {
        json_object_set_new(errs, "_format_version", json_string("expected a string"));
    } else if (!st_str_in(json_string_value(v), versions)) {
        json_object_set_new(errs, "_format_version", json_string("expected one of: 1.1, 2.1, 3.0"));
    }
    json_object_foreach((json_t *)doc, key, val)
    {
        if (strcmp(key, "_format_version") == 0 || kind_of(key) >= 0) {
            continue;
        }
        if (json_is_null(val) && (key[0] == '_' || st_str_in(key, later_collections))) {
            continue;
        }
        if (strcmp(key, "_transform") == 0) {
            if (!json_is_boolean(val)) {
                json_object_set_new(errs, key, json_string("expected a boolean"));
            }
        } else if (strcmp(key, "_comment") == 0 || strcmp(key, "_workspace") == 0) {
            if (!json_is_string(val)) {
                json_object_set_new(errs, key, json_string("expected a string"));
            }
        } else if (strcmp(key, "_ignore") == 0) {
            if (!json_is_array(val)) {
                json_object_set_new(errs, key, json_string("expected an array"));
            }
        } else if (st_str_in(key, later_collections)) {
            if (!is_empty_value(val)) {
                char msg[128];

                snprintf(msg, sizeof(msg), "'%s' is not supported yet", key);
                json_object_set_new(errs, key, json_string(msg));
            }
        } else {
            json_object_set_new(errs, key, json_string("unknown field"));
        }
    }
    for (size_t i = 0; i < ST_ARRAY_SIZE(walk_order); i++) {
        const char *coll = st_entity_name(walk_order[i]);
        const json_t *list = json_object_get(doc, coll);

        if (list != NULL) {
            json_t *e = list_in(d, walk_order[i], list, -1);

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
    const char *coll = st_entity_name(it->k);
    json_t *holder;
    json_t *l;

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
    l = json_object_get(holder, coll);
    if (l == NULL) {
        l = json_object();
        json_object_set_new(holder, coll, l);
    }
    return l;
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
        json_t *ent = json_object_get(cur, "@entity");

        if (ent == NULL) {
            ent = json_array();
            json_object_set_new(cur, "@entity", ent);
        }
        json_array_append_new(ent, json_string(msg));
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
    const char *name = has_name(it->k) ? json_string_value(json_object_get(it->obj, "name")) : NULL;

    return name != NULL ? name : json_string_value(json_object_get(it->obj, "id"));
}

/* The key of an error Kong keys by a name or id (see DECL_NAMED_MARK). */
static void
named_key(struct st_str *b, const char *name)
{
    char mark[2] = {DECL_NAMED_MARK, '\0'};

    st_str_add(b, mark);
    st_str_add(b, name);
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
    json_t *list;
    char *dump = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    struct st_str b = {0};

    named_key(&at, item_key(&d->items[i]));
    list = json_object_get(l, at.p);
    st_str_add(&b, "invalid reference '");
    st_str_add(&b, field);
    st_str_add(&b, ": ");
    echo_add(&b, json_is_string(v) ? json_string_value(v) : (dump != NULL ? dump : "?"));
    st_str_add(&b, "' (no such entry in '");
    st_str_add(&b, st_entity_name(to));
    st_str_add(&b, "')");
    free(dump);
    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(l, at.p, list);
    }
    json_array_append_new(list, json_string(b.p));
    free(b.p);
    free(at.p);
}

/* The item of kind k named by key: by name first, then by id (Kong's find_entity). */
static long
find(json_t *const names[ST_ENT__COUNT], json_t *const ids[ST_ENT__COUNT], enum st_entity_kind k,
     const char *key, bool by_id)
{
    json_t *hit = NULL;

    if (key == NULL) {
        return -1;
    }
    if (has_name(k)) {
        hit = json_object_get(names[k], key);
    }
    if (hit == NULL && by_id) {
        hit = json_object_get(ids[k], key);
    }
    return hit != NULL ? (long)json_integer_value(hit) : -1;
}

static void
resolve_refs(struct decl *d, long i, json_t *const names[ST_ENT__COUNT],
             json_t *const ids[ST_ENT__COUNT], json_t *cas)
{
    struct item *it = &d->items[i];
    const struct fkey *fk = fkey_of(it->k);
    const json_t *arr = json_object_get(it->obj, "ca_certificates");
    size_t j;
    json_t *el;

    if (it->ref != NULL) {
        const json_t *r = it->ref;
        long t;

        if (json_is_string(r)) {
            t = find(names, ids, fk->ref, json_string_value(r), true);
        } else if (json_object_get(r, "id") != NULL) {
            t = find(names, ids, fk->ref, json_string_value(json_object_get(r, "id")), true);
        } else {
            t = find(names, ids, fk->ref, json_string_value(json_object_get(r, "name")), false);
        }
        if (t < 0) {
            ref_err(d, i, fk->field, r, fk->ref);
        }
        d->items[i].target = t;
    }
    if (it->k == ST_ENT_SERVICE && json_is_array(arr)) {
        json_array_foreach(arr, j, el)
        {
            if (json_object_get(cas, json_string_value(el)) == NULL) {
                ref_err(d, i, "ca_certificates", el, ST_ENT_CA_CERTIFICATE);
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
    size_t i;
    json_t *el;

    if (json_is_object(cur)) {
        list = json_object_get(cur, "@entity");
        if (!json_is_array(list)) {
            list = json_array();
            json_object_set_new(cur, "@entity", list);
        }
    } else if (!json_is_array(cur)) {
        list = json_pack("[O]", cur);
        json_decref(cur);
        cur = list;
    }
    if (json_is_array(named)) {
        json_array_foreach(named, i, el)
        {
            json_array_append(list, el);
        }
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
        if (!is_index_key(key, &i)) {
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

/* Returns Kong's `fields` of phase 2 (empty when valid). */
static json_t *
refs_check(struct decl *d)
{
    json_t *names[ST_ENT__COUNT];
    json_t *ids[ST_ENT__COUNT];
    json_t *digests = json_object();
    char msg[1024];

    d->errs = json_object();
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        names[k] = json_object();
        ids[k] = json_object();
    }
    for (size_t i = 0; i < d->n; i++) {
        const struct item *it = &d->items[i];
        const char *name =
            has_name(it->k) ? json_string_value(json_object_get(it->obj, "name")) : NULL;
        const char *id = json_string_value(json_object_get(it->obj, "id"));
        bool failed = false;

        if (name != NULL) {
            if (json_object_get(names[it->k], name) != NULL) {
                uniq_msg(msg, sizeof(msg), it->k, "name", name);
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
        if (it->k == ST_ENT_CA_CERTIFICATE) {
            const char *dg = json_string_value(json_object_get(it->obj, "cert_digest"));

            if (dg != NULL && json_object_get(digests, dg) != NULL) {
                struct st_str at = {0};

                named_key(&at, id);
                uniq_msg(msg, sizeof(msg), it->k, "cert_digest", dg);
                json_object_set_new(list_errs(d, (long)i), at.p, json_string(msg));
                free(at.p);
            } else if (dg != NULL) {
                json_object_set_new(digests, dg, json_true());
            }
        }
    }
    for (size_t i = 0; i < d->n; i++) {
        resolve_refs(d, (long)i, names, ids, ids[ST_ENT_CA_CERTIFICATE]);
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(names[k]);
        json_decref(ids[k]);
    }
    json_decref(digests);
    return d->errs;
}

/* ------------------------------------------------------------------------ */
/* the size of an error                                                       */

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

/* Bounds an error's `fields` to ST_DECL_ERRORS_MAX messages (Kong reports every one: a
 * document of many broken entities would answer with a body many times its size). */
static void
errors_bound(json_t *fields)
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
        st_str_add(&path, ns);
        st_str_add(&path, ".");
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
    const struct fkey *fk = fkey_of(k);
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
    if (fk != NULL) {
        json_t *fv = json_object_get(entity, fk->field);

        if (json_is_object(fv) || json_is_array(fv)) {
            json_t *fe = json_incref(json_object_get(err, fk->field));
            json_t *fpk = make_pk(fv);

            json_incref(fv);
            json_object_del(err, fk->field);
            if (fpk != NULL) {
                json_object_set_new(entity, fk->field, fpk);
            } else {
                json_object_del(entity, fk->field);
            }
            fl_entity(f, fk->ref, fv, fe);
            json_decref(fv);
            json_decref(fe);
        }
    }
    for (size_t i = 0; i < ST_ARRAY_SIZE(nests); i++) {
        const struct nest *nt = &nests[i];
        json_t *cv = json_object_get(entity, nt->key);
        json_t *ce = json_object_get(err, nt->key);
        size_t j;
        json_t *item;

        if (nt->parent != k || !(json_is_object(cv) || json_is_array(cv))) {
            continue;
        }
        json_incref(cv);
        json_object_del(entity, nt->key);
        if (json_is_array(cv)) {
            const char *cfk = fkey_of(nt->child)->field;

            json_array_foreach(cv, j, item)
            {
                if (json_is_object(item) && json_object_get(item, cfk) == NULL && pk != NULL) {
                    json_object_set(item, cfk, pk);
                }
            }
        }
        if (json_is_object(ce) || json_is_array(ce)) {
            json_incref(ce);
            json_object_del(err, nt->key);
            fl_list(f, nt->child, cv, ce, false);
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
            json_object_set_new(entry, "entity_type",
                                json_stringn(st_entity_name(k), strlen(st_entity_name(k)) - 1));
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

    if (is_index_key(key, &i) && i <= json_array_size(items)) {
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

/* Kong's flatten_errors(input, err_t): the flattened list (what stays in `fields` is
 * st_decl_error_flatten's). */
static json_t *
flatten(const json_t *doc, const json_t *fields)
{
    struct flat f = {json_array(), ST_DECL_FLAT_ENTITY_BYTES};
    json_t *input = json_deep_copy(doc);
    json_t *errs = json_deep_copy(fields);
    size_t n;
    const char **keys = st_json_keys(errs, &n);

    for (size_t i = n; i > 0; i--) {
        json_t *sec = json_object_get(errs, keys[i - 1]);
        json_t *items = json_object_get(input, keys[i - 1]);
        int k = kind_of(keys[i - 1]);

        if ((json_is_object(sec) || json_is_array(sec)) && json_is_array(items) && k >= 0) {
            fl_list(&f, (enum st_entity_kind)k, items, sec, true);
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
    json_t *rest = json_object();
    const char *key;
    json_t *v;
    struct st_str b = {0};

    if (json_object_get(error, "flattened_errors") == NULL) {
        json_decref(rest);
        return;
    }
    json_object_foreach((json_t *)fields, key, v)
    {
        int k = kind_of(key);

        if (!(json_is_object(v) || json_is_array(v)) || k < 0) {
            json_object_set(rest, key, v);
        }
    }
    st_str_add(&b, "declarative config is invalid: ");
    lua_pretty(&b, rest);
    json_object_set_new(error, "message", json_string(b.p));
    json_object_set_new(error, "fields", rest);
    free(b.p);
}

/* ------------------------------------------------------------------------ */
/* parse                                                                      */

static void
decl_fini(struct decl *d)
{
    for (size_t i = 0; i < d->n; i++) {
        json_decref(d->items[i].obj);
        json_decref(d->items[i].ref);
    }
    free(d->items);
    json_decref(d->errs);
}

int
st_decl_parse(const char *text, size_t len, const struct st_decl_opts *o,
              json_t *lists[ST_ENT__COUNT], json_t **error)
{
    static const struct st_decl_opts none = {0};
    struct decl d;
    char err[320];
    json_t *doc;
    json_t *fields;
    int rc = 0;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        lists[k] = NULL;
    }
    *error = NULL;
    memset(&d, 0, sizeof(d));
    d.o = o != NULL ? o : &none;
    d.now_ms = d.o->now_ms > 0 ? d.o->now_ms : st_time_ms() / 1000 * 1000;
    err[0] = '\0';
    doc = text_load(text, len, err, sizeof(err));
    if (doc == NULL || !json_is_object(doc)) {
        char msg[400];

        st_snprintf(msg, sizeof(msg), MSG_PARSE "%s", doc != NULL ? "expected an object" : err);
        json_decref(doc);
        *error = error_body(json_pack("{s:s}", "error", msg), NULL);
        return -ST_EPARSE;
    }
    fields = doc_in(&d, doc);
    if (json_object_size(fields) == 0) {
        json_decref(fields);
        fields = normalise(json_incref(refs_check(&d)));
    }
    if (json_object_size(fields) > 0) {
        json_t *flat;

        errors_bound(fields);
        flat = flatten(doc, fields);

        *error = error_body(fields, flat);
        rc = -ST_ESCHEMA;
    } else {
        json_decref(fields);
        for (int k = 0; k < ST_ENT__COUNT; k++) {
            lists[k] = json_array();
        }
        for (size_t i = 0; i < d.n; i++) {
            struct item *it = &d.items[i];
            const struct fkey *fk = fkey_of(it->k);

            if (fk != NULL && it->target >= 0) {
                json_object_set_new(
                    it->obj, fk->field,
                    json_pack("{s:O}", "id", json_object_get(d.items[it->target].obj, "id")));
            }
            json_array_append(lists[it->k], it->obj);
        }
    }
    json_decref(doc);
    decl_fini(&d);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* export                                                                     */

static int
cmp_by_id(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));

    return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

/* The entities of a list sorted by id (borrowed references). */
static json_t **
sorted(const json_t *list, size_t *n)
{
    json_t **v;
    size_t i;
    json_t *el;

    *n = json_array_size(list);
    v = st_xcalloc(*n + 1, sizeof(*v));
    json_array_foreach(list, i, el)
    {
        v[i] = el;
    }
    qsort(v, *n, sizeof(*v), cmp_by_id);
    return v;
}

/* A copy without nulls (in nested objects too), timestamps in seconds. */
static json_t *
clean(const json_t *v, bool top)
{
    const char *key;
    json_t *el;
    json_t *out;
    size_t i;

    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, el)
        {
            json_array_append_new(out, clean(el, false));
        }
        return out;
    }
    if (!json_is_object(v)) {
        return json_deep_copy(v);
    }
    out = json_object();
    json_object_foreach((json_t *)v, key, el)
    {
        if (json_is_null(el)) {
            continue;
        }
        if (top && (strcmp(key, "created_at") == 0 || strcmp(key, "updated_at") == 0) &&
            json_is_integer(el)) {
            json_object_set_new(out, key, json_integer(json_integer_value(el) / 1000));
        } else {
            json_object_set_new(out, key, clean(el, false));
        }
    }
    return out;
}

static const char *
fk_id(const json_t *e, const char *field)
{
    return json_string_value(json_object_get(json_object_get(e, field), "id"));
}

static void
append_to(json_t *doc, const char *key, json_t *e)
{
    json_t *l = json_object_get(doc, key);

    if (l == NULL) {
        l = json_array();
        json_object_set_new(doc, key, l);
    }
    json_array_append_new(l, e);
}

/* A foreign key as Kong's export writes it: the id. */
static void
fk_flat(json_t *e, const char *field)
{
    const char *id = fk_id(e, field);

    if (id != NULL) {
        json_object_set_new(e, field, json_string(id));
    }
}

/* Exports the n parents (sorted) into doc[pkey], each with the children of kids (sorted)
 * that name it through fkey nested under ckey without that key; the other children go
 * to doc[ckey] with their key as an id. */
static void
export_nested(json_t *doc, json_t *const *parents, size_t n, const char *pkey, json_t *const *kids,
              size_t nk, const char *ckey, const char *fkey, const char *parent_fk)
{
    json_t *by_id = json_object();

    for (size_t i = 0; i < n; i++) {
        json_t *e = clean(parents[i], true);
        const char *id = json_string_value(json_object_get(parents[i], "id"));

        if (parent_fk != NULL) {
            fk_flat(e, parent_fk);
        }
        if (id != NULL) {
            json_object_set(by_id, id, e);
        }
        append_to(doc, pkey, e);
    }
    for (size_t i = 0; i < nk; i++) {
        const char *pid = fk_id(kids[i], fkey);
        json_t *parent = pid != NULL ? json_object_get(by_id, pid) : NULL;
        json_t *c = clean(kids[i], true);

        if (parent != NULL) {
            json_object_del(c, fkey);
            append_to(parent, ckey, c);
        } else {
            fk_flat(c, fkey);
            append_to(doc, ckey, c);
        }
    }
    json_decref(by_id);
}

static json_t *
export_doc(json_t *const lists[ST_ENT__COUNT])
{
    json_t *doc = json_pack("{s:s,s:b}", "_format_version", "3.0", "_transform", 0);
    size_t nc, ns, nsv, nr, nca;
    json_t **certs = sorted(lists[ST_ENT_CERTIFICATE], &nc);
    json_t **snis = sorted(lists[ST_ENT_SNI], &ns);
    json_t **svcs = sorted(lists[ST_ENT_SERVICE], &nsv);
    json_t **routes = sorted(lists[ST_ENT_ROUTE], &nr);
    json_t **cas = sorted(lists[ST_ENT_CA_CERTIFICATE], &nca);

    for (size_t i = 0; i < nca; i++) {
        append_to(doc, "ca_certificates", clean(cas[i], true));
    }
    export_nested(doc, certs, nc, "certificates", snis, ns, "snis", "certificate", NULL);
    export_nested(doc, svcs, nsv, "services", routes, nr, "routes", "service",
                  "client_certificate");
    free(certs);
    free(snis);
    free(svcs);
    free(routes);
    free(cas);
    return doc;
}

/* YAML 1.1 words some readers (lyaml, PyYAML) take for booleans or specials. */
static bool
yaml11_word(const char *s)
{
    static const char *const words[] = {
        "y",    "Y",     "yes",   "Yes",  "YES",  "n",    "N",   "no",   "No",
        "NO",   "on",    "On",    "ON",   "off",  "Off",  "OFF", ".inf", ".Inf",
        ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN", "=",   "<<",   NULL,
    };

    return st_str_in(s, words);
}

/* A number in any YAML version's sense (1_000, 0b1, 0x1F, 1:30, 010, 1.5e3), loosely:
 * such strings are quoted, and a few more (10.0.0.5) do no harm. */
static bool
yaml11_number(const char *s)
{
    const char *p = s + (*s == '-' || *s == '+');

    if (strncmp(p, "0x", 2) == 0) {
        return all_in(p + 2, "0123456789abcdefABCDEF_");
    }
    if (strncmp(p, "0b", 2) == 0) {
        return all_in(p + 2, "01_");
    }
    return strpbrk(p, "0123456789") != NULL && all_in(p, "0123456789_:.eE+-");
}

struct yemit {
    yaml_emitter_t em;
    struct st_str out;
    bool failed;
};

static int
y_write(void *data, unsigned char *buffer, size_t size)
{
    struct yemit *y = data;

    st_str_addn(&y->out, (const char *)buffer, size);
    return 1;
}

static void
y_emit(struct yemit *y, yaml_event_t *ev)
{
    if (y->failed) {
        yaml_event_delete(ev);
    } else if (!yaml_emitter_emit(&y->em, ev)) {
        y->failed = true;
    }
}

static void
y_str(struct yemit *y, const char *s, size_t n)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
    json_t *r;

    if (memchr(s, '\n', n) != NULL) {
        style = YAML_LITERAL_SCALAR_STYLE;
    } else if (n == 0 || strlen(s) != n || yaml11_word(s) || yaml11_number(s)) {
        style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
    } else if ((r = core_resolve(s)) != NULL) {
        json_decref(r);
        style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
    }
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1, style);
    y_emit(y, &ev);
}

static void
y_raw(struct yemit *y, const char *s)
{
    yaml_event_t ev;

    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                 YAML_PLAIN_SCALAR_STYLE);
    y_emit(y, &ev);
}

static void
y_value(struct yemit *y, const json_t *v)
{
    yaml_event_t ev;
    char buf[64];
    size_t i;
    json_t *el;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n;
        const char **keys = st_json_keys(v, &n);

        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        y_emit(y, &ev);
        for (i = 0; i < n; i++) {
            y_str(y, keys[i], strlen(keys[i]));
            y_value(y, json_object_get(v, keys[i]));
        }
        yaml_mapping_end_event_initialize(&ev);
        y_emit(y, &ev);
        free(keys);
        break;
    }
    case JSON_ARRAY:
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                             json_array_size(v) > 0 ? YAML_BLOCK_SEQUENCE_STYLE
                                                                    : YAML_FLOW_SEQUENCE_STYLE);
        y_emit(y, &ev);
        json_array_foreach(v, i, el)
        {
            y_value(y, el);
        }
        yaml_sequence_end_event_initialize(&ev);
        y_emit(y, &ev);
        break;
    case JSON_STRING:
        y_str(y, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        y_raw(y, buf);
        break;
    case JSON_REAL:
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        y_raw(y, buf);
        break;
    case JSON_TRUE:
        y_raw(y, "true");
        break;
    case JSON_FALSE:
        y_raw(y, "false");
        break;
    default:
        y_raw(y, "null");
        break;
    }
}

static int
yaml_dump(const json_t *doc, char **out, size_t *outlen)
{
    struct yemit y;
    yaml_event_t ev;

    memset(&y, 0, sizeof(y));
    if (!yaml_emitter_initialize(&y.em)) {
        return -ENOMEM;
    }
    yaml_emitter_set_output(&y.em, y_write, &y);
    yaml_emitter_set_unicode(&y.em, 1);
    yaml_emitter_set_width(&y.em, -1);
    yaml_emitter_set_indent(&y.em, 2);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    y_emit(&y, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    y_emit(&y, &ev);
    y_value(&y, doc);
    yaml_document_end_event_initialize(&ev, 1);
    y_emit(&y, &ev);
    yaml_stream_end_event_initialize(&ev);
    y_emit(&y, &ev);
    yaml_emitter_delete(&y.em);
    if (y.failed || y.out.p == NULL) {
        free(y.out.p);
        return -ENOMEM;
    }
    *out = y.out.p;
    *outlen = y.out.len;
    return 0;
}

int
st_decl_export(json_t *const lists[ST_ENT__COUNT], bool yaml, char **out, size_t *outlen)
{
    json_t *doc = export_doc(lists);
    int rc = 0;

    *out = NULL;
    *outlen = 0;
    if (yaml) {
        rc = yaml_dump(doc, out, outlen);
    } else {
        char *s = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2));

        if (s == NULL) {
            rc = -ENOMEM;
        } else {
            struct st_str b = {0};

            st_str_add(&b, s);
            st_str_add(&b, "\n");
            free(s);
            *out = b.p;
            *outlen = b.len;
        }
    }
    json_decref(doc);
    return rc;
}
