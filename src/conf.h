/*
 * conf.h - the loaded configuration: an immutable structure shared by
 * reference.  conf_load() builds it from a libconfig file; a reload builds a
 * new one and sessions keep the one they started with (conf_ref/conf_unref).
 *
 * Every setting of ../shared/design/configuration.md has a field here.
 * Server settings live in struct server_conf; the `mail` group's own values
 * are resolved into each server (a server's own value wins, then mail's,
 * then the default), so code reads only the server's copy.
 */
#ifndef POSTERN_CONF_H
#define POSTERN_CONF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "clock.h"

struct log;
struct keepalive;

enum proto { PROTO_IMAP, PROTO_POP3, PROTO_SMTP };

/* auth mechanisms, as a bit set */
enum {
    AUTH_M_PLAIN    = 1u << 0,   /* IMAP LOGIN / POP3 USER+PASS / AUTH PLAIN */
    AUTH_M_LOGIN    = 1u << 1,   /* AUTH LOGIN (SASL) */
    AUTH_M_APOP     = 1u << 2,
    AUTH_M_CRAM_MD5 = 1u << 3,
    AUTH_M_EXTERNAL = 1u << 4,
    AUTH_M_NONE     = 1u << 5    /* SMTP: no AUTH */
};

enum starttls_mode { STARTTLS_OFF, STARTTLS_ON, STARTTLS_ONLY };
enum verify_client { VERIFY_OFF, VERIFY_ON, VERIFY_OPTIONAL, VERIFY_OPTIONAL_NO_CA };

/* A list of strings (NULL-free array). */
struct strlist {
    size_t n;
    char **v;
};

/* A name/value pair list (auth_http_header). */
struct pairlist {
    size_t n;
    char **name;
    char **value;
};

/* One parsed `listen` value. */
struct listen_conf {
    char *text;                      /* the value as written, for logs */
    struct sockaddr_storage addr;    /* resolved; AF_UNIX for unix: */
    socklen_t addrlen;
    char *host;                      /* as written ("*", name, address) */
    unsigned short port;
    unsigned ssl:1, proxy_protocol:1, bind:1;
    int ipv6only;                    /* -1 unset, 0, 1 */
    int backlog;                     /* -1: default (511, as NGINX on Linux) */
    int rcvbuf, sndbuf;              /* -1 unset */
    int so_keepalive;                /* -1 unset, 0 off, 1 on/idle:intvl:cnt */
    int keepidle, keepintvl, keepcnt;/* 0: system default */
    int line;                        /* config line, for messages */
    struct sockaddr_storage *more;   /* a host name's further addresses */
    size_t nmore;                    /* (split into entries of their own) */
    unsigned alias:1;                /* such an entry: -T prints it once */
    /* without `bind`, an address on a port that has a wildcard of its
     * family is accepted on the wildcard's socket: that listen, or NULL
     * for an address with a socket of its own (set by conf_load) */
    const struct listen_conf *via;
};

struct addr_rule {                   /* set_real_ip_from, access */
    int allow;                       /* access only */
    int all;                         /* "all" */
    int is_unix;                     /* "unix:" */
    int family;                      /* AF_INET / AF_INET6 */
    unsigned char addr[16];
    int prefix;                      /* bits */
};

struct addr_rules {
    size_t n;
    struct addr_rule *v;
};

/* url of auth_http */
struct auth_http_url {
    char *text;
    int is_unix;
    char *host;                      /* HOST (without port) or unix path */
    unsigned short port;
    char *uri;                       /* "/" by default */
    struct sockaddr_storage *addrs;  /* HOST's addresses with port, looked
                                      * up at load (none for unix) */
    size_t naddrs;
    struct keepalive *idle;          /* auth_http_keepalive sockets, or NULL */
};

#define RESOLVER_MAX_SERVERS 16     /* addresses in one `resolver` */
/* The longest server_name: a DNS name's 253 bytes (RFC 1035).  It goes
 * into greetings, EHLO and the CRAM-MD5 / APOP challenge, which are sized
 * from it. */
#define SERVER_NAME_MAX 253

struct resolver_conf {
    int enabled;                     /* "off" -> 0 */
    struct strlist servers;          /* "ADDRESS[:PORT]", names resolved */
    int valid_sec;                   /* -1: use the TTL */
    int ipv4, ipv6;
};

struct server_conf {
    int line;                        /* line of the servers entry */
    size_t index;                    /* position in mail.servers */

