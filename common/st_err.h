/* Error codes and the human-readable error record shared by both planes. */
#ifndef STRAIT_ST_ERR_H
#define STRAIT_ST_ERR_H

/* Strait's own error codes, negated like -errno, clear of errno values. */
enum st_errc {
    ST_E_BASE = 1000,
    ST_ECONF,        /* bad configuration key or value */
    ST_EPARSE,       /* malformed input (text, bytes) */
    ST_ESCHEMA,      /* entity failed validation */
    ST_ENOTFOUND,    /* no such entity */
    ST_EUNIQUE,      /* unique constraint violated */
    ST_EFOREIGN,     /* foreign key points nowhere */
    ST_EREFERENCED,  /* still referenced by another entity */
    ST_EPKEY,        /* primary key already exists */
    ST_EDB,          /* database error */
    ST_EHASH,        /* snapshot bytes do not match their hash */
    ST_ETOOBIG,      /* payload over a configured limit */
    ST_EUNSUPPORTED, /* asks for a feature Strait does not have yet */
    ST_EDBDOWN,      /* the database is unreachable (try again later) */
    ST_E_LAST,
};

/* A failure a human must read: config, validation, admin input. */
struct st_err {
    int code;       /* negative, as returned */
    char field[64]; /* the config key or entity field, or "" */
    char msg[512];
};

/* Names an error returned by a Strait function: -errno or -ST_E*. Static string. */
const char *st_strerror(int rc);

/* Fills *e (if not NULL) with code, field (may be NULL) and a formatted message.
 * Returns code, so callers can `return st_err_set(e, -ST_ECONF, ...)`. */
int st_err_set(struct st_err *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
