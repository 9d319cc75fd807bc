/*
 * imap.c - the IMAP side of a session: greeting and the commands a client
 * may send before it is logged in; the LOGIN to the backend is
 * imap_backend.c's.  Behaves as NGINX's mail module
 * (ngx_mail_imap_handler.c), with the reply texts NGINX uses.
 *
 * Handles untrusted input (client commands through imap_parse.c) and
 * secrets (the password on its way to session_set_creds and the SASL
 * exchange; every copy made here is wiped).  No locks:
 * the capability lines in sc->proto_data are built once at configuration
 * time and only read afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conn.h"
#include "imap_int.h"
#include "imap_parse.h"
#include "log.h"
#include "proto.h"
#include "sasl.h"
#include "session.h"
#include "str.h"

static const char imap_greeting[] = "* OK IMAP4 ready\r\n";
static const char imap_next[] = "+ OK\r\n";
static const char imap_internal[] = "* BAD internal server error\r\n";

/* The three CAPABILITY lines, built once per server. */
enum { CAP_PLAIN, CAP_STARTTLS, CAP_STARTTLS_ONLY, CAP_N };

struct imap_conf {
    char *cap[CAP_N];
    size_t cap_len[CAP_N];
};

/* What a command handler tells the dialogue loop. */
enum cmd_rc {
    CMD_NEXT,      /* replied; read the next command */
    CMD_BAD,       /* answer "tag BAD invalid command" (not counted) */
    CMD_AUTH,      /* credentials are set: ask the auth service */
    CMD_CLOSE,     /* replied (or failed); end the session */
    CMD_PARK,      /* a SASL challenge awaits its answer, or the client is
                    * silent in STARTTLS's handshake: park the session */
};

/* The states a command may be allowed in: where TLS stands. */
enum {
    ST_PLAIN = 1u << 0,        /* no TLS, starttls off */
    ST_STARTTLS = 1u << 1,     /* no TLS yet, starttls on */
    ST_TLS_ONLY = 1u << 2,     /* no TLS yet, starttls only */
    ST_TLS = 1u << 3,          /* under TLS */
    ST_ANY = ST_PLAIN | ST_STARTTLS | ST_TLS_ONLY | ST_TLS,
    ST_LOGIN = ST_PLAIN | ST_STARTTLS | ST_TLS
};

struct imap_cmd {
    const char *name;
    unsigned states;
    unsigned auth;      /* the imap_auth bit it needs; 0: none */
    enum cmd_rc (*handler)(struct session *s, struct imap_parser *c,
                           unsigned char *raw);
};

/* ---- configuration ---------------------------------------------------- */

/* AUTH= names in NGINX's order (the order of the AUTH_M_* bits). */
static const struct {
    unsigned bit;
    const char *name;
} imap_auth_names[] = {
    { AUTH_M_PLAIN, "AUTH=PLAIN" },
    { AUTH_M_LOGIN, "AUTH=LOGIN" },
    { AUTH_M_CRAM_MD5, "AUTH=CRAM-MD5" },
    { AUTH_M_EXTERNAL, "AUTH=EXTERNAL" },
};

/* Build one CAPABILITY line; with_auth adds the AUTH= list, extra the end.
 * A heap C string (imap_conf_free frees it) with its length; NULL on ENOMEM. */
static char *
cap_build(const struct server_conf *sc, int with_auth, const char *extra,
          size_t *len_r)
{
    struct str_builder b = STR_BUILDER_INIT;
    struct str line;

    str_builder_puts(&b, "* CAPABILITY");
    for (size_t i = 0; i < sc->imap_capabilities.n; i++) {
        str_builder_puts(&b, " ");
        str_builder_puts(&b, sc->imap_capabilities.v[i]);
    }
    for (size_t i = 0; with_auth && i < sizeof(imap_auth_names)
                                        / sizeof(imap_auth_names[0]); i++) {
        if (sc->imap_auth & imap_auth_names[i].bit) {
            str_builder_puts(&b, " ");
            str_builder_puts(&b, imap_auth_names[i].name);
        }
    }
    str_builder_puts(&b, extra);
    str_builder_puts(&b, "\r\n");
    if (str_builder_take(&b, &line) != 0) {
        return NULL;
    }
    *len_r = line.len;
    return (char *)line.data;
}

