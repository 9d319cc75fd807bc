/*
 * session.h - one client session, from accept to the hand-off to the relay.
 *
 * A worker thread runs session_run(): a straight line of phases
 *   PROXY header -> access -> TLS -> greeting -> dialogue -> auth ->
 *   backend connect -> backend login -> relay
 * The one break in the line: a session whose client is silent in its
 * PROXY header, a TLS handshake or the dialogue while other clients wait
 * for a worker, or that sits out a refused login's Auth-Wait, leaves its
 * worker (it "parks" in the acceptor) and goes on in whichever worker
 * takes it back (session_fill_client, s->phase).
 * Protocol modules (imap.c, pop3.c, smtp.c) implement the dialogue and the
 * backend login through struct proto_ops (proto.h) and call back into the
 * helpers below.  Everything a session owns is freed by session_free().
 */
#ifndef POSTERN_SESSION_H
#define POSTERN_SESSION_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "stamp.h"
#include "str.h"

#define ADDR_TEXT_MAX ADDR_TEXT_LEN

struct sasl_wait;
struct proxy_reading;

/* What is known of the client's host name. */
enum client_host_state {
    CLIENT_HOST_UNKNOWN = 0,            /* not looked up yet */
    CLIENT_HOST_NONE,                   /* nothing to send (IMAP, POP3
                                         * without a resolver) */
    CLIENT_HOST_NAME,                   /* client_host holds the name */
    CLIENT_HOST_UNAVAILABLE,            /* "[UNAVAILABLE]": no name */
    CLIENT_HOST_TEMPUNAVAIL             /* "[TEMPUNAVAIL]": lookup failed
                                         * for now (timeout, SERVFAIL) */
};

/* Where a session goes on when a worker takes it (session_continue). */
enum session_phase {
    PHASE_PROXY = 0,                    /* the PROXY protocol header, if any */
    PHASE_ACCESS,                       /* access rules, the connect line */
    PHASE_TLS,                          /* the implicit TLS handshake, if any */
    PHASE_GREET,                        /* the greeting */
    PHASE_LOGIN                         /* the dialogue and all after it */
};

struct session {
    uint64_t id;                        /* the *CONN of log lines */
    enum session_phase phase;
    struct conf *conf;                  /* reference held */
    const struct server_conf *sc;
    const struct listen_conf *lc;
    msec_t start;

    struct conn client;
    struct conn backend;                /* fd -1 until connected */

    struct sockaddr_storage peer, local;    /* after PROXY header: the real ones */
    socklen_t peerlen, locallen;
    char client_ip[ADDR_TEXT_MAX];      /* address only */
    char client_port[8];
    char server_ip[ADDR_TEXT_MAX];
    char server_port[8];
    /* the client's host name (Client-Host, XCLIENT NAME): looked up on
     * first use, at most once a session; see session_client_host() */
    enum client_host_state client_host_state;
    char *client_host;                  /* the confirmed name, or NULL */
    /* PROXY protocol facts when a header was received, else NULL */
    char *pp_addr, *pp_port, *pp_server_addr, *pp_server_port;

    int tls;                            /* client side is under TLS */
    int starttls;                       /* ... by STARTTLS / STLS */
    int errors;                         /* protocol errors so far (max_errors) */
    int attempts;                       /* login attempts so far */

    /* credentials of the current attempt: heap copies, wiped by session_clear_creds */
    enum auth_method method;
    struct str login;
    struct str passwd;                  /* password / APOP digest / CRAM response */
    struct str salt;                    /* the challenge sent (APOP, CRAM-MD5) */

    /* SMTP envelope (smtp_auth none) and HELO */
    struct str smtp_helo, smtp_from, smtp_to;
    int smtp_esmtp;                     /* client said EHLO */

    /* backend chosen by the auth service */
    struct auth_result auth;
    char upstream[ADDR_TEXT_MAX];       /* "1.2.3.4:143" */

    void *proto_state;                  /* protocol module's own state */
    const char *action;                 /* "while ..." part of log lines */
    size_t greeted;                     /* greeting bytes the acceptor sent */
    struct stamp stamp;                 /* the APOP timestamp of the greeting
                                         * (the acceptor's, or made by greet) */
    msec_t park_until;                  /* parked for its Auth-Wait: until
                                         * then (0: not) */
    struct sasl_wait *sasl;             /* parked in a SASL exchange: where
                                         * it stands (sasl.c) */
    struct proxy_reading *pp_reading;   /* a PROXY header read so far */
};

struct pool_item;

/*
 * The worker's entry point for a queued connection; takes ownership of its
 * fd and conf reference and frees everything.  it->resume: in, NULL or a
 * session waiting again with its PROXY header read (taken and freed); out,
 * set when the session must wait again under its real address (see
 * pool_claim_share).  it->parked: a parked session to go on with.
 * Returns 0 when the session ended here, 1 when the pair went to the relay
 * (which now counts it in conn_active), 2 when it must be queued again (fd
 * and conf reference stay the item's, with the session if it->parked), 3
 * when it parked in the acceptor (the item is the acceptor's now).
 */
