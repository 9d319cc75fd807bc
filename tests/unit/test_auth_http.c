/*
 * test_auth_http.c - the NGINX auth protocol client: the request text
 * (exact, escaping, optional headers), the interpretation of responses
 * (every malformation is a TEMPFAIL with the auth server named), and
 * auth_http_query() against a scripted server on 127.0.0.1 and on a unix
 * socket: success, refusal, WAIT, timeout, connection refused, early
 * close, garbage, a response trickled byte by byte; with
 * auth_http_keepalive, which answers let a connection be reused, and
 * requests over kept connections (reuse, a body skipped, a kept connection
 * the server closed while idle or before answering).
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "auth_http.h"
#include "clock.h"
#include "conf.h"
#include "conf_int.h"
#include "http_parse.h"
#include "keepalive.h"
#include "str.h"
#include "tap.h"

static struct auth_http_url url;
static struct server_conf sc;

/* Point url at 127.0.0.1:port, its address looked up as at load time. */
static void
use_port(unsigned short port)
{
    char err[256];

    url.host = "127.0.0.1";
    url.port = port;
    if (conf_resolve_auth_http(&url, err, sizeof(err)) != 0) {
        fprintf(stderr, "use_port: %s\n", err);
        exit(2);
    }
}

/* A request for user / pass with the common fields set. */
static void
request(struct auth_request *rq, enum auth_method m, const char *user,
        const char *pass)
{
    memset(rq, 0, sizeof(*rq));
    rq->method = m;
    rq->user.data = (unsigned char *)user;
    rq->user.len = strlen(user);
    rq->pass.data = (unsigned char *)pass;
    rq->pass.len = strlen(pass);
    rq->protocol = PROTO_IMAP;
    rq->attempt = 1;
    rq->client_ip = "192.0.2.42";
}

/* Build into a static string ("(error: ...)" on failure). */
static const char *
build(const struct auth_request *rq)
{
    static char out[8192];
    char err[128], *req;
    size_t len;

    if (auth_http_build_request(&sc, rq, &req, &len, err, sizeof(err)) < 0) {
        snprintf(out, sizeof(out), "(error: %s)", err);
        return out;
    }
    if (len != strlen(req) || len >= sizeof(out)) {
        free(req);
        return "(bad length)";
    }
    memcpy(out, req, len + 1);
    free(req);
    return out;
}

/* Count the lines of a request (CRLF-terminated). */
static int
lines(const char *s)
{
    int n = 0;

    for (; *s; s++) {
        if (*s == '\n') {
            n++;
        }
    }
    return n;
}

/* Parse a response text and interpret it for rq. */
static enum auth_http_verdict
interpret(const char *text, const struct auth_request *rq,
          struct auth_result *r)
{
    static struct http_response hr;

    memset(r, 0, sizeof(*r));
    r->status = AUTH_TEMPFAIL;
    r->wait = -1;
    http_parse_init(&hr);
    http_parse(&hr, (const unsigned char *)text, strlen(text));
    return auth_http_interpret(&hr, (const unsigned char *)text, rq,
                               "127.0.0.1:9000", r);
}

/* --- a scripted auth server ------------------------------------------ */

enum mode { M_REPLY, M_CLOSE, M_SILENT, M_TRICKLE };

struct script {
    int fd;                     /* listening socket */
    int nconn;                  /* connections to serve */
    enum mode mode;
    const char *reply[4];       /* one per connection */
    int delay_ms;               /* M_SILENT: hold the connection so long */
    char got[8192];             /* the last request received */
    size_t gotlen;
};

/* Sleep some milliseconds. */
static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Serve nconn connections as the script says. */
static void *
serve(void *arg)
{
    struct script *s = arg;
    int i, c;
    ssize_t n;

    for (i = 0; i < s->nconn; i++) {
        c = accept(s->fd, NULL, NULL);
        if (c < 0) {
            break;
        }
        s->gotlen = 0;
        while (s->gotlen < sizeof(s->got) - 1) {
            n = read(c, s->got + s->gotlen, sizeof(s->got) - 1 - s->gotlen);
            if (n <= 0) {
                break;
            }
            s->gotlen += (size_t)n;
            s->got[s->gotlen] = '\0';
            if (strstr(s->got, "\r\n\r\n") != NULL) {
                break;
            }
        }
        switch (s->mode) {
        case M_REPLY:
            if (write(c, s->reply[i], strlen(s->reply[i])) < 0) {
                break;
            }
            break;
        case M_TRICKLE:
            for (const char *p = s->reply[i]; *p; p++) {
                if (write(c, p, 1) < 0) {
                    break;
                }
                sleep_ms(1);
            }
            break;
        case M_SILENT:
            sleep_ms(s->delay_ms);
            break;
        case M_CLOSE:
            break;
        }
        close(c);
    }
    return NULL;
}

/* Listen on 127.0.0.1, port chosen by the kernel. */
static int
listen_tcp(unsigned short *port_r)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0
        || listen(fd, 8) < 0
        || getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        perror("listen_tcp");
        exit(2);
    }
    *port_r = ntohs(sin.sin_port);
    return fd;
}

/* Run one query against a script; returns ms taken. */
static long
run(struct script *s, const struct auth_request *rq, struct auth_result *r)
{
    pthread_t th;
    msec_t t0;

    if (pthread_create(&th, NULL, serve, s) != 0) {
        exit(2);
    }
    t0 = clock_now();
    auth_http_query(&sc, rq, r);
    t0 = clock_now() - t0;
    pthread_join(th, NULL);
    return (long)t0;
}

