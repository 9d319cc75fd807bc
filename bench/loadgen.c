/*
 * loadgen.c - the benchmark's load generator for IMAP, POP3 and SMTP.
 *
 * Each thread runs one epoll loop over many non-blocking connections; each
 * connection follows a short script (greeting, login, then the mode's
 * commands) and checks every reply.  Optional GnuTLS client for implicit
 * TLS, a full handshake per connection (no resumption).  Modes:
 *   login  connect -> greeting -> login -> logout, --conc at once, for
 *          --duration seconds: sessions/s and latency percentiles
 *   bulk   --streams logged-in sessions repeating FETCH 1 BODY[] / RETR 1,
 *          or (--upload, SMTP) a --size message through DATA: MB/s
 *   rtt    one logged-in session sending NOOP: p50 / p99
 *   idle   --count logged-in sessions held idle; "ready" is printed, then
 *          after a line on stdin (or --hold seconds) every one must answer
 *          NOOP
 * --sources N: the connections come from N loopback addresses (127.0.0.2
 * on, in turn), as N clients would; a proxy that shares its pool out per
 * client address (postern's preauth_per_client) then sees clients, not
 * one host.
 * Output: one JSON object per line on stdout.  Exit status 0 when the
 * run completed without a failed session.
 *
 * Untrusted input: replies of the server under test (bounded line buffer,
 * literal sizes parsed with an overflow check).  Secrets: only the
 * benchmark's throwaway password.  Locks: none; the threads share only
 * read-only settings and each writes its own result slot.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/gnutls.h>

#define IN_SIZE 16384
#define CMD_SIZE 512
#define MAX_STEPS 16
#define MAX_THREADS 64
#define STALL_SEC 20.0

enum mode { M_LOGIN, M_BULK, M_RTT, M_IDLE };
enum proto { P_IMAP, P_POP3, P_SMTP };

/* What a step waits for. */
enum expect {
    X_IMAP_GREET,                /* "* OK ..." */
    X_IMAP_TAG,                  /* untagged lines (literals skipped), "a OK" */
    X_POP_ONE,                   /* "+OK ..." */
    X_POP_MULTI,                 /* "+OK ...", lines, "." */
    X_SMTP                       /* [NNN-...]* NNN ..., first digit checked */
};

struct step {
    const char *cmd;             /* NULL: send nothing; "" the upload */
    enum expect x;
    char code;                   /* SMTP: expected first digit */
};

struct settings {
    enum mode mode;
    enum proto proto;
    int tls, conc, threads, streams, count, upload;
    int sources;                 /* source addresses: 0 = the kernel's */
    double duration, hold;
    struct sockaddr_in addr;
    size_t size;
    char user[128], pass[128];
    struct step steps[MAX_STEPS];
    int nsteps;
    int loop_start;              /* first step repeated; -1 for none */
    int noop_step;               /* idle: the NOOP step */
    unsigned char *upload_buf;
    size_t upload_len;
};

enum cstate { C_CONNECTING, C_HANDSHAKE, C_RUN, C_PARKED, C_DONE };

struct lconn {
    int fd;
    enum cstate st;
    gnutls_session_t tls;
    uint32_t events;
    int pc;                      /* current step */
    int sent;                    /* the step's command has been sent */
    /* reply parsing */
    size_t lit_left;
    int multi_started;
    unsigned char in[IN_SIZE];
    size_t inlen;
    /* output */
    const unsigned char *out;
    size_t outlen, outoff;
    char cmd[CMD_SIZE];
    double t0, tcmd, last;
};

struct result {
    unsigned long sessions, errors, iterations;
    unsigned long long bytes;
    double *lat;                 /* milliseconds */
    size_t nlat, caplat;
    char first_error[160];
};

struct worker {
    pthread_t tid;
    int idx, ep, conc;           /* conc: connections this thread keeps */
    int count;                   /* idle: sessions this thread opens */
    struct result r;
    struct lconn **conns;
    size_t nconns;
    int parked, started, active;
    unsigned next_source;        /* round robin over S.sources */
};

static struct settings S;
static gnutls_certificate_credentials_t xcred;
static gnutls_priority_t prio;

