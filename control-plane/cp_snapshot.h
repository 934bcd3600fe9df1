/* The CP's current snapshot: built with st_snapshot_build from one consistent read of
 * the store whenever the store's config version changes, kept encoded in memory (so DPs
 * are served while the database is away), and shared with the sync server. */
#ifndef STRAIT_CP_SNAPSHOT_H
#define STRAIT_CP_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cp_store;
struct st_err;
struct cp_snapshot;

/* One built snapshot, immutable and refcounted. */
struct cp_snapshot_blob {
    uint64_t version;
    char hash[65];
    uint8_t *bytes; /* the encoded Snapshot */
    size_t len;
    int refs; /* atomic */
};

typedef void cp_snapshot_changed_fn(void *arg);

/* Takes ownership of `store` (a handle only the builder uses) and builds the first
 * snapshot before returning. Returns 0 and a new builder (cp_snapshot_free), or a negative
 * code with err filled. */
int cp_snapshot_new(struct cp_store *store, struct cp_snapshot **out, struct st_err *err);

/* Sets the callback run (on the builder thread) after a new snapshot is published. */
void cp_snapshot_on_change(struct cp_snapshot *sn, cp_snapshot_changed_fn *fn, void *arg);

/* Returns 0 or -errno. */
int cp_snapshot_start(struct cp_snapshot *sn);

/* Tells the builder that something committed; bursts of kicks coalesce into one
 * rebuild. The builder also checks the store's version every few seconds. */
void cp_snapshot_kick(struct cp_snapshot *sn);

/* Rebuilds now on the calling thread if the version changed (tests, start-up). */
int cp_snapshot_refresh(struct cp_snapshot *sn);

/* The current snapshot with a reference the caller drops with cp_snapshot_blob_unref(). */
struct cp_snapshot_blob *cp_snapshot_acquire(struct cp_snapshot *sn);
void cp_snapshot_blob_unref(struct cp_snapshot_blob *b);

/* ------------------------------------------------------------------------ */
/* the size a write leaves the snapshot at (issue 14) */

/* What a sync answer adds to the snapshot it carries (its fields and nng's header), kept
 * free under cluster_max_payload by every write. */
#define CP_SNAPSHOT_SEND_SLACK 256

/* A write's size check, for cp_snapshot_fit_commit. */
struct cp_snapshot_fit {
    uint64_t version; /* the store's version the transaction started from */
    size_t before;    /* the encoded snapshot at that version (an upper bound) */
    size_t after;     /* after the transaction (an upper bound) */
    bool wrote;       /* the commit will bump the version */
};

/* Inside st's write transaction, before its commit: whether the snapshot the commit
 * would make fits a data plane that takes max bytes (cluster_max_payload), with
 * CP_SNAPSHOT_SEND_SLACK to spare. The size at the store's version comes from the last
 * build or from this CP's writes since (cp_snapshot_fit_commit), else (another CP or
 * `strait-cp config db_import` wrote) from a rebuild on the calling thread; the rest from
 * what the transaction wrote (cp_store_growth), so an ordinary write encodes only its own
 * entity. A write that does not grow the snapshot always fits (the operator's way back
 * under a lowered limit). Returns 0 and *f, -ST_ETOOBIG with err->msg naming both sizes
 * (and *f), or a store error. */
int cp_snapshot_fit(struct cp_snapshot *sn, struct cp_store *st, int64_t max,
                    struct cp_snapshot_fit *f, struct st_err *err);

/* After the transaction of f committed: remembers the size for the version its commit
 * made, so that the next write needs no rebuild. */
void cp_snapshot_fit_commit(struct cp_snapshot *sn, const struct cp_snapshot_fit *f);

/* Stops and joins the builder thread (no more change callbacks). Idempotent. */
void cp_snapshot_stop(struct cp_snapshot *sn);

/* Stops the thread if needed, then frees the builder and its store. */
void cp_snapshot_free(struct cp_snapshot *sn);

#endif
