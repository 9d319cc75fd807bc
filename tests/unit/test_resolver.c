/*
 * test_resolver.c - resolver_client_host() and resolver_lookup_host()
 * against tests/integration/dnsstub.py on 127.0.0.1: good names (IPv4,
 * IPv6, IPv4-mapped), missing, slow (the timeout and the deadline are
 * honoured), hostile and mismatched names, the cache (TTL, valid=, failures,
 * no caching of temporary failures), and a few threads at once.
 *
 * The stub is found through $POSTERN_SRCDIR (set by `make check`), else the
 * DNSSTUB path compiled in.  Without /usr/bin/python3 the test is skipped.
 * Everything started here is stopped by pid.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "resolver.h"
#include "tap.h"

#ifndef DNSSTUB
#define DNSSTUB "tests/integration/dnsstub.py"
#endif

#define PYTHON "/usr/bin/python3"

static const char map_json[] =
    "{"
    "\"ptr\": {"
    "  \"127.0.0.1\": \"good.example.test\","
    "  \"::1\": \"good6.example.test\","
    "  \"127.0.0.3\": \"slow.example.test\","
    "  \"127.0.0.6\": \"short.example.test\","
    "  \"127.0.0.10\": \"mismatch.example.test\","
    "  \"127.0.0.11\": \"noforward.example.test\","
    "  \"127.0.0.13\": \"MiXeD.Example.Test\""
    "},"
    "\"a\": {"
    "  \"good.example.test\": [\"127.0.0.1\"],"
    "  \"slow.example.test\": [\"127.0.0.3\"],"
    "  \"short.example.test\": [\"127.0.0.6\"],"
    "  \"mismatch.example.test\": [\"192.0.2.1\", \"192.0.2.2\"],"
    "  \"mixed.example.test\": [\"127.0.0.13\"],"
    "  \"multi.example.test\": [\"192.0.2.10\", \"192.0.2.11\"]"
    "},"
    "\"aaaa\": {"
    "  \"good6.example.test\": [\"::1\"],"
    "  \"multi.example.test\": [\"2001:db8::11\"]"
    "},"
    "\"modes\": {"
    "  \"127.0.0.3\": \"slow\","
    "  \"slowname.example.test\": \"slow\","
    "  \"127.0.0.4\": \"hostile-crlf\","
    "  \"127.0.0.5\": \"hostile-space\","
    "  \"127.0.0.7\": \"hostile-underscore\","
    "  \"127.0.0.8\": \"hostile-longlabel\","
    "  \"127.0.0.9\": \"hostile-longname\","
    "  \"127.0.0.12\": \"servfail\","
    "  \"127.0.0.14\": \"hostile-slash\""
    "},"
    "\"ttl\": { \"127.0.0.6\": 1, \"short.example.test\": 1 }"
    "}";

static pid_t stub_pid = -1;
static char stub_log[64];
static char server_text[32];
static const char *server_list[1] = { server_text };

/* Start the stub; its port into server_text.  0 or -1. */
static int
stub_start(void)
{
    const char *srcdir = getenv("POSTERN_SRCDIR");
    char path[4096], line[32];
    struct pollfd pfd;
    int p[2], fd;
    ssize_t n;
    size_t got = 0;

    if (srcdir != NULL) {
        snprintf(path, sizeof(path), "%s/tests/integration/dnsstub.py",
                 srcdir);
    } else {
        snprintf(path, sizeof(path), "%s", DNSSTUB);
    }
    snprintf(stub_log, sizeof(stub_log), "/tmp/postern-dnsstub-XXXXXX");
    fd = mkstemp(stub_log);
    if (fd < 0 || pipe(p) != 0) {
        return -1;
    }
    close(fd);
    stub_pid = fork();
    if (stub_pid < 0) {
        return -1;
    }
    if (stub_pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(PYTHON, "python3", path, "--port", "0", "--delay", "3",
              "--lifetime", "120", "--log", stub_log, map_json,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    pfd.fd = p[0];
    pfd.events = POLLIN;
    while (got < sizeof(line) - 1 && memchr(line, '\n', got) == NULL) {
        if (poll(&pfd, 1, 10000) <= 0) {
            break;
        }
        n = read(p[0], line + got, sizeof(line) - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(p[0]);
    line[got] = '\0';
    if (atoi(line) <= 0) {
        return -1;
    }
    snprintf(server_text, sizeof(server_text), "127.0.0.1:%d", atoi(line));
    return 0;
}

static void
stub_stop(void)
{
    int status;

    if (stub_pid > 0) {
        kill(stub_pid, SIGTERM);
        waitpid(stub_pid, &status, 0);
        stub_pid = -1;
    }
}

/* Questions the stub has seen so far (lines of its log), all of them or
 * those naming about (e.g. "ip6.arpa"). */
static int
stub_questions_about(const char *about)
{
    FILE *f = fopen(stub_log, "r");
    char line[512];
    int n = 0;

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        n += about == NULL || strstr(line, about) != NULL;
    }
    fclose(f);
    return n;
}

static int
stub_questions(void)
{
    return stub_questions_about(NULL);
}

static void
conf_init(struct server_conf *sc, int valid_sec, msec_t timeout)
{
    memset(sc, 0, sizeof(*sc));
    sc->resolver.enabled = 1;
    sc->resolver.servers.n = 1;
    sc->resolver.servers.v = (char **)server_list;
    sc->resolver.valid_sec = valid_sec;
    sc->resolver.ipv4 = 1;
    sc->resolver.ipv6 = 1;
    sc->resolver_timeout = timeout;
}

static struct sockaddr_storage
addr(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        ss.ss_family = AF_INET6;
        inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr);
    } else {
        ss.ss_family = AF_INET;
        inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr);
    }
    return ss;
}

