/*
 * tls_flight.c - gathering a TLS handshake flight into one send (see
 * tls_flight.h for why).
 *
 * Runs in the thread that owns the session: a worker during the handshake,
 * later a worker or a relay thread writing records directly.  No locks.
 * The bytes are TLS records, already encrypted where the protocol says so;
 * nothing here looks inside them.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "conn.h"
#include "tls_flight.h"

/* Back to direct writes; the lent buffer is no longer touched. */
void
tls_flight_direct(struct tls_flight *f)
{
    f->buf = NULL;
    f->len = f->cap = 0;
}

/* Direct writes to fd. */
void
tls_flight_init(struct tls_flight *f, int fd)
{
    f->fd = fd;
    tls_flight_direct(f);
}

/* Gather into the caller's buffer. */
void
tls_flight_gather(struct tls_flight *f, unsigned char *buf, size_t cap)
{
    f->buf = buf;
    f->cap = cap;
    f->len = 0;
}

/* Send gathered bytes without waiting: 0 when all are out, else -1 with
 * errno (EAGAIN: the rest stays gathered, in order). */
static int
flight_send(struct tls_flight *f)
{
    while (f->len > 0) {
        ssize_t n = send(f->fd, f->buf, f->len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        memmove(f->buf, f->buf + n, f->len - (size_t)n);
        f->len -= (size_t)n;
    }
    return 0;
}

/* Send everything gathered, waiting for room until the deadline. */
int
tls_flight_flush(struct tls_flight *f, msec_t deadline)
{
    while (flight_send(f) != 0) {
        int rc;

        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return -1;
        }
        /* a fast stop ends the wait too (ECANCELED) */
        rc = conn_poll(f->fd, POLLOUT, deadline, NULL);
        if (rc == 0) {
            errno = ETIMEDOUT;
        }
        if (rc <= 0) {
            return -1;
        }
    }
    return 0;
}

/* GnuTLS's push: gather, or write through. */
ssize_t
tls_flight_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
    struct tls_flight *f = ptr;
    struct msghdr msg;
    size_t total = 0;
    ssize_t n;

    for (int i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
    }
    if (f->buf != NULL && total <= f->cap - f->len) {
        for (int i = 0; i < iovcnt; i++) {
            memcpy(f->buf + f->len, iov[i].iov_base, iov[i].iov_len);
            f->len += iov[i].iov_len;
        }
        return (ssize_t)total;
    }
    /* no room: what is gathered goes first, so the order stays */
    if (f->buf != NULL && flight_send(f) != 0) {
        return -1;
    }
    memset(&msg, 0, sizeof(msg));
    /* giovec_t is laid out as struct iovec (GnuTLS's own writev relies on
     * it too) */
    msg.msg_iov = (struct iovec *)(void *)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    do {
        n = sendmsg(f->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}
