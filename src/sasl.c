/*
 * sasl.c - SASL for IMAP, POP3 and SMTP: strict base64, the PLAIN (RFC
 * 4616), LOGIN, CRAM-MD5 (RFC 2195) and EXTERNAL (RFC 4422) exchanges, and
 * the CRAM-MD5 / APOP (RFC 1939) digests that auth_file checks answers with.
 *
 * Untrusted input: every byte decoded here comes from a client.
 * Secrets: decoded passwords pass through heap buffers that are wiped
 * before they are freed; nothing here logs a password.
 * Locks: none; the decoders are pure, sasl_exchange() works on one session
 * owned by the calling worker.
 *
 * An exchange whose client has not answered a challenge yet may park with
 * its session (session_fill_client): where it stands goes into s->sasl
 * (struct sasl_wait), and sasl_resume() goes on from there in whichever
 * worker takes the session back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "auth.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "sasl.h"
#include "session.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The challenges of AUTH LOGIN, base64 of "Username:" and "Password:". */
#define SASL_USERNAME_B64 "VXNlcm5hbWU6"
#define SASL_PASSWORD_B64 "UGFzc3dvcmQ6"

/* Length of the base64 text for n bytes. */
size_t
base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Encode n bytes as base64 with padding; returns the text length. */
size_t
base64_encode(const unsigned char *src, size_t n, char *dst)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        dst[o++] = b64_alphabet[src[i] >> 2];
        dst[o++] = b64_alphabet[((src[i] & 0x03) << 4) | (src[i + 1] >> 4)];
        dst[o++] = b64_alphabet[((src[i + 1] & 0x0f) << 2) | (src[i + 2] >> 6)];
        dst[o++] = b64_alphabet[src[i + 2] & 0x3f];
    }
    if (n - i == 1) {
        dst[o++] = b64_alphabet[src[i] >> 2];
        dst[o++] = b64_alphabet[(src[i] & 0x03) << 4];
        dst[o++] = '=';
        dst[o++] = '=';
    } else if (n - i == 2) {
        dst[o++] = b64_alphabet[src[i] >> 2];
        dst[o++] = b64_alphabet[((src[i] & 0x03) << 4) | (src[i + 1] >> 4)];
        dst[o++] = b64_alphabet[(src[i + 1] & 0x0f) << 2];
        dst[o++] = '=';
    }
    return o;
}

/* Value of one base64 character, -1 for anything outside the alphabet. */
static int
b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if (ch == '+') {
        return 62;
    }
    if (ch == '/') {
        return 63;
    }
    return -1;
}

/*
 * Strict base64 decode: whole quanta only, '=' only as the final padding,
 * no whitespace, and the bits a padded quantum leaves over must be zero, so
 * that every byte string has exactly one accepted encoding.
 */
int
base64_decode(const unsigned char *src, size_t n, unsigned char *dst,
              size_t *len_r)
{
    size_t i, o = 0;
    int v[4];

    if (n % 4 != 0) {
        return -1;
    }
    for (i = 0; i < n; i += 4) {
        int last = (i + 4 == n);
        int pad = 0;

        for (int k = 0; k < 4; k++) {
            if (src[i + k] == '=' && last && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0) {
                return -1;                  /* data after padding: "a=b=" */
            }
            v[k] = b64_value(src[i + k]);
            if (v[k] < 0) {
                return -1;
            }
        }
        dst[o++] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
        if (pad == 2) {
            if ((v[1] & 0x0f) != 0) {
                return -1;
            }
            break;
        }
        dst[o++] = (unsigned char)(((v[1] & 0x0f) << 4) | (v[2] >> 2));
        if (pad == 1) {
            if ((v[2] & 0x03) != 0) {
                return -1;
            }
            break;
        }
        dst[o++] = (unsigned char)(((v[2] & 0x03) << 6) | v[3]);
    }
    *len_r = o;
    return 0;
}

/* RFC 4616: [authzid] NUL authcid NUL passwd; authcid and passwd non-empty.
 * The authzid is not used: the auth service decides on the authcid. */
