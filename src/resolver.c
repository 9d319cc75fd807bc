/*
 * resolver.c - client host names (PTR, then a confirming A/AAAA) and
 * Auth-Server host names, through c-ares with the configured servers only.
 *
 * Untrusted input: DNS answers.  c-ares parses the wire format; every name
 * it gives us is checked with resolver_name_valid() before it is used in a
 * query, returned, cached or logged.  No secrets.
 *
 * Locking: each call builds and destroys its own c-ares channel, so the
 * only shared state is the result cache, under cache_lock (held only to
 * copy an entry in or out, never across a query).  ares_library_init runs
 * once under pthread_once.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conf.h"
#include "conn.h"
#include "resolver.h"
#include "str.h"

/* DNS numbers (RFC 1035, RFC 3596) */
#define DNS_CLASS_IN 1
#define DNS_TYPE_A 1
#define DNS_TYPE_PTR 12
#define DNS_TYPE_AAAA 28

/* per-try timeout bounds; the call's own deadline is what really bounds */
#define TRY_MS_MIN 100
#define TRY_MS_MAX 3000
#define TRIES 3

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = ARES_ENOTINITIALIZED;

/* One cached client-host result. */
struct cache_entry {
    int family;                 /* 0: empty slot */
    unsigned char addr[16];
    char *key;                  /* server list and ipv4/ipv6 flags */
    char *host;                 /* NULL: a cached failure */
    char reason[160];           /* why it failed */
    msec_t expires;
};

static struct cache_entry cache[RESOLVER_CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long cache_hits, cache_misses;

/* One outstanding query: what the c-ares callback reports back. */
struct query {
    int done;
    int status;
    unsigned char *abuf;        /* heap copy of the answer on success */
    int alen;
};

/* pthread_once body: c-ares global state. */
static void
lib_init(void)
{
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* RFC 1034 preferred name syntax (RFC 1123 digits first), length bounds. */
int
resolver_name_valid(const char *name, size_t len)
{
    size_t i, label = 0;
    unsigned char c;

    if (len > 0 && name[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len > RESOLVER_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0 || name[i - 1] == '-') {
                return 0;
            }
            label = 0;
            continue;
        }
        if (c == '-') {
            if (label == 0) {
                return 0;
            }
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                     || (c >= '0' && c <= '9')))
        {
            return 0;
        }
        if (++label > 63) {
            return 0;
        }
    }
    return label > 0 && name[len - 1] != '-';
}

/* One "ADDRESS[:PORT]" of the resolver setting into a sockaddr. */
int
resolver_parse_server(const char *s, struct sockaddr_storage *ss,
                      char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN];
    const char *h = s, *port = NULL, *end, *colon;
    unsigned short pnum = 53;
    size_t hl;
    int bracket = 0;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (end == NULL) {
            snprintf(err, errlen, "resolver \"%s\": missing \"]\"", s);
            return -1;
        }
        h = s + 1;
        hl = (size_t)(end - h);
        bracket = 1;
        if (end[1] == ':') {
            port = end + 2;
        } else if (end[1] != '\0') {
            snprintf(err, errlen, "resolver \"%s\": junk after \"]\"", s);
            return -1;
        }
    } else {
        colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            hl = (size_t)(colon - s);     /* IPv4:PORT */
            port = colon + 1;
        } else {
            hl = strlen(s);               /* IPv4, or a bare IPv6 */
        }
    }
    if (hl == 0 || hl >= sizeof(host)) {
        snprintf(err, errlen, "resolver \"%s\": bad address", s);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (port != NULL && str_parse_port(port, strlen(port), &pnum) != 0) {
        snprintf(err, errlen, "resolver \"%s\": bad port", s);
        return -1;
    }

    memset(ss, 0, sizeof(*ss));
    if (!bracket) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons(pnum);
            return 0;
        }
    }
    {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(pnum);
            return 0;
        }
    }
    snprintf(err, errlen, "resolver \"%s\": not an IP address (names are "
             "not supported here)", s);
    return -1;
}

/* c-ares callback: record the status and keep a copy of the answer. */
static void
query_done(void *arg, int status, int timeouts, unsigned char *abuf,
           int alen)
{
    struct query *q = arg;

    (void)timeouts;
    q->done = 1;
    q->status = status;
    if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
        q->abuf = malloc((size_t)alen);
        if (q->abuf == NULL) {
            q->status = ARES_ENOMEM;
            return;
        }
        memcpy(q->abuf, abuf, (size_t)alen);
        q->alen = alen;
    }
}

