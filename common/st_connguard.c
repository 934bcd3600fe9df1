/* Connection guard (see st_connguard.h): admission, displacement of the oldest PENDING
 * connection, absolute deadlines, rate-limited log lines. No I/O but the kill callback
 * (by default shutdown(2)) and st_log; the time is always the caller's, so the policy is
 * tested without sockets or clocks. */
#include "st_connguard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "st_addr.h"
#include "st_log.h"
#include "st_util.h"

/* A kind of event gets one log line a second at most. */
#define GUARD_LOG_QUIET_MS 1000

enum conn_state {
    CONN_RESERVED = 0, /* admitted, not claimed yet: no fd */
    CONN_PENDING,
    CONN_ACTIVE,
    CONN_KILLED, /* displaced or timed out; waits for remove (or, unclaimed, its deadline) */
};

struct st_connguard_conn {
    struct st_connguard_conn *prev, *next;
    struct sockaddr_storage peer;
    uint8_t ip[16]; /* IPv4 as ::ffff:a.b.c.d, for the per-address count */
    int fd;
    void *owner;
    int64_t since_ms; /* start of the deadline */
    enum conn_state state;
};

struct conn_list {
    struct st_connguard_conn *head, *tail; /* head: the oldest */
    size_t n;
};

enum log_kind {
    LOG_PER_IP = 0,
    LOG_FULL,
    LOG_DISPLACED,
    LOG_TIMED_OUT,
    LOG_KINDS,
};

struct rate {
    int64_t last_ms; /* of the last line; 0: none yet */
    uint64_t quiet;  /* events since, not logged */
};

struct st_connguard {
    struct st_connguard_limits lim;
    st_connguard_kill_fn *kill;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn_list pending; /* RESERVED and PENDING, by since_ms: deadline order */
    struct conn_list active;
    struct conn_list killed;
    struct rate rates[LOG_KINDS];
    struct st_connguard_stats st;
    pthread_t reaper;
    bool reaper_on;
    bool stopping;
};

/* ------------------------------------------------------------------------- */
/* lists and addresses */

static void
list_append(struct conn_list *l, struct st_connguard_conn *c)
{
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = c;
    } else {
        l->head = c;
    }
    l->tail = c;
    l->n++;
}

static void
list_unlink(struct conn_list *l, struct st_connguard_conn *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        l->head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    } else {
        l->tail = c->prev;
    }
    c->prev = c->next = NULL;
    l->n--;
}

static struct conn_list *
list_of(struct st_connguard *g, const struct st_connguard_conn *c)
{
    switch (c->state) {
    case CONN_RESERVED:
    case CONN_PENDING:
        return &g->pending;
    case CONN_ACTIVE:
        return &g->active;
    case CONN_KILLED:
        break;
    }
    return &g->killed;
}

static void
list_free(struct conn_list *l)
{
    struct st_connguard_conn *c;

    while ((c = l->head) != NULL) {
        list_unlink(l, c);
        free(c);
    }
}

