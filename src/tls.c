/*
 * tls.c - GnuTLS for the listeners: per-server credentials and priorities
 * built from the ssl_* settings at configuration time, the server handshake
 * in a worker (non-blocking fd, poll() until c->deadline), record I/O for
 * conn.c, close_notify, and the Auth-SSL-* facts of a session.
 *
 * Untrusted input: everything the client sends in the handshake (GnuTLS
 * parses it; we read the ALPN list of the ClientHello ourselves, bounded by
 * the extension's own length).  Its certificate is judged in tls_verify.c.
 * Secrets: private keys and their passwords (read at init, before privileges
 * are dropped; password buffers are wiped), session ticket keys (derived,
 * wiped when the configuration is freed).
 * Locks: none here.  A struct tls_server is immutable once built and shared
 * by all workers; the session cache has its own mutexes (tls_cache.c).
 *
 * Session tickets: GnuTLS takes a 64-byte master key and derives rotating
 * ticket keys from it.  Each `servers` entry gets its own master,
 *   SHA-512("postern ticket server" || base || server index, 8 bytes BE)
 * so a ticket resumes only on the entry that issued it.  The base is random
 * per process, or, when ssl_session_ticket_key names files, SHA-512 of a
 * label and the first file's bytes.  The file is 48 or 80 random bytes
 * (NGINX's format: `openssl rand 80 > file`) or 64 bytes (as
 * gnutls_session_ticket_key_generate makes); the same file on two hosts
 * lets a session resume on either.  GnuTLS has one ticket key per session:
 * further files are checked and otherwise unused (a warning says so).
 *
 * Record I/O and partial writes: after tls_send() fails with EAGAIN, GnuTLS
 * requires the next call to pass the same data again (it may already have
 * encrypted part of it).  Callers must keep the buffer and resend it
 * unchanged; conn.c's relay keeps its buffer intact until bytes are taken.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "conn.h"
#include "log.h"
#include "str.h"
#include "tls.h"
#include "tls_flight.h"
#include "tls_int.h"

#define TICKET_KEY_SIZE 64
#define MAX_KEY_FILE (1024 * 1024)   /* certificate, key, DH, ticket key */
/* Room for a server flight: certificate chains of a few KiB fit; a larger
 * flight is sent in more than one piece (tls_flight.c) */
#define FLIGHT_BUF (16 * 1024)
/* a fast stop's end of a handshake (its shutdown of the socket would read
 * as the client's doing) */
#define STOPPED_HANDSHAKE "SSL handshake stopped: server is shutting down"

/* A server's TLS context: built once, read by every worker. */
struct tls_server {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    gnutls_dh_params_t dh;
    struct tls_cache_set cache;
    int tickets;
    unsigned char ticket_key[TICKET_KEY_SIZE];
    struct tls_verify v;                      /* client certificates */
    unsigned session_timeout;                 /* seconds */
    char alpn[8];                             /* "imap", "pop3", "smtp" */
};

/* Per connection, as the session's user pointer. */
struct tls_sess {
    const struct tls_server *ts;
    int alpn_offered, alpn_ok;
    char verify[160];                         /* Auth-SSL-Verify */
    char error[160];                          /* tls_last_error() */
    struct tls_flight flight;                 /* the transport's send side */
    int transport_errno;                      /* of the last failed call */
    enum { BYE_NONE, BYE_PENDING, BYE_DONE } bye;   /* close_notify */
    int eof_truncated;                        /* EOF without close_notify */
};

static pthread_once_t base_once = PTHREAD_ONCE_INIT;
static unsigned char base_random[TICKET_KEY_SIZE];
static int base_ok;

/* The per-process random ticket base (first use). */
static void
base_make(void)
{
    base_ok = gnutls_rnd(GNUTLS_RND_KEY, base_random,
                         sizeof(base_random)) == 0;
}

/* Process-wide init. */
int
tls_global_init(void)
{
    int ret = gnutls_global_init();

    if (ret < 0) {
        log_g(LOG_LV_EMERG, "gnutls_global_init() failed: %s",
              gnutls_strerror(ret));
        return -1;
    }
    pthread_once(&base_once, base_make);
    if (!base_ok) {
        log_g(LOG_LV_EMERG, "cannot make a random session ticket key");
        return -1;
    }
    return 0;
}

/* Process-wide deinit. */
void
tls_global_deinit(void)
{
    mem_wipe(base_random, sizeof(base_random));
    gnutls_global_deinit();
}

/* Put "SETTING: " before the message in err (see tls_server_conf_init).
 * -1, for the caller's return. */
static int
blame(const char *setting, char *err, size_t errlen)
{
    char msg[512];

    str_lcpy(msg, err, sizeof(msg));
    snprintf(err, errlen, "%s: %s", setting, msg);
    return -1;
}

