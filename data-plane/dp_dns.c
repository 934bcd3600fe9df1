/* The DP's DNS cache (see dp_dns.h). Lookups run in batches: one c-ares channel per
 * batch (so the sync thread's build and the refresher never share one), every name of
 * the batch in flight at once, each walking dns_order until a type answers. What
 * c-ares does not expose in 1.18 (an SRV answer's TTL) is read with libresolv's
 * ns_parserr, never by hand. */
#include "dp_dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

#define DNS_TIMEOUT_MS 1000 /* per try; c-ares doubles it on the next */
#define DNS_TRIES      2
#define DNS_TTL0_MS    1000          /* a TTL of 0: asked again every second (Kong: per request) */
#define DNS_RETRY_MIN  1000          /* ms: a not-found or error TTL of 0 still waits this */
#define DNS_HOSTS_MS   INT64_MAX / 4 /* hosts file answers: static, as Kong */
#define DNS_PARSE_MAX  64            /* addresses read from one A/AAAA answer */
#define ORDER_MAX      5

enum rtype { RT_SRV = 0, RT_A, RT_AAAA, RT_LAST };

/* One name's answer and schedule. */
struct entry {
    char *name;
    struct dp_dns_rec *v; /* the answer served (sorted), NULL: none */
    size_t n;
    int status;       /* 0: v; -ST_ENOTFOUND; -EIO (failed, nothing left to serve) */
    int last_type;    /* the type that last answered, -1: none (dns_order's LAST) */
    int64_t due_ms;   /* ask again at (st_mono_ms) */
    int64_t stale_ms; /* v may be served until (a failed lookup keeps it) */
    bool asked;       /* has an outcome */
    bool used;        /* named by the last prepare */
    bool stale_logged;
};

/* One name and address of the hosts file. */
struct host_ent {
    char *name;
    struct sockaddr_storage addr;
};

struct dp_dns {
    const struct st_conf *conf;
    struct host_ent *hosts; /* dns_hostsfile, read once at start (as Kong), by name */
    size_t n_hosts;
    int order[ORDER_MAX]; /* dns_order: RT_*, RT_LAST for LAST (CNAME is RT_A: an A
                           * answer carries the chain, which c-ares follows) */
    size_t n_order;
    pthread_mutex_t lock; /* entries and their fields */
    pthread_cond_t cond;
    struct entry *v; /* sorted by name */
    size_t n, cap;
    pthread_t thread;
    bool started;
    atomic_bool stop; /* dp_dns_free: the refresher ends, its lookups are cancelled */
    void (*changed)(void *);
    void *changed_arg;
};

/* ---------------------------------------------------------------- records */

static int
rec_cmp(const void *a, const void *b)
{
    const struct dp_dns_rec *x = a, *y = b;
    int c = memcmp(&x->addr, &y->addr, sizeof(x->addr));

    if (c != 0) {
        return c;
    }
    if (x->weight != y->weight) {
        return x->weight < y->weight ? -1 : 1;
    }
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

void
dp_dns_recs_free(struct dp_dns_rec *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].name);
    }
    free(v);
}

static struct dp_dns_rec *
recs_copy(const struct dp_dns_rec *v, size_t n)
{
    struct dp_dns_rec *c = st_xcalloc(n ? n : 1, sizeof(*c));

    for (size_t i = 0; i < n; i++) {
        c[i] = v[i];
        c[i].name = v[i].name != NULL ? st_xstrdup(v[i].name) : NULL;
    }
    return c;
}

