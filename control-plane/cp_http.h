/* The admin API's HTTP server (libmicrohttpd, a small thread pool per admin_listen
 * entry, TLS through GnuTLS on `ssl` entries, the admin_token and client-certificate
 * checks before anything else). Collects each request body (decoding multipart/form-data with
 * libmicrohttpd's post processor) and hands the request to cp_admin. The only CP file that includes
 * microhttpd.h. */
#ifndef STRAIT_CP_HTTP_H
#define STRAIT_CP_HTTP_H

struct cp_ctx;
struct cp_http;
struct st_conf;
struct st_err;

/* Reads and parses the admin API's TLS files (admin_ssl_cert, admin_ssl_cert_key,
 * admin_ssl_client_ca) as cp_http_start will, when an admin_listen entry has `ssl`:
 * a file that does not parse, a key that does not match the certificate, or a CA file
 * without a certificate gives -ST_ECONF with err naming the key. Opens no socket. */
int cp_http_check(const struct st_conf *conf, struct st_err *err);

/* Listens on every cx->conf.admin_listen entry, TLS on `ssl` ones (after the checks of
 * cp_http_check). Every request must then carry cx->conf.admin_token when set, and on
 * ssl listeners a client certificate admin_ssl_client_ca signed when that is set;
 * otherwise 401 (or a failed handshake) and nothing runs. Which addresses may listen
 * was decided by st_conf_load; with admin_allow_insecure, one warning line is logged per
 * exposed listener. Returns 0 and a running server, or a negative code with err filled
 * (-ST_ECONF for the TLS files, -errno when a bind fails). */
int cp_http_start(struct cp_ctx *cx, struct cp_http **out, struct st_err *err);

/* Stops accepting, waits for in-flight requests, frees everything. NULL is a no-op. */
void cp_http_stop(struct cp_http *h);

#endif
