/*
 * conf_value.c - the value syntaxes of postern.conf: NGINX times and
 * sizes, `listen`, address rules (set_real_ip_from, access) and their
 * matching, the auth_http URL, `resolver`, ssl_session_cache tokens.
 *
 * Pure functions over a C string (conf_parse_listen may resolve a host name
 * with getaddrinfo); no logging.  Input is the administrator's file, not
 * network data, but every number is overflow-checked and every copy sized.
 * addr_rules_match() runs in the acceptor on every connection: it only
 * reads the immutable rule list, so needs no lock.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conf_int.h"
#include "keepalive.h"
#include "str.h"

/* The name of a protocol, as written in `protocol`. */
const char *
proto_name(enum proto p)
{
    switch (p) {
    case PROTO_IMAP:
        return "imap";
    case PROTO_POP3:
        return "pop3";
    case PROTO_SMTP:
        return "smtp";
    }
    return "unknown";
}

/* The protocol of a standard port (when `protocol` is not set). */
int
conf_proto_from_port(unsigned short port)
{
    switch (port) {
    case 143:
    case 993:
        return PROTO_IMAP;
    case 110:
    case 995:
        return PROTO_POP3;
    case 25:
    case 465:
    case 587:
        return PROTO_SMTP;
    }
    return -1;
}

/* Parse an unsigned decimal of n bytes; -1 on overflow or a non-digit. */
static int
parse_u64(const char *s, size_t n, uint64_t *r)
{
    uint64_t v = 0;

    if (n == 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        if (v > (UINT64_MAX - 9) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *r = v;
    return 0;
}

/* The next blank-separated word of *p into tok (NUL-terminated): 1 found,
 * 0 at the end, -1 longer than toklen - 1.  *p moves past it. */
static int
next_token(const char **p, char *tok, size_t toklen)
{
    size_t n;

    while (**p == ' ' || **p == '\t') {
        (*p)++;
    }
    if (**p == '\0') {
        return 0;
    }
    n = strcspn(*p, " \t");
    if (n >= toklen) {
        return -1;
    }
    memcpy(tok, *p, n);
    tok[n] = '\0';
    *p += n;
    return 1;
}

/* NGINX's time units, largest first: the order a value must use, and the
 * order conf_dump_time() prints in. */
static const struct {
    const char *unit;
    int64_t ms;
} time_units[] = {
    { "y", 365LL * 86400000 }, { "M", 30LL * 86400000 },
    { "w", 7LL * 86400000 }, { "d", 86400000 }, { "h", 3600000 },
    { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
};

#define N_TIME_UNITS (sizeof(time_units) / sizeof(time_units[0]))

/*
 * NGINX time syntax: components NUMBER UNIT, units y M w d h m s ms, each
 * at most once and from the largest down ("1h30m", "1d 12h").  A number
 * without a unit may come last and counts seconds, for every setting, as
 * NGINX's parser reads it ("90" is 90 s, "1h 30" is 1 h 30 s); libconfig
 * integers are another matter (get_time).  With unit_is_sec, "ms" is
 * refused, as NGINX does.  Result in ms.
 */
int
conf_parse_time(const char *s, int unit_is_sec, msec_t *ms_r)
{
    int64_t total = 0;
    int last = -1, parts = 0;
    const char *p = s;

    if (s == NULL) {
        return -1;
    }
    for (;;) {
        const char *num;
        uint64_t v;
        size_t i, u;

        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        num = p;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
        if (parse_u64(num, (size_t)(p - num), &v) != 0) {
            return -1;
        }
        if (*p == '\0' || *p == ' ' || *p == '\t') {
            /* no unit: seconds, and nothing may follow */
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            if (*p != '\0' || p == num
                || v > (uint64_t)(INT64_MAX / 1000)
                || (int64_t)v * 1000 > INT64_MAX - total) {
                return -1;
            }
            *ms_r = total + (int64_t)v * 1000;
            return 0;
        }
        /* the longest unit that matches: "ms" is not minutes */
        for (i = 0, u = N_TIME_UNITS; i < N_TIME_UNITS; i++) {
            if (strncmp(p, time_units[i].unit, strlen(time_units[i].unit)) == 0
                && (u == N_TIME_UNITS
                    || strlen(time_units[i].unit) > strlen(time_units[u].unit))) {
                u = i;
            }
        }
        if (u == N_TIME_UNITS) {
            return -1;                       /* unknown unit */
        }
        p += strlen(time_units[u].unit);
        if (unit_is_sec && time_units[u].ms == 1) {
            return -1;
        }
        if ((int)u <= last) {
            return -1;                       /* repeated or out of order */
        }
        last = (int)u;
        if (v > (uint64_t)(INT64_MAX / time_units[u].ms)
            || (int64_t)v * time_units[u].ms > INT64_MAX - total) {
            return -1;
        }
        total += (int64_t)v * time_units[u].ms;
        parts++;
        if (*p != '\0' && *p != ' ' && *p != '\t'
            && !(*p >= '0' && *p <= '9')) {
            return -1;
        }
    }
    if (parts == 0) {
        return -1;                           /* empty */
    }
    *ms_r = total;
    return 0;
}

/* Print a time as conf_parse_time() reads it, in exact units. */
void
conf_dump_time(FILE *out, msec_t ms)
{
    fputc('"', out);
    if (ms <= 0) {
        fputs("0s", out);
    }
    for (size_t i = 0; i < N_TIME_UNITS && ms > 0; i++) {
        if (ms >= time_units[i].ms) {
            fprintf(out, "%lld%s", (long long)(ms / time_units[i].ms),
                    time_units[i].unit);
            ms %= time_units[i].ms;
        }
    }
    fputc('"', out);
}

/* NGINX size syntax: bytes, or a number with k/K or m/M. */
int
conf_parse_size(const char *s, size_t *r)
{
    size_t n;
    uint64_t v, scale = 1;

    if (s == NULL || (n = strlen(s)) == 0) {
        return -1;
    }
    switch (s[n - 1]) {
    case 'k':
    case 'K':
        scale = 1024;
        n--;
        break;
    case 'm':
    case 'M':
        scale = 1024 * 1024;
        n--;
        break;
    }
    if (parse_u64(s, n, &v) != 0 || v > SIZE_MAX / scale) {
        return -1;
    }
    *r = (size_t)(v * scale);
    return 0;
}

/* "on" / "off" -> 1 / 0, else -1. */
static int
on_off(const char *v)
{
    if (strcmp(v, "on") == 0) {
        return 1;
    }
    if (strcmp(v, "off") == 0) {
        return 0;
    }
    return -1;
}

/* The port of an IPv4 or IPv6 address. */
static void
set_port(struct sockaddr_storage *ss, unsigned short port)
{
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    }
}

/* Every address of a host name (IPv4 and IPv6), looked up at load time;
 * the list (freeaddrinfo) or NULL with a reason in err. */
static struct addrinfo *
lookup_name(const char *host, int socktype, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "host \"%s\" not found: %s", host,
                 rc != 0 ? gai_strerror(rc) : "no address");
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return NULL;
    }
    return res;
}