int
tls_read_file(const char *path, size_t max, gnutls_datum_t *d, char *err,
              size_t errlen)
{
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;
    FILE *f = fopen(path, "rb");
    int rc = -1;

    d->data = NULL;
    d->size = 0;
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            unsigned char *nb;

            if (cap >= max) {
                snprintf(err, errlen, "%s: larger than %zu bytes", path,
                         max);
                goto out;
            }
            cap = cap ? cap * 2 : 4096;
            nb = malloc(cap + 1);
            if (nb == NULL) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            if (buf != NULL) {
                memcpy(nb, buf, len);
                mem_wipe(buf, len);
                free(buf);
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    buf[len] = '\0';
    d->data = buf;
    d->size = (unsigned)len;
    buf = NULL;
    rc = 0;

out:
    if (buf != NULL) {
        mem_wipe(buf, len);
        free(buf);
    }
    fclose(f);
    return rc;
}

void
tls_datum_wipe(gnutls_datum_t *d)
{
    if (d->data != NULL) {
        mem_wipe(d->data, d->size);
        free(d->data);
    }
    d->data = NULL;
    d->size = 0;
}

/* Passwords of ssl_password_file: one a line, as NGINX. */
struct passwords {
    gnutls_datum_t file;        /* the bytes, lines NUL-terminated in place */
    size_t n;
    char **v;
};

/* Load ssl_password_file; 0 / -1 with err. */
static int
passwords_load(const char *path, struct passwords *pw, char *err,
               size_t errlen)
{
    char *p, *end, *nl;
    size_t cap = 0;

    memset(pw, 0, sizeof(*pw));
    if (path == NULL) {
        return 0;
    }
    if (tls_read_file(path, MAX_KEY_FILE, &pw->file, err, errlen) < 0) {
        return -1;
    }
    p = (char *)pw->file.data;
    end = p + pw->file.size;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            nl = end;
        }
        *nl = '\0';
        if (nl > p && nl[-1] == '\r') {
            nl[-1] = '\0';
        }
        if (pw->n == cap) {
            char **nv = realloc(pw->v, (cap ? cap * 2 : 4) * sizeof(*nv));

            if (nv == NULL) {
                snprintf(err, errlen, "%s: out of memory", path);
                return -1;
            }
            cap = cap ? cap * 2 : 4;
            pw->v = nv;
        }
        pw->v[pw->n++] = p;
        p = nl + 1;
    }
    if (pw->n == 0) {
        snprintf(err, errlen, "%s: no password in the file", path);
        return -1;
    }
    return 0;
}

/* Wipe the passwords. */
static void
passwords_free(struct passwords *pw)
{
    tls_datum_wipe(&pw->file);
    free(pw->v);
    memset(pw, 0, sizeof(*pw));
}

/* One ssl_certificate / ssl_certificate_key pair into the credentials. */
static int
load_pair(struct tls_server *ts, const char *cert, const char *key,
          const struct passwords *pw, const char *pwpath, char *err,
          size_t errlen)
{
    gnutls_datum_t cd = { NULL, 0 }, kd = { NULL, 0 };
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0, i;
    int ret, rc = -1;

    if (tls_read_file(cert, MAX_KEY_FILE, &cd, err, errlen) < 0) {
        blame("ssl_certificate", err, errlen);
        goto out;
    }
    if (tls_read_file(key, MAX_KEY_FILE, &kd, err, errlen) < 0) {
        blame("ssl_certificate_key", err, errlen);
        goto out;
    }
    ret = gnutls_x509_crt_list_import2(&list, &n, &cd, GNUTLS_X509_FMT_PEM,
                                       0);
    if (ret < 0 || n == 0) {
        snprintf(err, errlen, "ssl_certificate: %s: no PEM certificate "
                 "could be read (%s)",
                 cert, ret < 0 ? gnutls_strerror(ret) : "empty");
        goto out;
    }
    for (i = 0; i < n; i++) {
        gnutls_x509_crt_deinit(list[i]);
    }
    gnutls_free(list);

    if (pw->n == 0) {
        ret = gnutls_certificate_set_x509_key_mem2(ts->cred, &cd, &kd,
                                                   GNUTLS_X509_FMT_PEM,
                                                   NULL, 0);
    } else {
        ret = GNUTLS_E_DECRYPTION_FAILED;
        for (i = 0; i < pw->n; i++) {
            ret = gnutls_certificate_set_x509_key_mem2(ts->cred, &cd, &kd,
                                                       GNUTLS_X509_FMT_PEM,
                                                       pw->v[i], 0);
            if (ret >= 0 || ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
                break;
            }
        }
    }
    if (ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
        snprintf(err, errlen, "ssl_certificate_key: %s: the key does not "
                 "match the certificate %s", key, cert);
        goto out;
    }
    if (ret < 0 && pw->n > 0) {
        snprintf(err, errlen, "ssl_certificate_key: %s: cannot load the key "
                 "with any password of %s (%s)", key, pwpath,
                 gnutls_strerror(ret));
        goto out;
    }
    if (ret < 0) {
        snprintf(err, errlen, "ssl_certificate_key: %s: cannot load the key "
                 "(%s)%s", key,
                 gnutls_strerror(ret),
                 memmem(kd.data, kd.size, "ENCRYPTED", 9) != NULL
                 ? ": it is encrypted and ssl_password_file is not set" : "");
        goto out;
    }
    rc = 0;

out:
    tls_datum_wipe(&cd);
    tls_datum_wipe(&kd);
    return rc;
}

/* The priority keyword of an ssl_ecdh_curve name, or NULL. */
static const char *
curve_group(const char *name)
{
    static const struct { const char *name, *group; } map[] = {
        { "X25519", "GROUP-X25519" }, { "x25519", "GROUP-X25519" },
        { "X448", "GROUP-X448" }, { "x448", "GROUP-X448" },
        { "prime256v1", "GROUP-SECP256R1" },
        { "secp256r1", "GROUP-SECP256R1" }, { "P-256", "GROUP-SECP256R1" },
        { "secp384r1", "GROUP-SECP384R1" }, { "P-384", "GROUP-SECP384R1" },
        { "secp521r1", "GROUP-SECP521R1" }, { "P-521", "GROUP-SECP521R1" },
        { "ffdhe2048", "GROUP-FFDHE2048" }, { "ffdhe3072", "GROUP-FFDHE3072" },
        { "ffdhe4096", "GROUP-FFDHE4096" }, { "ffdhe6144", "GROUP-FFDHE6144" },
        { "ffdhe8192", "GROUP-FFDHE8192" },
    };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].name, name) == 0) {
            return map[i].group;
        }
    }
    return NULL;
}

