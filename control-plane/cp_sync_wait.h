/* wait_for_sync (issue 7): an admin write that asks to wait until the data planes have
 * applied it. A waiter remembers the config version the write committed and the DPs
 * connected at that moment (seen within a window, not said goodbye); it ends when each
 * of them has acknowledged the configuration of that version or a later one (its
 * SyncRequest carries that hash and no apply error), or has left (goodbye), or when its
 * deadline passes. One thread per instance does the waiting: the registry wakes it when a
 * DP reports, a timed wait serves the deadlines, and nothing else ever blocks (cp_http
 * suspends the connection meanwhile). With a shared registry (cp_sync_wait_share) the
 * DPs of the other CPs on the database count too; their reports are read every
 * CP_SYNC_WAIT_SHARED_MS while waits are open. No HTTP here: the caller gets a callback. */
#ifndef STRAIT_CP_SYNC_WAIT_H
#define STRAIT_CP_SYNC_WAIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cp_registry;
struct cp_snapshot;
struct cp_sync_wait;

/* The longest wait a write may ask for (?wait_for_sync=SECONDS). */
#define CP_SYNC_WAIT_MAX_S 300

/* A DP still pending when a wait ended. failed: its last report was not `normal`
 * (apply_failed, or refused as incompatible). */
struct cp_sync_wait_dp {
    const char *id;
    bool failed;
    bool remote; /* known through the shared registry (another CP's DP) */
};

/* How a wait ended; valid only during the callback. */
struct cp_sync_wait_result {
    size_t n_waited;  /* DPs connected when the write was made (0: answered at once) */
    size_t n_pending; /* of them, those that had not acknowledged (0: all did) */
    const struct cp_sync_wait_dp *pending; /* sorted by id */
    int64_t waited_ms;
};

/* Runs exactly once per cp_sync_wait_add, on the adding thread or the waiter thread. */
typedef void cp_sync_wait_done_fn(void *arg, const struct cp_sync_wait_result *res);

/* Starts the waiter thread and hooks it to reg's change callback (cp_registry_on_change:
 * one user at a time). A DP counts as connected when reg saw it within window_ms. reg and
 * snap must outlive the instance. Returns 0 and *out, or -errno (no thread). */
int cp_sync_wait_start(struct cp_registry *reg, struct cp_snapshot *snap, int64_t window_ms,
                       struct cp_sync_wait **out);

/* The reports of the DPs of the other CPs on the database (the shared registry): a new
 * object {id: {"config_hash", "sync_status", "last_seen_ms"}} of the DPs seen since
 * since_ms (unix ms), or NULL when it cannot be read now (the database is away). */
typedef json_t *cp_sync_wait_shared_fn(void *arg, int64_t since_ms);

/* Makes waits cover the DPs of every CP sharing the registry: a DP counts as connected,
 * and acknowledges, through whichever CP it talks to (the report seen last wins). The
 * waiter thread reads fn every CP_SYNC_WAIT_SHARED_MS while waits are open; when fn
 * fails it keeps the last answer. Call once, before the first add. */
#define CP_SYNC_WAIT_SHARED_MS 250
void cp_sync_wait_share(struct cp_sync_wait *w, cp_sync_wait_shared_fn *fn, void *arg);

/* Waits, up to timeout_ms, for the DPs connected now to acknowledge config version
 * `version` (or a later one; 0: whatever the current snapshot is). The waiter thread
 * builds the snapshot of that version first when the builder has not yet
 * (cp_snapshot_refresh). fn(arg, result) runs once: before this returns when no DP is
 * connected or the instance is stopped, otherwise later on the waiter thread. */
void cp_sync_wait_add(struct cp_sync_wait *w, uint64_t version, int64_t timeout_ms,
                      cp_sync_wait_done_fn *fn, void *arg);

/* Ends every wait now (their callbacks run with the DPs still pending), joins the thread
 * and unhooks the registry. Later adds answer at once. Idempotent; NULL is a no-op. */
void cp_sync_wait_stop(struct cp_sync_wait *w);

void cp_sync_wait_free(struct cp_sync_wait *w);

#endif
