/*
 * smtp.c - the SMTP protocol module: the client dialogue up to the
 * credentials (or, with smtp_auth none, up to the first RCPT TO), as
 * NGINX's mail module does it (ngx_mail_smtp_handler.c); the login to the
 * backend is smtp_backend.c's:
 *
 *   client:  220 greeting [after smtp_greeting_delay] -> EHLO/HELO ->
 *            [STARTTLS] -> AUTH ... | MAIL FROM + RCPT TO (smtp_auth none)
 *
 * Handles untrusted input from the client (every line is bounded by its
 * connection's buffer; every value kept for the backend goes through the
 * parser, which lets no CR, LF or NUL into it) and secrets (the
 * credentials, kept by session.c).  No locks: a session belongs to one
 * worker.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "sasl.h"
#include "session.h"
#include "smtp_int.h"
#include "smtp_parse.h"
#include "str.h"

/* Replies, with NGINX's wording where NGINX has one. */
#define SMTP_OK               "250 2.0.0 OK\r\n"
#define SMTP_BYE              "221 2.0.0 Bye\r\n"
#define SMTP_START_TLS        "220 2.0.0 Start TLS\r\n"
#define SMTP_INVALID_COMMAND  "500 5.5.1 Invalid command\r\n"
#define SMTP_INVALID_ARGUMENT "501 5.5.4 Invalid argument\r\n"
#define SMTP_INVALID_PIPELINING \
    "503 5.5.0 Improper use of SMTP command pipelining\r\n"
#define SMTP_BAD_SEQUENCE     "503 5.5.1 Bad sequence of commands\r\n"
#define SMTP_AUTH_REQUIRED    "530 5.7.1 Authentication required\r\n"
/* not in NGINX: RFC 4954 4 (cancel) and RFC 3207 4 (starttls only) */
#define SMTP_AUTH_CANCELLED   "501 5.7.0 Authentication cancelled\r\n"
#define SMTP_STARTTLS_FIRST \
    "530 5.7.0 Must issue a STARTTLS command first\r\n"
/* Auth-Status refusals without Auth-Error-Code, as NGINX */
#define SMTP_AUTH_ERRCODE     "535 5.7.0"

/* What sessions only send, built once per server by smtp_conf_init(). */
struct smtp_conf {
    struct str greeting;            /* "220 NAME ESMTP ready" */
    struct str helo;                /* "250 NAME" */
    struct str ehlo;                /* capabilities and AUTH */
    struct str ehlo_starttls;       /* ... and STARTTLS (starttls on) */
    struct str ehlo_starttls_only;  /* no AUTH, STARTTLS (starttls only) */
};

/* Where the dialogue is: what the command table allows. */
enum {
    ST_START = 1u << 0,             /* before HELO / EHLO */
    ST_HELO  = 1u << 1,             /* after HELO / EHLO */
    ST_MAIL  = 1u << 2,             /* after MAIL FROM (smtp_auth none) */
};
#define ST_ANY (ST_START | ST_HELO | ST_MAIL)

struct smtp_state {
    unsigned state;
    struct smtp_cmd_parser parser;
};

/* What a command handler tells the dialogue loop. */
enum cmd_rc {
    CMD_NEXT,           /* replied; read the next command */
    CMD_AUTH,           /* credentials or envelope ready: SESS_AUTH */
    CMD_INVALID,        /* unknown or malformed: "500", count an error */
    CMD_REFUSED,        /* a known command refused: "500", not counted */
    CMD_CLOSE,          /* end the session; any reply was sent */
    CMD_PARK,           /* a SASL challenge awaits its answer, or the
                         * client is silent in STARTTLS's handshake: park */
};

typedef enum cmd_rc (*smtp_handler)(struct session *s, struct smtp_state *st,
                                    const struct smtp_cmd *cmd);

/* ---- configuration time ---- */