/*
 * The groups a client offers, X25519 first. With GNUTLS_KEY_SHARE_TOP the
 * ClientHello carries one key share (X25519), as OpenSSL's clients (curl,
 * Python, mutt, s_client) send; GnuTLS's default computes two (secp256r1
 * and X25519), CPU taken from the proxy measured on the same CPUs (the
 * direct TLS login row ran 25 % faster with one; docs/benchmarks.md, tenth
 * round).  secp256r1 stays offered: a TLS 1.2 server with a P-256
 * certificate (NGINX 1.22) needs the curve listed.
 */
#define CLIENT_PRIORITY \
    "NORMAL:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:" \
    "+GROUP-SECP521R1"
static double t_start, t_end;

/* Seconds on the monotonic clock. */
static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Remember a latency sample. */
static void
add_lat(struct result *r, double ms)
{
    if (r->nlat == r->caplat) {
        size_t cap = r->caplat ? r->caplat * 2 : 4096;
        double *p = realloc(r->lat, cap * sizeof(*p));

        if (p == NULL) {
            return;
        }
        r->lat = p;
        r->caplat = cap;
    }
    r->lat[r->nlat++] = ms;
}

/* Count a failed session and keep the first reason. */
static void
fail(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail(struct worker *w, const char *fmt, ...)
{
    va_list ap;

    w->r.errors++;
    if (w->r.first_error[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(w->r.first_error, sizeof(w->r.first_error), fmt, ap);
        va_end(ap);
    }
}

/* Close a connection and free it. */
static void
conn_end(struct worker *w, struct lconn *c)
{
    if (c->tls != NULL) {
        gnutls_deinit(c->tls);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->st = C_DONE;
    w->active--;
    free(c);
}

/* Change the epoll interest of a connection if it differs. */
static void
want(struct worker *w, struct lconn *c, uint32_t ev)
{
    struct epoll_event e;

    if (c->events == ev) {
        return;
    }
    c->events = ev;
    e.events = ev;
    e.data.ptr = c;
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Bind fd to the next of S.sources loopback addresses (127.0.0.2 on);
 * the port is still chosen at connect(), per destination. */
static int
bind_source(struct worker *w, int fd)
{
    struct sockaddr_in src = { .sin_family = AF_INET };
    unsigned k = (unsigned)w->idx + w->next_source++ * (unsigned)S.threads;
    int one = 1;

    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + k % (unsigned)S.sources);
    return bind(fd, (struct sockaddr *)&src, sizeof(src));
}

/* Start one connection: non-blocking connect, optional TLS session. */
static struct lconn *
conn_start(struct worker *w)
{
    struct epoll_event e;
    struct lconn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        fail(w, "out of memory");
        return NULL;
    }
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(w, "socket: %s", strerror(errno));
        goto unstarted;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (S.sources > 0 && bind_source(w, c->fd) < 0) {
        fail(w, "bind: %s", strerror(errno));
        goto unstarted;
    }
    c->t0 = c->last = now();
    c->st = C_CONNECTING;
    w->active++;
    w->started++;
    if (connect(c->fd, (struct sockaddr *)&S.addr, sizeof(S.addr)) < 0
        && errno != EINPROGRESS) {
        fail(w, "connect: %s", strerror(errno));
        goto ended;
    }
    if (S.tls) {
        if (gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK
                        | GNUTLS_KEY_SHARE_TOP) < 0) {
            fail(w, "gnutls_init");
            goto ended;
        }
        gnutls_priority_set(c->tls, prio);
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, xcred);
        gnutls_transport_set_int(c->tls, c->fd);
    }
    c->events = EPOLLOUT;
    e.events = EPOLLOUT;
    e.data.ptr = c;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &e) < 0) {
        fail(w, "epoll_ctl: %s", strerror(errno));
        goto ended;
    }
    return c;

ended:
    conn_end(w, c);
    return NULL;

unstarted:                      /* not counted as active yet: no conn_end */
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c);
    return NULL;
}

