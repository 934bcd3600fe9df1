/* Snapshot builder (see cp_snapshot.h): one thread waits for kicks (or a slow poll),
 * compares the store's config version with the published one and rebuilds on a change.
 * Publishing swaps a refcounted blob under the mutex, then runs the change callback so
 * cp_sync answers the requests it holds. */
#include "cp_snapshot.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_store.h"
#include "st_err.h"
#include "st_log.h"
#include "st_snapshot.h"
#include "st_util.h"

#define CP_SNAPSHOT_POLL_MS 5000

struct cp_snapshot {
    struct cp_store *store;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t build_mu; /* one build at a time */
    pthread_t thread;
    bool started;
    bool stop;
    bool kicked;
    struct cp_snapshot_blob *cur;
    cp_snapshot_changed_fn *on_change;
    void *on_change_arg;
    int64_t read_ms, build_ms;    /* of the last build (for its log line), under build_mu */
    size_t parsed;                /* rows the last read parsed (the others were cached) */
    struct cp_store_cache *cache; /* the last read's entities (build_mu) */
    /* the encoded size at the store's version known_version (under mu): the last build's,
     * or an upper bound a write of this CP left (cp_snapshot_fit_commit) */
    uint64_t known_version;
    size_t known_len;
};

void
cp_snapshot_blob_unref(struct cp_snapshot_blob *b)
{
    if (b != NULL && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        free(b->bytes);
        free(b);
    }
}

struct cp_snapshot_blob *
cp_snapshot_acquire(struct cp_snapshot *sn)
{
    struct cp_snapshot_blob *b;

    pthread_mutex_lock(&sn->mu);
    b = sn->cur;
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&sn->mu);
    return b;
}

/* Reads the store and builds; *out is NULL when the version did not change. */
static int
build(struct cp_snapshot *sn, uint64_t have, bool force, struct cp_snapshot_blob **out,
      struct st_err *err)
{
    struct cp_snapshot_blob *b;
    json_t *lists[ST_ENT__COUNT] = {NULL};
    uint64_t version = 0;
    int64_t t0, t1;
    int rc;

    *out = NULL;
    rc = cp_store_version(sn->store, &version);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "cannot read the config version");
    }
    if (!force && version == have) {
        return 0;
    }
    t0 = st_time_ms();
    rc = cp_store_read_all_cached(sn->store, sn->cache, &version, lists, &sn->parsed, NULL);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "cannot read the configuration");
    }
    t1 = st_time_ms();
    b = st_xcalloc(1, sizeof(*b));
    b->refs = 1;
    rc = st_snapshot_build(version, lists, &b->bytes, &b->len, b->hash, err);
    sn->read_ms = t1 - t0;
    sn->build_ms = st_time_ms() - t1;
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
    if (rc < 0) {
        cp_snapshot_blob_unref(b);
        return rc;
    }
    b->version = version;
    *out = b;
    return 0;
}

/* The line each new snapshot gets: what it cost (a read parses only the entities that
 * changed since the last one; the others come from the read cache). */
static void
log_built(const struct cp_snapshot *sn, const struct cp_snapshot_blob *b)
{
    st_log(ST_LOG_NOTICE, 0,
           "configuration version %llu, hash %s (%zu bytes; store read %lld ms, %zu entities "
           "parsed, build %lld ms)",
           (unsigned long long)b->version, b->hash, b->len, (long long)sn->read_ms, sn->parsed,
           (long long)sn->build_ms);
}

/* A size for a version (under mu): the newest version wins, and a build's exact size
 * replaces a write's estimate of the same version. */
static void
known_set(struct cp_snapshot *sn, uint64_t version, size_t len)
{
    if (version >= sn->known_version) {
        sn->known_version = version;
        sn->known_len = len;
    }
}

static void
publish(struct cp_snapshot *sn, struct cp_snapshot_blob *b)
{
    struct cp_snapshot_blob *old;

    pthread_mutex_lock(&sn->mu);
    old = sn->cur;
    sn->cur = b;
    known_set(sn, b->version, b->len);
    pthread_mutex_unlock(&sn->mu);
    log_built(sn, b);
    cp_snapshot_blob_unref(old);
    if (sn->on_change != NULL) {
        sn->on_change(sn->on_change_arg);
    }
}

int
cp_snapshot_refresh(struct cp_snapshot *sn)
{
    struct cp_snapshot_blob *b = NULL;
    struct st_err err = {0};
    uint64_t have;
    int rc;

    pthread_mutex_lock(&sn->build_mu);
    pthread_mutex_lock(&sn->mu);
    have = sn->cur->version;
    pthread_mutex_unlock(&sn->mu);
    rc = build(sn, have, false, &b, &err);
    if (rc < 0) {
        st_log(ST_LOG_ERR, 0, "snapshot not rebuilt: %s", err.msg);
    } else if (b != NULL) {
        publish(sn, b);
    }
    pthread_mutex_unlock(&sn->build_mu);
    return rc;
}

static void *
run(void *arg)
{
    struct cp_snapshot *sn = arg;

    pthread_mutex_lock(&sn->mu);
    while (!sn->stop) {
        if (!sn->kicked) {
            struct timespec ts;

            st_mono_deadline(CP_SNAPSHOT_POLL_MS, &ts);
            pthread_cond_timedwait(&sn->cv, &sn->mu, &ts);
        }
        if (sn->stop) {
            break;
        }
        sn->kicked = false;
        pthread_mutex_unlock(&sn->mu);
        cp_snapshot_refresh(sn);
        pthread_mutex_lock(&sn->mu);
    }
    pthread_mutex_unlock(&sn->mu);
    return NULL;
}