/* Append to a malloc'd string; NULL (and *s freed) on ENOMEM. */
static char *
str_append(char *s, const char *a, const char *b)
{
    size_t len = strlen(s), la = strlen(a), lb = strlen(b);
    char *n = realloc(s, len + la + lb + 1);

    if (n == NULL) {
        free(s);
        return NULL;
    }
    memcpy(n + len, a, la);
    memcpy(n + len + la, b, lb + 1);
    return n;
}

/* Build and check the priority cache of a server. */
static int
priority_build(struct tls_server *ts, const struct server_conf *sc,
               char *err, size_t errlen)
{
    const char *errpos = NULL;
    char *prio, curve[64], warn[384];
    const char *p, *g;
    size_t len;
    int ret;

    if (sc->ssl_priority != NULL) {
        prio = strdup(sc->ssl_priority);
        if (prio != NULL && sc->ssl_prefer_server_ciphers) {
            prio = str_append(prio, ":", "%SERVER_PRECEDENCE");
        }
    } else {
        prio = tls_priority_from_openssl(sc->ssl_ciphers, &sc->ssl_protocols,
                                         sc->ssl_prefer_server_ciphers,
                                         warn, sizeof(warn), err, errlen);
        if (prio == NULL) {
            return -1;
        }
        if (warn[0] != '\0') {
            log_g(LOG_LV_WARN, "%s for the server at line %d", warn,
                  sc->line);
        }
    }
    if (prio != NULL && sc->ssl_ecdh_curve != NULL
        && strcmp(sc->ssl_ecdh_curve, "auto") != 0) {
        prio = str_append(prio, ":", "-GROUP-ALL");
        for (p = sc->ssl_ecdh_curve; prio != NULL && *p != '\0'; ) {
            len = strcspn(p, ":");
            if (len == 0) {
                p++;
                continue;
            }
            if (len >= sizeof(curve)) {
                len = sizeof(curve) - 1;
            }
            memcpy(curve, p, len);
            curve[len] = '\0';
            g = curve_group(curve);
            if (g == NULL) {
                snprintf(err, errlen, "ssl_ecdh_curve: unknown curve \"%s\"",
                         curve);
                free(prio);
                return -1;
            }
            prio = str_append(prio, ":+", g);
            p += strcspn(p, ":");
        }
    }
    if (prio == NULL) {
        snprintf(err, errlen, "ssl_priority: out of memory");
        return -1;
    }
    ret = gnutls_priority_init(&ts->prio, prio, &errpos);
    if (ret < 0) {
        snprintf(err, errlen, "%s: GnuTLS rejects \"%s\" at \"%s\" (%s)",
                 sc->ssl_priority ? "ssl_priority" : "ssl_ciphers", prio,
                 errpos ? errpos : "", gnutls_strerror(ret));
        ts->prio = NULL;
        free(prio);
        return -1;
    }
    free(prio);
    return 0;
}

/* SHA-512 over the parts into out (64 bytes); 0 / -1. */
static int
sha512_parts(unsigned char *out, const void *a, size_t alen, const void *b,
             size_t blen, const void *c, size_t clen)
{
    gnutls_hash_hd_t h;

    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA512) < 0) {
        return -1;
    }
    gnutls_hash(h, a, alen);
    gnutls_hash(h, b, blen);
    gnutls_hash(h, c, clen);
    gnutls_hash_deinit(h, out);
    return 0;
}

/* The server's ticket master key (see the file header). */
static int
tickets_setup(struct tls_server *ts, const struct server_conf *sc,
              char *err, size_t errlen)
{
    static const char label_file[] = "postern ssl_session_ticket_key";
    static const char label_server[] = "postern ticket server";
    unsigned char base[TICKET_KEY_SIZE], idx[8];
    gnutls_datum_t d = { NULL, 0 };
    size_t i;
    int rc = -1;

    ts->tickets = sc->ssl_session_tickets;
    if (!ts->tickets) {
        return 0;
    }
    for (i = 0; i < sc->ssl_session_ticket_key.n; i++) {
        const char *path = sc->ssl_session_ticket_key.v[i];

        if (tls_read_file(path, MAX_KEY_FILE, &d, err, errlen) < 0) {
            blame("ssl_session_ticket_key", err, errlen);
            goto out;
        }
        if (d.size != 48 && d.size != 64 && d.size != 80) {
            snprintf(err, errlen, "ssl_session_ticket_key: %s: must be 48, "
                     "64 or 80 bytes, not %u", path, d.size);
            goto out;
        }
        if (i == 0 && sha512_parts(base, label_file, sizeof(label_file),
                                   d.data, d.size, "", 0) < 0) {
            snprintf(err, errlen, "ssl_session_ticket_key: %s: cannot hash "
                     "the key", path);
            goto out;
        }
        if (i > 0) {
            log_g(LOG_LV_WARN, "ssl_session_ticket_key: GnuTLS takes one "
                  "key; \"%s\" is checked but not used", path);
        }
        tls_datum_wipe(&d);
    }
    if (sc->ssl_session_ticket_key.n == 0) {
        pthread_once(&base_once, base_make);
        if (!base_ok) {
            snprintf(err, errlen, "ssl_session_tickets: no random key");
            goto out;
        }
        memcpy(base, base_random, sizeof(base));
    }
    for (i = 0; i < 8; i++) {
        idx[i] = (unsigned char)((uint64_t)sc->index >> (56 - 8 * i));
    }
    if (sha512_parts(ts->ticket_key, label_server, sizeof(label_server),
                     base, sizeof(base), idx, sizeof(idx)) < 0) {
        snprintf(err, errlen, "ssl_session_tickets: cannot derive the key");
        goto out;
    }
    rc = 0;

out:
    tls_datum_wipe(&d);
    mem_wipe(base, sizeof(base));
    return rc;
}