static bool
recs_equal(const struct dp_dns_rec *a, size_t na, const struct dp_dns_rec *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (rec_cmp(&a[i], &b[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- entries */

static int
entry_cmp(const void *key, const void *e)
{
    return strcasecmp(key, ((const struct entry *)e)->name);
}

static struct entry *
entry_find(struct dp_dns *d, const char *name)
{
    return d->n > 0 ? bsearch(name, d->v, d->n, sizeof(*d->v), entry_cmp) : NULL;
}

static int
entry_sort_cmp(const void *a, const void *b)
{
    return strcasecmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static void
entry_fini(struct entry *e)
{
    free(e->name);
    dp_dns_recs_free(e->v, e->n);
}

/* ---------------------------------------------------------------- lookups */

/* One name being resolved in a batch. */
struct job {
    struct batch *b;
    char *name;
    int order[ORDER_MAX];
    size_t n_order, pos;
    int type;     /* being asked */
    int answered; /* the type that answered, -1: none */
    struct dp_dns_rec *v;
    size_t n, cap;
    int64_t ttl_ms;
    unsigned pending; /* SRV: its targets' lookups still out */
    bool failed;      /* some server failed (vs. no such records) */
};

struct batch {
    struct dp_dns *d;
    ares_channel ch;
    unsigned out; /* queries in flight */
};

static void job_next(struct job *j);

/* An SRV answer whose targets are all resolved: the job's answer if any address came,
 * else the next type of its order. */
static void
srv_finish(struct job *j)
{
    if (j->n > 0) {
        j->answered = RT_SRV;
    } else {
        job_next(j);
    }
}

static void
job_push(struct job *j, const void *sa, size_t len, uint16_t port, uint32_t weight,
         const char *name)
{
    struct dp_dns_rec *r;

    if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 8;
        j->v = st_xrealloc(j->v, j->cap * sizeof(*j->v));
    }
    r = &j->v[j->n++];
    memset(r, 0, sizeof(*r));
    memcpy(&r->addr, sa, len);
    if (r->addr.ss_family == AF_INET) {
        ((struct sockaddr_in *)&r->addr)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)&r->addr)->sin6_port = htons(port);
    }
    r->weight = weight;
    r->name = name != NULL ? st_xstrdup(name) : NULL;
}

static void
job_ttl(struct job *j, int64_t ttl_ms)
{
    if (j->ttl_ms < 0 || ttl_ms < j->ttl_ms) {
        j->ttl_ms = ttl_ms;
    }
}

/* name's addresses of family af in the hosts file into j; true when it has some. */
static bool
hosts_lookup(struct job *j, const char *name, int af, uint16_t port, uint32_t weight,
             const char *srv_name)
{
    const struct dp_dns *d = j->b->d;
    size_t lo = 0, hi = d->n_hosts, before = j->n;

    while (lo < hi) { /* the first entry of name */
        size_t mid = lo + (hi - lo) / 2;

        if (strcasecmp(d->hosts[mid].name, name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (; lo < d->n_hosts && strcasecmp(d->hosts[lo].name, name) == 0; lo++) {
        if (d->hosts[lo].addr.ss_family == af) {
            job_push(j, &d->hosts[lo].addr, sizeof(d->hosts[lo].addr), port, weight, srv_name);
        }
    }
    if (j->n > before) {
        job_ttl(j, DNS_HOSTS_MS);
    }
    return j->n > before;
}

/* The smallest TTL (s) of the answer section's records of type t, or -1. */
static int64_t
answer_ttl(const unsigned char *abuf, int alen, int t)
{
    ns_msg msg;
    ns_rr rr;
    int64_t ttl = -1;

    if (ns_initparse(abuf, alen, &msg) != 0) {
        return -1;
    }
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
        if (ns_parserr(&msg, ns_s_an, i, &rr) == 0 && (int)ns_rr_type(rr) == t &&
            (ttl < 0 || (int64_t)ns_rr_ttl(rr) < ttl)) {
            ttl = (int64_t)ns_rr_ttl(rr);
        }
    }
    return ttl;
}

static int64_t
ttl_ms_of(int64_t ttl_s)
{
    return ttl_s <= 0 ? DNS_TTL0_MS : ttl_s * 1000;
}

/* Reads an A or AAAA answer into j (port, weight and srv_name as given). */
static size_t
parse_addrs(struct job *j, int type, const unsigned char *abuf, int alen, uint16_t port,
            uint32_t weight, const char *srv_name)
{
    int n = DNS_PARSE_MAX;

    if (type == RT_A) {
        struct ares_addrttl at[DNS_PARSE_MAX];

        if (ares_parse_a_reply(abuf, alen, NULL, at, &n) != ARES_SUCCESS) {
            return 0;
        }
        for (int i = 0; i < n; i++) {
            struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = at[i].ipaddr};

            job_push(j, &sin, sizeof(sin), port, weight, srv_name);
            job_ttl(j, ttl_ms_of(at[i].ttl));
        }
    } else {
        struct ares_addr6ttl at[DNS_PARSE_MAX];

        if (ares_parse_aaaa_reply(abuf, alen, NULL, at, &n) != ARES_SUCCESS) {
            return 0;
        }
        for (int i = 0; i < n; i++) {
            struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

            memcpy(&sin6.sin6_addr, &at[i].ip6addr, 16);
            job_push(j, &sin6, sizeof(sin6), port, weight, srv_name);
            job_ttl(j, ttl_ms_of(at[i].ttl));
        }
    }
    return n > 0 ? (size_t)n : 0;
}

static bool
is_failure(int status)
{
    return status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND;
}

/* One SRV target's addresses (hosts file, else A then AAAA as dns_order lists them). */
struct srv_addr_q {
    struct job *j;
    char *name;
    uint16_t port;
    uint32_t weight;
    int type;
};

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);
static void on_srv_target(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

static void
ask(struct job *j, const char *name, int type, ares_callback cb, void *arg)
{
    static const int qtype[] = {[RT_SRV] = ns_t_srv, [RT_A] = ns_t_a, [RT_AAAA] = ns_t_aaaa};

    if (atomic_load_explicit(&j->b->d->stop, memory_order_relaxed)) {
        j->failed = true; /* stopping: no new question (the job ends as failed) */
        if (cb == on_srv_target) {
            free(((struct srv_addr_q *)arg)->name);
            free(arg);
            j->pending--;
        }
        return;
    }
    j->b->out++;
    ares_search(j->b->ch, name, ns_c_in, qtype[type], cb, arg);
}

static void
on_srv_target(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct srv_addr_q *q = arg;
    struct job *j = q->j;

    (void)timeouts;
    j->b->out--;
    if (status == ARES_EDESTRUCTION) {
        free(q->name);
        free(q);
        return;
    }
    if (status == ARES_SUCCESS) {
        parse_addrs(j, q->type, abuf, alen, q->port, q->weight, q->name);
    } else if (is_failure(status)) {
        j->failed = true;
    }
    free(q->name);
    free(q);
    if (--j->pending == 0) {
        srv_finish(j);
    }
}

/* Resolves each SRV record of the best (lowest) priority: its target's addresses, with
 * the record's port and weight. */
static void
srv_targets(struct job *j, const struct ares_srv_reply *srv)
{
    unsigned short best = 0xffff;

    for (const struct ares_srv_reply *r = srv; r != NULL; r = r->next) {
        best = r->priority < best ? r->priority : best;
    }
    for (const struct ares_srv_reply *r = srv; r != NULL; r = r->next) {
        uint32_t w = r->weight == 0 ? 1 : r->weight; /* Kong: hit minimally, not never */

        if (r->priority != best) {
            continue;
        }
        if (hosts_lookup(j, r->host, AF_INET, r->port, w, r->host) ||
            hosts_lookup(j, r->host, AF_INET6, r->port, w, r->host)) {
            continue;
        }
        for (size_t k = 0; k < j->b->d->n_order; k++) {
            int t = j->b->d->order[k];
            struct srv_addr_q *q;

            if (t != RT_A && t != RT_AAAA) {
                continue;
            }
            q = st_xcalloc(1, sizeof(*q));
            *q = (struct srv_addr_q){j, st_xstrdup(r->host), r->port, w, t};
            j->pending++;
            ask(j, r->host, t, on_srv_target, q);
        }
    }
}

static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct job *j = arg;
    struct ares_srv_reply *srv = NULL;

    (void)timeouts;
    j->b->out--;
    if (status == ARES_EDESTRUCTION) {
        return;
    }
    if (status != ARES_SUCCESS) {
        j->failed |= is_failure(status);
        job_next(j);
        return;
    }
    if (j->type != RT_SRV) {
        if (parse_addrs(j, j->type, abuf, alen, 0, 0, NULL) > 0) {
            j->answered = j->type;
        } else {
            job_next(j);
        }
        return;
    }
    if (ares_parse_srv_reply(abuf, alen, &srv) != ARES_SUCCESS || srv == NULL) {
        job_next(j);
        return;
    }
    job_ttl(j, ttl_ms_of(answer_ttl(abuf, alen, ns_t_srv)));
    srv_targets(j, srv);
    ares_free_data(srv);
    if (j->pending == 0) { /* every target was in the hosts file, or none was usable */
        srv_finish(j);
    }
}

/* Asks the next type of j's order; past its end, j has no answer (store() reads why). */
static void
job_next(struct job *j)
{
    if (j->pos < j->n_order) {
        j->type = j->order[j->pos++];
        j->ttl_ms = -1;
        ask(j, j->name, j->type, on_answer, j);
    }
}

/* A name in the hosts file answers from it, whatever dns_order says first (Kong makes
 * such names' LAST type A or AAAA): true when it did. */
static bool
job_hosts(struct job *j)
{
    for (size_t i = 0; i < j->b->d->n_order; i++) {
        int t = j->b->d->order[i];

        if ((t == RT_A || t == RT_AAAA) &&
            hosts_lookup(j, j->name, t == RT_A ? AF_INET : AF_INET6, 0, 0, NULL)) {
            j->answered = t;
            return true;
        }
    }
    return false;
}

/* j's order: dns_order with LAST as the type that last answered (or left out). */
static void
job_order(struct job *j, const struct dp_dns *d, int last)
{
    j->n_order = 0;
    for (size_t i = 0; i < d->n_order; i++) {
        int t = d->order[i] == RT_LAST ? last : d->order[i];
        bool dup = t < 0;

        for (size_t k = 0; k < j->n_order && !dup; k++) {
            dup = j->order[k] == t;
        }
        if (!dup) {
            j->order[j->n_order++] = t;
        }
    }
}

static int
channel_open(const struct dp_dns *d, ares_channel *ch)
{
    struct ares_options o;
    int rc;

    memset(&o, 0, sizeof(o));
    o.timeout = DNS_TIMEOUT_MS;
    o.tries = DNS_TRIES;
    rc = ares_init_options(ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc == ARES_SUCCESS && d->conf->dns_resolver != NULL) {
        rc = ares_set_servers_ports_csv(*ch, d->conf->dns_resolver);
        if (rc != ARES_SUCCESS) {
            ares_destroy(*ch);
        }
    }
    return rc;
}

/* Drives the channel until every query of the batch is answered or timed out. */
static void
batch_run(struct batch *b)
{
    while (b->out > 0) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        struct timeval tv, *tvp;
        /* the bits as ARES_GETSOCK_READABLE/WRITABLE read them, unsigned: their int shift
         * by 31 for the last socket is undefined */
        unsigned bits = (unsigned)ares_getsock(b->ch, socks, ARES_GETSOCK_MAXNUM);
        nfds_t nfd = 0;
        int ms, ready;

        for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = (short)((bits & (1u << i) ? POLLIN : 0) |
                               (bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));

            if (ev != 0) {
                pfd[nfd++] = (struct pollfd){.fd = socks[i], .events = ev};
            }
        }
        if (atomic_load_explicit(&b->d->stop, memory_order_relaxed)) {
            ares_cancel(b->ch); /* every callback runs now, with ARES_ECANCELLED */
            continue;
        }
        tvp = ares_timeout(b->ch, NULL, &tv);
        ms = tvp != NULL ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) + 1 : 100;
        ms = ms > 100 ? 100 : ms; /* sees a stop within 0.1 s */
        ready = poll(pfd, nfd, ms);
        if (ready <= 0) {
            ares_process_fd(b->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
            continue;
        }
        for (nfds_t i = 0; i < nfd; i++) {
            if (pfd[i].revents != 0) {
                ares_process_fd(b->ch,
                                pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd
                                                                              : ARES_SOCKET_BAD,
                                pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
            }
        }
    }
}

static int64_t
ttl_conf_ms(int s)
{
    return s > 0 ? (int64_t)s * 1000 : DNS_RETRY_MIN;
}

/* Records j's outcome in its entry (if the entry is still wanted). Returns whether the
 * answer served changed. Called with d->lock held. */
static bool
store(struct dp_dns *d, struct job *j, int64_t now)
{
    const struct st_conf *c = d->conf;
    struct entry *e = entry_find(d, j->name);
    bool changed = false;

    if (e == NULL) {
        return false;
    }
    e->asked = true;
    if (j->answered >= 0 && j->n > 0) {
        int64_t ttl = c->dns_valid_ttl > 0 ? (int64_t)c->dns_valid_ttl * 1000 : j->ttl_ms;

        size_t w = 1;

        qsort(j->v, j->n, sizeof(*j->v), rec_cmp);
        for (size_t i = 1; i < j->n; i++) { /* one peer per address (A and AAAA via CNAME) */
            if (rec_cmp(&j->v[i], &j->v[w - 1]) != 0) {
                j->v[w++] = j->v[i];
            } else {
                free(j->v[i].name);
            }
        }
        j->n = w;
        changed = !recs_equal(e->v, e->n, j->v, j->n);
        if (changed || e->status != 0) {
            st_log(ST_LOG_INFO, 0, "dns: %s: %zu address(es)", e->name, j->n);
        }
        dp_dns_recs_free(e->v, e->n);
        e->v = j->v;
        e->n = j->n;
        j->v = NULL;
        j->n = 0;
        e->status = 0;
        e->last_type = j->answered;
        e->due_ms = now + (ttl > 0 ? ttl : DNS_TTL0_MS);
        e->stale_ms = e->due_ms + (int64_t)c->dns_stale_ttl * 1000;
        e->stale_logged = false;
        return changed;
    }
    if (j->failed && e->n > 0 && now < e->stale_ms) {
        /* the name servers failed: the last answer serves on, until dns_stale_ttl */
        if (!e->stale_logged) {
            st_log(ST_LOG_WARN, 0,
                   "dns: %s: lookup failed; serving its last answer for up to %lld s more", e->name,
                   (long long)((e->stale_ms - now) / 1000));
            e->stale_logged = true;
        }
        e->due_ms = now + ttl_conf_ms(c->dns_error_ttl);
        return false;
    }
    changed = e->n > 0;
    if (changed || e->status == 0) {
        st_log(ST_LOG_WARN, 0, "dns: %s: %s", e->name,
               j->failed ? "lookup failed (no answer left to serve)" : "name not found");
    }
    dp_dns_recs_free(e->v, e->n);
    e->v = NULL;
    e->n = 0;
    e->status = j->failed ? -EIO : -ST_ENOTFOUND;
    e->due_ms = now + ttl_conf_ms(j->failed ? c->dns_error_ttl : c->dns_not_found_ttl);
    return changed;
}

/* Resolves names (a batch, all in flight at once) and stores the outcomes. Returns
 * whether any answer served changed. */
static bool
resolve(struct dp_dns *d, char **names, size_t n)
{
    struct batch b = {.d = d};
    struct job *jobs;
    bool changed = false;
    int rc;

    if (n == 0) {
        return false;
    }
    rc = channel_open(d, &b.ch);
    jobs = st_xcalloc(n, sizeof(*jobs));
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        const struct entry *e = entry_find(d, names[i]);

        jobs[i] = (struct job){.b = &b, .name = names[i], .answered = -1, .ttl_ms = -1};
        job_order(&jobs[i], d, e != NULL ? e->last_type : -1);
    }
    pthread_mutex_unlock(&d->lock);
    if (rc != ARES_SUCCESS) {
        st_log(ST_LOG_ERR, 0, "dns: cannot set up a resolver: %s", ares_strerror(rc));
        for (size_t i = 0; i < n; i++) {
            jobs[i].failed = true;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (!job_hosts(&jobs[i])) {
                job_next(&jobs[i]);
            }
        }
        batch_run(&b);
        ares_destroy(b.ch);
    }
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        changed |= store(d, &jobs[i], st_mono_ms());
        dp_dns_recs_free(jobs[i].v, jobs[i].n);
    }
    pthread_mutex_unlock(&d->lock);
    free(jobs);
    return changed;
}