int session_run(struct pool_item *it);

/* Free a parked session that will not be resumed (a stop, a full queue):
 * closes its connection, drops its conf reference. */
void session_discard(struct session *s);

/*
 * For a dialogue waiting for more of its client's next command (or a SASL
 * exchange for its answer), with all it has read in s->client.in and
 * where it stands in the session (s->proto_state, s->sasl): read more.
 * 1 bytes came; -1 the client is gone or timed out (logged); 0 nothing has
 * come while other clients wait for a worker: the dialogue returns
 * SESS_PARK, and is called again when the client speaks.  Never 0 outside
 * a worker, during a stop, or for a client whose bytes already wait.
 */
int session_fill_client(struct session *s);

/* The connect line ("client A:P connected to S:P") of a connection the
 * acceptor holds until its client speaks, written as it is accepted, as
 * NGINX writes it; the session does not write it again (it->connected). */
void session_log_accepted(struct pool_item *it);

/* NGINX's context of a session's log lines, ", client: C[ using
 * starttls], server: S:P[, login: "L"][, upstream: U]", into out (cut to
 * fit); the length written. */
size_t session_context(const struct session *s, char *out, size_t outlen);

/* Log why the client's next bytes did not come, in NGINX's words: n is
 * conn_fill()'s result, error its errno: "client closed connection",
 * "client timed out (110: Connection timed out)", or the read error. */
void session_log_client_gone(struct session *s, ssize_t n, int error);
/* A read (writing 0) or write on c, the client's or the backend's
 * connection, that failed with error, logged in NGINX's words: "recv()
 * failed (104: Connection reset by peer)", "upstream timed out (110:
 * Connection timed out)"; a TLS failure with GnuTLS's reason ("client read
 * failed: ...").  At info for the client (as NGINX logs a client's
 * resets), at error for the backend. */
void session_log_io_failed(struct session *s, const struct conn *c, int error,
                           int writing);

/* Log with the session's context appended, as NGINX does:
 * "MESSAGE while ACTION, client: A, server: B, login: "u", upstream: C". */
void session_log(const struct session *s, enum log_level lv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set credentials (copied; previous ones wiped).  0 / -1 ENOMEM. */
int session_set_creds(struct session *s, enum auth_method m, struct str login,
                      struct str passwd, struct str salt);
/* Forget everything of the current attempt (user, password, lengths). */
void session_clear_creds(struct session *s);

/*
 * Count a protocol error; returns 1 when max_errors is reached (the caller
 * sends its final reply and returns SESS_CLOSE).
 */
int session_error(struct session *s);

/* Make a fresh CRAM-MD5 challenge, "<RANDOM.TIME@server_name>", into
 * s->salt.  0 / -1. */
int session_make_salt(struct session *s);

/* STARTTLS: the caller has sent its reply and reset its dialogue; this
 * discards buffered input, runs the handshake with the server's TLS
 * settings and sets s->tls.  0 ok, -1 failed (logged; the connection is
 * unusable), 1 the client is silent in the handshake while others wait
 * for a worker: the dialogue returns SESS_PARK, and the handshake goes on
 * when the session comes back, before the dialogue is called again. */
int session_starttls(struct session *s);

/*
 * The client's host name for Client-Host and XCLIENT NAME, as NGINX sends
 * them: the confirmed name, "[UNAVAILABLE]" (no such name, no forward
 * confirmation; and SMTP without a resolver), "[TEMPUNAVAIL]" (the lookup
 * failed for now: timeout, SERVFAIL, no server answering; and a UNIX-socket
 * client), or NULL when nothing is sent (IMAP and POP3 without a resolver).
 * The lookup runs on the first call only, bounded by resolver_timeout and
 * the session's deadline; later calls return the same answer, failures
 * included.  The string is the session's.
 */
const char *session_client_host(struct session *s);

/* Write to the client / backend; 0 or -1 (logged at info, connection dead). */
int session_send(struct session *s, const char *data, size_t len);
int session_sendf(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Send the greeting less the bytes the acceptor sent of the same text
 * (proto_early_greeting).  When it sent all, nothing is written and the
 * first read is tried at once: the client's command has had time to
 * arrive.  0 or -1 as session_send. */
static inline int
session_send_greeting(struct session *s, const char *text, size_t len)
{
    return s->greeted >= len ? 0
                             : session_send(s, text + s->greeted, len - s->greeted);
}
/* session_backend.c.  Write PREFIX VALUE SUFFIX to the backend in one
 * piece (a login line: the copy is wiped); 0 or -1 (logged at error, in
 * NGINX's words). */
int session_backend_send(struct session *s, const char *prefix,
                         struct str value, const char *suffix);
/* Write what line holds to the backend in one piece, then wipe and free
 * it; 0 or -1 (logged; out of memory when an add to it failed). */
int session_backend_write(struct session *s, struct str_builder *line);
/* The backend's next reply line (bounded by its buffer); 0 or -1 (logged:
 * too long, closed, or the read's error). */
int session_backend_line(struct session *s, unsigned char **line_r,
                         size_t *len_r);

#endif
