/* Small jansson helpers (see st_json.h). */
#include "st_json.h"

#include <stdlib.h>
#include <string.h>

#include "st_util.h"

void
st_json_arr_put(json_t **arr, size_t i, json_t *v)
{
    if (*arr == NULL) {
        *arr = json_array();
    }
    while (json_array_size(*arr) < i) {
        json_array_append_new(*arr, json_null());
    }
    json_array_append_new(*arr, v);
}

json_t *
st_json_child(json_t *obj, const char *key, json_type t)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL || json_typeof(v) != t) {
        v = t == JSON_ARRAY ? json_array() : json_object();
        json_object_set_new(obj, key, v);
    }
    return v;
}

static int
cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **
st_json_keys(const json_t *obj, size_t *n)
{
    const char **keys = st_xcalloc(json_object_size(obj) + 1, sizeof(*keys));
    const char *key;
    json_t *v;

    *n = 0;
    json_object_foreach((json_t *)obj, key, v)
    {
        keys[(*n)++] = key;
    }
    qsort(keys, *n, sizeof(*keys), cmp_key);
    return keys;
}
