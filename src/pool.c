/*
 * pool.c - the worker pool: a bounded FIFO of accepted connections and a
 * fixed set of threads that each run one session at a time (session.c).
 *
 * Fairness: a worker takes the first queued item whose client address has
 * fewer than preauth_per_client sessions in workers, so slow clients from
 * one address hold at most their share of the pool (clients that have said
 * nothing yet wait in the acceptor and hold none).  Behind a trusted PROXY
 * protocol balancer the address that counts is the real client's: such a
 * connection is taken without a share, reads its header, then claims the
 * share of the real address (pool_claim_share) or waits in the queue again
 * under it.  Items whose `timeout` passed while they waited are closed,
 * never served; but one that passed it in the acceptor, waiting for the
 * client's first bytes, goes to a worker, which logs the timeout in the
 * session's words (acceptor.c).
 *
 * Parked sessions: a session whose dialogue waits for its client while
 * others wait here leaves its worker for the acceptor, and comes back
 * through the queue like a new connection when its client speaks
 * (pool_item.parked; session_fill_client).  Its share of the pool is given
 * back while it is away.  Those waits learn at once that others wait: the
 * pressure pipe is readable while queued items outnumber the idle workers
 * or wait for a share (conn_set_pressure_fd).
 *
 * Locks: one mutex (pool.lock) guards the queue, the per-address counts and
 * the table of client fds in workers; two condition variables.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "conn.h"
#include "log.h"
#include "pool.h"
#include "process.h"
#include "session.h"

_Atomic long conn_active;

/* The pressure (the pipe's state) and pool.stopping, for sessions that look
 * without the lock (pool_pressured, pool_may_park); written under it */
static atomic_int pressured;
static atomic_int stopping;

/* Sessions in workers from one address. */
struct addr_count {
    unsigned char key[17];          /* family byte + 16 address bytes */
    int n;
};

/* The share a worker holds: the address its session counts under. */
struct claim {
    int held;
    unsigned char key[17];
};

/* Which worker this thread is (-1: not a worker). */
static _Thread_local int worker_self = -1;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;            /* an item arrived, or a share freed */
    struct pool_item *q;            /* ring of capacity items */
    size_t cap, head, len;
    pthread_t *threads;
    int nthreads;
    int *busy_fd;                   /* client fd per worker, -1 idle */
    struct addr_count *counts;      /* nthreads slots: at most one per worker */
    struct claim *claims;           /* per worker */
    int stopping;                   /* 1 graceful, 2 fast */
    int idle;                       /* workers waiting for an item */
    /* readable (one byte in it) while `pressured`: items wait that the
     * idle workers will not take at once.  Workers waiting for a silent
     * client poll the read end, so that they leave for the acceptor as
     * soon as a connection needs their thread, not at their next look */
    int pressure[2];
    /* read end: conn_poll()'s cancel descriptor; a byte written to the
     * write end on a fast stop ends every wait of every worker (auth
     * service, backend, Auth-Wait), not only the client reads that
     * shutting down busy_fd ends */
    int cancel[2];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
           .cancel = { -1, -1 }, .pressure = { -1, -1 } };

/* The fairness key of an address: IPv4-mapped IPv6 counts as IPv4, and
 * other IPv6 addresses by their /64, the block one host forms its
 * addresses in (SLAAC, privacy addresses), so that a client cannot take
 * more of the pool by changing its address within it. */
static void
addr_key(const struct sockaddr_storage *ss, unsigned char key[17])
{
    memset(key, 0, 17);
    if (ss->ss_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(a)) {
            key[0] = 4;
            memcpy(key + 1, a->s6_addr + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, a->s6_addr, 8);
        }
    } else {
        key[0] = 1;                 /* every unix-socket client shares one */
    }
}

/* Sessions in workers for key (lock held). */
static struct addr_count *
count_find(const unsigned char key[17], int create)
{
    struct addr_count *free_slot = NULL;

    for (int i = 0; i < pool.nthreads; i++) {
        struct addr_count *c = &pool.counts[i];

        if (c->n > 0 && memcmp(c->key, key, 17) == 0) {
            return c;
        }
        if (c->n == 0 && free_slot == NULL) {
            free_slot = c;
        }
    }
    if (create && free_slot != NULL) {
        memcpy(free_slot->key, key, 17);
    }
    return create ? free_slot : NULL;
}

/* Close a queued connection that will not be served. */
static void
item_drop(struct pool_item *it, const char *why)
{
    log_write(it->sc->error_log, LOG_LV_INFO, it->id, "%s", why);
    if (it->parked != NULL) {
        session_discard(it->parked);    /* its fd and conf reference */
    } else {
        close(it->fd);
        conf_unref(it->conf);
    }
    free(it->resume);
    atomic_fetch_sub(&conn_active, 1);
}