/* Join lines into one reply: "250-" before each but the last, "250 ". */
static int
build_reply(const char *const *lines, size_t n, struct str *out)
{
    struct str_builder b = STR_BUILDER_INIT;

    for (size_t i = 0; i < n; i++) {
        str_builder_puts(&b, i + 1 < n ? "250-" : "250 ");
        str_builder_puts(&b, lines[i]);
        str_builder_puts(&b, "\r\n");
    }
    return str_builder_take(&b, out);
}

/* A heap "PREFIX TEXT SUFFIX" as a str. */
static int
build_line(const char *prefix, const char *text, const char *suffix,
           struct str *out)
{
    struct str_builder b = STR_BUILDER_INIT;

    str_builder_puts(&b, prefix);
    str_builder_puts(&b, text);
    str_builder_puts(&b, suffix);
    return str_builder_take(&b, out);
}

/* 1 if a configured word would break a reply line. */
static int
has_ctl(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static void smtp_conf_free(struct server_conf *sc);

/* Greeting, HELO reply and the three EHLO replies for one server. */
static int
smtp_conf_init(struct server_conf *sc, char *err, size_t errlen)
{
    static const struct {
        unsigned bit;
        const char *name;
    } mechs[] = {
        { AUTH_M_PLAIN, "PLAIN" },       { AUTH_M_LOGIN, "LOGIN" },
        { AUTH_M_CRAM_MD5, "CRAM-MD5" }, { AUTH_M_EXTERNAL, "EXTERNAL" },
    };
    struct smtp_conf *cf;
    const char **lines = NULL;
    char auth[64] = "AUTH";
    size_t n = 0, ncaps = sc->smtp_capabilities.n;
    int have_auth = 0;

    if (sc->server_name == NULL || has_ctl(sc->server_name)) {
        snprintf(err, errlen, "server_name: not set or not one line");
        return -1;
    }
    for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
        if (sc->smtp_auth & mechs[i].bit) {
            strcat(auth, " ");
            strcat(auth, mechs[i].name);
            have_auth = 1;
        }
    }

    cf = calloc(1, sizeof(*cf));
    lines = calloc(ncaps + 3, sizeof(*lines));
    if (cf == NULL || lines == NULL) {
        goto nomem;
    }
    sc->proto_data = cf;
    if (build_line("220 ", sc->server_name, " ESMTP ready\r\n",
                   &cf->greeting) != 0
        || build_line("250 ", sc->server_name, "\r\n", &cf->helo) != 0) {
        goto nomem;
    }

    /* as NGINX: name, smtp_capabilities, AUTH, then STARTTLS last */
    lines[n++] = sc->server_name;
    for (size_t i = 0; i < ncaps; i++) {
        lines[n++] = sc->smtp_capabilities.v[i];
    }
    lines[n] = "STARTTLS";
    if (build_reply(lines, n + 1, &cf->ehlo_starttls_only) != 0) {
        goto nomem;
    }
    if (have_auth) {
        lines[n++] = auth;
    }
    if (build_reply(lines, n, &cf->ehlo) != 0) {
        goto nomem;
    }
    lines[n] = "STARTTLS";
    if (build_reply(lines, n + 1, &cf->ehlo_starttls) != 0) {
        goto nomem;
    }
    free(lines);
    return 0;

nomem:
    free(lines);
    if (cf != NULL && sc->proto_data == NULL) {
        free(cf);
    }
    smtp_conf_free(sc);
    snprintf(err, errlen, "out of memory building SMTP replies");
    return -1;
}

/* Free what smtp_conf_init() built. */
static void
smtp_conf_free(struct server_conf *sc)
{
    struct smtp_conf *cf = sc->proto_data;

    if (cf == NULL) {
        return;
    }
    free(cf->greeting.data);
    free(cf->helo.data);
    free(cf->ehlo.data);
    free(cf->ehlo_starttls.data);
    free(cf->ehlo_starttls_only.data);
    free(cf);
    sc->proto_data = NULL;
}

/* ---- helpers ---- */

/* Log a refused command line as NGINX does, at info.  The rest of an AUTH
 * line may be credentials: only "AUTH MECH" is shown. */
