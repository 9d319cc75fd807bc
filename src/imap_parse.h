/*
 * imap_parse.h - a resumable parser for the IMAP commands a client sends
 * before it is logged in (RFC 3501 / 9051 syntax, RFC 7888 LITERAL+).
 *
 * Untrusted input.  Pure: no I/O, no allocation.  The caller keeps the
 * bytes of the current command contiguous at `data` (the head of its read
 * buffer) and calls imap_parse() again with the same start and more bytes
 * whenever it returns AGAIN or CONTINUE.  Progress is kept as offsets from
 * the command's start, so the caller may move the buffer (buf_compact)
 * between calls.
 *
 *   tag SP name [SP arg]... CRLF        (a bare LF ends a line too)
 *
 *   tag   letters, digits, '-', '.', '_'; 1 .. IMAP_TAG_MAX bytes
 *   name  letters; 1 .. IMAP_NAME_MAX bytes (what it means is the caller's)
 *   arg   atom | "quoted" | {n}CRLF literal | {n+}CRLF literal | ( list )
 *
 * Quoted strings are unescaped IN PLACE in the caller's buffer (\x -> x,
 * as NGINX does): the bytes of a finished command are altered, so a
 * command must not be parsed twice.  A list (RFC 2971 ID) is one argument:
 * its elements are checked but not split, and nothing inside it is
 * unescaped; lists do not nest.
 */
#ifndef POSTERN_IMAP_PARSE_H
#define POSTERN_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define IMAP_TAG_MAX 32
#define IMAP_NAME_MAX 16
#define IMAP_ARGS_MAX 8

enum imap_parse_rc {
    IMAP_PARSE_OK,        /* one whole command; p->consumed bytes */
    IMAP_PARSE_AGAIN,     /* need more bytes after data + len */
    IMAP_PARSE_CONTINUE,  /* a {n} literal: send "+ OK\r\n", then call
                           * again; p->tag and p->name are set, so the
                           * caller may refuse the command instead
                           * (imap_parse_refuse) */
    IMAP_PARSE_INVALID,   /* a bad line, read through its LF: p->consumed
                           * bytes; p->tag is set if a tag was read; when
                           * p->fatal the connection must be closed */
};

enum imap_arg_type {
    IMAP_ARG_ATOM,
    IMAP_ARG_QUOTED,      /* unescaped, without the quotes */
    IMAP_ARG_LITERAL,     /* the n bytes, any octets */
    IMAP_ARG_LIST,        /* raw bytes from '(' to ')' inclusive */
};

struct imap_arg {
    enum imap_arg_type type;
    struct str s;         /* a slice of the caller's buffer */
};

struct imap_parser {
    /* Results.  tag after OK and INVALID (when read), name after OK and
     * CONTINUE, the rest after OK. */
    char tag[IMAP_TAG_MAX + 1];     /* NUL-terminated copy */
    size_t tag_len;                 /* 0: no valid tag was read */
    struct str name;                /* command name, as sent (a slice: valid
                                     * until the caller moves the buffer) */
    size_t nargs;
    struct imap_arg args[IMAP_ARGS_MAX];
    size_t consumed;                /* bytes of this command, through LF */
    int fatal;                      /* INVALID: close after the reply */
    const char *error;              /* INVALID: static text for the log */

    /* Private state. */
    size_t limit;                   /* a command may not exceed this */
    int state;
    int done;                       /* last call returned OK or INVALID */
    size_t pos;                     /* offset of the next byte to read */
    size_t start;                   /* offset where the current token began */
    size_t wr;                      /* write offset when unescaping */
    size_t name_off;
    size_t literal_left;
    int literal_big;                /* literal length over the limit */
    int nonsync;                    /* current literal is {n+} */
    int in_list;
    int list_quoted;
    size_t list_start;
    size_t arg_off[IMAP_ARGS_MAX];  /* offsets, turned into slices at OK */
    size_t arg_len[IMAP_ARGS_MAX];
    unsigned char last[2];          /* last two bytes before LF, for {n+} */
};

/* Start a parser; limit is the largest command accepted (the buffer size). */
void imap_parser_init(struct imap_parser *p, size_t limit);

/*
 * Parse the command whose first byte is data[0] and of which len bytes are
 * available.  After OK or INVALID the next call starts a new command (the
 * caller has consumed p->consumed bytes and passes the new head).
 */
enum imap_parse_rc imap_parse(struct imap_parser *p, unsigned char *data,
                              size_t len);

/*
 * After CONTINUE: end the command here instead of asking for its literal,
 * because it will be refused whatever follows (RFC 3501 7.5 lets a server
 * answer a literal's announcement with a tagged BAD instead of "+").  As
 * for a sync literal over the limit: p->consumed bytes, through the LF
 * after "{n}", are the command; a client that got the BAD sends no
 * literal, so the next bytes are parsed as a new command.
 */
void imap_parse_refuse(struct imap_parser *p);

/*
 * Why word may not be one of imap_capabilities; NULL when it may.  A
 * capability is an IMAP atom (RFC 3501 9: 7-bit, no control byte, space
 * or ( ) { % * " \ ]), and not one of the words postern announces itself
 * as its settings say: STARTTLS, LOGINDISABLED, AUTH=mechanism.  The
 * reason is static text.
 */
const char *imap_capability_refused(const char *word);

#endif