/*
 * Resolve a listen host name: the first address into l->addr, the others
 * (without repeats) into l->more, as NGINX binds every address of a name.
 */
static int
resolve_host(const char *host, struct listen_conf *l, char *err, size_t errlen)
{
    struct addrinfo *res = lookup_name(host, SOCK_STREAM, err, errlen);
    size_t n = 0;

    if (res == NULL) {
        return -1;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        n++;
    }
    l->more = n > 1 ? calloc(n - 1, sizeof(*l->more)) : NULL;
    if (n > 1 && l->more == NULL) {
        freeaddrinfo(res);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
    l->addrlen = res->ai_addrlen;
    set_port(&l->addr, l->port);
    for (const struct addrinfo *ai = res->ai_next; ai != NULL; ai = ai->ai_next) {
        struct sockaddr_storage ss;
        int seen;

        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) {
            continue;
        }
        memset(&ss, 0, sizeof(ss));
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        set_port(&ss, l->port);
        seen = memcmp(&ss, &l->addr, sizeof(ss)) == 0;
        for (size_t k = 0; k < l->nmore && !seen; k++) {
            seen = memcmp(&ss, &l->more[k], sizeof(ss)) == 0;
        }
        if (!seen) {
            l->more[l->nmore++] = ss;
        }
    }
    freeaddrinfo(res);
    return 0;
}

