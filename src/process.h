/*
 * process.h - the process around the threads: daemonising, the pid file,
 * the open-file limit, the allocator's thresholds, the scheduling policy,
 * dropping privileges and the threads' names.  Main thread only, but for
 * process_name_self().
 */
#ifndef POSTERN_PROCESS_H
#define POSTERN_PROCESS_H

#include <stddef.h>
#include <sys/types.h>

/* Read the pid in a pid file; 0 when absent/stale/unreadable (err says). */
pid_t pidfile_read(const char *path, char *err, size_t errlen);
/* Create the pid file for this process; refuses when it names a live
 * process.  0 / -1 with err. */
int pidfile_write(const char *path, char *err, size_t errlen);
void pidfile_remove(const char *path);
/* 1 if the two paths name the same existing file (a symbolic link, "./"). */
int pidfile_same(const char *a, const char *b);

/* fork, setsid, fork, chdir /, stdin/out/err to /dev/null.  The parent
 * waits until the child reports ready (process_ready) or failure, and exits
 * with the child's status, so `postern` returns once listening.  Returns in
 * the child only.  -1 on failure to fork. */
int process_daemonize(void);
/* The child tells the waiting parent that start-up finished (0) or failed. */
void process_ready(int status);

/* setrlimit(RLIMIT_NOFILE) when n > 0.  0 / -1 with err. */
int process_set_nofile(int n, char *err, size_t errlen);
/* Warn when 2 fds per connection plus listeners exceed the limit. */
void process_check_nofile(int worker_connections, size_t nlisteners);

/* Blocks below this come from the allocator's heaps, larger ones are
 * mapped; free memory at a heap's top is kept up to the trim threshold. */
#define PROCESS_MMAP_THRESHOLD (512 * 1024)
#define PROCESS_TRIM_THRESHOLD (1024 * 1024)
/* Keep freed session buffers for the next session instead of returning
 * them to the kernel each time (glibc's mallopt; see process.c).  Call
 * before any thread starts.  1 when set, 0 when not (no mallopt, or
 * GLIBC_TUNABLES sets malloc tunables). */
int process_tune_malloc(void);

/* Run the process's threads under SCHED_BATCH (Linux) when it runs under
 * the normal policy; an administrator's other policy (chrt, systemd's
 * CPUSchedulingPolicy=) is kept.  Call before any thread starts: threads
 * inherit it.  1 when set, 0 when not. */
int process_tune_sched(void);

/* Name the calling thread "role index" (index < 0: "role"), as `ps -L`,
 * `top -H` and perf show it; called first thing in each thread, so all it
 * does is under its name.  Nothing where threads cannot be named. */
void process_name_self(const char *role, int index);

/* The uid and gid of user (and group; NULL: the user's primary group).
 * 0 / -1 with err naming the unknown one. */
int process_lookup_user(const char *user, const char *group, uid_t *uid_r,
                        gid_t *gid_r, char *err, size_t errlen);
/* Drop to user (and group; NULL: the user's primary group):
 * initgroups -> setresgid -> setresuid, then check it cannot be undone. */
int process_drop_privileges(const char *user, const char *group,
                            char *err, size_t errlen);

#endif
