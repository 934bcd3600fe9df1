/* Form decoding for the admin API (see cp_form.h). Kong's sources:
 * kong/tools/http.lua decode_args (empty -> null, true/false) and
 * kong/api/api_helpers.lua normalize_nested_params (a[1].b, a.b, a[]). */
#include "cp_form.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "st_entity.h"
#include "st_err.h"
#include "st_plugin.h"
#include "st_util.h"

#define FORM_MAX_DEPTH 8
/* how much of a bad key an error message shows (cp_form_add) */
#define FORM_KEY_SHOWN 128
/* the field types whose digits are an integer, and those a single value is an array of */
#define INT_TYPES ((1u << ST_FT_INTEGER) | (1u << ST_FT_TIMESTAMP))
#define ARRAY_TYPES                                                                                \
    ((1u << ST_FT_SET) | (1u << ST_FT_ARRAY) | (1u << ST_FT_RECORDS) | (1u << ST_FT_FOREIGN_SET))

/* Why a field could not be added (cp_form_add maps each to its message). */
enum add_rc {
    ADD_OK = 0,
    ADD_SHAPE = -1,  /* the key does not fit what the body built so far */
    ADD_BUDGET = -2, /* more values than the body may build */
};

struct cp_form {
    json_t *root;
    size_t fields;     /* fields added (or refused) so far */
    size_t values;     /* values created so far, padding included */
    size_t max_values; /* CP_FORM_VALUES_BASE + the body's length, at most CP_FORM_MAX_VALUES */
};

enum seg_type {
    SEG_KEY = 0,
    SEG_INDEX,  /* [N], 1-based */
    SEG_APPEND, /* [] */
};

struct seg {
    enum seg_type type;
    char name[64];
    size_t index;
};

/* Whether a field of any kind (or of a record in one) named `name` has a type in `types`
 * (a mask of 1u << enum st_ftype): what the form decoder infers a value from. */
static bool
field_typed(const struct st_field *f, const char *name, unsigned types)
{
    for (; f->name != NULL; f++) {
        if (strcmp(f->name, name) == 0 && (types & (1u << f->type))) {
            return true;
        }
        if (f->sub != NULL && field_typed(f->sub, name, types)) {
            return true;
        }
    }
    return false;
}

static bool
is_field(const char *name, unsigned types)
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        if (field_typed(st_entities[k]->fields, name, types)) {
            return true;
        }
    }
    /* the plugins' config records (the plugins kind's is abstract): config.status=401 */
    for (size_t i = 0; i < st_plugins_bundled_n; i++) {
        if (field_typed(st_plugins_bundled[i]->config, name, types)) {
            return true;
        }
    }
    return false;
}

/* Whether segs (n of them) name an array field of a plugin's config record:
 * config.allow=1.2.3.4 is a one-element array, as in Kong. */
static bool
is_config_array(const struct seg *segs, int n)
{
    if (n != 2 || segs[0].type != SEG_KEY || strcmp(segs[0].name, "config") != 0 ||
        segs[1].type != SEG_KEY) {
        return false;
    }
    for (size_t i = 0; i < st_plugins_bundled_n; i++) {
        if (field_typed(st_plugins_bundled[i]->config, segs[1].name, ARRAY_TYPES)) {
            return true;
        }
    }
    return false;
}

static int
hexval(int c)
{
    static const char digits[] = "0123456789abcdef";
    const char *p = c != 0 ? strchr(digits, tolower(c)) : NULL;

    return p != NULL ? (int)(p - digits) : -1;
}

