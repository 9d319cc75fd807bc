/*
 * main.c - postern's main thread: options, configuration, binding,
 * privileges, the worker/relay/acceptor threads, and the signal loop.
 *
 * Signals belong to this thread alone: they are blocked before any thread
 * starts and taken with sigwait():
 *   HUP  reload (a bad new configuration leaves the old one running)
 *   USR1 reopen log files
 *   TERM, INT  fast stop      QUIT  graceful stop
 * During a graceful stop the main thread keeps taking them (drain()): TERM
 * and INT make the stop fast, USR1 still reopens the logs, HUP is ignored.
 */
#include <errno.h>
#include <getopt.h>
#include <libconfig.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/gnutls.h>

#include "conf.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "process.h"
#include "relay.h"
#include "tls.h"

#define DEFAULT_CONF POSTERN_SYSCONFDIR "/postern/postern.conf"

struct options {
    const char *conf;
    int test, dump, foreground;
    const char *signal;
};

/* -h */
static void
usage(FILE *out)
{
    fprintf(out,
        "Usage: postern [-hvVtTf] [-c file] [-s signal]\n"
        "\n"
        "Options:\n"
        "  -h            this help\n"
        "  -v            show version and exit\n"
        "  -V            show version and build options and exit\n"
        "  -t            test the configuration and exit\n"
        "  -T            test the configuration, print it and exit\n"
        "  -f            stay in the foreground (overrides daemon = true)\n"
        "  -s signal     send a signal to the running postern: stop, quit, reload, reopen\n"
        "  -c file       use this configuration file (default: %s)\n",
        DEFAULT_CONF);
}

