/*
 * http_parse.c - resumable parser of an HTTP/1.x response head (status
 * line and headers), for the auth_http client.
 *
 * Handles untrusted input: every byte comes from the auth service, which
 * may be broken or hostile.  Bounds: HTTP_MAX_LINE per line,
 * HTTP_MAX_HEADERS headers, HTTP_MAX_TOTAL for the whole head.  Pure: no
 * I/O, no allocation, no locks; state lives in struct http_response.
 */
#include <string.h>

#include "http_parse.h"

/* RFC 9110 token characters, which header names are made of. */
static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Bytes allowed in a header value or reason phrase: no controls but HTAB. */
static int
is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Start a new response. */
void
http_parse_init(struct http_response *r)
{
    memset(r, 0, sizeof(*r));
    r->done = HTTP_PARSE_AGAIN;
    r->status = -1;
    r->version_minor = -1;
}

/* Mark the response invalid with a reason; the state stays so. */
static enum http_parse_rc
fail(struct http_response *r, const char *why)
{
    r->error = why;
    r->done = HTTP_PARSE_INVALID;
    return r->done;
}

/* "HTTP/1.D DDD[ reason]" in buf[s .. e), the line end removed. */
static enum http_parse_rc
parse_status(struct http_response *r, const unsigned char *buf, size_t s,
             size_t e)
{
    const unsigned char *p = buf + s;
    size_t n = e - s, i;

    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0
        || p[7] < '0' || p[7] > '9' || p[8] != ' ') {
        return fail(r, "invalid status line");
    }
    for (i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return fail(r, "invalid status line");
        }
    }
    if (p[9] == '0') {
        return fail(r, "invalid status code");
    }
    r->version_minor = p[7] - '0';
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    r->reason.off = e;
    r->reason.len = 0;
    if (n == 12) {
        return HTTP_PARSE_AGAIN;
    }
    if (p[12] != ' ') {
        return fail(r, "invalid status line");
    }
    for (i = 13; i < n; i++) {
        if (!is_text(p[i])) {
            return fail(r, "invalid byte in status line");
        }
    }
    r->reason.off = s + 13;
    r->reason.len = n - 13;
    return HTTP_PARSE_AGAIN;
}

/* "Name: value" in buf[s .. e), the line end removed. */
static enum http_parse_rc
parse_header(struct http_response *r, const unsigned char *buf, size_t s,
             size_t e)
{
    struct http_header *h;
    size_t i, vs, ve;

    for (i = s; i < e && is_tchar(buf[i]); i++) {
        /* name */
    }
    if (i == s) {
        /* also catches folded lines, which start with a blank */
        return fail(r, "invalid header name");
    }
    if (i == e || buf[i] != ':') {
        return fail(r, "invalid header line");
    }
    if (r->nheaders == HTTP_MAX_HEADERS) {
        return fail(r, "too many headers");
    }
    h = &r->headers[r->nheaders];
    h->name.off = s;
    h->name.len = i - s;

    vs = i + 1;
    while (vs < e && (buf[vs] == ' ' || buf[vs] == '\t')) {
        vs++;
    }
    ve = e;
    while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) {
        ve--;
    }
    for (i = vs; i < ve; i++) {
        if (!is_text(buf[i])) {
            return fail(r, "invalid byte in header value");
        }
    }
    h->value.off = vs;
    h->value.len = ve - vs;
    r->nheaders++;
    return HTTP_PARSE_AGAIN;
}

