/* Entity validation, Kong's rules and messages, walking each kind's description
 * (st_entity.h, common/st_ent_<kind>.c). The CP runs this on every write and the DP on
 * every snapshot it receives, so the DP never applies what the CP would reject.
 *
 * Entities are jansson objects in Kong's admin API shape, except that created_at and
 * updated_at are in milliseconds inside Strait (cp_admin converts at the boundary). */
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

/* Normalises obj in place for storing: expands shorthands (services' `url`), fills the
 * descriptions' defaults, sets every other known field that is absent to null, and
 * checks types, ranges, Kong's cross-field rules and unknown fields. Uniqueness and
 * foreign keys are the store's; id/created_at/updated_at are set by the caller and
 * validated here. Returns 0, or -ST_ESCHEMA with *fields a new object (the caller's) in
 * Kong's `fields` shape ({"@entity": ["..."], "port": "...", "sources": [{"ip": "..."}]}).
 * Features not built yet (udp) are refused the same way. */
int st_schema_validate(enum st_entity_kind k, json_t *obj, json_t **fields);

/* Applies kind k's input rewrite (Kong's shorthand fields that read the request's own
 * keys: upstreams' algorithm and hash_on) to a write's body, before it is merged with a
 * stored entity and validated. The admin API and the declarative loader call it; a
 * stored entity is never rewritten again. */
void st_schema_input(enum st_entity_kind k, json_t *body);

/* An entity already written (the DP's snapshot parse): skip what depends on the time of
 * writing (an expired CA certificate). */
#define ST_SCHEMA_F_STORED (1u << 0)
int st_schema_validate_ex(enum st_entity_kind k, json_t *obj, unsigned flags, json_t **fields);

/* Formats Kong's message for a `fields` object into buf:
 * "schema violation (port: value should be between 0 and 65535)" or
 * "2 schema violations (@entity-msg; host: required field missing)"
 * (@entity errors first, then fields sorted by path, nested as "sources.1.ip"). */
void st_schema_message(const json_t *fields, char *buf, size_t size);

/* Checks one value v of one field of kind k with that field's own rule (no defaults, no
 * cross-field rules), as the admin API checks a name in a path. Returns NULL when v passes
 * (or is null, or k has no such field), else Kong's error for it (a new reference). */
json_t *st_schema_check_value(enum st_entity_kind k, const char *field, const json_t *v);

/* The same with a row every kind shares (ST_FIELD_TAGS: GET /tags/{tag}). */
json_t *st_schema_check_field(const struct st_field *f, const json_t *v);

/* True when s is a UUID in canonical 8-4-4-4-12 hex form. */
bool st_schema_is_uuid(const char *s);

#endif