static void
ip_key(const struct sockaddr *sa, uint8_t out[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    memset(out, 0, 16);
    if (sa->sa_family == AF_INET) {
        memcpy(out, v4mapped, sizeof(v4mapped));
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static uint16_t
port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        return ((const struct sockaddr_in *)sa)->sin_port;
    }
    if (sa->sa_family == AF_INET6) {
        return ((const struct sockaddr_in6 *)sa)->sin6_port;
    }
    return 0;
}

static size_t
sockaddr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* The same address and port. */
static bool
same_peer(const struct st_connguard_conn *c, const struct sockaddr *sa)
{
    uint8_t ip[16];

    ip_key(sa, ip);
    return memcmp(c->ip, ip, 16) == 0 && port_of((const struct sockaddr *)&c->peer) == port_of(sa);
}

static size_t
count_ip(const struct conn_list *l, const uint8_t ip[16])
{
    size_t n = 0;

    for (const struct st_connguard_conn *c = l->head; c != NULL; c = c->next) {
        if (memcmp(c->ip, ip, 16) == 0) {
            n++;
        }
    }
    return n;
}

/* ------------------------------------------------------------------------- */
/* log lines */

/* Whether a line about an event of kind k is due at now; *quiet gets the events of that
 * kind left unlogged since its last line. */
static bool
log_due(struct st_connguard *g, enum log_kind k, int64_t now, uint64_t *quiet)
{
    struct rate *r = &g->rates[k];

    if (r->last_ms != 0 && now - r->last_ms < GUARD_LOG_QUIET_MS) {
        r->quiet++;
        return false;
    }
    *quiet = r->quiet;
    r->quiet = 0;
    r->last_ms = now != 0 ? now : 1;
    g->st.lines++;
    return true;
}

static void
log_event(struct st_connguard *g, enum log_kind k, const struct sockaddr *peer, int64_t now)
{
    const struct st_connguard_limits *lim = &g->lim;
    static const enum st_log_level levels[LOG_KINDS] = {
        [LOG_PER_IP] = ST_LOG_INFO,
        [LOG_FULL] = ST_LOG_WARN,
        [LOG_DISPLACED] = ST_LOG_WARN,
        [LOG_TIMED_OUT] = ST_LOG_INFO,
    };
    uint64_t quiet = 0;
    char who[80];
    char more[64] = "";

    if (!log_due(g, k, now, &quiet) || !st_log_enabled(levels[k])) {
        return;
    }
    st_addr_format(peer, who, sizeof(who));
    if (quiet > 0) {
        st_snprintf(more, sizeof(more), " (and %llu more since the last line)",
                    (unsigned long long)quiet);
    }
    switch (k) {
    case LOG_PER_IP:
        st_log(levels[k], 0, "%s: refused a connection from %s: %zu open from that address (%s)%s",
               lim->name, who, lim->max_per_ip, lim->per_ip_key, more);
        break;
    case LOG_FULL:
        st_log(levels[k], 0,
               "%s: refused a connection from %s: %zu open, every one past its %s (%s)%s",
               lim->name, who, lim->max, lim->head, lim->max_key, more);
        break;
    case LOG_DISPLACED:
        st_log(levels[k], 0,
               "%s: closed the connection from %s, the oldest without a finished %s, to admit "
               "a new one: %zu open (%s)%s",
               lim->name, who, lim->head, lim->max, lim->max_key, more);
        break;
    case LOG_TIMED_OUT:
        st_log(levels[k], 0,
               "%s: closed the connection from %s: no finished %s within %s%s%lld s%s%s", lim->name,
               who, lim->head, lim->deadline_key != NULL ? lim->deadline_key : "",
               lim->deadline_key != NULL ? " (" : "", (long long)(lim->deadline_ms / 1000),
               lim->deadline_key != NULL ? ")" : "", more);
        break;
    case LOG_KINDS:
        break;
    }
}

/* ------------------------------------------------------------------------- */
/* policy (every function below but the public ones runs with mu held) */

static void
kill_fd(struct st_connguard *g, int fd, void *owner)
{
    if (g->kill != NULL) {
        g->kill(g->arg, fd, owner);
    } else {
        (void)shutdown(fd, SHUT_RDWR);
    }
}

static void
kill_locked(struct st_connguard *g, struct st_connguard_conn *c)
{
    list_unlink(list_of(g, c), c);
    c->state = CONN_KILLED;
    list_append(&g->killed, c);
    if (c->fd >= 0) { /* else an admission not claimed yet: the claim kills it */
        kill_fd(g, c->fd, c->owner);
    }
}

static void
add_pending(struct st_connguard *g, struct st_connguard_conn *c)
{
    list_append(&g->pending, c);
    if (g->pending.n == 1 && g->reaper_on) {
        pthread_cond_signal(&g->cv); /* the reaper may be waiting without a deadline */
    }
}

static struct st_connguard_conn *
conn_new(const struct sockaddr *peer, enum conn_state state, int64_t now)
{
    struct st_connguard_conn *c = st_xcalloc(1, sizeof(*c));

    memcpy(&c->peer, peer, sockaddr_len(peer));
    ip_key(peer, c->ip);
    c->fd = -1;
    c->since_ms = now;
    c->state = state;
    return c;
}

static int64_t
expire_locked(struct st_connguard *g, int64_t now)
{
    struct st_connguard_conn *c;
    struct st_connguard_conn *next;
    int64_t soonest = INT64_MAX;

    while ((c = g->pending.head) != NULL && c->since_ms + g->lim.deadline_ms <= now) {
        if (c->state == CONN_RESERVED) {
            list_unlink(&g->pending, c); /* admitted, never claimed */
            free(c);
            continue;
        }
        g->st.timed_out++;
        log_event(g, LOG_TIMED_OUT, (const struct sockaddr *)&c->peer, now);
        kill_locked(g, c);
    }
    if (c != NULL) {
        soonest = c->since_ms + g->lim.deadline_ms;
    }
    for (c = g->killed.head; c != NULL; c = next) {
        next = c->next;
        if (c->fd >= 0) {
            continue;
        }
        if (c->since_ms + g->lim.deadline_ms <= now) {
            list_unlink(&g->killed, c); /* displaced before its claim, which never came */
            free(c);
        } else if (c->since_ms + g->lim.deadline_ms < soonest) {
            soonest = c->since_ms + g->lim.deadline_ms;
        }
    }
    return soonest;
}

/* ------------------------------------------------------------------------- */
/* API */

struct st_connguard *
st_connguard_new(const struct st_connguard_limits *lim, st_connguard_kill_fn *kill, void *arg)
{
    struct st_connguard *g = st_xcalloc(1, sizeof(*g));
    pthread_condattr_t ca;

    g->lim = *lim;
    if (g->lim.max == 0) {
        g->lim.max = 1;
    }
    if (g->lim.deadline_ms <= 0) {
        g->lim.deadline_ms = 1;
    }
    g->kill = kill;
    g->arg = arg;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    return g;
}

void
st_connguard_free(struct st_connguard *g)
{
    if (g == NULL) {
        return;
    }
    if (g->reaper_on) {
        pthread_mutex_lock(&g->mu);
        g->stopping = true;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->reaper, NULL);
    }
    list_free(&g->pending);
    list_free(&g->active);
    list_free(&g->killed);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

enum st_connguard_verdict
st_connguard_admit(struct st_connguard *g, const struct sockaddr *peer, int64_t now_ms)
{
    enum st_connguard_verdict v = ST_CONNGUARD_ADMIT;
    uint8_t ip[16];
    size_t counted;

    ip_key(peer, ip);
    pthread_mutex_lock(&g->mu);
    (void)expire_locked(g, now_ms);
    counted = g->pending.n + ((g->lim.flags & ST_CONNGUARD_F_PENDING_ONLY) ? 0 : g->active.n);
    if (g->lim.max_per_ip > 0 &&
        count_ip(&g->pending, ip) + count_ip(&g->active, ip) >= g->lim.max_per_ip) {
        v = ST_CONNGUARD_REFUSE_PER_IP;
        g->st.refused_per_ip++;
        log_event(g, LOG_PER_IP, peer, now_ms);
    } else if (counted >= g->lim.max && g->pending.head == NULL) {
        v = ST_CONNGUARD_REFUSE_FULL;
        g->st.refused_full++;
        log_event(g, LOG_FULL, peer, now_ms);
    } else {
        if (counted >= g->lim.max) {
            struct st_connguard_conn *victim = g->pending.head;

            g->st.displaced++;
            log_event(g, LOG_DISPLACED, (const struct sockaddr *)&victim->peer, now_ms);
            kill_locked(g, victim);
        }
        g->st.admitted++;
        add_pending(g, conn_new(peer, CONN_RESERVED, now_ms));
    }
    pthread_mutex_unlock(&g->mu);
    return v;
}

/* The admission of peer not claimed yet in l, the newest first. */
static struct st_connguard_conn *
find_unclaimed(struct conn_list *l, const struct sockaddr *peer)
{
    for (struct st_connguard_conn *c = l->tail; c != NULL; c = c->prev) {
        if (c->fd < 0 && (c->state == CONN_RESERVED || c->state == CONN_KILLED) &&
            same_peer(c, peer)) {
            return c;
        }
    }
    return NULL;
}

struct st_connguard_conn *
st_connguard_claim(struct st_connguard *g, const struct sockaddr *peer, int fd, void *owner,
                   int64_t now_ms)
{
    struct st_connguard_conn *c;

    pthread_mutex_lock(&g->mu);
    c = find_unclaimed(&g->pending, peer);
    if (c == NULL) {
        c = find_unclaimed(&g->killed, peer);
    }
    if (c == NULL) {
        c = conn_new(peer, CONN_PENDING, now_ms);
        add_pending(g, c);
    }
    c->fd = fd;
    c->owner = owner;
    if (c->state == CONN_KILLED) {
        kill_fd(g, fd, owner);
    } else {
        c->state = CONN_PENDING;
    }
    pthread_mutex_unlock(&g->mu);
    return c;
}

void
st_connguard_head_done(struct st_connguard *g, struct st_connguard_conn *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    if (c->state == CONN_PENDING || c->state == CONN_RESERVED) {
        list_unlink(&g->pending, c);
        c->state = CONN_ACTIVE;
        list_append(&g->active, c);
    }
    pthread_mutex_unlock(&g->mu);
}

void
st_connguard_head_again(struct st_connguard *g, struct st_connguard_conn *c, int64_t now_ms)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    if (c->state == CONN_ACTIVE) {
        list_unlink(&g->active, c);
        c->state = CONN_PENDING;
        c->since_ms = now_ms;
        add_pending(g, c);
    }
    pthread_mutex_unlock(&g->mu);
}

