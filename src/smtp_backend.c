/*
 * smtp_backend.c - the login to an SMTP backend, once the auth service has
 * named it, as NGINX's mail proxy does it (the SMTP part of
 * ngx_mail_proxy_module.c):
 *
 *   220 -> EHLO server_name -> [XCLIENT ADDR LOGIN NAME -> 220 ->
 *   EHLO client's helo] -> [AUTH PLAIN -> 235] ->
 *   [MAIL FROM -> 250 -> RCPT TO -> reply to the client]
 *
 * with one step fewer where it can: a backend whose EHLO offered XCLIENT
 * to an earlier login gets XCLIENT right after its greeting
 * (backend_caps.c).
 *
 * Handles untrusted input from the backend (every reply line is bounded by
 * the connection's buffer and parsed by smtp_parse.c; what the client said
 * goes into XCLIENT only as xtext) and secrets (the password of AUTH PLAIN,
 * wiped after use).  No locks: a session belongs to one worker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_caps.h"
#include "conn.h"
#include "log.h"
#include "sasl.h"
#include "session.h"
#include "smtp_int.h"
#include "smtp_parse.h"
#include "str.h"
#include "xtext.h"

#define SMTP_AUTH_OK          "235 2.0.0 OK\r\n"
/* backend_caps: the XCLIENT attributes (SMTP_XCLIENT_*) the backend's EHLO
 * offered, or this: it refused XCLIENT before EHLO, so ask it first */
#define SMTP_CAPS_EHLO_FIRST  (1u << 31)
/* XCLIENT's word for an address it cannot be told */
#define SMTP_UNAVAILABLE      "[UNAVAILABLE]"

/* Read one whole (multi-line) reply from the backend; -1 is logged. */
static int
backend_reply(struct session *s, struct smtp_reply *r)
{
    struct buf *in = &s->backend.in;
    struct smtp_reply_parser p;
    enum smtp_parse_rc rc;
    const char *old = s->action;
    char text[256];
    ssize_t n;

    smtp_reply_parser_init(&p);
    s->action = "reading response from upstream";
    for (;;) {
        rc = smtp_reply_parse(&p, buf_head(in), buf_len(in), r);
        if (rc == SMTP_PARSE_OK) {
            buf_consume(in, r->len);
            s->action = old;
            return 0;
        }
        if (rc == SMTP_PARSE_INVALID) {
            str_log_text(buf_head(in), buf_len(in), text, sizeof(text));
            session_log(s, LOG_LV_ERR, "upstream sent invalid response: \"%s\"",
                        text);
            return -1;
        }
        if (buf_room(in) == 0 && in->pos == 0) {
            str_log_text(buf_head(in), buf_len(in), text, sizeof(text));
            session_log(s, LOG_LV_ERR,
                        "upstream sent too long response line: \"%s\"", text);
            return -1;
        }
        n = conn_fill(&s->backend);
        if (n == 0) {
            session_log(s, LOG_LV_ERR,
                        "upstream prematurely closed connection");
            return -1;
        }
        if (n < 0) {
            session_log_io_failed(s, &s->backend, errno, 0);
            return -1;
        }
    }
}

/* The backend let us down: the client gets its reply (with
 * proxy_pass_error_message) or a 451, and the session ends. */
static enum sess_rc
backend_fail(struct session *s, const struct smtp_reply *r)
{
    char text[256];

    if (r != NULL) {
        str_log_text(r->text.data, r->text.len, text, sizeof(text));
        if (s->sc->proxy_pass_error_message) {
            session_log(s, LOG_LV_INFO,
                        "upstream sent invalid response: \"%s\"", text);
            session_send(s, (const char *)r->text.data, r->text.len);
            return SESS_CLOSE;
        }
        session_log(s, LOG_LV_ERR, "upstream sent invalid response: \"%s\"",
                    text);
    }
    smtp_reply(s, SMTP_INTERNAL_ERROR);
    return SESS_CLOSE;
}

/* Send a line, read the reply; 0 when its code is one of want (0 = any). */
static int
backend_step(struct session *s, const char *action, const char *prefix,
             struct str value, int want1, int want2, struct smtp_reply *r,
             int *bad_reply_r)
{
    *bad_reply_r = 0;
    s->action = action;
    if (session_backend_send(s, prefix, value, "\r\n") != 0) {
        return -1;
    }
    s->action = "reading response from upstream";   /* as NGINX */
    if (backend_reply(s, r) != 0) {
        return -1;
    }
    if (want1 != 0 && r->code != want1 && r->code != want2) {
        *bad_reply_r = 1;
        return -1;
    }
    return 0;
}

