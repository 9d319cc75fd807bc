/*
 * test_imap_parse.c - the IMAP command parser, fed whole, byte by byte and
 * in odd chunks, with the buffer moved between calls (as buf_compact does).
 * Every run is written down as a transcript of events; all feeding modes
 * must give the same transcript, and it must be the expected one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "tap.h"

#define OUT_MAX 4096

/* Append printf-style text to out (bounded). */
static void
outf(char *out, const char *fmt, ...)
{
    size_t n = strlen(out);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out + n, OUT_MAX - n, fmt, ap);
    va_end(ap);
}

/* Append bytes, escaping what is not printable. */
static void
out_bytes(char *out, const unsigned char *d, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (d[i] == '\r') {
            outf(out, "\\r");
        } else if (d[i] == '\n') {
            outf(out, "\\n");
        } else if (d[i] < 0x20 || d[i] >= 0x7f) {
            outf(out, "\\x%02x", d[i]);
        } else {
            outf(out, "%c", d[i]);
        }
    }
}

/* Write one event of a run. */
static void
out_event(char *out, enum imap_parse_rc rc, const struct imap_parser *p,
          const unsigned char *data)
{
    static const char types[] = "AQLP";

    if (rc == IMAP_PARSE_CONTINUE) {
        outf(out, "CONT;");
        return;
    }
    if (rc == IMAP_PARSE_INVALID) {
        outf(out, "BAD[%s]%s%s;", p->tag_len ? p->tag : "*",
             p->fatal ? " fatal" : "", "");
        return;
    }
    outf(out, "OK[%s] ", p->tag);
    out_bytes(out, p->name.data, p->name.len);
    for (size_t i = 0; i < p->nargs; i++) {
        outf(out, " %c'", types[p->args[i].type]);
        out_bytes(out, p->args[i].s.data, p->args[i].s.len);
        outf(out, "'");
        /* slices lie inside this command */
        if (p->args[i].s.data < data
            || p->args[i].s.data + p->args[i].s.len > data + p->consumed) {
            outf(out, "<OUT OF BOUNDS>");
        }
    }
    outf(out, ";");
}

/* A command name the caller refuses at CONTINUE (imap_parse_refuse), as
 * imap.c does with names it will refuse anyway; NULL: none. */
static const char *refuse_name;

/*
 * Feed in[0..len) chunk bytes at a time; between feeds the unparsed bytes
 * move to another buffer (the old one is poisoned).  Stops at a fatal
 * INVALID, as the caller closes then.  Ends with "END n" (bytes left).
 */
static void
run(const char *in, size_t len, size_t limit, size_t chunk, char *out)
{
    unsigned char *bufs[2];
    struct imap_parser p;
    size_t have = 0, fed = 0, n;
    int cur = 0;
    enum imap_parse_rc rc;

    out[0] = '\0';
    bufs[0] = malloc(len + 1);
    bufs[1] = malloc(len + 1);
    imap_parser_init(&p, limit);

    for (;;) {
        n = len - fed < chunk ? len - fed : chunk;
        memcpy(bufs[cur] + have, in + fed, n);
        have += n;
        fed += n;

        for (;;) {
            rc = imap_parse(&p, bufs[cur], have);
            if (rc == IMAP_PARSE_AGAIN) {
                break;
            }
            if (rc == IMAP_PARSE_CONTINUE && refuse_name != NULL
                && str_eq_ci(p.name, refuse_name))
            {
                outf(out, "REFUSED[%s] ", p.tag);
                out_bytes(out, p.name.data, p.name.len);
                outf(out, ";");
                imap_parse_refuse(&p);
                rc = IMAP_PARSE_INVALID;
            } else {
                out_event(out, rc, &p, bufs[cur]);
            }
            if (rc == IMAP_PARSE_CONTINUE) {
                continue;
            }
            if (p.consumed == 0 || p.consumed > have) {
                outf(out, "<BAD CONSUMED>");
                goto end;
            }
            if (rc == IMAP_PARSE_INVALID && p.fatal) {
                goto end;
            }
            memmove(bufs[cur], bufs[cur] + p.consumed, have - p.consumed);
            have -= p.consumed;
        }
        if (fed == len) {
            break;
        }
        memcpy(bufs[1 - cur], bufs[cur], have);
        memset(bufs[cur], 0xAA, len + 1);
        cur = 1 - cur;
    }
    outf(out, "END %zu", have);
end:
    free(bufs[0]);
    free(bufs[1]);
}