void
st_connguard_remove(struct st_connguard *g, struct st_connguard_conn *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    list_unlink(list_of(g, c), c);
    pthread_mutex_unlock(&g->mu);
    free(c);
}

int64_t
st_connguard_expire(struct st_connguard *g, int64_t now_ms)
{
    int64_t next;

    pthread_mutex_lock(&g->mu);
    next = expire_locked(g, now_ms);
    pthread_mutex_unlock(&g->mu);
    return next;
}

static void *
reaper_main(void *arg)
{
    struct st_connguard *g = arg;

    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        int64_t now = st_mono_ms();
        int64_t next = expire_locked(g, now);

        if (next == INT64_MAX) {
            pthread_cond_wait(&g->cv, &g->mu);
        } else {
            struct timespec ts;

            st_mono_deadline(next - now, &ts);
            (void)pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int
st_connguard_reaper_start(struct st_connguard *g)
{
    int rc;

    pthread_mutex_lock(&g->mu);
    rc = pthread_create(&g->reaper, NULL, reaper_main, g);
    g->reaper_on = rc == 0;
    pthread_mutex_unlock(&g->mu);
    return -rc;
}

void
st_connguard_get_stats(struct st_connguard *g, struct st_connguard_stats *out)
{
    pthread_mutex_lock(&g->mu);
    *out = g->st;
    out->pending = g->pending.n;
    out->active = g->active.n;
    pthread_mutex_unlock(&g->mu);
}
