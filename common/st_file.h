/* Who may read the files that hold secrets: the prefix folder, created for this user
 * only, and one warning for each existing file that other users can read (issue 14).
 * Boot code only: these do file I/O and log. */
#ifndef STRAIT_ST_FILE_H
#define STRAIT_ST_FILE_H

struct st_err;

/* The umask both programs set first thing: every file they create (the SQLite database
 * and its -wal and -shm, config.cache, exports) is for this user only unless the code
 * sets another mode explicitly (certificates: 0644). */
#define ST_FILE_UMASK 077

/* Creates the folder prefix with mode 0700. An existing folder is used as it is: its mode
 * is the operator's choice, never changed here (st_file_warn_prefix() says when it is
 * open). Returns 0, or a negative errno with err filled ("cannot create prefix P: ..."). */
int st_file_prefix_make(const char *prefix, struct st_err *err);

/* Logs one warn line when group or others have any access to the folder prefix (for
 * `start`: the command-line tools keep their output to their results). */
void st_file_warn_prefix(const char *prefix);

/* When the file at path exists and group or others have any access to it, logs one warn
 * line naming path, its mode and what (what it holds: "private keys"). A missing file is
 * fine: nothing is logged. */
void st_file_warn_exposed(const char *path, const char *what);

/* st_file_warn_exposed() for each path of a comma-separated list (e.g. ssl_cert_key:
 * "a.key, b.key"); NULL or "" checks nothing. */
void st_file_warn_exposed_list(const char *paths, const char *what);

/* st_file_warn_exposed() for PREFIX/name. */
void st_file_warn_exposed_in(const char *prefix, const char *name, const char *what);

/* Raises the soft limit on descriptors (RLIMIT_NOFILE) to the hard one, as HAProxy does
 * for its maxconn: each DP session takes two sockets, and the CP's admin, cluster and
 * store connections must not run out before their own limits apply. Logs a warning when
 * the kernel refuses; the limit then stays as it was. */
void st_file_raise_nofile(void);

#endif
