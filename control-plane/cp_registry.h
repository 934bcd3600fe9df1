/* The data-plane registry: which DPs talk to this CP, in memory, behind a mutex.
 * cp_sync feeds it from every SyncRequest; the admin API reads it. An entry not
 * refreshed for the purge delay (Kong's cluster_data_plane_purge_delay) is dropped.
 * On Postgres, cp_registry_share copies the changes into the database, so that every
 * CP's admin API lists the DPs of all of them. */
#ifndef STRAIT_CP_REGISTRY_H
#define STRAIT_CP_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cp_registry;
struct st_sync_req;

/* How the CP judged a DP's request (Kong's CLUSTERING_SYNC_STATUS; apply_failed, Strait's
 * own, is derived from the request's last_error when the DP is compatible). */
enum cp_registry_sync {
    CP_REGISTRY_SYNC_NORMAL = 0,
    CP_REGISTRY_SYNC_VERSION_INCOMPATIBLE, /* "kong_version_incompatible" */
};

/* The purge delay is 1209600 s (Kong's default) until cp_registry_set_purge_delay(); the
 * test knob STRAIT_TEST_PURGE_DELAY_MS (environment, milliseconds, at least 1), read here,
 * overrides both. */
struct cp_registry *cp_registry_new(void);
void cp_registry_free(struct cp_registry *r);

/* cluster_data_plane_purge_delay */
void cp_registry_set_purge_delay(struct cp_registry *r, int64_t seconds);

/* The most entries the registry keeps: 65536 by default (0 counts as 1). */
void cp_registry_set_max(struct cp_registry *r, size_t max);

/* Records a request from the DP at ip (text). Adds or refreshes the entry for
 * req->dp_id; last_seen = now; sync_status from status, or apply_failed when status is
 * NORMAL and req->last_error is set. why (may be NULL) is kept as sync_error for an
 * incompatible DP; an apply_failed DP's sync_error is its last_error. A goodbye removes
 * the entry instead. A new id in a full registry (cp_registry_set_max) replaces the
 * entry whose last request is the oldest, as if that DP had said goodbye (logged at
 * warn, at most once a minute): the DP is still served, and listed again at its next
 * request. */
void cp_registry_seen(struct cp_registry *r, const struct st_sync_req *req, const char *ip,
                      enum cp_registry_sync status, const char *why);

void cp_registry_remove(struct cp_registry *r, const char *id);

/* Kong's /clustering/data-planes list, sorted by id: a new array of at most `size`
 * entries whose id sorts after `after` (NULL: from the first), each
 * {id, ip, hostname, version, sync_status, sync_error, config_hash, last_seen, updated_at,
 * ttl, labels, cert_details}. shared (may be NULL) holds records of the registry the CPs
 * on the database share (cp_store_dps_page: at least the first size + 1 after `after`):
 * they join this CP's entries seen in the last 5 s (older ones are in the records: this
 * CP saved them), and of two entries for one DP the one seen last wins.
 * *more (may be NULL) is set when entries follow the page. */
json_t *cp_registry_list(struct cp_registry *r, const json_t *shared, const char *after,
                         size_t size, bool *more);

/* Each listed DP's last health report (SyncRequest.upstream_health, parsed), over this
 * CP's entries and the shared records (may be NULL): a new object {dp_id: report or
 * null}, null for a DP that reports none. */
json_t *cp_registry_health(struct cp_registry *r, const json_t *shared);

/* Kong's deprecated /clustering/status map {id: {config_hash, hostname, ip, last_seen}},
 * over this CP's entries and the shared records (may be NULL). */
json_t *cp_registry_status(struct cp_registry *r, const json_t *shared);

int64_t cp_registry_purge_ms(struct cp_registry *r);

/* For the shared registry (cp_registry_share.h): the records of the entries that changed
 * since the last call ({"id", "last_seen_ms", "doc"}, doc in Kong's shape without ttl) and
 * the goodbyes since ({"id", "at_ms"}), as two new arrays. Goodbyes are kept from the
 * first call on (a registry nobody takes from keeps none). */
void cp_registry_take(struct cp_registry *r, json_t **seen, json_t **gone);

/* ------------------------------------------------------------------------- */
/* wait_for_sync (cp_sync_wait.h) */

/* Run with the registry locked after every request that touched an entry (and after a
 * goodbye or cp_registry_remove). It must be short and must not call the registry. */
typedef void cp_registry_change_fn(void *arg);

/* Sets the change callback (fn NULL: none). Once this returns, a previous callback is
 * neither running nor will run again. */
void cp_registry_on_change(struct cp_registry *r, cp_registry_change_fn *fn, void *arg);

/* What each DP seen at or after since_ms (unix ms; 0: every entry) last reported: a new
 * object {id: {"config_hash": hash, "sync_status": "normal" | "apply_failed" |
 * "kong_version_incompatible", "last_seen_ms": unix ms}}. */
json_t *cp_registry_acks(struct cp_registry *r, int64_t since_ms);

#endif
