/*
 * pop3.c - the POP3 dialogue (RFC 1939, CAPA RFC 2449, AUTH RFC 5034,
 * STLS RFC 2595) as NGINX's mail module speaks it: greet, answer CAPA,
 * take USER/PASS, APOP or AUTH, then log in to the backend with USER/PASS.
 *
 * Untrusted input: client commands (through pop3_parse.c) and backend
 * replies.  Secrets: the user name kept between USER and PASS is wiped on
 * release; passwords only pass through session_set_creds() and the PASS
 * line to the backend, which is wiped after it is sent.  Never logged.
 * Locks: none; the per-server texts (struct pop3_conf) are built once at
 * configuration time and only read afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend_caps.h"
#include "buf.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "pop3_parse.h"
#include "proto.h"
#include "sasl.h"
#include "session.h"
#include "str.h"

#define CRLF "\r\n"

#define POP3_GREETING "+OK POP3 ready"
static const char pop3_greeting_line[] = POP3_GREETING CRLF;
static const char pop3_ok[] = "+OK" CRLF;
static const char pop3_invalid[] = "-ERR invalid command" CRLF;
static const char pop3_cancelled[] = "-ERR authentication cancelled" CRLF;
static const char pop3_internal[] = "-ERR internal server error" CRLF;

/* What a server sends, built once by pop3_conf_init (sc->proto_data). */
struct pop3_conf {
    unsigned mechs;             /* AUTH_M_*, LOGIN implied by PLAIN */
    struct str capa;            /* CAPA reply, plain or under TLS */
    struct str capa_stls;       /* ... plus STLS (starttls on) */
    struct str capa_stls_only;  /* starttls only, before TLS: no USER/SASL */
    struct str auth_list;       /* AUTH without argument */
};

/* Where the client is in the AUTHORIZATION state. */
enum pop3_state {
    POP3_ST_START = 1u << 0,    /* nothing given yet */
    POP3_ST_USER  = 1u << 1     /* USER given, PASS expected */
};

/* One session's POP3 state (s->proto_state). */
struct pop3_session {
    enum pop3_state state;
    struct pop3_parser parser;
    struct str user;            /* from USER, heap, wiped */
    struct str apop_salt;       /* the greeting's timestamp, heap */
};

/* What a command handler asks the dialogue loop to do next. */
enum pop3_next {
    NEXT_READ,                  /* reply sent: read the next command */
    NEXT_AUTH,                  /* credentials set: ask the auth service */
    NEXT_INVALID,               /* unknown or malformed line: "-ERR invalid
                                 * command", count an error */
    NEXT_REFUSED,               /* a known command refused (arguments,
                                 * state, settings): the same reply, not
                                 * counted, as NGINX counts only what its
                                 * parser refuses */
    NEXT_CLOSE,                 /* end the session */
    NEXT_PARK                   /* a SASL challenge awaits its answer, or
                                 * the client is silent in STLS's
                                 * handshake: park the session */
};

typedef enum pop3_next (*pop3_handler)(struct session *s,
                                       struct pop3_session *ps,
                                       const struct pop3_command *cmd);

static enum pop3_next cmd_user(struct session *, struct pop3_session *,
                               const struct pop3_command *);
static enum pop3_next cmd_pass(struct session *, struct pop3_session *,
                               const struct pop3_command *);
static enum pop3_next cmd_apop(struct session *, struct pop3_session *,
                               const struct pop3_command *);
static enum pop3_next cmd_auth(struct session *, struct pop3_session *,
                               const struct pop3_command *);
static enum pop3_next cmd_capa(struct session *, struct pop3_session *,
                               const struct pop3_command *);
static enum pop3_next cmd_noop(struct session *, struct pop3_session *,
                               const struct pop3_command *);
static enum pop3_next cmd_quit(struct session *, struct pop3_session *,
                               const struct pop3_command *);
