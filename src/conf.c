/*
 * conf.c - load postern.conf into an immutable struct conf.
 *
 * Every value goes through the table of conf_table.c.  A server's
 * settings are built in three layers, each overwriting the one before:
 * the table's defaults, the `mail` group, the server's own entry.  Then
 * the values that depend on others are settled (protocol from the port,
 * host name, page-size buffers, the auth service, the log), and the
 * modules build what they need at load time: the protocol module, the
 * auth_file table, the TLS credentials.
 *
 * Input is the administrator's file (trusted, but every error is reported
 * as "FILE:LINE: SETTING: what is wrong").  auth_http_header values may be
 * secrets and are never logged.  A loaded configuration is read-only and
 * shared by reference; only its reference count is atomic, no locks.
 */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "conf_int.h"
#include "conn.h"
#include "keepalive.h"
#include "log.h"
#include "proto.h"
#include "str.h"
#include "tls.h"

#ifndef POSTERN_DEFAULT_USER
#define POSTERN_DEFAULT_USER ""
#endif

/* where a server's value came from */
enum { FROM_DEFAULT, FROM_MAIL, FROM_SERVER };

#define MAX_SETTINGS 128

/* Index of a setting by name (the names used here all exist). */
static size_t
idx(const char *name)
{
    return (size_t)(conf_setting_find(name) - conf_settings);
}

/* "only allowed ..." for a setting found in the wrong scope. */
static const char *
scope_text(unsigned scope)
{
    switch (scope) {
    case SC_TOP:
        return "only allowed at the top level";
    case SC_MAIL:
        return "only allowed in the mail group";
    case SC_SERVER:
        return "only allowed in a servers entry";
    default:
        return "not allowed at the top level, only in mail or a servers "
               "entry";
    }
}

/*
 * Apply every setting of group g (standing in `scope`) to base (a struct
 * conf for SC_TOP, else a struct server_conf).  from[] records which layer
 * set what.  0 / -1.
 */
static int
apply_group(struct conf_ctx *ctx, const config_setting_t *g, unsigned scope,
            void *base, unsigned char *from, unsigned char layer)
{
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(e);
        const struct conf_setting *set = conf_setting_find(name);
        ptrdiff_t off;
        void *field;

        if (set == NULL) {
            return conf_fail(ctx, e, name, "unknown setting");
        }
        if ((set->type == &conf_type_group && scope == SC_TOP)
            || (set->type == &conf_type_servers && scope == SC_MAIL)) {
            continue;                        /* the loader's own */
        }
        if (!(set->scope & scope)) {
            return conf_fail(ctx, e, name, "%s", scope_text(set->scope));
        }
        off = scope == SC_TOP ? set->top_off : set->srv_off;
        field = off >= 0 ? (char *)base + off : NULL;
        if (field != NULL) {
            set->type->free(field, base);
        }
        if (set->type->parse(ctx, set, e, field, base) != 0) {
            return -1;
        }
        if (from != NULL) {
            from[set - conf_settings] = layer;
        }
    }
    return 0;
}

/* The table's defaults for one scope, as a libconfig document. */
static int
defaults_read(config_t *cfg, int top, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc;

    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < conf_nsettings; i++) {
        const struct conf_setting *set = &conf_settings[i];
        int want = top ? (set->scope & SC_TOP) != 0
                       : (set->scope & SC_TOP) == 0;

        if (set->def != NULL && want) {
            fprintf(f, "%s = %s;\n", set->name, set->def);
        }
    }
    fclose(f);
    config_init(cfg);
    rc = config_read_string(cfg, text ? text : "");
    if (rc != CONFIG_TRUE) {
        snprintf(err, errlen, "internal error: defaults line %d: %s",
                 config_error_line(cfg), config_error_text(cfg));
    }
    free(text);
    return rc == CONFIG_TRUE ? 0 : -1;
}

/* Remember lg as owned by c.  0 / -1 (lg freed). */
static int
own_log(struct conf *c, struct log *lg)
{
    struct log **nl = realloc(c->logs, (c->nlogs + 1) * sizeof(*nl));

    if (nl == NULL) {
        log_free(&lg);
        return -1;
    }
    c->logs = nl;
    c->logs[c->nlogs++] = lg;
    return 0;
}