/* The user the backend should know: Auth-User if given, else the login. */
static struct str
backend_user(const struct session *s)
{
    return s->auth.user.len > 0 ? s->auth.user : s->login;
}

/* The address part of XCLIENT: "1.2.3.4", "IPV6:2001:db8::1".  An IPv4
 * client on a dual-stack socket (::ffff:1.2.3.4) is told as IPv4, so the
 * backend's IPv4 rules apply to it, as postern's access rules do. */
static void
xclient_addr(const struct session *s, char *out, size_t outlen)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, s->client_ip, &a4) == 1) {
        snprintf(out, outlen, "%s", s->client_ip);
    } else if (inet_pton(AF_INET6, s->client_ip, &a6) != 1) {
        snprintf(out, outlen, "%s", SMTP_UNAVAILABLE);
    } else if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
        if (inet_ntop(AF_INET, &a4, out, (socklen_t)outlen) == NULL) {
            snprintf(out, outlen, "%s", SMTP_UNAVAILABLE);
        }
    } else {
        snprintf(out, outlen, "IPV6:%s", s->client_ip);
    }
}

/* Append " NAME=xtext(value)" to line at *k. */
static void
xclient_attr(char *line, size_t *k, const char *name, struct str value)
{
    size_t n = strlen(name);

    line[(*k)++] = ' ';
    memcpy(line + *k, name, n);
    *k += n;
    line[(*k)++] = '=';
    *k += xtext_encode(value, line + *k);
}

/*
 * "XCLIENT ADDR=.. LOGIN=.. NAME=.." with the attributes the backend
 * offers; values in xtext.  host: session_client_host() (the name or its
 * "[UNAVAILABLE]" / "[TEMPUNAVAIL]"), NULL when NAME is not offered.
 * *line_r is malloc'd ("" when nothing to send).
 */
static int
xclient_build(const struct session *s, unsigned attrs, const char *host,
              struct str *line_r)
{
    char addr[ADDR_TEXT_MAX + 8];
    struct str vaddr, vlogin = STR_NULL, vname = STR_NULL;
    size_t len = sizeof("XCLIENT") - 1, k = 0;
    char *line;

    xclient_addr(s, addr, sizeof(addr));
    vaddr = (struct str){ strlen(addr), (unsigned char *)addr };
    if (host != NULL) {
        vname = (struct str){ strlen(host), (unsigned char *)host };
    }
    if (!(attrs & SMTP_XCLIENT_ADDR)) {
        vaddr = STR_NULL;
    }
    /* as NGINX: LOGIN only for a logged-in client we do not AUTH for */
    if ((attrs & SMTP_XCLIENT_LOGIN) && !s->sc->proxy_smtp_auth
        && s->method != AUTH_METHOD_NONE) {
        vlogin = backend_user(s);
    }
    if (!(attrs & SMTP_XCLIENT_NAME)) {
        vname = STR_NULL;
    }
    if (vaddr.len == 0 && vlogin.len == 0 && vname.len == 0) {
        *line_r = STR_NULL;
        return 0;
    }
    len += 6 + xtext_encoded_len(vaddr) + 7 + xtext_encoded_len(vlogin)
           + 6 + xtext_encoded_len(vname) + 1;
    line = malloc(len);
    if (line == NULL) {
        return -1;
    }
    memcpy(line, "XCLIENT", 7);
    k = 7;
    if (vaddr.len > 0) {
        xclient_attr(line, &k, "ADDR", vaddr);
    }
    if (vlogin.len > 0) {
        xclient_attr(line, &k, "LOGIN", vlogin);
    }
    if (vname.len > 0) {
        xclient_attr(line, &k, "NAME", vname);
    }
    line[k] = '\0';
    line_r->data = (unsigned char *)line;
    line_r->len = k;
    return 0;
}

