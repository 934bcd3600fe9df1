/* Reading and replacing files, the prefix folder, and the start-up warnings about files
 * other users can read. */
#include "st_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st_err.h"
#include "st_log.h"
#include "st_str.h"
#include "st_util.h"

#define ST_FILE_OTHERS (S_IRWXG | S_IRWXO)

/* What st_file_read_fd() allocates first when it cannot know the size (a pipe). */
#define ST_FILE_READ_FIRST 65536

int
st_file_read_fd(int fd, size_t max, char **out, size_t *len)
{
    struct stat st;
    size_t cap, got = 0;
    char *buf;
    int rc = 0;

    *out = NULL;
    *len = 0;
    max = max < SIZE_MAX - 2 ? max : SIZE_MAX - 2; /* room for one byte more and a NUL */
    if (fstat(fd, &st) == -1) {
        return -errno;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        *len = (size_t)st.st_size;
        return -EFBIG;
    }
    cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 2 : ST_FILE_READ_FIRST;
    cap = cap < max + 2 ? cap : max + 2;
    buf = st_xmalloc(cap);
    for (;;) {
        ssize_t n;

        if (cap - got < 2) {
            cap = st_grow(cap, got + 2, max + 2);
            buf = st_xrealloc(buf, cap);
        }
        n = read(fd, buf + got, cap - got - 1);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n == 0 ? 0 : -errno;
            break;
        }
        got += (size_t)n;
        if (got > max) {
            rc = -EFBIG;
            break;
        }
    }
    if (rc < 0) {
        free(buf);
        *len = rc == -EFBIG ? got : 0;
        return rc;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int
st_file_read(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc;

    *out = NULL;
    *len = 0;
    if (fd == -1) {
        return -errno;
    }
    rc = st_file_read_fd(fd, max, out, len);
    close(fd);
    return rc;
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
st_file_replace(const char *path, const void *p, size_t len, int mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    char *slash;
    int fd, rc;

    if (st_snprintf(tmp, sizeof(tmp), "%s.tmp", path) != 0 ||
        st_snprintf(dir, sizeof(dir), "%s", path) != 0) {
        return -ENAMETOOLONG;
    }
    /* A stale temporary (a crash between open and rename) is removed, never written
     * through: a symlink planted at its name must not redirect the write, so unlink
     * (which does not follow) and create afresh; O_EXCL|O_NOFOLLOW refuse whatever
     * appears at the name in between. */
    if (unlink(tmp) == -1 && errno != ENOENT) {
        return -errno;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd == -1) {
        return -errno;
    }
    rc = fchmod(fd, (mode_t)mode) == -1 ? -errno : 0; /* whatever the umask said */
    if (rc == 0) {
        rc = write_all(fd, p, len);
    }
    if (rc == 0 && fsync(fd) == -1) {
        rc = -errno;
    }
    if (close(fd) == -1 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) == -1) {
        rc = -errno;
    }
    if (rc < 0) {
        (void)unlink(tmp);
        return rc;
    }
    slash = strrchr(dir, '/');
    if (slash != NULL) {
        *(slash == dir ? slash + 1 : slash) = '\0';
    }
    fd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd != -1) {
        (void)fsync(fd); /* the rename itself */
        close(fd);
    }
    return 0;
}

int
st_file_prefix_make(const char *prefix, struct st_err *err)
{
    if (mkdir(prefix, 0700) == -1 && errno != EEXIST) {
        int e = errno;

        return st_err_set(err, -e, "prefix", "cannot create prefix %s: %s", prefix, strerror(e));
    }
    return 0;
}

void
st_file_warn_prefix(const char *prefix)
{
    struct stat st;

    if (stat(prefix, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & ST_FILE_OTHERS) != 0) {
        st_log(ST_LOG_WARN, 0,
               "prefix %s: other users can enter it (mode %04o), and its files hold private "
               "keys: chmod 700 it",
               prefix, (unsigned)(st.st_mode & 07777));
    }
}

void
st_file_warn_exposed(const char *path, const char *what)
{
    struct stat st;

    if (path == NULL || path[0] == '\0' || stat(path, &st) == -1) {
        return;
    }
    if (S_ISREG(st.st_mode) && (st.st_mode & ST_FILE_OTHERS) != 0) {
        st_log(ST_LOG_WARN, 0, "%s holds %s but other users can read it (mode %04o): chmod 600 it",
               path, what, (unsigned)(st.st_mode & 07777));
    }
}

void
st_file_warn_exposed_list(const char *paths, const char *what)
{
    char *copy = st_xstrdup(paths != NULL ? paths : ""), *save = NULL;

    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        st_file_warn_exposed(st_str_trim(t), what);
    }
    free(copy);
}

void
st_file_warn_exposed_in(const char *prefix, const char *name, const char *what)
{
    char path[PATH_MAX];

    if (st_snprintf(path, sizeof(path), "%s/%s", prefix, name) == 0) {
        st_file_warn_exposed(path, what);
    }
}

void
st_file_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            st_log(ST_LOG_WARN, errno, "cannot raise the descriptor limit to %llu",
                   (unsigned long long)rl.rlim_max);
        }
    }
}