static enum pop3_next cmd_stls(struct session *, struct pop3_session *,
                               const struct pop3_command *);

/*
 * The command table: which command is taken in which state.  As NGINX:
 * after USER only PASS, CAPA, NOOP and QUIT; anything else is an invalid
 * command that also forgets the USER.
 */
static const struct pop3_command_def {
    enum pop3_cmd cmd;
    unsigned states;
    pop3_handler handler;
} pop3_commands[] = {
    { POP3_CMD_USER, POP3_ST_START,                 cmd_user },
    { POP3_CMD_PASS, POP3_ST_USER,                  cmd_pass },
    { POP3_CMD_APOP, POP3_ST_START,                 cmd_apop },
    { POP3_CMD_AUTH, POP3_ST_START,                 cmd_auth },
    { POP3_CMD_CAPA, POP3_ST_START | POP3_ST_USER,  cmd_capa },
    { POP3_CMD_NOOP, POP3_ST_START | POP3_ST_USER,  cmd_noop },
    { POP3_CMD_QUIT, POP3_ST_START | POP3_ST_USER,  cmd_quit },
    { POP3_CMD_STLS, POP3_ST_START,                 cmd_stls },
};

/* SASL mechanisms in the order NGINX lists them. */
static const struct {
    unsigned bit;
    const char *name;
} pop3_mechs[] = {
    { AUTH_M_PLAIN,    "PLAIN" },
    { AUTH_M_LOGIN,    "LOGIN" },
    { AUTH_M_CRAM_MD5, "CRAM-MD5" },
    { AUTH_M_EXTERNAL, "EXTERNAL" },
};

#define NMECHS (sizeof(pop3_mechs) / sizeof(pop3_mechs[0]))

/* ---- configuration time ---- */

/* The CAPA reply: configured capabilities (without USER under "starttls
 * only"), a SASL line unless told not to, STLS when asked. */
static int
build_capa(const struct server_conf *sc, unsigned mechs, int with_user,
           int with_sasl, int with_stls, struct str *out)
{
    struct str_builder b = STR_BUILDER_INIT;
    int any = 0;

    str_builder_puts(&b, "+OK Capability list follows" CRLF);
    for (size_t i = 0; i < sc->pop3_capabilities.n; i++) {
        const char *cap = sc->pop3_capabilities.v[i];

        if (!with_user && str_eq_ci((struct str){ strlen(cap),
                                    (unsigned char *)cap }, "USER")) {
            continue;
        }
        str_builder_puts(&b, cap);
        str_builder_puts(&b, CRLF);
    }
    if (with_sasl) {
        for (size_t i = 0; i < NMECHS; i++) {
            if (mechs & pop3_mechs[i].bit) {
                str_builder_puts(&b, any ? " " : "SASL ");
                str_builder_puts(&b, pop3_mechs[i].name);
                any = 1;
            }
        }
        if (any) {
            str_builder_puts(&b, CRLF);
        }
    }
    if (with_stls) {
        str_builder_puts(&b, "STLS" CRLF);
    }
    str_builder_puts(&b, "." CRLF);
    return str_builder_take(&b, out);
}

/* The reply to AUTH without a mechanism (RFC 1734 style, as NGINX). */
static int
build_auth_list(unsigned mechs, struct str *out)
{
    struct str_builder b = STR_BUILDER_INIT;

    str_builder_puts(&b, "+OK methods supported:" CRLF);
    for (size_t i = 0; i < NMECHS; i++) {
        if (mechs & pop3_mechs[i].bit) {
            str_builder_puts(&b, pop3_mechs[i].name);
            str_builder_puts(&b, CRLF);
        }
    }
    str_builder_puts(&b, "." CRLF);
    return str_builder_take(&b, out);
}

