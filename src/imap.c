/*
 * imap.c - the IMAP side of a session: greeting, the commands a client may
 * send before it is logged in, and the LOGIN to the backend.  Behaves as
 * NGINX's mail module (ngx_mail_imap_handler.c, the IMAP part of
 * ngx_mail_proxy_module.c), with the reply texts NGINX uses.
 *
 * Handles untrusted input (client commands through imap_parse.c, backend
 * replies) and secrets (the password on its way to session_set_creds, the
 * backend and the SASL exchange; every copy made here is wiped).  No locks:
 * the capability lines in sc->proto_data are built once at configuration
 * time and only read afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "conn.h"
#include "imap_parse.h"
#include "log.h"
#include "proto.h"
#include "sasl.h"
#include "session.h"
#include "str.h"

/* Lines the backend may send before its tagged answer to LOGIN. */
#define IMAP_UNTAGGED_MAX 32
/* How much of a backend line goes into a log line. */
#define IMAP_LOG_LINE_MAX 256

static const char imap_greeting[] = "* OK IMAP4 ready\r\n";
static const char imap_next[] = "+ OK\r\n";
static const char imap_internal[] = "* BAD internal server error\r\n";

/* The three CAPABILITY lines, built once per server. */
enum { CAP_PLAIN, CAP_STARTTLS, CAP_STARTTLS_ONLY, CAP_N };

struct imap_conf {
    char *cap[CAP_N];
    size_t cap_len[CAP_N];
};

/* Per session: the parser and the tag of the command that logs in. */
struct imap_state {
    struct imap_parser parser;
    char tag[IMAP_TAG_MAX + 1];
};

/* What a command handler tells the dialogue loop. */
enum cmd_rc {
    CMD_NEXT,      /* replied; read the next command */
    CMD_BAD,       /* answer "tag BAD invalid command" (not counted) */
    CMD_AUTH,      /* credentials are set: ask the auth service */
    CMD_CLOSE,     /* replied (or failed); end the session */
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
static void imap_internal_error(struct session *s);

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
    if (reply(s, c->tag, "OK completed") != 0 || session_starttls(s) != 0) {
        return CMD_CLOSE;
    }
    return CMD_NEXT;
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

