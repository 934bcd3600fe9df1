/* PREFIX/strait.id and PREFIX/config.cache. */
#include "dp_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st_err.h"
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
    struct stat st;
    uint8_t *buf;
    size_t got = 0;
    int fd, rc = 0;

    if (st_snprintf(path, sizeof(path), "%s/%s", prefix, name) < 0) {
        return st_err_set(err, -ENAMETOOLONG, NULL, "%s/%s: path too long", prefix, name);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        rc = -errno;
        return rc == -ENOENT ? rc : st_err_set(err, rc, NULL, "%s: %s", path, strerror(-rc));
    }
    if (fstat(fd, &st) == -1) {
        rc = -errno;
        close(fd);
        return st_err_set(err, rc, NULL, "%s: %s", path, strerror(-rc));
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        close(fd);
        return st_err_set(err, -EFBIG, NULL,
                          "%s: %lld bytes, more than the %llu this data plane reads", path,
                          (long long)st.st_size, (unsigned long long)max);
    }
    buf = st_xmalloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n == 0 ? -EIO : -errno;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return st_err_set(err, rc, NULL, "%s: %s", path, strerror(-rc));
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
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