/* Free what pop3_conf_init built. */
static void
pop3_conf_free(struct server_conf *sc)
{
    struct pop3_conf *pc = sc->proto_data;

    if (pc == NULL) {
        return;
    }
    free(pc->capa.data);
    free(pc->capa_stls.data);
    free(pc->capa_stls_only.data);
    free(pc->auth_list.data);
    free(pc);
    sc->proto_data = NULL;
}

/* Build the replies a POP3 server sends from its settings. */
static int
pop3_conf_init(struct server_conf *sc, char *err, size_t errlen)
{
    struct pop3_conf *pc;

    pc = calloc(1, sizeof(*pc));
    if (pc == NULL) {
        snprintf(err, errlen, "pop3: out of memory");
        return -1;
    }
    sc->proto_data = pc;

    /* as NGINX: "plain" also enables AUTH LOGIN, which pop3_auth lacks */
    pc->mechs = sc->pop3_auth;
    if (pc->mechs & AUTH_M_PLAIN) {
        pc->mechs |= AUTH_M_LOGIN;
    }

    if (build_capa(sc, pc->mechs, 1, 1, 0, &pc->capa) != 0
        || build_capa(sc, pc->mechs, 1, 1, 1, &pc->capa_stls) != 0
        || build_capa(sc, pc->mechs, 0, 0, 1, &pc->capa_stls_only) != 0
        || build_auth_list(pc->mechs, &pc->auth_list) != 0) {
        pop3_conf_free(sc);
        snprintf(err, errlen, "pop3: out of memory");
        return -1;
    }
    return 0;
}

/* ---- session helpers ---- */

static int
send_str(struct session *s, struct str t)
{
    return session_send(s, (const char *)t.data, t.len);
}

static int
send_lit(struct session *s, const char *lit)
{
    return session_send(s, lit, strlen(lit));
}

/* Under "starttls only" nothing that carries a password is taken in the
 * clear (RFC 2595 4). */
static int
starttls_only(const struct session *s)
{
    return s->sc->starttls == STARTTLS_ONLY && !s->tls;
}

/* Back to the start of AUTHORIZATION: forget the USER given. */
static void
reset_state(struct pop3_session *ps)
{
    str_wipe_free(&ps->user);
    ps->state = POP3_ST_START;
}

/* ---- commands ---- */

/* USER name: remember it for PASS (RFC 1939 7). */
static enum pop3_next
cmd_user(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    const struct pop3_conf *pc = s->sc->proto_data;

    if (starttls_only(s) || !(pc->mechs & AUTH_M_PLAIN) || cmd->nargs != 1
        || cmd->args[0].len == 0) {
        return NEXT_REFUSED;
    }
    str_wipe_free(&ps->user);
    if (str_set(&ps->user, cmd->args[0]) != 0) {
        session_log(s, LOG_LV_ERR, "out of memory in USER");
        send_lit(s, pop3_internal);
        return NEXT_CLOSE;
    }
    ps->state = POP3_ST_USER;
    return send_lit(s, pop3_ok) == 0 ? NEXT_READ : NEXT_CLOSE;
}

/* PASS secret: the USER and this password go to the auth service. */
static enum pop3_next
cmd_pass(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    if (cmd->nargs != 1 || cmd->args[0].len == 0) {
        return NEXT_REFUSED;
    }
    if (session_set_creds(s, AUTH_METHOD_PLAIN, ps->user, cmd->args[0],
                          STR_NULL) != 0) {
        session_log(s, LOG_LV_ERR, "out of memory in PASS");
        send_lit(s, pop3_internal);
        return NEXT_CLOSE;
    }
    reset_state(ps);
    return NEXT_AUTH;
}

/* APOP name digest: MD5 of the greeting's timestamp and the secret. */
static enum pop3_next
cmd_apop(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    const struct pop3_conf *pc = s->sc->proto_data;

    if (starttls_only(s) || !(pc->mechs & AUTH_M_APOP) || cmd->nargs != 2
        || ps->apop_salt.len == 0) {
        return NEXT_REFUSED;
    }
    if (session_set_creds(s, AUTH_METHOD_APOP, cmd->args[0], cmd->args[1],
                          ps->apop_salt) != 0) {
        session_log(s, LOG_LV_ERR, "out of memory in APOP");
        send_lit(s, pop3_internal);
        return NEXT_CLOSE;
    }
    return NEXT_AUTH;
}

