/*
 * keepalive.c - idle connections to one peer kept for reuse (keepalive.h).
 *
 * Locks: one mutex per stack, held only to push or pop (never across a
 * system call but close()).  Untrusted input: none is read here; a
 * MSG_PEEK of one byte only tells an idle socket the peer closed (or wrote
 * to) from a quiet one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "keepalive.h"

struct idle_conn {
    int fd;
    msec_t since;               /* when it was given back */
};

struct keepalive {
    pthread_mutex_t lock;
    int max, n;                 /* capacity, sockets held */
    struct idle_conn conns[];   /* conns[n - 1] is the most recent */
};

struct keepalive *
keepalive_new(int max)
{
    struct keepalive *k;

    if (max < 1) {
        return NULL;
    }
    k = calloc(1, sizeof(*k) + (size_t)max * sizeof(k->conns[0]));
    if (k == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&k->lock, NULL) != 0) {
        free(k);
        return NULL;
    }
    k->max = max;
    return k;
}

void
keepalive_free(struct keepalive *k)
{
    if (k == NULL) {
        return;
    }
    while (k->n > 0) {
        close(k->conns[--k->n].fd);
    }
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* 1 when an idle socket is quiet: nothing to read and not closed. */
static int
quiet(int fd)
{
    char c;
    ssize_t n;

    do {
        n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

int
keepalive_take(struct keepalive *k)
{
    msec_t now = clock_now();

    for (;;) {
        struct idle_conn c;

        pthread_mutex_lock(&k->lock);
        if (k->n == 0) {
            pthread_mutex_unlock(&k->lock);
            return -1;
        }
        c = k->conns[--k->n];
        pthread_mutex_unlock(&k->lock);
        if (now - c.since <= KEEPALIVE_IDLE_MS && quiet(c.fd)) {
            return c.fd;
        }
        close(c.fd);
    }
}

void
keepalive_give(struct keepalive *k, int fd)
{
    msec_t now = clock_now();
    int old = -1;

    pthread_mutex_lock(&k->lock);
    /* the bottom of the stack is reached only after a burst: close it once
     * past the idle limit, so a burst's surplus does not linger */
    if (k->n > 0 && now - k->conns[0].since > KEEPALIVE_IDLE_MS) {
        old = k->conns[0].fd;
        k->n--;
        memmove(&k->conns[0], &k->conns[1], (size_t)k->n * sizeof(k->conns[0]));
    }
    if (k->n < k->max) {
        k->conns[k->n].fd = fd;
        k->conns[k->n].since = now;
        k->n++;
        fd = -1;
    }
    pthread_mutex_unlock(&k->lock);
    if (old >= 0) {
        close(old);
    }
    if (fd >= 0) {
        close(fd);
    }
}