int
cp_snapshot_new(struct cp_store *store, struct cp_snapshot **out, struct st_err *err)
{
    struct cp_snapshot *sn = st_xcalloc(1, sizeof(*sn));
    struct cp_snapshot_blob *b;
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    sn->store = store;
    sn->cache = cp_store_cache_new();
    pthread_mutex_init(&sn->mu, NULL);
    pthread_mutex_init(&sn->build_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sn->cv, &ca);
    pthread_condattr_destroy(&ca);
    rc = build(sn, 0, true, &b, err);
    if (rc < 0) {
        cp_snapshot_free(sn);
        return rc;
    }
    publish(sn, b); /* no callback set yet */
    *out = sn;
    return 0;
}

/* The encoded size at version, if known (the last build's or a write's). */
static bool
known_get(struct cp_snapshot *sn, uint64_t version, size_t *len)
{
    bool ok;

    pthread_mutex_lock(&sn->mu);
    ok = sn->known_version == version;
    *len = sn->known_len;
    pthread_mutex_unlock(&sn->mu);
    return ok;
}

/* What a snapshot of `base` bytes at version `version` becomes when its entities change by
 * `growth` bytes (an upper bound): besides the entities, Config's length and the version
 * are varints that may take a byte more. Config's length is within
 * ST_SNAPSHOT_ENVELOPE_MAX of the whole. */
static size_t
size_after(size_t base, int64_t growth, uint64_t version)
{
    const int64_t sum = (int64_t)base + growth;
    size_t after = sum > 0 ? (size_t)sum : 0;
    size_t lo = base > ST_SNAPSHOT_ENVELOPE_MAX ? base - ST_SNAPSHOT_ENVELOPE_MAX : 0;
    size_t extra =
        st_snapshot_varint_size(after) - st_snapshot_varint_size(lo < after ? lo : after);

    return after + extra + st_snapshot_varint_size(version + 1) - st_snapshot_varint_size(version);
}

int
cp_snapshot_fit(struct cp_snapshot *sn, struct cp_store *st, int64_t max, struct cp_snapshot_fit *f,
                struct st_err *err)
{
    struct cp_store_growth g;
    size_t base = 0;
    int rc;

    memset(f, 0, sizeof(*f));
    cp_store_growth(st, &g);
    rc = cp_store_version(st, &f->version);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "cannot read the config version");
    }
    if (g.cleared) {
        base = ST_SNAPSHOT_ENVELOPE_MAX;
    } else if (!known_get(sn, f->version, &base)) {
        /* another CP or db_import wrote since: build what is committed (the caller holds
         * the write lock, so it is the version the transaction started from) */
        rc = cp_snapshot_refresh(sn);
        if (rc == 0 && !known_get(sn, f->version, &base)) {
            rc = -ST_EDB;
            st_log(ST_LOG_ERR, 0, "snapshot size: built a version other than %llu",
                   (unsigned long long)f->version);
        }
        if (rc < 0) {
            return st_err_set(err, rc, NULL, "cannot build the configuration to know its size");
        }
    }
    f->before = base;
    /* cleared: the envelope's varints are counted at their largest */
    f->after = g.cleared ? base + (g.bytes > 0 ? (size_t)g.bytes : 0)
                         : size_after(base, g.bytes, f->version);
    f->wrote = g.wrote;
    /* a write that does not grow the snapshot is let through even beyond the limit (the
     * limit was lowered under the configuration): it is how the operator gets back under */
    if ((int64_t)f->after + CP_SNAPSHOT_SEND_SLACK > max && (g.cleared || g.bytes > 0)) {
        return st_err_set(err, -ST_ETOOBIG, NULL,
                          "the configuration would be sent to data planes as %zu bytes (%zu now), "
                          "beyond cluster_max_payload (%lld bytes): raise cluster_max_payload on "
                          "the control plane and every data plane",
                          f->after + CP_SNAPSHOT_SEND_SLACK, f->before + CP_SNAPSHOT_SEND_SLACK,
                          (long long)max);
    }
    return 0;
}

void
cp_snapshot_fit_commit(struct cp_snapshot *sn, const struct cp_snapshot_fit *f)
{
    if (!f->wrote) {
        return;
    }
    pthread_mutex_lock(&sn->mu);
    known_set(sn, f->version + 1, f->after);
    pthread_mutex_unlock(&sn->mu);
}

void
cp_snapshot_on_change(struct cp_snapshot *sn, cp_snapshot_changed_fn *fn, void *arg)
{
    sn->on_change = fn;
    sn->on_change_arg = arg;
}

int
cp_snapshot_start(struct cp_snapshot *sn)
{
    int rc = pthread_create(&sn->thread, NULL, run, sn);

    sn->started = rc == 0;
    return -rc;
}

void
cp_snapshot_kick(struct cp_snapshot *sn)
{
    pthread_mutex_lock(&sn->mu);
    sn->kicked = true;
    pthread_cond_signal(&sn->cv);
    pthread_mutex_unlock(&sn->mu);
}

void
cp_snapshot_stop(struct cp_snapshot *sn)
{
    if (sn == NULL || !sn->started) {
        return;
    }
    pthread_mutex_lock(&sn->mu);
    sn->stop = true;
    pthread_cond_signal(&sn->cv);
    pthread_mutex_unlock(&sn->mu);
    pthread_join(sn->thread, NULL);
    sn->started = false;
}

void
cp_snapshot_free(struct cp_snapshot *sn)
{
    if (sn == NULL) {
        return;
    }
    cp_snapshot_stop(sn);
    cp_snapshot_blob_unref(sn->cur);
    cp_store_close(sn->store);
    cp_store_cache_free(sn->cache);
    pthread_cond_destroy(&sn->cv);
    pthread_mutex_destroy(&sn->build_mu);
    pthread_mutex_destroy(&sn->mu);
    free(sn);
}