/* Check one input in every feeding mode against the expected transcript. */
static void
check(const char *name, const char *in, size_t len, size_t limit,
      const char *want)
{
    static const size_t chunks[] = { 0, 1, 2, 3, 7 };
    char out[OUT_MAX];

    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        size_t chunk = chunks[i] ? chunks[i] : (len ? len : 1);

        run(in, len, limit, chunk, out);
        is_str(out, want, "%s (chunk %zu)", name, chunk);
    }
}

#define CHECK(name, lit, limit, want) \
    check(name, lit, sizeof(lit) - 1, limit, want)

/* Direct use of the API: slices, consumed, reuse after OK. */
static void
test_api(void)
{
    unsigned char buf[] = "t1 LOGIN \"a\\\"b\" {2+}\r\nxy\r\nt2 NOOP\r\n";
    size_t len = sizeof(buf) - 1;
    struct imap_parser p;

    imap_parser_init(&p, 1024);
    is_int(imap_parse(&p, buf, 5), IMAP_PARSE_AGAIN, "api: partial");
    is_int(imap_parse(&p, buf, len), IMAP_PARSE_OK, "api: whole");
    is_str(p.tag, "t1", "api: tag");
    is_int(p.tag_len, 2, "api: tag_len");
    ok(str_eq_ci(p.name, "login"), "api: name");
    is_int(p.nargs, 2, "api: nargs");
    is_int(p.args[0].type, IMAP_ARG_QUOTED, "api: quoted type");
    ok(p.args[0].s.len == 3 && memcmp(p.args[0].s.data, "a\"b", 3) == 0,
       "api: unescaped in place");
    ok(p.args[0].s.data == buf + 10, "api: slice of the buffer");
    is_int(p.args[1].type, IMAP_ARG_LITERAL, "api: literal type");
    ok(p.args[1].s.data == buf + 22 && p.args[1].s.len == 2,
       "api: literal slice");
    is_int(p.consumed, 26, "api: consumed");
    is_int(imap_parse(&p, buf + 26, len - 26), IMAP_PARSE_OK, "api: next");
    is_str(p.tag, "t2", "api: next tag");
    is_int(p.nargs, 0, "api: next nargs");
    is_int(p.consumed, 9, "api: next consumed");
}

/* imap_capabilities: atoms only, and not what postern adds itself. */
static void
test_capabilities(void)
{
    static const char *const good[] = {
        "IMAP4rev1", "IMAP4", "UIDPLUS", "IDLE", "LITERAL+", "SASL-IR",
        "ID", "COMPRESS=DEFLATE", "I18NLEVEL=1", "X-[A", "STARTTLSX",
        "XAUTH=PLAIN",
    };
    static const char *const bad[] = {
        "", "A B", "A\tB", "A\r", "\n", "X\x01Y", "X\x7f", "\xc3\xa9",
        "X(Y", "X)", "{5}", "50%", "X*", "\"Q\"", "A\\B", "X]",
    };
    static const char *const ours[] = {
        "STARTTLS", "starttls", "LOGINDISABLED", "LoginDisabled",
        "AUTH=PLAIN", "auth=cram-md5", "AUTH=",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(imap_capability_refused(good[i]) == NULL, "capability %s",
           good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = imap_capability_refused(bad[i]);

        ok(why != NULL && (bad[i][0] == '\0'
                           || strstr(why, "not an IMAP atom") != NULL),
           "not an atom (%zu): %s", i, why ? why : "accepted");
    }
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
        const char *why = imap_capability_refused(ours[i]);

        ok(why != NULL && strstr(why, "itself") != NULL,
           "added by postern: %s: %s", ours[i], why ? why : "accepted");
    }
}

