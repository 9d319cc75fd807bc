/*
 * fakebackend.c - a fast fake IMAP / POP3 / SMTP server for the benchmark.
 *
 * It accepts any login, serves one message of a given size for
 * "FETCH 1 BODY[]" and "RETR 1", swallows SMTP DATA, and answers NOOP,
 * LOGOUT and QUIT.  Everything else gets a positive answer.  Each thread
 * runs its own epoll loop over its own SO_REUSEPORT listeners, so the
 * backend is never the bottleneck of a measurement.  Optional implicit-TLS
 * listeners (GnuTLS) serve the "direct" rows of the TLS scenarios.
 *
 * Untrusted input: only from the benchmark's own load generator and the
 * proxies under test, on loopback.  Secrets: none (passwords are ignored).
 * Locks: none; threads share only read-only data built before they start.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <gnutls/gnutls.h>

enum proto { P_IMAP, P_POP3, P_SMTP, P_COUNT };

#define MAX_LISTEN 6
#define IN_SIZE 65536
#define OUT_SIZE 2048
#define MAX_THREADS 64

struct listen_spec {
    enum proto proto;
    int tls;
    int port;
};

struct bconn {
    int fd;
    enum proto proto;
    gnutls_session_t tls;
    int hs_done;
    int closing;                 /* close once output has drained */
    uint32_t events;             /* current epoll interest */
    /* IMAP: a command spread over literals */
    size_t lit_left;             /* literal bytes still to skip */
    int in_cont;                 /* the command continues after a literal */
    char tag[64];
    char verb[32];
    /* SMTP DATA */
    int in_data;
    int data_match;              /* bytes of "\r\n.\r\n" matched so far */
    unsigned char in[IN_SIZE];
    size_t inlen;
    const unsigned char *big;    /* a large static reply, sent first */
    size_t big_len, big_off;
    char out[OUT_SIZE];
    size_t outlen, outoff;
};

static struct listen_spec specs[MAX_LISTEN];
static int nspecs;
static unsigned char *imap_msg, *pop3_msg;
static size_t imap_msg_len, pop3_msg_len;
static gnutls_certificate_credentials_t xcred;
static gnutls_priority_t prio;

