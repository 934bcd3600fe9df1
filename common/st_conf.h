/* strait.conf and STRAIT_<KEY> environment loading: one table drives parsing,
 * the environment override, the unknown-key error, --help and docs. */
#ifndef STRAIT_ST_CONF_H
#define STRAIT_ST_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "st_addr.h"
#include "st_log.h"

struct st_err;

enum st_plane {
    ST_PLANE_CP = 1,
    ST_PLANE_DP = 2,
    ST_PLANE_BOTH = 3,
};

enum st_mtls {
    ST_MTLS_SHARED = 0,
    ST_MTLS_PKI,
    ST_MTLS_OFF,
};

/* The loaded configuration. Strings are owned by the struct (NULL: unset). */
struct st_conf {
    char *prefix;    /* -p, default /usr/local/strait */
    char *conf_path; /* -c, or NULL */

    /* control plane */
    struct st_listen_set admin_listen;
    char *database; /* "sqlite" | "postgres" */
    char *sqlite_path;
    bool sqlite_synchronous_full; /* sqlite_synchronous = full */
    char *pg_host;
    int pg_port;
    char *pg_user, *pg_password, *pg_database;
    bool pg_ssl;
    bool pg_ssl_verify; /* sslmode verify-full instead of require */
    char *pg_ssl_ca;
    int pg_pool_size;
    int pg_timeout;
    struct st_listen_set cluster_listen;
    char *admin_ssl_cert, *admin_ssl_cert_key; /* for `ssl` admin listeners */
    char *admin_ssl_client_ca;                 /* ssl admin listeners require client certs */
    char *admin_token;                         /* every admin request must carry it */
    bool admin_allow_insecure;
    int admin_max_connections, admin_max_connections_per_ip;
    int admin_header_timeout;      /* s, absolute, from accept to a whole request head */
    int cluster_handshake_timeout; /* s, absolute, from accept to a verified pipe */
    int cluster_max_pending;       /* cluster connections still in their handshake */
    int64_t cluster_data_plane_purge_delay;

    /* data plane */
    char *cluster_control_plane; /* "host:port[,host:port...]" */
    char *cluster_dp_labels;
    struct st_listen_set stream_listen;
    char *ssl_cert, *ssl_cert_key;
    char *ssl_protocols, *ssl_cipher_suite;
    bool ssl_session_tickets;
    char *trusted_ips;
    struct st_listen_set status_listen;
    int status_max_connections;
    int stream_max_sessions; /* 0: auto, derived from the descriptor limit at start */
    int worker_processes;    /* resolved: "auto" -> number of cores */
    int preread_timeout;     /* ms */
    int drain_timeout;       /* s */
    /* DNS (dp_dns.c): Kong's keys; TTLs in s, dns_valid_ttl 0: unset */
    char *dns_resolver, *dns_hostsfile, *dns_order;
    int dns_valid_ttl, dns_stale_ttl, dns_not_found_ttl, dns_error_ttl;

    /* both */
    char *plugins; /* NULL: unset (bundled) */
    char *cluster_cert, *cluster_cert_key, *cluster_ca_cert;
    enum st_mtls cluster_mtls;
    char *cluster_server_name;
    int64_t cluster_max_payload;
    int cluster_heartbeat; /* s */
    enum st_log_level log_level;

    char **raw; /* text value of each table key, in table order (for GET /) */
};

/* Loads defaults, then the file at conf_path (NULL: no file), then STRAIT_<KEY>
 * variables for keys in the table, then checks the keys of `plane` (e.g. cluster
 * certificates unless cluster_mtls = off). prefix NULL means the default. Keys of the
 * other plane are parsed but not required. Nothing is left in *c on failure.
 * Returns 0, or -ST_ECONF with err->msg like "strait.conf:12: stream_listen: unknown
 * flag 'sssl'" and err->field the key. Release with st_conf_fini(). */
int st_conf_load(struct st_conf *c, const char *conf_path, const char *prefix, enum st_plane plane,
                 struct st_err *err);

void st_conf_fini(struct st_conf *c);

/* Prints the keys of `plane` with defaults and one-line descriptions (for --help). */
void st_conf_print_keys(FILE *f, enum st_plane plane);

/* Iterates the table: for i = 0.., returns the key name and sets *value to the current
 * value as text, or returns NULL past the end. Secrets (passwords, keys) come back as
 * NULL values, so GET / can show the configuration safely. */
const char *st_conf_key_at(const struct st_conf *c, size_t i, const char **value, bool *is_secret);

/* Whether admin listener l of c is exposed: bound to an address other than loopback
 * without both the `ssl` flag and an authentication (admin_token, or admin_ssl_client_ca,
 * which only an ssl listener can check). When exposed, *missing (if not NULL) names what
 * is lacking as a static phrase ("the ssl flag and admin_token or admin_ssl_client_ca").
 * st_conf_load refuses an exposed listener unless admin_allow_insecure is on. */
bool st_conf_admin_is_exposed(const struct st_conf *c, const struct st_listen *l,
                              const char **missing);

#endif
