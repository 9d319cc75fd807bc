/*
 * smtp_parse.h - resumable parsers for the SMTP client's command lines and
 * for the (multi-line) replies of an SMTP backend.
 *
 * Both are pure functions over a buffer: no I/O, state kept in a struct so
 * that a caller can feed the bytes as they arrive.  The caller passes the
 * same line start every time, with more bytes after it (the buffer may move
 * in between: the parsers keep offsets, never pointers).  Handles untrusted
 * input; no secrets are kept; no locks.
 */
#ifndef POSTERN_SMTP_PARSE_H
#define POSTERN_SMTP_PARSE_H

#include <stddef.h>

#include "str.h"

enum smtp_parse_rc {
    SMTP_PARSE_OK,          /* a whole line / reply; see ->len */
    SMTP_PARSE_AGAIN,       /* need more bytes; nothing to consume yet */
    SMTP_PARSE_INVALID,     /* malformed; commands: ->len skips the line */
};

/* Longest command verb taken as a word ("STARTTLS" is 8). */
#define SMTP_VERB_MAX 16
/* Most arguments on one command line (NGINX takes about as many). */
#define SMTP_ARGS_MAX 10

/* A parsed command line: slices of the data passed to smtp_cmd_parse(). */
struct smtp_cmd {
    struct str verb;                    /* letters only, as sent */
    size_t nargs;
    struct str args[SMTP_ARGS_MAX];     /* words separated by spaces */
    struct str text;                    /* verb through last argument */
    size_t len;                         /* bytes to consume, through LF */
};

struct smtp_cmd_parser {
    int state;
    size_t off;                         /* bytes of the line scanned */
    size_t nargs;
    size_t arg_start;                   /* of the argument being read */
    size_t args_off[SMTP_ARGS_MAX], args_len[SMTP_ARGS_MAX];
    size_t verb_len;
    size_t text_end;
};

void smtp_cmd_parser_init(struct smtp_cmd_parser *p);

/*
 * Parse the command line that starts at data[0] (len bytes available).
 * A line is VERB [SP+ ARG]* [SP*] (CRLF | LF).  The verb is 1 to
 * SMTP_VERB_MAX letters; an argument is any bytes but SP and the control
 * bytes (TAB aside: kept, as NGINX keeps it).
 * OK: *cmd_r filled, cmd_r->len bytes to consume.
 * INVALID: reported once the line's LF has arrived (so that pipelined
 * commands stay in step with the replies); cmd_r->len skips the bad line.
 * AGAIN: call again with the same start and more bytes.  A caller whose
 * buffer is full at AGAIN has a line longer than its bound.
 * After OK and INVALID the parser is ready for the next line.
 */
enum smtp_parse_rc smtp_cmd_parse(struct smtp_cmd_parser *p,
                                  unsigned char *data, size_t len,
                                  struct smtp_cmd *cmd_r);

/* Most lines in one backend reply (a long EHLO list has about 20). */
#define SMTP_REPLY_LINES_MAX 100

/* A whole reply "NNN-text" ... "NNN text" (slices of the data passed). */
struct smtp_reply {
    int code;                           /* 100..599 */
    size_t nlines;
    struct str text;                    /* all lines, with their CRLFs */
    size_t len;                         /* bytes to consume */
};

struct smtp_reply_parser {
    int state;
    size_t off;                         /* bytes scanned */
    size_t nlines;
    int code;                           /* of the first line, 0 before */
    int line_code;                      /* digits of the current line */
    int last;                           /* the current line is the last */
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);

/*
 * Parse a backend reply starting at data[0].  Every line is three digits
 * (the first 1..5), then '-' (more lines follow), ' ' or the line end (the
 * last line), then text without NUL, ending in CRLF or LF.  All lines must
 * carry the same code.  OK: *r filled.  INVALID: malformed (the caller
 * gives up on the backend).  AGAIN: more bytes needed.
 */
enum smtp_parse_rc smtp_reply_parse(struct smtp_reply_parser *p,
                                    unsigned char *data, size_t len,
                                    struct smtp_reply *r);

/*
 * Walk the lines of a parsed reply: start with *off = 0; each call gives
 * the text after "NNN-" / "NNN " without the line end and returns 1, then
 * 0 when there are no more lines.
 */
int smtp_reply_next_line(const struct smtp_reply *r, size_t *off,
                         struct str *line_r);

/* XCLIENT attributes a backend may advertise (Postfix XCLIENT_README). */
enum {
    SMTP_XCLIENT_NAME  = 1u << 0,
    SMTP_XCLIENT_ADDR  = 1u << 1,
    SMTP_XCLIENT_LOGIN = 1u << 2,
    SMTP_XCLIENT_HELO  = 1u << 3,
    SMTP_XCLIENT_PROTO = 1u << 4,
    SMTP_XCLIENT_PORT  = 1u << 5,
};

/*
 * From an EHLO reply: 1 if a line "XCLIENT attr attr ..." is there, with
 * the attributes it names (case-insensitive; unknown ones ignored) in
 * *attrs_r; 0 if the backend does not offer XCLIENT.
 */
int smtp_ehlo_xclient(const struct smtp_reply *r, unsigned *attrs_r);

/*
 * Why line may not be one of smtp_capabilities; NULL when it may.  A
 * capability is one EHLO line of printable ASCII, and not one that postern
 * announces itself as its settings say: STARTTLS, AUTH mechanisms.  The
 * reason is static text.
 */
const char *smtp_capability_refused(const char *line);

#endif
