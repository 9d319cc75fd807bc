/*
 * relay.c - the relay threads.  Each carries a set of established
 * (client, backend) pairs with one poll() call: non-blocking sockets, one
 * buffer per direction (proxy_buffer), back-pressure (a full buffer stops
 * reading its source), half-close passed on once a buffer has drained, and
 * proxy_timeout for idle pairs.
 *
 * TLS: GnuTLS may hold decrypted bytes poll() cannot see, so a pair with
 * conn_pending() > 0 is served without sleeping; a record write that
 * returned EAGAIN is retried with the same length (GnuTLS requires it).
 * A TLS client that ends without close_notify has closed entirely (GnuTLS
 * will not write to it again): what it sent is delivered, then the pair
 * ends.
 *
 * poll() reports POLLHUP and POLLERR at once on every call, whatever the
 * events asked for.  So an error ends the pair, and a side that has hung
 * up is polled only while there is something to do on it; otherwise a
 * side at EOF that is reset would make the thread spin until
 * proxy_timeout.
 *
 * Locks: each thread's `lock` guards only its incoming list and the
 * deadline request; the pairs themselves belong to the thread alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "pool.h"
#include "process.h"
#include "relay.h"
#include "session.h"

/* One direction: bytes read from src waiting to be written to dst.  The
 * memory exists only while bytes are in flight: an idle pair holds none. */
struct pipebuf {
    unsigned char *data;         /* NULL while empty */
    size_t size, pos, last;
    size_t tls_retry;            /* >0: length of a TLS write to repeat */
    unsigned long long total;
};

struct side {
    struct conn c;
    int readable;                /* poll() said so, or not yet drained */
    int eof;                     /* read side saw EOF */
    int shut;                    /* EOF passed on: we write no more data */
    int bye_pending;             /* TLS: that close_notify waits for room
                                  * in the socket; the FIN goes after it */
    int hup;                     /* poll() reported a hang-up: it will on
                                  * every call from now on */
    int gone;                    /* the peer takes nothing more: it hung up
                                  * before we shut, or a TLS EOF came
                                  * without close_notify */
    const char *gone_note;       /* for the summary line, or NULL */
    int read_failed;             /* a read failed after bytes it passed on:
                                  * the pair ends as that error once they
                                  * are out (p->detail says what) */
    int rd_wants_write;          /* TLS read waits for POLLOUT */
    int wr_wants_read;           /* TLS write waits for POLLIN */
};

struct pair {
    struct side cl, be;
    struct pipebuf up;           /* client -> backend */
    struct pipebuf down;         /* backend -> client */
    struct conf *conf;
    const struct server_conf *sc;
    uint64_t id;
    msec_t start, last_active, deadline;
    char *context;               /* ", client: ..." (session_context) */
    const char *reason;          /* set when the pair must end */
    int pending;                 /* this turn: GnuTLS holds bytes to move */
    char detail[160];            /* what failed, for a read/write error */
    struct pair *next;           /* incoming list */
};

struct relay_thread {
    pthread_t thread;
    pthread_mutex_t lock;
    int wake[2];
    struct pair *incoming;
    struct pair **pairs;
    size_t n, cap;
    atomic_size_t count;         /* pairs incl. incoming, for balancing */
    int stop;
    /* shutdown_timeout after a reload or at a graceful stop: pairs of a
     * configuration older than generation dl_keep (ULONG_MAX: all pairs)
     * end by dl_at.  Kept, not consumed, so that pairs handed over later
     * get it too; by age, so that later configurations are never hit. */
    unsigned long dl_keep;
    msec_t dl_at;
    int dl_set;
    int dl_new;                  /* not yet applied to the pairs held */
};

static struct relay_thread *threads;
/* the reason of a pair proxy_timeout ended, known by its address */
static const char reason_proxy_timeout[] = "proxy_timeout";
static int nthreads;