/* "AUTH PLAIN base64(NUL user NUL pass)": the secret is wiped after use. */
static int
backend_auth_plain(struct session *s, struct smtp_reply *r, int *bad_r)
{
    struct str user = backend_user(s), pass;
    unsigned char *msg = NULL;
    char *b64 = NULL;
    size_t mlen, blen;
    int rc = -1;

    *bad_r = 0;
    s->action = "sending AUTH to upstream";
    if (s->auth.pass.len > 0) {
        pass = s->auth.pass;
    } else if (s->method == AUTH_METHOD_PLAIN
               || s->method == AUTH_METHOD_LOGIN) {
        pass = s->passwd;
    } else {
        pass = STR_NULL;    /* a CRAM-MD5 digest is no password */
    }
    if (pass.len == 0 || user.len == 0) {
        session_log(s, LOG_LV_ERR, "no password available");
        return -1;
    }
    if (memchr(user.data, '\0', user.len) != NULL
        || memchr(pass.data, '\0', pass.len) != NULL) {
        session_log(s, LOG_LV_ERR, "login or password unfit for AUTH PLAIN");
        return -1;
    }
    mlen = 1 + user.len + 1 + pass.len;
    blen = base64_encoded_len(mlen);
    msg = malloc(mlen);
    b64 = malloc(blen);
    if (msg == NULL || b64 == NULL) {
        session_log(s, LOG_LV_ERR, "out of memory");
        goto done;
    }
    msg[0] = '\0';
    memcpy(msg + 1, user.data, user.len);
    msg[1 + user.len] = '\0';
    memcpy(msg + 2 + user.len, pass.data, pass.len);
    base64_encode(msg, mlen, b64);
    rc = backend_step(s, "sending AUTH to upstream", "AUTH PLAIN ",
                      (struct str){ blen, (unsigned char *)b64 }, 235, 235,
                      r, bad_r);
done:
    if (msg != NULL) {
        mem_wipe(msg, mlen);
    }
    if (b64 != NULL) {
        mem_wipe(b64, blen);
    }
    free(msg);
    free(b64);
    return rc;
}

/* The XCLIENT line for what the backend offers (attrs): 0 with *xline_r
 * (malloc'd; empty when nothing is to be passed), -1 out of memory. */
static int
xclient_line(struct session *s, unsigned attrs, struct str *xline_r)
{
    /* the name is looked up only for a backend that takes it (and only
     * once: the auth request may have asked for it already) */
    const char *host = (attrs & SMTP_XCLIENT_NAME) ? session_client_host(s)
                                                   : NULL;

    if (xclient_build(s, attrs, host, xline_r) != 0) {
        session_log(s, LOG_LV_ERR, "out of memory");
        return -1;
    }
    return 0;
}

/* Whether what the backend offers is remembered for the next logins:
 * not behind proxy_protocol (the backend then judges XCLIENT by each
 * client's address, so one login's answer says nothing of the next). */
static int
caps_kept(const struct session *s)
{
    return !s->sc->proxy_protocol;
}

/*
 * XCLIENT straight after the greeting, with what the backend offered to
 * an earlier login's EHLO (backend_caps.c), instead of asking again: 1 taken,
 * 0 not known or refused (the long way follows, EHLO first), -1 failed
 * (logged).
 */
static int
xclient_early(struct session *s, struct smtp_reply *r)
{
    struct str xline;
    unsigned attrs;
    char text[256];
    int rc, bad;

    if (!s->sc->xclient || !caps_kept(s)
        || !backend_caps_get(PROTO_SMTP, s->upstream, clock_now(), &attrs)
        || (attrs & SMTP_CAPS_EHLO_FIRST)) {
        return 0;
    }
    if (xclient_line(s, attrs, &xline) != 0) {
        return -1;
    }
    if (xline.len == 0) {
        return 0;                   /* the long way says why */
    }
    rc = backend_step(s, "sending XCLIENT to upstream", "", xline, 220, 250,
                      r, &bad);
    free(xline.data);
    if (rc == 0) {
        return 1;
    }
    if (!bad) {
        return -1;
    }
    /* what was remembered is wrong now (the backend's XCLIENT hosts or
     * software changed), or it wants EHLO first: ask, now and for a while */
    str_log_text(r->text.data, r->text.len, text, sizeof(text));
    session_log(s, LOG_LV_INFO, "upstream refused XCLIENT before EHLO: "
                "\"%s\", sending EHLO first", text);
    backend_caps_put(PROTO_SMTP, s->upstream, SMTP_CAPS_EHLO_FIRST,
                     clock_now());
    return 0;
}

