/*
 * imap_backend.c - the LOGIN to an IMAP backend, once the auth service has
 * named it, as NGINX's mail proxy does it (the IMAP part of
 * ngx_mail_proxy_module.c), with the client's own tag, so that the
 * backend's tagged answer is the answer to the client's LOGIN or
 * AUTHENTICATE:
 *
 *   S: * OK ...
 *   C: TAG LOGIN "USER" "PASSWORD"      (one write: both quotable), or
 *   C: TAG LOGIN {n+} USER {m+} PASS    (one write: LITERAL+), or else as
 *   C: TAG LOGIN {n}          S: + ...  NGINX does, with synchronizing
 *   C: USER {m}               S: + ...  literals, which need no quoting
 *   C: PASSWORD
 *   S: [* CAPABILITY ...]     (untagged lines, relayed)
 *   S: TAG OK ...             (relayed: it answers the client's command)
 *
 * Handles untrusted input (the backend's lines, each bounded by the
 * connection's buffer, at most IMAP_UNTAGGED_MAX untagged ones) and secrets
 * (the password on its way to the backend; every copy made here is wiped).
 * No locks: a session belongs to one worker.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "imap_int.h"
#include "log.h"
#include "session.h"
#include "str.h"

/* Lines the backend may send before its tagged answer to LOGIN. */
#define IMAP_UNTAGGED_MAX 32
/* How much of a backend line goes into a log line. */
#define IMAP_LOG_LINE_MAX 256

/* Read one backend line; -1 (logged) on EOF, error, timeout, too long. */
static int
backend_line(struct session *s, unsigned char **line_r, size_t *len_r)
{
    s->action = "reading response from upstream";
    return session_backend_line(s, line_r, len_r);
}

/*
 * The backend did not answer as it should.  As NGINX: with
 * proxy_pass_error_message its lines go to the client (logged at info),
 * otherwise the client gets an internal error (logged at error).
 */
static enum sess_rc
backend_refused(struct session *s, const unsigned char *pre, size_t prelen,
                const unsigned char *line, size_t len)
{
    char text[IMAP_LOG_LINE_MAX];
    const unsigned char *shown = line;
    const unsigned char *sp = memchr(line, ' ', len);

    /* as NGINX: a tagged answer is logged without its tag */
    if (sp != NULL && line[0] != '*' && line[0] != '+') {
        shown = sp + 1;
    }
    str_log_text(shown, len - (size_t)(shown - line), text, sizeof(text));
    if (!s->sc->proxy_pass_error_message) {
        session_log(s, LOG_LV_ERR, "upstream sent invalid response: \"%s\"",
                    text);
        imap_internal_error(s);
        return SESS_CLOSE;
    }
    session_log(s, LOG_LV_INFO, "upstream sent invalid response: \"%s\"",
                text);
    if ((prelen == 0 || session_send(s, (const char *)pre, prelen) == 0)
        && session_send(s, (const char *)line, len) == 0
        && line[len - 1] != '\n')
    {
        session_send(s, "\r\n", 2);
    }
    return SESS_CLOSE;
}

/* 1 if line starts with WORD followed by SP, CR or LF (case-insensitive). */
static int
starts_with_word(const unsigned char *line, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len > n && strncasecmp((const char *)line, word, n) == 0
           && (line[n] == ' ' || line[n] == '\r' || line[n] == '\n');
}

/* Whether s can be sent as an IMAP quoted string (RFC 3501: 7-bit, no
 * NUL, CR or LF; double quote and backslash are escaped). */
static int
imap_quotable(struct str s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.data[i] == 0 || s.data[i] > 0x7f || s.data[i] == '\r'
            || s.data[i] == '\n')
        {
            return 0;
        }
    }
    return 1;
}

/* Append s to b as a quoted string. */
static void
imap_quote(struct str_builder *b, struct str s)
{
    str_builder_add(b, "\"", 1);
    for (size_t i = 0; i < s.len; i++) {
        if (s.data[i] == '"' || s.data[i] == '\\') {
            str_builder_add(b, "\\", 1);
        }
        str_builder_add(b, (const char *)s.data + i, 1);
    }
    str_builder_add(b, "\"", 1);
}

/* Whether the greeting's "[CAPABILITY ...]" response code names word. */
static int
greeting_has_cap(const unsigned char *line, size_t len, const char *word)
{
    static const char code[] = "[CAPABILITY ";
    size_t wl = strlen(word), i = 0, end;

    while (i + sizeof(code) - 1 <= len
           && strncasecmp((const char *)line + i, code, sizeof(code) - 1) != 0) {
        i++;
    }
    if (i + sizeof(code) - 1 > len) {
        return 0;
    }
    i += sizeof(code) - 1;
    for (end = i; end < len && line[end] != ']'; end++) {
    }
    while (i < end) {
        size_t w = i;

        while (w < end && line[w] != ' ') {
            w++;
        }
        if (w - i == wl && strncasecmp((const char *)line + i, word, wl) == 0) {
            return 1;
        }
        i = w + 1;
    }
    return 0;
}

/*
 * The whole LOGIN command in one write when no continuation is needed:
 * quoted strings when both are quotable, else non-synchronizing literals
 * when the greeting announced LITERAL+ (RFC 7888).  NGINX always waits
 * for two "+" continuations; this saves those two round trips.  Returns 1
 * sent, 0 not possible (use synchronizing literals), -1 error.
 */
static int
imap_login_one_write(struct session *s, const char *tag, struct str user,
                     struct str pass, int literal_plus)
{
    struct str_builder b = STR_BUILDER_INIT;
    char num[32];
    int rc;

