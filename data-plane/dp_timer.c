/* Timers for dp_loop: a binary min-heap of deadlines. Sessions keep one timer each
 * and re-arm it lazily (the callback checks the real deadlines), so the heap is not
 * touched per read. */
#include "dp_loop.h"

#include <errno.h>
#include <stdlib.h>

void
dp_timer_init(struct dp_timer *t, dp_timer_fn *cb, void *arg)
{
    *t = (struct dp_timer){.cb = cb, .arg = arg};
}

static void
heap_swap(struct dp_loop *l, size_t a, size_t b)
{
    struct dp_timer *t = l->heap[a];

    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->idx = a + 1;
    l->heap[b]->idx = b + 1;
}

static void
heap_up(struct dp_loop *l, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (l->heap[parent]->expire <= l->heap[i]->expire) {
            break;
        }
        heap_swap(l, parent, i);
        i = parent;
    }
}

static void
heap_down(struct dp_loop *l, size_t i)
{
    for (;;) {
        size_t left = 2 * i + 1;
        size_t right = left + 1;
        size_t min = i;

        if (left < l->n_timers && l->heap[left]->expire < l->heap[min]->expire) {
            min = left;
        }
        if (right < l->n_timers && l->heap[right]->expire < l->heap[min]->expire) {
            min = right;
        }
        if (min == i) {
            return;
        }
        heap_swap(l, i, min);
        i = min;
    }
}

void
dp_timer_del(struct dp_loop *l, struct dp_timer *t)
{
    size_t i;

    if (t->idx == 0) {
        return;
    }
    i = t->idx - 1;
    t->idx = 0;
    l->n_timers--;
    if (i == l->n_timers) {
        return;
    }
    l->heap[i] = l->heap[l->n_timers];
    l->heap[i]->idx = i + 1;
    heap_up(l, i);
    heap_down(l, l->heap[i]->idx - 1);
}

int
dp_timer_set(struct dp_loop *l, struct dp_timer *t, int64_t expire)
{
    if (t->idx != 0) {
        t->expire = expire;
        heap_up(l, t->idx - 1);
        heap_down(l, t->idx - 1);
        return 0;
    }
    if (l->n_timers == l->cap_timers) {
        size_t cap = l->cap_timers ? l->cap_timers * 2 : 64;
        struct dp_timer **heap = realloc(l->heap, cap * sizeof(*heap));

        if (heap == NULL) {
            return -ENOMEM;
        }
        l->heap = heap;
        l->cap_timers = cap;
    }
    t->expire = expire;
    l->heap[l->n_timers] = t;
    t->idx = ++l->n_timers;
    heap_up(l, l->n_timers - 1);
    return 0;
}

int
dp_timer_next(const struct dp_loop *l)
{
    int64_t d;

    if (l->n_timers == 0) {
        return -1;
    }
    d = l->heap[0]->expire - l->now;
    if (d <= 0) {
        return 0;
    }
    return d > 60000 ? 60000 : (int)d;
}

void
dp_timer_run(struct dp_loop *l)
{
    while (l->n_timers > 0 && l->heap[0]->expire <= l->now) {
        struct dp_timer *t = l->heap[0];

        dp_timer_del(l, t);
        t->cb(l, t->arg);
    }
}

void
dp_timer_fini(struct dp_loop *l)
{
    for (size_t i = 0; i < l->n_timers; i++) {
        l->heap[i]->idx = 0;
    }
    free(l->heap);
    l->heap = NULL;
    l->n_timers = 0;
    l->cap_timers = 0;
}