/* What an AUTH exchange came to (now, or when it went on after the
 * session parked). */
static enum pop3_next
authenticated(struct session *s, enum sasl_rc rc)
{
    switch (rc) {
    case SASL_OK:
        return NEXT_AUTH;
    case SASL_PARK:
        return NEXT_PARK;
    case SASL_CANCEL:
        /* RFC 5034 4: the server rejects a cancelled AUTH with -ERR */
        return send_lit(s, pop3_cancelled) == 0 ? NEXT_READ : NEXT_CLOSE;
    case SASL_BAD:
        return NEXT_REFUSED;
    case SASL_INTERNAL:
        send_lit(s, pop3_internal);
        return NEXT_CLOSE;
    case SASL_IO:
    default:
        return NEXT_CLOSE;
    }
}

/* AUTH [mechanism [initial-response]] (RFC 5034). */
static enum pop3_next
cmd_auth(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    const struct pop3_conf *pc = s->sc->proto_data;
    struct str initial = STR_NULL;
    enum sasl_rc rc;
    unsigned mech = 0;

    (void)ps;
    if (starttls_only(s)) {
        return NEXT_REFUSED;
    }
    if (cmd->nargs == 0) {
        return send_str(s, pc->auth_list) == 0 ? NEXT_READ : NEXT_CLOSE;
    }
    for (size_t i = 0; i < NMECHS; i++) {
        if (str_eq_ci(cmd->args[0], pop3_mechs[i].name)) {
            mech = pop3_mechs[i].bit;
            break;
        }
    }
    if (mech == 0 || !(pc->mechs & mech)) {
        return NEXT_REFUSED;
    }

    /*
     * The initial response may hold a password and lives in the client
     * buffer, which the exchange reads on: take a copy, wipe the original.
     */
    if (cmd->nargs == 2) {
        if (str_set(&initial, cmd->args[1]) != 0) {
            session_log(s, LOG_LV_ERR, "out of memory in AUTH");
            send_lit(s, pop3_internal);
            return NEXT_CLOSE;
        }
        mem_wipe(cmd->args[1].data, cmd->args[1].len);
    }
    rc = sasl_exchange(s, mech, initial, "+ ");
    str_wipe_free(&initial);
    return authenticated(s, rc);
}

/* CAPA (RFC 2449 5): STLS is offered only before USER, where it may be
 * used; under "starttls only" the list leaves out USER and SASL. */
static enum pop3_next
cmd_capa(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    const struct pop3_conf *pc = s->sc->proto_data;
    struct str reply = pc->capa;

    (void)cmd;
    if (ps->state == POP3_ST_START && !s->tls) {
        if (s->sc->starttls == STARTTLS_ON) {
            reply = pc->capa_stls;
        } else if (s->sc->starttls == STARTTLS_ONLY) {
            reply = pc->capa_stls_only;
        }
    }
    return send_str(s, reply) == 0 ? NEXT_READ : NEXT_CLOSE;
}

static enum pop3_next
cmd_noop(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    (void)ps;
    (void)cmd;
    return send_lit(s, pop3_ok) == 0 ? NEXT_READ : NEXT_CLOSE;
}

/* QUIT in AUTHORIZATION: "+OK" and the connection closes (RFC 1939 6). */
static enum pop3_next
cmd_quit(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    (void)ps;
    (void)cmd;
    send_lit(s, pop3_ok);
    return NEXT_CLOSE;
}

