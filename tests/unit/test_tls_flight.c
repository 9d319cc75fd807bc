/*
 * test_tls_flight.c - the handshake's gathered push (src/tls_flight.c) on
 * a socketpair: direct writes go out at once; gathered ones stay until the
 * flush and then arrive whole and in order; a call that does not fit sends
 * what is gathered first; a full socket makes the flush wait until its
 * deadline and keeps the bytes; a closed peer is an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls_flight.h"
#include "tap.h"

/* Everything the peer can read now, without waiting. */
static size_t
drain(int fd, unsigned char *out, size_t cap)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t n = recv(fd, out + got, cap - got, MSG_DONTWAIT);

        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    return got;
}

static ssize_t
push2(struct tls_flight *f, const char *a, const char *b)
{
    giovec_t iov[2] = {
        { .iov_base = (void *)a, .iov_len = strlen(a) },
        { .iov_base = (void *)b, .iov_len = strlen(b) },
    };

    return tls_flight_push(f, iov, 2);
}

int
main(void)
{
    static unsigned char big[1 << 20], got[1 << 20];
    unsigned char buf[16], small[8];
    struct tls_flight f;
    int sv[2];
    size_t n, filled = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        printf("1..0 # SKIP socketpair: %s\n", strerror(errno));
        return 0;
    }
    tls_flight_init(&f, sv[0]);

    /* direct */
    is_int(push2(&f, "ab", "cde"), 5, "direct push takes both pieces");
    n = drain(sv[1], got, sizeof(got));
    ok(n == 5 && memcmp(got, "abcde", 5) == 0, "direct push is on the wire at once");
    is_int(tls_flight_flush(&f, clock_now() + 1000), 0, "flush with nothing gathered");

    /* gathered */
    tls_flight_gather(&f, buf, sizeof(buf));
    is_int(push2(&f, "one", "-"), 4, "gathered push takes the call");
    is_int(push2(&f, "two", "-"), 4, "second gathered push");
    is_int(drain(sv[1], got, sizeof(got)), 0, "nothing sent while gathering");
    is_int(tls_flight_flush(&f, clock_now() + 1000), 0, "flush");
    n = drain(sv[1], got, sizeof(got));
    ok(n == 8 && memcmp(got, "one-two-", 8) == 0, "the flight arrives whole, in order");
    is_int(f.len, 0, "the buffer is empty after the flush");

    /* a call larger than the room left: the gathered bytes go first */
    tls_flight_gather(&f, small, sizeof(small));
    is_int(push2(&f, "12345", ""), 5, "five bytes gathered");
    is_int(push2(&f, "67890", "X"), 6, "six more do not fit: sent through");
    n = drain(sv[1], got, sizeof(got));
    ok(n == 11 && memcmp(got, "1234567890X", 11) == 0,
       "gathered bytes before the call that did not fit");
    is_int(f.len, 0, "nothing left gathered");

    /* a full socket: the flush waits until its deadline, keeps the bytes */
    memset(big, 'z', sizeof(big));
    for (;;) {
        ssize_t w = send(sv[0], big, sizeof(big), MSG_DONTWAIT);

        if (w <= 0) {
            break;
        }
        filled += (size_t)w;
    }
    tls_flight_gather(&f, buf, sizeof(buf));
    is_int(push2(&f, "tail", ""), 4, "gathered while the socket is full");
    errno = 0;
    is_int(tls_flight_flush(&f, clock_now() + 100), -1, "flush gives up at its deadline");
    is_int(errno, ETIMEDOUT, "... with ETIMEDOUT");
    is_int(f.len, 4, "... and keeps what it could not send");
    n = drain(sv[1], got, sizeof(got));
    while (n < filled) {
        size_t more = drain(sv[1], got, sizeof(got));

        if (more == 0) {
            break;
        }
        n += more;
    }
    is_int(n, filled, "the peer reads the filler");
    is_int(tls_flight_flush(&f, clock_now() + 1000), 0, "flush once there is room");
    n = drain(sv[1], got, sizeof(got));
    ok(n == 4 && memcmp(got, "tail", 4) == 0, "the kept bytes arrive");

    /* back to direct: the lent buffer is let go */
    tls_flight_direct(&f);
    ok(f.buf == NULL && f.len == 0, "direct again");
    is_int(push2(&f, "d", ""), 1, "direct push after gathering");
    is_int(drain(sv[1], got, sizeof(got)), 1, "... is on the wire");

    /* a peer that has gone */
    tls_flight_gather(&f, buf, sizeof(buf));
    push2(&f, "lost", "");
    close(sv[1]);
    errno = 0;
    is_int(tls_flight_flush(&f, clock_now() + 1000), -1, "flush to a closed peer fails");
    is_int(errno, EPIPE, "... with EPIPE (no SIGPIPE)");
    close(sv[0]);
    return tap_done();
}