/* Free a pair and log its summary. */
static void
pair_end(struct relay_thread *t, struct pair *p)
{
    msec_t dur = clock_now() - p->start;
    const char *ctx = p->context != NULL ? p->context : "";

    if (p->reason == reason_proxy_timeout) {
        /* NGINX's line for it, then the summary as for every pair */
        log_write(p->sc->error_log, LOG_LV_INFO, p->id,
                  "client " LOG_TIMED_OUT " while proxying%s", ctx);
    }
    /* NGINX's line and context first, postern's facts after them */
    log_write(p->sc->error_log, LOG_LV_INFO, p->id,
              "proxied session done%s, reason=%s%s%s%s bytes_in=%llu "
              "bytes_out=%llu duration=%lld.%03lld", ctx,
              p->reason ? p->reason : "closed", p->detail[0] ? " (" : "",
              p->detail, p->detail[0] ? ")" : "", p->up.total, p->down.total,
              (long long)(dur / 1000), (long long)(dur % 1000));
    free(p->context);
    conn_close(&p->cl.c);
    conn_close(&p->be.c);
    free(p->up.data);
    free(p->down.data);
    conf_unref(p->conf);
    free(p);
    atomic_fetch_sub(&t->count, 1);
    atomic_fetch_sub(&conn_active, 1);
}

/* Read from src into b while there is room.  1 progress, 0 none, -1 dead. */
static int
pipe_fill(struct pair *p, struct side *src, struct pipebuf *b)
{
    int progress = 0;

    while (!src->eof && (src->readable || conn_pending(&src->c) > 0)) {
        ssize_t n;
        size_t want;
        int want_write;

        if (b->data == NULL) {
            b->data = malloc(b->size);
            if (b->data == NULL) {
                p->reason = "out of memory";
                return -1;
            }
        }
        if (b->last == b->size) {
            if (b->pos == 0) {
                break;                          /* full: back-pressure */
            }
            if (b->tls_retry) {
                break;                          /* pending TLS write pins pos */
            }
            memmove(b->data, b->data + b->pos, b->last - b->pos);
            b->last -= b->pos;
            b->pos = 0;
        }
        want = b->size - b->last;
        n = conn_read_nb(&src->c, b->data + b->last, want, &want_write);
        if (n > 0) {
            b->last += (size_t)n;
            progress = 1;
            src->rd_wants_write = 0;
            if ((size_t)n < want && src->c.tls == NULL) {
                /* the socket is drained: another read() now would only
                 * say EAGAIN; poll() tells when there is more.  (A TLS
                 * read returns one record at most: short says nothing.) */
                src->readable = 0;
            }
            continue;
        }
        if (n == 0) {
            src->eof = 1;
            if (conn_eof_is_full_close(&src->c)) {
                /* no half-close: nothing can be written to it now */
                src->gone = 1;
                src->gone_note = "without close_notify";
            }
            progress = 1;
            break;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            src->rd_wants_write = want_write;
            src->readable = 0;
            break;
        }
        if (progress) {
            /* bytes came before the error (a TLS read loops record by
             * record): they go on first, as NGINX passes them, then the
             * pair ends as this read error (side_hangup) */
            str_lcpy(p->detail, conn_strerror(&src->c, errno),
                     sizeof(p->detail));
            src->eof = 1;
            src->gone = 1;
            src->read_failed = 1;
            break;
        }
        p->reason = src == &p->cl ? "client read error" : "upstream read error";
        str_lcpy(p->detail, conn_strerror(&src->c, errno), sizeof(p->detail));
        return -1;
    }
    return progress;
}

/* Write b to dst.  1 progress, 0 none, -1 dead. */
static int
pipe_flush(struct pair *p, struct side *dst, struct pipebuf *b)
{
    int progress = 0;

    if (dst->gone && b->pos < b->last) {
        /* nobody there to take them: dropped, so that they hold up
         * neither the other direction nor the pair's end */
        b->pos = b->last = 0;
        b->tls_retry = 0;
        return 1;
    }
    while (b->pos < b->last) {
        size_t len = b->tls_retry ? b->tls_retry : b->last - b->pos;
        int want_read;
        ssize_t n = conn_write_nb(&dst->c, b->data + b->pos, len, &want_read);

        if (n > 0) {
            b->pos += (size_t)n;
            b->total += (unsigned long long)n;
            b->tls_retry = 0;
            dst->wr_wants_read = 0;
            progress = 1;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (dst->c.tls != NULL) {
                b->tls_retry = len;
            }
            dst->wr_wants_read = want_read;
            break;
        }
        p->reason = dst == &p->cl ? "client write error" : "upstream write error";
        str_lcpy(p->detail, conn_strerror(&dst->c, errno), sizeof(p->detail));
        return -1;
    }
    if (b->pos == b->last) {
        b->pos = b->last = 0;
    }
    return progress;
}