/* so_keepalive=on|off|[IDLE]:[INTVL]:[CNT] */
static int
parse_keepalive(const char *v, struct listen_conf *l)
{
    const char *c1, *c2;
    char part[32];
    msec_t ms;
    uint64_t cnt;
    size_t n;

    if (on_off(v) >= 0) {
        l->so_keepalive = on_off(v);
        return 0;
    }
    c1 = strchr(v, ':');
    c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL || strchr(c2 + 1, ':') != NULL) {
        return -1;
    }
    n = (size_t)(c1 - v);
    if (n > 0) {
        if (n >= sizeof(part)) {
            return -1;
        }
        memcpy(part, v, n);
        part[n] = '\0';
        if (conf_parse_time(part, 1, &ms) != 0 || ms / 1000 > INT_MAX
            || ms == 0) {
            return -1;
        }
        l->keepidle = (int)(ms / 1000);
    }
    n = (size_t)(c2 - c1 - 1);
    if (n > 0) {
        if (n >= sizeof(part)) {
            return -1;
        }
        memcpy(part, c1 + 1, n);
        part[n] = '\0';
        if (conf_parse_time(part, 1, &ms) != 0 || ms / 1000 > INT_MAX
            || ms == 0) {
            return -1;
        }
        l->keepintvl = (int)(ms / 1000);
    }
    if (c2[1] != '\0') {
        if (parse_u64(c2 + 1, strlen(c2 + 1), &cnt) != 0 || cnt == 0
            || cnt > INT_MAX) {
            return -1;
        }
        l->keepcnt = (int)cnt;
    }
    if (l->keepidle == 0 && l->keepintvl == 0 && l->keepcnt == 0) {
        return -1;                           /* "::" says nothing */
    }
    l->so_keepalive = 1;
    return 0;
}

/* The address part of `listen`: "unix:/p", "[v6]:P", "*:P", "H:P", "P". */
static int
listen_address(const char *a, struct listen_conf *l, char *err, size_t errlen)
{
    const char *colon, *host;
    size_t hlen;
    char hbuf[256];

    if (strncmp(a, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&l->addr;

        if (a[5] != '/') {
            snprintf(err, errlen, "UNIX socket path must be absolute in "
                     "\"%s\"", a);
            return -1;
        }
        un->sun_family = AF_UNIX;
        if (str_lcpy(un->sun_path, a + 5, sizeof(un->sun_path))
            >= sizeof(un->sun_path)) {
            snprintf(err, errlen, "UNIX socket path too long in \"%s\"", a);
            return -1;
        }
        l->addrlen = sizeof(*un);
        l->host = strdup(a);
        return l->host ? 0 : -1;
    }
    if (a[0] == '[') {
        const char *rb = strchr(a, ']');

        if (rb == NULL) {
            snprintf(err, errlen, "missing \"]\" in \"%s\"", a);
            return -1;
        }
        host = a + 1;
        hlen = (size_t)(rb - host);
        if (rb[1] != ':') {
            snprintf(err, errlen, "no port in \"%s\"", a);
            return -1;
        }
        colon = rb + 1;
    } else {
        colon = strrchr(a, ':');
        if (colon == NULL) {
            /* port only: every IPv4 address, as NGINX */
            struct sockaddr_in *sin = (struct sockaddr_in *)&l->addr;

            if (str_parse_port(a, strlen(a), &l->port) != 0) {
                snprintf(err, errlen, "no port in \"%s\"", a);
                return -1;
            }
            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
            sin->sin_port = htons(l->port);
            l->addrlen = sizeof(*sin);
            l->host = strdup("*");
            return l->host ? 0 : -1;
        }
        if (memchr(a, ':', (size_t)(colon - a)) != NULL) {
            snprintf(err, errlen, "an IPv6 address must be in brackets "
                     "in \"%s\"", a);
            return -1;
        }
        host = a;
        hlen = (size_t)(colon - a);
    }
    if (str_parse_port(colon + 1, strlen(colon + 1), &l->port) != 0) {
        snprintf(err, errlen, "invalid port in \"%s\"", a);
        return -1;
    }
    if (hlen == 0 || hlen >= sizeof(hbuf)) {
        snprintf(err, errlen, "invalid host in \"%s\"", a);
        return -1;
    }
    memcpy(hbuf, host, hlen);
    hbuf[hlen] = '\0';
    if (strcmp(hbuf, "*") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&l->addr;

        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons(l->port);
        l->addrlen = sizeof(*sin);
    } else if (a[0] == '[') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->addr;

        if (inet_pton(AF_INET6, hbuf, &sin6->sin6_addr) != 1) {
            snprintf(err, errlen, "invalid IPv6 address in \"%s\"", a);
            return -1;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(l->port);
        l->addrlen = sizeof(*sin6);
    } else if (resolve_host(hbuf, l, err, errlen) != 0) {
        return -1;
    }
    l->host = strdup(hbuf);
    return l->host ? 0 : -1;
}

/* One option of `listen` after the address. */
static int
listen_option(const char *o, struct listen_conf *l, char *err, size_t errlen)
{
    size_t sz;
    uint64_t v;
    int onoff;

    if (strcmp(o, "ssl") == 0) {
        l->ssl = 1;
    } else if (strcmp(o, "proxy_protocol") == 0) {
        l->proxy_protocol = 1;
    } else if (strcmp(o, "bind") == 0) {
        l->bind = 1;
    } else if (strncmp(o, "backlog=", 8) == 0) {
        if (parse_u64(o + 8, strlen(o + 8), &v) != 0 || v == 0
            || v > INT_MAX) {
            snprintf(err, errlen, "invalid backlog \"%s\"", o + 8);
            return -1;
        }
        l->backlog = (int)v;
        l->bind = 1;
    } else if (strncmp(o, "rcvbuf=", 7) == 0 || strncmp(o, "sndbuf=", 7) == 0) {
        if (conf_parse_size(o + 7, &sz) != 0 || sz == 0 || sz > INT_MAX) {
            snprintf(err, errlen, "invalid %.6s \"%s\"", o, o + 7);
            return -1;
        }
        if (o[0] == 'r') {
            l->rcvbuf = (int)sz;
        } else {
            l->sndbuf = (int)sz;
        }
        l->bind = 1;
    } else if (strncmp(o, "ipv6only=", 9) == 0) {
        if ((onoff = on_off(o + 9)) < 0) {
            snprintf(err, errlen, "invalid ipv6only \"%s\"", o + 9);
            return -1;
        }
        l->ipv6only = onoff;
        l->bind = 1;
    } else if (strncmp(o, "so_keepalive=", 13) == 0) {
        if (parse_keepalive(o + 13, l) != 0) {
            snprintf(err, errlen, "invalid so_keepalive \"%s\"", o + 13);
            return -1;
        }
        l->bind = 1;            /* a socket option: NGINX implies bind too */
    } else {
        snprintf(err, errlen, "invalid parameter \"%s\"", o);
        return -1;
    }
    return 0;
}

/* Whether one of n addresses is of family. */
static int
has_family(const struct sockaddr_storage *v, size_t n, int family)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i].ss_family == family) {
            return 1;
        }
    }
    return 0;
}

