/*
 * proxy_protocol.c - PROXY protocol v1/v2 parser, v1 writer, and the
 * worker's blocking read of a header.
 *
 * Untrusted input: everything parsed here comes from the network before
 * any authentication.  The parser checks every field, copies nothing
 * unbounded, and never puts input bytes into its error texts.  No secrets,
 * no locks: all state lives in the caller's buffers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <poll.h>

#include "buf.h"
#include "conn.h"
#include "log.h"
#include "proxy_protocol.h"

static const unsigned char v2_sig[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

#define V1_PREFIX "PROXY "
#define V1_PREFIX_LEN (sizeof(V1_PREFIX) - 1)

/* v2 fields */
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_AF_UNSPEC 0x0
#define V2_AF_INET 0x1
#define V2_AF_INET6 0x2
#define V2_AF_UNIX 0x3
#define V2_TP_UNSPEC 0x0
#define V2_TP_STREAM 0x1
#define V2_TP_DGRAM 0x2
#define V2_INET_LEN 12          /* 2 * 4 + 2 * 2 */
#define V2_INET6_LEN 36         /* 2 * 16 + 2 * 2 */
#define V2_UNIX_LEN 216         /* 2 * 108 */

/* Set *error_r (if wanted) and return PROXY_INVALID. */
static int
invalid(const char **error_r, const char *why)
{
    if (error_r != NULL) {
        *error_r = why;
    }
    return PROXY_INVALID;
}

/*
 * One v1 token: the bytes from *pos up to the next space or the end of the
 * line.  Empty tokens are refused (two spaces in a row, a trailing space).
 * Returns the token length, 0 when empty; *pos moves past one separator.
 */
static size_t
v1_token(const char *line, size_t linelen, size_t *pos, const char **tok_r)
{
    size_t start = *pos, i = start;

    while (i < linelen && line[i] != ' ') {
        i++;
    }
    *tok_r = line + start;
    *pos = i < linelen ? i + 1 : i;
    return i - start;
}

/* A v1 port: "0" or 1-5 digits without a leading zero, at most 65535. */
static int
v1_port(const char *t, size_t n, uint16_t *port_r)
{
    unsigned long v = 0;
    size_t i;

    if (n == 0 || n > 5 || (t[0] == '0' && n > 1)) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned long)(t[i] - '0');
    }
    if (v > 65535) {
        return -1;
    }
    *port_r = (uint16_t)v;
    return 0;
}

/*
 * A v1 address of the given family into ss (port left 0).  inet_pton does
 * the real work; for IPv4 we also refuse leading zeros explicitly, because
 * some libcs read them as octal and the spec forbids them.
 */
static int
v1_addr(const char *t, size_t n, int family, struct sockaddr_storage *ss,
        socklen_t *len_r)
{
    char text[INET6_ADDRSTRLEN];
    size_t i;

    if (n == 0 || n >= sizeof(text)) {
        return -1;
    }
    memcpy(text, t, n);
    text[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        for (i = 0; i < n; i++) {
            int starts = i == 0 || text[i - 1] == '.';

            if (starts && text[i] == '0' && i + 1 < n && text[i + 1] != '.') {
                return -1;
            }
        }
        if (inet_pton(AF_INET, text, &sin->sin_addr) != 1) {
            return -1;
        }
        sin->sin_family = AF_INET;
        *len_r = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1) {
            return -1;
        }
        sin6->sin6_family = AF_INET6;
        *len_r = sizeof(*sin6);
    }
    return 0;
}

/* Put a port (host order) into an AF_INET / AF_INET6 sockaddr. */
static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    }
}