/* Give an empty direction's memory back (it is allocated on the next read). */
static void
pipebuf_release_if_empty(struct pipebuf *b)
{
    if (b->data != NULL && b->pos == b->last && b->tls_retry == 0) {
        free(b->data);
        b->data = NULL;
        b->pos = b->last = 0;
    }
}

/* Pass an EOF on to s, or finish doing so: a close_notify that met a full
 * socket is tried again once s is writable (side_events asks), and the FIN
 * waits for it.  1 when a close_notify that was waiting went out. */
static int
side_shut(struct side *s)
{
    int was_pending = s->bye_pending;

    s->shut = 1;
    s->bye_pending = conn_shutdown_write(&s->c) != 0 && errno == EAGAIN;
    return was_pending && !s->bye_pending;
}

/* Move bytes both ways until nothing more can move.  -1: end the pair. */
static int
pair_io(struct pair *p)
{
    for (int round = 0; round < 64; round++) {
        int a, b, c, d;

        if ((a = pipe_fill(p, &p->cl, &p->up)) < 0
            || (b = pipe_flush(p, &p->be, &p->up)) < 0
            || (c = pipe_fill(p, &p->be, &p->down)) < 0
            || (d = pipe_flush(p, &p->cl, &p->down)) < 0) {
            return -1;
        }
        /* both sides ended and everything is out: closing sends the FINs,
         * no shutdown() calls first (but a close_notify already begun
         * goes out before the close) */
        if (p->cl.eof && p->be.eof && p->up.pos == p->up.last
            && p->down.pos == p->down.last
            && !p->cl.bye_pending && !p->be.bye_pending) {
            /* the side whose EOF was passed on first closed first */
            p->reason = p->cl.shut ? "upstream closed" : "client closed";
            return -1;
        }
        /* half-close: pass an EOF on once everything before it is out */
        if (p->cl.eof && (!p->be.shut || p->be.bye_pending)
            && p->up.pos == p->up.last) {
            b |= side_shut(&p->be);
        }
        if (p->be.eof && (!p->cl.shut || p->cl.bye_pending)
            && p->down.pos == p->down.last) {
            d |= side_shut(&p->cl);
        }
        if (!(a || b || c || d)) {
            break;
        }
        /* bytes read only to be dropped for a side that is gone are no
         * activity: proxy_timeout still ends such a pair */
        if (((a || b) && !p->be.gone) || ((c || d) && !p->cl.gone)) {
            p->last_active = clock_now();
        }
    }
    pipebuf_release_if_empty(&p->up);
    pipebuf_release_if_empty(&p->down);
    return 0;
}

/* poll() events for one side. */
static short
side_events(const struct side *s, const struct pipebuf *in, const struct pipebuf *out)
{
    short ev = 0;

    if (!s->eof && in->last < in->size) {
        ev |= s->rd_wants_write ? POLLOUT : POLLIN;
    }
    if (out->pos < out->last) {
        ev |= s->wr_wants_read ? POLLIN : POLLOUT;
    }
    if (s->bye_pending) {
        ev |= POLLOUT;
    }
    return ev;
}

/* The fd to poll for a side: none (-1, which poll() skips) for one that
 * hung up and has nothing to do now, else it would be reported at once on
 * every call.  Once it can read or write again it is polled, and poll()'s
 * answer then comes with the data, the EOF or the error. */
static int
side_poll_fd(const struct side *s, short events)
{
    return s->hup && events == 0 ? -1 : s->c.fd;
}

/* The pending error of a socket (SO_ERROR, which reading clears), 0 if
 * none. */
static int
sock_error(int fd)
{
    int e = 0;
    socklen_t len = sizeof(e);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) {
        return errno;
    }
    return e;
}

/* After a turn's I/O, what poll() said beyond readiness about side s
 * (its peer across the pair: other; what s sent: from_s).  An error ends
 * the pair: the read that would report it may never come, as s is at EOF
 * or its buffer is full.  A hang-up before we shut our side means the
 * peer takes nothing more; once it is also at EOF and what it sent is out,
 * nothing can move either way.  A read that failed after bytes ends the
 * pair as that read error once those bytes are out.  1: end the pair
 * (reason set). */