static void
log_rejected(struct session *s, const char *what, const unsigned char *p,
             size_t n)
{
    const unsigned char *lf = memchr(p, '\n', n);
    char text[256];

    if (lf != NULL) {
        n = (size_t)(lf - p);
    }
    if (n >= 5 && strncasecmp((const char *)p, "AUTH ", 5) == 0) {
        const unsigned char *sp = memchr(p + 5, ' ', n - 5);

        if (sp != NULL) {
            n = (size_t)(sp - p);
        }
    }
    str_log_text(p, n, text, sizeof(text));
    session_log(s, LOG_LV_INFO, "%s: \"%s\"", what, text);
}

int
smtp_reply(struct session *s, const char *text)
{
    return session_send(s, text, strlen(text));
}

/* 1 if s begins with the literal, case-insensitively. */
static int
has_prefix_ci(struct str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len >= n && strncasecmp((const char *)s.data, lit, n) == 0;
}

/* The EHLO reply for this session's TLS state. */
static const struct str *
ehlo_reply(const struct session *s, const struct smtp_conf *cf)
{
    if (!s->tls && s->sc->starttls == STARTTLS_ON) {
        return &cf->ehlo_starttls;
    }
    if (!s->tls && s->sc->starttls == STARTTLS_ONLY) {
        return &cf->ehlo_starttls_only;
    }
    return &cf->ehlo;
}

/* ---- the client dialogue ---- */

/* A parsed line is ready; returns SMTP_PARSE_OK / _INVALID, READ_PARK
 * when the session is to wait for its client without the worker
 * (session_fill_client), or -1 when it is over (EOF, timeout, or a line
 * beyond smtp_client_buffer). */
#define READ_PARK (-2)
static int
read_command(struct session *s, struct smtp_state *st, struct smtp_cmd *cmd)
{
    struct buf *in = &s->client.in;
    enum smtp_parse_rc rc;

    for (;;) {
        rc = smtp_cmd_parse(&st->parser, buf_head(in), buf_len(in), cmd);
        if (rc != SMTP_PARSE_AGAIN) {
            buf_consume(in, cmd->len);
            return (int)rc;
        }
        if (buf_room(in) == 0 && in->pos == 0) {
            log_rejected(s, "client sent too long command", buf_head(in),
                         buf_len(in) > 64 ? 64 : buf_len(in));
            smtp_reply(s, SMTP_INVALID_COMMAND);
            return -1;
        }
        /* everything so far is in the buffer and the parser */
        switch (session_fill_client(s)) {
        case 1:
            break;
        case 0:
            return READ_PARK;
        default:
            return -1;
        }
    }
}

/* HELO / EHLO: remember the name, answer with our name or capabilities. */
static enum cmd_rc
smtp_helo(struct session *s, struct smtp_state *st, const struct smtp_cmd *cmd)
{
    const struct smtp_conf *cf = s->sc->proto_data;
    const struct str *out;

    if (cmd->nargs != 1) {
        return smtp_reply(s, SMTP_INVALID_ARGUMENT) == 0 ? CMD_NEXT : CMD_CLOSE;
    }
    if (str_set(&s->smtp_helo, cmd->args[0]) != 0) {
        session_log(s, LOG_LV_ERR, "out of memory");
        smtp_reply(s, SMTP_INTERNAL_ERROR);
        return CMD_CLOSE;
    }
    /* a new HELO starts over (RFC 5321 4.1.4) */
    str_wipe_free(&s->smtp_from);
    str_wipe_free(&s->smtp_to);
    st->state = ST_HELO;
    if (str_eq_ci(cmd->verb, "HELO")) {
        s->smtp_esmtp = 0;
        out = &cf->helo;
    } else {
        s->smtp_esmtp = 1;
        out = ehlo_reply(s, cf);
    }
    return session_send(s, (const char *)out->data, out->len) == 0
           ? CMD_NEXT : CMD_CLOSE;
}

/* What an AUTH exchange came to (now, or when it went on after the
 * session parked). */