/* The fields of a complete v1 line (without "PROXY " and the CRLF). */
static int
v1_fields(const char *line, size_t linelen, struct proxy_header *h,
          const char **error_r)
{
    const char *t;
    size_t n, pos = 0;
    int family;
    uint16_t sport, dport;

    n = v1_token(line, linelen, &pos, &t);
    if (n == 7 && memcmp(t, "UNKNOWN", 7) == 0) {
        /* the spec: whatever follows UNKNOWN is ignored */
        h->kind = PROXY_UNKNOWN;
        return PROXY_OK;
    }
    if (n == 4 && memcmp(t, "TCP4", 4) == 0) {
        family = AF_INET;
    } else if (n == 4 && memcmp(t, "TCP6", 4) == 0) {
        family = AF_INET6;
    } else {
        return invalid(error_r, "v1: unknown protocol (not TCP4, TCP6 or "
                       "UNKNOWN)");
    }

    n = v1_token(line, linelen, &pos, &t);
    if (v1_addr(t, n, family, &h->src, &h->srclen) != 0) {
        return invalid(error_r, "v1: bad source address");
    }
    n = v1_token(line, linelen, &pos, &t);
    if (v1_addr(t, n, family, &h->dst, &h->dstlen) != 0) {
        return invalid(error_r, "v1: bad destination address");
    }
    n = v1_token(line, linelen, &pos, &t);
    if (v1_port(t, n, &sport) != 0) {
        return invalid(error_r, "v1: bad source port");
    }
    /* the last field must end the line exactly: no trailing space */
    if (pos >= linelen || line[linelen - 1] == ' ') {
        return invalid(error_r, "v1: missing or empty destination port");
    }
    n = v1_token(line, linelen, &pos, &t);
    if (pos != linelen) {
        return invalid(error_r, "v1: extra fields after destination port");
    }
    if (v1_port(t, n, &dport) != 0) {
        return invalid(error_r, "v1: bad destination port");
    }
    set_port(&h->src, sport);
    set_port(&h->dst, dport);
    h->kind = PROXY_ADDR;
    return PROXY_OK;
}

/* v1: "PROXY " ... CRLF within 107 bytes, printable ASCII in between. */
static int
parse_v1(const unsigned char *p, size_t len, struct proxy_header *h,
         const char **error_r)
{
    char line[PROXY_V1_MAX];
    size_t i, n, lim;

    n = len < V1_PREFIX_LEN ? len : V1_PREFIX_LEN;
    if (memcmp(p, V1_PREFIX, n) != 0) {
        return invalid(error_r, "not a PROXY protocol header");
    }
    if (len <= V1_PREFIX_LEN) {
        return PROXY_AGAIN;
    }
    /* the CR may stand at most at index 105, its LF at 106 */
    lim = len < PROXY_V1_MAX - 1 ? len : PROXY_V1_MAX - 1;
    for (i = V1_PREFIX_LEN; i < lim; i++) {
        if (p[i] == '\r') {
            break;
        }
        if (p[i] < 0x20 || p[i] > 0x7e) {
            return invalid(error_r, "v1: control or non-ASCII byte");
        }
    }
    if (i == lim) {
        if (len >= PROXY_V1_MAX - 1) {
            return invalid(error_r, "v1: no CRLF within 107 bytes");
        }
        return PROXY_AGAIN;
    }
    if (i + 1 == len) {
        return PROXY_AGAIN;
    }
    if (p[i + 1] != '\n') {
        return invalid(error_r, "v1: CR not followed by LF");
    }

    memset(h, 0, sizeof(*h));
    h->version = 1;
    h->len = i + 2;
    memcpy(line, p + V1_PREFIX_LEN, i - V1_PREFIX_LEN);
    return v1_fields(line, i - V1_PREFIX_LEN, h, error_r);
}

/* Walk the TLVs of p[0..n): each must fit exactly; they are not used. */
static int
v2_tlvs(const unsigned char *p, size_t n, struct proxy_header *h,
        const char **error_r)
{
    size_t off = 0, vlen;

    while (off < n) {
        if (n - off < 3) {
            return invalid(error_r, "v2: truncated TLV header");
        }
        vlen = (size_t)p[off + 1] << 8 | p[off + 2];
        if (vlen > n - off - 3) {
            return invalid(error_r, "v2: TLV longer than the header");
        }
        off += 3 + vlen;
        h->ntlv++;
    }
    return PROXY_OK;
}