char *
cp_form_unescape(const char *s, size_t n, size_t *out_len)
{
    char *out = st_xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            out[o++] =
                (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

size_t
cp_form_url_unescape(char *s)
{
    char *o = s;

    for (const char *p = s; *p != '\0'; p++) {
        int hi = p[0] == '%' ? hexval((unsigned char)p[1]) : -1;
        int lo = hi >= 0 ? hexval((unsigned char)p[2]) : -1;

        if (lo >= 0 && (hi | lo) != 0) {
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return (size_t)(o - s);
}

/* Splits "a[1].b" into segments. Returns the count, -1 when malformed, or -2 when an index
 * is above CP_FORM_MAX_INDEX. */
static int
parse_key(const char *key, struct seg *segs, int max)
{
    const char *p = key;
    int n = 0;

    while (*p != '\0') {
        struct seg *s;

        if (n == max) {
            return -1;
        }
        s = &segs[n];
        memset(s, 0, sizeof(*s));
        if (*p == '[') {
            char *end;

            p++;
            if (*p == ']') {
                s->type = SEG_APPEND;
                p++;
            } else {
                unsigned long v;

                if (!isdigit((unsigned char)*p)) {
                    return -1;
                }
                v = strtoul(p, &end, 10);
                if (*end != ']' || v == 0) {
                    return -1;
                }
                if (v > CP_FORM_MAX_INDEX) {
                    return -2;
                }
                s->type = SEG_INDEX;
                s->index = v;
                p = end + 1;
            }
        } else {
            size_t len;

            if (*p == '.') {
                if (n == 0) {
                    return -1;
                }
                p++;
            } else if (n > 0) {
                return -1;
            }
            len = strcspn(p, ".[");
            if (len == 0 || len >= sizeof(s->name)) {
                return -1;
            }
            s->type = SEG_KEY;
            memcpy(s->name, p, len);
            s->name[len] = '\0';
            p += len;
        }
        n++;
    }
    return n;
}

/* The value of a leaf, inferred from the text (len bytes, no NUL) and the field's name.
 * NULL when the text is not UTF-8. */
static json_t *
infer(const char *text, size_t len, const char *field)
{
    if (len == 0) {
        return json_null();
    }
    if (strcmp(text, "true") == 0) {
        return json_true();
    }
    if (strcmp(text, "false") == 0) {
        return json_false();
    }
    if (field != NULL && is_field(field, INT_TYPES)) {
        const char *p = text[0] == '-' ? text + 1 : text;
        bool digits = *p != '\0' && strlen(p) <= 18;

        for (; *p != '\0' && digits; p++) {
            digits = isdigit((unsigned char)*p);
        }
        if (digits) {
            return json_integer(strtoll(text, NULL, 10));
        }
    }
    if (field != NULL && is_field(field, 1u << ST_FT_NUMBER) && len < 32 &&
        !isspace((unsigned char)text[0])) {
        char *end;
        double d = strtod(text, &end);

        if (end == text + len) {
            return json_real(d); /* the field's check makes 5.0 an integer */
        }
    }
    return json_stringn(text, len);
}

/* Whether len bytes of s are text a JSON string can hold whole: UTF-8 (jansson's check)
 * without a NUL, which the C strings downstream would cut. */
static bool
is_text(const char *s, size_t len)
{
    json_t *t;

    if (memchr(s, '\0', len) != NULL) {
        return false;
    }
    t = json_stringn(s, len);
    json_decref(t);
    return t != NULL;
}

/* Takes n more values from the body's budget; false when they do not fit. */
static bool
spend(struct cp_form *f, size_t n)
{
    if (n > f->max_values - f->values) {
        return false;
    }
    f->values += n;
    return true;
}

/* The nulls that storing at segment s of the array cur adds before the value. */
static size_t
padding(const json_t *cur, const struct seg *s)
{
    size_t size = json_array_size(cur);

    return s->type == SEG_INDEX && s->index > size + 1 ? s->index - size - 1 : 0;
}

/* Whether segment s can hold a new value in cur: a key of an object, an index or [] of
 * an array. */
static bool
fits(const json_t *cur, const struct seg *s)
{
    return s->type == SEG_KEY ? json_is_object(cur) : json_is_array(cur);
}

/* Stores v (taking it, also on failure) at segment s of cur, which fits(); the budget
 * was spent. Returns 0, or ADD_SHAPE when jansson refuses (v is then released). */
static int
put(json_t *cur, const struct seg *s, json_t *v)
{
    int rc;

    switch (s->type) {
    case SEG_KEY:
        rc = json_object_set_new(cur, s->name, v);
        break;
    case SEG_INDEX:
        rc = 0;
        while (rc == 0 && json_array_size(cur) < s->index) {
            rc = json_array_append_new(cur, json_null());
        }
        if (rc == 0) {
            rc = json_array_set_new(cur, s->index - 1, v);
        } else {
            json_decref(v);
        }
        break;
    default:
        rc = json_array_append_new(cur, v);
        break;
    }
    return rc == 0 ? ADD_OK : ADD_SHAPE;
}

/* The child of cur for segment s (*out, borrowed), created with the shape `next` needs. */
static int
child_for(struct cp_form *f, json_t *cur, const struct seg *s, const struct seg *next, json_t **out)
{
    json_t *child = NULL;
    int rc;

    *out = NULL;
    if (s->type == SEG_KEY && json_is_object(cur)) {
        child = json_object_get(cur, s->name);
    } else if (s->type == SEG_INDEX && json_is_array(cur)) {
        child = json_array_get(cur, s->index - 1);
        if (json_is_null(child)) {
            child = NULL;
        }
    }
    if (child != NULL) {
        *out = child;
        return ADD_OK;
    }
    if (!fits(cur, s)) {
        return ADD_SHAPE;
    }
    if (!spend(f, 1 + padding(cur, s))) {
        return ADD_BUDGET;
    }
    child = next->type == SEG_KEY ? json_object() : json_array();
    rc = put(cur, s, child);
    if (rc == ADD_OK) {
        *out = child; /* cur holds it */
    }
    return rc;
}

/* Stores v (taking it) at a key of the object cur that holds old: a repeated key makes an
 * array, and a top-level array field's first value is one already. */
static int
set_key(struct cp_form *f, json_t *cur, const struct seg *s, json_t *v, bool top)
{
    json_t *old = json_object_get(cur, s->name);
    bool wrap = old == NULL && top && is_field(s->name, ARRAY_TYPES) && !json_is_null(v);
    json_t *arr;

    if (!spend(f, old == NULL || json_is_array(old) ? 1 + wrap : 2)) {
        json_decref(v);
        return ADD_BUDGET;
    }
    if (old == NULL && !wrap) {
        return put(cur, s, v);
    }
    if (json_is_array(old)) {
        return json_array_append_new(old, v) == 0 ? ADD_OK : ADD_SHAPE;
    }
    /* a repeated key, or the first value of an array field: a new array */
    arr = json_array();
    if (old != NULL && json_array_append(arr, old) != 0) {
        json_decref(v);
        json_decref(arr);
        return ADD_SHAPE;
    }
    if (json_array_append_new(arr, v) != 0) {
        json_decref(arr);
        return ADD_SHAPE;
    }
    return put(cur, s, arr);
}

/* Stores v (taking it) at the last segment s of cur. */
static int
set_leaf(struct cp_form *f, json_t *cur, const struct seg *s, json_t *v, bool top)
{
    if (!fits(cur, s)) {
        json_decref(v);
        return ADD_SHAPE;
    }
    if (s->type == SEG_KEY) {
        return set_key(f, cur, s, v, top);
    }
    if (!spend(f, 1 + padding(cur, s))) {
        json_decref(v);
        return ADD_BUDGET;
    }
    return put(cur, s, v);
}

/* The key as an error message shows it, cut to fit buf: printable ASCII as it is, any
 * other byte as %HH, so the message is text whatever the key holds. */
static void
key_text(const char *key, size_t len, char *buf, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        bool plain = ch > 0x20 && ch < 0x7f;

        if (o + (plain ? 1 : 3) >= size) {
            break;
        }
        if (plain) {
            buf[o++] = (char)ch;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 0xf];
        }
    }
    buf[o] = '\0';
}

/* The field a leaf belongs to: the last named segment. */
static const char *
leaf_field(const struct seg *segs, int n)
{
    const char *field = NULL;

    for (int i = 0; i < n; i++) {
        if (segs[i].type == SEG_KEY) {
            field = segs[i].name;
        }
    }
    return field;
}

/* Walks (creating) the path of segs to its last segment and stores v there (taking it). */
static int
add_path(struct cp_form *f, const struct seg *segs, int n, json_t *v)
{
    json_t *cur = f->root;
    int rc = ADD_OK;

    for (int i = 0; i < n - 1 && rc == ADD_OK; i++) {
        rc = child_for(f, cur, &segs[i], &segs[i + 1], &cur);
    }
    if (rc != ADD_OK) {
        json_decref(v);
        return rc;
    }
    return set_leaf(f, cur, &segs[n - 1], v, n == 1 || is_config_array(segs, n));
}

struct cp_form *
cp_form_new(size_t body_len)
{
    struct cp_form *f = st_xcalloc(1, sizeof(*f));

    f->root = json_object();
    ST_ASSERT(f->root != NULL);
    f->max_values = body_len < CP_FORM_MAX_VALUES - CP_FORM_VALUES_BASE
                        ? CP_FORM_VALUES_BASE + body_len
                        : CP_FORM_MAX_VALUES;
    return f;
}

void
cp_form_free(struct cp_form *f)
{
    if (f == NULL) {
        return;
    }
    json_decref(f->root);
    free(f);
}

json_t *
cp_form_object(const struct cp_form *f)
{
    return json_incref(f->root);
}

int
cp_form_add(struct cp_form *f, const char *key, size_t key_len, const char *value, size_t value_len,
            struct st_err *err)
{
    struct seg segs[FORM_MAX_DEPTH];
    char shown[FORM_KEY_SHOWN];
    json_t *v;
    int n;
    int rc;

    key_text(key, key_len, shown, sizeof(shown));
    if (f->fields == CP_FORM_MAX_FIELDS) {
        return st_err_set(err, -ST_EPARSE, NULL, "form body too large: more than %d fields",
                          CP_FORM_MAX_FIELDS);
    }
    f->fields++;
    n = is_text(key, key_len) ? parse_key(key, segs, FORM_MAX_DEPTH) : -1;
    if (n == -2) {
        return st_err_set(err, -ST_EPARSE, NULL, "invalid form key '%s': an index is at most %d",
                          shown, CP_FORM_MAX_INDEX);
    }
    if (n <= 0) {
        return st_err_set(err, -ST_EPARSE, NULL, "invalid form key '%s'", shown);
    }
    v = memchr(value, '\0', value_len) == NULL ? infer(value, value_len, leaf_field(segs, n))
                                               : NULL;
    if (v == NULL) {
        return st_err_set(err, -ST_EPARSE, NULL,
                          "invalid form value for key '%s': not UTF-8 text, or a NUL byte in it",
                          shown);
    }
    rc = add_path(f, segs, n, v);
    if (rc == ADD_BUDGET) {
        return st_err_set(err, -ST_EPARSE, NULL,
                          "form body too large: it decodes into more than %zu values",
                          f->max_values);
    }
    if (rc != ADD_OK) {
        return st_err_set(err, -ST_EPARSE, NULL, "invalid form key '%s'", shown);
    }
    return 0;
}

int
cp_form_decode(const char *p, size_t len, json_t **out, struct st_err *err)
{
    struct cp_form *f = cp_form_new(len);
    size_t i = 0;
    int rc = 0;

    *out = NULL;
    while (i < len && rc == 0) {
        const char *amp = memchr(p + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - p) : len;
        const char *eqp = memchr(p + i, '=', end - i);
        size_t eq = eqp != NULL ? (size_t)(eqp - p) : end;
        size_t key_len = 0;
        size_t value_len = 0;
        char *key;
        char *value;

        if (end > i) {
            key = cp_form_unescape(p + i, eq - i, &key_len);
            value =
                eq < end ? cp_form_unescape(p + eq + 1, end - eq - 1, &value_len) : st_xstrdup("");
            if (key_len > 0) {
                rc = cp_form_add(f, key, key_len, value, value_len, err);
            }
            free(key);
            free(value);
        }
        i = end + 1;
    }
    if (rc == 0) {
        *out = cp_form_object(f);
    }
    cp_form_free(f);
    return rc;
}
