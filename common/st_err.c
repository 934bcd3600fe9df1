/* Error names and the st_err record. */
#include "st_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const st_err_names[] = {
    [ST_ECONF - ST_E_BASE] = "bad configuration",
    [ST_EPARSE - ST_E_BASE] = "malformed input",
    [ST_ESCHEMA - ST_E_BASE] = "schema violation",
    [ST_ENOTFOUND - ST_E_BASE] = "not found",
    [ST_EUNIQUE - ST_E_BASE] = "unique constraint violation",
    [ST_EFOREIGN - ST_E_BASE] = "foreign key violation",
    [ST_EREFERENCED - ST_E_BASE] = "referenced by others",
    [ST_EPKEY - ST_E_BASE] = "primary key violation",
    [ST_EDB - ST_E_BASE] = "database error",
    [ST_EHASH - ST_E_BASE] = "hash mismatch",
    [ST_ETOOBIG - ST_E_BASE] = "payload too large",
    [ST_EUNSUPPORTED - ST_E_BASE] = "not supported",
    [ST_EDBDOWN - ST_E_BASE] = "database unreachable",
};

const char *
st_strerror(int rc)
{
    int code = rc < 0 ? -rc : rc;

    if (code > ST_E_BASE && code < ST_E_LAST) {
        return st_err_names[code - ST_E_BASE];
    }
    if (code == 0) {
        return "success";
    }
    /* strerror is not thread-safe in theory, but glibc returns static strings for
     * known values, which is all we pass here. */
    return strerror(code);
}

int
st_err_set(struct st_err *e, int code, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL) {
        return code;
    }
    e->code = code;
    if (snprintf(e->field, sizeof(e->field), "%s", field ? field : "") < 0) {
        e->field[0] = '\0';
    }
    va_start(ap, fmt);
    if (vsnprintf(e->msg, sizeof(e->msg), fmt, ap) < 0) {
        e->msg[0] = '\0';
    }
    va_end(ap);
    return code;
}
