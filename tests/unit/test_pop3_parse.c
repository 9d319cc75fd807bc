/*
 * test_pop3_parse.c - the POP3 command parser, fed whole, byte by byte and
 * in odd chunks: commands, arguments, line ends, bounds and junk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_parse.h"
#include "tap.h"

#define MAX_EVENTS 16

/* What the parser reported for one line, as text: "USER|arg|arg" or
 * "INVALID" or "INVALID-LONG". */
struct events {
    int n;
    char ev[MAX_EVENTS][1100];
    size_t buffered_max;        /* most bytes held unconsumed at once */
};

static void
record(struct events *e, enum pop3_parse_rc rc, const struct pop3_parser *p,
       const struct pop3_command *cmd)
{
    char *out;

    if (e->n == MAX_EVENTS) {
        return;
    }
    out = e->ev[e->n++];
    if (rc == POP3_PARSE_INVALID) {
        strcpy(out, p->too_long ? "INVALID-LONG" : "INVALID");
        return;
    }
    strcpy(out, pop3_cmd_name(cmd->cmd));
    for (size_t i = 0; i < cmd->nargs; i++) {
        size_t l = strlen(out);

        out[l++] = '|';
        memcpy(out + l, cmd->args[i].data, cmd->args[i].len);
        out[l + cmd->args[i].len] = '\0';
    }
}

/*
 * Run input through the parser in chunks of `chunk` bytes (0: whole),
 * keeping unconsumed bytes at the head of a buffer as the dialogue does.
 */
static void
run(const unsigned char *in, size_t inlen, size_t chunk, struct events *e)
{
    struct pop3_parser p;
    struct pop3_command cmd;
    unsigned char *buf = malloc(inlen + 1);
    size_t have = 0, fed = 0, used;
    enum pop3_parse_rc rc;
    int guard = 0;

    memset(e, 0, sizeof(*e));
    pop3_parser_init(&p);
    while (guard++ < 100000) {
        rc = pop3_parse(&p, buf, have, &cmd, &used);
        if (rc != POP3_PARSE_AGAIN) {
            record(e, rc, &p, &cmd);
        }
        memmove(buf, buf + used, have - used);
        have -= used;
        if (rc != POP3_PARSE_AGAIN) {
            continue;
        }
        if (fed == inlen) {
            break;
        }
        {
            size_t n = chunk == 0 ? inlen - fed : chunk;

            if (n > inlen - fed) {
                n = inlen - fed;
            }
            memcpy(buf + have, in + fed, n);
            have += n;
            fed += n;
            if (have > e->buffered_max) {
                e->buffered_max = have;
            }
        }
    }
    free(buf);
}

/* Check one input against the expected events, fed in several ways. */
static void
check(const char *name, const char *input, size_t len, const char **want,
      int nwant)
{
    static const size_t chunks[] = { 0, 1, 2, 3, 7 };
    struct events e;

    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        int good;

        run((const unsigned char *)input, len, chunks[c], &e);
        good = e.n == nwant;
        for (int i = 0; good && i < nwant; i++) {
            good = strcmp(e.ev[i], want[i]) == 0;
        }
        if (!ok(good, "%s (chunk %zu)", name, chunks[c])) {
            for (int i = 0; i < e.n; i++) {
                printf("#   got[%d] %s\n", i, e.ev[i]);
            }
            for (int i = 0; i < nwant; i++) {
                printf("#   want[%d] %s\n", i, want[i]);
            }
        }
    }
}

#define CHECK(name, input, ...) do { \
    const char *w_[] = { __VA_ARGS__ }; \
    check(name, input, sizeof(input) - 1, w_, \
          (int)(sizeof(w_) / sizeof(w_[0]))); \
} while (0)

/* A line of n bytes: "PASS " + 'x' * (n - 7) + CRLF. */
static char *
long_pass(size_t n)
{
    char *s = malloc(n + 1);

    memcpy(s, "PASS ", 5);
    memset(s + 5, 'x', n - 7);
    memcpy(s + n - 2, "\r\n", 2);
    s[n] = '\0';
    return s;
}

