/* Files: one read whole, one replaced atomically, and who may read the files that hold
 * secrets (the prefix folder, created for this user only, and one warning for each
 * existing file that other users can read; issue 14). Boot and sync-thread code only:
 * these block on file I/O, and the warnings log. */
#ifndef STRAIT_ST_FILE_H
#define STRAIT_ST_FILE_H

#include <stddef.h>

struct st_err;

/* The umask both programs set first thing: every file they create (the SQLite database,
 * config.cache, exports) is for this user only unless the code says otherwise. */
#define ST_FILE_UMASK 077

/* Reads the whole file at path, at most max bytes, into *out: a malloc'd copy with a NUL
 * after its *len bytes (which may hold NULs), owned by the caller. Returns 0, -EFBIG when
 * the file holds more than max bytes (then *len is at least max + 1: the file's size when
 * it is a regular file), or the -errno of open or read; *out is NULL on failure. */
int st_file_read(const char *path, size_t max, char **out, size_t *len);

/* The same from fd (stdin for "-"), which stays open. */
int st_file_read_fd(int fd, size_t max, char **out, size_t *len);

/* Replaces the file at path atomically (path.tmp with mode, fsync, rename, fsync of the
 * folder): a crash leaves the old file or the new one, never a torn one. A symlink at
 * path.tmp is never followed. Returns 0 or -errno. */
int st_file_replace(const char *path, const void *p, size_t len, int mode);

/* Creates the folder prefix with mode 0700. An existing folder's mode is the operator's
 * choice, never changed (st_file_warn_prefix() says when it is open). Returns 0, or a
 * negative errno with err filled. */
int st_file_prefix_make(const char *prefix, struct st_err *err);

/* Logs one warn line when group or others have any access to the folder prefix (for
 * `start`: the command-line tools keep their output to their results). */
void st_file_warn_prefix(const char *prefix);

/* Logs one warn line when the file at path exists and group or others have any access
 * to it, naming what it holds ("private keys"). */
void st_file_warn_exposed(const char *path, const char *what);

/* st_file_warn_exposed() for each path of a comma-separated list (e.g. ssl_cert_key:
 * "a.key, b.key", each trimmed); NULL or "" checks nothing. */
void st_file_warn_exposed_list(const char *paths, const char *what);

void st_file_warn_exposed_in(const char *prefix, const char *name, const char *what);

/* Raises the soft limit on descriptors to the hard one, as HAProxy does for its maxconn:
 * each DP session takes two sockets, and the CP's admin, cluster and store connections
 * must not run out before their own limits apply. Logs a warning when the kernel refuses. */
void st_file_raise_nofile(void);

#endif