/* Print a fatal start-up error and exit. */
static void
die(const char *what)
{
    fprintf(stderr, "fakebackend: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Build the message body: CRLF lines, none starting with a dot. */
static void
fill_body(unsigned char *p, size_t size)
{
    size_t i;

    for (i = 0; i < size; i++) {
        p[i] = (unsigned char)('a' + (i % 26));
    }
    for (i = 78; i + 1 < size; i += 80) {
        p[i] = '\r';
        p[i + 1] = '\n';
    }
    p[size - 2] = '\r';
    p[size - 1] = '\n';
}

/* Build the canned FETCH and RETR replies around a size-byte message. */
static void
build_messages(size_t size)
{
    char head[128];
    int hl;

    if (size < 2) {
        size = 2;
    }
    hl = snprintf(head, sizeof(head), "* 1 FETCH (BODY[] {%zu}\r\n", size);
    imap_msg_len = (size_t)hl + size + 3;
    imap_msg = malloc(imap_msg_len);
    if (imap_msg == NULL) {
        die("malloc");
    }
    memcpy(imap_msg, head, (size_t)hl);
    fill_body(imap_msg + hl, size);
    memcpy(imap_msg + hl + size, ")\r\n", 3);

    hl = snprintf(head, sizeof(head), "+OK %zu octets\r\n", size);
    pop3_msg_len = (size_t)hl + size + 3;
    pop3_msg = malloc(pop3_msg_len);
    if (pop3_msg == NULL) {
        die("malloc");
    }
    memcpy(pop3_msg, head, (size_t)hl);
    fill_body(pop3_msg + hl, size);
    memcpy(pop3_msg + hl + size, ".\r\n", 3);
}

/* Append text to the connection's output; replies are tiny. */
static void
say(struct bconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
say(struct bconn *c, const char *fmt, ...)
{
    va_list ap;
    int n;
    size_t room = sizeof(c->out) - c->outlen;

    va_start(ap, fmt);
    n = vsnprintf(c->out + c->outlen, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        c->closing = 1;          /* cannot happen with our replies */
        return;
    }
    c->outlen += (size_t)n;
}

/* Copy the first word of s (up to len bytes) into dst. */
static const unsigned char *
word(const unsigned char *s, const unsigned char *end, char *dst, size_t dsz)
{
    size_t n = 0;

    while (s < end && *s == ' ') {
        s++;
    }
    while (s < end && *s != ' ' && *s != '\r' && *s != '\n') {
        if (n + 1 < dsz) {
            dst[n++] = (char)*s;
        }
        s++;
    }
    dst[n] = '\0';
    return s;
}

/* The greeting of each protocol. */
static void
greet(struct bconn *c)
{
    switch (c->proto) {
    case P_IMAP:
        say(c, "* OK [CAPABILITY IMAP4rev1 LITERAL+] fake ready\r\n");
        break;
    case P_POP3:
        say(c, "+OK fake ready\r\n");
        break;
    default:
        say(c, "220 fake.test ESMTP ready\r\n");
        break;
    }
}

/* Answer one complete IMAP command (its tag and verb were saved). */
static void
imap_answer(struct bconn *c)
{
    const char *v = c->verb;

    if (strcasecmp(v, "FETCH") == 0 || strcasecmp(v, "UID") == 0) {
        c->big = imap_msg;
        c->big_len = imap_msg_len;
        c->big_off = 0;
        say(c, "%s OK FETCH completed\r\n", c->tag);
    } else if (strcasecmp(v, "LOGOUT") == 0) {
        say(c, "* BYE fake logging out\r\n%s OK LOGOUT completed\r\n",
            c->tag);
        c->closing = 1;
    } else if (strcasecmp(v, "CAPABILITY") == 0) {
        say(c, "* CAPABILITY IMAP4rev1 LITERAL+\r\n%s OK done\r\n", c->tag);
    } else if (strcasecmp(v, "SELECT") == 0 || strcasecmp(v, "EXAMINE") == 0) {
        say(c, "* 1 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n"
            "%s OK [READ-WRITE] SELECT completed\r\n", c->tag);
    } else if (strcasecmp(v, "AUTHENTICATE") == 0) {
        say(c, "%s OK AUTHENTICATE completed\r\n", c->tag);
    } else {
        say(c, "%s OK %s completed\r\n", c->tag, v);
    }
}

/*
 * Consume IMAP input: a command may be split by literals ({N} or {N+});
 * the answer is given when its last line arrives.  1 progress, 0 need more.
 */
static int
imap_step(struct bconn *c, size_t *used)
{
    const unsigned char *s = c->in + *used, *end = c->in + c->inlen, *nl;
    const unsigned char *p;
    size_t lit = 0;
    int sync = 1;

    if (c->lit_left) {
        size_t n = (size_t)(end - s);

        if (n == 0) {
            return 0;
        }
        if (n > c->lit_left) {
            n = c->lit_left;
        }
        c->lit_left -= n;
        *used += n;
        return 1;
    }
    nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL) {
        return 0;
    }
    if (!c->in_cont) {
        p = word(s, nl, c->tag, sizeof(c->tag));
        word(p, nl, c->verb, sizeof(c->verb));
    }
    /* a literal announced at the end of the line: "{N}" or "{N+}" */
    p = nl;
    if (p > s && p[-1] == '\r') {
        p--;
    }
    if (p > s && p[-1] == '}') {
        const unsigned char *q = p - 1;
        size_t mul = 1;

        if (q > s && q[-1] == '+') {
            sync = 0;
            q--;
        }
        while (q > s && q[-1] >= '0' && q[-1] <= '9') {
            lit += (size_t)(q[-1] - '0') * mul;
            mul *= 10;
            q--;
        }
        if (!(q > s && q[-1] == '{')) {
            lit = 0;
        }
    }
    *used += (size_t)(nl + 1 - s);
    if (lit > 0) {
        c->lit_left = lit;
        c->in_cont = 1;
        if (sync) {
            say(c, "+ OK\r\n");
        }
        return 1;
    }
    c->in_cont = 0;
    if (c->tag[0] != '\0') {
        imap_answer(c);
    }
    return 1;
}

/* Answer one POP3 command line. */
static void
pop3_answer(struct bconn *c, const char *v)
{
    if (strcasecmp(v, "RETR") == 0 || strcasecmp(v, "TOP") == 0) {
        c->big = pop3_msg;
        c->big_len = pop3_msg_len;
        c->big_off = 0;
    } else if (strcasecmp(v, "QUIT") == 0) {
        say(c, "+OK fake signing off\r\n");
        c->closing = 1;
    } else if (strcasecmp(v, "CAPA") == 0) {
        say(c, "+OK\r\nUSER\r\nTOP\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n");
    } else if (strcasecmp(v, "STAT") == 0) {
        say(c, "+OK 1 %zu\r\n", pop3_msg_len);
    } else if (strcasecmp(v, "AUTH") == 0) {
        say(c, "+OK logged in\r\n");
    } else {
        say(c, "+OK\r\n");
    }
}

/* Answer one SMTP command line. */
static void
smtp_answer(struct bconn *c, const char *v)
{
    if (strcasecmp(v, "EHLO") == 0) {
        say(c, "250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
            "250-XCLIENT ADDR LOGIN NAME HELO PROTO\r\n"
            "250 AUTH PLAIN LOGIN\r\n");
    } else if (strcasecmp(v, "XCLIENT") == 0) {
        say(c, "220 fake.test ESMTP ready\r\n");
    } else if (strcasecmp(v, "AUTH") == 0) {
        say(c, "235 2.7.0 Authentication successful\r\n");
    } else if (strcasecmp(v, "DATA") == 0) {
        say(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
        c->in_data = 1;
        c->data_match = 2;       /* the DATA line's CRLF precedes the body */
    } else if (strcasecmp(v, "QUIT") == 0) {
        say(c, "221 2.0.0 Bye\r\n");
        c->closing = 1;
    } else {
        say(c, "250 2.0.0 OK\r\n");
    }
}

/*
 * Swallow DATA bytes until "\r\n.\r\n".  Returns bytes consumed.  The
 * search is memmem(), not a byte loop: at several GB/s of upload the
 * backend must never be what limits the DATA rows.
 */
static size_t
smtp_data(struct bconn *c, const unsigned char *s, size_t n)
{
    static const unsigned char term[] = "\r\n.\r\n";
    const unsigned char *hit;
    size_t i = 0, k;

    /* finish a terminator begun at the end of the previous read; no
     * proper suffix of a partial match restarts it, so a mismatch
     * resumes the search at the mismatching byte */
    while (c->data_match > 0 && i < n) {
        if (s[i] != term[c->data_match]) {
            c->data_match = 0;
            break;
        }
        i++;
        if (++c->data_match == 5) {
            goto found;
        }
    }
    if (c->data_match > 0) {
        return n;
    }
    hit = memmem(s + i, n - i, term, 5);
    if (hit != NULL) {
        i = (size_t)(hit - s) + 5;
        goto found;
    }
    for (k = 4; k > 0; k--) {
        if (n - i >= k && memcmp(s + n - k, term, k) == 0) {
            c->data_match = (int)k;
            break;
        }
    }
    return n;

found:
    c->in_data = 0;
    c->data_match = 0;
    say(c, "250 2.0.0 Ok: queued as FAKE\r\n");
    return i;
}

/* Handle buffered input until output is queued or more input is needed. */
static void
process(struct bconn *c)
{
    size_t used = 0;

    while (used < c->inlen && c->outlen == 0 && c->big == NULL
           && !c->closing) {
        if (c->proto == P_IMAP) {
            if (!imap_step(c, &used)) {
                break;
            }
        } else if (c->proto == P_SMTP && c->in_data) {
            used += smtp_data(c, c->in + used, c->inlen - used);
        } else {
            const unsigned char *s = c->in + used;
            const unsigned char *nl = memchr(s, '\n', c->inlen - used);
            char v[32];

            if (nl == NULL) {
                break;
            }
            word(s, nl, v, sizeof(v));
            used += (size_t)(nl + 1 - s);
            if (c->proto == P_POP3) {
                pop3_answer(c, v);
            } else {
                smtp_answer(c, v);
            }
        }
    }
    if (used > 0) {
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
    }
    if (c->inlen == sizeof(c->in) && c->outlen == 0 && c->big == NULL) {
        c->closing = 1;          /* a line longer than the buffer */
    }
}

/* Write queued output.  0 all sent, 1 would block, -1 error. */
static int
flush(struct bconn *c)
{
    for (;;) {
        ssize_t n;

        if (c->big != NULL && c->big_off == c->big_len) {
            c->big = NULL;
        }
        if (c->big == NULL && c->outoff == c->outlen) {
            c->outoff = c->outlen = 0;
            return 0;
        }
        if (c->tls != NULL) {
            if (c->big != NULL) {
                n = gnutls_record_send(c->tls, c->big + c->big_off,
                                       c->big_len - c->big_off);
            } else {
                n = gnutls_record_send(c->tls, c->out + c->outoff,
                                       c->outlen - c->outoff);
            }
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                return 1;
            }
        } else {
            struct iovec iov[2];
            int cnt = 0;

            if (c->big != NULL) {
                iov[cnt].iov_base = (void *)(c->big + c->big_off);
                iov[cnt++].iov_len = c->big_len - c->big_off;
            }
            if (c->outlen > c->outoff) {
                iov[cnt].iov_base = c->out + c->outoff;
                iov[cnt++].iov_len = c->outlen - c->outoff;
            }
            n = writev(c->fd, iov, cnt);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                return 1;
            }
        }
        if (n <= 0) {
            return -1;
        }
        if (c->big != NULL) {
            size_t b = c->big_len - c->big_off;

            if ((size_t)n <= b) {
                c->big_off += (size_t)n;
                continue;
            }
            c->big_off = c->big_len;
            n -= (ssize_t)b;
        }
        c->outoff += (size_t)n;
    }
}

/* Read what is available.  >0 bytes, 0 EOF, -1 error, -2 would block. */
static ssize_t
cread(struct bconn *c)
{
    ssize_t n;
    size_t room = sizeof(c->in) - c->inlen;

    if (c->tls != NULL) {
        n = gnutls_record_recv(c->tls, c->in + c->inlen, room);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            return -2;
        }
        return n < 0 ? -1 : n;
    }
    n = read(c->fd, c->in + c->inlen, room);
    if (n < 0) {
        return (errno == EAGAIN || errno == EINTR) ? -2 : -1;
    }
    return n;
}