/* --- keep-alive: requests over kept connections ---------------------- */

enum kact { K_KEEP, K_CLOSE, K_DROP };  /* after reading a request */

struct kscript {
    int fd;                     /* listening socket */
    int n;                      /* requests to read */
    enum kact act[3];
    const char *reply;          /* the answer to each */
    int accepts;                /* connections accepted */
    char got[8192];             /* the last request */
};

/* Serve n requests, reading each on the open connection or a new one. */
static void *
serve_keep(void *arg)
{
    struct kscript *s = arg;
    int i, c = -1;

    for (i = 0; i < s->n; i++) {
        size_t len = 0;
        ssize_t n;

        if (c < 0) {
            if ((c = accept(s->fd, NULL, NULL)) < 0) {
                break;
            }
            s->accepts++;
        }
        s->got[0] = '\0';
        while (len < sizeof(s->got) - 1 && strstr(s->got, "\r\n\r\n") == NULL) {
            if ((n = read(c, s->got + len, sizeof(s->got) - 1 - len)) <= 0) {
                break;
            }
            len += (size_t)n;
            s->got[len] = '\0';
        }
        if (s->act[i] != K_DROP
            && write(c, s->reply, strlen(s->reply)) < 0) {
            s->act[i] = K_CLOSE;
        }
        if (s->act[i] != K_KEEP) {
            close(c);
            c = -1;
        }
    }
    if (c >= 0) {
        close(c);
    }
    return NULL;
}

/* Run nq queries against a keep-alive script; the statuses in st[]. */
static void
run_keep(struct kscript *s, int nq, const struct auth_request *rq, int *st)
{
    struct auth_result r;
    pthread_t th;

    if (pthread_create(&th, NULL, serve_keep, s) != 0) {
        exit(2);
    }
    for (int i = 0; i < nq; i++) {
        auth_http_query(&sc, rq, &r);
        st[i] = r.status;
        auth_result_free(&r);
    }
    pthread_join(th, NULL);
}

/* --- interim 1xx answers on a kept connection -------------------------- */

struct iscript {
    int fd;                     /* listening socket */
    int requests;               /* requests read on the one connection */
};

/* Read one request head on c; 1 if whole. */
static int
read_request(int c)
{
    char got[8192];
    size_t len = 0;
    ssize_t n;

    got[0] = '\0';
    while (len < sizeof(got) - 1 && strstr(got, "\r\n\r\n") == NULL) {
        if ((n = read(c, got + len, sizeof(got) - 1 - len)) <= 0) {
            return 0;
        }
        len += (size_t)n;
        got[len] = '\0';
    }
    return strstr(got, "\r\n\r\n") != NULL;
}

/*
 * One connection, two requests: the first is answered with an interim
 * 100 (keep-alive) and, a little later, its final answer (port 1111); the
 * second with its own (port 2222).  A client that took the 100 for the
 * answer would send the second request before the first's final answer
 * and read that one as its own.
 */
static void *
serve_interim(void *arg)
{
    static const char interim[] = "HTTP/1.1 100 Continue\r\n"
        "Connection: keep-alive\r\n\r\n";
    static const char final1[] = "HTTP/1.1 200 OK\r\nConnection: keep-alive"
        "\r\nContent-Length: 0\r\nAuth-Status: OK\r\n"
        "Auth-Server: 127.0.0.1\r\nAuth-Port: 1111\r\n\r\n";
    static const char final2[] = "HTTP/1.1 200 OK\r\nConnection: keep-alive"
        "\r\nContent-Length: 0\r\nAuth-Status: OK\r\n"
        "Auth-Server: 127.0.0.1\r\nAuth-Port: 2222\r\n\r\n";
    struct iscript *s = arg;
    struct timeval tv = { 5, 0 };   /* a bound on every read */
    int c = accept(s->fd, NULL, NULL);

    if (c < 0) {
        return NULL;
    }
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (read_request(c)) {
        s->requests++;
        if (write(c, interim, strlen(interim)) >= 0) {
            sleep_ms(200);
            if (write(c, final1, strlen(final1)) >= 0 && read_request(c)) {
                s->requests++;
                if (write(c, final2, strlen(final2)) < 0) {
                    s->requests = -1;
                }
            }
        }
    }
    close(c);
    return NULL;
}

