/*
 * conn.c - reads and writes on a client or backend connection, plain or
 * TLS, blocking with a deadline (workers) or non-blocking (relay).
 *
 * Handles untrusted input only as bytes: line splitting is bounded by the
 * buffer size.  No locks: a conn has one owner at a time (a worker, then a
 * relay thread).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "str.h"
#include "tls.h"

/* Take ownership of fd and give it an input buffer.  The fd is already
 * non-blocking (accept4 and socket with SOCK_NONBLOCK): no fcntl round
 * trips per connection. */
int
conn_init(struct conn *c, int fd, size_t bufsize)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->deadline = DEADLINE_NONE;
    if (buf_init(&c->in, bufsize) != 0) {
        return -1;
    }
    c->fd = fd;
    return 0;
}

/* Close: close_notify for TLS (best effort, never waits), then the fd. */
void
conn_close(struct conn *c)
{
    if (c->tls != NULL) {
        tls_bye(c);
        tls_free(c);
    }
    tls_handshake_free(c);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    buf_free(&c->in);
}

/* The pool's stop descriptor (see conn.h); read by every worker. */
static atomic_int cancel_fd = -1;

void
conn_set_cancel_fd(int fd)
{
    atomic_store(&cancel_fd, fd);
}

int
conn_cancel_fd(void)
{
    return atomic_load(&cancel_fd);
}

/* See conn.h; errno is kept. */
int
conn_stopping(void)
{
    struct pollfd pfd = { .fd = atomic_load(&cancel_fd), .events = POLLIN };
    int saved = errno, rc;

    rc = pfd.fd >= 0 && poll(&pfd, 1, 0) > 0;
    errno = saved;
    return rc;
}

/* The pool's pressure descriptor (see conn.h). */
static atomic_int pressure_fd = -1;

void
conn_set_pressure_fd(int fd)
{
    atomic_store(&pressure_fd, fd);
}

#define CONN_WOKEN 3            /* not CONN_PARK, nor conn_poll()'s */

/* conn_poll(), and also wake (CONN_WOKEN) when wake_fd turns readable
 * while fd is not ready. */
static int
conn_poll_wake(int fd, short events, msec_t deadline, short *revents_r,
               int wake_fd)
{
    struct pollfd pfd[3] = {
        { .fd = fd, .events = events },
        { .fd = atomic_load(&cancel_fd), .events = POLLIN },
        { .fd = wake_fd, .events = POLLIN },
    };

    for (;;) {
        int left = clock_left(deadline), rc;

        if (left == 0) {
            return 0;
        }
        /* -1 fds are left out by poll() */
        rc = poll(pfd, wake_fd >= 0 ? 3 : 2, left);
        if (rc > 0 && pfd[1].revents != 0) {
            errno = ECANCELED;
            return -1;
        }
        if (rc > 0 && pfd[0].revents != 0) {
            if (revents_r != NULL) {
                *revents_r = pfd[0].revents;
            }
            return 1;
        }
        if (rc > 0) {
            return CONN_WOKEN;
        }
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
        /* timed out or interrupted: clock_left decides */
    }
}

/* One wait of a worker (see conn.h). */
int
conn_poll(int fd, short events, msec_t deadline, short *revents_r)
{
    return conn_poll_wake(fd, events, deadline, revents_r, -1);
}

/* See conn.h. */
int
conn_wait_readable(const struct conn *c, int (*park)(void *), void *arg)
{
    int woken = 0;

    if (park == NULL) {
        return conn_poll(c->fd, POLLIN, c->deadline, NULL);
    }
    for (;;) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        msec_t until = clock_now() + CONN_PARK_CHECK_MS;
        int rc;

        /* past the deadline: time out here, do not park again */
        if (clock_now() < c->deadline && park(arg) && poll(&p, 1, 0) == 0) {
            return CONN_PARK;
        }
        /* the pool's pressure ends the wait at once; after a wake that
         * park() turned down (the queue was served meanwhile, or parking
         * is closed for a stop) the pipe, which may still be readable, is
         * left out for one slice: polled, it could make a busy loop */
        rc = conn_poll_wake(c->fd, POLLIN,
                            until < c->deadline ? until : c->deadline, NULL,
                            woken ? -1 : atomic_load(&pressure_fd));
        woken = rc == CONN_WOKEN;
        if (woken) {
            continue;
        }
        if (rc != 0 || clock_now() >= c->deadline) {
            return rc;
        }
    }
}

/* Wait until fd is ready in the given direction or the deadline passes. */
static int
conn_wait(struct conn *c, int want_write)
{
    int rc = conn_poll(c->fd, want_write ? POLLOUT : POLLIN, c->deadline,
                       NULL);

    if (rc == 0) {
        errno = ETIMEDOUT;
    }
    return rc > 0 ? 0 : -1;
}

