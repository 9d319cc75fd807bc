/*
 * acceptor.c - the acceptor thread: poll() over every listening socket,
 * accept, enforce worker_connections, and queue the connection for the
 * worker pool.  Where nothing has to come before the greeting (no TLS
 * handshake, no PROXY header: proto_early_greeting), it sends the greeting
 * itself, with a POP3 client's own APOP timestamp (which the item carries
 * to the worker), once smtp_greeting_delay has passed for an SMTP one.  It
 * never blocks on a client: the greeting and, when the queue is full, the
 * protocol's busy line are sent with MSG_DONTWAIT (a fresh socket's buffer
 * takes either whole).
 *
 * A client that must speak next (it has the whole greeting, or it opens
 * with a TLS hello or a PROXY header) is held here, in the same poll(),
 * until its first bytes come, and only then queued: a worker would only
 * sleep on its socket until then, and clients that connect and say
 * nothing do not take workers from those that talk.  An SMTP client is
 * held through smtp_greeting_delay the same way; if it talks first, it is
 * queued ungreeted, and the worker turns it away as it always did.  Its
 * connect line is written as it is accepted (session_log_accepted), as
 * NGINX writes it.  A held client whose `timeout` passes is queued all
 * the same, marked so that a worker times it out with the line it always
 * wrote (pool_item.expired).
 *
 * It also holds the sessions that left their workers in the middle of
 * their dialogue (acceptor_park: a worker's client was silent while others
 * waited for a worker), the same way: queued again when the client speaks
 * or its `timeout` passes, then resumed by a worker; and those sitting out
 * the Auth-Wait of a refused login, queued again when it has passed.
 *
 * Locks: acc.lock guards the current listener set against a swap by the
 * main thread (reload); acc.park_lock the sessions workers park, until the
 * thread takes them; the thread is woken through a pipe.  The held clients
 * are the acceptor thread's alone (acceptor_stop() queues what is left
 * after joining it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "process.h"
#include "proto.h"
#include "session.h"

static struct {
    pthread_mutex_t lock;
    pthread_t thread;
    int running;
    int wake[2];
    struct listener_set *set;
    atomic_int stop;
    uint64_t next_id;
    struct pool_item *held;     /* clients that must speak next */
    size_t nheld, heldcap;
    pthread_mutex_t park_lock;
    struct pool_item *parked;   /* parked by workers, not yet held */
    size_t nparked, parkedcap;
    atomic_int parks_open;      /* acceptor_park() takes sessions */
} acc = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = { -1, -1 },
          .park_lock = PTHREAD_MUTEX_INITIALIZER };

/* Wake the acceptor out of poll(). */
static void
acceptor_wake(void)
{
    char c = 1;

    if (write(acc.wake[1], &c, 1) < 0) {
        /* the pipe is full: the acceptor is awake already */
    }
}

/* Tell a client we cannot serve it now, without ever waiting on it, and
 * close.  The protocol's temporary error beats a silent close: clients
 * retry later instead of reporting a broken server. */
