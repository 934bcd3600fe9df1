/* The control plane's one context: what strait-cp start builds and every part reads.
 * The only mutable process state of the CP lives here (CONVENTIONS.md §13). */
#ifndef STRAIT_CP_CTX_H
#define STRAIT_CP_CTX_H

#include <pthread.h>
#include <stdint.h>

#include "st_conf.h"

struct cp_store_pool;
struct cp_snapshot;
struct cp_registry;
struct cp_sync;
struct cp_http;
struct cp_pg_listen;

/* Admin API connection counters (GET /status), updated with __atomic builtins. */
struct cp_server_stats {
    uint64_t accepted;
    uint64_t active;
    uint64_t handled;
    uint64_t requests;
};

struct cp_ctx {
    struct st_conf conf;
    struct cp_store_pool *pool; /* the admin API's store handles (cp_store_pool.h) */
    struct cp_snapshot *snap;   /* may be NULL in unit tests */
    struct cp_registry *reg;
    struct cp_sync *sync;
    struct cp_http *http;
    struct cp_pg_listen *pg_listen;      /* Postgres only: LISTEN -> snapshot kick */
    struct cp_registry_share *reg_share; /* Postgres only: the registry CPs share */
    char node_id[37];
    char hostname[256];
    struct cp_server_stats stats;
    /* POST /config?check_hash=1 (under config_mu): the SHA-256 of the text the last
     * successful POST /config loaded ("" before one) and the config version its commit
     * made; the same text again while the version has not moved is a 304. */
    pthread_mutex_t config_mu;
    char config_sha[65];
    uint64_t config_version;
    /* GET /status: set when its last database probe failed (__atomic); what it says when
     * every store handle stays busy past pg_timeout. */
    int db_unreachable;
};

#endif
