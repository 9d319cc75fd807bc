/*
 * test_sasl.c - base64, the PLAIN and CRAM-MD5 decoders, the CRAM-MD5 and
 * APOP digests against the RFCs' examples, and sasl_exchange() for every
 * mechanism against a scripted client.
 *
 * The session and connection functions sasl.c calls are replaced here by
 * fakes (a scripted list of client lines, a transcript of what was sent),
 * so that the exchange is tested without sockets.  Defining them here also
 * keeps the linker from taking session.o / conn.o from libpostern.a; the
 * credentials are the real session_creds.o.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "log.h"
#include "sasl.h"
#include "session.h"
#include "tap.h"

/* ---- fakes ---- */

static const char *script[8];           /* client lines, in order; NULL:
                                         * nothing comes, the session parks */
static int script_pos, script_n;
static int script_errno;                /* errno after the script runs out */
static char sent[4096];                 /* what the server wrote */
static size_t sent_len;

static void
script_set(int err, int n, ...)
{
    va_list ap;

    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        script[i] = va_arg(ap, const char *);
    }
    va_end(ap);
    script_n = n;
    script_pos = 0;
    script_errno = err;
    sent_len = 0;
    sent[0] = '\0';
}

/* Fake: the rest of an over-long line ends at the next LF the script gave,
 * or with what the script gave. */
int
conn_skip_line(struct conn *c)
{
    unsigned char *lf = buf_len(&c->in) == 0 ? NULL
                        : memchr(buf_head(&c->in), '\n', buf_len(&c->in));

    if (lf == NULL) {
        buf_reset(&c->in);
        return 0;
    }
    buf_consume(&c->in, (size_t)(lf - buf_head(&c->in)) + 1);
    return 0;
}

/* Fake: the script's next line arrives in the client buffer.  At the end
 * of the script, ENOBUFS fills the buffer without an LF (a line longer
 * than the buffer); any other errno is the client gone. */
int
session_fill_client(struct session *s)
{
    struct buf *b = &s->client.in;
    size_t n;

    if (script_pos == script_n) {
        if (script_errno == ENOBUFS) {
            memset(b->data + b->last, 'x', buf_room(b));
            b->last = b->size;
            return 1;
        }
        return -1;
    }
    if (script[script_pos] == NULL) {
        script_pos++;
        return 0;
    }
    n = strlen(script[script_pos]);
    buf_compact(b);
    if (n > buf_room(b)) {
        return -1;
    }
    memcpy(b->data + b->last, script[script_pos++], n);
    b->last += n;
    return 1;
}

int
session_send(struct session *s, const char *data, size_t len)
{
    (void)s;
    if (sent_len + len >= sizeof(sent)) {
        return -1;
    }
    memcpy(sent + sent_len, data, len);
    sent_len += len;
    sent[sent_len] = '\0';
    return 0;
}

void
session_log(const struct session *s, enum log_level lv, const char *fmt, ...)
{
    (void)s;
    (void)lv;
    (void)fmt;
}

void
session_log_client_gone(struct session *s, ssize_t n, int error)
{
    session_log(s, LOG_LV_INFO, n == 0 ? "client closed connection"
                : error == ETIMEDOUT ? "client timed out" : "client read failed");
}

static int salt_fails;                  /* session_make_salt fails */

int
session_make_salt(struct session *s)
{
    if (salt_fails) {
        return -1;
    }
    return str_set(&s->salt,
                   STR_LIT("<1896.697170952@postoffice.example.net>"));
}

/* ---- helpers ---- */

static struct str
S(const char *s)
{
    return (struct str){ strlen(s), (unsigned char *)s };
}

static int
is_bytes(struct str got, const char *want, size_t wlen)
{
    return got.len == wlen && (wlen == 0 || memcmp(got.data, want, wlen) == 0);
}

