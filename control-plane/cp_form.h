/* application/x-www-form-urlencoded bodies in Kong's admin-API forms:
 * `name=x`, repeated keys and `protocols[]=tcp` for arrays, `destinations[1].port=80`
 * (1-based) and `service.id=...` for nested values. */
#ifndef STRAIT_CP_FORM_H
#define STRAIT_CP_FORM_H

#include <jansson.h>
#include <stddef.h>

struct st_err;

/* Decodes p[0..len) into a new object the caller releases. Values are inferred as Kong
 * does: "" -> null, "true"/"false" -> booleans, digits in an integer field (port,
 * retries, timeouts...) -> integers, a single value of an array field (protocols,
 * tags, snis, sources, destinations...) -> a one-element array; other values stay
 * strings, so the schema reports a wrong type. Returns 0, or -ST_EPARSE with err->msg
 * naming the bad key. */
int cp_form_decode(const char *p, size_t len, json_t **out, struct st_err *err);

/* Adds one decoded field (key and value as a form carries them after unescaping, e.g.
 * one part of a multipart/form-data body) to root, as cp_form_decode does for each
 * pair. Returns 0, or -ST_EPARSE with err->msg naming the bad key. */
int cp_form_add(json_t *root, const char *key, const char *value, struct st_err *err);

/* Percent-decodes n bytes of s ('+' is a space) into a new NUL-terminated string. */
char *cp_form_unescape(const char *s, size_t n);

#endif