/* Free a server context. */
static void
tls_server_free(struct tls_server *ts)
{
    if (ts == NULL) {
        return;
    }
    if (ts->prio != NULL) {
        gnutls_priority_deinit(ts->prio);
    }
    if (ts->cred != NULL) {
        gnutls_certificate_free_credentials(ts->cred);
    }
    if (ts->dh != NULL) {
        gnutls_dh_params_deinit(ts->dh);
    }
    tls_verify_free(&ts->v);
    tls_cache_set_free(&ts->cache);
    mem_wipe(ts->ticket_key, sizeof(ts->ticket_key));
    free(ts);
}

/* 1 if the server has a TLS listener, ssl = on, or STARTTLS. */
static int
server_uses_tls(const struct server_conf *sc)
{
    size_t i;

    if (sc->ssl || sc->starttls != STARTTLS_OFF) {
        return 1;
    }
    for (i = 0; i < sc->nlisten; i++) {
        if (sc->listen[i].ssl) {
            return 1;
        }
    }
    return 0;
}

/* Build sc->tls_data (see tls.h). */
int
tls_server_conf_init(struct server_conf *sc, char *err, size_t errlen)
{
    struct passwords pw;
    struct tls_server *ts = NULL;
    gnutls_datum_t dd = { NULL, 0 };
    size_t i;
    int ret, rc = -1;

    memset(&pw, 0, sizeof(pw));
    sc->tls_data = NULL;
    if (!server_uses_tls(sc)) {
        return 0;
    }
    if (sc->ssl_certificate.n == 0) {
        snprintf(err, errlen, "ssl_certificate: missing, the server at line "
                 "%d uses TLS", sc->line);
        return -1;
    }
    if (sc->ssl_certificate_key.n != sc->ssl_certificate.n) {
        snprintf(err, errlen, "ssl_certificate_key: %zu keys for %zu "
                 "certificates in the server at line %d",
                 sc->ssl_certificate_key.n, sc->ssl_certificate.n, sc->line);
        return -1;
    }
    ts = calloc(1, sizeof(*ts));
    if (ts == NULL) {
        snprintf(err, errlen, "gnutls: out of memory");
        return -1;
    }
    ts->session_timeout = sc->ssl_session_timeout > 0
                          ? (unsigned)sc->ssl_session_timeout : 300;
    str_lcpy(ts->alpn, sc->protocol == PROTO_IMAP ? "imap"
             : sc->protocol == PROTO_POP3 ? "pop3" : "smtp",
             sizeof(ts->alpn));

    ret = gnutls_certificate_allocate_credentials(&ts->cred);
    if (ret < 0) {
        snprintf(err, errlen, "gnutls: %s", gnutls_strerror(ret));
        goto out;
    }
    if (passwords_load(sc->ssl_password_file, &pw, err, errlen) < 0) {
        blame("ssl_password_file", err, errlen);
        goto out;
    }
    for (i = 0; i < sc->ssl_certificate.n; i++) {
        if (load_pair(ts, sc->ssl_certificate.v[i],
                      sc->ssl_certificate_key.v[i], &pw,
                      sc->ssl_password_file, err, errlen) < 0) {
            goto out;
        }
    }
    if (sc->ssl_dhparam != NULL) {
        if (tls_read_file(sc->ssl_dhparam, MAX_KEY_FILE, &dd, err, errlen) < 0) {
            blame("ssl_dhparam", err, errlen);
            goto out;
        }
        if ((ret = gnutls_dh_params_init(&ts->dh)) < 0
            || (ret = gnutls_dh_params_import_pkcs3(ts->dh, &dd,
                                                    GNUTLS_X509_FMT_PEM))
               < 0) {
            snprintf(err, errlen, "ssl_dhparam: %s: no PEM DH parameters "
                     "could be read (%s)", sc->ssl_dhparam,
                     gnutls_strerror(ret));
            goto out;
        }
        gnutls_certificate_set_dh_params(ts->cred, ts->dh);
    }
    if (tls_verify_init(&ts->v, ts->cred, sc, err, errlen) < 0
        || priority_build(ts, sc, err, errlen) < 0
        || tls_cache_set_init(&ts->cache, &sc->ssl_session_cache, sc->index,
                              (int)ts->session_timeout, err, errlen) < 0
        || tickets_setup(ts, sc, err, errlen) < 0) {
        goto out;
    }
    sc->tls_data = ts;
    ts = NULL;
    rc = 0;

out:
    passwords_free(&pw);
    tls_datum_wipe(&dd);
    tls_server_free(ts);
    return rc;
}

/* Free sc->tls_data. */
void
tls_server_conf_free(struct server_conf *sc)
{
    tls_server_free(sc->tls_data);
    sc->tls_data = NULL;
}

/* ext_raw_parse callback: is our protocol in the client's ALPN list? */
static int
alpn_ext(void *ctx, unsigned tls_id, const unsigned char *data,
         unsigned size)
{
    struct tls_sess *ss = ctx;
    size_t want = strlen(ss->ts->alpn), off = 2, total;

    if (tls_id != 16) {
        return 0;
    }
    ss->alpn_offered = 1;
    if (size < 2) {
        return 0;
    }
    total = ((size_t)data[0] << 8 | data[1]) + 2;
    if (total > size) {
        total = size;
    }
    while (off < total) {
        size_t len = data[off++];

        if (len > total - off) {
            break;
        }
        if (len == want && memcmp(data + off, ss->ts->alpn, len) == 0) {
            ss->alpn_ok = 1;
        }
        off += len;
    }
    return 0;
}

