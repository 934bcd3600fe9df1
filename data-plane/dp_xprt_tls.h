/* The TLS transport (see dp_xprt.h): every byte through OpenSSL, never spliced, with
 * OpenSSL's want-read/want-write kept in the socket's readiness flags (Redis tls.c).
 * The contexts it starts from are dp_tls's (built on the sync thread); this module
 * drives one connection on a worker. */
#ifndef STRAIT_DP_XPRT_TLS_H
#define STRAIT_DP_XPRT_TLS_H

#include <stdbool.h>

#include "dp_xprt.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

extern const struct dp_xprt_ops dp_xprt_tls;

/* Switches the plain socket k to TLS as the server, on ctx (dp_runtime_server_ctx):
 * the handshake then runs through k->xprt->handshake. Returns 0, or -ENOMEM with k
 * left plain and OpenSSL's error queue cleared. */
int dp_xprt_tls_accept(struct dp_sock *k, struct ssl_ctx_st *ctx);

/* Switches the plain, connected socket k to TLS as the client, on a service's context
 * (dp_tls_upstream_ctx_new), with SNI and the name to verify from `name`
 * (dp_tls_upstream_prepare). Returns 0, or -ENOMEM with k left plain and OpenSSL's
 * error queue cleared. */
int dp_xprt_tls_connect(struct dp_sock *k, struct ssl_ctx_st *ctx, const char *name);

/* After the handshake: the protocol version ("TLSv1.3"; static), and whether the
 * session was resumed. */
const char *dp_xprt_tls_version(const struct dp_sock *k);
bool dp_xprt_tls_is_resumed(const struct dp_sock *k);

#endif
