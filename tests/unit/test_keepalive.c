/*
 * test_keepalive.c - the idle-connection stack (src/keepalive.c) on its
 * own, with socketpairs standing in for auth service connections: last
 * given is first taken, a full stack closes the extra socket, a socket the
 * peer closed or wrote to while idle is closed instead of handed out, and
 * freeing the stack closes what it holds, and a socket idle longer than
 * KEEPALIVE_IDLE_MS is closed.  Whether a socket was closed is read at its
 * peer (EOF or reset), never from a descriptor number that may be reused.
 *
 * The test's own clock_now() stands in for src/clock.c's (the archive's
 * member is not linked when the symbol is already defined), so the idle
 * limit is crossed without waiting a minute.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "keepalive.h"
#include "tap.h"

static msec_t fake_now = 1000000;

msec_t
clock_now(void)
{
    return fake_now;
}

struct pair {
    int ours, peer;     /* ours goes into the stack, the test keeps peer */
};

static int
pair_open(struct pair *p)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return -1;
    }
    p->ours = sv[0];
    p->peer = sv[1];
    return 0;
}

/* 1 when the stack closed our end: the peer reads EOF at once (or a
 * reset, when our end was closed with bytes it had not read). */
static int
closed_at_peer(const struct pair *p)
{
    char c;
    ssize_t n = recv(p->peer, &c, 1, MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* 1 when our end is still open: the peer reads nothing, no EOF. */
static int
open_at_peer(const struct pair *p)
{
    char c;

    return recv(p->peer, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

int
main(void)
{
    struct keepalive *k;
    struct pair a, b, c, d;

    ok(keepalive_new(0) == NULL, "a stack of 0 is refused");
    k = keepalive_new(2);
    if (!ok(k != NULL, "a stack of 2")
        || pair_open(&a) != 0 || pair_open(&b) != 0 || pair_open(&c) != 0
        || pair_open(&d) != 0) {
        return tap_done();
    }
    is_int(keepalive_take(k), -1, "empty: nothing to take");

    /* last in, first out: the warmest connection is reused */
    keepalive_give(k, a.ours);
    keepalive_give(k, b.ours);
    is_int(keepalive_take(k), b.ours, "the last given is taken first");
    is_int(keepalive_take(k), a.ours, "then the one before");
    is_int(keepalive_take(k), -1, "then none");

    /* full: the extra socket is closed, the kept ones stay open */
    keepalive_give(k, a.ours);
    keepalive_give(k, b.ours);
    keepalive_give(k, c.ours);
    ok(closed_at_peer(&c), "full stack: the extra socket is closed");
    ok(open_at_peer(&a) && open_at_peer(&b), "full stack: the kept two stay open");

    /* b's peer goes away while b is idle: b is closed, a handed out */
    close(b.peer);
    b.peer = -1;
    is_int(keepalive_take(k), a.ours, "a socket closed by its peer is skipped");
    is_int(keepalive_take(k), -1, "and not kept");

    /* bytes nobody asked for: the connection's framing is lost, close it */
    keepalive_give(k, a.ours);
    keepalive_give(k, d.ours);
    if (write(d.peer, "x", 1) != 1) {
        return tap_done();
    }
    is_int(keepalive_take(k), a.ours, "a socket with unasked-for bytes is skipped");
    ok(closed_at_peer(&d), "and closed");

    /* freeing the stack closes what it holds */
    keepalive_give(k, a.ours);
    keepalive_free(k);
    ok(closed_at_peer(&a), "free closes the idle sockets");
    keepalive_free(NULL);
    ok(1, "free(NULL) is a no-op");

    close(a.peer);
    close(c.peer);
    close(d.peer);

    /* idle past the limit: closed at take time, not handed out */
    k = keepalive_new(2);
    if (!ok(k != NULL, "a new stack of 2")
        || pair_open(&a) != 0 || pair_open(&b) != 0 || pair_open(&c) != 0) {
        return tap_done();
    }
    keepalive_give(k, a.ours);
    fake_now += KEEPALIVE_IDLE_MS;
    is_int(keepalive_take(k), a.ours, "idle exactly the limit: still taken");
    keepalive_give(k, a.ours);
    fake_now += KEEPALIVE_IDLE_MS + 1;
    is_int(keepalive_take(k), -1, "idle past the limit: not taken");
    ok(closed_at_peer(&a), "and closed");

    /* a burst's surplus at the bottom of the stack goes once it is past
     * the limit, when another socket is given back */
    keepalive_give(k, b.ours);
    fake_now += KEEPALIVE_IDLE_MS + 1;
    keepalive_give(k, c.ours);
    ok(closed_at_peer(&b), "the stale bottom socket is closed on give");
    ok(open_at_peer(&c), "the fresh one stays");
    is_int(keepalive_take(k), c.ours, "and is taken");
    is_int(keepalive_take(k), -1, "alone");
    close(c.ours);
    keepalive_free(k);

    close(a.peer);
    close(b.peer);
    close(c.peer);
    return tap_done();
}
