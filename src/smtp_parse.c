/*
 * smtp_parse.c - the SMTP command line parser and the backend reply parser
 * (see smtp_parse.h).  Handles untrusted input from clients and backends;
 * holds no secrets (AUTH answers are read by sasl.c); no locks.
 */

#include <string.h>
#include <strings.h>

#include "smtp_parse.h"
#include "str.h"

enum {
    C_VERB = 0,         /* the command word */
    C_SPACES,           /* spaces before an argument */
    C_ARG,              /* inside an argument */
    C_ALMOST_DONE,      /* CR seen, LF must follow */
    C_SKIP,             /* a bad line: wait for its LF */
};

/* Ready for a new line. */
void
smtp_cmd_parser_init(struct smtp_cmd_parser *p)
{
    memset(p, 0, sizeof(*p));
    p->state = C_VERB;
}

/* Letters only, as NGINX takes verbs. */
static int
is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* End the argument that started at p->arg_start before offset i. */
static void
cmd_end_arg(struct smtp_cmd_parser *p, size_t i)
{
    p->args_off[p->nargs] = p->arg_start;
    p->args_len[p->nargs] = i - p->arg_start;
    p->nargs++;
    p->text_end = i;
}

/* A whole line through the LF at offset i: fill the result, reset. */
static enum smtp_parse_rc
cmd_done(struct smtp_cmd_parser *p, unsigned char *data, size_t i,
         struct smtp_cmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->verb.data = data;
    cmd->verb.len = p->verb_len;
    cmd->nargs = p->nargs;
    for (size_t a = 0; a < p->nargs; a++) {
        cmd->args[a].data = data + p->args_off[a];
        cmd->args[a].len = p->args_len[a];
    }
    cmd->text.data = data;
    cmd->text.len = p->text_end;
    cmd->len = i + 1;
    smtp_cmd_parser_init(p);
    return SMTP_PARSE_OK;
}

/* A control byte no SMTP argument has (TAB aside, kept as NGINX keeps
 * it): arguments go on into log lines and into the auth service's
 * Auth-SMTP-* headers, where a field value must not hold one. */
static int
arg_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* The bad line ends with the LF at offset i. */
static enum smtp_parse_rc
cmd_invalid(struct smtp_cmd_parser *p, size_t i, struct smtp_cmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->len = i + 1;
    smtp_cmd_parser_init(p);
    return SMTP_PARSE_INVALID;
}

/* One command line; see smtp_parse.h. */
enum smtp_parse_rc
smtp_cmd_parse(struct smtp_cmd_parser *p, unsigned char *data, size_t len,
               struct smtp_cmd *cmd_r)
{
    size_t i;

    for (i = p->off; i < len; i++) {
        unsigned char ch = data[i];

        switch (p->state) {
        case C_VERB:
            if (is_alpha(ch)) {
                if (++p->verb_len > SMTP_VERB_MAX) {
                    p->state = C_SKIP;
                }
                break;
            }
            if (p->verb_len == 0 || (ch != ' ' && ch != '\r' && ch != '\n')) {
                if (ch == '\n') {
                    return cmd_invalid(p, i, cmd_r);
                }
                p->state = C_SKIP;
                break;
            }
            p->text_end = i;
            if (ch == ' ') {
                p->state = C_SPACES;
            } else if (ch == '\r') {
                p->state = C_ALMOST_DONE;
            } else {
                return cmd_done(p, data, i, cmd_r);
            }
            break;

        case C_SPACES:
            if (ch == ' ') {
                break;
            }
            if (ch == '\r') {
                p->state = C_ALMOST_DONE;
                break;
            }
            if (ch == '\n') {
                return cmd_done(p, data, i, cmd_r);
            }
            if (arg_ctl(ch) || p->nargs == SMTP_ARGS_MAX) {
                p->state = C_SKIP;
                break;
            }
            p->arg_start = i;
            p->state = C_ARG;
            break;

        case C_ARG:
            if (ch == ' ') {
                cmd_end_arg(p, i);
                p->state = C_SPACES;
            } else if (ch == '\r') {
                cmd_end_arg(p, i);
                p->state = C_ALMOST_DONE;
            } else if (ch == '\n') {
                cmd_end_arg(p, i);
                return cmd_done(p, data, i, cmd_r);
            } else if (arg_ctl(ch)) {
                p->state = C_SKIP;
            }
            break;

        case C_ALMOST_DONE:
            if (ch == '\n') {
                return cmd_done(p, data, i, cmd_r);
            }
            /* a bare CR could hide a second command from a log or backend */
            p->state = C_SKIP;
            break;

        case C_SKIP:
        default:
            if (ch == '\n') {
                return cmd_invalid(p, i, cmd_r);
            }
            break;
        }
    }
    p->off = i;
    return SMTP_PARSE_AGAIN;
}