/*
 * A channel that talks only to sc's servers: every option that c-ares would
 * otherwise take from resolv.conf, the environment or /etc/hosts is set.
 */
static int
channel_open(const struct server_conf *sc, msec_t end, ares_channel *ch_r,
             char *err, size_t errlen)
{
    struct ares_addr_port_node nodes[RESOLVER_MAX_SERVERS];
    struct sockaddr_storage ss;
    struct ares_options o;
    size_t i, n = sc->resolver.servers.n;
    int rc, try_ms, left;

    *ch_r = NULL;
    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares initialisation failed: %s",
                 ares_strerror(lib_status));
        return -1;
    }
    if (!sc->resolver.enabled || n == 0) {
        snprintf(err, errlen, "no resolver configured");
        return -1;
    }
    if (n > RESOLVER_MAX_SERVERS) {
        snprintf(err, errlen, "more than %d resolver servers",
                 RESOLVER_MAX_SERVERS);
        return -1;
    }
    memset(nodes, 0, sizeof(nodes));
    for (i = 0; i < n; i++) {
        if (resolver_parse_server(sc->resolver.servers.v[i], &ss, err,
                                  errlen) != 0)
        {
            return -1;
        }
        nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
        nodes[i].family = ss.ss_family;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

            memcpy(&nodes[i].addr.addr4, &sin->sin_addr, 4);
            nodes[i].udp_port = nodes[i].tcp_port = ntohs(sin->sin_port);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

            memcpy(&nodes[i].addr.addr6, &sin6->sin6_addr, 16);
            nodes[i].udp_port = nodes[i].tcp_port = ntohs(sin6->sin6_port);
        }
    }

    left = clock_left(end);
    try_ms = left / TRIES;
    try_ms = try_ms < TRY_MS_MIN ? TRY_MS_MIN
           : try_ms > TRY_MS_MAX ? TRY_MS_MAX : try_ms;
    memset(&o, 0, sizeof(o));
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    o.timeout = try_ms;
    o.tries = TRIES;
    o.ndots = 1;
    o.domains = NULL;
    o.ndomains = 0;
    o.lookups = (char *)"b";
    o.servers = NULL;
    o.nservers = 0;
    o.sortlist = NULL;
    o.nsort = 0;
    rc = ares_init_options(ch_r, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS
                           | ARES_OPT_TRIES | ARES_OPT_NDOTS
                           | ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS
                           | ARES_OPT_SERVERS | ARES_OPT_SORTLIST
                           | ARES_OPT_NOROTATE);
    if (rc != ARES_SUCCESS) {
        *ch_r = NULL;
        snprintf(err, errlen, "c-ares channel: %s", ares_strerror(rc));
        return -1;
    }
    rc = ares_set_servers_ports(*ch_r, nodes);
    if (rc != ARES_SUCCESS) {
        ares_destroy(*ch_r);
        *ch_r = NULL;
        snprintf(err, errlen, "c-ares servers: %s", ares_strerror(rc));
        return -1;
    }
    return 0;
}

/* How channel_wait() failed, from errno, for an error text. */
static const char *
wait_failure(void)
{
    return errno == ECANCELED ? "stopped: server is shutting down"
                              : "timed out";
}

/*
 * Drive the channel with poll() until every query in q[0..nq) is done or
 * the deadline passes or a fast stop begins (then they are cancelled).
 * 0, or -1 with errno ETIMEDOUT or ECANCELED (the pool's stop fd, as in
 * conn_poll()).  poll, not select: a busy proxy has descriptors above
 * FD_SETSIZE.
 */
