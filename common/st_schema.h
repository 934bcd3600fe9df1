/* Entity validation, Kong's rules and messages, walking each kind's description
 * (st_entity.h, common/st_ent_<kind>.c). The CP runs this on every write and the DP on
 * every snapshot it receives, so the DP never applies what the CP would reject.
 *
 * Entities are jansson objects in Kong's admin API shape, with one difference kept
 * inside Strait: created_at and updated_at are in milliseconds (the admin API shows
 * seconds; cp_admin converts at the boundary). */
#ifndef STRAIT_ST_SCHEMA_H
#define STRAIT_ST_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>

#include "st_entity.h"

/* Limits Kong does not have (issue 14): every accepted write must stay sendable to the
 * data planes, and the DP checks them again on every snapshot. A name (services,
 * routes, snis) and a tag are at most 256 bytes ("length must be at most 256"), an
 * entity has at most 64 tags ("length must be at most 64"), and an entity as stored
 * (compact JSON, defaults filled) is at most 1 MiB (an "@entity" error naming its size). */
#define ST_SCHEMA_NAME_MAX   256
#define ST_SCHEMA_TAG_MAX    256
#define ST_SCHEMA_TAGS_MAX   64
#define ST_SCHEMA_ENTITY_MAX (1u << 20)

/* Normalises obj in place for storing: expands the `url` shorthand of services into
 * protocol/host/port/path (and removes `url`), fills defaults for missing fields
 * (Kong's: services protocol tcp... port 80, timeouts 60000, retries 5, enabled true;
 * routes preserve_host false), sets every other known field that is absent to null,
 * and checks types, ranges and Kong's cross-field rules. Unknown fields are errors
 * (`unknown field`). Does not check uniqueness or foreign keys (the store does), nor
 * set id/created_at/updated_at (the caller does before calling; they are validated).
 *
 * Returns 0, or -ST_ESCHEMA with *fields set to a new object in Kong's `fields` shape
 * ({"@entity": ["..."], "port": "...", "protocols": ["..."], "sources": [{"ip": "..."}]}),
 * owned by the caller. Features not built yet (udp) are refused the same way. */
int st_schema_validate(enum st_entity_kind k, json_t *obj, json_t **fields);

/* Applies kind k's input rewrite (Kong's shorthand fields that read the request's own
 * keys: upstreams' algorithm and hash_on) to a write's body, before it is merged with a
 * stored entity and validated. The admin API and the declarative loader call it; a
 * stored entity is never rewritten again. */
void st_schema_input(enum st_entity_kind k, json_t *body);

/* Flags of st_schema_validate_ex. ST_SCHEMA_F_STORED: an entity already written (the DP's
 * snapshot parse); skip what depends on the time of writing (an expired CA certificate). */
#define ST_SCHEMA_F_STORED (1u << 0)
/* st_schema_validate with flags (0 is st_schema_validate). */
int st_schema_validate_ex(enum st_entity_kind k, json_t *obj, unsigned flags, json_t **fields);

/* Formats Kong's message for a `fields` object into buf:
 * "schema violation (port: value should be between 0 and 65535)" or
 * "2 schema violations (@entity-msg; host: required field missing)"
 * (@entity errors first, then fields sorted by path, nested as "sources.1.ip"). */
void st_schema_message(const json_t *fields, char *buf, size_t size);

/* Checks one value v of one field of kind k with that field's own rule (no defaults,
 * no cross-field rules): the admin API checks a name in a path (Kong's endpoint key)
 * this way. Returns NULL when v passes (or is null, or k has no such field), else
 * Kong's error for it: a new reference (a string, or an object/array for nested
 * values) owned by the caller. */
json_t *st_schema_check_value(enum st_entity_kind k, const char *field, const json_t *v);

/* st_schema_check_value with the field's row f itself (a row every kind shares, as
 * ST_FIELD_TAGS: GET /tags/{tag} checks its tag this way). */
json_t *st_schema_check_field(const struct st_field *f, const json_t *v);

/* True when s is a UUID in canonical 8-4-4-4-12 hex form. */
bool st_schema_is_uuid(const char *s);

#endif
