/*
 * keepalive.h - idle connections to one peer kept for reuse: a bounded,
 * locked stack of sockets (the auth_http service's, auth_http_keepalive).
 *
 * A worker takes the most recently used idle socket, or none, and gives a
 * socket back once a request on it has ended cleanly.  A socket that the
 * peer has closed (or sent unasked-for bytes on) while idle, or that has
 * been idle longer than KEEPALIVE_IDLE_MS, is closed at take time instead
 * of being handed out.  The peer may still close a socket just after it
 * was taken: the caller retries a request that got no answer byte on a
 * reused socket once, on a new connection.
 */
#ifndef POSTERN_KEEPALIVE_H
#define POSTERN_KEEPALIVE_H

/* NGINX's upstream keepalive_timeout default; auth services keep idle
 * connections for about this long (NGINX's own http: 75 s). */
#define KEEPALIVE_IDLE_MS 60000

struct keepalive;

/* A stack for at most max idle sockets (max >= 1); NULL when out of memory. */
struct keepalive *keepalive_new(int max);

/* Close every idle socket and free the stack; NULL is a no-op. */
void keepalive_free(struct keepalive *k);

/* An idle socket still open at the peer, or -1 when there is none. */
int keepalive_take(struct keepalive *k);

/* Keep fd for reuse, or close it when the stack is full. */
void keepalive_give(struct keepalive *k, int fd);

#endif