    switch (rc) {
    case SASL_OK:
        return CMD_AUTH;
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

/* Read more of the client's command; 0, or -1 (logged) when it is gone. */
static int
read_more(struct session *s)
{
    ssize_t n = conn_fill(&s->client);

    if (n > 0) {
        return 0;
    }
    session_log_client_gone(s, n, errno);
    return -1;
}

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
    enum cmd_rc rc;

    for (;;) {
        raw = buf_head(in);

        switch (imap_parse(p, raw, buf_len(in))) {
        case IMAP_PARSE_AGAIN:
            if (read_more(s) != 0) {
                return SESS_CLOSE;
            }
            continue;

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

        rc = cmd->handler(s, p, raw);
        switch (rc) {
        case CMD_NEXT:
            break;
        case CMD_BAD:
            if (reply(s, p->tag, "BAD invalid command") != 0) {
                return SESS_CLOSE;
            }
            break;
        case CMD_AUTH:
            return SESS_AUTH;
        case CMD_CLOSE:
            return SESS_CLOSE;
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

/* The reply for an internal or upstream error; the session ends. */
static void
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

/* ---- the backend ------------------------------------------------------ */

/* Read one backend line; -1 (logged) on EOF, error, timeout, too long. */
static int
backend_line(struct session *s, unsigned char **line_r, size_t *len_r)
{
    s->action = "reading response from upstream";
    if (conn_read_line(&s->backend, line_r, len_r) == 0) {
        return 0;
    }
    if (errno == ENOBUFS) {
        session_log(s, LOG_LV_ERR, "upstream sent too long response line");
    } else if (errno == 0) {
        session_log(s, LOG_LV_ERR, "upstream prematurely closed connection");
    } else {
        session_log_io_failed(s, &s->backend, errno, 0);
    }
    return -1;
}

/*
 * The backend did not answer as it should.  As NGINX: with
 * proxy_pass_error_message its lines go to the client (logged at info),
 * otherwise the client gets an internal error (logged at error).
 */
static enum sess_rc
backend_refused(struct session *s, const unsigned char *pre, size_t prelen,
                const unsigned char *line, size_t len)
{
    char text[IMAP_LOG_LINE_MAX];
    const unsigned char *shown = line;
    const unsigned char *sp = memchr(line, ' ', len);

    /* as NGINX: a tagged answer is logged without its tag */
    if (sp != NULL && line[0] != '*' && line[0] != '+') {
        shown = sp + 1;
    }
    str_log_text(shown, len - (size_t)(shown - line), text, sizeof(text));
    if (!s->sc->proxy_pass_error_message) {
        session_log(s, LOG_LV_ERR, "upstream sent invalid response: \"%s\"",
                    text);
        imap_internal_error(s);
        return SESS_CLOSE;
    }
    session_log(s, LOG_LV_INFO, "upstream sent invalid response: \"%s\"",
                text);
    if ((prelen == 0 || session_send(s, (const char *)pre, prelen) == 0)
        && session_send(s, (const char *)line, len) == 0
        && line[len - 1] != '\n')
    {
        session_send(s, "\r\n", 2);
    }
    return SESS_CLOSE;
}

/* 1 if line starts with WORD followed by SP, CR or LF (case-insensitive). */
static int
starts_with_word(const unsigned char *line, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len > n && strncasecmp((const char *)line, word, n) == 0
           && (line[n] == ' ' || line[n] == '\r' || line[n] == '\n');
}

/* Whether s can be sent as an IMAP quoted string (RFC 3501: 7-bit, no
 * NUL, CR or LF; double quote and backslash are escaped). */
static int
imap_quotable(struct str s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.data[i] == 0 || s.data[i] > 0x7f || s.data[i] == '\r'
            || s.data[i] == '\n')
        {
            return 0;
        }
    }
    return 1;
}

/* Append s to b as a quoted string. */
static void
imap_quote(struct str_builder *b, struct str s)
{
    str_builder_add(b, "\"", 1);
    for (size_t i = 0; i < s.len; i++) {
        if (s.data[i] == '"' || s.data[i] == '\\') {
            str_builder_add(b, "\\", 1);
        }
        str_builder_add(b, (const char *)s.data + i, 1);
    }
    str_builder_add(b, "\"", 1);
}

/* Whether the greeting's "[CAPABILITY ...]" response code names word. */
static int
greeting_has_cap(const unsigned char *line, size_t len, const char *word)
{
    static const char code[] = "[CAPABILITY ";
    size_t wl = strlen(word), i = 0, end;

    while (i + sizeof(code) - 1 <= len
           && strncasecmp((const char *)line + i, code, sizeof(code) - 1) != 0) {
        i++;
    }
    if (i + sizeof(code) - 1 > len) {
        return 0;
    }
    i += sizeof(code) - 1;
    for (end = i; end < len && line[end] != ']'; end++) {
    }
    while (i < end) {
        size_t w = i;

        while (w < end && line[w] != ' ') {
            w++;
        }
        if (w - i == wl && strncasecmp((const char *)line + i, word, wl) == 0) {
            return 1;
        }
        i = w + 1;
    }
    return 0;
}

/*
 * The whole LOGIN command in one write when no continuation is needed:
 * quoted strings when both are quotable, else non-synchronizing literals
 * when the greeting announced LITERAL+ (RFC 7888).  NGINX always waits
 * for two "+" continuations; this saves those two round trips.  Returns 1
 * sent, 0 not possible (use synchronizing literals), -1 error.
 */
static int
imap_login_one_write(struct session *s, const char *tag, struct str user,
                     struct str pass, int literal_plus)
{
    struct str_builder b = STR_BUILDER_INIT;
    char num[32];
    int rc;

    if (imap_quotable(user) && imap_quotable(pass)) {
        str_builder_puts(&b, tag);
        str_builder_puts(&b, " LOGIN ");
        imap_quote(&b, user);
        str_builder_puts(&b, " ");
        imap_quote(&b, pass);
    } else if (literal_plus) {
        snprintf(num, sizeof(num), " LOGIN {%zu+}\r\n", user.len);
        str_builder_puts(&b, tag);
        str_builder_puts(&b, num);
        str_builder_add(&b, (const char *)user.data, user.len);
        snprintf(num, sizeof(num), " {%zu+}\r\n", pass.len);
        str_builder_puts(&b, num);
        str_builder_add(&b, (const char *)pass.data, pass.len);
    } else {
        return 0;
    }
    if (b.failed) {
        session_log(s, LOG_LV_ERR, "out of memory");
        rc = -1;
    } else {
        rc = session_backend_send(s, "", (struct str){ b.len,
                                  (unsigned char *)b.data }, "\r\n") == 0
             ? 1 : -1;
    }
    str_builder_free(&b);           /* wipes the password */
    return rc;
}

/*
 * LOGIN with synchronizing literals, as NGINX: each literal waits for the
 * backend's "+".  1 sent, 2 the backend refused (the client was answered),
 * -1 error.
 */
static int
imap_login_literals(struct session *s, const char *tag, struct str user,
                    struct str pass)
{
    char cmd[IMAP_TAG_MAX + 64];
    unsigned char *line;
    size_t len;

    snprintf(cmd, sizeof(cmd), "%s LOGIN {%zu}\r\n", tag, user.len);
    if (session_backend_send(s, cmd, STR_NULL, "") != 0
        || backend_line(s, &line, &len) != 0) {
        return -1;
    }
    if (line[0] != '+') {
        backend_refused(s, NULL, 0, line, len);
        return 2;
    }
    s->action = "sending user name to upstream";
    snprintf(cmd, sizeof(cmd), " {%zu}\r\n", pass.len);
    if (session_backend_send(s, "", user, cmd) != 0 || backend_line(s, &line, &len) != 0) {
        return -1;
    }
    if (line[0] != '+') {
        backend_refused(s, NULL, 0, line, len);
        return 2;
    }
    s->action = "sending password to upstream";
    return session_backend_send(s, "", pass, "\r\n") == 0 ? 1 : -1;
}

/*
 * Log in to the backend with the client's own tag, so that the backend's
 * tagged answer is the answer to the client's LOGIN / AUTHENTICATE:
 *
 *   S: * OK ...
 *   C: TAG LOGIN "USER" "PASSWORD"      (one write: both quotable), or
 *   C: TAG LOGIN {n+} USER {m+} PASS    (one write: LITERAL+), or else as
 *   C: TAG LOGIN {n}          S: + ...  NGINX does, with synchronizing
 *   C: USER {m}               S: + ...  literals, which need no quoting
 *   C: PASSWORD
 *   S: [* CAPABILITY ...]     (untagged lines, relayed)
 *   S: TAG OK ...             (relayed: it answers the client's command)
 */
static enum sess_rc
imap_backend_login(struct session *s)
{
    struct imap_state *st = s->proto_state;
    const char *tag = st->tag[0] != '\0' ? st->tag : "a";
    struct str user = s->auth.user.len > 0 ? s->auth.user : s->login;
    struct str pass = s->auth.pass.len > 0 ? s->auth.pass : s->passwd;
    unsigned char *line, *fwd = NULL;
    size_t len, fwdlen = 0, fwdsize = s->backend.in.size, taglen = strlen(tag);
    enum sess_rc rc = SESS_CLOSE;
    int i, sent;

    if (s->auth.pass.len == 0 && (s->method == AUTH_METHOD_CRAM_MD5
                                  || s->method == AUTH_METHOD_EXTERNAL))
    {
        /* the client never sent a password we could pass on */
        session_log(s, LOG_LV_ERR, "auth service sent no password for %s",
                    auth_method_name(s->method));
        imap_internal_error(s);
        return SESS_CLOSE;
    }

    if (backend_line(s, &line, &len) != 0) {
        goto internal;
    }
    if (len < 4 || memcmp(line, "* ", 2) != 0
        || !starts_with_word(line + 2, len - 2, "OK"))
    {
        return backend_refused(s, NULL, 0, line, len);
    }

    s->action = "sending LOGIN command to upstream";
    sent = imap_login_one_write(s, tag, user, pass,
                                greeting_has_cap(line, len, "LITERAL+"));
    if (sent == 0) {
        sent = imap_login_literals(s, tag, user, pass);
    }
    if (sent < 0) {
        goto internal;
    }
    if (sent == 2) {
        return SESS_CLOSE;          /* refused, and answered */
    }

    /* Untagged lines (CAPABILITY from Gmail, Dovecot...), then the answer. */
    fwd = malloc(fwdsize);
    if (fwd == NULL) {
        session_log(s, LOG_LV_ERR, "out of memory");
        goto internal;
    }
    for (i = 0; i <= IMAP_UNTAGGED_MAX; i++) {
        if (backend_line(s, &line, &len) != 0) {
            goto internal;
        }
        if (len >= 2 && line[0] == '*' && line[1] == ' ') {
            if (i == IMAP_UNTAGGED_MAX || len > fwdsize - fwdlen) {
                session_log(s, LOG_LV_ERR,
                            "upstream sent too long response");
                goto internal;
            }
            memcpy(fwd + fwdlen, line, len);
            fwdlen += len;
            continue;
        }
        break;
    }

    s->action = "reading response from upstream";
    if (!(len > taglen + 1 && memcmp(line, tag, taglen) == 0
          && line[taglen] == ' '
          && starts_with_word(line + taglen + 1, len - taglen - 1, "OK")))
    {
        rc = backend_refused(s, fwd, fwdlen, line, len);
        goto done;
    }
    if ((fwdlen > 0 && session_send(s, (char *)fwd, fwdlen) != 0)
        || session_send(s, (const char *)line, len) != 0)
    {
        goto done;
    }
    rc = SESS_OK;
    goto done;

internal:
    imap_internal_error(s);
    rc = SESS_CLOSE;
done:
    free(fwd);
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
