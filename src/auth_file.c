/*
 * auth_file.c - the built-in auth service: a text file of users, each with
 * a password hash and a backend (format in auth_file.h).
 *
 * Handles secrets: {PLAIN} secrets live in the table (wiped when it is
 * freed); client passwords are copied only to NUL-terminate them for
 * crypt and are wiped at once.  Comparisons of secrets are constant-time,
 * and an unknown user costs the same crypt work as a known one, so answers
 * do not tell which names exist.  The file is trusted (the operator's) but
 * parsed with bounds.  The table is immutable once built: sessions read it
 * from many threads without locks (crypt_rn keeps its state in a per-call
 * buffer).
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "auth.h"
#include "auth_file.h"
#include "auth_impl.h"
#include "sasl.h"
#include "str.h"

#define AUTH_FILE_MAX_SIZE (64u * 1024 * 1024)
#define PLAIN_PREFIX "{PLAIN}"

/*
 * After a refused login the client may try again after this many seconds:
 * the classic delay that slows password guessing without dropping a user
 * who mistyped (without Auth-Wait, NGINX closes the session instead).
 */
#define AUTH_FILE_FAIL_WAIT 2

#define MSG_INVALID "Invalid login or password"

struct entry {
    char *name;
    size_t name_len;
    char *hash;             /* crypt(3) string, or NULL for {PLAIN} */
    char *plain;            /* {PLAIN} secret, or NULL */
    size_t plain_len;
    char *server;           /* address or host name, no brackets */
    unsigned short port;    /* 0: the protocol's standard port */
    char *backend_user;     /* or NULL */
    int line;
};

struct table {
    size_t n;
    struct entry *v;        /* sorted by name */
    const char *dummy;      /* a crypt setting to spend time on for unknown
                               users: the first hash in the file, or NULL */
};

/* Free one entry's strings, wiping the secrets. */
static void
entry_free(struct entry *e)
{
    if (e->plain != NULL) {
        mem_wipe(e->plain, e->plain_len);
    }
    if (e->hash != NULL) {
        mem_wipe(e->hash, strlen(e->hash));
    }
    free(e->name);
    free(e->hash);
    free(e->plain);
    free(e->server);
    free(e->backend_user);
    memset(e, 0, sizeof(*e));
}

/* Free a table from auth_file_load / auth_file_parse. */
void
auth_file_free(void *table)
{
    struct table *t = table;
    size_t i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < t->n; i++) {
        entry_free(&t->v[i]);
    }
    free(t->v);
    free(t);
}

/* Number of entries. */
size_t
auth_file_count(const void *table)
{
    const struct table *t = table;

    return t != NULL ? t->n : 0;
}

/* A field for a message: printable, cut to a readable length. */
static const char *
shown(const unsigned char *p, size_t n, char *out, size_t outlen)
{
    size_t i;

    if (n > outlen - 1) {
        n = outlen - 1;
    }
    for (i = 0; i < n; i++) {
        out[i] = (p[i] < 0x20 || p[i] >= 0x7f) ? '?' : (char)p[i];
    }
    out[n] = '\0';
    return out;
}

/* A heap NUL-terminated copy of n bytes. */
static char *
dupn(const unsigned char *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Host name or IPv4 address characters. */
static int
valid_host(const unsigned char *p, size_t n)
{
    size_t i;

    if (n == 0 || n > 253 || p[0] == '-' || p[0] == '.') {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '-'
              || c == '_')) {
            return 0;
        }
    }
    return 1;
}

/* IPv6 address text (without brackets). */
static int
valid_ipv6(const unsigned char *p, size_t n)
{
    struct in6_addr a;
    char tmp[INET6_ADDRSTRLEN + 1];

    if (n == 0 || n >= sizeof(tmp)) {
        return 0;
    }
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, &a) == 1;
}

