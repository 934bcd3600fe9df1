/* The files a data plane keeps in PREFIX: its id (strait.id, made once) and the last
 * applied snapshot (config.cache, the exact bytes received). Boot and sync thread
 * only: these do file I/O. */
#ifndef STRAIT_DP_CACHE_H
#define STRAIT_DP_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct st_err;

/* Reads PREFIX/strait.id, or makes a new UUID and writes it (tmp + fsync + rename).
 * Returns 0 with id filled, or a negative code with err filled. */
int dp_cache_id(const char *prefix, char id[37], struct st_err *err);

/* Writes bytes to PREFIX/config.cache crash-safely (tmp, fsync, rename, fsync of the
 * folder). Returns 0 or -errno with err filled. */
int dp_cache_write(const char *prefix, const uint8_t *p, size_t len, struct st_err *err);

/* Reads PREFIX/config.cache. Returns 0 with *out a malloc'd buffer (caller frees),
 * -ENOENT when there is none, or another -errno with err filled. */
int dp_cache_read(const char *prefix, uint8_t **out, size_t *len, struct st_err *err);

#endif
