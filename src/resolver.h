/*
 * resolver.h - the `resolver` setting: DNS through c-ares, using only the
 * configured servers (never /etc/resolv.conf, /etc/hosts or search domains).
 *
 * Two uses, as in NGINX's mail module:
 * - the client's host name (Client-Host, XCLIENT NAME): a PTR lookup of the
 *   client address, then a forward lookup (A or AAAA) of that name that must
 *   contain the address again; only then is the name believed;
 * - an Auth-Server given as a host name (postern extension) when a resolver
 *   is configured (without one, the session uses getaddrinfo).
 *
 * Every call blocks its worker thread until it has an answer or until
 * min(deadline, now + resolver_timeout), whichever is first.  Each call uses
 * its own c-ares channel, so calls from different workers share nothing but
 * the cache below.  Answers are untrusted: a name is returned only when it
 * passes resolver_name_valid().
 *
 * Cache: client-host results (names, and definite failures) are kept
 * process-wide, keyed by the address and the server list, for `valid=`
 * seconds, or for the smallest TTL of the answers when valid is not set
 * (at most RESOLVER_TTL_MAX).  Definite failures (no such name, no
 * confirming address, a bad name or a malformed answer) are kept for
 * valid= seconds, or RESOLVER_NEG_TTL when valid is not set.  Temporary
 * failures (timeouts, SERVFAIL, REFUSED, no server reachable) are never
 * cached.
 */
#ifndef POSTERN_RESOLVER_H
#define POSTERN_RESOLVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "clock.h"
#include "conf.h"

#define RESOLVER_NAME_MAX 253       /* text form, without a trailing dot */
#define RESOLVER_TTL_MAX 86400      /* seconds */
#define RESOLVER_NEG_TTL 10         /* failures, when valid= is unset */
#define RESOLVER_CACHE_SLOTS 1024

/* Return values of resolver_client_host(). */
#define RESOLVER_OK 0
#define RESOLVER_UNAVAILABLE (-1)   /* no such name, mismatch, bad name,
                                     * malformed answer, resolver off:
                                     * NGINX's "[UNAVAILABLE]" */
#define RESOLVER_TEMPUNAVAIL (-2)   /* timeout, server failure, no memory:
                                     * NGINX's "[TEMPUNAVAIL]" */

/*
 * 1 if name[0..len) is a host name in RFC 1034's preferred syntax (as
 * relaxed by RFC 1123: a label may start with a digit): labels of 1..63
 * letters, digits and hyphens, not starting or ending with a hyphen,
 * separated by single dots, at most 253 characters, one trailing dot
 * allowed.  0 otherwise (CR, LF, NUL, spaces, underscores, escapes...).
 */
int resolver_name_valid(const char *name, size_t len);

/*
 * Parse one server of the `resolver` setting: "1.2.3.4", "1.2.3.4:53",
 * "[::1]", "[::1]:5353" or a bare "::1".  Port 53 unless given (1..65535).
 * 0 with *ss filled (port in network order), -1 with a reason in err.
 * Exposed for the configuration loader, which should refuse bad values.
 */
int resolver_parse_server(const char *s, struct sockaddr_storage *ss,
                          char *err, size_t errlen);

/*
 * The client's host name, reverse-resolved and forward-confirmed with the
 * servers of sc->resolver (which must be enabled), bounded by
 * min(deadline, now + sc->resolver_timeout).
 * Returns RESOLVER_OK with *host_r a new heap string (the caller frees it),
 * or RESOLVER_UNAVAILABLE / RESOLVER_TEMPUNAVAIL with *host_r NULL and a
 * reason for the log in err (never containing bytes of a DNS answer).
 * An IPv4-mapped IPv6 address is looked up as IPv4.  Thread-safe.
 */
int resolver_client_host(const struct server_conf *sc,
                         const struct sockaddr *sa, msec_t deadline,
                         char **host_r, char *err, size_t errlen);

/*
 * The addresses of a host name (A if ipv4=on, then AAAA if ipv6=on) with
 * the servers of sc->resolver, bounded like resolver_client_host().  An
 * address literal is returned as is, without a query.  Fills out[0..max)
 * (ports 0: the caller sets them) and *n_r.  Returns 0 with *n_r >= 1, or
 * -1 with a reason in err (not found, invalid name, timeout, ...).
 * Not cached.  Thread-safe.
 */
int resolver_lookup_host(const struct server_conf *sc, const char *name,
                         msec_t deadline, struct sockaddr_storage *out,
                         size_t max, size_t *n_r, char *err, size_t errlen);

/* Empty the cache (tests, and a reload may call it). */
void resolver_cache_flush(void);
/* Cache lookups answered from the cache, and not, since start. */
void resolver_cache_stats(unsigned long *hits_r, unsigned long *misses_r);

#endif