/* ---------------------------------------------------------------- hosts file */

static int
host_ent_cmp(const void *a, const void *b)
{
    return strcasecmp(((const struct host_ent *)a)->name, ((const struct host_ent *)b)->name);
}

/* Reads dns_hostsfile ("address name [alias...]" lines, '#' comments): c-ares 1.18 reads
 * only /etc/hosts, and only from its gethostbyname calls. A missing file is no entry. */
static void
hosts_load(struct dp_dns *d, const char *path)
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    size_t cap = 0;
    char line[1024];

    if (f == NULL) {
        if (path != NULL) {
            st_log(ST_LOG_WARN, 0, "dns_hostsfile %s: %s (no names from a hosts file)", path,
                   strerror(errno));
        }
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *save = NULL, *ip, *name;
        struct sockaddr_storage ss;

        line[strcspn(line, "#\n")] = '\0';
        ip = strtok_r(line, " \t", &save);
        memset(&ss, 0, sizeof(ss));
        if (ip == NULL) {
            continue;
        }
        if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
            ss.ss_family = AF_INET;
        } else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
            ss.ss_family = AF_INET6;
        } else {
            continue;
        }
        while ((name = strtok_r(NULL, " \t\r", &save)) != NULL) {
            if (d->n_hosts == cap) {
                cap = cap ? cap * 2 : 32;
                d->hosts = st_xrealloc(d->hosts, cap * sizeof(*d->hosts));
            }
            d->hosts[d->n_hosts++] = (struct host_ent){st_xstrdup(name), ss};
        }
    }
    fclose(f);
    if (d->n_hosts > 0) {
        qsort(d->hosts, d->n_hosts, sizeof(*d->hosts), host_ent_cmp);
    }
}

