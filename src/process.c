/*
 * process.c - daemonising, the pid file, rlimits, the allocator's
 * thresholds, the scheduling policy and the privilege drop.
 * Runs in the main thread before the other threads start (except
 * pidfile_read for `-s`).  Privilege order as OpenSMTPD: everything that
 * needs root is done by the caller first (bind, keys, logs, pid file).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "process.h"

static int ready_fd = -1;

/* The first bytes of a /proc comm file into buf: their count, or -1. */
static ssize_t
read_comm(const char *path, char *buf, size_t len)
{
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, len);
    close(fd);
    return n;
}

/*
 * Whether pid runs the same program as we do.  A pid file that outlived
 * its process (postern, once it has dropped root, may not be allowed to
 * remove it) can name a pid the system has since given to something else;
 * `-s stop` must not signal that, nor the next start refuse over it.
 * Where /proc cannot say, the process counts as ours.
 */
static int
same_program(pid_t pid)
{
    char path[64], theirs[32], ours[32];
    ssize_t a, b;

    snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
    a = read_comm(path, theirs, sizeof(theirs));
    b = read_comm("/proc/self/comm", ours, sizeof(ours));
    return a <= 0 || b <= 0 || (a == b && memcmp(theirs, ours, (size_t)a) == 0);
}

/* The pid a pid file names, if that process is alive and is a postern. */
pid_t
pidfile_read(const char *path, char *err, size_t errlen)
{
    char text[32];
    ssize_t n;
    long pid;
    char *end;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "open() \"%s\" failed (%s)", path, strerror(errno));
        return 0;
    }
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0) {
        snprintf(err, errlen, "invalid PID number \"\" in \"%s\"", path);
        return 0;
    }
    text[n] = '\0';
    pid = strtol(text, &end, 10);
    if (pid <= 0 || (*end != '\n' && *end != '\0')) {
        snprintf(err, errlen, "invalid PID number \"%s\" in \"%s\"", text, path);
        return 0;
    }
    if ((kill((pid_t)pid, 0) != 0 && errno == ESRCH) || !same_program((pid_t)pid)) {
        snprintf(err, errlen, "no postern process %ld named in \"%s\"", pid, path);
        return 0;
    }
    return (pid_t)pid;
}