/* ClientHello hook: refuse a client whose ALPN list lacks our protocol. */
static int
alpn_hook(gnutls_session_t s, unsigned htype, unsigned when,
          unsigned incoming, const gnutls_datum_t *msg)
{
    struct tls_sess *ss = gnutls_session_get_ptr(s);

    if (htype != GNUTLS_HANDSHAKE_CLIENT_HELLO || when != GNUTLS_HOOK_PRE
        || !incoming || ss == NULL) {
        return 0;
    }
    ss->alpn_offered = ss->alpn_ok = 0;
    if (gnutls_ext_raw_parse(ss, alpn_ext, msg,
                             GNUTLS_EXT_RAW_FLAG_TLS_CLIENT_HELLO) < 0) {
        return 0;                       /* GnuTLS will judge the message */
    }
    if (ss->alpn_offered && !ss->alpn_ok) {
        return GNUTLS_E_NO_APPLICATION_PROTOCOL;
    }
    return 0;
}

/* GnuTLS's pull: the socket, read directly (as GnuTLS's own would; the
 * transport pointer is the session, for transport_errno below). */
static ssize_t
transport_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    const struct tls_sess *ss = ptr;

    return recv(ss->flight.fd, buf, len, 0);
}

/* Its wait, should GnuTLS ever want one (GnuTLS's own would take the
 * transport pointer for the fd): > 0 ready, 0 timed out, -1 failed. */
static int
transport_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    const struct tls_sess *ss = ptr;
    struct pollfd pfd = { .fd = ss->flight.fd, .events = POLLIN };

    return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

/* GnuTLS asks for errno after each failed pull or push; keeping it lets a
 * reset connection be logged as "Connection reset by peer" instead of
 * GnuTLS's "Error in the pull function." */
static int
transport_errno(gnutls_transport_ptr_t ptr)
{
    struct tls_sess *ss = ptr;

    ss->transport_errno = errno;
    return errno;
}

/* The reason for GnuTLS error ret: the system's, when the socket failed. */
static const char *
error_reason(gnutls_session_t s, int ret)
{
    const struct tls_sess *ss = gnutls_session_get_ptr(s);

    if ((ret == GNUTLS_E_PULL_ERROR || ret == GNUTLS_E_PUSH_ERROR)
        && ss->transport_errno != 0) {
        return strerror(ss->transport_errno);
    }
    return gnutls_strerror(ret);
}

/* Text for a failed handshake. */
static void
handshake_error(gnutls_session_t s, int ret, char *err, size_t errlen)
{
    if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED
        || ret == GNUTLS_E_WARNING_ALERT_RECEIVED) {
        snprintf(err, errlen, "SSL handshake failed: alert \"%s\" received",
                 gnutls_alert_get_name(gnutls_alert_get(s)));
    } else if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
        /* NGINX's words, which log watchers (fail2ban) know */
        snprintf(err, errlen, "peer closed connection in SSL handshake");
    } else if (ret == GNUTLS_E_NO_APPLICATION_PROTOCOL) {
        snprintf(err, errlen, "SSL handshake failed: the client's ALPN "
                 "protocols do not include \"%s\"",
                 ((struct tls_sess *)gnutls_session_get_ptr(s))->ts->alpn);
    } else {
        snprintf(err, errlen, "SSL handshake failed: %s",
                 error_reason(s, ret));
    }
}

/* The reason a gathered flight could not be sent (errno set by the
 * flush; ETIMEDOUT stays for the caller). */
static void
flight_error(char *err, size_t errlen)
{
    if (errno == ETIMEDOUT) {
        snprintf(err, errlen, "SSL handshake timed out");
    } else if (errno == ECANCELED || conn_stopping()) {
        snprintf(err, errlen, STOPPED_HANDSHAKE);
        errno = ECANCELED;
    } else {
        snprintf(err, errlen, "SSL handshake failed: sending failed (%s)",
                 strerror(errno));
        errno = EIO;
    }
}

/* Server handshake on c (see tls.h). */
/* A new server session on c for sc, its handshake not begun; -1 with err
 * and errno. */