/*
 * SERVER[:PORT] into e->server / e->port.  0 ok; -1 bad server, -2 bad
 * port (out of memory counts as a bad server, with a message in err by the
 * caller being wrong but harmless: loading fails either way).
 */
static int
parse_server(const unsigned char *p, size_t n, struct entry *e)
{
    const unsigned char *host = p, *port = NULL, *colon;
    size_t hlen = n, plen = 0, i;
    long v = 0;

    if (n > 0 && p[0] == '[') {
        colon = memchr(p, ']', n);
        if (colon == NULL) {
            return -1;
        }
        host = p + 1;
        hlen = (size_t)(colon - host);
        if (!valid_ipv6(host, hlen)) {
            return -1;
        }
        if ((size_t)(colon + 1 - p) < n) {
            if (colon[1] != ':') {
                return -1;
            }
            port = colon + 2;
            plen = n - (size_t)(port - p);
        }
    } else {
        colon = memchr(p, ':', n);
        if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon + 1 - p))
            != NULL) {
            /* more than one colon: a bare IPv6 address, no port */
            if (!valid_ipv6(p, n)) {
                return -1;
            }
        } else {
            if (colon != NULL) {
                hlen = (size_t)(colon - p);
                port = colon + 1;
                plen = n - hlen - 1;
            }
            if (!valid_host(host, hlen)) {
                return -1;
            }
        }
    }
    if (port != NULL) {
        if (plen == 0 || plen > 5) {
            return -2;
        }
        for (i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9') {
                return -2;
            }
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535) {
            return -2;
        }
    }
    e->server = dupn(host, hlen);
    if (e->server == NULL) {
        return -1;
    }
    e->port = (unsigned short)v;
    return 0;
}

/* A HASH field into e->hash or e->plain; NULL ok, else what is wrong. */
static const char *
parse_hash(const unsigned char *p, size_t n, struct entry *e)
{
    size_t pl = sizeof(PLAIN_PREFIX) - 1;

    if (n >= pl && memcmp(p, PLAIN_PREFIX, pl) == 0) {
        if (n == pl) {
            return "empty {PLAIN} secret";
        }
        e->plain = dupn(p + pl, n - pl);
        e->plain_len = n - pl;
        return e->plain != NULL ? NULL : "out of memory";
    }
    if (n < 3 || p[0] != '$') {
        return "invalid password hash: want a crypt(3) string or "
               "{PLAIN}secret";
    }
    e->hash = dupn(p, n);
    if (e->hash == NULL) {
        return "out of memory";
    }
#ifdef CRYPT_SALT_OK
    {
        int rc = crypt_checksalt(e->hash);

        if (rc == CRYPT_SALT_INVALID) {
            return "invalid or unsupported crypt(3) hash";
        }
        if (rc == CRYPT_SALT_METHOD_DISABLED) {
            return "crypt(3) method disabled on this system";
        }
    }
#endif
    return NULL;
}

/* Order entries by name, then line (so the first of duplicates is first). */
static int
entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);

    if (c != 0) {
        return c;
    }
    if (x->name_len != y->name_len) {
        return x->name_len < y->name_len ? -1 : 1;
    }
    return (x->line > y->line) - (x->line < y->line);
}

/* 1 if two entries have the same name. */
static int
same_name(const struct entry *a, const struct entry *b)
{
    return a->name_len == b->name_len
           && memcmp(a->name, b->name, a->name_len) == 0;
}

/* 1 for the "*" line (the SMTP no-AUTH backend). */
static int
is_star(const struct entry *e)
{
    return e->name_len == 1 && e->name[0] == '*';
}

