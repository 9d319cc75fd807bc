/*
 * relay.h - the relay threads: poll() over established (client, backend)
 * pairs, one proxy_buffer per direction, back-pressure, half-close and
 * proxy_timeout.  Pairs arrive from workers through relay_add().
 */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

#include <stddef.h>

struct session;

/* Start n relay threads.  0 / -1. */
int relay_start(int n);
/* Ask every relay thread to end each pair and exit, then join them. */
void relay_stop(void);
/* Pairs being relayed right now (all threads). */
size_t relay_count(void);
struct conf;
/* Pairs that began under a configuration loaded before `keep` (every pair
 * when keep is NULL) end at deadline_ms (monotonic): shutdown_timeout
 * after a reload or at a graceful stop.  Pairs of `keep` and of any later
 * configuration are not touched, whether or not that one sets a deadline. */
void relay_set_deadline(const struct conf *keep, long long deadline_ms);

/*
 * Move the session's client and backend connections (with any bytes still
 * buffered in their input buffers) into a relay thread.  On success the
 * session's conns are emptied (fd -1) and the relay owns them, with a
 * reference to s->conf.  0 / -1 (the caller still owns everything).
 */
int relay_add(struct session *s);

#endif