/* A connection from a trusted PROXY sender: its real address is known only
 * once a worker has read the header, so it is taken without a share. */
static int
behind_balancer(const struct pool_item *it)
{
    return it->lc->proxy_protocol
           && addr_rules_match(&it->sc->set_real_ip_from,
                               (const struct sockaddr *)&it->peer, NULL);
}

/* Count a session of key in a worker (lock held). */
static void
claim_take(struct claim *cl, const unsigned char key[17])
{
    struct addr_count *c = count_find(key, 1);

    c->n++;
    memcpy(cl->key, key, 17);
    cl->held = 1;
}

/* Give a worker's share back (lock held). */
static void
claim_release(struct claim *cl)
{
    struct addr_count *c;

    if (!cl->held) {
        return;
    }
    c = count_find(cl->key, 0);
    if (c != NULL) {
        c->n--;
    }
    cl->held = 0;
}

/* Say that queued items wait for a worker (lock held). */
static void
pressure_raise(void)
{
    if (atomic_load(&pressured) || pool.pressure[1] < 0) {
        return;
    }
    /* set before the write: a session the pipe wakes finds it set */
    atomic_store(&pressured, 1);
    if (write(pool.pressure[1], "p", 1) != 1) {
        atomic_store(&pressured, 0);
    }
}

/* After the queue or the idle workers changed (lock held): raised while
 * more items are queued than idle workers can take, down once the queue is
 * empty.  (Between the two it stays as it is: an item over its address's
 * share waits with idle workers, and worker_main raises it for that.) */
static void
pressure_update(void)
{
    char c;

    if (pool.len == 0 && atomic_load(&pressured)) {
        /* cleared before the read: a session the pipe woke meanwhile
         * finds it clear and waits on */
        atomic_store(&pressured, 0);
        if (read(pool.pressure[0], &c, 1) != 1) {
            atomic_store(&pressured, 1);    /* not drained: still says so */
        }
    } else if (pool.len > (size_t)pool.idle) {
        pressure_raise();
    }
}

/* Remove queue position i (lock held). */
static void
queue_remove(size_t i)
{
    for (size_t j = i; j + 1 < pool.len; j++) {
        pool.q[(pool.head + j) % pool.cap] = pool.q[(pool.head + j + 1) % pool.cap];
    }
    pool.len--;
    pressure_update();
}

/* Whether a worker may take it now (lock held): its address is under its
 * share of the workers, or it is a balancer's (*exempt_r), counted once
 * its header is read.  The address it counts under goes into key. */
static int
item_eligible(const struct pool_item *it, unsigned char key[17],
              int *exempt_r)
{
    const struct addr_count *c;

    addr_key(it->resume != NULL ? &it->resume->src : &it->peer, key);
    /* a session parked after its header has the real client's address in
     * it->peer; one parked in its header is still the balancer's */
    *exempt_r = it->resume == NULL
                && (it->parked == NULL || it->before_header)
                && behind_balancer(it);
    if (*exempt_r) {
        return 1;
    }
    c = count_find(key, 0);
    return c == NULL || c->n < it->sc->preauth_per_client;
}

/* See pool.h. */
msec_t
pool_item_deadline(const struct pool_item *it)
{
    return it->accepted + it->sc->timeout;
}

/* Take the first eligible item (lock held); 1 if one was taken, with the
 * share it counts under in *cl. */
static int
queue_take(struct pool_item *out, struct claim *cl)
{
    msec_t now = clock_now();

    for (size_t i = 0; i < pool.len; i++) {
        struct pool_item *it = &pool.q[(pool.head + i) % pool.cap];
        unsigned char key[17];
        int exempt;

        if (now >= pool_item_deadline(it) && !it->expired) {
            struct pool_item dead = *it;

            queue_remove(i);
            item_drop(&dead, "client timed out while waiting for a worker");
            i--;
            continue;
        }
        if (!item_eligible(it, key, &exempt)) {
            continue;
        }
        *out = *it;
        queue_remove(i);
        cl->held = 0;
        if (!exempt) {
            claim_take(cl, key);
        }
        return 1;
    }
    return 0;
}

/* The share of the real address behind a trusted balancer. */
int
pool_claim_share(const struct server_conf *sc,
                 const struct sockaddr_storage *real)
{
    unsigned char key[17];
    struct addr_count *c;
    int rc = 0;

    if (worker_self < 0) {
        return 0;
    }
    addr_key(real, key);
    pthread_mutex_lock(&pool.lock);
    c = count_find(key, 0);
    if (c != NULL && c->n >= sc->preauth_per_client) {
        rc = -1;
    } else {
        claim_release(&pool.claims[worker_self]);
        claim_take(&pool.claims[worker_self], key);
    }
    pthread_mutex_unlock(&pool.lock);
    return rc;
}