static int
decode_ok(const char *in, const char *want, size_t wlen)
{
    unsigned char out[256];
    size_t n = 0;

    if (base64_decode((const unsigned char *)in, strlen(in), out, &n) != 0) {
        return 0;
    }
    return n == wlen && memcmp(out, want, wlen) == 0;
}

static int
decode_bad(const char *in)
{
    unsigned char out[256];
    size_t n;

    return base64_decode((const unsigned char *)in, strlen(in), out, &n) != 0;
}

/* ---- tests ---- */

static void
test_base64(void)
{
    /* RFC 4648 10 test vectors, both ways */
    static const char *vec[][2] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
    };
    char enc[64];
    unsigned char all[256], out[400];
    char text[400];
    size_t n;

    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        size_t l = base64_encode((const unsigned char *)vec[i][0],
                                 strlen(vec[i][0]), enc);

        enc[l] = '\0';
        is_str(enc, vec[i][1], "encode \"%s\"", vec[i][0]);
        is_int(base64_encoded_len(strlen(vec[i][0])), strlen(vec[i][1]),
               "encoded length of \"%s\"", vec[i][0]);
        ok(decode_ok(vec[i][1], vec[i][0], strlen(vec[i][0])),
           "decode \"%s\"", vec[i][1]);
    }

    /* every byte value survives a round trip */
    for (int i = 0; i < 256; i++) {
        all[i] = (unsigned char)i;
    }
    n = base64_encode(all, sizeof(all), text);
    ok(base64_decode((unsigned char *)text, n, out, &n) == 0 && n == 256
       && memcmp(out, all, 256) == 0, "round trip of all byte values");

    ok(decode_ok("AHRlc3QAdGVzdA==", "\0test\0test", 10), "decode with NULs");
    ok(decode_bad("Zg="), "reject length not a multiple of 4");
    ok(decode_bad("Zg"), "reject missing padding");
    ok(decode_bad("Z==="), "reject three pad characters");
    ok(decode_bad("===="), "reject only padding");
    ok(decode_bad("Zg==Zg=="), "reject padding in the middle");
    ok(decode_bad("Z=g="), "reject data after padding");
    ok(decode_bad("Zm9v Zg=="), "reject space");
    ok(decode_bad("Zm9v\r\n"), "reject line end");
    ok(decode_bad("Zm9-"), "reject URL-safe alphabet");
    ok(decode_bad("Zh=="), "reject non-zero bits under padding (==)");
    ok(decode_bad("Zm9="), "reject non-zero bits under padding (=)");
    ok(decode_bad("Zm\x80v"), "reject high-bit byte");
    ok(decode_bad("Zm\0v"), "reject NUL");
}

/* A literal that may hold NULs, as a slice. */
#define B(lit) ((struct str){ sizeof(lit) - 1, (unsigned char *)(lit) })

static void
test_plain_parse(void)
{
    struct str login, pass;

    ok(sasl_plain_parse(B("\0tim\0tanj"), &login, &pass) == 0
       && is_bytes(login, "tim", 3) && is_bytes(pass, "tanj", 4),
       "PLAIN without authzid (RFC 4616)");
    ok(sasl_plain_parse(B("admin\0tim\0secret"), &login, &pass) == 0
       && is_bytes(login, "tim", 3) && is_bytes(pass, "secret", 6),
       "PLAIN with authzid");
    ok(sasl_plain_parse(B("\0tim\0pass word"), &login, &pass) == 0
       && is_bytes(pass, "pass word", 9), "PLAIN password with space");
    ok(sasl_plain_parse(B("timtanj"), &login, &pass) != 0, "PLAIN no NUL");
    ok(sasl_plain_parse(B("\0tim"), &login, &pass) != 0, "PLAIN one NUL");
    ok(sasl_plain_parse(B("\0\0abc"), &login, &pass) != 0,
       "PLAIN empty authcid");
    ok(sasl_plain_parse(B("\0tim\0"), &login, &pass) != 0,
       "PLAIN empty password");
    ok(sasl_plain_parse(B("\0tim\0a\0b"), &login, &pass) != 0,
       "PLAIN third NUL");
    ok(sasl_plain_parse(STR_NULL, &login, &pass) != 0, "PLAIN empty");
}

