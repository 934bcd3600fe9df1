/* wait_for_sync waiters (see cp_sync_wait.h). The waiters form a list under a mutex; the
 * thread takes the whole list out, judges every waiter against one read of the registry
 * and the current snapshot with no lock held (the registry calls back into this module
 * with its own lock held: the order is registry, then ours, never the reverse), fires the
 * finished ones and puts the rest back. It sleeps until the registry pokes it, a new
 * waiter arrives, or the earliest deadline; while a waiter still lacks the hash of its
 * version (the builder has not published it), it retries every CP_SYNC_WAIT_RETRY_MS. */
#include "cp_sync_wait.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_registry.h"
#include "cp_snapshot.h"
#include "st_util.h"

#define CP_SYNC_WAIT_RETRY_MS 100

struct waiter {
    struct waiter *next;
    uint64_t version;
    char hash[65];                 /* the snapshot of `version` (or a later one); "" until known */
    int64_t start_ms, deadline_ms; /* monotonic */
    struct cp_sync_wait_dp *dps;   /* the DPs connected at the write; ids owned */
    size_t n;
    cp_sync_wait_done_fn *fn;
    void *arg;
};

struct cp_sync_wait {
    struct cp_registry *reg;
    struct cp_snapshot *snap;
    int64_t window_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
    bool stop;
    bool poked;
    struct waiter *head;
    uint64_t refreshed; /* the newest version this thread rebuilt for (thread only) */
    cp_sync_wait_shared_fn *shared_fn; /* NULL: this CP's DPs only */
    void *shared_arg;
    json_t *shared;     /* the last answer of shared_fn (thread only) */
    int64_t shared_at;  /* when it was read, monotonic ms (thread only) */
    int64_t shared_try; /* when shared_fn last failed, monotonic ms (thread only) */
};

/* After a failed read of the shared reports (the database is away), the next waits this
 * long: each try may take the store's timeout. */
#define CP_SYNC_WAIT_SHARED_RETRY_MS 1000

/* ------------------------------------------------------------------------- */
/* waiters */

static void
waiter_free(struct waiter *wt)
{
    for (size_t i = 0; i < wt->n; i++) {
        free((char *)wt->dps[i].id);
    }
    free(wt->dps);
    free(wt);
}

static int
by_id(const void *a, const void *b)
{
    return strcmp(((const struct cp_sync_wait_dp *)a)->id, ((const struct cp_sync_wait_dp *)b)->id);
}

/* Runs the callback with the DPs whose `failed` flag the judge left as pending (the
 * pending ones come first in wt->dps after judge()), then frees the waiter. */
static void
fire(struct waiter *wt, size_t n_pending)
{
    struct cp_sync_wait_result res = {
        .n_waited = wt->n,
        .n_pending = n_pending,
        .pending = wt->dps,
        .waited_ms = st_mono_ms() - wt->start_ms,
    };

    qsort(wt->dps, n_pending, sizeof(*wt->dps), by_id);
    wt->fn(wt->arg, &res);
    waiter_free(wt);
}

/* Whether the DP's report acknowledges the waiter's configuration: its hash is the one
 * of the write's version, or the current snapshot's when that is the same version or a
 * later one (a later write superseded it: what the DP runs includes the write). */
static bool
acked(const struct waiter *wt, const char *hash, const struct cp_snapshot_blob *cur)
{
    if (wt->hash[0] == '\0') {
        return false;
    }
    return strcmp(hash, wt->hash) == 0 ||
           (cur->version >= wt->version && strcmp(hash, cur->hash) == 0);
}

/* Moves the DPs still pending to the front of wt->dps (setting their `failed`) and returns
 * how many there are. A DP the registry no longer has said goodbye (or was purged): it
 * is not waited for; but another CP's DP is taken for gone only by a read of the shared
 * reports made after the wait began (shared_at, monotonic ms), never by an older one.
 * acks: thread_acks(). */
static size_t
judge(struct waiter *wt, const json_t *acks, const struct cp_snapshot_blob *cur, int64_t shared_at)
{
    size_t n_pending = 0;

    for (size_t i = 0; i < wt->n; i++) {
        const json_t *a = json_object_get(acks, wt->dps[i].id);
        const char *status = json_string_value(json_object_get(a, "sync_status"));
        const char *hash = json_string_value(json_object_get(a, "config_hash"));
        struct cp_sync_wait_dp t;

        /* (a read in the same millisecond as the start may have come before it) */
        if (a == NULL && !(wt->dps[i].remote && shared_at <= wt->start_ms)) {
            continue;
        }
        if (status != NULL && strcmp(status, "normal") == 0 && hash != NULL &&
            acked(wt, hash, cur)) {
            continue;
        }
        t = wt->dps[i];
        t.failed = a != NULL && (status == NULL || strcmp(status, "normal") != 0);
        wt->dps[i] = wt->dps[n_pending];
        wt->dps[n_pending++] = t;
    }
    return n_pending;
}

