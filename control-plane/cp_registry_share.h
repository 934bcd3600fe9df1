/* Sharing the data-plane registry through the database (Postgres): several CPs serve
 * one fleet, and each CP's admin API lists the DPs of all of them, as Kong's
 * clustering_data_planes table does. A thread copies, once a second, the entries this
 * CP's registry changed and its goodbyes into the database, and purges rows older than
 * the purge delay; the admin API reads the rows back (cp_store_dps_page) and merges them
 * with this CP's own entries (cp_registry_list). */
#ifndef STRAIT_CP_REGISTRY_SHARE_H
#define STRAIT_CP_REGISTRY_SHARE_H

#include <jansson.h>
#include <stdint.h>

struct cp_registry;
struct cp_registry_share;
struct cp_store_pool;

/* Starts sharing reg through the pool's store, when that store is shared (Postgres):
 * *out is the share, stopped with cp_registry_share_stop(). With a store that is not
 * shared (SQLite) *out is NULL and nothing runs. Returns 0 or a negative errno. */
int cp_registry_share_start(struct cp_registry *reg, struct cp_store_pool *pool,
                            struct cp_registry_share **out);

/* What the DPs of the shared registry seen since since_ms (unix ms) last reported, for
 * wait_for_sync across CPs (a cp_sync_wait_shared_fn; arg is the share): a new object
 * {id: {"config_hash", "sync_status", "last_seen_ms"}}, or NULL when the database
 * cannot be read. */
json_t *cp_registry_share_acks(void *share, int64_t since_ms);

/* Saves what is left (the goodbyes of DPs that stopped with this CP) and stops. NULL is
 * a no-op. */
void cp_registry_share_stop(struct cp_registry_share *sh);

#endif
