/* OpenSSL on the data path: the server contexts that terminate TLS (one per certificate
 * entity, chosen by SNI, plus the default certificate), the client contexts that speak
 * TLS to `tls` services, the process-wide session ticket key ring, and the non-blocking
 * handshake of one socket. Contexts are built on the sync thread with the runtime and
 * are read-only afterwards; workers only call SSL_new() on them and dp_tls_handshake(). */
#ifndef STRAIT_DP_TLS_H
#define STRAIT_DP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "dp_verdict.h"

struct st_conf;
struct st_err;
struct st_service;
struct st_snapshot;
struct dp_sock;
struct dp_tls_certs;

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
SSL_CTX *dp_tls_certs_select(const struct dp_tls_certs *c, const char *sni);

/* The client context for a `tls` service: verification per tls_verify (off when
 * unset, as Kong), tls_verify_depth (1 when unset, as Kong's lua_ssl_verify_depth),
 * ca_certificates (the system store when none), client_certificate. Returns 0 and *out
 * (one reference), or a negative code with err filled. */
int dp_tls_upstream_ctx_new(const struct st_service *svc, SSL_CTX **out, struct st_err *err);

/* Readies ssl (from the upstream context) for a connection: SNI `name` (none when name is
 * NULL or an IP literal, as nginx) and, when the context verifies, the name (or IP) the
 * upstream's certificate must carry. Returns 0 or -ENOMEM. */
int dp_tls_upstream_prepare(SSL *ssl, const char *name);

/* Advances the handshake of k->ssl (accept or connect state already set) without
 * blocking. DP_NEXT: done; DP_AGAIN: waiting for readiness (k's rd_ready / wr_ready
 * cleared as OpenSSL asks); DP_ERROR: failed, with a short reason in why (static or
 * from OpenSSL's error queue, e.g. "certificate verify failed: self-signed
 * certificate"), and OpenSSL's error queue cleared. */
enum dp_verdict dp_tls_handshake(struct dp_sock *k, char *why, size_t size);

/* Number of ticket key rotations since start (for /status). */
uint64_t dp_tls_ticket_rotations(void);

#endif
