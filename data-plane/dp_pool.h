/* Per-worker pools of fixed-size objects (sessions, copy buffers). Not thread-safe:
 * each worker owns its pools. With STRAIT_POOL_BYPASS every get is a malloc and every
 * put a free, so ASan sees use-after-free. */
#ifndef STRAIT_DP_POOL_H
#define STRAIT_DP_POOL_H

#include <stddef.h>

struct dp_pool {
    const char *name;
    size_t size;     /* object size */
    size_t max_free; /* objects kept for reuse, beyond that put() frees */
    size_t n_free;
    size_t used; /* objects handed out and not yet put back */
    void *free_list;
};

/* Initialises an empty pool of objects of `size` bytes. */
void dp_pool_init(struct dp_pool *p, const char *name, size_t size, size_t max_free);

/* Frees the cached objects. Every object must have been put back. */
void dp_pool_fini(struct dp_pool *p);

/* Returns an uninitialised object, or NULL when memory is exhausted. The caller gives
 * it back with dp_pool_put() on the same pool. */
void *dp_pool_get(struct dp_pool *p);

/* Takes the object back (NULL is a no-op). */
void dp_pool_put(struct dp_pool *p, void *obj);

#endif
