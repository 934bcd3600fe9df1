/* Kong's declarative configuration (kong/db/schema/others/declarative_config.lua):
 * parses a `_format_version` "3.0" / "2.1" / "1.1" document, YAML or JSON, into
 * validated entities in Strait's store shape, and exports entities back into one.
 * Used by POST/GET /config and `strait-cp config db_import|db_export|parse`. */
#ifndef STRAIT_ST_DECL_H
#define STRAIT_ST_DECL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_entity.h"

/* Limits of a parse (issue 14): what a document may build and what its error may hold,
 * so that a small request never grows into a large allocation.
 * - ST_DECL_DEPTH_MAX: nesting of the text, YAML and JSON alike.
 * - A YAML document builds at most max(ST_DECL_EXPAND_FLOOR, ST_DECL_EXPAND_RATIO x its
 *   length) and never more than ST_DECL_EXPAND_MAX, counted as the bytes of every scalar
 *   and key plus 16 a node, with each alias counted as a full copy of what it names
 *   (a document without aliases builds at most about 11 times its length).
 * - An error body holds at most ST_DECL_ERRORS_MAX messages (the first ones, collections
 *   and keys in order; then fields["@truncated"] says how many there were), a reference
 *   is quoted in a message up to ST_DECL_ECHO_MAX bytes, and flattened_errors copies the
 *   entities in error up to ST_DECL_FLAT_ENTITY_BYTES in all (then only their id and
 *   name). */
#define ST_DECL_DEPTH_MAX         64
#define ST_DECL_EXPAND_RATIO      16
#define ST_DECL_EXPAND_FLOOR      (1u << 20)
#define ST_DECL_EXPAND_MAX        (256u << 20)
#define ST_DECL_ERRORS_MAX        1000
#define ST_DECL_ECHO_MAX          256
#define ST_DECL_FLAT_ENTITY_BYTES (4u << 20)

/* Whether an entity of kind k with endpoint key `name` exists: 0 with its id and
 * *created_at_ms, else -1. Lets a re-posted file without ids keep its ids. */
typedef int st_decl_lookup_fn(void *arg, enum st_entity_kind k, const char *name, char id[37],
                              int64_t *created_at_ms);

struct st_decl_opts {
    st_decl_lookup_fn *lookup; /* NULL: every entity without an id gets a new one */
    void *lookup_arg;
    int64_t now_ms; /* created_at/updated_at of entities the document gives none;
                     * 0: the current time in whole seconds */
};

/* Parses text (YAML or JSON; len bytes, need not be NUL-terminated) as a whole
 * configuration. On success returns 0 and lists[k], a new array (the caller's) of the
 * entities of each kind: st_schema-validated, with id and timestamps (ms) set, nested
 * entities flattened with their foreign key set, references by name resolved to ids and
 * uniqueness within the document checked, so inserting them into an empty store succeeds.
 *
 * On failure returns -ST_EPARSE (the text is not a YAML/JSON mapping) or -ST_ESCHEMA,
 * every lists[k] NULL, and *error a new object in Kong's 400 body for POST /config
 * ({"code": 14, "name": "invalid declarative configuration", "message": ..., "fields":
 * {...}, "flattened_errors": [...]}), fields and message in Kong's plain form.
 * "flattened_errors" is there whenever the text parsed into a mapping (as in Kong):
 * callers drop it unless flatten_errors=1 asks for it, then call st_decl_error_flatten(). */
int st_decl_parse(const char *text, size_t len, const struct st_decl_opts *o,
                  json_t *lists[ST_ENT__COUNT], json_t **error);

/* Turns an error body of st_decl_parse into Kong's flatten_errors=1 form, in place:
 * "fields" keeps only what Kong's flattening leaves (top-level errors that are not
 * per-entity, e.g. `_format_version`) and "message" is recomputed from it. A body
 * without "flattened_errors" (unparsable text) is left as it is, as Kong does. */
void st_decl_error_flatten(json_t *error);

/* Writes the entities (store shape) as a declarative document (format 3.0, children
 * nested under their parent, timestamps in seconds, keys sorted: the same entities always
 * give the same text), YAML or JSON. Returns 0 and *out (malloc'd, NUL-terminated,
 * *outlen bytes), or -ENOMEM. */
int st_decl_export(json_t *const lists[ST_ENT__COUNT], bool yaml, char **out, size_t *outlen);

#endif