static int
handshake_new(struct conn *c, const struct server_conf *sc,
              gnutls_session_t *s_r, char *err, size_t errlen)
{
    struct tls_server *ts = sc->tls_data;
    struct tls_sess *ss = NULL;
    gnutls_session_t s = NULL;
    gnutls_datum_t proto, tk;
    int ret;
    /* NO_SIGNAL: a record sent to a peer that has gone must be an error,
     * never a SIGPIPE, whatever the process does with that signal */
    unsigned flags = GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL;

    if (ts == NULL) {
        snprintf(err, errlen, "TLS is not configured for this server");
        errno = EINVAL;
        return -1;
    }
    /* TCP_NODELAY (small handshake records must not wait for delayed
     * ACKs) came with the socket from its listener */
    ss = calloc(1, sizeof(*ss));
    if (ss == NULL) {
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return -1;
    }
    ss->ts = ts;
    str_lcpy(ss->verify, "NONE", sizeof(ss->verify));
    if (!ts->tickets) {
        flags |= GNUTLS_NO_TICKETS;
    }
    /* TLS 1.3: the handshake returns once our Finished is out, so the
     * greeting travels with the handshake instead of a round trip later
     * ("0.5-RTT data": the greeting is public, and the first read verifies
     * the client's Finished before it returns a byte).  Not when a client
     * certificate is asked for: nothing is sent before it is checked. */
    if (ts->v.mode == VERIFY_OFF) {
        flags |= GNUTLS_ENABLE_EARLY_START;
    }
    ret = gnutls_init(&s, flags);
    if (ret < 0) {
        free(ss);
        snprintf(err, errlen, "gnutls_init: %s", gnutls_strerror(ret));
        errno = ENOMEM;
        return -1;
    }
    gnutls_session_set_ptr(s, ss);
    if ((ret = gnutls_priority_set(s, ts->prio)) < 0
        || (ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
                                         ts->cred)) < 0) {
        goto fail;
    }
    gnutls_certificate_server_set_request(s, ts->v.mode == VERIFY_OFF
                                          ? GNUTLS_CERT_IGNORE
                                          : GNUTLS_CERT_REQUEST);
    if (!ts->v.send_ca_names) {
        gnutls_certificate_send_x509_rdn_sequence(s, 1);
    }
    tls_cache_set_attach(&ts->cache, s);
    gnutls_db_set_cache_expiration(s, (int)ts->session_timeout);
    if (ts->tickets) {
        tk.data = (unsigned char *)ts->ticket_key;
        tk.size = sizeof(ts->ticket_key);
        if ((ret = gnutls_session_ticket_enable_server(s, &tk)) < 0) {
            goto fail;
        }
    }
    proto.data = (unsigned char *)ts->alpn;
    proto.size = (unsigned)strlen(ts->alpn);
    if ((ret = gnutls_alpn_set_protocols(s, &proto, 1, 0)) < 0) {
        goto fail;
    }
    gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_CLIENT_HELLO,
                                       GNUTLS_HOOK_PRE, alpn_hook);
    gnutls_handshake_set_timeout(s, 0);     /* c->deadline rules */
    /* reads straight from the socket; writes through the flight, which
     * gathers each flight of the handshake into one send */
    tls_flight_init(&ss->flight, c->fd);
    gnutls_transport_set_ptr2(s, ss, &ss->flight);
    gnutls_transport_set_pull_function(s, transport_pull);
    gnutls_transport_set_pull_timeout_function(s, transport_pull_timeout);
    gnutls_transport_set_vec_push_function(s, tls_flight_push);
    gnutls_transport_set_errno_function(s, transport_errno);
    *s_r = s;
    return 0;

fail:
    snprintf(err, errlen, "SSL setup failed: %s", gnutls_strerror(ret));
    gnutls_deinit(s);
    free(ss);
    errno = EIO;
    return -1;
}

/* See tls.h. */
int
tls_accept(struct conn *c, const struct server_conf *sc, char *err,
           size_t errlen)
{
    return tls_accept_parkable(c, sc, NULL, NULL, err, errlen);
}

/* See tls.h. */
int
tls_accept_parkable(struct conn *c, const struct server_conf *sc,
                    int (*park)(void *), void *arg, char *err, size_t errlen)
{
    struct tls_server *ts = sc->tls_data;
    struct tls_sess *ss;
    gnutls_session_t s;
    int ret, left, rc;
    unsigned char flight[FLIGHT_BUF];   /* the handshake's records, gathered */

    if (c->hs == NULL && handshake_new(c, sc, (gnutls_session_t *)&c->hs, err,
                                       errlen) < 0) {
        return -1;
    }
    s = c->hs;
    ss = gnutls_session_get_ptr(s);
    /* lent for this call only: a parked handshake has sent all it had */
    tls_flight_gather(&ss->flight, flight, sizeof(flight));

    for (;;) {
        ret = gnutls_handshake(s);
        if (ret == 0) {
            break;
        }
        if (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED
            && gnutls_error_is_fatal(ret)) {
            if (conn_stopping()) {
                /* the end of file or EPIPE was the stop's shutdown */
                snprintf(err, errlen, STOPPED_HANDSHAKE);
                errno = ECANCELED;
                goto fail_logged;
            }
            handshake_error(s, ret, err, errlen);
            if (ret != GNUTLS_E_FATAL_ALERT_RECEIVED
                && ret != GNUTLS_E_PREMATURE_TERMINATION
                && ret != GNUTLS_E_PULL_ERROR && ret != GNUTLS_E_PUSH_ERROR) {
                (void)gnutls_alert_send_appropriate(s, ret);
            }
            (void)tls_flight_flush(&ss->flight, c->deadline);   /* the alert */
            errno = EIO;
            goto fail_logged;
        }
        left = clock_left(c->deadline);
        if (left == 0) {
            snprintf(err, errlen, "SSL handshake timed out");
            errno = ETIMEDOUT;
            goto fail_logged;
        }
        if (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED) {
            continue;                   /* a warning alert: go on */
        }
        /* about to wait for the client: it needs the whole flight first */
        if (tls_flight_flush(&ss->flight, c->deadline) != 0) {
            flight_error(err, errlen);
            goto fail_logged;
        }
        rc = gnutls_record_get_direction(s)
             ? conn_poll(c->fd, POLLOUT, c->deadline, NULL)
             : conn_wait_readable(c, park, arg);
        if (rc == CONN_PARK) {
            tls_flight_direct(&ss->flight);     /* `flight` goes */
            return 1;                           /* c->hs keeps it */
        }
        if (rc < 0) {
            if (errno == ECANCELED) {
                snprintf(err, errlen, STOPPED_HANDSHAKE);
            } else {
                snprintf(err, errlen, "poll() failed: %s", strerror(errno));
            }
            goto fail_logged;
        }
    }
    if (tls_flight_flush(&ss->flight, c->deadline) != 0) {
        flight_error(err, errlen);
        goto fail_logged;
    }
    tls_flight_direct(&ss->flight);     /* `flight` is about to go */
    c->hs = NULL;
    c->tls = s;
    ret = tls_verify_peer(&ts->v, s, ss->verify, sizeof(ss->verify), err,
                          errlen);
    if (ret < 0) {
        /* c->tls stays set: the caller may tell the client, as NGINX
         * does, and conn_close() frees the session */
        errno = ret == -2 ? EACCES : EPERM;
        return -1;
    }
    return 0;

fail_logged:
    {
        int saved = errno;

        tls_handshake_free(c);
        errno = saved;
    }
    return -1;
}