/* Prepare the current step's command for sending. */
static void
load_cmd(struct lconn *c)
{
    const struct step *st = &S.steps[c->pc];
    const char *src = st->cmd;
    size_t n = 0;

    c->sent = 1;
    c->outoff = 0;
    c->tcmd = now();
    if (src == NULL) {
        c->out = NULL;
        c->outlen = 0;
        return;
    }
    if (src[0] == '\0') {
        c->out = S.upload_buf;
        c->outlen = S.upload_len;
        return;
    }
    /* %u and %p stand for the user name and the password */
    while (*src != '\0' && n + 1 < sizeof(c->cmd)) {
        const char *ins = NULL;

        if (src[0] == '%' && src[1] == 'u') {
            ins = S.user;
        } else if (src[0] == '%' && src[1] == 'p') {
            ins = S.pass;
        }
        if (ins != NULL) {
            size_t l = strlen(ins);

            if (n + l + 1 >= sizeof(c->cmd)) {
                break;
            }
            memcpy(c->cmd + n, ins, l);
            n += l;
            src += 2;
        } else {
            c->cmd[n++] = *src++;
        }
    }
    c->cmd[n] = '\0';
    c->out = (const unsigned char *)c->cmd;
    c->outlen = n;
}

/*
 * Look at buffered reply lines for the current step.  Returns 1 when the
 * reply is complete, 0 when more input is needed, -1 on a bad reply.
 */
static int
parse_reply(struct worker *w, struct lconn *c, size_t *used)
{
    const struct step *st = &S.steps[c->pc];

    for (;;) {
        unsigned char *s = c->in + *used, *nl;
        size_t avail = c->inlen - *used, len;

        if (c->lit_left) {
            size_t n = avail < c->lit_left ? avail : c->lit_left;

            c->lit_left -= n;
            *used += n;
            if (c->lit_left) {
                return 0;
            }
            continue;
        }
        nl = memchr(s, '\n', avail);
        if (nl == NULL) {
            if (avail == sizeof(c->in)) {
                fail(w, "reply line too long");
                return -1;
            }
            return 0;
        }
        len = (size_t)(nl - s) + 1;
        *used += len;
        switch (st->x) {
        case X_IMAP_GREET:
            if (len >= 4 && memcmp(s, "* OK", 4) == 0) {
                return 1;
            }
            break;
        case X_IMAP_TAG:
            if (len >= 4 && memcmp(s, "a OK", 4) == 0) {
                return 1;
            }
            if (s[0] != '+' && !(len >= 2 && s[0] == 'a' && s[1] == ' ')) {
                /* an untagged line (or the rest of one after a literal)
                 * may end with a literal {N} */
                unsigned char *p = nl;
                size_t lit = 0, mul = 1;

                if (p > s && p[-1] == '\r') {
                    p--;
                }
                if (p > s && p[-1] == '}') {
                    p--;
                    while (p > s && p[-1] >= '0' && p[-1] <= '9'
                           && mul <= 1000000000u) {
                        lit += (size_t)(p[-1] - '0') * mul;
                        mul *= 10;
                        p--;
                    }
                    if (p > s && p[-1] == '{') {
                        c->lit_left = lit;
                    }
                }
                continue;
            }
            break;
        case X_POP_ONE:
            if (len >= 3 && memcmp(s, "+OK", 3) == 0) {
                return 1;
            }
            break;
        case X_POP_MULTI:
            if (!c->multi_started) {
                if (len >= 3 && memcmp(s, "+OK", 3) == 0) {
                    c->multi_started = 1;
                    continue;
                }
                break;
            }
            if (len == 3 && memcmp(s, ".\r\n", 3) == 0) {
                c->multi_started = 0;
                return 1;
            }
            continue;
        case X_SMTP:
            if (len >= 5 && s[3] == '-' && s[0] == (unsigned char)st->code) {
                continue;
            }
            if (len >= 5 && s[0] == (unsigned char)st->code) {
                return 1;
            }
            break;
        }
        fail(w, "step %d: unexpected reply: %.*s", c->pc,
             (int)(len > 80 ? 80 : len), (const char *)s);
        return -1;
    }
}

