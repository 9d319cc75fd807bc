/*
 * session.c - one client session in a worker thread: a straight line of
 * phases from the first byte to the hand-off to the relay.
 *
 *   PROXY header -> access -> TLS -> greeting -> dialogue -> auth ->
 *   backend connect -> backend login -> relay
 *
 * The session lives on the heap.  When its client is silent in its PROXY
 * header, a TLS handshake (an ssl listener's, STARTTLS's) or the dialogue
 * (between commands, in the middle of one, before a SASL answer) while
 * other clients wait for a worker, or when a refused login sits out its
 * Auth-Wait, the session parks in the acceptor (session_park.c), and
 * the worker that takes it back goes on from s->phase (session_run ->
 * session_continue).
 *
 * Handles untrusted input (through the protocol modules) and secrets (the
 * credentials of the current attempt, wiped as soon as an attempt ends).
 * Takes no locks itself; the conf is shared read-only by reference.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "proxy_protocol.h"
#include "relay.h"
#include "resolver.h"
#include "sasl.h"
#include "session.h"
#include "session_int.h"
#include "stamp.h"
#include "tls.h"

/* Bytes for the POP3 client buffer: RFC 2449 bounds a command to 255 octets
 * of argument, an AUTH response line can be longer. */
#define POP3_CLIENT_BUFFER 4096
/* Bound for backend reply lines (greetings, capability lists). */
#define BACKEND_BUFFER_MIN 4096

/* "ip:port", or "[ip]:port" for an IPv6 address, into out. */
static const char *
host_port(char *out, size_t outlen, const char *ip, const char *port)
{
    if (strchr(ip, ':') != NULL) {
        snprintf(out, outlen, "[%s]:%s", ip, port);
    } else {
        snprintf(out, outlen, "%s:%s", ip, port);
    }
    return out;
}

size_t
session_context(const struct session *s, char *out, size_t outlen)
{
    char server[ADDR_TEXT_MAX + 16];
    size_t n = 0;

    /* as NGINX's mail log handler; a field that does not fit is cut */
    n += (size_t)snprintf(out, outlen, ", client: %s%s, server: %s",
                          s->client_ip, s->starttls ? " using starttls" : "",
                          host_port(server, sizeof(server), s->server_ip,
                                    s->server_port));
    if (n < outlen && s->login.len > 0) {
        int l = s->login.len > 256 ? 256 : (int)s->login.len;

        n += (size_t)snprintf(out + n, outlen - n, ", login: \"%.*s\"", l,
                              (const char *)s->login.data);
    }
    if (n < outlen && s->upstream[0] != '\0') {
        n += (size_t)snprintf(out + n, outlen - n, ", upstream: %s",
                              s->upstream);
    }
    return n < outlen ? n : outlen - 1;
}

/* Log with NGINX's context suffix. */
void
session_log(const struct session *s, enum log_level lv, const char *fmt, ...)
{
    char msg[1024], ctx[768];
    size_t n = 0;
    va_list ap;
    const struct log *lg = s->sc != NULL ? s->sc->error_log
                           : s->conf != NULL ? s->conf->error_log : NULL;

    if ((int)lv > log_max_level(lg)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (s->action != NULL) {
        n = (size_t)snprintf(ctx, sizeof(ctx), " while %s", s->action);
    }
    if (n < sizeof(ctx)) {
        session_context(s, ctx + n, sizeof(ctx) - n);
    }
    log_write(lg, lv, s->id, "%s%s", msg, ctx);
}

void
session_log_client_gone(struct session *s, ssize_t n, int error)
{
    if (n == 0) {
        session_log(s, LOG_LV_INFO, "client closed connection");
    } else {
        session_log_io_failed(s, &s->client, error, 0);
    }
}

/* See session.h. */
void
session_log_io_failed(struct session *s, const struct conn *c, int error,
                      int writing)
{
    int client = c == &s->client;
    const char *side = client ? "client" : "upstream";
    enum log_level lv = client ? LOG_LV_INFO : LOG_LV_ERR;

    if (error == ETIMEDOUT) {
        session_log(s, LOG_LV_INFO, "%s " LOG_TIMED_OUT, side);
    } else if (c->tls != NULL || error == ECANCELED) {
        /* GnuTLS's reason, or the stop's */
        session_log(s, lv, "%s %s failed: %s", side, writing ? "write" : "read",
                    conn_strerror(c, error));
    } else {
        session_log(s, lv, "%s() failed (%d: %s)", writing ? "send" : "recv",
                    error, strerror(error));
    }
}

/* Count a protocol error against max_errors. */
int
session_error(struct session *s)
{
    s->errors++;
    if (s->errors >= s->sc->max_errors) {
        session_log(s, LOG_LV_INFO, "client sent too many invalid commands");
        return 1;
    }
    return 0;
}

/* A fresh challenge for CRAM-MD5 (stamp.h). */
int
session_make_salt(struct session *s)
{
    struct stamp st;
    char salt[STAMP_MAX];
    size_t n;

    if (stamp_make(&st) != 0) {
        return -1;
    }
    n = stamp_format(&st, s->sc->server_name, salt, sizeof(salt));
    if (n == 0) {
        return -1;
    }
    return str_set(&s->salt, (struct str){ n, (unsigned char *)salt });
}

/* Write to the client. */
int
session_send(struct session *s, const char *data, size_t len)
{
    if (conn_write_all(&s->client, data, len) != 0) {
        session_log_io_failed(s, &s->client, errno, 1);
        return -1;
    }
    return 0;
}

/* Formatted write to the client. */
int
session_sendf(struct session *s, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        session_log(s, LOG_LV_ERR, "reply too long");
        return -1;
    }
    return session_send(s, line, (size_t)n);
}

