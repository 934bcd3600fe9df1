/* The admin API, Kong's conventions, without HTTP: cp_http hands over the method,
 * path, query, content type and body, and sends back the status and JSON it gets. */
#ifndef STRAIT_CP_ADMIN_H
#define STRAIT_CP_ADMIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct cp_ctx;

struct cp_request {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* decoded path, without the query */
    const json_t *query;      /* object of decoded query arguments (strings) */
    const char *content_type; /* NULL: none */
    int n_content_types;      /* how many Content-Type headers came */
    const char *body;
    size_t body_len;
    const json_t *parts;   /* a multipart/form-data body decoded by cp_http (an object
                            * as cp_form_decode makes), or NULL */
    const char *parts_err; /* why a multipart body could not be decoded, or NULL */
};

struct cp_response {
    int status;
    char *body;              /* malloc'd JSON text, or NULL for no body */
    const char *header_name; /* one extra header (static strings), or NULL */
    const char *header_value;
    /* ?wait_for_sync on a write that succeeded: wait_ms > 0 asks cp_http to hold the
     * answer until the data planes connected now have applied config version
     * sync_version (cp_sync_wait.h), at most wait_ms. */
    int64_t wait_ms;
    uint64_t sync_version;
};

/* Serves one request. Fills *rs; the caller frees rs->body. Thread-safe. */
void cp_admin_handle(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs);

#endif