static int
channel_wait(ares_channel ch, struct query *q, size_t nq, msec_t end)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    struct pollfd pfd[ARES_GETSOCK_MAXNUM + 1];     /* + the stop fd */
    struct timeval tv, *tvp;
    int bits, i, nfds, left, wait, n;
    size_t k, pending;

    /* bounded by the deadline: every pass sleeps at most until it */
    for (;;) {
        pending = 0;
        for (k = 0; k < nq; k++) {
            pending += !q[k].done;
        }
        if (pending == 0) {
            return 0;
        }
        left = clock_left(end);
        if (left == 0) {
            ares_cancel(ch);
            errno = ETIMEDOUT;
            return -1;
        }
        bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
        nfds = 0;
        for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = 0;

            /* c-ares's own macros shift a signed 1 into the sign bit */
            if ((unsigned)bits & (1u << i)) {
                ev |= POLLIN;
            }
            if ((unsigned)bits & (1u << (i + ARES_GETSOCK_MAXNUM))) {
                ev |= POLLOUT;
            }
            if (ev != 0) {
                pfd[nfds].fd = socks[i];
                pfd[nfds].events = ev;
                pfd[nfds].revents = 0;
                nfds++;
            }
        }
        pfd[nfds].fd = conn_cancel_fd();        /* -1: left out by poll() */
        pfd[nfds].events = POLLIN;
        pfd[nfds].revents = 0;
        wait = left;
        tvp = ares_timeout(ch, NULL, &tv);
        if (tvp != NULL) {
            long ms = (long)tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000;

            if (left < 0 || ms < wait) {
                wait = (int)ms;
            }
        }
        n = poll(pfd, (nfds_t)nfds + 1, wait);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            n = errno;
            ares_cancel(ch);
            errno = n;
            return -1;
        }
        if (pfd[nfds].revents != 0) {
            ares_cancel(ch);
            errno = ECANCELED;
            return -1;
        }
        if (n == 0) {
            /* retransmissions and per-try timeouts */
            ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            continue;
        }
        for (i = 0; i < nfds; i++) {
            ares_socket_t r = ARES_SOCKET_BAD, w = ARES_SOCKET_BAD;

            if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) {
                r = pfd[i].fd;
            }
            if (pfd[i].revents & POLLOUT) {
                w = pfd[i].fd;
            }
            if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD) {
                ares_process_fd(ch, r, w);
            }
        }
    }
}

/* Skip a (possibly compressed) name at *off; 0 or -1 if malformed. */
static int
skip_name(const unsigned char *p, size_t len, size_t *off)
{
    size_t o = *off;
    int labels;

    for (labels = 0; labels < 128; labels++) {
        if (o >= len) {
            return -1;
        }
        if ((p[o] & 0xc0) == 0xc0) {
            if (o + 2 > len) {
                return -1;
            }
            *off = o + 2;
            return 0;
        }
        if ((p[o] & 0xc0) != 0) {
            return -1;
        }
        if (p[o] == 0) {
            *off = o + 1;
            return 0;
        }
        o += 1 + (size_t)p[o];
    }
    return -1;
}

/*
 * The smallest TTL of the answer section, in seconds (RESOLVER_TTL_MAX when
 * there is none or the message is malformed: c-ares has accepted it, so a
 * failure here only costs cache precision).
 */
static unsigned
answer_min_ttl(const unsigned char *p, size_t len)
{
    size_t off = 12, qd, an, i, rdlen;
    unsigned long ttl, best = RESOLVER_TTL_MAX;

    if (p == NULL || len < 12) {
        return RESOLVER_TTL_MAX;
    }
    qd = (size_t)p[4] << 8 | p[5];
    an = (size_t)p[6] << 8 | p[7];
    for (i = 0; i < qd; i++) {
        if (skip_name(p, len, &off) != 0 || off + 4 > len) {
            return RESOLVER_TTL_MAX;
        }
        off += 4;
    }
    for (i = 0; i < an; i++) {
        if (skip_name(p, len, &off) != 0 || off + 10 > len) {
            break;
        }
        ttl = (unsigned long)p[off + 4] << 24 | (unsigned long)p[off + 5] << 16
            | (unsigned long)p[off + 6] << 8 | p[off + 7];
        if (ttl > 0x7fffffffUL) {
            ttl = 0;                    /* RFC 2181 8: treat as zero */
        }
        if (ttl < best) {
            best = ttl;
        }
        rdlen = (size_t)p[off + 8] << 8 | p[off + 9];
        off += 10 + rdlen;
        if (off > len) {
            break;
        }
    }
    return (unsigned)best;
}

/* c-ares status -> which NGINX placeholder the failure deserves. */
static int
status_rc(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:            /* NXDOMAIN */
    case ARES_ENODATA:              /* the name exists, the record not */
    case ARES_EBADNAME:
        return RESOLVER_UNAVAILABLE;
    default:                        /* timeouts, SERVFAIL, REFUSED, FORMERR */
        return RESOLVER_TEMPUNAVAIL;
    }
}

