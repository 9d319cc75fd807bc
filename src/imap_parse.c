/*
 * imap_parse.c - the resumable IMAP command parser (see imap_parse.h).
 *
 * Untrusted input: every byte of a client's pre-login commands passes
 * here.  No secrets are kept (the password bytes stay in the caller's
 * buffer), no I/O, no locks: one parser belongs to one session.
 *
 * Bounds: a command never grows past p->limit; a literal's length is
 * checked for overflow and against the limit before the caller is asked to
 * wait for it; at most IMAP_ARGS_MAX arguments.  A bad line is read to its
 * LF and reported once, so the next line is parsed afresh.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"

enum {
    S_TAG,
    S_SP_BEFORE_NAME,
    S_NAME,
    S_SP_BEFORE_ARG,
    S_ATOM,
    S_QUOTED,
    S_QUOTED_ESC,
    S_LIT_LEN,
    S_LIT_PLUS,
    S_LIT_CR,
    S_LIT_LF,
    S_LIT_DATA,
    S_AFTER_ARG,
    S_CR,
    S_SKIP
};

/* Reset everything but the limit, ready for a new command. */
static void
parser_reset(struct imap_parser *p)
{
    size_t limit = p->limit;

    memset(p, 0, sizeof(*p));
    p->limit = limit;
    p->state = S_TAG;
}

void
imap_parser_init(struct imap_parser *p, size_t limit)
{
    memset(p, 0, sizeof(*p));
    p->limit = limit;
    parser_reset(p);
}

/* A tag byte: RFC 3501 allows more, NGINX (and we) only these. */
static int
is_tag_char(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
           || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
}

