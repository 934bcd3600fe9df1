/* libFuzzer target for the admin API's form decoder (issue 14): the bodies of
 * application/x-www-form-urlencoded requests (cp_form_decode), and the field names and
 * values of multipart/form-data parts, which cp_http hands to cp_form_add as they come,
 * any bytes but NUL.
 *
 * The first byte picks the entry: even, the rest is one urlencoded body; odd, the rest is
 * lines "key=value" (split at the first '='; NUL bytes included), each given to cp_form_add
 * as the parts of one body.
 * Besides memory errors and allocations beyond the run's limits, the target aborts when:
 *   - a decode fails without an error message, or succeeds without an object;
 *   - what was decoded cannot be written as JSON (the admin API answers with it);
 *   - cp_form_unescape's result is longer than its input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_form.h"
#include "fuzz_util.h"
#include "st_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_result(json_t *root)
{
    char *text;

    if (!json_is_object(root)) {
        abort();
    }
    text = json_dumps(root, JSON_COMPACT);
    if (text == NULL) {
        abort();
    }
    free(text);
}

static void
body(struct fz_in *in)
{
    size_t n;
    char *p = fz_rest(in, &n);
    size_t un = 0;
    char *u = cp_form_unescape(p, n, &un);
    struct st_err err = {0};
    json_t *root = NULL;

    if (un > n || u[un] != '\0') {
        abort();
    }
    free(u);
    if (cp_form_decode(p, n, &root, &err) < 0) {
        if (root != NULL || err.msg[0] == '\0') {
            abort();
        }
    } else {
        check_result(root);
    }
    json_decref(root);
    free(p);
}

static void
parts(struct fz_in *in)
{
    struct cp_form *f = cp_form_new((size_t)(in->end - in->p));
    json_t *root;

    while (in->p < in->end) {
        size_t n;
        char *line = fz_field(in, '\n', &n);
        char *eq = memchr(line, '=', n);
        size_t klen = eq != NULL ? (size_t)(eq - line) : n;
        struct st_err err = {0};

        if (eq != NULL) {
            *eq = '\0';
        }
        if (cp_form_add(f, line, klen, eq != NULL ? eq + 1 : "", eq != NULL ? n - klen - 1 : 0,
                        &err) < 0 &&
            err.msg[0] == '\0') {
            abort();
        }
        free(line);
    }
    root = cp_form_object(f);
    check_result(root);
    json_decref(root);
    cp_form_free(f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, data + size};

    if (fz_byte(&in) % 2 == 0) {
        body(&in);
    } else {
        parts(&in);
    }
    return 0;
}