/* Resolve text; check the result code and name; return elapsed ms. */
static msec_t
expect(const struct server_conf *sc, const char *text, int want_rc,
       const char *want_host, const char *what)
{
    struct sockaddr_storage ss = addr(text);
    static char junk[] = "junk";    /* must be replaced by NULL or a name */
    char err[256] = "";
    char *host = junk;
    msec_t t0 = clock_now(), dt;
    int rc;

    rc = resolver_client_host(sc, (struct sockaddr *)&ss, t0 + 10000, &host,
                              err, sizeof(err));
    dt = clock_now() - t0;
    if (want_rc == RESOLVER_OK) {
        ok(rc == RESOLVER_OK && host != NULL && want_host != NULL
           && strcmp(host, want_host) == 0,
           "%s: %s -> %s (rc %d, %s)", what, text,
           host != NULL ? host : "(null)", rc, err);
    } else {
        ok(rc == want_rc && host == NULL && err[0] != '\0',
           "%s: %s refused with rc %d (%s)", what, text, rc, err);
        /* the reason goes to a log line: no raw DNS bytes in it */
        ok(strpbrk(err, "\r\n") == NULL, "%s: reason is one clean line",
           what);
    }
    if (host != junk) {
        free(host);
    }
    return dt;
}

static void
test_lookups(void)
{
    struct server_conf sc, off;
    struct sockaddr_storage ss;
    char err[256];
    char *host = NULL;
    msec_t dt;
    int q0, rc;

    conf_init(&sc, -1, 1000);
    expect(&sc, "127.0.0.1", RESOLVER_OK, "good.example.test", "good");
    expect(&sc, "::1", RESOLVER_OK, "good6.example.test", "good IPv6");
    expect(&sc, "::ffff:127.0.0.1", RESOLVER_OK, "good.example.test",
           "IPv4-mapped");
    expect(&sc, "127.0.0.13", RESOLVER_OK, "MiXeD.Example.Test",
           "name case kept, forward lookup case-blind");
    expect(&sc, "127.0.0.2", RESOLVER_UNAVAILABLE, NULL, "missing PTR");
    expect(&sc, "127.0.0.11", RESOLVER_UNAVAILABLE, NULL,
           "name without an address");
    expect(&sc, "127.0.0.10", RESOLVER_UNAVAILABLE, NULL,
           "forward mismatch");
    expect(&sc, "127.0.0.12", RESOLVER_TEMPUNAVAIL, NULL, "SERVFAIL");

    /* hostile PTR answers: refused by c-ares or by our name check */
    expect(&sc, "127.0.0.4", RESOLVER_UNAVAILABLE, NULL, "hostile CR LF");
    expect(&sc, "127.0.0.5", RESOLVER_UNAVAILABLE, NULL, "hostile space");
    expect(&sc, "127.0.0.8", RESOLVER_UNAVAILABLE, NULL,
           "hostile 64-byte label");
    expect(&sc, "127.0.0.9", RESOLVER_UNAVAILABLE, NULL,
           "hostile over-long name");
    /* c-ares lets '_' and '/' through: our RFC 1034 check must stop them
     * before a forward query is even sent */
    q0 = stub_questions();
    ss = addr("127.0.0.7");
    rc = resolver_client_host(&sc, (struct sockaddr *)&ss,
                              clock_now() + 5000, &host, err, sizeof(err));
    ok(rc == RESOLVER_UNAVAILABLE && host == NULL
       && strstr(err, "not a valid host name") != NULL,
       "hostile underscore: refused by the name check (%s)", err);
    is_int(stub_questions() - q0, 1, "hostile underscore: PTR asked, "
           "no forward query for the bad name");
    expect(&sc, "127.0.0.14", RESOLVER_UNAVAILABLE, NULL, "hostile slash");

    /* slow server: resolver_timeout bounds the call */
    conf_init(&sc, -1, 500);
    /* The stub answers after 3 s: TEMPUNAVAIL says that answer was not
     * awaited, the lower bound that the timeout was (no upper bound on
     * time: a loaded machine may be late, and speed is not tested here). */
    dt = expect(&sc, "127.0.0.3", RESOLVER_TEMPUNAVAIL, NULL,
                "slow, resolver_timeout 500 ms");
    ok(dt >= 400, "slow: waited for resolver_timeout, gave up after %lld ms",
       (long long)dt);
    /* ... and so does the caller's deadline when it comes first */
    conf_init(&sc, -1, 30000);
    ss = addr("127.0.0.3");
    dt = clock_now();
    rc = resolver_client_host(&sc, (struct sockaddr *)&ss, dt + 300, &host,
                              err, sizeof(err));
    dt = clock_now() - dt;
    ok(rc == RESOLVER_TEMPUNAVAIL && host == NULL && dt >= 250
       && strstr(err, "timed out") != NULL,
       "slow, deadline 300 ms: gave up after %lld ms (%s)", (long long)dt,
       err);

    /* ipv6=off: an IPv6 client cannot be confirmed, nothing is asked */
    conf_init(&off, -1, 1000);
    off.resolver.ipv6 = 0;
    /* counted by name: a late retry of the slow cases above (127.0.0.3)
     * may still reach the stub now */
    q0 = stub_questions_about("ip6.arpa");
    expect(&off, "::1", RESOLVER_UNAVAILABLE, NULL, "ipv6=off");
    is_int(stub_questions_about("ip6.arpa"), q0, "ipv6=off: no question sent");
    expect(&off, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "ipv6=off: IPv4 still works");

    /* resolver off, not an IP client */
    conf_init(&off, -1, 1000);
    off.resolver.enabled = 0;
    expect(&off, "127.0.0.1", RESOLVER_UNAVAILABLE, NULL, "resolver off");
    conf_init(&off, -1, 1000);
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    rc = resolver_client_host(&off, (struct sockaddr *)&ss,
                              clock_now() + 1000, &host, err, sizeof(err));
    ok(rc == RESOLVER_UNAVAILABLE && host == NULL, "unix client: refused");
}