static int
side_hangup(struct pair *p, struct side *s, const struct side *other,
            const struct pipebuf *from_s, short revents)
{
    int is_client = s == &p->cl;

    if (revents & (POLLHUP | POLLERR)) {
        s->hup = 1;
        /* our write side is open: only a reset, a timeout or a full close
         * of the peer shuts it */
        if (!s->shut) {
            s->gone = 1;
        }
    }
    if (s->read_failed) {
        /* the bytes read before the error go out first (unless nobody
         * takes them); the reset poll() may report now is that error */
        if (from_s->pos < from_s->last && !other->gone) {
            return 0;
        }
        p->reason = is_client ? "client read error" : "upstream read error";
        return 1;
    }
    if (revents & POLLERR) {
        int e = sock_error(s->c.fd);

        /* Linux reports a reset that follows the peer's FIN as EPIPE */
        if (e == EPIPE && s->eof) {
            e = ECONNRESET;
        }
        p->reason = is_client ? "client connection error"
                              : "upstream connection error";
        str_lcpy(p->detail, e != 0 ? strerror(e) : "poll() reported an error",
                 sizeof(p->detail));
        return 1;
    }
    if (s->gone && s->eof && from_s->pos == from_s->last && other->shut
        && !other->bye_pending) {
        p->reason = is_client ? "client closed" : "upstream closed";
        if (s->gone_note != NULL) {
            str_lcpy(p->detail, s->gone_note, sizeof(p->detail));
        }
        return 1;
    }
    return 0;
}

/* side_hangup for both sides.  1: end the pair. */
static int
pair_hangups(struct pair *p, short cl_revents, short be_revents)
{
    return side_hangup(p, &p->cl, &p->be, &p->up, cl_revents)
           || side_hangup(p, &p->be, &p->cl, &p->down, be_revents);
}

/* Whether poll()'s answer means a read may find something. */
static int
side_readable(const struct side *s, short revents)
{
    return (revents & (POLLIN | POLLHUP | POLLERR)) != 0
           || (s->rd_wants_write && (revents & POLLOUT));
}

/* Bytes inside GnuTLS that could move now. */
static int
pair_has_pending(const struct pair *p)
{
    return (conn_pending(&p->cl.c) > 0 && p->up.last < p->up.size)
        || (conn_pending(&p->be.c) > 0 && p->down.last < p->down.size);
}

/* A pair of an older configuration ends by the thread's deadline; an
 * earlier deadline it already has stands (lock held). */
static void
pair_apply_deadline(const struct relay_thread *t, struct pair *p)
{
    if (p->conf->generation < t->dl_keep && t->dl_at < p->deadline) {
        p->deadline = t->dl_at;
    }
}

/* Take the pairs workers handed over, and apply the deadline request. */
static void
take_incoming(struct relay_thread *t)
{
    struct pair *in;
    msec_t now = clock_now();

    pthread_mutex_lock(&t->lock);
    in = t->incoming;
    t->incoming = NULL;
    if (t->dl_new) {
        for (size_t i = 0; i < t->n; i++) {
            pair_apply_deadline(t, t->pairs[i]);
        }
        t->dl_new = 0;
    }
    for (struct pair *p = in; p != NULL && t->dl_set; p = p->next) {
        pair_apply_deadline(t, p);
    }
    pthread_mutex_unlock(&t->lock);
    while (in != NULL) {
        struct pair *next = in->next;

        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            struct pair **v = realloc(t->pairs, cap * sizeof(*v));

            if (v == NULL) {
                in->reason = "out of memory";
                pair_end(t, in);
                in = next;
                continue;
            }
            t->pairs = v;
            t->cap = cap;
        }
        in->last_active = now;
        t->pairs[t->n++] = in;
        in = next;
    }
}

