/*
 * session_park.c - a session leaving its worker: when it waits for its
 * client (in its PROXY header, a TLS handshake, the dialogue, a SASL
 * exchange) while other clients wait for a worker, or sits out a refused
 * login's Auth-Wait, it goes to the acceptor with everything it has
 * (session_park), and whichever worker the acceptor's queue hands it to
 * goes on from s->phase (session.c).  The dialogue's reads come through
 * session_fill_client, which decides.
 *
 * Locks: none here; the pool's and the acceptor's own guard the hand-over.
 */
#include <errno.h>
#include <string.h>

#include "listener.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "session_int.h"

/* See session_int.h. */
int
session_may_park(void)
{
    return pool_may_park() && acceptor_parks_open();
}

/* See session_int.h. */
int
session_others_wait(void *arg)
{
    (void)arg;
    return session_may_park() && pool_pressured();
}

/* See session_int.h. */
int
session_park(struct session *s, struct pool_item *it)
{
    it->parked = s;
    it->fd = s->client.fd;
    it->conf = s->conf;
    /* it waits, and takes its share of the pool, as the address it has
     * now: behind a balancer, the real client's */
    memcpy(&it->peer, &s->peer, sizeof(it->peer));
    it->peerlen = s->peerlen;
    it->expired = 0;
    it->greet_at = 0;               /* greeted long ago */
    it->wake_at = s->park_until;    /* Auth-Wait: queued again then */
    it->before_header = s->phase == PHASE_PROXY;
    session_log(s, LOG_LV_DEBUG, s->park_until != 0
                ? "waiting for Auth-Wait without a worker"
                : "waiting for the client without a worker");
    pool_release_fd();
    return acceptor_park(it) == 0 ? 3 : 2;
}

/* See session.h. */
int
session_fill_client(struct session *s)
{
    struct conn *c = &s->client;
    msec_t deadline = c->deadline;
    ssize_t n;

    for (;;) {
        int parkable = session_may_park();

        /* a read now would find nothing, after a reply of ours or a
         * piece of a line: wait here, where the pool's pressure reaches
         * us.  (A fresh session's first bytes are there: read at once.)
         * A session past its deadline is timed out by conn_fill, not
         * parked again (it would come straight back) */
        if (parkable && (c->awaiting || buf_len(&c->in) > 0)
            && conn_pending(c) == 0 && clock_now() < deadline) {
            int rc = conn_wait_readable(c, session_others_wait, NULL);

            if (rc == CONN_PARK) {
                return 0;
            }
            if (rc <= 0) {
                if (rc == 0) {
                    errno = ETIMEDOUT;
                }
                session_log_client_gone(s, -1, errno);
                return -1;
            }
            c->awaiting = 0;        /* it has come: read at once */
        }
        if (parkable) {
            /* a TLS record in pieces, or a read that found nothing after
             * all, waits a slice at most before the wait above */
            msec_t slice = clock_now() + CONN_PARK_CHECK_MS;

            c->deadline = slice < deadline ? slice : deadline;
        }
        n = conn_fill(c);
        c->deadline = deadline;
        if (n > 0) {
            return 1;
        }
        if (n < 0 && errno == ETIMEDOUT && parkable && clock_now() < deadline) {
            c->awaiting = 1;        /* still nothing: wait before reading */
            continue;
        }
        session_log_client_gone(s, n, errno);
        return -1;
    }
}
