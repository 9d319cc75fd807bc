/*
 * log.c - error_log targets in NGINX's line format.
 *
 *   2026/11/20 12:00:00 [info] PID#TID: *CONN message
 *
 * Targets: a file (reopened on USR1), stderr, or syslog over UDP or a
 * unix datagram socket (RFC 3164 framing, as NGINX sends it).  Lines are
 * formatted into a stack buffer and written with one write(2)/send(2), so
 * concurrent threads never interleave.  The target list is immutable after
 * configuration; only file descriptors change on reopen (an atomic swap).
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "str.h"

#define LOG_LINE_MAX 4096
#define LOG_TARGETS_MAX 8

enum target_kind { T_FILE, T_STDERR, T_SYSLOG };

struct target {
    enum target_kind kind;
    int level;
    char *path;                 /* T_FILE */
    atomic_int fd;              /* T_FILE, T_SYSLOG; -1 until opened */
    struct sockaddr_storage sa; /* T_SYSLOG */
    socklen_t salen;
    int facility, severity;     /* T_SYSLOG; severity -1: from the line */
    char *tag;
    int nohostname;
    char host[256];             /* T_SYSLOG: looked up once */
};

struct log {
    /* writers hold it shared; reopen holds it exclusively, so no thread
     * writes to a descriptor while it is being replaced */
    pthread_rwlock_t reopen;
    size_t n;
    struct target t[LOG_TARGETS_MAX];
};

static const char *const level_names[] = {
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"
};

/* log_g() writes to the global log holding this lock, and log_set_global()
 * swaps it holding it too: once the swap returns, no thread still writes to
 * the log it replaced, which a reload then frees with the old configuration.
 * A mutex, not a rwlock: glibc's readers would starve the swap when threads
 * log back to back, and the kernel serializes the writes anyway. */
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log *global_log;

/* Name -> level, or -1. */
int
log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_LV_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Level -> NGINX's name. */
const char *
log_level_name(enum log_level lv)
{
    return (unsigned)lv <= LOG_LV_DEBUG ? level_names[lv] : "unknown";
}

/* An empty log (writes nowhere until targets are added). */
struct log *
log_new(void)
{
    struct log *lg = calloc(1, sizeof(struct log));

    if (lg != NULL) {
        pthread_rwlock_init(&lg->reopen, NULL);
    }
    return lg;
}

