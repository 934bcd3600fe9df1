/* The admin API's HTTP server (libmicrohttpd, a small thread pool per admin_listen
 * entry). Collects each request body (decoding multipart/form-data with libmicrohttpd's
 * post processor) and hands the request to cp_admin. The only CP file that includes
 * microhttpd.h. */
#ifndef STRAIT_CP_HTTP_H
#define STRAIT_CP_HTTP_H

struct cp_ctx;
struct cp_http;
struct st_err;

/* Listens on every cx->conf.admin_listen entry. Refuses `ssl` entries (not built yet)
 * and, unless admin_allow_insecure, addresses other than loopback (-ST_ECONF). Returns
 * 0 and a running server, or a negative code with err filled (-errno when a bind fails). */
int cp_http_start(struct cp_ctx *cx, struct cp_http **out, struct st_err *err);

/* Stops accepting, waits for in-flight requests, frees everything. NULL is a no-op. */
void cp_http_stop(struct cp_http *h);

#endif
