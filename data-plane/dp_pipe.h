/* A worker's pool of pipes for splice(2): a pipe is taken when a direction turns to
 * bulk transfer and given back as soon as it is empty and idle; one that still holds
 * data is closed, never reused (HAProxy's put_pipe). */
#ifndef STRAIT_DP_PIPE_H
#define STRAIT_DP_PIPE_H

#include <stddef.h>

/* Pipes are asked for 1 MiB (the default fs.pipe-max-size): a bulk transfer then moves
 * a megabyte per splice pair, which cut the proxy's CPU per GB by a third against 64 KiB
 * (bench/README.md). A pipe holds pages only while data is in it; where the kernel
 * refuses the size (fs.pipe-user-pages-soft) the pipe keeps its default and works. */
#define DP_PIPE_SIZE (1024 * 1024)

struct dp_pipe {
    int rfd, wfd;
    size_t data; /* bytes inside */
    struct dp_pipe *next;
};

/* A worker's spare pipes. */
struct dp_pipe_pool {
    struct dp_pipe *free_list;
    size_t n_free;
    size_t max_free;
};

void dp_pipe_pool_init(struct dp_pipe_pool *pp, size_t max_free);

/* Closes the spare pipes. */
void dp_pipe_pool_fini(struct dp_pipe_pool *pp);

/* Returns an empty pipe (from the pool or new), or NULL (fd or memory exhaustion). */
struct dp_pipe *dp_pipe_get(struct dp_pipe_pool *pp);

/* Gives a pipe back; one that still holds data is closed, never reused. NULL: no-op. */
void dp_pipe_put(struct dp_pipe_pool *pp, struct dp_pipe *p);

#endif