static void
test_cram_parse(void)
{
    struct str login, digest;

    ok(sasl_cram_parse(S("tim b913a602c7eda7a495b4e6e7334d3890"), &login,
                       &digest) == 0
       && is_bytes(login, "tim", 3)
       && is_bytes(digest, "b913a602c7eda7a495b4e6e7334d3890", 32),
       "CRAM-MD5 answer of RFC 2195");
    ok(sasl_cram_parse(S("john doe B913A602C7EDA7A495B4E6E7334D3890"), &login,
                       &digest) == 0 && is_bytes(login, "john doe", 8),
       "CRAM-MD5 user with space, upper-case hex");
    ok(sasl_cram_parse(S("tim b913a602c7eda7a495b4e6e7334d389"), &login,
                       &digest) != 0, "CRAM-MD5 short digest");
    ok(sasl_cram_parse(S("tim b913a602c7eda7a495b4e6e7334d38900"), &login,
                       &digest) != 0, "CRAM-MD5 long digest");
    ok(sasl_cram_parse(S("tim g913a602c7eda7a495b4e6e7334d3890"), &login,
                       &digest) != 0, "CRAM-MD5 non-hex digest");
    ok(sasl_cram_parse(S(" b913a602c7eda7a495b4e6e7334d3890"), &login,
                       &digest) != 0, "CRAM-MD5 empty user");
    ok(sasl_cram_parse(S("timb913a602c7eda7a495b4e6e7334d3890"), &login,
                       &digest) != 0, "CRAM-MD5 no space");
    ok(sasl_cram_parse(S("t\nm b913a602c7eda7a495b4e6e7334d3890"), &login,
                       &digest) != 0, "CRAM-MD5 LF in user");
    ok(sasl_cram_parse(STR_NULL, &login, &digest) != 0, "CRAM-MD5 empty");
}

static void
test_digests(void)
{
    char out[33];

    /* RFC 2195 2 */
    cram_md5_digest(S("tanstaaftanstaaf"),
                    S("<1896.697170952@postoffice.reston.mci.net>"), out);
    is_str(out, "b913a602c7eda7a495b4e6e7334d3890", "CRAM-MD5 digest RFC 2195");
    /* RFC 2104 test case 2 */
    cram_md5_digest(S("Jefe"), S("what do ya want for nothing?"), out);
    is_str(out, "750c783e6ab0b503eaa86e310a5db738", "HMAC-MD5 RFC 2104");
    /* RFC 1939 7 */
    apop_digest(S("<1896.697170952@dbc.mtview.ca.us>"), S("tanstaaf"), out);
    is_str(out, "c4c9334bac560ecc979e58001b3e22fb", "APOP digest RFC 1939");
    apop_digest(STR_NULL, STR_NULL, out);
    is_str(out, "d41d8cd98f00b204e9800998ecf8427e", "MD5 of nothing");
}

static void
reset_session(struct session *s)
{
    session_clear_creds(s);
    sasl_forget(s);
    buf_free(&s->client.in);
    memset(s, 0, sizeof(*s));
    if (buf_init(&s->client.in, 1024) != 0) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
}