/* One relay thread. */
static void *
relay_main(void *arg)
{
    struct relay_thread *t = arg;
    struct pollfd *pfd = NULL;
    size_t pcap = 0;

    process_name_self("relay", (int)(t - threads));
    for (;;) {
        msec_t now, next = DEADLINE_NONE;
        int busy = 0, timeout, rc;
        size_t np;

        take_incoming(t);
        if (__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
            break;
        }
        if (2 * t->n + 1 > pcap) {
            size_t cap = 2 * t->cap + 1;
            struct pollfd *v = realloc(pfd, cap * sizeof(*v));
            if (v == NULL) {
                log_g(LOG_LV_ALERT, "out of memory in the relay");
                struct timespec ts = { 0, 10 * 1000000L };
                nanosleep(&ts, NULL);
                continue;
            }
            pfd = v;
            pcap = cap;
        }
        now = clock_now();
        pfd[0].fd = t->wake[0];
        pfd[0].events = POLLIN;
        np = 1;
        for (size_t i = 0; i < t->n; i++) {
            struct pair *p = t->pairs[i];
            msec_t idle_end = p->last_active + p->sc->proxy_timeout;
            msec_t end = idle_end < p->deadline ? idle_end : p->deadline;

            if (end < next) {
                next = end;
            }
            /* asked once per turn: poll() does not change it */
            p->pending = pair_has_pending(p);
            busy |= p->pending;
            pfd[np].events = side_events(&p->cl, &p->up, &p->down);
            pfd[np].fd = side_poll_fd(&p->cl, pfd[np].events);
            pfd[np + 1].events = side_events(&p->be, &p->down, &p->up);
            pfd[np + 1].fd = side_poll_fd(&p->be, pfd[np + 1].events);
            np += 2;
        }
        timeout = busy ? 0 : clock_left(next);
        rc = poll(pfd, np, timeout);
        if (rc < 0 && errno != EINTR) {
            log_g(LOG_LV_ALERT, "poll() failed in the relay: %s", strerror(errno));
        }
        if (rc > 0 && (pfd[0].revents & POLLIN)) {
            char drain[64];

            /* a short read has emptied the pipe: no read to see EAGAIN */
            while (read(t->wake[0], drain, sizeof(drain)) == (ssize_t)sizeof(drain)) {
            }
        }
        now = clock_now();
        /* walk backwards so that removing a pair keeps indexes valid */
        for (size_t i = t->n; i-- > 0;) {
            struct pair *p = t->pairs[i];
            /* (revents are not written when poll() fails) */
            short cr = rc > 0 ? pfd[1 + 2 * i].revents : 0;
            short br = rc > 0 ? pfd[2 + 2 * i].revents : 0;
            int end = 0;

            p->cl.readable |= side_readable(&p->cl, cr);
            p->be.readable |= side_readable(&p->be, br);
            if ((cr | br) & POLLNVAL) {
                /* not ours any more: never read or write it */
                p->reason = "socket error";
                str_lcpy(p->detail, "invalid descriptor", sizeof(p->detail));
                end = 1;
            } else if ((cr | br) || p->pending) {
                end = pair_io(p) != 0 || pair_hangups(p, cr, br);
            }
            if (!end && now >= p->deadline) {
                p->reason = "shutdown";
                end = 1;
            }
            if (!end && now - p->last_active >= p->sc->proxy_timeout) {
                p->reason = reason_proxy_timeout;
                end = 1;
            }
            if (end) {
                pair_end(t, p);
                t->pairs[i] = t->pairs[--t->n];
            }
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        t->pairs[i]->reason = "shutdown";
        pair_end(t, t->pairs[i]);
    }
    t->n = 0;
    free(pfd);
    return NULL;
}

/* Make a pipebuf holding the bytes still unread in a worker's buffer. */
static int
pipebuf_init(struct pipebuf *b, size_t size, const struct buf *leftover)
{
    size_t n = buf_len(leftover);

    b->size = n > size ? n : size;
    b->data = NULL;
    b->pos = b->last = 0;
    b->tls_retry = 0;
    b->total = 0;
    if (n == 0) {
        return 0;
    }
    b->data = malloc(b->size);
    if (b->data == NULL) {
        return -1;
    }
    memcpy(b->data, buf_head(leftover), n);
    b->last = n;
    return 0;
}

/* Hand a logged-in session to the least loaded relay thread. */
int
relay_add(struct session *s)
{
    struct pair *p = calloc(1, sizeof(*p));
    struct relay_thread *t = &threads[0];
    char ctx[768];
    char c = 1;
    int was_empty;

    if (p == NULL) {
        return -1;
    }
    if (pipebuf_init(&p->up, s->sc->proxy_buffer, &s->client.in) != 0
        || pipebuf_init(&p->down, s->sc->proxy_buffer, &s->backend.in) != 0) {
        free(p->up.data);
        free(p);
        return -1;
    }
    /* the conns move into the pair; their read buffers are no longer needed */
    p->cl.c = s->client;
    p->be.c = s->backend;
    buf_free(&p->cl.c.in);
    buf_free(&p->be.c.in);
    s->client.fd = s->backend.fd = -1;
    s->client.tls = s->backend.tls = NULL;
    memset(&s->client.in, 0, sizeof(s->client.in));
    memset(&s->backend.in, 0, sizeof(s->backend.in));

    /* not readable until poll() says so: it is level-triggered, so bytes
     * that arrived before the hand-over are reported on the first turn,
     * and bytes inside GnuTLS count as pending; assuming readable cost
     * every session a read that found nothing (the backend's, after the
     * client's first command) */
    p->cl.readable = p->be.readable = 0;
    p->conf = conf_ref(s->conf);
    p->sc = s->sc;
    p->id = s->id;
    p->start = s->start;
    p->deadline = DEADLINE_NONE;
    session_context(s, ctx, sizeof(ctx));
    p->context = strdup(ctx);       /* NULL: the summary goes without it */

    for (int i = 1; i < nthreads; i++) {
        if (atomic_load(&threads[i].count) < atomic_load(&t->count)) {
            t = &threads[i];
        }
    }
    atomic_fetch_add(&t->count, 1);
    pthread_mutex_lock(&t->lock);
    p->next = t->incoming;
    t->incoming = p;
    was_empty = p->next == NULL;
    pthread_mutex_unlock(&t->lock);
    /* a non-empty list has had its wake-up written and not yet taken: the
     * thread takes this pair with it, one write per batch is enough */
    if (was_empty && write(t->wake[1], &c, 1) < 0) {
        /* pipe full: the thread is being woken anyway */
    }
    return 0;
}

/* Start n relay threads. */
int
relay_start(int n)
{
    threads = calloc((size_t)n, sizeof(*threads));
    if (threads == NULL) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        struct relay_thread *t = &threads[i];

        pthread_mutex_init(&t->lock, NULL);
        if (pipe2(t->wake, O_NONBLOCK | O_CLOEXEC) != 0
            || pthread_create(&t->thread, NULL, relay_main, t) != 0) {
            log_g(LOG_LV_EMERG, "cannot start relay thread %d: %s", i, strerror(errno));
            return -1;
        }
        nthreads = i + 1;
    }
    return 0;
}

