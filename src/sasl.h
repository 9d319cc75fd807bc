/*
 * sasl.h - SASL mechanisms shared by IMAP, POP3 and SMTP: base64, the
 * PLAIN / LOGIN / CRAM-MD5 / EXTERNAL exchanges, and the digests that
 * auth_file needs to check CRAM-MD5 and APOP answers.
 *
 * Decoders are pure functions over buffers (unit and fuzz targets);
 * sasl_exchange() is the one function here that does I/O.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stddef.h>

#include "str.h"

struct session;

/* Length of the base64 text for n bytes (no NUL). */
size_t base64_encoded_len(size_t n);
/* Encode; dst has base64_encoded_len(n) bytes; returns that length. */
size_t base64_encode(const unsigned char *src, size_t n, char *dst);
/* Strict decode (padding required, no whitespace); dst has at least
 * (n / 4) * 3 bytes.  0 ok with *len_r, -1 invalid. */
int base64_decode(const unsigned char *src, size_t n, unsigned char *dst,
                  size_t *len_r);

/* PLAIN message "authzid NUL authcid NUL passwd" -> slices of msg.
 * -1 when malformed or authcid / passwd empty. */
int sasl_plain_parse(struct str msg, struct str *login_r, struct str *pass_r);
/* CRAM-MD5 answer "user SP 32-hex-digest" -> slices.  -1 malformed. */
int sasl_cram_parse(struct str msg, struct str *login_r, struct str *digest_r);

/* Lower-case hex HMAC-MD5(secret, challenge) into out[33]. */
void cram_md5_digest(struct str secret, struct str challenge, char out[33]);
/* Lower-case hex MD5(challenge || secret) into out[33] (APOP). */
void apop_digest(struct str challenge, struct str secret, char out[33]);

enum sasl_rc {
    SASL_OK,           /* s->method, s->login, s->passwd (and s->salt) set */
    SASL_CANCEL,       /* client sent "*": answer as the protocol wants */
    SASL_BAD,          /* malformed base64 / message: a protocol error */
    SASL_IO,           /* connection failed or timed out: close */
    SASL_INTERNAL,     /* our failure (no memory, no challenge): logged;
                        * answer with the internal error, then close */
    SASL_PARK,         /* a challenge is out and its answer has not come:
                        * the session is to park (session_fill_client);
                        * sasl_resume() goes on when it comes back */
};

/* The state of an exchange that parked (sasl.c). */
struct sasl_wait;

/*
 * Run one SASL exchange on s->client after the client named the mechanism
 * (one AUTH_M_* bit; for PLAIN and LOGIN and EXTERNAL an initial response
 * may be given, empty .data == NULL means none, "=" means empty).
 * Challenges are written as PREFIX + base64 + CRLF ("+ " for IMAP and
 * POP3, "334 " for SMTP).  Lines read are bounded by s->client's buffer.
 * On any result but SASL_OK nothing of the exchange is left in s.
 */
enum sasl_rc sasl_exchange(struct session *s, unsigned mech, struct str initial,
                           const char *prefix);
/* Go on with the exchange that returned SASL_PARK (s->sasl set): the same
 * results as sasl_exchange. */
enum sasl_rc sasl_resume(struct session *s);
/* Drop a parked exchange's state (the session ends); wipes what it held. */
void sasl_forget(struct session *s);

#endif