static enum cmd_rc
authenticated(struct session *s, enum sasl_rc rc)
{
    switch (rc) {
    case SASL_OK:
        return CMD_AUTH;
    case SASL_PARK:
        return CMD_PARK;
    case SASL_CANCEL:
        return smtp_reply(s, SMTP_AUTH_CANCELLED) == 0 ? CMD_NEXT : CMD_CLOSE;
    case SASL_BAD:
        return CMD_REFUSED;
    case SASL_INTERNAL:
        smtp_reply(s, SMTP_INTERNAL_ERROR);
        return CMD_CLOSE;
    case SASL_IO:
    default:
        return CMD_CLOSE;
    }
}

/* AUTH MECH [initial-response]: one SASL exchange with "334 " challenges. */
static enum cmd_rc
smtp_auth(struct session *s, struct smtp_state *st, const struct smtp_cmd *cmd)
{
    const struct server_conf *sc = s->sc;
    struct str mech, initial = STR_NULL;
    unsigned bit;
    enum sasl_rc rc;

    (void)st;
    if (sc->starttls == STARTTLS_ONLY && !s->tls) {
        return CMD_REFUSED;
    }
    if (cmd->nargs == 0) {
        return smtp_reply(s, SMTP_INVALID_ARGUMENT) == 0 ? CMD_NEXT : CMD_CLOSE;
    }
    mech = cmd->args[0];
    /* as NGINX: PLAIN and LOGIN are always taken, the others when set */
    if (str_eq_ci(mech, "PLAIN") && cmd->nargs <= 2) {
        bit = AUTH_M_PLAIN;
    } else if (str_eq_ci(mech, "LOGIN") && cmd->nargs <= 2) {
        bit = AUTH_M_LOGIN;
    } else if (str_eq_ci(mech, "CRAM-MD5") && cmd->nargs == 1
               && (sc->smtp_auth & AUTH_M_CRAM_MD5)) {
        bit = AUTH_M_CRAM_MD5;
    } else if (str_eq_ci(mech, "EXTERNAL") && cmd->nargs <= 2
               && (sc->smtp_auth & AUTH_M_EXTERNAL)) {
        bit = AUTH_M_EXTERNAL;
    } else {
        return CMD_REFUSED;
    }
    if (cmd->nargs == 2) {
        /* own copy: the exchange reads into the buffer the slice is in */
        initial.data = malloc(cmd->args[1].len + 1);
        if (initial.data == NULL) {
            session_log(s, LOG_LV_ERR, "out of memory");
            smtp_reply(s, SMTP_INTERNAL_ERROR);
            return CMD_CLOSE;
        }
        memcpy(initial.data, cmd->args[1].data, cmd->args[1].len);
        initial.len = cmd->args[1].len;
    }
    rc = sasl_exchange(s, bit, initial, "334 ");
    str_wipe_free(&initial);
    return authenticated(s, rc);
}

/* MAIL FROM: refused unless smtp_auth has none; then kept for the auth
 * service (Auth-SMTP-From) and replayed to the backend. */
static enum cmd_rc
smtp_mail(struct session *s, struct smtp_state *st, const struct smtp_cmd *cmd)
{
    if (!(s->sc->smtp_auth & AUTH_M_NONE)) {
        log_rejected(s, "client was rejected", cmd->text.data, cmd->text.len);
        return smtp_reply(s, SMTP_AUTH_REQUIRED) == 0 ? CMD_NEXT : CMD_CLOSE;
    }
    if (s->sc->starttls == STARTTLS_ONLY && !s->tls) {
        return smtp_reply(s, SMTP_STARTTLS_FIRST) == 0 ? CMD_NEXT : CMD_CLOSE;
    }
    if (cmd->nargs == 0 || !has_prefix_ci(cmd->args[0], "FROM:")
        || (cmd->args[0].len == 5 && cmd->nargs == 1)) {
        return smtp_reply(s, SMTP_INVALID_ARGUMENT) == 0 ? CMD_NEXT : CMD_CLOSE;
    }
    if (str_set(&s->smtp_from, cmd->text) != 0) {
        session_log(s, LOG_LV_ERR, "out of memory");
        smtp_reply(s, SMTP_INTERNAL_ERROR);
        return CMD_CLOSE;
    }
    st->state = ST_MAIL;
    return smtp_reply(s, SMTP_OK) == 0 ? CMD_NEXT : CMD_CLOSE;
}

