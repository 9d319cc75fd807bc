/*
 * listener.h - the listening sockets of a configuration, and the acceptor
 * thread that polls them.
 */
#ifndef POSTERN_LISTENER_H
#define POSTERN_LISTENER_H

#include <stddef.h>

#include "conn.h"

struct conf;
struct listen_conf;
struct server_conf;

struct listener {
    int fd;                /* -1 when via >= 0: no socket of its own */
    char key[ADDR_TEXT_LEN + 32];          /* family, address and port */
    const struct listen_conf *lc;
    const struct server_conf *sc;
    long via;              /* the wildcard whose socket serves it, or -1 */
    unsigned shared:1;     /* a wildcard that also serves such addresses */
    unsigned taken:1;      /* the socket was taken over from the old set */
};

struct listener_set {
    struct conf *conf;                     /* reference held */
    size_t n;
    struct listener *v;
};

/*
 * Bind every `listen` of conf that has a socket of its own (an address
 * that conf_load found served by a wildcard's socket has none).  A socket
 * of `old` (may be NULL) bound to the same address is taken over instead
 * of bound again (so a reload keeps it open) and marked -1 in old.  New
 * sockets are all bound before any of them listens.  NULL with "ADDRESS:
 * what failed" in err; nothing newly bound stays open then.
 */
struct listener_set *listeners_open(struct conf *conf, struct listener_set *old,
                                    char *err, size_t errlen);
/*
 * Which listener (and so which server and listen options) a connection
 * accepted on l's socket belongs to: l, or for a wildcard that also
 * serves other addresses of its port, the listener of the connection's
 * local address.
 */
const struct listener *listener_for(const struct listener_set *set,
                                     const struct listener *l, int fd);
/* The set's sockets (addresses a wildcard's socket serves have none). */
size_t listeners_sockets(const struct listener_set *set);
/* Close every fd still open in the set, unref its conf, free it. */
void listeners_close(struct listener_set **set);

/* Start the acceptor thread on set (the acceptor now owns the set). */
int acceptor_start(struct listener_set *set);
/* Give the acceptor a new set; returns the old one (to be closed by the
 * caller after the acceptor stopped using it). */
struct listener_set *acceptor_swap(struct listener_set *set);
/* Stop accepting and join the thread; returns the set it had. */
struct listener_set *acceptor_stop(void);
/* From a worker: hold a parked session (it->parked) until its client
 * speaks, then queue it again.  0 taken, -1 the acceptor takes no more (it
 * is stopping): the item is still the caller's. */
struct pool_item;
int acceptor_park(const struct pool_item *it);
/* Whether acceptor_park() would take a session now. */
int acceptor_parks_open(void);

#endif
