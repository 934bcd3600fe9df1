/* Listen-address lists in Kong's `*_listen` syntax, and "host:port" parsing.
 *
 * Parses and formats only: no sockets are opened here, and host names other than
 * "localhost" are refused (a listener binds an address, not a DNS answer). Which
 * flags a given key may use beyond Kong's syntax is st_conf's business. */
#include "st_addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_str.h"
#include "st_util.h"

#define LISTEN_ENTRIES_MAX 64

/* Kong's flag patterns, in Kong's order (kong/conf_loader/listeners.lua), as they
 * appear in its "must be of form" message. */
static const char STREAM_FORM[] =
    "[udp] [ssl] [proxy_protocol] [bind] [reuseport] [backlog=%d+] [ipv6only=on] "
    "[ipv6only=off] [so_keepalive=on] [so_keepalive=off] [so_keepalive=%w*:%w*:%d*]";
static const char HTTP_FORM[] =
    "[ssl] [http2] [proxy_protocol] [deferred] [bind] [reuseport] [backlog=%d+] "
    "[ipv6only=on] [ipv6only=off] [so_keepalive=on] [so_keepalive=off] "
    "[so_keepalive=%w*:%w*:%d*]";

struct flag_def {
    const char *name;
    unsigned flag;
    unsigned kinds; /* bit (1 << enum st_listen_kind) */
};

#define K_STREAM (1u << ST_LISTEN_STREAM)
#define K_HTTP   (1u << ST_LISTEN_HTTP)

static const struct flag_def flag_defs[] = {
    {"udp", ST_LISTEN_F_UDP, K_STREAM},
    {"ssl", ST_LISTEN_F_SSL, K_STREAM | K_HTTP},
    {"http2", ST_LISTEN_F_HTTP2, K_HTTP},
    {"proxy_protocol", ST_LISTEN_F_PROXY, K_STREAM | K_HTTP},
    {"deferred", ST_LISTEN_F_DEFERRED, K_HTTP},
    {"bind", ST_LISTEN_F_BIND, K_STREAM | K_HTTP},
    {"reuseport", ST_LISTEN_F_REUSEPORT, K_STREAM | K_HTTP},
};

/* Fills err with the specific reason, then Kong's text when all of it fits in
 * err->msg (never a cut sentence): "unknown flag 'sssl'; stream_listen must be of
 * form: ...". A caller that must shorten the line cuts at "; " and keeps the reason. */
static int listen_fail(struct st_err *err, const char *key, enum st_listen_kind kind,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
listen_fail(struct st_err *err, const char *key, enum st_listen_kind kind, const char *fmt, ...)
{
    char reason[160], full[sizeof(err->msg)];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(reason, sizeof(reason), fmt, ap) < 0) {
        reason[0] = '\0';
    }
    va_end(ap);
    if (st_snprintf(full, sizeof(full),
                    "%s; %s must be of form: [off] | <ip>:<port> %s, [... next entry ...]", reason,
                    key, kind == ST_LISTEN_STREAM ? STREAM_FORM : HTTP_FORM) != 0) {
        return st_err_set(err, -ST_ECONF, key, "%s", reason);
    }
    return st_err_set(err, -ST_ECONF, key, "%s", full);
}

/* The n decimal digits at p as a number in 1..max, or -1. */
static int
parse_num(const char *p, size_t n, long max)
{
    long v = 0;

    if (n == 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i])) {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
        if (v > max) {
            return -1;
        }
    }
    return v > 0 ? (int)v : -1;
}

/* Port: 1..65535, at most 5 decimal digits. Returns the port or -1. */
static int
parse_port(const char *p, size_t n)
{
    return n > 5 ? -1 : parse_num(p, n, 65535);
}

/* Splits "host:port", "[v6]:port" into host text and port text. Returns 0 or -1. */
static int
split_host_port(const char *s, size_t n, char *host, size_t hostsz, const char **port,
                size_t *portlen)
{
    const char *h = s, *end = NULL; /* the host is h..end, the port after end's ':' */
    size_t hlen;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);

        if (close == NULL || close + 1 >= s + n || close[1] != ':') {
            return -1;
        }
        h = s + 1;
        end = close;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ':') {
                if (end != NULL) {
                    return -1; /* a bare IPv6 address: brackets are required */
                }
                end = s + i;
            }
        }
        if (end == NULL) {
            return -1;
        }
    }
    hlen = (size_t)(end - h);
    if (hlen == 0 || hlen >= hostsz) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = end + (h == s ? 1 : 2);
    *portlen = n - (size_t)(*port - s);
    return 0;
}

/* Host literal (or "localhost") and port into a sockaddr. bracketed: the host was
 * written in brackets, so it must be IPv6. */
static int
fill_sockaddr(const char *host, bool bracketed, int port, struct sockaddr_storage *ss,
              socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (!bracketed) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;

        if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1) {
            return -1;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
        return 0;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
        return -1;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*sin6);
    return 0;
}

