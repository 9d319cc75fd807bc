/*
 * test_http_parse.c - the auth service response parser: whole and byte by
 * byte, line ends, header look-up, syntax errors, the bounds on line
 * length, header count and total size, and interim 1xx heads skipped on
 * the way to the final one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "str.h"
#include "tap.h"

static struct http_response hr;

/* Parse all n bytes at once. */
static enum http_parse_rc
whole(const char *s, size_t n)
{
    http_parse_init(&hr);
    return http_parse(&hr, (const unsigned char *)s, n);
}

/* Parse growing prefixes, one more byte each call; stops at the first
 * result that is not AGAIN. */
static enum http_parse_rc
bytewise(const char *s, size_t n)
{
    enum http_parse_rc rc = HTTP_PARSE_AGAIN;
    size_t i;

    http_parse_init(&hr);
    for (i = 1; i <= n && rc == HTTP_PARSE_AGAIN; i++) {
        rc = http_parse(&hr, (const unsigned char *)s, i);
    }
    return rc;
}

/* http_parse_final over growing prefixes, one more byte each call; the
 * final head's offset in *head_r.  Every prefix result must match what
 * the whole text gives, and so must the offset. */
static enum http_parse_rc
final_bytewise(const char *s, size_t *head_r)
{
    enum http_parse_rc whole_rc, rc = HTTP_PARSE_AGAIN;
    size_t n = strlen(s), i, head_whole = 0;

    http_parse_init(&hr);
    whole_rc = http_parse_final(&hr, (const unsigned char *)s, &head_whole, n);
    *head_r = 0;
    http_parse_init(&hr);
    for (i = 1; i <= n && rc == HTTP_PARSE_AGAIN; i++) {
        rc = http_parse_final(&hr, (const unsigned char *)s, head_r, i);
    }
    if (rc != whole_rc || *head_r != head_whole) {
        return (enum http_parse_rc)-1;
    }
    return rc;
}

/* A header value as a static C string, "(none)" when absent. */
static const char *
hdr(const char *buf, const char *name)
{
    static char out[HTTP_MAX_LINE + 1];
    struct str v;

    if (!http_header_get(&hr, (const unsigned char *)buf, name, &v)) {
        return "(none)";
    }
    memcpy(out, v.data, v.len);
    out[v.len] = '\0';
    return out;
}

/* Both ways must agree on rc; returns it. */
static enum http_parse_rc
both(const char *s, size_t n, const char *what)
{
    enum http_parse_rc a, b;

    a = whole(s, n);
    b = bytewise(s, n);
    is_int(b, a, "%s: byte by byte == whole", what);
    return b;
}

/* Text with many headers or long lines, built on the heap. */
static char *
build(size_t nheaders, size_t valuelen, size_t *len_r)
{
    size_t cap = 64 + nheaders * (valuelen + 32), i;
    char *s = malloc(cap), *p;

    if (s == NULL) {
        abort();
    }
    p = s;
    p += sprintf(p, "HTTP/1.0 200 OK\r\n");
    for (i = 0; i < nheaders; i++) {
        p += sprintf(p, "X-%04zu: ", i);
        memset(p, 'v', valuelen);
        p += valuelen;
        p += sprintf(p, "\r\n");
    }
    p += sprintf(p, "\r\n");
    *len_r = (size_t)(p - s);
    return s;
}