/* Adds to acks (this CP's: cp_registry_acks) the shared reports of DPs it has not seen
 * more recently, marked "remote". */
static void
merge_shared(json_t *acks, json_t *shared)
{
    const char *id;
    json_t *v;

    json_object_foreach(shared, id, v)
    {
        const json_t *mine = json_object_get(acks, id);

        if (mine == NULL || json_integer_value(json_object_get(mine, "last_seen_ms")) <
                                json_integer_value(json_object_get(v, "last_seen_ms"))) {
            json_object_set_new(v, "remote", json_true());
            json_object_set(acks, id, v);
        }
    }
}

/* The reports the thread judges by: this CP's, and the shared ones, read again when the
 * last read is CP_SYNC_WAIT_SHARED_MS old (a failed read keeps the previous one). Waits
 * last at most CP_SYNC_WAIT_MAX_S: older reports cannot matter. */
static json_t *
thread_acks(struct cp_sync_wait *w)
{
    json_t *acks = cp_registry_acks(w->reg, 0);

    if (w->shared_fn != NULL) {
        int64_t now = st_mono_ms();

        if ((w->shared == NULL || now - w->shared_at >= CP_SYNC_WAIT_SHARED_MS) &&
            (w->shared_try == 0 || now - w->shared_try >= CP_SYNC_WAIT_SHARED_RETRY_MS)) {
            json_t *fresh = w->shared_fn(w->shared_arg, st_time_ms() - w->window_ms -
                                                            (int64_t)CP_SYNC_WAIT_MAX_S * 1000);

            if (fresh != NULL) {
                json_decref(w->shared);
                w->shared = fresh;
                w->shared_at = now;
                w->shared_try = 0;
            } else {
                w->shared_try = now;
            }
        }
        if (w->shared != NULL) {
            merge_shared(acks, w->shared);
        }
    }
    return acks;
}

/* The current snapshot, rebuilt first when a waiter's version is newer than it (the
 * builder thread has not caught up with the commit yet). Rebuilt once per version: when
 * that fails (the database is away), the builder thread's own retries publish it, and
 * the waiter polls meanwhile without a rebuild (and its log line) every retry. */
static struct cp_snapshot_blob *
current(struct cp_sync_wait *w, const struct waiter *list, bool force)
{
    struct cp_snapshot_blob *cur = cp_snapshot_acquire(w->snap);
    uint64_t want = 0;

    for (const struct waiter *wt = list; wt != NULL; wt = wt->next) {
        if (wt->hash[0] == '\0' && wt->version > want) {
            want = wt->version;
        }
    }
    if (!force && want > cur->version && want > w->refreshed) {
        w->refreshed = want;
        cp_snapshot_blob_unref(cur);
        cp_snapshot_refresh(w->snap);
        cur = cp_snapshot_acquire(w->snap);
    }
    return cur;
}

/* Judges every waiter of list; fires those done (or all of them when force), returns the
 * others. */
static struct waiter *
pass(struct cp_sync_wait *w, struct waiter *list, bool force)
{
    struct cp_snapshot_blob *cur;
    struct waiter *keep = NULL;
    json_t *acks;
    int64_t now;

    if (list == NULL) {
        return NULL;
    }
    cur = current(w, list, force);
    acks = thread_acks(w);
    now = st_mono_ms();
    while (list != NULL) {
        struct waiter *wt = list;
        size_t n_pending;

        list = wt->next;
        if (wt->hash[0] == '\0' && cur->version >= wt->version) {
            memcpy(wt->hash, cur->hash, sizeof(wt->hash));
        }
        n_pending = judge(wt, acks, cur, w->shared != NULL ? w->shared_at : INT64_MIN);
        if (n_pending == 0 || force || now >= wt->deadline_ms) {
            fire(wt, n_pending);
        } else {
            wt->next = keep;
            keep = wt;
        }
    }
    json_decref(acks);
    cp_snapshot_blob_unref(cur);
    return keep;
}

/* ------------------------------------------------------------------------- */
/* the thread */

