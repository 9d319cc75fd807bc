/*
 * conn.h - one read/write API over a plain socket or a GnuTLS session.
 *
 * The fd is always non-blocking.  Worker code uses the blocking calls
 * (conn_fill, conn_write_all, ...), which wait with poll() until
 * c->deadline; the relay uses conn_read_nb / conn_write_nb, which never wait.
 * Whether the bytes go through TLS is hidden here: protocol code never asks.
 */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "buf.h"
#include "clock.h"

#define ADDR_TEXT_LEN 112   /* "[v6]:port" or "unix:/path" */

struct sockaddr;

struct conn {
    int fd;
    void *tls;             /* gnutls_session_t once TLS is on, else NULL */
    void *hs;              /* a server handshake under way, parked with its
                            * session (tls_accept_parkable), else NULL */
    struct buf in;         /* bytes read, not yet consumed */
    msec_t deadline;       /* absolute; blocking calls fail with ETIMEDOUT after */
    int eof;               /* peer closed its side */
    int awaiting;          /* we spoke last: nothing to read until the peer
                            * answers, so conn_fill polls before reading */
};

/* Take ownership of fd (opened non-blocking); in-buffer of bufsize bytes.
 * On failure (-1) c->fd is -1 and fd is still the caller's to close. */
int conn_init(struct conn *c, int fd, size_t bufsize);
/* Close (sending close_notify if TLS, best effort, never waiting) and
 * free; idempotent. */
void conn_close(struct conn *c);

/*
 * Blocking with deadline.  conn_fill reads what is available (at least one
 * byte) into c->in: returns bytes read, 0 at EOF, -1 on error (errno:
 * ETIMEDOUT, ENOBUFS when c->in is full, EIO for TLS errors, ...).
 */
ssize_t conn_fill(struct conn *c);
/* Write all bytes; on success the next conn_fill waits for the answer
 * before its first read (c->awaiting).  0 / -1 */
int conn_write_all(struct conn *c, const void *data, size_t len);

/*
 * Read one line ending in LF into *line_r (a slice of c->in, including the
 * CRLF); consumes it.  0 ok, -1 error/EOF (errno, 0 on clean EOF),
 * and ENOBUFS when a line is longer than the buffer.
 */
int conn_read_line(struct conn *c, unsigned char **line_r, size_t *len_r);

/* After ENOBUFS from conn_read_line: drop input up to and including the
 * next LF (reading more as needed until the deadline).  0 / -1. */
int conn_skip_line(struct conn *c);

/* Throw away every buffered input byte (STARTTLS). */
void conn_discard_input(struct conn *c);

/*
 * Non-blocking, for the relay: >0 bytes, 0 EOF, -1 with errno EAGAIN
 * (then *want_write_r says whether to wait for POLLOUT instead of POLLIN)
 * or another errno for a fatal error.
 */
ssize_t conn_read_nb(struct conn *c, void *dst, size_t len, int *want_write_r);
ssize_t conn_write_nb(struct conn *c, const void *src, size_t len, int *want_read_r);
/* Bytes decrypted inside the TLS library, invisible to poll(). */
size_t conn_pending(const struct conn *c);
/* The reason for a failed call with errno e, for a log line: "timed out",
 * "server is shutting down" (ECANCELED), the TLS error behind an EIO,
 * else strerror(e). */
const char *conn_strerror(const struct conn *c, int e);
/* Half-close the write side (TLS: close_notify, then shutdown(SHUT_WR)).
 * 0 / -1 with errno EAGAIN when the close_notify waits for room in the
 * socket: call again once it is writable, the FIN goes after the alert;
 * -1 with another errno if shutdown() failed. */
int conn_shutdown_write(struct conn *c);
/* After a non-blocking read returned 0: 1 when the peer closed entirely,
 * so that nothing can be written to it either (a TLS peer that sent a FIN
 * without close_notify); 0 for an EOF that may be a half-close (a plain
 * FIN, a close_notify). */
int conn_eof_is_full_close(const struct conn *c);

/*
 * The worker's waits end early on a fast stop: fd (the pool's) turns
 * readable then, and conn_poll() returns -1 with errno ECANCELED.  -1:
 * none.  Set before the workers start, cleared after they are joined.
 */
void conn_set_cancel_fd(int fd);
/* That fd (-1: none), for a wait that polls descriptors of its own (the
 * resolver's). */
int conn_cancel_fd(void);
/* poll() fd (-1: none, only the deadline and the cancel fd are waited
 * for) for events until deadline: 1 ready (fd's revents in *revents_r
 * when not NULL), 0 timed out, -1 with errno (ECANCELED: stopping). */
int conn_poll(int fd, short events, msec_t deadline, short *revents_r);
/*
 * The pool's pressure descriptor: readable while connections wait for a
 * worker.  -1: none.  Set before the workers start, cleared after they are
 * joined.
 */
void conn_set_pressure_fd(int fd);
/*
 * Wait until c's fd is readable or c->deadline passes, as conn_poll(); for
 * a session that may leave its worker (park set), ask park(arg) before the
 * wait, whenever the pressure descriptor turns readable and at least every
 * CONN_PARK_CHECK_MS, and return CONN_PARK as soon as it says yes while
 * nothing has come.  1 readable, 0 timed out, CONN_PARK, -1 with errno
 * (ECANCELED: stopping).
 */
#define CONN_PARK 2
#define CONN_PARK_CHECK_MS 100
int conn_wait_readable(const struct conn *c, int (*park)(void *), void *arg);
/* Whether a fast stop has begun.  It also shuts the clients' sockets down,
 * so a worker that was not inside conn_poll() then meets an end of file or
 * EPIPE of the stop's making: a failure is the stop's when this says so.
 * Keeps errno. */
int conn_stopping(void);

/* Connect to host:port (an address or a name) until deadline; a
 * non-blocking fd or -1, with a text reason in err. */
int net_connect(const char *host, unsigned short port, msec_t deadline,
                char *err, size_t errlen);
/* Connect to one address already known (no lookup) until deadline; as
 * net_connect. */
int net_connect_addr(const struct sockaddr *sa, socklen_t salen,
                     msec_t deadline, char *err, size_t errlen);
/* "1.2.3.4:143" / "[::1]:143" / "unix:/path" for a sockaddr. */
void net_addr_text(const struct sockaddr *sa, socklen_t len, char *out,
                   size_t outlen, int with_port);

#endif