/* Find a user by name bytes; NULL if absent. */
static const struct entry *
find(const struct table *t, const unsigned char *name, size_t len)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct entry *e = &t->v[mid];
        size_t n = e->name_len < len ? e->name_len : len;
        int c = memcmp(e->name, name, n);

        if (c == 0) {
            c = (e->name_len > len) - (e->name_len < len);
        }
        if (c == 0) {
            return e;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* One non-comment line's fields into e; NULL ok, else what is wrong
 * (static text or written into why). */
static const char *
parse_line(const unsigned char *p, size_t n, struct entry *e, char *why,
           size_t whylen)
{
    const unsigned char *f[5];
    size_t fl[5], nf = 0, i = 0;
    const char *msg;
    char s[80];
    int rc;

    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t')) {
            i++;
        }
        if (i == n) {
            break;
        }
        if (nf == 5) {
            nf++;
            break;
        }
        f[nf] = p + i;
        while (i < n && p[i] != ' ' && p[i] != '\t') {
            i++;
        }
        fl[nf] = (size_t)(p + i - f[nf]);
        nf++;
    }
    if (nf < 3 || nf > 4) {
        snprintf(why, whylen, "expected NAME HASH SERVER[:PORT] "
                 "[BACKEND-USER], found %s%zu field%s", nf > 5 ? "more than "
                 : "", nf > 5 ? (size_t)4 : nf, nf == 1 ? "" : "s");
        return why;
    }
    e->name = dupn(f[0], fl[0]);
    e->name_len = fl[0];
    if (e->name == NULL) {
        return "out of memory";
    }
    msg = parse_hash(f[1], fl[1], e);
    if (msg != NULL) {
        snprintf(why, whylen, "%s (user \"%s\")", msg,
                 shown(f[0], fl[0], s, sizeof(s)));
        return why;
    }
    rc = parse_server(f[2], fl[2], e);
    if (rc == -1) {
        snprintf(why, whylen, "invalid server \"%s\"",
                 shown(f[2], fl[2], s, sizeof(s)));
        return why;
    }
    if (rc == -2) {
        snprintf(why, whylen, "invalid port in \"%s\"",
                 shown(f[2], fl[2], s, sizeof(s)));
        return why;
    }
    if (nf == 4) {
        e->backend_user = dupn(f[3], fl[3]);
        if (e->backend_user == NULL) {
            return "out of memory";
        }
    }
    return NULL;
}

/* Parse a whole file's text into a table (see auth_file.h). */
void *
auth_file_parse(const char *name, const unsigned char *text, size_t len,
                char *err, size_t errlen)
{
    struct table *t;
    struct entry e, *v;
    size_t pos = 0, cap = 0, i, n;
    const unsigned char *lf;
    const char *msg;
    char why[256], s[80];
    int line = 0, dup = -1, first_line;

    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    while (pos < len) {
        line++;
        lf = memchr(text + pos, '\n', len - pos);
        n = lf != NULL ? (size_t)(lf - (text + pos)) : len - pos;
        if (n > AUTH_FILE_MAX_LINE) {
            snprintf(err, errlen, "%s:%d: line too long (more than %d "
                     "bytes)", name, line, AUTH_FILE_MAX_LINE);
            goto fail;
        }
        if (memchr(text + pos, '\0', n) != NULL) {
            snprintf(err, errlen, "%s:%d: NUL byte in line", name, line);
            goto fail;
        }
        {
            const unsigned char *p = text + pos;
            size_t ln = n, k = 0;

            pos += n + (lf != NULL ? 1 : 0);
            if (ln > 0 && p[ln - 1] == '\r') {
                ln--;
            }
            while (k < ln && (p[k] == ' ' || p[k] == '\t')) {
                k++;
            }
            if (k == ln || p[k] == '#') {
                continue;
            }
            memset(&e, 0, sizeof(e));
            e.line = line;
            msg = parse_line(p + k, ln - k, &e, why, sizeof(why));
        }
        if (msg != NULL) {
            entry_free(&e);
            snprintf(err, errlen, "%s:%d: %s", name, line, msg);
            goto fail;
        }
        if (t->n == cap) {
            cap = cap ? cap * 2 : 16;
            v = realloc(t->v, cap * sizeof(*v));
            if (v == NULL) {
                entry_free(&e);
                snprintf(err, errlen, "%s: out of memory", name);
                goto fail;
            }
            t->v = v;
        }
        t->v[t->n++] = e;
    }

    if (t->n > 1) {
        qsort(t->v, t->n, sizeof(*t->v), entry_cmp);
    }
    /* Sorted by (name, line), each run of one name starts with its first
     * line; report the second line of a run, the earliest such in the
     * file. */
    for (i = 1; i < t->n; i++) {
        if (same_name(&t->v[i - 1], &t->v[i])
            && (i < 2 || !same_name(&t->v[i - 2], &t->v[i - 1]))
            && (dup < 0 || t->v[i].line < t->v[dup].line)) {
            dup = (int)i;
        }
    }
    if (dup >= 0) {
        snprintf(err, errlen, "%s:%d: duplicate user \"%s\" (first on line "
                 "%d)", name, t->v[dup].line,
                 shown((const unsigned char *)t->v[dup].name,
                       t->v[dup].name_len, s, sizeof(s)),
                 t->v[dup - 1].line);
        goto fail;
    }
    /* the dummy setting for unknown users: the first hash in file order */
    first_line = 0;
    for (i = 0; i < t->n; i++) {
        if (t->v[i].hash != NULL && !is_star(&t->v[i])
            && (t->dummy == NULL || t->v[i].line < first_line)) {
            t->dummy = t->v[i].hash;
            first_line = t->v[i].line;
        }
    }
    return t;

fail:
    auth_file_free(t);
    return NULL;
}

