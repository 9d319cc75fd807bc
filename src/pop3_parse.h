/*
 * pop3_parse.h - the POP3 command parser (RFC 1939, 2449, 5034, 2595).
 *
 * A resumable pure function over a buffer: no I/O, state in struct
 * pop3_parser.  The caller hands it the bytes from the start of the current
 * line (more of them on each call); it answers
 *
 *   POP3_PARSE_OK       a whole line: *cmd_r filled, args are slices of the
 *                       buffer, *consumed_r = length of the line incl. LF
 *   POP3_PARSE_AGAIN    need more bytes; *consumed_r bytes may be dropped
 *                       (non-zero only while a bad line is being skipped)
 *   POP3_PARSE_INVALID  a bad line, skipped up to and including its LF
 *                       (*consumed_r); p->too_long says if it was too long
 *
 * Which commands are allowed when is not the parser's business: that is
 * the command table in pop3.c.
 */
#ifndef POSTERN_POP3_PARSE_H
#define POSTERN_POP3_PARSE_H

#include <stddef.h>

#include "str.h"

/*
 * RFC 2449 bounds a command line at 255 octets; real clients send longer
 * passwords and SASL initial responses, so postern takes up to 512 octets
 * (the RFC's bound for a response line) including CRLF.
 */
#define POP3_LINE_MAX 512
#define POP3_MAX_ARGS 2         /* APOP name digest; AUTH mech initial */

enum pop3_cmd {
    POP3_CMD_NONE = 0,
    POP3_CMD_USER,
    POP3_CMD_PASS,
    POP3_CMD_APOP,
    POP3_CMD_AUTH,
    POP3_CMD_CAPA,
    POP3_CMD_NOOP,
    POP3_CMD_QUIT,
    POP3_CMD_STLS
};

enum pop3_parse_rc {
    POP3_PARSE_OK,
    POP3_PARSE_AGAIN,
    POP3_PARSE_INVALID
};

struct pop3_command {
    enum pop3_cmd cmd;
    size_t nargs;
    struct str args[POP3_MAX_ARGS];
};

struct pop3_parser {
    int state;
    size_t pos;                 /* bytes of the current line examined */
    enum pop3_cmd cmd;
    size_t nargs;
    size_t arg_off[POP3_MAX_ARGS];  /* offsets from the line start */
    size_t arg_len[POP3_MAX_ARGS];
    int too_long;               /* the line skipped was over POP3_LINE_MAX */
};

/* Start a new line (also after STLS, whose reply discards all input). */
void pop3_parser_init(struct pop3_parser *p);

/* Parse data[0..len), which starts at the first byte of the current line
 * and holds at least the bytes given before. */
enum pop3_parse_rc pop3_parse(struct pop3_parser *p, const unsigned char *data,
                              size_t len, struct pop3_command *cmd_r,
                              size_t *consumed_r);

/* The caller cannot buffer more of this line: skip it to its LF and report
 * it as too long.  The bytes given so far may be dropped. */
void pop3_parser_overflow(struct pop3_parser *p);

/* "USER" for POP3_CMD_USER, for logs and tests. */
const char *pop3_cmd_name(enum pop3_cmd c);

/*
 * Why line may not be one of pop3_capabilities; NULL when it may.  A
 * capability is one CAPA line of printable ASCII, and not one that postern
 * announces itself as its settings say: STLS, SASL mechanisms.  The reason
 * is static text.
 */
const char *pop3_capability_refused(const char *line);

#endif