int
sasl_plain_parse(struct str msg, struct str *login_r, struct str *pass_r)
{
    unsigned char *p, *end, *nul1, *nul2;

    if (msg.len == 0 || msg.data == NULL) {
        return -1;
    }
    p = msg.data;
    end = msg.data + msg.len;
    nul1 = memchr(p, '\0', msg.len);
    if (nul1 == NULL) {
        return -1;
    }
    nul2 = memchr(nul1 + 1, '\0', (size_t)(end - (nul1 + 1)));
    if (nul2 == NULL) {
        return -1;
    }
    /* a third NUL would make the password ambiguous */
    if (memchr(nul2 + 1, '\0', (size_t)(end - (nul2 + 1))) != NULL) {
        return -1;
    }
    login_r->data = nul1 + 1;
    login_r->len = (size_t)(nul2 - (nul1 + 1));
    pass_r->data = nul2 + 1;
    pass_r->len = (size_t)(end - (nul2 + 1));
    if (login_r->len == 0 || pass_r->len == 0) {
        *login_r = STR_NULL;
        *pass_r = STR_NULL;
        return -1;
    }
    return 0;
}

/* RFC 2195: "user SP digest", the digest 32 hex digits.  The user is split
 * at the last space, so a user name with spaces survives. */
int
sasl_cram_parse(struct str msg, struct str *login_r, struct str *digest_r)
{
    size_t i, sp;

    if (msg.data == NULL || msg.len < 34) {
        return -1;
    }
    sp = msg.len - 33;
    if (msg.data[sp] != ' ') {
        return -1;
    }
    for (i = sp + 1; i < msg.len; i++) {
        unsigned char ch = msg.data[i];

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')
              || (ch >= 'A' && ch <= 'F'))) {
            return -1;
        }
    }
    for (i = 0; i < sp; i++) {
        if (msg.data[i] == '\0' || msg.data[i] == '\r'
            || msg.data[i] == '\n') {
            return -1;
        }
    }
    login_r->data = msg.data;
    login_r->len = sp;
    digest_r->data = msg.data + sp + 1;
    digest_r->len = 32;
    return 0;
}

/* 16 digest bytes as 32 lower-case hex digits and a NUL. */
static void
hex_md5(const unsigned char md[16], char out[33])
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[32] = '\0';
}

/* HMAC-MD5(secret, challenge) in hex; "" if the library refuses MD5. */
void
cram_md5_digest(struct str secret, struct str challenge, char out[33])
{
    unsigned char md[16];
    static const unsigned char empty[1];

    if (gnutls_hmac_fast(GNUTLS_MAC_MD5,
                         secret.len ? secret.data : empty, secret.len,
                         challenge.len ? challenge.data : empty,
                         challenge.len, md) < 0) {
        out[0] = '\0';
        return;
    }
    hex_md5(md, out);
    mem_wipe(md, sizeof(md));
}

/* MD5(challenge || secret) in hex (RFC 1939 APOP); "" on failure.  Hashed
 * in two steps so that the secret is never copied next to the challenge. */
void
apop_digest(struct str challenge, struct str secret, char out[33])
{
    gnutls_hash_hd_t h;
    unsigned char md[16];

    out[0] = '\0';
    if (gnutls_hash_init(&h, GNUTLS_DIG_MD5) < 0) {
        return;
    }
    if ((challenge.len > 0
         && gnutls_hash(h, challenge.data, challenge.len) < 0)
        || (secret.len > 0 && gnutls_hash(h, secret.data, secret.len) < 0)) {
        gnutls_hash_deinit(h, md);
        mem_wipe(md, sizeof(md));
        return;
    }
    gnutls_hash_deinit(h, md);
    hex_md5(md, out);
    mem_wipe(md, sizeof(md));
}

/* A decoded client answer: heap bytes, wiped on release. */
struct sasl_blob {
    unsigned char *data;
    size_t len;
};

static void
blob_wipe(struct sasl_blob *b)
{
    if (b->data != NULL) {
        mem_wipe(b->data, b->len);
        free(b->data);
    }
    b->data = NULL;
    b->len = 0;
}

/*
 * Decode one base64 answer into *out.  With initial set, "=" stands for an
 * empty answer (RFC 4954 / 5034 initial-response syntax).
 */