/* Read and parse a file (see auth.h). */
void *
auth_file_load(const char *path, char *err, size_t errlen)
{
    unsigned char *text = NULL;
    struct stat st;
    size_t len = 0;
    ssize_t n;
    void *t = NULL;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto done;
    }
    if ((unsigned long long)st.st_size > AUTH_FILE_MAX_SIZE) {
        snprintf(err, errlen, "%s: file too big (more than %u bytes)", path,
                 AUTH_FILE_MAX_SIZE);
        goto done;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    while (len < (size_t)st.st_size) {
        n = read(fd, text + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path,
                     strerror(errno));
            goto done;
        }
        if (n == 0) {
            break;      /* the file shrank: parse what is there */
        }
        len += (size_t)n;
    }
    t = auth_file_parse(path, text, len, err, errlen);

done:
    if (text != NULL) {
        mem_wipe(text, len);
        free(text);
    }
    close(fd);
    return t;
}

/* The challenge as the digest wants it: without a trailing line end. */
static struct str
salt_of(const struct auth_request *rq)
{
    struct str s = rq->salt;

    while (s.len > 0 && (s.data[s.len - 1] == '\n'
                         || s.data[s.len - 1] == '\r')) {
        s.len--;
    }
    return s;
}

/* Hash pass with a crypt setting; 1 if the result is want (NULL: only
 * spend the time). */
static int
crypt_check(const char *setting, struct str pass, const char *want)
{
    struct crypt_data *cd;
    const char *out;
    char *pw;
    int ok = 0, has_nul;

    /* crypt stops at a NUL: "secret\0junk" must not pass as "secret" */
    has_nul = pass.len > 0 && memchr(pass.data, '\0', pass.len) != NULL;
    pw = malloc(pass.len + 1);
    cd = calloc(1, sizeof(*cd));   /* ~32 KiB: not on a worker's stack */
    if (pw != NULL && cd != NULL) {
        if (pass.len > 0) {
            memcpy(pw, pass.data, pass.len);
        }
        pw[pass.len] = '\0';
        out = crypt_rn(pw, setting, cd, (int)sizeof(*cd));
        ok = want != NULL && out != NULL && out[0] != '*' && !has_nul
             && mem_eq_const(out, strlen(out), want, strlen(want));
    }
    if (pw != NULL) {
        mem_wipe(pw, pass.len + 1);
        free(pw);
    }
    if (cd != NULL) {
        mem_wipe(cd, sizeof(*cd));
        free(cd);
    }
    return ok;
}

