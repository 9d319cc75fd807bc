/*
 * test_smtp_parse.c - the SMTP command parser and the backend reply parser,
 * each fed whole and byte by byte (the results must be the same).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "tap.h"

/* Results of parsing a stream, one per line: "OK VERB|ARG|..|=TEXT" or
 * "INVALID", each with the consumed length, joined by ';'.  A trailing
 * "AGAIN" means bytes were left without a whole line. */
struct outcome {
    char text[4096];
    size_t n;
};

static void
out_add(struct outcome *o, const char *prefix, const unsigned char *p,
        size_t len)
{
    size_t pl = strlen(prefix);

    if (o->n + pl + len + 1 > sizeof(o->text)) {
        return;
    }
    memcpy(o->text + o->n, prefix, pl);
    memcpy(o->text + o->n + pl, p, len);
    o->n += pl + len;
    o->text[o->n] = '\0';
}

static void
out_cmd(struct outcome *o, enum smtp_parse_rc rc, const struct smtp_cmd *c)
{
    char num[32];

    if (rc == SMTP_PARSE_INVALID) {
        snprintf(num, sizeof(num), "INVALID/%zu;", c->len);
        out_add(o, "", (const unsigned char *)num, strlen(num));
        return;
    }
    out_add(o, "OK ", c->verb.data, c->verb.len);
    for (size_t i = 0; i < c->nargs; i++) {
        out_add(o, "|", c->args[i].data, c->args[i].len);
    }
    out_add(o, "|=", c->text.data, c->text.len);
    snprintf(num, sizeof(num), "/%zu;", c->len);
    out_add(o, "", (const unsigned char *)num, strlen(num));
}

/* Parse all of input at once (one call per line). */
static void
cmds_whole(const char *input, size_t len, struct outcome *o)
{
    struct smtp_cmd_parser p;
    struct smtp_cmd c;
    unsigned char *buf = malloc(len + 1);
    size_t pos = 0;

    memcpy(buf, input, len);
    memset(o, 0, sizeof(*o));
    smtp_cmd_parser_init(&p);
    while (pos < len) {
        enum smtp_parse_rc rc = smtp_cmd_parse(&p, buf + pos, len - pos, &c);

        if (rc == SMTP_PARSE_AGAIN) {
            out_add(o, "", (const unsigned char *)"AGAIN", 5);
            break;
        }
        out_cmd(o, rc, &c);
        pos += c.len;
    }
    free(buf);
}

/* The same, one more byte per call; each call gets an exactly sized copy
 * of the line so far (so a read past the end shows under ASan), at a
 * new address (so a kept pointer shows too). */
static void
cmds_bytewise(const char *input, size_t len, struct outcome *o)
{
    struct smtp_cmd_parser p;
    struct smtp_cmd c;
    size_t start = 0, have;

    memset(o, 0, sizeof(*o));
    smtp_cmd_parser_init(&p);
    for (have = 1; start + have <= len; have++) {
        unsigned char *copy = malloc(have);
        enum smtp_parse_rc rc;

        memcpy(copy, input + start, have);
        rc = smtp_cmd_parse(&p, copy, have, &c);
        if (rc != SMTP_PARSE_AGAIN) {
            out_cmd(o, rc, &c);
            start += c.len;
            have = 0;
        }
        free(copy);
    }
    if (start < len) {
        out_add(o, "", (const unsigned char *)"AGAIN", 5);
    }
}

/* Whole and byte-by-byte both give want. */
static void
cmds_is(const char *input, size_t len, const char *want, const char *name)
{
    struct outcome w, b;

    cmds_whole(input, len, &w);
    cmds_bytewise(input, len, &b);
    is_str(w.text, want, "%s (whole)", name);
    is_str(b.text, want, "%s (byte by byte)", name);
}

#define CMDS(input, want, name) cmds_is(input, sizeof(input) - 1, want, name)