    /* core */
    size_t nlisten;
    struct listen_conf *listen;
    enum proto protocol;
    char *server_name;
    msec_t timeout;
    int max_errors;
    struct resolver_conf resolver;
    msec_t resolver_timeout;
    struct addr_rules set_real_ip_from;
    int preauth_per_client;
    struct addr_rules access;
    struct log *error_log;           /* the effective log of this server */
    struct strlist error_log_spec;   /* its error_log values, for -T */

    /* authentication */
    struct auth_http_url *auth_http; /* NULL unless set */
    struct pairlist auth_http_header;
    char *auth_http_header_block;    /* "Name: value\r\n..." built once */
    msec_t auth_http_timeout;
    int auth_http_pass_client_cert;
    int auth_http_keepalive;         /* idle connections kept; 0: none */
    unsigned imap_auth, pop3_auth, smtp_auth;   /* AUTH_M_* sets */
    char *auth_file;                 /* absolute path, NULL unless set */

    /* protocols */
    struct strlist imap_capabilities;
    size_t imap_client_buffer;
    struct strlist pop3_capabilities;
    struct strlist smtp_capabilities;
    size_t smtp_client_buffer;
    msec_t smtp_greeting_delay;

    /* proxy */
    int proxy;
    size_t proxy_buffer;
    int proxy_pass_error_message;
    msec_t proxy_timeout;
    int proxy_protocol;
    int proxy_smtp_auth;
    int xclient;

    /* TLS */
    int ssl;
    enum starttls_mode starttls;
    struct strlist ssl_certificate, ssl_certificate_key;
    char *ssl_password_file;
    struct strlist ssl_protocols;
    char *ssl_ciphers;
    char *ssl_priority;
    int ssl_prefer_server_ciphers;
    char *ssl_dhparam;
    char *ssl_ecdh_curve;
    struct strlist ssl_session_cache;   /* tokens */
    int ssl_session_timeout;            /* seconds */
    int ssl_session_tickets;
    struct strlist ssl_session_ticket_key;
    enum verify_client ssl_verify_client;
    int ssl_verify_depth;
    char *ssl_client_certificate, *ssl_trusted_certificate, *ssl_crl;

    /* built at load time by the protocol modules (see proto.h) */
    void *proto_data;
    /* built at load time by tls.c when the server uses TLS */
    void *tls_data;
    /* built at load time by auth_file.c when auth_file is set */
    void *auth_file_data;
};

struct conf {
    atomic_int refs;
    unsigned long generation;        /* loads before this one, plus 1 */
    char *path;                      /* absolute path of the file */
    char *dir;                       /* its directory */

    int daemon;
    char *user, *group;              /* NULL: keep */
    char *pid;
    struct log *error_log;           /* top-level log */
    struct strlist error_log_spec;   /* its error_log values, for -T */
    int worker_threads;
    int relay_threads;           /* 0: "auto", one per online CPU */
    int worker_connections;
    int worker_rlimit_nofile;        /* -1 unset */
    msec_t shutdown_timeout;         /* -1 unset */

    size_t nservers;
    struct server_conf *servers;

    /* every struct log built for this configuration (top, mail, servers);
     * servers may share one, so they are freed from here, once each */
    size_t nlogs;
    struct log **logs;
};

/*
 * Load and validate a configuration file.  On error returns NULL and writes
 * "FILE:LINE: SETTING: what is wrong" into err.  The result has refs == 1.
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);
struct conf *conf_ref(struct conf *c);
void conf_unref(struct conf *c);

/* Print the effective configuration (inheritance resolved) for -T. */
void conf_dump(const struct conf *c, FILE *out);

/* Parsers of value syntaxes, exposed for unit tests.  0 ok, -1 invalid. */
int conf_parse_time(const char *s, int unit_is_sec, msec_t *ms_r);
int conf_parse_size(const char *s, size_t *r);
int conf_parse_listen(const char *s, struct listen_conf *l,
                      char *err, size_t errlen);
void listen_conf_free(struct listen_conf *l);
/* Whether l is `*` or `[::]`: it accepts on every local address. */
int listen_is_wildcard(const struct listen_conf *l);
/* Whether a and b name the same address and port (or UNIX path). */
int listen_same_addr(const struct listen_conf *a, const struct listen_conf *b);
/* Whether sa (a socket's local address) is the address of l. */
int listen_is_addr(const struct listen_conf *l, const struct sockaddr *sa);
int conf_parse_addr_rule(const char *s, int with_verb, struct addr_rule *r);
/* 1 if the address matches the rule list; for access, *allow_r says what. */
int addr_rules_match(const struct addr_rules *rules,
                     const struct sockaddr *sa, int *allow_r);

const char *proto_name(enum proto p);

#endif
