/*
 * auth.h - asking an auth service which backend holds a mailbox.
 *
 * One request and one result type shared by auth_http.c (the NGINX auth
 * protocol) and auth_file.c (the built-in user file); session.c calls
 * auth_query(), which picks the one the server is configured with.
 */
#ifndef POSTERN_AUTH_H
#define POSTERN_AUTH_H

#include "conf.h"
#include "str.h"

enum auth_method {
    AUTH_METHOD_PLAIN,      /* "plain": LOGIN, USER/PASS, AUTH PLAIN */
    AUTH_METHOD_LOGIN,      /* "login": AUTH LOGIN */
    AUTH_METHOD_APOP,       /* "apop" */
    AUTH_METHOD_CRAM_MD5,   /* "cram-md5" */
    AUTH_METHOD_EXTERNAL,   /* "external" */
    AUTH_METHOD_NONE        /* "none": SMTP without AUTH */
};
const char *auth_method_name(enum auth_method m);   /* the Auth-Method value */

struct auth_request {
    enum auth_method method;
    struct str user;        /* wire bytes; may contain anything */
    struct str pass;        /* password, APOP digest or CRAM-MD5 response */
    struct str salt;        /* APOP / CRAM-MD5 challenge as sent, else empty */
    enum proto protocol;
    int attempt;            /* Auth-Login-Attempt, from 1 */
    const char *client_ip;  /* text */
    const char *client_host;/* Client-Host: the confirmed name,
                             * "[UNAVAILABLE]" or "[TEMPUNAVAIL]"; NULL:
                             * none sent (see session_client_host) */
    /* TLS facts (NULL when not under TLS) */
    int ssl;
    const char *ssl_protocol, *ssl_cipher, *ssl_verify, *ssl_subject,
               *ssl_issuer, *ssl_serial, *ssl_fingerprint, *ssl_cert;
    /* SMTP */
    struct str smtp_helo, smtp_from, smtp_to;
    /* PROXY protocol (NULL unless the client came with a header) */
    const char *pp_addr, *pp_port, *pp_server_addr, *pp_server_port;
    const char *server_ip;  /* local address of the client connection */
    msec_t deadline;        /* the session's (`timeout`); 0: none.  No wait
                             * for the service, WAIT rounds included, may
                             * outlast it */
};

/* The most of an auth service's refusal text that goes into a reply line:
 * the text may be as long as a header line, a reply must fit the
 * session's send buffer (session_sendf). */
#define AUTH_MESSAGE_SHOWN 512

enum auth_status {
    AUTH_OK,                /* backend in server/port */
    AUTH_FAIL,              /* credentials refused: message for the client */
    AUTH_TEMPFAIL,          /* service down, malformed reply: temporary error */
};

struct auth_result {
    enum auth_status status;
    char *server;           /* Auth-Server: address or host name */
    unsigned short port;    /* Auth-Port */
    struct str user;        /* Auth-User (replaces the login), or empty */
    struct str pass;        /* Auth-Pass (replaces the password), or empty */
    int wait;               /* Auth-Wait seconds, -1 if absent */
    char *error_code;       /* Auth-Error-Code (SMTP), or NULL */
    char *message;          /* Auth-Status text when not OK (sanitised: no CR/LF);
                             * a client is shown AUTH_MESSAGE_SHOWN bytes */
    char *log_reason;       /* why, for the log (tempfail) */
};

/*
 * Ask the configured service; blocks until the answer or deadline
 * (auth_http_timeout for HTTP).  Always fills *r (status TEMPFAIL on any
 * error with r->log_reason set).  Free with auth_result_free().
 */
void auth_query(const struct server_conf *sc, const struct auth_request *rq,
                struct auth_result *r);
void auth_result_free(struct auth_result *r);   /* wipes pass */

/* Backends: same contract as auth_query. */
void auth_http_query(const struct server_conf *sc,
                     const struct auth_request *rq, struct auth_result *r);
void auth_file_query(const struct server_conf *sc,
                     const struct auth_request *rq, struct auth_result *r);

/*
 * auth_file lifecycle, called by the configuration loader: parse the file
 * into an opaque table (sc->auth_file_data); a malformed line is an error
 * "FILE:LINE: what is wrong".
 */
void *auth_file_load(const char *path, char *err, size_t errlen);
void auth_file_free(void *table);

#endif