static const struct { const char *name; int code; } facilities[] = {
    { "kern", 0 }, { "user", 1 }, { "mail", 2 }, { "daemon", 3 },
    { "auth", 4 }, { "intern", 5 }, { "lpr", 6 }, { "news", 7 },
    { "uucp", 8 }, { "clock", 9 }, { "authpriv", 10 }, { "ftp", 11 },
    { "ntp", 12 }, { "audit", 13 }, { "alert", 14 }, { "cron", 15 },
    { "local0", 16 }, { "local1", 17 }, { "local2", 18 }, { "local3", 19 },
    { "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};

/* Resolve "ADDR[:PORT]" or "unix:/path" for syslog into t->sa. */
static int
syslog_server(struct target *t, const char *v, char *err, size_t errlen)
{
    char host[256], port[16] = "514";
    const char *colon;
    struct addrinfo hints = { 0 }, *res = NULL;
    int rc;

    if (strncmp(v, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&t->sa;

        un->sun_family = AF_UNIX;
        if (str_lcpy(un->sun_path, v + 5, sizeof(un->sun_path))
            >= sizeof(un->sun_path)) {
            snprintf(err, errlen, "syslog server path too long: \"%s\"", v);
            return -1;
        }
        t->salen = sizeof(*un);
        return 0;
    }
    if (v[0] == '[') {
        const char *end = strchr(v, ']');

        if (end == NULL || (size_t)(end - v - 1) >= sizeof(host)) {
            snprintf(err, errlen, "invalid syslog server \"%s\"", v);
            return -1;
        }
        memcpy(host, v + 1, (size_t)(end - v - 1));
        host[end - v - 1] = '\0';
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(v, ':');
        size_t hl = colon ? (size_t)(colon - v) : strlen(v);
        if (hl == 0 || hl >= sizeof(host)) {
            snprintf(err, errlen, "invalid syslog server \"%s\"", v);
            return -1;
        }
        memcpy(host, v, hl);
        host[hl] = '\0';
    }
    if (colon != NULL) {
        unsigned short num;

        if (str_parse_port(colon + 1, strlen(colon + 1), &num) != 0) {
            snprintf(err, errlen, "invalid syslog port in \"%s\"", v);
            return -1;
        }
        str_lcpy(port, colon + 1, sizeof(port));
    }
    hints.ai_socktype = SOCK_DGRAM;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "syslog server \"%s\": %s", v, gai_strerror(rc));
        return -1;
    }
    memcpy(&t->sa, res->ai_addr, res->ai_addrlen);
    t->salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Parse "syslog:server=A[,facility=F][,tag=T][,severity=L][,nohostname]". */
static int
parse_syslog(struct target *t, const char *spec, char *err, size_t errlen)
{
    char *copy = strdup(spec), *save = NULL, *tok;
    int have_server = 0, rc = -1;

    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->kind = T_SYSLOG;
    t->facility = 23;           /* local7, NGINX's default */
    t->severity = -1;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strncmp(tok, "server=", 7) == 0) {
            if (syslog_server(t, tok + 7, err, errlen) != 0) {
                goto out;
            }
            have_server = 1;
        } else if (strncmp(tok, "facility=", 9) == 0) {
            size_t i;
            for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++) {
                if (strcmp(facilities[i].name, tok + 9) == 0) {
                    break;
                }
            }
            if (i == sizeof(facilities) / sizeof(facilities[0])) {
                snprintf(err, errlen, "unknown syslog facility \"%s\"", tok + 9);
                goto out;
            }
            t->facility = facilities[i].code;
        } else if (strncmp(tok, "tag=", 4) == 0) {
            free(t->tag);
            t->tag = strdup(tok + 4);
            if (t->tag == NULL || strlen(t->tag) > 32 || t->tag[0] == '\0') {
                snprintf(err, errlen, "syslog tag must have 1 to 32 characters");
                goto out;
            }
        } else if (strncmp(tok, "severity=", 9) == 0) {
            t->severity = log_level_parse(tok + 9);
            if (t->severity < 0) {
                snprintf(err, errlen, "unknown syslog severity \"%s\"", tok + 9);
                goto out;
            }
        } else if (strcmp(tok, "nohostname") == 0) {
            t->nohostname = 1;
        } else {
            snprintf(err, errlen, "unknown syslog parameter \"%s\"", tok);
            goto out;
        }
    }
    if (!have_server) {
        snprintf(err, errlen, "syslog needs server=");
        goto out;
    }
    if (!t->nohostname && gethostname(t->host, sizeof(t->host) - 1) != 0) {
        str_lcpy(t->host, "localhost", sizeof(t->host));
    }
    if (t->tag == NULL && (t->tag = strdup("postern")) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

/* Add a target from "FILE [LEVEL]". */
int
log_add_target(struct log *lg, const char *spec, const char *dir,
               char *err, size_t errlen)
{
    char file[1024];
    const char *sp = strchr(spec, ' ');
    size_t flen = sp ? (size_t)(sp - spec) : strlen(spec);
    struct target *t;
    int level = LOG_LV_ERR;

    if (lg->n == LOG_TARGETS_MAX) {
        snprintf(err, errlen, "too many log targets (at most %d)", LOG_TARGETS_MAX);
        return -1;
    }
    if (flen == 0 || flen >= sizeof(file)) {
        snprintf(err, errlen, "invalid log file in \"%s\"", spec);
        return -1;
    }
    memcpy(file, spec, flen);
    file[flen] = '\0';
    if (sp != NULL) {
        while (*sp == ' ') {
            sp++;
        }
        if (*sp != '\0') {
            level = log_level_parse(sp);
            if (level < 0) {
                snprintf(err, errlen, "unknown log level \"%s\"", sp);
                return -1;
            }
        }
    }
    t = &lg->t[lg->n];
    memset(t, 0, sizeof(*t));
    atomic_init(&t->fd, -1);
    t->level = level;
    if (strcmp(file, "stderr") == 0) {
        t->kind = T_STDERR;
    } else if (strncmp(file, "syslog:", 7) == 0) {
        if (parse_syslog(t, file + 7, err, errlen) != 0) {
            free(t->tag);
            return -1;
        }
    } else {
        t->kind = T_FILE;
        if (file[0] == '/' || dir == NULL) {
            t->path = strdup(file);
        } else {
            size_t n = strlen(dir) + 1 + flen + 1;
            t->path = malloc(n);
            if (t->path != NULL) {
                snprintf(t->path, n, "%s/%s", dir, file);
            }
        }
        if (t->path == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    lg->n++;
    return 0;
}

/* Open (or reopen) one target's descriptor. */
static int
target_open(struct target *t, char *err, size_t errlen)
{
    int fd, old;

    if (t->kind == T_FILE) {
        fd = open(t->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "open() \"%s\" failed: %s", t->path, strerror(errno));
            return -1;
        }
    } else if (t->kind == T_SYSLOG) {
        fd = socket(t->sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            snprintf(err, errlen, "syslog socket() failed: %s", strerror(errno));
            return -1;
        }
    } else {
        return 0;
    }
    old = atomic_exchange(&t->fd, fd);
    if (old >= 0) {
        close(old);
    }
    return 0;
}

/* Open every target; first error wins. */
int
log_open(struct log *lg, char *err, size_t errlen)
{
    for (size_t i = 0; i < lg->n; i++) {
        if (target_open(&lg->t[i], err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * Reopen files (USR1, after log rotation).  A file that cannot be opened
 * keeps its old descriptor, and the other targets are reopened all the
 * same; each failure is logged once the lock is released (the global log
 * may be this one).
 */
int
log_reopen(struct log *lg)
{
    char err[LOG_TARGETS_MAX][512];
    size_t nerr = 0;

    if (lg == NULL) {
        return 0;
    }
    pthread_rwlock_wrlock(&lg->reopen);
    for (size_t i = 0; i < lg->n; i++) {
        if (lg->t[i].kind == T_FILE
            && target_open(&lg->t[i], err[nerr], sizeof(err[nerr])) != 0) {
            nerr++;
        }
    }
    pthread_rwlock_unlock(&lg->reopen);
    for (size_t i = 0; i < nerr; i++) {
        log_g(LOG_LV_ALERT, "%s", err[i]);
    }
    return nerr == 0 ? 0 : -1;
}

/*
 * Make uid the owner of the log's open regular files; their group stays,
 * so that the readers it lets in (adm) keep reading.  Called as root just
 * before the switch to `user`, so that a reload and USR1, which open the
 * files again as that user, still can (NGINX gives reopened logs to its
 * worker user the same way).  Other files (/dev/null, a FIFO) are left
 * alone.  Each failure is logged; 0 / -1.
 */
int
log_chown(struct log *lg, uid_t uid)
{
    int rc = 0;

    if (lg == NULL) {
        return 0;
    }
    for (size_t i = 0; i < lg->n; i++) {
        struct target *t = &lg->t[i];
        int fd = atomic_load(&t->fd);
        struct stat st;

        if (t->kind != T_FILE || fd < 0 || fstat(fd, &st) != 0
            || !S_ISREG(st.st_mode) || st.st_uid == uid) {
            continue;
        }
        if (fchown(fd, uid, (gid_t)-1) != 0) {
            log_g(LOG_LV_WARN, "fchown() \"%s\" to %ld failed (%s): "
                  "after the switch to \"user\", a reload or reopen cannot "
                  "open it", t->path, (long)uid, strerror(errno));
            rc = -1;
        }
    }
    return rc;
}

/* Close and free; *lg becomes NULL. */
void
log_free(struct log **lg)
{
    if (*lg == NULL) {
        return;
    }
    /* a log freed while still installed (an error path): stderr again */
    pthread_mutex_lock(&global_lock);
    if (global_log == *lg) {
        global_log = NULL;
    }
    pthread_mutex_unlock(&global_lock);
    for (size_t i = 0; i < (*lg)->n; i++) {
        struct target *t = &(*lg)->t[i];
        int fd = atomic_load(&t->fd);

        if (fd >= 0) {
            close(fd);
        }
        free(t->path);
        free(t->tag);
    }
    pthread_rwlock_destroy(&(*lg)->reopen);
    free(*lg);
    *lg = NULL;
}

/* The most verbose level any target accepts (to skip formatting early). */
int
log_max_level(const struct log *lg)
{
    int max = -1;

    if (lg == NULL) {
        return LOG_LV_NOTICE;
    }
    for (size_t i = 0; i < lg->n; i++) {
        if (lg->t[i].level > max) {
            max = lg->t[i].level;
        }
    }
    return max;
}

/* The process-wide log: stderr at notice until a configuration sets one.
 * For the thread that installs it; any other thread writes through log_g(),
 * as the pointer may be freed once it is replaced. */
struct log *
log_global(void)
{
    struct log *lg;

    pthread_mutex_lock(&global_lock);
    lg = global_log;
    pthread_mutex_unlock(&global_lock);
    return lg;
}

/* Install the process-wide log (not owned); waits for the lines being
 * written to the one it replaces. */
void
log_set_global(struct log *lg)
{
    pthread_mutex_lock(&global_lock);
    global_log = lg;
    pthread_mutex_unlock(&global_lock);
}

/* One line to the process-wide log, which cannot be replaced meanwhile. */
void
log_g(enum log_level lv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pthread_mutex_lock(&global_lock);
    log_vwrite(global_log, lv, 0, fmt, ap);
    pthread_mutex_unlock(&global_lock);
    va_end(ap);
}

/* Replace bytes that would break a log line. */
static void
sanitize(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '\0') {
            s[i] = ' ';
        }
    }
}

/* Format one line and hand it to every target that takes its level. */
void
log_vwrite(const struct log *lg, enum log_level lv, uint64_t conn,
           const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    char sysline[LOG_LINE_MAX + 128];
    struct timespec ts;
    struct tm tm;
    size_t head, n;
    int r;
    static _Thread_local long tid;

    if (lg == NULL) {
        /* before any configuration: stderr, notice and above */
        if (lv > LOG_LV_NOTICE) {
            return;
        }
    } else if ((int)lv > log_max_level(lg)) {
        return;
    }
    if (tid == 0) {
        tid = (long)syscall(SYS_gettid);     /* once per thread */
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, " [%s] %ld#%ld: ",
                 log_level_name(lv), (long)getpid(), tid);
    n += (size_t)r;
    head = n;
    if (conn != 0) {
        r = snprintf(line + n, sizeof(line) - n, "*%llu ", (unsigned long long)conn);
        n += (size_t)r;
    }
    r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (r < 0) {
        r = 0;
    }
    n += (size_t)r < sizeof(line) - n - 1 ? (size_t)r : sizeof(line) - n - 2;
    sanitize(line + head, n - head);
    line[n++] = '\n';

    if (lg == NULL) {
        if (write(STDERR_FILENO, line, n) < 0) {
            /* nowhere left to report it */
        }
        return;
    }
    pthread_rwlock_rdlock((pthread_rwlock_t *)&lg->reopen);
    for (size_t i = 0; i < lg->n; i++) {
        const struct target *t = &lg->t[i];
        int fd;

        if ((int)lv > t->level) {
            continue;
        }
        switch (t->kind) {
        case T_STDERR:
            if (write(STDERR_FILENO, line, n) < 0) {
                /* ignore */
            }
            break;
        case T_FILE:
            fd = atomic_load(&t->fd);
            if (fd >= 0 && write(fd, line, n) < 0) {
                /* ignore: a full disk must not stop the proxy */
            }
            break;
        case T_SYSLOG: {
            char stamp[32];
            int sev = t->severity >= 0 ? t->severity : (int)lv;
            int m;

            fd = atomic_load(&t->fd);
            if (fd < 0) {
                break;
            }
            strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
            /* syslog gets the message without the timestamp NGINX puts first */
            m = snprintf(sysline, sizeof(sysline), "<%d>%s %s%s%s: %.*s",
                         t->facility * 8 + sev, stamp, t->host,
                         t->nohostname ? "" : " ", t->tag,
                         (int)(n - 1 - 20), line + 20);
            if (m > 0) {
                sendto(fd, sysline, (size_t)m < sizeof(sysline) ? (size_t)m
                       : sizeof(sysline) - 1, MSG_DONTWAIT,
                       (const struct sockaddr *)&t->sa, t->salen);
            }
            break;
        }
        }
    }
    pthread_rwlock_unlock((pthread_rwlock_t *)&lg->reopen);
}

/* printf-style front end. */
void
log_write(const struct log *lg, enum log_level lv, uint64_t conn,
          const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(lg, lv, conn, fmt, ap);
    va_end(ap);
}