/*
 * After tls_accept() refused the client (EACCES: no certificate, EPERM: a
 * certificate that failed verification), tell the
 * client over TLS with the protocol's reply, as NGINX does (its no_cert and
 * cert_error texts), before the session closes.
 */
static void
cert_refused_reply(struct session *s, int error)
{
    static const char *const no_cert[] = {
        [PROTO_IMAP] = "* BYE No required SSL certificate\r\n",
        [PROTO_POP3] = "-ERR No required SSL certificate\r\n",
        [PROTO_SMTP] = "421 4.7.1 No required SSL certificate\r\n",
    };
    static const char *const cert_error[] = {
        [PROTO_IMAP] = "* BYE SSL certificate error\r\n",
        [PROTO_POP3] = "-ERR SSL certificate error\r\n",
        [PROTO_SMTP] = "421 4.7.1 SSL certificate error\r\n",
    };
    const char *line;

    if ((error != EACCES && error != EPERM) || s->client.tls == NULL) {
        return;
    }
    line = error == EACCES ? no_cert[s->sc->protocol]
                           : cert_error[s->sc->protocol];
    (void)session_send(s, line, strlen(line));
}

/* STARTTLS: discard pipelined plaintext, then handshake. */
int
session_starttls(struct session *s)
{
    char err[256];

    if (s->client.hs == NULL) {
        conn_discard_input(&s->client);
    }
    s->action = "in starttls state";            /* as NGINX */
    switch (tls_accept_parkable(&s->client, s->sc, session_others_wait,
                                NULL, err, sizeof(err))) {
    case 0:
        break;
    case 1:
        return 1;                       /* parked: s->client.hs keeps it */
    default: {
        int error = errno;

        session_log(s, LOG_LV_INFO, "%s", err);
        cert_refused_reply(s, error);
        return -1;
    }
    }
    s->action = "in auth state";
    s->tls = 1;
    s->starttls = 1;
    /* nothing of before TLS counts after it */
    s->attempts = 0;
    s->errors = 0;
    return 0;
}

/* The client's buffer size: bounds one command. */
static size_t
client_buffer_size(const struct server_conf *sc)
{
    switch (sc->protocol) {
    case PROTO_IMAP:
        return sc->imap_client_buffer;
    case PROTO_SMTP:
        return sc->smtp_client_buffer;
    default:
        return POP3_CLIENT_BUFFER;
    }
}