static void
test_commands(void)
{
    char big[512];
    size_t n;

    CMDS("EHLO client.example\r\n",
         "OK EHLO|client.example|=EHLO client.example/21;",
         "EHLO");
    CMDS("helo x\n", "OK helo|x|=helo x/7;", "bare LF ends a line");
    CMDS("MAIL FROM:<a@b> SIZE=100\r\n",
         "OK MAIL|FROM:<a@b>|SIZE=100|=MAIL FROM:<a@b> SIZE=100/26;",
         "MAIL with two arguments, text is the whole command");
    CMDS("QUIT   \r\n", "OK QUIT|=QUIT/9;", "trailing spaces are not text");
    CMDS("RCPT  TO:<x>  \r\n", "OK RCPT|TO:<x>|=RCPT  TO:<x>/16;",
         "several spaces between words");
    CMDS("STARTTLS\r\n", "OK STARTTLS|=STARTTLS/10;", "STARTTLS");
    CMDS("HELO a\tb\r\n", "OK HELO|a\tb|=HELO a\tb/10;",
         "a tab inside an argument is kept");
    CMDS("\r\n", "INVALID/2;", "empty line");
    CMDS("\n", "INVALID/1;", "empty line, bare LF");
    CMDS(" NOOP\r\n", "INVALID/7;", "leading space");
    CMDS("HELO\tx\r\n", "INVALID/8;", "tab after the verb");
    CMDS("1234 x\r\nNOOP\r\n", "INVALID/8;OK NOOP|=NOOP/6;",
         "a bad line is skipped to its LF, the next one parses");
    CMDS("AUTH PLAIN \0x\r\nQUIT\r\n", "INVALID/15;OK QUIT|=QUIT/6;",
         "NUL in an argument");
    CMDS("AUTH PLAIN a\0x\r\n", "INVALID/16;", "NUL inside an argument");
    CMDS("HELO a\001b\r\nQUIT\r\n", "INVALID/10;OK QUIT|=QUIT/6;",
         "a control byte inside an argument");
    CMDS("MAIL FROM:<a@b>\177\r\n", "INVALID/18;", "DEL in an argument");
    CMDS("RCPT TO:<\033[1m@b>\r\n", "INVALID/18;", "ESC in an argument");
    CMDS("HELO \303\251.example\r\n",
         "OK HELO|\303\251.example|=HELO \303\251.example/17;",
         "UTF-8 bytes are not control bytes");
    CMDS("NOOP\rX\r\nQUIT\r\n", "INVALID/8;OK QUIT|=QUIT/6;",
         "bare CR inside a line");
    CMDS("NOOP\r\r\n", "INVALID/7;", "CR CR LF");
    CMDS("EHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<b>\r\nDATA\r\n",
         "OK EHLO|a|=EHLO a/8;OK MAIL|FROM:<>|=MAIL FROM:<>/14;"
         "OK RCPT|TO:<b>|=RCPT TO:<b>/13;OK DATA|=DATA/6;",
         "pipelined commands come out in order");
    CMDS("EHLO a", "AGAIN", "no line end yet");
    CMDS("NOOP\r", "AGAIN", "CR without LF yet");
    CMDS("1\r\nEHLO", "INVALID/3;AGAIN", "junk, then a partial line");
    CMDS("AbcdefghijklmnoP x\r\n",
         "OK AbcdefghijklmnoP|x|=AbcdefghijklmnoP x/20;",
         "a 16-letter verb");
    CMDS("AbcdefghijklmnopQ x\r\n", "INVALID/21;", "a 17-letter verb");
    CMDS("V 1 2 3 4 5 6 7 8 9 10\r\n",
         "OK V|1|2|3|4|5|6|7|8|9|10|=V 1 2 3 4 5 6 7 8 9 10/24;",
         "ten arguments");
    CMDS("V 1 2 3 4 5 6 7 8 9 10 11\r\n", "INVALID/27;", "eleven arguments");
    CMDS("V 1 2 3 4 5 6 7 8 9 10   \r\n",
         "OK V|1|2|3|4|5|6|7|8|9|10|=V 1 2 3 4 5 6 7 8 9 10/27;",
         "ten arguments and trailing spaces");
    CMDS("\xff\xfe\r\nNOOP\n", "INVALID/4;OK NOOP|=NOOP/5;", "binary junk");

    /* a long argument: the parser has no bound of its own */
    n = (size_t)snprintf(big, sizeof(big), "HELO ");
    memset(big + n, 'a', 400);
    memcpy(big + n + 400, "\r\n", 3);
    {
        struct outcome w;

        cmds_whole(big, n + 402, &w);
        ok(strncmp(w.text, "OK HELO|aaaa", 12) == 0
           && strstr(w.text, "/407;") != NULL, "a 400-byte argument");
    }
}