/* Write our pid, refusing to replace a live instance's file. */
int
pidfile_write(const char *path, char *err, size_t errlen)
{
    char text[32], ignored[256];
    pid_t other = pidfile_read(path, ignored, sizeof(ignored));
    int fd, n;

    if (other > 0 && other != getpid()) {
        snprintf(err, errlen, "another postern (pid %ld) is running: \"%s\"",
                 (long)other, path);
        return -1;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "open() \"%s\" failed (%s)", path, strerror(errno));
        return -1;
    }
    n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (write(fd, text, (size_t)n) != n) {
        snprintf(err, errlen, "write() to \"%s\" failed (%s)", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

/* Same existing file under two names (see process.h). */
int
pidfile_same(const char *a, const char *b)
{
    struct stat sa, sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev
           && sa.st_ino == sb.st_ino;
}

/*
 * Remove the pid file if it is still ours.  After the switch to `user` a
 * root-only directory keeps the file: that is logged, and harmless, since
 * the next start and `-s` see that it names no running postern.
 */
void
pidfile_remove(const char *path)
{
    char why[256];
    pid_t pid;

    if (path == NULL) {
        return;
    }
    pid = pidfile_read(path, why, sizeof(why));
    if (pid == getpid()) {
        if (unlink(path) == 0) {
            return;
        }
        snprintf(why, sizeof(why), "unlink() \"%s\" failed (%s)", path,
                 strerror(errno));
    } else if (pid != 0 || (access(path, F_OK) != 0 && errno == ENOENT)) {
        return;                     /* gone, or not ours */
    }
    log_g(LOG_LV_NOTICE, "pid file not removed: %s; it is replaced at the "
          "next start", why);
}

/* Detach; the parent exits with the child's start-up status. */
int
process_daemonize(void)
{
    int p[2], fd;
    pid_t pid;

    if (pipe(p) != 0) {
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid > 0) {
        char status = 1;

        close(p[1]);
        if (read(p[0], &status, 1) != 1) {
            status = 1;
        }
        waitpid(pid, NULL, WNOHANG);
        _exit(status);
    }
    close(p[0]);
    setsid();
    pid = fork();
    if (pid < 0) {
        _exit(1);
    }
    if (pid > 0) {
        _exit(0);
    }
    ready_fd = p[1];
    if (chdir("/") != 0) {
        /* stay where we are */
    }
    umask(022);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        /* stderr stays until start-up is done, so errors reach the user */
        if (fd > STDERR_FILENO) {
            close(fd);
        }
    }
    return 0;
}

/* Tell the first parent how start-up went. */
void
process_ready(int status)
{
    char c = (char)status;
    int fd;

    if (ready_fd < 0) {
        return;
    }
    if (write(ready_fd, &c, 1) < 0) {
        /* the parent is gone */
    }
    close(ready_fd);
    ready_fd = -1;
    if (status == 0) {
        fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
}

/* worker_rlimit_nofile. */
int
process_set_nofile(int n, char *err, size_t errlen)
{
    struct rlimit rl = { (rlim_t)n, (rlim_t)n };

    if (n <= 0) {
        return 0;
    }
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(err, errlen, "setrlimit(RLIMIT_NOFILE, %d) failed (%s)", n,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* Warn when worker_connections cannot be reached with this fd limit. */
void
process_check_nofile(int worker_connections, size_t nlisteners)
{
    struct rlimit rl;
    unsigned long long need = 2ULL * (unsigned)worker_connections + nlisteners + 32;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && rl.rlim_cur < need) {
        log_g(LOG_LV_WARN, "%d worker_connections need about %llu open files, "
              "but the limit is %llu: raise worker_rlimit_nofile",
              worker_connections, need, (unsigned long long)rl.rlim_cur);
    }
}

/*
 * Every session allocates its buffers in a worker (the client's and the
 * backend's input, proxy_buffer twice for the relay, the auth answer, a
 * TLS session) and frees them when it ends.  glibc hands the free memory
 * at the top of a thread's heap back to the kernel as soon as it passes
 * 128 KiB (M_TRIM_THRESHOLD): about one madvise(MADV_DONTNEED) per TLS
 * login and one per four to eight plain logins in bench/, each a TLB
 * shootdown on every CPU, and the next session faults the same pages back
 * in.  Keeping up to 1 MiB free per heap ends that (madvise calls 0, page
 * faults per TLS login 1.5 -> 0.04; docs/benchmarks.md, fifth round).
 * Fixing the thresholds switches off glibc's own
 * sliding mmap threshold, so it is set too: blocks under 512 KiB (every
 * buffer unless proxy_buffer is 512k or more) come from the heaps, larger
 * ones are mapped and unmapped as before.  The cost is bounded: at most
 * 1 MiB kept per heap (glibc makes at most 8 per CPU).
 * An administrator's GLIBC_TUNABLES naming malloc settings wins.
 */
int
process_tune_malloc(void)
{
#if defined(HAVE_MALLOPT) && defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
    const char *t = getenv("GLIBC_TUNABLES");

    if (t != NULL && strstr(t, "glibc.malloc.") != NULL) {
        return 0;
    }
    if (mallopt(M_MMAP_THRESHOLD, PROCESS_MMAP_THRESHOLD) == 1
        && mallopt(M_TRIM_THRESHOLD, PROCESS_TRIM_THRESHOLD) == 1) {
        return 1;
    }
#endif
    return 0;
}

/*
 * A session is a chain of short waits on other processes: the client, the
 * auth service, the backend.  Under the normal policy every wake-up of a
 * worker (and of the relay, the acceptor) may preempt the process that
 * just answered it, in the middle of its own work, only to sleep again
 * microseconds later; the backend or the auth service then resumes cold.
 * SCHED_BATCH keeps the threads' fair share of the CPU and their nice
 * value and only stops that wake-up preemption: a woken thread runs when
 * the running task blocks or its slice ends, so the processes of a login
 * take turns in batches.  Measured in bench/ on 2 CPUs shared with the
 * client and the backend: about 15 % less CPU per plain login and a
 * higher login rate (docs/benchmarks.md, twelfth round).  The cost is that a
 * woken thread may wait up to one scheduler slice (a few ms) on a CPU kept
 * busy by something else, which no mail exchange notices.
 */
int
process_tune_sched(void)
{
#ifdef SCHED_BATCH
    struct sched_param sp = { .sched_priority = 0 };

    if (sched_getscheduler(0) == SCHED_OTHER
        && sched_setscheduler(0, SCHED_BATCH, &sp) == 0) {
        return 1;
    }
#endif
    return 0;
}

/* See process.h: pthread_setname_np where there is one. */
void
process_name_self(const char *role, int index)
{
#ifdef HAVE_PTHREAD_SETNAME_NP
    char name[16];               /* Linux's limit, NUL included */

    if (index < 0) {
        snprintf(name, sizeof(name), "%s", role);
    } else {
        snprintf(name, sizeof(name), "%s %d", role, index);
    }
    pthread_setname_np(pthread_self(), name);
#else
    (void)role;
    (void)index;
#endif
}

/* The ids of "USER [GROUP]" (group NULL: the user's primary group). */
int
process_lookup_user(const char *user, const char *group, uid_t *uid_r,
                    gid_t *gid_r, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam(user);

    if (pw == NULL) {
        snprintf(err, errlen, "getpwnam(\"%s\") failed", user);
        return -1;
    }
    *uid_r = pw->pw_uid;
    *gid_r = pw->pw_gid;
    if (group != NULL && group[0] != '\0') {
        struct group *gr = getgrnam(group);

        if (gr == NULL) {
            snprintf(err, errlen, "getgrnam(\"%s\") failed", group);
            return -1;
        }
        *gid_r = gr->gr_gid;
    }
    return 0;
}

/* Become `user`, for good. */
int
process_drop_privileges(const char *user, const char *group, char *err,
                        size_t errlen)
{
    gid_t gid;
    uid_t uid;

    if (user == NULL || user[0] == '\0') {
        return 0;
    }
    if (geteuid() != 0) {
        /* not root: nothing to drop; NGINX says the same at notice */
        log_g(LOG_LV_NOTICE, "the \"user\" setting makes sense only as root, ignored");
        return 0;
    }
    if (process_lookup_user(user, group, &uid, &gid, err, errlen) != 0) {
        return -1;
    }
    /* initgroups, not setgroups(1, &gid): keys readable through a
     * supplementary group (ssl-cert) must stay readable for a reload */
    if (initgroups(user, gid) != 0 || setresgid(gid, gid, gid) != 0
        || setresuid(uid, uid, uid) != 0) {
        snprintf(err, errlen, "cannot switch to user \"%s\" (%s)", user, strerror(errno));
        return -1;
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        snprintf(err, errlen, "privileges could be regained after switching to \"%s\"", user);
        return -1;
    }
    return 0;
}