/* One non-blocking read, plain or TLS. */
ssize_t
conn_read_nb(struct conn *c, void *dst, size_t len, int *want_write_r)
{
    ssize_t n;

    *want_write_r = 0;
    if (c->tls != NULL) {
        return tls_recv(c, dst, len, want_write_r);
    }
    do {
        n = read(c->fd, dst, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* One non-blocking write, plain or TLS. */
ssize_t
conn_write_nb(struct conn *c, const void *src, size_t len, int *want_read_r)
{
    ssize_t n;
    int dir_write = 1;

    *want_read_r = 0;
    if (c->tls != NULL) {
        n = tls_send(c, src, len, &dir_write);
        if (n < 0 && errno == EAGAIN) {
            *want_read_r = !dir_write;
        }
        return n;
    }
    do {
        n = send(c->fd, src, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* Bytes GnuTLS has decrypted that poll() cannot see. */
size_t
conn_pending(const struct conn *c)
{
    return c->tls != NULL ? tls_pending(c) : 0;
}

/* The reason for a failed call (see conn.h). */
const char *
conn_strerror(const struct conn *c, int e)
{
    if (e == ETIMEDOUT) {
        return "timed out";
    }
    if (e == ECANCELED) {
        return "server is shutting down";
    }
    if (e == EIO && c->tls != NULL && tls_last_error(c)[0] != '\0') {
        return tls_last_error(c);
    }
    return strerror(e);
}

/* Pass a half-close on (see conn.h). */
int
conn_shutdown_write(struct conn *c)
{
    /* the FIN must not overtake a close_notify that waits for room: the
     * peer would see a truncation.  (One that cannot be sent at all does
     * not hold the FIN back.) */
    if (c->tls != NULL && tls_bye(c) != 0 && errno == EAGAIN) {
        return -1;
    }
    return shutdown(c->fd, SHUT_WR);
}

/* Whether an EOF means the peer takes nothing more either (see conn.h). */
int
conn_eof_is_full_close(const struct conn *c)
{
    return c->tls != NULL && tls_eof_truncated(c);
}

/* Read what is there (waiting until the deadline) into c->in. */
ssize_t
conn_fill(struct conn *c)
{
    struct buf *b = &c->in;
    ssize_t n;
    int want_write;

    if (buf_room(b) == 0) {
        buf_compact(b);
        if (buf_room(b) == 0) {
            errno = ENOBUFS;
            return -1;
        }
    }
    /* After a request or a greeting of ours, a read now would almost
     * always fail with EAGAIN: wait first, one system call fewer per
     * exchange.  Bytes decrypted inside GnuTLS need no wait. */
    if (c->awaiting) {
        c->awaiting = 0;
        if (conn_pending(c) == 0 && conn_wait(c, 0) != 0) {
            return -1;
        }
    }
    for (;;) {
        n = conn_read_nb(c, b->data + b->last, buf_room(b), &want_write);
        if (n > 0) {
            b->last += (size_t)n;
            return n;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (conn_stopping()) {
                errno = ECANCELED;
                return -1;
            }
            if (n == 0) {
                c->eof = 1;
                return 0;
            }
            return -1;
        }
        if (conn_wait(c, want_write) != 0) {
            return -1;
        }
    }
}

/* Write everything (waiting until the deadline). */
int
conn_write_all(struct conn *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    int want_read;

    while (len > 0) {
        ssize_t n = conn_write_nb(c, p, len, &want_read);

        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            if (conn_stopping()) {
                errno = ECANCELED;
            }
            return -1;
        }
        /* GnuTLS wants the same pointer and length again: p/len unchanged */
        if (conn_wait(c, !want_read) != 0) {
            return -1;
        }
    }
    c->awaiting = 1;
    return 0;
}

/* Next LF-terminated line from c->in, reading as needed. */
int
conn_read_line(struct conn *c, unsigned char **line_r, size_t *len_r)
{
    size_t scanned = 0;

    for (;;) {
        int got = buf_take_line(&c->in, &scanned, line_r, len_r);
        ssize_t n;

        if (got != 0) {
            return got > 0 ? 0 : -1;
        }
        n = conn_fill(c);
        if (n == 0) {
            errno = 0;
            return -1;
        }
        if (n < 0) {
            return -1;
        }
    }
}

/* Drop input through the next LF (the rest of an over-long line). */
int
conn_skip_line(struct conn *c)
{
    struct buf *b = &c->in;

    for (;;) {
        unsigned char *lf = memchr(buf_head(b), '\n', buf_len(b));
        ssize_t n;

        if (lf != NULL) {
            buf_consume(b, (size_t)(lf - buf_head(b)) + 1);
            return 0;
        }
        buf_reset(b);
        n = conn_fill(c);
        if (n <= 0) {
            if (n == 0) {
                errno = 0;
            }
            return -1;
        }
    }
}

/* Forget any buffered plaintext (STARTTLS: nothing sent before the
 * handshake may be read as a command after it). */
void
conn_discard_input(struct conn *c)
{
    buf_reset(&c->in);
}

/* Text form of an address, for logs and headers. */
void
net_addr_text(const struct sockaddr *sa, socklen_t len, char *out,
              size_t outlen, int with_port)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        if (with_port) {
            snprintf(out, outlen, "%s:%u", host, ntohs(in->sin_port));
        } else {
            snprintf(out, outlen, "%s", host);
        }
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        if (with_port) {
            snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
        } else {
            snprintf(out, outlen, "%s", host);
        }
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

        if (len > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0]) {
            snprintf(out, outlen, "unix:%s", un->sun_path);
        } else {
            snprintf(out, outlen, "unix:");
        }
    } else {
        snprintf(out, outlen, "unknown");
    }
}

/* Non-blocking connect to one address, waiting until the deadline. */
static int
connect_one(const struct sockaddr *sa, socklen_t salen, msec_t deadline,
            char *err, size_t errlen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, soerr = 0, rc;
    socklen_t sl = sizeof(soerr);
    short revents = 0;
    char text[ADDR_TEXT_LEN];

    net_addr_text(sa, salen, text, sizeof(text), 1);
    if (fd < 0) {
        snprintf(err, errlen, "socket() failed for %s: %s", text, strerror(errno));
        return -1;
    }
    if (sa->sa_family != AF_UNIX) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (connect(fd, sa, salen) == 0) {
        return fd;
    }
    /* errors as NGINX words them, "(111: Connection refused)", so that a
     * log filter written for NGINX's lines matches */
    if (errno != EINPROGRESS) {
        snprintf(err, errlen, "connect() to %s failed (%d: %s)", text, errno,
                 strerror(errno));
        goto fail;
    }
    rc = conn_poll(fd, POLLOUT, deadline, &revents);
    if (rc == 0) {
        snprintf(err, errlen, "connect() to %s " LOG_TIMED_OUT, text);
        goto fail;
    }
    if (rc < 0) {
        snprintf(err, errlen, "connect() to %s: %s", text,
                 errno == ECANCELED ? "server is shutting down"
                                    : strerror(errno));
        goto fail;
    }
    /* writable without an error or hang-up: connected, nothing to ask */
    if ((revents & (POLLERR | POLLHUP)) == 0) {
        return fd;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
        int e = soerr ? soerr : errno;

        snprintf(err, errlen, "connect() to %s failed (%d: %s)", text, e,
                 strerror(e));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* Connect to one address (see conn.h). */
int
net_connect_addr(const struct sockaddr *sa, socklen_t salen, msec_t deadline,
                 char *err, size_t errlen)
{
    return connect_one(sa, salen, deadline, err, errlen);
}

/* Connect to host:port, trying each address in turn. */
int
net_connect(const char *host, unsigned short port, msec_t deadline,
            char *err, size_t errlen)
{
    struct addrinfo hints = { 0 }, *res = NULL, *ai;
    char portstr[8];
    int rc, fd = -1;

    if (strncmp(host, "unix:", 5) == 0) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };

        if (str_lcpy(un.sun_path, host + 5, sizeof(un.sun_path)) >= sizeof(un.sun_path)) {
            snprintf(err, errlen, "unix socket path too long: %s", host);
            return -1;
        }
        return connect_one((struct sockaddr *)&un, sizeof(un), deadline, err, errlen);
    }
    /* an address needs no lookup: getaddrinfo() would still ask netlink
     * which address families the host has, on every connection */
    {
        struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons(port) };
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

        if (inet_pton(AF_INET, host, &in4.sin_addr) == 1) {
            return connect_one((struct sockaddr *)&in4, sizeof(in4), deadline,
                               err, errlen);
        }
        if (inet_pton(AF_INET6, host, &in6.sin6_addr) == 1) {
            return connect_one((struct sockaddr *)&in6, sizeof(in6), deadline,
                               err, errlen);
        }
    }
    snprintf(portstr, sizeof(portstr), "%u", port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY) {
        /* loopback-only hosts have no "configured" address family (a
         * temporary failure is not asked twice: each may take the system
         * resolver's whole timeout) */
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(host, portstr, &hints, &res);
    }
    if (rc != 0) {
        snprintf(err, errlen, "host \"%s\" not found: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = connect_one(ai->ai_addr, ai->ai_addrlen, deadline, err, errlen);
    }
    freeaddrinfo(res);
    return fd;
}