/* Send pending output.  0 done, 1 would block, -1 error. */
static int
send_out(struct worker *w, struct lconn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n;

        if (c->tls != NULL) {
            n = gnutls_record_send(c->tls, c->out + c->outoff,
                                   c->outlen - c->outoff);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                return 1;
            }
        } else {
            n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                return 1;
            }
        }
        if (n <= 0) {
            fail(w, "send failed in step %d", c->pc);
            return -1;
        }
        c->outoff += (size_t)n;
        if (S.upload && c->out == S.upload_buf && now() < t_end) {
            w->r.bytes += (unsigned long long)n;
        }
    }
    return 0;
}

/*
 * A step's reply arrived: go on to the next step, loop, park or finish.
 * Returns 0 to keep going, 1 when the connection is finished.
 */
static int
step_done(struct worker *w, struct lconn *c)
{
    double t = now();

    c->sent = 0;
    c->pc++;
    if (S.mode == M_RTT && c->pc == S.nsteps && t < t_end) {
        add_lat(&w->r, (t - c->tcmd) * 1000.0);
    }
    if (S.mode == M_IDLE && c->pc == S.noop_step) {
        c->st = C_PARKED;
        w->parked++;
        return 0;
    }
    if (c->pc < S.nsteps) {
        return 0;
    }
    if (S.mode == M_IDLE) {
        w->r.sessions++;         /* answered NOOP after the hold */
        return 1;
    }
    if (S.loop_start < 0) {
        if (t < t_end) {
            w->r.sessions++;
            add_lat(&w->r, (t - c->t0) * 1000.0);
        }
        return 1;
    }
    if (t < t_end) {
        w->r.iterations++;
    }
    if (t >= t_end) {
        return 1;
    }
    c->pc = S.loop_start;
    return 0;
}

/* Read what is available; >0 bytes, 0 EOF, -1 error, -2 would block. */
static ssize_t
cread(struct lconn *c)
{
    size_t room = sizeof(c->in) - c->inlen;
    ssize_t n;

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

/* Drive one connection as far as it goes.  1 when it has ended. */
static int
drive(struct worker *w, struct lconn *c)
{
    c->last = now();
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);

        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
            fail(w, "connect: %s", strerror(err));
            return 1;
        }
        c->st = S.tls ? C_HANDSHAKE : C_RUN;
    }
    if (c->st == C_HANDSHAKE) {
        int rc = gnutls_handshake(c->tls);

        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            want(w, c, gnutls_record_get_direction(c->tls)
                 ? EPOLLOUT : EPOLLIN);
            return 0;
        }
        if (rc < 0) {
            fail(w, "handshake: %s", gnutls_strerror(rc));
            return 1;
        }
        c->st = C_RUN;
    }
    if (c->st == C_PARKED) {
        /* a parked session must stay silent; a close is a failure */
        ssize_t n = cread(c);

        if (n == -2) {
            return 0;
        }
        fail(w, "idle session closed or spoke (%zd)", n);
        return 1;
    }
    for (;;) {
        size_t used = 0;
        int rc;
        ssize_t n;

        if (!c->sent) {
            load_cmd(c);
        }
        rc = send_out(w, c);
        if (rc < 0) {
            return 1;
        }
        if (rc > 0) {
            want(w, c, EPOLLOUT);
            return 0;
        }
        /* replies already buffered come first */
        rc = c->inlen ? parse_reply(w, c, &used) : 0;
        if (used > 0) {
            memmove(c->in, c->in + used, c->inlen - used);
            c->inlen -= used;
        }
        if (rc < 0) {
            return 1;
        }
        if (rc > 0) {
            if (step_done(w, c)) {
                return 1;
            }
            if (c->st == C_PARKED) {
                want(w, c, EPOLLIN);
                return 0;
            }
            continue;
        }
        n = cread(c);
        if (n == -2) {
            want(w, c, EPOLLIN);
            return 0;
        }
        if (n <= 0) {
            fail(w, "connection closed in step %d", c->pc);
            return 1;
        }
        if (!S.upload && S.mode == M_BULK && now() < t_end) {
            w->r.bytes += (unsigned long long)n;
        }
        c->inlen += (size_t)n;
    }
}

