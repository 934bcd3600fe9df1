/* libFuzzer target for the declarative configuration parser (issue 5, point 3): the text
 * an admin POSTs to /config.
 *
 * Each input is parsed as a document. Besides memory errors, the target aborts when:
 *   - a failed parse leaves a list set, or its error is not a code-14 body with a message
 *     and fields, or flattening it (st_decl_error_flatten) breaks that shape;
 *   - a successful parse gives no error-free lists;
 *   - the export (YAML and JSON) of what parsed does not parse again into the very same
 *     entities (ids, timestamps, every field), or differs between two runs;
 *   - what a document builds, its entities (as exported JSON) or its error (as the JSON
 *     the admin API sends), is larger than OUT_MAX(size): the reader must be bounded by
 *     what it builds, not only by what it reads (issue 14, point 2: YAML aliases, error
 *     arrays indexed by an entity's name). Entity defaults make a small entity a few
 *     hundred bytes of JSON (about 30 times the shortest text), so the factor is wide.
 * Run it with -malloc_limit_mb and -rss_limit_mb (tests/fuzz/CMakeLists.txt does), so that
 * an amplification is caught even before it returns. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_decl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX(size) (64 * (size) + (8u << 20))

static void
free_lists(json_t *lists[ST_ENT__COUNT])
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
        lists[k] = NULL;
    }
}

static void
check_error(json_t *const lists[ST_ENT__COUNT], json_t *error, size_t in_size)
{
    char *text;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        if (lists[k] != NULL) {
            abort();
        }
    }
    if (json_integer_value(json_object_get(error, "code")) != 14 ||
        !json_is_string(json_object_get(error, "message")) ||
        !json_is_object(json_object_get(error, "fields"))) {
        abort();
    }
    st_decl_error_flatten(error);
    text = json_dumps(error, JSON_COMPACT);
    if (text == NULL || strlen(text) > OUT_MAX(in_size)) {
        abort();
    }
    free(text);
    if (!json_is_string(json_object_get(error, "message")) ||
        !json_is_object(json_object_get(error, "fields"))) {
        abort();
    }
}

/* Every entity of a is in b, equal, and the counts match. */
static void
check_same(json_t *const a[ST_ENT__COUNT], json_t *const b[ST_ENT__COUNT])
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        size_t i, j;
        json_t *x, *y;

        if (json_array_size(a[k]) != json_array_size(b[k])) {
            abort();
        }
        json_array_foreach(a[k], i, x)
        {
            const char *id = json_string_value(json_object_get(x, "id"));
            bool found = false;

            json_array_foreach(b[k], j, y)
            {
                if (strcmp(id, json_string_value(json_object_get(y, "id"))) == 0) {
                    if (!json_equal(x, y)) {
                        abort();
                    }
                    found = true;
                }
            }
            if (!found) {
                abort();
            }
        }
    }
}

static void
roundtrip(json_t *const lists[ST_ENT__COUNT], const struct st_decl_opts *o, bool yaml,
          size_t in_size)
{
    json_t *again[ST_ENT__COUNT];
    json_t *error = NULL;
    char *out = NULL;
    char *out2 = NULL;
    size_t len = 0;
    size_t len2 = 0;

    if (st_decl_export(lists, yaml, &out, &len) != 0 ||
        st_decl_export(lists, yaml, &out2, &len2) != 0 || len != len2 ||
        memcmp(out, out2, len) != 0) {
        abort();
    }
    if (!yaml && len > OUT_MAX(in_size)) {
        abort();
    }
    if (st_decl_parse(out, len, o, again, &error) != 0) {
        abort();
    }
    check_same(lists, again);
    free_lists(again);
    free(out);
    free(out2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_decl_opts o = {.now_ms = 1700000000000LL};
    json_t *lists[ST_ENT__COUNT];
    json_t *error = NULL;
    int rc = st_decl_parse((const char *)data, size, &o, lists, &error);

    if (rc < 0) {
        if (error == NULL) {
            abort();
        }
        check_error(lists, error, size);
        json_decref(error);
        return 0;
    }
    if (error != NULL) {
        abort();
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        if (!json_is_array(lists[k])) {
            abort();
        }
    }
    roundtrip(lists, &o, true, size);
    roundtrip(lists, &o, false, size);
    free_lists(lists);
    return 0;
}