/* Change the epoll interest of a connection if it differs. */
static void
want(int ep, struct bconn *c, uint32_t ev)
{
    struct epoll_event e;

    if (c->events == ev) {
        return;
    }
    c->events = ev;
    e.events = ev;
    e.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Close and free one connection. */
static void
bconn_free(struct bconn *c)
{
    if (c->tls != NULL) {
        gnutls_deinit(c->tls);
    }
    close(c->fd);
    free(c);
}

/* Drive one connection as far as it goes without blocking. */
static void
serve(int ep, struct bconn *c)
{
    if (c->tls != NULL && !c->hs_done) {
        int rc = gnutls_handshake(c->tls);

        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            want(ep, c, gnutls_record_get_direction(c->tls)
                 ? EPOLLOUT : EPOLLIN);
            return;
        }
        if (rc < 0) {
            bconn_free(c);
            return;
        }
        c->hs_done = 1;
        greet(c);
    }
    for (;;) {
        int f = flush(c);
        ssize_t n;

        if (f < 0) {
            bconn_free(c);
            return;
        }
        if (f > 0) {
            want(ep, c, EPOLLOUT);
            return;
        }
        if (c->closing) {
            bconn_free(c);
            return;
        }
        process(c);
        if (c->outlen > 0 || c->big != NULL || c->closing) {
            continue;
        }
        n = cread(c);
        if (n == -2) {
            want(ep, c, EPOLLIN);
            return;
        }
        if (n <= 0) {
            bconn_free(c);
            return;
        }
        c->inlen += (size_t)n;
    }
}