/* STLS (RFC 2595 4): reply, then TLS; everything before it is forgotten. */
static enum pop3_next
cmd_stls(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    (void)cmd;
    if (s->tls || s->sc->starttls == STARTTLS_OFF) {
        return NEXT_REFUSED;
    }
    if (send_lit(s, pop3_ok) != 0) {
        return NEXT_CLOSE;
    }
    /* session_starttls drops the buffered plaintext: a new line starts */
    pop3_parser_init(&ps->parser);
    reset_state(ps);
    switch (session_starttls(s)) {
    case 0:
        return NEXT_READ;
    case 1:
        return NEXT_PARK;
    default:
        return NEXT_CLOSE;
    }
}

/* ---- proto_ops ---- */

/* Without APOP every client gets the same greeting; with it, each its own
 * timestamp: *st, made here unless the acceptor made it for the greeting
 * it sent.  (NGINX also adds the timestamp when only CRAM-MD5 is on;
 * postern does not, because clients take a timestamp as an offer of
 * APOP.) */
static const char *
pop3_greeting_text(const struct server_conf *sc, struct stamp *st, char *buf,
                   size_t cap, size_t *len)
{
    const struct pop3_conf *pc = sc->proto_data;
    static const char head[] = POP3_GREETING " ";
    size_t n;

    if (!(pc->mechs & AUTH_M_APOP)) {
        *len = sizeof(pop3_greeting_line) - 1;
        return pop3_greeting_line;
    }
    if (st->time == 0 && stamp_make(st) != 0) {
        return NULL;
    }
    if (cap < sizeof(head) + 2) {
        return NULL;
    }
    memcpy(buf, head, sizeof(head) - 1);
    n = stamp_format(st, sc->server_name, buf + sizeof(head) - 1,
                     cap - (sizeof(head) - 1) - 2);
    if (n == 0) {
        return NULL;
    }
    n += sizeof(head) - 1;
    memcpy(buf + n, CRLF, 2);
    *len = n + 2;
    return buf;
}

/* Send "+OK POP3 ready", with an APOP timestamp when APOP is enabled
 * (the text the acceptor sent, if it did, with the same timestamp). */
static enum sess_rc
pop3_greet(struct session *s)
{
    const struct pop3_conf *pc = s->sc->proto_data;
    struct pop3_session *ps;
    char buf[PROTO_GREETING_MAX];
    const char *text;
    size_t len;

    ps = calloc(1, sizeof(*ps));
    if (ps == NULL) {
        session_log(s, LOG_LV_ERR, "out of memory");
        send_lit(s, pop3_internal);
        return SESS_CLOSE;
    }
    s->proto_state = ps;
    ps->state = POP3_ST_START;
    pop3_parser_init(&ps->parser);

    text = pop3_greeting_text(s->sc, &s->stamp, buf, sizeof(buf), &len);
    if (text == NULL) {
        session_log(s, LOG_LV_ERR, "cannot make the APOP timestamp");
        send_lit(s, pop3_internal);
        return SESS_CLOSE;
    }
    if (pc->mechs & AUTH_M_APOP) {
        /* the digest is of the timestamp as sent: between the greeting's
         * words and its CRLF */
        size_t head = sizeof(POP3_GREETING " ") - 1;
        struct str salt = { len - head - 2, (unsigned char *)text + head };

        if (str_set(&ps->apop_salt, salt) != 0) {
            session_log(s, LOG_LV_ERR, "out of memory");
            send_lit(s, pop3_internal);
            return SESS_CLOSE;
        }
    }
    return session_send_greeting(s, text, len) == 0 ? SESS_OK : SESS_CLOSE;
}

/* Run one command through the table. */
static enum pop3_next
dispatch(struct session *s, struct pop3_session *ps,
         const struct pop3_command *cmd)
{
    for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]);
         i++) {
        if (pop3_commands[i].cmd == cmd->cmd) {
            if (!(pop3_commands[i].states & ps->state)) {
                return NEXT_REFUSED;
            }
            return pop3_commands[i].handler(s, ps, cmd);
        }
    }
    return NEXT_INVALID;
}