static void
test_cache(void)
{
    struct server_conf sc, v0, v1;
    unsigned long hits, misses;
    int q0;
    struct timespec ts = { 1, 200000000 };

    resolver_cache_flush();
    resolver_cache_stats(&hits, &misses);
    ok(hits == 0 && misses == 0, "cache: flushed");

    conf_init(&sc, -1, 1000);
    q0 = stub_questions();
    expect(&sc, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "cache: first lookup");
    is_int(stub_questions() - q0, 2, "cache: PTR and A asked");
    expect(&sc, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "cache: second lookup");
    is_int(stub_questions() - q0, 2, "cache: nothing asked the second time");
    resolver_cache_stats(&hits, &misses);
    ok(hits == 1 && misses == 1, "cache: 1 hit, 1 miss (%lu, %lu)", hits,
       misses);

    /* definite failures are cached, with their reason */
    q0 = stub_questions();
    expect(&sc, "127.0.0.10", RESOLVER_UNAVAILABLE, NULL,
           "cache: mismatch, first");
    expect(&sc, "127.0.0.10", RESOLVER_UNAVAILABLE, NULL,
           "cache: mismatch, second");
    is_int(stub_questions() - q0, 2, "cache: mismatch asked once");

    /* temporary failures are not */
    q0 = stub_questions();
    expect(&sc, "127.0.0.12", RESOLVER_TEMPUNAVAIL, NULL,
           "cache: servfail, first");
    expect(&sc, "127.0.0.12", RESOLVER_TEMPUNAVAIL, NULL,
           "cache: servfail, second");
    ok(stub_questions() - q0 >= 2, "cache: servfail asked again");

    /* the TTL rules when valid= is unset: short.example.test has TTL 1 */
    q0 = stub_questions();
    expect(&sc, "127.0.0.6", RESOLVER_OK, "short.example.test",
           "cache: TTL 1, first");
    expect(&sc, "127.0.0.6", RESOLVER_OK, "short.example.test",
           "cache: TTL 1, at once");
    is_int(stub_questions() - q0, 2, "cache: TTL 1, asked once so far");
    nanosleep(&ts, NULL);
    expect(&sc, "127.0.0.6", RESOLVER_OK, "short.example.test",
           "cache: TTL 1, after 1.2 s");
    is_int(stub_questions() - q0, 4, "cache: TTL 1, asked again");

    /* valid=0: nothing kept */
    conf_init(&v0, 0, 1000);
    q0 = stub_questions();
    expect(&v0, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "valid=0: first");
    expect(&v0, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "valid=0: second");
    is_int(stub_questions() - q0, 4, "valid=0: asked both times");

    /* valid=1 wins over the TTL of 300 */
    conf_init(&v1, 1, 1000);
    q0 = stub_questions();
    expect(&v1, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "valid=1: first");
    expect(&v1, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "valid=1: at once");
    is_int(stub_questions() - q0, 2, "valid=1: asked once so far");
    nanosleep(&ts, NULL);
    expect(&v1, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "valid=1: after 1.2 s");
    is_int(stub_questions() - q0, 4, "valid=1: asked again");
}