/* ---------------------------------------------------------------- interface */

struct dp_dns *
dp_dns_new(const struct st_conf *c, struct st_err *err)
{
    static const struct {
        const char *word;
        int type;
    } words[] = {
        {"LAST", RT_LAST}, {"SRV", RT_SRV}, {"A", RT_A}, {"AAAA", RT_AAAA}, {"CNAME", RT_A}};
    struct dp_dns *d;
    ares_channel ch;
    char *order, *save = NULL;
    int rc;

    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        st_err_set(err, -ST_ECONF, NULL, "dns: c-ares: %s", ares_strerror(rc));
        return NULL;
    }
    d = st_xcalloc(1, sizeof(*d));
    d->conf = c;
    hosts_load(d, c->dns_hostsfile);
    order = st_xstrdup(c->dns_order != NULL ? c->dns_order : "LAST,SRV,A,CNAME");
    for (char *t = strtok_r(order, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        for (size_t i = 0; i < ST_ARRAY_SIZE(words) && d->n_order < ORDER_MAX; i++) {
            bool dup = false;

            for (size_t k = 0; k < d->n_order; k++) {
                dup |= d->order[k] == words[i].type; /* CNAME after A: asked once */
            }
            if (strcasecmp(t, words[i].word) == 0 && !dup) {
                d->order[d->n_order++] = words[i].type;
            }
        }
    }
    free(order);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    rc = channel_open(d, &ch); /* refuses a dns_resolver c-ares cannot use, at start */
    if (rc != ARES_SUCCESS) {
        st_err_set(err, -ST_ECONF, "dns_resolver", "dns_resolver: %s", ares_strerror(rc));
        dp_dns_free(d);
        return NULL;
    }
    ares_destroy(ch);
    return d;
}

