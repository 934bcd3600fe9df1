/* Small string helpers (see st_str.h). */
#include "st_str.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "st_util.h"

void
st_str_addn(struct st_str *b, const char *s, size_t n)
{
    ST_ASSERT(n < SIZE_MAX - b->len);
    if (b->len + n + 1 > b->cap) {
        b->cap = st_grow(b->cap, b->len + n + 1, SIZE_MAX);
        b->p = st_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
st_str_add(struct st_str *b, const char *s)
{
    st_str_addn(b, s, strlen(s));
}

void
st_str_addf(struct st_str *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(small)) {
        st_str_addn(b, small, (size_t)n);
        return;
    }
    if (b->cap - b->len < (size_t)n + 1) {
        b->cap = st_grow(b->cap, b->len + (size_t)n + 1, SIZE_MAX);
        b->p = st_xrealloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

bool
st_str_in(const char *s, const char *const *list)
{
    for (; *list != NULL; list++) {
        if (strcmp(s, *list) == 0) {
            return true;
        }
    }
    return false;
}

char *
st_str_trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        *--end = '\0';
    }
    return s;
}