static enum sasl_rc
decode_answer(struct session *s, const unsigned char *p, size_t n,
              int initial, struct sasl_blob *out)
{
    out->data = NULL;
    out->len = 0;
    if (initial && n == 1 && p[0] == '=') {
        n = 0;
    }
    out->data = malloc(n / 4 * 3 + 1);
    if (out->data == NULL) {
        session_log(s, LOG_LV_ERR, "out of memory decoding a SASL answer");
        return SASL_INTERNAL;
    }
    if (base64_decode(p, n, out->data, &out->len) != 0) {
        /* a failed decode may have written bytes without setting the length */
        out->len = n / 4 * 3 + 1;
        blob_wipe(out);
        session_log(s, LOG_LV_INFO, "client sent invalid base64 encoding");
        return SASL_BAD;
    }
    return SASL_OK;
}

/* Send PREFIX + text + CRLF. */
static enum sasl_rc
send_challenge(struct session *s, const char *prefix, const char *text,
               size_t tlen)
{
    size_t plen = strlen(prefix);
    size_t n = plen + tlen + 2;
    char *line = malloc(n);
    int rc;

    if (line == NULL) {
        session_log(s, LOG_LV_ERR, "out of memory sending a SASL challenge");
        return SASL_INTERNAL;
    }
    memcpy(line, prefix, plen);
    if (tlen > 0) {
        memcpy(line + plen, text, tlen);
    }
    memcpy(line + plen + tlen, "\r\n", 2);
    rc = session_send(s, line, n);
    free(line);
    return rc == 0 ? SASL_OK : SASL_IO;
}

/*
 * The client's next line, consumed: 1; 0 when nothing has come and the
 * session is to park (session_fill_client); -1 when the client is gone
 * (logged), or with errno ENOBUFS when the line is longer than the buffer.
 */
static int
next_line(struct session *s, unsigned char **line_r, size_t *len_r)
{
    size_t scanned = 0;

    for (;;) {
        int rc = buf_take_line(&s->client.in, &scanned, line_r, len_r);

        if (rc != 0) {
            return rc;
        }
        rc = session_fill_client(s);
        if (rc != 1) {
            errno = 0;
            return rc == 0 ? 0 : -1;
        }
    }
}

/*
 * Read the client's answer line and decode it.  "*" cancels (RFC 4422
 * 3.5); a line longer than the client buffer is malformed.  SASL_PARK:
 * nothing has come yet (see sasl_exchange).
 */
static enum sasl_rc
read_answer(struct session *s, struct sasl_blob *out)
{
    unsigned char *line;
    size_t len;
    enum sasl_rc rc;
    int got;

    out->data = NULL;
    out->len = 0;
    got = next_line(s, &line, &len);
    if (got == 0) {
        return SASL_PARK;
    }
    if (got < 0) {
        if (errno == ENOBUFS) {
            session_log(s, LOG_LV_INFO, "client sent too long SASL answer");
            /* drop the rest of the line too: no byte of it may be read as
             * the next command; the part read may hold a password */
            mem_wipe(buf_head(&s->client.in), buf_len(&s->client.in));
            if (conn_skip_line(&s->client) != 0) {
                return SASL_IO;
            }
            return SASL_BAD;
        }
        return SASL_IO;                 /* logged */
    }
    if (len > 0 && line[len - 1] == '\n') {
        len--;
    }
    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    if (len == 1 && line[0] == '*') {
        return SASL_CANCEL;
    }
    rc = decode_answer(s, line, len, 0, out);
    mem_wipe(line, len);                /* the password is in the buffer */
    return rc;
}

/*
 * Where an exchange stands: kept in s->sasl while the session waits,
 * parked, for an answer to a challenge already sent.
 */
struct sasl_wait {
    unsigned mech;                      /* AUTH_M_* */
    const char *prefix;                 /* "+ " or "334 " (static) */
    int challenged;                     /* the challenge is out: read */
    int step;                           /* LOGIN: 1 once the user is in */
    struct sasl_blob user;              /* LOGIN: the user name */
    struct str salt;                    /* CRAM-MD5: the challenge sent */
};

static void
wait_clear(struct sasl_wait *w)
{
    blob_wipe(&w->user);
    str_wipe_free(&w->salt);
}

