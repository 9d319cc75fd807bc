/*
 * test_pop3.c - the POP3 dialogue of pop3.c against scripted client and
 * backend streams: capability texts, USER/PASS, APOP, AUTH, STLS under
 * "starttls only", errors and max_errors, auth_error, backend login.
 *
 * The session and connection functions are fakes defined here (so the
 * linker takes neither session.o nor conn.o from libpostern.a; the
 * credentials are the real session_creds.o, the backend's lines the real
 * session_backend.o over the fake conn_write_all and conn_read_line); the
 * client bytes arrive in chunks of a chosen size, down to one byte.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "backend_caps.h"
#include "buf.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "session.h"
#include "tap.h"

/* ---- fakes ---- */

struct stream {
    const char *data;
    size_t len, pos;
    size_t chunk;
};

static struct stream client_in, backend_in;
static char client_out[8192], backend_out[8192];
static size_t client_out_len, backend_out_len;
static int backend_writes;      /* write calls to the backend */

static struct stream *
stream_of(struct conn *c, struct session *s)
{
    return c == &s->client ? &client_in : &backend_in;
}

static struct session *cur;     /* the session under test */

static void
out_add(char *out, size_t *len, const char *data, size_t n)
{
    if (*len + n < 8192) {
        memcpy(out + *len, data, n);
        *len += n;
        out[*len] = '\0';
    }
}