/* Parse one `listen` value.  0 / -1 with err; free with listen_conf_free.
 * A host name with several addresses leaves the others in l->more. */
int
conf_parse_listen(const char *s, struct listen_conf *l, char *err,
                  size_t errlen)
{
    char tok[512];
    const char *p = s;
    int first = 1;

    memset(l, 0, sizeof(*l));
    l->ipv6only = -1;
    l->backlog = -1;
    l->rcvbuf = -1;
    l->sndbuf = -1;
    l->so_keepalive = -1;
    if ((l->text = strdup(s)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (;;) {
        int t = next_token(&p, tok, sizeof(tok));

        if (t == 0) {
            break;
        }
        if (t < 0) {
            snprintf(err, errlen, "parameter too long");
            goto fail;
        }
        if (first) {
            if (listen_address(tok, l, err, errlen) != 0) {
                goto fail;
            }
            first = 0;
        } else if (listen_option(tok, l, err, errlen) != 0) {
            goto fail;
        }
    }
    if (first) {
        snprintf(err, errlen, "empty value");
        goto fail;
    }
    if (l->ipv6only >= 0 && l->addr.ss_family != AF_INET6
        && !has_family(l->more, l->nmore, AF_INET6))
    {
        snprintf(err, errlen, "ipv6only needs an IPv6 address");
        goto fail;
    }
    if (l->so_keepalive >= 0 && l->addr.ss_family == AF_UNIX) {
        snprintf(err, errlen, "so_keepalive on a UNIX socket");
        goto fail;
    }
    return 0;

fail:
    listen_conf_free(l);
    return -1;
}

/* Free what conf_parse_listen allocated. */
void
listen_conf_free(struct listen_conf *l)
{
    free(l->text);
    free(l->host);
    free(l->more);
    l->text = NULL;
    l->host = NULL;
    l->more = NULL;
    l->nmore = 0;
}

/* Whether a listening address accepts on every local address. */
int
listen_is_wildcard(const struct listen_conf *l)
{
    if (l->addr.ss_family == AF_INET) {
        return ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr
               == htonl(INADDR_ANY);
    }
    if (l->addr.ss_family == AF_INET6) {
        return IN6_IS_ADDR_UNSPECIFIED(
            &((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
    }
    return 0;
}

/* Whether sa is l's address: family, address and port (a UNIX path). */
int
listen_is_addr(const struct listen_conf *l, const struct sockaddr *sa)
{
    if (sa->sa_family != l->addr.ss_family) {
        return 0;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&l->addr;
        const struct sockaddr_in *b = (const struct sockaddr_in *)sa;

        return a->sin_port == b->sin_port
               && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&l->addr;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)sa;

        return a->sin6_port == b->sin6_port
               && memcmp(&a->sin6_addr, &b->sin6_addr,
                         sizeof(a->sin6_addr)) == 0;
    }
    if (sa->sa_family == AF_UNIX) {
        return strcmp(((const struct sockaddr_un *)&l->addr)->sun_path,
                      ((const struct sockaddr_un *)sa)->sun_path) == 0;
    }
    return 0;
}

/* Whether two listens name one address and port. */
int
listen_same_addr(const struct listen_conf *a, const struct listen_conf *b)
{
    return listen_is_addr(a, (const struct sockaddr *)&b->addr);
}

/*
 * One address rule: "all", "unix:", ADDRESS or ADDRESS/BITS, after
 * "allow " / "deny " when with_verb.  Host bits beyond the prefix are
 * cleared, so "10.1.2.3/8" means 10.0.0.0/8.
 */
int
conf_parse_addr_rule(const char *s, int with_verb, struct addr_rule *r)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash;
    size_t n;
    int maxbits;

    memset(r, 0, sizeof(*r));
    r->allow = 1;
    if (with_verb) {
        if (strncmp(s, "allow ", 6) == 0) {
            s += 6;
        } else if (strncmp(s, "deny ", 5) == 0) {
            r->allow = 0;
            s += 5;
        } else {
            return -1;
        }
        while (*s == ' ') {
            s++;
        }
    }
    if (strcmp(s, "all") == 0) {
        r->all = 1;
        return 0;
    }
    if (strcmp(s, "unix:") == 0) {
        r->is_unix = 1;
        return 0;
    }
    slash = strchr(s, '/');
    n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, r->addr) == 1) {
        r->family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
        r->family = AF_INET6;
        maxbits = 128;
    } else {
        return -1;
    }
    r->prefix = maxbits;
    if (slash != NULL) {
        uint64_t v;

        if (parse_u64(slash + 1, strlen(slash + 1), &v) != 0
            || v > (uint64_t)maxbits) {
            return -1;
        }
        r->prefix = (int)v;
    }
    for (int bit = r->prefix; bit < maxbits; bit++) {
        r->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
    }
    return 0;
}

/* 1 if the first prefix bits of a and b agree. */
static int
prefix_eq(const unsigned char *a, const unsigned char *b, int prefix)
{
    int bytes = prefix / 8, rest = prefix % 8;

    if (memcmp(a, b, (size_t)bytes) != 0) {
        return 0;
    }
    if (rest == 0) {
        return 1;
    }
    return ((a[bytes] ^ b[bytes]) & (0xff00u >> rest)) == 0;
}

/*
 * First rule that matches sa: 1 (with *allow_r from the rule when given),
 * or 0 when none does.  An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) also
 * matches IPv4 rules.
 */
int
addr_rules_match(const struct addr_rules *rules, const struct sockaddr *sa,
                 int *allow_r)
{
    const unsigned char *v6 = NULL, *v4 = NULL;
    int is_unix = sa->sa_family == AF_UNIX;

    if (sa->sa_family == AF_INET) {
        v4 = (const unsigned char *)
            &((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;

        v6 = a6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            v4 = a6->s6_addr + 12;
        }
    }
    for (size_t i = 0; i < rules->n; i++) {
        const struct addr_rule *r = &rules->v[i];
        int hit;

        if (r->all) {
            hit = 1;
        } else if (r->is_unix) {
            hit = is_unix;
        } else if (r->family == AF_INET) {
            hit = v4 != NULL && prefix_eq(v4, r->addr, r->prefix);
        } else {
            hit = v6 != NULL && prefix_eq(v6, r->addr, r->prefix);
        }
        if (hit) {
            if (allow_r != NULL) {
                *allow_r = r->allow;
            }
            return 1;
        }
    }
    return 0;
}

/* "allow 10.0.0.0/8", "unix:", "::1" ... for -T. */
void
conf_addr_rule_text(const struct addr_rule *r, int with_verb, char *buf,
                    size_t len)
{
    char a[INET6_ADDRSTRLEN];
    const char *verb = with_verb ? (r->allow ? "allow " : "deny ") : "";
    int maxbits = r->family == AF_INET ? 32 : 128;

    if (r->all) {
        snprintf(buf, len, "%sall", verb);
    } else if (r->is_unix) {
        snprintf(buf, len, "%sunix:", verb);
    } else {
        inet_ntop(r->family, r->addr, a, sizeof(a));
        if (r->prefix == maxbits) {
            snprintf(buf, len, "%s%s", verb, a);
        } else {
            snprintf(buf, len, "%s%s/%d", verb, a, r->prefix);
        }
    }
}

/* A printable, space-free byte string (an URL, a host name). */
static int
is_clean(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* Parse an auth_http URL into u (see conf_int.h). */
int
conf_parse_auth_http(const char *s, struct auth_http_url *u, char *err,
                     size_t errlen)
{
    const char *p = s, *slash, *hend, *colon;

    memset(u, 0, sizeof(*u));
    if (*s == '\0' || !is_clean(s)) {
        snprintf(err, errlen, "invalid URL \"%s\"", s);
        return -1;
    }
    if (strncasecmp(p, "https://", 8) == 0) {
        snprintf(err, errlen, "https is not supported in \"%s\"", s);
        return -1;
    }
    if (strncasecmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strstr(p, "://") != NULL) {
        snprintf(err, errlen, "only http:// is supported in \"%s\"", s);
        return -1;
    }
    if ((u->text = strdup(s)) == NULL) {
        goto nomem;
    }
    if (strncmp(p, "unix:", 5) == 0) {
        const char *sep = strstr(p + 5, ":/");

        u->is_unix = 1;
        if (p[5] != '/') {
            snprintf(err, errlen, "UNIX socket path must be absolute in "
                     "\"%s\"", s);
            goto fail;
        }
        hend = sep ? sep : p + strlen(p);
        if ((size_t)(hend - (p + 5)) >= sizeof(((struct sockaddr_un *)0)
                                               ->sun_path)) {
            snprintf(err, errlen, "UNIX socket path too long in \"%s\"", s);
            goto fail;
        }
        u->host = strndup(p + 5, (size_t)(hend - (p + 5)));
        u->uri = strdup(sep ? sep + 1 : "/");
        if (u->host == NULL || u->uri == NULL) {
            goto nomem;
        }
        return 0;
    }
    slash = strchr(p, '/');
    hend = slash ? slash : p + strlen(p);
    u->port = 80;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(hend - p));
        struct in6_addr a6;

        if (rb == NULL) {
            snprintf(err, errlen, "missing \"]\" in \"%s\"", s);
            goto fail;
        }
        u->host = strndup(p + 1, (size_t)(rb - p - 1));
        if (u->host == NULL) {
            goto nomem;
        }
        if (inet_pton(AF_INET6, u->host, &a6) != 1) {
            snprintf(err, errlen, "invalid IPv6 address in \"%s\"", s);
            goto fail;
        }
        colon = rb + 1 < hend ? rb + 1 : NULL;
        if (colon != NULL && *colon != ':') {
            snprintf(err, errlen, "invalid host in \"%s\"", s);
            goto fail;
        }
    } else {
        colon = memchr(p, ':', (size_t)(hend - p));
        u->host = strndup(p, (size_t)((colon ? colon : hend) - p));
        if (u->host == NULL) {
            goto nomem;
        }
        if (u->host[0] == '\0' || strchr(u->host, '@') != NULL) {
            snprintf(err, errlen, "invalid host in \"%s\"", s);
            goto fail;
        }
    }
    if (colon != NULL
        && str_parse_port(colon + 1, (size_t)(hend - colon - 1), &u->port) != 0) {
        snprintf(err, errlen, "invalid port in \"%s\"", s);
        goto fail;
    }
    u->uri = strdup(slash ? slash : "/");
    if (u->uri == NULL) {
        goto nomem;
    }
    return 0;

nomem:
    snprintf(err, errlen, "out of memory");
fail:
    auth_http_url_free(u);
    return -1;
}

/*
 * An auth_http host is looked up once, when the file is loaded (so again
 * at each reload), as NGINX does: a login then never waits for the
 * system's resolver, whose delays no auth_http_timeout bounds.  Every
 * IPv4 and IPv6 address, without repeats, in getaddrinfo()'s order.
 */
int
conf_resolve_auth_http(struct auth_http_url *u, char *err, size_t errlen)
{
    struct addrinfo *res;
    size_t n = 0;

    free(u->addrs);
    u->addrs = NULL;
    u->naddrs = 0;
    if (u->is_unix) {
        return 0;
    }
    if ((res = lookup_name(u->host, SOCK_STREAM, err, errlen)) == NULL) {
        return -1;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        n++;
    }
    if ((u->addrs = calloc(n, sizeof(*u->addrs))) == NULL) {
        freeaddrinfo(res);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        struct sockaddr_storage ss;
        int seen = 0;

        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            || ai->ai_addrlen > sizeof(ss)) {
            continue;
        }
        memset(&ss, 0, sizeof(ss));
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        set_port(&ss, u->port);
        for (size_t i = 0; i < u->naddrs && !seen; i++) {
            seen = memcmp(&u->addrs[i], &ss, sizeof(ss)) == 0;
        }
        if (!seen) {
            u->addrs[u->naddrs++] = ss;
        }
    }
    freeaddrinfo(res);
    if (u->naddrs == 0) {
        snprintf(err, errlen, "host \"%s\" has no IPv4 or IPv6 address",
                 u->host);
        return -1;
    }
    return 0;
}