/* RCPT TO (after MAIL FROM): the envelope goes to the auth service. */
static enum cmd_rc
smtp_rcpt(struct session *s, struct smtp_state *st, const struct smtp_cmd *cmd)
{
    (void)st;
    if (cmd->nargs == 0 || !has_prefix_ci(cmd->args[0], "TO:")
        || (cmd->args[0].len == 3 && cmd->nargs == 1)) {
        return smtp_reply(s, SMTP_INVALID_ARGUMENT) == 0 ? CMD_NEXT : CMD_CLOSE;
    }
    if (str_set(&s->smtp_to, cmd->text) != 0) {
        session_log(s, LOG_LV_ERR, "out of memory");
        smtp_reply(s, SMTP_INTERNAL_ERROR);
        return CMD_CLOSE;
    }
    session_clear_creds(s);
    s->method = AUTH_METHOD_NONE;
    return CMD_AUTH;
}

/* RSET: forget the envelope. */
static enum cmd_rc
smtp_rset(struct session *s, struct smtp_state *st, const struct smtp_cmd *cmd)
{
    (void)cmd;
    str_wipe_free(&s->smtp_from);
    str_wipe_free(&s->smtp_to);
    if (st->state == ST_MAIL) {
        st->state = ST_HELO;
    }
    return smtp_reply(s, SMTP_OK) == 0 ? CMD_NEXT : CMD_CLOSE;
}

/* NOOP. */
static enum cmd_rc
smtp_noop(struct session *s, struct smtp_state *st, const struct smtp_cmd *cmd)
{
    (void)st;
    (void)cmd;
    return smtp_reply(s, SMTP_OK) == 0 ? CMD_NEXT : CMD_CLOSE;
}

/* QUIT. */
static enum cmd_rc
smtp_quit(struct session *s, struct smtp_state *st, const struct smtp_cmd *cmd)
{
    (void)st;
    (void)cmd;
    smtp_reply(s, SMTP_BYE);
    return CMD_CLOSE;
}

/* STARTTLS: reply, then the handshake; all that came before is forgotten
 * (RFC 3207 4.2), including the HELO and any pipelined bytes. */
static enum cmd_rc
smtp_starttls(struct session *s, struct smtp_state *st,
              const struct smtp_cmd *cmd)
{
    (void)cmd;
    if (s->tls || s->sc->starttls == STARTTLS_OFF) {
        return CMD_REFUSED;
    }
    if (smtp_reply(s, SMTP_START_TLS) != 0) {
        return CMD_CLOSE;
    }
    str_wipe_free(&s->smtp_helo);
    str_wipe_free(&s->smtp_from);
    str_wipe_free(&s->smtp_to);
    s->smtp_esmtp = 0;
    st->state = ST_START;
    smtp_cmd_parser_init(&st->parser);
    switch (session_starttls(s)) {
    case 0:
        return CMD_NEXT;
    case 1:
        return CMD_PARK;
    default:
        return CMD_CLOSE;
    }
}

/* The command table: which command is taken in which state.  VRFY, EXPN,
 * HELP and the rest are "500 Invalid command", as in NGINX. */
static const struct smtp_command {
    const char *name;
    unsigned states;
    smtp_handler handler;
} smtp_commands[] = {
    { "HELO",     ST_ANY,  smtp_helo },
    { "EHLO",     ST_ANY,  smtp_helo },
    { "AUTH",     ST_HELO, smtp_auth },
    { "MAIL",     ST_HELO, smtp_mail },
    { "RCPT",     ST_MAIL, smtp_rcpt },
    { "RSET",     ST_ANY,  smtp_rset },
    { "NOOP",     ST_ANY,  smtp_noop },
    { "QUIT",     ST_ANY,  smtp_quit },
    { "STARTTLS", ST_ANY,  smtp_starttls },
};