/* Resume over buf[0 .. len): one complete line at a time. */
enum http_parse_rc
http_parse(struct http_response *r, const unsigned char *buf, size_t len)
{
    enum http_parse_rc rc;
    const unsigned char *lf;
    size_t eol, end;

    if (r->done != HTTP_PARSE_AGAIN) {
        return r->done;
    }
    for (;;) {
        if (r->pos >= len) {
            lf = NULL;
        } else {
            lf = memchr(buf + r->pos, '\n', len - r->pos);
        }
        if (lf == NULL) {
            r->pos = len;
            if (len - r->line_start >= HTTP_MAX_LINE) {
                return fail(r, "line too long");
            }
            if (len >= HTTP_MAX_TOTAL) {
                return fail(r, "response header too big");
            }
            return HTTP_PARSE_AGAIN;
        }
        eol = (size_t)(lf - buf);
        if (eol + 1 - r->line_start > HTTP_MAX_LINE) {
            return fail(r, "line too long");
        }
        if (eol + 1 > HTTP_MAX_TOTAL) {
            return fail(r, "response header too big");
        }
        end = eol;
        if (end > r->line_start && buf[end - 1] == '\r') {
            end--;
        }
        if (memchr(buf + r->line_start, '\r', end - r->line_start) != NULL) {
            return fail(r, "bare CR in line");
        }

        if (!r->in_headers) {
            rc = parse_status(r, buf, r->line_start, end);
            r->in_headers = 1;
        } else if (end == r->line_start) {
            r->header_end = eol + 1;
            r->pos = eol + 1;
            r->done = HTTP_PARSE_OK;
            return r->done;
        } else {
            rc = parse_header(r, buf, r->line_start, end);
        }
        if (rc == HTTP_PARSE_INVALID) {
            return rc;
        }
        r->line_start = eol + 1;
        r->pos = eol + 1;
    }
}

/* See http_parse.h. */
enum http_parse_rc
http_parse_final(struct http_response *r, const unsigned char *buf,
                 size_t *head_r, size_t len)
{
    enum http_parse_rc rc;

    for (;;) {
        rc = http_parse(r, buf + *head_r, len - *head_r);
        if (rc != HTTP_PARSE_OK || r->status >= 200 || r->status == 101) {
            return rc;
        }
        *head_r += r->header_end;
        http_parse_init(r);
    }
}

/* Case-insensitive name compare of a span with a C string. */
static int
name_eq(const unsigned char *p, size_t n, const char *name)
{
    size_t i;

    if (strlen(name) != n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char a = p[i], b = (unsigned char)name[i];

        if (a >= 'A' && a <= 'Z') {
            a = (unsigned char)(a - 'A' + 'a');
        }
        if (b >= 'A' && b <= 'Z') {
            b = (unsigned char)(b - 'A' + 'a');
        }
        if (a != b) {
            return 0;
        }
    }
    return 1;
}

/*
 * The last header of that name: a later Auth-Server, Auth-Port, Auth-User,
 * Auth-Pass or Auth-Error-Code replaces an earlier one, as in NGINX's
 * auth_http client.  Not so for Auth-Status, where NGINX fails closed (one
 * refusal among several values refuses), nor for Auth-Wait (a value that
 * is not a number is skipped): auth_http.c reads every one of those with
 * http_header_next.
 */
int
http_header_get(const struct http_response *r, const unsigned char *buf,
                const char *name, struct str *value_r)
{
    size_t i;

    for (i = r->nheaders; i > 0; i--) {
        const struct http_header *h = &r->headers[i - 1];

        if (name_eq(buf + h->name.off, h->name.len, name)) {
            value_r->data = (unsigned char *)buf + h->value.off;
            value_r->len = h->value.len;
            return 1;
        }
    }
    return 0;
}

/* The next header of that name, in the order received (see the header). */
int
http_header_next(const struct http_response *r, const unsigned char *buf,
                 const char *name, size_t *pos, struct str *value_r)
{
    for (; *pos < r->nheaders; (*pos)++) {
        const struct http_header *h = &r->headers[*pos];

        if (name_eq(buf + h->name.off, h->name.len, name)) {
            value_r->data = (unsigned char *)buf + h->value.off;
            value_r->len = h->value.len;
            (*pos)++;
            return 1;
        }
    }
    return 0;
}
