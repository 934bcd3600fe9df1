/* What the files of the st_decl module share, not its API (st_decl.h):
 *   st_decl.c         the two phases of a parse, and the parse itself;
 *   st_decl_yaml.c    the text read into JSON (JSON, else YAML) and the YAML emitter;
 *   st_decl_kong.c    Kong's error body: pretty.write's message, its bounds, flatten_errors;
 *   st_decl_export.c  entities written back as a document. */
#ifndef STRAIT_ST_DECL_INT_H
#define STRAIT_ST_DECL_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "st_entity.h"

/* ------------------------------------------------------------------------ */
/* st_decl_yaml.c                                                             */

/* Kong's unserialize: the document in text (len bytes, need not be NUL-terminated), read
 * as JSON when it looks like JSON, else as YAML (the first document; json null when the
 * stream has none). Bounded by ST_DECL_DEPTH_MAX and ST_DECL_EXPAND_*. Returns a new
 * reference, or NULL with err set ("3:5: found undefined alias"). */
json_t *st_decl__load(const char *text, size_t len, char *err, size_t errsize);

/* doc as a YAML document: keys sorted, block style, strings that a YAML 1.1 or 1.2 reader
 * would take for another type quoted. Returns 0 and *out (malloc'd, NUL-terminated,
 * *outlen bytes), or -ENOMEM. */
int st_decl__yaml_dump(const json_t *doc, char **out, size_t *outlen);

/* ------------------------------------------------------------------------ */
/* st_decl_kong.c                                                             */

/* Whether s is a key that stands for a Lua array index ("12", not "012"); its value in
 * *out. */
bool st_decl__is_index_key(const char *s, size_t *out);

/* Kong's code-14 body for fields (stolen), its message written as penlight's
 * pretty.write does, with flattened (stolen; NULL: none). Returns a new object. */
json_t *st_decl__error_body(json_t *fields, json_t *flattened);

/* Bounds an error's fields to ST_DECL_ERRORS_MAX messages, in place (fields["@truncated"]
 * then says how many there were). */
void st_decl__errors_bound(json_t *fields);

/* Kong's flatten_errors(input, err_t) for the document doc and its error fields: a new
 * array of flattened errors (what stays in `fields` is st_decl_error_flatten's). */
json_t *st_decl__flatten(const json_t *doc, const json_t *fields);

#endif
