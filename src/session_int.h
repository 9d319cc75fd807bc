/*
 * session_int.h - private to session.c and session_park.c: what the
 * session's phases ask when a wait would let the session leave its worker.
 */
#ifndef POSTERN_SESSION_INT_H
#define POSTERN_SESSION_INT_H

#include "pool.h"
#include "session.h"

/* Whether a session may leave its worker now: it runs in one, and neither
 * the pool nor the acceptor is stopping. */
int session_may_park(void);

/* Whether a session waiting for its client should leave its worker now:
 * it may, and other clients wait for one.  (The park callback of
 * tls_accept_parkable and proxy_protocol_read_parkable.) */
int session_others_wait(void *arg);

/*
 * Leave the worker: the session's connection, conf reference and state
 * go into it (it->parked) for the acceptor, which holds it until its
 * client speaks, its `timeout` passes or s->park_until, and queues it
 * again.  3 when the acceptor has it, 2 when it takes no more (a stop
 * began): back to the queue.
 */
int session_park(struct session *s, struct pool_item *it);

#endif