/* Keep a connection in the thread's list (idle mode needs them all). */
static void
track(struct worker *w, struct lconn *c)
{
    if (S.mode != M_IDLE || c == NULL) {
        return;
    }
    w->conns[w->nconns++] = c;
}

/* Run one thread's epoll loop until its work is done or time is up. */
static void
run_loop(struct worker *w, int idle_phase)
{
    struct epoll_event evs[512];

    for (;;) {
        double t = now();
        int n, i;

        if (S.mode == M_IDLE) {
            if (idle_phase == 0) {
                while (w->started < w->count
                       && w->active - w->parked < w->conc) {
                    track(w, conn_start(w));
                }
                if (w->started == w->count && w->active == w->parked) {
                    return;
                }
            } else if (w->active == 0) {
                return;
            }
            if (t > t_end) {
                fail(w, "idle: out of time");
                return;
            }
        } else {
            if (t >= t_end && w->active == 0) {
                return;
            }
            if (t >= t_end + 5.0) {
                return;          /* stragglers are dropped */
            }
            while (t < t_end && w->active < w->conc) {
                if (conn_start(w) == NULL) {
                    break;
                }
            }
        }
        n = epoll_wait(w->ep, evs, 512, 50);
        for (i = 0; i < n; i++) {
            struct lconn *c = evs[i].data.ptr;

            if (drive(w, c)) {
                size_t k;

                for (k = 0; k < w->nconns; k++) {
                    if (w->conns[k] == c) {
                        w->conns[k] = NULL;
                    }
                }
                if (c->st == C_PARKED) {
                    w->parked--;
                }
                conn_end(w, c);
            }
        }
    }
}

/* Thread body for the login, bulk and rtt modes, and idle phase 0. */
static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    run_loop(w, 0);
    return NULL;
}

/* Idle phase 1: every parked session sends NOOP and must answer. */
static void *
worker_noop(void *arg)
{
    struct worker *w = arg;
    size_t k;

    for (k = 0; k < w->nconns; k++) {
        struct lconn *c = w->conns[k];

        if (c == NULL || c->st != C_PARKED) {
            continue;
        }
        c->st = C_RUN;
        w->parked--;
        c->sent = 0;
        if (drive(w, c)) {
            w->conns[k] = NULL;
            conn_end(w, c);
        }
    }
    run_loop(w, 1);
    return NULL;
}

/* Comparison for qsort of doubles. */
static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The p-th percentile of sorted samples. */
static double
pct(const double *v, size_t n, double p)
{
    size_t i;

    if (n == 0) {
        return 0.0;
    }
    i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0) {
        i--;
    }
    return v[i < n ? i : n - 1];
}

/* Fill the script for the chosen protocol and mode. */
static void
build_script(void)
{
    struct step *s = S.steps;
    int n = 0;

    switch (S.proto) {
    case P_IMAP:
        s[n++] = (struct step){ NULL, X_IMAP_GREET, 0 };
        s[n++] = (struct step){ "a LOGIN %u %p\r\n", X_IMAP_TAG, 0 };
        break;
    case P_POP3:
        s[n++] = (struct step){ NULL, X_POP_ONE, 0 };
        s[n++] = (struct step){ "USER %u\r\n", X_POP_ONE, 0 };
        s[n++] = (struct step){ "PASS %p\r\n", X_POP_ONE, 0 };
        break;
    case P_SMTP:
        s[n++] = (struct step){ NULL, X_SMTP, '2' };
        s[n++] = (struct step){ "EHLO bench.test\r\n", X_SMTP, '2' };
        s[n++] = (struct step){ "AUTH PLAIN %u\r\n", X_SMTP, '2' };
        break;
    }
    S.loop_start = -1;
    S.noop_step = -1;
    switch (S.mode) {
    case M_LOGIN:
        if (S.proto == P_IMAP) {
            s[n++] = (struct step){ "a LOGOUT\r\n", X_IMAP_TAG, 0 };
        } else if (S.proto == P_POP3) {
            s[n++] = (struct step){ "QUIT\r\n", X_POP_ONE, 0 };
        } else {
            s[n++] = (struct step){ "QUIT\r\n", X_SMTP, '2' };
        }
        break;
    case M_BULK:
        if (S.proto == P_IMAP) {
            s[n++] = (struct step){ "a SELECT INBOX\r\n", X_IMAP_TAG, 0 };
            S.loop_start = n;
            s[n++] = (struct step){ "a FETCH 1 BODY[]\r\n", X_IMAP_TAG, 0 };
        } else if (S.proto == P_POP3) {
            S.loop_start = n;
            s[n++] = (struct step){ "RETR 1\r\n", X_POP_MULTI, 0 };
        } else {
            S.loop_start = n;
            s[n++] = (struct step){ "MAIL FROM:<bench@example.test>\r\n",
                                    X_SMTP, '2' };
            s[n++] = (struct step){ "RCPT TO:<bench@example.test>\r\n",
                                    X_SMTP, '2' };
            s[n++] = (struct step){ "DATA\r\n", X_SMTP, '3' };
            s[n++] = (struct step){ "", X_SMTP, '2' };
            S.upload = 1;
        }
        break;
    case M_RTT:
    case M_IDLE:
        if (S.mode == M_RTT) {
            S.loop_start = n;
        } else {
            S.noop_step = n;
        }
        if (S.proto == P_IMAP) {
            s[n++] = (struct step){ "a NOOP\r\n", X_IMAP_TAG, 0 };
        } else if (S.proto == P_POP3) {
            s[n++] = (struct step){ "NOOP\r\n", X_POP_ONE, 0 };
        } else {
            s[n++] = (struct step){ "NOOP\r\n", X_SMTP, '2' };
        }
        break;
    }
    S.nsteps = n;
}

