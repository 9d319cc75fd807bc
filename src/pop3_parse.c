/*
 * pop3_parse.c - the POP3 command parser: "NAME [SP arg [SP arg]] CRLF".
 *
 * Untrusted input: parses client bytes.  No secrets are copied (PASS
 * arguments are slices of the caller's buffer).  No locks, no I/O.
 *
 * The grammar (RFC 1939 3, RFC 2449 3):
 *   - a keyword of three or four letters, case-insensitive;
 *   - arguments separated by one or more spaces; USER and PASS take the
 *     rest of the line as their one argument, spaces included, because
 *     RFC 1939 allows a password to contain spaces (NGINX does the same);
 *   - the line ends in CRLF or a bare LF (tolerated, as NGINX does); a CR
 *     anywhere else, or a NUL anywhere, makes the line invalid;
 *   - at most POP3_LINE_MAX octets including the line end.
 * A bad line is skipped up to its LF before it is reported, so the next
 * parse starts on a line boundary.
 */
#include <string.h>
#include <strings.h>

#include "pop3_parse.h"
#include "str.h"

enum {
    ST_NAME = 0,        /* the keyword: data[0 .. pos) */
    ST_SPACES,          /* between keyword and argument or two arguments */
    ST_ARG,             /* an argument ending at SP, CR or LF */
    ST_REST,            /* USER / PASS: an argument ending at CR or LF */
    ST_ALMOST_DONE,     /* after CR: only LF may follow */
    ST_SKIP             /* a bad line: drop bytes up to LF */
};

static const struct {
    const char *name;
    enum pop3_cmd cmd;
} pop3_names[] = {
    { "USER", POP3_CMD_USER },
    { "PASS", POP3_CMD_PASS },
    { "APOP", POP3_CMD_APOP },
    { "AUTH", POP3_CMD_AUTH },
    { "CAPA", POP3_CMD_CAPA },
    { "NOOP", POP3_CMD_NOOP },
    { "QUIT", POP3_CMD_QUIT },
    { "STLS", POP3_CMD_STLS },
};

#define NAME_MAX_LEN 4          /* RFC 1939: keywords are 3 or 4 letters */

/* The command for a keyword; POP3_CMD_NONE if we do not take it. */
static enum pop3_cmd
lookup(const unsigned char *name, size_t len)
{
    struct str s = { len, (unsigned char *)name };

    for (size_t i = 0; i < sizeof(pop3_names) / sizeof(pop3_names[0]); i++) {
        if (str_eq_ci(s, pop3_names[i].name)) {
            return pop3_names[i].cmd;
        }
    }
    return POP3_CMD_NONE;
}

/* Name of a command for logs and tests. */
const char *
pop3_cmd_name(enum pop3_cmd c)
{
    for (size_t i = 0; i < sizeof(pop3_names) / sizeof(pop3_names[0]); i++) {
        if (pop3_names[i].cmd == c) {
            return pop3_names[i].name;
        }
    }
    return "(none)";
}

/* Forget the current line. */
static void
reset_line(struct pop3_parser *p)
{
    p->state = ST_NAME;
    p->pos = 0;
    p->cmd = POP3_CMD_NONE;
    p->nargs = 0;
}

/* Start at a line boundary. */
void
pop3_parser_init(struct pop3_parser *p)
{
    memset(p, 0, sizeof(*p));
    reset_line(p);
}

/* Give up on buffering the current line: skip it to its LF. */
void
pop3_parser_overflow(struct pop3_parser *p)
{
    reset_line(p);
    p->state = ST_SKIP;
    p->too_long = 1;
}

/* Close the argument that started at arg_off[nargs] and ends at i. */
static void
end_arg(struct pop3_parser *p, size_t i)
{
    p->arg_len[p->nargs] = i - p->arg_off[p->nargs];
    p->nargs++;
}

/* Parse what there is of the current line; see pop3_parse.h. */
enum pop3_parse_rc
pop3_parse(struct pop3_parser *p, const unsigned char *data, size_t len,
           struct pop3_command *cmd_r, size_t *consumed_r)
{
    size_t i;

    *consumed_r = 0;
    if (p->state == ST_NAME && p->pos == 0) {
        p->too_long = 0;
    }