int
st_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    size_t portlen;
    int p;

    if (s == NULL || split_host_port(s, strlen(s), host, sizeof(host), &port, &portlen) != 0) {
        return -ST_EPARSE;
    }
    p = parse_port(port, portlen);
    if (p < 0 || fill_sockaddr(host, s[0] == '[', p, ss, len) != 0) {
        return -ST_EPARSE;
    }
    return 0;
}

void
st_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];

    if (size == 0) {
        return;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, size, "(family %d)", (int)sa->sa_family);
    }
}

/* Applies one flag token to l. Returns 0 or fills err. */
static int
parse_flag(const char *key, enum st_listen_kind kind, const char *tok, struct st_listen *l,
           struct st_err *err)
{
    for (size_t i = 0; i < ST_ARRAY_SIZE(flag_defs); i++) {
        if (strcmp(tok, flag_defs[i].name) == 0 && (flag_defs[i].kinds & (1u << kind))) {
            l->flags |= flag_defs[i].flag;
            return 0;
        }
    }
    if (strncmp(tok, "backlog=", 8) == 0) {
        int b = parse_num(tok + 8, strlen(tok + 8), INT_MAX);

        if (b < 0) {
            return listen_fail(err, key, kind, "bad backlog '%s' (a positive number)", tok);
        }
        l->backlog = b;
        return 0;
    }
    /* Kong's syntax has them, but struct st_listen has nowhere to keep them: refuse
     * rather than accept and ignore. */
    if (strcmp(tok, "ipv6only=on") == 0 || strcmp(tok, "ipv6only=off") == 0 ||
        strncmp(tok, "so_keepalive=", 13) == 0) {
        return st_err_set(err, -ST_ECONF, key, "the '%s' flag is not supported yet", tok);
    }
    return listen_fail(err, key, kind, "unknown flag '%s'", tok);
}

/* Parses one entry (trimmed, non-empty, NUL-terminated, modified in place). */
static int
parse_entry(const char *key, enum st_listen_kind kind, char *entry, struct st_listen *l,
            struct st_err *err)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    size_t portlen;
    char *save = NULL;
    char *tok = strtok_r(entry, " \t", &save);
    int p;

    memset(l, 0, sizeof(*l));
    if (split_host_port(tok, strlen(tok), host, sizeof(host), &port, &portlen) != 0) {
        return listen_fail(err, key, kind, "'%s' is not <ip>:<port>", tok);
    }
    p = parse_port(port, portlen);
    if (p < 0) {
        return listen_fail(err, key, kind, "bad port in '%s' (1-65535)", tok);
    }
    if (fill_sockaddr(host, tok[0] == '[', p, &l->addr, &l->addrlen) != 0) {
        return listen_fail(err, key, kind,
                           "'%s' is not an IP address (use an IPv4 address, [IPv6] or localhost)",
                           host);
    }
    st_addr_format((struct sockaddr *)&l->addr, l->text, sizeof(l->text));
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        int rc = parse_flag(key, kind, tok, l, err);

        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
st_listen_parse(const char *key, const char *value, enum st_listen_kind kind,
                struct st_listen_set *out, struct st_err *err)
{
    struct st_listen tmp[LISTEN_ENTRIES_MAX];
    char *copy, *p, *v;
    size_t n = 0;
    int rc = 0;

    out->n = 0;
    out->v = NULL;
    copy = st_xstrdup(value ? value : "");
    v = st_str_trim(copy);
    if (strcmp(v, "off") == 0) {
        goto out;
    }
    if (*v == '\0') {
        rc = listen_fail(err, key, kind, "empty value");
        goto out;
    }
    p = v;
    for (;;) {
        char *comma = strchr(p, ',');
        char *entry;

        if (comma != NULL) {
            *comma = '\0';
        }
        entry = st_str_trim(p);
        if (*entry == '\0') {
            rc = listen_fail(err, key, kind, "empty entry");
            goto out;
        }
        if (strcmp(entry, "off") == 0) {
            rc = listen_fail(err, key, kind, "'off' must be the whole value");
            goto out;
        }
        if (n == LISTEN_ENTRIES_MAX) {
            rc = listen_fail(err, key, kind, "too many entries");
            goto out;
        }
        rc = parse_entry(key, kind, entry, &tmp[n], err);
        if (rc != 0) {
            goto out;
        }
        n++;
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    out->v = st_xcalloc(n, sizeof(*out->v));
    memcpy(out->v, tmp, n * sizeof(*out->v));
    out->n = n;
out:
    free(copy);
    return rc;
}

void
st_listen_set_fini(struct st_listen_set *set)
{
    if (set == NULL) {
        return;
    }
    free(set->v);
    set->v = NULL;
    set->n = 0;
}

uint16_t
st_addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}