static void *
refresher_main(void *arg)
{
    struct dp_dns *d = arg;

    pthread_mutex_lock(&d->lock);
    while (!atomic_load(&d->stop)) {
        int64_t now = st_mono_ms(), next = now + 1000;
        char **names = st_xcalloc(d->n + 1, sizeof(*names));
        size_t n = 0;
        struct timespec ts;

        for (size_t i = 0; i < d->n; i++) {
            const struct entry *e = &d->v[i];

            if (!e->used) {
                continue;
            }
            if (e->due_ms <= now) {
                names[n++] = st_xstrdup(e->name);
            } else if (e->due_ms < next) {
                next = e->due_ms;
            }
        }
        if (n > 0) {
            bool changed;

            pthread_mutex_unlock(&d->lock);
            changed = resolve(d, names, n);
            for (size_t i = 0; i < n; i++) {
                free(names[i]);
            }
            free(names);
            if (changed && d->changed != NULL) {
                d->changed(d->changed_arg);
            }
            pthread_mutex_lock(&d->lock);
            continue;
        }
        free(names);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (next - now) / 1000;
        ts.tv_nsec += ((next - now) % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&d->cond, &d->lock, &ts);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int
dp_dns_start(struct dp_dns *d, void (*changed)(void *), void *arg)
{
    pthread_condattr_t ca;
    int rc;

    d->changed = changed;
    d->changed_arg = arg;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&d->cond);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&d->thread, NULL, refresher_main, d);
    if (rc != 0) {
        return -rc;
    }
    d->started = true;
    return 0;
}

