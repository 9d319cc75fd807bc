/*
 * auth.c - auth_query(): hand a login to the auth service a server is
 * configured with (auth_http or auth_file), and the result type's helpers.
 *
 * Touches secrets: auth_result_free() wipes the password a service
 * returned.  No shared state, no locks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "auth_impl.h"

/*
 * The Auth-Method value.  As in NGINX, AUTH LOGIN is reported as "plain":
 * both carry a clear-text password, and auth services written for NGINX
 * know only plain / apop / cram-md5 / external / none.
 */
const char *
auth_method_name(enum auth_method m)
{
    switch (m) {
    case AUTH_METHOD_PLAIN:
    case AUTH_METHOD_LOGIN:
        return "plain";
    case AUTH_METHOD_APOP:
        return "apop";
    case AUTH_METHOD_CRAM_MD5:
        return "cram-md5";
    case AUTH_METHOD_EXTERNAL:
        return "external";
    case AUTH_METHOD_NONE:
        return "none";
    }
    return "plain";
}

/* Empty result: the state every query starts from. */
void
auth_result_init(struct auth_result *r)
{
    memset(r, 0, sizeof(*r));
    r->status = AUTH_TEMPFAIL;
    r->wait = -1;
}

/* Format into a fresh heap string; NULL when out of memory. */
static char * __attribute__((format(printf, 1, 0)))
vformat(const char *fmt, va_list ap)
{
    char tmp[512];
    int n;

    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    if (n < 0) {
        return NULL;
    }
    /* a reason longer than tmp is cut: it is a log line, not data */
    return strdup(tmp);
}

/* Set the log reason, keeping the status. */
void
auth_result_reason(struct auth_result *r, const char *fmt, ...)
{
    va_list ap;

    free(r->log_reason);
    va_start(ap, fmt);
    r->log_reason = vformat(fmt, ap);
    va_end(ap);
}

/* Temporary failure with a reason for the log. */
void
auth_result_tempfail(struct auth_result *r, const char *fmt, ...)
{
    va_list ap;

    r->status = AUTH_TEMPFAIL;
    free(r->log_reason);
    va_start(ap, fmt);
    r->log_reason = vformat(fmt, ap);
    va_end(ap);
}

/* Copy bytes into a heap str, NUL-terminated for libc callers. */
int
auth_str_copy(struct str *dst, const unsigned char *p, size_t len)
{
    dst->data = malloc(len + 1);
    if (dst->data == NULL) {
        dst->len = 0;
        return -1;
    }
    if (len > 0) {
        memcpy(dst->data, p, len);
    }
    dst->data[len] = '\0';
    dst->len = len;
    return 0;
}

/* Standard ports, for auth_file lines without one. */
unsigned short
auth_default_port(enum proto p)
{
    switch (p) {
    case PROTO_IMAP:
        return 143;
    case PROTO_POP3:
        return 110;
    case PROTO_SMTP:
        return 25;
    }
    return 143;
}

/* Ask the service this server uses; exactly one is configured. */
void
auth_query(const struct server_conf *sc, const struct auth_request *rq,
           struct auth_result *r)
{
    if (sc->auth_file != NULL || sc->auth_file_data != NULL) {
        auth_file_query(sc, rq, r);
    } else if (sc->auth_http != NULL) {
        auth_http_query(sc, rq, r);
    } else {
        auth_result_init(r);
        auth_result_tempfail(r, "no auth_http or auth_file for this server");
        return;
    }
    /* IMAP and POP3 backends are logged in to with a password: after APOP,
     * CRAM-MD5 or EXTERNAL the client never sent one, so the service must */
    if (r->status == AUTH_OK && rq->protocol != PROTO_SMTP
        && (rq->method == AUTH_METHOD_APOP || rq->method == AUTH_METHOD_CRAM_MD5
            || rq->method == AUTH_METHOD_EXTERNAL)
        && r->pass.len == 0) {
        auth_result_free(r);
        auth_result_init(r);
        auth_result_tempfail(r, "auth service sent no password for the %s "
                             "backend after %s", proto_name(rq->protocol),
                             auth_method_name(rq->method));
    }
}

/* Free everything a result holds; the password is wiped first. */
void
auth_result_free(struct auth_result *r)
{
    if (r == NULL) {
        return;
    }
    str_wipe_free(&r->pass);
    str_wipe_free(&r->user);
    free(r->server);
    free(r->error_code);
    free(r->message);
    free(r->log_reason);
    auth_result_init(r);
}