/* Wake one thread. */
static void
relay_wake(struct relay_thread *t)
{
    char c = 1;

    if (write(t->wake[1], &c, 1) < 0) {
        /* already awake */
    }
}

/* End every pair and join the threads. */
void
relay_stop(void)
{
    for (int i = 0; i < nthreads; i++) {
        __atomic_store_n(&threads[i].stop, 1, __ATOMIC_RELEASE);
        relay_wake(&threads[i]);
    }
    for (int i = 0; i < nthreads; i++) {
        struct relay_thread *t = &threads[i];

        pthread_join(t->thread, NULL);
        /* pairs handed over after the thread's last look */
        take_incoming(t);
        for (size_t j = 0; j < t->n; j++) {
            t->pairs[j]->reason = "shutdown";
            pair_end(t, t->pairs[j]);
        }
        free(t->pairs);
        close(t->wake[0]);
        close(t->wake[1]);
        pthread_mutex_destroy(&t->lock);
    }
    free(threads);
    threads = NULL;
    nthreads = 0;
}

/* Pairs in all threads. */
size_t
relay_count(void)
{
    size_t n = 0;

    for (int i = 0; i < nthreads; i++) {
        n += atomic_load(&threads[i].count);
    }
    return n;
}

/* Ask every thread to end old pairs at a deadline. */
void
relay_set_deadline(const struct conf *keep, long long deadline_ms)
{
    for (int i = 0; i < nthreads; i++) {
        struct relay_thread *t = &threads[i];

        pthread_mutex_lock(&t->lock);
        t->dl_keep = keep != NULL ? keep->generation : ULONG_MAX;
        t->dl_at = deadline_ms;
        t->dl_set = 1;
        t->dl_new = 1;
        pthread_mutex_unlock(&t->lock);
        relay_wake(t);
    }
}