/* Either the initial response (decoded) or a challenge (once) and the
 * answer. */
static enum sasl_rc
get_answer(struct session *s, struct sasl_wait *w, struct str initial,
           const char *challenge, struct sasl_blob *out)
{
    enum sasl_rc rc;

    if (initial.data != NULL) {
        return decode_answer(s, initial.data, initial.len, 1, out);
    }
    if (!w->challenged) {
        rc = send_challenge(s, w->prefix, challenge, strlen(challenge));
        if (rc != SASL_OK) {
            return rc;
        }
        w->challenged = 1;
    }
    rc = read_answer(s, out);
    if (rc != SASL_PARK) {
        w->challenged = 0;
    }
    return rc;
}

/*
 * Store the credentials of a finished exchange (copied).  A login name
 * with CR, LF or NUL is refused here: no real account has one, and it is
 * bound for log lines and backend command lines.
 */
static enum sasl_rc
set_creds(struct session *s, enum auth_method m, struct str login,
          struct str passwd, struct str salt)
{
    if (str_has_ctl(login)) {
        session_log(s, LOG_LV_INFO, "client sent a login with CR, LF or NUL");
        return SASL_BAD;
    }
    if (session_set_creds(s, m, login, passwd, salt) != 0) {
        session_log(s, LOG_LV_ERR, "out of memory storing credentials");
        return SASL_INTERNAL;
    }
    return SASL_OK;
}

/* PLAIN: one message "authzid NUL authcid NUL passwd". */
static enum sasl_rc
sasl_plain(struct session *s, struct sasl_wait *w, struct str initial)
{
    struct sasl_blob msg;
    struct str login, pass;
    enum sasl_rc rc;

    rc = get_answer(s, w, initial, "", &msg);
    if (rc != SASL_OK) {
        return rc;
    }
    if (sasl_plain_parse((struct str){ msg.len, msg.data }, &login, &pass)
        != 0) {
        session_log(s, LOG_LV_INFO,
                    "client sent invalid login and password in AUTH PLAIN");
        rc = SASL_BAD;
    } else {
        rc = set_creds(s, AUTH_METHOD_PLAIN, login, pass, STR_NULL);
    }
    blob_wipe(&msg);
    return rc;
}

/* LOGIN: "Username:" then "Password:"; an initial response is the user. */
static enum sasl_rc
sasl_login(struct session *s, struct sasl_wait *w, struct str initial)
{
    struct sasl_blob pass = { NULL, 0 };
    enum sasl_rc rc;

    if (w->step == 0) {
        rc = get_answer(s, w, initial, SASL_USERNAME_B64, &w->user);
        if (rc != SASL_OK) {
            return rc;
        }
        w->step = 1;
    }
    rc = get_answer(s, w, STR_NULL, SASL_PASSWORD_B64, &pass);
    if (rc != SASL_OK) {
        return rc;
    }
    if (w->user.len == 0 || pass.len == 0) {
        session_log(s, LOG_LV_INFO,
                    "client sent empty login or password in AUTH LOGIN");
        rc = SASL_BAD;
    } else {
        rc = set_creds(s, AUTH_METHOD_LOGIN,
                       (struct str){ w->user.len, w->user.data },
                       (struct str){ pass.len, pass.data }, STR_NULL);
    }
    blob_wipe(&pass);
    return rc;
}