/* v2: binary signature, 4 fixed bytes, then an address block and TLVs. */
static int
parse_v2(const unsigned char *p, size_t len, struct proxy_header *h,
         const char **error_r)
{
    size_t n, plen, alen;
    unsigned cmd, fam, tp;
    const unsigned char *a;

    n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(p, v2_sig, n) != 0) {
        return invalid(error_r, "not a PROXY protocol header");
    }
    /* judge each fixed byte as soon as it arrives */
    if (len > 12) {
        if ((p[12] >> 4) != 2) {
            return invalid(error_r, "v2: unsupported version");
        }
        cmd = p[12] & 0x0f;
        if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY) {
            return invalid(error_r, "v2: unknown command");
        }
    }
    if (len > 13) {
        fam = p[13] >> 4;
        tp = p[13] & 0x0f;
        if (fam > V2_AF_UNIX || tp > V2_TP_DGRAM) {
            return invalid(error_r, "v2: unknown address family or "
                           "transport");
        }
    }
    if (len < PROXY_V2_HDR) {
        return PROXY_AGAIN;
    }
    plen = (size_t)p[14] << 8 | p[15];
    if (plen > PROXY_V2_MAX - PROXY_V2_HDR) {
        return invalid(error_r, "v2: header longer than 4096 bytes");
    }
    cmd = p[12] & 0x0f;
    fam = p[13] >> 4;
    tp = p[13] & 0x0f;
    if (cmd == V2_CMD_PROXY && tp == V2_TP_DGRAM) {
        return invalid(error_r, "v2: datagram transport on a stream");
    }
    alen = fam == V2_AF_INET ? V2_INET_LEN
         : fam == V2_AF_INET6 ? V2_INET6_LEN
         : fam == V2_AF_UNIX ? V2_UNIX_LEN : 0;
    if (cmd == V2_CMD_PROXY && plen < alen) {
        return invalid(error_r, "v2: address block shorter than its "
                       "family needs");
    }
    if (len < PROXY_V2_HDR + plen) {
        return PROXY_AGAIN;
    }

    memset(h, 0, sizeof(*h));
    h->version = 2;
    h->len = PROXY_V2_HDR + plen;
    a = p + PROXY_V2_HDR;

    if (cmd == V2_CMD_LOCAL) {
        /* the spec: the receiver ignores whatever a LOCAL header carries */
        h->kind = PROXY_LOCAL;
        return PROXY_OK;
    }
    if (fam == V2_AF_UNSPEC || tp == V2_TP_UNSPEC) {
        /* nothing we can interpret follows: keep the peer's address */
        h->kind = PROXY_UNKNOWN;
        return PROXY_OK;
    }
    if (fam == V2_AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;

        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        h->srclen = h->dstlen = sizeof(struct sockaddr_in);
        h->kind = PROXY_ADDR;
    } else if (fam == V2_AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;

        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        h->srclen = h->dstlen = sizeof(struct sockaddr_in6);
        h->kind = PROXY_ADDR;
    } else {
        /* a unix socket path says nothing about the client's address */
        h->kind = PROXY_UNKNOWN;
    }
    return v2_tlvs(a + alen, plen - alen, h, error_r);
}

/* Dispatch on the first byte: 'P' starts v1, CR starts the v2 signature. */
int
proxy_protocol_parse(const unsigned char *p, size_t len,
                     struct proxy_header *h, const char **error_r)
{
    if (len == 0) {
        return PROXY_AGAIN;
    }
    if (p[0] == 'P') {
        return parse_v1(p, len, h, error_r);
    }
    if (p[0] == v2_sig[0]) {
        return parse_v2(p, len, h, error_r);
    }
    return invalid(error_r, "not a PROXY protocol header");
}

/* Copy an AF_INET address into an IPv4-mapped AF_INET6 one. */
static void
map_v4(const struct sockaddr *sa, struct sockaddr_in6 *out)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

    memset(out, 0, sizeof(*out));
    out->sin6_family = AF_INET6;
    out->sin6_port = sin->sin_port;
    out->sin6_addr.s6_addr[10] = 0xff;
    out->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&out->sin6_addr.s6_addr[12], &sin->sin_addr, 4);
}

/* The v1 line we send to backends when `proxy_protocol` is on. */
int
proxy_protocol_v1_build(const struct sockaddr *src,
                        const struct sockaddr *dst, char *out, size_t outlen)
{
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    struct sockaddr_in6 s6, d6;
    int fs, fd, n;

    fs = src != NULL ? src->sa_family : AF_UNSPEC;
    fd = dst != NULL ? dst->sa_family : AF_UNSPEC;
    if ((fs != AF_INET && fs != AF_INET6)
        || (fd != AF_INET && fd != AF_INET6))
    {
        n = snprintf(out, outlen, "PROXY UNKNOWN\r\n");
    } else if (fs == AF_INET && fd == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)src;
        const struct sockaddr_in *b = (const struct sockaddr_in *)dst;

        if (inet_ntop(AF_INET, &a->sin_addr, s, sizeof(s)) == NULL
            || inet_ntop(AF_INET, &b->sin_addr, d, sizeof(d)) == NULL)
        {
            return -1;
        }
        n = snprintf(out, outlen, "PROXY TCP4 %s %s %u %u\r\n", s, d,
                     ntohs(a->sin_port), ntohs(b->sin_port));
    } else {
        /* mixed families: the IPv4 side is written IPv4-mapped */
        if (fs == AF_INET) {
            map_v4(src, &s6);
        } else {
            memcpy(&s6, src, sizeof(s6));
        }
        if (fd == AF_INET) {
            map_v4(dst, &d6);
        } else {
            memcpy(&d6, dst, sizeof(d6));
        }
        if (inet_ntop(AF_INET6, &s6.sin6_addr, s, sizeof(s)) == NULL
            || inet_ntop(AF_INET6, &d6.sin6_addr, d, sizeof(d)) == NULL)
        {
            return -1;
        }
        n = snprintf(out, outlen, "PROXY TCP6 %s %s %u %u\r\n", s, d,
                     ntohs(s6.sin6_port), ntohs(d6.sin6_port));
    }
    if (n < 0 || (size_t)n >= outlen) {
        return -1;
    }
    return n;
}