static void
poke(void *arg)
{
    struct cp_sync_wait *w = arg;

    pthread_mutex_lock(&w->mu);
    if (w->head != NULL) {
        w->poked = true;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* Sleeps (mu held) until poked, stopped, or the next deadline or retry. */
static void
sleep_locked(struct cp_sync_wait *w)
{
    int64_t wake = INT64_MAX;
    int64_t now = st_mono_ms();
    struct timespec ts;

    if (w->poked || w->stop) {
        return;
    }
    for (const struct waiter *wt = w->head; wt != NULL; wt = wt->next) {
        int64_t t = wt->hash[0] == '\0' ? now + CP_SYNC_WAIT_RETRY_MS : wt->deadline_ms;

        if (w->shared_fn != NULL && now + CP_SYNC_WAIT_SHARED_MS < t) {
            t = now + CP_SYNC_WAIT_SHARED_MS; /* the other CPs' DPs do not poke */
        }
        if (t < wake) {
            wake = t;
        }
    }
    if (wake == INT64_MAX) {
        pthread_cond_wait(&w->cv, &w->mu);
        return;
    }
    if (wake <= now) {
        return;
    }
    st_mono_deadline(wake - now, &ts);
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

static void
put_back_locked(struct cp_sync_wait *w, struct waiter *keep)
{
    while (keep != NULL) {
        struct waiter *wt = keep;

        keep = wt->next;
        wt->next = w->head;
        w->head = wt;
    }
}

static void *
run(void *arg)
{
    struct cp_sync_wait *w = arg;
    struct waiter *list;

    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        sleep_locked(w);
        if (w->stop) {
            break;
        }
        w->poked = false;
        list = w->head;
        w->head = NULL;
        pthread_mutex_unlock(&w->mu);
        list = pass(w, list, false);
        pthread_mutex_lock(&w->mu);
        put_back_locked(w, list);
    }
    list = w->head;
    w->head = NULL;
    pthread_mutex_unlock(&w->mu);
    pass(w, list, true);
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* API */

int
cp_sync_wait_start(struct cp_registry *reg, struct cp_snapshot *snap, int64_t window_ms,
                   struct cp_sync_wait **out)
{
    struct cp_sync_wait *w = st_xcalloc(1, sizeof(*w));
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    w->reg = reg;
    w->snap = snap;
    w->window_ms = window_ms;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        w->stop = true;
        cp_sync_wait_free(w);
        return -rc;
    }
    w->started = true;
    cp_registry_on_change(reg, poke, w);
    *out = w;
    return 0;
}

/* A new waiter for the DPs in acks, or NULL when there is none. */
static struct waiter *
waiter_new(const json_t *acks, uint64_t version, int64_t timeout_ms, cp_sync_wait_done_fn *fn,
           void *arg)
{
    struct waiter *wt;
    const char *id;
    const json_t *v;

    if (json_object_size(acks) == 0) {
        return NULL;
    }
    wt = st_xmalloc(sizeof(*wt));
    *wt = (struct waiter){.version = version, .start_ms = st_mono_ms(), .fn = fn, .arg = arg};
    wt->deadline_ms = wt->start_ms + timeout_ms;
    wt->dps = st_xcalloc(json_object_size(acks), sizeof(*wt->dps));
    json_object_foreach((json_t *)acks, id, v)
    {
        wt->dps[wt->n].remote = json_is_true(json_object_get(v, "remote"));
        wt->dps[wt->n++].id = st_xstrdup(id);
    }
    return wt;
}

void
cp_sync_wait_share(struct cp_sync_wait *w, cp_sync_wait_shared_fn *fn, void *arg)
{
    pthread_mutex_lock(&w->mu);
    w->shared_fn = fn;
    w->shared_arg = arg;
    pthread_mutex_unlock(&w->mu);
}

void
cp_sync_wait_add(struct cp_sync_wait *w, uint64_t version, int64_t timeout_ms,
                 cp_sync_wait_done_fn *fn, void *arg)
{
    const int64_t since = st_time_ms() - w->window_ms;
    json_t *acks = cp_registry_acks(w->reg, since);
    struct waiter *wt;

    if (w->shared_fn != NULL) {
        json_t *shared = w->shared_fn(w->shared_arg, since);

        merge_shared(acks, shared); /* NULL (the database is away): this CP's DPs */
        json_decref(shared);
    }
    wt = waiter_new(acks, version, timeout_ms, fn, arg);
    json_decref(acks);
    if (wt == NULL) {
        struct cp_sync_wait_result none = {0};

        fn(arg, &none);
        return;
    }
    pthread_mutex_lock(&w->mu);
    if (w->stop) {
        pthread_mutex_unlock(&w->mu);
        fire(wt, wt->n);
        return;
    }
    wt->next = w->head;
    w->head = wt;
    w->poked = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void
cp_sync_wait_stop(struct cp_sync_wait *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started) {
        cp_registry_on_change(w->reg, NULL, NULL);
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void
cp_sync_wait_free(struct cp_sync_wait *w)
{
    if (w == NULL) {
        return;
    }
    cp_sync_wait_stop(w);
    json_decref(w->shared);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