/* Read more client bytes for the parser: session_fill_client's 1 / 0
 * (park) / -1 (logged, close). */
static int
fill(struct session *s, struct pop3_session *ps)
{
    struct conn *c = &s->client;

    if (buf_room(&c->in) == 0) {
        buf_compact(&c->in);
    }
    if (buf_room(&c->in) == 0) {
        /* a line longer than the client buffer: skip it */
        pop3_parser_overflow(&ps->parser);
        buf_consume(&c->in, buf_len(&c->in));
        buf_compact(&c->in);
    }
    return session_fill_client(s);
}

/* After a command (or an AUTH exchange back from a park): SESS_OK to read
 * the next command, else what the dialogue returns. */
static enum sess_rc
command_done(struct session *s, struct pop3_session *ps, enum pop3_next next)
{
    switch (next) {
    case NEXT_READ:
        return SESS_OK;
    case NEXT_AUTH:
        return SESS_AUTH;
    case NEXT_PARK:
        return SESS_PARK;
    case NEXT_CLOSE:
        return SESS_CLOSE;
    case NEXT_INVALID:
    case NEXT_REFUSED:
        reset_state(ps);
        session_clear_creds(s);
        if (send_lit(s, pop3_invalid) != 0
            || (next == NEXT_INVALID && session_error(s))) {
            return SESS_CLOSE;
        }
        return SESS_OK;
    }
    return SESS_CLOSE;
}

/* Read and answer commands until there are credentials or the end. */
static enum sess_rc
pop3_dialogue(struct session *s)
{
    struct pop3_session *ps = s->proto_state;
    struct conn *c = &s->client;
    struct pop3_command cmd;
    enum pop3_parse_rc prc;
    enum pop3_next next;
    enum sess_rc step;
    size_t used;

    s->action = "in auth state";
    for (;;) {
        if (s->sasl != NULL) {
            /* back from a park in AUTH */
            step = command_done(s, ps, authenticated(s, sasl_resume(s)));
            if (step != SESS_OK) {
                return step;
            }
            continue;
        }
        prc = pop3_parse(&ps->parser, buf_head(&c->in), buf_len(&c->in),
                         &cmd, &used);
        buf_consume(&c->in, used);
        if (prc == POP3_PARSE_AGAIN) {
            /* everything so far is in the buffer and the parser */
            switch (fill(s, ps)) {
            case 1:
                continue;
            case 0:
                return SESS_PARK;
            default:
                return SESS_CLOSE;
            }
        }

        if (prc == POP3_PARSE_INVALID) {
            if (ps->parser.too_long) {
                session_log(s, LOG_LV_INFO, "client sent too long command");
            }
            next = NEXT_INVALID;
        } else {
            next = dispatch(s, ps, &cmd);
        }
        if (prc == POP3_PARSE_OK && cmd.cmd == POP3_CMD_PASS) {
            /* the password is in the consumed part of the buffer */
            mem_wipe(cmd.args[0].data, cmd.args[0].len);
        }

        step = command_done(s, ps, next);
        if (step != SESS_OK) {
            return step;
        }
    }
}

/* The auth service said no (Auth-Status text) or could not answer. */
static enum sess_rc
pop3_auth_error(struct session *s, const struct auth_result *r)
{
    struct pop3_session *ps = s->proto_state;

    if (ps != NULL) {
        reset_state(ps);
    }
    session_clear_creds(s);
    if (r->status != AUTH_FAIL) {
        send_lit(s, pop3_internal);
        return SESS_CLOSE;
    }
    if (session_sendf(s, "-ERR %.*s" CRLF, AUTH_MESSAGE_SHOWN,
                      r->message && r->message[0] ? r->message
                                                  : "authentication failed")
        != 0) {
        return SESS_CLOSE;
    }
    /* As NGINX: only an Auth-Wait lets the client try again. */
    return r->wait > 0 ? SESS_OK : SESS_CLOSE;
}

