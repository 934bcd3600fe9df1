/* Listen-address lists (`*_listen` keys, Kong's syntax) and host:port parsing. */
#ifndef STRAIT_ST_ADDR_H
#define STRAIT_ST_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct st_err;

#define ST_LISTEN_F_SSL       (1u << 0)
#define ST_LISTEN_F_PROXY     (1u << 1) /* proxy_protocol */
#define ST_LISTEN_F_REUSEPORT (1u << 2)
#define ST_LISTEN_F_UDP       (1u << 3)
#define ST_LISTEN_F_BIND      (1u << 4)
#define ST_LISTEN_F_HTTP2     (1u << 5)
#define ST_LISTEN_F_DEFERRED  (1u << 6)

/* Which flags a key accepts: the stream set or the http set (admin, status, cluster). */
enum st_listen_kind {
    ST_LISTEN_STREAM = 0,
    ST_LISTEN_HTTP,
};

struct st_listen {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned flags;
    int backlog;    /* 0: the default */
    char text[128]; /* "127.0.0.1:5555", for logs */
};

struct st_listen_set {
    size_t n; /* 0 when the key is "off" */
    struct st_listen *v;
};

/* Parses a comma-separated list of "<ip>|[ipv6]|localhost:<port> [flags...]" or "off".
 * key names the setting in error messages (Kong's text: "<key> must be of form: ...").
 * On success *out owns an array freed by st_listen_set_fini(). Returns 0 or -ST_ECONF. */
int st_listen_parse(const char *key, const char *value, enum st_listen_kind kind,
                    struct st_listen_set *out, struct st_err *err);

void st_listen_set_fini(struct st_listen_set *set);

/* Parses "host:port" where host is an IPv4/IPv6 literal ([::1]:80) or "localhost".
 * Returns 0 or -ST_EPARSE. */
int st_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* Formats "ip:port" ("[ip]:port" for IPv6) into buf. */
void st_addr_format(const struct sockaddr *sa, char *buf, size_t size);

/* The port of an IPv4 or IPv6 address, in host order. */
uint16_t st_addr_port(const struct sockaddr *sa);

#endif
