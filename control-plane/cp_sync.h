/* The sync server: nng rep0 behind cp_gate (which owns cluster_listen), long poll with
 * contexts, mutual TLS (shared or pki). The only CP file that includes nng.h. */
#ifndef STRAIT_CP_SYNC_H
#define STRAIT_CP_SYNC_H

#include <stdbool.h>

struct st_conf;
struct st_err;
struct cp_snapshot;
struct cp_registry;
struct cp_sync;

/* Listens on conf->cluster_listen (its one entry) through cp_gate, which bounds the
 * connections still in their handshake: `tls+tcp://` with conf->cluster_cert as own
 * certificate and only CA, or `tcp://` when cluster_mtls = off (warned). conf, sn and reg
 * must outlive the server. Returns 0 and a running server, or a negative code with err
 * filled. */
int cp_sync_start(const struct st_conf *conf, struct cp_snapshot *sn, struct cp_registry *reg,
                  struct cp_sync **out, struct st_err *err);

/* The configuration changed: answer every held request. Safe from any thread. */
void cp_sync_notify(struct cp_sync *sy);

/* Closes the socket, waits for every callback and frees everything; NULL is a no-op.
 * Returns true (NULL too), or false when nng would not close the socket in time (nng 1.5.2):
 * the instance is then left to nng, which may still call into it, so the configuration,
 * snapshot and registry it was started with must stay allocated. */
bool cp_sync_stop(struct cp_sync *sy);

/* For the snapshot builder's change callback: arg is a struct cp_sync *. */
void cp_sync_notify_cb(void *arg);

#endif
