/*
 * tls.h - GnuTLS for listeners: credentials and priorities built at
 * configuration time (sc->tls_data), the server handshake in a worker, and
 * the record I/O that conn.c calls when c->tls is set.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "conf.h"

struct conn;

/* Process-wide: gnutls_global_init and shared caches.  0 / -1. */
int tls_global_init(void);
void tls_global_deinit(void);

/* Build sc->tls_data from the ssl_* settings when the server needs TLS
 * (a listen with ssl, ssl = on, or starttls != off).  Reads certificate,
 * key, password, CA and CRL files now (before privileges are dropped).
 * Error text "SETTING: what is wrong", SETTING the ssl_* setting at fault
 * (or "gnutls" for a failure of the library's own).  0 / -1. */
int tls_server_conf_init(struct server_conf *sc, char *err, size_t errlen);
void tls_server_conf_free(struct server_conf *sc);

/* A DN that GnuTLS formatted (RFC 4514) as NGINX passes it on (OpenSSL's
 * RFC 2253 form): OpenSSL's names for the e-mail, given name and surname
 * attributes, bytes above 0x7f escaped as \XX.  malloc'd; NULL when out of
 * memory (see tls_dn.c). */
char *tls_dn_as_openssl(const char *dn);

/* Translate an OpenSSL cipher string and protocol list into a GnuTLS
 * priority string (malloc'd).  NULL with err naming the bad token.  warn
 * (may be NULL) is set to "" or to a notice for the operator: the string
 * was built, but with TLS 1.3 left out (see tls_priority.c). */
char *tls_priority_from_openssl(const char *ciphers,
                                const struct strlist *protocols,
                                int prefer_server, char *warn,
                                size_t warnlen, char *err, size_t errlen);

/* Server handshake on c (blocking until c->deadline).  Sets c->tls.
 * 0 / -1 with err and errno: ETIMEDOUT (deadline), EIO (handshake failed,
 * including a client whose ALPN list lacks imap/pop3/smtp), or, when the
 * handshake succeeded but ssl_verify_client refuses the client: EACCES (no
 * certificate sent) or EPERM (the certificate failed verification); then
 * c->tls stays set, so the caller may send the protocol's error reply over
 * TLS before conn_close() frees it. */
int tls_accept(struct conn *c, const struct server_conf *sc,
               char *err, size_t errlen);
/* The same, and 1 when the handshake waits for the client and park(arg)
 * says its session should leave the worker: c->hs then holds the
 * handshake (all we had to send is sent), and a later call, in any
 * thread, goes on with it.  park is asked as conn_wait_readable() asks it. */
int tls_accept_parkable(struct conn *c, const struct server_conf *sc,
                        int (*park)(void *), void *arg, char *err,
                        size_t errlen);
/* Free a handshake left in c->hs (conn_close does). */
void tls_handshake_free(struct conn *c);

/* Record I/O on a non-blocking fd, as conn.h's nb calls:
 * >0 bytes, 0 EOF (close_notify or TCP close), -1 errno EAGAIN (with
 * *dir_write_r = 1 when GnuTLS waits to write) or EIO (the reason kept
 * for tls_last_error()).
 * After tls_send() fails with EAGAIN the caller must call it again with
 * the same bytes (GnuTLS may have encrypted part of them already). */
ssize_t tls_recv(struct conn *c, void *dst, size_t len, int *dir_write_r);
ssize_t tls_send(struct conn *c, const void *src, size_t len, int *dir_write_r);
size_t tls_pending(const struct conn *c);
/* Why the last record call failed with EIO ("SSL alert ... received",
 * "SSL reading failed: ..."), for the caller's log line; "" if none. */
const char *tls_last_error(const struct conn *c);
/* Send close_notify without waiting; 0 once it is out.  -1 with errno
 * EAGAIN: the socket is full and GnuTLS holds the alert: call again when
 * it is writable (and shut the write side only after that).  -1 with
 * another errno: it cannot be sent.  After 0 or such a failure, further
 * calls do nothing and return 0 (one close_notify per connection). */
int tls_bye(struct conn *c);
/* After tls_recv() returned 0: 1 when the peer ended the TCP connection
 * without close_notify.  GnuTLS then refuses to write to it as well, so
 * unlike a close_notify this is no half-close. */
int tls_eof_truncated(const struct conn *c);
void tls_free(struct conn *c);         /* deinit the session; c->tls = NULL */

/* What the auth service is told (Auth-SSL-*): strings are malloc'd into
 * *info; NGINX/OpenSSL names ("TLSv1.3", "TLS_AES_256_GCM_SHA384",
 * "ECDHE-RSA-AES128-GCM-SHA256"); verify "SUCCESS", "FAILED:reason" or
 * "NONE"; subject/issuer as RFC 2253 strings, serial in upper-case hex,
 * SHA-1 fingerprint in lower-case hex, the certificate in PEM (these five
 * are NULL without a client certificate).  0 / -1. */
struct tls_info {
    char *protocol, *cipher, *verify, *subject, *issuer, *serial,
         *fingerprint, *cert_pem;
    int verified;                        /* client cert verified */
};
int tls_get_info(const struct conn *c, struct tls_info *info);
void tls_info_free(struct tls_info *info);

#endif
