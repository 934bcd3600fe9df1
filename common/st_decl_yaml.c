/* The text of a declarative configuration read into JSON, and a document written as YAML
 * (st_decl_int.h), for st_decl.
 *
 * Kong reads with lyaml (kong/db/declarative/init.lua, unserialize): JSON first when the
 * text looks like JSON, else YAML. Strait reads YAML with libyaml's event parser, plain
 * scalars resolved by the YAML 1.2 core schema, and builds jansson values as it goes, so
 * that the limits of st_decl.h (ST_DECL_DEPTH_MAX, ST_DECL_EXPAND_*) stop a document
 * before it is built rather than after: an alias counts as a full copy of what it names.
 * The emitter quotes every string a YAML 1.1 reader (lyaml, PyYAML) would take for
 * something else, so that an export reads back the same in Kong too.
 */
#include "st_decl_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "st_decl.h"
#include "st_json.h"
#include "st_str.h"
#include "st_util.h"

/* What a node of the document costs besides its text, in ST_DECL_EXPANDED_* units: about
 * what jansson spends on a value, so that a million empty nodes weigh as they cost. */
#define DECL_NODE_WEIGHT 16

/* ------------------------------------------------------------------------ */
/* reading: libyaml events into jansson (plain scalars: YAML 1.2 core schema) */

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
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;

        anchor =
            (const char *)(seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor);
        rc = y_weigh(y, ev, DECL_NODE_WEIGHT);
        if (rc == 0) {
            v = seq ? json_array() : json_object();
            rc = seq ? y_seq(y, v) : y_map(y, v);
        }
        break;
    }
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
    struct yread y = {0};
    yaml_event_t ev;
    json_t *doc = NULL;

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
    void *it = json_object_iter((json_t *)v); /* NULL unless v is an object */
    int deepest = 0;
    json_t *el;

    if (max < 0 || !(json_is_object(v) || json_is_array(v))) {
        return 1;
    }
    /* an object's values by its iterator, an array's by index */
    for (size_t i = 0; deepest <= max; i++, it = json_object_iter_next((json_t *)v, it)) {
        int d;

        el = json_is_array(v) ? json_array_get(v, i) : json_object_iter_value(it);
        if (el == NULL) {
            break;
        }
        d = json_depth(el, max - 1);
        deepest = d > deepest ? d : deepest;
    }
    return deepest + 1;
}

/* Kong's unserialize: JSON first (when it looks like JSON), then YAML, which reads
 * flow mappings JSON does not. JSON keeps jansson's (and Kong's cjson's) way with a
 * repeated key: the last one wins. */
json_t *
st_decl__load(const char *text, size_t len, char *err, size_t errsize)
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
/* writing: jansson into libyaml events                                       */

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
    case JSON_FALSE:
        y_raw(y, json_is_true(v) ? "true" : "false");
        break;
    default:
        y_raw(y, "null");
        break;
    }
}

int
st_decl__yaml_dump(const json_t *doc, char **out, size_t *outlen)
{
    struct yemit y = {0};
    yaml_event_t ev;

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
