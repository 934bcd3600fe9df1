/* application/x-www-form-urlencoded bodies in Kong's admin-API forms:
 * `name=x`, repeated keys and `protocols[]=tcp` for arrays, `destinations[1].port=80`
 * (1-based) and `service.id=...` for nested values. The same decoder builds the object of
 * a multipart/form-data body, one part at a time (cp_http).
 *
 * What a body decodes into is bounded, not only what it reads (issue 14, defect 2): a
 * sparse index pads its array with nulls, so `a[1000][1000]...` would make millions of
 * values out of a few bytes. Each limit is refused with -ST_EPARSE and a message naming
 * it (the admin API's 400 {"message": ...}). No legitimate Kong form comes near them: an
 * entity has a handful of array elements (protocols, tags, sources, destinations, snis). */
#ifndef STRAIT_CP_FORM_H
#define STRAIT_CP_FORM_H

#include <jansson.h>
#include <stddef.h>

/* Fields (key=value pairs, or multipart parts) in one body. */
#define CP_FORM_MAX_FIELDS 1000
/* The largest index in a key: `tags[1000]`. */
#define CP_FORM_MAX_INDEX 1000
/* Values one body may decode into (objects, arrays, leaves and the nulls that pad a sparse
 * index): CP_FORM_VALUES_BASE plus one per byte of the body, at most CP_FORM_MAX_VALUES. */
#define CP_FORM_VALUES_BASE 4096
#define CP_FORM_MAX_VALUES  65536

struct st_err;
struct cp_form;

/* Decodes p[0..len) into a new object the caller releases. Values are inferred as Kong
 * does: "" -> null, "true"/"false" -> booleans, digits in an integer field (port,
 * retries, timeouts...: a field some entity description types integer or timestamp) ->
 * integers, a single value of an array field (protocols, tags, snis, sources,
 * destinations...: typed set, array or foreign set) -> a one-element array; other values stay
 * strings, so the schema reports a wrong type. Returns 0, or -ST_EPARSE with err->msg
 * naming the bad key, the bad value's key or the limit reached (*out NULL). */
int cp_form_decode(const char *p, size_t len, json_t **out, struct st_err *err);

/* A decoder for a body of body_len bytes that arrives as separate fields (multipart):
 * body_len sets the bound on what it may build. Free with cp_form_free(). */
struct cp_form *cp_form_new(size_t body_len);

/* Adds one decoded field (key and value as a form carries them after unescaping, e.g.
 * one part of a multipart/form-data body), as cp_form_decode does for each pair. A key or
 * value that holds a NUL byte or is not UTF-8 is refused, not cut or changed. Returns 0,
 * or -ST_EPARSE with err->msg saying why; f is left as it was before the call, or holds
 * the field's intermediate objects (they are never read: a failed body is dropped). */
int cp_form_add(struct cp_form *f, const char *key, size_t key_len, const char *value,
                size_t value_len, struct st_err *err);

/* The object decoded so far: a new reference the caller releases. f stays f's. */
json_t *cp_form_object(const struct cp_form *f);

/* NULL is a no-op. */
void cp_form_free(struct cp_form *f);

/* Percent-decodes n bytes of s ('+' is a space) into a new NUL-terminated string the
 * caller frees; *out_len is its length, which a decoded %00 makes longer than strlen. */
char *cp_form_unescape(const char *s, size_t n, size_t *out_len);

/* Percent-decodes the NUL-terminated s in place as the admin API decodes a URL's path and
 * each query key and value ('+' stays): %XX is decoded, except that %00 stays the three
 * characters "%00", since a decoded NUL would end the C string there (`GET
 * /services/%00abc` was served as `GET /services`). Returns the new length. */
size_t cp_form_url_unescape(char *s);

#endif