/* Open one non-blocking SO_REUSEPORT listener on 127.0.0.1:port. */
static int
listen_on(int port)
{
    struct sockaddr_in sin;
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die("socket");
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        die("bind");
    }
    if (listen(fd, 4096) < 0) {
        die("listen");
    }
    return fd;
}

/* Accept every pending connection on listener i. */
static void
accept_all(int ep, int lfd, const struct listen_spec *sp)
{
    for (;;) {
        struct epoll_event e;
        struct bconn *c;
        int fd, one = 1;

        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->proto = sp->proto;
        c->events = EPOLLIN;
        if (sp->tls) {
            if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) {
                free(c);
                close(fd);
                continue;
            }
            gnutls_priority_set(c->tls, prio);
            gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, xcred);
            gnutls_transport_set_int(c->tls, fd);
        } else {
            greet(c);
        }
        e.events = EPOLLIN;
        e.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
            bconn_free(c);
            continue;
        }
        serve(ep, c);
    }
}

/* One event loop: its own listeners and the connections they accept. */
static void *
loop(void *arg)
{
    struct epoll_event evs[256];
    int lfd[MAX_LISTEN];
    int ep, i;

    (void)arg;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        die("epoll_create1");
    }
    for (i = 0; i < nspecs; i++) {
        struct epoll_event e;

        lfd[i] = listen_on(specs[i].port);
        e.events = EPOLLIN;
        e.data.ptr = &specs[i];
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd[i], &e);
    }
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);

        for (i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;

            if (p >= (void *)&specs[0] && p < (void *)&specs[nspecs]) {
                const struct listen_spec *sp = p;

                accept_all(ep, lfd[sp - specs], sp);
            } else {
                serve(ep, p);
            }
        }
    }
    return NULL;
}

