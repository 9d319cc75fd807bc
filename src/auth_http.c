/*
 * auth_http.c - the NGINX auth protocol client (ngx_mail_auth_http_module's
 * protocol): one HTTP/1.0 GET per login attempt, the answer in response
 * headers; on a new connection each time, as NGINX does, or on one kept
 * open from an earlier attempt (auth_http_keepalive).
 *
 * Handles untrusted input twice: client values go out in request headers
 * (escaped so no byte can start a new header line) and the auth service's
 * response comes back through http_parse.c with hard bounds.  Handles
 * secrets: the request text and the response buffer hold passwords and are
 * wiped before they are freed; nothing here logs.  Blocking I/O with
 * poll() and one deadline per request (auth_http_timeout).  Shared state:
 * only the server's stack of idle connections (auth_http_keepalive,
 * keepalive.c, which locks it); everything else each call owns.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "auth_http.h"
#include "auth_impl.h"
#include "clock.h"
#include "conn.h"
#include "escape.h"
#include "http_parse.h"
#include "keepalive.h"
#include "str.h"

/* "Auth-Status: WAIT" rounds before we give up, and the longest pause. */
#define AUTH_HTTP_MAX_WAIT_ROUNDS 5
#define AUTH_HTTP_MAX_WAIT_SEC    60

/* "Name: value\r\n" with value as it is (the caller proved it clean). */
static void
header_raw(struct str_builder *b, const char *name, const void *v, size_t n)
{
    str_builder_puts(b, name);
    str_builder_add(b, ": ", 2);
    str_builder_add(b, v, n);
    str_builder_add(b, "\r\n", 2);
}

/* "Name: escaped-value\r\n": for anything a client chose. */
static void
header_escaped(struct str_builder *b, const char *name, struct str v)
{
    unsigned char *out;
    size_t n;

    str_builder_puts(b, name);
    str_builder_add(b, ": ", 2);
    n = escape_mail_auth_len(v);
    if ((out = str_builder_extend(b, n)) != NULL) {
        escape_mail_auth(v, (char *)out);
    }
    str_builder_add(b, "\r\n", 2);
}

/*
 * A client's SMTP words (HELO, MAIL FROM, RCPT TO lines): raw as NGINX
 * sends them ("Auth-SMTP-From: MAIL FROM:<a@b>") when free of CR, LF and
 * NUL, which the SMTP parser guarantees; escaped otherwise.
 */
static void
header_smtp(struct str_builder *b, const char *name, struct str v)
{
    if (escape_is_clean(v.data, v.len)) {
        header_raw(b, name, v.data, v.len);
    } else {
        header_escaped(b, name, v);
    }
}

/*
 * A header from our own text (TLS facts, addresses): sent as NGINX sends
 * it when clean, escaped otherwise, skipped when unset.
 */
static void
header_text(struct str_builder *b, const char *name, const char *v)
{
    struct str s;

    if (v == NULL || *v == '\0') {
        return;
    }
    s.data = (unsigned char *)v;
    s.len = strlen(v);
    if (escape_is_clean(s.data, s.len)) {
        header_raw(b, name, s.data, s.len);
    } else {
        header_escaped(b, name, s);
    }
}