static void
test_bounds(void)
{
    struct events e;
    char *line, want[600];
    char *two;

    /* exactly POP3_LINE_MAX octets including CRLF: taken */
    line = long_pass(POP3_LINE_MAX);
    snprintf(want, sizeof(want), "PASS|%.*s", POP3_LINE_MAX - 7, line + 5);
    run((unsigned char *)line, strlen(line), 0, &e);
    ok(e.n == 1 && strcmp(e.ev[0], want) == 0, "line of 512 octets is taken");
    run((unsigned char *)line, strlen(line), 1, &e);
    ok(e.n == 1 && strcmp(e.ev[0], want) == 0,
       "line of 512 octets is taken byte by byte");
    free(line);

    /* one more octet: too long, and the next line still parses */
    line = long_pass(POP3_LINE_MAX + 1);
    two = malloc(strlen(line) + 16);
    sprintf(two, "%sNOOP\r\n", line);
    for (size_t chunk = 0; chunk <= 5; chunk += 5) {
        run((unsigned char *)two, strlen(two), chunk, &e);
        ok(e.n == 2 && strcmp(e.ev[0], "INVALID-LONG") == 0
           && strcmp(e.ev[1], "NOOP") == 0,
           "line of 513 octets is too long, next line fine (chunk %zu)", chunk);
    }
    free(two);
    free(line);

    /* a huge line never makes the caller hold much more than the bound */
    {
        size_t n = 100000;
        char *big = malloc(n + 8);

        memset(big, 'a', n);
        memcpy(big, "USER ", 5);
        memcpy(big + n, "\r\nQUIT\r\n", 8);
        run((unsigned char *)big, n + 8, 64, &e);
        ok(e.n == 2 && strcmp(e.ev[0], "INVALID-LONG") == 0
           && strcmp(e.ev[1], "QUIT") == 0, "100k line skipped");
        ok(e.buffered_max <= POP3_LINE_MAX + 64,
           "100k line: at most %zu bytes buffered", e.buffered_max);
        free(big);
    }

    /* overflow by the caller: the line is skipped to its LF */
    {
        struct pop3_parser p;
        struct pop3_command cmd;
        size_t used;
        enum pop3_parse_rc rc;

        pop3_parser_init(&p);
        rc = pop3_parse(&p, (const unsigned char *)"USER abc", 8, &cmd, &used);
        ok(rc == POP3_PARSE_AGAIN && used == 0, "partial line: again");
        pop3_parser_overflow(&p);
        rc = pop3_parse(&p, (const unsigned char *)"def", 3, &cmd, &used);
        ok(rc == POP3_PARSE_AGAIN && used == 3, "overflow: bytes skipped");
        rc = pop3_parse(&p, (const unsigned char *)"g\r\nNOOP\r\n", 9, &cmd,
                        &used);
        ok(rc == POP3_PARSE_INVALID && used == 3 && p.too_long,
           "overflow: reported at LF as too long");
        rc = pop3_parse(&p, (const unsigned char *)"NOOP\r\n", 6, &cmd, &used);
        ok(rc == POP3_PARSE_OK && used == 6 && cmd.cmd == POP3_CMD_NOOP
           && !p.too_long, "overflow: next line fine");
    }
}

static void
test_slices(void)
{
    struct pop3_parser p;
    struct pop3_command cmd;
    size_t used;
    const unsigned char in[] =
        "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n";
    enum pop3_parse_rc rc;

    pop3_parser_init(&p);
    rc = pop3_parse(&p, in, sizeof(in) - 1, &cmd, &used);
    ok(rc == POP3_PARSE_OK && used == sizeof(in) - 1, "APOP whole line");
    ok(cmd.nargs == 2 && cmd.args[0].data == in + 5 && cmd.args[0].len == 5,
       "APOP arg 0 is a slice of the buffer");
    ok(cmd.args[1].data == in + 11 && cmd.args[1].len == 32,
       "APOP arg 1 is a slice of the buffer");

    /* consumed length stops at the first LF of pipelined commands */
    pop3_parser_init(&p);
    rc = pop3_parse(&p, (const unsigned char *)"CAPA\r\nUSER x\r\n", 14, &cmd,
                    &used);
    ok(rc == POP3_PARSE_OK && used == 6 && cmd.cmd == POP3_CMD_CAPA
       && cmd.nargs == 0, "pipelined: first line only");
}