/* Find the command and check that it is allowed now. */
static enum cmd_rc
dispatch(struct session *s, struct smtp_state *st, const struct smtp_cmd *cmd)
{
    for (size_t i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]);
         i++) {
        const struct smtp_command *c = &smtp_commands[i];

        if (!str_eq_ci(cmd->verb, c->name)) {
            continue;
        }
        if (!(c->states & st->state)) {
            return smtp_reply(s, SMTP_BAD_SEQUENCE) == 0 ? CMD_NEXT : CMD_CLOSE;
        }
        return c->handler(s, st, cmd);
    }
    /* NGINX's parser knows these three and refuses them uncounted */
    if (str_eq_ci(cmd->verb, "VRFY") || str_eq_ci(cmd->verb, "EXPN")
        || str_eq_ci(cmd->verb, "HELP")) {
        return CMD_REFUSED;
    }
    return CMD_INVALID;
}

/*
 * smtp_greeting_delay: a client that speaks before the greeting is not a
 * patient MTA.  0 to greet, -1 when the client was turned away (or left).
 */
static int
greeting_delay(struct session *s)
{
    /* + 1: the clock's milliseconds are cut (see acceptor.c's) */
    msec_t until = clock_now() + s->sc->smtp_greeting_delay + 1;
    const char *old = s->action;
    int ready = buf_len(&s->client.in) > 0 || conn_pending(&s->client) > 0;
    ssize_t n;

    /* the delay comes out of the session's timeout (conf.c keeps it
     * shorter; a session requeued for its real address has less left) */
    if (until > s->client.deadline) {
        until = s->client.deadline;
    }

    s->action = "in delay pipelining state";
    if (!ready) {
        int rc = conn_poll(s->client.fd, POLLIN, until, NULL);

        if (rc < 0) {
            if (errno == ECANCELED) {
                session_log(s, LOG_LV_INFO, "server is shutting down");
            } else {
                session_log(s, LOG_LV_ERR, "poll() failed: %s", strerror(errno));
            }
            return -1;
        }
        ready = rc > 0;
    }
    if (!ready) {
        s->action = old;
        return 0;
    }
    if (buf_len(&s->client.in) == 0) {
        n = conn_fill(&s->client);
        if (n <= 0) {
            return -1;      /* gone, or a TLS error: nothing to answer */
        }
    }
    log_rejected(s, "client was rejected before greeting",
                 buf_head(&s->client.in), buf_len(&s->client.in));
    smtp_reply(s, SMTP_INVALID_PIPELINING);
    return -1;
}

/* The server's greeting, the same for every client (after
 * smtp_greeting_delay, which proto_early_greeting tells the acceptor). */
static const char *
smtp_greeting_text(const struct server_conf *sc, struct stamp *st, char *buf,
                   size_t cap, size_t *len)
{
    const struct smtp_conf *cf = sc->proto_data;

    (void)st;
    (void)buf;
    (void)cap;
    *len = cf->greeting.len;
    return (const char *)cf->greeting.data;
}

/* Allocate the state, wait out smtp_greeting_delay, greet.  A client the
 * acceptor has greeted (s->greeted) was held there for the delay and
 * stayed quiet through it: one that talked first was queued ungreeted, and
 * greeting_delay finds its bytes at once. */
static enum sess_rc
smtp_greet(struct session *s)
{
    const struct smtp_conf *cf = s->sc->proto_data;
    struct smtp_state *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        session_log(s, LOG_LV_ERR, "out of memory");
        return SESS_CLOSE;
    }
    st->state = ST_START;
    smtp_cmd_parser_init(&st->parser);
    s->proto_state = st;
    if (s->sc->smtp_greeting_delay > 0 && s->greeted == 0
        && greeting_delay(s) != 0) {
        return SESS_CLOSE;
    }
    if (session_send_greeting(s, (const char *)cf->greeting.data,
                              cf->greeting.len) != 0) {
        return SESS_CLOSE;
    }
    return SESS_OK;
}