/* ---- replies ---- */

struct rout {
    enum smtp_parse_rc rc;
    int code;
    size_t nlines, len;
};

/* Parse one reply whole, and byte by byte; both must agree. */
static struct rout
reply_parse(const char *input, size_t len, const char *name)
{
    struct smtp_reply_parser p;
    struct smtp_reply r;
    struct rout w = { SMTP_PARSE_AGAIN, 0, 0, 0 }, b = w;
    unsigned char *buf = malloc(len + 1);

    memcpy(buf, input, len);
    smtp_reply_parser_init(&p);
    w.rc = smtp_reply_parse(&p, buf, len, &r);
    if (w.rc == SMTP_PARSE_OK) {
        w.code = r.code;
        w.nlines = r.nlines;
        w.len = r.len;
        ok(r.text.data == buf && r.text.len == r.len, "%s: text is the reply",
           name);
    }
    free(buf);

    smtp_reply_parser_init(&p);
    for (size_t have = 1; have <= len; have++) {
        unsigned char *copy = malloc(have);

        memcpy(copy, input, have);
        b.rc = smtp_reply_parse(&p, copy, have, &r);
        free(copy);
        if (b.rc == SMTP_PARSE_OK) {
            b.code = r.code;
            b.nlines = r.nlines;
            b.len = r.len;
        }
        if (b.rc != SMTP_PARSE_AGAIN) {
            break;
        }
    }
    ok(w.rc == b.rc && w.code == b.code && w.nlines == b.nlines
       && w.len == b.len, "%s: whole and byte by byte agree", name);
    return w;
}

#define REPLY(input, name) reply_parse(input, sizeof(input) - 1, name)

