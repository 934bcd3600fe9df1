/* Cluster gate (see cp_gate.h): accept, admit, relay.
 *
 * A connection is two sockets, fd[GATE_PEER] (the DP) and fd[GATE_NNG] (ours to nng), and
 * two directions, dir[s] carrying what fd[s] reads to fd[!s]. Level-triggered epoll: a
 * socket asks for EPOLLIN while its direction has room and no end yet, for EPOLLOUT while
 * the other direction has bytes for it. An end read is passed on as shutdown(SHUT_WR)
 * once the bytes before it are written; when both directions are shut, the connection is
 * done. A socket that hung up (EPOLLHUP: it ended and we shut our side, or it was reset)
 * still has its last bytes read and passed on; it leaves the epoll set while it has
 * nothing to offer, since epoll reports a hang-up whatever the interest. Closing is deferred:
 * whatever closes a connection (an error, the guard's kill, the end) marks it and puts it on the
 * close list, freed after the events in hand are dispatched (CONVENTIONS §5), so no event can reach
 * a freed connection. */
#include "cp_gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "st_addr.h"
#include "st_conf.h"
#include "st_connguard.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

#define CP_GATE_BUF       (64u << 10) /* per direction, while bytes wait */
#define GATE_EVENTS       128
#define GATE_ACCEPTS      64  /* per wake-up: the relays get their turn */
#define GATE_ROUNDS       16  /* read/write rounds per event: fairness */
#define GATE_ACCEPT_PAUSE 100 /* ms without accepting after EMFILE/ENFILE */
#define GATE_LOG_QUIET_MS 1000
#define GATE_PORTS        65536

enum {
    GATE_PEER = 0,
    GATE_NNG = 1,
};

struct gate_conn;

/* What an epoll event points to: a socket of a connection, or the listener or the wake. */
struct gate_end {
    struct gate_conn *c; /* NULL: the listener or the wake (see kind) */
    int side;            /* GATE_PEER or GATE_NNG */
};

struct gate_dir {
    uint8_t *buf; /* CP_GATE_BUF bytes while len > 0 or a read is under way, else NULL */
    size_t off, len;
    bool eof;  /* the reading socket ended */
    bool shut; /* the end passed on: shutdown(SHUT_WR) on the other socket */
};

struct gate_conn {
    int fd[2];
    struct gate_end end[2];
    struct gate_dir dir[2];
    uint32_t events[2]; /* the interest registered with epoll */
    bool watched[2];    /* registered at all */
    bool hup[2];        /* EPOLLHUP seen: reads drain what is left, writes would fail */
    bool connecting;    /* fd[GATE_NNG]'s connect is under way */
    bool closing;       /* on the close list */
    uint16_t port;      /* local port of fd[GATE_NNG], the key nng reports */
    struct sockaddr_storage peer;
    struct st_connguard_conn *gc;
    struct gate_conn *prev, *next; /* every connection (the gate thread's) */
    struct gate_conn *next_close;
};

struct gate_rate {
    int64_t last_ms;
    uint64_t quiet;
};

struct cp_gate {
    const struct st_conf *conf;
    int lfd;
    int ep;
    int wake; /* eventfd: cp_gate_stop */
    struct gate_end lend, wend;
    struct sockaddr_in backend;
    struct st_connguard *guard;
    pthread_t thread;
    bool running;       /* the thread was started */
    bool stop;          /* under mu */
    pthread_mutex_t mu; /* by_port, and each connection's gc while listed there */
    struct gate_conn **by_port;
    struct gate_conn *all; /* the gate thread's, as the fields below */
    struct gate_conn *to_close;
    int64_t accept_paused_until;
    struct gate_rate accept_errors, relay_errors;
};

/* ------------------------------------------------------------------------- */
/* helpers */

