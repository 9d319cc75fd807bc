/*
 * proto.h - what a protocol module (imap.c, pop3.c, smtp.c) gives session.c.
 *
 * session.c owns the order of phases; a module owns the words.  Every
 * function that talks returns one of enum sess_rc.
 */
#ifndef POSTERN_PROTO_H
#define POSTERN_PROTO_H

#include "auth.h"
#include "conf.h"
#include "stamp.h"

struct session;

enum sess_rc {
    SESS_OK = 0,       /* go on to the next phase */
    SESS_AUTH,         /* dialogue: s->method/login/passwd set, ask the auth service */
    SESS_CLOSE,        /* end the session; any reply has been sent */
    SESS_PARK,         /* dialogue: waiting for the client, leave the worker
                        * (session_fill_client); called again to go on */
};

struct proto_ops {
    enum proto proto;
    const char *name;                 /* "imap" */
    unsigned short default_port;      /* backend port when Auth-Port is absent */

    /* Configuration time: build capability lines, greetings ... into
     * sc->proto_data.  0 / -1 with err filled. */
    int (*conf_init)(struct server_conf *sc, char *err, size_t errlen);
    void (*conf_free)(struct server_conf *sc);

    /* The greeting a client of sc gets: the configuration's text, or one
     * written into buf (cap bytes, PROTO_GREETING_MAX) with the client's
     * APOP timestamp *st, which is made here if st->time is 0.  NULL when
     * it cannot be made (no random bytes).  The acceptor may send it before
     * a worker takes the client (proto_early_greeting); greet sends the
     * same bytes, less those. */
    const char *(*greeting)(const struct server_conf *sc, struct stamp *st,
                            char *buf, size_t cap, size_t *len);
    /* Allocate s->proto_state and send the greeting (what the acceptor has
     * not sent of it: session_send_greeting). */
    enum sess_rc (*greet)(struct session *s);
    /* Read commands until there are credentials to check (SESS_AUTH) or the
     * session ends (SESS_CLOSE).  Called again after a refused attempt, and
     * after SESS_PARK: everything it needs to go on must then be in the
     * session (its buffer, s->proto_state), none on its stack. */
    enum sess_rc (*dialogue)(struct session *s);
    /* The auth service refused (AUTH_FAIL) or failed (AUTH_TEMPFAIL):
     * answer the client.  SESS_OK to read the next attempt, SESS_CLOSE to end. */
    enum sess_rc (*auth_error)(struct session *s, const struct auth_result *r);
    /* Connected to s->backend: read its greeting, log in with s->auth's
     * user/pass (or s->login/passwd), tell the client it is logged in.
     * SESS_OK: the pair goes to the relay.  Failures are logged and the
     * client gets the protocol's error. */
    enum sess_rc (*backend_login)(struct session *s);
    /* Reply for an internal / upstream error, then the session closes. */
    void (*internal_error)(struct session *s);
    /* Free s->proto_state. */
    void (*free_state)(struct session *s);

    /* A whole line the acceptor may write without blocking when the queue
     * is full, e.g. "* BYE server busy\r\n". */
    const char *busy_line;
};

extern const struct proto_ops imap_ops, pop3_ops, smtp_ops;
const struct proto_ops *proto_ops_get(enum proto p);

/* Room for any greeting a module writes into a caller's buffer: the
 * POP3 one with its APOP timestamp. */
#define PROTO_GREETING_MAX (64 + STAMP_MAX)

/*
 * The greeting the acceptor may send itself to a client of lc, or NULL.  A
 * worker that takes the session then often finds the client's first
 * command already waiting instead of sleeping until it comes, and the
 * client can be held until that command without a worker.  Only where
 * nothing has to happen first: no TLS handshake, no PROXY header (the
 * caller also checks the access rules).  *delay: how long after the accept
 * the greeting may go (smtp_greeting_delay), else 0.  st, buf, cap, len:
 * as proto_ops.greeting.
 */
const char *proto_early_greeting(const struct server_conf *sc,
                                 const struct listen_conf *lc,
                                 struct stamp *st, char *buf, size_t cap,
                                 size_t *len, msec_t *delay);

#endif