/* SMTP AUTH PLAIN wants base64("\0user\0pass") in place of the user. */
static void
smtp_plain_token(void)
{
    char raw[260];
    gnutls_datum_t in, out;
    size_t ul = strlen(S.user), pl = strlen(S.pass);

    if (ul + pl + 2 > sizeof(raw)) {
        fprintf(stderr, "loadgen: user/password too long\n");
        exit(2);
    }
    raw[0] = '\0';
    memcpy(raw + 1, S.user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, S.pass, pl);
    in.data = (unsigned char *)raw;
    in.size = (unsigned int)(ul + pl + 2);
    if (gnutls_base64_encode2(&in, &out) < 0 || out.size >= sizeof(S.user)) {
        fprintf(stderr, "loadgen: base64 failed\n");
        exit(2);
    }
    memcpy(S.user, out.data, out.size);
    S.user[out.size] = '\0';
    gnutls_free(out.data);
}

/* The SMTP DATA body: CRLF lines, none starting with a dot, then ".". */
static void
build_upload(void)
{
    size_t size = S.size < 2 ? 2 : S.size, i;
    unsigned char *p = malloc(size + 3);

    if (p == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    for (i = 0; i < size; i++) {
        p[i] = (unsigned char)('A' + (i % 26));
    }
    for (i = 78; i + 1 < size; i += 80) {
        p[i] = '\r';
        p[i + 1] = '\n';
    }
    p[size - 2] = '\r';
    p[size - 1] = '\n';
    memcpy(p + size, ".\r\n", 3);
    S.upload_buf = p;
    S.upload_len = size + 3;
}

/* Command-line help. */
static void
usage(void)
{
    fprintf(stderr,
        "usage: loadgen --mode login|bulk|rtt|idle --proto imap|pop3|smtp\n"
        "       --port P [--host 127.0.0.1] [--tls] [--conc N]\n"
        "       [--duration S] [--threads N] [--streams N] [--size BYTES]\n"
        "       [--count N] [--hold S] [--user U] [--pass P]\n"
        "       [--sources N]\n");
    exit(2);
}

/* Parse the command line into S. */
static void
parse_args(int argc, char **argv)
{
    int i;

    S.mode = M_LOGIN;
    S.proto = P_IMAP;
    S.conc = 32;
    S.threads = 1;
    S.streams = 1;
    S.count = 100;
    S.duration = 5.0;
    S.hold = -1.0;
    S.size = 4u << 20;
    snprintf(S.user, sizeof(S.user), "bench");
    snprintf(S.pass, sizeof(S.pass), "secret");
    S.addr.sin_family = AF_INET;
    S.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";

        if (strcmp(a, "--tls") == 0) {
            S.tls = 1;
            continue;
        }
        if (i + 1 >= argc) {
            usage();
        }
        i++;
        if (strcmp(a, "--mode") == 0) {
            S.mode = strcmp(v, "bulk") == 0 ? M_BULK
                : strcmp(v, "rtt") == 0 ? M_RTT
                : strcmp(v, "idle") == 0 ? M_IDLE : M_LOGIN;
            if (strcmp(v, "login") && S.mode == M_LOGIN) {
                usage();
            }
        } else if (strcmp(a, "--proto") == 0) {
            S.proto = strcmp(v, "pop3") == 0 ? P_POP3
                : strcmp(v, "smtp") == 0 ? P_SMTP : P_IMAP;
            if (strcmp(v, "imap") && S.proto == P_IMAP) {
                usage();
            }
        } else if (strcmp(a, "--host") == 0) {
            if (inet_pton(AF_INET, v, &S.addr.sin_addr) != 1) {
                usage();
            }
        } else if (strcmp(a, "--port") == 0) {
            S.addr.sin_port = htons((uint16_t)atoi(v));
        } else if (strcmp(a, "--conc") == 0) {
            S.conc = atoi(v);
        } else if (strcmp(a, "--sources") == 0) {
            S.sources = atoi(v);
        } else if (strcmp(a, "--threads") == 0) {
            S.threads = atoi(v);
        } else if (strcmp(a, "--streams") == 0) {
            S.streams = atoi(v);
        } else if (strcmp(a, "--count") == 0) {
            S.count = atoi(v);
        } else if (strcmp(a, "--duration") == 0) {
            S.duration = atof(v);
        } else if (strcmp(a, "--hold") == 0) {
            S.hold = atof(v);
        } else if (strcmp(a, "--size") == 0) {
            S.size = strtoul(v, NULL, 10);
        } else if (strcmp(a, "--user") == 0) {
            snprintf(S.user, sizeof(S.user), "%s", v);
        } else if (strcmp(a, "--pass") == 0) {
            snprintf(S.pass, sizeof(S.pass), "%s", v);
        } else {
            usage();
        }
    }
    if (S.addr.sin_port == 0 || S.conc < 1 || S.threads < 1
        || S.threads > MAX_THREADS || S.streams < 1 || S.count < 1
        || S.duration <= 0 || S.sources < 0 || S.sources > 250
        || (S.sources > 0
            && (ntohl(S.addr.sin_addr.s_addr) >> 24) != 127)) {
        usage();
    }
}