/* Free the strings of an auth_http URL (not u itself). */
void
auth_http_url_free(struct auth_http_url *u)
{
    free(u->text);
    free(u->host);
    free(u->uri);
    free(u->addrs);
    keepalive_free(u->idle);
    memset(u, 0, sizeof(*u));
}

/* A resolver address: IPv4, [IPv6] or a host name, with an optional port. */
static int
resolver_addr_ok(const char *a)
{
    char host[256];
    const char *colon, *h = a;
    size_t n;
    unsigned short port;
    unsigned char bin[16];

    if (*a == '[') {
        const char *rb = strchr(a, ']');

        if (rb == NULL || (size_t)(rb - a - 1) >= sizeof(host)) {
            return 0;
        }
        memcpy(host, a + 1, (size_t)(rb - a - 1));
        host[rb - a - 1] = '\0';
        if (inet_pton(AF_INET6, host, bin) != 1) {
            return 0;
        }
        if (rb[1] == '\0') {
            return 1;
        }
        return rb[1] == ':' && str_parse_port(rb + 2, strlen(rb + 2), &port) == 0;
    }
    colon = strchr(a, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL) {
        return 0;                            /* bare IPv6: needs brackets */
    }
    n = colon ? (size_t)(colon - a) : strlen(a);
    if (n == 0 || n >= sizeof(host)) {
        return 0;
    }
    if (colon != NULL && str_parse_port(colon + 1, strlen(colon + 1), &port) != 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-'
            && h[i] != '_') {
            return 0;
        }
    }
    return 1;
}