/* Check a clear-text password against e (NULL: unknown user).  1 if it
 * matches.  Every answer costs one crypt of the file's dummy setting or of
 * the user's own hash, so its time does not tell whether the name is
 * listed: an unknown user and a {PLAIN} one spend it on the dummy (a file
 * of {PLAIN} entries only has none, and then nobody spends any). */
static int
check_password(const struct table *t, const struct entry *e, struct str pass)
{
    int ok = 0;

    if (e != NULL && e->plain != NULL) {
        ok = mem_eq_const(pass.data, pass.len, e->plain, e->plain_len);
    } else if (e != NULL) {
        return crypt_check(e->hash, pass, e->hash);
    }
    if (t->dummy != NULL) {
        crypt_check(t->dummy, pass, NULL);
    }
    return ok;
}

/* Compare a client's hex digest with ours, in constant time, ignoring
 * the case of the client's hex. */
static int
digest_eq(const char ours[33], struct str theirs)
{
    char low[32];
    size_t i;

    if (theirs.len != 32) {
        return 0;
    }
    for (i = 0; i < 32; i++) {
        unsigned char c = theirs.data[i];

        low[i] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
    }
    return mem_eq_const(ours, 32, low, 32);
}

/* Fill an OK result from an entry. */
static void
set_ok(struct auth_result *r, const struct entry *e,
       const struct auth_request *rq, int give_secret)
{
    r->server = strdup(e->server);
    if (r->server == NULL) {
        auth_result_tempfail(r, "out of memory");
        return;
    }
    r->port = e->port != 0 ? e->port : auth_default_port(rq->protocol);
    if (e->backend_user != NULL
        && auth_str_copy(&r->user, (const unsigned char *)e->backend_user,
                         strlen(e->backend_user)) < 0) {
        auth_result_tempfail(r, "out of memory");
        return;
    }
    /* after APOP / CRAM-MD5 / EXTERNAL the backend login needs the
     * clear-text secret, as an auth_http service sends it in Auth-Pass */
    if (give_secret && e->plain != NULL
        && auth_str_copy(&r->pass, (const unsigned char *)e->plain,
                         e->plain_len) < 0) {
        auth_result_tempfail(r, "out of memory");
        return;
    }
    r->status = AUTH_OK;
}

/* Refuse: the same message whatever was wrong. */
static void
set_fail(struct auth_result *r, const char *msg)
{
    r->status = AUTH_FAIL;
    r->wait = AUTH_FILE_FAIL_WAIT;
    r->message = strdup(msg);
    if (r->message == NULL) {
        auth_result_tempfail(r, "out of memory");
    }
}

/* The byte two hex digits at p stand for, or -1. */
static int
hex_pair(const char *p)
{
    int hi = str_hex_digit((unsigned char)p[0]), lo;

    if (hi < 0 || (lo = str_hex_digit((unsigned char)p[1])) < 0) {
        return -1;
    }
    return hi << 4 | lo;
}

/*
 * Whether a verified certificate's subject (RFC 2253, as tls_get_info gives
 * it) names this user: its CN, UID or emailAddress attribute equals the
 * login exactly.  Without this, any certificate the CA signed could log in
 * as any user of the file.
 */