/* Length of a line without its CR / LF. */
static size_t
line_trim(const unsigned char *p, size_t len)
{
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
        len--;
    }
    return len;
}

/*
 * Read one backend reply line and check that it is "+OK".  On anything
 * else answer the client as NGINX does (the backend's own line with
 * proxy_pass_error_message, else an internal error) and return -1.
 */
static int
backend_expect_ok(struct session *s, unsigned char **line_r, size_t *len_r)
{
    char text[256];
    size_t n;

    if (session_backend_line(s, line_r, len_r) != 0) {
        send_lit(s, pop3_internal);
        return -1;
    }
    if (*len_r >= 3 && memcmp(*line_r, "+OK", 3) == 0) {
        return 0;
    }

    str_log_text(*line_r, *len_r, text, sizeof(text));
    if (!s->sc->proxy_pass_error_message) {
        session_log(s, LOG_LV_ERR, "upstream sent invalid response: \"%s\"",
                    text);
        send_lit(s, pop3_internal);
        return -1;
    }
    session_log(s, LOG_LV_INFO, "upstream sent invalid response: \"%s\"",
                text);
    /* pass the line on, but as one well-formed line */
    n = line_trim(*line_r, *len_r);
    if (str_has_ctl((struct str){ n, *line_r })) {
        send_lit(s, pop3_internal);
    } else if (session_send(s, (const char *)*line_r, n) == 0) {
        session_send(s, CRLF, 2);
    }
    return -1;
}

/* backend_caps: the backend's CAPA listed PIPELINING (RFC 2449 6.6) */
#define POP3_CAPS_PIPELINING  1u
/* Lines of a backend's CAPA answer read at most (RFC 2449 lists a dozen
 * capabilities; Dovecot answers with ten lines) */
#define POP3_CAPA_LINES_MAX   64

/*
 * Whether the backend takes USER and PASS in one write: its CAPA lists
 * PIPELINING.  What it answered is remembered for the next logins
 * (backend_caps.c), so CAPA goes once a minute per backend; NGINX never
 * asks and waits for the answer to USER each time.  1 / 0, -1 failed (the
 * client told).
 */
static int
backend_pipelining(struct session *s)
{
    unsigned caps = 0;
    unsigned char *line;
    size_t len;

    if (backend_caps_get(PROTO_POP3, s->upstream, clock_now(), &caps)) {
        return (caps & POP3_CAPS_PIPELINING) != 0;
    }
    s->action = "sending CAPA to upstream";
    if (session_backend_send(s, "CAPA", STR_NULL, CRLF) != 0) {
        send_lit(s, pop3_internal);
        return -1;
    }
    s->action = "reading response from upstream";
    if (session_backend_line(s, &line, &len) != 0) {
        send_lit(s, pop3_internal);
        return -1;
    }
    /* "-ERR": a server older than CAPA, which pipelines nothing */
    if (len >= 3 && memcmp(line, "+OK", 3) == 0) {
        for (int lines = 0;; lines++) {
            if (session_backend_line(s, &line, &len) != 0) {
                send_lit(s, pop3_internal);
                return -1;
            }
            len = line_trim(line, len);
            if (len == 1 && line[0] == '.') {
                break;
            }
            if (lines == POP3_CAPA_LINES_MAX) {
                session_log(s, LOG_LV_ERR, "upstream sent too long CAPA "
                            "response (over %d lines)", POP3_CAPA_LINES_MAX);
                send_lit(s, pop3_internal);
                return -1;
            }
            /* a capability is a word, its arguments after a space */
            if ((len == 10 || (len > 10 && line[10] == ' '))
                && strncasecmp((const char *)line, "PIPELINING", 10) == 0) {
                caps |= POP3_CAPS_PIPELINING;
            }
        }
    }
    backend_caps_put(PROTO_POP3, s->upstream, caps, clock_now());
    return (caps & POP3_CAPS_PIPELINING) != 0;
}