/*
 * A resolver given by name is looked up once, when the file is loaded, and
 * each of its addresses becomes a server (as NGINX does): the DNS client
 * then never depends on the system's resolver.  a is "NAME[:PORT]", already
 * checked by resolver_addr_ok.
 */
static int
resolver_add_name(const char *a, struct resolver_conf *r, char *err,
                  size_t errlen)
{
    char host[256], text[INET6_ADDRSTRLEN + 16];
    const char *colon = strchr(a, ':');
    size_t n = colon ? (size_t)(colon - a) : strlen(a);
    struct addrinfo *res;
    int rc;

    memcpy(host, a, n);
    host[n] = '\0';
    if ((res = lookup_name(host, SOCK_DGRAM, err, errlen)) == NULL) {
        return -1;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        char num[INET6_ADDRSTRLEN];
        const void *bin = ai->ai_family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        int dup = 0;

        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            || inet_ntop(ai->ai_family, bin, num, sizeof(num)) == NULL)
        {
            continue;
        }
        snprintf(text, sizeof(text), ai->ai_family == AF_INET6 ? "[%s]%s%s"
                 : "%s%s%s", num, colon ? ":" : "", colon ? colon + 1 : "");
        for (size_t i = 0; i < r->servers.n && !dup; i++) {
            dup = strcmp(r->servers.v[i], text) == 0;
        }
        if (!dup && strlist_add(&r->servers, text) != 0) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            goto out;
        }
    }
    rc = 0;

