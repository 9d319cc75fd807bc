/*
 * listener.c - binding the `listen` sockets of a configuration, with every
 * option of the listen setting, and taking over unchanged ones on reload.
 * An address without `bind` on a port that has a wildcard of its family
 * gets no socket: the wildcard's accepts for it (NGINX's way, which also
 * is the only one Linux allows), and listener_for() finds its server.
 * Opening and closing run in the main thread, listener_for() in the
 * acceptor on a set it holds; no locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "listener.h"
#include "log.h"

#define DEFAULT_BACKLOG 511         /* NGINX's default on Linux */

/* Identity of a listening socket: same key, same socket.  IPV6_V6ONLY is
 * part of it, since a bound socket cannot change it: a reload that turns
 * it needs a new socket (and so, while the old one listens, a restart). */
static void
listener_key(const struct listen_conf *lc, char *out, size_t outlen)
{
    char text[ADDR_TEXT_LEN];

    net_addr_text((const struct sockaddr *)&lc->addr, lc->addrlen, text,
                  sizeof(text), 1);
    snprintf(out, outlen, "%d %s%s", lc->addr.ss_family, text,
             lc->addr.ss_family != AF_INET6 ? ""
             : lc->ipv6only != 0 ? " v6only" : " dual");
}

/* Create, configure and bind one socket (listen() comes later, once
 * every new socket is bound). */
static int
listen_bind(const struct listen_conf *lc, char *err, size_t errlen)
{
    int fd, one = 1, saved;
    int family = lc->addr.ss_family;
    char text[ADDR_TEXT_LEN];

    net_addr_text((const struct sockaddr *)&lc->addr, lc->addrlen, text,
                  sizeof(text), 1);
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket() %s failed: %s", text, strerror(errno));
        return -1;
    }
    if (family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* replies are small writes, none may wait for a delayed ACK; the
         * accepted sockets inherit it, one system call fewer for each */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (family == AF_INET6) {
        /* on unless ipv6only=off, as in NGINX: "143" and "[::]:143" are
         * then two sockets, whatever net.ipv6.bindv6only says */
        int v = lc->ipv6only != 0;

        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v)) != 0) {
            snprintf(err, errlen, "setsockopt(IPV6_V6ONLY) %s failed: %s",
                     text, strerror(errno));
            goto fail;
        }
    }
    if (lc->rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &lc->rcvbuf,
                                     sizeof(lc->rcvbuf)) != 0) {
        snprintf(err, errlen, "setsockopt(SO_RCVBUF) %s failed: %s", text, strerror(errno));
        goto fail;
    }
    if (lc->sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &lc->sndbuf,
                                     sizeof(lc->sndbuf)) != 0) {
        snprintf(err, errlen, "setsockopt(SO_SNDBUF) %s failed: %s", text, strerror(errno));
        goto fail;
    }
    if (lc->so_keepalive >= 0 && family != AF_UNIX) {
        int v = lc->so_keepalive ? 1 : 0;

        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v));
        if (lc->keepidle > 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &lc->keepidle, sizeof(int));
        }
        if (lc->keepintvl > 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &lc->keepintvl, sizeof(int));
        }
        if (lc->keepcnt > 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &lc->keepcnt, sizeof(int));
        }
    }
    if (family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&lc->addr;
        struct stat st;

        /* a stale socket file from an earlier run would make bind() fail */
        if (stat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            unlink(un->sun_path);
        }
    }
    if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) != 0) {
        snprintf(err, errlen, "bind() to %s failed (%s)", text, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    saved = errno;                  /* for the caller's EADDRINUSE test */
    close(fd);
    errno = saved;
    return -1;
}

/* listen() on a socket listen_bind made. */
static int
listen_start(const struct listener *l, char *err, size_t errlen)
{
    char text[ADDR_TEXT_LEN];

    if (listen(l->fd, l->lc->backlog > 0 ? l->lc->backlog : DEFAULT_BACKLOG)
        == 0) {
        return 0;
    }
    net_addr_text((const struct sockaddr *)&l->lc->addr, l->lc->addrlen, text,
                  sizeof(text), 1);
    snprintf(err, errlen, "listen() to %s failed (%s)", text, strerror(errno));
    return -1;
}

/* What conf_load settled about the entries of set: an address served by
 * a wildcard's socket notes the wildcard's index, the wildcard that it
 * is shared. */
static void
listeners_link(struct listener_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        struct listener *l = &set->v[i];

        l->via = -1;
        for (size_t m = 0; l->lc->via != NULL && m < set->n; m++) {
            if (set->v[m].lc == l->lc->via) {
                l->via = (long)m;
                set->v[m].shared = 1;
                break;
            }
        }
    }
}

/* Take over the socket of old bound to l's address, if there is one. */
static void
listener_take(struct listener *l, struct listener_set *old)
{
    for (size_t m = 0; old != NULL && m < old->n; m++) {
        if (old->v[m].fd >= 0 && strcmp(old->v[m].key, l->key) == 0) {
            l->fd = old->v[m].fd;
            old->v[m].fd = -1;
            l->taken = 1;
            return;
        }
    }
}