static int
subject_names(const char *subject, const unsigned char *name, size_t len)
{
    const char *p = subject;

    while (p != NULL && *p != '\0') {
        char type[32], value[256];
        size_t tl = 0, vl = 0;

        while (*p != '\0' && *p != '=' && tl < sizeof(type) - 1) {
            type[tl++] = *p++;
        }
        type[tl] = '\0';
        if (*p != '=') {
            return 0;
        }
        p++;
        /* the value runs to the next unescaped ',' or '+'; "\\XX" is a
         * byte in hex (RFC 4514 2.4), "\\c" the character c */
        while (*p != '\0' && *p != ',' && *p != '+') {
            int byte = *p == '\\' ? hex_pair(p + 1) : -1;

            if (vl == sizeof(value) - 1) {
                return 0;
            }
            if (byte >= 0) {
                value[vl++] = (char)byte;
                p += 3;
                continue;
            }
            if (*p == '\\' && p[1] != '\0') {
                p++;
            }
            value[vl++] = *p++;
        }
        value[vl] = '\0';
        /* the e-mail attribute (1.2.840.113549.1.9.1) as OpenSSL names it
         * (tls_dn_as_openssl), and as GnuTLS does */
        if ((strcasecmp(type, "CN") == 0 || strcasecmp(type, "UID") == 0
             || strcasecmp(type, "EMAIL") == 0
             || strcasecmp(type, "emailAddress") == 0)
            && vl == len && memcmp(value, name, len) == 0) {
            return 1;
        }
        if (*p != '\0') {
            p++;
        }
    }
    return 0;
}

/* Ask the user file (see auth.h). */
void
auth_file_query(const struct server_conf *sc, const struct auth_request *rq,
                struct auth_result *r)
{
    const struct table *t = sc->auth_file_data;
    const struct entry *e = NULL;
    char digest[33];
    struct str salt;
    int ok = 0;

    auth_result_init(r);
    if (t == NULL) {
        auth_result_tempfail(r, "auth_file %s is not loaded",
                             sc->auth_file ? sc->auth_file : "(unset)");
        return;
    }
    /* "*" is the SMTP no-AUTH backend, never a login name */
    if (rq->user.len > 0 && !(rq->user.len == 1 && rq->user.data[0] == '*')) {
        e = find(t, rq->user.data, rq->user.len);
    }

    switch (rq->method) {
    case AUTH_METHOD_NONE:
        e = find(t, (const unsigned char *)"*", 1);
        if (e == NULL) {
            set_fail(r, "Authentication required");
            if (r->status == AUTH_FAIL) {
                r->error_code = strdup("530 5.7.0");
            }
            return;
        }
        set_ok(r, e, rq, 0);
        return;

    case AUTH_METHOD_PLAIN:
    case AUTH_METHOD_LOGIN:
        ok = check_password(t, e, rq->pass);
        break;

    case AUTH_METHOD_CRAM_MD5:
    case AUTH_METHOD_APOP:
        if (e != NULL && e->plain == NULL) {
            auth_result_reason(r, "auth_file: user \"%s\" has a crypt hash, "
                               "%s needs {PLAIN}", e->name,
                               auth_method_name(rq->method));
            break;
        }
        if (e == NULL) {
            break;
        }
        salt = salt_of(rq);
        if (rq->method == AUTH_METHOD_CRAM_MD5) {
            cram_md5_digest((struct str){ e->plain_len,
                                          (unsigned char *)e->plain },
                            salt, digest);
        } else {
            apop_digest(salt, (struct str){ e->plain_len,
                                            (unsigned char *)e->plain },
                        digest);
        }
        ok = digest_eq(digest, rq->pass);
        mem_wipe(digest, sizeof(digest));
        break;

    case AUTH_METHOD_EXTERNAL:
        /* the certificate must be verified and must name the user */
        ok = e != NULL && rq->ssl_verify != NULL
             && strcmp(rq->ssl_verify, "SUCCESS") == 0
             && rq->ssl_subject != NULL
             && subject_names(rq->ssl_subject, rq->user.data, rq->user.len);
        break;
    }

    if (ok) {
        set_ok(r, e, rq, rq->method != AUTH_METHOD_PLAIN
                         && rq->method != AUTH_METHOD_LOGIN);
    } else {
        set_fail(r, MSG_INVALID);
    }
}