ssize_t
conn_fill(struct conn *c)
{
    struct stream *st = stream_of(c, cur);
    size_t n = st->len - st->pos;

    if (buf_room(&c->in) == 0) {
        errno = ENOBUFS;
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    if (st->chunk && n > st->chunk) {
        n = st->chunk;
    }
    if (n > buf_room(&c->in)) {
        n = buf_room(&c->in);
    }
    memcpy(c->in.data + c->in.last, st->data + st->pos, n);
    c->in.last += n;
    st->pos += n;
    return (ssize_t)n;
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

int
conn_read_line(struct conn *c, unsigned char **line_r, size_t *len_r)
{
    for (;;) {
        unsigned char *lf = memchr(buf_head(&c->in), '\n', buf_len(&c->in));
        ssize_t n;

        if (lf != NULL) {
            *line_r = buf_head(&c->in);
            *len_r = (size_t)(lf - buf_head(&c->in)) + 1;
            buf_consume(&c->in, *len_r);
            return 0;
        }
        buf_compact(&c->in);
        n = conn_fill(c);
        if (n == 0) {
            errno = 0;
            return -1;
        }
        if (n < 0) {
            return -1;
        }
    }
}

int
conn_write_all(struct conn *c, const void *data, size_t len)
{
    (void)c;
    out_add(backend_out, &backend_out_len, data, len);
    backend_writes++;
    return 0;
}

const char *
conn_strerror(const struct conn *c, int e)
{
    (void)c;
    return strerror(e);
}

int
session_send(struct session *s, const char *data, size_t len)
{
    (void)s;
    out_add(client_out, &client_out_len, data, len);
    return 0;
}

int
session_sendf(struct session *s, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    return session_send(s, tmp, (size_t)n);
}

static char last_log[512];

void
session_log(const struct session *s, enum log_level lv, const char *fmt, ...)
{
    va_list ap;

    (void)s;
    (void)lv;
    va_start(ap, fmt);
    vsnprintf(last_log, sizeof(last_log), fmt, ap);
    va_end(ap);
}

void
session_log_client_gone(struct session *s, ssize_t n, int error)
{
    session_log(s, LOG_LV_INFO, n == 0 ? "client closed connection"
                : error == ETIMEDOUT ? "client timed out" : "client read failed");
}

/* The worker's read: never parks here (no pool), as in session.c
 * outside a worker. */
int
session_fill_client(struct session *s)
{
    ssize_t n = conn_fill(&s->client);

    if (n > 0) {
        return 1;
    }
    session_log_client_gone(s, n, errno);
    return -1;
}

void
session_log_io_failed(struct session *s, const struct conn *c, int error,
                      int writing)
{
    (void)c;
    session_log(s, LOG_LV_INFO, error == ETIMEDOUT ? "timed out"
                : writing ? "write failed" : "read failed");
}

int
session_error(struct session *s)
{
    return ++s->errors >= s->sc->max_errors;
}

int
session_make_salt(struct session *s)
{
    return str_set(&s->salt, STR_LIT("<42.1700000000@mail.example.org>"));
}

int
session_starttls(struct session *s)
{
    buf_reset(&s->client.in);
    s->tls = 1;
    return 0;
}

/* ---- fixture ---- */

static char *caps[] = { "TOP", "USER", "UIDL" };
static struct server_conf sc;
static struct session sess;

static void
setup_conf(unsigned auth, enum starttls_mode tls, int pass_err)
{
    char err[256];

    if (sc.proto_data) {
        pop3_ops.conf_free(&sc);
    }
    memset(&sc, 0, sizeof(sc));
    sc.protocol = PROTO_POP3;
    sc.server_name = "mail.example.org";
    sc.pop3_capabilities.n = 3;
    sc.pop3_capabilities.v = caps;
    sc.pop3_auth = auth;
    sc.starttls = tls;
    sc.max_errors = 3;
    sc.proxy_pass_error_message = pass_err;
    if (pop3_ops.conf_init(&sc, err, sizeof(err)) != 0) {
        printf("# conf_init: %s\n", err);
        exit(1);
    }
}

/* A fresh session whose client sends `in` in chunks of `chunk` bytes. */
static void
start(const char *in, size_t chunk, size_t bufsize)
{
    if (sess.proto_state) {
        pop3_ops.free_state(&sess);
    }
    session_clear_creds(&sess);
    buf_free(&sess.client.in);
    buf_free(&sess.backend.in);
    memset(&sess, 0, sizeof(sess));
    sess.sc = &sc;
    /* the stamp of every APOP greeting here, as if the acceptor made it */
    sess.stamp = (struct stamp){ 42, 1700000000 };
    buf_init(&sess.client.in, bufsize);
    buf_init(&sess.backend.in, 1024);
    client_in = (struct stream){ in, strlen(in), 0, chunk };
    backend_in = (struct stream){ "", 0, 0, 0 };
    client_out_len = backend_out_len = 0;
    client_out[0] = backend_out[0] = '\0';
    cur = &sess;
}

static int
is_bytes(struct str got, const char *want)
{
    return got.len == strlen(want) && memcmp(got.data, want, got.len) == 0;
}

/* ---- tests ---- */

static void
test_conf(void)
{
    setup_conf(AUTH_M_PLAIN | AUTH_M_CRAM_MD5, STARTTLS_ON, 0);
    start("CAPA\r\n", 0, 512);
    ok(pop3_ops.greet(&sess) == SESS_OK, "greet");
    is_str(client_out, "+OK POP3 ready\r\n", "greeting without APOP");
    {
        size_t len = 0;
        char buf[PROTO_GREETING_MAX];
        struct stamp st = { 0, 0 };
        const char *g = pop3_ops.greeting(&sc, &st, buf, sizeof(buf), &len);

        ok(g != NULL && len == 16 && memcmp(g, "+OK POP3 ready\r\n", 16) == 0,
           "without APOP the same greeting for all");
        is_int(st.time, 0, "without APOP no timestamp is made");
        start("", 0, 512);
        sess.greeted = 4;
        pop3_ops.greet(&sess);
        is_str(client_out, "POP3 ready\r\n",
               "the worker sends what the acceptor did not");
        start("", 0, 512);
        sess.greeted = len;
        pop3_ops.greet(&sess);
        is_int((long)client_out_len, 0, "nothing when the acceptor sent it all");
    }
    start("CAPA\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.dialogue(&sess) == SESS_CLOSE, "CAPA then EOF closes");
    is_str(client_out,
           "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n"
           "SASL PLAIN LOGIN CRAM-MD5\r\nSTLS\r\n.\r\n",
           "CAPA with STLS (starttls on)");
    is_str(last_log, "client closed connection", "EOF logged");

    start("AUTH\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.dialogue(&sess);
    is_str(client_out,
           "+OK methods supported:\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\n.\r\n",
           "AUTH lists mechanisms");

    setup_conf(AUTH_M_APOP, STARTTLS_OFF, 0);
    {
        size_t len = 0;
        char buf[PROTO_GREETING_MAX];
        struct stamp st = { 7, 1700000001 };
        const char *g = pop3_ops.greeting(&sc, &st, buf, sizeof(buf), &len);
        static const char want[] =
            "+OK POP3 ready <7.1700000001@mail.example.org>\r\n";

        ok(g != NULL && len == sizeof(want) - 1 && memcmp(g, want, len) == 0,
           "APOP: the greeting carries the client's timestamp");
        st.time = 0;
        g = pop3_ops.greeting(&sc, &st, buf, sizeof(buf), &len);
        ok(g != NULL && st.time != 0 && len > 20 && memcmp(g, want, 16) == 0
           && buf[15] == '<' && memcmp(g + len - 3, ">\r\n", 3) == 0,
           "APOP: a timestamp is made when the client has none");
        ok(pop3_ops.greeting(&sc, &st, buf, 40, &len) == NULL,
           "APOP: no greeting cut to a short buffer");

        /* the acceptor sent part of it: the worker sends the rest of the
         * same text, and checks the digest against the same timestamp */
        start("", 0, 512);
        sess.greeted = 15;
        pop3_ops.greet(&sess);
        is_str(client_out, "<42.1700000000@mail.example.org>\r\n",
               "APOP: the worker sends what the acceptor did not");
    }
    start("CAPA\r\n", 0, 512);
    pop3_ops.greet(&sess);
    is_str(client_out,
           "+OK POP3 ready <42.1700000000@mail.example.org>\r\n",
           "greeting with APOP timestamp");
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.dialogue(&sess);
    is_str(client_out,
           "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n.\r\n",
           "CAPA without SASL line when no SASL mechanism");

    setup_conf(AUTH_M_PLAIN, STARTTLS_ONLY, 0);
    start("CAPA\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.dialogue(&sess);
    is_str(client_out,
           "+OK Capability list follows\r\nTOP\r\nUIDL\r\nSTLS\r\n.\r\n",
           "CAPA under starttls only: no USER, no SASL");
}

/* USER/PASS with the client's bytes in several chunk sizes. */
static void
test_user_pass(void)
{
    static const size_t chunks[] = { 0, 1, 3 };
    const char *in = "NOOP\r\nUSER bob\r\nCAPA\r\nPASS secret word\r\n";

    setup_conf(AUTH_M_PLAIN, STARTTLS_ON, 0);
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        start(in, chunks[i], 512);
        pop3_ops.greet(&sess);
        client_out_len = 0;
        client_out[0] = '\0';
        ok(pop3_ops.dialogue(&sess) == SESS_AUTH
           && sess.method == AUTH_METHOD_PLAIN
           && is_bytes(sess.login, "bob")
           && is_bytes(sess.passwd, "secret word"),
           "USER/PASS (chunk %zu)", chunks[i]);
        /* after USER, CAPA does not offer STLS: it is not allowed there */
        is_str(client_out,
               "+OK\r\n+OK\r\n+OK Capability list follows\r\nTOP\r\nUSER\r\n"
               "UIDL\r\nSASL PLAIN LOGIN\r\n.\r\n",
               "USER/PASS replies (chunk %zu)", chunks[i]);
    }

    /* PASS without USER; USER twice resets: refused, not counted (as
     * NGINX); unknown commands count */
    start("PASS x\r\nUSER a\r\nUSER b\r\nPASS y\r\nSTAT\r\nRETR 1\r\n"
          "LIST\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.dialogue(&sess) == SESS_CLOSE, "three unknown commands close");
    is_str(client_out,
           "-ERR invalid command\r\n+OK\r\n-ERR invalid command\r\n"
           "-ERR invalid command\r\n-ERR invalid command\r\n"
           "-ERR invalid command\r\n-ERR invalid command\r\n",
           "PASS without USER, USER after USER are invalid");
    is_int(sess.errors, 3, "only the unknown commands counted");

    /* QUIT */
    start("QUIT\r\nUSER a\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.dialogue(&sess) == SESS_CLOSE, "QUIT closes");
    is_str(client_out, "+OK\r\n", "QUIT reply");

    /* USER refused when plain is off */
    setup_conf(AUTH_M_APOP, STARTTLS_OFF, 0);
    start("USER a\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.dialogue(&sess);
    is_str(client_out, "-ERR invalid command\r\n", "USER needs plain");
}

static void
test_apop_auth(void)
{
    setup_conf(AUTH_M_APOP | AUTH_M_PLAIN, STARTTLS_OFF, 0);
    start("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n", 0, 512);
    pop3_ops.greet(&sess);
    ok(pop3_ops.dialogue(&sess) == SESS_AUTH
       && sess.method == AUTH_METHOD_APOP && is_bytes(sess.login, "mrose")
       && is_bytes(sess.passwd, "c4c9334bac560ecc979e58001b3e22fb")
       && is_bytes(sess.salt, "<42.1700000000@mail.example.org>"),
       "APOP: login, digest, greeting salt");

    setup_conf(AUTH_M_PLAIN, STARTTLS_OFF, 0);
    start("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.dialogue(&sess);
    is_str(client_out, "-ERR invalid command\r\n", "APOP needs apop");

    start("AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", 1, 512);
    pop3_ops.greet(&sess);
    ok(pop3_ops.dialogue(&sess) == SESS_AUTH && is_bytes(sess.login, "bob")
       && is_bytes(sess.passwd, "secret"), "AUTH PLAIN initial response");

    start("auth login\r\nYm9i\r\nc2VjcmV0\r\n", 2, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.dialogue(&sess) == SESS_AUTH
       && sess.method == AUTH_METHOD_LOGIN && is_bytes(sess.login, "bob"),
       "AUTH LOGIN");
    is_str(client_out, "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n",
           "AUTH LOGIN challenges");

    start("AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n!!\r\nAUTH CRAM-MD5\r\n"
          "AUTH EXTERNAL\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.dialogue(&sess) == SESS_CLOSE, "AUTH failures, then the end");
    is_str(client_out,
           "+ \r\n-ERR authentication cancelled\r\n+ \r\n"
           "-ERR invalid command\r\n-ERR invalid command\r\n"
           "-ERR invalid command\r\n",
           "AUTH cancel, bad base64, disabled mechanisms");
    is_int(sess.errors, 0, "cancel, bad base64, a mechanism that is off: "
           "refused, not counted");

    setup_conf(AUTH_M_CRAM_MD5, STARTTLS_OFF, 0);
    start("AUTH CRAM-MD5\r\n"
          "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.dialogue(&sess) == SESS_AUTH
       && sess.method == AUTH_METHOD_CRAM_MD5 && is_bytes(sess.login, "tim"),
       "AUTH CRAM-MD5");
    is_str(client_out, "+ PDQyLjE3MDAwMDAwMDBAbWFpbC5leGFtcGxlLm9yZz4=\r\n",
           "CRAM-MD5 challenge");
}

static void
test_starttls(void)
{
    setup_conf(AUTH_M_PLAIN, STARTTLS_ONLY, 0);
    start("USER a\r\nAUTH PLAIN\r\nSTLS\r\nUSER b\r\nPASS c\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.dialogue(&sess) == SESS_CLOSE,
       "plaintext input after STLS is discarded");
    is_str(client_out,
           "-ERR invalid command\r\n-ERR invalid command\r\n+OK\r\n",
           "starttls only: USER and AUTH refused before STLS");
    ok(sess.tls == 1, "STLS started TLS");

    start("STLS\r\n", 0, 512);
    pop3_ops.greet(&sess);
    pop3_ops.dialogue(&sess);
    client_in = (struct stream){ "CAPA\r\nSTLS\r\nUSER b\r\nPASS c\r\n",
                                 29, 0, 0 };
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.dialogue(&sess) == SESS_AUTH && is_bytes(sess.login, "b"),
       "USER/PASS under TLS");
    is_str(client_out,
           "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n"
           "SASL PLAIN LOGIN\r\n.\r\n-ERR invalid command\r\n+OK\r\n",
           "CAPA under TLS; a second STLS is invalid");

    setup_conf(AUTH_M_PLAIN, STARTTLS_OFF, 0);
    start("STLS\r\n", 0, 512);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.dialogue(&sess);
    is_str(client_out, "-ERR invalid command\r\n", "STLS when starttls off");
}

static void
test_long_lines(void)
{
    char in[2048];

    setup_conf(AUTH_M_PLAIN, STARTTLS_OFF, 0);
    memset(in, 'x', sizeof(in));
    memcpy(in, "PASS ", 5);
    strcpy(in + 1000, "\r\nNOOP\r\n");

    /* buffer larger than the line bound */
    start(in, 0, 4096);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.dialogue(&sess);
    is_str(client_out, "-ERR invalid command\r\n+OK\r\n",
           "too long line, then NOOP");
    is_str(last_log, "client closed connection", "too long line survived");

    /* buffer smaller than the line bound */
    start(in, 0, 128);
    pop3_ops.greet(&sess);
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.dialogue(&sess);
    is_str(client_out, "-ERR invalid command\r\n+OK\r\n",
           "line longer than a 128-byte buffer, then NOOP");
}

static void
test_auth_error(void)
{
    struct auth_result r;

    setup_conf(AUTH_M_PLAIN, STARTTLS_OFF, 0);
    start("", 0, 512);
    pop3_ops.greet(&sess);
    memset(&r, 0, sizeof(r));
    r.status = AUTH_FAIL;
    r.message = "Authentication failed.";
    r.wait = 3;
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.auth_error(&sess, &r) == SESS_OK, "Auth-Wait: retry");
    is_str(client_out, "-ERR Authentication failed.\r\n", "Auth-Status text");
    r.wait = -1;
    ok(pop3_ops.auth_error(&sess, &r) == SESS_CLOSE, "no Auth-Wait: close");
    r.status = AUTH_TEMPFAIL;
    client_out_len = 0;
    client_out[0] = '\0';
    ok(pop3_ops.auth_error(&sess, &r) == SESS_CLOSE, "tempfail closes");
    is_str(client_out, "-ERR internal server error\r\n", "tempfail reply");
    client_out_len = 0;
    client_out[0] = '\0';
    pop3_ops.internal_error(&sess);
    is_str(client_out, "-ERR internal server error\r\n", "internal error");
    is_str(pop3_ops.busy_line, "-ERR server busy\r\n", "busy line");
    is_int(pop3_ops.default_port, 110, "default port");
}

/* A backend login to upstream (whose CAPA answer is remembered, or not,
 * as backend_caps has it) reading script. */
static void
backend_at(const char *upstream, const char *script, int pass_err,
           const char *user, const char *auth_user)
{
    setup_conf(AUTH_M_PLAIN, STARTTLS_OFF, pass_err);
    start("", 0, 512);
    pop3_ops.greet(&sess);
    snprintf(sess.upstream, sizeof(sess.upstream), "%s", upstream);
    session_set_creds(&sess, AUTH_METHOD_PLAIN,
                      (struct str){ strlen(user), (unsigned char *)user },
                      STR_LIT("secret"), STR_NULL);
    if (auth_user) {
        sess.auth.user = (struct str){ strlen(auth_user),
                                       (unsigned char *)auth_user };
    }
    backend_in = (struct stream){ script, strlen(script), 0, 0 };
    client_out_len = 0;
    client_out[0] = '\0';
    backend_writes = 0;
}

/* A backend login to one whose CAPA said no PIPELINING a moment ago. */
static void
backend(const char *script, int pass_err, const char *user,
        const char *auth_user)
{
    backend_caps_put(PROTO_POP3, "plain.test:110", 0, clock_now());
    backend_at("plain.test:110", script, pass_err, user, auth_user);
}

static void
test_backend(void)
{
    backend("+OK Dovecot ready.\r\n+OK\r\n+OK Logged in.\r\n", 0, "bob",
            NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_OK, "backend login");
    is_str(backend_out, "USER bob\r\nPASS secret\r\n", "USER and PASS sent");
    is_str(client_out, "+OK Logged in.\r\n", "backend's +OK passed on");

    backend("+OK\r\n+OK\r\n+OK\r\n", 0, "bob", "bob@backend");
    ok(pop3_ops.backend_login(&sess) == SESS_OK, "Auth-User login");
    is_str(backend_out, "USER bob@backend\r\nPASS secret\r\n",
           "Auth-User replaces the login");

    backend("+OK\r\n+OK\r\n-ERR [AUTH] Authentication failed.\r\n", 0, "bob",
            NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_CLOSE, "backend refuses");
    is_str(client_out, "-ERR internal server error\r\n",
           "without proxy_pass_error_message: internal error");
    is_str(last_log,
           "upstream sent invalid response: \"-ERR [AUTH] Authentication "
           "failed.\"", "reason logged");

    backend("+OK\r\n+OK\r\n-ERR [AUTH] Authentication failed.\r\n", 1, "bob",
            NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_CLOSE, "backend refuses (pass)");
    is_str(client_out, "-ERR [AUTH] Authentication failed.\r\n",
           "with proxy_pass_error_message: backend's line");

    backend("* OK IMAP\r\n", 0, "bob", NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_CLOSE, "not a POP3 backend");
    is_str(backend_out, "", "nothing sent to a wrong backend");

    backend("+OK\r\n", 0, "bob", NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_CLOSE, "backend closes");
    is_str(last_log, "upstream prematurely closed connection", "EOF logged");

    backend("+OK\r\n+OK\r\n+OK\r\n", 0, "bob", "evil\r\nDELE 1");
    ok(pop3_ops.backend_login(&sess) == SESS_CLOSE, "CRLF in user refused");
    is_str(backend_out, "", "nothing sent for a CRLF user");
}

/* CAPA once, and USER with PASS in one write where it lists PIPELINING. */
static void
test_backend_pipelining(void)
{
    char capa[2048];
    size_t k;

    backend_at("10.0.0.1:110", "+OK ready\r\n+OK\r\nTOP\r\nUSER\r\n"
               "pipelining\r\nUIDL\r\n.\r\n+OK\r\n+OK Logged in.\r\n", 0,
               "bob", NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_OK, "pipelining: login");
    is_str(backend_out, "CAPA\r\nUSER bob\r\nPASS secret\r\n",
           "pipelining: CAPA asked first");
    is_int(backend_writes, 2, "pipelining: USER and PASS in one write");
    is_str(client_out, "+OK Logged in.\r\n", "pipelining: PASS's +OK passed on");

    backend_at("10.0.0.1:110", "+OK ready\r\n+OK\r\n+OK Logged in.\r\n", 0,
               "bob", NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_OK, "remembered: login");
    is_str(backend_out, "USER bob\r\nPASS secret\r\n",
           "remembered: no CAPA the next time");
    is_int(backend_writes, 1, "remembered: one write");

    backend_at("10.0.0.1:110", "+OK ready\r\n-ERR no such user\r\n"
               "-ERR no USER\r\n", 1, "bob", NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_CLOSE, "pipelined USER refused");
    is_str(client_out, "-ERR no such user\r\n",
           "the answer to USER is the client's");

    backend_at("10.0.0.2:110", "+OK ready\r\n+OK\r\nUSER\r\n"
               "PIPELININGX\r\n.\r\n+OK\r\n+OK Logged in.\r\n", 0, "bob",
               NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_OK, "no PIPELINING: login");
    is_str(backend_out, "CAPA\r\nUSER bob\r\nPASS secret\r\n",
           "no PIPELINING: same bytes");
    is_int(backend_writes, 3, "no PIPELINING: PASS after USER's answer");

    backend_at("10.0.0.3:110", "+OK ready\r\n-ERR unknown command\r\n"
               "+OK\r\n+OK Logged in.\r\n", 0, "bob", NULL);
    ok(pop3_ops.backend_login(&sess) == SESS_OK, "no CAPA: login");
    is_int(backend_writes, 3, "no CAPA: one command at a time");

    for (int n = 64; n <= 65; n++) {
        k = (size_t)snprintf(capa, sizeof(capa), "+OK ready\r\n+OK\r\n");
        for (int i = 0; i < n; i++) {
            k += (size_t)snprintf(capa + k, sizeof(capa) - k,
                                  "X-CAP-%d\r\n", i);
        }
        snprintf(capa + k, sizeof(capa) - k, ".\r\n+OK\r\n+OK\r\n");
        backend_at(n == 64 ? "10.0.0.4:110" : "10.0.0.5:110", capa, 0, "bob",
                   NULL);
        if (n == 64) {
            ok(pop3_ops.backend_login(&sess) == SESS_OK,
               "a CAPA answer of 64 lines is read");
        }
    }
    ok(pop3_ops.backend_login(&sess) == SESS_CLOSE, "endless CAPA refused");
    is_str(last_log, "upstream sent too long CAPA response (over 64 lines)",
           "endless CAPA logged");
    is_str(client_out, "-ERR internal server error\r\n",
           "endless CAPA: internal error");
}

int
main(void)
{
    test_conf();
    test_user_pass();
    test_apop_auth();
    test_starttls();
    test_long_lines();
    test_auth_error();
    test_backend();
    test_backend_pipelining();

    pop3_ops.free_state(&sess);
    session_clear_creds(&sess);
    buf_free(&sess.client.in);
    buf_free(&sess.backend.in);
    pop3_ops.conf_free(&sc);
    return tap_done();
}
