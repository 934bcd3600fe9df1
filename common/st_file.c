/* The prefix folder and the start-up warnings about files other users can read. */
#include "st_file.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

#define ST_FILE_OTHERS (S_IRWXG | S_IRWXO)

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
    const char *p = paths;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        char one[PATH_MAX];

        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
            n--;
        }
        if (n > 0 && n < sizeof(one)) {
            memcpy(one, p, n);
            one[n] = '\0';
            st_file_warn_exposed(one, what);
        }
        p = end != NULL ? end + 1 : NULL;
    }
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
        rlim_t want = rl.rlim_max;

        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            st_log(ST_LOG_WARN, errno, "cannot raise the descriptor limit to %llu",
                   (unsigned long long)want);
        }
    }
}
