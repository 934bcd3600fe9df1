/* OpenSSL's contexts on the data path: the server contexts that terminate TLS (one per
 * certificate entity, chosen by SNI, plus the default certificate), the client contexts
 * that speak TLS to `tls` services, and the process-wide session ticket key ring.
 * Contexts are built on the sync thread with the runtime and are read-only afterwards;
 * workers only start connections on them (dp_xprt_tls). OpenSSL's types stay opaque
 * here: callers need not include OpenSSL. */
#ifndef STRAIT_DP_TLS_H
#define STRAIT_DP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct st_conf;
struct st_err;
struct st_service;
struct st_snapshot;
struct dp_tls_certs;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct ssl_st;     /* OpenSSL's SSL */

/* How long a ticket key encrypts new tickets before the next one takes over; the
 * previous key still decrypts (and the ticket is renewed) for one more period. */
#define DP_TLS_TICKET_ROTATE_MS (12 * 3600 * 1000LL)

/* Process-wide set-up, once, before any runtime is built: the protocol range and
 * ciphers from ssl_protocols and ssl_cipher_suite, ssl_session_tickets, the first
 * ticket keys and, when a stream listener has the ssl flag, the default certificate
 * (ssl_cert/ssl_cert_key, or an RSA and an ECDSA self-signed pair with CN=localhost
 * generated into PREFIX/ssl/ and reused on later starts). ticket_rotate_ms: 0 for
 * DP_TLS_TICKET_ROTATE_MS (tests shorten it). Returns 0 or a negative code with err filled (field =
 * the conf key at fault). */
int dp_tls_init(const struct st_conf *conf, int64_t ticket_rotate_ms, struct st_err *err);

/* Frees the process-wide state (after every runtime is gone). */
void dp_tls_fini(void);

/* The server contexts of one snapshot's certificates and SNIs. Contexts are shared
 * with earlier builds when the certificate's id and content are unchanged (SSL_CTX
 * refcounts), so a configuration change rebuilds only what changed. A certificate the
 * DP cannot load is logged and left out (its SNIs fall through to the next rule).
 * Returns 0 and *out, or a negative code with err filled. */
int dp_tls_certs_new(const struct st_snapshot *snap, struct dp_tls_certs **out, struct st_err *err);

void dp_tls_certs_free(struct dp_tls_certs *c);

/* The context to terminate a handshake for `sni`, in Kong's order: exact name,
 * "*.<rest>" (first label replaced, only for 3+ labels), "<prefix>.*" (last label
 * replaced), the "*" SNI, then the default certificate; a client without SNI (NULL)
 * gets the default certificate, as in Kong. NULL only on a process without ssl
 * listeners (nothing to terminate) or before dp_tls_init (unit tests). Lock-free; the
 * context lives as long as c. */
struct ssl_ctx_st *dp_tls_certs_select(const struct dp_tls_certs *c, const char *sni);

/* The client context for a `tls` service: verification per tls_verify (off when
 * unset, as Kong), tls_verify_depth (1 when unset, as Kong's lua_ssl_verify_depth),
 * ca_certificates (the system store when none), client_certificate. Returns 0 and *out
 * (one reference), or a negative code with err filled. */
int dp_tls_upstream_ctx_new(const struct st_service *svc, struct ssl_ctx_st **out,
                            struct st_err *err);

/* Readies ssl (from the upstream context) for a connection: SNI `name` (none when name is
 * NULL or an IP literal, as nginx) and, when the context verifies, the name (or IP) the
 * upstream's certificate must carry. Returns 0 or -ENOMEM. */
int dp_tls_upstream_prepare(struct ssl_st *ssl, const char *name);

/* Number of ticket key rotations since start (for /status). */
uint64_t dp_tls_ticket_rotations(void);

/* A context's reference count (SSL_CTX_up_ref, SSL_CTX_free): the runtime shares one
 * upstream context between services with the same settings. Unref of NULL: no-op. */
void dp_tls_ctx_ref(struct ssl_ctx_st *ctx);
void dp_tls_ctx_unref(struct ssl_ctx_st *ctx);

#endif
