/*
 * proxy_protocol.h - the PROXY protocol (HAProxy), versions 1 and 2.
 *
 * A load balancer in front of postern may open each connection with a
 * header that names the real client and server addresses.  postern reads it
 * on `listen ... proxy_protocol` ports (from set_real_ip_from senders only:
 * the caller checks that) and writes a v1 header to backends when
 * `proxy_protocol` is on.
 *
 * Contract:
 * - proxy_protocol_parse() is a pure function over a buffer: no I/O, no
 *   allocation, no global state.  It is resumable by being called again
 *   with the same bytes plus more: a header is at most PROXY_MAX_HEADER
 *   bytes and its length is known after the first 16 bytes (v2) or the CRLF
 *   (v1), so nothing needs to be carried between calls.  It decides
 *   "invalid" as soon as the bytes seen cannot start a valid header.
 * - The input is untrusted: every field is checked.  v1 follows the spec
 *   strictly (exactly one space between fields, no leading zeros in ports,
 *   addresses that inet_pton accepts in the family the line names, printable
 *   ASCII only, at most 107 bytes with the CRLF).  v2 checks the signature,
 *   version, command, family, transport, the address block length and the
 *   TLV framing (TLVs themselves are skipped).
 */
#ifndef POSTERN_PROXY_PROTOCOL_H
#define POSTERN_PROXY_PROTOCOL_H

#include <stddef.h>
#include <sys/socket.h>

struct conn;

#define PROXY_V1_MAX 107        /* the spec's bound, CRLF included */
#define PROXY_V2_HDR 16         /* signature, ver/cmd, family, length */
/* Our bound on a v2 header, TLVs included; the spec allows 16 + 65535. */
#define PROXY_V2_MAX 4096
#define PROXY_MAX_HEADER PROXY_V2_MAX

/* Return values of proxy_protocol_parse(). */
enum proxy_rc {
    PROXY_OK = 0,               /* a whole header; h is filled */
    PROXY_AGAIN = 1,            /* valid so far, need more bytes */
    PROXY_INVALID = -1          /* not a valid header; *error_r says why */
};

enum proxy_kind {
    PROXY_ADDR,                 /* src/dst hold the real addresses */
    PROXY_UNKNOWN,              /* v1 UNKNOWN, v2 PROXY with an unspecified
                                 * or unix family: keep the peer's address */
    PROXY_LOCAL                 /* v2 LOCAL (health check): keep the peer's */
};

struct proxy_header {
    int version;                /* 1 or 2 */
    enum proxy_kind kind;
    /* PROXY_ADDR only: AF_INET or AF_INET6, ports in network order */
    struct sockaddr_storage src, dst;
    socklen_t srclen, dstlen;
    size_t len;                 /* bytes of the header: consume this many */
    unsigned ntlv;              /* v2: TLVs seen (and skipped) */
};

/*
 * Parse a PROXY header at the start of p[0..len).  Returns PROXY_OK with *h
 * filled (h->len bytes belong to the header, the rest is the client's),
 * PROXY_AGAIN when more bytes are needed, or PROXY_INVALID with *error_r
 * set to a static text (never containing input bytes).  *h is only
 * meaningful after PROXY_OK.  error_r may be NULL.
 */
int proxy_protocol_parse(const unsigned char *p, size_t len,
                         struct proxy_header *h, const char **error_r);

/*
 * Write a v1 header for a connection from src to dst into out.  Two AF_INET
 * addresses give "TCP4", two AF_INET6 (or one of each: the IPv4 one is
 * written IPv4-mapped) give "TCP6", anything else "PROXY UNKNOWN\r\n".
 * Returns the length written (without the NUL that is added), or -1 when
 * outlen is too small (PROXY_V1_MAX + 1 always suffices).
 */
int proxy_protocol_v1_build(const struct sockaddr *src,
                            const struct sockaddr *dst,
                            char *out, size_t outlen);

/*
 * For the worker: read a header from c's socket until c->deadline, taking
 * exactly the header's bytes; whatever the client sent after it stays in
 * the socket for the protocol (plain or TLS).  Returns 0 with *h filled;
 * or, with a reason for the log in err: -1 for a broken header (invalid,
 * too long); PROXY_READ_CLOSED when the peer closed before sending a byte
 * (a health check's connect, not worth an error); PROXY_READ_FAILED when
 * the header did not come (timed out, closed midway, a read error, a fast
 * stop), which is the client's or the stop's doing, not a broken header.
 */
#define PROXY_READ_CLOSED (-2)
#define PROXY_READ_FAILED (-3)
int proxy_protocol_read(struct conn *c, struct proxy_header *h,
                        char *err, size_t errlen);

/* A header read so far, kept while its session waits without a worker. */
struct proxy_reading {
    unsigned char hdr[PROXY_MAX_HEADER];
    size_t have;
};

/* As proxy_protocol_read(), going on from *r (zeroed before the first
 * call), and PROXY_READ_PARK when the header is not whole and park(arg)
 * says the session should leave its worker (see conn_wait_readable): call
 * again with the same *r when more has come. */
#define PROXY_READ_PARK 1
int proxy_protocol_read_parkable(struct conn *c, struct proxy_header *h,
                                 struct proxy_reading *r,
                                 int (*park)(void *), void *arg,
                                 char *err, size_t errlen);

#endif