/* Raise RLIMIT_NOFILE to its hard limit (idle mode holds many sockets). */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Sum the threads' results and print the JSON line. */
static int
report(struct worker *ws, int nw, double elapsed, const char *extra)
{
    static const char *mnames[] = { "login", "bulk", "rtt", "idle" };
    static const char *pnames[] = { "imap", "pop3", "smtp" };
    struct result r;
    const char *err = "";
    int i;

    memset(&r, 0, sizeof(r));
    for (i = 0; i < nw; i++) {
        struct result *x = &ws[i].r;

        r.sessions += x->sessions;
        r.errors += x->errors;
        r.iterations += x->iterations;
        r.bytes += x->bytes;
        if (err[0] == '\0') {
            err = x->first_error;
        }
        if (x->nlat > 0) {
            double *p = realloc(r.lat, (r.nlat + x->nlat) * sizeof(*p));

            if (p != NULL) {
                r.lat = p;
                memcpy(r.lat + r.nlat, x->lat, x->nlat * sizeof(*p));
                r.nlat += x->nlat;
            }
        }
    }
    qsort(r.lat, r.nlat, sizeof(double), cmp_double);
    printf("{\"mode\":\"%s\",\"proto\":\"%s\",\"tls\":%d,"
           "\"elapsed\":%.3f,\"sessions\":%lu,\"errors\":%lu,"
           "\"iterations\":%lu,\"bytes\":%llu,"
           "\"rate\":%.1f,\"mb_per_s\":%.2f,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f%s",
           mnames[S.mode], pnames[S.proto], S.tls, elapsed,
           r.sessions, r.errors, r.iterations, r.bytes,
           elapsed > 0 ? (double)r.sessions / elapsed : 0.0,
           elapsed > 0 ? (double)r.bytes / elapsed / 1e6 : 0.0,
           pct(r.lat, r.nlat, 50), pct(r.lat, r.nlat, 99),
           r.nlat ? r.lat[r.nlat - 1] : 0.0, extra);
    if (err[0] != '\0') {
        printf(",\"first_error\":\"");
        for (i = 0; err[i] != '\0'; i++) {
            unsigned char ch = (unsigned char)err[i];

            if (ch == '"' || ch == '\\') {
                printf("\\%c", ch);
            } else if (ch >= 0x20 && ch < 0x7f) {
                putchar(ch);
            }
        }
        printf("\"");
    }
    printf("}\n");
    fflush(stdout);
    free(r.lat);
    return r.errors == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    struct worker *ws;
    int nw, i, rc;
    double elapsed;

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (S.proto == P_SMTP) {
        smtp_plain_token();
    }
    build_script();
    if (S.upload) {
        build_upload();
    }
    if (S.tls) {
        gnutls_global_init();
        gnutls_certificate_allocate_credentials(&xcred);
        if (gnutls_priority_init(&prio, CLIENT_PRIORITY, NULL) < 0) {
            fprintf(stderr, "loadgen: bad TLS priority %s\n", CLIENT_PRIORITY);
            return 1;
        }
    }
    nw = S.mode == M_RTT ? 1 : S.threads;
    ws = calloc((size_t)nw, sizeof(*ws));
    if (ws == NULL) {
        return 1;
    }
    for (i = 0; i < nw; i++) {
        int share;

        ws[i].idx = i;
        ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
        share = S.mode == M_BULK ? S.streams : S.mode == M_RTT ? 1 : S.conc;
        ws[i].conc = share / nw + (i < share % nw);
        if (S.mode == M_IDLE) {
            ws[i].count = S.count / nw + (i < S.count % nw);
            ws[i].conns = calloc((size_t)ws[i].count + 1,
                                 sizeof(*ws[i].conns));
            if (ws[i].conns == NULL) {
                return 1;
            }
        }
    }
    t_start = now();
    /* idle: the set-up gets a generous bound, the hold comes later */
    t_end = t_start + (S.mode == M_IDLE ? 120.0 : S.duration);
    for (i = 0; i < nw; i++) {
        pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]);
    }
    for (i = 0; i < nw; i++) {
        pthread_join(ws[i].tid, NULL);
    }
    elapsed = (S.mode == M_IDLE ? now() : t_end) - t_start;
    if (S.mode != M_IDLE) {
        return report(ws, nw, elapsed, "");
    }
    {
        unsigned long parked = 0, errors = 0;
        char line[64];

        for (i = 0; i < nw; i++) {
            parked += (unsigned long)ws[i].parked;
            errors += ws[i].r.errors;
        }
        printf("{\"event\":\"ready\",\"parked\":%lu,\"errors\":%lu,"
               "\"setup_s\":%.3f}\n", parked, errors, elapsed);
        fflush(stdout);
        if (S.hold >= 0) {
            struct timespec ts = { (time_t)S.hold,
                (long)((S.hold - (double)(time_t)S.hold) * 1e9) };

            nanosleep(&ts, NULL);
        } else if (fgets(line, sizeof(line), stdin) == NULL) {
            line[0] = '\0';
        }
        t_start = now();
        t_end = t_start + 60.0;
        for (i = 0; i < nw; i++) {
            pthread_create(&ws[i].tid, NULL, worker_noop, &ws[i]);
        }
        for (i = 0; i < nw; i++) {
            pthread_join(ws[i].tid, NULL);
        }
        snprintf(line, sizeof(line), ",\"requested\":%d,\"parked\":%lu",
                 S.count, parked);
        rc = report(ws, nw, now() - t_start, line);
        for (i = 0; i < nw; i++) {
            if (ws[i].r.sessions != (unsigned long)ws[i].count) {
                rc = 1;
            }
        }
        return rc;
    }
}
