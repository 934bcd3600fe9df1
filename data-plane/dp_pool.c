/* Per-worker object pools: a free list in front of malloc. The hot path reuses
 * objects; malloc is only reached while a worker grows to its working set. */
#include "dp_pool.h"

#include <stdlib.h>

#include "st_util.h"

struct pool_item {
    struct pool_item *next;
};

void
dp_pool_init(struct dp_pool *p, const char *name, size_t size, size_t max_free)
{
    p->name = name;
    p->size = size < sizeof(struct pool_item) ? sizeof(struct pool_item) : size;
    p->max_free = max_free;
    p->n_free = 0;
    p->used = 0;
    p->free_list = NULL;
}

void
dp_pool_fini(struct dp_pool *p)
{
    struct pool_item *it = p->free_list;

    while (it != NULL) {
        struct pool_item *next = it->next;

        free(it);
        it = next;
    }
    p->free_list = NULL;
    p->n_free = 0;
}

void *
dp_pool_get(struct dp_pool *p)
{
    struct pool_item *it;

#ifndef STRAIT_POOL_BYPASS
    it = p->free_list;
    if (it != NULL) {
        p->free_list = it->next;
        p->n_free--;
        p->used++;
        return it;
    }
#endif
    it = malloc(p->size);
    if (it != NULL) {
        p->used++;
    }
    return it;
}

void
dp_pool_put(struct dp_pool *p, void *obj)
{
    struct pool_item *it = obj;

    if (obj == NULL) {
        return;
    }
    ST_ASSERT(p->used > 0);
    p->used--;
#ifndef STRAIT_POOL_BYPASS
    if (p->n_free < p->max_free) {
        it->next = p->free_list;
        p->free_list = it;
        p->n_free++;
        return;
    }
#endif
    free(it);
}