/* The worker's session no longer owns its client fd. */
void
pool_release_fd(void)
{
    if (worker_self < 0) {
        return;
    }
    pthread_mutex_lock(&pool.lock);
    pool.busy_fd[worker_self] = -1;
    pthread_mutex_unlock(&pool.lock);
}

/* Put a session back at the end of the queue (lock held); 0 / -1 full. */
static int
queue_requeue(const struct pool_item *it)
{
    if (pool.len == pool.cap) {
        return -1;
    }
    pool.q[(pool.head + pool.len) % pool.cap] = *it;
    pool.len++;
    pressure_update();
    return 0;
}

/* One worker: take an item, run its session, repeat. */
static void *
worker_main(void *arg)
{
    int self = (int)(intptr_t)arg;
    struct claim *cl = &pool.claims[self];
    struct pool_item it;
    int rc;

    process_name_self("worker", self);
    worker_self = self;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        if (pool.stopping == 2 || (pool.stopping == 1 && pool.len == 0)) {
            break;
        }
        if (!queue_take(&it, cl)) {
            if (pool.stopping && pool.len == 0) {
                break;                  /* the last queued item just expired */
            }
            pool.idle++;
            if (pool.len > 0) {
                /* all queued are over their share: re-check when a share frees
                 * or the oldest item's timeout passes.  Sessions of their
                 * addresses that wait for their clients give shares back by
                 * parking: tell them */
                struct timespec ts;
                pressure_raise();
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&pool.work, &pool.lock, &ts);
            } else {
                pthread_cond_wait(&pool.work, &pool.lock);
            }
            pool.idle--;
            continue;
        }
        pool.busy_fd[self] = it.fd;
        pthread_mutex_unlock(&pool.lock);

        rc = session_run(&it);
        if (rc == 0) {
            atomic_fetch_sub(&conn_active, 1);
        }
        /* 0 and 1: session_run released the conf and the fd (or the relay
         * has them); 2: both are still the item's, to wait again; 3: the
         * session parked in the acceptor, which has the item now */

        pthread_mutex_lock(&pool.lock);
        pool.busy_fd[self] = -1;
        claim_release(cl);
        /* a graceful stop serves the queue, this one included; a fast
         * one has dropped the queue and drops it too */
        if (rc == 2 && pool.stopping == 2) {
            item_drop(&it, "server is shutting down");
        } else if (rc == 2 && queue_requeue(&it) != 0) {
            item_drop(&it, "no room to wait again for a worker, client closed");
        }
        /* no signal for the share that came free: releasing one share makes
         * at most one queued item eligible, and this worker, holding the
         * lock, looks at the queue next and takes it; an eligible item
         * queued earlier had its own signal from pool_push */
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Start the workers. */
int
pool_start(int nthreads, size_t capacity)
{
    pthread_attr_t attr;

    pool.q = calloc(capacity, sizeof(*pool.q));
    pool.threads = calloc((size_t)nthreads, sizeof(*pool.threads));
    pool.busy_fd = calloc((size_t)nthreads, sizeof(int));
    pool.counts = calloc((size_t)nthreads, sizeof(*pool.counts));
    pool.claims = calloc((size_t)nthreads, sizeof(*pool.claims));
    if (!pool.q || !pool.threads || !pool.busy_fd || !pool.counts
        || !pool.claims) {
        log_g(LOG_LV_EMERG, "out of memory for %d worker threads", nthreads);
        return -1;
    }
    if (pipe2(pool.cancel, O_CLOEXEC | O_NONBLOCK) != 0) {
        log_g(LOG_LV_EMERG, "pipe() failed for the worker pool: %s",
              strerror(errno));
        return -1;
    }
    if (pipe2(pool.pressure, O_CLOEXEC | O_NONBLOCK) != 0) {
        log_g(LOG_LV_EMERG, "pipe() failed for the worker pool: %s",
              strerror(errno));
        return -1;
    }
    conn_set_cancel_fd(pool.cancel[0]);
    conn_set_pressure_fd(pool.pressure[0]);
    atomic_store(&pressured, 0);
    pool.idle = 0;
    pool.cap = capacity;
    pool.head = pool.len = 0;
    pool.stopping = 0;
    atomic_store(&stopping, 0);
    pthread_attr_init(&attr);
    /* sessions are shallow: a small stack keeps 32+ workers cheap */
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < nthreads; i++) {
        pool.busy_fd[i] = -1;
        if (pthread_create(&pool.threads[i], &attr, worker_main, (void *)(intptr_t)i) != 0) {
            log_g(LOG_LV_EMERG, "pthread_create() failed for worker %d", i);
            pthread_attr_destroy(&attr);
            pool.nthreads = i;
            return -1;
        }
        pool.nthreads = i + 1;
    }
    pthread_attr_destroy(&attr);
    return 0;
}