/* After bind() of l failed with EADDRINUSE: when a socket of the old set
 * that the new one does not keep covers the same port (a wildcard and an
 * address of its port), say so; the system refuses the pair while the old
 * socket listens, so only a restart makes that change. */
static void
explain_in_use(const struct listener *l, const struct listener_set *old,
               char *err, size_t errlen)
{
    for (size_t m = 0; old != NULL && m < old->n; m++) {
        const struct listen_conf *o = old->v[m].lc;
        size_t len = strlen(err);
        char text[ADDR_TEXT_LEN];

        if (old->v[m].fd < 0 || o->addr.ss_family == AF_UNIX
            || o->addr.ss_family != l->lc->addr.ss_family
            || o->port != l->lc->port
            || (!listen_is_wildcard(o) && !listen_is_wildcard(l->lc))) {
            continue;
        }
        net_addr_text((const struct sockaddr *)&o->addr, o->addrlen, text,
                      sizeof(text), 1);
        snprintf(err + len, errlen - len, "; %s of the running "
                 "configuration listens on that port until the reload is "
                 "done, so this change needs a restart", text);
        return;
    }
}

/* Bind all listeners of conf, reusing old ones. */
struct listener_set *
listeners_open(struct conf *conf, struct listener_set *old, char *err,
               size_t errlen)
{
    struct listener_set *set = calloc(1, sizeof(*set));
    size_t total = 0;

    if (set == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < conf->nservers; i++) {
        total += conf->servers[i].nlisten;
    }
    set->v = calloc(total ? total : 1, sizeof(*set->v));
    if (set->v == NULL) {
        free(set);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    set->conf = conf_ref(conf);
    for (size_t i = 0; i < conf->nservers; i++) {
        const struct server_conf *sc = &conf->servers[i];

        for (size_t j = 0; j < sc->nlisten; j++) {
            struct listener *l = &set->v[set->n++];

            l->lc = &sc->listen[j];
            l->sc = sc;
            l->fd = -1;
            listener_key(l->lc, l->key, sizeof(l->key));
        }
    }
    listeners_link(set);
    /* addresses served by a wildcard's socket have none of their own */
    for (size_t i = 0; i < set->n; i++) {
        if (set->v[i].via < 0) {
            listener_take(&set->v[i], old);
        }
    }
    for (size_t i = 0; i < set->n; i++) {
        struct listener *l = &set->v[i];

        if (l->via < 0 && l->fd < 0
            && (l->fd = listen_bind(l->lc, err, errlen)) < 0) {
            if (errno == EADDRINUSE) {
                explain_in_use(l, old, err, errlen);
            }
            goto fail;
        }
    }
    /* no new socket queues connections before every one is bound: a
     * start-up or reload that fails leaves no client reset */
    for (size_t i = 0; i < set->n; i++) {
        if (set->v[i].fd >= 0 && !set->v[i].taken
            && listen_start(&set->v[i], err, errlen) != 0) {
            goto fail;
        }
    }
    return set;
fail:
    /* hand taken-over sockets back to old; close the new ones */
    for (size_t m = 0; m < set->n; m++) {
        int given_back = 0;

        for (size_t o = 0; old != NULL && o < old->n && set->v[m].taken; o++) {
            if (old->v[o].fd < 0 && old->v[o].via < 0
                && strcmp(old->v[o].key, set->v[m].key) == 0) {
                old->v[o].fd = set->v[m].fd;
                given_back = 1;
                break;
            }
        }
        if (!given_back && set->v[m].fd >= 0) {
            close(set->v[m].fd);
        }
        set->v[m].fd = -1;
    }
    listeners_close(&set);
    return NULL;
}

/* The listener whose server takes a connection accepted on l: l itself,
 * or, on a wildcard's socket that also serves addresses of its port, the
 * one of the local address the client reached (getsockname(), as NGINX
 * does; only such sockets pay for the call). */
const struct listener *
listener_for(const struct listener_set *set, const struct listener *l, int fd)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    long self = (long)(l - set->v);

    if (!l->shared
        || getsockname(fd, (struct sockaddr *)&local, &len) != 0) {
        return l;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (set->v[i].via == self
            && listen_is_addr(set->v[i].lc, (const struct sockaddr *)&local)) {
            return &set->v[i];
        }
    }
    return l;
}

/* Sockets of the set, for the start-up line and the open-files check. */
size_t
listeners_sockets(const struct listener_set *set)
{
    size_t n = 0;

    for (size_t i = 0; i < set->n; i++) {
        n += set->v[i].fd >= 0;
    }
    return n;
}

/* Close what is left open and free. */
void
listeners_close(struct listener_set **setp)
{
    struct listener_set *set = *setp;

    if (set == NULL) {
        return;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (set->v[i].fd >= 0) {
            close(set->v[i].fd);
            if (set->v[i].lc->addr.ss_family == AF_UNIX) {
                unlink(((const struct sockaddr_un *)&set->v[i].lc->addr)->sun_path);
            }
        }
    }
    conf_unref(set->conf);
    free(set->v);
    free(set);
    *setp = NULL;
}