/* Logs a failure of the gate itself at most once a second. */
static void
gate_log_error(struct gate_rate *r, int err, const char *what)
{
    const int64_t now = st_mono_ms();
    char more[64] = "";

    if (r->last_ms != 0 && now - r->last_ms < GATE_LOG_QUIET_MS) {
        r->quiet++;
        return;
    }
    if (r->quiet > 0) {
        st_snprintf(more, sizeof(more), " (and %llu more since the last line)",
                    (unsigned long long)r->quiet);
    }
    r->last_ms = now != 0 ? now : 1;
    r->quiet = 0;
    st_log(ST_LOG_ERR, err, "cluster: %s%s", what, more);
}

static void
set_nodelay(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Registers (or changes) the interest of connection c's socket s. Returns 0 or -errno. */
static int
watch(struct cp_gate *g, struct gate_conn *c, int s)
{
    const struct gate_dir *in = &c->dir[s];
    const struct gate_dir *out = &c->dir[!s];
    const bool nng_down = s == GATE_NNG && c->connecting;
    uint32_t ev = 0;

    if (!in->eof && in->len < CP_GATE_BUF && !nng_down) {
        ev |= EPOLLIN;
    }
    if (out->len > 0 || nng_down) {
        ev |= EPOLLOUT;
    }
    if (c->hup[s] && ev == 0) {
        /* epoll reports a hang-up whatever the interest: out of the set until there is
         * room to read again, or the connection spins */
        if (c->watched[s] && epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd[s], NULL) == -1) {
            return -errno;
        }
        c->watched[s] = false;
        return 0;
    }
    if (c->watched[s] && ev == c->events[s]) {
        return 0;
    }
    if (epoll_ctl(g->ep, c->watched[s] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd[s],
                  &(struct epoll_event){.events = ev, .data.ptr = &c->end[s]}) == -1) {
        return -errno;
    }
    c->watched[s] = true;
    c->events[s] = ev;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* closing */

static void
conn_close(struct cp_gate *g, struct gate_conn *c)
{
    if (!c->closing) {
        c->closing = true;
        c->next_close = g->to_close;
        g->to_close = c;
    }
}

/* The guard's kill (under its lock, on the gate thread: the guard is only called from
 * there with anything that kills). */
static void
on_kill(void *arg, int fd, void *owner)
{
    (void)fd;
    conn_close(arg, owner);
}

static void
conn_free(struct cp_gate *g, struct gate_conn *c)
{
    pthread_mutex_lock(&g->mu);
    if (g->by_port[c->port] == c) {
        g->by_port[c->port] = NULL;
    }
    pthread_mutex_unlock(&g->mu);
    st_connguard_remove(g->guard, c->gc);
    for (int s = 0; s < 2; s++) {
        if (c->fd[s] >= 0) {
            close(c->fd[s]); /* leaves the epoll set with it */
        }
        free(c->dir[s].buf);
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        g->all = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    free(c);
}

static void
reap(struct cp_gate *g)
{
    struct gate_conn *c;

    while ((c = g->to_close) != NULL) {
        g->to_close = c->next_close;
        conn_free(g, c);
    }
}

/* ------------------------------------------------------------------------- */
/* relaying */

/* Reads what fd[s] has into dir[s]. Returns bytes read, 0 (nothing now, or the end
 * noted), or -1 when the connection must close. */
static ssize_t
pump_read(struct gate_conn *c, int s)
{
    struct gate_dir *d = &c->dir[s];
    ssize_t n;

    if (d->eof || (s == GATE_NNG && c->connecting) || d->len == CP_GATE_BUF) {
        return 0;
    }
    if (d->buf == NULL) {
        d->buf = st_xmalloc(CP_GATE_BUF);
        d->off = 0;
    }
    if (d->off + d->len == CP_GATE_BUF) {
        memmove(d->buf, d->buf + d->off, d->len);
        d->off = 0;
    }
    n = recv(c->fd[s], d->buf + d->off + d->len, CP_GATE_BUF - d->off - d->len, 0);
    if (n > 0) {
        d->len += (size_t)n;
        return n;
    }
    if (n == 0) {
        d->eof = true;
        return 0;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

/* Writes dir[s]'s bytes to fd[!s], then passes an end on. Returns bytes written, 0, or
 * -1 when the connection must close. */
static ssize_t
pump_write(struct gate_conn *c, int s)
{
    struct gate_dir *d = &c->dir[s];
    const int to = !s;
    ssize_t n = 0;

    if (to == GATE_NNG && c->connecting) {
        return 0;
    }
    if (d->len > 0) {
        n = send(c->fd[to], d->buf + d->off, d->len, MSG_NOSIGNAL);
        if (n == -1) {
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        }
        d->off += (size_t)n;
        d->len -= (size_t)n;
    }
    if (d->len == 0) {
        free(d->buf);
        d->buf = NULL;
        d->off = 0;
        if (d->eof && !d->shut) {
            (void)shutdown(c->fd[to], SHUT_WR);
            d->shut = true;
        }
    }
    return n;
}

/* Moves bytes both ways until nothing moves (or GATE_ROUNDS). Returns false when the
 * connection must close. */
static bool
pump(struct gate_conn *c)
{
    for (int round = 0; round < GATE_ROUNDS; round++) {
        ssize_t moved = 0;

        for (int s = 0; s < 2; s++) {
            ssize_t r = pump_read(c, s);
            ssize_t w = r < 0 ? -1 : pump_write(c, s);

            if (r < 0 || w < 0) {
                return false;
            }
            moved += r + w;
        }
        if (moved == 0) {
            break;
        }
    }
    return !(c->dir[0].shut && c->dir[1].shut);
}

/* Whether the connect to nng finished well (the first EPOLLOUT on fd[GATE_NNG]). */
static bool
connect_done(struct cp_gate *g, struct gate_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd[GATE_NNG], SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }
    if (err != 0) {
        gate_log_error(&g->relay_errors, err, "cannot reach the sync server's listener");
        return false;
    }
    c->connecting = false;
    return true;
}

static void
conn_event(struct cp_gate *g, struct gate_conn *c, int s, uint32_t ev)
{
    bool ok = true;

    if (c->closing) {
        return;
    }
    if (s == GATE_NNG && c->connecting && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        ok = connect_done(g, c);
    }
    if (ev & EPOLLHUP) {
        c->hup[s] = true;
    }
    if (!ok || (ev & EPOLLERR) || !pump(c) || watch(g, c, GATE_PEER) < 0 ||
        watch(g, c, GATE_NNG) < 0) {
        conn_close(g, c);
    }
}

/* ------------------------------------------------------------------------- */
/* accepting */

/* Opens the relay of an admitted connection fd from peer. Returns false (fd closed, the
 * admission given back) when it cannot. */
static bool
conn_open(struct cp_gate *g, int fd, const struct sockaddr_storage *peer)
{
    struct gate_conn *c = st_xcalloc(1, sizeof(*c));
    struct sockaddr_in local;
    socklen_t len = sizeof(local);
    int e = 0;

    c->fd[GATE_PEER] = fd;
    c->fd[GATE_NNG] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->peer = *peer;
    for (int s = 0; s < 2; s++) {
        c->end[s].c = c;
        c->end[s].side = s;
    }
    if (c->fd[GATE_NNG] == -1) {
        e = errno;
    } else if (connect(c->fd[GATE_NNG], (const struct sockaddr *)&g->backend, sizeof(g->backend)) ==
               -1) {
        e = errno == EINPROGRESS ? 0 : errno;
        c->connecting = e == 0;
    }
    if (e == 0 && getsockname(c->fd[GATE_NNG], (struct sockaddr *)&local, &len) == -1) {
        e = errno;
    }
    c->gc = st_connguard_claim(g->guard, (const struct sockaddr *)peer, fd, c, st_mono_ms());
    c->next = g->all;
    if (g->all != NULL) {
        g->all->prev = c;
    }
    g->all = c;
    if (e == 0) {
        set_nodelay(fd);
        set_nodelay(c->fd[GATE_NNG]);
        c->port = ntohs(local.sin_port);
        pthread_mutex_lock(&g->mu);
        g->by_port[c->port] = c;
        pthread_mutex_unlock(&g->mu);
        e = -watch(g, c, GATE_PEER);
        if (e == 0) {
            e = -watch(g, c, GATE_NNG);
        }
    }
    if (e != 0) {
        gate_log_error(&g->relay_errors, e, "cannot relay a data plane's connection");
        conn_close(g, c);
        return false;
    }
    return true;
}

/* Rests the listener until `until` (monotonic ms; 0: listens again). Out of descriptors
 * or memory, it rests GATE_ACCEPT_PAUSE ms (the pending connections wait in the backlog)
 * instead of waking the thread in a loop. */
static void
accept_pause(struct cp_gate *g, int64_t until)
{
    struct epoll_event ev = {.events = until != 0 ? 0 : EPOLLIN, .data.ptr = &g->lend};

    g->accept_paused_until = until;
    (void)epoll_ctl(g->ep, EPOLL_CTL_MOD, g->lfd, &ev);
}

static void
accept_some(struct cp_gate *g)
{
    for (int i = 0; i < GATE_ACCEPTS; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(g->lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                gate_log_error(&g->accept_errors, errno,
                               "cannot accept data planes' connections for now");
                accept_pause(g, st_mono_ms() + GATE_ACCEPT_PAUSE);
            }
            return; /* EAGAIN, or an aborted connection: the next wake-up */
        }
        if (st_connguard_admit(g->guard, (const struct sockaddr *)&peer, st_mono_ms()) !=
            ST_CONNGUARD_ADMIT) {
            close(fd);
            continue;
        }
        (void)conn_open(g, fd, &peer);
    }
}

/* ------------------------------------------------------------------------- */
/* the thread */

static int
wait_ms(const struct cp_gate *g, int64_t next, int64_t now)
{
    int64_t until = next;

    if (g->accept_paused_until != 0 && g->accept_paused_until < until) {
        until = g->accept_paused_until;
    }
    if (until == INT64_MAX) {
        return -1;
    }
    return until <= now ? 0 : (int)(until - now > 60000 ? 60000 : until - now);
}

static bool
stopping(struct cp_gate *g)
{
    bool stop;

    pthread_mutex_lock(&g->mu);
    stop = g->stop;
    pthread_mutex_unlock(&g->mu);
    return stop;
}

static void *
gate_main(void *arg)
{
    struct cp_gate *g = arg;
    struct epoll_event ev[GATE_EVENTS];

    while (!stopping(g)) {
        int64_t now = st_mono_ms();
        int64_t next = st_connguard_expire(g->guard, now);
        int n;

        if (g->accept_paused_until != 0 && g->accept_paused_until <= now) {
            accept_pause(g, 0);
        }
        reap(g);
        n = epoll_wait(g->ep, ev, GATE_EVENTS, wait_ms(g, next, now));
        for (int i = 0; i < n; i++) {
            struct gate_end *e = ev[i].data.ptr;

            if (e == &g->lend) {
                accept_some(g);
            } else if (e != &g->wend) {
                conn_event(g, e->c, e->side, ev[i].events);
            }
        }
        reap(g);
    }
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* start and stop */

static int
listen_public(struct cp_gate *g, struct st_err *err)
{
    const struct st_listen *l = &g->conf->cluster_listen.v[0];
    int one = 1;
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == -1 ||
        listen(fd, l->backlog > 0 ? l->backlog : SOMAXCONN) == -1) {
        int e = errno;

        if (fd != -1) {
            close(fd);
        }
        return st_err_set(err, -e, "cluster_listen", "cluster_listen: cannot listen on %s: %s",
                          l->text, strerror(e));
    }
    g->lfd = fd;
    return 0;
}

static int
setup(struct cp_gate *g, struct st_err *err)
{
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = &g->lend};
    struct epoll_event we = {.events = EPOLLIN, .data.ptr = &g->wend};
    int rc = listen_public(g, err);

    if (rc < 0) {
        return rc;
    }
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    g->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g->ep == -1 || g->wake == -1 || epoll_ctl(g->ep, EPOLL_CTL_ADD, g->lfd, &le) == -1 ||
        epoll_ctl(g->ep, EPOLL_CTL_ADD, g->wake, &we) == -1) {
        return st_err_set(err, -errno, NULL, "cluster: cannot set up the gate: %s",
                          strerror(errno));
    }
    rc = pthread_create(&g->thread, NULL, gate_main, g);
    if (rc != 0) {
        return st_err_set(err, -rc, NULL, "cluster: cannot start the gate: %s", strerror(rc));
    }
    g->running = true;
    return 0;
}

