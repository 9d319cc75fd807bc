/*
 * pool.h - the bounded queue between the acceptor and the fixed pool of
 * worker threads, with each client address's fair share
 * (preauth_per_client): an idle worker takes the first queued connection
 * whose address has fewer than its share in workers already.
 */
#ifndef POSTERN_POOL_H
#define POSTERN_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "clock.h"
#include "stamp.h"

struct conf;
struct server_conf;
struct listen_conf;
struct session;

/*
 * A session that read its PROXY header from a trusted balancer and found its
 * real address over preauth_per_client: it waits in the queue again under
 * that address.  Nothing after the header was read (proxy_protocol_read
 * takes only the header's bytes), so the addresses are all it keeps.
 */
struct pool_resume {
    struct sockaddr_storage src, dst;  /* from the header */
    socklen_t srclen, dstlen;
};

struct pool_item {
    int fd;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct conf *conf;                 /* reference owned by the item */
    const struct server_conf *sc;
    const struct listen_conf *lc;
    uint64_t id;
    msec_t accepted;
    struct pool_resume *resume;        /* NULL unless waiting again */
    size_t greeted;                    /* greeting bytes the acceptor sent */
    struct stamp stamp;                /* the APOP timestamp in that greeting */
    msec_t greet_at;                   /* held for smtp_greeting_delay: the
                                          acceptor greets then (0: not) */
    int expired;                       /* its timeout passed while the
                                          acceptor held it: a worker times
                                          it out, as if it had waited there */
    int connected;                     /* its connect line is written */
    struct session *parked;            /* a session that left its worker in
                                          its dialogue, waiting for its
                                          client (session_fill_client): it
                                          owns the fd and conf reference */
    msec_t wake_at;                    /* parked for its Auth-Wait: the
                                          acceptor queues it then, whatever
                                          its client does (0: not) */
    int before_header;                 /* parked in its PROXY header: it
                                          counts as its balancer's did */
};

/* When the item's `timeout` passes: its whole time before the relay,
 * counted from the accept (held, queued or in a worker). */
msec_t pool_item_deadline(const struct pool_item *it);

/* Start nthreads workers with a queue of capacity items.  0 / -1. */
int pool_start(int nthreads, size_t capacity);
/* Grow the queue to capacity items (a reload raised worker_connections);
 * a smaller capacity leaves it as it is.  0 / -1 out of memory. */
int pool_grow(size_t capacity);
/* Queue a connection; -1 when the queue is full (the caller answers busy
 * and closes; the item is still the caller's). */
int pool_push(const struct pool_item *it);
/* Stop taking connections.  fast: wake the workers out of their I/O
 * (shutdown their client sockets) and drop queued connections; otherwise
 * the workers serve the queue first and end (pool_busy() says how many
 * sessions are left).  pool_shutdown(1) after pool_shutdown(0) makes a
 * graceful stop fast.  Main thread only. */
void pool_shutdown(int fast);
/* After pool_shutdown(): wait for the workers to end, free the pool. */
void pool_join(void);
/*
 * From a worker's session, once a trusted PROXY header named the real
 * client: take a share of the pool for that address.  0 taken (or not in a
 * worker), -1 when the address already has its preauth_per_client share:
 * the session then goes back to the queue (session_run returns 2).
 */
int pool_claim_share(const struct server_conf *sc,
                     const struct sockaddr_storage *real);

/* From a worker's session, just before its client fd is closed or handed
 * to the relay: from now on a stop must not shutdown() that fd number (it
 * may soon belong to another connection).  No-op outside a worker. */
void pool_release_fd(void);

/* Sessions in workers + queued. */
size_t pool_busy(void);

/* From a session: it runs in a worker and no stop has begun, so it may
 * leave its worker to wait for its client (session_fill_client). */
int pool_may_park(void);
/* Whether queued connections wait for a worker: more are queued than idle
 * workers will take at once, or they wait for their address's share (a
 * snapshot).  The pressure descriptor (conn_set_pressure_fd) is readable
 * while this says so. */
int pool_pressured(void);

/* Client connections open (queue + workers + relay), for worker_connections. */
extern _Atomic long conn_active;

#endif
