/* OpenSSL helpers for boot and CP code: hashes, randomness, UUIDs, the cluster
 * certificate pair. The DP's TLS data path lives in dp_xprt_tls. */
#ifndef STRAIT_ST_SSL_H
#define STRAIT_ST_SSL_H

#include <stddef.h>
#include <stdint.h>

struct st_err;

/* SHA-256 of n bytes as 64 lower-case hex digits plus NUL. */
void st_ssl_sha256_hex(const void *p, size_t n, char out[65]);

/* Cryptographically random bytes. Returns 0 or -ST_EPARSE-free negative on failure. */
int st_ssl_random(void *p, size_t n);

/* A random (version 4) UUID in canonical lower-case form. Returns 0 or negative. */
int st_ssl_uuid(char out[37]);

/* Writes a self-signed EC P-384 certificate with CN "strait_clustering", valid `days`
 * days, to cert_path and key_path (key 0600). Refuses to overwrite existing files.
 * Returns 0 or negative with err filled. */
int st_ssl_gen_cluster_cert(const char *cert_path, const char *key_path, int days,
                            struct st_err *err);

/* Reads the notAfter of the first certificate in a PEM file as unix seconds.
 * Returns 0 or negative with err filled. */
int st_ssl_cert_expiry(const char *cert_path, int64_t *expiry, struct st_err *err);

#endif