enum {
    R_DIGIT1 = 0,
    R_DIGIT2,
    R_DIGIT3,
    R_SEP,              /* '-', ' ' or the line end */
    R_TEXT,
    R_ALMOST_DONE,
};

/* Ready for a new reply. */
void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
    memset(p, 0, sizeof(*p));
    p->state = R_DIGIT1;
}

/* A line ended at offset i: the reply is whole after its last line. */
static enum smtp_parse_rc
reply_line_end(struct smtp_reply_parser *p, unsigned char *data, size_t i,
               struct smtp_reply *r)
{
    p->nlines++;
    if (!p->last) {
        if (p->nlines >= SMTP_REPLY_LINES_MAX) {
            return SMTP_PARSE_INVALID;
        }
        p->state = R_DIGIT1;
        return SMTP_PARSE_AGAIN;
    }
    memset(r, 0, sizeof(*r));
    r->code = p->code;
    r->nlines = p->nlines;
    r->text.data = data;
    r->text.len = i + 1;
    r->len = i + 1;
    smtp_reply_parser_init(p);
    return SMTP_PARSE_OK;
}

/* One backend reply; see smtp_parse.h. */
enum smtp_parse_rc
smtp_reply_parse(struct smtp_reply_parser *p, unsigned char *data, size_t len,
                 struct smtp_reply *r)
{
    enum smtp_parse_rc rc;
    size_t i;

    for (i = p->off; i < len; i++) {
        unsigned char ch = data[i];

        switch (p->state) {
        case R_DIGIT1:
            if (ch < '1' || ch > '5') {
                return SMTP_PARSE_INVALID;
            }
            p->line_code = ch - '0';
            p->state = R_DIGIT2;
            break;

        case R_DIGIT2:
        case R_DIGIT3:
            if (ch < '0' || ch > '9') {
                return SMTP_PARSE_INVALID;
            }
            p->line_code = p->line_code * 10 + (ch - '0');
            if (p->state == R_DIGIT3) {
                if (p->code == 0) {
                    p->code = p->line_code;
                } else if (p->code != p->line_code) {
                    return SMTP_PARSE_INVALID;
                }
            }
            p->state++;
            break;

        case R_SEP:
            p->last = ch != '-';
            if (ch == '-' || ch == ' ') {
                p->state = R_TEXT;
            } else if (ch == '\r') {
                p->state = R_ALMOST_DONE;
            } else if (ch == '\n') {
                rc = reply_line_end(p, data, i, r);
                if (rc != SMTP_PARSE_AGAIN) {
                    return rc;
                }
            } else {
                return SMTP_PARSE_INVALID;
            }
            break;

        case R_TEXT:
            if (ch == '\0') {
                return SMTP_PARSE_INVALID;
            }
            if (ch == '\r') {
                p->state = R_ALMOST_DONE;
            } else if (ch == '\n') {
                rc = reply_line_end(p, data, i, r);
                if (rc != SMTP_PARSE_AGAIN) {
                    return rc;
                }
            }
            break;

        case R_ALMOST_DONE:
        default:
            if (ch != '\n') {
                return SMTP_PARSE_INVALID;
            }
            rc = reply_line_end(p, data, i, r);
            if (rc != SMTP_PARSE_AGAIN) {
                return rc;
            }
            break;
        }
    }
    p->off = i;
    return SMTP_PARSE_AGAIN;
}