/*
 * Let the queue hold capacity items, for a reload that raised
 * worker_connections.  It never shrinks: queued connections keep their
 * place, and the acceptor's own limit already keeps fewer open.  Main
 * thread only (the one writer of pool.cap).  0 / -1 out of memory.
 */
int
pool_grow(size_t capacity)
{
    struct pool_item *q, *old;

    if (capacity <= pool.cap) {
        return 0;
    }
    q = calloc(capacity, sizeof(*q));
    if (q == NULL) {
        return -1;
    }
    pthread_mutex_lock(&pool.lock);
    for (size_t i = 0; i < pool.len; i++) {
        q[i] = pool.q[(pool.head + i) % pool.cap];
    }
    old = pool.q;
    pool.q = q;
    pool.head = 0;
    pool.cap = capacity;
    pthread_mutex_unlock(&pool.lock);
    free(old);
    return 0;
}

/* Queue one connection. */
int
pool_push(const struct pool_item *it)
{
    unsigned char key[17];
    int eligible, exempt;

    pthread_mutex_lock(&pool.lock);
    if (pool.len == pool.cap || pool.stopping) {
        pthread_mutex_unlock(&pool.lock);
        return -1;
    }
    pool.q[(pool.head + pool.len) % pool.cap] = *it;
    pool.len++;
    pressure_update();
    /* an item over its address's share waits for a share to come free
     * (whose worker then takes it): waking an idle worker now would only
     * have it find nothing it may take */
    eligible = item_eligible(it, key, &exempt);
    pthread_mutex_unlock(&pool.lock);
    /* signalled after the unlock, so the woken worker does not find the
     * lock still held and sleep on it once more */
    if (eligible) {
        pthread_cond_signal(&pool.work);
    }
    return 0;
}

/* Wake every worker out of its I/O and drop the queue (lock held). */
static void
pool_abort_locked(void)
{
    while (pool.len > 0) {
        item_drop(&pool.q[pool.head], "server is shutting down");
        pool.head = (pool.head + 1) % pool.cap;
        pool.len--;
    }
    pressure_update();
    /* every wait of every worker ends: the pipe stays readable, once is
     * enough.  Written first, so that a worker woken by the shutdown
     * below finds it too and says the stop ended its session, not its
     * client */
    if (pool.cancel[1] >= 0 && write(pool.cancel[1], "x", 1) < 0) {
        log_g(LOG_LV_ALERT, "write() to the worker pool's stop pipe "
              "failed: %s", strerror(errno));
    }
    for (int i = 0; i < pool.nthreads; i++) {
        if (pool.busy_fd[i] >= 0) {
            /* the client sees its connection end now */
            shutdown(pool.busy_fd[i], SHUT_RDWR);
        }
    }
}

/* Begin a stop: graceful (the queue is served first) or fast; a fast call
 * after a graceful one ends what is left at once. */
void
pool_shutdown(int fast)
{
    pthread_mutex_lock(&pool.lock);
    if (fast) {
        pool.stopping = 2;
        pool_abort_locked();
    } else if (pool.stopping == 0) {
        pool.stopping = 1;
    }
    atomic_store(&stopping, pool.stopping);
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
}

/* Join the workers of a stopped pool and free it. */
void
pool_join(void)
{
    for (int i = 0; i < pool.nthreads; i++) {
        pthread_join(pool.threads[i], NULL);
    }
    conn_set_cancel_fd(-1);
    conn_set_pressure_fd(-1);
    for (int i = 0; i < 2; i++) {
        if (pool.cancel[i] >= 0) {
            close(pool.cancel[i]);
            pool.cancel[i] = -1;
        }
        if (pool.pressure[i] >= 0) {
            close(pool.pressure[i]);
            pool.pressure[i] = -1;
        }
    }
    free(pool.q);
    free(pool.threads);
    free(pool.busy_fd);
    free(pool.counts);
    free(pool.claims);
    pool.claims = NULL;
    pool.q = NULL;
    pool.threads = NULL;
    pool.busy_fd = NULL;
    pool.counts = NULL;
    pool.nthreads = 0;
}

/* See pool.h. */
int
pool_may_park(void)
{
    return worker_self >= 0 && atomic_load(&stopping) == 0;
}

/* See pool.h. */
int
pool_pressured(void)
{
    return atomic_load(&pressured);
}

/* Queued + in workers. */
size_t
pool_busy(void)
{
    size_t n;

    pthread_mutex_lock(&pool.lock);
    n = pool.len;
    for (int i = 0; i < pool.nthreads; i++) {
        n += pool.busy_fd[i] >= 0;
    }
    pthread_mutex_unlock(&pool.lock);
    return n;
}