    if (imap_quotable(user) && imap_quotable(pass)) {
        str_builder_puts(&b, tag);
        str_builder_puts(&b, " LOGIN ");
        imap_quote(&b, user);
        str_builder_puts(&b, " ");
        imap_quote(&b, pass);
    } else if (literal_plus) {
        snprintf(num, sizeof(num), " LOGIN {%zu+}\r\n", user.len);
        str_builder_puts(&b, tag);
        str_builder_puts(&b, num);
        str_builder_add(&b, (const char *)user.data, user.len);
        snprintf(num, sizeof(num), " {%zu+}\r\n", pass.len);
        str_builder_puts(&b, num);
        str_builder_add(&b, (const char *)pass.data, pass.len);
    } else {
        return 0;
    }
    if (b.failed) {
        session_log(s, LOG_LV_ERR, "out of memory");
        rc = -1;
    } else {
        rc = session_backend_send(s, "", (struct str){ b.len,
                                  (unsigned char *)b.data }, "\r\n") == 0
             ? 1 : -1;
    }
    str_builder_free(&b);           /* wipes the password */
    return rc;
}

/*
 * LOGIN with synchronizing literals, as NGINX: each literal waits for the
 * backend's "+".  1 sent, 2 the backend refused (the client was answered),
 * -1 error.
 */
static int
imap_login_literals(struct session *s, const char *tag, struct str user,
                    struct str pass)
{
    char cmd[IMAP_TAG_MAX + 64];
    unsigned char *line;
    size_t len;

    snprintf(cmd, sizeof(cmd), "%s LOGIN {%zu}\r\n", tag, user.len);
    if (session_backend_send(s, cmd, STR_NULL, "") != 0
        || backend_line(s, &line, &len) != 0) {
        return -1;
    }
    if (line[0] != '+') {
        backend_refused(s, NULL, 0, line, len);
        return 2;
    }
    s->action = "sending user name to upstream";
    snprintf(cmd, sizeof(cmd), " {%zu}\r\n", pass.len);
    if (session_backend_send(s, "", user, cmd) != 0 || backend_line(s, &line, &len) != 0) {
        return -1;
    }
    if (line[0] != '+') {
        backend_refused(s, NULL, 0, line, len);
        return 2;
    }
    s->action = "sending password to upstream";
    return session_backend_send(s, "", pass, "\r\n") == 0 ? 1 : -1;
}

enum sess_rc
imap_backend_login(struct session *s)
{
    struct imap_state *st = s->proto_state;
    const char *tag = st->tag[0] != '\0' ? st->tag : "a";
    struct str user = s->auth.user.len > 0 ? s->auth.user : s->login;
    struct str pass = s->auth.pass.len > 0 ? s->auth.pass : s->passwd;
    unsigned char *line, *fwd = NULL;
    size_t len, fwdlen = 0, fwdsize = s->backend.in.size, taglen = strlen(tag);
    enum sess_rc rc = SESS_CLOSE;
    int i, sent;

    if (s->auth.pass.len == 0 && (s->method == AUTH_METHOD_CRAM_MD5
                                  || s->method == AUTH_METHOD_EXTERNAL))
    {
        /* the client never sent a password we could pass on */
        session_log(s, LOG_LV_ERR, "auth service sent no password for %s",
                    auth_method_name(s->method));
        imap_internal_error(s);
        return SESS_CLOSE;
    }

    if (backend_line(s, &line, &len) != 0) {
        goto internal;
    }
    if (len < 4 || memcmp(line, "* ", 2) != 0
        || !starts_with_word(line + 2, len - 2, "OK"))
    {
        return backend_refused(s, NULL, 0, line, len);
    }

    s->action = "sending LOGIN command to upstream";
    sent = imap_login_one_write(s, tag, user, pass,
                                greeting_has_cap(line, len, "LITERAL+"));
    if (sent == 0) {
        sent = imap_login_literals(s, tag, user, pass);
    }
    if (sent < 0) {
        goto internal;
    }
    if (sent == 2) {
        return SESS_CLOSE;          /* refused, and answered */
    }

    /* Untagged lines (CAPABILITY from Gmail, Dovecot...), then the answer. */
    fwd = malloc(fwdsize);
    if (fwd == NULL) {
        session_log(s, LOG_LV_ERR, "out of memory");
        goto internal;
    }
    for (i = 0; i <= IMAP_UNTAGGED_MAX; i++) {
        if (backend_line(s, &line, &len) != 0) {
            goto internal;
        }
        if (len >= 2 && line[0] == '*' && line[1] == ' ') {
            if (i == IMAP_UNTAGGED_MAX || len > fwdsize - fwdlen) {
                session_log(s, LOG_LV_ERR,
                            "upstream sent too long response");
                goto internal;
            }
            memcpy(fwd + fwdlen, line, len);
            fwdlen += len;
            continue;
        }
        break;
    }

    s->action = "reading response from upstream";
    if (!(len > taglen + 1 && memcmp(line, tag, taglen) == 0
          && line[taglen] == ' '
          && starts_with_word(line + taglen + 1, len - taglen - 1, "OK")))
    {
        rc = backend_refused(s, fwd, fwdlen, line, len);
        goto done;
    }
    if ((fwdlen > 0 && session_send(s, (char *)fwd, fwdlen) != 0)
        || session_send(s, (const char *)line, len) != 0)
    {
        goto done;
    }
    rc = SESS_OK;
    goto done;

internal:
    imap_internal_error(s);
    rc = SESS_CLOSE;
done:
    free(fwd);
    return rc;
}
