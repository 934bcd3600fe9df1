/* Sharing the data-plane registry through the database (see cp_registry_share.h).
 *
 * Writes are batched (one transaction a second at most, only when something changed,
 * and a purge at least once a minute), so a fleet's heartbeats cost the database one
 * small transaction per CP per second, whatever the number of DPs. What could not be
 * saved while the database is away stays pending, newest record per DP, and is saved
 * when it is back. */
#include "cp_registry_share.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_registry.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "st_err.h"
#include "st_json.h"
#include "st_log.h"
#include "st_util.h"

#define SHARE_ROUND_MS       1000
#define SHARE_PURGE_MS       60000 /* the purge runs at least this often */
#define SHARE_HANDLE_MS      1000  /* how long a round waits for a store handle */
#define SHARE_ACKS_HANDLE_MS 200   /* how long wait_for_sync waits for one */

struct cp_registry_share {
    struct cp_registry *reg;
    struct cp_store_pool *pool;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    json_t *pending; /* id -> the newest record not saved yet */
    json_t *gone;    /* goodbyes not saved yet */
    int64_t next_purge_ms;
    bool failing; /* the last save failed (logged once until one works) */
};

/* Adds what the registry changed since the last round to what is pending. */
static void
share_collect(struct cp_registry_share *sh)
{
    json_t *seen, *gone;
    size_t i;
    json_t *rec;

    cp_registry_take(sh->reg, &seen, &gone);
    json_array_foreach(seen, i, rec)
    {
        json_object_set(sh->pending, json_string_value(json_object_get(rec, "id")), rec);
    }
    json_array_foreach(gone, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        const json_t *p = json_object_get(sh->pending, id);

        /* a record seen after the goodbye (the DP came back) stays */
        if (p != NULL && json_integer_value(json_object_get(p, "last_seen_ms")) <=
                             json_integer_value(json_object_get(rec, "at_ms"))) {
            json_object_del(sh->pending, id);
        }
        json_array_append(sh->gone, rec);
    }
    json_decref(seen);
    json_decref(gone);
}

/* The pending records as an array ordered by id: every CP upserts rows in the same
 * order, so two CPs saving overlapping DPs (one moved) cannot deadlock in Postgres. */
static json_t *
sorted_records(json_t *pending)
{
    size_t n;
    const char **ids = st_json_keys(pending, &n);
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++) {
        json_array_append(arr, json_object_get(pending, ids[i]));
    }
    free(ids);
    return arr;
}

/* One round: saves what is pending (and purges when due). */
static void
share_round(struct cp_registry_share *sh)
{
    const int64_t now = st_time_ms();
    json_t *seen;
    struct cp_store *s;
    int rc;

    share_collect(sh);
    if (json_object_size(sh->pending) == 0 && json_array_size(sh->gone) == 0 &&
        now < sh->next_purge_ms) {
        return;
    }
    if ((s = cp_store_pool_get_timed(sh->pool, SHARE_HANDLE_MS)) == NULL) {
        return; /* the admin API is busy: next round */
    }
    seen = sorted_records(sh->pending);
    rc = cp_store_dps_save(s, seen, sh->gone, now - cp_registry_purge_ms(sh->reg));
    cp_store_pool_put(sh->pool, s);
    json_decref(seen);
    if (rc < 0) {
        if (!sh->failing) {
            st_log(ST_LOG_WARN, 0,
                   "cluster: cannot save the data-plane registry to the database (%s); "
                   "keeping %zu entries to save when it is back",
                   st_strerror(rc), json_object_size(sh->pending));
            sh->failing = true;
        }
        return;
    }
    if (sh->failing) {
        st_log(ST_LOG_NOTICE, 0, "cluster: data-plane registry saved to the database again");
        sh->failing = false;
    }
    json_object_clear(sh->pending);
    json_array_clear(sh->gone);
    sh->next_purge_ms = now + SHARE_PURGE_MS;
}

static void *
share_main(void *arg)
{
    struct cp_registry_share *sh = arg;

    pthread_mutex_lock(&sh->mu);
    while (!sh->stop) {
        struct timespec ts;

        st_mono_deadline(SHARE_ROUND_MS, &ts);
        (void)pthread_cond_timedwait(&sh->cv, &sh->mu, &ts);
        if (sh->stop) {
            break;
        }
        pthread_mutex_unlock(&sh->mu);
        share_round(sh);
        pthread_mutex_lock(&sh->mu);
    }
    pthread_mutex_unlock(&sh->mu);
    share_round(sh); /* the goodbyes of the DPs that left with this CP */
    return NULL;
}

json_t *
cp_registry_share_acks(void *share, int64_t since_ms)
{
    struct cp_registry_share *sh = share;
    struct cp_store *s = cp_store_pool_get_timed(sh->pool, SHARE_ACKS_HANDLE_MS);
    json_t *acks;
    char *after = NULL;
    int rc = 0;

    if (s == NULL) {
        return NULL; /* every handle busy: the caller keeps what it had */
    }
    acks = json_object();

    for (;;) {
        json_t *rows = NULL;
        size_t i, n;
        json_t *rec;

        rc = cp_store_dps_page(s, after, 1000, since_ms, &rows);
        if (rc < 0) {
            break;
        }
        n = json_array_size(rows);
        json_array_foreach(rows, i, rec)
        {
            const json_t *doc = json_object_get(rec, "doc");

            json_object_set_new(acks, json_string_value(json_object_get(rec, "id")),
                                json_pack("{s:O,s:O,s:O}", "config_hash",
                                          json_object_get(doc, "config_hash"), "sync_status",
                                          json_object_get(doc, "sync_status"), "last_seen_ms",
                                          json_object_get(rec, "last_seen_ms")));
        }
        free(after);
        after =
            n > 0
                ? st_xstrdup(json_string_value(json_object_get(json_array_get(rows, n - 1), "id")))
                : NULL;
        json_decref(rows);
        if (n < 1000) {
            break;
        }
    }
    free(after);
    cp_store_pool_put(sh->pool, s);
    if (rc < 0) {
        json_decref(acks);
        return NULL;
    }
    return acks;
}

int
cp_registry_share_start(struct cp_registry *reg, struct cp_store_pool *pool,
                        struct cp_registry_share **out)
{
    struct cp_registry_share *sh;
    struct cp_store *s;
    pthread_condattr_t ca;
    bool shared;
    int rc;

    *out = NULL;
    s = cp_store_pool_get(pool);
    shared = cp_store_dps_shared(s);
    cp_store_pool_put(pool, s);
    if (!shared) {
        return 0;
    }
    sh = st_xcalloc(1, sizeof(*sh));
    sh->reg = reg;
    sh->pool = pool;
    sh->pending = json_object();
    sh->gone = json_array();
    pthread_mutex_init(&sh->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sh->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((rc = pthread_create(&sh->thread, NULL, share_main, sh)) != 0) {
        pthread_cond_destroy(&sh->cv);
        pthread_mutex_destroy(&sh->mu);
        json_decref(sh->pending);
        json_decref(sh->gone);
        free(sh);
        return -rc;
    }
    *out = sh;
    return 0;
}

void
cp_registry_share_stop(struct cp_registry_share *sh)
{
    if (sh == NULL) {
        return;
    }
    pthread_mutex_lock(&sh->mu);
    sh->stop = true;
    pthread_cond_signal(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    pthread_join(sh->thread, NULL);
    pthread_cond_destroy(&sh->cv);
    pthread_mutex_destroy(&sh->mu);
    json_decref(sh->pending);
    json_decref(sh->gone);
    free(sh);
}