void
dp_dns_free(struct dp_dns *d)
{
    if (d == NULL) {
        return;
    }
    if (d->started) {
        pthread_mutex_lock(&d->lock);
        atomic_store(&d->stop, true);
        pthread_cond_signal(&d->cond);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->thread, NULL);
    }
    for (size_t i = 0; i < d->n; i++) {
        entry_fini(&d->v[i]);
    }
    free(d->v);
    for (size_t i = 0; i < d->n_hosts; i++) {
        free(d->hosts[i].name);
    }
    free(d->hosts);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d);
    ares_library_cleanup();
}

static int
name_cmp(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

void
dp_dns_prepare(struct dp_dns *d, const char *const *names, size_t n)
{
    const char **sorted = st_xcalloc(n + 1, sizeof(*sorted));
    char **ask_now = st_xcalloc(n + 1, sizeof(*ask_now));
    size_t n_ask = 0, w = 0, old;

    if (n > 0) {
        memcpy(sorted, names, n * sizeof(*names));
        qsort(sorted, n, sizeof(*sorted), name_cmp);
    }
    pthread_mutex_lock(&d->lock);
    old = d->n;
    for (size_t i = 0; i < d->n; i++) {
        d->v[i].used = false;
    }
    for (size_t i = 0; i < n; i++) {
        struct entry *e;

        if (i > 0 && strcasecmp(sorted[i], sorted[i - 1]) == 0) {
            continue;
        }
        e = old > 0 ? bsearch(sorted[i], d->v, old, sizeof(*d->v), entry_cmp) : NULL;
        if (e == NULL) { /* appended past the sorted part, sorted below */
            if (d->n == d->cap) {
                d->cap = d->cap ? d->cap * 2 : 64;
                d->v = st_xrealloc(d->v, d->cap * sizeof(*d->v));
            }
            e = &d->v[d->n++];
            *e = (struct entry){.name = st_xstrdup(sorted[i]), .last_type = -1};
            ask_now[n_ask++] = st_xstrdup(sorted[i]);
        }
        e->used = true;
    }
    for (size_t i = 0; i < d->n; i++) { /* forget what the build no longer names */
        if (d->v[i].used) {
            d->v[w++] = d->v[i];
        } else {
            entry_fini(&d->v[i]);
        }
    }
    d->n = w;
    if (d->n > 1) { /* qsort's base must not be NULL, even for 0 elements */
        qsort(d->v, d->n, sizeof(*d->v), entry_sort_cmp);
    }
    pthread_mutex_unlock(&d->lock);
    free(sorted);
    resolve(d, ask_now, n_ask);
    for (size_t i = 0; i < n_ask; i++) {
        free(ask_now[i]);
    }
    free(ask_now);
}

int
dp_dns_get(struct dp_dns *d, const char *name, struct dp_dns_rec **out, size_t *n)
{
    const struct entry *e;
    int rc;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&d->lock);
    e = entry_find(d, name);
    if (e == NULL || !e->asked) {
        rc = -ST_ENOTFOUND;
    } else if (e->n > 0) {
        *out = recs_copy(e->v, e->n);
        *n = e->n;
        rc = 0;
    } else {
        rc = e->status != 0 ? e->status : -ST_ENOTFOUND;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}