/* Address and port of a sockaddr as two texts (port empty for unix). */
static void
session_addr_text(const struct sockaddr_storage *ss, socklen_t len,
                  char *addr, size_t addrlen, char *port, size_t portlen)
{
    net_addr_text((const struct sockaddr *)ss, len, addr, addrlen, 0);
    port[0] = '\0';
    if (ss->ss_family == AF_INET) {
        snprintf(port, portlen, "%u",
                 ntohs(((const struct sockaddr_in *)ss)->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        snprintf(port, portlen, "%u",
                 ntohs(((const struct sockaddr_in6 *)ss)->sin6_port));
    }
}

/* The header's addresses: the Proxy-Protocol-* facts always, the client's
 * address only when the sender is trusted. */
static void
apply_header(struct session *s, const struct sockaddr_storage *src,
             socklen_t srclen, const struct sockaddr_storage *dst,
             socklen_t dstlen, int trusted)
{
    char addr[ADDR_TEXT_MAX], port[8], daddr[ADDR_TEXT_MAX], dport[8];

    /* as NGINX: the Proxy-Protocol-* auth headers say what the header
     * claimed, trusted or not; only Client-IP and the rest depend on
     * set_real_ip_from */
    session_addr_text(src, srclen, addr, sizeof(addr), port, sizeof(port));
    session_addr_text(dst, dstlen, daddr, sizeof(daddr), dport, sizeof(dport));
    s->pp_addr = strdup(addr);
    s->pp_port = strdup(port);
    s->pp_server_addr = strdup(daddr);
    s->pp_server_port = strdup(dport);
    if (trusted) {
        memcpy(&s->peer, src, sizeof(*src));
        s->peerlen = srclen;
        str_lcpy(s->client_ip, addr, sizeof(s->client_ip));
        str_lcpy(s->client_port, port, sizeof(s->client_port));
        /* the connect line named the balancer, as NGINX's does; NGINX
         * gives the header's addresses at debug, postern at info, so that
         * the real client's port is in the log */
        log_write(s->sc->error_log, LOG_LV_INFO, s->id,
                  "PROXY protocol src: %s %s, dst: %s %s", addr, port, daddr,
                  dport);
    }
}

/* What a session that must wait again keeps: the header's addresses.
 * NULL when out of memory (the session then ends). */
static struct pool_resume *
make_resume(const struct proxy_header *h)
{
    struct pool_resume *r = malloc(sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->src = h->src;
    r->srclen = h->srclen;
    r->dst = h->dst;
    r->dstlen = h->dstlen;
    return r;
}

/*
 * Read a PROXY protocol header when the listener expects one.  0 go on,
 * -1 end the session, 1 wait again in the queue (*requeue_r is set): the
 * real client's address already has its share of the workers; 2 the
 * header stopped halfway while others wait for a worker: park (what came
 * of it stays in s->pp_reading).
 */
static int
phase_proxy_header(struct session *s, struct pool_resume **requeue_r)
{
    struct proxy_header h;
    char err[256];
    int trusted;

    if (!s->lc->proxy_protocol) {
        return 0;
    }
    s->action = "reading PROXY protocol";
    if (s->pp_reading == NULL) {
        s->pp_reading = calloc(1, sizeof(*s->pp_reading));
        if (s->pp_reading == NULL) {
            session_log(s, LOG_LV_ERR, "out of memory");
            return -1;
        }
    }
    switch (proxy_protocol_read_parkable(&s->client, &h, s->pp_reading,
                                         session_others_wait, NULL, err,
                                         sizeof(err))) {
    case 0:
        break;
    case PROXY_READ_PARK:
        return 2;                       /* s->pp_reading keeps it */
    case PROXY_READ_CLOSED:
    case PROXY_READ_FAILED:
        /* the client's (or the stop's) doing, as NGINX logs it */
        session_log(s, LOG_LV_INFO, "%s", err);
        return -1;
    default:
        session_log(s, LOG_LV_ERR, "broken header: %s", err);
        return -1;
    }
    s->action = NULL;
    free(s->pp_reading);
    s->pp_reading = NULL;
    if (h.kind != PROXY_ADDR) {
        return 0;
    }
    trusted = addr_rules_match(&s->sc->set_real_ip_from,
                               (const struct sockaddr *)&s->peer, NULL);
    if (!trusted) {
        /* a header from an untrusted source does not change the address */
        apply_header(s, &h.src, h.srclen, &h.dst, h.dstlen, 0);
        session_log(s, LOG_LV_INFO,
                    "PROXY protocol header from untrusted source ignored");
        return 0;
    }
    if (pool_claim_share(s->sc, &h.src) != 0) {
        *requeue_r = make_resume(&h);
        return *requeue_r != NULL ? 1 : -1;
    }
    apply_header(s, &h.src, h.srclen, &h.dst, h.dstlen, 1);
    return 0;
}

/* allow/deny rules, before anything is sent. */
static int
phase_access(struct session *s)
{
    int allow = 1;

    if (s->sc->access.n == 0) {
        return 0;
    }
    if (addr_rules_match(&s->sc->access, (const struct sockaddr *)&s->peer, &allow)
        && !allow) {
        session_log(s, LOG_LV_ERR, "access forbidden by rule");
        return -1;
    }
    return 0;
}

/* Implicit TLS for `listen ... ssl` and `ssl = on`: 0 done (or none),
 * -1 failed (logged, answered), 1 waiting for the client while others
 * wait for a worker: park (the handshake stays in s->client.hs). */
static int
phase_tls(struct session *s)
{
    char err[256];

    if (!s->lc->ssl && !s->sc->ssl) {
        return 0;
    }
    s->action = "SSL handshaking";
    switch (tls_accept_parkable(&s->client, s->sc, session_others_wait,
                                NULL, err, sizeof(err))) {
    case 0:
        break;
    case 1:
        return 1;                       /* parked: c->hs keeps it */
    default: {
        int error = errno;

        session_log(s, LOG_LV_INFO, "%s", err);
        cert_refused_reply(s, error);
        return -1;
    }
    }
    s->tls = 1;
    return 0;
}

/*
 * Look up the client's host name and remember what came of it.  As NGINX's
 * SMTP module: without a resolver SMTP says "[UNAVAILABLE]" (and IMAP and
 * POP3 send nothing), a UNIX-socket client is "[TEMPUNAVAIL]", and a failed
 * lookup keeps its kind, so that a timeout is not taken for "no such name"
 * (Postfix rejects an unknown name for good, and defers a temporary one).
 */
static void
look_up_client_host(struct session *s)
{
    const char *action = s->action;
    char err[256];
    int rc;

    if (!s->sc->resolver.enabled) {
        s->client_host_state = s->sc->protocol == PROTO_SMTP
                               ? CLIENT_HOST_UNAVAILABLE : CLIENT_HOST_NONE;
        return;
    }
    if (s->peer.ss_family == AF_UNIX) {
        s->client_host_state = CLIENT_HOST_TEMPUNAVAIL;
        return;
    }
    s->action = "in resolving client address";
    rc = resolver_client_host(s->sc, (const struct sockaddr *)&s->peer,
                              s->client.deadline, &s->client_host,
                              err, sizeof(err));
    if (rc == RESOLVER_OK) {
        s->client_host_state = CLIENT_HOST_NAME;
    } else {
        session_log(s, LOG_LV_INFO, "client host not resolved: %s", err);
        s->client_host_state = rc == RESOLVER_UNAVAILABLE
                               ? CLIENT_HOST_UNAVAILABLE
                               : CLIENT_HOST_TEMPUNAVAIL;
    }
    s->action = action;
}

/* Client-Host / XCLIENT NAME, looked up once (see session.h). */
const char *
session_client_host(struct session *s)
{
    if (s->client_host_state == CLIENT_HOST_UNKNOWN) {
        look_up_client_host(s);
    }
    switch (s->client_host_state) {
    case CLIENT_HOST_NAME:
        return s->client_host;
    case CLIENT_HOST_UNAVAILABLE:
        return "[UNAVAILABLE]";
    case CLIENT_HOST_TEMPUNAVAIL:
        return "[TEMPUNAVAIL]";
    case CLIENT_HOST_UNKNOWN:
    case CLIENT_HOST_NONE:
        break;
    }
    return NULL;
}

/* Ask the auth service about the current credentials. */
static void
ask_auth(struct session *s, struct auth_request *rq, struct tls_info *ti)
{
    memset(rq, 0, sizeof(*rq));
    rq->method = s->method;
    rq->user = s->login;
    rq->pass = s->passwd;
    rq->salt = s->salt;
    rq->protocol = s->sc->protocol;
    rq->attempt = s->attempts;
    rq->client_ip = s->client_ip;
    /* only the HTTP service is told the name: auth_file has no use for it,
     * so no lookup is made for it */
    rq->client_host = s->sc->auth_http != NULL ? session_client_host(s)
                                               : NULL;
    rq->server_ip = s->server_ip;
    rq->smtp_helo = s->smtp_helo;
    rq->smtp_from = s->smtp_from;
    rq->smtp_to = s->smtp_to;
    rq->pp_addr = s->pp_addr;
    rq->pp_port = s->pp_port;
    rq->pp_server_addr = s->pp_server_addr;
    rq->pp_server_port = s->pp_server_port;
    rq->deadline = s->client.deadline;
    if (s->tls && tls_get_info(&s->client, ti) == 0) {
        rq->ssl = 1;
        rq->ssl_protocol = ti->protocol;
        rq->ssl_cipher = ti->cipher;
        rq->ssl_verify = ti->verify;
        rq->ssl_subject = ti->subject;
        rq->ssl_issuer = ti->issuer;
        rq->ssl_serial = ti->serial;
        rq->ssl_fingerprint = ti->fingerprint;
        rq->ssl_cert = s->sc->auth_http_pass_client_cert ? ti->cert_pem : NULL;
    }
    s->action = "in http auth state";
    auth_result_free(&s->auth);
    auth_query(s->sc, rq, &s->auth);
}

/*
 * Auth-Wait, bounded by the session's deadline.  In a worker that may
 * let its session go, the session waits in the acceptor instead
 * (s->park_until; 1: park now), as a refused client's wait needs no
 * worker.  Otherwise sleep here (0); a fast stop ends the sleep
 * (conn_poll's cancel descriptor).
 */
static int
auth_wait(struct session *s, int seconds)
{
    /* + 1: the clock's milliseconds are cut (see acceptor.c's greet_at) */
    msec_t until = clock_now() + (msec_t)seconds * 1000 + 1;

    if (until > s->client.deadline) {
        until = s->client.deadline;
    }
    if (session_may_park()) {
        s->park_until = until;
        return 1;
    }
    (void)conn_poll(-1, 0, until, NULL);
    return 0;
}

/* After a refused login (and its Auth-Wait): the client's answer.
 * SESS_OK: it may try again; SESS_CLOSE otherwise. */
static enum sess_rc
login_refused(struct session *s, const struct proto_ops *ops)
{
    enum sess_rc rc;

    s->action = "in auth state";
    rc = ops->auth_error(s, &s->auth);
    session_clear_creds(s);
    /* as NGINX: only a refusal with Auth-Wait lets the client try again;
     * without it (or with 0), or after a temporary failure, the
     * connection ends once the reply is sent */
    if (rc != SESS_OK || s->auth.status != AUTH_FAIL || s->auth.wait <= 0) {
        return SESS_CLOSE;
    }
    return SESS_OK;
}

/*
 * The dialogue and auth loop: SESS_OK with s->auth naming the backend,
 * SESS_CLOSE (every reply already sent), or SESS_PARK (the dialogue waits
 * for its client, or the refused client its Auth-Wait, without the
 * worker; called again to go on).
 */
static enum sess_rc
phase_login(struct session *s, const struct proto_ops *ops)
{
    struct auth_request rq;
    struct tls_info ti;
    enum sess_rc rc;

    if (s->client.hs != NULL) {
        /* back from a park in the middle of STARTTLS's handshake (the
         * protocol reset its dialogue before the handshake began) */
        switch (session_starttls(s)) {
        case 0:
            break;
        case 1:
            return SESS_PARK;
        default:
            return SESS_CLOSE;
        }
    }
    if (s->park_until != 0) {
        /* back from its Auth-Wait; early only when a stop gave it back,
         * which then sleeps here what is left */
        msec_t until = s->park_until;

        s->park_until = 0;
        (void)conn_poll(-1, 0, until, NULL);
        if (login_refused(s, ops) != SESS_OK) {
            return SESS_CLOSE;
        }
    }
    for (;;) {
        s->action = "in auth state";
        rc = ops->dialogue(s);
        if (rc == SESS_PARK) {
            return SESS_PARK;
        }
        if (rc != SESS_AUTH) {
            return SESS_CLOSE;
        }
        s->attempts++;
        memset(&ti, 0, sizeof(ti));
        ask_auth(s, &rq, &ti);
        tls_info_free(&ti);
        switch (s->auth.status) {
        case AUTH_OK:
            return SESS_OK;
        case AUTH_FAIL:
            if (s->auth.log_reason != NULL) {
                /* a refusal the operator can fix (e.g. auth_file has no
                 * {PLAIN} secret for APOP): say why, not only that */
                session_log(s, LOG_LV_WARN, "client login failed: \"%s\" "
                            "(%s)", s->auth.message ? s->auth.message : "",
                            s->auth.log_reason);
            } else {
                session_log(s, LOG_LV_INFO, "client login failed: \"%s\"",
                            s->auth.message ? s->auth.message : "");
            }
            if (s->auth.wait > 0 && auth_wait(s, s->auth.wait)) {
                return SESS_PARK;
            }
            break;
        case AUTH_TEMPFAIL:
            session_log(s, LOG_LV_ERR, "%s",
                        s->auth.log_reason ? s->auth.log_reason
                                           : "auth service failed");
            break;
        }
        if (login_refused(s, ops) != SESS_OK) {
            return SESS_CLOSE;
        }
    }
}

/*
 * Connect to Auth-Server.  A host name goes to the configured `resolver`
 * when there is one (never the system's resolv.conf then), else to
 * getaddrinfo() inside net_connect().
 */
static int
backend_connect(struct session *s, unsigned short port, char *err, size_t errlen)
{
    struct sockaddr_storage addrs[8];
    unsigned char probe[sizeof(struct in6_addr)];
    size_t n = 0;
    int fd = -1;

    if (!s->sc->resolver.enabled
        || inet_pton(AF_INET, s->auth.server, probe) == 1
        || inet_pton(AF_INET6, s->auth.server, probe) == 1) {
        return net_connect(s->auth.server, port, s->client.deadline, err, errlen);
    }
    if (resolver_lookup_host(s->sc, s->auth.server, s->client.deadline, addrs,
                             sizeof(addrs) / sizeof(addrs[0]), &n,
                             err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n && fd < 0; i++) {
        char text[ADDR_TEXT_MAX];

        net_addr_text((struct sockaddr *)&addrs[i], sizeof(addrs[i]), text,
                      sizeof(text), 0);
        fd = net_connect(text, port, s->client.deadline, err, errlen);
    }
    return fd;
}

/* Connect to the backend the auth service named and log in. */
static enum sess_rc
phase_backend(struct session *s, const struct proto_ops *ops)
{
    char err[256];
    unsigned short port = s->auth.port ? s->auth.port : ops->default_port;
    size_t bufsize = s->sc->proxy_buffer > BACKEND_BUFFER_MIN
                     ? s->sc->proxy_buffer : BACKEND_BUFFER_MIN;
    int fd;

    if (strchr(s->auth.server, ':') != NULL) {
        snprintf(s->upstream, sizeof(s->upstream), "[%s]:%u", s->auth.server, port);
    } else {
        snprintf(s->upstream, sizeof(s->upstream), "%s:%u", s->auth.server, port);
    }
    s->action = "connecting to upstream";
    fd = backend_connect(s, port, err, sizeof(err));
    if (fd < 0) {
        session_log(s, LOG_LV_ERR, "%s", err);
        ops->internal_error(s);
        return SESS_CLOSE;
    }
    if (conn_init(&s->backend, fd, bufsize) != 0) {
        close(fd);
        session_log(s, LOG_LV_ERR, "out of memory");
        ops->internal_error(s);
        return SESS_CLOSE;
    }
    s->backend.deadline = s->client.deadline;
    s->backend.awaiting = 1;        /* the server speaks first */
    if (s->sc->proxy_protocol) {
        char hdr[128];
        int n = proxy_protocol_v1_build((struct sockaddr *)&s->peer,
                                        (struct sockaddr *)&s->local,
                                        hdr, sizeof(hdr));

        if (n < 0 || conn_write_all(&s->backend, hdr, (size_t)n) != 0) {
            session_log(s, LOG_LV_ERR, "sending PROXY header to upstream failed");
            ops->internal_error(s);
            return SESS_CLOSE;
        }
    }
    s->action = "reading response from upstream";
    return ops->backend_login(s);
}

/* Text of the local and peer addresses of the client socket.  The
 * acceptor gave the session the listen of the address the client reached,
 * so only a wildcard one needs getsockname() to learn that address. */
static void
session_addresses(struct session *s)
{
    session_addr_text(&s->peer, s->peerlen, s->client_ip, sizeof(s->client_ip),
                      s->client_port, sizeof(s->client_port));
    if (s->lc != NULL && !listen_is_wildcard(s->lc)) {
        memcpy(&s->local, &s->lc->addr, s->lc->addrlen);
        s->locallen = s->lc->addrlen;
    } else {
        s->locallen = sizeof(s->local);
        if (getsockname(s->client.fd, (struct sockaddr *)&s->local,
                        &s->locallen) != 0) {
            return;             /* the server address stays unknown */
        }
    }
    session_addr_text(&s->local, s->locallen, s->server_ip, sizeof(s->server_ip),
                      s->server_port, sizeof(s->server_port));
}

/* "client A:P connected to S:P", as NGINX writes it: no context. */
static void
log_connected(const struct session *s)
{
    char peer[ADDR_TEXT_MAX + 16], server[ADDR_TEXT_MAX + 16];

    if (s->client_port[0] != '\0') {
        host_port(peer, sizeof(peer), s->client_ip, s->client_port);
    } else {
        str_lcpy(peer, s->client_ip, sizeof(peer));     /* "unix:" */
    }
    log_write(s->sc->error_log, LOG_LV_INFO, s->id,
              "client %s connected to %s", peer,
              host_port(server, sizeof(server), s->server_ip,
                        s->server_port));
}

/* See session.h. */
void
session_log_accepted(struct pool_item *it)
{
    struct session s;

    it->connected = 1;
    if ((int)LOG_LV_INFO > log_max_level(it->sc->error_log)) {
        return;                     /* not worth a getsockname() */
    }
    memset(&s, 0, sizeof(s));
    s.id = it->id;
    s.sc = it->sc;
    s.lc = it->lc;
    memcpy(&s.peer, &it->peer, it->peerlen);
    s.peerlen = it->peerlen;
    s.client.fd = it->fd;
    session_addresses(&s);
    log_connected(&s);
}

/* Log the successful login as NGINX does ("client logged in" and the
 * context); both socket pairs follow at debug level. */
static void
log_logged_in(struct session *s)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    char bl[ADDR_TEXT_MAX] = "?", br[ADDR_TEXT_MAX] = "?";

    s->action = NULL;
    session_log(s, LOG_LV_INFO, "client logged in");
    if ((int)LOG_LV_DEBUG > log_max_level(s->sc->error_log)) {
        return;                     /* not worth two system calls */
    }
    if (getsockname(s->backend.fd, (struct sockaddr *)&a, &len) == 0) {
        net_addr_text((struct sockaddr *)&a, len, bl, sizeof(bl), 1);
    }
    len = sizeof(a);
    if (getpeername(s->backend.fd, (struct sockaddr *)&a, &len) == 0) {
        net_addr_text((struct sockaddr *)&a, len, br, sizeof(br), 1);
    }
    session_log(s, LOG_LV_DEBUG, "client %s%s%s-%s:%s <=> upstream %s-%s",
                s->client_ip, s->client_port[0] ? ":" : "", s->client_port,
                s->server_ip, s->server_port, bl, br);
}

/* Free everything the session still owns. */
static void
session_free(struct session *s, const struct proto_ops *ops)
{
    if (ops != NULL && ops->free_state != NULL && s->proto_state != NULL) {
        ops->free_state(s);
    }
    sasl_forget(s);
    free(s->pp_reading);
    session_clear_creds(s);
    str_wipe_free(&s->smtp_helo);
    str_wipe_free(&s->smtp_from);
    str_wipe_free(&s->smtp_to);
    auth_result_free(&s->auth);
    conn_close(&s->client);
    conn_close(&s->backend);
    free(s->client_host);
    free(s->pp_addr);
    free(s->pp_port);
    free(s->pp_server_addr);
    free(s->pp_server_port);
    conf_unref(s->conf);
}

/*
 * From the TLS handshake on: the greeting, the login, the backend, the
 * hand-over to the relay.  Also where a parked session resumes (s->phase:
 * its handshake or its dialogue goes on where it stopped).  Frees s unless
 * it parks.  session_run()'s result.
 */
static int
session_continue(struct session *s, struct pool_item *it)
{
    const struct proto_ops *ops = proto_ops_get(s->sc->protocol);
    enum sess_rc rc;
    int result = 0;

    switch (s->phase) {
    case PHASE_PROXY:
        switch (phase_proxy_header(s, &it->resume)) {
        case 0:
            break;
        case 1:
            /* wait again under the real address: the item keeps the socket
             * and the conf reference */
            session_log(s, LOG_LV_DEBUG, "client's address has its share "
                        "of the workers, waiting again");
            s->client.fd = -1;
            conf_ref(s->conf);
            result = 2;
            goto done;
        case 2:
            return session_park(s, it);
        default:
            goto done;
        }
        /* fall through */
    case PHASE_ACCESS:
        if (phase_access(s) != 0) {
            goto done;
        }
        if (!it->connected) {
            log_connected(s);
        }
        s->phase = PHASE_TLS;
        /* fall through */
    case PHASE_TLS:
        switch (phase_tls(s)) {
        case 0:
            break;
        case 1:
            return session_park(s, it);
        default:
            goto done;
        }
        s->phase = PHASE_GREET;
        /* fall through */
    case PHASE_GREET:
        s->action = "in auth state";
        if (ops->greet(s) != SESS_OK) {
            goto done;
        }
        s->phase = PHASE_LOGIN;
        /* fall through */
    case PHASE_LOGIN:
        break;
    }
    rc = phase_login(s, ops);
    if (rc == SESS_PARK) {
        return session_park(s, it);
    }
    if (rc != SESS_OK || phase_backend(s, ops) != SESS_OK) {
        goto done;
    }
    log_logged_in(s);
    /* the relay needs no secret: keep only the login for the summary line */
    str_wipe_free(&s->passwd);
    str_wipe_free(&s->salt);
    str_wipe_free(&s->auth.pass);
    pool_release_fd();
    if (relay_add(s) != 0) {
        session_log(s, LOG_LV_ERR, "cannot hand the session to the relay");
    } else {
        result = 1;
    }
done:
    if (result != 1) {
        pool_release_fd();          /* before session_free closes the fd */
    }
    session_discard(s);
    return result;
}

/* The worker's entry: run one session to the relay or to its end. */
int
session_run(struct pool_item *it)
{
    struct session *s;
    const struct server_conf *sc = it->sc;
    int fd = it->fd;
    int result = 0;             /* what session_run returns */

    if (it->parked != NULL) {
        /* its client spoke again (or its time ran out) */
        s = it->parked;
        it->parked = NULL;
        return session_continue(s, it);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        log_write(sc->error_log, LOG_LV_ERR, it->id, "out of memory for a session");
        pool_release_fd();
        close(fd);
        conf_unref(it->conf);
        free(it->resume);
        it->resume = NULL;
        return 0;
    }
    s->id = it->id;
    s->conf = it->conf;
    s->sc = sc;
    s->lc = it->lc;
    s->start = it->accepted;
    s->backend.fd = -1;
    s->auth.wait = -1;
    memcpy(&s->peer, &it->peer, it->peerlen);
    s->peerlen = it->peerlen;
    s->greeted = it->greeted;
    s->stamp = it->stamp;
    if (conn_init(&s->client, fd, client_buffer_size(sc)) != 0) {
        log_write(sc->error_log, LOG_LV_ERR, s->id, "out of memory for a session");
        close(fd);
        free(it->resume);           /* a session back from the queue */
        it->resume = NULL;
        goto done;
    }
    s->client.deadline = pool_item_deadline(it);
    session_addresses(s);

    s->phase = PHASE_PROXY;
    if (it->resume != NULL) {
        /* back from the queue: the header was read before */
        struct pool_resume *r = it->resume;

        apply_header(s, &r->src, r->srclen, &r->dst, r->dstlen, 1);
        free(r);
        it->resume = NULL;
        s->phase = PHASE_ACCESS;
    }
    return session_continue(s, it);

done:
    pool_release_fd();              /* before session_free closes the fd */
    session_discard(s);
    return result;
}

/* See session.h. */
void
session_discard(struct session *s)
{
    session_free(s, proto_ops_get(s->sc->protocol));
    free(s);
}
