/* Listening sockets and accept. Accepted connections go straight to dp_session. */
#include "dp_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp_log.h"
#include "dp_loop.h"
#include "dp_session.h"
#include "dp_worker.h"
#include "st_addr.h"
#include "st_err.h"
#include "st_log.h"

#define DP_ACCEPT_BATCH    64
#define DP_BACKLOG         511
#define DP_ACCEPT_PAUSE_MS 100
#define DP_ACCEPT_WARN_MS  10000

void
dp_listener_watch(struct dp_listener *li)
{
    int rc;

    if (li->io.fd == -1 || li->watching || li->resume.idx != 0) {
        return;
    }
    rc = dp_loop_io_add(&li->w->loop, &li->io, EPOLLIN);
    if (rc < 0) {
        dp_log(li->w->log, ST_LOG_CRIT, rc, "%s: cannot watch the listening socket again",
               li->conf->text);
        return;
    }
    li->watching = true;
}

void
dp_listener_unwatch(struct dp_listener *li)
{
    if (li->io.fd == -1 || !li->watching) {
        return;
    }
    dp_loop_io_del(&li->w->loop, &li->io);
    li->watching = false;
}

static void
listener_on_resume(struct dp_loop *l, void *arg)
{
    struct dp_listener *li = arg;

    (void)l;
    if (!li->w->cap_paused) { /* at the cap, the worker watches it when a slot frees */
        dp_listener_watch(li);
    }
}

/* Out of fds or memory: the pending connection stays queued and the level-triggered
 * listener would wake us at once, spinning and logging on every turn. Stop watching
 * it for a moment instead (nginx does the same), and warn now and then. */
static void
listener_pause(struct dp_listener *li, int e)
{
    struct dp_loop *l = &li->w->loop;

    if (li->warned_at == 0 || l->now - li->warned_at >= DP_ACCEPT_WARN_MS) {
        dp_log(li->w->log, ST_LOG_WARN, e, "accept on %s: pausing accepts for %d ms",
               li->conf->text, DP_ACCEPT_PAUSE_MS);
        li->warned_at = l->now;
    }
    dp_listener_unwatch(li);
    if (dp_timer_set(l, &li->resume, l->now + DP_ACCEPT_PAUSE_MS) < 0) {
        listener_on_resume(l, li); /* no timer: keep accepting rather than go deaf */
    }
}

static void
listener_on_accept(struct dp_loop *l, int fd, void *arg, uint32_t events)
{
    struct dp_listener *li = arg;

    (void)l;
    (void)events;
    for (int i = 0; i < DP_ACCEPT_BATCH; i++) {
        struct sockaddr_storage client;
        socklen_t len = sizeof(client);
        int c, e;

        /* a slot of stream_max_sessions first: at the cap the connection stays queued */
        if (!dp_worker_session_reserve(li->w)) {
            return;
        }
        c = accept4(fd, (struct sockaddr *)&client, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c != -1) {
            dp_session_accept(li->w, li, c, (struct sockaddr *)&client); /* owns the slot */
            continue;
        }
        e = errno;
        dp_worker_session_release(li->w);
        if (e == EINTR || e == ECONNABORTED) {
            continue;
        }
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            listener_pause(li, e);
        } else if (e != EAGAIN && e != EWOULDBLOCK) {
            dp_log(li->w->log, ST_LOG_WARN, e, "accept on %s", li->conf->text);
        }
        return;
    }
}

static int
listener_socket(const struct st_listen *conf, struct st_err *err)
{
    int one = 1;
    int fd = socket(conf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const char *what;
    int e;

    if (fd == -1) {
        e = errno;
        return st_err_set(err, -e, NULL, "%s: socket: %s", conf->text, strerror(e));
    }
    /* TCP_NODELAY here is inherited by every accepted socket: no syscall per session. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ||
        (conf->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)) {
        what = "setsockopt";
    } else if (bind(fd, (const struct sockaddr *)&conf->addr, conf->addrlen) == -1) {
        what = "bind";
    } else if (listen(fd, conf->backlog > 0 ? conf->backlog : DP_BACKLOG) == -1) {
        what = "listen";
    } else {
        return fd;
    }
    e = errno;
    close(fd);
    return st_err_set(err, -e, NULL, "%s: %s: %s", conf->text, what, strerror(e));
}

static bool
addr_is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)ss;

        return IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
    }
    return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

int
dp_listener_open(struct dp_listener *li, struct dp_worker *w, const struct st_listen *conf,
                 struct st_err *err)
{
    int fd = listener_socket(conf, err);
    int rc;

    li->io.fd = -1;
    li->warned_at = 0;
    li->watching = false;
    dp_timer_init(&li->resume, listener_on_resume, li);
    if (fd < 0) {
        return fd;
    }
    li->conf = conf;
    li->w = w;
    li->local_known = !addr_is_wildcard(&conf->addr);
    li->io.fd = fd;
    li->io.cb = listener_on_accept;
    li->io.arg = li;
    rc = dp_loop_io_add(&w->loop, &li->io, EPOLLIN);
    if (rc < 0) {
        close(fd);
        li->io.fd = -1;
        return st_err_set(err, rc, NULL, "%s: epoll: %s", conf->text, strerror(-rc));
    }
    li->watching = true;
    return 0;
}

void
dp_listener_close(struct dp_listener *li)
{
    if (li->io.fd == -1) {
        return;
    }
    dp_timer_del(&li->w->loop, &li->resume);
    dp_listener_unwatch(li);
    close(li->io.fd);
    li->io.fd = -1;
}
