/* The LISTEN thread (see cp_pg_listen.h). */
#include "cp_pg_listen.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cp_pg.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

#define LISTEN_BACKOFF_MIN_MS 100
#define LISTEN_BACKOFF_MAX_MS 2000

struct cp_pg_listen {
    const struct st_conf *conf;
    cp_pg_listen_fn *fn;
    void *arg;
    int wake_fd; /* eventfd: readable once stop was asked */
    pthread_t thread;
    PGconn *conn;
    char notice[256]; /* the server's last message (e.g. why it closed the connection) */
};

/* Waits up to ms (or forever when negative) for fd (if >= 0) or the stop event.
 * Returns 1 when stop was asked, 0 otherwise. */
static int
wait_for(struct cp_pg_listen *l, int fd, int ms)
{
    struct pollfd p[2] = {{.fd = l->wake_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    nfds_t n = fd >= 0 ? 2 : 1;
    int64_t end = ms >= 0 ? st_mono_ms() + ms : 0;

    for (;;) {
        int left = ms >= 0 ? (int)(end - st_mono_ms()) : -1;

        if (ms >= 0 && left < 0) {
            left = 0;
        }
        if (poll(p, n, left) >= 0 || errno != EINTR) {
            break;
        }
    }
    return (p[0].revents & POLLIN) != 0;
}

/* src on one line in buf: newlines and tabs become single spaces, none at the end. */
static void
one_line(const char *src, char *buf, size_t size)
{
    size_t n = 0;

    for (; *src != '\0' && n + 1 < size; src++) {
        char c = *src == '\n' || *src == '\t' || *src == '\r' ? ' ' : *src;

        if (c == ' ' && (n == 0 || buf[n - 1] == ' ')) {
            continue;
        }
        buf[n++] = c;
    }
    while (n > 0 && buf[n - 1] == ' ') {
        n--;
    }
    buf[n] = '\0';
}

/* libpq prints server notices (e.g. the FATAL of a terminated backend) on stderr by
 * default; the thread keeps the last one for its single "lost" line instead. */
static void
keep_notice(void *arg, const char *message)
{
    struct cp_pg_listen *l = arg;

    one_line(message, l->notice, sizeof(l->notice));
}

/* Connects and LISTENs. Returns 0, or -ST_EDB with err filled. */
static int
subscribe(struct cp_pg_listen *l, struct st_err *err)
{
    PGresult *res;
    int rc = cp_pg_connect(l->conf, &l->conn, err);

    if (rc < 0) {
        return rc;
    }
    l->notice[0] = '\0';
    PQsetNoticeProcessor(l->conn, keep_notice, l);
    res = PQexec(l->conn, "LISTEN " CP_PG_CHANNEL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = st_err_set(err, -ST_EDB, NULL, "postgres: LISTEN failed: %s", PQerrorMessage(l->conn));
        PQclear(res);
        PQfinish(l->conn);
        l->conn = NULL;
        return rc;
    }
    PQclear(res);
    return 0;
}

/* Calls back once if notifications are queued (one call per burst) and frees them. */
static void
deliver(struct cp_pg_listen *l)
{
    PGnotify *nt;
    int n = 0;

    while ((nt = PQnotifies(l->conn)) != NULL) {
        n++;
        PQfreemem(nt);
    }
    if (n > 0) {
        l->fn(l->arg);
    }
}

/* Listens until the connection breaks. Returns 1 when stop was asked, 0 when it broke. */
static int
listen_loop(struct cp_pg_listen *l)
{
    for (;;) {
        int fd;

        deliver(l); /* what PQexec or the last read queued */
        fd = PQsocket(l->conn);
        if (fd < 0) {
            return 0;
        }
        if (wait_for(l, fd, -1)) {
            return 1;
        }
        if (PQconsumeInput(l->conn) == 0 || PQstatus(l->conn) != CONNECTION_OK) {
            return 0;
        }
    }
}

static void *
run(void *arg)
{
    struct cp_pg_listen *l = arg;
    unsigned int seed = (unsigned int)st_mono_ms() ^ (unsigned int)getpid();
    int backoff = LISTEN_BACKOFF_MIN_MS;
    bool ever = false; /* subscribed at least once */
    bool lost = false; /* a failure since the last subscription (logged once) */

    for (;;) {
        struct st_err err = {0};
        char msg[256];

        if (subscribe(l, &err) == 0) {
            backoff = LISTEN_BACKOFF_MIN_MS;
            if (lost) {
                st_log(ST_LOG_NOTICE, 0, "postgres: LISTEN %s connection %s", CP_PG_CHANNEL,
                       ever ? "regained" : "established");
                lost = false;
                l->fn(l->arg); /* notifications may have been missed meanwhile */
            }
            ever = true;
            if (listen_loop(l)) {
                break;
            }
            one_line(l->notice[0] != '\0' ? l->notice : PQerrorMessage(l->conn), msg, sizeof(msg));
            st_log(ST_LOG_WARN, 0, "postgres: LISTEN %s connection lost: %s; reconnecting",
                   CP_PG_CHANNEL, msg[0] != '\0' ? msg : "connection closed");
            lost = true;
            PQfinish(l->conn);
            l->conn = NULL;
            /* first retry after 50-100 ms: a restart is usually quick */
        } else if (!lost) {
            one_line(err.msg, msg, sizeof(msg));
            st_log(ST_LOG_WARN, 0, "%s; LISTEN %s retrying", msg, CP_PG_CHANNEL);
            lost = true;
        }
        {
            /* full jitter over the upper half: [backoff/2, backoff] */
            int ms = backoff / 2 + (int)(rand_r(&seed) % (unsigned int)(backoff / 2 + 1));

            if (wait_for(l, -1, ms)) {
                break;
            }
            backoff = backoff * 2 > LISTEN_BACKOFF_MAX_MS ? LISTEN_BACKOFF_MAX_MS : backoff * 2;
        }
    }
    PQfinish(l->conn);
    l->conn = NULL;
    return NULL;
}

int
cp_pg_listen_start(const struct st_conf *conf, cp_pg_listen_fn *fn, void *arg,
                   struct cp_pg_listen **out, struct st_err *err)
{
    struct cp_pg_listen *l = st_xcalloc(1, sizeof(*l));
    int rc;

    *out = NULL;
    l->conf = conf;
    l->fn = fn;
    l->arg = arg;
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0) {
        rc = -errno;
        free(l);
        return st_err_set(err, rc, NULL, "cannot create the LISTEN thread's eventfd: %s",
                          strerror(-rc));
    }
    rc = pthread_create(&l->thread, NULL, run, l);
    if (rc != 0) {
        close(l->wake_fd);
        free(l);
        return st_err_set(err, -rc, NULL, "cannot start the LISTEN thread: %s", strerror(rc));
    }
    *out = l;
    return 0;
}

void
cp_pg_listen_stop(struct cp_pg_listen *l)
{
    uint64_t one = 1;

    if (l == NULL) {
        return;
    }
    while (write(l->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    pthread_join(l->thread, NULL);
    close(l->wake_fd);
    free(l);
}