int
main(void)
{
    /* RFC 1939 / 2449 / 5034 / 2595 commands */
    CHECK("USER", "USER mrose\r\n", "USER|mrose");
    CHECK("user lower case", "user mrose\r\n", "USER|mrose");
    CHECK("mixed case", "uSeR mrose\r\n", "USER|mrose");
    CHECK("PASS", "PASS secret\r\n", "PASS|secret");
    CHECK("PASS with spaces", "PASS my secret  pass\r\n",
          "PASS|my secret  pass");
    CHECK("USER with spaces", "USER john doe\r\n", "USER|john doe");
    CHECK("several spaces before arg", "USER   mrose\r\n", "USER|mrose");
    CHECK("APOP", "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
          "APOP|mrose|c4c9334bac560ecc979e58001b3e22fb");
    CHECK("AUTH", "AUTH\r\n", "AUTH");
    CHECK("AUTH PLAIN", "AUTH PLAIN\r\n", "AUTH|PLAIN");
    CHECK("AUTH PLAIN initial", "AUTH PLAIN AHRlc3QAdGVzdA==\r\n",
          "AUTH|PLAIN|AHRlc3QAdGVzdA==");
    CHECK("AUTH trailing space", "AUTH LOGIN \r\n", "AUTH|LOGIN");
    CHECK("CAPA", "CAPA\r\n", "CAPA");
    CHECK("NOOP", "NOOP\r\n", "NOOP");
    CHECK("QUIT", "QUIT\r\n", "QUIT");
    CHECK("STLS", "STLS\r\n", "STLS");
    CHECK("bare LF", "NOOP\n", "NOOP");
    CHECK("USER bare LF", "USER bob\n", "USER|bob");
    CHECK("pipelined", "CAPA\r\nUSER a\r\nPASS b c\r\nQUIT\r\n",
          "CAPA", "USER|a", "PASS|b c", "QUIT");
    CHECK("USER without argument", "USER\r\n", "USER");
    CHECK("USER only spaces", "USER   \r\n", "USER");
    CHECK("high-bit bytes in PASS", "PASS p\xc3\xa4ss\r\n",
          "PASS|p\xc3\xa4ss");
    CHECK("tab is part of an argument", "PASS a\tb\r\n", "PASS|a\tb");

    /* junk */
    CHECK("unknown command", "STAT\r\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("RETR is not ours", "RETR 1\r\n", "INVALID");
    CHECK("five letters", "NOOPS\r\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("long keyword", "AUTHENTICATE PLAIN\r\nQUIT\r\n", "INVALID", "QUIT");
    CHECK("empty line", "\r\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("empty line LF", "\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("leading space", " NOOP\r\n", "INVALID");
    CHECK("digit in keyword", "NO0P\r\nQUIT\r\n", "INVALID", "QUIT");
    CHECK("three arguments", "APOP a b c\r\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("CR inside line", "USER a\rb\r\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("CR CR LF", "NOOP\r\r\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("NUL in argument", "PASS a\0b\r\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("NUL in keyword", "NO\0P\r\nNOOP\r\n", "INVALID", "NOOP");
    CHECK("binary junk", "\x16\x03\x01\x02\x00\x01\x00\r\nQUIT\r\n",
          "INVALID", "QUIT");
    CHECK("HTTP", "GET / HTTP/1.0\r\n\r\n", "INVALID", "INVALID");
    CHECK("no line end yet", "NOOP");

    test_bounds();
    test_slices();

    is_str(pop3_cmd_name(POP3_CMD_STLS), "STLS", "command names");
    return tap_done();
}