/* Build (and own) a log from error_log values; cs for messages. */
static struct log *
build_log(struct conf_ctx *ctx, struct conf *c, const struct strlist *spec,
          const config_setting_t *cs)
{
    struct log *lg = log_new();
    char msg[256];

    if (lg == NULL || own_log(c, lg) != 0) {
        conf_fail(ctx, cs, "error_log", "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < spec->n; i++) {
        if (log_add_target(lg, spec->v[i], c->dir, msg, sizeof(msg)) != 0) {
            conf_fail(ctx, cs, "error_log", "%s", msg);
            return NULL;                     /* freed with c */
        }
    }
    return lg;
}

/* Free the table-described fields of a server and what modules built. */
static void
server_free(struct server_conf *sc)
{
    const struct proto_ops *ops;

    if (sc->proto_data != NULL) {
        ops = proto_ops_get(sc->protocol);
        if (ops != NULL && ops->conf_free != NULL) {
            ops->conf_free(sc);
        }
    }
    if (sc->auth_file_data != NULL) {
        auth_file_free(sc->auth_file_data);
        sc->auth_file_data = NULL;
    }
    if (sc->tls_data != NULL) {
        tls_server_conf_free(sc);
    }
    for (size_t i = 0; i < conf_nsettings; i++) {
        if (conf_settings[i].srv_off >= 0) {
            conf_settings[i].type->free((char *)sc + conf_settings[i].srv_off,
                                        sc);
        }
    }
    free(sc->auth_http_header_block);
    sc->auth_http_header_block = NULL;
}

/* Where a server's value was written: its entry, mail, or (default) the
 * entry itself, for messages. */
static const config_setting_t *
origin(const unsigned char *from, const char *name,
       const config_setting_t *sg, const config_setting_t *mail)
{
    const config_setting_t *cs = NULL;

    if (from[idx(name)] == FROM_SERVER) {
        cs = config_setting_get_member(sg, name);
    } else if (from[idx(name)] == FROM_MAIL) {
        cs = config_setting_get_member(mail, name);
    }
    return cs ? cs : sg;
}

/* "Name: value\r\n" for every auth_http_header, built once. */
static int
header_block(struct server_conf *sc)
{
    size_t len = 1;
    char *p;

    for (size_t i = 0; i < sc->auth_http_header.n; i++) {
        len += strlen(sc->auth_http_header.name[i])
               + strlen(sc->auth_http_header.value[i]) + 4;
    }
    if ((sc->auth_http_header_block = p = malloc(len)) == NULL) {
        return -1;
    }
    *p = '\0';
    for (size_t i = 0; i < sc->auth_http_header.n; i++) {
        int n = snprintf(p, len, "%s: %s\r\n", sc->auth_http_header.name[i],
                         sc->auth_http_header.value[i]);

        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The protocol from the listen ports, when `protocol` is not set. */
static int
protocol_from_ports(struct conf_ctx *ctx, struct server_conf *sc,
                    const config_setting_t *sg)
{
    int p = -1;

    for (size_t i = 0; i < sc->nlisten; i++) {
        int q = conf_proto_from_port(sc->listen[i].port);

        if (sc->listen[i].addr.ss_family == AF_UNIX) {
            return conf_fail(ctx, sg, "protocol", "missing, and a UNIX "
                             "socket has no port to tell it by");
        }
        if (q < 0) {
            return conf_fail(ctx, sg, "protocol", "missing, and port %u is "
                             "not a standard IMAP, POP3 or SMTP port",
                             sc->listen[i].port);
        }
        if (p >= 0 && q != p) {
            return conf_fail(ctx, sg, "protocol", "missing, and the ports "
                             "are of different protocols");
        }
        p = q;
    }
    sc->protocol = (enum proto)p;
    return 0;
}

/* The auth service: exactly one of auth_http and auth_file. */
static int
settle_auth(struct conf_ctx *ctx, struct server_conf *sc,
            const unsigned char *from, const config_setting_t *sg,
            const config_setting_t *mail)
{
    unsigned char fh = from[idx("auth_http")], ff = from[idx("auth_file")];

    if (sc->auth_http != NULL && sc->auth_file != NULL) {
        if (fh == ff) {
            return conf_fail(ctx, origin(from, "auth_file", sg, mail),
                             "auth_file", "auth_http is set too; a server "
                             "uses exactly one of auth_http and auth_file");
        }
        /* the server's own choice replaces the one inherited from mail */
        if (fh == FROM_SERVER) {
            free(sc->auth_file);
            sc->auth_file = NULL;
        } else {
            auth_http_url_free(sc->auth_http);
            free(sc->auth_http);
            sc->auth_http = NULL;
        }
    }
    if (sc->auth_http == NULL && sc->auth_file == NULL) {
        return conf_fail(ctx, sg, "auth_http", "missing, a server needs "
                         "auth_http or auth_file");
    }
    if (sc->auth_http != NULL && sc->auth_http_keepalive > 0
        && (sc->auth_http->idle = keepalive_new(sc->auth_http_keepalive))
           == NULL) {
        return conf_fail(ctx, sg, "auth_http_keepalive", "out of memory");
    }
    return 0;
}

/* TLS settings that must agree; 1 in *uses_r when the server does TLS. */
static int
settle_tls(struct conf_ctx *ctx, struct server_conf *sc,
           const unsigned char *from, const config_setting_t *sg,
           const config_setting_t *mail, int *uses_r)
{
    int uses = sc->ssl || sc->starttls != STARTTLS_OFF;

    if (sc->ssl && sc->starttls != STARTTLS_OFF) {
        return conf_fail(ctx, origin(from, "starttls", sg, mail), "starttls",
                         "cannot be used with \"ssl\" (use \"listen ... "
                         "ssl\" for the implicit-TLS port)");
    }
    for (size_t i = 0; i < sc->nlisten; i++) {
        if (sc->ssl) {
            sc->listen[i].ssl = 1;
        }
        uses |= sc->listen[i].ssl;
    }
    *uses_r = uses;
    if (!uses) {
        return 0;
    }
    if (sc->ssl_certificate.n == 0) {
        return conf_fail(ctx, sg, "ssl_certificate", "missing, the server "
                         "uses TLS");
    }
    if (sc->ssl_certificate_key.n != sc->ssl_certificate.n) {
        return conf_fail(ctx, origin(from, "ssl_certificate_key", sg, mail),
                         "ssl_certificate_key", "%zu key(s) for %zu "
                         "certificate(s)", sc->ssl_certificate_key.n,
                         sc->ssl_certificate.n);
    }
    return 0;
}

/* A failure of tls_server_conf_init(), "SETTING: what is wrong", at the
 * line where that setting was written (the entry's line if it was not). */
static int
tls_fail(struct conf_ctx *ctx, const char *msg, const unsigned char *from,
         const config_setting_t *sg, const config_setting_t *mail)
{
    const char *colon = strstr(msg, ": ");
    char name[64];
    size_t len = colon != NULL ? (size_t)(colon - msg) : 0;

    if (len > 0 && len < sizeof(name)) {
        memcpy(name, msg, len);
        name[len] = '\0';
        if (conf_setting_find(name) != NULL) {
            return conf_fail(ctx, origin(from, name, sg, mail), name, "%s",
                             colon + 2);
        }
    }
    return conf_fail(ctx, sg, "tls", "%s", msg);
}

/* Copy a string list. */
static int
strlist_copy(struct strlist *dst, const struct strlist *src)
{
    for (size_t i = 0; i < src->n; i++) {
        if (strlist_add(dst, src->v[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Build one servers entry: defaults, mail, the entry; then settle. */
static int
load_server(struct conf_ctx *ctx, struct conf *c, struct server_conf *sc,
            const config_setting_t *dflt, const config_setting_t *mail,
            const config_setting_t *sg, struct log *mail_log)
{
    unsigned char from[MAX_SETTINGS] = { 0 };
    const struct proto_ops *ops;
    char msg[512];
    int uses_tls;

    sc->line = (int)config_setting_source_line(sg);
    if (!config_setting_is_group(sg)) {
        return conf_fail(ctx, sg, "servers", "expected a list of groups "
                         "( { ... }, ... )");
    }
    ctx->quiet = 1;                      /* defaults and mail say nothing */
    if (apply_group(ctx, dflt, SC_MAIL, sc, NULL, FROM_DEFAULT) != 0
        || apply_group(ctx, mail, SC_MAIL, sc, from, FROM_MAIL) != 0) {
        ctx->quiet = 0;
        return -1;
    }
    ctx->quiet = 0;
    if (apply_group(ctx, sg, SC_SERVER, sc, from, FROM_SERVER) != 0) {
        return -1;
    }

    if (sc->nlisten == 0) {
        return conf_fail(ctx, sg, "listen", "missing, every server needs "
                         "one");
    }
    if (from[idx("protocol")] == FROM_DEFAULT
        && protocol_from_ports(ctx, sc, sg) != 0) {
        return -1;
    }
    if (sc->server_name == NULL) {
        char host[256];

        if (gethostname(host, sizeof(host)) != 0) {
            str_lcpy(host, "localhost", sizeof(host));
        }
        host[sizeof(host) - 1] = '\0';
        if ((sc->server_name = strdup(host)) == NULL) {
            return conf_fail(ctx, sg, "server_name", "out of memory");
        }
    }
    {
        long page = sysconf(_SC_PAGESIZE);
        size_t ps = page > 0 ? (size_t)page : 4096;

        if (sc->imap_client_buffer == 0) {
            sc->imap_client_buffer = ps;
        }
        if (sc->smtp_client_buffer == 0) {
            sc->smtp_client_buffer = ps;
        }
        if (sc->proxy_buffer == 0) {
            sc->proxy_buffer = ps;
        }
    }
    if (sc->preauth_per_client == 0) {
        sc->preauth_per_client = c->worker_threads / 4 > 1
                                 ? c->worker_threads / 4 : 1;
    }
    if (settle_auth(ctx, sc, from, sg, mail) != 0) {
        return -1;
    }
    if (header_block(sc) != 0) {
        return conf_fail(ctx, sg, "auth_http_header", "out of memory");
    }
    if (settle_tls(ctx, sc, from, sg, mail, &uses_tls) != 0) {
        return -1;
    }

    /* the log: the server's own, else mail's, else the top level's */
    if (from[idx("error_log")] == FROM_SERVER) {
        sc->error_log = build_log(ctx, c, &sc->error_log_spec,
                                  config_setting_get_member(sg, "error_log"));
        if (sc->error_log == NULL) {
            return -1;
        }
    } else if (from[idx("error_log")] == FROM_MAIL) {
        sc->error_log = mail_log;
    } else {
        sc->error_log = c->error_log;
        if (strlist_copy(&sc->error_log_spec, &c->error_log_spec) != 0) {
            return conf_fail(ctx, sg, "error_log", "out of memory");
        }
    }

    /* the delay is part of the login phase that timeout bounds: a delay as
     * long would greet every client only to close on its first command */
    if (sc->protocol == PROTO_SMTP && sc->smtp_greeting_delay >= sc->timeout) {
        return conf_fail(ctx, origin(from, "smtp_greeting_delay", sg, mail),
                         "smtp_greeting_delay", "must be shorter than timeout, "
                         "whose time it uses");
    }

    /* what the modules build once for every session */
    msg[0] = '\0';
    ops = proto_ops_get(sc->protocol);
    if (ops != NULL && ops->conf_init != NULL
        && ops->conf_init(sc, msg, sizeof(msg)) != 0) {
        return conf_fail(ctx, sg, proto_name(sc->protocol), "%s", msg);
    }
    if (sc->auth_file != NULL) {
        sc->auth_file_data = auth_file_load(sc->auth_file, msg, sizeof(msg));
        if (sc->auth_file_data == NULL) {
            return conf_fail(ctx, origin(from, "auth_file", sg, mail),
                             "auth_file", "%s", msg);
        }
    }
    if (uses_tls && tls_server_conf_init(sc, msg, sizeof(msg)) != 0) {
        return tls_fail(ctx, msg, from, sg, mail);
    }
    return 0;
}

/* One `listen` address of the configuration, with the setting it came
 * from (for "FILE:LINE" in messages). */
struct listen_ref {
    struct listen_conf *lc;
    const config_setting_t *cs;
};

/* "FILE:LINE" of a listen address, for a message about another one. */
static void
listen_where(const struct conf_ctx *ctx, const struct listen_ref *r,
             char *out, size_t outlen)
{
    const char *file = config_setting_source_file(r->cs);

    snprintf(out, outlen, "%s:%d", file ? file : ctx->file, r->lc->line);
}

/* The text of a listen address ("127.0.0.1:143", "[::]:143"). */
static void
listen_text(const struct listen_conf *lc, char *out, size_t outlen)
{
    net_addr_text((const struct sockaddr *)&lc->addr, lc->addrlen, out,
                  outlen, 1);
}

/* Whether a and b are TCP listens of one family and port. */
static int
same_family_port(const struct listen_conf *a, const struct listen_conf *b)
{
    return a->addr.ss_family == b->addr.ss_family
           && a->addr.ss_family != AF_UNIX && a->port == b->port;
}

/*
 * Two listens that would each have a socket of their own but that Linux
 * does not let listen at once (it refuses a wildcard and another address
 * of its port even with SO_REUSEADDR): -1 with the error, so that -t
 * finds what start-up would.  b comes after a.
 */
static int
listen_overlap(struct conf_ctx *ctx, const struct listen_ref *a,
               const struct listen_ref *b)
{
    const struct listen_ref *own, *wild, *v6, *v4;
    char ta[ADDR_TEXT_LEN], tb[ADDR_TEXT_LEN], where[PATH_MAX + 16];

    if (a->lc->addr.ss_family == AF_UNIX || b->lc->addr.ss_family == AF_UNIX
        || a->lc->port != b->lc->port) {
        return 0;
    }
    if (a->lc->addr.ss_family == b->lc->addr.ss_family) {
        /* one is the wildcard; the other has `bind` or it would be
         * served by the wildcard's socket */
        wild = listen_is_wildcard(a->lc) ? a : b;
        own = wild == a ? b : a;
        if (!listen_is_wildcard(wild->lc)) {
            return 0;
        }
        listen_text(own->lc, ta, sizeof(ta));
        listen_text(wild->lc, tb, sizeof(tb));
        listen_where(ctx, wild, where, sizeof(where));
        return conf_fail(ctx, own->cs, "listen", "%s needs a socket of its "
                         "own (bind, backlog, rcvbuf, sndbuf, ipv6only or "
                         "so_keepalive), which the system does not allow "
                         "beside the wildcard %s of %s; leave those out (the "
                         "wildcard's socket then takes its connections) or "
                         "listen on addresses instead of the wildcard",
                         ta, tb, where);
    }
    v6 = a->lc->addr.ss_family == AF_INET6 ? a : b;
    v4 = v6 == a ? b : a;
    if (!listen_is_wildcard(v6->lc) || v6->lc->ipv6only != 0) {
        return 0;
    }
    listen_text(v6->lc, ta, sizeof(ta));
    listen_text(v4->lc, tb, sizeof(tb));
    listen_where(ctx, v4, where, sizeof(where));
    return conf_fail(ctx, v6->cs, "listen", "%s with ipv6only=off takes "
                     "IPv4 connections too, which the system does not allow "
                     "beside %s of %s; leave ipv6only=off out (on is the "
                     "default)", ta, tb, where);
}

/*
 * Check the listen addresses of every server together, as NGINX does:
 * an address given twice is an error; without `bind`, an address on a
 * port with a wildcard of its family is served by the wildcard's socket
 * (lc->via), the server chosen by the address the client reached.
 */
static int
settle_listens(struct conf_ctx *ctx, struct conf *c,
               const config_setting_t *servers)
{
    struct listen_ref *r;
    size_t n = 0, k = 0;
    int rc = -1;

    for (size_t i = 0; i < c->nservers; i++) {
        n += c->servers[i].nlisten;
    }
    if ((r = calloc(n ? n : 1, sizeof(*r))) == NULL) {
        return conf_fail(ctx, servers, "listen", "out of memory");
    }
    for (size_t i = 0; i < c->nservers; i++) {
        const config_setting_t *cs = config_setting_get_member(
            config_setting_get_elem(servers, (unsigned)i), "listen");

        for (size_t j = 0; j < c->servers[i].nlisten; j++) {
            r[k].lc = &c->servers[i].listen[j];
            r[k++].cs = cs;
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t m = 0; m < i; m++) {
            char text[ADDR_TEXT_LEN], where[PATH_MAX + 16];

            if (listen_same_addr(r[i].lc, r[m].lc)) {
                listen_text(r[i].lc, text, sizeof(text));
                listen_where(ctx, &r[m], where, sizeof(where));
                conf_fail(ctx, r[i].cs, "listen", "duplicate address %s "
                          "(also at %s)", text, where);
                goto out;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct listen_conf *lc = r[i].lc;

        if (lc->bind || lc->addr.ss_family == AF_UNIX
            || listen_is_wildcard(lc)) {
            continue;
        }
        for (size_t m = 0; m < n; m++) {
            if (same_family_port(lc, r[m].lc) && listen_is_wildcard(r[m].lc)) {
                lc->via = r[m].lc;
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t m = 0; m < i; m++) {
            if (r[i].lc->via == NULL && r[m].lc->via == NULL
                && listen_overlap(ctx, &r[m], &r[i]) != 0) {
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(r);
    return rc;
}

/* Top level and the mail group. */
static int
load_root(struct conf_ctx *ctx, struct conf *c, const config_setting_t *root,
          char *err, size_t errlen)
{
    config_t dtop, dsrv;
    const config_setting_t *mail, *servers, *cs;
    struct server_conf scratch;
    struct log *mail_log = NULL;
    int rc = -1, have_srv = 0;

    memset(&scratch, 0, sizeof(scratch));
    if (defaults_read(&dtop, 1, err, errlen) != 0) {
        config_destroy(&dtop);
        return -1;
    }
    c->worker_rlimit_nofile = -1;
    c->shutdown_timeout = -1;
    ctx->quiet = 1;
    if (apply_group(ctx, config_root_setting(&dtop), SC_TOP, c, NULL, 0)
        != 0) {
        ctx->quiet = 0;
        goto out;
    }
    ctx->quiet = 0;
    if (apply_group(ctx, root, SC_TOP, c, NULL, 0) != 0) {
        goto out;
    }
    if (c->user == NULL && POSTERN_DEFAULT_USER[0] != '\0'
        && (c->user = strdup(POSTERN_DEFAULT_USER)) == NULL) {
        conf_fail(ctx, root, "user", "out of memory");
        goto out;
    }
    cs = config_setting_get_member(root, "error_log");
    if ((c->error_log = build_log(ctx, c, &c->error_log_spec,
                                  cs ? cs : root)) == NULL) {
        goto out;
    }

    mail = config_setting_get_member(root, "mail");
    if (mail == NULL) {
        conf_fail(ctx, root, "mail", "missing, the mail group is required");
        goto out;
    }
    if (!config_setting_is_group(mail)) {
        conf_fail(ctx, mail, "mail", "expected %s", conf_type_group.expect);
        goto out;
    }
    /* check mail's own values once, with their notices */
    if (apply_group(ctx, mail, SC_MAIL, &scratch, NULL, 0) != 0) {
        goto out;
    }
    if ((cs = config_setting_get_member(mail, "error_log")) != NULL
        && (mail_log = build_log(ctx, c, &scratch.error_log_spec, cs))
           == NULL) {
        goto out;
    }
    servers = config_setting_get_member(mail, "servers");
    if (servers == NULL) {
        conf_fail(ctx, mail, "servers", "missing, the mail group needs at "
                  "least one server");
        goto out;
    }
    if (!config_setting_is_list(servers)
        || config_setting_length(servers) == 0) {
        conf_fail(ctx, servers, "servers", "expected %s",
                  conf_type_servers.expect);
        goto out;
    }
    if (defaults_read(&dsrv, 0, err, errlen) != 0) {
        config_destroy(&dsrv);
        goto out;
    }
    have_srv = 1;
    c->nservers = (size_t)config_setting_length(servers);
    if ((c->servers = calloc(c->nservers, sizeof(*c->servers))) == NULL) {
        c->nservers = 0;
        conf_fail(ctx, servers, "servers", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < c->nservers; i++) {
        c->servers[i].index = i;
        if (load_server(ctx, c, &c->servers[i], config_root_setting(&dsrv),
                        mail, config_setting_get_elem(servers, (unsigned)i),
                        mail_log) != 0) {
            goto out;
        }
    }
    if (settle_listens(ctx, c, servers) != 0) {
        goto out;
    }
    rc = 0;

out:
    server_free(&scratch);
    config_destroy(&dtop);
    if (have_srv) {
        config_destroy(&dsrv);
    }
    return rc;
}

/* Load, check and settle a configuration file (see conf.h). */
struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
    struct conf_ctx ctx;
    struct conf *c;
    config_t cfg;
    char *slash;
    int rc = -1;

    err[0] = '\0';
    if (conf_nsettings > MAX_SETTINGS) {
        snprintf(err, errlen, "internal error: raise MAX_SETTINGS");
        return NULL;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    /* orders configurations by age, for the relay's shutdown_timeout:
     * a freed configuration's address may be reused, its number is not */
    {
        static atomic_ulong loads;

        c->generation = atomic_fetch_add(&loads, 1) + 1;
    }
    if (path[0] == '/') {
        c->path = strdup(path);
    } else {
        char cwd[PATH_MAX];

        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            snprintf(err, errlen, "%s: getcwd: %s", path, strerror(errno));
            free(c);
            return NULL;
        }
        c->path = conf_abs_path(cwd, path);
    }
    if (c->path == NULL || (c->dir = strdup(c->path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        conf_unref(c);
        return NULL;
    }
    slash = strrchr(c->dir, '/');
    if (slash == c->dir) {
        slash[1] = '\0';                     /* a file in / */
    } else {
        *slash = '\0';
    }

    memset(&ctx, 0, sizeof(ctx));
    ctx.file = path;
    ctx.dir = c->dir;
    ctx.err = err;
    ctx.errlen = errlen;

    config_init(&cfg);
    config_set_include_dir(&cfg, c->dir);
    if (config_read_file(&cfg, path) != CONFIG_TRUE) {
        if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO) {
            snprintf(err, errlen, "%s: cannot read: %s", path,
                     strerror(errno ? errno : EIO));
        } else {
            snprintf(err, errlen, "%s:%d: syntax error: %s",
                     config_error_file(&cfg) ? config_error_file(&cfg) : path,
                     config_error_line(&cfg), config_error_text(&cfg));
        }
    } else {
        rc = load_root(&ctx, c, config_root_setting(&cfg), err, errlen);
    }
    config_destroy(&cfg);
    auth_http_url_free(&ctx.auth_http_seen);
    if (rc != 0) {
        conf_unref(c);
        return NULL;
    }
    return c;
}

/* Take a reference. */
struct conf *
conf_ref(struct conf *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

/* Drop a reference; the last one frees everything. */
void
conf_unref(struct conf *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < c->nservers; i++) {
        server_free(&c->servers[i]);
    }
    free(c->servers);
    for (size_t i = 0; i < conf_nsettings; i++) {
        if (conf_settings[i].top_off >= 0) {
            conf_settings[i].type->free((char *)c + conf_settings[i].top_off,
                                        c);
        }
    }
    for (size_t i = 0; i < c->nlogs; i++) {
        log_free(&c->logs[i]);
    }
    free(c->logs);
    free(c->path);
    free(c->dir);
    free(c);
}

/* The effective configuration in libconfig syntax (postern -T). */
void
conf_dump(const struct conf *c, FILE *out)
{
    fprintf(out, "# the effective configuration of %s\n", c->path);
    for (size_t i = 0; i < conf_nsettings; i++) {
        const struct conf_setting *set = &conf_settings[i];

        if (set->top_off >= 0 && set->type->dump != NULL) {
            set->type->dump(out, 0, set, (const char *)c + set->top_off, c);
        }
    }
    fputs("mail = {\n    servers = (\n", out);
    for (size_t s = 0; s < c->nservers; s++) {
        const struct server_conf *sc = &c->servers[s];

        fprintf(out, "        {   # %s:%d\n", c->path, sc->line);
        for (size_t i = 0; i < conf_nsettings; i++) {
            const struct conf_setting *set = &conf_settings[i];

            if (set->srv_off >= 0 && set->type->dump != NULL) {
                set->type->dump(out, 12, set,
                                (const char *)sc + set->srv_off, sc);
            }
        }
        fprintf(out, "        }%s\n", s + 1 < c->nservers ? "," : "");
    }
    fputs("    );\n};\n", out);
}