/* Commands in order (pipelined ones straight from the buffer) until there
 * is something for the auth service or the session ends. */
static enum sess_rc
smtp_dialogue(struct session *s)
{
    struct smtp_state *st = s->proto_state;
    struct smtp_cmd cmd;
    enum cmd_rc rc;
    int r;

    for (;;) {
        s->action = "in auth state";
        if (s->sasl != NULL) {
            /* back from a park in AUTH */
            rc = authenticated(s, sasl_resume(s));
        } else {
            r = read_command(s, st, &cmd);
            if (r == READ_PARK) {
                return SESS_PARK;
            }
            if (r < 0) {
                return SESS_CLOSE;
            }
            rc = r == SMTP_PARSE_OK ? dispatch(s, st, &cmd) : CMD_INVALID;
        }
        switch (rc) {
        case CMD_NEXT:
            break;
        case CMD_AUTH:
            return SESS_AUTH;
        case CMD_PARK:
            return SESS_PARK;
        case CMD_INVALID:
            /* counted as NGINX counts what its parser refuses; a known
             * command refused in its handler is not */
            if (session_error(s)) {
                smtp_reply(s, SMTP_INVALID_COMMAND);
                return SESS_CLOSE;
            }
            /* fall through */
        case CMD_REFUSED:
            if (smtp_reply(s, SMTP_INVALID_COMMAND) != 0) {
                return SESS_CLOSE;
            }
            break;
        case CMD_CLOSE:
        default:
            return SESS_CLOSE;
        }
    }
}

/* "NNN X.Y.Z" from Auth-Error-Code, if it is fit to start a reply line. */
static int
errcode_ok(const char *code)
{
    size_t n;

    if (code == NULL) {
        return 0;
    }
    n = strlen(code);
    if (n < 3 || n > 32 || code[0] < '2' || code[0] > '5'
        || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9'
        || (n > 3 && code[3] != ' ')) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (code[i] < 0x20 || code[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* The auth service said no (or failed): tell the client. */
static enum sess_rc
smtp_auth_error(struct session *s, const struct auth_result *r)
{
    const char *msg;

    if (s->method == AUTH_METHOD_NONE) {
        /* the MAIL FROM stands: the client may try another RCPT */
        str_wipe_free(&s->smtp_to);
    }
    if (r->status != AUTH_FAIL) {
        smtp_reply(s, SMTP_INTERNAL_ERROR);
        return SESS_CLOSE;
    }
    msg = r->message != NULL && r->message[0] != '\0'
          ? r->message : "Authentication failed";
    if (session_sendf(s, "%s %.*s\r\n",
                      errcode_ok(r->error_code) ? r->error_code
                                                : SMTP_AUTH_ERRCODE,
                      AUTH_MESSAGE_SHOWN, msg) != 0) {
        return SESS_CLOSE;
    }
    /* as NGINX: without Auth-Wait the session ends after the refusal */
    return r->wait < 0 ? SESS_CLOSE : SESS_OK;
}

/* The reply for an internal or upstream error; the session then ends. */
static void
smtp_internal_error(struct session *s)
{
    smtp_reply(s, SMTP_INTERNAL_ERROR);
}

/* Free the dialogue state (the HELO and envelope are session.c's). */
static void
smtp_free_state(struct session *s)
{
    free(s->proto_state);
    s->proto_state = NULL;
}

const struct proto_ops smtp_ops = {
    .proto = PROTO_SMTP,
    .name = "smtp",
    .default_port = 25,
    .conf_init = smtp_conf_init,
    .conf_free = smtp_conf_free,
    .greeting = smtp_greeting_text,
    .greet = smtp_greet,
    .dialogue = smtp_dialogue,
    .auth_error = smtp_auth_error,
    .backend_login = smtp_backend_login,
    .internal_error = smtp_internal_error,
    .free_state = smtp_free_state,
    .busy_line = "421 4.3.2 Service not available\r\n",
};