static void
test_lookup_host(void)
{
    struct server_conf sc;
    struct sockaddr_storage out[4];
    char err[256], text[INET6_ADDRSTRLEN];
    size_t n = 99;
    msec_t dt;
    int rc, q0;

    conf_init(&sc, -1, 1000);
    rc = resolver_lookup_host(&sc, "multi.example.test", clock_now() + 5000,
                              out, 4, &n, err, sizeof(err));
    ok(rc == 0 && n == 3, "lookup_host: A and AAAA (%zu, %s)", n,
       rc == 0 ? "" : err);
    if (rc == 0 && n == 3) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&out[0])->sin_addr, text,
                  sizeof(text));
        is_str(text, "192.0.2.10", "lookup_host: A first");
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&out[2])->sin6_addr,
                  text, sizeof(text));
        is_str(text, "2001:db8::11", "lookup_host: then AAAA");
    }
    rc = resolver_lookup_host(&sc, "multi.example.test", clock_now() + 5000,
                              out, 1, &n, err, sizeof(err));
    ok(rc == 0 && n == 1, "lookup_host: max respected");

    sc.resolver.ipv6 = 0;
    rc = resolver_lookup_host(&sc, "multi.example.test", clock_now() + 5000,
                              out, 4, &n, err, sizeof(err));
    ok(rc == 0 && n == 2, "lookup_host: ipv6=off gives A only");
    sc.resolver.ipv6 = 1;

    q0 = stub_questions();
    rc = resolver_lookup_host(&sc, "192.0.2.7", clock_now() + 5000, out, 4,
                              &n, err, sizeof(err));
    ok(rc == 0 && n == 1 && out[0].ss_family == AF_INET,
       "lookup_host: literal IPv4");
    rc = resolver_lookup_host(&sc, "2001:db8::7", clock_now() + 5000, out, 4,
                              &n, err, sizeof(err));
    ok(rc == 0 && n == 1 && out[0].ss_family == AF_INET6,
       "lookup_host: literal IPv6");
    is_int(stub_questions(), q0, "lookup_host: literals need no query");

    rc = resolver_lookup_host(&sc, "nowhere.example.test", clock_now() + 5000,
                              out, 4, &n, err, sizeof(err));
    ok(rc == -1 && n == 0, "lookup_host: unknown name (%s)", err);
    rc = resolver_lookup_host(&sc, "bad name\r\n", clock_now() + 5000, out,
                              4, &n, err, sizeof(err));
    ok(rc == -1 && strstr(err, "invalid") != NULL,
       "lookup_host: invalid name refused (%s)", err);
    is_int(stub_questions(), q0 + 2, "lookup_host: invalid name not sent");

    sc.resolver_timeout = 400;
    dt = clock_now();
    rc = resolver_lookup_host(&sc, "slowname.example.test",
                              clock_now() + 5000, out, 4, &n, err,
                              sizeof(err));
    dt = clock_now() - dt;
    ok(rc == -1 && dt >= 300 && strstr(err, "timed out") != NULL,
       "lookup_host: slow server, gave up after %lld ms (%s)",
       (long long)dt, err);
}

