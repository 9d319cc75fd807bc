/*
 * log.h - error_log in NGINX's format:
 *
 *   2026/11/20 12:00:00 [info] PID#TID: *CONN message
 *
 * A `struct log` is a set of targets (file, stderr, syslog), each with its
 * own minimum level; it is built from an `error_log` setting and owned by
 * the configuration that named it.  Writing is thread-safe: one write(2)
 * per line on files, so lines never interleave.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

enum log_level {
    LOG_LV_EMERG, LOG_LV_ALERT, LOG_LV_CRIT, LOG_LV_ERR,
    LOG_LV_WARN, LOG_LV_NOTICE, LOG_LV_INFO, LOG_LV_DEBUG
};

struct log;

/* Name <-> level: "debug" .. "emerg"; -1 for an unknown name. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level lv);

/*
 * Build a log from one `error_log` value ("FILE [LEVEL]", FILE may be
 * "stderr" or "syslog:server=..."); relative FILE is taken from dir.
 * Does not open files: log_open() does (so -t can check without side effects).
 * Returns NULL and sets *error_r (static text or malloc'd? static) on a bad value.
 */
struct log *log_new(void);
int log_add_target(struct log *lg, const char *spec, const char *dir,
                   char *err, size_t errlen);
int log_open(struct log *lg, char *err, size_t errlen);    /* 0 / -1 */
int log_reopen(struct log *lg);    /* USR1; every file, each failure logged */
/* As root before dropping privileges: hand the open log files to the user
 * that reloads and reopens them later.  0 / -1 (each failure logged). */
int log_chown(struct log *lg, uid_t uid);
void log_free(struct log **lg);
int log_max_level(const struct log *lg);  /* most verbose level any target takes */

/* The process-wide log used before/outside configuration (stderr at start).
 * log_global() is for the thread that installs it; other threads write with
 * log_g(), which holds it against a concurrent log_set_global(). */
struct log *log_global(void);
void log_set_global(struct log *lg);      /* not owned; NULL = stderr */

/* NGINX's words for a wait that ran out, errno and its text as NGINX
 * prints them: "timed out (110: Connection timed out)". */
#define LOG_STR_(x) #x
#define LOG_STR(x) LOG_STR_(x)
#define LOG_TIMED_OUT "timed out (" LOG_STR(ETIMEDOUT) ": Connection timed out)"

/* conn = 0: no "*CONN" part. */
void log_write(const struct log *lg, enum log_level lv, uint64_t conn,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_vwrite(const struct log *lg, enum log_level lv, uint64_t conn,
                const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* A line on the global log. */
void log_g(enum log_level lv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
