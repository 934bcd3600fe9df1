/* libFuzzer target for listen addresses (issue 14): the values of admin_listen,
 * cluster_listen, status_listen and stream_listen in Kong's syntax (st_listen_parse), and
 * "host:port" (st_addr_parse, cluster_control_plane's entries) with st_addr_format.
 *
 * The first byte picks the kind of listener (bit 0: stream or http); the rest, up to a NUL,
 * is the value. Besides memory errors, the target aborts when:
 *   - a refusal has no message or leaves a list; "off" is not an empty list;
 *   - an entry's address is not IPv4 or IPv6 with the matching length, has port 0, or
 *     carries a flag its kind does not have;
 *   - an entry's text (st_addr_format) does not parse back to the same address, or
 *     formats differently then;
 *   - st_addr_parse takes a value and its formatted text parses to another address. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "st_addr.h"
#include "st_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STREAM_FLAGS                                                                               \
    (ST_LISTEN_F_SSL | ST_LISTEN_F_PROXY | ST_LISTEN_F_REUSEPORT | ST_LISTEN_F_UDP |               \
     ST_LISTEN_F_BIND)
#define HTTP_FLAGS                                                                                 \
    (ST_LISTEN_F_SSL | ST_LISTEN_F_PROXY | ST_LISTEN_F_REUSEPORT | ST_LISTEN_F_BIND |              \
     ST_LISTEN_F_HTTP2 | ST_LISTEN_F_DEFERRED)

static bool
same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b,
          socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* ss formats to a text that parses back to ss and formats the same. */
static void
check_format(const struct sockaddr_storage *ss, socklen_t len, const char *text)
{
    struct sockaddr_storage back;
    socklen_t blen = 0;
    char again[128];

    if (st_addr_parse(text, &back, &blen) != 0 || !same_addr(ss, len, &back, blen)) {
        abort();
    }
    st_addr_format((const struct sockaddr *)&back, again, sizeof(again));
    if (strcmp(text, again) != 0) {
        abort();
    }
}

static void
check_entry(const struct st_listen *l, enum st_listen_kind kind)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addr;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l->addr;

    if (memchr(l->text, '\0', sizeof(l->text)) == NULL) {
        abort();
    }
    if (l->addr.ss_family == AF_INET) {
        if (l->addrlen != sizeof(*sin) || sin->sin_port == 0) {
            abort();
        }
    } else if (l->addr.ss_family == AF_INET6) {
        if (l->addrlen != sizeof(*sin6) || sin6->sin6_port == 0) {
            abort();
        }
    } else {
        abort();
    }
    if ((l->flags & ~(kind == ST_LISTEN_STREAM ? STREAM_FLAGS : HTTP_FLAGS)) != 0 ||
        l->backlog < 0) {
        abort();
    }
    check_format(&l->addr, l->addrlen, l->text);
}

static void
listen_value(const char *v, enum st_listen_kind kind)
{
    struct st_listen_set set;
    struct st_err err = {0};

    memset(&set, 0xa5, sizeof(set));
    if (st_listen_parse("stream_listen", v, kind, &set, &err) != 0) {
        if (err.msg[0] == '\0' || set.n != 0 || set.v != NULL) {
            abort();
        }
        return;
    }
    if ((set.n == 0) != (set.v == NULL)) {
        abort();
    }
    for (size_t i = 0; i < set.n; i++) {
        check_entry(&set.v[i], kind);
    }
    st_listen_set_fini(&set);
}

static void
host_port(const char *v)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char text[128];

    if (st_addr_parse(v, &ss, &len) != 0) {
        return;
    }
    st_addr_format((const struct sockaddr *)&ss, text, sizeof(text));
    check_format(&ss, len, text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, data + size};
    enum st_listen_kind kind = fz_byte(&in) & 1 ? ST_LISTEN_HTTP : ST_LISTEN_STREAM;
    char *v = fz_field(&in, '\0', NULL);

    listen_value(v, kind);
    host_port(v);
    free(v);
    return 0;
}
