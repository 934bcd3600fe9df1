/* The files a data plane keeps in PREFIX: its id (strait.id, made once) and the last
 * applied snapshot (config.cache, the exact bytes received). Boot and sync thread
 * only: these do file I/O. */
#ifndef STRAIT_DP_CACHE_H
#define STRAIT_DP_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct st_err;

/* Reads PREFIX/strait.id, or makes a new UUID and writes it (tmp + fsync + rename, 0600).
 * Returns 0 with id filled, or a negative code with err filled. */
int dp_cache_id(const char *prefix, char id[37], struct st_err *err);

/* Writes bytes to PREFIX/config.cache crash-safely (tmp, fsync, rename, fsync of the
 * folder), mode 0600 (it holds the certificates' private keys). Returns 0 or -errno with
 * err filled. */
int dp_cache_write(const char *prefix, const uint8_t *p, size_t len, struct st_err *err);

/* The largest config.cache a DP reads: one snapshot as large as cluster_max_payload
 * allows (whatever the DP accepted over the link, it can cache and read back) plus room
 * for a header. */
uint64_t dp_cache_max(int64_t cluster_max_payload);

/* Reads PREFIX/config.cache, refusing a file over max bytes (dp_cache_max()) with -EFBIG
 * and one line naming both sizes. Returns 0 with *out a malloc'd buffer (caller frees),
 * -ENOENT when there is none, or another -errno with err filled. */
int dp_cache_read(const char *prefix, uint64_t max, uint8_t **out, size_t *len, struct st_err *err);

#endif