/* Interim answers: skipped, never the answer, never a reusable end. */
static void
test_interim(const struct auth_request *rq)
{
    /* 100 and 103 before the final answer, as one write */
    static const char heads[] = "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n"
        "\r\nHTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
        "Auth-Server: 127.0.0.1\r\nAuth-Port: 1145\r\n\r\n";
    static const char one[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct auth_result r, r2;
    struct script s;
    struct iscript is;
    unsigned short port;
    pthread_t th;
    char *flood;
    size_t n;

    memset(&s, 0, sizeof(s));
    s.fd = listen_tcp(&port);
    use_port(port);
    s.nconn = 1;
    s.mode = M_REPLY;
    s.reply[0] = heads;
    run(&s, rq, &r);
    is_int(r.status, AUTH_OK, "interim 100 and 103 skipped: the final OK");
    is_int(r.port, 1145, "interim heads skipped: the final answer's port");
    auth_result_free(&r);
    s.mode = M_TRICKLE;
    run(&s, rq, &r);
    is_int(r.status, AUTH_OK, "interim heads byte by byte: the final OK");
    is_int(r.port, 1145, "byte by byte: the final answer's port");
    auth_result_free(&r);

    /* interim heads alone filling the buffer: an error, not a wait for
     * ever nor a misread close */
    n = (HTTP_MAX_TOTAL / (sizeof(one) - 1) + 2) * (sizeof(one) - 1);
    flood = malloc(n + 1);
    if (flood == NULL) {
        exit(2);
    }
    for (size_t i = 0; i < n; i += sizeof(one) - 1) {
        memcpy(flood + i, one, sizeof(one) - 1);
    }
    flood[n] = '\0';
    s.mode = M_REPLY;
    s.reply[0] = flood;
    run(&s, rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "interim heads without end: TEMPFAIL");
    ok(r.log_reason != NULL
       && strstr(r.log_reason, "interim responses too big") != NULL,
       "interim heads without end: reason (%s)",
       r.log_reason ? r.log_reason : "");
    auth_result_free(&r);
    free(flood);
    close(s.fd);

    /* keep-alive: the 100 must not end the first exchange, or the second
     * login would read the first one's answer */
    sc.auth_http_keepalive = 1;
    url.idle = keepalive_new(1);
    memset(&is, 0, sizeof(is));
    is.fd = listen_tcp(&port);
    use_port(port);
    if (pthread_create(&th, NULL, serve_interim, &is) != 0) {
        exit(2);
    }
    auth_http_query(&sc, rq, &r);
    auth_http_query(&sc, rq, &r2);
    pthread_join(th, NULL);
    ok(r.status == AUTH_OK && r.port == 1111,
       "kept connection, interim 100: the first login gets its own answer "
       "(status %d, port %u)", r.status, (unsigned)r.port);
    ok(r2.status == AUTH_OK && r2.port == 2222,
       "kept connection, interim 100: the second login gets its own answer, "
       "not the first's (status %d, port %u)", r2.status, (unsigned)r2.port);
    is_int(is.requests, 2, "both requests on the one kept connection");
    auth_result_free(&r);
    auth_result_free(&r2);
    close(is.fd);
    keepalive_free(url.idle);
    url.idle = NULL;
    sc.auth_http_keepalive = 0;
}

/* auth_http_reusable() on a response text: the total, or -1 if not. */
static long
reusable(const char *text)
{
    static struct http_response hr;
    size_t total;

    http_parse_init(&hr);
    http_parse(&hr, (const unsigned char *)text, strlen(text));
    if (!auth_http_reusable(&hr, (const unsigned char *)text, &total)) {
        return -1;
    }
    return (long)total;
}

/* Keep-alive: which answers keep the connection, and live reuse. */
static void
test_keepalive(const struct auth_request *rq)
{
    static const char ok204[] = "HTTP/1.1 204 No Content\r\n"
        "Connection: keep-alive\r\nAuth-Status: OK\r\n"
        "Auth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\n";
    static const char body[] = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
        "Content-Length: 5\r\nAuth-Status: OK\r\n"
        "Auth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\nhello";
    static const char plain[] = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
        "Auth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\n";
    /* two queries each; what the server does after reading each request */
    static const struct kcase {
        const char *what, *reply;
        int n;                  /* requests the server reads */
        enum kact act[3];
        int second;             /* the second query's status */
        int accepts;            /* connections the server accepted */
    } cases[] = {
        { "kept (204)", ok204, 2, { K_KEEP, K_KEEP }, AUTH_OK, 1 },
        { "kept (a body skipped)", body, 2, { K_KEEP, K_KEEP }, AUTH_OK, 1 },
        { "server without keep-alive", plain, 2, { K_CLOSE, K_CLOSE },
          AUTH_OK, 2 },
        /* says keep-alive, closes anyway: seen closed at the next take */
        { "kept connection closed while idle", ok204, 2,
          { K_CLOSE, K_KEEP }, AUTH_OK, 2 },
        /* reads the second request and closes unanswered: sent again */
        { "kept connection closed before answering", ok204, 3,
          { K_KEEP, K_DROP, K_CLOSE }, AUTH_OK, 2 },
        /* the new connection is dropped too: no third try */
        { "dropped again on the new connection", ok204, 3,
          { K_KEEP, K_DROP, K_DROP }, AUTH_TEMPFAIL, 2 },
    };
    struct kscript k;
    unsigned short port;
    int st[2];

    is_int(reusable(ok204), (long)strlen(ok204), "204 keep-alive: reusable");
    is_int(reusable(body), (long)strlen(body),
           "Content-Length body: reusable, body counted");
    is_int(reusable(plain), -1, "no Connection header: not reusable");
    is_int(reusable("HTTP/1.1 204 No Content\r\nConnection: keep-alive, "
                    "close\r\n\r\n"), -1, "keep-alive, close: not reusable");
    is_int(reusable("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n"), -1,
           "200 without Content-Length: not reusable (ends at close)");
    is_int(reusable("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
                    "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
           -1, "Transfer-Encoding: not reusable");
    is_int(reusable("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
                    "Content-Length: 99999\r\n\r\n"), -1,
           "a body longer than the buffer: not reusable");
    is_int(reusable("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
                    "Content-Length: 1x\r\n\r\n"), -1,
           "a bad Content-Length: not reusable");
    is_int(reusable("HTTP/1.1 100 Continue\r\nConnection: keep-alive\r\n"
                    "\r\n"), -1,
           "an interim 100: not reusable (its final answer is to come)");
    is_int(reusable("HTTP/1.1 103 Early Hints\r\nConnection: keep-alive\r\n"
                    "Content-Length: 0\r\n\r\n"), -1,
           "an interim 103: not reusable");
    is_int(reusable("HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n"
                    "Connection: close\r\n\r\n"), -1,
           "close in a second Connection header: not reusable");
    is_int(reusable("HTTP/1.1 204 No Content\r\nConnection: close\r\n"
                    "Connection: keep-alive\r\n\r\n"), -1,
           "close in a first Connection header: not reusable");
    is_int(reusable("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
                    "Content-Length: 0\r\nContent-Length: 5\r\n\r\n"), -1,
           "two Content-Length values: not reusable (framing unknown)");
    is_int(reusable("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
                    "Content-Length: 2\r\nContent-Length: 2\r\n\r\nab"), 83,
           "the same Content-Length twice: reusable");

    sc.auth_http_keepalive = 4;
    url.idle = keepalive_new(4);
    ok(strstr(build(rq), "\r\nConnection: keep-alive\r\n") != NULL,
       "keep-alive asked for in the request");
    ok(strncmp(build(rq), "GET /auth HTTP/1.0\r\n", 20) == 0,
       "the request line stays HTTP/1.0");

    memset(&k, 0, sizeof(k));
    k.fd = listen_tcp(&port);
    use_port(port);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct kcase *c = &cases[i];

        k.accepts = 0;
        k.reply = c->reply;
        k.n = c->n;
        memcpy(k.act, c->act, sizeof(c->act));
        run_keep(&k, 2, rq, st);
        ok(st[0] == AUTH_OK && st[1] == c->second, "%s: answers", c->what);
        is_int(k.accepts, c->accepts, "%s: connections", c->what);
    }

    close(k.fd);
    keepalive_free(url.idle);
    url.idle = NULL;
    sc.auth_http_keepalive = 0;
}

int
main(void)
{
    struct auth_request rq;
    struct auth_result r;
    struct script s;
    unsigned short port;
    char peer[64], reason[200];
    const char *req;
    long ms;

    /* a scripted server writing to a connection postern has closed gets
     * EPIPE, not the end of the test */
    signal(SIGPIPE, SIG_IGN);
    url.text = "http://127.0.0.1:9000/auth";
    url.host = "127.0.0.1";
    url.port = 9000;
    url.uri = "/auth";
    sc.auth_http = &url;
    sc.auth_http_timeout = 5000;
    sc.protocol = PROTO_IMAP;

    is_str(auth_method_name(AUTH_METHOD_PLAIN), "plain", "method plain");
    is_str(auth_method_name(AUTH_METHOD_LOGIN), "plain",
           "method login is reported as plain, as NGINX does");
    is_str(auth_method_name(AUTH_METHOD_APOP), "apop", "method apop");
    is_str(auth_method_name(AUTH_METHOD_CRAM_MD5), "cram-md5", "cram-md5");
    is_str(auth_method_name(AUTH_METHOD_EXTERNAL), "external", "external");
    is_str(auth_method_name(AUTH_METHOD_NONE), "none", "none");

    /* --- request text ------------------------------------------------ */
    request(&rq, AUTH_METHOD_PLAIN, "alice", "secret");
    is_str(build(&rq),
           "GET /auth HTTP/1.0\r\n"
           "Host: 127.0.0.1\r\n"
           "Auth-Method: plain\r\n"
           "Auth-User: alice\r\n"
           "Auth-Pass: secret\r\n"
           "Auth-Protocol: imap\r\n"
           "Auth-Login-Attempt: 1\r\n"
           "Client-IP: 192.0.2.42\r\n"
           "\r\n", "plain IMAP request, exact");

    request(&rq, AUTH_METHOD_LOGIN, "bob\r\nAuth-Server: evil",
            "p w%\r\n\r\nX");
    rq.attempt = 3;
    rq.client_host = "client example.org";
    req = build(&rq);
    ok(strstr(req, "Auth-User: bob%0D%0AAuth-Server:%20evil\r\n") != NULL,
       "user escaped: CR LF cannot start a header");
    ok(strstr(req, "Auth-Pass: p%20w%25%0D%0A%0D%0AX\r\n") != NULL,
       "password escaped");
    ok(strstr(req, "\r\nAuth-Server") == NULL, "no injected header");
    ok(strstr(req, "Client-Host: client%20example.org\r\n") != NULL,
       "Client-Host escaped");
    ok(strstr(req, "Auth-Login-Attempt: 3\r\n") != NULL, "attempt");
    ok(strstr(req, "Auth-Method: plain\r\n") != NULL, "LOGIN sent as plain");
    is_int(lines(req), 10, "ten lines: nothing injected");
    ok(strstr(req, "Auth-Salt") == NULL, "no salt for plain");

    request(&rq, AUTH_METHOD_APOP, "mrose",
            "c4c9334bac560ecc979e58001b3e22fb");
    rq.protocol = PROTO_POP3;
    rq.salt = STR_LIT("<1896.697170952@dbc.mtview.ca.us>\r\n");
    req = build(&rq);
    ok(strstr(req, "Auth-Method: apop\r\nAuth-User: mrose\r\nAuth-Pass: "
              "c4c9334bac560ecc979e58001b3e22fb\r\nAuth-Salt: "
              "<1896.697170952@dbc.mtview.ca.us>\r\nAuth-Protocol: pop3\r\n")
       != NULL, "APOP: salt once, its CRLF not doubled, protocol pop3");
    rq.salt = STR_LIT("<a\nb>");
    is_str(build(&rq), "(error: salt holds CR, LF or NUL)",
           "a salt with LF is refused");

    request(&rq, AUTH_METHOD_CRAM_MD5, "tim",
            "b913a602c7eda7a495b4e6e7334d3890");
    rq.salt = STR_LIT("<1896.697170952@postoffice.reston.mci.net>");
    req = build(&rq);
    ok(strstr(req, "Auth-Method: cram-md5\r\n") != NULL
       && strstr(req, "Auth-Salt: <1896.697170952@postoffice.reston.mci.net>"
                 "\r\n") != NULL, "CRAM-MD5 method and salt");

    /* SMTP */
    request(&rq, AUTH_METHOD_NONE, "", "");
    rq.protocol = PROTO_SMTP;
    rq.smtp_helo = STR_LIT("client.example");
    rq.smtp_from = STR_LIT("<a@example.org> SIZE=100");
    rq.smtp_to = STR_LIT("<b@example.net>");
    req = build(&rq);
    ok(strstr(req, "Auth-Method: none\r\nAuth-User: \r\nAuth-Pass: \r\n")
       != NULL, "none: empty user and password lines");
    ok(strstr(req, "Auth-Protocol: smtp\r\n") != NULL, "smtp protocol");
    ok(strstr(req, "Auth-SMTP-Helo: client.example\r\n"
              "Auth-SMTP-From: <a@example.org> SIZE=100\r\n"
              "Auth-SMTP-To: <b@example.net>\r\n") != NULL,
       "none: SMTP headers, raw as NGINX sends them");
    request(&rq, AUTH_METHOD_NONE, "", "");
    rq.protocol = PROTO_SMTP;
    rq.smtp_helo = STR_LIT("h\r\nX: y");
    req = build(&rq);
    ok(strstr(req, "Auth-SMTP-Helo: h%0D%0AX:%20y\r\n") != NULL,
       "HELO escaped");
    request(&rq, AUTH_METHOD_PLAIN, "u", "p");
    rq.protocol = PROTO_SMTP;
    rq.smtp_helo = STR_LIT("client.example");
    rq.smtp_from = STR_LIT("<a@example.org>");
    req = build(&rq);
    ok(strstr(req, "Auth-SMTP-") == NULL,
       "AUTH: no Auth-SMTP-* headers, as NGINX (only under none)");

    /* TLS, PROXY protocol, extra headers */
    request(&rq, AUTH_METHOD_EXTERNAL, "carol", "");
    rq.ssl = 1;
    rq.ssl_protocol = "TLSv1.3";
    rq.ssl_cipher = "TLS_AES_256_GCM_SHA384";
    rq.ssl_verify = "SUCCESS";
    rq.ssl_subject = "CN=carol,O=Example Org";
    rq.ssl_issuer = "CN=CA";
    rq.ssl_serial = "0A1B";
    rq.ssl_fingerprint = "abcdef";
    rq.ssl_cert = "-----BEGIN CERTIFICATE-----\nMII\n"
                  "-----END CERTIFICATE-----\n";
    rq.pp_addr = "203.0.113.7";
    rq.pp_port = "51000";
    rq.pp_server_addr = "198.51.100.1";
    rq.pp_server_port = "143";
    sc.auth_http_header_block = "X-Auth-Key: secret_string\r\nX-B: 2\r\n";
    req = build(&rq);
    ok(strstr(req, "Auth-SSL-Cipher: TLS_AES_256_GCM_SHA384\r\n"
              "Auth-SSL-Subject: ") != NULL,
       "ssl_verify_client off: no Auth-SSL-Verify, as NGINX");
    sc.ssl_verify_client = VERIFY_ON;
    req = build(&rq);
    ok(strstr(req, "Client-IP: 192.0.2.42\r\n"
              "Proxy-Protocol-Addr: 203.0.113.7\r\n"
              "Proxy-Protocol-Port: 51000\r\n"
              "Proxy-Protocol-Server-Addr: 198.51.100.1\r\n"
              "Proxy-Protocol-Server-Port: 143\r\n"
              "Auth-SSL: on\r\n"
              "Auth-SSL-Protocol: TLSv1.3\r\n"
              "Auth-SSL-Cipher: TLS_AES_256_GCM_SHA384\r\n"
              "Auth-SSL-Verify: SUCCESS\r\n"
              "Auth-SSL-Subject: CN=carol,O=Example Org\r\n"
              "Auth-SSL-Issuer: CN=CA\r\n"
              "Auth-SSL-Serial: 0A1B\r\n"
              "Auth-SSL-Fingerprint: abcdef\r\n"
              "X-Auth-Key: secret_string\r\nX-B: 2\r\n\r\n") != NULL,
       "PROXY, TLS and extra headers in order, cert left out");
    sc.auth_http_pass_client_cert = 1;
    req = build(&rq);
    ok(strstr(req, "Auth-SSL-Cert: -----BEGIN%20CERTIFICATE-----%0AMII%0A"
              "-----END%20CERTIFICATE-----%0A\r\n") != NULL,
       "client certificate escaped when configured");
    rq.ssl_subject = "CN=x\r\nAuth-Server: evil";
    req = build(&rq);
    ok(strstr(req, "Auth-SSL-Subject: CN=x%0D%0AAuth-Server:%20evil\r\n")
       != NULL, "a subject with a line break is escaped");
    rq.ssl = 0;
    req = build(&rq);
    ok(strstr(req, "Auth-SSL") == NULL, "no TLS: no Auth-SSL headers");
    sc.auth_http_header_block = NULL;
    sc.auth_http_pass_client_cert = 0;

    /* Host header */
    request(&rq, AUTH_METHOD_PLAIN, "u", "p");
    url.host = "::1";
    ok(strncmp(build(&rq), "GET /auth HTTP/1.0\r\nHost: [::1]\r\n", 33) == 0,
       "IPv6 host bracketed");
    auth_http_peer_name(&url, peer, sizeof(peer));
    is_str(peer, "[::1]:9000", "IPv6 peer name");
    url.host = "auth.example.org";
    url.uri = NULL;
    ok(strncmp(build(&rq), "GET / HTTP/1.0\r\nHost: auth.example.org\r\n",
               40) == 0, "default URI /, host name");
    url.uri = "/a b";
    is_str(build(&rq), "(error: auth_http uri holds a blank or line break)",
           "URI with a blank refused");
    url.is_unix = 1;
    url.host = "/run/auth.sock";
    url.uri = "/auth";
    ok(strncmp(build(&rq), "GET /auth HTTP/1.0\r\nHost: localhost\r\n", 37)
       == 0, "unix socket: Host localhost");
    auth_http_peer_name(&url, peer, sizeof(peer));
    is_str(peer, "unix:/run/auth.sock", "unix peer name");
    url.is_unix = 0;
    url.host = "127.0.0.1";

    /* --- interpreting responses ---------------------------------------- */
    request(&rq, AUTH_METHOD_PLAIN, "alice", "secret");
    is_int(interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
                     "Auth-Server: 10.0.0.1\r\nAuth-Port: 1143\r\n\r\n",
                     &rq, &r), AUTH_HTTP_DONE, "OK: done");
    is_int(r.status, AUTH_OK, "OK");
    is_str(r.server, "10.0.0.1", "OK: server");
    is_int(r.port, 1143, "OK: port");
    is_int(r.user.len + r.pass.len, 0, "OK: no user / pass replacement");
    auth_result_free(&r);

    interpret("HTTP/1.1 204 No Content\r\nAuth-Status: OK\r\n"
              "Auth-Server: [2001:db8::1]\r\nAuth-Port: 143\r\n"
              "Auth-User: alice@backend\r\nAuth-Pass: p a%20ss\r\n\r\n",
              &rq, &r);
    is_int(r.status, AUTH_OK, "OK with 204 (status code not used, as NGINX)");
    is_str(r.server, "2001:db8::1", "IPv6 server, brackets removed");
    is_str((char *)r.user.data, "alice@backend", "Auth-User verbatim");
    is_str((char *)r.pass.data, "p a%20ss", "Auth-Pass verbatim");
    auth_result_free(&r);

    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
              "Auth-Server: imap.example.org\r\nAuth-Port: 143\r\n\r\n",
              &rq, &r);
    is_str(r.server, "imap.example.org", "host name server (postern)");
    auth_result_free(&r);

    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
              "Auth-Server: 10.0.0.1\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "OK without port: TEMPFAIL");
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 did not send "
           "server or port", "no port reason");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Port: 143\r\n\r\n",
              &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "OK without server: TEMPFAIL");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\n"
              "Auth-Port: 14x\r\n\r\n", &rq, &r);
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent invalid "
           "server port:\"14x\"", "bad port reason");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\n"
              "Auth-Port: 65536\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "port 65536: TEMPFAIL");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\n"
              "Auth-Port: 0\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "port 0: TEMPFAIL");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: a/b\r\n"
              "Auth-Port: 143\r\n\r\n", &rq, &r);
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent invalid "
           "server address:\"a/b\"", "bad server reason");
    auth_result_free(&r);

    interpret("HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n"
              "Auth-Wait: 3\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_FAIL, "refusal: FAIL");
    is_str(r.message, "Invalid login or password", "refusal message");
    is_int(r.wait, 3, "Auth-Wait");
    is_str(r.error_code, NULL, "no error code");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: Go away\r\n"
              "Auth-Error-Code: 535 5.7.8\r\n\r\n", &rq, &r);
    is_int(r.wait, -1, "no Auth-Wait: -1 (the session closes)");
    is_str(r.error_code, "535 5.7.8", "Auth-Error-Code");
    auth_result_free(&r);
    /* as NGINX: an Auth-Wait that is not a number is ignored, the
     * refusal stands, and without a wait the session ends */
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: No\r\nAuth-Wait: soon\r\n\r\n",
              &rq, &r);
    is_int(r.status, AUTH_FAIL, "non-numeric wait: still a refusal");
    is_str(r.message, "No", "non-numeric wait: the refusal text");
    is_int(r.wait, -1, "non-numeric wait: as no Auth-Wait");
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent invalid "
           "wait:\"soon\", ignored", "bad wait: a reason for the log");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: No\r\nAuth-Wait: 2\r\n"
              "Auth-Wait: 1s\r\n\r\n", &rq, &r);
    is_int(r.wait, 2, "a bad Auth-Wait after a good one: the good one");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: No\r\nAuth-Wait: -1\r\n"
              "Auth-Wait: 4\r\n\r\n", &rq, &r);
    is_int(r.wait, 4, "a good Auth-Wait after a bad one: the good one");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: x\r\n\r\n",
              &rq, &r);
    is_int(r.wait, 0, "WAIT with a bad Auth-Wait: ask again at once");
    auth_result_free(&r);

    /* several Auth-Status: a refusal anywhere refuses (NGINX fails
     * closed); of several refusals the last text is the one */
    {
        static const struct {
            const char *statuses, *what;
            enum auth_status status;
            const char *message;
        } dup[] = {
            { "Auth-Status: Invalid\r\nAuth-Status: OK\r\n",
              "refusal, then OK", AUTH_FAIL, "Invalid" },
            { "Auth-Status: OK\r\nAuth-Status: Invalid\r\n",
              "OK, then refusal", AUTH_FAIL, "Invalid" },
            { "Auth-Status: WAIT\r\nAuth-Status: Go away\r\n",
              "WAIT, then refusal", AUTH_FAIL, "Go away" },
            { "Auth-Status: Go away\r\nAuth-Status: WAIT\r\n",
              "refusal, then WAIT", AUTH_FAIL, "Go away" },
            { "Auth-Status: One\r\nAuth-Status: Two\r\n",
              "two refusals", AUTH_FAIL, "Two" },
            { "Auth-Status: OK\r\nAuth-Status: OK\r\n",
              "OK twice", AUTH_OK, NULL },
            { "Auth-Status: OK\r\nAuth-Status:\r\n",
              "OK, then empty", AUTH_TEMPFAIL, NULL },
        };

        for (size_t i = 0; i < sizeof(dup) / sizeof(dup[0]); i++) {
            char text[512];

            snprintf(text, sizeof(text), "HTTP/1.0 200 OK\r\n%s"
                     "Auth-Server: 10.0.0.1\r\nAuth-Port: 143\r\n\r\n",
                     dup[i].statuses);
            interpret(text, &rq, &r);
            is_int(r.status, dup[i].status, "Auth-Status %s", dup[i].what);
            is_str(r.message, dup[i].message, "Auth-Status %s: text",
                   dup[i].what);
            auth_result_free(&r);
        }
        is_int(interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
                         "Auth-Status: WAIT\r\n\r\n", &rq, &r),
               AUTH_HTTP_RETRY, "Auth-Status OK, then WAIT: ask again");
        auth_result_free(&r);
    }

    /* a 1xx head is never the answer (exchange() reads past interim ones;
     * 101 ends HTTP on the connection) */
    interpret("HTTP/1.1 101 Switching Protocols\r\nAuth-Status: OK\r\n"
              "Auth-Server: 10.0.0.1\r\nAuth-Port: 143\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "101: TEMPFAIL");
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent HTTP status "
           "101 instead of a final response", "101 reason");
    auth_result_free(&r);
    is_int(interpret("HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\n"
                     "Auth-Wait: 1\r\n\r\n", &rq, &r), AUTH_HTTP_RETRY,
           "WAIT: ask again");
    is_int(r.wait, 1, "WAIT: seconds");
    auth_result_free(&r);

    interpret("HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/html"
              "\r\n\r\n<html>", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "no Auth-Status: TEMPFAIL");
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent no "
           "Auth-Status header (HTTP status 500)", "no Auth-Status reason");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status:\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "empty Auth-Status: TEMPFAIL");
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent an empty "
           "Auth-Status header (HTTP status 200)", "empty Auth-Status reason");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: Go away\r\nAuth-Status:"
              "\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "refusal, then empty: TEMPFAIL");
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent an empty "
           "Auth-Status header (HTTP status 200)",
           "refusal, then empty: named as the empty one");
    auth_result_free(&r);
    interpret("junk\r\n\r\n", &rq, &r);
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent invalid "
           "response (invalid status line)", "bad status line reason");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status OK\r\n\r\n", &rq, &r);
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 sent invalid "
           "header in response (invalid header line)", "bad header reason");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "incomplete head: TEMPFAIL");
    auth_result_free(&r);

    /* APOP / CRAM-MD5 / EXTERNAL need Auth-Pass for IMAP and POP3 */
    request(&rq, AUTH_METHOD_APOP, "mrose", "c4c9334bac560ecc979e58001b3e22fb");
    rq.protocol = PROTO_POP3;
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\n"
              "Auth-Port: 110\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "APOP OK without Auth-Pass: TEMPFAIL");
    is_str(r.log_reason, "auth http server 127.0.0.1:9000 did not send "
           "password", "no password reason");
    auth_result_free(&r);
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\n"
              "Auth-Port: 110\r\nAuth-Pass: tanstaaf\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_OK, "APOP OK with Auth-Pass");
    auth_result_free(&r);
    request(&rq, AUTH_METHOD_CRAM_MD5, "tim", "x");
    rq.protocol = PROTO_SMTP;
    interpret("HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.0.0.1\r\n"
              "Auth-Port: 25\r\n\r\n", &rq, &r);
    is_int(r.status, AUTH_OK, "SMTP CRAM-MD5 needs no Auth-Pass (XCLIENT)");
    auth_result_free(&r);

    /* --- against a scripted server --------------------------------------- */
    request(&rq, AUTH_METHOD_PLAIN, "alice", "secret");
    url.host = "127.0.0.1";
    url.uri = "/auth";

    memset(&s, 0, sizeof(s));
    s.fd = listen_tcp(&port);
    use_port(port);
    auth_http_peer_name(&url, peer, sizeof(peer));
    s.nconn = 1;
    s.mode = M_REPLY;
    s.reply[0] = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
                 "Auth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\n";
    run(&s, &rq, &r);
    is_int(r.status, AUTH_OK, "live: OK");
    is_int(r.port, 1143, "live: port");
    ok(strncmp(s.got, "GET /auth HTTP/1.0\r\nHost: 127.0.0.1\r\n"
               "Auth-Method: plain\r\nAuth-User: alice\r\nAuth-Pass: secret"
               "\r\n", 86) == 0, "live: the server got the request");
    is_int(s.gotlen, strlen(build(&rq)), "live: whole request, once");
    auth_result_free(&r);

    s.mode = M_TRICKLE;
    s.reply[0] = "HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password"
                 "\r\nAuth-Wait: 2\r\n\r\n";
    run(&s, &rq, &r);
    is_int(r.status, AUTH_FAIL, "live, byte by byte: FAIL");
    is_str(r.message, "Invalid login or password", "live: message");
    is_int(r.wait, 2, "live: wait");
    auth_result_free(&r);

    s.mode = M_REPLY;
    s.nconn = 2;
    s.reply[0] = "HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: 0\r\n\r\n";
    s.reply[1] = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
                 "Auth-Server: 127.0.0.1\r\nAuth-Port: 1144\r\n\r\n";
    run(&s, &rq, &r);
    is_int(r.status, AUTH_OK, "live: WAIT, then OK on the second request");
    is_int(r.port, 1144, "live: the second answer counts");
    auth_result_free(&r);

    s.nconn = 1;
    s.reply[0] = "SMTP? \x01\x02\r\n\r\n";
    run(&s, &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "live: garbage: TEMPFAIL");
    snprintf(reason, sizeof(reason), "auth http server %s sent invalid "
             "response (invalid status line)", peer);
    is_str(r.log_reason, reason, "live: garbage reason");
    auth_result_free(&r);

    s.mode = M_CLOSE;
    run(&s, &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "live: closed without reply: TEMPFAIL");
    snprintf(reason, sizeof(reason), "auth http server %s closed the "
             "connection before a complete response", peer);
    is_str(r.log_reason, reason, "live: early close reason");
    auth_result_free(&r);

    s.mode = M_SILENT;
    s.delay_ms = 1500;
    sc.auth_http_timeout = 300;
    ms = run(&s, &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "live: silent server: TEMPFAIL");
    snprintf(reason, sizeof(reason), "auth http server %s timed out", peer);
    /* the reason tells that postern gave up before the server's close
     * at 1500 ms; no upper bound on the time, which a loaded machine
     * (the sanitizer builds) could stretch */
    is_str(r.log_reason, reason, "live: timeout reason");
    ok(ms >= 250, "live: waited for auth_http_timeout (%ld ms)", ms);
    auth_result_free(&r);
    sc.auth_http_timeout = 5000;
    close(s.fd);

    /* refused: a port nobody listens on any more */
    s.fd = listen_tcp(&port);
    close(s.fd);
    use_port(port);
    auth_http_peer_name(&url, peer, sizeof(peer));
    auth_http_query(&sc, &rq, &r);
    is_int(r.status, AUTH_TEMPFAIL, "refused: TEMPFAIL");
    snprintf(reason, sizeof(reason), "auth http server %s: ", peer);
    ok(r.log_reason != NULL && strncmp(r.log_reason, reason,
                                       strlen(reason)) == 0
       && strstr(r.log_reason, "refused") != NULL,
       "refused: reason names the server (%s)",
       r.log_reason ? r.log_reason : "");
    auth_result_free(&r);

    /* unix socket */
    {
        struct sockaddr_un sun;
        char path[64];

        snprintf(path, sizeof(path), "/tmp/test_auth_http.%ld.sock",
                 (long)getpid());
        unlink(path);
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        strcpy(sun.sun_path, path);
        memset(&s, 0, sizeof(s));
        s.fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s.fd < 0 || bind(s.fd, (struct sockaddr *)&sun, sizeof(sun)) < 0
            || listen(s.fd, 4) < 0) {
            perror("unix listen");
            return 2;
        }
        url.is_unix = 1;
        url.host = path;
        s.nconn = 1;
        s.mode = M_REPLY;
        s.reply[0] = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
                     "Auth-Server: 127.0.0.1\r\nAuth-Port: 1110\r\n\r\n";
        run(&s, &rq, &r);
        is_int(r.status, AUTH_OK, "unix socket: OK");
        ok(strstr(s.got, "Host: localhost\r\n") != NULL,
           "unix socket: Host localhost");
        auth_result_free(&r);
        close(s.fd);
        unlink(path);
        auth_http_query(&sc, &rq, &r);
        is_int(r.status, AUTH_TEMPFAIL, "unix socket gone: TEMPFAIL");
        ok(r.log_reason != NULL
           && strstr(r.log_reason, "auth http server unix:/tmp/") != NULL,
           "unix socket gone: reason (%s)", r.log_reason ? r.log_reason : "");
        auth_result_free(&r);
        url.is_unix = 0;
    }

    url.host = "127.0.0.1";
    test_keepalive(&rq);
    test_interim(&rq);

    /* auth_query() picks auth_http when there is no auth_file */
    memset(&s, 0, sizeof(s));
    s.fd = listen_tcp(&port);
    url.host = "127.0.0.1";
    use_port(port);
    s.nconn = 1;
    s.mode = M_REPLY;
    s.reply[0] = "HTTP/1.0 200 OK\r\nAuth-Status: Nope\r\n\r\n";
    {
        pthread_t th;

        pthread_create(&th, NULL, serve, &s);
        auth_query(&sc, &rq, &r);
        pthread_join(th, NULL);
    }
    is_int(r.status, AUTH_FAIL, "auth_query dispatches to auth_http");
    is_str(r.message, "Nope", "dispatch: message");
    auth_result_free(&r);
    close(s.fd);
    free(url.addrs);

    return tap_done();
}
