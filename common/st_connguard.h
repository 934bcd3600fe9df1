/* Connection guard: how many connections a listener that hostile clients reach before
 * they authenticate keeps open, and for how long before they have said enough (the CP's
 * admin API and cluster port, the DP's status listener; issue 14).
 *
 * A connection is PENDING from its admission until its head is done (an HTTP request's
 * head, a verified TLS handshake), then ACTIVE. PENDING ones have an absolute deadline
 * (limits.deadline_ms from admission: bytes trickling in do not extend it). When the
 * connections counted reach limits.max, a new one displaces the oldest PENDING one, so a
 * client that says what it wants at once is served while others hold connections open;
 * only when none is PENDING is the new one refused. At most limits.max_per_ip from one
 * address. Each kind of event (refused, displaced, timed out) is logged at most once a
 * second, with the number of events since its last line.
 *
 * The guard owns no socket. The listener admits a peer (before or at accept), claims the
 * admission with the accepted descriptor, reports the head done and the close; the guard
 * drops a connection by calling the kill callback under its lock, and the listener then
 * closes it and removes it. Thread-safe: one mutex. */
#ifndef STRAIT_ST_CONNGUARD_H
#define STRAIT_ST_CONNGUARD_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;
struct st_connguard;
struct st_connguard_conn;

/* Only PENDING connections count toward max (the cluster port: a verified data plane is
 * no longer the guard's business). */
#define ST_CONNGUARD_F_PENDING_ONLY 0x1u

/* What a guard enforces; the strings (log lines) must outlive the guard. */
struct st_connguard_limits {
    const char *name;         /* log prefix: "admin", "status", "cluster" */
    const char *head;         /* what a PENDING connection has not finished: "request head" */
    size_t max;               /* connections counted at most, >= 1 */
    const char *max_key;      /* the configuration key of max */
    size_t max_per_ip;        /* connections from one address at most; 0: no limit */
    const char *per_ip_key;   /* the configuration key of max_per_ip */
    int64_t deadline_ms;      /* from admission to head done, > 0 */
    const char *deadline_key; /* the configuration key of deadline_ms, NULL: a constant */
    unsigned flags;           /* ST_CONNGUARD_F_* */
};

/* Drops a connection: called under the guard's lock with the fd and owner given to
 * st_connguard_claim. It must not call back into the guard. The connection stays known
 * to the guard (not counted) until st_connguard_remove. */
typedef void st_connguard_kill_fn(void *arg, int fd, void *owner);

enum st_connguard_verdict {
    ST_CONNGUARD_ADMIT = 0,
    ST_CONNGUARD_REFUSE_PER_IP, /* max_per_ip from that address already */
    ST_CONNGUARD_REFUSE_FULL,   /* max counted, none of them PENDING */
};

/* Counters since st_connguard_new, and the connections known now. */
struct st_connguard_stats {
    uint64_t admitted;
    uint64_t refused_per_ip;
    uint64_t refused_full;
    uint64_t displaced;
    uint64_t timed_out;
    uint64_t lines; /* log lines written about the events above */
    size_t pending; /* PENDING (admitted, claimed or not) */
    size_t active;
};

/* A guard with a copy of *lim, freed with st_connguard_free. kill NULL: shutdown(fd,
 * SHUT_RDWR), which makes the owner of fd see the end of the connection and close it (the
 * owner must remove the connection before it closes fd, so that the fd cannot be reused
 * meanwhile). */
struct st_connguard *st_connguard_new(const struct st_connguard_limits *lim,
                                      st_connguard_kill_fn *kill, void *arg);

/* Stops the reaper and frees the guard and every connection still known (no kill). */
void st_connguard_free(struct st_connguard *g);

/* Decides on a new connection from peer (an AF_INET or AF_INET6 address with its port),
 * at now_ms on the monotonic clock. ADMIT reserves a PENDING place for it (after
 * displacing the oldest PENDING connection when max is reached): claim it with the same
 * peer, or it lapses at its deadline. A refusal is logged (rate-limited). */
enum st_connguard_verdict st_connguard_admit(struct st_connguard *g, const struct sockaddr *peer,
                                             int64_t now_ms);

/* The connection admitted for peer (ip and port) has descriptor fd, and owner (any
 * pointer, given back to kill). When no admission matches (it lapsed), the connection is
 * added PENDING anyway; when its admission was displaced meanwhile, it is killed at once.
 * Returns the handle for the calls below, valid until st_connguard_remove. */
struct st_connguard_conn *st_connguard_claim(struct st_connguard *g, const struct sockaddr *peer,
                                             int fd, void *owner, int64_t now_ms);

/* c finished its head: ACTIVE, no deadline, never displaced. No-op on a killed one. */
void st_connguard_head_done(struct st_connguard *g, struct st_connguard_conn *c);

/* c waits for a head again (an HTTP connection kept alive after an answer): PENDING with a
 * new deadline from now_ms. No-op on a killed one. */
void st_connguard_head_again(struct st_connguard *g, struct st_connguard_conn *c, int64_t now_ms);

/* Forgets c (its owner is closing it) and frees it. */
void st_connguard_remove(struct st_connguard *g, struct st_connguard_conn *c);

/* Kills the PENDING connections whose deadline is <= now_ms (logged, rate-limited) and
 * drops lapsed admissions. Returns the earliest deadline left, INT64_MAX when none. */
int64_t st_connguard_expire(struct st_connguard *g, int64_t now_ms);

/* Starts a thread that calls st_connguard_expire at each deadline, for owners without a
 * loop of their own (libmicrohttpd). Returns 0 or -errno. */
int st_connguard_reaper_start(struct st_connguard *g);

void st_connguard_get_stats(struct st_connguard *g, struct st_connguard_stats *out);

#endif
