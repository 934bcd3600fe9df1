/* The entities as the data plane uses them: plain, read-only C structs decoded
 * from a snapshot. Strings point into memory owned by the snapshot. */
#ifndef STRAIT_ST_ENTITY_H
#define STRAIT_ST_ENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_cidr.h"

enum st_entity_kind {
    ST_ENT_SERVICE = 0,
    ST_ENT_ROUTE,
    ST_ENT_CERTIFICATE,
    ST_ENT_SNI,
    ST_ENT_CA_CERTIFICATE,
    ST_ENT__COUNT,
};

/* "services", "routes", "certificates", "snis", "ca_certificates": the admin API
 * collection and the table name. */
const char *st_entity_name(enum st_entity_kind k);

/* Route and service protocols as flags. */
#define ST_PROTO_TCP             (1u << 0)
#define ST_PROTO_TLS             (1u << 1)
#define ST_PROTO_TLS_PASSTHROUGH (1u << 2)
#define ST_PROTO_UDP             (1u << 3)

/* Parses "tcp", "tls", "tls_passthrough", "udp" to a flag; 0 if unknown. */
unsigned st_proto_parse(const char *name);

struct st_certificate {
    const char *id;
    int64_t created_at_ms;
    const char *cert;     /* PEM, leaf first then chain */
    const char *key;      /* PEM */
    const char *cert_alt; /* NULL: none */
    const char *key_alt;  /* NULL: none */
};

struct st_sni {
    const char *id;
    const char *name; /* exact, "*.x", "x.*", or "*" */
    const char *certificate_id;
    const struct st_certificate *certificate; /* resolved */
};

struct st_ca_certificate {
    const char *id;
    const char *cert; /* PEM, one certificate */
    const char *cert_digest;
};

struct st_service {
    const char *id;
    const char *name; /* NULL: none */
    int64_t created_at_ms;
    unsigned protocol; /* one ST_PROTO_* */
    const char *host;
    uint16_t port;
    uint32_t connect_timeout; /* ms */
    uint32_t read_timeout;    /* ms */
    uint32_t write_timeout;   /* ms */
    uint32_t retries;
    bool enabled;
    int tls_verify;                                   /* -1: unset, 0: off, 1: on */
    int tls_verify_depth;                             /* -1: unset */
    const struct st_ca_certificate **ca_certificates; /* resolved, in the user's order */
    size_t n_ca_certificates;
    const struct st_certificate *client_certificate; /* NULL: none */
};

struct st_endpoint {
    bool has_ip;
    struct st_cidr ip;
    bool has_port;
    uint16_t port;
};

struct st_route {
    const char *id;
    const char *name; /* NULL: none */
    int64_t created_at_ms;
    unsigned protocols; /* ST_PROTO_* flags */
    struct st_endpoint *sources;
    size_t n_sources;
    struct st_endpoint *destinations;
    size_t n_destinations;
    const char **snis;
    size_t n_snis;
    bool preserve_host;
    const char *service_id;           /* NULL: none */
    const struct st_service *service; /* resolved by id, NULL if none */
};

#endif
