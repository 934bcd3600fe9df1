/* OpenSSL helpers for boot and CP code: hashes, a constant-time compare, randomness,
 * UUIDs, the cluster certificate pair, Kong's PEM checks of the certificate entities
 * (st_schema), and OpenSSL's error queue as text. The DP's TLS lives in dp_tls (contexts)
 * and dp_xprt_tls (the transport). */
#ifndef STRAIT_ST_SSL_H
#define STRAIT_ST_SSL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct st_err;

/* OpenSSL's pem_password_cb that refuses: an encrypted key fails to load instead of
 * prompting on the terminal. Pass it to every PEM_read_bio_* call. */
int st_ssl_no_passphrase(char *buf, int size, int rwflag, void *u);

/* Flags of st_ssl_reason(). */
#define ST_SSL_REASON_FIRST (1u << 0) /* the oldest error queued, not the last (most specific) */
#define ST_SSL_REASON_SHORT                                                                        \
    (1u << 1) /* the reason alone ("no start line"), not OpenSSL's                                 \
               * line ("error:0480006C:PEM routines::no start line") */

/* One error of the calling thread's OpenSSL error queue as text, into buf (size bytes):
 * the last one queued (ST_SSL_REASON_FIRST: the first), or dflt when the queue is empty.
 * Clears the queue. Returns buf, for messages. */
const char *st_ssl_reason(char *buf, size_t size, unsigned flags, const char *dflt);

/* SHA-256 of n bytes, raw and as 64 lower-case hex digits plus NUL. */
void st_ssl_sha256(const void *p, size_t n, uint8_t out[32]);
void st_ssl_sha256_hex(const void *p, size_t n, char out[65]);

/* Whether n bytes at a and b are equal, in time that does not depend on where they
 * differ (secrets: tokens, digests). */
bool st_ssl_memeq(const void *a, const void *b, size_t n);

/* Cryptographically random bytes. Returns 0, or -EIO when OpenSSL cannot make them. */
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

/* What st_schema needs to know about PEM certificate text. */
struct st_ssl_cert_info {
    size_t n_certs;    /* certificates in the text (leaf first) */
    int key_type;      /* the leaf's public key type: compare only (an OpenSSL id) */
    bool is_ca;        /* the leaf has the "CA" basic constraint */
    int64_t not_after; /* the leaf's "Not After" time, unix seconds */
    char digest[65];   /* SHA-256 of the leaf's DER, lower-case hex */
};

/* Parses PEM text holding one or more certificates; every one must parse. Returns 0
 * and fills info, or -ST_EPARSE with msg set to Kong's text
 * "invalid certificate: x509.new: <OpenSSL reason>". */
int st_ssl_cert_parse(const char *pem, struct st_ssl_cert_info *info, char *msg, size_t size);

/* Parses a PEM private key (never prompts for a passphrase: an encrypted key fails).
 * Returns 0, or -ST_EPARSE with msg set to Kong's text
 * "invalid key: pkey.new:load_key: <OpenSSL reason>". */
int st_ssl_key_parse(const char *pem, char *msg, size_t size);

/* True when key_pem is the private key of the first certificate of cert_pem. False
 * when they differ or either does not parse. */
bool st_ssl_key_matches(const char *cert_pem, const char *key_pem);

#endif
