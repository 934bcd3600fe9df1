/* Small jansson helpers for boot, config and CP code (they abort when memory runs out, as
 * st_xmalloc does): error lists with holes, and an object's keys in a stable order. */
#ifndef STRAIT_ST_JSON_H
#define STRAIT_ST_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Appends v (a new reference, stolen) to *arr at index i, after nulls up to i: the list of
 * errors of a list, one entry per item, null for an item without errors (Kong's shape).
 * Creates *arr when it is NULL. i is at least json_array_size(*arr). */
void st_json_arr_put(json_t **arr, size_t i, json_t *v);

/* obj[key] when it is of type t (JSON_OBJECT or JSON_ARRAY), else a new empty value of
 * that type set there: the lists and records errors are collected in, created on demand. */
json_t *st_json_child(json_t *obj, const char *key, json_type t);

/* The keys of obj in strcmp order (none when obj is not an object): a new array of *n
 * keys and a NULL, which the caller frees with free(). Each key belongs to obj and stays
 * valid while obj holds it. */
const char **st_json_keys(const json_t *obj, size_t *n);

#endif