/* Command-line help. */
static void
usage(void)
{
    fprintf(stderr,
        "usage: fakebackend [--imap P] [--pop3 P] [--smtp P] [--imaps P]\n"
        "       [--pop3s P] [--smtps P] [--cert F --key F] [--size BYTES]\n"
        "       [--threads N]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const char *names[] = {
        "--imap", "--pop3", "--smtp", "--imaps", "--pop3s", "--smtps"
    };
    const char *cert = NULL, *key = NULL;
    size_t size = 4u << 20;
    int threads = 1, i, j, any_tls = 0;
    pthread_t tid[MAX_THREADS];

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int matched = 0;

        if (v == NULL) {
            usage();
        }
        for (j = 0; j < 6; j++) {
            if (strcmp(a, names[j]) == 0 && nspecs < MAX_LISTEN) {
                specs[nspecs].proto = (enum proto)(j % 3);
                specs[nspecs].tls = j >= 3;
                specs[nspecs].port = atoi(v);
                any_tls |= j >= 3;
                nspecs++;
                matched = 1;
            }
        }
        if (matched) {
        } else if (strcmp(a, "--cert") == 0) {
            cert = v;
        } else if (strcmp(a, "--key") == 0) {
            key = v;
        } else if (strcmp(a, "--size") == 0) {
            size = strtoul(v, NULL, 10);
        } else if (strcmp(a, "--threads") == 0) {
            threads = atoi(v);
        } else {
            usage();
        }
        i++;
    }
    if (nspecs == 0 || threads < 1 || threads > MAX_THREADS) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    build_messages(size);
    if (any_tls) {
        if (cert == NULL || key == NULL) {
            usage();
        }
        gnutls_global_init();
        gnutls_certificate_allocate_credentials(&xcred);
        if (gnutls_certificate_set_x509_key_file(xcred, cert, key,
                                                 GNUTLS_X509_FMT_PEM) < 0) {
            fprintf(stderr, "fakebackend: cannot load %s / %s\n", cert, key);
            return 1;
        }
        gnutls_priority_init(&prio, NULL, NULL);
    }
    for (i = 0; i < threads; i++) {
        if (pthread_create(&tid[i], NULL, loop, NULL) != 0) {
            die("pthread_create");
        }
    }
    for (i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
    }
    return 0;
}
