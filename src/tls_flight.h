/*
 * tls_flight.h - GnuTLS's transport push for server sessions: during the
 * handshake the records of a flight are gathered and sent together.
 *
 * GnuTLS writes each record of a handshake flight with a push call of its
 * own (TLS 1.3: ServerHello, then the encrypted extensions, certificate,
 * verify and finished records).  Sent one by one they leave as three or
 * four segments, each a system call here and a possible wake-up of the
 * client for a partial flight.  While gathering, tls_flight_push() copies
 * the records into a buffer the handshake loop lends it; the loop calls
 * tls_flight_flush() before it waits for the client and once the handshake
 * is over.  Afterwards the push writes each call straight to the socket.
 */
#ifndef POSTERN_TLS_FLIGHT_H
#define POSTERN_TLS_FLIGHT_H

#include <stddef.h>
#include <sys/types.h>
#include <gnutls/gnutls.h>

#include "clock.h"

struct tls_flight {
    int fd;
    unsigned char *buf;          /* lent by the handshake; NULL: direct */
    size_t len, cap;
};

/* Direct writes to fd until tls_flight_gather(). */
void tls_flight_init(struct tls_flight *f, int fd);

/* Gather pushes into buf (cap bytes, owned by the caller, who must call
 * tls_flight_flush() and tls_flight_direct() before it goes away). */
void tls_flight_gather(struct tls_flight *f, unsigned char *buf, size_t cap);

/* Send what is gathered, waiting with poll() until deadline: 0, or -1 with
 * errno (ETIMEDOUT, EPIPE, ...).  Nothing gathered: 0, no system call. */
int tls_flight_flush(struct tls_flight *f, msec_t deadline);

/* Stop gathering (what is still gathered is dropped: flush first). */
void tls_flight_direct(struct tls_flight *f);

/*
 * The gnutls_vec_push_func; the transport's send pointer is the flight.
 * Gathering: takes the whole call, or, when the buffer has no room left,
 * sends what it holds and then the call itself without waiting (so -1 with
 * EAGAIN is possible, and GnuTLS repeats the call).  Direct: one sendmsg().
 */
ssize_t tls_flight_push(gnutls_transport_ptr_t ptr, const giovec_t *iov,
                        int iovcnt);

#endif
