/*
 * conf_int.h - private to the configuration loader (conf.c, conf_table.c,
 * conf_value.c) and its unit tests.
 *
 * Settings are data: conf_settings[] has one row per setting with its name,
 * value type, the scopes it may appear in, its default written as libconfig
 * text, and where it is stored.  The loader, the defaults, inheritance,
 * conf_dump() (-T) and the man-page test are all driven by that table.
 */
#ifndef POSTERN_CONF_INT_H
#define POSTERN_CONF_INT_H

#include <stddef.h>
#include <stdio.h>
#include <libconfig.h>

#include "conf.h"

/* scopes a setting may stand in */
enum {
    SC_TOP    = 1u << 0,     /* the top level of the file */
    SC_MAIL   = 1u << 1,     /* the mail group (inherited by servers) */
    SC_SERVER = 1u << 2      /* one entry of mail.servers */
};

/* row flags */
enum {
    CF_OPTIONAL = 1u << 0,   /* -1 / NULL means unset: dumped as a comment */
    CF_UNIT_SEC = 1u << 1,   /* time: a bare number is seconds */
    CF_DYNAMIC  = 1u << 2    /* default computed at load time */
};

/* State of one load, for messages and one-time notices. */
struct conf_ctx {
    const char *file;        /* the path as given, for messages */
    const char *dir;         /* the file's directory, for relative paths */
    char *err;
    size_t errlen;
    int quiet;               /* re-applying mail values: no notices again */
    unsigned noticed;        /* notices already given (bit per kind) */
    /* the auth_http host last looked up in this load (host, port, addrs):
     * servers that inherit mail's value parse it again, and must not send
     * the name to the system's resolver each time */
    struct auth_http_url auth_http_seen;
};

struct conf_setting;

/* A value type: how libconfig values become a field, and back for -T. */
struct conf_type {
    const char *name;        /* as the man page calls it */
    const char *expect;      /* "expected ..." text for a wrong type */
    /* Parse cs into field (base is the struct holding it).  The old value
     * has been freed; on error the field is left empty.  0 / -1. */
    int (*parse)(struct conf_ctx *ctx, const struct conf_setting *set,
                 const config_setting_t *cs, void *field, void *base);
    void (*free)(void *field, void *base);
    /* Print "name = value;" at indent (a comment when unset). */
    void (*dump)(FILE *out, int indent, const struct conf_setting *set,
                 const void *field, const void *base);
};

struct conf_setting {
    const char *name;
    const struct conf_type *type;
    unsigned scope;          /* SC_* */
    const char *def;         /* default as libconfig text; NULL: none */
    const char *def_doc;     /* the default as the man page words it */
    ptrdiff_t top_off;       /* offset in struct conf, -1: none */
    ptrdiff_t srv_off;       /* offset in struct server_conf, -1: none */
    long long min, max;      /* int, size, time (ms) bounds */
    unsigned flags;          /* CF_* */
    unsigned aux;            /* type-specific (allowed auth methods) */
};

extern const struct conf_setting conf_settings[];
extern const size_t conf_nsettings;

extern const struct conf_type conf_type_group, conf_type_servers;

const struct conf_setting *conf_setting_find(const char *name);

/* "FILE:LINE: NAME: what" into ctx->err; always returns -1. */
int conf_fail(struct conf_ctx *ctx, const config_setting_t *cs,
              const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A heap copy of path, made absolute against dir.  NULL on no memory. */
char *conf_abs_path(const char *dir, const char *path);

/* Print s as a libconfig string literal. */
void conf_dump_string(FILE *out, const char *s);
/* Print a time in the largest exact units ("1h30m", "250ms", "0"). */
void conf_dump_time(FILE *out, msec_t ms);

/* --- pure value parsers (conf_value.c), unit-tested ------------------- */

/* auth_http: "http://HOST[:PORT][/URI]", "HOST[:PORT][/URI]",
 * "unix:/path[:/URI]".  0 / -1 with err. */
int conf_parse_auth_http(const char *s, struct auth_http_url *u,
                         char *err, size_t errlen);
/* Look up a parsed auth_http URL's host into u->addrs (replacing any): at
 * load and reload, never per login.  0 / -1 with err. */
int conf_resolve_auth_http(struct auth_http_url *u, char *err,
                           size_t errlen);
void auth_http_url_free(struct auth_http_url *u);

/* resolver: "ADDRESS[:PORT] ... [valid=TIME] [ipv4=on|off] [ipv6=on|off]"
 * or "off".  0 / -1 with err. */
int conf_parse_resolver(const char *s, struct resolver_conf *r,
                        char *err, size_t errlen);
void resolver_conf_free(struct resolver_conf *r);

/* One ssl_session_cache token: off none builtin[:N] shared:NAME:SIZE. */
int conf_check_session_cache_token(const char *tok);

/* The protocol that listens on a standard port, or -1. */
int conf_proto_from_port(unsigned short port);

/* Text of one addr rule ("allow 10.0.0.0/8"), for -T. */
void conf_addr_rule_text(const struct addr_rule *r, int with_verb,
                         char *buf, size_t len);

void strlist_free(struct strlist *l);
int strlist_add(struct strlist *l, const char *s);

#endif