    for (i = p->pos; i < len; i++) {
        unsigned char ch = data[i];

        if (p->state == ST_SKIP) {
            if (ch == '\n') {
                *consumed_r = i + 1;
                reset_line(p);
                return POP3_PARSE_INVALID;
            }
            continue;
        }

        /* the LF may be the line's last allowed octet, nothing past it */
        if (i >= POP3_LINE_MAX) {
            p->too_long = 1;
            goto invalid;
        }
        if (ch == '\0') {
            goto invalid;
        }

        switch (p->state) {

        case ST_NAME:
            if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')) {
                if (i >= NAME_MAX_LEN) {
                    goto invalid;
                }
                break;
            }
            if (ch != ' ' && ch != '\r' && ch != '\n') {
                goto invalid;
            }
            p->cmd = lookup(data, i);
            if (p->cmd == POP3_CMD_NONE) {
                goto invalid;
            }
            if (ch == ' ') {
                p->state = ST_SPACES;
            } else if (ch == '\r') {
                p->state = ST_ALMOST_DONE;
            } else {
                goto done;
            }
            break;

        case ST_SPACES:
            if (ch == ' ') {
                break;
            }
            if (ch == '\r') {
                p->state = ST_ALMOST_DONE;
                break;
            }
            if (ch == '\n') {
                goto done;
            }
            if (p->nargs == POP3_MAX_ARGS) {
                goto invalid;
            }
            p->arg_off[p->nargs] = i;
            p->state = (p->cmd == POP3_CMD_USER || p->cmd == POP3_CMD_PASS)
                       ? ST_REST : ST_ARG;
            break;

        case ST_ARG:
            if (ch == ' ') {
                end_arg(p, i);
                p->state = ST_SPACES;
            } else if (ch == '\r') {
                end_arg(p, i);
                p->state = ST_ALMOST_DONE;
            } else if (ch == '\n') {
                end_arg(p, i);
                goto done;
            }
            break;

        case ST_REST:
            if (ch == '\r') {
                end_arg(p, i);
                p->state = ST_ALMOST_DONE;
            } else if (ch == '\n') {
                end_arg(p, i);
                goto done;
            }
            break;

        case ST_ALMOST_DONE:
            if (ch != '\n') {
                goto invalid;
            }
            goto done;
        }
    }

    /* out of bytes */
    if (p->state == ST_SKIP) {
        *consumed_r = len;
        p->pos = 0;
    } else {
        p->pos = len;
    }
    return POP3_PARSE_AGAIN;

done:
    cmd_r->cmd = p->cmd;
    cmd_r->nargs = p->nargs;
    for (size_t k = 0; k < POP3_MAX_ARGS; k++) {
        if (k < p->nargs) {
            cmd_r->args[k].data = (unsigned char *)data + p->arg_off[k];
            cmd_r->args[k].len = p->arg_len[k];
        } else {
            cmd_r->args[k] = STR_NULL;
        }
    }
    *consumed_r = i + 1;
    reset_line(p);
    return POP3_PARSE_OK;

invalid:
    /* the offending byte may itself end the line */
    if (data[i] == '\n') {
        *consumed_r = i + 1;
        reset_line(p);
        return POP3_PARSE_INVALID;
    }
    reset_line(p);
    p->state = ST_SKIP;
    /* skip the rest of the line in the bytes we already have */
    for (i++; i < len; i++) {
        if (data[i] == '\n') {
            *consumed_r = i + 1;
            reset_line(p);
            return POP3_PARSE_INVALID;
        }
    }
    *consumed_r = len;
    return POP3_PARSE_AGAIN;
}

/* 1 if line is the keyword word, alone or followed by a space. */
static int
is_keyword(const char *line, const char *word)
{
    size_t n = strlen(word);

    return strncasecmp(line, word, n) == 0
           && (line[n] == '\0' || line[n] == ' ');
}

const char *
pop3_capability_refused(const char *line)
{
    const char *why = str_capability_text_refused(line);

    if (why != NULL) {
        return why;
    }
    if (is_keyword(line, "STLS")) {
        return "postern announces STLS itself, when starttls is on";
    }
    if (is_keyword(line, "SASL")) {
        return "postern announces the SASL mechanisms itself, as pop3_auth "
               "says";
    }
    return NULL;
}