/*
 * A reply that arrived but cannot be used (malformed, or a name c-ares
 * refuses) will not improve by asking again soon: "[UNAVAILABLE]".
 */
static int
parse_rc(int status)
{
    return status == ARES_ENOMEM ? RESOLVER_TEMPUNAVAIL
                                 : RESOLVER_UNAVAILABLE;
}

/* "d.c.b.a.in-addr.arpa" or the nibble form under ip6.arpa. */
static void
reverse_name(int family, const unsigned char *a, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    int i;

    if (family == AF_INET) {
        snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1],
                 a[0]);
        return;
    }
    for (i = 15; i >= 0 && o + 4 < outlen; i--) {
        out[o++] = hex[a[i] & 0x0f];
        out[o++] = '.';
        out[o++] = hex[a[i] >> 4];
        out[o++] = '.';
    }
    snprintf(out + o, outlen - o, "ip6.arpa");
}

/* Family and raw bytes of a client address; IPv4-mapped IPv6 as IPv4. */
static int
client_addr(const struct sockaddr *sa, int *family_r, unsigned char *a)
{
    if (sa == NULL) {
        return -1;
    }
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        *family_r = AF_INET;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)
                                         ->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            memcpy(a, &in6->s6_addr[12], 4);
            *family_r = AF_INET;
        } else {
            memcpy(a, in6, 16);
            *family_r = AF_INET6;
        }
        return 0;
    }
    return -1;
}

/* min(deadline, now + resolver_timeout) */
static msec_t
call_end(const struct server_conf *sc, msec_t deadline)
{
    msec_t end = clock_now() + sc->resolver_timeout;

    return deadline < end ? deadline : end;
}

/*
 * The cache key: the server list, the families that may be asked and
 * valid=, so that servers configured differently never share an entry.
 */
static int
cache_key(const struct server_conf *sc, char *out, size_t outlen)
{
    size_t i, o;
    int n;

    n = snprintf(out, outlen, "%d%d %d", sc->resolver.ipv4 ? 1 : 0,
                 sc->resolver.ipv6 ? 1 : 0, sc->resolver.valid_sec);
    if (n < 0 || (size_t)n >= outlen) {
        return -1;
    }
    o = (size_t)n;
    for (i = 0; i < sc->resolver.servers.n; i++) {
        n = snprintf(out + o, outlen - o, " %s", sc->resolver.servers.v[i]);
        if (n < 0 || (size_t)n >= outlen - o) {
            return -1;
        }
        o += (size_t)n;
    }
    return 0;
}

/* FNV-1a over family, address and key, reduced to a slot. */
static size_t
cache_slot(int family, const unsigned char *a, const char *key)
{
    uint64_t h = 14695981039346656037ULL;
    size_t i, alen = family == AF_INET ? 4 : 16;

    h = (h ^ (uint64_t)family) * 1099511628211ULL;
    for (i = 0; i < alen; i++) {
        h = (h ^ a[i]) * 1099511628211ULL;
    }
    for (i = 0; key[i] != '\0'; i++) {
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    }
    return (size_t)(h % RESOLVER_CACHE_SLOTS);
}

/*
 * Look the address up in the cache: 1 on a miss, else what the cached
 * result says (RESOLVER_OK with a heap copy in *host_r, or
 * RESOLVER_UNAVAILABLE with the reason in err).
 */