static void
test_replies(void)
{
    static const char ehlo[] =
        "250-mx.example.net\r\n"
        "250-PIPELINING\r\n"
        "250-SIZE 10240000\r\n"
        "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN\r\n"
        "250 8BITMIME\r\n";
    struct smtp_reply_parser p;
    struct smtp_reply r;
    struct rout o;
    struct str line;
    size_t off;
    unsigned attrs;
    char many[128 * 8];
    size_t n = 0;

    o = REPLY("220 mx ESMTP Postfix\r\n", "greeting");
    ok(o.rc == SMTP_PARSE_OK && o.code == 220 && o.nlines == 1 && o.len == 22,
       "one-line greeting");

    o = REPLY(ehlo, "EHLO reply");
    ok(o.rc == SMTP_PARSE_OK && o.code == 250 && o.nlines == 5
       && o.len == sizeof(ehlo) - 1, "multi-line EHLO reply");

    o = REPLY("250-a\r\n250 b\r\n220 next\r\n", "reply and more");
    ok(o.rc == SMTP_PARSE_OK && o.len == 14 && o.nlines == 2,
       "a reply ends at its last line, the rest is not consumed");

    o = REPLY("250\r\n", "code only");
    ok(o.rc == SMTP_PARSE_OK && o.code == 250 && o.len == 5, "code only");
    o = REPLY("250-a\n250 b\n", "bare LF");
    ok(o.rc == SMTP_PARSE_OK && o.nlines == 2 && o.len == 12, "bare LF lines");
    o = REPLY("554 5.7.1 no\r\n", "5xx");
    ok(o.rc == SMTP_PARSE_OK && o.code == 554, "a refusal parses");

    o = REPLY("250-a\r\n251 b\r\n", "code change");
    ok(o.rc == SMTP_PARSE_INVALID, "lines with different codes");
    o = REPLY("2x0 a\r\n", "letter in code");
    ok(o.rc == SMTP_PARSE_INVALID, "letter in code");
    o = REPLY("650 a\r\n", "code 650");
    ok(o.rc == SMTP_PARSE_INVALID, "first digit above 5");
    o = REPLY("050 a\r\n", "code 050");
    ok(o.rc == SMTP_PARSE_INVALID, "first digit 0");
    o = REPLY("250xhello\r\n", "no separator");
    ok(o.rc == SMTP_PARSE_INVALID, "no separator after the code");
    o = REPLY("25\r\n", "short");
    ok(o.rc == SMTP_PARSE_INVALID, "two digits");
    o = REPLY("250 a\0b\r\n", "NUL");
    ok(o.rc == SMTP_PARSE_INVALID, "NUL in text");
    o = REPLY("250 a\rb\r\n", "bare CR");
    ok(o.rc == SMTP_PARSE_INVALID, "bare CR in text");
    o = REPLY("HTTP/1.1 400\r\n", "not SMTP");
    ok(o.rc == SMTP_PARSE_INVALID, "not SMTP at all");
    o = REPLY("250-a\r\n250 b", "partial");
    ok(o.rc == SMTP_PARSE_AGAIN, "last line without its end");
    o = REPLY("250-a\r\n", "continuation only");
    ok(o.rc == SMTP_PARSE_AGAIN, "continuation line, more to come");

    for (int i = 0; i < SMTP_REPLY_LINES_MAX + 5; i++) {
        memcpy(many + n, "250-x\r\n", 7);
        n += 7;
    }
    o = reply_parse(many, n, "too many lines");
    ok(o.rc == SMTP_PARSE_INVALID, "more than %d lines", SMTP_REPLY_LINES_MAX);

    /* lines and XCLIENT */
    smtp_reply_parser_init(&p);
    ok(smtp_reply_parse(&p, (unsigned char *)ehlo, sizeof(ehlo) - 1, &r)
       == SMTP_PARSE_OK, "EHLO reply parsed for walking");
    off = 0;
    ok(smtp_reply_next_line(&r, &off, &line) && str_eq(line, "mx.example.net"),
       "first line text");
    ok(smtp_reply_next_line(&r, &off, &line) && str_eq(line, "PIPELINING"),
       "second line text");
    smtp_reply_next_line(&r, &off, &line);
    smtp_reply_next_line(&r, &off, &line);
    ok(smtp_reply_next_line(&r, &off, &line) && str_eq(line, "8BITMIME"),
       "last line text");
    ok(!smtp_reply_next_line(&r, &off, &line), "no more lines");
    ok(smtp_ehlo_xclient(&r, &attrs) == 1, "XCLIENT found");
    is_int(attrs, SMTP_XCLIENT_NAME | SMTP_XCLIENT_ADDR | SMTP_XCLIENT_PROTO
           | SMTP_XCLIENT_HELO | SMTP_XCLIENT_PORT | SMTP_XCLIENT_LOGIN,
           "XCLIENT attributes");

    {
        static const char a[] = "250-mx\r\n250-xclient addr\r\n250 DSN\r\n";
        static const char b[] = "250-mx\r\n250-XCLIENTX NAME\r\n250 DSN\r\n";
        static const char c[] = "250-XCLIENT NAME\r\n250 DSN\r\n";
        static const char d[] = "250 mx\r\n";

        smtp_reply_parser_init(&p);
        smtp_reply_parse(&p, (unsigned char *)a, sizeof(a) - 1, &r);
        ok(smtp_ehlo_xclient(&r, &attrs) == 1 && attrs == SMTP_XCLIENT_ADDR,
           "lower-case xclient keyword and attribute");
        smtp_reply_parser_init(&p);
        smtp_reply_parse(&p, (unsigned char *)b, sizeof(b) - 1, &r);
        ok(smtp_ehlo_xclient(&r, &attrs) == 0, "XCLIENTX is not XCLIENT");
        smtp_reply_parser_init(&p);
        smtp_reply_parse(&p, (unsigned char *)c, sizeof(c) - 1, &r);
        ok(smtp_ehlo_xclient(&r, &attrs) == 0,
           "a server named XCLIENT in the first line offers nothing");
        smtp_reply_parser_init(&p);
        smtp_reply_parse(&p, (unsigned char *)d, sizeof(d) - 1, &r);
        ok(smtp_ehlo_xclient(&r, &attrs) == 0 && attrs == 0,
           "single-line EHLO reply: no XCLIENT");
    }
}

int
main(void)
{
    test_commands();
    test_replies();
    return tap_done();
}
