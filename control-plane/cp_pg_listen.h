/* The LISTEN thread: its own Postgres connection LISTENs on CP_PG_CHANNEL and calls back
 * once per burst of notifications, so a CP rebuilds as soon as another CP sharing the
 * database commits. It reconnects with backoff when the server goes away and calls back
 * once after reconnecting (notifications sent meanwhile are lost). */
#ifndef STRAIT_CP_PG_LISTEN_H
#define STRAIT_CP_PG_LISTEN_H

struct st_conf;
struct st_err;
struct cp_pg_listen;

typedef void cp_pg_listen_fn(void *arg);

/* Starts the thread. conf must outlive the listener. Does not fail when the server is
 * down: the thread retries with backoff (100 ms doubling to 2 s, jittered), logging the
 * loss once and the recovery once. fn runs on the listener thread, once per burst of
 * notifications and once after every (re)connection that followed a failure. Returns 0
 * and a new listener, or a negative code with err filled (out of threads or descriptors). */
int cp_pg_listen_start(const struct st_conf *conf, cp_pg_listen_fn *fn, void *arg,
                       struct cp_pg_listen **out, struct st_err *err);

/* Wakes and joins the thread, closes its connection and frees it. Prompt, except while
 * a connection attempt is under way (at most pg_timeout, e.g. an unanswering host).
 * NULL is a no-op. */
void cp_pg_listen_stop(struct cp_pg_listen *l);

#endif
