/* Form decoding for the admin API (see cp_form.h). Kong's sources:
 * kong/tools/http.lua decode_args (empty -> null, true/false) and
 * kong/api/api_helpers.lua normalize_nested_params (a[1].b, a.b, a[]). */
#include "cp_form.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_util.h"

#define FORM_MAX_DEPTH 8

static const char *const int_fields[] = {
    "port",           "retries",       "connect_timeout",
    "read_timeout",   "write_timeout", "tls_verify_depth",
    "created_at",     "updated_at",    "https_redirect_status_code",
    "regex_priority", "priority",      NULL,
};

static const char *const array_fields[] = {
    "protocols", "tags",  "snis",  "sources",         "destinations",
    "methods",   "hosts", "paths", "ca_certificates", NULL,
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

static bool
in_list(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

char *
cp_form_unescape(const char *s, size_t n)
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
    return out;
}

/* Splits "a[1].b" into segments. Returns the count, or -1 when malformed. */
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
                if (*end != ']' || v == 0 || v > 10000) {
                    return -1;
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

/* The value of a leaf, inferred from the text and the field's name. */
static json_t *
infer(const char *text, const char *field)
{
    if (text[0] == '\0') {
        return json_null();
    }
    if (strcmp(text, "true") == 0) {
        return json_true();
    }
    if (strcmp(text, "false") == 0) {
        return json_false();
    }
    if (field != NULL && in_list(int_fields, field)) {
        const char *p = text[0] == '-' ? text + 1 : text;
        bool digits = *p != '\0' && strlen(p) <= 18;

        for (; *p != '\0' && digits; p++) {
            digits = isdigit((unsigned char)*p);
        }
        if (digits) {
            return json_integer(strtoll(text, NULL, 10));
        }
    }
    return json_string(text);
}

/* The child of cur for segment s, created with the shape `next` needs. */
static json_t *
child_for(json_t *cur, const struct seg *s, const struct seg *next)
{
    json_t *child = NULL;

    if (s->type == SEG_KEY && json_is_object(cur)) {
        child = json_object_get(cur, s->name);
    } else if (s->type == SEG_INDEX && json_is_array(cur)) {
        child = json_array_get(cur, s->index - 1);
        if (json_is_null(child)) {
            child = NULL;
        }
    }
    if (child != NULL) {
        return child;
    }
    child = next->type == SEG_KEY ? json_object() : json_array();
    if (s->type == SEG_KEY && json_is_object(cur)) {
        json_object_set_new(cur, s->name, child);
    } else if (s->type == SEG_INDEX && json_is_array(cur)) {
        while (json_array_size(cur) < s->index) {
            json_array_append_new(cur, json_null());
        }
        json_array_set_new(cur, s->index - 1, child);
    } else if (s->type == SEG_APPEND && json_is_array(cur)) {
        json_array_append_new(cur, child);
    } else {
        json_decref(child);
        return NULL;
    }
    return child;
}

/* Stores v (taking it) at the last segment s of cur. */
static int
set_leaf(json_t *cur, const struct seg *s, json_t *v, bool top)
{
    if (s->type == SEG_KEY && json_is_object(cur)) {
        json_t *old = json_object_get(cur, s->name);

        if (old == NULL) {
            if (top && in_list(array_fields, s->name) && !json_is_null(v)) {
                json_t *arr = json_array();

                json_array_append_new(arr, v);
                return json_object_set_new(cur, s->name, arr);
            }
            return json_object_set_new(cur, s->name, v);
        }
        if (json_is_array(old)) {
            return json_array_append_new(old, v);
        }
        /* a repeated key makes an array */
        {
            json_t *arr = json_array();

            json_array_append(arr, old);
            json_array_append_new(arr, v);
            return json_object_set_new(cur, s->name, arr);
        }
    }
    if (s->type == SEG_INDEX && json_is_array(cur)) {
        while (json_array_size(cur) < s->index) {
            json_array_append_new(cur, json_null());
        }
        return json_array_set_new(cur, s->index - 1, v);
    }
    if (s->type == SEG_APPEND && json_is_array(cur)) {
        return json_array_append_new(cur, v);
    }
    json_decref(v);
    return -1;
}

int
cp_form_add(json_t *root, const char *key, const char *value, struct st_err *err)
{
    struct seg segs[FORM_MAX_DEPTH];
    const char *field = NULL;
    json_t *cur = root;
    int n = parse_key(key, segs, FORM_MAX_DEPTH);

    if (n <= 0) {
        return st_err_set(err, -ST_EPARSE, key, "invalid form key '%s'", key);
    }
    /* the field a leaf belongs to: the last named segment */
    for (int i = 0; i < n; i++) {
        if (segs[i].type == SEG_KEY) {
            field = segs[i].name;
        }
    }
    /* a[] is the same as a repeated a */
    if (n == 2 && segs[0].type == SEG_KEY && segs[1].type == SEG_APPEND) {
        json_t *arr = json_object_get(root, segs[0].name);

        if (arr == NULL) {
            arr = json_array();
            json_object_set_new(root, segs[0].name, arr);
        }
        if (!json_is_array(arr)) {
            return st_err_set(err, -ST_EPARSE, key, "invalid form key '%s'", key);
        }
        json_array_append_new(arr, infer(value, field));
        return 0;
    }
    for (int i = 0; i < n - 1 && cur != NULL; i++) {
        cur = child_for(cur, &segs[i], &segs[i + 1]);
    }
    if (cur == NULL || set_leaf(cur, &segs[n - 1], infer(value, field), n == 1) != 0) {
        return st_err_set(err, -ST_EPARSE, key, "invalid form key '%s'", key);
    }
    return 0;
}

int
cp_form_decode(const char *p, size_t len, json_t **out, struct st_err *err)
{
    json_t *root = json_object();
    size_t i = 0;
    int rc = 0;

    *out = NULL;
    while (i < len && rc == 0) {
        size_t end = i;
        size_t eq;
        char *key;
        char *value;

        while (end < len && p[end] != '&') {
            end++;
        }
        eq = i;
        while (eq < end && p[eq] != '=') {
            eq++;
        }
        if (end > i) {
            key = cp_form_unescape(p + i, eq - i);
            value = eq < end ? cp_form_unescape(p + eq + 1, end - eq - 1) : st_xstrdup("");
            if (key[0] != '\0') {
                rc = cp_form_add(root, key, value, err);
            }
            free(key);
            free(value);
        }
        i = end + 1;
    }
    if (rc < 0) {
        json_decref(root);
        return rc;
    }
    *out = root;
    return 0;
}