static void
test_exchange(void)
{
    struct session s;
    enum sasl_rc rc;

    memset(&s, 0, sizeof(s));
    reset_session(&s);

    /* PLAIN with initial response: nothing sent */
    reset_session(&s);
    script_set(0, 0);
    rc = sasl_exchange(&s, AUTH_M_PLAIN, S("AHRlc3QAc2VjcmV0"), "+ ");
    ok(rc == SASL_OK && s.method == AUTH_METHOD_PLAIN
       && is_bytes(s.login, "test", 4) && is_bytes(s.passwd, "secret", 6)
       && sent_len == 0, "PLAIN initial response");

    /* PLAIN with empty challenge */
    reset_session(&s);
    script_set(0, 1, "AHRlc3QAc2VjcmV0\r\n");
    rc = sasl_exchange(&s, AUTH_M_PLAIN, STR_NULL, "+ ");
    ok(rc == SASL_OK && is_bytes(s.login, "test", 4), "PLAIN after challenge");
    is_str(sent, "+ \r\n", "PLAIN challenge is empty");

    /* PLAIN, bare LF */
    reset_session(&s);
    script_set(0, 1, "AHRlc3QAc2VjcmV0\n");
    ok(sasl_exchange(&s, AUTH_M_PLAIN, STR_NULL, "334 ") == SASL_OK,
       "PLAIN answer with bare LF");
    is_str(sent, "334 \r\n", "SMTP prefix");

    /* PLAIN "=" initial response is empty: malformed */
    reset_session(&s);
    script_set(0, 0);
    ok(sasl_exchange(&s, AUTH_M_PLAIN, S("="), "+ ") == SASL_BAD
       && s.login.data == NULL, "PLAIN empty initial response is bad");

    /* PLAIN bad base64 */
    reset_session(&s);
    script_set(0, 1, "AHRlc3QAc2VjcmV0=\r\n");
    ok(sasl_exchange(&s, AUTH_M_PLAIN, STR_NULL, "+ ") == SASL_BAD
       && s.login.data == NULL && s.passwd.data == NULL,
       "PLAIN bad base64, nothing left");

    /* PLAIN cancelled */
    reset_session(&s);
    script_set(0, 1, "*\r\n");
    ok(sasl_exchange(&s, AUTH_M_PLAIN, STR_NULL, "+ ") == SASL_CANCEL,
       "PLAIN cancelled");

    /* PLAIN: client gone, too long, timed out */
    reset_session(&s);
    script_set(0, 0);
    ok(sasl_exchange(&s, AUTH_M_PLAIN, STR_NULL, "+ ") == SASL_IO,
       "PLAIN client closed");
    script_set(ENOBUFS, 0);
    ok(sasl_exchange(&s, AUTH_M_PLAIN, STR_NULL, "+ ") == SASL_BAD,
       "PLAIN over-long line is bad");
    script_set(ETIMEDOUT, 0);
    ok(sasl_exchange(&s, AUTH_M_PLAIN, STR_NULL, "+ ") == SASL_IO,
       "PLAIN timeout");

    /* LOGIN */
    reset_session(&s);
    script_set(0, 2, "dGVzdA==\r\n", "c2VjcmV0\r\n");
    rc = sasl_exchange(&s, AUTH_M_LOGIN, STR_NULL, "+ ");
    ok(rc == SASL_OK && s.method == AUTH_METHOD_LOGIN
       && is_bytes(s.login, "test", 4) && is_bytes(s.passwd, "secret", 6),
       "LOGIN");
    is_str(sent, "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n",
           "LOGIN challenges Username: Password:");

    reset_session(&s);
    script_set(0, 1, "c2VjcmV0\r\n");
    rc = sasl_exchange(&s, AUTH_M_LOGIN, S("dGVzdA=="), "+ ");
    ok(rc == SASL_OK && is_bytes(s.login, "test", 4)
       && is_bytes(s.passwd, "secret", 6), "LOGIN initial response");
    is_str(sent, "+ UGFzc3dvcmQ6\r\n", "LOGIN initial: only Password:");

    reset_session(&s);
    script_set(0, 2, "dGVzdA==\r\n", "*\r\n");
    ok(sasl_exchange(&s, AUTH_M_LOGIN, STR_NULL, "+ ") == SASL_CANCEL
       && s.login.data == NULL, "LOGIN cancelled at password");

    reset_session(&s);
    script_set(0, 2, "dGVzdA==\r\n", "\r\n");
    ok(sasl_exchange(&s, AUTH_M_LOGIN, STR_NULL, "+ ") == SASL_BAD,
       "LOGIN empty password");

    reset_session(&s);
    script_set(0, 1, "dGVzdA=\r\n");
    ok(sasl_exchange(&s, AUTH_M_LOGIN, STR_NULL, "+ ") == SASL_BAD
       && script_pos == 1, "LOGIN bad user stops the exchange");

    /* CRAM-MD5 */
    reset_session(&s);
    script_set(0, 1,
               "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
    rc = sasl_exchange(&s, AUTH_M_CRAM_MD5, STR_NULL, "+ ");
    ok(rc == SASL_OK && s.method == AUTH_METHOD_CRAM_MD5
       && is_bytes(s.login, "tim", 3)
       && is_bytes(s.passwd, "b913a602c7eda7a495b4e6e7334d3890", 32)
       && is_bytes(s.salt, "<1896.697170952@postoffice.example.net>", 39),
       "CRAM-MD5: login, digest and salt");
    is_str(sent, "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UuZXhhbXBsZS5uZXQ+\r\n",
           "CRAM-MD5 challenge is base64 of the salt");

    reset_session(&s);
    script_set(0, 0);
    ok(sasl_exchange(&s, AUTH_M_CRAM_MD5, S("abcd"), "+ ") == SASL_BAD
       && sent_len == 0, "CRAM-MD5 refuses an initial response");

    /* our failure is not the client's: SASL_INTERNAL, not SASL_IO, so
     * that the caller answers before it closes */
    reset_session(&s);
    script_set(0, 1,
               "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
    salt_fails = 1;
    rc = sasl_exchange(&s, AUTH_M_CRAM_MD5, STR_NULL, "+ ");
    salt_fails = 0;
    ok(rc == SASL_INTERNAL && sent_len == 0 && script_pos == 0
       && s.salt.data == NULL && s.login.data == NULL,
       "CRAM-MD5 without a challenge is an internal error, nothing sent");

    /* the client gone while we send a challenge stays SASL_IO */
    reset_session(&s);
    script_set(0, 0);
    sent_len = sizeof(sent);            /* session_send fails */
    ok(sasl_exchange(&s, AUTH_M_CRAM_MD5, STR_NULL, "+ ") == SASL_IO,
       "CRAM-MD5 challenge not sent: client gone");
    sent_len = 0;
    sent[0] = '\0';

    reset_session(&s);
    script_set(0, 1, "dGltIGI5MTNh\r\n");
    ok(sasl_exchange(&s, AUTH_M_CRAM_MD5, STR_NULL, "+ ") == SASL_BAD
       && s.salt.data == NULL, "CRAM-MD5 malformed answer, salt wiped");

    /* EXTERNAL */
    reset_session(&s);
    script_set(0, 0);
    rc = sasl_exchange(&s, AUTH_M_EXTERNAL, S("dGVzdA=="), "+ ");
    ok(rc == SASL_OK && s.method == AUTH_METHOD_EXTERNAL
       && is_bytes(s.login, "test", 4) && s.passwd.len == 0,
       "EXTERNAL initial response");

    reset_session(&s);
    script_set(0, 0);
    rc = sasl_exchange(&s, AUTH_M_EXTERNAL, S("="), "+ ");
    ok(rc == SASL_OK && s.login.len == 0 && s.method == AUTH_METHOD_EXTERNAL,
       "EXTERNAL empty identity");

    reset_session(&s);
    script_set(0, 1, "\r\n");
    rc = sasl_exchange(&s, AUTH_M_EXTERNAL, STR_NULL, "+ ");
    ok(rc == SASL_OK && s.login.len == 0, "EXTERNAL empty answer");
    is_str(sent, "+ VXNlcm5hbWU6\r\n", "EXTERNAL asks for the user");

    reset_session(&s);
    script_set(0, 0);
    ok(sasl_exchange(&s, AUTH_M_EXTERNAL, S("AGE="), "+ ") == SASL_BAD,
       "EXTERNAL NUL in identity");

    /* a login with a line break never leaves the exchange */
    reset_session(&s);
    script_set(0, 0);
    ok(sasl_exchange(&s, AUTH_M_PLAIN, S("AGJvYg0KeAB4"), "+ ") == SASL_BAD
       && s.login.data == NULL, "PLAIN login with CRLF is bad");
    reset_session(&s);
    script_set(0, 1, "eA==\r\n");
    ok(sasl_exchange(&s, AUTH_M_LOGIN, S("Ym9iCg=="), "+ ") == SASL_BAD,
       "LOGIN user with LF is bad");

    /* unknown mechanism */
    reset_session(&s);
    script_set(0, 0);
    ok(sasl_exchange(&s, AUTH_M_APOP, STR_NULL, "+ ") == SASL_BAD,
       "APOP is not a SASL mechanism");

    reset_session(&s);
    buf_free(&s.client.in);
}

/* An exchange whose answer has not come parks (SASL_PARK, s.sasl set)
 * and goes on from where it stood: no challenge is sent twice. */
static void
test_parked_exchange(void)
{
    struct session s;
    enum sasl_rc rc;

    memset(&s, 0, sizeof(s));
    reset_session(&s);

    /* LOGIN parks before the user and again before the password */
    script_set(0, 4, NULL, "dGVzdA==\r\n", NULL, "c2VjcmV0\r\n");
    rc = sasl_exchange(&s, AUTH_M_LOGIN, STR_NULL, "+ ");
    ok(rc == SASL_PARK && s.sasl != NULL && s.login.data == NULL,
       "LOGIN parks at Username:");
    rc = sasl_resume(&s);
    ok(rc == SASL_PARK && s.sasl != NULL, "LOGIN parks at Password:");
    rc = sasl_resume(&s);
    ok(rc == SASL_OK && s.sasl == NULL && s.method == AUTH_METHOD_LOGIN
       && is_bytes(s.login, "test", 4) && is_bytes(s.passwd, "secret", 6),
       "LOGIN after two parks");
    is_str(sent, "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n",
           "each challenge sent once");

    /* CRAM-MD5 keeps its challenge while parked */
    reset_session(&s);
    script_set(0, 2, NULL,
               "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
    ok(sasl_exchange(&s, AUTH_M_CRAM_MD5, STR_NULL, "+ ") == SASL_PARK,
       "CRAM-MD5 parks after its challenge");
    rc = sasl_resume(&s);
    ok(rc == SASL_OK
       && is_bytes(s.passwd, "b913a602c7eda7a495b4e6e7334d3890", 32)
       && is_bytes(s.salt, "<1896.697170952@postoffice.example.net>", 39),
       "CRAM-MD5 after the park: digest against the challenge sent");
    is_str(sent, "+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UuZXhhbXBsZS5uZXQ+\r\n",
           "CRAM-MD5 challenge sent once");

    /* a park, then the client gone: the exchange ends, nothing kept */
    reset_session(&s);
    script_set(0, 1, NULL);
    ok(sasl_exchange(&s, AUTH_M_PLAIN, STR_NULL, "+ ") == SASL_PARK,
       "PLAIN parks");
    ok(sasl_resume(&s) == SASL_IO && s.sasl == NULL && s.login.data == NULL,
       "PLAIN client gone after the park");

    /* a parked exchange dropped with its session */
    reset_session(&s);
    script_set(0, 2, "dGVzdA==\r\n", NULL);
    ok(sasl_exchange(&s, AUTH_M_LOGIN, STR_NULL, "+ ") == SASL_PARK,
       "LOGIN parks with the user read");
    sasl_forget(&s);
    ok(s.sasl == NULL, "sasl_forget drops it (valgrind: nothing leaks)");

    reset_session(&s);
    buf_free(&s.client.in);
}

int
main(void)
{
    test_base64();
    test_plain_parse();
    test_cram_parse();
    test_digests();
    test_exchange();
    test_parked_exchange();
    return tap_done();
}