/* Build the request text (see auth_http.h). */
int
auth_http_build_request(const struct server_conf *sc,
                        const struct auth_request *rq, char **req_r,
                        size_t *len_r, char *err, size_t errlen)
{
    const struct auth_http_url *u = sc->auth_http;
    struct str_builder b = STR_BUILDER_INIT;
    struct str text;
    struct str salt = STR_NULL;
    const char *uri;
    char num[32];

    *req_r = NULL;
    *len_r = 0;
    if (u == NULL) {
        snprintf(err, errlen, "no auth_http url");
        return -1;
    }
    uri = (u->uri != NULL && *u->uri != '\0') ? u->uri : "/";
    if (!escape_is_clean((const unsigned char *)uri, strlen(uri))
        || strchr(uri, ' ') != NULL) {
        snprintf(err, errlen, "auth_http uri holds a blank or line break");
        return -1;
    }
    if (rq->method == AUTH_METHOD_APOP || rq->method == AUTH_METHOD_CRAM_MD5) {
        /* the salt is ours, not the client's: send it as the digest used it,
         * without the line end it may carry */
        salt = rq->salt;
        while (salt.len > 0 && (salt.data[salt.len - 1] == '\n'
                                || salt.data[salt.len - 1] == '\r')) {
            salt.len--;
        }
        if (!escape_is_clean(salt.data, salt.len)) {
            snprintf(err, errlen, "salt holds CR, LF or NUL");
            return -1;
        }
    }

    str_builder_puts(&b, "GET ");
    str_builder_puts(&b, uri);
    str_builder_puts(&b, " HTTP/1.0\r\n");

    str_builder_puts(&b, "Host: ");
    if (u->is_unix || u->host == NULL) {
        str_builder_puts(&b, "localhost");
    } else if (strchr(u->host, ':') != NULL && u->host[0] != '[') {
        str_builder_puts(&b, "[");
        str_builder_puts(&b, u->host);
        str_builder_puts(&b, "]");
    } else {
        str_builder_puts(&b, u->host);
    }
    str_builder_puts(&b, "\r\n");
    if (sc->auth_http_keepalive > 0) {
        /* HTTP/1.0 keep-alive: the request stays NGINX's, and a server
         * that does not know the header simply closes as before */
        str_builder_puts(&b, "Connection: keep-alive\r\n");
    }

    header_raw(&b, "Auth-Method", auth_method_name(rq->method),
                  strlen(auth_method_name(rq->method)));
    header_escaped(&b, "Auth-User", rq->user);
    header_escaped(&b, "Auth-Pass", rq->pass);
    if (salt.len > 0) {
        header_raw(&b, "Auth-Salt", salt.data, salt.len);
    }
    header_raw(&b, "Auth-Protocol", proto_name(rq->protocol),
                  strlen(proto_name(rq->protocol)));
    snprintf(num, sizeof(num), "%d", rq->attempt > 0 ? rq->attempt : 1);
    header_raw(&b, "Auth-Login-Attempt", num, strlen(num));
    header_text(&b, "Client-IP", rq->client_ip);
    if (rq->client_host != NULL && *rq->client_host != '\0') {
        struct str h;

        h.data = (unsigned char *)rq->client_host;
        h.len = strlen(rq->client_host);
        header_escaped(&b, "Client-Host", h);
    }

    header_text(&b, "Proxy-Protocol-Addr", rq->pp_addr);
    header_text(&b, "Proxy-Protocol-Port", rq->pp_port);
    header_text(&b, "Proxy-Protocol-Server-Addr", rq->pp_server_addr);
    header_text(&b, "Proxy-Protocol-Server-Port", rq->pp_server_port);

    if (rq->protocol == PROTO_SMTP && rq->method == AUTH_METHOD_NONE) {
        /* the envelope stands for the login under "none", and only then,
         * as NGINX sends it */
        header_smtp(&b, "Auth-SMTP-Helo", rq->smtp_helo);
        header_smtp(&b, "Auth-SMTP-From", rq->smtp_from);
        header_smtp(&b, "Auth-SMTP-To", rq->smtp_to);
    }

    if (rq->ssl) {
        str_builder_puts(&b, "Auth-SSL: on\r\n");
        header_text(&b, "Auth-SSL-Protocol", rq->ssl_protocol);
        header_text(&b, "Auth-SSL-Cipher", rq->ssl_cipher);
        if (sc->ssl_verify_client != VERIFY_OFF) {
            /* as NGINX: the result only where a certificate was asked for */
            header_text(&b, "Auth-SSL-Verify", rq->ssl_verify);
        }
        header_text(&b, "Auth-SSL-Subject", rq->ssl_subject);
        header_text(&b, "Auth-SSL-Issuer", rq->ssl_issuer);
        header_text(&b, "Auth-SSL-Serial", rq->ssl_serial);
        header_text(&b, "Auth-SSL-Fingerprint", rq->ssl_fingerprint);
        if (sc->auth_http_pass_client_cert && rq->ssl_cert != NULL
            && *rq->ssl_cert != '\0') {
            struct str c;

            /* PEM has line breaks: always escaped, as NGINX does */
            c.data = (unsigned char *)rq->ssl_cert;
            c.len = strlen(rq->ssl_cert);
            header_escaped(&b, "Auth-SSL-Cert", c);
        }
    }

    if (sc->auth_http_header_block != NULL) {
        str_builder_puts(&b, sc->auth_http_header_block);
    }
    str_builder_puts(&b, "\r\n");

    if (str_builder_take(&b, &text) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *req_r = (char *)text.data;
    *len_r = text.len;
    return 0;
}

/* Peer text for log reasons, as NGINX names the auth server. */
void
auth_http_peer_name(const struct auth_http_url *u, char *out, size_t outlen)
{
    if (u == NULL || u->host == NULL) {
        snprintf(out, outlen, "(none)");
    } else if (u->is_unix) {
        snprintf(out, outlen, "unix:%s", u->host);
    } else if (strchr(u->host, ':') != NULL && u->host[0] != '[') {
        snprintf(out, outlen, "[%s]:%u", u->host, (unsigned)u->port);
    } else {
        snprintf(out, outlen, "%s:%u", u->host, (unsigned)u->port);
    }
}

/* Strict decimal: 1..maxdigits digits, nothing else; -1 if not. */
static long
parse_number(struct str v, size_t maxdigits)
{
    long n = 0;
    size_t i;

    if (v.len == 0 || v.len > maxdigits) {
        return -1;
    }
    for (i = 0; i < v.len; i++) {
        if (v.data[i] < '0' || v.data[i] > '9') {
            return -1;
        }
        n = n * 10 + (v.data[i] - '0');
    }
    return n;
}

/*
 * An Auth-Server value: an IPv4 / IPv6 address (brackets allowed) or a
 * host name.  Into a heap string without brackets; NULL when invalid.
 */
static char *
server_dup(struct str v, int *nomem_r)
{
    size_t i;
    char *s;

    *nomem_r = 0;
    if (v.len >= 2 && v.data[0] == '[' && v.data[v.len - 1] == ']') {
        v.data++;
        v.len -= 2;
    }
    if (v.len == 0 || v.len > 255) {
        return NULL;
    }
    for (i = 0; i < v.len; i++) {
        unsigned char c = v.data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'
              || c == ':')) {
            return NULL;
        }
    }
    s = str_dup0(v);
    if (s == NULL) {
        *nomem_r = 1;
    }
    return s;
}

