/* The data-plane registry: which DPs talk to this CP, in memory, behind a mutex.
 * cp_sync feeds it from every SyncRequest; the admin API reads it. */
#ifndef STRAIT_CP_REGISTRY_H
#define STRAIT_CP_REGISTRY_H

#include <jansson.h>

struct cp_registry;
struct st_sync_req;

/* Returns a new empty registry (st_xmalloc: never NULL); free with cp_registry_free(). */
struct cp_registry *cp_registry_new(void);
void cp_registry_free(struct cp_registry *r);

/* Records a request from the DP at ip (text). Adds or refreshes the entry for
 * req->dp_id; last_seen = now. A goodbye removes the entry instead. */
void cp_registry_seen(struct cp_registry *r, const struct st_sync_req *req, const char *ip);

/* Removes the entry for id, if any. */
void cp_registry_remove(struct cp_registry *r, const char *id);

/* Kong's /clustering/data-planes list: a new array of
 * {id, ip, hostname, version, sync_status, config_hash, last_seen, labels, cert_details}. */
json_t *cp_registry_list(struct cp_registry *r);

/* Kong's deprecated /clustering/status map {id: {config_hash, hostname, ip, last_seen}}. */
json_t *cp_registry_status(struct cp_registry *r);

#endif
