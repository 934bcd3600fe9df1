/* The admin API's pool of store handles (see cp_store_pool.h): a stack of free handles
 * under a mutex, and a condition variable (on CLOCK_MONOTONIC, for the timed wait) that
 * a put signals. */
#include "cp_store_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_store.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

struct cp_store_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on every put */
    size_t n;
    struct cp_store **all;  /* the n handles, for free */
    struct cp_store **idle; /* a stack of the n_idle free handles */
    size_t n_idle;
};

static size_t
pool_size(const struct st_conf *conf)
{
    if (conf->database != NULL && strcmp(conf->database, "postgres") == 0 &&
        conf->pg_pool_size > 1) {
        return (size_t)conf->pg_pool_size;
    }
    return 1;
}

struct cp_store_pool *
cp_store_pool_of(struct cp_store **handles, size_t n)
{
    struct cp_store_pool *p = st_xcalloc(1, sizeof(*p));
    pthread_condattr_t ca;

    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->n = n;
    p->all = st_xcalloc(n, sizeof(*p->all));
    p->idle = st_xcalloc(n, sizeof(*p->idle));
    memcpy(p->all, handles, n * sizeof(*p->all));
    memcpy(p->idle, handles, n * sizeof(*p->idle));
    p->n_idle = n;
    return p;
}

int
cp_store_pool_new(const struct st_conf *conf, struct cp_store_pool **out, struct st_err *err)
{
    size_t n = pool_size(conf);
    struct cp_store **h = st_xcalloc(n, sizeof(*h));
    int rc = 0;

    *out = NULL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = cp_store_open(conf, &h[i], err);
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            cp_store_close(h[i]);
        }
        free(h);
        return rc;
    }
    *out = cp_store_pool_of(h, n);
    free(h);
    st_log(ST_LOG_INFO, 0, "admin store pool: %zu %s handle%s", n, conf->database,
           n > 1 ? "s" : "");
    return 0;
}

static struct cp_store *
take(struct cp_store_pool *p)
{
    return p->idle[--p->n_idle];
}

struct cp_store *
cp_store_pool_get(struct cp_store_pool *p)
{
    struct cp_store *s;

    pthread_mutex_lock(&p->mu);
    while (p->n_idle == 0) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    s = take(p);
    pthread_mutex_unlock(&p->mu);
    return s;
}

struct cp_store *
cp_store_pool_get_timed(struct cp_store_pool *p, int timeout_ms)
{
    struct cp_store *s = NULL;
    struct timespec until;
    int rc = 0;

    st_mono_deadline(timeout_ms, &until);
    pthread_mutex_lock(&p->mu);
    while (p->n_idle == 0 && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    if (p->n_idle > 0) {
        s = take(p);
    }
    pthread_mutex_unlock(&p->mu);
    return s;
}

void
cp_store_pool_put(struct cp_store_pool *p, struct cp_store *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->n_idle == p->n) {
        pthread_mutex_unlock(&p->mu);
        st_log(ST_LOG_ERR, 0, "admin store pool: a handle was given back twice");
        return;
    }
    p->idle[p->n_idle++] = s;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

size_t
cp_store_pool_size(const struct cp_store_pool *p)
{
    return p->n;
}

void
cp_store_pool_free(struct cp_store_pool *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        cp_store_close(p->all[i]);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->all);
    free(p->idle);
    free(p);
}
