/*
 * test_log.c - error_log files: USR1's reopen goes on with the other
 * files when one cannot be opened (and says which), and log_chown hands
 * the open files to `user` while leaving anything that is not a regular
 * file alone; a reload's swap of the global log waits for the threads
 * writing to the old one, which it may then free.  Works in a scratch
 * directory under $TMPDIR (or /tmp).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "tap.h"

static char dir[256];

/* dir/name into buf. */
static const char *
path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

/* The whole of a small file ("" when absent). */
static const char *
slurp(const char *path)
{
    static char text[8192];
    ssize_t n = -1;
    int fd = open(path, O_RDONLY);

    if (fd >= 0) {
        n = read(fd, text, sizeof(text) - 1);
        close(fd);
    }
    text[n > 0 ? n : 0] = '\0';
    return text;
}

/* A log with the files a.log and b.log, both opened. */
static struct log *
two_files(void)
{
    char err[256];
    struct log *lg = log_new();

    if (lg == NULL || log_add_target(lg, "a.log info", dir, err, sizeof(err)) != 0
        || log_add_target(lg, "b.log info", dir, err, sizeof(err)) != 0
        || log_open(lg, err, sizeof(err)) != 0) {
        printf("# setting up the log failed: %s\n", err);
        exit(1);
    }
    return lg;
}

/* One target cannot be reopened: the next one is reopened all the same. */
static void
test_reopen_goes_on(void)
{
    char a[300], b[300], a1[300], b1[300];
    struct log *lg = two_files();

    path_in(a, sizeof(a), "a.log");
    path_in(b, sizeof(b), "b.log");
    path_in(a1, sizeof(a1), "a.log.1");
    path_in(b1, sizeof(b1), "b.log.1");
    /* rotation: both renamed; a.log's name then taken by a directory,
     * which cannot be opened for writing */
    ok(rename(a, a1) == 0 && rename(b, b1) == 0, "both files rotated");
    ok(mkdir(a, 0755) == 0, "a.log is now a directory");
    is_int(log_reopen(lg), -1, "the reopen reports the failure");
    ok(access(b, F_OK) == 0, "b.log, after the one that failed, is reopened");
    log_write(lg, LOG_LV_NOTICE, 0, "after the reopen");
    ok(strstr(slurp(b), "after the reopen") != NULL,
       "b.log gets the lines written after the reopen");
    ok(strstr(slurp(a1), "after the reopen") != NULL,
       "a.log keeps its old descriptor (now a.log.1)");
    log_free(&lg);
    rmdir(a);
    unlink(a1);
    unlink(b);
    unlink(b1);
}

/* log_chown: regular files only; as non-root, a chown to ourselves. */
static void
test_chown(void)
{
    char a[300], err[256];
    struct log *lg = two_files();
    struct log *devnull = log_new();
    struct stat st;

    path_in(a, sizeof(a), "a.log");
    is_int(log_chown(lg, getuid()), 0, "chown to our own id");
    ok(stat(a, &st) == 0 && st.st_uid == getuid(), "a.log is ours");
    if (geteuid() == 0) {
        gid_t group = st.st_gid;

        is_int(log_chown(lg, 65534), 0, "as root: chown to 65534");
        ok(stat(a, &st) == 0 && st.st_uid == 65534 && st.st_gid == group,
           "a.log belongs to 65534, its group kept");
    } else {
        ok(1, "# SKIP chown to another user needs root");
    }
    ok(devnull != NULL
       && log_add_target(devnull, "/dev/null info", NULL, err, sizeof(err)) == 0
       && log_open(devnull, err, sizeof(err)) == 0, "a log on /dev/null");
    ok(stat("/dev/null", &st) == 0, "stat /dev/null");
    {
        uid_t owner = st.st_uid;

        is_int(log_chown(devnull, 65534), 0, "chown of /dev/null's log");
        ok(stat("/dev/null", &st) == 0 && st.st_uid == owner,
           "/dev/null is left alone");
    }
    log_free(&devnull);
    log_free(&lg);
    unlink(a);
    path_in(a, sizeof(a), "b.log");
    unlink(a);
}

static atomic_int writers_stop;
static atomic_long lines_written;