int
main(void)
{
    const char *ok1 = "HTTP/1.0 200 OK\r\n"
                      "Auth-Status: OK\r\n"
                      "Auth-Server:   127.0.0.1  \r\n"
                      "auth-port: 143\r\n"
                      "Auth-Pass: p@ss word\r\n"
                      "X-Empty:\r\n"
                      "\r\n"
                      "body is ignored\r\n";
    const char *lf = "HTTP/1.1 204 No Content\n"
                     "Auth-Status: Invalid login or password\n"
                     "Auth-Wait: 3\n"
                     "\n";
    char *big;
    size_t len, headlen;
    enum http_parse_rc rc;
    int i;

    /* a complete response */
    rc = both(ok1, strlen(ok1), "ok1");
    is_int(rc, HTTP_PARSE_OK, "ok1 parses");
    headlen = strlen(ok1) - strlen("body is ignored\r\n");
    is_int(hr.header_end, headlen, "header_end just after the blank line");
    is_int(hr.status, 200, "status");
    is_int(hr.version_minor, 0, "HTTP/1.0");
    is_int(hr.nheaders, 5, "five headers");
    is_str(hdr(ok1, "Auth-Status"), "OK", "Auth-Status");
    is_str(hdr(ok1, "AUTH-SERVER"), "127.0.0.1",
           "case-insensitive name, blanks trimmed");
    is_str(hdr(ok1, "Auth-Port"), "143", "lower-case name in response");
    is_str(hdr(ok1, "Auth-Pass"), "p@ss word", "inner blank kept");
    is_str(hdr(ok1, "X-Empty"), "", "empty value");
    is_str(hdr(ok1, "Auth-User"), "(none)", "absent header");
    rc = whole(ok1, headlen);
    is_int(rc, HTTP_PARSE_OK, "ok without any body bytes");
    rc = whole(ok1, 20);
    is_int(rc, HTTP_PARSE_AGAIN, "partial: AGAIN");
    rc = whole(ok1, 0);
    is_int(rc, HTTP_PARSE_AGAIN, "nothing yet: AGAIN");
    rc = whole(ok1, headlen - 1);
    is_int(rc, HTTP_PARSE_AGAIN, "blank line's LF missing: AGAIN");

    /* resuming twice over the same length changes nothing */
    http_parse_init(&hr);
    is_int(http_parse(&hr, (const unsigned char *)ok1, 30), HTTP_PARSE_AGAIN,
           "resume 1");
    is_int(http_parse(&hr, (const unsigned char *)ok1, 30), HTTP_PARSE_AGAIN,
           "resume 2, same length");
    is_int(http_parse(&hr, (const unsigned char *)ok1, strlen(ok1)),
           HTTP_PARSE_OK, "resume 3, all");
    is_int(http_parse(&hr, (const unsigned char *)ok1, strlen(ok1)),
           HTTP_PARSE_OK, "OK is sticky");

    /* bare LF line ends, HTTP/1.1, another status */
    rc = both(lf, strlen(lf), "lf");
    is_int(rc, HTTP_PARSE_OK, "LF-only response parses");
    is_int(hr.status, 204, "status 204");
    is_int(hr.version_minor, 1, "HTTP/1.1");
    is_str(hdr(lf, "Auth-Status"), "Invalid login or password",
           "status text with blanks");
    is_str(hdr(lf, "Auth-Wait"), "3", "Auth-Wait");

    /* last of duplicates wins */
    {
        const char *d = "HTTP/1.0 200 OK\r\nAuth-Port: 1\r\n"
                        "Auth-Port: 2\r\n\r\n";

        is_int(both(d, strlen(d), "dup"), HTTP_PARSE_OK, "duplicates parse");
        is_str(hdr(d, "Auth-Port"), "2", "the last duplicate wins");
    }
    /* every one of a name, in order (Auth-Status: the refusal counts) */
    {
        const char *d = "HTTP/1.0 200 OK\r\nAuth-Status: Invalid\r\n"
                        "X-Other: x\r\nauth-status: OK\r\n"
                        "AUTH-STATUS:\r\n\r\n";
        const unsigned char *b = (const unsigned char *)d;
        struct str v;
        size_t pos = 0;

        is_int(both(d, strlen(d), "next"), HTTP_PARSE_OK, "several parse");
        ok(http_header_next(&hr, b, "Auth-Status", &pos, &v)
           && str_eq(v, "Invalid"), "next: the first in order");
        ok(http_header_next(&hr, b, "Auth-Status", &pos, &v)
           && str_eq(v, "OK"), "next: the second, any case");
        ok(http_header_next(&hr, b, "Auth-Status", &pos, &v) && v.len == 0,
           "next: the third, empty");
        ok(!http_header_next(&hr, b, "Auth-Status", &pos, &v),
           "next: no fourth");
        ok(!http_header_next(&hr, b, "Auth-Status", &pos, &v),
           "next: still none after the end");
        pos = 0;
        ok(!http_header_next(&hr, b, "Auth-Wait", &pos, &v),
           "next: none of an absent name");
    }
    {
        const char *d = "HTTP/1.0 500\r\n\r\n";

        is_int(both(d, strlen(d), "no reason"), HTTP_PARSE_OK,
               "status line without reason phrase");
        is_int(hr.status, 500, "status 500");
        is_int(hr.nheaders, 0, "no headers");
    }
    {
        const char *d = "HTTP/1.0 200 \xc3\xa9\t\r\nX-Y: \xc3\xa9\t\r\n\r\n";

        is_int(both(d, strlen(d), "8bit"), HTTP_PARSE_OK,
               "non-ASCII and TAB in reason and value");
        is_str(hdr(d, "X-Y"), "\xc3\xa9", "trailing TAB trimmed");
    }

    /* malformed */
    {
        static const struct {
            const char *text;
            const char *what;
        } bad[] = {
            { "HTTP/2 200 OK\r\n\r\n", "HTTP/2" },
            { "HTTP/1.0 20 OK\r\n\r\n", "two-digit status" },
            { "HTTP/1.0 2000 OK\r\n\r\n", "four-digit status" },
            { "HTTP/1.0 200OK\r\n\r\n", "no blank after status" },
            { "HTTP/1.0 099 X\r\n\r\n", "status below 100" },
            { "http/1.0 200 OK\r\n\r\n", "lower-case protocol" },
            { "xHTTP/1.0 200 OK\r\n\r\n", "junk before status" },
            { "garbage\r\n\r\n", "garbage" },
            { "\r\n", "empty status line" },
            { "HTTP/1.0 200 OK\r\nAuth-Status OK\r\n\r\n", "no colon" },
            { "HTTP/1.0 200 OK\r\nAuth-Status : OK\r\n\r\n",
              "blank before colon" },
            { "HTTP/1.0 200 OK\r\n: OK\r\n\r\n", "empty name" },
            { "HTTP/1.0 200 OK\r\nA: b\r\n c\r\n\r\n", "folded line" },
            { "HTTP/1.0 200 OK\r\nA(b: c\r\n\r\n", "bad name byte" },
            { "HTTP/1.0 200 OK\r\nA: b\rc\r\n\r\n", "bare CR" },
            { "HTTP/1.0 200 OK\r\nA: b\x01" "c\r\n\r\n", "control in value" },
            { "HTTP/1.0 200 OK\r\nA: b\x7f\r\n\r\n", "DEL in value" },
            { "HTTP/1.0 200 OK\x01\r\n\r\n", "control in reason" },
        };
        size_t k;

        for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            rc = both(bad[k].text, strlen(bad[k].text), bad[k].what);
            is_int(rc, HTTP_PARSE_INVALID, "invalid: %s", bad[k].what);
            ok(hr.error != NULL, "invalid: %s: has an error text (%s)",
               bad[k].what, hr.error ? hr.error : "");
        }
    }
    {
        const char nul[] = "HTTP/1.0 200 OK\r\nA: b\0c\r\n\r\n";

        rc = both(nul, sizeof(nul) - 1, "nul");
        is_int(rc, HTTP_PARSE_INVALID, "invalid: NUL in value");
        is_str(hr.error, "invalid byte in header value", "NUL: error text");
    }
    /* an error is found as soon as its line is complete */
    rc = bytewise("garbage\r\nmore", 14);
    is_int(rc, HTTP_PARSE_INVALID, "invalid before the end");

    /* bounds: line length (line end included) */
    big = build(1, HTTP_MAX_LINE - 10, &len);   /* "X-0000: " + v + CRLF */
    rc = both(big, len, "line at the bound");
    is_int(rc, HTTP_PARSE_OK, "a line of exactly HTTP_MAX_LINE bytes");
    free(big);
    big = build(1, HTTP_MAX_LINE - 9, &len);
    rc = both(big, len, "line over the bound");
    is_int(rc, HTTP_PARSE_INVALID, "a line of HTTP_MAX_LINE + 1 bytes");
    is_str(hr.error, "line too long", "error text");
    /* an endless line is refused without its LF */
    rc = whole(big, HTTP_MAX_LINE + 40);
    is_int(rc, HTTP_PARSE_INVALID, "over-long line refused before its end");
    free(big);

    /* bounds: header count */
    big = build(HTTP_MAX_HEADERS, 4, &len);
    is_int(both(big, len, "max headers"), HTTP_PARSE_OK,
           "HTTP_MAX_HEADERS headers");
    is_int(hr.nheaders, HTTP_MAX_HEADERS, "all counted");
    free(big);
    big = build(HTTP_MAX_HEADERS + 1, 4, &len);
    is_int(both(big, len, "too many"), HTTP_PARSE_INVALID,
           "HTTP_MAX_HEADERS + 1 headers");
    is_str(hr.error, "too many headers", "error text");
    free(big);

    /* bounds: total size (every line under its own bound) */
    big = build(5, 4000, &len);
    ok(len > HTTP_MAX_TOTAL, "test text is over HTTP_MAX_TOTAL");
    is_int(both(big, len, "total"), HTTP_PARSE_INVALID,
           "a head over HTTP_MAX_TOTAL");
    is_str(hr.error, "response header too big", "error text");
    /* nor does it wait for more once the buffer's worth is in */
    rc = whole(big, HTTP_MAX_TOTAL);
    is_int(rc, HTTP_PARSE_INVALID, "full buffer without the end: INVALID");
    free(big);
    big = build(4, 4000, &len);
    ok(len <= HTTP_MAX_TOTAL, "4 x 4000 is under the bound");
    is_int(both(big, len, "total ok"), HTTP_PARSE_OK, "a head under the "
           "total bound");
    free(big);

    /* many random-ish prefixes of a good response never report INVALID */
    for (i = 0; i < (int)strlen(ok1); i++) {
        rc = whole(ok1, (size_t)i);
        if (rc == HTTP_PARSE_INVALID) {
            break;
        }
    }
    is_int(i, strlen(ok1), "no prefix of a valid response is INVALID");

    /* interim heads: skipped, the final one is the answer */
    {
        const char *cont = "HTTP/1.1 100 Continue\r\n\r\n";
        const char *hints = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
        const char *fin = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n\r\n";
        char text[512];
        size_t head;

        is_int(final_bytewise(fin, &head), HTTP_PARSE_OK,
               "a final head alone");
        is_int(head, 0, "starts at 0");
        snprintf(text, sizeof(text), "%s%s", cont, fin);
        is_int(final_bytewise(text, &head), HTTP_PARSE_OK,
               "100 Continue, then the final head");
        is_int(head, strlen(cont), "the final head starts after it");
        is_int(hr.status, 200, "its status");
        is_str(hdr(text + head, "Auth-Status"), "OK",
               "its headers, relative to the final head");
        snprintf(text, sizeof(text), "%s%s%s", hints, cont, fin);
        is_int(final_bytewise(text, &head), HTTP_PARSE_OK,
               "two interim heads, then the final head");
        is_int(head, strlen(hints) + strlen(cont), "both skipped");
        snprintf(text, sizeof(text), "%s", cont);
        is_int(final_bytewise(text, &head), HTTP_PARSE_AGAIN,
               "an interim head alone: the answer is still to come");
        is_int(head, strlen(cont), "the next head starts after it");
        snprintf(text, sizeof(text), "HTTP/1.1 101 Switching Protocols"
                 "\r\n\r\n%s", fin);
        is_int(final_bytewise(text, &head), HTTP_PARSE_OK,
               "101 ends HTTP on the connection: it is final");
        is_int(hr.status, 101, "status 101 (which auth_http refuses)");
        is_int(head, 0, "nothing skipped");
        snprintf(text, sizeof(text), "%sHTTP/1.0 20 OK\r\n\r\n", cont);
        is_int(final_bytewise(text, &head), HTTP_PARSE_INVALID,
               "a bad head after an interim one: INVALID");
    }

    return tap_done();
}