/* CRAM-MD5: send a fresh challenge, take "user digest" back. */
static enum sasl_rc
sasl_cram_md5(struct session *s, struct sasl_wait *w, struct str initial)
{
    struct sasl_blob answer = { NULL, 0 };
    struct str login, digest;
    char *b64 = NULL;
    size_t b64len;
    enum sasl_rc rc;

    if (initial.data != NULL) {
        /* RFC 2195: the server speaks first */
        session_log(s, LOG_LV_INFO,
                    "client sent an initial response to AUTH CRAM-MD5");
        return SASL_BAD;
    }
    if (!w->challenged) {
        if (session_make_salt(s) != 0) {
            session_log(s, LOG_LV_ERR, "cannot make a CRAM-MD5 challenge");
            return SASL_INTERNAL;
        }
        /* own copy: session_set_creds replaces s->salt while it copies */
        w->salt.len = s->salt.len;
        w->salt.data = malloc(w->salt.len + 1);
        b64len = base64_encoded_len(w->salt.len);
        b64 = malloc(b64len + 1);
        if (w->salt.data == NULL || b64 == NULL) {
            session_log(s, LOG_LV_ERR, "out of memory in AUTH CRAM-MD5");
            free(b64);
            return SASL_INTERNAL;
        }
        memcpy(w->salt.data, s->salt.data, w->salt.len);
        base64_encode(w->salt.data, w->salt.len, b64);
        rc = send_challenge(s, w->prefix, b64, b64len);
        free(b64);
        if (rc != SASL_OK) {
            return rc;
        }
        w->challenged = 1;
    }
    rc = read_answer(s, &answer);
    if (rc != SASL_OK) {
        return rc;
    }
    if (sasl_cram_parse((struct str){ answer.len, answer.data }, &login,
                        &digest) != 0) {
        session_log(s, LOG_LV_INFO, "client sent invalid CRAM-MD5 answer");
        rc = SASL_BAD;
    } else {
        rc = set_creds(s, AUTH_METHOD_CRAM_MD5, login, digest, w->salt);
    }
    blob_wipe(&answer);
    return rc;
}

/* EXTERNAL: the answer is the authorization identity, possibly empty (then
 * the certificate alone names the user); there is no password. */
static enum sasl_rc
sasl_external(struct session *s, struct sasl_wait *w, struct str initial)
{
    struct sasl_blob user;
    enum sasl_rc rc;

    rc = get_answer(s, w, initial, SASL_USERNAME_B64, &user);
    if (rc != SASL_OK) {
        return rc;
    }
    rc = set_creds(s, AUTH_METHOD_EXTERNAL,
                   (struct str){ user.len, user.data }, STR_NULL, STR_NULL);
    blob_wipe(&user);
    return rc;
}

/* Run w's mechanism from where it stands; on any result but SASL_PARK the
 * exchange is over and w is cleared. */
static enum sasl_rc
run(struct session *s, struct sasl_wait *w, struct str initial)
{
    enum sasl_rc rc;

    switch (w->mech) {
    case AUTH_M_PLAIN:
        rc = sasl_plain(s, w, initial);
        break;
    case AUTH_M_LOGIN:
        rc = sasl_login(s, w, initial);
        break;
    case AUTH_M_CRAM_MD5:
        rc = sasl_cram_md5(s, w, initial);
        break;
    case AUTH_M_EXTERNAL:
        rc = sasl_external(s, w, initial);
        break;
    default:
        session_log(s, LOG_LV_ERR, "unsupported SASL mechanism %#x", w->mech);
        rc = SASL_BAD;
        break;
    }
    if (rc == SASL_PARK) {
        return rc;
    }
    wait_clear(w);
    if (rc != SASL_OK) {
        session_clear_creds(s);
    }
    return rc;
}

/* One SASL exchange for the named mechanism; see sasl.h. */
enum sasl_rc
sasl_exchange(struct session *s, unsigned mech, struct str initial,
              const char *prefix)
{
    struct sasl_wait w = { .mech = mech, .prefix = prefix };
    enum sasl_rc rc = run(s, &w, initial);

    if (rc == SASL_PARK) {
        s->sasl = malloc(sizeof(w));
        if (s->sasl == NULL) {
            wait_clear(&w);
            session_clear_creds(s);
            session_log(s, LOG_LV_ERR, "out of memory in a SASL exchange");
            return SASL_INTERNAL;
        }
        *s->sasl = w;
    }
    return rc;
}

/* See sasl.h. */
enum sasl_rc
sasl_resume(struct session *s)
{
    enum sasl_rc rc = run(s, s->sasl, STR_NULL);

    if (rc != SASL_PARK) {
        free(s->sasl);
        s->sasl = NULL;
    }
    return rc;
}

/* See sasl.h. */
void
sasl_forget(struct session *s)
{
    if (s->sasl != NULL) {
        wait_clear(s->sasl);
        free(s->sasl);
        s->sasl = NULL;
    }
}
