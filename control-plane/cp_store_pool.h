/* A fixed pool of store handles for the admin API: each request takes a handle for its
 * transaction and gives it back. N = pg_pool_size for database = postgres, 1 for SQLite
 * (one writer anyway). Handles stay open for the pool's life: a Postgres handle whose
 * connection broke reconnects by itself at its next begin or read (cp_store_pg.c), so
 * the pool needs nothing special across a database outage. */
#ifndef STRAIT_CP_STORE_POOL_H
#define STRAIT_CP_STORE_POOL_H

#include <stddef.h>

struct st_conf;
struct st_err;
struct cp_store;
struct cp_store_pool;

/* Opens the pool's handles with cp_store_open(conf): all or none. Returns 0 and a pool
 * released with cp_store_pool_free(), or cp_store_open's error (e.g. the database is
 * unreachable at start) with err filled and *out NULL. */
int cp_store_pool_new(const struct st_conf *conf, struct cp_store_pool **out, struct st_err *err);

/* A pool over n (>= 1) handles already open; the pool owns them from now on (tests, and
 * callers that open handles their own way). */
struct cp_store_pool *cp_store_pool_of(struct cp_store **handles, size_t n);

/* Thread-safe; waits as long as every handle is in use. */
struct cp_store *cp_store_pool_get(struct cp_store_pool *p);

/* As cp_store_pool_get, but waits at most timeout_ms (>= 0): NULL when no handle came
 * free in that time. */
struct cp_store *cp_store_pool_get_timed(struct cp_store_pool *p, int timeout_ms);

/* Gives back a handle that cp_store_pool_get returned, with no transaction open on it. */
void cp_store_pool_put(struct cp_store_pool *p, struct cp_store *s);

size_t cp_store_pool_size(const struct cp_store_pool *p);

/* Closes every handle; all of them must have been given back. NULL is a no-op. */
void cp_store_pool_free(struct cp_store_pool *p);

#endif