#define THREADS 4
#define ROUNDS 10

static int thread_failures;
static pthread_mutex_t thread_lock = PTHREAD_MUTEX_INITIALIZER;

/* A worker's life: the same lookups again and again, cache churning. */
static void *
thread_main(void *arg)
{
    static const char *const addrs[] = { "127.0.0.1", "::1", "127.0.0.2",
                                         "127.0.0.10" };
    static const char *const want[] = { "good.example.test",
                                        "good6.example.test", NULL, NULL };
    struct server_conf sc;
    struct sockaddr_storage ss;
    char err[256];
    char *host;
    int i, k, rc, bad = 0;

    conf_init(&sc, (int)(intptr_t)arg, 2000);
    for (i = 0; i < ROUNDS; i++) {
        k = i % 4;
        ss = addr(addrs[k]);
        host = NULL;
        rc = resolver_client_host(&sc, (struct sockaddr *)&ss,
                                  clock_now() + 5000, &host, err,
                                  sizeof(err));
        if (want[k] != NULL ? rc != RESOLVER_OK || strcmp(host, want[k]) != 0
            : rc != RESOLVER_UNAVAILABLE || host != NULL)
        {
            bad++;
        }
        free(host);
        if (i == ROUNDS / 2) {
            resolver_cache_flush();
        }
    }
    pthread_mutex_lock(&thread_lock);
    thread_failures += bad;
    pthread_mutex_unlock(&thread_lock);
    return NULL;
}

static void
test_threads(void)
{
    pthread_t t[THREADS];
    int i, started = 0;

    resolver_cache_flush();
    for (i = 0; i < THREADS; i++) {
        /* half the threads cache (TTL), half do not (valid=0) */
        if (pthread_create(&t[i], NULL, thread_main,
                           (void *)(intptr_t)(i % 2 ? 0 : -1)) == 0)
        {
            started++;
        }
    }
    for (i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
    }
    ok(started == THREADS && thread_failures == 0,
       "threads: %d x %d lookups, %d wrong", started, ROUNDS,
       thread_failures);
}

/* With the stub gone, cached names still answer; others fail quickly. */
static void
test_stub_gone(void)
{
    struct server_conf sc;
    struct sockaddr_storage ss = addr("::1");
    char err[256] = "";
    char *host = NULL;
    int rc;

    conf_init(&sc, -1, 1000);
    resolver_cache_flush();
    expect(&sc, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "before the stub stops");
    stub_stop();
    expect(&sc, "127.0.0.1", RESOLVER_OK, "good.example.test",
           "stub stopped: answered from the cache");
    /* an uncached address: the closed port refuses the question, so the
     * lookup fails at once instead of running into resolver_timeout */
    rc = resolver_client_host(&sc, (struct sockaddr *)&ss, clock_now() + 10000,
                              &host, err, sizeof(err));
    ok(rc == RESOLVER_TEMPUNAVAIL && host == NULL && err[0] != '\0'
       && strstr(err, "timed out") == NULL && strpbrk(err, "\r\n") == NULL,
       "stub stopped: uncached ::1 refused, not left to time out (%s)", err);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (access(PYTHON, X_OK) != 0) {
        printf("1..0 # SKIP %s not found\n", PYTHON);
        return 0;
    }
    if (stub_start() != 0) {
        ok(0, "dnsstub.py started");
        stub_stop();
        unlink(stub_log);
        return tap_done();
    }
    ok(1, "dnsstub.py listens on %s", server_text);
    test_lookups();
    test_cache();
    test_lookup_host();
    test_threads();
    test_stub_gone();
    stub_stop();
    unlink(stub_log);
    return tap_done();
}
