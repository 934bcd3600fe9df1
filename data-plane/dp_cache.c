/* PREFIX/strait.id and PREFIX/config.cache. */
#include "dp_cache.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_file.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_util.h"

/* Room beyond one snapshot of cluster_max_payload bytes, for a header. */
#define DP_CACHE_HEADROOM (64u * 1024)

/* strait.id is a UUID and a newline. */
#define DP_ID_FILE_MAX 4096

/* Writes PREFIX/name atomically (st_file_replace). */
static int
file_replace(const char *prefix, const char *name, const uint8_t *p, size_t len, int mode,
             struct st_err *err)
{
    char path[PATH_MAX];
    int rc;

    if (st_snprintf(path, sizeof(path), "%s/%s", prefix, name) < 0) {
        return st_err_set(err, -ENAMETOOLONG, NULL, "%s/%s: path too long", prefix, name);
    }
    rc = st_file_replace(path, p, len, mode);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "%s: %s", path, strerror(-rc));
    }
    return 0;
}

static int
file_read(const char *prefix, const char *name, uint64_t max, uint8_t **out, size_t *len,
          struct st_err *err)
{
    char path[PATH_MAX];
    char *buf;
    int rc;

    if (st_snprintf(path, sizeof(path), "%s/%s", prefix, name) < 0) {
        return st_err_set(err, -ENAMETOOLONG, NULL, "%s/%s: path too long", prefix, name);
    }
    rc = st_file_read(path, max < SIZE_MAX ? (size_t)max : SIZE_MAX, &buf, len);
    if (rc == -EFBIG) {
        return st_err_set(err, rc, NULL, "%s: %llu bytes, more than the %llu this data plane reads",
                          path, (unsigned long long)*len, (unsigned long long)max);
    }
    if (rc < 0) {
        return rc == -ENOENT ? rc : st_err_set(err, rc, NULL, "%s: %s", path, strerror(-rc));
    }
    *out = (uint8_t *)buf;
    return 0;
}

int
dp_cache_write(const char *prefix, const uint8_t *p, size_t len, struct st_err *err)
{
    return file_replace(prefix, "config.cache", p, len, 0600, err);
}

uint64_t
dp_cache_max(int64_t cluster_max_payload)
{
    return (cluster_max_payload > 0 ? (uint64_t)cluster_max_payload : 0) + DP_CACHE_HEADROOM;
}

int
dp_cache_read(const char *prefix, uint64_t max, uint8_t **out, size_t *len, struct st_err *err)
{
    return file_read(prefix, "config.cache", max, out, len, err);
}

int
dp_cache_id(const char *prefix, char id[37], struct st_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = file_read(prefix, "strait.id", DP_ID_FILE_MAX, &buf, &len, err);

    if (rc == 0) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) {
            buf[--len] = '\0';
        }
        if (!st_schema_is_uuid((const char *)buf)) {
            free(buf);
            return st_err_set(err, -ST_EPARSE, NULL, "%s/strait.id: not a UUID", prefix);
        }
        memcpy(id, buf, 37);
        free(buf);
        return 0;
    }
    if (rc != -ENOENT) {
        return rc;
    }
    rc = st_ssl_uuid(id);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "cannot make an id: %s", st_strerror(rc));
    }
    id[36] = '\n';
    rc = file_replace(prefix, "strait.id", (const uint8_t *)id, 37, 0600, err);
    id[36] = '\0';
    return rc;
}