out:
    freeaddrinfo(res);
    return rc;
}

/* Parse `resolver` (see conf_int.h). */
int
conf_parse_resolver(const char *s, struct resolver_conf *r, char *err,
                    size_t errlen)
{
    char tok[300];
    const char *p = s;

    memset(r, 0, sizeof(*r));
    r->valid_sec = -1;
    r->ipv4 = 1;
    r->ipv6 = 1;
    if (strcmp(s, "off") == 0) {
        return 0;
    }
    r->enabled = 1;
    for (;;) {
        int t = next_token(&p, tok, sizeof(tok));
        int v;

        if (t == 0) {
            break;
        }
        if (t < 0) {
            snprintf(err, errlen, "parameter too long");
            goto fail;
        }
        if (strncmp(tok, "valid=", 6) == 0) {
            msec_t ms;

            if (conf_parse_time(tok + 6, 1, &ms) != 0
                || ms / 1000 > INT_MAX) {
                snprintf(err, errlen, "invalid valid \"%s\"", tok + 6);
                goto fail;
            }
            r->valid_sec = (int)(ms / 1000);
        } else if (strncmp(tok, "ipv4=", 5) == 0
                   || strncmp(tok, "ipv6=", 5) == 0) {
            if ((v = on_off(tok + 5)) < 0) {
                snprintf(err, errlen, "invalid %.4s \"%s\"", tok, tok + 5);
                goto fail;
            }
            if (tok[3] == '4') {
                r->ipv4 = v;
            } else {
                r->ipv6 = v;
            }
        } else if (resolver_addr_ok(tok)) {
            unsigned char bin[4];
            char host[INET_ADDRSTRLEN];
            size_t hl = strcspn(tok, ":");
            int literal = tok[0] == '[';

            if (!literal && hl < sizeof(host)) {
                memcpy(host, tok, hl);
                host[hl] = '\0';
                literal = inet_pton(AF_INET, host, bin) == 1;
            }
            if (literal ? strlist_add(&r->servers, tok) != 0
                        : resolver_add_name(tok, r, err, errlen) != 0)
            {
                if (literal) {
                    snprintf(err, errlen, "out of memory");
                }
                goto fail;
            }
        } else {
            snprintf(err, errlen, "invalid address \"%s\"", tok);
            goto fail;
        }
    }
    if (r->servers.n == 0) {
        snprintf(err, errlen, "no resolver address");
        goto fail;
    }
    if (r->servers.n > RESOLVER_MAX_SERVERS) {
        snprintf(err, errlen, "more than %d resolver addresses",
                 RESOLVER_MAX_SERVERS);
        goto fail;
    }
    if (!r->ipv4 && !r->ipv6) {
        snprintf(err, errlen, "ipv4=off and ipv6=off leave nothing to ask");
        goto fail;
    }
    return 0;

fail:
    resolver_conf_free(r);
    return -1;
}