int
cp_gate_start(const struct st_conf *conf, uint16_t backend_port, struct cp_gate **out,
              struct st_err *err)
{
    const bool tls = conf->cluster_mtls != ST_MTLS_OFF;
    const struct st_connguard_limits lim = {
        .name = "cluster",
        .head = tls ? "TLS handshake" : "handshake",
        .max = (size_t)conf->cluster_max_pending,
        .max_key = "cluster_max_pending",
        .deadline_ms = (int64_t)conf->cluster_handshake_timeout * 1000,
        .deadline_key = "cluster_handshake_timeout",
        .flags = ST_CONNGUARD_F_PENDING_ONLY,
    };
    struct cp_gate *g = st_xcalloc(1, sizeof(*g));
    int rc;

    *out = NULL;
    g->conf = conf;
    g->lfd = g->ep = g->wake = -1;
    g->backend.sin_family = AF_INET;
    g->backend.sin_port = htons(backend_port);
    g->backend.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_mutex_init(&g->mu, NULL);
    g->by_port = st_xcalloc(GATE_PORTS, sizeof(*g->by_port));
    g->guard = st_connguard_new(&lim, on_kill, g);
    rc = setup(g, err);
    if (rc < 0) {
        cp_gate_stop(g);
        cp_gate_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

bool
cp_gate_verified(struct cp_gate *g, uint16_t port)
{
    struct gate_conn *c;

    pthread_mutex_lock(&g->mu);
    c = g->by_port[port];
    if (c != NULL) {
        st_connguard_head_done(g->guard, c->gc);
    }
    pthread_mutex_unlock(&g->mu);
    return c != NULL;
}

bool
cp_gate_peer(struct cp_gate *g, uint16_t port, struct sockaddr_storage *out)
{
    struct gate_conn *c;

    pthread_mutex_lock(&g->mu);
    c = g->by_port[port];
    if (c != NULL) {
        *out = c->peer;
    }
    pthread_mutex_unlock(&g->mu);
    return c != NULL;
}

void
cp_gate_stop(struct cp_gate *g)
{
    if (g == NULL) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_mutex_unlock(&g->mu);
    if (g->running) {
        uint64_t one = 1;

        if (write(g->wake, &one, sizeof(one)) == -1) {
            st_log(ST_LOG_ERR, errno, "cluster: cannot wake the gate");
        }
        pthread_join(g->thread, NULL);
        g->running = false;
    }
    for (struct gate_conn *c = g->all; c != NULL; c = c->next) {
        conn_close(g, c);
    }
    reap(g);
    if (g->lfd != -1) {
        close(g->lfd);
        g->lfd = -1;
    }
}

void
cp_gate_free(struct cp_gate *g)
{
    if (g == NULL) {
        return;
    }
    if (g->ep != -1) {
        close(g->ep);
    }
    if (g->wake != -1) {
        close(g->wake);
    }
    st_connguard_free(g->guard);
    free(g->by_port);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
