/*
 * session_backend.c - a session's lines to and from its backend during the
 * login: commands written in one piece and wiped (they may hold a
 * password), reply lines read with the failure logged in NGINX's words.
 * Shared by imap_backend.c, pop3.c and smtp_backend.c.
 *
 * No locks: a session belongs to one worker.
 */
#include <errno.h>

#include "conn.h"
#include "log.h"
#include "session.h"
#include "str.h"

/* See session.h. */
int
session_backend_write(struct session *s, struct str_builder *line)
{
    int rc = -1;

    if (line->failed) {
        session_log(s, LOG_LV_ERR, "out of memory");
    } else if (conn_write_all(&s->backend, line->data, line->len) != 0) {
        session_log_io_failed(s, &s->backend, errno, 1);
    } else {
        rc = 0;
    }
    str_builder_free(line);         /* it may hold a password */
    return rc;
}

/* See session.h. */
int
session_backend_send(struct session *s, const char *prefix, struct str value,
                     const char *suffix)
{
    struct str_builder line = STR_BUILDER_INIT;

    str_builder_puts(&line, prefix);
    str_builder_add(&line, (const char *)value.data, value.len);
    str_builder_puts(&line, suffix);
    return session_backend_write(s, &line);
}

/* See session.h. */
int
session_backend_line(struct session *s, unsigned char **line_r,
                     size_t *len_r)
{
    if (conn_read_line(&s->backend, line_r, len_r) == 0) {
        return 0;
    }
    if (errno == ENOBUFS) {
        session_log(s, LOG_LV_ERR, "upstream sent too long response line");
    } else if (errno == 0) {
        session_log(s, LOG_LV_ERR, "upstream prematurely closed connection");
    } else {
        session_log_io_failed(s, &s->backend, errno, 0);
    }
    return -1;
}