static int
is_alpha(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/*
 * An atom byte.  The RFC's atom-specials that would change the framing
 * ( "(" ")" "{" DQUOTE SP CTL ) are refused; '%', '*', ']' and '\' are let
 * through, as NGINX does, because clients send passwords with them
 * unquoted; 8-bit bytes are let through for UTF-8 user names.
 */
static int
is_atom_char(unsigned char ch)
{
    if (ch <= 0x20 || ch == 0x7f) {
        return 0;
    }
    return ch != '(' && ch != ')' && ch != '{' && ch != '"';
}

/* Record a finished argument (not for list elements). */
static void
add_arg(struct imap_parser *p, enum imap_arg_type type, size_t off,
        size_t len)
{
    p->args[p->nargs].type = type;
    p->arg_off[p->nargs] = off;
    p->arg_len[p->nargs] = len;
    p->nargs++;
}

/* 1 if the line that ends at data[lf] announced a {n+} literal. */
static int
ends_in_nonsync(const unsigned char *data, size_t lf)
{
    size_t i = lf;

    if (i > 0 && data[i - 1] == '\r') {
        i--;
    }
    return i >= 2 && data[i - 1] == '}' && data[i - 2] == '+';
}

/* Turn the offsets of a finished command into slices of data. */
static void
make_slices(struct imap_parser *p, unsigned char *data)
{
    size_t i;

    p->name.data = data + p->name_off;
    for (i = 0; i < p->nargs; i++) {
        p->args[i].s.data = data + p->arg_off[i];
        p->args[i].s.len = p->arg_len[i];
    }
}

enum imap_parse_rc
imap_parse(struct imap_parser *p, unsigned char *data, size_t len)
{
    size_t pos, n;
    unsigned char ch;
    const char *err = NULL;

    if (p->done) {
        parser_reset(p);
    }

    pos = p->pos;

    while (pos < len) {
        if (pos >= p->limit) {
            break;
        }
        ch = data[pos];

        switch (p->state) {

        case S_TAG:
            if (ch == ' ' && pos > 0) {
                memcpy(p->tag, data, pos);
                p->tag[pos] = '\0';
                p->tag_len = pos;
                p->state = S_SP_BEFORE_NAME;
                break;
            }
            if (!is_tag_char(ch)) {
                err = "invalid tag";
                goto invalid;
            }
            if (pos >= IMAP_TAG_MAX) {
                err = "tag too long";
                goto invalid;
            }
            break;

        case S_SP_BEFORE_NAME:
            if (ch == ' ') {
                break;
            }
            if (!is_alpha(ch)) {
                err = "invalid command name";
                goto invalid;
            }
            p->name_off = pos;
            p->state = S_NAME;
            break;

        case S_NAME:
            if (is_alpha(ch)) {
                if (pos - p->name_off >= IMAP_NAME_MAX) {
                    err = "command name too long";
                    goto invalid;
                }
                break;
            }
            p->name.len = pos - p->name_off;
            if (ch == ' ') {
                p->state = S_SP_BEFORE_ARG;
            } else if (ch == '\r') {
                p->state = S_CR;
            } else if (ch == '\n') {
                goto done;
            } else {
                err = "invalid command name";
                goto invalid;
            }
            break;

        case S_SP_BEFORE_ARG:
            if (ch == ' ') {
                break;
            }
            if (p->in_list) {
                if (ch == ')') {
                    goto close_list;
                }
                if (ch == '(') {
                    err = "nested list";
                    goto invalid;
                }
            } else {
                if (ch == '\r') {
                    p->state = S_CR;
                    break;
                }
                if (ch == '\n') {
                    goto done;
                }
                if (p->nargs == IMAP_ARGS_MAX) {
                    err = "too many arguments";
                    goto invalid;
                }
                if (ch == '(') {
                    p->in_list = 1;
                    p->list_start = pos;
                    break;
                }
            }
            if (ch == '"') {
                p->start = pos + 1;
                p->wr = pos + 1;
                p->state = S_QUOTED;
            } else if (ch == '{') {
                p->start = pos + 1;
                p->literal_left = 0;
                p->literal_big = 0;
                p->nonsync = 0;
                p->state = S_LIT_LEN;
            } else if (is_atom_char(ch)) {
                p->start = pos;
                p->state = S_ATOM;
            } else {
                err = "invalid argument";
                goto invalid;
            }
            break;

        case S_ATOM:
            if (is_atom_char(ch)) {
                break;
            }
            if (!p->in_list) {
                add_arg(p, IMAP_ARG_ATOM, p->start, pos - p->start);
            }
            if (ch == ' ') {
                p->state = S_SP_BEFORE_ARG;
            } else if (ch == ')' && p->in_list) {
                goto close_list;
            } else if (ch == '\r' && !p->in_list) {
                p->state = S_CR;
            } else if (ch == '\n' && !p->in_list) {
                goto done;
            } else {
                err = "invalid atom";
                goto invalid;
            }
            break;

        case S_QUOTED:
            if (ch == '"') {
                if (!p->in_list) {
                    add_arg(p, IMAP_ARG_QUOTED, p->start, p->wr - p->start);
                }
                p->state = S_AFTER_ARG;
                break;
            }
            if (ch == '\\') {
                p->state = S_QUOTED_ESC;
                break;
            }
            /* fall through */

        case S_QUOTED_ESC:
            if (ch == '\r' || ch == '\n' || ch == '\0') {
                err = "invalid quoted string";
                goto invalid;
            }
            if (!p->in_list) {
                data[p->wr++] = ch;     /* unescape in place: wr <= pos */
            }
            p->state = S_QUOTED;
            break;

        case S_LIT_LEN:
            if (ch >= '0' && ch <= '9') {
                if (p->literal_left > (SIZE_MAX - 9) / 10) {
                    p->literal_big = 1;
                } else {
                    p->literal_left = p->literal_left * 10 + (ch - '0');
                    if (p->literal_left > p->limit) {
                        p->literal_big = 1;
                    }
                }
                break;
            }
            if (pos == p->start || (ch != '+' && ch != '}')) {
                err = "invalid literal";
                goto invalid;
            }
            if (ch == '+') {
                p->nonsync = 1;
                p->state = S_LIT_PLUS;
            } else {
                p->state = S_LIT_CR;
            }
            break;

        case S_LIT_PLUS:
            if (ch != '}') {
                err = "invalid literal";
                goto invalid;
            }
            p->state = S_LIT_CR;
            break;

        case S_LIT_CR:
            if (ch == '\r') {
                p->state = S_LIT_LF;
                break;
            }
            /* fall through */

        case S_LIT_LF:
            if (ch != '\n') {
                err = "junk after literal length";
                goto invalid;
            }
            pos++;

            /* The whole literal and at least a CRLF must fit. */
            if (p->literal_big || p->limit - pos < 2
                || p->literal_left > p->limit - pos - 2)
            {
                p->error = "literal too long";
                p->fatal = p->nonsync;  /* its bytes are on their way */
                p->consumed = pos;
                p->done = 1;
                return IMAP_PARSE_INVALID;
            }

            p->start = pos;
            p->state = S_LIT_DATA;
            if (p->literal_left == 0) {
                if (!p->in_list) {
                    add_arg(p, IMAP_ARG_LITERAL, pos, 0);
                }
                p->state = S_AFTER_ARG;
            }
            if (!p->nonsync) {
                p->pos = pos;
                p->name.data = data + p->name_off;  /* for the caller */
                return IMAP_PARSE_CONTINUE;
            }
            continue;

        case S_LIT_DATA:
            n = len - pos;
            if (n > p->literal_left) {
                n = p->literal_left;
            }
            pos += n;
            p->literal_left -= n;
            if (p->literal_left == 0) {
                if (!p->in_list) {
                    add_arg(p, IMAP_ARG_LITERAL, p->start, pos - p->start);
                }
                p->state = S_AFTER_ARG;
            }
            continue;

        case S_AFTER_ARG:
            if (ch == ' ') {
                p->state = S_SP_BEFORE_ARG;
            } else if (ch == ')' && p->in_list) {
                goto close_list;
            } else if (ch == '\r' && !p->in_list) {
                p->state = S_CR;
            } else if (ch == '\n' && !p->in_list) {
                goto done;
            } else {
                err = "junk after argument";
                goto invalid;
            }
            break;

        case S_CR:
            if (ch != '\n') {
                err = "CR without LF";
                goto invalid;
            }
            goto done;

        case S_SKIP:
            if (ch == '\n') {
                p->fatal = ends_in_nonsync(data, pos);
                p->consumed = pos + 1;
                p->done = 1;
                return IMAP_PARSE_INVALID;
            }
            break;
        }

        pos++;
        continue;

    close_list:
        add_arg(p, IMAP_ARG_LIST, p->list_start, pos + 1 - p->list_start);
        p->in_list = 0;
        p->state = S_AFTER_ARG;
        pos++;
        continue;

    invalid:
        /* Read on to the LF; this byte may be it. */
        if (p->error == NULL) {
            p->error = err;
        }
        p->state = S_SKIP;
        continue;
    }

    p->pos = pos;

    if (pos >= p->limit) {
        p->error = "too long command";
        p->fatal = 1;
        p->consumed = pos;
        p->done = 1;
        return IMAP_PARSE_INVALID;
    }

    return IMAP_PARSE_AGAIN;

done:
    p->consumed = pos + 1;
    p->done = 1;
    make_slices(p, data);
    return IMAP_PARSE_OK;
}

void
imap_parse_refuse(struct imap_parser *p)
{
    /* only right after CONTINUE: pos is just past the "{n}" line */
    p->error = "command refused before its literal";
    p->fatal = 0;
    p->consumed = p->pos;
    p->done = 1;
}

/* An ATOM-CHAR of RFC 3501 (9): a 7-bit byte that is no atom-special. */
static int
is_strict_atom_char(unsigned char ch)
{
    if (ch <= 0x20 || ch >= 0x7f) {
        return 0;
    }
    return strchr("(){%*\"\\]", ch) == NULL;
}

const char *
imap_capability_refused(const char *word)
{
    if (word[0] == '\0') {
        return "an empty capability";
    }
    for (const char *c = word; *c != '\0'; c++) {
        if (!is_strict_atom_char((unsigned char)*c)) {
            return "not an IMAP atom (no control characters, spaces, "
                   "8-bit bytes or any of ( ) { % * \" \\ ])";
        }
    }
    if (strcasecmp(word, "STARTTLS") == 0) {
        return "postern announces STARTTLS itself, when starttls is on";
    }
    if (strcasecmp(word, "LOGINDISABLED") == 0) {
        return "postern announces LOGINDISABLED itself, when LOGIN is "
               "refused (starttls only before TLS, imap_auth without plain)";
    }
    if (strncasecmp(word, "AUTH=", 5) == 0) {
        return "postern announces the AUTH= mechanisms itself, as imap_auth "
               "says";
    }
    return NULL;
}