/* The next line's text of a parsed reply. */
int
smtp_reply_next_line(const struct smtp_reply *r, size_t *off,
                     struct str *line_r)
{
    const unsigned char *start, *lf;
    size_t end;

    if (*off >= r->text.len) {
        return 0;
    }
    start = r->text.data + *off;
    lf = memchr(start, '\n', r->text.len - *off);
    end = lf != NULL ? (size_t)(lf - r->text.data) : r->text.len;
    *off = end + 1;
    if (end > 0 && r->text.data[end - 1] == '\r') {
        end--;
    }
    line_r->data = (unsigned char *)start;
    line_r->len = 0;
    if (end >= (size_t)(start - r->text.data) + 4) {
        line_r->data += 4;
        line_r->len = end - (size_t)(start - r->text.data) - 4;
    }
    return 1;
}

/* Next space-separated word of s from *pos; 0 when there is none. */
static int
next_word(struct str s, size_t *pos, struct str *word_r)
{
    size_t i = *pos, start;

    while (i < s.len && (s.data[i] == ' ' || s.data[i] == '\t')) {
        i++;
    }
    if (i == s.len) {
        *pos = i;
        return 0;
    }
    start = i;
    while (i < s.len && s.data[i] != ' ' && s.data[i] != '\t') {
        i++;
    }
    word_r->data = s.data + start;
    word_r->len = i - start;
    *pos = i;
    return 1;
}

/* Find "XCLIENT attr ..." among the EHLO keywords. */
int
smtp_ehlo_xclient(const struct smtp_reply *r, unsigned *attrs_r)
{
    static const struct {
        const char *name;
        unsigned bit;
    } attrs[] = {
        { "NAME", SMTP_XCLIENT_NAME },   { "ADDR", SMTP_XCLIENT_ADDR },
        { "LOGIN", SMTP_XCLIENT_LOGIN }, { "HELO", SMTP_XCLIENT_HELO },
        { "PROTO", SMTP_XCLIENT_PROTO }, { "PORT", SMTP_XCLIENT_PORT },
    };
    struct str line, word;
    size_t off = 0, pos;
    int first = 1;

    *attrs_r = 0;
    while (smtp_reply_next_line(r, &off, &line)) {
        /* the first line of an EHLO reply is the greeting, not a keyword */
        if (first) {
            first = 0;
            continue;
        }
        pos = 0;
        if (!next_word(line, &pos, &word) || !str_eq_ci(word, "XCLIENT")) {
            continue;
        }
        while (next_word(line, &pos, &word)) {
            for (size_t k = 0; k < sizeof(attrs) / sizeof(attrs[0]); k++) {
                if (str_eq_ci(word, attrs[k].name)) {
                    *attrs_r |= attrs[k].bit;
                }
            }
        }
        return 1;
    }
    return 0;
}

const char *
smtp_capability_refused(const char *line)
{
    const char *why = str_capability_text_refused(line);

    if (why != NULL) {
        return why;
    }
    if (strcasecmp(line, "STARTTLS") == 0
        || strncasecmp(line, "STARTTLS ", 9) == 0) {
        return "postern announces STARTTLS itself, when starttls is on";
    }
    /* "AUTH mech ..." and the old "AUTH=mech ..." */
    if (strncasecmp(line, "AUTH", 4) == 0
        && (line[4] == '\0' || line[4] == ' ' || line[4] == '=')) {
        return "postern announces the AUTH mechanisms itself, as smtp_auth "
               "says";
    }
    return NULL;
}