/* Free the server list of a resolver. */
void
resolver_conf_free(struct resolver_conf *r)
{
    strlist_free(&r->servers);
}

/* 1 if tok is a valid ssl_session_cache token. */
int
conf_check_session_cache_token(const char *tok)
{
    uint64_t v;
    size_t sz;

    if (strcmp(tok, "off") == 0 || strcmp(tok, "none") == 0
        || strcmp(tok, "builtin") == 0) {
        return 1;
    }
    if (strncmp(tok, "builtin:", 8) == 0) {
        return parse_u64(tok + 8, strlen(tok + 8), &v) == 0 && v > 0
               && v <= INT_MAX;
    }
    if (strncmp(tok, "shared:", 7) == 0) {
        const char *name = tok + 7, *colon = strchr(name, ':');

        return colon != NULL && colon > name
               && conf_parse_size(colon + 1, &sz) == 0 && sz > 0;
    }
    return 0;
}

/* Free a string list. */
void
strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Append a copy of s.  0 / -1 on no memory. */
int
strlist_add(struct strlist *l, const char *s)
{
    char **nv, *copy = strdup(s);

    if (copy == NULL) {
        return -1;
    }
    nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
    if (nv == NULL) {
        free(copy);
        return -1;
    }
    nv[l->n++] = copy;
    l->v = nv;
    return 0;
}