/* A pool or relay thread: lines on the given log, or on the global one
 * (NULL), back to back until told to stop. */
static void *
writer(void *arg)
{
    const struct log *lg = arg;

    while (!atomic_load(&writers_stop)) {
        if (lg != NULL) {
            log_write(lg, LOG_LV_NOTICE, 1, "a session's line");
        } else {
            log_g(LOG_LV_NOTICE, "a line from another thread");
        }
        atomic_fetch_add(&lines_written, 1);
    }
    return NULL;
}

enum { WRITERS = 4 };

/* Start WRITERS threads on lg; how many started. */
static int
writers_start(pthread_t *th, struct log *lg)
{
    int started = 0;

    atomic_store(&writers_stop, 0);
    atomic_store(&lines_written, 0);
    for (int i = 0; i < WRITERS; i++) {
        started += pthread_create(&th[started], NULL, writer, lg) == 0;
    }
    return started;
}

/* Wait (10 s at most) until the writers have written more than n lines. */
static int
lines_beyond(long n)
{
    msec_t end = clock_now() + 10000;

    while (atomic_load(&lines_written) <= n) {
        if (clock_now() > end) {
            return 0;
        }
        sched_yield();
    }
    return 1;
}

static void
writers_join(pthread_t *th, int started)
{
    atomic_store(&writers_stop, 1);
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
}

/* USR1 while the sessions log back to back: each reopen gets its turn
 * (the writers hold the reopen lock for their write(2) only, not while
 * formatting), and the lines written after the last one go to the file
 * now under the name. */
static void
test_reopen_under_writers(void)
{
    enum { REOPENS = 200 };
    pthread_t th[WRITERS];
    struct log *lg = two_files();
    char a[300], a1[300];
    int started, done = 0;

    path_in(a, sizeof(a), "a.log");
    path_in(a1, sizeof(a1), "a.log.1");
    started = writers_start(th, lg);
    is_int(started, WRITERS, "writer threads started");
    for (int i = 0; i < REOPENS; i++) {
        done += log_reopen(lg) == 0;
    }
    rename(a, a1);
    done += log_reopen(lg) == 0;
    ok(lines_beyond(atomic_load(&lines_written)), "lines written after it");
    writers_join(th, started);
    is_int(done, REOPENS + 1, "every reopen done while the lines went on");
    ok(strstr(slurp(a), "a session's line") != NULL,
       "lines after the last reopen go to the new file");
    log_free(&lg);
    unlink(a);
    unlink(a1);
    unlink(path_in(a, sizeof(a), "b.log"));
}

/* Reloads: each installs a new log and frees the old one at once, as the
 * main thread does when no session holds the old configuration.  Before
 * log_g() held the global log against the swap, a writer could still be
 * inside the freed log (AddressSanitizer: heap-use-after-free;
 * ThreadSanitizer: a data race on the pointer). */
static void
test_swap_waits_for_writers(void)
{
    enum { SWAPS = 300 };
    pthread_t th[WRITERS];
    struct log *cur = two_files();
    char a[300];
    int started, wrote = 0;

    log_set_global(cur);
    started = writers_start(th, NULL);
    is_int(started, WRITERS, "writer threads started");
    for (int i = 0; i < SWAPS; i++) {
        struct log *next = two_files();
        long before = atomic_load(&lines_written);

        log_set_global(next);
        log_free(&cur);
        cur = next;
        /* a line between one swap and the next */
        wrote += lines_beyond(before);
    }
    writers_join(th, started);
    is_int(wrote, SWAPS, "the writers wrote between the swaps");
    ok(strstr(slurp(path_in(a, sizeof(a), "a.log")), "another thread") != NULL,
       "the lines reach the log's files");
    /* the installed log freed: writers fall back to stderr, not to freed
     * memory */
    log_free(&cur);
    ok(log_global() == NULL, "freeing the installed log uninstalls it");
    unlink(a);
    unlink(path_in(a, sizeof(a), "b.log"));
}

int
main(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/postern-test-log-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        printf("Bail out! mkdtemp failed\n");
        return 1;
    }
    test_reopen_goes_on();
    test_chown();
    test_reopen_under_writers();
    test_swap_waits_for_writers();
    rmdir(dir);
    return tap_done();
}