static void
refuse_busy(int fd, const struct server_conf *sc, const struct listen_conf *lc)
{
    const char *busy = proto_ops_get(sc->protocol)->busy_line;

    if (busy != NULL && !lc->ssl && !sc->ssl) {
        send(fd, busy, strlen(busy), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    close(fd);
}

/* Send the greeting a worker would send first thing (see greet_early).
 * What was sent goes with the item; the worker sends the rest, if any.
 * 1 when the client has it all and must speak next. */
static int
greet_now(struct pool_item *it)
{
    char buf[PROTO_GREETING_MAX];
    size_t len;
    msec_t delay;
    const char *text = proto_early_greeting(it->sc, it->lc, &it->stamp, buf,
                                            sizeof(buf), &len, &delay);
    ssize_t n;

    it->greet_at = 0;
    if (text == NULL) {
        return 0;
    }
    n = send(it->fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
        it->greeted = (size_t)n;
    }
    return n >= 0 && (size_t)n == len;
}

/*
 * Greet a new client now, or say when (smtp_greeting_delay), where no TLS
 * handshake or PROXY header has to come first: the client's answer is
 * then on its way while the connection waits for a worker.  A client the
 * access rules refuse is left to the worker, which logs the refusal and
 * closes without a greeting, as before.  1 when the client is to be held:
 * it has the whole greeting and must speak next, it waits for its
 * greeting here, or the listener's protocol opens with the client's bytes
 * (TLS, PROXY header).
 */
static int
greet_early(struct pool_item *it, const struct listener *l)
{
    char buf[PROTO_GREETING_MAX];
    size_t len;
    msec_t delay = 0;
    int allow = 1;

    if (l->lc->proxy_protocol) {
        return 1;               /* access applies to the header's address */
    }
    if (addr_rules_match(&l->sc->access, (const struct sockaddr *)&it->peer,
                         &allow) && !allow) {
        return 0;
    }
    if (l->sc->ssl || l->lc->ssl) {
        return 1;
    }
    if (proto_early_greeting(l->sc, l->lc, &it->stamp, buf, sizeof(buf),
                             &len, &delay) == NULL) {
        return 0;
    }
    if (delay > 0) {
        /* + 1: the clock's milliseconds are cut, so that the accept may
         * have been up to one later than it says */
        it->greet_at = it->accepted + delay + 1;
        return 1;
    }
    return greet_now(it);
}

/* Queue a connection for the workers, or answer busy and close it (a
 * parked session is in its dialogue, maybe under TLS: it is closed). */
static void
queue(struct pool_item *it)
{
    if (pool_push(it) != 0) {
        log_write(it->sc->error_log, LOG_LV_WARN, it->id,
                  "all workers busy and the queue is full, client closed");
        if (it->parked != NULL) {
            session_discard(it->parked);
        } else {
            refuse_busy(it->fd, it->sc, it->lc);
            conf_unref(it->conf);
        }
        atomic_fetch_sub(&conn_active, 1);
    }
}

/* Hold a client until it speaks (queued at once if there is no room). */
static void
hold(struct pool_item *it)
{
    if (acc.nheld == acc.heldcap) {
        size_t cap = acc.heldcap ? acc.heldcap * 2 : 64;
        struct pool_item *v = realloc(acc.held, cap * sizeof(*v));

        if (v == NULL) {
            queue(it);
            return;
        }
        acc.held = v;
        acc.heldcap = cap;
    }
    acc.held[acc.nheld++] = *it;
}

/* Hold the sessions workers parked since the last turn. */
static void
take_parked(void)
{
    struct pool_item *v;
    size_t n;

    pthread_mutex_lock(&acc.park_lock);
    v = acc.parked;
    n = acc.nparked;
    acc.parked = NULL;
    acc.nparked = acc.parkedcap = 0;
    pthread_mutex_unlock(&acc.park_lock);
    for (size_t i = 0; i < n; i++) {
        hold(&v[i]);
    }
    free(v);
}

/* See listener.h. */
int
acceptor_park(const struct pool_item *it)
{
    int rc = -1;

    pthread_mutex_lock(&acc.park_lock);
    if (atomic_load(&acc.parks_open)) {
        if (acc.nparked == acc.parkedcap) {
            size_t cap = acc.parkedcap ? acc.parkedcap * 2 : 16;
            struct pool_item *v = realloc(acc.parked, cap * sizeof(*v));

            if (v != NULL) {
                acc.parked = v;
                acc.parkedcap = cap;
            }
        }
        if (acc.nparked < acc.parkedcap) {
            acc.parked[acc.nparked++] = *it;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&acc.park_lock);
    if (rc == 0) {
        acceptor_wake();
    }
    return rc;
}

/* See listener.h. */
int
acceptor_parks_open(void)
{
    return atomic_load(&acc.parks_open);
}

/* poll()'s timeout for the held client to be greeted or whose `timeout`
 * passes first. */
static int
held_timeout(msec_t now)
{
    msec_t first = DEADLINE_NONE;

    for (size_t i = 0; i < acc.nheld; i++) {
        const struct pool_item *it = &acc.held[i];
        msec_t d = it->greet_at != 0 ? it->greet_at
                   : it->wake_at != 0 ? it->wake_at : pool_item_deadline(it);

        if (d < first) {
            first = d;
        }
    }
    if (first == DEADLINE_NONE) {
        return -1;
    }
    return first <= now ? 0 : first - now > INT_MAX ? INT_MAX : (int)(first - now);
}

/* Accept every pending connection on one listener's socket. */
static void
accept_all(const struct listener_set *set, const struct listener *sock)
{
    for (int burst = 0; burst < 64; burst++) {
        const struct listener *l = sock;
        struct pool_item it;
        int fd;

        memset(&it, 0, sizeof(it));
        it.peerlen = sizeof(it.peer);
        fd = accept4(sock->fd, (struct sockaddr *)&it.peer, &it.peerlen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                log_write(l->sc->error_log, LOG_LV_CRIT,
                          0, "accept() failed (%s): raise worker_rlimit_nofile",
                          strerror(errno));
                /* let sessions end before trying again */
                struct timespec ts = { 0, 100 * 1000000L };
                nanosleep(&ts, NULL);
            }
            return;
        }
        /* a wildcard's socket may accept for another server's address */
        l = listener_for(set, sock, fd);
        it.fd = fd;
        it.id = ++acc.next_id;
        it.accepted = clock_now();
        it.sc = l->sc;
        it.lc = l->lc;
        if (atomic_load(&conn_active) >= set->conf->worker_connections) {
            log_write(l->sc->error_log, LOG_LV_ALERT, it.id,
                      "%d worker_connections are not enough",
                      set->conf->worker_connections);
            refuse_busy(fd, l->sc, l->lc);
            continue;
        }
        atomic_fetch_add(&conn_active, 1);
        it.conf = conf_ref(set->conf);
        if (greet_early(&it, l)) {
            session_log_accepted(&it);
            hold(&it);
        } else {
            queue(&it);
        }
    }
}

/* Queue the held clients that spoke, closed or ran out of time, in the
 * order they came (the queue is first come, first served), and greet
 * those whose smtp_greeting_delay has passed; pfd holds their poll()
 * results in the same order.  A client that spoke before its greeting is
 * queued ungreeted: the worker sees its bytes and turns it away. */
static void
held_check(const struct pollfd *pfd, msec_t now)
{
    size_t kept = 0;

    for (size_t i = 0; i < acc.nheld; i++) {
        struct pool_item it = acc.held[i];

        if (it.wake_at != 0) {
            /* its Auth-Wait: never its client's bytes (not polled) */
            if (now >= it.wake_at) {
                it.wake_at = 0;
                queue(&it);
            } else {
                acc.held[kept++] = it;
            }
        } else if (pfd[i].revents != 0) {
            queue(&it);
        } else if (it.greet_at != 0 && now >= it.greet_at) {
            if (greet_now(&it)) {
                acc.held[kept++] = it;
            } else {
                queue(&it);     /* the worker sends the rest, or finds the
                                 * connection gone */
            }
        } else if (now >= pool_item_deadline(&it)) {
            it.expired = 1;
            queue(&it);
        } else {
            acc.held[kept++] = it;
        }
    }
    acc.nheld = kept;
}

/* The acceptor thread: poll() over the wake-up pipe, the listeners and
 * the held clients, in that order. */
static void *
acceptor_main(void *arg)
{
    struct pollfd *pfd = NULL;
    size_t cap = 0;

    (void)arg;
    process_name_self("acceptor", -1);
    while (!atomic_load(&acc.stop)) {
        struct listener_set *set;
        size_t n, nheld;
        struct pollfd *hp;
        int rc;

        take_parked();
        nheld = acc.nheld;
        pthread_mutex_lock(&acc.lock);
        set = acc.set;
        n = set != NULL ? set->n : 0;
        if (n + 1 + nheld > cap) {
            size_t want = (n + 1 + nheld) * 2;
            struct pollfd *p = realloc(pfd, want * sizeof(*pfd));
            if (p == NULL) {
                pthread_mutex_unlock(&acc.lock);
                log_g(LOG_LV_ALERT, "out of memory in the acceptor");
                break;
            }
            pfd = p;
            cap = want;
        }
        pfd[0].fd = acc.wake[0];
        pfd[0].events = POLLIN;
        /* an address served by a wildcard's socket has fd -1: poll()
         * skips it, and the indexes still match set->v */
        for (size_t i = 0; i < n; i++) {
            pfd[i + 1].fd = set->v[i].fd;
            pfd[i + 1].events = POLLIN;
            pfd[i + 1].revents = 0;
        }
        pthread_mutex_unlock(&acc.lock);
        hp = pfd + n + 1;
        for (size_t i = 0; i < nheld; i++) {
            /* a session sitting out its Auth-Wait waits for the time only */
            hp[i].fd = acc.held[i].wake_at != 0 ? -1 : acc.held[i].fd;
            hp[i].events = POLLIN;
            hp[i].revents = 0;
        }

        rc = poll(pfd, n + 1 + nheld, held_timeout(clock_now()));
        if (rc < 0) {
            continue;
        }
        /* before accepting, so that every held client is in hp */
        held_check(hp, clock_now());
        if (pfd[0].revents & POLLIN) {
            char drain[64];
            while (read(acc.wake[0], drain, sizeof(drain)) > 0) {
            }
            continue;   /* the set may have changed: rebuild */
        }
        pthread_mutex_lock(&acc.lock);
        if (acc.set == set) {
            for (size_t i = 0; i < n; i++) {
                if (pfd[i + 1].revents & POLLIN) {
                    accept_all(set, &set->v[i]);
                }
            }
        }
        pthread_mutex_unlock(&acc.lock);
    }
    free(pfd);
    return NULL;
}

/* Start the thread on a listener set. */
int
acceptor_start(struct listener_set *set)
{
    if (pipe2(acc.wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        log_g(LOG_LV_EMERG, "pipe2() failed: %s", strerror(errno));
        return -1;
    }
    acc.set = set;
    atomic_store(&acc.stop, 0);
    atomic_store(&acc.parks_open, 1);
    if (pthread_create(&acc.thread, NULL, acceptor_main, NULL) != 0) {
        log_g(LOG_LV_EMERG, "pthread_create() failed for the acceptor");
        return -1;
    }
    acc.running = 1;
    return 0;
}

/* Swap in a new set (reload); the old one is returned to the caller. */
struct listener_set *
acceptor_swap(struct listener_set *set)
{
    struct listener_set *old;

    acceptor_wake();
    pthread_mutex_lock(&acc.lock);
    old = acc.set;
    acc.set = set;
    pthread_mutex_unlock(&acc.lock);
    acceptor_wake();
    return old;
}

/* Stop and join; the set is returned to the caller. */
struct listener_set *
acceptor_stop(void)
{
    struct listener_set *set;

    /* workers park no more: a session that tries goes back to the queue,
     * and the stop serves or drops it with the others */
    pthread_mutex_lock(&acc.park_lock);
    atomic_store(&acc.parks_open, 0);
    pthread_mutex_unlock(&acc.park_lock);
    if (acc.running) {
        atomic_store(&acc.stop, 1);
        acceptor_wake();
        pthread_join(acc.thread, NULL);
        acc.running = 0;
    }
    take_parked();
    /* the held clients go to the queue, which a graceful stop serves and
     * a fast one drops, as it does the clients already there */
    for (size_t i = 0; i < acc.nheld; i++) {
        queue(&acc.held[i]);
    }
    acc.nheld = 0;
    free(acc.held);
    acc.held = NULL;
    acc.heldcap = 0;
    if (acc.wake[0] >= 0) {
        close(acc.wake[0]);
        close(acc.wake[1]);
        acc.wake[0] = acc.wake[1] = -1;
    }
    set = acc.set;
    acc.set = NULL;
    return set;
}
