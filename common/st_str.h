/* Small string helpers for boot, config and CP code: a growing string (it aborts when
 * memory runs out, as st_xmalloc does), a word list lookup and trimming. */
#ifndef STRAIT_ST_STR_H
#define STRAIT_ST_STR_H

#include <stdbool.h>
#include <stddef.h>

/* A growing string. Starts as {0} (p is NULL until the first add); after any add, even of
 * nothing, p holds len bytes and a NUL. The owner frees p with free(). */
struct st_str {
    char *p;
    size_t len;
    size_t cap;
};

/* Appends n bytes of s (which may hold NULs) to b. */
void st_str_addn(struct st_str *b, const char *s, size_t n);

/* Appends the string s to b. */
void st_str_add(struct st_str *b, const char *s);

/* Appends what printf would print to b. */
void st_str_addf(struct st_str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether s is one of the strings of list, which ends with NULL. */
bool st_str_in(const char *s, const char *const *list);

/* Trims the white space (isspace) around s, in place: returns s past its leading spaces,
 * with the trailing ones cut by a NUL. */
char *st_str_trim(char *s);

#endif