/* A value for a log reason: sanitised and cut to a readable length. */
static void
show(struct str v, char *out, size_t outlen)
{
    size_t i, n;

    n = v.len < outlen - 1 ? v.len : outlen - 1;
    for (i = 0; i < n; i++) {
        unsigned char c = v.data[i];

        out[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    out[n] = '\0';
}

/* 1 if the comma-separated header value v lists token (any case). */
static int
has_token(struct str v, const char *token)
{
    size_t i = 0, n = strlen(token);

    while (i < v.len) {
        size_t start, end;

        while (i < v.len && (v.data[i] == ' ' || v.data[i] == '\t'
                             || v.data[i] == ',')) {
            i++;
        }
        start = i;
        while (i < v.len && v.data[i] != ',') {
            i++;
        }
        end = i;
        while (end > start && (v.data[end - 1] == ' '
                               || v.data[end - 1] == '\t')) {
            end--;
        }
        if (end - start == n
            && strncasecmp((const char *)v.data + start, token, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * Whether the Connection headers, all of them, ask to keep the connection:
 * keep-alive in one, close in none.
 */
static int
keeps_alive(const struct http_response *hr, const unsigned char *buf)
{
    struct str v;
    size_t pos = 0;
    int keep = 0;

    while (http_header_next(hr, buf, "Connection", &pos, &v)) {
        if (has_token(v, "close")) {
            return 0;
        }
        keep |= has_token(v, "keep-alive");
    }
    return keep;
}

/*
 * The body length every Content-Length header agrees on; -1 when there is
 * none, one is not a number, or two differ (RFC 9112 section 6.3: the
 * framing is then unknown).
 */
static long
content_length(const struct http_response *hr, const unsigned char *buf)
{
    struct str v;
    size_t pos = 0;
    long n, body = -1;

    while (http_header_next(hr, buf, "Content-Length", &pos, &v)) {
        if ((n = parse_number(v, 5)) < 0 || (body >= 0 && n != body)) {
            return -1;
        }
        body = n;
    }
    return body;
}

/* Whether the connection may carry another request (see auth_http.h). */
int
auth_http_reusable(const struct http_response *hr, const unsigned char *buf,
                   size_t *total_r)
{
    struct str te;
    long body;

    *total_r = 0;
    /* an interim 1xx is never a whole exchange: its final response is
     * still to come on this connection */
    if (hr->done != HTTP_PARSE_OK || hr->status < 200
        || !keeps_alive(hr, buf)
        || http_header_get(hr, buf, "Transfer-Encoding", &te)) {
        return 0;
    }
    if (hr->status == 204 || hr->status == 304) {
        body = 0;
    } else if ((body = content_length(hr, buf)) < 0
               || (size_t)body > HTTP_MAX_TOTAL - hr->header_end) {
        return 0;               /* ends at close, or too long to read */
    }
    *total_r = hr->header_end + (size_t)body;
    return 1;
}

/* What the Auth-Status headers of one answer say together. */
enum status_kind {
    STATUS_NONE,            /* no Auth-Status */
    STATUS_EMPTY,           /* an empty one: malformed, not a verdict */
    STATUS_OK,
    STATUS_WAIT,
    STATUS_REFUSED          /* *text_r is the refusal text */
};

/*
 * Read every Auth-Status header, as NGINX does: a value other than OK and
 * WAIT refuses with that text (the last such value), whatever OK or WAIT
 * comes before or after it, so that an answer that says both fails
 * closed; otherwise one WAIT asks again; otherwise all said OK.
 */
static enum status_kind
read_status(const struct http_response *hr, const unsigned char *buf,
            struct str *text_r)
{
    enum status_kind kind = STATUS_NONE;
    struct str v;
    size_t pos = 0;

    while (http_header_next(hr, buf, "Auth-Status", &pos, &v)) {
        if (v.len == 0) {
            return STATUS_EMPTY;
        }
        if (str_eq(v, "OK")) {
            if (kind == STATUS_NONE) {
                kind = STATUS_OK;
            }
        } else if (str_eq(v, "WAIT")) {
            if (kind != STATUS_REFUSED) {
                kind = STATUS_WAIT;
            }
        } else {
            kind = STATUS_REFUSED;
            *text_r = v;
        }
    }
    return kind;
}

/*
 * Auth-Wait seconds: the last value that is a number, -1 if none.  A
 * value that is not a number is ignored, as NGINX ignores it; the last
 * such value goes into *bad_r (data NULL if none) for the log.
 */
static long
read_wait(const struct http_response *hr, const unsigned char *buf,
          struct str *bad_r)
{
    struct str v;
    size_t pos = 0;
    long n, wait = -1;

    bad_r->data = NULL;
    bad_r->len = 0;
    while (http_header_next(hr, buf, "Auth-Wait", &pos, &v)) {
        if ((n = parse_number(v, 9)) < 0) {
            *bad_r = v;
        } else {
            wait = n;
        }
    }
    return wait;
}

/* Turn a parsed response into a result (see auth_http.h). */
enum auth_http_verdict
auth_http_interpret(const struct http_response *hr, const unsigned char *buf,
                    const struct auth_request *rq, const char *peer,
                    struct auth_result *r)
{
    struct str status = STR_NULL, server, port, user, pass, badwait, code;
    enum status_kind kind;
    char shown[80];
    int nomem;
    long n;

    if (hr->done != HTTP_PARSE_OK) {
        if (!hr->in_headers || hr->status < 0) {
            auth_result_tempfail(r, "auth http server %s sent invalid "
                                 "response (%s)", peer,
                                 hr->error ? hr->error : "incomplete");
        } else {
            auth_result_tempfail(r, "auth http server %s sent invalid "
                                 "header in response (%s)", peer,
                                 hr->error ? hr->error : "incomplete");
        }
        return AUTH_HTTP_DONE;
    }
    if (hr->status < 200) {
        /* exchange() skips interim answers; what is left (101) switches
         * to a protocol nobody asked for */
        auth_result_tempfail(r, "auth http server %s sent HTTP status %d "
                             "instead of a final response", peer,
                             hr->status);
        return AUTH_HTTP_DONE;
    }
    kind = read_status(hr, buf, &status);
    if (kind == STATUS_NONE || kind == STATUS_EMPTY) {
        auth_result_tempfail(r, "auth http server %s sent %s Auth-Status "
                             "header (HTTP status %d)", peer,
                             kind == STATUS_NONE ? "no" : "an empty",
                             hr->status);
        return AUTH_HTTP_DONE;
    }

    if (kind == STATUS_OK) {
        if (!http_header_get(hr, buf, "Auth-Server", &server)
            || !http_header_get(hr, buf, "Auth-Port", &port)
            || server.len == 0 || port.len == 0) {
            auth_result_tempfail(r, "auth http server %s did not send "
                                 "server or port", peer);
            return AUTH_HTTP_DONE;
        }
        n = parse_number(port, 5);
        if (n < 1 || n > 65535) {
            show(port, shown, sizeof(shown));
            auth_result_tempfail(r, "auth http server %s sent invalid "
                                 "server port:\"%s\"", peer, shown);
            return AUTH_HTTP_DONE;
        }
        r->server = server_dup(server, &nomem);
        if (r->server == NULL) {
            if (nomem) {
                auth_result_tempfail(r, "out of memory");
            } else {
                show(server, shown, sizeof(shown));
                auth_result_tempfail(r, "auth http server %s sent invalid "
                                     "server address:\"%s\"", peer, shown);
            }
            return AUTH_HTTP_DONE;
        }
        r->port = (unsigned short)n;
        /* Auth-User / Auth-Pass are taken verbatim, as NGINX does; the
         * parser already refused CR, LF, NUL and other controls */
        if (http_header_get(hr, buf, "Auth-User", &user) && user.len > 0
            && auth_str_copy(&r->user, user.data, user.len) < 0) {
            auth_result_tempfail(r, "out of memory");
            return AUTH_HTTP_DONE;
        }
        if (http_header_get(hr, buf, "Auth-Pass", &pass) && pass.len > 0
            && auth_str_copy(&r->pass, pass.data, pass.len) < 0) {
            auth_result_tempfail(r, "out of memory");
            return AUTH_HTTP_DONE;
        }
        /* without the clear-text password we cannot log in to an IMAP or
         * POP3 backend after APOP, CRAM-MD5 or EXTERNAL */
        if (r->pass.len == 0 && rq->protocol != PROTO_SMTP
            && (rq->method == AUTH_METHOD_APOP
                || rq->method == AUTH_METHOD_CRAM_MD5
                || rq->method == AUTH_METHOD_EXTERNAL)) {
            auth_result_tempfail(r, "auth http server %s did not send "
                                 "password", peer);
            return AUTH_HTTP_DONE;
        }
        r->status = AUTH_OK;
        return AUTH_HTTP_DONE;
    }

    r->wait = (int)read_wait(hr, buf, &badwait);
    if (kind == STATUS_WAIT) {
        /* ask again after Auth-Wait seconds (NGINX: at once without one) */
        if (r->wait < 0) {
            r->wait = 0;
        }
        return AUTH_HTTP_RETRY;
    }

    r->status = AUTH_FAIL;
    r->message = escape_sanitized_dup(status);
    if (r->message == NULL) {
        auth_result_tempfail(r, "out of memory");
        return AUTH_HTTP_DONE;
    }
    if (http_header_get(hr, buf, "Auth-Error-Code", &code) && code.len > 0) {
        r->error_code = escape_sanitized_dup(code);
        if (r->error_code == NULL) {
            auth_result_tempfail(r, "out of memory");
            return AUTH_HTTP_DONE;
        }
    }
    if (badwait.data != NULL) {
        /* the refusal stands; the session logs this reason with it */
        show(badwait, shown, sizeof(shown));
        auth_result_reason(r, "auth http server %s sent invalid wait:\"%s\""
                           ", ignored", peer, shown);
    }
    return AUTH_HTTP_DONE;
}

/*
 * Connect to the auth server until the deadline, trying each address its
 * host had when the configuration was loaded (no lookup here); fd or -1
 * with err.
 */
static int
connect_peer(const struct auth_http_url *u, msec_t deadline, char *err,
             size_t errlen)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    int fd = -1;

    if (u->is_unix) {
        /* net_connect() takes "unix:PATH" */
        if (snprintf(path, sizeof(path), "unix:%s", u->host)
            >= (int)sizeof(path)) {
            snprintf(err, errlen, "socket path too long");
            return -1;
        }
        return net_connect(path, 0, deadline, err, errlen);
    }
    if (u->naddrs == 0) {
        snprintf(err, errlen, "host \"%s\" has no address", u->host);
        return -1;
    }
    for (size_t i = 0; i < u->naddrs && fd < 0; i++) {
        const struct sockaddr_storage *ss = &u->addrs[i];
        socklen_t len = ss->ss_family == AF_INET6
            ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

        fd = net_connect_addr((const struct sockaddr *)ss, len, deadline,
                              err, errlen);
    }
    return fd;
}

/* Send all bytes until the deadline: 0 ok, -1 (errno, ETIMEDOUT). */
static int
send_all(int fd, const char *p, size_t len, msec_t deadline)
{
    ssize_t n;
    int w;

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            w = conn_poll(fd, POLLOUT, deadline, NULL);
            if (w == 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            if (w < 0) {
                return -1;
            }
            continue;
        }
        return -1;
    }
    return 0;
}

/* What became of one request on one connection. */
enum exchange_rc {
    EXCHANGE_OK,            /* a final response head (and its body if kept) */
    EXCHANGE_FAILED,        /* *r says why */
    EXCHANGE_STALE          /* a reused connection closed before answering */
};

/*
 * Send req on fd and read the final response head into buf until the
 * deadline: it starts at *head_r (after any interim heads), and *len_r
 * bytes were read in all.  With want_keep, also read the body to its
 * end; *keep_r is 1 only when the connection may carry another request:
 * one complete, well-framed final response and not a byte more.  On
 * every other way out (timeout, error, close, extra bytes, a response
 * whose end is unknown) it is 0, and the caller closes the connection.
 */
static enum exchange_rc
exchange(int fd, int reused, const char *req, size_t reqlen, msec_t deadline,
         int want_keep, struct http_response *hr, unsigned char *buf,
         size_t *head_r, size_t *len_r, int *keep_r, const char *peer,
         struct auth_result *r)
{
    size_t len = 0, head = 0, total = 0;
    ssize_t n;
    int w, done = 0;    /* done: the final head is complete */
    int wait = 1;       /* only just asked: a recv() now would say EAGAIN */

    *head_r = 0;
    *len_r = 0;
    *keep_r = 0;
    if (send_all(fd, req, reqlen, deadline) < 0) {
        if (reused && errno != ETIMEDOUT) {
            return EXCHANGE_STALE;
        }
        if (errno == ETIMEDOUT) {
            auth_result_tempfail(r, "auth http server %s timed out", peer);
        } else {
            auth_result_tempfail(r, "auth http server %s: send() failed "
                                 "(%s)", peer, strerror(errno));
        }
        return EXCHANGE_FAILED;
    }
    http_parse_init(hr);
    for (;;) {
        if (wait) {
            w = conn_poll(fd, POLLIN, deadline, NULL);
            if (w <= 0 && done) {
                return EXCHANGE_OK;         /* the body never ended */
            }
            if (w == 0) {
                auth_result_tempfail(r, "auth http server %s timed out", peer);
                return EXCHANGE_FAILED;
            }
            if (w < 0) {
                auth_result_tempfail(r, "auth http server %s: poll() failed "
                                     "(%s)", peer, errno == ECANCELED
                                     ? "server is shutting down"
                                     : strerror(errno));
                return EXCHANGE_FAILED;
            }
            wait = 0;
        }
        if (len == HTTP_MAX_TOTAL) {
            /* interim heads filled the buffer (one head too big is the
             * parser's error, a body too long for it is never read) */
            auth_result_tempfail(r, "auth http server %s sent invalid "
                                 "response (interim responses too big)",
                                 peer);
            return EXCHANGE_FAILED;
        }
        n = recv(fd, buf + len, HTTP_MAX_TOTAL - len, 0);
        if (n > 0) {
            len += (size_t)n;
            *len_r = len;
            if (!done) {
                if (http_parse_final(hr, buf, &head, len)
                    == HTTP_PARSE_AGAIN) {
                    continue;
                }
                done = 1;
                *head_r = head;
                if (!want_keep
                    || !auth_http_reusable(hr, buf + head, &total)
                    || total > HTTP_MAX_TOTAL - head) {
                    return EXCHANGE_OK;
                }
                total += head;
            }
            if (len >= total) {
                *keep_r = len == total;     /* bytes past it: not ours */
                return EXCHANGE_OK;
            }
            continue;
        }
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            if (reused && len == 0) {
                return EXCHANGE_STALE;
            }
            if (done) {                     /* the body was cut short */
                return EXCHANGE_OK;
            }
            auth_result_tempfail(r, "auth http server %s closed the "
                                 "connection before a complete response",
                                 peer);
            return EXCHANGE_FAILED;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            if (done) {                     /* the head is all we need */
                return EXCHANGE_OK;
            }
            auth_result_tempfail(r, "auth http server %s: recv() failed "
                                 "(%s)", peer, strerror(errno));
            return EXCHANGE_FAILED;
        }
        wait = 1;
    }
}

/*
 * One request and its answer; the verdict says whether to ask again.  With
 * auth_http_keepalive the request goes on an idle connection when there is
 * one; if that connection turns out closed before any answer byte, the
 * request is sent once more on a new connection (a GET that got no answer
 * is safe to repeat, RFC 9112 section 9.3.1).
 */
static enum auth_http_verdict
one_round(const struct server_conf *sc, const struct auth_request *rq,
          const char *peer, struct auth_result *r)
{
    struct keepalive *idle = sc->auth_http->idle;
    enum auth_http_verdict verdict = AUTH_HTTP_DONE;
    enum exchange_rc rc = EXCHANGE_STALE;
    struct http_response *hr = NULL;
    unsigned char *buf = NULL;
    char *req = NULL;
    size_t reqlen = 0, head = 0, len = 0;
    char err[256];
    msec_t deadline;
    int fd = -1, keep = 0, reused, tries;

    if (auth_http_build_request(sc, rq, &req, &reqlen, err, sizeof(err))
        < 0) {
        auth_result_tempfail(r, "cannot build request to auth http server "
                             "%s: %s", peer, err);
        goto done;
    }
    deadline = clock_now() + sc->auth_http_timeout;
    if (rq->deadline > 0 && rq->deadline < deadline) {
        deadline = rq->deadline;
    }
    hr = malloc(sizeof(*hr));
    buf = malloc(HTTP_MAX_TOTAL);
    if (hr == NULL || buf == NULL) {
        auth_result_tempfail(r, "out of memory");
        goto done;
    }
    for (tries = 0; rc == EXCHANGE_STALE && tries < 2; tries++) {
        if (fd >= 0) {
            close(fd);
        }
        fd = (idle != NULL && tries == 0) ? keepalive_take(idle) : -1;
        reused = fd >= 0;
        if (fd < 0) {
            fd = connect_peer(sc->auth_http, deadline, err, sizeof(err));
        }
        if (fd < 0) {
            auth_result_tempfail(r, "auth http server %s: %s", peer, err);
            goto done;
        }
        rc = exchange(fd, reused, req, reqlen, deadline, idle != NULL, hr,
                      buf, &head, &len, &keep, peer, r);
    }
    if (rc == EXCHANGE_OK) {
        verdict = auth_http_interpret(hr, buf + head, rq, peer, r);
    }

done:
    if (fd >= 0 && keep && rc == EXCHANGE_OK) {
        keepalive_give(idle, fd);
    } else if (fd >= 0) {
        close(fd);
    }
    if (req != NULL) {
        mem_wipe(req, reqlen);
        free(req);
    }
    if (buf != NULL) {
        mem_wipe(buf, len);              /* Auth-Pass may be in it */
        free(buf);
    }
    free(hr);
    return verdict;
}

/* Ask the auth_http service (see auth.h), following WAIT answers. */
void
auth_http_query(const struct server_conf *sc, const struct auth_request *rq,
                struct auth_result *r)
{
    char peer[300];
    int round, ms;

    auth_result_init(r);
    if (sc->auth_http == NULL || sc->auth_http->host == NULL) {
        auth_result_tempfail(r, "no auth_http for this server");
        return;
    }
    auth_http_peer_name(sc->auth_http, peer, sizeof(peer));
    for (round = 1;; round++) {
        if (one_round(sc, rq, peer, r) == AUTH_HTTP_DONE) {
            return;
        }
        if (round == AUTH_HTTP_MAX_WAIT_ROUNDS) {
            auth_result_free(r);
            auth_result_tempfail(r, "auth http server %s answered WAIT %d "
                                 "times", peer, round);
            return;
        }
        ms = (r->wait > AUTH_HTTP_MAX_WAIT_SEC ? AUTH_HTTP_MAX_WAIT_SEC
              : r->wait) * 1000;
        auth_result_free(r);
        if (rq->deadline > 0 && clock_now() + ms >= rq->deadline) {
            auth_result_tempfail(r, "auth http server %s answered WAIT "
                                 "beyond the session's timeout", peer);
            return;
        }
        /* a fast stop ends the wait (and the session) */
        if (ms > 0 && conn_poll(-1, 0, clock_now() + ms, NULL) < 0) {
            auth_result_tempfail(r, "auth http server %s: WAIT not waited "
                                 "for: server is shutting down", peer);
            return;
        }
    }
}