/*
 * Read exactly the header's bytes from the socket: peek at what has
 * arrived, and take only bytes that belong to the header.  What follows
 * it (a TLS ClientHello, a pipelined command) stays in the socket for
 * whoever reads next, plain or GnuTLS; c->in is not used.  While the
 * header is incomplete every byte that arrived is part of it, so those are
 * taken and the wait for more is a conn_poll() bounded by c->deadline.
 */
#define STOPPED "reading the PROXY protocol header stopped: server is " \
                "shutting down"

int
proxy_protocol_read(struct conn *c, struct proxy_header *h,
                    char *err, size_t errlen)
{
    struct proxy_reading r = { .have = 0 };

    return proxy_protocol_read_parkable(c, h, &r, NULL, NULL, err, errlen);
}

/* See proxy_protocol.h. */
int
proxy_protocol_read_parkable(struct conn *c, struct proxy_header *h,
                             struct proxy_reading *r, int (*park)(void *),
                             void *arg, char *err, size_t errlen)
{
    unsigned char *hdr = r->hdr;
    const char *why = "";

    for (;;) {
        size_t have = r->have;
        ssize_t n = recv(c->fd, hdr + have, sizeof(r->hdr) - have, MSG_PEEK);
        int rc;

        if ((n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK
                        && errno != EINTR)) && conn_stopping()) {
            /* the end was the fast stop's shutdown of the socket */
            snprintf(err, errlen, STOPPED);
            return PROXY_READ_FAILED;
        }
        if (n == 0) {
            snprintf(err, errlen, "client closed the connection %s the "
                     "PROXY protocol header", have == 0 ? "before" : "while "
                     "sending");
            return have == 0 ? PROXY_READ_CLOSED : PROXY_READ_FAILED;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            snprintf(err, errlen, "reading the PROXY protocol header "
                     "failed: %s", strerror(errno));
            return PROXY_READ_FAILED;
        }
        if (n > 0) {
            rc = proxy_protocol_parse(hdr, have + (size_t)n, h, &why);
            if (rc == PROXY_INVALID) {
                snprintf(err, errlen, "invalid PROXY protocol header: %s", why);
                return -1;
            }
            /* take the header's bytes, or all that came while incomplete */
            size_t take = rc == PROXY_OK ? h->len - have : (size_t)n;
            if (recv(c->fd, hdr + have, take, 0) != (ssize_t)take) {
                snprintf(err, errlen, "reading the PROXY protocol header "
                         "failed: %s", strerror(errno));
                return -1;
            }
            have += take;
            r->have = have;
            if (rc == PROXY_OK) {
                return 0;
            }
            if (have == sizeof(r->hdr)) {
                snprintf(err, errlen, "PROXY protocol header longer than "
                         "%zu bytes", sizeof(r->hdr));
                return -1;
            }
        }
        rc = conn_wait_readable(c, park, arg);
        if (rc == CONN_PARK) {
            return PROXY_READ_PARK;
        }
        if (rc == 0) {
            /* NGINX's words; the caller's action says "while reading
             * PROXY protocol" */
            snprintf(err, errlen, "client " LOG_TIMED_OUT);
            return PROXY_READ_FAILED;
        }
        if (rc < 0 && errno == ECANCELED) {
            snprintf(err, errlen, STOPPED);
            return PROXY_READ_FAILED;
        }
        if (rc < 0) {
            snprintf(err, errlen, "reading the PROXY protocol header "
                     "failed: %s", strerror(errno));
            return PROXY_READ_FAILED;
        }
    }
}