/* The long way to XCLIENT, as NGINX goes: EHLO, and XCLIENT if the reply
 * offers it.  1 sent and taken, 0 not to be sent (xclient off), -1 the
 * session ends (logged; *bad_r when r holds the backend's reply). */
static int
xclient_after_ehlo(struct session *s, struct smtp_reply *r, int *bad_r)
{
    const struct server_conf *sc = s->sc;
    struct str name = { strlen(sc->server_name),
                        (unsigned char *)sc->server_name };
    struct str xline;
    unsigned attrs = 0, known;
    int rc;

    /* as NGINX: EHLO for an ESMTP client and whenever XCLIENT may be used */
    if (backend_step(s, "sending HELO/EHLO to upstream",
                     (s->smtp_esmtp || sc->xclient) ? "EHLO " : "HELO ", name,
                     250, 250, r, bad_r) != 0) {
        return -1;
    }
    if (!sc->xclient) {
        return 0;
    }
    /* Without XCLIENT the backend would take the session for the proxy's
     * own, with the proxy's relay rights and no login: fail closed, as
     * NGINX does (its XCLIENT is refused, the client gets 451). */
    if (!smtp_ehlo_xclient(r, &attrs)) {
        session_log(s, LOG_LV_ERR, "upstream does not offer XCLIENT "
                    "(is postern's address among its authorized XCLIENT "
                    "hosts?), and xclient is on");
        return -1;
    }
    /* remembered, unless it refused XCLIENT before EHLO lately */
    if (caps_kept(s)
        && !(backend_caps_get(PROTO_SMTP, s->upstream, clock_now(), &known)
             && (known & SMTP_CAPS_EHLO_FIRST))) {
        backend_caps_put(PROTO_SMTP, s->upstream, attrs, clock_now());
    }
    if (xclient_line(s, attrs, &xline) != 0) {
        return -1;
    }
    if (xline.len == 0) {
        session_log(s, LOG_LV_ERR, "upstream's XCLIENT takes nothing "
                    "to pass on (ADDR, NAME, or LOGIN for a logged-in "
                    "client), and xclient is on");
        return -1;
    }
    /* XCLIENT answers with a new greeting; 250 taken too, as NGINX */
    rc = backend_step(s, "sending XCLIENT to upstream", "", xline, 220, 250,
                      r, bad_r);
    free(xline.data);
    return rc == 0 ? 1 : -1;
}

enum sess_rc
smtp_backend_login(struct session *s)
{
    struct smtp_reply r;
    int bad = 0, xclient;

    s->action = "reading response from upstream";
    if (backend_reply(s, &r) != 0) {
        return backend_fail(s, NULL);
    }
    if (r.code != 220) {
        return backend_fail(s, &r);
    }
    xclient = xclient_early(s, &r);
    if (xclient == 0) {
        xclient = xclient_after_ehlo(s, &r, &bad);
    }
    if (xclient < 0) {
        return backend_fail(s, bad ? &r : NULL);
    }
    /* XCLIENT began a new session: the client's HELO/EHLO again */
    if (xclient > 0 && s->smtp_helo.len > 0
        && backend_step(s, "sending client HELO/EHLO to upstream",
                        s->smtp_esmtp ? "EHLO " : "HELO ", s->smtp_helo,
                        220, 250, &r, &bad) != 0) {
        return backend_fail(s, bad ? &r : NULL);
    }
    if (s->method == AUTH_METHOD_NONE) {
        if (backend_step(s, "sending MAIL FROM to upstream", "", s->smtp_from,
                         250, 250, &r, &bad) != 0
            || backend_step(s, "sending RCPT TO to upstream", "", s->smtp_to,
                            0, 0, &r, &bad) != 0) {
            return backend_fail(s, bad ? &r : NULL);
        }
        /* as NGINX: whatever the backend says to RCPT is the client's answer */
        if (session_send(s, (const char *)r.text.data, r.text.len) != 0) {
            return SESS_CLOSE;
        }
        return SESS_OK;
    }
    if (s->sc->proxy_smtp_auth && backend_auth_plain(s, &r, &bad) != 0) {
        return backend_fail(s, bad ? &r : NULL);
    }
    return smtp_reply(s, SMTP_AUTH_OK) == 0 ? SESS_OK : SESS_CLOSE;
}