/* -V */
static void
version(int full)
{
    printf("postern version: postern/%s\n", PACKAGE_VERSION);
    if (full) {
        printf("built with GnuTLS %s (running with %s), libconfig %d.%d.%d\n",
               GNUTLS_VERSION, gnutls_check_version(NULL),
               LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
        printf("configure arguments: %s\n", POSTERN_CONFIGURE_ARGS);
    }
}

/* Open every log of a configuration (top level and each server's). */
static int
open_logs(struct conf *c, char *err, size_t errlen)
{
    if (c->error_log != NULL && log_open(c->error_log, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < c->nservers; i++) {
        struct log *lg = c->servers[i].error_log;

        if (lg != NULL && lg != c->error_log && log_open(lg, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * As root with `user` set, just before the switch: the log files opened
 * at start-up become that user's, since a reload and USR1 open them again
 * after the switch.  An unknown user is left to the switch to report.
 */
static void
chown_logs(struct conf *c)
{
    char err[1024];
    uid_t uid;
    gid_t gid;

    if (c->user == NULL || c->user[0] == '\0' || geteuid() != 0
        || process_lookup_user(c->user, c->group, &uid, &gid, err,
                               sizeof(err)) != 0) {
        return;
    }
    log_chown(c->error_log, uid);
    for (size_t i = 0; i < c->nservers; i++) {
        if (c->servers[i].error_log != c->error_log) {
            log_chown(c->servers[i].error_log, uid);
        }
    }
}

/*
 * -t beyond the file itself: what start-up would still refuse, as NGINX's
 * -t does.  Each log file is opened for appending (and closed with the
 * configuration).  (Loading already looked up `user` when run as root.)
 */
static int
test_start_up(struct conf *c, char *err, size_t errlen)
{
    return open_logs(c, err, errlen);
}

/* -s: signal the running instance through the pid file. */
static int
send_signal(const char *conf_path, const char *name)
{
    static const struct { const char *name; int sig; } sigs[] = {
        { "stop", SIGTERM }, { "quit", SIGQUIT }, { "reload", SIGHUP },
        { "reopen", SIGUSR1 },
    };
    char err[1024];
    struct conf *c;
    pid_t pid;
    int sig = 0;

    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (strcmp(name, sigs[i].name) == 0) {
            sig = sigs[i].sig;
        }
    }
    if (sig == 0) {
        fprintf(stderr, "postern: invalid option: \"-s %s\"\n", name);
        return 1;
    }
    c = conf_load(conf_path, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "postern: [emerg] %s\n", err);
        return 1;
    }
    pid = pidfile_read(c->pid, err, sizeof(err));
    conf_unref(c);
    if (pid <= 0) {
        fprintf(stderr, "postern: [error] %s\n", err);
        return 1;
    }
    if (kill(pid, sig) != 0) {
        fprintf(stderr, "postern: [alert] kill(%ld, %d) failed (%s)\n",
                (long)pid, sig, strerror(errno));
        return 1;
    }
    return 0;
}

/* One warning for a top-level setting the reload cannot apply. */
static void
restart_only(const char *name, const char *was, const char *now)
{
    if (strcmp(was, now) != 0) {
        log_g(LOG_LV_WARN, "\"%s\" changed from %s to %s, which takes "
              "effect after a restart", name, was, now);
    }
}

/* An int setting as text; none_text (if not NULL) stands for `none`, the
 * value that means unset or auto. */
static const char *
int_text(char *buf, size_t len, int v, int none, const char *none_text)
{
    if (none_text != NULL && v == none) {
        return none_text;
    }
    snprintf(buf, len, "%d", v);
    return buf;
}

/* "USER [GROUP]" as written, or "unset". */
static const char *
user_text(char *buf, size_t len, const struct conf *c)
{
    if (c->user == NULL) {
        return "unset";
    }
    snprintf(buf, len, "\"%s%s%s\"", c->user, c->group != NULL ? " " : "",
             c->group != NULL ? c->group : "");
    return buf;
}

/*
 * The threads, the open-file limit, the user and daemon mode are set up
 * once at start-up: a reload that changes them says so rather than
 * ignoring them silently.
 */
static void
warn_restart_settings(const struct conf *old, const struct conf *next)
{
    char a[300], b[300];

    restart_only("worker_threads",
                 int_text(a, sizeof(a), old->worker_threads, 0, NULL),
                 int_text(b, sizeof(b), next->worker_threads, 0, NULL));
    restart_only("relay_threads",
                 int_text(a, sizeof(a), old->relay_threads, 0, "auto"),
                 int_text(b, sizeof(b), next->relay_threads, 0, "auto"));
    restart_only("worker_rlimit_nofile",
                 int_text(a, sizeof(a), old->worker_rlimit_nofile, -1, "unset"),
                 int_text(b, sizeof(b), next->worker_rlimit_nofile, -1, "unset"));
    restart_only("user", user_text(a, sizeof(a), old),
                 user_text(b, sizeof(b), next));
    restart_only("daemon", old->daemon ? "on" : "off",
                 next->daemon ? "on" : "off");
}

/* HUP: load, bind and switch; the old configuration stays on any error. */
static void
reload(struct conf **cur)
{
    char err[1024];
    struct conf *next;
    struct listener_set *set, *old;
    int new_pid;

    log_g(LOG_LV_NOTICE, "signal 1 (SIGHUP) received, reconfiguring");
    next = conf_load((*cur)->path, err, sizeof(err));
    if (next == NULL) {
        log_g(LOG_LV_ERR, "reload failed, old configuration kept: %s", err);
        return;
    }
    if (open_logs(next, err, sizeof(err)) != 0) {
        goto fail;
    }
    /* a larger worker_connections must find room in the queue too */
    if (pool_grow((size_t)next->worker_connections) != 0) {
        snprintf(err, sizeof(err), "out of memory for a queue of %d "
                 "worker_connections", next->worker_connections);
        goto fail;
    }
    /* the new pid file first: `-s` and a second start look for it there
     * (another name for the same file is no new one: written and then
     * removed as the old, it would be gone) */
    new_pid = strcmp(next->pid, (*cur)->pid) != 0
              && !pidfile_same(next->pid, (*cur)->pid);
    if (new_pid && pidfile_write(next->pid, err, sizeof(err)) != 0) {
        goto fail;
    }
    /* the acceptor still uses the old set: take over its sockets */
    old = acceptor_swap(NULL);
    set = listeners_open(next, old, err, sizeof(err));
    if (set == NULL) {
        acceptor_swap(old);
        if (new_pid) {
            pidfile_remove(next->pid);
        }
        goto fail;
    }
    acceptor_swap(set);
    log_set_global(next->error_log);
    listeners_close(&old);
    if (new_pid) {
        pidfile_remove((*cur)->pid);
    }
    if (next->worker_connections != (*cur)->worker_connections) {
        process_check_nofile(next->worker_connections,
                             listeners_sockets(set));
    }
    warn_restart_settings(*cur, next);
    if (next->shutdown_timeout >= 0) {
        relay_set_deadline(next, clock_now() + next->shutdown_timeout);
    }
    conf_unref(*cur);
    *cur = next;
    log_g(LOG_LV_NOTICE, "reconfigured from \"%s\"", next->path);
    return;

fail:
    log_g(LOG_LV_ERR, "reload failed, old configuration kept: %s", err);
    conf_unref(next);
}

/* USR1: reopen every log file of the configuration. */
static void
reopen_logs(struct conf *c)
{
    log_g(LOG_LV_NOTICE, "signal 10 (SIGUSR1) received, reopening logs");
    log_reopen(c->error_log);
    for (size_t i = 0; i < c->nservers; i++) {
        if (c->servers[i].error_log != c->error_log) {
            log_reopen(c->servers[i].error_log);
        }
    }
}

/*
 * During a graceful stop: wait up to 50 ms for a signal and act on it.
 * 1 when TERM/INT asks for a fast stop.  The short wait lets the caller
 * look at its sessions and deadline between signals.
 */
static int
drain_signal(const sigset_t *set, struct conf *c)
{
    struct timespec ts = { 0, 50 * 1000000L };
    int sig = sigtimedwait(set, NULL, &ts);

    if (sig == SIGTERM || sig == SIGINT) {
        log_g(LOG_LV_NOTICE, "signal %d (%s) received during graceful shutdown, "
              "exiting now", sig, sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return 1;
    }
    if (sig == SIGUSR1) {
        reopen_logs(c);
    } else if (sig == SIGHUP) {
        log_g(LOG_LV_NOTICE, "signal 1 (SIGHUP) received during graceful "
              "shutdown, ignored");
    } else if (sig == SIGQUIT) {
        log_g(LOG_LV_NOTICE, "signal 3 (SIGQUIT) received, already shutting "
              "down gracefully");
    }
    return 0;
}

/*
 * QUIT: the workers finish the sessions they have and the queue, then
 * relayed sessions go on until they end or shutdown_timeout passes.  The
 * main thread still takes signals meanwhile: TERM or INT turns the drain
 * into a fast stop, as in NGINX, since a relayed IMAP IDLE may last hours.
 */
static void
drain(const sigset_t *set, struct conf *c)
{
    msec_t until = c->shutdown_timeout >= 0
                   ? clock_now() + c->shutdown_timeout : DEADLINE_NONE;
    int fast = 0;

    pool_shutdown(0);
    while (!fast && pool_busy() > 0 && clock_now() < until) {
        fast = drain_signal(set, c);
    }
    pool_shutdown(1);               /* what is left past the deadline ends */
    pool_join();
    if (fast) {
        return;                     /* relay_stop() ends the relayed ones */
    }
    if (until != DEADLINE_NONE) {
        relay_set_deadline(NULL, until);
    }
    while (relay_count() > 0 && !drain_signal(set, c)) {
        /* each turn waits for a signal at most 50 ms */
    }
}

/* relay_threads, with "auto" (0) as the number of online CPUs. */
static int
relay_thread_count(const struct conf *c)
{
    long ncpu;

    if (c->relay_threads > 0) {
        return c->relay_threads;
    }
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    return ncpu < 1 ? 1 : ncpu > 1024 ? 1024 : (int)ncpu;
}

/* Run until TERM/INT/QUIT. */
static int
serve(struct conf **cur, const struct options *opt)
{
    sigset_t set;
    char err[1024];
    struct listener_set *ls;
    size_t nlisten = 0;
    int sig, fast = 1, nrelay = relay_thread_count(*cur);

    if (open_logs(*cur, err, sizeof(err)) != 0) {
        fprintf(stderr, "postern: [emerg] %s\n", err);
        return 1;
    }
    if (process_set_nofile((*cur)->worker_rlimit_nofile, err, sizeof(err)) != 0) {
        log_g(LOG_LV_ALERT, "%s", err);
    }
    ls = listeners_open(*cur, NULL, err, sizeof(err));
    if (ls == NULL) {
        log_g(LOG_LV_EMERG, "%s", err);
        if (log_global() != NULL) {
            fprintf(stderr, "postern: [emerg] %s\n", err);
        }
        return 1;
    }
    nlisten = listeners_sockets(ls);
    process_check_nofile((*cur)->worker_connections, nlisten);

    if ((*cur)->daemon && !opt->foreground && process_daemonize() != 0) {
        log_g(LOG_LV_EMERG, "fork() failed: %s", strerror(errno));
        listeners_close(&ls);
        return 1;
    }
    /* from the moment the pid file names us, signals must wait for sigwait():
     * a TERM that arrived earlier would kill us with the pid file left */
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (pidfile_write((*cur)->pid, err, sizeof(err)) != 0) {
        log_g(LOG_LV_EMERG, "%s", err);
        fprintf(stderr, "postern: [emerg] %s\n", err);
        listeners_close(&ls);
        process_ready(1);
        return 1;
    }
    chown_logs(*cur);
    if (process_drop_privileges((*cur)->user, (*cur)->group, err, sizeof(err)) != 0) {
        log_g(LOG_LV_EMERG, "%s", err);
        fprintf(stderr, "postern: [emerg] %s\n", err);
        pidfile_remove((*cur)->pid);
        listeners_close(&ls);
        process_ready(1);
        return 1;
    }

    if (relay_start(nrelay) != 0
        || pool_start((*cur)->worker_threads, (size_t)(*cur)->worker_connections) != 0
        || acceptor_start(ls) != 0) {
        pidfile_remove((*cur)->pid);
        process_ready(1);
        return 1;
    }
    log_g(LOG_LV_NOTICE, "postern/%s started: %zu listening sockets, %d workers, %d relay threads",
          PACKAGE_VERSION, nlisten, (*cur)->worker_threads, nrelay);
    process_ready(0);

    sigdelset(&set, SIGPIPE);
    for (;;) {
        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            reload(cur);
        } else if (sig == SIGUSR1) {
            reopen_logs(*cur);
        } else if (sig == SIGQUIT) {
            log_g(LOG_LV_NOTICE, "signal 3 (SIGQUIT) received, shutting down gracefully");
            fast = 0;
            break;
        } else {
            log_g(LOG_LV_NOTICE, "signal %d (%s) received, exiting", sig,
                  sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
    }

    ls = acceptor_stop();
    listeners_close(&ls);
    if (fast) {
        pool_shutdown(1);
        pool_join();
    } else {
        drain(&set, *cur);
    }
    relay_stop();
    pidfile_remove((*cur)->pid);
    log_g(LOG_LV_NOTICE, "exit");
    return 0;
}

int
main(int argc, char **argv)
{
    struct options opt = { .conf = DEFAULT_CONF };
    char err[1024];
    struct conf *c;
    int ch, rc;

    while ((ch = getopt(argc, argv, "c:tTfs:vVh")) != -1) {
        switch (ch) {
        case 'c': opt.conf = optarg; break;
        case 't': opt.test = 1; break;
        case 'T': opt.test = 1; opt.dump = 1; break;
        case 'f': opt.foreground = 1; break;
        case 's': opt.signal = optarg; break;
        case 'v': version(0); return 0;
        case 'V': version(1); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "postern: invalid argument: \"%s\"\n", argv[optind]);
        usage(stderr);
        return 1;
    }
    if (opt.signal != NULL) {
        return send_signal(opt.conf, opt.signal);
    }
    (void)process_tune_malloc();    /* before GnuTLS and the threads */
    (void)process_tune_sched();     /* before the threads: they inherit it */
    if (tls_global_init() != 0) {
        fprintf(stderr, "postern: [emerg] GnuTLS initialisation failed\n");
        return 1;
    }
    c = conf_load(opt.conf, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "postern: [emerg] %s\n", err);
        if (opt.test) {
            fprintf(stderr, "postern: configuration file %s test failed\n", opt.conf);
        }
        tls_global_deinit();
        return 1;
    }
    if (opt.test && test_start_up(c, err, sizeof(err)) != 0) {
        fprintf(stderr, "postern: [emerg] %s\n", err);
        fprintf(stderr, "postern: configuration file %s test failed\n", opt.conf);
        conf_unref(c);
        tls_global_deinit();
        return 1;
    }
    if (opt.test) {
        fprintf(stderr, "postern: the configuration file %s syntax is ok\n", opt.conf);
        fprintf(stderr, "postern: configuration file %s test is successful\n", opt.conf);
        if (opt.dump) {
            conf_dump(c, stdout);
        }
        conf_unref(c);
        tls_global_deinit();
        return 0;
    }
    {
        pid_t other = pidfile_read(c->pid, err, sizeof(err));

        /* a stale file may hold the pid we were given (always 1 as a
         * container's first process): that is no other postern */
        if (other > 0 && other != getpid()) {
            fprintf(stderr, "postern: [emerg] another postern (pid %ld) is running: \"%s\"\n",
                    (long)other, c->pid);
            conf_unref(c);
            tls_global_deinit();
            return 1;
        }
    }
    log_set_global(c->error_log);
    rc = serve(&c, &opt);
    log_set_global(NULL);
    conf_unref(c);
    tls_global_deinit();
    return rc;
}