static void imap_conf_free(struct server_conf *sc);

/*
 * Build the three CAPABILITY lines as NGINX does: the plain one, the one
 * with STARTTLS (starttls on), and under starttls only one that names no
 * AUTH= mechanism but STARTTLS LOGINDISABLED.  Without "plain" in
 * imap_auth the LOGIN command is refused, so the other two announce
 * LOGINDISABLED as well (RFC 3501 6.2.3: a client then never sends it).
 */
static int
imap_conf_init(struct server_conf *sc, char *err, size_t errlen)
{
    struct imap_conf *ic;
    size_t i;
    int login_ok;

    /* imap_capabilities holds atoms only: conf_table.c checked them */
    ic = calloc(1, sizeof(*ic));
    if (ic == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sc->proto_data = ic;
    login_ok = (sc->imap_auth & AUTH_M_PLAIN) != 0;
    ic->cap[CAP_PLAIN] = cap_build(sc, 1, login_ok ? "" : " LOGINDISABLED",
                                   &ic->cap_len[CAP_PLAIN]);
    ic->cap[CAP_STARTTLS] = cap_build(sc, 1, login_ok ? " STARTTLS"
                                      : " STARTTLS LOGINDISABLED",
                                      &ic->cap_len[CAP_STARTTLS]);
    ic->cap[CAP_STARTTLS_ONLY] = cap_build(sc, 0, " STARTTLS LOGINDISABLED",
                                           &ic->cap_len[CAP_STARTTLS_ONLY]);
    for (i = 0; i < CAP_N; i++) {
        if (ic->cap[i] == NULL) {
            imap_conf_free(sc);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Free what imap_conf_init built. */
static void
imap_conf_free(struct server_conf *sc)
{
    struct imap_conf *ic = sc->proto_data;

    if (ic == NULL) {
        return;
    }
    for (size_t i = 0; i < CAP_N; i++) {
        free(ic->cap[i]);
    }
    free(ic);
    sc->proto_data = NULL;
}

/* ---- replies ---------------------------------------------------------- */

/* The tag a reply to the current command carries: "*" when none was read. */
static const char *
cur_tag(const struct imap_parser *p)
{
    return p->tag_len > 0 ? p->tag : "*";
}

/* "TAG TEXT\r\n"; 0 / -1. */
static int
reply(struct session *s, const char *tag, const char *text)
{
    return session_sendf(s, "%s %s\r\n", tag, text);
}

/* Where TLS stands, as one of the ST_* bits. */
static unsigned
tls_state(const struct session *s)
{
    if (s->tls) {
        return ST_TLS;
    }
    switch (s->sc->starttls) {
    case STARTTLS_ON:
        return ST_STARTTLS;
    case STARTTLS_ONLY:
        return ST_TLS_ONLY;
    default:
        return ST_PLAIN;
    }
}

/* ---- commands --------------------------------------------------------- */

/* CAPABILITY: the line built for where TLS stands, then OK. */
static enum cmd_rc
cmd_capability(struct session *s, struct imap_parser *c, unsigned char *raw)
{
    const struct imap_conf *ic = s->sc->proto_data;
    int which;

    (void)raw;
    switch (tls_state(s)) {
    case ST_STARTTLS:
        which = CAP_STARTTLS;
        break;
    case ST_TLS_ONLY:
        which = CAP_STARTTLS_ONLY;
        break;
    default:
        which = CAP_PLAIN;
        break;
    }
    if (session_send(s, ic->cap[which], ic->cap_len[which]) != 0
        || reply(s, c->tag, "OK completed") != 0)
    {
        return CMD_CLOSE;
    }
    return CMD_NEXT;
}

/* NOOP: nothing to do before login. */
static enum cmd_rc
cmd_noop(struct session *s, struct imap_parser *c, unsigned char *raw)
{
    (void)raw;
    return reply(s, c->tag, "OK completed") == 0 ? CMD_NEXT : CMD_CLOSE;
}

/* LOGOUT: BYE, OK, close.  RFC 3501's BYE carries text (resp-text needs
 * at least one character); NGINX's bare "* BYE" trips strict parsers. */
static enum cmd_rc
cmd_logout(struct session *s, struct imap_parser *c, unsigned char *raw)
{
    (void)raw;
    session_sendf(s, "* BYE logging out\r\n%s OK completed\r\n", c->tag);
    return CMD_CLOSE;
}

/*
 * ID (RFC 2971).  A deliberate difference from NGINX, which answers ID with
 * BAD and counts it against max_errors: clients such as Thunderbird and
 * Apple Mail send ID before they log in, so we answer with our (empty)
 * identification.  The client's list is checked by the parser and ignored.
 */
static enum cmd_rc
cmd_id(struct session *s, struct imap_parser *c, unsigned char *raw)
{
    (void)raw;
    if (c->nargs != 1
        || !(c->args[0].type == IMAP_ARG_LIST
             || (c->args[0].type == IMAP_ARG_ATOM
                 && str_eq_ci(c->args[0].s, "NIL"))))
    {
        return CMD_BAD;
    }
    if (session_sendf(s, "* ID NIL\r\n%s OK completed\r\n", c->tag) != 0) {
        return CMD_CLOSE;
    }
    return CMD_NEXT;
}

/*
 * STARTTLS: answer (NGINX's text is "OK completed"), then the handshake;
 * session_starttls() throws away whatever the client pipelined after it.
 */
static enum cmd_rc
cmd_starttls(struct session *s, struct imap_parser *c, unsigned char *raw)
{
    (void)raw;                  /* arguments are ignored, as by NGINX */
    if (reply(s, c->tag, "OK completed") != 0) {
        return CMD_CLOSE;
    }
    switch (session_starttls(s)) {
    case 0:
        return CMD_NEXT;
    case 1:
        return CMD_PARK;
    default:
        return CMD_CLOSE;
    }
}

/* An argument that is a string (not a list). */
static int
is_string(const struct imap_arg *a)
{
    return a->type != IMAP_ARG_LIST;
}

/* Remember the tag of the command that logs in (for auth_error, backend). */
static void
keep_tag(struct session *s, const struct imap_parser *c)
{
    struct imap_state *st = s->proto_state;

    memcpy(st->tag, c->tag, c->tag_len + 1);
}

/*
 * LOGIN user password: exactly two arguments, as NGINX.  An empty user
 * (which NGINX refuses as a quoted "" but passes on as a {0} literal) and
 * a user with CR, LF or NUL are refused as malformed: neither can be a
 * mailbox name, and the second would reach headers and log lines (see
 * postern(8), DIFFERENCES FROM NGINX).  Only with "plain" in imap_auth
 * (see imap_cmds).
 */
static enum cmd_rc
cmd_login(struct session *s, struct imap_parser *c, unsigned char *raw)
{
    if (c->nargs != 2 || !is_string(&c->args[0]) || !is_string(&c->args[1])
        || c->args[0].s.len == 0 || str_has_ctl(c->args[0].s))
    {
        return CMD_BAD;
    }
    if (session_set_creds(s, AUTH_METHOD_PLAIN, c->args[0].s, c->args[1].s,
                          STR_NULL) != 0)
    {
        mem_wipe(raw, c->consumed);
        session_log(s, LOG_LV_ERR, "out of memory");
        imap_internal_error(s);
        return CMD_CLOSE;
    }
    mem_wipe(raw, c->consumed);       /* the password was in there */
    keep_tag(s, c);
    session_log(s, LOG_LV_DEBUG, "imap login");
    return CMD_AUTH;
}

/* The AUTH_M_* bit of a SASL mechanism name; 0 if unknown. */
static unsigned
sasl_mech(struct str name)
{
    if (str_eq_ci(name, "PLAIN")) {
        return AUTH_M_PLAIN;
    }
    if (str_eq_ci(name, "LOGIN")) {
        return AUTH_M_LOGIN;
    }
    if (str_eq_ci(name, "CRAM-MD5")) {
        return AUTH_M_CRAM_MD5;
    }
    if (str_eq_ci(name, "EXTERNAL")) {
        return AUTH_M_EXTERNAL;
    }
    return 0;
}

/* What an AUTHENTICATE exchange came to (now, or when it went on after
 * the session parked). */
static enum cmd_rc
authenticated(struct session *s, enum sasl_rc rc)
{
    switch (rc) {
    case SASL_OK:
        return CMD_AUTH;
    case SASL_PARK:
        return CMD_PARK;
    case SASL_CANCEL:
    case SASL_BAD:
        return CMD_BAD;         /* RFC 3501 6.2.2: a tagged BAD */
    case SASL_INTERNAL:
        imap_internal_error(s); /* logged; as NGINX, then close */
        return CMD_CLOSE;
    case SASL_IO:
    default:
        return CMD_CLOSE;
    }
}

/*
 * AUTHENTICATE mechanism [initial-response] (RFC 4959 SASL-IR).  Only the
 * mechanisms imap_auth enables (NGINX checks this for CRAM-MD5 and
 * EXTERNAL only; we check it for all, so what is not advertised is not
 * accepted).  The command is consumed already: the exchange reads the
 * client's next lines from the same buffer, which may move, so the initial
 * response is copied first.
 */
static enum cmd_rc
cmd_authenticate(struct session *s, struct imap_parser *c, unsigned char *raw)
{
    struct str initial = STR_NULL;
    unsigned mech;
    enum sasl_rc rc;

    if (c->nargs < 1 || c->nargs > 2 || !is_string(&c->args[0])
        || (c->nargs == 2 && !is_string(&c->args[1])))
    {
        return CMD_BAD;
    }
    mech = sasl_mech(c->args[0].s);
    if (mech == 0 || !(s->sc->imap_auth & mech)
        || (mech == AUTH_M_CRAM_MD5 && c->nargs == 2))
    {
        return CMD_BAD;
    }
    keep_tag(s, c);
    if (c->nargs == 2) {
        initial.len = c->args[1].s.len;
        initial.data = malloc(initial.len + 1);
        if (initial.data == NULL) {
            mem_wipe(raw, c->consumed);
            session_log(s, LOG_LV_ERR, "out of memory");
            imap_internal_error(s);
            return CMD_CLOSE;
        }
        memcpy(initial.data, c->args[1].s.data, initial.len);
    }
    mem_wipe(raw, c->consumed);

    rc = sasl_exchange(s, mech, initial, "+ ");
    str_wipe_free(&initial);
    return authenticated(s, rc);
}

/*
 * Under starttls only, NGINX answers LOGIN before TLS with BAD.  Unlike
 * NGINX, LOGIN also needs "plain" in imap_auth: it sends the password in
 * clear as AUTHENTICATE PLAIN does, and an operator who leaves "plain"
 * out means to refuse both (CAPABILITY then says LOGINDISABLED).
 */
static const struct imap_cmd imap_cmds[] = {
    { "CAPABILITY", ST_ANY, 0, cmd_capability },
    { "NOOP", ST_ANY, 0, cmd_noop },
    { "LOGOUT", ST_ANY, 0, cmd_logout },
    { "ID", ST_ANY, 0, cmd_id },
    { "STARTTLS", ST_STARTTLS | ST_TLS_ONLY, 0, cmd_starttls },
    { "LOGIN", ST_LOGIN, AUTH_M_PLAIN, cmd_login },
    { "AUTHENTICATE", ST_LOGIN, 0, cmd_authenticate },
};

/* The table entry for a command name; NULL if unknown. */
static const struct imap_cmd *
find_cmd(struct str name)
{
    for (size_t i = 0; i < sizeof(imap_cmds) / sizeof(imap_cmds[0]); i++) {
        if (str_eq_ci(name, imap_cmds[i].name)) {
            return &imap_cmds[i];
        }
    }
    return NULL;
}

/* Whether cmd may run now: where TLS stands, and what imap_auth allows.
 * A command that may not is answered "tag BAD invalid command". */
static int
cmd_allowed(const struct session *s, const struct imap_cmd *cmd)
{
    return (cmd->states & tls_state(s)) != 0
           && (cmd->auth == 0 || (s->sc->imap_auth & cmd->auth) != 0);
}

/* ---- the dialogue ----------------------------------------------------- */

/*
 * A line the parser refused: "tag BAD invalid command" (or "* BAD ..."),
 * counted against max_errors as NGINX counts parse errors.  1 to close.
 */
static int
bad_line(struct session *s, const struct imap_parser *p)
{
    int close = 0;

    if (p->fatal) {
        /* too long, or a {n+} literal whose bytes we cannot skip */
        session_log(s, LOG_LV_INFO, "client sent %s",
                    p->error != NULL ? p->error : "invalid command");
        close = 1;
    } else {
        session_log(s, LOG_LV_DEBUG, "client sent invalid command: %s",
                    p->error != NULL ? p->error : "?");
        close = session_error(s);
    }
    if (reply(s, cur_tag(p), "BAD invalid command") != 0) {
        return 1;
    }
    return close;
}

/*
 * Answer a command that may not run: "tag BAD invalid command".  An
 * unknown name is a counted error (NGINX's parser refuses it); a known
 * command not allowed now is not counted, as NGINX does.  1 to close.
 */
static int
refuse_cmd(struct session *s, const struct imap_parser *p,
           const struct imap_cmd *cmd)
{
    if (reply(s, p->tag, "BAD invalid command") != 0) {
        return 1;
    }
    return cmd == NULL && session_error(s);
}

/* After a command's handler (or a SASL exchange back from a park): SESS_OK
 * to read the next command, else what the dialogue returns. */
static enum sess_rc
command_done(struct session *s, const struct imap_parser *p, enum cmd_rc rc)
{
    switch (rc) {
    case CMD_NEXT:
        return SESS_OK;
    case CMD_BAD:
        return reply(s, p->tag, "BAD invalid command") != 0 ? SESS_CLOSE
                                                             : SESS_OK;
    case CMD_AUTH:
        return SESS_AUTH;
    case CMD_PARK:
        return SESS_PARK;
    case CMD_CLOSE:
        break;
    }
    return SESS_CLOSE;
}

/*
 * Commands until there are credentials (SESS_AUTH) or the end
 * (SESS_CLOSE).  Pipelined commands are handled in order; after the one
 * that logs in, what follows stays in s->client.in for the backend.
 */
static enum sess_rc
imap_dialogue(struct session *s)
{
    struct imap_state *st = s->proto_state;
    struct imap_parser *p = &st->parser;
    struct buf *in = &s->client.in;
    const struct imap_cmd *cmd;
    unsigned char *raw;
    enum sess_rc step;

    for (;;) {
        if (s->sasl != NULL) {
            /* back from a park in AUTHENTICATE: its tag is still p's */
            step = command_done(s, p, authenticated(s, sasl_resume(s)));
            if (step != SESS_OK) {
                return step;
            }
            continue;
        }
        raw = buf_head(in);

        switch (imap_parse(p, raw, buf_len(in))) {
        case IMAP_PARSE_AGAIN:
            /* everything so far is in the buffer and the parser */
            switch (session_fill_client(s)) {
            case 1:
                continue;
            case 0:
                return SESS_PARK;
            default:
                return SESS_CLOSE;
            }

        case IMAP_PARSE_CONTINUE:
            cmd = find_cmd(p->name);
            if (cmd != NULL && cmd_allowed(s, cmd)) {
                if (session_send(s, imap_next, sizeof(imap_next) - 1) != 0) {
                    return SESS_CLOSE;
                }
                continue;
            }
            /* it will be refused: BAD now rather than ask for its literal
             * (a password, for LOGIN before TLS under starttls only) */
            imap_parse_refuse(p);
            mem_wipe(raw, p->consumed);
            buf_consume(in, p->consumed);
            if (refuse_cmd(s, p, cmd)) {
                return SESS_CLOSE;
            }
            continue;

        case IMAP_PARSE_INVALID: {
            size_t n = p->consumed;
            int close;

            buf_consume(in, n);
            close = bad_line(s, p);     /* its tag still lies in raw */
            /* a bad line may be a literal's bytes sent without waiting
             * for "+" after its command was refused: a password */
            mem_wipe(raw, n);
            if (close) {
                return SESS_CLOSE;
            }
            continue;
        }

        case IMAP_PARSE_OK:
            break;
        }

        /*
         * Consumed before the handler runs: the arguments stay readable
         * until the handler reads from the client (AUTHENTICATE copies
         * what it needs, STARTTLS needs nothing and drops the buffer).
         */
        buf_consume(in, p->consumed);

        cmd = find_cmd(p->name);
        if (cmd == NULL || !cmd_allowed(s, cmd)) {
            mem_wipe(raw, p->consumed);     /* a LOGIN holds a password */
            if (refuse_cmd(s, p, cmd)) {
                return SESS_CLOSE;
            }
            continue;
        }

        step = command_done(s, p, cmd->handler(s, p, raw));
        if (step != SESS_OK) {
            return step;
        }
    }
}

/* Allocate the session's state and greet. */
static enum sess_rc
imap_greet(struct session *s)
{
    struct imap_state *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        session_log(s, LOG_LV_ERR, "out of memory");
        return SESS_CLOSE;
    }
    imap_parser_init(&st->parser, s->client.in.size);
    s->proto_state = st;
    if (session_send_greeting(s, imap_greeting, sizeof(imap_greeting) - 1)
        != 0) {
        return SESS_CLOSE;
    }
    return SESS_OK;
}

/* The same greeting for every client. */
static const char *
imap_greeting_text(const struct server_conf *sc, struct stamp *st, char *buf,
                   size_t cap, size_t *len)
{
    (void)sc;
    (void)st;
    (void)buf;
    (void)cap;
    *len = sizeof(imap_greeting) - 1;
    return imap_greeting;
}

void
imap_internal_error(struct session *s)
{
    session_send(s, imap_internal, sizeof(imap_internal) - 1);
}

/*
 * The auth service said no: "tag NO <Auth-Status>" as NGINX; without
 * Auth-Wait the session ends, with it (already slept) the client may try
 * again.  A temporary failure is an internal error.
 */
static enum sess_rc
imap_auth_error(struct session *s, const struct auth_result *r)
{
    struct imap_state *st = s->proto_state;
    const char *tag = st->tag[0] != '\0' ? st->tag : "*";
    const char *msg = r->message;
    enum sess_rc rc = SESS_CLOSE;

    session_clear_creds(s);
    if (r->status != AUTH_FAIL) {
        imap_internal_error(s);
        goto done;
    }
    if (msg == NULL || msg[0] == '\0' || strpbrk(msg, "\r\n") != NULL) {
        msg = "Authentication failed";
    }
    if (session_sendf(s, "%s NO %.*s\r\n", tag, AUTH_MESSAGE_SHOWN, msg) != 0) {
        goto done;
    }
    rc = r->wait < 0 ? SESS_CLOSE : SESS_OK;
done:
    st->tag[0] = '\0';
    return rc;
}

/* Free the session's state. */
static void
imap_free_state(struct session *s)
{
    if (s->proto_state != NULL) {
        mem_wipe(s->proto_state, sizeof(struct imap_state));
        free(s->proto_state);
        s->proto_state = NULL;
    }
}

const struct proto_ops imap_ops = {
    .proto = PROTO_IMAP,
    .name = "imap",
    .default_port = 143,
    .conf_init = imap_conf_init,
    .conf_free = imap_conf_free,
    .greeting = imap_greeting_text,
    .greet = imap_greet,
    .dialogue = imap_dialogue,
    .auth_error = imap_auth_error,
    .backend_login = imap_backend_login,
    .internal_error = imap_internal_error,
    .free_state = imap_free_state,
    .busy_line = "* BYE server busy\r\n",
};
