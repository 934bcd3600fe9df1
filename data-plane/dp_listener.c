/* Listening sockets and accept. Accepted connections go straight to dp_session. */
#include "dp_listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp_loop.h"
#include "dp_session.h"
#include "st_addr.h"
#include "st_err.h"
#include "st_log.h"

#define DP_ACCEPT_BATCH 64
#define DP_BACKLOG      511

static void
listener_on_accept(struct dp_loop *l, int fd, void *arg, uint32_t events)
{
    struct dp_listener *li = arg;

    (void)l;
    (void)events;
    for (int i = 0; i < DP_ACCEPT_BATCH; i++) {
        struct sockaddr_storage client;
        socklen_t len = sizeof(client);
        int c = accept4(fd, (struct sockaddr *)&client, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (c == -1) {
            int e = errno;

            if (e == EINTR || e == ECONNABORTED) {
                continue;
            }
            if (e != EAGAIN && e != EWOULDBLOCK) {
                st_log(ST_LOG_WARN, e, "accept on %s", li->conf->text);
            }
            return;
        }
        dp_session_accept(li->w, li, c, (struct sockaddr *)&client);
    }
}

static int
listener_socket(const struct st_listen *conf, struct st_err *err)
{
    int one = 1;
    int fd = socket(conf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e;

    if (fd == -1) {
        e = errno;
        return st_err_set(err, -e, NULL, "%s: socket: %s", conf->text, strerror(e));
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        (conf->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)) {
        e = errno;
        close(fd);
        return st_err_set(err, -e, NULL, "%s: setsockopt: %s", conf->text, strerror(e));
    }
    if (bind(fd, (const struct sockaddr *)&conf->addr, conf->addrlen) == -1) {
        e = errno;
        close(fd);
        return st_err_set(err, -e, NULL, "%s: bind: %s", conf->text, strerror(e));
    }
    if (listen(fd, conf->backlog > 0 ? conf->backlog : DP_BACKLOG) == -1) {
        e = errno;
        close(fd);
        return st_err_set(err, -e, NULL, "%s: listen: %s", conf->text, strerror(e));
    }
    return fd;
}

int
dp_listener_open(struct dp_listener *li, struct dp_worker *w, const struct st_listen *conf,
                 struct st_err *err)
{
    int fd = listener_socket(conf, err);
    int rc;

    li->io.fd = -1;
    if (fd < 0) {
        return fd;
    }
    li->conf = conf;
    li->w = w;
    li->io.fd = fd;
    li->io.cb = listener_on_accept;
    li->io.arg = li;
    rc = dp_loop_io_add(&w->loop, &li->io, EPOLLIN);
    if (rc < 0) {
        close(fd);
        li->io.fd = -1;
        return st_err_set(err, rc, NULL, "%s: epoll: %s", conf->text, strerror(-rc));
    }
    return 0;
}

void
dp_listener_close(struct dp_listener *li)
{
    if (li->io.fd == -1) {
        return;
    }
    dp_loop_io_del(&li->w->loop, &li->io);
    close(li->io.fd);
    li->io.fd = -1;
}