/* See tls.h. */
void
tls_handshake_free(struct conn *c)
{
    gnutls_session_t s = c->hs;

    if (s != NULL) {
        struct tls_sess *ss = gnutls_session_get_ptr(s);

        gnutls_deinit(s);
        free(ss);
        c->hs = NULL;
    }
}

/* Map a GnuTLS record error onto the conn.h convention. */
static ssize_t
record_error(struct conn *c, ssize_t ret, int *dir_write_r, const char *op)
{
    gnutls_session_t s = c->tls;
    struct tls_sess *ss;

    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
        if (dir_write_r != NULL) {
            *dir_write_r = gnutls_record_get_direction(s);
        }
        errno = EAGAIN;
        return -1;
    }
    ss = gnutls_session_get_ptr(s);
    if ((gnutls_session_get_flags(s) & GNUTLS_SFLAGS_EARLY_START)
        && gnutls_handshake_get_last_in(s) == GNUTLS_HANDSHAKE_CLIENT_HELLO) {
        /* the handshake returned early (GNUTLS_ENABLE_EARLY_START) and
         * the client's Finished has not come: its failure is the
         * handshake's, and is told in the handshake's words.  (Asking the
         * flag keeps a refused TLS 1.2 renegotiation, whose ClientHello
         * is the last message in too, out of this.) */
        handshake_error(s, ret == 0 ? GNUTLS_E_PREMATURE_TERMINATION : (int)ret,
                        ss->error, sizeof(ss->error));
        errno = EIO;
        return -1;
    }
    if (ret == 0) {
        return 0;
    }
    if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
        /* a TCP FIN without close_notify: an EOF to the caller, but
         * GnuTLS has invalidated the session, so nothing can be written
         * to this peer any more (tls_eof_truncated() says so) */
        ss->eof_truncated = 1;
        return 0;
    }
    /* the caller logs it, with the session's context */
    if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
        snprintf(ss->error, sizeof(ss->error), "SSL alert \"%s\" received "
                 "while %s", gnutls_alert_get_name(gnutls_alert_get(s)), op);
    } else {
        snprintf(ss->error, sizeof(ss->error), "SSL %s failed: %s", op,
                 error_reason(s, (int)ret));
    }
    errno = EIO;
    return -1;
}

/* Why the last record call failed (see tls.h). */
const char *
tls_last_error(const struct conn *c)
{
    const struct tls_sess *ss;

    if (c->tls == NULL) {
        return "";
    }
    ss = gnutls_session_get_ptr(c->tls);
    return ss->error;
}

/* Read decrypted bytes (see tls.h). */
ssize_t
tls_recv(struct conn *c, void *dst, size_t len, int *dir_write_r)
{
    gnutls_session_t s = c->tls;
    ssize_t ret;
    int tries;

    if (dir_write_r != NULL) {
        *dir_write_r = 0;
    }
    for (tries = 0; tries < 8; tries++) {
        ret = gnutls_record_recv(s, dst, len);
        if (ret > 0) {
            return ret;
        }
        if (ret == GNUTLS_E_REHANDSHAKE) {
            /* a TLS 1.2 client asks to renegotiate: say no, go on */
            (void)gnutls_alert_send(s, GNUTLS_AL_WARNING,
                                    GNUTLS_A_NO_RENEGOTIATION);
            continue;
        }
        if (ret == GNUTLS_E_WARNING_ALERT_RECEIVED
            || ret == GNUTLS_E_GOT_APPLICATION_DATA
            || ret == GNUTLS_E_SESSION_EOF) {
            if (ret == GNUTLS_E_SESSION_EOF) {
                return 0;
            }
            continue;
        }
        return record_error(c, ret, dir_write_r, "reading");
    }
    if (dir_write_r != NULL) {
        *dir_write_r = gnutls_record_get_direction(s);
    }
    errno = EAGAIN;
    return -1;
}

/* Send bytes (see tls.h and the file header on resending). */
ssize_t
tls_send(struct conn *c, const void *src, size_t len, int *dir_write_r)
{
    ssize_t ret;

    if (dir_write_r != NULL) {
        *dir_write_r = 1;
    }
    if (len == 0) {
        return 0;
    }
    ret = gnutls_record_send(c->tls, src, len);
    if (ret > 0) {
        return ret;
    }
    if (ret == 0) {
        errno = EAGAIN;
        return -1;
    }
    ret = record_error(c, ret, dir_write_r, "writing");
    if (ret == 0) {
        errno = EPIPE;
        return -1;
    }
    return ret;
}

/* Bytes decrypted and waiting inside GnuTLS. */
size_t
tls_pending(const struct conn *c)
{
    if (c->tls == NULL) {
        return 0;
    }
    return gnutls_record_check_pending(c->tls);
}

/* close_notify without waiting, once per connection (see tls.h). */
int
tls_bye(struct conn *c)
{
    struct tls_sess *ss;
    int ret;

    if (c->tls == NULL) {
        return 0;
    }
    /* sent (or failed) already: a half-close passed on by the relay has
     * shut the write side too, and GnuTLS would build a second alert
     * only to see EPIPE */
    ss = gnutls_session_get_ptr(c->tls);
    if (ss->bye == BYE_DONE) {
        return 0;
    }
    /* never waits: waiting here would stall a whole relay thread (every
     * pair on it) for one peer.  After EAGAIN GnuTLS keeps the alert and
     * the next call sends it. */
    do {
        ret = gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    } while (ret == GNUTLS_E_INTERRUPTED);
    if (ret == GNUTLS_E_AGAIN) {
        ss->bye = BYE_PENDING;
        errno = EAGAIN;
        return -1;
    }
    ss->bye = BYE_DONE;
    if (ret != 0) {
        errno = ret == GNUTLS_E_PUSH_ERROR && ss->transport_errno != 0
                ? ss->transport_errno : EIO;
        return -1;
    }
    return 0;
}