static int
cache_get(int family, const unsigned char *a, const char *key,
          char **host_r, char *err, size_t errlen)
{
    struct cache_entry *e;
    size_t alen = family == AF_INET ? 4 : 16;
    int rc = 1;

    pthread_mutex_lock(&cache_lock);
    e = &cache[cache_slot(family, a, key)];
    if (e->family == family && memcmp(e->addr, a, alen) == 0
        && e->key != NULL && strcmp(e->key, key) == 0
        && e->expires > clock_now())
    {
        if (e->host != NULL) {
            *host_r = strdup(e->host);
            rc = *host_r != NULL ? RESOLVER_OK : 1;
        } else {
            snprintf(err, errlen, "%s (cached)", e->reason);
            rc = RESOLVER_UNAVAILABLE;
        }
    }
    if (rc == 1) {
        cache_misses++;
    } else {
        cache_hits++;
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

/* Free what a cache slot holds and mark it empty (cache_lock held). */
static void
cache_clear_slot(struct cache_entry *e)
{
    free(e->key);
    free(e->host);
    memset(e, 0, sizeof(*e));
}

/* Store a result (host NULL: a failure with its reason) for ms. */
static void
cache_put(int family, const unsigned char *a, const char *key,
          const char *host, const char *reason, msec_t ms)
{
    struct cache_entry *e;
    char *k, *h = NULL;

    if (ms <= 0) {
        return;
    }
    /* allocate outside the lock; on failure simply do not cache */
    k = strdup(key);
    if (host != NULL) {
        h = strdup(host);
    }
    if (k == NULL || (host != NULL && h == NULL)) {
        free(k);
        free(h);
        return;
    }
    pthread_mutex_lock(&cache_lock);
    e = &cache[cache_slot(family, a, key)];
    cache_clear_slot(e);
    e->family = family;
    memcpy(e->addr, a, family == AF_INET ? 4 : 16);
    e->key = k;
    e->host = h;
    if (reason != NULL) {
        str_lcpy(e->reason, reason, sizeof(e->reason));
    }
    e->expires = clock_now() + ms;
    pthread_mutex_unlock(&cache_lock);
}

/* Drop every cached result and reset the counters. */
void
resolver_cache_flush(void)
{
    size_t i;

    pthread_mutex_lock(&cache_lock);
    for (i = 0; i < RESOLVER_CACHE_SLOTS; i++) {
        cache_clear_slot(&cache[i]);
    }
    cache_hits = cache_misses = 0;
    pthread_mutex_unlock(&cache_lock);
}

/* Hit and miss counters, for tests and debugging. */
void
resolver_cache_stats(unsigned long *hits_r, unsigned long *misses_r)
{
    pthread_mutex_lock(&cache_lock);
    *hits_r = cache_hits;
    *misses_r = cache_misses;
    pthread_mutex_unlock(&cache_lock);
}

/* 1 if the hostent lists the address. */
static int
hostent_has(const struct hostent *he, int family, const unsigned char *a)
{
    size_t alen = family == AF_INET ? 4 : 16;
    char **p;

    if (he == NULL || he->h_addrtype != family
        || (size_t)he->h_length != alen)
    {
        return 0;
    }
    for (p = he->h_addr_list; *p != NULL; p++) {
        if (memcmp(*p, a, alen) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * PTR, name check, forward lookup, comparison: the uncached work of
 * resolver_client_host.  On RESOLVER_OK the name is in name[] and *ttl_r
 * holds the smallest TTL seen.
 */
static int
lookup_client(const struct server_conf *sc, int family,
              const unsigned char *a, msec_t deadline, char *name,
              size_t namelen, unsigned *ttl_r, char *err, size_t errlen)
{
    struct query q, f;
    struct hostent *ptr = NULL, *fwd = NULL;
    ares_channel ch = NULL;
    char qname[80];
    msec_t end = call_end(sc, deadline);
    size_t hl;
    unsigned ttl, fttl;
    int rc, st;

    memset(&q, 0, sizeof(q));
    memset(&f, 0, sizeof(f));
    if ((family == AF_INET && !sc->resolver.ipv4)
        || (family == AF_INET6 && !sc->resolver.ipv6))
    {
        snprintf(err, errlen, "resolver has %s=off: a name cannot be "
                 "confirmed", family == AF_INET ? "ipv4" : "ipv6");
        return RESOLVER_UNAVAILABLE;
    }
    if (channel_open(sc, end, &ch, err, errlen) != 0) {
        return RESOLVER_TEMPUNAVAIL;
    }

    reverse_name(family, a, qname, sizeof(qname));
    ares_query(ch, qname, DNS_CLASS_IN, DNS_TYPE_PTR, query_done, &q);
    if (channel_wait(ch, &q, 1, end) != 0) {
        snprintf(err, errlen, "PTR lookup %s", wait_failure());
        rc = RESOLVER_TEMPUNAVAIL;
        goto done;
    }
    if (q.status != ARES_SUCCESS) {
        snprintf(err, errlen, "PTR lookup failed: %s",
                 ares_strerror(q.status));
        rc = status_rc(q.status);
        goto done;
    }
    st = ares_parse_ptr_reply(q.abuf, q.alen, a, family == AF_INET ? 4 : 16,
                              family, &ptr);
    if (st != ARES_SUCCESS || ptr == NULL || ptr->h_name == NULL) {
        snprintf(err, errlen, "PTR answer unusable: %s", ares_strerror(st));
        rc = parse_rc(st);
        goto done;
    }
    hl = strlen(ptr->h_name);
    if (!resolver_name_valid(ptr->h_name, hl) || hl >= namelen) {
        snprintf(err, errlen, "PTR answer is not a valid host name");
        rc = RESOLVER_UNAVAILABLE;
        goto done;
    }
    memcpy(name, ptr->h_name, hl + 1);
    if (name[hl - 1] == '.') {
        name[hl - 1] = '\0';
    }
    ttl = answer_min_ttl(q.abuf, (size_t)q.alen);

    ares_query(ch, name, DNS_CLASS_IN,
               family == AF_INET ? DNS_TYPE_A : DNS_TYPE_AAAA, query_done, &f);
    if (channel_wait(ch, &f, 1, end) != 0) {
        snprintf(err, errlen, "forward lookup of \"%s\" %s", name,
                 wait_failure());
        rc = RESOLVER_TEMPUNAVAIL;
        goto done;
    }
    if (f.status != ARES_SUCCESS) {
        snprintf(err, errlen, "forward lookup of \"%s\" failed: %s", name,
                 ares_strerror(f.status));
        rc = status_rc(f.status);
        goto done;
    }
    st = family == AF_INET
       ? ares_parse_a_reply(f.abuf, f.alen, &fwd, NULL, NULL)
       : ares_parse_aaaa_reply(f.abuf, f.alen, &fwd, NULL, NULL);
    if (st != ARES_SUCCESS) {
        snprintf(err, errlen, "forward answer for \"%s\" unusable: %s", name,
                 ares_strerror(st));
        rc = parse_rc(st);
        goto done;
    }
    if (!hostent_has(fwd, family, a)) {
        snprintf(err, errlen, "\"%s\" does not resolve back to the client "
                 "address", name);
        rc = RESOLVER_UNAVAILABLE;
        goto done;
    }
    fttl = answer_min_ttl(f.abuf, (size_t)f.alen);
    *ttl_r = fttl < ttl ? fttl : ttl;
    rc = RESOLVER_OK;

done:
    /* destroying first: it may still run callbacks that touch q and f */
    ares_destroy(ch);
    if (ptr != NULL) {
        ares_free_hostent(ptr);
    }
    if (fwd != NULL) {
        ares_free_hostent(fwd);
    }
    free(q.abuf);
    free(f.abuf);
    return rc;
}

/* Cached front of lookup_client: the client's confirmed host name. */
int
resolver_client_host(const struct server_conf *sc,
                     const struct sockaddr *sa, msec_t deadline,
                     char **host_r, char *err, size_t errlen)
{
    unsigned char a[16];
    char key[RESOLVER_MAX_SERVERS * 64], name[RESOLVER_NAME_MAX + 2];
    unsigned ttl = RESOLVER_TTL_MAX;
    msec_t keep;
    int family, rc;

    *host_r = NULL;
    if (client_addr(sa, &family, a) != 0) {
        snprintf(err, errlen, "client address is not an IP address");
        return RESOLVER_UNAVAILABLE;
    }
    if (!sc->resolver.enabled) {
        snprintf(err, errlen, "no resolver configured");
        return RESOLVER_UNAVAILABLE;
    }
    if (cache_key(sc, key, sizeof(key)) != 0) {
        snprintf(err, errlen, "resolver server list too long");
        return RESOLVER_TEMPUNAVAIL;
    }
    rc = cache_get(family, a, key, host_r, err, errlen);
    if (rc != 1) {
        return rc;
    }

    rc = lookup_client(sc, family, a, deadline, name, sizeof(name), &ttl,
                       err, errlen);
    if (rc == RESOLVER_OK) {
        if (sc->resolver.valid_sec >= 0) {
            keep = (msec_t)sc->resolver.valid_sec * 1000;
        } else {
            keep = (msec_t)(ttl < RESOLVER_TTL_MAX ? ttl : RESOLVER_TTL_MAX)
                   * 1000;
        }
        cache_put(family, a, key, name, NULL, keep);
        *host_r = strdup(name);
        if (*host_r == NULL) {
            snprintf(err, errlen, "out of memory");
            return RESOLVER_TEMPUNAVAIL;
        }
    } else if (rc == RESOLVER_UNAVAILABLE) {
        keep = (msec_t)(sc->resolver.valid_sec >= 0 ? sc->resolver.valid_sec
                        : RESOLVER_NEG_TTL) * 1000;
        cache_put(family, a, key, NULL, err, keep);
    }
    return rc;
}

/* Append the addresses of a hostent to out[*n..max). */
static void
append_addrs(const struct hostent *he, struct sockaddr_storage *out,
             size_t max, size_t *n)
{
    char **p;

    if (he == NULL) {
        return;
    }
    for (p = he->h_addr_list; *p != NULL && *n < max; p++) {
        memset(&out[*n], 0, sizeof(out[*n]));
        if (he->h_addrtype == AF_INET && he->h_length == 4) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&out[*n];

            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, *p, 4);
        } else if (he->h_addrtype == AF_INET6 && he->h_length == 16) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out[*n];

            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, *p, 16);
        } else {
            continue;
        }
        (*n)++;
    }
}

/* A and AAAA of a host name (an Auth-Server), literals without a query. */
int
resolver_lookup_host(const struct server_conf *sc, const char *name,
                     msec_t deadline, struct sockaddr_storage *out,
                     size_t max, size_t *n_r, char *err, size_t errlen)
{
    struct query q[2];
    struct hostent *he;
    ares_channel ch = NULL;
    msec_t end = call_end(sc, deadline);
    int rc = -1, st, first_err = ARES_SUCCESS;
    size_t i;

    *n_r = 0;
    memset(q, 0, sizeof(q));
    if (max == 0) {
        snprintf(err, errlen, "no room for addresses");
        return -1;
    }
    /* a literal needs no query */
    memset(&out[0], 0, sizeof(out[0]));
    if (inet_pton(AF_INET, name,
                  &((struct sockaddr_in *)&out[0])->sin_addr) == 1)
    {
        out[0].ss_family = AF_INET;
        *n_r = 1;
        return 0;
    }
    if (inet_pton(AF_INET6, name,
                  &((struct sockaddr_in6 *)&out[0])->sin6_addr) == 1)
    {
        out[0].ss_family = AF_INET6;
        *n_r = 1;
        return 0;
    }
    if (!resolver_name_valid(name, strlen(name))) {
        snprintf(err, errlen, "invalid host name");
        return -1;
    }
    if (!sc->resolver.ipv4 && !sc->resolver.ipv6) {
        snprintf(err, errlen, "resolver has ipv4=off and ipv6=off");
        return -1;
    }
    if (channel_open(sc, end, &ch, err, errlen) != 0) {
        return -1;
    }
    if (sc->resolver.ipv4) {
        ares_query(ch, name, DNS_CLASS_IN, DNS_TYPE_A, query_done, &q[0]);
    } else {
        q[0].done = 1;
        q[0].status = ARES_ENODATA;
    }
    if (sc->resolver.ipv6) {
        ares_query(ch, name, DNS_CLASS_IN, DNS_TYPE_AAAA, query_done, &q[1]);
    } else {
        q[1].done = 1;
        q[1].status = ARES_ENODATA;
    }
    if (channel_wait(ch, q, 2, end) != 0) {
        snprintf(err, errlen, "resolving \"%s\" %s", name, wait_failure());
        goto done;
    }
    for (i = 0; i < 2; i++) {
        if (q[i].status != ARES_SUCCESS) {
            if (first_err == ARES_SUCCESS || first_err == ARES_ENODATA) {
                first_err = q[i].status;
            }
            continue;
        }
        he = NULL;
        st = i == 0 ? ares_parse_a_reply(q[i].abuf, q[i].alen, &he, NULL, NULL)
             : ares_parse_aaaa_reply(q[i].abuf, q[i].alen, &he, NULL, NULL);
        if (st == ARES_SUCCESS) {
            append_addrs(he, out, max, n_r);
        } else if (first_err == ARES_SUCCESS) {
            first_err = st;
        }
        if (he != NULL) {
            ares_free_hostent(he);
        }
    }
    if (*n_r == 0) {
        snprintf(err, errlen, "\"%s\" could not be resolved: %s", name,
                 ares_strerror(first_err != ARES_SUCCESS ? first_err
                               : ARES_ENODATA));
        goto done;
    }
    rc = 0;

done:
    ares_destroy(ch);
    free(q[0].abuf);
    free(q[1].abuf);
    return rc;
}