int
main(void)
{
    test_api();
    test_capabilities();

    /* tags and names */
    CHECK("noop", "a1 NOOP\r\n", 1024, "OK[a1] NOOP;END 0");
    CHECK("bare LF", "a1 noop\n", 1024, "OK[a1] noop;END 0");
    CHECK("tag chars", "A.b-c_9 CAPABILITY\r\n", 1024,
          "OK[A.b-c_9] CAPABILITY;END 0");
    CHECK("tag 32", "abcdefghijabcdefghijabcdefghij12 NOOP\r\n", 1024,
          "OK[abcdefghijabcdefghijabcdefghij12] NOOP;END 0");
    CHECK("tag 33", "abcdefghijabcdefghijabcdefghij123 NOOP\r\n", 1024,
          "BAD[*];END 0");
    CHECK("tag plus", "a+1 NOOP\r\n", 1024, "BAD[*];END 0");
    CHECK("tag star", "* NOOP\r\n", 1024, "BAD[*];END 0");
    CHECK("empty line", "\r\n", 1024, "BAD[*];END 0");
    CHECK("lone LF", "\n", 1024, "BAD[*];END 0");
    CHECK("space first", " NOOP\r\n", 1024, "BAD[*];END 0");
    CHECK("tag only", "a\r\n", 1024, "BAD[*];END 0");
    CHECK("tag space", "a \r\n", 1024, "BAD[a];END 0");
    CHECK("two spaces", "a  NOOP\r\n", 1024, "OK[a] NOOP;END 0");
    CHECK("digit in name", "a NO1P\r\n", 1024, "BAD[a];END 0");
    CHECK("name 16", "a ABCDEFGHIJKLMNOP\r\n", 1024,
          "OK[a] ABCDEFGHIJKLMNOP;END 0");
    CHECK("name 17", "a ABCDEFGHIJKLMNOPQ\r\n", 1024, "BAD[a];END 0");
    CHECK("trailing space", "a NOOP \r\n", 1024, "OK[a] NOOP;END 0");
    CHECK("CR junk", "a NOOP\rX\r\nb NOOP\r\n", 1024,
          "BAD[a];OK[b] NOOP;END 0");
    CHECK("partial", "a NOOP\r", 1024, "END 7");

    /* atoms and quoted strings */
    CHECK("login atoms", "a LOGIN user pass\r\n", 1024,
          "OK[a] LOGIN A'user' A'pass';END 0");
    CHECK("atom specials let through", "a LOGIN u%* p]\\x\r\n", 1024,
          "OK[a] LOGIN A'u%*' A'p]\\x';END 0");
    CHECK("8-bit atom", "a LOGIN \xc3\xa9t\xc3\xa9 p\r\n", 1024,
          "OK[a] LOGIN A'\\xc3\\xa9t\\xc3\\xa9' A'p';END 0");
    CHECK("quoted escapes", "a LOGIN \"us\\\"er\" \"pa\\\\ss\"\r\n", 1024,
          "OK[a] LOGIN Q'us\"er' Q'pa\\ss';END 0");
    CHECK("quoted space", "a LOGIN \"a b\" \"\"\r\n", 1024,
          "OK[a] LOGIN Q'a b' Q'';END 0");
    CHECK("quoted other escape", "a LOGIN \"\\x\" p\r\n", 1024,
          "OK[a] LOGIN Q'x' A'p';END 0");
    CHECK("quoted 8-bit", "a LOGIN \"\xff\" p\r\n", 1024,
          "OK[a] LOGIN Q'\\xff' A'p';END 0");
    CHECK("junk after quoted", "a LOGIN \"u\"x p\r\n", 1024,
          "BAD[a];END 0");
    CHECK("unclosed quote", "a LOGIN \"u p\r\nb NOOP\r\n", 1024,
          "BAD[a];OK[b] NOOP;END 0");
    CHECK("escaped CR", "a LOGIN \"u\\\r\n", 1024, "BAD[a];END 0");
    CHECK("NUL in quoted", "a LOGIN \"u\0\" p\r\n", 1024, "BAD[a];END 0");
    CHECK("NUL in atom", "a LOGIN u\0 p\r\n", 1024, "BAD[a];END 0");
    CHECK("paren in atom", "a LOGIN u(x p\r\n", 1024, "BAD[a];END 0");
    CHECK("brace in atom", "a LOGIN u{1} p\r\n", 1024, "BAD[a];END 0");
    CHECK("quote in atom", "a LOGIN u\"x p\r\n", 1024, "BAD[a];END 0");
    CHECK("close paren", "a LOGIN ) p\r\n", 1024, "BAD[a];END 0");
    CHECK("sasl-ir", "a AUTHENTICATE PLAIN AGZvbwBiYXI=\r\n", 1024,
          "OK[a] AUTHENTICATE A'PLAIN' A'AGZvbwBiYXI=';END 0");
    CHECK("8 args", "a X 1 2 3 4 5 6 7 8\r\n", 1024,
          "OK[a] X A'1' A'2' A'3' A'4' A'5' A'6' A'7' A'8';END 0");
    CHECK("9 args", "a X 1 2 3 4 5 6 7 8 9\r\nb NOOP\r\n", 1024,
          "BAD[a];OK[b] NOOP;END 0");

    /* literals */
    CHECK("sync literals", "a LOGIN {4}\r\nuser {4}\r\npass\r\n", 1024,
          "CONT;CONT;OK[a] LOGIN L'user' L'pass';END 0");
    CHECK("nonsync literals", "a LOGIN {4+}\r\nuser {4+}\r\npass\r\n", 1024,
          "OK[a] LOGIN L'user' L'pass';END 0");
    CHECK("literal bare LF", "a LOGIN {1}\nu p\n", 1024,
          "CONT;OK[a] LOGIN L'u' A'p';END 0");
    CHECK("literal any bytes", "a LOGIN {7}\r\n\r\n\0\"{}( p\r\n", 1024,
          "CONT;OK[a] LOGIN L'\\r\\n\\x00\"{}(' A'p';END 0");
    CHECK("empty literals", "a LOGIN {0}\r\n {0+}\r\n\r\n", 1024,
          "CONT;OK[a] LOGIN L'' L'';END 0");
    CHECK("literal then quoted", "a LOGIN {1+}\r\nu \"p\"\r\n", 1024,
          "OK[a] LOGIN L'u' Q'p';END 0");
    CHECK("junk after literal", "a LOGIN {4}\r\nuserX pass\r\n", 1024,
          "CONT;BAD[a];END 0");
    CHECK("junk after brace", "a LOGIN {4}x\r\nb NOOP\r\n", 1024,
          "BAD[a];OK[b] NOOP;END 0");
    CHECK("CR junk after brace", "a LOGIN {4}\rx\r\n", 1024,
          "BAD[a];END 0");
    CHECK("no digits", "a LOGIN {}\r\n", 1024, "BAD[a];END 0");
    CHECK("no digits plus", "a LOGIN {+}\r\n", 1024, "BAD[a] fatal;");
    CHECK("bad plus", "a LOGIN {3+x}\r\n", 1024, "BAD[a];END 0");
    CHECK("sign", "a LOGIN {-3}\r\n", 1024, "BAD[a];END 0");
    CHECK("literal over limit", "a LOGIN {100}\r\nb NOOP\r\n", 64,
          "BAD[a];OK[b] NOOP;END 0");
    CHECK("nonsync over limit", "a LOGIN {100+}\r\nxxxx", 64,
          "BAD[a] fatal;");
    CHECK("literal overflow",
          "a LOGIN {999999999999999999999999999999}\r\nb NOOP\r\n", 1024,
          "BAD[a];OK[b] NOOP;END 0");
    CHECK("literal just fits", "a LOGIN {6}\r\nxxxxxx\r\n", 21,
          "CONT;OK[a] LOGIN L'xxxxxx';END 0");
    CHECK("literal one over", "a LOGIN {7}\r\nxxxxxxx\r\n", 21,
          "BAD[a];BAD[*];END 0");
    CHECK("bad line ends in {n+}", "a LOGIN 1 2 3 4 5 6 7 8 {3+}\r\nxyz",
          1024, "BAD[a] fatal;");
    CHECK("bad name, {n+}", "a FOO( {3+}\r\nxyz", 1024, "BAD[a] fatal;");
    CHECK("literal partial", "a LOGIN {4}\r\nus", 1024, "CONT;END 15");

    /* a command refused at its literal's announcement: no "+", and what
     * follows the "{n}" line is the next command */
    refuse_name = "XYZZY";
    CHECK("refused at literal", "a XYZZY {5}\r\nb NOOP\r\n", 1024,
          "REFUSED[a] XYZZY;OK[b] NOOP;END 0");
    CHECK("refused at second literal",
          "a xyzzy {1+}\r\nu \"q\" {5}\r\nb NOOP\r\n", 1024,
          "REFUSED[a] xyzzy;OK[b] NOOP;END 0");
    CHECK("refused in a list", "a XYZZY (x {2}\r\nb ID (y)\r\n", 1024,
          "REFUSED[a] XYZZY;OK[b] ID P'(y)';END 0");
    CHECK("refused, then a literal asked for",
          "a XYZZY {5}\r\nb LOGIN {1}\r\nu p\r\n", 1024,
          "REFUSED[a] XYZZY;CONT;OK[b] LOGIN L'u' A'p';END 0");
    CHECK("refused, partial", "a XYZZY {5}\r\nb NO", 1024,
          "REFUSED[a] XYZZY;END 4");
    CHECK("other names still continue", "a LOGIN {1}\r\nu p\r\n", 1024,
          "CONT;OK[a] LOGIN L'u' A'p';END 0");
    refuse_name = NULL;

    /* lists (ID) */
    CHECK("id nil", "a ID NIL\r\n", 1024, "OK[a] ID A'NIL';END 0");
    CHECK("id list",
          "a ID (\"name\" \"x\\\"y\" \"version\" {3}\r\n1.0 NIL)\r\n", 1024,
          "CONT;OK[a] ID P'(\"name\" \"x\\\"y\" \"version\" {3}\\r\\n"
          "1.0 NIL)';END 0");
    CHECK("empty list", "a ID ()\r\n", 1024, "OK[a] ID P'()';END 0");
    CHECK("list atom end", "a ID (a b)\r\n", 1024,
          "OK[a] ID P'(a b)';END 0");
    CHECK("nested list", "a ID ((x))\r\n", 1024, "BAD[a];END 0");
    CHECK("unclosed list", "a ID (x\r\nb NOOP\r\n", 1024,
          "BAD[a];OK[b] NOOP;END 0");
    CHECK("junk after list", "a ID ()x\r\n", 1024, "BAD[a];END 0");
    CHECK("list then arg", "a X (a) b\r\n", 1024,
          "OK[a] X P'(a)' A'b';END 0");

    /* pipelining and bounds */
    CHECK("pipelined",
          "a NOOP\r\nb CAPABILITY\r\nc LOGIN u {1+}\r\np\r\nd NOOP\r\n", 1024,
          "OK[a] NOOP;OK[b] CAPABILITY;OK[c] LOGIN A'u' L'p';OK[d] NOOP;"
          "END 0");
    CHECK("bad then good", "bad\r\nb NOOP\r\n", 1024,
          "BAD[*];OK[b] NOOP;END 0");
    CHECK("exactly the limit", "a NOOP\r\n", 8, "OK[a] NOOP;END 0");
    CHECK("one over the limit", "a NOOPS\r\n", 8, "BAD[a] fatal;");
    CHECK("too long junk", "xxxxxxxxxxxxxxxxxxxxxxxx\r\n", 16,
          "BAD[*] fatal;");

    return tap_done();
}