/* Whether the last EOF came without close_notify (see tls.h). */
int
tls_eof_truncated(const struct conn *c)
{
    const struct tls_sess *ss;

    if (c->tls == NULL) {
        return 0;
    }
    ss = gnutls_session_get_ptr(c->tls);
    return ss->eof_truncated;
}

/* Deinit the session. */
void
tls_free(struct conn *c)
{
    if (c->tls == NULL) {
        return;
    }
    free(gnutls_session_get_ptr(c->tls));
    gnutls_deinit(c->tls);
    c->tls = NULL;
}

/* malloc'd hex of bytes. */
static char *
hex_dup(const unsigned char *p, size_t len, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *s = malloc(len * 2 + 1);
    size_t i;

    if (s == NULL) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * len] = '\0';
    return s;
}

/* malloc'd copy of a gnutls datum as a C string; frees the datum. */
static char *
datum_take(gnutls_datum_t *d)
{
    char *s = malloc(d->size + 1);

    if (s != NULL) {
        memcpy(s, d->data, d->size);
        s[d->size] = '\0';
    }
    gnutls_free(d->data);
    d->data = NULL;
    return s;
}

/* A DN datum as NGINX shows it (tls_dn_as_openssl); frees the datum. */
static char *
dn_take(gnutls_datum_t *d)
{
    char *raw = datum_take(d), *dn;

    if (raw == NULL) {
        return NULL;
    }
    dn = tls_dn_as_openssl(raw);
    free(raw);
    return dn;
}

/* The client certificate's facts into info; 0 / -1. */
static int
info_cert(gnutls_session_t s, struct tls_info *info)
{
    const gnutls_datum_t *peers;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t d = { NULL, 0 };
    unsigned char buf[64];
    size_t size, i;
    unsigned n = 0;
    int rc = -1;

    peers = gnutls_certificate_get_peers(s, &n);
    if (peers == NULL || n == 0) {
        return 0;
    }
    if (gnutls_x509_crt_init(&crt) < 0
        || gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) < 0) {
        goto out;
    }
    if (gnutls_x509_crt_get_dn3(crt, &d, 0) < 0
        || (info->subject = dn_take(&d)) == NULL) {
        goto out;
    }
    if (gnutls_x509_crt_get_issuer_dn3(crt, &d, 0)
        < 0 || (info->issuer = dn_take(&d)) == NULL) {
        goto out;
    }
    size = sizeof(buf);
    if (gnutls_x509_crt_get_serial(crt, buf, &size) < 0) {
        goto out;
    }
    /* as OpenSSL prints it: no sign-padding zero bytes */
    for (i = 0; i + 1 < size && buf[i] == 0; i++) {
        continue;
    }
    if ((info->serial = hex_dup(buf + i, size - i, 1)) == NULL) {
        goto out;
    }
    size = sizeof(buf);
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA1, buf, &size) < 0
        || (info->fingerprint = hex_dup(buf, size, 0)) == NULL) {
        goto out;
    }
    if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) < 0
        || (info->cert_pem = datum_take(&d)) == NULL) {
        goto out;
    }
    rc = 0;

out:
    if (d.data != NULL) {
        gnutls_free(d.data);
    }
    if (crt != NULL) {
        gnutls_x509_crt_deinit(crt);
    }
    return rc;
}

/* Auth-SSL-* facts (see tls.h). */
int
tls_get_info(const struct conn *c, struct tls_info *info)
{
    gnutls_session_t s = c->tls;
    struct tls_sess *ss;
    gnutls_protocol_t v;
    const char *proto, *cipher;

    memset(info, 0, sizeof(*info));
    if (s == NULL) {
        return -1;
    }
    ss = gnutls_session_get_ptr(s);
    v = gnutls_protocol_get_version(s);
    switch (v) {
    case GNUTLS_SSL3:   proto = "SSLv3";   break;
    case GNUTLS_TLS1_0: proto = "TLSv1";   break;
    case GNUTLS_TLS1_1: proto = "TLSv1.1"; break;
    case GNUTLS_TLS1_2: proto = "TLSv1.2"; break;
    case GNUTLS_TLS1_3: proto = "TLSv1.3"; break;
    default:            proto = gnutls_protocol_get_name(v); break;
    }
    cipher = tls_suite_openssl_name(v, gnutls_kx_get(s), gnutls_cipher_get(s),
                                    gnutls_mac_get(s));
    if (cipher == NULL) {
#if GNUTLS_VERSION_NUMBER >= 0x030703
        cipher = gnutls_ciphersuite_get(s);
#else
        cipher = gnutls_cipher_suite_get_name(gnutls_kx_get(s),
                                              gnutls_cipher_get(s),
                                              gnutls_mac_get(s));
#endif
    }
    info->protocol = strdup(proto ? proto : "unknown");
    info->cipher = strdup(cipher ? cipher : "unknown");
    info->verify = strdup(ss != NULL ? ss->verify : "NONE");
    info->verified = ss != NULL && strcmp(ss->verify, "SUCCESS") == 0;
    if (info->protocol == NULL || info->cipher == NULL
        || info->verify == NULL || info_cert(s, info) < 0) {
        tls_info_free(info);
        return -1;
    }
    return 0;
}

/* Free what tls_get_info made. */
void
tls_info_free(struct tls_info *info)
{
    free(info->protocol);
    free(info->cipher);
    free(info->verify);
    free(info->subject);
    free(info->issuer);
    free(info->serial);
    free(info->fingerprint);
    free(info->cert_pem);
    memset(info, 0, sizeof(*info));
}
