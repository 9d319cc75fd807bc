/*
 * http_parse.h - the status line and headers of an HTTP/1.x response, as
 * an auth service sends them.
 *
 * A pure, resumable parser: the caller keeps every byte received so far in
 * one buffer and calls http_parse() again after each read with the longer
 * length; the parser resumes where it stopped.  It never does I/O and
 * keeps no pointers into the buffer (offsets only).  The body, if any, is
 * not looked at.
 *
 * Strict where it matters for framing: a status line "HTTP/1.D DDD text",
 * header lines "Name: value" with a token name and no control bytes in
 * the value (HTAB allowed), CRLF or bare LF line ends, no folded lines,
 * and hard bounds on line length, header count and total size.
 */
#ifndef POSTERN_HTTP_PARSE_H
#define POSTERN_HTTP_PARSE_H

#include <stddef.h>

#include "str.h"

#define HTTP_MAX_LINE     4096     /* one line, line end included */
#define HTTP_MAX_HEADERS  64
#define HTTP_MAX_TOTAL    16384    /* status line + headers + blank line */

enum http_parse_rc {
    HTTP_PARSE_OK,          /* headers complete: r->header_end is set */
    HTTP_PARSE_AGAIN,       /* need more bytes */
    HTTP_PARSE_INVALID      /* malformed or over a bound: r->error says what */
};

struct http_span {
    size_t off, len;        /* a slice of the caller's buffer */
};

struct http_header {
    struct http_span name, value;   /* value without surrounding blanks */
};

struct http_response {
    /* parser state */
    size_t pos;             /* next byte to look at */
    size_t line_start;      /* start of the line being read */
    int in_headers;         /* status line done */
    enum http_parse_rc done;/* sticky once OK or INVALID */

    /* results */
    int version_minor;      /* the D of HTTP/1.D */
    int status;             /* 100..999 */
    struct http_span reason;
    size_t nheaders;
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t header_end;      /* offset just after the blank line */
    const char *error;      /* static text when INVALID */
};

/* Start a new response. */
void http_parse_init(struct http_response *r);

/*
 * Parse buf[0 .. len): all bytes received so far, of which the first bytes
 * seen by earlier calls must be unchanged.  Returns OK once the blank line
 * after the headers is seen (bytes after it are ignored), AGAIN when more
 * is needed, INVALID on a syntax error or when a bound is passed.
 */
enum http_parse_rc http_parse(struct http_response *r,
                              const unsigned char *buf, size_t len);

/*
 * Parse the response heads in buf[*head_r .. len) (all bytes received so
 * far, *head_r 0 at first), skipping interim ones: a 1xx head (but 101,
 * which ends HTTP on the connection) is never the answer, and the final
 * response follows it (RFC 9110 section 15.2).  On a skip *head_r moves
 * past that head and r starts over on what follows; r's offsets are then
 * relative to buf + *head_r.  AGAIN until the final head is complete,
 * then OK; INVALID when a head is.
 */
enum http_parse_rc http_parse_final(struct http_response *r,
                                    const unsigned char *buf,
                                    size_t *head_r, size_t len);

/*
 * The value of the last header called name (case-insensitive) as a slice
 * of buf; 1 if found, 0 if not.  For a header whose every occurrence
 * matters (Auth-Status, Auth-Wait, Connection, Content-Length) use
 * http_header_next.
 */
int http_header_get(const struct http_response *r, const unsigned char *buf,
                    const char *name, struct str *value_r);

/*
 * The headers called name in the order received: start with *pos = 0;
 * each call returns 1 with the next one's value (and advances *pos), 0
 * when there are no more.
 */
int http_header_next(const struct http_response *r, const unsigned char *buf,
                     const char *name, size_t *pos, struct str *value_r);

#endif