/* "USER user", "PASS pass", or both at once (NULL: not this one); the
 * line holding the password is wiped after it is sent.  -1: the client is
 * told. */
static int
backend_send_login(struct session *s, const char *action,
                   const struct str *user, const struct str *pass)
{
    struct str_builder line = STR_BUILDER_INIT;
    int rc;

    if (user != NULL) {
        str_builder_puts(&line, "USER ");
        str_builder_add(&line, (const char *)user->data, user->len);
        str_builder_puts(&line, CRLF);
    }
    if (pass != NULL) {
        str_builder_puts(&line, "PASS ");
        str_builder_add(&line, (const char *)pass->data, pass->len);
        str_builder_puts(&line, CRLF);
    }
    s->action = action;
    rc = session_backend_write(s, &line);
    if (rc != 0) {
        send_lit(s, pop3_internal);
    }
    s->action = "reading response from upstream";   /* as NGINX */
    return rc;
}

/* Greeting, USER, PASS on the backend; its final "+OK" goes to the client.
 * A backend whose CAPA lists PIPELINING gets USER and PASS together, and
 * answers both in one round trip. */
static enum sess_rc
pop3_backend_login(struct session *s)
{
    struct str user = s->auth.user.len > 0 ? s->auth.user : s->login;
    struct str pass = s->auth.pass.len > 0 ? s->auth.pass : s->passwd;
    unsigned char *line;
    size_t len;
    int together;

    s->action = "reading greeting from upstream";
    if (backend_expect_ok(s, &line, &len) != 0) {
        return SESS_CLOSE;
    }

    if (str_has_ctl(user) || str_has_ctl(pass)) {
        session_log(s, LOG_LV_ERR,
                    "login or password for upstream contains CR, LF or NUL");
        send_lit(s, pop3_internal);
        return SESS_CLOSE;
    }
    together = backend_pipelining(s);
    if (together < 0) {
        return SESS_CLOSE;
    }
    if (together) {
        if (backend_send_login(s, "sending user name to upstream", &user,
                               &pass) != 0
            || backend_expect_ok(s, &line, &len) != 0) {
            return SESS_CLOSE;
        }
    } else {
        if (backend_send_login(s, "sending user name to upstream", &user,
                               NULL) != 0
            || backend_expect_ok(s, &line, &len) != 0
            || backend_send_login(s, "sending password to upstream", NULL,
                                  &pass) != 0) {
            return SESS_CLOSE;
        }
    }
    if (backend_expect_ok(s, &line, &len) != 0) {
        return SESS_CLOSE;
    }

    /* NGINX passes the backend's answer to PASS through to the client */
    s->action = "sending login reply to client";
    if (session_send(s, (const char *)line, len) != 0) {
        return SESS_CLOSE;
    }
    s->action = NULL;
    return SESS_OK;
}

static void
pop3_internal_error(struct session *s)
{
    send_lit(s, pop3_internal);
}

/* Free s->proto_state, wiping what it remembers. */
static void
pop3_free_state(struct session *s)
{
    struct pop3_session *ps = s->proto_state;

    if (ps == NULL) {
        return;
    }
    str_wipe_free(&ps->user);
    str_wipe_free(&ps->apop_salt);
    free(ps);
    s->proto_state = NULL;
}

const struct proto_ops pop3_ops = {
    .proto = PROTO_POP3,
    .name = "pop3",
    .default_port = 110,
    .conf_init = pop3_conf_init,
    .conf_free = pop3_conf_free,
    .greeting = pop3_greeting_text,
    .greet = pop3_greet,
    .dialogue = pop3_dialogue,
    .auth_error = pop3_auth_error,
    .backend_login = pop3_backend_login,
    .internal_error = pop3_internal_error,
    .free_state = pop3_free_state,
    .busy_line = "-ERR server busy" CRLF,
};
