/* The worker's pipe pool (see dp_pipe.h). Pipes are non-blocking and close-on-exec;
 * the pool keeps at most max_free spare ones, the rest are closed when given back. */
#include "dp_pipe.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

void
dp_pipe_pool_init(struct dp_pipe_pool *pp, size_t max_free)
{
    pp->free_list = NULL;
    pp->n_free = 0;
    pp->max_free = max_free;
}

static void
pipe_close(struct dp_pipe *p)
{
    close(p->rfd);
    close(p->wfd);
    free(p);
}

void
dp_pipe_pool_fini(struct dp_pipe_pool *pp)
{
    while (pp->free_list != NULL) {
        struct dp_pipe *p = pp->free_list;

        pp->free_list = p->next;
        pipe_close(p);
    }
    pp->n_free = 0;
}

struct dp_pipe *
dp_pipe_get(struct dp_pipe_pool *pp)
{
    struct dp_pipe *p = pp->free_list;
    int fds[2];

    if (p != NULL) {
        pp->free_list = p->next;
        pp->n_free--;
        p->next = NULL;
        return p;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
        free(p);
        return NULL;
    }
    (void)fcntl(fds[1], F_SETPIPE_SZ, DP_PIPE_SIZE);
    p->rfd = fds[0];
    p->wfd = fds[1];
    p->data = 0;
    p->next = NULL;
    return p;
}

void
dp_pipe_put(struct dp_pipe_pool *pp, struct dp_pipe *p)
{
    if (p == NULL) {
        return;
    }
    if (p->data != 0 || pp->n_free >= pp->max_free) {
        pipe_close(p);
        return;
    }
    p->next = pp->free_list;
    pp->free_list = p;
    pp->n_free++;
}
